//! The writer: every write of the store goes through one task that owns the
//! database's single write connection and commits concurrent writes
//! together (group commit).
//!
//! A request's write is an [`Op`]. The writer takes whatever ops are queued
//! (at most [`MAX_BATCH`]), renders them as one SQL text (`BEGIN; …;
//! COMMIT;`) and runs it in a single round trip to sqlx's connection thread,
//! reading each statement's row count back. Under load this replaces several
//! thread round trips and several fsyncs per order with one of each per
//! batch; with one op queued it costs what a single statement would. Each
//! op's outcome is its last statement's row count, so conditional updates
//! still tell exactly one winner. If a batch fails, it is rolled back and
//! its ops are run one by one, so only the failing op sees the error.
//!
//! Values are written into the text as SQL literals by [`Sql`], whose only
//! way to add a value is a typed method that quotes it (text with `'`
//! doubled and NUL refused, integers, hex blobs). SQLite string literals have
//! no other escape, so no value can change a statement's structure.

use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, Either};
use tokio::sync::{mpsc, oneshot};

use super::cache::Cache;
use super::{db_err, json_err, Durability};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{
    Account, AccountId, AccountStatus, Attempt, AttemptState, Authz, AuthzId, AuthzState, CertId,
    Certificate, ChallengeType, Order, OrderId, Revocation, Timestamp,
};
use crate::store::ValidationResult;

/// Ops committed together at most.
pub(super) const MAX_BATCH: usize = 64;
/// Ops waiting at most; senders wait beyond.
const QUEUE: usize = 4096;

/// SQL text built from static fragments and quoted values.
pub(super) struct Sql(String);

impl Sql {
    pub(super) fn new() -> Sql {
        Sql(String::with_capacity(4096))
    }

    /// A fixed fragment of SQL: only `'static` text, never a value.
    pub(super) fn raw(&mut self, fragment: &'static str) -> &mut Sql {
        self.0.push_str(fragment);
        self
    }

    /// A text value as a string literal.
    pub(super) fn text(&mut self, v: &str) -> Result<&mut Sql> {
        if v.contains('\0') {
            return Err(Error::internal(
                "refusing a NUL character in a stored value",
            ));
        }
        self.0.reserve(v.len() + 2);
        self.0.push('\'');
        for ch in v.chars() {
            if ch == '\'' {
                self.0.push('\'');
            }
            self.0.push(ch);
        }
        self.0.push('\'');
        Ok(self)
    }

    pub(super) fn opt_text(&mut self, v: Option<&str>) -> Result<&mut Sql> {
        match v {
            Some(v) => self.text(v),
            None => Ok(self.raw("NULL")),
        }
    }

    pub(super) fn int(&mut self, v: i64) -> &mut Sql {
        self.0.push_str(&v.to_string());
        self
    }

    pub(super) fn opt_int(&mut self, v: Option<i64>) -> &mut Sql {
        match v {
            Some(v) => self.int(v),
            None => self.raw("NULL"),
        }
    }

    pub(super) fn bool(&mut self, v: bool) -> &mut Sql {
        self.raw(if v { "1" } else { "0" })
    }

    pub(super) fn blob(&mut self, v: &[u8]) -> &mut Sql {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.reserve(v.len() * 2 + 3);
        self.0.push_str("X'");
        for b in v {
            self.0.push(char::from(HEX[usize::from(b >> 4)]));
            self.0.push(char::from(HEX[usize::from(b & 15)]));
        }
        self.0.push('\'');
        self
    }

    pub(super) fn into_string(self) -> String {
        self.0
    }
}

/// One write, as the store's methods ask for it.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Inserts an account; with an external account binding key id, the
    /// binding too, and the account only if that key id was free.
    CreateAccount(Account, Option<String>),
    /// Inserts a standalone authorization (newAuthz).
    CreateAuthz(Authz),
    /// Records the last CRL number an issuer used.
    SetCrlNumber {
        issuer: String,
        number: i64,
    },
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
    ClaimOrder {
        order: OrderId,
        now: Timestamp,
        until: Timestamp,
    },
    ReleaseOrder(OrderId),
    /// Insert a certificate; its `order_id`, if any, links it to its order.
    StoreCertificate(Certificate),
    ReleaseAllLeases,
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
}

pub(super) fn settled_state(state: AttemptState) -> Result<AuthzState> {
    match state {
        AttemptState::Valid => Ok(AuthzState::Valid),
        AttemptState::Invalid => Ok(AuthzState::Invalid),
        AttemptState::Processing => Err(Error::internal(
            "a validation result cannot be 'processing'",
        )),
    }
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

/// The certificate an order replaces, and the replacement it must still
/// have for the order to be created.
#[derive(Debug, Clone)]
pub(super) struct Replacement {
    pub cert: CertId,
    pub expected: Option<OrderId>,
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

impl Op {
    /// Appends the op's statements; returns how many.
    fn render(&self, sql: &mut Sql) -> Result<usize> {
        match self {
            Op::CreateAccount(a, kid) => {
                let contact = serde_json::to_string(&a.contact).map_err(json_err)?;
                let mut n = 0;
                if let Some(kid) = kid {
                    // The binding goes in unless the key already has an
                    // account (then the answer is that account) or the key
                    // id is taken; the account only with its binding.
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
            Op::CreateAuthz(a) => {
                insert_authzs(sql, std::slice::from_ref(a), None)?;
                Ok(1)
            }
            Op::SetCrlNumber { issuer, number } => {
                sql.raw("INSERT INTO crl_numbers (issuer, number) VALUES (")
                    .text(issuer)?
                    .raw(",")
                    .int(*number)
                    .raw(
                        ") ON CONFLICT(issuer) DO UPDATE SET number = excluded.number \
                          WHERE excluded.number > crl_numbers.number;\n",
                    );
                Ok(1)
            }
            Op::UpdateContact(id, contact) => {
                let contact = serde_json::to_string(contact).map_err(json_err)?;
                sql.raw("UPDATE accounts SET contact = ")
                    .text(&contact)?
                    .raw(" WHERE id = ")
                    .text(&id.0)?
                    .raw(" AND status = 'valid';\n");
                Ok(1)
            }
            Op::Deactivate(id) => {
                // RFC 8555 §7.3.6: the account's pending authorizations go
                // with it. The account update comes last: its row count is
                // the op's outcome.
                sql.raw("UPDATE authzs SET state = 'deactivated' WHERE account_id = ")
                    .text(&id.0)?
                    .raw(" AND state = 'pending';\n")
                    .raw("UPDATE accounts SET status = 'deactivated' WHERE id = ")
                    .text(&id.0)?
                    .raw(" AND status = 'valid';\n");
                Ok(2)
            }
            Op::DeactivateAuthz(id) => {
                sql.raw("UPDATE authzs SET state = 'deactivated' WHERE id = ")
                    .text(&id.0)?
                    .raw(" AND state IN ('pending', 'valid');\n");
                Ok(1)
            }
            Op::CreateOrder(o, authzs, replacement) => {
                let mut n = 0;
                if let Some(r) = replacement {
                    sql.raw("UPDATE certificates SET replaced_by = ")
                        .text(&o.id.0)?
                        .raw(" WHERE id = ")
                        .text(&r.cert.0)?;
                    match &r.expected {
                        None => sql.raw(" AND replaced_by IS NULL;\n"),
                        Some(old) => sql.raw(" AND replaced_by = ").text(&old.0)?.raw(";\n"),
                    };
                    n += 1;
                }
                let guard = replacement.as_ref().map(|r| (r, &o.id));
                if !authzs.is_empty() {
                    insert_authzs(sql, authzs, guard)?;
                    n += 1;
                }
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
                Ok(n + 1)
            }
            Op::StartChallenge {
                authz,
                kind,
                now,
                settled,
            } => {
                sql.raw("UPDATE authzs SET attempt_type = ")
                    .text(kind.as_str())?
                    .raw(", attempt_started = ")
                    .int(*now);
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
                    .int(*now)
                    .raw(";\n");
                Ok(1)
            }
            Op::FinishChallenge(authz, r) => {
                sql.raw("UPDATE authzs SET ");
                result_columns(sql, r)?
                    .raw(" WHERE id = ")
                    .text(&authz.0)?
                    .raw(" AND attempt_state = 'processing' AND state = 'pending';\n");
                Ok(1)
            }
            Op::ClaimOrder { order, now, until } => {
                sql.raw("UPDATE orders SET processing_until = ")
                    .int(*until)
                    .raw(" WHERE id = ")
                    .text(&order.0)?
                    .raw(" AND error IS NULL AND (processing_until IS NULL OR processing_until <= ")
                    .int(*now)
                    .raw(
                        ") AND NOT EXISTS (SELECT 1 FROM certificates c \
                         WHERE c.order_id = orders.id);\n",
                    );
                Ok(1)
            }
            Op::ReleaseOrder(order) => {
                sql.raw("UPDATE orders SET processing_until = NULL WHERE id = ")
                    .text(&order.0)?
                    .raw(";\n");
                Ok(1)
            }
            Op::StoreCertificate(c) => {
                let order = c.order_id.as_ref().map(|o| o.0.as_str());
                // The finalize marker goes with the issuance, in the same
                // transaction, so no issued order stays marked.
                sql.raw("UPDATE orders SET processing_until = NULL WHERE id = ")
                    .opt_text(order)?
                    .raw(" AND processing_until IS NOT NULL;\n");
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
                Ok(2)
            }
            Op::ChangeKey {
                account,
                old_thumbprint,
                jwk,
                thumbprint,
            } => {
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
            Op::Revoke(id, r) => {
                sql.raw("UPDATE certificates SET revoked_at = ")
                    .int(r.at)
                    .raw(", revocation_reason = ")
                    .int(i64::from(r.reason.code()))
                    .raw(" WHERE id = ")
                    .text(&id.0)?
                    .raw(" AND revoked_at IS NULL;\n");
                Ok(1)
            }
            Op::Service(op) => op.render(sql),
            Op::RateLimit(op) => op.render(sql),
            Op::ReleaseAllLeases => {
                // Orders left processing by a previous run: marked, and no
                // certificate.
                sql.raw(
                    "UPDATE orders SET processing_until = NULL \
                     WHERE processing_until IS NOT NULL AND NOT EXISTS \
                     (SELECT 1 FROM certificates c WHERE c.order_id = orders.id);\n",
                );
                Ok(1)
            }
        }
    }

    fn needs_flush(&self) -> bool {
        match self {
            Op::StoreCertificate(_) => true,
            Op::Service(s) => s.needs_flush(),
            _ => false,
        }
    }

    /// Brings the cache in line with the committed op (`rows`: the row count
    /// of its last statement).
    fn apply(&self, cache: &mut Cache, rows: u64) {
        if rows == 0 {
            return;
        }
        match self {
            Op::CreateAccount(a, _) => cache.accounts.put(a.id.clone(), a.clone()),
            Op::CreateAuthz(a) => cache.authzs.put(a.id.clone(), a.clone()),
            Op::SetCrlNumber { .. } | Op::Service(_) | Op::RateLimit(_) => {}
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
            Op::ClaimOrder { order, until, .. } => cache
                .orders
                .update(order, |o| o.processing_until = Some(*until)),
            Op::ReleaseOrder(order) => cache.orders.update(order, |o| o.processing_until = None),
            Op::StoreCertificate(cert) => {
                if let Some(order) = &cert.order_id {
                    cache.orders.update(order, |o| {
                        o.cert_id = Some(cert.id.clone());
                        o.processing_until = None;
                    });
                }
                cache.certs.put(cert.id.clone(), cert.clone());
            }
            Op::ReleaseAllLeases => cache.orders.clear(),
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

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<u64>>,
}

/// The handle the store uses to submit writes.
#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub(super) fn start(
        pool: SqlitePool,
        cache: Arc<Mutex<Cache>>,
        durability: Durability,
        metrics: Arc<Metrics>,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, cache, durability, metrics, rx));
        Writer { tx }
    }

    /// Commits `op` (with whatever else is queued) and returns the row
    /// count of its last statement.
    pub(super) async fn write(&self, op: Op) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { op, reply })
            .await
            .map_err(|_| Error::internal("the database writer has stopped"))?;
        answer
            .await
            .map_err(|_| Error::internal("the database writer dropped a write"))?
    }
}

async fn run(
    pool: SqlitePool,
    cache: Arc<Mutex<Cache>>,
    durability: Durability,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let ops: Vec<&Op> = jobs.iter().map(|j| &j.op).collect();
        match timed_commit(&pool, &cache, durability, &metrics, &ops).await {
            Ok(rows) => {
                for (job, rows) in jobs.drain(..).zip(rows) {
                    let _ = job.reply.send(Ok(rows));
                }
            }
            Err(e) if jobs.len() == 1 => {
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                // Isolate the failure: every op alone, in order.
                for job in jobs.drain(..) {
                    let result = timed_commit(&pool, &cache, durability, &metrics, &[&job.op])
                        .await
                        .map(|rows| rows[0]);
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// [`commit`], timed into the store metrics.
async fn timed_commit(
    pool: &SqlitePool,
    cache: &Mutex<Cache>,
    durability: Durability,
    metrics: &Metrics,
    ops: &[&Op],
) -> Result<Vec<u64>> {
    let started = std::time::Instant::now();
    let result = commit(pool, cache, durability, ops).await;
    metrics.store_write(ops.len(), started.elapsed());
    result
}

/// Runs `ops` in one transaction; returns each op's last row count.
async fn commit(
    pool: &SqlitePool,
    cache: &Mutex<Cache>,
    durability: Durability,
    ops: &[&Op],
) -> Result<Vec<u64>> {
    // With durability "issuance", a batch holding a certificate is flushed
    // to disk at its commit; the WAL being sequential, that also persists
    // every earlier write.
    let flush = durability == Durability::Issuance && ops.iter().any(|o| o.needs_flush());
    let mut sql = Sql::new();
    let mut statements = 0;
    if flush {
        sql.raw("PRAGMA synchronous = FULL;\n");
        statements += 1;
    }
    sql.raw("BEGIN IMMEDIATE;\n");
    statements += 1;
    let mut last = Vec::with_capacity(ops.len());
    for op in ops {
        statements += op.render(&mut sql)?;
        last.push(statements - 1);
    }
    sql.raw("COMMIT;\n");
    statements += 1;
    if flush {
        sql.raw("PRAGMA synchronous = NORMAL;\n");
        statements += 1;
    }
    let mut conn = pool.acquire().await.map_err(db_err)?;
    // Every value in the text went through Sql's quoting methods.
    let outcome: std::result::Result<Vec<u64>, sqlx::Error> =
        sqlx::raw_sql(AssertSqlSafe(sql.into_string()))
            .fetch_many(&mut *conn)
            .try_filter_map(|step| async move {
                Ok(match step {
                    Either::Left(done) => Some(done.rows_affected()),
                    Either::Right(_) => None,
                })
            })
            .try_collect()
            .await;
    match outcome {
        Ok(counts) if counts.len() == statements => {
            let rows: Vec<u64> = last.iter().map(|&i| counts[i]).collect();
            // Still holding the write connection: cache updates happen in
            // commit order.
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            for (op, &n) in ops.iter().zip(&rows) {
                op.apply(&mut cache, n);
            }
            cache.generation += 1;
            Ok(rows)
        }
        Ok(counts) => Err(Error::internal(format_args!(
            "database batch answered {} statements of {statements}",
            counts.len()
        ))),
        Err(e) => {
            // The batch stopped part-way: undo it and restore the setting.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            if flush {
                if let Err(e) = sqlx::raw_sql("PRAGMA synchronous = NORMAL")
                    .execute(&mut *conn)
                    .await
                {
                    tracing::warn!(error = %e, "could not restore synchronous = NORMAL");
                }
            }
            Err(db_err(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted() {
        let mut s = Sql::new();
        s.raw("SELECT ")
            .text("it's; DROP TABLE orders; --")
            .unwrap()
            .raw(", ")
            .int(-5)
            .raw(", ")
            .blob(&[0, 0xab])
            .raw(", ")
            .opt_text(None)
            .unwrap();
        assert_eq!(
            s.into_string(),
            "SELECT 'it''s; DROP TABLE orders; --', -5, X'00ab', NULL"
        );
        assert!(Sql::new().text("nul\0byte").is_err());
    }
}
