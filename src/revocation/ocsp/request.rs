//! Reading OCSP requests (RFC 6960 §4.1.1): strictly DER, within fixed
//! bounds, every element checked where it stands.

use der::asn1::{AnyRef, OctetStringRef};
use der::{Decode, Header, Reader, SliceReader, Tag, TagNumber, Tagged};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::spki::AlgorithmIdentifierRef;

use super::{
    CertId, HashAlg, OcspError, OcspRequest, MAX_CERT_IDS, MAX_NONCE_LEN, MAX_REQUEST_LEN,
    OID_OCSP_NONCE,
};

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

pub(super) fn is_minimal_integer(bytes: &[u8]) -> bool {
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
