//! The JWS/JWK parser: every ACME POST body goes through `Jws::parse`
//! (http/request.rs), stored account keys through `Jwk::from_json_str`,
//! and a newAccount's `externalAccountBinding` through
//! `eab::verify_binding`. The input is tried as each of the three.
//!
//! Invariants: no panic; a parsed JWS gives back its members exactly as
//! sent and its payload decoded from them; a parsed JWK's canonical JSON
//! (RFC 7638) parses to the same key, thumbprint and SPKI.
#![no_main]

use std::sync::OnceLock;

use acme_ca::fuzzing::eab::{self, MacKey};
use acme_ca::fuzzing::{b64, Jwk, Jws};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The outer key and the MAC key an EAB is checked against.
fn eab_setup() -> &'static (Jwk, MacKey) {
    static SETUP: OnceLock<(Jwk, MacKey)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let jwk = Jwk::from_json_str(
            r#"{"crv":"P-256","kty":"EC","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#,
        )
        .expect("RFC 7517 example key");
        let mac = MacKey::from_b64url("zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W")
            .expect("fixed MAC key");
        (jwk, mac)
    })
}

fn check_jwk(jwk: &Jwk) {
    let again = Jwk::from_json_str(jwk.canonical_json())
        .expect("the canonical JSON of a parsed JWK parses again");
    assert_eq!(again.canonical_json(), jwk.canonical_json());
    assert_eq!(again.thumbprint(), jwk.thumbprint());
    assert_eq!(again.key_type(), jwk.key_type());
    if let (Ok(a), Ok(b)) = (jwk.to_spki_der(), again.to_spki_der()) {
        assert_eq!(a, b);
    }
    assert_eq!(
        b64::decode(jwk.thumbprint()).map(|t| t.len()).ok(),
        Some(32)
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(jws) = Jws::parse(data) {
        assert_eq!(
            jws.signing_input(),
            format!("{}.{}", jws.protected_b64(), jws.payload_b64()).as_bytes()
        );
        assert_eq!(
            b64::decode(jws.payload_b64()).expect("payload was decoded once"),
            jws.payload()
        );
        assert_eq!(jws.is_post_as_get(), jws.payload().is_empty());
        assert!(jws.jwk().is_some() != jws.kid().is_some());
        if let Some(jwk) = jws.jwk() {
            check_jwk(jwk);
            // Seeds carry real signatures: those verify, mutants must not
            // panic on the way to saying no.
            let _ = jws.verify(jwk);
        }
        // The payload of a newAccount may carry an EAB: check it as the RA does.
        if let Ok(Value::Object(payload)) = serde_json::from_slice::<Value>(jws.payload()) {
            if let Some(binding) = payload.get("externalAccountBinding") {
                let (outer, mac) = eab_setup();
                let _ = eab::verify_binding(
                    binding,
                    outer,
                    "https://ca.example/acme/new-account",
                    |_| Some(mac),
                );
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(jwk) = Jwk::from_json_str(text) {
            check_jwk(&jwk);
        }
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let (outer, mac) = eab_setup();
        let _ = eab::verify_binding(&value, outer, "https://ca.example/acme/new-account", |_| {
            Some(mac)
        });
    }
});
