//! Issued certificates: listing, revocation, renewal (by hand and by the
//! scheduler) and the webhook announcement of every revocation.

use std::sync::Arc;
use std::time::Duration;

use super::{conflict, new_id, normalize_serial, parse_reason, secs, Service};
use crate::error::{Error, ErrorKind, Result};
use crate::model::service::{
    Caller, CertFilter, CertRow, Request, RequestStatus, Role, ServiceCert,
};
use crate::model::RevocationReason;

impl Service {
    /// Certificates the caller may see: all for admins and agents, the
    /// service certificates they requested for requesters.
    pub(crate) async fn certificates(
        &self,
        caller: &Caller,
        mut f: CertFilter,
    ) -> Result<(Vec<CertRow>, u64)> {
        if !caller.sees_all() {
            f.requester = Some(caller.name.clone());
        }
        f.limit = f.limit.clamp(1, self.config.max_page);
        self.store.certificates(&f).await
    }

    /// One certificate the caller may see, by serial (any case).
    pub(crate) async fn certificate(&self, caller: &Caller, serial: &str) -> Result<CertRow> {
        let serial = normalize_serial(serial)?;
        let (rows, _) = self
            .certificates(
                caller,
                CertFilter {
                    serial: Some(serial),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await?;
        rows.into_iter()
            .next()
            .ok_or_else(|| Error::not_found("no such certificate"))
    }

    /// Revokes a certificate (ACME or service) with an RFC 5280 reason.
    pub(crate) async fn revoke(
        &self,
        caller: &Caller,
        serial: &str,
        reason: &str,
    ) -> Result<CertRow> {
        Self::require(caller, &[Role::Admin, Role::Agent], "revoke certificates")?;
        let reason = parse_reason(reason).ok_or_else(|| {
            Error::new(
                ErrorKind::BadRevocationReason,
                format!(
                    "{:?} is not an RFC 5280 reason (unspecified, keyCompromise, cACompromise, \
                     affiliationChanged, superseded, cessationOfOperation, certificateHold, \
                     privilegeWithdrawn, aACompromise)",
                    reason.chars().take(40).collect::<String>()
                ),
            )
        })?;
        let cert = self.certificate(caller, serial).await?;
        self.ra.revoke_by_operator(&cert.serial, reason).await?;
        // The webhooks hear of it from the revocation events (see
        // `announce_revocations`), like every other revocation.
        self.certificate(caller, &cert.serial).await
    }

    /// Renews a service certificate inside its profile's window: a new
    /// certificate (new serial, and a new key when the server made the
    /// old one), then the old one revoked as superseded.
    pub(crate) async fn renew(&self, caller: &Caller, serial: &str) -> Result<CertRow> {
        Self::require(
            caller,
            &[Role::Admin, Role::Requester],
            "renew certificates",
        )?;
        let old = self.certificate(caller, serial).await?;
        let meta = old
            .service
            .clone()
            .ok_or_else(|| conflict("only certificates of the service can be renewed here; renew ACME certificates with ACME"))?;
        self.renew_cert(&old, &meta, Some(caller.name.as_str()))
            .await?;
        self.certificate(caller, &old.serial).await
    }

    async fn renew_cert(
        &self,
        old: &CertRow,
        meta: &ServiceCert,
        by: Option<&str>,
    ) -> Result<String> {
        let now = self.now();
        if old.revoked.is_some() {
            return Err(conflict("a revoked certificate cannot be renewed"));
        }
        if let Some(next) = &meta.renewed_to {
            return Err(conflict(format!(
                "the certificate was already renewed by {next}"
            )));
        }
        let profile = self.profile(&meta.profile)?;
        let opens = old.not_after - secs(profile.renew_before);
        if now < opens {
            return Err(conflict(format!(
                "the renewal window opens at {} ({} before expiry)",
                crate::clock::rfc3339(opens),
                humantime(profile.renew_before)
            )));
        }
        let original = match &meta.request_id {
            Some(id) => self.store.request(id).await?,
            None => None,
        }
        .ok_or_else(|| Error::internal("the certificate's request is missing"))?;
        // The renewal stays with the original requester; who renewed it is
        // recorded as its decider.
        let request = Request {
            id: new_id(),
            status: RequestStatus::Approved,
            requester: meta.requester.clone(),
            created_at: now,
            serial: None,
            error: None,
            decided_by: Some(by.unwrap_or("scheduler").to_owned()),
            decided_at: Some(now),
            reason: Some(format!("renewal of {}", old.serial)),
            batch_id: None,
            ..original
        };
        self.store
            .insert_requests(None, std::slice::from_ref(&request))
            .await?;
        let new_serial = self.fulfil(&request).await?;
        if !self.store.mark_renewed(&old.serial, &new_serial).await? {
            return Err(conflict("the certificate was renewed by another request"));
        }
        if let Err(e) = self
            .ra
            .revoke_by_operator(&old.serial, RevocationReason::SUPERSEDED)
            .await
        {
            if e.kind != ErrorKind::AlreadyRevoked {
                return Err(e);
            }
        }
        self.notifier
            .announce(
                "certificate.renewed",
                serde_json::json!({
                    "old_serial": old.serial,
                    "new_serial": new_serial,
                    "entity_id": meta.entity_id,
                    "profile": meta.profile,
                    "renewed_by": by.unwrap_or("scheduler"),
                }),
            )
            .await?;
        Ok(new_serial)
    }

    /// Renews every auto-renew certificate in its window; returns how many.
    /// A certificate younger than its window's length is left alone, so a
    /// certificate born inside its window (issued before that was refused)
    /// is renewed at most once per window, never on every pass.
    pub(crate) async fn renew_due(&self) -> Result<usize> {
        let now = self.now();
        let longest = self
            .config
            .profiles
            .values()
            .map(|p| secs(p.renew_before))
            .max()
            .unwrap_or(0);
        let due = self.store.due_for_renewal(now + longest, now).await?;
        let mut renewed = 0;
        let admin = Caller {
            name: "scheduler".into(),
            role: Role::Admin,
        };
        for meta in due {
            let Ok(cert) = self.certificate(&admin, &meta.serial).await else {
                continue;
            };
            let Ok(profile) = self.profile(&meta.profile) else {
                continue;
            };
            let window = secs(profile.renew_before);
            if now < cert.not_after - window || now - cert.not_before < window {
                continue;
            }
            match self.renew_cert(&cert, &meta, None).await {
                Ok(new) => {
                    renewed += 1;
                    tracing::info!(old = %meta.serial, new = %new, "auto-renewed");
                }
                Err(e) => tracing::warn!(serial = %meta.serial, error = %e, "auto-renewal failed"),
            }
        }
        Ok(renewed)
    }

    /// Announces every revocation of this CA (ACME revokeCert, the
    /// service, renewals' superseded ones) to the webhooks, as
    /// `certificate.revoked`, until the process ends.
    pub(crate) fn announce_revocations(self: &Arc<Self>) {
        let Some(events) = self.ra.revocation_events() else {
            return;
        };
        let mut rx = events.subscribe();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "webhooks missed revocation events");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let entity = match this.store.service_cert(&ev.serial).await {
                    Ok(meta) => meta.map(|m| m.entity_id),
                    Err(e) => {
                        tracing::warn!(error = %e, "looking up a revoked certificate");
                        None
                    }
                };
                let data = serde_json::json!({
                    "serial": ev.serial,
                    "reason": ev.reason,
                    "revoked_at": crate::clock::rfc3339(ev.at),
                    "entity_id": entity,
                });
                if let Err(e) = this.notifier.announce("certificate.revoked", data).await {
                    tracing::warn!(error = %e, "announcing a revocation");
                }
            }
        });
    }
}

/// A duration as the renewal window's message says it.
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86400) {
        format!("{} days", s / 86400)
    } else if s.is_multiple_of(3600) {
        format!("{} hours", s / 3600)
    } else {
        format!("{s} seconds")
    }
}
