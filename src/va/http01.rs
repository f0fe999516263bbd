//! The http-01 validator (RFC 8555 §8.3, with RFC 8738 §7 for IP
//! identifiers).
//!
//! The VA fetches `http://<identifier>[:port]/.well-known/acme-challenge/<token>`
//! and accepts the challenge if the answer is `200 OK` with a body that,
//! once surrounding whitespace is trimmed, equals the key authorization.
//!
//! It behaves as Let's Encrypt's Boulder does:
//!
//! - Names are resolved through the VA's [`Resolver`], never the system
//!   resolver. The first IPv6 address is tried first and, if that attempt
//!   fails at the network level (connect, TLS, reset, timeout), the first
//!   IPv4 address. Addresses the [`AddressPolicy`] refuses are never
//!   contacted.
//! - Redirects are followed by this module, not by the HTTP library: at most
//!   [`MAX_REDIRECTS`], only to `http` or `https` URLs, only to ports 80 and
//!   443 or the configured HTTP and HTTPS ports, only to DNS names (bare IP
//!   addresses only when the identifier itself is an IP address), never to a
//!   URL already fetched. Each hop is resolved, checked and recorded anew.
//! - HTTPS redirect targets are fetched without certificate verification
//!   (the server has no certificate yet; RFC 8555 §8.3 allows it), with the
//!   name as SNI.
//! - Every hop gets a Boulder-style validation record: `url`, `hostname`,
//!   `port` (a string, as Boulder writes it), `addressesResolved`,
//!   `addressUsed`, and `addressesTried` when an IPv6 address failed first.
//!
//! Problem types: a failed lookup, or a name with no address this CA may
//! contact, is `dns`; refused, reset or timed-out connections and redirects
//! that may not be followed are `connection` (as in Boulder); a failed TLS
//! handshake on an HTTPS redirect is `tls`; a status other than 200, or a
//! body larger than [`MAX_BODY_BYTES`], is `unauthorized`; a body that is not
//! the key authorization is `incorrectResponse`.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, ACCEPT, CONNECTION, HOST, LOCATION, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use self::redirect::is_redirect;
use super::addr::AddressPolicy;
use super::connect::{self, Dialer, Host, Record};
use super::dns::Resolver;
use super::{Outcome, ValidationFuture, ValidationRequest, Validator};
use crate::error::{Error, ErrorKind};
use crate::protocol::IdentifierType;

mod redirect;

/// The port challenges are fetched from by default (RFC 8555 §8.3).
pub(crate) const DEFAULT_PORT: u16 = 80;

/// The port HTTPS redirect targets without an explicit port are fetched
/// from by default.
pub(crate) const DEFAULT_HTTPS_PORT: u16 = 443;

/// The path under which the challenge file lives (RFC 8555 §8.3); the token
/// follows it.
pub(crate) const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// At most this many redirects are followed; one more is an error (as in
/// Boulder).
pub(crate) const MAX_REDIRECTS: usize = 10;

/// The largest challenge body accepted, in bytes. A key authorization is
/// about 87 bytes; Boulder refuses bodies of 128 bytes or more. This cap is
/// larger, so that a file with generous surrounding whitespace still passes,
/// yet small enough that a hostile server cannot make the VA buffer much.
pub(crate) const MAX_BODY_BYTES: usize = 1024;

/// The largest response head (status line and headers) accepted, in bytes.
pub(crate) const MAX_HEADER_BYTES: usize = 8 * 1024;

/// The most response header fields accepted.
const MAX_HEADERS: usize = 100;

/// hyper's read buffer (it must be at least 8 KiB); bounds what a single
/// read may hold.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// At most this many bytes of a body or a Location header are quoted in an
/// error detail.
const MAX_QUOTED_BYTES: usize = 100;

/// The challenge name, as it appears in error details.
const CHALLENGE: &str = "http-01";

/// The User-Agent the VA sends.
const USER_AGENT_VALUE: &str = concat!(
    "acme-ca-va/",
    env!("CARGO_PKG_VERSION"),
    " (http-01 validation; RFC 8555)"
);

/// Validates http-01 challenges (RFC 8555 §8.3) for DNS and IP identifiers.
pub(crate) struct Http01 {
    resolver: Arc<dyn Resolver>,
    port: u16,
    https_port: u16,
    /// Redirects may lead to any port (Pebble), not only 80, 443 and the
    /// two configured ones.
    any_redirect_port: bool,
    /// Some: a redirect target's name must end in a suffix of the Public
    /// Suffix List (as Boulder requires an IANA-registered TLD), or be
    /// under one of these special-use domains. None: any name (Pebble).
    redirect_suffixes: Option<Vec<String>>,
    policy: AddressPolicy,
    timeout: Duration,
}

impl fmt::Debug for Http01 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http01")
            .field("resolver", &self.resolver.describe())
            .field("port", &self.port)
            .field("https_port", &self.https_port)
            .field("any_redirect_port", &self.any_redirect_port)
            .field("redirect_suffixes", &self.redirect_suffixes)
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Http01 {
    /// A validator that resolves names with `resolver`, refuses the
    /// addresses `policy` refuses, fetches challenges from port
    /// [`DEFAULT_PORT`] (80) and HTTPS redirect targets from
    /// [`DEFAULT_HTTPS_PORT`] (443) (see [`Http01::with_port`] and
    /// [`Http01::with_https_port`]), and gives each validation at most
    /// `timeout` overall: every lookup, connection and redirect together.
    pub(crate) fn new(
        resolver: Arc<dyn Resolver>,
        policy: AddressPolicy,
        timeout: Duration,
    ) -> Self {
        Http01 {
            resolver,
            port: DEFAULT_PORT,
            https_port: DEFAULT_HTTPS_PORT,
            any_redirect_port: false,
            redirect_suffixes: None,
            policy,
            timeout,
        }
    }

    /// The same validator following redirects only to names that end in a
    /// public suffix (Public Suffix List, ICANN or private section), or
    /// that are under one of `special_use` (the special-use domains the
    /// identifier policy allows, `acme.allowed_special_use_domains`).
    pub(crate) fn with_redirect_suffix_check(mut self, special_use: Vec<String>) -> Self {
        self.redirect_suffixes = Some(special_use);
        self
    }

    /// The same validator fetching challenges (and `http` redirect targets
    /// without a port) from `port` instead; Pebble's test setup uses 5002.
    /// Redirects to this port are allowed, besides 80 and 443.
    pub(crate) fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The same validator fetching `https` redirect targets without a port
    /// from `port` instead (test setups, whose servers cannot bind 443).
    /// Redirects to this port are allowed, besides 80 and 443.
    pub(crate) fn with_https_port(mut self, port: u16) -> Self {
        self.https_port = port;
        self
    }

    /// The same validator following redirects to any port, as Pebble does
    /// (its challenge server's HTTPS port is 5003). Off, only 80, 443 and
    /// the two configured ports are followed, as Boulder.
    pub(crate) fn with_any_redirect_port(mut self, any: bool) -> Self {
        self.any_redirect_port = any;
        self
    }

    /// Checks the http-01 challenge of `req`: valid if
    /// `http://<identifier>:<port>/.well-known/acme-challenge/<token>`,
    /// after at most [`MAX_REDIRECTS`] acceptable redirects, answers
    /// `200 OK` with a body of at most [`MAX_BODY_BYTES`] bytes that equals
    /// `req.key_authorization` once surrounding whitespace is trimmed.
    ///
    /// The records are a JSON array with one Boulder-style object per URL
    /// fetched: `url`, `hostname`, `port` (a string), `addressesResolved`,
    /// `addressUsed` (once an address was tried) and `addressesTried` (the
    /// IPv6 address that failed before the IPv4 fallback).
    pub(crate) async fn validate(&self, req: &ValidationRequest) -> Outcome {
        let mut records = Vec::new();
        let result = self.run(req, &mut records).await;
        let records = serde_json::Value::Array(records.iter().map(Record::to_json).collect());
        match result {
            Ok(()) => Outcome::Valid { records },
            Err(error) => Outcome::Invalid { error, records },
        }
    }

    async fn run(&self, req: &ValidationRequest, records: &mut Vec<Record>) -> Result<(), Error> {
        let deadline = Instant::now() + self.timeout;
        let ident = &req.authz.identifier;
        let token = checked_token(req)?;
        let host = connect::identifier_host(ident, self.policy, CHALLENGE)?;
        let ip_identifier = ident.kind == IdentifierType::Ip;

        let mut target = Target {
            scheme: Scheme::Http,
            host,
            port: self.port,
            path: format!("{CHALLENGE_PATH}{token}"),
        };
        let mut fetched: Vec<String> = Vec::new();
        loop {
            let url = target.url();
            refuse_loop(&fetched, &url)?;
            fetched.push(url.clone());
            records.push(Record::new(
                Some(url.clone()),
                target.host.for_record(),
                target.port,
            ));
            let record = records.last_mut().expect("a record was just pushed");
            let (response, addr) = self.fetch(&target, &url, record, deadline).await?;
            if is_redirect(response.status) {
                let location = followable_location(&response, &url, addr, &fetched)?;
                target = self.redirect_target(&target, &url, location, ip_identifier)?;
                continue;
            }
            return check_answer(&response, &url, addr, &req.key_authorization);
        }
    }

    /// Resolves `target`, checks its addresses, and fetches `url` from the
    /// first IPv6 address, then (if that fails) the first IPv4 address.
    /// Fills in `record` as it goes.
    async fn fetch(
        &self,
        target: &Target,
        url: &str,
        record: &mut Record,
        deadline: Instant,
    ) -> Result<(Response, SocketAddr), Error> {
        // A redirect may name an IP address: the policy applies to it too.
        if let Host::Ip(ip) = target.host {
            self.policy.check(ip).map_err(|why| {
                Error::new(
                    ErrorKind::Connection,
                    format!(
                        "Fetching {url}: Refusing to connect to {ip}: it is {why}, which this CA does not contact"
                    ),
                )
            })?;
        }
        let dialer = Dialer {
            resolver: &*self.resolver,
            policy: self.policy,
            timeout: self.timeout,
        };
        let allowed = dialer.addresses(&target.host, deadline, record).await?;
        let prefix = format!("Fetching {url}: ");
        let (response, ip) = dialer
            .first_answer(&allowed, deadline, record, &prefix, |ip, until| {
                self.fetch_from(target, url, ip, until)
            })
            .await?;
        Ok((response, SocketAddr::new(ip, target.port)))
    }

    /// Fetches `target` (shown as `url`) from `ip`, within `until`.
    async fn fetch_from(
        &self,
        target: &Target,
        url: &str,
        ip: IpAddr,
        until: Instant,
    ) -> Result<Response, Error> {
        let addr = SocketAddr::new(ip, target.port);
        let started = Instant::now();
        let allowed = || describe_duration(until.saturating_duration_since(started));
        let tcp = match timeout_at(until, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "Fetching {url}: Timeout during connect to {addr} (likely firewall problem): no TCP connection within the {} allowed",
                        allowed()
                    ),
                ))
            }
            Ok(Err(e)) => return Err(connect_error(&e, url, addr)),
            Ok(Ok(tcp)) => tcp,
        };
        let request = Request::builder()
            .method(Method::GET)
            .uri(target.path.as_str())
            .header(HOST, target.host_header())
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(ACCEPT, "*/*")
            .header(CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(Error::internal)?;
        let exchange = async {
            match target.scheme {
                Scheme::Http => exchange(tcp, request)
                    .await
                    .map_err(|e| exchange_error(&e, url, addr)),
                Scheme::Https => {
                    let server_name = match &target.host {
                        Host::Name(name) => ServerName::try_from(name.clone()).map_err(|_| {
                            Error::internal(format!("{name} is not a valid SNI name"))
                        })?,
                        Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
                    };
                    let connector = tokio_rustls::TlsConnector::from(
                        super::tlsclient::client_config(b"http/1.1")?,
                    );
                    let tls = connector
                        .connect(server_name, tcp)
                        .await
                        .map_err(|e| handshake_error(&e, url, addr))?;
                    exchange(tls, request)
                        .await
                        .map_err(|e| exchange_error(&e, url, addr))
                }
            }
        };
        match timeout_at(until, exchange).await {
            Err(_) => Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "Fetching {url}: Timeout after connect to {addr} (your server may be slow or overloaded): no complete response within the {} allowed",
                    allowed()
                ),
            )),
            Ok(result) => result,
        }
    }
}

impl Validator for Http01 {
    fn validate<'a>(&'a self, req: &'a ValidationRequest) -> ValidationFuture<'a> {
        Box::pin(Http01::validate(self, req))
    }
}

/// A URL scheme the VA fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL of this scheme means when it names none.
    fn standard_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// One URL to fetch.
#[derive(Debug, Clone)]
struct Target {
    scheme: Scheme,
    host: Host,
    port: u16,
    /// Path and query, starting with "/".
    path: String,
}

impl Target {
    /// The Host header: the host, and the port unless it is the scheme's
    /// standard one.
    fn host_header(&self) -> String {
        if self.port == self.scheme.standard_port() {
            self.host.for_url()
        } else {
            format!("{}:{}", self.host.for_url(), self.port)
        }
    }

    /// The URL, as shown in records and error details.
    fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.host_header(),
            self.path
        )
    }
}

/// What one request yielded.
#[derive(Debug)]
struct Response {
    status: StatusCode,
    location: Option<HeaderValue>,
    /// The body of a 200 response, at most [`MAX_BODY_BYTES`] + 1 bytes.
    body: Vec<u8>,
    /// The body is larger than [`MAX_BODY_BYTES`].
    oversized: bool,
}

/// Sends `request` over `io` as HTTP/1.1 and reads the answer: the head
/// within [`MAX_HEADER_BYTES`], and the body of a 200 answer up to one byte
/// beyond [`MAX_BODY_BYTES`]. The connection is closed afterwards.
async fn exchange<T>(io: T, request: Request<Empty<Bytes>>) -> Result<Response, hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .max_buf_size(READ_BUFFER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let (mut sender, conn) = builder.handshake(TokioIo::new(io)).await?;
    let mut conn = std::pin::pin!(conn);
    let work = async {
        let response = sender.send_request(request).await?;
        let (parts, mut body) = response.into_parts();
        let mut data = Vec::new();
        let mut oversized = false;
        if parts.status == StatusCode::OK {
            while let Some(frame) = body.frame().await {
                if let Ok(chunk) = frame?.into_data() {
                    let room = MAX_BODY_BYTES + 1 - data.len();
                    data.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if data.len() > MAX_BODY_BYTES {
                        oversized = true;
                        break;
                    }
                }
            }
        }
        Ok::<_, hyper::Error>(Response {
            status: parts.status,
            location: parts.headers.get(LOCATION).cloned(),
            body: data,
            oversized,
        })
    };
    let mut work = std::pin::pin!(work);
    // The connection future does the I/O; drive it alongside the request.
    let mut conn_result = None;
    loop {
        tokio::select! {
            result = &mut work => {
                return match (result, conn_result) {
                    // A request cancelled because the connection failed: the
                    // connection's error says why.
                    (Err(e), Some(Err(conn_error))) if e.is_canceled() || e.is_closed() => {
                        Err(conn_error)
                    }
                    (result, _) => result,
                };
            }
            result = &mut conn, if conn_result.is_none() => conn_result = Some(result),
        }
    }
}

/// The challenge token of `req`, if it is base64url as RFC 8555 §8.3
/// requires (it becomes part of the URL path).
fn checked_token(req: &ValidationRequest) -> Result<&str, Error> {
    let token = req.authz.token.as_str();
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::malformed(format!(
            "Cannot validate {} with {CHALLENGE}: the challenge token {} is not base64url",
            req.authz.identifier,
            quote(token.as_bytes())
        )));
    }
    Ok(token)
}

/// Refuses to fetch `url` again after the URLs in `fetched`.
fn refuse_loop(fetched: &[String], url: &str) -> Result<(), Error> {
    if let Some(previous) = fetched.last() {
        if fetched.iter().any(|f| f == url) {
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "Fetching {}: Redirect loop detected: {previous} redirects to {url}, which was already fetched during this validation",
                    fetched[0]
                ),
            ));
        }
    }
    Ok(())
}

/// The Location of the redirect `response` from `url` (answered by
/// `addr`), unless it has none or [`MAX_REDIRECTS`] were already followed
/// on the way through `fetched`.
fn followable_location<'r>(
    response: &'r Response,
    url: &str,
    addr: SocketAddr,
    fetched: &[String],
) -> Result<&'r HeaderValue, Error> {
    let Some(location) = &response.location else {
        return Err(Error::unauthorized(format!(
            "Invalid response from {url}: {} (answered by {addr}) is a redirect without a Location header",
            describe_status(response.status)
        )));
    };
    let redirects = fetched.len() - 1;
    if redirects >= MAX_REDIRECTS {
        return Err(Error::new(
            ErrorKind::Connection,
            format!(
                "Fetching {}: Too many redirects: {url} redirects to {} after {redirects} redirects were already followed (at most {MAX_REDIRECTS} are)",
                fetched[0],
                quote(location.as_bytes())
            ),
        ));
    }
    Ok(location)
}

/// Checks the final (non-redirect) answer from `url` (answered by `addr`):
/// `200 OK` with a body of at most [`MAX_BODY_BYTES`] that is
/// `key_authorization` once surrounding whitespace is trimmed.
fn check_answer(
    response: &Response,
    url: &str,
    addr: SocketAddr,
    key_authorization: &str,
) -> Result<(), Error> {
    if response.status != StatusCode::OK {
        return Err(Error::unauthorized(format!(
            "Invalid response from {url}: {} (answered by {addr}; the challenge file must be served with status 200)",
            describe_status(response.status)
        )));
    }
    if response.oversized {
        return Err(Error::unauthorized(format!(
            "Invalid response from {url}: the body (from {addr}) is larger than {MAX_BODY_BYTES} bytes, too large to be a key authorization; it starts with {}",
            quote(&response.body)
        )));
    }
    if response.body.trim_ascii() != key_authorization.as_bytes() {
        return Err(Error::new(
            ErrorKind::IncorrectResponse,
            format!(
                "The key authorization file from the server did not match this challenge. Expected {} (got {}) from {url} (answered by {addr})",
                quote(key_authorization.as_bytes()),
                quote(&response.body)
            ),
        ));
    }
    Ok(())
}

/// "404 Not Found".
fn describe_status(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// "1.5 s".
fn describe_duration(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The first bytes of `bytes` in double quotes, printable ASCII kept and
/// everything else escaped, so that whatever a server sent is safe to show.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(MAX_QUOTED_BYTES) + 2);
    out.push('"');
    for &b in bytes.iter().take(MAX_QUOTED_BYTES) {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    if bytes.len() > MAX_QUOTED_BYTES {
        out.push_str(&format!(
            " (first {MAX_QUOTED_BYTES} of {} bytes)",
            bytes.len()
        ));
    }
    out
}

/// The error for a failed TCP connect.
fn connect_error(e: &io::Error, url: &str, addr: SocketAddr) -> Error {
    let detail = match e.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "Fetching {url}: Connection refused by {addr} (nothing listens on that port, or a firewall rejects the connection)"
        ),
        _ => format!(
            "Fetching {url}: Error connecting to {addr}: {}",
            super::tlsclient::describe_io(e)
        ),
    };
    Error::new(ErrorKind::Connection, detail)
}

/// The error for a failed TLS handshake with an HTTPS redirect target.
fn handshake_error(e: &io::Error, url: &str, addr: SocketAddr) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => Error::new(
            ErrorKind::Tls,
            format!("Fetching {url}: TLS handshake with {addr} failed: {tls}"),
        ),
        None => Error::new(
            ErrorKind::Connection,
            format!(
                "Fetching {url}: Connection to {addr} failed during the TLS handshake: {}",
                super::tlsclient::describe_io(e)
            ),
        ),
    }
}

/// The error for a failed HTTP exchange.
fn exchange_error(e: &hyper::Error, url: &str, addr: SocketAddr) -> Error {
    let why = if e.is_parse_too_large() {
        format!("the response head from {addr} is larger than {MAX_HEADER_BYTES} bytes or has more than {MAX_HEADERS} header fields")
    } else if e.is_parse_version_h2() {
        format!("the server at {addr} answered with HTTP/2 instead of HTTP/1.1")
    } else if e.is_parse() || e.is_parse_status() {
        format!("the response from {addr} is not valid HTTP/1.1 ({e})")
    } else if e.is_incomplete_message() {
        format!("the server at {addr} closed the connection before sending a complete response")
    } else {
        let mut source = std::error::Error::source(e);
        let mut io_error = None;
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                io_error = Some(io);
                break;
            }
            source = s.source();
        }
        match io_error {
            Some(io) => format!(
                "Error getting validation data from {addr}: {}",
                super::tlsclient::describe_io(io)
            ),
            None => format!("Error getting validation data from {addr}: {e}"),
        }
    };
    Error::new(ErrorKind::Connection, format!("Fetching {url}: {why}"))
}

#[cfg(test)]
mod tests;
