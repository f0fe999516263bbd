//! acme-ca: an ACME (RFC 8555) certificate authority server.

pub mod error;
pub mod protocol;
