//! [`SharedStore`] on SQLite. Writes are writer ops (batched like any
//! other); an operation that reads, decides and writes (a grant held within
//! its bounds, a grant taken, a CRL number allocated, a console session read
//! with its one-shot message taken out) runs under [`SqliteStore::exclusive`]:
//! one process owns the database file (the data directory's lock), so a
//! process-wide lock makes it atomic.

use sqlx::Row;

use super::ops::Op;
use super::sql::Sql;
use super::{db_err, SqliteStore};
use crate::error::Result;
use crate::model::service::Caller;
use crate::model::{AccountId, Timestamp};
use crate::store::rows::{download_from_row, grant_from_row, responder_from_row, session_from_row};
use crate::store::shared::{
    GrantHold, GrantLimits, Lookup, NonceSpent, SessionLimits, SharedStore, StoredDownload,
    StoredFlash, StoredGrant, StoredResponder, StoredSession,
};
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
    /// Stores a responder if the stored one's certificate is still the
    /// given one (or, for None, none is stored).
    ReplaceResponder(String, Option<Vec<u8>>, StoredResponder),
    /// A console session's write.
    Session(SessionOp),
}

/// A write of a console session (see [`SharedOp`]).
#[derive(Debug, Clone)]
pub(super) enum SessionOp {
    /// Removes sessions over at `now`, then inserts this one unless `max`
    /// remain.
    CreateSession {
        digest: Vec<u8>,
        caller: Caller,
        csrf: String,
        now: Timestamp,
        limits: SessionLimits,
    },
    /// Marks a session seen at `now`, clears its message and drops its
    /// downloads expired at `now`.
    TouchSession(Vec<u8>, Timestamp),
    SessionFlash(Vec<u8>, StoredFlash),
    /// Drops the session's downloads of the same serial or expired at
    /// `now`, then the oldest beyond `max - 1`, then inserts this one if the
    /// session exists.
    AddDownload {
        digest: Vec<u8>,
        download: StoredDownload,
        now: Timestamp,
        max: u64,
    },
    DropDownload(Vec<u8>, String),
    /// Removes a session (its downloads go with it: ON DELETE CASCADE).
    RemoveSession(Vec<u8>),
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
            SharedOp::ReplaceResponder(issuer, replacing, new) => {
                replace_responder(sql, issuer, replacing.as_deref(), new)?;
            }
            SharedOp::Session(op) => return op.render(sql),
        }
        Ok(1)
    }
}

impl SessionOp {
    /// Appends the op's statements; returns how many.
    fn render(&self, sql: &mut Sql) -> Result<usize> {
        match self {
            SessionOp::CreateSession {
                digest,
                caller,
                csrf,
                now,
                limits,
            } => {
                create_session(sql, digest, caller, csrf, *now, *limits)?;
                return Ok(2);
            }
            SessionOp::TouchSession(digest, now) => {
                sql.raw("UPDATE console_sessions SET last_seen = ")
                    .int(*now)
                    .raw(", flash = NULL, flash_failed = NULL WHERE digest = ")
                    .blob(digest)
                    .raw(";\nDELETE FROM console_downloads WHERE session = ")
                    .blob(digest)
                    .raw(" AND expires <= ")
                    .int(*now)
                    .raw(";\n");
                return Ok(2);
            }
            SessionOp::SessionFlash(digest, flash) => {
                sql.raw("UPDATE console_sessions SET flash = ")
                    .text(&flash.text)?
                    .raw(", flash_failed = ")
                    .bool(flash.failed)
                    .raw(" WHERE digest = ")
                    .blob(digest)
                    .raw(";\n");
            }
            SessionOp::AddDownload {
                digest,
                download,
                now,
                max,
            } => {
                add_download(sql, digest, download, *now, *max)?;
                return Ok(3);
            }
            SessionOp::DropDownload(digest, serial) => {
                sql.raw("DELETE FROM console_downloads WHERE session = ")
                    .blob(digest)
                    .raw(" AND serial = ")
                    .text(serial)?
                    .raw(";\n");
            }
            SessionOp::RemoveSession(digest) => {
                sql.raw("DELETE FROM console_sessions WHERE digest = ")
                    .blob(digest)
                    .raw(";\n");
            }
        }
        Ok(1)
    }
}

/// One statement: an insert unless a responder is stored (`replacing`
/// None), else an update of the row whose certificate is `replacing`.
fn replace_responder(
    sql: &mut Sql,
    issuer: &str,
    replacing: Option<&[u8]>,
    new: &StoredResponder,
) -> Result<()> {
    match replacing {
        None => {
            sql.raw("INSERT OR IGNORE INTO ocsp_responders (issuer, cert, key_sealed, not_after) VALUES (")
                .text(issuer)?
                .raw(", ")
                .blob(&new.cert)
                .raw(", ")
                .blob(&new.key_sealed)
                .raw(", ")
                .int(new.not_after)
                .raw(");\n");
        }
        Some(old) => {
            sql.raw("UPDATE ocsp_responders SET cert = ")
                .blob(&new.cert)
                .raw(", key_sealed = ")
                .blob(&new.key_sealed)
                .raw(", not_after = ")
                .int(new.not_after)
                .raw(" WHERE issuer = ")
                .text(issuer)?
                .raw(" AND cert = ")
                .blob(old)
                .raw(";\n");
        }
    }
    Ok(())
}

/// Sweeps sessions over at `now`, then inserts the new one while fewer than
/// `limits.max` remain (two statements; the writer runs one op at a time,
/// so the count cannot change in between).
fn create_session(
    sql: &mut Sql,
    digest: &[u8],
    caller: &Caller,
    csrf: &str,
    now: Timestamp,
    limits: SessionLimits,
) -> Result<()> {
    let max = i64::try_from(limits.max).unwrap_or(i64::MAX);
    sql.raw("DELETE FROM console_sessions WHERE created <= ")
        .int(limits.born_after(now))
        .raw(" OR last_seen <= ")
        .int(limits.seen_after(now))
        .raw(
            ";\nINSERT INTO console_sessions (digest, caller, role, csrf, created, last_seen) \
             SELECT ",
        )
        .blob(digest)
        .raw(", ")
        .text(&caller.name)?
        .raw(", ")
        .text(caller.role.as_str())?
        .raw(", ")
        .text(csrf)?
        .raw(", ")
        .int(now)
        .raw(", ")
        .int(now)
        .raw(" WHERE (SELECT count(*) FROM console_sessions) < ")
        .int(max)
        .raw(";\n");
    Ok(())
}

/// Replaces the session's download of the same serial, dropping expired
/// ones and the oldest beyond `max - 1` first (three statements; the last,
/// the insert, changes a row only if the session exists).
fn add_download(
    sql: &mut Sql,
    digest: &[u8],
    d: &StoredDownload,
    now: Timestamp,
    max: u64,
) -> Result<()> {
    let keep = i64::try_from(max.saturating_sub(1)).unwrap_or(i64::MAX);
    sql.raw("DELETE FROM console_downloads WHERE session = ")
        .blob(digest)
        .raw(" AND (serial = ")
        .text(&d.serial)?
        .raw(" OR expires <= ")
        .int(now)
        .raw(");\nDELETE FROM console_downloads WHERE session = ")
        .blob(digest)
        .raw(" AND seq NOT IN (SELECT seq FROM console_downloads WHERE session = ")
        .blob(digest)
        .raw(" ORDER BY seq DESC LIMIT ")
        .int(keep)
        .raw(
            ");\nINSERT INTO console_downloads (session, serial, format, expires, recovery, \
             token_sealed) SELECT ",
        )
        .blob(digest)
        .raw(", ")
        .text(&d.serial)?
        .raw(", ")
        .text(&d.format)?
        .raw(", ")
        .int(d.expires)
        .raw(", ")
        .bool(d.recovery)
        .raw(", ")
        .blob(&d.token_sealed)
        .raw(" WHERE EXISTS (SELECT 1 FROM console_sessions WHERE digest = ")
        .blob(digest)
        .raw(");\n");
    Ok(())
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

    fn spend_nonce_reading_account<'a>(
        &'a self,
        nonce: &'a [u8],
        expires_ms: i64,
        account: &'a AccountId,
        lookup: Option<&'a Lookup>,
    ) -> StoreFuture<'a, NonceSpent> {
        // In process, separate calls cost no round trip.
        Box::pin(async move {
            let fresh = self.spend_nonce(nonce, expires_ms).await?;
            let account = crate::store::Store::account_by_id(self, account).await?;
            let found = match lookup {
                Some(lookup) => Some(lookup.read(self).await?),
                None => None,
            };
            Ok(NonceSpent {
                fresh,
                account,
                found,
            })
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

    fn ocsp_responder<'a>(&'a self, issuer: &'a str) -> StoreFuture<'a, Option<StoredResponder>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM ocsp_responders WHERE issuer = ?")
                .bind(issuer)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.as_ref().map(responder_from_row).transpose()
        })
    }

    fn replace_ocsp_responder<'a>(
        &'a self,
        issuer: &'a str,
        replacing: Option<&'a [u8]>,
        new: &'a StoredResponder,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let op = SharedOp::ReplaceResponder(
                issuer.to_owned(),
                replacing.map(<[u8]>::to_vec),
                new.clone(),
            );
            Ok(self.shared_write(op).await? == 1)
        })
    }

    fn create_session<'a>(
        &'a self,
        digest: &'a [u8],
        caller: &'a Caller,
        csrf: &'a str,
        now: Timestamp,
        limits: SessionLimits,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let op = SharedOp::Session(SessionOp::CreateSession {
                digest: digest.to_vec(),
                caller: caller.clone(),
                csrf: csrf.to_owned(),
                now,
                limits,
            });
            Ok(self.shared_write(op).await? == 1)
        })
    }

    fn session<'a>(
        &'a self,
        digest: &'a [u8],
        now: Timestamp,
        limits: SessionLimits,
    ) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(async move {
            // Read, then touch: under the lock no other request of this
            // process (the only one on the file) reads the same message.
            let _only = self.exclusive.lock().await;
            let Some(row) = sqlx::query("SELECT * FROM console_sessions WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?
            else {
                return Ok(None);
            };
            let created: i64 = row.try_get("created").map_err(db_err)?;
            let last_seen: i64 = row.try_get("last_seen").map_err(db_err)?;
            if !limits.live(created, last_seen, now) {
                self.shared_write(SharedOp::Session(SessionOp::RemoveSession(digest.to_vec())))
                    .await?;
                return Ok(None);
            }
            self.shared_write(SharedOp::Session(SessionOp::TouchSession(
                digest.to_vec(),
                now,
            )))
            .await?;
            let downloads = sqlx::query(
                "SELECT * FROM console_downloads WHERE session = ? AND expires > ? ORDER BY seq",
            )
            .bind(digest)
            .bind(now)
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?
            .iter()
            .map(download_from_row)
            .collect::<Result<Vec<_>>>()?;
            session_from_row(&row, now, downloads).map(Some)
        })
    }

    fn set_session_flash<'a>(
        &'a self,
        digest: &'a [u8],
        flash: &'a StoredFlash,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // Under the lock: not between another request's read of the
            // message and its clearing.
            let _only = self.exclusive.lock().await;
            let op = SharedOp::Session(SessionOp::SessionFlash(digest.to_vec(), flash.clone()));
            self.shared_write(op).await.map(drop)
        })
    }

    fn add_session_download<'a>(
        &'a self,
        digest: &'a [u8],
        download: &'a StoredDownload,
        now: Timestamp,
        max: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let op = SharedOp::Session(SessionOp::AddDownload {
                digest: digest.to_vec(),
                download: download.clone(),
                now,
                max,
            });
            Ok(self.shared_write(op).await? == 1)
        })
    }

    fn take_session_download<'a>(
        &'a self,
        digest: &'a [u8],
        serial: &'a str,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<StoredDownload>> {
        Box::pin(async move {
            let _only = self.exclusive.lock().await;
            let Some(row) =
                sqlx::query("SELECT * FROM console_downloads WHERE session = ? AND serial = ?")
                    .bind(digest)
                    .bind(serial)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(db_err)?
            else {
                return Ok(None);
            };
            let download = download_from_row(&row)?;
            let op = SharedOp::Session(SessionOp::DropDownload(digest.to_vec(), serial.to_owned()));
            let removed = self.shared_write(op).await?;
            Ok((removed == 1 && download.expires > now).then_some(download))
        })
    }

    fn remove_session<'a>(&'a self, digest: &'a [u8]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.shared_write(SharedOp::Session(SessionOp::RemoveSession(digest.to_vec())))
                .await
                .map(drop)
        })
    }
}
