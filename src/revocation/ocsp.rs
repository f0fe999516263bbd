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
//! by hand so that every element is checked where it stands.

use std::fmt;
use std::time::Duration as StdDuration;

use aws_lc_rs::digest;
use der::asn1::{
    AnyRef, BitStringRef, ContextSpecific, GeneralizedTime, Null, ObjectIdentifier, OctetString,
    OctetStringRef,
};
use der::{
    Choice, Decode, Encode, Header, Reader, Sequence, SliceReader, Tag, TagMode, TagNumber, Tagged,
};
use rcgen::{
    CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber, SigningKey,
};
use time::{OffsetDateTime, UtcOffset};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::spki::AlgorithmIdentifierRef;
use x509_cert::Certificate;

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

/// Parse a DER OCSPRequest.
///
/// Refuses (with [`ErrorStatus::MalformedRequest`]) anything over
/// [`MAX_REQUEST_LEN`] octets, anything that is not DER or has bytes after
/// it, versions other than v1, requests for no certificate or more than
/// [`MAX_CERT_IDS`], CertIDs with an unsupported hash or hashes of the
/// wrong length, nonces outside 1..=32 octets, repeated extensions and
/// critical extensions other than the nonce. A requestorName and a
/// signature are allowed but not checked: this responder answers anyone.
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, OcspError> {
    if der.is_empty() {
        return Err(OcspError::malformed("OCSP request is empty"));
    }
    if der.len() > MAX_REQUEST_LEN {
        return Err(OcspError::malformed(format!(
            "OCSP request too large ({} bytes, at most {MAX_REQUEST_LEN})",
            der.len()
        )));
    }
    let raw = read_request(der)
        .map_err(|e| OcspError::malformed(format!("OCSP request is not valid DER: {e}")))?;

    if let Some(version) = raw.version {
        if version != [0x02, 0x01, 0x00] {
            return Err(OcspError::malformed(
                "unsupported OCSP request version (only v1 exists)",
            ));
        }
    }
    if raw.requests.is_empty() {
        return Err(OcspError::malformed(
            "OCSP request asks about no certificate",
        ));
    }
    if raw.requests.len() > MAX_CERT_IDS {
        return Err(OcspError::malformed(format!(
            "too many certificates in request ({}, at most {MAX_CERT_IDS})",
            raw.requests.len()
        )));
    }

    let mut cert_ids = Vec::with_capacity(raw.requests.len());
    for (index, (cert_id, extensions)) in raw.requests.iter().enumerate() {
        let cert_id = parse_cert_id(cert_id).map_err(|e| {
            OcspError::malformed(format!("certificate {} of the request: {e}", index + 1))
        })?;
        if let Some(extensions) = extensions {
            let what = format!("the extensions of certificate {}", index + 1);
            for extension in read_extensions(extensions, &what)? {
                if extension.critical {
                    return Err(unsupported_critical(&extension, &what));
                }
            }
        }
        cert_ids.push(cert_id);
    }

    let mut nonce = None;
    if let Some(extensions) = raw.extensions {
        let what = "the request extensions";
        for extension in read_extensions(extensions, what)? {
            if extension.extn_id == OID_OCSP_NONCE {
                nonce = Some(read_nonce(extension.extn_value.as_bytes())?);
            } else if extension.critical {
                return Err(unsupported_critical(&extension, what));
            }
        }
    }
    Ok(OcspRequest { cert_ids, nonce })
}

/// The outline of a request, before its parts are examined.
struct RawRequest<'a> {
    /// The version INTEGER (tag and length included) when present.
    version: Option<&'a [u8]>,
    /// Per Request: the CertID TLV and the singleRequestExtensions TLV.
    requests: Vec<(&'a [u8], Option<&'a [u8]>)>,
    /// The requestExtensions TLV.
    extensions: Option<&'a [u8]>,
}

fn read_request(der: &[u8]) -> der::Result<RawRequest<'_>> {
    let mut reader = SliceReader::new(der)?;
    // OCSPRequest ::= SEQUENCE { tbsRequest, optionalSignature [0] OPTIONAL }
    let raw = reader.sequence(|request| {
        // TBSRequest ::= SEQUENCE { version [0], requestorName [1],
        //     requestList SEQUENCE OF Request, requestExtensions [2] }
        let raw = request.sequence(|tbs| {
            let version = explicit(tbs, TagNumber::N0)?;
            explicit(tbs, TagNumber::N1)?; // requestorName: not used
            let requests = tbs.sequence(|list| {
                let mut requests = Vec::new();
                while !list.is_finished() {
                    // Request ::= SEQUENCE { reqCert CertID,
                    //     singleRequestExtensions [0] OPTIONAL }
                    requests.push(list.sequence(|one| {
                        let cert_id = one.tlv_bytes()?;
                        let extensions = explicit(one, TagNumber::N0)?;
                        Ok((cert_id, extensions))
                    })?);
                }
                Ok(requests)
            })?;
            let extensions = explicit(tbs, TagNumber::N2)?;
            Ok(RawRequest {
                version,
                requests,
                extensions,
            })
        })?;
        // The signature is not verified; it only has to be a SEQUENCE.
        if let Some(signature) = explicit(request, TagNumber::N0)? {
            AnyRef::from_der(signature)?
                .tag()
                .assert_eq(Tag::Sequence)?;
        }
        Ok(raw)
    })?;
    reader.finish(raw)
}

/// When the next element is `[number]` EXPLICIT, consume it and return the
/// one element inside (tag and length included).
fn explicit<'a, R: Reader<'a>>(reader: &mut R, number: TagNumber) -> der::Result<Option<&'a [u8]>> {
    let wanted = Tag::ContextSpecific {
        constructed: true,
        number,
    };
    if reader.is_finished() || reader.peek_tag()? != wanted {
        return Ok(None);
    }
    let header = Header::decode(reader)?;
    reader
        .read_nested(header.length, |inner| inner.tlv_bytes())
        .map(Some)
}

fn parse_cert_id(der: &[u8]) -> Result<CertId, String> {
    let (algorithm, name_hash, key_hash, serial) = SliceReader::new(der)
        .and_then(|mut reader| {
            let parts = reader.sequence(|cert_id| {
                let algorithm = AlgorithmIdentifierRef::decode(cert_id)?;
                let name_hash = OctetStringRef::decode(cert_id)?;
                let key_hash = OctetStringRef::decode(cert_id)?;
                let serial = integer_content(cert_id)?;
                Ok((algorithm, name_hash, key_hash, serial))
            })?;
            reader.finish(parts)
        })
        .map_err(|e| format!("CertID is not valid DER: {e}"))?;

    let hash_alg = HashAlg::from_oid(&algorithm.oid)
        .ok_or_else(|| format!("unsupported CertID hash algorithm {}", algorithm.oid))?;
    if algorithm.parameters.is_some_and(|p| !p.is_null()) {
        return Err(format!(
            "CertID hash algorithm {} has parameters other than NULL",
            hash_alg.name()
        ));
    }
    for (field, hash) in [("issuerNameHash", name_hash), ("issuerKeyHash", key_hash)] {
        if hash.as_bytes().len() != hash_alg.output_len() {
            return Err(format!(
                "{field} is {} octets, a {} hash is {}",
                hash.as_bytes().len(),
                hash_alg.name(),
                hash_alg.output_len()
            ));
        }
    }
    Ok(CertId {
        hash_alg,
        issuer_name_hash: name_hash.as_bytes().to_vec(),
        issuer_key_hash: key_hash.as_bytes().to_vec(),
        serial: serial.to_vec(),
        der: der.to_vec(),
    })
}

/// Read an INTEGER and return its content octets, checking that they are
/// minimal (DER).
fn integer_content<'a, R: Reader<'a>>(reader: &mut R) -> der::Result<&'a [u8]> {
    let header = Header::decode(reader)?;
    header.tag.assert_eq(Tag::Integer)?;
    let bytes = reader.read_slice(header.length)?;
    if !is_minimal_integer(bytes) {
        return Err(Tag::Integer.non_canonical_error());
    }
    Ok(bytes)
}

fn is_minimal_integer(bytes: &[u8]) -> bool {
    match bytes {
        [] => false,
        [0x00, next, ..] => next & 0x80 != 0,
        [0xff, next, ..] => next & 0x80 == 0,
        _ => true,
    }
}

fn read_extensions(der: &[u8], what: &str) -> Result<Extensions, OcspError> {
    let extensions = Extensions::from_der(der)
        .map_err(|e| OcspError::malformed(format!("{what} are not valid DER: {e}")))?;
    for (index, extension) in extensions.iter().enumerate() {
        if extensions[..index]
            .iter()
            .any(|earlier| earlier.extn_id == extension.extn_id)
        {
            return Err(OcspError::malformed(format!(
                "extension {} appears twice in {what}",
                extension.extn_id
            )));
        }
    }
    Ok(extensions)
}

fn unsupported_critical(extension: &Extension, what: &str) -> OcspError {
    OcspError::malformed(format!(
        "unsupported critical extension {} in {what}",
        extension.extn_id
    ))
}

/// The nonce extension's value must be a DER OCTET STRING of 1 to 32
/// octets (RFC 8954).
fn read_nonce(value: &[u8]) -> Result<Vec<u8>, OcspError> {
    let nonce = OctetStringRef::from_der(value).map_err(|e| {
        OcspError::malformed(format!(
            "the nonce extension does not hold a DER OCTET STRING: {e}"
        ))
    })?;
    let len = nonce.as_bytes().len();
    if !(1..=MAX_NONCE_LEN).contains(&len) {
        return Err(OcspError::malformed(format!(
            "nonce of {len} octets (RFC 8954 allows 1 to {MAX_NONCE_LEN})"
        )));
    }
    Ok(nonce.as_bytes().to_vec())
}

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
    let responder_cert = CertParts::parse(responder.responder_cert_der)
        .map_err(|e| OcspError::internal(format!("the responder certificate: {e}")))?;
    if responder_cert.public_key != responder.key.der_bytes() {
        return Err(OcspError::internal(
            "the responder certificate does not carry the public key of the signing key",
        ));
    }
    let (signature_oid, signature_null_params) = signature_algorithm(responder.key)?;
    let key_hash = digest::digest(
        &digest::SHA1_FOR_LEGACY_USE_ONLY,
        &responder_cert.public_key,
    );

    let mut responses = Vec::with_capacity(answers.len());
    for answer in answers {
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
        responses.push(SingleResponseEnc {
            cert_id: AnyRef::from_der(&answer.id.der).map_err(|e| {
                OcspError::internal(format!("a CertID to answer is not valid DER: {e}"))
            })?,
            cert_status,
            this_update,
            next_update: Some(next_update),
        });
    }

    let response_extensions = match nonce {
        None => None,
        Some(nonce) => {
            if !(1..=MAX_NONCE_LEN).contains(&nonce.len()) {
                return Err(OcspError::internal(format!(
                    "nonce of {} octets (1 to {MAX_NONCE_LEN} allowed)",
                    nonce.len()
                )));
            }
            let value = octets(nonce)?.to_der().map_err(encode_error)?;
            Some(vec![Extension {
                extn_id: OID_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(value).map_err(encode_error)?,
            }])
        }
    };

    let tbs = ResponseDataEnc {
        responder_id: ContextSpecific {
            tag_number: TagNumber::N2,
            tag_mode: TagMode::Explicit,
            value: octets(key_hash.as_ref())?,
        },
        produced_at: generalized_time(produced_at, "producedAt")?,
        responses,
        response_extensions,
    }
    .to_der()
    .map_err(encode_error)?;

    let signature = responder
        .key
        .sign(&tbs)
        .map_err(|e| OcspError::internal(format!("signing the OCSP response failed: {e}")))?;
    let certs = if responder.include_cert {
        Some(vec![
            AnyRef::from_der(responder.responder_cert_der).map_err(encode_error)?
        ])
    } else {
        None
    };
    let basic = BasicResponseEnc {
        tbs_response_data: AnyRef::from_der(&tbs).map_err(encode_error)?,
        signature_algorithm: AlgorithmIdentifierRef {
            oid: signature_oid,
            parameters: signature_null_params.then_some(AnyRef::NULL),
        },
        signature: BitStringRef::from_bytes(&signature).map_err(encode_error)?,
        certs,
    }
    .to_der()
    .map_err(encode_error)?;

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

/// An unsigned OCSPResponse that carries only `status`.
pub fn error_response(status: ErrorStatus) -> Vec<u8> {
    // SEQUENCE { ENUMERATED status }
    vec![0x30, 0x03, 0x0a, 0x01, status as u8]
}

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
fn responder_common_name(issuer_cn: Option<&str>) -> String {
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

fn whole_seconds_utc(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(0).unwrap_or(t)
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

/// What this module needs from a certificate.
struct CertParts<'a> {
    /// The issuer Name as encoded (tag and length included).
    issuer: &'a [u8],
    /// The subject Name as encoded (tag and length included).
    subject: &'a [u8],
    /// The content of the subjectPublicKey BIT STRING.
    public_key: Vec<u8>,
    /// The subject's first common name, when it is a string.
    common_name: Option<String>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
}

impl<'a> CertParts<'a> {
    fn parse(der: &'a [u8]) -> Result<Self, String> {
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

/// The issuer and subject Names of a certificate exactly as encoded.
fn raw_names(cert_der: &[u8]) -> der::Result<(&[u8], &[u8])> {
    let mut reader = SliceReader::new(cert_der)?;
    let tbs = reader.sequence(|cert| {
        let tbs = cert.tlv_bytes()?;
        cert.tlv_bytes()?; // signatureAlgorithm
        cert.tlv_bytes()?; // signatureValue
        Ok(tbs)
    })?;
    reader.finish(())?;

    let mut reader = SliceReader::new(tbs)?;
    let names = reader.sequence(|tbs| {
        explicit(tbs, TagNumber::N0)?; // version
        tbs.tlv_bytes()?; // serialNumber
        tbs.tlv_bytes()?; // signature
        let issuer = tbs.tlv_bytes()?;
        tbs.tlv_bytes()?; // validity
        let subject = tbs.tlv_bytes()?;
        while !tbs.is_finished() {
            tbs.tlv_bytes()?;
        }
        Ok((issuer, subject))
    })?;
    reader.finish(names)
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
mod tests {
    use std::process::Command;

    use rcgen::{BasicConstraints, SignatureAlgorithm};
    use time::macros::datetime;
    use time::Duration;
    use x509_cert::ext::pkix::{
        BasicConstraints as X509BasicConstraints, ExtendedKeyUsage, KeyUsage,
    };

    use super::*;

    // Requests are built here with a few lines of hand-written DER, apart
    // from the module's own encoder.

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    fn octet_string(bytes: &[u8]) -> Vec<u8> {
        tlv(0x04, bytes)
    }

    /// AlgorithmIdentifier { sha1, NULL }.
    const SHA1_ALG: [u8; 11] = [
        0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
    ];
    /// OBJECT IDENTIFIER id-pkix-ocsp-nonce.
    const NONCE_OID: [u8; 11] = [
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
    ];
    /// OBJECT IDENTIFIER 1.2.3.4.
    const OTHER_OID: [u8; 5] = [0x06, 0x03, 0x2a, 0x03, 0x04];

    fn cert_id_with(alg: &[u8], hash_len: usize, serial: &[u8]) -> Vec<u8> {
        seq(&[
            alg.to_vec(),
            octet_string(&vec![0x11; hash_len]),
            octet_string(&vec![0x22; hash_len]),
            tlv(0x02, serial),
        ])
    }

    fn cert_id(serial: &[u8]) -> Vec<u8> {
        cert_id_with(&SHA1_ALG, 20, serial)
    }

    fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
        let mut parts = vec![oid.to_vec()];
        if critical {
            parts.push(vec![0x01, 0x01, 0xff]);
        }
        parts.push(octet_string(value));
        seq(&parts)
    }

    fn nonce_extension(nonce: &[u8]) -> Vec<u8> {
        extension(&NONCE_OID, false, &octet_string(nonce))
    }

    /// An OCSPRequest from its TBSRequest fields.
    fn request_from(
        before_list: &[Vec<u8>],
        requests: &[Vec<u8>],
        extensions: &[Vec<u8>],
    ) -> Vec<u8> {
        let mut tbs = before_list.to_vec();
        tbs.push(seq(requests));
        if !extensions.is_empty() {
            tbs.push(tlv(0xa2, &seq(extensions)));
        }
        seq(&[seq(&tbs)])
    }

    /// A request for `count` certificates, with serials 0x0100, 0x0101...
    fn request(count: usize, extensions: &[Vec<u8>]) -> Vec<u8> {
        let requests: Vec<Vec<u8>> = (0..count)
            .map(|i| seq(&[cert_id(&[0x01, i as u8])]))
            .collect();
        request_from(&[], &requests, extensions)
    }

    fn malformed(der: &[u8]) -> String {
        let err = parse_request(der).expect_err("the request should be refused");
        assert_eq!(err.status(), ErrorStatus::MalformedRequest, "{err}");
        err.to_string()
    }

    #[test]
    fn parses_a_plain_request() {
        let der = request(2, &[nonce_extension(&[7; 16])]);
        let parsed = parse_request(&der).unwrap();
        assert_eq!(parsed.cert_ids.len(), 2);
        let first = &parsed.cert_ids[0];
        assert_eq!(first.hash_alg, HashAlg::Sha1);
        assert_eq!(first.issuer_name_hash, vec![0x11; 20]);
        assert_eq!(first.issuer_key_hash, vec![0x22; 20]);
        assert_eq!(first.serial, vec![0x01, 0x00]);
        assert_eq!(first.der(), cert_id(&[0x01, 0x00]).as_slice());
        assert_eq!(parsed.cert_ids[1].serial, vec![0x01, 0x01]);
        assert_eq!(parsed.nonce, Some(vec![7; 16]));

        let without_nonce = parse_request(&request(1, &[])).unwrap();
        assert_eq!(without_nonce.nonce, None);
    }

    #[test]
    fn serials_keep_their_leading_zero() {
        let der = request_from(&[], &[seq(&[cert_id(&[0x00, 0x80, 0x01])])], &[]);
        let parsed = parse_request(&der).unwrap();
        assert_eq!(parsed.cert_ids[0].serial, vec![0x00, 0x80, 0x01]);
    }

    #[test]
    fn refuses_empty_input() {
        assert_eq!(malformed(&[]), "OCSP request is empty");
    }

    #[test]
    fn refuses_oversize_input_before_parsing() {
        // Pad a valid request with an ignored extension to exactly the limit.
        let padded = |filler: usize| request(1, &[extension(&OTHER_OID, false, &vec![0; filler])]);
        let filler = 1000 + MAX_REQUEST_LEN - padded(1000).len();
        let at_limit = padded(filler);
        assert_eq!(at_limit.len(), MAX_REQUEST_LEN);
        parse_request(&at_limit).unwrap();

        let over = padded(filler + 1);
        assert_eq!(
            malformed(&over),
            "OCSP request too large (8193 bytes, at most 8192)"
        );
        // Not parsed: garbage of that size gets the same answer.
        assert_eq!(
            malformed(&vec![0xff; MAX_REQUEST_LEN + 1]),
            "OCSP request too large (8193 bytes, at most 8192)"
        );
    }

    #[test]
    fn refuses_trailing_bytes() {
        let mut der = request(1, &[]);
        der.push(0);
        let message = malformed(&der);
        assert!(
            message.starts_with("OCSP request is not valid DER: "),
            "{message}"
        );
        assert!(message.contains("trailing"), "{message}");

        // Inside the TBSRequest too.
        let der = request_from(&[], &[seq(&[cert_id(&[1])])], &[]);
        let mut tbs_content = der[4..].to_vec();
        tbs_content.extend([0x05, 0x00]);
        let der = seq(&[seq(&[tbs_content])]);
        assert!(malformed(&der).starts_with("OCSP request is not valid DER: "));
    }

    #[test]
    fn refuses_garbage_and_non_der() {
        for garbage in [
            b"hello, OCSP".to_vec(),
            vec![0x30],
            vec![0x30, 0x05, 0x30, 0x03],
            vec![0x04, 0x02, 0x30, 0x00],
            vec![0x00; 64],
        ] {
            let message = malformed(&garbage);
            assert!(
                message.starts_with("OCSP request is not valid DER: "),
                "{message}"
            );
        }
        // Truncated.
        let der = request(1, &[]);
        assert!(malformed(&der[..der.len() - 1]).contains("not valid DER"));
        // BER indefinite length.
        let mut ber = vec![0x30, 0x80];
        ber.extend_from_slice(&der[2..]);
        ber.extend([0x00, 0x00]);
        assert!(malformed(&ber).contains("not valid DER"));
        // A length in long form where the short form fits.
        let mut long_form = vec![0x30, 0x81, der[1]];
        long_form.extend_from_slice(&der[2..]);
        assert!(malformed(&long_form).contains("not valid DER"));
        // A certificate that is not a request.
        let cert = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert!(malformed(&cert.int_der).contains("not valid DER"));
    }

    #[test]
    fn refuses_zero_requests() {
        assert_eq!(
            malformed(&request(0, &[])),
            "OCSP request asks about no certificate"
        );
    }

    #[test]
    fn refuses_more_than_sixteen_certificates() {
        assert_eq!(parse_request(&request(16, &[])).unwrap().cert_ids.len(), 16);
        assert_eq!(
            malformed(&request(17, &[])),
            "too many certificates in request (17, at most 16)"
        );
    }

    #[test]
    fn checks_the_nonce_size() {
        for len in [1, 16, 32] {
            let parsed = parse_request(&request(1, &[nonce_extension(&vec![0xab; len])])).unwrap();
            assert_eq!(parsed.nonce, Some(vec![0xab; len]));
        }
        assert_eq!(
            malformed(&request(1, &[nonce_extension(&[])])),
            "nonce of 0 octets (RFC 8954 allows 1 to 32)"
        );
        assert_eq!(
            malformed(&request(1, &[nonce_extension(&[0xab; 33])])),
            "nonce of 33 octets (RFC 8954 allows 1 to 32)"
        );
        // The value must be an OCTET STRING, not bare octets.
        let bare = extension(&NONCE_OID, false, &[0xab; 16]);
        assert!(malformed(&request(1, &[bare])).contains("does not hold a DER OCTET STRING"));
        // Once only.
        let twice = [nonce_extension(&[1; 16]), nonce_extension(&[2; 16])];
        assert_eq!(
            malformed(&request(1, &twice)),
            "extension 1.3.6.1.5.5.7.48.1.2 appears twice in the request extensions"
        );
        // A critical nonce is understood.
        let critical = extension(&NONCE_OID, true, &octet_string(&[3; 16]));
        assert_eq!(
            parse_request(&request(1, &[critical])).unwrap().nonce,
            Some(vec![3; 16])
        );
    }

    #[test]
    fn handles_other_extensions() {
        let ignored = extension(&OTHER_OID, false, &[0x05, 0x00]);
        assert!(parse_request(&request(1, std::slice::from_ref(&ignored))).is_ok());
        let critical = extension(&OTHER_OID, true, &[0x05, 0x00]);
        assert_eq!(
            malformed(&request(1, std::slice::from_ref(&critical))),
            "unsupported critical extension 1.2.3.4 in the request extensions"
        );
        // singleRequestExtensions.
        let one = |ext: &Vec<u8>| {
            request_from(
                &[],
                &[seq(&[
                    cert_id(&[1]),
                    tlv(0xa0, &seq(std::slice::from_ref(ext))),
                ])],
                &[],
            )
        };
        assert!(parse_request(&one(&ignored)).is_ok());
        assert_eq!(
            malformed(&one(&critical)),
            "unsupported critical extension 1.2.3.4 in the extensions of certificate 1"
        );
    }

    #[test]
    fn checks_cert_ids() {
        let md5 = [
            0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00,
        ];
        let one = |id: Vec<u8>| request_from(&[], &[seq(&[id])], &[]);
        assert_eq!(
            malformed(&one(cert_id_with(&md5, 16, &[1]))),
            "certificate 1 of the request: unsupported CertID hash algorithm 1.2.840.113549.2.5"
        );
        assert_eq!(
            malformed(&one(cert_id_with(&SHA1_ALG, 19, &[1]))),
            "certificate 1 of the request: issuerNameHash is 19 octets, a SHA-1 hash is 20"
        );
        let sha256_no_params = [
            0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        ];
        let parsed = parse_request(&one(cert_id_with(&sha256_no_params, 32, &[1]))).unwrap();
        assert_eq!(parsed.cert_ids[0].hash_alg, HashAlg::Sha256);
        assert!(malformed(&one(cert_id_with(&sha256_no_params, 20, &[1]))).contains("SHA-256"));
        let sha1_odd_params = [
            0x30, 0x0a, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x02, 0x01, 0x00,
        ];
        assert!(malformed(&one(cert_id_with(&sha1_odd_params, 20, &[1])))
            .contains("parameters other than NULL"));
        // Serials: minimal INTEGER encoding only.
        assert!(malformed(&one(cert_id(&[0x00, 0x01]))).contains("CertID is not valid DER"));
        assert!(malformed(&one(cert_id(&[]))).contains("CertID is not valid DER"));
        // A CertID with an extra element.
        let mut long_id = cert_id(&[1]);
        long_id[1] += 2;
        long_id.extend([0x05, 0x00]);
        assert!(malformed(&one(long_id)).contains("CertID is not valid DER"));
        // The second of two is named.
        let der = request_from(
            &[],
            &[seq(&[cert_id(&[1])]), seq(&[cert_id(&[0x00, 0x01])])],
            &[],
        );
        assert!(malformed(&der).starts_with("certificate 2 of the request"));
    }

    #[test]
    fn accepts_version_requestor_and_signature() {
        let version = |v: u8| tlv(0xa0, &[0x02, 0x01, v]);
        let requests = [seq(&[cert_id(&[5])])];
        assert!(parse_request(&request_from(&[version(0)], &requests, &[])).is_ok());
        assert_eq!(
            malformed(&request_from(&[version(1)], &requests, &[])),
            "unsupported OCSP request version (only v1 exists)"
        );

        // requestorName [1] EXPLICIT GeneralName (a dNSName here).
        let requestor = tlv(0xa1, &tlv(0x82, b"client.example"));
        let der = request_from(&[version(0), requestor.clone()], &requests, &[]);
        assert!(parse_request(&der).is_ok());
        // Out of order.
        let der = request_from(&[requestor.clone(), version(0)], &requests, &[]);
        assert!(malformed(&der).contains("not valid DER"));

        // optionalSignature [0] EXPLICIT Signature: accepted, not checked.
        let tbs = request_from(&[requestor], &requests, &[nonce_extension(&[9; 20])]);
        let tbs = tbs[2..].to_vec(); // the TBSRequest inside the outer SEQUENCE
        let signature = seq(&[
            seq(&[vec![
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
            ]]),
            tlv(0x03, &[0x00, 0x01, 0x02, 0x03]),
        ]);
        let signed = seq(&[tbs.clone(), tlv(0xa0, &signature)]);
        let parsed = parse_request(&signed).unwrap();
        assert_eq!(parsed.cert_ids[0].serial, vec![5]);
        assert_eq!(parsed.nonce, Some(vec![9; 20]));
        // A "signature" that is not a SEQUENCE.
        let bogus = seq(&[tbs, tlv(0xa0, &[0x05, 0x00])]);
        assert!(malformed(&bogus).contains("not valid DER"));
    }

    #[test]
    fn error_responses_are_fixed() {
        assert_eq!(
            error_response(ErrorStatus::MalformedRequest),
            [0x30, 0x03, 0x0a, 0x01, 0x01]
        );
        assert_eq!(error_response(ErrorStatus::InternalError)[4], 2);
        assert_eq!(error_response(ErrorStatus::TryLater)[4], 3);
        assert_eq!(error_response(ErrorStatus::Unauthorized)[4], 6);
    }

    #[test]
    fn responder_names_fit() {
        assert_eq!(
            responder_common_name(Some("acme-ca intermediate ab12cd")),
            "acme-ca intermediate ab12cd OCSP responder"
        );
        assert_eq!(responder_common_name(None), "OCSP responder");
        assert_eq!(responder_common_name(Some("  ")), "OCSP responder");
        let long = "é".repeat(64);
        assert_eq!(responder_common_name(Some(&long)).chars().count(), 64);
    }

    // A root, an intermediate that acts as the issuer, and a leaf.

    struct Chain {
        dir: tempfile::TempDir,
        int_der: Vec<u8>,
        issuer: Issuer<'static, KeyPair>,
        leaf_serial: Vec<u8>,
    }

    impl Chain {
        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).to_str().unwrap().to_owned()
        }

        fn write(&self, name: &str, contents: &[u8]) -> String {
            let path = self.path(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    fn new_key(alg: &'static SignatureAlgorithm) -> KeyPair {
        if alg == &rcgen::PKCS_RSA_SHA256 {
            KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
        } else {
            KeyPair::generate_for(alg).unwrap()
        }
    }

    fn random_serial() -> Vec<u8> {
        let mut serial = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut serial).unwrap();
        serial[0] = (serial[0] & 0x7f) | 0x10;
        serial
    }

    fn params(cn: &str, is_ca: IsCa) -> CertificateParams {
        let now = whole_seconds_utc(OffsetDateTime::now_utc());
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = is_ca;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(30);
        params
    }

    /// Generate the chain and write root.pem, int.pem, chain.pem (root and
    /// intermediate) and leaf.pem.
    fn ca_chain(alg: &'static SignatureAlgorithm) -> Chain {
        let root_key = new_key(alg);
        let mut root_params = params("test root", IsCa::Ca(BasicConstraints::Unconstrained));
        root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);

        let int_key = new_key(alg);
        let mut int_params = params(
            "test intermediate",
            IsCa::Ca(BasicConstraints::Constrained(0)),
        );
        int_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        int_params.use_authority_key_identifier_extension = true;
        let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let issuer = Issuer::new(int_params, int_key);

        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut leaf_params = params("leaf.example", IsCa::NoCa);
        leaf_params.subject_alt_names =
            vec![rcgen::SanType::DnsName("leaf.example".try_into().unwrap())];
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf_serial = leaf_params.serial_number.as_ref().unwrap().to_bytes();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let chain = Chain {
            dir: tempfile::tempdir().unwrap(),
            int_der: int.der().to_vec(),
            issuer,
            leaf_serial,
        };
        chain.write("root.pem", root.pem().as_bytes());
        chain.write("int.pem", int.pem().as_bytes());
        chain.write(
            "chain.pem",
            format!("{}{}", root.pem(), int.pem()).as_bytes(),
        );
        chain.write("leaf.pem", leaf.pem().as_bytes());
        chain
    }

    fn openssl_available() -> bool {
        let found = Command::new("openssl").arg("version").output().is_ok();
        if !found {
            println!("openssl is not installed: skipping this cross-check");
        }
        found
    }

    /// Run openssl; returns whether it succeeded and stdout then stderr.
    fn openssl(args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl").args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Have openssl write a request for the leaf; `digest` is e.g. "-sha256".
    fn openssl_request(chain: &Chain, digest: Option<&str>, nonce: bool) -> Vec<u8> {
        let (int, leaf, req) = (
            chain.path("int.pem"),
            chain.path("leaf.pem"),
            chain.path("req.der"),
        );
        let mut args = vec!["ocsp", "-issuer", &int];
        args.extend(digest);
        args.extend(["-cert", &leaf, "-reqout", &req]);
        if !nonce {
            args.push("-no_nonce");
        }
        let (ok, text) = openssl(&args);
        assert!(ok, "openssl ocsp -reqout failed:\n{text}");
        std::fs::read(&req).unwrap()
    }

    /// Check a response with openssl, first against the request (which
    /// checks the nonce) with the full text, then against the leaf
    /// certificate (openssl matches its own CertID and prints a summary).
    /// Returns both outputs.
    fn openssl_check(chain: &Chain, response: &[u8], digest: Option<&str>) -> (String, String) {
        let resp = chain.write("resp.der", response);
        let (req, int, ca) = (
            chain.path("req.der"),
            chain.path("int.pem"),
            chain.path("chain.pem"),
        );
        let (_, with_request) = openssl(&[
            "ocsp",
            "-reqin",
            &req,
            "-respin",
            &resp,
            "-issuer",
            &int,
            "-CAfile",
            &ca,
            "-resp_text",
        ]);
        let leaf = chain.path("leaf.pem");
        let mut args = vec!["ocsp", "-respin", &resp, "-issuer", &int, "-CAfile", &ca];
        args.extend(digest);
        args.extend(["-cert", &leaf, "-no_nonce"]);
        let (_, with_cert) = openssl(&args);
        (with_request, with_cert)
    }

    fn key_compromise(at: OffsetDateTime) -> CertStatus {
        CertStatus::Revoked {
            at,
            reason: Some(1),
        }
    }

    /// For each way of asking and each status: openssl asks, we parse and
    /// answer, openssl verifies and reads the answer.
    fn round_trips(chain: &Chain, responder: &Responder<'_>) {
        let hashes = IssuerHashes::from_issuer_cert(&chain.int_der).unwrap();
        for (digest, nonce) in [(None, true), (None, false), (Some("-sha256"), true)] {
            let now = whole_seconds_utc(OffsetDateTime::now_utc());
            for (status, word) in [
                (CertStatus::Good, "good"),
                (key_compromise(now - Duration::hours(2)), "revoked"),
                (CertStatus::Unknown, "unknown"),
            ] {
                let case = format!("{digest:?}, nonce {nonce}, {word}");
                let request = parse_request(&openssl_request(chain, digest, nonce)).unwrap();
                assert_eq!(request.cert_ids.len(), 1, "{case}");
                let id = &request.cert_ids[0];
                let alg = if digest.is_some() {
                    HashAlg::Sha256
                } else {
                    HashAlg::Sha1
                };
                assert_eq!(id.hash_alg, alg, "{case}");
                assert_eq!(id.serial, chain.leaf_serial, "{case}");
                assert!(hashes.matches(id), "{case}");
                assert_eq!(
                    hashes.cert_id(alg, &chain.leaf_serial).unwrap().der(),
                    id.der(),
                    "{case}"
                );
                match &request.nonce {
                    Some(n) => assert!(nonce && n.len() == 16, "{case}"),
                    None => assert!(!nonce, "{case}"),
                }

                let answer = SingleAnswer {
                    id,
                    status,
                    this_update: now - Duration::minutes(1),
                    next_update: now + Duration::days(1),
                };
                let response =
                    build_response(responder, &[answer], now, request.nonce.as_deref()).unwrap();
                let (text, summary) = openssl_check(chain, &response, digest);
                for out in [&text, &summary] {
                    assert!(out.contains("Response verify OK"), "{case}:\n{out}");
                    assert!(!out.contains("WARNING"), "{case}:\n{out}");
                    assert!(!out.contains("rror"), "{case}:\n{out}");
                }
                assert!(
                    text.contains("OCSP Response Status: successful (0x0)"),
                    "{case}:\n{text}"
                );
                assert!(
                    text.contains("Response Type: Basic OCSP Response"),
                    "{case}:\n{text}"
                );
                assert!(
                    text.contains(&format!("Cert Status: {word}")),
                    "{case}:\n{text}"
                );
                assert_eq!(text.contains("OCSP Nonce"), nonce, "{case}:\n{text}");
                let leaf = chain.path("leaf.pem");
                assert!(
                    summary.contains(&format!("{leaf}: {word}")),
                    "{case}:\n{summary}"
                );
                if word == "revoked" {
                    assert!(
                        text.contains("Revocation Reason: keyCompromise (0x1)"),
                        "{case}:\n{text}"
                    );
                    assert!(
                        summary.contains("Reason: keyCompromise"),
                        "{case}:\n{summary}"
                    );
                }
                assert_eq!(
                    text.contains("Certificate:"),
                    responder.include_cert,
                    "{case}:\n{text}"
                );
            }
        }
    }

    fn issuer_signed(alg: &'static SignatureAlgorithm) {
        let chain = ca_chain(alg);
        if !openssl_available() {
            return;
        }
        let responder = Responder {
            key: chain.issuer.key(),
            responder_cert_der: &chain.int_der,
            include_cert: false,
        };
        round_trips(&chain, &responder);
    }

    fn delegated(alg: &'static SignatureAlgorithm) {
        let chain = ca_chain(alg);
        if !openssl_available() {
            return;
        }
        let now = whole_seconds_utc(OffsetDateTime::now_utc());
        let (cert, key) = make_delegated_responder(
            &chain.issuer,
            &chain.int_der,
            now - Duration::hours(1),
            now + Duration::days(7),
        )
        .unwrap();
        let responder = Responder {
            key: &key,
            responder_cert_der: &cert,
            include_cert: true,
        };
        round_trips(&chain, &responder);
    }

    #[test]
    fn openssl_issuer_signed_p256() {
        issuer_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    }

    #[test]
    fn openssl_issuer_signed_p384() {
        issuer_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
    }

    #[test]
    fn openssl_issuer_signed_rsa() {
        issuer_signed(&rcgen::PKCS_RSA_SHA256);
    }

    #[test]
    fn openssl_delegated_p256() {
        delegated(&rcgen::PKCS_ECDSA_P256_SHA256);
    }

    #[test]
    fn openssl_delegated_rsa() {
        delegated(&rcgen::PKCS_RSA_SHA256);
    }

    /// The checks above can fail: openssl notices a changed response, a
    /// wrong nonce, a missing nonce and a responder from another CA.
    #[test]
    fn openssl_rejects_bad_responses() {
        let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        if !openssl_available() {
            return;
        }
        let request = parse_request(&openssl_request(&chain, None, true)).unwrap();
        let now = whole_seconds_utc(OffsetDateTime::now_utc());
        let answer = SingleAnswer {
            id: &request.cert_ids[0],
            status: CertStatus::Good,
            this_update: now,
            next_update: now + Duration::days(1),
        };
        let responder = Responder {
            key: chain.issuer.key(),
            responder_cert_der: &chain.int_der,
            include_cert: false,
        };
        let nonce = request.nonce.as_deref();

        // Good "good" changed to "unknown": [0] NULL -> [2] NULL.
        let mut response = build_response(&responder, &[answer], now, nonce).unwrap();
        let status_at = response
            .windows(2 + request.cert_ids[0].der().len())
            .position(|w| w.ends_with(&[0x80, 0x00]) && w.starts_with(request.cert_ids[0].der()))
            .expect("the CertID followed by good");
        let good = status_at + request.cert_ids[0].der().len();
        response[good] = 0x82;
        let (text, _) = openssl_check(&chain, &response, None);
        assert!(text.contains("Cert Status: unknown"), "{text}");
        assert!(text.contains("Response Verify Failure"), "{text}");
        assert!(!text.contains("Response verify OK"), "{text}");

        let other_nonce = [0x5a; 16];
        let response = build_response(&responder, &[answer], now, Some(&other_nonce)).unwrap();
        let (text, _) = openssl_check(&chain, &response, None);
        assert!(text.contains("Nonce Verify error"), "{text}");

        let response = build_response(&responder, &[answer], now, None).unwrap();
        let (text, _) = openssl_check(&chain, &response, None);
        assert!(text.contains("WARNING: no nonce in response"), "{text}");

        // A delegated responder certified by another CA's intermediate.
        let other = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (cert, key) = make_delegated_responder(
            &other.issuer,
            &other.int_der,
            now - Duration::hours(1),
            now + Duration::days(1),
        )
        .unwrap();
        let stranger = Responder {
            key: &key,
            responder_cert_der: &cert,
            include_cert: true,
        };
        let response = build_response(&stranger, &[answer], now, nonce).unwrap();
        let (text, summary) = openssl_check(&chain, &response, None);
        assert!(text.contains("Response Verify Failure"), "{text}");
        assert!(summary.contains("Response Verify Failure"), "{summary}");

        // The issuer's own key, without including the issuer certificate
        // and without -issuer: openssl cannot find the signer.
        let response = build_response(&responder, &[answer], now, nonce).unwrap();
        let resp = chain.write("resp.der", &response);
        let (ok, text) = openssl(&[
            "ocsp",
            "-reqin",
            &chain.path("req.der"),
            "-respin",
            &resp,
            "-CAfile",
            &chain.path("root.pem"),
        ]);
        assert!(!ok || !text.contains("Response verify OK"), "{text}");
    }

    #[test]
    fn openssl_reads_error_responses() {
        let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        if !openssl_available() {
            return;
        }
        for (status, printed) in [
            (ErrorStatus::MalformedRequest, "malformedrequest (1)"),
            (ErrorStatus::InternalError, "internalerror (2)"),
            (ErrorStatus::TryLater, "trylater (3)"),
            (ErrorStatus::Unauthorized, "unauthorized (6)"),
        ] {
            let path = chain.write("error.der", &error_response(status));
            let (_, text) = openssl(&["ocsp", "-respin", &path, "-resp_text", "-noverify"]);
            assert!(
                text.to_lowercase()
                    .contains(&format!("responder error: {printed}")),
                "{status:?}:\n{text}"
            );
        }
    }

    /// Several answers in one response; times with fractions and offsets
    /// are written in UTC whole seconds; reason 0 is left out.
    #[test]
    fn openssl_reads_times_and_several_answers() {
        let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        let hashes = IssuerHashes::from_issuer_cert(&chain.int_der).unwrap();
        let ids = [
            hashes.cert_id(HashAlg::Sha1, &[0x01]).unwrap(),
            hashes.cert_id(HashAlg::Sha256, &[0x00, 0x80]).unwrap(),
            hashes.cert_id(HashAlg::Sha1, &[0x03]).unwrap(),
        ];
        let this_update = datetime!(2026-03-01 12:00:00.999 +02:00);
        let next_update = datetime!(2026-03-08 12:00:00.5 +02:00);
        let answers = [
            SingleAnswer {
                id: &ids[0],
                status: CertStatus::Revoked {
                    at: datetime!(2026-02-27 10:11:12.75 UTC),
                    reason: Some(0),
                },
                this_update,
                next_update,
            },
            SingleAnswer {
                id: &ids[1],
                status: CertStatus::Revoked {
                    at: datetime!(2026-02-28 00:00:01 -05:00),
                    reason: Some(4),
                },
                this_update,
                next_update,
            },
            SingleAnswer {
                id: &ids[2],
                status: CertStatus::Good,
                this_update,
                next_update,
            },
        ];
        let responder = Responder {
            key: chain.issuer.key(),
            responder_cert_der: &chain.int_der,
            include_cert: false,
        };
        let produced_at = datetime!(2026-03-01 10:30:00.25 UTC);
        let response = build_response(&responder, &answers, produced_at, None).unwrap();
        for id in &ids {
            assert!(response.windows(id.der().len()).any(|w| w == id.der()));
        }
        if !openssl_available() {
            return;
        }
        let path = chain.write("resp.der", &response);
        let (ok, text) = openssl(&["ocsp", "-respin", &path, "-resp_text", "-noverify"]);
        assert!(ok, "{text}");
        assert!(
            text.contains("Produced At: Mar  1 10:30:00 2026 GMT"),
            "{text}"
        );
        assert_eq!(
            text.matches("This Update: Mar  1 10:00:00 2026 GMT")
                .count(),
            3,
            "{text}"
        );
        assert_eq!(
            text.matches("Next Update: Mar  8 10:00:00 2026 GMT")
                .count(),
            3,
            "{text}"
        );
        assert!(
            text.contains("Revocation Time: Feb 27 10:11:12 2026 GMT"),
            "{text}"
        );
        assert!(
            text.contains("Revocation Time: Feb 28 05:00:01 2026 GMT"),
            "{text}"
        );
        assert_eq!(text.matches("Revocation Reason").count(), 1, "{text}");
        assert!(
            text.contains("Revocation Reason: superseded (0x4)"),
            "{text}"
        );
        assert!(text.contains("Serial Number: 80"), "{text}");
        assert!(text.contains("Hash Algorithm: sha256"), "{text}");
        assert_eq!(text.matches("Cert Status: revoked").count(), 2, "{text}");
        assert_eq!(text.matches("Cert Status: good").count(), 1, "{text}");
        // byKey: the SHA-1 of the intermediate's public key.
        let public_key = CertParts::parse(&chain.int_der).unwrap().public_key;
        let key_hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &public_key);
        let key_hash_hex: String = key_hash
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert!(
            text.contains(&format!("Responder Id: {key_hash_hex}")),
            "{text}"
        );
    }

    #[test]
    fn echoes_cert_ids_byte_for_byte() {
        let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        // SHA-256 without the NULL parameters that openssl would write.
        let sha256_no_params = [
            0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        ];
        let der = request_from(
            &[],
            &[seq(&[cert_id_with(&sha256_no_params, 32, &[0x42])])],
            &[],
        );
        let request = parse_request(&der).unwrap();
        let id = &request.cert_ids[0];
        let now = OffsetDateTime::now_utc();
        let responder = Responder {
            key: chain.issuer.key(),
            responder_cert_der: &chain.int_der,
            include_cert: false,
        };
        let answer = SingleAnswer {
            id,
            status: CertStatus::Unknown,
            this_update: now,
            next_update: now,
        };
        let response = build_response(&responder, &[answer], now, Some(&[1, 2, 3])).unwrap();
        assert!(response.windows(id.der().len()).any(|w| w == id.der()));
        // The nonce extension as a client would send it.
        let nonce = nonce_extension(&[1, 2, 3]);
        assert!(response.windows(nonce.len()).any(|w| w == nonce.as_slice()));
    }

    #[test]
    fn issuer_hashes_tell_issuers_apart() {
        let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        let other = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        let ours = IssuerHashes::from_issuer_cert(&chain.int_der).unwrap();
        let theirs = IssuerHashes::from_issuer_cert(&other.int_der).unwrap();
        for alg in HashAlg::ALL {
            let id = ours.cert_id(alg, &[7]).unwrap();
            assert_eq!(id.issuer_name_hash.len(), alg.output_len());
            assert!(ours.matches(&id));
            assert!(!theirs.matches(&id));
            // Same names (both "test intermediate"), different keys.
            let mut same_name = theirs.cert_id(alg, &[7]).unwrap();
            assert_eq!(same_name.issuer_name_hash, id.issuer_name_hash);
            same_name.issuer_key_hash = id.issuer_key_hash.clone();
            assert!(ours.matches(&same_name));
        }
        if openssl_available() {
            let request = parse_request(&openssl_request(&other, None, false)).unwrap();
            assert!(!ours.matches(&request.cert_ids[0]));
            assert!(theirs.matches(&request.cert_ids[0]));
        }
        assert!(ours.cert_id(HashAlg::Sha1, &[0x00, 0x01]).is_err());
        assert!(IssuerHashes::from_issuer_cert(b"not a certificate").is_err());
    }

    #[test]
    fn delegated_responder_certificate_profile() {
        let chain = ca_chain(&rcgen::PKCS_RSA_SHA256);
        // A fraction of a second and a local offset, both to be dropped.
        let now = whole_seconds_utc(OffsetDateTime::now_utc());
        let not_before = (now - Duration::hours(1) + Duration::milliseconds(500))
            .to_offset(time::macros::offset!(+05:30));
        let not_after = now + Duration::days(7);
        let (der, key) =
            make_delegated_responder(&chain.issuer, &chain.int_der, not_before, not_after).unwrap();
        assert!(key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256);
        let cert = Certificate::from_der(&der).unwrap();
        let tbs = &cert.tbs_certificate;
        assert_eq!(
            tbs.subject.to_string(),
            "CN=test intermediate OCSP responder"
        );
        assert_eq!(tbs.issuer.to_string(), "CN=test intermediate");
        assert_eq!(
            tbs.validity.not_before.to_unix_duration().as_secs(),
            not_before.unix_timestamp() as u64
        );
        assert_eq!(
            tbs.validity.not_after.to_unix_duration().as_secs(),
            not_after.unix_timestamp() as u64
        );
        assert_eq!(
            tbs.subject_public_key_info.subject_public_key.raw_bytes(),
            key.der_bytes()
        );
        let serial = tbs.serial_number.as_bytes();
        assert!(serial.len() == 16 && serial[0] & 0x80 == 0, "{serial:02x?}");

        let extensions = tbs.extensions.as_ref().unwrap();
        let find = |oid: &str| {
            let oid = ObjectIdentifier::new_unwrap(oid);
            let found: Vec<_> = extensions.iter().filter(|e| e.extn_id == oid).collect();
            assert_eq!(found.len(), 1, "{oid}");
            found[0]
        };
        let eku = find("2.5.29.37");
        assert!(!eku.critical);
        let eku = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).unwrap();
        assert_eq!(
            eku.0,
            vec![ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9")]
        );
        let ku = find("2.5.29.15");
        assert!(ku.critical);
        let ku = KeyUsage::from_der(ku.extn_value.as_bytes()).unwrap();
        assert!(ku.digital_signature());
        // BIT STRING with only bit 0 (digitalSignature) set.
        assert_eq!(ku.to_der().unwrap(), [0x03, 0x02, 0x07, 0x80]);
        let bc = find("2.5.29.19");
        let bc = X509BasicConstraints::from_der(bc.extn_value.as_bytes()).unwrap();
        assert!(!bc.ca);
        let nocheck = find("1.3.6.1.5.5.7.48.1.5");
        assert!(!nocheck.critical);
        assert_eq!(nocheck.extn_value.as_bytes(), [0x05, 0x00]);
        find("2.5.29.14");
        let parts = CertParts::parse(&der).unwrap();
        let int_parts = CertParts::parse(&chain.int_der).unwrap();
        assert!(parts.subject_key_id.is_some());
        assert_eq!(parts.authority_key_id, int_parts.subject_key_id);
        assert!(parts.authority_key_id.is_some());
        assert_eq!(extensions.len(), 6);

        if openssl_available() {
            let path = chain.write("responder.der", &der);
            let (ok, text) = openssl(&["x509", "-inform", "DER", "-in", &path, "-noout", "-text"]);
            assert!(ok, "{text}");
            assert!(text.contains("OCSP Signing"), "{text}");
            assert!(text.contains("OCSP No Check"), "{text}");
            assert!(text.contains("CA:FALSE"), "{text}");
            let pem = format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                base64(&der)
            );
            let path = chain.write("responder.pem", pem.as_bytes());
            let (ok, text) = openssl(&[
                "verify",
                "-CAfile",
                &chain.path("chain.pem"),
                "-purpose",
                "ocsphelper",
                &path,
            ]);
            assert!(ok && text.contains(": OK"), "{text}");
        }
    }

    /// Standard base64 with line breaks every 64 characters, for PEM.
    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out.as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn refuses_bad_responder_setups() {
        let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        let other = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
        let id = IssuerHashes::from_issuer_cert(&chain.int_der)
            .unwrap()
            .cert_id(HashAlg::Sha1, &[1])
            .unwrap();
        let now = OffsetDateTime::now_utc();
        let answer = |status| SingleAnswer {
            id: &id,
            status,
            this_update: now,
            next_update: now + Duration::hours(1),
        };
        let responder = Responder {
            key: chain.issuer.key(),
            responder_cert_der: &chain.int_der,
            include_cert: false,
        };
        let fails = |responder: &Responder<'_>,
                     answers: &[SingleAnswer<'_>],
                     nonce: Option<&[u8]>,
                     wanted: &str| {
            let err = build_response(responder, answers, now, nonce).unwrap_err();
            assert_eq!(err.status(), ErrorStatus::InternalError);
            assert!(err.to_string().contains(wanted), "{err}");
        };
        fails(&responder, &[], None, "needs an answer");
        let revoked = |reason| CertStatus::Revoked {
            at: now,
            reason: Some(reason),
        };
        fails(&responder, &[answer(revoked(7))], None, "reason 7");
        fails(&responder, &[answer(revoked(11))], None, "reason 11");
        fails(
            &responder,
            &[answer(CertStatus::Good)],
            Some(&[]),
            "nonce of 0 octets",
        );
        fails(
            &responder,
            &[answer(CertStatus::Good)],
            Some(&[0; 33]),
            "nonce of 33 octets",
        );
        let mut backwards = answer(CertStatus::Good);
        backwards.next_update = now - Duration::seconds(2);
        fails(&responder, &[backwards], None, "is before thisUpdate");
        let mut ancient = answer(CertStatus::Good);
        ancient.this_update = datetime!(1960-01-01 00:00:00 UTC);
        fails(
            &responder,
            &[ancient],
            None,
            "cannot be written as a GeneralizedTime",
        );

        let mismatched = Responder {
            responder_cert_der: &other.int_der,
            ..responder
        };
        fails(
            &mismatched,
            &[answer(CertStatus::Good)],
            None,
            "does not carry the public key",
        );
        let garbage = Responder {
            responder_cert_der: b"junk",
            ..responder
        };
        fails(
            &garbage,
            &[answer(CertStatus::Good)],
            None,
            "not a valid DER certificate",
        );
        let ed25519 = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let ed_cert = params("ed", IsCa::NoCa).self_signed(&ed25519).unwrap();
        let ed = Responder {
            key: &ed25519,
            responder_cert_der: ed_cert.der(),
            include_cert: false,
        };
        fails(
            &ed,
            &[answer(CertStatus::Good)],
            None,
            "cannot be signed with",
        );
        assert!(build_response(&responder, &[answer(revoked(10))], now, None).is_ok());

        let err =
            make_delegated_responder(&chain.issuer, &other.int_der, now, now + Duration::days(1))
                .unwrap_err();
        assert!(err.to_string().contains("public key"), "{err}");
        let err = make_delegated_responder(&chain.issuer, &chain.int_der, now, now).unwrap_err();
        assert!(err.to_string().contains("ends"), "{err}");
    }
}
