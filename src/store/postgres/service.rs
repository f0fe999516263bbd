//! [`ServiceStore`] on PostgreSQL. Every value is a bound parameter.
//!
//! Races between instances are decided by the database under READ
//! COMMITTED:
//! - a move (`move_request`, `mark_renewed`, most of `move_recovery`) is one
//!   UPDATE whose condition is on the row it updates; a concurrent UPDATE of
//!   that row waits for the first to commit and re-checks the condition on
//!   the new version, so exactly one caller sees a row count of 1;
//! - a recovery's approval depends on other rows (its approvals), which a
//!   single statement would not re-read after a concurrent commit. It runs
//!   in a transaction that first locks the recovery row (`FOR UPDATE`):
//!   approvals and decisions of one recovery take turns, and each statement
//!   after the lock sees every approval committed before it.

use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::service_rows::{batch_from_row, cert_where, recovery_from_row, Page, CERT_COLUMNS};
use super::{db_err, PgStore};
use crate::error::Result;
use crate::model::service::{
    Batch, CertFilter, CertRow, Delivery, Recovery, RecoveryStatus, Request, RequestFilter,
    RequestStatus, ServiceCert,
};
use crate::model::{Certificate, Timestamp};
use crate::store::rows::{
    cert_list_row as cert_row, delivery_from_row, json_err, request_from_row, service_cert_from_row,
};
use crate::store::service::{ServiceStore, SERVICE_ACCOUNT};
use crate::store::StoreFuture;

/// Newest first; ties by id, compared bytewise as SQLite does whatever the
/// database's collation.
const NEWEST_FIRST: &str = "created_at DESC, id COLLATE \"C\"";

async fn insert_batch(conn: &mut PgConnection, b: &Batch) -> Result<()> {
    sqlx::query(
        "INSERT INTO service_batches (id, name, requester, profile, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&b.id)
    .bind(&b.name)
    .bind(&b.requester)
    .bind(&b.profile)
    .bind(b.created_at)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn insert_request(conn: &mut PgConnection, r: &Request) -> Result<()> {
    let params = serde_json::to_string(&r.params).map_err(json_err)?;
    sqlx::query(
        "INSERT INTO service_requests (id, status, requester, profile, entity_id, params, \
         batch_id, serial, error, created_at, decided_by, decided_at, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&r.id)
    .bind(r.status.as_str())
    .bind(&r.requester)
    .bind(&r.profile)
    .bind(&r.entity_id)
    .bind(params)
    .bind(r.batch_id.as_deref())
    .bind(r.serial.as_deref())
    .bind(r.error.as_deref())
    .bind(r.created_at)
    .bind(r.decided_by.as_deref())
    .bind(r.decided_at)
    .bind(r.reason.as_deref())
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The certificates row of a service certificate: the service account's,
/// with no order (a revocation is recorded later, by the core store).
async fn insert_service_certificate(conn: &mut PgConnection, c: &Certificate) -> Result<()> {
    sqlx::query(
        "INSERT INTO certificates (id, serial, account_id, order_id, der, \
         not_before, not_after, issued_at, common_name) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8)",
    )
    .bind(&c.id.0)
    .bind(&c.serial)
    .bind(SERVICE_ACCOUNT)
    .bind(&c.der)
    .bind(c.not_before)
    .bind(c.not_after)
    .bind(c.issued_at)
    .bind(c.common_name.as_deref())
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The service_certs row (not renewed yet), and its request (if any)
/// moved from approved to issued.
async fn insert_service_cert(conn: &mut PgConnection, meta: &ServiceCert) -> Result<()> {
    sqlx::query(
        "INSERT INTO service_certs (serial, entity_id, profile, requester, \
         key_sealed, auto_renew, renewed_to, request_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8)",
    )
    .bind(&meta.serial)
    .bind(&meta.entity_id)
    .bind(&meta.profile)
    .bind(&meta.requester)
    .bind(meta.key_sealed.as_deref())
    .bind(meta.auto_renew)
    .bind(meta.request_id.as_deref())
    .bind(meta.created_at)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    if let Some(req) = &meta.request_id {
        sqlx::query(
            "UPDATE service_requests SET status = 'issued', serial = $1 \
             WHERE id = $2 AND status = 'approved'",
        )
        .bind(&meta.serial)
        .bind(req)
        .execute(conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// A recovery's columns and its approvals' agents, by time, then name
/// (one statement, however many recoveries a page holds).
const RECOVERY_COLUMNS: &str = "service_recoveries.*, ARRAY(SELECT a.agent \
     FROM service_recovery_approvals a WHERE a.recovery_id = service_recoveries.id \
     ORDER BY a.at, a.agent COLLATE \"C\") AS approvals";

/// Locks recovery `id` for the rest of the transaction; its status and
/// required approvals, or None if there is no such recovery.
async fn lock_recovery(conn: &mut PgConnection, id: &str) -> Result<Option<(String, i64)>> {
    let row =
        sqlx::query("SELECT status, required FROM service_recoveries WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(db_err)?;
    row.map(|r| {
        Ok((
            r.try_get("status").map_err(db_err)?,
            r.try_get("required").map_err(db_err)?,
        ))
    })
    .transpose()
}

/// With recovery `id` locked (by this transaction) and pending: moves it
/// to approved if it has `required` approvals. Reading the count after the
/// lock sees every approval committed by the lock's earlier holders, so
/// the last approver to arrive always approves it.
async fn approve_if_enough(
    conn: &mut PgConnection,
    id: &str,
    required: i64,
    by: Option<&str>,
    at: Timestamp,
    reason: Option<&str>,
) -> Result<bool> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM service_recovery_approvals WHERE recovery_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    if count < required {
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE service_recoveries SET status = 'approved', \
         decided_by = COALESCE($2, decided_by), decided_at = $3, \
         reason = COALESCE($4, reason) WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(by)
    .bind(at)
    .bind(reason)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

impl PgStore {
    /// Pending → approved, with enough approvals: under the recovery's lock.
    async fn approve_recovery_locked(
        &self,
        id: &str,
        by: Option<&str>,
        at: Timestamp,
        reason: Option<&str>,
    ) -> Result<bool> {
        let mut lease = self.pool().lease().await.map_err(db_err)?;
        let mut tx = lease.begin().await.map_err(db_err)?;
        let moved = match lock_recovery(&mut tx, id).await? {
            Some((status, required)) if status == RecoveryStatus::Pending.as_str() => {
                approve_if_enough(&mut tx, id, required, by, at, reason).await?
            }
            _ => false,
        };
        tx.commit().await.map_err(db_err)?;
        lease.keep();
        Ok(moved)
    }
}

impl ServiceStore for PgStore {
    fn insert_requests<'a>(
        &'a self,
        batch: Option<&'a Batch>,
        requests: &'a [Request],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            if let Some(b) = batch {
                insert_batch(&mut tx, b).await?;
            }
            for r in requests {
                insert_request(&mut tx, r).await?;
            }
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(())
        })
    }

    fn request<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Request>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM service_requests WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
            row.as_ref().map(request_from_row).transpose()
        })
    }

    fn requests<'a>(&'a self, f: &'a RequestFilter) -> StoreFuture<'a, (Vec<Request>, u64)> {
        Box::pin(async move {
            let filter = |q: &mut QueryBuilder<Postgres>| {
                q.push(" WHERE TRUE");
                if let Some(s) = f.status {
                    q.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(r) = &f.requester {
                    q.push(" AND requester = ").push_bind(r.clone());
                }
                if let Some(p) = &f.profile {
                    q.push(" AND profile = ").push_bind(p.clone());
                }
                if let Some(b) = &f.batch_id {
                    q.push(" AND batch_id = ").push_bind(b.clone());
                }
            };
            let (rows, total) = Page {
                select: "*",
                from: "service_requests",
                order: NEWEST_FIRST,
                offset: f.offset,
                limit: f.limit,
            }
            .fetch(self.pool(), filter)
            .await?;
            let list = rows.iter().map(request_from_row).collect::<Result<_>>()?;
            Ok((list, total))
        })
    }

    fn move_request<'a>(
        &'a self,
        id: &'a str,
        from: RequestStatus,
        to: RequestStatus,
        by: Option<&'a str>,
        at: Timestamp,
        note: Option<&'a str>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // The note is a failed request's error, any other decision's
            // reason. The condition is on the updated row: one winner.
            let sql = if to == RequestStatus::Failed {
                "UPDATE service_requests SET status = $1, decided_by = COALESCE($2, decided_by), \
                 decided_at = $3, error = $4 WHERE id = $5 AND status = $6"
            } else {
                "UPDATE service_requests SET status = $1, decided_by = COALESCE($2, decided_by), \
                 decided_at = $3, reason = $4 WHERE id = $5 AND status = $6"
            };
            let done = sqlx::query(sql)
                .bind(to.as_str())
                .bind(by)
                .bind(at)
                .bind(note)
                .bind(id)
                .bind(from.as_str())
                .execute(self.pool())
                .await
                .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn record_issued<'a>(
        &'a self,
        cert: &'a Certificate,
        meta: &'a ServiceCert,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // One transaction: the certificate is never without its service
            // row, and the request is issued only with both.
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            insert_service_certificate(&mut tx, cert).await?;
            insert_service_cert(&mut tx, meta).await?;
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(())
        })
    }

    fn service_cert<'a>(&'a self, serial: &'a str) -> StoreFuture<'a, Option<ServiceCert>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM service_certs WHERE serial = $1")
                .bind(serial)
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
            match row {
                Some(r) => service_cert_from_row(&r, ""),
                None => Ok(None),
            }
        })
    }

    fn certificates<'a>(&'a self, f: &'a CertFilter) -> StoreFuture<'a, (Vec<CertRow>, u64)> {
        Box::pin(async move {
            let now = crate::clock::Clock::now(&crate::clock::SystemClock);
            let (rows, total) = Page {
                select: CERT_COLUMNS,
                from: "certificates c LEFT JOIN service_certs s ON s.serial = c.serial",
                order: "c.issued_at DESC, c.serial COLLATE \"C\"",
                offset: f.offset,
                limit: f.limit,
            }
            .fetch(self.pool(), |q| cert_where(q, f, now))
            .await?;
            let list = rows.iter().map(cert_row).collect::<Result<_>>()?;
            Ok((list, total))
        })
    }

    fn mark_renewed<'a>(&'a self, old: &'a str, new: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE service_certs SET renewed_to = $1 \
                 WHERE serial = $2 AND renewed_to IS NULL",
            )
            .bind(new)
            .bind(old)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn batch<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Batch>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM service_batches WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
            row.as_ref().map(batch_from_row).transpose()
        })
    }

    fn insert_recovery<'a>(&'a self, r: &'a Recovery) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO service_recoveries (id, serial, requester, status, required, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.id)
            .bind(&r.serial)
            .bind(&r.requester)
            .bind(r.status.as_str())
            .bind(i64::from(r.required))
            .bind(r.created_at)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn recovery<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Recovery>> {
        Box::pin(async move {
            let mut q = QueryBuilder::new("SELECT ");
            q.push(RECOVERY_COLUMNS)
                .push(" FROM service_recoveries WHERE id = ")
                .push_bind(id);
            let row = q
                .build()
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
            row.as_ref().map(recovery_from_row).transpose()
        })
    }

    fn recoveries<'a>(
        &'a self,
        status: Option<RecoveryStatus>,
        requester: Option<&'a str>,
        offset: u32,
        limit: u32,
    ) -> StoreFuture<'a, (Vec<Recovery>, u64)> {
        Box::pin(async move {
            let filter = |q: &mut QueryBuilder<Postgres>| {
                q.push(" WHERE TRUE");
                if let Some(s) = status {
                    q.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(r) = requester {
                    q.push(" AND requester = ").push_bind(r.to_owned());
                }
            };
            let (rows, total) = Page {
                select: RECOVERY_COLUMNS,
                from: "service_recoveries",
                order: NEWEST_FIRST,
                offset,
                limit,
            }
            .fetch(self.pool(), filter)
            .await?;
            let list = rows.iter().map(recovery_from_row).collect::<Result<_>>()?;
            Ok((list, total))
        })
    }

    fn approve_recovery<'a>(
        &'a self,
        id: &'a str,
        agent: &'a str,
        at: Timestamp,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // Under the recovery's lock: it is still pending (a concurrent
            // rejection or approval has committed or waits), the agent's
            // approval is added once (the primary key), and the count read
            // afterwards includes every earlier approver's.
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            let required = match lock_recovery(&mut tx, id).await? {
                Some((status, required)) if status == RecoveryStatus::Pending.as_str() => required,
                _ => return Ok(false),
            };
            let added = sqlx::query(
                "INSERT INTO service_recovery_approvals (recovery_id, agent, at) \
                 VALUES ($1, $2, $3) ON CONFLICT (recovery_id, agent) DO NOTHING",
            )
            .bind(id)
            .bind(agent)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
                == 1;
            if added {
                approve_if_enough(&mut tx, id, required, None, at, None).await?;
            }
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(added)
        })
    }

    fn move_recovery<'a>(
        &'a self,
        id: &'a str,
        from: RecoveryStatus,
        to: RecoveryStatus,
        by: Option<&'a str>,
        at: Timestamp,
        reason: Option<&'a str>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if from == RecoveryStatus::Pending && to == RecoveryStatus::Approved {
                return self.approve_recovery_locked(id, by, at, reason).await;
            }
            // Any other move depends on the row alone: one conditional
            // UPDATE (which also waits for an approval holding the lock).
            let done = sqlx::query(
                "UPDATE service_recoveries SET status = $1, \
                 decided_by = COALESCE($2, decided_by), decided_at = $3, \
                 reason = COALESCE($4, reason) WHERE id = $5 AND status = $6",
            )
            .bind(to.as_str())
            .bind(by)
            .bind(at)
            .bind(reason)
            .bind(id)
            .bind(from.as_str())
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn insert_deliveries<'a>(&'a self, d: &'a [Delivery]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if d.is_empty() {
                return Ok(());
            }
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            for x in d {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, url, event_type, body, status, \
                     attempts, next_attempt_at, last_error, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&x.id)
                .bind(&x.url)
                .bind(&x.event_type)
                .bind(&x.body)
                .bind(&x.status)
                .bind(i64::from(x.attempts))
                .bind(x.next_attempt_at)
                .bind(x.last_error.as_deref())
                .bind(x.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(())
        })
    }

    fn due_deliveries(&self, now: Timestamp, limit: u32) -> StoreFuture<'_, Vec<Delivery>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT * FROM webhook_deliveries WHERE status = 'pending' \
                 AND next_attempt_at <= $1 ORDER BY next_attempt_at, created_at LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(db_err)?;
            rows.iter().map(delivery_from_row).collect()
        })
    }

    fn record_attempt<'a>(
        &'a self,
        id: &'a str,
        delivered: bool,
        error: Option<&'a str>,
        next_attempt_at: Option<Timestamp>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // Delivered; pending again at the next attempt; or failed for
            // good when there is none.
            let status = match (delivered, next_attempt_at) {
                (true, _) => "delivered",
                (false, Some(_)) => "pending",
                (false, None) => "failed",
            };
            sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $1, \
                 last_error = $2, next_attempt_at = COALESCE($3, next_attempt_at) \
                 WHERE id = $4",
            )
            .bind(status)
            .bind(error)
            .bind(next_attempt_at)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn deliveries<'a>(
        &'a self,
        status: Option<&'a str>,
        offset: u32,
        limit: u32,
    ) -> StoreFuture<'a, (Vec<Delivery>, u64)> {
        Box::pin(async move {
            let filter = |q: &mut QueryBuilder<Postgres>| {
                q.push(" WHERE TRUE");
                if let Some(s) = status {
                    q.push(" AND status = ").push_bind(s.to_owned());
                }
            };
            let (rows, total) = Page {
                select: "*",
                from: "webhook_deliveries",
                order: NEWEST_FIRST,
                offset,
                limit,
            }
            .fetch(self.pool(), filter)
            .await?;
            let list = rows.iter().map(delivery_from_row).collect::<Result<_>>()?;
            Ok((list, total))
        })
    }

    fn due_for_renewal<'a>(
        &'a self,
        before: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, Vec<ServiceCert>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT s.* FROM service_certs s JOIN certificates c ON c.serial = s.serial \
                 WHERE s.auto_renew AND s.renewed_to IS NULL AND c.revoked_at IS NULL \
                 AND c.not_after < $1 AND c.not_after > $2 ORDER BY c.not_after LIMIT 100",
            )
            .bind(before)
            .bind(now)
            .fetch_all(self.pool())
            .await
            .map_err(db_err)?;
            rows.iter()
                .filter_map(|r| service_cert_from_row(r, "").transpose())
                .collect()
        })
    }
}
