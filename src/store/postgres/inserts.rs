//! Statements and steps several `Store` methods share on PostgreSQL: the
//! inserts of accounts, authorizations, orders and certificates, and the
//! small conversions they need.

use sqlx::postgres::PgConnection;

use super::db_err;
use super::rows::{account_from_row, json_err};
use crate::error::{Error, Result};
use crate::model::{Account, AttemptState, Authz, AuthzState, Certificate, Order, OrderId};

pub(super) const ORDER_SELECT: &str = "SELECT o.*, c.id AS cert_id FROM orders o \
     LEFT JOIN certificates c ON c.order_id = o.id WHERE o.id = $1";

pub(super) const INSERT_ACCOUNT: &str = "INSERT INTO accounts \
     (id, status, jwk, thumbprint, contact, tos_agreed, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (thumbprint) DO NOTHING";

/// A certificate linked to no order.
pub(super) const INSERT_CERTIFICATE: &str = "INSERT INTO certificates \
     (id, serial, account_id, order_id, der, not_before, not_after, issued_at, common_name) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// A certificate linked to its order, unless the order has one already.
pub(super) const INSERT_LINKED_CERTIFICATE: &str = "INSERT INTO certificates \
     (id, serial, account_id, order_id, der, not_before, not_after, issued_at, common_name) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (order_id) DO NOTHING";

/// The authorization state a settled attempt leaves.
pub(super) fn settled_state(state: AttemptState) -> Result<AuthzState> {
    match state {
        AttemptState::Valid => Ok(AuthzState::Valid),
        AttemptState::Invalid => Ok(AuthzState::Invalid),
        AttemptState::Processing => Err(Error::internal(
            "a validation result cannot be 'processing'",
        )),
    }
}

pub(super) fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Inserts new authorizations (with no attempt yet) in one statement.
pub(super) async fn insert_authzs(conn: &mut PgConnection, authzs: &[Authz]) -> Result<()> {
    let n = authzs.len();
    let (mut id, mut account, mut kind, mut value) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut wildcard, mut state, mut expires, mut token, mut offered, mut created) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for a in authzs {
        id.push(a.id.0.as_str());
        account.push(a.account_id.0.as_str());
        kind.push(a.identifier.kind.as_str());
        value.push(a.identifier.value.as_str());
        wildcard.push(a.wildcard);
        state.push(a.state.as_str());
        expires.push(a.expires);
        token.push(a.token.as_str());
        let types: Vec<&str> = a.offered.iter().map(|t| t.as_str()).collect();
        offered.push(types.join(","));
        created.push(a.created_at);
    }
    sqlx::query(
        "INSERT INTO authzs (id, account_id, ident_type, ident_value, wildcard, state, \
         expires, token, offered, created_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
         $5::boolean[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::bigint[])",
    )
    .bind(id)
    .bind(account)
    .bind(kind)
    .bind(value)
    .bind(wildcard)
    .bind(state)
    .bind(expires)
    .bind(token)
    .bind(offered)
    .bind(created)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Inserts `o` (without a certificate or a lease).
pub(super) async fn insert_order(conn: &mut PgConnection, o: &Order) -> Result<()> {
    let identifiers = serde_json::to_string(&o.identifiers).map_err(json_err)?;
    let ids: Vec<&str> = o.authz_ids.iter().map(|a| a.0.as_str()).collect();
    let ids = serde_json::to_string(&ids).map_err(json_err)?;
    sqlx::query(
        "INSERT INTO orders (id, account_id, identifiers, authz_ids, expires, not_before, \
         not_after, created_at, profile, replaces) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&o.id.0)
    .bind(&o.account_id.0)
    .bind(identifiers)
    .bind(ids)
    .bind(o.expires)
    .bind(o.not_before)
    .bind(o.not_after)
    .bind(o.created_at)
    .bind(&o.profile)
    .bind(o.replaces.as_deref())
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Inserts a certificate linked to `order` (or to none); false when the
/// order already has a certificate (`certificates.order_id` is UNIQUE).
pub(super) async fn insert_certificate(
    conn: &mut PgConnection,
    c: &Certificate,
    order: Option<&OrderId>,
) -> Result<bool> {
    let sql = match order {
        Some(_) => INSERT_LINKED_CERTIFICATE,
        None => INSERT_CERTIFICATE,
    };
    let done = sqlx::query(sql)
        .bind(&c.id.0)
        .bind(&c.serial)
        .bind(&c.account_id.0)
        .bind(order.map(|o| o.0.as_str()))
        .bind(&c.der)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(c.issued_at)
        .bind(c.common_name.as_deref())
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// The account with this key, if any.
pub(super) async fn account_where_thumbprint(
    conn: &mut PgConnection,
    thumbprint: &str,
) -> Result<Option<Account>> {
    let row = sqlx::query("SELECT * FROM accounts WHERE thumbprint = $1")
        .bind(thumbprint)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(account_from_row).transpose()
}
