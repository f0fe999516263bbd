//! DNS as the validation authority sees it: a [`Resolver`] trait, so that
//! validators and CAA checks never use the system resolver and tests can
//! fake every answer.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// The future a resolver returns.
pub(crate) type DnsFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DnsError>> + Send + 'a>>;

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DnsError {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no record of the type asked (NOERROR, empty
    /// answer).
    NoRecords,
    /// The server failed (SERVFAIL, REFUSED, …); the text says which.
    ServerFailure(String),
    /// No answer within the time allowed.
    Timeout,
    /// Anything else (network error, malformed answer), described.
    Other(String),
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsError::NxDomain => f.write_str("NXDOMAIN"),
            DnsError::NoRecords => f.write_str("no records"),
            DnsError::ServerFailure(s) => write!(f, "server failure ({s})"),
            DnsError::Timeout => f.write_str("timed out"),
            DnsError::Other(s) => f.write_str(s),
        }
    }
}

/// One CAA record (RFC 8659 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaaRecord {
    /// The issuer-critical flag (bit 128 of the flags octet).
    pub critical: bool,
    /// The property tag, e.g. "issue", "issuewild", "iodef" (lowercased).
    pub tag: String,
    /// The raw property value.
    pub value: Vec<u8>,
}

/// Lookups the VA needs. Implementations bound their own time and answer
/// size; CNAME chains are followed by the implementation (bounded depth).
pub(crate) trait Resolver: Send + Sync + 'static {
    /// A and AAAA records of `name` (both asked; either may be empty).
    fn lookup_ip<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<IpAddr>>;
    /// TXT records of `name`, each record's strings joined.
    fn lookup_txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>>;
    /// CAA records at exactly `name` (no tree climbing: that is the CAA
    /// checker's job).
    fn lookup_caa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<CaaRecord>>;
    /// The servers asked, for error details ("asked 10.0.0.53:53").
    fn describe(&self) -> String;
}
