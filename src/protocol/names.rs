//! Facts about domain names that several layers check against: which are
//! special-use (no one can show control of them), and the form of the
//! issuer domain names of dns-persist-01 (draft-ietf-acme-dns-persist).

/// The longest domain name in presentation form without the trailing dot
/// (RFC 1035 §2.3.4: 255 octets on the wire).
pub(crate) const MAX_DOMAIN_NAME_LEN: usize = 253;

/// Special-use domain names (RFC 6761 §6, RFC 6762 "local", RFC 7686
/// "onion", RFC 8375 "home.arpa", RFC 9476 "alt", ICANN's "internal"): no
/// one can show control of a name under them, so a CA never certifies one.
pub(crate) const SPECIAL_USE: [&str; 9] = [
    "test",
    "example",
    "invalid",
    "localhost",
    "local",
    "onion",
    "internal",
    "alt",
    "home.arpa",
];

/// The most issuer domain names a challenge may list (the draft: servers
/// MUST NOT send more than 10).
pub(crate) const MAX_ISSUER_DOMAIN_NAMES: usize = 10;

/// Checks that `name` is an issuer domain name in the form the draft
/// requires of the challenge's `issuer-domain-names`: lower-case A-labels,
/// no trailing dot, at most 253 octets, each label a letter-digit-hyphen
/// label of at most 63 octets.
///
/// # Errors
/// Why `name` is not in that form.
pub(crate) fn check_issuer_domain_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_DOMAIN_NAME_LEN {
        return Err(format!("{name:?} is empty or longer than 253 octets"));
    }
    if name.ends_with('.') {
        return Err(format!("{name:?} ends with a dot"));
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    if !name.split('.').all(label_ok) {
        return Err(format!(
            "{name:?} is not a lower-case domain name of A-labels (letters, digits, hyphens)"
        ));
    }
    Ok(())
}

/// The registered domain of a DNS name: its public suffix (Public Suffix
/// List, ICANN and private sections) and one label more. `a.example.co.uk`
/// → `example.co.uk`; `a.github.io` → `a.github.io`. A name that is itself
/// a public suffix has none. Names under a suffix the list does not know
/// group under their last two labels (the list's default rule `*`).
pub(crate) fn registered_domain(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.');
    let name = name.strip_prefix("*.").unwrap_or(name);
    let lower = name.to_ascii_lowercase();
    psl::domain(lower.as_bytes())
        .and_then(|d| std::str::from_utf8(d.as_bytes()).ok())
        .map(str::to_owned)
}
