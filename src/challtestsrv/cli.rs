//! `pebble-challtestsrv`'s command line, shared by `acme-ca challtestsrv` and
//! acme-tests' `challtestsrv` binary.
//!
//! Flags are Go-style (`-dns01 :8053`, `-dns01=:8053` and `--dns01 :8053`
//! all work): `-http01` (default `:5002`), `-https01` (`:5003`), `-dns01`
//! (alias `-dnsserver`, `:8053`), `-tlsalpn01` (`:5001`), `-management`
//! (`:8055`), `-defaultIPv4` (`127.0.0.1`), `-defaultIPv6` (`::1`), `-help`
//! and `-version`. Bind address lists are comma separated and an empty list
//! disables that server; an empty default address means no default answer.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use super::{ChallTestSrv, Config};

/// Flag names, to turn Go's single-dash flags into clap's double-dash ones.
const FLAGS: &[&str] = &[
    "http01",
    "https01",
    "dns01",
    "dnsserver",
    "tlsalpn01",
    "management",
    "defaultIPv4",
    "defaultIPv6",
    "help",
    "version",
];

#[derive(Parser, Debug)]
#[command(
    name = "challtestsrv",
    version,
    about = "ACME challenge test server, compatible with pebble-challtestsrv (TEST USE ONLY)"
)]
struct Args {
    /// Comma separated bind addresses/ports for HTTP-01 challenges. Set empty to disable.
    #[arg(long = "http01", default_value = ":5002", value_name = "ADDRS")]
    http01: String,
    /// Comma separated bind addresses/ports for HTTPS HTTP-01 challenges. Set empty to disable.
    #[arg(long = "https01", default_value = ":5003", value_name = "ADDRS")]
    https01: String,
    /// Comma separated bind addresses/ports for DNS-01 challenges and fake DNS data (UDP and TCP). Set empty to disable.
    #[arg(
        long = "dns01",
        alias = "dnsserver",
        default_value = ":8053",
        value_name = "ADDRS"
    )]
    dns01: String,
    /// Comma separated bind addresses/ports for TLS-ALPN-01 challenges. Set empty to disable.
    #[arg(long = "tlsalpn01", default_value = ":5001", value_name = "ADDRS")]
    tlsalpn01: String,
    /// Bind address/port for the management HTTP interface. Set empty to disable.
    #[arg(long = "management", default_value = ":8055", value_name = "ADDR")]
    management: String,
    /// Default IPv4 address for mock DNS responses to A queries (empty: none).
    #[arg(long = "defaultIPv4", default_value = "127.0.0.1", value_name = "IP")]
    default_ipv4: String,
    /// Default IPv6 address for mock DNS responses to AAAA queries (empty: none).
    #[arg(long = "defaultIPv6", default_value = "::1", value_name = "IP")]
    default_ipv6: String,
}

/// Rewrites `-flag`/`-flag=value` into `--flag`/`--flag=value` for known
/// flags (and `-h` into `--help`); the first argument is the program name.
fn go_style_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || rest {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            rest = true;
            out.push(arg);
            continue;
        }
        let converted = arg
            .strip_prefix('-')
            .filter(|a| !a.starts_with('-'))
            .and_then(|a| {
                let name = a.split('=').next().unwrap_or(a);
                if FLAGS.contains(&name) {
                    Some(format!("--{a}"))
                } else if name == "h" {
                    Some("--help".to_string())
                } else {
                    None
                }
            });
        out.push(converted.unwrap_or(arg));
    }
    out
}

fn addrs(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

fn ip<T: std::str::FromStr>(flag: &str, value: &str) -> Result<Option<T>, clap::Error> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    value.trim().parse().map(Some).map_err(|_| {
        clap::Error::raw(
            ErrorKind::ValueValidation,
            format!("-{flag}: invalid address {value:?}\n"),
        )
        .with_cmd(&Args::command())
    })
}

/// Parses a `pebble-challtestsrv` command line (`args[0]` is the program
/// name, used in help and error messages) into a server [`Config`] with
/// `verbose` set, as the command-line server logs to standard output.
///
/// `-help` and `-version` come back as clap errors of kind
/// [`ErrorKind::DisplayHelp`] and [`ErrorKind::DisplayVersion`];
/// [`clap::Error::exit`] prints them and exits as clap does.
pub fn parse_args<I, T>(args: I) -> Result<Config, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let args = Args::try_parse_from(go_style_args(args.into_iter().map(Into::into)))?;
    Ok(Config {
        dns01: addrs(&args.dns01),
        http01: addrs(&args.http01),
        https01: addrs(&args.https01),
        tlsalpn01: addrs(&args.tlsalpn01),
        management: Some(args.management.trim().to_string()).filter(|m| !m.is_empty()),
        default_ipv4: ip::<Ipv4Addr>("defaultIPv4", &args.default_ipv4)?,
        default_ipv6: ip::<Ipv6Addr>("defaultIPv6", &args.default_ipv6)?,
        dns_ttl: 0,
        verbose: true,
    })
}

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Starts the servers of `config` and runs them until `shutdown` completes,
/// then stops them. Logs to standard output like `pebble-challtestsrv`.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let running = ChallTestSrv::start(config)
        .await
        .map_err(|e| format!("cannot start challtestsrv: {e}"))?;
    if let Some(ip) = running.default_ipv4() {
        println!("challtestsrv - answering A queries with {ip} by default");
    }
    if let Some(ip) = running.default_ipv6() {
        println!("challtestsrv - answering AAAA queries with {ip} by default");
    }
    shutdown.await;
    println!("challtestsrv - shutting down");
    running.shutdown().await;
    Ok(())
}

/// The command-line server inside a Tokio runtime: parses `args` (see
/// [`parse_args`]; on `-help`, `-version` or a bad flag it prints and exits
/// the process as clap does), then serves until SIGINT or SIGTERM.
pub async fn run<I, T>(args: I) -> Result<(), String>
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let config = parse_args(args).unwrap_or_else(|e| e.exit());
    serve(config, wait_for_signal()).await
}

/// A whole `main` for the command-line server: builds a Tokio runtime and
/// calls [`run`]; errors go to standard error, prefixed with `challtestsrv:`.
pub fn main_from_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("challtestsrv: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("challtestsrv: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(args: &[&str]) -> Vec<String> {
        go_style_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn go_style_flags() {
        assert_eq!(
            conv(&[
                "x",
                "-dns01",
                "",
                "-http01=:1",
                "--https01",
                ":2",
                "-defaultIPv6",
                "",
                "-h"
            ]),
            [
                "x",
                "--dns01",
                "",
                "--http01=:1",
                "--https01",
                ":2",
                "--defaultIPv6",
                "",
                "--help"
            ]
        );
        // Unknown flags and everything after `--` are left alone.
        assert_eq!(
            conv(&["x", "-bogus", "--", "-dns01"]),
            ["x", "-bogus", "--", "-dns01"]
        );
        let args = Args::parse_from(conv(&["x", "-dns01", "", "-management", "127.0.0.1:1"]));
        assert_eq!(args.dns01, "");
        assert_eq!(args.management, "127.0.0.1:1");
        assert_eq!(args.http01, ":5002");
        assert_eq!(args.default_ipv4, "127.0.0.1");
        let args = Args::parse_from(conv(&["x", "-dnsserver", ":53"]));
        assert_eq!(args.dns01, ":53");
        assert_eq!(addrs(" a:1, ,b:2,"), ["a:1", "b:2"]);
    }

    #[test]
    fn parse_args_defaults_are_pebble_challtestsrv_defaults() {
        let config = parse_args(["challtestsrv"]).unwrap();
        assert_eq!(
            config,
            Config {
                verbose: true,
                ..Config::default()
            }
        );
    }

    #[test]
    fn parse_args_go_style_flags_to_config() {
        let config = parse_args([
            "challtestsrv",
            "-dns01",
            "127.0.0.1:8053,[::1]:8053",
            "-http01",
            "",
            "-https01=",
            "-tlsalpn01=127.0.0.1:5001",
            "--management",
            "127.0.0.1:8055",
            "-defaultIPv4",
            "10.0.0.1",
            "-defaultIPv6",
            "",
        ])
        .unwrap();
        assert_eq!(
            config,
            Config {
                dns01: vec!["127.0.0.1:8053".into(), "[::1]:8053".into()],
                http01: vec![],
                https01: vec![],
                tlsalpn01: vec!["127.0.0.1:5001".into()],
                management: Some("127.0.0.1:8055".into()),
                default_ipv4: Some(Ipv4Addr::new(10, 0, 0, 1)),
                default_ipv6: None,
                dns_ttl: 0,
                verbose: true,
            }
        );
        // An empty management address disables the management server.
        let config = parse_args(["challtestsrv", "-management", ""]).unwrap();
        assert_eq!(config.management, None);
    }

    #[test]
    fn parse_args_errors_help_and_version() {
        let kind = |args: &[&str]| parse_args(args.iter().copied()).unwrap_err().kind();
        assert_eq!(kind(&["x", "-help"]), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["x", "-h"]), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["x", "-version"]), ErrorKind::DisplayVersion);
        assert_eq!(kind(&["x", "-bogus"]), ErrorKind::UnknownArgument);
        assert_eq!(
            kind(&["x", "-defaultIPv4", "not-an-ip"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["x", "-defaultIPv6", "127.0.0.1"]),
            ErrorKind::ValueValidation
        );
    }
}
