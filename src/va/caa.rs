//! CAA checking (RFC 8659, with the RFC 8657 `accounturi` and
//! `validationmethods` parameters).
//!
//! Before issuing for a DNS name, the CA finds the name's *relevant RRset*:
//! the CAA records at the name itself or, if it has none, at the closest
//! parent that has some (RFC 8659 §3). The resolver follows CNAMEs. No CAA
//! records anywhere means anyone may issue. Otherwise the `issue` properties
//! (for a wildcard, the `issuewild` properties if there are any) must include
//! one that names this CA and whose parameters admit the requesting account
//! and the validation method used; a critical property with a tag this CA
//! does not know forbids issuance outright.
//!
//! A lookup that fails (SERVFAIL, timeout, network error) at any name before
//! the relevant RRset is found forbids issuance with a `dns` problem, as
//! Boulder does: the CA cannot know what it did not see. NXDOMAIN and empty
//! answers only move the search to the parent.
//!
//! IP address identifiers are not subject to CAA (RFC 8738 has no CAA
//! rules), so they always pass.

use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::model::ChallengeType;
use crate::protocol::names::MAX_DOMAIN_NAME_LEN;
use crate::protocol::{Identifier, IdentifierType};
use crate::va::dns::{CaaRecord, DnsError, Resolver};
use crate::va::dns01::{lookup_problem, quote};

/// The most CAA records considered in one RRset; more is refused.
pub(crate) const MAX_RECORDS: usize = 100;

/// Property tags this CA understands (RFC 8659 §4.2-4.4, RFC 9495 §3,
/// and the contact tags of the CA/Browser Forum baseline requirements).
/// A critical property with any other tag forbids issuance.
pub(crate) const KNOWN_TAGS: [&str; 7] = [
    "issue",
    "issuewild",
    "iodef",
    "issuemail",
    "issuevmc",
    "contactemail",
    "contactphone",
];

/// At most this many reasons are spelled out in one error detail.
const MAX_REASONS: usize = 5;

/// At most this many characters of a property value are quoted in a detail.
const MAX_QUOTED_CHARS: usize = 100;

/// Checks CAA for the identifiers this CA is asked to issue for.
pub(crate) struct CaaChecker {
    resolver: Arc<dyn Resolver>,
    identities: Vec<String>,
}

impl CaaChecker {
    /// A checker asking `resolver`, for a CA known in CAA records by
    /// `identities` (issuer domain names such as `acme-ca.test`; compared
    /// case-insensitively, a trailing dot ignored). With no identities every
    /// RRset that has `issue` properties forbids issuance.
    pub(crate) fn new(resolver: Arc<dyn Resolver>, identities: Vec<String>) -> Self {
        let identities = identities
            .into_iter()
            .map(|id| id.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|id| !id.is_empty())
            .collect();
        CaaChecker {
            resolver,
            identities,
        }
    }

    /// Ok if the CAA records of `identifier` let this CA issue for it (for
    /// `*.<identifier>` if `wildcard`) to the account at `account_uri`,
    /// validated with `method`.
    ///
    /// # Errors
    /// - [`ErrorKind::Caa`] if the relevant RRset forbids issuance; the
    ///   detail names where the records were found, what they say and why
    ///   they do not authorize this request.
    /// - [`ErrorKind::Dns`] if a CAA lookup failed before the relevant RRset
    ///   was found.
    /// - [`ErrorKind::Malformed`] if the identifier is not a usable DNS name,
    ///   [`ErrorKind::UnsupportedIdentifier`] if its type is unknown.
    pub(crate) async fn check(
        &self,
        identifier: &Identifier,
        wildcard: bool,
        account_uri: &str,
        method: ChallengeType,
    ) -> Result<(), Error> {
        match identifier.kind {
            IdentifierType::Dns => {}
            IdentifierType::Ip => return Ok(()),
            IdentifierType::Unknown => {
                return Err(Error::new(
                    ErrorKind::UnsupportedIdentifier,
                    format!("cannot check CAA for identifier {identifier}"),
                ))
            }
        }
        let (name, wildcard) = normalize(&identifier.value, wildcard)?;
        let Some((at, rrset)) = self.relevant_rrset(&name).await? else {
            return Ok(());
        };
        let request = Request {
            name: &name,
            wildcard,
            at: &at,
            account_uri,
            method,
        };
        self.evaluate(&request, &rrset)
    }

    /// Climbs from `name` towards the root and returns the first non-empty
    /// CAA RRset with the name it was found at, or None if there is none.
    async fn relevant_rrset(&self, name: &str) -> Result<Option<(String, Vec<CaaRecord>)>, Error> {
        // One lookup per label: `a.b.c`, `b.c`, `c`. The root is not asked.
        let mut candidate = name;
        loop {
            match self.resolver.lookup_caa(candidate).await {
                Ok(rrset) if !rrset.is_empty() => return Ok(Some((candidate.to_owned(), rrset))),
                Ok(_) | Err(DnsError::NoRecords) | Err(DnsError::NxDomain) => {}
                Err(e) => {
                    let mut err = lookup_problem(&e, "CAA", candidate);
                    if candidate != name {
                        err.detail =
                            format!("{} (while checking CAA for {name})", err.detail).into();
                    }
                    return Err(err);
                }
            }
            match candidate.split_once('.') {
                Some((_, parent)) => candidate = parent,
                None => return Ok(None),
            }
        }
    }

    fn evaluate(&self, req: &Request<'_>, rrset: &[CaaRecord]) -> Result<(), Error> {
        if rrset.len() > MAX_RECORDS {
            return Err(req.forbidden(format!(
                "{} CAA records found, more than the {MAX_RECORDS} this CA examines",
                rrset.len()
            )));
        }
        // RFC 8659 §4.1: a critical property with an unknown tag forbids
        // issuance whatever else the RRset says.
        if let Some(r) = rrset
            .iter()
            .find(|r| r.critical && !KNOWN_TAGS.contains(&r.tag.to_ascii_lowercase().as_str()))
        {
            return Err(req.forbidden(format!(
                "property {} {} is marked critical, and this CA does not know the tag {}",
                r.tag.to_ascii_lowercase(),
                quote_value(&r.value),
                quote(&r.tag, MAX_QUOTED_CHARS),
            )));
        }
        // RFC 8659 §4.3: for a wildcard, issuewild properties take the place
        // of issue properties if there are any.
        let has_tag = |tag: &str| rrset.iter().any(|r| r.tag.eq_ignore_ascii_case(tag));
        let tag = if req.wildcard && has_tag("issuewild") {
            "issuewild"
        } else {
            "issue"
        };
        let properties: Vec<&CaaRecord> = rrset
            .iter()
            .filter(|r| r.tag.eq_ignore_ascii_case(tag))
            .collect();
        if properties.is_empty() {
            // Only iodef or other non-restricting properties.
            return Ok(());
        }
        let mut reasons = Vec::new();
        for r in &properties {
            match self.verdict(req, &r.value) {
                None => return Ok(()),
                Some(why) => reasons.push(format!("{tag} {} {why}", quote_value(&r.value))),
            }
        }
        let more = reasons.len().saturating_sub(MAX_REASONS);
        reasons.truncate(MAX_REASONS);
        let mut detail = reasons.join("; ");
        if more > 0 {
            detail.push_str(&format!(" (and {more} more)"));
        }
        Err(req.forbidden(format!(
            "{detail}; this CA is {}",
            if self.identities.is_empty() {
                "not named in any CAA property".to_owned()
            } else {
                self.identities.join(", ")
            }
        )))
    }

    /// None if the issue(wild) property `value` authorizes this request,
    /// else why not.
    fn verdict(&self, req: &Request<'_>, value: &[u8]) -> Option<String> {
        let v = match parse_issue_value(value) {
            Ok(v) => v,
            // RFC 8659 §4.2: a malformed value is treated like an empty
            // issuer-domain-name.
            Err(why) => return Some(format!("is malformed ({why}) and authorizes no CA")),
        };
        let Some(issuer) = &v.issuer else {
            return Some("authorizes no CA".to_owned());
        };
        if !self
            .identities
            .iter()
            .any(|id| id.eq_ignore_ascii_case(issuer))
        {
            return Some("authorizes another CA".to_owned());
        }
        let accounts: Vec<&str> = v.parameter("accounturi").collect();
        match accounts.as_slice() {
            [] => {}
            [uri] if *uri == req.account_uri => {}
            [uri] => {
                return Some(format!(
                    "is limited to the account {}, not {}",
                    cut(uri),
                    req.account_uri
                ))
            }
            _ => {
                return Some(
                    "has more than one accounturi parameter, which makes it unusable".to_owned(),
                )
            }
        }
        let methods: Vec<&str> = v.parameter("validationmethods").collect();
        match methods.as_slice() {
            [] => {}
            [list] => {
                let allowed = list
                    .split(',')
                    .map(str::trim)
                    .any(|m| m.eq_ignore_ascii_case(req.method.as_str()));
                if !allowed {
                    return Some(format!(
                        "is limited to the validation methods {}, not {}",
                        cut(list),
                        req.method.as_str()
                    ));
                }
            }
            _ => {
                return Some(
                    "has more than one validationmethods parameter, which makes it unusable"
                        .to_owned(),
                )
            }
        }
        None
    }
}

/// What one check is about, for evaluation and error details.
struct Request<'a> {
    name: &'a str,
    wildcard: bool,
    /// Where the relevant RRset was found.
    at: &'a str,
    account_uri: &'a str,
    method: ChallengeType,
}

impl Request<'_> {
    fn forbidden(&self, why: String) -> Error {
        let star = if self.wildcard { "*." } else { "" };
        let found = if self.at == self.name {
            String::new()
        } else {
            format!(" (found at {})", self.at)
        };
        Error::new(
            ErrorKind::Caa,
            format!(
                "CAA records for {star}{}{found} forbid issuance: {why}",
                self.name
            ),
        )
    }
}

/// `s` cut after [`MAX_QUOTED_CHARS`] characters ("…" marks the cut).
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// `value` for an error detail: lossily decoded, escaped, quoted and cut.
fn quote_value(value: &[u8]) -> String {
    quote(&String::from_utf8_lossy(value), MAX_QUOTED_CHARS)
}

/// Lowercases the name, drops a final dot and a `*.` prefix (which makes it
/// a wildcard), and checks it is a plausible DNS name of bounded size.
fn normalize(value: &str, wildcard: bool) -> Result<(String, bool), Error> {
    let mut name = value.trim_end_matches('.').to_ascii_lowercase();
    let mut wildcard = wildcard;
    if let Some(base) = name.strip_prefix("*.") {
        name = base.to_owned();
        wildcard = true;
    }
    let bad = |why: &str| {
        Err(Error::malformed(format!(
            "cannot check CAA for {}: {why}",
            quote(value, MAX_QUOTED_CHARS)
        )))
    };
    if name.is_empty() {
        return bad("empty name");
    }
    if name.len() > MAX_DOMAIN_NAME_LEN {
        return bad("name longer than 253 characters");
    }
    if name.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return bad("empty label or label longer than 63 characters");
    }
    if !name.is_ascii() {
        return bad("not an ASCII (A-label) name");
    }
    Ok((name, wildcard))
}

/// An `issue` or `issuewild` property value (RFC 8659 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssueValue {
    /// The issuer-domain-name, lowercased; None if the value names no CA
    /// (e.g. `;`), which forbids issuance by anyone.
    pub issuer: Option<String>,
    /// The parameters in order, tags lowercased, values as written.
    pub parameters: Vec<(String, String)>,
}

impl IssueValue {
    /// The values of every parameter whose tag is `tag` (lowercase).
    pub(crate) fn parameter<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.parameters
            .iter()
            .filter(move |(t, _)| t == tag)
            .map(|(_, v)| v.as_str())
    }
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `(ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))`: RFC 8659's label and
/// parameter tag.
fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// Parses an `issue`/`issuewild` value per the RFC 8659 §4.2 grammar:
///
/// ```text
/// issue-value = *WSP [issuer-domain-name *WSP]
///               [";" *WSP [parameters *WSP]]
/// parameters  = (parameter *WSP ";" *WSP parameters) / parameter
/// parameter   = tag *WSP "=" *WSP value
/// value       = *(%x21-3A / %x3C-7E)
/// ```
///
/// A trailing `;` after the parameters is tolerated. Parameter tags are
/// lowercased so that `AccountURI` is not silently ignored.
///
/// # Errors
/// Why `raw` does not match the grammar, for an error detail.
pub(crate) fn parse_issue_value(raw: &[u8]) -> Result<IssueValue, String> {
    let s = std::str::from_utf8(raw)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| "not ASCII".to_owned())?;
    let (domain, params) = match s.split_once(';') {
        Some((d, p)) => (d, Some(p)),
        None => (s, None),
    };
    let domain = domain.trim_matches(is_wsp);
    let issuer = if domain.is_empty() {
        None
    } else if domain.len() <= MAX_DOMAIN_NAME_LEN
        && domain.split('.').all(|l| l.len() <= 63 && is_label(l))
    {
        Some(domain.to_ascii_lowercase())
    } else {
        return Err(format!(
            "bad issuer domain name {}",
            quote(domain, MAX_QUOTED_CHARS)
        ));
    };
    let mut parameters = Vec::new();
    if let Some(params) = params {
        let segments: Vec<&str> = params.split(';').collect();
        let last = segments.len() - 1;
        for (i, segment) in segments.iter().enumerate() {
            let segment = segment.trim_matches(is_wsp);
            if segment.is_empty() {
                if i == last {
                    continue;
                }
                return Err("empty parameter".to_owned());
            }
            let Some((tag, value)) = segment.split_once('=') else {
                return Err(format!(
                    "parameter {} is not tag=value",
                    quote(segment, MAX_QUOTED_CHARS)
                ));
            };
            let tag = tag.trim_matches(is_wsp);
            let value = value.trim_matches(is_wsp);
            if !is_label(tag) {
                return Err(format!(
                    "bad parameter tag {}",
                    quote(tag, MAX_QUOTED_CHARS)
                ));
            }
            if !value
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b';')
            {
                return Err(format!(
                    "bad value for parameter {tag}: {}",
                    quote(value, MAX_QUOTED_CHARS)
                ));
            }
            parameters.push((tag.to_ascii_lowercase(), value.to_owned()));
        }
    }
    Ok(IssueValue { issuer, parameters })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::va::fake::FakeResolver;

    const ACCOUNT: &str = "https://acme-ca.test/acme/acct/1";

    struct Setup {
        resolver: Arc<FakeResolver>,
        checker: CaaChecker,
    }

    fn setup(resolver: FakeResolver) -> Setup {
        let resolver = Arc::new(resolver);
        let checker = CaaChecker::new(
            resolver.clone(),
            vec!["acme-ca.test".to_owned(), "Other-Name.test.".to_owned()],
        );
        Setup { resolver, checker }
    }

    async fn check_full(
        resolver: FakeResolver,
        name: &str,
        wildcard: bool,
        account: &str,
        method: ChallengeType,
    ) -> Result<(), Error> {
        setup(resolver)
            .checker
            .check(&Identifier::dns(name), wildcard, account, method)
            .await
    }

    async fn check(resolver: FakeResolver, name: &str, wildcard: bool) -> Result<(), Error> {
        check_full(resolver, name, wildcard, ACCOUNT, ChallengeType::Dns01).await
    }

    fn one(value: &str) -> FakeResolver {
        FakeResolver::default().caa_records("example.com", &[(false, "issue", value)])
    }

    fn assert_caa(r: Result<(), Error>, needles: &[&str]) {
        let e = r.expect_err("issuance should be forbidden");
        assert_eq!(e.kind, ErrorKind::Caa, "{}", e.detail);
        for n in needles {
            assert!(e.detail.contains(n), "{:?} lacks {n:?}", e.detail);
        }
    }

    #[tokio::test]
    async fn no_caa_anywhere_allows_and_climbs_every_label() {
        let s = setup(FakeResolver::default().caa("example.com", Err(DnsError::NxDomain)));
        s.checker
            .check(
                &Identifier::dns("a.b.example.com"),
                false,
                ACCOUNT,
                ChallengeType::Dns01,
            )
            .await
            .unwrap();
        assert_eq!(
            s.resolver.asked(),
            ["a.b.example.com", "b.example.com", "example.com", "com"]
        );
    }

    #[tokio::test]
    async fn ip_identifiers_are_not_subject_to_caa() {
        let s = setup(FakeResolver::default());
        s.checker
            .check(
                &Identifier::ip("192.0.2.1"),
                false,
                ACCOUNT,
                ChallengeType::Http01,
            )
            .await
            .unwrap();
        assert!(s.resolver.asked().is_empty());
    }

    #[tokio::test]
    async fn an_issue_property_naming_us_allows() {
        check(one("acme-ca.test"), "example.com", false)
            .await
            .unwrap();
        // Any of our identities, with whitespace and an empty parameter list.
        check(one("  other-name.test ;  "), "example.com", false)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_issue_property_naming_another_ca_forbids() {
        let r = check(one("letsencrypt.org"), "example.com", false).await;
        assert_caa(
            r,
            &[
                "CAA records for example.com forbid issuance",
                "issue \"letsencrypt.org\" authorizes another CA",
                "this CA is acme-ca.test, other-name.test",
            ],
        );
    }

    #[tokio::test]
    async fn any_matching_property_authorizes() {
        let resolver = FakeResolver::default().caa_records(
            "example.com",
            &[
                (false, "issue", "letsencrypt.org"),
                (false, "issue", ";"),
                (false, "issue", "%%%%"),
                (false, "issue", "acme-ca.test"),
            ],
        );
        check(resolver, "example.com", false).await.unwrap();
    }

    #[tokio::test]
    async fn issuewild_governs_wildcards_and_only_wildcards() {
        let rrset: &[(bool, &str, &str)] = &[
            (false, "issue", "letsencrypt.org"),
            (false, "issuewild", "acme-ca.test"),
        ];
        let resolver = || FakeResolver::default().caa_records("example.com", rrset);
        check(resolver(), "example.com", true).await.unwrap();
        assert_caa(
            check(resolver(), "example.com", false).await,
            &["issue \"letsencrypt.org\" authorizes another CA"],
        );
        // A `*.` prefix in the value means a wildcard too.
        check(resolver(), "*.example.com", false).await.unwrap();

        let rrset: &[(bool, &str, &str)] = &[
            (false, "issue", "acme-ca.test"),
            (false, "issuewild", "letsencrypt.org"),
        ];
        let resolver = || FakeResolver::default().caa_records("example.com", rrset);
        check(resolver(), "example.com", false).await.unwrap();
        assert_caa(
            check(resolver(), "example.com", true).await,
            &[
                "CAA records for *.example.com forbid issuance",
                "issuewild \"letsencrypt.org\" authorizes another CA",
            ],
        );
    }

    #[tokio::test]
    async fn wildcards_fall_back_to_issue() {
        check(one("acme-ca.test"), "example.com", true)
            .await
            .unwrap();
        assert_caa(
            check(one("letsencrypt.org"), "example.com", true).await,
            &["issue \"letsencrypt.org\""],
        );
        // issuewild ";" forbids wildcards even if issue allows us.
        let resolver = FakeResolver::default().caa_records(
            "example.com",
            &[(false, "issue", "acme-ca.test"), (false, "issuewild", ";")],
        );
        assert_caa(
            check(resolver, "example.com", true).await,
            &["issuewild \";\" authorizes no CA"],
        );
    }

    #[tokio::test]
    async fn an_empty_issuer_forbids_everyone() {
        for value in [
            ";",
            "",
            "  ;  ",
            "; accounturi=https://acme-ca.test/acme/acct/1",
        ] {
            assert_caa(
                check(one(value), "example.com", false).await,
                &["authorizes no CA"],
            );
        }
    }

    #[tokio::test]
    async fn a_critical_unknown_tag_forbids() {
        let resolver = FakeResolver::default().caa_records(
            "example.com",
            &[(false, "issue", "acme-ca.test"), (true, "tbs", "Unknown")],
        );
        assert_caa(
            check(resolver, "example.com", false).await,
            &[
                "property tbs \"Unknown\" is marked critical",
                "does not know the tag \"tbs\"",
            ],
        );
    }

    #[tokio::test]
    async fn non_critical_unknown_tags_and_critical_known_tags_are_fine() {
        let resolver = FakeResolver::default().caa_records(
            "example.com",
            &[
                (false, "tbs", "Unknown"),
                (true, "iodef", "mailto:security@example.com"),
                (false, "issue", "acme-ca.test"),
            ],
        );
        check(resolver, "example.com", false).await.unwrap();
        // Only non-restricting properties: anyone may issue.
        let resolver = FakeResolver::default().caa_records(
            "example.com",
            &[
                (false, "iodef", "mailto:security@example.com"),
                (false, "future", "x"),
            ],
        );
        check(resolver, "example.com", false).await.unwrap();
    }

    #[tokio::test]
    async fn accounturi_must_match_exactly() {
        let value = format!("acme-ca.test; accounturi={ACCOUNT}");
        check(one(&value), "example.com", false).await.unwrap();
        let r = check_full(
            one(&value),
            "example.com",
            false,
            "https://acme-ca.test/acme/acct/2",
            ChallengeType::Dns01,
        )
        .await;
        assert_caa(
            r,
            &[&format!(
                "is limited to the account {ACCOUNT}, not https://acme-ca.test/acme/acct/2"
            )],
        );
        // A prefix is not a match.
        let value = "acme-ca.test; accounturi=https://acme-ca.test/acme/acct/";
        assert_caa(
            check(one(value), "example.com", false).await,
            &["is limited to the account"],
        );
        // Two accounturi parameters make the property unusable.
        let value = format!("acme-ca.test; accounturi={ACCOUNT}; accounturi={ACCOUNT}");
        assert_caa(
            check(one(&value), "example.com", false).await,
            &["more than one accounturi"],
        );
    }

    #[tokio::test]
    async fn validationmethods_must_include_the_method() {
        let value = "acme-ca.test; validationmethods=http-01,dns-01";
        check(one(value), "example.com", false).await.unwrap();
        let r = check_full(
            one("acme-ca.test; validationmethods=http-01,tls-alpn-01"),
            "example.com",
            false,
            ACCOUNT,
            ChallengeType::Dns01,
        )
        .await;
        assert_caa(
            r,
            &["is limited to the validation methods http-01,tls-alpn-01, not dns-01"],
        );
        // Both parameters at once.
        let value = format!("acme-ca.test; accounturi={ACCOUNT}; validationmethods=tls-alpn-01");
        check_full(
            one(&value),
            "example.com",
            false,
            ACCOUNT,
            ChallengeType::TlsAlpn01,
        )
        .await
        .unwrap();
        assert_caa(
            check_full(
                one(&value),
                "example.com",
                false,
                ACCOUNT,
                ChallengeType::Http01,
            )
            .await,
            &["not http-01"],
        );
        // Unknown parameters are ignored.
        check(one("acme-ca.test; policy=ev; x-y=z"), "example.com", false)
            .await
            .unwrap();
    }

    /// RFC 8657 method names include the draft types: a CAA record can
    /// require (or leave out) dns-account-01 and dns-persist-01.
    #[tokio::test]
    async fn validationmethods_know_the_draft_types() {
        let value = "acme-ca.test; validationmethods=dns-persist-01,dns-account-01";
        for method in [ChallengeType::DnsPersist01, ChallengeType::DnsAccount01] {
            check_full(one(value), "example.com", true, ACCOUNT, method)
                .await
                .unwrap();
        }
        assert_caa(
            check_full(
                one(value),
                "example.com",
                false,
                ACCOUNT,
                ChallengeType::Dns01,
            )
            .await,
            &["not dns-01"],
        );
        assert_caa(
            check_full(
                one("acme-ca.test; validationmethods=dns-01"),
                "example.com",
                false,
                ACCOUNT,
                ChallengeType::DnsPersist01,
            )
            .await,
            &["is limited to the validation methods dns-01, not dns-persist-01"],
        );
    }

    #[tokio::test]
    async fn the_closest_rrset_wins() {
        // Only the parent has records.
        let s = setup(
            FakeResolver::default()
                .caa_records("example.com", &[(false, "issue", "letsencrypt.org")]),
        );
        let r = s
            .checker
            .check(
                &Identifier::dns("www.example.com"),
                false,
                ACCOUNT,
                ChallengeType::Dns01,
            )
            .await;
        assert_caa(
            r,
            &["CAA records for www.example.com (found at example.com) forbid issuance"],
        );
        assert_eq!(s.resolver.asked(), ["www.example.com", "example.com"]);

        // The child's own records take precedence, and the climb stops there.
        let s = setup(
            FakeResolver::default()
                .caa_records("www.example.com", &[(false, "issue", "acme-ca.test")])
                .caa_records("example.com", &[(false, "issue", "letsencrypt.org")])
                .caa("com", Err(DnsError::ServerFailure("SERVFAIL".to_owned()))),
        );
        s.checker
            .check(
                &Identifier::dns("www.example.com"),
                false,
                ACCOUNT,
                ChallengeType::Dns01,
            )
            .await
            .unwrap();
        assert_eq!(s.resolver.asked(), ["www.example.com"]);

        // NXDOMAIN on the way up only moves the search on.
        let resolver = FakeResolver::default()
            .caa("new.example.com", Err(DnsError::NxDomain))
            .caa("b.example.com", Err(DnsError::NoRecords))
            .caa_records("example.com", &[(false, "issue", "acme-ca.test")]);
        check(resolver, "new.b.example.com", false).await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_lookup_forbids_issuance() {
        let cases = [
            (
                DnsError::ServerFailure("SERVFAIL".to_owned()),
                "DNS problem: SERVFAIL looking up CAA for example.com",
            ),
            (
                DnsError::Timeout,
                "DNS problem: query timed out looking up CAA for example.com",
            ),
            (
                DnsError::Other("truncated".to_owned()),
                "DNS problem: networking error looking up CAA for example.com: truncated",
            ),
        ];
        for (err, detail) in cases {
            // The failure is at the parent, before any RRset was found.
            let resolver = FakeResolver::default().caa("example.com", Err(err));
            let e = check(resolver, "www.example.com", false).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Dns);
            assert!(e.detail.starts_with(detail), "{}", e.detail);
            assert!(
                e.detail
                    .ends_with(" (while checking CAA for www.example.com)"),
                "{}",
                e.detail
            );
        }
        // At the name itself.
        let resolver = FakeResolver::default().caa(
            "example.com",
            Err(DnsError::ServerFailure("SERVFAIL".to_owned())),
        );
        let e = check(resolver, "example.com", false).await.unwrap_err();
        assert_eq!(
            e.detail,
            "DNS problem: SERVFAIL looking up CAA for example.com - the domain's nameservers may be malfunctioning"
        );
    }

    #[tokio::test]
    async fn matching_is_case_insensitive() {
        let resolver =
            FakeResolver::default().caa_records("example.com", &[(false, "ISSUE", "ACME-CA.Test")]);
        check(resolver, "WWW.Example.COM.", false).await.unwrap();
        let resolver = FakeResolver::default().caa_records(
            "example.com",
            &[
                (false, "IssueWild", "letsencrypt.org"),
                (false, "issue", "acme-ca.test"),
            ],
        );
        assert_caa(check(resolver, "example.com", true).await, &["issuewild"]);
        // Parameter tags too: AccountURI is not ignored.
        let value = "acme-ca.test; AccountURI=https://acme-ca.test/acme/acct/9";
        assert_caa(
            check(one(value), "example.com", false).await,
            &["is limited to the account"],
        );
        // A critical tag's case does not make it unknown.
        let resolver =
            FakeResolver::default().caa_records("example.com", &[(true, "ISSUE", "acme-ca.test")]);
        check(resolver, "example.com", false).await.unwrap();
    }

    #[tokio::test]
    async fn a_malformed_property_authorizes_no_one() {
        for value in [
            "%%%%",
            "acme-ca.test.",
            "acme-ca..test",
            "-acme-ca.test",
            "acme-ca.test; accounturi",
            "acme-ca.test; account uri=x",
            "acme-ca.test;; accounturi=x",
            "acme ca.test",
            "acme-ca.test; a=b c",
            "acme-ca.tést",
        ] {
            assert_caa(
                check(one(value), "example.com", false).await,
                &["is malformed", "authorizes no CA"],
            );
        }
        let e = check(
            FakeResolver::default().caa(
                "example.com",
                Ok(vec![CaaRecord {
                    critical: false,
                    tag: "issue".to_owned(),
                    value: vec![0xff, 0xfe],
                }]),
            ),
            "example.com",
            false,
        )
        .await
        .unwrap_err();
        assert!(e.detail.contains("not ASCII"), "{}", e.detail);
    }

    #[tokio::test]
    async fn details_stay_bounded() {
        let long = format!("{}.example", "x".repeat(5000));
        let many: Vec<(bool, &str, &str)> =
            (0..50).map(|_| (false, "issue", long.as_str())).collect();
        let e = check(
            FakeResolver::default().caa_records("example.com", &many),
            "example.com",
            false,
        )
        .await
        .unwrap_err();
        assert!(e.detail.len() < 2000, "{}", e.detail.len());
        assert!(e.detail.contains("(and 45 more)"), "{}", e.detail);
        // Parameter values are cut too.
        for param in ["accounturi", "validationmethods"] {
            let value = format!("acme-ca.test; {param}={}", "y".repeat(5000));
            let many: Vec<(bool, &str, &str)> =
                (0..50).map(|_| (false, "issue", value.as_str())).collect();
            let e = check(
                FakeResolver::default().caa_records("example.com", &many),
                "example.com",
                false,
            )
            .await
            .unwrap_err();
            assert!(e.detail.len() < 2000, "{}", e.detail.len());
        }

        let records: Vec<CaaRecord> = (0..=MAX_RECORDS)
            .map(|_| CaaRecord {
                critical: false,
                tag: "issue".to_owned(),
                value: b"acme-ca.test".to_vec(),
            })
            .collect();
        let r = check(
            FakeResolver::default().caa("example.com", Ok(records)),
            "example.com",
            false,
        )
        .await;
        assert_caa(r, &["101 CAA records found"]);
    }

    #[tokio::test]
    async fn unusable_names_are_refused_without_lookups() {
        for name in [
            "",
            ".",
            "a..b",
            &"a.".repeat(200),
            &format!("{}.com", "x".repeat(64)),
            "bücher.de",
        ] {
            let s = setup(FakeResolver::default());
            let e = s
                .checker
                .check(&Identifier::dns(name), false, ACCOUNT, ChallengeType::Dns01)
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Malformed, "{name}");
            assert!(s.resolver.asked().is_empty());
        }
    }

    #[test]
    fn issue_values_parse_per_rfc_8659() {
        let v = parse_issue_value(
            b" CA.Example ;\taccounturi = https://ca.example/acct/1 ; validationmethods=dns-01 ;",
        )
        .unwrap();
        assert_eq!(v.issuer.as_deref(), Some("ca.example"));
        assert_eq!(
            v.parameters,
            [
                (
                    "accounturi".to_owned(),
                    "https://ca.example/acct/1".to_owned()
                ),
                ("validationmethods".to_owned(), "dns-01".to_owned()),
            ]
        );
        let v = parse_issue_value(b";").unwrap();
        assert_eq!(v.issuer, None);
        assert!(v.parameters.is_empty());
        let v = parse_issue_value(b"ca.example; key=a=b").unwrap();
        assert_eq!(v.parameter("key").collect::<Vec<_>>(), ["a=b"]);
        let v = parse_issue_value(b"ca.example; empty=").unwrap();
        assert_eq!(v.parameter("empty").collect::<Vec<_>>(), [""]);
        assert!(parse_issue_value(b"ca.example; =x").is_err());
        assert!(parse_issue_value(b"ca.example; a-=x").is_err());
        assert!(parse_issue_value("ca.example; a=\u{7f}".as_bytes()).is_err());
    }
}
