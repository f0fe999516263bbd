//! Decoding rows into records, once for both backends. The two schemas
//! have the same tables and column names, and the values read back as the
//! same Rust types (times and counters `i64`, flags `bool`, DER and sealed
//! keys bytes, JSON and identifiers text), so each record has one decoder
//! over [`Columns`], which PostgreSQL's and SQLite's rows both implement.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::model::service::{Delivery, Request, RequestParams, RequestStatus, ServiceCert};
use crate::model::{
    Account, AccountId, AccountStatus, Attempt, AttemptState, Authz, AuthzId, AuthzState, CertId,
    Certificate, ChallengeType, Order, OrderId, Revocation, RevocationReason,
};
use crate::protocol::{Identifier, IdentifierType};
use crate::store::shared::{
    session_caller, StoredDownload, StoredFlash, StoredGrant, StoredResponder, StoredSession,
};
use crate::store::RevokedCert;

/// A row of either backend, read by column name.
pub(crate) trait Columns {
    /// Column `col` as `T`; an internal error if it is missing or of
    /// another type.
    fn get<T: Column>(&self, col: &str) -> Result<T>;
}

/// A Rust type a column of either backend decodes to.
pub(crate) trait Column: Sized {
    fn from_pg(row: &PgRow, col: &str) -> Result<Self>;
    fn from_sqlite(row: &SqliteRow, col: &str) -> Result<Self>;
    /// The SQLite writer's own connection (store/sqlite/writer.rs).
    fn from_rusqlite(row: &rusqlite::Row<'_>, col: &str) -> Result<Self>;
}

fn decode_err(col: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format_args!("stored column {col}: {e}"))
}

macro_rules! column_types {
    ($($t:ty),* $(,)?) => {
        $(
            impl Column for $t {
                fn from_pg(row: &PgRow, col: &str) -> Result<Self> {
                    row.try_get(col).map_err(|e| decode_err(col, e))
                }
                fn from_sqlite(row: &SqliteRow, col: &str) -> Result<Self> {
                    row.try_get(col).map_err(|e| decode_err(col, e))
                }
                fn from_rusqlite(row: &rusqlite::Row<'_>, col: &str) -> Result<Self> {
                    row.get(col).map_err(|e| decode_err(col, e))
                }
            }
        )*
    };
}

column_types!(
    String,
    Option<String>,
    i64,
    Option<i64>,
    bool,
    Option<bool>,
    Vec<u8>,
    Option<Vec<u8>>,
);

impl Columns for PgRow {
    fn get<T: Column>(&self, col: &str) -> Result<T> {
        T::from_pg(self, col)
    }
}

impl Columns for SqliteRow {
    fn get<T: Column>(&self, col: &str) -> Result<T> {
        T::from_sqlite(self, col)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn get<T: Column>(&self, col: &str) -> Result<T> {
        T::from_rusqlite(self, col)
    }
}

/// The columns of `row` whose names start with a prefix, read without it
/// (`a_id` as `id`): a joined table's columns under an alias.
pub(crate) struct Prefixed<'r, R> {
    pub row: &'r R,
    pub prefix: &'static str,
}

impl<R: Columns> Columns for Prefixed<'_, R> {
    fn get<T: Column>(&self, col: &str) -> Result<T> {
        if self.prefix.is_empty() {
            return self.row.get(col);
        }
        self.row.get(&format!("{}{col}", self.prefix))
    }
}

pub(crate) fn json_err(e: serde_json::Error) -> Error {
    Error::internal(format_args!("stored JSON: {e}"))
}

fn json<T: serde::de::DeserializeOwned>(row: &impl Columns, col: &str) -> Result<T> {
    let raw: String = row.get(col)?;
    serde_json::from_str(&raw).map_err(json_err)
}

fn opt_json(row: &impl Columns, col: &str) -> Result<Option<serde_json::Value>> {
    let raw: Option<String> = row.get(col)?;
    raw.map(|s| serde_json::from_str(&s).map_err(json_err))
        .transpose()
}

fn ident_type(s: &str) -> Result<IdentifierType> {
    match s {
        "dns" => Ok(IdentifierType::Dns),
        "ip" => Ok(IdentifierType::Ip),
        other => Err(Error::internal(format_args!(
            "bad stored identifier type {other:?}"
        ))),
    }
}

fn challenge_type(s: &str) -> Result<ChallengeType> {
    ChallengeType::parse(s).ok_or_else(|| Error::internal(format_args!("bad challenge type {s:?}")))
}

fn reason(code: i64) -> Result<RevocationReason> {
    RevocationReason::from_code(code)
        .ok_or_else(|| Error::internal(format_args!("bad stored revocation reason {code}")))
}

/// `revoked_at` and `revocation_reason`, both set or neither.
fn revocation(row: &impl Columns) -> Result<Option<Revocation>> {
    let at: Option<i64> = row.get("revoked_at")?;
    let code: Option<i64> = row.get("revocation_reason")?;
    Ok(match (at, code) {
        (Some(at), Some(code)) => Some(Revocation {
            at,
            reason: reason(code)?,
        }),
        _ => None,
    })
}

/// A stored count (never negative) as u32.
fn count_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(crate) fn account_from_row(row: &impl Columns) -> Result<Account> {
    let status: String = row.get("status")?;
    Ok(Account {
        id: AccountId(row.get("id")?),
        status: AccountStatus::parse(&status)
            .ok_or_else(|| Error::internal(format_args!("bad account status {status:?}")))?,
        jwk: row.get("jwk")?,
        thumbprint: row.get("thumbprint")?,
        contact: json(row, "contact")?,
        tos_agreed: row.get("tos_agreed")?,
        created_at: row.get("created_at")?,
    })
}

pub(crate) fn authz_from_row(row: &impl Columns) -> Result<Authz> {
    let state: String = row.get("state")?;
    let offered: String = row.get("offered")?;
    let itype: String = row.get("ident_type")?;
    let attempt_type: Option<String> = row.get("attempt_type")?;
    let attempt = match attempt_type {
        None => None,
        Some(t) => {
            let st: String = row.get("attempt_state")?;
            Some(Attempt {
                kind: challenge_type(&t)?,
                state: AttemptState::parse(&st)
                    .ok_or_else(|| Error::internal(format_args!("bad attempt state {st:?}")))?,
                started_at: row.get("attempt_started")?,
                validated_at: row.get("attempt_validated")?,
                error: opt_json(row, "attempt_error")?,
                records: opt_json(row, "attempt_records")?,
            })
        }
    };
    Ok(Authz {
        id: AuthzId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        identifier: Identifier {
            kind: ident_type(&itype)?,
            value: row.get("ident_value")?,
        },
        wildcard: row.get("wildcard")?,
        state: AuthzState::parse(&state)
            .ok_or_else(|| Error::internal(format_args!("bad authz state {state:?}")))?,
        expires: row.get("expires")?,
        token: row.get("token")?,
        offered: offered
            .split(',')
            .filter(|s| !s.is_empty())
            .map(challenge_type)
            .collect::<Result<_>>()?,
        attempt,
        created_at: row.get("created_at")?,
    })
}

/// An order row joined with its certificate's id (`cert_id`, NULL when
/// none was issued).
pub(crate) fn order_from_row(row: &impl Columns) -> Result<Order> {
    let authz_ids: Vec<String> = json(row, "authz_ids")?;
    let cert_id: Option<String> = row.get("cert_id")?;
    Ok(Order {
        id: OrderId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        identifiers: json(row, "identifiers")?,
        authz_ids: authz_ids.into_iter().map(AuthzId).collect(),
        expires: row.get("expires")?,
        not_before: row.get("not_before")?,
        not_after: row.get("not_after")?,
        processing_until: row.get("processing_until")?,
        cert_id: cert_id.map(CertId),
        error: opt_json(row, "error")?,
        created_at: row.get("created_at")?,
        profile: row.get("profile")?,
        replaces: row.get("replaces")?,
    })
}

pub(crate) fn cert_from_row(row: &impl Columns) -> Result<Certificate> {
    let order_id: Option<String> = row.get("order_id")?;
    Ok(Certificate {
        id: CertId(row.get("id")?),
        serial: row.get("serial")?,
        account_id: AccountId(row.get("account_id")?),
        order_id: order_id.map(OrderId),
        der: row.get("der")?,
        not_before: row.get("not_before")?,
        not_after: row.get("not_after")?,
        issued_at: row.get("issued_at")?,
        revoked: revocation(row)?,
        common_name: row.get("common_name")?,
    })
}

/// A row of `serial, revoked_at, revocation_reason, not_after`.
pub(crate) fn revoked_from_row(row: &impl Columns) -> Result<RevokedCert> {
    Ok(RevokedCert {
        serial: row.get("serial")?,
        revocation: Revocation {
            at: row.get("revoked_at")?,
            reason: reason(row.get("revocation_reason")?)?,
        },
        not_after: row.get("not_after")?,
    })
}

pub(crate) fn request_from_row(row: &impl Columns) -> Result<Request> {
    let status: String = row.get("status")?;
    Ok(Request {
        id: row.get("id")?,
        status: RequestStatus::parse(&status)
            .ok_or_else(|| Error::internal(format_args!("bad stored request status {status}")))?,
        requester: row.get("requester")?,
        profile: row.get("profile")?,
        entity_id: row.get("entity_id")?,
        params: json::<RequestParams>(row, "params")?,
        batch_id: row.get("batch_id")?,
        serial: row.get("serial")?,
        error: row.get("error")?,
        created_at: row.get("created_at")?,
        decided_by: row.get("decided_by")?,
        decided_at: row.get("decided_at")?,
        reason: row.get("reason")?,
    })
}

/// The service columns of `row`, named with `prefix` (`s_` in the
/// certificate list's LEFT JOIN); None when the serial is NULL (an ACME
/// certificate there).
pub(crate) fn service_cert_from_row(
    row: &impl Columns,
    prefix: &str,
) -> Result<Option<ServiceCert>> {
    let col = |c: &str| format!("{prefix}{c}");
    let serial: Option<String> = row.get(&col("serial"))?;
    let Some(serial) = serial else {
        return Ok(None);
    };
    Ok(Some(ServiceCert {
        serial,
        entity_id: row.get(&col("entity_id"))?,
        profile: row.get(&col("profile"))?,
        requester: row.get(&col("requester"))?,
        key_sealed: row.get(&col("key_sealed"))?,
        auto_renew: row.get(&col("auto_renew"))?,
        renewed_to: row.get(&col("renewed_to"))?,
        request_id: row.get(&col("request_id"))?,
        created_at: row.get(&col("created_at"))?,
    }))
}

/// A row of the certificate list: a certificate's columns and, prefixed
/// `s_`, its service columns.
pub(crate) fn cert_list_row(row: &impl Columns) -> Result<crate::model::service::CertRow> {
    Ok(crate::model::service::CertRow {
        serial: row.get("serial")?,
        common_name: row.get("common_name")?,
        not_before: row.get("not_before")?,
        not_after: row.get("not_after")?,
        revoked: revocation(row)?,
        der: row.get("der")?,
        service: service_cert_from_row(row, "s_")?,
    })
}

pub(crate) fn delivery_from_row(row: &impl Columns) -> Result<Delivery> {
    Ok(Delivery {
        id: row.get("id")?,
        url: row.get("url")?,
        event_type: row.get("event_type")?,
        body: row.get("body")?,
        status: row.get("status")?,
        attempts: count_u32(row.get("attempts")?),
        next_attempt_at: row.get("next_attempt_at")?,
        last_error: row.get("last_error")?,
        created_at: row.get("created_at")?,
    })
}

pub(crate) fn grant_from_row(row: &impl Columns) -> Result<StoredGrant> {
    Ok(StoredGrant {
        caller: row.get("caller")?,
        serial: row.get("serial")?,
        format: row.get("format")?,
        password_sealed: row.get("password_sealed")?,
        expires: row.get("expires")?,
        recovery: row.get("recovery")?,
    })
}

pub(crate) fn download_from_row(row: &impl Columns) -> Result<StoredDownload> {
    Ok(StoredDownload {
        serial: row.get("serial")?,
        format: row.get("format")?,
        expires: row.get("expires")?,
        recovery: row.get("recovery")?,
        token_sealed: row.get("token_sealed")?,
    })
}

/// A console session row (its `flash` as read before clearing it), seen
/// at `last_seen`, with its pending `downloads`.
pub(crate) fn session_from_row(
    row: &impl Columns,
    last_seen: crate::model::Timestamp,
    downloads: Vec<StoredDownload>,
) -> Result<StoredSession> {
    let flash: Option<String> = row.get("flash")?;
    let flash = match flash {
        Some(text) => {
            let failed: Option<bool> = row.get("flash_failed")?;
            Some(StoredFlash {
                failed: failed.unwrap_or(false),
                text,
            })
        }
        None => None,
    };
    let role: String = row.get("role")?;
    Ok(StoredSession {
        caller: session_caller(row.get("caller")?, &role)?,
        csrf: row.get("csrf")?,
        created: row.get("created")?,
        last_seen,
        flash,
        downloads,
    })
}

pub(crate) fn responder_from_row(row: &impl Columns) -> Result<StoredResponder> {
    Ok(StoredResponder {
        cert: row.get("cert")?,
        key_sealed: row.get("key_sealed")?,
        not_after: row.get("not_after")?,
    })
}
