//! The operator web console: server-rendered HTML pages under `/ui/` on
//! the service listener, on the same [`Service`] functions, tokens and
//! roles as the REST API (docs/SERVICE.md, "The web console").
//!
//! - Sign-in takes a service token once; the browser then holds only a
//!   random session id in an `HttpOnly`, `Secure`, `SameSite=Strict`
//!   `__Host-` cookie ([`session`]). The listener is always HTTPS (it
//!   shares the ACME listener's TLS configuration), so `Secure` is always
//!   set.
//! - Every state-changing request is a POST form carrying the session's
//!   CSRF token (the sign-in form a double-submit one); a missing or wrong
//!   token is refused with 403 before anything is done.
//! - Roles are enforced by the service functions each page calls; the
//!   pages only leave out what the role may not do.
//! - No script and no inline style: one stylesheet compiled into the
//!   binary, charts as inline SVG made here, and a Content-Security-Policy
//!   that allows nothing else.
//! - Bounds: form bodies share the service's 1 MiB limit and request
//!   timeout; lists are paged (at most `service.max_page`); the dashboard
//!   reads at most [`dashboard::MAX_SCAN`] certificates for its charts.

mod certs;
mod chart;
mod dashboard;
mod html;
mod session;
#[cfg(test)]
mod tests;
mod work;

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::de::DeserializeOwned;

use super::Service;
use crate::error::{Error, ErrorKind};
use crate::model::service::Caller;
use html::{esc, Flash, Frame};
use session::{Session, Sessions};

/// The stylesheet, compiled in.
const CSS: &str = include_str!("console.css");

/// What every console answer carries: nothing may load from elsewhere, no
/// script runs, no inline style applies, no other site may frame the page
/// or receive a referrer.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The console's own state: its sessions.
pub(crate) struct Console {
    sessions: Sessions,
}

/// The console's routes (all under `/ui`), merged into the service router.
pub(crate) fn router(service: &Service) -> Router<Arc<Service>> {
    let c = &service.config.console;
    let console = Arc::new(Console {
        sessions: Sessions::new(
            service.shared.clone(),
            c.session_lifetime,
            c.session_idle,
            c.max_sessions,
        ),
    });
    Router::new()
        .route("/ui", get(|| async { see_other("/ui/") }))
        .route("/ui/", get(dashboard::dashboard))
        .route("/ui/static/console.css", get(stylesheet))
        .route("/ui/signin", get(signin_form).post(signin))
        .route("/ui/signout", post(signout))
        .route("/ui/certs", get(certs::list))
        .route("/ui/certs/{serial}", get(certs::detail))
        .route(
            "/ui/certs/{serial}/download-token",
            post(certs::download_token),
        )
        .route("/ui/certs/{serial}/download", post(certs::download))
        .route("/ui/certs/{serial}/renew", post(certs::renew))
        .route("/ui/certs/{serial}/revoke", post(certs::revoke))
        .route("/ui/certs/{serial}/recovery", post(certs::recover))
        .route("/ui/issue", get(work::profiles))
        .route(
            "/ui/issue/{profile}",
            get(work::issue_form).post(work::issue),
        )
        .route("/ui/requests", get(work::requests))
        .route("/ui/requests/{id}/approve", post(work::approve))
        .route("/ui/requests/{id}/reject", post(work::reject))
        .route("/ui/upload", get(work::upload_form).post(work::upload))
        .route("/ui/batches/{id}", get(work::batch))
        .route("/ui/batches/{id}/download", get(work::batch_download))
        .route("/ui/recoveries", get(work::recoveries))
        .route("/ui/recoveries/{id}/approve", post(work::approve_recovery))
        .route("/ui/recoveries/{id}/reject", post(work::reject_recovery))
        .layer(axum::middleware::map_response(security_headers))
        .layer(Extension(console))
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// 303 See Other to `to` (POST/redirect/GET).
fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// An HTML page with `status`.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// An HTML page with `status`, telling a client when to retry (as the
/// API's `Retry-After`) if the error says so.
fn error_html(e: &Error, status: StatusCode, body: String) -> Response {
    let mut resp = html(status, body);
    if let Some(secs) = e.retry_after() {
        resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    resp
}

/// The page of an error met before a session was found (the store could
/// not be read): no navigation, the message only.
fn unsigned_error_page(e: &Error) -> Response {
    let (status, message) = error_status(e);
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html::page(
        title,
        &Frame {
            caller: None,
            csrf: None,
            flash: None,
        },
        &format!(
            "<p class=\"flash err\" role=\"alert\">{}</p>",
            esc(&message)
        ),
    );
    error_html(e, status, body)
}

/// The HTTP status and the message a service error shows (internal
/// details stay in the log, as in the API).
fn error_status(e: &Error) -> (StatusCode, String) {
    let status = match e.kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Unauthorized => StatusCode::FORBIDDEN,
        ErrorKind::Conflict | ErrorKind::AlreadyRevoked => StatusCode::CONFLICT,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = if status == StatusCode::SERVICE_UNAVAILABLE {
        e.detail.to_string()
    } else if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::warn!(error = %e, "console request failed");
        "the server failed; see its log".to_owned()
    } else {
        e.detail.to_string()
    };
    (status, message)
}

/// A signed-in browser: its session, found from the cookie. Without a
/// live session every page redirects to the sign-in form.
pub(crate) struct Signed {
    id: String,
    session: Session,
    console: Arc<Console>,
}

impl FromRequestParts<Arc<Service>> for Signed {
    /// No session: to the sign-in page; the store failing: its error page
    /// (a database outage is a 503 with Retry-After).
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Self, Self::Rejection> {
        let sign_in = || see_other("/ui/signin");
        let console = parts
            .extensions
            .get::<Arc<Console>>()
            .cloned()
            .ok_or_else(sign_in)?;
        let id = cookie(&parts.headers, session::COOKIE).ok_or_else(sign_in)?;
        let session = match console.sessions.get(&id, service.clock.now()).await {
            Ok(Some(session)) => session,
            Ok(None) => return Err(sign_in()),
            Err(e) => return Err(unsigned_error_page(&e)),
        };
        Ok(Signed {
            id,
            session,
            console,
        })
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie_value(h, name).map(str::to_owned))
}

impl Signed {
    fn caller(&self) -> &Caller {
        &self.session.caller
    }

    /// The frame of a page for this session (its one-shot message shown).
    fn frame(&self) -> Frame<'_> {
        Frame {
            caller: Some(&self.session.caller),
            csrf: Some(&self.session.csrf),
            flash: self.session.flash.clone(),
        }
    }

    /// A page for this session.
    fn page(&self, status: StatusCode, title: &str, body: &str) -> Response {
        html(status, html::page(title, &self.frame(), body))
    }

    /// The page of a service error.
    fn error_page(&self, e: &Error) -> Response {
        let (status, message) = error_status(e);
        let title = status.canonical_reason().unwrap_or("Error");
        let body = html::page(
            title,
            &self.frame(),
            &format!(
                "<p class=\"flash err\" role=\"alert\">{}</p>",
                esc(&message)
            ),
        );
        error_html(e, status, body)
    }

    /// Redirects to `to`, with `flash` on the next page; if the message
    /// cannot be kept (the database is lost), the error's page instead.
    async fn redirect(&self, to: &str, flash: Flash) -> Response {
        match self.console.sessions.flash(&self.id, flash).await {
            Ok(()) => see_other(to),
            Err(e) => self.error_page(&e),
        }
    }

    /// Redirects to `to`, telling the outcome of a service call; a call
    /// the role may not make, or on something the caller may not see, is
    /// answered with its 403 or 404 page instead.
    async fn outcome<T>(&self, to: &str, r: &crate::error::Result<T>, done: &str) -> Response {
        match r {
            Ok(_) => self.redirect(to, Flash::Done(done.to_owned())).await,
            Err(e) => self.failure(to, e).await,
        }
    }

    /// Redirects to `to`, telling why a service call failed; a 403 or 404
    /// is answered with its page instead (as [`Signed::outcome`] does), and
    /// so is a 503 (the database is lost: the message could not be kept).
    async fn failure(&self, to: &str, e: &Error) -> Response {
        match error_status(e) {
            (
                StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE,
                _,
            ) => self.error_page(e),
            (_, message) => self.redirect(to, Flash::Failed(message)).await,
        }
    }

    /// The fields of a POSTed form whose CSRF token is this session's;
    /// otherwise the 403 (or 400) page to answer with.
    fn form(
        &self,
        form: Result<Form<Vec<(String, String)>>, FormRejection>,
    ) -> Result<Fields, Box<Response>> {
        let Form(pairs) = form.map_err(|e| {
            Box::new(self.page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                &format!(
                    "<p class=\"flash err\" role=\"alert\">{}</p>",
                    esc(&e.body_text())
                ),
            ))
        })?;
        let fields = Fields(pairs);
        self.check_csrf(fields.get("csrf"))?;
        Ok(fields)
    }

    /// Refuses a request whose CSRF token is missing or not this
    /// session's.
    fn check_csrf(&self, token: Option<&str>) -> Result<(), Box<Response>> {
        match token {
            Some(t) if session::same_secret(t, &self.session.csrf) => Ok(()),
            _ => Err(Box::new(csrf_refused(Some(self)))),
        }
    }
}

/// A form a signed-in browser POSTed to a URL with one path parameter
/// (`T`: a serial, an id, a profile name): what every state-changing
/// console handler takes, so none repeats the session, path, form and
/// CSRF steps. They run in that order, as separate extractors did: no
/// session redirects to sign-in, a bad path parameter is axum's 400, an
/// unreadable form is the 400 page, a missing or wrong CSRF token the 403.
pub(crate) struct Posted<T> {
    signed: Signed,
    path: T,
    fields: Fields,
}

impl<T> FromRequest<Arc<Service>> for Posted<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, service: &Arc<Service>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, service).await?;
        let Path(path) = Path::<T>::from_request_parts(&mut parts, service)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Form::from_request(Request::from_parts(parts, body), service).await;
        let fields = signed.form(form).map_err(|r| *r)?;
        Ok(Posted {
            signed,
            path,
            fields,
        })
    }
}

/// The 403 of a missing or forged CSRF token.
fn csrf_refused(signed: Option<&Signed>) -> Response {
    let body = "<p class=\"flash err\" role=\"alert\">The form's security token is missing or \
                not this session's, so nothing was done. Load the page again and retry.</p>";
    match signed {
        Some(s) => s.page(StatusCode::FORBIDDEN, "Forbidden", body),
        None => html(
            StatusCode::FORBIDDEN,
            html::page(
                "Forbidden",
                &Frame {
                    caller: None,
                    csrf: None,
                    flash: None,
                },
                body,
            ),
        ),
    }
}

/// The fields of a form, in order.
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or "".
    fn text(&self, name: &str) -> &str {
        self.get(name).map(str::trim).unwrap_or("")
    }
}

// ---------------------------------------------------------------------------
// sign-in and sign-out
// ---------------------------------------------------------------------------

fn signin_page(status: StatusCode, error: Option<&str>) -> Response {
    let pre = session::random_token();
    let body = format!(
        "<form method=\"post\" action=\"/ui/signin\" class=\"card\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <p><label for=\"token\">Service token</label>\
         <input type=\"password\" id=\"token\" name=\"token\" required autocomplete=\"off\" \
         maxlength=\"1024\" autofocus{}></p>{}\
         <p class=\"hint\">The token of <code>[[service.tokens]]</code>. It is checked once and \
         not kept: this browser gets a session cookie instead.</p>\
         <p><button type=\"submit\">Sign in</button></p></form>",
        esc(&pre),
        html::invalid_attrs("token", error),
        html::field_error("token", error),
    );
    let mut resp = html(
        status,
        html::page(
            "Sign in",
            &Frame {
                caller: None,
                csrf: None,
                flash: None,
            },
            &body,
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(session::SIGNIN_COOKIE, &pre, 3600)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn signin_form() -> Response {
    signin_page(StatusCode::OK, None)
}

async fn signin(
    State(s): State<Arc<Service>>,
    Extension(console): Extension<Arc<Console>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(pairs)) = form else {
        return signin_page(StatusCode::BAD_REQUEST, Some("the form could not be read"));
    };
    let fields = Fields(pairs);
    // Double-submit: the field must match the cookie set with the form.
    let pre = cookie(&headers, session::SIGNIN_COOKIE);
    match (pre.as_deref(), fields.get("csrf")) {
        (Some(c), Some(f)) if !c.is_empty() && session::same_secret(c, f) => {}
        _ => return csrf_refused(None),
    }
    let token = fields.text("token");
    if token.is_empty() || token.len() > 1024 {
        return signin_page(StatusCode::UNAUTHORIZED, Some("enter a service token"));
    }
    let Some(caller) = s.authenticate(token) else {
        tracing::warn!("console sign-in refused: unknown token");
        return signin_page(StatusCode::UNAUTHORIZED, Some("the token is not valid"));
    };
    // A session this browser had ends: one browser, one session.
    if let Some(old) = cookie(&headers, session::COOKIE) {
        if let Err(e) = console.sessions.remove(&old).await {
            return unsigned_error_page(&e);
        }
    }
    let id = match console.sessions.create(&caller, s.clock.now()).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            return signin_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("too many sessions are open on this server; try again later"),
            )
        }
        Err(e) => return unsigned_error_page(&e),
    };
    tracing::info!(caller = %caller.name, "console sign-in");
    let mut resp = see_other("/ui/");
    let h = resp.headers_mut();
    for c in [
        session::set_cookie(session::COOKIE, &id, console.sessions.lifetime()),
        session::set_cookie(session::SIGNIN_COOKIE, "", 0),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn signout(
    signed: Signed,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if let Err(resp) = signed.form(form) {
        return *resp;
    }
    if let Err(e) = signed.console.sessions.remove(&signed.id).await {
        return signed.error_page(&e);
    }
    let mut resp = see_other("/ui/signin");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(session::COOKIE, "", 0)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
