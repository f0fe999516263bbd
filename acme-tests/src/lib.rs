//! Test and benchmark support for acme-ca.
//!
//! * [`jws`]: ES256 account keys and flattened-JSON JWS signing (RFC 8555 §6.2).
//! * [`client`]: a small ACME client (directory, nonces with badNonce retry,
//!   accounts, orders, authorizations, challenges, finalize, certificate
//!   download) and a one-call issuance flow, [`client::Account::issue`].
//! * [`stats`]: latency percentiles and process CPU time, for load tests.
//! * [`challtestsrv`]: a challenge test server compatible with
//!   `pebble-challtestsrv` (mock DNS, HTTP-01, TLS-ALPN-01, management API),
//!   usable in process or as the `challtestsrv` binary; it lives in acme-ca
//!   (`acme_ca::challtestsrv`, also run as `acme-ca challtestsrv`) and is
//!   re-exported here.
//!
//! Binaries: `acme-bench` (load generator, see `acme-bench --help`),
//! `challtestsrv` (a `pebble-challtestsrv` replacement, see `challtestsrv -h`) and
//! `acme-test-tls-cert` (writes a throw-away CA and a localhost server
//! certificate, e.g. for running Pebble, whose Debian package ships none).

pub use acme_ca::challtestsrv;
pub mod client;
pub mod jws;
pub mod stats;
