//! In-process HTTP tests: the real router, store and CA, no sockets.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};

use crate::config::Config;
use crate::jose::b64;
use crate::server::Server;
use x509_cert::der::Decode;

const BASE: &str = "https://localhost:14000";

struct Harness {
    router: Router,
    server: Server,
    _dir: tempfile::TempDir,
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
    fn problem(&self) -> String {
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "not a problem document: {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        self.json()["type"]
            .as_str()
            .unwrap()
            .trim_start_matches("urn:ietf:params:acme:error:")
            .to_string()
    }
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

/// A server on a temporary data directory, always-valid, with its status
/// listener on a free loopback port; `adjust` changes the config first.
async fn harness_with(adjust: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.validation.always_valid = true;
    config.acme.orders_per_page = 2;
    config.status.listen = "127.0.0.1:0".parse().unwrap();
    adjust(&mut config);
    config.validate().unwrap();
    let server = Server::build(&config, "127.0.0.1:14000".parse().unwrap())
        .await
        .unwrap();
    let router = crate::http::router(server.app.clone());
    Harness {
        router,
        server,
        _dir: dir,
    }
}

/// An ACME client key (ES256) and, once registered, its account URL.
struct Client {
    key: EcdsaKeyPair,
    jwk: Value,
    kid: Option<String>,
}

impl Client {
    fn new() -> Client {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let public = key.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": b64::encode(&public[1..33]), "y": b64::encode(&public[33..65]),
        });
        Client {
            key,
            jwk,
            kid: None,
        }
    }

    fn sign(&self, protected: Value, payload: &str) -> String {
        let p = b64::encode(protected.to_string());
        let input = format!("{p}.{payload}");
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        json!({"protected": p, "payload": payload, "signature": b64::encode(sig.as_ref())})
            .to_string()
    }

    /// A JWS for `url` with `payload` (None: POST-as-GET).
    fn jws(&self, nonce: &str, url: &str, payload: Option<&Value>) -> String {
        let mut protected = json!({"alg": "ES256", "nonce": nonce, "url": url});
        match &self.kid {
            Some(kid) => protected["kid"] = json!(kid),
            None => protected["jwk"] = self.jwk.clone(),
        }
        let payload = payload
            .map(|p| b64::encode(p.to_string()))
            .unwrap_or_default();
        self.sign(protected, &payload)
    }
}

/// Runs `req` through `router` and collects the whole answer.
async fn call(router: Router, req: Request<Body>) -> Resp {
    let (status, headers, body) = crate::test_support::read_answer(router, req).await;
    Resp {
        status,
        headers,
        body,
    }
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> Resp {
        call(self.router.clone(), req).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(
            Request::get(path)
                .header(header::HOST, "localhost:14000")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn raw_post(&self, path: &str, content_type: &str, body: String) -> Resp {
        self.send(
            Request::post(path)
                .header(header::HOST, "localhost:14000")
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    fn nonce(&self) -> String {
        self.server.app.nonces.issue()
    }

    /// Signs and posts; `url` may be a full URL or a path on BASE.
    async fn post(&self, c: &Client, url: &str, payload: Option<&Value>) -> Resp {
        let url = if url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{BASE}{url}")
        };
        let body = c.jws(&self.nonce(), &url, payload);
        self.raw_post(&url[BASE.len()..], "application/jose+json", body)
            .await
    }

    async fn register(&self, c: &mut Client) {
        let r = self
            .post(
                c,
                "/acme/new-account",
                Some(&json!({"termsOfServiceAgreed": true})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        c.kid = r.header("location");
    }

    /// newOrder → answer every challenge → (order URL, order JSON).
    async fn ready_order(&self, c: &Client, names: &[&str]) -> (String, Value) {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let r = self
            .post(c, "/acme/new-order", Some(&json!({"identifiers": ids})))
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let order_url = r.header("location").unwrap();
        for authz in r.json()["authorizations"].as_array().unwrap() {
            let a = self.post(c, authz.as_str().unwrap(), None).await.json();
            let r = self.answer_http01(c, &a).await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.json()["status"], "valid");
        }
        let order = self.post(c, &order_url, None).await.json();
        (order_url, order)
    }

    /// POSTs `{}` to the http-01 challenge of the authorization `authz`
    /// (its JSON): the challenge response.
    async fn answer_http01(&self, c: &Client, authz: &Value) -> Resp {
        let chall = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ch| ch["type"] == "http-01")
            .unwrap();
        self.post(c, chall["url"].as_str().unwrap(), Some(&json!({})))
            .await
    }
}

fn csr_for(names: &[&str]) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).unwrap();
    b64::encode(csr.der())
}

#[tokio::test]
async fn directory_and_nonces() {
    let h = harness().await;
    let r = h.get("/directory").await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.json();
    for k in [
        "newNonce",
        "newAccount",
        "newOrder",
        "revokeCert",
        "keyChange",
    ] {
        assert!(d[k].as_str().unwrap().starts_with(BASE), "{k}");
    }
    assert_eq!(d["meta"]["externalAccountRequired"], false);

    let head = h
        .send(
            Request::head("/acme/new-nonce")
                .header(header::HOST, "localhost:14000")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("cache-control").as_deref(), Some("no-store"));
    assert!(head.header("replay-nonce").is_some());
    let get = h.get("/acme/new-nonce").await;
    assert_eq!(get.status, StatusCode::NO_CONTENT);
    assert_eq!(get.header("cache-control").as_deref(), Some("no-store"));
    assert_ne!(get.header("replay-nonce"), head.header("replay-nonce"));
    assert_eq!(
        get.header("link").as_deref(),
        Some("<https://localhost:14000/directory>;rel=\"index\"")
    );
    // POST-as-GET of the directory is accepted too.
    let c = Client::new();
    let r = h.post(&c, "/directory", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["newOrder"].is_string());
}

#[tokio::test]
async fn new_account_create_existing_and_only_return_existing() {
    let h = harness().await;
    let mut c = Client::new();
    let r = h
        .post(
            &c,
            "/acme/new-account",
            Some(&json!({"onlyReturnExisting": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.problem(), "accountDoesNotExist");

    let r = h
        .post(
            &c,
            "/acme/new-account",
            Some(&json!({"contact": ["mailto:a@example.com"], "termsOfServiceAgreed": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with("https://localhost:14000/acme/acct/"));
    assert_eq!(r.json()["status"], "valid");
    assert_eq!(r.json()["contact"][0], "mailto:a@example.com");
    assert!(r.header("replay-nonce").is_some());
    assert!(r.header("link").unwrap().contains("rel=\"index\""));

    let r = h.post(&c, "/acme/new-account", Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("location").unwrap(), loc);

    let r = h
        .post(
            &c,
            "/acme/new-account",
            Some(&json!({"onlyReturnExisting": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("location").unwrap(), loc);

    // With a kid instead of a jwk: malformed.
    c.kid = Some(loc.clone());
    let r = h.post(&c, "/acme/new-account", Some(&json!({}))).await;
    assert_eq!(r.problem(), "malformed");

    // Account: POST-as-GET, contact update, bad contacts, deactivation.
    let r = h.post(&c, &loc, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h
        .post(
            &c,
            &loc,
            Some(&json!({"contact": ["mailto:b@example.com"]})),
        )
        .await;
    assert_eq!(r.json()["contact"][0], "mailto:b@example.com");
    let r = h
        .post(&c, &loc, Some(&json!({"contact": ["tel:+15555"]})))
        .await;
    assert_eq!(r.problem(), "unsupportedContact");
    let r = h
        .post(
            &c,
            &loc,
            Some(&json!({"contact": ["mailto:not-an-address"]})),
        )
        .await;
    assert_eq!(r.problem(), "invalidContact");
    let r = h
        .post(&c, &loc, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.json()["status"], "deactivated");
    let r = h.post(&c, &loc, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.problem(), "unauthorized");
}

#[tokio::test]
async fn jws_rejections_at_the_edge() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let url = format!("{BASE}/acme/new-order");
    let payload = json!({"identifiers": [{"type": "dns", "value": "example.com"}]});

    // Content-Type
    let body = c.jws(&h.nonce(), &url, Some(&payload));
    let r = h
        .raw_post("/acme/new-order", "application/json", body)
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.problem(), "malformed");

    // Unknown nonce, and a nonce used twice; each answer has a fresh nonce.
    let body = c.jws("AAAAAAAAAAAAAAAAAAAAAA", &url, Some(&payload));
    let r = h
        .raw_post("/acme/new-order", "application/jose+json", body)
        .await;
    assert_eq!(r.problem(), "badNonce");
    assert!(r.header("replay-nonce").is_some());
    let n = h.nonce();
    let r = h
        .raw_post(
            "/acme/new-order",
            "application/jose+json",
            c.jws(&n, &url, Some(&payload)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = h
        .raw_post(
            "/acme/new-order",
            "application/jose+json",
            c.jws(&n, &url, Some(&payload)),
        )
        .await;
    assert_eq!(r.problem(), "badNonce");
    assert!(r.header("replay-nonce").is_some());

    // url header for another resource
    let body = c.jws(
        &h.nonce(),
        &format!("{BASE}/acme/new-account"),
        Some(&payload),
    );
    let r = h
        .raw_post("/acme/new-order", "application/jose+json", body)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.problem(), "unauthorized");

    // kid naming no account
    let mut ghost = Client::new();
    ghost.kid = Some(format!("{BASE}/acme/acct/doesnotexist"));
    let r = h.post(&ghost, "/acme/new-order", Some(&payload)).await;
    assert_eq!(r.problem(), "accountDoesNotExist");
    // kid of an account but signed with another key
    let mut impostor = Client::new();
    impostor.kid = c.kid.clone();
    let r = h.post(&impostor, "/acme/new-order", Some(&payload)).await;
    assert_eq!(r.problem(), "malformed");
    assert_eq!(r.json()["detail"], "JWS verification error");

    // alg none: badSignatureAlgorithm with the accepted list
    let p = b64::encode(
        json!({"alg": "none", "nonce": h.nonce(), "url": url, "kid": c.kid}).to_string(),
    );
    let body =
        json!({"protected": p, "payload": b64::encode(payload.to_string()), "signature": ""})
            .to_string();
    let r = h
        .raw_post("/acme/new-order", "application/jose+json", body)
        .await;
    assert_eq!(r.problem(), "badSignatureAlgorithm");
    assert!(r.json()["algorithms"]
        .as_array()
        .unwrap()
        .contains(&json!("ES256")));

    // not JSON, and too large
    let r = h
        .raw_post(
            "/acme/new-order",
            "application/jose+json",
            "{not json".into(),
        )
        .await;
    assert_eq!(r.problem(), "malformed");
    let r = h
        .raw_post(
            "/acme/new-order",
            "application/jose+json",
            "x".repeat(100_000),
        )
        .await;
    assert_eq!(r.problem(), "malformed");

    // GET on a POST-only resource, and an unknown path
    let r = h.get("/acme/new-order").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.problem(), "malformed");
    let r = h.get("/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.problem(), "malformed");
}

#[tokio::test]
async fn full_issuance_flow() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let names = ["www.example.com", "example.com"];
    let (order_url, order) = h.ready_order(&c, &names).await;
    assert_eq!(order["status"], "ready");
    let finalize = order["finalize"].as_str().unwrap().to_string();

    // A CSR for other names: badCSR; the order stays ready.
    let r = h
        .post(
            &c,
            &finalize,
            Some(&json!({"csr": csr_for(&["other.example.com"])})),
        )
        .await;
    assert_eq!(r.problem(), "badCSR");
    let r = h
        .post(&c, &finalize, Some(&json!({"csr": "!!notbase64"})))
        .await;
    assert_eq!(r.problem(), "badCSR");

    let r = h
        .post(&c, &finalize, Some(&json!({"csr": csr_for(&names)})))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let order = r.json();
    assert_eq!(order["status"], "valid");
    assert_eq!(r.header("location").unwrap(), order_url);
    let cert_url = order["certificate"].as_str().unwrap();

    let r = h.post(&c, cert_url, None).await;
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/pem-certificate-chain")
    );
    let pem = String::from_utf8(r.body).unwrap();
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(pem.ends_with(h.server.app.ra.ca_for_tests().chain_pem()));

    // Finalizing again: orderNotReady (403), the order stays valid.
    let r = h
        .post(&c, &finalize, Some(&json!({"csr": csr_for(&names)})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.problem(), "orderNotReady");

    // POST-as-GET with a payload is refused; GET is not allowed.
    let r = h.post(&c, &order_url, Some(&json!({}))).await;
    assert_eq!(r.problem(), "malformed");
    let r = h.get(&order_url[BASE.len()..]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // Another account may not read it.
    let mut other = Client::new();
    h.register(&mut other).await;
    let r = h.post(&other, &order_url, None).await;
    assert_eq!(r.problem(), "unauthorized");
    let r = h.post(&other, cert_url, None).await;
    assert_eq!(r.problem(), "unauthorized");
}

#[tokio::test]
async fn finalize_before_ready_is_order_not_ready() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let r = h
        .post(
            &c,
            "/acme/new-order",
            Some(&json!({"identifiers": [{"type": "dns", "value": "pending.example.com"}]})),
        )
        .await;
    assert_eq!(r.json()["status"], "pending");
    let finalize = r.json()["finalize"].as_str().unwrap().to_string();
    let r = h
        .post(
            &c,
            &finalize,
            Some(&json!({"csr": csr_for(&["pending.example.com"])})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.problem(), "orderNotReady");
}

#[tokio::test]
async fn concurrent_finalizes_issue_one_certificate() {
    let h = Arc::new(harness().await);
    let mut c = Client::new();
    h.register(&mut c).await;
    let c = Arc::new(c);
    for round in 0..5 {
        let name = format!("race{round}.example.com");
        let (_, order) = h.ready_order(&c, &[&name]).await;
        let finalize = order["finalize"].as_str().unwrap().to_string();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (h, c, finalize, name) = (h.clone(), c.clone(), finalize.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                let r = h
                    .post(&c, &finalize, Some(&json!({"csr": csr_for(&[&name])})))
                    .await;
                (r.status, r.json())
            }));
        }
        let mut ok = 0;
        let mut certs = std::collections::HashSet::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            if status == StatusCode::OK {
                ok += 1;
                certs.insert(body["certificate"].as_str().unwrap().to_string());
            } else {
                assert_eq!(body["type"], "urn:ietf:params:acme:error:orderNotReady");
            }
        }
        assert!(ok >= 1, "round {round}: no finalize succeeded");
        assert_eq!(certs.len(), 1, "round {round}: more than one certificate");
    }
}

#[tokio::test]
async fn wildcards_get_dns_challenges_only_and_bad_identifiers_are_subproblems() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let r = h
        .post(
            &c,
            "/acme/new-order",
            Some(&json!({"identifiers": [{"type": "dns", "value": "*.example.com"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_string();
    let a = h.post(&c, &authz_url, None).await.json();
    assert_eq!(a["identifier"]["value"], "example.com");
    assert_eq!(a["wildcard"], true);
    let types: Vec<&str> = a["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    // dns-account-01 is on by default, dns-persist-01 off.
    assert_eq!(types, ["dns-01", "dns-account-01"]);

    let r = h
        .post(
            &c,
            "/acme/new-order",
            Some(&json!({"identifiers": [
                {"type": "dns", "value": "good.example.com"},
                {"type": "dns", "value": "*.*.example.com"},
                {"type": "dns", "value": "foo..com"},
            ]})),
        )
        .await;
    assert_eq!(r.problem(), "rejectedIdentifier");
    let subs = r.json()["subproblems"].as_array().unwrap().clone();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0]["identifier"]["value"], "*.*.example.com");
    assert_eq!(
        subs[1]["type"],
        "urn:ietf:params:acme:error:rejectedIdentifier"
    );

    let r = h
        .post(
            &c,
            "/acme/new-order",
            Some(&json!({"identifiers": [{"type": "email", "value": "a@example.com"}]})),
        )
        .await;
    assert_eq!(r.problem(), "unsupportedIdentifier");
}

#[tokio::test]
async fn orders_list_is_paginated() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let mut created = Vec::new();
    for i in 0..5 {
        let r = h
            .post(
                &c,
                "/acme/new-order",
                Some(&json!({"identifiers": [{"type": "dns", "value": format!("o{i}.example.com")}]})),
            )
            .await;
        created.push(r.header("location").unwrap());
    }
    let acct = h.post(&c, c.kid.as_deref().unwrap(), None).await.json();
    let mut url = acct["orders"].as_str().unwrap().to_string();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let r = h.post(&c, &url, None).await;
        assert_eq!(r.status, StatusCode::OK);
        for o in r.json()["orders"].as_array().unwrap() {
            seen.push(o.as_str().unwrap().to_string());
        }
        let next = r
            .headers
            .get_all(header::LINK)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|v| v.ends_with("rel=\"next\""));
        match next {
            Some(link) => url = link[1..link.find('>').unwrap()].to_string(),
            None => break,
        }
    }
    assert_eq!(seen, created);
}

#[tokio::test]
async fn method_checks() {
    let h = harness().await;
    let r = h
        .send(
            Request::builder()
                .method(Method::PUT)
                .uri("/acme/new-account")
                .header(header::HOST, "localhost:14000")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.problem(), "malformed");
}

#[tokio::test]
async fn ip_identifier_certificate_has_no_common_name_and_aia_is_served() {
    use x509_cert::der::Decode;
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let r = h
        .post(
            &c,
            "/acme/new-order",
            Some(&json!({"identifiers": [{"type": "ip", "value": "192.0.2.7"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let order_url = r.header("location").unwrap();
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_string();
    let a = h.post(&c, &authz_url, None).await.json();
    let types: Vec<&str> = a["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["http-01", "tls-alpn-01"],
        "RFC 8738: no dns-01 for IPs"
    );
    let chall = a["challenges"][0]["url"].as_str().unwrap().to_string();
    h.post(&c, &chall, Some(&json!({}))).await;
    let order = h.post(&c, &order_url, None).await.json();
    assert_eq!(order["status"], "ready");

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![rcgen::SanType::IpAddress("192.0.2.7".parse().unwrap())];
    let csr = b64::encode(params.serialize_request(&key).unwrap().der());
    let r = h
        .post(
            &c,
            order["finalize"].as_str().unwrap(),
            Some(&json!({"csr": csr})),
        )
        .await;
    assert_eq!(
        r.json()["status"],
        "valid",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let pem = h
        .post(&c, r.json()["certificate"].as_str().unwrap(), None)
        .await
        .body;
    let pem = String::from_utf8(pem).unwrap();
    let end = pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let (_, der) = x509_cert::der::pem::decode_vec(&pem.as_bytes()[..end]).unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    assert!(cert.tbs_certificate.subject.0.is_empty(), "IP-only: no CN");

    // The AIA caIssuers URL is served: the intermediate in DER.
    let r = h.get("/acme/issuer-cert").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/pkix-cert")
    );
    assert_eq!(r.body, h.server.app.ra.ca_for_tests().intermediate_der());
}

impl Client {
    /// A client signing with an existing PKCS#8 P-256 key (e.g. a
    /// certificate's, for revocation by certificate key).
    fn from_pkcs8(pkcs8: &[u8]) -> Client {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap();
        let public = key.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": b64::encode(&public[1..33]), "y": b64::encode(&public[33..65]),
        });
        Client {
            key,
            jwk,
            kid: None,
        }
    }

    /// The inner JWS of a keyChange, signed by this (new) key.
    fn key_change_inner(
        &self,
        url: &str,
        account: &str,
        old_jwk: &Value,
        nonce: Option<&str>,
    ) -> Value {
        let mut protected = json!({"alg": "ES256", "jwk": self.jwk, "url": url});
        if let Some(n) = nonce {
            protected["nonce"] = json!(n);
        }
        let payload = b64::encode(json!({"account": account, "oldKey": old_jwk}).to_string());
        serde_json::from_str(&self.sign(protected, &payload)).unwrap()
    }
}

#[tokio::test]
async fn key_change_moves_the_account_to_the_new_key() {
    let h = harness().await;
    let mut old = Client::new();
    h.register(&mut old).await;
    let kid = old.kid.clone().unwrap();
    let url = format!("{BASE}/acme/key-change");
    let mut new = Client::new();

    // Refusals first: each leaves the account on its old key.
    let inner = new.key_change_inner(&format!("{BASE}/acme/new-order"), &kid, &old.jwk, None);
    assert_eq!(
        h.post(&old, &url, Some(&inner)).await.problem(),
        "malformed"
    );
    let inner = new.key_change_inner(&url, &kid, &old.jwk, Some(&h.nonce()));
    assert_eq!(
        h.post(&old, &url, Some(&inner)).await.problem(),
        "malformed"
    );
    let inner = new.key_change_inner(&url, &kid, &Client::new().jwk, None);
    let r = h.post(&old, &url, Some(&inner)).await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.json());
    let inner = new.key_change_inner(&url, &format!("{BASE}/acme/acct/other"), &old.jwk, None);
    assert_eq!(
        h.post(&old, &url, Some(&inner)).await.problem(),
        "unauthorized"
    );
    let mut tampered = new.key_change_inner(&url, &kid, &old.jwk, None);
    tampered["payload"] = json!(b64::encode(
        json!({"account": kid, "oldKey": new.jwk}).to_string()
    ));
    assert_eq!(
        h.post(&old, &url, Some(&tampered)).await.problem(),
        "malformed"
    );

    // Another account's key: 409 with that account's URL.
    let mut taken = Client::new();
    h.register(&mut taken).await;
    let inner = taken.key_change_inner(&url, &kid, &old.jwk, None);
    let r = h.post(&old, &url, Some(&inner)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.header("location"), taken.kid);

    // The real thing.
    let inner = new.key_change_inner(&url, &kid, &old.jwk, None);
    let r = h.post(&old, &url, Some(&inner)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["key"], new.jwk);

    // The old key no longer signs for the account; the new one does.
    let r = h.post(&old, &kid, None).await;
    assert_eq!(r.json()["detail"], "JWS verification error");
    new.kid = Some(kid.clone());
    assert_eq!(h.post(&new, &kid, None).await.status, StatusCode::OK);
    new.kid = None;
    let r = h
        .post(
            &new,
            "/acme/new-account",
            Some(&json!({"onlyReturnExisting": true})),
        )
        .await;
    assert_eq!(r.header("location"), Some(kid));
}

/// Two instances on one PostgreSQL database. Once A has read an account,
/// its requests take the one-round-trip path (the remembered key checks
/// the signature, then the nonce is spent and the account read together):
/// a nonce spent at A is refused at B, a key rollover made at B is seen at
/// A at once (old key refused, new key accepted), and so is a deactivation.
#[tokio::test]
async fn a_remembered_account_is_read_fresh_on_every_request_in_a_fleet() {
    let Some((_db, a, b)) = two_instances().await else {
        return;
    };
    let mut old = Client::new();
    a.register(&mut old).await;
    let kid = old.kid.clone().unwrap();
    let path = &kid[BASE.len()..];
    for _ in 0..2 {
        assert_eq!(a.post(&old, &kid, None).await.status, StatusCode::OK);
    }
    let body = old.jws(&a.nonce(), &kid, None);
    let r = a
        .raw_post(path, "application/jose+json", body.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = b
        .raw_post(path, "application/jose+json", body.clone())
        .await;
    assert_eq!(r.problem(), "badNonce");
    let r = a.raw_post(path, "application/jose+json", body).await;
    assert_eq!(r.problem(), "badNonce");

    let mut new = Client::new();
    let url = format!("{BASE}/acme/key-change");
    let inner = new.key_change_inner(&url, &kid, &old.jwk, None);
    assert_eq!(
        b.post(&old, &url, Some(&inner)).await.status,
        StatusCode::OK
    );
    let r = a.post(&old, &kid, None).await;
    assert_eq!(r.json()["detail"], "JWS verification error");
    new.kid = Some(kid.clone());
    for _ in 0..2 {
        assert_eq!(a.post(&new, &kid, None).await.status, StatusCode::OK);
    }

    let r = b
        .post(&new, &kid, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a.post(&new, &kid, None).await;
    assert_eq!(r.problem(), "unauthorized");
    assert_eq!(r.json()["detail"], "the account is deactivated");
}

/// Two instances on one PostgreSQL database, each having read the account:
/// the order, authorization or certificate a request's URL names is read
/// with its nonce, so it must be as current as the account (a change made
/// at the other instance just before shows), and still only the account's
/// own.
#[tokio::test]
async fn records_read_with_the_nonce_are_current_and_the_accounts_own_in_a_fleet() {
    let Some((_db, a, b)) = two_instances().await else {
        return;
    };
    let mut c = Client::new();
    a.register(&mut c).await;
    let kid = c.kid.clone().unwrap();
    for h in [&a, &b] {
        assert_eq!(h.post(&c, &kid, None).await.status, StatusCode::OK);
    }
    let r = a
        .post(
            &c,
            "/acme/new-order",
            Some(&json!({"identifiers": [{"type": "dns", "value": "fleet.example.com"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let order_url = r.header("location").unwrap();
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_owned();
    let authz = b.post(&c, &authz_url, None).await.json();
    assert_eq!(authz["status"], "pending");
    assert_eq!(
        b.post(&c, &order_url, None).await.json()["status"],
        "pending"
    );
    // Validated at A, seen at B at once, through every URL naming it.
    assert_eq!(a.answer_http01(&c, &authz).await.json()["status"], "valid");
    assert_eq!(b.post(&c, &authz_url, None).await.json()["status"], "valid");
    let chall = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["type"] == "http-01")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(b.post(&c, &chall, None).await.json()["status"], "valid");
    let order = b.post(&c, &order_url, None).await.json();
    assert_eq!(order["status"], "ready");
    // Finalized at B, read at A.
    let finalize = order["finalize"].as_str().unwrap();
    let csr = json!({"csr": csr_for(&["fleet.example.com"])});
    let r = b.post(&c, finalize, Some(&csr)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let cert_url = r.json()["certificate"].as_str().unwrap().to_owned();
    let order = a.post(&c, &order_url, None).await.json();
    assert_eq!(order["status"], "valid");
    assert_eq!(order["certificate"], cert_url.as_str());
    let r = a.post(&c, &cert_url, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    // Deactivated at B, seen at A.
    let r = b
        .post(&c, &authz_url, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.json()["status"], "deactivated");
    assert_eq!(
        a.post(&c, &authz_url, None).await.json()["status"],
        "deactivated"
    );

    // Another account, known at B too: none of them are its.
    let mut other = Client::new();
    b.register(&mut other).await;
    let other_kid = other.kid.clone().unwrap();
    assert_eq!(
        b.post(&other, &other_kid, None).await.status,
        StatusCode::OK
    );
    for url in [&order_url, &authz_url, &chall, &cert_url] {
        assert_eq!(
            b.post(&other, url, None).await.problem(),
            "unauthorized",
            "{url}"
        );
    }
    // Records that do not exist.
    for url in [
        "/acme/order/nothere",
        "/acme/authz/nothere",
        "/acme/cert/nothere",
    ] {
        let r = b.post(&other, &format!("{BASE}{url}"), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{url}");
    }
}

/// Two instances on one fresh PostgreSQL database, or None without a test
/// cluster. Bind the database to a name declared first, so that it is
/// dropped after the instances.
async fn two_instances() -> Option<(crate::test_support::pg::TestDatabase, Harness, Harness)> {
    let db = crate::test_support::pg::fresh_database().await?;
    let on_db = |c: &mut Config| c.store.url = Some(db.url().to_owned());
    let a = harness_with(on_db).await;
    let b = harness_with(on_db).await;
    Some((db, a, b))
}

/// Issues a certificate for `names` to `c`; returns its DER and the
/// certificate key as PKCS#8.
async fn issue(h: &Harness, c: &Client, names: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let (_, order) = h.ready_order(c, names).await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = b64::encode(params.serialize_request(&key).unwrap().der());
    let r = h
        .post(
            c,
            order["finalize"].as_str().unwrap(),
            Some(&json!({"csr": csr})),
        )
        .await;
    let pem = String::from_utf8(
        h.post(c, r.json()["certificate"].as_str().unwrap(), None)
            .await
            .body,
    )
    .unwrap();
    let end = pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let (_, der) = x509_cert::der::pem::decode_vec(&pem.as_bytes()[..end]).unwrap();
    (der, key.serialize_der())
}

#[tokio::test]
async fn revocation_rules() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let url = "/acme/revoke-cert";
    let (der, cert_key) = issue(&h, &c, &["revoke.example.com"]).await;
    let body = |reason: Option<i64>| {
        let mut v = json!({"certificate": b64::encode(&der)});
        if let Some(r) = reason {
            v["reason"] = json!(r);
        }
        v
    };

    // Reason 7 is unassigned; 11 does not exist.
    for bad in [7, 8, 11, -1] {
        let r = h.post(&c, url, Some(&body(Some(bad)))).await;
        assert_eq!(
            r.problem(),
            "badRevocationReason",
            "reason {bad}: {}",
            r.json()
        );
    }
    // Another account without authorizations for the name.
    let mut stranger = Client::new();
    h.register(&mut stranger).await;
    let r = h.post(&stranger, url, Some(&body(None))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.problem(), "unauthorized");
    // A key that is not the certificate's, signing with jwk.
    let r = h.post(&Client::new(), url, Some(&body(None))).await;
    assert_eq!(r.problem(), "unauthorized");
    // A certificate this CA never issued.
    let (other_der, _) = {
        let h2 = harness().await;
        let mut c2 = Client::new();
        h2.register(&mut c2).await;
        issue(&h2, &c2, &["elsewhere.example.com"]).await
    };
    let r = h
        .post(
            &c,
            url,
            Some(&json!({"certificate": b64::encode(&other_der)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The ordering account revokes; a second revocation is alreadyRevoked.
    let r = h.post(&c, url, Some(&body(Some(4)))).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.header("replay-nonce").is_some());
    let r = h.post(&c, url, Some(&body(Some(1)))).await;
    assert_eq!(r.problem(), "alreadyRevoked");

    // Revocation by the certificate's own key (jwk).
    let (der2, key2) = issue(&h, &c, &["bykey.example.com"]).await;
    let by_key = Client::from_pkcs8(&key2);
    let r = h
        .post(
            &by_key,
            url,
            Some(&json!({"certificate": b64::encode(&der2), "reason": 1})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let _ = cert_key;

    // An account holding valid authorizations for every name may revoke.
    let (der3, _) = issue(&h, &c, &["shared.example.com"]).await;
    let mut holder = Client::new();
    h.register(&mut holder).await;
    let r = h
        .post(
            &holder,
            url,
            Some(&json!({"certificate": b64::encode(&der3)})),
        )
        .await;
    assert_eq!(r.problem(), "unauthorized");
    h.ready_order(&holder, &["shared.example.com"]).await;
    let r = h
        .post(
            &holder,
            url,
            Some(&json!({"certificate": b64::encode(&der3)})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let stored = h
        .server
        .app
        .ra
        .store_for_tests()
        .certificate_by_serial(&crate::ca::serial_hex(
            x509_cert::Certificate::from_der(&der)
                .unwrap()
                .tbs_certificate
                .serial_number
                .as_bytes(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revoked.unwrap().reason.code(), 4);
}

#[tokio::test]
async fn bad_path_segments_and_queries_get_problem_documents() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    // Not valid percent-encoded UTF-8, and an id outside our alphabet.
    for path in [
        "/acme/order/%FF%FE",
        "/acme/order/a.b",
        "/acme/chall/%C0/http-01",
    ] {
        let r = h.post(&c, path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.problem(), "malformed");
    }
    let acct = h.post(&c, c.kid.as_deref().unwrap(), None).await.json();
    let orders = acct["orders"].as_str().unwrap().to_string();
    for q in ["?cursor=x", "?cursor=-1", "?other=1"] {
        let r = h.post(&c, &format!("{orders}{q}"), None).await;
        assert_eq!(r.problem(), "malformed", "{q}");
    }
    assert_eq!(
        h.post(&c, &format!("{orders}?cursor=0"), None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn authorization_and_account_deactivation() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let new_order = |name: &'static str| json!({"identifiers": [{"type": "dns", "value": name}]});

    // A pending authorization is deactivated; its order becomes invalid.
    let r = h
        .post(&c, "/acme/new-order", Some(&new_order("deact.example.com")))
        .await;
    let order_url = r.header("location").unwrap();
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_string();
    let r = h
        .post(&c, &authz_url, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["status"], "deactivated");
    assert_eq!(
        h.post(&c, &order_url, None).await.json()["status"],
        "invalid"
    );
    // Twice: refused. Another status: refused.
    let r = h
        .post(&c, &authz_url, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.problem(), "malformed");
    let (_, ready) = h.ready_order(&c, &["valid.example.com"]).await;
    let valid_authz = ready["authorizations"][0].as_str().unwrap().to_string();
    let r = h
        .post(&c, &valid_authz, Some(&json!({"status": "valid"})))
        .await;
    assert_eq!(r.problem(), "malformed");
    // A valid authorization may be deactivated too.
    let r = h
        .post(&c, &valid_authz, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.json()["status"], "deactivated");
    // Another account may not.
    let mut other = Client::new();
    h.register(&mut other).await;
    let r = h
        .post(&c, "/acme/new-order", Some(&new_order("mine.example.com")))
        .await;
    let mine = r.json()["authorizations"][0].as_str().unwrap().to_string();
    let r = h
        .post(&other, &mine, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.problem(), "unauthorized");

    // Deactivating the account deactivates its pending authorizations.
    let kid = c.kid.clone().unwrap();
    let r = h
        .post(&c, &kid, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.json()["status"], "deactivated");
    let a = h
        .server
        .app
        .ra
        .store_for_tests()
        .authz_by_id(&crate::model::AuthzId(
            mine.rsplit('/').next().unwrap().to_string(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.state, crate::model::AuthzState::Deactivated);
}

#[tokio::test]
async fn an_invalid_host_is_never_reflected() {
    let h = harness().await;
    let r = h
        .send(
            Request::get("/acme/new-nonce")
                .header(header::HOST, "evil.example/<x>")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(r.header("link").is_none(), "{:?}", r.header("link"));
    let r = h
        .send(
            Request::get("/directory")
                .header(header::HOST, "evil.example/<x>")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.problem(), "malformed");
}

mod lifecycle;
mod metrics;

mod pebble;

/// The draft challenge types: offered where the config enables them, with
/// their JSON members (dns-persist-01: no token, `accounturi`,
/// `issuer-domain-names`), and validated through the challenge URL.
#[tokio::test]
async fn dns_account_and_dns_persist_challenges() {
    let h = harness_with(|c| {
        c.validation.dns_persist_01 = true;
        c.acme.caa_identities = vec!["ca.test".into()];
        c.validation.dns_persist_issuer_domain_names = vec!["ca.test".into(), "ca.example".into()];
    })
    .await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let account_url = c.kid.clone().unwrap();
    let order = |value: &str| json!({"identifiers": [{"type": "dns", "value": value}]});
    let challenges = |a: &Value| -> Vec<Value> { a["challenges"].as_array().unwrap().clone() };

    let r = h
        .post(&c, "/acme/new-order", Some(&order("*.example.com")))
        .await;
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_string();
    let a = h.post(&c, &authz_url, None).await.json();
    let types: Vec<String> = challenges(&a)
        .iter()
        .map(|c| c["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["dns-01", "dns-account-01", "dns-persist-01"]);

    let r = h
        .post(&c, "/acme/new-order", Some(&order("www.example.com")))
        .await;
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_string();
    let a = h.post(&c, &authz_url, None).await.json();
    let all = challenges(&a);
    assert_eq!(all.len(), 5);
    let token = all[0]["token"].as_str().unwrap().to_owned();
    for ch in &all {
        match ch["type"].as_str().unwrap() {
            "dns-persist-01" => {
                assert!(ch.get("token").is_none(), "{ch}");
                assert_eq!(ch["accounturi"], account_url.as_str());
                assert_eq!(ch["issuer-domain-names"], json!(["ca.test", "ca.example"]));
            }
            _ => {
                assert_eq!(ch["token"], token.as_str(), "{ch}");
                assert!(ch.get("accounturi").is_none(), "{ch}");
                assert!(ch.get("issuer-domain-names").is_none(), "{ch}");
            }
        }
    }
    // Answering dns-persist-01 (always-valid here) settles the authorization.
    let persist = all.iter().find(|c| c["type"] == "dns-persist-01").unwrap();
    let url = persist["url"].as_str().unwrap();
    let r = h.post(&c, url, Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["status"], "valid");
    assert!(r.json().get("token").is_none());
    let a = h.post(&c, &authz_url, None).await.json();
    assert_eq!(a["status"], "valid");

    // An authorization validated by dns-persist-01 is not reused: the next
    // order for the name gets a new one.
    let r = h
        .post(&c, "/acme/new-order", Some(&order("www.example.com")))
        .await;
    let again = r.json()["authorizations"][0].as_str().unwrap().to_string();
    assert_ne!(again, authz_url);

    // IP identifiers get neither.
    let r = h
        .post(
            &c,
            "/acme/new-order",
            Some(&json!({"identifiers": [{"type": "ip", "value": "192.0.2.7"}]})),
        )
        .await;
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_string();
    let a = h.post(&c, &authz_url, None).await.json();
    let types: Vec<String> = challenges(&a)
        .iter()
        .map(|c| c["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["http-01", "tls-alpn-01"]);
}

/// Both draft types can be switched off, and dns-persist-01 cannot be on
/// without issuer domain names in the form the draft requires.
#[tokio::test]
async fn draft_challenges_follow_the_config() {
    let h = harness_with(|c| c.validation.dns_account_01 = false).await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let r = h
        .post(
            &c,
            "/acme/new-order",
            Some(&json!({"identifiers": [{"type": "dns", "value": "*.example.com"}]})),
        )
        .await;
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_string();
    let a = h.post(&c, &authz_url, None).await.json();
    assert_eq!(a["challenges"].as_array().unwrap().len(), 1);
    assert_eq!(a["challenges"][0]["type"], "dns-01");
    // A challenge URL of a type not offered is not found.
    let url = a["challenges"][0]["url"]
        .as_str()
        .unwrap()
        .replace("dns-01", "dns-persist-01");
    let r = h.post(&c, &url, Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let mut config = Config::default();
    config.validation.dns_persist_01 = true;
    let e = config.validate().unwrap_err();
    assert!(e.contains("needs issuer domain names"), "{e}");
    config.acme.caa_identities = vec!["CA.test".into()];
    let e = config.validate().unwrap_err();
    assert!(e.contains("\"CA.test\""), "{e}");
    config.validation.dns_persist_issuer_domain_names =
        (0..11).map(|i| format!("ca{i}.test")).collect();
    let e = config.validate().unwrap_err();
    assert!(e.contains("at most 10"), "{e}");
    config.validation.dns_persist_issuer_domain_names = vec!["ca.test".into()];
    config.validate().unwrap();
}
mod chaos;
mod ratelimits;
