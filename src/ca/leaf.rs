//! Leaf certificates: the CA/Browser Forum Baseline Requirements TLS
//! subscriber profile.
//!
//! Extensions, in order: authorityKeyIdentifier, subjectAltName (critical
//! when the subject is empty), keyUsage (critical: digitalSignature, plus
//! keyEncipherment for RSA), extKeyUsage (serverAuth, clientAuth),
//! subjectKeyIdentifier, basicConstraints (critical, CA:FALSE),
//! certificatePolicies (2.23.140.1.2.1), authorityInfoAccess (OCSP and
//! caIssuers, when URLs are given), cRLDistributionPoints (when a URL is
//! given) and the TLS Feature extension (OCSP Must-Staple, when asked).
//! The profile ([`LeafProfile`]) decides the common name, the extended key
//! usages and keyEncipherment for RSA keys.

use std::collections::HashSet;
use std::net::IpAddr;

use der::asn1::{Ia5String, ObjectIdentifier};
use der::{Decode, Encode};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
    SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime, UtcOffset};
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax, CertificatePolicies};
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::{Ca, IssuedCert, LeafProfile, LeafRequest, PublicKeyKind};
use crate::error::{Error, Result};
use crate::protocol::{Identifier, IdentifierType};

/// CA/Browser Forum domain-validated policy.
const DOMAIN_VALIDATED: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.140.1.2.1");
/// id-ad-caIssuers.
const CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
/// id-ad-ocsp.
const OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const TLS_FEATURE_ARCS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 24];
const CERTIFICATE_POLICIES_ARCS: &[u64] = &[2, 5, 29, 32];
const AUTHORITY_INFO_ACCESS_ARCS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];

/// Longest common name allowed (X.520 ub-common-name).
const MAX_CN_LEN: usize = 64;

/// A subject public key as rcgen wants it: the algorithm (which decides how
/// the SubjectPublicKeyInfo's AlgorithmIdentifier is written) and the raw
/// subjectPublicKey bits.
struct SubjectKey<'a> {
    alg: &'static SignatureAlgorithm,
    key: &'a [u8],
}

impl PublicKeyData for SubjectKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

fn rcgen_algorithm(kind: PublicKeyKind) -> &'static SignatureAlgorithm {
    match kind {
        // rsaEncryption with NULL parameters.
        PublicKeyKind::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
        // id-ecPublicKey with the named curve.
        PublicKeyKind::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        PublicKeyKind::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        PublicKeyKind::EcdsaP521 => &rcgen::PKCS_ECDSA_P521_SHA512,
        PublicKeyKind::Ed25519 => &rcgen::PKCS_ED25519,
    }
}

/// The canonical DER SubjectPublicKeyInfo for a key of `kind` with raw
/// subjectPublicKey bits `key`: exactly what a leaf will contain.
pub(crate) fn canonical_spki(kind: PublicKeyKind, key: &[u8]) -> Vec<u8> {
    SubjectKey {
        alg: rcgen_algorithm(kind),
        key,
    }
    .subject_public_key_info()
}

/// 16 random bytes, positive and never zero as an INTEGER: the top bit is
/// cleared and the next one set, so the encoding is always 16 bytes long
/// (126 bits of entropy).
pub(crate) fn random_serial() -> Result<[u8; 16]> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| Error::internal("random generator failed"))?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

/// `t` in UTC without its fraction of a second, as a certificate holds it.
pub(crate) fn whole_seconds_utc(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t - Duration::nanoseconds(i64::from(t.nanosecond()))
}

pub(super) fn issue(
    issuer: &Issuer<'static, KeyPair>,
    req: &LeafRequest<'_>,
) -> Result<IssuedCert> {
    let key = subject_key(req)?;
    let not_before = whole_seconds_utc(req.not_before);
    let not_after = whole_seconds_utc(req.not_after);
    if not_after <= not_before {
        return Err(Error::internal(format!(
            "leaf validity is empty: {not_before} .. {not_after}"
        )));
    }

    let mut params = CertificateParams::default();
    subject(&mut params, req)?;
    let serial = random_serial()?;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = IsCa::ExplicitNoCa;
    key_usages(&mut params, req.key_kind, req.profile);
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.custom_extensions = vec![certificate_policies()?];
    status_extensions(&mut params, req)?;

    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| Error::internal(format!("signing leaf: {e}")))?;
    Ok(IssuedCert {
        serial: serial.to_vec(),
        der: cert.der().to_vec(),
        pem: cert.pem(),
        not_before,
        not_after,
    })
}

/// The request's public key, refused unless its SubjectPublicKeyInfo is
/// the canonical form of a key of its kind (what the leaf will contain).
fn subject_key<'a>(req: &LeafRequest<'a>) -> Result<SubjectKey<'a>> {
    let spki = SubjectPublicKeyInfoRef::from_der(req.spki_der)
        .map_err(|e| Error::internal(format!("leaf SubjectPublicKeyInfo does not parse: {e}")))?;
    let key_bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| Error::internal("leaf public key bit string has unused bits"))?;
    let key = SubjectKey {
        alg: rcgen_algorithm(req.key_kind),
        key: key_bits,
    };
    if key.subject_public_key_info() != req.spki_der {
        return Err(Error::internal(format!(
            "leaf SubjectPublicKeyInfo is not the canonical form of a {} key",
            req.key_kind
        )));
    }
    Ok(key)
}

/// The subjectAltName and, when the profile has one, the common name.
fn subject(params: &mut CertificateParams, req: &LeafRequest<'_>) -> Result<()> {
    if req.identifiers.is_empty() && req.subject_cn.is_none() {
        return Err(Error::internal(
            "leaf request without identifiers or subject",
        ));
    }
    let (subject_alt_names, common_name) = names(req.identifiers)?;
    // An explicit subject name (operator service) wins over the first DNS
    // name; it is bounded like any common name.
    let common_name = match req.subject_cn {
        Some(cn) if cn.is_empty() || cn.len() > MAX_CN_LEN => {
            return Err(Error::internal(format!(
                "subject common name must be 1 to {MAX_CN_LEN} characters"
            )))
        }
        Some(cn) => Some(cn.to_owned()),
        None => common_name,
    };
    params.subject_alt_names = subject_alt_names;
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = common_name.filter(|_| req.profile.common_name) {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    Ok(())
}

/// keyUsage (digitalSignature, plus keyEncipherment for RSA when the
/// profile says so) and the profile's extended key usages.
fn key_usages(params: &mut CertificateParams, kind: PublicKeyKind, profile: &LeafProfile) {
    params.key_usages = match kind {
        PublicKeyKind::Rsa { .. } if profile.rsa_key_encipherment => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        _ => vec![KeyUsagePurpose::DigitalSignature],
    };
    params.extended_key_usages = Vec::new();
    if profile.server_auth {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if profile.client_auth {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
}

/// authorityInfoAccess (OCSP, caIssuers), cRLDistributionPoints and OCSP
/// Must-Staple, as the request gives them.
fn status_extensions(params: &mut CertificateParams, req: &LeafRequest<'_>) -> Result<()> {
    if req.ocsp_url.is_some() || req.ca_issuers_url.is_some() {
        params
            .custom_extensions
            .push(authority_info_access(req.ocsp_url, req.ca_issuers_url)?);
    }
    if let Some(url) = req.crl_url {
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![url.to_owned()],
        }];
    }
    if req.must_staple {
        if req.ocsp_url.is_none() {
            return Err(Error::internal(
                "Must-Staple asked for a certificate without an OCSP URL",
            ));
        }
        params.custom_extensions.push(must_staple()?);
    }
    Ok(())
}

/// The subjectAltName entries (lowercased DNS names, IP addresses, without
/// duplicates, in order) and the common name: the first DNS name that fits
/// in a CN, if any.
fn names(identifiers: &[Identifier]) -> Result<(Vec<SanType>, Option<String>)> {
    let mut sans = Vec::with_capacity(identifiers.len());
    let mut seen = HashSet::with_capacity(identifiers.len());
    let mut common_name = None;
    for id in identifiers {
        let san = match id.kind {
            IdentifierType::Dns => {
                let name = id.value.to_ascii_lowercase();
                if common_name.is_none() && name.len() <= MAX_CN_LEN {
                    common_name = Some(name.clone());
                }
                let ia5 = rcgen::string::Ia5String::try_from(name).map_err(|e| {
                    Error::internal(format!("identifier {id} is not an IA5 string: {e}"))
                })?;
                SanType::DnsName(ia5)
            }
            IdentifierType::Ip => {
                SanType::IpAddress(id.value.parse::<IpAddr>().map_err(|_| {
                    Error::internal(format!("identifier {id} is not an IP address"))
                })?)
            }
            IdentifierType::Unknown => {
                return Err(Error::internal(format!(
                    "identifier {id} has an unknown type"
                )))
            }
        };
        if seen.insert(san.clone()) {
            sans.push(san);
        }
    }
    Ok((sans, common_name))
}

fn certificate_policies() -> Result<CustomExtension> {
    let policies = CertificatePolicies(vec![PolicyInformation {
        policy_identifier: DOMAIN_VALIDATED,
        policy_qualifiers: None,
    }]);
    let der = policies
        .to_der()
        .map_err(|e| Error::internal(format!("encoding certificatePolicies: {e}")))?;
    Ok(CustomExtension::from_oid_content(
        CERTIFICATE_POLICIES_ARCS,
        der,
    ))
}

fn authority_info_access(ocsp: Option<&str>, ca_issuers: Option<&str>) -> Result<CustomExtension> {
    let mut access = Vec::with_capacity(2);
    for (method, url) in [(OCSP, ocsp), (CA_ISSUERS, ca_issuers)] {
        let Some(url) = url else { continue };
        let uri = Ia5String::new(url)
            .map_err(|e| Error::internal(format!("AIA URL {url:?} is not IA5: {e}")))?;
        access.push(AccessDescription {
            access_method: method,
            access_location: GeneralName::UniformResourceIdentifier(uri),
        });
    }
    let aia = AuthorityInfoAccessSyntax(access);
    let der = aia
        .to_der()
        .map_err(|e| Error::internal(format!("encoding authorityInfoAccess: {e}")))?;
    Ok(CustomExtension::from_oid_content(
        AUTHORITY_INFO_ACCESS_ARCS,
        der,
    ))
}

/// The TLS Feature extension (RFC 7633) with status_request: OCSP
/// Must-Staple.
fn must_staple() -> Result<CustomExtension> {
    let der = vec![super::csr::STATUS_REQUEST]
        .to_der()
        .map_err(|e| Error::internal(format!("encoding TLS Feature: {e}")))?;
    Ok(CustomExtension::from_oid_content(TLS_FEATURE_ARCS, der))
}

pub(super) fn tls_server_identity(
    ca: &Ca,
    names: &[Identifier],
) -> Result<(Vec<Vec<u8>>, Vec<u8>)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::internal(format!("generating TLS key: {e}")))?;
    let spki = key.subject_public_key_info();
    let now = whole_seconds_utc(OffsetDateTime::now_utc());
    let not_after = (now + Duration::days(365)).min(ca.intermediate_not_after);
    let cert = issue(
        &ca.issuer,
        &LeafRequest {
            spki_der: &spki,
            key_kind: PublicKeyKind::EcdsaP256,
            identifiers: names,
            not_before: now - Duration::minutes(5),
            not_after,
            ca_issuers_url: None,
            ocsp_url: None,
            crl_url: None,
            profile: &LeafProfile::default(),
            must_staple: false,
            subject_cn: None,
        },
    )?;
    Ok((
        vec![cert.der, ca.intermediate_der.clone()],
        key.serialize_der(),
    ))
}
