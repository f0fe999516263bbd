//! acme-ca: an ACME (RFC 8555) certificate authority server.
//!
//! Modules follow the components of a CA (see docs/ARCHITECTURE.md):
//! `protocol` (wire types), `jose` (JWS/JWK), `http` (the thin front end),
//! `ra` (rules), `va` (validation), `ca` (signing), `store` (persistence),
//! with `config`, `error`, `model`, `clock` and `metrics` shared by all.
//! `challtestsrv` is a pebble-challtestsrv-compatible test server, not the CA.
//!
//! Only what the binary, the test crates and the fuzz targets use is public:
//! the commands (`config`, `server`, `pebble`, `cli`, `challtestsrv`) and
//! the pass-through module `fuzzing`; everything else is `pub(crate)`, and
//! `unreachable_pub` keeps it so.

#![warn(unreachable_pub)]

pub(crate) mod ca;
pub mod challtestsrv;
pub(crate) mod chaos;
pub mod cli;
pub(crate) mod clock;
pub mod config;
pub(crate) mod error;
pub(crate) mod http;
pub(crate) mod jose;
pub(crate) mod metrics;
pub(crate) mod model;
pub mod pebble;
pub(crate) mod protocol;
pub(crate) mod ra;
pub(crate) mod rand;
pub(crate) mod ratelimit;
pub(crate) mod revocation;
pub mod server;
pub(crate) mod service;
pub(crate) mod store;
#[cfg(test)]
pub(crate) mod test_support;
pub(crate) mod va;

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

    /// CSR checks (finalize and the service's uploads), the certificate
    /// serial's text, identifiers.
    pub use crate::ca::{csr, serial_hex};
    /// JWS, JWK and external account binding.
    pub use crate::jose::{b64, eab, Jwk, Jws};
    pub use crate::protocol::Identifier;
    /// The OCSP request reader and response encoder.
    pub use crate::revocation::ocsp;
    /// The ZIP and PKCS#12 writers.
    pub use crate::service::package;
}
