//! Decoding PostgreSQL rows into records. The columns are those of
//! schema.rs: BIGINT times, BOOLEAN flags, BYTEA DER, TEXT for the rest
//! (JSON included), so each record reads back exactly as it was written.

use sqlx::postgres::PgRow;
use sqlx::Row;

use super::db_err;
use crate::error::{Error, Result};
use crate::model::{
    Account, AccountId, AccountStatus, Attempt, AttemptState, Authz, AuthzId, AuthzState, CertId,
    Certificate, ChallengeType, Order, OrderId, Revocation, RevocationReason,
};
use crate::protocol::{Identifier, IdentifierType};
use crate::store::RevokedCert;

pub(super) fn json_err(e: serde_json::Error) -> Error {
    Error::internal(format_args!("stored JSON: {e}"))
}

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col).map_err(db_err)
}

pub(super) fn account_from_row(row: &PgRow) -> Result<Account> {
    let status: String = get(row, "status")?;
    let contact: String = get(row, "contact")?;
    Ok(Account {
        id: AccountId(get(row, "id")?),
        status: AccountStatus::parse(&status)
            .ok_or_else(|| Error::internal(format_args!("bad account status {status:?}")))?,
        jwk: get(row, "jwk")?,
        thumbprint: get(row, "thumbprint")?,
        contact: serde_json::from_str(&contact).map_err(json_err)?,
        tos_agreed: get(row, "tos_agreed")?,
        created_at: get(row, "created_at")?,
    })
}

fn opt_json(row: &PgRow, col: &str) -> Result<Option<serde_json::Value>> {
    let raw: Option<String> = get(row, col)?;
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

pub(super) fn authz_from_row(row: &PgRow) -> Result<Authz> {
    let state: String = get(row, "state")?;
    let offered: String = get(row, "offered")?;
    let itype: String = get(row, "ident_type")?;
    let attempt_type: Option<String> = get(row, "attempt_type")?;
    let attempt = match attempt_type {
        None => None,
        Some(t) => {
            let st: String = get(row, "attempt_state")?;
            Some(Attempt {
                kind: challenge_type(&t)?,
                state: AttemptState::parse(&st)
                    .ok_or_else(|| Error::internal(format_args!("bad attempt state {st:?}")))?,
                started_at: get(row, "attempt_started")?,
                validated_at: get(row, "attempt_validated")?,
                error: opt_json(row, "attempt_error")?,
                records: opt_json(row, "attempt_records")?,
            })
        }
    };
    Ok(Authz {
        id: AuthzId(get(row, "id")?),
        account_id: AccountId(get(row, "account_id")?),
        identifier: Identifier {
            kind: ident_type(&itype)?,
            value: get(row, "ident_value")?,
        },
        wildcard: get(row, "wildcard")?,
        state: AuthzState::parse(&state)
            .ok_or_else(|| Error::internal(format_args!("bad authz state {state:?}")))?,
        expires: get(row, "expires")?,
        token: get(row, "token")?,
        offered: offered
            .split(',')
            .filter(|s| !s.is_empty())
            .map(challenge_type)
            .collect::<Result<_>>()?,
        attempt,
        created_at: get(row, "created_at")?,
    })
}

/// An order row joined with its certificate's id (`cert_id`, NULL when
/// none was issued).
pub(super) fn order_from_row(row: &PgRow) -> Result<Order> {
    let identifiers: String = get(row, "identifiers")?;
    let authz_ids: String = get(row, "authz_ids")?;
    let authz_ids: Vec<String> = serde_json::from_str(&authz_ids).map_err(json_err)?;
    let cert_id: Option<String> = get(row, "cert_id")?;
    Ok(Order {
        id: OrderId(get(row, "id")?),
        account_id: AccountId(get(row, "account_id")?),
        identifiers: serde_json::from_str(&identifiers).map_err(json_err)?,
        authz_ids: authz_ids.into_iter().map(AuthzId).collect(),
        expires: get(row, "expires")?,
        not_before: get(row, "not_before")?,
        not_after: get(row, "not_after")?,
        processing_until: get(row, "processing_until")?,
        cert_id: cert_id.map(CertId),
        error: opt_json(row, "error")?,
        created_at: get(row, "created_at")?,
        profile: get(row, "profile")?,
        replaces: get(row, "replaces")?,
    })
}

fn reason(code: i64) -> Result<RevocationReason> {
    RevocationReason::from_code(code)
        .ok_or_else(|| Error::internal(format_args!("bad stored revocation reason {code}")))
}

pub(super) fn cert_from_row(row: &PgRow) -> Result<Certificate> {
    let order_id: Option<String> = get(row, "order_id")?;
    let at: Option<i64> = get(row, "revoked_at")?;
    let code: Option<i64> = get(row, "revocation_reason")?;
    Ok(Certificate {
        id: CertId(get(row, "id")?),
        serial: get(row, "serial")?,
        account_id: AccountId(get(row, "account_id")?),
        order_id: order_id.map(OrderId),
        der: get(row, "der")?,
        not_before: get(row, "not_before")?,
        not_after: get(row, "not_after")?,
        issued_at: get(row, "issued_at")?,
        revoked: match (at, code) {
            (Some(at), Some(code)) => Some(Revocation {
                at,
                reason: reason(code)?,
            }),
            _ => None,
        },
        common_name: get(row, "common_name")?,
    })
}

/// A row of `serial, revoked_at, revocation_reason, not_after`.
pub(super) fn revoked_from_row(row: &PgRow) -> Result<RevokedCert> {
    Ok(RevokedCert {
        serial: get(row, "serial")?,
        revocation: Revocation {
            at: get(row, "revoked_at")?,
            reason: reason(get(row, "revocation_reason")?)?,
        },
        not_after: get(row, "not_after")?,
    })
}
