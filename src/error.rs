//! The one internal error type.
//!
//! Every layer below the HTTP front end returns [`Error`]. It names the ACME
//! problem type (RFC 8555 §6.7) that a client should see, a human-readable
//! detail, and optional subproblems (§6.7.1). The front end turns it into an
//! RFC 7807 problem document in exactly one place (`http::problem`); nothing
//! below it builds wire errors.
//!
//! Internal failures (database, I/O, signing) are [`ErrorKind::ServerInternal`]:
//! their detail is logged, never shown to the client.

use std::borrow::Cow;
use std::fmt;

use crate::protocol::{Identifier, ERROR_NS};

/// What went wrong, as an ACME problem type, plus a few HTTP-level kinds that
/// RFC 8555 leaves to plain HTTP semantics. Ordered as in RFC 8555 §6.7, then
/// the extensions, then the HTTP-only kinds.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    AccountDoesNotExist,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Caa,
    Compound,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
    UserActionRequired,
    /// draft-aaron-acme-profiles: the requested profile does not exist.
    InvalidProfile,
    /// RFC 9773: the certificate named in `replaces` is already replaced.
    AlreadyReplaced,
    /// The resource does not exist (HTTP 404, problem type `malformed`).
    NotFound,
    /// The method is not allowed on this resource (HTTP 405).
    MethodNotAllowed,
    /// The request's Content-Type is not `application/jose+json` (HTTP 415).
    UnsupportedMediaType,
    /// The request conflicts with existing state (HTTP 409), e.g. a key
    /// already bound to another account.
    Conflict,
    /// The server cannot answer now but will soon: its database is out of
    /// reach (HTTP 503 with `Retry-After`, problem type `serverInternal`).
    Unavailable,
}

impl ErrorKind {
    /// The problem type URN suffix (after `urn:ietf:params:acme:error:`).
    pub fn acme_type(self) -> &'static str {
        use ErrorKind::*;
        match self {
            AccountDoesNotExist => "accountDoesNotExist",
            AlreadyRevoked => "alreadyRevoked",
            BadCsr => "badCSR",
            BadNonce => "badNonce",
            BadPublicKey => "badPublicKey",
            BadRevocationReason => "badRevocationReason",
            BadSignatureAlgorithm => "badSignatureAlgorithm",
            Caa => "caa",
            Compound => "compound",
            Connection => "connection",
            Dns => "dns",
            ExternalAccountRequired => "externalAccountRequired",
            IncorrectResponse => "incorrectResponse",
            InvalidContact => "invalidContact",
            Malformed | NotFound | MethodNotAllowed | UnsupportedMediaType | Conflict => {
                "malformed"
            }
            OrderNotReady => "orderNotReady",
            RateLimited => "rateLimited",
            RejectedIdentifier => "rejectedIdentifier",
            ServerInternal | Unavailable => "serverInternal",
            Tls => "tls",
            Unauthorized => "unauthorized",
            UnsupportedContact => "unsupportedContact",
            UnsupportedIdentifier => "unsupportedIdentifier",
            UserActionRequired => "userActionRequired",
            InvalidProfile => "invalidProfile",
            AlreadyReplaced => "alreadyReplaced",
        }
    }

    /// The HTTP status a problem of this kind is sent with.
    pub fn http_status(self) -> u16 {
        use ErrorKind::*;
        match self {
            ServerInternal => 500,
            Unavailable => 503,
            Unauthorized => 403,
            AccountDoesNotExist => 400,
            NotFound => 404,
            MethodNotAllowed => 405,
            Conflict | AlreadyReplaced => 409,
            UnsupportedMediaType => 415,
            RateLimited => 429,
            OrderNotReady => 403,
            _ => 400,
        }
    }
}

/// A subproblem (RFC 8555 §6.7.1): a problem about one identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubError {
    pub kind: ErrorKind,
    pub detail: String,
    pub identifier: Identifier,
}

/// The internal error: a problem kind, a detail for the client, subproblems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub detail: Cow<'static, str>,
    pub subproblems: Vec<SubError>,
    /// For [`Error::internal`]: the cause, never sent to a client, kept
    /// so that a start-up failure can name it on its one line even when
    /// logging is off.
    cause: Option<String>,
    /// Seconds after which the request may succeed (the `Retry-After` of a
    /// rateLimited answer).
    retry_after: Option<u64>,
}

impl Error {
    /// An error of `kind` with a client-visible `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            detail: detail.into(),
            subproblems: Vec::new(),
            cause: None,
            retry_after: None,
        }
    }

    /// Says when to retry: the edge sends it as `Retry-After` (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// Seconds after which the request may succeed, if known.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// What went wrong, for the operator: the cause of an internal error,
    /// else the detail.
    pub fn cause(&self) -> &str {
        self.cause.as_deref().unwrap_or(&self.detail)
    }

    /// An internal failure. The cause is logged here and replaced by a
    /// generic detail, so that no internals reach a client.
    #[track_caller]
    pub fn internal(cause: impl fmt::Display) -> Self {
        let loc = std::panic::Location::caller();
        let cause = cause.to_string();
        tracing::error!(%cause, at = %loc, "internal error");
        let mut e = Error::new(ErrorKind::ServerInternal, "internal server error");
        e.cause = Some(cause);
        e
    }

    /// A failure that passes by itself (the database out of reach): the
    /// cause is logged, the client is told to retry after `retry_after`
    /// seconds.
    #[track_caller]
    pub fn unavailable(cause: impl fmt::Display, retry_after: u64) -> Self {
        let loc = std::panic::Location::caller();
        let cause = cause.to_string();
        tracing::warn!(%cause, at = %loc, "service unavailable");
        let mut e = Error::new(
            ErrorKind::Unavailable,
            "the server's database is unavailable; retry shortly",
        )
        .with_retry_after(retry_after);
        e.cause = Some(cause);
        e
    }

    /// Attach subproblems (RFC 8555 §6.7.1).
    pub fn with_subproblems(mut self, subproblems: Vec<SubError>) -> Self {
        self.subproblems = subproblems;
        self
    }

    pub fn malformed(detail: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Malformed, detail)
    }

    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Unauthorized, detail)
    }

    pub fn not_found(detail: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::NotFound, detail)
    }

    pub fn bad_csr(detail: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::BadCsr, detail)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.acme_type(), self.detail)
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the crate.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// An error as an RFC 7807 problem document with RFC 8555 fields: `type`,
/// `detail`, `status`, and `subproblems` (§6.7.1). This is the only place an
/// error becomes wire JSON: the HTTP edge sends it, and a failed challenge
/// stores it as the challenge's `error`.
pub(crate) fn problem_json(e: &Error) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "type": format!("{ERROR_NS}{}", e.kind.acme_type()),
        "detail": e.detail,
        "status": e.kind.http_status(),
    });
    if !e.subproblems.is_empty() {
        doc["subproblems"] = e
            .subproblems
            .iter()
            .map(|s| {
                serde_json::json!({
                    "type": format!("{ERROR_NS}{}", s.kind.acme_type()),
                    "detail": s.detail,
                    "identifier": s.identifier,
                })
            })
            .collect();
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = Error::internal("disk on fire at /var/lib/secret");
        assert_eq!(e.kind, ErrorKind::ServerInternal);
        assert!(!e.detail.contains("secret"));
    }

    #[test]
    fn unavailable_is_a_503_server_internal_with_retry_after() {
        let e = Error::unavailable("database: connection refused at db.internal", 5);
        assert_eq!(e.kind.acme_type(), "serverInternal");
        assert_eq!(e.kind.http_status(), 503);
        assert_eq!(e.retry_after(), Some(5));
        assert!(!e.detail.contains("db.internal"), "{}", e.detail);
        assert!(e.cause().contains("connection refused"));
    }

    #[test]
    fn http_only_kinds_are_malformed_on_the_wire() {
        assert_eq!(ErrorKind::NotFound.acme_type(), "malformed");
        assert_eq!(ErrorKind::NotFound.http_status(), 404);
        assert_eq!(ErrorKind::UnsupportedMediaType.http_status(), 415);
        assert_eq!(ErrorKind::BadCsr.acme_type(), "badCSR");
    }
}
