#!/usr/bin/env bash
# Builds acme-ca (release) and runs it with the embedded defaults: SQLite
# store and CA in ./data (created on first start, reused after), HTTPS on
# port 14000. Flags are passed through, e.g. ./start.sh --listen 127.0.0.1:8443
# Environment variables pass through too: PEBBLE_VA_ALWAYS_VALID=1 skips
# challenge validation (local experiments, CI), RUST_LOG sets the log level.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
cargo build --release --locked --bin acme-ca
exec ./target/release/acme-ca serve "$@"
