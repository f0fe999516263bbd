//! Statements and steps several `Store` methods share on PostgreSQL: the
//! inserts of accounts, authorizations, orders and certificates, and the
//! small conversions they need.

use sqlx::postgres::PgConnection;

use super::db_err;
use crate::error::Result;
use crate::model::{Account, Authz, Order};
use crate::store::rows::{account_from_row, json_err};

pub(super) const ORDER_SELECT: &str = "SELECT o.*, c.id AS cert_id FROM orders o \
     LEFT JOIN certificates c ON c.order_id = o.id WHERE o.id = $1";

/// The columns of `authzs` that [`crate::store::rows::authz_from_row`]
/// reads.
pub(super) const AUTHZ_COLUMNS: &[&str] = &[
    "id",
    "account_id",
    "ident_type",
    "ident_value",
    "wildcard",
    "state",
    "expires",
    "token",
    "offered",
    "attempt_type",
    "attempt_state",
    "attempt_started",
    "attempt_validated",
    "attempt_error",
    "attempt_records",
    "created_at",
];

/// The columns of `orders` that [`crate::store::rows::order_from_row`]
/// reads (besides `cert_id`, which is the certificate's).
pub(super) const ORDER_COLUMNS: &[&str] = &[
    "id",
    "account_id",
    "identifiers",
    "authz_ids",
    "expires",
    "not_before",
    "not_after",
    "processing_until",
    "error",
    "created_at",
    "profile",
    "replaces",
];

/// The columns of `certificates` that [`crate::store::rows::cert_from_row`]
/// reads.
pub(super) const CERT_COLUMNS: &[&str] = &[
    "id",
    "serial",
    "account_id",
    "order_id",
    "der",
    "not_before",
    "not_after",
    "issued_at",
    "revoked_at",
    "revocation_reason",
    "common_name",
];

/// A select list of `columns` of the table aliased `alias`, each renamed
/// with `prefix` (for [`crate::store::rows::Prefixed`]).
pub(super) fn prefixed(alias: &str, prefix: &str, columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("{alias}.{c} AS {prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The join that gives each row of the orders aliased `o` its
/// authorizations, as the table aliased `alias`: through the primary key,
/// `= ANY` of the ids (a join on the ids as a set-returning function would
/// be planned as a scan of every authorization).
pub(super) fn join_order_authzs(alias: &str) -> String {
    format!(
        "LEFT JOIN authzs {alias} \
         ON {alias}.id = ANY (ARRAY(SELECT jsonb_array_elements_text(o.authz_ids::jsonb)))"
    )
}

/// Orders (as [`ORDER_SELECT`], for each id of the array `$1`) joined with
/// their authorizations, whose columns are under `a_`: per order, one row
/// per authorization found, or one row with NULL `a_` columns for none.
pub(super) static ORDER_WITH_AUTHZS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT o.*, c.id AS cert_id, {} FROM orders o \
             LEFT JOIN certificates c ON c.order_id = o.id {} WHERE o.id = ANY($1)",
        prefixed("a", "a_", AUTHZ_COLUMNS),
        join_order_authzs("a"),
    )
});

pub(super) const INSERT_ACCOUNT: &str = "INSERT INTO accounts \
     (id, status, jwk, thumbprint, contact, tos_agreed, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (thumbprint) DO NOTHING";

pub(super) fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// `INSERT INTO authzs` of new authorizations (with no attempt yet) from
/// ten arrays, its parameters numbered from `$first`.
fn insert_authzs_sql(first: usize) -> String {
    let p = |i: usize| first + i;
    format!(
        "INSERT INTO authzs (id, account_id, ident_type, ident_value, wildcard, state, \
         expires, token, offered, created_at) \
         SELECT * FROM UNNEST(${}::text[], ${}::text[], ${}::text[], ${}::text[], \
         ${}::boolean[], ${}::text[], ${}::bigint[], ${}::text[], ${}::text[], ${}::bigint[])",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9)
    )
}

/// `INSERT INTO orders` of a new order (without a certificate or a
/// lease), its ten parameters numbered from `$first`.
fn insert_order_sql(first: usize) -> String {
    let params: Vec<String> = (first..first + 10).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO orders (id, account_id, identifiers, authz_ids, expires, not_before, \
         not_after, created_at, profile, replaces) VALUES ({})",
        params.join(", ")
    )
}

static INSERT_AUTHZS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_authzs_sql(1));
static INSERT_ORDER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_order_sql(1));
/// A new order and its new authorizations in one statement (so one round
/// trip, and atomic without a transaction).
static INSERT_ORDER_AND_AUTHZS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH a AS ({}) {}",
        insert_authzs_sql(11),
        insert_order_sql(1)
    )
});

/// Binds the ten arrays of [`insert_authzs_sql`].
fn bind_authzs<'q>(q: PgQuery<'q>, authzs: &'q [Authz]) -> PgQuery<'q> {
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
    q.bind(id)
        .bind(account)
        .bind(kind)
        .bind(value)
        .bind(wildcard)
        .bind(state)
        .bind(expires)
        .bind(token)
        .bind(offered)
        .bind(created)
}

/// Binds the ten values of [`insert_order_sql`].
fn bind_order<'q>(q: PgQuery<'q>, o: &'q Order) -> Result<PgQuery<'q>> {
    let identifiers = serde_json::to_string(&o.identifiers).map_err(json_err)?;
    let ids: Vec<&str> = o.authz_ids.iter().map(|a| a.0.as_str()).collect();
    let ids = serde_json::to_string(&ids).map_err(json_err)?;
    Ok(q.bind(&o.id.0)
        .bind(&o.account_id.0)
        .bind(identifiers)
        .bind(ids)
        .bind(o.expires)
        .bind(o.not_before)
        .bind(o.not_after)
        .bind(o.created_at)
        .bind(&o.profile)
        .bind(o.replaces.as_deref()))
}

/// Inserts new authorizations (with no attempt yet) in one statement.
pub(super) async fn insert_authzs(conn: &mut PgConnection, authzs: &[Authz]) -> Result<()> {
    bind_authzs(sqlx::query(INSERT_AUTHZS.as_str()), authzs)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Inserts `o` (without a certificate or a lease) and `authzs`, its new
/// authorizations, in one statement.
pub(super) async fn insert_order<'c, E>(conn: E, o: &Order, authzs: &[Authz]) -> Result<()>
where
    E: sqlx::PgExecutor<'c>,
{
    let q = if authzs.is_empty() {
        bind_order(sqlx::query(INSERT_ORDER.as_str()), o)?
    } else {
        bind_authzs(
            bind_order(sqlx::query(INSERT_ORDER_AND_AUTHZS.as_str()), o)?,
            authzs,
        )
    };
    q.execute(conn).await.map_err(db_err)?;
    Ok(())
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
