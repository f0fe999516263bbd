//! The certificate commands: `find`, `show`, `renew`, `revoke` and
//! `download` (a zip or a PKCS#12 file).

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{connect, list, output, print, print_json, push_opt, save};
use super::{DownloadArgs, FindArgs, RevokeArgs, SerialArgs, ShowArgs};

pub(super) async fn find(a: FindArgs) -> Result<(), String> {
    let mut q = Vec::new();
    push_opt(&mut q, "common_name", a.cn);
    push_opt(&mut q, "serial", a.serial);
    push_opt(&mut q, "entity", a.entity);
    push_opt(&mut q, "status", a.status);
    push_opt(&mut q, "expiring_before", a.expiring_before);
    push_opt(&mut q, "offset", a.offset);
    push_opt(&mut q, "limit", a.limit);
    list(&a.global, "certs", &q, "certificates", output::certs_table).await
}

pub(super) async fn show(a: ShowArgs) -> Result<(), String> {
    let c = connect(&a.global)?;
    let cert = c.get(&["certs", &a.serial], &[]).await?;
    if a.global.json {
        print_json(&cert)
    } else if a.pem {
        let pem = cert
            .get("certificate")
            .and_then(Value::as_str)
            .ok_or("the server sent no certificate PEM")?;
        print(pem)
    } else {
        print(&output::cert_kv(&cert))
    }
}

pub(super) async fn renew(a: SerialArgs) -> Result<(), String> {
    let c = connect(&a.global)?;
    let r = c
        .post(&["certs", &a.serial, "renew"], Some(&json!({})))
        .await?;
    if a.global.json {
        return print_json(&r);
    }
    let old = r.get("previous").cloned().unwrap_or(Value::Null);
    let new = r.get("certificate").cloned().unwrap_or(Value::Null);
    print(&output::key_values(&[
        ("serial".to_owned(), output::cell(r.get("serial_number"))),
        ("not after".to_owned(), output::cell(new.get("not_after"))),
        ("previous".to_owned(), output::cell(old.get("serial"))),
        (
            "previous status".to_owned(),
            output::cell(old.get("status")),
        ),
    ]))
}

pub(super) async fn revoke(a: RevokeArgs) -> Result<(), String> {
    let c = connect(&a.global)?;
    let body = json!({"reason": a.reason});
    let cert = c.post(&["certs", &a.serial, "revoke"], Some(&body)).await?;
    if a.global.json {
        print_json(&cert)
    } else {
        print(&output::cert_kv(&cert))
    }
}

/// A serial as the server writes it (lowercase hex, no leading zeros, an
/// even number of digits), for file names; None if it is not hex.
pub(super) fn file_serial(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s)
        .to_ascii_lowercase();
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = s.trim_start_matches('0').to_owned();
    if out.len() % 2 == 1 {
        out.insert(0, '0');
    }
    if out.is_empty() {
        out.push_str("00");
    }
    Some(out)
}

pub(super) async fn download(a: DownloadArgs) -> Result<(), String> {
    let ext = if a.p12 { "p12" } else { "zip" };
    let mut body = json!({ "format": ext });
    if let Some(pw) = &a.password {
        body["password"] = json!(pw);
    }
    if let Some(id) = &a.recovery {
        body["recovery"] = json!(id);
    }
    let c = connect(&a.global)?;
    let grant = c
        .post(&["certs", &a.serial, "download-token"], Some(&body))
        .await?;
    let token = grant
        .get("token")
        .and_then(Value::as_str)
        .ok_or("the server sent no download token")?;
    let file = c
        .fetch_file(
            &["certs", &a.serial, "download"],
            &[("token", token.to_owned())],
            false,
        )
        .await?;
    let serial = file_serial(&a.serial).unwrap_or_else(|| "certificate".to_owned());
    save(
        &a.global,
        a.output,
        PathBuf::from(format!("{serial}.{ext}")),
        &file,
    )
}
