//! The issuer and subject Names of a certificate (or a CRL's issuer)
//! exactly as encoded. CRLs (their issuer field) and OCSP (CertID name
//! hashes, the check that a delegated responder names its issuer) must
//! repeat these bytes, not a re-encoding of the parsed Name.

use der::{Reader, SliceReader};

use crate::ca::verify::raw_tbs_names;

/// The issuer and subject Name TLVs (tag and length included) of the DER
/// certificate `cert_der`. Callers parse the certificate with x509-cert
/// first; this only finds where the two Names stand.
pub(crate) fn raw_names(cert_der: &[u8]) -> der::Result<(&[u8], &[u8])> {
    let names = raw_tbs_names(signed_tbs(cert_der)?)?;
    Ok((names.issuer, names.subject))
}

/// The to-be-signed part (tag and length included) of a signed DER
/// structure: `SEQUENCE { tbs, signatureAlgorithm, signatureValue }`, as
/// certificates and CRLs are.
pub(crate) fn signed_tbs(signed_der: &[u8]) -> der::Result<&[u8]> {
    let mut reader = SliceReader::new(signed_der)?;
    let tbs = reader.sequence(|signed| {
        let tbs = signed.tlv_bytes()?;
        signed.tlv_bytes()?; // signatureAlgorithm
        signed.tlv_bytes()?; // signatureValue
        Ok(tbs)
    })?;
    reader.finish(tbs)
}
