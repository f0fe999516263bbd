//! [`SharedStore`] on PostgreSQL: what every instance on the database must
//! agree on. Each operation is one statement whose outcome the database
//! decides (`ON CONFLICT`, a conditional upsert, `DELETE … RETURNING`), or
//! one transaction under a transaction-scoped advisory lock where a bound
//! spans rows (download grants, console sessions), or under the row lock of
//! the one row the change belongs to (a console session's downloads).

use sqlx::Row;

use super::{db_err, PgStore};
use crate::error::Result;
use crate::model::service::Caller;
use crate::model::{AccountId, Timestamp};
use crate::store::rows::{download_from_row, grant_from_row, responder_from_row, session_from_row};
use crate::store::shared::{
    GrantHold, GrantLimits, Lookup, NonceSpent, SessionLimits, SharedStore, StoredDownload,
    StoredFlash, StoredGrant, StoredResponder, StoredSession,
};
use crate::store::StoreFuture;

/// The advisory lock that serialises holding download grants across
/// instances (an arbitrary constant: "grants" in ASCII).
const GRANTS_LOCK: i64 = 0x67_72_61_6e_74_73;
/// The advisory lock that serialises starting console sessions (their
/// bound spans rows): "session" in ASCII.
const SESSIONS_LOCK: i64 = 0x73_65_73_73_69_6f_6e;

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SharedStore for PgStore {
    fn shared_secret<'a>(&'a self, name: &'a str, fresh: &'a [u8]) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(fresh)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            sqlx::query_scalar("SELECT value FROM shared_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(self.pool())
                .await
                .map_err(db_err)
        })
    }

    fn spend_nonce<'a>(&'a self, nonce: &'a [u8], expires_ms: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let spent = self
                .spend_nonce_batched(nonce, expires_ms, None, None)
                .await?;
            Ok(spent.fresh)
        })
    }

    fn spend_nonce_reading_account<'a>(
        &'a self,
        nonce: &'a [u8],
        expires_ms: i64,
        account: &'a AccountId,
        lookup: Option<&'a Lookup>,
    ) -> StoreFuture<'a, NonceSpent> {
        // Batched with the other requests of the moment (batch.rs): one
        // statement spends every nonce and reads every account and record.
        Box::pin(self.spend_nonce_batched(nonce, expires_ms, Some(account), lookup))
    }

    fn ocsp_responder<'a>(&'a self, issuer: &'a str) -> StoreFuture<'a, Option<StoredResponder>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM ocsp_responders WHERE issuer = $1")
                .bind(issuer)
                .fetch_optional(self.pool())
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
            // The condition is on the row itself: of concurrent
            // replacements one matches, the others (having waited for it)
            // find another certificate there.
            let sql = match replacing {
                None => {
                    "INSERT INTO ocsp_responders (issuer, cert, key_sealed, not_after) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (issuer) DO NOTHING"
                }
                Some(_) => {
                    "UPDATE ocsp_responders SET cert = $2, key_sealed = $3, not_after = $4 \
                     WHERE issuer = $1 AND cert = $5"
                }
            };
            let mut query = sqlx::query(sql)
                .bind(issuer)
                .bind(&new.cert)
                .bind(&new.key_sealed)
                .bind(new.not_after);
            if let Some(old) = replacing {
                query = query.bind(old);
            }
            let done = query.execute(self.pool()).await.map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn prune_nonces(&self, now_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM spent_nonces WHERE expires < $1")
                .bind(now_ms)
                .execute(self.pool())
                .await
                .map_err(db_err)?;
            Ok(done.rows_affected())
        })
    }

    fn take_job<'a>(
        &'a self,
        job: &'a str,
        owner: &'a str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // ON CONFLICT DO UPDATE locks the existing row and evaluates its
            // WHERE on the newest version: of concurrent takers of an
            // expired lease, exactly one updates it.
            let done = sqlx::query(
                "INSERT INTO job_leases (job, owner, until) VALUES ($1, $2, $3) \
                 ON CONFLICT (job) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until \
                 WHERE job_leases.owner = EXCLUDED.owner OR job_leases.until <= $4",
            )
            .bind(job)
            .bind(owner)
            .bind(until_ms)
            .bind(now_ms)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn release_job<'a>(&'a self, job: &'a str, owner: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("DELETE FROM job_leases WHERE job = $1 AND owner = $2")
                .bind(job)
                .bind(owner)
                .execute(self.pool())
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn set_ari_override<'a>(&'a self, serial: &'a str, answer: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO ari_overrides (serial, answer) VALUES ($1, $2) \
                 ON CONFLICT (serial) DO UPDATE SET answer = EXCLUDED.answer",
            )
            .bind(serial)
            .bind(answer)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn ari_override<'a>(&'a self, serial: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT answer FROM ari_overrides WHERE serial = $1")
                .bind(serial)
                .fetch_optional(self.pool())
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
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            // The bounds count rows other transactions may be inserting:
            // one holder at a time, released at commit or rollback.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(GRANTS_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query("DELETE FROM download_grants WHERE expires <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let row = sqlx::query(
                "SELECT count(*) AS total, \
                 count(*) FILTER (WHERE caller = $1) AS caller, \
                 count(*) FILTER (WHERE caller = $1 AND serial = $2) AS cert \
                 FROM download_grants",
            )
            .bind(&grant.caller)
            .bind(&grant.serial)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            let get = |c: &str| row.try_get::<i64, _>(c).map(count).map_err(db_err);
            let refusal = if get("cert")? >= limits.per_cert {
                Some(GrantHold::PerCert)
            } else if get("caller")? >= limits.per_caller {
                Some(GrantHold::PerCaller)
            } else if get("total")? >= limits.total {
                Some(GrantHold::Full)
            } else {
                None
            };
            if let Some(r) = refusal {
                tx.rollback().await.map_err(db_err)?;
                return Ok(r);
            }
            sqlx::query(
                "INSERT INTO download_grants (digest, caller, serial, format, password_sealed, \
                 expires, recovery) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(digest)
            .bind(&grant.caller)
            .bind(&grant.serial)
            .bind(&grant.format)
            .bind(grant.password_sealed.as_deref())
            .bind(grant.expires)
            .bind(grant.recovery.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(GrantHold::Held)
        })
    }

    fn take_grant<'a>(
        &'a self,
        digest: &'a [u8],
        now: Timestamp,
    ) -> StoreFuture<'a, Option<StoredGrant>> {
        Box::pin(async move {
            // A row is deleted once: of concurrent takers, one gets it back.
            let row = sqlx::query("DELETE FROM download_grants WHERE digest = $1 RETURNING *")
                .bind(digest)
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
            Ok(row
                .as_ref()
                .map(grant_from_row)
                .transpose()?
                .filter(|g| g.expires > now))
        })
    }

    fn peek_grant<'a>(
        &'a self,
        digest: &'a [u8],
        now: Timestamp,
    ) -> StoreFuture<'a, Option<StoredGrant>> {
        Box::pin(async move {
            let row =
                sqlx::query("SELECT * FROM download_grants WHERE digest = $1 AND expires > $2")
                    .bind(digest)
                    .bind(now)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(db_err)?;
            row.as_ref().map(grant_from_row).transpose()
        })
    }

    fn revocation_epoch(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'revocations'")
                .fetch_one(self.pool())
                .await
                .map_err(db_err)
        })
    }

    fn next_crl_number<'a>(&'a self, issuer: &'a str, at_least: i64) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            // One statement: the row lock of the upsert orders concurrent
            // callers, and each gets the number its own update wrote.
            sqlx::query_scalar(
                "INSERT INTO crl_numbers (issuer, number) VALUES ($1, $2) \
                 ON CONFLICT (issuer) DO UPDATE \
                 SET number = GREATEST(crl_numbers.number + 1, EXCLUDED.number) \
                 RETURNING number",
            )
            .bind(issuer)
            .bind(at_least)
            .fetch_one(self.pool())
            .await
            .map_err(db_err)
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
            let max = i64::try_from(limits.max).unwrap_or(i64::MAX);
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            // The count must not change between it and the insert: one
            // sign-in at a time across the fleet, released at commit.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SESSIONS_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query("DELETE FROM console_sessions WHERE created <= $1 OR last_seen <= $2")
                .bind(limits.born_after(now))
                .bind(limits.seen_after(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let done = sqlx::query(
                "INSERT INTO console_sessions (digest, caller, role, csrf, created, last_seen) \
                 SELECT $1, $2, $3, $4, $5, $5 \
                 WHERE (SELECT count(*) FROM console_sessions) < $6",
            )
            .bind(digest)
            .bind(&caller.name)
            .bind(caller.role.as_str())
            .bind(csrf)
            .bind(now)
            .bind(max)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(done.rows_affected() == 1)
        })
    }

    fn session<'a>(
        &'a self,
        digest: &'a [u8],
        now: Timestamp,
        limits: SessionLimits,
    ) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(async move {
            // One statement: `old` locks the row and reads its message (a
            // concurrent caller waits for the lock, then reads the row as
            // the first left it, without the message); the update touches
            // the row only while it is live.
            let row = sqlx::query(
                "WITH old AS (SELECT digest, flash, flash_failed FROM console_sessions \
                 WHERE digest = $1 FOR UPDATE) \
                 UPDATE console_sessions AS s \
                 SET last_seen = $2, flash = NULL, flash_failed = NULL \
                 FROM old WHERE s.digest = old.digest AND s.created > $3 AND s.last_seen > $4 \
                 RETURNING s.caller, s.role, s.csrf, s.created, old.flash, old.flash_failed",
            )
            .bind(digest)
            .bind(now)
            .bind(limits.born_after(now))
            .bind(limits.seen_after(now))
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?;
            let Some(row) = row else {
                // Unknown, or over: removed if over.
                sqlx::query(
                    "DELETE FROM console_sessions WHERE digest = $1 \
                     AND (created <= $2 OR last_seen <= $3)",
                )
                .bind(digest)
                .bind(limits.born_after(now))
                .bind(limits.seen_after(now))
                .execute(self.pool())
                .await
                .map_err(db_err)?;
                return Ok(None);
            };
            let downloads = sqlx::query(
                "WITH gone AS (DELETE FROM console_downloads WHERE session = $1 AND expires <= $2) \
                 SELECT * FROM console_downloads WHERE session = $1 AND expires > $2 ORDER BY seq",
            )
            .bind(digest)
            .bind(now)
            .fetch_all(self.pool())
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
            sqlx::query(
                "UPDATE console_sessions SET flash = $2, flash_failed = $3 WHERE digest = $1",
            )
            .bind(digest)
            .bind(&flash.text)
            .bind(flash.failed)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(())
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
            let keep = i64::try_from(max.saturating_sub(1)).unwrap_or(i64::MAX);
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            // The session's row lock orders the additions of one session
            // (and keeps it from ending meanwhile).
            let exists = sqlx::query("SELECT 1 FROM console_sessions WHERE digest = $1 FOR UPDATE")
                .bind(digest)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .is_some();
            if !exists {
                tx.rollback().await.map_err(db_err)?;
                return Ok(false);
            }
            sqlx::query(
                "DELETE FROM console_downloads WHERE session = $1 \
                 AND (serial = $2 OR expires <= $3)",
            )
            .bind(digest)
            .bind(&download.serial)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "DELETE FROM console_downloads WHERE session = $1 AND seq NOT IN \
                 (SELECT seq FROM console_downloads WHERE session = $1 \
                 ORDER BY seq DESC LIMIT $2)",
            )
            .bind(digest)
            .bind(keep)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO console_downloads (session, serial, format, expires, recovery, \
                 token_sealed) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(digest)
            .bind(&download.serial)
            .bind(&download.format)
            .bind(download.expires)
            .bind(download.recovery)
            .bind(&download.token_sealed)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(true)
        })
    }

    fn take_session_download<'a>(
        &'a self,
        digest: &'a [u8],
        serial: &'a str,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<StoredDownload>> {
        Box::pin(async move {
            // A row is deleted once: of concurrent takers, one gets it back.
            let row = sqlx::query(
                "DELETE FROM console_downloads WHERE session = $1 AND serial = $2 RETURNING *",
            )
            .bind(digest)
            .bind(serial)
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?;
            Ok(row
                .as_ref()
                .map(download_from_row)
                .transpose()?
                .filter(|d| d.expires > now))
        })
    }

    fn remove_session<'a>(&'a self, digest: &'a [u8]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("DELETE FROM console_sessions WHERE digest = $1")
                .bind(digest)
                .execute(self.pool())
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }
}
