//! The OCSP request reader: the body of `POST /ocsp` and the decoded path
//! of `GET /ocsp/...` go to `revocation::ocsp::parse_request`.
//!
//! Invariants: no panic; an accepted request is within the documented
//! bounds (1 to MAX_CERT_IDS CertIDs, hashes of their algorithm's length,
//! a nonce of 1 to MAX_NONCE_LEN octets), each CertID's bytes are a DER
//! element found in the request, and the responder can answer it: signing
//! a response for every CertID, with the nonce echoed, succeeds and gives
//! one DER element.
#![no_main]

use std::sync::OnceLock;

use acme_ca::fuzzing::serial_hex;
use acme_ca::fuzzing::ocsp::IssuerHashes;
use acme_ca::fuzzing::ocsp::{
    self, CertStatus, Responder, SingleAnswer, MAX_CERT_IDS, MAX_NONCE_LEN,
};
use acme_ca_fuzz::FIXTURES;
use der::{Decode, Encode, Tagged};
use libfuzzer_sys::fuzz_target;
use rcgen::KeyPair;
use time::OffsetDateTime;

/// The responder: the P-256 fixture's key and certificate.
fn responder() -> &'static (KeyPair, IssuerHashes) {
    static RESPONDER: OnceLock<(KeyPair, IssuerHashes)> = OnceLock::new();
    RESPONDER.get_or_init(|| {
        let fixture = &FIXTURES[0];
        let key = KeyPair::try_from(fixture.key_pkcs8_der).expect("fixture key");
        let hashes = IssuerHashes::from_issuer_cert(fixture.cert_der).expect("fixture cert");
        (key, hashes)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ocsp::parse_request(data) else {
        return;
    };
    assert!((1..=MAX_CERT_IDS).contains(&request.cert_ids.len()));
    if let Some(nonce) = &request.nonce {
        assert!((1..=MAX_NONCE_LEN).contains(&nonce.len()));
    }
    let (key, hashes) = responder();
    for id in &request.cert_ids {
        assert_eq!(id.issuer_name_hash.len(), id.issuer_key_hash.len());
        let element = der::AnyRef::from_der(id.der()).expect("a CertID is one DER element");
        assert_eq!(element.to_der().expect("re-encodes"), id.der());
        assert!(
            data.windows(id.der().len()).any(|w| w == id.der()),
            "a CertID's bytes come from the request"
        );
        // The store is asked by this form of the serial.
        assert_eq!(serial_hex(&id.serial).len(), 2 * id.serial.len());
        // Whether it names our issuer is a plain comparison; it must not panic.
        let _ = hashes.matches(id);
    }

    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("fixed time");
    let statuses = [
        CertStatus::Good,
        CertStatus::Revoked {
            at: now,
            reason: Some(1),
        },
        CertStatus::Unknown,
    ];
    let answers: Vec<SingleAnswer<'_>> = request
        .cert_ids
        .iter()
        .zip(statuses.iter().cycle())
        .map(|(id, &status)| SingleAnswer {
            id,
            status,
            this_update: now,
            next_update: now + time::Duration::hours(1),
        })
        .collect();
    let responder = Responder {
        key,
        responder_cert_der: FIXTURES[0].cert_der,
        include_cert: false,
    };
    let response = ocsp::build_response(&responder, &answers, now, request.nonce.as_deref())
        .unwrap_or_else(|e| panic!("an accepted request cannot be answered: {e}"));
    let element = der::AnyRef::from_der(&response).expect("the response is one DER element");
    assert_eq!(element.tag(), der::Tag::Sequence);
});
