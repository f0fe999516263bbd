//! Pebble's management interface, for tests: the CA's roots, intermediates
//! and their private keys, a certificate's status by serial, and renewal
//! information set by hand. HTTPS on its own listener, without
//! authentication: it must never face anything but a test network.
//!
//! * `GET /roots/{n}`, `/intermediates/{n}`: PEM of chain `n`'s root, and
//!   of its certificate for the intermediate that signs leaves, with
//!   `Link: <…>;rel="alternate"` naming the same resource of every other
//!   chain;
//! * `GET /root-keys/{n}`, `/intermediate-keys/{n}`: their private keys,
//!   PEM (404 when the CA does not hold the key);
//! * `GET /cert-status-by-serial/{hex}`: `{Certificate, Reason, RevokedAt,
//!   Serial, Status}` as Pebble answers;
//! * `POST /set-renewal-info/`: `{"Certificate": PEM, "ARIResponse": JSON
//!   text}` makes renewalInfo answer that for the certificate;
//! * `GET /chaos`, `POST /chaos` (the `[chaos]` knobs as JSON, replaced
//!   whole), `POST /chaos/next` (one fault queued for an endpoint's next
//!   requests), `POST /chaos/reset` (all off): docs/CHAOS.md.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::request::BaseUrl;
use super::App;
use crate::ca::Chain;
use crate::error::ErrorKind;

/// Largest set-renewal-info body.
const MAX_BODY: usize = 64 * 1024;

/// The management router.
pub(crate) fn router(app: Arc<App>) -> Router {
    let metrics = app.metrics.clone();
    let router = Router::new()
        .route("/roots/{n}", get(ChainItem::Root.handler()))
        .route("/root-keys/{n}", get(ChainItem::RootKey.handler()))
        .route("/intermediates/{n}", get(ChainItem::Intermediate.handler()))
        .route(
            "/intermediate-keys/{n}",
            get(ChainItem::IntermediateKey.handler()),
        )
        .route("/cert-status-by-serial/{serial}", get(cert_status))
        .route("/set-renewal-info/", post(set_renewal_info))
        .route("/set-renewal-info", post(set_renewal_info))
        .route("/chaos", get(chaos_get).post(chaos_set))
        .route("/chaos/next", post(chaos_next))
        .route("/chaos/reset", post(chaos_reset))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY));
    crate::http::instrument(router, metrics, crate::metrics::Listener::Management).with_state(app)
}

fn text(status: StatusCode, msg: &str) -> Response {
    (status, format!("{msg}\n")).into_response()
}

/// Which chain `raw` names, if it exists.
fn chain_index(app: &App, raw: &str) -> Option<usize> {
    raw.parse::<usize>()
        .ok()
        .filter(|&n| n < app.ra.chains().len())
}

/// A PEM answer with `rel="alternate"` links to `kind` of the other chains.
fn pem_with_links(
    app: &App,
    (headers, uri): (&HeaderMap, &Uri),
    kind: &str,
    n: usize,
    pem: String,
    content_type: &'static str,
) -> Response {
    let mut resp = pem.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(base) = BaseUrl::derive(None, headers, uri) {
        for other in (0..app.ra.chains().len()).filter(|&o| o != n) {
            if let Ok(v) = HeaderValue::from_str(&format!(
                "<{}>;rel=\"alternate\"",
                base.url(&format!("/{kind}/{other}"))
            )) {
                resp.headers_mut().append(header::LINK, v);
            }
        }
    }
    resp
}

/// Keys as Pebble hands them out: RSA keys in PKCS#1 ("RSA PRIVATE KEY",
/// what Go's `x509.ParsePKCS1PrivateKey` reads); others as stored (PKCS#8).
fn pebble_key_pem(pem: &str) -> String {
    pkcs1_from_pkcs8(pem).unwrap_or_else(|| pem.to_owned())
}

fn pkcs1_from_pkcs8(pem: &str) -> Option<String> {
    use der::asn1::{ObjectIdentifier, OctetStringRef};
    use der::{Decode, Reader, SliceReader};
    const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let (label, der) = der::pem::decode_vec(pem.trim().as_bytes()).ok()?;
    if label != "PRIVATE KEY" {
        return None;
    }
    let mut reader = SliceReader::new(&der).ok()?;
    let inner = reader
        .sequence(|r| {
            let _version = u8::decode(r)?;
            let alg = x509_cert::spki::AlgorithmIdentifierRef::decode(r)?;
            let key = OctetStringRef::decode(r)?;
            // Optional attributes and public key follow; not needed.
            r.read_slice(r.remaining_len())?;
            Ok((alg.oid, key.as_bytes().to_vec()))
        })
        .ok()?;
    let (oid, key) = inner;
    if oid != RSA_ENCRYPTION {
        return None;
    }
    der::pem::encode_string("RSA PRIVATE KEY", der::pem::LineEnding::LF, &key).ok()
}

const PEM_CHAIN: &str = "application/pem-certificate-chain; charset=utf-8";
const PEM_KEY: &str = "application/x-pem-file; charset=utf-8";

/// What the chain routes serve: a certificate or a private key of chain
/// `n`, its root or the intermediate that signs leaves.
#[derive(Clone, Copy)]
enum ChainItem {
    Root,
    RootKey,
    Intermediate,
    IntermediateKey,
}

impl ChainItem {
    /// The route's first path segment, also the one its links name.
    fn kind(self) -> &'static str {
        match self {
            ChainItem::Root => "roots",
            ChainItem::RootKey => "root-keys",
            ChainItem::Intermediate => "intermediates",
            ChainItem::IntermediateKey => "intermediate-keys",
        }
    }

    /// The answer when there is no chain `n`.
    fn no_chain(self) -> &'static str {
        match self {
            ChainItem::Root | ChainItem::RootKey => "no such root",
            ChainItem::Intermediate | ChainItem::IntermediateKey => "no such intermediate",
        }
    }

    /// The item's PEM on `chain` and its content type, or the answer that
    /// says why there is none (status and text).
    fn pem(self, chain: &Chain) -> Result<(String, &'static str), (StatusCode, &'static str)> {
        match self {
            ChainItem::Root => Ok((chain.root_pem().to_owned(), PEM_CHAIN)),
            ChainItem::RootKey => match chain.root_key_pem() {
                Some(pem) => Ok((pebble_key_pem(pem), PEM_KEY)),
                None => Err((
                    StatusCode::NOT_FOUND,
                    "this CA does not hold that root's key",
                )),
            },
            ChainItem::Intermediate => {
                // The certificate of the intermediate that signs leaves.
                let Some(der) = chain.intermediates_der().first() else {
                    return Err((StatusCode::NOT_FOUND, "no such intermediate"));
                };
                der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der)
                    .map(|pem| (pem, PEM_CHAIN))
                    .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed"))
            }
            ChainItem::IntermediateKey => match chain.intermediate_keys_pem().first() {
                Some(Some(pem)) => Ok((pebble_key_pem(pem), PEM_KEY)),
                _ => Err((
                    StatusCode::NOT_FOUND,
                    "this CA does not hold that intermediate's key",
                )),
            },
        }
    }

    /// The route's handler.
    fn handler(
        self,
    ) -> impl Fn(State<Arc<App>>, HeaderMap, Uri, Path<String>) -> std::future::Ready<Response>
           + Clone
           + Send
           + Sync
           + 'static {
        move |State(app), headers, uri, Path(n)| {
            std::future::ready(chain_item(&app, (&headers, &uri), &n, self))
        }
    }
}

/// `GET /{item kind}/{n}`: `item` of chain `n`, with links to the same item
/// of every other chain.
fn chain_item(app: &App, request: (&HeaderMap, &Uri), n: &str, item: ChainItem) -> Response {
    let Some(n) = chain_index(app, n) else {
        return text(StatusCode::NOT_FOUND, item.no_chain());
    };
    match item.pem(&app.ra.chains()[n]) {
        Ok((pem, content_type)) => pem_with_links(app, request, item.kind(), n, pem, content_type),
        Err((status, why)) => text(status, why),
    }
}

/// Pebble's answer: the certificate and whether it is revoked.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct CertStatus {
    certificate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    serial: String,
    status: &'static str,
}

async fn cert_status(State(app): State<Arc<App>>, Path(serial): Path<String>) -> Response {
    // `openssl x509 -serial` prints upper case, possibly with a leading 0.
    let serial = serial.trim().to_ascii_lowercase();
    if serial.is_empty() || serial.len() > 64 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return text(StatusCode::BAD_REQUEST, "the serial is not hexadecimal");
    }
    let trimmed = serial.trim_start_matches('0');
    let mut lookup = trimmed.to_owned();
    if lookup.len() % 2 == 1 {
        lookup.insert(0, '0');
    }
    let cert = match app.ra.certificate_by_serial(&lookup).await {
        Ok(Some(c)) => c,
        Ok(None) => return text(StatusCode::NOT_FOUND, "no certificate with that serial"),
        Err(e) => {
            tracing::warn!(error = %e, "cert-status-by-serial");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "lookup failed");
        }
    };
    let Ok(pem) = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &cert.der)
    else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed");
    };
    let body = CertStatus {
        certificate: pem,
        reason: cert.revoked.map(|r| r.reason.code()),
        revoked_at: cert.revoked.map(|r| crate::clock::rfc3339(r.at)),
        serial: cert.serial.clone(),
        status: if cert.revoked.is_some() {
            "Revoked"
        } else {
            "Valid"
        },
    };
    axum::Json(body).into_response()
}

/// `{"Certificate": PEM, "ARIResponse": "<renewalInfo JSON>"}`; member
/// names match case-insensitively, as Pebble's (Go) decoder does.
async fn set_renewal_info(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(&body)
    else {
        return text(StatusCode::BAD_REQUEST, "the body is not a JSON object");
    };
    let field = |name: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    };
    let (Some(pem), Some(answer)) = (field("certificate"), field("ariresponse")) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the body needs Certificate (PEM) and ARIResponse (renewalInfo JSON text)",
        );
    };
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(answer) else {
        return text(StatusCode::BAD_REQUEST, "ARIResponse is not JSON");
    };
    match app.ra.set_renewal_info(pem, answer).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            let status = match e.kind {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_REQUEST,
            };
            text(status, &e.detail)
        }
    }
}

/// `GET /chaos`: the knobs in force.
async fn chaos_get(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.chaos.config()).into_response()
}

/// `POST /chaos`: replaces the knobs (fields left out take their
/// defaults: off); answers the knobs now in force.
async fn chaos_set(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let config: crate::chaos::ChaosConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("chaos: {e}")),
    };
    match app.chaos.set(config) {
        Ok(()) => axum::Json(app.chaos.config()).into_response(),
        Err(e) => text(StatusCode::BAD_REQUEST, &e),
    }
}

/// `POST /chaos/next`: `{"endpoint": "newOrder", "fault": "rateLimited",
/// "retry_after": 3, "count": 1}`.
async fn chaos_next(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let fault: crate::chaos::QueuedFault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("chaos: {e}")),
    };
    match app.chaos.queue(fault) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => text(StatusCode::BAD_REQUEST, &format!("chaos: {e}")),
    }
}

/// `POST /chaos/reset`: every knob off, the queue and holds emptied.
async fn chaos_reset(State(app): State<Arc<App>>) -> Response {
    app.chaos.reset();
    StatusCode::OK.into_response()
}
