//! The work queues: `requests` and `recoveries` (list, show, approve,
//! reject) and `recover`, which opens a key recovery.

use serde_json::Value;

use super::{connect, list, output, print, print_json, push_opt, Global};
use super::{RecoveryListArgs, RequestListArgs};

pub(super) async fn list_requests(a: RequestListArgs) -> Result<(), String> {
    let mut q = Vec::new();
    push_opt(&mut q, "status", a.status);
    push_opt(&mut q, "batch", a.batch);
    push_opt(&mut q, "profile", a.profile);
    push_opt(&mut q, "offset", a.offset);
    push_opt(&mut q, "limit", a.limit);
    list(
        &a.global,
        "requests",
        &q,
        "requests",
        output::requests_table,
    )
    .await
}

pub(super) async fn list_recoveries(a: RecoveryListArgs) -> Result<(), String> {
    let mut q = Vec::new();
    push_opt(&mut q, "status", a.status);
    push_opt(&mut q, "offset", a.offset);
    push_opt(&mut q, "limit", a.limit);
    list(
        &a.global,
        "recoveries",
        &q,
        "recoveries",
        output::recoveries_table,
    )
    .await
}

/// One request or recovery: `path` read (GET), or acted on (POST of
/// `body`); the answer printed by `kv` (or as JSON).
async fn one(
    g: &Global,
    path: &[&str],
    body: Option<Value>,
    kv: fn(&Value) -> String,
) -> Result<(), String> {
    let c = connect(g)?;
    let r = match body {
        Some(b) => c.post(path, Some(&b)).await?,
        None => c.get(path, &[]).await?,
    };
    if g.json {
        print_json(&r)
    } else {
        print(&kv(&r))
    }
}

pub(super) async fn one_request(
    g: &Global,
    path: &[&str],
    body: Option<Value>,
) -> Result<(), String> {
    one(g, path, body, output::request_kv).await
}

pub(super) async fn one_recovery(
    g: &Global,
    path: &[&str],
    body: Option<Value>,
) -> Result<(), String> {
    one(g, path, body, output::recovery_kv).await
}
