//! [`ServiceStore`] on SQLite: writes go through the writer task as
//! [`ServiceOp`]s, reads use the reader pool.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::writer::{Op, Sql};
use super::{db_err, json_err, SqliteStore};
use crate::error::{Error, Result};
use crate::model::{Certificate, Revocation, RevocationReason, Timestamp};
use crate::model::service::{
    Batch, CertFilter, CertRow, Delivery, Recovery, RecoveryStatus, Request, RequestFilter,
    RequestParams, RequestStatus, ServiceCert,
};
use crate::store::service::{ServiceStore, SERVICE_ACCOUNT};
use crate::store::StoreFuture;

/// A write of the service.
#[derive(Debug, Clone)]
pub(super) enum ServiceOp {
    InsertRequests(Option<Batch>, Vec<Request>),
    MoveRequest {
        id: String,
        from: RequestStatus,
        to: RequestStatus,
        by: Option<String>,
        at: Timestamp,
        note: Option<String>,
    },
    /// The certificate row, the service's row, and the request moved from
    /// approved to issued.
    RecordIssued(Box<Certificate>, Box<ServiceCert>),
    MarkRenewed {
        old: String,
        new: String,
    },
    InsertRecovery(Recovery),
    /// An agent's approval, if that agent has none yet and the recovery is
    /// pending (row count 1); the store then moves the recovery to approved
    /// once enough distinct agents approved.
    ApproveRecovery {
        id: String,
        agent: String,
        at: Timestamp,
    },
    MoveRecovery {
        id: String,
        from: RecoveryStatus,
        to: RecoveryStatus,
        by: Option<String>,
        at: Timestamp,
        reason: Option<String>,
    },
    InsertDeliveries(Vec<Delivery>),
    RecordAttempt {
        id: String,
        delivered: bool,
        error: Option<String>,
        next_attempt_at: Option<Timestamp>,
    },
}

fn insert_request(sql: &mut Sql, r: &Request) -> Result<()> {
    let params = serde_json::to_string(&r.params).map_err(json_err)?;
    sql.raw(
        "INSERT INTO service_requests (id, status, requester, profile, entity_id, params, \
         batch_id, serial, error, created_at, decided_by, decided_at, reason) VALUES (",
    )
    .text(&r.id)?
    .raw(",")
    .text(r.status.as_str())?
    .raw(",")
    .text(&r.requester)?
    .raw(",")
    .text(&r.profile)?
    .raw(",")
    .text(&r.entity_id)?
    .raw(",")
    .text(&params)?
    .raw(",")
    .opt_text(r.batch_id.as_deref())?
    .raw(",")
    .opt_text(r.serial.as_deref())?
    .raw(",")
    .opt_text(r.error.as_deref())?
    .raw(",")
    .int(r.created_at)
    .raw(",")
    .opt_text(r.decided_by.as_deref())?
    .raw(",")
    .opt_int(r.decided_at)
    .raw(",")
    .opt_text(r.reason.as_deref())?
    .raw(");\n");
    Ok(())
}

impl ServiceOp {
    pub(super) fn render(&self, sql: &mut Sql) -> Result<usize> {
        match self {
            ServiceOp::InsertRequests(batch, requests) => {
                let mut n = 0;
                if let Some(b) = batch {
                    sql.raw(
                        "INSERT INTO service_batches (id, name, requester, profile, created_at) \
                         VALUES (",
                    )
                    .text(&b.id)?
                    .raw(",")
                    .text(&b.name)?
                    .raw(",")
                    .text(&b.requester)?
                    .raw(",")
                    .text(&b.profile)?
                    .raw(",")
                    .int(b.created_at)
                    .raw(");\n");
                    n += 1;
                }
                for r in requests {
                    insert_request(sql, r)?;
                    n += 1;
                }
                Ok(n)
            }
            ServiceOp::MoveRequest {
                id,
                from,
                to,
                by,
                at,
                note,
            } => {
                sql.raw("UPDATE service_requests SET status = ")
                    .text(to.as_str())?
                    .raw(", decided_by = COALESCE(")
                    .opt_text(by.as_deref())?
                    .raw(", decided_by), decided_at = ")
                    .int(*at);
                if *to == RequestStatus::Failed {
                    sql.raw(", error = ").opt_text(note.as_deref())?;
                } else {
                    sql.raw(", reason = ").opt_text(note.as_deref())?;
                }
                sql.raw(" WHERE id = ")
                    .text(id)?
                    .raw(" AND status = ")
                    .text(from.as_str())?
                    .raw(";\n");
                Ok(1)
            }
            ServiceOp::RecordIssued(c, meta) => {
                sql.raw(
                    "INSERT INTO certificates (id, serial, account_id, order_id, der, \
                     not_before, not_after, issued_at, common_name) VALUES (",
                )
                .text(&c.id.0)?
                .raw(",")
                .text(&c.serial)?
                .raw(",")
                .text(SERVICE_ACCOUNT)?
                .raw(", NULL,")
                .blob(&c.der)
                .raw(",")
                .int(c.not_before)
                .raw(",")
                .int(c.not_after)
                .raw(",")
                .int(c.issued_at)
                .raw(",")
                .opt_text(c.common_name.as_deref())?
                .raw(");\n");
                sql.raw(
                    "INSERT INTO service_certs (serial, entity_id, profile, requester, \
                     key_sealed, auto_renew, renewed_to, request_id, created_at) VALUES (",
                )
                .text(&meta.serial)?
                .raw(",")
                .text(&meta.entity_id)?
                .raw(",")
                .text(&meta.profile)?
                .raw(",")
                .text(&meta.requester)?
                .raw(",");
                match &meta.key_sealed {
                    Some(k) => sql.blob(k),
                    None => sql.raw("NULL"),
                };
                sql.raw(",")
                    .bool(meta.auto_renew)
                    .raw(", NULL,")
                    .opt_text(meta.request_id.as_deref())?
                    .raw(",")
                    .int(meta.created_at)
                    .raw(");\n");
                let mut n = 2;
                if let Some(req) = &meta.request_id {
                    sql.raw("UPDATE service_requests SET status = 'issued', serial = ")
                        .text(&meta.serial)?
                        .raw(" WHERE id = ")
                        .text(req)?
                        .raw(" AND status = 'approved';\n");
                    n += 1;
                }
                Ok(n)
            }
            ServiceOp::InsertRecovery(r) => {
                sql.raw(
                    "INSERT INTO service_recoveries (id, serial, requester, status, required, \
                     created_at) VALUES (",
                )
                .text(&r.id)?
                .raw(",")
                .text(&r.serial)?
                .raw(",")
                .text(&r.requester)?
                .raw(",")
                .text(r.status.as_str())?
                .raw(",")
                .int(i64::from(r.required))
                .raw(",")
                .int(r.created_at)
                .raw(");\n");
                Ok(1)
            }
            ServiceOp::ApproveRecovery { id, agent, at } => {
                sql.raw("INSERT INTO service_recovery_approvals (recovery_id, agent, at) SELECT ")
                    .text(id)?
                    .raw(",")
                    .text(agent)?
                    .raw(",")
                    .int(*at)
                    .raw(" WHERE EXISTS (SELECT 1 FROM service_recoveries WHERE id = ")
                    .text(id)?
                    .raw(" AND status = 'pending') ON CONFLICT(recovery_id, agent) DO NOTHING;\n");
                Ok(1)
            }
            ServiceOp::MoveRecovery {
                id,
                from,
                to,
                by,
                at,
                reason,
            } => {
                sql.raw("UPDATE service_recoveries SET status = ")
                    .text(to.as_str())?
                    .raw(", decided_by = COALESCE(")
                    .opt_text(by.as_deref())?
                    .raw(", decided_by), decided_at = ")
                    .int(*at)
                    .raw(", reason = COALESCE(")
                    .opt_text(reason.as_deref())?
                    .raw(", reason) WHERE id = ")
                    .text(id)?
                    .raw(" AND status = ")
                    .text(from.as_str())?;
                if *from == RecoveryStatus::Pending && *to == RecoveryStatus::Approved {
                    // Only with enough distinct approvals.
                    sql.raw(
                        " AND (SELECT COUNT(*) FROM service_recovery_approvals a \
                         WHERE a.recovery_id = service_recoveries.id) >= required",
                    );
                }
                sql.raw(";\n");
                Ok(1)
            }
            ServiceOp::InsertDeliveries(list) => {
                for d in list {
                    sql.raw(
                        "INSERT INTO webhook_deliveries (id, url, event_type, body, status, \
                         attempts, next_attempt_at, last_error, created_at) VALUES (",
                    )
                    .text(&d.id)?
                    .raw(",")
                    .text(&d.url)?
                    .raw(",")
                    .text(&d.event_type)?
                    .raw(",")
                    .text(&d.body)?
                    .raw(",")
                    .text(&d.status)?
                    .raw(",")
                    .int(i64::from(d.attempts))
                    .raw(",")
                    .int(d.next_attempt_at)
                    .raw(",")
                    .opt_text(d.last_error.as_deref())?
                    .raw(",")
                    .int(d.created_at)
                    .raw(");\n");
                }
                Ok(list.len())
            }
            ServiceOp::RecordAttempt {
                id,
                delivered,
                error,
                next_attempt_at,
            } => {
                sql.raw("UPDATE webhook_deliveries SET attempts = attempts + 1, status = ")
                    .raw(match (delivered, next_attempt_at) {
                        (true, _) => "'delivered'",
                        (false, Some(_)) => "'pending'",
                        (false, None) => "'failed'",
                    })
                    .raw(", last_error = ")
                    .opt_text(error.as_deref())?
                    .raw(", next_attempt_at = COALESCE(")
                    .opt_int(*next_attempt_at)
                    .raw(", next_attempt_at) WHERE id = ")
                    .text(id)?
                    .raw(";\n");
                Ok(1)
            }
            ServiceOp::MarkRenewed { old, new } => {
                sql.raw("UPDATE service_certs SET renewed_to = ")
                    .text(new)?
                    .raw(" WHERE serial = ")
                    .text(old)?
                    .raw(" AND renewed_to IS NULL;\n");
                Ok(1)
            }
        }
    }

    pub(super) fn needs_flush(&self) -> bool {
        matches!(self, ServiceOp::RecordIssued(..))
    }
}

fn request_from_row(row: &SqliteRow) -> Result<Request> {
    let status: String = row.try_get("status").map_err(db_err)?;
    let params: String = row.try_get("params").map_err(db_err)?;
    Ok(Request {
        id: row.try_get("id").map_err(db_err)?,
        status: RequestStatus::parse(&status)
            .ok_or_else(|| Error::internal(format_args!("bad stored request status {status}")))?,
        requester: row.try_get("requester").map_err(db_err)?,
        profile: row.try_get("profile").map_err(db_err)?,
        entity_id: row.try_get("entity_id").map_err(db_err)?,
        params: serde_json::from_str::<RequestParams>(&params).map_err(json_err)?,
        batch_id: row.try_get("batch_id").map_err(db_err)?,
        serial: row.try_get("serial").map_err(db_err)?,
        error: row.try_get("error").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        decided_by: row.try_get("decided_by").map_err(db_err)?,
        decided_at: row.try_get("decided_at").map_err(db_err)?,
        reason: row.try_get("reason").map_err(db_err)?,
    })
}

fn service_cert_from_row(row: &SqliteRow, prefix: &str) -> Result<Option<ServiceCert>> {
    let col = |c: &str| format!("{prefix}{c}");
    let serial: Option<String> = row.try_get(col("serial").as_str()).map_err(db_err)?;
    let Some(serial) = serial else {
        return Ok(None);
    };
    Ok(Some(ServiceCert {
        serial,
        entity_id: row.try_get(col("entity_id").as_str()).map_err(db_err)?,
        profile: row.try_get(col("profile").as_str()).map_err(db_err)?,
        requester: row.try_get(col("requester").as_str()).map_err(db_err)?,
        key_sealed: row.try_get(col("key_sealed").as_str()).map_err(db_err)?,
        auto_renew: row.try_get(col("auto_renew").as_str()).map_err(db_err)?,
        renewed_to: row.try_get(col("renewed_to").as_str()).map_err(db_err)?,
        request_id: row.try_get(col("request_id").as_str()).map_err(db_err)?,
        created_at: row.try_get(col("created_at").as_str()).map_err(db_err)?,
    }))
}

fn cert_row(row: &SqliteRow) -> Result<CertRow> {
    let at: Option<i64> = row.try_get("revoked_at").map_err(db_err)?;
    let code: Option<i64> = row.try_get("revocation_reason").map_err(db_err)?;
    let revoked = match (at, code) {
        (Some(at), Some(code)) => Some(Revocation {
            at,
            reason: RevocationReason::from_code(code).ok_or_else(|| {
                Error::internal(format_args!("bad stored revocation reason {code}"))
            })?,
        }),
        _ => None,
    };
    Ok(CertRow {
        serial: row.try_get("serial").map_err(db_err)?,
        common_name: row.try_get("common_name").map_err(db_err)?,
        not_before: row.try_get("not_before").map_err(db_err)?,
        not_after: row.try_get("not_after").map_err(db_err)?,
        revoked,
        der: row.try_get("der").map_err(db_err)?,
        service: service_cert_from_row(row, "s_")?,
    })
}

/// A certificate's columns and, prefixed `s_`, its service columns (from
/// a LEFT JOIN on service_certs `s`).
const CERT_COLUMNS: &str = "c.serial, c.common_name, c.not_before, c.not_after, c.revoked_at, \
     c.revocation_reason, c.der, \
     s.serial AS s_serial, s.entity_id AS s_entity_id, \
     s.profile AS s_profile, s.requester AS s_requester, s.key_sealed AS s_key_sealed, \
     s.auto_renew AS s_auto_renew, s.renewed_to AS s_renewed_to, \
     s.request_id AS s_request_id, s.created_at AS s_created_at";

/// Appends the WHERE clause of a certificate filter (bound values only).
fn cert_where(q: &mut QueryBuilder<Sqlite>, f: &CertFilter, now: Timestamp) {
    q.push(" WHERE 1 = 1");
    if let Some(e) = &f.entity_id {
        q.push(" AND s.entity_id = ").push_bind(e);
    }
    if let Some(r) = &f.requester {
        q.push(" AND s.requester = ").push_bind(r);
    }
    if let Some(cn) = &f.common_name {
        q.push(" AND c.common_name = ").push_bind(cn);
    }
    if let Some(serial) = &f.serial {
        q.push(" AND c.serial = ").push_bind(serial);
    }
    if let Some(t) = f.expiring_before {
        q.push(" AND c.not_after < ").push_bind(t);
    }
    match f.status.as_deref() {
        Some("revoked") => {
            q.push(" AND c.revoked_at IS NOT NULL");
        }
        Some("expired") => {
            q.push(" AND c.revoked_at IS NULL AND c.not_after <= ")
                .push_bind(now);
        }
        Some("valid") => {
            q.push(" AND c.revoked_at IS NULL AND c.not_after > ")
                .push_bind(now);
        }
        _ => {}
    }
}

fn delivery_from_row(row: &SqliteRow) -> Result<Delivery> {
    let attempts: i64 = row.try_get("attempts").map_err(db_err)?;
    Ok(Delivery {
        id: row.try_get("id").map_err(db_err)?,
        url: row.try_get("url").map_err(db_err)?,
        event_type: row.try_get("event_type").map_err(db_err)?,
        body: row.try_get("body").map_err(db_err)?,
        status: row.try_get("status").map_err(db_err)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: row.try_get("next_attempt_at").map_err(db_err)?,
        last_error: row.try_get("last_error").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
    })
}

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
        reader: &sqlx::SqlitePool,
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
