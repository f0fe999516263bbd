//! Pebble compatibility: `acme-ca pebble` takes Pebble's command line
//! (`-config FILE`, `-dnsserver HOST:PORT`, `-strict`, `-version`) and
//! Pebble's JSON config file, starts from Pebble's defaults (ephemeral
//! state, Pebble's directory paths and terms of service, 5 % of good nonces
//! refused, 50 % authorization reuse, 3 orders per page, a random VA delay
//! of under 5 s, a random profile when none is asked for), then applies
//! Pebble's environment variables through [`Config::apply_env`], the one
//! place they are read. docs/PEBBLE.md lists what differs on purpose.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::ca::KeyAlgorithm;
use crate::config::{Config, ProfileConfig};

/// Pebble's default config path, relative to the working directory.
pub const DEFAULT_CONFIG: &str = "test/config/pebble-config.json";

/// What `acme-ca pebble` uses when no `-config` is given and
/// [`DEFAULT_CONFIG`] does not exist: Pebble's own test configuration,
/// without the listener certificate files, which are then generated (the
/// listener's certificate is issued by the CA, whose root the management
/// interface serves at `/roots/0`). So the command works with no files at
/// all, in any directory.
pub const BUILTIN_CONFIG: &str = r#"{
  "pebble": {
    "listenAddress": "0.0.0.0:14000",
    "managementListenAddress": "0.0.0.0:15000",
    "httpPort": 5002,
    "tlsPort": 5001,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "domainBlocklist": ["blocked-domain.example"],
    "retryAfter": {"authz": 3, "order": 5},
    "keyAlgorithm": "ecdsa",
    "profiles": {
      "default": {"description": "The profile you know and love", "validityPeriod": 7776000},
      "shortlived": {"description": "A short-lived cert profile, without actual enforcement", "validityPeriod": 518400}
    }
  }
}"#;
/// The issuer domain name Pebble uses when its config lists no
/// caaIdentities.
pub const PEBBLE_ISSUER_DOMAIN_NAME: &str = "pebble.letsencrypt.org";
/// Pebble's terms of service URL.
pub const TERMS_OF_SERVICE: &str = "data:text/plain,Do%20what%20thou%20wilt";
/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Run(PebbleArgs),
    Version,
    Help,
}

/// Pebble's flags, plus `-data-dir` (ours: keep state in a directory
/// instead of a temporary one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PebbleArgs {
    /// `-config`; `None`: [`DEFAULT_CONFIG`] if it exists, else
    /// [`BUILTIN_CONFIG`].
    pub config: Option<PathBuf>,
    pub dns_server: Option<SocketAddr>,
    /// Pebble's `-strict`: acme-ca is always strict (see docs/PEBBLE.md).
    pub strict: bool,
    pub data_dir: Option<PathBuf>,
}

pub const USAGE: &str = "usage: acme-ca pebble [-config FILE] [-dnsserver HOST:PORT] [-strict] [-version] [-data-dir DIR]

  -config FILE          Pebble JSON config (default test/config/pebble-config.json if it
                        exists, else Pebble's test config built in, with a generated
                        listener certificate whose root is served at /roots/0)
  -dnsserver HOST:PORT  DNS server for validation (default: the system's, from /etc/resolv.conf)
  -strict               accepted for compatibility; acme-ca always follows RFC 8555 strictly
  -version              print the version and exit
  -data-dir DIR         keep the CA and database in DIR (default: a temporary directory, removed at exit)
";

/// Parses Go-style flags: `-name value`, `-name=value`, `--name` forms;
/// booleans take `-strict`, `-strict=false` or `-strict false`.
pub fn parse_args(args: &[String]) -> Result<Invocation, String> {
    let mut out = PebbleArgs {
        config: None,
        dns_server: None,
        strict: false,
        data_dir: None,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}\n{USAGE}"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: -{name} ({what})\n{USAGE}"))?;
            i += 1;
            Ok(v)
        };
        match name {
            "config" => out.config = Some(PathBuf::from(value("a file")?)),
            "dnsserver" => {
                let v = value("HOST:PORT")?;
                out.dns_server = Some(parse_go_addr(&v, Ipv4Addr::LOCALHOST).ok_or_else(|| {
                    format!("-dnsserver {v:?} is not HOST:PORT with an IP address")
                })?);
            }
            "data-dir" => out.data_dir = Some(PathBuf::from(value("a directory")?)),
            "strict" => {
                out.strict = match inline.as_deref() {
                    Some(v) => {
                        parse_bool(v).ok_or_else(|| format!("-strict={v:?} is not a boolean"))?
                    }
                    None => match args.get(i).and_then(|v| parse_bool(v)) {
                        Some(b) => {
                            i += 1;
                            b
                        }
                        None => true,
                    },
                }
            }
            "version" => return Ok(Invocation::Version),
            "h" | "help" => return Ok(Invocation::Help),
            other => return Err(format!("flag provided but not defined: -{other}\n{USAGE}")),
        }
    }
    Ok(Invocation::Run(out))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A Go listen/dial address: `host:port`, `:port` (the host given by
/// `empty_host`), `[v6]:port`, `localhost:port`.
pub fn parse_go_addr(s: &str, empty_host: Ipv4Addr) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip = match host {
        "" => IpAddr::V4(empty_host),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

/// Pebble's defaults, before its config file and environment.
pub fn defaults() -> Config {
    let mut c = Config::default();
    c.server.listen = "0.0.0.0:14000".parse().expect("valid literal address");
    c.server.pebble_paths = true;
    c.acme.terms_of_service = Some(TERMS_OF_SERVICE.to_owned());
    c.acme.orders_per_page = 3;
    c.acme.authz_reuse = 50;
    c.acme.bad_nonce_percent = 5;
    c.acme.random_profile = true;
    // Pebble lets every account use its configured EAB keys, and answers
    // 404 for a revoked certificate's URL.
    c.acme.eab_key_reuse = true;
    // Pebble certifies names under special-use domains and public
    // suffixes; client suites order "example.test"-style names.
    c.acme.allowed_special_use_domains = crate::ra::policy::SPECIAL_USE
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    c.acme.public_suffix_check = false;
    // Pebble takes RSA keys of 1024 bits (node-acme-client's suite makes
    // accounts and certificates with them).
    c.acme.min_rsa_bits = 1024;
    c.acme.serve_revoked_certificates = false;
    // Pebble has no rate limits: client test suites order as fast as they
    // like (issue 15).
    c.rate_limits.enabled = Some(false);
    c.acme.pending_authz_lifetime = Duration::from_secs(3600);
    // Pebble's VA sleeps rand.Intn(5) seconds: 0 to 4.
    c.validation.random_delay = Duration::from_secs(5);
    c.validation.http_port = 5002;
    c.validation.tls_port = 5001;
    // Pebble's VA follows a redirect to any port, e.g. to its challenge
    // server's HTTPS port, 5003.
    c.validation.redirect_any_port = true;
    // Pebble validates whatever the DNS answers, loopback included.
    c.validation.allow_reserved_addresses = true;
    // Pebble's VA asks names as they are; its mock DNS, pebble-challtestsrv,
    // matches them byte for byte.
    c.validation.dns_case_randomization = crate::config::CaseRandomization::Off;
    // Pebble offers dns-account-01 and dns-persist-01; the latter's issuer
    // domain names are its caaIdentities, by default Pebble's own name.
    c.validation.dns_account_01 = true;
    c.validation.dns_persist_01 = true;
    c.validation.dns_persist_issuer_domain_names = vec![PEBBLE_ISSUER_DOMAIN_NAME.to_owned()];
    // Its own status listener on any free port: Pebble users never need it,
    // but certificates still point at a real CRL and OCSP responder.
    c.status.listen = "0.0.0.0:0".parse().expect("valid literal address");
    c.profiles = BTreeMap::from([(
        "default".to_owned(),
        ProfileConfig {
            description: "The default profile".into(),
            // Pebble puts no common name in a certificate unless the
            // profile says promoteCommonName.
            common_name: false,
            ..ProfileConfig::default()
        },
    )]);
    c.acme.default_profile = "default".to_owned();
    // Pebble's CA names ("Pebble Intermediate CA 1a2b3c"): acme.sh's CI
    // checks every issuer for them.
    c.ca.name = "Pebble".to_owned();
    c.ca.name_style = crate::ca::NameStyle::Pebble;
    // Pebble's keys are RSA unless keyAlgorithm says "ecdsa".
    c.ca.key_algorithm = KeyAlgorithm::Rsa2048;
    c
}

/// Keys of the top-level `pebble` object that acme-ca understands.
const KNOWN_KEYS: &[&str] = &[
    "listenAddress",
    "managementListenAddress",
    "certificate",
    "privateKey",
    "httpPort",
    "tlsPort",
    "ocspResponderURL",
    "externalAccountBindingRequired",
    "externalAccountMACKeys",
    "domainBlocklist",
    "caaIdentities",
    "keyAlgorithm",
    "profiles",
    "retryAfter",
    "certificateValidityPeriod",
];

/// Reads Pebble's JSON config onto `config`. Member names match
/// case-insensitively, as Go's decoder does; unknown members are returned
/// as warnings (Pebble would ignore them silently). Errors name the member.
pub fn apply_file(config: &mut Config, path: &Path) -> Result<Vec<String>, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!("config {} is larger than 1 MiB", path.display()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    apply_json(config, &text).map_err(|e| format!("config {}: {e}", path.display()))
}

/// [`apply_file`] on text.
pub fn apply_json(config: &mut Config, text: &str) -> Result<Vec<String>, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let mut warnings = Vec::new();
    let f = Fields(pebble_object(&root, &mut warnings)?);
    apply_listeners(config, &f)?;
    apply_acme(config, &f)?;
    apply_ca(config, &f)?;
    apply_retry_after(config, &f)?;
    apply_profiles(config, &f, &mut warnings)?;
    Ok(warnings)
}

/// The `pebble` object of the config; each other key, and each unknown
/// key inside it, becomes a warning.
fn pebble_object<'a>(
    root: &'a Value,
    warnings: &mut Vec<String>,
) -> Result<&'a Map<String, Value>, String> {
    let Value::Object(root) = root else {
        return Err("the config is not a JSON object".into());
    };
    let mut pebble = None;
    for (k, v) in root {
        if k.eq_ignore_ascii_case("pebble") {
            pebble = Some(v);
        } else {
            warnings.push(format!(
                "unknown key {k:?} ignored (only \"pebble\" is read)"
            ));
        }
    }
    let Some(Value::Object(p)) = pebble else {
        return Err("the config has no \"pebble\" object".into());
    };
    for k in p.keys() {
        if !KNOWN_KEYS.iter().any(|known| known.eq_ignore_ascii_case(k)) {
            warnings.push(format!(
                "unknown key \"pebble.{}\" ignored",
                k.escape_debug()
            ));
        }
    }
    Ok(p)
}

/// `listenAddress`, `managementListenAddress`, `certificate` and
/// `privateKey`, `httpPort`, `tlsPort`, `ocspResponderURL`.
fn apply_listeners(config: &mut Config, f: &Fields<'_>) -> Result<(), String> {
    if let Some(v) = f.string("listenAddress")? {
        config.server.listen = parse_go_addr(&v, Ipv4Addr::UNSPECIFIED)
            .ok_or_else(|| format!("pebble.listenAddress {v:?} is not HOST:PORT"))?;
    }
    config.management.listen = match f.string("managementListenAddress")? {
        Some(v) if !v.is_empty() => Some(
            parse_go_addr(&v, Ipv4Addr::UNSPECIFIED)
                .ok_or_else(|| format!("pebble.managementListenAddress {v:?} is not HOST:PORT"))?,
        ),
        _ => None,
    };
    match (f.string("certificate")?, f.string("privateKey")?) {
        (Some(c), Some(k)) if !c.is_empty() && !k.is_empty() => {
            config.server.tls_cert = Some(PathBuf::from(c));
            config.server.tls_key = Some(PathBuf::from(k));
        }
        (None, None) => {}
        (Some(c), Some(k)) if c.is_empty() && k.is_empty() => {}
        _ => return Err("pebble.certificate and pebble.privateKey go together".into()),
    }
    if let Some(port) = f.port("httpPort")? {
        config.validation.http_port = port;
    }
    if let Some(port) = f.port("tlsPort")? {
        config.validation.tls_port = port;
    }
    if let Some(url) = f.string("ocspResponderURL")? {
        config.status.ocsp_url = Some(url).filter(|u| !u.is_empty());
    }
    Ok(())
}

/// `externalAccountBindingRequired`, `externalAccountMACKeys`,
/// `domainBlocklist` and `caaIdentities`.
fn apply_acme(config: &mut Config, f: &Fields<'_>) -> Result<(), String> {
    if let Some(b) = f.bool("externalAccountBindingRequired")? {
        config.acme.external_account_required = b;
    }
    if let Some(keys) = f.object("externalAccountMACKeys")? {
        for (kid, key) in keys {
            let key = key.as_str().ok_or_else(|| {
                format!(
                    "pebble.externalAccountMACKeys.{} is not a string",
                    kid.escape_debug()
                )
            })?;
            config.acme.eab_keys.insert(kid.clone(), key.to_owned());
        }
    }
    if let Some(list) = f.strings("domainBlocklist")? {
        config.acme.blocked_domains = list;
    }
    if let Some(list) = f.strings("caaIdentities")? {
        // Pebble's dns-persist-01 challenges list these as issuer domain
        // names, which the draft wants lower case without a final dot.
        if !list.is_empty() {
            config.validation.dns_persist_issuer_domain_names = list
                .iter()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect();
        }
        config.acme.caa_identities = list;
    }
    Ok(())
}

/// `keyAlgorithm`: the CA's keys.
fn apply_ca(config: &mut Config, f: &Fields<'_>) -> Result<(), String> {
    if let Some(alg) = f.string("keyAlgorithm")? {
        config.ca.key_algorithm = match alg.to_ascii_lowercase().as_str() {
            "ecdsa" => KeyAlgorithm::EcdsaP256,
            "" | "rsa" => KeyAlgorithm::Rsa2048,
            other => other
                .parse()
                .map_err(|_| format!("pebble.keyAlgorithm {alg:?} is not \"rsa\" or \"ecdsa\""))?,
        };
    }
    Ok(())
}

/// `retryAfter`: the Retry-After of authorizations and orders.
fn apply_retry_after(config: &mut Config, f: &Fields<'_>) -> Result<(), String> {
    if let Some(retry) = f.object("retryAfter")? {
        let r = Fields(retry);
        if let Some(s) = r.seconds("authz")? {
            config.acme.authz_retry_after = Some(s);
        }
        if let Some(s) = r.seconds("order")? {
            config.acme.retry_after = s;
        }
    }
    Ok(())
}

/// `profiles`, and the legacy `certificateValidityPeriod`: the validity
/// of a profile that gives none (or of every default profile when the
/// config lists none).
fn apply_profiles(
    config: &mut Config,
    f: &Fields<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let mut legacy_validity = f.seconds("certificateValidityPeriod")?;
    if let Some(v) = legacy_validity {
        legacy_validity = Some(clamp_validity(v, "certificateValidityPeriod", warnings));
    }
    if let Some(profiles) = f.object("profiles")? {
        let mut out = BTreeMap::new();
        for (name, p) in profiles {
            out.insert(
                name.clone(),
                profile_of(name, p, legacy_validity, warnings)?,
            );
        }
        if !out.is_empty() {
            if !out.contains_key(&config.acme.default_profile) {
                config.acme.default_profile = out.keys().next().cloned().unwrap_or_default();
            }
            config.profiles = out;
        }
    } else if let Some(v) = legacy_validity {
        for p in config.profiles.values_mut() {
            p.validity = v;
        }
    }
    Ok(())
}

/// One member of `pebble.profiles`; without a `validityPeriod`,
/// `legacy_validity` or 90 days.
fn profile_of(
    name: &str,
    p: &Value,
    legacy_validity: Option<Duration>,
    warnings: &mut Vec<String>,
) -> Result<ProfileConfig, String> {
    let Value::Object(p) = p else {
        return Err(format!(
            "pebble.profiles.{} is not an object",
            name.escape_debug()
        ));
    };
    let pf = Fields(p);
    for k in p.keys() {
        if !["description", "validityPeriod", "promoteCommonName"]
            .iter()
            .any(|known| known.eq_ignore_ascii_case(k))
        {
            warnings.push(format!(
                "unknown key \"pebble.profiles.{}.{}\" ignored",
                name.escape_debug(),
                k.escape_debug()
            ));
        }
    }
    let validity = match pf.seconds("validityPeriod")? {
        Some(v) => {
            let what = format!("profiles.{}.validityPeriod", name.escape_debug());
            clamp_validity(v, &what, warnings)
        }
        None => legacy_validity.unwrap_or(Duration::from_secs(90 * 86400)),
    };
    Ok(ProfileConfig {
        description: pf.string("description")?.unwrap_or_default(),
        validity,
        common_name: pf.bool("promoteCommonName")?.unwrap_or(false),
        ..ProfileConfig::default()
    })
}

/// Pebble allows any validity (its old default was five years); acme-ca
/// issues at most the Baseline Requirements' 398 days, so a longer one is
/// shortened, with a warning, rather than refusing the config.
fn clamp_validity(v: Duration, what: &str, warnings: &mut Vec<String>) -> Duration {
    let max = crate::config::MAX_LEAF_VALIDITY;
    if v.is_zero() {
        warnings.push(format!("pebble.{what} is 0: using 90 days"));
        return Duration::from_secs(90 * 86400);
    }
    if v > max {
        warnings.push(format!(
            "pebble.{what} {} s is longer than acme-ca's maximum of {} s (398 days): using that",
            v.as_secs(),
            max.as_secs()
        ));
        return max;
    }
    v
}

/// Case-insensitive, typed access to a JSON object's members.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    /// The value of `name` read by `read`, or an error saying it is not
    /// `what` when `read` refuses it.
    fn typed<T>(
        &self,
        name: &str,
        read: impl FnOnce(&Value) -> Option<T>,
        what: &str,
    ) -> Result<Option<T>, String> {
        self.get(name)
            .map(|v| read(v).ok_or_else(|| format!("pebble.{name} is not {what}")))
            .transpose()
    }

    fn string(&self, name: &str) -> Result<Option<String>, String> {
        self.typed(name, |v| v.as_str().map(str::to_owned), "a string")
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, String> {
        self.typed(name, Value::as_bool, "true or false")
    }

    fn uint(&self, name: &str) -> Result<Option<u64>, String> {
        self.typed(name, Value::as_u64, "a whole number")
    }

    fn port(&self, name: &str) -> Result<Option<u16>, String> {
        self.uint(name)?
            .map(|n| {
                u16::try_from(n)
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("pebble.{name} {n} is not a port"))
            })
            .transpose()
    }

    fn seconds(&self, name: &str) -> Result<Option<Duration>, String> {
        Ok(self.uint(name)?.map(Duration::from_secs))
    }

    fn object(&self, name: &str) -> Result<Option<&'a Map<String, Value>>, String> {
        self.get(name)
            .map(|v| {
                v.as_object()
                    .ok_or_else(|| format!("pebble.{name} is not an object"))
            })
            .transpose()
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        self.get(name)
            .map(|v| {
                v.as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|s| s.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| format!("pebble.{name} is not a list of strings"))
            })
            .transpose()
    }
}

/// The whole configuration for `args`: Pebble's defaults, its config file,
/// `-dnsserver`, then the environment; checked. Also the file's warnings.
pub fn load(
    args: &PebbleArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<String>), String> {
    let mut config = defaults();
    let default_path = Path::new(DEFAULT_CONFIG);
    let warnings = match &args.config {
        Some(path) => apply_file(&mut config, path)?,
        None if default_path.exists() => apply_file(&mut config, default_path)?,
        None => apply_json(&mut config, BUILTIN_CONFIG)?,
    };
    for (what, path) in [
        ("certificate", &config.server.tls_cert),
        ("privateKey", &config.server.tls_key),
    ] {
        if let Some(path) = path.as_ref().filter(|p| !p.exists()) {
            return Err(format!(
                "pebble.{what} {}: no such file (leave certificate and privateKey out, or empty, and the listener certificate is generated, issued by the root at /roots/0)",
                path.display()
            ));
        }
    }
    if let Some(dns) = args.dns_server {
        config.validation.dns_servers = vec![dns];
    }
    // The status listener (a free port) binds where the ACME listener does:
    // a `listenAddress` of 127.0.0.1 keeps everything on loopback.
    config.status.listen = std::net::SocketAddr::new(config.server.listen.ip(), 0);
    config.apply_env(env)?;
    config.validate()?;
    Ok((config, warnings))
}

/// A temporary data directory, removed when dropped.
struct TempDataDir(PathBuf);

impl TempDataDir {
    fn create() -> Result<TempDataDir, String> {
        let mut b = [0u8; 8];
        crate::rand::fill(&mut b);
        let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("acme-ca-pebble-{name}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(TempDataDir(dir))
    }
}

impl Drop for TempDataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `acme-ca pebble ARGS`: runs until SIGINT or SIGTERM.
pub async fn run(args: Vec<String>) -> Result<(), String> {
    let args = match parse_args(&args)? {
        Invocation::Run(a) => a,
        Invocation::Version => {
            println!(
                "acme-ca {} (Pebble-compatible: pebble -config/-dnsserver/-strict, its JSON config, environment and management API)",
                env!("CARGO_PKG_VERSION")
            );
            return Ok(());
        }
        Invocation::Help => {
            print!("{USAGE}");
            return Ok(());
        }
    };
    let (mut config, warnings) = load(&args, |k| std::env::var(k).ok())?;
    let source = match &args.config {
        Some(path) => path.display().to_string(),
        None if Path::new(DEFAULT_CONFIG).exists() => DEFAULT_CONFIG.to_owned(),
        None => {
            println!(
                "No {DEFAULT_CONFIG}: using Pebble's test configuration built in, with a generated listener certificate (its root: /roots/0 on the management interface)"
            );
            "(built in)".to_owned()
        }
    };
    for w in &warnings {
        tracing::warn!("pebble config {source}: {w}");
    }
    if args.strict {
        tracing::info!("-strict: acme-ca always follows RFC 8555 strictly");
    }
    // Ephemeral like Pebble: a new CA and an empty database at every start,
    // unless -data-dir asks to keep them.
    let _temp = match &args.data_dir {
        Some(dir) => {
            config.server.data_dir = dir.clone();
            None
        }
        None => {
            let t = TempDataDir::create()?;
            config.server.data_dir = t.0.clone();
            Some(t)
        }
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = crate::server::Server::build(&config, addr)
        .await
        .map_err(|e| format!("cannot start: {}", e.cause()))?;
    let c = &config;
    println!(
        "Pebble-compatible acme-ca: {}% of good nonces refused, authorization reuse {}%, {} orders per page, VA delay up to {} s{}",
        c.acme.bad_nonce_percent,
        c.acme.authz_reuse,
        c.acme.orders_per_page,
        c.validation.random_delay.as_secs(),
        if c.validation.always_valid { ", every challenge valid" } else { "" }
    );
    if let Some(m) = c.management.listen {
        println!("Management interface listening on: {m}");
        println!("Root CA certificate available at: https://{m}/roots/0");
    }
    println!("Listening on: {addr}");
    println!("ACME directory available at: https://{addr}/dir");
    for line in server.listener_lines() {
        println!("acme-ca: {line}");
    }
    println!("acme-ca: root-ca {}", server.root_pem_path.display());
    println!("acme-ca: ready");
    server.run(listener, crate::server::shutdown_signal()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Invocation, String> {
        parse_args(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn go_style_flags() {
        let Invocation::Run(a) = args(&[]).unwrap() else {
            panic!()
        };
        assert_eq!(a.config, None);
        assert!(!a.strict && a.dns_server.is_none());
        let Invocation::Run(a) = args(&[
            "-config",
            "x.json",
            "--dnsserver=:5053",
            "-strict",
            "-data-dir",
            "/tmp/d",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.config, Some(PathBuf::from("x.json")));
        assert_eq!(a.dns_server, Some("127.0.0.1:5053".parse().unwrap()));
        assert!(a.strict);
        assert_eq!(a.data_dir, Some(PathBuf::from("/tmp/d")));
        for (list, strict) in [
            (&["-strict", "false"][..], false),
            (&["-strict=false"][..], false),
            (&["-strict=true"][..], true),
            (&["-strict", "-config", "c"][..], true),
        ] {
            let Invocation::Run(a) = args(list).unwrap() else {
                panic!()
            };
            assert_eq!(a.strict, strict, "{list:?}");
        }
        assert_eq!(args(&["-version"]).unwrap(), Invocation::Version);
        assert_eq!(args(&["-h"]).unwrap(), Invocation::Help);
        assert!(args(&["-bogus"]).unwrap_err().contains("-bogus"));
        assert!(args(&["-config"])
            .unwrap_err()
            .contains("needs an argument"));
        assert!(args(&["stray"]).is_err());
        assert!(args(&["-dnsserver", "nope"]).is_err());
        assert!(args(&["-strict=maybe"]).is_err());
    }

    #[test]
    fn go_addresses() {
        let any = Ipv4Addr::UNSPECIFIED;
        assert_eq!(
            parse_go_addr(":14000", any),
            Some("0.0.0.0:14000".parse().unwrap())
        );
        assert_eq!(
            parse_go_addr("localhost:15000", any),
            Some("127.0.0.1:15000".parse().unwrap())
        );
        assert_eq!(
            parse_go_addr("[::]:14000", any),
            Some("[::]:14000".parse().unwrap())
        );
        assert_eq!(parse_go_addr("example.com:1", any), None);
        assert_eq!(parse_go_addr("1.2.3.4", any), None);
    }

    const TEST_CONFIG: &str = r#"{
      "pebble": {
        "listenAddress": "0.0.0.0:14000",
        "managementListenAddress": "0.0.0.0:15000",
        "certificate": "test/certs/localhost/cert.pem",
        "privateKey": "test/certs/localhost/key.pem",
        "httpPort": 5002,
        "tlsPort": 5001,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
        "domainBlocklist": ["blocked-domain.example"],
        "retryAfter": {"authz": 3, "order": 5},
        "profiles": {
          "default": {"description": "The profile you know", "validityPeriod": 7776000},
          "shortlived": {"description": "A short one", "validityPeriod": 518400}
        }
      }
    }"#;

    /// Pebble offers dns-account-01 and dns-persist-01, the latter naming
    /// its caaIdentities (or its own name) as issuer domain names.
    #[test]
    fn draft_dns_challenges_as_pebble() {
        let mut c = defaults();
        apply_json(&mut c, TEST_CONFIG).unwrap();
        c.validate().unwrap();
        assert!(c.validation.dns_account_01 && c.validation.dns_persist_01);
        assert_eq!(
            c.validation.issuer_domain_names(&c.acme),
            [PEBBLE_ISSUER_DOMAIN_NAME]
        );
        let mut c = defaults();
        apply_json(
            &mut c,
            r#"{"pebble": {"caaIdentities": ["CA.Example.", "other.test"]}}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.acme.caa_identities, ["CA.Example.", "other.test"]);
        assert_eq!(
            c.validation.issuer_domain_names(&c.acme),
            ["ca.example", "other.test"]
        );
    }

    #[test]
    fn pebble_test_config_maps_onto_fields() {
        let mut c = defaults();
        let warnings = apply_json(&mut c, TEST_CONFIG).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        c.validate().unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:14000".parse().unwrap());
        assert_eq!(c.management.listen, Some("0.0.0.0:15000".parse().unwrap()));
        assert_eq!(
            c.server.tls_cert,
            Some(PathBuf::from("test/certs/localhost/cert.pem"))
        );
        assert_eq!(
            (c.validation.http_port, c.validation.tls_port),
            (5002, 5001)
        );
        assert_eq!(c.status.ocsp_url, None);
        assert_eq!(c.acme.blocked_domains, vec!["blocked-domain.example"]);
        assert_eq!(c.acme.authz_retry_after, Some(Duration::from_secs(3)));
        assert_eq!(c.acme.retry_after, Duration::from_secs(5));
        assert_eq!(c.profiles.len(), 2);
        assert_eq!(
            c.profiles["shortlived"].validity,
            Duration::from_secs(518400)
        );
        assert_eq!(c.profiles["default"].description, "The profile you know");
        assert_eq!(c.acme.terms_of_service.as_deref(), Some(TERMS_OF_SERVICE));
        assert!(c.server.pebble_paths && c.acme.random_profile);
        // Pebble's behaviour where acme-ca's own differs.
        assert!(!c.profiles["default"].common_name);
        assert!(c.acme.eab_key_reuse && !c.acme.serve_revoked_certificates);
        assert!(c.validation.redirect_any_port);
        assert_eq!(c.ca.name, "Pebble");
        assert_eq!(c.ca.name_style, crate::ca::NameStyle::Pebble);
        assert_eq!(
            c.validation.dns_case_randomization,
            crate::config::CaseRandomization::Off
        );
    }

    #[test]
    fn promote_common_name_per_profile() {
        let mut c = defaults();
        let warnings = apply_json(
            &mut c,
            r#"{"pebble": {"profiles": {
                "cn": {"description": "x", "validityPeriod": 3600, "promoteCommonName": true},
                "plain": {"description": "y", "validityPeriod": 3600}}}}"#,
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(c.profiles["cn"].common_name);
        assert!(!c.profiles["plain"].common_name);
    }

    /// With no -config and no test/config/pebble-config.json, Pebble's test
    /// configuration is built in and the listener certificate generated; a
    /// config naming certificate files that do not exist is refused with a
    /// line that says what to do.
    #[test]
    fn no_files_needed() {
        let dir = tempfile::tempdir().unwrap();
        let run = |config: Option<PathBuf>| {
            let args = PebbleArgs {
                config,
                dns_server: None,
                strict: false,
                data_dir: None,
            };
            load(&args, |_| None)
        };
        // The tests run in the crate directory, which has no test/config.
        assert!(!Path::new(DEFAULT_CONFIG).exists());
        let (c, warnings) = run(None).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.server.tls_cert, None);
        assert_eq!(c.management.listen, Some("0.0.0.0:15000".parse().unwrap()));
        assert_eq!(c.status.listen, "0.0.0.0:0".parse().unwrap());
        assert_eq!(c.validation.http_port, 5002);
        assert_eq!(c.profiles.len(), 2);
        assert_eq!(c.ca.key_algorithm, KeyAlgorithm::EcdsaP256);

        // The status listener follows listenAddress.
        let loopback = dir.path().join("loopback.json");
        std::fs::write(
            &loopback,
            r#"{"pebble": {"listenAddress": "127.0.0.1:14000"}}"#,
        )
        .unwrap();
        let (c, _) = run(Some(loopback)).unwrap();
        assert_eq!(c.status.listen, "127.0.0.1:0".parse().unwrap());

        let path = dir.path().join("pebble-config.json");
        std::fs::write(&path, TEST_CONFIG).unwrap();
        let e = run(Some(path)).unwrap_err();
        assert!(
            e.contains("pebble.certificate test/certs/localhost/cert.pem: no such file"),
            "{e}"
        );
        let e = run(Some(dir.path().join("missing.json"))).unwrap_err();
        assert!(e.contains("cannot read config"), "{e}");
    }

    #[test]
    fn eab_keys_case_insensitive_names_and_unknown_keys() {
        let mut c = defaults();
        let warnings = apply_json(
            &mut c,
            r#"{"pebble": {"ExternalAccountBindingRequired": true,
                "externalAccountMACKeys": {"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"},
                "ocspresponderurl": "http://127.0.0.1:4002",
                "keyAlgorithm": "rsa", "certificateValidityPeriod": 3600,
                "flavour": "vanilla"},
               "other": 1}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert!(c.acme.external_account_required);
        assert_eq!(c.acme.eab_keys.len(), 1);
        assert_eq!(c.status.ocsp_url.as_deref(), Some("http://127.0.0.1:4002"));
        assert_eq!(c.ca.key_algorithm, KeyAlgorithm::Rsa2048);
        assert_eq!(c.profiles["default"].validity, Duration::from_secs(3600));
        assert_eq!(warnings.len(), 2, "{warnings:?}");

        assert!(warnings.iter().any(|w| w.contains("pebble.flavour")));
        assert!(warnings.iter().any(|w| w.contains("\"other\"")));
        // Pebble's old five-year default is shortened to 398 days.
        let mut c = defaults();
        let warnings = apply_json(
            &mut c,
            r#"{"pebble": {"certificateValidityPeriod": 157766400}}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.profiles["default"].validity,
            crate::config::MAX_LEAF_VALIDITY
        );
        assert!(warnings[0].contains("398 days"), "{warnings:?}");
    }

    #[test]
    fn bad_configs_name_the_member() {
        for (json, want) in [
            ("[]", "not a JSON object"),
            ("{}", "no \"pebble\""),
            (r#"{"pebble": {"httpPort": "80"}}"#, "pebble.httpPort"),
            (r#"{"pebble": {"httpPort": 70000}}"#, "pebble.httpPort"),
            (
                r#"{"pebble": {"listenAddress": "nowhere"}}"#,
                "listenAddress",
            ),
            (r#"{"pebble": {"keyAlgorithm": "dsa"}}"#, "keyAlgorithm"),
            (r#"{"pebble": {"certificate": "c.pem"}}"#, "go together"),
            (r#"{"pebble": {"profiles": {"p": 3}}}"#, "pebble.profiles.p"),
            (r#"{"pebble": {"domainBlocklist": [1]}}"#, "domainBlocklist"),
            ("{", "not valid JSON"),
        ] {
            let e = apply_json(&mut defaults(), json).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    /// Member names were written into warnings and errors as they were, so
    /// a name holding a newline made a message of two lines (a forged
    /// second log line). Seen while writing the pebble_config fuzz target,
    /// whose one-line check now guards it.
    #[test]
    fn names_in_messages_stay_on_one_line() {
        let mut c = defaults();
        let warnings = apply_json(
            &mut c,
            r#"{"pebble": {"x\ny": 1, "profiles": {"p\nq": {"v\nw": 1, "validityPeriod": 0}}}}"#,
        )
        .unwrap();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        for w in &warnings {
            assert!(!w.contains('\n'), "{w:?}");
        }
        assert!(warnings[0].contains(r"pebble.x\ny"), "{warnings:?}");
        // The profile name is refused by validate, on one line too.
        let e = c.validate().unwrap_err();
        assert!(!e.contains('\n') && e.contains(r"profiles.p\nq"), "{e:?}");
        for json in [
            r#"{"pebble": {"profiles": {"a\nb": 3}}}"#,
            r#"{"pebble": {"externalAccountMACKeys": {"k\nl": 1}}}"#,
        ] {
            let e = apply_json(&mut defaults(), json).unwrap_err();
            assert!(!e.contains('\n') && e.contains(r"\n"), "{json}: {e:?}");
        }
    }
}
