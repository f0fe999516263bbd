//! In-process tests: the servers run on OS-chosen ports of 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use x509_cert::der::Decode;

use super::*;

async fn start() -> Running {
    ChallTestSrv::start(Config::local_ephemeral())
        .await
        .expect("start challtestsrv")
}

fn query_message(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::query();
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    msg.metadata.recursion_desired = true;
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().unwrap()
}

async fn udp_exchange(addr: SocketAddr, query: &[u8], wait: Duration) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(query, addr).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(wait, sock.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    let msg = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(msg.metadata.id, u16::from_be_bytes([query[0], query[1]]));
    Some(msg)
}

async fn udp(srv: &Running, name: &str, rtype: RecordType) -> Message {
    let q = query_message(name, rtype, None);
    udp_exchange(srv.dns_addr().unwrap(), &q, Duration::from_secs(5))
        .await
        .expect("DNS answer")
}

async fn tcp(srv: &Running, name: &str, rtype: RecordType) -> Message {
    let q = query_message(name, rtype, None);
    let mut s = TcpStream::connect(srv.dns_addr().unwrap()).await.unwrap();
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&q);
    s.write_all(&out).await.unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn a_records(msg: &Message) -> Vec<IpAddr> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn txt_records(msg: &Message) -> Vec<String> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

fn owner(r: &Record) -> String {
    r.name.to_ascii()
}

#[tokio::test]
async fn dns_a_and_aaaa_default_and_mocked() {
    let srv = start().await;
    let m = udp(&srv, "anything.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    assert_eq!(m.answers[0].ttl, 0);
    assert_eq!(owner(&m.answers[0]), "anything.example.com.");
    // The fake SOA of pebble-challtestsrv.
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    let m = udp(&srv, "anything.example.com.", RecordType::AAAA).await;
    assert_eq!(a_records(&m), [IpAddr::V6(Ipv6Addr::LOCALHOST)]);

    let ips = [Ipv4Addr::new(12, 12, 12, 12), Ipv4Addr::new(13, 13, 13, 13)];
    srv.add_a("test-host.example.org", &ips);
    let m = udp(&srv, "TEST-host.example.org.", RecordType::A).await;
    assert_eq!(a_records(&m), ips.map(IpAddr::V4));
    srv.clear_a("test-host.example.org.");
    let m = udp(&srv, "test-host.example.org.", RecordType::A).await;
    assert_eq!(a_records(&m), [IpAddr::V4(Ipv4Addr::LOCALHOST)]);

    srv.set_default_ipv4(None);
    let m = udp(&srv, "test-host.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());

    // Unknown types: NOTIMP, as pebble-challtestsrv does.
    let m = udp(&srv, "test-host.example.org.", RecordType::MX).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    srv.shutdown().await;
}

#[tokio::test]
async fn dns_txt_set_and_clear() {
    let srv = start().await;
    let host = "_acme-challenge.example.com.";
    let m = udp(&srv, host, RecordType::TXT).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    srv.set_txt(host, "first");
    srv.set_txt("_acme-challenge.EXAMPLE.com", "second");
    let m = udp(&srv, "_acme-challenge.Example.COM.", RecordType::TXT).await;
    assert_eq!(txt_records(&m), ["first", "second"]);
    let m = tcp(&srv, host, RecordType::TXT).await;
    assert_eq!(txt_records(&m), ["first", "second"]);
    srv.clear_txt(host);
    let m = udp(&srv, host, RecordType::TXT).await;
    assert!(txt_records(&m).is_empty());
    srv.shutdown().await;
}

#[tokio::test]
async fn dns_cname_caa_servfail() {
    let srv = start().await;
    srv.set_cname("_acme-challenge.alias.example.", "delegated.example.net");
    srv.set_txt("delegated.example.net.", "token-value");
    let m = udp(&srv, "_acme-challenge.alias.example.", RecordType::TXT).await;
    assert_eq!(m.answers.len(), 2);
    match &m.answers[0].data {
        RData::CNAME(c) => assert_eq!(c.0.to_ascii(), "delegated.example.net."),
        other => panic!("expected CNAME, got {other:?}"),
    }
    assert_eq!(owner(&m.answers[1]), "delegated.example.net.");
    assert_eq!(txt_records(&m), ["token-value"]);
    let m = udp(&srv, "_acme-challenge.alias.example.", RecordType::CNAME).await;
    assert_eq!(m.answers.len(), 1);
    srv.clear_cname("_acme-challenge.alias.example.");
    let m = udp(&srv, "_acme-challenge.alias.example.", RecordType::TXT).await;
    assert!(m.answers.is_empty());

    srv.add_caa(
        "caa.example.",
        &[
            CaaPolicy {
                tag: "issue".into(),
                value: "letsencrypt.org".into(),
            },
            CaaPolicy {
                tag: "iodef".into(),
                value: "mailto:ca@example.com".into(),
            },
        ],
    );
    let m = udp(&srv, "caa.example.", RecordType::CAA).await;
    let caas: Vec<(String, String)> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CAA(c) => Some((
                c.tag.clone(),
                String::from_utf8_lossy(&c.value).into_owned(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        caas,
        [
            ("issue".to_string(), "letsencrypt.org".to_string()),
            ("iodef".to_string(), "mailto:ca@example.com".to_string())
        ]
    );
    srv.clear_caa("caa.example");
    assert!(udp(&srv, "caa.example.", RecordType::CAA)
        .await
        .answers
        .is_empty());

    srv.set_servfail("broken.example");
    srv.set_txt("broken.example", "hidden");
    for t in [RecordType::A, RecordType::TXT, RecordType::CAA] {
        let m = udp(&srv, "broken.example.", t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(m.answers.is_empty());
    }
    srv.clear_servfail("broken.example.");
    let m = udp(&srv, "broken.example.", RecordType::TXT).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(txt_records(&m), ["hidden"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn dns_truncation_oversize_and_garbage() {
    let srv = start().await;
    let host = "_acme-challenge.big.example.";
    for i in 0..20 {
        srv.set_txt(host, &format!("{i:02}{}", "x".repeat(98)));
    }
    // No EDNS: 512-byte limit, truncated.
    let m = udp(&srv, host, RecordType::TXT).await;
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    assert_eq!(m.queries.len(), 1);
    // EDNS 1232 is not enough for 20 x 100 bytes either.
    let q = query_message(host, RecordType::TXT, Some(4096));
    let m = udp_exchange(srv.dns_addr().unwrap(), &q, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(m.metadata.truncation);
    assert!(m.edns.is_some());
    // TCP has it all.
    let m = tcp(&srv, host, RecordType::TXT).await;
    assert!(!m.metadata.truncation);
    assert_eq!(txt_records(&m).len(), 20);

    // Oversized queries are dropped; garbage with a header gets FORMERR.
    let mut big = query_message("a.example.", RecordType::A, None);
    big.resize(dns::MAX_QUERY_LEN + 1, 0);
    let addr = srv.dns_addr().unwrap();
    assert!(udp_exchange(addr, &big, Duration::from_millis(300))
        .await
        .is_none());
    let garbage = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff];
    let m = udp_exchange(addr, &garbage, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // Still serving.
    let m = udp(&srv, "a.example.", RecordType::A).await;
    assert_eq!(a_records(&m).len(), 1);
    srv.shutdown().await;
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn http01_serve_delete_redirect() {
    let srv = start().await;
    let client = http_client();
    let http = format!("http://{}", srv.http01_addr().unwrap());
    let https = format!("https://localhost:{}", srv.https01_addr().unwrap().port());
    let url = |base: &str, token: &str| format!("{base}{}{token}", http::WELL_KNOWN_PATH);

    srv.add_http01("tok1", "tok1.thumbprint");
    for base in [&http, &https] {
        let resp = client.get(url(base, "tok1")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "tok1.thumbprint");
    }
    // Unknown tokens: an empty 200, as pebble-challtestsrv answers.
    let resp = client.get(url(&http, "nope")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
    srv.del_http01("tok1");
    let resp = client.get(url(&http, "tok1")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "");

    // Redirects apply over HTTP only.
    srv.add_http01("tok2", "tok2.thumbprint");
    let path = format!("{}tok2", http::WELL_KNOWN_PATH);
    let target = url(&https, "tok2");
    srv.add_redirect(&path, &target);
    let resp = client.get(url(&http, "tok2")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], target.as_str());
    let resp = client.get(&target).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "tok2.thumbprint");
    srv.del_redirect(&path);
    let resp = client.get(url(&http, "tok2")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let history = srv.http_request_history("localhost");
    assert!(history
        .iter()
        .all(|e| e.https && e.server_name == "localhost"));
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].url, "/.well-known/acme-challenge/tok1");
    let history = srv.http_request_history("127.0.0.1");
    assert_eq!(history.len(), 5);
    assert!(history.iter().all(|e| !e.https && e.server_name.is_empty()));
    assert_eq!(history[0].url, "/.well-known/acme-challenge/tok1");
    srv.shutdown().await;
}

#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 not expected".into()))
    }

    /// Checked against the raw public key: webpki refuses to parse a
    /// certificate with the (critical, unknown to it) acmeIdentifier extension.
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        use x509_cert::der::Encode;
        let cert = x509_cert::Certificate::from_der(cert.as_ref())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki),
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Handshakes with `alpn`; the server's certificate and ALPN choice.
async fn tls_alpn_handshake(
    addr: SocketAddr,
    sni: &str,
    alpn: &[&str],
) -> std::io::Result<(CertificateDer<'static>, Option<Vec<u8>>)> {
    let provider = tls_provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let tls = connector.connect(name, tcp).await?;
    let (_, conn) = tls.get_ref();
    let cert = conn.peer_certificates().unwrap()[0].clone().into_owned();
    Ok((cert, conn.alpn_protocol().map(|p| p.to_vec())))
}

#[tokio::test]
async fn tls_alpn01_certificate() {
    let srv = start().await;
    let addr = srv.tlsalpn01_addr().unwrap();
    let key_auth = "token.thumbprint";
    srv.add_tlsalpn01("alpn.example.com", key_auth);

    let (der, alpn) = tls_alpn_handshake(addr, "alpn.example.com", &[tlsalpn::ACME_TLS_1])
        .await
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(tlsalpn::ACME_TLS_1.as_bytes()));
    let cert = x509_cert::Certificate::from_der(der.as_ref()).unwrap();
    let exts = cert.tbs_certificate.extensions.unwrap();
    let acme_oid = x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.31");
    let acme = exts.iter().find(|e| e.extn_id == acme_oid).unwrap();
    assert!(acme.critical);
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_auth.as_bytes());
    let mut expected = vec![0x04, 0x20];
    expected.extend_from_slice(hash.as_ref());
    assert_eq!(acme.extn_value.as_bytes(), expected.as_slice());
    let san_oid = x509_cert::der::oid::ObjectIdentifier::new_unwrap("2.5.29.17");
    let san = exts.iter().find(|e| e.extn_id == san_oid).unwrap();
    let san = x509_cert::ext::pkix::SubjectAltName::from_der(san.extn_value.as_bytes()).unwrap();
    match &san.0[..] {
        [x509_cert::ext::pkix::name::GeneralName::DnsName(n)] => {
            assert_eq!(n.as_str(), "alpn.example.com")
        }
        other => panic!("unexpected SAN {other:?}"),
    }

    // Other ALPN offers and unknown names are refused.
    assert!(
        tls_alpn_handshake(addr, "alpn.example.com", &["h2", tlsalpn::ACME_TLS_1])
            .await
            .is_err()
    );
    assert!(
        tls_alpn_handshake(addr, "other.example.com", &[tlsalpn::ACME_TLS_1])
            .await
            .is_err()
    );
    srv.del_tlsalpn01("alpn.example.com");
    assert!(
        tls_alpn_handshake(addr, "alpn.example.com", &[tlsalpn::ACME_TLS_1])
            .await
            .is_err()
    );

    let history = srv.tlsalpn01_request_history("alpn.example.com");
    assert_eq!(history.len(), 3);
    assert_eq!(
        history[1].supported_protos.as_deref(),
        Some(&["h2".to_string(), "acme-tls/1".to_string()][..])
    );
    srv.shutdown().await;
}

async fn post(client: &reqwest::Client, srv: &Running, path: &str, body: Value) -> (u16, String) {
    let url = format!("http://{}{path}", srv.management_addr().unwrap());
    let resp = client
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn management_api() {
    let srv = start().await;
    let client = http_client();
    // As chisel2.py uses them.
    let host = "_acme-challenge.chisel.example.com.";
    let (status, body) = post(
        &client,
        &srv,
        "/set-txt",
        json!({"host": host, "value": "abc"}),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    let m = udp(&srv, host, RecordType::TXT).await;
    assert_eq!(txt_records(&m), ["abc"]);
    let (status, _) = post(&client, &srv, "/clear-txt", json!({"host": host})).await;
    assert_eq!(status, 200);
    assert!(udp(&srv, host, RecordType::TXT).await.answers.is_empty());

    // Go's encoding/json matches field names case-insensitively.
    let (status, _) = post(
        &client,
        &srv,
        "/add-http01",
        json!({"Token": "t1", "CONTENT": "t1.ka"}),
    )
    .await;
    assert_eq!(status, 200);
    let url = format!(
        "http://{}/.well-known/acme-challenge/t1",
        srv.http01_addr().unwrap()
    );
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "t1.ka"
    );
    let (status, _) = post(
        &client,
        &srv,
        "/add-redirect",
        json!({"path": "/r", "targetURL": "https://example.com/"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(srv.redirect("/r").as_deref(), Some("https://example.com/"));

    let (status, _) = post(
        &client,
        &srv,
        "/add-a",
        json!({"host": "m.example", "addresses": ["10.0.0.1"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        a_records(&udp(&srv, "m.example.", RecordType::A).await),
        [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]
    );
    let (status, _) = post(
        &client,
        &srv,
        "/add-caa",
        json!({"host": "m.example", "policies": [{"tag": "issue", "value": "ca.example"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        udp(&srv, "m.example.", RecordType::CAA).await.answers.len(),
        1
    );
    let (status, _) = post(&client, &srv, "/set-default-ipv6", json!({"ip": ""})).await;
    assert_eq!(status, 200);
    assert_eq!(srv.default_ipv6(), None);

    // Errors.
    assert_eq!(
        post(&client, &srv, "/set-txt", json!({"host": host})).await,
        (400, String::new())
    );
    let url = format!("http://{}/set-txt", srv.management_addr().unwrap());
    let resp = client.post(&url).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.text().await.unwrap(),
        "expected JSON POST body, was empty\n"
    );
    assert_eq!(post(&client, &srv, "/nope", json!({})).await.0, 404);
    assert_eq!(
        post(
            &client,
            &srv,
            "/add-a",
            json!({"host": "x", "addresses": ["nope"]})
        )
        .await
        .0,
        400
    );

    // Request history.
    let (status, body) = post(
        &client,
        &srv,
        "/dns-request-history",
        json!({"host": "m.example"}),
    )
    .await;
    assert_eq!(status, 200);
    let events: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        events,
        json!([
            {"Question": {"Name": "m.example.", "Qtype": 1, "Qclass": 1}},
            {"Question": {"Name": "m.example.", "Qtype": 257, "Qclass": 1}},
        ])
    );
    let (_, body) = post(
        &client,
        &srv,
        "/http-request-history",
        json!({"host": "127.0.0.1"}),
    )
    .await;
    let events: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(events[0]["URL"], "/.well-known/acme-challenge/t1");
    assert_eq!(events[0]["HTTPS"], false);
    assert_eq!(events[0]["ServerName"], "");
    let (_, body) = post(
        &client,
        &srv,
        "/tlsalpn01-request-history",
        json!({"host": "none.example"}),
    )
    .await;
    assert_eq!(body, "[]");
    let (status, _) = post(
        &client,
        &srv,
        "/clear-request-history",
        json!({"host": "m.example", "type": "dns"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = post(
        &client,
        &srv,
        "/dns-request-history",
        json!({"host": "m.example"}),
    )
    .await;
    assert_eq!(body, "[]");
    let (status, body) = post(
        &client,
        &srv,
        "/clear-request-history",
        json!({"host": "m.example", "type": "bogus"}),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "\"bogus\" event type unknown\n")
    );
    let (status, _) = post(&client, &srv, "/http-request-history", json!({})).await;
    assert_eq!(status, 400);
    srv.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_listeners() {
    let srv = start().await;
    let http = srv.http01_addr().unwrap();
    let mgmt = srv.management_addr().unwrap();
    assert!(TcpStream::connect(http).await.is_ok());
    srv.shutdown().await;
    assert!(TcpStream::connect(http).await.is_err());
    assert!(TcpStream::connect(mgmt).await.is_err());
}

#[test]
fn host_normalisation() {
    assert_eq!(dns_key("Example.COM"), "example.com.");
    assert_eq!(dns_key("example.com."), "example.com.");
    assert_eq!(host_key("Example.com."), "example.com");
    assert_eq!(strip_port("example.com:80"), "example.com");
    assert_eq!(strip_port("[::1]:80"), "::1");
    assert_eq!(strip_port("::1"), "::1");
    assert_eq!(strip_port("example.com"), "example.com");
}
