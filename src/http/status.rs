//! The plain-HTTP status listener: the issuer certificate (AIA caIssuers),
//! the CRL (cRLDistributionPoints) and the OCSP responder (AIA OCSP), the
//! URLs written into certificates. Plain HTTP because relying parties fetch
//! these without TLS (RFC 5280 §4.2.1.13, RFC 6960 Appendix A). The
//! monitoring endpoints (`/metrics`, `/health`, `/ready`, see
//! [`super::monitor`]) are served here too.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;

use super::monitor::{self, Monitor};
use crate::ca::Ca;
use crate::metrics::{Listener, OcspOutcome};
use crate::revocation::{ocsp, StatusService};

/// Paths on the status listener.
pub(crate) mod paths {
    pub(crate) const ISSUER: &str = "/issuer/intermediate.der";
    pub(crate) const CRL: &str = "/crl/intermediate.crl";
    pub(crate) const OCSP: &str = "/ocsp";
}

/// What the status listener serves from.
pub(crate) struct StatusApp {
    pub ca: Arc<Ca>,
    pub service: Arc<StatusService>,
    /// Metrics, health and readiness.
    pub monitor: Arc<Monitor>,
}

/// The status router.
pub(crate) fn router(app: Arc<StatusApp>) -> Router {
    let metrics = app.monitor.metrics.clone();
    let router = Router::new()
        .route(paths::ISSUER, get(issuer))
        .route(paths::CRL, get(crl))
        .route(paths::OCSP, axum::routing::post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .layer(DefaultBodyLimit::max(ocsp::MAX_REQUEST_LEN))
        .with_state(app.clone())
        .merge(monitor::routes(app.monitor.clone()))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") });
    super::instrument(router, metrics, Listener::Status)
}

fn typed(body: Vec<u8>, content_type: &'static str, max_age: Option<u64>) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(age) = max_age {
        if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={age}")) {
            h.insert(header::CACHE_CONTROL, v);
        }
    }
    resp
}

/// GET the intermediate, DER (`application/pkix-cert`).
async fn issuer(State(app): State<Arc<StatusApp>>) -> Response {
    typed(
        app.ca.intermediate_der().to_vec(),
        "application/pkix-cert",
        Some(86400),
    )
}

/// GET the current CRL, DER (`application/pkix-crl`).
async fn crl(State(app): State<Arc<StatusApp>>) -> Response {
    let crl = app.service.crl().await;
    app.monitor.metrics.crl_request(crl.is_ok());
    match crl {
        Ok(der) => typed(der.as_ref().clone(), "application/pkix-crl", None),
        Err(e) => {
            tracing::warn!(error = %e, "CRL unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "CRL unavailable\n").into_response()
        }
    }
}

/// POST an OCSP request (`application/ocsp-request`, RFC 6960 A.1).
async fn ocsp_post(State(app): State<Arc<StatusApp>>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.eq_ignore_ascii_case("application/ocsp-request") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "OCSP requests are sent as application/ocsp-request\n",
        )
            .into_response();
    }
    let der = app.service.ocsp(&body).await;
    typed(der, "application/ocsp-response", None)
}

/// GET an OCSP request: base64 of the DER, URL-encoded, in the path
/// (RFC 6960 A.1). Standard and URL-safe alphabets are both accepted.
async fn ocsp_get(State(app): State<Arc<StatusApp>>, Path(raw): Path<String>) -> Response {
    // The router has percent-decoded the path already.
    let der = (raw.len() <= ocsp::MAX_REQUEST_LEN * 4 / 3 + 4)
        .then(|| decode_get(&raw))
        .flatten();
    let resp = match der {
        Some(der) => app.service.ocsp(&der).await,
        None => {
            app.monitor.metrics.ocsp_request(OcspOutcome::Malformed);
            ocsp::error_response(ocsp::ErrorStatus::MalformedRequest)
        }
    };
    typed(resp, "application/ocsp-response", None)
}

fn decode_get(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let s = s.trim_start_matches('/');
    STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()
}
