//! The certificate service for operators: a REST API beside ACME, on the
//! same CA and store. It issues certificates for entities with keys it
//! generates (sealed at rest under a key-encryption key), or for uploaded
//! CSRs, lists, renews and revokes them (ACME certificates included), and
//! hands certificates and keys out through short-lived, single-use download
//! tokens. docs/SERVICE.md shows the API.
//!
//! Every certificate it issues is a row of the shared certificates table
//! (under the `service` account), so CRL, OCSP and ACME's revokeCert treat
//! it like any other.

/// `[service]`'s settings, kept with the rest of the configuration.
pub use crate::config::service as config;
pub mod console;
pub mod http;
pub mod keys;
pub mod package;
pub mod types;
pub mod webhooks;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::PublicKeyData;

use crate::ca::{LeafProfile, LeafRequest, PublicKeyKind};
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{CertId, Certificate, RevocationReason, Timestamp};
use crate::protocol::Identifier;
use crate::store::service::ServiceStore;
use config::{Approval, ServiceConfig, ServiceProfileConfig};
use keys::{Kek, KeySpec};
use types::{
    Batch, Caller, CertFilter, CertRow, Recovery, RecoveryStatus, Request, RequestFilter,
    RequestParams, RequestStatus, Role, ServiceCert,
};

/// Most names and addresses in one certificate.
const MAX_NAMES: usize = 100;
/// Most CSRs in one upload.
pub const MAX_CSRS: usize = 100;
/// Download tokens outstanding at most.
/// Download tokens outstanding at most, over everyone: far above fair
/// use, a bound on memory (a grant is a few hundred bytes).
const MAX_GRANTS: usize = 100_000;
/// Download tokens one caller may hold at once, and for one certificate:
/// one requester cannot use up the pool and lock everyone else out.
const MAX_GRANTS_PER_CALLER: usize = 100;
const MAX_GRANTS_PER_CERT: usize = 10;

/// A configured token: its SHA-256 (the token itself is not kept), name
/// and role.
struct TokenEntry {
    digest: [u8; 32],
    caller: Caller,
}

/// What a download token allows.
#[derive(Debug, Clone)]
struct Grant {
    /// Who asked for it (the token's name).
    caller: String,
    serial: String,
    format: Format,
    password: Option<String>,
    expires: Timestamp,
    /// An approved key recovery this download completes.
    recovery: Option<String>,
}

/// A download's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ca.pem, cert.pem and (when allowed) key.pem.
    Zip,
    /// PKCS#12 protected by a password.
    Pkcs12,
}

/// A finished download.
pub struct Download {
    pub file_name: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The operator service.
pub struct Service {
    /// The ACME side: the CA, the RA (revocation) and the URLs written
    /// into certificates.
    pub app: Arc<crate::http::App>,
    pub store: Arc<dyn ServiceStore>,
    pub clock: Arc<dyn Clock>,
    pub config: ServiceConfig,
    /// Tells the webhooks of renewals and revocations.
    pub notifier: Arc<webhooks::Notifier>,
    kek: Option<Kek>,
    tokens: Vec<TokenEntry>,
    grants: Mutex<HashMap<[u8; 32], Grant>>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A request error of the service (400 unless a kind says otherwise).
fn bad(detail: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::malformed(detail)
}

fn forbidden(detail: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::unauthorized(detail)
}

fn conflict(detail: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Conflict, detail)
}

/// RFC 5280 reasons by name, whatever the case, spaces, dashes or
/// underscores ("keyCompromise", "Key Compromise", "key_compromise").
pub fn parse_reason(s: &str) -> Option<RevocationReason> {
    let norm: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect();
    let code = match norm.as_str() {
        "unspecified" => 0,
        "keycompromise" => 1,
        "cacompromise" => 2,
        "affiliationchanged" => 3,
        "superseded" => 4,
        "cessationofoperation" => 5,
        "certificatehold" => 6,
        "privilegewithdrawn" => 9,
        "aacompromise" => 10,
        n => n.parse::<i64>().ok().filter(|c| *c != 7 && *c != 8)?,
    };
    RevocationReason::from_code(code)
}

/// The RFC 5280 §5.3.1 name of a reason code, as the API and the console
/// show it.
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unknown",
    }
}

/// "valid", "revoked" or "expired" at `now`, as the API and the console
/// show it.
pub fn cert_status(c: &types::CertRow, now: i64) -> &'static str {
    if c.revoked.is_some() {
        "revoked"
    } else if c.not_after <= now {
        "expired"
    } else {
        "valid"
    }
}

/// An entity id: 1 to 128 of letters, digits and `.-_:@/`.
fn check_entity(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:@/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "entity_id must be 1 to 128 letters, digits or . - _ : @ /",
        ))
    }
}

/// A new issuance request, as the API takes it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueInput {
    pub entity_id: String,
    pub profile: String,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    pub common_name: Option<String>,
    pub key_type: String,
    pub key_size: u32,
    /// Requested lifetime in seconds.
    pub ttl: Option<u64>,
    #[serde(default)]
    pub auto_renew: bool,
}

/// What issuance produced for a request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub request: Request,
}

impl Service {
    pub fn new(
        app: Arc<crate::http::App>,
        store: Arc<dyn ServiceStore>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Result<Service> {
        let kek = config
            .kek
            .as_deref()
            .map(Kek::from_b64)
            .transpose()
            .map_err(|e| Error::internal(format_args!("service.kek: {e}")))?;
        let tokens = config
            .tokens
            .iter()
            .map(|t| TokenEntry {
                digest: sha256(t.token.as_bytes()),
                caller: Caller {
                    name: t.name.clone(),
                    role: t.role,
                },
            })
            .collect();
        let notifier = Arc::new(webhooks::Notifier::new(
            store.clone(),
            clock.clone(),
            config.webhooks.clone(),
            config.webhook_secret_bytes().as_deref(),
            config.webhook_max_attempts,
            app.metrics.clone(),
        )?);
        Ok(Service {
            notifier,
            app,
            store,
            clock,
            config,
            kek,
            tokens,
            grants: Mutex::new(HashMap::new()),
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The caller a bearer token names. Every configured token is compared,
    /// in constant time, so timing tells nothing about which matched.
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        let digest = sha256(token.as_bytes());
        let mut found = None;
        for t in &self.tokens {
            if aws_lc_rs::constant_time::verify_slices_are_equal(&t.digest, &digest).is_ok() {
                found = Some(t.caller.clone());
            }
        }
        found
    }

    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Result<&ServiceProfileConfig> {
        self.config
            .profiles
            .get(name)
            .ok_or_else(|| Error::not_found(format!("there is no profile {name:?}")))
    }

    fn require(caller: &Caller, roles: &[Role], what: &str) -> Result<()> {
        if roles.contains(&caller.role) {
            Ok(())
        } else {
            let role = caller.role.as_str();
            let article = if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            Err(forbidden(format!("{article} {role} token may not {what}")))
        }
    }

    /// POST /certs: a request for a certificate with a server-made key;
    /// issued at once under an `auto` profile, pending otherwise.
    pub async fn issue(&self, caller: &Caller, input: IssueInput) -> Result<Request> {
        Self::require(
            caller,
            &[Role::Admin, Role::Requester],
            "request certificates",
        )?;
        check_entity(&input.entity_id)?;
        let profile = self
            .config
            .profiles
            .get(&input.profile)
            .ok_or_else(|| bad(format!("there is no profile {:?}", input.profile)))?;
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
        let request = Request {
            id: new_id(),
            status: match profile.approval {
                Approval::Auto => RequestStatus::Approved,
                Approval::Manual => RequestStatus::Pending,
            },
            requester: caller.name.clone(),
            profile: input.profile.clone(),
            entity_id: input.entity_id.clone(),
            params: RequestParams::Issue {
                names: input.names,
                ip_addresses: input.ip_addresses,
                common_name: input.common_name,
                key_type: input.key_type.to_ascii_lowercase(),
                key_size: input.key_size,
                ttl: input.ttl,
                auto_renew: input.auto_renew,
            },
            batch_id: None,
            serial: None,
            error: None,
            created_at: self.now(),
            decided_by: None,
            decided_at: None,
            reason: None,
        };
        self.store
            .insert_requests(None, std::slice::from_ref(&request))
            .await?;
        if request.status == RequestStatus::Approved {
            self.fulfil(&request).await?;
        }
        self.request_for(caller, &request.id).await
    }

    /// POST /csr: one PEM text with one or many CSRs becomes a batch of
    /// requests, each issued at once (auto profile) or pending.
    pub async fn upload_csrs(
        &self,
        caller: &Caller,
        profile_name: &str,
        entity_id: &str,
        batch_name: &str,
        pem: &str,
    ) -> Result<(Batch, Vec<Request>)> {
        Self::require(caller, &[Role::Admin, Role::Requester], "upload CSRs")?;
        check_entity(entity_id)?;
        let profile = self
            .config
            .profiles
            .get(profile_name)
            .ok_or_else(|| bad(format!("there is no profile {profile_name:?}")))?;
        if batch_name.len() > 128 {
            return Err(bad("the batch name is at most 128 characters"));
        }
        let blocks = pem_blocks(pem, "CERTIFICATE REQUEST")?;
        if blocks.is_empty() {
            return Err(bad("the upload holds no CERTIFICATE REQUEST block"));
        }
        if blocks.len() > MAX_CSRS {
            return Err(bad(format!("at most {MAX_CSRS} CSRs per upload")));
        }
        let now = self.now();
        let batch = Batch {
            id: new_id(),
            name: batch_name.to_owned(),
            requester: caller.name.clone(),
            profile: profile_name.to_owned(),
            created_at: now,
        };
        let mut requests = Vec::with_capacity(blocks.len());
        for (i, (der, text)) in blocks.iter().enumerate() {
            let csr = crate::ca::csr::parse_and_verify(der)
                .map_err(|e| bad(format!("CSR {} of the upload: {}", i + 1, e.detail)))?;
            let ips: Vec<String> = csr.ip_addrs.iter().map(IpAddr::to_string).collect();
            self.check_subject(
                profile_name,
                profile,
                &csr.dns_names,
                &ips,
                csr.common_name.as_deref(),
            )
            .map_err(|e| bad(format!("CSR {} of the upload: {}", i + 1, e.detail)))?;
            requests.push(Request {
                id: new_id(),
                status: match profile.approval {
                    Approval::Auto => RequestStatus::Approved,
                    Approval::Manual => RequestStatus::Pending,
                },
                requester: caller.name.clone(),
                profile: profile_name.to_owned(),
                entity_id: entity_id.to_owned(),
                params: RequestParams::Csr {
                    csr_pem: text.clone(),
                },
                batch_id: Some(batch.id.clone()),
                serial: None,
                error: None,
                created_at: now,
                decided_by: None,
                decided_at: None,
                reason: None,
            });
        }
        self.store.insert_requests(Some(&batch), &requests).await?;
        for r in requests
            .iter()
            .filter(|r| r.status == RequestStatus::Approved)
        {
            // A failure is recorded on the request; the others go on.
            if let Err(e) = self.fulfil(r).await {
                tracing::warn!(request = %r.id, error = %e, "batch issuance failed");
            }
        }
        let (list, _) = self
            .store
            .requests(&RequestFilter {
                batch_id: Some(batch.id.clone()),
                limit: MAX_CSRS as u32,
                ..Default::default()
            })
            .await?;
        Ok((batch, list))
    }

    /// Issues the certificate of an approved request and records it;
    /// a failure moves the request to failed with the reason.
    async fn fulfil(&self, request: &Request) -> Result<String> {
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

    async fn sign_for(&self, request: &Request) -> Result<String> {
        let profile = self.profile(&request.profile)?;
        let now = self.now();
        let backdate = secs(self.app.ra.settings.backdate);
        let (spki, key_kind, key_pkcs8, ids, cn, ttl, auto_renew) = match &request.params {
            RequestParams::Issue {
                names,
                ip_addresses,
                common_name,
                key_type,
                key_size,
                ttl,
                auto_renew,
            } => {
                let spec = KeySpec::parse(key_type, *key_size).map_err(|e| bad(e.to_string()))?;
                // RSA key generation takes up to seconds: off the async workers.
                let key = tokio::task::spawn_blocking(move || keys::generate(spec))
                    .await
                    .map_err(Error::internal)?
                    .map_err(|e| Error::internal(e.to_string()))?;
                let kind = match spec {
                    KeySpec::Rsa(bits) => PublicKeyKind::Rsa {
                        bits: bits as usize,
                    },
                    KeySpec::Ec(256) => PublicKeyKind::EcdsaP256,
                    KeySpec::Ec(_) => PublicKeyKind::EcdsaP384,
                };
                (
                    key.subject_public_key_info(),
                    kind,
                    Some(key.serialize_der()),
                    self.identifiers(names, ip_addresses)?,
                    common_name.clone(),
                    *ttl,
                    *auto_renew,
                )
            }
            RequestParams::Csr { csr_pem } => {
                let blocks = pem_blocks(csr_pem, "CERTIFICATE REQUEST")?;
                let (der, _) = blocks
                    .first()
                    .ok_or_else(|| Error::internal("stored CSR without a PEM block"))?;
                let csr = crate::ca::csr::parse_and_verify(der)?;
                let ips: Vec<String> = csr.ip_addrs.iter().map(IpAddr::to_string).collect();
                (
                    csr.spki_der.clone(),
                    csr.key_kind,
                    None,
                    self.identifiers(&csr.dns_names, &ips)?,
                    csr.common_name.clone(),
                    None,
                    false,
                )
            }
        };
        let validity = ttl
            .map(|t| t as i64)
            .unwrap_or(secs(profile.validity))
            .min(secs(profile.validity));
        let not_before = now - backdate;
        let not_after = not_before + validity - 1;
        let to_time =
            |t: Timestamp| time::OffsetDateTime::from_unix_timestamp(t).map_err(Error::internal);
        let leaf_profile = LeafProfile {
            common_name: true,
            server_auth: profile
                .extended_key_usages
                .iter()
                .any(|e| e == "serverAuth"),
            client_auth: profile
                .extended_key_usages
                .iter()
                .any(|e| e == "clientAuth"),
            rsa_key_encipherment: true,
        };
        // Checked when the request came in; checked again here, the one
        // place every service certificate is signed.
        if leaf_profile.server_auth && ids.is_empty() {
            return Err(bad(
                "a serverAuth certificate needs at least one name or IP address",
            ));
        }
        let issued = self.app.ra.ca.issue(&LeafRequest {
            spki_der: &spki,
            key_kind,
            identifiers: &ids,
            not_before: to_time(not_before)?,
            not_after: to_time(not_after)?,
            ca_issuers_url: self.app.ra.urls.ca_issuers.as_deref(),
            ocsp_url: self.app.ra.urls.ocsp.as_deref(),
            crl_url: self.app.ra.urls.crl.as_deref(),
            profile: &leaf_profile,
            must_staple: false,
            subject_cn: cn.as_deref(),
        })?;
        let serial = crate::ca::serial_hex(&issued.serial);
        let key_sealed = match (key_pkcs8, profile.archive_keys, &self.kek) {
            (Some(key), true, Some(kek)) => Some(
                kek.seal(&key, serial.as_bytes())
                    .map_err(|e| Error::internal(e.to_string()))?,
            ),
            _ => None,
        };
        let cert = Certificate {
            id: CertId::random(),
            serial: serial.clone(),
            account_id: crate::model::AccountId(crate::store::service::SERVICE_ACCOUNT.to_owned()),
            order_id: None,
            der: issued.der,
            not_before: issued.not_before.unix_timestamp(),
            not_after: issued.not_after.unix_timestamp(),
            issued_at: now,
            revoked: None,
            common_name: cn.or_else(|| ids.first().map(|i| i.value.clone())),
        };
        let meta = ServiceCert {
            serial: serial.clone(),
            entity_id: request.entity_id.clone(),
            profile: request.profile.clone(),
            requester: request.requester.clone(),
            key_sealed,
            auto_renew,
            renewed_to: None,
            request_id: Some(request.id.clone()),
            created_at: now,
        };
        self.store.record_issued(&cert, &meta).await?;
        tracing::info!(serial = %serial, entity = %request.entity_id, profile = %request.profile,
            "service issued");
        Ok(serial)
    }

    /// A request the caller may see.
    pub async fn request_for(&self, caller: &Caller, id: &str) -> Result<Request> {
        let r = self
            .store
            .request(id)
            .await?
            .ok_or_else(|| Error::not_found("no such request"))?;
        if !caller.sees_all() && r.requester != caller.name {
            return Err(Error::not_found("no such request"));
        }
        Ok(r)
    }

    pub async fn requests(
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
    pub async fn approve(&self, caller: &Caller, id: &str) -> Result<Request> {
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
    pub async fn reject(&self, caller: &Caller, id: &str, reason: &str) -> Result<Request> {
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

    /// Certificates the caller may see: all for admins and agents, the
    /// service certificates they requested for requesters.
    pub async fn certificates(
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
    pub async fn certificate(&self, caller: &Caller, serial: &str) -> Result<CertRow> {
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
    pub async fn revoke(&self, caller: &Caller, serial: &str, reason: &str) -> Result<CertRow> {
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
        self.app.ra.revoke_by_operator(&cert.serial, reason).await?;
        // The webhooks hear of it from the revocation events (see
        // `announce_revocations`), like every other revocation.
        self.certificate(caller, &cert.serial).await
    }

    /// Renews a service certificate inside its profile's window: a new
    /// certificate (new serial, and a new key when the server made the
    /// old one), then the old one revoked as superseded.
    pub async fn renew(&self, caller: &Caller, serial: &str) -> Result<CertRow> {
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
            .app
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

    /// POST /certs/{serial}/download-token: a single-use token for one
    /// download, valid `download_token_lifetime`.
    pub async fn download_token(
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
        let expires = self.now() + secs(self.config.download_token_lifetime);
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now();
        grants.retain(|_, g| g.expires > now);
        let mine = grants.values().filter(|g| g.caller == caller.name);
        let (held, for_cert) = mine.fold((0, 0), |(all, this), g| {
            (all + 1, this + usize::from(g.serial == cert.serial))
        });
        let lifetime = self.config.download_token_lifetime.as_secs();
        if for_cert >= MAX_GRANTS_PER_CERT {
            return Err(Error::new(
                ErrorKind::RateLimited,
                format!(
                    "{MAX_GRANTS_PER_CERT} download tokens for this certificate are outstanding; use one, or wait until they expire (at most {lifetime} s)"
                ),
            ));
        }
        if held >= MAX_GRANTS_PER_CALLER {
            return Err(Error::new(
                ErrorKind::RateLimited,
                format!(
                    "you hold {MAX_GRANTS_PER_CALLER} unused download tokens; use them, or wait until they expire (at most {lifetime} s)"
                ),
            ));
        }
        if grants.len() >= MAX_GRANTS {
            return Err(Error::new(
                ErrorKind::RateLimited,
                "too many download tokens outstanding on this server; retry later",
            ));
        }
        grants.insert(
            sha256(token.as_bytes()),
            Grant {
                caller: caller.name.clone(),
                serial: cert.serial,
                format,
                password,
                expires,
                recovery,
            },
        );
        Ok((token, expires))
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
    pub fn download_allowed(&self, serial: &str, token: &str) -> bool {
        let Ok(serial) = normalize_serial(serial) else {
            return false;
        };
        let now = self.now();
        let grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        grants
            .get(&sha256(token.as_bytes()))
            .is_some_and(|g| g.expires > now && g.serial == serial)
    }

    /// GET /certs/{serial}/download?token=…: spends the token.
    pub async fn download(&self, serial: &str, token: &str) -> Result<Download> {
        let serial = normalize_serial(serial)?;
        let grant = {
            let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
            grants.remove(&sha256(token.as_bytes()))
        };
        let now = self.now();
        let grant = grant
            .filter(|g| g.expires > now && g.serial == serial)
            .ok_or_else(|| {
                forbidden("the download token is unknown, used, expired or for another certificate")
            })?;
        let admin = Caller {
            name: String::new(),
            role: Role::Admin,
        };
        let cert = self.certificate(&admin, &serial).await?;
        let ca_chain = self.ca_chain_pem();
        let cert_pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &cert.der)
            .map_err(Error::internal)?;
        let key = self.key_for(&cert, grant.recovery.is_some())?;
        if let Some(id) = &grant.recovery {
            // The recovery is used once: the key goes out with this download.
            if key.is_none()
                || !self
                    .store
                    .move_recovery(
                        id,
                        RecoveryStatus::Approved,
                        RecoveryStatus::Completed,
                        None,
                        now,
                        None,
                    )
                    .await?
            {
                return Err(conflict("the key recovery was already used"));
            }
            tracing::info!(serial = %serial, recovery = %id, "archived key recovered");
        }
        match grant.format {
            Format::Zip => {
                let key_pem = key
                    .as_ref()
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
                let body =
                    package::zip_stored(&files).map_err(|e| Error::internal(e.to_string()))?;
                Ok(Download {
                    file_name: format!("{serial}.zip"),
                    content_type: "application/zip",
                    body,
                })
            }
            Format::Pkcs12 => {
                let key = key.ok_or_else(|| {
                    conflict("the private key of this certificate can no longer be downloaded")
                })?;
                let chain: Vec<Vec<u8>> = self.app.ra.ca.chains()[0]
                    .intermediates_der()
                    .iter()
                    .cloned()
                    .chain(std::iter::once(self.app.ra.ca.root_der().to_vec()))
                    .collect();
                let name = cert.common_name.clone().unwrap_or_else(|| serial.clone());
                let body = package::pkcs12(
                    &cert.der,
                    &chain,
                    &key,
                    &name,
                    grant.password.as_deref().unwrap_or_default(),
                )
                .map_err(|e| Error::internal(e.to_string()))?;
                Ok(Download {
                    file_name: format!("{serial}.p12"),
                    content_type: "application/x-pkcs12",
                    body,
                })
            }
        }
    }

    /// POST /certs/{serial}/recovery: asks for an archived key back; it
    /// needs the profile's number of distinct agent approvals.
    pub async fn recover(&self, caller: &Caller, serial: &str) -> Result<Recovery> {
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
    pub async fn recovery_for(&self, caller: &Caller, id: &str) -> Result<Recovery> {
        let r = self
            .store
            .recovery(id)
            .await?
            .ok_or_else(|| Error::not_found("no such recovery"))?;
        if !caller.sees_all() && r.requester != caller.name {
            return Err(Error::not_found("no such recovery"));
        }
        Ok(r)
    }

    pub async fn recoveries(
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
    pub async fn approve_recovery(&self, caller: &Caller, id: &str) -> Result<Recovery> {
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

    pub async fn reject_recovery(
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

    /// The issued certificates of a batch the caller may see, zipped with
    /// the CA chain.
    pub async fn batch_zip(&self, caller: &Caller, id: &str) -> Result<Download> {
        let batch = self
            .store
            .batch(id)
            .await?
            .filter(|b| caller.sees_all() || b.requester == caller.name)
            .ok_or_else(|| Error::not_found("no such batch"))?;
        let (requests, _) = self
            .store
            .requests(&RequestFilter {
                batch_id: Some(batch.id.clone()),
                limit: MAX_CSRS as u32,
                ..Default::default()
            })
            .await?;
        let admin = Caller {
            name: String::new(),
            role: Role::Admin,
        };
        let mut files: Vec<(String, Vec<u8>)> =
            vec![("ca.pem".to_owned(), self.ca_chain_pem().into_bytes())];
        for serial in requests.iter().filter_map(|r| r.serial.as_ref()) {
            let cert = self.certificate(&admin, serial).await?;
            let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &cert.der)
                .map_err(Error::internal)?;
            files.push((format!("{serial}.pem"), pem.into_bytes()));
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

    /// Announces every revocation of this CA (ACME revokeCert, the
    /// service, renewals' superseded ones) to the webhooks, as
    /// `certificate.revoked`, until the process ends.
    pub fn announce_revocations(self: &Arc<Self>) {
        let Some(events) = &self.app.ra.revocations else {
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

    /// The default chain's intermediates and root, PEM: ca.pem.
    fn ca_chain_pem(&self) -> String {
        let chain = &self.app.ra.ca.chains()[0];
        format!("{}{}", chain.intermediates_pem(), chain.root_pem())
    }

    /// The identifiers for `names` (DNS, wildcards keeping their "*.") and
    /// `ips`, each checked by the CA's identifier policy, the one ACME
    /// orders go through.
    fn identifiers(&self, names: &[String], ips: &[String]) -> Result<Vec<Identifier>> {
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
                self.app
                    .ra
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

    /// Renews every auto-renew certificate in its window; returns how many.
    /// A certificate younger than its window's length is left alone, so a
    /// certificate born inside its window (issued before that was refused)
    /// is renewed at most once per window, never on every pass.
    pub async fn renew_due(&self) -> Result<usize> {
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
}

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

/// A random request or batch id.
fn new_id() -> String {
    crate::model::random_id()
}

/// A serial as stored: lowercase hex, even length, no 0x.
pub fn normalize_serial(s: &str) -> Result<String> {
    let s = s.trim().trim_start_matches("0x").to_ascii_lowercase();
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::not_found(
            "no such certificate (a serial is hexadecimal)",
        ));
    }
    let trimmed = s.trim_start_matches('0');
    let mut out = trimmed.to_owned();
    if out.len() % 2 == 1 {
        out.insert(0, '0');
    }
    Ok(out)
}

/// The DER and PEM text of every `label` block of `pem`.
pub(crate) fn pem_blocks(pem: &str, label: &str) -> Result<Vec<(Vec<u8>, String)>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let Some(stop) = rest[start..].find(&end) else {
            return Err(bad(format!("a {label} block has no END line")));
        };
        let stop = start + stop + end.len();
        let text = &rest[start..stop];
        let (found, der) = der::pem::decode_vec(text.as_bytes())
            .map_err(|e| bad(format!("a {label} block is not valid PEM: {e}")))?;
        if found != label {
            return Err(bad(format!("expected {label}, found {found}")));
        }
        out.push((der, format!("{text}\n")));
        rest = &rest[stop..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_in_any_spelling() {
        for (s, code) in [
            ("keyCompromise", 1),
            ("Key Compromise", 1),
            ("KEY_COMPROMISE", 1),
            ("key-compromise", 1),
            ("superseded", 4),
            ("cessation of operation", 5),
            ("aACompromise", 10),
            ("0", 0),
            ("9", 9),
        ] {
            assert_eq!(parse_reason(s).map(|r| r.code()), Some(code), "{s}");
        }
        for s in ["", "7", "8", "removeFromCRL", "compromised", "11"] {
            assert!(parse_reason(s).is_none(), "{s}");
        }
    }

    #[test]
    fn serials_normalize() {
        assert_eq!(normalize_serial("0x0ABC").unwrap(), "0abc");
        assert_eq!(normalize_serial("4A3F").unwrap(), "4a3f");
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial("").is_err());
    }

    #[test]
    fn entity_ids() {
        assert!(check_entity("fde3263e-70b8-4ce9-9f3c-4a203a0dcdf5").is_ok());
        assert!(check_entity("thing/42@site:a").is_ok());
        assert!(check_entity("").is_err());
        assert!(check_entity("a b").is_err());
        assert!(check_entity(&"a".repeat(129)).is_err());
    }
}

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod test_harness;
