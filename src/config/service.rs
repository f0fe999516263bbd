//! `[service]`: the operator service's listener, tokens, key-encryption key
//! and profiles.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{de_duration, MAX_LEAF_VALIDITY};
use crate::model::service::Role;

/// `[service]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Serve the REST API (HTTPS, with the ACME listener's certificate).
    pub enabled: bool,
    pub listen: SocketAddr,
    /// `[[service.tokens]]`: bearer tokens and their roles.
    pub tokens: Vec<TokenConfig>,
    /// Key-encryption key for archived private keys: 32 bytes, base64.
    pub kek: Option<String>,
    /// Lifetime of a download token.
    #[serde(deserialize_with = "de_duration")]
    pub download_token_lifetime: Duration,
    /// Most items of one list page.
    pub max_page: u32,
    /// URLs told of every renewal and revocation made through the service.
    pub webhooks: Vec<String>,
    /// HMAC-SHA256 key (base64, at least 16 bytes) signing webhook bodies.
    pub webhook_secret: Option<String>,
    /// Attempts per delivery before it is marked failed.
    pub webhook_max_attempts: u32,
    /// `[service.profiles.NAME]`; without any, `server` and `device`.
    pub profiles: BTreeMap<String, ServiceProfileConfig>,
    /// `[service.console]`: the web console under `/ui/`.
    pub console: ConsoleConfig,
}

/// `[service.console]`: the operator web console served by the service
/// listener under `/ui/` (docs/SERVICE.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console (only while the service is enabled).
    pub enabled: bool,
    /// A session ends this long after sign-in, whatever happens.
    #[serde(deserialize_with = "de_duration")]
    pub session_lifetime: Duration,
    /// A session ends after this long without a request.
    #[serde(deserialize_with = "de_duration")]
    pub session_idle: Duration,
    /// Most sessions held at once (memory bound); sign-in is refused
    /// while that many are live.
    pub max_sessions: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_lifetime: Duration::from_secs(8 * 3600),
            session_idle: Duration::from_secs(30 * 60),
            max_sessions: 10_000,
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            enabled: false,
            listen: "127.0.0.1:14443".parse().expect("valid literal address"),
            tokens: Vec::new(),
            kek: None,
            download_token_lifetime: Duration::from_secs(300),
            max_page: 500,
            webhooks: Vec::new(),
            webhook_secret: None,
            webhook_max_attempts: 8,
            profiles: default_profiles(),
            console: ConsoleConfig::default(),
        }
    }
}

/// `[[service.tokens]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who this is (shown as requester and approver; never the token).
    pub name: String,
    /// The bearer token itself (at least 16 characters).
    pub token: String,
    pub role: Role,
}

impl std::fmt::Debug for TokenConfig {
    /// Never shows the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// How a profile's requests are approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Issued at once.
    Auto,
    /// Waits for an agent.
    Manual,
}

/// `[service.profiles.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceProfileConfig {
    pub description: String,
    /// "rsa", "ec".
    pub key_types: Vec<String>,
    pub rsa_sizes: Vec<u32>,
    pub ec_sizes: Vec<u32>,
    /// Longest lifetime (a request may ask for less with `ttl`).
    #[serde(deserialize_with = "de_duration")]
    pub validity: Duration,
    /// "serverAuth", "clientAuth".
    pub extended_key_usages: Vec<String>,
    /// Parameters a request must give: "common_name", "names".
    pub required: Vec<String>,
    pub approval: Approval,
    /// Renewal is allowed this long before expiry (and the scheduler
    /// renews auto-renew certificates then).
    #[serde(deserialize_with = "de_duration")]
    pub renew_before: Duration,
    /// Keep generated private keys, sealed under the key-encryption key.
    pub archive_keys: bool,
    /// How long after issuance the key may be downloaded; later, only
    /// through a recovery request.
    #[serde(deserialize_with = "de_duration")]
    pub key_download_window: Duration,
    /// Distinct agents who must approve the recovery of an archived key.
    pub recovery_approvals: u32,
}

impl Default for ServiceProfileConfig {
    fn default() -> Self {
        ServiceProfileConfig {
            description: String::new(),
            key_types: vec!["rsa".into(), "ec".into()],
            rsa_sizes: vec![2048, 3072, 4096],
            ec_sizes: vec![256, 384],
            validity: Duration::from_secs(90 * 86400),
            extended_key_usages: vec!["serverAuth".into(), "clientAuth".into()],
            required: Vec::new(),
            approval: Approval::Auto,
            renew_before: Duration::from_secs(30 * 86400),
            archive_keys: true,
            key_download_window: Duration::from_secs(86400),
            recovery_approvals: 2,
        }
    }
}

/// `server` (TLS servers, names required, automatic) and `device`
/// (clients such as IoT things: a common name, manual approval).
pub fn default_profiles() -> BTreeMap<String, ServiceProfileConfig> {
    BTreeMap::from([
        (
            "server".to_owned(),
            ServiceProfileConfig {
                description: "TLS server certificates, issued at once".into(),
                extended_key_usages: vec!["serverAuth".into()],
                required: vec!["names".into()],
                ..ServiceProfileConfig::default()
            },
        ),
        (
            "device".to_owned(),
            ServiceProfileConfig {
                description: "Client certificates for devices, approved by an agent".into(),
                extended_key_usages: vec!["clientAuth".into()],
                required: vec!["common_name".into()],
                approval: Approval::Manual,
                validity: Duration::from_secs(365 * 86400),
                ..ServiceProfileConfig::default()
            },
        ),
    ])
}

impl ServiceConfig {
    /// The webhook secret, decoded (standard or URL-safe base64).
    pub fn webhook_secret_bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        let s = self.webhook_secret.as_deref()?.trim();
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('='))
            })
            .ok()
    }

    /// Cross-field checks, with messages naming the field.
    ///
    /// A `kek` that is set must decode (base64 of exactly 32 bytes) even
    /// while the service is off: it is checked here, at load, so that a bad
    /// key stops `acme-ca serve` before anything is created on disk, and
    /// `acme-ca check-config` reports it too.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(kek) = &self.kek {
            let why = match decode_key_text(kek.trim()) {
                Ok(mut bytes) => {
                    let n = bytes.len();
                    bytes.fill(0);
                    (n != KEK_LEN).then(|| {
                        format!("the key-encryption key must decode to exactly {KEK_LEN} bytes, got {n}")
                    })
                }
                Err(e) => Some(format!("the key-encryption key is not valid base64: {e}")),
            };
            if let Some(why) = why {
                return Err(format!(
                    "service.kek: {why} (make one with: openssl rand -base64 32)"
                ));
            }
        }
        if !self.enabled {
            return Ok(());
        }
        self.validate_tokens()?;
        if self.download_token_lifetime.is_zero()
            || self.download_token_lifetime > Duration::from_secs(3600)
        {
            return Err("service.download_token_lifetime must be between 1s and 1h".into());
        }
        if self.max_page == 0 || self.max_page > 10_000 {
            return Err("service.max_page must be between 1 and 10000".into());
        }
        self.console.validate()?;
        if self.profiles.is_empty() {
            return Err("service.profiles: at least one profile".into());
        }
        self.validate_webhooks()?;
        for (name, p) in &self.profiles {
            if name.is_empty() || name.len() > 64 {
                return Err(format!(
                    "service.profiles.{}: a profile name is 1 to 64 characters",
                    name.escape_debug()
                ));
            }
            p.validate(self.kek.is_some())
                .map_err(|what| format!("service.profiles.{}: {what}", name.escape_debug()))?;
        }
        Ok(())
    }

    fn validate_tokens(&self) -> Result<(), String> {
        if self.tokens.is_empty() {
            return Err("service.tokens: the service needs at least one token".into());
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.tokens {
            if t.name.is_empty() || t.name.len() > 64 {
                return Err("service.tokens: a token's name is 1 to 64 characters".into());
            }
            if !names.insert(t.name.as_str()) {
                return Err(format!(
                    "service.tokens: the name {:?} is used twice",
                    t.name
                ));
            }
            if t.token.len() < 16 || t.token.len() > 512 {
                return Err(format!(
                    "service.tokens ({:?}): a token is 16 to 512 characters",
                    t.name
                ));
            }
        }
        Ok(())
    }

    fn validate_webhooks(&self) -> Result<(), String> {
        for url in &self.webhooks {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
                return Err(format!("service.webhooks: {url:?} is not an http(s) URL"));
            }
        }
        if let Some(s) = &self.webhook_secret {
            if self.webhook_secret_bytes().is_none_or(|b| b.len() < 16) {
                return Err(format!(
                    "service.webhook_secret must be base64 of at least 16 bytes (it has {} characters)",
                    s.len()
                ));
            }
        }
        if self.webhook_max_attempts == 0 || self.webhook_max_attempts > 50 {
            return Err("service.webhook_max_attempts must be between 1 and 50".into());
        }
        Ok(())
    }
}

impl ConsoleConfig {
    fn validate(&self) -> Result<(), String> {
        if self.session_lifetime < Duration::from_secs(60)
            || self.session_lifetime > Duration::from_secs(7 * 86400)
        {
            return Err("service.console.session_lifetime must be between 1m and 7d".into());
        }
        if self.session_idle < Duration::from_secs(60) || self.session_idle > self.session_lifetime
        {
            return Err(
                "service.console.session_idle must be at least 1m and at most session_lifetime"
                    .into(),
            );
        }
        if self.max_sessions == 0 || self.max_sessions > 1_000_000 {
            return Err("service.console.max_sessions must be between 1 and 1000000".into());
        }
        Ok(())
    }
}

impl ServiceProfileConfig {
    /// The profile's own fields; `has_kek`: whether `service.kek` is set.
    fn validate(&self, has_kek: bool) -> Result<(), String> {
        if self.validity.is_zero() || self.validity > MAX_LEAF_VALIDITY {
            return Err("validity must be between 1s and 398 days".into());
        }
        if self.key_types.is_empty() || self.key_types.iter().any(|k| k != "rsa" && k != "ec") {
            return Err("key_types lists \"rsa\" and/or \"ec\"".into());
        }
        if self
            .rsa_sizes
            .iter()
            .any(|s| ![2048, 3072, 4096].contains(s))
        {
            return Err("rsa_sizes are among 2048, 3072, 4096".into());
        }
        if self.ec_sizes.iter().any(|s| ![256, 384].contains(s)) {
            return Err("ec_sizes are among 256, 384".into());
        }
        if self.extended_key_usages.is_empty()
            || self
                .extended_key_usages
                .iter()
                .any(|e| e != "serverAuth" && e != "clientAuth")
        {
            return Err("extended_key_usages lists serverAuth and/or clientAuth".into());
        }
        if self
            .required
            .iter()
            .any(|r| r != "common_name" && r != "names")
        {
            return Err("required lists \"common_name\" and/or \"names\"".into());
        }
        if self.renew_before >= self.validity {
            return Err("renew_before must be shorter than validity".into());
        }
        if self.archive_keys && !has_kek {
            return Err("archive_keys needs service.kek (32 bytes, base64)".into());
        }
        if self.recovery_approvals == 0 || self.recovery_approvals > 10 {
            return Err("recovery_approvals must be between 1 and 10".into());
        }
        Ok(())
    }
}

/// Bytes of a key-encryption key (AES-256-GCM).
pub const KEK_LEN: usize = 32;

/// Value of one base64 digit in either alphabet.
fn base64_digit(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes key text (`service.kek`): base64 in the standard or URL-safe
/// alphabet, with or without `=` padding. Refuses bad characters, impossible lengths, wrong padding
/// and unused low bits that are not zero (so each value has one spelling).
pub fn decode_key_text(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.trim_end_matches('=');
    let padding = text.len() - digits.len();
    if padding > 0 && (padding > 2 || !text.len().is_multiple_of(4)) {
        return Err("wrong amount of '=' padding".to_owned());
    }
    if digits.len() % 4 == 1 {
        return Err(format!(
            "{} base64 digits cannot encode whole bytes",
            digits.len()
        ));
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for (i, c) in digits.bytes().enumerate() {
        let v = base64_digit(c)
            .ok_or_else(|| format!("character at position {} is not a base64 digit", i + 1))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        out.fill(0);
        return Err("the last digit has unused bits set (not canonical base64)".to_owned());
    }
    Ok(out)
}
