//! [`RateLimitStore`] on SQLite: spends and refunds are writer ops (one
//! transaction each, batched with other writes like any op); reads use the
//! reader pool.
//!
//! A spend is three statements: delete the buckets that are full again
//! (TAT passed; indexed), create missing buckets with TAT 0, then one
//! UPDATE over all of the request's buckets whose WHERE clause holds only
//! if none of them lacks room. SQLite evaluates that uncorrelated
//! `NOT EXISTS` once, against the table as it was before the update, so
//! the spend is all-or-nothing: its row count is either the number of
//! buckets or 0.

use sqlx::Row;

use super::ops::Op;
use super::sql::Sql;
use super::{db_err, SqliteStore};
use crate::error::Result;
use crate::model::{AccountId, Timestamp};
use crate::store::ratelimit::{BucketSpend, RateLimitStore};
use crate::store::StoreFuture;

/// A write of the rate limiter.
#[derive(Debug, Clone)]
pub(super) enum RateLimitOp {
    Spend(Vec<BucketSpend>, i64),
    Refund(Vec<BucketSpend>, i64),
    /// A name set's hash, its certificate's notAfter, and now.
    NameSet(String, Timestamp, Timestamp),
}

/// `CASE k WHEN 'key' THEN increment … END`
fn increment_case(sql: &mut Sql, spends: &[BucketSpend]) -> Result<()> {
    sql.raw("CASE k");
    for s in spends {
        sql.raw(" WHEN ")
            .text(&s.key)?
            .raw(" THEN ")
            .int(s.increment);
    }
    sql.raw(" END");
    Ok(())
}

/// `('k1','k2',…)`
fn key_list(sql: &mut Sql, spends: &[BucketSpend]) -> Result<()> {
    for (i, s) in spends.iter().enumerate() {
        sql.raw(if i == 0 { "(" } else { "," }).text(&s.key)?;
    }
    sql.raw(")");
    Ok(())
}

impl RateLimitOp {
    /// Appends the op's statements; returns how many.
    pub(super) fn render(&self, sql: &mut Sql) -> Result<usize> {
        match self {
            RateLimitOp::Spend(spends, now) if !spends.is_empty() => {
                sql.raw("DELETE FROM rate_buckets WHERE tat <= ")
                    .int(*now)
                    .raw(";\nINSERT OR IGNORE INTO rate_buckets (k, tat) VALUES ");
                for (i, s) in spends.iter().enumerate() {
                    sql.raw(if i == 0 { "(" } else { ",(" })
                        .text(&s.key)?
                        .raw(", 0)");
                }
                sql.raw(";\nUPDATE rate_buckets SET tat = max(tat, ")
                    .int(*now)
                    .raw(") + ");
                increment_case(sql, spends)?;
                sql.raw(" WHERE k IN ");
                key_list(sql, spends)?;
                sql.raw(" AND NOT EXISTS (SELECT 1 FROM rate_buckets b WHERE ");
                for (i, s) in spends.iter().enumerate() {
                    sql.raw(if i == 0 { "(b.k = " } else { " OR (b.k = " })
                        .text(&s.key)?
                        .raw(" AND max(b.tat, ")
                        .int(*now)
                        .raw(") + ")
                        .int(s.increment)
                        .raw(" - ")
                        .int(*now)
                        .raw(" > ")
                        .int(s.burst_offset)
                        .raw(")");
                }
                sql.raw(");\n");
                Ok(3)
            }
            RateLimitOp::Refund(spends, now) if !spends.is_empty() => {
                sql.raw("UPDATE rate_buckets SET tat = max(tat - ");
                increment_case(sql, spends)?;
                sql.raw(", ").int(*now).raw(") WHERE k IN ");
                key_list(sql, spends)?;
                sql.raw(";\n");
                Ok(1)
            }
            RateLimitOp::NameSet(hash, not_after, now) => {
                sql.raw("DELETE FROM issued_name_sets WHERE not_after < ")
                    .int(*now)
                    .raw(";\nINSERT INTO issued_name_sets (hash, not_after) VALUES (")
                    .text(hash)?
                    .raw(", ")
                    .int(*not_after)
                    .raw(
                        ") ON CONFLICT(hash) DO UPDATE SET not_after = \
                         max(not_after, excluded.not_after);\n",
                    );
                Ok(2)
            }
            RateLimitOp::Spend(..) | RateLimitOp::Refund(..) => {
                sql.raw("SELECT 1;\n");
                Ok(1)
            }
        }
    }
}

impl RateLimitStore for SqliteStore {
    fn spend_buckets<'a>(
        &'a self,
        spends: &'a [BucketSpend],
        now_ms: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if spends.is_empty() {
                return Ok(true);
            }
            let op = Op::RateLimit(RateLimitOp::Spend(spends.to_vec(), now_ms));
            Ok(self.writer.write(op).await? == spends.len() as u64)
        })
    }

    fn refund_buckets<'a>(&'a self, spends: &'a [BucketSpend], now_ms: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if !spends.is_empty() {
                let op = Op::RateLimit(RateLimitOp::Refund(spends.to_vec(), now_ms));
                self.writer.write(op).await?;
            }
            Ok(())
        })
    }

    fn bucket_tats<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<i64>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let row = sqlx::query("SELECT tat FROM rate_buckets WHERE k = ?")
                    .bind(key)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(db_err)?;
                out.push(match row {
                    Some(r) => Some(r.try_get::<i64, _>("tat").map_err(db_err)?),
                    None => None,
                });
            }
            Ok(out)
        })
    }

    fn name_set_issued<'a>(&'a self, hash: &'a str, now: Timestamp) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM issued_name_sets WHERE hash = ? AND not_after >= ?",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.reader)
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
            let op = Op::RateLimit(RateLimitOp::NameSet(hash.to_owned(), not_after, now));
            self.writer.write(op).await?;
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
                 WHERE account_id = ? AND state = 'pending' AND expires > ?",
            )
            .bind(&account.0)
            .bind(now)
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)?;
            let n: i64 = row.try_get("n").map_err(db_err)?;
            let first: Option<i64> = row.try_get("first").map_err(db_err)?;
            Ok((u64::try_from(n).unwrap_or(0), first))
        })
    }
}
