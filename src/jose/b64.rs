//! Base64url without padding (RFC 4648 §5, as RFC 7515 §2 uses it).
//!
//! Decoding is strict: padding (`=`), the standard alphabet's `+` and `/`,
//! whitespace, impossible lengths and non-zero trailing bits are all
//! refused, so every byte string has exactly one accepted encoding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::{Error, Result};

/// Encodes `bytes` as base64url without padding.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the base64url (no padding) encoding of `bytes` to `out`.
pub fn encode_to(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes strict base64url without padding.
///
/// # Errors
/// [`ErrorKind::Malformed`](crate::error::ErrorKind::Malformed) if `s` is not
/// the canonical unpadded base64url encoding of some byte string.
pub fn decode(s: impl AsRef<[u8]>) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Error::malformed("invalid base64url encoding"))
}

/// Whether `s` is non-empty and made only of base64url alphabet characters
/// (`A-Z a-z 0-9 - _`). Checks the characters, not that `s` decodes.
pub fn is_alphabet(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
            let s = encode(&bytes);
            assert!(!s.contains('='));
            assert_eq!(decode(&s).unwrap(), bytes);
        }
        assert_eq!(encode([0xfb, 0xff]), "-_8");
        let mut out = String::from("x.");
        encode_to(b"hi", &mut out);
        assert_eq!(out, "x.aGk");
    }

    #[test]
    fn rejects_padding() {
        assert_eq!(decode("aGk=").unwrap_err().kind, ErrorKind::Malformed);
        assert_eq!(decode("aA==").unwrap_err().kind, ErrorKind::Malformed);
    }

    #[test]
    fn rejects_standard_alphabet() {
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("+/8").unwrap_err().kind, ErrorKind::Malformed);
    }

    #[test]
    fn rejects_whitespace_bad_length_and_trailing_bits() {
        assert!(decode("aG k").is_err());
        assert!(decode("aGk\n").is_err());
        assert!(decode("a").is_err());
        assert!(decode("aGl").is_err(), "non-zero trailing bits");
        assert!(decode("aGk").is_ok());
    }

    #[test]
    fn alphabet_check() {
        assert!(is_alphabet("abcXYZ019-_"));
        assert!(!is_alphabet(""));
        assert!(!is_alphabet("abc="));
        assert!(!is_alphabet("a+b"));
        assert!(!is_alphabet("a/b"));
        assert!(!is_alphabet("é"));
    }
}
