//! The embedded SQLite store (sqlx, WAL mode).
//!
//! Writes go through one connection, so they never contend for SQLite's
//! single write lock inside this process; reads use a small pool of
//! read-only connections, which WAL lets run beside the writer.
//!
//! Durability: connections run with `synchronous = NORMAL`, which in WAL mode
//! survives a crash of this process (SIGKILL included) at any moment. The
//! transaction that records a certificate runs with `synchronous = FULL`, so
//! it is on disk before any client sees it, even across a power loss; since
//! the WAL is sequential, that flush also persists every earlier write.
//! `durability = "full"` in the config flushes every transaction instead.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use super::{AccountCreation, OrderListEntry, Store, StoreFuture, ValidationResult};
use crate::error::{Error, Result};
use crate::model::{
    Account, AccountId, AccountStatus, Attempt, AttemptState, Authz, AuthzId, AuthzState, CertId,
    Certificate, ChallengeType, Order, OrderId, Timestamp,
};
use crate::protocol::{Identifier, IdentifierType};

/// Schema migrations, applied in order; the index + 1 is the schema version.
/// Never edit an applied entry: append a new one.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    jwk         TEXT NOT NULL,
    thumbprint  TEXT NOT NULL UNIQUE,
    contact     TEXT NOT NULL,
    tos_agreed  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE authzs (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    ident_type        TEXT NOT NULL,
    ident_value       TEXT NOT NULL,
    wildcard          INTEGER NOT NULL,
    state             TEXT NOT NULL,
    expires           INTEGER NOT NULL,
    token             TEXT NOT NULL,
    offered           TEXT NOT NULL,
    attempt_type      TEXT,
    attempt_state     TEXT,
    attempt_started   INTEGER,
    attempt_validated INTEGER,
    attempt_error     TEXT,
    attempt_records   TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX authzs_by_account ON authzs(account_id, ident_value);
CREATE INDEX authzs_processing ON authzs(attempt_state) WHERE attempt_state = 'processing';
CREATE TABLE orders (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    identifiers       TEXT NOT NULL,
    authz_ids         TEXT NOT NULL,
    expires           INTEGER NOT NULL,
    not_before        INTEGER,
    not_after         INTEGER,
    processing_until  INTEGER,
    cert_id           TEXT,
    error             TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX orders_by_account ON orders(account_id, seq);
CREATE TABLE certificates (
    id          TEXT PRIMARY KEY,
    serial      TEXT NOT NULL UNIQUE,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    order_id    TEXT,
    der         BLOB NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL
);
"#];

/// How hard commits are flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Certificate records are flushed before the response; other writes
    /// survive a process crash but may lose their last second to a power
    /// loss.
    #[default]
    Issuance,
    /// Every transaction is flushed before it returns.
    Full,
}

/// The SQLite store.
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    durability: Durability,
}

fn db_err(e: sqlx::Error) -> Error {
    Error::internal(format_args!("database: {e}"))
}

fn json_err(e: serde_json::Error) -> Error {
    Error::internal(format_args!("stored JSON: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path, durability: Durability) -> Result<SqliteStore> {
        let base = SqliteConnectOptions::from_str("sqlite:")
            .map_err(db_err)?
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .synchronous(match durability {
                Durability::Issuance => SqliteSynchronous::Normal,
                Durability::Full => SqliteSynchronous::Full,
            });
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.clone().create_if_missing(true))
            .await
            .map_err(db_err)?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.read_only(true))
            .await
            .map_err(db_err)?;
        Ok(SqliteStore {
            writer,
            reader,
            durability,
        })
    }

    /// Closes both pools, waiting for connections in use.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

async fn migrate(pool: &SqlitePool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(Error::internal(format_args!(
            "the database schema (version {version}) is newer than this acme-ca \
             (version {}); refusing to touch it",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_err)?;
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // The version is a number we format ourselves: no injection possible.
        sqlx::raw_sql(AssertSqlSafe(format!("PRAGMA user_version = {}", i + 1)))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    Ok(())
}

fn account_from_row(row: &SqliteRow) -> Result<Account> {
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

fn opt_json(row: &SqliteRow, col: &str) -> Result<Option<serde_json::Value>> {
    let raw: Option<String> = row.try_get(col).map_err(db_err)?;
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

fn authz_from_row(row: &SqliteRow) -> Result<Authz> {
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

fn order_from_row(row: &SqliteRow) -> Result<Order> {
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
    })
}

fn cert_from_row(row: &SqliteRow) -> Result<Certificate> {
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
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

async fn insert_authz(conn: &mut SqliteConnection, a: &Authz) -> Result<()> {
    let offered: Vec<&str> = a.offered.iter().map(|t| t.as_str()).collect();
    sqlx::query(
        "INSERT INTO authzs (id, account_id, ident_type, ident_value, wildcard, state, expires, \
         token, offered, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&a.id.0)
    .bind(&a.account_id.0)
    .bind(a.identifier.kind.as_str())
    .bind(&a.identifier.value)
    .bind(a.wildcard)
    .bind(a.state.as_str())
    .bind(a.expires)
    .bind(&a.token)
    .bind(offered.join(","))
    .bind(a.created_at)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

impl Store for SqliteStore {
    fn create_account<'a>(&'a self, a: &'a Account) -> StoreFuture<'a, AccountCreation> {
        Box::pin(async move {
            let contact = serde_json::to_string(&a.contact).map_err(json_err)?;
            let res = sqlx::query(
                "INSERT INTO accounts (id, status, jwk, thumbprint, contact, tos_agreed, \
                 created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&a.id.0)
            .bind(a.status.as_str())
            .bind(&a.jwk)
            .bind(&a.thumbprint)
            .bind(contact)
            .bind(a.tos_agreed)
            .bind(a.created_at)
            .execute(&self.writer)
            .await;
            match res {
                Ok(_) => Ok(AccountCreation::Created),
                Err(e) if is_unique_violation(&e) => {
                    // Read through the writer: the row that won is committed
                    // there, and a reader could lag by nothing but be safe.
                    let row = sqlx::query("SELECT * FROM accounts WHERE thumbprint = ?")
                        .bind(&a.thumbprint)
                        .fetch_one(&self.writer)
                        .await
                        .map_err(db_err)?;
                    Ok(AccountCreation::Existing(account_from_row(&row)?))
                }
                Err(e) => Err(db_err(e)),
            }
        })
    }

    fn account_by_id<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, Option<Account>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM accounts WHERE id = ?")
                .bind(&id.0)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.as_ref().map(account_from_row).transpose()
        })
    }

    fn account_by_thumbprint<'a>(
        &'a self,
        thumbprint: &'a str,
    ) -> StoreFuture<'a, Option<Account>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM accounts WHERE thumbprint = ?")
                .bind(thumbprint)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.as_ref().map(account_from_row).transpose()
        })
    }

    fn update_account_contact<'a>(
        &'a self,
        id: &'a AccountId,
        contact: &'a [String],
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let contact = serde_json::to_string(contact).map_err(json_err)?;
            let res =
                sqlx::query("UPDATE accounts SET contact = ? WHERE id = ? AND status = 'valid'")
                    .bind(contact)
                    .bind(&id.0)
                    .execute(&self.writer)
                    .await
                    .map_err(db_err)?;
            Ok(res.rows_affected() == 1)
        })
    }

    fn deactivate_account<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let res = sqlx::query(
                "UPDATE accounts SET status = 'deactivated' WHERE id = ? AND status = 'valid'",
            )
            .bind(&id.0)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
            Ok(res.rows_affected() == 1)
        })
    }

    fn create_order<'a>(&'a self, o: &'a Order, authzs: &'a [Authz]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let identifiers = serde_json::to_string(&o.identifiers).map_err(json_err)?;
            let ids: Vec<&str> = o.authz_ids.iter().map(|a| a.0.as_str()).collect();
            let ids = serde_json::to_string(&ids).map_err(json_err)?;
            let mut tx = self.writer.begin().await.map_err(db_err)?;
            for a in authzs {
                insert_authz(&mut tx, a).await?;
            }
            sqlx::query(
                "INSERT INTO orders (id, account_id, identifiers, authz_ids, expires, not_before, \
                 not_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&o.id.0)
            .bind(&o.account_id.0)
            .bind(identifiers)
            .bind(ids)
            .bind(o.expires)
            .bind(o.not_before)
            .bind(o.not_after)
            .bind(o.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    fn order_by_id<'a>(&'a self, id: &'a OrderId) -> StoreFuture<'a, Option<Order>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM orders WHERE id = ?")
                .bind(&id.0)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.as_ref().map(order_from_row).transpose()
        })
    }

    fn authzs_by_ids<'a>(&'a self, ids: &'a [AuthzId]) -> StoreFuture<'a, Vec<Authz>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            // Orders hold at most 100 identifiers (ra::policy), well under
            // SQLite's bound-parameter limit.
            let placeholders = vec!["?"; ids.len()].join(",");
            let sql = format!("SELECT * FROM authzs WHERE id IN ({placeholders})");
            // Only placeholders are formatted into the text; values are bound.
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in ids {
                q = q.bind(&id.0);
            }
            let rows = q.fetch_all(&self.reader).await.map_err(db_err)?;
            let mut found: Vec<Authz> = rows.iter().map(authz_from_row).collect::<Result<_>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(pos) = found.iter().position(|a| &a.id == id) {
                    out.push(found.swap_remove(pos));
                }
            }
            Ok(out)
        })
    }

    fn authz_by_id<'a>(&'a self, id: &'a AuthzId) -> StoreFuture<'a, Option<Authz>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM authzs WHERE id = ?")
                .bind(&id.0)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.as_ref().map(authz_from_row).transpose()
        })
    }

    fn orders_for_account<'a>(
        &'a self,
        account: &'a AccountId,
        after: i64,
        limit: u32,
        now: Timestamp,
    ) -> StoreFuture<'a, Vec<OrderListEntry>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT seq, id FROM orders WHERE account_id = ? AND seq > ? \
                 AND (cert_id IS NOT NULL OR (expires > ? AND error IS NULL)) \
                 ORDER BY seq LIMIT ?",
            )
            .bind(&account.0)
            .bind(after)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok(OrderListEntry {
                        cursor: r.try_get("seq").map_err(db_err)?,
                        id: OrderId(r.try_get("id").map_err(db_err)?),
                    })
                })
                .collect()
        })
    }

    fn start_challenge<'a>(
        &'a self,
        authz: &'a AuthzId,
        kind: ChallengeType,
        now: Timestamp,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let res = sqlx::query(
                "UPDATE authzs SET attempt_type = ?, attempt_state = 'processing', \
                 attempt_started = ? WHERE id = ? AND state = 'pending' \
                 AND attempt_type IS NULL AND expires > ?",
            )
            .bind(kind.as_str())
            .bind(now)
            .bind(&authz.0)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
            Ok(res.rows_affected() == 1)
        })
    }

    fn finish_challenge<'a>(
        &'a self,
        authz: &'a AuthzId,
        r: &'a ValidationResult,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let state = match r.state {
                AttemptState::Valid => AuthzState::Valid,
                AttemptState::Invalid => AuthzState::Invalid,
                AttemptState::Processing => {
                    return Err(Error::internal("finish_challenge with a processing state"))
                }
            };
            let error = r.error.as_ref().map(|v| v.to_string());
            let records = r.records.as_ref().map(|v| v.to_string());
            let res = sqlx::query(
                "UPDATE authzs SET attempt_state = ?, attempt_validated = ?, attempt_error = ?, \
                 attempt_records = ?, state = ?, expires = ? \
                 WHERE id = ? AND attempt_state = 'processing' AND state = 'pending'",
            )
            .bind(r.state.as_str())
            .bind(r.validated_at)
            .bind(error)
            .bind(records)
            .bind(state.as_str())
            .bind(r.expires)
            .bind(&authz.0)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
            Ok(res.rows_affected() == 1)
        })
    }

    fn authzs_processing(&self) -> StoreFuture<'_, Vec<Authz>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM authzs WHERE attempt_state = 'processing'")
                .fetch_all(&self.reader)
                .await
                .map_err(db_err)?;
            rows.iter().map(authz_from_row).collect()
        })
    }

    fn claim_order<'a>(
        &'a self,
        id: &'a OrderId,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let res = sqlx::query(
                "UPDATE orders SET processing_until = ? WHERE id = ? AND cert_id IS NULL \
                 AND error IS NULL AND (processing_until IS NULL OR processing_until <= ?)",
            )
            .bind(until)
            .bind(&id.0)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
            Ok(res.rows_affected() == 1)
        })
    }

    fn release_order<'a>(&'a self, id: &'a OrderId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE orders SET processing_until = NULL WHERE id = ? AND cert_id IS NULL",
            )
            .bind(&id.0)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn store_certificate<'a>(
        &'a self,
        c: &'a Certificate,
        order: &'a OrderId,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.writer.acquire().await.map_err(db_err)?;
            let flush = self.durability == Durability::Issuance;
            if flush {
                sqlx::raw_sql("PRAGMA synchronous = FULL")
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
            }
            let result = async {
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_err)?;
                sqlx::query(
                    "INSERT INTO certificates (id, serial, account_id, order_id, der, not_before, \
                     not_after, issued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&c.id.0)
                .bind(&c.serial)
                .bind(&c.account_id.0)
                .bind(c.order_id.as_ref().map(|o| o.0.as_str()))
                .bind(&c.der)
                .bind(c.not_before)
                .bind(c.not_after)
                .bind(c.issued_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                let res = sqlx::query(
                    "UPDATE orders SET cert_id = ?, processing_until = NULL \
                     WHERE id = ? AND cert_id IS NULL",
                )
                .bind(&c.id.0)
                .bind(&order.0)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(res.rows_affected() == 1)
            }
            .await;
            if flush {
                // If this fails the connection keeps flushing every commit:
                // slower, never less safe.
                if let Err(e) = sqlx::raw_sql("PRAGMA synchronous = NORMAL")
                    .execute(&mut *conn)
                    .await
                {
                    tracing::warn!(error = %e, "could not restore synchronous = NORMAL");
                }
            }
            result
        })
    }

    fn certificate_by_id<'a>(&'a self, id: &'a CertId) -> StoreFuture<'a, Option<Certificate>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM certificates WHERE id = ?")
                .bind(&id.0)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.as_ref().map(cert_from_row).transpose()
        })
    }

    fn release_all_leases(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let res = sqlx::query(
                "UPDATE orders SET processing_until = NULL \
                 WHERE processing_until IS NOT NULL AND cert_id IS NULL",
            )
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
            Ok(res.rows_affected())
        })
    }
}
