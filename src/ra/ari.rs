//! ACME Renewal Information (RFC 9773): certificate identifiers and
//! suggested renewal windows.

use crate::error::{Error, Result};
use crate::jose::b64;
use crate::model::Timestamp;

/// The longest certID text accepted (an AKI and a serial are short).
const MAX_CERT_ID_LEN: usize = 256;

/// A parsed ARI certificate identifier: base64url(AKI keyIdentifier) "."
/// base64url(serial number INTEGER content octets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertIdent {
    pub key_id: Vec<u8>,
    pub serial: Vec<u8>,
}

impl CertIdent {
    /// Parses the text form; every failure is `malformed` with a detail.
    pub(crate) fn parse(s: &str) -> Result<CertIdent> {
        if s.len() > MAX_CERT_ID_LEN {
            return Err(Error::malformed(
                "the ARI certificate identifier is too long",
            ));
        }
        let (aki, serial) = s.split_once('.').ok_or_else(|| {
            Error::malformed(
                "an ARI certificate identifier is base64url(keyIdentifier) \".\" base64url(serial)",
            )
        })?;
        let decode = |part: &str, what: &str| {
            b64::decode(part)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::malformed(format!(
                        "the {what} of the ARI certificate identifier is not non-empty base64url"
                    ))
                })
        };
        let key_id = decode(aki, "key identifier")?;
        let serial = decode(serial, "serial number")?;
        // DER INTEGER content: minimal, and positive for a serial.
        if serial[0] & 0x80 != 0 || (serial.len() > 1 && serial[0] == 0 && serial[1] & 0x80 == 0) {
            return Err(Error::malformed(
                "the serial number of the ARI certificate identifier is not a positive DER INTEGER",
            ));
        }
        Ok(CertIdent { key_id, serial })
    }

    /// The text form.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}.{}",
            b64::encode(&self.key_id),
            b64::encode(&self.serial)
        )
    }
}

/// A renewalInfo answer: the computed window, or one set by hand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    Window(Window),
    Set(serde_json::Value),
}

/// A suggested renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The window for a certificate valid from `not_before` to `not_after`:
/// it opens at two thirds of the lifetime and lasts a ninth of it (10 days
/// of a 90-day certificate), so renewals spread out well before expiry. A
/// revoked certificate's window lies wholly in the past, before its
/// revocation: renew now.
pub(crate) fn window(
    not_before: Timestamp,
    not_after: Timestamp,
    revoked_at: Option<Timestamp>,
) -> Window {
    if let Some(at) = revoked_at {
        return Window {
            start: at - 3601,
            end: at - 1,
        };
    }
    let life = (not_after - not_before + 1).max(1);
    let start = not_before + life * 2 / 3;
    Window {
        start,
        end: (start + (life / 9).max(1)).min(not_after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn parse_and_encode() {
        // RFC 9773 §4.1's example identifier.
        let text = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";
        let id = CertIdent::parse(text).unwrap();
        assert_eq!(id.serial, vec![0x00, 0x87, 0x65, 0x43, 0x21]);
        assert_eq!(id.key_id.len(), 20);
        assert_eq!(id.encode(), text);
    }

    #[test]
    fn bad_identifiers_are_malformed() {
        for bad in [
            "",
            "nodot",
            ".AIdlQyE",
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.",
            "aYhb+a4d.AIdlQyE",
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.gA",  // 0x80: negative
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AAE", // 0x00 0x01: not minimal
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE=",
        ] {
            let e = CertIdent::parse(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Malformed, "{bad}");
        }
        assert!(CertIdent::parse(&"A".repeat(300)).is_err());
    }

    #[test]
    fn windows() {
        let nb = 1_000_000;
        let na = nb + 90 * 86400 - 1;
        let w = window(nb, na, None);
        assert_eq!(w.start, nb + 60 * 86400);
        assert_eq!(w.end, nb + 70 * 86400);
        assert!(w.start < w.end && w.end < na);
        let revoked = window(nb, na, Some(nb + 100));
        assert!(revoked.end < nb + 100 && revoked.start < revoked.end);
    }
}
