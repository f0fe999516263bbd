//! [`SharedStore`] on every backend: the state several instances agree on.

use std::sync::Arc;

use tokio::sync::Barrier;

use crate::model::service::{Caller, Role};
use crate::store::shared::{
    GrantHold, GrantLimits, SessionLimits, SharedStore, StoredDownload, StoredFlash, StoredGrant,
    StoredResponder,
};

super::both!(crate::store::shared::SharedStore;
    secrets_are_made_once,
    a_nonce_is_spent_once_even_concurrently,
    spent_nonces_are_pruned_after_expiry,
    one_owner_holds_a_job_until_it_expires,
    ari_overrides_are_kept_and_replaced,
    grants_are_bounded_and_taken_once,
    the_revocation_epoch_starts_at_zero,
    crl_numbers_are_distinct_and_increasing,
    ocsp_responders_are_replaced_once,
    sessions_expire_when_idle_and_at_their_lifetime,
    a_full_session_table_is_swept_at_sign_in_and_bounded_under_races,
    a_session_message_is_shown_once_even_concurrently,
    a_session_download_is_taken_once_even_concurrently,
    session_downloads_are_bounded_one_per_serial_and_expire,
    removing_a_session_removes_its_downloads,
);

/// Runs `n` copies of `f` released together; their results in task order.
async fn together<T: Send + 'static, F>(n: usize, f: impl Fn(usize) -> F) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let work = f(i);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

async fn secrets_are_made_once(s: Arc<dyn SharedStore>) {
    let first = s.shared_secret("nonce-key", b"first").await.unwrap();
    assert_eq!(first, b"first");
    let second = s.shared_secret("nonce-key", b"second").await.unwrap();
    assert_eq!(second, b"first", "the first stored secret wins");
    let other = s.shared_secret("other", b"x").await.unwrap();
    assert_eq!(other, b"x");
    let racers = together(8, |i| {
        let s = s.clone();
        async move { s.shared_secret("raced", &[i as u8]).await.unwrap() }
    })
    .await;
    assert!(racers.windows(2).all(|w| w[0] == w[1]), "{racers:?}");
}

async fn a_nonce_is_spent_once_even_concurrently(s: Arc<dyn SharedStore>) {
    assert!(s.spend_nonce(b"n1", 10_000).await.unwrap());
    assert!(!s.spend_nonce(b"n1", 10_000).await.unwrap());
    assert!(s.spend_nonce(b"n2", 10_000).await.unwrap());
    let wins = together(16, |_| {
        let s = s.clone();
        async move { s.spend_nonce(b"raced", 10_000).await.unwrap() }
    })
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1);
}

async fn spent_nonces_are_pruned_after_expiry(s: Arc<dyn SharedStore>) {
    assert!(s.spend_nonce(b"old", 1_000).await.unwrap());
    assert!(s.spend_nonce(b"new", 5_000).await.unwrap());
    assert_eq!(s.prune_nonces(1_000).await.unwrap(), 0, "not before expiry");
    assert_eq!(s.prune_nonces(2_000).await.unwrap(), 1);
    assert!(!s.spend_nonce(b"new", 5_000).await.unwrap(), "kept");
}

async fn one_owner_holds_a_job_until_it_expires(s: Arc<dyn SharedStore>) {
    assert!(s.take_job("crl", "a", 1_000, 2_000).await.unwrap());
    assert!(
        !s.take_job("crl", "b", 1_500, 2_500).await.unwrap(),
        "held by a"
    );
    assert!(
        s.take_job("crl", "a", 1_900, 3_000).await.unwrap(),
        "renewed"
    );
    assert!(
        !s.take_job("crl", "b", 2_500, 3_500).await.unwrap(),
        "renewal counts"
    );
    assert!(
        s.take_job("other", "b", 2_500, 3_500).await.unwrap(),
        "jobs are separate"
    );
    assert!(
        s.take_job("crl", "b", 3_000, 4_000).await.unwrap(),
        "expired: taken over"
    );
    assert!(!s.take_job("crl", "a", 3_100, 4_100).await.unwrap());
    s.release_job("crl", "a").await.unwrap();
    assert!(
        !s.take_job("crl", "c", 3_100, 4_100).await.unwrap(),
        "a no longer held it"
    );
    s.release_job("crl", "b").await.unwrap();
    assert!(
        s.take_job("crl", "c", 3_100, 4_100).await.unwrap(),
        "released"
    );
    let wins = together(8, |i| {
        let s = s.clone();
        async move {
            s.take_job("raced", &format!("owner-{i}"), 10_000, 20_000)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1);
    let wins = together(8, |i| {
        let s = s.clone();
        async move {
            s.take_job("raced", &format!("late-{i}"), 20_000, 30_000)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(
        wins.iter().filter(|w| **w).count(),
        1,
        "one takes the expired lease"
    );
}

async fn ari_overrides_are_kept_and_replaced(s: Arc<dyn SharedStore>) {
    assert_eq!(s.ari_override("0a").await.unwrap(), None);
    s.set_ari_override("0a", r#"{"x":1}"#).await.unwrap();
    s.set_ari_override("0b", r#"{"y":"it's"}"#).await.unwrap();
    s.set_ari_override("0a", r#"{"x":2}"#).await.unwrap();
    assert_eq!(
        s.ari_override("0a").await.unwrap().as_deref(),
        Some(r#"{"x":2}"#)
    );
    assert_eq!(
        s.ari_override("0b").await.unwrap().as_deref(),
        Some(r#"{"y":"it's"}"#)
    );
}

fn grant(caller: &str, serial: &str, expires: i64) -> StoredGrant {
    StoredGrant {
        caller: caller.into(),
        serial: serial.into(),
        format: "pkcs12".into(),
        password_sealed: Some(vec![0, 1, 2, 0xff]),
        expires,
        recovery: Some("rec-1".into()),
    }
}

async fn grants_are_bounded_and_taken_once(s: Arc<dyn SharedStore>) {
    let limits = GrantLimits {
        per_cert: 2,
        per_caller: 3,
        total: 4,
    };
    let hold = |d: &'static [u8], g: StoredGrant, now: i64| {
        let s = s.clone();
        async move { s.hold_grant(d, &g, now, limits).await.unwrap() }
    };
    assert_eq!(
        hold(b"d1", grant("alice", "01", 100), 10).await,
        GrantHold::Held
    );
    assert_eq!(
        hold(b"d2", grant("alice", "01", 100), 10).await,
        GrantHold::Held
    );
    assert_eq!(
        hold(b"d3", grant("alice", "01", 100), 10).await,
        GrantHold::PerCert
    );
    assert_eq!(
        hold(b"d3", grant("alice", "02", 100), 10).await,
        GrantHold::Held
    );
    assert_eq!(
        hold(b"d4", grant("alice", "03", 100), 10).await,
        GrantHold::PerCaller
    );
    assert_eq!(
        hold(b"d4", grant("bob", "03", 100), 10).await,
        GrantHold::Held
    );
    assert_eq!(
        hold(b"d5", grant("carol", "04", 100), 10).await,
        GrantHold::Full
    );

    let peeked = s.peek_grant(b"d1", 50).await.unwrap();
    assert_eq!(
        peeked,
        Some(grant("alice", "01", 100)),
        "every field round-trips"
    );
    assert_eq!(
        s.peek_grant(b"d1", 100).await.unwrap(),
        None,
        "expired at 100"
    );
    assert_eq!(s.peek_grant(b"nope", 50).await.unwrap(), None);

    let takers = together(8, |_| {
        let s = s.clone();
        async move { s.take_grant(b"d2", 50).await.unwrap() }
    })
    .await;
    assert_eq!(takers.iter().filter(|t| t.is_some()).count(), 1);
    assert_eq!(s.peek_grant(b"d2", 50).await.unwrap(), None);
    assert_eq!(s.take_grant(b"d3", 100).await.unwrap(), None, "expired");
    assert_eq!(s.take_grant(b"d3", 50).await.unwrap(), None, "and removed");

    // Expired grants do not count against the bounds.
    let mut none_sealed = grant("carol", "04", 300);
    none_sealed.password_sealed = None;
    none_sealed.recovery = None;
    none_sealed.format = "zip".into();
    assert_eq!(hold(b"d6", none_sealed.clone(), 200).await, GrantHold::Held);
    assert_eq!(s.take_grant(b"d6", 250).await.unwrap(), Some(none_sealed));

    // Concurrent holders never exceed a bound.
    let held = together(8, |i| {
        let s = s.clone();
        async move {
            let d = format!("race-{i}");
            s.hold_grant(d.as_bytes(), &grant("dave", "05", 1_000), 500, limits)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(held.iter().filter(|h| **h == GrantHold::Held).count(), 2);
}

async fn the_revocation_epoch_starts_at_zero(s: Arc<dyn SharedStore>) {
    // Revocations bump it (src/store/conformance/core.rs revokes through the
    // Store trait and checks the epoch); a new database has none.
    assert_eq!(s.revocation_epoch().await.unwrap(), 0);
}

async fn crl_numbers_are_distinct_and_increasing(s: Arc<dyn SharedStore>) {
    assert_eq!(s.next_crl_number("ca", 1_000).await.unwrap(), 1_000);
    assert_eq!(s.next_crl_number("ca", 5).await.unwrap(), 1_001);
    assert_eq!(s.next_crl_number("ca", 2_000).await.unwrap(), 2_000);
    assert_eq!(s.next_crl_number("other", 1).await.unwrap(), 1);
    let mut got = together(8, |_| {
        let s = s.clone();
        async move { s.next_crl_number("ca", 0).await.unwrap() }
    })
    .await;
    got.sort_unstable();
    assert_eq!(got, (2_001..2_009).collect::<Vec<_>>());
}

const SESSIONS: SessionLimits = SessionLimits {
    lifetime: 1_000,
    idle: 100,
    max: 10,
};

fn agent() -> Caller {
    Caller {
        name: "it's agent \"smith\"".into(),
        role: Role::Agent,
    }
}

fn download(serial: &str, expires: i64, sealed: &[u8]) -> StoredDownload {
    StoredDownload {
        serial: serial.into(),
        format: "zip".into(),
        expires,
        recovery: false,
        token_sealed: sealed.to_vec(),
    }
}

async fn sessions_expire_when_idle_and_at_their_lifetime(s: Arc<dyn SharedStore>) {
    assert!(s
        .create_session(b"s1", &agent(), "csrf-1", 10, SESSIONS)
        .await
        .unwrap());
    assert_eq!(s.session(b"nope", 10, SESSIONS).await.unwrap(), None);
    let got = s.session(b"s1", 109, SESSIONS).await.unwrap().unwrap();
    assert_eq!(
        (got.caller, got.csrf.as_str(), got.created, got.last_seen),
        (agent(), "csrf-1", 10, 109),
        "every field round-trips; touched"
    );
    assert!(got.flash.is_none() && got.downloads.is_empty());
    // Touched at 109: idle until 209.
    assert!(s.session(b"s1", 208, SESSIONS).await.unwrap().is_some());
    assert_eq!(s.session(b"s1", 308, SESSIONS).await.unwrap(), None, "idle");
    assert_eq!(
        s.session(b"s1", 250, SESSIONS).await.unwrap(),
        None,
        "an expired session is removed"
    );
    assert!(s
        .create_session(b"s2", &agent(), "csrf-2", 0, SESSIONS)
        .await
        .unwrap());
    for t in (50..1_000).step_by(50) {
        assert!(
            s.session(b"s2", t, SESSIONS).await.unwrap().is_some(),
            "at {t}"
        );
    }
    assert_eq!(
        s.session(b"s2", 1_000, SESSIONS).await.unwrap(),
        None,
        "past its lifetime"
    );
}

async fn a_full_session_table_is_swept_at_sign_in_and_bounded_under_races(s: Arc<dyn SharedStore>) {
    let two = SessionLimits { max: 2, ..SESSIONS };
    assert!(s.create_session(b"a", &agent(), "c", 0, two).await.unwrap());
    assert!(s
        .create_session(b"b", &agent(), "c", 50, two)
        .await
        .unwrap());
    assert!(
        !s.create_session(b"c", &agent(), "c", 60, two)
            .await
            .unwrap(),
        "full"
    );
    assert_eq!(s.session(b"c", 60, two).await.unwrap(), None);
    // At 120 `a` is idle for 120 s: swept, making room; `b` stays.
    assert!(s
        .create_session(b"c", &agent(), "c", 120, two)
        .await
        .unwrap());
    assert!(
        !s.create_session(b"d", &agent(), "c", 120, two)
            .await
            .unwrap(),
        "b and c are live"
    );
    assert!(s.session(b"b", 120, two).await.unwrap().is_some());
    assert_eq!(s.session(b"a", 60, two).await.unwrap(), None, "swept");

    // Concurrent sign-ins never exceed the bound.
    let three = SessionLimits { max: 3, ..SESSIONS };
    let made = together(8, |i| {
        let s = s.clone();
        async move {
            let d = format!("race-{i}");
            s.create_session(d.as_bytes(), &agent(), "c", 10_000, three)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(made.iter().filter(|m| **m).count(), 3, "{made:?}");
    let mut live = 0;
    for i in 0..8 {
        let d = format!("race-{i}");
        live += usize::from(
            s.session(d.as_bytes(), 10_001, three)
                .await
                .unwrap()
                .is_some(),
        );
    }
    assert_eq!(live, 3);
}

async fn a_session_message_is_shown_once_even_concurrently(s: Arc<dyn SharedStore>) {
    assert!(s
        .create_session(b"s", &agent(), "c", 0, SESSIONS)
        .await
        .unwrap());
    let done = StoredFlash {
        failed: false,
        text: "Revoked 'it'.".into(),
    };
    s.set_session_flash(b"s", &done).await.unwrap();
    assert_eq!(
        s.session(b"s", 1, SESSIONS).await.unwrap().unwrap().flash,
        Some(done)
    );
    assert_eq!(
        s.session(b"s", 2, SESSIONS).await.unwrap().unwrap().flash,
        None
    );
    let failed = StoredFlash {
        failed: true,
        text: "no".into(),
    };
    s.set_session_flash(b"s", &failed).await.unwrap();
    s.set_session_flash(b"nope", &failed).await.unwrap();
    let seen = together(8, |_| {
        let s = s.clone();
        async move { s.session(b"s", 3, SESSIONS).await.unwrap().unwrap().flash }
    })
    .await;
    let shown: Vec<_> = seen.into_iter().flatten().collect();
    assert_eq!(shown, vec![failed], "exactly one request shows it");
}

async fn a_session_download_is_taken_once_even_concurrently(s: Arc<dyn SharedStore>) {
    assert!(s
        .create_session(b"s", &agent(), "c", 0, SESSIONS)
        .await
        .unwrap());
    assert!(s
        .create_session(b"t", &agent(), "c", 0, SESSIONS)
        .await
        .unwrap());
    let mut p12 = download("0a", 100, &[0, 1, 2, 0xff]);
    p12.format = "pkcs12".into();
    p12.recovery = true;
    assert!(s.add_session_download(b"s", &p12, 1, 8).await.unwrap());
    assert_eq!(
        s.take_session_download(b"t", "0a", 2).await.unwrap(),
        None,
        "not another session's"
    );
    let takers = together(8, |_| {
        let s = s.clone();
        async move { s.take_session_download(b"s", "0a", 2).await.unwrap() }
    })
    .await;
    let taken: Vec<_> = takers.into_iter().flatten().collect();
    assert_eq!(taken, vec![p12], "exactly one gets it, every field intact");
    assert_eq!(s.take_session_download(b"s", "0a", 3).await.unwrap(), None);
    // An expired one is removed, not returned.
    assert!(s
        .add_session_download(b"s", &download("0b", 100, b"x"), 4, 8)
        .await
        .unwrap());
    assert_eq!(
        s.take_session_download(b"s", "0b", 100).await.unwrap(),
        None
    );
    assert_eq!(s.take_session_download(b"s", "0b", 50).await.unwrap(), None);
}

async fn session_downloads_are_bounded_one_per_serial_and_expire(s: Arc<dyn SharedStore>) {
    assert!(s
        .create_session(b"s", &agent(), "c", 0, SESSIONS)
        .await
        .unwrap());
    assert!(
        !s.add_session_download(b"nope", &download("01", 100, b"x"), 1, 8)
            .await
            .unwrap(),
        "no such session"
    );
    for i in 0..11u8 {
        let d = download(&format!("{i:02x}"), 100, &[i]);
        assert!(s.add_session_download(b"s", &d, 1, 8).await.unwrap());
    }
    let serials = |got: &[StoredDownload]| got.iter().map(|d| d.serial.clone()).collect::<Vec<_>>();
    let got = s
        .session(b"s", 2, SESSIONS)
        .await
        .unwrap()
        .unwrap()
        .downloads;
    assert_eq!(
        serials(&got),
        ["03", "04", "05", "06", "07", "08", "09", "0a"],
        "the oldest were dropped; oldest first"
    );
    assert_eq!(s.take_session_download(b"s", "00", 2).await.unwrap(), None);
    // The same serial again replaces it (and it is then the newest).
    let again = download("05", 200, b"new");
    assert!(s.add_session_download(b"s", &again, 3, 8).await.unwrap());
    let got = s
        .session(b"s", 4, SESSIONS)
        .await
        .unwrap()
        .unwrap()
        .downloads;
    assert_eq!(
        serials(&got),
        ["03", "04", "06", "07", "08", "09", "0a", "05"]
    );
    assert_eq!(got.last(), Some(&again));
    // At 100 all but the new one expired: not shown, and not counted.
    let got = s
        .session(b"s", 100, SESSIONS)
        .await
        .unwrap()
        .unwrap()
        .downloads;
    assert_eq!(got, vec![again.clone()]);
    assert_eq!(
        s.take_session_download(b"s", "03", 100).await.unwrap(),
        None
    );

    // Concurrent additions keep the bound.
    let added = together(16, |i| {
        let s = s.clone();
        async move {
            let d = download(&format!("{:02x}", 0x20 + i), 300, b"y");
            s.add_session_download(b"s", &d, 150, 8).await.unwrap()
        }
    })
    .await;
    assert!(added.iter().all(|a| *a));
    let got = s
        .session(b"s", 151, SESSIONS)
        .await
        .unwrap()
        .unwrap()
        .downloads;
    assert_eq!(got.len(), 8, "{:?}", serials(&got));
}

async fn removing_a_session_removes_its_downloads(s: Arc<dyn SharedStore>) {
    assert!(s
        .create_session(b"s", &agent(), "c", 0, SESSIONS)
        .await
        .unwrap());
    assert!(s
        .create_session(b"t", &agent(), "c", 0, SESSIONS)
        .await
        .unwrap());
    for d in [b"s".as_slice(), b"t"] {
        assert!(s
            .add_session_download(d, &download("0a", 100, b"x"), 1, 8)
            .await
            .unwrap());
    }
    s.remove_session(b"s").await.unwrap();
    s.remove_session(b"nope").await.unwrap();
    assert_eq!(s.session(b"s", 2, SESSIONS).await.unwrap(), None);
    assert_eq!(s.take_session_download(b"s", "0a", 2).await.unwrap(), None);
    assert!(
        !s.add_session_download(b"s", &download("0b", 100, b"x"), 2, 8)
            .await
            .unwrap(),
        "ended"
    );
    assert_eq!(
        s.session(b"t", 2, SESSIONS)
            .await
            .unwrap()
            .unwrap()
            .downloads,
        vec![download("0a", 100, b"x")],
        "other sessions keep theirs"
    );
}

async fn ocsp_responders_are_replaced_once(s: Arc<dyn SharedStore>) {
    let r = |n: u8| StoredResponder {
        cert: vec![n; 40],
        key_sealed: vec![n + 100; 60],
        not_after: 1_000 + i64::from(n),
    };
    assert_eq!(s.ocsp_responder("issuer-a").await.unwrap(), None);
    assert!(s
        .replace_ocsp_responder("issuer-a", None, &r(1))
        .await
        .unwrap());
    assert!(
        !s.replace_ocsp_responder("issuer-a", None, &r(2))
            .await
            .unwrap(),
        "one is stored already"
    );
    assert_eq!(s.ocsp_responder("issuer-a").await.unwrap(), Some(r(1)));
    assert!(
        !s.replace_ocsp_responder("issuer-a", Some(&r(9).cert), &r(2))
            .await
            .unwrap(),
        "not the stored one"
    );
    assert!(s
        .replace_ocsp_responder("issuer-a", Some(&r(1).cert), &r(2))
        .await
        .unwrap());
    assert_eq!(s.ocsp_responder("issuer-a").await.unwrap(), Some(r(2)));
    assert_eq!(s.ocsp_responder("issuer-b").await.unwrap(), None);
    // Concurrent replacements of one responder: exactly one wins.
    let won = together(8, |i| {
        let s = s.clone();
        async move {
            s.replace_ocsp_responder("issuer-a", Some(&r(2).cert), &r(10 + i as u8))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let winner = won.iter().position(|w| *w).unwrap();
    assert_eq!(
        s.ocsp_responder("issuer-a").await.unwrap(),
        Some(r(10 + winner as u8))
    );
    // Concurrent first stores: exactly one wins too.
    let won = together(8, |i| {
        let s = s.clone();
        async move {
            s.replace_ocsp_responder("issuer-c", None, &r(30 + i as u8))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
}
