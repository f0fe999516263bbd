//! The service's PostgreSQL-only reading: batches and recoveries (whose
//! approvals are an array here), the certificate list's columns and
//! filter, and one page of a list with its total (the rows both backends
//! share are decoded by `store::rows`). Values are bound (`push_bind`); the SQL fragments
//! are this module's and service.rs's constants.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::db_err;
use crate::error::{Error, Result};
use crate::model::service::{Batch, CertFilter, Recovery, RecoveryStatus};
use crate::model::Timestamp;

/// A stored count (never negative) or small number as u32/u64.
fn count_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(super) fn batch_from_row(r: &PgRow) -> Result<Batch> {
    Ok(Batch {
        id: r.try_get("id").map_err(db_err)?,
        name: r.try_get("name").map_err(db_err)?,
        requester: r.try_get("requester").map_err(db_err)?,
        profile: r.try_get("profile").map_err(db_err)?,
        created_at: r.try_get("created_at").map_err(db_err)?,
    })
}

/// A certificate's columns and, prefixed `s_`, its service columns (from
/// a LEFT JOIN on service_certs `s`).
pub(super) const CERT_COLUMNS: &str =
    "c.serial, c.common_name, c.not_before, c.not_after, c.revoked_at, \
     c.revocation_reason, c.der, \
     s.serial AS s_serial, s.entity_id AS s_entity_id, \
     s.profile AS s_profile, s.requester AS s_requester, s.key_sealed AS s_key_sealed, \
     s.auto_renew AS s_auto_renew, s.renewed_to AS s_renewed_to, \
     s.request_id AS s_request_id, s.created_at AS s_created_at";

/// Appends the WHERE clause of a certificate filter (bound values only).
pub(super) fn cert_where(q: &mut QueryBuilder<Postgres>, f: &CertFilter, now: Timestamp) {
    q.push(" WHERE TRUE");
    if let Some(e) = &f.entity_id {
        q.push(" AND s.entity_id = ").push_bind(e.clone());
    }
    if let Some(r) = &f.requester {
        q.push(" AND s.requester = ").push_bind(r.clone());
    }
    if let Some(cn) = &f.common_name {
        q.push(" AND c.common_name = ").push_bind(cn.clone());
    }
    if let Some(serial) = &f.serial {
        q.push(" AND c.serial = ").push_bind(serial.clone());
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

/// A recovery row with the agents who approved it (an `approvals` array).
pub(super) fn recovery_from_row(row: &PgRow) -> Result<Recovery> {
    let status: String = row.try_get("status").map_err(db_err)?;
    let required: i64 = row.try_get("required").map_err(db_err)?;
    Ok(Recovery {
        id: row.try_get("id").map_err(db_err)?,
        serial: row.try_get("serial").map_err(db_err)?,
        requester: row.try_get("requester").map_err(db_err)?,
        status: RecoveryStatus::parse(&status)
            .ok_or_else(|| Error::internal(format_args!("bad stored recovery status {status}")))?,
        required: count_u32(required),
        approvals: row.try_get("approvals").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        decided_by: row.try_get("decided_by").map_err(db_err)?,
        decided_at: row.try_get("decided_at").map_err(db_err)?,
        reason: row.try_get("reason").map_err(db_err)?,
    })
}

/// One page of a list: how many rows of `from` match the filter in all,
/// and the rows `select`ed in `order` from `offset`, at most `limit`. The
/// two reads are separate statements, as in SQLite: under concurrent
/// writes the total may differ from the page by the rows written between.
pub(super) struct Page {
    pub select: &'static str,
    pub from: &'static str,
    pub order: &'static str,
    pub offset: u32,
    pub limit: u32,
}

impl Page {
    pub(super) async fn fetch(
        &self,
        pool: &crate::store::reuse::Reuse<Postgres>,
        filter: impl Fn(&mut QueryBuilder<Postgres>),
    ) -> Result<(Vec<PgRow>, u64)> {
        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM ");
        count.push(self.from);
        filter(&mut count);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(pool)
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
        let rows = q.build().fetch_all(pool).await.map_err(db_err)?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}
