//! challtestsrv: a challenge test server with `pebble-challtestsrv`'s command
//! line and management API (see `acme_tests::challtestsrv`). For tests only:
//! it has no authentication.
//!
//! Flags are Go-style (`-dns01 :8053`, `-dns01=:8053`, `--dns01 :8053` all
//! work); bind address lists are comma separated and an empty list disables
//! that server.

use std::net::{Ipv4Addr, Ipv6Addr};

use acme_tests::challtestsrv::{ChallTestSrv, Config};
use clap::Parser;

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

/// Rewrites `-flag`/`-flag=value` into `--flag`/`--flag=value` for known flags.
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

fn ip<T: std::str::FromStr>(flag: &str, value: &str) -> Result<Option<T>, String> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    value
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| format!("-{flag}: invalid address {value:?}"))
}

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse_from(go_style_args(std::env::args()));
    let config = Config {
        dns01: addrs(&args.dns01),
        http01: addrs(&args.http01),
        https01: addrs(&args.https01),
        tlsalpn01: addrs(&args.tlsalpn01),
        management: Some(args.management.trim().to_string()).filter(|m| !m.is_empty()),
        default_ipv4: ip::<Ipv4Addr>("defaultIPv4", &args.default_ipv4)?,
        default_ipv6: ip::<Ipv6Addr>("defaultIPv6", &args.default_ipv6)?,
        dns_ttl: 0,
        verbose: true,
    };
    let running = ChallTestSrv::start(config).await?;
    if let Some(ip) = running.default_ipv4() {
        println!("challtestsrv - answering A queries with {ip} by default");
    }
    if let Some(ip) = running.default_ipv6() {
        println!("challtestsrv - answering AAAA queries with {ip} by default");
    }
    wait_for_signal().await;
    println!("challtestsrv - shutting down");
    running.shutdown().await;
    Ok(())
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
        let args = Args::parse_from(conv(&["x", "-dns01", "", "-management", "127.0.0.1:1"]));
        assert_eq!(args.dns01, "");
        assert_eq!(args.management, "127.0.0.1:1");
        assert_eq!(args.http01, ":5002");
        assert_eq!(args.default_ipv4, "127.0.0.1");
        let args = Args::parse_from(conv(&["x", "-dnsserver", ":53"]));
        assert_eq!(args.dns01, ":53");
        assert_eq!(addrs(" a:1, ,b:2,"), ["a:1", "b:2"]);
    }
}
