//! The operator commands that start no server, run as the built binary:
//! `acme-ca check-config FILE` (the same loading and validation as
//! `acme-ca serve --config FILE`), `acme-ca completions SHELL` and
//! `acme-ca man`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the binary with `args`, with Pebble's environment variables cleared
/// (`check-config` applies them, as `serve` does).
fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acme-ca"));
    cmd.args(args).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("PEBBLE_") {
            cmd.env_remove(name);
        }
    }
    cmd.output().expect("run acme-ca")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `body` as `name` in `dir`.
fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// Runs `check-config` on `body`; returns (exit code, stdout, stderr).
fn check(body: &str) -> (Option<i32>, String, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "acme-ca.toml", body);
    let out = run(&["check-config", path.to_str().unwrap()]);
    (
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr),
        path,
        dir,
    )
}

/// 32 bytes, base64: a well-formed key-encryption key.
const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[test]
fn a_good_file_is_ok_and_nothing_is_created() {
    let (code, stdout, stderr, path, dir) = check(&format!(
        "[server]\nlisten = \"127.0.0.1:14000\"\ndata_dir = \"{}\"\n\n[service]\nkek = \"{KEK}\"\n",
        "data-that-must-not-appear"
    ));
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout, format!("{}: ok\n", path.display()));
    assert_eq!(stderr, "");
    assert!(
        !dir.path().join("data-that-must-not-appear").exists()
            && !Path::new("data-that-must-not-appear").exists(),
        "check-config created the data directory"
    );
}

#[test]
fn the_shipped_package_config_and_the_documented_example_are_ok() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["scripts/deb/acme-ca.toml", "docs/acme-ca.example.toml"] {
        let path = root.join(file);
        let out = run(&["check-config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{}: ok\n", path.display()));
    }
}

#[test]
fn an_unknown_field_is_named_with_its_line_on_one_line() {
    let (code, stdout, stderr, path, _dir) =
        check("# comment\n[server]\nlisten = \"127.0.0.1:14000\"\nlisten_adress = \"x\"\n");
    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.starts_with(&format!(
            "acme-ca: config {}: line 4, column 1",
            path.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `listen_adress`"), "{stderr}");
    // The valid fields are listed.
    assert!(stderr.contains("`data_dir`"), "{stderr}");
}

#[test]
fn a_bad_value_is_named_with_its_field_and_line() {
    let (code, _, stderr, _, _dir) = check("[validation]\nconcurrency = \"lots\"\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains("line 2, column 15, field `concurrency`"),
        "{stderr}"
    );
}

#[test]
fn a_cross_field_rule_is_reported_as_serve_reports_it() {
    let (code, _, stderr, _, _dir) = check("[acme]\ndefault_profile = \"nope\"\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with("acme-ca: acme.default_profile \"nope\" is not a defined profile"),
        "{stderr}"
    );
}

#[test]
fn a_bad_kek_is_refused_naming_the_problem() {
    // Too short: 16 bytes.
    let (code, _, stderr, _, _dir) = check("[service]\nkek = \"AAECAwQFBgcICQoLDA0ODw==\"\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains(
            "service.kek: the key-encryption key must decode to exactly 32 bytes, got 16"
        ),
        "{stderr}"
    );
    // Not base64; the key is never echoed.
    let secret = "not*base64*secret*value*0123456789abcdef12";
    let (code, _, stderr, _, _dir) = check(&format!(
        "[service]\nenabled = true\nkek = \"{secret}\"\n\n[[service.tokens]]\nname = \"root\"\ntoken = \"admin-token-0123456789abcdef\"\nrole = \"admin\"\n"
    ));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("service.kek: the key-encryption key is not valid base64"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "{stderr}");
}

#[test]
fn the_environment_applies_as_for_serve() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "c.toml", "");
    let out = Command::new(env!("CARGO_BIN_EXE_acme-ca"))
        .args(["check-config", path.to_str().unwrap()])
        .env("PEBBLE_CHAIN_LENGTH", "9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("PEBBLE_CHAIN_LENGTH"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_file_is_named() {
    let out = run(&["check-config", "/nonexistent/acme-ca.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("acme-ca: cannot read config /nonexistent/acme-ca.toml"),
        "{stderr}"
    );
}

#[test]
fn completions_for_every_shell() {
    let bash = run(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0), "{}", text(&bash.stderr));
    let script = text(&bash.stdout);
    assert!(script.contains("complete -F"), "{script}");
    for word in ["serve", "check-config", "completions", "man", "issue"] {
        assert!(script.contains(word), "bash completions lack {word}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("check-config"),
            "{shell} completions lack check-config"
        );
    }
    let bad = run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "clap's usage error");
}

#[test]
fn man_prints_a_roff_page_and_writes_one_per_command() {
    let out = run(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq"),
        "roff preamble: {page:.80}"
    );
    assert!(page.contains(".TH acme-ca 1"), "{page}");
    assert!(
        page.contains("check\\-config"),
        "subcommands listed: {page}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = run(&["man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for page in ["acme-ca.1", "acme-ca-serve.1", "acme-ca-check-config.1"] {
        let body = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(body.contains(".TH"), "{page}");
    }
}
