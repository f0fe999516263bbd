//! The store's writes: each [`Op`] is one function that appends its
//! statements to a batch's [`Sql`] text, and one rule that brings the read
//! cache in line once the batch committed.
//!
//! An op's outcome is its last statement's row count, so an op whose
//! effect is conditional puts the condition in that statement (a `WHERE`
//! or an `ON CONFLICT … DO NOTHING`), and the caller learns from the count
//! whether it won. The writer ([`super::writer`]) batches ops; nothing here
//! runs SQL.

use super::cache::Cache;
use super::json_err;
use super::sql::Sql;
use crate::error::Result;
use crate::model::{
    Account, AccountId, AccountStatus, Attempt, AttemptState, Authz, AuthzId, AuthzState, CertId,
    Certificate, ChallengeType, Order, OrderId, Revocation, Timestamp,
};
use crate::store::settled_state;
use crate::store::ValidationResult;

/// One write, as the store's methods ask for it.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Inserts an account; with an external account binding key id, the
    /// binding too, and the account only if that key id was free.
    CreateAccount(Account, Option<String>),
    /// Inserts a standalone authorization (newAuthz).
    CreateAuthz(Authz),
    UpdateContact(AccountId, Vec<String>),
    /// Deactivates an account and its pending authorizations.
    Deactivate(AccountId),
    /// Deactivates a pending or valid authorization (RFC 8555 §7.5.2).
    DeactivateAuthz(AuthzId),
    /// Inserts an order and its new authorizations; with a replacement,
    /// only if the certificate's replacement is still the expected one,
    /// which the same transaction moves to this order (RFC 9773).
    CreateOrder(Order, Vec<Authz>, Option<Replacement>),
    StartChallenge {
        authz: AuthzId,
        kind: ChallengeType,
        now: Timestamp,
        settled: Option<ValidationResult>,
    },
    FinishChallenge(AuthzId, ValidationResult),
    /// Insert a certificate; its `order_id`, if any, links it to its order.
    StoreCertificate(Certificate),
    ReleaseAllLeases,
    /// Drops the leases one instance holds.
    ReleaseLeasesOf(String),
    ChangeKey {
        account: AccountId,
        old_thumbprint: String,
        jwk: String,
        thumbprint: String,
    },
    Revoke(CertId, Revocation),
    /// A write of the operator service.
    Service(super::service::ServiceOp),
    /// A spend or refund of rate-limit buckets.
    RateLimit(super::ratelimit::RateLimitOp),
    /// A write of the state instances share (nonces, job leases, grants).
    Shared(super::shared::SharedOp),
}

/// The certificate an order replaces, and the replacement it must still
/// have for the order to be created.
#[derive(Debug, Clone)]
pub(super) struct Replacement {
    pub cert: CertId,
    pub expected: Option<OrderId>,
}

impl Op {
    /// Appends the op's statements; returns how many.
    pub(super) fn render(&self, sql: &mut Sql) -> Result<usize> {
        match self {
            Op::CreateAccount(a, kid) => create_account(sql, a, kid.as_deref()),
            Op::CreateAuthz(a) => {
                insert_authzs(sql, std::slice::from_ref(a), None)?;
                Ok(1)
            }
            Op::UpdateContact(id, contact) => update_contact(sql, id, contact),
            Op::Deactivate(id) => deactivate_account(sql, id),
            Op::DeactivateAuthz(id) => deactivate_authz(sql, id),
            Op::CreateOrder(o, authzs, replacement) => {
                create_order(sql, o, authzs, replacement.as_ref())
            }
            Op::StartChallenge {
                authz,
                kind,
                now,
                settled,
            } => start_challenge(sql, authz, *kind, *now, settled.as_ref()),
            Op::FinishChallenge(authz, r) => finish_challenge(sql, authz, r),
            Op::StoreCertificate(c) => store_certificate(sql, c),
            Op::ChangeKey {
                account,
                old_thumbprint,
                jwk,
                thumbprint,
            } => change_key(sql, account, old_thumbprint, jwk, thumbprint),
            Op::Revoke(id, r) => revoke(sql, id, r),
            Op::Service(op) => op.render(sql),
            Op::RateLimit(op) => op.render(sql),
            Op::Shared(op) => op.render(sql),
            Op::ReleaseAllLeases => release_all_leases(sql),
            Op::ReleaseLeasesOf(owner) => release_leases_of(sql, owner),
        }
    }

    /// Whether the op records a certificate, which durability "issuance"
    /// flushes to disk before answering.
    pub(super) fn needs_flush(&self) -> bool {
        match self {
            Op::StoreCertificate(_) => true,
            Op::Service(s) => s.needs_flush(),
            _ => false,
        }
    }

    /// Brings the cache in line with the committed op (`rows`: the row count
    /// of its last statement).
    pub(super) fn apply(&self, cache: &mut Cache, rows: u64) {
        if rows == 0 {
            return;
        }
        match self {
            Op::CreateAccount(a, _) => cache.accounts.put(a.id.clone(), a.clone()),
            Op::CreateAuthz(a) => cache.authzs.put(a.id.clone(), a.clone()),
            Op::Service(_) | Op::RateLimit(_) | Op::Shared(_) => {}
            Op::UpdateContact(id, contact) => {
                cache.accounts.update(id, |a| a.contact = contact.clone())
            }
            Op::Deactivate(id) => {
                cache
                    .accounts
                    .update(id, |a| a.status = AccountStatus::Deactivated);
                cache.authzs.update_all(|a| {
                    if &a.account_id == id && a.state == AuthzState::Pending {
                        a.state = AuthzState::Deactivated;
                    }
                });
            }
            Op::DeactivateAuthz(id) => cache
                .authzs
                .update(id, |a| a.state = AuthzState::Deactivated),
            Op::CreateOrder(o, authzs, _) => {
                for a in authzs {
                    cache.authzs.put(a.id.clone(), a.clone());
                }
                cache.orders.put(o.id.clone(), o.clone());
            }
            Op::StartChallenge {
                authz,
                kind,
                now,
                settled,
            } => cache.authzs.update(authz, |a| {
                a.attempt = Some(Attempt {
                    kind: *kind,
                    state: AttemptState::Processing,
                    started_at: *now,
                    validated_at: None,
                    error: None,
                    records: None,
                });
                if let Some(r) = settled {
                    settle(a, r);
                }
            }),
            Op::FinishChallenge(authz, r) => cache.authzs.update(authz, |a| settle(a, r)),
            Op::StoreCertificate(cert) => {
                if let Some(order) = &cert.order_id {
                    cache.orders.update(order, |o| {
                        o.cert_id = Some(cert.id.clone());
                        o.processing_until = None;
                    });
                }
                cache.certs.put(cert.id.clone(), cert.clone());
            }
            Op::ReleaseAllLeases | Op::ReleaseLeasesOf(_) => cache.orders.clear(),
            Op::ChangeKey {
                account,
                jwk,
                thumbprint,
                ..
            } => cache.accounts.update(account, |a| {
                a.jwk = jwk.clone();
                a.thumbprint = thumbprint.clone();
            }),
            Op::Revoke(id, r) => cache.certs.update(id, |c| c.revoked = Some(*r)),
        }
    }
}

// Accounts.

/// Inserts an account unless its key has one (`ON CONFLICT(thumbprint)`).
/// With an external account binding key id, the binding goes in first
/// unless the key already has an account (then the answer is that
/// account) or the key id is taken; the account only with its binding.
fn create_account(sql: &mut Sql, a: &Account, kid: Option<&str>) -> Result<usize> {
    let contact = serde_json::to_string(&a.contact).map_err(json_err)?;
    let mut n = 0;
    if let Some(kid) = kid {
        sql.raw("INSERT INTO eab_bindings (kid, account_id, bound_at) SELECT ")
            .text(kid)?
            .raw(",")
            .text(&a.id.0)?
            .raw(",")
            .int(a.created_at)
            .raw(" WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE thumbprint = ")
            .text(&a.thumbprint)?
            .raw(") ON CONFLICT(kid) DO NOTHING;\n");
        n += 1;
        sql.raw(
            "INSERT INTO accounts (id, status, jwk, thumbprint, contact, tos_agreed, \
             created_at) SELECT ",
        );
    } else {
        sql.raw(
            "INSERT INTO accounts (id, status, jwk, thumbprint, contact, tos_agreed, \
             created_at) VALUES (",
        );
    }
    sql.text(&a.id.0)?
        .raw(",")
        .text(a.status.as_str())?
        .raw(",")
        .text(&a.jwk)?
        .raw(",")
        .text(&a.thumbprint)?
        .raw(",")
        .text(&contact)?
        .raw(",")
        .bool(a.tos_agreed)
        .raw(",")
        .int(a.created_at);
    if let Some(kid) = kid {
        sql.raw(" WHERE EXISTS (SELECT 1 FROM eab_bindings WHERE kid = ")
            .text(kid)?
            .raw(" AND account_id = ")
            .text(&a.id.0)?
            .raw(")");
    } else {
        sql.raw(")");
    }
    sql.raw(" ON CONFLICT(thumbprint) DO NOTHING;\n");
    Ok(n + 1)
}

/// Replaces a valid account's contacts.
fn update_contact(sql: &mut Sql, id: &AccountId, contact: &[String]) -> Result<usize> {
    let contact = serde_json::to_string(contact).map_err(json_err)?;
    sql.raw("UPDATE accounts SET contact = ")
        .text(&contact)?
        .raw(" WHERE id = ")
        .text(&id.0)?
        .raw(" AND status = 'valid';\n");
    Ok(1)
}

/// Deactivates a valid account. RFC 8555 §7.3.6: the account's pending
/// authorizations go with it. The account update comes last: its row count
/// is the op's outcome.
fn deactivate_account(sql: &mut Sql, id: &AccountId) -> Result<usize> {
    sql.raw("UPDATE authzs SET state = 'deactivated' WHERE account_id = ")
        .text(&id.0)?
        .raw(" AND state = 'pending';\n")
        .raw("UPDATE accounts SET status = 'deactivated' WHERE id = ")
        .text(&id.0)?
        .raw(" AND status = 'valid';\n");
    Ok(2)
}

/// Moves a valid account to a new key, unless another account has that key
/// or the account's key is no longer `old_thumbprint`.
fn change_key(
    sql: &mut Sql,
    account: &AccountId,
    old_thumbprint: &str,
    jwk: &str,
    thumbprint: &str,
) -> Result<usize> {
    sql.raw("UPDATE accounts SET jwk = ")
        .text(jwk)?
        .raw(", thumbprint = ")
        .text(thumbprint)?
        .raw(" WHERE id = ")
        .text(&account.0)?
        .raw(" AND status = 'valid' AND thumbprint = ")
        .text(old_thumbprint)?
        .raw(" AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.thumbprint = ")
        .text(thumbprint)?
        .raw(");\n");
    Ok(1)
}

// Authorizations.

/// One INSERT for `authzs` (not empty); with a guard, only when the
/// replacement was claimed.
fn insert_authzs(
    sql: &mut Sql,
    authzs: &[Authz],
    guard: Option<(&Replacement, &OrderId)>,
) -> Result<()> {
    sql.raw(
        "INSERT INTO authzs (id, account_id, ident_type, ident_value, wildcard, \
         state, expires, token, offered, created_at) ",
    );
    sql.raw(if guard.is_some() {
        "SELECT * FROM (VALUES "
    } else {
        "VALUES "
    });
    for (i, a) in authzs.iter().enumerate() {
        let offered: Vec<&str> = a.offered.iter().map(|t| t.as_str()).collect();
        sql.raw(if i == 0 { "(" } else { ",(" })
            .text(&a.id.0)?
            .raw(",")
            .text(&a.account_id.0)?
            .raw(",")
            .text(a.identifier.kind.as_str())?
            .raw(",")
            .text(&a.identifier.value)?
            .raw(",")
            .bool(a.wildcard)
            .raw(",")
            .text(a.state.as_str())?
            .raw(",")
            .int(a.expires)
            .raw(",")
            .text(&a.token)?
            .raw(",")
            .text(&offered.join(","))?
            .raw(",")
            .int(a.created_at)
            .raw(")");
    }
    if let Some((r, order)) = guard {
        sql.raw(")");
        replaced_guard(sql, r, order)?;
    }
    sql.raw(";\n");
    Ok(())
}

/// Deactivates a pending or valid authorization.
fn deactivate_authz(sql: &mut Sql, id: &AuthzId) -> Result<usize> {
    sql.raw("UPDATE authzs SET state = 'deactivated' WHERE id = ")
        .text(&id.0)?
        .raw(" AND state IN ('pending', 'valid');\n");
    Ok(1)
}

/// Records the client's choice of challenge on a pending, unexpired
/// authorization with no attempt yet: processing, or already `settled`.
fn start_challenge(
    sql: &mut Sql,
    authz: &AuthzId,
    kind: ChallengeType,
    now: Timestamp,
    settled: Option<&ValidationResult>,
) -> Result<usize> {
    sql.raw("UPDATE authzs SET attempt_type = ")
        .text(kind.as_str())?
        .raw(", attempt_started = ")
        .int(now);
    match settled {
        None => {
            sql.raw(", attempt_state = 'processing'");
        }
        Some(r) => {
            sql.raw(", ");
            result_columns(sql, r)?;
        }
    }
    sql.raw(" WHERE id = ")
        .text(&authz.0)?
        .raw(" AND state = 'pending' AND attempt_type IS NULL AND expires > ")
        .int(now)
        .raw(";\n");
    Ok(1)
}

/// Settles a processing attempt of a pending authorization.
fn finish_challenge(sql: &mut Sql, authz: &AuthzId, r: &ValidationResult) -> Result<usize> {
    sql.raw("UPDATE authzs SET ");
    result_columns(sql, r)?
        .raw(" WHERE id = ")
        .text(&authz.0)?
        .raw(" AND attempt_state = 'processing' AND state = 'pending';\n");
    Ok(1)
}

fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// `col = value, …` for a settled validation's columns.
fn result_columns<'s>(sql: &'s mut Sql, r: &ValidationResult) -> Result<&'s mut Sql> {
    sql.raw("attempt_state = ")
        .text(r.state.as_str())?
        .raw(", attempt_validated = ")
        .int(r.validated_at)
        .raw(", attempt_error = ")
        .opt_text(json_text(&r.error).as_deref())?
        .raw(", attempt_records = ")
        .opt_text(json_text(&r.records).as_deref())?
        .raw(", state = ")
        .text(settled_state(r.state)?.as_str())?
        .raw(", expires = ")
        .int(r.expires);
    Ok(sql)
}

/// Applies a settled validation to a cached authorization.
fn settle(a: &mut Authz, r: &ValidationResult) {
    if let Some(t) = a.attempt.as_mut() {
        t.state = r.state;
        t.validated_at = Some(r.validated_at);
        t.error = r.error.clone();
        t.records = r.records.clone();
    }
    if let Ok(state) = settled_state(r.state) {
        a.state = state;
    }
    a.expires = r.expires;
}

// Orders.

/// The replacement's claim (when there is one), the new authorizations,
/// then the order, whose insert is the op's outcome. With a replacement,
/// the inserts are guarded by the claim: nothing is created if another
/// order took the certificate's replacement first.
fn create_order(
    sql: &mut Sql,
    o: &Order,
    authzs: &[Authz],
    replacement: Option<&Replacement>,
) -> Result<usize> {
    let mut n = 0;
    if let Some(r) = replacement {
        claim_replacement(sql, r, &o.id)?;
        n += 1;
    }
    let guard = replacement.map(|r| (r, &o.id));
    if !authzs.is_empty() {
        insert_authzs(sql, authzs, guard)?;
        n += 1;
    }
    insert_order(sql, o, guard)?;
    Ok(n + 1)
}

/// Moves the certificate's replacement from the expected one to `order`.
fn claim_replacement(sql: &mut Sql, r: &Replacement, order: &OrderId) -> Result<()> {
    sql.raw("UPDATE certificates SET replaced_by = ")
        .text(&order.0)?
        .raw(" WHERE id = ")
        .text(&r.cert.0)?;
    match &r.expected {
        None => sql.raw(" AND replaced_by IS NULL;\n"),
        Some(old) => sql.raw(" AND replaced_by = ").text(&old.0)?.raw(";\n"),
    };
    Ok(())
}

/// ` WHERE EXISTS (…)`: the certificate is now replaced by `order`.
fn replaced_guard(sql: &mut Sql, r: &Replacement, order: &OrderId) -> Result<()> {
    sql.raw(" WHERE EXISTS (SELECT 1 FROM certificates WHERE id = ")
        .text(&r.cert.0)?
        .raw(" AND replaced_by = ")
        .text(&order.0)?
        .raw(")");
    Ok(())
}

/// The order's INSERT; with a guard, only when the replacement was claimed.
fn insert_order(sql: &mut Sql, o: &Order, guard: Option<(&Replacement, &OrderId)>) -> Result<()> {
    let identifiers = serde_json::to_string(&o.identifiers).map_err(json_err)?;
    let ids: Vec<&str> = o.authz_ids.iter().map(|a| a.0.as_str()).collect();
    let ids = serde_json::to_string(&ids).map_err(json_err)?;
    sql.raw(
        "INSERT INTO orders (id, account_id, identifiers, authz_ids, expires, \
         not_before, not_after, created_at, profile, replaces) ",
    )
    .raw(if guard.is_some() {
        "SELECT "
    } else {
        "VALUES ("
    })
    .text(&o.id.0)?
    .raw(",")
    .text(&o.account_id.0)?
    .raw(",")
    .text(&identifiers)?
    .raw(",")
    .text(&ids)?
    .raw(",")
    .int(o.expires)
    .raw(",")
    .opt_int(o.not_before)
    .raw(",")
    .opt_int(o.not_after)
    .raw(",")
    .int(o.created_at)
    .raw(",")
    .text(&o.profile)?
    .raw(",")
    .opt_text(o.replaces.as_deref())?;
    match guard {
        Some((r, order)) => replaced_guard(sql, r, order)?,
        None => {
            sql.raw(")");
        }
    }
    sql.raw(";\n");
    Ok(())
}

/// Orders left processing in the database by an earlier version (which
/// kept its leases there): marked, and no certificate.
fn release_all_leases(sql: &mut Sql) -> Result<usize> {
    sql.raw(
        "UPDATE orders SET processing_until = NULL \
         WHERE processing_until IS NOT NULL AND NOT EXISTS \
         (SELECT 1 FROM certificates c WHERE c.order_id = orders.id);\n",
    );
    Ok(1)
}

/// Orders one instance left processing: marked by it, and no certificate.
fn release_leases_of(sql: &mut Sql, owner: &str) -> Result<usize> {
    sql.raw(
        "UPDATE orders SET processing_until = NULL, processing_owner = NULL \
         WHERE processing_owner = ",
    )
    .text(owner)?
    .raw(
        " AND processing_until IS NOT NULL AND NOT EXISTS \
         (SELECT 1 FROM certificates c WHERE c.order_id = orders.id);\n",
    );
    Ok(1)
}

// Certificates and CRLs.

/// Inserts a certificate. Its order's lease is in the process
/// (leases.rs), none in the table: leases an earlier version recorded
/// there were released at start.
fn store_certificate(sql: &mut Sql, c: &Certificate) -> Result<usize> {
    let order = c.order_id.as_ref().map(|o| o.0.as_str());
    sql.raw(
        "INSERT INTO certificates (id, serial, account_id, order_id, der, \
         not_before, not_after, issued_at, common_name) VALUES (",
    )
    .text(&c.id.0)?
    .raw(",")
    .text(&c.serial)?
    .raw(",")
    .text(&c.account_id.0)?
    .raw(",")
    .opt_text(order)?
    .raw(",")
    .blob(&c.der)
    .raw(",")
    .int(c.not_before)
    .raw(",")
    .int(c.not_after)
    .raw(",")
    .int(c.issued_at)
    .raw(",")
    .opt_text(c.common_name.as_deref())?
    // The order already has a certificate: nothing is inserted
    // (0 rows) and the caller records this one unlinked.
    .raw(") ON CONFLICT(order_id) DO NOTHING;\n");
    Ok(1)
}

/// Revokes a certificate that is not revoked yet.
fn revoke(sql: &mut Sql, id: &CertId, r: &Revocation) -> Result<usize> {
    sql.raw("UPDATE certificates SET revoked_at = ")
        .int(r.at)
        .raw(", revocation_reason = ")
        .int(i64::from(r.reason.code()))
        .raw(" WHERE id = ")
        .text(&id.0)?
        .raw(" AND revoked_at IS NULL;\n");
    Ok(1)
}
