//! Helpers the unit tests of several modules share: the `openssl` command
//! line used as a second implementation to cross-check what the CA and the
//! revocation service produce, a temporary store, and reading a router's
//! whole answer without a socket. Test-only; it may use any module.

use std::process::Command;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;

use crate::store::sqlite::{Durability, SqliteStore};

/// Whether the openssl command can be run; when it cannot, the cross-check
/// that asks is skipped, and says so.
pub(crate) fn openssl_available() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        println!("openssl is not installed: skipping this openssl cross-check");
    }
    found
}

/// For the tests to which the openssl CLI is a requirement (scripts/test
/// installs it): a missing binary fails the test rather than skipping the
/// check. Always true when it returns.
pub(crate) fn openssl_required() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .expect("the openssl command is required by these tests (scripts/test installs it)");
    true
}

/// Runs openssl with `args`; whether it succeeded, and stdout then stderr.
pub(crate) fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl verify -x509_strict -purpose sslserver -CAfile <root>
/// -untrusted <intermediates>` of `leaf_pem`, with `-verify_hostname` when
/// a host name is given: Ok, or what OpenSSL said.
pub(crate) fn openssl_verify_leaf(
    root_pem: &str,
    intermediates_pem: &str,
    leaf_pem: &str,
    hostname: Option<&str>,
) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let root = write("root.pem", root_pem);
    let ints = write("intermediates.pem", intermediates_pem);
    let leaf = write("leaf.pem", leaf_pem);
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-x509_strict", "-purpose", "sslserver"]);
    if let Some(h) = hostname {
        cmd.arg("-verify_hostname").arg(h);
    }
    let out = cmd
        .arg("-CAfile")
        .arg(&root)
        .arg("-untrusted")
        .arg(&ints)
        .arg(&leaf)
        .output()
        .expect("run openssl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && stdout.trim_end().ends_with(": OK") {
        Ok(())
    } else {
        Err(format!("{stdout} {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// A new SQLite store in a new temporary directory; the directory is
/// removed when the returned guard drops, so keep it alive with the store.
pub(crate) async fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite"), Durability::Issuance)
        .await
        .unwrap();
    (dir, store)
}

/// Runs `req` through `router` and reads the whole answer: status,
/// headers and body.
pub(crate) async fn read_answer(
    router: Router,
    req: Request<Body>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

pub(crate) mod pg;
