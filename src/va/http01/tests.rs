use super::redirect::{ends_in_public_suffix, resolve_reference};
use super::*;

use std::sync::Mutex;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::model::ChallengeType;
use crate::protocol::Identifier;
use crate::va::fake::{
    invalid, local_listener, reach_loopback, token_request, valid, FakeResolver, KEY_AUTH,
};

const CHALLENGE_URL_PATH: &str =
    "/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

/// The shared fake answering A/AAAA lookups from `entries`; other names
/// are NXDOMAIN.
fn resolver(entries: &[(&str, &[&str])]) -> Arc<dyn Resolver> {
    entries
        .iter()
        .fold(
            FakeResolver::default().described_as("the test resolver"),
            |r, (name, addrs)| r.ip(name, addrs),
        )
        .shared()
}

fn request(ident: Identifier) -> ValidationRequest {
    token_request(ChallengeType::Http01, ident)
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

/// A plain HTTP server on 127.0.0.1; returns its port and request log.
async fn http_server(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> (u16, Log) {
    let (listener, port) = local_listener().await;
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
    let (listener, port) = local_listener().await;
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
    let (listener, port) = local_listener().await;
    drop(listener);
    port
}

fn validator(resolver: Arc<dyn Resolver>, port: u16) -> Http01 {
    Http01::new(resolver, reach_loopback(), Duration::from_secs(5)).with_port(port)
}

fn local(names: &[&str]) -> Arc<dyn Resolver> {
    let entries: Vec<(&str, &[&str])> = names.iter().map(|n| (*n, &["127.0.0.1"][..])).collect();
    resolver(&entries)
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
        reach_loopback(),
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
    let va = validator(local(&["example.test", "secure.test"]), port).with_https_port(https_port);
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
    let va = validator(local(&["example.test", "secure.test"]), port).with_any_redirect_port(true);
    let records = valid(va.validate(&request(Identifier::dns("example.test"))).await);
    assert_eq!(records[1]["port"], https_port.to_string());
    assert_eq!(tls_log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn tls_failure_on_an_https_redirect_is_tls() {
    // The "HTTPS" port answers in plain HTTP at once: the handshake fails.
    let (listener, plain_port) = local_listener().await;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
        }
    });
    let (port, _) = http_server(|_| redirect("https://secure.test/tls-file")).await;
    let va = validator(local(&["example.test", "secure.test"]), port).with_https_port(plain_port);
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
    let (error, records) = invalid(va.validate(&request(Identifier::dns("example.test"))).await);
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
    let (port, _) =
        http_server(move |_| respond("200 OK", &[("X-Big", big.as_str())], KEY_AUTH.as_bytes()))
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
