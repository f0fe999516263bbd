//! Turning an HTTP request into checked values: the base URL a client uses,
//! and a verified JWS (RFC 8555 §6.2–§6.5) with the key or account that
//! signed it.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, Uri};
use serde::de::DeserializeOwned;
use std::sync::Arc;

use super::nonce::NonceService;
use super::paths;
use super::App;
use crate::error::{Error, ErrorKind, Result};
use crate::jose::{Jwk, Jws, KeyRef};
use crate::model::{Account, AccountId, AuthzId, CertId, OrderId};
use crate::store::shared::{Found, Lookup};

/// The scheme and authority clients use to reach us, e.g.
/// `https://localhost:14000`: the configured external URL, or else built
/// from the request's Host (HTTP/1.1) or authority (HTTP/2).
#[derive(Debug, Clone)]
pub(crate) struct BaseUrl(pub String);

impl BaseUrl {
    /// The base URL of a request: `external` when configured, else built
    /// from the Host header (HTTP/1.1) or the URI's authority (HTTP/2),
    /// which must be a plausible host name.
    pub(crate) fn derive(
        external: Option<&str>,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<BaseUrl> {
        if let Some(url) = external {
            return Ok(BaseUrl(url.to_owned()));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .ok_or_else(|| Error::malformed("the request has no Host"))?;
        if !valid_host(host) {
            return Err(Error::malformed(
                "the request's Host is not a valid host name",
            ));
        }
        Ok(BaseUrl(format!("https://{host}")))
    }

    pub(crate) fn url(&self, path: &str) -> String {
        let mut s = String::with_capacity(self.0.len() + path.len());
        s.push_str(&self.0);
        s.push_str(path);
        s
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl FromRequestParts<Arc<App>> for BaseUrl {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self> {
        BaseUrl::derive(app.external_url.as_deref(), &parts.headers, &parts.uri)
    }
}

/// Parsed account keys by their canonical JSON, so a request signed with
/// `kid` does not parse the stored key again. Bounded: when full, it is
/// emptied (a miss only costs one parse).
pub(crate) struct KeyCache {
    keys: std::sync::Mutex<std::collections::HashMap<String, Arc<Jwk>>>,
    /// Account id → its stored key as last read, for the one-round-trip
    /// path of [`known_signer`].
    accounts: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// Keys kept at most.
const KEY_CACHE_SIZE: usize = 10_000;

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            keys: std::sync::Mutex::new(std::collections::HashMap::new()),
            accounts: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl KeyCache {
    /// The parsed key of a stored canonical JWK.
    pub(crate) fn get(&self, canonical: &str) -> Result<Arc<Jwk>> {
        let lock = || self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = lock().get(canonical) {
            return Ok(k.clone());
        }
        let jwk = Arc::new(
            Jwk::from_json_str(canonical)
                .map_err(|e| Error::internal(format_args!("stored JWK: {e}")))?,
        );
        let mut keys = lock();
        if keys.len() >= KEY_CACHE_SIZE {
            keys.clear();
        }
        keys.insert(canonical.to_owned(), jwk.clone());
        Ok(jwk)
    }

    /// The stored key of account `id` when this process last read it.
    fn account_key(&self, id: &AccountId) -> Option<String> {
        let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.get(&id.0).cloned()
    }

    /// Remembers the stored key of `account` (bounded like the keys).
    fn remember_account(&self, account: &Account) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if accounts.len() >= KEY_CACHE_SIZE && !accounts.contains_key(&account.id.0) {
            accounts.clear();
        }
        accounts.insert(account.id.0.clone(), account.jwk.clone());
    }
}

/// Path parameters, with axum's plain-text rejection (e.g. a segment that
/// is not valid percent-encoded UTF-8) turned into a problem document.
pub(crate) struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParams(v))
            .map_err(|_| Error::not_found("no such resource"))
    }
}

/// The `cursor` query parameter of a paginated list: absent, or a
/// non-negative integer.
pub(crate) fn cursor(parts: Option<&str>) -> Result<i64> {
    let Some(query) = parts else { return Ok(0) };
    let mut cursor = 0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("cursor", v)) => {
                cursor = v
                    .parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or_else(|| Error::malformed("cursor must be a non-negative integer"))?;
            }
            _ => return Err(Error::malformed("unknown query parameter")),
        }
    }
    Ok(cursor)
}

/// Who signed a verified request.
pub(crate) enum Signer {
    /// A `jwk` header: newAccount (and revokeCert by certificate key).
    Key(Jwk),
    /// A `kid` header naming a valid account; with the account's key.
    Account(Account, Arc<Jwk>),
}

/// A POST whose JWS was parsed, whose signature verified, whose nonce was
/// spent and whose `url` matched the request URL.
pub(crate) struct AcmePost {
    pub jws: Jws,
    pub signer: Signer,
    pub base: BaseUrl,
    /// The order, authorization or certificate the URL names, when it was
    /// read in the nonce's database step (for the handler to pass on to
    /// the RA, which reads it itself otherwise).
    pub found: Option<Found>,
}

impl AcmePost {
    /// The signing account; requests that need one refuse a `jwk`.
    pub(crate) fn account(&self) -> Result<(&Account, &Jwk)> {
        match &self.signer {
            Signer::Account(a, k) => Ok((a, k.as_ref())),
            Signer::Key(_) => Err(Error::malformed(
                "this request must be signed with an account's kid, not a jwk",
            )),
        }
    }

    /// The payload must be empty: a POST-as-GET (RFC 8555 §6.3).
    pub(crate) fn expect_post_as_get(&self) -> Result<()> {
        if self.jws.is_post_as_get() {
            Ok(())
        } else {
            Err(Error::malformed(
                "this resource is read with POST-as-GET: the payload must be empty",
            ))
        }
    }

    /// The payload as JSON of type `T` (not a POST-as-GET).
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if self.jws.is_post_as_get() {
            return Err(Error::malformed("this request needs a JSON payload"));
        }
        serde_json::from_slice(self.jws.payload())
            .map_err(|e| Error::malformed(format!("the payload is not valid: {e}")))
    }
}

/// Where the request extractor leaves the account a request names (its
/// `kid`), for the request log; present only when requests are logged.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoggedAccount(pub Arc<std::sync::OnceLock<String>>);

impl FromRequest<Arc<App>> for AcmePost {
    type Rejection = Error;

    /// RFC 8555 §6.2-6.5, in order: POST with `application/jose+json`, a
    /// body within `max_body`, a JWS that parses, a known signer whose
    /// signature verifies, then (only for a good signature) the nonce,
    /// then the `url` header.
    async fn from_request(req: Request<Body>, app: &Arc<App>) -> Result<Self> {
        let (mut parts, body) = req.into_parts();
        if parts.method != Method::POST {
            return Err(Error::new(
                ErrorKind::MethodNotAllowed,
                "ACME resources are read and changed with POST (RFC 8555 §6.3)",
            ));
        }
        let base = BaseUrl::from_request_parts(&mut parts, app).await?;
        check_content_type(&parts.headers)?;
        let body = axum::body::to_bytes(body, app.max_body)
            .await
            .map_err(|_| {
                Error::malformed(format!(
                    "the request body is larger than {} bytes, or could not be read",
                    app.max_body
                ))
            })?;
        let jws = Jws::parse(&body)?;
        let kid = kid_account(&jws, &base, &parts.extensions)?;
        let known = match &kid {
            Some(id) => known_signer(&jws, id, &parts.uri, app).await?,
            None => None,
        };
        let (account, key, found) = match known {
            Some((account, key, found)) => (Some(account), key, found),
            None => {
                let (account, key) = signer_key(&jws, kid.as_ref(), app).await?;
                jws.verify(&key)?;
                // Only a correctly signed request spends a nonce (RFC 8555
                // §6.5).
                spend_nonce(jws.protected.nonce.as_deref(), app).await?;
                if let Some(account) = &account {
                    app.keys.remember_account(account);
                }
                (account, key, None)
            }
        };
        check_url(&jws.protected.url, &base, &parts.uri)?;
        let signer = match account {
            Some(account) => Signer::Account(account, key),
            None => Signer::Key(Arc::unwrap_or_clone(key)),
        };
        Ok(AcmePost {
            jws,
            signer,
            base,
            found,
        })
    }
}

/// RFC 8555 §6.2: the only accepted media type; parameters are not
/// expected but tolerated.
fn check_content_type(headers: &HeaderMap) -> Result<()> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/jose+json"));
    if !ok {
        return Err(Error::new(
            ErrorKind::UnsupportedMediaType,
            "the Content-Type must be application/jose+json",
        ));
    }
    Ok(())
}

/// The account a `kid` names (None for a `jwk`), noted for the request
/// log.
fn kid_account(
    jws: &Jws,
    base: &BaseUrl,
    extensions: &axum::http::Extensions,
) -> Result<Option<AccountId>> {
    let kid = match &jws.protected.key {
        KeyRef::Jwk(_) => return Ok(None),
        KeyRef::Kid(kid) => kid,
    };
    let id = kid
        .strip_prefix(base.0.as_str())
        .and_then(|p| p.strip_prefix(paths::ACCOUNT_PREFIX))
        .and_then(AccountId::parse)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::AccountDoesNotExist,
                "kid is not the URL of an account on this server",
            )
        })?;
    if let Some(slot) = extensions.get::<LoggedAccount>() {
        // First set wins; a request names one account.
        let _ = slot.0.set(id.to_string());
    }
    Ok(Some(id))
}

/// The key that must have signed `jws`: its `jwk`, or the key of the
/// valid account `kid` names (with that account).
async fn signer_key(
    jws: &Jws,
    kid: Option<&AccountId>,
    app: &App,
) -> Result<(Option<Account>, Arc<Jwk>)> {
    let Some(id) = kid else {
        let KeyRef::Jwk(jwk) = &jws.protected.key else {
            return Err(Error::internal("a kid request without its account id"));
        };
        return Ok((None, Arc::new(jwk.clone())));
    };
    let account = app.ra.account_for_kid(id).await?;
    let jwk = app.keys.get(&account.jwk)?;
    Ok((Some(account), jwk))
}

/// The record a request's URL names, for the nonce's database step to read
/// along.
fn lookup(uri: &Uri) -> Option<Lookup> {
    Some(match paths::named(uri.path())? {
        paths::Named::Order(id) => Lookup::Order(OrderId::parse(id)?),
        paths::Named::Authz(id) => Lookup::Authz(AuthzId::parse(id)?),
        paths::Named::Cert(id) => Lookup::Cert(CertId::parse(id)?),
    })
}

/// With fleet nonces, a request signed by an account whose key this
/// process has read before takes one database round trip instead of three:
/// the signature is checked with the remembered key first, then the nonce
/// is spent, the account read (so its status is current) and the record
/// the URL names read ([`lookup`] of `uri`), in one step.
/// If the key changed meanwhile (a rollover at another instance), the
/// request must verify under the current one. None when this path does
/// not apply (no fleet nonces, an unknown account, a signature that does
/// not verify with the remembered key, a nonce refused without a database
/// write): the caller then takes the usual path, which gives the usual
/// answers.
async fn known_signer(
    jws: &Jws,
    id: &AccountId,
    uri: &Uri,
    app: &App,
) -> Result<Option<(Account, Arc<Jwk>, Option<Found>)>> {
    let NonceService::Shared(nonces) = &app.nonces else {
        return Ok(None);
    };
    let Some(remembered) = app.keys.account_key(id) else {
        return Ok(None);
    };
    let key = app.keys.get(&remembered)?;
    if jws.verify(&key).is_err() {
        return Ok(None);
    }
    let Some(nonce) = jws.protected.nonce.as_deref() else {
        return Ok(None);
    };
    let Some(ticket) = nonces.ticket(nonce) else {
        return Ok(None);
    };
    let (account, fresh, found) = app
        .ra
        .account_for_kid_spending_nonce(id, &ticket.id, ticket.keep_until_ms, lookup(uri).as_ref())
        .await?;
    let key = if account.jwk == remembered {
        key
    } else {
        let current = app.keys.get(&account.jwk)?;
        jws.verify(&current)?;
        app.keys.remember_account(&account);
        current
    };
    nonce_outcome(nonce, fresh, app)?;
    Ok(Some((account, key, found)))
}

/// Spends the JWS's nonce, or says `badNonce`.
async fn spend_nonce(nonce: Option<&str>, app: &App) -> Result<()> {
    let Some(nonce) = nonce else {
        app.metrics.nonce_refused();
        return Err(Error::new(ErrorKind::BadNonce, "the JWS has no nonce"));
    };
    let fresh = app.nonces.redeem(nonce).await?;
    nonce_outcome(nonce, fresh, app)
}

/// `badNonce` unless the nonce was `fresh` (and not refused on purpose by
/// `bad_nonce_percent`); counted either way.
fn nonce_outcome(nonce: &str, fresh: bool, app: &App) -> Result<()> {
    // The detail starts as Pebble's does: acme.sh retries a badNonce
    // only when it finds that text.
    let bad_nonce = |why: &str| {
        let shown: String = nonce.chars().take(64).collect();
        Error::new(
            ErrorKind::BadNonce,
            format!(
                "JWS has an invalid anti-replay nonce: {shown:?} ({why}); retry with the one in this response"
            ),
        )
    };
    if !fresh {
        app.metrics.nonce_refused();
        return Err(bad_nonce("unknown, expired or already used"));
    }
    if app.bad_nonce_percent > 0 && crate::rand::percent_chance(app.bad_nonce_percent) {
        app.metrics.nonce_refused();
        return Err(bad_nonce(
            "a good nonce refused on purpose by bad_nonce_percent, to exercise retries",
        ));
    }
    app.metrics.nonce_redeemed();
    Ok(())
}

/// RFC 8555 §6.4: the `url` header must be the URL of this request.
fn check_url(url: &str, base: &BaseUrl, uri: &Uri) -> Result<()> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let expected_len = base.0.len() + path.len();
    if url.len() != expected_len || !url.starts_with(&base.0) || &url[base.0.len()..] != path {
        return Err(Error::unauthorized(format!(
            "the JWS url {:?} is not this request's URL {:?}",
            url.chars().take(200).collect::<String>(),
            base.url(path)
        )));
    }
    Ok(())
}
