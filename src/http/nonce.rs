//! Replay nonces (RFC 8555 §6.5) in fixed memory.
//!
//! A nonce is a 64-bit counter plus a truncated HMAC of it under a key made
//! at start, base64url-encoded (22 characters). The server remembers which
//! of the last [`WINDOW`] counters are still unused in a bitmap, so memory is
//! fixed (128 KiB) however many nonces are handed out; a nonce older than
//! the window, or older than the configured lifetime, is refused as
//! `badNonce` and the client simply retries with the fresh nonce it gets.
//! Nonces do not survive a restart (the key is new), which RFC 8555 allows.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;

use crate::jose::b64;

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

/// Issues and redeems nonces. Cheap to share: one short lock per call.
pub(crate) struct NonceService {
    key: hmac::Key,
    lifetime: Duration,
    inner: Mutex<Inner>,
}

impl NonceService {
    pub(crate) fn new(lifetime: Duration) -> NonceService {
        let mut secret = [0u8; 32];
        crate::rand::fill(&mut secret);
        // Start the counter at a random point so nonces do not reveal how
        // many requests the server has answered.
        let mut start = [0u8; 8];
        crate::rand::fill(&mut start);
        let start = u64::from_be_bytes(start) >> 2;
        NonceService {
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

    /// A fresh nonce.
    pub(crate) fn issue(&self) -> String {
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

    /// Spends a nonce: true exactly once for a nonce this server issued that
    /// is neither too old nor already used.
    pub(crate) fn redeem(&self, nonce: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use() {
        let s = NonceService::new(Duration::from_secs(60));
        let n = s.issue();
        assert_eq!(n.len(), 22);
        assert!(s.redeem(&n));
        assert!(!s.redeem(&n));
    }

    #[test]
    fn forged_and_foreign_nonces_are_refused() {
        let a = NonceService::new(Duration::from_secs(60));
        let b = NonceService::new(Duration::from_secs(60));
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
        let s = NonceService::new(Duration::from_secs(60));
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
        let s = NonceService::new(Duration::from_millis(0));
        let n = s.issue();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!s.redeem(&n));
    }

    #[test]
    fn many_outstanding_nonces_each_redeem_once() {
        let s = NonceService::new(Duration::from_secs(60));
        let all: Vec<String> = (0..10_000).map(|_| s.issue()).collect();
        for n in all.iter().rev() {
            assert!(s.redeem(n));
        }
        assert!(all.iter().all(|n| !s.redeem(n)));
    }
}
