//! The thin HTTP front end: TLS accept loop, router, the one wrapper that
//! adds ACME's shared headers, and the error edge.
//!
//! Bounds: at most `max_connections` connections at once, and
//! `max_connections_per_client` from one address; a TLS handshake and the
//! request headers must arrive within `handshake_timeout`; a connection
//! without a request for `idle_timeout` is closed (`conn`); a body is read
//! up to `max_body_bytes`; a whole request is cut off after
//! `request_timeout`. An early answer over HTTP/2 waits for the end of a
//! bounded upload (`hold`).

mod conn;
pub(crate) mod handlers;
mod hold;
pub(crate) mod management;
pub(crate) mod monitor;
pub(crate) mod nonce;
pub(crate) mod problem;
mod repoll;
pub(crate) mod request;
pub(crate) mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, ErrorKind};
use crate::metrics::{ConnectionClosed, Listener, Metrics, Route};
use crate::protocol::DirectoryMeta;
use crate::ra::Ra;
pub(crate) use nonce::{NonceService, SharedNonces};

/// URL paths of every resource (kept with the wire protocol).
pub(crate) use crate::protocol::paths;

/// Everything a request handler can reach.
pub(crate) struct App {
    ra: Arc<Ra>,
    nonces: NonceService,
    keys: request::KeyCache,
    directory_meta: DirectoryMeta,
    /// The paths the directory lists.
    dir_paths: paths::DirPaths,
    external_url: Option<String>,
    max_body: usize,
    /// Retry-After of processing orders, and of processing authorizations
    /// and challenges.
    retry_after: Duration,
    authz_retry_after: Duration,
    /// Percentage of good nonces refused as badNonce (Pebble's
    /// PEBBLE_WFE_NONCEREJECT).
    bad_nonce_percent: u8,
    request_timeout: Duration,
    /// One log line per request (`server.log_requests`).
    log_requests: bool,
    /// ARI answers' Retry-After and explanationURL.
    ari_retry_after: Duration,
    ari_explanation_url: Option<String>,
    /// The process's metrics (the same `Arc` the RA, VA and store count
    /// into).
    metrics: Arc<Metrics>,
    /// Peers whose `X-Forwarded-For` names the client
    /// (`rate_limits.trusted_proxies`).
    trusted_proxies: Vec<crate::ratelimit::Prefix>,
    /// Faults injected on purpose (docs/CHAOS.md); the RA and VA share it.
    chaos: Arc<crate::chaos::Chaos>,
}

impl App {
    /// The ACME front end around `ra`, with `[server]` and `[acme]`'s
    /// settings and the directory's `meta`.
    pub(crate) fn new(
        config: &crate::config::Config,
        ra: Arc<Ra>,
        directory_meta: DirectoryMeta,
        metrics: Arc<Metrics>,
        chaos: Arc<crate::chaos::Chaos>,
        nonces: NonceService,
    ) -> App {
        let a = &config.acme;
        App {
            ra,
            nonces,
            keys: Default::default(),
            directory_meta,
            dir_paths: match config.server.pebble_paths {
                true => paths::PEBBLE,
                false => paths::ACME,
            },
            external_url: config.server.external_url.clone(),
            max_body: config.server.max_body_bytes,
            retry_after: a.retry_after,
            authz_retry_after: a.authz_retry_after.unwrap_or(a.retry_after),
            bad_nonce_percent: a.bad_nonce_percent,
            request_timeout: config.server.request_timeout,
            log_requests: config.server.log_requests,
            ari_retry_after: a.ari_retry_after,
            ari_explanation_url: a.ari_explanation_url.clone(),
            metrics,
            trusted_proxies: config.rate_limits.proxies(),
            chaos,
        }
    }

    /// The RA behind this front end.
    pub(crate) fn ra(&self) -> &Arc<Ra> {
        &self.ra
    }

    /// The process's metrics.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// How long one request may take.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

/// Put on a response by chaos to have [`serve`] close the connection
/// without sending it.
#[derive(Debug, Clone, Copy)]
struct DropConnection;

/// Which chaos endpoint a matched route template is.
fn chaos_endpoint(template: &str) -> Option<crate::chaos::Endpoint> {
    use crate::chaos::Endpoint as E;
    for p in [paths::ACME, paths::PEBBLE] {
        let found = match template {
            t if t == p.directory => Some(E::Directory),
            t if t == p.new_nonce => Some(E::NewNonce),
            t if t == p.new_account => Some(E::NewAccount),
            t if t == p.new_order => Some(E::NewOrder),
            t if t == p.new_authz => Some(E::NewAuthz),
            t if t == p.revoke_cert => Some(E::RevokeCert),
            t if t == p.key_change => Some(E::KeyChange),
            t if t.strip_prefix(p.renewal_info) == Some("/{id}") => Some(E::RenewalInfo),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    match template {
        "/acme/acct/{id}" => Some(E::Account),
        "/acme/acct/{id}/orders" => Some(E::Orders),
        "/acme/order/{id}" => Some(E::Order),
        "/acme/order/{id}/finalize" => Some(E::Finalize),
        "/acme/authz/{id}" => Some(E::Authz),
        "/acme/chall/{authz}/{kind}" => Some(E::Challenge),
        "/acme/cert/{id}" | "/acme/cert/{id}/alt/{n}" => Some(E::Certificate),
        _ => None,
    }
}

/// The answer chaos gives instead of the real one.
fn chaos_answer(endpoint: crate::chaos::Endpoint, injected: crate::chaos::Injected) -> Response {
    use crate::chaos::Fault;
    let secs = injected.retry_after;
    match injected.fault {
        Fault::Unavailable => problem::with_status(
            Error::new(
                ErrorKind::ServerInternal,
                format!(
                    "chaos: {} is unavailable on purpose; retry after {secs} s",
                    endpoint.name()
                ),
            )
            .with_retry_after(secs),
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
        ),
        Fault::RateLimited => Error::new(
            ErrorKind::RateLimited,
            format!(
                "chaos: {} is rate limited on purpose; retry after {secs} s",
                endpoint.name()
            ),
        )
        .with_retry_after(secs)
        .into_response(),
        Fault::Drop => {
            let mut resp = axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
            resp.extensions_mut().insert(DropConnection);
            resp
        }
    }
}

/// The address of the TCP peer a request came over, put into every
/// request's extensions by [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// The most `X-Forwarded-For` entries looked at (from the right).
const MAX_FORWARDED_HOPS: usize = 16;

/// The client's address: the TCP peer's, unless the peer is a trusted
/// proxy; then the rightmost `X-Forwarded-For` entry that is not a trusted
/// proxy (entries to its left were written by the client and prove
/// nothing). A malformed header leaves the peer's address. None when the
/// request came without a peer (in-process tests).
pub(crate) fn client_ip(
    peer: Option<SocketAddr>,
    headers: &axum::http::HeaderMap,
    trusted: &[crate::ratelimit::Prefix],
) -> Option<std::net::IpAddr> {
    let peer = peer?.ip();
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|p| p.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return Some(peer);
        };
        entries.extend(text.split(',').map(str::trim));
    }
    for entry in entries.iter().rev().take(MAX_FORWARDED_HOPS) {
        let Ok(ip) = entry.parse::<std::net::IpAddr>() else {
            return Some(peer);
        };
        if !is_trusted(ip) {
            return Some(ip);
        }
    }
    Some(peer)
}

/// The router, without sockets, so tests can drive it in process.
pub(crate) fn router(app: Arc<App>) -> Router {
    use handlers as h;
    let mut router = Router::new();
    // The directory's resources under both namings (Pebble's revoke-cert
    // path is the same as ours only in its last segment).
    for p in [paths::ACME, paths::PEBBLE] {
        router = router
            .route(p.directory, get(h::directory).post(h::directory))
            .route(
                p.new_nonce,
                get(h::new_nonce)
                    .head(h::new_nonce)
                    .fallback(h::method_not_allowed),
            )
            .route(
                p.new_account,
                post(h::new_account).fallback(h::method_not_allowed),
            )
            .route(
                p.new_order,
                post(h::new_order).fallback(h::method_not_allowed),
            )
            .route(
                p.key_change,
                post(h::key_change).fallback(h::method_not_allowed),
            )
            .route(
                p.revoke_cert,
                post(h::revoke_cert).fallback(h::method_not_allowed),
            )
            .route(
                &format!("{}/{{id}}", p.renewal_info),
                get(h::renewal_info).fallback(h::method_not_allowed),
            );
    }
    let router = router
        .route(
            paths::NEW_AUTHZ,
            post(h::new_authz).fallback(h::method_not_allowed),
        )
        .route(
            "/acme/acct/{id}",
            post(h::account).fallback(h::method_not_allowed),
        )
        .route(
            "/acme/acct/{id}/orders",
            post(h::orders).fallback(h::method_not_allowed),
        )
        .route(
            "/acme/order/{id}",
            post(h::order).fallback(h::method_not_allowed),
        )
        .route(
            "/acme/order/{id}/finalize",
            post(h::finalize).fallback(h::method_not_allowed),
        )
        .route(
            "/acme/authz/{id}",
            post(h::authz).fallback(h::method_not_allowed),
        )
        .route(
            "/acme/chall/{authz}/{kind}",
            post(h::challenge).fallback(h::method_not_allowed),
        )
        .route(
            "/acme/cert/{id}",
            post(h::certificate).fallback(h::method_not_allowed),
        )
        .route(
            "/acme/cert/{id}/alt/{n}",
            post(h::certificate_alternate).fallback(h::method_not_allowed),
        )
        .route(paths::ISSUER_CERT, get(h::issuer_cert))
        .fallback(h::not_found)
        .layer(middleware::from_fn_with_state(app.clone(), acme_headers));
    instrument(router, app.metrics.clone(), Listener::Acme).with_state(app)
}

/// The one wrapper around every route: a fresh `Replay-Nonce` on every
/// response to a POST and on newNonce (RFC 8555 §6.5, §7.2), `Link:
/// rel="index"` (§7.1), no caching of POST answers, the request timeout,
/// and the request log line.
async fn acme_headers(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    // Only kept for the log line; bounded by hyper's header limits.
    let logged = app.log_requests.then(|| {
        let slot = request::LoggedAccount::default();
        req.extensions_mut().insert(slot.clone());
        // MatchedPath is a shared string: cloning it does not allocate.
        let route = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .cloned();
        (route, req.uri().path().to_owned(), slot)
    });
    let path = req.uri().path();
    let path_is_nonce = path == paths::ACME.new_nonce || path == paths::PEBBLE.new_nonce;
    let path_is_directory = path == paths::ACME.directory || path == paths::PEBBLE.directory;
    // An invalid Host gets no Link header: it is never reflected.
    let base = request::BaseUrl::derive(app.external_url.as_deref(), req.headers(), req.uri())
        .ok()
        .map(|b| b.0);
    let injected = app
        .chaos
        .is_active()
        .then(|| req.extensions().get::<axum::extract::MatchedPath>())
        .flatten()
        .and_then(|m| chaos_endpoint(m.as_str()))
        .and_then(|endpoint| {
            let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
            let client = client_ip(peer, req.headers(), &app.trusted_proxies);
            let injected = app
                .chaos
                .endpoint_fault(endpoint, client, std::time::Instant::now())?;
            Some(chaos_answer(endpoint, injected))
        });
    let mut resp = match injected {
        Some(r) => {
            // The body is read (within the usual bound) before the fault
            // is answered, so the connection stays usable for the client's
            // next request, as after any other answer.
            let body = axum::body::to_bytes(req.into_body(), app.max_body);
            let _ = tokio::time::timeout(app.request_timeout, body).await;
            r
        }
        None => match tokio::time::timeout(app.request_timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => {
                Error::new(ErrorKind::ServerInternal, "the request took too long").into_response()
            }
        },
    };
    if let Some(problem) = resp.extensions().get::<problem::ProblemType>() {
        app.metrics.acme_problem(problem.kind);
    }
    let h = resp.headers_mut();
    if method == Method::POST || path_is_nonce {
        if let Ok(v) = HeaderValue::from_str(&app.nonces.issue()) {
            h.insert("replay-nonce", v);
            app.metrics.nonce_issued();
        }
    }
    if method == Method::POST {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !path_is_directory {
        if let Some(v) = base.and_then(|b| {
            HeaderValue::from_str(&format!("<{b}{}>;rel=\"index\"", app.dir_paths.directory)).ok()
        }) {
            h.append(header::LINK, v);
        }
    }
    if let Some((route, path, account)) = logged {
        let route = route.as_ref().map_or("-", |m| m.as_str());
        log_request(&method, route, &path, &resp, &account, started.elapsed());
    }
    resp
}

/// The request log line: what a user debugging a client needs, never a
/// request body or key.
fn log_request(
    method: &Method,
    route: &str,
    path: &str,
    resp: &Response,
    account: &request::LoggedAccount,
    took: Duration,
) {
    let problem = resp.extensions().get::<problem::ProblemType>();
    let account = account.0.get().map_or("-", String::as_str);
    tracing::info!(
        %method,
        route,
        path = %path.chars().take(200).collect::<String>(),
        status = resp.status().as_u16(),
        problem = problem.map_or("-", |p| p.kind),
        detail = %problem.map_or("", |p| &p.detail),
        account,
        ms = took.as_millis() as u64,
        "request"
    );
}

/// The layer that counts every request of a router in `metrics`: by
/// `listener`, the matched route template (never the raw path, so the
/// labels stay a fixed set), and status code, with its duration. Added with
/// `Router::layer`, it runs after routing and sees the matched route; for
/// the fallback there is none, and the route is `unmatched`.
pub(crate) fn instrument<S>(
    router: Router<S>,
    metrics: Arc<Metrics>,
    listener: Listener,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let metrics = metrics.clone();
        async move {
            let started = std::time::Instant::now();
            let route = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .cloned()
                .map_or(Route::UNMATCHED, Route::Matched);
            let resp = next.run(req).await;
            metrics.http_request(listener, route, resp.status().as_u16(), started.elapsed());
            resp
        }
    }))
}

/// Cuts off any request of `router` that takes longer than `limit`, body
/// included, with a plain 503 (for the listeners other than ACME's, whose
/// wrapper does the same with a problem document).
pub(crate) fn with_timeout(router: Router, limit: Duration) -> Router {
    router.layer(middleware::from_fn(
        move |req: Request, next: Next| async move {
            match tokio::time::timeout(limit, next.run(req)).await {
                Ok(resp) => resp,
                Err(_) => (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "the request took too long\n",
                )
                    .into_response(),
            }
        },
    ))
}

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub max_connections: usize,
    /// Connections one client address may hold at once (see `conn`).
    pub max_connections_per_client: usize,
    pub handshake_timeout: Duration,
    /// A connection silent this long is closed (see `conn`).
    pub idle_timeout: Duration,
}

/// Serves `router` on an already-bound listener, over TLS when `tls` is
/// given and plain HTTP otherwise, until `shutdown` completes, then lets
/// open requests finish for up to 10 seconds. The connections it closes
/// on its own are counted in `metrics` as `which`'s.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    which: Listener,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = conn::PerClient::new(limits.max_connections_per_client);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = connection_builder(&limits);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and similar: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Over its address's share: closed at once, holding no slot.
        let Some(admitted) = per_client.admit(peer.ip()) else {
            tracing::debug!(%peer, "too many connections from this address");
            metrics.connection_closed(which, ConnectionClosed::ClientLimit);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let activity = conn::Activity::new();
        let accepted = Accepted {
            tcp: conn::Idle::new(tcp, limits.idle_timeout, activity.clone()),
            peer,
            router: conn::Tracked::new(router.clone(), activity.clone()),
            activity,
            metrics: metrics.clone(),
            which,
            handshake_timeout: limits.handshake_timeout,
        };
        let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
        // Repoll: hyper's body channel wakes the connection's own task
        // once per request with a body (see `repoll`).
        tokio::spawn(repoll::Repoll::new(async move {
            accepted.serve(acceptor, &builder, watcher).await;
            drop((slot, admitted));
        }));
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within 10 s of shutdown");
    }
}

/// HTTP/1.1 and HTTP/2 as every listener speaks them.
fn connection_builder(limits: &Limits) -> Arc<auto::Builder<TokioExecutor>> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128);
    Arc::new(builder)
}

/// One admitted connection, before its TLS handshake.
struct Accepted {
    tcp: conn::Idle<TcpStream>,
    peer: SocketAddr,
    router: conn::Tracked<Router>,
    activity: conn::Activity,
    metrics: Arc<Metrics>,
    which: Listener,
    handshake_timeout: Duration,
}

impl Accepted {
    /// Completes the TLS handshake (when `acceptor` is given) within the
    /// handshake timeout, then serves requests until the connection ends
    /// or the listener shuts down.
    async fn serve(
        self,
        acceptor: Option<TlsAcceptor>,
        builder: &auto::Builder<TokioExecutor>,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let Accepted {
            tcp,
            peer,
            router,
            activity,
            metrics,
            which,
            handshake_timeout,
        } = self;
        let svc = hyper::service::service_fn(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                let (req, held) = hold::share(req);
                let call = tower::ServiceExt::oneshot(router.clone(), req);
                async move {
                    let resp = match call.await {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    };
                    hold::drain(held).await;
                    if resp.extensions().get::<DropConnection>().is_some() {
                        // An error from the service makes hyper close the
                        // connection (HTTP/1.1) or reset the stream
                        // (HTTP/2) without an answer.
                        return Err(std::io::Error::other(
                            "chaos: connection dropped on purpose",
                        ));
                    }
                    Ok(resp)
                }
            },
        );
        let result = match acceptor {
            None => {
                watcher
                    .watch(builder.serve_connection(TokioIo::new(tcp), svc))
                    .await
            }
            Some(acceptor) => {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        watcher
                            .watch(builder.serve_connection(TokioIo::new(tls), svc))
                            .await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        metrics.connection_closed(which, ConnectionClosed::HandshakeTimeout);
                        return;
                    }
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        // Counted once the connection is over, whichever way it went.
        if activity.timed_out() {
            metrics.connection_closed(which, ConnectionClosed::Idle);
        }
    }
}

#[cfg(test)]
mod tests;
