//! Finalize leases on a database no other instance shares.
//!
//! A lease keeps a second finalize of the same order out while the first
//! signs, and shows the order as "processing" meanwhile. Both are concerns
//! of this process alone: no other instance finalizes on a SQLite
//! database, and a lease must not outlive the process that took it (a
//! restart makes the order ready again). So the lease is process state, as
//! the replay nonces are, and taking or giving one back writes nothing to
//! the database: an order costs one commit fewer. PostgreSQL, which a
//! fleet shares, keeps its leases in the orders table.
//!
//! An entry leaves the map when its certificate is stored, when it is
//! given back (alone, or with every lease or its owner's), or, for a
//! finalize whose request was dropped part-way, when the map has grown to
//! [`SWEEP_AT`] entries and this one has run out.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::model::{Order, OrderId, Timestamp};

/// Entries past which a claim first drops the leases that have run out.
pub(super) const SWEEP_AT: usize = 1024;

struct Lease {
    owner: String,
    until: Timestamp,
}

/// The leases this process holds, by order.
#[derive(Default)]
pub(super) struct Leases(Mutex<HashMap<OrderId, Lease>>);

impl Leases {
    fn map(&self) -> MutexGuard<'_, HashMap<OrderId, Lease>> {
        // Nothing below can panic part-way through an update: a poisoned
        // lock still holds a consistent map.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `order`'s lease for `owner` until `until`, if no lease on it
    /// runs at `now`. The caller then checks the order, read after this,
    /// and gives the lease back if the order cannot be finalized.
    pub(super) fn claim(
        &self,
        order: &OrderId,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> bool {
        let mut map = self.map();
        if map.get(order).is_some_and(|l| l.until > now) {
            return false;
        }
        if map.len() >= SWEEP_AT {
            map.retain(|_, l| l.until > now);
        }
        map.insert(
            order.clone(),
            Lease {
                owner: owner.to_owned(),
                until,
            },
        );
        true
    }

    /// After a claim, with `order` read while the lease was held (a
    /// certificate stored before the claim is then seen): keeps the lease
    /// if the order can be finalized, gives it back otherwise.
    pub(super) fn keep_if_finalizable(
        &self,
        id: &OrderId,
        owner: &str,
        order: Option<&Order>,
    ) -> bool {
        let ok = order.is_some_and(|o| o.error.is_none() && o.cert_id.is_none());
        if !ok {
            self.release(id, owner);
        }
        ok
    }

    /// Gives `order`'s lease back if `owner` holds it.
    pub(super) fn release(&self, order: &OrderId, owner: &str) {
        let mut map = self.map();
        if map.get(order).is_some_and(|l| l.owner == owner) {
            map.remove(order);
        }
    }

    /// Ends `order`'s lease, whoever holds it: its certificate is stored.
    pub(super) fn end(&self, order: &OrderId) {
        self.map().remove(order);
    }

    /// Drops every lease; how many there were.
    pub(super) fn release_all(&self) -> u64 {
        let mut map = self.map();
        let n = map.len();
        map.clear();
        n as u64
    }

    /// Drops the leases `owner` holds; how many there were.
    pub(super) fn release_all_of(&self, owner: &str) -> u64 {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, l| l.owner != owner);
        (before - map.len()) as u64
    }

    /// `order` as stored, with the lease this process holds on it.
    pub(super) fn overlay(&self, mut order: Order) -> Order {
        if let Some(lease) = self.map().get(&order.id) {
            order.processing_until = Some(lease.until);
        }
        order
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map().len()
    }
}
