//! The HTTP edge of errors: [`Error`] becomes an RFC 7807 problem document
//! (`application/problem+json`) here and nowhere else.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::problem_json;
use crate::error::{Error, ErrorKind};
use crate::jose::Alg;

/// The problem type and detail of an error response, for the request log.
#[derive(Debug, Clone)]
pub(crate) struct ProblemType {
    pub kind: &'static str,
    pub detail: std::borrow::Cow<'static, str>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        with_status(self, status)
    }
}

/// The problem document of `err` sent with `status` rather than the one its
/// kind implies (a serverInternal problem with 503, when the server asks
/// the client to come back later).
pub(crate) fn with_status(err: Error, status: StatusCode) -> Response {
    let mut doc = problem_json(&err);
    doc["status"] = status.as_u16().into();
    if err.kind == ErrorKind::BadSignatureAlgorithm {
        // RFC 8555 §6.2: the problem lists the algorithms we accept.
        doc["algorithms"] = Alg::accepted_names()
            .iter()
            .map(|a| serde_json::Value::from(*a))
            .collect();
    }
    let mut resp = (status, doc.to_string()).into_response();
    resp.extensions_mut().insert(ProblemType {
        kind: err.kind.acme_type(),
        detail: err.detail.clone(),
    });
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(secs) = err.retry_after() {
        // RFC 9110 §10.2.3: delay-seconds (RFC 8555 §6.6: rateLimited
        // answers say when to come back).
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
