//! The service's writes: each [`ServiceOp`] is one function appending its
//! statements to the batch text. They go through the store's writer as
//! [`Op::Service`](super::super::ops::Op::Service), so they share its group
//! commit; as there, an op's outcome is its last statement's row count, and
//! a conditional move puts its condition in that statement.

use super::super::json_err;
use super::super::sql::Sql;
use crate::error::Result;
use crate::model::service::{
    Batch, Delivery, Recovery, RecoveryStatus, Request, RequestStatus, ServiceCert,
};
use crate::model::{Certificate, Timestamp};
use crate::store::service::SERVICE_ACCOUNT;

/// A write of the service.
#[derive(Debug, Clone)]
pub(in crate::store::sqlite) enum ServiceOp {
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

impl ServiceOp {
    /// Appends the op's statements; returns how many.
    pub(in crate::store::sqlite) fn render(&self, sql: &mut Sql) -> Result<usize> {
        match self {
            ServiceOp::InsertRequests(batch, requests) => {
                insert_requests(sql, batch.as_ref(), requests)
            }
            ServiceOp::MoveRequest {
                id,
                from,
                to,
                by,
                at,
                note,
            } => move_request(sql, id, *from, *to, by.as_deref(), *at, note.as_deref()),
            ServiceOp::RecordIssued(c, meta) => record_issued(sql, c, meta),
            ServiceOp::MarkRenewed { old, new } => mark_renewed(sql, old, new),
            ServiceOp::InsertRecovery(r) => insert_recovery(sql, r),
            ServiceOp::ApproveRecovery { id, agent, at } => approve_recovery(sql, id, agent, *at),
            ServiceOp::MoveRecovery {
                id,
                from,
                to,
                by,
                at,
                reason,
            } => move_recovery(sql, id, *from, *to, by.as_deref(), *at, reason.as_deref()),
            ServiceOp::InsertDeliveries(list) => insert_deliveries(sql, list),
            ServiceOp::RecordAttempt {
                id,
                delivered,
                error,
                next_attempt_at,
            } => record_attempt(sql, id, *delivered, error.as_deref(), *next_attempt_at),
        }
    }

    /// Whether the op records a certificate (flushed like an ACME one).
    pub(in crate::store::sqlite) fn needs_flush(&self) -> bool {
        matches!(self, ServiceOp::RecordIssued(..))
    }
}

// Requests and batches.

/// The batch (if any), then each request: one INSERT each.
fn insert_requests(sql: &mut Sql, batch: Option<&Batch>, requests: &[Request]) -> Result<usize> {
    let mut n = 0;
    if let Some(b) = batch {
        insert_batch(sql, b)?;
        n += 1;
    }
    for r in requests {
        insert_request(sql, r)?;
        n += 1;
    }
    Ok(n)
}

fn insert_batch(sql: &mut Sql, b: &Batch) -> Result<()> {
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
    Ok(())
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

/// Moves a request from `from` to `to` if it still is `from`; the note is
/// the error of a failed request, the reason of any other decision.
fn move_request(
    sql: &mut Sql,
    id: &str,
    from: RequestStatus,
    to: RequestStatus,
    by: Option<&str>,
    at: Timestamp,
    note: Option<&str>,
) -> Result<usize> {
    sql.raw("UPDATE service_requests SET status = ")
        .text(to.as_str())?
        .raw(", decided_by = COALESCE(")
        .opt_text(by)?
        .raw(", decided_by), decided_at = ")
        .int(at);
    if to == RequestStatus::Failed {
        sql.raw(", error = ").opt_text(note)?;
    } else {
        sql.raw(", reason = ").opt_text(note)?;
    }
    sql.raw(" WHERE id = ")
        .text(id)?
        .raw(" AND status = ")
        .text(from.as_str())?
        .raw(";\n");
    Ok(1)
}

// Certificates.

/// The certificate (in the shared table, under the service account), the
/// service's row about it, and its request (if any) moved from approved to
/// issued.
fn record_issued(sql: &mut Sql, c: &Certificate, meta: &ServiceCert) -> Result<usize> {
    insert_service_certificate(sql, c)?;
    insert_service_cert(sql, meta)?;
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

/// The certificates row of a service certificate: no order.
fn insert_service_certificate(sql: &mut Sql, c: &Certificate) -> Result<()> {
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
    Ok(())
}

/// The service_certs row (not renewed yet).
fn insert_service_cert(sql: &mut Sql, meta: &ServiceCert) -> Result<()> {
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
    Ok(())
}

/// Records that `old` was renewed by `new`, unless it already was.
fn mark_renewed(sql: &mut Sql, old: &str, new: &str) -> Result<usize> {
    sql.raw("UPDATE service_certs SET renewed_to = ")
        .text(new)?
        .raw(" WHERE serial = ")
        .text(old)?
        .raw(" AND renewed_to IS NULL;\n");
    Ok(1)
}

// Key recoveries.

fn insert_recovery(sql: &mut Sql, r: &Recovery) -> Result<usize> {
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

/// An agent's approval of a pending recovery, once per agent.
fn approve_recovery(sql: &mut Sql, id: &str, agent: &str, at: Timestamp) -> Result<usize> {
    sql.raw("INSERT INTO service_recovery_approvals (recovery_id, agent, at) SELECT ")
        .text(id)?
        .raw(",")
        .text(agent)?
        .raw(",")
        .int(at)
        .raw(" WHERE EXISTS (SELECT 1 FROM service_recoveries WHERE id = ")
        .text(id)?
        .raw(" AND status = 'pending') ON CONFLICT(recovery_id, agent) DO NOTHING;\n");
    Ok(1)
}

/// Moves a recovery from `from` to `to` if it still is `from`; from pending
/// to approved only with enough distinct approvals.
fn move_recovery(
    sql: &mut Sql,
    id: &str,
    from: RecoveryStatus,
    to: RecoveryStatus,
    by: Option<&str>,
    at: Timestamp,
    reason: Option<&str>,
) -> Result<usize> {
    sql.raw("UPDATE service_recoveries SET status = ")
        .text(to.as_str())?
        .raw(", decided_by = COALESCE(")
        .opt_text(by)?
        .raw(", decided_by), decided_at = ")
        .int(at)
        .raw(", reason = COALESCE(")
        .opt_text(reason)?
        .raw(", reason) WHERE id = ")
        .text(id)?
        .raw(" AND status = ")
        .text(from.as_str())?;
    if from == RecoveryStatus::Pending && to == RecoveryStatus::Approved {
        sql.raw(
            " AND (SELECT COUNT(*) FROM service_recovery_approvals a \
             WHERE a.recovery_id = service_recoveries.id) >= required",
        );
    }
    sql.raw(";\n");
    Ok(1)
}

// Webhook deliveries.

/// One INSERT per delivery.
fn insert_deliveries(sql: &mut Sql, list: &[Delivery]) -> Result<usize> {
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

/// Counts an attempt: delivered, pending again at `next_attempt_at`, or
/// failed for good when there is no next attempt.
fn record_attempt(
    sql: &mut Sql,
    id: &str,
    delivered: bool,
    error: Option<&str>,
    next_attempt_at: Option<Timestamp>,
) -> Result<usize> {
    sql.raw("UPDATE webhook_deliveries SET attempts = attempts + 1, status = ")
        .raw(match (delivered, next_attempt_at) {
            (true, _) => "'delivered'",
            (false, Some(_)) => "'pending'",
            (false, None) => "'failed'",
        })
        .raw(", last_error = ")
        .opt_text(error)?
        .raw(", next_attempt_at = COALESCE(")
        .opt_int(next_attempt_at)
        .raw(", next_attempt_at) WHERE id = ")
        .text(id)?
        .raw(";\n");
    Ok(1)
}
