//! The road from an identifier to a connected address, shared by the
//! validators that open connections (http-01, tls-alpn-01).
//!
//! - [`identifier_host`]: the identifier as a host to contact: a valid DNS
//!   name, or an IP address the [`AddressPolicy`] allows (RFC 8738).
//! - [`Dialer::addresses`]: the host's addresses, looked up through the VA's
//!   [`Resolver`] (never the system resolver), with those the policy
//!   refuses left out; none left is a `dns` problem.
//! - [`Dialer::first_answer`]: Boulder's fallback: the first IPv6 address,
//!   then, if that attempt fails at the network level, the first IPv4
//!   address, within one deadline.
//! - [`Record`]: the Boulder-style validation record these steps fill in.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::time::{timeout_at, Instant};

use super::addr::AddressPolicy;
use super::dns::{DnsError, Resolver};
use crate::error::{Error, ErrorKind};
use crate::protocol::{Identifier, IdentifierType};

/// The host part of what the VA contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// A DNS name, lowercase, without a trailing dot.
    Name(String),
    /// An IP address (IP identifiers, RFC 8738).
    Ip(IpAddr),
}

impl Host {
    /// As the validation record's `hostname`: the name or the bare address.
    pub(crate) fn for_record(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// As in a URL or a Host header: IPv6 addresses in brackets.
    pub(crate) fn for_url(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

/// `ident` as a host that `challenge` may contact: a DNS name that is valid
/// (`malformed` if not), or an IP address that parses (`malformed`) and that
/// `policy` allows (`rejectedIdentifier`). Other identifier types are
/// `unsupportedIdentifier`.
pub(crate) fn identifier_host(
    ident: &Identifier,
    policy: AddressPolicy,
    challenge: &str,
) -> Result<Host, Error> {
    let value = ident.value.as_str();
    match ident.kind {
        IdentifierType::Dns => match ServerName::try_from(value) {
            Ok(ServerName::DnsName(_)) => Ok(Host::Name(value.to_ascii_lowercase())),
            _ => Err(Error::malformed(format!(
                "Cannot validate {value:?} with {challenge}: it is not a valid DNS name"
            ))),
        },
        IdentifierType::Ip => {
            let ip: IpAddr = value.parse().map_err(|_| {
                Error::malformed(format!(
                    "Cannot validate IP identifier {value:?} with {challenge}: it is not an IP address"
                ))
            })?;
            policy.check(ip).map_err(|why| {
                Error::new(
                    ErrorKind::RejectedIdentifier,
                    format!(
                        "Refusing to connect to {ip} for {challenge} challenge: it is {why}, which this CA does not contact"
                    ),
                )
            })?;
            Ok(Host::Ip(ip))
        }
        IdentifierType::Unknown => Err(Error::new(
            ErrorKind::UnsupportedIdentifier,
            format!("{challenge} can only validate DNS names and IP addresses, not {value:?}"),
        )),
    }
}

/// The Boulder-style validation record of one connection target: `url`
/// (http-01 only), `hostname`, `port` (a string, as Boulder writes it),
/// `addressesResolved`, `addressUsed` once an address was tried, and
/// `addressesTried` when an IPv6 address failed first.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) url: Option<String>,
    pub(crate) hostname: String,
    pub(crate) port: u16,
    pub(crate) resolved: Vec<IpAddr>,
    pub(crate) used: Option<IpAddr>,
    pub(crate) tried: Vec<IpAddr>,
}

impl Record {
    /// A record of `hostname` and `port` before anything was looked up.
    pub(crate) fn new(url: Option<String>, hostname: String, port: u16) -> Self {
        Record {
            url,
            hostname,
            port,
            resolved: Vec::new(),
            used: None,
            tried: Vec::new(),
        }
    }

    /// The record as JSON.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let ips = |ips: &[IpAddr]| ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>();
        let mut rec = serde_json::Map::new();
        if let Some(url) = &self.url {
            rec.insert("url".to_owned(), url.clone().into());
        }
        rec.insert("hostname".to_owned(), self.hostname.clone().into());
        rec.insert("port".to_owned(), self.port.to_string().into());
        rec.insert("addressesResolved".to_owned(), ips(&self.resolved).into());
        if let Some(used) = self.used {
            rec.insert("addressUsed".to_owned(), used.to_string().into());
        }
        if !self.tried.is_empty() {
            rec.insert("addressesTried".to_owned(), ips(&self.tried).into());
        }
        serde_json::Value::Object(rec)
    }
}

/// Looks addresses up and tries them in order, for one validation.
pub(crate) struct Dialer<'a> {
    pub(crate) resolver: &'a dyn Resolver,
    pub(crate) policy: AddressPolicy,
    /// The validation's whole budget, for error details.
    pub(crate) timeout: Duration,
}

impl Dialer<'_> {
    /// The addresses of `host` that the policy allows: an IP address as it
    /// is, a name's A and AAAA records through the resolver (within
    /// `deadline`). Records every address found in `record.resolved`; if
    /// the policy refuses them all, a `dns` problem that says why.
    pub(crate) async fn addresses(
        &self,
        host: &Host,
        deadline: Instant,
        record: &mut Record,
    ) -> Result<Vec<IpAddr>, Error> {
        let addrs = match host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => resolve_ips(self.resolver, self.timeout, name, deadline).await?,
        };
        record.resolved.clone_from(&addrs);
        let mut refused = Vec::new();
        let mut allowed = Vec::new();
        for &ip in &addrs {
            match self.policy.check(ip) {
                Ok(()) => allowed.push(ip),
                Err(why) => refused.push(format!("{ip} is {why}")),
            }
        }
        if allowed.is_empty() {
            return Err(Error::new(
                ErrorKind::Dns,
                format!(
                    "No valid IP addresses found for {}: it resolves only to addresses this CA does not contact ({})",
                    host.for_record(),
                    refused.join("; ")
                ),
            ));
        }
        Ok(allowed)
    }

    /// Runs `attempt` on the first IPv6 address of `allowed` and, if that
    /// fails, on the first IPv4 address, as Boulder does; the answer and the
    /// address that gave it. When there is an IPv4 address to fall back to,
    /// the IPv6 attempt gets half of the time left before `deadline`, so
    /// that an unreachable IPv6 address cannot use up the budget.
    ///
    /// Fills in `record.used` and `record.tried`. When both fail, the IPv4
    /// error carries the IPv6 one, without its leading `prefix` (the part
    /// both details share).
    pub(crate) async fn first_answer<T, F, Fut>(
        &self,
        allowed: &[IpAddr],
        deadline: Instant,
        record: &mut Record,
        prefix: &str,
        mut attempt: F,
    ) -> Result<(T, IpAddr), Error>
    where
        F: FnMut(IpAddr, Instant) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let v6 = allowed.iter().copied().find(IpAddr::is_ipv6);
        let v4 = allowed.iter().copied().find(IpAddr::is_ipv4);
        let mut v6_error = None;
        if let Some(ip) = v6 {
            record.used = Some(ip);
            let until = if v4.is_some() {
                let now = Instant::now();
                now + deadline.saturating_duration_since(now) / 2
            } else {
                deadline
            };
            match attempt(ip, until).await {
                Ok(answer) => return Ok((answer, ip)),
                Err(e) => {
                    record.tried.push(ip);
                    v6_error = Some((ip, e));
                }
            }
        }
        let Some(ip) = v4 else {
            return Err(match v6_error {
                Some((_, e)) => e,
                None => Error::internal("no address to try"),
            });
        };
        record.used = Some(ip);
        match attempt(ip, deadline).await {
            Ok(answer) => Ok((answer, ip)),
            Err(mut e) => {
                if let Some((v6, v6_error)) = v6_error {
                    let v6_detail = v6_error
                        .detail
                        .strip_prefix(prefix)
                        .unwrap_or(&v6_error.detail);
                    e.detail = format!(
                        "{}; the IPv6 address {v6} was tried first: {v6_detail}",
                        e.detail
                    )
                    .into();
                }
                Err(e)
            }
        }
    }
}

/// A and AAAA records of `name` through the VA's resolver, within
/// `deadline` (`timeout` is the validation's whole budget, for the detail).
pub(crate) async fn resolve_ips(
    resolver: &dyn Resolver,
    timeout: Duration,
    name: &str,
    deadline: Instant,
) -> Result<Vec<IpAddr>, Error> {
    let asked = resolver.describe();
    let answer = match timeout_at(deadline, resolver.lookup_ip(name)).await {
        Ok(answer) => answer,
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Dns,
                format!(
                    "DNS problem: looking up A and AAAA for {name} did not finish within \
                     {timeout:?} (asked {asked})"
                ),
            ))
        }
    };
    let detail = match answer {
        Ok(addrs) if !addrs.is_empty() => return Ok(addrs),
        Ok(_) | Err(DnsError::NoRecords) => format!(
            "No valid IP addresses found for {name}: it has no A or AAAA record (asked {asked})"
        ),
        Err(DnsError::NxDomain) => format!(
            "DNS problem: NXDOMAIN looking up A and AAAA for {name} (asked {asked}) - check \
             that a DNS record exists for this domain"
        ),
        Err(e) => format!("DNS problem: {e} looking up A and AAAA for {name} (asked {asked})"),
    };
    Err(Error::new(ErrorKind::Dns, detail))
}
