//! Certificate revocation lists (RFC 5280 §5).
//!
//! [`sign_crl`] turns the caller's list of revoked certificates into a signed
//! version 2 CRL in DER. The encoding itself is done by rcgen; this module
//! checks the input, normalises times to whole UTC seconds, takes the
//! authority key identifier from the issuer certificate (rcgen's `Issuer`
//! does not expose it) and checks the result names the issuer exactly as the
//! issuer certificate does, so relying parties can chain it.

use std::fmt;

use der::{Decode, Reader, SliceReader, Tag};
use rcgen::{
    CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, CrlScope,
    Issuer, KeyIdMethod, KeyPair, PublicKeyData, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::{OffsetDateTime, UtcOffset};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::Certificate;

use super::cert_names::{raw_names, signed_tbs};

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CrlEntry {
    /// The certificate's serial number: the content octets of its (positive)
    /// INTEGER, big-endian, as they appear in the certificate.
    pub serial: Vec<u8>,
    /// When the CA revoked it. Stored in the CRL in UTC, whole seconds.
    pub revoked_at: OffsetDateTime,
    /// RFC 5280 CRLReason code: 0 to 10, 7 excepted. `None` and `Some(0)`
    /// (unspecified) both leave out the reasonCode entry extension, as
    /// RFC 5280 §5.3.1 recommends.
    pub reason: Option<u8>,
}

/// What to put in a CRL.
#[derive(Clone, Debug)]
pub(crate) struct CrlSpec<'a> {
    /// The cRLNumber extension: must grow with each CRL the caller issues
    /// for this issuer and scope.
    pub number: u64,
    /// thisUpdate: when this CRL was issued.
    pub this_update: OffsetDateTime,
    /// nextUpdate: when the next CRL will be issued at the latest. Must be
    /// later than `this_update` (after both are cut to whole seconds).
    pub next_update: OffsetDateTime,
    /// The revoked certificates; may be empty.
    pub entries: &'a [CrlEntry],
    /// When set, the CRL carries a critical issuingDistributionPoint
    /// extension with this URI as its full name and onlyContainsUserCerts
    /// set: the CRL then covers end-entity certificates only.
    pub distribution_point: Option<&'a str>,
    /// The DER certificate of the issuer (the one whose key signs). Its
    /// subjectKeyIdentifier becomes the CRL's authorityKeyIdentifier (when
    /// it has none, the SHA-1 of its public key is used, RFC 5280
    /// §4.2.1.2 method 1), and the CRL is checked to name the issuer
    /// exactly as this certificate's subject does.
    pub issuer_cert_der: &'a [u8],
}

/// Why a CRL could not be produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CrlError {
    message: String,
}

impl CrlError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for CrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CrlError {}

/// Sign a version 2 CRL with `issuer`'s key and return its DER.
///
/// The CRL carries an authorityKeyIdentifier, a cRLNumber, thisUpdate and
/// nextUpdate (UTCTime before 2050, GeneralizedTime from then on, always
/// whole seconds in UTC), and per entry a reasonCode when the reason is
/// known and not "unspecified". The signature algorithm follows the key.
pub(crate) fn sign_crl(
    issuer: &Issuer<'_, KeyPair>,
    spec: &CrlSpec<'_>,
) -> Result<Vec<u8>, CrlError> {
    let this_update = whole_seconds_utc(spec.this_update);
    let next_update = whole_seconds_utc(spec.next_update);
    if next_update <= this_update {
        return Err(CrlError::new(format!(
            "CRL nextUpdate ({next_update}) is not after thisUpdate ({this_update})"
        )));
    }

    let issuer_cert = IssuerCert::parse(spec.issuer_cert_der)?;
    if issuer_cert.public_key != issuer.key().der_bytes() {
        return Err(CrlError::new(
            "the issuer certificate does not carry the public key of the signing key",
        ));
    }

    let mut revoked_certs = Vec::with_capacity(spec.entries.len());
    for entry in spec.entries {
        check_serial(&entry.serial)?;
        let reason_code = match entry.reason {
            None | Some(0) => None,
            Some(code) => Some(revocation_reason(code).ok_or_else(|| {
                CrlError::new(format!(
                    "revocation reason {code} of serial {} is not an RFC 5280 CRLReason (0-6, 8-10)",
                    hex(&entry.serial)
                ))
            })?),
        };
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&entry.serial),
            revocation_time: whole_seconds_utc(entry.revoked_at),
            reason_code,
            invalidity_date: None,
        });
    }

    let issuing_distribution_point = match spec.distribution_point {
        None => None,
        Some(uri) => {
            if uri.is_empty() || !uri.is_ascii() {
                return Err(CrlError::new(format!(
                    "CRL distribution point {uri:?} is not a non-empty ASCII URI"
                )));
            }
            Some(CrlIssuingDistributionPoint {
                distribution_point: CrlDistributionPoint {
                    uris: vec![uri.to_owned()],
                },
                scope: Some(CrlScope::UserCertsOnly),
            })
        }
    };

    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(spec.number),
        issuing_distribution_point,
        revoked_certs,
        key_identifier_method: KeyIdMethod::PreSpecified(issuer_cert.key_id),
    };
    let crl = params
        .signed_by(issuer)
        .map_err(|e| CrlError::new(format!("signing the CRL failed: {e}")))?;
    let der = crl.der().to_vec();

    let crl_issuer = crl_issuer_name(&der)
        .map_err(|e| CrlError::new(format!("the signed CRL does not parse back: {e}")))?;
    if crl_issuer != issuer_cert.subject {
        return Err(CrlError::new(
            "the CRL's issuer name differs from the issuer certificate's subject (the rcgen issuer does not match the certificate)",
        ));
    }
    Ok(der)
}

/// The parts of the issuer certificate that a CRL depends on.
struct IssuerCert {
    /// The subject Name, as encoded in the certificate (tag and length
    /// included).
    subject: Vec<u8>,
    /// The content of the subjectPublicKey BIT STRING.
    public_key: Vec<u8>,
    /// The key identifier for the authorityKeyIdentifier extension.
    key_id: Vec<u8>,
}

impl IssuerCert {
    fn parse(der: &[u8]) -> Result<Self, CrlError> {
        let bad =
            |e: der::Error| CrlError::new(format!("the issuer certificate is not valid: {e}"));
        let cert = Certificate::from_der(der).map_err(bad)?;
        let (_, subject) = raw_names(der).map_err(bad)?;
        let subject = subject.to_vec();
        let public_key = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let key_id = match cert
            .tbs_certificate
            .get::<SubjectKeyIdentifier>()
            .map_err(bad)?
        {
            Some((_, ski)) => ski.0.as_bytes().to_vec(),
            None => {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &public_key)
                    .as_ref()
                    .to_vec()
            }
        };
        Ok(Self {
            subject,
            public_key,
            key_id,
        })
    }
}

/// The issuer Name of a CRL exactly as encoded in it.
fn crl_issuer_name(crl_der: &[u8]) -> der::Result<Vec<u8>> {
    let mut reader = SliceReader::new(signed_tbs(crl_der)?)?;
    let issuer = reader.sequence(|tbs| {
        if tbs.peek_tag()? == Tag::Integer {
            tbs.tlv_bytes()?; // version
        }
        tbs.tlv_bytes()?; // signature
        let issuer = tbs.tlv_bytes()?.to_vec();
        while !tbs.is_finished() {
            tbs.tlv_bytes()?;
        }
        Ok(issuer)
    })?;
    reader.finish(issuer)
}

/// A serial must be the content of a DER INTEGER that is positive or zero.
fn check_serial(serial: &[u8]) -> Result<(), CrlError> {
    let problem = match serial {
        [] => Some("is empty"),
        [first, ..] if first & 0x80 != 0 => Some("is negative"),
        [0, second, ..] if second & 0x80 == 0 => Some("has a redundant leading zero"),
        _ if serial.len() > 21 => Some("is longer than 20 octets"),
        _ => None,
    };
    match problem {
        Some(problem) => Err(CrlError::new(format!(
            "CRL entry serial {} {problem}",
            hex(serial)
        ))),
        None => Ok(()),
    }
}

fn revocation_reason(code: u8) -> Option<RevocationReason> {
    Some(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => return None,
    })
}

/// `t` in UTC with the fraction of a second dropped.
fn whole_seconds_utc(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(0).unwrap_or(t)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose, SignatureAlgorithm,
    };
    use time::macros::datetime;
    use time::Duration;

    use super::*;
    use crate::test_support::{openssl, openssl_available};

    /// A root and an intermediate; the intermediate signs CRLs.
    struct TestCa {
        root_pem: String,
        int_der: Vec<u8>,
        int_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn new_key(alg: &'static SignatureAlgorithm) -> KeyPair {
        if alg == &rcgen::PKCS_RSA_SHA256 {
            KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
        } else {
            KeyPair::generate_for(alg).unwrap()
        }
    }

    fn ca_params(cn: &str, is_ca: IsCa) -> CertificateParams {
        let now = whole_seconds_utc(OffsetDateTime::now_utc());
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = is_ca;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(30);
        params
    }

    fn test_ca(alg: &'static SignatureAlgorithm) -> TestCa {
        let root_key = new_key(alg);
        let root_params = ca_params("test root", IsCa::Ca(BasicConstraints::Unconstrained));
        let root_cert = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);

        let int_key = new_key(alg);
        let mut int_params = ca_params(
            "test intermediate",
            IsCa::Ca(BasicConstraints::Constrained(0)),
        );
        int_params.use_authority_key_identifier_extension = true;
        let int_cert = int_params.signed_by(&int_key, &root_issuer).unwrap();
        TestCa {
            root_pem: root_cert.pem(),
            int_der: int_cert.der().to_vec(),
            int_pem: int_cert.pem(),
            issuer: Issuer::new(int_params, int_key),
        }
    }

    fn spec<'a>(ca: &'a TestCa, entries: &'a [CrlEntry]) -> CrlSpec<'a> {
        CrlSpec {
            number: 42,
            this_update: datetime!(2026-03-01 12:00:00.75 +02:00),
            next_update: datetime!(2026-03-08 12:00:00 +02:00),
            entries,
            distribution_point: None,
            issuer_cert_der: &ca.int_der,
        }
    }

    fn two_entries() -> Vec<CrlEntry> {
        vec![
            CrlEntry {
                serial: vec![0x00, 0x9a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06],
                revoked_at: datetime!(2026-02-27 10:11:12.5 UTC),
                reason: Some(1),
            },
            CrlEntry {
                serial: vec![0x4b, 0x7f, 0x10, 0x20],
                revoked_at: datetime!(2026-02-28 01:02:03 UTC),
                reason: None,
            },
        ]
    }

    /// Write the CRL and the intermediate, then have openssl print the CRL
    /// and verify its signature against the intermediate.
    fn openssl_check(ca: &TestCa, crl: &[u8]) -> (String, bool, String) {
        let dir = tempfile::tempdir().unwrap();
        let crl_path = dir.path().join("crl.der");
        let int_path = dir.path().join("int.pem");
        let root_path = dir.path().join("root.pem");
        std::fs::write(&crl_path, crl).unwrap();
        std::fs::write(&int_path, &ca.int_pem).unwrap();
        std::fs::write(&root_path, &ca.root_pem).unwrap();
        let crl_path = crl_path.to_str().unwrap();
        let (ok, text) = openssl(&["crl", "-inform", "DER", "-in", crl_path, "-text", "-noout"]);
        assert!(ok, "openssl crl -text failed:\n{text}");
        let (ok, verify) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            crl_path,
            "-CAfile",
            int_path.to_str().unwrap(),
            "-noout",
        ]);
        (text, ok, verify)
    }

    fn check_two_entry_crl(alg: &'static SignatureAlgorithm, sig_name: &str) {
        let ca = test_ca(alg);
        let entries = two_entries();
        let crl = sign_crl(&ca.issuer, &spec(&ca, &entries)).unwrap();
        if !openssl_available() {
            return;
        }
        let (text, ok, verify) = openssl_check(&ca, &crl);
        assert!(ok && verify.contains("verify OK"), "{verify}");
        assert!(text.contains("Version 2 (0x1)"), "{text}");
        assert!(
            text.contains(&format!("Signature Algorithm: {sig_name}")),
            "{text}"
        );
        assert!(text.contains("Issuer: CN = test intermediate"), "{text}");
        // Times in UTC, fraction dropped.
        assert!(
            text.contains("Last Update: Mar  1 10:00:00 2026 GMT"),
            "{text}"
        );
        assert!(
            text.contains("Next Update: Mar  8 10:00:00 2026 GMT"),
            "{text}"
        );
        let number = text
            .split("X509v3 CRL Number:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next());
        assert_eq!(number, Some("42"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
        assert!(text.contains("Serial Number: 9A010203040506"), "{text}");
        assert!(
            text.contains("Revocation Date: Feb 27 10:11:12 2026 GMT"),
            "{text}"
        );
        assert!(text.contains("Serial Number: 4B7F1020"), "{text}");
        assert!(
            text.contains("Revocation Date: Feb 28 01:02:03 2026 GMT"),
            "{text}"
        );
        // One reason code, on the first entry only.
        assert_eq!(text.matches("X509v3 CRL Reason Code").count(), 1, "{text}");
        let first = text.split("Serial Number: 4B7F1020").next().unwrap();
        assert!(first.contains("Key Compromise"), "{text}");
        assert!(!text.contains("Issuing Distribution Point"), "{text}");
    }

    #[test]
    fn ecdsa_crl_reads_and_verifies_in_openssl() {
        check_two_entry_crl(&rcgen::PKCS_ECDSA_P256_SHA256, "ecdsa-with-SHA256");
    }

    #[test]
    fn rsa_crl_reads_and_verifies_in_openssl() {
        check_two_entry_crl(&rcgen::PKCS_RSA_SHA256, "sha256WithRSAEncryption");
    }

    #[test]
    fn p384_crl_verifies_in_openssl() {
        check_two_entry_crl(&rcgen::PKCS_ECDSA_P384_SHA384, "ecdsa-with-SHA384");
    }

    #[test]
    fn tampered_crl_fails_openssl_verification() {
        let ca = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let entries = two_entries();
        let mut crl = sign_crl(&ca.issuer, &spec(&ca, &entries)).unwrap();
        if !openssl_available() {
            return;
        }
        // Change the CRL number (the INTEGER 42 in the cRLNumber extension).
        let pos = crl
            .windows(7)
            .position(|w| w == [0x55, 0x1d, 0x14, 0x04, 0x03, 0x02, 0x01])
            .expect("cRLNumber extension");
        assert_eq!(crl[pos + 7], 42);
        crl[pos + 7] = 43;
        let (text, ok, verify) = openssl_check(&ca, &crl);
        assert!(text.contains("43"), "{text}");
        assert!(!ok || !verify.contains("verify OK"), "{verify}");
        assert!(verify.contains("verify failure"), "{verify}");
    }

    #[test]
    fn crl_signed_by_another_key_fails_openssl_verification() {
        let ca = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let other = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let entries = two_entries();
        // The other CA's CRL, checked against this CA's intermediate.
        let crl = sign_crl(&other.issuer, &spec(&other, &entries)).unwrap();
        if !openssl_available() {
            return;
        }
        let (_, ok, verify) = openssl_check(&ca, &crl);
        assert!(!ok || !verify.contains("verify OK"), "{verify}");
    }

    #[test]
    fn empty_crl_with_distribution_point() {
        let ca = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let mut spec = spec(&ca, &[]);
        spec.number = 7;
        spec.distribution_point = Some("http://ca.example/crl/1.crl");
        let crl = sign_crl(&ca.issuer, &spec).unwrap();
        if !openssl_available() {
            return;
        }
        let (text, ok, verify) = openssl_check(&ca, &crl);
        assert!(ok && verify.contains("verify OK"), "{verify}");
        assert!(text.contains("No Revoked Certificates."), "{text}");
        assert!(
            text.contains("X509v3 Issuing Distribution Point: critical"),
            "{text}"
        );
        assert!(text.contains("URI:http://ca.example/crl/1.crl"), "{text}");
        assert!(text.contains("Only User Certificates"), "{text}");
        let number = text
            .split("X509v3 CRL Number:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next());
        assert_eq!(number, Some("7"), "{text}");
    }

    #[test]
    fn large_crl_number_and_all_reasons() {
        let ca = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let entries: Vec<CrlEntry> = [0u8, 1, 2, 3, 4, 5, 6, 8, 9, 10]
            .iter()
            .map(|&code| CrlEntry {
                serial: vec![0x10, code],
                revoked_at: datetime!(2026-02-01 00:00:00 UTC),
                reason: Some(code),
            })
            .collect();
        let mut spec = spec(&ca, &entries);
        spec.number = u64::MAX;
        let crl = sign_crl(&ca.issuer, &spec).unwrap();
        if !openssl_available() {
            return;
        }
        let (text, ok, verify) = openssl_check(&ca, &crl);
        assert!(ok && verify.contains("verify OK"), "{verify}");
        // u64::MAX needs a leading zero octet to stay positive.
        assert!(
            crl.windows(12)
                .any(|w| w
                    == [0x04, 0x0b, 0x02, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        );
        let number = text
            .split("X509v3 CRL Number:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next());
        assert_eq!(number, Some("18446744073709551615"), "{text}");
        // Unspecified (0) is left out; the nine others are present.
        assert_eq!(text.matches("X509v3 CRL Reason Code").count(), 9, "{text}");
        for name in [
            "Key Compromise",
            "CA Compromise",
            "Affiliation Changed",
            "Superseded",
            "Cessation Of Operation",
            "Certificate Hold",
            "Remove From CRL",
            "Privilege Withdrawn",
            "AA Compromise",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        let ca = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let entry = |serial: Vec<u8>, reason| CrlEntry {
            serial,
            revoked_at: datetime!(2026-02-01 00:00:00 UTC),
            reason,
        };
        let fails = |entries: &[CrlEntry], wanted: &str| {
            let err = sign_crl(&ca.issuer, &spec(&ca, entries)).unwrap_err();
            assert!(err.to_string().contains(wanted), "{err}");
        };
        fails(&[entry(vec![1], Some(7))], "reason 7");
        fails(&[entry(vec![1], Some(11))], "reason 11");
        fails(&[entry(vec![], None)], "is empty");
        fails(&[entry(vec![0x80], None)], "is negative");
        fails(&[entry(vec![0, 1], None)], "redundant leading zero");
        fails(&[entry(vec![0x11; 22], None)], "longer than 20 octets");

        let mut times = spec(&ca, &[]);
        times.next_update = times.this_update + Duration::milliseconds(100);
        let err = sign_crl(&ca.issuer, &times).unwrap_err();
        assert!(err.to_string().contains("is not after thisUpdate"), "{err}");

        let mut bad_uri = spec(&ca, &[]);
        bad_uri.distribution_point = Some("");
        assert!(sign_crl(&ca.issuer, &bad_uri).is_err());

        // The issuer certificate of another CA.
        let other = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let mut wrong_cert = spec(&ca, &[]);
        wrong_cert.issuer_cert_der = &other.int_der;
        let err = sign_crl(&ca.issuer, &wrong_cert).unwrap_err();
        assert!(err.to_string().contains("public key"), "{err}");

        let mut garbage = spec(&ca, &[]);
        garbage.issuer_cert_der = b"not a certificate";
        let err = sign_crl(&ca.issuer, &garbage).unwrap_err();
        assert!(
            err.to_string().contains("issuer certificate is not valid"),
            "{err}"
        );
    }

    #[test]
    fn aki_is_the_issuer_ski() {
        let ca = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let crl = sign_crl(&ca.issuer, &spec(&ca, &[])).unwrap();
        let ski = IssuerCert::parse(&ca.int_der).unwrap().key_id;
        // AKI extension: OID 2.5.29.35, then OCTET STRING { SEQUENCE { [0] keyid } }.
        let mut aki = vec![
            0x06, 0x03, 0x55, 0x1d, 0x23, 0x04, 0x18, 0x30, 0x16, 0x80, 0x14,
        ];
        aki.extend_from_slice(&ski);
        assert!(crl.windows(aki.len()).any(|w| w == aki.as_slice()));
    }
}
