//! Checking a finalize request's CSR (RFC 8555 §7.4, RFC 2986).
//!
//! Only three things are taken from a CSR: its public key, its common name
//! and its subjectAltName DNS names and IP addresses. Every other extension
//! it asks for is ignored; the leaf profile is fixed by the CA.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::CertReqInfo;
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::verify::{
    self, VerifyError, EC_PUBLIC_KEY, ED25519, RSA_ENCRYPTION, SECP256R1, SECP384R1, SECP521R1,
};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{Identifier, IdentifierType};

const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// Smallest RSA modulus accepted, in bits.
pub const RSA_MIN_BITS: usize = 2048;
/// Smallest RSA modulus `acme-ca pebble` accepts (Pebble takes 1024).
pub const RSA_LEGACY_MIN_BITS: usize = 1024;
/// Largest RSA modulus accepted, in bits.
pub const RSA_MAX_BITS: usize = 8192;

/// The kind of a subject public key this CA certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublicKeyKind {
    /// RSA (rsaEncryption), with the modulus size in bits.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// ECDSA on NIST P-521 (allowed by the Baseline Requirements §6.1.5).
    EcdsaP521,
    /// Ed25519 (RFC 8410).
    Ed25519,
}

impl fmt::Display for PublicKeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            PublicKeyKind::EcdsaP256 => f.write_str("ECDSA P-256"),
            PublicKeyKind::EcdsaP384 => f.write_str("ECDSA P-384"),
            PublicKeyKind::EcdsaP521 => f.write_str("ECDSA P-521"),
            PublicKeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// A CSR whose self-signature verified and whose key is acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCsr {
    /// The subject public key as a DER SubjectPublicKeyInfo, in canonical
    /// form (RSA with NULL parameters, EC with a named curve and an
    /// uncompressed point), ready for [`LeafRequest::spki_der`](super::LeafRequest).
    pub spki_der: Vec<u8>,
    /// What kind of key it is.
    pub key_kind: PublicKeyKind,
    /// The subject's common name, if any, as in the CSR.
    pub common_name: Option<String>,
    /// subjectAltName DNS names, as in the CSR (case preserved).
    pub dns_names: Vec<String>,
    /// subjectAltName IP addresses.
    pub ip_addrs: Vec<IpAddr>,
    /// The CSR asks for OCSP Must-Staple: a TLS Feature extension (RFC 7633)
    /// listing status_request. The one requested extension that may reach a
    /// certificate, and only when the profile has an OCSP responder.
    pub must_staple: bool,
}

/// Parse DER (the caller has already base64url-decoded and size-capped it),
/// verify the signature with the CSR's own key (aws-lc-rs; RSA PKCS#1
/// SHA-256/384/512, RSA-PSS, ECDSA P-256/P-384 with SHA-256/384 and P-521
/// with SHA-256/384/512 in ASN.1 DER form, Ed25519), check the key.
///
/// Errors: `badCSR` for anything malformed, an unsupported signature
/// algorithm, a signature that does not verify, or a key that is not RSA
/// 2048–8192 bits (odd exponent ≥ 3, < 2³²), ECDSA P-256/P-384/P-521
/// (uncompressed point) or Ed25519: RFC 8555 §6.7 gives `badCSR` for "a
/// short key", `badPublicKey` being about the JWS key.
pub fn parse_and_verify(der: &[u8]) -> Result<CheckedCsr> {
    parse_and_verify_with(der, RSA_MIN_BITS)
}

/// [`parse_and_verify`] with another smallest RSA key size (at least
/// [`RSA_LEGACY_MIN_BITS`]; below 2048 bits only PKCS#1 v1.5 signatures with
/// SHA-256 or SHA-512 verify).
pub fn parse_and_verify_with(der: &[u8], rsa_min_bits: usize) -> Result<CheckedCsr> {
    let signed = verify::split_signed(der)
        .map_err(|e| Error::bad_csr(format!("CSR is not a valid DER PKCS#10 request: {e}")))?;
    let info = CertReqInfo::from_der(signed.tbs)
        .map_err(|e| Error::bad_csr(format!("CSR could not be parsed: {e}")))?;
    let spki_bytes = info
        .public_key
        .to_der()
        .map_err(|e| Error::bad_csr(format!("CSR public key could not be parsed: {e}")))?;
    let spki = SubjectPublicKeyInfoRef::from_der(&spki_bytes)
        .map_err(|e| Error::bad_csr(format!("CSR public key could not be parsed: {e}")))?;

    let rsa_min_bits = rsa_min_bits.max(RSA_LEGACY_MIN_BITS);
    let (key_kind, key_bits) = check_public_key(&spki, rsa_min_bits)?;

    verify::verify_signature_with(
        &spki,
        &signed.algorithm,
        signed.tbs,
        signed.signature,
        rsa_min_bits < RSA_MIN_BITS,
    )
    .map_err(|e| match e {
        VerifyError::Algorithm(detail) => Error::bad_csr(format!("CSR signature: {detail}")),
        VerifyError::BadSignature => Error::bad_csr("CSR signature does not verify"),
    })?;

    let common_name = common_name(&info.subject)?;
    let (dns_names, ip_addrs, must_staple) = requested_extensions(&info)?;

    Ok(CheckedCsr {
        spki_der: super::leaf::canonical_spki(key_kind, key_bits),
        key_kind,
        common_name,
        dns_names,
        ip_addrs,
        must_staple,
    })
}

/// The CSR's names (CN and SANs, case-insensitive for DNS, canonical form
/// for IPs) must be exactly the order's identifiers as a set; else badCSR
/// naming what is missing or extra.
///
/// A common name that parses as an IP address counts as that address,
/// otherwise as a DNS name. The CN need not repeat a SAN.
pub fn check_names(csr: &CheckedCsr, identifiers: &[Identifier]) -> Result<()> {
    let mut wanted = BTreeSet::new();
    for id in identifiers {
        let name = match id.kind {
            IdentifierType::Dns => CsrName::Dns(id.value.to_ascii_lowercase()),
            IdentifierType::Ip => CsrName::Ip(id.value.parse().map_err(|_| {
                Error::internal(format!("order identifier {id} is not an IP address"))
            })?),
            IdentifierType::Unknown => {
                return Err(Error::internal(format!(
                    "order identifier {id} has an unknown type"
                )))
            }
        };
        wanted.insert(name);
    }

    let mut present = BTreeSet::new();
    if let Some(cn) = &csr.common_name {
        present.insert(match cn.parse::<IpAddr>() {
            Ok(ip) => CsrName::Ip(ip),
            Err(_) => CsrName::Dns(cn.to_ascii_lowercase()),
        });
    }
    present.extend(
        csr.dns_names
            .iter()
            .map(|n| CsrName::Dns(n.to_ascii_lowercase())),
    );
    present.extend(csr.ip_addrs.iter().map(|ip| CsrName::Ip(*ip)));

    let missing: Vec<String> = wanted.difference(&present).map(|n| n.to_string()).collect();
    let extra: Vec<String> = present.difference(&wanted).map(|n| n.to_string()).collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut detail = String::from("CSR names do not match the order's identifiers");
    if !missing.is_empty() {
        detail.push_str(&format!("; missing from the CSR: {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        detail.push_str(&format!("; not in the order: {}", extra.join(", ")));
    }
    Err(Error::bad_csr(detail))
}

/// A name as compared by [`check_names`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum CsrName {
    Dns(String),
    Ip(IpAddr),
}

impl fmt::Display for CsrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsrName::Dns(n) => write!(f, "dns:{n}"),
            CsrName::Ip(ip) => write!(f, "ip:{ip}"),
        }
    }
}

fn bad_key(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::BadCsr, detail.into())
}

/// Check that the key is one we certify; returns its kind and its raw
/// subjectPublicKey bits.
fn check_public_key<'a>(
    spki: &SubjectPublicKeyInfoRef<'a>,
    rsa_min_bits: usize,
) -> Result<(PublicKeyKind, &'a [u8])> {
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad_key("public key bit string has unused bits"))?;
    let params = spki.algorithm.parameters;
    let oid = spki.algorithm.oid;

    if oid == RSA_ENCRYPTION {
        if params.is_some_and(|p| !p.is_null()) {
            return Err(bad_key("RSA key with unexpected algorithm parameters"));
        }
        let (bits, exponent) =
            rsa_public_key(key).ok_or_else(|| bad_key("RSA public key could not be parsed"))?;
        if !(rsa_min_bits..=RSA_MAX_BITS).contains(&bits) {
            return Err(bad_key(format!(
                "RSA key of {bits} bits; must be {rsa_min_bits} to {RSA_MAX_BITS} bits"
            )));
        }
        if exponent < 3 || exponent % 2 == 0 {
            return Err(bad_key(
                "RSA public exponent must be odd, at least 3 and below 2^32",
            ));
        }
        return Ok((PublicKeyKind::Rsa { bits }, key));
    }

    if oid == EC_PUBLIC_KEY {
        let curve = params
            .filter(|p| p.tag() == Tag::ObjectIdentifier)
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or_else(|| bad_key("EC key must name its curve (P-256, P-384 or P-521)"))?;
        let (kind, len) = match curve {
            SECP256R1 => (PublicKeyKind::EcdsaP256, 65),
            SECP384R1 => (PublicKeyKind::EcdsaP384, 97),
            SECP521R1 => (PublicKeyKind::EcdsaP521, 133),
            other => {
                return Err(bad_key(format!(
                    "EC curve {other} is not accepted; use P-256, P-384 or P-521"
                )))
            }
        };
        if key.len() != len || key[0] != 0x04 {
            return Err(bad_key(
                "EC public key must be an uncompressed point on its curve",
            ));
        }
        return Ok((kind, key));
    }

    if oid == ED25519 {
        if params.is_some() || key.len() != 32 {
            return Err(bad_key("malformed Ed25519 public key"));
        }
        return Ok((PublicKeyKind::Ed25519, key));
    }

    Err(bad_key(format!(
        "key algorithm {oid} is not accepted; use RSA (2048-8192 bits), ECDSA P-256/P-384/P-521 or Ed25519"
    )))
}

/// Modulus size in bits and public exponent of a PKCS#1 RSAPublicKey
/// (`None` if malformed). An exponent that does not fit in 32 bits is
/// returned as 0, which no check accepts.
pub(crate) fn rsa_public_key(der: &[u8]) -> Option<(usize, u64)> {
    let mut reader = SliceReader::new(der).ok()?;
    let (n, e) = reader
        .sequence(|r| Ok((UintRef::decode(r)?, UintRef::decode(r)?)))
        .ok()?;
    reader.finish(()).ok()?;
    let n = n.as_bytes();
    let e = e.as_bytes();
    let first = *n.first()?;
    if first == 0 {
        return None;
    }
    let bits = (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize);
    let exponent = if e.len() > 4 {
        0
    } else {
        e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    };
    Some((bits, exponent))
}

/// The subject's common name: at most one, as a UTF8String, PrintableString
/// or IA5String.
fn common_name(subject: &Name) -> Result<Option<String>> {
    let mut found = None;
    for rdn in subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid != COMMON_NAME {
                continue;
            }
            if found.is_some() {
                return Err(Error::bad_csr("CSR subject has more than one common name"));
            }
            let value = match atv.value.tag() {
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
                    std::str::from_utf8(atv.value.value())
                        .map_err(|_| Error::bad_csr("CSR common name is not valid text"))?
                }
                other => {
                    return Err(Error::bad_csr(format!(
                        "CSR common name has an unsupported string type ({other})"
                    )))
                }
            };
            found = Some(value.to_owned());
        }
    }
    Ok(found.filter(|cn| !cn.is_empty()))
}

/// The TLS Feature extension (RFC 7633).
pub(crate) const TLS_FEATURE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.24");
/// TLS extension number of status_request (RFC 6066), the feature that
/// makes "OCSP Must-Staple".
pub(crate) const STATUS_REQUEST: u32 = 5;

/// DNS names and IP addresses of the requested subjectAltName extension,
/// and whether a TLS Feature extension asks for status_request.
fn requested_extensions(info: &CertReqInfo) -> Result<(Vec<String>, Vec<IpAddr>, bool)> {
    let mut san: Option<SubjectAltName> = None;
    let mut must_staple = None;
    for attr in info.attributes.iter() {
        if attr.oid != EXTENSION_REQUEST {
            continue;
        }
        for value in attr.values.iter() {
            let extensions: Vec<Extension> = value
                .decode_as()
                .map_err(|e| Error::bad_csr(format!("CSR extension request is malformed: {e}")))?;
            for ext in extensions.iter().filter(|e| e.extn_id == TLS_FEATURE) {
                if must_staple.is_some() {
                    return Err(Error::bad_csr(
                        "CSR requests more than one TLS Feature extension",
                    ));
                }
                let features = Vec::<u32>::from_der(ext.extn_value.as_bytes()).map_err(|e| {
                    Error::bad_csr(format!("CSR TLS Feature extension is malformed: {e}"))
                })?;
                if let Some(other) = features.iter().find(|&&f| f != STATUS_REQUEST) {
                    return Err(Error::bad_csr(format!(
                        "CSR TLS Feature extension asks for feature {other}; only \
                         status_request (5, OCSP Must-Staple) is supported"
                    )));
                }
                must_staple = Some(!features.is_empty());
            }
            for ext in extensions.iter().filter(|e| e.extn_id == SUBJECT_ALT_NAME) {
                if san.is_some() {
                    return Err(Error::bad_csr(
                        "CSR requests more than one subjectAltName extension",
                    ));
                }
                san = Some(
                    SubjectAltName::from_der(ext.extn_value.as_bytes()).map_err(|e| {
                        Error::bad_csr(format!("CSR subjectAltName is malformed: {e}"))
                    })?,
                );
            }
        }
    }

    let (dns, ips) = split_names(san.map(|s| s.0).unwrap_or_default())?;
    Ok((dns, ips, must_staple.unwrap_or(false)))
}

/// DNS names and IP addresses of a subjectAltName; any other kind of name
/// is refused (as badCSR).
fn split_names(names: Vec<GeneralName>) -> Result<(Vec<String>, Vec<IpAddr>)> {
    crate::model::san::split_names(names).map_err(Error::bad_csr)
}

/// The identifiers a certificate's subjectAltName names; read by the model,
/// which the store shares.
pub use crate::model::san::certificate_identifiers;
