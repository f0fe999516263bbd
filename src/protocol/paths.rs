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

#[cfg(test)]
mod tests {
    use super::*;

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
