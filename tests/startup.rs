//! `acme-ca serve` start-up failures: each ends the process with one line
//! on standard error that names the cause and what to do, even with
//! logging off, and a bad configuration creates nothing.

use std::net::TcpListener;
use std::process::{Command, Output};

fn serve(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acme-ca"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run acme-ca")
}

/// The last line of standard error, after checking the exit status.
fn failure_line(out: &Output) -> String {
    assert!(!out.status.success(), "acme-ca started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(line.starts_with("acme-ca: "), "{stderr}");
    assert!(!line.contains("internal server error"), "{stderr}");
    line
}

#[test]
fn a_busy_status_port_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = dir.path().join("data");
    let out = serve(&[
        "--status-listen",
        &addr,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let line = failure_line(&out);
    assert!(line.contains(&addr), "{line}");
    assert!(line.contains("status.listen"), "{line}");
    assert!(line.contains("choose another address"), "{line}");
}

#[test]
fn a_data_dir_that_is_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = serve(&[
        "--status-listen",
        "127.0.0.1:0",
        "--data-dir",
        file.to_str().unwrap(),
    ]);
    let line = failure_line(&out);
    assert!(line.contains("is not a directory"), "{line}");
    assert!(line.contains("data_dir"), "{line}");
}

#[test]
fn a_bad_kek_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("acme-ca.toml");
    std::fs::write(
        &config,
        "[service]\nenabled = true\nlisten = \"127.0.0.1:0\"\nkek = \"c2hvcnQ=\"\n\
         [[service.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef0\"\nrole = \"admin\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = serve(&[
        "-c",
        config.to_str().unwrap(),
        "--status-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let line = failure_line(&out);
    assert!(line.contains("service.kek"), "{line}");
    assert!(line.contains("32 bytes"), "{line}");
    assert!(!data.exists(), "the data directory was created");
}

/// Starts `acme-ca serve` on `data` and reads its output until "ready";
/// returns the process and whether it got there.
fn start(data: &std::path::Path) -> (std::process::Child, bool) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_acme-ca"))
        .args(["serve", "--always-valid", "--listen", "127.0.0.1:0"])
        .args(["--status-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run acme-ca");
    let stdout = child.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "acme-ca: ready");
    (child, ready)
}

/// A second server on the same data directory is refused while the first
/// runs (their caches would diverge).
#[test]
fn a_data_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut first, ready) = start(&data);
    let second = serve(&[
        "--always-valid",
        "--status-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let _ = first.kill();
    let _ = first.wait();
    assert!(ready, "the first server did not start");
    let line = failure_line(&second);
    assert!(line.contains("another acme-ca is running"), "{line}");
    // Once the first is gone, the directory is free again.
    let (mut third, ready) = start(&data);
    let _ = third.kill();
    let _ = third.wait();
    assert!(ready, "the data directory stayed locked");
}
