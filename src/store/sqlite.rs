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

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite};

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
    error             TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX orders_by_account ON orders(account_id, seq);
CREATE TABLE certificates (
    id          TEXT PRIMARY KEY,
    serial      TEXT NOT NULL UNIQUE,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    order_id    TEXT UNIQUE REFERENCES orders(id),
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

/// A map that holds at most `cap` entries; when full, an arbitrary entry
/// makes room. Used for the read cache, whose misses are only slower.
struct Bounded<K, V> {
    map: HashMap<K, V>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::with_capacity(cap.min(1024)),
            cap,
        }
    }

    fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).cloned()
    }

    fn put(&mut self, k: K, v: V) {
        if self.map.len() >= self.cap && !self.map.contains_key(&k) {
            if let Some(victim) = self.map.keys().next().cloned() {
                self.map.remove(&victim);
            }
        }
        self.map.insert(k, v);
    }

    fn update(&mut self, k: &K, f: impl FnOnce(&mut V)) {
        if let Some(v) = self.map.get_mut(k) {
            f(v)
        }
    }

    fn clear(&mut self) {
        self.map.clear()
    }
}

/// Recently used records, so that the requests of one issuance flow read
/// the database once at most. Coherent because this process is the only
/// writer: every write updates the cache while it still holds the single
/// writer connection, and a cache miss is filled through that connection
/// too, so a stale row can never overwrite a newer one.
struct Cache {
    accounts: Bounded<AccountId, Account>,
    orders: Bounded<OrderId, Order>,
    authzs: Bounded<AuthzId, Authz>,
    /// Just-issued certificates, which clients download right away.
    certs: Bounded<CertId, Certificate>,
}

/// Entries kept per kind: a few MB at most.
const CACHE_ACCOUNTS: usize = 4096;
const CACHE_ORDERS: usize = 4096;
const CACHE_AUTHZS: usize = 8192;
const CACHE_CERTS: usize = 1024;

/// The SQLite store.
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    durability: Durability,
    cache: Mutex<Cache>,
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
            cache: Mutex::new(Cache {
                accounts: Bounded::new(CACHE_ACCOUNTS),
                orders: Bounded::new(CACHE_ORDERS),
                authzs: Bounded::new(CACHE_AUTHZS),
                certs: Bounded::new(CACHE_CERTS),
            }),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Cache updates cannot panic half-way; a poisoned lock still holds
        // consistent maps.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn writer(&self) -> Result<PoolConnection<Sqlite>> {
        self.writer.acquire().await.map_err(db_err)
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

/// SQL literal text for the values of a certificate row. Only used for rows
/// this server made: identifiers and the serial are checked against their
/// alphabets, the DER goes in as a hex blob, the rest are integers.
fn certificate_values(c: &Certificate, order: Option<&OrderId>) -> Result<String> {
    fn text(v: &str, alphabet: fn(u8) -> bool) -> Result<String> {
        if !v.is_empty() && v.len() <= 128 && v.bytes().all(alphabet) {
            Ok(format!("'{v}'"))
        } else {
            Err(Error::internal(format_args!(
                "refusing to inline {v:?} into SQL"
            )))
        }
    }
    let id = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let hex = |b: u8| b.is_ascii_hexdigit();
    let mut der = String::with_capacity(c.der.len() * 2 + 3);
    der.push_str("X'");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in &c.der {
        der.push(char::from(HEX[usize::from(b >> 4)]));
        der.push(char::from(HEX[usize::from(b & 15)]));
    }
    der.push('\'');
    Ok(format!(
        "{}, {}, {}, {}, {der}, {}, {}, {}",
        text(&c.id.0, id)?,
        text(&c.serial, hex)?,
        text(&c.account_id.0, id)?,
        match order {
            Some(o) => text(&o.0, id)?,
            None => "NULL".to_owned(),
        },
        c.not_before,
        c.not_after,
        c.issued_at
    ))
}

/// The order row with its certificate id, if one was issued.
const ORDER_SELECT: &str = "SELECT o.*, c.id AS cert_id FROM orders o \
     LEFT JOIN certificates c ON c.order_id = o.id WHERE o.id = ?";

fn attempt_from_result(
    kind: ChallengeType,
    started_at: Timestamp,
    r: &ValidationResult,
) -> Attempt {
    Attempt {
        kind,
        state: r.state,
        started_at,
        validated_at: Some(r.validated_at),
        error: r.error.clone(),
        records: r.records.clone(),
    }
}

fn settled_state(state: AttemptState) -> Result<AuthzState> {
    match state {
        AttemptState::Valid => Ok(AuthzState::Valid),
        AttemptState::Invalid => Ok(AuthzState::Invalid),
        AttemptState::Processing => Err(Error::internal(
            "a validation result cannot be 'processing'",
        )),
    }
}

impl Store for SqliteStore {
    fn create_account<'a>(&'a self, a: &'a Account) -> StoreFuture<'a, AccountCreation> {
        Box::pin(async move {
            let contact = serde_json::to_string(&a.contact).map_err(json_err)?;
            let mut conn = self.writer().await?;
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
            .execute(&mut *conn)
            .await;
            match res {
                Ok(_) => {
                    self.cache().accounts.put(a.id.clone(), a.clone());
                    Ok(AccountCreation::Created)
                }
                Err(e) if is_unique_violation(&e) => {
                    let row = sqlx::query("SELECT * FROM accounts WHERE thumbprint = ?")
                        .bind(&a.thumbprint)
                        .fetch_one(&mut *conn)
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
            if let Some(a) = self.cache().accounts.get(id) {
                return Ok(Some(a));
            }
            let mut conn = self.writer().await?;
            let row = sqlx::query("SELECT * FROM accounts WHERE id = ?")
                .bind(&id.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
            let account = row.as_ref().map(account_from_row).transpose()?;
            if let Some(a) = &account {
                self.cache().accounts.put(a.id.clone(), a.clone());
            }
            Ok(account)
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
            let json = serde_json::to_string(contact).map_err(json_err)?;
            let mut conn = self.writer().await?;
            let res =
                sqlx::query("UPDATE accounts SET contact = ? WHERE id = ? AND status = 'valid'")
                    .bind(json)
                    .bind(&id.0)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
            let done = res.rows_affected() == 1;
            if done {
                self.cache()
                    .accounts
                    .update(id, |a| a.contact = contact.to_vec());
            }
            Ok(done)
        })
    }

    fn deactivate_account<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.writer().await?;
            let res = sqlx::query(
                "UPDATE accounts SET status = 'deactivated' WHERE id = ? AND status = 'valid'",
            )
            .bind(&id.0)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
            let done = res.rows_affected() == 1;
            if done {
                self.cache()
                    .accounts
                    .update(id, |a| a.status = AccountStatus::Deactivated);
            }
            Ok(done)
        })
    }

    fn create_order<'a>(&'a self, o: &'a Order, authzs: &'a [Authz]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let identifiers = serde_json::to_string(&o.identifiers).map_err(json_err)?;
            let ids: Vec<&str> = o.authz_ids.iter().map(|a| a.0.as_str()).collect();
            let ids = serde_json::to_string(&ids).map_err(json_err)?;
            let mut conn = self.writer().await?;
            // Two statements, no transaction: the authorizations go first, so
            // a crash in between leaves only unreferenced pending
            // authorizations (which expire), never an order missing one.
            if !authzs.is_empty() {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO authzs (id, account_id, ident_type, ident_value, wildcard, \
                     state, expires, token, offered, created_at) ",
                );
                q.push_values(authzs, |mut b, a| {
                    let offered: Vec<&str> = a.offered.iter().map(|t| t.as_str()).collect();
                    b.push_bind(a.id.0.clone())
                        .push_bind(a.account_id.0.clone())
                        .push_bind(a.identifier.kind.as_str())
                        .push_bind(a.identifier.value.clone())
                        .push_bind(a.wildcard)
                        .push_bind(a.state.as_str())
                        .push_bind(a.expires)
                        .push_bind(a.token.clone())
                        .push_bind(offered.join(","))
                        .push_bind(a.created_at);
                });
                q.build().execute(&mut *conn).await.map_err(db_err)?;
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
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
            let mut cache = self.cache();
            for a in authzs {
                cache.authzs.put(a.id.clone(), a.clone());
            }
            cache.orders.put(o.id.clone(), o.clone());
            Ok(())
        })
    }

    fn order_by_id<'a>(&'a self, id: &'a OrderId) -> StoreFuture<'a, Option<Order>> {
        Box::pin(async move {
            if let Some(o) = self.cache().orders.get(id) {
                return Ok(Some(o));
            }
            let mut conn = self.writer().await?;
            let row = sqlx::query(ORDER_SELECT)
                .bind(&id.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
            let order = row.as_ref().map(order_from_row).transpose()?;
            if let Some(o) = &order {
                self.cache().orders.put(o.id.clone(), o.clone());
            }
            Ok(order)
        })
    }

    fn authzs_by_ids<'a>(&'a self, ids: &'a [AuthzId]) -> StoreFuture<'a, Vec<Authz>> {
        Box::pin(async move {
            let mut found: Vec<Authz> = Vec::with_capacity(ids.len());
            let mut missing: Vec<&AuthzId> = Vec::new();
            {
                let cache = self.cache();
                for id in ids {
                    match cache.authzs.get(id) {
                        Some(a) => found.push(a),
                        None => missing.push(id),
                    }
                }
            }
            if !missing.is_empty() {
                // Orders hold at most 100 identifiers (ra::policy), well
                // under SQLite's bound-parameter limit.
                let placeholders = vec!["?"; missing.len()].join(",");
                let sql = format!("SELECT * FROM authzs WHERE id IN ({placeholders})");
                // Only placeholders are formatted into the text; values are bound.
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for id in &missing {
                    q = q.bind(&id.0);
                }
                let mut conn = self.writer().await?;
                let rows = q.fetch_all(&mut *conn).await.map_err(db_err)?;
                let loaded: Vec<Authz> = rows.iter().map(authz_from_row).collect::<Result<_>>()?;
                let mut cache = self.cache();
                for a in loaded {
                    cache.authzs.put(a.id.clone(), a.clone());
                    found.push(a);
                }
            }
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
            Ok(self
                .authzs_by_ids(std::slice::from_ref(id))
                .await?
                .into_iter()
                .next())
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
                "SELECT o.seq, o.id FROM orders o WHERE o.account_id = ? AND o.seq > ? \
                 AND (EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = o.id) \
                      OR (o.expires > ? AND o.error IS NULL)) \
                 ORDER BY o.seq LIMIT ?",
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
        settled: Option<&'a ValidationResult>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.writer().await?;
            let res = match settled {
                None => sqlx::query(
                    "UPDATE authzs SET attempt_type = ?, attempt_state = 'processing', \
                     attempt_started = ? WHERE id = ? AND state = 'pending' \
                     AND attempt_type IS NULL AND expires > ?",
                )
                .bind(kind.as_str())
                .bind(now)
                .bind(&authz.0)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?,
                Some(r) => sqlx::query(
                    "UPDATE authzs SET attempt_type = ?, attempt_state = ?, attempt_started = ?, \
                     attempt_validated = ?, attempt_error = ?, attempt_records = ?, state = ?, \
                     expires = ? WHERE id = ? AND state = 'pending' \
                     AND attempt_type IS NULL AND expires > ?",
                )
                .bind(kind.as_str())
                .bind(r.state.as_str())
                .bind(now)
                .bind(r.validated_at)
                .bind(r.error.as_ref().map(|v| v.to_string()))
                .bind(r.records.as_ref().map(|v| v.to_string()))
                .bind(settled_state(r.state)?.as_str())
                .bind(r.expires)
                .bind(&authz.0)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?,
            };
            let done = res.rows_affected() == 1;
            if done {
                let state = settled.map(|r| settled_state(r.state)).transpose()?;
                self.cache().authzs.update(authz, |a| {
                    a.attempt = Some(match settled {
                        None => Attempt {
                            kind,
                            state: AttemptState::Processing,
                            started_at: now,
                            validated_at: None,
                            error: None,
                            records: None,
                        },
                        Some(r) => attempt_from_result(kind, now, r),
                    });
                    if let (Some(state), Some(r)) = (state, settled) {
                        a.state = state;
                        a.expires = r.expires;
                    }
                });
            }
            Ok(done)
        })
    }

    fn finish_challenge<'a>(
        &'a self,
        authz: &'a AuthzId,
        r: &'a ValidationResult,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let state = settled_state(r.state)?;
            let error = r.error.as_ref().map(|v| v.to_string());
            let records = r.records.as_ref().map(|v| v.to_string());
            let mut conn = self.writer().await?;
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
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
            let done = res.rows_affected() == 1;
            if done {
                self.cache().authzs.update(authz, |a| {
                    let started = a
                        .attempt
                        .as_ref()
                        .map(|t| t.started_at)
                        .unwrap_or(r.validated_at);
                    if let Some(kind) = a.attempt.as_ref().map(|t| t.kind) {
                        a.attempt = Some(attempt_from_result(kind, started, r));
                    }
                    a.state = state;
                    a.expires = r.expires;
                });
            }
            Ok(done)
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
            let mut conn = self.writer().await?;
            let res = sqlx::query(
                "UPDATE orders SET processing_until = ? WHERE id = ? AND error IS NULL \
                 AND (processing_until IS NULL OR processing_until <= ?) \
                 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = orders.id)",
            )
            .bind(until)
            .bind(&id.0)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
            let done = res.rows_affected() == 1;
            if done {
                self.cache()
                    .orders
                    .update(id, |o| o.processing_until = Some(until));
            }
            Ok(done)
        })
    }

    fn release_order<'a>(&'a self, id: &'a OrderId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.writer().await?;
            sqlx::query("UPDATE orders SET processing_until = NULL WHERE id = ?")
                .bind(&id.0)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            self.cache()
                .orders
                .update(id, |o| o.processing_until = None);
            Ok(())
        })
    }

    fn store_certificate<'a>(
        &'a self,
        c: &'a Certificate,
        order: &'a OrderId,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.writer().await?;
            // One round trip to the database thread for the common case:
            // switch to synchronous = FULL, insert, switch back, as one
            // batch. The certificate row is the order's link to it
            // (certificates.order_id is UNIQUE), so recording it and making
            // the order valid are one atomic, flushed write.
            let values = certificate_values(c, Some(order))?;
            let insert = format!(
                "INSERT INTO certificates (id, serial, account_id, order_id, der, not_before, \
                 not_after, issued_at) VALUES ({values});"
            );
            let batch = match self.durability {
                Durability::Issuance => {
                    format!("PRAGMA synchronous = FULL; {insert} PRAGMA synchronous = NORMAL;")
                }
                Durability::Full => insert,
            };
            // Every value in the text is ours and checked by
            // certificate_values: no client byte reaches it.
            let result = match sqlx::raw_sql(AssertSqlSafe(batch))
                .execute(&mut *conn)
                .await
            {
                Ok(_) => Ok(true),
                Err(e) => {
                    if self.durability == Durability::Issuance {
                        // The batch stopped before switching back.
                        if let Err(e) = sqlx::raw_sql("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await
                        {
                            tracing::warn!(error = %e, "could not restore synchronous = NORMAL");
                        }
                    }
                    if is_unique_violation(&e) {
                        // The order got a certificate from another request (its
                        // lease had run out). Record this one anyway,
                        // unlinked: every signed certificate is kept.
                        let values = certificate_values(c, None)?;
                        sqlx::raw_sql(AssertSqlSafe(format!(
                            "INSERT INTO certificates (id, serial, account_id, order_id, der, \
                             not_before, not_after, issued_at) VALUES ({values})"
                        )))
                        .execute(&mut *conn)
                        .await
                        .map(|_| false)
                        .map_err(db_err)
                    } else {
                        Err(db_err(e))
                    }
                }
            };
            if let Ok(true) = result {
                let mut cache = self.cache();
                cache.orders.update(order, |o| {
                    o.cert_id = Some(c.id.clone());
                    o.processing_until = None;
                });
                cache.certs.put(c.id.clone(), c.clone());
            }
            result
        })
    }

    fn certificate_by_id<'a>(&'a self, id: &'a CertId) -> StoreFuture<'a, Option<Certificate>> {
        Box::pin(async move {
            if let Some(c) = self.cache().certs.get(id) {
                return Ok(Some(c));
            }
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
            let mut conn = self.writer().await?;
            let res = sqlx::query(
                "UPDATE orders SET processing_until = NULL WHERE processing_until IS NOT NULL",
            )
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
            self.cache().orders.clear();
            Ok(res.rows_affected())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AuthzState;
    use crate::protocol::Identifier;

    fn account(id: &str, thumb: &str) -> Account {
        Account {
            id: AccountId(id.into()),
            status: AccountStatus::Valid,
            jwk: "{}".into(),
            thumbprint: thumb.into(),
            contact: vec![],
            tos_agreed: true,
            created_at: 1,
        }
    }

    fn authz(id: &str) -> Authz {
        Authz {
            id: AuthzId(id.into()),
            account_id: AccountId("acct".into()),
            identifier: Identifier::dns("example.com"),
            wildcard: false,
            state: AuthzState::Pending,
            expires: 1_000,
            token: "tok".into(),
            offered: ChallengeType::ALL.to_vec(),
            attempt: None,
            created_at: 1,
        }
    }

    fn order(id: &str, authz: &str) -> Order {
        Order {
            id: OrderId(id.into()),
            account_id: AccountId("acct".into()),
            identifiers: vec![Identifier::dns("example.com")],
            authz_ids: vec![AuthzId(authz.into())],
            expires: 1_000,
            not_before: None,
            not_after: None,
            processing_until: None,
            cert_id: None,
            error: None,
            created_at: 1,
        }
    }

    fn cert(id: &str, serial: &str) -> Certificate {
        Certificate {
            id: CertId(id.into()),
            serial: serial.into(),
            account_id: AccountId("acct".into()),
            order_id: Some(OrderId("o1".into())),
            der: vec![0x30, 0x03, 0x02, 0x01, 0x27],
            not_before: 1,
            not_after: 2,
            issued_at: 1,
        }
    }

    async fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("db.sqlite3"), Durability::Issuance)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn accounts_are_unique_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir).await;
        assert_eq!(
            s.create_account(&account("acct", "t1")).await.unwrap(),
            AccountCreation::Created
        );
        match s.create_account(&account("other", "t1")).await.unwrap() {
            AccountCreation::Existing(a) => assert_eq!(a.id.0, "acct"),
            other => panic!("{other:?}"),
        }
        assert!(s
            .deactivate_account(&AccountId("acct".into()))
            .await
            .unwrap());
        assert!(!s
            .deactivate_account(&AccountId("acct".into()))
            .await
            .unwrap());
        let a = s
            .account_by_id(&AccountId("acct".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.status, AccountStatus::Deactivated);
        assert!(!s
            .update_account_contact(&AccountId("acct".into()), &["mailto:a@b.example".into()])
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn one_attempt_per_authorization_and_one_lease_per_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir).await;
        s.create_account(&account("acct", "t1")).await.unwrap();
        s.create_order(&order("o1", "a1"), &[authz("a1")])
            .await
            .unwrap();
        let a1 = AuthzId("a1".into());
        assert!(s
            .start_challenge(&a1, ChallengeType::Http01, 10, None)
            .await
            .unwrap());
        assert!(!s
            .start_challenge(&a1, ChallengeType::Dns01, 10, None)
            .await
            .unwrap());
        let result = ValidationResult {
            state: AttemptState::Valid,
            validated_at: 11,
            error: None,
            records: Some(serde_json::json!([])),
            expires: 2_000,
        };
        assert!(s.finish_challenge(&a1, &result).await.unwrap());
        assert!(!s.finish_challenge(&a1, &result).await.unwrap());
        let a = s.authz_by_id(&a1).await.unwrap().unwrap();
        assert_eq!(a.state, AuthzState::Valid);
        assert_eq!(a.expires, 2_000);

        let o1 = OrderId("o1".into());
        assert!(s.claim_order(&o1, 20, 50).await.unwrap());
        assert!(!s.claim_order(&o1, 21, 51).await.unwrap(), "lease is held");
        assert!(s.claim_order(&o1, 50, 80).await.unwrap(), "lease ran out");
        assert!(s.store_certificate(&cert("c1", "0a"), &o1).await.unwrap());
        // A second certificate for the order is recorded, unlinked.
        assert!(!s.store_certificate(&cert("c2", "0b"), &o1).await.unwrap());
        assert!(
            !s.claim_order(&o1, 100, 130).await.unwrap(),
            "order has a certificate"
        );
        let o = s.order_by_id(&o1).await.unwrap().unwrap();
        assert_eq!(o.cert_id, Some(CertId("c1".into())));
        let c2 = s
            .certificate_by_id(&CertId("c2".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c2.order_id, None);
    }

    #[tokio::test]
    async fn state_survives_reopening_and_leases_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(&dir).await;
            s.create_account(&account("acct", "t1")).await.unwrap();
            s.create_order(&order("o1", "a1"), &[authz("a1")])
                .await
                .unwrap();
            s.create_order(&order("o2", "a2"), &[authz("a2")])
                .await
                .unwrap();
            assert!(s
                .claim_order(&OrderId("o1".into()), 10, 1_000)
                .await
                .unwrap());
            assert!(s
                .claim_order(&OrderId("o2".into()), 10, 1_000)
                .await
                .unwrap());
            assert!(s
                .store_certificate(&cert("c1", "0a"), &OrderId("o1".into()))
                .await
                .unwrap());
            s.close().await;
        }
        let s = open(&dir).await;
        assert_eq!(s.release_all_leases().await.unwrap(), 2);
        let o1 = s.order_by_id(&OrderId("o1".into())).await.unwrap().unwrap();
        assert_eq!(o1.cert_id, Some(CertId("c1".into())));
        let o2 = s.order_by_id(&OrderId("o2".into())).await.unwrap().unwrap();
        assert_eq!(o2.processing_until, None);
        assert!(s.claim_order(&OrderId("o2".into()), 11, 40).await.unwrap());
        let c = s
            .certificate_by_id(&CertId("c1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.der, vec![0x30, 0x03, 0x02, 0x01, 0x27]);
    }

    #[test]
    fn inlined_values_are_checked() {
        let mut c = cert("c1", "0a");
        assert!(certificate_values(&c, None).is_ok());
        c.serial = "0a'; DROP TABLE orders; --".into();
        assert!(certificate_values(&c, None).is_err());
        let c = cert("c'1", "0a");
        assert!(certificate_values(&c, None).is_err());
        let v = certificate_values(&cert("c1", "0a"), Some(&OrderId("o1".into()))).unwrap();
        assert_eq!(v, "'c1', '0a', 'acct', 'o1', X'3003020127', 1, 2, 1");
    }
}
