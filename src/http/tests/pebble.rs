//! In-process tests of the Pebble compatibility pieces of the HTTP layer:
//! Pebble's directory paths, refused good nonces, the random profile, and
//! the management interface.

use super::*;

async fn management(h: &Harness, req: Request<Body>) -> Resp {
    call(crate::http::management::router(h.server.app.clone()), req).await
}

fn mget(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, "localhost:15000")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn pebble_paths_are_listed_and_served() {
    let h = harness_with(|c| c.server.pebble_paths = true).await;
    let d = h.get("/dir").await.json();
    assert_eq!(d["newNonce"], format!("{BASE}/nonce-plz"));
    assert_eq!(d["newAccount"], format!("{BASE}/sign-me-up"));
    assert_eq!(d["newOrder"], format!("{BASE}/order-plz"));
    assert_eq!(d["revokeCert"], format!("{BASE}/revoke-cert"));
    assert_eq!(d["keyChange"], format!("{BASE}/rollover-account-key"));
    assert_eq!(
        d["renewalInfo"],
        format!("{BASE}/draft-ietf-acme-ari-03/renewalInfo")
    );
    let r = h.get("/nonce-plz").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.header("replay-nonce").is_some());
    assert_eq!(
        r.header("link").as_deref(),
        Some("<https://localhost:14000/dir>;rel=\"index\"")
    );
    // An account made through Pebble's path; an order through Pebble's.
    let mut c = Client::new();
    let r = h
        .post(
            &c,
            "/sign-me-up",
            Some(&json!({"termsOfServiceAgreed": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    c.kid = r.header("location");
    let r = h
        .post(
            &c,
            "/order-plz",
            Some(&json!({"identifiers": [{"type": "dns", "value": "p.example.com"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // The JWS url must still be the URL posted to.
    let body = c.jws(
        &h.nonce(),
        &format!("{BASE}/acme/new-order"),
        Some(&json!({"identifiers": [{"type": "dns", "value": "p.example.com"}]})),
    );
    let r = h
        .raw_post("/order-plz", "application/jose+json", body)
        .await;
    assert_eq!(r.problem(), "unauthorized");
    // acme-ca's own paths keep working.
    assert_eq!(h.get("/directory").await.status, StatusCode::OK);
}

#[tokio::test]
async fn good_nonces_can_be_refused_on_purpose() {
    let h = harness_with(|c| c.acme.bad_nonce_percent = 100).await;
    let c = Client::new();
    let r = h
        .post(
            &c,
            "/acme/new-account",
            Some(&json!({"termsOfServiceAgreed": true})),
        )
        .await;
    assert_eq!(r.problem(), "badNonce");
    assert!(r.header("replay-nonce").is_some());
    assert!(r.json()["detail"].as_str().unwrap().contains("on purpose"));
}

#[tokio::test]
async fn orders_without_a_profile_get_a_random_one() {
    let h = harness_with(|c| c.acme.random_profile = true).await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = h
            .post(
                &c,
                "/acme/new-order",
                Some(&json!({"identifiers": [{"type": "dns", "value": "r.example.com"}]})),
            )
            .await;
        seen.insert(r.json()["profile"].as_str().unwrap().to_owned());
    }
    // Each of 40 orders misses a given profile with probability 1/2:
    // seeing only one of the two has a chance of 2^-39.
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[tokio::test]
async fn management_roots_keys_and_certificate_status() {
    let h = harness_with(|c| c.ca.alternate_roots = 1).await;
    let ca = h.server.app.ra.ca_for_tests().clone();
    let r = management(&h, mget("/roots/0")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        ca.chains()[0].root_pem()
    );
    assert_eq!(
        r.header("link").as_deref(),
        Some("<https://localhost:15000/roots/1>;rel=\"alternate\"")
    );
    let r = management(&h, mget("/roots/1")).await;
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        ca.chains()[1].root_pem()
    );
    assert_eq!(
        management(&h, mget("/roots/2")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        management(&h, mget("/roots/x")).await.status,
        StatusCode::NOT_FOUND
    );
    // Keys parse and match their certificates.
    let key = String::from_utf8(management(&h, mget("/root-keys/0")).await.body).unwrap();
    let key = rcgen::KeyPair::from_pem(&key).unwrap();
    let root = x509_cert::Certificate::from_der(ca.chains()[0].root_der()).unwrap();
    assert_eq!(
        key.public_key_raw(),
        root.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
    );
    let inter = String::from_utf8(management(&h, mget("/intermediates/1")).await.body).unwrap();
    let (_, der) = x509_cert::der::pem::decode_vec(inter.as_bytes()).unwrap();
    assert_eq!(der, ca.chains()[1].intermediates_der()[0]);
    let r = management(&h, mget("/intermediate-keys/0")).await;
    assert_eq!(r.status, StatusCode::OK);

    // Certificate status by serial, before and after revocation.
    let mut c = Client::new();
    h.register(&mut c).await;
    let (der, _) = issue(&h, &c, &["status.example.com"]).await;
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let serial = crate::ca::serial_hex(cert.tbs_certificate.serial_number.as_bytes());
    let r = management(
        &h,
        mget(&format!("/cert-status-by-serial/{}", serial.to_uppercase())),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["Status"], "Valid");
    assert_eq!(v["Serial"], serial);
    let (_, pem_der) =
        x509_cert::der::pem::decode_vec(v["Certificate"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(pem_der, der);
    let r = h
        .post(
            &c,
            "/acme/revoke-cert",
            Some(&json!({"certificate": b64::encode(&der), "reason": 4})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = management(&h, mget(&format!("/cert-status-by-serial/{serial}")))
        .await
        .json();
    assert_eq!(v["Status"], "Revoked");
    assert_eq!(v["Reason"], 4);
    assert!(crate::clock::parse_rfc3339(v["RevokedAt"].as_str().unwrap()).is_some());
    assert_eq!(
        management(&h, mget("/cert-status-by-serial/0123abcd"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        management(&h, mget("/cert-status-by-serial/xyz"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn set_renewal_info_steers_the_answer() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let (der, _) = issue(&h, &c, &["ari.example.com"]).await;
    let pem = x509_cert::der::pem::encode_string(
        "CERTIFICATE",
        x509_cert::der::pem::LineEnding::LF,
        &der,
    )
    .unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let id = format!(
        "{}.{}",
        b64::encode(crate::ca::authority_key_id(&cert).unwrap()),
        b64::encode(cert.tbs_certificate.serial_number.as_bytes())
    );
    let answer = json!({"suggestedWindow": {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"},
                        "explanationURL": "https://example.com/now"});
    let post = |body: Value| {
        Request::post("/set-renewal-info/")
            .header(header::HOST, "localhost:15000")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    // Member names match case-insensitively, as with Pebble.
    let r = management(
        &h,
        post(json!({"certificate": pem, "ARIResponse": answer.to_string()})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = h.get(&format!("/acme/renewal-info/{id}")).await;
    assert_eq!(r.json(), answer);
    assert!(r.header("retry-after").is_some());
    // Refusals.
    for (body, status) in [
        (json!({"Certificate": pem}), StatusCode::BAD_REQUEST),
        (
            json!({"Certificate": pem, "ARIResponse": "{"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"Certificate": pem, "ARIResponse": "{\"suggestedWindow\": {\"start\": \"2020-01-02T00:00:00Z\", \"end\": \"2020-01-01T00:00:00Z\"}}"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"Certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "ARIResponse": answer.to_string()}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = management(&h, post(body.clone())).await;
        assert_eq!(r.status, status, "{body}");
    }
    // An oversized answer.
    let big = json!({"suggestedWindow": {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"},
                     "explanationURL": "x".repeat(5000)});
    let r = management(
        &h,
        post(json!({"Certificate": pem, "ARIResponse": big.to_string()})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A certificate of another CA.
    let other = harness().await;
    let mut oc = Client::new();
    other.register(&mut oc).await;
    let (other_der, _) = issue(&other, &oc, &["x.example.com"]).await;
    let other_pem = x509_cert::der::pem::encode_string(
        "CERTIFICATE",
        x509_cert::der::pem::LineEnding::LF,
        &other_der,
    )
    .unwrap();
    let r = management(
        &h,
        post(json!({"Certificate": other_pem, "ARIResponse": answer.to_string()})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rsa_keys_are_handed_out_in_pkcs1_as_pebble_does() {
    let h = harness_with(|c| c.ca.key_algorithm = crate::ca::KeyAlgorithm::Rsa2048).await;
    for path in ["/root-keys/0", "/intermediate-keys/0"] {
        let pem = String::from_utf8(management(&h, mget(path)).await.body).unwrap();
        let (label, der) = x509_cert::der::pem::decode_vec(pem.as_bytes()).unwrap();
        assert_eq!(label, "RSA PRIVATE KEY", "{path}");
        aws_lc_rs::rsa::KeyPair::from_der(&der).expect("a PKCS#1 RSA key");
    }
}
