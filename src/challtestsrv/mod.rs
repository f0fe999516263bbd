//! A challenge test server compatible with Let's Encrypt's `pebble-challtestsrv`.
//!
//! It answers ACME challenges on command, for tests only (it has no
//! authentication at all):
//!
//! * a mock DNS server (UDP and TCP) answering `A`/`AAAA` queries with default
//!   addresses unless mocked, and `TXT` (DNS-01), `CNAME`, `CAA` and SERVFAIL
//!   mocks ([`dns`]);
//! * HTTP-01 servers over HTTP and HTTPS, with redirects ([`http`]);
//! * a TLS-ALPN-01 server answering the `acme-tls/1` ALPN protocol with a
//!   certificate carrying the `id-pe-acmeIdentifier` extension ([`tlsalpn`]);
//! * the `pebble-challtestsrv` HTTP management API ([`management`]);
//! * a request history (HTTP, DNS and TLS-ALPN events per host).
//!
//! It can run in process: [`ChallTestSrv::start`] binds every configured
//! server (`127.0.0.1:0` lets the OS pick ports, see
//! [`Config::local_ephemeral`]) and returns a [`Running`] server whose bound
//! addresses can be read and whose mock data can be set directly, without
//! HTTP. [`cli`] wraps it with `pebble-challtestsrv`'s command line, run as
//! `acme-ca challtestsrv` (and as acme-tests' `challtestsrv` binary).
//!
//! Behaviour follows `pebble-challtestsrv` (and so differs from a real DNS
//! server): names never get NXDOMAIN; unknown query types get NOTIMP; every
//! response carries a fake SOA record in its authority section; a missing
//! HTTP-01 token gets an empty `200 OK`. Host names are matched
//! case-insensitively and with or without a trailing dot.

pub mod cli;
pub mod dns;
pub mod http;
pub mod management;
mod running;
pub mod tlsalpn;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use running::Running;

/// Most events kept per host and event type in the request history; older
/// events are dropped first.
pub const MAX_EVENTS_PER_HOST: usize = 1000;

/// Most distinct hosts kept in the request history; events for further hosts
/// are not recorded until the history is cleared.
pub const MAX_HISTORY_HOSTS: usize = 100_000;

/// Where and how to run the challenge servers.
///
/// Every list holds bind addresses such as `"127.0.0.1:0"`, `"[::1]:8053"`
/// or Go-style `":8053"` (all interfaces); an empty list disables that
/// server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// DNS server addresses (each serves UDP and TCP on the same port).
    pub dns01: Vec<String>,
    /// HTTP-01 server addresses (plain HTTP).
    pub http01: Vec<String>,
    /// HTTPS HTTP-01 server addresses (self-signed certificate).
    pub https01: Vec<String>,
    /// TLS-ALPN-01 server addresses.
    pub tlsalpn01: Vec<String>,
    /// Management API address, or `None` for no management server.
    pub management: Option<String>,
    /// Answer for `A` queries of names without `A` mocks (`None`: no answer).
    pub default_ipv4: Option<Ipv4Addr>,
    /// Answer for `AAAA` queries of names without `AAAA` mocks.
    pub default_ipv6: Option<Ipv6Addr>,
    /// TTL of every DNS record served (`pebble-challtestsrv` uses 0).
    pub dns_ttl: u32,
    /// Log management changes and server start-up to standard output.
    pub verbose: bool,
}

impl Default for Config {
    /// `pebble-challtestsrv`'s defaults: DNS on `:8053`, HTTP-01 on `:5002`,
    /// HTTPS on `:5003`, TLS-ALPN-01 on `:5001`, management on `:8055`,
    /// default answers `127.0.0.1` and `::1`.
    fn default() -> Self {
        Config {
            dns01: vec![":8053".into()],
            http01: vec![":5002".into()],
            https01: vec![":5003".into()],
            tlsalpn01: vec![":5001".into()],
            management: Some(":8055".into()),
            default_ipv4: Some(Ipv4Addr::LOCALHOST),
            default_ipv6: Some(Ipv6Addr::LOCALHOST),
            dns_ttl: 0,
            verbose: false,
        }
    }
}

impl Config {
    /// Every server (management included) on `127.0.0.1` with a port chosen
    /// by the OS; default answers `127.0.0.1` and `::1`. For in-process tests.
    pub fn local_ephemeral() -> Self {
        let any = || vec!["127.0.0.1:0".to_string()];
        Config {
            dns01: any(),
            http01: any(),
            https01: any(),
            tlsalpn01: any(),
            management: Some("127.0.0.1:0".into()),
            ..Config::default()
        }
    }
}

/// One CAA policy to serve (flags 0), as in `/add-caa`'s `policies`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaaPolicy {
    /// Property tag, e.g. `issue`, `issuewild` or `iodef`.
    pub tag: String,
    /// Property value, e.g. `letsencrypt.org`.
    pub value: String,
}

/// The kinds of request events kept in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestEventType {
    /// Requests to the HTTP-01 (HTTP and HTTPS) servers.
    Http,
    /// Questions to the DNS server.
    Dns,
    /// TLS handshakes with the TLS-ALPN-01 server.
    TlsAlpn,
}

impl RequestEventType {
    /// Parses the management API's `type` names: `http`, `dns`, `tlsalpn`.
    pub fn from_api_name(name: &str) -> Option<Self> {
        match name {
            "http" => Some(Self::Http),
            "dns" => Some(Self::Dns),
            "tlsalpn" => Some(Self::TlsAlpn),
            _ => None,
        }
    }
}

/// An HTTP request received by an HTTP-01 server (JSON as in
/// `pebble-challtestsrv`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequestEvent {
    /// Request target: path and query.
    #[serde(rename = "URL")]
    pub url: String,
    /// `Host` header (or HTTP/2 authority).
    #[serde(rename = "Host")]
    pub host: String,
    /// Whether it came over HTTPS.
    #[serde(rename = "HTTPS")]
    pub https: bool,
    /// SNI of the TLS connection (empty over plain HTTP or without SNI).
    #[serde(rename = "ServerName")]
    pub server_name: String,
}

/// A DNS question as recorded in a [`DnsRequestEvent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsQuestion {
    /// Queried name, fully qualified, as sent.
    #[serde(rename = "Name")]
    pub name: String,
    /// Query type code (e.g. 16 for TXT, 257 for CAA).
    #[serde(rename = "Qtype")]
    pub qtype: u16,
    /// Query class code (1 for IN).
    #[serde(rename = "Qclass")]
    pub qclass: u16,
}

/// A DNS question received by the DNS server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRequestEvent {
    /// The question.
    #[serde(rename = "Question")]
    pub question: DnsQuestion,
}

/// A TLS handshake received by the TLS-ALPN-01 server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsAlpnRequestEvent {
    /// SNI from the ClientHello (empty without SNI).
    #[serde(rename = "ServerName")]
    pub server_name: String,
    /// ALPN protocols offered in the ClientHello (`null` without ALPN).
    #[serde(rename = "SupportedProtos")]
    pub supported_protos: Option<Vec<String>>,
}

#[derive(Default)]
struct HostHistory {
    http: VecDeque<HttpRequestEvent>,
    dns: VecDeque<DnsRequestEvent>,
    tlsalpn: VecDeque<TlsAlpnRequestEvent>,
}

#[derive(Default)]
struct Data {
    default_ipv4: Option<Ipv4Addr>,
    default_ipv6: Option<Ipv6Addr>,
    a: HashMap<String, Vec<Ipv4Addr>>,
    aaaa: HashMap<String, Vec<Ipv6Addr>>,
    caa: HashMap<String, Vec<CaaPolicy>>,
    cname: HashMap<String, String>,
    servfail: HashSet<String>,
    txt: HashMap<String, Vec<String>>,
    http01: HashMap<String, String>,
    redirects: HashMap<String, String>,
    tlsalpn01: HashMap<String, String>,
    history: HashMap<String, HostHistory>,
}

/// Normalises a DNS name for mock lookups: lower case, fully qualified.
pub(crate) fn dns_key(host: &str) -> String {
    let mut key = host.trim().to_ascii_lowercase();
    if !key.ends_with('.') {
        key.push('.');
    }
    key
}

/// Normalises a host name for the history and TLS-ALPN lookups: lower case,
/// no trailing dot.
pub(crate) fn host_key(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Handle on the challenge server's mock data and request history. Cheap to
/// clone; every clone shares the same data. All host arguments are matched
/// case-insensitively, with or without a trailing dot.
#[derive(Clone, Default)]
pub struct ChallTestSrv {
    data: Arc<RwLock<Data>>,
    verbose: bool,
}

impl ChallTestSrv {
    /// Mock data with the given default `A`/`AAAA` answers and no servers.
    pub fn new(default_ipv4: Option<Ipv4Addr>, default_ipv6: Option<Ipv6Addr>) -> Self {
        let srv = ChallTestSrv::default();
        {
            let mut d = srv.write();
            d.default_ipv4 = default_ipv4;
            d.default_ipv6 = default_ipv6;
        }
        srv
    }

    fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn log(&self, args: std::fmt::Arguments<'_>) {
        if self.verbose {
            println!("challtestsrv - {args}");
        }
    }

    /// Sets (or with `None` clears) the default answer to `A` queries.
    pub fn set_default_ipv4(&self, ip: Option<Ipv4Addr>) {
        self.write().default_ipv4 = ip;
    }

    /// Sets (or with `None` clears) the default answer to `AAAA` queries.
    pub fn set_default_ipv6(&self, ip: Option<Ipv6Addr>) {
        self.write().default_ipv6 = ip;
    }

    /// The default answer to `A` queries.
    pub fn default_ipv4(&self) -> Option<Ipv4Addr> {
        self.read().default_ipv4
    }

    /// The default answer to `AAAA` queries.
    pub fn default_ipv6(&self) -> Option<Ipv6Addr> {
        self.read().default_ipv6
    }

    /// Adds `A` answers for `host` (appended to those already set).
    pub fn add_a(&self, host: &str, addresses: &[Ipv4Addr]) {
        self.write()
            .a
            .entry(dns_key(host))
            .or_default()
            .extend_from_slice(addresses);
    }

    /// Removes the `A` answers of `host` (it gets the default again).
    pub fn clear_a(&self, host: &str) {
        self.write().a.remove(&dns_key(host));
    }

    /// Adds `AAAA` answers for `host` (appended to those already set).
    pub fn add_aaaa(&self, host: &str, addresses: &[Ipv6Addr]) {
        self.write()
            .aaaa
            .entry(dns_key(host))
            .or_default()
            .extend_from_slice(addresses);
    }

    /// Removes the `AAAA` answers of `host`.
    pub fn clear_aaaa(&self, host: &str) {
        self.write().aaaa.remove(&dns_key(host));
    }

    /// Adds CAA policies for `host` (appended to those already set).
    pub fn add_caa(&self, host: &str, policies: &[CaaPolicy]) {
        self.write()
            .caa
            .entry(dns_key(host))
            .or_default()
            .extend_from_slice(policies);
    }

    /// Removes the CAA policies of `host`.
    pub fn clear_caa(&self, host: &str) {
        self.write().caa.remove(&dns_key(host));
    }

    /// Makes `host` an alias of `target`: queries for `host` get a CNAME
    /// record and then `target`'s records (one level of aliasing).
    pub fn set_cname(&self, host: &str, target: &str) {
        self.write().cname.insert(dns_key(host), dns_key(target));
    }

    /// Removes the CNAME of `host`.
    pub fn clear_cname(&self, host: &str) {
        self.write().cname.remove(&dns_key(host));
    }

    /// Makes every query for `host` get SERVFAIL, whatever else is set.
    pub fn set_servfail(&self, host: &str) {
        self.write().servfail.insert(dns_key(host));
    }

    /// Stops answering SERVFAIL for `host`.
    pub fn clear_servfail(&self, host: &str) {
        self.write().servfail.remove(&dns_key(host));
    }

    /// Adds a TXT record `value` for `host` (appended to those already set,
    /// as `pebble-challtestsrv`'s `/set-txt` does).
    pub fn set_txt(&self, host: &str, value: &str) {
        self.write()
            .txt
            .entry(dns_key(host))
            .or_default()
            .push(value.to_string());
    }

    /// Removes every TXT record of `host`.
    pub fn clear_txt(&self, host: &str) {
        self.write().txt.remove(&dns_key(host));
    }

    /// Serves `content` at `/.well-known/acme-challenge/{token}`.
    pub fn add_http01(&self, token: &str, content: &str) {
        self.write()
            .http01
            .insert(token.to_string(), content.to_string());
    }

    /// Stops serving the HTTP-01 response for `token`.
    pub fn del_http01(&self, token: &str) {
        self.write().http01.remove(token);
    }

    /// Redirects plain-HTTP requests for exactly `path` to `target_url`
    /// (302 Found). HTTPS requests are never redirected, so that a path can
    /// be redirected from HTTP to HTTPS without a loop.
    pub fn add_redirect(&self, path: &str, target_url: &str) {
        self.write()
            .redirects
            .insert(path.to_string(), target_url.to_string());
    }

    /// Removes the redirect of `path`.
    pub fn del_redirect(&self, path: &str) {
        self.write().redirects.remove(path);
    }

    /// Answers TLS-ALPN-01 handshakes with SNI `host` with a certificate for
    /// the key authorization `key_authorization`.
    pub fn add_tlsalpn01(&self, host: &str, key_authorization: &str) {
        self.write()
            .tlsalpn01
            .insert(host_key(host), key_authorization.to_string());
    }

    /// Stops answering TLS-ALPN-01 handshakes for `host`.
    pub fn del_tlsalpn01(&self, host: &str) {
        self.write().tlsalpn01.remove(&host_key(host));
    }

    /// HTTP requests received for `host` (the `Host` header without port).
    pub fn http_request_history(&self, host: &str) -> Vec<HttpRequestEvent> {
        self.read()
            .history
            .get(&host_key(host))
            .map(|h| h.http.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// DNS questions received for `host`.
    pub fn dns_request_history(&self, host: &str) -> Vec<DnsRequestEvent> {
        self.read()
            .history
            .get(&host_key(host))
            .map(|h| h.dns.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// TLS-ALPN-01 handshakes received with SNI `host`.
    pub fn tlsalpn01_request_history(&self, host: &str) -> Vec<TlsAlpnRequestEvent> {
        self.read()
            .history
            .get(&host_key(host))
            .map(|h| h.tlsalpn.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the events of type `typ` received for `host`.
    pub fn clear_request_history(&self, host: &str, typ: RequestEventType) {
        let mut d = self.write();
        let key = host_key(host);
        if let Some(h) = d.history.get_mut(&key) {
            match typ {
                RequestEventType::Http => h.http.clear(),
                RequestEventType::Dns => h.dns.clear(),
                RequestEventType::TlsAlpn => h.tlsalpn.clear(),
            }
            if h.http.is_empty() && h.dns.is_empty() && h.tlsalpn.is_empty() {
                d.history.remove(&key);
            }
        }
    }

    fn with_history(&self, host: &str, f: impl FnOnce(&mut HostHistory)) {
        let key = host_key(host);
        let mut d = self.write();
        if !d.history.contains_key(&key) && d.history.len() >= MAX_HISTORY_HOSTS {
            return;
        }
        f(d.history.entry(key).or_default());
    }

    pub(crate) fn record_http(&self, event: HttpRequestEvent) {
        let host = strip_port(&event.host).to_string();
        self.with_history(&host, |h| push_bounded(&mut h.http, event));
    }

    pub(crate) fn record_dns(&self, event: DnsRequestEvent) {
        let host = event.question.name.clone();
        self.with_history(&host, |h| push_bounded(&mut h.dns, event));
    }

    pub(crate) fn record_tlsalpn(&self, event: TlsAlpnRequestEvent) {
        let host = event.server_name.clone();
        self.with_history(&host, |h| push_bounded(&mut h.tlsalpn, event));
    }

    pub(crate) fn http01_response(&self, token: &str) -> Option<String> {
        self.read().http01.get(token).cloned()
    }

    pub(crate) fn redirect(&self, path: &str) -> Option<String> {
        self.read().redirects.get(path).cloned()
    }

    pub(crate) fn tlsalpn01_response(&self, host: &str) -> Option<String> {
        self.read().tlsalpn01.get(&host_key(host)).cloned()
    }
}

fn push_bounded<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() >= MAX_EVENTS_PER_HOST {
        list.pop_front();
    }
    list.push_back(item);
}

/// `host:port`, `[v6]:port` or `host` to `host` (as Go's `net.SplitHostPort`
/// would, falling back to the input).
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return &rest[..end];
        }
        return host;
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Candidate socket addresses for a bind address; Go-style `":port"` means
/// every interface (IPv6 dual-stack first, then IPv4).
pub(crate) async fn resolve(addr: &str) -> io::Result<Vec<SocketAddr>> {
    let addr = addr.trim();
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("bad port in {addr:?}"))
        })?;
        return Ok(vec![
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        ]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr:?} resolves to no address"),
        ));
    }
    Ok(addrs)
}

fn bind_error(addr: &str, err: Option<io::Error>) -> io::Error {
    let err = err.unwrap_or_else(|| io::Error::other("no address"));
    io::Error::new(err.kind(), format!("binding {addr}: {err}"))
}

/// Binds a TCP listener on the first usable address of `addr`.
pub(crate) async fn bind_tcp(addr: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for sa in resolve(addr).await? {
        match TcpListener::bind(sa).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(bind_error(addr, last))
}

/// Binds a UDP socket on the first usable address of `addr`.
pub(crate) async fn bind_udp(addr: &str) -> io::Result<UdpSocket> {
    let mut last = None;
    for sa in resolve(addr).await? {
        match UdpSocket::bind(sa).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(bind_error(addr, last))
}

/// Waits until `stop` says so (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Most connections each TCP server (HTTP, TLS, DNS, management) serves at
/// once; further ones wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 256;

/// Accepts connections on `listener` until `stop`, running `handle` on each
/// (at most [`MAX_CONNECTIONS`] at once, each for at most `limit`).
/// Connections still open when stopping are aborted.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    limit: Duration,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stopped(&mut stop) => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer) = loop {
            tokio::select! {
                _ = stopped(&mut stop) => return,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                r = listener.accept() => match r {
                    Ok(r) => break r,
                    // E.g. out of file descriptors: back off a little.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        };
        let fut = handle(stream, peer);
        conns.spawn(async move {
            let _ = tokio::time::timeout(limit, fut).await;
            drop(permit);
        });
    }
}

/// The rustls crypto provider used by every TLS server (aws-lc-rs).
pub(crate) fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod va_tests;
