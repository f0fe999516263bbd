//! Registration authority: the business rules of ACME.
//!
//! The HTTP front end hands the RA checked values (a verified JWS's account
//! or key, a parsed payload) and gets back stored records to render. The RA
//! decides what is allowed, derives statuses (`state`), asks the VA to
//! validate and the CA to sign, and writes through the store with
//! conditional updates. It never builds wire errors or URLs.
//!
//! One file per resource, each an `impl Ra` block: accounts (newAccount,
//! account updates, keyChange), orders (newOrder, `replaces`, profiles,
//! the orders list), authz (authorizations and challenges), finalize
//! (issuance and the certificate resource), revocation (revokeCert and
//! operator revocation) and renewal (ARI's renewalInfo). This file holds
//! `Ra` itself, its construction, and the helpers they share; what the
//! front ends may ask of the RA beyond the ACME operations is a method
//! here, never a field.

pub(crate) mod ari;
pub(crate) mod issue;
pub(crate) mod policy;
pub(crate) mod profile;
pub(crate) mod state;

mod accounts;
mod authz;
mod finalize;
mod orders;
mod renewal;
mod revocation;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::ca::{Ca, Chain};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::jose::eab::MacKey;
use crate::model::{Account, AccountId, Certificate, Timestamp};
use crate::protocol::Identifier;
use crate::revocation::RevocationEvents;
use crate::store::shared::SharedStore;
use crate::store::Store;
use crate::va::Va;

pub(crate) use finalize::Finalized;
use policy::Policy;
use profile::Profile;

/// Settings the rules need, taken from the config once.
#[derive(Debug, Clone)]
pub(crate) struct RaSettings {
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

/// The registration authority. Its collaborators are its own: the front
/// ends call its methods, they do not reach through it.
///
pub(crate) struct Ra {
    store: Arc<dyn Store>,
    ca: Arc<Ca>,
    va: Arc<Va>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    settings: RaSettings,
    /// URLs written into certificates.
    urls: CertUrls,
    /// Told of every revocation (CRLs are signed again).
    revocations: Option<Arc<RevocationEvents>>,
    /// The state instances share: renewalInfo answers set by hand.
    shared: Arc<dyn SharedStore>,
    /// This instance's name, on the finalize leases it takes.
    instance: String,
    /// CAA checker, when validation is real and CAA is on.
    caa: Option<Arc<crate::va::caa::CaaChecker>>,
    /// Orders finalized and finalize latency are counted here.
    metrics: Arc<crate::metrics::Metrics>,
    /// Rate limits (`[rate_limits]`), when enabled.
    limits: Option<Arc<crate::ratelimit::Limiter>>,
    /// Chaos knobs (docs/CHAOS.md): deferred finalize, short-lived
    /// authorizations.
    chaos: Arc<crate::chaos::Chaos>,
}

/// What an [`Ra`] is made of: the collaborators and settings the server
/// assembles ([`Ra::new`]).
pub(crate) struct RaParts {
    /// Where accounts, orders, authorizations and certificates are kept.
    pub store: Arc<dyn Store>,
    /// The state instances share (renewalInfo answers set by hand).
    pub shared: Arc<dyn SharedStore>,
    /// This instance's name among those sharing the database (the owner
    /// of its finalize leases).
    pub instance: String,
    /// Signs certificates; its chains are served with them.
    pub ca: Arc<Ca>,
    /// Validates challenges (inline or queued).
    pub va: Arc<Va>,
    /// The time every rule is decided at.
    pub clock: Arc<dyn Clock>,
    /// The identifier policy of orders and of every other issuance.
    pub policy: Policy,
    /// Settings from the config.
    pub settings: RaSettings,
    /// URLs written into certificates.
    pub urls: CertUrls,
    /// Told of every revocation (CRLs are signed again).
    pub revocations: Option<Arc<RevocationEvents>>,
    /// CAA checker, when validation is real and CAA is on.
    pub caa: Option<Arc<crate::va::caa::CaaChecker>>,
    /// Orders finalized and finalize latency are counted here.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Rate limits (`[rate_limits]`), when enabled.
    pub limits: Option<Arc<crate::ratelimit::Limiter>>,
    /// Chaos knobs (docs/CHAOS.md).
    pub chaos: Arc<crate::chaos::Chaos>,
}

/// URLs written into certificates.
#[derive(Debug, Clone, Default)]
pub(crate) struct CertUrls {
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

impl Ra {
    /// An RA over `parts`, with no renewalInfo answers set.
    pub(crate) fn new(parts: RaParts) -> Ra {
        let RaParts {
            store,
            shared,
            instance,
            ca,
            va,
            clock,
            policy,
            settings,
            urls,
            revocations,
            caa,
            metrics,
            limits,
            chaos,
        } = parts;
        Ra {
            store,
            ca,
            va,
            clock,
            policy,
            settings,
            urls,
            revocations,
            shared,
            instance,
            caa,
            metrics,
            limits,
            chaos,
        }
    }

    /// The lifetime of a new authorization: the configured one, or chaos's
    /// shorter one.
    fn pending_authz_lifetime(&self) -> Duration {
        match self.chaos.authz_lifetime() {
            Some(short) => short.min(self.settings.pending_authz_lifetime),
            None => self.settings.pending_authz_lifetime,
        }
    }

    /// The time by the RA's clock: statuses the front end derives for a
    /// response are derived at it.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Gives back a rate-limit spend whose request failed.
    async fn refund(&self, spent: Option<crate::ratelimit::Spent>) {
        if let (Some(limits), Some(spent)) = (&self.limits, spent) {
            limits.refund(spent).await;
        }
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

    /// Checks one identifier against the CA's identifier policy (syntax,
    /// blocked domains, IP identifiers allowed): the same rule for ACME
    /// orders and for every other way a name reaches a certificate.
    pub(crate) fn check_identifier(&self, ident: &Identifier) -> Result<policy::CheckedIdentifier> {
        self.policy.check(ident)
    }

    /// The URL of an account, as clients know it.
    pub(crate) fn account_uri(&self, id: &AccountId) -> String {
        format!(
            "{}{}",
            self.settings.base_url,
            crate::protocol::paths::account(id)
        )
    }

    /// The CA's chains: the default one first, then the alternates (a
    /// certificate's download links them; Pebble's management API serves
    /// their roots and keys).
    pub(crate) fn chains(&self) -> &[Chain] {
        self.ca.chains()
    }

    /// The issuing intermediate in DER (the AIA caIssuers target).
    pub(crate) fn intermediate_der(&self) -> &[u8] {
        self.ca.intermediate_der()
    }

    /// Any certificate of this CA by serial (lower-case hex, as stored),
    /// whoever ordered it: Pebble's management status lookup.
    pub(crate) async fn certificate_by_serial(&self, serial: &str) -> Result<Option<Certificate>> {
        self.store.certificate_by_serial(serial).await
    }
}

/// What the unit tests of the front ends reach directly: the store (to age
/// or inspect rows), the CA (to check what was served) and the clock.
#[cfg(test)]
impl Ra {
    pub(crate) fn store_for_tests(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn ca_for_tests(&self) -> &Arc<Ca> {
        &self.ca
    }

    pub(crate) fn clock_for_tests(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
