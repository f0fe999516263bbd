//! Statements shared by the requests that arrive together. Every signed
//! ACME request spends a nonce, and most read an authorization, so at load
//! these are most of the statements an instance sends. A [`Batcher`] lets
//! requests that arrive while [`IN_FLIGHT`] batches of their kind are
//! already running wait and go together in the next one: one statement,
//! one round trip (and for nonces one commit) for all of them, however many
//! (up to [`MAX_BATCH`]). A request that finds no batch of its kind
//! running starts one, which first lets the tasks already runnable (and
//! the connections the runtime finds ready) have their turn, so the
//! requests they make join it; it never waits on a timer, so a lone
//! request goes as soon as the runtime has nothing else to do.
//!
//! A batch runs in a task of its own, so a request that gives up (its
//! client went away) never strands the others waiting on the same batch. A
//! request is put in a batch that starts after it arrives, so it sees every
//! write completed before it was made, as a statement of its own would.
//!
//! The kinds:
//! - [`spend_nonces`]: the insert decides each nonce (a conflict means
//!   already spent), as for one nonce; a nonce that appears twice in one
//!   batch is fresh for its first request only, which keeps "exactly once"
//!   within a batch. Each request's account, and the record its URL names
//!   (an authorization, an order with its authorizations, or a
//!   certificate), are read in the same statement.
//! - [`read_authzs`], [`read_orders`], [`read_certs`]: authorizations,
//!   orders with their authorizations, and certificates, by id.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::oneshot;

use super::db_err;
use super::inserts::{
    join_order_authzs, prefixed, AUTHZ_COLUMNS, CERT_COLUMNS, ORDER_COLUMNS, ORDER_WITH_AUTHZS,
};
use crate::error::{Error, Result};
use crate::model::{AccountId, Authz, AuthzId, CertId, Certificate, Order, OrderId};
use crate::store::reuse::Reuse;
use crate::store::rows::{
    account_from_row, authz_from_row, cert_from_row, order_from_row, Prefixed,
};
use crate::store::shared::{Found, Lookup, NonceSpent};

/// Batches of one kind running at once. One: the requests that arrive
/// meanwhile make the next batch as large as the wait allows. (With two,
/// measured at concurrency 32, batches were smaller and both acme-ca's and
/// PostgreSQL's CPU per order and the flows' latency were higher.)
const IN_FLIGHT: usize = 1;
/// Requests in one batch at most (a bound on the statement's size).
const MAX_BATCH: usize = 256;

/// What one batch statement does: given the requests, one answer each, in
/// order.
type Run<Q, A> = for<'a> fn(&'a Reuse<Postgres>, &'a [Q]) -> BoxFuture<'a, Result<Vec<A>>>;

struct Waiting<Q, A> {
    request: Q,
    reply: oneshot::Sender<Result<A>>,
}

struct Queue<Q, A> {
    waiting: Vec<Waiting<Q, A>>,
    running: usize,
}

/// The batches of one kind, of one instance.
pub(super) struct Batcher<Q, A> {
    pool: Arc<Reuse<Postgres>>,
    queue: Arc<Mutex<Queue<Q, A>>>,
    run: Run<Q, A>,
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    pub(super) fn new(pool: Arc<Reuse<Postgres>>, run: Run<Q, A>) -> Batcher<Q, A> {
        Batcher {
            pool,
            queue: Arc::new(Mutex::new(Queue {
                waiting: Vec::new(),
                running: 0,
            })),
            run,
        }
    }

    /// `request`'s answer, from the batch it joins.
    pub(super) async fn ask(&self, request: Q) -> Result<A> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = lock(&self.queue);
            queue.waiting.push(Waiting { request, reply });
            let start = queue.running < IN_FLIGHT;
            if start {
                queue.running += 1;
            }
            start
        };
        if start {
            tokio::spawn(run(self.running(), None));
        }
        answer
            .await
            .map_err(|_| Error::internal("a database batch ended without an answer"))?
    }

    fn running(&self) -> Running<Q, A> {
        Running {
            pool: self.pool.clone(),
            queue: self.queue.clone(),
            run: self.run,
            done: false,
        }
    }
}

fn lock<Q, A>(queue: &Mutex<Queue<Q, A>>) -> std::sync::MutexGuard<'_, Queue<Q, A>> {
    // The critical sections cannot panic; a poisoned lock still holds a
    // sound queue.
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

fn take_batch<Q, A>(queue: &mut Queue<Q, A>) -> Vec<Waiting<Q, A>> {
    let n = queue.waiting.len().min(MAX_BATCH);
    queue.waiting.drain(..n).collect()
}

/// Runs `batch`, then whatever gathered meanwhile, until nothing waits.
/// Without a `batch`, the first is what waits once the tasks already
/// runnable (and the connections the runtime finds ready) have had their
/// turn.
async fn run<Q: Send + 'static, A: Send + 'static>(
    mut running: Running<Q, A>,
    batch: Option<Vec<Waiting<Q, A>>>,
) {
    let mut batch = match batch {
        Some(batch) => batch,
        None => {
            tokio::task::yield_now().await;
            take_batch(&mut lock(&running.queue))
        }
    };
    loop {
        let (requests, replies): (Vec<Q>, Vec<_>) =
            batch.drain(..).map(|w| (w.request, w.reply)).unzip();
        match (running.run)(&running.pool, &requests).await {
            Ok(answers) if answers.len() == replies.len() => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // A receiver gone (its request gave up) needs nothing.
                    let _ = reply.send(Ok(answer));
                }
            }
            outcome => {
                let e = match outcome {
                    Err(e) => e,
                    Ok(answers) => Error::internal(format_args!(
                        "a database batch of {} gave {} answers",
                        replies.len(),
                        answers.len()
                    )),
                };
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        let mut q = lock(&running.queue);
        if q.waiting.is_empty() {
            // Under the same lock as the look at the queue: a request that
            // arrives next finds a free place and starts its own batch.
            q.running -= 1;
            drop(q);
            running.done = true;
            return;
        }
        batch = take_batch(&mut q);
    }
}

/// A running batch's place in [`IN_FLIGHT`]. Should its task end any other
/// way than by finding the queue empty (a panic), the requests waiting are
/// handed to a new task rather than left until the next request arrives.
struct Running<Q: Send + 'static, A: Send + 'static> {
    pool: Arc<Reuse<Postgres>>,
    queue: Arc<Mutex<Queue<Q, A>>>,
    run: Run<Q, A>,
    done: bool,
}

impl<Q: Send + 'static, A: Send + 'static> Drop for Running<Q, A> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut q = lock(&self.queue);
        if q.waiting.is_empty() {
            q.running -= 1;
            return;
        }
        // Outside a runtime (one being dropped), nothing runs any more:
        // the waiting requests' answers are dropped with them.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let batch = take_batch(&mut q);
        drop(q);
        let next = Running {
            pool: self.pool.clone(),
            queue: self.queue.clone(),
            run: self.run,
            done: false,
        };
        runtime.spawn(run(next, Some(batch)));
    }
}

/// A nonce to spend, when its record may go, the account to read, and the
/// record the request goes on to read.
pub(super) struct NonceSpend {
    pub nonce: Vec<u8>,
    pub expires_ms: i64,
    pub account: Option<AccountId>,
    pub lookup: Option<Lookup>,
}

/// One statement for a whole batch of nonce spends: every request gets one
/// row or more, in order (more for an order with several authorizations),
/// with its account when it named one that exists, and the record its
/// lookup names (the authorization under `z_`, the certificate under `c_`,
/// the order under `o_` with its authorizations under `oa_`).
///
/// Each record is read in a `LATERAL` subquery that `OFFSET 0` keeps from
/// being merged into the join: so each is one primary-key lookup per
/// request, whatever the table's size was when the connection's cached
/// generic plan was made. (Planned as joins, a plan cached while the
/// tables were nearly empty hashed whole tables on every statement, and
/// cost more the larger the database grew.)
static SPEND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH input AS ( \
             SELECT * FROM unnest($1::bytea[], $2::int8[], $3::text[], $4::text[], \
                 $5::text[], $6::text[]) \
                 WITH ORDINALITY AS t(nonce, expires, account, authz, ord, cert, i)), \
         spent AS ( \
             INSERT INTO spent_nonces (nonce, expires) SELECT nonce, expires FROM input \
             ON CONFLICT (nonce) DO NOTHING RETURNING nonce) \
         SELECT input.i, input.nonce IN (SELECT nonce FROM spent) AS nonce_fresh, \
             a.*, z.*, c.*, o.* \
         FROM input \
         LEFT JOIN LATERAL (SELECT * FROM accounts WHERE id = input.account OFFSET 0) a \
             ON true \
         LEFT JOIN LATERAL (SELECT {z} FROM authzs z WHERE z.id = input.authz OFFSET 0) z \
             ON true \
         LEFT JOIN LATERAL (SELECT {c} FROM certificates c WHERE c.id = input.cert OFFSET 0) c \
             ON true \
         LEFT JOIN LATERAL (SELECT {o}, oc.id AS o_cert_id, {oa} FROM orders o \
             LEFT JOIN certificates oc ON oc.order_id = o.id {join} \
             WHERE o.id = input.ord OFFSET 0) o ON true \
         ORDER BY input.i",
        z = prefixed("z", "z_", AUTHZ_COLUMNS),
        c = prefixed("c", "c_", CERT_COLUMNS),
        o = prefixed("o", "o_", ORDER_COLUMNS),
        oa = prefixed("oa", "oa_", AUTHZ_COLUMNS),
        join = join_order_authzs("oa"),
    )
});

/// Per request: whether its nonce was fresh, its account, and what its
/// lookup found.
pub(super) fn spend_nonces<'a>(
    pool: &'a Reuse<Postgres>,
    batch: &'a [NonceSpend],
) -> BoxFuture<'a, Result<Vec<NonceSpent>>> {
    Box::pin(async move {
        let nonces: Vec<&[u8]> = batch.iter().map(|r| r.nonce.as_slice()).collect();
        let expires: Vec<i64> = batch.iter().map(|r| r.expires_ms).collect();
        let accounts: Vec<Option<&str>> = batch
            .iter()
            .map(|r| r.account.as_ref().map(|a| a.0.as_str()))
            .collect();
        let named = |pick: fn(&Lookup) -> Option<&str>| -> Vec<Option<&str>> {
            batch
                .iter()
                .map(|r| r.lookup.as_ref().and_then(pick))
                .collect()
        };
        let authzs = named(|l| match l {
            Lookup::Authz(id) => Some(&id.0),
            _ => None,
        });
        let orders = named(|l| match l {
            Lookup::Order(id) => Some(&id.0),
            _ => None,
        });
        let certs = named(|l| match l {
            Lookup::Cert(id) => Some(&id.0),
            _ => None,
        });
        let rows = sqlx::query(AssertSqlSafe(SPEND.as_str()))
            .bind(nonces)
            .bind(expires)
            .bind(accounts)
            .bind(authzs)
            .bind(orders)
            .bind(certs)
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
        let each = rows_by_request(&rows, batch.len())?;
        let mut seen = HashSet::with_capacity(batch.len());
        batch
            .iter()
            .zip(&each)
            .map(|(request, rows)| {
                let spent = spent_from_rows(request, rows)?;
                // Both copies of a nonce sent twice in one batch see its
                // insert; only the first request spends it.
                let fresh = spent.fresh && seen.insert(request.nonce.as_slice());
                Ok(NonceSpent { fresh, ..spent })
            })
            .collect()
    })
}

/// The rows of [`SPEND`] grouped by their request (the 1-based `i`
/// column), for `n` requests.
fn rows_by_request(rows: &[PgRow], n: usize) -> Result<Vec<Vec<&PgRow>>> {
    let mut each: Vec<Vec<&PgRow>> = vec![Vec::new(); n];
    for row in rows {
        let i: i64 = row.try_get("i").map_err(db_err)?;
        let slot = usize::try_from(i - 1)
            .ok()
            .and_then(|i| each.get_mut(i))
            .ok_or_else(|| Error::internal("a nonce batch answered a request it was not asked"))?;
        slot.push(row);
    }
    Ok(each)
}

/// One request's answer from its rows of [`SPEND`] (`fresh` as its
/// nonce's insert says).
fn spent_from_rows(request: &NonceSpend, rows: &[&PgRow]) -> Result<NonceSpent> {
    let Some(&row) = rows.first() else {
        return Err(Error::internal("a nonce batch left a request unanswered"));
    };
    let fresh: bool = row.try_get("nonce_fresh").map_err(db_err)?;
    let account = match row.try_get::<Option<String>, _>("id").map_err(db_err)? {
        Some(_) => Some(account_from_row(row)?),
        None => None,
    };
    let found = match &request.lookup {
        None => None,
        Some(Lookup::Authz(id)) => Some(Found::Authz(
            id.clone(),
            present(row, "z_", |r| authz_from_row(r))?,
        )),
        Some(Lookup::Cert(id)) => Some(Found::Cert(
            id.clone(),
            present(row, "c_", |r| cert_from_row(r))?,
        )),
        Some(Lookup::Order(id)) => Some(Found::Order(
            id.clone(),
            order_from_rows(rows, "o_", "oa_")?,
        )),
    };
    Ok(NonceSpent {
        fresh,
        account,
        found,
    })
}

/// The record under `prefix` in `row`, or None where the join found none.
fn present<T>(
    row: &PgRow,
    prefix: &'static str,
    decode: impl FnOnce(&Prefixed<'_, PgRow>) -> Result<T>,
) -> Result<Option<T>> {
    let id: Option<String> = row
        .try_get(format!("{prefix}id").as_str())
        .map_err(db_err)?;
    match id {
        Some(_) => Ok(Some(decode(&Prefixed { row, prefix })?)),
        None => Ok(None),
    }
}

/// One order (its columns under `order` on every row) and its
/// authorizations (one per row, under `authz`, in the order's own order),
/// or None if the rows hold no order.
fn order_from_rows(
    rows: &[&PgRow],
    order: &'static str,
    authz: &'static str,
) -> Result<Option<OrderAndAuthzs>> {
    let Some(&first) = rows.first() else {
        return Ok(None);
    };
    let Some(found) = present(first, order, |r| order_from_row(r))? else {
        return Ok(None);
    };
    let mut authzs = HashMap::with_capacity(rows.len());
    for &row in rows {
        if let Some(a) = present(row, authz, |r| authz_from_row(r))? {
            authzs.insert(a.id.clone(), a);
        }
    }
    let ordered = found
        .authz_ids
        .iter()
        .filter_map(|a| authzs.remove(a))
        .collect();
    Ok(Some((found, ordered)))
}

/// Per requested id, the authorization if it exists.
pub(super) fn read_authzs<'a>(
    pool: &'a Reuse<Postgres>,
    batch: &'a [AuthzId],
) -> BoxFuture<'a, Result<Vec<Option<Authz>>>> {
    Box::pin(read_by_ids(
        pool,
        "SELECT * FROM authzs WHERE id = ANY($1)",
        batch.iter().map(|i| i.0.as_str()),
        authz_from_row,
        |a| a.id.0.as_str(),
    ))
}

/// An order with its authorizations, in the order of its ids.
pub(super) type OrderAndAuthzs = (Order, Vec<Authz>);

/// Per requested id, the order and its authorizations, if it exists.
pub(super) fn read_orders<'a>(
    pool: &'a Reuse<Postgres>,
    batch: &'a [OrderId],
) -> BoxFuture<'a, Result<Vec<Option<OrderAndAuthzs>>>> {
    Box::pin(async move {
        let wanted: Vec<&str> = batch.iter().map(|i| i.0.as_str()).collect();
        let rows = sqlx::query(AssertSqlSafe(ORDER_WITH_AUTHZS.as_str()))
            .bind(wanted)
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
        // Each order's rows: its columns on every one, and one of its
        // authorizations (or none) under `a_`.
        let mut by_id: HashMap<String, Vec<&PgRow>> = HashMap::new();
        for row in &rows {
            let id: String = row.try_get("id").map_err(db_err)?;
            by_id.entry(id).or_default().push(row);
        }
        let mut orders = HashMap::with_capacity(by_id.len());
        for (id, rows) in by_id {
            if let Some(found) = order_from_rows(&rows, "", "a_")? {
                orders.insert(id, found);
            }
        }
        Ok(batch.iter().map(|id| orders.get(&id.0).cloned()).collect())
    })
}

/// Per requested id, the certificate if it exists.
pub(super) fn read_certs<'a>(
    pool: &'a Reuse<Postgres>,
    batch: &'a [CertId],
) -> BoxFuture<'a, Result<Vec<Option<Certificate>>>> {
    Box::pin(read_by_ids(
        pool,
        "SELECT * FROM certificates WHERE id = ANY($1)",
        batch.iter().map(|i| i.0.as_str()),
        cert_from_row,
        |c| c.id.0.as_str(),
    ))
}

/// The records of `sql` (selecting by `id = ANY($1)`) for `ids`, in their
/// order: each decoded once, an id asked twice gets its copy each time, a
/// missing one None.
async fn read_by_ids<'a, T: Clone>(
    pool: &Reuse<Postgres>,
    sql: &'static str,
    ids: impl Iterator<Item = &'a str>,
    decode: fn(&PgRow) -> Result<T>,
    id_of: fn(&T) -> &str,
) -> Result<Vec<Option<T>>> {
    let wanted: Vec<&str> = ids.collect();
    let rows = sqlx::query(sql)
        .bind(&wanted)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let record = decode(row)?;
        found.insert(id_of(&record).to_owned(), record);
    }
    Ok(wanted.iter().map(|id| found.get(*id).cloned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, AccountStatus};
    use crate::store::{AccountCreation, Store};

    fn spend(nonce: &[u8], account: Option<&str>) -> NonceSpend {
        NonceSpend {
            nonce: nonce.to_vec(),
            expires_ms: 10_000,
            account: account.map(|a| AccountId(a.into())),
            lookup: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nonce_twice_in_one_batch_is_fresh_for_its_first_request_only() {
        let Some((_guard, store)) = crate::store::conformance::postgres().await else {
            return;
        };
        let account = Account {
            id: AccountId("acct1".into()),
            status: AccountStatus::Valid,
            jwk: r#"{"crv":"P-256","kty":"EC","x":"x1","y":"y1"}"#.into(),
            thumbprint: "t1".into(),
            contact: vec![],
            tos_agreed: true,
            created_at: 1_700_000_000,
        };
        assert!(matches!(
            store.create_account(&account, None).await.unwrap(),
            AccountCreation::Created
        ));
        assert!(store.nonces.ask(spend(b"old", None)).await.unwrap().fresh);
        let batch: Vec<NonceSpend> = [
            (&b"a"[..], Some("acct1")),
            (b"b", None),
            (b"a", Some("acct1")),
            (b"old", None),
            (b"c", Some("nobody")),
            (b"b", Some("acct1")),
        ]
        .into_iter()
        .map(|(n, a)| spend(n, a))
        .collect();
        let answers = spend_nonces(store.pool(), &batch).await.unwrap();
        let fresh: Vec<bool> = answers.iter().map(|a| a.fresh).collect();
        assert_eq!(fresh, [true, true, false, false, true, false]);
        let found: Vec<Option<&str>> = answers
            .iter()
            .map(|a| a.account.as_ref().map(|a| a.id.0.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                Some("acct1"),
                None,
                Some("acct1"),
                None,
                None,
                Some("acct1")
            ]
        );
        assert_eq!(answers[0].account.as_ref(), Some(&account));
        // And every one of them is spent now.
        for n in [&b"a"[..], b"b", b"c"] {
            assert!(!store.nonces.ask(spend(n, None)).await.unwrap().fresh);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn requests_that_arrive_together_share_batches_and_each_gets_its_answer() {
        // Two instances on one database, 200 requests at once over 50
        // nonces: every nonce is won exactly once over both.
        let Some(db) = crate::test_support::pg::fresh_database().await else {
            return;
        };
        let mut stores = Vec::new();
        for _ in 0..2 {
            stores.push(Arc::new(
                super::super::PgStore::open(db.url(), 4).await.unwrap(),
            ));
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(200));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = stores[i % 2].clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let nonce = format!("n{}", i % 50);
                    let spent = store
                        .nonces
                        .ask(spend(nonce.as_bytes(), None))
                        .await
                        .unwrap();
                    (i % 50, spent.fresh)
                })
            })
            .collect();
        let mut wins = [0; 50];
        for t in tasks {
            let (n, fresh) = t.await.unwrap();
            wins[n] += usize::from(fresh);
        }
        assert_eq!(wins, [1; 50]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_give_up_leave_the_others_answered() {
        let Some((_guard, store)) = crate::store::conformance::postgres().await else {
            return;
        };
        for round in 0..20 {
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let nonce = format!("r{round}-{i}");
                        store.nonces.ask(spend(nonce.as_bytes(), None)).await
                    })
                })
                .collect();
            // Half of them give up at once, some mid-batch.
            for t in tasks.iter().step_by(2) {
                t.abort();
            }
            for (i, t) in tasks.into_iter().enumerate() {
                match t.await {
                    Ok(answer) => assert!(answer.unwrap().fresh, "round {round}, request {i}"),
                    Err(e) => assert!(e.is_cancelled() && i % 2 == 0),
                }
            }
        }
        // Nothing is left holding a place: a new request goes through.
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store.nonces.ask(spend(b"after", None)),
        )
        .await
        .expect("answered");
        assert!(answer.unwrap().fresh);
        // The last batch gives its place back just after answering.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while lock(&store.nonces.queue).running != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "a batch kept its place"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Set once the test has seen its other requests queued.
    static OTHERS_QUEUED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// A batch run that doubles, but panics on request 0, once the others
    /// are waiting behind it.
    fn doubling_but_not_zero<'a>(
        _pool: &'a Reuse<Postgres>,
        batch: &'a [u32],
    ) -> BoxFuture<'a, Result<Vec<u32>>> {
        Box::pin(async move {
            if batch.contains(&0) {
                while !OTHERS_QUEUED.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                panic!("a batch run that panics");
            }
            Ok(batch.iter().map(|n| n * 2).collect())
        })
    }

    /// A batcher whose runs never touch the pool: a lazy one, connected to
    /// nothing.
    fn without_database(run: Run<u32, u32>) -> Arc<Batcher<u32, u32>> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let pool = Arc::new(Reuse::new(pool, std::time::Duration::from_secs(1)));
        Arc::new(Batcher::new(pool, run))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_waiting_behind_a_batch_that_panics_are_still_answered() {
        let batcher = without_database(doubling_but_not_zero);
        let first = {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.ask(0).await })
        };
        let until = |what: &str, done: &dyn Fn(&Queue<u32, u32>) -> bool| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                if done(&lock(&batcher.queue)) {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "{what}");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        until("request 0's batch took it", &|q| {
            q.running == 1 && q.waiting.is_empty()
        });
        let rest: Vec<_> = (1..=5)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.ask(n).await })
            })
            .collect();
        until("the others queued", &|q| q.waiting.len() == 5);
        OTHERS_QUEUED.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(first.await.unwrap().is_err(), "its batch ended unanswered");
        for (n, t) in (1..=5).zip(rest) {
            let answer = tokio::time::timeout(std::time::Duration::from_secs(5), t)
                .await
                .expect("answered, not stranded");
            assert_eq!(answer.unwrap().unwrap(), n * 2);
        }
        assert_eq!(batcher.ask(21).await.unwrap(), 42);
    }

    /// The sizes of the batches [`recording`] has run.
    static SIZES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

    fn recording<'a>(
        _pool: &'a Reuse<Postgres>,
        batch: &'a [u32],
    ) -> BoxFuture<'a, Result<Vec<u32>>> {
        SIZES.lock().unwrap().push(batch.len());
        Box::pin(async move { Ok(batch.to_vec()) })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn requests_runnable_together_start_in_one_batch() {
        // Ten requests made by tasks that become runnable at once, with no
        // batch running: the first batch waits for the others' turn and
        // takes all ten, rather than going with the first alone.
        let batcher = without_database(recording);
        let barrier = Arc::new(tokio::sync::Barrier::new(10));
        let tasks: Vec<_> = (0..10)
            .map(|n| {
                let (batcher, barrier) = (batcher.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    batcher.ask(n).await
                })
            })
            .collect();
        for (n, t) in (0..10).zip(tasks) {
            assert_eq!(t.await.unwrap().unwrap(), n);
        }
        assert_eq!(*SIZES.lock().unwrap(), [10]);
    }
}
