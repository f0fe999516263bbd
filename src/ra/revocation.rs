//! Revocation (RFC 8555 §7.6): revokeCert by the ordering account, by an
//! account holding authorizations for every name, or by the certificate's
//! key; revocation by an operator; both written, then announced to the
//! CRL signer, before they return.

use super::Ra;
use crate::ca::csr;
use crate::error::{Error, ErrorKind, Result};
use crate::jose::Jwk;
use crate::model::{Account, Certificate, Revocation, RevocationReason};

impl Ra {
    /// revokeCert (RFC 8555 §7.6). `by_account`: the request was signed by
    /// this account; `by_key`: signed with this key (`jwk`), which must be
    /// the certificate's.
    pub(crate) async fn revoke(
        &self,
        by_account: Option<&Account>,
        by_key: Option<&Jwk>,
        cert_der: &[u8],
        reason: Option<i64>,
    ) -> Result<()> {
        use x509_cert::der::{Decode, Encode};
        let reason = match reason {
            None => RevocationReason::UNSPECIFIED,
            // removeFromCRL (8) only has a meaning in delta CRLs, which
            // this CA does not publish.
            Some(code) => RevocationReason::from_code(code)
                .filter(|_| code != 8)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::BadRevocationReason,
                        format!(
                            "{code} is not an RFC 5280 revocation reason this CA accepts \
                             (0-6, 9, 10; 8 removeFromCRL is for delta CRLs only)"
                        ),
                    )
                })?,
        };
        let parsed = x509_cert::Certificate::from_der(cert_der)
            .map_err(|_| Error::malformed("the certificate is not valid DER"))?;
        let serial = crate::ca::serial_hex(parsed.tbs_certificate.serial_number.as_bytes());
        let cert = self
            .store
            .certificate_by_serial(&serial)
            .await?
            .filter(|c| c.der == cert_der)
            .ok_or_else(|| Error::not_found("this CA did not issue that certificate"))?;
        let allowed = match (by_account, by_key) {
            (_, Some(key)) => {
                let spki = parsed
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(Error::internal)?;
                key.to_spki_der()? == spki
            }
            (Some(account), None) => {
                account.id == cert.account_id || self.holds_authorizations(account, &parsed).await?
            }
            (None, None) => false,
        };
        if !allowed {
            return Err(Error::unauthorized(
                "the request must be signed by the account that ordered the certificate, \
                 an account holding authorizations for all its names, or the certificate's key",
            ));
        }
        self.record_revocation(&cert, reason, "revoked").await
    }

    /// Revocation by an operator (the service's REST API, an admin or
    /// agent): any certificate of this CA, by serial. Like revokeCert, it
    /// is written, then announced to the CRL signer, before it returns.
    pub(crate) async fn revoke_by_operator(
        &self,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<()> {
        let cert = self
            .store
            .certificate_by_serial(serial)
            .await?
            .ok_or_else(|| Error::not_found("no such certificate"))?;
        self.record_revocation(&cert, reason, "revoked by an operator")
            .await
    }

    /// Writes a revocation (unless the certificate already is revoked:
    /// alreadyRevoked), then announces it to the CRL signer and the other
    /// listeners, before the caller acknowledges it.
    async fn record_revocation(
        &self,
        cert: &Certificate,
        reason: RevocationReason,
        what: &'static str,
    ) -> Result<()> {
        let revocation = Revocation {
            at: self.now(),
            reason,
        };
        if !self.store.revoke_certificate(&cert.id, revocation).await? {
            return Err(Error::new(
                ErrorKind::AlreadyRevoked,
                "the certificate is already revoked",
            ));
        }
        if let Some(events) = &self.revocations {
            events.revoked(&cert.serial, reason.code(), revocation.at);
        }
        tracing::info!(serial = %cert.serial, reason = reason.code(), "{what}");
        Ok(())
    }

    /// Whether `account` holds valid authorizations for every name of the
    /// certificate (a wildcard counts as its base name).
    async fn holds_authorizations(
        &self,
        account: &Account,
        cert: &x509_cert::Certificate,
    ) -> Result<bool> {
        let names = csr::certificate_identifiers(cert)?;
        if names.is_empty() {
            return Ok(false);
        }
        let now = self.now();
        for ident in names {
            let ident = match ident.value.strip_prefix("*.") {
                Some(base) => crate::protocol::Identifier::dns(base),
                None => ident,
            };
            if !self.store.has_valid_authz(&account.id, &ident, now).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
