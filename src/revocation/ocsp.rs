//! OCSP (RFC 6960), written with the lightweight profile of RFC 5019 in
//! mind: requests are parsed strictly and within fixed bounds, and answers
//! are signed BasicOCSPResponses that name the responder by key hash.
//!
//! The pieces:
//! - [`parse_request`] reads a DER OCSPRequest into [`CertId`]s and a nonce;
//! - [`IssuerHashes`] tells whether a [`CertId`] names a given issuer;
//! - [`build_response`] signs the answers, echoing each CertID byte for byte
//!   and the nonce when there was one;
//! - [`error_response`] is the unsigned answer for the error statuses;
//! - [`make_delegated_responder`] issues an OCSP signing certificate, so
//!   that the issuer key need not sign every response.
//!
//! The ASN.1 is written here with `der`'s derive macros; requests are read
//! by hand so that every element is checked where it stands (in
//! `ocsp/request.rs`); delegated responder certificates are made in
//! `ocsp/responder.rs`. Why this codec is ours rather than a crate's:
//! docs/DESIGN.md.

use std::fmt;
use std::time::Duration as StdDuration;

use aws_lc_rs::digest;
use der::asn1::{
    AnyRef, BitStringRef, ContextSpecific, GeneralizedTime, Null, ObjectIdentifier, OctetString,
    OctetStringRef,
};
use der::{Choice, Decode, Encode, Sequence, Tag, TagMode, TagNumber};
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use time::OffsetDateTime;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::spki::AlgorithmIdentifierRef;

use self::request::is_minimal_integer;
pub use self::request::parse_request;
pub use self::responder::make_delegated_responder;
use self::responder::CertParts;

mod request;
mod responder;

/// Requests longer than this are refused before any parsing.
pub const MAX_REQUEST_LEN: usize = 8 * 1024;
/// The most certificates one request may ask about.
pub const MAX_CERT_IDS: usize = 16;
/// The longest nonce accepted (RFC 8954 §2.1); the shortest is one octet.
pub const MAX_NONCE_LEN: usize = 32;

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OID_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), as rcgen wants it.
const OCSP_NOCHECK_ARCS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// ENUMERATED content octets for reasons 0 to 10 and for response status 0.
const SMALL_ENUMS: [u8; 11] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

/// The hash algorithm of a CertID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1: what RFC 5019 clients use, and OpenSSL's default.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    fn index(self) -> usize {
        match self {
            HashAlg::Sha1 => 0,
            HashAlg::Sha256 => 1,
            HashAlg::Sha384 => 2,
            HashAlg::Sha512 => 3,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            HashAlg::Sha1 => OID_SHA1,
            HashAlg::Sha256 => OID_SHA256,
            HashAlg::Sha384 => OID_SHA384,
            HashAlg::Sha512 => OID_SHA512,
        }
    }

    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.oid() == *oid)
    }

    /// The length of this algorithm's digest in octets.
    pub fn output_len(self) -> usize {
        self.digest().output_len()
    }

    fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }
}

/// One certificate asked about: RFC 6960's CertID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertId {
    /// The hash used for the two issuer hashes.
    pub hash_alg: HashAlg,
    /// Hash of the DER of the issuer's subject Name.
    pub issuer_name_hash: Vec<u8>,
    /// Hash of the issuer's subjectPublicKey (the BIT STRING's content).
    pub issuer_key_hash: Vec<u8>,
    /// The serial number: the content octets of the INTEGER, as the
    /// certificate carries them (a leading zero octet stays).
    pub serial: Vec<u8>,
    /// The CertID exactly as received (or built); responses repeat these
    /// bytes, so editing the public fields does not change what is echoed.
    der: Vec<u8>,
}

impl CertId {
    /// The DER of this CertID, as the request carried it.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

/// A parsed OCSP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcspRequest {
    /// The certificates asked about, in request order: 1 to
    /// [`MAX_CERT_IDS`].
    pub cert_ids: Vec<CertId>,
    /// The nonce (the octets of the Nonce OCTET STRING inside the
    /// id-pkix-ocsp-nonce extension), 1 to [`MAX_NONCE_LEN`] octets.
    pub nonce: Option<Vec<u8>>,
}

/// The responseStatus values other than successful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorStatus {
    /// The request could not be understood.
    MalformedRequest = 1,
    /// The responder failed.
    InternalError = 2,
    /// The responder cannot answer now; the client may retry.
    TryLater = 3,
    /// The responder does not answer for this issuer.
    Unauthorized = 6,
}

/// Why a request was refused or a response could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcspError {
    status: ErrorStatus,
    message: String,
}

impl OcspError {
    fn malformed(message: impl Into<String>) -> Self {
        Self {
            status: ErrorStatus::MalformedRequest,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        Self {
            status: ErrorStatus::InternalError,
            message: message.into(),
        }
    }

    /// The response status to answer with: `MalformedRequest` for
    /// requests that [`parse_request`] refused, `InternalError` for
    /// everything else.
    pub fn status(&self) -> ErrorStatus {
        self.status
    }
}

impl fmt::Display for OcspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OcspError {}

/// The hashes that identify an issuer in CertIDs, for every supported
/// hash algorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerHashes {
    /// Per [`HashAlg::index`]: hash of the subject Name's DER.
    name: [Vec<u8>; 4],
    /// Per [`HashAlg::index`]: hash of the subjectPublicKey content.
    key: [Vec<u8>; 4],
}

impl IssuerHashes {
    /// Compute the hashes from the issuer's DER certificate: its subject
    /// Name exactly as encoded there, and the content of its
    /// subjectPublicKey BIT STRING.
    pub fn from_issuer_cert(der: &[u8]) -> Result<Self, OcspError> {
        let cert = CertParts::parse(der)
            .map_err(|e| OcspError::internal(format!("the issuer certificate: {e}")))?;
        let hash_all = |data: &[u8]| {
            HashAlg::ALL.map(|alg| digest::digest(alg.digest(), data).as_ref().to_vec())
        };
        Ok(Self {
            name: hash_all(cert.subject),
            key: hash_all(&cert.public_key),
        })
    }

    /// Whether `id` names this issuer (the serial is not looked at).
    pub fn matches(&self, id: &CertId) -> bool {
        let index = id.hash_alg.index();
        id.issuer_name_hash == self.name[index] && id.issuer_key_hash == self.key[index]
    }

    /// Build the CertID of one of this issuer's certificates, e.g. to
    /// prepare a response before anyone asks. `serial` holds the content
    /// octets of the serial number INTEGER, as in the certificate.
    pub fn cert_id(&self, hash_alg: HashAlg, serial: &[u8]) -> Result<CertId, OcspError> {
        if !is_minimal_integer(serial) {
            return Err(OcspError::internal(format!(
                "serial {} is not the content of a DER INTEGER",
                hex(serial)
            )));
        }
        let index = hash_alg.index();
        let encoded = CertIdEnc {
            hash_algorithm: AlgorithmIdentifierRef {
                oid: hash_alg.oid(),
                parameters: Some(AnyRef::NULL),
            },
            issuer_name_hash: octets(&self.name[index])?,
            issuer_key_hash: octets(&self.key[index])?,
            serial_number: AnyRef::new(Tag::Integer, serial).map_err(encode_error)?,
        }
        .to_der()
        .map_err(encode_error)?;
        Ok(CertId {
            hash_alg,
            issuer_name_hash: self.name[index].clone(),
            issuer_key_hash: self.key[index].clone(),
            serial: serial.to_vec(),
            der: encoded,
        })
    }
}

/// What the responder says about one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued here and not revoked.
    Good,
    /// Revoked at `at`; `reason` is an RFC 5280 CRLReason code (0 to 10,
    /// 7 excepted), left out of the response when `None` or 0.
    Revoked {
        /// When the certificate was revoked.
        at: OffsetDateTime,
        /// Why.
        reason: Option<u8>,
    },
    /// Not known to this responder.
    Unknown,
}

/// One answer of a response.
#[derive(Clone, Copy, Debug)]
pub struct SingleAnswer<'a> {
    /// The CertID asked about; echoed as received.
    pub id: &'a CertId,
    /// The status.
    pub status: CertStatus,
    /// When the status was known to be right.
    pub this_update: OffsetDateTime,
    /// When newer information will be available; not before
    /// `this_update`.
    pub next_update: OffsetDateTime,
}

/// The key that signs responses and its certificate.
#[derive(Clone, Copy, Debug)]
pub struct Responder<'a> {
    /// The signing key: ECDSA P-256 or P-384, or RSA (PKCS#1 v1.5 with
    /// SHA-256, -384 or -512).
    pub key: &'a KeyPair,
    /// The DER certificate of `key`: the issuer's own, or a delegated
    /// responder certificate from [`make_delegated_responder`]. The
    /// responder is named by the SHA-1 of its public key.
    pub responder_cert_der: &'a [u8],
    /// Put `responder_cert_der` in the response, as a delegated responder
    /// must so that clients can check its authority.
    pub include_cert: bool,
}

/// Build and sign a successful OCSPResponse of type id-pkix-ocsp-basic.
///
/// Each answer repeats its CertID byte for byte. When `nonce` is given (the
/// one from the request), it is returned in a non-critical nonce extension
/// encoded as the request carried it. All times are written as
/// GeneralizedTime in UTC, whole seconds.
pub fn build_response(
    responder: &Responder<'_>,
    answers: &[SingleAnswer<'_>],
    produced_at: OffsetDateTime,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, OcspError> {
    if answers.is_empty() {
        return Err(OcspError::internal("an OCSP response needs an answer"));
    }
    let key_hash = responder_key_hash(responder)?;
    let responses = answers
        .iter()
        .map(single_response)
        .collect::<Result<Vec<_>, _>>()?;
    let tbs = ResponseDataEnc {
        responder_id: ContextSpecific {
            tag_number: TagNumber::N2,
            tag_mode: TagMode::Explicit,
            value: octets(key_hash.as_ref())?,
        },
        produced_at: generalized_time(produced_at, "producedAt")?,
        responses,
        response_extensions: nonce_extension(nonce)?,
    }
    .to_der()
    .map_err(encode_error)?;
    let basic = sign_basic_response(responder, &tbs)?;
    OcspResponseEnc {
        response_status: AnyRef::new(Tag::Enumerated, &SMALL_ENUMS[..1]).map_err(encode_error)?,
        response_bytes: Some(ResponseBytesEnc {
            response_type: OID_OCSP_BASIC,
            response: octets(&basic)?,
        }),
    }
    .to_der()
    .map_err(encode_error)
}

/// The SHA-1 of the responder's public key, which names it (byKey), once
/// its certificate is checked to carry the signing key.
fn responder_key_hash(responder: &Responder<'_>) -> Result<digest::Digest, OcspError> {
    let responder_cert = CertParts::parse(responder.responder_cert_der)
        .map_err(|e| OcspError::internal(format!("the responder certificate: {e}")))?;
    if responder_cert.public_key != responder.key.der_bytes() {
        return Err(OcspError::internal(
            "the responder certificate does not carry the public key of the signing key",
        ));
    }
    Ok(digest::digest(
        &digest::SHA1_FOR_LEGACY_USE_ONLY,
        &responder_cert.public_key,
    ))
}

/// One SingleResponse: the CertID as asked, the status, thisUpdate and
/// nextUpdate (not before thisUpdate).
fn single_response<'a>(answer: &SingleAnswer<'a>) -> Result<SingleResponseEnc<'a>, OcspError> {
    let this_update = generalized_time(answer.this_update, "thisUpdate")?;
    let next_update = generalized_time(answer.next_update, "nextUpdate")?;
    if next_update < this_update {
        return Err(OcspError::internal(format!(
            "nextUpdate ({}) is before thisUpdate ({})",
            answer.next_update, answer.this_update
        )));
    }
    let cert_status = match answer.status {
        CertStatus::Good => CertStatusEnc::Good(Null),
        CertStatus::Unknown => CertStatusEnc::Unknown(Null),
        CertStatus::Revoked { at, reason } => CertStatusEnc::Revoked(RevokedInfoEnc {
            revocation_time: generalized_time(at, "revocationTime")?,
            revocation_reason: match reason {
                None | Some(0) => None,
                Some(code) => Some(crl_reason(code)?),
            },
        }),
    };
    Ok(SingleResponseEnc {
        cert_id: AnyRef::from_der(&answer.id.der).map_err(|e| {
            OcspError::internal(format!("a CertID to answer is not valid DER: {e}"))
        })?,
        cert_status,
        this_update,
        next_update: Some(next_update),
    })
}

/// The responseExtensions: the request's nonce, if it had one (RFC 8954),
/// in a non-critical nonce extension encoded as the request carried it.
fn nonce_extension(nonce: Option<&[u8]>) -> Result<Option<Extensions>, OcspError> {
    let Some(nonce) = nonce else {
        return Ok(None);
    };
    if !(1..=MAX_NONCE_LEN).contains(&nonce.len()) {
        return Err(OcspError::internal(format!(
            "nonce of {} octets (1 to {MAX_NONCE_LEN} allowed)",
            nonce.len()
        )));
    }
    let value = octets(nonce)?.to_der().map_err(encode_error)?;
    Ok(Some(vec![Extension {
        extn_id: OID_OCSP_NONCE,
        critical: false,
        extn_value: OctetString::new(value).map_err(encode_error)?,
    }]))
}

/// The DER BasicOCSPResponse: `tbs` (the encoded ResponseData) signed by
/// the responder's key, with its certificate when it is to be included.
fn sign_basic_response(responder: &Responder<'_>, tbs: &[u8]) -> Result<Vec<u8>, OcspError> {
    let (signature_oid, signature_null_params) = signature_algorithm(responder.key)?;
    let signature = responder
        .key
        .sign(tbs)
        .map_err(|e| OcspError::internal(format!("signing the OCSP response failed: {e}")))?;
    let certs = if responder.include_cert {
        Some(vec![
            AnyRef::from_der(responder.responder_cert_der).map_err(encode_error)?
        ])
    } else {
        None
    };
    BasicResponseEnc {
        tbs_response_data: AnyRef::from_der(tbs).map_err(encode_error)?,
        signature_algorithm: AlgorithmIdentifierRef {
            oid: signature_oid,
            parameters: signature_null_params.then_some(AnyRef::NULL),
        },
        signature: BitStringRef::from_bytes(&signature).map_err(encode_error)?,
        certs,
    }
    .to_der()
    .map_err(encode_error)
}

/// An unsigned OCSPResponse that carries only `status`.
pub fn error_response(status: ErrorStatus) -> Vec<u8> {
    // SEQUENCE { ENUMERATED status }
    vec![0x30, 0x03, 0x0a, 0x01, status as u8]
}

/// The signature AlgorithmIdentifier that goes with `key`: its OID, and
/// whether the parameters are NULL (RSA) or absent (ECDSA).
fn signature_algorithm(key: &KeyPair) -> Result<(ObjectIdentifier, bool), OcspError> {
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        Ok((OID_ECDSA_SHA256, false))
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        Ok((OID_ECDSA_SHA384, false))
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        Ok((OID_RSA_SHA256, true))
    } else if alg == &rcgen::PKCS_RSA_SHA384 {
        Ok((OID_RSA_SHA384, true))
    } else if alg == &rcgen::PKCS_RSA_SHA512 {
        Ok((OID_RSA_SHA512, true))
    } else {
        Err(OcspError::internal(format!(
            "OCSP responses cannot be signed with a {alg:?} key"
        )))
    }
}

fn crl_reason(code: u8) -> Result<AnyRef<'static>, OcspError> {
    if code > 10 || code == 7 {
        return Err(OcspError::internal(format!(
            "revocation reason {code} is not an RFC 5280 CRLReason (0-6, 8-10)"
        )));
    }
    let code = usize::from(code);
    AnyRef::new(Tag::Enumerated, &SMALL_ENUMS[code..=code]).map_err(encode_error)
}

fn generalized_time(t: OffsetDateTime, field: &str) -> Result<GeneralizedTime, OcspError> {
    u64::try_from(t.unix_timestamp())
        .ok()
        .and_then(|secs| GeneralizedTime::from_unix_duration(StdDuration::from_secs(secs)).ok())
        .ok_or_else(|| {
            OcspError::internal(format!(
                "{field} {t} cannot be written as a GeneralizedTime"
            ))
        })
}
fn octets(bytes: &[u8]) -> Result<OctetStringRef<'_>, OcspError> {
    OctetStringRef::new(bytes).map_err(encode_error)
}

fn encode_error(e: der::Error) -> OcspError {
    OcspError::internal(format!("DER encoding failed: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// The response structures of RFC 6960 §4.2.1, for encoding. Elements that
// are already DER (CertIDs, the signed ResponseData, certificates) are
// carried as `AnyRef` so that they are written out unchanged.

/// OCSPResponse.
#[derive(Sequence)]
struct OcspResponseEnc<'a> {
    response_status: AnyRef<'a>,
    #[asn1(context_specific = "0", optional = "true")]
    response_bytes: Option<ResponseBytesEnc<'a>>,
}

/// ResponseBytes.
#[derive(Sequence)]
struct ResponseBytesEnc<'a> {
    response_type: ObjectIdentifier,
    response: OctetStringRef<'a>,
}

/// BasicOCSPResponse.
#[derive(Sequence)]
struct BasicResponseEnc<'a> {
    tbs_response_data: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
    #[asn1(context_specific = "0", optional = "true")]
    certs: Option<Vec<AnyRef<'a>>>,
}

/// ResponseData, always version 1 (left out as the default) and with the
/// responder named byKey ([2] EXPLICIT KeyHash).
#[derive(Sequence)]
struct ResponseDataEnc<'a> {
    responder_id: ContextSpecific<OctetStringRef<'a>>,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponseEnc<'a>>,
    #[asn1(context_specific = "1", optional = "true")]
    response_extensions: Option<Extensions>,
}

/// SingleResponse, without singleExtensions.
#[derive(Sequence)]
struct SingleResponseEnc<'a> {
    cert_id: AnyRef<'a>,
    cert_status: CertStatusEnc<'a>,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", optional = "true")]
    next_update: Option<GeneralizedTime>,
}

/// CertStatus.
#[derive(Choice)]
enum CertStatusEnc<'a> {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfoEnc<'a>),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

/// RevokedInfo.
#[derive(Sequence)]
struct RevokedInfoEnc<'a> {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", optional = "true")]
    revocation_reason: Option<AnyRef<'a>>,
}

/// CertID, for CertIDs built by [`IssuerHashes::cert_id`].
#[derive(Sequence)]
struct CertIdEnc<'a> {
    hash_algorithm: AlgorithmIdentifierRef<'a>,
    issuer_name_hash: OctetStringRef<'a>,
    issuer_key_hash: OctetStringRef<'a>,
    serial_number: AnyRef<'a>,
}

#[cfg(test)]
mod tests;
