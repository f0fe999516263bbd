//! challtestsrv: a challenge test server with `pebble-challtestsrv`'s command
//! line and management API (see `acme_ca::challtestsrv`; the same server as
//! `acme-ca challtestsrv`). For tests only: it has no authentication.
//!
//! Flags are Go-style (`-dns01 :8053`, `-dns01=:8053`, `--dns01 :8053` all
//! work); bind address lists are comma separated and an empty list disables
//! that server. See `acme_ca::challtestsrv::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    acme_tests::challtestsrv::cli::main_from_args(std::env::args())
}
