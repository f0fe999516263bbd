//! Persistence of rate limits: one GCRA bucket per limit and key, holding
//! its theoretical arrival time (TAT, milliseconds since the Unix epoch).
//! The buckets live in the store, not in the process, so every instance
//! that shares a database enforces the same limits.

use super::StoreFuture;
use crate::model::{AccountId, Timestamp};

/// One bucket to spend from (or refund to), all times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BucketSpend {
    /// `<limit>:<key>`, at most a few hundred bytes.
    pub key: String,
    /// What this spend adds to the TAT: cost × emission interval.
    pub increment: i64,
    /// How far the TAT may run ahead of now after the spend: burst ×
    /// emission interval.
    pub burst_offset: i64,
}

/// The rate-limit buckets.
pub(crate) trait RateLimitStore: Send + Sync + 'static {
    /// In one transaction: if every bucket has room at `now_ms`
    /// (max(TAT, now) + increment − now ≤ burst_offset), moves each TAT to
    /// max(TAT, now) + increment and returns true; otherwise changes none
    /// and returns false. Buckets whose TAT has passed (full ones) are
    /// deleted on the way, so the table holds only buckets in use.
    fn spend_buckets<'a>(&'a self, spends: &'a [BucketSpend], now_ms: i64)
        -> StoreFuture<'a, bool>;
    /// Gives spends back: each TAT moves back by its increment, never
    /// below `now_ms` (a bucket cannot be fuller than full).
    fn refund_buckets<'a>(&'a self, spends: &'a [BucketSpend], now_ms: i64) -> StoreFuture<'a, ()>;
    /// The TATs of `keys`, in the order asked (None: no bucket, i.e. full).
    fn bucket_tats<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<i64>>>;
    /// Whether a certificate for the exact set of names `hash` (a SHA-256
    /// of the normalised names) was issued and is unexpired at `now`.
    fn name_set_issued<'a>(&'a self, hash: &'a str, now: Timestamp) -> StoreFuture<'a, bool>;
    /// Records a certificate for the name set `hash`, valid until
    /// `not_after`; name sets whose certificates all expired before `now`
    /// are forgotten on the way.
    fn record_name_set<'a>(
        &'a self,
        hash: &'a str,
        not_after: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()>;
    /// How many pending, unexpired authorizations `account` has, and when
    /// the first of them expires.
    fn pending_authz_count<'a>(
        &'a self,
        account: &'a AccountId,
        now: Timestamp,
    ) -> StoreFuture<'a, (u64, Option<Timestamp>)>;
}
