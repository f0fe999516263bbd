//! The CSR checks of finalize (`Ra::finalize`) and of the service's CSR
//! upload: `ca::csr::parse_and_verify_with`, then `ca::csr::check_names`.
//!
//! The first byte picks how the rest is used:
//! - even: the rest is a CSR's DER, as a client sends it (most mutants stop
//!   at the self-signature, which no fuzzer can forge);
//! - odd: the rest is the DER of a CertificationRequestInfo; its public key
//!   is replaced by a fixed Ed25519 key and the request is signed with it,
//!   so the name and extension parsing behind the signature check is
//!   reached too.
//!
//! Invariants: no panic; a request signed here is never refused for its
//! signature or key; a CSR that passes matches the identifiers made from
//! its own names, and no longer matches once one is added.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use acme_ca::fuzzing::csr::{self, RSA_LEGACY_MIN_BITS, RSA_MIN_BITS};
use acme_ca::fuzzing::Identifier;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use der::asn1::{BitString, ObjectIdentifier};
use der::{Decode, Encode};
use libfuzzer_sys::fuzz_target;
use x509_cert::request::{CertReq, CertReqInfo};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

fn key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| Ed25519KeyPair::from_seed_unchecked(&[0x42; 32]).expect("fixed seed"))
}

/// The DER of a CSR for `info`, with the fixed key put in and signed.
fn sign(mut info: CertReqInfo) -> Option<Vec<u8>> {
    let key = key();
    let algorithm = AlgorithmIdentifierOwned {
        oid: ED25519,
        parameters: None,
    };
    info.public_key = SubjectPublicKeyInfoOwned {
        algorithm: algorithm.clone(),
        subject_public_key: BitString::from_bytes(key.public_key().as_ref()).ok()?,
    };
    let tbs = info.to_der().ok()?;
    let signature = key.sign(&tbs);
    CertReq {
        info,
        algorithm,
        signature: BitString::from_bytes(signature.as_ref()).ok()?,
    }
    .to_der()
    .ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (der, signed_here) = if mode & 1 == 0 {
        (rest.to_vec(), false)
    } else {
        let Ok(info) = CertReqInfo::from_der(rest) else {
            return;
        };
        let Some(der) = sign(info) else {
            return;
        };
        (der, true)
    };

    let strict = csr::parse_and_verify_with(&der, RSA_MIN_BITS);
    let legacy = csr::parse_and_verify_with(&der, RSA_LEGACY_MIN_BITS);
    // What the strict setting accepts, the legacy one accepts the same way.
    if let Ok(s) = &strict {
        assert_eq!(legacy.as_ref().ok(), Some(s));
    }
    let checked = match legacy {
        Ok(c) => c,
        Err(e) => {
            if signed_here {
                assert!(
                    !e.detail.contains("signature") && !e.detail.contains("key"),
                    "a request signed with a good key was refused for it: {}",
                    e.detail
                );
            }
            return;
        }
    };

    let mut ids: Vec<Identifier> = Vec::new();
    if let Some(cn) = &checked.common_name {
        ids.push(match cn.parse::<IpAddr>() {
            Ok(ip) => Identifier::ip(ip.to_string()),
            Err(_) => Identifier::dns(cn.clone()),
        });
    }
    ids.extend(checked.dns_names.iter().cloned().map(Identifier::dns));
    ids.extend(
        checked
            .ip_addrs
            .iter()
            .map(|ip| Identifier::ip(ip.to_string())),
    );
    if let Err(e) = csr::check_names(&checked, &ids) {
        panic!("a CSR does not match its own names: {}", e.detail);
    }
    ids.push(Identifier::dns("not-in-the-csr.fuzz.invalid".to_owned()));
    let in_csr = checked
        .dns_names
        .iter()
        .chain(checked.common_name.as_ref())
        .any(|n| n.eq_ignore_ascii_case("not-in-the-csr.fuzz.invalid"));
    assert_eq!(csr::check_names(&checked, &ids).is_ok(), in_csr);
});
