//! The rules a loaded configuration must meet beyond its types, checked
//! once at load (by `acme-ca serve` before anything is created on disk, and
//! by `acme-ca check-config`). Each section checks its own fields; an error
//! is one line naming the field.

use super::{
    AcmeConfig, CaConfig, Config, ProfileConfig, ServerConfig, StatusConfig, StoreConfig,
    ValidationConfig, MAX_ALTERNATE_ROOTS, MAX_CHAIN_LENGTH, MAX_LEAF_VALIDITY,
};
use crate::jose::eab::{MacKey, MAX_KID_LEN};
use crate::protocol::names::{check_issuer_domain_name, MAX_ISSUER_DOMAIN_NAMES, SPECIAL_USE};

impl Config {
    /// Checks every section, then the rules that span sections.
    pub fn validate(&self) -> Result<(), String> {
        self.acme.validate_names()?;
        self.validation.validate(&self.acme)?;
        self.server.validate()?;
        self.acme.validate_limits()?;
        self.ca.validate()?;
        if self.server.max_connections == 0 || self.validation.concurrency == 0 {
            return Err("server.max_connections and validation.concurrency must be > 0".into());
        }
        self.validate_profiles()?;
        self.acme.validate_eab()?;
        self.status.validate()?;
        self.service.validate()?;
        self.rate_limits.validate()?;
        self.chaos.validate()?;
        self.store.validate()?;
        Ok(())
    }

    fn validate_profiles(&self) -> Result<(), String> {
        if self.profiles.is_empty() {
            return Err("at least one profile must be defined".into());
        }
        if !self.profiles.contains_key(&self.acme.default_profile) {
            return Err(format!(
                "acme.default_profile {:?} is not a defined profile ({})",
                self.acme.default_profile,
                self.profiles
                    .keys()
                    .map(|k| k.escape_debug().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for (name, p) in &self.profiles {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(format!(
                    "profiles.{}: a profile name is 1-64 letters, digits, '-', '_' or '.'",
                    name.escape_debug()
                ));
            }
            p.validate(self.status.enabled)
                .map_err(|what| format!("profiles.{}: {what}", name.escape_debug()))?;
        }
        Ok(())
    }
}

impl ProfileConfig {
    /// The profile's own fields; `status_enabled`: whether the status
    /// listener that serves OCSP and CRLs is on.
    fn validate(&self, status_enabled: bool) -> Result<(), String> {
        if self.validity.is_zero() || self.validity > MAX_LEAF_VALIDITY {
            return Err(format!(
                "validity must be between 1s and {} days",
                MAX_LEAF_VALIDITY.as_secs() / 86400
            ));
        }
        for eku in &self.extended_key_usages {
            if eku != "serverAuth" && eku != "clientAuth" {
                return Err(format!(
                    "unknown extended key usage {eku:?} (serverAuth, clientAuth)"
                ));
            }
        }
        if self.identifier_types.is_empty() {
            return Err("identifier_types must list \"dns\", \"ip\" or both".into());
        }
        for t in &self.identifier_types {
            if t != "dns" && t != "ip" {
                return Err(format!("unknown identifier type {t:?} (dns, ip)"));
            }
        }
        if (self.ocsp || self.crl) && !status_enabled {
            return Err("ocsp and crl need the status listener ([status] enabled = true)".into());
        }
        Ok(())
    }
}

impl AcmeConfig {
    fn validate_names(&self) -> Result<(), String> {
        for d in &self.allowed_special_use_domains {
            if !SPECIAL_USE.contains(&d.as_str()) {
                return Err(format!(
                    "acme.allowed_special_use_domains: {d:?} is not one of {}",
                    SPECIAL_USE.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), String> {
        if !(1024..=2048).contains(&self.min_rsa_bits) {
            return Err("acme.min_rsa_bits must be from 1024 to 2048".into());
        }
        if self.orders_per_page == 0 || self.orders_per_page > 1000 {
            return Err("acme.orders_per_page must be between 1 and 1000".into());
        }
        if self.authz_reuse > 100 {
            return Err("acme.authz_reuse is a percentage (0-100)".into());
        }
        Ok(())
    }

    fn validate_eab(&self) -> Result<(), String> {
        if self.external_account_required && self.eab_keys.is_empty() {
            return Err(
                "acme.external_account_required needs at least one key in [acme.eab_keys]".into(),
            );
        }
        for (kid, key) in &self.eab_keys {
            if kid.is_empty() || kid.len() > MAX_KID_LEN {
                return Err(format!(
                    "acme.eab_keys: key ids are 1 to {MAX_KID_LEN} bytes"
                ));
            }
            MacKey::from_b64url(key)
                .map_err(|e| format!("acme.eab_keys.{}: {}", kid.escape_debug(), e.detail))?;
        }
        Ok(())
    }
}

impl ValidationConfig {
    fn validate(&self, acme: &AcmeConfig) -> Result<(), String> {
        if !self.dns_persist_01 {
            return Ok(());
        }
        let names = self.issuer_domain_names(acme);
        if names.is_empty() {
            return Err("validation.dns_persist_01 needs issuer domain names: set validation.dns_persist_issuer_domain_names or acme.caa_identities".into());
        }
        if names.len() > MAX_ISSUER_DOMAIN_NAMES {
            return Err(format!(
                "dns-persist-01 allows at most {MAX_ISSUER_DOMAIN_NAMES} issuer domain names; {} are set",
                names.len()
            ));
        }
        for n in names {
            check_issuer_domain_name(n)
                .map_err(|e| format!("dns-persist-01 issuer domain name: {e}"))?;
        }
        Ok(())
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), String> {
        if self.max_connections_per_client == 0 {
            return Err("server.max_connections_per_client must be at least 1".into());
        }
        if self.idle_timeout <= self.request_timeout {
            return Err(
                "server.idle_timeout must be longer than server.request_timeout (a request in progress must never look idle)".into(),
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("server.tls_cert and server.tls_key go together".into());
        }
        if let Some(url) = &self.external_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.ends_with('/') {
                return Err(
                    "server.external_url must be an http(s) URL without a trailing slash".into(),
                );
            }
        }
        if self.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".into());
        }
        Ok(())
    }
}

impl CaConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(v) = self.leaf_validity {
            if v.is_zero() || v > MAX_LEAF_VALIDITY {
                return Err(format!(
                    "ca.leaf_validity must be between 1s and {} days",
                    MAX_LEAF_VALIDITY.as_secs() / 86400
                ));
            }
        }
        if self.chain_length == 0 || self.chain_length > MAX_CHAIN_LENGTH {
            return Err(format!(
                "ca.chain_length must be between 1 and {MAX_CHAIN_LENGTH}"
            ));
        }
        if self.alternate_roots > MAX_ALTERNATE_ROOTS {
            return Err(format!(
                "ca.alternate_roots must be at most {MAX_ALTERNATE_ROOTS}"
            ));
        }
        Ok(())
    }
}

impl StatusConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.ocsp_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || !url.is_ascii() {
                return Err("status.ocsp_url must be an http(s) URL".into());
            }
        }
        if let Some(url) = &self.base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
                return Err(
                    "status.base_url must be an http(s) URL without a trailing slash".into(),
                );
            }
        }
        if self.crl_refresh.is_zero() || self.crl_refresh >= self.crl_lifetime {
            return Err(
                "status.crl_refresh must be above zero and below status.crl_lifetime".into(),
            );
        }
        if self.ocsp_lifetime.is_zero() {
            return Err("status.ocsp_lifetime must be above zero".into());
        }
        Ok(())
    }
}

impl StoreConfig {
    fn validate(&self) -> Result<(), String> {
        if !(2..=1000).contains(&self.max_connections) {
            return Err(
                "store.max_connections must be 2 to 1000 (the statements batched across \
                 requests have connections of their own)"
                    .into(),
            );
        }
        let Some(url) = &self.url else {
            return Ok(());
        };
        if self.path.is_some() {
            return Err("store.url and store.path cannot both be set: one database".into());
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(
                "store.url (or ACME_CA_DATABASE_URL) must be a postgres:// or postgresql:// URL"
                    .into(),
            );
        }
        if url.len() > 4096 || url.chars().any(char::is_control) {
            return Err("store.url is not a valid URL".into());
        }
        Ok(())
    }
}
