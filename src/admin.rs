//! Operator commands of the binary that run no server: `check-config`,
//! `completions` and `man` (issue 14, "run it like a service").
//!
//! This module belongs to the `acme-ca` binary (declared in main.rs), not to
//! the library: `check-config` calls the same `load_config` that `serve`
//! calls, and `completions` and `man` describe the binary's own [`Cli`].
//! Each returns `Err(one line)` on failure, which `main` prints as
//! `acme-ca: …` on stderr before exiting 1.

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;

use crate::{load_config, Cli, ServeArgs};

/// `acme-ca check-config FILE`.
#[derive(clap::Args)]
pub(crate) struct CheckConfigArgs {
    /// The TOML configuration file to check (as `acme-ca serve --config
    /// FILE` would load it, Pebble's environment variables included).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// `acme-ca completions SHELL`.
#[derive(clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: clap_complete::Shell,
}

/// `acme-ca man [--out DIR]`.
#[derive(clap::Args)]
pub(crate) struct ManArgs {
    /// Write one page per command into DIR (acme-ca.1, acme-ca-serve.1, …)
    /// instead of printing acme-ca.1 on stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Loads and validates the file exactly as `serve` does before it binds a
/// listener or touches the data directory (parsing with unknown fields
/// refused, the environment, [`Config::validate`] with the KEK check), and
/// prints `FILE: ok`. What needs keys or the database (a configured CA's
/// PEM files, the listener certificate, chains under the data directory)
/// is still checked only at start.
///
/// [`Config::validate`]: acme_ca::config::Config::validate
pub(crate) fn check_config(args: &CheckConfigArgs) -> Result<(), String> {
    let serve = ServeArgs {
        config: Some(args.file.clone()),
        ..ServeArgs::default()
    };
    load_config(&serve).map_err(|e| one_line(&e))?;
    println!("{}: ok", args.file.display());
    Ok(())
}

/// Prints the completion script for `args.shell` on stdout.
pub(crate) fn completions(args: &CompletionsArgs) -> Result<(), String> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, name, &mut out);
    out.flush()
        .map_err(|e| format!("writing the completions: {e}"))
}

/// Prints the roff man page of `acme-ca` on stdout, or writes one page per
/// command into `--out DIR`.
pub(crate) fn man(args: &ManArgs) -> Result<(), String> {
    let command = Cli::command();
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .map_err(|e| format!("writing man pages into {}: {e}", dir.display()))?;
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            match clap_mangen::Man::new(command)
                .render(&mut out)
                .and_then(|()| out.flush())
            {
                // `acme-ca man | head` is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(format!("writing the man page: {e}"))
                }
                _ => Ok(()),
            }
        }
    }
}

/// The promise of `check-config` is one line on stderr: multi-line errors
/// (a parser's snippet, if any slips through) are joined.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn one_line_joins_lines() {
        assert_eq!(one_line("a\n  b\n\nc"), "a b c");
        assert_eq!(one_line("single"), "single");
    }
}
