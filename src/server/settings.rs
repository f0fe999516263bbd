//! The settings each part runs with, made from the configuration: one
//! function per part, no I/O. `Server::build` hands them out.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::chaos::Chaos;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::{self, Limits};
use crate::jose::eab::MacKey;
use crate::protocol::DirectoryMeta;
use crate::ra::profile::Profile;
use crate::ra::{policy::Policy, CertUrls, RaSettings};
use crate::revocation::StatusSettings;
use crate::va::VaSettings;

use super::default_base_url;

/// The base URL of the ACME listener: `server.external_url`, or one made
/// from the bound address.
pub(super) fn base_url(config: &Config, listen: SocketAddr) -> String {
    config
        .server
        .external_url
        .clone()
        .unwrap_or_else(|| default_base_url(listen))
}

/// The URLs written into certificates: issuer, OCSP and CRL on the status
/// listener at `status_base` when there is one; otherwise only the issuer,
/// on the ACME listener.
pub(super) fn cert_urls(
    config: &Config,
    status_base: Option<&str>,
    listen: SocketAddr,
) -> CertUrls {
    use http::status::paths as status;
    match status_base {
        Some(base) => CertUrls {
            ca_issuers: Some(format!("{base}{}", status::ISSUER)),
            ocsp: Some(
                config
                    .status
                    .ocsp_url
                    .clone()
                    .unwrap_or_else(|| format!("{base}{}", status::OCSP)),
            ),
            crl: Some(format!("{base}{}", status::CRL)),
        },
        None => CertUrls {
            ca_issuers: Some(format!(
                "{}{}",
                base_url(config, listen),
                http::paths::ISSUER_CERT
            )),
            ocsp: None,
            crl: None,
        },
    }
}

/// `[status]` as the revocation service reads it.
pub(super) fn status(config: &Config, crl_url: Option<String>) -> StatusSettings {
    StatusSettings {
        crl_lifetime: config.status.crl_lifetime,
        crl_refresh: config.status.crl_refresh,
        ocsp_lifetime: config.status.ocsp_lifetime,
        ocsp_delegated: config.status.ocsp_delegated,
        crl_url,
    }
}

/// The VA's settings.
pub(super) fn va(config: &Config, chaos: Arc<Chaos>) -> VaSettings {
    VaSettings {
        inline: config.validation.always_valid,
        concurrency: config.validation.concurrency,
        queue_size: config.validation.queue_size,
        timeout: config.validation.timeout,
        random_delay: config.validation.random_delay,
        valid_authz_lifetime: config.acme.valid_authz_lifetime,
        chaos,
    }
}

/// The certificate profiles in force, by name.
pub(super) fn profiles(config: &Config) -> BTreeMap<String, Profile> {
    config
        .effective_profiles()
        .iter()
        .map(|(name, p)| (name.clone(), Profile::from_config(name, p)))
        .collect()
}

/// The identifier policy of `[acme]`.
pub(super) fn policy(config: &Config) -> Policy {
    Policy {
        blocked_domains: config.acme.blocked_domains.clone(),
        allow_ip: config.acme.allow_ip_identifiers,
        allowed_special_use: config.acme.allowed_special_use_domains.clone(),
        skip_public_suffix_check: !config.acme.public_suffix_check,
    }
}

/// The RA's rules: lifetimes, profiles, external account binding, the
/// challenge types on offer.
pub(super) fn ra(config: &Config, base_url: String) -> Result<RaSettings> {
    let a = &config.acme;
    let mut eab_keys = HashMap::new();
    for (kid, key) in &a.eab_keys {
        let key = MacKey::from_b64url(key)
            .map_err(|e| Error::internal(format_args!("acme.eab_keys.{kid}: {}", e.detail)))?;
        eab_keys.insert(kid.clone(), key);
    }
    Ok(RaSettings {
        order_lifetime: a.order_lifetime,
        pending_authz_lifetime: a.pending_authz_lifetime,
        valid_authz_lifetime: a.valid_authz_lifetime,
        backdate: config.ca.backdate,
        profiles: profiles(config),
        default_profile: a.default_profile.clone(),
        random_profile: a.random_profile,
        authz_reuse: a.authz_reuse,
        eab_required: a.external_account_required,
        eab_keys,
        eab_key_reuse: a.eab_key_reuse,
        min_rsa_bits: a.min_rsa_bits,
        serve_revoked_certificates: a.serve_revoked_certificates,
        finalize_lease: Duration::from_secs(30),
        orders_per_page: a.orders_per_page,
        require_tos: a.terms_of_service.is_some(),
        base_url,
        caa_recheck_after: config.validation.caa_recheck_after,
        dns_account_01: config.validation.dns_account_01,
        dns_persist_01: config.validation.dns_persist_01,
        issuer_domain_names: config.validation.issuer_domain_names(a).to_vec(),
    })
}

/// The directory's `meta` object.
pub(super) fn directory_meta(config: &Config) -> DirectoryMeta {
    let a = &config.acme;
    DirectoryMeta {
        terms_of_service: a.terms_of_service.clone(),
        website: a.website.clone(),
        caa_identities: a.caa_identities.clone(),
        external_account_required: a.external_account_required,
        profiles: profiles(config)
            .values()
            .map(|p| (p.name.clone(), p.description.clone()))
            .collect(),
    }
}

/// The connection limits every listener applies.
pub(super) fn limits(config: &Config) -> Limits {
    Limits {
        max_connections: config.server.max_connections,
        max_connections_per_client: config.server.max_connections_per_client,
        handshake_timeout: config.server.handshake_timeout,
        idle_timeout: config.server.idle_timeout,
    }
}

/// How long a validation attempt may stay processing before, on a shared
/// database, another instance takes it for abandoned: the validation's
/// timeout and its random delay, twice, and two minutes for the queue.
pub(super) fn stale_validation(config: &Config) -> Duration {
    let v = &config.validation;
    (v.timeout + v.random_delay) * 2 + Duration::from_secs(120)
}
