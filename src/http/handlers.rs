//! One handler per ACME resource. Each is a recipe: extract checked values,
//! make one RA call, render the wire type.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::paths;
use super::request::{AcmePost, BaseUrl, PathParams, Signer};
use super::App;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::jose::{b64, Jws};
use crate::model::{
    Account, AccountId, AccountStatus, Authz, AuthzId, CertId, ChallengeType, Order, OrderId,
};
use crate::protocol::{
    AccountResource, AccountUpdate, AuthzResource, ChallengeResource, Directory, Finalize,
    NewAccount, NewAuthz, NewOrder, OrderResource, OrdersList, RenewalInfo, RevokeCert,
    SuggestedWindow,
};
use crate::ra::state::{authz_status, challenge_status, order_status, AuthzStatus, OrderStatus};
use crate::ra::Finalized;

fn location(resp: &mut Response, url: &str) {
    if let Ok(v) = HeaderValue::from_str(url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
}

fn add_link(resp: &mut Response, url: &str, rel: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("<{url}>;rel=\"{rel}\"")) {
        resp.headers_mut().append(header::LINK, v);
    }
}

fn retry_after(resp: &mut Response, after: std::time::Duration) {
    let secs = after.as_secs().max(1);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
}

/// GET (or POST-as-GET) /directory.
pub(crate) async fn directory(State(app): State<Arc<App>>, base: BaseUrl) -> Json<Directory> {
    let p = &app.dir_paths;
    Json(Directory {
        new_nonce: base.url(p.new_nonce),
        new_account: base.url(p.new_account),
        new_order: base.url(p.new_order),
        revoke_cert: base.url(p.revoke_cert),
        key_change: base.url(p.key_change),
        new_authz: base.url(p.new_authz),
        renewal_info: base.url(p.renewal_info),
        meta: app.directory_meta.clone(),
    })
}

/// HEAD → 200 and GET → 204 (RFC 8555 §7.2); the nonce itself is added by
/// the shared header wrapper.
pub(crate) async fn new_nonce(method: axum::http::Method) -> Response {
    let status = if method == axum::http::Method::HEAD {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    let mut resp = status.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn account_resource(base: &BaseUrl, a: &Account) -> Result<AccountResource> {
    Ok(AccountResource {
        status: a.status.as_str(),
        contact: a.contact.clone(),
        terms_of_service_agreed: a.tos_agreed,
        orders: base.url(&paths::orders(&a.id)),
        key: serde_json::from_str(&a.jwk).map_err(Error::internal)?,
        created_at: rfc3339(a.created_at),
    })
}

/// POST /acme/new-account (RFC 8555 §7.3).
pub(crate) async fn new_account(
    State(app): State<Arc<App>>,
    peer: Option<axum::Extension<super::PeerAddr>>,
    headers: axum::http::HeaderMap,
    post: AcmePost,
) -> Result<Response> {
    let Signer::Key(jwk) = &post.signer else {
        return Err(Error::malformed(
            "newAccount must be signed with a jwk, not a kid (RFC 8555 §7.3)",
        ));
    };
    let req: NewAccount = post.json()?;
    // The URL this request was posted to (either naming); the JWS url has
    // been checked against it.
    let url = post.jws.protected.url.clone();
    let client = super::client_ip(peer.map(|p| p.0 .0), &headers, &app.trusted_proxies);
    let (account, created) = app.ra.new_account(jwk, &url, &req, client).await?;
    if account.status != AccountStatus::Valid {
        return Err(Error::unauthorized(format!(
            "the account of this key is {}",
            account.status.as_str()
        )));
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = (status, Json(account_resource(&post.base, &account)?)).into_response();
    location(&mut resp, &post.base.url(&paths::account(&account.id)));
    Ok(resp)
}

fn path_id<T>(raw: &str, parse: impl Fn(&str) -> Option<T>, what: &'static str) -> Result<T> {
    parse(raw).ok_or_else(|| Error::not_found(what))
}

/// POST /acme/acct/{id}: read, update contact, or deactivate (§7.3.2, §7.3.6).
pub(crate) async fn account(
    State(app): State<Arc<App>>,
    PathParams(id): PathParams<String>,
    post: AcmePost,
) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "no such account")?;
    let (account, _) = post.account()?;
    if account.id != id {
        return Err(Error::unauthorized(
            "the kid does not match the account URL",
        ));
    }
    let account = if post.jws.is_post_as_get() {
        account.clone()
    } else {
        let update: AccountUpdate = post.json()?;
        app.ra
            .update_account(account, update.contact.as_deref(), update.status.as_deref())
            .await?
    };
    let mut resp = Json(account_resource(&post.base, &account)?).into_response();
    location(&mut resp, &post.base.url(&paths::account(&account.id)));
    Ok(resp)
}

/// POST-as-GET /acme/acct/{id}/orders (§7.1.2.1), paginated with
/// `Link: rel="next"`.
pub(crate) async fn orders(
    State(app): State<Arc<App>>,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
    post: AcmePost,
) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "no such account")?;
    let after = super::request::cursor(query.as_deref())?;
    post.expect_post_as_get()?;
    let (account, _) = post.account()?;
    if account.id != id {
        return Err(Error::unauthorized(
            "these orders belong to another account",
        ));
    }
    let (entries, next) = app.ra.orders_page(account, after).await?;
    let list = OrdersList {
        orders: entries
            .iter()
            .map(|e| post.base.url(&paths::order(&e.id)))
            .collect(),
    };
    let mut resp = Json(list).into_response();
    if let Some(next) = next {
        let url = post
            .base
            .url(&format!("{}?cursor={next}", paths::orders(&id)));
        add_link(&mut resp, &url, "next");
    }
    Ok(resp)
}

fn order_resource(
    base: &BaseUrl,
    order: &Order,
    authzs: &[Authz],
    now: i64,
) -> (OrderResource, OrderStatus) {
    let status = order_status(order, authzs, now);
    let res = OrderResource {
        status: status.as_str(),
        expires: rfc3339(order.expires),
        identifiers: order.identifiers.clone(),
        not_before: order.not_before.map(rfc3339),
        not_after: order.not_after.map(rfc3339),
        error: order.error.clone(),
        authorizations: order
            .authz_ids
            .iter()
            .map(|a| base.url(&paths::authz(a)))
            .collect(),
        finalize: base.url(&paths::finalize(&order.id)),
        certificate: order.cert_id.as_ref().map(|c| base.url(&paths::cert(c))),
        profile: order.profile.clone(),
        replaces: order.replaces.clone(),
    };
    (res, status)
}

fn render_order(
    app: &App,
    base: &BaseUrl,
    order: &Order,
    authzs: &[Authz],
    status: StatusCode,
) -> Response {
    let (res, order_status) = order_resource(base, order, authzs, app.ra.now());
    let mut resp = (status, Json(res)).into_response();
    location(&mut resp, &base.url(&paths::order(&order.id)));
    if order_status == OrderStatus::Processing {
        retry_after(&mut resp, app.retry_after);
    }
    resp
}

/// POST /acme/new-order (§7.4).
pub(crate) async fn new_order(State(app): State<Arc<App>>, post: AcmePost) -> Result<Response> {
    let (account, _) = post.account()?;
    let req: NewOrder = post.json()?;
    let (order, authzs) = app.ra.new_order(account, &req).await?;
    Ok(render_order(
        &app,
        &post.base,
        &order,
        &authzs,
        StatusCode::CREATED,
    ))
}

/// POST /acme/new-authz (§7.4.1): pre-authorization for one identifier.
pub(crate) async fn new_authz(State(app): State<Arc<App>>, post: AcmePost) -> Result<Response> {
    let (account, _) = post.account()?;
    let req: NewAuthz = post.json()?;
    let authz = app.ra.new_authz(account, &req.identifier).await?;
    let (res, _) = authz_resource(&app, &post.base, &authz);
    let mut resp = (StatusCode::CREATED, Json(res)).into_response();
    location(&mut resp, &post.base.url(&paths::authz(&authz.id)));
    Ok(resp)
}

/// GET /acme/renewal-info/{certID} (RFC 9773 §4.2): the suggested renewal
/// window, with Retry-After.
pub(crate) async fn renewal_info(
    State(app): State<Arc<App>>,
    PathParams(id): PathParams<String>,
) -> Result<Response> {
    let mut resp = match app.ra.renewal_info(&id).await? {
        crate::ra::ari::Answer::Window(window) => Json(RenewalInfo {
            suggested_window: SuggestedWindow {
                start: rfc3339(window.start),
                end: rfc3339(window.end),
            },
            explanation_url: app.ari_explanation_url.clone(),
        })
        .into_response(),
        crate::ra::ari::Answer::Set(v) => Json(v).into_response(),
    };
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(app.ari_retry_after.as_secs().max(1)),
    );
    Ok(resp)
}

/// POST-as-GET /acme/order/{id}.
pub(crate) async fn order(
    State(app): State<Arc<App>>,
    PathParams(id): PathParams<String>,
    mut post: AcmePost,
) -> Result<Response> {
    let id = path_id(&id, OrderId::parse, "no such order")?;
    post.expect_post_as_get()?;
    let found = post.found.take();
    let (account, _) = post.account()?;
    let (order, authzs) = app.ra.order(account, &id, found).await?;
    Ok(render_order(
        &app,
        &post.base,
        &order,
        &authzs,
        StatusCode::OK,
    ))
}

/// Upper bound on the base64url CSR text: the body cap bounds it already;
/// this keeps the decode honest if the cap is raised.
const MAX_CSR_B64: usize = 64 * 1024;

/// POST /acme/order/{id}/finalize (§7.4).
pub(crate) async fn finalize(
    State(app): State<Arc<App>>,
    PathParams(id): PathParams<String>,
    mut post: AcmePost,
) -> Result<Response> {
    let id = path_id(&id, OrderId::parse, "no such order")?;
    let found = post.found.take();
    let (account, _) = post.account()?;
    let req: Finalize = post.json()?;
    if req.csr.len() > MAX_CSR_B64 {
        return Err(Error::bad_csr("the CSR is too large"));
    }
    let der = b64::decode(&req.csr)
        .map_err(|_| Error::bad_csr("the csr field is not base64url without padding"))?;
    match app.ra.finalize(account, &id, &der, found).await? {
        Finalized::Now(order, authzs) => Ok(render_order(
            &app,
            &post.base,
            &order,
            &authzs,
            StatusCode::OK,
        )),
        Finalized::Later { order, authzs, job } => {
            // Chaos: processing now, signed after the delay, which is
            // when the client should look again.
            let delay = job.delay;
            let ra = app.clone();
            tokio::spawn(async move { ra.ra.finish_finalize(job).await });
            let mut resp = render_order(&app, &post.base, &order, &authzs, StatusCode::OK);
            retry_after(&mut resp, delay);
            Ok(resp)
        }
    }
}

fn authz_resource(app: &App, base: &BaseUrl, authz: &Authz) -> (AuthzResource, bool) {
    let mut processing = false;
    let challenges = authz
        .offered
        .iter()
        .map(|&kind| challenge_resource(app, base, authz, kind, &mut processing))
        .collect();
    let status = authz_status(authz, app.ra.now());
    // RFC 8555 §7.1.4: the identifier of a wildcard authorization is the
    // base name, with "wildcard": true.
    let res = AuthzResource {
        identifier: authz.identifier.clone(),
        status: status.as_str(),
        expires: rfc3339(authz.expires),
        challenges,
        wildcard: authz.wildcard,
    };
    (res, processing && status == AuthzStatus::Pending)
}

fn challenge_resource(
    app: &App,
    base: &BaseUrl,
    authz: &Authz,
    kind: ChallengeType,
    processing: &mut bool,
) -> ChallengeResource {
    let status = challenge_status(authz, kind);
    if status == crate::ra::state::ChallengeStatus::Processing {
        *processing = true;
    }
    let attempt = authz.attempt.as_ref().filter(|a| a.kind == kind);
    let persist = kind == ChallengeType::DnsPersist01;
    ChallengeResource {
        kind: kind.as_str(),
        url: base.url(&paths::challenge(&authz.id, kind.as_str())),
        status: status.as_str(),
        token: kind.has_token().then(|| authz.token.clone()),
        accounturi: persist.then(|| base.url(&paths::account(&authz.account_id))),
        issuer_domain_names: persist.then(|| app.ra.issuer_domain_names().to_vec()),
        validated: attempt.and_then(|a| a.validated_at).map(rfc3339),
        error: attempt.and_then(|a| a.error.clone()),
        validation_record: attempt.and_then(|a| a.records.clone()),
    }
}

/// The payload of an authorization update (§7.5.2).
#[derive(serde::Deserialize)]
pub(crate) struct AuthzUpdate {
    status: Option<String>,
}

/// POST-as-GET /acme/authz/{id} (§7.5), or its deactivation (§7.5.2).
pub(crate) async fn authz(
    State(app): State<Arc<App>>,
    PathParams(id): PathParams<String>,
    mut post: AcmePost,
) -> Result<Response> {
    let id = path_id(&id, AuthzId::parse, "no such authorization")?;
    let found = post.found.take();
    let (account, _) = post.account()?;
    let authz = if post.jws.is_post_as_get() {
        app.ra.authz(account, &id, found).await?
    } else {
        // §7.5.2: {"status": "deactivated"} is the only change allowed.
        let update: AuthzUpdate = post.json()?;
        if update.status.as_deref() != Some("deactivated") {
            return Err(Error::malformed(
                "an authorization can only be updated to {\"status\": \"deactivated\"}",
            ));
        }
        app.ra.deactivate_authz(account, &id, found).await?
    };
    let (res, processing) = authz_resource(&app, &post.base, &authz);
    let mut resp = Json(res).into_response();
    if processing {
        retry_after(&mut resp, app.authz_retry_after);
    }
    Ok(resp)
}

/// POST /acme/chall/{authz}/{type}: `{}` starts validation (§7.5.1); an
/// empty payload reads the challenge.
pub(crate) async fn challenge(
    State(app): State<Arc<App>>,
    PathParams((authz_id, kind)): PathParams<(String, String)>,
    mut post: AcmePost,
) -> Result<Response> {
    let id = path_id(&authz_id, AuthzId::parse, "no such challenge")?;
    let kind = path_id(&kind, ChallengeType::parse, "no such challenge")?;
    let found = post.found.take();
    let (account, jwk) = post.account()?;
    let authz = if post.jws.is_post_as_get() {
        app.ra.authz(account, &id, found).await?
    } else {
        // §7.5.1: the payload is an empty JSON object; other members are
        // ignored for extensibility, but it must be an object.
        let _: serde_json::Map<String, serde_json::Value> = post.json()?;
        let account_url = post.base.url(&paths::account(&account.id));
        app.ra
            .answer_challenge(account, jwk, &id, kind, account_url, found)
            .await?
    };
    if !authz.offered.contains(&kind) {
        return Err(Error::not_found("no such challenge"));
    }
    let mut processing = false;
    let res = challenge_resource(&app, &post.base, &authz, kind, &mut processing);
    let mut resp = Json(res).into_response();
    add_link(&mut resp, &post.base.url(&paths::authz(&authz.id)), "up");
    if processing {
        retry_after(&mut resp, app.authz_retry_after);
    }
    Ok(resp)
}

/// POST-as-GET /acme/cert/{id} (§7.4.2): the PEM chain, leaf first, along
/// the default chain; the others are linked as `rel="alternate"`.
pub(crate) async fn certificate(
    State(app): State<Arc<App>>,
    PathParams(id): PathParams<String>,
    post: AcmePost,
) -> Result<Response> {
    let id = path_id(&id, CertId::parse, "no such certificate")?;
    certificate_chain(&app, &id, 0, post).await
}

/// POST-as-GET /acme/cert/{id}/alt/{n}: the same certificate along
/// alternate chain `n`.
pub(crate) async fn certificate_alternate(
    State(app): State<Arc<App>>,
    PathParams((id, n)): PathParams<(String, String)>,
    post: AcmePost,
) -> Result<Response> {
    let id = path_id(&id, CertId::parse, "no such certificate")?;
    let n = n
        .parse::<usize>()
        .ok()
        .filter(|&n| n >= 1 && n < app.ra.chains().len())
        .ok_or_else(|| Error::not_found("no such alternate chain"))?;
    certificate_chain(&app, &id, n, post).await
}

async fn certificate_chain(
    app: &App,
    id: &CertId,
    chain: usize,
    mut post: AcmePost,
) -> Result<Response> {
    post.expect_post_as_get()?;
    let found = post.found.take();
    let (account, _) = post.account()?;
    let cert = app.ra.certificate(account, id, found).await?;
    let chains = app.ra.chains();
    let mut body = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &cert.der)
        .map_err(Error::internal)?;
    body.push_str(chains[chain].intermediates_pem());
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pem-certificate-chain"),
    );
    for other in (0..chains.len()).filter(|&n| n != chain) {
        let url = match other {
            0 => post.base.url(&paths::cert(id)),
            n => post.base.url(&paths::cert_alternate(id, n)),
        };
        add_link(&mut resp, &url, "alternate");
    }
    Ok(resp)
}

/// GET /acme/issuer-cert: the intermediate in DER, the AIA caIssuers target
/// (RFC 5280 §4.2.2.1).
pub(crate) async fn issuer_cert(State(app): State<Arc<App>>) -> Response {
    let mut resp = app.ra.intermediate_der().to_vec().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkix-cert"),
    );
    resp
}

/// POST /acme/key-change (RFC 8555 §7.3.5): the payload is a JWS signed
/// by the new key.
pub(crate) async fn key_change(State(app): State<Arc<App>>, post: AcmePost) -> Result<Response> {
    let (account, _) = post.account()?;
    // The inner JWS is bounded by the outer body's size cap.
    let inner = Jws::parse(post.jws.payload())?;
    let account_url = post.base.url(&paths::account(&account.id));
    match app
        .ra
        .change_key(account, &account_url, &post.jws.protected.url, &inner)
        .await?
    {
        Ok(updated) => {
            let mut resp = Json(account_resource(&post.base, &updated)?).into_response();
            location(&mut resp, &account_url);
            Ok(resp)
        }
        Err(other) => {
            let mut resp = Error::new(
                crate::error::ErrorKind::Conflict,
                "the new key already belongs to another account",
            )
            .into_response();
            location(&mut resp, &post.base.url(&paths::account(&other)));
            Ok(resp)
        }
    }
}

/// POST /acme/revoke-cert (RFC 8555 §7.6): signed by an account (`kid`) or
/// by the certificate's key (`jwk`).
pub(crate) async fn revoke_cert(State(app): State<Arc<App>>, post: AcmePost) -> Result<Response> {
    let req: RevokeCert = post.json()?;
    if req.certificate.len() > MAX_CSR_B64 {
        return Err(Error::malformed("the certificate is too large"));
    }
    let der = b64::decode(&req.certificate)
        .map_err(|_| Error::malformed("the certificate field is not base64url"))?;
    let (account, key) = match &post.signer {
        Signer::Account(a, _) => (Some(a), None),
        Signer::Key(k) => (None, Some(k)),
    };
    app.ra.revoke(account, key, &der, req.reason).await?;
    Ok(StatusCode::OK.into_response())
}

/// Anything else.
pub(crate) async fn not_found() -> Error {
    Error::not_found("no such resource")
}

/// A known resource asked with the wrong method.
pub(crate) async fn method_not_allowed() -> Error {
    Error::new(
        crate::error::ErrorKind::MethodNotAllowed,
        "method not allowed on this resource; ACME resources take POST (RFC 8555 §6.3)",
    )
}
