//! `[rate_limits]`: which limits apply, their rates, overrides, and whose
//! `X-Forwarded-For` is believed. docs/RATELIMITS.md describes each limit.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::de_duration;

/// The most overrides a config may list (each is a map entry in memory).
pub const MAX_OVERRIDES: usize = 10_000;
/// The largest count of one rate.
pub const MAX_COUNT: u64 = 1_000_000;
/// The longest period of one rate (a year).
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 86400);

/// The limits, by their names in the config and in `detail`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitName {
    /// newOrder requests per account.
    NewOrdersPerAccount,
    /// Certificates per registered domain (or IP address).
    CertificatesPerDomain,
    /// Certificates for one exact set of identifiers.
    DuplicateCertificates,
    /// Failed validations per account and hostname.
    FailedValidations,
    /// newAccount requests per client IP address (IPv6: per /64).
    NewAccountsPerIp,
    /// newAccount requests per IPv6 /48 (a provider's allocation).
    NewAccountsPerIpv6Range,
    /// Pending authorizations an account may hold at once.
    PendingAuthorizations,
}

impl LimitName {
    /// Every limit, in the order docs/RATELIMITS.md lists them.
    pub const ALL: [LimitName; 7] = [
        LimitName::NewOrdersPerAccount,
        LimitName::CertificatesPerDomain,
        LimitName::DuplicateCertificates,
        LimitName::FailedValidations,
        LimitName::NewAccountsPerIp,
        LimitName::NewAccountsPerIpv6Range,
        LimitName::PendingAuthorizations,
    ];

    /// The name as the config and problem details write it.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitName::NewOrdersPerAccount => "new_orders_per_account",
            LimitName::CertificatesPerDomain => "certificates_per_domain",
            LimitName::DuplicateCertificates => "duplicate_certificates",
            LimitName::FailedValidations => "failed_validations",
            LimitName::NewAccountsPerIp => "new_accounts_per_ip",
            LimitName::NewAccountsPerIpv6Range => "new_accounts_per_ipv6_range",
            LimitName::PendingAuthorizations => "pending_authorizations",
        }
    }

    /// Whether an override may name an account for this limit.
    fn takes_account(self) -> bool {
        !matches!(
            self,
            LimitName::NewAccountsPerIp
                | LimitName::NewAccountsPerIpv6Range
                | LimitName::DuplicateCertificates
        )
    }

    /// Whether an override may name a registered domain for this limit.
    fn takes_domain(self) -> bool {
        self == LimitName::CertificatesPerDomain
    }
}

/// One limit's rate: `count` per `period`. The bucket holds `count`
/// (the burst) and refills one every `period / count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub count: u64,
    /// Ignored by `pending_authorizations`, which is a ceiling, not a rate.
    #[serde(deserialize_with = "de_duration", default = "zero")]
    pub period: Duration,
}

fn zero() -> Duration {
    Duration::ZERO
}

impl RateConfig {
    const fn new(count: u64, period_secs: u64) -> RateConfig {
        RateConfig {
            count,
            period: Duration::from_secs(period_secs),
        }
    }
}

/// `[[rate_limits.overrides]]`: another rate for one account or one
/// registered domain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    pub limit: LimitName,
    /// An account id (the last segment of its URL).
    pub account: Option<String>,
    /// A registered domain ("example.co.uk"), for `certificates_per_domain`.
    pub domain: Option<String>,
    pub count: u64,
    #[serde(deserialize_with = "de_duration", default = "zero")]
    pub period: Duration,
}

/// `[rate_limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Unset: on, except in always-valid mode (`validation.always_valid`,
    /// a development CA that validates nothing); `acme-ca pebble` sets it
    /// off, as Pebble has no limits.
    pub enabled: Option<bool>,
    pub new_orders_per_account: RateConfig,
    pub certificates_per_domain: RateConfig,
    pub duplicate_certificates: RateConfig,
    pub failed_validations: RateConfig,
    pub new_accounts_per_ip: RateConfig,
    pub new_accounts_per_ipv6_range: RateConfig,
    /// `count` is the ceiling; `period` is not used.
    pub pending_authorizations: RateConfig,
    pub overrides: Vec<OverrideConfig>,
    /// Peers (addresses or CIDR prefixes) whose `X-Forwarded-For` header
    /// names the client; from anyone else it is ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for RateLimitsConfig {
    /// Let's Encrypt's published limits (letsencrypt.org/docs/rate-limits).
    fn default() -> Self {
        const HOUR: u64 = 3600;
        const WEEK: u64 = 7 * 86400;
        RateLimitsConfig {
            enabled: None,
            new_orders_per_account: RateConfig::new(300, 3 * HOUR),
            certificates_per_domain: RateConfig::new(50, WEEK),
            duplicate_certificates: RateConfig::new(5, WEEK),
            failed_validations: RateConfig::new(5, HOUR),
            new_accounts_per_ip: RateConfig::new(10, 3 * HOUR),
            new_accounts_per_ipv6_range: RateConfig::new(500, 3 * HOUR),
            pending_authorizations: RateConfig::new(300, 0),
            overrides: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// An address prefix (`192.0.2.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// Parses `ADDR` or `ADDR/LEN`.
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Prefix { addr, len })
    }

    /// Whether `ip` is inside the prefix (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// Lowercase, without a final dot.
pub(crate) fn normalize_domain(d: &str) -> String {
    d.trim_end_matches('.').to_ascii_lowercase()
}

impl RateLimitsConfig {
    /// Whether the limits apply, given whether validation is skipped.
    pub fn is_enabled(&self, always_valid: bool) -> bool {
        self.enabled.unwrap_or(!always_valid)
    }

    /// The configured rate of `limit`.
    pub fn rate(&self, limit: LimitName) -> RateConfig {
        match limit {
            LimitName::NewOrdersPerAccount => self.new_orders_per_account,
            LimitName::CertificatesPerDomain => self.certificates_per_domain,
            LimitName::DuplicateCertificates => self.duplicate_certificates,
            LimitName::FailedValidations => self.failed_validations,
            LimitName::NewAccountsPerIp => self.new_accounts_per_ip,
            LimitName::NewAccountsPerIpv6Range => self.new_accounts_per_ipv6_range,
            LimitName::PendingAuthorizations => self.pending_authorizations,
        }
    }

    /// The trusted proxies, parsed (`validate` has checked them).
    pub fn proxies(&self) -> Vec<Prefix> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| Prefix::parse(p).ok())
            .collect()
    }

    /// Checks every rate, override and proxy (at load, once).
    pub fn validate(&self) -> Result<(), String> {
        let check = |what: &str, r: RateConfig, ceiling: bool| -> Result<(), String> {
            if r.count == 0 || r.count > MAX_COUNT {
                return Err(format!("{what}: count must be 1 to {MAX_COUNT}"));
            }
            if !ceiling && (r.period < Duration::from_secs(1) || r.period > MAX_PERIOD) {
                return Err(format!("{what}: period must be 1s to 366d"));
            }
            Ok(())
        };
        for limit in LimitName::ALL {
            check(
                &format!("rate_limits.{}", limit.as_str()),
                self.rate(limit),
                limit == LimitName::PendingAuthorizations,
            )?;
        }
        if self.overrides.len() > MAX_OVERRIDES {
            return Err(format!(
                "rate_limits.overrides: at most {MAX_OVERRIDES} overrides"
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, o) in self.overrides.iter().enumerate() {
            let what = format!("rate_limits.overrides[{i}] ({})", o.limit.as_str());
            check(
                &what,
                RateConfig {
                    count: o.count,
                    period: o.period,
                },
                o.limit == LimitName::PendingAuthorizations,
            )?;
            let key = match (&o.account, &o.domain) {
                (Some(a), None) => {
                    if !o.limit.takes_account() {
                        return Err(format!("{what}: this limit takes no account overrides"));
                    }
                    if crate::model::AccountId::parse(a).is_none() {
                        return Err(format!("{what}: {a:?} is not an account id"));
                    }
                    format!("account {a}")
                }
                (None, Some(d)) => {
                    if !o.limit.takes_domain() {
                        return Err(format!("{what}: this limit takes no domain overrides"));
                    }
                    let d = normalize_domain(d);
                    if crate::protocol::names::registered_domain(&d).as_deref() != Some(d.as_str())
                    {
                        return Err(format!(
                            "{what}: {d:?} is not a registered domain (a public suffix and one label, as in example.co.uk)"
                        ));
                    }
                    format!("domain {d}")
                }
                _ => return Err(format!("{what}: name exactly one of account and domain")),
            };
            if !seen.insert((o.limit, key.clone())) {
                return Err(format!("{what}: a second override for {key}"));
            }
        }
        for p in &self.trusted_proxies {
            Prefix::parse(p).map_err(|e| format!("rate_limits.trusted_proxies: {e}"))?;
        }
        Ok(())
    }
}
