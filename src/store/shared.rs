//! What several instances sharing one database must agree on, kept in the
//! database rather than in a process: the secret that makes nonces, which
//! nonces were spent, who runs each singleton job, renewal information set
//! by hand, download grants, and the revocation epoch and CRL numbers.
//!
//! SQLite implements it too (one instance owns the file): the state then
//! survives restarts, and one conformance suite checks both backends.

use super::StoreFuture;
use crate::model::Timestamp;

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

pub(crate) trait SharedStore: Send + Sync + 'static {
    /// The secret named `name`: `fresh` if none was stored yet (then
    /// stored), else the one stored first. Every instance gets the same.
    fn shared_secret<'a>(&'a self, name: &'a str, fresh: &'a [u8]) -> StoreFuture<'a, Vec<u8>>;

    /// Marks a nonce spent: true exactly once over every instance. The
    /// record is kept until `expires` (milliseconds since the epoch), after
    /// which the nonce is refused by its age anyway.
    fn spend_nonce<'a>(&'a self, nonce: &'a [u8], expires_ms: i64) -> StoreFuture<'a, bool>;
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
