//! The PostgreSQL store (sqlx), for deployments where several acme-ca
//! instances share one database behind a load balancer.
//!
//! - Every value reaches PostgreSQL as a bound parameter; the only SQL text
//!   built at run time is the list of `$n` placeholders.
//! - Every state transition is one conditional statement (or one
//!   transaction) whose row count says who won, exactly as in SQLite: the
//!   database, not a process, decides races between instances.
//! - Commits are PostgreSQL's own (`synchronous_commit` as the server is
//!   configured, on by default): a certificate is on disk before the client
//!   sees it. `store.durability` is SQLite's knob and does not apply here.
//! - Statements are bounded in time (`statement_timeout`), and a pool
//!   connection is waited for at most [`ACQUIRE_TIMEOUT`]: a lost database
//!   shows as an error the front ends answer with 503, never as a hang.

mod batch;
mod core;
mod inserts;
mod ratelimit;
mod schema;
mod service;
mod service_rows;
mod shared;

// The Store tests (this file's own are the `tests` module below).
#[cfg(test)]
#[path = "tests.rs"]
mod store_tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};

use crate::store::reuse::Reuse;
use sqlx::{ConnectOptions, Connection};

use super::StoreFuture;
use crate::error::{Error, Result};
use schema::MIGRATIONS;

/// How long a request waits for a pool connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections for the batched statements at most: one per kind of batch
/// (batch.rs), each kind running one batch at a time.
const BATCH_CONNECTIONS: u32 = 4;
/// How long one statement may run.
const STATEMENT_TIMEOUT: &str = "15s";
/// The advisory lock that serialises migrations between instances starting
/// together (an arbitrary constant: "acme-ca" in ASCII).
const MIGRATION_LOCK: i64 = 0x61_63_6d_65_2d_63_61;

/// The PostgreSQL store.
pub(crate) struct PgStore {
    /// Connections kept between statements ([`Reuse`]: no ping, a round
    /// trip to the database, each time sqlx's pool would take one back).
    pool: Arc<Reuse<Postgres>>,
    /// The connections of the batched statements (generic plans only).
    batches: Arc<Reuse<Postgres>>,
    /// Nonces spent together by the requests that arrive at once.
    nonces: batch::Batcher<batch::NonceSpend, crate::store::shared::NonceSpent>,
    /// Authorizations read together by the requests that arrive at once.
    authzs: batch::Batcher<crate::model::AuthzId, Option<crate::model::Authz>>,
    /// Orders with their authorizations, read likewise.
    orders: batch::Batcher<crate::model::OrderId, Option<batch::OrderAndAuthzs>>,
    /// Certificates by id, read likewise.
    certs: batch::Batcher<crate::model::CertId, Option<crate::model::Certificate>>,
}

/// How long a client is told to wait when the database is out of reach.
const RETRY_AFTER_SECS: u64 = 5;

/// A database error as the front ends answer it: the database out of reach
/// (no connection, connection lost, server shutting down or starting,
/// statement cancelled by its timeout, too many connections) is
/// `unavailable` (503 with Retry-After) and passes once it is back; any
/// other failure is internal.
pub(super) fn db_err(e: sqlx::Error) -> Error {
    if is_outage(&e) {
        Error::unavailable(format_args!("database: {e}"), RETRY_AFTER_SECS)
    } else {
        Error::internal(format_args!("database: {e}"))
    }
}

fn is_outage(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // SQLSTATE classes 08 (connection exception) and 57
            // (operator intervention: shutdown, cancel, cannot connect
            // now), and 53300 (too many connections).
            c.starts_with("08") || c.starts_with("57") || c == "53300"
        }),
        _ => false,
    }
}

/// The URL without its password, for messages: `host:port/database`.
pub(crate) fn describe_url(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!(
            "{}:{}/{}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        ),
        Err(_) => "(unparsable URL)".into(),
    }
}

impl PgStore {
    /// Connects to `url`, migrates the schema (refusing one newer than this
    /// binary knows) and keeps at most `max_connections` connections (a
    /// quarter of them, one to four, for the batched statements).
    pub(crate) async fn open(url: &str, max_connections: u32) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::internal(format_args!("store.url: {e}")))?
            .application_name("acme-ca")
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        // One connection first, so that a database out of reach is named
        // by its own error (refused, unknown host, bad password) rather
        // than by the pool's timeout.
        let first = tokio::time::timeout(ACQUIRE_TIMEOUT * 2, options.connect()).await;
        match first {
            Ok(Ok(conn)) => conn.close().await.map_err(db_err)?,
            Ok(Err(e)) => return Err(db_err(e)),
            Err(_) => {
                return Err(Error::unavailable(
                    format_args!("no answer within {:?}", ACQUIRE_TIMEOUT * 2),
                    RETRY_AFTER_SECS,
                ))
            }
        }
        // The batched statements get a few connections of their own, on
        // which PostgreSQL always uses the statement's generic plan.
        // Otherwise its plan cache picks, per connection, between planning
        // each execution for its parameters and one generic plan, by the
        // costs of the first five executions: a connection whose first
        // batches were small planned every batch statement anew (at two
        // instances, every nonce spend: half of PostgreSQL's time on it).
        // Their plans are primary-key lookups whatever the batch's size.
        let batch_connections = (max_connections / 4).clamp(1, BATCH_CONNECTIONS);
        let general = connect(
            options.clone(),
            max_connections.saturating_sub(batch_connections).max(1),
        )
        .await?;
        migrate(&general).await?;
        let batches = connect(
            options.options([("plan_cache_mode", "force_generic_plan")]),
            batch_connections,
        )
        .await?;
        let pool = Arc::new(Reuse::new(general, ACQUIRE_TIMEOUT));
        let batches = Arc::new(Reuse::new(batches, ACQUIRE_TIMEOUT));
        Ok(PgStore {
            nonces: batch::Batcher::new(batches.clone(), batch::spend_nonces),
            authzs: batch::Batcher::new(batches.clone(), batch::read_authzs),
            orders: batch::Batcher::new(batches.clone(), batch::read_orders),
            certs: batch::Batcher::new(batches.clone(), batch::read_certs),
            pool,
            batches,
        })
    }

    /// The pool (for the trait implementations in this module's files).
    pub(super) fn pool(&self) -> &Reuse<Postgres> {
        &self.pool
    }

    /// Spends `nonce` and reads `account` and `lookup`'s record in the
    /// batch of the moment.
    async fn spend_nonce_batched(
        &self,
        nonce: &[u8],
        expires_ms: i64,
        account: Option<&crate::model::AccountId>,
        lookup: Option<&crate::store::shared::Lookup>,
    ) -> Result<crate::store::shared::NonceSpent> {
        self.nonces
            .ask(batch::NonceSpend {
                nonce: nonce.to_vec(),
                expires_ms,
                account: account.cloned(),
                lookup: lookup.cloned(),
            })
            .await
    }

    /// Closes the pools, waiting for connections in use.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
        self.batches.close().await;
    }
}

impl super::Database for PgStore {
    fn is_shared(&self) -> bool {
        true
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            PgStore::close(self).await;
            Ok(())
        })
    }
}

/// A pool of at most `max` connections made with `options`.
async fn connect(options: PgConnectOptions, max: u32) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // No ping before each use (a round trip per query): a connection
        // the database dropped fails its next query, which is answered 503
        // (`db_err`), and the pool replaces it.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(db_err)
}

/// Applies the migrations this database lacks, each in its own transaction,
/// under an advisory lock so instances starting together migrate once.
async fn migrate(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let outcome = migrate_locked(&mut conn).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err);
    outcome.and(unlocked.map(|_| ()))
}

async fn migrate_locked(conn: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS acme_ca_schema (version BIGINT NOT NULL)")
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM acme_ca_schema")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let version = usize::try_from(version.unwrap_or(0)).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(Error::internal(format_args!(
            "the database schema (version {version}) is newer than this acme-ca \
             (version {}); refusing to touch it",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let mut tx = conn.begin().await.map_err(db_err)?;
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("INSERT INTO acme_ca_schema (version) VALUES ($1)")
            .bind(i as i64 + 1)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::pg;

    /// The batched statements' connections always use generic plans; the
    /// others leave the choice to PostgreSQL. Within `max_connections`.
    #[tokio::test]
    async fn batches_have_connections_of_their_own_with_generic_plans() {
        let Some(db) = pg::fresh_database().await else {
            return;
        };
        let store = PgStore::open(db.url(), 8).await.unwrap();
        for (pool, want) in [
            (&store.batches, "force_generic_plan"),
            (&store.pool, "auto"),
        ] {
            let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
                .fetch_one(pool.as_ref())
                .await
                .unwrap();
            assert_eq!(mode, want);
        }
        // 8 in all: 2 for the batches, 6 for the rest; and at the least,
        // one each.
        assert_eq!((store.batches.size(), store.pool.size()), (2, 6));
        let small = PgStore::open(db.url(), 2).await.unwrap();
        assert_eq!((small.batches.size(), small.pool.size()), (1, 1));
    }

    #[tokio::test]
    async fn migrates_once_and_refuses_a_newer_schema() {
        let Some(db) = pg::fresh_database().await else {
            return;
        };
        let store = PgStore::open(db.url(), 2).await.unwrap();
        // A second open (another instance) finds the schema current.
        let again = PgStore::open(db.url(), 2).await.unwrap();
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM acme_ca_schema")
            .fetch_all(again.pool())
            .await
            .unwrap();
        assert_eq!(versions, (1..=MIGRATIONS.len() as i64).collect::<Vec<_>>());
        sqlx::query("INSERT INTO acme_ca_schema (version) VALUES ($1)")
            .bind(MIGRATIONS.len() as i64 + 1)
            .execute(store.pool())
            .await
            .unwrap();
        let err = PgStore::open(db.url(), 2).await.err().unwrap();
        let cause = err.cause().to_string();
        assert!(cause.contains("newer than this acme-ca"), "{cause}");
    }

    #[tokio::test]
    async fn instances_starting_together_migrate_once() {
        let Some(db) = pg::fresh_database().await else {
            return;
        };
        let opens = (0..4).map(|_| PgStore::open(db.url(), 2));
        for r in futures_util::future::join_all(opens).await {
            r.unwrap();
        }
    }

    /// A database out of reach, at start or while running, is an outage
    /// the front ends answer 503 with Retry-After, not an internal error.
    #[tokio::test]
    async fn an_unreachable_database_is_unavailable() {
        let err = PgStore::open("postgres://acme@127.0.0.1:1/none", 2)
            .await
            .err()
            .unwrap();
        assert_eq!(
            err.kind,
            crate::error::ErrorKind::Unavailable,
            "{}",
            err.cause()
        );
        assert!(err.cause().contains("refused"), "{}", err.cause());
        let Some(db) = pg::fresh_database().await else {
            return;
        };
        let store = PgStore::open(db.url(), 2).await.unwrap();
        store.close().await;
        let err = crate::store::Store::ping(&store).await.err().unwrap();
        assert_eq!(
            err.kind,
            crate::error::ErrorKind::Unavailable,
            "{}",
            err.cause()
        );
        assert_eq!(err.retry_after(), Some(RETRY_AFTER_SECS));
        // Any other failure stays internal.
        assert_eq!(
            db_err(sqlx::Error::RowNotFound).kind,
            crate::error::ErrorKind::ServerInternal
        );
    }

    #[test]
    fn described_urls_have_no_password() {
        let d = describe_url("postgres://acme:s3cret@db.example:6543/ca");
        assert_eq!(d, "db.example:6543/ca");
    }
}
