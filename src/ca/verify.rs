//! Signature verification with aws-lc-rs, for CSR self-signatures and for
//! checking the CA chain at load time, plus raw DER helpers that keep the
//! signed bytes exactly as they were received.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier};
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};
use x509_cert::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

// Key algorithms.
pub(crate) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(crate) const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
pub(crate) const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
pub(crate) const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
pub(crate) const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

// Signature algorithms.
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");

// Digests.
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VerifyError {
    /// The signature algorithm is unknown, not allowed, has bad parameters,
    /// or does not fit the key.
    Algorithm(String),
    /// The signature is wrong (or the key is malformed).
    BadSignature,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Algorithm(s) => f.write_str(s),
            VerifyError::BadSignature => f.write_str("signature does not verify"),
        }
    }
}

/// A signed structure (certificate, CSR) split into its parts, with the
/// to-be-signed part as the exact bytes received.
pub(crate) struct Signed<'a> {
    pub tbs: &'a [u8],
    pub algorithm: AlgorithmIdentifierRef<'a>,
    pub signature: &'a [u8],
}

/// Split `SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }`.
pub(crate) fn split_signed(der: &[u8]) -> der::Result<Signed<'_>> {
    let mut reader = SliceReader::new(der)?;
    let signed = reader.sequence(|r| {
        let tbs = r.tlv_bytes()?;
        let algorithm = AlgorithmIdentifierRef::decode(r)?;
        let bits = BitStringRef::decode(r)?;
        let signature = bits.as_bytes().ok_or_else(|| {
            der::Error::from(der::ErrorKind::Value {
                tag: Tag::BitString,
            })
        })?;
        Ok(Signed {
            tbs,
            algorithm,
            signature,
        })
    })?;
    reader.finish(signed)
}

/// The raw issuer and subject Name TLVs of a certificate's TBSCertificate,
/// exactly as encoded.
pub(crate) struct RawTbsNames<'a> {
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
}

/// Pick the raw names out of a TBSCertificate.
pub(crate) fn raw_tbs_names(tbs: &[u8]) -> der::Result<RawTbsNames<'_>> {
    let mut reader = SliceReader::new(tbs)?;
    let names = reader.sequence(|r| {
        if r.peek_tag()?
            == (Tag::ContextSpecific {
                constructed: true,
                number: TagNumber::N0,
            })
        {
            r.tlv_bytes()?; // version
        }
        r.tlv_bytes()?; // serialNumber
        r.tlv_bytes()?; // signature
        let issuer = r.tlv_bytes()?;
        r.tlv_bytes()?; // validity
        let subject = r.tlv_bytes()?;
        while !r.is_finished() {
            r.tlv_bytes()?; // subjectPublicKeyInfo, unique IDs, extensions
        }
        Ok(RawTbsNames { issuer, subject })
    })?;
    reader.finish(names)
}

/// Verify `signature` over `msg` with the key `spki`, using the signature
/// algorithm `alg`. Allowed: RSA PKCS#1 v1.5 with SHA-256/384/512, RSA-PSS
/// (MGF1 with the same hash, salt length = hash length) with
/// SHA-256/384/512, ECDSA P-256/P-384 with SHA-256/384 and P-521 with
/// SHA-256/384/512 (ASN.1 DER signatures), Ed25519.
pub(crate) fn verify_signature(
    spki: &SubjectPublicKeyInfoRef<'_>,
    alg: &AlgorithmIdentifierRef<'_>,
    msg: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    verify_signature_with(spki, alg, msg, signature, false)
}

/// [`verify_signature`], where `legacy_rsa` also lets RSA keys of 1024 to
/// 2047 bits verify PKCS#1 v1.5 signatures with SHA-256 or SHA-512 (the
/// only ones aws-lc-rs verifies for such keys): for `acme-ca pebble`, which
/// takes the weak keys Pebble takes. Key sizes are checked by the caller.
pub(crate) fn verify_signature_with(
    spki: &SubjectPublicKeyInfoRef<'_>,
    alg: &AlgorithmIdentifierRef<'_>,
    msg: &[u8],
    signature: &[u8],
    legacy_rsa: bool,
) -> Result<(), VerifyError> {
    let mut algorithm = verification_algorithm(spki, alg)?;
    if legacy_rsa && spki.algorithm.oid == RSA_ENCRYPTION {
        match alg.oid {
            SHA256_WITH_RSA => {
                algorithm = &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
            }
            SHA512_WITH_RSA => {
                algorithm = &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
            }
            _ => {}
        }
    }
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or(VerifyError::BadSignature)?;
    UnparsedPublicKey::new(algorithm, key)
        .verify(msg, signature)
        .map_err(|_| VerifyError::BadSignature)
}

fn params_absent_or_null(params: Option<AnyRef<'_>>) -> bool {
    params.is_none_or(|p| p.is_null())
}

fn verification_algorithm(
    spki: &SubjectPublicKeyInfoRef<'_>,
    alg: &AlgorithmIdentifierRef<'_>,
) -> Result<&'static dyn VerificationAlgorithm, VerifyError> {
    let key_alg = spki.algorithm.oid;
    if key_alg == RSA_ENCRYPTION {
        return rsa_algorithm(spki, alg);
    }
    if key_alg == EC_PUBLIC_KEY {
        return ec_algorithm(spki, alg);
    }
    if key_alg == ED25519 {
        if alg.oid == ED25519 && alg.parameters.is_none() {
            return Ok(&signature::ED25519);
        }
        return Err(mismatch(spki, alg));
    }
    Err(VerifyError::Algorithm(format!(
        "unsupported key algorithm {key_alg}"
    )))
}

fn unsupported(alg: &AlgorithmIdentifierRef<'_>) -> VerifyError {
    VerifyError::Algorithm(format!("unsupported signature algorithm {}", alg.oid))
}

fn mismatch(spki: &SubjectPublicKeyInfoRef<'_>, alg: &AlgorithmIdentifierRef<'_>) -> VerifyError {
    VerifyError::Algorithm(format!(
        "signature algorithm {} does not fit the key (algorithm {})",
        alg.oid, spki.algorithm.oid
    ))
}

/// The algorithm of signature `alg` by an RSA key: PKCS#1 v1.5 with
/// SHA-256/384/512 (parameters absent or NULL), or RSASSA-PSS.
fn rsa_algorithm(
    spki: &SubjectPublicKeyInfoRef<'_>,
    alg: &AlgorithmIdentifierRef<'_>,
) -> Result<&'static dyn VerificationAlgorithm, VerifyError> {
    Ok(match alg.oid {
        SHA256_WITH_RSA if params_absent_or_null(alg.parameters) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        SHA384_WITH_RSA if params_absent_or_null(alg.parameters) => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        SHA512_WITH_RSA if params_absent_or_null(alg.parameters) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        RSASSA_PSS => pss_algorithm(alg.parameters).ok_or_else(|| {
            VerifyError::Algorithm(
                "unsupported RSA-PSS parameters (use SHA-256/384/512, MGF1 with the same hash, salt length = hash length)".into(),
            )
        })?,
        ECDSA_WITH_SHA256 | ECDSA_WITH_SHA384 | ED25519 => return Err(mismatch(spki, alg)),
        _ => return Err(unsupported(alg)),
    })
}

/// The algorithm of signature `alg` by an EC key on its named curve
/// (P-256, P-384, P-521), ECDSA with parameters absent.
fn ec_algorithm(
    spki: &SubjectPublicKeyInfoRef<'_>,
    alg: &AlgorithmIdentifierRef<'_>,
) -> Result<&'static dyn VerificationAlgorithm, VerifyError> {
    let curve = spki
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| VerifyError::Algorithm("EC key without a named curve".into()))?;
    if alg.parameters.is_some() {
        return Err(unsupported(alg));
    }
    Ok(match (curve, alg.oid) {
        (SECP256R1, ECDSA_WITH_SHA256) => &signature::ECDSA_P256_SHA256_ASN1,
        (SECP256R1, ECDSA_WITH_SHA384) => &signature::ECDSA_P256_SHA384_ASN1,
        (SECP384R1, ECDSA_WITH_SHA256) => &signature::ECDSA_P384_SHA256_ASN1,
        (SECP384R1, ECDSA_WITH_SHA384) => &signature::ECDSA_P384_SHA384_ASN1,
        (SECP521R1, ECDSA_WITH_SHA256) => &signature::ECDSA_P521_SHA256_ASN1,
        (SECP521R1, ECDSA_WITH_SHA384) => &signature::ECDSA_P521_SHA384_ASN1,
        (SECP521R1, ECDSA_WITH_SHA512) => &signature::ECDSA_P521_SHA512_ASN1,
        (SECP256R1 | SECP384R1 | SECP521R1, _) => {
            return Err(
                if matches!(
                    alg.oid,
                    SHA256_WITH_RSA | SHA384_WITH_RSA | SHA512_WITH_RSA | RSASSA_PSS | ED25519
                ) {
                    mismatch(spki, alg)
                } else {
                    unsupported(alg)
                },
            )
        }
        (other, _) => {
            return Err(VerifyError::Algorithm(format!(
                "unsupported EC curve {other}"
            )))
        }
    })
}

/// Map RSASSA-PSS-params to an aws-lc-rs algorithm, if they are ones it
/// implements: hash SHA-256/384/512, MGF1 with that hash, salt length equal
/// to the hash length, trailer field 1.
fn pss_algorithm(params: Option<AnyRef<'_>>) -> Option<&'static dyn VerificationAlgorithm> {
    use der::asn1::ContextSpecific;

    let params = params?;
    if params.tag() != Tag::Sequence {
        return None;
    }
    let mut r = SliceReader::new(params.value()).ok()?;
    let hash =
        ContextSpecific::<AlgorithmIdentifierRef<'_>>::decode_explicit(&mut r, TagNumber::N0)
            .ok()??
            .value;
    let mgf = ContextSpecific::<AlgorithmIdentifierRef<'_>>::decode_explicit(&mut r, TagNumber::N1)
        .ok()??
        .value;
    let salt = ContextSpecific::<u32>::decode_explicit(&mut r, TagNumber::N2)
        .ok()??
        .value;
    let trailer = ContextSpecific::<u32>::decode_explicit(&mut r, TagNumber::N3).ok()?;
    if !r.is_finished() || trailer.is_some_and(|t| t.value != 1) {
        return None;
    }
    if !params_absent_or_null(hash.parameters) || mgf.oid != MGF1 {
        return None;
    }
    let mgf_hash: AlgorithmIdentifierRef<'_> = mgf.parameters?.decode_as().ok()?;
    if mgf_hash.oid != hash.oid || !params_absent_or_null(mgf_hash.parameters) {
        return None;
    }
    let (found, len): (&'static dyn VerificationAlgorithm, u32) = match hash.oid {
        SHA256 => (&signature::RSA_PSS_2048_8192_SHA256, 32),
        SHA384 => (&signature::RSA_PSS_2048_8192_SHA384, 48),
        SHA512 => (&signature::RSA_PSS_2048_8192_SHA512, 64),
        _ => return None,
    };
    (salt == len).then_some(found)
}
