//! [`SharedStore`] on SQLite. Writes are writer ops (batched like any
//! other); an operation that reads, decides and writes (a grant held within
//! its bounds, a grant taken, a CRL number allocated) runs under
//! [`SqliteStore::exclusive`]: one process owns the database file (the data
//! directory's lock), so a process-wide lock makes it atomic.

use sqlx::Row;

use super::ops::Op;
use super::sql::Sql;
use super::{db_err, SqliteStore};
use crate::error::Result;
use crate::model::Timestamp;
use crate::store::shared::{GrantHold, GrantLimits, SharedStore, StoredGrant};
use crate::store::StoreFuture;

/// A write of [`SharedStore`].
#[derive(Debug, Clone)]
pub(super) enum SharedOp {
    Secret(String, Vec<u8>),
    SpendNonce(Vec<u8>, i64),
    PruneNonces(i64),
    TakeJob {
        job: String,
        owner: String,
        now_ms: i64,
        until_ms: i64,
    },
    ReleaseJob(String, String),
    AriOverride(String, String),
    /// Drops expired grants, then inserts this one.
    HoldGrant(Vec<u8>, StoredGrant, Timestamp),
    DropGrant(Vec<u8>),
    CrlNumber(String, i64),
}

impl SharedOp {
    /// Appends the op's statements; returns how many.
    pub(super) fn render(&self, sql: &mut Sql) -> Result<usize> {
        match self {
            SharedOp::Secret(name, value) => {
                sql.raw("INSERT OR IGNORE INTO shared_secrets (name, value) VALUES (")
                    .text(name)?
                    .raw(", ")
                    .blob(value)
                    .raw(");\n");
            }
            SharedOp::SpendNonce(nonce, expires) => {
                sql.raw("INSERT OR IGNORE INTO spent_nonces (nonce, expires) VALUES (")
                    .blob(nonce)
                    .raw(", ")
                    .int(*expires)
                    .raw(");\n");
            }
            SharedOp::PruneNonces(now) => {
                sql.raw("DELETE FROM spent_nonces WHERE expires < ")
                    .int(*now)
                    .raw(";\n");
            }
            SharedOp::TakeJob {
                job,
                owner,
                now_ms,
                until_ms,
            } => take_job(sql, job, owner, *now_ms, *until_ms)?,
            SharedOp::ReleaseJob(job, owner) => {
                sql.raw("DELETE FROM job_leases WHERE job = ")
                    .text(job)?
                    .raw(" AND owner = ")
                    .text(owner)?
                    .raw(";\n");
            }
            SharedOp::AriOverride(serial, answer) => {
                sql.raw("INSERT INTO ari_overrides (serial, answer) VALUES (")
                    .text(serial)?
                    .raw(", ")
                    .text(answer)?
                    .raw(") ON CONFLICT(serial) DO UPDATE SET answer = excluded.answer;\n");
            }
            SharedOp::HoldGrant(digest, g, now) => {
                hold_grant(sql, digest, g, *now)?;
                return Ok(2);
            }
            SharedOp::DropGrant(digest) => {
                sql.raw("DELETE FROM download_grants WHERE digest = ")
                    .blob(digest)
                    .raw(";\n");
            }
            SharedOp::CrlNumber(issuer, at_least) => {
                sql.raw("INSERT INTO crl_numbers (issuer, number) VALUES (")
                    .text(issuer)?
                    .raw(", ")
                    .int(*at_least)
                    .raw(
                        ") ON CONFLICT(issuer) DO UPDATE SET \
                         number = max(crl_numbers.number + 1, excluded.number);\n",
                    );
            }
        }
        Ok(1)
    }
}

/// Takes or renews a job's lease: the upsert updates the row only when the
/// lease is the owner's already or has expired.
fn take_job(sql: &mut Sql, job: &str, owner: &str, now_ms: i64, until_ms: i64) -> Result<()> {
    sql.raw("INSERT INTO job_leases (job, owner, until) VALUES (")
        .text(job)?
        .raw(", ")
        .text(owner)?
        .raw(", ")
        .int(until_ms)
        .raw(
            ") ON CONFLICT(job) DO UPDATE SET owner = excluded.owner, \
             until = excluded.until WHERE job_leases.owner = excluded.owner \
             OR job_leases.until <= ",
        )
        .int(now_ms)
        .raw(";\n");
    Ok(())
}

/// Drops expired grants, then inserts this one (two statements).
fn hold_grant(sql: &mut Sql, digest: &[u8], g: &StoredGrant, now: Timestamp) -> Result<()> {
    sql.raw("DELETE FROM download_grants WHERE expires <= ")
        .int(now)
        .raw(
            ";\nINSERT INTO download_grants (digest, caller, serial, format, \
             password_sealed, expires, recovery) VALUES (",
        )
        .blob(digest)
        .raw(", ")
        .text(&g.caller)?
        .raw(", ")
        .text(&g.serial)?
        .raw(", ")
        .text(&g.format)?
        .raw(", ");
    match &g.password_sealed {
        Some(p) => sql.blob(p),
        None => sql.raw("NULL"),
    };
    sql.raw(", ")
        .int(g.expires)
        .raw(", ")
        .opt_text(g.recovery.as_deref())?
        .raw(");\n");
    Ok(())
}

fn grant_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredGrant> {
    Ok(StoredGrant {
        caller: row.try_get("caller").map_err(db_err)?,
        serial: row.try_get("serial").map_err(db_err)?,
        format: row.try_get("format").map_err(db_err)?,
        password_sealed: row.try_get("password_sealed").map_err(db_err)?,
        expires: row.try_get("expires").map_err(db_err)?,
        recovery: row.try_get("recovery").map_err(db_err)?,
    })
}

impl SqliteStore {
    async fn shared_write(&self, op: SharedOp) -> Result<u64> {
        self.writer.write(Op::Shared(op)).await
    }

    async fn grant_row(&self, digest: &[u8]) -> Result<Option<StoredGrant>> {
        let row = sqlx::query("SELECT * FROM download_grants WHERE digest = ?")
            .bind(digest)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn count(&self, query: &'static str, binds: &[&str], now: Timestamp) -> Result<u64> {
        let mut q = sqlx::query_scalar::<_, i64>(query);
        for b in binds {
            q = q.bind(*b);
        }
        let n = q.bind(now).fetch_one(&self.reader).await.map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl SharedStore for SqliteStore {
    fn shared_secret<'a>(&'a self, name: &'a str, fresh: &'a [u8]) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(async move {
            self.shared_write(SharedOp::Secret(name.to_owned(), fresh.to_vec()))
                .await?;
            sqlx::query_scalar("SELECT value FROM shared_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&self.reader)
                .await
                .map_err(db_err)
        })
    }

    fn spend_nonce<'a>(&'a self, nonce: &'a [u8], expires_ms: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let op = SharedOp::SpendNonce(nonce.to_vec(), expires_ms);
            Ok(self.shared_write(op).await? == 1)
        })
    }

    fn prune_nonces(&self, now_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move { self.shared_write(SharedOp::PruneNonces(now_ms)).await })
    }

    fn take_job<'a>(
        &'a self,
        job: &'a str,
        owner: &'a str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let op = SharedOp::TakeJob {
                job: job.to_owned(),
                owner: owner.to_owned(),
                now_ms,
                until_ms,
            };
            Ok(self.shared_write(op).await? == 1)
        })
    }

    fn release_job<'a>(&'a self, job: &'a str, owner: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let op = SharedOp::ReleaseJob(job.to_owned(), owner.to_owned());
            self.shared_write(op).await.map(drop)
        })
    }

    fn set_ari_override<'a>(&'a self, serial: &'a str, answer: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let op = SharedOp::AriOverride(serial.to_owned(), answer.to_owned());
            self.shared_write(op).await.map(drop)
        })
    }

    fn ari_override<'a>(&'a self, serial: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT answer FROM ari_overrides WHERE serial = ?")
                .bind(serial)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)
        })
    }

    fn hold_grant<'a>(
        &'a self,
        digest: &'a [u8],
        grant: &'a StoredGrant,
        now: Timestamp,
        limits: GrantLimits,
    ) -> StoreFuture<'a, GrantHold> {
        Box::pin(async move {
            let _only = self.exclusive.lock().await;
            let per_cert = self
                .count(
                    "SELECT count(*) FROM download_grants \
                     WHERE caller = ? AND serial = ? AND expires > ?",
                    &[&grant.caller, &grant.serial],
                    now,
                )
                .await?;
            if per_cert >= limits.per_cert {
                return Ok(GrantHold::PerCert);
            }
            let per_caller = self
                .count(
                    "SELECT count(*) FROM download_grants WHERE caller = ? AND expires > ?",
                    &[&grant.caller],
                    now,
                )
                .await?;
            if per_caller >= limits.per_caller {
                return Ok(GrantHold::PerCaller);
            }
            let total = self
                .count(
                    "SELECT count(*) FROM download_grants WHERE expires > ?",
                    &[],
                    now,
                )
                .await?;
            if total >= limits.total {
                return Ok(GrantHold::Full);
            }
            let op = SharedOp::HoldGrant(digest.to_vec(), grant.clone(), now);
            self.shared_write(op).await?;
            Ok(GrantHold::Held)
        })
    }

    fn take_grant<'a>(
        &'a self,
        digest: &'a [u8],
        now: Timestamp,
    ) -> StoreFuture<'a, Option<StoredGrant>> {
        Box::pin(async move {
            let _only = self.exclusive.lock().await;
            let Some(grant) = self.grant_row(digest).await? else {
                return Ok(None);
            };
            let removed = self
                .shared_write(SharedOp::DropGrant(digest.to_vec()))
                .await?;
            Ok((removed == 1 && grant.expires > now).then_some(grant))
        })
    }

    fn peek_grant<'a>(
        &'a self,
        digest: &'a [u8],
        now: Timestamp,
    ) -> StoreFuture<'a, Option<StoredGrant>> {
        Box::pin(async move { Ok(self.grant_row(digest).await?.filter(|g| g.expires > now)) })
    }

    fn revocation_epoch(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'revocations'")
                .fetch_one(&self.reader)
                .await
                .map_err(db_err)
        })
    }

    fn next_crl_number<'a>(&'a self, issuer: &'a str, at_least: i64) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let _only = self.exclusive.lock().await;
            let op = SharedOp::CrlNumber(issuer.to_owned(), at_least);
            self.shared_write(op).await?;
            sqlx::query_scalar("SELECT number FROM crl_numbers WHERE issuer = ?")
                .bind(issuer)
                .fetch_one(&self.reader)
                .await
                .map_err(db_err)
        })
    }
}
