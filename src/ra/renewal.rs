//! Renewal information (RFC 9773): the suggested window of a certificate
//! an ARI identifier names, and the answers set by hand through Pebble's
//! management API (kept in the database, so every instance answers alike).

use super::ari::{self, CertIdent};
use super::Ra;
use crate::error::{Error, Result};
use crate::model::Certificate;

impl Ra {
    /// renewalInfo (RFC 9773 §4): the suggested window of the certificate
    /// `text` names, or the answer set for it by hand; notFound when this
    /// CA did not issue it.
    pub(crate) async fn renewal_info(&self, text: &str) -> Result<ari::Answer> {
        let ident = CertIdent::parse(text)?;
        let (cert, _) = self.certificate_for_ari(&ident).await?.ok_or_else(|| {
            Error::not_found("this CA issued no certificate with that identifier")
        })?;
        if let Some(text) = self.shared.ari_override(&cert.serial).await? {
            let v = serde_json::from_str(&text)
                .map_err(|e| Error::internal(format_args!("stored renewal info: {e}")))?;
            return Ok(ari::Answer::Set(v));
        }
        Ok(ari::Answer::Window(ari::window(
            cert.not_before,
            cert.not_after,
            cert.revoked.map(|r| r.at),
        )))
    }

    /// Sets the renewalInfo answer of the certificate `pem` (one of ours)
    /// to `answer`, which must be a renewalInfo object with a
    /// suggestedWindow of two RFC 3339 times, start not after end (an
    /// instant window is what certbot's ARI test sets, and Pebble takes it).
    pub(crate) async fn set_renewal_info(
        &self,
        pem: &str,
        answer: serde_json::Value,
    ) -> Result<()> {
        // Kept in the database, one per certificate of ours.
        const MAX_ANSWER: usize = 4096;
        let text = answer.to_string();
        if text.len() > MAX_ANSWER {
            return Err(Error::malformed(format!(
                "the renewal info is longer than {MAX_ANSWER} bytes"
            )));
        }
        let window = answer.get("suggestedWindow");
        let time = |k: &str| {
            window
                .and_then(|w| w.get(k))
                .and_then(|v| v.as_str())
                .and_then(crate::clock::parse_rfc3339)
        };
        match (time("start"), time("end")) {
            (Some(start), Some(end)) if start <= end => {}
            _ => {
                return Err(Error::malformed(
                    "the renewal info needs suggestedWindow.start and .end, RFC 3339 times, start not after end",
                ))
            }
        }
        let (label, der) = x509_cert::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|_| Error::malformed("the certificate is not one PEM block"))?;
        if label != "CERTIFICATE" {
            return Err(Error::malformed("the PEM block is not a CERTIFICATE"));
        }
        let parsed =
            parse_stored(&der).map_err(|_| Error::malformed("the certificate does not parse"))?;
        let serial = crate::ca::serial_hex(parsed.tbs_certificate.serial_number.as_bytes());
        let ours = self
            .store
            .certificate_by_serial(&serial)
            .await?
            .is_some_and(|c| c.der == der);
        if !ours {
            return Err(Error::not_found("this CA did not issue that certificate"));
        }
        self.shared.set_ari_override(&serial, &text).await
    }

    /// The certificate an ARI identifier names (its serial, issued by the
    /// key its authority key identifier names), with its parsed form.
    pub(super) async fn certificate_for_ari(
        &self,
        ident: &CertIdent,
    ) -> Result<Option<(Certificate, x509_cert::Certificate)>> {
        let serial = crate::ca::serial_hex(&ident.serial);
        let Some(cert) = self.store.certificate_by_serial(&serial).await? else {
            return Ok(None);
        };
        let parsed = parse_stored(&cert.der)?;
        let aki = crate::ca::authority_key_id(&parsed);
        Ok((aki.as_deref() == Some(ident.key_id.as_slice())).then_some((cert, parsed)))
    }
}

fn parse_stored(der: &[u8]) -> Result<x509_cert::Certificate> {
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(der)
        .map_err(|e| Error::internal(format_args!("stored certificate: {e}")))
}
