//! Connections kept between statements instead of given back to sqlx's pool
//! after each one.
//!
//! sqlx gives a pool connection back through a task that first pings it (a
//! round trip to PostgreSQL, or to the thread of a SQLite connection) so a
//! connection left mid-statement never reaches the next user. With one
//! statement per checkout, that doubles the round trips of every request
//! and the database's work. [`Reuse`] keeps the connections it was lent in
//! a list of its own: a statement takes one (or, when the list is empty, a
//! new one from the pool), runs, and puts it back at once, without a ping,
//! when the statement completed (with rows, or with an error the database
//! answered, such as a constraint violation). A connection whose statement
//! was cancelled, or failed for any other reason (I/O, protocol, timeout),
//! goes back to the pool the usual way, where the ping closes it if it is
//! broken. A connection that was fine but whose next use finds the database
//! gone (a restart) fails that statement, which the store answers `503`,
//! and is not kept.
//!
//! A semaphore of the pool's size bounds the connections out at once
//! (kept or in use), so taking one from the pool never waits behind
//! connections this list holds.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Either, Error, Execute, Executor, Pool, SqlStr};
use tokio::sync::{Semaphore, SemaphorePermit};

/// A sqlx pool whose connections are kept between statements.
pub(crate) struct Reuse<DB: Database> {
    pool: Pool<DB>,
    idle: Mutex<Vec<PoolConnection<DB>>>,
    permits: Semaphore,
    acquire_timeout: Duration,
}

impl<DB: Database> fmt::Debug for Reuse<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reuse")
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

/// A connection lent by [`Reuse`]; dropped, it goes back to the list if
/// [`Lease::keep`] was called, else to the pool.
pub(crate) struct Lease<'a, DB: Database> {
    reuse: &'a Reuse<DB>,
    conn: Option<PoolConnection<DB>>,
    keep: bool,
    _permit: SemaphorePermit<'a>,
}

impl<DB: Database> Reuse<DB> {
    /// Wraps `pool`; a statement waits at most `acquire_timeout` for a
    /// connection (sqlx's `PoolTimedOut` after that).
    pub(crate) fn new(pool: Pool<DB>, acquire_timeout: Duration) -> Reuse<DB> {
        let size = pool.options().get_max_connections() as usize;
        Reuse {
            pool,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size.max(1)),
            acquire_timeout,
        }
    }

    /// The most connections the pool opens.
    pub(crate) fn size(&self) -> u32 {
        self.pool.options().get_max_connections()
    }

    /// A connection for a caller that runs several statements on it (a
    /// transaction): call [`Lease::keep`] once they all completed.
    pub(crate) async fn lease(&self) -> Result<Lease<'_, DB>, Error> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| Error::PoolTimedOut)?
            .map_err(|_| Error::PoolClosed)?;
        let kept = self.idle().pop();
        let conn = match kept {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(Lease {
            reuse: self,
            conn: Some(conn),
            keep: false,
            _permit: permit,
        })
    }

    /// Gives every kept connection back to the pool, then closes the pool
    /// (waiting for connections in use).
    pub(crate) async fn close(&self) {
        self.permits.close();
        let kept = std::mem::take(&mut *self.idle());
        drop(kept);
        self.pool.close().await;
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<PoolConnection<DB>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<DB: Database> Lease<'_, DB> {
    /// The connection goes back to the list when the lease is dropped.
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }

    /// Begins a transaction on the leased connection. Dropped without a
    /// commit, it is rolled back before the connection is used again.
    pub(crate) async fn begin(&mut self) -> Result<sqlx::Transaction<'_, DB>, Error> {
        sqlx::Connection::begin(&mut **self).await
    }

    /// Keeps the connection when `result` shows its statement completed:
    /// rows, or an error the database itself answered, unless that error
    /// says the connection is going away (SQLSTATE classes 08, connection
    /// exception, and 57, operator intervention, e.g. a shutdown).
    fn settle<T>(&mut self, result: &Result<T, Error>) {
        self.keep = match result {
            Ok(_) | Err(Error::RowNotFound) => true,
            Err(Error::Database(e)) => !e
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
            Err(_) => false,
        };
    }
}

impl<DB: Database> std::ops::Deref for Lease<'_, DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl<DB: Database> std::ops::DerefMut for Lease<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl<DB: Database> Drop for Lease<'_, DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep && !self.reuse.permits.is_closed() {
                self.reuse.idle().push(conn);
            }
            // Otherwise dropped: back to the pool, pinged on the way.
        }
    }
}

impl<'p, DB: Database> Executor<'p> for &'p Reuse<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    /// Collects the whole answer before yielding it (the connection goes
    /// back first); the store's queries are bounded.
    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        stream::once(async move {
            let mut lease = self.lease().await?;
            let result: Result<Vec<_>, Error> = lease.fetch_many(query).try_collect().await;
            lease.settle(&result);
            result.map(|steps| stream::iter(steps.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        Box::pin(async move {
            let mut lease = self.lease().await?;
            let result = lease.fetch_optional(query).await;
            lease.settle(&result);
            result
        })
    }

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<DB::QueryResult, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        Box::pin(async move {
            let mut lease = self.lease().await?;
            let result = lease.execute(query).await;
            lease.settle(&result);
            result
        })
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        Box::pin(async move {
            let mut lease = self.lease().await?;
            let result = lease.fetch_all(query).await;
            lease.settle(&result);
            result
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'p: 'e,
    {
        Box::pin(async move {
            let mut lease = self.lease().await?;
            let result = lease.prepare_with(sql, parameters).await;
            lease.settle(&result);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqlitePoolOptions};

    async fn reuse(dir: &tempfile::TempDir, size: u32, timeout: Duration) -> Reuse<Sqlite> {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.sqlite3"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(size)
            .min_connections(0)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        Reuse::new(pool, timeout)
    }

    fn kept(r: &Reuse<Sqlite>) -> usize {
        r.idle().len()
    }

    async fn count(r: &Reuse<Sqlite>) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(r)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn one_connection_serves_statement_after_statement() {
        let dir = tempfile::tempdir().unwrap();
        let r = reuse(&dir, 4, Duration::from_secs(5)).await;
        for v in 0..20 {
            sqlx::query("INSERT INTO t (v) VALUES (?)")
                .bind(v)
                .execute(&r)
                .await
                .unwrap();
            assert_eq!(count(&r).await, v + 1);
            // Kept here, not given back to the pool: the same connection
            // serves every statement, the pool opens no other.
            assert_eq!(kept(&r), 1);
            assert!(r.pool.size() <= 2, "{} connections", r.pool.size());
        }
        let all: Vec<i64> = sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&r)
            .await
            .unwrap();
        assert_eq!(all, (0..20).collect::<Vec<i64>>());
        assert_eq!(kept(&r), 1);
        r.close().await;
        assert!(r.pool.is_closed());
    }

    #[tokio::test]
    async fn an_error_the_database_answered_keeps_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let r = reuse(&dir, 2, Duration::from_secs(5)).await;
        sqlx::query("INSERT INTO t (v) VALUES (1)")
            .execute(&r)
            .await
            .unwrap();
        let dup = sqlx::query("INSERT INTO t (v) VALUES (1)")
            .execute(&r)
            .await;
        assert!(matches!(dup, Err(Error::Database(_))), "{dup:?}");
        assert_eq!(kept(&r), 1);
        // The connection that answered the violation serves the next one.
        assert_eq!(count(&r).await, 1);
    }

    #[tokio::test]
    async fn a_transaction_dropped_uncommitted_is_rolled_back_before_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let r = reuse(&dir, 1, Duration::from_secs(5)).await;
        {
            let mut lease = r.lease().await.unwrap();
            let mut tx = lease.begin().await.unwrap();
            sqlx::query("INSERT INTO t (v) VALUES (7)")
                .execute(&mut *tx)
                .await
                .unwrap();
            drop(tx);
            // Kept although its transaction was abandoned.
            lease.keep();
        }
        assert_eq!(kept(&r), 1);
        assert_eq!(count(&r).await, 0);
        // And it is not inside a transaction any more: a new one begins.
        let mut lease = r.lease().await.unwrap();
        let mut tx = lease.begin().await.unwrap();
        sqlx::query("INSERT INTO t (v) VALUES (8)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        lease.keep();
        drop(lease);
        assert_eq!(count(&r).await, 1);
    }

    #[tokio::test]
    async fn leases_are_bounded_by_the_pool_size() {
        let dir = tempfile::tempdir().unwrap();
        let r = reuse(&dir, 2, Duration::from_millis(200)).await;
        let a = r.lease().await.unwrap();
        let b = r.lease().await.unwrap();
        let third = r.lease().await;
        assert!(matches!(third, Err(Error::PoolTimedOut)), "a third lease");
        drop(a);
        // A lease dropped without keep() gave its connection back to the
        // pool (through sqlx's ping), and its place to the next caller.
        let c = r.lease().await.unwrap();
        assert_eq!(kept(&r), 0);
        drop((b, c));
        r.close().await;
        assert!(matches!(r.lease().await, Err(Error::PoolClosed)));
    }
}
