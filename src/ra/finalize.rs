//! Finalize (RFC 8555 §7.4) and the certificates it makes: the order's
//! lease, the CSR checks, CAA checked again for old validations, the
//! certificate rate limits, signing and the one write that records the
//! certificate and makes the order valid; chaos's deferred finalize; a
//! certificate of an account.

use super::profile::Profile;
use super::state::{order_status, OrderStatus};
use super::{issue, secs, Ra};
use crate::ca::csr::{self, CheckedCsr};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Account, Authz, CertId, Certificate, Order, OrderId, Timestamp};
use crate::protocol::Identifier;
use crate::store::shared::Found;

/// What finalize did.
#[derive(Debug)]
pub(crate) enum Finalized {
    /// Signed (the order is valid), as usual.
    Now(Order, Vec<Authz>),
    /// Chaos's `finalize_delay`: the order is processing; the caller runs
    /// `job` with [`Ra::finish_finalize`] in the background.
    Later {
        order: Order,
        authzs: Vec<Authz>,
        job: Box<DeferredFinalize>,
    },
}

/// A finalize to complete later (see [`Finalized::Later`]).
#[derive(Debug)]
pub(crate) struct DeferredFinalize {
    account: Account,
    order: Order,
    csr: CheckedCsr,
    /// How long to wait before signing.
    pub delay: std::time::Duration,
}

impl Ra {
    /// finalize (RFC 8555 §7.4): checks the CSR against a ready order, takes
    /// the order's lease, signs, and commits certificate and order together.
    /// With chaos's `finalize_delay`, the order is left processing and the
    /// signing is handed back as a job ([`Finalized::Later`]).
    pub(crate) async fn finalize(
        &self,
        account: &Account,
        id: &OrderId,
        csr_der: &[u8],
        found: Option<Found>,
    ) -> Result<Finalized> {
        use crate::metrics::FinalizeOutcome;
        let started = std::time::Instant::now();
        let result = self.finalize_inner(account, id, csr_der, found).await;
        let outcome = match &result {
            Ok(Finalized::Now(order, _)) if order.cert_id.is_some() => FinalizeOutcome::Issued,
            Ok(Finalized::Later { .. }) => return result,
            _ => FinalizeOutcome::Refused,
        };
        self.metrics.finalized(outcome, started.elapsed());
        result
    }

    /// Runs a finalize that was deferred ([`Finalized::Later`]): waits
    /// its delay, then signs and commits as finalize would have. A failure
    /// leaves the order ready again (its lease is released) and is logged.
    pub(crate) async fn finish_finalize(&self, job: Box<DeferredFinalize>) {
        use crate::metrics::FinalizeOutcome;
        tokio::time::sleep(job.delay).await;
        let started = std::time::Instant::now();
        let result = match self.profile(Some(&job.order.profile)) {
            Ok(profile) => {
                self.issue_claimed(&job.account, &job.order, profile, &job.csr, self.now())
                    .await
            }
            Err(e) => Err(e),
        };
        let outcome = match &result {
            Ok(_) => FinalizeOutcome::Issued,
            Err(e) => {
                tracing::warn!(order = %job.order.id, error = %e, "deferred finalize failed");
                FinalizeOutcome::Refused
            }
        };
        self.metrics.finalized(outcome, started.elapsed());
    }

    async fn finalize_inner(
        &self,
        account: &Account,
        id: &OrderId,
        csr_der: &[u8],
        found: Option<Found>,
    ) -> Result<Finalized> {
        // The order as read before the claim below, which is conditional:
        // a read at the nonce's step is as good as one now.
        let (order, authzs) = self.order(account, id, found).await?;
        let now = self.now();
        let status = order_status(&order, &authzs, now);
        if status != OrderStatus::Ready {
            return Err(Error::new(
                ErrorKind::OrderNotReady,
                format!(
                    "the order is {}, not ready: {}",
                    status.as_str(),
                    match status {
                        OrderStatus::Pending => "its authorizations are not all valid yet",
                        OrderStatus::Processing => "it is being finalized",
                        OrderStatus::Valid => "it already has a certificate",
                        _ => "it can no longer be finalized",
                    }
                ),
            ));
        }
        let csr: CheckedCsr = csr::parse_and_verify_with(csr_der, self.settings.min_rsa_bits)?;
        csr::check_names(&csr, &order.identifiers)?;
        let profile = self.profile(Some(&order.profile))?;
        if csr.must_staple && !profile.ocsp {
            return Err(Error::bad_csr(format!(
                "the CSR asks for OCSP Must-Staple, but certificates of the {:?} profile have \
                 no OCSP responder",
                profile.name
            )));
        }
        self.recheck_caa(account, &authzs, now).await?;
        let delay = self.chaos.finalize_delay();
        let lease = self.settings.finalize_lease + delay.unwrap_or_default();
        let lease_until = now + secs(lease).max(1);
        if !self
            .store
            .claim_order(&order.id, &self.instance, now, lease_until)
            .await?
        {
            return Err(Error::new(
                ErrorKind::OrderNotReady,
                "the order is being finalized by another request",
            ));
        }
        if let Some(delay) = delay {
            // Chaos: answer processing now, sign later.
            let (order, authzs) = self.order(account, id, None).await?;
            let job = Box::new(DeferredFinalize {
                account: account.clone(),
                order: order.clone(),
                csr,
                delay,
            });
            return Ok(Finalized::Later { order, authzs, job });
        }
        let cert = self
            .issue_claimed(account, &order, profile, &csr, now)
            .await?;
        // The write that recorded the certificate linked it to the order
        // and ended the lease: this is the order as stored now, without
        // reading it back.
        let mut order = order;
        order.cert_id = Some(cert);
        order.processing_until = None;
        Ok(Finalized::Now(order, authzs))
    }

    /// Signs for an order whose lease is held: spends the certificate
    /// limits, issues, and on failure refunds them and releases the lease.
    async fn issue_claimed(
        &self,
        account: &Account,
        order: &Order,
        profile: &Profile,
        csr: &CheckedCsr,
        now: Timestamp,
    ) -> Result<CertId> {
        // The certificate limits, checked at newOrder, are spent now, all
        // or nothing, and given back if the issuance fails.
        let spent = self
            .spend_certificate_limits(account, &order.identifiers)
            .await;
        let issued = match spent {
            Ok(spent) => {
                let issued = self.issue(account, order, profile, csr, now).await;
                if issued.is_err() {
                    self.refund(spent).await;
                }
                issued
            }
            Err(e) => Err(e),
        };
        if issued.is_err() {
            if let Err(release) = self.store.release_order(&order.id, &self.instance).await {
                tracing::warn!(order = %order.id, error = %release, "could not release lease");
            }
        }
        issued
    }

    async fn issue(
        &self,
        account: &Account,
        order: &Order,
        profile: &Profile,
        csr: &CheckedCsr,
        now: Timestamp,
    ) -> Result<CertId> {
        let issued = self.issue_certificate(
            &issue::Issuance {
                spki_der: &csr.spki_der,
                key_kind: csr.key_kind,
                identifiers: &order.identifiers,
                subject_cn: None,
                validity: issue::Validity {
                    not_before: order.not_before,
                    not_after: order.not_after,
                    lifetime: secs(profile.validity),
                },
                leaf: &profile.leaf,
                urls: issue::StatusUrls {
                    ocsp: profile.ocsp,
                    crl: profile.crl,
                },
                must_staple: csr.must_staple,
            },
            now,
        )?;
        let cert = Certificate {
            id: CertId::random(),
            serial: crate::ca::serial_hex(&issued.serial),
            account_id: account.id.clone(),
            order_id: Some(order.id.clone()),
            der: issued.der,
            not_before: issued.not_before.unix_timestamp(),
            not_after: issued.not_after.unix_timestamp(),
            issued_at: now,
            revoked: None,
            common_name: order.identifiers.first().map(|i| i.value.clone()),
        };
        if !self.store.store_certificate(&cert, &order.id).await? {
            tracing::error!(order = %order.id, serial = %cert.serial,
                "certificate recorded but the order already had one");
            return Err(Error::new(
                ErrorKind::OrderNotReady,
                "the order was finalized by another request",
            ));
        }
        if let Some(limits) = &self.limits {
            limits.issued(&order.identifiers, cert.not_after).await;
        }
        tracing::info!(order = %order.id, serial = %cert.serial, account = %account.id, "issued");
        Ok(cert.id)
    }

    /// RFC 8659 §3 and Boulder's practice: CAA is checked at validation, and
    /// again before issuance for authorizations validated too long ago.
    async fn recheck_caa(&self, account: &Account, authzs: &[Authz], now: Timestamp) -> Result<()> {
        let Some(caa) = &self.caa else { return Ok(()) };
        let limit = secs(self.settings.caa_recheck_after);
        for a in authzs {
            let Some(attempt) = &a.attempt else { continue };
            let fresh = attempt.validated_at.is_some_and(|t| now - t < limit);
            if !fresh {
                caa.check(
                    &a.identifier,
                    a.wildcard,
                    &self.account_uri(&account.id),
                    attempt.kind,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Spends the certificate limits of an issuance (finalize), all or
    /// nothing.
    async fn spend_certificate_limits(
        &self,
        account: &Account,
        identifiers: &[Identifier],
    ) -> Result<Option<crate::ratelimit::Spent>> {
        let Some(limits) = &self.limits else {
            return Ok(None);
        };
        let txns = limits
            .issuance_transactions(&account.id, identifiers)
            .await?;
        Ok(Some(limits.spend(&txns).await?))
    }

    /// A certificate of `account`: as `found` if the request's nonce step
    /// read it already, else read now.
    pub(crate) async fn certificate(
        &self,
        account: &Account,
        id: &CertId,
        found: Option<Found>,
    ) -> Result<Certificate> {
        let cert = match found.and_then(|f| f.cert(id)) {
            Some(read) => read,
            None => self.store.certificate_by_id(id).await?,
        }
        .ok_or_else(|| Error::not_found("no such certificate"))?;
        Self::check_owner(account, &cert.account_id, "certificate")?;
        if cert.revoked.is_some() && !self.settings.serve_revoked_certificates {
            return Err(Error::not_found("this certificate has been revoked"));
        }
        Ok(cert)
    }
}
