//! The `acme-ca` binary: command line → config → tracing → bound listener →
//! `Server::run` until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use acme_ca::config::{Config, LogFormat};
use acme_ca::server::{default_base_url, Server};

mod admin;

/// mimalloc instead of glibc's allocator: about 4 % less CPU per order at
/// concurrency 1 and 32, with the resident memory no higher
/// (docs/DESIGN.md, "Memory allocator"; docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "acme-ca",
    version,
    about = "An ACME (RFC 8555) certificate authority"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ACME server (the default).
    Serve(ServeArgs),
    /// Run as a drop-in for Pebble (Let's Encrypt's test server), with its
    /// Go-style flags: -config FILE, -dnsserver HOST:PORT, -strict,
    /// -version (TEST USE ONLY; see docs/PEBBLE.md).
    #[command(disable_help_flag = true)]
    Pebble {
        /// Pebble's flags.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a pebble-challtestsrv-compatible challenge test server, with its
    /// Go-style flags (TEST USE ONLY; see `acme-ca challtestsrv -help`).
    #[command(disable_help_flag = true)]
    Challtestsrv {
        /// pebble-challtestsrv flags: -dns01, -http01, -https01, -tlsalpn01,
        /// -management, -defaultIPv4, -defaultIPv6.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Client of the operator service's REST API ([service]; see
    /// `acme-ca profiles --help`).
    #[command(flatten)]
    Service(Box<acme_ca::cli::Command>),
    /// Check a configuration file as `acme-ca serve --config FILE` would
    /// before starting; print `FILE: ok`, or the error, and exit 0 or 1.
    CheckConfig(admin::CheckConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(admin::CompletionsArgs),
    /// Print the man page (roff), or write one page per command with --out.
    Man(admin::ManArgs),
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// TOML configuration file (see docs/CONFIG.md).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Address of the HTTPS listener (overrides server.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory for the CA and the database (overrides server.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Accept every challenge without validating it (development only).
    #[arg(long)]
    always_valid: bool,
    /// DNS server of the validation authority, HOST:PORT (repeatable;
    /// overrides validation.dns_servers).
    #[arg(long = "dns-server", value_name = "HOST:PORT")]
    dns_servers: Vec<SocketAddr>,
    /// Address of the plain-HTTP status listener for CRLs, OCSP and the
    /// issuer certificate (overrides status.listen).
    #[arg(long)]
    status_listen: Option<SocketAddr>,
    /// Log lines as text or one JSON object per line (overrides
    /// log.format).
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

fn load_config(args: &ServeArgs) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.server.data_dir = dir.clone();
    }
    if args.always_valid {
        config.validation.always_valid = true;
    }
    if !args.dns_servers.is_empty() {
        config.validation.dns_servers = args.dns_servers.clone();
    }
    if let Some(addr) = args.status_listen {
        config.status.listen = addr;
    }
    if let Some(format) = args.log_format {
        config.log.format = format;
    }
    config.apply_env(|k| std::env::var(k).ok())?;
    config.validate()?;
    Ok(config)
}

async fn serve(config: Config) -> Result<(), String> {
    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = Server::build(&config, addr)
        .await
        .map_err(|e| format!("cannot start: {}", e.cause()))?;
    let base = config
        .server
        .external_url
        .clone()
        .unwrap_or_else(|| default_base_url(addr));
    println!("acme-ca: directory {base}/directory");
    println!("acme-ca: root-ca {}", server.root_pem_path.display());
    for line in server.listener_lines() {
        println!("acme-ca: {line}");
    }
    if config.validation.always_valid {
        println!(
            "acme-ca: WARNING: always-valid mode: every challenge is accepted without any validation and CAA is not checked; never let anyone trust this CA"
        );
    }
    println!("acme-ca: ready");
    tracing::info!(%addr, "listening");
    server
        .run(listener, acme_ca::server::shutdown_signal())
        .await;
    Ok(())
}

/// Log lines to standard error, filtered by RUST_LOG (default
/// `default_filter`): text, coloured only on a terminal, or JSON lines.
fn init_logging(default_filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The service client's output is its own: no log lines unless RUST_LOG
    // asks for them.
    let default_filter = match cli.command {
        Some(Command::Service(_)) => "off",
        _ => "info",
    };
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    // serve reads its configuration first: it says how to log.
    let serve_config = match &command {
        Command::Serve(args) => match load_config(args) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("acme-ca: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let format = serve_config
        .as_ref()
        .map_or(LogFormat::Text, |c| c.log.format);
    init_logging(default_filter, format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("acme-ca: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve(_) => match serve_config {
                Some(config) => serve(config).await,
                None => Err("no configuration".to_owned()),
            },
            Command::Pebble { args } => acme_ca::pebble::run(args).await,
            Command::Challtestsrv { args } => {
                let program = "acme-ca challtestsrv".to_string();
                acme_ca::challtestsrv::cli::run(std::iter::once(program).chain(args)).await
            }
            Command::Service(command) => acme_ca::cli::run(*command).await,
            Command::CheckConfig(args) => admin::check_config(&args),
            Command::Completions(args) => admin::completions(&args),
            Command::Man(args) => admin::man(&args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acme-ca: {e}");
            ExitCode::FAILURE
        }
    }
}
