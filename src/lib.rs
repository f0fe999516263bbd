//! acme-ca: an ACME (RFC 8555) certificate authority server.
//!
//! Modules follow the components of a CA (see docs/ARCHITECTURE.md):
//! `protocol` (wire types), `jose` (JWS/JWK), `http` (the thin front end),
//! `ra` (rules), `va` (validation), `ca` (signing), `store` (persistence),
//! with `config`, `error`, `model`, `clock` and `metrics` shared by all.
//! `challtestsrv` is a pebble-challtestsrv-compatible test server, not the CA.

pub mod ca;
pub mod challtestsrv;
pub mod chaos;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod jose;
pub mod metrics;
pub mod model;
pub mod pebble;
pub mod protocol;
pub mod ra;
pub mod rand;
pub mod ratelimit;
pub mod revocation;
pub mod server;
pub mod service;
pub mod store;
#[cfg(test)]
pub(crate) mod test_support;
pub mod va;

/// Entry points the coverage-guided fuzz targets in `fuzz/` need that are
/// not public otherwise (docs/TESTING.md). Each is the server's own
/// function, passed through unchanged; nothing else should call them.
#[doc(hidden)]
pub mod fuzzing {
    /// The PEM splitter of the service's CSR batch upload (`POST /csr`):
    /// the DER and the PEM text of every `label` block of `pem`.
    pub fn pem_blocks(pem: &str, label: &str) -> crate::error::Result<Vec<(Vec<u8>, String)>> {
        crate::service::pem_blocks(pem, label)
    }
}
