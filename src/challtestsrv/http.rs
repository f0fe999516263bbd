//! The HTTP-01 servers, over plain HTTP and over HTTPS (self-signed
//! certificate), as `pebble-challtestsrv` runs them.
//!
//! `GET /.well-known/acme-challenge/{token}` returns the key authorization
//! set for `token`; an unknown token or any other path gets an empty
//! `200 OK`. Over plain HTTP a path with a redirect set gets `302 Found` to
//! its target first. Every request is recorded in the history under its
//! `Host`. Connections are not kept alive.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{accept_loop, tls_provider, ChallTestSrv, HttpRequestEvent};

/// The IANA-registered HTTP-01 path prefix (RFC 8555 §8.3).
pub const WELL_KNOWN_PATH: &str = "/.well-known/acme-challenge/";

/// Longest a connection may stay open (handshake, request and response).
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

/// A TLS server configuration with a fresh self-signed certificate
/// (CN "challenge test server", valid for a year), offering `h2` and
/// `http/1.1`.
pub fn https_config() -> Result<Arc<ServerConfig>, String> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "challenge test server");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365);
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves HTTP-01 (over TLS with `tls`) until `stop`.
pub(crate) async fn serve(
    srv: ChallTestSrv,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    stop: watch::Receiver<bool>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    accept_loop(listener, stop, CONNECTION_LIMIT, move |stream, _| {
        serve_conn(srv.clone(), acceptor.clone(), stream)
    })
    .await
}

async fn serve_conn(srv: ChallTestSrv, acceptor: Option<TlsAcceptor>, stream: TcpStream) {
    match acceptor {
        None => serve_http(srv, TokioIo::new(stream), false, String::new()).await,
        Some(acceptor) => {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let sni = tls.get_ref().1.server_name().unwrap_or("").to_string();
            serve_http(srv, TokioIo::new(tls), true, sni).await
        }
    }
}

async fn serve_http<I>(srv: ChallTestSrv, io: I, https: bool, sni: String)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let resp = respond(&srv, &req, https, &sni);
        async move { Ok::<_, Infallible>(resp) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(false);
    let _ = builder.serve_connection(io, service).await;
}

fn respond(
    srv: &ChallTestSrv,
    req: &Request<Incoming>,
    https: bool,
    sni: &str,
) -> Response<Full<Bytes>> {
    let uri = req.uri();
    // Path and query only, also for HTTP/2 (whose URIs carry the scheme and
    // authority), as Go's `r.URL.String()` gives for server requests.
    let url = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    srv.record_http(HttpRequestEvent {
        url,
        host,
        https,
        server_name: sni.to_string(),
    });
    let path = percent_decode(uri.path());
    if !https {
        if let Some(target) = srv.redirect(&path) {
            let body = if req.method() == Method::GET || req.method() == Method::HEAD {
                format!("<a href=\"{}\">Found</a>.\n\n", html_escape(&target))
            } else {
                String::new()
            };
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = StatusCode::FOUND;
            if let Ok(v) = HeaderValue::from_str(&target) {
                resp.headers_mut().insert(LOCATION, v);
            }
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return resp;
        }
    }
    let content = path
        .strip_prefix(WELL_KNOWN_PATH)
        .and_then(|token| srv.http01_response(token));
    let mut resp = Response::new(Full::new(Bytes::from(content.unwrap_or_default())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Decodes `%XX` escapes of a URL path (invalid escapes are kept as is).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b"), "/a b");
        assert_eq!(percent_decode("/a%2"), "/a%2");
        assert_eq!(percent_decode("/%41%zz"), "/A%zz");
        assert_eq!(percent_decode("/x%41"), "/xA");
    }
}
