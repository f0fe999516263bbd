//! The certificate service for operators: a REST API beside ACME, on the
//! same CA and store. It issues certificates for entities with keys it
//! generates (sealed at rest under a key-encryption key), or for uploaded
//! CSRs, lists, renews and revokes them (ACME certificates included), and
//! hands certificates and keys out through short-lived, single-use download
//! tokens. docs/SERVICE.md shows the API.
//!
//! Every certificate it issues is a row of the shared certificates table
//! (under the `service` account), so CRL, OCSP and ACME's revokeCert treat
//! it like any other.
//!
//! The service reaches the CA only through the RA ([`Ra`]): issuance
//! through `Ra::issue_certificate`, the same function ACME finalize uses,
//! and revocation through `Ra::revoke_by_operator`. This file holds the
//! `Service` itself (tokens, roles, who sees what); the work is split by
//! job: `requests` (POST /certs, CSR uploads, approval), `issuance` (an
//! approved request signed and recorded), `certificates` (list, revoke,
//! renew, revocation announcements), `downloads` (tokens, ZIP and
//! PKCS#12) and `recoveries` (archived keys given back).

mod certificates;
/// `[service]`'s settings, kept with the rest of the configuration.
pub(crate) use crate::config::service as config;
pub(crate) mod console;
mod downloads;
pub(crate) mod http;
mod issuance;
pub(crate) mod keys;
pub mod package;
mod recoveries;
mod requests;
pub(crate) mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::Metrics;
use crate::model::service::{Caller, Role};
use crate::model::{RevocationReason, Timestamp};
use crate::ra::Ra;
use crate::store::service::ServiceStore;
use crate::store::shared::SharedStore;
use config::{ServiceConfig, ServiceProfileConfig};
use keys::Kek;

/// Most names and addresses in one certificate.
const MAX_NAMES: usize = 100;
/// Most CSRs in one upload.
pub(crate) const MAX_CSRS: usize = 100;

/// A configured token: its SHA-256 (the token itself is not kept), name
/// and role.
struct TokenEntry {
    digest: [u8; 32],
    caller: Caller,
}

/// A download's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// ca.pem, cert.pem and (when allowed) key.pem.
    Zip,
    /// PKCS#12 protected by a password.
    Pkcs12,
}

/// A finished download.
pub(crate) struct Download {
    pub file_name: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The operator service.
pub(crate) struct Service {
    /// The one road to the CA: issuance, revocation, the identifier
    /// policy, the chain and the URLs written into certificates.
    pub ra: Arc<Ra>,
    /// The webhooks' delivery counters.
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn ServiceStore>,
    /// Download grants, in the database so any instance honours a token.
    pub shared: Arc<dyn SharedStore>,
    pub clock: Arc<dyn Clock>,
    pub config: ServiceConfig,
    /// Tells the webhooks of renewals and revocations.
    pub notifier: Arc<webhooks::Notifier>,
    kek: Option<Kek>,
    tokens: Vec<TokenEntry>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A request error of the service (400 unless a kind says otherwise).
fn bad(detail: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::malformed(detail)
}

fn forbidden(detail: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::unauthorized(detail)
}

fn conflict(detail: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Conflict, detail)
}

/// RFC 5280 reasons by name, whatever the case, spaces, dashes or
/// underscores ("keyCompromise", "Key Compromise", "key_compromise").
pub(crate) fn parse_reason(s: &str) -> Option<RevocationReason> {
    let norm: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect();
    let code = match norm.as_str() {
        "unspecified" => 0,
        "keycompromise" => 1,
        "cacompromise" => 2,
        "affiliationchanged" => 3,
        "superseded" => 4,
        "cessationofoperation" => 5,
        "certificatehold" => 6,
        "privilegewithdrawn" => 9,
        "aacompromise" => 10,
        n => n.parse::<i64>().ok().filter(|c| *c != 7 && *c != 8)?,
    };
    RevocationReason::from_code(code)
}

/// The RFC 5280 §5.3.1 name of a reason code, as the API and the console
/// show it.
pub(crate) fn reason_name(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unknown",
    }
}

/// "valid", "revoked" or "expired" at `now`, as the API and the console
/// show it.
pub(crate) fn cert_status(c: &crate::model::service::CertRow, now: i64) -> &'static str {
    if c.revoked.is_some() {
        "revoked"
    } else if c.not_after <= now {
        "expired"
    } else {
        "valid"
    }
}

/// An entity id: 1 to 128 of letters, digits and `.-_:@/`.
fn check_entity(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:@/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "entity_id must be 1 to 128 letters, digits or . - _ : @ /",
        ))
    }
}

/// A new issuance request, as the API takes it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueInput {
    pub entity_id: String,
    pub profile: String,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    pub common_name: Option<String>,
    pub key_type: String,
    pub key_size: u32,
    /// Requested lifetime in seconds.
    pub ttl: Option<u64>,
    #[serde(default)]
    pub auto_renew: bool,
}

impl Service {
    pub(crate) fn new(
        ra: Arc<Ra>,
        metrics: Arc<Metrics>,
        store: Arc<dyn ServiceStore>,
        shared: Arc<dyn SharedStore>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Result<Service> {
        let kek = config
            .kek
            .as_deref()
            .map(Kek::from_b64)
            .transpose()
            .map_err(|e| Error::internal(format_args!("service.kek: {e}")))?;
        let tokens = config
            .tokens
            .iter()
            .map(|t| TokenEntry {
                digest: sha256(t.token.as_bytes()),
                caller: Caller {
                    name: t.name.clone(),
                    role: t.role,
                },
            })
            .collect();
        let notifier = Arc::new(webhooks::Notifier::new(
            store.clone(),
            clock.clone(),
            config.webhooks.clone(),
            config.webhook_secret_bytes().as_deref(),
            config.webhook_max_attempts,
            metrics.clone(),
        )?);
        Ok(Service {
            notifier,
            ra,
            metrics,
            store,
            shared,
            clock,
            config,
            kek,
            tokens,
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The caller a bearer token names. Every configured token is compared,
    /// in constant time, so timing tells nothing about which matched.
    pub(crate) fn authenticate(&self, token: &str) -> Option<Caller> {
        let digest = sha256(token.as_bytes());
        let mut found = None;
        for t in &self.tokens {
            if aws_lc_rs::constant_time::verify_slices_are_equal(&t.digest, &digest).is_ok() {
                found = Some(t.caller.clone());
            }
        }
        found
    }

    /// The profile named `name`.
    pub(crate) fn profile(&self, name: &str) -> Result<&ServiceProfileConfig> {
        self.config
            .profiles
            .get(name)
            .ok_or_else(|| Error::not_found(format!("there is no profile {name:?}")))
    }

    fn require(caller: &Caller, roles: &[Role], what: &str) -> Result<()> {
        if roles.contains(&caller.role) {
            Ok(())
        } else {
            let role = caller.role.as_str();
            let article = if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            Err(forbidden(format!("{article} {role} token may not {what}")))
        }
    }

    /// The default chain's intermediates and root, PEM: ca.pem.
    fn ca_chain_pem(&self) -> String {
        let chain = self.ra.default_chain();
        format!("{}{}", chain.intermediates_pem(), chain.root_pem())
    }
}

/// The service itself reading a record for a download it already
/// allowed: it sees everything.
fn internal_caller() -> Caller {
    Caller {
        name: String::new(),
        role: Role::Admin,
    }
}

/// The record `found` when `caller` may see it: admins and agents see
/// everything, a requester only what they asked for. Anything else is
/// `missing` (not found), so nobody learns what others hold.
fn visible<T>(
    caller: &Caller,
    found: Option<T>,
    requester: impl Fn(&T) -> &str,
    missing: &'static str,
) -> Result<T> {
    found
        .filter(|r| caller.sees_all() || requester(r) == caller.name)
        .ok_or_else(|| Error::not_found(missing))
}

/// A random request or batch id.
fn new_id() -> String {
    crate::model::random_id()
}

/// A serial as stored: lowercase hex, even length, no 0x.
pub(crate) fn normalize_serial(s: &str) -> Result<String> {
    let s = s.trim().trim_start_matches("0x").to_ascii_lowercase();
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::not_found(
            "no such certificate (a serial is hexadecimal)",
        ));
    }
    let trimmed = s.trim_start_matches('0');
    let mut out = trimmed.to_owned();
    if out.len() % 2 == 1 {
        out.insert(0, '0');
    }
    Ok(out)
}

/// The DER and PEM text of every `label` block of `pem`.
pub(crate) fn pem_blocks(pem: &str, label: &str) -> Result<Vec<(Vec<u8>, String)>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let Some(stop) = rest[start..].find(&end) else {
            return Err(bad(format!("a {label} block has no END line")));
        };
        let stop = start + stop + end.len();
        let text = &rest[start..stop];
        let (found, der) = der::pem::decode_vec(text.as_bytes())
            .map_err(|e| bad(format!("a {label} block is not valid PEM: {e}")))?;
        if found != label {
            return Err(bad(format!("expected {label}, found {found}")));
        }
        out.push((der, format!("{text}\n")));
        rest = &rest[stop..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_in_any_spelling() {
        for (s, code) in [
            ("keyCompromise", 1),
            ("Key Compromise", 1),
            ("KEY_COMPROMISE", 1),
            ("key-compromise", 1),
            ("superseded", 4),
            ("cessation of operation", 5),
            ("aACompromise", 10),
            ("0", 0),
            ("9", 9),
        ] {
            assert_eq!(parse_reason(s).map(|r| r.code()), Some(code), "{s}");
        }
        for s in ["", "7", "8", "removeFromCRL", "compromised", "11"] {
            assert!(parse_reason(s).is_none(), "{s}");
        }
    }

    #[test]
    fn serials_normalize() {
        assert_eq!(normalize_serial("0x0ABC").unwrap(), "0abc");
        assert_eq!(normalize_serial("4A3F").unwrap(), "4a3f");
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial("").is_err());
    }

    #[test]
    fn entity_ids() {
        assert!(check_entity("fde3263e-70b8-4ce9-9f3c-4a203a0dcdf5").is_ok());
        assert!(check_entity("thing/42@site:a").is_ok());
        assert!(check_entity("").is_err());
        assert!(check_entity("a b").is_err());
        assert!(check_entity(&"a".repeat(129)).is_err());
    }
}

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod test_harness;
