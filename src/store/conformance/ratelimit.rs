//! [`RateLimitStore`] conformance: GCRA spends and refunds (TATs in
//! milliseconds), all-or-nothing across a spend's buckets, the clean-up of
//! full buckets and of expired name sets; and the races: concurrent spends
//! of one bucket at its limit (exactly the allowed number succeed, the TAT
//! never goes backwards) and of overlapping buckets named in any order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::both;
use crate::model::AccountId;
use crate::store::ratelimit::{BucketSpend, RateLimitStore};
use crate::store::service::SERVICE_ACCOUNT;

type S = Arc<dyn RateLimitStore>;

/// A spend of `increment` ms from bucket `key`, which may run `burst` ms
/// ahead of now.
fn spend(key: &str, increment: i64, burst: i64) -> BucketSpend {
    BucketSpend {
        key: key.into(),
        increment,
        burst_offset: burst,
    }
}

async fn tat(s: &S, key: &str) -> Option<i64> {
    s.bucket_tats(&[key.to_owned()]).await.unwrap()[0]
}

async fn spend_refund_and_tats(s: S) {
    let now = 1_000_000;
    let a = [spend("orders:acct1", 100, 300)];
    assert_eq!(
        s.bucket_tats(&["orders:acct1".into(), "other".into()])
            .await
            .unwrap(),
        [None, None]
    );
    // Three fit (max(TAT, now) + 100 − now ≤ 300), the fourth does not.
    for i in 1..=3 {
        assert!(s.spend_buckets(&a, now).await.unwrap(), "spend {i}");
        assert_eq!(tat(&s, "orders:acct1").await, Some(now + 100 * i));
    }
    assert!(!s.spend_buckets(&a, now).await.unwrap());
    assert_eq!(tat(&s, "orders:acct1").await, Some(now + 300));
    // 100 ms later, one more fits.
    assert!(s.spend_buckets(&a, now + 100).await.unwrap());
    assert_eq!(tat(&s, "orders:acct1").await, Some(now + 400));
    assert!(!s.spend_buckets(&a, now + 100).await.unwrap());
    // A refund moves the TAT back by the increment, never below now.
    s.refund_buckets(&a, now + 100).await.unwrap();
    assert_eq!(tat(&s, "orders:acct1").await, Some(now + 300));
    s.refund_buckets(&[spend("orders:acct1", 10_000, 300)], now + 150)
        .await
        .unwrap();
    assert_eq!(tat(&s, "orders:acct1").await, Some(now + 150));
    // Refunding a bucket that does not exist creates none.
    s.refund_buckets(&[spend("nothing", 100, 300)], now)
        .await
        .unwrap();
    assert_eq!(tat(&s, "nothing").await, None);
    // Nothing to spend always fits.
    assert!(s.spend_buckets(&[], now).await.unwrap());
    s.refund_buckets(&[], now).await.unwrap();
    // The TATs come back in the order asked.
    let b = [spend("b", 7, 100)];
    assert!(s.spend_buckets(&b, now).await.unwrap());
    let keys = [
        "b".to_owned(),
        "nothing".to_owned(),
        "orders:acct1".to_owned(),
    ];
    assert_eq!(
        s.bucket_tats(&keys).await.unwrap(),
        [Some(now + 7), None, Some(now + 150)]
    );
}

async fn spends_are_all_or_nothing(s: S) {
    let now = 50_000;
    let room = spend("a", 10, 1_000);
    let full = spend("b", 100, 100);
    assert!(s
        .spend_buckets(&[room.clone(), full.clone()], now)
        .await
        .unwrap());
    assert_eq!(
        (tat(&s, "a").await, tat(&s, "b").await),
        (Some(now + 10), Some(now + 100))
    );
    // "b" has no room: neither moves, whatever order they are named in.
    for spends in [[room.clone(), full.clone()], [full.clone(), room.clone()]] {
        assert!(!s.spend_buckets(&spends, now).await.unwrap());
        assert_eq!(
            (tat(&s, "a").await, tat(&s, "b").await),
            (Some(now + 10), Some(now + 100))
        );
    }
    // Once "b" has room again, both move.
    assert!(s
        .spend_buckets(&[full.clone(), room.clone()], now + 100)
        .await
        .unwrap());
    assert_eq!(
        (tat(&s, "a").await, tat(&s, "b").await),
        (Some(now + 110), Some(now + 200))
    );
    // A refund of several buckets moves each by its own increment.
    s.refund_buckets(&[room, full], now + 100).await.unwrap();
    assert_eq!(
        (tat(&s, "a").await, tat(&s, "b").await),
        (Some(now + 100), Some(now + 100))
    );
}

async fn full_buckets_are_forgotten(s: S) {
    assert!(s
        .spend_buckets(&[spend("old", 100, 1_000)], 1_000)
        .await
        .unwrap());
    assert!(s
        .spend_buckets(&[spend("recent", 4_050, 5_000)], 1_000)
        .await
        .unwrap());
    assert_eq!(tat(&s, "old").await, Some(1_100));
    // At 5 000 "old" is full again (TAT passed): a spend deletes it on
    // the way; "recent" (TAT 5 050) stays.
    assert!(s
        .spend_buckets(&[spend("new", 100, 1_000)], 5_000)
        .await
        .unwrap());
    assert_eq!(tat(&s, "old").await, None);
    assert_eq!(tat(&s, "recent").await, Some(5_050));
    // A refused spend cleans up too.
    assert!(!s
        .spend_buckets(&[spend("big", 2_000, 1_000)], 6_000)
        .await
        .unwrap());
    assert_eq!(tat(&s, "recent").await, None);
    assert_eq!(tat(&s, "new").await, None);
}

async fn name_sets(s: S) {
    let (h, h2, h3) = ("aa11", "bb22", "cc33");
    assert!(!s.name_set_issued(h, 0).await.unwrap());
    s.record_name_set(h, 100, 0).await.unwrap();
    assert!(s.name_set_issued(h, 50).await.unwrap());
    assert!(s.name_set_issued(h, 100).await.unwrap());
    assert!(!s.name_set_issued(h, 101).await.unwrap());
    // An earlier notAfter does not shorten it; a later one extends it.
    s.record_name_set(h, 80, 0).await.unwrap();
    assert!(s.name_set_issued(h, 90).await.unwrap());
    s.record_name_set(h, 150, 0).await.unwrap();
    assert!(s.name_set_issued(h, 140).await.unwrap());
    // Recorded at 200, h2 makes the store forget h (expired at 150).
    s.record_name_set(h2, 1_000, 200).await.unwrap();
    assert!(!s.name_set_issued(h, 50).await.unwrap());
    assert!(s.name_set_issued(h2, 1_000).await.unwrap());
    // A set recorded already expired is kept until the next record.
    s.record_name_set(h3, 10, 200).await.unwrap();
    assert!(s.name_set_issued(h3, 5).await.unwrap());
    s.record_name_set(h2, 1_000, 200).await.unwrap();
    assert!(!s.name_set_issued(h3, 5).await.unwrap());
}

async fn pending_authz_count_without_authzs(s: S) {
    // Authorizations are made through `Store`; here there are none.
    for account in [SERVICE_ACCOUNT, "no-such-account"] {
        let n = s
            .pending_authz_count(&AccountId(account.into()), 0)
            .await
            .unwrap();
        assert_eq!(n, (0, None), "{account}");
    }
}

/// Runs `spends` concurrently at their times while another task reads the
/// TAT of `watch` over and over, checking that it never goes backwards;
/// which spends succeeded.
async fn spend_together(s: &S, spends: Vec<(Vec<BucketSpend>, i64)>, watch: &str) -> Vec<bool> {
    let done = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (s, done, key) = (s.clone(), done.clone(), watch.to_owned());
        async move {
            let mut last = None;
            let mut reads = 0u32;
            while !done.load(Ordering::SeqCst) || reads == 0 {
                let t = tat(&s, &key).await;
                assert!(t >= last, "TAT of {key} went back from {last:?} to {t:?}");
                last = t;
                reads += 1;
            }
        }
    });
    let tasks = spends.into_iter().map(|(list, now)| {
        let s = s.clone();
        tokio::spawn(async move { s.spend_buckets(&list, now).await.unwrap() })
    });
    let results = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    results
}

async fn concurrent_spends_of_one_bucket(s: S) {
    // Burst of 5 at one time: exactly 5 of 24 succeed, and the TAT is
    // exactly 5 increments ahead (no update lost).
    let now = 1_000_000;
    let one = || vec![spend("newOrders:acct", 100, 500)];
    let ok = spend_together(
        &s,
        (0..24).map(|_| (one(), now)).collect(),
        "newOrders:acct",
    )
    .await;
    assert_eq!(ok.iter().filter(|x| **x).count(), 5, "{ok:?}");
    assert_eq!(tat(&s, "newOrders:acct").await, Some(now + 500));
    // Instances whose clocks differ by 30 ms: whichever spends first sets
    // the start, the others add to it; never more than the burst allows.
    let later = now + 10_000;
    let mixed = (0..24).map(|i| (one(), later + 30 * (i % 2))).collect();
    let ok = spend_together(&s, mixed, "newOrders:acct").await;
    let n = ok.iter().filter(|x| **x).count() as i64;
    assert!((4..=5).contains(&n), "{ok:?}");
    let t = tat(&s, "newOrders:acct").await.unwrap();
    assert!(
        t == later + 100 * n || t == later + 30 + 100 * n,
        "{t} after {n}"
    );
}

async fn concurrent_spends_of_overlapping_buckets(s: S) {
    // Every spend takes "s1" (room for 4) and "s2" (room for all), named
    // in either order, plus a bucket of its own sorted before or after
    // them: exactly 4 succeed, each with all of its buckets moved, and a
    // refused spend moves none.
    let now = 2_000_000;
    let spends: Vec<(Vec<BucketSpend>, i64)> = (0..20)
        .map(|i| {
            let own = spend(
                &format!("{}{i:02}", if i % 2 == 0 { "a" } else { "z" }),
                10,
                1_000,
            );
            let (s1, s2) = (spend("s1", 100, 400), spend("s2", 7, 10_000));
            let list = if i % 3 == 0 {
                vec![s1, own, s2]
            } else {
                vec![s2, s1, own]
            };
            (list, now)
        })
        .collect();
    let owners: Vec<String> = spends
        .iter()
        .map(|(l, _)| l.iter().find(|b| b.key.len() == 3).unwrap().key.clone())
        .collect();
    let ok = spend_together(&s, spends, "s1").await;
    assert_eq!(ok.iter().filter(|x| **x).count(), 4, "{ok:?}");
    assert_eq!(tat(&s, "s1").await, Some(now + 400));
    assert_eq!(tat(&s, "s2").await, Some(now + 28));
    for (own, won) in owners.iter().zip(&ok) {
        let t = tat(&s, own).await;
        if *won {
            assert_eq!(t, Some(now + 10), "{own}");
        } else {
            // Untouched: still full (a bucket at or before now is full).
            assert!(t.is_none_or(|t| t <= now), "{own}: {t:?}");
        }
    }
}

async fn concurrent_spends_and_refunds(s: S) {
    // Spends and refunds of the same two buckets, named in either order,
    // all at one time: none fails (they cannot deadlock each other), and
    // each TAT ends between now and now + its burst.
    let now = 3_000_000;
    let calls = (0..24).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            let (s1, s2) = (spend("s1", 100, 400), spend("s2", 50, 300));
            let list = if i % 2 == 0 {
                vec![s1, s2]
            } else {
                vec![s2, s1]
            };
            if i % 3 == 0 {
                s.refund_buckets(&list, now).await.map(|()| true)
            } else {
                s.spend_buckets(&list, now).await
            }
        })
    });
    for r in futures_util::future::join_all(calls).await {
        r.unwrap().unwrap();
    }
    for (key, burst) in [("s1", 400), ("s2", 300)] {
        let t = tat(&s, key).await;
        assert!(
            t.is_none_or(|t| (now..=now + burst).contains(&t)),
            "{key}: {t:?}"
        );
    }
}

both!(crate::store::ratelimit::RateLimitStore;
    spend_refund_and_tats,
    spends_are_all_or_nothing,
    full_buckets_are_forgotten,
    name_sets,
    pending_authz_count_without_authzs,
    concurrent_spends_of_one_bucket,
    concurrent_spends_of_overlapping_buckets,
    concurrent_spends_and_refunds,
);
