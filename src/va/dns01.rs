//! The dns-01 challenge (RFC 8555 §8.4).
//!
//! The client proves control of a domain by publishing, at
//! `_acme-challenge.<domain>`, a TXT record holding the base64url SHA-256
//! digest of the key authorization. The validator asks the configured
//! [`Resolver`] (never the system resolver) and accepts the challenge if any
//! TXT record equals that digest after trimming whitespace.
//!
//! Errors follow Boulder's wording, so that clients and people see familiar
//! details: no TXT record is `unauthorized`, a wrong one is `unauthorized`
//! and quoted, and a failed lookup (SERVFAIL, NXDOMAIN, timeout, network
//! error) is a `dns` problem.

use std::sync::Arc;

use aws_lc_rs::digest;

use crate::error::{Error, ErrorKind};
use crate::protocol::IdentifierType;
use crate::va::dns::{DnsError, Resolver};
use crate::va::{Outcome, ValidationFuture, ValidationRequest, Validator};

/// The label prepended to the identifier (RFC 8555 §8.4).
pub(crate) const CHALLENGE_LABEL: &str = "_acme-challenge";

/// At most this many characters of a record are quoted in an error detail.
const MAX_QUOTED_CHARS: usize = 100;

/// At most this many bytes of a resolver's own error text reach a detail.
const MAX_CAUSE_CHARS: usize = 200;

/// The dns-01 validator.
pub(crate) struct Dns01 {
    resolver: Arc<dyn Resolver>,
}

impl Dns01 {
    /// A dns-01 validator asking `resolver`.
    pub(crate) fn new(resolver: Arc<dyn Resolver>) -> Self {
        Dns01 { resolver }
    }

    /// Validates `req` (a dns-01 attempt): looks up TXT at
    /// `_acme-challenge.<identifier>` and expects
    /// base64url(SHA-256(key authorization)) among the records.
    ///
    /// The validation record is `[{"hostname": <identifier>,
    /// "resolverAddrs": [...]}]`, as Boulder stores it; the addresses come
    /// from [`Resolver::describe`], read as a comma-separated list.
    pub(crate) async fn validate(&self, req: &ValidationRequest) -> Outcome {
        let name = challenge_name(&req.authz.identifier.value);
        validate_digest_at(self.resolver.as_ref(), req, "dns-01", &name).await
    }
}

/// The check dns-01 and dns-account-01 share: TXT records at `name` must
/// include base64url(SHA-256(key authorization)) of `req`. `method` names
/// the challenge type in the refusal of a non-DNS identifier.
pub(crate) async fn validate_digest_at(
    resolver: &dyn Resolver,
    req: &ValidationRequest,
    method: &str,
    name: &str,
) -> Outcome {
    let identifier = &req.authz.identifier;
    let records = serde_json::json!([{
        "hostname": identifier.value,
        "resolverAddrs": resolver_addrs(&resolver.describe()),
    }]);
    if identifier.kind != IdentifierType::Dns {
        return Outcome::Invalid {
            error: Error::malformed(format!(
                "{method} can only validate DNS identifiers, not {identifier}"
            )),
            records,
        };
    }
    let expected = expected_txt(&req.key_authorization);
    match resolver.lookup_txt(name).await {
        Ok(found) => match check_txt(&found, &expected, name) {
            Ok(()) => Outcome::Valid { records },
            Err(error) => Outcome::Invalid { error, records },
        },
        Err(DnsError::NoRecords) => Outcome::Invalid {
            error: no_txt(name),
            records,
        },
        Err(e) => Outcome::Invalid {
            error: lookup_problem(&e, "TXT", name),
            records,
        },
    }
}

impl Validator for Dns01 {
    fn validate<'a>(&'a self, req: &'a ValidationRequest) -> ValidationFuture<'a> {
        Box::pin(Dns01::validate(self, req))
    }
}

/// `_acme-challenge.<domain>`, without a trailing dot.
pub(crate) fn challenge_name(domain: &str) -> String {
    format!("{CHALLENGE_LABEL}.{}", domain.trim_end_matches('.'))
}

/// The TXT record value dns-01 expects: base64url(SHA-256(key authorization))
/// without padding (RFC 8555 §8.4).
pub(crate) fn expected_txt(key_authorization: &str) -> String {
    let d = digest::digest(&digest::SHA256, key_authorization.as_bytes());
    crate::jose::b64::encode(d.as_ref())
}

pub(crate) fn no_txt(name: &str) -> Error {
    Error::unauthorized(format!("No TXT record found at {name}"))
}

/// Ok if one of `found` equals `expected` after trimming whitespace.
fn check_txt(found: &[String], expected: &str, name: &str) -> Result<(), Error> {
    if found.iter().any(|r| r.trim() == expected) {
        return Ok(());
    }
    let Some(first) = found.first() else {
        return Err(no_txt(name));
    };
    let and_more = match found.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Err(Error::unauthorized(format!(
        "Incorrect TXT record {}{and_more} found at {name}",
        quote(first, MAX_QUOTED_CHARS)
    )))
}

/// `s` as a quoted, escaped string, cut after `max` characters ("…" marks
/// the cut).
pub(crate) fn quote(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// `s` cut after `max` characters.
fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

/// The `dns` problem for a failed lookup of `rtype` at `name`, in Boulder's
/// words: "DNS problem: SERVFAIL looking up TXT for _acme-challenge.example.com
/// - the domain's nameservers may be malfunctioning".
pub(crate) fn lookup_problem(err: &DnsError, rtype: &str, name: &str) -> Error {
    let detail = match err {
        DnsError::NxDomain => format!(
            "DNS problem: NXDOMAIN looking up {rtype} for {name} - check that a DNS record exists for this domain"
        ),
        DnsError::NoRecords => {
            format!("DNS problem: no {rtype} records found for {name}")
        }
        DnsError::ServerFailure(code) => format!(
            "DNS problem: {} looking up {rtype} for {name} - the domain's nameservers may be malfunctioning",
            truncate(code, MAX_CAUSE_CHARS)
        ),
        DnsError::Timeout => format!("DNS problem: query timed out looking up {rtype} for {name}"),
        DnsError::Other(cause) => format!(
            "DNS problem: networking error looking up {rtype} for {name}: {}",
            truncate(cause, MAX_CAUSE_CHARS)
        ),
    };
    Error::new(ErrorKind::Dns, detail)
}

/// The resolver addresses for a validation record, from
/// [`Resolver::describe`] read as a comma-separated list.
pub(crate) fn resolver_addrs(described: &str) -> Vec<String> {
    described
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .take(16)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChallengeType;
    use crate::protocol::Identifier;
    use crate::va::fake::{self, FakeResolver, KEY_AUTHZ};

    /// The shared fake with one TXT answer, describing itself as two
    /// servers, as a dns-01 record lists them.
    fn resolver_with(name: &str, answer: Result<Vec<&str>, DnsError>) -> Arc<dyn Resolver> {
        FakeResolver::default()
            .described_as("10.0.0.53:53, 10.0.0.54:53")
            .txt(name, answer)
            .shared()
    }

    fn request(identifier: Identifier, wildcard: bool) -> ValidationRequest {
        fake::request(ChallengeType::Dns01, identifier, wildcard)
    }

    async fn run(
        resolver: Arc<dyn Resolver>,
        identifier: Identifier,
    ) -> Result<serde_json::Value, (Error, serde_json::Value)> {
        match Dns01::new(resolver)
            .validate(&request(identifier, false))
            .await
        {
            Outcome::Valid { records } => Ok(records),
            Outcome::Invalid { error, records } => Err((error, records)),
        }
    }

    #[test]
    fn expected_value_is_the_rfc_digest() {
        // RFC 8555 §8.4: base64url(SHA-256(key authorization)), unpadded.
        let v = expected_txt(KEY_AUTHZ);
        assert_eq!(v.len(), 43);
        assert!(crate::jose::b64::is_alphabet(&v));
        let d = digest::digest(&digest::SHA256, KEY_AUTHZ.as_bytes());
        assert_eq!(crate::jose::b64::decode(&v).unwrap(), d.as_ref());
        // A known vector: SHA-256("") in base64url.
        assert_eq!(
            expected_txt(""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[tokio::test]
    async fn the_right_record_validates_with_records() {
        let good = expected_txt(KEY_AUTHZ);
        let resolver = resolver_with(
            "_acme-challenge.example.com",
            Ok(vec!["unrelated", &format!("  {good}\t")]),
        );
        let records = run(resolver, Identifier::dns("example.com")).await.unwrap();
        assert_eq!(
            records,
            serde_json::json!([{
                "hostname": "example.com",
                "resolverAddrs": ["10.0.0.53:53", "10.0.0.54:53"],
            }])
        );
    }

    #[tokio::test]
    async fn a_wildcard_authz_looks_under_the_base_name() {
        let good = expected_txt(KEY_AUTHZ);
        let resolver = resolver_with("_acme-challenge.example.com", Ok(vec![&good]));
        let out = Dns01::new(resolver)
            .validate(&request(Identifier::dns("example.com"), true))
            .await;
        assert!(matches!(out, Outcome::Valid { .. }));
    }

    #[tokio::test]
    async fn no_records_is_unauthorized() {
        for answer in [Err(DnsError::NoRecords), Ok(vec![])] {
            let resolver = resolver_with("_acme-challenge.example.com", answer);
            let (e, records) = run(resolver, Identifier::dns("example.com"))
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unauthorized);
            assert_eq!(
                e.detail,
                "No TXT record found at _acme-challenge.example.com"
            );
            assert_eq!(records[0]["hostname"], "example.com");
        }
    }

    #[tokio::test]
    async fn a_wrong_record_is_unauthorized_and_quoted() {
        let resolver = resolver_with("_acme-challenge.example.com", Ok(vec!["abc", "def", "ghi"]));
        let (e, _) = run(resolver, Identifier::dns("example.com"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert_eq!(
            e.detail,
            "Incorrect TXT record \"abc\" (and 2 more) found at _acme-challenge.example.com"
        );

        let resolver = resolver_with("_acme-challenge.example.com", Ok(vec!["abc"]));
        let (e, _) = run(resolver, Identifier::dns("example.com"))
            .await
            .unwrap_err();
        assert_eq!(
            e.detail,
            "Incorrect TXT record \"abc\" found at _acme-challenge.example.com"
        );
    }

    #[tokio::test]
    async fn a_long_or_odd_wrong_record_is_cut_and_escaped() {
        let long = format!("\"x\n{}", "y".repeat(500));
        let resolver = resolver_with("_acme-challenge.example.com", Ok(vec![&long]));
        let (e, _) = run(resolver, Identifier::dns("example.com"))
            .await
            .unwrap_err();
        assert!(
            e.detail.starts_with("Incorrect TXT record \"\\\"x\\ny"),
            "{}",
            e.detail
        );
        assert!(e.detail.contains("…"));
        assert!(e.detail.len() < 250, "{}", e.detail);
    }

    #[tokio::test]
    async fn the_digest_must_match_exactly() {
        let good = expected_txt(KEY_AUTHZ);
        for near in [
            good.to_lowercase(),
            format!("{good}="),
            good[..42].to_owned(),
            format!("\"{good}\""),
            expected_txt("token123.other"),
            KEY_AUTHZ.to_owned(),
        ] {
            let resolver = resolver_with("_acme-challenge.example.com", Ok(vec![&near]));
            let (e, _) = run(resolver, Identifier::dns("example.com"))
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unauthorized, "{near}");
        }
    }

    #[tokio::test]
    async fn lookup_failures_are_dns_problems() {
        let cases = [
            (
                DnsError::ServerFailure("SERVFAIL".to_owned()),
                "DNS problem: SERVFAIL looking up TXT for _acme-challenge.example.com - the domain's nameservers may be malfunctioning",
            ),
            (
                DnsError::ServerFailure("REFUSED".to_owned()),
                "DNS problem: REFUSED looking up TXT for _acme-challenge.example.com - the domain's nameservers may be malfunctioning",
            ),
            (
                DnsError::Timeout,
                "DNS problem: query timed out looking up TXT for _acme-challenge.example.com",
            ),
            (
                DnsError::NxDomain,
                "DNS problem: NXDOMAIN looking up TXT for _acme-challenge.example.com - check that a DNS record exists for this domain",
            ),
            (
                DnsError::Other("connection refused".to_owned()),
                "DNS problem: networking error looking up TXT for _acme-challenge.example.com: connection refused",
            ),
        ];
        for (err, detail) in cases {
            let resolver = resolver_with("_acme-challenge.example.com", Err(err));
            let (e, records) = run(resolver, Identifier::dns("example.com"))
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Dns);
            assert_eq!(e.detail, detail);
            assert_eq!(records[0]["resolverAddrs"][0], "10.0.0.53:53");
        }
    }

    #[tokio::test]
    async fn ip_identifiers_are_refused() {
        let resolver = FakeResolver::default()
            .described_as("10.0.0.53:53, 10.0.0.54:53")
            .shared();
        let (e, _) = run(resolver, Identifier::ip("192.0.2.1"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
        assert!(e.detail.contains("ip:192.0.2.1"), "{}", e.detail);
    }

    #[tokio::test]
    async fn the_validator_trait_runs_the_same_check() {
        let good = expected_txt(KEY_AUTHZ);
        let resolver = resolver_with("_acme-challenge.example.com", Ok(vec![&good]));
        let v: Arc<dyn Validator> = Arc::new(Dns01::new(resolver));
        let req = request(Identifier::dns("example.com"), false);
        assert!(matches!(v.validate(&req).await, Outcome::Valid { .. }));
    }

    #[test]
    fn challenge_names() {
        assert_eq!(challenge_name("example.com"), "_acme-challenge.example.com");
        assert_eq!(
            challenge_name("example.com."),
            "_acme-challenge.example.com"
        );
    }
}
