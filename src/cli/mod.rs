//! `acme-ca profiles|issue|find|…`: a command-line client of the operator
//! service's REST API (see src/service/http.rs), in the manner of the
//! command-line clients of commercial CAs.
//!
//! Every command takes the [`Global`] options (`--url`, `--token`,
//! `--ca-file`, `--json`, or their `ACME_CA_*` variables). Output is an
//! aligned table for lists and `key: value` lines for one object, or the
//! server's JSON with `--json`. Errors are one line, returned to `main`,
//! which prints `acme-ca: …` and exits 1; usage errors are clap's (exit 2).

mod certs;
pub mod client;
mod issue;
pub mod output;
mod queues;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Url;
use serde_json::{json, Value};

use client::Client;
use output::Table;

/// Options every service command takes.
#[derive(Args, Clone)]
pub struct Global {
    /// Base URL of the operator service (HTTPS).
    #[arg(
        long,
        env = "ACME_CA_URL",
        default_value = DEFAULT_URL,
        value_name = "URL",
        value_parser = parse_url
    )]
    pub url: Url,
    /// Bearer token of the service (required; never printed).
    #[arg(
        long,
        env = "ACME_CA_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Trust only this CA (PEM) for the HTTPS connection; default: the
    /// system's roots.
    #[arg(long, env = "ACME_CA_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Print the server's JSON (pretty) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Without the token.
impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("json", &self.json)
            .finish()
    }
}

/// Where the service listens by default.
const DEFAULT_URL: &str = "https://localhost:14443";

/// An empty value (an `ACME_CA_URL=` left blank) means the default.
fn parse_url(s: &str) -> Result<Url, String> {
    let s = if s.trim().is_empty() { DEFAULT_URL } else { s };
    let url = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err("the service is reached over https:// only".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("give credentials with --token, not in the URL".into());
    }
    Ok(url)
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = crate::config::parse_duration(s)?;
    if d.as_secs() == 0 {
        return Err("the lifetime is at least 1s (e.g. 30d, 12h, 3600)".into());
    }
    Ok(d)
}

/// `--expiring-before`: RFC 3339, or a duration from now (`30d`).
fn parse_before(s: &str) -> Result<String, String> {
    if crate::clock::parse_rfc3339(s).is_some() {
        return Ok(s.to_owned());
    }
    let d = crate::config::parse_duration(s).map_err(|_| {
        format!("{s:?} is neither an RFC 3339 time (2025-06-30T00:00:00Z) nor a duration (30d)")
    })?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let secs = i64::try_from(d.as_secs()).map_err(|_| "the duration is too large".to_owned())?;
    Ok(crate::clock::rfc3339(now.saturating_add(secs)))
}

/// The service commands, flattened into the binary's subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the certificate profiles of the service, or show one.
    Profiles(ProfilesArgs),
    /// Request a certificate with a key the server generates.
    Issue(IssueArgs),
    /// Upload CSRs (PEM files, one or many CSRs each) as one batch.
    UploadCsr(UploadCsrArgs),
    /// Show a CSR batch and its requests, or download its certificates.
    Batches(BatchArgs),
    /// List, show, approve or reject certificate requests.
    Requests(RequestsArgs),
    /// Find certificates (ACME and service ones).
    Find(FindArgs),
    /// Show one certificate.
    Show(ShowArgs),
    /// Renew a certificate of the service (inside its renewal window).
    Renew(SerialArgs),
    /// Revoke a certificate with an RFC 5280 reason.
    Revoke(RevokeArgs),
    /// Download a certificate with its chain (and key, when the server
    /// still releases it) as a zip or a PKCS#12 file.
    Download(DownloadArgs),
    /// Ask for the recovery of an archived private key.
    Recover(SerialArgs),
    /// List, show, approve or reject key recoveries.
    Recoveries(RecoveriesArgs),
}

#[derive(Args, Debug)]
pub struct ProfilesArgs {
    /// Show this profile only.
    pub name: Option<String>,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct IssueArgs {
    /// The entity (device, service, person) the certificate is for.
    #[arg(long, value_name = "ID")]
    pub entity: String,
    /// Certificate profile (see `acme-ca profiles`).
    #[arg(long)]
    pub profile: String,
    /// DNS name (repeatable).
    #[arg(long = "name", value_name = "DNS")]
    pub names: Vec<String>,
    /// IP address (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<IpAddr>,
    /// Subject common name.
    #[arg(long, value_name = "CN")]
    pub cn: Option<String>,
    /// Key type.
    #[arg(long, value_parser = ["rsa", "ec"], default_value = "ec")]
    pub key_type: String,
    /// Key size: 2048, 3072, 4096 for RSA; 256, 384 for EC [default: 2048
    /// for RSA, 256 for EC].
    #[arg(long, value_name = "BITS")]
    pub key_size: Option<u32>,
    /// Lifetime, shorter than the profile's: 30d, 12h, 3600 (seconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
    /// Renew automatically when the renewal window opens.
    #[arg(long)]
    pub auto_renew: bool,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct UploadCsrArgs {
    /// Certificate profile.
    #[arg(long)]
    pub profile: String,
    /// The entity the certificates are for.
    #[arg(long, value_name = "ID")]
    pub entity: String,
    /// A name for the batch.
    #[arg(long, value_name = "NAME")]
    pub batch_name: Option<String>,
    /// PEM files with one or many CERTIFICATE REQUEST blocks.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct BatchArgs {
    /// Batch id (printed by upload-csr).
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// Download the batch's issued certificates (and ca.pem) as a zip.
    #[arg(long)]
    pub download: bool,
    /// Where to write the zip (a file, a directory, or -) [default:
    /// BATCH.zip].
    #[arg(long, short = 'o', value_name = "PATH", requires = "download")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RequestsArgs {
    #[command(subcommand)]
    pub action: Option<RequestsAction>,
    #[command(flatten)]
    pub list: RequestListArgs,
}

#[derive(Subcommand, Debug)]
pub enum RequestsAction {
    /// List requests (the default).
    List(RequestListArgs),
    /// Show one request.
    Show(IdArgs),
    /// Approve a pending request: it is issued now (agents, admins).
    Approve(IdArgs),
    /// Reject a pending request (agents, admins).
    Reject(RejectArgs),
}

#[derive(Args, Debug)]
pub struct RequestListArgs {
    /// pending, approved, rejected, issued or failed.
    #[arg(long, value_parser = ["pending", "approved", "rejected", "issued", "failed"])]
    pub status: Option<String>,
    /// Requests of this batch.
    #[arg(long, value_name = "ID")]
    pub batch: Option<String>,
    /// Requests of this profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Most requests shown.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Requests skipped (for paging).
    #[arg(long, value_name = "N")]
    pub offset: Option<u32>,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The id (may begin with `-`).
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct RejectArgs {
    /// The id (may begin with `-`).
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// Why (shown to the requester).
    #[arg(long, short = 'r')]
    pub reason: String,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Common name (exact).
    #[arg(long, value_name = "CN")]
    pub cn: Option<String>,
    /// Serial number (hexadecimal).
    #[arg(long)]
    pub serial: Option<String>,
    /// Entity id.
    #[arg(long, value_name = "ID")]
    pub entity: Option<String>,
    /// valid, revoked or expired.
    #[arg(long, value_parser = ["valid", "revoked", "expired"])]
    pub status: Option<String>,
    /// Expiring before this RFC 3339 time, or within this duration (30d).
    #[arg(long, value_name = "TIME", value_parser = parse_before)]
    pub expiring_before: Option<String>,
    /// Most certificates shown.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Certificates skipped (for paging).
    #[arg(long, value_name = "N")]
    pub offset: Option<u32>,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Serial number (hexadecimal).
    pub serial: String,
    /// Print only the certificate, PEM.
    #[arg(long, conflicts_with = "json")]
    pub pem: bool,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct SerialArgs {
    /// Serial number (hexadecimal).
    pub serial: String,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// Serial number (hexadecimal).
    pub serial: String,
    /// RFC 5280 reason, in any spelling: keyCompromise, "Key Compromise",
    /// superseded, cessationOfOperation, 1…
    #[arg(long, short = 'r')]
    pub reason: String,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// Serial number (hexadecimal).
    pub serial: String,
    /// Where to write (a file, a directory, or - for standard output)
    /// [default: SERIAL.zip or SERIAL.p12].
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// A PKCS#12 file (certificate, chain and key) instead of a zip.
    #[arg(long, requires = "password")]
    pub p12: bool,
    /// Password of the PKCS#12 file.
    #[arg(
        long,
        env = "ACME_CA_P12_PASSWORD",
        hide_env_values = true,
        requires = "p12",
        value_name = "PW"
    )]
    pub password: Option<String>,
    /// Include the key released by this approved key recovery.
    #[arg(long, value_name = "ID")]
    pub recovery: Option<String>,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RecoveriesArgs {
    #[command(subcommand)]
    pub action: Option<RecoveriesAction>,
    #[command(flatten)]
    pub list: RecoveryListArgs,
}

#[derive(Subcommand, Debug)]
pub enum RecoveriesAction {
    /// List key recoveries (the default).
    List(RecoveryListArgs),
    /// Show one key recovery.
    Show(IdArgs),
    /// Approve a key recovery (agents; each agent once).
    Approve(IdArgs),
    /// Reject a key recovery.
    Reject(RejectArgs),
}

#[derive(Args, Debug)]
pub struct RecoveryListArgs {
    /// pending, approved, rejected or completed.
    #[arg(long, value_parser = ["pending", "approved", "rejected", "completed"])]
    pub status: Option<String>,
    /// Most recoveries shown.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Recoveries skipped (for paging).
    #[arg(long, value_name = "N")]
    pub offset: Option<u32>,
    #[command(flatten)]
    pub global: Global,
}

impl Command {
    /// The global options of the command (or of its subcommand).
    pub fn global(&self) -> &Global {
        match self {
            Command::Profiles(a) => &a.global,
            Command::Issue(a) => &a.global,
            Command::UploadCsr(a) => &a.global,
            Command::Batches(a) => &a.global,
            Command::Requests(a) => match &a.action {
                None => &a.list.global,
                Some(RequestsAction::List(l)) => &l.global,
                Some(RequestsAction::Show(a) | RequestsAction::Approve(a)) => &a.global,
                Some(RequestsAction::Reject(a)) => &a.global,
            },
            Command::Find(a) => &a.global,
            Command::Show(a) => &a.global,
            Command::Renew(a) | Command::Recover(a) => &a.global,
            Command::Revoke(a) => &a.global,
            Command::Download(a) => &a.global,
            Command::Recoveries(a) => match &a.action {
                None => &a.list.global,
                Some(RecoveriesAction::List(l)) => &l.global,
                Some(RecoveriesAction::Show(a) | RecoveriesAction::Approve(a)) => &a.global,
                Some(RecoveriesAction::Reject(a)) => &a.global,
            },
        }
    }

    /// Checks what clap cannot: a token is given (by option or
    /// environment). The error exits with clap's usage status, 2.
    pub fn check(&self) -> Result<(), clap::Error> {
        match self.global().token.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => Ok(()),
            _ => Err(clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "a token is required: --token TOKEN or ACME_CA_TOKEN\n",
            )),
        }
    }
}

/// Runs one command; the error is one line for `acme-ca: …`. A command
/// without a token exits at once with status 2, as clap's usage errors do.
pub async fn run(command: Command) -> Result<(), String> {
    if let Err(e) = command.check() {
        e.exit();
    }
    let result = match command {
        Command::Profiles(a) => issue::profiles(a).await,
        Command::Issue(a) => issue::issue(a).await,
        Command::UploadCsr(a) => issue::upload_csr(a).await,
        Command::Batches(a) => issue::batch(a).await,
        Command::Requests(a) => match a.action {
            None => queues::list_requests(a.list).await,
            Some(RequestsAction::List(l)) => queues::list_requests(l).await,
            Some(RequestsAction::Show(a)) => {
                queues::one_request(&a.global, &["requests", &a.id], None).await
            }
            Some(RequestsAction::Approve(a)) => {
                queues::one_request(&a.global, &["requests", &a.id, "approve"], Some(json!({})))
                    .await
            }
            Some(RequestsAction::Reject(a)) => {
                let body = json!({"reason": a.reason});
                queues::one_request(&a.global, &["requests", &a.id, "reject"], Some(body)).await
            }
        },
        Command::Find(a) => certs::find(a).await,
        Command::Show(a) => certs::show(a).await,
        Command::Renew(a) => certs::renew(a).await,
        Command::Revoke(a) => certs::revoke(a).await,
        Command::Download(a) => certs::download(a).await,
        Command::Recover(a) => {
            queues::one_recovery(
                &a.global,
                &["certs", &a.serial, "recovery"],
                Some(json!({})),
            )
            .await
        }
        Command::Recoveries(a) => match a.action {
            None => queues::list_recoveries(a.list).await,
            Some(RecoveriesAction::List(l)) => queues::list_recoveries(l).await,
            Some(RecoveriesAction::Show(a)) => {
                queues::one_recovery(&a.global, &["recoveries", &a.id], None).await
            }
            Some(RecoveriesAction::Approve(a)) => {
                queues::one_recovery(
                    &a.global,
                    &["recoveries", &a.id, "approve"],
                    Some(json!({})),
                )
                .await
            }
            Some(RecoveriesAction::Reject(a)) => {
                let body = json!({"reason": a.reason});
                queues::one_recovery(&a.global, &["recoveries", &a.id, "reject"], Some(body)).await
            }
        },
    };
    // One line, whatever the server or the network said.
    result.map_err(|e| output::clean(&e))
}

fn connect(g: &Global) -> Result<Client, String> {
    let token = g.token.as_deref().unwrap_or_default();
    Client::new(&g.url, token, g.ca_file.as_deref())
}

/// Writes to standard output; a closed pipe is not an error worth a
/// message.
fn print(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("writing the output: {e}"))
        }
        _ => Ok(()),
    }
}

fn print_json(v: &Value) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    text.push('\n');
    print(&text)
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A list as a table, or `none` when empty, then a paging hint when the
/// server has more.
fn print_list(table: Table, what: &str, body: &Value, shown: usize) -> Result<(), String> {
    let mut text = if table.is_empty() {
        format!("no {what}\n")
    } else {
        table.render()
    };
    let total = body.get("total").and_then(Value::as_u64);
    let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(0);
    if let Some(total) = total {
        let end = offset + shown as u64;
        if shown > 0 && (offset > 0 || end < total) {
            text.push_str(&format!("({}-{end} of {total} {what}", offset + 1));
            if end < total {
                text.push_str(&format!("; next: --offset {end}"));
            }
            text.push_str(")\n");
        }
    }
    print(&text)
}

/// A list command: `path` read with query `q`, then the server's JSON, or
/// its `key` array as `table` with a paging hint.
async fn list(
    g: &Global,
    path: &str,
    q: &[(&'static str, String)],
    key: &str,
    table: fn(&[Value]) -> Table,
) -> Result<(), String> {
    let c = connect(g)?;
    let body = c.get(&[path], q).await?;
    if g.json {
        return print_json(&body);
    }
    let list = items(&body, key);
    print_list(table(list), key, &body, list.len())
}

fn push_opt(q: &mut Vec<(&'static str, String)>, key: &'static str, v: Option<impl ToString>) {
    if let Some(v) = v {
        q.push((key, v.to_string()));
    }
}

/// Writes `data` to `path` readable by the owner alone (it may hold a
/// private key): a temporary file next to it, then a rename.
fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{shown}: not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = opts
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("writing {shown}: {e}"));
    }
    Ok(())
}

/// Writes a downloaded file to `output` (a file, a directory to put
/// `default_name` in, or - for standard output), by default to
/// `default_name`, and says so.
fn save(
    g: &Global,
    output: Option<PathBuf>,
    default_name: PathBuf,
    file: &client::Answer,
) -> Result<(), String> {
    let path = match output {
        Some(p) if p.as_os_str() == "-" => {
            let mut out = std::io::stdout().lock();
            return out
                .write_all(&file.body)
                .and_then(|()| out.flush())
                .map_err(|e| format!("writing the output: {e}"));
        }
        Some(p) if p.is_dir() => p.join(default_name),
        Some(p) => p,
        None => default_name,
    };
    write_private(&path, &file.body)?;
    if g.json {
        print_json(&json!({
            "file": path.display().to_string(),
            "bytes": file.body.len(),
            "content_type": file.content_type,
        }))
    } else {
        print(&format!(
            "wrote {} ({} bytes)\n",
            path.display(),
            file.body.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::certs::file_serial;
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("acme-ca").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn the_commands_are_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn an_empty_url_is_the_default() {
        assert_eq!(parse_url("").unwrap().as_str(), "https://localhost:14443/");
        assert_eq!(
            parse_url("  ").unwrap().as_str(),
            "https://localhost:14443/"
        );
        assert!(parse_url("http://x").is_err());
    }

    /// Ids made before ids stopped beginning with `-` are still values.
    #[test]
    fn ids_may_begin_with_a_dash() {
        let c = parse(&["requests", "approve", "-whAWSl1Zyaoe6lw", "--token", "t"]).unwrap();
        assert!(
            matches!(&c, Command::Requests(RequestsArgs { action: Some(RequestsAction::Approve(a)), .. }) if a.id == "-whAWSl1Zyaoe6lw")
        );
        let c = parse(&["requests", "reject", "-x1", "-r", "no", "--token", "t"]).unwrap();
        assert!(
            matches!(&c, Command::Requests(RequestsArgs { action: Some(RequestsAction::Reject(a)), .. }) if a.id == "-x1" && a.reason == "no")
        );
        let c = parse(&["batches", "-b1", "--token", "t"]).unwrap();
        assert!(matches!(&c, Command::Batches(a) if a.id == "-b1"), "{c:?}");
    }

    #[test]
    fn options_go_before_or_after_nested_subcommands() {
        let c = parse(&["requests", "approve", "r1", "--token", "t0ken-0123456789"]).unwrap();
        assert!(
            matches!(&c, Command::Requests(RequestsArgs { action: Some(RequestsAction::Approve(a)), .. }) if a.id == "r1")
        );
        assert_eq!(c.global().token.as_deref(), Some("t0ken-0123456789"));
        let c = parse(&["requests", "--status", "pending", "--token", "t"]).unwrap();
        assert!(
            matches!(&c, Command::Requests(RequestsArgs { action: None, list }) if list.status.as_deref() == Some("pending"))
        );
        let c = parse(&[
            "recoveries",
            "reject",
            "x",
            "-r",
            "no",
            "--json",
            "--token",
            "t",
        ])
        .unwrap();
        assert!(c.global().json);
        let c = parse(&["revoke", "0a", "-r", "Key Compromise", "--token", "t"]).unwrap();
        assert!(matches!(&c, Command::Revoke(a) if a.reason == "Key Compromise"));
        // Usage errors.
        assert!(parse(&["requests", "--status", "pending", "approve", "x"]).is_err());
        assert!(parse(&["revoke", "0a", "--token", "t"]).is_err());
        assert!(parse(&["download", "0a", "--p12", "--token", "t"]).is_err());
        assert!(parse(&["issue", "--entity", "e", "--profile", "p", "--ttl", "soon"]).is_err());
        assert!(parse(&["find", "--url", "http://ca.example"]).is_err());
    }

    #[test]
    fn a_missing_token_is_a_usage_error_and_debug_hides_the_token() {
        let c = parse(&["find", "--token", "s3cret-t0ken-value"]).unwrap();
        assert!(c.check().is_ok());
        assert!(!format!("{c:?}").contains("s3cret"));
        if std::env::var_os("ACME_CA_TOKEN").is_some() {
            return; // the environment gives one
        }
        let c = parse(&["find"]).unwrap();
        assert_eq!(
            c.check().unwrap_err().kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn serials_for_file_names() {
        assert_eq!(file_serial("0x00AB12").as_deref(), Some("ab12"));
        assert_eq!(file_serial("abc").as_deref(), Some("0abc"));
        assert_eq!(file_serial("../etc/passwd"), None);
        assert_eq!(file_serial(""), None);
    }

    #[test]
    fn expiring_before_takes_a_time_or_a_duration() {
        assert_eq!(
            parse_before("2025-06-30T00:00:00Z").unwrap(),
            "2025-06-30T00:00:00Z"
        );
        let t = parse_before("30d").unwrap();
        assert!(crate::clock::parse_rfc3339(&t).is_some(), "{t}");
        assert!(parse_before("soon").is_err());
    }

    #[test]
    fn urls_must_be_https() {
        assert!(parse_url("https://ca.example:14443").is_ok());
        assert!(parse_url("http://ca.example").is_err());
        assert!(parse_url("https://u:p@ca.example").is_err());
    }
}
