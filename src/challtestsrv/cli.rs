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

use clap::Parser;

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

/// The bind addresses of a comma separated list. A value that is no
/// `HOST:PORT` at all (certbot-ci passes the two characters `""`) is left
/// out with a warning, as pebble-challtestsrv, which only logs the failed
/// listen and keeps its other servers running.
fn addrs(flag: &str, list: &str, warnings: &mut Vec<String>) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .filter(|a| {
            let ok = looks_like_bind_addr(a);
            if !ok {
                warnings.push(format!(
                    "-{flag}: {a:?} is not HOST:PORT; that server is not started"
                ));
            }
            ok
        })
        .map(str::to_string)
        .collect()
}

/// `HOST:PORT`, `:PORT` or `[V6]:PORT`, with a numeric port (the host is
/// resolved when binding).
fn looks_like_bind_addr(a: &str) -> bool {
    match a.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok()
                && !host.contains(['"', '\'', ' ', '/'])
                && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
        }
        None => false,
    }
}

/// A default answer address; an unusable one means no default answer, with
/// a warning (pebble-challtestsrv keeps the string and answers nothing).
fn ip<T: std::str::FromStr>(flag: &str, value: &str, warnings: &mut Vec<String>) -> Option<T> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let parsed = value.parse().ok();
    if parsed.is_none() {
        warnings.push(format!(
            "-{flag}: {value:?} is not an address of that family; no default answer"
        ));
    }
    parsed
}

/// Parses a `pebble-challtestsrv` command line (`args[0]` is the program
/// name, used in help and error messages) into a server [`Config`] with
/// `verbose` set, as the command-line server logs to standard output, and
/// the warnings about values that cannot be used (see [`addrs`], [`ip`]).
///
/// `-help` and `-version` come back as clap errors of kind
/// [`clap::error::ErrorKind::DisplayHelp`] and
/// [`clap::error::ErrorKind::DisplayVersion`];
/// [`clap::Error::exit`] prints them and exits as clap does.
pub fn parse_args<I, T>(args: I) -> Result<(Config, Vec<String>), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let args = Args::try_parse_from(go_style_args(args.into_iter().map(Into::into)))?;
    let mut w = Vec::new();
    let management = addrs("management", &args.management, &mut w)
        .into_iter()
        .next();
    let config = Config {
        dns01: addrs("dns01", &args.dns01, &mut w),
        http01: addrs("http01", &args.http01, &mut w),
        https01: addrs("https01", &args.https01, &mut w),
        tlsalpn01: addrs("tlsalpn01", &args.tlsalpn01, &mut w),
        management,
        default_ipv4: ip::<Ipv4Addr>("defaultIPv4", &args.default_ipv4, &mut w),
        default_ipv6: ip::<Ipv6Addr>("defaultIPv6", &args.default_ipv6, &mut w),
        dns_ttl: 0,
        verbose: true,
    };
    Ok((config, w))
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
    let (config, warnings) = parse_args(args).unwrap_or_else(|e| e.exit());
    for w in warnings {
        println!("challtestsrv - warning: {w}");
    }
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
    use clap::error::ErrorKind;

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
        let mut w = Vec::new();
        assert_eq!(addrs("x", " a:1, ,b:2,", &mut w), ["a:1", "b:2"]);
        assert!(w.is_empty());
    }

    #[test]
    fn parse_args_defaults_are_pebble_challtestsrv_defaults() {
        let (config, warnings) = parse_args(["challtestsrv"]).unwrap();
        assert!(warnings.is_empty());
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
        .unwrap()
        .0;
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
        let (config, _) = parse_args(["challtestsrv", "-management", ""]).unwrap();
        assert_eq!(config.management, None);
    }

    #[test]
    fn parse_args_errors_help_and_version() {
        let kind = |args: &[&str]| parse_args(args.iter().copied()).unwrap_err().kind();
        assert_eq!(kind(&["x", "-help"]), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["x", "-h"]), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["x", "-version"]), ErrorKind::DisplayVersion);
        assert_eq!(kind(&["x", "-bogus"]), ErrorKind::UnknownArgument);
    }

    /// certbot-ci passes the two characters `""` to several flags: those
    /// servers are left out with a warning and the rest still start.
    #[test]
    fn unusable_values_are_warnings_not_errors() {
        let (config, warnings) = parse_args([
            "x",
            "-defaultIPv6",
            "\"\"",
            "-http01",
            "\"\"",
            "-https01",
            "\"\"",
            "-tlsalpn01",
            "\"\"",
            "-defaultIPv4",
            "not-an-ip",
            "-dns01",
            ":8053,nonsense,[::1]:8053",
        ])
        .unwrap();
        assert_eq!(config.default_ipv6, None);
        assert_eq!(config.default_ipv4, None);
        assert!(config.http01.is_empty() && config.https01.is_empty());
        assert!(config.tlsalpn01.is_empty());
        assert_eq!(config.dns01, [":8053", "[::1]:8053"]);
        assert_eq!(config.management.as_deref(), Some(":8055"));
        assert_eq!(warnings.len(), 6, "{warnings:?}");
        assert!(warnings[0].contains("-dns01"), "{warnings:?}");
        // An IPv4 address is not a default AAAA answer.
        let (config, warnings) = parse_args(["x", "-defaultIPv6", "127.0.0.1"]).unwrap();
        assert_eq!(config.default_ipv6, None);
        assert_eq!(warnings.len(), 1);
        assert!(looks_like_bind_addr("localhost:1") && looks_like_bind_addr("[::1]:2"));
        assert!(!looks_like_bind_addr("::1:2") && !looks_like_bind_addr("\"\""));
    }
}
