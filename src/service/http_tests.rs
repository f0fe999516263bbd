//! The operator service through its router: roles, every endpoint, and the
//! errors the API promises.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::config::{Approval, ServiceProfileConfig, TokenConfig};
use super::test_harness::{harness, Harness as H, ADMIN, AGENT, AGENT2, ALICE, BOB, R};
use crate::model::service::Role;

impl R {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

impl H {
    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> R {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    async fn issue(&self, token: &str, body: Value) -> R {
        self.call("POST", "/certs", Some(token), Some(body)).await
    }

    /// Issues through POST /certs and gives the new certificate's serial.
    async fn issued_serial(&self, token: &str, body: Value) -> String {
        self.issue(token, body).await.json()["serial_number"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// A harness whose "server" profile hands keys out only at issuance (a
/// download window of zero).
async fn harness_without_download_window() -> H {
    harness(|c| {
        c.service
            .profiles
            .get_mut("server")
            .unwrap()
            .key_download_window = std::time::Duration::ZERO;
    })
    .await
}

fn server_cert(entity: &str, name: &str) -> Value {
    json!({"entity_id": entity, "profile": "server", "names": [name],
           "key_type": "ec", "key_size": 256})
}

#[tokio::test]
async fn tokens_and_roles() {
    let h = harness(|_| {}).await;
    let r = h.call("GET", "/profiles", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get(header::WWW_AUTHENTICATE).is_some());
    assert_eq!(
        r.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/problem+json"
    );
    let r = h
        .call("GET", "/profiles", Some("wrong-token-0000000000"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for t in [ADMIN, AGENT, ALICE] {
        assert_eq!(
            h.call("GET", "/profiles", Some(t), None).await.status,
            StatusCode::OK
        );
    }
    // Agents approve; they do not request.
    let r = h.issue(AGENT, server_cert("e1", "a.example.com")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json());
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("an agent token may not"),
        "{}",
        r.json()
    );
    // Requesters do not revoke.
    let r = h.issue(ALICE, server_cert("e1", "a.example.com")).await;
    let serial = r.json()["serial_number"].as_str().unwrap().to_owned();
    let r = h
        .call(
            "POST",
            &format!("/certs/{serial}/revoke"),
            Some(ALICE),
            Some(json!({"reason": "superseded"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .starts_with("a requester token may not"));
}

#[tokio::test]
async fn profiles_are_listed_with_their_parameters() {
    let h = harness(|_| {}).await;
    let v = h.call("GET", "/profiles", Some(ALICE), None).await.json();
    let names: Vec<&str> = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["device", "server"]);
    let d = h
        .call("GET", "/profiles/device", Some(ALICE), None)
        .await
        .json();
    assert_eq!(d["approval"], "manual");
    assert_eq!(d["required"], json!(["common_name"]));
    assert_eq!(d["rsa_sizes"], json!([2048, 3072, 4096]));
    assert_eq!(
        h.call("GET", "/profiles/nope", Some(ALICE), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn issue_list_show_and_the_errors_of_issuance() {
    let h = harness(|_| {}).await;
    let r = h
        .issue(ALICE, server_cert("backend-1", "api.example.com"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let v = r.json();
    assert_eq!(v["status"], "issued");
    let serial = v["serial_number"].as_str().unwrap().to_owned();
    // Shown to its requester and to agents; not to another requester.
    let show = h
        .call("GET", &format!("/certs/{serial}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(show["entity_id"], "backend-1");
    assert_eq!(show["common_name"], "api.example.com");
    assert_eq!(show["status"], "valid");
    assert_eq!(show["source"], "service");
    assert!(show["certificate"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        h.call("GET", &format!("/certs/{serial}"), Some(AGENT), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.call("GET", &format!("/certs/{serial}"), Some(BOB), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Upper-case serials are found too.
    assert_eq!(
        h.call(
            "GET",
            &format!("/certs/{}", serial.to_uppercase()),
            Some(ALICE),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    // Filters.
    h.issue(ALICE, server_cert("backend-2", "web.example.com"))
        .await;
    h.issue(BOB, server_cert("backend-3", "bob.example.com"))
        .await;
    let h = &h;
    let list = |q: &'static str, t: &'static str| async move {
        h.call("GET", &format!("/certs{q}"), Some(t), None)
            .await
            .json()
    };
    assert_eq!(list("", ALICE).await["total"], 2);
    assert_eq!(list("", BOB).await["total"], 1);
    assert_eq!(list("", ADMIN).await["total"], 3);
    assert_eq!(list("?entity=backend-2", ADMIN).await["total"], 1);
    assert_eq!(
        list("?common_name=bob.example.com", ADMIN).await["total"],
        1
    );
    let by_serial = h
        .call("GET", &format!("/certs?serial={serial}"), Some(ADMIN), None)
        .await
        .json();
    assert_eq!(by_serial["total"], 1);
    assert_eq!(list("?status=revoked", ADMIN).await["total"], 0);
    assert_eq!(
        list("?limit=1&offset=1", ADMIN).await["certificates"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        list("?expiring_before=2000-01-01T00:00:00Z", ADMIN).await["total"],
        0
    );
    let r = h
        .call("GET", "/certs?status=bogus", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h.call("GET", "/certs?color=red", Some(ADMIN), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Errors of issuance.
    let r = h.call("POST", "/certs", Some(ALICE), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h
        .call(
            "POST",
            "/certs",
            Some(ALICE),
            Some(json!({"entity_id": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for (body, want) in [
        (
            json!({"entity_id": "x", "profile": "nope", "names": ["a.example.com"], "key_type": "ec", "key_size": 256}),
            "profile",
        ),
        (
            json!({"entity_id": "x", "profile": "server", "names": ["a.example.com"], "key_type": "rsa", "key_size": 1024}),
            "1024",
        ),
        (
            json!({"entity_id": "x", "profile": "server", "names": ["a.example.com"], "key_type": "dsa", "key_size": 2048}),
            "dsa",
        ),
        (
            json!({"entity_id": "x", "profile": "server", "key_type": "ec", "key_size": 256, "common_name": "c"}),
            "names",
        ),
        (
            json!({"entity_id": "x", "profile": "server", "names": ["bad..name"], "key_type": "ec", "key_size": 256}),
            "bad..name",
        ),
        (
            json!({"entity_id": "x y", "profile": "server", "names": ["a.example.com"], "key_type": "ec", "key_size": 256}),
            "entity_id",
        ),
        (
            json!({"entity_id": "x", "profile": "server", "names": ["a.example.com"], "key_type": "ec", "key_size": 256, "ttl": 99999999}),
            "ttl",
        ),
    ] {
        let r = h.issue(ALICE, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let detail = r.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(want), "{body}: {detail}");
    }
}

#[tokio::test]
async fn acme_certificates_are_listed_too() {
    let h = harness(|_| {}).await;
    // Issue one through ACME (always-valid), with the ACME router.
    let acme = crate::http::router(h.server.app.clone());
    let _ = acme; // the ACME flow itself is covered by http::tests
    let store = h.server.app.ra().store_for_tests().clone();
    let account = crate::model::Account {
        id: crate::model::AccountId::random(),
        status: crate::model::AccountStatus::Valid,
        jwk: "{}".into(),
        thumbprint: "t-acme-listed".into(),
        contact: vec![],
        tos_agreed: true,
        created_at: 1,
    };
    store.create_account(&account, None).await.unwrap();
    let order = crate::model::Order {
        id: crate::model::OrderId::random(),
        account_id: account.id.clone(),
        identifiers: vec![crate::protocol::Identifier::dns("acme.example.com")],
        authz_ids: vec![],
        expires: i64::MAX / 2,
        not_before: None,
        not_after: None,
        processing_until: None,
        cert_id: None,
        error: None,
        created_at: 1,
        profile: "classic".into(),
        replaces: None,
    };
    store.create_order(&order, &[], None).await.unwrap();
    let cert = crate::model::Certificate {
        id: crate::model::CertId::random(),
        serial: "4acafe".into(),
        account_id: account.id.clone(),
        order_id: None,
        der: vec![0x30, 0x00],
        not_before: 1,
        not_after: i64::MAX / 2,
        issued_at: 2,
        revoked: None,
        common_name: Some("acme.example.com".into()),
    };
    store.store_certificate(&cert, &order.id).await.unwrap();
    let v = h
        .call(
            "GET",
            "/certs?common_name=acme.example.com",
            Some(AGENT),
            None,
        )
        .await
        .json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["certificates"][0]["source"], "acme");
    // Requesters see only their own service certificates.
    let v = h.call("GET", "/certs", Some(ALICE), None).await.json();
    assert_eq!(v["total"], 0);
}

/// Unzips an archive into name → bytes.
fn unzip(zip: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    super::package::read_back(zip)
        .into_iter()
        .map(|(name, _, _, _, data)| (name, data))
        .collect()
}

#[tokio::test]
async fn download_tokens_are_single_use_and_bound_to_one_certificate() {
    let h =
        harness(|c| c.service.download_token_lifetime = std::time::Duration::from_secs(2)).await;
    let s1 = h
        .issued_serial(ALICE, server_cert("e", "one.example.com"))
        .await;
    let s2 = h
        .issued_serial(ALICE, server_cert("e", "two.example.com"))
        .await;
    let token = |serial: String, body: Option<Value>| {
        let h = &h;
        async move {
            h.call(
                "POST",
                &format!("/certs/{serial}/download-token"),
                Some(ALICE),
                body,
            )
            .await
        }
    };
    let t = token(s1.clone(), None).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bound to its certificate.
    let r = h
        .call(
            "GET",
            &format!("/certs/{s2}/download?token={t}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // That attempt spent it.
    let r = h
        .call(
            "GET",
            &format!("/certs/{s1}/download?token={t}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let t = token(s1.clone(), None).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            "GET",
            &format!("/certs/{s1}/download?token={t}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/zip"
    );
    let files = unzip(&r.body);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        vec!["ca.pem", "cert.pem", "key.pem"]
    );
    // The key is the certificate's.
    let key_pem = String::from_utf8(files["key.pem"].clone()).unwrap();
    let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
    let (_, cert_der) = x509_cert::der::pem::decode_vec(&files["cert.pem"]).unwrap();
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(&cert_der).unwrap();
    assert_eq!(
        key.public_key_raw(),
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
    );
    // Used once: gone.
    let r = h
        .call(
            "GET",
            &format!("/certs/{s1}/download?token={t}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Expired.
    let t = token(s1.clone(), None).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = h
        .call(
            "GET",
            &format!("/certs/{s1}/download?token={t}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Without a token; another requester cannot get one.
    let r = h
        .call("GET", &format!("/certs/{s1}/download"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .call(
            "POST",
            &format!("/certs/{s1}/download-token"),
            Some(BOB),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // PKCS#12 needs a password; with one it is a PFX.
    let r = token(s1.clone(), Some(json!({"format": "p12"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let t = token(
        s1.clone(),
        Some(json!({"format": "p12", "password": "s3cret"})),
    )
    .await
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            "GET",
            &format!("/certs/{s1}/download?token={t}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/x-pkcs12"
    );
    assert_eq!(r.body[0], 0x30);
    let r = token(s1.clone(), Some(json!({"format": "tar"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn keys_outside_the_download_window_are_not_handed_out() {
    let h = harness_without_download_window().await;
    let serial = h
        .issued_serial(ALICE, server_cert("e", "late.example.com"))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let t = h
        .call(
            "POST",
            &format!("/certs/{serial}/download-token"),
            Some(ALICE),
            None,
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            "GET",
            &format!("/certs/{serial}/download?token={t}"),
            None,
            None,
        )
        .await;
    let files = unzip(&r.body);
    assert_eq!(files.keys().collect::<Vec<_>>(), vec!["ca.pem", "cert.pem"]);
    let r = h
        .call(
            "POST",
            &format!("/certs/{serial}/download-token"),
            Some(ALICE),
            Some(json!({"format": "p12", "password": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn manual_approval_by_an_agent() {
    let h = harness(|_| {}).await;
    let body = json!({"entity_id": "thing-42", "profile": "device", "common_name": "thing-42",
                      "key_type": "rsa", "key_size": 2048});
    let r = h.issue(ALICE, body.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["status"], "pending");
    let pending = h
        .call("GET", "/requests?status=pending", Some(AGENT), None)
        .await
        .json();
    assert_eq!(pending["total"], 1);
    // The requester cannot approve; an agent can, once.
    let r = h
        .call(
            "POST",
            &format!("/requests/{id}/approve"),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .call(
            "POST",
            &format!("/requests/{id}/approve"),
            Some(AGENT),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["status"], "issued");
    assert_eq!(r.json()["decided_by"], "ann");
    let serial = r.json()["serial"].as_str().unwrap().to_owned();
    let r = h
        .call(
            "POST",
            &format!("/requests/{id}/approve"),
            Some(AGENT2),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let cert = h
        .call("GET", &format!("/certs/{serial}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(cert["common_name"], "thing-42");
    // Rejection, with its reason; not twice.
    let id2 = h.issue(BOB, body).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            "POST",
            &format!("/requests/{id2}/reject"),
            Some(AGENT),
            Some(json!({"reason": "unknown device"})),
        )
        .await;
    assert_eq!(r.json()["status"], "rejected");
    assert_eq!(r.json()["reason"], "unknown device");
    let r = h
        .call(
            "POST",
            &format!("/requests/{id2}/reject"),
            Some(AGENT),
            Some(json!({"reason": "again"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = h
        .call(
            "POST",
            &format!("/requests/{id2}/reject"),
            Some(AGENT),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Requesters see only their requests.
    assert_eq!(
        h.call("GET", &format!("/requests/{id2}"), Some(ALICE), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.call("GET", "/requests", Some(BOB), None).await.json()["total"],
        1
    );
    assert_eq!(
        h.call("GET", "/requests?status=nope", Some(BOB), None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn revoke_with_any_spelling_of_the_reason_reaches_ocsp_and_crl() {
    let h = harness(|_| {}).await;
    let serial = h
        .issued_serial(ALICE, server_cert("e", "rv.example.com"))
        .await;
    let r = h
        .call(
            "POST",
            &format!("/certs/{serial}/revoke"),
            Some(AGENT),
            Some(json!({"reason": "Key Compromise"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["status"], "revoked");
    assert_eq!(r.json()["revocation_reason"], "keyCompromise");
    let r = h
        .call(
            "POST",
            &format!("/certs/{serial}/revoke"),
            Some(AGENT),
            Some(json!({"reason": "superseded"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = h
        .call(
            "POST",
            &format!("/certs/{serial}/revoke"),
            Some(ADMIN),
            Some(json!({"reason": "bored"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The CRL lists it.
    let crl = h.server.status.as_ref().unwrap();
    let _ = crl;
    let revoked = h
        .server
        .app
        .ra()
        .store_for_tests()
        .revoked_certificates(0)
        .await
        .unwrap();
    assert!(revoked
        .iter()
        .any(|r| r.serial == serial && r.revocation.reason.code() == 1));
    assert_eq!(
        h.call("GET", "/certs?status=revoked", Some(ADMIN), None)
            .await
            .json()["total"],
        1
    );
}

#[tokio::test]
async fn renewal_only_in_its_window_and_the_old_one_is_superseded() {
    let h = harness(|c| {
        let p = c.service.profiles.get_mut("server").unwrap();
        p.validity = std::time::Duration::from_secs(7200);
        p.renew_before = std::time::Duration::from_secs(7199);
        c.service.profiles.insert(
            "longer".into(),
            ServiceProfileConfig {
                validity: std::time::Duration::from_secs(7200),
                renew_before: std::time::Duration::from_secs(60),
                approval: Approval::Auto,
                ..Default::default()
            },
        );
    })
    .await;
    let serial = h
        .issued_serial(ALICE, server_cert("e", "rn.example.com"))
        .await;
    let r = h
        .call("POST", &format!("/certs/{serial}/renew"), Some(ALICE), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let new = r.json()["serial_number"].as_str().unwrap().to_owned();
    assert_ne!(new, serial);
    let old = h
        .call("GET", &format!("/certs/{serial}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(old["status"], "revoked");
    assert_eq!(old["revocation_reason"], "superseded");
    assert_eq!(old["renewed_to"], new.as_str());
    let fresh = h
        .call("GET", &format!("/certs/{new}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(fresh["status"], "valid");
    assert_eq!(fresh["common_name"], "rn.example.com");
    // Not twice; not outside the window.
    let r = h
        .call("POST", &format!("/certs/{serial}/renew"), Some(ALICE), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let body = json!({"entity_id": "e", "profile": "longer", "names": ["l.example.com"], "key_type": "ec", "key_size": 384});
    let s = h.issued_serial(ALICE, body).await;
    let r = h
        .call("POST", &format!("/certs/{s}/renew"), Some(ALICE), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("window opens"));
}

fn csr_pem(name: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[tokio::test]
async fn csr_upload_makes_a_batch() {
    let h = harness(|_| {}).await;
    let pem = format!("{}{}", csr_pem("c1.example.com"), csr_pem("c2.example.com"));
    let r = h
        .call(
            "POST",
            "/csr",
            Some(ALICE),
            Some(json!({"profile": "server", "entity_id": "fleet", "name": "two", "pem": pem})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let batch = r.json()["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["requests"].as_array().unwrap().len(), 2);
    let b = h
        .call("GET", &format!("/batches/{batch}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(b["size"], 2);
    assert_eq!(b["issued"], 2);
    assert_eq!(
        h.call("GET", &format!("/batches/{batch}"), Some(BOB), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The batch's certificates as one zip.
    let r = h
        .call(
            "GET",
            &format!("/batches/{batch}/download"),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let files = unzip(&r.body);
    assert_eq!(files.len(), 3, "{:?}", files.keys());
    assert!(files.contains_key("ca.pem"));
    for req in b["requests"].as_array().unwrap() {
        assert!(files.contains_key(&format!("{}.pem", req["serial"].as_str().unwrap())));
    }
    assert_eq!(
        h.call(
            "GET",
            &format!("/batches/{batch}/download"),
            Some(BOB),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // CSR certificates have no key to hand out.
    let serial = b["requests"][0]["serial"].as_str().unwrap().to_owned();
    let r = h
        .call(
            "POST",
            &format!("/certs/{serial}/download-token"),
            Some(ALICE),
            Some(json!({"format": "p12", "password": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // A bad CSR among good ones: nothing is created, the detail says which.
    let bad = format!(
        "{}-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n",
        csr_pem("ok.example.com")
    );
    let r = h
        .call(
            "POST",
            "/csr",
            Some(ALICE),
            Some(json!({"profile": "server", "entity_id": "fleet", "pem": bad})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["detail"].as_str().unwrap().contains("CSR 2"),
        "{}",
        r.json()
    );
    let r = h
        .call(
            "POST",
            "/csr",
            Some(ALICE),
            Some(json!({"profile": "server", "entity_id": "fleet", "pem": "nothing"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let _ = Arc::new(());
}

#[tokio::test]
async fn archived_keys_come_back_only_with_enough_distinct_approvals() {
    let h = harness_without_download_window().await;
    let serial = h
        .issued_serial(ALICE, server_cert("e", "rec.example.com"))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = h
        .call(
            "POST",
            &format!("/certs/{serial}/recovery"),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let rec = r.json();
    assert_eq!(rec["status"], "pending");
    assert_eq!(rec["required"], 2);
    let id = rec["id"].as_str().unwrap().to_owned();
    let token_req = |who: &'static str| {
        let h = &h;
        let serial = serial.clone();
        let id = id.clone();
        async move {
            h.call(
                "POST",
                &format!("/certs/{serial}/download-token"),
                Some(who),
                Some(json!({"format": "zip", "recovery": id})),
            )
            .await
        }
    };
    // Too few approvals.
    assert_eq!(token_req(ALICE).await.status, StatusCode::CONFLICT);
    // The requester cannot approve; other requesters do not even see it.
    let approve = |who: &'static str| {
        let h = &h;
        let id = id.clone();
        async move {
            h.call(
                "POST",
                &format!("/recoveries/{id}/approve"),
                Some(who),
                None,
            )
            .await
        }
    };
    assert_eq!(approve(ALICE).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.call("GET", &format!("/recoveries/{id}"), Some(BOB), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = approve(AGENT).await;
    assert_eq!(r.json()["status"], "pending");
    assert_eq!(r.json()["approvals"], json!(["ann"]));
    // The same agent twice.
    let r = approve(AGENT).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("already approved"));
    let r = approve(AGENT2).await;
    assert_eq!(r.json()["status"], "approved");
    // Now the key comes with the download, once.
    let t = token_req(ALICE).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            "GET",
            &format!("/certs/{serial}/download?token={t}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(unzip(&r.body).contains_key("key.pem"));
    let v = h
        .call("GET", &format!("/recoveries/{id}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(v["status"], "completed");
    assert_eq!(token_req(ALICE).await.status, StatusCode::CONFLICT);
    // Listed for agents.
    let list = h
        .call("GET", "/recoveries?status=completed", Some(AGENT), None)
        .await
        .json();
    assert_eq!(list["total"], 1);
    // No archived key: no recovery.
    let pem = csr_pem("csr.example.com");
    let b = h
        .call(
            "POST",
            "/csr",
            Some(ALICE),
            Some(json!({"profile": "server", "entity_id": "x", "pem": pem})),
        )
        .await
        .json();
    let s2 = b["requests"][0]["serial"].as_str().unwrap().to_owned();
    assert_eq!(
        h.call("POST", &format!("/certs/{s2}/recovery"), Some(ALICE), None)
            .await
            .status,
        StatusCode::CONFLICT
    );
    // Rejection.
    let id2 = h
        .call(
            "POST",
            &format!("/certs/{serial}/recovery"),
            Some(ALICE),
            None,
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            "POST",
            &format!("/recoveries/{id2}/reject"),
            Some(AGENT),
            Some(json!({"reason": "no"})),
        )
        .await;
    assert_eq!(r.json()["status"], "rejected");
    assert_eq!(
        h.call(
            "POST",
            &format!("/recoveries/{id2}/approve"),
            Some(AGENT2),
            None
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
}

/// A local webhook receiver: records (signature, body) of each POST and
/// answers `status`.
async fn receiver(status: StatusCode) -> (String, Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let sig = headers
                    .get(super::webhooks::SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                kept.lock().unwrap().push((sig, body));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test]
async fn renewals_and_revocations_reach_the_webhooks_signed_and_failures_are_visible() {
    use base64::Engine;
    let (good, seen) = receiver(StatusCode::OK).await;
    let (bad, _) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let secret = b"webhook-secret-0123456789";
    let h = harness(|c| {
        c.service.webhooks = vec![good.clone(), bad.clone()];
        c.service.webhook_secret = Some(base64::engine::general_purpose::STANDARD.encode(secret));
        let p = c.service.profiles.get_mut("server").unwrap();
        p.validity = std::time::Duration::from_secs(7200);
        p.renew_before = std::time::Duration::from_secs(7199);
    })
    .await;
    let serial = h
        .issued_serial(ALICE, server_cert("e", "wh.example.com"))
        .await;
    let new = h
        .call("POST", &format!("/certs/{serial}/renew"), Some(ALICE), None)
        .await
        .json()["serial_number"]
        .as_str()
        .unwrap()
        .to_owned();
    h.call(
        "POST",
        &format!("/certs/{new}/revoke"),
        Some(AGENT),
        Some(json!({"reason": "cessationOfOperation"})),
    )
    .await;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    // Three events: the renewal, the old certificate superseded, and the
    // revocation of the new one.
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    let mut types: Vec<String> = got
        .iter()
        .map(|(sig, body)| {
            assert_eq!(sig, &super::webhooks::signature(&key, body.as_bytes()));
            let v: Value = serde_json::from_str(body).unwrap();
            v["type"].as_str().unwrap().to_owned()
        })
        .collect();
    types.sort();
    assert_eq!(
        types,
        vec![
            "certificate.renewed",
            "certificate.revoked",
            "certificate.revoked"
        ]
    );
    let events: Vec<Value> = got
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    let renewed = events
        .iter()
        .find(|e| e["type"] == "certificate.renewed")
        .unwrap();
    assert_eq!(renewed["data"]["old_serial"], serial.as_str());
    assert_eq!(renewed["data"]["new_serial"], new.as_str());
    let superseded = events
        .iter()
        .find(|e| e["type"] == "certificate.revoked" && e["data"]["serial"] == serial.as_str())
        .unwrap();
    assert_eq!(superseded["data"]["reason"], 4);
    assert_eq!(superseded["data"]["entity_id"], "e");
    // The failing receiver's deliveries are retried, visibly.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let d = h
        .call(
            "GET",
            "/webhooks/deliveries?status=pending",
            Some(ADMIN),
            None,
        )
        .await
        .json();
    assert_eq!(d["total"], 3, "{d}");
    for item in d["deliveries"].as_array().unwrap() {
        assert_eq!(item["url"], bad.as_str());
        assert!(item["attempts"].as_u64().unwrap() >= 1);
        assert!(item["last_error"].as_str().unwrap().contains("500"));
    }
    let d = h
        .call(
            "GET",
            "/webhooks/deliveries?status=delivered",
            Some(ADMIN),
            None,
        )
        .await
        .json();
    assert_eq!(d["total"], 3);
    assert_eq!(
        h.call("GET", "/webhooks/deliveries", Some(AGENT), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn wildcards_head_requests_renewal_ownership_and_own_decisions() {
    let h = harness(|c| {
        let p = c.service.profiles.get_mut("server").unwrap();
        p.validity = std::time::Duration::from_secs(7200);
        p.renew_before = std::time::Duration::from_secs(7199);
        p.key_download_window = std::time::Duration::ZERO;
    })
    .await;
    // A wildcard name is issued as asked, once.
    let s = h
        .issued_serial(ALICE, server_cert("e", "*.wild.example.com"))
        .await;
    let pem = h
        .call("GET", &format!("/certs/{s}"), Some(ALICE), None)
        .await
        .json()["certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, der) = x509_cert::der::pem::decode_vec(pem.as_bytes()).unwrap();
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let names = crate::ca::csr::certificate_identifiers(&cert).unwrap();
    assert_eq!(
        names,
        vec![crate::protocol::Identifier::dns("*.wild.example.com")]
    );
    // HEAD does not spend a download token.
    let t = h
        .call(
            "POST",
            &format!("/certs/{s}/download-token"),
            Some(ALICE),
            None,
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            "HEAD",
            &format!("/certs/{s}/download?token={t}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h
        .call("GET", &format!("/certs/{s}/download?token={t}"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h
        .call(
            "HEAD",
            &format!("/certs/{s}/download?token={t}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // An admin's renewal stays with the requester.
    let r = h
        .call("POST", &format!("/certs/{s}/renew"), Some(ADMIN), None)
        .await;
    let new = r.json()["serial_number"].as_str().unwrap().to_owned();
    let v = h
        .call("GET", &format!("/certs/{new}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(v["requester"], "alice");
    // Nobody decides their own request or recovery, admins included.
    let id = h
        .issue(
            ADMIN,
            json!({"entity_id": "t", "profile": "device", "common_name": "t", "key_type": "ec", "key_size": 256}),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            "POST",
            &format!("/requests/{id}/reject"),
            Some(ADMIN),
            Some(json!({"reason": "mine"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // An admin cannot use another requester's approved recovery.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let rec = h
        .call("POST", &format!("/certs/{new}/recovery"), Some(ALICE), None)
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for agent in [AGENT, AGENT2] {
        h.call(
            "POST",
            &format!("/recoveries/{rec}/approve"),
            Some(agent),
            None,
        )
        .await;
    }
    let r = h
        .call(
            "POST",
            &format!("/certs/{new}/download-token"),
            Some(ADMIN),
            Some(json!({"recovery": rec})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .call(
            "POST",
            &format!("/certs/{new}/download-token"),
            Some(ALICE),
            Some(json!({"recovery": rec})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A non-hexadecimal serial filter is a bad query.
    let r = h.call("GET", "/certs?serial=zz", Some(ADMIN), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_scheduler_renews_auto_renew_certificates_in_their_window() {
    let h = harness(|c| {
        let p = c.service.profiles.get_mut("server").unwrap();
        p.validity = std::time::Duration::from_secs(7200);
        p.renew_before = std::time::Duration::from_secs(5000);
    })
    .await;
    let mut auto = server_cert("e", "auto.example.com");
    auto["auto_renew"] = json!(true);
    let s_auto = h.issued_serial(ALICE, auto).await;
    let s_manual = h
        .issued_serial(ALICE, server_cert("e", "manual.example.com"))
        .await;
    let service = h.server.service.as_ref().unwrap().1.clone();
    // Just issued (2 h certificates, renewable 5000 s before expiry): not
    // in the window yet.
    assert_eq!(service.renew_due().await.unwrap(), 0);
    // The same service, 3000 s later: in the window, but younger than the
    // window's length, so left alone; 5000 s later, renewed.
    let later = Arc::new(crate::clock::FakeClock::new(service.clock.now() + 3000));
    let service = super::Service::new(
        service.ra.clone(),
        service.metrics.clone(),
        service.store.clone(),
        service.shared.clone(),
        later.clone(),
        service.config.clone(),
    )
    .unwrap();
    assert_eq!(service.renew_due().await.unwrap(), 0);
    later.advance(2000);
    assert_eq!(service.renew_due().await.unwrap(), 1);
    let old = h
        .call("GET", &format!("/certs/{s_auto}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(old["revocation_reason"], "superseded");
    let new = old["renewed_to"].as_str().unwrap().to_owned();
    let fresh = h
        .call("GET", &format!("/certs/{new}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(fresh["auto_renew"], true);
    assert_eq!(fresh["requester"], "alice");
    let untouched = h
        .call("GET", &format!("/certs/{s_manual}"), Some(ALICE), None)
        .await
        .json();
    assert_eq!(untouched["status"], "valid");
    // The renewed one is not renewed on the next rounds (no renewal
    // loop), nor the old one: not in its window, then in it but young;
    // once as old as its window, it is.
    assert_eq!(service.renew_due().await.unwrap(), 0);
    later.advance(3000);
    assert_eq!(service.renew_due().await.unwrap(), 0);
    later.advance(2000);
    assert_eq!(service.renew_due().await.unwrap(), 1);
}

/// An auto-renew certificate must outlive its renewal window.
#[tokio::test]
async fn auto_renew_needs_a_lifetime_longer_than_the_window() {
    let h = harness(|_| {}).await;
    // The server profile: 90 days, renewable 30 days before expiry.
    let mut body = server_cert("e", "loop.example.com");
    body["auto_renew"] = json!(true);
    body["ttl"] = json!(30 * 86400);
    let r = h.issue(ALICE, body.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json());
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("renewal window"),
        "{}",
        r.json()
    );
    body["ttl"] = json!(90 * 86400);
    let r = h.issue(ALICE, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
}

#[test]
fn token_configs_never_show_the_token() {
    let t = TokenConfig {
        name: "n".into(),
        token: "super-secret-token-value".into(),
        role: Role::Admin,
    };
    assert!(!format!("{t:?}").contains("super-secret"));
}

/// Download tokens are bounded per certificate and per caller, so that one
/// requester cannot use up the pool and lock everyone else out.
#[tokio::test]
async fn download_tokens_are_bounded_per_caller() {
    let h = harness(|_| {}).await;
    let issue = |name: String| {
        let h = &h;
        async move { h.issued_serial(ALICE, server_cert("e", &name)).await }
    };
    let ask = |serial: String, who: &'static str| {
        let h = &h;
        async move {
            h.call(
                "POST",
                &format!("/certs/{serial}/download-token"),
                Some(who),
                None,
            )
            .await
        }
    };
    let one = issue("one.example.com".into()).await;
    for _ in 0..10 {
        assert_eq!(ask(one.clone(), ALICE).await.status, StatusCode::OK);
    }
    let r = ask(one.clone(), ALICE).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json());
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("this certificate"),
        "{}",
        r.json()
    );
    // Others are not held up by alice's tokens.
    assert_eq!(ask(one.clone(), ADMIN).await.status, StatusCode::OK);
    // Alice's own bound over all certificates: 100.
    let mut serials = Vec::new();
    for i in 0..9 {
        serials.push(issue(format!("n{i}.example.com")).await);
    }
    let mut granted = 10;
    'outer: for s in &serials {
        for _ in 0..10 {
            let r = ask(s.clone(), ALICE).await;
            if r.status != StatusCode::OK {
                assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
                break 'outer;
            }
            granted += 1;
        }
    }
    assert_eq!(granted, 100);
    let extra = issue("extra.example.com".into()).await;
    let r = ask(extra.clone(), ALICE).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json());
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("you hold 100"));
    assert_eq!(ask(extra, ADMIN).await.status, StatusCode::OK);
}

/// A CSR with only a common name (no subjectAltName).
fn cn_only_csr_pem(cn: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// The operator API applies the CA's identifier policy (blocked domains,
/// IP identifiers off) and the same subject rules to POST /certs and to
/// CSR uploads; a serverAuth certificate always has a subjectAltName.
#[tokio::test]
async fn one_identifier_policy_and_subject_rule_for_every_way_in() {
    let h = harness(|c| {
        c.acme.blocked_domains = vec!["blocked.example.com".into()];
        c.acme.allow_ip_identifiers = false;
    })
    .await;
    let upload = |pem: String, profile: &'static str| {
        let h = &h;
        async move {
            h.call(
                "POST",
                "/csr",
                Some(ALICE),
                Some(json!({"profile": profile, "entity_id": "e", "name": "n", "pem": pem})),
            )
            .await
        }
    };
    // POST /certs: a blocked name, an IP address.
    let r = h
        .issue(ALICE, server_cert("e", "y.blocked.example.com"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json());
    assert!(r.json()["detail"].as_str().unwrap().contains("forbidden"));
    let mut body = server_cert("e", "ok.example.com");
    body["ip_addresses"] = json!(["10.1.2.3"]);
    let r = h.issue(ALICE, body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json());
    assert!(r.json()["detail"].as_str().unwrap().contains("IP address"));
    // Uploads: a blocked name; a CN alone under the server profile (which
    // requires names and issues serverAuth); a CN with a newline.
    let r = upload(csr_pem("y.blocked.example.com"), "server").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json());
    let r = upload(cn_only_csr_pem("*.google.com"), "server").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json());
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("requires names"));
    let r = upload(cn_only_csr_pem("evil\nname"), "device").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json());
    assert!(r.json()["detail"].as_str().unwrap().contains("printable"));
    // A CN alone is fine for a clientAuth device.
    let r = upload(cn_only_csr_pem("sensor-7"), "device").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
}

/// A service certificate is made by the RA's one issuance function: the
/// CA's OCSP and CRL URLs always in it (a service profile has no setting to
/// leave them out, docs/SERVICE.md), backdated like every certificate of
/// this CA, and valid for the requested `ttl` with both ends counted.
#[tokio::test]
async fn service_certificates_carry_the_status_urls_and_the_asked_lifetime() {
    use der::Decode;
    use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};
    let h = harness(|_| {}).await;
    let mut body = server_cert("status-1", "status.example.com");
    body["ttl"] = json!(7200);
    let r = h.issue(ALICE, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let serial = r.json()["serial_number"].as_str().unwrap().to_owned();
    let admin = crate::model::service::Caller {
        name: "root".into(),
        role: Role::Admin,
    };
    let row = h.service.certificate(&admin, &serial).await.unwrap();
    assert_eq!(row.not_after - row.not_before, 7200 - 1);
    let backdate = i64::try_from(h.service.ra.backdate().as_secs()).unwrap();
    assert!(backdate > 0);
    let issued_at = h.service.clock.now();
    assert!(row.not_before <= issued_at - backdate && row.not_before > issued_at - backdate - 60);

    let cert = x509_cert::Certificate::from_der(&row.der).unwrap();
    let ext = |oid: &str| {
        let oid = der::asn1::ObjectIdentifier::new_unwrap(oid);
        cert.tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid)
            .unwrap_or_else(|| panic!("no extension {oid}"))
            .extn_value
            .as_bytes()
            .to_vec()
    };
    let ocsp = h
        .service
        .ra
        .ocsp_url()
        .expect("the harness runs a status listener");
    let aia = AuthorityInfoAccessSyntax::from_der(&ext("1.3.6.1.5.5.7.1.1")).unwrap();
    let ocsp_in_cert = aia
        .0
        .iter()
        .find(|a| a.access_method == der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1"));
    match ocsp_in_cert.map(|a| &a.access_location) {
        Some(x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u)) => {
            assert_eq!(u.as_str(), ocsp)
        }
        other => panic!("no OCSP URL in the AIA: {other:?}"),
    }
    let crl = CrlDistributionPoints::from_der(&ext("2.5.29.31")).unwrap();
    assert_eq!(crl.0.len(), 1);
}
