//! Time, injected so that tests can fix it.

#[cfg(test)]
use std::sync::atomic::{AtomicI64, Ordering};

use crate::model::Timestamp;

/// A source of the current time.
pub(crate) trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> Timestamp;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

/// The system's wall clock.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
    fn now_ms(&self) -> i64 {
        let t = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        i64::try_from(t).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to (tests).
#[cfg(test)]
#[derive(Default)]
pub(crate) struct FakeClock(AtomicI64);

#[cfg(test)]
impl FakeClock {
    pub(crate) fn new(now: Timestamp) -> FakeClock {
        FakeClock(AtomicI64::new(now))
    }

    pub(crate) fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 text of a timestamp, as ACME resources show times.
pub(crate) fn rfc3339(ts: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses RFC 3339 text into a timestamp.
pub(crate) fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}
