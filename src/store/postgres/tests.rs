//! Tests of the PostgreSQL store against a real cluster (skipped without
//! `ACME_CA_TEST_PG_URL`; see `test_support::pg`).
//!
//! The races run on a multi-threaded runtime, with the contenders spread
//! over several `PgStore`s on one database, each with its own pool, as
//! several instances would be: whatever decides a race has to be in the
//! database. A barrier starts them together.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::PgStore;
use crate::model::{
    Account, AccountId, AccountStatus, AttemptState, Authz, AuthzId, AuthzState, CertId,
    Certificate, ChallengeType, Order, OrderId, Revocation, RevocationReason,
};
use crate::protocol::Identifier;
use crate::store::{AccountCreation, Store, ValidationResult};
use crate::test_support::pg::{fresh_database, TestDatabase};

/// Contenders in each race.
const RACERS: usize = 16;
/// Instances (pools) the contenders are spread over.
const INSTANCES: usize = 4;

fn account(id: &str, thumb: &str) -> Account {
    Account {
        id: AccountId(id.into()),
        status: AccountStatus::Valid,
        jwk: "{}".into(),
        thumbprint: thumb.into(),
        contact: vec![],
        tos_agreed: true,
        created_at: 1,
    }
}

fn authz(id: &str) -> Authz {
    Authz {
        id: AuthzId(id.into()),
        account_id: AccountId("acct".into()),
        identifier: Identifier::dns("example.com"),
        wildcard: false,
        state: AuthzState::Pending,
        expires: 1_000,
        token: "tok".into(),
        offered: ChallengeType::ALL.to_vec(),
        attempt: None,
        created_at: 1,
    }
}

fn order(id: &str, authzs: &[&str]) -> Order {
    Order {
        id: OrderId(id.into()),
        account_id: AccountId("acct".into()),
        identifiers: vec![Identifier::dns("example.com")],
        authz_ids: authzs.iter().map(|a| AuthzId((*a).into())).collect(),
        expires: 1_000,
        not_before: None,
        not_after: None,
        processing_until: None,
        cert_id: None,
        error: None,
        created_at: 1,
        profile: "classic".into(),
        replaces: None,
    }
}

fn cert(id: &str, serial: &str) -> Certificate {
    Certificate {
        id: CertId(id.into()),
        serial: serial.into(),
        account_id: AccountId("acct".into()),
        order_id: None,
        der: vec![0x30, 0x03, 0x02, 0x01, 0x27],
        not_before: 1,
        not_after: 2_000,
        issued_at: 1,
        revoked: None,
        common_name: None,
    }
}

fn valid(expires: i64) -> ValidationResult {
    ValidationResult {
        state: AttemptState::Valid,
        validated_at: 11,
        error: None,
        records: Some(serde_json::json!([{"url": "http://example.com/"}])),
        expires,
    }
}

/// `n` instances on one fresh database (None: no test cluster).
async fn instances(n: usize) -> Option<(TestDatabase, Vec<Arc<PgStore>>)> {
    let db = fresh_database().await?;
    let mut stores = Vec::with_capacity(n);
    for _ in 0..n {
        stores.push(Arc::new(PgStore::open(db.url(), 8).await.unwrap()));
    }
    Some((db, stores))
}

/// Runs `race(store, i)` for i in 0..RACERS, each on instance
/// `i % INSTANCES`, started together; their answers in order of i.
async fn race<T, F, Fut>(stores: &[Arc<PgStore>], contender: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Arc<PgStore>, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let run = contender(stores[i % stores.len()].clone(), i);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                run.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(RACERS);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn winners(answers: &[bool]) -> usize {
    answers.iter().filter(|&&b| b).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_claim_of_an_order_wins() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    s[0].create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    for round in 0..5 {
        let o = format!("o{round}");
        let a = format!("a{round}");
        s[0].create_order(&order(&o, &[&a]), &[authz(&a)], None)
            .await
            .unwrap();
        let id = OrderId(o.clone());
        let answers = race(&s, |s, _| {
            let id = id.clone();
            async move { s.claim_order(&id, "i1", 10, 40).await.unwrap() }
        })
        .await;
        assert_eq!(winners(&answers), 1, "{o}: {answers:?}");
        let stored = s[1].order_by_id(&id).await.unwrap().unwrap();
        assert_eq!(stored.processing_until, Some(40));
    }
}

/// A lease that ran out is claimed again while its holder stores the
/// certificate: a claim either comes first (and the certificate ends its
/// lease) or sees the certificate. No order with a certificate keeps a
/// lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_racing_the_certificate_leaves_no_lease_behind() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    s[0].create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    for round in 0..10 {
        let o = format!("o{round}");
        let a = format!("a{round}");
        let id = OrderId(o.clone());
        s[0].create_order(&order(&o, &[&a]), &[authz(&a)], None)
            .await
            .unwrap();
        assert!(s[0].claim_order(&id, "i1", 10, 40).await.unwrap());
        let answers = race(&s, |s, i| {
            let id = id.clone();
            async move {
                if i == 0 {
                    let c = cert(&format!("c{round}"), &format!("{round:02x}"));
                    assert!(s.store_certificate(&c, &id).await.unwrap());
                    false
                } else {
                    // The first lease ran out at 40.
                    s.claim_order(&id, "i1", 50, 80).await.unwrap()
                }
            }
        })
        .await;
        assert!(winners(&answers) <= 1, "{o}: {answers:?}");
        let stored = s[1].order_by_id(&id).await.unwrap().unwrap();
        assert_eq!(stored.cert_id, Some(CertId(format!("c{round}"))));
        assert_eq!(stored.processing_until, None, "{o}: {answers:?}");
        assert!(!s[2].claim_order(&id, "i1", 100, 130).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_registration_of_a_key_creates_the_account() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    let answers = race(&s, |s, i| async move {
        s.create_account(&account(&format!("acct{i}"), "same-key"), None)
            .await
            .unwrap()
    })
    .await;
    let created: Vec<usize> = (0..RACERS)
        .filter(|&i| answers[i] == AccountCreation::Created)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let winner = AccountId(format!("acct{}", created[0]));
    for a in &answers {
        match a {
            AccountCreation::Created => {}
            AccountCreation::Existing(e) => assert_eq!(e.id, winner),
            other => panic!("{other:?}"),
        }
    }
    let stored = s[0]
        .account_by_thumbprint("same-key")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id, winner);
}

/// Registrations with one external account key id, each with its own key:
/// one account is made, and the others leave nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_registration_with_a_key_id_binds_it() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    let answers = race(&s, |s, i| async move {
        s.create_account(
            &account(&format!("acct{i}"), &format!("key{i}")),
            Some("kid-1"),
        )
        .await
        .unwrap()
    })
    .await;
    let mut created = 0;
    for (i, a) in answers.iter().enumerate() {
        let stored = s[0]
            .account_by_thumbprint(&format!("key{i}"))
            .await
            .unwrap();
        match a {
            AccountCreation::Created => {
                created += 1;
                assert!(stored.is_some());
            }
            AccountCreation::KeyIdTaken => assert_eq!(stored, None, "acct{i} was left behind"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 1, "{answers:?}");
    // A known key with a taken key id is answered with its account.
    let winner = answers
        .iter()
        .position(|a| *a == AccountCreation::Created)
        .unwrap();
    match s[1]
        .create_account(&account("late", &format!("key{winner}")), Some("kid-1"))
        .await
        .unwrap()
    {
        AccountCreation::Existing(e) => assert_eq!(e.id.0, format!("acct{winner}")),
        other => panic!("{other:?}"),
    }
}

/// Registrations of one key, each with its own key id: one account, one
/// binding; the losers' key ids stay free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_registration_of_a_key_binds_one_key_id() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    let answers = race(&s, |s, i| async move {
        s.create_account(
            &account(&format!("acct{i}"), "same-key"),
            Some(&format!("kid{i}")),
        )
        .await
        .unwrap()
    })
    .await;
    let winner = answers
        .iter()
        .position(|a| *a == AccountCreation::Created)
        .unwrap();
    assert_eq!(
        answers
            .iter()
            .filter(
                |a| matches!(a, AccountCreation::Existing(e) if e.id.0 == format!("acct{winner}"))
            )
            .count(),
        RACERS - 1,
        "{answers:?}"
    );
    let bound: Vec<String> = sqlx::query_scalar("SELECT kid FROM eab_bindings")
        .fetch_all(s[0].pool())
        .await
        .unwrap();
    assert_eq!(bound, vec![format!("kid{winner}")]);
    // A loser's key id is free for another key.
    let loser = (winner + 1) % RACERS;
    assert_eq!(
        s[0].create_account(&account("other", "other-key"), Some(&format!("kid{loser}")))
            .await
            .unwrap(),
        AccountCreation::Created
    );
}

/// Orders replacing one certificate (RFC 9773): one is created, with its
/// authorizations; the others create nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_order_replaces_a_certificate() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    s[0].create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    s[0].create_order(&order("o0", &["a0"]), &[authz("a0")], None)
        .await
        .unwrap();
    let old = CertId("c0".into());
    assert!(s[0]
        .store_certificate(&cert("c0", "00"), &OrderId("o0".into()))
        .await
        .unwrap());
    let answers = race(&s, |s, i| {
        let old = old.clone();
        async move {
            let (o, a) = (format!("r{i}"), format!("ra{i}"));
            let mut new = order(&o, &[&a]);
            new.replaces = Some(old.0.clone());
            s.create_order(&new, &[authz(&a)], Some((&old, None)))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let winner = answers.iter().position(|&b| b).unwrap();
    assert_eq!(
        s[1].replacement_of(&old).await.unwrap(),
        Some(OrderId(format!("r{winner}")))
    );
    for i in 0..RACERS {
        let o = s[2].order_by_id(&OrderId(format!("r{i}"))).await.unwrap();
        let a = s[2].authz_by_id(&AuthzId(format!("ra{i}"))).await.unwrap();
        assert_eq!(o.is_some(), i == winner, "r{i}");
        assert_eq!(a.is_some(), i == winner, "ra{i}");
    }
    // The next replacement must name the winner as the one it supersedes.
    let mut next = order("n1", &[]);
    next.replaces = Some(old.0.clone());
    assert!(!s[3]
        .create_order(&next, &[], Some((&old, None)))
        .await
        .unwrap());
    let seen = OrderId(format!("r{winner}"));
    assert!(s[3]
        .create_order(&next, &[], Some((&old, Some(&seen))))
        .await
        .unwrap());
    assert_eq!(
        s[0].replacement_of(&old).await.unwrap(),
        Some(OrderId("n1".into()))
    );
    // A certificate that does not exist cannot be replaced.
    let missing = CertId("nope".into());
    assert!(!s[0]
        .create_order(&order("n2", &[]), &[], Some((&missing, None)))
        .await
        .unwrap());
    assert_eq!(s[0].order_by_id(&OrderId("n2".into())).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_challenge_attempt_starts() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    s[0].create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    s[0].create_order(
        &order("o1", &["a1", "a2"]),
        &[authz("a1"), authz("a2")],
        None,
    )
    .await
    .unwrap();
    let a1 = AuthzId("a1".into());
    let answers = race(&s, |s, i| {
        let a1 = a1.clone();
        async move {
            let kind = ChallengeType::ALL[i % ChallengeType::ALL.len()];
            s.start_challenge(&a1, kind, 10, None).await.unwrap()
        }
    })
    .await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let winner = answers.iter().position(|&b| b).unwrap();
    let stored = s[1].authz_by_id(&a1).await.unwrap().unwrap();
    let attempt = stored.attempt.unwrap();
    assert_eq!(
        attempt.kind,
        ChallengeType::ALL[winner % ChallengeType::ALL.len()]
    );
    assert_eq!(attempt.state, AttemptState::Processing);
    // Settled at once (always-valid), racing too.
    let a2 = AuthzId("a2".into());
    let answers = race(&s, |s, _| {
        let a2 = a2.clone();
        async move {
            s.start_challenge(&a2, ChallengeType::Dns01, 10, Some(&valid(3_000)))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let stored = s[1].authz_by_id(&a2).await.unwrap().unwrap();
    assert_eq!(stored.state, AuthzState::Valid);
    assert_eq!(stored.expires, 3_000);
    // And the outcomes of a1's validation: one is recorded.
    let answers = race(&s, |s, i| {
        let a1 = a1.clone();
        async move {
            let r = ValidationResult {
                validated_at: i as i64,
                ..valid(2_000)
            };
            s.finish_challenge(&a1, &r).await.unwrap()
        }
    })
    .await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let winner = answers.iter().position(|&b| b).unwrap();
    let stored = s[1].authz_by_id(&a1).await.unwrap().unwrap();
    assert_eq!(stored.attempt.unwrap().validated_at, Some(winner as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_revocation_of_a_certificate_is_recorded() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    s[0].create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    s[0].create_order(&order("o1", &["a1"]), &[authz("a1")], None)
        .await
        .unwrap();
    let id = CertId("c1".into());
    assert!(s[0]
        .store_certificate(&cert("c1", "0a"), &OrderId("o1".into()))
        .await
        .unwrap());
    let answers = race(&s, |s, i| {
        let id = id.clone();
        async move {
            let revocation = Revocation {
                at: 100 + i as i64,
                reason: RevocationReason::from_code(i as i64 % 7).unwrap(),
            };
            s.revoke_certificate(&id, revocation).await.unwrap()
        }
    })
    .await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let winner = answers.iter().position(|&b| b).unwrap();
    let stored = s[1].certificate_by_id(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.revoked,
        Some(Revocation {
            at: 100 + winner as i64,
            reason: RevocationReason::from_code(winner as i64 % 7).unwrap(),
        })
    );
}

/// Two certificates stored for one order at once: one is linked, both are
/// kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_certificate_is_linked_to_its_order() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    s[0].create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    s[0].create_order(&order("o1", &["a1"]), &[authz("a1")], None)
        .await
        .unwrap();
    let id = OrderId("o1".into());
    let answers = race(&s, |s, i| {
        let id = id.clone();
        async move {
            let c = cert(&format!("c{i}"), &format!("{i:02x}"));
            s.store_certificate(&c, &id).await.unwrap()
        }
    })
    .await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let winner = answers.iter().position(|&b| b).unwrap();
    let o = s[1].order_by_id(&id).await.unwrap().unwrap();
    assert_eq!(o.cert_id, Some(CertId(format!("c{winner}"))));
    for i in 0..RACERS {
        let c = s[2]
            .certificate_by_serial(&format!("{i:02x}"))
            .await
            .unwrap()
            .unwrap();
        let linked = (i == winner).then(|| id.clone());
        assert_eq!(c.order_id, linked, "c{i}");
    }
}

/// Key rollovers of several accounts to one new key: one gets it, the
/// others are told no (not an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_account_gets_a_new_key() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    for i in 0..RACERS {
        s[0].create_account(&account(&format!("acct{i}"), &format!("old{i}")), None)
            .await
            .unwrap();
    }
    let answers = race(&s, |s, i| async move {
        s.change_account_key(
            &AccountId(format!("acct{i}")),
            &format!("old{i}"),
            "{\"new\":1}",
            "new-key",
        )
        .await
        .unwrap()
    })
    .await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let winner = answers.iter().position(|&b| b).unwrap();
    let holder = s[1]
        .account_by_thumbprint("new-key")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder.id.0, format!("acct{winner}"));
    assert_eq!(holder.jwk, "{\"new\":1}");
}

/// Registrations of a key racing rollovers of other accounts to it: the
/// key ends up with one account, and every loser is told so (not an
/// error).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_goes_to_one_account_whether_registered_or_rolled_over() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    for i in (1..RACERS).step_by(2) {
        s[0].create_account(&account(&format!("acct{i}"), &format!("old{i}")), None)
            .await
            .unwrap();
    }
    let answers = race(&s, |s, i| async move {
        let id = AccountId(format!("acct{i}"));
        if i % 2 == 0 {
            match s
                .create_account(&account(&id.0, "contested"), None)
                .await
                .unwrap()
            {
                AccountCreation::Created => true,
                AccountCreation::Existing(e) => {
                    assert_ne!(e.id, id);
                    false
                }
                AccountCreation::KeyIdTaken => panic!("no key id was given"),
            }
        } else {
            s.change_account_key(&id, &format!("old{i}"), "{}", "contested")
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let winner = answers.iter().position(|&b| b).unwrap();
    let holder = s[1]
        .account_by_thumbprint("contested")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder.id.0, format!("acct{winner}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_deactivation_of_an_account_wins() {
    let Some((_db, s)) = instances(INSTANCES).await else {
        return;
    };
    s[0].create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    s[0].create_order(&order("o1", &["a1"]), &[authz("a1")], None)
        .await
        .unwrap();
    let answers = race(&s, |s, _| async move {
        s.deactivate_account(&AccountId("acct".into()))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let a1 = s[1]
        .authz_by_id(&AuthzId("a1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a1.state, AuthzState::Deactivated);
}

/// A transaction that fails part-way leaves nothing: an order whose second
/// authorization's id is taken is not created, nor its first
/// authorization, nor its claim on the certificate it replaces.
#[tokio::test]
async fn a_failed_operation_is_rolled_back_whole() {
    if let Some((_db, s)) = instances(1).await {
        failed_operation_is_rolled_back(&*s[0]).await;
    }
}

async fn failed_operation_is_rolled_back(s: &dyn Store) {
    s.create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    s.create_order(&order("o0", &["a0"]), &[authz("a0")], None)
        .await
        .unwrap();
    let old = CertId("c0".into());
    assert!(s
        .store_certificate(&cert("c0", "00"), &OrderId("o0".into()))
        .await
        .unwrap());
    let mut o = order("o1", &["fresh", "a0"]);
    o.replaces = Some("c0".into());
    let err = s
        .create_order(&o, &[authz("fresh"), authz("a0")], Some((&old, None)))
        .await;
    assert!(err.is_err());
    assert_eq!(s.order_by_id(&OrderId("o1".into())).await.unwrap(), None);
    assert_eq!(s.authz_by_id(&AuthzId("fresh".into())).await.unwrap(), None);
    assert_eq!(s.replacement_of(&old).await.unwrap(), None);
    // A certificate whose serial is taken: the order keeps its lease.
    s.create_order(&order("o2", &["a2"]), &[authz("a2")], None)
        .await
        .unwrap();
    let o2 = OrderId("o2".into());
    assert!(s.claim_order(&o2, "i1", 10, 40).await.unwrap());
    assert!(s.store_certificate(&cert("c2", "00"), &o2).await.is_err());
    let stored = s.order_by_id(&o2).await.unwrap().unwrap();
    assert_eq!((stored.processing_until, stored.cert_id), (Some(40), None));
}

/// Every method once, on one instance, with the answers SQLite gives.
#[tokio::test]
async fn every_method_answers_as_documented() {
    if let Some((_db, s)) = instances(1).await {
        every_method(&*s[0]).await;
    }
}

async fn every_method(s: &dyn Store) {
    s.ping().await.unwrap();
    let acct = AccountId("acct".into());
    let mut a = account("acct", "t1");
    a.contact = vec![
        "mailto:o'brien@example.com".into(),
        "x'); DROP TABLE accounts; --".into(),
    ];
    assert_eq!(
        s.create_account(&a, None).await.unwrap(),
        AccountCreation::Created
    );
    assert_eq!(s.account_by_id(&acct).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.account_by_thumbprint("t1").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(s.account_by_thumbprint("t2").await.unwrap(), None);
    match s.create_account(&account("dup", "t1"), None).await.unwrap() {
        AccountCreation::Existing(e) => assert_eq!(e, a),
        other => panic!("{other:?}"),
    }
    assert!(s
        .update_account_contact(&acct, &["mailto:a@example.com".into()])
        .await
        .unwrap());
    assert_eq!(
        s.account_by_id(&acct).await.unwrap().unwrap().contact,
        vec!["mailto:a@example.com".to_string()]
    );
    assert!(!s
        .update_account_contact(&AccountId("none".into()), &[])
        .await
        .unwrap());

    // Orders and authorizations.
    let mut wild = authz("a2");
    wild.wildcard = true;
    wild.identifier = Identifier::ip("192.0.2.1");
    s.create_order(
        &order("o1", &["a1", "a2"]),
        &[authz("a1"), wild.clone()],
        None,
    )
    .await
    .unwrap();
    s.create_authz(&authz("a3")).await.unwrap();
    assert_eq!(
        s.authz_by_id(&AuthzId("a2".into())).await.unwrap(),
        Some(wild.clone())
    );
    let ids = ["a3", "missing", "a1", "a3"].map(|i| AuthzId(i.into()));
    let got: Vec<String> = s
        .authzs_by_ids(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id.0)
        .collect();
    assert_eq!(got, ["a3", "a1", "a3"]);
    let o1 = s.order_by_id(&OrderId("o1".into())).await.unwrap().unwrap();
    assert_eq!(o1, order("o1", &["a1", "a2"]));
    let example = Identifier::dns("example.com");
    assert!(s
        .start_challenge(&AuthzId("a1".into()), ChallengeType::Http01, 10, None)
        .await
        .unwrap());
    assert_eq!(s.authzs_processing().await.unwrap().len(), 1);
    assert!(!s.has_valid_authz(&acct, &example, 10).await.unwrap());
    assert!(s
        .finish_challenge(&AuthzId("a1".into()), &valid(2_000))
        .await
        .unwrap());
    assert!(s.authzs_processing().await.unwrap().is_empty());
    let a1 = s.authz_by_id(&AuthzId("a1".into())).await.unwrap().unwrap();
    assert_eq!(a1.attempt.as_ref().unwrap().records, valid(0).records);
    assert!(s.has_valid_authz(&acct, &example, 10).await.unwrap());
    assert!(!s.has_valid_authz(&acct, &example, 2_000).await.unwrap());
    assert_eq!(
        s.reusable_authz(&acct, &example, false, 1_500)
            .await
            .unwrap(),
        Some(a1.clone())
    );
    assert_eq!(
        s.reusable_authz(&acct, &example, true, 1_500)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.reusable_authz(&acct, &example, false, 2_000)
            .await
            .unwrap(),
        None
    );
    // A start on an expired or settled authorization does nothing; a
    // result cannot be "processing".
    assert!(!s
        .start_challenge(&AuthzId("a3".into()), ChallengeType::Dns01, 1_000, None)
        .await
        .unwrap());
    let processing = ValidationResult {
        state: AttemptState::Processing,
        ..valid(5)
    };
    assert!(s
        .finish_challenge(&AuthzId("a1".into()), &processing)
        .await
        .is_err());
    assert!(s.deactivate_authz(&AuthzId("a1".into())).await.unwrap());
    assert!(!s.deactivate_authz(&AuthzId("a1".into())).await.unwrap());
    assert!(!s.has_valid_authz(&acct, &example, 10).await.unwrap());

    // Finalize: lease, certificate, a second certificate unlinked.
    let id = OrderId("o1".into());
    assert!(s.claim_order(&id, "i1", 20, 50).await.unwrap());
    assert!(!s.claim_order(&id, "i1", 21, 51).await.unwrap());
    s.release_order(&id, "i1").await.unwrap();
    assert!(s.claim_order(&id, "i1", 22, 52).await.unwrap());
    assert!(!s
        .claim_order(&OrderId("none".into()), "i1", 22, 52)
        .await
        .unwrap());
    let mut c1 = cert("c1", "0a");
    c1.common_name = Some("example.com".into());
    c1.der = (0..=255u8).collect();
    assert!(s.store_certificate(&c1, &id).await.unwrap());
    assert!(!s.store_certificate(&cert("c2", "0b"), &id).await.unwrap());
    let o1 = s.order_by_id(&id).await.unwrap().unwrap();
    assert_eq!(
        (o1.cert_id, o1.processing_until),
        (Some(CertId("c1".into())), None)
    );
    c1.order_id = Some(id.clone());
    assert_eq!(
        s.certificate_by_id(&CertId("c1".into())).await.unwrap(),
        Some(c1.clone())
    );
    assert_eq!(s.certificate_by_serial("0a").await.unwrap(), Some(c1));
    assert_eq!(
        s.certificate_by_serial("0b")
            .await
            .unwrap()
            .unwrap()
            .order_id,
        None
    );
    assert_eq!(s.certificate_by_serial("0c").await.unwrap(), None);

    // Leases left by a dead run: dropped, except on an order with a
    // certificate.
    s.create_order(&order("o2", &["a1"]), &[], None)
        .await
        .unwrap();
    assert!(s
        .claim_order(&OrderId("o2".into()), "i1", 10, 1_000)
        .await
        .unwrap());
    assert_eq!(s.release_all_leases().await.unwrap(), 1);
    assert_eq!(s.release_all_leases().await.unwrap(), 0);
    assert!(s
        .claim_order(&OrderId("o2".into()), "i1", 10, 1_000)
        .await
        .unwrap());

    // Revocation and the CRL's view of it.
    let mut c3 = cert("c3", "01");
    c3.not_after = 500;
    s.store_certificate(&c3, &OrderId("o2".into()))
        .await
        .unwrap();
    let keyc = Revocation {
        at: 30,
        reason: RevocationReason::from_code(1).unwrap(),
    };
    assert!(s
        .revoke_certificate(&CertId("c2".into()), keyc)
        .await
        .unwrap());
    assert!(!s
        .revoke_certificate(&CertId("c2".into()), Revocation { at: 31, ..keyc })
        .await
        .unwrap());
    assert!(s
        .revoke_certificate(
            &CertId("c3".into()),
            Revocation {
                at: 40,
                reason: RevocationReason::SUPERSEDED
            }
        )
        .await
        .unwrap());
    let revoked = s.revoked_certificates(100).await.unwrap();
    let serials: Vec<&str> = revoked.iter().map(|r| r.serial.as_str()).collect();
    assert_eq!(serials, ["01", "0b"]);
    assert_eq!(revoked[1].revocation, keyc);
    assert_eq!(revoked[1].not_after, 2_000);
    let serials: Vec<String> = s
        .revoked_certificates(500)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(serials, ["0b"]);
    // Unrevoked: c1 (not_after 2000). Revoked ones are not counted.
    assert_eq!(
        s.certificates_expiring(10, 1_999, 3_000).await.unwrap(),
        (0, 1)
    );
    assert_eq!(
        s.certificates_expiring(10, 2_000, 3_000).await.unwrap(),
        (1, 1)
    );
    assert_eq!(
        s.certificates_expiring(2_000, 2_500, 3_000).await.unwrap(),
        (0, 0)
    );

    // Key change.
    assert!(!s
        .change_account_key(&acct, "wrong", "{}", "t9")
        .await
        .unwrap());
    s.create_account(&account("other", "t2"), None)
        .await
        .unwrap();
    assert!(!s.change_account_key(&acct, "t1", "{}", "t2").await.unwrap());
    assert!(s
        .change_account_key(&acct, "t1", "{\"k\":2}", "t3")
        .await
        .unwrap());
    assert_eq!(
        s.account_by_thumbprint("t3").await.unwrap().unwrap().id,
        acct
    );
    assert_eq!(s.account_by_thumbprint("t1").await.unwrap(), None);
}

/// Deactivating an account takes its pending authorizations with it, and
/// nothing else.
#[tokio::test]
async fn deactivating_an_account_deactivates_its_pending_authorizations() {
    if let Some((_db, s)) = instances(1).await {
        deactivation(&*s[0]).await;
    }
}

async fn deactivation(s: &dyn Store) {
    let acct = AccountId("acct".into());
    s.create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    s.create_account(&account("other", "t2"), None)
        .await
        .unwrap();
    let mut theirs = authz("theirs");
    theirs.account_id = AccountId("other".into());
    s.create_order(&order("o1", &["p", "v"]), &[authz("p"), authz("v")], None)
        .await
        .unwrap();
    s.create_authz(&theirs).await.unwrap();
    assert!(s
        .start_challenge(
            &AuthzId("v".into()),
            ChallengeType::Http01,
            1,
            Some(&valid(900))
        )
        .await
        .unwrap());
    assert!(s.deactivate_account(&acct).await.unwrap());
    assert!(!s.deactivate_account(&acct).await.unwrap());
    let state = |id: &'static str| async move {
        s.authz_by_id(&AuthzId(id.into()))
            .await
            .unwrap()
            .unwrap()
            .state
    };
    assert_eq!(state("p").await, AuthzState::Deactivated);
    assert_eq!(state("v").await, AuthzState::Valid);
    assert_eq!(state("theirs").await, AuthzState::Pending);
    let a = s.account_by_id(&acct).await.unwrap().unwrap();
    assert_eq!(a.status, AccountStatus::Deactivated);
    assert!(!s.update_account_contact(&acct, &[]).await.unwrap());
    assert!(!s.change_account_key(&acct, "t1", "{}", "t5").await.unwrap());
}

/// Pages of an account's orders, by cursor; stale orders (expired with no
/// certificate, or failed) are left out.
#[tokio::test]
async fn orders_are_listed_in_pages() {
    if let Some((_db, s)) = instances(1).await {
        order_pages(&*s[0]).await;
    }
}

async fn order_pages(s: &dyn Store) {
    let acct = AccountId("acct".into());
    s.create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    s.create_account(&account("other", "t2"), None)
        .await
        .unwrap();
    for i in 0..7 {
        let mut o = order(&format!("o{i}"), &[]);
        // o2 expired without a certificate; o3 expired with one.
        if i == 2 || i == 3 {
            o.expires = 50;
        }
        s.create_order(&o, &[], None).await.unwrap();
    }
    let mut theirs = order("theirs", &[]);
    theirs.account_id = AccountId("other".into());
    s.create_order(&theirs, &[], None).await.unwrap();
    s.store_certificate(&cert("c3", "03"), &OrderId("o3".into()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = s.orders_for_account(&acct, after, 2, 100).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        for e in &page {
            assert!(e.cursor > after);
            after = e.cursor;
            seen.push(e.id.0.clone());
        }
    }
    assert_eq!(seen, ["o0", "o1", "o3", "o4", "o5", "o6"]);
}
