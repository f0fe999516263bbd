//! The dns-persist-01 challenge (draft-ietf-acme-dns-persist).
//!
//! The domain holder publishes, once, a TXT record at
//! `_validation-persist.<domain>` whose value is an RFC 8659 §4.2
//! issue-value: one of this CA's issuer domain names, then parameters.
//!
//! ```text
//! _validation-persist.example.com. TXT "ca.example; accounturi=https://ca.example/acme/acct/1; policy=wildcard; persistUntil=1767225600"
//! ```
//!
//! A record authorizes the request when
//! - its issuer-domain-name is one of ours (lower case, no trailing dot);
//!   records naming another CA are ignored, as the draft requires;
//! - it is well formed: RFC 8659 syntax, an `accounturi` parameter, a
//!   `persistUntil` that is a base-10 integer, and none of the parameters
//!   this CA reads (`accounturi`, `policy`, `persistUntil`) twice; tags
//!   are case-insensitive and unknown parameters are ignored;
//! - `accounturi` equals the requesting account's URL, byte for byte
//!   (RFC 3986 §6.2.1 simple string comparison);
//! - for a wildcard authorization, or for a record found at a parent of
//!   the identifier, it has `policy=wildcard` (value case-insensitive; any
//!   other value counts as no policy);
//! - the validation happens no later than `persistUntil` (Unix seconds).
//!
//! The record at the identifier itself is asked first; if none there
//! authorizes, the parents are asked in turn, down to the registrable
//! domain of the Public Suffix List and at most [`MAX_PARENTS`] of them,
//! for a record whose `policy=wildcard` covers subdomains. A record for us
//! that is malformed makes the attempt fail as `malformed` (if no other
//! record authorizes); a well-formed one that does not authorize, as
//! `unauthorized`; no record for us at all, as `unauthorized`; a failed
//! lookup (SERVFAIL, timeout, network error) at any name asked, as `dns`,
//! in dns-01's words. Record count and size are bounded by the resolver,
//! the attempt's time by the VA's timeout.
//!
//! Like Boulder, the draft's (newer) hashed `accounturi` form and its
//! just-in-time validation at newOrder are not implemented; authorizations
//! validated by this method are never reused for another order (the draft
//! caps reuse at the record's TTL, which the resolver does not report).

use std::sync::Arc;

use crate::clock::{rfc3339, Clock};
use crate::error::Error;
use crate::protocol::IdentifierType;
use crate::va::caa::parse_issue_value;
use crate::va::dns::{DnsError, Resolver};
use crate::va::dns01::{lookup_problem, quote, resolver_addrs};
use crate::va::{Outcome, ValidationFuture, ValidationRequest, Validator};

/// The label prepended to the name being validated (the draft's "DNS TXT
/// Record Persistent DCV Domain Label").
pub(crate) const LABEL: &str = "_validation-persist";

/// The most parent names asked for a record covering subdomains.
pub(crate) const MAX_PARENTS: usize = 10;

/// At most this many reasons are spelled out in one error detail.
const MAX_REASONS: usize = 5;

/// At most this many characters of a record's text are quoted in a detail.
const MAX_QUOTED_CHARS: usize = 100;

/// The dns-persist-01 validator.
pub(crate) struct DnsPersist01 {
    resolver: Arc<dyn Resolver>,
    clock: Arc<dyn Clock>,
    issuers: Vec<String>,
}

impl DnsPersist01 {
    /// A dns-persist-01 validator asking `resolver`, accepting records that
    /// name one of `issuer_domain_names` (already checked by
    /// [`crate::protocol::names::check_issuer_domain_name`]).
    pub(crate) fn new(
        resolver: Arc<dyn Resolver>,
        clock: Arc<dyn Clock>,
        issuer_domain_names: Vec<String>,
    ) -> Self {
        DnsPersist01 {
            resolver,
            clock,
            issuers: issuer_domain_names,
        }
    }

    /// Validates `req` (see the module documentation for the rules).
    pub(crate) async fn validate(&self, req: &ValidationRequest) -> Outcome {
        let identifier = &req.authz.identifier;
        let records = serde_json::json!([{
            "hostname": identifier.value,
            "resolverAddrs": resolver_addrs(&self.resolver.describe()),
        }]);
        if identifier.kind != IdentifierType::Dns {
            return Outcome::Invalid {
                error: Error::malformed(format!(
                    "dns-persist-01 can only validate DNS identifiers, not {identifier}"
                )),
                records,
            };
        }
        if self.issuers.is_empty() {
            return Outcome::Invalid {
                error: Error::internal("dns-persist-01 has no issuer domain names configured"),
                records,
            };
        }
        let now = self.clock.now();
        let mut malformed = Vec::new();
        let mut refused = Vec::new();
        let mut any_record = false;
        let names = names_to_ask(&identifier.value);
        for (depth, domain) in names.iter().enumerate() {
            let name = challenge_name(domain);
            let found = match self.resolver.lookup_txt(&name).await {
                Ok(found) => found,
                Err(DnsError::NoRecords | DnsError::NxDomain) => continue,
                Err(e) => {
                    return Outcome::Invalid {
                        error: lookup_problem(&e, "TXT", &name),
                        records,
                    }
                }
            };
            any_record |= !found.is_empty();
            let need = Need {
                account_uri: &req.account_uri,
                wildcard: req.authz.wildcard,
                parent: depth > 0,
                now,
            };
            for text in &found {
                match self.judge(text, &need) {
                    Verdict::NotOurs => {}
                    Verdict::Authorizes => return Outcome::Valid { records },
                    Verdict::Malformed(why) => malformed.push(format!("{name}: {why}")),
                    Verdict::Refuses(why) => refused.push(format!("{name}: {why}")),
                }
            }
        }
        let error = if !malformed.is_empty() {
            Error::malformed(format!(
                "Malformed dns-persist-01 TXT record: {}",
                reasons(&malformed)
            ))
        } else if !refused.is_empty() {
            Error::unauthorized(format!(
                "No dns-persist-01 TXT record authorizes this account: {}",
                reasons(&refused)
            ))
        } else {
            let asked = describe_names(&names);
            if any_record {
                Error::unauthorized(format!(
                    "No TXT record for {} found at {asked}",
                    self.issuers.join(" or ")
                ))
            } else {
                Error::unauthorized(format!("No TXT record found at {asked}"))
            }
        };
        Outcome::Invalid { error, records }
    }

    /// What one TXT record says about the request.
    fn judge(&self, text: &str, need: &Need<'_>) -> Verdict {
        // The issuer-domain-name is whatever precedes the first ";";
        // comparison is on the normalized form (lower case, no final dot).
        let (issuer, rest) = match text.split_once(';') {
            Some((i, r)) => (i, Some(r)),
            None => (text, None),
        };
        let issuer = issuer.trim_matches(|c| c == ' ' || c == '\t');
        let issuer = issuer
            .strip_suffix('.')
            .unwrap_or(issuer)
            .to_ascii_lowercase();
        if !self.issuers.contains(&issuer) {
            return Verdict::NotOurs;
        }
        let normalized = match rest {
            Some(r) => format!("{issuer};{r}"),
            None => issuer,
        };
        let value = match parse_issue_value(normalized.as_bytes()) {
            Ok(v) => v,
            Err(why) => return Verdict::Malformed(why),
        };
        let mut account_uri = None;
        let mut policy_wildcard = false;
        let mut persist_until = None;
        let mut seen = [false; 3];
        for (tag, v) in &value.parameters {
            let slot = match tag.as_str() {
                "accounturi" => 0,
                "policy" => 1,
                "persistuntil" => 2,
                // The draft: unknown parameters MUST be ignored.
                _ => continue,
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Verdict::Malformed(format!("parameter {tag} appears more than once"));
            }
            match slot {
                0 => account_uri = Some(v.as_str()),
                1 => policy_wildcard = v.eq_ignore_ascii_case("wildcard"),
                _ => match parse_unix_seconds(v) {
                    Some(t) => persist_until = Some(t),
                    None => {
                        return Verdict::Malformed(format!(
                            "persistUntil {} is not a base-10 Unix timestamp",
                            quote(v, MAX_QUOTED_CHARS)
                        ))
                    }
                },
            }
        }
        let Some(account_uri) = account_uri.filter(|a| !a.is_empty()) else {
            return Verdict::Malformed("the mandatory accounturi parameter is missing".into());
        };
        if account_uri != need.account_uri {
            return Verdict::Refuses(format!(
                "accounturi {} is not this account ({})",
                quote(account_uri, MAX_QUOTED_CHARS),
                need.account_uri
            ));
        }
        if need.wildcard && !policy_wildcard {
            return Verdict::Refuses(
                "a wildcard identifier needs policy=wildcard in the record".into(),
            );
        }
        if need.parent && !policy_wildcard {
            return Verdict::Refuses(
                "a record at a parent name covers subdomains only with policy=wildcard".into(),
            );
        }
        if let Some(until) = persist_until {
            if need.now > until {
                return Verdict::Refuses(format!("persistUntil {} has passed", rfc3339(until)));
            }
        }
        Verdict::Authorizes
    }
}

impl Validator for DnsPersist01 {
    fn validate<'a>(&'a self, req: &'a ValidationRequest) -> ValidationFuture<'a> {
        Box::pin(DnsPersist01::validate(self, req))
    }
}

/// What a request needs of a record.
struct Need<'a> {
    account_uri: &'a str,
    wildcard: bool,
    /// The record was found at a parent of the identifier.
    parent: bool,
    now: i64,
}

/// One record's verdict.
enum Verdict {
    /// Names another CA (or none): ignored.
    NotOurs,
    Authorizes,
    /// Ours, but not valid issue-value syntax or not as the draft says.
    Malformed(String),
    /// Ours and well formed, but not for this request.
    Refuses(String),
}

/// `_validation-persist.<domain>`, without a trailing dot.
pub(crate) fn challenge_name(domain: &str) -> String {
    format!("{LABEL}.{}", domain.trim_end_matches('.'))
}

/// The names whose records may authorize `domain`: itself, then each
/// parent down to its registrable domain (Public Suffix List), at most
/// [`MAX_PARENTS`] parents. A public suffix is never asked on behalf of
/// the names under it.
fn names_to_ask(domain: &str) -> Vec<String> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut names = vec![domain.clone()];
    let Some(registrable) = psl::domain(domain.as_bytes()).map(|d| d.as_bytes().len()) else {
        return names;
    };
    let mut rest = domain.as_str();
    while names.len() <= MAX_PARENTS && rest.len() > registrable {
        let Some((_, parent)) = rest.split_once('.') else {
            break;
        };
        if parent.len() < registrable {
            break;
        }
        names.push(parent.to_owned());
        rest = parent;
    }
    names
}

/// "_validation-persist.a.example.com", or with the parents asked:
/// "_validation-persist.a.example.com (or, with policy=wildcard,
/// _validation-persist.example.com)".
fn describe_names(names: &[String]) -> String {
    let first = challenge_name(&names[0]);
    if names.len() == 1 {
        return first;
    }
    let parents: Vec<String> = names[1..].iter().map(|n| challenge_name(n)).collect();
    format!("{first} (or, with policy=wildcard, {})", parents.join(", "))
}

fn reasons(list: &[String]) -> String {
    let mut s = list
        .iter()
        .take(MAX_REASONS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if list.len() > MAX_REASONS {
        s.push_str(&format!(" (and {} more)", list.len() - MAX_REASONS));
    }
    s
}

/// A base-10 Unix timestamp: digits only, no sign, at most 19 of them.
fn parse_unix_seconds(v: &str) -> Option<i64> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::error::ErrorKind;
    use crate::model::ChallengeType;
    use crate::protocol::names::check_issuer_domain_name;
    use crate::protocol::Identifier;
    use crate::va::fake::{request, FakeResolver, ACCOUNT_URI};

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "ca.test";

    fn validator(resolver: FakeResolver) -> (DnsPersist01, Arc<FakeResolver>) {
        let resolver = Arc::new(resolver);
        let v = DnsPersist01::new(
            resolver.clone(),
            Arc::new(FakeClock::new(NOW)),
            vec![ISSUER.to_owned(), "other-name.ca.test".to_owned()],
        );
        (v, resolver)
    }

    async fn run_at(
        resolver: FakeResolver,
        domain: &str,
        wildcard: bool,
    ) -> (Result<(), Error>, Vec<String>) {
        let (v, r) = validator(resolver);
        let req = request(
            ChallengeType::DnsPersist01,
            Identifier::dns(domain),
            wildcard,
        );
        let out = match v.validate(&req).await {
            Outcome::Valid { records } => {
                assert_eq!(records[0]["hostname"], domain);
                Ok(())
            }
            Outcome::Invalid { error, .. } => Err(error),
        };
        (out, r.asked())
    }

    /// Validates example.com (not a wildcard) against `records` at
    /// `_validation-persist.example.com`.
    async fn run(records: &[&str]) -> Result<(), Error> {
        let resolver =
            FakeResolver::default().txt("_validation-persist.example.com", Ok(records.to_vec()));
        run_at(resolver, "example.com", false).await.0
    }

    fn good() -> String {
        format!("{ISSUER}; accounturi={ACCOUNT_URI}")
    }

    fn assert_err(r: Result<(), Error>, kind: ErrorKind, needle: &str) {
        let e = r.expect_err("validated");
        assert_eq!(e.kind, kind, "{}", e.detail);
        assert!(e.detail.contains(needle), "{:?} lacks {needle:?}", e.detail);
    }

    #[tokio::test]
    async fn the_basic_record_validates() {
        run(&[&good()]).await.unwrap();
        // The draft's example layout: split strings joined, extra spaces.
        run(&[&format!(" {ISSUER} ;\taccounturi = {ACCOUNT_URI} ")])
            .await
            .unwrap();
        // Any of our issuer domain names; name case and a final dot do not
        // matter.
        run(&[&format!("Other-Name.CA.test.;accounturi={ACCOUNT_URI}")])
            .await
            .unwrap();
        // Tags are case-insensitive.
        run(&[&format!("{ISSUER}; AccountURI={ACCOUNT_URI}")])
            .await
            .unwrap();
        // A trailing ";" is tolerated, as RFC 8659 parsers do.
        run(&[&format!("{ISSUER}; accounturi={ACCOUNT_URI};")])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unknown_parameters_are_ignored() {
        run(&[&format!(
            "{ISSUER}; future=1; accounturi={ACCOUNT_URI}; future=2; x-y=z"
        )])
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_record_for_another_ca_is_ignored() {
        let other = format!("ca.example; accounturi={ACCOUNT_URI}");
        assert_err(
            run(&[&other]).await,
            ErrorKind::Unauthorized,
            "No TXT record for ca.test or other-name.ca.test found at _validation-persist.example.com",
        );
        // A subdomain of our name is another name.
        assert_err(
            run(&[&format!("sub.{ISSUER}; accounturi={ACCOUNT_URI}")]).await,
            ErrorKind::Unauthorized,
            "No TXT record for",
        );
        // Malformed records for other CAs are not our business either.
        assert_err(
            run(&["ca.example; ;;; =", "garbage"]).await,
            ErrorKind::Unauthorized,
            "No TXT record for",
        );
        // With ours among them, ours decides.
        run(&[&other, "garbage", &good()]).await.unwrap();
    }

    #[tokio::test]
    async fn the_account_must_be_the_requesting_one() {
        for uri in [
            "https://ca.test/acme/acct/acct2".to_owned(),
            format!("{ACCOUNT_URI}/"),
            ACCOUNT_URI.to_uppercase(),
            ACCOUNT_URI.replace("https", "http"),
        ] {
            assert_err(
                run(&[&format!("{ISSUER}; accounturi={uri}")]).await,
                ErrorKind::Unauthorized,
                &format!("accounturi \"{uri}\" is not this account ({ACCOUNT_URI})"),
            );
        }
    }

    #[tokio::test]
    async fn accounturi_is_mandatory() {
        for rec in [
            ISSUER.to_owned(),
            format!("{ISSUER};"),
            format!("{ISSUER}; policy=wildcard"),
            format!("{ISSUER}; accounturi="),
            format!("{ISSUER}; account={ACCOUNT_URI}"),
        ] {
            assert_err(
                run(&[&rec]).await,
                ErrorKind::Malformed,
                "the mandatory accounturi parameter is missing",
            );
        }
    }

    #[tokio::test]
    async fn a_duplicated_parameter_is_malformed() {
        for (rec, tag) in [
            (
                format!("{ISSUER}; accounturi={ACCOUNT_URI}; accounturi={ACCOUNT_URI}"),
                "accounturi",
            ),
            (
                format!("{ISSUER}; accounturi={ACCOUNT_URI}; policy=wildcard; Policy=wildcard"),
                "policy",
            ),
            (
                format!("{ISSUER}; accounturi={ACCOUNT_URI}; persistUntil=1; persistuntil=2"),
                "persistuntil",
            ),
        ] {
            assert_err(
                run(&[&rec]).await,
                ErrorKind::Malformed,
                &format!("parameter {tag} appears more than once"),
            );
        }
    }

    #[tokio::test]
    async fn malformed_values_are_malformed() {
        let cases = [
            (format!("{ISSUER}; accounturi"), "is not tag=value"),
            (
                format!("{ISSUER}; ; accounturi={ACCOUNT_URI}"),
                "empty parameter",
            ),
            (
                format!("{ISSUER}; -bad=1; accounturi={ACCOUNT_URI}"),
                "bad parameter tag",
            ),
            (
                format!("{ISSUER}; accounturi={ACCOUNT_URI} extra"),
                "bad value for parameter accounturi",
            ),
            (
                format!("{ISSUER}; accounturi={ACCOUNT_URI}; persistUntil=soon"),
                "persistUntil \"soon\" is not a base-10 Unix timestamp",
            ),
            (
                format!("{ISSUER}; accounturi={ACCOUNT_URI}; persistUntil=-5"),
                "is not a base-10 Unix timestamp",
            ),
            (
                format!("{ISSUER}; accounturi={ACCOUNT_URI}; persistUntil=99999999999999999999"),
                "is not a base-10 Unix timestamp",
            ),
            (format!("{ISSUER}; accounturi=é"), "not ASCII"),
        ];
        for (rec, needle) in cases {
            assert_err(run(&[&rec]).await, ErrorKind::Malformed, needle);
        }
    }

    #[tokio::test]
    async fn one_good_record_among_bad_ones_validates() {
        run(&[
            &format!("{ISSUER}; accounturi=https://ca.test/acme/acct/other"),
            &format!("{ISSUER}; accounturi"),
            &format!("{ISSUER}; accounturi={ACCOUNT_URI}; persistUntil=1"),
            "ca.example; accounturi=x",
            &good(),
        ])
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn malformed_wins_over_refused_and_every_reason_is_given() {
        let r = run(&[
            &format!("{ISSUER}; accounturi=https://ca.test/acme/acct/other"),
            &format!("{ISSUER}; accounturi"),
        ])
        .await;
        assert_err(
            r,
            ErrorKind::Malformed,
            "_validation-persist.example.com: parameter",
        );
        let r = run(&[
            &format!("{ISSUER}; accounturi=https://ca.test/acme/acct/a"),
            &format!("{ISSUER}; accounturi=https://ca.test/acme/acct/b"),
        ])
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.detail.contains("acct/a\""), "{}", e.detail);
        assert!(e.detail.contains("acct/b\""), "{}", e.detail);
        // Many bad records: the detail stays short.
        let many: Vec<String> = (0..50)
            .map(|i| format!("{ISSUER}; accounturi=https://x/{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = run(&many).await.unwrap_err();
        assert!(e.detail.contains("(and 45 more)"), "{}", e.detail);
        assert!(e.detail.len() < 1000, "{}", e.detail.len());
    }

    #[tokio::test]
    async fn a_wildcard_needs_policy_wildcard() {
        let at = |rec: String| {
            FakeResolver::default().txt("_validation-persist.example.com", Ok(vec![&rec]))
        };
        let (r, asked) = run_at(at(good()), "example.com", true).await;
        assert_err(
            r,
            ErrorKind::Unauthorized,
            "a wildcard identifier needs policy=wildcard in the record",
        );
        assert_eq!(asked, ["_validation-persist.example.com"]);
        for policy in ["policy=exact", "policy=", "policy=wildcards"] {
            let rec = format!("{}; {policy}", good());
            let (r, _) = run_at(at(rec), "example.com", true).await;
            assert_err(r, ErrorKind::Unauthorized, "needs policy=wildcard");
        }
        for policy in ["policy=wildcard", "Policy=WildCard", "POLICY=WILDCARD"] {
            let rec = format!("{}; {policy}", good());
            let (r, _) = run_at(at(rec), "example.com", true).await;
            r.unwrap();
        }
        // policy=wildcard also serves the name itself.
        run(&[&format!("{}; policy=wildcard", good())])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_parent_record_covers_subdomains_only_with_policy_wildcard() {
        let parent = |rec: String| {
            FakeResolver::default().txt("_validation-persist.example.com", Ok(vec![&rec]))
        };
        let (r, asked) = run_at(parent(good()), "www.dept.example.com", false).await;
        assert_err(
            r,
            ErrorKind::Unauthorized,
            "_validation-persist.example.com: a record at a parent name covers subdomains only with policy=wildcard",
        );
        assert_eq!(
            asked,
            [
                "_validation-persist.www.dept.example.com",
                "_validation-persist.dept.example.com",
                "_validation-persist.example.com",
            ]
        );
        let rec = format!("{}; policy=wildcard", good());
        run_at(parent(rec.clone()), "www.dept.example.com", false)
            .await
            .0
            .unwrap();
        // And a wildcard under a subdomain.
        run_at(parent(rec), "dept.example.com", true)
            .await
            .0
            .unwrap();
    }

    #[tokio::test]
    async fn the_own_record_is_asked_first_and_wins() {
        let resolver = FakeResolver::default()
            .txt("_validation-persist.www.example.com", Ok(vec![&good()]))
            .txt("_validation-persist.example.com", Err(DnsError::Timeout));
        let (r, asked) = run_at(resolver, "www.example.com", false).await;
        r.unwrap();
        assert_eq!(asked, ["_validation-persist.www.example.com"]);
    }

    #[tokio::test]
    async fn the_climb_stops_at_the_registrable_domain() {
        let rec = format!("{}; policy=wildcard", good());
        // co.uk is a public suffix: its record never covers names under it.
        let resolver = FakeResolver::default().txt("_validation-persist.co.uk", Ok(vec![&rec]));
        let (r, asked) = run_at(resolver, "www.example.co.uk", false).await;
        assert_err(
            r,
            ErrorKind::Unauthorized,
            "No TXT record found at _validation-persist.www.example.co.uk (or, with policy=wildcard, _validation-persist.example.co.uk)",
        );
        assert_eq!(
            asked,
            [
                "_validation-persist.www.example.co.uk",
                "_validation-persist.example.co.uk"
            ]
        );
        // A registrable domain asks only itself.
        let (_, asked) = run_at(FakeResolver::default(), "example.com", false).await;
        assert_eq!(asked, ["_validation-persist.example.com"]);
        // Deep names ask at most MAX_PARENTS parents.
        let deep = format!("{}example.com", "a.".repeat(30));
        let (_, asked) = run_at(FakeResolver::default(), &deep, false).await;
        assert_eq!(asked.len(), 1 + MAX_PARENTS);
    }

    #[tokio::test]
    async fn no_validation_after_persist_until() {
        let until = |t: i64| format!("{}; persistUntil={t}", good());
        run(&[&until(NOW)]).await.unwrap();
        run(&[&until(NOW + 1)]).await.unwrap();
        assert_err(
            run(&[&until(NOW - 1)]).await,
            ErrorKind::Unauthorized,
            &format!("persistUntil {} has passed", rfc3339(NOW - 1)),
        );
        assert_err(
            run(&[&until(0)]).await,
            ErrorKind::Unauthorized,
            "persistUntil 1970-01-01T00:00:00Z has passed",
        );
    }

    #[tokio::test]
    async fn no_records_and_lookup_failures() {
        for answer in [
            Ok(vec![]),
            Err(DnsError::NoRecords),
            Err(DnsError::NxDomain),
        ] {
            let resolver = FakeResolver::default().txt("_validation-persist.example.com", answer);
            assert_err(
                run_at(resolver, "example.com", false).await.0,
                ErrorKind::Unauthorized,
                "No TXT record found at _validation-persist.example.com",
            );
        }
        let cases = [
            (
                DnsError::ServerFailure("SERVFAIL".into()),
                "DNS problem: SERVFAIL looking up TXT for _validation-persist.example.com - the domain's nameservers may be malfunctioning",
            ),
            (
                DnsError::Timeout,
                "DNS problem: query timed out looking up TXT for _validation-persist.example.com",
            ),
        ];
        for (err, detail) in cases {
            // A failure at a parent is as final as one at the name itself.
            let resolver = FakeResolver::default().txt("_validation-persist.example.com", Err(err));
            let e = run_at(resolver, "www.example.com", false)
                .await
                .0
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Dns);
            assert_eq!(e.detail, detail);
        }
    }

    #[tokio::test]
    async fn ip_identifiers_are_refused() {
        let (v, _) = validator(FakeResolver::default());
        let req = request(
            ChallengeType::DnsPersist01,
            Identifier::ip("192.0.2.1"),
            false,
        );
        let Outcome::Invalid { error, .. } = v.validate(&req).await else {
            panic!("valid")
        };
        assert_eq!(error.kind, ErrorKind::Malformed);
        assert!(error
            .detail
            .starts_with("dns-persist-01 can only validate DNS identifiers"));
    }

    #[test]
    fn issuer_domain_names_must_be_normalized() {
        for ok in ["ca.example", "xn--bcher-kva.example", "a-b.c1", "ca"] {
            check_issuer_domain_name(ok).unwrap();
        }
        let long = format!("{}.example", "a".repeat(250));
        for bad in [
            "",
            "CA.example",
            "ca.example.",
            "bücher.example",
            "-ca.example",
            "ca..example",
            "ca_x.example",
            long.as_str(),
        ] {
            assert!(check_issuer_domain_name(bad).is_err(), "{bad}");
        }
    }
}
