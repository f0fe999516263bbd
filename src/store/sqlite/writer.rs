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
//! What each op writes, and how it changes the read cache, is in
//! [`super::ops`]; values are written into the text as SQL literals by
//! [`super::sql::Sql`], whose only way to add a value is a typed method that
//! quotes it.

use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection, Either};
use tokio::sync::{mpsc, oneshot};

use super::cache::Cache;
use super::ops::Op;
use super::sql::Sql;
use super::{db_err, Durability};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Ops committed together at most.
pub(super) const MAX_BATCH: usize = 64;
/// Ops waiting at most; senders wait beyond.
const QUEUE: usize = 4096;

// Nearly every job is a write: boxing its op to shrink the rare close would
// cost an allocation per write.
#[allow(clippy::large_enum_variant)]
enum Job {
    Write {
        op: Op,
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Close the connection (after the writes queued before) and stop.
    Close(oneshot::Sender<()>),
}

/// The handle the store uses to submit writes.
#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on the current runtime. It owns `conn`, the
    /// only write connection: not a pool's, which would ping the
    /// connection's thread when it is taken and again when it is given
    /// back, two more thread round trips per batch.
    pub(super) fn start(
        conn: SqliteConnection,
        cache: Arc<Mutex<Cache>>,
        durability: Durability,
        metrics: Arc<Metrics>,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(conn, cache, durability, metrics, rx));
        Writer { tx }
    }

    /// Commits what is queued, closes the connection and stops the writer;
    /// later writes fail.
    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.tx.send(Job::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Commits `op` (with whatever else is queued) and returns the row
    /// count of its last statement.
    pub(super) async fn write(&self, op: Op) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Write { op, reply })
            .await
            .map_err(|_| Error::internal("the database writer has stopped"))?;
        answer
            .await
            .map_err(|_| Error::internal("the database writer dropped a write"))?
    }
}

async fn run(
    mut conn: SqliteConnection,
    cache: Arc<Mutex<Cache>>,
    durability: Durability,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut writes: Vec<(Op, oneshot::Sender<Result<u64>>)> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut close = None;
        for job in jobs.drain(..) {
            match job {
                Job::Write { op, reply } if close.is_none() => writes.push((op, reply)),
                // Writes after a close are refused (their reply is dropped).
                Job::Write { .. } => {}
                Job::Close(done) => close = Some(done),
            }
        }
        if !writes.is_empty() {
            let ctx = Ctx {
                cache: &cache,
                durability,
                metrics: &metrics,
            };
            commit_batch(&mut conn, &ctx, &mut writes).await;
        }
        if let Some(done) = close {
            if let Err(e) = conn.close().await {
                tracing::warn!(error = %e, "closing the database write connection");
            }
            let _ = done.send(());
            return;
        }
    }
}

struct Ctx<'a> {
    cache: &'a Mutex<Cache>,
    durability: Durability,
    metrics: &'a Metrics,
}

/// Commits `writes` together and answers each; if the batch fails, each
/// op alone, in order, so only the failing one sees the error.
async fn commit_batch(
    conn: &mut SqliteConnection,
    ctx: &Ctx<'_>,
    writes: &mut Vec<(Op, oneshot::Sender<Result<u64>>)>,
) {
    let ops: Vec<&Op> = writes.iter().map(|(op, _)| op).collect();
    match timed_commit(conn, ctx, &ops).await {
        Ok(rows) => {
            for ((_, reply), rows) in writes.drain(..).zip(rows) {
                let _ = reply.send(Ok(rows));
            }
        }
        Err(e) if writes.len() == 1 => {
            for (_, reply) in writes.drain(..) {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(_) => {
            for (op, reply) in writes.drain(..) {
                let result = timed_commit(conn, ctx, &[&op]).await.map(|rows| rows[0]);
                let _ = reply.send(result);
            }
        }
    }
}

/// [`commit`], timed into the store metrics.
async fn timed_commit(conn: &mut SqliteConnection, ctx: &Ctx<'_>, ops: &[&Op]) -> Result<Vec<u64>> {
    let started = std::time::Instant::now();
    let result = commit(conn, ctx.cache, ctx.durability, ops).await;
    ctx.metrics.store_write(ops.len(), started.elapsed());
    result
}

/// Runs `ops` in one transaction; returns each op's last row count.
async fn commit(
    conn: &mut SqliteConnection,
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
