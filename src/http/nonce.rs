//! Replay nonces (RFC 8555 §6.5).
//!
//! Two kinds, one interface ([`NonceService`]):
//! - **Local** (one instance, SQLite): a 64-bit counter plus a truncated
//!   HMAC of it under a key made at start, base64url-encoded (22
//!   characters). The server remembers which of the last [`WINDOW`]
//!   counters are still unused in a bitmap, so memory is fixed (128 KiB)
//!   however many nonces are handed out; a nonce older than the window, or
//!   older than the configured lifetime, is refused as `badNonce` and the
//!   client simply retries with the fresh nonce it gets. Nonces do not
//!   survive a restart (the key is new), which RFC 8555 allows.
//! - **Shared** (several instances on PostgreSQL): issue time, 8 random
//!   bytes and a truncated HMAC under a key every instance reads from the
//!   database (32 characters). Any instance checks the MAC and the age
//!   without the database, then spends the nonce with one insert that
//!   succeeds exactly once over the fleet ([`SharedStore::spend_nonce`]).
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;

use crate::clock::Clock;
use crate::error::Result;
use crate::jose::b64;
use crate::store::shared::SharedStore;

/// How many most recent nonces can be outstanding at once.
pub(crate) const WINDOW: u64 = 1 << 20;
const MAC_LEN: usize = 8;
const RAW_LEN: usize = 8 + MAC_LEN;

struct Inner {
    next: u64,
    unused: Vec<u64>,
    /// (time t, k): every counter below k was issued at or before t. One
    /// entry a second at most.
    checkpoints: VecDeque<(Instant, u64)>,
    /// Counters below this are expired.
    floor: u64,
}

/// Issues and redeems nonces, in this process or over every instance of a
/// shared database.
pub(crate) enum NonceService {
    Local(LocalNonces),
    Shared(SharedNonces),
}

impl NonceService {
    /// Nonces this process alone issues and redeems.
    pub(crate) fn local(lifetime: Duration) -> NonceService {
        NonceService::Local(LocalNonces::new(lifetime))
    }

    /// A fresh nonce.
    pub(crate) fn issue(&self) -> String {
        match self {
            NonceService::Local(l) => l.issue(),
            NonceService::Shared(s) => s.issue(),
        }
    }

    /// Spends a nonce: true exactly once for a nonce this server (or fleet)
    /// issued that is neither too old nor already used. An error means the
    /// database could not say (the request is answered 503).
    pub(crate) async fn redeem(&self, nonce: &str) -> Result<bool> {
        match self {
            NonceService::Local(l) => Ok(l.redeem(nonce)),
            NonceService::Shared(s) => s.redeem(nonce).await,
        }
    }
}

/// Nonces of one process: a counter and a bitmap of unused ones. Cheap to
/// share: one short lock per call.
pub(crate) struct LocalNonces {
    key: hmac::Key,
    lifetime: Duration,
    inner: Mutex<Inner>,
}

impl LocalNonces {
    fn new(lifetime: Duration) -> LocalNonces {
        let mut secret = [0u8; 32];
        crate::rand::fill(&mut secret);
        // Start the counter at a random point so nonces do not reveal how
        // many requests the server has answered.
        let mut start = [0u8; 8];
        crate::rand::fill(&mut start);
        let start = u64::from_be_bytes(start) >> 2;
        LocalNonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            lifetime,
            inner: Mutex::new(Inner {
                next: start,
                unused: vec![0; (WINDOW / 64) as usize],
                checkpoints: VecDeque::new(),
                floor: start,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The critical sections below cannot panic, so a poisoned lock only
        // means a panic elsewhere in the thread; the bitmap is still sound.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn prune(&self, inner: &mut Inner, now: Instant) {
        while let Some(&(t, counter)) = inner.checkpoints.front() {
            if now.duration_since(t) >= self.lifetime {
                inner.floor = inner.floor.max(counter);
                inner.checkpoints.pop_front();
            } else {
                break;
            }
        }
    }

    fn issue(&self) -> String {
        let now = Instant::now();
        let counter = {
            let mut inner = self.lock();
            let c = inner.next;
            inner.next += 1;
            let (word, bit) = ((c % WINDOW / 64) as usize, c % 64);
            inner.unused[word] |= 1 << bit;
            let stale = inner
                .checkpoints
                .back()
                .is_none_or(|(t, _)| now.duration_since(*t) >= Duration::from_secs(1));
            if stale {
                inner.checkpoints.push_back((now, c + 1));
                self.prune(&mut inner, now);
            }
            c
        };
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&counter.to_be_bytes());
        let tag = hmac::sign(&self.key, &raw[..8]);
        raw[8..].copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        b64::encode(raw)
    }

    fn redeem(&self, nonce: &str) -> bool {
        if nonce.len() != 22 {
            return false;
        }
        let Ok(raw) = b64::decode(nonce) else {
            return false;
        };
        if raw.len() != RAW_LEN {
            return false;
        }
        let tag = hmac::sign(&self.key, &raw[..8]);
        if aws_lc_rs::constant_time::verify_slices_are_equal(&tag.as_ref()[..MAC_LEN], &raw[8..])
            .is_err()
        {
            return false;
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&raw[..8]);
        let counter = u64::from_be_bytes(c);
        let mut inner = self.lock();
        self.prune(&mut inner, Instant::now());
        if counter >= inner.next || inner.next - counter > WINDOW || counter < inner.floor {
            return false;
        }
        let (word, bit) = ((counter % WINDOW / 64) as usize, counter % 64);
        let was_unused = inner.unused[word] & (1 << bit) != 0;
        inner.unused[word] &= !(1 << bit);
        was_unused
    }
}

/// The name of the nonce key in the database's shared secrets.
const SHARED_KEY_NAME: &str = "nonce-hmac-sha256";
/// Issue time (ms), random bytes, MAC.
const SHARED_RAW_LEN: usize = 8 + 8 + MAC_LEN;
/// A nonce's length in base64url.
const SHARED_LEN: usize = 32;
/// How far ahead of this instance's clock another instance's may run.
const CLOCK_SKEW_MS: i64 = 60_000;
/// Spent nonces are pruned about this often, by whichever instance notices.
const PRUNE_EVERY_MS: i64 = 60_000;

/// A well-formed, live fleet nonce, ready to be spent.
pub(crate) struct NonceTicket {
    /// The nonce's identity (issue time and random bytes).
    pub id: Vec<u8>,
    /// When its spent record may be forgotten (ms since the epoch).
    pub keep_until_ms: i64,
}

/// Nonces every instance on one database issues and redeems.
pub(crate) struct SharedNonces {
    key: hmac::Key,
    lifetime_ms: i64,
    store: Arc<dyn SharedStore>,
    clock: Arc<dyn Clock>,
    last_prune_ms: AtomicI64,
}

impl SharedNonces {
    /// Reads (or, first of all instances, makes) the nonce key.
    pub(crate) async fn open(
        store: Arc<dyn SharedStore>,
        clock: Arc<dyn Clock>,
        lifetime: Duration,
    ) -> Result<NonceService> {
        let mut fresh = [0u8; 32];
        crate::rand::fill(&mut fresh);
        let secret = store.shared_secret(SHARED_KEY_NAME, &fresh).await?;
        Ok(NonceService::Shared(SharedNonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            lifetime_ms: i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX),
            store,
            clock,
            last_prune_ms: AtomicI64::new(0),
        }))
    }

    fn issue(&self) -> String {
        let mut raw = [0u8; SHARED_RAW_LEN];
        raw[..8].copy_from_slice(&self.clock.now_ms().to_be_bytes());
        crate::rand::fill(&mut raw[8..16]);
        let tag = hmac::sign(&self.key, &raw[..16]);
        raw[16..].copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        b64::encode(raw)
    }

    /// The nonce's issue time, if its MAC is ours.
    fn issued_ms(&self, nonce: &str) -> Option<(i64, Vec<u8>)> {
        if nonce.len() != SHARED_LEN {
            return None;
        }
        let raw = b64::decode(nonce).ok()?;
        if raw.len() != SHARED_RAW_LEN {
            return None;
        }
        let tag = hmac::sign(&self.key, &raw[..16]);
        aws_lc_rs::constant_time::verify_slices_are_equal(&tag.as_ref()[..MAC_LEN], &raw[16..])
            .ok()?;
        let mut t = [0u8; 8];
        t.copy_from_slice(&raw[..8]);
        Some((i64::from_be_bytes(t), raw[..16].to_vec()))
    }

    /// What spending `nonce` writes: its id and how long the record is
    /// kept; None for a forged, foreign or expired nonce (refused with no
    /// database write).
    pub(crate) fn ticket(&self, nonce: &str) -> Option<NonceTicket> {
        let (issued, id) = self.issued_ms(nonce)?;
        let now = self.clock.now_ms();
        let age = now.saturating_sub(issued);
        if age >= self.lifetime_ms || age < -CLOCK_SKEW_MS {
            return None;
        }
        self.maybe_prune(now);
        // Kept past its expiry by the skew, so an instance whose clock is
        // behind still finds it spent.
        let keep_until_ms = issued
            .saturating_add(self.lifetime_ms)
            .saturating_add(CLOCK_SKEW_MS);
        Some(NonceTicket { id, keep_until_ms })
    }

    async fn redeem(&self, nonce: &str) -> Result<bool> {
        let Some(t) = self.ticket(nonce) else {
            return Ok(false);
        };
        self.store.spend_nonce(&t.id, t.keep_until_ms).await
    }

    /// Starts a prune of expired spent nonces when none ran for a while.
    fn maybe_prune(&self, now: i64) {
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now - last < PRUNE_EVERY_MS
            || self
                .last_prune_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.prune_nonces(now).await {
                tracing::warn!(error = %e, "pruning spent nonces");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use() {
        let s = LocalNonces::new(Duration::from_secs(60));
        let n = s.issue();
        assert_eq!(n.len(), 22);
        assert!(s.redeem(&n));
        assert!(!s.redeem(&n));
    }

    #[test]
    fn forged_and_foreign_nonces_are_refused() {
        let a = LocalNonces::new(Duration::from_secs(60));
        let b = LocalNonces::new(Duration::from_secs(60));
        let n = a.issue();
        assert!(!b.redeem(&n), "another key's nonce");
        let mut chars: Vec<char> = n.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let forged: String = chars.into_iter().collect();
        assert!(!a.redeem(&forged));
        assert!(!a.redeem("short"));
        assert!(!a.redeem("!!!!!!!!!!!!!!!!!!!!!!"));
        assert!(a.redeem(&n));
    }

    #[test]
    fn out_of_window_nonces_are_refused() {
        let s = LocalNonces::new(Duration::from_secs(60));
        let old = s.issue();
        let kept = s.issue();
        // Move the counter a whole window on without handing out strings.
        s.lock().next += WINDOW;
        assert!(!s.redeem(&old));
        assert!(!s.redeem(&kept));
        let fresh = s.issue();
        assert!(s.redeem(&fresh));
    }

    #[test]
    fn expired_nonces_are_refused() {
        let s = LocalNonces::new(Duration::from_millis(0));
        let n = s.issue();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!s.redeem(&n));
    }

    #[test]
    fn many_outstanding_nonces_each_redeem_once() {
        let s = LocalNonces::new(Duration::from_secs(60));
        let all: Vec<String> = (0..10_000).map(|_| s.issue()).collect();
        for n in all.iter().rev() {
            assert!(s.redeem(n));
        }
        assert!(all.iter().all(|n| !s.redeem(n)));
    }

    /// Two instances' nonce services over one database (SQLite here; the
    /// same on PostgreSQL below when the test cluster is given).
    async fn fleet_nonces(store: Arc<dyn SharedStore>) {
        use crate::clock::FakeClock;
        let clock = Arc::new(FakeClock::new(1_000_000));
        let open =
            |c: Arc<FakeClock>| SharedNonces::open(store.clone(), c, Duration::from_secs(60));
        let (a, b, c) = (
            open(clock.clone()).await.unwrap(),
            open(clock.clone()).await.unwrap(),
            open(clock.clone()).await.unwrap(),
        );
        let n = a.issue();
        assert_eq!(n.len(), SHARED_LEN);
        assert!(
            b.redeem(&n).await.unwrap(),
            "accepted once at another instance"
        );
        assert!(!c.redeem(&n).await.unwrap(), "refused everywhere after");
        assert!(!a.redeem(&n).await.unwrap());
        let local = NonceService::local(Duration::from_secs(60));
        assert!(!a.redeem(&local.issue()).await.unwrap(), "a local nonce");
        let mut forged: Vec<char> = b.issue().chars().collect();
        forged[20] = if forged[20] == 'A' { 'B' } else { 'A' };
        let forged: String = forged.into_iter().collect();
        assert!(!c.redeem(&forged).await.unwrap());
        let old = c.issue();
        clock.advance(60);
        assert!(!a.redeem(&old).await.unwrap(), "expired");
        let fresh = c.issue();
        assert!(a.redeem(&fresh).await.unwrap());
    }

    #[tokio::test]
    async fn fleet_nonces_on_sqlite() {
        let (_dir, store) = crate::test_support::temp_store().await;
        fleet_nonces(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn fleet_nonces_on_postgres() {
        let Some(db) = crate::test_support::pg::fresh_database().await else {
            return;
        };
        let store = crate::store::postgres::PgStore::open(db.url(), 4)
            .await
            .unwrap();
        fleet_nonces(Arc::new(store)).await;
    }
}
