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

use crate::ca::{CaSettings, KeyAlgorithm, MAX_ALTERNATE_ROOTS, MAX_CHAIN_LENGTH};
use crate::store::sqlite::Durability;

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
    pub service: crate::service::config::ServiceConfig,
    /// `[profiles.<name>]`: certificate profiles. When the file has no
    /// `[profiles]` table at all, `classic` and `shortlived` are defined.
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// `[log]`: how log lines are written.
    pub log: LogConfig,
    /// `[rate_limits]`: production rate limits (docs/RATELIMITS.md).
    pub rate_limits: crate::ratelimit::RateLimitsConfig,
    /// `[chaos]`: faults injected on purpose (docs/CHAOS.md).
    pub chaos: crate::chaos::ChaosConfig,
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

/// `[ca]`: the issuing hierarchy and leaf certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// Key algorithm of a generated root and intermediate.
    pub key_algorithm: KeyAlgorithm,
    pub root_cert: Option<PathBuf>,
    pub root_key: Option<PathBuf>,
    pub intermediate_cert: Option<PathBuf>,
    pub intermediate_key: Option<PathBuf>,
    /// Prefix of generated CA names.
    pub name: String,
    /// How generated CA names read: "acme-ca" ("<name> root <tag>",
    /// "<name> intermediate <tag>") or "pebble" ("<name> Root CA <tag>",
    /// "<name> Intermediate CA <tag>", as Pebble names its CAs).
    pub name_style: crate::ca::NameStyle,
    /// Intermediates per generated chain (1–4).
    pub chain_length: u32,
    /// Generated alternate chains, each with its own root (0–8).
    pub alternate_roots: u32,
    /// PEM files of operator-supplied alternate chains.
    pub alternate_chains: Vec<PathBuf>,
    /// Older setting, kept for existing files: when set, the validity of
    /// the default profile's certificates. Profiles set their own.
    #[serde(deserialize_with = "de_opt_duration")]
    pub leaf_validity: Option<Duration>,
    /// How far before the issuance time notBefore is set, to tolerate
    /// clients whose clocks run slow.
    #[serde(deserialize_with = "de_duration")]
    pub backdate: Duration,
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            key_algorithm: KeyAlgorithm::default(),
            root_cert: None,
            root_key: None,
            intermediate_cert: None,
            intermediate_key: None,
            name: "acme-ca".into(),
            name_style: crate::ca::NameStyle::default(),
            chain_length: 1,
            alternate_roots: 0,
            alternate_chains: Vec::new(),
            leaf_validity: None,
            backdate: Duration::from_secs(60),
        }
    }
}

/// The longest leaf validity the CA/Browser Forum Baseline Requirements
/// allow (398 days, §6.3.2).
pub const MAX_LEAF_VALIDITY: Duration = Duration::from_secs(398 * 86400);

impl CaConfig {
    pub fn settings(&self) -> CaSettings {
        CaSettings {
            key_algorithm: self.key_algorithm,
            root_cert: self.root_cert.clone(),
            root_key: self.root_key.clone(),
            intermediate_cert: self.intermediate_cert.clone(),
            intermediate_key: self.intermediate_key.clone(),
            name_prefix: self.name.clone(),
            name_style: self.name_style,
            chain_length: self.chain_length,
            alternate_roots: self.alternate_roots,
            alternate_chains: self.alternate_chains.clone(),
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite database file; default `<data_dir>/acme-ca.sqlite3`.
    pub path: Option<PathBuf>,
    /// "issuance" (default) or "full"; see docs/CONFIG.md.
    pub durability: Durability,
}

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
            self.ca.chain_length = parse_env_int(
                "PEBBLE_CHAIN_LENGTH",
                &v,
                1,
                u64::from(crate::ca::MAX_CHAIN_LENGTH),
            )? as u32;
        }
        if let Some(v) = get("PEBBLE_ALTERNATE_ROOTS") {
            self.ca.alternate_roots = parse_env_int(
                "PEBBLE_ALTERNATE_ROOTS",
                &v,
                0,
                u64::from(crate::ca::MAX_ALTERNATE_ROOTS),
            )? as u32;
        }
        // PEBBLE_CHAOS_*: acme-ca's chaos knobs (docs/CHAOS.md).
        self.chaos.apply_env(get)?;
        Ok(())
    }

    /// Checks cross-field rules once, at load.
    pub fn validate(&self) -> Result<(), String> {
        for d in &self.acme.allowed_special_use_domains {
            if !crate::ra::policy::SPECIAL_USE.contains(&d.as_str()) {
                return Err(format!(
                    "acme.allowed_special_use_domains: {d:?} is not one of {}",
                    crate::ra::policy::SPECIAL_USE.join(", ")
                ));
            }
        }
        if self.validation.dns_persist_01 {
            let names = self.validation.issuer_domain_names(&self.acme);
            if names.is_empty() {
                return Err("validation.dns_persist_01 needs issuer domain names: set validation.dns_persist_issuer_domain_names or acme.caa_identities".into());
            }
            let max = crate::va::dns_persist01::MAX_ISSUER_DOMAIN_NAMES;
            if names.len() > max {
                return Err(format!(
                    "dns-persist-01 allows at most {max} issuer domain names; {} are set",
                    names.len()
                ));
            }
            for n in names {
                crate::va::dns_persist01::check_issuer_domain_name(n)
                    .map_err(|e| format!("dns-persist-01 issuer domain name: {e}"))?;
            }
        }
        if self.server.max_connections_per_client == 0 {
            return Err("server.max_connections_per_client must be at least 1".into());
        }
        if self.server.idle_timeout <= self.server.request_timeout {
            return Err(
                "server.idle_timeout must be longer than server.request_timeout (a request in progress must never look idle)".into(),
            );
        }
        if !(1024..=2048).contains(&self.acme.min_rsa_bits) {
            return Err("acme.min_rsa_bits must be from 1024 to 2048".into());
        }
        if let Some(v) = self.ca.leaf_validity {
            if v.is_zero() || v > MAX_LEAF_VALIDITY {
                return Err(format!(
                    "ca.leaf_validity must be between 1s and {} days",
                    MAX_LEAF_VALIDITY.as_secs() / 86400
                ));
            }
        }
        if self.ca.chain_length == 0 || self.ca.chain_length > MAX_CHAIN_LENGTH {
            return Err(format!(
                "ca.chain_length must be between 1 and {MAX_CHAIN_LENGTH}"
            ));
        }
        if self.ca.alternate_roots > MAX_ALTERNATE_ROOTS {
            return Err(format!(
                "ca.alternate_roots must be at most {MAX_ALTERNATE_ROOTS}"
            ));
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err("server.tls_cert and server.tls_key go together".into());
        }
        if let Some(url) = &self.server.external_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.ends_with('/') {
                return Err(
                    "server.external_url must be an http(s) URL without a trailing slash".into(),
                );
            }
        }
        if self.server.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".into());
        }
        if self.server.max_connections == 0 || self.validation.concurrency == 0 {
            return Err("server.max_connections and validation.concurrency must be > 0".into());
        }
        if self.acme.orders_per_page == 0 || self.acme.orders_per_page > 1000 {
            return Err("acme.orders_per_page must be between 1 and 1000".into());
        }
        if self.acme.authz_reuse > 100 {
            return Err("acme.authz_reuse is a percentage (0-100)".into());
        }
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
            let bad = |what: String| Err(format!("profiles.{}: {what}", name.escape_debug()));
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return bad("a profile name is 1-64 letters, digits, '-', '_' or '.'".into());
            }
            if p.validity.is_zero() || p.validity > MAX_LEAF_VALIDITY {
                return bad(format!(
                    "validity must be between 1s and {} days",
                    MAX_LEAF_VALIDITY.as_secs() / 86400
                ));
            }
            for eku in &p.extended_key_usages {
                if eku != "serverAuth" && eku != "clientAuth" {
                    return bad(format!(
                        "unknown extended key usage {eku:?} (serverAuth, clientAuth)"
                    ));
                }
            }
            if p.identifier_types.is_empty() {
                return bad("identifier_types must list \"dns\", \"ip\" or both".into());
            }
            for t in &p.identifier_types {
                if t != "dns" && t != "ip" {
                    return bad(format!("unknown identifier type {t:?} (dns, ip)"));
                }
            }
            if (p.ocsp || p.crl) && !self.status.enabled {
                return bad(
                    "ocsp and crl need the status listener ([status] enabled = true)".into(),
                );
            }
        }
        if self.acme.external_account_required && self.acme.eab_keys.is_empty() {
            return Err(
                "acme.external_account_required needs at least one key in [acme.eab_keys]".into(),
            );
        }
        for (kid, key) in &self.acme.eab_keys {
            if kid.is_empty() || kid.len() > crate::jose::eab::MAX_KID_LEN {
                return Err(format!(
                    "acme.eab_keys: key ids are 1 to {} bytes",
                    crate::jose::eab::MAX_KID_LEN
                ));
            }
            crate::jose::eab::MacKey::from_b64url(key)
                .map_err(|e| format!("acme.eab_keys.{}: {}", kid.escape_debug(), e.detail))?;
        }
        if let Some(url) = &self.status.ocsp_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || !url.is_ascii() {
                return Err("status.ocsp_url must be an http(s) URL".into());
            }
        }
        if let Some(url) = &self.status.base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
                return Err(
                    "status.base_url must be an http(s) URL without a trailing slash".into(),
                );
            }
        }
        if self.status.crl_refresh.is_zero() || self.status.crl_refresh >= self.status.crl_lifetime
        {
            return Err(
                "status.crl_refresh must be above zero and below status.crl_lifetime".into(),
            );
        }
        if self.status.ocsp_lifetime.is_zero() {
            return Err("status.ocsp_lifetime must be above zero".into());
        }
        self.service.validate()?;
        self.rate_limits.validate()?;
        self.chaos.validate()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile name holding a newline made validate's error two lines.
    /// Seen while writing the pebble_config fuzz target (which also reads
    /// its input as TOML), whose one-line check now guards it.
    #[test]
    fn profile_names_in_errors_stay_on_one_line() {
        let config =
            Config::from_toml("[acme]\ndefault_profile = \"a\\nb\"\n[profiles.\"a\\nb\"]\n")
                .unwrap();
        let e = config.validate().unwrap_err();
        assert!(!e.contains('\n'), "{e:?}");
        assert!(e.contains(r"profiles.a\nb"), "{e:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(90 * 86400)
        );
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn empty_file_gives_defaults_and_unknown_fields_are_refused() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.listen.port(), 14000);
        assert!(!c.validation.always_valid);
        let e = Config::from_toml("[server]\nlisten_address = \"x\"\n").unwrap_err();
        assert!(e.contains("listen_address"), "{e}");
        let e = Config::from_toml("[nope]\n").unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn parse_errors_are_one_line_with_line_column_and_field() {
        let e = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisten_adress = 1\n")
            .unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with("line 3, column 1"), "{e}");
        assert!(e.contains("unknown field `listen_adress`"), "{e}");
        assert!(e.contains("`listen`"), "the valid fields are listed: {e}");

        let e = Config::from_toml("[validation]\n\n  concurrency = \"many\"\n").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.starts_with("line 3, column 17, field `concurrency`: "),
            "{e}"
        );

        let e = Config::from_toml("[server\n").unwrap_err();
        assert!(!e.contains('\n') && e.starts_with("line 1, column "), "{e}");
    }

    #[test]
    fn parses_a_full_file() {
        let c = Config::from_toml(
            r#"
            [server]
            listen = "127.0.0.1:8443"
            data_dir = "/var/lib/acme-ca"
            [ca]
            key_algorithm = "rsa-2048"
            leaf_validity = "6d"
            chain_length = 2
            alternate_roots = 1
            alternate_chains = ["/etc/acme-ca/cross.pem"]
            [acme]
            terms_of_service = "https://example.com/tos"
            order_lifetime = 3600
            [validation]
            always_valid = true
            [store]
            durability = "full"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.ca.key_algorithm, KeyAlgorithm::Rsa2048);
        assert_eq!(c.ca.leaf_validity, Some(Duration::from_secs(6 * 86400)));
        assert_eq!(
            c.effective_profiles()["classic"].validity,
            Duration::from_secs(6 * 86400)
        );
        let ca = c.ca.settings();
        assert_eq!((ca.chain_length, ca.alternate_roots), (2, 1));
        assert_eq!(
            ca.alternate_chains,
            [PathBuf::from("/etc/acme-ca/cross.pem")]
        );
        assert_eq!(c.acme.order_lifetime, Duration::from_secs(3600));
        assert_eq!(c.store.durability, Durability::Full);
        assert_eq!(
            c.store_path(),
            PathBuf::from("/var/lib/acme-ca/acme-ca.sqlite3")
        );
    }

    #[test]
    fn env_overrides() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "PEBBLE_VA_ALWAYS_VALID").then(|| "1".to_string()))
            .unwrap();
        assert!(c.validation.always_valid);
        assert!(c
            .apply_env(|k| (k == "PEBBLE_VA_ALWAYS_VALID").then(|| "maybe".to_string()))
            .is_err());
    }

    #[test]
    fn profile_and_lifecycle_rules() {
        let ok = Config::from_toml(
            r#"
            [acme]
            default_profile = "tls"
            external_account_required = true
            [acme.eab_keys]
            kid-1 = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
            [profiles.tls]
            description = "TLS server"
            validity = "7d"
            extended_key_usages = ["serverAuth"]
            identifier_types = ["dns"]
            ocsp = false
            "#,
        )
        .unwrap();
        ok.validate().unwrap();
        assert_eq!(
            ok.profiles.len(),
            1,
            "a [profiles] table replaces the defaults"
        );
        assert_eq!(ok.profiles["tls"].validity, Duration::from_secs(7 * 86400));
        assert!(ok.profiles["tls"].crl);
        let bad = |toml: &str, want: &str| {
            let e = Config::from_toml(toml)
                .and_then(|c| c.validate())
                .unwrap_err();
            assert!(e.contains(want), "{toml}: {e}");
        };
        bad("[acme]\ndefault_profile = \"x\"\n", "not a defined profile");
        bad(
            "[profiles.a]\nvalidity = \"500d\"\n[acme]\ndefault_profile = \"a\"\n",
            "validity",
        );
        bad(
            "[profiles.classic]\nextended_key_usages = [\"codeSigning\"]\n",
            "codeSigning",
        );
        bad(
            "[profiles.classic]\nidentifier_types = [\"email\"]\n",
            "email",
        );
        bad(
            "[profiles.classic]\nidentifier_types = []\n",
            "identifier_types",
        );
        bad("[profiles.classic]\nbogus = 1\n", "bogus");
        bad(
            "[profiles.\"a b\"]\n[acme]\ndefault_profile = \"a b\"\n",
            "profile name",
        );
        bad("[status]\nenabled = false\n", "status listener");
        bad("[acme]\nexternal_account_required = true\n", "eab_keys");
        bad("[acme]\nauthz_reuse = 101\n", "percentage");
        bad("[acme.eab_keys]\nk = \"short\"\n", "acme.eab_keys.k");
        bad("[status]\ncrl_refresh = \"8d\"\n", "crl_refresh");
        bad("[status]\nbase_url = \"http://x/\"\n", "base_url");
        // Without OCSP and CRL in any profile, the status listener may go.
        let c = Config::from_toml(
            "[status]\nenabled = false\n[profiles.p]\nocsp = false\ncrl = false\n[acme]\ndefault_profile = \"p\"\n",
        )
        .unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn every_pebble_environment_variable_maps_onto_a_field() {
        let env = [
            ("PEBBLE_VA_ALWAYS_VALID", "1"),
            ("PEBBLE_VA_SLEEPTIME", "7"),
            ("PEBBLE_WFE_NONCEREJECT", "15"),
            ("PEBBLE_AUTHZREUSE", "40"),
            ("PEBBLE_WFE_ORDERS_PER_PAGE", "3"),
            ("PEBBLE_CHAIN_LENGTH", "2"),
            ("PEBBLE_ALTERNATE_ROOTS", "3"),
        ];
        let mut c = Config::default();
        c.apply_env(|k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert!(c.validation.always_valid);
        assert_eq!(c.validation.random_delay, Duration::from_secs(7));
        assert_eq!(c.acme.bad_nonce_percent, 15);
        assert_eq!(c.acme.authz_reuse, 40);
        assert_eq!(c.acme.orders_per_page, 3);
        assert_eq!((c.ca.chain_length, c.ca.alternate_roots), (2, 3));
        // NOSLEEP wins over SLEEPTIME; empty values are unset.
        c.apply_env(|k| match k {
            "PEBBLE_VA_NOSLEEP" => Some("1".into()),
            "PEBBLE_AUTHZREUSE" => Some("".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.validation.random_delay, Duration::ZERO);
        assert_eq!(c.acme.authz_reuse, 40);
        for (k, v) in [
            ("PEBBLE_WFE_NONCEREJECT", "101"),
            ("PEBBLE_AUTHZREUSE", "-1"),
            ("PEBBLE_CHAIN_LENGTH", "0"),
            ("PEBBLE_CHAIN_LENGTH", "9"),
            ("PEBBLE_ALTERNATE_ROOTS", "x"),
            ("PEBBLE_VA_SLEEPTIME", "0"),
            ("PEBBLE_VA_NOSLEEP", "perhaps"),
        ] {
            let e = Config::default()
                .apply_env(|n| (n == k).then(|| v.to_string()))
                .unwrap_err();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
    }

    #[test]
    fn validation_rules() {
        let mut c = Config::default();
        c.ca.leaf_validity = Some(Duration::from_secs(400 * 86400));
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.server.external_url = Some("https://x.example/".into());
        assert!(c.validate().is_err());
        for (chain_length, alternate_roots, ok) in
            [(0, 0, false), (5, 0, false), (1, 9, false), (4, 8, true)]
        {
            let mut c = Config::default();
            c.ca.chain_length = chain_length;
            c.ca.alternate_roots = alternate_roots;
            assert_eq!(c.validate().is_ok(), ok, "{chain_length} {alternate_roots}");
        }
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The annotated example in docs/ is a valid config and says the defaults.
    #[test]
    fn the_documented_example_parses_and_validates() {
        let c = Config::from_toml(include_str!("../docs/acme-ca.example.toml")).unwrap();
        c.validate().unwrap();
        let d = Config::default();
        assert_eq!(c.server.listen, d.server.listen);
        assert_eq!(c.ca.leaf_validity, d.ca.leaf_validity);
        assert_eq!(c.ca.settings(), d.ca.settings());
        assert_eq!(c.acme.order_lifetime, d.acme.order_lifetime);
        assert_eq!(c.validation.queue_size, d.validation.queue_size);
        assert_eq!(c.profiles, d.profiles);
        assert_eq!(c.status.listen, d.status.listen);
        assert_eq!(c.status.crl_refresh, d.status.crl_refresh);
        assert_eq!(c.acme.authz_reuse, d.acme.authz_reuse);
        assert_eq!(c.rate_limits, d.rate_limits);
    }
}
