//! Chaos: faults injected on purpose, so that an ACME client's own test
//! suite can check that it copes with what a production CA does on a bad
//! day: `503` and `429 rateLimited` answers with `Retry-After`, dropped
//! connections, a finalize that answers `processing` and completes later,
//! validations that fail, authorizations that expire early.
//!
//! Everything is off unless `[chaos]` (or, in `pebble` mode, the
//! `PEBBLE_CHAOS_*` variables) or the management API switches it on. The
//! knobs can be replaced at run time, and single faults queued for the next
//! request to an endpoint ("the next newOrder gets 429 with Retry-After
//! 3"). A client that comes back before the `Retry-After` it was given is
//! refused again, the same way, until the time is up. Random draws come
//! from one generator seeded by `seed`, so a sequential client sees the
//! same faults on every run with the same seed. docs/CHAOS.md lists every
//! knob.
//!
//! This module decides; the HTTP front end turns a decision into an answer
//! and the RA and VA ask it about finalize, validations and lifetimes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;

/// Most faults waiting in the queue.
pub(crate) const MAX_QUEUED: usize = 1000;
/// Most clients held back at once (the oldest holds are dropped first when
/// it is reached; expired ones are always dropped).
pub(crate) const MAX_HOLDS: usize = 10_000;
/// Longest Retry-After, finalize delay or authorization lifetime accepted.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The ACME resources faults can be aimed at, by their directory names
/// (RFC 8555 §7.1.1) or, for the others, the resource's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    Directory,
    NewNonce,
    NewAccount,
    NewOrder,
    NewAuthz,
    RevokeCert,
    KeyChange,
    RenewalInfo,
    Account,
    Orders,
    Order,
    Finalize,
    Authz,
    Challenge,
    Certificate,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 15] = [
        Endpoint::Directory,
        Endpoint::NewNonce,
        Endpoint::NewAccount,
        Endpoint::NewOrder,
        Endpoint::NewAuthz,
        Endpoint::RevokeCert,
        Endpoint::KeyChange,
        Endpoint::RenewalInfo,
        Endpoint::Account,
        Endpoint::Orders,
        Endpoint::Order,
        Endpoint::Finalize,
        Endpoint::Authz,
        Endpoint::Challenge,
        Endpoint::Certificate,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Endpoint::Directory => "directory",
            Endpoint::NewNonce => "newNonce",
            Endpoint::NewAccount => "newAccount",
            Endpoint::NewOrder => "newOrder",
            Endpoint::NewAuthz => "newAuthz",
            Endpoint::RevokeCert => "revokeCert",
            Endpoint::KeyChange => "keyChange",
            Endpoint::RenewalInfo => "renewalInfo",
            Endpoint::Account => "account",
            Endpoint::Orders => "orders",
            Endpoint::Order => "order",
            Endpoint::Finalize => "finalize",
            Endpoint::Authz => "authz",
            Endpoint::Challenge => "challenge",
            Endpoint::Certificate => "certificate",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// What an endpoint fault does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Fault {
    /// `503 Service Unavailable`, a serverInternal problem, `Retry-After`.
    Unavailable,
    /// `429`, a rateLimited problem, `Retry-After`.
    RateLimited,
    /// The connection is closed without an answer.
    Drop,
}

/// A fault chosen for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Injected {
    pub fault: Fault,
    /// Seconds, at least 1 (unused for `Drop`).
    pub retry_after: u64,
}

/// Probabilities (0 to 1) of each fault on one endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointFaults {
    pub unavailable: f64,
    pub rate_limited: f64,
    pub drop: f64,
}

/// `[chaos]`, and the body of the management API's `POST /chaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChaosConfig {
    /// Seed of the random draws; unset: one is picked (and logged).
    pub seed: Option<u64>,
    /// Fault probabilities by endpoint name; `"*"` applies to every
    /// endpoint without an entry of its own.
    pub endpoints: BTreeMap<String, EndpointFaults>,
    /// The `Retry-After` of injected 503 and 429 answers, in seconds.
    pub retry_after: u64,
    /// Finalize answers `processing` and the certificate is issued this
    /// many seconds later (0: at once, as usual).
    pub finalize_delay: u64,
    /// Probability that a validation fails whatever the client did.
    pub validation_failure: f64,
    /// The problem type of such a failure (`connection`, `dns`,
    /// `unauthorized`, `incorrectResponse`, `tls`, `caa`).
    pub validation_error: String,
    /// Authorizations, pending and valid, expire this many seconds after
    /// they are made or validated (0: the configured lifetimes).
    pub authz_lifetime: u64,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            seed: None,
            endpoints: BTreeMap::new(),
            retry_after: 3,
            finalize_delay: 0,
            validation_failure: 0.0,
            validation_error: "connection".to_owned(),
            authz_lifetime: 0,
        }
    }
}

/// The problem types a forced validation failure may have.
const VALIDATION_ERRORS: [(&str, ErrorKind); 6] = [
    ("connection", ErrorKind::Connection),
    ("dns", ErrorKind::Dns),
    ("unauthorized", ErrorKind::Unauthorized),
    ("incorrectResponse", ErrorKind::IncorrectResponse),
    ("tls", ErrorKind::Tls),
    ("caa", ErrorKind::Caa),
];

impl ChaosConfig {
    /// Whether any knob is on.
    pub fn is_active(&self) -> bool {
        self.endpoints
            .values()
            .any(|f| f.unavailable + f.rate_limited + f.drop > 0.0)
            || self.finalize_delay > 0
            || self.validation_failure > 0.0
            || self.authz_lifetime > 0
    }

    /// Checks every field; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let probability = |name: String, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(format!("chaos.{name} must be between 0 and 1, not {p}"))
            }
        };
        for (name, f) in &self.endpoints {
            if name != "*" && Endpoint::parse(name).is_none() {
                let names: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
                return Err(format!(
                    "chaos.endpoints: {name:?} is not \"*\" or one of {}",
                    names.join(", ")
                ));
            }
            probability(format!("endpoints.{name}.unavailable"), f.unavailable)?;
            probability(format!("endpoints.{name}.rate_limited"), f.rate_limited)?;
            probability(format!("endpoints.{name}.drop"), f.drop)?;
            if f.unavailable + f.rate_limited + f.drop > 1.0 {
                return Err(format!(
                    "chaos.endpoints.{name}: the probabilities add up to more than 1"
                ));
            }
        }
        probability("validation_failure".into(), self.validation_failure)?;
        if validation_kind(&self.validation_error).is_none() {
            let names: Vec<&str> = VALIDATION_ERRORS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "chaos.validation_error: {:?} is not one of {}",
                self.validation_error,
                names.join(", ")
            ));
        }
        let max = MAX_DELAY.as_secs();
        for (name, v) in [
            ("retry_after", self.retry_after),
            ("finalize_delay", self.finalize_delay),
            ("authz_lifetime", self.authz_lifetime),
        ] {
            if v > max {
                return Err(format!("chaos.{name} must be at most {max} seconds"));
            }
        }
        if self.retry_after == 0 {
            return Err("chaos.retry_after must be at least 1 second".into());
        }
        Ok(())
    }

    /// `PEBBLE_CHAOS_*` (pebble mode): the same knobs for every endpoint.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let float = |name: &str, v: String| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| format!("{name}={v:?} is not a number from 0 to 1"))
        };
        let int = |name: &str, v: String| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{name}={v:?} is not a whole number of seconds"))
        };
        if let Some(v) = get("PEBBLE_CHAOS_SEED") {
            self.seed = Some(
                v.trim()
                    .parse()
                    .map_err(|_| format!("PEBBLE_CHAOS_SEED={v:?} is not a number"))?,
            );
        }
        let mut all = self.endpoints.get("*").copied().unwrap_or_default();
        let mut touched = false;
        if let Some(v) = get("PEBBLE_CHAOS_UNAVAILABLE") {
            all.unavailable = float("PEBBLE_CHAOS_UNAVAILABLE", v)?;
            touched = true;
        }
        if let Some(v) = get("PEBBLE_CHAOS_RATELIMITED") {
            all.rate_limited = float("PEBBLE_CHAOS_RATELIMITED", v)?;
            touched = true;
        }
        if let Some(v) = get("PEBBLE_CHAOS_DROP") {
            all.drop = float("PEBBLE_CHAOS_DROP", v)?;
            touched = true;
        }
        if touched {
            self.endpoints.insert("*".to_owned(), all);
        }
        if let Some(v) = get("PEBBLE_CHAOS_RETRY_AFTER") {
            self.retry_after = int("PEBBLE_CHAOS_RETRY_AFTER", v)?;
        }
        if let Some(v) = get("PEBBLE_CHAOS_FINALIZE_DELAY") {
            self.finalize_delay = int("PEBBLE_CHAOS_FINALIZE_DELAY", v)?;
        }
        if let Some(v) = get("PEBBLE_CHAOS_VALIDATION_FAILURE") {
            self.validation_failure = float("PEBBLE_CHAOS_VALIDATION_FAILURE", v)?;
        }
        if let Some(v) = get("PEBBLE_CHAOS_VALIDATION_ERROR") {
            self.validation_error = v.trim().to_owned();
        }
        if let Some(v) = get("PEBBLE_CHAOS_AUTHZ_LIFETIME") {
            self.authz_lifetime = int("PEBBLE_CHAOS_AUTHZ_LIFETIME", v)?;
        }
        self.validate()
    }
}

fn validation_kind(name: &str) -> Option<ErrorKind> {
    VALIDATION_ERRORS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
}

/// A fault waiting for the next request to its endpoint (management API
/// `POST /chaos/next`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueuedFault {
    pub endpoint: String,
    pub fault: Fault,
    /// Seconds; the `retry_after` knob when absent.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// How many requests in a row get it (default 1).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// SplitMix64 (Steele, Lea and Flood, 2014): small, fast, and fully
/// determined by its seed, which is all chaos needs of a generator.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Queued {
    endpoint: Endpoint,
    fault: Fault,
    retry_after: u64,
    left: u32,
}

struct State {
    config: ChaosConfig,
    rng: SplitMix64,
    queue: VecDeque<Queued>,
    /// Clients told to come back later, by address and endpoint: the fault
    /// they were given and when they may come back.
    holds: HashMap<(Option<IpAddr>, Endpoint), (Fault, Instant)>,
}

/// The chaos knobs of one server, shared by the front end, the RA and the
/// VA.
pub(crate) struct Chaos {
    /// Whether anything can happen: the request path skips the lock when
    /// not.
    active: AtomicBool,
    state: Mutex<State>,
}

impl std::fmt::Debug for Chaos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chaos")
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Chaos {
    /// Chaos as configured (`config` must have passed `validate`).
    pub(crate) fn new(config: ChaosConfig) -> Chaos {
        let seed = config.seed.unwrap_or_else(|| {
            let mut b = [0u8; 8];
            crate::rand::fill(&mut b);
            u64::from_le_bytes(b)
        });
        if config.is_active() {
            tracing::warn!(
                seed,
                "chaos is on: faults will be injected on purpose (docs/CHAOS.md)"
            );
        }
        Chaos {
            active: AtomicBool::new(config.is_active()),
            state: Mutex::new(State {
                config,
                rng: SplitMix64(seed),
                queue: VecDeque::new(),
                holds: HashMap::new(),
            }),
        }
    }

    #[cfg(test)]
    /// No chaos at all.
    pub(crate) fn off() -> Chaos {
        Chaos::new(ChaosConfig::default())
    }

    /// Whether any fault can happen now (one atomic load): the request
    /// path asks this before working out which endpoint a request is for.
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh_active(&self, s: &State) {
        let active = s.config.is_active() || !s.queue.is_empty() || !s.holds.is_empty();
        self.active.store(active, Ordering::Relaxed);
    }

    /// The knobs now in force.
    pub(crate) fn config(&self) -> ChaosConfig {
        self.lock().config.clone()
    }

    /// Replaces the knobs (the generator is seeded again when `seed` is
    /// given). Queued faults and holds stay.
    pub(crate) fn set(&self, config: ChaosConfig) -> Result<(), String> {
        config.validate()?;
        let mut s = self.lock();
        if let Some(seed) = config.seed {
            s.rng = SplitMix64(seed);
        }
        s.config = config;
        self.refresh_active(&s);
        Ok(())
    }

    /// Everything off: knobs to their defaults, queue and holds emptied.
    pub(crate) fn reset(&self) {
        let mut s = self.lock();
        s.config = ChaosConfig::default();
        s.queue.clear();
        s.holds.clear();
        self.refresh_active(&s);
    }

    /// Queues `fault` for the next `count` requests to its endpoint.
    pub(crate) fn queue(&self, q: QueuedFault) -> Result<(), String> {
        let endpoint = Endpoint::parse(&q.endpoint)
            .ok_or_else(|| format!("{:?} is not an endpoint name", q.endpoint))?;
        if q.count == 0 || q.count > MAX_QUEUED as u32 {
            return Err(format!("count must be from 1 to {MAX_QUEUED}"));
        }
        let retry_after = q.retry_after.unwrap_or(self.lock().config.retry_after);
        if retry_after == 0 || retry_after > MAX_DELAY.as_secs() {
            return Err(format!(
                "retry_after must be from 1 to {} seconds",
                MAX_DELAY.as_secs()
            ));
        }
        let mut s = self.lock();
        if s.queue.len() >= MAX_QUEUED {
            return Err(format!("{MAX_QUEUED} faults are queued already"));
        }
        s.queue.push_back(Queued {
            endpoint,
            fault: q.fault,
            retry_after,
            left: q.count,
        });
        self.refresh_active(&s);
        Ok(())
    }

    /// The fault, if any, for a request from `client` to `endpoint` at
    /// `now`: first a hold still running for that client and endpoint, then
    /// a queued fault, then a random draw.
    pub(crate) fn endpoint_fault(
        &self,
        endpoint: Endpoint,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Option<Injected> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let mut s = self.lock();
        let key = (client, endpoint);
        if let Some(&(fault, until)) = s.holds.get(&key) {
            if until > now {
                let left = until - now;
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                return Some(Injected {
                    fault,
                    retry_after: secs.max(1),
                });
            }
            s.holds.remove(&key);
        }
        let injected = if let Some(i) = s.queue.iter().position(|q| q.endpoint == endpoint) {
            let q = &mut s.queue[i];
            let injected = Injected {
                fault: q.fault,
                retry_after: q.retry_after,
            };
            q.left -= 1;
            if q.left == 0 {
                s.queue.remove(i);
            }
            Some(injected)
        } else {
            let faults = s
                .config
                .endpoints
                .get(endpoint.name())
                .or_else(|| s.config.endpoints.get("*"))
                .copied()
                .unwrap_or_default();
            if faults.unavailable + faults.rate_limited + faults.drop <= 0.0 {
                None
            } else {
                let x = s.rng.unit();
                let retry_after = s.config.retry_after;
                let fault = if x < faults.unavailable {
                    Some(Fault::Unavailable)
                } else if x < faults.unavailable + faults.rate_limited {
                    Some(Fault::RateLimited)
                } else if x < faults.unavailable + faults.rate_limited + faults.drop {
                    Some(Fault::Drop)
                } else {
                    None
                };
                fault.map(|fault| Injected { fault, retry_after })
            }
        };
        if let Some(i) = injected.filter(|i| i.fault != Fault::Drop) {
            if s.holds.len() >= MAX_HOLDS {
                s.holds.retain(|_, (_, until)| *until > now);
            }
            if s.holds.len() < MAX_HOLDS {
                s.holds
                    .insert(key, (i.fault, now + Duration::from_secs(i.retry_after)));
            }
        }
        if !s.config.is_active() && s.queue.is_empty() {
            // Only holds are left: forget the expired ones, so that chaos
            // goes quiet (and off the request path) once they are over.
            s.holds.retain(|_, (_, until)| *until > now);
        }
        self.refresh_active(&s);
        injected
    }

    /// How long finalize waits before issuing, when it is to answer
    /// `processing` first.
    pub(crate) fn finalize_delay(&self) -> Option<Duration> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let secs = self.lock().config.finalize_delay;
        (secs > 0).then(|| Duration::from_secs(secs))
    }

    /// Whether this validation is to fail, and with what problem type.
    pub(crate) fn validation_failure(&self) -> Option<ErrorKind> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let mut s = self.lock();
        let p = s.config.validation_failure;
        if p <= 0.0 || s.rng.unit() >= p {
            return None;
        }
        validation_kind(&s.config.validation_error)
    }

    /// The lifetime of new and newly valid authorizations, when shortened.
    pub(crate) fn authz_lifetime(&self) -> Option<Duration> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let secs = self.lock().config.authz_lifetime;
        (secs > 0).then(|| Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut ChaosConfig)) -> ChaosConfig {
        let mut c = ChaosConfig {
            seed: Some(7),
            ..ChaosConfig::default()
        };
        f(&mut c);
        c.validate().unwrap();
        c
    }

    #[test]
    fn off_injects_nothing() {
        let chaos = Chaos::off();
        let now = Instant::now();
        for e in Endpoint::ALL {
            assert_eq!(chaos.endpoint_fault(e, None, now), None);
        }
        assert_eq!(chaos.finalize_delay(), None);
        assert_eq!(chaos.validation_failure(), None);
        assert_eq!(chaos.authz_lifetime(), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let config = with(|c| {
            c.endpoints.insert(
                "*".into(),
                EndpointFaults {
                    unavailable: 0.2,
                    rate_limited: 0.2,
                    drop: 0.1,
                },
            );
        });
        let run = || {
            let chaos = Chaos::new(config.clone());
            let now = Instant::now();
            // A new client address each time: no holds in play.
            (0..200u32)
                .map(|i| {
                    let ip = IpAddr::from(i.to_be_bytes());
                    chaos
                        .endpoint_fault(Endpoint::NewOrder, Some(ip), now)
                        .map(|f| f.fault)
                })
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let count = |f: Fault| a.iter().filter(|x| **x == Some(f)).count();
        // 200 draws at 0.2/0.2/0.1: far from 0 and from 200.
        for (f, lo, hi) in [
            (Fault::Unavailable, 15, 70),
            (Fault::RateLimited, 15, 70),
            (Fault::Drop, 3, 45),
        ] {
            assert!((lo..=hi).contains(&count(f)), "{f:?}: {}", count(f));
        }
    }

    #[test]
    fn an_endpoint_entry_overrides_the_star_and_one_means_always() {
        let chaos = Chaos::new(with(|c| {
            c.endpoints.insert(
                "*".into(),
                EndpointFaults {
                    unavailable: 1.0,
                    ..Default::default()
                },
            );
            c.endpoints
                .insert("newNonce".into(), EndpointFaults::default());
        }));
        let now = Instant::now();
        assert_eq!(chaos.endpoint_fault(Endpoint::NewNonce, None, now), None);
        assert_eq!(
            chaos.endpoint_fault(Endpoint::Order, None, now),
            Some(Injected {
                fault: Fault::Unavailable,
                retry_after: 3
            })
        );
    }

    #[test]
    fn a_client_that_comes_back_early_is_refused_again_until_the_time_is_up() {
        let chaos = Chaos::off();
        chaos
            .queue(QueuedFault {
                endpoint: "newOrder".into(),
                fault: Fault::RateLimited,
                retry_after: Some(3),
                count: 1,
            })
            .unwrap();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        let first = chaos
            .endpoint_fault(Endpoint::NewOrder, Some(a), t0)
            .unwrap();
        assert_eq!((first.fault, first.retry_after), (Fault::RateLimited, 3));
        // Other endpoints and other clients are not held.
        assert_eq!(chaos.endpoint_fault(Endpoint::Order, Some(a), t0), None);
        assert_eq!(chaos.endpoint_fault(Endpoint::NewOrder, Some(b), t0), None);
        // Back after 1.5 s: refused again, told 2 s (rounded up).
        let again = chaos
            .endpoint_fault(
                Endpoint::NewOrder,
                Some(a),
                t0 + Duration::from_millis(1500),
            )
            .unwrap();
        assert_eq!((again.fault, again.retry_after), (Fault::RateLimited, 2));
        // Back on time: served, and chaos is quiet again.
        assert_eq!(
            chaos.endpoint_fault(Endpoint::NewOrder, Some(a), t0 + Duration::from_secs(3)),
            None
        );
        assert!(!chaos.is_active());
    }

    #[test]
    fn queued_faults_are_used_in_order_and_count_down() {
        let chaos = Chaos::off();
        for (fault, count) in [(Fault::Drop, 2), (Fault::Unavailable, 1)] {
            chaos
                .queue(QueuedFault {
                    endpoint: "finalize".into(),
                    fault,
                    retry_after: None,
                    count,
                })
                .unwrap();
        }
        let now = Instant::now();
        let got: Vec<_> = (0..4)
            .map(|_| {
                chaos
                    .endpoint_fault(Endpoint::Finalize, None, now)
                    .map(|i| i.fault)
            })
            .collect();
        // Drops hold nothing; the 503 then holds the (None) client.
        assert_eq!(
            got,
            vec![
                Some(Fault::Drop),
                Some(Fault::Drop),
                Some(Fault::Unavailable),
                Some(Fault::Unavailable)
            ]
        );
        chaos.reset();
        assert_eq!(chaos.endpoint_fault(Endpoint::Finalize, None, now), None);
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_named() {
        let bad: Vec<(ChaosConfig, &str)> = vec![
            (
                ChaosConfig {
                    validation_failure: 1.5,
                    ..Default::default()
                },
                "validation_failure",
            ),
            (
                ChaosConfig {
                    validation_error: "malformed".into(),
                    ..Default::default()
                },
                "validation_error",
            ),
            (
                ChaosConfig {
                    retry_after: 0,
                    ..Default::default()
                },
                "retry_after",
            ),
            (
                ChaosConfig {
                    finalize_delay: 7200,
                    ..Default::default()
                },
                "finalize_delay",
            ),
            (
                ChaosConfig {
                    endpoints: [("newOrders".to_owned(), EndpointFaults::default())].into(),
                    ..Default::default()
                },
                "newOrders",
            ),
            (
                ChaosConfig {
                    endpoints: [(
                        "*".to_owned(),
                        EndpointFaults {
                            unavailable: 0.6,
                            rate_limited: 0.6,
                            drop: 0.0,
                        },
                    )]
                    .into(),
                    ..Default::default()
                },
                "add up",
            ),
        ];
        for (c, word) in bad {
            let e = c.validate().unwrap_err();
            assert!(e.contains(word), "{e}");
        }
        let chaos = Chaos::off();
        assert!(chaos
            .queue(QueuedFault {
                endpoint: "nope".into(),
                fault: Fault::Drop,
                retry_after: None,
                count: 1
            })
            .is_err());
    }

    #[test]
    fn pebble_environment() {
        let mut c = ChaosConfig::default();
        let env: HashMap<&str, &str> = [
            ("PEBBLE_CHAOS_SEED", "42"),
            ("PEBBLE_CHAOS_UNAVAILABLE", "0.1"),
            ("PEBBLE_CHAOS_RATELIMITED", "0.05"),
            ("PEBBLE_CHAOS_RETRY_AFTER", "2"),
            ("PEBBLE_CHAOS_FINALIZE_DELAY", "4"),
            ("PEBBLE_CHAOS_VALIDATION_FAILURE", "0.5"),
            ("PEBBLE_CHAOS_VALIDATION_ERROR", "dns"),
            ("PEBBLE_CHAOS_AUTHZ_LIFETIME", "30"),
        ]
        .into();
        c.apply_env(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.seed, Some(42));
        assert_eq!(c.endpoints["*"].unavailable, 0.1);
        assert_eq!(c.endpoints["*"].rate_limited, 0.05);
        assert_eq!(
            (c.retry_after, c.finalize_delay, c.authz_lifetime),
            (2, 4, 30)
        );
        assert_eq!(c.validation_failure, 0.5);
        assert_eq!(c.validation_error, "dns");
        let e = ChaosConfig::default()
            .apply_env(|k| (k == "PEBBLE_CHAOS_DROP").then(|| "lots".to_string()))
            .unwrap_err();
        assert!(e.contains("PEBBLE_CHAOS_DROP"), "{e}");
    }

    #[test]
    fn forced_validation_failures_have_the_chosen_type() {
        let chaos = Chaos::new(with(|c| {
            c.validation_failure = 1.0;
            c.validation_error = "incorrectResponse".into();
        }));
        assert_eq!(
            chaos.validation_failure(),
            Some(ErrorKind::IncorrectResponse)
        );
        chaos
            .set(ChaosConfig {
                finalize_delay: 5,
                authz_lifetime: 20,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(chaos.validation_failure(), None);
        assert_eq!(chaos.finalize_delay(), Some(Duration::from_secs(5)));
        assert_eq!(chaos.authz_lifetime(), Some(Duration::from_secs(20)));
    }
}
