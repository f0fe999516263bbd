//! The dns-account-01 challenge (draft-ietf-acme-dns-account-label).
//!
//! dns-01 with the record under a label of its own for each account, so
//! that several ACME clients (each with its own account) can validate the
//! same name at once without overwriting each other's records. The record
//! lives at
//!
//! ```text
//! "_" || base32(SHA-256(account URL)[0:10]) || "._acme-challenge." || domain
//! ```
//!
//! where base32 is RFC 4648 §6 (ten bytes give sixteen characters, no
//! padding), written in lower case, and the account URL is the one the
//! server gave in newAccount's `Location` (RFC 8555 §7.3). Its value, its
//! wildcard rule (the record is under the base name) and every error are
//! those of dns-01 ([`crate::va::dns01`]): the same resolver, the same
//! bounds, the same problem types and details.

use std::sync::Arc;

use aws_lc_rs::digest;

use crate::va::dns::Resolver;
use crate::va::dns01::{validate_digest_at, CHALLENGE_LABEL};
use crate::va::{Outcome, ValidationFuture, ValidationRequest, Validator};

/// The dns-account-01 validator.
pub(crate) struct DnsAccount01 {
    resolver: Arc<dyn Resolver>,
}

impl DnsAccount01 {
    /// A dns-account-01 validator asking `resolver`.
    pub(crate) fn new(resolver: Arc<dyn Resolver>) -> Self {
        DnsAccount01 { resolver }
    }

    /// Validates `req`: TXT at `_<label>._acme-challenge.<identifier>`
    /// must include base64url(SHA-256(key authorization)), the label
    /// derived from `req.account_uri`.
    pub(crate) async fn validate(&self, req: &ValidationRequest) -> Outcome {
        let name = challenge_name(&req.account_uri, &req.authz.identifier.value);
        validate_digest_at(self.resolver.as_ref(), req, "dns-account-01", &name).await
    }
}

impl Validator for DnsAccount01 {
    fn validate<'a>(&'a self, req: &'a ValidationRequest) -> ValidationFuture<'a> {
        Box::pin(DnsAccount01::validate(self, req))
    }
}

/// The account label without its leading underscore: the first ten bytes
/// of SHA-256(account URL) in lower-case RFC 4648 base32.
pub(crate) fn account_label(account_url: &str) -> String {
    let d = digest::digest(&digest::SHA256, account_url.as_bytes());
    base32_lower(&d.as_ref()[..10])
}

/// `_<label>._acme-challenge.<domain>`, without a trailing dot.
pub(crate) fn challenge_name(account_url: &str, domain: &str) -> String {
    format!(
        "_{}.{CHALLENGE_LABEL}.{}",
        account_label(account_url),
        domain.trim_end_matches('.')
    )
}

/// RFC 4648 §6 base32 of `bytes`, lower case, for a length that is a
/// multiple of five bytes (so no padding arises).
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    debug_assert!(bytes.len().is_multiple_of(5));
    let mut out = String::with_capacity(bytes.len() * 8 / 5);
    for chunk in bytes.chunks(5) {
        let mut n = 0u64;
        for &b in chunk {
            n = (n << 8) | u64::from(b);
        }
        for i in (0..8).rev() {
            out.push(ALPHABET[((n >> (i * 5)) & 31) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::model::ChallengeType;
    use crate::protocol::Identifier;
    use crate::va::dns::DnsError;
    use crate::va::dns01::expected_txt;
    use crate::va::fake::{request, FakeResolver, ACCOUNT_URI, KEY_AUTHZ};

    fn req(identifier: Identifier, wildcard: bool) -> ValidationRequest {
        request(ChallengeType::DnsAccount01, identifier, wildcard)
    }

    async fn run(resolver: FakeResolver, r: &ValidationRequest) -> Outcome {
        DnsAccount01::new(Arc::new(resolver)).validate(r).await
    }

    #[test]
    fn base32_follows_rfc_4648() {
        // RFC 4648 §10 test vectors, lower-cased, for whole 5-byte groups.
        assert_eq!(base32_lower(b""), "");
        assert_eq!(base32_lower(b"fooba"), "mzxw6ytb");
        assert_eq!(base32_lower(&[0xff; 5]), "77777777");
        assert_eq!(base32_lower(&[0; 10]), "aaaaaaaaaaaaaaaa");
    }

    #[test]
    fn the_label_matches_the_draft_example() {
        // draft-ietf-acme-dns-account-label's example: the account
        // https://example.com/acme/acct/ExampleAccount validating
        // example.org publishes at _ujmmovf2vn55tgye._acme-challenge.
        assert_eq!(
            account_label("https://example.com/acme/acct/ExampleAccount"),
            "ujmmovf2vn55tgye"
        );
        assert_eq!(
            challenge_name(
                "https://example.com/acme/acct/ExampleAccount",
                "example.org."
            ),
            "_ujmmovf2vn55tgye._acme-challenge.example.org"
        );
        // Sixteen characters of the base32 alphabet, whatever the URL.
        let label = account_label(ACCOUNT_URI);
        assert_eq!(label.len(), 16);
        assert!(label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
        // The label depends on the whole URL, byte for byte.
        assert_ne!(label, account_label(&ACCOUNT_URI.to_uppercase()));
        assert_ne!(label, account_label(&format!("{ACCOUNT_URI}/")));
    }

    #[tokio::test]
    async fn the_digest_at_the_account_label_validates() {
        let name = challenge_name(ACCOUNT_URI, "example.com");
        let good = expected_txt(KEY_AUTHZ);
        let out = run(
            FakeResolver::default().txt(&name, Ok(vec!["other", &good])),
            &req(Identifier::dns("example.com"), false),
        )
        .await;
        let Outcome::Valid { records } = out else {
            panic!("{out:?}")
        };
        assert_eq!(records[0]["hostname"], "example.com");
        assert_eq!(records[0]["resolverAddrs"][0], "10.0.0.53:53");
    }

    #[tokio::test]
    async fn a_wildcard_is_validated_under_the_base_name() {
        let name = challenge_name(ACCOUNT_URI, "example.com");
        let good = expected_txt(KEY_AUTHZ);
        let out = run(
            FakeResolver::default().txt(&name, Ok(vec![&good])),
            &req(Identifier::dns("example.com"), true),
        )
        .await;
        assert!(matches!(out, Outcome::Valid { .. }), "{out:?}");
    }

    #[tokio::test]
    async fn the_plain_dns01_name_or_another_accounts_label_does_not_count() {
        let good = expected_txt(KEY_AUTHZ);
        for name in [
            "_acme-challenge.example.com".to_owned(),
            challenge_name("https://ca.test/acme/acct/other", "example.com"),
        ] {
            let out = run(
                FakeResolver::default().txt(&name, Ok(vec![&good])),
                &req(Identifier::dns("example.com"), false),
            )
            .await;
            let Outcome::Invalid { error, .. } = out else {
                panic!("{name}: valid")
            };
            // Nothing at our own name: NXDOMAIN there.
            assert_eq!(error.kind, ErrorKind::Dns, "{name}");
            assert!(
                error
                    .detail
                    .contains(&challenge_name(ACCOUNT_URI, "example.com")),
                "{}",
                error.detail
            );
        }
    }

    #[tokio::test]
    async fn refusals_are_those_of_dns01() {
        let name = challenge_name(ACCOUNT_URI, "example.com");
        type Case<'a> = (Result<Vec<&'a str>, DnsError>, ErrorKind, String);
        let cases: Vec<Case<'_>> = vec![
            (
                Ok(vec![]),
                ErrorKind::Unauthorized,
                format!("No TXT record found at {name}"),
            ),
            (
                Err(DnsError::NoRecords),
                ErrorKind::Unauthorized,
                format!("No TXT record found at {name}"),
            ),
            (
                Ok(vec!["wrong", "also wrong"]),
                ErrorKind::Unauthorized,
                format!("Incorrect TXT record \"wrong\" (and 1 more) found at {name}"),
            ),
            (
                Err(DnsError::ServerFailure("SERVFAIL".into())),
                ErrorKind::Dns,
                format!("DNS problem: SERVFAIL looking up TXT for {name} - the domain's nameservers may be malfunctioning"),
            ),
            (
                Err(DnsError::Timeout),
                ErrorKind::Dns,
                format!("DNS problem: query timed out looking up TXT for {name}"),
            ),
        ];
        for (answer, kind, detail) in cases {
            let out = run(
                FakeResolver::default().txt(&name, answer),
                &req(Identifier::dns("example.com"), false),
            )
            .await;
            let Outcome::Invalid { error, .. } = out else {
                panic!("valid")
            };
            assert_eq!(error.kind, kind);
            assert_eq!(error.detail, detail);
        }
    }

    #[tokio::test]
    async fn ip_identifiers_are_refused() {
        let out = run(
            FakeResolver::default(),
            &req(Identifier::ip("192.0.2.1"), false),
        )
        .await;
        let Outcome::Invalid { error, .. } = out else {
            panic!("valid")
        };
        assert_eq!(error.kind, ErrorKind::Malformed);
        assert!(error
            .detail
            .starts_with("dns-account-01 can only validate DNS identifiers"));
    }
}
