//! Assembly: from a checked [`Config`] to a running server.
//!
//! [`Server::build`] opens the store, loads or creates the CA and wires the
//! RA, VA and front end; [`Server::run`] serves on an already-bound listener
//! (so tests can bind port 0) until the shutdown future completes.

mod fleet;
mod listeners;
mod settings;
mod setup;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::monitor::Monitor;
use crate::http::status::StatusApp;
use crate::http::{self, App, Limits};
use crate::metrics::{Listener, Metrics};
use crate::ra::Ra;
use crate::revocation::{RevocationEvents, StatusService};
use crate::store::Database;
use fleet::{spawn_renewal_scheduler, Fleet};
use listeners::Listeners;
use setup::Validation;

/// A built server, ready to serve.
pub struct Server {
    pub(crate) app: Arc<App>,
    pub(crate) tls: Arc<rustls::ServerConfig>,
    pub(crate) limits: Limits,
    /// Where the root certificate PEM that clients must trust is.
    pub root_pem_path: PathBuf,
    /// The status listener (CRL, OCSP, issuer), when enabled, and its base
    /// URL.
    pub(crate) status: Option<StatusListener>,
    /// The management listener (Pebble's management API), when configured.
    pub(crate) management: Option<TcpListener>,
    /// The operator service's listener and the service, when enabled.
    pub(crate) service: Option<(TcpListener, Arc<crate::service::Service>)>,
    /// The monitoring listener of `[metrics] listen`, when configured.
    pub(crate) metrics_listener: Option<TcpListener>,
    /// Metrics, health and readiness (served on the status listener and
    /// the metrics listener).
    pub(crate) monitor: Arc<Monitor>,
    store: Arc<dyn Database>,
    /// This instance's name in job leases, and the leases it takes.
    fleet: Fleet,
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
        setup::install_crypto_provider();
        let data_lock = setup::open_data_dir(config)?;
        let (ca, root_pem_path) = setup::open_ca(config)?;
        let tls = Arc::new(setup::tls_config(config, &ca)?);
        let metrics = Arc::new(Metrics::new());
        let store = setup::open_store(config, &metrics).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let fleet = Fleet::join(config, &store, &clock).await?;
        let monitor = Arc::new(Monitor::new(
            metrics.clone(),
            store.clone(),
            ca.clone(),
            clock.clone(),
        ));
        let listeners = Listeners::bind(config).await?;
        let status_base = listeners.status.as_ref().map(|(_, base)| base.as_str());
        let urls = settings::cert_urls(config, status_base, listen);
        let events = RevocationEvents::new();
        let status = match listeners.status {
            Some((listener, base_url)) => Some(StatusListener {
                app: status_app(
                    config, &store, &fleet, &ca, &clock, &events, &urls, &monitor,
                )?,
                listener,
                base_url,
            }),
            None => None,
        };
        let chaos = Arc::new(crate::chaos::Chaos::new(config.chaos.clone()));
        let Validation { va, caa, limits } =
            setup::validation(config, &store, &clock, &chaos, &metrics)?;
        let ra = Arc::new(Ra::new(crate::ra::RaParts {
            store: store.clone(),
            shared: store.clone(),
            instance: fleet.instance.clone(),
            ca,
            va: va.clone(),
            clock: clock.clone(),
            policy: settings::policy(config),
            settings: settings::ra(config, settings::base_url(config, listen))?,
            urls,
            revocations: Some(events),
            caa,
            metrics: metrics.clone(),
            limits,
            chaos: chaos.clone(),
        }));
        fleet.resume_validations(config, &store, &va, &ra).await?;
        let nonces = setup::nonces(config, &store, &clock).await?;
        let app = Arc::new(App::new(
            config,
            ra,
            settings::directory_meta(config),
            metrics.clone(),
            chaos,
            nonces,
        ));
        let service = listeners
            .service
            .map(|l| Ok::<_, Error>((l, start_service(config, &app, &store, &fleet, clock)?)))
            .transpose()?;
        let server = Server {
            app,
            service,
            tls,
            limits: settings::limits(config),
            root_pem_path,
            status,
            management: listeners.management,
            metrics_listener: listeners.metrics,
            monitor,
            store,
            fleet,
            _data_lock: data_lock,
        };
        server.count_listeners();
        Ok(server)
    }

    /// Tells the metrics which listeners this server has (`/ready` waits
    /// for each of them).
    fn count_listeners(&self) {
        let m = &self.monitor.metrics;
        m.listener_configured(Listener::Acme);
        for (configured, which) in [
            (self.status.is_some(), Listener::Status),
            (self.management.is_some(), Listener::Management),
            (self.metrics_listener.is_some(), Listener::Metrics),
            (self.service.is_some(), Listener::Service),
        ] {
            if configured {
                m.listener_configured(which);
            }
        }
    }

    /// Serves ACME on `listener` (and the status listener, if any) until
    /// `shutdown` completes, then closes the store.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let timeout = self.app.request_timeout();
        let serve = |l: TcpListener, tls: bool, router: axum::Router, which: Listener| {
            let mut rx = stop_rx.clone();
            // Marked serving here, at the call: ACME's first, then every
            // other listener, before any of them answers a request, even
            // one that waited in the backlog since the "ready" line.
            serving(
                self.monitor.metrics.clone(),
                which,
                http::serve(
                    l,
                    tls.then(|| self.tls.clone()),
                    router,
                    self.limits.clone(),
                    self.monitor.metrics.clone(),
                    which,
                    async move {
                        let _ = rx.wait_for(|s| *s).await;
                    },
                ),
            )
        };
        let acme = serve(
            listener,
            true,
            http::router(self.app.clone()),
            Listener::Acme,
        );
        let with_timeout = |r| http::with_timeout(r, timeout);
        let tasks = [
            self.service.map(|(l, service)| {
                let router = with_timeout(crate::service::http::router(service));
                tokio::spawn(serve(l, true, router, Listener::Service))
            }),
            self.management.map(|l| {
                let router = with_timeout(http::management::router(self.app.clone()));
                tokio::spawn(serve(l, true, router, Listener::Management))
            }),
            self.status.map(|s| {
                let router = with_timeout(http::status::router(s.app));
                tokio::spawn(serve(s.listener, false, router, Listener::Status))
            }),
            self.metrics_listener.map(|l| {
                let router = with_timeout(http::monitor::router(self.monitor.clone()));
                tokio::spawn(serve(l, false, router, Listener::Metrics))
            }),
        ];
        tokio::pin!(acme);
        tokio::select! {
            _ = &mut acme => {}
            _ = shutdown => {
                let _ = stop_tx.send(true);
                acme.await;
            }
        }
        let _ = stop_tx.send(true);
        for t in tasks.into_iter().flatten() {
            let _ = t.await;
        }
        self.fleet.release_all().await;
        if let Err(e) = self.store.close().await {
            tracing::warn!(error = %e.cause(), "closing the database");
        }
    }
}

/// The status listener's application: CRLs, OCSP and the issuer, whose
/// CRLs are signed again after each revocation and on a schedule.
#[allow(clippy::too_many_arguments)]
fn status_app(
    config: &Config,
    store: &Arc<dyn Database>,
    fleet: &Fleet,
    ca: &Arc<crate::ca::Ca>,
    clock: &Arc<dyn Clock>,
    events: &Arc<RevocationEvents>,
    urls: &crate::ra::CertUrls,
    monitor: &Arc<Monitor>,
) -> Result<Arc<StatusApp>> {
    let service = StatusService::new(
        store.clone(),
        store.clone(),
        ca.clone(),
        clock.clone(),
        events.clone(),
        settings::status(config, urls.crl.clone()),
        monitor.metrics.clone(),
    )?;
    service.spawn_refresher(fleet.lease("crl-refresh", Duration::from_secs(90)));
    Ok(Arc::new(StatusApp {
        ca: ca.clone(),
        service,
        monitor: monitor.clone(),
    }))
}

/// The operator service, with its renewal scheduler, webhook delivery and
/// revocation announcements started.
fn start_service(
    config: &Config,
    app: &Arc<App>,
    store: &Arc<dyn Database>,
    fleet: &Fleet,
    clock: Arc<dyn Clock>,
) -> Result<Arc<crate::service::Service>> {
    let service = Arc::new(crate::service::Service::new(
        app.ra().clone(),
        app.metrics().clone(),
        store.clone(),
        store.clone(),
        clock,
        config.service.clone(),
    )?);
    spawn_renewal_scheduler(
        service.clone(),
        fleet.lease("service-renewals", Duration::from_secs(90)),
    );
    service
        .notifier
        .spawn(fleet.lease("webhook-delivery", Duration::from_secs(15)));
    service.announce_revocations();
    Ok(service)
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
