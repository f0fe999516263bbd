//! URL paths of every ACME resource, in one place.
//!
//! The paths are part of the wire protocol: the router serves them, the
//! front end writes them into `Location` headers and resource URLs, and the
//! RA needs an account's URL (CAA `accounturi`, RFC 8657; the
//! dns-account-01 label). Identifiers are taken as anything `Display`
//! (the `model` id types), so this module names nothing of the crate.

use std::fmt::Display;

pub(crate) const DIRECTORY: &str = "/directory";
pub(crate) const NEW_NONCE: &str = "/acme/new-nonce";
pub(crate) const NEW_ACCOUNT: &str = "/acme/new-account";
pub(crate) const NEW_ORDER: &str = "/acme/new-order";
pub(crate) const REVOKE_CERT: &str = "/acme/revoke-cert";
pub(crate) const KEY_CHANGE: &str = "/acme/key-change";
pub(crate) const NEW_AUTHZ: &str = "/acme/new-authz";
pub(crate) const RENEWAL_INFO: &str = "/acme/renewal-info";
pub(crate) const ACCOUNT_PREFIX: &str = "/acme/acct/";
pub(crate) const ISSUER_CERT: &str = "/acme/issuer-cert";

/// An account's URL path (the `kid` of its requests).
pub(crate) fn account(id: impl Display) -> String {
    format!("{ACCOUNT_PREFIX}{id}")
}
/// The path of an account's orders list (RFC 8555 §7.1.2.1).
pub(crate) fn orders(id: impl Display) -> String {
    format!("{ACCOUNT_PREFIX}{id}/orders")
}
/// An order's path.
pub(crate) fn order(id: impl Display) -> String {
    format!("/acme/order/{id}")
}
/// An order's finalize path.
pub(crate) fn finalize(id: impl Display) -> String {
    format!("/acme/order/{id}/finalize")
}
/// An authorization's path.
pub(crate) fn authz(id: impl Display) -> String {
    format!("/acme/authz/{id}")
}
/// A challenge's path: the authorization's id and the challenge type's
/// wire name (`http-01`, ...).
pub(crate) fn challenge(id: impl Display, kind: &str) -> String {
    format!("/acme/chall/{id}/{kind}")
}
/// A certificate's path (its default chain).
pub(crate) fn cert(id: impl Display) -> String {
    format!("/acme/cert/{id}")
}

/// The resources the directory lists, under one naming or the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirPaths {
    pub directory: &'static str,
    pub new_nonce: &'static str,
    pub new_account: &'static str,
    pub new_order: &'static str,
    pub revoke_cert: &'static str,
    pub key_change: &'static str,
    pub new_authz: &'static str,
    pub renewal_info: &'static str,
}

/// acme-ca's own paths.
pub(crate) const ACME: DirPaths = DirPaths {
    directory: DIRECTORY,
    new_nonce: NEW_NONCE,
    new_account: NEW_ACCOUNT,
    new_order: NEW_ORDER,
    revoke_cert: REVOKE_CERT,
    key_change: KEY_CHANGE,
    new_authz: NEW_AUTHZ,
    renewal_info: RENEWAL_INFO,
};

/// Pebble's paths, for setups that hard-code them. Pebble has no
/// newAuthz; ours is listed under its usual path.
pub(crate) const PEBBLE: DirPaths = DirPaths {
    directory: "/dir",
    new_nonce: "/nonce-plz",
    new_account: "/sign-me-up",
    new_order: "/order-plz",
    revoke_cert: "/revoke-cert",
    key_change: "/rollover-account-key",
    new_authz: NEW_AUTHZ,
    renewal_info: "/draft-ietf-acme-ari-03/renewalInfo",
};
/// Alternate chain `n` (1-based: chain 0 is the default) of a
/// certificate.
pub(crate) fn cert_alternate(id: impl Display, n: usize) -> String {
    format!("/acme/cert/{id}/alt/{n}")
}

/// A record a request's URL path names, with its id as the path has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Named<'a> {
    /// An order: its path, or its finalize path.
    Order(&'a str),
    /// An authorization: its path, or the path of one of its challenges.
    Authz(&'a str),
    /// A certificate: its path, or the path of one of its alternate chains.
    Cert(&'a str),
}

/// The record `path` (a request's path, without its query) names, if it is
/// one of the paths above that name an order, an authorization or a
/// certificate.
pub(crate) fn named(path: &str) -> Option<Named<'_>> {
    let rest = path.strip_prefix("/acme/")?;
    let (kind, rest) = rest.split_once('/')?;
    let (id, tail) = match rest.split_once('/') {
        Some((id, tail)) => (id, Some(tail)),
        None => (rest, None),
    };
    if id.is_empty() {
        return None;
    }
    let alt = |tail: &str| {
        tail.strip_prefix("alt/")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match (kind, tail) {
        ("order", None | Some("finalize")) => Some(Named::Order(id)),
        ("authz", None) => Some(Named::Authz(id)),
        ("chall", Some(t)) if !t.is_empty() && !t.contains('/') => Some(Named::Authz(id)),
        ("cert", None) => Some(Named::Cert(id)),
        ("cert", Some(t)) if alt(t) => Some(Named::Cert(id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_a_path_names() {
        assert_eq!(named(&order("o1")), Some(Named::Order("o1")));
        assert_eq!(named(&finalize("o1")), Some(Named::Order("o1")));
        assert_eq!(named(&authz("a1")), Some(Named::Authz("a1")));
        assert_eq!(named(&challenge("a1", "http-01")), Some(Named::Authz("a1")));
        assert_eq!(named(&cert("c1")), Some(Named::Cert("c1")));
        assert_eq!(named(&cert_alternate("c1", 2)), Some(Named::Cert("c1")));
        for other in [
            account("x").as_str(),
            orders("x").as_str(),
            NEW_ORDER,
            REVOKE_CERT,
            ISSUER_CERT,
            "/acme/order/",
            "/acme/order//finalize",
            "/acme/order/o1/finalize/x",
            "/acme/order/o1/other",
            "/acme/authz/a1/",
            "/acme/chall/a1",
            "/acme/chall/a1/",
            "/acme/chall/a1/http-01/x",
            "/acme/cert/c1/alt/",
            "/acme/cert/c1/alt/x",
            "/acme/cert/c1/other",
            "/acme/unknown/x",
            "/other/order/o1",
        ] {
            assert_eq!(named(other), None, "{other}");
        }
    }

    #[test]
    fn resource_paths() {
        // `kid` URLs are read back by stripping ACCOUNT_PREFIX
        // (http::request): an account's path must start with it.
        assert_eq!(account("abc"), "/acme/acct/abc");
        assert!(account("abc").starts_with(ACCOUNT_PREFIX));
        assert_eq!(orders("abc"), "/acme/acct/abc/orders");
        assert_eq!(order("o1"), "/acme/order/o1");
        assert_eq!(finalize("o1"), "/acme/order/o1/finalize");
        assert_eq!(authz("z1"), "/acme/authz/z1");
        assert_eq!(challenge("z1", "dns-01"), "/acme/chall/z1/dns-01");
        assert_eq!(cert("c1"), "/acme/cert/c1");
        assert_eq!(cert_alternate("c1", 2), "/acme/cert/c1/alt/2");
    }
}
