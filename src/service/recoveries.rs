//! Key recovery: asking for an archived private key back after its
//! download window, and the agents' approvals it needs.

use super::{bad, conflict, forbidden, new_id, visible, Service};
use crate::error::Result;
use crate::model::service::{Caller, Recovery, RecoveryStatus, Role};

impl Service {
    /// POST /certs/{serial}/recovery: asks for an archived key back; it
    /// needs the profile's number of distinct agent approvals.
    pub(crate) async fn recover(&self, caller: &Caller, serial: &str) -> Result<Recovery> {
        Self::require(caller, &[Role::Admin, Role::Requester], "recover keys")?;
        let cert = self.certificate(caller, serial).await?;
        let meta = cert
            .service
            .as_ref()
            .filter(|m| m.key_sealed.is_some())
            .ok_or_else(|| conflict("this CA holds no archived key for that certificate"))?;
        let profile = self.profile(&meta.profile)?;
        let r = Recovery {
            id: new_id(),
            serial: cert.serial.clone(),
            requester: caller.name.clone(),
            status: RecoveryStatus::Pending,
            required: profile.recovery_approvals,
            approvals: Vec::new(),
            created_at: self.now(),
            decided_by: None,
            decided_at: None,
            reason: None,
        };
        self.store.insert_recovery(&r).await?;
        tracing::info!(serial = %cert.serial, recovery = %r.id, requester = %caller.name,
            "key recovery requested");
        Ok(r)
    }

    /// A recovery the caller may see.
    pub(crate) async fn recovery_for(&self, caller: &Caller, id: &str) -> Result<Recovery> {
        let found = self.store.recovery(id).await?;
        visible(caller, found, |r| &r.requester, "no such recovery")
    }

    pub(crate) async fn recoveries(
        &self,
        caller: &Caller,
        status: Option<RecoveryStatus>,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<Recovery>, u64)> {
        let requester = (!caller.sees_all()).then_some(caller.name.as_str());
        self.store
            .recoveries(
                status,
                requester,
                offset,
                limit.clamp(1, self.config.max_page),
            )
            .await
    }

    /// An agent approves a recovery: each agent once, never the requester.
    pub(crate) async fn approve_recovery(&self, caller: &Caller, id: &str) -> Result<Recovery> {
        Self::require(caller, &[Role::Admin, Role::Agent], "approve recoveries")?;
        let r = self.recovery_for(caller, id).await?;
        if r.requester == caller.name {
            return Err(forbidden(
                "a recovery cannot be approved by its own requester",
            ));
        }
        if r.approvals.contains(&caller.name) {
            return Err(conflict(format!(
                "{} already approved this recovery",
                caller.name
            )));
        }
        if r.status != RecoveryStatus::Pending {
            return Err(conflict(format!(
                "the recovery is {}, not pending",
                r.status.as_str()
            )));
        }
        if !self
            .store
            .approve_recovery(id, &caller.name, self.now())
            .await?
        {
            let now = self.recovery_for(caller, id).await?;
            if now.approvals.contains(&caller.name) {
                return Err(conflict(format!(
                    "{} already approved this recovery",
                    caller.name
                )));
            }
            return Err(conflict(format!(
                "the recovery is {}, not pending",
                now.status.as_str()
            )));
        }
        self.recovery_for(caller, id).await
    }

    pub(crate) async fn reject_recovery(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
    ) -> Result<Recovery> {
        Self::require(caller, &[Role::Admin, Role::Agent], "reject recoveries")?;
        if reason.len() > 500 {
            return Err(bad("the reason is at most 500 characters"));
        }
        let r = self.recovery_for(caller, id).await?;
        if r.requester == caller.name {
            return Err(forbidden(
                "a recovery cannot be decided by its own requester",
            ));
        }
        if !self
            .store
            .move_recovery(
                id,
                RecoveryStatus::Pending,
                RecoveryStatus::Rejected,
                Some(&caller.name),
                self.now(),
                Some(reason),
            )
            .await?
        {
            return Err(conflict(format!(
                "the recovery is {}, not pending",
                r.status.as_str()
            )));
        }
        self.recovery_for(caller, id).await
    }
}
