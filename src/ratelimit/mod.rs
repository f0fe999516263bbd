//! Rate limits: GCRA token buckets kept in the store (docs/RATELIMITS.md).
//!
//! Each limit is a rate, `count` per `period`: a bucket holds `count`
//! requests (the burst) and refills one every emission interval
//! `period / count`. A bucket is one number, its theoretical arrival time
//! (TAT): the request is allowed if, after adding its cost × emission
//! interval to max(TAT, now), the TAT is at most one burst (count ×
//! emission interval) ahead of now (the Generic Cell Rate Algorithm, as
//! Boulder's `ratelimits` package uses it). Times are milliseconds.
//!
//! The buckets live in the store ([`RateLimitStore`]), keyed by limit and
//! bucket key, so instances sharing a database share the limits. A request
//! that must pass several limits spends them in one transaction, all or
//! nothing; a spend whose request fails later is refunded. Limits that
//! are only checked (certificates at newOrder, failed validations) read the
//! buckets and change nothing.
//!
//! Bounds: a request spends at most one bucket per identifier plus two;
//! bucket keys are at most a limit name, an account id and a DNS name (the
//! duplicate-certificate key is a SHA-256 of the names). The store deletes
//! buckets that are full again, so it holds only buckets in use.

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{rfc3339, Clock};
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::Metrics;
use crate::model::{AccountId, Authz, Timestamp};
use crate::protocol::{Identifier, IdentifierType};
use crate::store::ratelimit::{BucketSpend, RateLimitStore};

use crate::config::ratelimit as config;
pub(crate) use crate::config::ratelimit::{LimitName, Prefix, RateConfig, RateLimitsConfig};
pub(crate) use crate::protocol::names::registered_domain;

/// The bucket key of a client address: IPv4 addresses (and IPv4-mapped
/// IPv6 ones) alone, IPv6 addresses by their /64, as Boulder groups them
/// (one /64 is what one subscriber line usually gets).
pub(crate) fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let masked = u128::from(v6) & (u128::MAX << 64);
                format!("{}/64", std::net::Ipv6Addr::from(masked))
            }
        },
    }
}

/// The /48 of an IPv6 client (not an IPv4-mapped one), as `addr/48`.
pub(crate) fn ipv6_range(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let masked = u128::from(v6) & (u128::MAX << 80);
            Some(format!("{}/48", std::net::Ipv6Addr::from(masked)))
        }
        _ => None,
    }
}

/// The rate of a bucket, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub count: u64,
    pub period: Duration,
}

impl Rate {
    /// period / count, at least 1 ms.
    pub(crate) fn emission_interval(&self) -> i64 {
        let period = i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX);
        (period / i64::try_from(self.count.max(1)).unwrap_or(i64::MAX)).max(1)
    }

    /// How far the TAT may be ahead of now: burst (= count) × emission
    /// interval.
    pub(crate) fn burst_offset(&self) -> i64 {
        self.emission_interval()
            .saturating_mul(i64::try_from(self.count).unwrap_or(i64::MAX))
    }
}

impl From<RateConfig> for Rate {
    fn from(r: RateConfig) -> Rate {
        Rate {
            count: r.count,
            period: r.period,
        }
    }
}

/// What GCRA says about spending `cost` from a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    /// The TAT after the spend (unchanged when refused).
    pub new_tat: i64,
    /// Refused: milliseconds until the spend would be allowed.
    pub retry_in: i64,
}

/// GCRA: spending `cost` at `now` from a bucket whose TAT is `tat` (None:
/// a bucket never used, i.e. full).
pub(crate) fn gcra(tat: Option<i64>, now: i64, rate: Rate, cost: u64) -> Decision {
    let tat = tat.unwrap_or(now).max(now);
    let increment = rate
        .emission_interval()
        .saturating_mul(i64::try_from(cost).unwrap_or(i64::MAX));
    let new_tat = tat.saturating_add(increment);
    let over = new_tat - rate.burst_offset() - now;
    if over > 0 {
        Decision {
            allowed: false,
            new_tat: tat,
            retry_in: over,
        }
    } else {
        Decision {
            allowed: true,
            new_tat,
            retry_in: 0,
        }
    }
}

/// One bucket a request needs, with what the refusal would say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transaction {
    pub limit: LimitName,
    /// `<limit>:<key>`.
    pub bucket: String,
    /// Who or what the bucket counts, for the detail ("the registered
    /// domain example.com").
    pub subject: String,
    pub rate: Rate,
    pub cost: u64,
}

impl Transaction {
    fn spend(&self) -> BucketSpend {
        BucketSpend {
            key: self.bucket.clone(),
            increment: self
                .rate
                .emission_interval()
                .saturating_mul(i64::try_from(self.cost).unwrap_or(i64::MAX)),
            burst_offset: self.rate.burst_offset(),
        }
    }
}

/// Spends that may have to be given back (a later step of the request
/// failed). Dropping it keeps them spent.
#[derive(Debug, Default)]
#[must_use = "a spend is kept unless refunded"]
pub(crate) struct Spent(Vec<BucketSpend>);

/// "3h", "7d", "90m", "45s": a period as the config writes it.
fn period_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The text of a list of names in a detail: at most 200 characters.
fn names_text(names: &[String]) -> String {
    let all = names.join(", ");
    if all.len() <= 200 {
        return all;
    }
    let mut cut = 200;
    while !all.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} names)", &all[..cut], names.len())
}

/// The rate limiter the RA asks. Built only when `[rate_limits]` is
/// enabled.
pub(crate) struct Limiter {
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn Clock>,
    config: RateLimitsConfig,
    /// Overrides by (limit, "account:<id>" or "domain:<name>").
    overrides: HashMap<(LimitName, String), RateConfig>,
    metrics: Arc<Metrics>,
}

impl Limiter {
    /// A limiter over `store` with a validated config.
    pub(crate) fn new(
        store: Arc<dyn RateLimitStore>,
        clock: Arc<dyn Clock>,
        config: &RateLimitsConfig,
        metrics: Arc<Metrics>,
    ) -> Limiter {
        let overrides = config
            .overrides
            .iter()
            .map(|o| {
                let key = match (&o.account, &o.domain) {
                    (Some(a), _) => format!("account:{a}"),
                    (None, Some(d)) => format!("domain:{}", config::normalize_domain(d)),
                    (None, None) => String::new(),
                };
                (
                    (o.limit, key),
                    RateConfig {
                        count: o.count,
                        period: o.period,
                    },
                )
            })
            .collect();
        Limiter {
            store,
            clock,
            config: config.clone(),
            overrides,
            metrics,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().saturating_mul(1000)
    }

    fn override_for(&self, limit: LimitName, key: &str) -> Option<RateConfig> {
        self.overrides.get(&(limit, key.to_owned())).copied()
    }

    /// The rate of `limit` for `account` (its override, if any).
    fn account_rate(&self, limit: LimitName, account: &AccountId) -> RateConfig {
        self.override_for(limit, &format!("account:{}", account.0))
            .unwrap_or_else(|| self.config.rate(limit))
    }

    fn txn(limit: LimitName, key: &str, subject: String, rate: RateConfig) -> Transaction {
        Transaction {
            limit,
            bucket: format!("{}:{key}", limit.as_str()),
            subject,
            rate: rate.into(),
            cost: 1,
        }
    }

    /// `new_accounts_per_ip` for a newAccount from `ip`, and for an IPv6
    /// client `new_accounts_per_ipv6_range` of its /48 too (both as Let's
    /// Encrypt counts them).
    pub(crate) fn new_account_transactions(&self, ip: IpAddr) -> Vec<Transaction> {
        let key = client_key(ip);
        let mut txns = vec![Self::txn(
            LimitName::NewAccountsPerIp,
            &key,
            format!("from {key}"),
            self.config.new_accounts_per_ip,
        )];
        if let Some(range) = ipv6_range(ip) {
            txns.push(Self::txn(
                LimitName::NewAccountsPerIpv6Range,
                &range,
                format!("from {range}"),
                self.config.new_accounts_per_ipv6_range,
            ));
        }
        txns
    }

    /// `new_orders_per_account` for a newOrder of `account`.
    pub(crate) fn new_order_transactions(&self, account: &AccountId) -> Vec<Transaction> {
        vec![Self::txn(
            LimitName::NewOrdersPerAccount,
            &account.0,
            format!("by account {}", account.0),
            self.account_rate(LimitName::NewOrdersPerAccount, account),
        )]
    }

    /// The certificate limits an issuance for `identifiers` to `account`
    /// spends: one `certificates_per_domain` bucket per registered domain
    /// (IP addresses count alone; an account override gives the account
    /// buckets of its own), and one `duplicate_certificates` bucket for
    /// the exact set of names.
    pub(crate) fn certificate_transactions(
        &self,
        account: &AccountId,
        identifiers: &[Identifier],
    ) -> Vec<Transaction> {
        let mut domains = BTreeSet::new();
        for ident in identifiers {
            let value = ident.value.trim_end_matches('.').to_ascii_lowercase();
            let domain = match ident.kind {
                IdentifierType::Ip => value
                    .parse::<IpAddr>()
                    .map(client_key)
                    .unwrap_or_else(|_| value.clone()),
                _ => registered_domain(&value).unwrap_or_else(|| value.clone()),
            };
            domains.insert(domain);
        }
        let mut txns = Vec::with_capacity(domains.len() + 1);
        let limit = LimitName::CertificatesPerDomain;
        let by_account = self.override_for(limit, &format!("account:{}", account.0));
        for d in domains {
            let (key, rate) = match by_account {
                Some(rate) => (format!("{}:{d}", account.0), rate),
                None => (
                    d.clone(),
                    self.override_for(limit, &format!("domain:{d}"))
                        .unwrap_or(self.config.certificates_per_domain),
                ),
            };
            txns.push(Self::txn(
                limit,
                &key,
                format!("for the registered domain {d}"),
                rate,
            ));
        }
        let (names, hex) = name_set(identifiers);
        txns.push(Self::txn(
            LimitName::DuplicateCertificates,
            &hex,
            format!("for exactly the names {}", names_text(&names)),
            self.config.duplicate_certificates,
        ));
        txns
    }

    /// The certificate limits of an issuance for `identifiers` to
    /// `account`, as [`Limiter::certificate_transactions`], but without
    /// `certificates_per_domain` when it is a renewal: a certificate for
    /// exactly these names was issued before and has not expired (Let's
    /// Encrypt exempts renewals from that limit, not from
    /// `duplicate_certificates`).
    pub(crate) async fn issuance_transactions(
        &self,
        account: &AccountId,
        identifiers: &[Identifier],
    ) -> Result<Vec<Transaction>> {
        let mut txns = self.certificate_transactions(account, identifiers);
        let (_, hash) = name_set(identifiers);
        if self.store.name_set_issued(&hash, self.clock.now()).await? {
            txns.retain(|t| t.limit != LimitName::CertificatesPerDomain);
        }
        Ok(txns)
    }

    /// Remembers that a certificate for `identifiers`, valid until
    /// `not_after`, was issued (later orders for the same names are
    /// renewals). Errors are logged: the certificate exists already.
    pub(crate) async fn issued(&self, identifiers: &[Identifier], not_after: Timestamp) {
        let (_, hash) = name_set(identifiers);
        if let Err(e) = self
            .store
            .record_name_set(&hash, not_after, self.clock.now())
            .await
        {
            tracing::warn!(error = %e, "could not record an issued name set");
        }
    }

    /// The `failed_validations` bucket of `account` and one hostname (a
    /// wildcard counts as its base name).
    pub(crate) fn failed_validation_transaction(
        &self,
        account: &AccountId,
        ident: &Identifier,
    ) -> Transaction {
        let host = ident.value.trim_start_matches("*.").to_ascii_lowercase();
        Self::txn(
            LimitName::FailedValidations,
            &format!("{}:{host}", account.0),
            format!("of {host} by account {}", account.0),
            self.account_rate(LimitName::FailedValidations, account),
        )
    }

    /// Spends every transaction, or none: rateLimited naming the limit that
    /// refused (the one that frees last) when any lacks room.
    pub(crate) async fn spend(&self, txns: &[Transaction]) -> Result<Spent> {
        let spends = dedup(txns);
        let now = self.now_ms();
        if self.store.spend_buckets(&spends, now).await? {
            return Ok(Spent(spends));
        }
        Err(self.refusal(txns, now).await?)
    }

    /// Checks that every transaction could be spent now, spending nothing.
    pub(crate) async fn check(&self, txns: &[Transaction]) -> Result<()> {
        let now = self.now_ms();
        match self.worst(txns, now).await? {
            Some((t, d)) => Err(self.refused(t, now, d.retry_in)),
            None => Ok(()),
        }
    }

    /// Spends what it can of `txns`, refusing nothing (an event that has
    /// happened, such as a failed validation, is counted even when its
    /// bucket is empty already, as Boulder does).
    pub(crate) async fn record(&self, txns: &[Transaction]) -> Result<()> {
        let now = self.now_ms();
        for s in dedup(txns) {
            self.store
                .spend_buckets(std::slice::from_ref(&s), now)
                .await?;
        }
        Ok(())
    }

    /// Counts a failed validation of `authz` (`failed_validations`);
    /// errors are logged, never passed on: the outcome is recorded already.
    pub(crate) async fn validation_failed(&self, authz: &Authz) {
        let t = self.failed_validation_transaction(&authz.account_id, &authz.identifier);
        if let Err(e) = self.record(std::slice::from_ref(&t)).await {
            tracing::warn!(authz = %authz.id, error = %e, "could not count a failed validation");
        }
    }

    /// Gives back what [`Limiter::spend`] took.
    pub(crate) async fn refund(&self, spent: Spent) {
        if let Err(e) = self.store.refund_buckets(&spent.0, self.now_ms()).await {
            tracing::warn!(error = %e, "could not refund rate-limit buckets");
        }
    }

    /// `pending_authorizations`: `account` may not hold more than its
    /// ceiling of pending authorizations after `adding` more.
    pub(crate) async fn check_pending_authorizations(
        &self,
        account: &AccountId,
        adding: usize,
    ) -> Result<()> {
        if adding == 0 {
            return Ok(());
        }
        let now = self.clock.now();
        let max = self
            .account_rate(LimitName::PendingAuthorizations, account)
            .count;
        let (pending, earliest) = self.store.pending_authz_count(account, now).await?;
        if pending.saturating_add(adding as u64) <= max {
            return Ok(());
        }
        // One frees when the earliest pending authorization expires (or
        // sooner, if the client validates or deactivates one).
        let free_at: Timestamp = earliest.unwrap_or(now + 1).max(now + 1);
        self.metrics
            .rate_limited(LimitName::PendingAuthorizations.as_str());
        Err(Error::new(
            ErrorKind::RateLimited,
            format!(
                "too many pending authorizations: account {} has {pending} and this order \
                 would add {adding}, at most {max} may be pending at once (rate limit {}); \
                 validate or deactivate some, or retry after {}",
                account.0,
                LimitName::PendingAuthorizations.as_str(),
                rfc3339(free_at)
            ),
        )
        .with_retry_after(u64::try_from(free_at - now).unwrap_or(1)))
    }

    /// The transaction refused now whose bucket frees last, if any.
    async fn worst<'t>(
        &self,
        txns: &'t [Transaction],
        now: i64,
    ) -> Result<Option<(&'t Transaction, Decision)>> {
        let keys: Vec<String> = txns.iter().map(|t| t.bucket.clone()).collect();
        let tats = self.store.bucket_tats(&keys).await?;
        Ok(txns
            .iter()
            .zip(tats)
            .map(|(t, tat)| (t, gcra(tat, now, t.rate, t.cost)))
            .filter(|(_, d)| !d.allowed)
            .max_by_key(|(_, d)| d.retry_in))
    }

    /// The error of a refused spend: the buckets are read again to name
    /// the limit; if a refund freed them meanwhile, the first is named with
    /// a retry in one second.
    async fn refusal(&self, txns: &[Transaction], now: i64) -> Result<Error> {
        Ok(match self.worst(txns, now).await? {
            Some((t, d)) => self.refused(t, now, d.retry_in),
            None => match txns.first() {
                Some(t) => self.refused(t, now, 1000),
                None => Error::internal("a rate-limit spend of nothing was refused"),
            },
        })
    }

    fn refused(&self, t: &Transaction, now: i64, retry_in: i64) -> Error {
        self.metrics.rate_limited(t.limit.as_str());
        refusal_error(t, now, retry_in)
    }
}

/// rateLimited for transaction `t` refused at `now` (ms), free in
/// `retry_in` ms: Retry-After in whole seconds, rounded up.
pub(crate) fn refusal_error(t: &Transaction, now: i64, retry_in: i64) -> Error {
    let secs = u64::try_from((retry_in.max(1) + 999) / 1000).unwrap_or(1);
    let free_at = now / 1000 + i64::try_from(secs).unwrap_or(0);
    let what = match t.limit {
        LimitName::NewOrdersPerAccount => "new orders",
        LimitName::CertificatesPerDomain | LimitName::DuplicateCertificates => "certificates",
        LimitName::FailedValidations => "failed validations",
        LimitName::NewAccountsPerIp | LimitName::NewAccountsPerIpv6Range => "new accounts",
        LimitName::PendingAuthorizations => "pending authorizations",
    };
    Error::new(
        ErrorKind::RateLimited,
        format!(
            "too many {what} {}: {} per {} allowed (rate limit {}); retry after {}",
            t.subject,
            t.rate.count,
            period_text(t.rate.period),
            t.limit.as_str(),
            rfc3339(free_at)
        ),
    )
    .with_retry_after(secs)
}

/// The exact set of names of `identifiers`: lowercased, without a final
/// dot, deduplicated and sorted; and its SHA-256 in hex.
fn name_set(identifiers: &[Identifier]) -> (Vec<String>, String) {
    let names: BTreeSet<String> = identifiers
        .iter()
        .map(|i| i.value.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let names: Vec<String> = names.into_iter().collect();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, names.join(",").as_bytes());
    let hex = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    (names, hex)
}

/// The spends of `txns`, one per bucket (costs of a bucket named twice add
/// up).
fn dedup(txns: &[Transaction]) -> Vec<BucketSpend> {
    let mut out: Vec<BucketSpend> = Vec::with_capacity(txns.len());
    for t in txns {
        let s = t.spend();
        match out.iter_mut().find(|o| o.key == s.key) {
            Some(o) => o.increment = o.increment.saturating_add(s.increment),
            None => out.push(s),
        }
    }
    out
}

impl crate::va::FailureObserver for Limiter {
    fn failed<'a>(
        &'a self,
        authz: &'a Authz,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(self.validation_failed(authz))
    }
}
