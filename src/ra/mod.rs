//! Registration authority: the business rules of ACME.
//!
//! The HTTP front end hands the RA checked values (a verified JWS's account
//! or key, a parsed payload) and gets back stored records to render. The RA
//! decides what is allowed, derives statuses (`state`), asks the VA to
//! validate and the CA to sign, and writes through the store with
//! conditional updates. It never builds wire errors or URLs.

pub mod ari;
pub mod issue;
pub mod policy;
pub mod profile;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::ca::csr::{self, CheckedCsr};
use crate::ca::Ca;
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::jose::eab::{self, MacKey};
use crate::jose::{Jwk, Jws, KeyRef};
use crate::model::{
    Account, AccountId, AccountStatus, Authz, AuthzId, AuthzState, CertId, Certificate,
    ChallengeType, Order, OrderId, Revocation, RevocationReason, Timestamp,
};
use crate::protocol::{Identifier, IdentifierType, KeyChange, NewAccount, NewOrder};
use crate::revocation::RevocationEvents;
use crate::store::{AccountCreation, OrderListEntry, Store};
use crate::va::{Va, ValidationRequest};

use ari::CertIdent;
use policy::Policy;
use profile::Profile;
use state::{order_status, OrderStatus};

/// Settings the rules need, taken from the config once.
#[derive(Debug, Clone)]
pub struct RaSettings {
    pub order_lifetime: Duration,
    pub pending_authz_lifetime: Duration,
    pub valid_authz_lifetime: Duration,
    pub backdate: Duration,
    /// Certificate profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// The profile of orders that name none.
    pub default_profile: String,
    /// Orders that name no profile get one at random (Pebble).
    pub random_profile: bool,
    /// Percentage of new orders that reuse an account's valid
    /// authorizations.
    pub authz_reuse: u8,
    /// newAccount needs an external account binding.
    pub eab_required: bool,
    /// External account binding MAC keys by key id.
    pub eab_keys: HashMap<String, MacKey>,
    /// Smallest RSA key accepted for a new account key, keyChange's new key
    /// and a CSR (2048; `acme-ca pebble`: 1024, as Pebble).
    pub min_rsa_bits: usize,
    /// One key id may bind many accounts (nothing is recorded).
    pub eab_key_reuse: bool,
    /// The certificate URL still serves a revoked certificate.
    pub serve_revoked_certificates: bool,
    /// How long one finalize may hold an order before others may retry.
    pub finalize_lease: Duration,
    pub orders_per_page: u32,
    /// Whether newAccount needs termsOfServiceAgreed (set when the
    /// directory shows terms of service).
    pub require_tos: bool,
    /// Base URL of the server as clients know it (for account URLs in CAA
    /// `accounturi` checks).
    pub base_url: String,
    /// Finalize checks CAA again for authorizations validated longer ago.
    pub caa_recheck_after: Duration,
    /// Offer dns-account-01 for DNS names.
    pub dns_account_01: bool,
    /// Offer dns-persist-01 for DNS names.
    pub dns_persist_01: bool,
    /// The issuer domain names dns-persist-01 challenges list.
    pub issuer_domain_names: Vec<String>,
}

/// The most contacts an account may list.
pub const MAX_CONTACTS: usize = 10;

/// The registration authority.
pub struct Ra {
    pub store: Arc<dyn Store>,
    pub ca: Arc<Ca>,
    pub va: Arc<Va>,
    pub clock: Arc<dyn Clock>,
    pub policy: Policy,
    pub settings: RaSettings,
    /// URLs written into certificates.
    pub urls: CertUrls,
    /// Told of every revocation (CRLs are signed again).
    pub revocations: Option<Arc<RevocationEvents>>,
    /// renewalInfo answers set by hand for certificates (Pebble's
    /// management `/set-renewal-info/`), by serial; in memory, bounded.
    pub ari_overrides: std::sync::Mutex<HashMap<String, serde_json::Value>>,
    /// CAA checker, when validation is real and CAA is on.
    pub caa: Option<Arc<crate::va::caa::CaaChecker>>,
    /// Orders finalized and finalize latency are counted here.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Rate limits (`[rate_limits]`), when enabled.
    pub limits: Option<Arc<crate::ratelimit::Limiter>>,
    /// Chaos knobs (docs/CHAOS.md): deferred finalize, short-lived
    /// authorizations.
    pub chaos: Arc<crate::chaos::Chaos>,
}

/// What finalize did.
#[derive(Debug)]
pub enum Finalized {
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
pub struct DeferredFinalize {
    account: Account,
    order: Order,
    csr: CheckedCsr,
    /// How long to wait before signing.
    pub delay: std::time::Duration,
}

/// URLs written into certificates.
#[derive(Debug, Clone, Default)]
pub struct CertUrls {
    /// AIA caIssuers: where the intermediate is served.
    pub ca_issuers: Option<String>,
    /// AIA OCSP, for profiles with OCSP.
    pub ocsp: Option<String>,
    /// cRLDistributionPoints, for profiles with CRLs.
    pub crl: Option<String>,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Checks an account's contact URLs (RFC 8555 §7.3: "mailto:" URLs; other
/// schemes are unsupportedContact, bad addresses invalidContact).
pub fn check_contacts(contacts: &[String]) -> Result<()> {
    if contacts.len() > MAX_CONTACTS {
        return Err(Error::new(
            ErrorKind::InvalidContact,
            format!("at most {MAX_CONTACTS} contacts are allowed"),
        ));
    }
    for c in contacts {
        let Some(addr) = c.strip_prefix("mailto:") else {
            let scheme = c.split(':').next().unwrap_or("");
            return Err(Error::new(
                ErrorKind::UnsupportedContact,
                format!(
                    "contact scheme {:?} is not supported; use mailto:",
                    scheme.chars().take(20).collect::<String>()
                ),
            ));
        };
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidContact,
                format!(
                    "contact {:?} is invalid: {why}",
                    c.chars().take(100).collect::<String>()
                ),
            )
        };
        if addr.contains(['?', ',', '%', ' ', '<', '>', '"']) || addr.len() > 254 {
            return Err(invalid(
                "one plain e-mail address per mailto: URL, without header fields",
            ));
        }
        // CR/LF (header injection), NUL, TAB, DEL and every other control
        // character; one '@' only.
        if addr.chars().any(char::is_control) {
            return Err(invalid("control characters are not allowed"));
        }
        if addr.matches('@').count() != 1 {
            return Err(invalid("an address has exactly one '@'"));
        }
        let Some((local, domain)) = addr.rsplit_once('@') else {
            return Err(invalid("missing '@'"));
        };
        if local.is_empty() || local.len() > 64 || !local.is_ascii() {
            return Err(invalid("bad local part"));
        }
        if policy::check_dns_name(domain).is_err() || domain.starts_with("*.") {
            return Err(invalid("the domain is not a valid DNS name"));
        }
    }
    Ok(())
}

impl Ra {
    /// The lifetime of a new authorization: the configured one, or chaos's
    /// shorter one.
    fn pending_authz_lifetime(&self) -> Duration {
        match self.chaos.authz_lifetime() {
            Some(short) => short.min(self.settings.pending_authz_lifetime),
            None => self.settings.pending_authz_lifetime,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// newAccount (RFC 8555 §7.3): returns the account and whether it was
    /// created by this request. `url` is the newAccount URL the request was
    /// posted to (an external account binding must name it); `client` the
    /// address it came from, for `new_accounts_per_ip` (None: not counted).
    pub async fn new_account(
        &self,
        jwk: &Jwk,
        url: &str,
        req: &NewAccount,
        client: Option<std::net::IpAddr>,
    ) -> Result<(Account, bool)> {
        if let Some(existing) = self.store.account_by_thumbprint(jwk.thumbprint()).await? {
            return Ok((existing, false));
        }
        if req.only_return_existing == Some(true) {
            return Err(Error::new(
                ErrorKind::AccountDoesNotExist,
                "no account exists with this key",
            ));
        }
        jwk.check_rsa_size(self.settings.min_rsa_bits)?;
        let contact = req.contact.clone().unwrap_or_default();
        check_contacts(&contact)?;
        let tos_agreed = req.terms_of_service_agreed == Some(true);
        if self.settings.require_tos && !tos_agreed {
            return Err(Error::malformed(
                "the terms of service must be agreed to (termsOfServiceAgreed: true)",
            ));
        }
        // RFC 8555 §7.3.4. Without configured keys a binding is ignored.
        let eab_kid = match &req.external_account_binding {
            Some(binding) if !self.settings.eab_keys.is_empty() => Some(
                eab::verify_binding(binding, jwk, url, |kid| self.settings.eab_keys.get(kid))?.kid,
            ),
            _ if self.settings.eab_required => {
                return Err(Error::new(
                    ErrorKind::ExternalAccountRequired,
                    "this server requires an external account binding (externalAccountBinding)",
                ))
            }
            _ => None,
        };
        let account = Account {
            id: AccountId::random(),
            status: AccountStatus::Valid,
            jwk: jwk.canonical_json().to_owned(),
            thumbprint: jwk.thumbprint().to_owned(),
            contact,
            tos_agreed,
            created_at: self.now(),
        };
        // Only a request that would create an account spends from its
        // address's bucket; one that creates none gets it back.
        let spent = match (&self.limits, client) {
            (Some(limits), Some(ip)) => {
                Some(limits.spend(&limits.new_account_transactions(ip)).await?)
            }
            _ => None,
        };
        // With reuse, a key id is checked but not bound (Pebble).
        let bind_kid = eab_kid.as_deref().filter(|_| !self.settings.eab_key_reuse);
        let created = self.store.create_account(&account, bind_kid).await;
        if !matches!(created, Ok(AccountCreation::Created)) {
            self.refund(spent).await;
        }
        match created? {
            AccountCreation::Created => Ok((account, true)),
            AccountCreation::Existing(a) => Ok((a, false)),
            AccountCreation::KeyIdTaken => Err(Error::unauthorized(
                "this external account key is already bound to another account",
            )),
        }
    }

    /// Gives back a rate-limit spend whose request failed.
    async fn refund(&self, spent: Option<crate::ratelimit::Spent>) {
        if let (Some(limits), Some(spent)) = (&self.limits, spent) {
            limits.refund(spent).await;
        }
    }

    /// newOrder's rate limits (as Boulder checks them): the certificate
    /// limits and failed validations are checked, not spent (certificates
    /// are spent at finalize), the pending-authorization ceiling is
    /// checked, then one new order is spent from the account's bucket.
    async fn order_limits(
        &self,
        account: &Account,
        identifiers: &[Identifier],
        new_authzs: usize,
    ) -> Result<Option<crate::ratelimit::Spent>> {
        let Some(limits) = &self.limits else {
            return Ok(None);
        };
        let mut checks = limits
            .issuance_transactions(&account.id, identifiers)
            .await?;
        checks.extend(
            identifiers
                .iter()
                .map(|i| limits.failed_validation_transaction(&account.id, i)),
        );
        limits.check(&checks).await?;
        limits
            .check_pending_authorizations(&account.id, new_authzs)
            .await?;
        Ok(Some(
            limits
                .spend(&limits.new_order_transactions(&account.id))
                .await?,
        ))
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

    /// Counts a failed validation against its account and hostname
    /// (`failed_validations`). Successes do not refill the bucket, as in
    /// Boulder: it refills with time only.
    pub async fn validation_failed(&self, authz: &Authz) {
        if let Some(limits) = &self.limits {
            limits.validation_failed(authz).await;
        }
    }

    /// The account a `kid` names, if it exists and is valid (RFC 8555 §6.2).
    pub async fn account_for_kid(&self, id: &AccountId) -> Result<Account> {
        let account = self.store.account_by_id(id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::AccountDoesNotExist,
                "the account in kid does not exist",
            )
        })?;
        if account.status != AccountStatus::Valid {
            return Err(Error::unauthorized(format!(
                "the account is {}",
                account.status.as_str()
            )));
        }
        Ok(account)
    }

    /// Account update or deactivation (RFC 8555 §7.3.2, §7.3.6).
    pub async fn update_account(
        &self,
        account: &Account,
        contact: Option<&[String]>,
        status: Option<&str>,
    ) -> Result<Account> {
        match status {
            None | Some("valid") => {}
            Some("deactivated") => {
                if !self.store.deactivate_account(&account.id).await? {
                    return Err(Error::unauthorized("the account is not valid"));
                }
            }
            Some(other) => {
                return Err(Error::malformed(format!(
                    "an account's status can only be set to \"deactivated\", not {:?}",
                    other.chars().take(30).collect::<String>()
                )))
            }
        }
        if let (Some(contact), None | Some("valid")) = (contact, status) {
            check_contacts(contact)?;
            if !self
                .store
                .update_account_contact(&account.id, contact)
                .await?
            {
                return Err(Error::unauthorized("the account is not valid"));
            }
        }
        self.store
            .account_by_id(&account.id)
            .await?
            .ok_or_else(|| Error::internal("account vanished during update"))
    }

    /// The profile named `name`, or the default one (a random one under
    /// `random_profile`).
    pub fn profile(&self, name: Option<&str>) -> Result<&Profile> {
        if name.is_none() && self.settings.random_profile && !self.settings.profiles.is_empty() {
            let mut b = [0u8; 4];
            crate::rand::fill(&mut b);
            let i = u32::from_le_bytes(b) as usize % self.settings.profiles.len();
            if let Some(p) = self.settings.profiles.values().nth(i) {
                return Ok(p);
            }
        }
        let name = name.unwrap_or(&self.settings.default_profile);
        self.settings.profiles.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidProfile,
                format!(
                    "there is no profile {:?}; the directory lists the profiles ({})",
                    name.chars().take(64).collect::<String>(),
                    self.settings
                        .profiles
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// newOrder (RFC 8555 §7.4): an authorization per identifier, new or
    /// (under `authz_reuse`) one of the account's still-valid ones.
    pub async fn new_order(
        &self,
        account: &Account,
        req: &NewOrder,
    ) -> Result<(Order, Vec<Authz>)> {
        let checked = self.policy.check_order(&req.identifiers)?;
        let profile = self.profile(req.profile.as_deref())?;
        profile.check_identifiers(&req.identifiers)?;
        let now = self.now();
        let (not_before, not_after) = self.requested_validity(req, profile, now)?;
        let order_id = OrderId::random();
        let replaces = match &req.replaces {
            Some(text) => Some(self.check_replaces(account, text, &checked).await?),
            None => None,
        };
        let authz_expires = now + secs(self.pending_authz_lifetime());
        let reuse = crate::rand::percent_chance(self.settings.authz_reuse);
        // A reused authorization must stay valid a while: a day, or half
        // its lifetime if that is shorter.
        let min_expires = now + secs(self.settings.valid_authz_lifetime / 2).min(86400);
        let mut authzs = Vec::with_capacity(checked.len());
        let mut new_authzs = Vec::with_capacity(checked.len());
        for c in &checked {
            let identifier = c.authz_identifier();
            if reuse {
                if let Some(a) = self
                    .store
                    .reusable_authz(&account.id, &identifier, c.wildcard, min_expires)
                    .await?
                {
                    // draft-ietf-acme-dns-persist caps the reuse of its
                    // validations at the record's TTL, which the VA does not
                    // learn: as Boulder, such authorizations are not reused
                    // (the record, still there, validates a new one at once).
                    let persisted = a
                        .attempt
                        .as_ref()
                        .is_some_and(|t| t.kind == ChallengeType::DnsPersist01);
                    if !persisted {
                        authzs.push(a);
                        continue;
                    }
                }
            }
            let offered = self.offered_challenges(&identifier, c.wildcard);
            let authz = new_authz(account, identifier, c.wildcard, offered, authz_expires, now);
            new_authzs.push(authz.clone());
            authzs.push(authz);
        }
        let order = Order {
            id: order_id,
            account_id: account.id.clone(),
            identifiers: checked.into_iter().map(|c| c.identifier).collect(),
            authz_ids: authzs.iter().map(|a| a.id.clone()).collect(),
            // An order never outlives its authorizations (§7.1.3).
            expires: authzs
                .iter()
                .map(|a| a.expires)
                .fold(now + secs(self.settings.order_lifetime), i64::min),
            not_before,
            not_after,
            processing_until: None,
            cert_id: None,
            error: None,
            created_at: now,
            profile: profile.name.clone(),
            replaces: replaces.as_ref().map(|r| r.text.clone()),
        };
        let spent = self
            .order_limits(account, &order.identifiers, new_authzs.len())
            .await?;
        let claim = replaces.as_ref().map(|r| (&r.cert, r.expected.as_ref()));
        let created = self.store.create_order(&order, &new_authzs, claim).await;
        if !matches!(created, Ok(true)) {
            self.refund(spent).await;
        }
        if !created? {
            // Another order took the replacement since it was checked.
            return Err(already_replaced());
        }
        Ok((order, authzs))
    }

    /// RFC 9773 §5: `replaces` must name a certificate of this account that
    /// shares an identifier with the new order and that no order which is
    /// not invalid replaces. The order's creation then claims it, if its
    /// replacement is still the one seen here.
    async fn check_replaces(
        &self,
        account: &Account,
        text: &str,
        checked: &[policy::CheckedIdentifier],
    ) -> Result<ReplaceCheck> {
        let ident = CertIdent::parse(text)?;
        let (cert, parsed) = self.certificate_for_ari(&ident).await?.ok_or_else(|| {
            Error::malformed("replaces: this CA issued no certificate with that identifier")
        })?;
        if cert.account_id != account.id {
            return Err(Error::unauthorized(
                "replaces: the certificate belongs to another account",
            ));
        }
        let names = csr::certificate_identifiers(&parsed)?;
        if !checked.iter().any(|c| names.contains(&c.identifier)) {
            return Err(Error::malformed(
                "replaces: the certificate shares no identifier with this order",
            ));
        }
        let current = self.store.replacement_of(&cert.id).await?;
        if let Some(previous) = &current {
            // The replacing order is written with the claim, in one
            // transaction: it exists.
            if let Some(o) = self.store.order_by_id(previous).await? {
                let authzs = self.store.authzs_by_ids(&o.authz_ids).await?;
                if order_status(&o, &authzs, self.now()) != OrderStatus::Invalid {
                    return Err(already_replaced());
                }
            }
        }
        Ok(ReplaceCheck {
            text: ident.encode(),
            cert: cert.id,
            expected: current,
        })
    }

    /// The certificate an ARI identifier names (its serial, issued by the
    /// key its authority key identifier names), with its parsed form.
    async fn certificate_for_ari(
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

    /// renewalInfo (RFC 9773 §4): the suggested window of the certificate
    /// `text` names, or the answer set for it by hand; notFound when this
    /// CA did not issue it.
    pub async fn renewal_info(&self, text: &str) -> Result<ari::Answer> {
        let ident = CertIdent::parse(text)?;
        let (cert, _) = self.certificate_for_ari(&ident).await?.ok_or_else(|| {
            Error::not_found("this CA issued no certificate with that identifier")
        })?;
        if let Some(v) = self.ari_overrides().get(&cert.serial) {
            return Ok(ari::Answer::Set(v.clone()));
        }
        Ok(ari::Answer::Window(ari::window(
            cert.not_before,
            cert.not_after,
            cert.revoked.map(|r| r.at),
        )))
    }

    fn ari_overrides(&self) -> std::sync::MutexGuard<'_, HashMap<String, serde_json::Value>> {
        self.ari_overrides
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the renewalInfo answer of the certificate `pem` (one of ours)
    /// to `answer`, which must be a renewalInfo object with a
    /// suggestedWindow of two RFC 3339 times, start not after end (an
    /// instant window is what certbot's ARI test sets, and Pebble takes it).
    pub async fn set_renewal_info(&self, pem: &str, answer: serde_json::Value) -> Result<()> {
        const MAX_OVERRIDES: usize = 10_000;
        // Kept in memory: at most 10,000 answers of at most 4 KiB.
        const MAX_ANSWER: usize = 4096;
        if answer.to_string().len() > MAX_ANSWER {
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
        let mut map = self.ari_overrides();
        if map.len() >= MAX_OVERRIDES && !map.contains_key(&serial) {
            return Err(Error::new(
                ErrorKind::RateLimited,
                "too many renewal info answers are set",
            ));
        }
        map.insert(serial, answer);
        Ok(())
    }

    /// The challenge types a new authorization for `identifier` offers:
    /// for a wildcard the DNS-based types only (RFC 8555 §7.1.3, and the
    /// dns-account-01 and dns-persist-01 drafts), for an IP address http-01
    /// and tls-alpn-01 (RFC 8738 §7), else every type; the two draft types
    /// only where the config enables them.
    pub fn offered_challenges(
        &self,
        identifier: &Identifier,
        wildcard: bool,
    ) -> Vec<ChallengeType> {
        ChallengeType::ALL
            .into_iter()
            .filter(|t| match t {
                ChallengeType::DnsAccount01 => self.settings.dns_account_01,
                ChallengeType::DnsPersist01 => self.settings.dns_persist_01,
                _ => true,
            })
            .filter(|t| match identifier.kind {
                IdentifierType::Ip => {
                    matches!(t, ChallengeType::Http01 | ChallengeType::TlsAlpn01)
                }
                IdentifierType::Dns => !wildcard || t.validates_wildcards(),
                IdentifierType::Unknown => false,
            })
            .collect()
    }

    /// The issuer domain names dns-persist-01 challenges list.
    pub fn issuer_domain_names(&self) -> &[String] {
        &self.settings.issuer_domain_names
    }

    /// newAuthz (RFC 8555 §7.4.1): a pending authorization for one DNS name
    /// or IP address, outside any order.
    pub async fn new_authz(&self, account: &Account, identifier: &Identifier) -> Result<Authz> {
        if identifier.kind == IdentifierType::Dns && identifier.value.starts_with("*.") {
            return Err(Error::new(
                ErrorKind::RejectedIdentifier,
                "pre-authorization is not available for wildcard names; order them instead",
            ));
        }
        let c = self.policy.check(identifier)?;
        let identifier = c.authz_identifier();
        let offered = self.offered_challenges(&identifier, false);
        let now = self.now();
        let expires = now + secs(self.pending_authz_lifetime());
        let authz = new_authz(account, identifier, false, offered, expires, now);
        self.store.create_authz(&authz).await?;
        Ok(authz)
    }

    fn requested_validity(
        &self,
        req: &NewOrder,
        profile: &Profile,
        now: Timestamp,
    ) -> Result<(Option<Timestamp>, Option<Timestamp>)> {
        let parse = |field: &str, v: &Option<String>| -> Result<Option<Timestamp>> {
            v.as_deref()
                .map(|s| {
                    crate::clock::parse_rfc3339(s).ok_or_else(|| {
                        Error::malformed(format!("{field} is not an RFC 3339 date-time"))
                    })
                })
                .transpose()
        };
        let nb = parse("notBefore", &req.not_before)?;
        let na = parse("notAfter", &req.not_after)?;
        let start = nb.unwrap_or(now);
        let end = na.unwrap_or(start + secs(profile.validity) - 1);
        if nb.is_some_and(|t| t < now - secs(self.settings.backdate).max(3600)) {
            return Err(Error::malformed(
                "notBefore is in the past; certificates are not backdated on request",
            ));
        }
        if end <= start {
            return Err(Error::malformed("notAfter must be later than notBefore"));
        }
        if end <= now {
            return Err(Error::malformed("notAfter is in the past"));
        }
        if nb.is_some_and(|t| t > now + secs(self.settings.order_lifetime)) {
            return Err(Error::malformed("notBefore is too far in the future"));
        }
        // Both ends count (RFC 5280 §4.1.2.5): the span is end - start + 1.
        if end - start + 1 > secs(profile.validity) {
            return Err(Error::malformed(format!(
                "the requested validity is longer than the {:?} profile's maximum of {} seconds",
                profile.name,
                profile.validity.as_secs()
            )));
        }
        Ok((nb, na))
    }

    fn check_owner(account: &Account, owner: &AccountId, what: &str) -> Result<()> {
        if &account.id == owner {
            Ok(())
        } else {
            Err(Error::unauthorized(format!(
                "this {what} belongs to another account"
            )))
        }
    }

    /// An order of `account` with its authorizations.
    pub async fn order(&self, account: &Account, id: &OrderId) -> Result<(Order, Vec<Authz>)> {
        let order = self
            .store
            .order_by_id(id)
            .await?
            .ok_or_else(|| Error::not_found("no such order"))?;
        Self::check_owner(account, &order.account_id, "order")?;
        let authzs = self.store.authzs_by_ids(&order.authz_ids).await?;
        Ok((order, authzs))
    }

    /// An authorization of `account`.
    pub async fn authz(&self, account: &Account, id: &AuthzId) -> Result<Authz> {
        let authz = self
            .store
            .authz_by_id(id)
            .await?
            .ok_or_else(|| Error::not_found("no such authorization"))?;
        Self::check_owner(account, &authz.account_id, "authorization")?;
        Ok(authz)
    }

    /// Authorization deactivation (RFC 8555 §7.5.2): a pending or valid
    /// authorization of `account` becomes deactivated.
    pub async fn deactivate_authz(&self, account: &Account, id: &AuthzId) -> Result<Authz> {
        let authz = self.authz(account, id).await?;
        let status = state::authz_status(&authz, self.now());
        let live = matches!(
            status,
            state::AuthzStatus::Pending | state::AuthzStatus::Valid
        );
        if !live || !self.store.deactivate_authz(&authz.id).await? {
            return Err(Error::malformed(format!(
                "only a pending or valid authorization can be deactivated; this one is {}",
                status.as_str()
            )));
        }
        self.authz(account, id).await
    }

    /// POST to a challenge (RFC 8555 §7.5.1): starts its validation if the
    /// authorization is pending and has no attempt yet; otherwise the
    /// challenge is returned as it stands.
    ///
    /// `account_url` is the account's URL as the client was given it (the
    /// request's base, which is `server.external_url` when set): the
    /// dns-account-01 label and the dns-persist-01 `accounturi` are derived
    /// from the URL the client knows.
    pub async fn answer_challenge(
        &self,
        account: &Account,
        jwk: &Jwk,
        id: &AuthzId,
        kind: ChallengeType,
        account_url: String,
    ) -> Result<Authz> {
        let authz = self.authz(account, id).await?;
        if !authz.offered.contains(&kind) {
            return Err(Error::not_found("no such challenge"));
        }
        let now = self.now();
        if authz.state != AuthzState::Pending || authz.attempt.is_some() || now >= authz.expires {
            // Already settled or in progress: report it as it is (the
            // client polls the authorization anyway).
            return Ok(authz);
        }
        let reservation = self.va.reserve()?;
        let req = ValidationRequest {
            key_authorization: crate::jose::key_authorization(&authz.token, jwk),
            account_uri: account_url,
            authz,
            kind,
        };
        if self.va.is_inline() {
            let result = self.va.validate_now(&req).await;
            if self
                .store
                .start_challenge(&req.authz.id, kind, now, Some(&result))
                .await?
            {
                self.va.recorded_inline(&result);
                if result.state == crate::model::AttemptState::Invalid {
                    self.validation_failed(&req.authz).await;
                }
            }
        } else if self
            .store
            .start_challenge(&req.authz.id, kind, now, None)
            .await?
        {
            self.va.submit(reservation, req);
        }
        self.store
            .authz_by_id(id)
            .await?
            .ok_or_else(|| Error::internal("authorization vanished"))
    }

    /// finalize (RFC 8555 §7.4): checks the CSR against a ready order, takes
    /// the order's lease, signs, and commits certificate and order together.
    /// With chaos's `finalize_delay`, the order is left processing and the
    /// signing is handed back as a job ([`Finalized::Later`]).
    pub async fn finalize(
        &self,
        account: &Account,
        id: &OrderId,
        csr_der: &[u8],
    ) -> Result<Finalized> {
        use crate::metrics::FinalizeOutcome;
        let started = std::time::Instant::now();
        let result = self.finalize_inner(account, id, csr_der).await;
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
    pub async fn finish_finalize(&self, job: Box<DeferredFinalize>) {
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
            Ok(()) => FinalizeOutcome::Issued,
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
    ) -> Result<Finalized> {
        let (order, authzs) = self.order(account, id).await?;
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
        if !self.store.claim_order(&order.id, now, lease_until).await? {
            return Err(Error::new(
                ErrorKind::OrderNotReady,
                "the order is being finalized by another request",
            ));
        }
        if let Some(delay) = delay {
            // Chaos: answer processing now, sign later.
            let (order, authzs) = self.order(account, id).await?;
            let job = Box::new(DeferredFinalize {
                account: account.clone(),
                order: order.clone(),
                csr,
                delay,
            });
            return Ok(Finalized::Later { order, authzs, job });
        }
        self.issue_claimed(account, &order, profile, &csr, now)
            .await?;
        let (order, authzs) = self.order(account, id).await?;
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
    ) -> Result<()> {
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
        if let Err(e) = issued {
            if let Err(release) = self.store.release_order(&order.id).await {
                tracing::warn!(order = %order.id, error = %release, "could not release lease");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn issue(
        &self,
        account: &Account,
        order: &Order,
        profile: &Profile,
        csr: &CheckedCsr,
        now: Timestamp,
    ) -> Result<()> {
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
        Ok(())
    }

    /// keyChange (RFC 8555 §7.3.5), after the outer JWS was verified with
    /// `account`'s key: checks the inner JWS and moves the account to the
    /// new key. `Ok(Err(id))`: the new key already belongs to account `id`
    /// (the caller answers 409 with its URL).
    pub async fn change_key(
        &self,
        account: &Account,
        account_url: &str,
        outer_url: &str,
        inner: &Jws,
    ) -> Result<std::result::Result<Account, AccountId>> {
        let KeyRef::Jwk(new_key) = &inner.protected.key else {
            return Err(Error::malformed(
                "the inner JWS of keyChange must carry the new key as \"jwk\"",
            ));
        };
        if inner.protected.nonce.is_some() {
            return Err(Error::malformed(
                "the inner JWS of keyChange must not have a nonce",
            ));
        }
        if inner.protected.url != outer_url {
            return Err(Error::malformed(
                "the inner and outer JWS of keyChange must have the same url",
            ));
        }
        inner
            .verify(new_key)
            .map_err(|e| Error::new(e.kind, format!("inner JWS of keyChange: {}", e.detail)))?;
        let req: KeyChange = serde_json::from_slice(inner.payload())
            .map_err(|e| Error::malformed(format!("the keyChange payload is not valid: {e}")))?;
        if req.account != account_url {
            return Err(Error::unauthorized(
                "the keyChange payload names another account than the outer JWS's kid",
            ));
        }
        new_key.check_rsa_size(self.settings.min_rsa_bits)?;
        let old_key = Jwk::from_json(&req.old_key)?;
        if old_key.canonical_json() != account.jwk {
            return Err(Error::unauthorized(
                "oldKey in the keyChange payload is not the account's current key",
            ));
        }
        if new_key.thumbprint() == account.thumbprint {
            return Err(Error::malformed("the new key is the account's current key"));
        }
        if let Some(other) = self
            .store
            .account_by_thumbprint(new_key.thumbprint())
            .await?
        {
            return Ok(Err(other.id));
        }
        let changed = self
            .store
            .change_account_key(
                &account.id,
                &account.thumbprint,
                new_key.canonical_json(),
                new_key.thumbprint(),
            )
            .await?;
        if !changed {
            // A concurrent request took the key, or changed or deactivated
            // the account.
            if let Some(other) = self
                .store
                .account_by_thumbprint(new_key.thumbprint())
                .await?
            {
                return Ok(Err(other.id));
            }
            return Err(Error::unauthorized(
                "the account changed while its key was being replaced",
            ));
        }
        let updated = self
            .store
            .account_by_id(&account.id)
            .await?
            .ok_or_else(|| Error::internal("account vanished during key change"))?;
        tracing::info!(account = %account.id, "account key changed");
        Ok(Ok(updated))
    }

    /// revokeCert (RFC 8555 §7.6). `by_account`: the request was signed by
    /// this account; `by_key`: signed with this key (`jwk`), which must be
    /// the certificate's.
    pub async fn revoke(
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
    pub async fn revoke_by_operator(&self, serial: &str, reason: RevocationReason) -> Result<()> {
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

    /// Checks one identifier against the CA's identifier policy (syntax,
    /// blocked domains, IP identifiers allowed): the same rule for ACME
    /// orders and for every other way a name reaches a certificate.
    pub fn check_identifier(&self, ident: &Identifier) -> Result<policy::CheckedIdentifier> {
        self.policy.check(ident)
    }

    /// The URL of an account, as clients know it.
    pub fn account_uri(&self, id: &AccountId) -> String {
        format!(
            "{}{}",
            self.settings.base_url,
            crate::http::paths::account(id)
        )
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

    /// A certificate of `account`.
    pub async fn certificate(&self, account: &Account, id: &CertId) -> Result<Certificate> {
        let cert = self
            .store
            .certificate_by_id(id)
            .await?
            .ok_or_else(|| Error::not_found("no such certificate"))?;
        Self::check_owner(account, &cert.account_id, "certificate")?;
        if cert.revoked.is_some() && !self.settings.serve_revoked_certificates {
            return Err(Error::not_found("this certificate has been revoked"));
        }
        Ok(cert)
    }

    /// One page of the account's orders: entries plus the cursor of the next
    /// page, if there is one.
    pub async fn orders_page(
        &self,
        account: &Account,
        after: i64,
    ) -> Result<(Vec<OrderListEntry>, Option<i64>)> {
        let per_page = self.settings.orders_per_page;
        let mut entries = self
            .store
            .orders_for_account(&account.id, after, per_page + 1, self.now())
            .await?;
        let next = if entries.len() > per_page as usize {
            entries.truncate(per_page as usize);
            entries.last().map(|e| e.cursor)
        } else {
            None
        };
        Ok((entries, next))
    }
}

/// A `replaces` that passed the checks: the certificate, and the
/// replacement it had then (which the order's creation swaps out).
struct ReplaceCheck {
    text: String,
    cert: CertId,
    expected: Option<OrderId>,
}

fn already_replaced() -> Error {
    Error::new(
        ErrorKind::AlreadyReplaced,
        "replaces: another order already replaces this certificate",
    )
}

fn parse_stored(der: &[u8]) -> Result<x509_cert::Certificate> {
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(der)
        .map_err(|e| Error::internal(format_args!("stored certificate: {e}")))
}

/// A new pending authorization.
fn new_authz(
    account: &Account,
    identifier: Identifier,
    wildcard: bool,
    offered: Vec<ChallengeType>,
    expires: Timestamp,
    now: Timestamp,
) -> Authz {
    let mut token = [0u8; 32];
    crate::rand::fill(&mut token);
    Authz {
        id: AuthzId::random(),
        account_id: account.id.clone(),
        identifier,
        wildcard,
        state: AuthzState::Pending,
        expires,
        token: crate::jose::b64::encode(token),
        offered,
        attempt: None,
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts() {
        let ok = |c: &str| check_contacts(&[c.to_string()]);
        assert!(ok("mailto:admin@example.com").is_ok());
        assert_eq!(
            ok("tel:+1555").unwrap_err().kind,
            ErrorKind::UnsupportedContact
        );
        assert_eq!(
            ok("admin@example.com").unwrap_err().kind,
            ErrorKind::UnsupportedContact
        );
        for bad in [
            "mailto:",
            "mailto:admin",
            "mailto:@example.com",
            "mailto:a@b",
            "mailto:a@example..com",
            "mailto:a@example.com?subject=x",
            "mailto:a@example.com,b@example.com",
            "mailto:a b@example.com",
            // Header injection and other control characters; two '@'.
            "mailto:a\r\nBcc:victim@evil.com\r\n@example.com",
            "mailto:a\0b@example.com",
            "mailto:a\tb@example.com",
            "mailto:a\x7fb@example.com",
            "mailto:a@example.com\n",
            "mailto:a@b@example.com",
        ] {
            assert_eq!(
                ok(bad).unwrap_err().kind,
                ErrorKind::InvalidContact,
                "{bad}"
            );
        }
        let many: Vec<String> = (0..11)
            .map(|i| format!("mailto:a{i}@example.com"))
            .collect();
        assert_eq!(
            check_contacts(&many).unwrap_err().kind,
            ErrorKind::InvalidContact
        );
    }
}
