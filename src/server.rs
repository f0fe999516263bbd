//! Assembly: from a checked [`Config`] to a running server.
//!
//! [`Server::build`] opens the store, loads or creates the CA and wires the
//! RA, VA and front end; [`Server::run`] serves on an already-bound listener
//! (so tests can bind port 0) until the shutdown future completes.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::ca::Ca;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::monitor::Monitor;
use crate::http::status::StatusApp;
use crate::http::{self, nonce::NonceService, App, Limits};
use crate::jose::eab::MacKey;
use crate::metrics::{Listener, Metrics};
use crate::protocol::{DirectoryMeta, Identifier};
use crate::ra::profile::Profile;
use crate::ra::{policy::Policy, CertUrls, Ra, RaSettings};
use crate::revocation::{RevocationEvents, StatusService, StatusSettings};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::va::addr::AddressPolicy;
use crate::va::caa::CaaChecker;
use crate::va::dns::Resolver;
use crate::va::dns01::Dns01;
use crate::va::dns_account01::DnsAccount01;
use crate::va::dns_persist01::DnsPersist01;
use crate::va::hickory::HickoryResolver;
use crate::va::http01::Http01;
use crate::va::tlsalpn01::TlsAlpn01;
use crate::va::{AlwaysValid, NetworkValidator, Va, VaSettings, Validator};

/// A built server, ready to serve.
pub struct Server {
    pub app: Arc<App>,
    pub tls: Arc<rustls::ServerConfig>,
    pub limits: Limits,
    /// Where the root certificate PEM that clients must trust is.
    pub root_pem_path: PathBuf,
    /// The status listener (CRL, OCSP, issuer), when enabled, and its base
    /// URL.
    pub status: Option<StatusListener>,
    /// The management listener (Pebble's management API), when configured.
    pub management: Option<TcpListener>,
    /// The operator service's listener and the service, when enabled.
    pub service: Option<(TcpListener, Arc<crate::service::Service>)>,
    /// The monitoring listener of `[metrics] listen`, when configured.
    pub metrics_listener: Option<TcpListener>,
    /// Metrics, health and readiness (served on the status listener and
    /// the metrics listener).
    pub monitor: Arc<Monitor>,
    store: Arc<SqliteStore>,
    /// The exclusive lock on the data directory, held while the server
    /// lives.
    _data_lock: std::fs::File,
}

/// The bound plain-HTTP status listener.
pub struct StatusListener {
    pub listener: TcpListener,
    pub base_url: String,
    pub(crate) app: Arc<StatusApp>,
}

/// The base URL for `addr` when none is configured: loopback and wildcard
/// addresses become `localhost`, which the listener certificate covers.
pub fn default_base_url(addr: SocketAddr) -> String {
    match addr.ip() {
        ip if ip.is_unspecified() => format!("https://localhost:{}", addr.port()),
        IpAddr::V4(v4) => format!("https://{v4}:{}", addr.port()),
        IpAddr::V6(v6) => format!("https://[{v6}]:{}", addr.port()),
    }
}

fn install_crypto_provider() {
    // Several tests may race to install it; only the first one wins, and
    // every one of them installs the same aws-lc-rs provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn tls_config(config: &Config, ca: &Ca) -> Result<rustls::ServerConfig> {
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

impl Server {
    /// The lines that announce the listeners besides ACME's (status,
    /// management, service, metrics), each "`<name> <url>`", for the
    /// start-up output.
    pub fn listener_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(status) = &self.status {
            out.push(format!("status {}", status.base_url));
        }
        if let Some(addr) = self.management.as_ref().and_then(|l| l.local_addr().ok()) {
            out.push(format!("management https://{addr}"));
        }
        if let Some(addr) = self.service.as_ref().and_then(|(l, _)| l.local_addr().ok()) {
            out.push(format!("service https://{addr}"));
        }
        if let Some(addr) = self
            .metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
        {
            out.push(format!("metrics http://{addr}/metrics"));
        }
        out
    }
}

impl Server {
    /// Builds everything from a validated config. `listen` is the address
    /// actually bound (it may differ from the config's when port 0 was
    /// asked for).
    pub async fn build(config: &Config, listen: SocketAddr) -> Result<Server> {
        install_crypto_provider();
        let data_dir = &config.server.data_dir;
        create_private_dir(data_dir)?;
        let data_lock = lock_data_dir(data_dir)?;
        let ca = Arc::new(Ca::load_or_generate(data_dir, &config.ca.settings())?);
        let root_pem_path = data_dir.join("root.pem");
        if !root_pem_path.exists() {
            // Configured CA files live elsewhere; clients still find the
            // root here.
            std::fs::write(&root_pem_path, ca.root_pem()).map_err(Error::internal)?;
        }
        let root_pem_path = std::fs::canonicalize(&root_pem_path).map_err(Error::internal)?;
        let tls = Arc::new(tls_config(config, &ca)?);

        let metrics = Arc::new(Metrics::new());
        let store_path = config.store_path();
        let store = Arc::new(
            SqliteStore::open_with_metrics(&store_path, config.store.durability, metrics.clone())
                .await
                .map_err(|e| {
                    Error::internal(format_args!(
                        "cannot open the database {}: {} (the file and its directory must be writable by this user)",
                        store_path.display(),
                        e.cause()
                    ))
                })?,
        );
        let released = store.release_all_leases().await?;
        if released > 0 {
            tracing::warn!(
                orders = released,
                "released finalize leases left by a previous run"
            );
        }
        let store_dyn: Arc<dyn Store> = store.clone();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let monitor = Arc::new(Monitor::new(
            metrics.clone(),
            store_dyn.clone(),
            ca.clone(),
            clock.clone(),
        ));
        metrics.listener_configured(Listener::Acme);

        // The status listener is bound first: its address goes into every
        // certificate.
        let status_bound = if config.status.enabled {
            let l = TcpListener::bind(config.status.listen).await.map_err(|e| {
                Error::internal(format_args!(
                    "cannot listen on {} (status.listen, or --status-listen): {e}; stop what holds it or choose another address",
                    config.status.listen
                ))
            })?;
            let addr = l.local_addr().map_err(Error::internal)?;
            Some((l, config.status.base_url_for(addr)))
        } else {
            None
        };
        let urls = match &status_bound {
            Some((_, base)) => CertUrls {
                ca_issuers: Some(format!("{base}{}", http::status::paths::ISSUER)),
                ocsp: Some(
                    config
                        .status
                        .ocsp_url
                        .clone()
                        .unwrap_or_else(|| format!("{base}{}", http::status::paths::OCSP)),
                ),
                crl: Some(format!("{base}{}", http::status::paths::CRL)),
            },
            None => CertUrls {
                ca_issuers: Some(format!(
                    "{}{}",
                    config
                        .server
                        .external_url
                        .clone()
                        .unwrap_or_else(|| default_base_url(listen)),
                    http::paths::ISSUER_CERT
                )),
                ocsp: None,
                crl: None,
            },
        };
        let events = RevocationEvents::new();
        let status = match status_bound {
            Some((listener, base_url)) => {
                let service = StatusService::new(
                    store_dyn.clone(),
                    ca.clone(),
                    clock.clone(),
                    events.clone(),
                    StatusSettings {
                        crl_lifetime: config.status.crl_lifetime,
                        crl_refresh: config.status.crl_refresh,
                        ocsp_lifetime: config.status.ocsp_lifetime,
                        ocsp_delegated: config.status.ocsp_delegated,
                        crl_url: urls.crl.clone(),
                    },
                    metrics.clone(),
                )?;
                metrics.listener_configured(Listener::Status);
                service.spawn_refresher();
                Some(StatusListener {
                    listener,
                    base_url,
                    app: Arc::new(StatusApp {
                        ca: ca.clone(),
                        service,
                        monitor: monitor.clone(),
                    }),
                })
            }
            None => None,
        };
        let management = match config.management.listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                Error::internal(format_args!(
                    "cannot listen on {addr} (management.listen): {e}; stop what holds it or choose another address"
                ))
            })?),
            None => None,
        };
        if management.is_some() {
            metrics.listener_configured(Listener::Management);
        }
        let metrics_listener = match config.metrics.listen {
            Some(addr) => {
                let l = TcpListener::bind(addr).await.map_err(|e| {
                    Error::internal(format_args!(
                        "cannot listen on {addr} (metrics.listen): {e}; stop what holds it or choose another address"
                    ))
                })?;
                let bound = l.local_addr().map_err(Error::internal)?;
                tracing::info!(addr = %bound, "metrics listener");
                metrics.listener_configured(Listener::Metrics);
                Some(l)
            }
            None => None,
        };
        let profiles: std::collections::BTreeMap<String, Profile> = config
            .effective_profiles()
            .iter()
            .map(|(name, p)| (name.clone(), Profile::from_config(name, p)))
            .collect();
        let mut eab_keys = std::collections::HashMap::new();
        for (kid, key) in &config.acme.eab_keys {
            let key = MacKey::from_b64url(key)
                .map_err(|e| Error::internal(format_args!("acme.eab_keys.{kid}: {}", e.detail)))?;
            eab_keys.insert(kid.clone(), key);
        }

        let chaos = Arc::new(crate::chaos::Chaos::new(config.chaos.clone()));
        let (validator, caa) = validators(config, clock.clone())?;
        let va = Va::start(
            store_dyn.clone(),
            validator,
            clock.clone(),
            VaSettings {
                inline: config.validation.always_valid,
                concurrency: config.validation.concurrency,
                queue_size: config.validation.queue_size,
                timeout: config.validation.timeout,
                random_delay: config.validation.random_delay,
                valid_authz_lifetime: config.acme.valid_authz_lifetime,
                chaos: chaos.clone(),
            },
            metrics.clone(),
        );

        let base = config
            .server
            .external_url
            .clone()
            .unwrap_or_else(|| default_base_url(listen));
        // Rate limits ([rate_limits]): buckets in the store; failed
        // validations are counted as the VA records them.
        let limits = config
            .rate_limits
            .is_enabled(config.validation.always_valid)
            .then(|| {
                let limiter = Arc::new(crate::ratelimit::Limiter::new(
                    store.clone(),
                    clock.clone(),
                    &config.rate_limits,
                    metrics.clone(),
                ));
                va.observe_failures(limiter.clone());
                limiter
            });
        let ra = Ra {
            store: store_dyn.clone(),
            ca,
            va: va.clone(),
            clock,
            policy: Policy {
                blocked_domains: config.acme.blocked_domains.clone(),
                allow_ip: config.acme.allow_ip_identifiers,
                allowed_special_use: config.acme.allowed_special_use_domains.clone(),
                skip_public_suffix_check: !config.acme.public_suffix_check,
            },
            settings: RaSettings {
                order_lifetime: config.acme.order_lifetime,
                pending_authz_lifetime: config.acme.pending_authz_lifetime,
                valid_authz_lifetime: config.acme.valid_authz_lifetime,
                backdate: config.ca.backdate,
                profiles: profiles.clone(),
                default_profile: config.acme.default_profile.clone(),
                random_profile: config.acme.random_profile,
                authz_reuse: config.acme.authz_reuse,
                eab_required: config.acme.external_account_required,
                eab_keys,
                eab_key_reuse: config.acme.eab_key_reuse,
                min_rsa_bits: config.acme.min_rsa_bits,
                serve_revoked_certificates: config.acme.serve_revoked_certificates,
                finalize_lease: Duration::from_secs(30),
                orders_per_page: config.acme.orders_per_page,
                require_tos: config.acme.terms_of_service.is_some(),
                base_url: base.clone(),
                caa_recheck_after: config.validation.caa_recheck_after,
                dns_account_01: config.validation.dns_account_01,
                dns_persist_01: config.validation.dns_persist_01,
                issuer_domain_names: config.validation.issuer_domain_names(&config.acme).to_vec(),
            },
            urls,
            revocations: Some(events),
            ari_overrides: Default::default(),
            caa,
            metrics: metrics.clone(),
            limits: limits.clone(),
            chaos: chaos.clone(),
        };
        // Attempts a previous run left processing are validated again.
        let resume_store = store_dyn.clone();
        let accounts = {
            let mut map = std::collections::HashMap::new();
            for authz in resume_store.authzs_processing().await? {
                if let Some(acct) = resume_store.account_by_id(&authz.account_id).await? {
                    map.insert(authz.account_id.clone(), acct.jwk);
                }
            }
            map
        };
        va.resume(
            |authz| {
                let jwk = crate::jose::Jwk::from_json_str(accounts.get(&authz.account_id)?).ok()?;
                Some(crate::jose::key_authorization(&authz.token, &jwk))
            },
            |authz| ra.account_uri(&authz.account_id),
        )
        .await?;

        let app = Arc::new(App {
            ra: Arc::new(ra),
            nonces: NonceService::new(config.acme.nonce_lifetime),
            keys: Default::default(),
            directory_meta: DirectoryMeta {
                terms_of_service: config.acme.terms_of_service.clone(),
                website: config.acme.website.clone(),
                caa_identities: config.acme.caa_identities.clone(),
                external_account_required: config.acme.external_account_required,
                profiles: profiles
                    .values()
                    .map(|p| (p.name.clone(), p.description.clone()))
                    .collect(),
            },
            dir_paths: if config.server.pebble_paths {
                http::paths::PEBBLE
            } else {
                http::paths::ACME
            },
            external_url: config.server.external_url.clone(),
            max_body: config.server.max_body_bytes,
            retry_after: config.acme.retry_after,
            authz_retry_after: config
                .acme
                .authz_retry_after
                .unwrap_or(config.acme.retry_after),
            bad_nonce_percent: config.acme.bad_nonce_percent,
            request_timeout: config.server.request_timeout,
            log_requests: config.server.log_requests,
            ari_retry_after: config.acme.ari_retry_after,
            ari_explanation_url: config.acme.ari_explanation_url.clone(),
            metrics: metrics.clone(),
            trusted_proxies: config.rate_limits.proxies(),
            chaos,
        });
        let service = if config.service.enabled {
            let listener = TcpListener::bind(config.service.listen)
                .await
                .map_err(|e| {
                    Error::internal(format_args!(
                        "cannot listen on {} (service.listen): {e}; stop what holds it or choose another address",
                        config.service.listen
                    ))
                })?;
            let service = Arc::new(crate::service::Service::new(
                app.ra.clone(),
                app.metrics.clone(),
                store.clone(),
                app.ra.clock.clone(),
                config.service.clone(),
            )?);
            spawn_renewal_scheduler(service.clone());
            service.notifier.spawn();
            service.announce_revocations();
            metrics.listener_configured(Listener::Service);
            Some((listener, service))
        } else {
            None
        };
        Ok(Server {
            app,
            service,
            tls,
            limits: Limits {
                max_connections: config.server.max_connections,
                max_connections_per_client: config.server.max_connections_per_client,
                handshake_timeout: config.server.handshake_timeout,
                idle_timeout: config.server.idle_timeout,
            },
            root_pem_path,
            status,
            management,
            metrics_listener,
            monitor,
            store,
            _data_lock: data_lock,
        })
    }

    /// Serves ACME on `listener` (and the status listener, if any) until
    /// `shutdown` completes, then closes the store.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let metrics = self.monitor.metrics.clone();
        let serving = |which, serve| serving(metrics.clone(), which, serve);
        // ACME's first: every listener counts as serving (for `/ready`)
        // before any of them answers a request, even one that waited in
        // the backlog since the "ready" line.
        let acme = serving(
            Listener::Acme,
            http::serve(
                listener,
                Some(self.tls.clone()),
                http::router(self.app.clone()),
                self.limits.clone(),
                metrics.clone(),
                Listener::Acme,
                stopped(stop_rx.clone()),
            ),
        );
        let service_task = self.service.map(|(l, service)| {
            tokio::spawn(serving(
                Listener::Service,
                http::serve(
                    l,
                    Some(self.tls.clone()),
                    http::with_timeout(
                        crate::service::http::router(service),
                        self.app.request_timeout,
                    ),
                    self.limits.clone(),
                    metrics.clone(),
                    Listener::Service,
                    stopped(stop_rx.clone()),
                ),
            ))
        });
        let management_task = self.management.map(|l| {
            tokio::spawn(serving(
                Listener::Management,
                http::serve(
                    l,
                    Some(self.tls.clone()),
                    http::with_timeout(
                        http::management::router(self.app.clone()),
                        self.app.request_timeout,
                    ),
                    self.limits.clone(),
                    metrics.clone(),
                    Listener::Management,
                    stopped(stop_rx.clone()),
                ),
            ))
        });
        let status_task = self.status.map(|s| {
            let router = http::with_timeout(http::status::router(s.app), self.app.request_timeout);
            tokio::spawn(serving(
                Listener::Status,
                http::serve(
                    s.listener,
                    None,
                    router,
                    self.limits.clone(),
                    metrics.clone(),
                    Listener::Status,
                    stopped(stop_rx.clone()),
                ),
            ))
        });
        let metrics_task = self.metrics_listener.map(|l| {
            let router = http::with_timeout(
                http::monitor::router(self.monitor.clone()),
                self.app.request_timeout,
            );
            tokio::spawn(serving(
                Listener::Metrics,
                http::serve(
                    l,
                    None,
                    router,
                    self.limits.clone(),
                    metrics.clone(),
                    Listener::Metrics,
                    stopped(stop_rx.clone()),
                ),
            ))
        });
        tokio::pin!(acme);
        tokio::select! {
            _ = &mut acme => {}
            _ = shutdown => {
                let _ = stop_tx.send(true);
                acme.await;
            }
        }
        let _ = stop_tx.send(true);
        for t in [status_task, management_task, service_task, metrics_task]
            .into_iter()
            .flatten()
        {
            let _ = t.await;
        }
        self.store.close().await;
    }
}

/// A listener's accept loop `serve`, up (for `/ready` and
/// `acme_ca_listener_up`) from this call, before the loop is first polled,
/// until the loop ends or is dropped. Marking it at the call lets
/// `Server::run` mark every listener before any of them serves a request.
fn serving(
    metrics: Arc<Metrics>,
    which: Listener,
    serve: impl Future<Output = ()>,
) -> impl Future<Output = ()> {
    /// Marks the listener down when the loop ends, however it ends.
    struct Up(Arc<Metrics>, Listener);
    impl Drop for Up {
        fn drop(&mut self) {
            self.0.listener_serving(self.1, false);
        }
    }
    metrics.listener_serving(which, true);
    let up = Up(metrics, which);
    async move {
        serve.await;
        drop(up);
    }
}

/// Renews the operator service's auto-renew certificates as they enter
/// their renewal window: a check at start, then every ten minutes.
fn spawn_renewal_scheduler(service: Arc<crate::service::Service>) {
    tokio::spawn(async move {
        loop {
            match service.renew_due().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(renewed = n, "renewal scheduler"),
                Err(e) => tracing::warn!(error = %e, "renewal scheduler"),
            }
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
    });
}

/// Completes at SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
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
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File> {
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
fn create_private_dir(dir: &std::path::Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the ACME listener counted as serving only once `run`
    /// first polled it, after the other listeners' tasks were spawned, so
    /// a `/ready` waiting in the status listener's backlog since the
    /// "ready" line could be answered 503 (listener:acme not serving).
    /// A listener is up from the `serving` call, before its loop is
    /// polled, and down when the loop ends or is dropped.
    #[test]
    fn a_listener_is_up_from_the_serving_call_until_its_loop_ends() {
        let metrics = Arc::new(Metrics::new());
        metrics.listener_configured(Listener::Acme);
        assert_eq!(metrics.listeners_down(), vec![Listener::Acme]);
        let never = serving(metrics.clone(), Listener::Acme, std::future::pending());
        assert!(
            metrics.listeners_down().is_empty(),
            "up before being polled"
        );
        drop(never);
        assert_eq!(metrics.listeners_down(), vec![Listener::Acme]);
        let done = serving(metrics.clone(), Listener::Acme, async {});
        assert!(metrics.listeners_down().is_empty());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(done);
        assert_eq!(metrics.listeners_down(), vec![Listener::Acme]);
    }

    /// A configured certificate and key serve the listener instead of a
    /// generated one.
    #[tokio::test]
    async fn configured_listener_certificate_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().join("data");
        config.validation.always_valid = true;
        config.status.listen = "127.0.0.1:0".parse().unwrap();
        // Make a chain with a CA of its own, and hand it over as files.
        let other = Ca::load_or_generate(&dir.path().join("other"), &config.ca.settings()).unwrap();
        let (chain, key) = other
            .tls_server_identity(&[Identifier::dns("acme.test")])
            .unwrap();
        let pem: String = chain
            .iter()
            .map(|c| der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, c).unwrap())
            .collect();
        let key_pem =
            der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &key).unwrap();
        std::fs::write(dir.path().join("tls.pem"), pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), key_pem).unwrap();
        config.server.tls_cert = Some(dir.path().join("tls.pem"));
        config.server.tls_key = Some(dir.path().join("tls.key"));
        config.validate().unwrap();
        let server = Server::build(&config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        // A TLS client that trusts only the other CA's root, for acme.test.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(other.root_der().to_vec().into()).unwrap();
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("acme.test").unwrap();
        connector
            .connect(name, tcp)
            .await
            .expect("handshake with the configured certificate");
        let _ = stop.send(());
        task.await.unwrap();
    }
}
