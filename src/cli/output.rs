//! Readable output of the service's JSON: aligned tables for lists and
//! `key: value` lines for one object. Every value from the server is made
//! safe for a terminal first (control characters become spaces), so that a
//! stored name cannot move the cursor or break a row.

use serde_json::Value;

/// A table with a header row; columns are padded to their widest cell and
/// separated by two spaces.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra ones are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells.into_iter().map(|c| clean(&c)).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row (each ending in a newline), with
    /// no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', w - width(cell)));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned; empty values are skipped.
pub fn key_values(pairs: &[(String, String)]) -> String {
    let key_width = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| width(k) + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        let key = format!("{}:", clean(k));
        out.push_str(&key);
        out.extend(std::iter::repeat_n(' ', key_width - width(&key) + 1));
        out.push_str(&clean(v));
        out.push('\n');
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// One line of text safe for a terminal: control characters (newlines,
/// tabs, escapes) become spaces.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A JSON value as a cell: `-` for null or absent, arrays joined with
/// commas.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "-".to_owned(),
        Some(Value::String(s)) => clean(s),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) if a.is_empty() => "-".to_owned(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| cell(Some(x)))
            .collect::<Vec<_>>()
            .join(","),
        Some(o @ Value::Object(_)) => clean(&o.to_string()),
    }
}

/// A field of an object, as a cell.
fn f(v: &Value, key: &str) -> String {
    cell(v.get(key))
}

/// A field for `key: value` output: empty (so skipped) when the server did
/// not send it or sent null or nothing.
fn kv_field(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.is_empty() => String::new(),
        Some(Value::Array(a)) if a.is_empty() => String::new(),
        some => cell(some),
    }
}

/// Seconds as a short duration: `90d`, `36h`, `90m`, `45s`, `1d1s`.
pub fn duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

fn duration_field(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_u64) {
        Some(s) => duration(s),
        None => kv_field(v, key),
    }
}

fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// "rsa 2048/3072, ec 256/384" from a profile's key types and sizes.
fn key_choices(p: &Value) -> String {
    let sizes = |key: &str| {
        list(p, key)
            .iter()
            .map(|s| cell(Some(s)))
            .collect::<Vec<_>>()
            .join("/")
    };
    list(p, "key_types")
        .iter()
        .filter_map(Value::as_str)
        .map(|t| match t {
            "rsa" => format!("rsa {}", sizes("rsa_sizes")),
            "ec" => format!("ec {}", sizes("ec_sizes")),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// GET /profiles.
pub fn profiles_table(body: &Value) -> Table {
    let mut t = Table::new(&[
        "NAME",
        "APPROVAL",
        "KEYS",
        "VALIDITY",
        "USAGES",
        "REQUIRED",
        "DESCRIPTION",
    ]);
    for p in list(body, "profiles") {
        t.row(vec![
            f(p, "name"),
            f(p, "approval"),
            key_choices(p),
            duration_field(p, "validity_seconds"),
            f(p, "extended_key_usages"),
            f(p, "required"),
            f(p, "description"),
        ]);
    }
    t
}

/// GET /profiles/{name}.
pub fn profile_kv(p: &Value) -> String {
    key_values(&pairs(&[
        ("name", kv_field(p, "name")),
        ("description", kv_field(p, "description")),
        ("approval", kv_field(p, "approval")),
        ("keys", key_choices(p)),
        ("validity", duration_field(p, "validity_seconds")),
        ("extended key usages", kv_field(p, "extended_key_usages")),
        ("required", kv_field(p, "required")),
        ("renew before", duration_field(p, "renew_before_seconds")),
        ("archive keys", kv_field(p, "archive_keys")),
        (
            "key download window",
            duration_field(p, "key_download_window_seconds"),
        ),
        ("recovery approvals", kv_field(p, "recovery_approvals")),
    ]))
}

/// Certificates (GET /certs).
pub fn certs_table(certs: &[Value]) -> Table {
    let mut t = Table::new(&[
        "SERIAL",
        "COMMON NAME",
        "STATUS",
        "NOT AFTER",
        "ENTITY",
        "PROFILE",
    ]);
    for c in certs {
        t.row(vec![
            f(c, "serial"),
            f(c, "common_name"),
            f(c, "status"),
            f(c, "not_after"),
            f(c, "entity_id"),
            f(c, "profile"),
        ]);
    }
    t
}

/// One certificate (GET /certs/{serial}, revoke).
pub fn cert_kv(c: &Value) -> String {
    key_values(&pairs(&[
        ("serial", kv_field(c, "serial")),
        ("common name", kv_field(c, "common_name")),
        ("status", kv_field(c, "status")),
        ("not before", kv_field(c, "not_before")),
        ("not after", kv_field(c, "not_after")),
        ("revoked at", kv_field(c, "revoked_at")),
        ("revocation reason", kv_field(c, "revocation_reason")),
        ("source", kv_field(c, "source")),
        ("entity", kv_field(c, "entity_id")),
        ("profile", kv_field(c, "profile")),
        ("requester", kv_field(c, "requester")),
        ("request", kv_field(c, "request_id")),
        ("auto renew", kv_field(c, "auto_renew")),
        ("key archived", kv_field(c, "key_archived")),
        ("renewed to", kv_field(c, "renewed_to")),
    ]))
}

/// Requests (GET /requests, a batch, a CSR upload).
pub fn requests_table(requests: &[Value]) -> Table {
    let mut t = Table::new(&[
        "ID",
        "STATUS",
        "REQUESTER",
        "PROFILE",
        "ENTITY",
        "SERIAL",
        "CREATED",
    ]);
    for r in requests {
        t.row(vec![
            f(r, "id"),
            f(r, "status"),
            f(r, "requester"),
            f(r, "profile"),
            f(r, "entity_id"),
            f(r, "serial"),
            f(r, "created_at"),
        ]);
    }
    t
}

/// One request (issue, approve, reject, GET /requests/{id}).
pub fn request_kv(r: &Value) -> String {
    let key = match (r.get("key_type"), r.get("key_size")) {
        (Some(Value::String(t)), Some(s)) => format!("{} {}", clean(t), cell(Some(s))),
        _ => String::new(),
    };
    let ttl = match r.get("ttl").and_then(Value::as_u64) {
        Some(s) => duration(s),
        None => String::new(),
    };
    key_values(&pairs(&[
        ("id", kv_field(r, "id")),
        ("kind", kv_field(r, "kind")),
        ("status", kv_field(r, "status")),
        ("serial", kv_field(r, "serial")),
        ("requester", kv_field(r, "requester")),
        ("profile", kv_field(r, "profile")),
        ("entity", kv_field(r, "entity_id")),
        ("common name", kv_field(r, "common_name")),
        ("names", kv_field(r, "names")),
        ("ip addresses", kv_field(r, "ip_addresses")),
        ("key", key),
        ("ttl", ttl),
        ("auto renew", kv_field(r, "auto_renew")),
        ("batch", kv_field(r, "batch_id")),
        ("created", kv_field(r, "created_at")),
        ("decided by", kv_field(r, "decided_by")),
        ("decided at", kv_field(r, "decided_at")),
        ("reason", kv_field(r, "reason")),
        ("error", kv_field(r, "error")),
    ]))
}

/// GET /batches/{id} (without its requests).
pub fn batch_kv(b: &Value) -> String {
    key_values(&pairs(&[
        ("batch", kv_field(b, "id")),
        ("name", kv_field(b, "name")),
        ("requester", kv_field(b, "requester")),
        ("profile", kv_field(b, "profile")),
        ("created", kv_field(b, "created_at")),
        ("size", kv_field(b, "size")),
        ("pending", kv_field(b, "pending")),
        ("issued", kv_field(b, "issued")),
        ("rejected", kv_field(b, "rejected")),
        ("failed", kv_field(b, "failed")),
    ]))
}

/// "1/2" approvals of a recovery.
fn approvals(r: &Value) -> String {
    let got = list(r, "approvals").len();
    match r.get("required") {
        Some(n) if !n.is_null() => format!("{got}/{}", cell(Some(n))),
        _ => got.to_string(),
    }
}

/// Key recoveries (GET /recoveries).
pub fn recoveries_table(recoveries: &[Value]) -> Table {
    let mut t = Table::new(&[
        "ID",
        "STATUS",
        "SERIAL",
        "REQUESTER",
        "APPROVALS",
        "CREATED",
    ]);
    for r in recoveries {
        t.row(vec![
            f(r, "id"),
            f(r, "status"),
            f(r, "serial"),
            f(r, "requester"),
            approvals(r),
            f(r, "created_at"),
        ]);
    }
    t
}

/// One key recovery; fields this version does not know are shown after
/// the known ones.
pub fn recovery_kv(r: &Value) -> String {
    const KNOWN: &[(&str, &str)] = &[
        ("id", "id"),
        ("serial", "serial"),
        ("status", "status"),
        ("requester", "requester"),
        ("created_at", "created"),
        ("decided_by", "decided by"),
        ("decided_at", "decided at"),
        ("reason", "reason"),
    ];
    let mut out: Vec<(String, String)> = KNOWN
        .iter()
        .map(|(key, label)| ((*label).to_owned(), kv_field(r, key)))
        .collect();
    let approved_by = list(r, "approvals")
        .iter()
        .map(|a| cell(Some(a)))
        .collect::<Vec<_>>()
        .join(", ");
    out.insert(
        4,
        (
            "approvals".to_owned(),
            if approved_by.is_empty() {
                approvals(r)
            } else {
                format!("{} ({approved_by})", approvals(r))
            },
        ),
    );
    if let Some(obj) = r.as_object() {
        for (k, v) in obj {
            let known = KNOWN.iter().any(|(key, _)| key == k)
                || k == "approvals"
                || k == "required"
                || v.is_object();
            if !known {
                out.push((k.replace('_', " "), cell(Some(v))));
            }
        }
    }
    key_values(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let mut t = Table::new(&["SERIAL", "COMMON NAME", "STATUS"]);
        t.row(vec!["0a1b".into(), "a.example".into(), "valid".into()]);
        t.row(vec!["0123456789".into(), "b".into(), "revoked".into()]);
        assert_eq!(
            t.render(),
            "SERIAL      COMMON NAME  STATUS\n\
             0a1b        a.example    valid\n\
             0123456789  b            revoked\n"
        );
        for line in t.render().lines() {
            assert_eq!(line, line.trim_end());
        }
    }

    #[test]
    fn table_with_no_rows_is_the_header() {
        let t = Table::new(&["ID", "STATUS"]);
        assert!(t.is_empty());
        assert_eq!(t.render(), "ID  STATUS\n");
    }

    #[test]
    fn table_pads_short_rows_and_cleans_cells() {
        let mut t = Table::new(&["A", "B", "C"]);
        t.row(vec!["x\ny".into()]);
        t.row(vec![
            "\u{1b}[31mred".into(),
            "2".into(),
            "3".into(),
            "4".into(),
        ]);
        assert_eq!(t.render(), "A         B  C\nx y\n [31mred  2  3\n");
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let mut t = Table::new(&["NAME", "X"]);
        t.row(vec!["żółw".into(), "1".into()]);
        assert_eq!(t.render(), "NAME  X\nżółw  1\n");
    }

    #[test]
    fn key_values_align_and_skip_empty() {
        let out = key_values(&pairs(&[
            ("id", "r1".into()),
            ("common name", "dev-1".into()),
            ("error", String::new()),
            ("serial", "-".into()),
            ("a very long key but empty", String::new()),
        ]));
        assert_eq!(out, "id:          r1\ncommon name: dev-1\nserial:      -\n");
    }

    #[test]
    fn cells_of_json_values() {
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(&Value::Null)), "-");
        assert_eq!(cell(Some(&json!(""))), "-");
        assert_eq!(cell(Some(&json!(true))), "yes");
        assert_eq!(cell(Some(&json!(42))), "42");
        assert_eq!(cell(Some(&json!(["a", "b"]))), "a,b");
        assert_eq!(cell(Some(&json!([]))), "-");
        assert_eq!(cell(Some(&json!("a\tb"))), "a b");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(90 * 86400), "90d");
        assert_eq!(duration(36 * 3600), "1d12h");
        assert_eq!(duration(5400), "1h30m");
        assert_eq!(duration(86401), "1d1s");
    }

    #[test]
    fn certificate_table_and_details() {
        let certs = vec![
            json!({"serial": "7f01", "common_name": "dev-1", "not_before": "2025-01-01T00:00:00Z",
                   "not_after": "2026-01-01T00:00:00Z", "status": "valid", "source": "service",
                   "entity_id": "plant-7", "profile": "device", "auto_renew": false}),
            json!({"serial": "02", "common_name": null, "not_before": "2025-01-01T00:00:00Z",
                   "not_after": "2025-04-01T00:00:00Z", "status": "revoked", "source": "acme",
                   "revoked_at": "2025-02-01T00:00:00Z", "revocation_reason": "keyCompromise"}),
        ];
        assert_eq!(
            certs_table(&certs).render(),
            "SERIAL  COMMON NAME  STATUS   NOT AFTER             ENTITY   PROFILE\n\
             7f01    dev-1        valid    2026-01-01T00:00:00Z  plant-7  device\n\
             02      -            revoked  2025-04-01T00:00:00Z  -        -\n"
        );
        let kv = cert_kv(&certs[1]);
        assert!(kv.starts_with("serial:            02\n"), "{kv}");
        assert!(kv.contains("revocation reason: keyCompromise\n"), "{kv}");
        assert!(
            !kv.contains("entity"),
            "ACME certificates have no entity: {kv}"
        );
        assert!(cert_kv(&certs[0]).contains("\nauto renew:  no\n"));
    }

    #[test]
    fn request_table_and_details() {
        let r = json!({"id": "abc", "status": "pending", "requester": "alice", "profile": "device",
                       "entity_id": "e1", "kind": "issue", "batch_id": null, "serial": null,
                       "error": null, "created_at": "2025-01-01T00:00:00Z", "decided_by": null,
                       "decided_at": null, "reason": null, "names": [], "ip_addresses": [],
                       "common_name": "dev-1", "key_type": "ec", "key_size": 256, "ttl": 86400,
                       "auto_renew": false});
        assert_eq!(
            requests_table(std::slice::from_ref(&r)).render(),
            "ID   STATUS   REQUESTER  PROFILE  ENTITY  SERIAL  CREATED\n\
             abc  pending  alice      device   e1      -       2025-01-01T00:00:00Z\n"
        );
        let kv = request_kv(&r);
        assert!(kv.contains("key:         ec 256\n"), "{kv}");
        assert!(kv.contains("ttl:         1d\n"), "{kv}");
        assert!(!kv.contains("serial"), "null fields are left out: {kv}");
    }

    #[test]
    fn profile_table_shows_key_choices_and_validity() {
        let body = json!({"profiles": [{"name": "server", "description": "TLS servers",
            "key_types": ["rsa", "ec"], "rsa_sizes": [2048, 3072], "ec_sizes": [256],
            "validity_seconds": 7776000, "extended_key_usages": ["serverAuth"],
            "required": ["names"], "approval": "auto"}]});
        assert_eq!(
            profiles_table(&body).render(),
            "NAME    APPROVAL  KEYS                   VALIDITY  USAGES      REQUIRED  DESCRIPTION\n\
             server  auto      rsa 2048/3072, ec 256  90d       serverAuth  names     TLS servers\n"
        );
        let kv = profile_kv(&body["profiles"][0]);
        assert!(kv.contains("\nvalidity:            90d\n"), "{kv}");
    }

    #[test]
    fn recovery_shows_approvals_and_unknown_fields() {
        let r = json!({"id": "rc1", "serial": "7f", "requester": "alice", "status": "pending",
                       "approvals": ["ann"], "required": 2, "created_at": "2025-01-01T00:00:00Z",
                       "expires_at": "2025-01-02T00:00:00Z"});
        assert_eq!(
            recoveries_table(std::slice::from_ref(&r)).render(),
            "ID   STATUS   SERIAL  REQUESTER  APPROVALS  CREATED\n\
             rc1  pending  7f      alice      1/2        2025-01-01T00:00:00Z\n"
        );
        let kv = recovery_kv(&r);
        assert!(kv.contains("approvals:  1/2 (ann)\n"), "{kv}");
        assert!(kv.contains("expires at: 2025-01-02T00:00:00Z\n"), "{kv}");
    }
}
