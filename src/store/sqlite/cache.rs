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

/// A map that holds at most `cap` entries and forgets the oldest first.
///
/// Entries live in two generations: new ones go into `young`; when it holds
/// half the capacity it becomes `old`, and the previous `old` is dropped. A
/// record written or read within the last `cap / 2` puts is always found,
/// which is what an issuance flow needs (it reads back what it just wrote),
/// and every operation is O(1). (Evicting "any" entry, e.g. a hash map's
/// first key, is not: the survivors drift to the end of the table, so each
/// eviction scans further and new entries are the ones evicted first.)
pub(super) struct Bounded<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    pub(super) fn new(cap: usize) -> Self {
        Bounded {
            young: HashMap::new(),
            old: HashMap::new(),
            cap: cap.max(2),
        }
    }

    pub(super) fn get(&self, k: &K) -> Option<V> {
        self.young.get(k).or_else(|| self.old.get(k)).cloned()
    }

    pub(super) fn put(&mut self, k: K, v: V) {
        self.old.remove(&k);
        self.young.insert(k, v);
        if self.young.len() >= self.cap / 2 {
            self.old = std::mem::take(&mut self.young);
        }
    }

    pub(super) fn update(&mut self, k: &K, f: impl FnOnce(&mut V)) {
        if let Some(v) = self.young.get_mut(k).or_else(|| self.old.get_mut(k)) {
            f(v)
        }
    }

    /// Applies `f` to every entry.
    pub(super) fn update_all(&mut self, mut f: impl FnMut(&mut V)) {
        self.young.values_mut().for_each(&mut f);
        self.old.values_mut().for_each(&mut f);
    }

    pub(super) fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
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
        let mut b = Bounded::new(4);
        for i in 0..10 {
            b.put(i, i * 10);
            assert!(b.len() <= 4);
        }
        assert_eq!(b.get(&9), Some(90));
        b.update(&9, |v| *v += 1);
        assert_eq!(b.get(&9), Some(91));
        b.update_all(|v| *v += 1);
        assert_eq!(b.get(&9), Some(92));
        b.clear();
        assert_eq!(b.get(&9), None);
    }

    /// What the cache is for: a record put recently is still there however
    /// many were put before it. Evicting an arbitrary hash-map entry failed
    /// this once the map was full (every recent key was gone).
    #[test]
    fn recent_entries_survive_a_full_cache() {
        let cap = 1024;
        let mut b = Bounded::new(cap);
        for i in 0..100_000u64 {
            b.put(format!("id-{i}"), i);
            assert!(b.len() <= cap);
            if i >= 512 {
                for back in [0, 1, 10, 100, 511] {
                    let k = format!("id-{}", i - back);
                    assert_eq!(b.get(&k), Some(i - back), "{k} lost after {i} puts");
                }
            }
        }
    }

    #[test]
    fn a_key_put_again_lives_in_one_generation() {
        let mut b = Bounded::new(4);
        b.put(1, 1);
        b.put(2, 2); // young full: becomes old
        b.put(1, 10); // moves 1 back to young
        assert_eq!(b.get(&1), Some(10));
        assert_eq!(b.len(), 2);
        b.put(3, 3); // young full again: {2} is dropped
        assert_eq!(b.get(&2), None);
        assert_eq!(b.get(&1), Some(10));
        assert_eq!(b.get(&3), Some(3));
    }
}
