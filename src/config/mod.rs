//! Typed configuration: a TOML file (every field optional, unknown fields
//! refused), then command-line flags, then the Pebble-compatible environment
//! variables, mapped onto fields in [`Config::apply_env`] and nowhere else.
//! `docs/CONFIG.md` documents every field; `docs/acme-ca.example.toml` is the
//! annotated example.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod ca;
pub mod ratelimit;
pub mod service;
mod validate;

pub use ca::{
    CaConfig, KeyAlgorithm, NameStyle, MAX_ALTERNATE_ROOTS, MAX_CHAIN_LENGTH, MAX_LEAF_VALIDITY,
};

#[cfg(test)]
mod tests;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub ca: CaConfig,
    pub acme: AcmeConfig,
    pub validation: ValidationConfig,
    pub store: StoreConfig,
    pub status: StatusConfig,
    pub management: ManagementConfig,
    /// `[metrics]`: a listener of its own for the monitoring endpoints.
    pub metrics: MetricsConfig,
    /// `[service]`: the operator service (REST API).
    pub service: service::ServiceConfig,
    /// `[profiles.<name>]`: certificate profiles. When the file has no
    /// `[profiles]` table at all, `classic` and `shortlived` are defined.
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// `[log]`: how log lines are written.
    pub log: LogConfig,
    /// `[rate_limits]`: production rate limits (docs/RATELIMITS.md).
    pub rate_limits: ratelimit::RateLimitsConfig,
    /// `[chaos]`: faults injected on purpose (docs/CHAOS.md).
    pub chaos: crate::chaos::ChaosConfig,
}

/// How hard commits are flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Certificate records are flushed before the response; other writes
    /// survive a process crash but may lose their last second to a power
    /// loss.
    #[default]
    Issuance,
    /// Every transaction is flushed before it returns.
    Full,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// "text" (one human-readable line per event; colours only on a
    /// terminal) or "json" (one JSON object per line).
    pub format: LogFormat,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[management]`: Pebble's management interface (HTTPS, no
/// authentication: it hands out the CA's private keys). For tests only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementConfig {
    /// Address of the management listener; unset: no listener.
    pub listen: Option<SocketAddr>,
}

/// `[metrics]`: Prometheus metrics and the health and readiness checks
/// (docs/OPERATIONS.md). They are always served on the status listener;
/// this adds a plain-HTTP listener that serves only them, for a scraper
/// that should not reach the CRL and OCSP or when the status listener is
/// off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the metrics listener; unset: no listener of its own.
    pub listen: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            ca: CaConfig::default(),
            acme: AcmeConfig::default(),
            validation: ValidationConfig::default(),
            store: StoreConfig::default(),
            status: StatusConfig::default(),
            management: ManagementConfig::default(),
            metrics: MetricsConfig::default(),
            service: Default::default(),
            profiles: default_profiles(),
            log: LogConfig::default(),
            rate_limits: Default::default(),
            chaos: Default::default(),
        }
    }
}

/// `[profiles.<name>]`: what certificates of one profile look like and who
/// may ask for them (draft-aaron-acme-profiles).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileConfig {
    /// Shown in the directory's `meta.profiles`.
    pub description: String,
    /// Certificate lifetime (notAfter - notBefore).
    #[serde(deserialize_with = "de_duration")]
    pub validity: Duration,
    /// Put the first DNS name in the subject common name.
    pub common_name: bool,
    /// Extended key usages: "serverAuth", "clientAuth".
    pub extended_key_usages: Vec<String>,
    /// keyUsage keyEncipherment for RSA keys.
    pub rsa_key_encipherment: bool,
    /// Identifier types orders of this profile may hold: "dns", "ip".
    pub identifier_types: Vec<String>,
    /// Put the OCSP responder URL in the AIA (and allow Must-Staple).
    pub ocsp: bool,
    /// Put the CRL distribution point in the certificate.
    pub crl: bool,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            description: String::new(),
            validity: Duration::from_secs(90 * 86400),
            common_name: true,
            extended_key_usages: vec!["serverAuth".into(), "clientAuth".into()],
            rsa_key_encipherment: true,
            identifier_types: vec!["dns".into(), "ip".into()],
            ocsp: true,
            crl: true,
        }
    }
}

/// `classic` (90 days, the Baseline Requirements' usual certificate with
/// OCSP and CRL) and `shortlived` (160 hours, no common name, serverAuth
/// only, no revocation pointers, as short-lived certificates need none).
pub fn default_profiles() -> BTreeMap<String, ProfileConfig> {
    let mut m = BTreeMap::new();
    m.insert(
        "classic".to_owned(),
        ProfileConfig {
            description: "90-day certificates with OCSP and CRL".into(),
            ..ProfileConfig::default()
        },
    );
    m.insert(
        "shortlived".to_owned(),
        ProfileConfig {
            description: "160-hour certificates without common name or revocation URLs".into(),
            validity: Duration::from_secs(160 * 3600),
            common_name: false,
            extended_key_usages: vec!["serverAuth".into()],
            rsa_key_encipherment: false,
            ocsp: false,
            crl: false,
            ..ProfileConfig::default()
        },
    );
    m
}

/// `[status]`: the plain-HTTP revocation status listener (CRLs, OCSP, the
/// issuer certificate), whose URLs go into every certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Serve the status listener (otherwise certificates carry no CRL or
    /// OCSP URL, and caIssuers points at the HTTPS listener).
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Base URL written into certificates, e.g. "http://status.example.com";
    /// default "http://<listen address>" (localhost for a wildcard address).
    pub base_url: Option<String>,
    /// nextUpdate - thisUpdate of a CRL.
    #[serde(deserialize_with = "de_duration")]
    pub crl_lifetime: Duration,
    /// A new CRL is signed at least this often (and at every revocation).
    #[serde(deserialize_with = "de_duration")]
    pub crl_refresh: Duration,
    /// nextUpdate - thisUpdate of an OCSP response.
    #[serde(deserialize_with = "de_duration")]
    pub ocsp_lifetime: Duration,
    /// Sign OCSP responses with a delegated responder certificate (issued
    /// by the intermediate at each start) instead of the intermediate.
    pub ocsp_delegated: bool,
    /// OCSP URL written into certificates instead of this listener's
    /// (an outside responder, as Pebble's `ocspResponderURL`).
    pub ocsp_url: Option<String>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            enabled: true,
            listen: "0.0.0.0:14080".parse().expect("valid literal address"),
            base_url: None,
            crl_lifetime: Duration::from_secs(7 * 86400),
            crl_refresh: Duration::from_secs(6 * 3600),
            ocsp_lifetime: Duration::from_secs(4 * 86400),
            ocsp_delegated: false,
            ocsp_url: None,
        }
    }
}

impl StatusConfig {
    /// The base URL for status URLs, given the address actually bound.
    pub fn base_url_for(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.base_url {
            return url.clone();
        }
        match bound.ip() {
            ip if ip.is_unspecified() => format!("http://localhost:{}", bound.port()),
            IpAddr::V4(v4) => format!("http://{v4}:{}", bound.port()),
            IpAddr::V6(v6) => format!("http://[{v6}]:{}", bound.port()),
        }
    }
}

/// `[server]`: listeners and limits of the HTTP front end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTPS ACME listener.
    pub listen: SocketAddr,
    /// Where the CA, keys and database live.
    pub data_dir: PathBuf,
    /// Base URL clients use (e.g. "https://acme.example.com"). When unset,
    /// URLs are built from each request's Host.
    pub external_url: Option<String>,
    /// PEM certificate chain and key for the listener; when unset, the CA
    /// issues one for the names in `tls_names` at every start.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Names (DNS or IP) the generated listener certificate covers.
    pub tls_names: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections one client address may hold at once, on each listener;
    /// one more is closed at once.
    pub max_connections_per_client: usize,
    /// A connection that reads and writes nothing this long is closed
    /// (longer than `request_timeout`, which bounds a request in progress).
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Time allowed for a TLS handshake and for reading request headers.
    #[serde(deserialize_with = "de_duration")]
    pub handshake_timeout: Duration,
    /// Time allowed for a whole request, body and handling included.
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// The directory lists Pebble's resource paths (`/nonce-plz`,
    /// `/sign-me-up`, …) instead of `/acme/…`; both sets are always served,
    /// and `/dir` is always an alias of `/directory`.
    pub pebble_paths: bool,
    /// One `info` log line per ACME request: method, route, path, status,
    /// problem type, account and duration (as Pebble, which logs every
    /// request).
    pub log_requests: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:14000".parse().expect("valid literal address"),
            data_dir: PathBuf::from("data"),
            external_url: None,
            tls_cert: None,
            tls_key: None,
            tls_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            max_body_bytes: 64 * 1024,
            max_connections: 4096,
            max_connections_per_client: 256,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            pebble_paths: false,
            log_requests: true,
        }
    }
}

/// `[acme]`: protocol settings shown in the directory and lifetimes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// Directory meta `termsOfService`.
    pub terms_of_service: Option<String>,
    /// Directory meta `website`.
    pub website: Option<String>,
    /// Directory meta `caaIdentities`.
    pub caa_identities: Vec<String>,
    /// Whether IP address identifiers (RFC 8738) are accepted.
    pub allow_ip_identifiers: bool,
    /// Names under these domains are refused.
    pub blocked_domains: Vec<String>,
    #[serde(deserialize_with = "de_duration")]
    pub order_lifetime: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub pending_authz_lifetime: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub valid_authz_lifetime: Duration,
    /// How long an unused nonce stays valid.
    #[serde(deserialize_with = "de_duration")]
    pub nonce_lifetime: Duration,
    /// Orders per page of an account's orders list.
    pub orders_per_page: u32,
    /// `Retry-After` sent with processing orders (and authorizations, unless
    /// `authz_retry_after` is set).
    #[serde(deserialize_with = "de_duration")]
    pub retry_after: Duration,
    /// `Retry-After` sent with processing authorizations and challenges.
    #[serde(deserialize_with = "de_opt_duration")]
    pub authz_retry_after: Option<Duration>,
    /// When newOrder names no profile, choose one at random instead of
    /// `default_profile` (Pebble's behaviour, to keep clients honest).
    pub random_profile: bool,
    /// Percentage (0-100) of good nonces refused as badNonce, to exercise
    /// clients' retries (Pebble's PEBBLE_WFE_NONCEREJECT).
    pub bad_nonce_percent: u8,
    /// Profile used when newOrder names none.
    pub default_profile: String,
    /// Percentage (0-100) of new orders that get an account's still-valid
    /// authorization for an identifier back instead of a new one.
    pub authz_reuse: u8,
    /// ARI (RFC 9773): `Retry-After` of renewalInfo answers.
    #[serde(deserialize_with = "de_duration")]
    pub ari_retry_after: Duration,
    /// ARI: `explanationURL` of renewalInfo answers.
    pub ari_explanation_url: Option<String>,
    /// newAccount needs an external account binding (RFC 8555 §7.3.4).
    pub external_account_required: bool,
    /// External account binding MAC keys: key identifier → base64url key.
    pub eab_keys: BTreeMap<String, String>,
    /// Special-use domains ("test", "example", "invalid", "localhost",
    /// "local", "onion", "internal", "alt", "home.arpa") whose names are
    /// certified all the same; by default none (`acme-ca pebble`: all).
    pub allowed_special_use_domains: Vec<String>,
    /// Refuse public suffixes ("co.uk") and wildcards directly under one
    /// ("*.co.uk"), from the Public Suffix List (`acme-ca pebble`: off).
    pub public_suffix_check: bool,
    /// Smallest RSA key (bits) accepted for account keys and CSRs: 2048 by
    /// default; 1024 to 2048 (`acme-ca pebble` uses 1024, as Pebble).
    pub min_rsa_bits: usize,
    /// Let one external account key bind any number of accounts (Pebble's
    /// behaviour). Off: a key id binds one account, recorded in the store.
    pub eab_key_reuse: bool,
    /// Serve a revoked certificate at its URL (RFC 8555 does not say; Boulder
    /// does). Off: 404, as Pebble.
    pub serve_revoked_certificates: bool,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            terms_of_service: None,
            website: None,
            caa_identities: Vec::new(),
            allow_ip_identifiers: true,
            blocked_domains: Vec::new(),
            order_lifetime: Duration::from_secs(7 * 86400),
            pending_authz_lifetime: Duration::from_secs(7 * 86400),
            valid_authz_lifetime: Duration::from_secs(30 * 86400),
            nonce_lifetime: Duration::from_secs(3600),
            orders_per_page: 50,
            retry_after: Duration::from_secs(1),
            authz_retry_after: None,
            random_profile: false,
            bad_nonce_percent: 0,
            default_profile: "classic".into(),
            authz_reuse: 100,
            ari_retry_after: Duration::from_secs(6 * 3600),
            ari_explanation_url: None,
            external_account_required: false,
            eab_keys: BTreeMap::new(),
            allowed_special_use_domains: Vec::new(),
            public_suffix_check: true,
            min_rsa_bits: 2048,
            eab_key_reuse: false,
            serve_revoked_certificates: true,
        }
    }
}

/// `[validation]`: the validation authority.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Treat every challenge as fulfilled without contacting anything (for
    /// development and CI only; Pebble's PEBBLE_VA_ALWAYS_VALID).
    pub always_valid: bool,
    /// Validations run at once; more wait in the queue.
    pub concurrency: usize,
    /// Validations waiting at most; beyond, challenge POSTs are refused
    /// with rateLimited until the queue drains.
    pub queue_size: usize,
    /// Time allowed for one validation attempt.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Each validation waits a random time up to this long before it
    /// starts, under this long, so clients must poll (Pebble's
    /// PEBBLE_VA_SLEEPTIME).
    #[serde(deserialize_with = "de_duration")]
    pub random_delay: Duration,
    /// Port the http-01 validator connects to (Pebble's `httpPort`).
    pub http_port: u16,
    /// HTTPS port an http-01 redirect may lead to.
    pub https_port: u16,
    /// http-01 redirects may lead to any port (Pebble); otherwise only 80,
    /// 443, `http_port` and `https_port`.
    pub redirect_any_port: bool,
    /// Port the tls-alpn-01 validator connects to (Pebble's `tlsPort`).
    pub tls_port: u16,
    /// DNS servers of the VA's own resolver ("host:port"); empty: the
    /// nameservers listed in /etc/resolv.conf, asked directly.
    pub dns_servers: Vec<SocketAddr>,
    /// Time allowed for one DNS query.
    #[serde(deserialize_with = "de_duration")]
    pub dns_timeout: Duration,
    /// Randomized letter case in query names (DNS 0x20), against off-path
    /// spoofing: "auto" (on when a DNS server is not on loopback), "on" or
    /// "off". Negative answers are asked again over TCP without it, so a
    /// server that matches names case-sensitively still answers.
    pub dns_case_randomization: CaseRandomization,
    /// Let the VA connect to loopback, private and other special-purpose
    /// addresses (development and test setups only).
    pub allow_reserved_addresses: bool,
    /// Check CAA records (RFC 8659, RFC 8657) before issuance.
    pub caa: bool,
    /// Finalize checks CAA again when an authorization was validated longer
    /// ago than this.
    #[serde(deserialize_with = "de_duration")]
    pub caa_recheck_after: Duration,
    /// Offer dns-account-01 (draft-ietf-acme-dns-account-label) for DNS
    /// names, wildcards included.
    pub dns_account_01: bool,
    /// Offer dns-persist-01 (draft-ietf-acme-dns-persist) for DNS names,
    /// wildcards included. Off by default (docs/VALIDATION.md says why).
    pub dns_persist_01: bool,
    /// The issuer domain names a dns-persist-01 record may name (and the
    /// challenge lists): lower-case A-labels without a trailing dot, at most
    /// 10. Empty: `acme.caa_identities`.
    pub dns_persist_issuer_domain_names: Vec<String>,
}

impl ValidationConfig {
    /// The issuer domain names dns-persist-01 uses: the configured ones, or
    /// else the directory's CAA identities.
    pub fn issuer_domain_names<'a>(&'a self, acme: &'a AcmeConfig) -> &'a [String] {
        if self.dns_persist_issuer_domain_names.is_empty() {
            &acme.caa_identities
        } else {
            &self.dns_persist_issuer_domain_names
        }
    }
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            always_valid: false,
            concurrency: 64,
            queue_size: 4096,
            timeout: Duration::from_secs(30),
            random_delay: Duration::ZERO,
            http_port: 80,
            https_port: 443,
            redirect_any_port: false,
            tls_port: 443,
            dns_servers: Vec::new(),
            dns_timeout: Duration::from_secs(5),
            dns_case_randomization: CaseRandomization::Auto,
            allow_reserved_addresses: false,
            caa: true,
            caa_recheck_after: Duration::from_secs(8 * 3600),
            dns_account_01: true,
            dns_persist_01: false,
            dns_persist_issuer_domain_names: Vec::new(),
        }
    }
}

/// `validation.dns_case_randomization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseRandomization {
    /// On when any DNS server is off loopback (no off-path attacker can
    /// reach a loopback exchange).
    #[default]
    Auto,
    On,
    Off,
}

impl CaseRandomization {
    /// Whether queries to `servers` carry 0x20.
    pub fn applies_to(self, servers: &[SocketAddr]) -> bool {
        match self {
            CaseRandomization::On => true,
            CaseRandomization::Off => false,
            CaseRandomization::Auto => servers.iter().any(|s| !s.ip().is_loopback()),
        }
    }
}

/// `[store]`: the database.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite database file; default `<data_dir>/acme-ca.sqlite3`.
    pub path: Option<PathBuf>,
    /// "issuance" (default) or "full"; see docs/CONFIG.md.
    pub durability: Durability,
    /// A PostgreSQL URL (`postgres://user:password@host:port/db`): the
    /// store is that database instead of the SQLite file, and several
    /// instances may share it. Also `ACME_CA_DATABASE_URL`.
    pub url: Option<String>,
    /// PostgreSQL: the most connections this instance opens (a quarter
    /// of them, one to four, for the statements batched across requests).
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            path: None,
            durability: Durability::default(),
            url: None,
            max_connections: 16,
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    // The URL may hold a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// The environment variable that sets `store.url`.
pub const DATABASE_URL_ENV: &str = "ACME_CA_DATABASE_URL";

impl Config {
    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// Parses TOML text; unknown sections and fields are refused. An error
    /// is one line: `line L, column C: message` (see [`toml_error_line`]).
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| toml_error_line(text, &e))
    }

    /// Applies Pebble's environment variables (the one place they are read).
    /// An empty variable counts as unset, as in Pebble.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("PEBBLE_VA_ALWAYS_VALID") {
            self.validation.always_valid = parse_env_bool("PEBBLE_VA_ALWAYS_VALID", &v)?;
        }
        if let Some(v) = get("PEBBLE_VA_SLEEPTIME") {
            let secs = parse_env_int("PEBBLE_VA_SLEEPTIME", &v, 1, 3600)?;
            self.validation.random_delay = Duration::from_secs(secs);
        }
        if let Some(v) = get("PEBBLE_VA_NOSLEEP") {
            if parse_env_bool("PEBBLE_VA_NOSLEEP", &v)? {
                self.validation.random_delay = Duration::ZERO;
            }
        }
        if let Some(v) = get("PEBBLE_WFE_NONCEREJECT") {
            self.acme.bad_nonce_percent =
                parse_env_int("PEBBLE_WFE_NONCEREJECT", &v, 0, 100)? as u8;
        }
        if let Some(v) = get("PEBBLE_AUTHZREUSE") {
            self.acme.authz_reuse = parse_env_int("PEBBLE_AUTHZREUSE", &v, 0, 100)? as u8;
        }
        if let Some(v) = get("PEBBLE_WFE_ORDERS_PER_PAGE") {
            self.acme.orders_per_page =
                parse_env_int("PEBBLE_WFE_ORDERS_PER_PAGE", &v, 1, 1000)? as u32;
        }
        if let Some(v) = get("PEBBLE_CHAIN_LENGTH") {
            self.ca.chain_length =
                parse_env_int("PEBBLE_CHAIN_LENGTH", &v, 1, u64::from(MAX_CHAIN_LENGTH))? as u32;
        }
        if let Some(v) = get("PEBBLE_ALTERNATE_ROOTS") {
            self.ca.alternate_roots = parse_env_int(
                "PEBBLE_ALTERNATE_ROOTS",
                &v,
                0,
                u64::from(MAX_ALTERNATE_ROOTS),
            )? as u32;
        }
        if let Some(v) = get(DATABASE_URL_ENV) {
            self.store.url = Some(v.trim().to_owned());
        }
        // PEBBLE_CHAOS_*: acme-ca's chaos knobs (docs/CHAOS.md).
        self.chaos.apply_env(get)?;
        Ok(())
    }

    /// The profiles in force: `[profiles]`, with `ca.leaf_validity` (when
    /// set) as the default profile's validity.
    pub fn effective_profiles(&self) -> BTreeMap<String, ProfileConfig> {
        let mut profiles = self.profiles.clone();
        if let (Some(v), Some(p)) = (
            self.ca.leaf_validity,
            profiles.get_mut(&self.acme.default_profile),
        ) {
            p.validity = v;
        }
        profiles
    }

    /// The database file.
    pub fn store_path(&self) -> PathBuf {
        self.store
            .path
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("acme-ca.sqlite3"))
    }
}

/// A TOML error on one line, for a log line or `acme-ca check-config`:
/// `line L, column C: message`, with the key of that line when the message
/// does not name it already (`invalid type: integer `1`, expected a
/// string` does not). The toml crate's own rendering spans several lines
/// and quotes the line, value included, which may be a secret.
fn toml_error_line(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(span) = e.span() else {
        return message;
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let key = text[line_start..]
        .lines()
        .next()
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !message.contains(k));
    match key {
        Some(key) => format!("line {line}, column {column}, field `{key}`: {message}"),
        None => format!("line {line}, column {column}: {message}"),
    }
}

fn parse_env_int(name: &str, v: &str, min: u64, max: u64) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{name}={v:?} must be a whole number from {min} to {max}"))
}

fn parse_env_bool(name: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{name}={v:?} is not a boolean (use 1 or 0)")),
    }
}

/// Parses durations written as "90d", "6h", "30m", "10s", "500ms", or a bare
/// number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (use e.g. \"90d\", \"6h\", \"30s\")"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration {s:?} is too large"))
    };
    match unit {
        "" | "s" => secs(1),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86400),
        _ => Err(format!("bad duration unit in {s:?} (ms, s, m, h or d)")),
    }
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(n) => Ok(Duration::from_secs(n)),
        Raw::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}
