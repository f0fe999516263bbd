//! The operator service's command-line client against a real server: the
//! built `acme-ca` binary serves (`acme-ca serve` with `[service]`), and the
//! same binary is run as the client (`acme-ca issue`, `find`, `download`…)
//! over HTTPS, trusting the printed root with `--ca-file`.
//!
//! The OpenSSL checks of downloaded files are skipped (with a note) when no
//! `openssl` command is installed; everything else always runs.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const ADMIN: &str = "admin-token-0123456789abcdef";
/// Agents ann and art, requesters alice and bob.
const ANN: &str = "ann-agent-token-0123456789";
const ART: &str = "art-agent-token-0123456789";
const ALICE: &str = "alice-token-0123456789abcd";
const BOB: &str = "bob-token-0123456789abcdef";

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// 32 random bytes, base64: the key-encryption key.
fn random_kek() -> String {
    use base64::Engine;
    let mut kek = [0u8; 32];
    aws_lc_rs::rand::fill(&mut kek).unwrap();
    base64::engine::general_purpose::STANDARD.encode(kek)
}

/// A running `acme-ca serve`, killed when dropped (also when a test
/// panics half way).
struct Server {
    child: Child,
    url: String,
    ca_file: PathBuf,
    dir: tempfile::TempDir,
    /// Where the client runs (downloads land here).
    work: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client run gave.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "the command failed:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Exit status 1 and exactly one line on stderr, which is returned.
    fn fails(&self) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "expected exit status 1:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "expected one line on stderr: {:?}",
            self.stderr
        );
        assert!(self.stderr.starts_with("acme-ca: "), "{:?}", self.stderr);
        self.stderr.trim_end()
    }
}

impl Server {
    fn start() -> Server {
        Self::start_with("")
    }

    /// Starts a server with `extra` appended to its configuration (for
    /// `[service.profiles.*]`). Ports are picked free, then bound by the
    /// server; a lost race is retried.
    fn start_with(extra: &str) -> Server {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(extra) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("the server did not start: {last}");
    }

    fn try_start(extra: &str) -> Result<Server, String> {
        let dir = tempfile::tempdir().unwrap();
        let service_port = free_port();
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:{acme}"

[status]
listen = "127.0.0.1:{status}"

[validation]
always_valid = true

[acme]
# The tests' names are under "example" (RFC 2606).
allowed_special_use_domains = ["example"]

[service]
enabled = true
listen = "127.0.0.1:{service_port}"
kek = "{kek}"

[[service.tokens]]
name = "root"
token = "{ADMIN}"
role = "admin"

[[service.tokens]]
name = "ann"
token = "{ANN}"
role = "agent"

[[service.tokens]]
name = "art"
token = "{ART}"
role = "agent"

[[service.tokens]]
name = "alice"
token = "{ALICE}"
role = "requester"

[[service.tokens]]
name = "bob"
token = "{BOB}"
role = "requester"
{extra}
"#,
            acme = free_port(),
            status = free_port(),
            kek = random_kek(),
        );
        let config_path = dir.path().join("acme-ca.toml");
        std::fs::write(&config_path, config).unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_acme-ca"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        // Lines go through a thread, which keeps draining stdout after
        // "ready" so that the server never blocks on it.
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            child,
            url: format!("https://127.0.0.1:{service_port}"),
            ca_file: PathBuf::new(),
            dir,
            work,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(path) = line.strip_prefix("acme-ca: root-ca ") {
                        server.ca_file = PathBuf::from(path);
                    }
                    if line == "acme-ca: ready" {
                        break;
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "no \"acme-ca: ready\"; its log: {}",
                        server.log_tail()
                    ))
                }
            }
        }
        assert!(
            server.ca_file.is_file(),
            "no root-ca line before ready: {}",
            server.ca_file.display()
        );
        Ok(server)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Runs `acme-ca ARGS --url … --ca-file … --token TOKEN`.
    fn cli(&self, token: &str, args: &[&str]) -> Out {
        let ca = self.ca_file.to_str().unwrap().to_owned();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--url", &self.url, "--ca-file", &ca, "--token", token]);
        run(&self.work, &all)
    }
}

/// Runs the client with `args` and no ACME_CA_* variables.
fn run(dir: &Path, args: &[&str]) -> Out {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_acme-ca"))
        .args(args)
        .current_dir(dir)
        .env_remove("ACME_CA_URL")
        .env_remove("ACME_CA_TOKEN")
        .env_remove("ACME_CA_CA_FILE")
        .env_remove("ACME_CA_P12_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The value of a `key: value` line.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Issues a certificate of the `server` profile as alice; its serial.
fn issue_server_cert(s: &Server, name: &str) -> String {
    let out = s.cli(
        ALICE,
        &[
            "issue",
            "--entity",
            "web-1",
            "--profile",
            "server",
            "--name",
            name,
        ],
    );
    let text = out.ok();
    assert_eq!(field(text, "status"), Some("issued"), "{text}");
    field(text, "serial").expect("a serial").to_owned()
}

/// The entries of a zip the service wrote (all stored, not compressed),
/// read with the `zip` crate.
fn unzip_stored(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read as _;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
    let out: Vec<(String, Vec<u8>)> = (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            assert_eq!(
                f.compression(),
                zip::CompressionMethod::Stored,
                "entries are stored"
            );
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), data)
        })
        .collect();
    assert!(!out.is_empty(), "an empty zip");
    out
}

fn have_openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: no openssl command; the OpenSSL checks are skipped");
    }
    found
}

fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let out = openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn issue_find_show_and_download_zip_and_p12() {
    let s = Server::start();
    // Readable output: key: value lines with the serial.
    let serial = issue_server_cert(&s, "www.cli.example");
    assert!(serial.len() >= 16 && serial.bytes().all(|b| b.is_ascii_hexdigit()));

    // --json: the server's JSON.
    let v = s
        .cli(
            ALICE,
            &[
                "issue",
                "--entity",
                "web-2",
                "--profile",
                "server",
                "--name",
                "api.cli.example",
                "--key-type",
                "rsa",
                "--ttl",
                "30d",
                "--json",
            ],
        )
        .json();
    let serial2 = v["serial_number"]
        .as_str()
        .expect("serial_number")
        .to_owned();
    assert_eq!(v["status"], "issued");
    assert_eq!(v["key_type"], "rsa");
    assert_eq!(v["key_size"], 2048);
    assert_eq!(v["ttl"], 30 * 86400);

    // find by common name: a table with a header and this certificate.
    let out = s.cli(ALICE, &["find", "--cn", "www.cli.example"]);
    let table = out.ok();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("SERIAL") && lines[0].contains("COMMON NAME"),
        "{table}"
    );
    assert!(lines[0].contains("NOT AFTER") && lines[0].contains("PROFILE"));
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[1].starts_with(&serial), "{table}");
    assert!(lines[1].contains("www.cli.example") && lines[1].contains("valid"));
    assert!(lines[1].contains("web-1") && lines[1].contains("server"));
    // The STATUS column starts where its header does.
    let col = lines[0].find("STATUS").unwrap();
    assert_eq!(&lines[1][col..col + 5], "valid", "{table}");

    // find by serial (any case), and as JSON.
    let v = s
        .cli(
            ALICE,
            &["find", "--serial", &serial2.to_uppercase(), "--json"],
        )
        .json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["certificates"][0]["serial"], serial2.as_str());
    assert_eq!(v["certificates"][0]["common_name"], "api.cli.example");
    // Both, and paging.
    let v = s.cli(ALICE, &["find", "--json", "--limit", "1"]).json();
    assert_eq!(v["total"], 2);
    assert_eq!(v["certificates"].as_array().unwrap().len(), 1);
    let out = s.cli(ALICE, &["find", "--limit", "1"]);
    assert!(out.ok().contains("next: --offset 1"), "{}", out.stdout);
    let out = s.cli(ALICE, &["find", "--status", "revoked"]);
    assert_eq!(out.ok(), "no certificates\n");

    // show.
    let out = s.cli(ALICE, &["show", &serial]);
    let text = out.ok();
    assert_eq!(field(text, "serial"), Some(serial.as_str()));
    assert_eq!(field(text, "common name"), Some("www.cli.example"));
    assert_eq!(field(text, "status"), Some("valid"));
    assert_eq!(field(text, "entity"), Some("web-1"));
    assert_eq!(field(text, "key archived"), Some("yes"));
    let pem = s.cli(ALICE, &["show", &serial, "--pem"]);
    assert!(pem.ok().starts_with("-----BEGIN CERTIFICATE-----\n"));

    // download: SERIAL.zip by default, with ca.pem, cert.pem and key.pem.
    let out = s.cli(ALICE, &["download", &serial]);
    assert!(out.ok().starts_with("wrote "), "{}", out.stdout);
    let zip_path = s.work.join(format!("{serial}.zip"));
    let zip = std::fs::read(&zip_path).expect("SERIAL.zip written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&zip_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the zip holds a key: owner only");
    }
    let entries = unzip_stored(&zip);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ca.pem", "cert.pem", "key.pem"]);
    let unpacked = s.work.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    for (name, data) in &entries {
        std::fs::write(unpacked.join(name), data).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(unpacked.join("cert.pem")).unwrap(),
        pem.stdout
    );

    // download --p12 --password, to a chosen path.
    let p12 = s.work.join("bundle.p12");
    let out = s.cli(
        ALICE,
        &[
            "download",
            &serial,
            "--p12",
            "--password",
            "correct horse",
            "-o",
            p12.to_str().unwrap(),
        ],
    );
    out.ok();
    assert!(std::fs::metadata(&p12).unwrap().len() > 500);
    // Into a directory: the default name in it.
    let out = s.cli(
        ALICE,
        &[
            "download",
            &serial2,
            "--p12",
            "--password",
            "pw",
            "-o",
            unpacked.to_str().unwrap(),
        ],
    );
    out.ok();
    assert!(unpacked.join(format!("{serial2}.p12")).is_file());
    // The password is never echoed.
    assert!(!out.stdout.contains("pw") && !out.stderr.contains("pw"));

    if !have_openssl() {
        return;
    }
    let verify = openssl_ok(&unpacked, &["verify", "-CAfile", "ca.pem", "cert.pem"]);
    assert!(verify.contains("cert.pem: OK"), "{verify}");
    let cert_pub = openssl_ok(&unpacked, &["x509", "-in", "cert.pem", "-noout", "-pubkey"]);
    let key_pub = openssl_ok(&unpacked, &["pkey", "-in", "key.pem", "-pubout"]);
    assert_eq!(cert_pub, key_pub, "key.pem is the certificate's key");

    // OpenSSL 3 says -noenc, older ones -nodes.
    let p12 = p12.to_str().unwrap();
    let read_p12 = |flag: &str| {
        openssl(
            &unpacked,
            &[
                "pkcs12",
                "-in",
                p12,
                "-passin",
                "pass:correct horse",
                flag,
                "-clcerts",
                "-out",
                "from-p12.pem",
            ],
        )
    };
    let mut out = read_p12("-noenc");
    if !out.status.success() {
        out = read_p12("-nodes");
    }
    assert!(
        out.status.success(),
        "openssl pkcs12: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p12_pem = std::fs::read_to_string(unpacked.join("from-p12.pem")).unwrap();
    assert!(p12_pem.contains("PRIVATE KEY-----") && p12_pem.contains("BEGIN CERTIFICATE"));
    let p12_cert_pub = openssl_ok(
        &unpacked,
        &["x509", "-in", "from-p12.pem", "-noout", "-pubkey"],
    );
    let p12_key_pub = openssl_ok(&unpacked, &["pkey", "-in", "from-p12.pem", "-pubout"]);
    assert_eq!(p12_cert_pub, cert_pub, "the PKCS#12 holds the certificate");
    assert_eq!(p12_key_pub, cert_pub, "and its key");
    // A wrong password is refused by OpenSSL.
    let wrong = openssl(
        &unpacked,
        &["pkcs12", "-in", p12, "-passin", "pass:wrong", "-nokeys"],
    );
    assert!(!wrong.status.success());
}

#[test]
fn revoke_then_show_says_revoked_and_renew_waits_for_its_window() {
    let s = Server::start();
    let serial = issue_server_cert(&s, "old.cli.example");

    // A fresh 90-day certificate: the window opens 30 days before expiry.
    let out = s.cli(ALICE, &["renew", &serial]);
    let line = out.fails();
    assert!(line.starts_with("acme-ca: 409 conflict: "), "{line}");
    assert!(line.contains("renewal window opens at"), "{line}");
    assert!(out.stdout.is_empty());

    // Requesters may not revoke; agents may, with any spelling.
    let line = s
        .cli(ALICE, &["revoke", &serial, "-r", "Key Compromise"])
        .fails()
        .to_owned();
    assert!(line.contains("403"), "{line}");
    let out = s.cli(ANN, &["revoke", &serial, "-r", "Key Compromise"]);
    let text = out.ok();
    assert_eq!(field(text, "status"), Some("revoked"), "{text}");
    assert_eq!(field(text, "revocation reason"), Some("keyCompromise"));

    let out = s.cli(ALICE, &["show", &serial]);
    let text = out.ok();
    assert_eq!(field(text, "status"), Some("revoked"), "{text}");
    assert!(field(text, "revoked at").is_some(), "{text}");
    let v = s.cli(ALICE, &["show", &serial, "--json"]).json();
    assert_eq!(v["status"], "revoked");
    assert_eq!(v["revocation_reason"], "keyCompromise");

    let out = s.cli(ANN, &["find", "--status", "revoked"]);
    assert!(out.ok().contains(&serial));
    // Twice: a conflict. The long option works too.
    let line = s
        .cli(ANN, &["revoke", &serial, "--reason", "superseded"])
        .fails()
        .to_owned();
    assert!(line.contains("409"), "{line}");
    // An unknown reason: the server's 400.
    let serial2 = issue_server_cert(&s, "other.cli.example");
    let line = s
        .cli(ANN, &["revoke", &serial2, "-r", "bored"])
        .fails()
        .to_owned();
    assert!(line.contains("400") && line.contains("bored"), "{line}");
    // A revoked certificate cannot be renewed either.
    let line = s.cli(ALICE, &["renew", &serial]).fails().to_owned();
    assert!(line.contains("409") && line.contains("revoked"), "{line}");
}

#[test]
fn manual_profile_waits_for_an_agent_who_approves_or_rejects() {
    let s = Server::start();
    // The default "device" profile needs a common name…
    let line = s
        .cli(
            ALICE,
            &["issue", "--entity", "dev-7", "--profile", "device"],
        )
        .fails()
        .to_owned();
    assert!(line.contains("400"), "{line}");
    // …and waits for an agent.
    let out = s.cli(
        ALICE,
        &[
            "issue",
            "--entity",
            "dev-7",
            "--profile",
            "device",
            "--cn",
            "device-7",
        ],
    );
    let text = out.ok();
    assert_eq!(field(text, "status"), Some("pending"), "{text}");
    assert!(field(text, "serial").is_none(), "{text}");
    let id = field(text, "id").unwrap().to_owned();
    assert!(
        text.contains(&format!("acme-ca requests approve {id}")),
        "{text}"
    );
    let v = s
        .cli(
            ALICE,
            &[
                "issue",
                "--entity",
                "dev-8",
                "--profile",
                "device",
                "--cn",
                "device-8",
                "--json",
            ],
        )
        .json();
    assert_eq!(v["status"], "pending");
    assert!(v.get("serial_number").is_none());
    let id2 = v["id"].as_str().unwrap().to_owned();

    // The agent's list of pending requests.
    let out = s.cli(ANN, &["requests", "--status", "pending"]);
    let table = out.ok();
    let header = table.lines().next().unwrap();
    for col in ["ID", "STATUS", "REQUESTER", "PROFILE", "ENTITY", "SERIAL"] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains(&id) && table.contains(&id2) && table.contains("alice"));
    // `requests list` is the same.
    assert_eq!(
        s.cli(ANN, &["requests", "list", "--status", "pending"])
            .ok(),
        table
    );

    // A requester cannot approve.
    let line = s
        .cli(ALICE, &["requests", "approve", &id])
        .fails()
        .to_owned();
    assert!(line.contains("403"), "{line}");

    // The agent approves: issued, with a serial.
    let out = s.cli(ANN, &["requests", "approve", &id]);
    let text = out.ok();
    assert_eq!(field(text, "status"), Some("issued"), "{text}");
    assert_eq!(field(text, "decided by"), Some("ann"));
    let serial = field(text, "serial").expect("a serial").to_owned();
    let out = s.cli(ALICE, &["find", "--cn", "device-7"]);
    assert!(out.ok().contains(&serial));
    // Approving again is a conflict.
    let line = s.cli(ANN, &["requests", "approve", &id]).fails().to_owned();
    assert!(line.contains("409"), "{line}");

    // The other is rejected, with a reason.
    let out = s.cli(
        ART,
        &["requests", "reject", &id2, "--reason", "unknown device"],
    );
    let text = out.ok();
    assert_eq!(field(text, "status"), Some("rejected"), "{text}");
    assert_eq!(field(text, "reason"), Some("unknown device"));
    let out = s.cli(ALICE, &["requests", "show", &id2]);
    assert_eq!(field(out.ok(), "status"), Some("rejected"));
    let out = s.cli(ANN, &["requests", "--status", "pending"]);
    assert_eq!(out.ok(), "no requests\n");
}

#[test]
fn upload_csr_file_with_two_csrs_issues_a_batch() {
    let s = Server::start();
    let mut pem = String::new();
    for name in ["one.batch.example", "two.batch.example"] {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        pem.push_str(&params.serialize_request(&key).unwrap().pem().unwrap());
    }
    let file = s.work.join("two.csr");
    std::fs::write(&file, pem).unwrap();

    let out = s.cli(
        ALICE,
        &[
            "upload-csr",
            "--profile",
            "server",
            "--entity",
            "fleet-1",
            "--batch-name",
            "nightly",
            file.to_str().unwrap(),
        ],
    );
    let text = out.ok();
    let batch = field(text, "batch").expect("a batch id").to_owned();
    assert_eq!(field(text, "requests"), Some("2"), "{text}");
    let issued: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("issued"))
        .collect();
    assert_eq!(issued.len(), 2, "{text}");
    assert!(text.contains("ID") && text.contains("SERIAL"), "{text}");

    let out = s.cli(ALICE, &["batches", &batch]);
    let text = out.ok();
    assert_eq!(field(text, "name"), Some("nightly"), "{text}");
    assert_eq!(field(text, "size"), Some("2"));
    assert_eq!(field(text, "issued"), Some("2"));
    let v = s
        .cli(ALICE, &["requests", "--batch", &batch, "--json"])
        .json();
    assert_eq!(v["total"], 2);
    assert!(v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "issued" && r["kind"] == "csr" && r["serial"].is_string()));
    let out = s.cli(ALICE, &["find", "--cn", "two.batch.example"]);
    assert!(out.ok().contains("fleet-1"));

    // The batch's certificates as one zip: BATCH.zip by default.
    let out = s.cli(ALICE, &["batches", &batch, "--download"]);
    assert!(out.ok().starts_with("wrote "), "{}", out.stdout);
    let entries = unzip_stored(&std::fs::read(s.work.join(format!("{batch}.zip"))).unwrap());
    let mut names: Vec<String> = entries.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    let mut want: Vec<String> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}.pem", r["serial"].as_str().unwrap()))
        .chain(["ca.pem".to_owned()])
        .collect();
    want.sort();
    assert_eq!(names, want);
    // Another requester does not see it.
    let line = s
        .cli(BOB, &["batches", &batch, "--download", "-o", "bob.zip"])
        .fails()
        .to_owned();
    assert!(line.contains("404"), "{line}");
    assert!(!s.work.join("bob.zip").exists());

    // A file without a CSR is refused before anything is sent.
    let bad = s.work.join("not-a-csr.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let out = s.cli(
        ALICE,
        &[
            "upload-csr",
            "--profile",
            "server",
            "--entity",
            "fleet-1",
            bad.to_str().unwrap(),
        ],
    );
    assert!(out.fails().contains("no PEM CERTIFICATE REQUEST"));
}

#[test]
fn key_recovery_needs_two_distinct_agents() {
    // "vault" keys can be downloaded for one second after issuance; later
    // only through a recovery.
    let s = Server::start_with(
        r#"
[service.profiles.vault]
description = "archived keys, recovered by two agents"
required = ["names"]
key_download_window = "1s"
recovery_approvals = 2
"#,
    );
    let out = s.cli(
        ALICE,
        &[
            "issue",
            "--entity",
            "vault-1",
            "--profile",
            "vault",
            "--name",
            "vault.example",
        ],
    );
    let serial = field(out.ok(), "serial").unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(2100));
    // The window has closed: a PKCS#12 (which needs the key) is refused.
    let line = s
        .cli(ALICE, &["download", &serial, "--p12", "--password", "pw"])
        .fails()
        .to_owned();
    assert!(line.contains("409"), "{line}");

    let out = s.cli(ALICE, &["recover", &serial]);
    let text = out.ok();
    assert_eq!(field(text, "status"), Some("pending"), "{text}");
    assert_eq!(field(text, "approvals"), Some("0/2"), "{text}");
    let id = field(text, "id").unwrap().to_owned();

    let out = s.cli(ANN, &["recoveries", "--status", "pending"]);
    let table = out.ok();
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id) && table.contains(&serial) && table.contains("0/2"));

    let line = s
        .cli(ALICE, &["recoveries", "approve", &id])
        .fails()
        .to_owned();
    assert!(line.contains("403"), "{line}");
    let out = s.cli(ANN, &["recoveries", "approve", &id]);
    assert_eq!(field(out.ok(), "status"), Some("pending"));
    assert_eq!(field(&out.stdout, "approvals"), Some("1/2 (ann)"));
    let line = s
        .cli(ANN, &["recoveries", "approve", &id])
        .fails()
        .to_owned();
    assert!(line.contains("409"), "the same agent twice: {line}");
    // Not approved yet: no key.
    let line = s
        .cli(ALICE, &["download", &serial, "--recovery", &id])
        .fails()
        .to_owned();
    assert!(line.contains("409") || line.contains("400"), "{line}");
    let out = s.cli(ART, &["recoveries", "approve", &id]);
    assert_eq!(
        field(out.ok(), "status"),
        Some("approved"),
        "{}",
        out.stdout
    );

    let out = s.cli(
        ALICE,
        &[
            "download",
            &serial,
            "--recovery",
            &id,
            "-o",
            "recovered.zip",
        ],
    );
    out.ok();
    let entries = unzip_stored(&std::fs::read(s.work.join("recovered.zip")).unwrap());
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ca.pem", "cert.pem", "key.pem"]);
    let v = s.cli(ALICE, &["recoveries", "show", &id, "--json"]).json();
    assert_eq!(v["serial"], serial.as_str());
    assert_eq!(v["approvals"], serde_json::json!(["ann", "art"]));

    // Another one, rejected.
    let v = s
        .cli(BOB, &["recover", &serial, "--json"])
        .fails()
        .to_owned();
    assert!(
        v.contains("404"),
        "bob does not see alice's certificate: {v}"
    );
    let id2 = s.cli(ALICE, &["recover", &serial, "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = s.cli(
        ART,
        &["recoveries", "reject", &id2, "--reason", "not today"],
    );
    assert_eq!(field(out.ok(), "status"), Some("rejected"));
    let v = s
        .cli(
            ANN,
            &["recoveries", "list", "--status", "rejected", "--json"],
        )
        .json();
    assert_eq!(v["recoveries"][0]["id"], id2.as_str());
}

#[test]
fn errors_are_one_line_with_the_status_and_never_the_token() {
    let s = Server::start();
    // A bad token: 401, one line, and the token is not echoed.
    let bad = "not-the-token-Zq81mXv0";
    let out = s.cli(bad, &["find"]);
    let line = out.fails();
    assert!(line.contains("401"), "{line}");
    assert!(!out.stderr.contains(bad) && !out.stdout.contains(bad));
    // Nor the good one, on a failure.
    let out = s.cli(
        ALICE,
        &[
            "issue",
            "--entity",
            "e-1",
            "--profile",
            "nope",
            "--name",
            "a.example",
        ],
    );
    let line = out.fails();
    assert!(line.contains("400") && line.contains("nope"), "{line}");
    assert!(!out.stderr.contains(ALICE));
    // Unknown profile by name: 404.
    let line = s.cli(ALICE, &["profiles", "nope"]).fails().to_owned();
    assert!(line.contains("404"), "{line}");
    let line = s.cli(ALICE, &["show", "abcdef"]).fails().to_owned();
    assert!(line.contains("404 not found"), "{line}");

    // The profiles themselves.
    let out = s.cli(ALICE, &["profiles"]);
    let table = out.ok();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table
        .lines()
        .any(|l| l.starts_with("device") && l.contains("manual")));
    assert!(table
        .lines()
        .any(|l| l.starts_with("server") && l.contains("auto")));
    let v = s.cli(ALICE, &["profiles", "device", "--json"]).json();
    assert_eq!(v["approval"], "manual");

    // Without --ca-file the system roots do not know this CA.
    let out = run(&s.work, &["find", "--url", &s.url, "--token", ALICE]);
    let line = out.fails();
    assert!(line.contains("certificate"), "{line}");
    assert!(!out.stderr.contains(ALICE));
    // Nobody listening.
    let url = format!("https://127.0.0.1:{}", free_port());
    let ca = s.ca_file.to_str().unwrap();
    let out = run(
        &s.work,
        &["find", "--url", &url, "--ca-file", ca, "--token", ALICE],
    );
    let line = out.fails();
    assert!(
        line.contains("cannot reach") && line.contains(&url),
        "{line}"
    );

    // Usage errors: clap's status 2.
    let out = run(&s.work, &["find", "--url", &s.url, "--ca-file", ca]);
    assert_eq!(out.code, Some(2), "no token: {}", out.stderr);
    assert!(out.stderr.contains("token"));
    let out = s.cli(ANN, &["revoke", "abcd"]);
    assert_eq!(out.code, Some(2), "no reason: {}", out.stderr);
    let out = s.cli(ALICE, &["download", "abcd", "--p12"]);
    assert_eq!(out.code, Some(2), "no password: {}", out.stderr);
    let out = run(
        &s.work,
        &["find", "--url", "http://127.0.0.1:1", "--token", ALICE],
    );
    assert_eq!(out.code, Some(2), "not https: {}", out.stderr);
    assert!(!out.stderr.contains(ALICE));
    let out = s.cli(ALICE, &["find", "--status", "sleeping"]);
    assert_eq!(out.code, Some(2));
    // The token comes from the environment too.
    let out = Command::new(env!("CARGO_BIN_EXE_acme-ca"))
        .args(["find", "--json"])
        .env("ACME_CA_URL", &s.url)
        .env("ACME_CA_CA_FILE", &s.ca_file)
        .env("ACME_CA_TOKEN", ALICE)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], 0);
}
