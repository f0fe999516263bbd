//! The service's REST front end: bearer-token authentication, JSON in and
//! out, RFC 7807 problem documents for errors. Every handler checks the
//! token, parses its input, makes one call on [`Service`] and renders.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Format, IssueInput, Service};
use crate::clock::rfc3339;
use crate::error::{Error, ErrorKind};
use crate::model::service::{Caller, CertFilter, RequestFilter, RequestStatus};
use render::{cert_json, profile_json, recovery_json, request_json};

mod render;

/// Largest request body (a CSR upload of up to 100 CSRs fits).
const MAX_BODY: usize = 1024 * 1024;

/// The service router.
pub(crate) fn router(service: Arc<Service>) -> Router {
    let metrics = service.metrics.clone();
    let router = Router::new()
        .route("/profiles", get(profiles))
        .route("/profiles/{name}", get(profile))
        .route("/certs", get(list_certs).post(issue))
        .route("/certs/{serial}", get(show_cert))
        .route("/certs/{serial}/renew", post(renew))
        .route("/certs/{serial}/revoke", post(revoke))
        .route("/certs/{serial}/download-token", post(download_token))
        .route(
            "/certs/{serial}/download",
            get(download).head(download_head),
        )
        .route("/csr", post(upload_csr))
        .route("/batches/{id}", get(batch))
        .route("/batches/{id}/download", get(batch_download))
        .route("/requests", get(list_requests))
        .route("/requests/{id}", get(show_request))
        .route("/requests/{id}/approve", post(approve))
        .route("/requests/{id}/reject", post(reject))
        .route("/certs/{serial}/recovery", post(recover))
        .route("/recoveries", get(list_recoveries))
        .route("/recoveries/{id}", get(show_recovery))
        .route("/recoveries/{id}/approve", post(approve_recovery))
        .route("/recoveries/{id}/reject", post(reject_recovery))
        .route("/webhooks/deliveries", get(deliveries));
    // The web console: its own module, on the functions the API uses.
    let router = if service.config.console.enabled {
        router.merge(super::console::router(&service))
    } else {
        router
    };
    let router = router
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "not found", "no such resource") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY));
    // Every call counted by route and status (acme_ca_http_requests_total
    // with listener="service").
    crate::http::instrument(router, metrics, crate::metrics::Listener::Service).with_state(service)
}

/// An RFC 7807 problem document.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let mut resp = (
        status,
        Json(json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail})),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// A service error as a problem document.
struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let (status, title) = match e.kind {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not found"),
            ErrorKind::Unauthorized => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorKind::Conflict | ErrorKind::AlreadyRevoked => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "too many"),
            ErrorKind::ServerInternal => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::BAD_REQUEST, "bad request"),
        };
        let retry_after = e.retry_after();
        // Internal details stay in the log.
        let detail = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "the server failed; see its log".to_owned()
        } else {
            e.detail.into_owned()
        };
        let mut resp = problem(status, title, &detail);
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

type ApiResult = std::result::Result<Response, ApiError>;

/// The caller, from `Authorization: Bearer <token>`.
pub(crate) struct Authed(pub Caller);

/// A missing or unknown token.
pub(crate) struct Unauthenticated(&'static str);

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        let mut resp = problem(StatusCode::UNAUTHORIZED, "unauthorized", self.0);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"acme-ca\""),
        );
        resp
    }
}

impl FromRequestParts<Arc<Service>> for Authed {
    type Rejection = Unauthenticated;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> std::result::Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Unauthenticated(
                "an Authorization: Bearer token is required",
            ))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 1024)
            .ok_or(Unauthenticated(
                "the Authorization header must be \"Bearer <token>\"",
            ))?;
        service
            .authenticate(token)
            .map(Authed)
            .ok_or(Unauthenticated("the token is not valid"))
    }
}

/// A JSON body of type `T`, refused with a clear 400.
/// One page of a list: the page's `items` under `key`, how many there are
/// in all, and the offset and page size in force (`limit` within 1 and the
/// service's largest page).
fn page(
    s: &Service,
    key: &str,
    items: Vec<Value>,
    total: u64,
    offset: u32,
    limit: u32,
) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), Value::Array(items));
    body.insert("total".to_owned(), json!(total));
    body.insert("offset".to_owned(), json!(offset));
    body.insert("limit".to_owned(), json!(limit.clamp(1, s.config.max_page)));
    Json(Value::Object(body)).into_response()
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> std::result::Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(Error::malformed(format!(
            "the body is not valid JSON for this request: {e}"
        )))
    })
}

async fn profiles(State(s): State<Arc<Service>>, Authed(_): Authed) -> Response {
    let list: Vec<Value> = s
        .config
        .profiles
        .iter()
        .map(|(n, p)| profile_json(n, p))
        .collect();
    Json(json!({ "profiles": list })).into_response()
}

async fn profile(
    State(s): State<Arc<Service>>,
    Authed(_): Authed,
    Path(name): Path<String>,
) -> ApiResult {
    let p = s.profile(&name)?;
    Ok(Json(profile_json(&name, p)).into_response())
}

/// POST /certs.
async fn issue(State(s): State<Arc<Service>>, Authed(caller): Authed, body: Bytes) -> ApiResult {
    let input: IssueInput = json_body(&body)?;
    let r = s.issue(&caller, input).await?;
    let status = match r.status {
        RequestStatus::Issued => StatusCode::CREATED,
        RequestStatus::Pending => StatusCode::ACCEPTED,
        // The request was recorded but issuance failed: say so.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut v = request_json(&r);
    if let Some(serial) = &r.serial {
        v["serial_number"] = json!(serial);
    }
    Ok((status, Json(v)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertQuery {
    offset: Option<u32>,
    limit: Option<u32>,
    entity: Option<String>,
    status: Option<String>,
    common_name: Option<String>,
    serial: Option<String>,
    /// RFC 3339.
    expiring_before: Option<String>,
}

/// GET /certs.
async fn list_certs(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    query: std::result::Result<Query<CertQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = query.map_err(|e| ApiError(Error::malformed(format!("bad query: {e}"))))?;
    if let Some(st) = &q.status {
        if !["valid", "revoked", "expired"].contains(&st.as_str()) {
            return Err(Error::malformed("status is valid, revoked or expired").into());
        }
    }
    let expiring_before = q
        .expiring_before
        .as_deref()
        .map(|t| {
            crate::clock::parse_rfc3339(t)
                .ok_or_else(|| Error::malformed("expiring_before is not an RFC 3339 time"))
        })
        .transpose()?;
    let serial = q
        .serial
        .as_deref()
        .map(|s| super::normalize_serial(s).map_err(|_| Error::malformed("serial is hexadecimal")))
        .transpose()?;
    let filter = CertFilter {
        entity_id: q.entity,
        status: q.status,
        common_name: q.common_name,
        serial,
        expiring_before,
        requester: None,
        offset: q.offset.unwrap_or(0),
        limit: q.limit.unwrap_or(50),
    };
    let (rows, total) = s.certificates(&caller, filter.clone()).await?;
    let now = s.clock.now();
    let items = rows.iter().map(|c| cert_json(c, now, false)).collect();
    Ok(page(
        &s,
        "certificates",
        items,
        total,
        filter.offset,
        filter.limit,
    ))
}

/// GET /certs/{serial}.
async fn show_cert(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(serial): Path<String>,
) -> ApiResult {
    let c = s.certificate(&caller, &serial).await?;
    Ok(Json(cert_json(&c, s.clock.now(), true)).into_response())
}

/// POST /certs/{serial}/renew.
async fn renew(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(serial): Path<String>,
) -> ApiResult {
    let old = s.renew(&caller, &serial).await?;
    let now = s.clock.now();
    let new_serial = old.service.as_ref().and_then(|m| m.renewed_to.clone());
    let new = match &new_serial {
        Some(n) => Some(cert_json(&s.certificate(&caller, n).await?, now, false)),
        None => None,
    };
    Ok(Json(json!({
        "certificate": new,
        "previous": cert_json(&old, now, false),
        "serial_number": new_serial,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: String,
}

/// POST /certs/{serial}/revoke {"reason": "keyCompromise"}.
async fn revoke(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(serial): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: RevokeBody = json_body(&body)?;
    let c = s.revoke(&caller, &serial, &b.reason).await?;
    Ok(Json(cert_json(&c, s.clock.now(), false)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    /// "zip" (default) or "p12".
    format: Option<String>,
    password: Option<String>,
    /// An approved key recovery: the download includes the key.
    recovery: Option<String>,
}

/// POST /certs/{serial}/download-token.
async fn download_token(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(serial): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: TokenBody = if body.is_empty() {
        TokenBody {
            format: None,
            password: None,
            recovery: None,
        }
    } else {
        json_body(&body)?
    };
    let format = match b.format.as_deref() {
        None | Some("zip") => Format::Zip,
        Some("p12") | Some("pkcs12") => Format::Pkcs12,
        Some(other) => {
            return Err(Error::malformed(format!(
                "format {:?} is not zip or p12",
                other.chars().take(20).collect::<String>()
            ))
            .into())
        }
    };
    let (token, expires) = s
        .download_token(&caller, &serial, format, b.password, b.recovery)
        .await?;
    Ok(Json(json!({"token": token, "expires": rfc3339(expires)})).into_response())
}

#[derive(Deserialize)]
struct DownloadQuery {
    token: Option<String>,
}

/// The download token of a query string.
fn download_token_of(
    query: std::result::Result<Query<DownloadQuery>, axum::extract::rejection::QueryRejection>,
) -> std::result::Result<String, ApiError> {
    let Query(q) = query.map_err(|_| {
        ApiError(Error::malformed(
            "the query must hold one token parameter (?token=…)",
        ))
    })?;
    q.token
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| {
            ApiError(Error::unauthorized(
                "a download token is required (?token=)",
            ))
        })
}

/// HEAD /certs/{serial}/download?token=…: whether the token would be
/// accepted; it is not spent.
async fn download_head(
    State(s): State<Arc<Service>>,
    Path(serial): Path<String>,
    query: std::result::Result<Query<DownloadQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let token = download_token_of(query)?;
    if s.download_allowed(&serial, &token).await? {
        Ok(StatusCode::OK.into_response())
    } else {
        Ok(StatusCode::FORBIDDEN.into_response())
    }
}

/// A file to save: its type and its name in `Content-Disposition` (the
/// REST API's and the console's downloads alike).
pub(crate) fn attachment(d: super::Download) -> Response {
    let mut resp = d.body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(d.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", d.file_name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// GET /certs/{serial}/download?token=…: no bearer token; the download
/// token is the credential.
async fn download(
    State(s): State<Arc<Service>>,
    Path(serial): Path<String>,
    query: std::result::Result<Query<DownloadQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let token = download_token_of(query)?;
    let d = s.download(&serial, &token).await?;
    let mut resp = attachment(d);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsrBody {
    profile: String,
    entity_id: String,
    #[serde(default)]
    name: String,
    /// One or many PEM CERTIFICATE REQUEST blocks.
    pem: String,
}

/// POST /csr.
async fn upload_csr(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    body: Bytes,
) -> ApiResult {
    let b: CsrBody = json_body(&body)?;
    let (batch, requests) = s
        .upload_csrs(&caller, &b.profile, &b.entity_id, &b.name, &b.pem)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "batch_id": batch.id,
            "requests": requests.iter().map(request_json).collect::<Vec<_>>(),
        })),
    )
        .into_response())
}

/// GET /batches/{id}.
async fn batch(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    let b = s
        .store
        .batch(&id)
        .await?
        .filter(|b| caller.sees_all() || b.requester == caller.name)
        .ok_or_else(|| Error::not_found("no such batch"))?;
    let (requests, total) = s
        .requests(
            &caller,
            RequestFilter {
                batch_id: Some(b.id.clone()),
                limit: super::MAX_CSRS as u32,
                ..Default::default()
            },
        )
        .await?;
    let count = |st: RequestStatus| requests.iter().filter(|r| r.status == st).count();
    Ok(Json(json!({
        "id": b.id,
        "name": b.name,
        "requester": b.requester,
        "profile": b.profile,
        "created_at": rfc3339(b.created_at),
        "size": total,
        "pending": count(RequestStatus::Pending),
        "issued": count(RequestStatus::Issued),
        "rejected": count(RequestStatus::Rejected),
        "failed": count(RequestStatus::Failed),
        "requests": requests.iter().map(request_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// GET /batches/{id}/download: a zip of the batch's issued certificates
/// (`<serial>.pem` each) and `ca.pem`. CSR certificates have no key here.
async fn batch_download(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    let d = s.batch_zip(&caller, &id).await?;
    Ok(attachment(d))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestQuery {
    offset: Option<u32>,
    limit: Option<u32>,
    status: Option<String>,
    profile: Option<String>,
    batch: Option<String>,
}

/// GET /requests.
async fn list_requests(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    query: std::result::Result<Query<RequestQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = query.map_err(|e| ApiError(Error::malformed(format!("bad query: {e}"))))?;
    let status = q
        .status
        .as_deref()
        .map(|st| {
            RequestStatus::parse(st).ok_or_else(|| {
                Error::malformed("status is pending, approved, rejected, issued or failed")
            })
        })
        .transpose()?;
    let filter = RequestFilter {
        status,
        requester: None,
        profile: q.profile,
        batch_id: q.batch,
        offset: q.offset.unwrap_or(0),
        limit: q.limit.unwrap_or(50),
    };
    let (list, total) = s.requests(&caller, filter.clone()).await?;
    let items = list.iter().map(request_json).collect();
    Ok(page(
        &s,
        "requests",
        items,
        total,
        filter.offset,
        filter.limit,
    ))
}

/// GET /requests/{id}.
async fn show_request(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    let r = s.request_for(&caller, &id).await?;
    Ok(Json(request_json(&r)).into_response())
}

/// POST /requests/{id}/approve.
async fn approve(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    let r = s.approve(&caller, &id).await?;
    Ok(Json(request_json(&r)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: String,
}

/// POST /requests/{id}/reject {"reason": "…"}.
async fn reject(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: RejectBody = json_body(&body)?;
    let r = s.reject(&caller, &id, &b.reason).await?;
    Ok(Json(request_json(&r)).into_response())
}

/// POST /certs/{serial}/recovery.
async fn recover(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(serial): Path<String>,
) -> ApiResult {
    let r = s.recover(&caller, &serial).await?;
    Ok((StatusCode::CREATED, Json(recovery_json(&r))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoveryQuery {
    offset: Option<u32>,
    limit: Option<u32>,
    status: Option<String>,
}

/// GET /recoveries.
async fn list_recoveries(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    query: std::result::Result<Query<RecoveryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = query.map_err(|e| ApiError(Error::malformed(format!("bad query: {e}"))))?;
    let status = q
        .status
        .as_deref()
        .map(|st| {
            crate::model::service::RecoveryStatus::parse(st).ok_or_else(|| {
                Error::malformed("status is pending, approved, rejected or completed")
            })
        })
        .transpose()?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50);
    let (list, total) = s.recoveries(&caller, status, offset, limit).await?;
    let items = list.iter().map(recovery_json).collect();
    Ok(page(&s, "recoveries", items, total, offset, limit))
}

/// GET /recoveries/{id}.
async fn show_recovery(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    let r = s.recovery_for(&caller, &id).await?;
    Ok(Json(recovery_json(&r)).into_response())
}

/// POST /recoveries/{id}/approve.
async fn approve_recovery(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    let r = s.approve_recovery(&caller, &id).await?;
    Ok(Json(recovery_json(&r)).into_response())
}

/// POST /recoveries/{id}/reject {"reason": "…"}.
async fn reject_recovery(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: RejectBody = json_body(&body)?;
    let r = s.reject_recovery(&caller, &id, &b.reason).await?;
    Ok(Json(recovery_json(&r)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    offset: Option<u32>,
    limit: Option<u32>,
    status: Option<String>,
}

/// GET /webhooks/deliveries (admins): each webhook delivery and its fate.
async fn deliveries(
    State(s): State<Arc<Service>>,
    Authed(caller): Authed,
    query: std::result::Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    if caller.role != crate::model::service::Role::Admin {
        return Err(Error::unauthorized("only an admin token may read webhook deliveries").into());
    }
    let Query(q) = query.map_err(|e| ApiError(Error::malformed(format!("bad query: {e}"))))?;
    if let Some(st) = &q.status {
        if !["pending", "delivered", "failed"].contains(&st.as_str()) {
            return Err(Error::malformed("status is pending, delivered or failed").into());
        }
    }
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50).clamp(1, s.config.max_page);
    let (list, total) = s
        .store
        .deliveries(q.status.as_deref(), offset, limit)
        .await?;
    Ok(Json(json!({
        "deliveries": list.iter().map(|d| json!({
            "id": d.id,
            "url": d.url,
            "event_type": d.event_type,
            "status": d.status,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "next_attempt_at": rfc3339(d.next_attempt_at),
            "created_at": rfc3339(d.created_at),
        })).collect::<Vec<_>>(),
        "total": total,
        "offset": offset,
        "limit": limit,
    }))
    .into_response())
}
