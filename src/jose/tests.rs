//! Unit tests for the JOSE module: real signatures made with aws-lc-rs key
//! pairs, then every rejection `Jws::parse` and `Jwk::from_json` make.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use serde_json::{json, Value};

use super::jwk::{KeyType, RSA_LEGACY_MIN_BITS, RSA_MIN_BITS};
use super::*;

const URL: &str = "https://ca.test/acme/new-order";
const NONCE: &str = "bm9uY2UtMTIzNA";

const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

// ---------------------------------------------------------------- helpers

/// A key pair that signs JWS in the tests.
enum Signer {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(&'static RsaKeyPair),
}

/// RSA-2048 generation is slow; share one key pair across tests.
fn rsa_pair() -> &'static RsaKeyPair {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    KEY.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
}

impl Signer {
    fn ec(alg: &'static EcdsaSigningAlgorithm) -> Signer {
        Signer::Ec(EcdsaKeyPair::generate(alg).unwrap())
    }
    fn p256() -> Signer {
        Signer::ec(&sig::ECDSA_P256_SHA256_FIXED_SIGNING)
    }
    fn p384() -> Signer {
        Signer::ec(&sig::ECDSA_P384_SHA384_FIXED_SIGNING)
    }
    fn ed25519() -> Signer {
        Signer::Ed(Ed25519KeyPair::generate().unwrap())
    }
    fn rsa() -> Signer {
        Signer::Rsa(rsa_pair())
    }

    fn jwk_json(&self) -> Value {
        match self {
            Signer::Ec(kp) => {
                let point = kp.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": b64::encode(&point[1..1 + len]),
                    "y": b64::encode(&point[1 + len..]),
                })
            }
            Signer::Ed(kp) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64::encode(kp.public_key().as_ref()),
            }),
            Signer::Rsa(kp) => {
                let pk = kp.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64::encode(pk.modulus().big_endian_without_leading_zero()),
                    "e": b64::encode(pk.exponent().big_endian_without_leading_zero()),
                })
            }
        }
    }

    fn jwk(&self) -> Jwk {
        Jwk::from_json(&self.jwk_json()).unwrap()
    }

    fn sign(&self, alg: Alg, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Ec(kp) => kp.sign(&rng, msg).unwrap().as_ref().to_vec(),
            Signer::Ed(kp) => kp.sign(msg).as_ref().to_vec(),
            Signer::Rsa(kp) => {
                let padding: &'static dyn sig::RsaEncoding = match alg {
                    Alg::Rs256 => &sig::RSA_PKCS1_SHA256,
                    Alg::Rs384 => &sig::RSA_PKCS1_SHA384,
                    Alg::Rs512 => &sig::RSA_PKCS1_SHA512,
                    Alg::Ps256 => &sig::RSA_PSS_SHA256,
                    other => panic!("{other} is not an RSA algorithm"),
                };
                let mut out = vec![0; kp.public_modulus_len()];
                kp.sign(padding, &rng, msg, &mut out).unwrap();
                out
            }
        }
    }

    /// A protected header with `jwk`, `nonce` and `url`.
    fn jwk_header(&self, alg: Alg) -> Value {
        json!({"alg": alg.as_str(), "nonce": NONCE, "url": URL, "jwk": self.jwk_json()})
    }

    /// A flattened JWS body over `header` and `payload`, signed by `self`.
    fn body(&self, alg: Alg, header: &Value, payload: &[u8]) -> Vec<u8> {
        let protected = b64::encode(header.to_string());
        let payload = b64::encode(payload);
        let input = format!("{protected}.{payload}");
        let signature = b64::encode(self.sign(alg, input.as_bytes()));
        raw(&protected, &payload, &signature)
    }
}

fn kid_header(alg: Alg) -> Value {
    json!({"alg": alg.as_str(), "nonce": NONCE, "url": URL, "kid": "https://ca.test/acme/acct/1"})
}

fn raw(protected: &str, payload: &str, signature: &str) -> Vec<u8> {
    json!({"protected": protected, "payload": payload, "signature": signature})
        .to_string()
        .into_bytes()
}

/// A body with `header` as the protected header and a dummy signature: for
/// checks that happen before any signature is looked at.
fn unsigned(header: &Value) -> Vec<u8> {
    raw(&b64::encode(header.to_string()), "e30", "c2lnbmF0dXJl")
}

fn parse_err(body: &[u8]) -> Error {
    Jws::parse(body).expect_err("parse should fail")
}

fn parse_kind(body: &[u8]) -> ErrorKind {
    parse_err(body).kind
}

/// Parse a body whose header is a valid P-256 `jwk` header changed by `f`.
fn header_kind(f: impl FnOnce(&mut Map<String, Value>)) -> ErrorKind {
    let mut h = Signer::p256().jwk_header(Alg::Es256);
    f(h.as_object_mut().unwrap());
    parse_kind(&unsigned(&h))
}

fn jwk_kind(v: Value) -> ErrorKind {
    Jwk::from_json(&v).expect_err("JWK should be refused").kind
}

fn assert_verification_error(r: Result<()>) {
    let e = r.expect_err("verification should fail");
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert_eq!(e.detail, "JWS verification error");
}

// ------------------------------------------------- signatures that verify

fn round_trip(signer: &Signer, alg: Alg) {
    let payload = br#"{"identifiers":[{"type":"dns","value":"example.com"}]}"#;
    let jws = Jws::parse(&signer.body(alg, &signer.jwk_header(alg), payload)).unwrap();
    assert_eq!(jws.protected.alg, alg);
    assert_eq!(jws.protected.url, URL);
    assert_eq!(jws.protected.nonce.as_deref(), Some(NONCE));
    assert_eq!(jws.payload(), payload);
    assert!(!jws.is_post_as_get());
    let key = jws.jwk().expect("header has a jwk");
    assert_eq!(key, &signer.jwk());
    jws.verify(key).unwrap();
    // The same key, named by kid and looked up separately.
    let jws = Jws::parse(&signer.body(alg, &kid_header(alg), payload)).unwrap();
    assert_eq!(jws.kid(), Some("https://ca.test/acme/acct/1"));
    jws.verify(&signer.jwk()).unwrap();
}

#[test]
fn es256_verifies() {
    round_trip(&Signer::p256(), Alg::Es256);
}

#[test]
fn es384_verifies() {
    round_trip(&Signer::p384(), Alg::Es384);
}

#[test]
fn eddsa_verifies() {
    round_trip(&Signer::ed25519(), Alg::EdDsa);
}

#[test]
fn rs256_verifies() {
    round_trip(&Signer::rsa(), Alg::Rs256);
}

#[test]
fn rs384_and_rs512_verify() {
    round_trip(&Signer::rsa(), Alg::Rs384);
    round_trip(&Signer::rsa(), Alg::Rs512);
}

#[test]
fn ps256_verifies() {
    round_trip(&Signer::rsa(), Alg::Ps256);
}

#[test]
fn one_rsa_jwk_verifies_every_rsa_alg() {
    let signer = Signer::rsa();
    let key = signer.jwk();
    for alg in [Alg::Ps256, Alg::Rs512, Alg::Rs256, Alg::Rs384, Alg::Ps256] {
        let jws = Jws::parse(&signer.body(alg, &kid_header(alg), b"{}")).unwrap();
        jws.verify(&key).unwrap();
    }
    // A clone shares nothing mutable and still verifies.
    let jws = Jws::parse(&signer.body(Alg::Rs384, &kid_header(Alg::Rs384), b"{}")).unwrap();
    jws.verify(&key.clone()).unwrap();
}

#[test]
fn post_as_get_has_empty_payload_and_verifies() {
    let signer = Signer::p256();
    let jws = Jws::parse(&signer.body(Alg::Es256, &kid_header(Alg::Es256), b"")).unwrap();
    assert!(jws.is_post_as_get());
    assert!(jws.payload().is_empty());
    assert_eq!(jws.payload_b64(), "");
    jws.verify(&signer.jwk()).unwrap();
    // "{}" is an (empty) JSON object, not POST-as-GET.
    let jws = Jws::parse(&signer.body(Alg::Es256, &kid_header(Alg::Es256), b"{}")).unwrap();
    assert!(!jws.is_post_as_get());
}

#[test]
fn signing_input_is_the_received_text() {
    let signer = Signer::ed25519();
    let body = signer.body(Alg::EdDsa, &kid_header(Alg::EdDsa), b"{}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    let jws = Jws::parse(&body).unwrap();
    assert_eq!(jws.protected_b64(), v["protected"].as_str().unwrap());
    assert_eq!(jws.payload_b64(), v["payload"].as_str().unwrap());
    let expected = format!("{}.{}", jws.protected_b64(), jws.payload_b64());
    assert_eq!(jws.signing_input(), expected.as_bytes());
    assert_eq!(jws.signature().len(), 64);
}

#[test]
fn nonce_is_optional() {
    let signer = Signer::p256();
    let mut h = signer.jwk_header(Alg::Es256);
    h.as_object_mut().unwrap().remove("nonce");
    let jws = Jws::parse(&signer.body(Alg::Es256, &h, b"{}")).unwrap();
    assert_eq!(jws.protected.nonce, None);
    jws.verify(jws.jwk().unwrap()).unwrap();
}

#[test]
fn unknown_header_members_are_ignored() {
    let signer = Signer::p256();
    let mut h = signer.jwk_header(Alg::Es256);
    h["typ"] = json!("JOSE+JSON");
    let jws = Jws::parse(&signer.body(Alg::Es256, &h, b"{}")).unwrap();
    jws.verify(jws.jwk().unwrap()).unwrap();
}

// ------------------------------------------------- signatures that do not

#[test]
fn tampered_payload_fails() {
    let signer = Signer::p256();
    let body = signer.body(Alg::Es256, &kid_header(Alg::Es256), br#"{"a":1}"#);
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["payload"] = json!(b64::encode(br#"{"a":2}"#));
    let jws = Jws::parse(v.to_string().as_bytes()).unwrap();
    assert_verification_error(jws.verify(&signer.jwk()));
}

#[test]
fn tampered_protected_header_fails() {
    let signer = Signer::rsa();
    let body = signer.body(Alg::Rs256, &kid_header(Alg::Rs256), b"{}");
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    let mut h = kid_header(Alg::Rs256);
    h["url"] = json!("https://ca.test/acme/revoke-cert");
    v["protected"] = json!(b64::encode(h.to_string()));
    let jws = Jws::parse(v.to_string().as_bytes()).unwrap();
    assert_verification_error(jws.verify(&signer.jwk()));
}

#[test]
fn tampered_signature_fails() {
    for (signer, alg) in [
        (Signer::p256(), Alg::Es256),
        (Signer::p384(), Alg::Es384),
        (Signer::ed25519(), Alg::EdDsa),
        (Signer::rsa(), Alg::Rs256),
        (Signer::rsa(), Alg::Ps256),
    ] {
        let body = signer.body(alg, &kid_header(alg), b"{}");
        let mut v: Value = serde_json::from_slice(&body).unwrap();
        let mut s = b64::decode(v["signature"].as_str().unwrap()).unwrap();
        s[5] ^= 0x01;
        v["signature"] = json!(b64::encode(&s));
        let jws = Jws::parse(v.to_string().as_bytes()).unwrap();
        assert_verification_error(jws.verify(&signer.jwk()));
    }
}

#[test]
fn empty_signature_fails() {
    let signer = Signer::p256();
    let body = signer.body(Alg::Es256, &kid_header(Alg::Es256), b"{}");
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["signature"] = json!("");
    let jws = Jws::parse(v.to_string().as_bytes()).unwrap();
    assert_verification_error(jws.verify(&signer.jwk()));
}

#[test]
fn signature_by_another_key_fails() {
    let signer = Signer::p256();
    let jws = Jws::parse(&signer.body(Alg::Es256, &kid_header(Alg::Es256), b"{}")).unwrap();
    assert_verification_error(jws.verify(&Signer::p256().jwk()));
    let jws = Jws::parse(&signer.body(Alg::Es256, &signer.jwk_header(Alg::Es256), b"{}")).unwrap();
    assert_verification_error(jws.verify(&Signer::p256().jwk()));
}

#[test]
fn der_encoded_ecdsa_signature_fails() {
    // JOSE wants fixed-width r||s; an ASN.1 DER signature must not pass.
    let kp = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let pkcs8 = kp.to_pkcs8v1().unwrap();
    let fixed = Signer::Ec(
        EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap(),
    );
    let protected = b64::encode(kid_header(Alg::Es256).to_string());
    let input = format!("{protected}.e30");
    let der = kp.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    let jws = Jws::parse(&raw(&protected, "e30", &b64::encode(der.as_ref()))).unwrap();
    assert_verification_error(jws.verify(&fixed.jwk()));
    // The fixed-width signature by the same key does verify.
    let jws = Jws::parse(&fixed.body(Alg::Es256, &kid_header(Alg::Es256), b"{}")).unwrap();
    jws.verify(&fixed.jwk()).unwrap();
}

#[test]
fn verify_refuses_alg_that_does_not_fit_the_key() {
    // kid JWS: the key is only known at verify time.
    let jws = Jws::parse(&unsigned(&kid_header(Alg::Es384))).unwrap();
    let e = jws.verify(&Signer::p256().jwk()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadSignatureAlgorithm);
    let jws = Jws::parse(&unsigned(&kid_header(Alg::Rs256))).unwrap();
    assert_eq!(
        jws.verify(&Signer::ed25519().jwk()).unwrap_err().kind,
        ErrorKind::BadSignatureAlgorithm
    );
    let jws = Jws::parse(&unsigned(&kid_header(Alg::EdDsa))).unwrap();
    assert_eq!(
        jws.verify(&Signer::rsa().jwk()).unwrap_err().kind,
        ErrorKind::BadSignatureAlgorithm
    );
    // And Jwk::verify directly.
    let e = Signer::p384()
        .jwk()
        .verify(Alg::Es256, b"x", &[0; 64])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadSignatureAlgorithm);
}

// ------------------------------------------------ outer structure checks

#[test]
fn body_not_json_is_malformed() {
    assert_eq!(parse_kind(b"not json"), ErrorKind::Malformed);
    assert_eq!(parse_kind(b""), ErrorKind::Malformed);
    assert_eq!(parse_kind(&[0xff, 0xfe]), ErrorKind::Malformed);
}

#[test]
fn body_not_object_is_malformed() {
    assert_eq!(parse_kind(b"[1,2,3]"), ErrorKind::Malformed);
    assert_eq!(parse_kind(br#""a.b.c""#), ErrorKind::Malformed);
    assert_eq!(parse_kind(b"null"), ErrorKind::Malformed);
}

#[test]
fn missing_member_is_malformed() {
    for member in ["protected", "payload", "signature"] {
        let mut v: Value = serde_json::from_slice(&unsigned(&kid_header(Alg::Es256))).unwrap();
        v.as_object_mut().unwrap().remove(member);
        let e = parse_err(v.to_string().as_bytes());
        assert_eq!(e.kind, ErrorKind::Malformed, "{member}");
        assert!(e.detail.contains(member), "{}", e.detail);
    }
}

#[test]
fn non_string_member_is_malformed() {
    for member in ["protected", "payload", "signature"] {
        let mut v: Value = serde_json::from_slice(&unsigned(&kid_header(Alg::Es256))).unwrap();
        v[member] = json!({"a": 1});
        assert_eq!(
            parse_kind(v.to_string().as_bytes()),
            ErrorKind::Malformed,
            "{member}"
        );
    }
    let mut v: Value = serde_json::from_slice(&unsigned(&kid_header(Alg::Es256))).unwrap();
    v["payload"] = Value::Null;
    assert_eq!(parse_kind(v.to_string().as_bytes()), ErrorKind::Malformed);
}

#[test]
fn general_serialization_is_malformed() {
    let protected = b64::encode(kid_header(Alg::Es256).to_string());
    let body = json!({
        "payload": "e30",
        "signatures": [{"protected": protected, "signature": "c2ln"}],
    });
    let e = parse_err(body.to_string().as_bytes());
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("general serialization"));
    // Even alongside the flattened members.
    let mut v: Value = serde_json::from_slice(&unsigned(&kid_header(Alg::Es256))).unwrap();
    v["signatures"] = json!([]);
    assert_eq!(parse_kind(v.to_string().as_bytes()), ErrorKind::Malformed);
}

#[test]
fn unprotected_header_is_malformed() {
    let mut v: Value = serde_json::from_slice(&unsigned(&kid_header(Alg::Es256))).unwrap();
    v["header"] = json!({"kid": "x"});
    let e = parse_err(v.to_string().as_bytes());
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("unprotected header"));
}

#[test]
fn unknown_top_level_member_is_malformed() {
    let mut v: Value = serde_json::from_slice(&unsigned(&kid_header(Alg::Es256))).unwrap();
    v["extra"] = json!(1);
    let e = parse_err(v.to_string().as_bytes());
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("extra"));
}

// ---------------------------------------------------------- base64 checks

#[test]
fn padded_protected_is_malformed() {
    let protected = b64::encode(kid_header(Alg::Es256).to_string());
    let padded = match protected.len() % 4 {
        2 => format!("{protected}=="),
        3 => format!("{protected}="),
        _ => format!("{protected}===="),
    };
    let e = parse_err(&raw(&padded, "e30", "c2ln"));
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("protected"));
}

#[test]
fn non_url_safe_payload_is_malformed() {
    let protected = b64::encode(kid_header(Alg::Es256).to_string());
    // "+/8" is standard base64 of 0xfb 0xff; base64url would be "-_8".
    let e = parse_err(&raw(&protected, "+/8", "c2ln"));
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("payload"));
}

#[test]
fn bad_base64_signature_is_malformed() {
    let protected = b64::encode(kid_header(Alg::Es256).to_string());
    for bad in ["c2ln=", "c2l/", "c 2ln", "c"] {
        let e = parse_err(&raw(&protected, "e30", bad));
        assert_eq!(e.kind, ErrorKind::Malformed, "{bad}");
        assert!(e.detail.contains("signature"), "{}", e.detail);
    }
}

#[test]
fn protected_not_a_json_object_is_malformed() {
    for text in ["not json", "[1,2]", "\"alg\"", ""] {
        let e = parse_err(&raw(&b64::encode(text), "e30", "c2ln"));
        assert_eq!(e.kind, ErrorKind::Malformed, "{text}");
    }
}

// ------------------------------------------------------------- alg checks

#[test]
fn alg_none_is_bad_signature_algorithm() {
    let e = parse_err(&unsigned(&json!({"alg": "none", "url": URL, "kid": "k"})));
    assert_eq!(e.kind, ErrorKind::BadSignatureAlgorithm);
    assert!(e.detail.contains(ACCEPTED_ALGORITHMS_LIST), "{}", e.detail);
}

#[test]
fn alg_hmac_is_bad_signature_algorithm() {
    for alg in ["HS256", "HS384", "HS512"] {
        let e = parse_err(&unsigned(&json!({"alg": alg, "url": URL, "kid": "k"})));
        assert_eq!(e.kind, ErrorKind::BadSignatureAlgorithm, "{alg}");
        assert!(e.detail.contains(ACCEPTED_ALGORITHMS_LIST));
    }
}

#[test]
fn alg_off_the_allow_list_is_bad_signature_algorithm() {
    for alg in ["ES512", "PS384", "PS512", "RS1", "es256", "Ed25519", ""] {
        let kind = header_kind(|h| {
            h.insert("alg".into(), json!(alg));
        });
        assert_eq!(kind, ErrorKind::BadSignatureAlgorithm, "{alg}");
    }
    // An absurdly long name is not echoed whole.
    let long = "X".repeat(10_000);
    let e = parse_err(&unsigned(&json!({"alg": long, "url": URL, "kid": "k"})));
    assert_eq!(e.kind, ErrorKind::BadSignatureAlgorithm);
    assert!(e.detail.len() < 300);
}

#[test]
fn alg_missing_or_not_a_string_is_malformed() {
    assert_eq!(
        header_kind(|h| {
            h.remove("alg");
        }),
        ErrorKind::Malformed
    );
    assert_eq!(
        header_kind(|h| {
            h.insert("alg".into(), json!(["ES256"]));
        }),
        ErrorKind::Malformed
    );
}

#[test]
fn alg_list_is_exposed() {
    assert_eq!(Alg::accepted_names(), &ACCEPTED_ALGORITHMS);
    let names: Vec<&str> = Alg::ALL.iter().map(|a| a.as_str()).collect();
    assert_eq!(names, ACCEPTED_ALGORITHMS);
    assert_eq!(names.join(", "), ACCEPTED_ALGORITHMS_LIST);
    for alg in Alg::ALL {
        assert_eq!(Alg::from_name(alg.as_str()), Some(alg));
        assert_eq!(alg.to_string(), alg.as_str());
    }
    assert_eq!(Alg::from_name("none"), None);
}

// ---------------------------------------------------------- jwk/kid checks

#[test]
fn both_jwk_and_kid_is_malformed() {
    let kind = header_kind(|h| {
        h.insert("kid".into(), json!("https://ca.test/acme/acct/1"));
    });
    assert_eq!(kind, ErrorKind::Malformed);
}

#[test]
fn neither_jwk_nor_kid_is_malformed() {
    let kind = header_kind(|h| {
        h.remove("jwk");
    });
    assert_eq!(kind, ErrorKind::Malformed);
}

#[test]
fn kid_not_a_string_is_malformed() {
    let mut h = kid_header(Alg::Es256);
    h["kid"] = json!(1);
    assert_eq!(parse_kind(&unsigned(&h)), ErrorKind::Malformed);
}

#[test]
fn jwk_not_an_object_is_malformed() {
    let kind = header_kind(|h| {
        h.insert("jwk".into(), json!("{\"kty\":\"EC\"}"));
    });
    assert_eq!(kind, ErrorKind::Malformed);
}

// ------------------------------------------------------ url / nonce checks

#[test]
fn url_missing_is_malformed() {
    let kind = header_kind(|h| {
        h.remove("url");
    });
    assert_eq!(kind, ErrorKind::Malformed);
}

#[test]
fn url_not_a_string_is_malformed() {
    let kind = header_kind(|h| {
        h.insert("url".into(), json!({"href": URL}));
    });
    assert_eq!(kind, ErrorKind::Malformed);
}

#[test]
fn nonce_not_a_string_is_malformed() {
    let kind = header_kind(|h| {
        h.insert("nonce".into(), json!(12345));
    });
    assert_eq!(kind, ErrorKind::Malformed);
}

#[test]
fn nonce_not_base64url_is_bad_nonce() {
    for nonce in ["abc=", "a+b", "a/b", "a b", "", "nonce!"] {
        let kind = header_kind(|h| {
            h.insert("nonce".into(), json!(nonce));
        });
        assert_eq!(kind, ErrorKind::BadNonce, "{nonce:?}");
    }
}

// ------------------------------------------------- critical extensions

#[test]
fn crit_is_malformed() {
    let kind = header_kind(|h| {
        h.insert("crit".into(), json!(["exp"]));
        h.insert("exp".into(), json!(1));
    });
    assert_eq!(kind, ErrorKind::Malformed);
}

#[test]
fn b64_is_malformed() {
    for value in [json!(false), json!(true)] {
        let kind = header_kind(|h| {
            h.insert("b64".into(), value);
        });
        assert_eq!(kind, ErrorKind::Malformed);
    }
}

// ------------------------------------------------------------- key checks

fn p256_json() -> Value {
    Signer::p256().jwk_json()
}

#[test]
fn ec_unsupported_curve_is_bad_public_key() {
    let mut v = p256_json();
    v["crv"] = json!("P-521");
    assert_eq!(jwk_kind(v), ErrorKind::BadPublicKey);
    let mut v = p256_json();
    v["crv"] = json!("secp256k1");
    assert_eq!(jwk_kind(v), ErrorKind::BadPublicKey);
}

#[test]
fn ec_wrong_coordinate_length_is_bad_public_key() {
    let mut v = p256_json();
    let x = b64::decode(v["x"].as_str().unwrap()).unwrap();
    v["x"] = json!(b64::encode(&x[1..]));
    assert_eq!(jwk_kind(v), ErrorKind::BadPublicKey);
    // P-384 coordinates under a P-256 label.
    let mut v = Signer::p384().jwk_json();
    v["crv"] = json!("P-256");
    assert_eq!(jwk_kind(v), ErrorKind::BadPublicKey);
}

#[test]
fn ec_point_off_the_curve_is_bad_public_key() {
    let mut v = p256_json();
    let mut y = b64::decode(v["y"].as_str().unwrap()).unwrap();
    y[31] ^= 0x01;
    v["y"] = json!(b64::encode(&y));
    let e = Jwk::from_json(&v).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadPublicKey);
    assert!(e.detail.contains("curve"));
    let mut v = Signer::p384().jwk_json();
    v["x"] = json!(b64::encode([0u8; 48]));
    v["y"] = json!(b64::encode([0u8; 48]));
    assert_eq!(jwk_kind(v), ErrorKind::BadPublicKey);
}

#[test]
fn ec_missing_member_is_malformed() {
    for member in ["crv", "x", "y"] {
        let mut v = p256_json();
        v.as_object_mut().unwrap().remove(member);
        assert_eq!(jwk_kind(v), ErrorKind::Malformed, "{member}");
    }
    let mut v = p256_json();
    v["x"] = json!(7);
    assert_eq!(jwk_kind(v), ErrorKind::Malformed);
}

#[test]
fn jwk_bad_base64_is_malformed() {
    let mut v = p256_json();
    let x = v["x"].as_str().unwrap().to_string();
    v["x"] = json!(format!("{x}="));
    assert_eq!(jwk_kind(v), ErrorKind::Malformed);
}

fn rsa_json(n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "n": b64::encode(n), "e": b64::encode(e)})
}

/// An odd modulus-shaped integer of exactly `bits` bits (not a real key).
fn modulus(bits: usize) -> Vec<u8> {
    let len = bits.div_ceil(8);
    let mut n = vec![0xa5; len];
    n[0] = 0xff >> (len * 8 - bits);
    n[len - 1] |= 1;
    n
}

#[test]
fn rsa_size_bounds() {
    assert!(Jwk::from_json(&rsa_json(&modulus(2048), &[1, 0, 1])).is_ok());
    assert!(Jwk::from_json(&rsa_json(&modulus(8192), &[1, 0, 1])).is_ok());
    assert_eq!(
        Jwk::from_json(&rsa_json(&modulus(3072), &[3]))
            .unwrap()
            .key_type(),
        KeyType::Rsa
    );
}

#[test]
fn rsa_too_small_is_bad_public_key() {
    // Under 1024 bits nothing parses; from 1024 to 2047 bits a key parses
    // but the default policy refuses it where a key enters.
    assert_eq!(
        jwk_kind(rsa_json(&modulus(1023), &[1, 0, 1])),
        ErrorKind::BadPublicKey
    );
    for bits in [1024, 2047] {
        let jwk = Jwk::from_json(&rsa_json(&modulus(bits), &[1, 0, 1])).unwrap();
        assert_eq!(
            jwk.check_rsa_size(RSA_MIN_BITS).unwrap_err().kind,
            ErrorKind::BadPublicKey
        );
        assert!(jwk.check_rsa_size(RSA_LEGACY_MIN_BITS).is_ok());
    }
    let jwk = Jwk::from_json(&rsa_json(&modulus(2048), &[1, 0, 1])).unwrap();
    assert!(jwk.check_rsa_size(RSA_MIN_BITS).is_ok());
    // Leading zero octets do not count towards the size.
    let mut n = vec![0, 0];
    n.extend(modulus(2040));
    let jwk = Jwk::from_json(&rsa_json(&n, &[1, 0, 1])).unwrap();
    assert_eq!(
        jwk.check_rsa_size(RSA_MIN_BITS).unwrap_err().kind,
        ErrorKind::BadPublicKey
    );
    let mut n = vec![0, 0];
    n.extend(modulus(1016));
    assert_eq!(jwk_kind(rsa_json(&n, &[1, 0, 1])), ErrorKind::BadPublicKey);
}

/// A 1024-bit key (Pebble mode) verifies RS256 and RS512 only.
#[test]
fn legacy_rsa_keys_verify_rs256_and_rs512_only() {
    let jwk = Jwk::from_json(&rsa_json(&modulus(1024), &[1, 0, 1])).unwrap();
    assert_eq!(
        jwk.verify(Alg::Rs384, b"x", &[0; 128]).unwrap_err().kind,
        ErrorKind::BadSignatureAlgorithm
    );
    assert_eq!(
        jwk.verify(Alg::Ps256, b"x", &[0; 128]).unwrap_err().kind,
        ErrorKind::BadSignatureAlgorithm
    );
    // RS256 is tried (and fails on the made-up signature).
    assert_eq!(
        jwk.verify(Alg::Rs256, b"x", &[0; 128]).unwrap_err().kind,
        ErrorKind::Malformed
    );
}

#[test]
fn rsa_too_large_is_bad_public_key() {
    assert_eq!(
        jwk_kind(rsa_json(&modulus(8193), &[1, 0, 1])),
        ErrorKind::BadPublicKey
    );
    assert_eq!(
        jwk_kind(rsa_json(&modulus(16384), &[1, 0, 1])),
        ErrorKind::BadPublicKey
    );
}

#[test]
fn rsa_bad_exponent_is_bad_public_key() {
    let n = modulus(2048);
    for e in [
        &[][..],
        &[0],
        &[1],
        &[0, 1],
        &[1, 0, 0],
        &[2],
        &[1, 0, 0, 0, 1],
    ] {
        assert_eq!(jwk_kind(rsa_json(&n, e)), ErrorKind::BadPublicKey, "{e:?}");
    }
}

#[test]
fn rsa_even_modulus_is_bad_public_key() {
    let mut n = modulus(2048);
    *n.last_mut().unwrap() &= 0xfe;
    assert_eq!(jwk_kind(rsa_json(&n, &[1, 0, 1])), ErrorKind::BadPublicKey);
}

#[test]
fn rsa_missing_member_is_malformed() {
    assert_eq!(
        jwk_kind(json!({"kty": "RSA", "e": "AQAB"})),
        ErrorKind::Malformed
    );
    assert_eq!(
        jwk_kind(json!({"kty": "RSA", "n": RFC7638_N})),
        ErrorKind::Malformed
    );
}

#[test]
fn rsa_leading_zeros_are_normalized() {
    let signer = Signer::rsa();
    let v = signer.jwk_json();
    let mut n = vec![0];
    n.extend(b64::decode(v["n"].as_str().unwrap()).unwrap());
    let padded =
        Jwk::from_json(&json!({"kty": "RSA", "n": b64::encode(&n), "e": "AAEAAQ"})).unwrap();
    let plain = signer.jwk();
    assert_eq!(padded.canonical_json(), plain.canonical_json());
    assert_eq!(padded.thumbprint(), plain.thumbprint());
    let jws = Jws::parse(&signer.body(Alg::Rs256, &kid_header(Alg::Rs256), b"{}")).unwrap();
    jws.verify(&padded).unwrap();
}

#[test]
fn okp_unsupported_curve_is_bad_public_key() {
    let x = b64::encode([9u8; 32]);
    assert_eq!(
        jwk_kind(json!({"kty": "OKP", "crv": "X25519", "x": x})),
        ErrorKind::BadPublicKey
    );
    assert_eq!(
        jwk_kind(json!({"kty": "OKP", "crv": "Ed448", "x": b64::encode([9u8; 57])})),
        ErrorKind::BadPublicKey
    );
}

#[test]
fn ed25519_wrong_length_is_bad_public_key() {
    for len in [0usize, 31, 33, 44] {
        let v = json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(vec![9u8; len])});
        assert_eq!(jwk_kind(v), ErrorKind::BadPublicKey, "{len}");
    }
}

#[test]
fn unsupported_kty_is_bad_public_key() {
    assert_eq!(jwk_kind(json!({"kty": "oct"})), ErrorKind::BadPublicKey);
    assert_eq!(
        jwk_kind(json!({"kty": "DSA", "y": "AQAB"})),
        ErrorKind::BadPublicKey
    );
    assert_eq!(
        jwk_kind(json!({"kty": "ec", "crv": "P-256"})),
        ErrorKind::BadPublicKey
    );
}

#[test]
fn kty_missing_or_jwk_not_object_is_malformed() {
    let mut v = p256_json();
    v.as_object_mut().unwrap().remove("kty");
    assert_eq!(jwk_kind(v), ErrorKind::Malformed);
    assert_eq!(jwk_kind(json!(["EC"])), ErrorKind::Malformed);
}

#[test]
fn private_members_are_malformed() {
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let mut v = Signer::rsa().jwk_json();
        v[member] = json!("AQAB");
        let e = Jwk::from_json(&v).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed, "{member}");
        assert!(e.detail.contains("private"));
    }
    let mut v = p256_json();
    v["d"] = json!(b64::encode([1u8; 32]));
    assert_eq!(jwk_kind(v), ErrorKind::Malformed);
    assert_eq!(
        jwk_kind(json!({"kty": "oct", "k": "c2VjcmV0"})),
        ErrorKind::Malformed
    );
}

#[test]
fn bad_jwk_in_header_is_refused_at_parse() {
    let kind = header_kind(|h| {
        h.insert("jwk".into(), json!({"kty": "oct"}));
    });
    assert_eq!(kind, ErrorKind::BadPublicKey);
    let kind = header_kind(|h| {
        let mut jwk = p256_json();
        jwk["d"] = json!(b64::encode([1u8; 32]));
        h.insert("jwk".into(), jwk);
    });
    assert_eq!(kind, ErrorKind::Malformed);
}

// ------------------------------------------------------ alg fits the key

#[test]
fn alg_key_mismatch_in_jwk_header_is_bad_signature_algorithm() {
    let cases = [
        (Signer::p384(), Alg::Es256),
        (Signer::p256(), Alg::Es384),
        (Signer::p256(), Alg::Rs256),
        (Signer::p256(), Alg::EdDsa),
        (Signer::rsa(), Alg::Es256),
        (Signer::rsa(), Alg::EdDsa),
        (Signer::ed25519(), Alg::Es256),
        (Signer::ed25519(), Alg::Ps256),
    ];
    for (signer, alg) in cases {
        let e = parse_err(&unsigned(&signer.jwk_header(alg)));
        assert_eq!(e.kind, ErrorKind::BadSignatureAlgorithm, "{alg}");
        assert!(e.detail.contains(alg.as_str()));
    }
}

#[test]
fn key_type_fits_table() {
    for alg in Alg::ALL {
        let fitting: Vec<KeyType> = [
            KeyType::Rsa,
            KeyType::EcP256,
            KeyType::EcP384,
            KeyType::EcP521,
            KeyType::Ed25519,
        ]
        .into_iter()
        .filter(|kt| kt.fits(alg))
        .collect();
        let expected = match alg {
            Alg::Es256 => KeyType::EcP256,
            Alg::Es384 => KeyType::EcP384,
            Alg::Es512 => KeyType::EcP521,
            Alg::EdDsa => KeyType::Ed25519,
            _ => KeyType::Rsa,
        };
        assert_eq!(fitting, vec![expected], "{alg}");
    }
}

// ------------------------------------------- thumbprints, keys, key auths

#[test]
fn rfc7638_example_thumbprint() {
    let jwk = Jwk::from_json(&json!({
        "kty": "RSA",
        "n": RFC7638_N,
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }))
    .unwrap();
    assert_eq!(jwk.thumbprint(), RFC7638_THUMBPRINT);
    assert_eq!(
        jwk.canonical_json(),
        format!(r#"{{"e":"AQAB","kty":"RSA","n":"{RFC7638_N}"}}"#)
    );
    assert_eq!(jwk.key_type(), KeyType::Rsa);
}

#[test]
fn canonical_json_shapes() {
    let v = p256_json();
    let jwk = Jwk::from_json(&v).unwrap();
    let expected = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        v["x"].as_str().unwrap(),
        v["y"].as_str().unwrap()
    );
    assert_eq!(jwk.canonical_json(), expected);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, expected.as_bytes());
    assert_eq!(jwk.thumbprint(), b64::encode(digest.as_ref()));
    assert_eq!(
        jwk.to_value(),
        serde_json::from_str::<Value>(&expected).unwrap()
    );

    let v = Signer::ed25519().jwk_json();
    let jwk = Jwk::from_json(&v).unwrap();
    assert_eq!(
        jwk.canonical_json(),
        format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            v["x"].as_str().unwrap()
        )
    );
    assert_eq!(jwk.thumbprint().len(), 43);
}

#[test]
fn optional_members_do_not_change_the_key() {
    let v = p256_json();
    let mut decorated = v.clone();
    decorated["use"] = json!("sig");
    decorated["kid"] = json!("my key");
    decorated["alg"] = json!("ES256");
    let a = Jwk::from_json(&v).unwrap();
    let b = Jwk::from_json(&decorated).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.thumbprint(), b.thumbprint());
    assert_ne!(a, Jwk::from_json(&p256_json()).unwrap());
}

#[test]
fn canonical_json_round_trips() {
    for signer in [
        Signer::p256(),
        Signer::p384(),
        Signer::ed25519(),
        Signer::rsa(),
    ] {
        let jwk = signer.jwk();
        let again = Jwk::from_json_str(jwk.canonical_json()).unwrap();
        assert_eq!(again, jwk);
        assert_eq!(again.thumbprint(), jwk.thumbprint());
    }
    assert_eq!(
        Jwk::from_json_str("{").unwrap_err().kind,
        ErrorKind::Malformed
    );
}

#[test]
fn spki_der_matches_aws_lc() {
    let kp = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let expected = kp.public_key().as_der().unwrap();
    let signer = Signer::Ec(kp);
    assert_eq!(signer.jwk().to_spki_der().unwrap(), expected.as_ref());

    let expected = rsa_pair().public_key().as_der().unwrap();
    assert_eq!(
        Signer::rsa().jwk().to_spki_der().unwrap(),
        expected.as_ref()
    );

    let kp = Ed25519KeyPair::generate().unwrap();
    let expected = kp.public_key().as_der().unwrap();
    assert_eq!(
        Signer::Ed(kp).jwk().to_spki_der().unwrap(),
        expected.as_ref()
    );
}

#[test]
fn parsed_values_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Jwk>();
    assert_send_sync::<Jws>();
}

#[test]
fn jwk_debug_is_short() {
    let s = format!("{:?}", Signer::rsa().jwk());
    assert!(s.contains("thumbprint"));
    assert!(s.len() < 200, "{s}");
}

#[test]
fn key_authorization_format() {
    let jwk = Jwk::from_json(&json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB"})).unwrap();
    let token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
    assert_eq!(
        key_authorization(token, &jwk),
        format!("{token}.{RFC7638_THUMBPRINT}")
    );
    let jwk = Signer::p256().jwk();
    assert_eq!(
        key_authorization("tok", &jwk),
        format!("tok.{}", jwk.thumbprint())
    );
}
