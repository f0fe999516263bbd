//! The pieces `Server::build` starts from: the data directory and its
//! lock, the CA and its root file, the store, the listener certificate, the
//! validators, and validations a previous run left in progress.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ca::{Ca, CaSettings};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::{NonceService, SharedNonces};
use crate::metrics::Metrics;
use crate::protocol::Identifier;
use crate::ra::Ra;
use crate::ratelimit::Limiter;
use crate::store::postgres::{describe_url, PgStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{Database, Store};
use crate::va::addr::AddressPolicy;
use crate::va::caa::CaaChecker;
use crate::va::dns::Resolver;
use crate::va::dns01::Dns01;
use crate::va::dns_account01::DnsAccount01;
use crate::va::dns_persist01::DnsPersist01;
use crate::va::hickory::HickoryResolver;
use crate::va::http01::Http01;
use crate::va::tlsalpn01::TlsAlpn01;
use crate::va::{AlwaysValid, NetworkValidator, Va, Validator};

/// The data directory, created owner-only when missing, and its lock.
pub(super) fn open_data_dir(config: &Config) -> Result<std::fs::File> {
    let data_dir = &config.server.data_dir;
    create_private_dir(data_dir)?;
    lock_data_dir(data_dir)
}

/// The CA of `[ca]`, loaded or generated, and the canonical path of the
/// root certificate PEM clients must trust (written into the data
/// directory when the CA's files live elsewhere).
pub(super) fn open_ca(config: &Config) -> Result<(Arc<Ca>, PathBuf)> {
    let data_dir = &config.server.data_dir;
    let ca = Arc::new(Ca::load_or_generate(
        data_dir,
        &CaSettings::from(&config.ca),
    )?);
    let root_pem_path = data_dir.join("root.pem");
    if !root_pem_path.exists() {
        std::fs::write(&root_pem_path, ca.root_pem()).map_err(Error::internal)?;
    }
    let root_pem_path = std::fs::canonicalize(&root_pem_path).map_err(Error::internal)?;
    Ok((ca, root_pem_path))
}

/// The database of `[store]`: PostgreSQL when `url` is set (shared with
/// other instances: nothing at start-up touches what they hold), else the
/// SQLite file, with the finalize leases a previous run left released.
pub(super) async fn open_store(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Arc<dyn Database>> {
    if let Some(url) = &config.store.url {
        let store = PgStore::open(url, config.store.max_connections)
            .await
            .map_err(|e| {
                Error::internal(format_args!(
                    "cannot open the PostgreSQL database {}: {}",
                    describe_url(url),
                    e.cause()
                ))
            })?;
        tracing::info!(database = %describe_url(url), "store: PostgreSQL");
        return Ok(Arc::new(store));
    }
    let store_path = config.store_path();
    let store = SqliteStore::open_with_metrics(&store_path, config.store.durability, metrics.clone())
        .await
        .map_err(|e| {
            Error::internal(format_args!(
                "cannot open the database {}: {} (the file and its directory must be writable by this user)",
                store_path.display(),
                e.cause()
            ))
        })?;
    let released = store.release_all_leases().await?;
    if released > 0 {
        tracing::warn!(
            orders = released,
            "released finalize leases left by a previous run"
        );
    }
    Ok(Arc::new(store))
}

/// Replay nonces: this process's own on a database no other instance
/// shares, the fleet's (in the database) otherwise.
pub(super) async fn nonces(
    config: &Config,
    store: &Arc<dyn Database>,
    clock: &Arc<dyn Clock>,
) -> Result<NonceService> {
    let lifetime = config.acme.nonce_lifetime;
    if store.is_shared() {
        SharedNonces::open(store.clone(), clock.clone(), lifetime).await
    } else {
        Ok(NonceService::local(lifetime))
    }
}

/// Validates again the attempts left processing: all of them (a previous
/// run left them), or those started before `started_before` (on a shared
/// database, where a live peer may be validating the newer ones).
pub(super) async fn resume_validations(
    store: &Arc<dyn Store>,
    va: &Va,
    ra: &Ra,
    started_before: Option<crate::model::Timestamp>,
) -> Result<()> {
    let pending = store.authzs_processing().await?;
    let mut accounts = HashMap::new();
    for authz in &pending {
        if let Some(acct) = store.account_by_id(&authz.account_id).await? {
            accounts.insert(authz.account_id.clone(), acct.jwk);
        }
    }
    va.resume(
        pending,
        started_before,
        |authz| {
            let jwk = crate::jose::Jwk::from_json_str(accounts.get(&authz.account_id)?).ok()?;
            Some(crate::jose::key_authorization(&authz.token, &jwk))
        },
        |authz| ra.account_uri(&authz.account_id),
    )
    .await
}

pub(super) fn install_crypto_provider() {
    // Several tests may race to install it; only the first one wins, and
    // every one of them installs the same aws-lc-rs provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub(super) fn tls_config(config: &Config, ca: &Ca) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) =
        match (&config.server.tls_cert, &config.server.tls_key) {
            (Some(cert), Some(key)) => {
                use rustls::pki_types::pem::PemObject;
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| Error::internal(format_args!("{}: {e}", cert.display())))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| Error::internal(format_args!("{}: {e}", key.display())))?;
                (chain, key)
            }
            _ => {
                let names: Vec<Identifier> = config
                    .server
                    .tls_names
                    .iter()
                    .map(|n| match n.parse::<IpAddr>() {
                        Ok(ip) => Identifier::ip(ip.to_string()),
                        Err(_) => Identifier::dns(n.clone()),
                    })
                    .collect();
                let (mut chain, key) = ca.tls_server_identity(&names)?;
                // Chain 0's upper intermediates, if it has any, follow the
                // signing intermediate.
                chain.extend(ca.chains()[0].intermediates_der().iter().skip(1).cloned());
                (
                    chain.into_iter().map(CertificateDer::from).collect(),
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
                )
            }
        };
    let mut tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::internal(format_args!("listener certificate: {e}")))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// The VA's validator and CAA checker for `config`: always-valid (no
/// network, no CAA), or the network validators on the VA's own resolver.
#[allow(clippy::type_complexity)]
fn validators(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<dyn Validator>, Option<Arc<CaaChecker>>)> {
    let v = &config.validation;
    if v.always_valid {
        return Ok((Arc::new(AlwaysValid), None));
    }
    let servers = if v.dns_servers.is_empty() {
        system_nameservers()?
    } else {
        v.dns_servers.clone()
    };
    let resolver: Arc<dyn Resolver> = Arc::new(HickoryResolver::new(
        &servers,
        v.dns_timeout,
        2,
        v.dns_case_randomization.applies_to(&servers),
    )?);
    let policy = AddressPolicy {
        allow_reserved: v.allow_reserved_addresses,
    };
    let caa = v.caa.then(|| {
        Arc::new(CaaChecker::new(
            resolver.clone(),
            config.acme.caa_identities.clone(),
        ))
    });
    tracing::info!(dns = %resolver.describe(), caa = v.caa, "validating challenges");
    let mut http01 = Http01::new(resolver.clone(), policy, v.timeout)
        .with_port(v.http_port)
        .with_https_port(v.https_port)
        .with_any_redirect_port(v.redirect_any_port);
    // Redirects lead only to names under a public suffix (or an allowed
    // special-use domain), like the identifiers themselves; Pebble's
    // leniency (public_suffix_check off) follows any name.
    if config.acme.public_suffix_check {
        http01 = http01.with_redirect_suffix_check(config.acme.allowed_special_use_domains.clone());
    }
    let validator = NetworkValidator {
        http01,
        dns01: Dns01::new(resolver.clone()),
        dns_account01: DnsAccount01::new(resolver.clone()),
        dns_persist01: DnsPersist01::new(
            resolver.clone(),
            clock,
            v.issuer_domain_names(&config.acme).to_vec(),
        ),
        tls_alpn01: TlsAlpn01::new(resolver, policy, v.timeout).with_port(v.tls_port),
        caa: caa.clone(),
    };
    Ok((Arc::new(validator), caa))
}

/// The nameservers of /etc/resolv.conf, which the VA's resolver then asks
/// directly (the system's resolver library is never used).
fn system_nameservers() -> Result<Vec<SocketAddr>> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|v| v.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if servers.is_empty() {
        return Err(Error::internal(
            "no DNS servers: set validation.dns_servers (or use always-valid mode)",
        ));
    }
    Ok(servers)
}

/// Takes an exclusive lock on `<dir>/lock`: two servers on one data
/// directory would each keep their own cache of the same database and
/// diverge. The lock goes with the process (an advisory `flock`, released
/// by the kernel even after a crash).
fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::internal(format_args!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::internal(format_args!(
            "another acme-ca is running on the data directory {} (it holds {}); stop it, or give this one another --data-dir",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::internal(format_args!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Creates `dir` (and parents) readable by the owner only.
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(Error::internal(format_args!(
            "the data directory {} (server.data_dir, or --data-dir) exists and is not a directory",
            dir.display()
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Error::internal(format_args!(
                "cannot create the data directory {} (server.data_dir, or --data-dir): {e}",
                dir.display()
            ))
        })
}

/// The validation authority with its CAA checker, and the rate limiter
/// that counts its failures.
pub(super) struct Validation {
    pub(super) va: Arc<Va>,
    pub(super) caa: Option<Arc<CaaChecker>>,
    pub(super) limits: Option<Arc<Limiter>>,
}

/// Starts the VA (its validators from `[validation]`) and the rate limiter.
pub(super) fn validation(
    config: &Config,
    store: &Arc<dyn Database>,
    clock: &Arc<dyn Clock>,
    chaos: &Arc<crate::chaos::Chaos>,
    metrics: &Arc<Metrics>,
) -> Result<Validation> {
    let (validator, caa) = validators(config, clock.clone())?;
    let va = Va::start(
        store.clone(),
        validator,
        clock.clone(),
        super::settings::va(config, chaos.clone()),
        metrics.clone(),
    );
    let limits = rate_limiter(config, store, clock, metrics, &va);
    Ok(Validation { va, caa, limits })
}

/// The rate limiter of `[rate_limits]`, when limits apply: buckets in the
/// store, and failed validations counted as the VA records them.
fn rate_limiter(
    config: &Config,
    store: &Arc<dyn Database>,
    clock: &Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
    va: &Va,
) -> Option<Arc<Limiter>> {
    if !config
        .rate_limits
        .is_enabled(config.validation.always_valid)
    {
        return None;
    }
    let limiter = Arc::new(Limiter::new(
        store.clone(),
        clock.clone(),
        &config.rate_limits,
        metrics.clone(),
    ));
    va.observe_failures(limiter.clone());
    Some(limiter)
}
