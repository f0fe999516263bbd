//! [`ServiceStore`] on SQLite: writes go through the writer task as
//! [`ServiceOp`]s (ops.rs, one function per operation), reads use the
//! reader pool (rows.rs turns rows into records).

mod ops;
mod rows;

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::ops::Op;
use super::{db_err, SqliteStore};
use crate::error::{Error, Result};
use crate::model::service::{
    Batch, CertFilter, CertRow, Delivery, Recovery, RecoveryStatus, Request, RequestFilter,
    RequestStatus, ServiceCert,
};
use crate::model::{Certificate, Timestamp};
use crate::store::rows::{
    cert_list_row as cert_row, delivery_from_row, request_from_row, service_cert_from_row,
};
use crate::store::service::ServiceStore;
use crate::store::StoreFuture;
pub(super) use ops::ServiceOp;
use rows::{cert_where, CERT_COLUMNS};

impl SqliteStore {
    async fn recovery_with_approvals(&self, row: &SqliteRow) -> Result<Recovery> {
        let id: String = row.try_get("id").map_err(db_err)?;
        let status: String = row.try_get("status").map_err(db_err)?;
        let required: i64 = row.try_get("required").map_err(db_err)?;
        let approvals: Vec<String> = sqlx::query_scalar(
            "SELECT agent FROM service_recovery_approvals WHERE recovery_id = ? ORDER BY at, agent",
        )
        .bind(&id)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        Ok(Recovery {
            serial: row.try_get("serial").map_err(db_err)?,
            requester: row.try_get("requester").map_err(db_err)?,
            status: RecoveryStatus::parse(&status).ok_or_else(|| {
                Error::internal(format_args!("bad stored recovery status {status}"))
            })?,
            required: u32::try_from(required).unwrap_or(u32::MAX),
            approvals,
            created_at: row.try_get("created_at").map_err(db_err)?,
            decided_by: row.try_get("decided_by").map_err(db_err)?,
            decided_at: row.try_get("decided_at").map_err(db_err)?,
            reason: row.try_get("reason").map_err(db_err)?,
            id,
        })
    }
}

/// One page of a list: how many rows of `from` match `filter` in all, and
/// the rows `select`ed in `order` from `offset`, at most `limit`. The SQL
/// fragments are this file's constants; values go through `filter`'s binds.
struct Page {
    select: &'static str,
    from: &'static str,
    order: &'static str,
    offset: u32,
    limit: u32,
}

impl Page {
    async fn fetch(
        &self,
        reader: &crate::store::reuse::Reuse<Sqlite>,
        filter: impl Fn(&mut QueryBuilder<Sqlite>),
    ) -> Result<(Vec<SqliteRow>, u64)> {
        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM ");
        count.push(self.from);
        filter(&mut count);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(reader)
            .await
            .map_err(db_err)?;
        let mut q = QueryBuilder::new("SELECT ");
        q.push(self.select).push(" FROM ").push(self.from);
        filter(&mut q);
        q.push(" ORDER BY ")
            .push(self.order)
            .push(" LIMIT ")
            .push_bind(i64::from(self.limit))
            .push(" OFFSET ")
            .push_bind(i64::from(self.offset));
        let rows = q.build().fetch_all(reader).await.map_err(db_err)?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}

impl ServiceStore for SqliteStore {
    fn insert_requests<'a>(
        &'a self,
        batch: Option<&'a Batch>,
        requests: &'a [Request],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let op = ServiceOp::InsertRequests(batch.cloned(), requests.to_vec());
            self.writer.write(Op::Service(op)).await?;
            Ok(())
        })
    }

    fn request<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Request>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM service_requests WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.as_ref().map(request_from_row).transpose()
        })
    }

    fn requests<'a>(&'a self, f: &'a RequestFilter) -> StoreFuture<'a, (Vec<Request>, u64)> {
        Box::pin(async move {
            let filter = |q: &mut QueryBuilder<Sqlite>| {
                q.push(" WHERE 1 = 1");
                if let Some(s) = f.status {
                    q.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(r) = &f.requester {
                    q.push(" AND requester = ").push_bind(r);
                }
                if let Some(p) = &f.profile {
                    q.push(" AND profile = ").push_bind(p);
                }
                if let Some(b) = &f.batch_id {
                    q.push(" AND batch_id = ").push_bind(b);
                }
            };
            let (rows, total) = Page {
                select: "*",
                from: "service_requests",
                order: "created_at DESC, id",
                offset: f.offset,
                limit: f.limit,
            }
            .fetch(&self.reader, filter)
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
            let op = ServiceOp::MoveRequest {
                id: id.to_owned(),
                from,
                to,
                by: by.map(str::to_owned),
                at,
                note: note.map(str::to_owned),
            };
            Ok(self.writer.write(Op::Service(op)).await? == 1)
        })
    }

    fn record_issued<'a>(
        &'a self,
        cert: &'a Certificate,
        meta: &'a ServiceCert,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let op = ServiceOp::RecordIssued(Box::new(cert.clone()), Box::new(meta.clone()));
            self.writer.write(Op::Service(op)).await?;
            Ok(())
        })
    }

    fn service_cert<'a>(&'a self, serial: &'a str) -> StoreFuture<'a, Option<ServiceCert>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM service_certs WHERE serial = ?")
                .bind(serial)
                .fetch_optional(&self.reader)
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
                order: "c.issued_at DESC, c.serial",
                offset: f.offset,
                limit: f.limit,
            }
            .fetch(&self.reader, |q| cert_where(q, f, now))
            .await?;
            let list = rows.iter().map(cert_row).collect::<Result<_>>()?;
            Ok((list, total))
        })
    }

    fn mark_renewed<'a>(&'a self, old: &'a str, new: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let op = ServiceOp::MarkRenewed {
                old: old.to_owned(),
                new: new.to_owned(),
            };
            Ok(self.writer.write(Op::Service(op)).await? == 1)
        })
    }

    fn batch<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Batch>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM service_batches WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.map(|r| {
                Ok(Batch {
                    id: r.try_get("id").map_err(db_err)?,
                    name: r.try_get("name").map_err(db_err)?,
                    requester: r.try_get("requester").map_err(db_err)?,
                    profile: r.try_get("profile").map_err(db_err)?,
                    created_at: r.try_get("created_at").map_err(db_err)?,
                })
            })
            .transpose()
        })
    }

    fn insert_recovery<'a>(&'a self, r: &'a Recovery) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.writer
                .write(Op::Service(ServiceOp::InsertRecovery(r.clone())))
                .await?;
            Ok(())
        })
    }

    fn recovery<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Recovery>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM service_recoveries WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            match row {
                Some(r) => Ok(Some(self.recovery_with_approvals(&r).await?)),
                None => Ok(None),
            }
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
            let filter = |q: &mut QueryBuilder<Sqlite>| {
                q.push(" WHERE 1 = 1");
                if let Some(s) = status {
                    q.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(r) = requester {
                    q.push(" AND requester = ").push_bind(r.to_owned());
                }
            };
            let (rows, total) = Page {
                select: "*",
                from: "service_recoveries",
                order: "created_at DESC, id",
                offset,
                limit,
            }
            .fetch(&self.reader, filter)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(self.recovery_with_approvals(r).await?);
            }
            Ok((out, total))
        })
    }

    fn approve_recovery<'a>(
        &'a self,
        id: &'a str,
        agent: &'a str,
        at: Timestamp,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let added = self
                .writer
                .write(Op::Service(ServiceOp::ApproveRecovery {
                    id: id.to_owned(),
                    agent: agent.to_owned(),
                    at,
                }))
                .await?
                == 1;
            if added {
                // Approved once enough distinct agents approved (the
                // condition is in the update itself).
                self.writer
                    .write(Op::Service(ServiceOp::MoveRecovery {
                        id: id.to_owned(),
                        from: RecoveryStatus::Pending,
                        to: RecoveryStatus::Approved,
                        by: None,
                        at,
                        reason: None,
                    }))
                    .await?;
            }
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
            let op = ServiceOp::MoveRecovery {
                id: id.to_owned(),
                from,
                to,
                by: by.map(str::to_owned),
                at,
                reason: reason.map(str::to_owned),
            };
            Ok(self.writer.write(Op::Service(op)).await? == 1)
        })
    }

    fn insert_deliveries<'a>(&'a self, d: &'a [Delivery]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if d.is_empty() {
                return Ok(());
            }
            self.writer
                .write(Op::Service(ServiceOp::InsertDeliveries(d.to_vec())))
                .await?;
            Ok(())
        })
    }

    fn due_deliveries(&self, now: Timestamp, limit: u32) -> StoreFuture<'_, Vec<Delivery>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT * FROM webhook_deliveries WHERE status = 'pending' \
                 AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at LIMIT ?",
            )
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
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
            let op = ServiceOp::RecordAttempt {
                id: id.to_owned(),
                delivered,
                error: error.map(str::to_owned),
                next_attempt_at,
            };
            self.writer.write(Op::Service(op)).await?;
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
            let filter = |q: &mut QueryBuilder<Sqlite>| {
                q.push(" WHERE 1 = 1");
                if let Some(s) = status {
                    q.push(" AND status = ").push_bind(s.to_owned());
                }
            };
            let (rows, total) = Page {
                select: "*",
                from: "webhook_deliveries",
                order: "created_at DESC, id",
                offset,
                limit,
            }
            .fetch(&self.reader, filter)
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
                 WHERE s.auto_renew = 1 AND s.renewed_to IS NULL AND c.revoked_at IS NULL \
                 AND c.not_after < ? AND c.not_after > ? ORDER BY c.not_after LIMIT 100",
            )
            .bind(before)
            .bind(now)
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
            rows.iter()
                .filter_map(|r| service_cert_from_row(r, "").transpose())
                .collect()
        })
    }
}
