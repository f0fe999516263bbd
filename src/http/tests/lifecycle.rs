//! In-process tests of the lifecycle features: profiles, Must-Staple,
//! newAuthz and authorization reuse, ARI, external account binding, and
//! the revocation status listener (CRL and OCSP).

use aws_lc_rs::hmac;
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints, ExtendedKeyUsage};
use x509_cert::Certificate;

use super::*;
use crate::revocation::ocsp;

/// POST newOrder with `payload`.
async fn new_order(h: &Harness, c: &Client, payload: Value) -> Resp {
    h.post(c, "/acme/new-order", Some(&payload)).await
}

fn dns_ids(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect(),
    )
}

/// Answers http-01 of every pending authorization of an order.
async fn validate(h: &Harness, c: &Client, order: &Value) {
    for authz in order["authorizations"].as_array().unwrap() {
        let a = h.post(c, authz.as_str().unwrap(), None).await.json();
        if a["status"] == "valid" {
            continue;
        }
        let r = h.answer_http01(c, &a).await;
        assert_eq!(r.json()["status"], "valid");
    }
}

/// A CSR for `names` with a P-256 key, optionally asking for Must-Staple.
fn csr(names: &[&str], must_staple: bool) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if must_staple {
        // TLS Feature (RFC 7633): SEQUENCE { INTEGER 5 }.
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 24],
                vec![0x30, 0x03, 0x02, 0x01, 0x05],
            ));
    }
    b64::encode(params.serialize_request(&key).unwrap().der())
}

/// newOrder with `extra` fields, validation, finalize with `csr`: the
/// finalize response.
async fn finalize(h: &Harness, c: &Client, names: &[&str], extra: Value, csr: &str) -> Resp {
    let mut payload = json!({"identifiers": dns_ids(names)});
    for (k, v) in extra.as_object().unwrap() {
        payload[k] = v.clone();
    }
    let r = new_order(h, c, payload).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let order = r.json();
    validate(h, c, &order).await;
    h.post(
        c,
        order["finalize"].as_str().unwrap(),
        Some(&json!({"csr": csr})),
    )
    .await
}

/// The leaf of a finalized order, DER.
async fn leaf(h: &Harness, c: &Client, order: &Value) -> Vec<u8> {
    let pem = String::from_utf8(
        h.post(c, order["certificate"].as_str().unwrap(), None)
            .await
            .body,
    )
    .unwrap();
    let end = pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    x509_cert::der::pem::decode_vec(&pem.as_bytes()[..end])
        .unwrap()
        .1
}

async fn issue_with(h: &Harness, c: &Client, names: &[&str], extra: Value) -> Vec<u8> {
    let r = finalize(h, c, names, extra, &csr(names, false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    leaf(h, c, &r.json()).await
}

fn extension<'a, T: x509_cert::der::Decode<'a>>(cert: &'a Certificate, oid: &str) -> Option<T> {
    let oid = x509_cert::der::asn1::ObjectIdentifier::new_unwrap(oid);
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| T::from_der(e.extn_value.as_bytes()).unwrap())
}

fn has_extension(cert: &Certificate, oid: &str) -> bool {
    let oid = x509_cert::der::asn1::ObjectIdentifier::new_unwrap(oid);
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .any(|e| e.extn_id == oid)
}

/// (method OID, URI) pairs of the AIA.
fn aia(cert: &Certificate) -> Vec<(String, String)> {
    let Some(aia) = extension::<AuthorityInfoAccessSyntax>(cert, "1.3.6.1.5.5.7.1.1") else {
        return Vec::new();
    };
    aia.0
        .iter()
        .map(|d| {
            let x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) =
                &d.access_location
            else {
                panic!("AIA location is not a URI")
            };
            (d.access_method.to_string(), u.to_string())
        })
        .collect()
}

fn crl_urls(cert: &Certificate) -> Vec<String> {
    let Some(dps) = extension::<CrlDistributionPoints>(cert, "2.5.29.31") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dp in dps.0 {
        if let Some(x509_cert::ext::pkix::name::DistributionPointName::FullName(names)) =
            dp.distribution_point
        {
            for n in names {
                if let x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) = n {
                    out.push(u.to_string());
                }
            }
        }
    }
    out
}

fn common_name(cert: &Certificate) -> Option<String> {
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid.to_string() == "2.5.4.3")
        .map(|atv| String::from_utf8_lossy(atv.value.value()).into_owned())
}

fn validity_secs(cert: &Certificate) -> u64 {
    let v = &cert.tbs_certificate.validity;
    (v.not_after.to_unix_duration() - v.not_before.to_unix_duration()).as_secs()
}

fn status_base(h: &Harness) -> String {
    h.server.status.as_ref().unwrap().base_url.clone()
}

#[tokio::test]
async fn directory_lists_profiles_new_authz_and_renewal_info() {
    let h = harness().await;
    let d = h.get("/directory").await.json();
    assert_eq!(d["newAuthz"], format!("{BASE}/acme/new-authz"));
    assert_eq!(d["renewalInfo"], format!("{BASE}/acme/renewal-info"));
    let profiles = d["meta"]["profiles"].as_object().unwrap();
    assert_eq!(
        profiles.keys().collect::<Vec<_>>(),
        vec!["classic", "shortlived"]
    );
    assert!(profiles["shortlived"].as_str().unwrap().contains("160"));
}

#[tokio::test]
async fn profiles_shape_the_certificate() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let status = status_base(&h);

    // The default profile is classic: CN, both EKUs, OCSP, CRL, 90 days.
    let der = issue_with(&h, &c, &["classic.example.com"], json!({})).await;
    let cert = Certificate::from_der(&der).unwrap();
    assert_eq!(common_name(&cert).as_deref(), Some("classic.example.com"));
    assert_eq!(
        aia(&cert),
        vec![
            ("1.3.6.1.5.5.7.48.1".into(), format!("{status}/ocsp")),
            (
                "1.3.6.1.5.5.7.48.2".into(),
                format!("{status}/issuer/intermediate.der")
            ),
        ]
    );
    assert_eq!(
        crl_urls(&cert),
        vec![format!("{status}/crl/intermediate.crl")]
    );
    let eku: ExtendedKeyUsage = extension(&cert, "2.5.29.37").unwrap();
    assert_eq!(eku.0.len(), 2);
    assert_eq!(validity_secs(&cert), 90 * 86400 - 1);

    // shortlived: 160 hours, no CN, serverAuth only, no revocation URLs.
    let der = issue_with(
        &h,
        &c,
        &["short.example.com"],
        json!({"profile": "shortlived"}),
    )
    .await;
    let cert = Certificate::from_der(&der).unwrap();
    assert_eq!(common_name(&cert), None);
    assert_eq!(
        aia(&cert),
        vec![(
            "1.3.6.1.5.5.7.48.2".into(),
            format!("{status}/issuer/intermediate.der")
        )]
    );
    assert!(crl_urls(&cert).is_empty());
    assert!(!has_extension(&cert, "2.5.29.31"));
    let eku: ExtendedKeyUsage = extension(&cert, "2.5.29.37").unwrap();
    assert_eq!(eku.0.len(), 1);
    assert_eq!(eku.0[0].to_string(), "1.3.6.1.5.5.7.3.1");
    assert_eq!(validity_secs(&cert), 160 * 3600 - 1);

    // The order shows its profile; an unknown one is invalidProfile.
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["p.example.com"]), "profile": "shortlived"}),
    )
    .await;
    assert_eq!(r.json()["profile"], "shortlived");
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["p.example.com"]), "profile": "nope"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.problem(), "invalidProfile");
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("classic, shortlived"));
    // A notAfter beyond the profile's validity is refused.
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["p.example.com"]), "profile": "shortlived",
               "notAfter": crate::clock::rfc3339(h.server.app.ra.clock_for_tests().now() + 8 * 86400)}),
    )
    .await;
    assert_eq!(r.problem(), "malformed");
}

#[tokio::test]
async fn profile_identifier_types_and_custom_profiles() {
    let h = harness_with(|c| {
        c.profiles.insert(
            "dnsonly".into(),
            crate::config::ProfileConfig {
                description: "DNS names only".into(),
                validity: std::time::Duration::from_secs(3600),
                identifier_types: vec!["dns".into()],
                ..Default::default()
            },
        );
        c.acme.default_profile = "dnsonly".into();
    })
    .await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": [{"type": "ip", "value": "192.0.2.7"}]}),
    )
    .await;
    assert_eq!(r.problem(), "rejectedIdentifier");
    assert!(r.json()["detail"].as_str().unwrap().contains("dnsonly"));
    let der = issue_with(&h, &c, &["custom.example.com"], json!({})).await;
    let cert = Certificate::from_der(&der).unwrap();
    assert_eq!(validity_secs(&cert), 3599);
    // An IP address is still fine with classic.
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": [{"type": "ip", "value": "192.0.2.7"}], "profile": "classic"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn must_staple_is_carried_only_with_ocsp() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let names = ["staple.example.com"];
    let r = finalize(&h, &c, &names, json!({}), &csr(&names, true)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let der = leaf(&h, &c, &r.json()).await;
    let cert = Certificate::from_der(&der).unwrap();
    let features: Vec<u32> = extension(&cert, "1.3.6.1.5.5.7.1.24").unwrap();
    assert_eq!(features, vec![5]);
    // Without Must-Staple in the CSR, no TLS Feature.
    let der = issue_with(&h, &c, &names, json!({})).await;
    assert!(!has_extension(
        &Certificate::from_der(&der).unwrap(),
        "1.3.6.1.5.5.7.1.24"
    ));
    // shortlived has no OCSP responder: badCSR.
    let r = finalize(
        &h,
        &c,
        &names,
        json!({"profile": "shortlived"}),
        &csr(&names, true),
    )
    .await;
    assert_eq!(r.problem(), "badCSR");
    assert!(r.json()["detail"].as_str().unwrap().contains("Must-Staple"));
}

#[tokio::test]
async fn new_authz_pre_authorizes_and_valid_authorizations_are_reused() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let r = h
        .post(
            &c,
            "/acme/new-authz",
            Some(&json!({"identifier": {"type": "dns", "value": "pre.example.com"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let authz_url = r.header("location").unwrap();
    assert_eq!(r.json()["status"], "pending");
    assert_eq!(r.json()["identifier"]["value"], "pre.example.com");
    // http-01, dns-01, tls-alpn-01 and (on by default) dns-account-01.
    assert_eq!(r.json()["challenges"].as_array().unwrap().len(), 4);
    let chall = r.json()["challenges"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h.post(&c, &chall, Some(&json!({}))).await;
    assert_eq!(r.json()["status"], "valid");

    // An order for the name gets the valid authorization back: ready.
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["pre.example.com"])}),
    )
    .await;
    assert_eq!(r.json()["authorizations"][0], authz_url);
    assert_eq!(r.json()["status"], "ready");
    // Another account does not.
    let mut other = Client::new();
    h.register(&mut other).await;
    let r = new_order(
        &h,
        &other,
        json!({"identifiers": dns_ids(&["pre.example.com"])}),
    )
    .await;
    assert_ne!(r.json()["authorizations"][0], authz_url);
    assert_eq!(r.json()["status"], "pending");

    // Wildcards and bad names are refused; IP addresses get http-01 and
    // tls-alpn-01.
    let r = h
        .post(
            &c,
            "/acme/new-authz",
            Some(&json!({"identifier": {"type": "dns", "value": "*.example.com"}})),
        )
        .await;
    assert_eq!(r.problem(), "rejectedIdentifier");
    let r = h
        .post(
            &c,
            "/acme/new-authz",
            Some(&json!({"identifier": {"type": "dns", "value": "bad..name"}})),
        )
        .await;
    assert_eq!(r.problem(), "rejectedIdentifier");
    let r = h
        .post(
            &c,
            "/acme/new-authz",
            Some(&json!({"identifier": {"type": "ip", "value": "192.0.2.1"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let kinds: Vec<&str> = r.json()["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap().to_owned().leak() as &str)
        .collect();
    assert_eq!(kinds, vec!["http-01", "tls-alpn-01"]);
}

#[tokio::test]
async fn authorization_reuse_can_be_turned_off() {
    let h = harness_with(|c| c.acme.authz_reuse = 0).await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["once.example.com"])}),
    )
    .await;
    let first = r.json();
    validate(&h, &c, &first).await;
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["once.example.com"])}),
    )
    .await;
    assert_ne!(r.json()["authorizations"][0], first["authorizations"][0]);
    assert_eq!(r.json()["status"], "pending");
}

/// The ARI identifier of a certificate.
fn ari_id(der: &[u8]) -> String {
    let cert = Certificate::from_der(der).unwrap();
    let aki = crate::ca::authority_key_id(&cert).unwrap();
    format!(
        "{}.{}",
        b64::encode(aki),
        b64::encode(cert.tbs_certificate.serial_number.as_bytes())
    )
}

#[tokio::test]
async fn renewal_info_and_replaces() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let der = issue_with(&h, &c, &["ari.example.com"], json!({})).await;
    let id = ari_id(&der);
    let cert = Certificate::from_der(&der).unwrap();
    let nb = cert
        .tbs_certificate
        .validity
        .not_before
        .to_unix_duration()
        .as_secs() as i64;

    let r = h.get(&format!("/acme/renewal-info/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.header("retry-after").as_deref(), Some("21600"));
    let w = &r.json()["suggestedWindow"];
    let start = crate::clock::parse_rfc3339(w["start"].as_str().unwrap()).unwrap();
    let end = crate::clock::parse_rfc3339(w["end"].as_str().unwrap()).unwrap();
    assert_eq!(start, nb + 60 * 86400);
    assert_eq!(end, nb + 70 * 86400);
    assert!(r.json().get("explanationURL").is_none());

    // Unknown and malformed identifiers.
    let unknown = format!(
        "{}.{}",
        id.split('.').next().unwrap(),
        b64::encode([0x11; 16])
    );
    let r = h.get(&format!("/acme/renewal-info/{unknown}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h.get("/acme/renewal-info/not-an-id").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.problem(), "malformed");

    // replaces: another account may not; no shared name is malformed;
    // once is fine, twice is alreadyReplaced.
    let mut other = Client::new();
    h.register(&mut other).await;
    let r = new_order(
        &h,
        &other,
        json!({"identifiers": dns_ids(&["ari.example.com"]), "replaces": id}),
    )
    .await;
    assert_eq!(r.problem(), "unauthorized");
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["elsewhere.example.com"]), "replaces": id}),
    )
    .await;
    assert_eq!(r.problem(), "malformed");
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["ari.example.com"]), "replaces": id}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert_eq!(r.json()["replaces"], id);
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["ari.example.com"]), "replaces": id}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.problem(), "alreadyReplaced");

    // Revoked: the window is in the past.
    let r = h
        .post(
            &c,
            "/acme/revoke-cert",
            Some(&json!({"certificate": b64::encode(&der), "reason": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h.get(&format!("/acme/renewal-info/{id}")).await;
    let w = &r.json()["suggestedWindow"];
    let end = crate::clock::parse_rfc3339(w["end"].as_str().unwrap()).unwrap();
    assert!(end < h.server.app.ra.clock_for_tests().now());
}

#[tokio::test]
async fn renewal_info_explanation_url_is_configurable() {
    let h = harness_with(|c| {
        c.acme.ari_explanation_url = Some("https://example.com/why".into());
        c.acme.ari_retry_after = std::time::Duration::from_secs(600);
    })
    .await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let der = issue_with(&h, &c, &["why.example.com"], json!({})).await;
    let r = h.get(&format!("/acme/renewal-info/{}", ari_id(&der))).await;
    assert_eq!(r.json()["explanationURL"], "https://example.com/why");
    assert_eq!(r.header("retry-after").as_deref(), Some("600"));
}

const EAB_KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

/// An external account binding of `c`'s key, made with `key` under `kid`.
fn binding(c: &Client, kid: &str, key: &[u8], url: &str) -> Value {
    let protected = b64::encode(json!({"alg": "HS256", "kid": kid, "url": url}).to_string());
    let payload = b64::encode(c.jwk.to_string());
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        format!("{protected}.{payload}").as_bytes(),
    );
    json!({"protected": protected, "payload": payload, "signature": b64::encode(tag.as_ref())})
}

#[tokio::test]
async fn external_account_binding() {
    let h = harness_with(|c| {
        c.acme.external_account_required = true;
        c.acme.eab_keys.insert("kid-1".into(), EAB_KEY.into());
        c.acme.eab_keys.insert("kid-2".into(), EAB_KEY.into());
    })
    .await;
    let key = b64::decode(EAB_KEY).unwrap();
    let url = format!("{BASE}/acme/new-account");
    assert_eq!(
        h.get("/directory").await.json()["meta"]["externalAccountRequired"],
        true
    );
    let c = Client::new();
    // Without a binding.
    let r = h
        .post(
            &c,
            "/acme/new-account",
            Some(&json!({"termsOfServiceAgreed": true})),
        )
        .await;
    assert_eq!(r.problem(), "externalAccountRequired");
    // Unknown kid, wrong MAC key, wrong URL.
    for (kid, mac_key, u) in [
        ("kid-9", key.clone(), url.clone()),
        ("kid-1", vec![7u8; 48], url.clone()),
        ("kid-1", key.clone(), format!("{BASE}/acme/new-order")),
    ] {
        let r = h
            .post(
                &c,
                "/acme/new-account",
                Some(&json!({"externalAccountBinding": binding(&c, kid, &mac_key, &u)})),
            )
            .await;
        assert_eq!(r.problem(), "unauthorized", "{kid}: {}", r.json());
    }
    // A binding of another key.
    let stranger = Client::new();
    let r = h
        .post(
            &c,
            "/acme/new-account",
            Some(&json!({"externalAccountBinding": binding(&stranger, "kid-1", &key, &url)})),
        )
        .await;
    assert_eq!(r.problem(), "malformed");
    // The right binding creates the account; asking again returns it.
    let body = json!({"externalAccountBinding": binding(&c, "kid-1", &key, &url)});
    let r = h.post(&c, "/acme/new-account", Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let loc = r.header("location").unwrap();
    let r = h.post(&c, "/acme/new-account", Some(&body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("location").unwrap(), loc);
    // kid-1 is bound: another key cannot use it, but kid-2 is free.
    let d = Client::new();
    let r = h
        .post(
            &d,
            "/acme/new-account",
            Some(&json!({"externalAccountBinding": binding(&d, "kid-1", &key, &url)})),
        )
        .await;
    assert_eq!(r.problem(), "unauthorized");
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("already bound"));
    let r = h
        .post(
            &d,
            "/acme/new-account",
            Some(&json!({"externalAccountBinding": binding(&d, "kid-2", &key, &url)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

fn der_seq(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// An OCSP request for `der`'s serial (SHA-1 CertID, no nonce), and that
/// CertID.
fn ocsp_request(h: &Harness, der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let cert = Certificate::from_der(der).unwrap();
    let hashes =
        ocsp::IssuerHashes::from_issuer_cert(h.server.app.ra.ca_for_tests().intermediate_der())
            .unwrap();
    let id = hashes
        .cert_id(
            ocsp::HashAlg::Sha1,
            cert.tbs_certificate.serial_number.as_bytes(),
        )
        .unwrap();
    let request = der_seq(&der_seq(&der_seq(&der_seq(id.der()))));
    (request, id.der().to_vec())
}

/// The certStatus tag that follows `cert_id` in an OCSP response: 0x80
/// good, 0xa1 revoked, 0x82 unknown.
fn ocsp_status(response: &[u8], cert_id: &[u8]) -> u8 {
    let at = response
        .windows(cert_id.len())
        .position(|w| w == cert_id)
        .expect("the response echoes the CertID");
    response[at + cert_id.len()]
}

async fn status_send(h: &Harness, req: Request<Body>) -> Resp {
    let router = crate::http::status::router(h.server.status.as_ref().unwrap().app.clone());
    call(router, req).await
}

async fn ocsp_post(h: &Harness, request: Vec<u8>) -> Resp {
    status_send(
        h,
        Request::post("/ocsp")
            .header(header::CONTENT_TYPE, "application/ocsp-request")
            .body(Body::from(request))
            .unwrap(),
    )
    .await
}

async fn fetch_crl(h: &Harness) -> x509_cert::crl::CertificateList {
    let r = status_send(
        h,
        Request::get("/crl/intermediate.crl")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/pkix-crl")
    );
    x509_cert::crl::CertificateList::from_der(&r.body).unwrap()
}

fn crl_number(crl: &x509_cert::crl::CertificateList) -> u64 {
    let oid = x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.29.20");
    let ext = crl
        .tbs_cert_list
        .crl_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == oid)
        .unwrap();
    let der = ext.extn_value.as_bytes().to_vec();
    u64::from_der(&der).unwrap()
}

#[tokio::test]
async fn revocation_shows_at_once_in_ocsp_and_the_next_crl() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let der = issue_with(&h, &c, &["status.example.com"], json!({})).await;
    let serial = Certificate::from_der(&der)
        .unwrap()
        .tbs_certificate
        .serial_number
        .as_bytes()
        .to_vec();
    let (request, cert_id) = ocsp_request(&h, &der);

    let r = ocsp_post(&h, request.clone()).await;
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/ocsp-response")
    );
    assert_eq!(ocsp_status(&r.body, &cert_id), 0x80, "good");
    let before = fetch_crl(&h).await;
    assert!(before.tbs_cert_list.revoked_certificates.is_none());

    let r = h
        .post(
            &c,
            "/acme/revoke-cert",
            Some(&json!({"certificate": b64::encode(&der), "reason": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // OCSP answers revoked at once, by POST and by GET.
    let r = ocsp_post(&h, request.clone()).await;
    assert_eq!(ocsp_status(&r.body, &cert_id), 0xa1, "revoked");
    use base64::Engine;
    let get_path = format!(
        "/ocsp/{}",
        base64::engine::general_purpose::STANDARD.encode(&request)
    );
    let r = status_send(&h, Request::get(get_path).body(Body::empty()).unwrap()).await;
    assert_eq!(ocsp_status(&r.body, &cert_id), 0xa1, "revoked (GET)");

    // The next CRL lists it, with a higher number.
    let after = fetch_crl(&h).await;
    assert!(crl_number(&after) > crl_number(&before));
    let revoked = after.tbs_cert_list.revoked_certificates.unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].serial_number.as_bytes(), serial.as_slice());

    // A serial this CA never issued is unknown; garbage is malformedRequest;
    // the wrong content type is refused.
    let hashes =
        ocsp::IssuerHashes::from_issuer_cert(h.server.app.ra.ca_for_tests().intermediate_der())
            .unwrap();
    let id = hashes.cert_id(ocsp::HashAlg::Sha256, &[0x42; 16]).unwrap();
    let r = ocsp_post(&h, der_seq(&der_seq(&der_seq(&der_seq(id.der()))))).await;
    assert_eq!(ocsp_status(&r.body, id.der()), 0x82, "unknown");
    let r = ocsp_post(&h, b"not DER".to_vec()).await;
    assert_eq!(
        r.body,
        ocsp::error_response(ocsp::ErrorStatus::MalformedRequest)
    );
    let r = status_send(
        &h,
        Request::post("/ocsp")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(request))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // The issuer certificate is served too.
    let r = status_send(
        &h,
        Request::get("/issuer/intermediate.der")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.body, h.server.app.ra.ca_for_tests().intermediate_der());
}

/// Splits a PEM chain into DER certificates.
fn pem_chain(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end = rest[start..].find("-----END CERTIFICATE-----").unwrap()
            + start
            + "-----END CERTIFICATE-----".len();
        out.push(
            x509_cert::der::pem::decode_vec(&rest.as_bytes()[start..end])
                .unwrap()
                .1,
        );
        rest = &rest[end..];
    }
    out
}

#[tokio::test]
async fn alternate_chains_are_linked_from_the_certificate() {
    let h = harness_with(|c| {
        c.ca.alternate_roots = 2;
        c.ca.chain_length = 2;
    })
    .await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let r = finalize(
        &h,
        &c,
        &["alt.example.com"],
        json!({}),
        &csr(&["alt.example.com"], false),
    )
    .await;
    let cert_url = r.json()["certificate"].as_str().unwrap().to_owned();
    let r = h.post(&c, &cert_url, None).await;
    let links: Vec<String> = r
        .headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|l| l.contains("rel=\"alternate\""))
        .collect();
    assert_eq!(
        links,
        vec![
            format!("<{cert_url}/alt/1>;rel=\"alternate\""),
            format!("<{cert_url}/alt/2>;rel=\"alternate\""),
        ]
    );
    let chains = h.server.app.ra.ca_for_tests().chains();
    let default = pem_chain(std::str::from_utf8(&r.body).unwrap());
    assert_eq!(default.len(), 3, "leaf and two intermediates");
    assert_eq!(&default[1..], chains[0].intermediates_der());
    for (n, chain) in chains.iter().enumerate().skip(1) {
        let r = h.post(&c, &format!("{cert_url}/alt/{n}"), None).await;
        assert_eq!(r.status, StatusCode::OK);
        let certs = pem_chain(std::str::from_utf8(&r.body).unwrap());
        assert_eq!(certs[0], default[0], "the same leaf");
        assert_eq!(&certs[1..], chain.intermediates_der());
        assert_ne!(certs[1], default[1]);
        let alt_links = r
            .headers
            .get_all("link")
            .iter()
            .filter(|l| l.to_str().unwrap().contains("alternate"))
            .count();
        assert_eq!(alt_links, 2);
    }
    let r = h.post(&c, &format!("{cert_url}/alt/3"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h.post(&c, &format!("{cert_url}/alt/0"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_delegated_responder_signs_ocsp_answers() {
    let h = harness_with(|c| c.status.ocsp_delegated = true).await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let der = issue_with(&h, &c, &["delegated.example.com"], json!({})).await;
    let (request, cert_id) = ocsp_request(&h, &der);
    let r = ocsp_post(&h, request).await;
    assert_eq!(ocsp_status(&r.body, &cert_id), 0x80, "good");
    // The response carries the responder's certificate: issued by the
    // intermediate, for OCSP signing only.
    let ca = &h.server.app.ra.ca_for_tests();
    let intermediate = Certificate::from_der(ca.intermediate_der()).unwrap();
    let responder = (0..r.body.len())
        .filter(|&i| r.body[i] == 0x30)
        .filter_map(|i| Certificate::from_der(&r.body[i..]).ok())
        .next()
        .expect("a certificate in the response");
    assert_eq!(
        responder.tbs_certificate.issuer,
        intermediate.tbs_certificate.subject
    );
    let eku: ExtendedKeyUsage = extension(&responder, "2.5.29.37").unwrap();
    assert_eq!(
        eku.0.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
        vec!["1.3.6.1.5.5.7.3.9"]
    );
    assert!(
        has_extension(&responder, "1.3.6.1.5.5.7.48.1.5"),
        "ocsp-nocheck"
    );
}

#[tokio::test]
async fn a_replacement_that_failed_frees_the_certificate() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let der = issue_with(&h, &c, &["again.example.com"], json!({})).await;
    let id = ari_id(&der);
    let payload = json!({"identifiers": dns_ids(&["again.example.com"]), "replaces": id});
    let r = new_order(&h, &c, payload.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // The replacing order reused the valid authorization; deactivating it
    // makes that order invalid.
    let authz = r.json()["authorizations"][0].as_str().unwrap().to_owned();
    let d = h
        .post(&c, &authz, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(d.json()["status"], "deactivated");
    let order_url = r.header("location").unwrap();
    assert_eq!(
        h.post(&c, &order_url, None).await.json()["status"],
        "invalid"
    );
    let r = new_order(&h, &c, payload.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    // That one is live (pending): a third is refused.
    let r = new_order(&h, &c, payload).await;
    assert_eq!(r.problem(), "alreadyReplaced");
}

#[tokio::test]
async fn concurrent_replacements_let_exactly_one_through() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let der = issue_with(&h, &c, &["race.example.com"], json!({})).await;
    let payload = json!({"identifiers": dns_ids(&["race.example.com"]), "replaces": ari_id(&der)});
    let results =
        futures_util::future::join_all((0..8).map(|_| new_order(&h, &c, payload.clone()))).await;
    let created = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one replacing order");
    for r in results.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(r.problem(), "alreadyReplaced");
    }
}

#[tokio::test]
async fn requested_validity_stays_within_the_profile() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let now = h.server.app.ra.clock_for_tests().now();
    let t = crate::clock::rfc3339;
    // No backdating on request.
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["v.example.com"]), "notBefore": t(now - 86400)}),
    )
    .await;
    assert_eq!(r.problem(), "malformed");
    assert!(r.json()["detail"].as_str().unwrap().contains("past"));
    // A span of exactly the profile's validity (both ends counted) is the
    // most allowed.
    let nb = now + 60;
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["v.example.com"]), "profile": "shortlived",
               "notBefore": t(nb), "notAfter": t(nb + 160 * 3600)}),
    )
    .await;
    assert_eq!(r.problem(), "malformed");
    let r = new_order(
        &h,
        &c,
        json!({"identifiers": dns_ids(&["v.example.com"]), "profile": "shortlived",
               "notBefore": t(nb), "notAfter": t(nb + 160 * 3600 - 1)}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    // Only notAfter, at the profile's full length: the backdate must not
    // stretch the certificate beyond it.
    let der = issue_with(
        &h,
        &c,
        &["v.example.com"],
        json!({"profile": "shortlived", "notAfter": t(now + 160 * 3600 - 1)}),
    )
    .await;
    let cert = Certificate::from_der(&der).unwrap();
    assert!(
        validity_secs(&cert) < 160 * 3600,
        "{}",
        validity_secs(&cert)
    );
}
