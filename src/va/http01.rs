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
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::addr::AddressPolicy;
use super::dns::Resolver;
use super::{Outcome, ValidationFuture, ValidationRequest, Validator};
use crate::error::{Error, ErrorKind};
use crate::protocol::IdentifierType;

/// The port challenges are fetched from by default (RFC 8555 §8.3).
pub const DEFAULT_PORT: u16 = 80;

/// The port HTTPS redirect targets without an explicit port are fetched
/// from by default.
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// The path under which the challenge file lives (RFC 8555 §8.3); the token
/// follows it.
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// At most this many redirects are followed; one more is an error (as in
/// Boulder).
pub const MAX_REDIRECTS: usize = 10;

/// The largest challenge body accepted, in bytes. A key authorization is
/// about 87 bytes; Boulder refuses bodies of 128 bytes or more. This cap is
/// larger, so that a file with generous surrounding whitespace still passes,
/// yet small enough that a hostile server cannot make the VA buffer much.
pub const MAX_BODY_BYTES: usize = 1024;

/// The largest response head (status line and headers) accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

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
pub struct Http01 {
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
    pub fn new(resolver: Arc<dyn Resolver>, policy: AddressPolicy, timeout: Duration) -> Self {
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
    pub fn with_redirect_suffix_check(mut self, special_use: Vec<String>) -> Self {
        self.redirect_suffixes = Some(special_use);
        self
    }

    /// The same validator fetching challenges (and `http` redirect targets
    /// without a port) from `port` instead; Pebble's test setup uses 5002.
    /// Redirects to this port are allowed, besides 80 and 443.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The same validator fetching `https` redirect targets without a port
    /// from `port` instead (test setups, whose servers cannot bind 443).
    /// Redirects to this port are allowed, besides 80 and 443.
    pub fn with_https_port(mut self, port: u16) -> Self {
        self.https_port = port;
        self
    }

    /// The same validator following redirects to any port, as Pebble does
    /// (its challenge server's HTTPS port is 5003). Off, only 80, 443 and
    /// the two configured ports are followed, as Boulder.
    pub fn with_any_redirect_port(mut self, any: bool) -> Self {
        self.any_redirect_port = any;
        self
    }

    /// The port challenges are fetched from.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `https` redirect targets without a port are fetched from.
    pub fn https_port(&self) -> u16 {
        self.https_port
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
    pub async fn validate(&self, req: &ValidationRequest) -> Outcome {
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
        let value = ident.value.as_str();
        let token = req.authz.token.as_str();
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::malformed(format!(
                "Cannot validate {ident} with {CHALLENGE}: the challenge token {} is not base64url",
                quote(token.as_bytes())
            )));
        }

        let host = match ident.kind {
            IdentifierType::Dns => match ServerName::try_from(value) {
                Ok(ServerName::DnsName(_)) => Host::Name(value.to_ascii_lowercase()),
                _ => {
                    return Err(Error::malformed(format!(
                        "Cannot validate {value:?} with {CHALLENGE}: it is not a valid DNS name"
                    )))
                }
            },
            IdentifierType::Ip => {
                let ip: IpAddr = value.parse().map_err(|_| {
                    Error::malformed(format!(
                        "Cannot validate IP identifier {value:?} with {CHALLENGE}: it is not an IP address"
                    ))
                })?;
                if let Err(why) = self.policy.check(ip) {
                    return Err(Error::new(
                        ErrorKind::RejectedIdentifier,
                        format!(
                            "Refusing to connect to {ip} for {CHALLENGE} challenge: it is {why}, which this CA does not contact"
                        ),
                    ));
                }
                Host::Ip(ip)
            }
            IdentifierType::Unknown => {
                return Err(Error::new(
                    ErrorKind::UnsupportedIdentifier,
                    format!(
                        "{CHALLENGE} can only validate DNS names and IP addresses, not {value:?}"
                    ),
                ))
            }
        };
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
            if let Some(previous) = fetched.last() {
                if fetched.contains(&url) {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!(
                            "Fetching {}: Redirect loop detected: {previous} redirects to {url}, which was already fetched during this validation",
                            fetched[0]
                        ),
                    ));
                }
            }
            fetched.push(url.clone());
            records.push(Record::new(&target, &url));
            let record = records.last_mut().expect("a record was just pushed");
            let (response, addr) = self.fetch(&target, &url, record, deadline).await?;
            let status = response.status;

            if is_redirect(status) {
                let Some(location) = &response.location else {
                    return Err(Error::unauthorized(format!(
                        "Invalid response from {url}: {} (answered by {addr}) is a redirect without a Location header",
                        describe_status(status)
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
                target = self.redirect_target(&target, &url, location, ip_identifier)?;
                continue;
            }

            if status != StatusCode::OK {
                return Err(Error::unauthorized(format!(
                    "Invalid response from {url}: {} (answered by {addr}; the challenge file must be served with status 200)",
                    describe_status(status)
                )));
            }
            if response.oversized {
                return Err(Error::unauthorized(format!(
                    "Invalid response from {url}: the body (from {addr}) is larger than {MAX_BODY_BYTES} bytes, too large to be a key authorization; it starts with {}",
                    quote(&response.body)
                )));
            }
            if response.body.trim_ascii() != req.key_authorization.as_bytes() {
                return Err(Error::new(
                    ErrorKind::IncorrectResponse,
                    format!(
                        "The key authorization file from the server did not match this challenge. Expected {} (got {}) from {url} (answered by {addr})",
                        quote(req.key_authorization.as_bytes()),
                        quote(&response.body)
                    ),
                ));
            }
            return Ok(());
        }
    }

    /// The target a redirect from `from` (fetched as `from_url`) to
    /// `location` points to, if it may be followed.
    fn redirect_target(
        &self,
        from: &Target,
        from_url: &str,
        location: &HeaderValue,
        ip_identifier: bool,
    ) -> Result<Target, Error> {
        let quoted = quote(location.as_bytes());
        let refuse =
            |why: String| Error::new(ErrorKind::Connection, format!("Fetching {from_url}: {why}"));
        let location = location.to_str().map_err(|_| {
            refuse(format!(
                "Invalid redirect target {quoted}: the Location header is not printable ASCII"
            ))
        })?;
        let absolute = resolve_reference(from, location.trim());
        if let Some(scheme) = scheme_of(&absolute) {
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return Err(refuse(format!(
                    "Invalid protocol scheme in redirect target {quoted}. Only \"http\" and \"https\" protocol schemes are supported, not {}",
                    quote(scheme.as_bytes())
                )));
            }
        }
        let uri: Uri = absolute.parse().map_err(|e| {
            refuse(format!(
                "Invalid redirect target {quoted}: it is not a valid URL ({e})"
            ))
        })?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            _ => {
                return Err(refuse(format!(
                    "Invalid redirect target {quoted}: it is not an absolute http or https URL"
                )))
            }
        };
        let Some(authority) = uri.authority() else {
            return Err(refuse(format!(
                "Invalid host in redirect target {quoted}: the URL names no host"
            )));
        };
        if authority.as_str().contains('@') {
            return Err(refuse(format!(
                "Invalid host in redirect target {quoted}: credentials in URLs are not supported"
            )));
        }
        let raw_host = authority.host();
        let host = if let Some(v6) = raw_host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            match v6.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => {
                    return Err(refuse(format!(
                        "Invalid host in redirect target {quoted}: {} is not an IPv6 address",
                        quote(v6.as_bytes())
                    )))
                }
            }
        } else if let Ok(ip) = raw_host.parse::<IpAddr>() {
            Host::Ip(ip)
        } else {
            let name = raw_host.trim_end_matches('.').to_ascii_lowercase();
            match ServerName::try_from(name.as_str()) {
                Ok(ServerName::DnsName(_)) => Host::Name(name),
                Ok(_) => Host::Ip(name.parse().map_err(|_| {
                    refuse(format!(
                        "Invalid host in redirect target {quoted}: {} is neither a DNS name nor an IP address",
                        quote(raw_host.as_bytes())
                    ))
                })?),
                Err(_) => {
                    return Err(refuse(format!(
                        "Invalid host in redirect target {quoted}: {} is not a valid DNS name",
                        quote(raw_host.as_bytes())
                    )))
                }
            }
        };
        if let Host::Ip(ip) = host {
            if !ip_identifier {
                return Err(refuse(format!(
                    "Invalid host in redirect target {quoted}. Only domain names are supported, not IP addresses like {ip}"
                )));
            }
        }
        if let (Host::Name(name), Some(special_use)) = (&host, &self.redirect_suffixes) {
            if !ends_in_public_suffix(name, special_use) {
                return Err(refuse(format!(
                    "Invalid host in redirect target {quoted}: {name} does not end in a public suffix (a registered top-level domain)"
                )));
            }
        }
        let port = match authority.port_u16() {
            Some(port) => {
                let allowed = [DEFAULT_PORT, DEFAULT_HTTPS_PORT, self.port, self.https_port];
                if !self.any_redirect_port && !allowed.contains(&port) {
                    return Err(refuse(format!(
                        "Invalid port in redirect target {quoted}. Only ports {} are supported, not {port}",
                        describe_ports(&allowed)
                    )));
                }
                port
            }
            None if authority.port().is_some() => {
                return Err(refuse(format!(
                    "Invalid port in redirect target {quoted}: the port is not a number from 1 to 65535"
                )))
            }
            None => match scheme {
                Scheme::Http => self.port,
                Scheme::Https => self.https_port,
            },
        };
        let path = match uri.path_and_query() {
            Some(pq) if pq.as_str().starts_with('/') => pq.as_str().to_owned(),
            Some(pq) => format!("/{}", pq.as_str()),
            None => "/".to_owned(),
        };
        Ok(Target {
            scheme,
            host,
            port,
            path,
        })
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
        let addrs = match &target.host {
            Host::Ip(ip) => {
                if let Err(why) = self.policy.check(*ip) {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!(
                            "Fetching {url}: Refusing to connect to {ip}: it is {why}, which this CA does not contact"
                        ),
                    ));
                }
                vec![*ip]
            }
            Host::Name(name) => {
                super::tlsclient::resolve_ips(&*self.resolver, self.timeout, name, deadline).await?
            }
        };
        record.resolved.clone_from(&addrs);

        // Never contact addresses the policy refuses.
        let mut refused = Vec::new();
        let mut allowed = Vec::new();
        for &ip in &addrs {
            match self.policy.check(ip) {
                Ok(()) => allowed.push(ip),
                Err(why) => refused.push(format!("{ip} is {why}")),
            }
        }
        if allowed.is_empty() {
            return Err(Error::new(
                ErrorKind::Dns,
                format!(
                    "No valid IP addresses found for {}: it resolves only to addresses this CA does not contact ({})",
                    target.host.for_record(),
                    refused.join("; ")
                ),
            ));
        }

        let v6 = allowed.iter().copied().find(IpAddr::is_ipv6);
        let v4 = allowed.iter().copied().find(IpAddr::is_ipv4);

        // IPv6 first, then IPv4, as Boulder does. When there is an IPv4
        // address to fall back to, the IPv6 attempt gets half of the time
        // left, so that an unreachable IPv6 address cannot use up the budget.
        let mut v6_error = None;
        if let Some(ip) = v6 {
            record.used = Some(ip);
            let until = if v4.is_some() {
                let now = Instant::now();
                now + deadline.saturating_duration_since(now) / 2
            } else {
                deadline
            };
            match self.fetch_from(target, url, ip, until).await {
                Ok(response) => return Ok((response, SocketAddr::new(ip, target.port))),
                Err(e) => {
                    record.tried.push(ip);
                    v6_error = Some((ip, e));
                }
            }
        }
        match (v4, v6_error) {
            (Some(ip), v6_error) => {
                record.used = Some(ip);
                match self.fetch_from(target, url, ip, deadline).await {
                    Ok(response) => Ok((response, SocketAddr::new(ip, target.port))),
                    Err(mut e) => {
                        if let Some((v6, v6_error)) = v6_error {
                            let prefix = format!("Fetching {url}: ");
                            let v6_detail = v6_error
                                .detail
                                .strip_prefix(prefix.as_str())
                                .unwrap_or(&v6_error.detail);
                            e.detail = format!(
                                "{}; the IPv6 address {v6} was tried first: {v6_detail}",
                                e.detail
                            )
                            .into();
                        }
                        Err(e)
                    }
                }
            }
            (None, Some((_, e))) => Err(e),
            (None, None) => Err(Error::internal("http-01: no address to try")),
        }
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

/// The host part of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A DNS name, lowercase, without a trailing dot.
    Name(String),
    /// An IP address (IP identifiers, RFC 8738).
    Ip(IpAddr),
}

impl Host {
    /// As the validation record's `hostname`: the name or the bare address.
    fn for_record(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// As in a URL or a Host header: IPv6 addresses in brackets.
    fn for_url(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            Host::Ip(ip) => ip.to_string(),
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

/// The Boulder-style validation record of one hop.
#[derive(Debug)]
struct Record {
    url: String,
    hostname: String,
    port: u16,
    resolved: Vec<IpAddr>,
    used: Option<IpAddr>,
    tried: Vec<IpAddr>,
}

impl Record {
    fn new(target: &Target, url: &str) -> Self {
        Record {
            url: url.to_owned(),
            hostname: target.host.for_record(),
            port: target.port,
            resolved: Vec::new(),
            used: None,
            tried: Vec::new(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let ips = |ips: &[IpAddr]| ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>();
        let mut rec = serde_json::json!({
            "url": self.url,
            "hostname": self.hostname,
            "port": self.port.to_string(),
            "addressesResolved": ips(&self.resolved),
        });
        if let Some(used) = self.used {
            rec["addressUsed"] = used.to_string().into();
        }
        if !self.tried.is_empty() {
            rec["addressesTried"] = ips(&self.tried).into();
        }
        rec
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

/// Whether `name` ends in a suffix the Public Suffix List knows (and is
/// not that suffix itself), or is under one of `special_use`.
fn ends_in_public_suffix(name: &str, special_use: &[String]) -> bool {
    let under = |d: &str| name == d || name.strip_suffix(d).is_some_and(|rest| rest.ends_with('.'));
    if special_use.iter().any(|d| under(d)) {
        return true;
    }
    psl::suffix(name.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes().len() < name.len())
}

/// Whether `status` is a redirect that is followed.
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// "404 Not Found".
fn describe_status(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// "80, 443 and 5002", without duplicates.
fn describe_ports(ports: &[u16]) -> String {
    let mut unique: Vec<u16> = Vec::new();
    for &p in ports {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    let words: Vec<String> = unique.iter().map(u16::to_string).collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => words.join(""),
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

/// The scheme of `url` if it starts with one (RFC 3986 §3.1).
fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// `reference` (a Location header) resolved against `base` (RFC 3986
/// §5.2), without its fragment.
fn resolve_reference(base: &Target, reference: &str) -> String {
    let reference = reference.split('#').next().unwrap_or("");
    if scheme_of(reference).is_some() {
        return reference.to_owned();
    }
    let origin = format!("{}://{}", base.scheme.as_str(), base.host_header());
    if reference.starts_with("//") {
        return format!("{}:{reference}", base.scheme.as_str());
    }
    let base_path = base.path.split('?').next().unwrap_or("/");
    if reference.is_empty() {
        return format!("{origin}{}", base.path);
    }
    if reference.starts_with('?') {
        return format!("{origin}{base_path}{reference}");
    }
    let (path, query) = match reference.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (reference, None),
    };
    let merged = if path.starts_with('/') {
        path.to_owned()
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{path}")
    };
    let mut out = format!("{origin}{}", remove_dot_segments(&merged));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
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
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::sync::Mutex;

    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::model::{AccountId, Authz, AuthzId, AuthzState, ChallengeType};
    use crate::protocol::Identifier;
    use crate::va::dns::{CaaRecord, DnsError, DnsFuture};

    const TOKEN: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
    const KEY_AUTH: &str =
        "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
    const CHALLENGE_URL_PATH: &str =
        "/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

    /// Answers A/AAAA lookups from a table; unknown names are NXDOMAIN.
    struct FakeResolver(HashMap<String, Vec<IpAddr>>);

    fn resolver(entries: &[(&str, &[&str])]) -> Arc<dyn Resolver> {
        Arc::new(FakeResolver(
            entries
                .iter()
                .map(|(name, addrs)| {
                    let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
                    ((*name).to_owned(), addrs)
                })
                .collect(),
        ))
    }

    impl Resolver for FakeResolver {
        fn lookup_ip<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
            let answer = self.0.get(name).cloned().ok_or(DnsError::NxDomain);
            Box::pin(async move { answer })
        }
        fn lookup_txt<'a>(&'a self, _name: &'a str) -> DnsFuture<'a, Vec<String>> {
            Box::pin(async { Err(DnsError::NoRecords) })
        }
        fn lookup_caa<'a>(&'a self, _name: &'a str) -> DnsFuture<'a, Vec<CaaRecord>> {
            Box::pin(async { Err(DnsError::NoRecords) })
        }
        fn describe(&self) -> String {
            "the test resolver".to_owned()
        }
    }

    fn request(ident: Identifier) -> ValidationRequest {
        ValidationRequest {
            account_uri: "https://ca.test/acme/acct/acct1".to_owned(),
            authz: Authz {
                id: AuthzId("authz1".to_owned()),
                account_id: AccountId("acct1".to_owned()),
                identifier: ident,
                wildcard: false,
                state: AuthzState::Pending,
                expires: 0,
                token: TOKEN.to_owned(),
                offered: vec![ChallengeType::Http01],
                attempt: None,
                created_at: 0,
            },
            kind: ChallengeType::Http01,
            key_authorization: KEY_AUTH.to_owned(),
        }
    }

    /// What a test server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        host: String,
        sni: Option<String>,
    }

    /// How a test server answers a request.
    enum Reply {
        /// These bytes, then close.
        Raw(Vec<u8>),
        /// Nothing, keeping the connection open.
        Hang,
    }

    type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;
    type Log = Arc<Mutex<Vec<Seen>>>;

    fn respond(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        Reply::Raw(out)
    }

    fn ok(body: &str) -> Reply {
        respond("200 OK", &[], body.as_bytes())
    }

    fn redirect(location: &str) -> Reply {
        respond("302 Found", &[("Location", location)], b"")
    }

    /// Reads one request head from `stream`, answers with `handler`.
    async fn handle<S>(mut stream: S, handler: Handler, log: Log, sni: Option<String>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("")
            .to_owned();
        let host = lines
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        let seen = Seen { path, host, sni };
        log.lock().unwrap().push(seen.clone());
        match handler(&seen) {
            Reply::Raw(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    }

    async fn listener() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    /// A plain HTTP server on 127.0.0.1; returns its port and request log.
    async fn http_server(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> (u16, Log) {
        let (listener, port) = listener().await;
        let log: Log = Arc::default();
        let handler: Handler = Arc::new(handler);
        let server_log = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(
                    stream,
                    Arc::clone(&handler),
                    Arc::clone(&server_log),
                    None,
                ));
            }
        });
        (port, log)
    }

    /// An HTTPS server on 127.0.0.1 with a self-signed certificate for
    /// `name`; returns its port and request log.
    async fn https_server(
        name: &str,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> (u16, Log) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (listener, port) = listener().await;
        let log: Log = Arc::default();
        let handler: Handler = Arc::new(handler);
        let server_log = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let handler = Arc::clone(&handler);
                let log = Arc::clone(&server_log);
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let sni = tls.get_ref().1.server_name().map(str::to_owned);
                        handle(tls, handler, log, sni).await;
                    }
                });
            }
        });
        (port, log)
    }

    /// A port on 127.0.0.1 where nothing listens.
    async fn closed_port() -> u16 {
        let (listener, port) = listener().await;
        drop(listener);
        port
    }

    fn test_policy() -> AddressPolicy {
        AddressPolicy {
            allow_reserved: true,
        }
    }

    fn validator(resolver: Arc<dyn Resolver>, port: u16) -> Http01 {
        Http01::new(resolver, test_policy(), Duration::from_secs(5)).with_port(port)
    }

    fn local(names: &[&str]) -> Arc<dyn Resolver> {
        let entries: Vec<(&str, &[&str])> =
            names.iter().map(|n| (*n, &["127.0.0.1"][..])).collect();
        resolver(&entries)
    }

    fn valid(outcome: Outcome) -> serde_json::Value {
        match outcome {
            Outcome::Valid { records } => records,
            Outcome::Invalid { error, records } => {
                panic!("expected valid, got {error} (records {records})")
            }
        }
    }

    fn invalid(outcome: Outcome) -> (Error, serde_json::Value) {
        match outcome {
            Outcome::Invalid { error, records } => (error, records),
            Outcome::Valid { records } => panic!("expected invalid, got valid (records {records})"),
        }
    }

    fn challenge_url(host: &str, port: u16) -> String {
        format!("http://{host}:{port}{CHALLENGE_URL_PATH}")
    }

    #[tokio::test]
    async fn valid_when_the_body_is_the_key_authorization() {
        let (port, log) = http_server(|_| ok(KEY_AUTH)).await;
        let va = validator(local(&["example.test"]), port);
        let records = valid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(
            records,
            json!([{
                "url": challenge_url("example.test", port),
                "hostname": "example.test",
                "port": port.to_string(),
                "addressesResolved": ["127.0.0.1"],
                "addressUsed": "127.0.0.1",
            }])
        );
        let seen = log.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, CHALLENGE_URL_PATH);
        assert_eq!(seen[0].host, format!("example.test:{port}"));
    }

    #[tokio::test]
    async fn valid_through_the_validator_trait() {
        let (port, _) = http_server(|_| ok(KEY_AUTH)).await;
        let va: Arc<dyn Validator> = Arc::new(validator(local(&["example.test"]), port));
        valid(Validator::validate(&*va, &request(Identifier::dns("example.test"))).await);
    }

    #[tokio::test]
    async fn surrounding_whitespace_is_accepted() {
        let (port, _) = http_server(|_| ok(&format!("\r\n  {KEY_AUTH} \t\n"))).await;
        let va = validator(local(&["example.test"]), port);
        valid(va.validate(&request(Identifier::dns("example.test"))).await);
    }

    #[tokio::test]
    async fn wrong_body_is_incorrect_response() {
        let (port, _) = http_server(|_| ok("hello\u{1b}[31m world\n")).await;
        let va = validator(local(&["example.test"]), port);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::IncorrectResponse);
        assert!(error.detail.contains(KEY_AUTH), "{}", error.detail);
        assert!(
            error.detail.contains(r#"(got "hello\x1b[31m world\n")"#),
            "{}",
            error.detail
        );
        assert!(error.detail.contains(&challenge_url("example.test", port)));
        assert_eq!(records.as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn oversized_body_is_unauthorized() {
        let body = format!("{KEY_AUTH}{}", " ".repeat(MAX_BODY_BYTES));
        let (port, _) = http_server(move |_| ok(&body)).await;
        let va = validator(local(&["example.test"]), port);
        let (error, _) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Unauthorized);
        assert!(
            error.detail.contains("larger than 1024 bytes"),
            "{}",
            error.detail
        );
    }

    #[tokio::test]
    async fn body_at_the_cap_is_accepted() {
        let body = format!("{KEY_AUTH}{}", "\n".repeat(MAX_BODY_BYTES - KEY_AUTH.len()));
        let (port, _) = http_server(move |_| ok(&body)).await;
        let va = validator(local(&["example.test"]), port);
        valid(va.validate(&request(Identifier::dns("example.test"))).await);
    }

    #[tokio::test]
    async fn not_found_is_unauthorized() {
        let (port, _) = http_server(|_| respond("404 Not Found", &[], b"nope")).await;
        let va = validator(local(&["example.test"]), port);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Unauthorized);
        let url = challenge_url("example.test", port);
        assert!(
            error
                .detail
                .starts_with(&format!("Invalid response from {url}: 404 Not Found")),
            "{}",
            error.detail
        );
        assert!(error.detail.contains(&format!("127.0.0.1:{port}")));
        assert_eq!(records[0]["addressUsed"], "127.0.0.1");
    }

    #[tokio::test]
    async fn connection_refused_is_connection() {
        let port = closed_port().await;
        let va = validator(local(&["example.test"]), port);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        let url = challenge_url("example.test", port);
        assert!(
            error.detail.starts_with(&format!(
                "Fetching {url}: Connection refused by 127.0.0.1:{port}"
            )),
            "{}",
            error.detail
        );
        assert_eq!(records[0]["addressUsed"], "127.0.0.1");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let (port, log) = http_server(|_| Reply::Hang).await;
        let va = Http01::new(
            local(&["example.test"]),
            test_policy(),
            Duration::from_millis(700),
        )
        .with_port(port);
        let started = std::time::Instant::now();
        let (error, _) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error.detail.contains(&format!(
                "Timeout after connect to 127.0.0.1:{port} (your server may be slow or overloaded)"
            )),
            "{}",
            error.detail
        );
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn nxdomain_is_dns() {
        let (port, log) = http_server(|_| ok(KEY_AUTH)).await;
        let va = validator(local(&["other.test"]), port);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Dns);
        assert!(
            error
                .detail
                .starts_with("DNS problem: NXDOMAIN looking up A and AAAA for example.test"),
            "{}",
            error.detail
        );
        assert!(error.detail.contains("the test resolver"));
        assert!(log.lock().unwrap().is_empty());
        assert_eq!(
            records,
            json!([{
                "url": challenge_url("example.test", port),
                "hostname": "example.test",
                "port": port.to_string(),
                "addressesResolved": [],
            }])
        );
    }

    #[tokio::test]
    async fn redirect_to_another_path_is_followed() {
        let (port, log) = http_server(|seen| {
            if seen.path == CHALLENGE_URL_PATH {
                redirect("/elsewhere/../moved?x=1")
            } else {
                ok(KEY_AUTH)
            }
        })
        .await;
        let va = validator(local(&["example.test"]), port);
        let records = valid(va.validate(&request(Identifier::dns("example.test"))).await);
        let records = records.as_array().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[1]["url"],
            format!("http://example.test:{port}/moved?x=1")
        );
        let seen = log.lock().unwrap().clone();
        assert_eq!(seen[1].path, "/moved?x=1");
        assert_eq!(seen[1].host, format!("example.test:{port}"));
    }

    #[tokio::test]
    async fn redirect_to_another_name_is_followed_and_resolved_again() {
        let (port, log) = http_server(|seen| {
            if seen.host.starts_with("example.test") {
                redirect("http://Other.Test/challenge-file")
            } else {
                ok(KEY_AUTH)
            }
        })
        .await;
        let resolver = resolver(&[
            ("example.test", &["127.0.0.1"]),
            ("other.test", &["127.0.0.1", "192.0.2.1"]),
        ]);
        let va = validator(resolver, port);
        let records = valid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(
            records,
            json!([
                {
                    "url": challenge_url("example.test", port),
                    "hostname": "example.test",
                    "port": port.to_string(),
                    "addressesResolved": ["127.0.0.1"],
                    "addressUsed": "127.0.0.1",
                },
                {
                    "url": format!("http://other.test:{port}/challenge-file"),
                    "hostname": "other.test",
                    "port": port.to_string(),
                    "addressesResolved": ["127.0.0.1", "192.0.2.1"],
                    "addressUsed": "127.0.0.1",
                },
            ])
        );
        assert_eq!(log.lock().unwrap()[1].host, format!("other.test:{port}"));
    }

    #[tokio::test]
    async fn redirect_loop_is_refused() {
        let (port, log) = http_server(move |seen| {
            if seen.path == CHALLENGE_URL_PATH {
                redirect("/a")
            } else {
                redirect(CHALLENGE_URL_PATH)
            }
        })
        .await;
        let va = validator(local(&["example.test"]), port);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error.detail.contains("Redirect loop detected"),
            "{}",
            error.detail
        );
        assert!(error
            .detail
            .contains(&format!("http://example.test:{port}/a redirects to")));
        assert_eq!(log.lock().unwrap().len(), 2);
        assert_eq!(records.as_array().unwrap().len(), 2);
    }

    /// A server redirecting /0 → /1 → … → /n, which answers.
    async fn redirect_chain(n: usize) -> u16 {
        let (port, _) = http_server(move |seen| {
            let step = if seen.path == CHALLENGE_URL_PATH {
                0
            } else {
                seen.path[1..].parse::<usize>().unwrap()
            };
            if step < n {
                redirect(&format!("/{}", step + 1))
            } else {
                ok(KEY_AUTH)
            }
        })
        .await;
        port
    }

    #[tokio::test]
    async fn ten_redirects_are_followed() {
        let port = redirect_chain(MAX_REDIRECTS).await;
        let va = validator(local(&["example.test"]), port);
        let records = valid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(records.as_array().unwrap().len(), MAX_REDIRECTS + 1);
    }

    #[tokio::test]
    async fn eleven_redirects_are_too_many() {
        let port = redirect_chain(MAX_REDIRECTS + 1).await;
        let va = validator(local(&["example.test"]), port);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error.detail.contains("Too many redirects"),
            "{}",
            error.detail
        );
        assert!(error.detail.contains("\"/11\""), "{}", error.detail);
        assert_eq!(records.as_array().unwrap().len(), MAX_REDIRECTS + 1);
    }

    #[tokio::test]
    async fn redirect_to_another_scheme_is_refused() {
        let (port, log) = http_server(|_| redirect("ftp://example.test/file")).await;
        let va = validator(local(&["example.test"]), port);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error.detail.contains(
                "Invalid protocol scheme in redirect target \"ftp://example.test/file\". Only \"http\" and \"https\" protocol schemes are supported, not \"ftp\""
            ),
            "{}",
            error.detail
        );
        assert_eq!(log.lock().unwrap().len(), 1);
        assert_eq!(records.as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn redirect_to_another_port_is_refused() {
        let (port, _) = http_server(|_| redirect("http://example.test:8080/file")).await;
        let va = validator(local(&["example.test"]), port).with_https_port(5001);
        let (error, _) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error.detail.contains(&format!(
                "Invalid port in redirect target \"http://example.test:8080/file\". Only ports 80, 443, {port} and 5001 are supported, not 8080"
            )),
            "{}",
            error.detail
        );
    }

    #[test]
    fn redirect_names_must_end_in_a_public_suffix() {
        let special = vec!["test".to_owned()];
        for ok in [
            "other.example.com",
            "a.example.co.uk",
            "site.github.io",
            "x.test",
            "test",
        ] {
            assert!(ends_in_public_suffix(ok, &special), "{ok}");
        }
        for bad in [
            "com",
            "co.uk",
            "host.notatld",
            "localhost",
            "x.example",
            "intranet",
        ] {
            assert!(!ends_in_public_suffix(bad, &special), "{bad}");
        }
        assert!(!ends_in_public_suffix("x.test", &[]));
        // "contest" is not under "test".
        assert!(!ends_in_public_suffix("contest", &special));
    }

    #[tokio::test]
    async fn redirect_to_a_name_without_a_public_suffix_is_refused() {
        let (port, log) = http_server(|seen| {
            if seen.host.starts_with("example.test") {
                redirect("http://intranet.corp/challenge-file")
            } else {
                ok(KEY_AUTH)
            }
        })
        .await;
        let resolver = resolver(&[
            ("example.test", &["127.0.0.1"]),
            ("intranet.corp", &["127.0.0.1"]),
            ("other.test", &["127.0.0.1"]),
        ]);
        let va = validator(resolver.clone(), port).with_redirect_suffix_check(vec!["test".into()]);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error.detail.contains(
                "Invalid host in redirect target \"http://intranet.corp/challenge-file\": intranet.corp does not end in a public suffix"
            ),
            "{}",
            error.detail
        );
        assert_eq!(log.lock().unwrap().len(), 1, "the target is never fetched");
        assert_eq!(records.as_array().unwrap().len(), 1);
        // Without the check (Pebble), the same redirect is followed.
        let va = validator(resolver.clone(), port);
        valid(va.validate(&request(Identifier::dns("example.test"))).await);
        // A special-use domain the policy allows is followed.
        let (port, _) = http_server(|seen| {
            if seen.host.starts_with("example.test") {
                redirect("http://other.test/challenge-file")
            } else {
                ok(KEY_AUTH)
            }
        })
        .await;
        let va = validator(resolver, port).with_redirect_suffix_check(vec!["test".into()]);
        valid(va.validate(&request(Identifier::dns("example.test"))).await);
    }

    #[tokio::test]
    async fn redirect_to_a_bare_ip_is_refused_for_dns_identifiers() {
        let (port, log) = http_server(|_| redirect("http://127.0.0.1/x")).await;
        let va = validator(local(&["example.test"]), port);
        let (error, _) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error
                .detail
                .contains("Only domain names are supported, not IP addresses like 127.0.0.1"),
            "{}",
            error.detail
        );
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn redirect_to_an_ip_is_followed_for_ip_identifiers() {
        let (port, log) = http_server(|seen| {
            if seen.path == CHALLENGE_URL_PATH {
                redirect("http://[::ffff:127.0.0.1]/moved")
            } else {
                ok(KEY_AUTH)
            }
        })
        .await;
        let va = validator(resolver(&[]), port);
        let records = valid(va.validate(&request(Identifier::ip("127.0.0.1"))).await);
        assert_eq!(
            records[1],
            json!({
                "url": format!("http://[::ffff:127.0.0.1]:{port}/moved"),
                "hostname": "::ffff:127.0.0.1",
                "port": port.to_string(),
                "addressesResolved": ["::ffff:127.0.0.1"],
                "addressUsed": "::ffff:127.0.0.1",
            })
        );
        assert_eq!(
            log.lock().unwrap()[1].host,
            format!("[::ffff:127.0.0.1]:{port}")
        );
    }

    #[tokio::test]
    async fn redirect_to_https_with_a_self_signed_certificate_is_followed() {
        let (https_port, tls_log) = https_server("secure.test", |_| ok(KEY_AUTH)).await;
        let (port, _) = http_server(|_| redirect("https://secure.test/tls-file")).await;
        let va =
            validator(local(&["example.test", "secure.test"]), port).with_https_port(https_port);
        let records = valid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(
            records[1],
            json!({
                "url": format!("https://secure.test:{https_port}/tls-file"),
                "hostname": "secure.test",
                "port": https_port.to_string(),
                "addressesResolved": ["127.0.0.1"],
                "addressUsed": "127.0.0.1",
            })
        );
        let seen = tls_log.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].sni.as_deref(), Some("secure.test"));
        assert_eq!(seen[0].host, format!("secure.test:{https_port}"));
        assert_eq!(seen[0].path, "/tls-file");
    }

    /// Pebble's VA follows a redirect to any port, such as the challenge
    /// server's HTTPS port 5003; so does ours when told to.
    #[tokio::test]
    async fn redirect_to_any_port_is_followed_when_allowed() {
        let (https_port, tls_log) = https_server("secure.test", |_| ok(KEY_AUTH)).await;
        let target = format!("https://secure.test:{https_port}/tls-file");
        let (port, _) = http_server(move |_| redirect(&target)).await;
        let va = validator(local(&["example.test", "secure.test"]), port);
        let (error, _) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert!(error.detail.contains("Invalid port"), "{}", error.detail);
        assert!(tls_log.lock().unwrap().is_empty());
        let va =
            validator(local(&["example.test", "secure.test"]), port).with_any_redirect_port(true);
        let records = valid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(records[1]["port"], https_port.to_string());
        assert_eq!(tls_log.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn tls_failure_on_an_https_redirect_is_tls() {
        // The "HTTPS" port answers in plain HTTP at once: the handshake fails.
        let (listener, plain_port) = listener().await;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = stream.shutdown().await;
            }
        });
        let (port, _) = http_server(|_| redirect("https://secure.test/tls-file")).await;
        let va =
            validator(local(&["example.test", "secure.test"]), port).with_https_port(plain_port);
        let (error, _) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Tls, "{}", error.detail);
        assert!(
            error.detail.starts_with(&format!(
                "Fetching https://secure.test:{plain_port}/tls-file: TLS handshake with 127.0.0.1:{plain_port} failed"
            )),
            "{}",
            error.detail
        );
    }

    #[tokio::test]
    async fn ipv6_is_tried_first_then_ipv4() {
        // Nothing listens on [::1] at the test port (and IPv6 may not even
        // be available); 127.0.0.1 serves.
        let (port, _) = http_server(|_| ok(KEY_AUTH)).await;
        let va = validator(resolver(&[("example.test", &["127.0.0.1", "::1"])]), port);
        let records = valid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(
            records,
            json!([{
                "url": challenge_url("example.test", port),
                "hostname": "example.test",
                "port": port.to_string(),
                "addressesResolved": ["127.0.0.1", "::1"],
                "addressUsed": "127.0.0.1",
                "addressesTried": ["::1"],
            }])
        );
    }

    #[tokio::test]
    async fn both_failures_are_reported() {
        let port = closed_port().await;
        let va = validator(resolver(&[("example.test", &["::1", "127.0.0.1"])]), port);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error.detail.contains(&format!("127.0.0.1:{port}")),
            "{}",
            error.detail
        );
        assert!(
            error
                .detail
                .contains("the IPv6 address ::1 was tried first"),
            "{}",
            error.detail
        );
        assert_eq!(records[0]["addressesTried"], json!(["::1"]));
        assert_eq!(records[0]["addressUsed"], "127.0.0.1");
    }

    #[tokio::test]
    async fn reserved_addresses_are_refused_by_default() {
        let (port, log) = http_server(|_| ok(KEY_AUTH)).await;
        let va = Http01::new(
            local(&["example.test"]),
            AddressPolicy::default(),
            Duration::from_secs(5),
        )
        .with_port(port);
        let (error, records) =
            invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Dns);
        assert!(
            error.detail.contains("127.0.0.1 is a loopback address"),
            "{}",
            error.detail
        );
        assert!(log.lock().unwrap().is_empty());
        assert_eq!(records[0]["addressesResolved"], json!(["127.0.0.1"]));
        assert!(records[0].get("addressUsed").is_none());

        // An IP identifier in a reserved range is refused outright.
        let (error, _) = invalid(va.validate(&request(Identifier::ip("127.0.0.1"))).await);
        assert_eq!(error.kind, ErrorKind::RejectedIdentifier);
        assert!(error.detail.contains("loopback"), "{}", error.detail);
        assert!(log.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn ip_identifiers_are_fetched_by_address() {
        let (port, log) = http_server(|_| ok(KEY_AUTH)).await;
        let va = validator(resolver(&[]), port);
        let records = valid(va.validate(&request(Identifier::ip("127.0.0.1"))).await);
        assert_eq!(
            records,
            json!([{
                "url": challenge_url("127.0.0.1", port),
                "hostname": "127.0.0.1",
                "port": port.to_string(),
                "addressesResolved": ["127.0.0.1"],
                "addressUsed": "127.0.0.1",
            }])
        );
        assert_eq!(log.lock().unwrap()[0].host, format!("127.0.0.1:{port}"));
    }

    #[tokio::test]
    async fn redirect_without_location_is_unauthorized() {
        let (port, _) = http_server(|_| respond("302 Found", &[], b"")).await;
        let va = validator(local(&["example.test"]), port);
        let (error, _) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Unauthorized);
        assert!(
            error.detail.contains("without a Location header"),
            "{}",
            error.detail
        );
    }

    #[tokio::test]
    async fn garbage_instead_of_http_is_connection() {
        let (port, _) = http_server(|_| Reply::Raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec())).await;
        let va = validator(local(&["example.test"]), port);
        let (error, _) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error.detail.contains("not valid HTTP/1.1"),
            "{}",
            error.detail
        );
    }

    #[tokio::test]
    async fn huge_headers_are_refused() {
        let big = "x".repeat(MAX_HEADER_BYTES);
        let (port, _) = http_server(move |_| {
            respond("200 OK", &[("X-Big", big.as_str())], KEY_AUTH.as_bytes())
        })
        .await;
        let va = validator(local(&["example.test"]), port);
        let (error, _) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
        assert_eq!(error.kind, ErrorKind::Connection);
        assert!(
            error.detail.contains("larger than 8192 bytes"),
            "{}",
            error.detail
        );
    }

    #[test]
    fn references_resolve_like_rfc_3986() {
        let base = Target {
            scheme: Scheme::Http,
            host: Host::Name("example.test".to_owned()),
            port: 5002,
            path: "/.well-known/acme-challenge/tok?q".to_owned(),
        };
        let cases = [
            ("/x", "http://example.test:5002/x"),
            (
                "x/y",
                "http://example.test:5002/.well-known/acme-challenge/x/y",
            ),
            ("../x", "http://example.test:5002/.well-known/x"),
            (
                "?z",
                "http://example.test:5002/.well-known/acme-challenge/tok?z",
            ),
            (
                "#f",
                "http://example.test:5002/.well-known/acme-challenge/tok?q",
            ),
            ("//other.test/p", "http://other.test/p"),
            ("https://a.test/b#c", "https://a.test/b"),
            ("/a/./b/../../c/", "http://example.test:5002/c/"),
        ];
        for (reference, want) in cases {
            assert_eq!(resolve_reference(&base, reference), want, "{reference}");
        }
    }

    #[test]
    fn quoting_escapes_and_truncates() {
        assert_eq!(quote(b"a\"b\\c\n\x00\xff"), r#""a\"b\\c\n\x00\xff""#);
        let long = quote(&[b'a'; 300]);
        assert!(long.ends_with("(first 100 of 300 bytes)"), "{long}");
    }
}
