//! Downloads: single-use download tokens, and the ZIP or PKCS#12 files
//! they are spent on (a certificate, its chain and, when allowed, its key).

use super::package;
use super::{
    bad, conflict, forbidden, internal_caller, normalize_serial, secs, sha256, visible, Download,
    Format, Service,
};
use crate::error::{Error, ErrorKind, Result};
use crate::model::service::{Caller, CertRow, RecoveryStatus, Role};
use crate::model::Timestamp;
use crate::store::shared::{GrantHold, GrantLimits, StoredGrant};

/// Download tokens outstanding at most, over everyone: far above fair
/// use, a bound on the table (a grant is a few hundred bytes).
const MAX_GRANTS: u64 = 100_000;
/// Download tokens one caller may hold at once, and for one certificate:
/// one requester cannot use up the pool and lock everyone else out.
const MAX_GRANTS_PER_CALLER: u64 = 100;
const MAX_GRANTS_PER_CERT: u64 = 10;

/// The additional data a grant's sealed password is bound to: the token's
/// digest, so a sealed password cannot be moved to another grant.
fn password_aad(digest: &[u8; 32]) -> Vec<u8> {
    [b"download-password:".as_slice(), digest].concat()
}

impl Format {
    pub(super) fn stored(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::Pkcs12 => "pkcs12",
        }
    }

    pub(super) fn from_stored(s: &str) -> Result<Format> {
        match s {
            "zip" => Ok(Format::Zip),
            "pkcs12" => Ok(Format::Pkcs12),
            other => Err(Error::internal(format_args!(
                "bad stored download format {other:?}"
            ))),
        }
    }
}

impl Service {
    /// POST /certs/{serial}/download-token: a single-use token for one
    /// download, valid `download_token_lifetime`.
    pub(crate) async fn download_token(
        &self,
        caller: &Caller,
        serial: &str,
        format: Format,
        password: Option<String>,
        recovery: Option<String>,
    ) -> Result<(String, Timestamp)> {
        Self::require(
            caller,
            &[Role::Admin, Role::Requester],
            "download certificates",
        )?;
        let cert = self.certificate(caller, serial).await?;
        if let Some(id) = &recovery {
            self.check_recovery_download(caller, id, &cert).await?;
        }
        if format == Format::Pkcs12 {
            match &password {
                Some(p) if !p.is_empty() && p.len() <= 128 => {}
                _ => return Err(bad("a PKCS#12 download needs a password of 1 to 128 bytes")),
            }
            if self.key_for(&cert, recovery.is_some())?.is_none() {
                return Err(conflict(
                    "the private key of this certificate cannot be downloaded (not held, or outside the profile's key download window)",
                ));
            }
        }
        let mut raw = [0u8; 32];
        crate::rand::fill(&mut raw);
        let token = crate::jose::b64::encode(raw);
        let digest = sha256(token.as_bytes());
        let expires = self.now() + secs(self.config.download_token_lifetime);
        let password_sealed = match &password {
            None => None,
            // A password is only taken with a key to package, and keys are
            // only held sealed under the KEK: it is there.
            Some(p) => Some(
                self.kek
                    .as_ref()
                    .ok_or_else(|| Error::internal("a PKCS#12 password but no service.kek"))?
                    .seal(p.as_bytes(), &password_aad(&digest))
                    .map_err(|e| Error::internal(format_args!("sealing the password: {e}")))?,
            ),
        };
        let grant = StoredGrant {
            caller: caller.name.clone(),
            serial: cert.serial,
            format: format.stored().to_owned(),
            password_sealed,
            expires,
            recovery,
        };
        self.hold(&digest, &grant).await?;
        Ok((token, expires))
    }

    /// A download through recovery `id`: only its requester's, for its
    /// certificate, once approved.
    async fn check_recovery_download(
        &self,
        caller: &Caller,
        id: &str,
        cert: &CertRow,
    ) -> Result<()> {
        let r = self.recovery_for(caller, id).await?;
        if r.requester != caller.name {
            return Err(forbidden(
                "only the recovery's requester can download the key through it",
            ));
        }
        if r.serial != cert.serial {
            return Err(bad("that recovery is for another certificate"));
        }
        if r.status != RecoveryStatus::Approved {
            return Err(conflict(format!(
                "the recovery is {} ({} of {} approvals); the key can be downloaded once it is approved",
                r.status.as_str(),
                r.approvals.len(),
                r.required
            )));
        }
        Ok(())
    }

    /// Keeps `grant` under its token's digest, within the bounds: per
    /// certificate, per caller and over the server (expired grants do not
    /// count). The database keeps them, so any instance honours the token.
    async fn hold(&self, digest: &[u8; 32], grant: &StoredGrant) -> Result<()> {
        let limits = GrantLimits {
            per_cert: MAX_GRANTS_PER_CERT,
            per_caller: MAX_GRANTS_PER_CALLER,
            total: MAX_GRANTS,
        };
        let lifetime = self.config.download_token_lifetime.as_secs();
        match self.shared.hold_grant(digest, grant, self.now(), limits).await? {
            GrantHold::Held => Ok(()),
            GrantHold::PerCert => Err(Error::new(
                ErrorKind::RateLimited,
                format!(
                    "{MAX_GRANTS_PER_CERT} download tokens for this certificate are outstanding; use one, or wait until they expire (at most {lifetime} s)"
                ),
            )),
            GrantHold::PerCaller => Err(Error::new(
                ErrorKind::RateLimited,
                format!(
                    "you hold {MAX_GRANTS_PER_CALLER} unused download tokens; use them, or wait until they expire (at most {lifetime} s)"
                ),
            )),
            GrantHold::Full => Err(Error::new(
                ErrorKind::RateLimited,
                "too many download tokens outstanding on this server; retry later",
            )),
        }
    }

    /// The private key of a certificate, PKCS#8, when the profile's
    /// archival policy lets it be downloaded now.
    fn key_for(&self, cert: &CertRow, recovered: bool) -> Result<Option<Vec<u8>>> {
        let Some(meta) = &cert.service else {
            return Ok(None);
        };
        let Some(sealed) = &meta.key_sealed else {
            return Ok(None);
        };
        let Ok(profile) = self.profile(&meta.profile) else {
            return Ok(None);
        };
        if !recovered && self.now() > meta.created_at + secs(profile.key_download_window) {
            return Ok(None);
        }
        let kek = self
            .kek
            .as_ref()
            .ok_or_else(|| Error::internal("archived key but no service.kek"))?;
        kek.open(sealed, cert.serial.as_bytes())
            .map(Some)
            .map_err(|e| Error::internal(format_args!("opening the archived key: {e}")))
    }

    /// Whether `token` would be accepted for `serial` now (HEAD: the token
    /// is not spent).
    pub(crate) async fn download_allowed(&self, serial: &str, token: &str) -> Result<bool> {
        let Ok(serial) = normalize_serial(serial) else {
            return Ok(false);
        };
        let grant = self
            .shared
            .peek_grant(&sha256(token.as_bytes()), self.now())
            .await?;
        Ok(grant.is_some_and(|g| g.serial == serial))
    }

    /// GET /certs/{serial}/download?token=…: spends the token.
    pub(crate) async fn download(&self, serial: &str, token: &str) -> Result<Download> {
        let serial = normalize_serial(serial)?;
        let digest = sha256(token.as_bytes());
        let now = self.now();
        // Taken (spent) even when it names another certificate: a token is
        // tried once.
        let grant = self
            .shared
            .take_grant(&digest, now)
            .await?
            .filter(|g| g.serial == serial)
            .ok_or_else(|| {
                forbidden("the download token is unknown, used, expired or for another certificate")
            })?;
        let cert = self.certificate(&internal_caller(), &serial).await?;
        let key = self.key_for(&cert, grant.recovery.is_some())?;
        if let Some(id) = &grant.recovery {
            // The recovery is used once: the key goes out with this download.
            if key.is_none() || !self.complete_recovery(id, now).await? {
                return Err(conflict("the key recovery was already used"));
            }
            tracing::info!(serial = %serial, recovery = %id, "archived key recovered");
        }
        match Format::from_stored(&grant.format)? {
            Format::Zip => self.zip_download(&cert, key.as_deref()),
            Format::Pkcs12 => {
                let key = key.ok_or_else(|| {
                    conflict("the private key of this certificate can no longer be downloaded")
                })?;
                let password = self.grant_password(&digest, &grant)?;
                self.pkcs12_download(&cert, &key, &password)
            }
        }
    }

    /// The PKCS#12 password of a grant, unsealed.
    fn grant_password(&self, digest: &[u8; 32], grant: &StoredGrant) -> Result<String> {
        let sealed = grant
            .password_sealed
            .as_deref()
            .ok_or_else(|| Error::internal("a PKCS#12 grant without a password"))?;
        let kek = self
            .kek
            .as_ref()
            .ok_or_else(|| Error::internal("a sealed password but no service.kek"))?;
        let plain = kek
            .open(sealed, &password_aad(digest))
            .map_err(|e| Error::internal(format_args!("opening the password: {e}")))?;
        String::from_utf8(plain).map_err(|_| Error::internal("a stored password is not UTF-8"))
    }

    /// Moves an approved recovery to completed; false when it was not
    /// approved any more (used by another download).
    async fn complete_recovery(&self, id: &str, now: Timestamp) -> Result<bool> {
        self.store
            .move_recovery(
                id,
                RecoveryStatus::Approved,
                RecoveryStatus::Completed,
                None,
                now,
                None,
            )
            .await
    }

    /// `<serial>.zip`: ca.pem, cert.pem and, when given, key.pem.
    fn zip_download(&self, cert: &CertRow, key: Option<&[u8]>) -> Result<Download> {
        let ca_chain = self.ca_chain_pem();
        let cert_pem = cert_pem(&cert.der)?;
        let key_pem = key
            .map(|k| der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, k))
            .transpose()
            .map_err(Error::internal)?;
        let mut files: Vec<(&str, &[u8])> = vec![
            ("ca.pem", ca_chain.as_bytes()),
            ("cert.pem", cert_pem.as_bytes()),
        ];
        if let Some(k) = &key_pem {
            files.push(("key.pem", k.as_bytes()));
        }
        let body = package::zip_stored(&files).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Download {
            file_name: format!("{}.zip", cert.serial),
            content_type: "application/zip",
            body,
        })
    }

    /// `<serial>.p12`: the certificate, its chain and its key under
    /// `password`, named by the common name (or the serial).
    fn pkcs12_download(&self, cert: &CertRow, key: &[u8], password: &str) -> Result<Download> {
        let chain = self.ra.default_chain();
        let chain: Vec<Vec<u8>> = chain
            .intermediates_der()
            .iter()
            .cloned()
            .chain(std::iter::once(chain.root_der().to_vec()))
            .collect();
        let name = cert
            .common_name
            .clone()
            .unwrap_or_else(|| cert.serial.clone());
        let body = package::pkcs12(&cert.der, &chain, key, &name, password)
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok(Download {
            file_name: format!("{}.p12", cert.serial),
            content_type: "application/x-pkcs12",
            body,
        })
    }

    /// The issued certificates of a batch the caller may see, zipped with
    /// the CA chain.
    pub(crate) async fn batch_zip(&self, caller: &Caller, id: &str) -> Result<Download> {
        let found = self.store.batch(id).await?;
        let batch = visible(caller, found, |b| &b.requester, "no such batch")?;
        let requests = self.batch_requests(&batch.id).await?;
        let admin = internal_caller();
        let mut files: Vec<(String, Vec<u8>)> =
            vec![("ca.pem".to_owned(), self.ca_chain_pem().into_bytes())];
        for serial in requests.iter().filter_map(|r| r.serial.as_ref()) {
            let cert = self.certificate(&admin, serial).await?;
            files.push((format!("{serial}.pem"), cert_pem(&cert.der)?.into_bytes()));
        }
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let body = package::zip_stored(&refs).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Download {
            file_name: format!("batch-{}.zip", batch.id),
            content_type: "application/zip",
            body,
        })
    }
}

/// A certificate as PEM text.
fn cert_pem(der: &[u8]) -> Result<String> {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).map_err(Error::internal)
}
