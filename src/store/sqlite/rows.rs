//! Decoding database rows into records.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{db_err, json_err};
use crate::error::{Error, Result};
use crate::model::{
    Account, AccountId, AccountStatus, Attempt, AttemptState, Authz, AuthzId, AuthzState, CertId,
    Certificate, ChallengeType, Order, OrderId, Revocation, RevocationReason,
};
use crate::protocol::{Identifier, IdentifierType};

pub(super) fn account_from_row(row: &SqliteRow) -> Result<Account> {
    let status: String = row.try_get("status").map_err(db_err)?;
    let contact: String = row.try_get("contact").map_err(db_err)?;
    Ok(Account {
        id: AccountId(row.try_get("id").map_err(db_err)?),
        status: AccountStatus::parse(&status)
            .ok_or_else(|| Error::internal(format_args!("bad account status {status:?}")))?,
        jwk: row.try_get("jwk").map_err(db_err)?,
        thumbprint: row.try_get("thumbprint").map_err(db_err)?,
        contact: serde_json::from_str(&contact).map_err(json_err)?,
        tos_agreed: row.try_get("tos_agreed").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
    })
}

pub(super) fn opt_json(row: &SqliteRow, col: &str) -> Result<Option<serde_json::Value>> {
    let raw: Option<String> = row.try_get(col).map_err(db_err)?;
    raw.map(|s| serde_json::from_str(&s).map_err(json_err))
        .transpose()
}

pub(super) fn ident_type(s: &str) -> Result<IdentifierType> {
    match s {
        "dns" => Ok(IdentifierType::Dns),
        "ip" => Ok(IdentifierType::Ip),
        other => Err(Error::internal(format_args!(
            "bad stored identifier type {other:?}"
        ))),
    }
}

pub(super) fn authz_from_row(row: &SqliteRow) -> Result<Authz> {
    let state: String = row.try_get("state").map_err(db_err)?;
    let offered: String = row.try_get("offered").map_err(db_err)?;
    let itype: String = row.try_get("ident_type").map_err(db_err)?;
    let attempt_type: Option<String> = row.try_get("attempt_type").map_err(db_err)?;
    let attempt = match attempt_type {
        None => None,
        Some(t) => {
            let st: String = row.try_get("attempt_state").map_err(db_err)?;
            Some(Attempt {
                kind: ChallengeType::parse(&t)
                    .ok_or_else(|| Error::internal(format_args!("bad challenge type {t:?}")))?,
                state: AttemptState::parse(&st)
                    .ok_or_else(|| Error::internal(format_args!("bad attempt state {st:?}")))?,
                started_at: row.try_get("attempt_started").map_err(db_err)?,
                validated_at: row.try_get("attempt_validated").map_err(db_err)?,
                error: opt_json(row, "attempt_error")?,
                records: opt_json(row, "attempt_records")?,
            })
        }
    };
    Ok(Authz {
        id: AuthzId(row.try_get("id").map_err(db_err)?),
        account_id: AccountId(row.try_get("account_id").map_err(db_err)?),
        identifier: Identifier {
            kind: ident_type(&itype)?,
            value: row.try_get("ident_value").map_err(db_err)?,
        },
        wildcard: row.try_get("wildcard").map_err(db_err)?,
        state: AuthzState::parse(&state)
            .ok_or_else(|| Error::internal(format_args!("bad authz state {state:?}")))?,
        expires: row.try_get("expires").map_err(db_err)?,
        token: row.try_get("token").map_err(db_err)?,
        offered: offered
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                ChallengeType::parse(s)
                    .ok_or_else(|| Error::internal(format_args!("bad challenge type {s:?}")))
            })
            .collect::<Result<_>>()?,
        attempt,
        created_at: row.try_get("created_at").map_err(db_err)?,
    })
}

pub(super) fn order_from_row(row: &SqliteRow) -> Result<Order> {
    let identifiers: String = row.try_get("identifiers").map_err(db_err)?;
    let authz_ids: String = row.try_get("authz_ids").map_err(db_err)?;
    let authz_ids: Vec<String> = serde_json::from_str(&authz_ids).map_err(json_err)?;
    let cert_id: Option<String> = row.try_get("cert_id").map_err(db_err)?;
    Ok(Order {
        id: OrderId(row.try_get("id").map_err(db_err)?),
        account_id: AccountId(row.try_get("account_id").map_err(db_err)?),
        identifiers: serde_json::from_str(&identifiers).map_err(json_err)?,
        authz_ids: authz_ids.into_iter().map(AuthzId).collect(),
        expires: row.try_get("expires").map_err(db_err)?,
        not_before: row.try_get("not_before").map_err(db_err)?,
        not_after: row.try_get("not_after").map_err(db_err)?,
        processing_until: row.try_get("processing_until").map_err(db_err)?,
        cert_id: cert_id.map(CertId),
        error: opt_json(row, "error")?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        profile: row.try_get("profile").map_err(db_err)?,
        replaces: row.try_get("replaces").map_err(db_err)?,
    })
}

pub(super) fn cert_from_row(row: &SqliteRow) -> Result<Certificate> {
    let order_id: Option<String> = row.try_get("order_id").map_err(db_err)?;
    Ok(Certificate {
        id: CertId(row.try_get("id").map_err(db_err)?),
        serial: row.try_get("serial").map_err(db_err)?,
        account_id: AccountId(row.try_get("account_id").map_err(db_err)?),
        order_id: order_id.map(OrderId),
        der: row.try_get("der").map_err(db_err)?,
        not_before: row.try_get("not_before").map_err(db_err)?,
        not_after: row.try_get("not_after").map_err(db_err)?,
        issued_at: row.try_get("issued_at").map_err(db_err)?,
        revoked: {
            let at: Option<i64> = row.try_get("revoked_at").map_err(db_err)?;
            let reason: Option<i64> = row.try_get("revocation_reason").map_err(db_err)?;
            match (at, reason) {
                (Some(at), Some(code)) => Some(Revocation {
                    at,
                    reason: RevocationReason::from_code(code).ok_or_else(|| {
                        Error::internal(format_args!("bad stored revocation reason {code}"))
                    })?,
                }),
                _ => None,
            }
        },
        common_name: row.try_get("common_name").map_err(db_err)?,
    })
}
