//! Revocation status: CRLs (RFC 5280 §5) and an OCSP responder (RFC 6960)
//! for the certificates the signing intermediate issues.
//!
//! [`StatusService`] answers from the store, so status is consistent with
//! revocation: `revokeCert` writes the revocation, then bumps
//! [`RevocationEvents`] before it acknowledges. OCSP reads the certificate
//! row on every request, so it answers "revoked" at once; a CRL request
//! that finds the cached CRL older than the last event signs a new one
//! first. A background task also signs a new CRL soon after each
//! revocation and every `crl_refresh`, so issuance never waits on a CRL.
//!
//! [`crl`] and [`ocsp`] are the DER encoders and decoders; this module
//! decides what they say.

mod cert_names;
pub(crate) mod crl;
mod delegated;
pub mod ocsp;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify};

use crate::ca::Ca;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, OcspOutcome};
use crate::model::Timestamp;
use crate::store::shared::{JobLease, SharedStore};
use crate::store::Store;

/// Key of the signing intermediate's CRL number in the store.
const CRL_SCOPE: &str = "intermediate";

/// A revocation, as announced to subscribers (the service's webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revoked {
    /// Lowercase hex serial.
    pub serial: String,
    pub reason: u8,
    pub at: Timestamp,
}

/// Revocations made through this instance as they happen: a wake-up for
/// the task that signs CRLs, and a broadcast for other listeners (the
/// webhooks). Whether a CRL is stale is the database's revocation count,
/// which counts every instance's revocations.
#[derive(Debug)]
pub(crate) struct RevocationEvents {
    notify: Notify,
    announce: tokio::sync::broadcast::Sender<Revoked>,
}

impl RevocationEvents {
    pub(crate) fn new() -> Arc<RevocationEvents> {
        Arc::new(RevocationEvents {
            notify: Notify::new(),
            announce: tokio::sync::broadcast::channel(1024).0,
        })
    }

    /// Called after a revocation is stored and before it is acknowledged.
    pub(crate) fn revoked(&self, serial: &str, reason: u8, at: Timestamp) {
        self.notify.notify_one();
        // Nobody listening is fine.
        let _ = self.announce.send(Revoked {
            serial: serial.to_owned(),
            reason,
            at,
        });
    }

    /// Every revocation from now on (a slow listener misses some, and is
    /// told how many).
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Revoked> {
        self.announce.subscribe()
    }
}

/// How often the CRL refresher wakes (and renews its lease) at most.
pub(crate) const REFRESH_TICK: Duration = Duration::from_secs(30);

/// Settings of the status service.
#[derive(Debug, Clone)]
pub(crate) struct StatusSettings {
    /// nextUpdate - thisUpdate of a CRL.
    pub crl_lifetime: Duration,
    /// A CRL is signed again at least this often.
    pub crl_refresh: Duration,
    /// nextUpdate - thisUpdate of an OCSP answer.
    pub ocsp_lifetime: Duration,
    /// Sign OCSP answers with a delegated responder certificate.
    pub ocsp_delegated: bool,
    /// The CRL's URL, written in its issuingDistributionPoint (the same
    /// URL certificates name in cRLDistributionPoints).
    pub crl_url: Option<String>,
}

/// A signed CRL and what it was made from.
#[derive(Debug, Clone)]
struct SignedCrl {
    der: Arc<Vec<u8>>,
    /// The database's revocation count, read before the CRL's entries
    /// were listed.
    epoch: i64,
    signed_at: Timestamp,
}

/// The key that signs OCSP answers: the intermediate's, or the fleet's
/// delegated responder's.
struct OcspSigner {
    delegated: Option<delegated::DelegatedResponder>,
}

/// CRLs and OCSP for the signing intermediate.
pub(crate) struct StatusService {
    store: Arc<dyn Store>,
    /// The revocation count and CRL numbers every instance shares.
    shared: Arc<dyn SharedStore>,
    ca: Arc<Ca>,
    clock: Arc<dyn Clock>,
    events: Arc<RevocationEvents>,
    settings: StatusSettings,
    crl: Mutex<Option<SignedCrl>>,
    hashes: ocsp::IssuerHashes,
    signer: OcspSigner,
    metrics: Arc<Metrics>,
}

fn to_time(t: Timestamp) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t).map_err(Error::internal)
}

/// For the metrics, a request is as bad as its worst answer.
fn worst_outcome(statuses: &[ocsp::CertStatus]) -> OcspOutcome {
    if statuses
        .iter()
        .any(|s| matches!(s, ocsp::CertStatus::Revoked { .. }))
    {
        OcspOutcome::Revoked
    } else if statuses
        .iter()
        .any(|s| matches!(s, ocsp::CertStatus::Unknown))
    {
        OcspOutcome::Unknown
    } else {
        OcspOutcome::Good
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Hex serial (as stored) back to INTEGER content bytes.
fn serial_bytes(hex: &str) -> Result<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return Err(Error::internal(format_args!(
            "odd-length stored serial {hex}"
        )));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .map_err(|_| Error::internal(format_args!("bad stored serial {hex}")))
        })
        .collect()
}

impl StatusService {
    /// Prepares the responder: issuer hashes, and a delegated responder
    /// certificate (valid for a year, not past the intermediate) when asked.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        shared: Arc<dyn SharedStore>,
        ca: Arc<Ca>,
        clock: Arc<dyn Clock>,
        events: Arc<RevocationEvents>,
        settings: StatusSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<StatusService>> {
        let hashes = ocsp::IssuerHashes::from_issuer_cert(ca.intermediate_der())
            .map_err(|e| Error::internal(format_args!("OCSP issuer: {e}")))?;
        let delegated = if settings.ocsp_delegated {
            Some(delegated::DelegatedResponder::new(
                shared.clone(),
                ca.clone(),
                settings.ocsp_lifetime,
            )?)
        } else {
            None
        };
        Ok(Arc::new(StatusService {
            store,
            shared,
            ca,
            clock,
            events,
            settings,
            crl: Mutex::new(None),
            hashes,
            signer: OcspSigner { delegated },
            metrics,
        }))
    }

    /// The current CRL, DER. Signs a new one first when the cached one
    /// predates a revocation (made through any instance: the count is the
    /// database's) or is due for refresh.
    pub(crate) async fn crl(&self) -> Result<Arc<Vec<u8>>> {
        let mut cached = self.crl.lock().await;
        let now = self.clock.now();
        if let Some(c) = cached.as_ref() {
            let fresh = c.epoch == self.shared.revocation_epoch().await?
                && now < c.signed_at + secs(self.settings.crl_refresh);
            if fresh {
                return Ok(c.der.clone());
            }
        }
        let signed = self.sign_crl(now).await?;
        let der = signed.der.clone();
        *cached = Some(signed);
        Ok(der)
    }

    async fn sign_crl(&self, now: Timestamp) -> Result<SignedCrl> {
        // Read the epoch before listing: a revocation racing with this
        // listing bumps it, and the next request signs again.
        let epoch = self.shared.revocation_epoch().await?;
        let revoked = self.store.revoked_certificates(now).await?;
        let entries = revoked
            .iter()
            .map(|r| {
                Ok(crl::CrlEntry {
                    serial: serial_bytes(&r.serial)?,
                    revoked_at: to_time(r.revocation.at)?,
                    reason: Some(r.revocation.reason.code()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // CRL numbers only grow, and no two CRLs share one, whichever
        // instance signs: the database hands them out (the time, when the
        // database was reset and the clock is ahead of the last number).
        let number = self.shared.next_crl_number(CRL_SCOPE, now).await?;
        let this_update = to_time(now)?;
        let der = crl::sign_crl(
            self.ca.issuer(),
            &crl::CrlSpec {
                number: u64::try_from(number).map_err(Error::internal)?,
                this_update,
                next_update: this_update
                    + time::Duration::seconds(secs(self.settings.crl_lifetime)),
                entries: &entries,
                distribution_point: self.settings.crl_url.as_deref(),
                issuer_cert_der: self.ca.intermediate_der(),
            },
        )
        .map_err(|e| Error::internal(format_args!("signing CRL: {e}")))?;
        tracing::info!(number, entries = entries.len(), "signed CRL");
        Ok(SignedCrl {
            der: Arc::new(der),
            epoch,
            signed_at: now,
        })
    }

    /// Answers one DER OCSP request with a DER OCSP response: a signed
    /// answer, or an error status (malformedRequest, unauthorized for
    /// another issuer, internalError).
    pub(crate) async fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        let (outcome, der) = match self.answer(request).await {
            Ok((outcome, der)) => (outcome, der),
            Err(status) => (
                match status {
                    ocsp::ErrorStatus::MalformedRequest => OcspOutcome::Malformed,
                    ocsp::ErrorStatus::Unauthorized => OcspOutcome::Unauthorized,
                    ocsp::ErrorStatus::InternalError | ocsp::ErrorStatus::TryLater => {
                        OcspOutcome::InternalError
                    }
                },
                ocsp::error_response(status),
            ),
        };
        self.metrics.ocsp_request(outcome);
        der
    }

    async fn answer(
        &self,
        request: &[u8],
    ) -> std::result::Result<(OcspOutcome, Vec<u8>), ocsp::ErrorStatus> {
        let req = ocsp::parse_request(request).map_err(|e| {
            tracing::debug!(error = %e, "refused OCSP request");
            e.status()
        })?;
        if !req.cert_ids.iter().all(|id| self.hashes.matches(id)) {
            return Err(ocsp::ErrorStatus::Unauthorized);
        }
        let internal = |e: Error| {
            tracing::warn!(error = %e, "OCSP answer failed");
            ocsp::ErrorStatus::InternalError
        };
        let now = self.clock.now();
        let this_update = to_time(now).map_err(internal)?;
        let next_update = this_update + time::Duration::seconds(secs(self.settings.ocsp_lifetime));
        let statuses = self.statuses(&req.cert_ids).await.map_err(internal)?;
        let outcome = worst_outcome(&statuses);
        let answers: Vec<ocsp::SingleAnswer<'_>> = req
            .cert_ids
            .iter()
            .zip(statuses)
            .map(|(id, status)| ocsp::SingleAnswer {
                id,
                status,
                this_update,
                next_update,
            })
            .collect();
        let delegated = match &self.signer.delegated {
            Some(responder) => Some(responder.for_answer(now).await.map_err(internal)?),
            None => None,
        };
        let responder = match &delegated {
            Some(d) => ocsp::Responder {
                key: &d.key,
                responder_cert_der: &d.cert,
                include_cert: true,
            },
            None => ocsp::Responder {
                key: self.ca.issuer().key(),
                responder_cert_der: self.ca.intermediate_der(),
                include_cert: false,
            },
        };
        ocsp::build_response(&responder, &answers, this_update, req.nonce.as_deref())
            .map(|der| (outcome, der))
            .map_err(|e| {
                tracing::warn!(error = %e, "OCSP response failed");
                ocsp::ErrorStatus::InternalError
            })
    }

    /// What the store says about each certificate asked about, in order:
    /// unknown if it was not issued here.
    async fn statuses(&self, cert_ids: &[ocsp::CertId]) -> Result<Vec<ocsp::CertStatus>> {
        let mut statuses = Vec::with_capacity(cert_ids.len());
        for id in cert_ids {
            let serial = crate::ca::serial_hex(&id.serial);
            let cert = self.store.certificate_by_serial(&serial).await?;
            let status = match cert {
                None => ocsp::CertStatus::Unknown,
                Some(c) => match c.revoked {
                    None => ocsp::CertStatus::Good,
                    Some(r) => ocsp::CertStatus::Revoked {
                        at: to_time(r.at)?,
                        reason: Some(r.reason.code()),
                    },
                },
            };
            statuses.push(status);
        }
        Ok(statuses)
    }

    /// Signs a new CRL soon after revocations (batched over a second) and
    /// every `crl_refresh`, in the background, until the process ends.
    pub(crate) fn spawn_refresher(self: &Arc<Self>, lease: JobLease) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                // At least every REFRESH_TICK, so the lease (when the
                // database is shared) is renewed well within its lifetime;
                // crl() signs only when the CRL is stale.
                let wait = this.settings.crl_refresh.min(REFRESH_TICK);
                tokio::select! {
                    _ = this.events.notify.notified() => {
                        // Let a burst of revocations land in one CRL.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
                if !lease.hold().await {
                    continue;
                }
                if let Err(e) = this.crl().await {
                    tracing::warn!(error = %e, "CRL refresh failed");
                }
                if let Some(responder) = &this.signer.delegated {
                    if let Err(e) = responder.renew_if_due(this.clock.now()).await {
                        tracing::warn!(error = %e, "delegated OCSP responder renewal failed");
                    }
                }
            }
        });
    }
}
