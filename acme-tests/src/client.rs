//! A small, fast ACME (RFC 8555) client for tests and load generation.
//!
//! * [`HttpOptions`] / [`build_http_client`] make the one shared
//!   [`reqwest::Client`] (rustls with aws-lc-rs, keep-alive, per-request
//!   timeout, optional custom root or no verification).
//! * [`AcmeClient`] holds that client and the server's [`Directory`]; it is
//!   cheap to clone and is shared by every account.
//! * [`Account`] is one ACME account: its [`AccountKey`], its URL (`kid`) and
//!   the last `Replay-Nonce` it was given. Requests of one account are
//!   sequential (`&mut self`), so the nonce is always the freshest one; a
//!   `badNonce` answer is retried once with the nonce that came with it.
//! * [`Account::issue`] runs a whole issuance flow (order, authorizations,
//!   challenge, finalize, certificate download) and reports its timings.
//!
//! ```no_run
//! # async fn demo() -> Result<(), acme_tests::client::Error> {
//! use acme_tests::client::*;
//! let http = build_http_client(&HttpOptions { insecure: true, ..Default::default() })?;
//! let client = AcmeClient::new(http, "https://127.0.0.1:14000/dir", None).await?;
//! let mut account = Account::create(client, acme_tests::jws::AccountKey::generate().unwrap(), &[]).await?;
//! let csr = CsrKey::generate()?;
//! let names = vec!["a.example".to_string()];
//! let issued = account.issue(&names, &csr.csr_der(&names)?, &IssueOptions::default()).await?;
//! println!("{}", issued.certificate_pem);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION};
use serde::Deserialize;

use crate::jws::{b64url, AccountKey, KeyId};

/// Media type of every ACME POST body (RFC 8555 §6.2).
pub const JOSE_JSON: &str = "application/jose+json";
/// The `badNonce` error type (RFC 8555 §6.7).
pub const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// An RFC 7807 problem document, as ACME servers return on errors.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Problem {
    /// Error type URI, e.g. `urn:ietf:params:acme:error:badNonce`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Human readable explanation.
    #[serde(default)]
    pub detail: Option<String>,
    /// HTTP status the server meant.
    #[serde(default)]
    pub status: Option<u16>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to an ACME server.
#[derive(Debug)]
pub enum Error {
    /// Transport failure: connect error, TLS error, per-request timeout, …
    Http { url: String, source: reqwest::Error },
    /// The server answered with an error status and a problem document.
    Problem {
        url: String,
        status: u16,
        problem: Problem,
    },
    /// The server answered with an error status and something else.
    Status {
        url: String,
        status: u16,
        body: String,
    },
    /// The answer was not what RFC 8555 says it should be.
    Protocol(String),
    /// A poll did not reach the wanted state before the deadline.
    Timeout(String),
    /// Local failure (key generation, CSR building, configuration).
    Local(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Http { url, source } => {
                // reqwest's Display hides the interesting part in the source chain.
                write!(f, "request to {url} failed: {source}")?;
                let mut cause = std::error::Error::source(source);
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
            Error::Problem {
                url,
                status,
                problem,
            } => write!(f, "{url} answered {status}: {problem}"),
            Error::Status { url, status, body } => write!(f, "{url} answered {status}: {body}"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::Timeout(m) => write!(f, "timeout: {m}"),
            Error::Local(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The problem document, if the server sent one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// Whether this is a transport-level timeout of a single request.
    pub fn is_request_timeout(&self) -> bool {
        matches!(self, Error::Http { source, .. } if source.is_timeout())
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/// How to build the shared HTTP client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Accept any server certificate (for loopback test servers).
    pub insecure: bool,
    /// PEM root certificate(s) to trust instead of the platform's.
    pub ca_pem: Option<Vec<u8>>,
    /// Timeout of each single request (connect + answer + body).
    pub request_timeout: Duration,
    /// Speak HTTP/1.1 only (default: HTTP/2 when the server offers it by ALPN).
    pub http1_only: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            insecure: false,
            ca_pem: None,
            request_timeout: Duration::from_secs(30),
            http1_only: false,
        }
    }
}

/// Build the one [`reqwest::Client`] every account shares. Connections are
/// kept alive and reused (HTTP/1.1 pool or one multiplexed HTTP/2 connection).
pub fn build_http_client(opts: &HttpOptions) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(opts.request_timeout)
        .connect_timeout(opts.request_timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .user_agent(concat!("acme-tests/", env!("CARGO_PKG_VERSION")));
    if opts.http1_only {
        b = b.http1_only();
    }
    if opts.insecure {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if let Some(pem) = &opts.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Local(format!("cannot read CA certificate: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Local("CA file holds no PEM certificate".into()));
        }
        b = b.tls_certs_only(certs);
    }
    b.build()
        .map_err(|e| Error::Local(format!("cannot build HTTP client: {e}")))
}

// ---------------------------------------------------------------------------
// Progress (for stall detection)
// ---------------------------------------------------------------------------

/// Records when the last HTTP answer arrived. Shared by all accounts of a
/// load run so a watchdog can tell a slow server from one that stopped
/// answering.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    last_ms: AtomicU64,
    responses: AtomicU64,
}

impl Progress {
    /// A tracker whose clock starts now.
    pub fn new() -> Self {
        Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            responses: AtomicU64::new(0),
        }
    }

    /// Note that something finished now.
    pub fn tick(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Note that one HTTP answer arrived now.
    pub fn response(&self) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        self.tick();
    }

    /// Time since the last [`tick`](Self::tick) (or since creation).
    pub fn idle(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Time from creation to the last tick.
    pub fn last_tick(&self) -> Duration {
        Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// When this tracker was created.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Number of HTTP answers seen.
    pub fn responses(&self) -> u64 {
        self.responses.load(Ordering::Relaxed)
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------

/// The directory object (RFC 8555 §7.1.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub new_nonce: String,
    pub new_account: String,
    pub new_order: String,
    #[serde(default)]
    pub revoke_cert: Option<String>,
    #[serde(default)]
    pub key_change: Option<String>,
    #[serde(default)]
    pub new_authz: Option<String>,
    #[serde(default)]
    pub meta: Option<serde_json::Value>,
}

/// An identifier (RFC 8555 §7.1.3 / §7.1.4).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// An order object (RFC 8555 §7.1.3).
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub status: String,
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    #[serde(default)]
    pub authorizations: Vec<String>,
    #[serde(default)]
    pub finalize: String,
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub error: Option<Problem>,
}

/// A challenge object (RFC 8555 §7.1.5).
#[derive(Debug, Clone, Deserialize)]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub status: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub error: Option<Problem>,
}

/// An authorization object (RFC 8555 §7.1.4).
#[derive(Debug, Clone, Deserialize)]
pub struct Authorization {
    pub status: String,
    pub identifier: Identifier,
    #[serde(default)]
    pub challenges: Vec<Challenge>,
    #[serde(default)]
    pub wildcard: Option<bool>,
}

/// An account object (RFC 8555 §7.1.2), as returned by newAccount.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountObject {
    pub status: String,
    #[serde(default)]
    pub contact: Vec<String>,
    #[serde(default)]
    pub orders: Option<String>,
}

/// One HTTP answer, with the headers ACME cares about.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    /// Deserialize the body as JSON.
    pub fn json<T: for<'de> Deserialize<'de>>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Protocol(format!("cannot parse {what}: {e}: {}", snippet(&self.body)))
        })
    }

    /// The `Location` header, or a protocol error naming `what`.
    pub fn require_location(&self, what: &str) -> Result<String> {
        self.location
            .clone()
            .ok_or_else(|| Error::Protocol(format!("{what} answer has no Location header")))
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    s.replace('\n', " ")
}

fn header_str(h: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

// ---------------------------------------------------------------------------
// AcmeClient
// ---------------------------------------------------------------------------

/// The HTTP client and the server's directory; cheap to clone.
#[derive(Clone)]
pub struct AcmeClient {
    http: reqwest::Client,
    directory: Arc<Directory>,
    directory_url: Arc<str>,
    progress: Option<Arc<Progress>>,
}

impl fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeClient")
            .field("directory_url", &self.directory_url)
            .finish_non_exhaustive()
    }
}

impl AcmeClient {
    /// Fetch the directory at `directory_url`. If `progress` is given, every
    /// HTTP answer (of any status) made through this client ticks it.
    pub async fn new(
        http: reqwest::Client,
        directory_url: &str,
        progress: Option<Arc<Progress>>,
    ) -> Result<Self> {
        let mut client = AcmeClient {
            http,
            directory: Arc::new(Directory {
                new_nonce: String::new(),
                new_account: String::new(),
                new_order: String::new(),
                revoke_cert: None,
                key_change: None,
                new_authz: None,
                meta: None,
            }),
            directory_url: directory_url.into(),
            progress,
        };
        let resp = client.get(directory_url).await?;
        if resp.status != 200 {
            return Err(Error::Status {
                url: directory_url.into(),
                status: resp.status,
                body: snippet(&resp.body),
            });
        }
        client.directory = Arc::new(resp.json("directory")?);
        Ok(client)
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn tick(&self) {
        if let Some(p) = &self.progress {
            p.response();
        }
    }

    async fn finish(
        &self,
        url: &str,
        resp: reqwest::Response,
    ) -> Result<(Response, Option<String>)> {
        let status = resp.status().as_u16();
        let headers = resp.headers();
        let location = header_str(headers, LOCATION);
        let content_type = header_str(headers, CONTENT_TYPE);
        let nonce = header_str(headers, "replay-nonce");
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Http {
                url: url.into(),
                source: e,
            })?
            .to_vec();
        self.tick();
        Ok((
            Response {
                status,
                location,
                content_type,
                body,
            },
            nonce,
        ))
    }

    /// Plain GET (directory, or servers that still allow GET on resources).
    pub async fn get(&self, url: &str) -> Result<Response> {
        let resp = self.http.get(url).send().await.map_err(|e| Error::Http {
            url: url.into(),
            source: e,
        })?;
        Ok(self.finish(url, resp).await?.0)
    }

    /// Get a fresh nonce from newNonce (HEAD).
    pub async fn new_nonce(&self) -> Result<String> {
        let url = &self.directory.new_nonce;
        let resp = self.http.head(url).send().await.map_err(|e| Error::Http {
            url: url.clone(),
            source: e,
        })?;
        let nonce = header_str(resp.headers(), "replay-nonce");
        let status = resp.status().as_u16();
        self.tick();
        match nonce {
            Some(n) if status < 400 => Ok(n),
            _ => Err(Error::Protocol(format!(
                "newNonce answered {status} without a Replay-Nonce"
            ))),
        }
    }

    /// Send one signed POST. Returns the answer and its Replay-Nonce, whatever the status.
    pub async fn post_jws(&self, url: &str, body: Vec<u8>) -> Result<(Response, Option<String>)> {
        let resp = self
            .http
            .post(url)
            .header(CONTENT_TYPE, JOSE_JSON)
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Http {
                url: url.into(),
                source: e,
            })?;
        self.finish(url, resp).await
    }
}

// ---------------------------------------------------------------------------
// Account
// ---------------------------------------------------------------------------

/// Options of [`Account::issue`].
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// Sleep between two polls of an authorization or an order. No
    /// `Retry-After` is honoured: this is for test servers.
    pub poll_interval: Duration,
    /// Give up polling after this long since the flow started.
    pub flow_timeout: Duration,
    /// The challenge type to answer (`http-01` by default). The payload sent
    /// is always `{}`: the test servers are expected to validate without
    /// looking (PEBBLE_VA_ALWAYS_VALID=1) or the caller serves the response.
    pub challenge_type: String,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            poll_interval: Duration::from_millis(10),
            flow_timeout: Duration::from_secs(120),
            challenge_type: "http-01".into(),
        }
    }
}

/// Result of a successful [`Account::issue`].
#[derive(Debug, Clone)]
pub struct Issued {
    pub order_url: String,
    pub certificate_url: String,
    /// The PEM chain as served.
    pub certificate_pem: String,
    /// Number of PEM certificates in the chain.
    pub chain_len: usize,
    /// Whole flow: newOrder sent to certificate downloaded.
    pub total: Duration,
    /// finalize sent to order `valid` (including the processing polls).
    pub finalize: Duration,
    /// Authorizations that were already valid (reused by the server).
    pub reused_authorizations: usize,
    /// Number of signed POSTs the flow made (badNonce retries included).
    pub requests: u32,
}

/// One ACME account; requests through it are sequential.
pub struct Account {
    client: AcmeClient,
    key: AccountKey,
    kid: String,
    nonce: Option<String>,
    requests: u32,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// Register a new account with `termsOfServiceAgreed: true` and the given
    /// contact URLs (e.g. `mailto:…`, may be empty).
    pub async fn create(client: AcmeClient, key: AccountKey, contact: &[String]) -> Result<Self> {
        let payload = serde_json::json!({ "termsOfServiceAgreed": true, "contact": contact });
        let payload = serde_json::to_vec(&payload).expect("serialising JSON cannot fail");
        let mut acct = Account {
            client,
            key,
            kid: String::new(),
            nonce: None,
            requests: 0,
        };
        let url = acct.client.directory.new_account.clone();
        let resp = acct.post_with(KeyId::Jwk, &url, Some(&payload)).await?;
        if resp.status != 201 && resp.status != 200 {
            return Err(Error::Protocol(format!(
                "newAccount answered {}",
                resp.status
            )));
        }
        acct.kid = resp.require_location("newAccount")?;
        let obj: AccountObject = resp.json("account")?;
        if obj.status != "valid" {
            return Err(Error::Protocol(format!(
                "new account has status {}",
                obj.status
            )));
        }
        Ok(acct)
    }

    /// The account URL (`kid`).
    pub fn url(&self) -> &str {
        &self.kid
    }

    /// The account key.
    pub fn key(&self) -> &AccountKey {
        &self.key
    }

    /// The client this account talks through.
    pub fn client(&self) -> &AcmeClient {
        &self.client
    }

    /// Signed POSTs sent so far.
    pub fn requests_sent(&self) -> u32 {
        self.requests
    }

    /// Signed POST with the account URL as `kid`. `payload` `None` is
    /// POST-as-GET. Error statuses become [`Error::Problem`]/[`Error::Status`].
    pub async fn post(&mut self, url: &str, payload: Option<&[u8]>) -> Result<Response> {
        let kid = std::mem::take(&mut self.kid);
        let r = self.post_with(KeyId::Kid(&kid), url, payload).await;
        self.kid = kid;
        r
    }

    /// Signed POST without turning error statuses into errors (for tests that
    /// expect a failure). badNonce is still retried once.
    pub async fn post_raw(&mut self, url: &str, payload: Option<&[u8]>) -> Result<Response> {
        let kid = std::mem::take(&mut self.kid);
        let r = self.post_raw_with(KeyId::Kid(&kid), url, payload).await;
        self.kid = kid;
        r
    }

    async fn post_with(
        &mut self,
        id: KeyId<'_>,
        url: &str,
        payload: Option<&[u8]>,
    ) -> Result<Response> {
        let resp = self.post_raw_with(id, url, payload).await?;
        if resp.status >= 400 {
            return Err(error_from(url, resp));
        }
        Ok(resp)
    }

    async fn post_raw_with(
        &mut self,
        id: KeyId<'_>,
        url: &str,
        payload: Option<&[u8]>,
    ) -> Result<Response> {
        let mut retried = false;
        loop {
            let nonce = match self.nonce.take() {
                Some(n) => n,
                None => self.client.new_nonce().await?,
            };
            let body = self.key.sign_request(id, &nonce, url, payload);
            self.requests += 1;
            let (resp, next) = self.client.post_jws(url, body).await?;
            self.nonce = next;
            if !retried && resp.status == 400 && is_bad_nonce(&resp) {
                retried = true;
                continue;
            }
            return Ok(resp);
        }
    }

    /// newOrder for DNS names; returns the order URL and the order.
    pub async fn new_order(&mut self, dns_names: &[String]) -> Result<(String, Order)> {
        let mut payload = String::from(r#"{"identifiers":["#);
        for (i, n) in dns_names.iter().enumerate() {
            if i > 0 {
                payload.push(',');
            }
            payload.push_str(r#"{"type":"dns","value":"#);
            payload.push_str(&crate::jws::json_str(n));
            payload.push('}');
        }
        payload.push_str("]}");
        let url = self.client.directory.new_order.clone();
        let resp = self.post(&url, Some(payload.as_bytes())).await?;
        if resp.status != 201 {
            return Err(Error::Protocol(format!(
                "newOrder answered {} instead of 201",
                resp.status
            )));
        }
        let loc = resp.require_location("newOrder")?;
        Ok((loc, resp.json("order")?))
    }

    /// POST-as-GET an order.
    pub async fn order(&mut self, url: &str) -> Result<Order> {
        self.post(url, None).await?.json("order")
    }

    /// POST-as-GET an authorization.
    pub async fn authorization(&mut self, url: &str) -> Result<Authorization> {
        self.post(url, None).await?.json("authorization")
    }

    /// Tell the server a challenge is ready (POST `{}`).
    pub async fn respond_challenge(&mut self, url: &str) -> Result<Challenge> {
        self.post(url, Some(b"{}")).await?.json("challenge")
    }

    /// Poll an authorization until it is `valid` (first poll at once, then
    /// every `interval`). `invalid` or any other final status is an error.
    pub async fn poll_authorization(
        &mut self,
        url: &str,
        interval: Duration,
        deadline: Instant,
    ) -> Result<Authorization> {
        loop {
            let authz = self.authorization(url).await?;
            match authz.status.as_str() {
                "valid" => return Ok(authz),
                "pending" => {}
                other => {
                    let why = authz
                        .challenges
                        .iter()
                        .find_map(|c| c.error.as_ref().map(|e| e.to_string()))
                        .unwrap_or_default();
                    return Err(Error::Protocol(format!(
                        "authorization {url} became {other} {why}"
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!("authorization {url} still pending")));
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Finalize an order with a DER CSR; returns the order as answered.
    pub async fn finalize(&mut self, finalize_url: &str, csr_der: &[u8]) -> Result<Order> {
        let payload = format!(r#"{{"csr":"{}"}}"#, b64url(csr_der));
        self.post(finalize_url, Some(payload.as_bytes()))
            .await?
            .json("order")
    }

    /// Poll an order until it leaves `processing` (or `ready`/`pending`);
    /// returns it when `valid`, errors when `invalid` or past the deadline.
    pub async fn poll_order(
        &mut self,
        url: &str,
        interval: Duration,
        deadline: Instant,
    ) -> Result<Order> {
        loop {
            let order = self.order(url).await?;
            match order.status.as_str() {
                "valid" => return Ok(order),
                "processing" => {}
                other => {
                    let why = order
                        .error
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    return Err(Error::Protocol(format!(
                        "order {url} became {other} after finalize {why}"
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!("order {url} still processing")));
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// POST-as-GET a certificate URL; checks it is a PEM chain and returns it
    /// with the number of certificates in it.
    pub async fn certificate(&mut self, url: &str) -> Result<(String, usize)> {
        let resp = self.post(url, None).await?;
        let pem = String::from_utf8(resp.body)
            .map_err(|_| Error::Protocol(format!("certificate at {url} is not UTF-8")))?;
        let n = count_pem_certificates(&pem);
        if n == 0 {
            return Err(Error::Protocol(format!(
                "certificate at {url} is not a PEM chain: {}",
                snippet(pem.as_bytes())
            )));
        }
        Ok((pem, n))
    }

    /// Run one whole issuance flow for `dns_names` with a CSR for exactly
    /// those names: newOrder, POST-as-GET each authorization, answer its
    /// challenge unless already valid, poll it until valid, finalize, poll
    /// the order while `processing`, download the certificate.
    pub async fn issue(
        &mut self,
        dns_names: &[String],
        csr_der: &[u8],
        opts: &IssueOptions,
    ) -> Result<Issued> {
        let start = Instant::now();
        let deadline = start + opts.flow_timeout;
        let requests_before = self.requests;
        let (order_url, order) = self.new_order(dns_names).await?;
        let mut reused = 0;
        for authz_url in &order.authorizations {
            let authz = self.authorization(authz_url).await?;
            match authz.status.as_str() {
                "valid" => {
                    reused += 1;
                    continue;
                }
                "pending" => {}
                other => {
                    return Err(Error::Protocol(format!(
                        "new authorization {authz_url} is {other}"
                    )))
                }
            }
            let chall = authz
                .challenges
                .iter()
                .find(|c| c.kind == opts.challenge_type)
                .ok_or_else(|| {
                    Error::Protocol(format!(
                        "authorization {authz_url} offers no {}",
                        opts.challenge_type
                    ))
                })?;
            let chall_url = chall.url.clone();
            self.respond_challenge(&chall_url).await?;
            self.poll_authorization(authz_url, opts.poll_interval, deadline)
                .await?;
        }
        let fin_start = Instant::now();
        let mut order = self.finalize(&order.finalize, csr_der).await?;
        if order.status != "valid" {
            order = self
                .poll_order(&order_url, opts.poll_interval, deadline)
                .await?;
        }
        let finalize = fin_start.elapsed();
        let cert_url = order.certificate.clone().ok_or_else(|| {
            Error::Protocol(format!("valid order {order_url} has no certificate URL"))
        })?;
        let (certificate_pem, chain_len) = self.certificate(&cert_url).await?;
        Ok(Issued {
            order_url,
            certificate_url: cert_url,
            certificate_pem,
            chain_len,
            total: start.elapsed(),
            finalize,
            reused_authorizations: reused,
            requests: self.requests - requests_before,
        })
    }
}

fn is_bad_nonce(resp: &Response) -> bool {
    // Cheap check before parsing: the type URN must appear in the body.
    let needle = b"badNonce";
    resp.body.windows(needle.len()).any(|w| w == needle)
        && serde_json::from_slice::<Problem>(&resp.body)
            .map(|p| p.kind == BAD_NONCE)
            .unwrap_or(false)
}

fn error_from(url: &str, resp: Response) -> Error {
    match serde_json::from_slice::<Problem>(&resp.body) {
        Ok(problem) if !problem.kind.is_empty() => Error::Problem {
            url: url.into(),
            status: resp.status,
            problem,
        },
        _ => Error::Status {
            url: url.into(),
            status: resp.status,
            body: snippet(&resp.body),
        },
    }
}

/// Count complete `CERTIFICATE` blocks in a PEM text.
pub fn count_pem_certificates(pem: &str) -> usize {
    let begins = pem.matches("-----BEGIN CERTIFICATE-----").count();
    let ends = pem.matches("-----END CERTIFICATE-----").count();
    if begins == ends {
        begins
    } else {
        0
    }
}

// ---------------------------------------------------------------------------
// CSR
// ---------------------------------------------------------------------------

/// A P-256 certificate key, to build CSRs with (one per worker is enough).
pub struct CsrKey {
    key: rcgen::KeyPair,
}

impl fmt::Debug for CsrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrKey")
    }
}

impl CsrKey {
    /// Generate a fresh ECDSA P-256 key.
    pub fn generate() -> Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| Error::Local(format!("cannot generate certificate key: {e}")))?;
        Ok(CsrKey { key })
    }

    /// The key pair (e.g. to check the issued certificate's public key).
    pub fn key_pair(&self) -> &rcgen::KeyPair {
        &self.key
    }

    /// DER CSR whose only names are `dns_names` (as subjectAltName dNSName
    /// entries; the subject is empty, no common name).
    pub fn csr_der(&self, dns_names: &[String]) -> Result<Vec<u8>> {
        let mut params = rcgen::CertificateParams::new(dns_names.to_vec())
            .map_err(|e| Error::Local(format!("bad CSR names: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&self.key)
            .map_err(|e| Error::Local(format!("cannot build CSR: {e}")))?;
        Ok(csr.der().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_count() {
        let one = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        assert_eq!(count_pem_certificates(one), 1);
        assert_eq!(count_pem_certificates(&format!("{one}{one}")), 2);
        assert_eq!(count_pem_certificates("-----BEGIN CERTIFICATE-----\n"), 0);
        assert_eq!(count_pem_certificates("hello"), 0);
    }

    #[test]
    fn csr_builds() {
        let k = CsrKey::generate().unwrap();
        let der = k.csr_der(&["a.example".into()]).unwrap();
        assert!(der.len() > 100);
    }

    #[test]
    fn bad_nonce_detection() {
        let r = Response {
            status: 400,
            location: None,
            content_type: Some("application/problem+json".into()),
            body: br#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"x"}"#.to_vec(),
        };
        assert!(is_bad_nonce(&r));
        let r2 = Response {
            body: br#"{"type":"urn:ietf:params:acme:error:malformed"}"#.to_vec(),
            ..r
        };
        assert!(!is_bad_nonce(&r2));
    }
}
