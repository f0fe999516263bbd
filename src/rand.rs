//! Randomness, from aws-lc-rs (the crate's one crypto provider).

/// Fills `buf` with cryptographically secure random bytes.
pub(crate) fn fill(buf: &mut [u8]) {
    // aws-lc's DRBG fails only if the OS entropy source is unusable, in which
    // case no certificate authority should keep running.
    aws_lc_rs::rand::fill(buf).expect("the system random number generator failed");
}

/// True with probability `percent`/100 (0: never, 100 and above: always).
pub(crate) fn percent_chance(percent: u8) -> bool {
    if percent == 0 {
        return false;
    }
    let mut b = [0u8; 4];
    fill(&mut b);
    u32::from_le_bytes(b) % 100 < u32::from(percent)
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_chance_bounds_and_rate() {
        assert!((0..1000).all(|_| !super::percent_chance(0)));
        assert!((0..1000).all(|_| super::percent_chance(100)));
        let hits = (0..20_000).filter(|_| super::percent_chance(25)).count();
        // 25 % of 20 000 = 5 000; six standard deviations is about 370.
        assert!((4_600..5_400).contains(&hits), "{hits}");
    }
}
