//! Issuance requests: POST /certs (a server-made key), CSR uploads in
//! batches, and an agent's approval or rejection of a pending request.

use std::net::IpAddr;

use super::config::{Approval, ServiceProfileConfig};
use super::keys::KeySpec;
use super::{
    bad, check_entity, conflict, forbidden, new_id, pem_blocks, visible, IssueInput, Service,
    MAX_CSRS, MAX_NAMES,
};
use crate::error::Result;
use crate::model::service::{
    Batch, Caller, Request, RequestFilter, RequestParams, RequestStatus, Role,
};
use crate::model::Timestamp;
use crate::protocol::Identifier;

/// Who asks, under which profile, for which entity: what every new
/// request of one call shares.
struct Asking<'a> {
    caller: &'a Caller,
    profile_name: &'a str,
    profile: &'a ServiceProfileConfig,
    entity_id: &'a str,
    batch_id: Option<&'a str>,
    now: Timestamp,
}

impl Asking<'_> {
    /// A new request for `params`: approved at once under an `auto`
    /// profile, pending otherwise.
    fn request(&self, params: RequestParams) -> Request {
        Request {
            id: new_id(),
            status: match self.profile.approval {
                Approval::Auto => RequestStatus::Approved,
                Approval::Manual => RequestStatus::Pending,
            },
            requester: self.caller.name.clone(),
            profile: self.profile_name.to_owned(),
            entity_id: self.entity_id.to_owned(),
            params,
            batch_id: self.batch_id.map(str::to_owned),
            serial: None,
            error: None,
            created_at: self.now,
            decided_by: None,
            decided_at: None,
            reason: None,
        }
    }
}

impl Service {
    /// A profile a new request names (an unknown one is a bad request,
    /// not a missing resource).
    fn requested_profile(&self, name: &str) -> Result<&ServiceProfileConfig> {
        self.config
            .profiles
            .get(name)
            .ok_or_else(|| bad(format!("there is no profile {name:?}")))
    }

    /// POST /certs: a request for a certificate with a server-made key;
    /// issued at once under an `auto` profile, pending otherwise.
    pub(crate) async fn issue(&self, caller: &Caller, input: IssueInput) -> Result<Request> {
        Self::require(
            caller,
            &[Role::Admin, Role::Requester],
            "request certificates",
        )?;
        check_entity(&input.entity_id)?;
        let profile = self.requested_profile(&input.profile)?;
        self.check_issue(&input, profile)?;
        let asking = Asking {
            caller,
            profile_name: &input.profile,
            profile,
            entity_id: &input.entity_id,
            batch_id: None,
            now: self.now(),
        };
        let request = asking.request(RequestParams::Issue {
            names: input.names,
            ip_addresses: input.ip_addresses,
            common_name: input.common_name,
            key_type: input.key_type.to_ascii_lowercase(),
            key_size: input.key_size,
            ttl: input.ttl,
            auto_renew: input.auto_renew,
        });
        self.store
            .insert_requests(None, std::slice::from_ref(&request))
            .await?;
        if request.status == RequestStatus::Approved {
            self.fulfil(&request).await?;
        }
        self.request_for(caller, &request.id).await
    }

    /// What POST /certs asks for, against its profile: the key type and
    /// size, the subject, the lifetime and auto-renewal.
    fn check_issue(&self, input: &IssueInput, profile: &ServiceProfileConfig) -> Result<()> {
        let spec =
            KeySpec::parse(&input.key_type, input.key_size).map_err(|e| bad(e.to_string()))?;
        let (kind_ok, sizes) = match spec {
            KeySpec::Rsa(_) => (
                profile.key_types.iter().any(|k| k == "rsa"),
                &profile.rsa_sizes,
            ),
            KeySpec::Ec(_) => (
                profile.key_types.iter().any(|k| k == "ec"),
                &profile.ec_sizes,
            ),
        };
        if !kind_ok || !sizes.contains(&input.key_size) {
            return Err(bad(format!(
                "the {} profile allows keys {}; not {} {}",
                input.profile,
                allowed_keys(profile),
                input.key_type,
                input.key_size
            )));
        }
        self.check_subject(
            &input.profile,
            profile,
            &input.names,
            &input.ip_addresses,
            input.common_name.as_deref(),
        )?;
        check_lifetime(input, profile)
    }

    /// POST /csr: one PEM text with one or many CSRs becomes a batch of
    /// requests, each issued at once (auto profile) or pending.
    pub(crate) async fn upload_csrs(
        &self,
        caller: &Caller,
        profile_name: &str,
        entity_id: &str,
        batch_name: &str,
        pem: &str,
    ) -> Result<(Batch, Vec<Request>)> {
        Self::require(caller, &[Role::Admin, Role::Requester], "upload CSRs")?;
        check_entity(entity_id)?;
        let profile = self.requested_profile(profile_name)?;
        if batch_name.len() > 128 {
            return Err(bad("the batch name is at most 128 characters"));
        }
        let blocks = csr_blocks(pem)?;
        let now = self.now();
        let batch = Batch {
            id: new_id(),
            name: batch_name.to_owned(),
            requester: caller.name.clone(),
            profile: profile_name.to_owned(),
            created_at: now,
        };
        let asking = Asking {
            caller,
            profile_name,
            profile,
            entity_id,
            batch_id: Some(&batch.id),
            now,
        };
        let requests = self.csr_requests(&asking, &blocks)?;
        self.store.insert_requests(Some(&batch), &requests).await?;
        self.fulfil_batch(&requests).await;
        let list = self.batch_requests(&batch.id).await?;
        Ok((batch, list))
    }

    /// Every request of batch `batch_id` (a batch holds at most
    /// [`MAX_CSRS`]).
    pub(super) async fn batch_requests(&self, batch_id: &str) -> Result<Vec<Request>> {
        let (list, _) = self
            .store
            .requests(&RequestFilter {
                batch_id: Some(batch_id.to_owned()),
                limit: MAX_CSRS as u32,
                ..Default::default()
            })
            .await?;
        Ok(list)
    }

    /// One request per uploaded CSR, each checked against the profile; the
    /// first bad one refuses the whole upload, naming its position.
    fn csr_requests(
        &self,
        asking: &Asking<'_>,
        blocks: &[(Vec<u8>, String)],
    ) -> Result<Vec<Request>> {
        let mut requests = Vec::with_capacity(blocks.len());
        for (i, (der, text)) in blocks.iter().enumerate() {
            let csr = crate::ca::csr::parse_and_verify(der)
                .map_err(|e| bad(format!("CSR {} of the upload: {}", i + 1, e.detail)))?;
            let ips: Vec<String> = csr.ip_addrs.iter().map(IpAddr::to_string).collect();
            self.check_subject(
                asking.profile_name,
                asking.profile,
                &csr.dns_names,
                &ips,
                csr.common_name.as_deref(),
            )
            .map_err(|e| bad(format!("CSR {} of the upload: {}", i + 1, e.detail)))?;
            requests.push(asking.request(RequestParams::Csr {
                csr_pem: text.clone(),
            }));
        }
        Ok(requests)
    }

    /// Issues every approved request of a batch. A failure is recorded on
    /// its request; the others go on.
    async fn fulfil_batch(&self, requests: &[Request]) {
        for r in requests
            .iter()
            .filter(|r| r.status == RequestStatus::Approved)
        {
            if let Err(e) = self.fulfil(r).await {
                tracing::warn!(request = %r.id, error = %e, "batch issuance failed");
            }
        }
    }

    /// Issues the certificate of an approved request and records it;
    /// a failure moves the request to failed with the reason.
    pub(super) async fn fulfil(&self, request: &Request) -> Result<String> {
        match self.sign_for(request).await {
            Ok(serial) => Ok(serial),
            Err(e) => {
                let note = e.detail.clone();
                self.store
                    .move_request(
                        &request.id,
                        RequestStatus::Approved,
                        RequestStatus::Failed,
                        None,
                        self.now(),
                        Some(&note),
                    )
                    .await?;
                Err(e)
            }
        }
    }

    /// A request the caller may see.
    pub(crate) async fn request_for(&self, caller: &Caller, id: &str) -> Result<Request> {
        let found = self.store.request(id).await?;
        visible(caller, found, |r| &r.requester, "no such request")
    }

    pub(crate) async fn requests(
        &self,
        caller: &Caller,
        mut f: RequestFilter,
    ) -> Result<(Vec<Request>, u64)> {
        if !caller.sees_all() {
            f.requester = Some(caller.name.clone());
        }
        f.limit = f.limit.clamp(1, self.config.max_page);
        self.store.requests(&f).await
    }

    /// An agent (or admin) approves a pending request: it is issued now.
    pub(crate) async fn approve(&self, caller: &Caller, id: &str) -> Result<Request> {
        Self::require(caller, &[Role::Admin, Role::Agent], "approve requests")?;
        let r = self.request_for(caller, id).await?;
        if r.requester == caller.name {
            return Err(forbidden(
                "a request cannot be approved by its own requester",
            ));
        }
        if !self
            .store
            .move_request(
                id,
                RequestStatus::Pending,
                RequestStatus::Approved,
                Some(&caller.name),
                self.now(),
                None,
            )
            .await?
        {
            return Err(conflict(format!(
                "the request is {}, not pending",
                r.status.as_str()
            )));
        }
        let approved = self.request_for(caller, id).await?;
        let _ = self.fulfil(&approved).await;
        self.request_for(caller, id).await
    }

    /// An agent (or admin) rejects a pending request.
    pub(crate) async fn reject(&self, caller: &Caller, id: &str, reason: &str) -> Result<Request> {
        Self::require(caller, &[Role::Admin, Role::Agent], "reject requests")?;
        if reason.len() > 500 {
            return Err(bad("the reason is at most 500 characters"));
        }
        let r = self.request_for(caller, id).await?;
        if r.requester == caller.name {
            return Err(forbidden(
                "a request cannot be decided by its own requester",
            ));
        }
        if !self
            .store
            .move_request(
                id,
                RequestStatus::Pending,
                RequestStatus::Rejected,
                Some(&caller.name),
                self.now(),
                Some(reason),
            )
            .await?
        {
            return Err(conflict(format!(
                "the request is {}, not pending",
                r.status.as_str()
            )));
        }
        self.request_for(caller, id).await
    }

    /// The identifiers for `names` (DNS, wildcards keeping their "*.") and
    /// `ips`, each checked by the CA's identifier policy, the one ACME
    /// orders go through.
    pub(super) fn identifiers(&self, names: &[String], ips: &[String]) -> Result<Vec<Identifier>> {
        if names.len() + ips.len() > MAX_NAMES {
            return Err(bad(format!("at most {MAX_NAMES} names and addresses")));
        }
        let mut ip = Vec::with_capacity(ips.len());
        for a in ips {
            let parsed: IpAddr = a.trim().parse().map_err(|_| {
                bad(format!(
                    "{:?} is not an IP address",
                    a.chars().take(50).collect::<String>()
                ))
            })?;
            ip.push(Identifier::ip(parsed.to_string()));
        }
        let dns = names.iter().map(|n| Identifier::dns(n.clone()));
        dns.chain(ip)
            .map(|ident| {
                self.ra
                    .check_identifier(&ident)
                    .map(|c| c.identifier)
                    .map_err(|e| {
                        bad(format!(
                            "{:?}: {}",
                            ident.value.chars().take(100).collect::<String>(),
                            e.detail
                        ))
                    })
            })
            .collect()
    }

    /// What a certificate of `profile` may say, whichever way the request
    /// came (POST /certs or a CSR upload): names and addresses the
    /// identifier policy allows, a common name of 1 to 64 printable
    /// characters, what the profile requires, and, for a serverAuth
    /// profile, at least one name or address (a TLS certificate without a
    /// subjectAltName is never issued).
    fn check_subject(
        &self,
        profile_name: &str,
        profile: &ServiceProfileConfig,
        names: &[String],
        ips: &[String],
        common_name: Option<&str>,
    ) -> Result<Vec<Identifier>> {
        let ids = self.identifiers(names, ips)?;
        if let Some(cn) = common_name {
            if cn.is_empty() || cn.len() > 64 || cn.chars().any(char::is_control) {
                return Err(bad("common_name must be 1 to 64 printable characters"));
            }
        }
        for r in &profile.required {
            let given = match r.as_str() {
                "common_name" => common_name.is_some(),
                "names" => !ids.is_empty(),
                _ => true,
            };
            if !given {
                return Err(bad(format!("the {profile_name} profile requires {r}")));
            }
        }
        if ids.is_empty() && common_name.is_none() {
            return Err(bad("give names, ip_addresses or a common_name"));
        }
        if ids.is_empty()
            && profile
                .extended_key_usages
                .iter()
                .any(|e| e == "serverAuth")
        {
            return Err(bad(format!(
                "the {profile_name} profile issues serverAuth certificates, which need at least one name or IP address (a common name alone is not enough)"
            )));
        }
        Ok(ids)
    }
}

/// The CSR blocks of an upload: at least one, at most [`MAX_CSRS`].
fn csr_blocks(pem: &str) -> Result<Vec<(Vec<u8>, String)>> {
    let blocks = pem_blocks(pem, "CERTIFICATE REQUEST")?;
    if blocks.is_empty() {
        return Err(bad("the upload holds no CERTIFICATE REQUEST block"));
    }
    if blocks.len() > MAX_CSRS {
        return Err(bad(format!("at most {MAX_CSRS} CSRs per upload")));
    }
    Ok(blocks)
}

/// A requested `ttl` within the profile's validity, and auto-renewal only
/// for a lifetime longer than the renewal window.
fn check_lifetime(input: &IssueInput, profile: &ServiceProfileConfig) -> Result<()> {
    if let Some(ttl) = input.ttl {
        if ttl == 0 || ttl > profile.validity.as_secs() {
            return Err(bad(format!(
                "ttl must be between 1 and {} seconds (the {} profile's validity)",
                profile.validity.as_secs(),
                input.profile
            )));
        }
    }
    // A certificate born inside its renewal window would be renewed as
    // soon as it is issued, and its successor too, forever.
    let lifetime = input.ttl.unwrap_or(profile.validity.as_secs());
    if input.auto_renew && lifetime <= profile.renew_before.as_secs() {
        return Err(bad(format!(
            "auto_renew needs a lifetime longer than the {} profile's renewal window ({} s before expiry); this one ({lifetime} s) would be renewed at once, again and again",
            input.profile,
            profile.renew_before.as_secs()
        )));
    }
    Ok(())
}

/// The key types and sizes a profile allows, as an error lists them.
fn allowed_keys(p: &ServiceProfileConfig) -> String {
    let mut out = Vec::new();
    if p.key_types.iter().any(|k| k == "rsa") {
        out.extend(p.rsa_sizes.iter().map(|s| format!("rsa {s}")));
    }
    if p.key_types.iter().any(|k| k == "ec") {
        out.extend(p.ec_sizes.iter().map(|s| format!("ec {s}")));
    }
    out.join(", ")
}
