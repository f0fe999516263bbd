//! The certificate list's columns and filter on SQLite (rows are decoded
//! by `store::rows`, for both backends).

use sqlx::{QueryBuilder, Sqlite};

use crate::model::service::CertFilter;
use crate::model::Timestamp;

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
pub(super) fn cert_where(q: &mut QueryBuilder<Sqlite>, f: &CertFilter, now: Timestamp) {
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
