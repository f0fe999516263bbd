//! Monitoring endpoints, plain HTTP: `GET /metrics` (Prometheus text),
//! `GET /health` (liveness) and `GET /ready` (readiness). They are served on
//! the status listener and, with `[metrics] listen`, on a listener of their
//! own (docs/OPERATIONS.md).
//!
//! Bounds: a scrape runs at most one store query (the count of certificates
//! about to expire, a range scan of an index) and waits for it at most
//! [`STORE_TIMEOUT`]; `/ready` runs one trivial query under the same limit.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::ca::Ca;
use crate::clock::Clock;
use crate::metrics::{Listener, Metrics};
use crate::store::Store;

/// Paths of the monitoring endpoints.
pub(crate) mod paths {
    pub(crate) const METRICS: &str = "/metrics";
    pub(crate) const HEALTH: &str = "/health";
    pub(crate) const READY: &str = "/ready";
}

/// How long a monitoring request waits for the store.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_secs(1);

const DAY: i64 = 86_400;

/// What the monitoring endpoints read.
pub(crate) struct Monitor {
    pub metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    ca: Arc<Ca>,
    clock: Arc<dyn Clock>,
}

impl Monitor {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        store: Arc<dyn Store>,
        ca: Arc<Ca>,
        clock: Arc<dyn Clock>,
    ) -> Monitor {
        Monitor {
            metrics,
            store,
            ca,
            clock,
        }
    }

    /// Refreshes the gauges read from the store: one query.
    async fn refresh_expiring(&self) {
        let now = self.clock.now();
        let query = self
            .store
            .certificates_expiring(now, now + 7 * DAY, now + 30 * DAY);
        match tokio::time::timeout(STORE_TIMEOUT, query).await {
            Ok(Ok((week, month))) => self.metrics.set_expiring(week, month),
            // The gauges keep their last values; /ready tells about the
            // store.
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: counting expiring certificates"),
            Err(_) => tracing::warn!("metrics: counting expiring certificates timed out"),
        }
    }

    /// What is not ready, by name, with why; empty when all is.
    async fn not_ready(&self) -> Map<String, Value> {
        let mut failing = Map::new();
        match tokio::time::timeout(STORE_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => {}
            // The error's cause is logged by Error::internal; the body says
            // only what failed.
            Ok(Err(_)) => {
                failing.insert("store".into(), "the store query failed".into());
            }
            Err(_) => {
                failing.insert(
                    "store".into(),
                    format!("no answer within {} s", STORE_TIMEOUT.as_secs()).into(),
                );
            }
        }
        if self.ca.chains().is_empty() {
            failing.insert("ca".into(), "no issuing chain loaded".into());
        }
        for l in self.metrics.listeners_down() {
            failing.insert(format!("listener:{}", l.as_str()), "not serving".into());
        }
        failing
    }
}

/// The monitoring routes, without a fallback, to be merged into a
/// listener's router.
pub(crate) fn routes(monitor: Arc<Monitor>) -> Router {
    Router::new()
        .route(paths::METRICS, get(metrics))
        .route(paths::HEALTH, get(health))
        .route(paths::READY, get(ready))
        .with_state(monitor)
}

/// The router of the `[metrics] listen` listener: the monitoring routes
/// alone, each request counted.
pub(crate) fn router(monitor: Arc<Monitor>) -> Router {
    let metrics = monitor.metrics.clone();
    super::instrument(
        routes(monitor).fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") }),
        metrics,
        Listener::Metrics,
    )
}

async fn metrics(State(m): State<Arc<Monitor>>) -> Response {
    m.refresh_expiring().await;
    let mut resp = m.metrics.encode().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp
}

/// Liveness: the process answers HTTP.
async fn health() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers a trivial query within a second, the CA
/// is loaded, and every configured listener is serving.
async fn ready(State(m): State<Arc<Monitor>>) -> Response {
    let failing = m.not_ready().await;
    if failing.is_empty() {
        Json(json!({"ready": true})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "not_ready": failing})),
        )
            .into_response()
    }
}
