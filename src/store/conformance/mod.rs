//! One conformance suite for every store backend: each test is an async
//! function over a trait object (`Arc<dyn Store>`, `Arc<dyn ServiceStore>`,
//! `Arc<dyn RateLimitStore>`), and [`both!`] runs it on a fresh SQLite
//! store and on a fresh PostgreSQL database (when the test cluster is
//! configured: see `test_support::pg`). Races run on a multi-threaded
//! runtime, so concurrent calls really overlap.

use std::sync::Arc;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use crate::test_support::pg::{fresh_database, TestDatabase};

mod ratelimit;
mod service;
mod shared;

/// What keeps a test's store alive (its directory or database).
#[allow(dead_code)]
pub(crate) enum Guard {
    Dir(tempfile::TempDir),
    Database(TestDatabase),
}

/// A fresh SQLite store in a temporary directory.
pub(crate) async fn sqlite() -> (Guard, Arc<SqliteStore>) {
    let (dir, store) = crate::test_support::temp_store().await;
    (Guard::Dir(dir), Arc::new(store))
}

/// A fresh PostgreSQL store in a new database, or None when no test
/// cluster is configured (and none is required).
pub(crate) async fn postgres() -> Option<(Guard, Arc<PgStore>)> {
    let db = fresh_database().await?;
    let store = PgStore::open(db.url(), 8)
        .await
        .expect("open the PostgreSQL store");
    Some((Guard::Database(db), Arc::new(store)))
}

/// `both!(Trait; test_a, test_b, ...)`: for each `async fn test_x(s:
/// Arc<dyn Trait>)` in scope, a test on SQLite (`sqlite::test_x`) and one
/// on PostgreSQL (`postgres::test_x`).
macro_rules! both {
    ($tr:path; $($name:ident),* $(,)?) => {
        $crate::store::conformance::sqlite_only!($tr; $($name),*);
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some((_guard, s)) = $crate::store::conformance::postgres().await else {
                        return;
                    };
                    super::$name(s as std::sync::Arc<dyn $tr>).await;
                }
            )*
        }
    };
}
pub(crate) use both;

/// `sqlite_only!(Trait; test_a, ...)`: the SQLite half of [`both!`], for a
/// suite whose trait the PostgreSQL store does not implement yet (the
/// `postgres` half would not compile); the tests are the same functions,
/// so the suite moves to `both!` unchanged once it does.
macro_rules! sqlite_only {
    ($tr:path; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (_guard, s) = $crate::store::conformance::sqlite().await;
                    super::$name(s as std::sync::Arc<dyn $tr>).await;
                }
            )*
        }
    };
}
pub(crate) use sqlite_only;

// The suites, declared after the macros they use.
mod core;
mod database;
