//! [`RateLimitStore`] on PostgreSQL.
//!
//! A spend is one READ COMMITTED transaction that decides with the buckets
//! locked, so concurrent spends from any number of instances serialise per
//! bucket and a spend over several buckets is all-or-nothing:
//! 1. one upsert creates the missing buckets (TAT 0, i.e. full) and locks
//!    every bucket of the spend (`ON CONFLICT DO UPDATE` locks the row and
//!    returns its newest committed TAT, not a snapshot's). Keys are taken in
//!    sorted order, so two spends over overlapping keys cannot deadlock;
//! 2. the room check is done here on the locked values;
//! 3. with room everywhere, one statement moves each TAT to max(TAT, now) +
//!    increment and deletes other buckets that are full again; without, no
//!    TAT moves and the full buckets (any it just made among them) are
//!    deleted;
//! 4. commit, which releases the locks.
//!
//! The clean-up takes only buckets no other transaction holds (`FOR UPDATE
//! SKIP LOCKED`), so it never waits and never adds to a lock cycle; a bucket
//! it skips is deleted by a later spend (a full bucket and no bucket mean
//! the same thing to every reader).

use std::collections::HashMap;

use sqlx::{PgConnection, Row};

use super::{db_err, PgStore};
use crate::error::{Error, Result};
use crate::model::{AccountId, Timestamp};
use crate::store::ratelimit::{BucketSpend, RateLimitStore};
use crate::store::StoreFuture;

/// The spends sorted by key (the lock order), refusing a key named twice:
/// the limiter merges a bucket's costs before spending.
fn sorted(spends: &[BucketSpend]) -> Result<Vec<&BucketSpend>> {
    let mut list: Vec<&BucketSpend> = spends.iter().collect();
    list.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    if list.windows(2).any(|w| w[0].key == w[1].key) {
        return Err(Error::internal("a rate-limit spend names a bucket twice"));
    }
    Ok(list)
}

/// Creates the missing buckets of `keys` (sorted) and locks them all, in
/// that order; their TATs by key.
async fn lock_buckets(conn: &mut PgConnection, keys: &[String]) -> Result<HashMap<String, i64>> {
    // `unnest WITH ORDINALITY ... ORDER BY` keeps the rows (and so the row
    // locks) in the array's order.
    let rows = sqlx::query(
        "INSERT INTO rate_buckets (k, tat) \
         SELECT k, 0 FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i) ORDER BY i \
         ON CONFLICT (k) DO UPDATE SET tat = rate_buckets.tat RETURNING k, tat",
    )
    .bind(keys)
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("k").map_err(db_err)?,
                r.try_get("tat").map_err(db_err)?,
            ))
        })
        .collect()
}

/// The new TATs of a spend at `now`, or None if a bucket lacks room.
fn new_tats(
    spends: &[&BucketSpend],
    tats: &HashMap<String, i64>,
    now: i64,
) -> Result<Option<Vec<i64>>> {
    let mut out = Vec::with_capacity(spends.len());
    for s in spends {
        let tat = *tats
            .get(&s.key)
            .ok_or_else(|| Error::internal("a locked rate-limit bucket went missing"))?;
        let next = tat.max(now).saturating_add(s.increment);
        if next.saturating_sub(now) > s.burst_offset {
            return Ok(None);
        }
        out.push(next);
    }
    Ok(Some(out))
}

/// Sets the TATs of the spend's (locked) buckets, and deletes the other
/// buckets full by `now` that nobody holds.
async fn commit_spend(
    conn: &mut PgConnection,
    keys: &[String],
    tats: &[i64],
    now: i64,
) -> Result<()> {
    sqlx::query(
        "WITH gone AS (DELETE FROM rate_buckets WHERE k IN \
           (SELECT k FROM rate_buckets WHERE tat <= $3 AND k <> ALL($1::text[]) \
            FOR UPDATE SKIP LOCKED)) \
         UPDATE rate_buckets b SET tat = v.tat \
         FROM unnest($1::text[], $2::bigint[]) AS v(k, tat) WHERE b.k = v.k",
    )
    .bind(keys)
    .bind(tats)
    .bind(now)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// A refused spend changes no TAT: it deletes the buckets full by `now`
/// that nobody else holds, including the ones it created.
async fn clean_up(conn: &mut PgConnection, now: i64) -> Result<()> {
    sqlx::query(
        "DELETE FROM rate_buckets WHERE k IN \
         (SELECT k FROM rate_buckets WHERE tat <= $1 FOR UPDATE SKIP LOCKED)",
    )
    .bind(now)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

impl RateLimitStore for PgStore {
    fn spend_buckets<'a>(
        &'a self,
        spends: &'a [BucketSpend],
        now_ms: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if spends.is_empty() {
                return Ok(true);
            }
            let spends = sorted(spends)?;
            let keys: Vec<String> = spends.iter().map(|s| s.key.clone()).collect();
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            let tats = lock_buckets(&mut tx, &keys).await?;
            let spent = match new_tats(&spends, &tats, now_ms)? {
                Some(next) => {
                    commit_spend(&mut tx, &keys, &next, now_ms).await?;
                    true
                }
                None => {
                    clean_up(&mut tx, now_ms).await?;
                    false
                }
            };
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(spent)
        })
    }

    fn refund_buckets<'a>(&'a self, spends: &'a [BucketSpend], now_ms: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if spends.is_empty() {
                return Ok(());
            }
            let spends = sorted(spends)?;
            let keys: Vec<String> = spends.iter().map(|s| s.key.clone()).collect();
            let increments: Vec<i64> = spends.iter().map(|s| s.increment).collect();
            // Lock in key order first (as a spend does), then move each TAT
            // back, never below now; a missing bucket is full already.
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            sqlx::query(
                "SELECT 1 FROM rate_buckets WHERE k = ANY($1) ORDER BY k COLLATE \"C\" FOR UPDATE",
            )
            .bind(&keys)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "UPDATE rate_buckets b SET tat = GREATEST(b.tat - v.inc, $3) \
                 FROM unnest($1::text[], $2::bigint[]) AS v(k, inc) WHERE b.k = v.k",
            )
            .bind(&keys)
            .bind(&increments)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(())
        })
    }

    fn bucket_tats<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<i64>>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT k, tat FROM rate_buckets WHERE k = ANY($1)")
                .bind(keys)
                .fetch_all(self.pool())
                .await
                .map_err(db_err)?;
            let mut found = HashMap::with_capacity(rows.len());
            for r in &rows {
                let k: String = r.try_get("k").map_err(db_err)?;
                let tat: i64 = r.try_get("tat").map_err(db_err)?;
                found.insert(k, tat);
            }
            Ok(keys.iter().map(|k| found.get(k).copied()).collect())
        })
    }

    fn name_set_issued<'a>(&'a self, hash: &'a str, now: Timestamp) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let found: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM issued_name_sets WHERE hash = $1 AND not_after >= $2",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?;
            Ok(found.is_some())
        })
    }

    fn record_name_set<'a>(
        &'a self,
        hash: &'a str,
        not_after: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // The upsert keeps the later notAfter; the clean-up skips rows
            // another transaction holds (no waiting, no deadlock) and the
            // set just recorded (kept even if already expired, as SQLite
            // does by deleting first).
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO issued_name_sets (hash, not_after) VALUES ($1, $2) \
                 ON CONFLICT (hash) DO UPDATE SET \
                 not_after = GREATEST(issued_name_sets.not_after, excluded.not_after)",
            )
            .bind(hash)
            .bind(not_after)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "DELETE FROM issued_name_sets WHERE hash IN \
                 (SELECT hash FROM issued_name_sets WHERE not_after < $1 AND hash <> $2 \
                  FOR UPDATE SKIP LOCKED)",
            )
            .bind(now)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(())
        })
    }

    fn pending_authz_count<'a>(
        &'a self,
        account: &'a AccountId,
        now: Timestamp,
    ) -> StoreFuture<'a, (u64, Option<Timestamp>)> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT count(*) AS n, min(expires) AS first FROM authzs \
                 WHERE account_id = $1 AND state = 'pending' AND expires > $2",
            )
            .bind(&account.0)
            .bind(now)
            .fetch_one(self.pool())
            .await
            .map_err(db_err)?;
            let n: i64 = row.try_get("n").map_err(db_err)?;
            let first: Option<i64> = row.try_get("first").map_err(db_err)?;
            Ok((u64::try_from(n).unwrap_or(0), first))
        })
    }
}
