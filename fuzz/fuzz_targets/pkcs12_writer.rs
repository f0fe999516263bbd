//! The PKCS#12 writer of the service's downloads, `service::package::
//! pkcs12`. In the service the password comes from the client and the
//! friendly name from the certificate's common name (the requester's CSR);
//! the certificate, chain and key are the CA's.
//!
//! Input: one byte, then fields cut at `acme_ca_fuzz::SEPARATOR`:
//! - byte 0, 1 or 2: the certificate and key of that fixture (P-256,
//!   Ed25519, RSA 2048); fields: password, friendly name, chain
//!   certificates (DER), ...;
//! - any other byte: fields: password, friendly name, certificate (DER),
//!   key (PKCS#8 DER), chain certificates, ...
//!
//! Invariants: no panic; with a fixture, every password and name inside
//! the documented limits and every chain entry that is X.509 gives a file;
//! a file that is written opens with RustCrypto's PKCS#12 and PKCS#5 code
//! (independent of ours): version 3, a MAC that verifies under the RFC 7292
//! key derivation, the certificates in order with the leaf's friendlyName
//! and localKeyId, and the key decrypting to the bytes given.
#![no_main]

use acme_ca::fuzzing::package::{
    pkcs12, PKCS12_ITERATIONS, PKCS12_MAX_FRIENDLY_NAME_CHARS, PKCS12_MAX_PASSWORD_LEN,
};
use acme_ca_fuzz::{fields, FIXTURES};
use aws_lc_rs::{digest, hmac};
use cms::encrypted_data::EncryptedData;
use der::asn1::{BmpString, ContextSpecific, ObjectIdentifier, OctetString, OctetStringRef};
use der::{Decode, Encode, Reader, SliceReader};
use libfuzzer_sys::fuzz_target;
use pkcs12::cert_type::CertBag;
use pkcs12::kdf::{derive_key_utf8, Pkcs12KeyType};
use pkcs12::safe_bag::SafeContents;
use x509_cert::attr::Attributes;
use x509_cert::Certificate;

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const FRIENDLY_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
const LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");

/// Whether `s` is a string the documentation promises to take as a
/// password (`max_bytes` = PKCS12_MAX_PASSWORD_LEN, non-empty) or as a
/// friendly name (`max_chars`).
fn within_limits(s: &str, min_bytes: usize, max_bytes: usize, max_chars: usize) -> bool {
    (min_bytes..=max_bytes).contains(&s.len())
        && s.chars().count() <= max_chars
        && s.chars().all(|c| c != '\0' && u32::from(c) < 0xFFFF)
}

/// The two attributes of the leaf's bags, as (friendlyName, localKeyId).
fn attributes(attrs: &Option<Attributes>) -> (Option<String>, Option<Vec<u8>>) {
    let mut name = None;
    let mut id = None;
    for attr in attrs.iter().flat_map(|a| a.iter()) {
        assert_eq!(attr.values.len(), 1, "one value per attribute");
        let value = attr.values.get(0).expect("one value");
        if attr.oid == FRIENDLY_NAME {
            let bmp: BmpString = value.decode_as().expect("friendlyName is a BMPString");
            name = Some(bmp.to_string());
        } else if attr.oid == LOCAL_KEY_ID {
            let octets: OctetString = value.decode_as().expect("localKeyId is an OCTET STRING");
            id = Some(octets.as_bytes().to_vec());
        } else {
            panic!("unexpected bag attribute {}", attr.oid);
        }
    }
    (name, id)
}

/// Opens `pfx` with `password` and checks it holds what was put in.
fn check_file(
    pfx_der: &[u8],
    password: &str,
    name: &str,
    cert: &[u8],
    chain: &[Vec<u8>],
    key: &[u8],
) {
    let pfx = pkcs12::pfx::Pfx::from_der(pfx_der).expect("the file is a PFX");
    assert_eq!(pfx.version, pkcs12::pfx::Version::V3);
    assert_eq!(pfx.auth_safe.content_type, DATA);
    let auth_safe = OctetString::from_der(&pfx.auth_safe.content.to_der().expect("re-encodes"))
        .expect("authSafe content is an OCTET STRING");

    // The MAC, keyed by RustCrypto's RFC 7292 appendix B derivation.
    let mac = pfx.mac_data.expect("the file has a MAC");
    assert_eq!(mac.mac.algorithm.oid, SHA256);
    assert_eq!(mac.iterations, PKCS12_ITERATIONS as i32);
    let mac_key = derive_key_utf8::<sha2::Sha256>(
        password,
        mac.mac_salt.as_bytes(),
        Pkcs12KeyType::Mac,
        mac.iterations,
        32,
    )
    .expect("the password is a BMPString");
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, &mac_key),
        auth_safe.as_bytes(),
        mac.mac.digest.as_bytes(),
    )
    .expect("the MAC verifies");

    let contents = pkcs12::authenticated_safe::AuthenticatedSafe::from_der(auth_safe.as_bytes())
        .expect("an AuthenticatedSafe");
    assert_eq!(contents.len(), 2);
    let local_key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert);
    let expect_name = (!name.is_empty()).then(|| name.to_owned());

    // Certificates: EncryptedData under PBES2.
    assert_eq!(contents[0].content_type, ENCRYPTED_DATA);
    let encrypted = EncryptedData::from_der(&contents[0].content.to_der().expect("re-encodes"))
        .expect("an EncryptedData");
    assert_eq!(encrypted.enc_content_info.content_type, DATA);
    let scheme_der = encrypted
        .enc_content_info
        .content_enc_alg
        .to_der()
        .expect("re-encodes");
    let scheme = pkcs5::EncryptionScheme::from_der(&scheme_der).expect("a PBES2 scheme");
    let ciphertext = encrypted
        .enc_content_info
        .encrypted_content
        .expect("certificates are there");
    let plain = scheme
        .decrypt(password, ciphertext.as_bytes())
        .expect("the certificates decrypt");
    let bags = SafeContents::from_der(&plain).expect("SafeContents");
    assert_eq!(bags.len(), 1 + chain.len());
    for (index, bag) in bags.iter().enumerate() {
        assert_eq!(bag.bag_id, pkcs12::PKCS_12_CERT_BAG_OID);
        let value: ContextSpecific<CertBag> =
            ContextSpecific::from_der(&bag.bag_value).expect("a CertBag");
        let want = if index == 0 {
            cert
        } else {
            &chain[index - 1][..]
        };
        assert_eq!(
            value.value.cert_value.as_bytes(),
            want,
            "certificate {index}"
        );
        let (got_name, got_id) = attributes(&bag.bag_attributes);
        if index == 0 {
            assert_eq!(got_name, expect_name);
            assert_eq!(got_id.as_deref(), Some(local_key_id.as_ref()));
        } else {
            assert!(bag.bag_attributes.is_none());
        }
    }

    // The key: one pkcs8ShroudedKeyBag in plain Data.
    assert_eq!(contents[1].content_type, DATA);
    let data = OctetString::from_der(&contents[1].content.to_der().expect("re-encodes"))
        .expect("Data is an OCTET STRING");
    let bags = SafeContents::from_der(data.as_bytes()).expect("SafeContents");
    assert_eq!(bags.len(), 1);
    assert_eq!(bags[0].bag_id, pkcs12::PKCS_12_PKCS8_KEY_BAG_OID);
    let (got_name, got_id) = attributes(&bags[0].bag_attributes);
    assert_eq!(got_name, expect_name);
    assert_eq!(got_id.as_deref(), Some(local_key_id.as_ref()));
    let value: ContextSpecific<der::Any> =
        ContextSpecific::from_der(&bags[0].bag_value).expect("[0] EXPLICIT");
    let inner = value.value.to_der().expect("re-encodes");
    let (scheme_der, ciphertext) = SliceReader::new(&inner)
        .and_then(|mut r| {
            r.sequence(|epki| {
                let scheme = epki.tlv_bytes()?;
                let data = OctetStringRef::decode(epki)?;
                Ok((scheme.to_vec(), data.as_bytes().to_vec()))
            })
        })
        .expect("an EncryptedPrivateKeyInfo");
    let scheme = pkcs5::EncryptionScheme::from_der(&scheme_der).expect("a PBES2 scheme");
    let plain = scheme
        .decrypt(password, &ciphertext)
        .expect("the key decrypts");
    assert_eq!(plain, key);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let parts = fields(rest);
    let text = |i: usize| parts.get(i).map(|b| std::str::from_utf8(b));
    let (Some(Ok(password)), Some(Ok(name))) = (text(0), text(1)) else {
        return;
    };
    let (cert, key, chain_from) = match FIXTURES.get(usize::from(mode)) {
        Some(f) => (f.cert_der, f.key_pkcs8_der, 2),
        None => match (parts.get(2), parts.get(3)) {
            (Some(cert), Some(key)) => (*cert, *key, 4),
            _ => return,
        },
    };
    let chain: Vec<Vec<u8>> = parts.iter().skip(chain_from).map(|c| c.to_vec()).collect();

    let result = pkcs12(cert, &chain, key, name, password);
    match result {
        Ok(file) => check_file(&file, password, name, cert, &chain, key),
        Err(e) => {
            let documented_ok = mode < 3
                && within_limits(password, 1, PKCS12_MAX_PASSWORD_LEN, usize::MAX)
                && within_limits(name, 0, usize::MAX, PKCS12_MAX_FRIENDLY_NAME_CHARS)
                && chain.iter().all(|c| Certificate::from_der(c).is_ok());
            assert!(
                !documented_ok,
                "a fixture with good inputs was refused: {e}"
            );
        }
    }
});
