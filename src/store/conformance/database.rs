//! Methods of [`Database`] that span two of its traits: the shared state
//! and the core records read in one step.

use std::sync::Arc;

use super::core::{aid, cert, cid, issue, new_account, oid, order, pending, race, zid, N, NOW, S};
use crate::model::{Account, AccountId, AccountStatus};
use crate::protocol::Identifier;
use crate::store::shared::{Found, Lookup, NonceSpent};
use crate::store::{AccountCreation, Database};

super::both!(crate::store::Database;
    a_nonce_is_spent_and_the_account_read_together,
    a_nonce_spend_reads_the_record_its_request_names,
);

async fn a_nonce_is_spent_and_the_account_read_together(s: Arc<dyn Database>) {
    let account = Account {
        id: AccountId("acct1".into()),
        status: AccountStatus::Valid,
        jwk: r#"{"crv":"P-256","kty":"EC","x":"x1","y":"y1"}"#.into(),
        thumbprint: "t1".into(),
        contact: vec!["mailto:a@example.com".into()],
        tos_agreed: true,
        created_at: 1_700_000_000,
    };
    assert!(matches!(
        s.create_account(&account, None).await.unwrap(),
        AccountCreation::Created
    ));
    let id = &account.id;
    let spent = s
        .spend_nonce_reading_account(b"n1", 10_000, id, None)
        .await
        .unwrap();
    assert_eq!(
        spent,
        NonceSpent {
            fresh: true,
            account: Some(account.clone()),
            found: None
        }
    );
    // Spent: refused everywhere after, the account still read.
    let spent = s
        .spend_nonce_reading_account(b"n1", 10_000, id, None)
        .await
        .unwrap();
    assert!(!spent.fresh);
    assert_eq!(spent.account.as_ref(), Some(&account));
    assert!(!s.spend_nonce(b"n1", 10_000).await.unwrap());
    // A nonce spent the other way is spent here too.
    assert!(s.spend_nonce(b"n2", 10_000).await.unwrap());
    let spent = s
        .spend_nonce_reading_account(b"n2", 10_000, id, None)
        .await
        .unwrap();
    assert!(!spent.fresh);
    // An unknown account: no account, the nonce spent all the same.
    let spent = s
        .spend_nonce_reading_account(b"n3", 10_000, &AccountId("nobody".into()), None)
        .await
        .unwrap();
    assert!(spent.fresh);
    assert_eq!(spent.account, None);
    assert!(!s.spend_nonce(b"n3", 10_000).await.unwrap());
    // The account's current state, not a copy.
    assert!(s.deactivate_account(id).await.unwrap());
    let spent = s
        .spend_nonce_reading_account(b"n4", 10_000, id, None)
        .await
        .unwrap();
    assert_eq!(spent.account.unwrap().status, AccountStatus::Deactivated);
}

/// The record a lookup names comes back as the store's own read gives it
/// (an order with its authorizations in the order's order, a missing one
/// as None), for each request of a batch its own, whether or not the
/// nonce was fresh.
async fn a_nonce_spend_reads_the_record_its_request_names(s: Arc<dyn Database>) {
    let store: S = s.clone();
    new_account(&store, "acct").await;
    pending(&store, "a0", "acct", Identifier::dns("a0.example.com")).await;
    pending(&store, "a1", "acct", Identifier::dns("a1.example.com")).await;
    for o in [
        order("o0", "acct", &["a1", "a0"], NOW + 100),
        order("o1", "acct", &["a0", "gone"], NOW + 100),
        order("o2", "acct", &[], NOW + 100),
    ] {
        assert!(store.create_order(&o, &[], None).await.unwrap());
    }
    issue(&store, "o3", cert("c0", "0a", "acct", NOW + 1000)).await;
    let lookups = [
        Lookup::Authz(zid("a0")),
        Lookup::Authz(zid("a1")),
        Lookup::Authz(zid("none")),
        Lookup::Order(oid("o0")),
        Lookup::Order(oid("o1")),
        Lookup::Order(oid("o2")),
        Lookup::Order(oid("o3")),
        Lookup::Order(oid("none")),
        Lookup::Cert(cid("c0")),
        Lookup::Cert(cid("none")),
    ];
    let mut expected = Vec::new();
    for lookup in &lookups {
        expected.push(lookup.read(store.as_ref()).await.unwrap());
    }
    // The reads the store gives, as the test expects them.
    assert!(
        matches!(&expected[3], Found::Order(_, Some((o, a))) if o.id == oid("o0")
        && a.iter().map(|a| a.id.clone()).collect::<Vec<_>>() == [zid("a1"), zid("a0")])
    );
    assert!(matches!(&expected[6], Found::Order(_, Some((o, _))) if o.cert_id == Some(cid("c0"))));
    assert!(matches!(&expected[7], Found::Order(_, None)));
    // Two rounds of requests released together (on PostgreSQL they share
    // batches); each nonce is sent by two of them.
    for round in 0..2 {
        let reads = race(N * lookups.len() / 4, |i| {
            let s = s.clone();
            let lookup = lookups[i % lookups.len()].clone();
            async move {
                let nonce = format!("r{round}-{}", i / 2);
                let spent = s
                    .spend_nonce_reading_account(
                        nonce.as_bytes(),
                        10_000,
                        &aid("acct"),
                        Some(&lookup),
                    )
                    .await
                    .unwrap();
                (i, spent)
            }
        })
        .await;
        let mut fresh = vec![0; reads.len() / 2];
        for (i, spent) in reads {
            fresh[i / 2] += usize::from(spent.fresh);
            assert_eq!(spent.account.map(|a| a.id), Some(aid("acct")));
            assert_eq!(
                spent.found.as_ref(),
                Some(&expected[i % lookups.len()]),
                "round {round}, request {i}"
            );
        }
        // Each nonce was sent twice: fresh for exactly one of the two.
        assert!(fresh.iter().all(|&n| n == 1), "round {round}: {fresh:?}");
    }
}
