//! Delegated OCSP responder certificates (RFC 6960 §4.2.2.2), and what
//! the OCSP code reads from any certificate ([`CertParts`]).

use der::asn1::Null;
use der::{Decode, Encode, Tag, Tagged};
use rcgen::{
    CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use time::{OffsetDateTime, UtcOffset};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
use x509_cert::Certificate;

use super::{encode_error, OcspError, OCSP_NOCHECK_ARCS, OID_COMMON_NAME};
use crate::revocation::cert_names::raw_names;

/// Issue a delegated OCSP responder certificate, signed by `issuer`, for a
/// new ECDSA P-256 key; returns the certificate's DER and the key.
///
/// `issuer_cert_der` is the issuer's certificate: its common name gives the
/// responder's ("<issuer CN> OCSP responder"), and the result is checked to
/// chain to it (issuer name byte for byte, authority key identifier equal
/// to its subject key identifier). The certificate allows OCSP signing only
/// (extendedKeyUsage id-kp-OCSPSigning, critical keyUsage
/// digitalSignature), is not a CA, and carries id-pkix-ocsp-nocheck:
/// clients do not check its revocation, so keep its validity short.
pub fn make_delegated_responder(
    issuer: &Issuer<'_, KeyPair>,
    issuer_cert_der: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(Vec<u8>, KeyPair), OcspError> {
    let not_before = whole_seconds_utc(not_before);
    let not_after = whole_seconds_utc(not_after);
    if not_after <= not_before {
        return Err(OcspError::internal(format!(
            "responder certificate validity ends ({not_after}) before it starts ({not_before})"
        )));
    }
    let issuer_cert = CertParts::parse(issuer_cert_der)
        .map_err(|e| OcspError::internal(format!("the issuer certificate: {e}")))?;
    if issuer_cert.public_key != issuer.key().der_bytes() {
        return Err(OcspError::internal(
            "the issuer certificate does not carry the public key of the issuer's signing key",
        ));
    }
    let common_name = responder_common_name(issuer_cert.common_name.as_deref());

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| OcspError::internal(format!("generating the responder key: {e}")))?;
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial)
        .map_err(|_| OcspError::internal("the random generator failed"))?;
    // Positive, and sixteen octets long.
    serial[0] = (serial[0] & 0x7f) | 0x40;

    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    params.use_authority_key_identifier_extension = true;
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        OCSP_NOCHECK_ARCS,
        Null.to_der().map_err(encode_error)?,
    )];
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| OcspError::internal(format!("signing the responder certificate: {e}")))?;
    let der = cert.der().to_vec();

    let issued = CertParts::parse(&der).map_err(|e| {
        OcspError::internal(format!("the new responder certificate does not parse: {e}"))
    })?;
    if issued.issuer != issuer_cert.subject {
        return Err(OcspError::internal(
            "the responder certificate's issuer name differs from the issuer certificate's subject",
        ));
    }
    if let (Some(aki), Some(ski)) = (&issued.authority_key_id, &issuer_cert.subject_key_id) {
        if aki != ski {
            return Err(OcspError::internal(
                "the responder certificate's authority key identifier differs from the issuer's subject key identifier",
            ));
        }
    }
    Ok((der, key))
}

/// "<issuer CN> OCSP responder", kept within the 64 characters a common
/// name may have.
pub(super) fn responder_common_name(issuer_cn: Option<&str>) -> String {
    const SUFFIX: &str = " OCSP responder";
    let base = issuer_cn.map(str::trim).filter(|cn| !cn.is_empty());
    match base {
        Some(cn) => {
            let cn: String = cn.chars().take(64 - SUFFIX.len()).collect();
            format!("{cn}{SUFFIX}")
        }
        None => "OCSP responder".to_owned(),
    }
}

pub(super) fn whole_seconds_utc(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(0).unwrap_or(t)
}

/// What this module needs from a certificate.
pub(super) struct CertParts<'a> {
    /// The issuer Name as encoded (tag and length included).
    pub(super) issuer: &'a [u8],
    /// The subject Name as encoded (tag and length included).
    pub(super) subject: &'a [u8],
    /// The content of the subjectPublicKey BIT STRING.
    pub(super) public_key: Vec<u8>,
    /// The subject's first common name, when it is a string.
    pub(super) common_name: Option<String>,
    pub(super) subject_key_id: Option<Vec<u8>>,
    pub(super) authority_key_id: Option<Vec<u8>>,
}

impl<'a> CertParts<'a> {
    pub(super) fn parse(der: &'a [u8]) -> Result<Self, String> {
        let invalid = |e: der::Error| format!("not a valid DER certificate: {e}");
        let cert = Certificate::from_der(der).map_err(invalid)?;
        let (issuer, subject) = raw_names(der).map_err(invalid)?;
        let tbs = &cert.tbs_certificate;
        let common_name = tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|atv| atv.oid == OID_COMMON_NAME)
            .and_then(|atv| match atv.value.tag() {
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
                    std::str::from_utf8(atv.value.value())
                        .ok()
                        .map(str::to_owned)
                }
                _ => None,
            });
        let subject_key_id = tbs
            .get::<SubjectKeyIdentifier>()
            .map_err(invalid)?
            .map(|(_, ski)| ski.0.as_bytes().to_vec());
        let authority_key_id = tbs
            .get::<AuthorityKeyIdentifier>()
            .map_err(invalid)?
            .and_then(|(_, aki)| aki.key_identifier)
            .map(|id| id.as_bytes().to_vec());
        Ok(Self {
            issuer,
            subject,
            public_key: tbs
                .subject_public_key_info
                .subject_public_key
                .raw_bytes()
                .to_vec(),
            common_name,
            subject_key_id,
            authority_key_id,
        })
    }
}
