//! [`ServiceStore`] conformance: requests and batches, certificates and
//! their filters, renewals, key recoveries and their approval rule, webhook
//! deliveries; and the races (one winner of a move, approvals that always
//! reach `required`). Everything is made through the trait itself.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::both;
use crate::clock::{Clock, SystemClock};
use crate::model::service::{
    Batch, CertFilter, Delivery, Recovery, RecoveryStatus, Request, RequestFilter, RequestParams,
    RequestStatus, ServiceCert,
};
use crate::model::{AccountId, CertId, Certificate};
use crate::store::service::{ServiceStore, SERVICE_ACCOUNT};

type S = Arc<dyn ServiceStore>;

fn request(id: &str, status: RequestStatus, requester: &str, created_at: i64) -> Request {
    Request {
        id: id.into(),
        status,
        requester: requester.into(),
        profile: "server".into(),
        entity_id: format!("entity-{id}"),
        params: RequestParams::Issue {
            names: vec![format!("{id}.example.com")],
            ip_addresses: vec!["192.0.2.7".into()],
            common_name: Some(format!("{id}.example.com")),
            key_type: "ecdsa".into(),
            key_size: 256,
            ttl: Some(86_400),
            auto_renew: true,
        },
        batch_id: None,
        serial: None,
        error: None,
        created_at,
        decided_by: None,
        decided_at: None,
        reason: None,
    }
}

fn batch_request(id: &str, batch: &str, created_at: i64) -> Request {
    Request {
        profile: "client".into(),
        params: RequestParams::Csr {
            csr_pem: format!("-----BEGIN CERTIFICATE REQUEST-----\n{id}\n"),
        },
        batch_id: Some(batch.into()),
        ..request(id, RequestStatus::Pending, "bob", created_at)
    }
}

fn cert(serial: &str, issued_at: i64, not_after: i64) -> Certificate {
    Certificate {
        id: CertId(format!("id-{serial}")),
        serial: serial.into(),
        account_id: AccountId(SERVICE_ACCOUNT.into()),
        order_id: None,
        der: format!("der of {serial}").into_bytes(),
        not_before: issued_at - 60,
        not_after,
        issued_at,
        revoked: None,
        common_name: Some(format!("{serial}.example.com")),
    }
}

fn meta(serial: &str, requester: &str, auto_renew: bool, request_id: Option<&str>) -> ServiceCert {
    ServiceCert {
        serial: serial.into(),
        entity_id: format!("entity-{serial}"),
        profile: "server".into(),
        requester: requester.into(),
        key_sealed: auto_renew.then(|| vec![0, 1, 2, 255]),
        auto_renew,
        renewed_to: None,
        request_id: request_id.map(str::to_owned),
        created_at: 7,
    }
}

/// Records a service certificate `serial` (no request) expiring at
/// `not_after`.
async fn issue(s: &S, serial: &str, auto_renew: bool, not_after: i64) {
    let c = cert(serial, 1_000, not_after);
    s.record_issued(&c, &meta(serial, "alice", auto_renew, None))
        .await
        .unwrap();
}

fn ids(list: &[Request]) -> Vec<&str> {
    list.iter().map(|r| r.id.as_str()).collect()
}

async fn list(s: &S, f: RequestFilter) -> (Vec<String>, u64) {
    let (rows, total) = s
        .requests(&RequestFilter { limit: 100, ..f })
        .await
        .unwrap();
    (ids(&rows).into_iter().map(str::to_owned).collect(), total)
}

async fn requests_round_trip_and_filter(s: S) {
    let b = Batch {
        id: "batch1".into(),
        name: "nightly".into(),
        requester: "bob".into(),
        profile: "client".into(),
        created_at: 5,
    };
    let in_batch = [
        batch_request("b1", "batch1", 5),
        batch_request("b2", "batch1", 5),
    ];
    s.insert_requests(Some(&b), &in_batch).await.unwrap();
    let mut approved = request("r2", RequestStatus::Approved, "alice", 20);
    approved.decided_by = Some("agent".into());
    approved.decided_at = Some(21);
    let loose = [
        request("r1", RequestStatus::Pending, "alice", 10),
        approved,
        request("r3", RequestStatus::Pending, "carol", 30),
    ];
    s.insert_requests(None, &loose).await.unwrap();
    for r in in_batch.iter().chain(&loose) {
        assert_eq!(s.request(&r.id).await.unwrap().as_ref(), Some(r));
    }
    assert_eq!(s.request("missing").await.unwrap(), None);
    assert_eq!(s.batch("batch1").await.unwrap(), Some(b));
    assert_eq!(s.batch("missing").await.unwrap(), None);

    // Newest first, ties by id.
    let all = list(&s, RequestFilter::default()).await;
    assert_eq!(
        all,
        (
            vec!["r3", "r2", "r1", "b1", "b2"]
                .into_iter()
                .map(String::from)
                .collect(),
            5
        )
    );
    let by = |f: RequestFilter| list(&s, f);
    let pending = by(RequestFilter {
        status: Some(RequestStatus::Pending),
        ..Default::default()
    })
    .await;
    assert_eq!(
        pending,
        (vec!["r3".into(), "r1".into(), "b1".into(), "b2".into()], 4)
    );
    let alice = by(RequestFilter {
        requester: Some("alice".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(alice, (vec!["r2".into(), "r1".into()], 2));
    let client = by(RequestFilter {
        profile: Some("client".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(client, (vec!["b1".into(), "b2".into()], 2));
    let in_b = by(RequestFilter {
        batch_id: Some("batch1".into()),
        status: Some(RequestStatus::Pending),
        requester: Some("bob".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(in_b, (vec!["b1".into(), "b2".into()], 2));
    let none = by(RequestFilter {
        requester: Some("nobody".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(none, (vec![], 0));
    // A page: the total counts every match.
    let (page, total) = s
        .requests(&RequestFilter {
            offset: 1,
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((ids(&page), total), (vec!["r2", "r1"], 5));
}

async fn insert_requests_is_all_or_nothing(s: S) {
    s.insert_requests(None, &[request("r1", RequestStatus::Pending, "alice", 1)])
        .await
        .unwrap();
    let b = Batch {
        id: "batch1".into(),
        name: "n".into(),
        requester: "bob".into(),
        profile: "client".into(),
        created_at: 2,
    };
    // The second request's id is taken: neither the batch nor the first
    // request is stored.
    let again = [
        batch_request("b1", "batch1", 2),
        batch_request("r1", "batch1", 2),
    ];
    assert!(s.insert_requests(Some(&b), &again).await.is_err());
    assert_eq!(s.batch("batch1").await.unwrap(), None);
    assert_eq!(s.request("b1").await.unwrap(), None);
    assert_eq!(
        s.request("r1").await.unwrap().unwrap().status,
        RequestStatus::Pending
    );
}

async fn move_request_rules(s: S) {
    let rs = [
        request("r1", RequestStatus::Pending, "alice", 1),
        request("r2", RequestStatus::Pending, "alice", 2),
    ];
    s.insert_requests(None, &rs).await.unwrap();
    let (p, a, f, rej) = (
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Failed,
        RequestStatus::Rejected,
    );
    assert!(s
        .move_request("r1", p, a, Some("agent1"), 10, Some("fine"))
        .await
        .unwrap());
    let r = s.request("r1").await.unwrap().unwrap();
    assert_eq!(
        (
            r.status,
            r.decided_by.as_deref(),
            r.decided_at,
            r.reason.as_deref(),
            r.error.as_deref()
        ),
        (a, Some("agent1"), Some(10), Some("fine"), None)
    );
    // No longer pending: refused, nothing changes.
    assert!(!s
        .move_request("r1", p, rej, Some("agent2"), 11, Some("no"))
        .await
        .unwrap());
    assert_eq!(s.request("r1").await.unwrap().unwrap(), r);
    // Approved → failed with no decider: the decider stays, the note is
    // the error and the reason stays.
    assert!(s
        .move_request("r1", a, f, None, 20, Some("CA down"))
        .await
        .unwrap());
    let r = s.request("r1").await.unwrap().unwrap();
    assert_eq!(
        (
            r.status,
            r.decided_by.as_deref(),
            r.decided_at,
            r.reason.as_deref()
        ),
        (f, Some("agent1"), Some(20), Some("fine"))
    );
    assert_eq!(r.error.as_deref(), Some("CA down"));
    assert!(s
        .move_request("r2", p, rej, Some("agent2"), 12, Some("no"))
        .await
        .unwrap());
    let r2 = s.request("r2").await.unwrap().unwrap();
    assert_eq!(
        (r2.status, r2.reason.as_deref(), r2.error),
        (rej, Some("no"), None)
    );
    assert!(!s
        .move_request("missing", p, a, None, 1, None)
        .await
        .unwrap());
}

async fn move_request_race_has_one_winner(s: S) {
    for round in 0..4 {
        let id = format!("r{round}");
        s.insert_requests(None, &[request(&id, RequestStatus::Pending, "alice", 1)])
            .await
            .unwrap();
        let tries = (0..12).map(|i| {
            let (s, id) = (s.clone(), id.clone());
            tokio::spawn(async move {
                let to = if i % 2 == 0 {
                    RequestStatus::Approved
                } else {
                    RequestStatus::Rejected
                };
                let by = format!("agent{i}");
                let won = s
                    .move_request(&id, RequestStatus::Pending, to, Some(&by), i, None)
                    .await
                    .unwrap();
                (won, to, by)
            })
        });
        let results: Vec<_> = futures_util::future::join_all(tries)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let winners: Vec<_> = results.iter().filter(|r| r.0).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let r = s.request(&id).await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.decided_by),
            (winners[0].1, Some(winners[0].2.clone()))
        );
    }
}

async fn record_issued_moves_an_approved_request(s: S) {
    let rs = [
        request("r1", RequestStatus::Approved, "alice", 1),
        request("r2", RequestStatus::Pending, "alice", 2),
        request("r3", RequestStatus::Approved, "alice", 3),
    ];
    s.insert_requests(None, &rs).await.unwrap();
    let m1 = meta("0a01", "alice", true, Some("r1"));
    s.record_issued(&cert("0a01", 100, i64::MAX / 2), &m1)
        .await
        .unwrap();
    assert_eq!(s.service_cert("0a01").await.unwrap(), Some(m1));
    let r1 = s.request("r1").await.unwrap().unwrap();
    assert_eq!(
        (r1.status, r1.serial.as_deref()),
        (RequestStatus::Issued, Some("0a01"))
    );
    // Only an approved request becomes issued.
    let m2 = meta("0a02", "alice", false, Some("r2"));
    s.record_issued(&cert("0a02", 100, i64::MAX / 2), &m2)
        .await
        .unwrap();
    assert_eq!(s.service_cert("0a02").await.unwrap(), Some(m2));
    let r2 = s.request("r2").await.unwrap().unwrap();
    assert_eq!((r2.status, r2.serial), (RequestStatus::Pending, None));
    // A serial recorded twice is refused whole: the request stays approved.
    let m3 = meta("0a01", "mallory", false, Some("r3"));
    assert!(s
        .record_issued(&cert("0a01", 200, i64::MAX / 2), &m3)
        .await
        .is_err());
    let r3 = s.request("r3").await.unwrap().unwrap();
    assert_eq!((r3.status, r3.serial), (RequestStatus::Approved, None));
    assert_eq!(
        s.service_cert("0a01").await.unwrap().unwrap().requester,
        "alice"
    );
    assert_eq!(s.service_cert("0b99").await.unwrap(), None);
}

async fn certificate_list_filters(s: S) {
    let now = SystemClock.now();
    let (soon, later, past) = (now + 3_600, now + 86_400, now - 10);
    let certs = [
        (cert("01", 500, soon), meta("01", "alice", true, None)),
        (cert("02", 700, later), meta("02", "bob", false, None)),
        (cert("03", 700, past), meta("03", "alice", false, None)),
        (cert("04", 300, later), meta("04", "carol", true, None)),
    ];
    for (c, m) in &certs {
        s.record_issued(c, m).await.unwrap();
    }
    let page = |f: CertFilter| {
        let s = s.clone();
        async move {
            let (rows, total) = s.certificates(&f).await.unwrap();
            let serials: Vec<String> = rows.iter().map(|r| r.serial.clone()).collect();
            (serials, total)
        }
    };
    let all = CertFilter {
        limit: 100,
        ..Default::default()
    };
    // Newest first, ties by serial; every column read back.
    let (rows, total) = s.certificates(&all).await.unwrap();
    assert_eq!(total, 4);
    let order: Vec<&str> = rows.iter().map(|r| r.serial.as_str()).collect();
    assert_eq!(order, ["02", "03", "01", "04"]);
    let (c, m) = &certs[1];
    let row = &rows[0];
    assert_eq!(
        (
            &row.common_name,
            row.not_before,
            row.not_after,
            &row.revoked,
            &row.der
        ),
        (&c.common_name, c.not_before, c.not_after, &None, &c.der)
    );
    assert_eq!(row.service.as_ref(), Some(m));
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let f = |g: fn(&mut CertFilter)| {
        let mut x = all.clone();
        g(&mut x);
        x
    };
    assert_eq!(
        page(f(|x| x.entity_id = Some("entity-04".into()))).await,
        (v(&["04"]), 1)
    );
    assert_eq!(
        page(f(|x| x.requester = Some("alice".into()))).await,
        (v(&["03", "01"]), 2)
    );
    let cn = f(|x| x.common_name = Some("02.example.com".into()));
    assert_eq!(page(cn).await, (v(&["02"]), 1));
    assert_eq!(
        page(f(|x| x.serial = Some("01".into()))).await,
        (v(&["01"]), 1)
    );
    let valid = f(|x| x.status = Some("valid".into()));
    assert_eq!(page(valid).await, (v(&["02", "01", "04"]), 3));
    assert_eq!(
        page(f(|x| x.status = Some("expired".into()))).await,
        (v(&["03"]), 1)
    );
    assert_eq!(
        page(f(|x| x.status = Some("revoked".into()))).await,
        (v(&[]), 0)
    );
    let mut expiring = all.clone();
    expiring.expiring_before = Some(soon + 1);
    assert_eq!(page(expiring.clone()).await, (v(&["03", "01"]), 2));
    expiring.requester = Some("bob".into());
    assert_eq!(page(expiring).await, (v(&[]), 0));
    let paged = CertFilter {
        offset: 1,
        limit: 2,
        ..Default::default()
    };
    assert_eq!(page(paged).await, (v(&["03", "01"]), 4));
}

async fn mark_renewed_once(s: S) {
    issue(&s, "0c01", true, 5_000).await;
    assert!(s.mark_renewed("0c01", "0c02").await.unwrap());
    assert!(!s.mark_renewed("0c01", "0c03").await.unwrap());
    let m = s.service_cert("0c01").await.unwrap().unwrap();
    assert_eq!(m.renewed_to.as_deref(), Some("0c02"));
    assert!(!s.mark_renewed("0cff", "0c04").await.unwrap());
    // Concurrent renewals of one certificate: one wins, and it is recorded.
    issue(&s, "0d01", true, 5_000).await;
    let tries = (0..10).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            let new = format!("0e{i:02}");
            (s.mark_renewed("0d01", &new).await.unwrap(), new)
        })
    });
    let results: Vec<_> = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = results.iter().filter(|r| r.0).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let m = s.service_cert("0d01").await.unwrap().unwrap();
    assert_eq!(m.renewed_to, Some(winners[0].1.clone()));
}

fn recovery(id: &str, serial: &str, requester: &str, required: u32, created_at: i64) -> Recovery {
    Recovery {
        id: id.into(),
        serial: serial.into(),
        requester: requester.into(),
        status: RecoveryStatus::Pending,
        required,
        approvals: vec![],
        created_at,
        decided_by: None,
        decided_at: None,
        reason: None,
    }
}

async fn recovery_approvals_and_moves(s: S) {
    issue(&s, "0f01", true, 5_000).await;
    let r = recovery("k1", "0f01", "alice", 2, 10);
    s.insert_recovery(&r).await.unwrap();
    assert_eq!(s.recovery("k1").await.unwrap(), Some(r.clone()));
    assert_eq!(s.recovery("missing").await.unwrap(), None);
    let (p, a, c, rej) = (
        RecoveryStatus::Pending,
        RecoveryStatus::Approved,
        RecoveryStatus::Completed,
        RecoveryStatus::Rejected,
    );
    assert!(s.approve_recovery("k1", "zed", 20).await.unwrap());
    assert!(!s.approve_recovery("k1", "zed", 21).await.unwrap());
    // Not enough approvals yet: it cannot be moved to approved.
    assert!(!s
        .move_recovery("k1", p, a, Some("zed"), 22, None)
        .await
        .unwrap());
    let k = s.recovery("k1").await.unwrap().unwrap();
    assert_eq!((k.status, k.approvals.clone()), (p, vec!["zed".to_owned()]));
    // The second distinct agent approves it, in the same call; approvals
    // are listed by time, then name.
    assert!(s.approve_recovery("k1", "amy", 30).await.unwrap());
    let k = s.recovery("k1").await.unwrap().unwrap();
    assert_eq!(
        (
            k.status,
            k.approvals.clone(),
            k.decided_by.clone(),
            k.decided_at
        ),
        (a, vec!["zed".to_owned(), "amy".to_owned()], None, Some(30))
    );
    assert!(!s.approve_recovery("k1", "bea", 31).await.unwrap());
    assert!(!s
        .move_recovery("k1", p, rej, Some("bea"), 32, Some("late"))
        .await
        .unwrap());
    assert!(s
        .move_recovery("k1", a, c, Some("alice"), 40, None)
        .await
        .unwrap());
    let k = s.recovery("k1").await.unwrap().unwrap();
    assert_eq!(
        (k.status, k.decided_by.as_deref(), k.decided_at),
        (c, Some("alice"), Some(40))
    );
    assert!(!s
        .move_recovery("k1", a, c, Some("alice"), 41, None)
        .await
        .unwrap());

    // Rejected with a reason; no approval after that.
    s.insert_recovery(&recovery("k2", "0f01", "bob", 1, 11))
        .await
        .unwrap();
    assert!(s
        .move_recovery("k2", p, rej, Some("amy"), 50, Some("no"))
        .await
        .unwrap());
    assert!(!s.approve_recovery("k2", "zed", 51).await.unwrap());
    let k2 = s.recovery("k2").await.unwrap().unwrap();
    assert_eq!(
        (
            k2.status,
            k2.reason.as_deref(),
            k2.decided_by.as_deref(),
            k2.approvals.len()
        ),
        (rej, Some("no"), Some("amy"), 0)
    );
    // Requiring no approval, a pending recovery may be moved to approved.
    s.insert_recovery(&recovery("k3", "0f01", "alice", 0, 12))
        .await
        .unwrap();
    assert!(s
        .move_recovery("k3", p, a, Some("amy"), 60, None)
        .await
        .unwrap());
    assert_eq!(s.recovery("k3").await.unwrap().unwrap().status, a);
    assert!(!s.approve_recovery("missing", "amy", 1).await.unwrap());
    assert!(!s
        .move_recovery("missing", p, rej, None, 1, None)
        .await
        .unwrap());
}

async fn recovery_list(s: S) {
    issue(&s, "1001", true, 5_000).await;
    for (id, who, at) in [
        ("k1", "alice", 1),
        ("k2", "bob", 2),
        ("k3", "alice", 3),
        ("k4", "bob", 3),
    ] {
        s.insert_recovery(&recovery(id, "1001", who, 1, at))
            .await
            .unwrap();
    }
    s.approve_recovery("k2", "amy", 5).await.unwrap();
    let ids = |(list, total): (Vec<Recovery>, u64)| {
        (list.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), total)
    };
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let all = s.recoveries(None, None, 0, 10).await.unwrap();
    assert_eq!(all.0[2].approvals, ["amy"]);
    assert_eq!(ids(all), (v(&["k3", "k4", "k2", "k1"]), 4));
    let pending = s
        .recoveries(Some(RecoveryStatus::Pending), None, 0, 10)
        .await
        .unwrap();
    assert_eq!(ids(pending), (v(&["k3", "k4", "k1"]), 3));
    let bob = s.recoveries(None, Some("bob"), 0, 10).await.unwrap();
    assert_eq!(ids(bob), (v(&["k4", "k2"]), 2));
    let both = s
        .recoveries(Some(RecoveryStatus::Approved), Some("bob"), 0, 10)
        .await
        .unwrap();
    assert_eq!(ids(both), (v(&["k2"]), 1));
    let page = s.recoveries(None, None, 1, 2).await.unwrap();
    assert_eq!(ids(page), (v(&["k4", "k2"]), 4));
}

/// Runs `n` concurrent approvals of recovery `id` by distinct agents; which
/// agents were told their approval was added.
async fn approve_together(s: &S, id: &str, n: usize) -> BTreeSet<String> {
    let tries = (0..n).map(|i| {
        let (s, id) = (s.clone(), id.to_owned());
        tokio::spawn(async move {
            let agent = format!("agent{i:02}");
            (s.approve_recovery(&id, &agent, 100).await.unwrap(), agent)
        })
    });
    futures_util::future::join_all(tries)
        .await
        .into_iter()
        .map(Result::unwrap)
        .filter(|(added, _)| *added)
        .map(|(_, agent)| agent)
        .collect()
}

async fn concurrent_approvals_reach_required(s: S) {
    issue(&s, "1101", true, 5_000).await;
    for round in 0..4 {
        // Exactly `required` agents at once: each is added, and the last
        // one's transaction, whichever it is, approves the recovery.
        let id = format!("exact{round}");
        s.insert_recovery(&recovery(&id, "1101", "alice", 3, 1))
            .await
            .unwrap();
        let added = approve_together(&s, &id, 3).await;
        let k = s.recovery(&id).await.unwrap().unwrap();
        assert_eq!(added.len(), 3, "round {round}");
        assert_eq!(k.status, RecoveryStatus::Approved, "round {round}: {k:?}");
        assert_eq!(k.approvals.iter().cloned().collect::<BTreeSet<_>>(), added);
        // More agents than needed: every added approval is recorded, at
        // least `required` are, and the recovery is approved.
        let id = format!("more{round}");
        s.insert_recovery(&recovery(&id, "1101", "alice", 2, 1))
            .await
            .unwrap();
        let added = approve_together(&s, &id, 8).await;
        let k = s.recovery(&id).await.unwrap().unwrap();
        assert!(added.len() >= 2, "round {round}: {added:?}");
        assert_eq!(k.status, RecoveryStatus::Approved, "round {round}: {k:?}");
        assert_eq!(k.approvals.iter().cloned().collect::<BTreeSet<_>>(), added);
    }
}

async fn approval_racing_a_rejection(s: S) {
    issue(&s, "1201", true, 5_000).await;
    for round in 0..6 {
        let id = format!("k{round}");
        s.insert_recovery(&recovery(&id, "1201", "alice", 1, 1))
            .await
            .unwrap();
        let (approve, reject) = tokio::join!(
            tokio::spawn({
                let (s, id) = (s.clone(), id.clone());
                async move { s.approve_recovery(&id, "amy", 5).await.unwrap() }
            }),
            tokio::spawn({
                let (s, id) = (s.clone(), id.clone());
                async move {
                    s.move_recovery(
                        &id,
                        RecoveryStatus::Pending,
                        RecoveryStatus::Rejected,
                        Some("zed"),
                        5,
                        Some("no"),
                    )
                    .await
                    .unwrap()
                }
            }),
        );
        let (approve, reject) = (approve.unwrap(), reject.unwrap());
        let k = s.recovery(&id).await.unwrap().unwrap();
        // Whoever comes second finds it decided: a recovery is never left
        // pending, and a rejection that won is what it says.
        if reject {
            assert_eq!(k.status, RecoveryStatus::Rejected, "round {round}");
        } else {
            assert!(approve, "round {round}");
            assert_eq!(k.status, RecoveryStatus::Approved, "round {round}");
        }
    }
}

fn delivery(id: &str, status: &str, next: i64, created: i64) -> Delivery {
    Delivery {
        id: id.into(),
        url: format!("https://hooks.example/{id}"),
        event_type: "certificate.renewed".into(),
        body: format!("{{\"id\":\"{id}\"}}"),
        status: status.into(),
        attempts: 0,
        next_attempt_at: next,
        last_error: None,
        created_at: created,
    }
}

async fn deliveries_due_attempts_and_list(s: S) {
    s.insert_deliveries(&[]).await.unwrap();
    let all = [
        delivery("d1", "pending", 100, 3),
        delivery("d2", "pending", 50, 2),
        delivery("d3", "pending", 50, 1),
        delivery("d4", "pending", 500, 4),
        delivery("d5", "delivered", 10, 5),
    ];
    s.insert_deliveries(&all).await.unwrap();
    let due = |now, limit| {
        let s = s.clone();
        async move {
            let list = s.due_deliveries(now, limit).await.unwrap();
            list.into_iter().map(|d| d.id).collect::<Vec<_>>()
        }
    };
    // Pending and due, by next attempt, then age.
    assert_eq!(due(100, 10).await, ["d3", "d2", "d1"]);
    assert_eq!(due(100, 2).await, ["d3", "d2"]);
    assert_eq!(due(49, 10).await, Vec::<String>::new());
    let (listed, total) = s.deliveries(None, 0, 10).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(listed[4], all[2]);
    s.record_attempt("d1", true, None, None).await.unwrap();
    s.record_attempt("d2", false, Some("HTTP 503"), Some(300))
        .await
        .unwrap();
    s.record_attempt("d3", false, Some("timed out"), None)
        .await
        .unwrap();
    s.record_attempt("d3", false, Some("again"), None)
        .await
        .unwrap();
    let (listed, _) = s.deliveries(None, 0, 10).await.unwrap();
    let get = |id: &str| listed.iter().find(|d| d.id == id).unwrap().clone();
    let d1 = get("d1");
    assert_eq!(
        (
            d1.status.as_str(),
            d1.attempts,
            d1.next_attempt_at,
            d1.last_error
        ),
        ("delivered", 1, 100, None)
    );
    let d2 = get("d2");
    assert_eq!(
        (
            d2.status.as_str(),
            d2.attempts,
            d2.next_attempt_at,
            d2.last_error.as_deref()
        ),
        ("pending", 1, 300, Some("HTTP 503"))
    );
    let d3 = get("d3");
    assert_eq!(
        (
            d3.status.as_str(),
            d3.attempts,
            d3.next_attempt_at,
            d3.last_error.as_deref()
        ),
        ("failed", 2, 50, Some("again"))
    );
    assert_eq!(due(299, 10).await, Vec::<String>::new());
    assert_eq!(due(500, 10).await, ["d2", "d4"]);
    // Newest first, by status, a page.
    let ids = |(list, total): (Vec<Delivery>, u64)| {
        (list.into_iter().map(|d| d.id).collect::<Vec<_>>(), total)
    };
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let pending = s.deliveries(Some("pending"), 0, 10).await.unwrap();
    assert_eq!(ids(pending), (v(&["d4", "d2"]), 2));
    let delivered = s.deliveries(Some("delivered"), 0, 10).await.unwrap();
    assert_eq!(ids(delivered), (v(&["d5", "d1"]), 2));
    assert_eq!(
        ids(s.deliveries(None, 1, 3).await.unwrap()),
        (v(&["d4", "d1", "d2"]), 5)
    );
}

async fn renewals_due(s: S) {
    // (serial, auto-renew, notAfter); now 500, renew what expires before 2000.
    for (serial, auto, not_after) in [
        ("a1", true, 1_000),
        ("a2", true, 3_000),
        ("a3", true, 400),
        ("a4", false, 1_000),
        ("a5", true, 900),
        ("a6", true, 800),
        ("a7", true, 500),
    ] {
        issue(&s, serial, auto, not_after).await;
    }
    assert!(s.mark_renewed("a5", "b5").await.unwrap());
    let due = s.due_for_renewal(2_000, 500).await.unwrap();
    let serials: Vec<&str> = due.iter().map(|m| m.serial.as_str()).collect();
    assert_eq!(serials, ["a6", "a1"]);
    assert_eq!(due[1], meta("a1", "alice", true, None));
    assert_eq!(s.due_for_renewal(1_000, 500).await.unwrap().len(), 1);
}

both!(crate::store::service::ServiceStore;
    requests_round_trip_and_filter,
    insert_requests_is_all_or_nothing,
    move_request_rules,
    move_request_race_has_one_winner,
    record_issued_moves_an_approved_request,
    certificate_list_filters,
    mark_renewed_once,
    recovery_approvals_and_moves,
    recovery_list,
    concurrent_approvals_reach_required,
    approval_racing_a_rejection,
    deliveries_due_attempts_and_list,
    renewals_due,
);
