//! Tests for the CA module: generation and loading, CSR checks, the leaf
//! profile, and chain verification by OpenSSL and webpki.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints as X509BasicConstraints,
    CertificatePolicies, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::Certificate;

use super::csr::{self, PublicKeyKind};
use super::*;
use crate::error::ErrorKind;
use crate::protocol::Identifier;
use crate::test_support::{openssl_required as openssl_available, openssl_verify_leaf};

mod alternate_chains;

const CA_ISSUERS_URL: &str = "http://localhost:14000/issuer/intermediate.der";

fn new_ca(alg: KeyAlgorithm) -> (tempfile::TempDir, Ca) {
    let dir = tempfile::tempdir().unwrap();
    let settings = CaSettings {
        key_algorithm: alg,
        ..CaSettings::default()
    };
    let ca = Ca::load_or_generate(dir.path(), &settings).unwrap();
    (dir, ca)
}

/// A CSR for `names` (DNS names, or IP addresses when they parse as such),
/// with an optional common name.
fn csr(key: &KeyPair, names: &[&str], cn: Option<&str>) -> Vec<u8> {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.serialize_request(key).unwrap().der().to_vec()
}

fn ids(names: &[&str]) -> Vec<Identifier> {
    names
        .iter()
        .map(|n| {
            if n.parse::<std::net::IpAddr>().is_ok() {
                Identifier::ip(*n)
            } else {
                Identifier::dns(*n)
            }
        })
        .collect()
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn rsa2048() -> KeyPair {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
}

/// Check the CSR, check its names and issue a 90-day leaf with AIA.
fn issue_from_csr(ca: &Ca, csr_der: &[u8], identifiers: &[Identifier]) -> IssuedCert {
    let checked = csr::parse_and_verify(csr_der).unwrap();
    csr::check_names(&checked, identifiers).unwrap();
    let now = OffsetDateTime::now_utc();
    ca.issue(&LeafRequest {
        spki_der: &checked.spki_der,
        key_kind: checked.key_kind,
        identifiers,
        not_before: now - Duration::minutes(1),
        not_after: now + Duration::days(90),
        ca_issuers_url: Some(CA_ISSUERS_URL),
        ocsp_url: None,
        crl_url: None,
        profile: &LeafProfile::default(),
        must_staple: false,
        subject_cn: None,
    })
    .unwrap()
}

/// Issues for `checked`'s key, claimed to be of `key_kind`, and
/// `identifiers`, valid over `(not_before, not_after)`: no URLs, the
/// default profile, no Must-Staple, no common name.
fn issue_plain(
    ca: &Ca,
    checked: &csr::CheckedCsr,
    key_kind: PublicKeyKind,
    identifiers: &[Identifier],
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
) -> Result<IssuedCert> {
    ca.issue(&LeafRequest {
        spki_der: &checked.spki_der,
        key_kind,
        identifiers,
        not_before,
        not_after,
        ca_issuers_url: None,
        ocsp_url: None,
        crl_url: None,
        profile: &LeafProfile::default(),
        must_staple: false,
        subject_cn: None,
    })
}

fn ext<'a, T: der::Decode<'a> + der::oid::AssociatedOid>(
    cert: &'a Certificate,
) -> Option<(bool, T)> {
    cert.tbs_certificate.get::<T>().unwrap()
}

fn extension_oids(cert: &Certificate) -> Vec<String> {
    let mut oids: Vec<String> = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .map(|e| e.extn_id.to_string())
        .collect();
    oids.sort();
    oids
}

fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}

/// `openssl verify -x509_strict` of the leaf against root + intermediate,
/// also checking the TLS server purpose and, if given, the host name.
fn openssl_verify(ca: &Ca, leaf_pem: &str, hostname: Option<&str>) {
    if let Err(said) = openssl_verify_leaf(ca.root_pem(), ca.chain_pem(), leaf_pem, hostname) {
        panic!("openssl verify failed: {said}");
    }
}

/// Path validation with webpki (what rustls clients do).
fn webpki_verify(ca: &Ca, leaf_der: &[u8], server_name: &str) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.root_der().to_vec()))
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .unwrap();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf_der.to_vec()),
            &[CertificateDer::from(ca.intermediate_der().to_vec())],
            &ServerName::try_from(server_name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .unwrap();
}

/// Everything the leaf profile promises, for a leaf with `names` whose key
/// is of `kind`.
fn assert_leaf_profile(ca: &Ca, issued: &IssuedCert, names: &[&str], kind: PublicKeyKind) {
    let cert = Certificate::from_der(&issued.der).unwrap();
    let tbs = &cert.tbs_certificate;
    let int = Certificate::from_der(ca.intermediate_der()).unwrap();

    assert_eq!(tbs.version, x509_cert::Version::V3);
    // Serial: 16 bytes, positive, as reported.
    assert_eq!(tbs.serial_number.as_bytes(), issued.serial.as_slice());
    assert_eq!(issued.serial.len(), 16);
    assert!(issued.serial[0] & 0x80 == 0 && issued.serial[0] != 0);
    // Issuer: byte-identical to the intermediate's subject.
    assert_eq!(
        tbs.issuer.to_der().unwrap(),
        int.tbs_certificate.subject.to_der().unwrap()
    );
    // Validity as reported.
    assert_eq!(
        tbs.validity.not_before.to_unix_duration().as_secs() as i64,
        issued.not_before.unix_timestamp()
    );
    assert_eq!(
        tbs.validity.not_after.to_unix_duration().as_secs() as i64,
        issued.not_after.unix_timestamp()
    );
    // PEM is the DER.
    let (label, pem_der) = der::pem::decode_vec(issued.pem.as_bytes()).unwrap();
    assert_eq!(label, "CERTIFICATE");
    assert_eq!(pem_der, issued.der);

    // Subject: CN = first DNS name, or empty for IP-only.
    let first_dns = names
        .iter()
        .find(|n| n.parse::<std::net::IpAddr>().is_err());
    match first_dns {
        Some(dns) => assert_eq!(
            tbs.subject.to_string(),
            format!("CN={}", dns.to_lowercase())
        ),
        None => assert!(tbs.subject.0.is_empty(), "IP-only leaf has a subject"),
    }

    // SAN: exactly the names; critical only when the subject is empty.
    let (critical, san) = ext::<SubjectAltName>(&cert).expect("SAN");
    assert_eq!(critical, first_dns.is_none());
    let got: Vec<String> = san
        .0
        .iter()
        .map(|g| match g {
            GeneralName::DnsName(n) => n.to_string(),
            GeneralName::IpAddress(o) => {
                let b = o.as_bytes();
                match b.len() {
                    4 => std::net::IpAddr::from(<[u8; 4]>::try_from(b).unwrap()).to_string(),
                    _ => std::net::IpAddr::from(<[u8; 16]>::try_from(b).unwrap()).to_string(),
                }
            }
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect();
    let want: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    assert_eq!(got, want);

    // keyUsage: critical; digitalSignature, plus keyEncipherment for RSA only.
    let (critical, ku) = ext::<KeyUsage>(&cert).expect("keyUsage");
    assert!(critical);
    let mut want_ku: der::flagset::FlagSet<KeyUsages> = KeyUsages::DigitalSignature.into();
    if matches!(kind, PublicKeyKind::Rsa { .. }) {
        want_ku |= KeyUsages::KeyEncipherment;
    }
    assert_eq!(ku.0, want_ku);

    // extKeyUsage: serverAuth + clientAuth only.
    let (critical, eku) = ext::<ExtendedKeyUsage>(&cert).expect("EKU");
    assert!(!critical);
    assert_eq!(
        eku.0,
        vec![oid("1.3.6.1.5.5.7.3.1"), oid("1.3.6.1.5.5.7.3.2")]
    );

    // basicConstraints: critical, CA:FALSE.
    let (critical, bc) = ext::<X509BasicConstraints>(&cert).expect("basicConstraints");
    assert!(critical);
    assert!(!bc.ca);
    assert_eq!(bc.path_len_constraint, None);

    // AKI = the intermediate's SKI; SKI present.
    let (_, int_ski) = ext::<SubjectKeyIdentifier>(&int).expect("intermediate SKI");
    let (critical, aki) = ext::<AuthorityKeyIdentifier>(&cert).expect("AKI");
    assert!(!critical);
    assert_eq!(aki.key_identifier, Some(int_ski.0));
    let (critical, ski) = ext::<SubjectKeyIdentifier>(&cert).expect("SKI");
    assert!(!critical);
    assert_eq!(ski.0.as_bytes().len(), 20);

    // certificatePolicies: domain validated.
    let (critical, policies) = ext::<CertificatePolicies>(&cert).expect("policies");
    assert!(!critical);
    assert_eq!(policies.0.len(), 1);
    assert_eq!(policies.0[0].policy_identifier, oid("2.23.140.1.2.1"));
    assert!(policies.0[0].policy_qualifiers.is_none());

    // AIA: caIssuers with the URL.
    let (critical, aia) = ext::<AuthorityInfoAccessSyntax>(&cert).expect("AIA");
    assert!(!critical);
    assert_eq!(aia.0.len(), 1);
    assert_eq!(aia.0[0].access_method, oid("1.3.6.1.5.5.7.48.2"));
    match &aia.0[0].access_location {
        GeneralName::UniformResourceIdentifier(u) => assert_eq!(u.to_string(), CA_ISSUERS_URL),
        other => panic!("unexpected AIA location {other:?}"),
    }

    // And nothing else.
    let mut want_oids: Vec<String> = [
        "2.5.29.35",         // AKI
        "2.5.29.17",         // SAN
        "2.5.29.15",         // KU
        "2.5.29.37",         // EKU
        "2.5.29.14",         // SKI
        "2.5.29.19",         // BC
        "2.5.29.32",         // policies
        "1.3.6.1.5.5.7.1.1", // AIA
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want_oids.sort();
    assert_eq!(extension_oids(&cert), want_oids);
}

// ---------------------------------------------------------------------------
// Generation and loading

#[test]
fn ca_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ca>();
}

#[test]
fn generate_then_reload_gives_the_same_ca() {
    let (dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let again = Ca::load_or_generate(dir.path(), &CaSettings::default()).unwrap();
    assert_eq!(ca.root_der(), again.root_der());
    assert_eq!(ca.root_pem(), again.root_pem());
    assert_eq!(ca.intermediate_der(), again.intermediate_der());
    assert_eq!(ca.chain_pem(), again.chain_pem());

    // Files: keys 0600, certificates readable, no temporary files left.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("root.key"), 0o600);
        assert_eq!(mode("intermediate.key"), 0o600);
        assert_eq!(mode("root.pem") & 0o600, 0o600);
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "intermediate.key",
            "intermediate.pem",
            "root.key",
            "root.pem"
        ]
    );

    // Keys are PKCS#8 PEM; the files are what the CA serves.
    let key_pem = std::fs::read_to_string(dir.path().join("intermediate.key")).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let root_file = std::fs::read_to_string(dir.path().join("root.pem")).unwrap();
    assert_eq!(root_file, ca.root_pem());
    let (_, int_der) = der::pem::decode_vec(ca.chain_pem().as_bytes()).unwrap();
    assert_eq!(int_der, ca.intermediate_der());

    // A leaf from the reloaded CA chains to the original root.
    let key = p256();
    let identifiers = ids(&["reload.example"]);
    let issued = issue_from_csr(&again, &csr(&key, &["reload.example"], None), &identifiers);
    if openssl_available() {
        openssl_verify(&ca, &issued.pem, Some("reload.example"));
    }
}

#[test]
fn generated_ca_certificates_have_the_ca_profile() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let root = Certificate::from_der(ca.root_der()).unwrap();
    let int = Certificate::from_der(ca.intermediate_der()).unwrap();

    let root_cn = root.tbs_certificate.subject.to_string();
    let int_cn = int.tbs_certificate.subject.to_string();
    assert!(root_cn.starts_with("CN=acme-ca root "), "{root_cn}");
    assert!(int_cn.starts_with("CN=acme-ca intermediate "), "{int_cn}");
    assert_eq!(root_cn.len(), "CN=acme-ca root ".len() + 6);

    let (crit, bc) = ext::<X509BasicConstraints>(&root).unwrap();
    assert!(crit && bc.ca && bc.path_len_constraint.is_none());
    let (crit, ku) = ext::<KeyUsage>(&root).unwrap();
    assert!(crit);
    assert_eq!(ku.0, KeyUsages::KeyCertSign | KeyUsages::CRLSign);

    let (crit, bc) = ext::<X509BasicConstraints>(&int).unwrap();
    assert!(crit && bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let (_, ku) = ext::<KeyUsage>(&int).unwrap();
    assert_eq!(
        ku.0,
        KeyUsages::DigitalSignature | KeyUsages::KeyCertSign | KeyUsages::CRLSign
    );
    let (_, root_ski) = ext::<SubjectKeyIdentifier>(&root).unwrap();
    let (_, int_aki) = ext::<AuthorityKeyIdentifier>(&int).unwrap();
    assert_eq!(int_aki.key_identifier, Some(root_ski.0));
    assert_eq!(int.tbs_certificate.issuer, root.tbs_certificate.subject);

    // About 10 and 5 years.
    let years = |c: &Certificate| {
        let v = &c.tbs_certificate.validity;
        (v.not_after.to_unix_duration() - v.not_before.to_unix_duration()).as_secs() / 86400 / 365
    };
    assert_eq!(years(&root), 10);
    assert_eq!(years(&int), 5);

    // Random positive serials; two CAs never share names.
    assert!(root.tbs_certificate.serial_number.as_bytes()[0] & 0x80 == 0);
    let (_dir2, other) = new_ca(KeyAlgorithm::EcdsaP256);
    let other_root = Certificate::from_der(other.root_der()).unwrap();
    assert_ne!(
        other_root.tbs_certificate.subject,
        root.tbs_certificate.subject
    );
    assert_ne!(
        other_root.tbs_certificate.serial_number,
        root.tbs_certificate.serial_number
    );
}

#[test]
fn name_prefix_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let settings = CaSettings {
        name_prefix: "Test Lab".into(),
        ..CaSettings::default()
    };
    let ca = Ca::load_or_generate(dir.path(), &settings).unwrap();
    let root = Certificate::from_der(ca.root_der()).unwrap();
    assert!(root
        .tbs_certificate
        .subject
        .to_string()
        .starts_with("CN=Test Lab root "));
}

#[test]
fn incomplete_data_dir_is_an_error_and_nothing_is_overwritten() {
    let (dir, _ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let root_before = std::fs::read(dir.path().join("root.pem")).unwrap();
    std::fs::remove_file(dir.path().join("intermediate.pem")).unwrap();
    let err = Ca::load_or_generate(dir.path(), &CaSettings::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ServerInternal);
    assert!(err.detail.contains("intermediate.pem"), "{}", err.detail);
    assert_eq!(
        std::fs::read(dir.path().join("root.pem")).unwrap(),
        root_before
    );
    assert!(!dir.path().join("intermediate.pem").exists());
}

fn configured(dir: &Path, root_key: bool) -> CaSettings {
    CaSettings {
        root_cert: Some(dir.join("root.pem")),
        root_key: root_key.then(|| dir.join("root.key")),
        intermediate_cert: Some(dir.join("intermediate.pem")),
        intermediate_key: Some(dir.join("intermediate.key")),
        ..CaSettings::default()
    }
}

#[test]
fn configured_files_are_loaded_and_data_dir_is_untouched() {
    let (dir, ca) = new_ca(KeyAlgorithm::EcdsaP384);
    let empty = tempfile::tempdir().unwrap();
    for root_key in [true, false] {
        let loaded = Ca::load_or_generate(empty.path(), &configured(dir.path(), root_key)).unwrap();
        assert_eq!(loaded.root_der(), ca.root_der());
        assert_eq!(loaded.intermediate_der(), ca.intermediate_der());
    }
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);

    // Incomplete configuration.
    let partial = CaSettings {
        root_cert: Some(dir.path().join("root.pem")),
        ..CaSettings::default()
    };
    let err = Ca::load_or_generate(empty.path(), &partial).unwrap_err();
    assert!(err.detail.contains("together"), "{}", err.detail);
}

#[test]
fn pem_files_with_extra_text_and_sec1_keys_load() {
    if !openssl_available() {
        return;
    }
    let (dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    // Convert the intermediate key to SEC1 ("EC PRIVATE KEY") with OpenSSL
    // and add explanatory text around the certificate.
    let out = Command::new("openssl")
        .args(["ec", "-in"])
        .arg(dir.path().join("intermediate.key"))
        .arg("-out")
        .arg(dir.path().join("intermediate-sec1.key"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let sec1 = std::fs::read_to_string(dir.path().join("intermediate-sec1.key")).unwrap();
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
    // Re-wrapped at 76 columns with CRLF line endings.
    let (_, int_der) = der::pem::decode_vec(ca.chain_pem().as_bytes()).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&int_der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let int_text = format!(
        "subject=whatever\r\nissuer=whatever\r\n-----BEGIN CERTIFICATE-----\r\n{}\r\n-----END CERTIFICATE-----\r\n",
        lines.join("\r\n")
    );
    std::fs::write(dir.path().join("intermediate-text.pem"), int_text).unwrap();
    let settings = CaSettings {
        intermediate_key: Some(dir.path().join("intermediate-sec1.key")),
        intermediate_cert: Some(dir.path().join("intermediate-text.pem")),
        ..configured(dir.path(), true)
    };
    let loaded = Ca::load_or_generate(dir.path(), &settings).unwrap();
    assert_eq!(loaded.chain_pem(), ca.chain_pem());
}

#[test]
fn loading_a_certificate_with_the_wrong_key_fails() {
    let (a, _) = new_ca(KeyAlgorithm::EcdsaP256);
    let (b, _) = new_ca(KeyAlgorithm::EcdsaP256);
    let empty = tempfile::tempdir().unwrap();

    // Intermediate key from another CA.
    let settings = CaSettings {
        intermediate_key: Some(b.path().join("intermediate.key")),
        ..configured(a.path(), false)
    };
    let err = Ca::load_or_generate(empty.path(), &settings).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ServerInternal);
    assert!(err.detail.contains("does not belong"), "{}", err.detail);

    // Root key from another CA.
    let settings = CaSettings {
        root_key: Some(b.path().join("root.key")),
        ..configured(a.path(), true)
    };
    let err = Ca::load_or_generate(empty.path(), &settings).unwrap_err();
    assert!(err.detail.contains("does not belong"), "{}", err.detail);

    // The same, swapped inside a data directory.
    std::fs::copy(
        b.path().join("intermediate.key"),
        a.path().join("intermediate.key"),
    )
    .unwrap();
    let err = Ca::load_or_generate(a.path(), &CaSettings::default()).unwrap_err();
    assert!(err.detail.contains("does not belong"), "{}", err.detail);
}

#[test]
fn loading_an_intermediate_from_another_root_fails() {
    let (a, _) = new_ca(KeyAlgorithm::EcdsaP256);
    let (b, _) = new_ca(KeyAlgorithm::EcdsaP256);
    let empty = tempfile::tempdir().unwrap();
    let settings = CaSettings {
        root_cert: Some(b.path().join("root.pem")),
        root_key: None,
        ..configured(a.path(), false)
    };
    let err = Ca::load_or_generate(empty.path(), &settings).unwrap_err();
    assert!(err.detail.contains("not issued by"), "{}", err.detail);

    // Same name, different key: the signature check catches it.
    if !openssl_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root_a = Certificate::from_der(
        &der::pem::decode_vec(std::fs::read(a.path().join("root.pem")).unwrap().as_slice())
            .unwrap()
            .1,
    )
    .unwrap();
    let subject = root_a.tbs_certificate.subject.to_string();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj"])
        .arg(format!("/{subject}"))
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .arg("-keyout")
        .arg(work.path().join("fake.key"))
        .arg("-out")
        .arg(work.path().join("fake.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings = CaSettings {
        root_cert: Some(work.path().join("fake.pem")),
        root_key: None,
        ..configured(a.path(), false)
    };
    let err = Ca::load_or_generate(empty.path(), &settings).unwrap_err();
    assert!(
        err.detail.contains("not signed by the root"),
        "{}",
        err.detail
    );
}

#[test]
fn a_non_ca_intermediate_is_refused() {
    let (a, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    // Use a leaf as the "intermediate".
    let key = p256();
    let issued = issue_from_csr(
        &ca,
        &csr(&key, &["leaf.example"], None),
        &ids(&["leaf.example"]),
    );
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("leaf.pem"), &issued.pem).unwrap();
    std::fs::write(work.path().join("leaf.key"), key.serialize_pem()).unwrap();
    let settings = CaSettings {
        intermediate_cert: Some(work.path().join("leaf.pem")),
        intermediate_key: Some(work.path().join("leaf.key")),
        ..configured(a.path(), false)
    };
    let err = Ca::load_or_generate(work.path(), &settings).unwrap_err();
    assert!(
        err.detail.contains("not a CA certificate"),
        "{}",
        err.detail
    );
}

// ---------------------------------------------------------------------------
// Leaves

#[test]
fn leaf_for_ecdsa_p256_dns_names() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let names = ["www.example.com", "example.com", "*.example.org"];
    let key = p256();
    let issued = issue_from_csr(&ca, &csr(&key, &names, None), &ids(&names));
    assert_leaf_profile(&ca, &issued, &names, PublicKeyKind::EcdsaP256);
    webpki_verify(&ca, &issued.der, "www.example.com");
    webpki_verify(&ca, &issued.der, "foo.example.org");
    if openssl_available() {
        openssl_verify(&ca, &issued.pem, Some("example.com"));
    }
}

#[test]
fn leaf_for_rsa_2048() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let names = ["rsa.example"];
    let key = rsa2048();
    let checked = csr::parse_and_verify(&csr(&key, &names, Some("rsa.example"))).unwrap();
    assert_eq!(checked.key_kind, PublicKeyKind::Rsa { bits: 2048 });
    let issued = issue_from_csr(&ca, &csr(&key, &names, Some("rsa.example")), &ids(&names));
    assert_leaf_profile(&ca, &issued, &names, PublicKeyKind::Rsa { bits: 2048 });
    webpki_verify(&ca, &issued.der, "rsa.example");
    if openssl_available() {
        openssl_verify(&ca, &issued.pem, Some("rsa.example"));
    }
}

#[test]
fn leaf_for_ed25519() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let names = ["ed.example", "mail.ed.example"];
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let csr_der = csr(&key, &names, None);
    assert_eq!(
        csr::parse_and_verify(&csr_der).unwrap().key_kind,
        PublicKeyKind::Ed25519
    );
    let issued = issue_from_csr(&ca, &csr_der, &ids(&names));
    assert_leaf_profile(&ca, &issued, &names, PublicKeyKind::Ed25519);
    webpki_verify(&ca, &issued.der, "mail.ed.example");
    if openssl_available() {
        openssl_verify(&ca, &issued.pem, Some("ed.example"));
    }
}

#[test]
fn leaf_for_ecdsa_p384_key() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let names = ["p384.example"];
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let csr_der = csr(&key, &names, None);
    assert_eq!(
        csr::parse_and_verify(&csr_der).unwrap().key_kind,
        PublicKeyKind::EcdsaP384
    );
    let issued = issue_from_csr(&ca, &csr_der, &ids(&names));
    assert_leaf_profile(&ca, &issued, &names, PublicKeyKind::EcdsaP384);
    webpki_verify(&ca, &issued.der, "p384.example");
}

#[test]
fn ip_only_leaf_has_no_common_name() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let names = ["192.0.2.7", "2001:db8::1"];
    let key = p256();
    let issued = issue_from_csr(&ca, &csr(&key, &names, None), &ids(&names));
    assert_leaf_profile(&ca, &issued, &names, PublicKeyKind::EcdsaP256);
    let cert = Certificate::from_der(&issued.der).unwrap();
    assert!(cert.tbs_certificate.subject.0.is_empty());
    webpki_verify(&ca, &issued.der, "192.0.2.7");
    webpki_verify(&ca, &issued.der, "2001:db8::1");
    if openssl_available() {
        openssl_verify(&ca, &issued.pem, None);
    }
}

#[test]
fn mixed_names_and_long_first_name() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let long = format!("{}.example.com", "a".repeat(60));
    assert!(long.len() > 64);
    let names = [long.as_str(), "192.0.2.1", "short.example"];
    let key = p256();
    let issued = issue_from_csr(&ca, &csr(&key, &names, None), &ids(&names));
    let cert = Certificate::from_der(&issued.der).unwrap();
    // The first DNS name that fits in a CN.
    assert_eq!(cert.tbs_certificate.subject.to_string(), "CN=short.example");
    webpki_verify(&ca, &issued.der, &long);
}

#[test]
fn csr_extensions_do_not_reach_the_leaf() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let key = p256();
    let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "evil.example");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Evil Corp");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::CodeSigning,
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::Any,
    ];
    // TLS feature "must staple", and an unknown critical extension.
    let mut must_staple = CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 24],
        vec![0x30, 0x03, 0x02, 0x01, 0x05],
    );
    must_staple.set_criticality(false);
    let mut unknown = CustomExtension::from_oid_content(&[1, 2, 3, 4, 5], vec![0x05, 0x00]);
    unknown.set_criticality(true);
    params.custom_extensions = vec![must_staple, unknown];
    let csr_der = params.serialize_request(&key).unwrap().der().to_vec();

    let identifiers = ids(&["evil.example"]);
    let issued = issue_from_csr(&ca, &csr_der, &identifiers);
    // The full profile check asserts CA:FALSE, KU digitalSignature only, EKU
    // exactly serverAuth+clientAuth and no other extension.
    assert_leaf_profile(&ca, &issued, &["evil.example"], PublicKeyKind::EcdsaP256);
    let cert = Certificate::from_der(&issued.der).unwrap();
    assert_eq!(cert.tbs_certificate.subject.to_string(), "CN=evil.example");
    let (_, bc) = ext::<X509BasicConstraints>(&cert).unwrap();
    assert!(!bc.ca);
}

#[test]
fn validity_is_exact_to_the_second() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let key = p256();
    let checked = csr::parse_and_verify(&csr(&key, &["t.example"], None)).unwrap();
    let identifiers = ids(&["t.example"]);
    let not_before = time::macros::datetime!(2030-01-02 03:04:05.678 +02:00);
    let not_after = time::macros::datetime!(2030-04-02 03:04:05 UTC);
    let issued = issue_plain(
        &ca,
        &checked,
        checked.key_kind,
        &identifiers,
        (not_before, not_after),
    )
    .unwrap();
    assert_eq!(
        issued.not_before,
        time::macros::datetime!(2030-01-02 01:04:05 UTC)
    );
    assert_eq!(issued.not_after, not_after);
    let cert = Certificate::from_der(&issued.der).unwrap();
    let v = &cert.tbs_certificate.validity;
    assert_eq!(
        v.not_before.to_unix_duration().as_secs() as i64,
        issued.not_before.unix_timestamp()
    );
    assert_eq!(
        v.not_after.to_unix_duration().as_secs() as i64,
        issued.not_after.unix_timestamp()
    );
    // No AIA when no URL is given.
    assert!(ext::<AuthorityInfoAccessSyntax>(&cert).is_none());

    // Serials differ between leaves.
    let again = issue_plain(
        &ca,
        &checked,
        checked.key_kind,
        &identifiers,
        (not_before, not_after),
    )
    .unwrap();
    assert_ne!(again.serial, issued.serial);
    assert_eq!(serial_hex(&issued.serial).len(), 32);
}

#[test]
fn issue_refuses_a_key_kind_that_does_not_match_the_spki() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let key = p256();
    let checked = csr::parse_and_verify(&csr(&key, &["k.example"], None)).unwrap();
    let identifiers = ids(&["k.example"]);
    let now = OffsetDateTime::now_utc();
    let err = issue_plain(
        &ca,
        &checked,
        PublicKeyKind::EcdsaP384,
        &identifiers,
        (now, now + Duration::days(1)),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ServerInternal);
}

#[test]
fn chains_verify_for_each_ca_key_algorithm() {
    if !openssl_available() {
        eprintln!("openssl not found; skipping");
        return;
    }
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
    ] {
        let (_dir, ca) = new_ca(alg);
        for key in [p256(), rsa2048()] {
            let names = ["chain.example", "192.0.2.55"];
            let issued = issue_from_csr(&ca, &csr(&key, &names, None), &ids(&names));
            openssl_verify(&ca, &issued.pem, Some("chain.example"));
            webpki_verify(&ca, &issued.der, "chain.example");
        }
    }
}

#[test]
fn chain_verifies_for_rsa_4096_ca() {
    let (_dir, ca) = new_ca(KeyAlgorithm::Rsa4096);
    let root = Certificate::from_der(ca.root_der()).unwrap();
    let spki = &root.tbs_certificate.subject_public_key_info;
    let (bits, _) = csr::rsa_public_key(spki.subject_public_key.as_bytes().unwrap()).unwrap();
    assert_eq!(bits, 4096);
    let names = ["big.example"];
    let issued = issue_from_csr(&ca, &csr(&p256(), &names, None), &ids(&names));
    webpki_verify(&ca, &issued.der, "big.example");
    if openssl_available() {
        openssl_verify(&ca, &issued.pem, Some("big.example"));
    }
}

#[test]
fn tls_server_identity_works_with_rustls() {
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let names = [
        Identifier::dns("localhost"),
        Identifier::ip("127.0.0.1"),
        Identifier::ip("::1"),
    ];
    let (chain, key) = ca.tls_server_identity(&names).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], ca.intermediate_der());
    webpki_verify(&ca, &chain[0], "localhost");
    webpki_verify(&ca, &chain[0], "127.0.0.1");
    webpki_verify(&ca, &chain[0], "::1");

    let chain: Vec<CertificateDer<'static>> = chain.into_iter().map(CertificateDer::from).collect();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.into());
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
}

// ---------------------------------------------------------------------------
// CSR checks

#[test]
fn garbage_csr_is_bad_csr() {
    for garbage in [
        &b""[..],
        b"\x30\x03\x02\x01\x00",
        b"not a csr at all",
        &[0x30, 0x82, 0xff],
    ] {
        let err = csr::parse_and_verify(garbage).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadCsr, "{garbage:?}");
    }
    // A certificate is not a CSR.
    let (_dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let err = csr::parse_and_verify(ca.root_der()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadCsr);
    // Trailing data.
    let mut der = csr(&p256(), &["a.example"], None);
    der.push(0);
    assert_eq!(
        csr::parse_and_verify(&der).unwrap_err().kind,
        ErrorKind::BadCsr
    );
}

#[test]
fn bad_signature_is_bad_csr() {
    for key in [
        p256(),
        rsa2048(),
        KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
    ] {
        let mut der = csr(&key, &["sig.example"], None);
        assert!(csr::parse_and_verify(&der).is_ok());
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let err = csr::parse_and_verify(&der).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadCsr, "{}", err.detail);
    }
    // A changed name under the original signature.
    let der = csr(&p256(), &["aaaa.example"], None);
    let pos = der.windows(4).position(|w| w == b"aaaa").unwrap();
    let mut tampered = der.clone();
    tampered[pos] = b'b';
    let err = csr::parse_and_verify(&tampered).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadCsr);
}

/// A CSR made by OpenSSL: `openssl req -new <args>`, DER.
fn openssl_csr(args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("csr.der");
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=ossl.example",
            "-outform",
            "DER",
        ])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(&out_path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(out_path).unwrap()
}

#[test]
fn rsa_1024_is_bad_csr() {
    if !openssl_available() {
        return;
    }
    let der = openssl_csr(&["-newkey", "rsa:1024"]);
    let err = csr::parse_and_verify(&der).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadCsr, "{}", err.detail);
    // acme-ca pebble takes it, as Pebble does.
    let checked = csr::parse_and_verify_with(&der, csr::RSA_LEGACY_MIN_BITS).unwrap();
    assert_eq!(checked.key_kind, PublicKeyKind::Rsa { bits: 1024 });
    let der = openssl_csr(&["-newkey", "rsa:512"]);
    let err = csr::parse_and_verify_with(&der, csr::RSA_LEGACY_MIN_BITS).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadCsr, "{}", err.detail);
    assert!(err.detail.contains("1024"), "{}", err.detail);
}

#[test]
fn p521_and_rsa_exponent_3_checks() {
    if !openssl_available() {
        return;
    }
    // P-521 is certified (Pebble and the Baseline Requirements allow it).
    let der = openssl_csr(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"]);
    let checked = csr::parse_and_verify(&der).unwrap();
    assert_eq!(checked.key_kind, PublicKeyKind::EcdsaP521);
    let der = openssl_csr(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"]);
    let err = csr::parse_and_verify(&der).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadCsr, "{}", err.detail);

    let der = openssl_csr(&["-newkey", "rsa:2048", "-pkeyopt", "rsa_keygen_pubexp:3"]);
    let checked = csr::parse_and_verify(&der).unwrap();
    assert_eq!(checked.key_kind, PublicKeyKind::Rsa { bits: 2048 });
}

#[test]
fn rsa_pss_and_sha384_signatures_verify() {
    if !openssl_available() {
        return;
    }
    for args in [
        &[
            "-newkey",
            "rsa:2048",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ][..],
        &[
            "-newkey",
            "rsa:2048",
            "-sha512",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ][..],
        &["-newkey", "rsa:3072", "-sha384"][..],
        &[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-sha384",
        ][..],
        &[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-sha256",
        ][..],
    ] {
        let der = openssl_csr(args);
        let checked = csr::parse_and_verify(&der).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(checked.common_name.as_deref(), Some("ossl.example"));
        csr::check_names(&checked, &ids(&["ossl.example"])).unwrap();
    }
    // PSS with a salt length other than the hash length is not supported.
    let der = openssl_csr(&[
        "-newkey",
        "rsa:2048",
        "-sha256",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:20",
    ]);
    assert_eq!(
        csr::parse_and_verify(&der).unwrap_err().kind,
        ErrorKind::BadCsr
    );
    // SHA-1 is refused.
    let der = openssl_csr(&["-newkey", "rsa:2048", "-sha1"]);
    assert_eq!(
        csr::parse_and_verify(&der).unwrap_err().kind,
        ErrorKind::BadCsr
    );
}

#[test]
fn names_must_match_exactly() {
    let key = p256();
    // The CSR has a name the order lacks.
    let checked = csr::parse_and_verify(&csr(&key, &["a.example", "b.example"], None)).unwrap();
    let err = csr::check_names(&checked, &ids(&["a.example"])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadCsr);
    assert!(
        err.detail.contains("not in the order: dns:b.example"),
        "{}",
        err.detail
    );
    assert!(!err.detail.contains("missing"), "{}", err.detail);

    // The order has a name the CSR lacks.
    let checked = csr::parse_and_verify(&csr(&key, &["a.example"], None)).unwrap();
    let err = csr::check_names(&checked, &ids(&["a.example", "192.0.2.1"])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadCsr);
    assert!(
        err.detail.contains("missing from the CSR: ip:192.0.2.1"),
        "{}",
        err.detail
    );

    // A CN that is not among the identifiers.
    let checked = csr::parse_and_verify(&csr(&key, &["a.example"], Some("c.example"))).unwrap();
    let err = csr::check_names(&checked, &ids(&["a.example"])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadCsr);
    assert!(err.detail.contains("dns:c.example"), "{}", err.detail);

    // A CN that is an identifier but not a SAN is fine.
    let checked = csr::parse_and_verify(&csr(&key, &["a.example"], Some("c.example"))).unwrap();
    csr::check_names(&checked, &ids(&["a.example", "c.example"])).unwrap();

    // CN only, no SAN.
    let checked = csr::parse_and_verify(&csr(&key, &[], Some("only.example"))).unwrap();
    assert!(checked.dns_names.is_empty());
    csr::check_names(&checked, &ids(&["only.example"])).unwrap();

    // No names at all.
    let checked = csr::parse_and_verify(&csr(&key, &[], None)).unwrap();
    assert!(csr::check_names(&checked, &ids(&["a.example"])).is_err());
}

#[test]
fn names_compare_case_insensitively_and_ips_canonically() {
    let key = p256();
    let checked = csr::parse_and_verify(&csr(
        &key,
        &["WWW.Example.COM", "2001:DB8:0:0::1", "192.0.2.1"],
        Some("Example.Com"),
    ))
    .unwrap();
    assert_eq!(checked.common_name.as_deref(), Some("Example.Com"));
    csr::check_names(
        &checked,
        &[
            Identifier::dns("www.example.com"),
            Identifier::dns("EXAMPLE.com"),
            Identifier::ip("2001:db8::1"),
            Identifier::ip("192.0.2.1"),
        ],
    )
    .unwrap();

    // A CN holding an IP address counts as that address.
    let checked = csr::parse_and_verify(&csr(&key, &["192.0.2.9"], Some("192.0.2.9"))).unwrap();
    csr::check_names(&checked, &ids(&["192.0.2.9"])).unwrap();

    // Duplicates in the CSR do not matter.
    let checked = csr::parse_and_verify(&csr(&key, &["d.example", "D.example"], None)).unwrap();
    csr::check_names(&checked, &ids(&["d.example"])).unwrap();
}

#[test]
fn csr_spki_is_canonical_and_matches_the_key() {
    for key in [
        p256(),
        rsa2048(),
        KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
    ] {
        let checked = csr::parse_and_verify(&csr(&key, &["spki.example"], None)).unwrap();
        assert_eq!(checked.spki_der, key.subject_public_key_info());
    }
}

#[test]
fn key_algorithm_names() {
    for alg in KeyAlgorithm::ALL {
        let json = format!("\"{}\"", alg.as_str());
        assert_eq!(serde_json::from_str::<KeyAlgorithm>(&json).unwrap(), alg);
        assert_eq!(alg.as_str().parse::<KeyAlgorithm>().unwrap(), alg);
    }
    assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::EcdsaP256);
    assert!(serde_json::from_str::<KeyAlgorithm>("\"rsa-1024\"").is_err());
    let settings: CaSettings =
        toml::from_str("key_algorithm = \"rsa-2048\"\nroot_cert = \"/x/root.pem\"").unwrap();
    assert_eq!(settings.key_algorithm, KeyAlgorithm::Rsa2048);
    assert_eq!(settings.name_prefix, "acme-ca");
}

#[test]
fn serial_hex_is_lowercase_without_separators() {
    assert_eq!(serial_hex(&[0x00, 0xab, 0x0f, 0xff]), "00ab0fff");
    assert_eq!(serial_hex(&[]), "");
}
