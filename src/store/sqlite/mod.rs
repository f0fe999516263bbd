//! The embedded SQLite store (WAL mode; sqlx for reads and migrations,
//! rusqlite for the write connection).
//!
//! - Writes go through one writer that holds the single write connection
//!   ([`writer`]): a lone write commits on its caller's thread, concurrent
//!   ones together on the writer's thread (group commit). No write contends
//!   for SQLite's lock inside this process, and under load one fsync
//!   serves many requests.
//! - Reads are served from a coherent cache of recently used records
//!   ([`cache`]); misses go to a small pool of read-only connections, which
//!   WAL lets run beside the writer.
//!
//! Durability: connections run with `synchronous = NORMAL`, which in WAL mode
//! survives a crash of this process (SIGKILL included) at any moment. A
//! batch that records a certificate commits with `synchronous = FULL`, so
//! the certificate is on disk before any client sees it, even across a power
//! loss; the WAL being sequential, that flush also persists every earlier
//! write. `durability = "full"` flushes every commit instead.

mod cache;
mod leases;
mod ops;
mod ratelimit;
mod schema;
mod service;
mod shared;
mod sql;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Row};

use super::{AccountCreation, OrderListEntry, RevokedCert, Store, StoreFuture, ValidationResult};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{
    Account, AccountId, Authz, AuthzId, CertId, Certificate, ChallengeType, Order, OrderId,
    Revocation, RevocationReason, Timestamp,
};
use crate::protocol::Identifier;
use crate::store::reuse::Reuse;
use crate::store::rows::{
    account_from_row, authz_from_row, cert_from_row, json_err, order_from_row,
};
use cache::Cache;
use leases::Leases;
use ops::{Op, Replacement};
use schema::MIGRATIONS;
use writer::Writer;

pub(crate) use crate::config::Durability;

/// The SQLite store.
pub(crate) struct SqliteStore {
    /// Read-only connections, kept between reads (no ping: a round trip
    /// to the connection's thread when sqlx's pool takes one back).
    reader: Reuse<Sqlite>,
    writer: Writer,
    cache: Arc<Mutex<Cache>>,
    /// Serialises the few operations that read, decide and then write
    /// (src/store/sqlite/shared.rs).
    exclusive: tokio::sync::Mutex<()>,
    /// Finalize leases, held in this process ([`leases`]).
    leases: Leases,
}

fn db_err(e: sqlx::Error) -> Error {
    Error::internal(format_args!("database: {e}"))
}

/// The newest valid authorization of an account for an identifier, valid
/// until after a time.
const REUSABLE_AUTHZ: &str = "SELECT * FROM authzs WHERE account_id = ? AND ident_value = ? \
     AND ident_type = ? AND wildcard = ? AND state = 'valid' AND expires > ? \
     ORDER BY expires DESC LIMIT 1";

/// The order row with its certificate id, if one was issued.
const ORDER_SELECT: &str = "SELECT o.*, c.id AS cert_id FROM orders o \
     LEFT JOIN certificates c ON c.order_id = o.id WHERE o.id = ?";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrates it and
    /// starts the writer (tests; the server counts the writer's batches
    /// with [`SqliteStore::open_with_metrics`]).
    #[cfg(test)]
    pub(crate) async fn open(path: &Path, durability: Durability) -> Result<SqliteStore> {
        SqliteStore::open_with_metrics(path, durability, Arc::new(Metrics::new())).await
    }

    /// [`SqliteStore::open`], with the writer's batches counted in
    /// `metrics`.
    pub(crate) async fn open_with_metrics(
        path: &Path,
        durability: Durability,
        metrics: Arc<Metrics>,
    ) -> Result<SqliteStore> {
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
        let mut write_conn = base
            .clone()
            .create_if_missing(true)
            .connect()
            .await
            .map_err(db_err)?;
        migrate(&mut write_conn).await?;
        backfill_common_names(&mut write_conn).await?;
        let reader_pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // A read-only connection to a local file does not go stale: no
            // ping (a round trip to the connection's thread) before each use.
            .test_before_acquire(false)
            .connect_with(base.read_only(true))
            .await
            .map_err(db_err)?;
        let reader = Reuse::new(reader_pool, Duration::from_secs(30));
        // Migrated: from here on the writer's own connection writes.
        sqlx::Connection::close(write_conn).await.map_err(db_err)?;
        let conn = writer::open(path, durability)?;
        let cache = Arc::new(Mutex::new(Cache::new()));
        let writer = Writer::start(conn, cache.clone(), durability, metrics)?;
        Ok(SqliteStore {
            reader,
            writer,
            cache,
            exclusive: tokio::sync::Mutex::new(()),
            leases: Leases::default(),
        })
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        // Cache updates cannot panic half-way; a poisoned lock still holds
        // consistent maps.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the readers (waiting for connections in use) and the write
    /// connection (after the writes queued before).
    pub(crate) async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Reads through the cache: `cached` looks the record up, `load` reads
    /// it from a reader connection on a miss, `keep` puts it in the cache
    /// unless a write was committed meanwhile.
    async fn read_through<T: Clone>(
        &self,
        cached: impl Fn(&Cache) -> Option<T>,
        load: impl std::future::Future<Output = Result<Option<T>>>,
        keep: impl FnOnce(&mut Cache, T),
    ) -> Result<Option<T>> {
        let generation = {
            let cache = self.cache();
            if let Some(v) = cached(&cache) {
                return Ok(Some(v));
            }
            cache.generation
        };
        let value = load.await?;
        if let Some(v) = &value {
            let mut cache = self.cache();
            if cache.generation == generation {
                keep(&mut cache, v.clone());
            }
        }
        Ok(value)
    }
}

/// Certificates stored before the common_name column existed get it, once:
/// the subject CN, or the first name when there is none.
async fn backfill_common_names(conn: &mut SqliteConnection) -> Result<()> {
    use x509_cert::der::Decode;
    let mut filled = 0u64;
    loop {
        let rows =
            sqlx::query("SELECT id, der FROM certificates WHERE common_name IS NULL LIMIT 500")
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let id: String = row.try_get("id").map_err(db_err)?;
            let der: Vec<u8> = row.try_get("der").map_err(db_err)?;
            let name = x509_cert::Certificate::from_der(&der)
                .ok()
                .and_then(|c| {
                    crate::model::san::certificate_identifiers(&c)
                        .ok()
                        .and_then(|ids| ids.first().map(|i| i.value.clone()))
                })
                // Never NULL again: an unreadable one is not looked at twice.
                .unwrap_or_default();
            sqlx::query("UPDATE certificates SET common_name = ? WHERE id = ?")
                .bind(name)
                .bind(&id)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            filled += 1;
        }
    }
    if filled > 0 {
        tracing::info!(certificates = filled, "filled in common names");
    }
    Ok(())
}

async fn migrate(conn: &mut SqliteConnection) -> Result<()> {
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

impl super::Database for SqliteStore {
    fn is_shared(&self) -> bool {
        false
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            SqliteStore::close(self).await;
            Ok(())
        })
    }
}

impl Store for SqliteStore {
    fn create_account<'a>(
        &'a self,
        a: &'a Account,
        eab_kid: Option<&'a str>,
    ) -> StoreFuture<'a, AccountCreation> {
        Box::pin(async move {
            let op = Op::CreateAccount(a.clone(), eab_kid.map(str::to_owned));
            if self.writer.write(op).await? == 1 {
                return Ok(AccountCreation::Created);
            }
            // Another account has this key (the insert did nothing); it is
            // committed, so a reader sees it. Otherwise the key id was taken.
            let row = sqlx::query("SELECT * FROM accounts WHERE thumbprint = ?")
                .bind(&a.thumbprint)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            match row {
                Some(row) => Ok(AccountCreation::Existing(account_from_row(&row)?)),
                None if eab_kid.is_some() => Ok(AccountCreation::KeyIdTaken),
                None => Err(Error::internal("account insert did nothing")),
            }
        })
    }

    fn create_authz<'a>(&'a self, authz: &'a Authz) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.writer.write(Op::CreateAuthz(authz.clone())).await?;
            Ok(())
        })
    }

    fn reusable_authz<'a>(
        &'a self,
        account: &'a AccountId,
        identifier: &'a Identifier,
        wildcard: bool,
        min_expires: Timestamp,
    ) -> StoreFuture<'a, Option<Authz>> {
        Box::pin(async move {
            // Asked by every newOrder, and missed by the cache for a name
            // not validated before: on the write connection when it is
            // idle (a lone client), on a reader otherwise.
            let inline = self.writer.read_inline(|conn| {
                let mut statement = conn.prepare_cached(REUSABLE_AUTHZ)?;
                let mut rows = statement.query(rusqlite::params![
                    account.0,
                    identifier.value,
                    identifier.kind.as_str(),
                    wildcard,
                    min_expires
                ])?;
                Ok(rows.next()?.map(authz_from_row))
            });
            if let Some(found) = inline {
                return found?.transpose();
            }
            let row = sqlx::query(REUSABLE_AUTHZ)
                .bind(&account.0)
                .bind(&identifier.value)
                .bind(identifier.kind.as_str())
                .bind(wildcard)
                .bind(min_expires)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.as_ref().map(authz_from_row).transpose()
        })
    }

    fn replacement_of<'a>(&'a self, cert: &'a CertId) -> StoreFuture<'a, Option<OrderId>> {
        Box::pin(async move {
            let id: Option<Option<String>> =
                sqlx::query_scalar("SELECT replaced_by FROM certificates WHERE id = ?")
                    .bind(&cert.0)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(db_err)?;
            Ok(id.flatten().map(OrderId))
        })
    }

    fn revoked_certificates(&self, now: Timestamp) -> StoreFuture<'_, Vec<RevokedCert>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT serial, revoked_at, revocation_reason, not_after FROM certificates \
                 WHERE revoked_at IS NOT NULL AND not_after > ? ORDER BY serial",
            )
            .bind(now)
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
            rows.iter()
                .map(|row| {
                    let code: i64 = row.try_get("revocation_reason").map_err(db_err)?;
                    Ok(RevokedCert {
                        serial: row.try_get("serial").map_err(db_err)?,
                        revocation: Revocation {
                            at: row.try_get("revoked_at").map_err(db_err)?,
                            reason: RevocationReason::from_code(code).ok_or_else(|| {
                                Error::internal(format_args!("bad stored revocation reason {code}"))
                            })?,
                        },
                        not_after: row.try_get("not_after").map_err(db_err)?,
                    })
                })
                .collect()
        })
    }

    fn account_by_id<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, Option<Account>> {
        Box::pin(self.read_through(
            |c| c.accounts.get(id),
            async move {
                let row = sqlx::query("SELECT * FROM accounts WHERE id = ?")
                    .bind(&id.0)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(account_from_row).transpose()
            },
            |c, a| c.accounts.put(a.id.clone(), a),
        ))
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
            let op = Op::UpdateContact(id.clone(), contact.to_vec());
            Ok(self.writer.write(op).await? == 1)
        })
    }

    fn deactivate_account<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.writer.write(Op::Deactivate(id.clone())).await? == 1) })
    }

    fn deactivate_authz<'a>(&'a self, id: &'a AuthzId) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.writer.write(Op::DeactivateAuthz(id.clone())).await? == 1) })
    }

    fn create_order<'a>(
        &'a self,
        o: &'a Order,
        authzs: &'a [Authz],
        replaces: Option<(&'a CertId, Option<&'a OrderId>)>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // Order and authorizations (and the replacement) commit in one
            // transaction; the order's insert is the last statement.
            let replacement = replaces.map(|(cert, expected)| Replacement {
                cert: cert.clone(),
                expected: expected.cloned(),
            });
            let rows = self
                .writer
                .write(Op::CreateOrder(o.clone(), authzs.to_vec(), replacement))
                .await?;
            Ok(rows == 1)
        })
    }

    fn order_with_authzs<'a>(
        &'a self,
        id: &'a OrderId,
    ) -> StoreFuture<'a, Option<(Order, Vec<Authz>)>> {
        // In process (and mostly from the cache): two reads cost no round
        // trip.
        Box::pin(async move {
            let Some(order) = self.order_by_id(id).await? else {
                return Ok(None);
            };
            let authzs = self.authzs_by_ids(&order.authz_ids).await?;
            Ok(Some((order, authzs)))
        })
    }

    fn order_by_id<'a>(&'a self, id: &'a OrderId) -> StoreFuture<'a, Option<Order>> {
        Box::pin(async move {
            let order = self
                .read_through(
                    |c| c.orders.get(id),
                    async move {
                        let row = sqlx::query(ORDER_SELECT)
                            .bind(&id.0)
                            .fetch_optional(&self.reader)
                            .await
                            .map_err(db_err)?;
                        row.as_ref().map(order_from_row).transpose()
                    },
                    |c, o| c.orders.put(o.id.clone(), o),
                )
                .await?;
            Ok(order.map(|o| self.leases.overlay(o)))
        })
    }

    fn authzs_by_ids<'a>(&'a self, ids: &'a [AuthzId]) -> StoreFuture<'a, Vec<Authz>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(a) = self.authz_by_id(id).await? {
                    out.push(a);
                }
            }
            Ok(out)
        })
    }

    fn authz_by_id<'a>(&'a self, id: &'a AuthzId) -> StoreFuture<'a, Option<Authz>> {
        Box::pin(self.read_through(
            |c| c.authzs.get(id),
            async move {
                let row = sqlx::query("SELECT * FROM authzs WHERE id = ?")
                    .bind(&id.0)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(authz_from_row).transpose()
            },
            |c, a| c.authzs.put(a.id.clone(), a),
        ))
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
            if let Some(r) = settled {
                crate::store::settled_state(r.state)?;
            }
            let op = Op::StartChallenge {
                authz: authz.clone(),
                kind,
                now,
                settled: settled.cloned(),
            };
            Ok(self.writer.write(op).await? == 1)
        })
    }

    fn finish_challenge<'a>(
        &'a self,
        authz: &'a AuthzId,
        r: &'a ValidationResult,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            crate::store::settled_state(r.state)?;
            let op = Op::FinishChallenge(authz.clone(), r.clone());
            Ok(self.writer.write(op).await? == 1)
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
        owner: &'a str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if !self.leases.claim(id, owner, now, until) {
                return Ok(false);
            }
            // Read with the lease held: a certificate stored before is seen.
            let read = self.order_by_id(id).await;
            let order = read.as_ref().ok().and_then(Option::as_ref);
            let kept = self.leases.keep_if_finalizable(id, owner, order);
            read.map(|_| kept)
        })
    }

    fn release_order<'a>(&'a self, id: &'a OrderId, owner: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.leases.release(id, owner);
            Ok(())
        })
    }

    fn store_certificate<'a>(
        &'a self,
        c: &'a Certificate,
        order: &'a OrderId,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut cert = c.clone();
            cert.order_id = Some(order.clone());
            // The certificate row is the order's link to it
            // (certificates.order_id is UNIQUE): recording it and making the
            // order valid are one atomic, flushed write.
            let linked = self
                .writer
                .write(Op::StoreCertificate(cert.clone()))
                .await?
                == 1;
            self.leases.end(order);
            if linked {
                return Ok(true);
            }
            // The order got a certificate from another request (its lease
            // had run out). Record this one anyway, unlinked: every signed
            // certificate is kept.
            cert.order_id = None;
            self.writer.write(Op::StoreCertificate(cert)).await?;
            Ok(false)
        })
    }

    fn certificate_by_id<'a>(&'a self, id: &'a CertId) -> StoreFuture<'a, Option<Certificate>> {
        Box::pin(self.read_through(
            |c| c.certs.get(id),
            async move {
                let row = sqlx::query("SELECT * FROM certificates WHERE id = ?")
                    .bind(&id.0)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(cert_from_row).transpose()
            },
            |c, cert| c.certs.put(cert.id.clone(), cert),
        ))
    }

    fn change_account_key<'a>(
        &'a self,
        id: &'a AccountId,
        old_thumbprint: &'a str,
        new_jwk: &'a str,
        new_thumbprint: &'a str,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let op = Op::ChangeKey {
                account: id.clone(),
                old_thumbprint: old_thumbprint.to_owned(),
                jwk: new_jwk.to_owned(),
                thumbprint: new_thumbprint.to_owned(),
            };
            Ok(self.writer.write(op).await? == 1)
        })
    }

    fn certificate_by_serial<'a>(
        &'a self,
        serial: &'a str,
    ) -> StoreFuture<'a, Option<Certificate>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM certificates WHERE serial = ?")
                .bind(serial)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
            row.as_ref().map(cert_from_row).transpose()
        })
    }

    fn revoke_certificate<'a>(
        &'a self,
        id: &'a CertId,
        revocation: Revocation,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            Ok(self
                .writer
                .write(Op::Revoke(id.clone(), revocation))
                .await?
                == 1)
        })
    }

    fn has_valid_authz<'a>(
        &'a self,
        account: &'a AccountId,
        identifier: &'a Identifier,
        now: Timestamp,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT 1 FROM authzs WHERE account_id = ? AND ident_type = ? \
                 AND ident_value = ? AND state = 'valid' AND expires > ? LIMIT 1",
            )
            .bind(&account.0)
            .bind(identifier.kind.as_str())
            .bind(&identifier.value)
            .bind(now)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?;
            Ok(row.is_some())
        })
    }

    fn release_all_leases(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let held = self.leases.release_all();
            // Leases an earlier version recorded in the orders table. Read
            // first: a start with none writes nothing, so a full or
            // read-only disk does not keep the server (and its OCSP, CRL
            // and downloads) from starting.
            let (left,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM orders WHERE processing_until IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = orders.id)",
            )
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)?;
            if left == 0 {
                return Ok(held);
            }
            Ok(held + self.writer.write(Op::ReleaseAllLeases).await?)
        })
    }

    fn release_leases_of<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let held = self.leases.release_all_of(owner);
            let recorded = self
                .writer
                .write(Op::ReleaseLeasesOf(owner.to_owned()))
                .await?;
            Ok(held + recorded)
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.reader)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn certificates_expiring(
        &self,
        now: Timestamp,
        soon: Timestamp,
        later: Timestamp,
    ) -> StoreFuture<'_, (u64, u64)> {
        Box::pin(async move {
            // One range scan of certificates_by_not_after.
            let row = sqlx::query(
                "SELECT COALESCE(SUM(not_after <= ?), 0), COUNT(*) FROM certificates \
                 WHERE not_after > ? AND not_after <= ? AND revoked_at IS NULL",
            )
            .bind(soon)
            .bind(now)
            .bind(later)
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)?;
            let count = |i: usize| -> Result<u64> {
                let n: i64 = row.try_get(i).map_err(db_err)?;
                Ok(u64::try_from(n).unwrap_or(0))
            };
            Ok((count(0)?, count(1)?))
        })
    }
}
