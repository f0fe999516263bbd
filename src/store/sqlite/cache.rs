//! The store's read cache.
//!
//! sqlx runs each SQLite connection on its own thread, so every query is a
//! round trip between threads; the requests of one issuance flow read the
//! records it just wrote from here instead. Coherence: this process is the
//! only writer of its database, the writer task applies each committed
//! batch to the cache in commit order, and a read that missed fills the
//! cache only if no batch was applied while it ran (`generation`), so an old
//! row never replaces a newer one.

use std::collections::HashMap;
use std::hash::Hash;

use crate::model::{Account, AccountId, Authz, AuthzId, CertId, Certificate, Order, OrderId};

/// A map that holds at most `cap` entries; when full, an arbitrary entry
/// makes room (a miss is only slower).
pub(super) struct Bounded<K, V> {
    map: HashMap<K, V>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    pub(super) fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::with_capacity(cap.min(1024)),
            cap,
        }
    }

    pub(super) fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).cloned()
    }

    pub(super) fn put(&mut self, k: K, v: V) {
        if self.map.len() >= self.cap && !self.map.contains_key(&k) {
            if let Some(victim) = self.map.keys().next().cloned() {
                self.map.remove(&victim);
            }
        }
        self.map.insert(k, v);
    }

    pub(super) fn update(&mut self, k: &K, f: impl FnOnce(&mut V)) {
        if let Some(v) = self.map.get_mut(k) {
            f(v)
        }
    }

    /// Applies `f` to every entry.
    pub(super) fn update_all(&mut self, mut f: impl FnMut(&mut V)) {
        self.map.values_mut().for_each(&mut f)
    }

    pub(super) fn clear(&mut self) {
        self.map.clear()
    }
}

/// Entries kept per kind: a few MB at most.
const ACCOUNTS: usize = 4096;
const ORDERS: usize = 4096;
const AUTHZS: usize = 8192;
const CERTS: usize = 1024;

/// Recently written or read records.
pub(super) struct Cache {
    pub(super) accounts: Bounded<AccountId, Account>,
    pub(super) orders: Bounded<OrderId, Order>,
    pub(super) authzs: Bounded<AuthzId, Authz>,
    /// Just-issued certificates, which clients download right away.
    pub(super) certs: Bounded<CertId, Certificate>,
    /// Incremented each time the writer applies a committed batch.
    pub(super) generation: u64,
}

impl Cache {
    pub(super) fn new() -> Cache {
        Cache {
            accounts: Bounded::new(ACCOUNTS),
            orders: Bounded::new(ORDERS),
            authzs: Bounded::new(AUTHZS),
            certs: Bounded::new(CERTS),
            generation: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_never_exceeds_its_capacity() {
        let mut b = Bounded::new(3);
        for i in 0..10 {
            b.put(i, i * 10);
            assert!(b.map.len() <= 3);
        }
        assert_eq!(b.get(&9), Some(90));
        b.update(&9, |v| *v += 1);
        assert_eq!(b.get(&9), Some(91));
        b.clear();
        assert_eq!(b.get(&9), None);
    }
}
