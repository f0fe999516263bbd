//! What several instances sharing one database must agree on, kept in the
//! database rather than in a process: the secret that makes nonces, which
//! nonces were spent, who runs each singleton job, renewal information set
//! by hand, download grants, the revocation epoch and CRL numbers, and the
//! web console's browser sessions (so a browser signed in at one instance
//! is signed in at every other, with no sticky load balancing).
//!
//! SQLite implements it too (one instance owns the file): the state then
//! survives restarts, and one conformance suite checks both backends.

use super::StoreFuture;
use crate::model::service::Caller;
use crate::model::{
    Account, AccountId, Authz, AuthzId, CertId, Certificate, Order, OrderId, Timestamp,
};

/// A record a signed request goes on to read, named by its URL, which
/// [`SharedStore::spend_nonce_reading_account`] reads in the same step as
/// the nonce (on PostgreSQL, in the same statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// As [`crate::store::Store::authz_by_id`].
    Authz(AuthzId),
    /// As [`crate::store::Store::order_with_authzs`].
    Order(OrderId),
    /// As [`crate::store::Store::certificate_by_id`].
    Cert(CertId),
}

/// What a [`Lookup`] read: the record as it stood when the nonce was
/// spent, or None if there is no such record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    Authz(AuthzId, Option<Authz>),
    Order(OrderId, Option<(Order, Vec<Authz>)>),
    Cert(CertId, Option<Certificate>),
}

impl Found {
    /// The authorization read, if this read `id`'s.
    pub(crate) fn authz(self, id: &AuthzId) -> Option<Option<Authz>> {
        match self {
            Found::Authz(read, found) if &read == id => Some(found),
            _ => None,
        }
    }

    /// The order and its authorizations read, if this read `id`'s.
    pub(crate) fn order(self, id: &OrderId) -> Option<Option<(Order, Vec<Authz>)>> {
        match self {
            Found::Order(read, found) if &read == id => Some(found),
            _ => None,
        }
    }

    /// The certificate read, if this read `id`'s.
    pub(crate) fn cert(self, id: &CertId) -> Option<Option<Certificate>> {
        match self {
            Found::Cert(read, found) if &read == id => Some(found),
            _ => None,
        }
    }
}

impl Lookup {
    /// The record this names, read the usual way (for a backend that has
    /// no single step to read it with the nonce).
    pub(crate) async fn read<S: super::Store + ?Sized>(
        &self,
        store: &S,
    ) -> crate::error::Result<Found> {
        Ok(match self {
            Lookup::Authz(id) => Found::Authz(id.clone(), store.authz_by_id(id).await?),
            Lookup::Order(id) => Found::Order(id.clone(), store.order_with_authzs(id).await?),
            Lookup::Cert(id) => Found::Cert(id.clone(), store.certificate_by_id(id).await?),
        })
    }
}

/// The answer of [`SharedStore::spend_nonce_reading_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NonceSpent {
    /// The nonce was fresh (and is now spent).
    pub fresh: bool,
    /// The account, if it exists.
    pub account: Option<Account>,
    /// What the lookup asked for read, if one was asked.
    pub found: Option<Found>,
}

/// A download grant as stored: what a single-use download token allows.
/// The token itself is never stored, only its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredGrant {
    /// Who asked for it (the API token's name).
    pub caller: String,
    /// Lowercase hex serial.
    pub serial: String,
    /// "zip" or "pkcs12".
    pub format: String,
    /// The PKCS#12 password, sealed with the service's key-encryption key.
    pub password_sealed: Option<Vec<u8>>,
    /// Seconds since the Unix epoch.
    pub expires: Timestamp,
    /// The approved key recovery this download completes.
    pub recovery: Option<String>,
}

/// The bounds [`SharedStore::hold_grant`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrantLimits {
    pub per_cert: u64,
    pub per_caller: u64,
    pub total: u64,
}

/// Whether a grant was kept, or which bound refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantHold {
    Held,
    PerCert,
    PerCaller,
    Full,
}

/// A console session as stored, under the SHA-256 digest of its id (the id,
/// the browser's cookie, never reaches the database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSession {
    /// Who signed in (a service token's name and role; never the token).
    pub caller: Caller,
    /// The synchronizer token every state-changing form carries.
    pub csrf: String,
    /// Seconds since the Unix epoch.
    pub created: Timestamp,
    /// Seconds since the Unix epoch: the last request of the session.
    pub last_seen: Timestamp,
    /// The one-shot message of the next page.
    pub flash: Option<StoredFlash>,
    /// The unexpired pending downloads, oldest first.
    pub downloads: Vec<StoredDownload>,
}

/// A console session's one-shot message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredFlash {
    /// An error (true) or a success.
    pub failed: bool,
    pub text: String,
}

/// A download token a console session asked for, until used or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredDownload {
    /// Lowercase hex serial: one pending download per certificate.
    pub serial: String,
    /// "zip" or "pkcs12".
    pub format: String,
    /// Seconds since the Unix epoch.
    pub expires: Timestamp,
    /// Whether it completes a key recovery.
    pub recovery: bool,
    /// The download token, sealed by the console under a key derived from
    /// the session id: opaque bytes here, useless to a database reader.
    pub token_sealed: Vec<u8>,
}

/// The bounds of console sessions: each lives at most `lifetime` seconds
/// after its creation and until `idle` seconds pass without a request; at
/// most `max` are live at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionLimits {
    pub lifetime: i64,
    pub idle: i64,
    pub max: u64,
}

impl SessionLimits {
    /// A session created at or before this is over at `now`.
    pub(crate) fn born_after(self, now: Timestamp) -> Timestamp {
        now.saturating_sub(self.lifetime)
    }

    /// A session last seen at or before this is over at `now`.
    pub(crate) fn seen_after(self, now: Timestamp) -> Timestamp {
        now.saturating_sub(self.idle)
    }

    /// Whether a session created at `created` and last seen at `last_seen`
    /// is live at `now`.
    pub(crate) fn live(self, created: Timestamp, last_seen: Timestamp, now: Timestamp) -> bool {
        created > self.born_after(now) && last_seen > self.seen_after(now)
    }
}

/// A stored session's caller; an unknown role is a damaged row.
pub(crate) fn session_caller(name: String, role: &str) -> crate::error::Result<Caller> {
    let role = crate::model::service::Role::parse(role).ok_or_else(|| {
        crate::error::Error::internal(format_args!("bad stored session role {role:?}"))
    })?;
    Ok(Caller { name, role })
}

/// The fleet's delegated OCSP responder of one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredResponder {
    /// The responder certificate, DER.
    pub cert: Vec<u8>,
    /// Its private key, sealed by the caller (the store sees bytes).
    pub key_sealed: Vec<u8>,
    /// The certificate's notAfter, seconds since the Unix epoch.
    pub not_after: Timestamp,
}

pub(crate) trait SharedStore: Send + Sync + 'static {
    /// The secret named `name`: `fresh` if none was stored yet (then
    /// stored), else the one stored first. Every instance gets the same.
    fn shared_secret<'a>(&'a self, name: &'a str, fresh: &'a [u8]) -> StoreFuture<'a, Vec<u8>>;

    /// Marks a nonce spent: true exactly once over every instance. The
    /// record is kept until `expires` (milliseconds since the epoch), after
    /// which the nonce is refused by its age anyway.
    fn spend_nonce<'a>(&'a self, nonce: &'a [u8], expires_ms: i64) -> StoreFuture<'a, bool>;
    /// [`SharedStore::spend_nonce`], the account `account` (as
    /// [`crate::store::Store::account_by_id`]) and the record `lookup`
    /// names in one step, so a request signed by a known account costs one
    /// database round trip for all three: whether the nonce was fresh, the
    /// account if it exists, and what the lookup found.
    fn spend_nonce_reading_account<'a>(
        &'a self,
        nonce: &'a [u8],
        expires_ms: i64,
        account: &'a AccountId,
        lookup: Option<&'a Lookup>,
    ) -> StoreFuture<'a, NonceSpent>;
    /// The delegated OCSP responder stored for `issuer`, if any.
    fn ocsp_responder<'a>(&'a self, issuer: &'a str) -> StoreFuture<'a, Option<StoredResponder>>;
    /// Stores `new` as `issuer`'s responder if the stored one is still the
    /// one whose certificate is `replacing` (None: none is stored yet).
    /// True if stored; of concurrent replacements of one responder,
    /// exactly one succeeds.
    fn replace_ocsp_responder<'a>(
        &'a self,
        issuer: &'a str,
        replacing: Option<&'a [u8]>,
        new: &'a StoredResponder,
    ) -> StoreFuture<'a, bool>;
    /// Forgets spent nonces that expired before `now_ms`; how many.
    fn prune_nonces(&self, now_ms: i64) -> StoreFuture<'_, u64>;

    /// Takes or renews the lease of singleton job `job` for `owner` until
    /// `until_ms`: true if `owner` holds it now (it was free, expired at
    /// `now_ms`, or already `owner`'s). At most one owner holds a job.
    fn take_job<'a>(
        &'a self,
        job: &'a str,
        owner: &'a str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'a, bool>;
    /// Gives the lease of `job` back, if `owner` still holds it.
    fn release_job<'a>(&'a self, job: &'a str, owner: &'a str) -> StoreFuture<'a, ()>;

    /// Sets the renewalInfo answer (JSON text) of the certificate `serial`.
    fn set_ari_override<'a>(&'a self, serial: &'a str, answer: &'a str) -> StoreFuture<'a, ()>;
    /// The renewalInfo answer set for `serial`, if any.
    fn ari_override<'a>(&'a self, serial: &'a str) -> StoreFuture<'a, Option<String>>;

    /// Keeps `grant` under `digest` unless a bound in `limits` refuses it
    /// (grants expired at `now` are dropped first and do not count). The
    /// bounds hold under concurrent calls.
    fn hold_grant<'a>(
        &'a self,
        digest: &'a [u8],
        grant: &'a StoredGrant,
        now: Timestamp,
        limits: GrantLimits,
    ) -> StoreFuture<'a, GrantHold>;
    /// Takes (removes) the grant under `digest`: exactly one caller gets it.
    /// An expired grant is removed and not returned.
    fn take_grant<'a>(
        &'a self,
        digest: &'a [u8],
        now: Timestamp,
    ) -> StoreFuture<'a, Option<StoredGrant>>;
    /// The unexpired grant under `digest`, left in place.
    fn peek_grant<'a>(
        &'a self,
        digest: &'a [u8],
        now: Timestamp,
    ) -> StoreFuture<'a, Option<StoredGrant>>;

    /// How many revocations the database has recorded: it grows with every
    /// revocation, whichever instance made it, so a CRL signed before a
    /// revocation can be told stale.
    fn revocation_epoch(&self) -> StoreFuture<'_, i64>;
    /// Allocates the next CRL number of `issuer`: above every number handed
    /// out before, and at least `at_least`. Concurrent callers get
    /// distinct numbers.
    fn next_crl_number<'a>(&'a self, issuer: &'a str, at_least: i64) -> StoreFuture<'a, i64>;

    /// Starts a console session for `caller` under `digest`, created and
    /// last seen at `now`, unless `limits.max` live sessions exist: sessions
    /// over at `now` are removed first and do not count. False when full.
    /// The bound holds under concurrent calls.
    fn create_session<'a>(
        &'a self,
        digest: &'a [u8],
        caller: &'a Caller,
        csrf: &'a str,
        now: Timestamp,
        limits: SessionLimits,
    ) -> StoreFuture<'a, bool>;
    /// The live session under `digest`, touched (last seen `now`), with its
    /// one-shot message taken out: of concurrent callers, exactly one gets
    /// the message. A session over at `now` is removed and not returned.
    /// Downloads expired at `now` are dropped.
    fn session<'a>(
        &'a self,
        digest: &'a [u8],
        now: Timestamp,
        limits: SessionLimits,
    ) -> StoreFuture<'a, Option<StoredSession>>;
    /// Sets the one-shot message of the session under `digest` (if any).
    fn set_session_flash<'a>(
        &'a self,
        digest: &'a [u8],
        flash: &'a StoredFlash,
    ) -> StoreFuture<'a, ()>;
    /// Keeps `download` for the session under `digest`, replacing one for
    /// the same serial; downloads expired at `now` are dropped, then the
    /// oldest ones until at most `max` remain (`max` >= 1). False if there
    /// is no such session.
    fn add_session_download<'a>(
        &'a self,
        digest: &'a [u8],
        download: &'a StoredDownload,
        now: Timestamp,
        max: u64,
    ) -> StoreFuture<'a, bool>;
    /// Takes (removes) the session's pending download of `serial`: exactly
    /// one of concurrent callers gets it. An expired one is removed and not
    /// returned.
    fn take_session_download<'a>(
        &'a self,
        digest: &'a [u8],
        serial: &'a str,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<StoredDownload>>;
    /// Ends the session under `digest`, with its pending downloads.
    fn remove_session<'a>(&'a self, digest: &'a [u8]) -> StoreFuture<'a, ()>;
}

/// Who runs a singleton job (the CRL schedule, the renewal scheduler,
/// webhook delivery): on a database no other instance shares, this
/// process; on a shared one, the instance holding the job's lease, which
/// it renews at every round and which another instance takes over once it
/// expires (its holder died or lost the database).
pub(crate) struct JobLease {
    /// None: the database is this process's alone.
    store: Option<std::sync::Arc<dyn SharedStore>>,
    job: &'static str,
    owner: String,
    ttl_ms: i64,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl JobLease {
    /// The lease of `job` for instance `owner`; `ttl` must exceed the time
    /// between two calls of [`JobLease::hold`] by the job's loop.
    pub(crate) fn new(
        store: Option<std::sync::Arc<dyn SharedStore>>,
        job: &'static str,
        owner: &str,
        ttl: std::time::Duration,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> JobLease {
        JobLease {
            store,
            job,
            owner: owner.to_owned(),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            clock,
        }
    }

    /// Whether this instance runs the job now (taking or renewing the
    /// lease). A database error means no: the round is skipped.
    pub(crate) async fn hold(&self) -> bool {
        let Some(store) = &self.store else {
            return true;
        };
        let now = self.clock.now_ms();
        match store
            .take_job(self.job, &self.owner, now, now.saturating_add(self.ttl_ms))
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(job = self.job, error = %e.cause(), "singleton job lease");
                false
            }
        }
    }
}
