//! The issuing commands: `profiles`, `issue` (a key the server makes),
//! `upload-csr` (a batch of CSRs) and `batches` (a batch's requests, or
//! its certificates as a zip).

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::{connect, items, output, print, print_json, print_list, save};
use super::{BatchArgs, IssueArgs, ProfilesArgs, UploadCsrArgs};

pub(super) async fn profiles(a: ProfilesArgs) -> Result<(), String> {
    let c = connect(&a.global)?;
    match &a.name {
        Some(name) => {
            let p = c.get(&["profiles", name], &[]).await?;
            if a.global.json {
                print_json(&p)
            } else {
                print(&output::profile_kv(&p))
            }
        }
        None => {
            let body = c.get(&["profiles"], &[]).await?;
            if a.global.json {
                print_json(&body)
            } else {
                let t = output::profiles_table(&body);
                let n = items(&body, "profiles").len();
                print_list(t, "profiles", &Value::Null, n)
            }
        }
    }
}

pub(super) async fn issue(a: IssueArgs) -> Result<(), String> {
    let key_size = a
        .key_size
        .unwrap_or(if a.key_type == "rsa" { 2048 } else { 256 });
    let mut body = json!({
        "entity_id": a.entity,
        "profile": a.profile,
        "names": a.names,
        "ip_addresses": a.ips.iter().map(IpAddr::to_string).collect::<Vec<_>>(),
        "key_type": a.key_type,
        "key_size": key_size,
        "auto_renew": a.auto_renew,
    });
    if let Some(cn) = &a.cn {
        body["common_name"] = json!(cn);
    }
    if let Some(ttl) = a.ttl {
        body["ttl"] = json!(ttl.as_secs());
    }
    let c = connect(&a.global)?;
    let r = c.post(&["certs"], Some(&body)).await?;
    if a.global.json {
        return print_json(&r);
    }
    let mut text = output::request_kv(&r);
    if r.get("status").and_then(Value::as_str) == Some("pending") {
        text.push_str(&format!(
            "(waits for an agent: acme-ca requests approve {})\n",
            output::cell(r.get("id"))
        ));
    }
    print(&text)
}

/// Most bytes of CSR PEM sent at once (the server takes 1 MiB bodies).
const MAX_CSR_UPLOAD: u64 = 900 * 1024;

/// The PEM text of CSR files, each checked for a CSR block.
fn read_csr_files(files: &[PathBuf]) -> Result<String, String> {
    use std::io::Read;
    let mut all = String::new();
    for path in files {
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let mut text = String::new();
        file.take(MAX_CSR_UPLOAD + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("{shown}: {e}"))?;
        if !text.contains("-----BEGIN CERTIFICATE REQUEST-----")
            && !text.contains("-----BEGIN NEW CERTIFICATE REQUEST-----")
        {
            return Err(format!("{shown}: no PEM CERTIFICATE REQUEST block in it"));
        }
        all.push_str(text.trim());
        all.push('\n');
        if all.len() as u64 > MAX_CSR_UPLOAD {
            return Err(
                "the CSR files are larger than 900 KiB together; upload them in smaller batches"
                    .into(),
            );
        }
    }
    Ok(all)
}

pub(super) async fn upload_csr(a: UploadCsrArgs) -> Result<(), String> {
    let pem = read_csr_files(&a.files)?;
    let body = json!({
        "profile": a.profile,
        "entity_id": a.entity,
        "name": a.batch_name.clone().unwrap_or_default(),
        "pem": pem,
    });
    let c = connect(&a.global)?;
    let r = c.post(&["csr"], Some(&body)).await?;
    if a.global.json {
        return print_json(&r);
    }
    let requests = items(&r, "requests");
    let mut text = output::key_values(&[
        ("batch".to_owned(), output::cell(r.get("batch_id"))),
        ("requests".to_owned(), requests.len().to_string()),
    ]);
    text.push('\n');
    text.push_str(&output::requests_table(requests).render());
    print(&text)
}

pub(super) async fn batch(a: BatchArgs) -> Result<(), String> {
    let c = connect(&a.global)?;
    if a.download {
        let file = c
            .fetch_file(&["batches", &a.id, "download"], &[], true)
            .await?;
        let safe = !a.id.is_empty()
            && a.id.len() <= 64
            && a.id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let name = if safe { a.id.as_str() } else { "batch" };
        return save(
            &a.global,
            a.output,
            PathBuf::from(format!("{name}.zip")),
            &file,
        );
    }
    let b = c.get(&["batches", &a.id], &[]).await?;
    if a.global.json {
        return print_json(&b);
    }
    let mut text = output::batch_kv(&b);
    let requests = items(&b, "requests");
    if !requests.is_empty() {
        text.push('\n');
        text.push_str(&output::requests_table(requests).render());
    }
    print(&text)
}
