//! Identifier policy: which names and addresses this CA will put in a
//! certificate, and their canonical form.
//!
//! Bounded: at most [`MAX_IDENTIFIERS`] per order, names of at most 253
//! octets; every check is linear in the input.

pub(crate) use crate::protocol::names::SPECIAL_USE;

use std::net::IpAddr;

use crate::error::{Error, ErrorKind, Result, SubError};
use crate::protocol::{Identifier, IdentifierType};

/// The most identifiers one order may hold (Boulder's limit too).
pub(crate) const MAX_IDENTIFIERS: usize = 100;

/// An identifier that passed the policy, in canonical form: DNS names
/// lowercased without a trailing dot; IP addresses in their RFC 5952 /
/// dotted-quad text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CheckedIdentifier {
    /// The identifier as requested and echoed in the order (`*.` kept).
    pub identifier: Identifier,
    /// True for `*.example.com`.
    pub wildcard: bool,
}

impl CheckedIdentifier {
    /// The identifier an authorization covers: the base name for a wildcard
    /// (RFC 8555 §7.1.3: the authorization's identifier omits `*.`).
    pub(crate) fn authz_identifier(&self) -> Identifier {
        match self.identifier.value.strip_prefix("*.") {
            Some(base) if self.wildcard => Identifier::dns(base),
            _ => self.identifier.clone(),
        }
    }
}

/// Rules configured by the operator.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// Names under any of these (the name itself or a subdomain) are refused.
    pub blocked_domains: Vec<String>,
    /// Whether IP identifiers (RFC 8738) are accepted.
    pub allow_ip: bool,
    /// Special-use domains ([`SPECIAL_USE`]) whose names are accepted all
    /// the same (a test setup's "test"); the others are refused.
    pub allowed_special_use: Vec<String>,
    /// Accept public suffixes and wildcards directly under one (Pebble
    /// does); otherwise both are refused.
    pub skip_public_suffix_check: bool,
}

/// The special-use domain `name` is under (or is), if any.
fn special_use(name: &str) -> Option<&'static str> {
    SPECIAL_USE.into_iter().find(|s| {
        name == *s
            || (name.len() > s.len() && name.ends_with(s) && {
                let dot = name.len() - s.len() - 1;
                name.as_bytes()[dot] == b'.'
            })
    })
}

/// Whether `name` is itself a suffix of the Public Suffix List (ICANN or
/// private section: "co.uk", "github.io").
fn is_public_suffix(name: &str) -> bool {
    psl::suffix(name.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes() == name.as_bytes())
}

impl Policy {
    /// Checks every identifier of a new order. Returns them canonical and
    /// deduplicated, in request order; or one error carrying a subproblem per
    /// bad identifier (RFC 8555 §6.7.1).
    pub(crate) fn check_order(&self, identifiers: &[Identifier]) -> Result<Vec<CheckedIdentifier>> {
        if identifiers.is_empty() {
            return Err(Error::malformed("an order needs at least one identifier"));
        }
        if identifiers.len() > MAX_IDENTIFIERS {
            return Err(Error::new(
                ErrorKind::RejectedIdentifier,
                format!("an order may hold at most {MAX_IDENTIFIERS} identifiers"),
            ));
        }
        let mut out: Vec<CheckedIdentifier> = Vec::with_capacity(identifiers.len());
        let mut problems = Vec::new();
        for ident in identifiers {
            match self.check(ident) {
                Ok(c) => {
                    if !out.contains(&c) {
                        out.push(c)
                    }
                }
                Err(e) => problems.push(SubError {
                    kind: e.kind,
                    detail: e.detail.into_owned(),
                    identifier: ident.clone(),
                }),
            }
        }
        match problems.len() {
            0 => Ok(out),
            1 => {
                let p = &problems[0];
                Err(
                    Error::new(p.kind, format!("{}: {}", p.identifier.value, p.detail))
                        .with_subproblems(problems),
                )
            }
            n => {
                let kind = if problems.iter().all(|p| p.kind == problems[0].kind) {
                    problems[0].kind
                } else {
                    ErrorKind::RejectedIdentifier
                };
                Err(Error::new(
                    kind,
                    format!("{n} identifiers were refused; see subproblems"),
                )
                .with_subproblems(problems))
            }
        }
    }

    /// Checks one identifier.
    pub(crate) fn check(&self, ident: &Identifier) -> Result<CheckedIdentifier> {
        match ident.kind {
            IdentifierType::Dns => {
                let (name, wildcard) = check_dns_name(&ident.value)?;
                let base = name.strip_prefix("*.").unwrap_or(&name);
                if self.is_blocked(base) {
                    return Err(Error::new(
                        ErrorKind::RejectedIdentifier,
                        "the name is forbidden by the CA's policy",
                    ));
                }
                if let Some(su) = special_use(base) {
                    if !self.allowed_special_use.iter().any(|a| a == su) {
                        return Err(Error::new(
                            ErrorKind::RejectedIdentifier,
                            format!("names under \"{su}\" are special-use (RFC 6761) and are not certified by this CA"),
                        ));
                    }
                }
                if !self.skip_public_suffix_check && is_public_suffix(base) {
                    return Err(rejected(if wildcard {
                        "a wildcard directly under a public suffix (Public Suffix List) is not certified"
                    } else {
                        "the name is a public suffix (Public Suffix List), which no one can hold"
                    }));
                }
                Ok(CheckedIdentifier {
                    identifier: Identifier::dns(name),
                    wildcard,
                })
            }
            IdentifierType::Ip => {
                if !self.allow_ip {
                    return Err(Error::new(
                        ErrorKind::UnsupportedIdentifier,
                        "IP address identifiers are not enabled on this CA",
                    ));
                }
                let ip = check_ip(&ident.value)?;
                Ok(CheckedIdentifier {
                    identifier: Identifier::ip(ip.to_string()),
                    wildcard: false,
                })
            }
            IdentifierType::Unknown => Err(Error::new(
                ErrorKind::UnsupportedIdentifier,
                "identifier type is not supported (use \"dns\" or \"ip\")",
            )),
        }
    }

    fn is_blocked(&self, name: &str) -> bool {
        self.blocked_domains.iter().any(|b| {
            name == b
                || (name.len() > b.len()
                    && name.ends_with(b.as_str())
                    && name.as_bytes()[name.len() - b.len() - 1] == b'.')
        })
    }
}

fn rejected(detail: &'static str) -> Error {
    Error::new(ErrorKind::RejectedIdentifier, detail)
}

/// Checks a DNS name (RFC 1035 preferred syntax, RFC 5890 A-labels, the
/// Baseline Requirements' wildcard rule) and returns it lowercased, with
/// whether it is a wildcard.
pub(crate) fn check_dns_name(raw: &str) -> Result<(String, bool)> {
    if raw.is_empty() {
        return Err(Error::malformed("empty DNS identifier"));
    }
    if raw.len() > 253 {
        return Err(rejected("DNS name is longer than 253 characters"));
    }
    if !raw.is_ascii() {
        return Err(rejected(
            "DNS name contains non-ASCII characters; use its A-label (punycode) form",
        ));
    }
    let name = raw.to_ascii_lowercase();
    if name.ends_with('.') {
        return Err(rejected("DNS name ends in a dot"));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(rejected(
            "an IP address must be requested as an \"ip\" identifier",
        ));
    }
    let (wildcard, base) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name.as_str()),
    };
    if base.contains('*') {
        return Err(rejected(
            "a wildcard is only allowed as the whole leftmost label (\"*.example.com\")",
        ));
    }
    let labels: Vec<&str> = base.split('.').collect();
    if labels.len() < 2 {
        return Err(rejected("DNS name must have at least two labels"));
    }
    for label in &labels {
        if label.is_empty() {
            return Err(rejected("DNS name has an empty label"));
        }
        if label.len() > 63 {
            return Err(rejected("DNS label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(rejected(
                "DNS name contains a character outside a-z, 0-9 and '-'",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(rejected("DNS label starts or ends with a hyphen"));
        }
        // RFC 5891 §4.2.3.1: "--" in positions 3-4 is reserved for A-labels.
        if label.len() >= 4 && &label[2..4] == "--" && !label.starts_with("xn--") {
            return Err(rejected(
                "DNS label has '--' in positions 3 and 4 but is not an A-label",
            ));
        }
        if let Some(encoded) = label.strip_prefix("xn--") {
            check_a_label(label, encoded)?;
        }
    }
    // labels.len() >= 2, so last() exists.
    let tld = labels[labels.len() - 1];
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(rejected("DNS name's top-level label is all digits"));
    }
    Ok((name, wildcard))
}

/// An A-label (RFC 5890 §2.3.2.1) must be valid Punycode of a non-ASCII
/// U-label that IDNA2008 (UTS #46, strict) maps back to exactly this label.
fn check_a_label(label: &str, encoded: &str) -> Result<()> {
    let invalid =
        || rejected("DNS label starts with \"xn--\" but is not a valid A-label (punycode)");
    let unicode = idna::punycode::decode_to_string(encoded).ok_or_else(invalid)?;
    if unicode.is_ascii() {
        return Err(invalid());
    }
    match idna::domain_to_ascii_strict(&unicode) {
        Ok(back) if back == label => Ok(()),
        _ => Err(invalid()),
    }
}

/// Parses an IP identifier. RFC 8738 §3: the value is the textual form of
/// the address (RFC 1123 §2.1 for IPv4, RFC 5952 §4 for IPv6); we accept any
/// form std parses and canonicalize it. Unspecified and multicast addresses
/// are never certified.
pub(crate) fn check_ip(raw: &str) -> Result<IpAddr> {
    if raw.len() > 45 {
        return Err(Error::malformed("IP identifier is too long"));
    }
    let ip: IpAddr = raw
        .parse()
        .map_err(|_| Error::malformed("IP identifier is not a valid IP address"))?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(rejected("IP address is unspecified or multicast"));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            blocked_domains: vec!["blocked.test".into()],
            allow_ip: true,
            allowed_special_use: vec!["test".into()],
            skip_public_suffix_check: false,
        }
    }

    fn refused(p: &Policy, name: &str) -> bool {
        p.check(&Identifier::dns(name)).is_err()
    }

    #[test]
    fn a_labels_must_be_valid_punycode() {
        let p = policy();
        for bad in [
            "xn--zz.example.com",
            "xn--a.com",
            "xn--abc.example.com",
            "a.xn--.com",
        ] {
            assert!(refused(&p, bad), "{bad}");
        }
        // bücher.example.com, and an IDN top-level domain.
        assert!(!refused(&p, "xn--bcher-kva.example.com"));
        assert!(!refused(&p, "shop.xn--p1ai"));
    }

    #[test]
    fn public_suffixes_and_wildcards_under_them_are_refused() {
        let p = policy();
        for bad in ["*.co.uk", "co.uk", "*.github.io", "github.io", "*.com.au"] {
            assert!(refused(&p, bad), "{bad}");
        }
        for ok in [
            "a.co.uk",
            "*.example.co.uk",
            "me.github.io",
            "*.me.github.io",
        ] {
            assert!(!refused(&p, ok), "{ok}");
        }
        let lenient = Policy {
            skip_public_suffix_check: true,
            ..policy()
        };
        assert!(!refused(&lenient, "*.co.uk"));
    }

    #[test]
    fn special_use_names_only_where_allowed() {
        let strict = Policy {
            allowed_special_use: Vec::new(),
            ..policy()
        };
        for name in [
            "a.test",
            "printer.local",
            "x.invalid",
            "abc.onion",
            "app.localhost",
            "db.internal",
            "box.home.arpa",
            "www.example",
            "*.svc.internal",
        ] {
            let e = strict.check(&Identifier::dns(name)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::RejectedIdentifier, "{name}");
            assert!(e.detail.contains("special-use"), "{name}: {}", e.detail);
        }
        // example.com, testing.com and local.example.org are ordinary names.
        for ok in [
            "example.com",
            "testing.com",
            "local.example.org",
            "internal.example.net",
        ] {
            assert!(!refused(&strict, ok), "{ok}");
        }
        // A test setup allows "test".
        assert!(!refused(&policy(), "a.test"));
        assert!(refused(&policy(), "a.local"));
    }

    #[test]
    fn good_names() {
        for (raw, want, wild) in [
            ("example.com", "example.com", false),
            ("WWW.Example.COM", "www.example.com", false),
            ("*.example.com", "*.example.com", true),
            ("xn--bcher-kva.example", "xn--bcher-kva.example", false),
            ("a-b.c1.example", "a-b.c1.example", false),
        ] {
            assert_eq!(
                check_dns_name(raw).unwrap(),
                (want.to_string(), wild),
                "{raw}"
            );
        }
    }

    #[test]
    fn bad_names() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}.com", ["a"; 130].join("."));
        for raw in [
            "foo..com",
            "*.*.example.com",
            "foo.*.example.com",
            "*example.com",
            "example",
            "-foo.example.com",
            "foo-.example.com",
            "foo_bar.example.com",
            "example.com.",
            "1.2.3.4",
            "example.123",
            "ab--cd.example.com",
            "bücher.example",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            let e = check_dns_name(raw).unwrap_err();
            assert_eq!(e.kind, ErrorKind::RejectedIdentifier, "{raw}: {e}");
        }
        assert_eq!(check_dns_name("").unwrap_err().kind, ErrorKind::Malformed);
    }

    #[test]
    fn order_check_reports_each_bad_identifier() {
        let p = policy();
        let e = p
            .check_order(&[
                Identifier::dns("ok.example.com"),
                Identifier::dns("foo..com"),
                Identifier::dns("x.blocked.test"),
            ])
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::RejectedIdentifier);
        assert_eq!(e.subproblems.len(), 2);
        assert_eq!(e.subproblems[0].identifier.value, "foo..com");
        assert_eq!(e.subproblems[1].identifier.value, "x.blocked.test");
    }

    #[test]
    fn order_check_canonicalizes_and_dedups() {
        let got = policy()
            .check_order(&[
                Identifier::dns("A.example.com"),
                Identifier::dns("a.example.com"),
                Identifier::ip("2001:DB8::A"),
                Identifier::ip("2001:db8:0:0:0:0:0:1"),
            ])
            .unwrap();
        let values: Vec<_> = got.iter().map(|c| c.identifier.value.as_str()).collect();
        assert_eq!(values, ["a.example.com", "2001:db8::a", "2001:db8::1"]);
    }

    #[test]
    fn unknown_type_and_disabled_ip_are_unsupported() {
        let unknown = Identifier {
            kind: IdentifierType::Unknown,
            value: "x".into(),
        };
        assert_eq!(
            policy().check(&unknown).unwrap_err().kind,
            ErrorKind::UnsupportedIdentifier
        );
        let no_ip = Policy::default();
        assert_eq!(
            no_ip.check(&Identifier::ip("192.0.2.1")).unwrap_err().kind,
            ErrorKind::UnsupportedIdentifier
        );
        assert_eq!(
            policy()
                .check(&Identifier::ip("192.0.2."))
                .unwrap_err()
                .kind,
            ErrorKind::Malformed
        );
        assert_eq!(
            policy().check(&Identifier::ip("0.0.0.0")).unwrap_err().kind,
            ErrorKind::RejectedIdentifier
        );
    }

    #[test]
    fn limits() {
        assert_eq!(
            policy().check_order(&[]).unwrap_err().kind,
            ErrorKind::Malformed
        );
        let many: Vec<_> = (0..=MAX_IDENTIFIERS)
            .map(|i| Identifier::dns(format!("n{i}.example.com")))
            .collect();
        assert_eq!(
            policy().check_order(&many).unwrap_err().kind,
            ErrorKind::RejectedIdentifier
        );
    }

    #[test]
    fn wildcard_authz_identifier_drops_the_star() {
        let c = policy().check(&Identifier::dns("*.example.com")).unwrap();
        assert!(c.wildcard);
        assert_eq!(c.authz_identifier(), Identifier::dns("example.com"));
    }
}
