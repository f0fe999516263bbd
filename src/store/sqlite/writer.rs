//! The writer: every write of the store goes through the database's single
//! write connection, which commits concurrent writes together (group
//! commit).
//!
//! A request's write is an [`Op`]. Ops are rendered as one sequence of
//! statements (`BEGIN; …; COMMIT;`) with bound values and run in turn on
//! the connection, each prepared once and kept, reading each statement's
//! row count back; an op's outcome is its last statement's row count, so
//! conditional updates still tell exactly one winner.
//!
//! The connection is a plain synchronous one (rusqlite on the libsqlite3
//! that sqlx links), behind a mutex, used in one of two ways:
//!
//! - **Inline**, on the caller's thread, when nothing is queued, the mutex
//!   is free and the op needs no flush to disk: a lone request (the
//!   concurrency-1 case of a CI job) commits its write without any thread
//!   hand-off. Such a commit is short (page-cache writes to the WAL, no
//!   fsync, no checkpoint) and never waits for SQLite's lock: with a busy
//!   lock it goes to the writer thread instead.
//! - **On the writer thread** otherwise: it takes whatever ops are queued
//!   (at most [`MAX_BATCH`]) and commits them in one transaction, so under
//!   load one fsync serves many requests. Commits that flush to disk (a
//!   certificate with durability `issuance`, every commit with `full`) and
//!   WAL checkpoints always run here, never on a runtime thread.
//!
//! If a batch fails, it is rolled back and its ops are run one by one, so
//! only the failing op sees the error.
//!
//! What each op writes, and how it changes the read cache, is in
//! [`super::ops`]; values are bound to placeholders by
//! [`super::sql::Sql`], whose only way to add a value is a typed method.

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::cache::Cache;
use super::ops::Op;
use super::sql::Sql;
use super::Durability;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Ops committed together at most.
pub(super) const MAX_BATCH: usize = 64;
/// Jobs waiting at most; senders wait beyond.
const QUEUE: usize = 4096;
/// How long the writer thread waits for SQLite's write lock when another
/// process holds it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// WAL size (pages) after which the writer thread checkpoints: SQLite's own
/// automatic threshold, which the WAL hook below replaces.
const CHECKPOINT_PAGES: c_int = 1000;

/// Prepared statements kept by the write connection: the ops render a few
/// dozen distinct statement texts (more with the rate limits' key lists).
const STATEMENT_CACHE: usize = 256;

thread_local! {
    /// The WAL's size in pages after the last commit made on this thread,
    /// set by [`record_wal_pages`] during the commit.
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

/// The connection's WAL hook. Installing it turns SQLite's automatic
/// checkpoint off (the two share the hook), so a commit never checkpoints
/// by itself; the committer reads the size back and has the writer thread
/// checkpoint.
fn record_wal_pages(_: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

fn sqlite_err(e: rusqlite::Error) -> Error {
    Error::internal(format_args!("database: {e}"))
}

/// Opens the write connection to the (already migrated) database at
/// `path`, with the same settings as sqlx's connections.
pub(super) fn open(path: &Path, durability: Durability) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_err)?;
    let synchronous = match durability {
        Durability::Issuance => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous};"
    ))
    .map_err(sqlite_err)?;
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .map_err(sqlite_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::internal(format_args!(
            "database: journal mode is {mode}, not wal"
        )));
    }
    conn.wal_hook(Some(record_wal_pages));
    // Room for every statement shape the ops render.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

// Nearly every job is a write: boxing its op to shrink the rare others
// would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
enum Job {
    Write {
        op: Op,
        reply: oneshot::Sender<Result<u64>>,
    },
    /// An inline commit left the WAL past [`CHECKPOINT_PAGES`].
    Checkpoint,
    /// Close the connection (after the writes queued before) and stop.
    Close(oneshot::Sender<()>),
}

/// What the store's handles and the writer thread share.
struct Shared {
    /// The write connection; `None` once closed.
    conn: Mutex<Option<Connection>>,
    cache: Arc<Mutex<Cache>>,
    durability: Durability,
    metrics: Arc<Metrics>,
    /// Jobs sent to the thread and not yet taken by it: an inline commit
    /// does not overtake queued writes.
    queued: AtomicUsize,
    checkpoint_due: AtomicBool,
}

impl Shared {
    fn conn(&self) -> MutexGuard<'_, Option<Connection>> {
        // A panic while holding the connection leaves no transaction open
        // across calls (each commit ends in COMMIT or ROLLBACK).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handle the store uses to submit writes.
#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Starts the writer thread, which owns the batches and checkpoints of
    /// `conn`, the only write connection. The thread stops when the last
    /// handle is dropped or [`Writer::close`] is called.
    pub(super) fn start(
        conn: Connection,
        cache: Arc<Mutex<Cache>>,
        durability: Durability,
        metrics: Arc<Metrics>,
    ) -> Result<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            conn: Mutex::new(Some(conn)),
            cache,
            durability,
            metrics,
            queued: AtomicUsize::new(0),
            checkpoint_due: AtomicBool::new(false),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("acme-ca-db-writer".into())
            .spawn(move || run(&thread_shared, rx))
            .map_err(|e| Error::internal(format_args!("starting the database writer: {e}")))?;
        Ok(Writer { tx, shared })
    }

    /// Commits what is queued, closes the connection and stops the writer;
    /// later writes fail.
    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.send(Job::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Commits `op` (with whatever else is queued) and returns the row
    /// count of its last statement.
    pub(super) async fn write(&self, op: Op) -> Result<u64> {
        if let Some(rows) = self.try_inline(&op) {
            return rows;
        }
        let (reply, answer) = oneshot::channel();
        self.send(Job::Write { op, reply }).await?;
        answer
            .await
            .map_err(|_| Error::internal("the database writer dropped a write"))?
    }

    /// Runs `read` on the write connection, on this thread, if the
    /// connection is free and no write is queued: a lone request's read
    /// without a hand-off to a reader connection's thread. `None` if it did
    /// not run (busy, or SQLite's lock held elsewhere): read elsewhere.
    /// Only for short reads (a lookup by an index).
    pub(super) fn read_inline<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T>> {
        match self.on_idle_connection(|conn| read(conn))? {
            // SQLite's lock held elsewhere: read on a reader connection.
            Ok(Err(e))
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) =>
            {
                None
            }
            Ok(read) => Some(read.map_err(sqlite_err)),
            Err(Some(e)) => Some(Err(sqlite_err(e))),
            Err(None) => None,
        }
    }

    /// Runs `work` on the write connection, on this thread, if nothing is
    /// queued for the writer thread and the connection is free; `None` if
    /// not (nothing ran). SQLite's busy timeout is zero meanwhile, so a
    /// lock another process holds is never waited for on this thread (the
    /// writer thread will); `Err(Some(e))` if it could not be set,
    /// `Err(None)` if the writer has stopped.
    fn on_idle_connection<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> T,
    ) -> Option<std::result::Result<T, Option<rusqlite::Error>>> {
        let shared = &*self.shared;
        if shared.queued.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let mut guard = shared.conn.try_lock().ok()?;
        let Some(conn) = guard.as_mut() else {
            return Some(Err(None));
        };
        if let Err(e) = conn.busy_timeout(Duration::ZERO) {
            return Some(Err(Some(e)));
        }
        let done = work(conn);
        if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
            // What ran stands either way; the writer thread would not
            // wait for another process's lock.
            tracing::warn!(error = %e, "could not restore the database's busy timeout");
        }
        Some(Ok(done))
    }

    async fn send(&self, job: Job) -> Result<()> {
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        self.tx.send(job).await.map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            Error::internal("the database writer has stopped")
        })
    }

    /// Commits `op` alone on this thread if that needs neither a wait nor
    /// a flush; `None` if it was not (nothing was written).
    fn try_inline(&self, op: &Op) -> Option<Result<u64>> {
        let shared = &*self.shared;
        if shared.durability == Durability::Full || op.needs_flush() {
            return None;
        }
        let ctx = Ctx {
            cache: &shared.cache,
            durability: shared.durability,
            metrics: &shared.metrics,
        };
        let ran = self.on_idle_connection(|conn| {
            let outcome = timed_commit(conn, &ctx, &[op]);
            (outcome, WAL_PAGES.with(|p| p.replace(0)))
        })?;
        let (outcome, pages) = match ran {
            Ok(done) => done,
            Err(Some(e)) => return Some(Err(sqlite_err(e))),
            Err(None) => return Some(Err(Error::internal("the database writer has stopped"))),
        };
        if pages >= CHECKPOINT_PAGES && !shared.checkpoint_due.swap(true, Ordering::SeqCst) {
            // If the queue is full, the thread checkpoints after the batch
            // it is about to commit anyway.
            shared.queued.fetch_add(1, Ordering::SeqCst);
            if self.tx.try_send(Job::Checkpoint).is_err() {
                shared.queued.fetch_sub(1, Ordering::SeqCst);
            }
        }
        match outcome {
            Err(Failure::Busy) => None,
            Err(e) => Some(Err(e.into_error())),
            Ok(rows) => Some(Ok(rows[0])),
        }
    }
}

/// The writer thread: commits queued writes in batches, checkpoints the
/// WAL when it has grown, closes the connection when asked.
fn run(shared: &Shared, mut rx: mpsc::Receiver<Job>) {
    let mut writes: Vec<(Op, oneshot::Sender<Result<u64>>)> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let mut close = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            shared.queued.fetch_sub(1, Ordering::SeqCst);
            match job {
                Job::Write { op, reply } if close.is_none() => writes.push((op, reply)),
                // Writes after a close are refused (their reply is dropped).
                Job::Write { .. } => {}
                Job::Checkpoint => {}
                Job::Close(done) => close = Some(done),
            }
            if writes.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let mut guard = shared.conn();
        let Some(conn) = guard.as_mut() else {
            writes.clear();
            if let Some(done) = close {
                let _ = done.send(());
            }
            return;
        };
        if !writes.is_empty() {
            let ctx = Ctx {
                cache: &shared.cache,
                durability: shared.durability,
                metrics: &shared.metrics,
            };
            commit_batch(conn, &ctx, &mut writes);
        }
        let pages = WAL_PAGES.with(|p| p.replace(0));
        if pages >= CHECKPOINT_PAGES || shared.checkpoint_due.swap(false, Ordering::SeqCst) {
            checkpoint(conn);
        }
        if let Some(done) = close {
            if let Some(conn) = guard.take() {
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(error = %e, "closing the database write connection");
                }
            }
            let _ = done.send(());
            return;
        }
    }
}

/// Copies the WAL's frames into the database file without waiting for
/// readers (what SQLite's automatic checkpoint does).
fn checkpoint(conn: &Connection) {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    if let Err(e) = result {
        tracing::warn!(error = %e, "checkpointing the database's WAL");
    }
}

struct Ctx<'a> {
    cache: &'a Mutex<Cache>,
    durability: Durability,
    metrics: &'a Metrics,
}

/// Why a commit failed.
enum Failure {
    /// SQLite's write lock is held by another connection (only seen
    /// inline, where the busy timeout is zero); nothing was written.
    Busy,
    /// What SQLite answered.
    Sqlite(rusqlite::Error),
    Error(Error),
}

/// Commits `writes` together and answers each; if the batch fails, each
/// op alone, in order, so only the failing one sees the error.
fn commit_batch(
    conn: &mut Connection,
    ctx: &Ctx<'_>,
    writes: &mut Vec<(Op, oneshot::Sender<Result<u64>>)>,
) {
    let ops: Vec<&Op> = writes.iter().map(|(op, _)| op).collect();
    match timed_commit(conn, ctx, &ops) {
        Ok(rows) => {
            for ((_, reply), rows) in writes.drain(..).zip(rows) {
                let _ = reply.send(Ok(rows));
            }
        }
        Err(e) if writes.len() == 1 => {
            let e = e.into_error();
            for (_, reply) in writes.drain(..) {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(_) => {
            for (op, reply) in writes.drain(..) {
                let result = timed_commit(conn, ctx, &[&op])
                    .map(|rows| rows[0])
                    .map_err(Failure::into_error);
                let _ = reply.send(result);
            }
        }
    }
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Busy => Error::internal("database: locked by another process"),
            Failure::Sqlite(e) => sqlite_err(e),
            Failure::Error(e) => e,
        }
    }
}

/// [`commit`], timed into the store metrics.
fn timed_commit(
    conn: &mut Connection,
    ctx: &Ctx<'_>,
    ops: &[&Op],
) -> std::result::Result<Vec<u64>, Failure> {
    let started = Instant::now();
    let result = commit(conn, ctx.cache, ctx.durability, ops);
    ctx.metrics.store_write(ops.len(), started.elapsed());
    result
}

/// Runs `ops` in one transaction; returns each op's last row count.
fn commit(
    conn: &mut Connection,
    cache: &Mutex<Cache>,
    durability: Durability,
    ops: &[&Op],
) -> std::result::Result<Vec<u64>, Failure> {
    // With durability "issuance", a batch holding a certificate is flushed
    // to disk at its commit; the WAL being sequential, that also persists
    // every earlier write.
    let flush = durability == Durability::Issuance && ops.iter().any(|o| o.needs_flush());
    let mut sql = Sql::new();
    if flush {
        sql.raw("PRAGMA synchronous = FULL;\n");
    }
    sql.raw("BEGIN IMMEDIATE;\n");
    let mut statements = usize::from(flush) + 1;
    let mut last = Vec::with_capacity(ops.len());
    for op in ops {
        statements += op.render(&mut sql).map_err(Failure::Error)?;
        last.push(statements - 1);
    }
    sql.raw("COMMIT;\n");
    if flush {
        sql.raw("PRAGMA synchronous = NORMAL;\n");
    }
    match run_statements(conn, &sql) {
        Ok(counts) if counts.len() == statements + 1 + usize::from(flush) => {
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
        Ok(counts) => {
            // Cannot happen with ops rendering what they count; keep the
            // database as it was if it does.
            undo(conn, flush);
            Err(Failure::Error(Error::internal(format_args!(
                "database batch ran {} statements, expected {}",
                counts.len(),
                statements + 1 + usize::from(flush)
            ))))
        }
        Err(e) => {
            // The batch stopped part-way: undo it and restore the setting.
            undo(conn, flush);
            match e {
                Failure::Sqlite(e)
                    if matches!(
                        e.sqlite_error_code(),
                        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    ) && conn.is_autocommit() =>
                {
                    Err(Failure::Busy)
                }
                e => Err(Failure::Error(e.into_error())),
            }
        }
    }
}

/// Runs every statement of `sql` in turn, each prepared once per
/// connection and its values bound; returns each one's row count (SQLite's
/// count of the last insert, update or delete).
fn run_statements(conn: &Connection, sql: &Sql) -> std::result::Result<Vec<u64>, Failure> {
    let statements = sql.statements().map_err(Failure::Error)?;
    let mut counts = Vec::with_capacity(statements.len());
    for statement in statements {
        let run = || -> rusqlite::Result<()> {
            let mut prepared = conn.prepare_cached(statement.text)?;
            if prepared.parameter_count() != statement.values.len() {
                return Err(rusqlite::Error::InvalidParameterCount(
                    statement.values.len(),
                    prepared.parameter_count(),
                ));
            }
            for (i, value) in statement.values.iter().enumerate() {
                prepared.raw_bind_parameter(i + 1, value)?;
            }
            let mut rows = prepared.raw_query();
            while rows.next()?.is_some() {}
            Ok(())
        };
        run().map_err(Failure::Sqlite)?;
        counts.push(conn.changes());
    }
    Ok(counts)
}

/// Rolls back whatever a failed batch left open and restores
/// `synchronous = NORMAL` after a flushing one.
fn undo(conn: &Connection, flush: bool) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "rolling back a failed database batch");
        }
    }
    if flush {
        if let Err(e) = conn.execute_batch("PRAGMA synchronous = NORMAL") {
            tracing::warn!(error = %e, "could not restore synchronous = NORMAL");
        }
    }
}
