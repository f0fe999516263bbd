//! A fresh PostgreSQL database per test, in the throw-away cluster
//! `scripts/pg-cluster` starts (scripts/test starts one for the whole run
//! and exports its URL).
//!
//! - `ACME_CA_TEST_PG_URL`: a URL of the cluster (any database; the
//!   connecting role must be allowed to create databases).
//! - `ACME_CA_TEST_PG_REQUIRED=1` (set by scripts/test): a missing URL
//!   fails the test instead of skipping it, so CI cannot pass without
//!   having run the PostgreSQL half of the suite.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions};

/// A database made for one test. The cluster is thrown away at the end of
/// the run, so the database is not dropped.
pub(crate) struct TestDatabase {
    url: String,
}

impl TestDatabase {
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// A new, empty database, or None (after saying so) when no cluster was
/// given and none is required.
pub(crate) async fn fresh_database() -> Option<TestDatabase> {
    let Some(base) = std::env::var("ACME_CA_TEST_PG_URL")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        if std::env::var_os("ACME_CA_TEST_PG_REQUIRED").is_some() {
            panic!("ACME_CA_TEST_PG_REQUIRED is set but ACME_CA_TEST_PG_URL is not");
        }
        println!(
            "ACME_CA_TEST_PG_URL is not set: skipping this PostgreSQL test (scripts/test runs it)"
        );
        return None;
    };
    let options = PgConnectOptions::from_str(&base).expect("ACME_CA_TEST_PG_URL");
    let mut admin = options
        .connect()
        .await
        .expect("connect to the test PostgreSQL cluster");
    let mut raw = [0u8; 8];
    crate::rand::fill(&mut raw);
    let name: String = std::iter::once("t_".to_owned())
        .chain(raw.iter().map(|b| format!("{b:02x}")))
        .collect();
    // The name is ours (hex), so the statement cannot be injected into.
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    let url = options.database(&name).to_url_lossy().to_string();
    Some(TestDatabase { url })
}
