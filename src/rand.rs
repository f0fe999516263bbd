//! Randomness, from aws-lc-rs (the crate's one crypto provider).

/// Fills `buf` with cryptographically secure random bytes.
pub fn fill(buf: &mut [u8]) {
    // aws-lc's DRBG fails only if the OS entropy source is unusable, in which
    // case no certificate authority should keep running.
    aws_lc_rs::rand::fill(buf).expect("the system random number generator failed");
}
