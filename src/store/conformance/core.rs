//! The conformance suite of the core [`Store`] trait: every method with its
//! edge cases, and the races that must have exactly one winner, written
//! against the trait alone so that every backend answers to the same tests.
//!
//! Each test gets a fresh, empty store (a backend's migrations may add rows
//! of their own, such as the operator service's account, which no test here
//! reads). Times are plain numbers around [`NOW`]: the store never reads a
//! clock. Tests assume only what the trait documents; where rows come back
//! in an order the contract does not fix, they are sorted first.
//!
//! The races start `N` tasks on the multi-threaded runtime and release them
//! together through a [`Barrier`], so that on a backend with several
//! connections the conditional updates really overlap; each race runs for
//! several rounds on fresh rows.

use std::future::Future;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Barrier;

use crate::model::{
    Account, AccountId, AccountStatus, Attempt, AttemptState, Authz, AuthzId, AuthzState, CertId,
    Certificate, ChallengeType, Order, OrderId, Revocation, RevocationReason, Timestamp,
};
use crate::protocol::Identifier;
use crate::store::{
    challenge_started, AccountCreation, OrderListEntry, RevokedCert, Store, ValidationResult,
};

/// The store under test.
pub(super) type S = Arc<dyn Store>;

/// "Now" for every test: far from zero, so that times before it are
/// positive too.
pub(super) const NOW: Timestamp = 1_700_000_000;
/// Tasks per race.
pub(super) const N: usize = 16;
/// Rounds per race, each on fresh rows.
const ROUNDS: usize = 4;

// Records.

pub(super) fn account(id: &str, thumbprint: &str) -> Account {
    Account {
        id: AccountId(id.into()),
        status: AccountStatus::Valid,
        jwk: format!(r#"{{"crv":"P-256","kty":"EC","x":"{id}","y":"{thumbprint}"}}"#),
        thumbprint: thumbprint.into(),
        contact: vec![format!("mailto:{id}@example.com")],
        tos_agreed: true,
        created_at: NOW - 100,
    }
}

/// A pending authorization of `account` for `identifier`.
pub(super) fn authz(id: &str, account: &str, identifier: Identifier, expires: Timestamp) -> Authz {
    Authz {
        id: AuthzId(id.into()),
        account_id: AccountId(account.into()),
        identifier,
        wildcard: false,
        state: AuthzState::Pending,
        expires,
        token: format!("token-{id}"),
        offered: ChallengeType::ALL.to_vec(),
        attempt: None,
        created_at: NOW - 10,
    }
}

pub(super) fn order(id: &str, account: &str, authz_ids: &[&str], expires: Timestamp) -> Order {
    Order {
        id: OrderId(id.into()),
        account_id: AccountId(account.into()),
        identifiers: vec![Identifier::dns("example.com")],
        authz_ids: authz_ids.iter().map(|a| AuthzId((*a).into())).collect(),
        expires,
        not_before: None,
        not_after: None,
        processing_until: None,
        cert_id: None,
        error: None,
        created_at: NOW - 10,
        profile: "classic".into(),
        replaces: None,
    }
}

/// A certificate of `account` (not linked yet: `store_certificate` links
/// it to its order).
pub(super) fn cert(id: &str, serial: &str, account: &str, not_after: Timestamp) -> Certificate {
    Certificate {
        id: CertId(id.into()),
        serial: serial.into(),
        account_id: AccountId(account.into()),
        order_id: None,
        der: vec![0x30, 0x03, 0x02, 0x01, 0x27],
        not_before: NOW - 3600,
        not_after,
        issued_at: NOW - 3600,
        revoked: None,
        common_name: Some(format!("{id}.example.com")),
    }
}

fn valid_result(validated_at: Timestamp, expires: Timestamp) -> ValidationResult {
    ValidationResult {
        state: AttemptState::Valid,
        validated_at,
        error: None,
        records: Some(json!([{"url": "http://example.com/", "addressUsed": "192.0.2.1"}])),
        expires,
    }
}

fn invalid_result(validated_at: Timestamp, expires: Timestamp) -> ValidationResult {
    ValidationResult {
        state: AttemptState::Invalid,
        validated_at,
        error: Some(json!({
            "type": "urn:ietf:params:acme:error:connection",
            "detail": "connection refused",
            "status": 400
        })),
        records: None,
        expires,
    }
}

pub(super) fn aid(id: &str) -> AccountId {
    AccountId(id.into())
}

pub(super) fn zid(id: &str) -> AuthzId {
    AuthzId(id.into())
}

pub(super) fn oid(id: &str) -> OrderId {
    OrderId(id.into())
}

pub(super) fn cid(id: &str) -> CertId {
    CertId(id.into())
}

fn revocation(at: Timestamp, code: i64) -> Revocation {
    Revocation {
        at,
        reason: RevocationReason::from_code(code).expect("a valid reason code"),
    }
}

// Steps most tests take.

/// Creates account `id` with key `key-{id}`.
pub(super) async fn new_account(s: &S, id: &str) -> Account {
    let a = account(id, &format!("key-{id}"));
    assert_eq!(
        s.create_account(&a, None).await.unwrap(),
        AccountCreation::Created
    );
    a
}

/// Creates a standalone pending authorization and returns it as stored.
pub(super) async fn pending(s: &S, id: &str, account: &str, identifier: Identifier) -> Authz {
    let a = authz(id, account, identifier, NOW + 1000);
    s.create_authz(&a).await.unwrap();
    a
}

/// Creates an authorization and validates it, which sets `expires`.
async fn validated(
    s: &S,
    id: &str,
    account: &str,
    identifier: Identifier,
    wildcard: bool,
    expires: Timestamp,
) {
    let mut a = authz(id, account, identifier, NOW + 1000);
    a.wildcard = wildcard;
    s.create_authz(&a).await.unwrap();
    assert!(s
        .start_challenge(&a.id, ChallengeType::Dns01, NOW - 5, None)
        .await
        .unwrap());
    assert!(s
        .finish_challenge(&a.id, &valid_result(NOW - 4, expires))
        .await
        .unwrap());
}

async fn authz_state(s: &S, id: &str) -> AuthzState {
    s.authz_by_id(&zid(id)).await.unwrap().expect(id).state
}

/// Creates order `order_id` (no authorizations) and records `c` as its
/// certificate; returns the certificate as stored.
pub(super) async fn issue(s: &S, order_id: &str, c: Certificate) -> Certificate {
    let o = order(order_id, &c.account_id.0, &[], NOW + 100);
    assert!(s.create_order(&o, &[], None).await.unwrap());
    assert!(s.store_certificate(&c, &o.id).await.unwrap());
    s.certificate_by_id(&c.id).await.unwrap().expect("stored")
}

/// Starts `n` tasks made by `make`, releases them together, and returns
/// their results in task order.
pub(super) async fn race<T, F, Fut>(n: usize, mut make: F) -> Vec<T>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let work = make(i);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for t in tasks {
        results.push(t.await.expect("a racing task panicked"));
    }
    results
}

/// The one task that won; fails unless exactly one did.
fn winner(wins: &[bool]) -> usize {
    let won: Vec<usize> = (0..wins.len()).filter(|&i| wins[i]).collect();
    assert_eq!(won.len(), 1, "exactly one winner, got tasks {won:?}");
    won[0]
}

// Accounts.

/// Moved from the SQLite tests: one account per key, and a deactivated
/// account takes no more updates.
async fn accounts_are_unique_by_key(s: S) {
    assert_eq!(
        s.create_account(&account("acct", "t1"), None)
            .await
            .unwrap(),
        AccountCreation::Created
    );
    match s
        .create_account(&account("other", "t1"), None)
        .await
        .unwrap()
    {
        AccountCreation::Existing(a) => assert_eq!(a.id.0, "acct"),
        other => panic!("{other:?}"),
    }
    assert!(s.deactivate_account(&aid("acct")).await.unwrap());
    assert!(!s.deactivate_account(&aid("acct")).await.unwrap());
    let a = s.account_by_id(&aid("acct")).await.unwrap().unwrap();
    assert_eq!(a.status, AccountStatus::Deactivated);
    assert!(!s
        .update_account_contact(&aid("acct"), &["mailto:a@b.example".into()])
        .await
        .unwrap());
}

async fn create_account_round_trips_and_answers_an_existing_key(s: S) {
    let mut a = account("acct", "t1");
    a.tos_agreed = false;
    a.contact = vec![];
    assert_eq!(
        s.create_account(&a, None).await.unwrap(),
        AccountCreation::Created
    );
    assert_eq!(s.account_by_id(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.account_by_thumbprint("t1").await.unwrap(),
        Some(a.clone())
    );
    // The same key under another id: the first account, whole, and no
    // second account.
    let again = account("acct2", "t1");
    assert_eq!(
        s.create_account(&again, None).await.unwrap(),
        AccountCreation::Existing(a.clone())
    );
    assert_eq!(s.account_by_id(&again.id).await.unwrap(), None);
    // A deactivated account still holds its key.
    assert!(s.deactivate_account(&a.id).await.unwrap());
    match s.create_account(&again, None).await.unwrap() {
        AccountCreation::Existing(e) => {
            assert_eq!(e.id, a.id);
            assert_eq!(e.status, AccountStatus::Deactivated);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.account_by_id(&aid("missing")).await.unwrap(), None);
    assert_eq!(s.account_by_thumbprint("missing").await.unwrap(), None);
}

async fn external_account_key_ids_bind_one_account(s: S) {
    let first = account("a1", "t1");
    assert_eq!(
        s.create_account(&first, Some("kid-1")).await.unwrap(),
        AccountCreation::Created
    );
    // Another key with the same key id: refused, and nothing is created.
    let second = account("a2", "t2");
    assert_eq!(
        s.create_account(&second, Some("kid-1")).await.unwrap(),
        AccountCreation::KeyIdTaken
    );
    assert_eq!(s.account_by_id(&second.id).await.unwrap(), None);
    assert_eq!(s.account_by_thumbprint("t2").await.unwrap(), None);
    // A registered key is answered with its account, whatever the key id,
    // and binds nothing: kid-2 stays free for a new account.
    assert_eq!(
        s.create_account(&account("a3", "t1"), Some("kid-2"))
            .await
            .unwrap(),
        AccountCreation::Existing(first.clone())
    );
    assert_eq!(
        s.create_account(&account("a4", "t1"), Some("kid-1"))
            .await
            .unwrap(),
        AccountCreation::Existing(first.clone())
    );
    assert_eq!(
        s.create_account(&second, Some("kid-2")).await.unwrap(),
        AccountCreation::Created
    );
    assert_eq!(s.account_by_id(&second.id).await.unwrap(), Some(second));
    // Accounts without a binding are not limited by the bound ones.
    assert_eq!(
        s.create_account(&account("a5", "t5"), None).await.unwrap(),
        AccountCreation::Created
    );
}

async fn update_account_contact_only_on_valid_accounts(s: S) {
    let a = new_account(&s, "acct").await;
    let contact = vec![
        "mailto:ops@example.com".to_string(),
        "mailto:admin@example.org".to_string(),
    ];
    assert!(s.update_account_contact(&a.id, &contact).await.unwrap());
    let back = s.account_by_id(&a.id).await.unwrap().unwrap();
    assert_eq!(back.contact, contact);
    let back = s
        .account_by_thumbprint(&a.thumbprint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.contact, contact);
    assert!(s.update_account_contact(&a.id, &[]).await.unwrap());
    let back = s.account_by_id(&a.id).await.unwrap().unwrap();
    assert_eq!(back.contact, Vec::<String>::new());
    assert!(!s
        .update_account_contact(&aid("missing"), &contact)
        .await
        .unwrap());
    assert_eq!(s.account_by_id(&aid("missing")).await.unwrap(), None);
    // Deactivated: refused, and the contacts stay as they were.
    assert!(s.deactivate_account(&a.id).await.unwrap());
    assert!(!s.update_account_contact(&a.id, &contact).await.unwrap());
    let back = s
        .account_by_thumbprint(&a.thumbprint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.contact, Vec::<String>::new());
    assert_eq!(back.status, AccountStatus::Deactivated);
}

/// RFC 8555 §7.3.6: deactivating an account deactivates its pending
/// authorizations (those with an attempt in progress too); valid and
/// invalid ones, and other accounts' ones, are left alone.
async fn deactivate_account_takes_its_pending_authzs(s: S) {
    let a = new_account(&s, "acct").await;
    new_account(&s, "other").await;
    pending(&s, "p", "acct", Identifier::dns("p.example")).await;
    pending(&s, "busy", "acct", Identifier::dns("busy.example")).await;
    assert!(s
        .start_challenge(&zid("busy"), ChallengeType::Http01, NOW, None)
        .await
        .unwrap());
    validated(
        &s,
        "v",
        "acct",
        Identifier::dns("v.example"),
        false,
        NOW + 500,
    )
    .await;
    pending(&s, "i", "acct", Identifier::dns("i.example")).await;
    let failed = invalid_result(NOW + 1, NOW + 1000);
    assert!(s
        .start_challenge(&zid("i"), ChallengeType::Http01, NOW, Some(&failed))
        .await
        .unwrap());
    pending(&s, "theirs", "other", Identifier::dns("p.example")).await;
    let o = order("o", "acct", &["op"], NOW + 100);
    let op = authz("op", "acct", Identifier::dns("example.com"), NOW + 1000);
    assert!(s.create_order(&o, &[op], None).await.unwrap());

    assert!(s.deactivate_account(&a.id).await.unwrap());
    for (id, state) in [
        ("p", AuthzState::Deactivated),
        ("busy", AuthzState::Deactivated),
        ("op", AuthzState::Deactivated),
        ("v", AuthzState::Valid),
        ("i", AuthzState::Invalid),
        ("theirs", AuthzState::Pending),
    ] {
        assert_eq!(authz_state(&s, id).await, state, "authorization {id}");
    }
    let back = s.account_by_id(&a.id).await.unwrap().unwrap();
    assert_eq!(back.status, AccountStatus::Deactivated);
    // What was pending takes no more challenges or results.
    assert!(!s
        .start_challenge(&zid("p"), ChallengeType::Http01, NOW, None)
        .await
        .unwrap());
    assert!(!s
        .finish_challenge(&zid("busy"), &valid_result(NOW + 1, NOW + 500))
        .await
        .unwrap());
    assert_eq!(authz_state(&s, "busy").await, AuthzState::Deactivated);
    // Only a valid account is deactivated.
    assert!(!s.deactivate_account(&a.id).await.unwrap());
    assert!(!s.deactivate_account(&aid("missing")).await.unwrap());
    assert_eq!(authz_state(&s, "theirs").await, AuthzState::Pending);
}

async fn change_account_key_rules(s: S) {
    let a = new_account(&s, "acct").await;
    let b = new_account(&s, "other").await;
    let jwk = r#"{"kty":"OKP","crv":"Ed25519","x":"new"}"#;
    // Not the account's current key: refused.
    assert!(!s
        .change_account_key(&a.id, "key-wrong", jwk, "key-new")
        .await
        .unwrap());
    // Another account's key: refused, nothing changes.
    assert!(!s
        .change_account_key(&a.id, &a.thumbprint, jwk, &b.thumbprint)
        .await
        .unwrap());
    assert_eq!(s.account_by_id(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.account_by_thumbprint(&b.thumbprint).await.unwrap(),
        Some(b.clone())
    );
    assert!(!s
        .change_account_key(&aid("missing"), "key-missing", jwk, "key-new")
        .await
        .unwrap());

    assert!(s
        .change_account_key(&a.id, &a.thumbprint, jwk, "key-new")
        .await
        .unwrap());
    let mut moved = a.clone();
    moved.jwk = jwk.into();
    moved.thumbprint = "key-new".into();
    assert_eq!(s.account_by_id(&a.id).await.unwrap(), Some(moved.clone()));
    assert_eq!(
        s.account_by_thumbprint("key-new").await.unwrap(),
        Some(moved.clone())
    );
    assert_eq!(s.account_by_thumbprint(&a.thumbprint).await.unwrap(), None);
    // The same change again: the key is no longer the old one.
    assert!(!s
        .change_account_key(&a.id, &a.thumbprint, jwk, "key-new")
        .await
        .unwrap());
    // The old key is free for a new account.
    assert_eq!(
        s.create_account(&account("third", &a.thumbprint), None)
            .await
            .unwrap(),
        AccountCreation::Created
    );
    // A deactivated account keeps its key.
    assert!(s.deactivate_account(&b.id).await.unwrap());
    assert!(!s
        .change_account_key(&b.id, &b.thumbprint, jwk, "key-b2")
        .await
        .unwrap());
    assert_eq!(s.account_by_thumbprint("key-b2").await.unwrap(), None);
}

// Authorizations.

async fn authzs_round_trip_and_come_back_in_the_order_asked(s: S) {
    new_account(&s, "acct").await;
    let a1 = pending(&s, "a1", "acct", Identifier::dns("example.com")).await;
    let mut a2 = authz("a2", "acct", Identifier::ip("2001:db8::1"), NOW + 7);
    a2.offered = vec![ChallengeType::TlsAlpn01, ChallengeType::Http01];
    s.create_authz(&a2).await.unwrap();
    let mut a3 = authz("a3", "acct", Identifier::dns("example.org"), NOW + 9);
    a3.wildcard = true;
    a3.offered = vec![ChallengeType::Dns01, ChallengeType::DnsPersist01];
    s.create_authz(&a3).await.unwrap();

    for a in [&a1, &a2, &a3] {
        assert_eq!(s.authz_by_id(&a.id).await.unwrap().as_ref(), Some(a));
    }
    assert_eq!(s.authz_by_id(&zid("missing")).await.unwrap(), None);
    let asked = [zid("a3"), zid("missing"), zid("a1"), zid("a2")];
    assert_eq!(s.authzs_by_ids(&asked).await.unwrap(), vec![a3, a1, a2]);
    assert_eq!(s.authzs_by_ids(&[]).await.unwrap(), Vec::<Authz>::new());
    assert_eq!(
        s.authzs_by_ids(&[zid("missing")]).await.unwrap(),
        Vec::<Authz>::new()
    );

    // An order read with its authorizations: the same as the two reads.
    let o1 = order("o1", "acct", &["a3", "missing", "a1", "a2"], NOW + 100);
    s.create_order(&o1, &[], None).await.unwrap();
    let o0 = order("o0", "acct", &[], NOW + 100);
    s.create_order(&o0, &[], None).await.unwrap();
    for o in [&o1, &o0] {
        let stored = s.order_by_id(&o.id).await.unwrap().unwrap();
        let authzs = s.authzs_by_ids(&o.authz_ids).await.unwrap();
        assert_eq!(
            s.order_with_authzs(&o.id).await.unwrap(),
            Some((stored, authzs))
        );
    }
    let (_, authzs) = s.order_with_authzs(&o1.id).await.unwrap().unwrap();
    let ids: Vec<&str> = authzs.iter().map(|a| a.id.0.as_str()).collect();
    assert_eq!(ids, ["a3", "a1", "a2"]);
    assert_eq!(s.order_with_authzs(&oid("none")).await.unwrap(), None);
}

/// Reads that overlap (which the PostgreSQL store answers in shared
/// batches) each get their own authorization, a missing one none, and
/// see a change made before them.
async fn authzs_read_at_once_each_come_back_as_asked(s: S) {
    new_account(&s, "acct").await;
    let mut made = Vec::new();
    for i in 0..3 {
        let host = format!("host{i}.example.com");
        made.push(pending(&s, &format!("a{i}"), "acct", Identifier::dns(&host)).await);
    }
    for round in 0..ROUNDS {
        let reads = race(4 * N, |i| {
            let s = s.clone();
            async move {
                let id = if i % 4 == 3 {
                    zid("missing")
                } else {
                    zid(&format!("a{}", i % 4))
                };
                (i, s.authz_by_id(&id).await.unwrap())
            }
        })
        .await;
        for (i, got) in reads {
            let want = made.get(i % 4);
            assert_eq!(got.as_ref(), want, "round {round}, read {i}");
        }
    }
    assert!(s
        .start_challenge(&zid("a1"), ChallengeType::Dns01, NOW, None)
        .await
        .unwrap());
    let reads = race(N, |_| {
        let s = s.clone();
        async move { s.authz_by_id(&zid("a1")).await.unwrap().unwrap() }
    })
    .await;
    assert!(reads.iter().all(|a| a.attempt.is_some()));
}

/// As [`authzs_read_at_once_each_come_back_as_asked`], for orders read
/// with their authorizations and for certificates.
async fn orders_and_certificates_read_at_once_each_come_back_as_asked(s: S) {
    new_account(&s, "acct").await;
    let a0 = pending(&s, "a0", "acct", Identifier::dns("a0.example.com")).await;
    let a1 = pending(&s, "a1", "acct", Identifier::dns("a1.example.com")).await;
    let orders = [
        order("o0", "acct", &["a1", "a0"], NOW + 100),
        order("o1", "acct", &["a0", "gone"], NOW + 100),
        order("o2", "acct", &[], NOW + 100),
    ];
    for o in &orders {
        assert!(s.create_order(o, &[], None).await.unwrap());
    }
    let want_authzs = [vec![a1.clone(), a0.clone()], vec![a0.clone()], vec![]];
    let mut certs = Vec::new();
    for i in 0..3 {
        let c = cert(&format!("c{i}"), &format!("0{i}"), "acct", NOW + 1000);
        certs.push(issue(&s, &format!("for-c{i}"), c).await);
    }
    for round in 0..ROUNDS {
        let reads = race(4 * N, |i| {
            let s = s.clone();
            async move {
                let k = i % 4;
                let order = s.order_with_authzs(&oid(&format!("o{k}"))).await.unwrap();
                let cert = s.certificate_by_id(&cid(&format!("c{k}"))).await.unwrap();
                (k, order, cert)
            }
        })
        .await;
        for (k, order, cert) in reads {
            match order {
                Some((o, authzs)) => {
                    assert_eq!(o.id, orders[k].id, "round {round}");
                    assert_eq!(authzs, want_authzs[k], "round {round}, order {k}");
                }
                None => assert_eq!(k, 3, "round {round}: order {k} not found"),
            }
            assert_eq!(
                cert.as_ref(),
                certs.get(k),
                "round {round}, certificate {k}"
            );
        }
    }
}

async fn deactivate_authz_only_from_pending_or_valid(s: S) {
    new_account(&s, "acct").await;
    pending(&s, "p", "acct", Identifier::dns("p.example")).await;
    validated(
        &s,
        "v",
        "acct",
        Identifier::dns("v.example"),
        false,
        NOW + 500,
    )
    .await;
    pending(&s, "i", "acct", Identifier::dns("i.example")).await;
    let failed = invalid_result(NOW, NOW + 1000);
    assert!(s
        .start_challenge(&zid("i"), ChallengeType::Dns01, NOW, Some(&failed))
        .await
        .unwrap());

    assert!(s.deactivate_authz(&zid("p")).await.unwrap());
    assert!(s.deactivate_authz(&zid("v")).await.unwrap());
    assert!(!s.deactivate_authz(&zid("i")).await.unwrap());
    assert!(!s.deactivate_authz(&zid("p")).await.unwrap());
    assert!(!s.deactivate_authz(&zid("missing")).await.unwrap());
    assert_eq!(authz_state(&s, "p").await, AuthzState::Deactivated);
    assert_eq!(authz_state(&s, "v").await, AuthzState::Deactivated);
    assert_eq!(authz_state(&s, "i").await, AuthzState::Invalid);
    // A deactivated authorization is not reused nor counts as valid.
    assert!(!s
        .has_valid_authz(&aid("acct"), &Identifier::dns("v.example"), NOW)
        .await
        .unwrap());
    assert!(!s
        .start_challenge(&zid("p"), ChallengeType::Http01, NOW, None)
        .await
        .unwrap());
}

/// Moved from the SQLite tests: one attempt per authorization, one result
/// per attempt, one finalize lease at a time, one linked certificate.
async fn one_attempt_per_authorization_and_one_lease_per_order(s: S) {
    s.create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    let o = order("o1", "acct", &["a1"], 1_000);
    let a = authz("a1", "acct", Identifier::dns("example.com"), 1_000);
    s.create_order(&o, &[a], None).await.unwrap();
    let a1 = zid("a1");
    assert!(s
        .start_challenge(&a1, ChallengeType::Http01, 10, None)
        .await
        .unwrap());
    assert!(!s
        .start_challenge(&a1, ChallengeType::Dns01, 10, None)
        .await
        .unwrap());
    let result = ValidationResult {
        state: AttemptState::Valid,
        validated_at: 11,
        error: None,
        records: Some(json!([])),
        expires: 2_000,
    };
    assert!(s.finish_challenge(&a1, &result).await.unwrap());
    assert!(!s.finish_challenge(&a1, &result).await.unwrap());
    let a = s.authz_by_id(&a1).await.unwrap().unwrap();
    assert_eq!(a.state, AuthzState::Valid);
    assert_eq!(a.expires, 2_000);

    let o1 = oid("o1");
    assert!(s.claim_order(&o1, "i1", 20, 50).await.unwrap());
    assert!(
        !s.claim_order(&o1, "i1", 21, 51).await.unwrap(),
        "lease is held"
    );
    assert!(
        s.claim_order(&o1, "i1", 50, 80).await.unwrap(),
        "lease ran out"
    );
    let mut c1 = cert("c1", "0a", "acct", 2);
    c1.order_id = Some(o1.clone());
    assert!(s.store_certificate(&c1, &o1).await.unwrap());
    // A second certificate for the order is recorded, unlinked.
    assert!(!s
        .store_certificate(&cert("c2", "0b", "acct", 2), &o1)
        .await
        .unwrap());
    assert!(
        !s.claim_order(&o1, "i1", 100, 130).await.unwrap(),
        "order has a certificate"
    );
    let o = s.order_by_id(&o1).await.unwrap().unwrap();
    assert_eq!(o.cert_id, Some(cid("c1")));
    let (o, authzs) = s.order_with_authzs(&o1).await.unwrap().unwrap();
    assert_eq!(o.cert_id, Some(cid("c1")));
    assert_eq!(authzs.len(), 1);
    let c2 = s.certificate_by_id(&cid("c2")).await.unwrap().unwrap();
    assert_eq!(c2.order_id, None);
}

async fn start_challenge_needs_a_pending_unexpired_authz_without_attempt(s: S) {
    new_account(&s, "acct").await;
    // Expiry is exclusive: an authorization expiring at `now` is over.
    let mut edge = authz("edge", "acct", Identifier::dns("edge.example"), NOW);
    s.create_authz(&edge).await.unwrap();
    assert!(!s
        .start_challenge(&edge.id, ChallengeType::Http01, NOW, None)
        .await
        .unwrap());
    assert_eq!(s.authz_by_id(&edge.id).await.unwrap(), Some(edge.clone()));
    let before = edge.clone();
    assert!(s
        .start_challenge(&edge.id, ChallengeType::TlsAlpn01, NOW - 1, None)
        .await
        .unwrap());
    // What callers assume instead of reading it back.
    assert_eq!(
        s.authz_by_id(&edge.id).await.unwrap(),
        Some(challenge_started(&before, ChallengeType::TlsAlpn01, NOW - 1, None).unwrap())
    );
    edge.attempt = Some(Attempt {
        kind: ChallengeType::TlsAlpn01,
        state: AttemptState::Processing,
        started_at: NOW - 1,
        validated_at: None,
        error: None,
        records: None,
    });
    assert_eq!(s.authz_by_id(&edge.id).await.unwrap(), Some(edge.clone()));
    // One attempt: a second start of any type is refused and changes
    // nothing.
    for kind in ChallengeType::ALL {
        assert!(!s
            .start_challenge(&edge.id, kind, NOW - 1, None)
            .await
            .unwrap());
    }
    assert_eq!(s.authz_by_id(&edge.id).await.unwrap(), Some(edge));
    assert!(!s
        .start_challenge(&zid("missing"), ChallengeType::Http01, NOW, None)
        .await
        .unwrap());
    // Not pending any more (deactivated): refused.
    pending(&s, "gone", "acct", Identifier::dns("gone.example")).await;
    assert!(s.deactivate_authz(&zid("gone")).await.unwrap());
    assert!(!s
        .start_challenge(&zid("gone"), ChallengeType::Http01, NOW, None)
        .await
        .unwrap());
}

/// An attempt whose outcome is known at once is stored settled: never
/// processing, and no second result is taken.
async fn start_challenge_settled_at_once(s: S) {
    new_account(&s, "acct").await;
    let mut ok = pending(&s, "ok", "acct", Identifier::dns("ok.example")).await;
    let result = valid_result(NOW, NOW + 9000);
    let before = ok.clone();
    assert!(s
        .start_challenge(&ok.id, ChallengeType::DnsPersist01, NOW, Some(&result))
        .await
        .unwrap());
    let assumed =
        challenge_started(&before, ChallengeType::DnsPersist01, NOW, Some(&result)).unwrap();
    assert_eq!(s.authz_by_id(&ok.id).await.unwrap(), Some(assumed));
    ok.state = AuthzState::Valid;
    ok.expires = NOW + 9000;
    ok.attempt = Some(Attempt {
        kind: ChallengeType::DnsPersist01,
        state: AttemptState::Valid,
        started_at: NOW,
        validated_at: Some(NOW),
        error: None,
        records: result.records.clone(),
    });
    assert_eq!(s.authz_by_id(&ok.id).await.unwrap(), Some(ok.clone()));

    let mut bad = pending(&s, "bad", "acct", Identifier::dns("bad.example")).await;
    let failed = invalid_result(NOW + 1, NOW + 20);
    let before = bad.clone();
    assert!(s
        .start_challenge(&bad.id, ChallengeType::Http01, NOW, Some(&failed))
        .await
        .unwrap());
    let assumed = challenge_started(&before, ChallengeType::Http01, NOW, Some(&failed)).unwrap();
    assert_eq!(s.authz_by_id(&bad.id).await.unwrap(), Some(assumed));
    bad.state = AuthzState::Invalid;
    bad.expires = NOW + 20;
    bad.attempt = Some(Attempt {
        kind: ChallengeType::Http01,
        state: AttemptState::Invalid,
        started_at: NOW,
        validated_at: Some(NOW + 1),
        error: failed.error.clone(),
        records: None,
    });
    assert_eq!(s.authz_by_id(&bad.id).await.unwrap(), Some(bad.clone()));

    assert_eq!(s.authzs_processing().await.unwrap(), Vec::<Authz>::new());
    assert!(!s
        .finish_challenge(&ok.id, &invalid_result(NOW + 2, NOW + 3))
        .await
        .unwrap());
    assert_eq!(s.authz_by_id(&ok.id).await.unwrap(), Some(ok));
    // A result is never "processing": refused, and nothing is written.
    let mut processing = valid_result(NOW, NOW + 9000);
    processing.state = AttemptState::Processing;
    let p = pending(&s, "p", "acct", Identifier::dns("p.example")).await;
    assert!(s
        .start_challenge(&p.id, ChallengeType::Http01, NOW, Some(&processing))
        .await
        .is_err());
    assert_eq!(s.authz_by_id(&p.id).await.unwrap(), Some(p));
}

async fn finish_challenge_settles_a_processing_attempt_once(s: S) {
    new_account(&s, "acct").await;
    let mut a = pending(&s, "a", "acct", Identifier::dns("a.example")).await;
    // No attempt yet: nothing to finish.
    assert!(!s
        .finish_challenge(&a.id, &valid_result(NOW, NOW + 500))
        .await
        .unwrap());
    assert_eq!(s.authz_by_id(&a.id).await.unwrap(), Some(a.clone()));
    assert!(s
        .start_challenge(&a.id, ChallengeType::Dns01, NOW, None)
        .await
        .unwrap());
    let mut processing = valid_result(NOW, NOW + 500);
    processing.state = AttemptState::Processing;
    assert!(s.finish_challenge(&a.id, &processing).await.is_err());
    let failed = invalid_result(NOW + 3, NOW + 40);
    assert!(s.finish_challenge(&a.id, &failed).await.unwrap());
    a.state = AuthzState::Invalid;
    a.expires = NOW + 40;
    a.attempt = Some(Attempt {
        kind: ChallengeType::Dns01,
        state: AttemptState::Invalid,
        started_at: NOW,
        validated_at: Some(NOW + 3),
        error: failed.error.clone(),
        records: None,
    });
    assert_eq!(s.authz_by_id(&a.id).await.unwrap(), Some(a.clone()));
    // Settled: a later result (a retried validation) changes nothing.
    assert!(!s
        .finish_challenge(&a.id, &valid_result(NOW + 4, NOW + 900))
        .await
        .unwrap());
    assert_eq!(s.authz_by_id(&a.id).await.unwrap(), Some(a));
    assert!(!s
        .finish_challenge(&zid("missing"), &valid_result(NOW, NOW + 500))
        .await
        .unwrap());

    let mut v = pending(&s, "v", "acct", Identifier::dns("v.example")).await;
    assert!(s
        .start_challenge(&v.id, ChallengeType::Http01, NOW, None)
        .await
        .unwrap());
    let ok = valid_result(NOW + 2, NOW + 86_400);
    assert!(s.finish_challenge(&v.id, &ok).await.unwrap());
    v.state = AuthzState::Valid;
    v.expires = NOW + 86_400;
    v.attempt = Some(Attempt {
        kind: ChallengeType::Http01,
        state: AttemptState::Valid,
        started_at: NOW,
        validated_at: Some(NOW + 2),
        error: None,
        records: ok.records.clone(),
    });
    assert_eq!(s.authz_by_id(&v.id).await.unwrap(), Some(v));
}

async fn authzs_processing_lists_exactly_the_attempts_in_progress(s: S) {
    new_account(&s, "acct").await;
    new_account(&s, "other").await;
    assert_eq!(s.authzs_processing().await.unwrap(), Vec::<Authz>::new());
    for (id, acct) in [("x", "acct"), ("y", "other"), ("z", "acct"), ("w", "acct")] {
        pending(&s, id, acct, Identifier::dns(format!("{id}.example"))).await;
    }
    for id in ["x", "y", "z"] {
        assert!(s
            .start_challenge(&zid(id), ChallengeType::Http01, NOW, None)
            .await
            .unwrap());
    }
    assert!(s
        .finish_challenge(&zid("z"), &valid_result(NOW + 1, NOW + 500))
        .await
        .unwrap());
    let mut listed = s.authzs_processing().await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let expected = vec![
        s.authz_by_id(&zid("x")).await.unwrap().unwrap(),
        s.authz_by_id(&zid("y")).await.unwrap().unwrap(),
    ];
    assert_eq!(listed, expected);
    assert!(listed
        .iter()
        .all(|a| a.attempt.as_ref().unwrap().state == AttemptState::Processing));
}

/// The latest-expiring valid authorization of the same account,
/// identifier (type and value) and wildcard flag, expiring strictly after
/// `min_expires`.
async fn reusable_authz_picks_the_latest_expiring_match(s: S) {
    new_account(&s, "acct").await;
    new_account(&s, "other").await;
    let name = || Identifier::dns("example.com");
    validated(&s, "v1", "acct", name(), false, NOW + 100).await;
    validated(&s, "v2", "acct", name(), false, NOW + 300).await;
    validated(&s, "v0", "acct", name(), false, NOW + 200).await;
    validated(&s, "wild", "acct", name(), true, NOW + 500).await;
    validated(&s, "gone", "acct", name(), false, NOW + 800).await;
    assert!(s.deactivate_authz(&zid("gone")).await.unwrap());
    pending(&s, "p", "acct", name()).await;
    let i = pending(&s, "i", "acct", name()).await;
    let failed = invalid_result(NOW, NOW + 700);
    assert!(s
        .start_challenge(&i.id, ChallengeType::Http01, NOW, Some(&failed))
        .await
        .unwrap());
    validated(&s, "theirs", "other", name(), false, NOW + 1000).await;
    validated(
        &s,
        "elsewhere",
        "acct",
        Identifier::dns("example.org"),
        false,
        NOW + 1000,
    )
    .await;
    validated(
        &s,
        "addr",
        "acct",
        Identifier::ip("192.0.2.1"),
        false,
        NOW + 600,
    )
    .await;

    let acct = aid("acct");
    let find = |ident: Identifier, wildcard: bool, min: Timestamp| {
        let s = s.clone();
        let acct = acct.clone();
        async move {
            s.reusable_authz(&acct, &ident, wildcard, min)
                .await
                .unwrap()
                .map(|a| a.id.0)
        }
    };
    assert_eq!(find(name(), false, NOW).await.as_deref(), Some("v2"));
    assert_eq!(find(name(), false, NOW + 100).await.as_deref(), Some("v2"));
    assert_eq!(find(name(), false, NOW + 299).await.as_deref(), Some("v2"));
    // Strictly after min_expires.
    assert_eq!(find(name(), false, NOW + 300).await, None);
    assert_eq!(find(name(), true, NOW).await.as_deref(), Some("wild"));
    assert_eq!(find(name(), true, NOW + 500).await, None);
    let ip = Identifier::ip("192.0.2.1");
    assert_eq!(find(ip, false, NOW).await.as_deref(), Some("addr"));
    // The same value as another type is another identifier.
    assert_eq!(find(Identifier::dns("192.0.2.1"), false, NOW).await, None);
    assert_eq!(
        find(Identifier::dns("missing.example"), false, NOW).await,
        None
    );
    // The whole record comes back.
    let found = s.reusable_authz(&acct, &name(), false, NOW).await.unwrap();
    assert_eq!(found, s.authz_by_id(&zid("v2")).await.unwrap());
    let theirs = s
        .reusable_authz(&aid("other"), &name(), false, NOW)
        .await
        .unwrap();
    assert_eq!(theirs.map(|a| a.id), Some(zid("theirs")));
    // The same questions at once (the PostgreSQL store answers them in
    // shared batches): the same answers, each to its own question.
    let questions = [
        (name(), false, NOW, Some("v2")),
        (name(), false, NOW + 300, None),
        (name(), true, NOW, Some("wild")),
        (Identifier::ip("192.0.2.1"), false, NOW, Some("addr")),
        (Identifier::dns("192.0.2.1"), false, NOW, None),
        (Identifier::dns("missing.example"), false, NOW, None),
    ];
    for round in 0..ROUNDS {
        let answers = race(4 * questions.len(), |i| {
            let (ident, wildcard, min, _) = questions[i % questions.len()].clone();
            find(ident, wildcard, min)
        })
        .await;
        for (i, got) in answers.iter().enumerate() {
            let want = questions[i % questions.len()].3;
            assert_eq!(got.as_deref(), want, "round {round}, question {i}");
        }
    }
}

/// RFC 8555 §7.6: revocation by an account that holds a valid, unexpired
/// authorization for the certificate's identifier.
async fn has_valid_authz_respects_expiry_account_and_identifier(s: S) {
    new_account(&s, "acct").await;
    new_account(&s, "other").await;
    let name = || Identifier::dns("example.com");
    validated(&s, "v", "acct", name(), false, NOW + 100).await;
    pending(&s, "p", "acct", Identifier::dns("pending.example")).await;
    let i = pending(&s, "i", "acct", Identifier::dns("failed.example")).await;
    let failed = invalid_result(NOW, NOW + 100);
    assert!(s
        .start_challenge(&i.id, ChallengeType::Http01, NOW, Some(&failed))
        .await
        .unwrap());
    validated(
        &s,
        "addr",
        "acct",
        Identifier::ip("192.0.2.1"),
        false,
        NOW + 100,
    )
    .await;

    let acct = aid("acct");
    let has = |account: AccountId, ident: Identifier, now: Timestamp| {
        let s = s.clone();
        async move { s.has_valid_authz(&account, &ident, now).await.unwrap() }
    };
    assert!(has(acct.clone(), name(), NOW).await);
    assert!(has(acct.clone(), name(), NOW + 99).await);
    // Expiry is exclusive.
    assert!(!has(acct.clone(), name(), NOW + 100).await);
    assert!(!has(acct.clone(), name(), NOW + 101).await);
    assert!(!has(aid("other"), name(), NOW).await);
    assert!(!has(aid("missing"), name(), NOW).await);
    assert!(!has(acct.clone(), Identifier::dns("example.org"), NOW).await);
    assert!(!has(acct.clone(), Identifier::dns("pending.example"), NOW).await);
    assert!(!has(acct.clone(), Identifier::dns("failed.example"), NOW).await);
    assert!(has(acct.clone(), Identifier::ip("192.0.2.1"), NOW).await);
    assert!(!has(acct, Identifier::dns("192.0.2.1"), NOW).await);
}

// Orders.

async fn orders_round_trip_with_their_authzs(s: S) {
    new_account(&s, "acct").await;
    let mut o = order("o1", "acct", &["a1", "a2"], NOW + 600);
    o.identifiers = vec![Identifier::dns("example.com"), Identifier::ip("192.0.2.9")];
    o.not_before = Some(NOW + 60);
    o.not_after = Some(NOW + 86_400);
    o.profile = "shortlived".into();
    o.replaces = Some("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".into());
    let a1 = authz("a1", "acct", Identifier::dns("example.com"), NOW + 700);
    let a2 = authz("a2", "acct", Identifier::ip("192.0.2.9"), NOW + 700);
    assert!(s
        .create_order(&o, &[a1.clone(), a2.clone()], None)
        .await
        .unwrap());
    assert_eq!(s.order_by_id(&o.id).await.unwrap(), Some(o.clone()));
    assert_eq!(
        s.authzs_by_ids(&o.authz_ids).await.unwrap(),
        vec![a1.clone(), a2]
    );
    // An order may reuse authorizations and create none.
    let reuse = order("o2", "acct", &["a1"], NOW + 600);
    assert!(s.create_order(&reuse, &[], None).await.unwrap());
    assert_eq!(s.order_by_id(&reuse.id).await.unwrap(), Some(reuse));
    assert_eq!(s.authz_by_id(&a1.id).await.unwrap(), Some(a1));
    assert_eq!(s.order_by_id(&oid("missing")).await.unwrap(), None);
}

/// RFC 9773: an order created with `replaces` becomes the certificate's
/// replacement in the same transaction, only if the replacement is still
/// the one the caller saw; otherwise nothing at all is created.
async fn create_order_replaces_rules(s: S) {
    new_account(&s, "acct").await;
    let c = issue(&s, "o0", cert("c", "0c", "acct", NOW + 86_400)).await;
    assert_eq!(s.replacement_of(&c.id).await.unwrap(), None);
    assert_eq!(s.replacement_of(&cid("missing")).await.unwrap(), None);

    let o1 = order("o1", "acct", &["a1"], NOW + 600);
    let a1 = authz("a1", "acct", Identifier::dns("example.com"), NOW + 700);
    assert!(s
        .create_order(&o1, std::slice::from_ref(&a1), Some((&c.id, None)))
        .await
        .unwrap());
    assert_eq!(s.replacement_of(&c.id).await.unwrap(), Some(o1.id.clone()));
    assert_eq!(s.order_by_id(&o1.id).await.unwrap(), Some(o1.clone()));
    assert_eq!(s.authz_by_id(&a1.id).await.unwrap(), Some(a1));

    // Expecting no replacement, or a stale one: refused, nothing created.
    let o2 = order("o2", "acct", &["a2"], NOW + 600);
    let a2 = authz("a2", "acct", Identifier::dns("example.com"), NOW + 700);
    let stale = oid("o-stale");
    for expected in [None, Some(&stale)] {
        assert!(!s
            .create_order(&o2, std::slice::from_ref(&a2), Some((&c.id, expected)))
            .await
            .unwrap());
        assert_eq!(s.order_by_id(&o2.id).await.unwrap(), None);
        assert_eq!(s.authz_by_id(&a2.id).await.unwrap(), None);
        assert_eq!(s.replacement_of(&c.id).await.unwrap(), Some(o1.id.clone()));
    }
    // Expecting the current one: the replacement moves (an order with no
    // new authorizations too).
    let o3 = order("o3", "acct", &["a1"], NOW + 600);
    assert!(s
        .create_order(&o3, &[], Some((&c.id, Some(&o1.id))))
        .await
        .unwrap());
    assert_eq!(s.replacement_of(&c.id).await.unwrap(), Some(o3.id.clone()));
    assert_eq!(s.order_by_id(&o3.id).await.unwrap(), Some(o3));
    // The old replacement is still an order.
    assert_eq!(s.order_by_id(&o1.id).await.unwrap(), Some(o1.clone()));
    // A certificate that does not exist cannot be replaced.
    let o4 = order("o4", "acct", &["a4"], NOW + 600);
    let a4 = authz("a4", "acct", Identifier::dns("example.com"), NOW + 700);
    assert!(!s
        .create_order(
            &o4,
            std::slice::from_ref(&a4),
            Some((&cid("missing"), None))
        )
        .await
        .unwrap());
    assert_eq!(s.order_by_id(&o4.id).await.unwrap(), None);
    assert_eq!(s.authz_by_id(&a4.id).await.unwrap(), None);
    assert_eq!(s.replacement_of(&cid("missing")).await.unwrap(), None);
}

/// Pages of an account's orders by cursor, leaving out orders known to be
/// stale: expired (at `now` included) without a certificate.
async fn orders_for_account_pages_and_skips_stale_orders(s: S) {
    new_account(&s, "acct").await;
    new_account(&s, "other").await;
    let make = |id: &'static str, acct: &'static str, expires: Timestamp| {
        let s = s.clone();
        async move {
            assert!(s
                .create_order(&order(id, acct, &[], expires), &[], None)
                .await
                .unwrap());
        }
    };
    make("a1", "acct", NOW + 100).await;
    make("b1", "other", NOW + 100).await;
    make("a2", "acct", NOW).await;
    make("a3", "acct", NOW - 50).await;
    make("a4", "acct", NOW + 1).await;
    make("b2", "other", NOW - 1).await;
    make("a5", "acct", NOW + 1000).await;
    make("a6", "acct", NOW + 1000).await;
    // An expired order with a certificate is still listed.
    assert!(s
        .store_certificate(&cert("c3", "03", "acct", NOW + 99), &oid("a3"))
        .await
        .unwrap());

    let acct = aid("acct");
    let all = s.orders_for_account(&acct, 0, 100, NOW).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.id.0.as_str()).collect();
    assert_eq!(ids, ["a1", "a3", "a4", "a5", "a6"]);
    assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor));

    // Page by page from the start (cursor 0), two at a time.
    let mut after = 0;
    let mut pages: Vec<Vec<OrderListEntry>> = Vec::new();
    loop {
        let page = s.orders_for_account(&acct, after, 2, NOW).await.unwrap();
        assert!(page.len() <= 2);
        assert!(page.iter().all(|e| e.cursor > after), "after is exclusive");
        let Some(last) = page.last() else { break };
        after = last.cursor;
        pages.push(page);
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(pages.concat(), all);

    // The other account sees only its own; later, fewer are fresh.
    let theirs = s
        .orders_for_account(&aid("other"), 0, 100, NOW)
        .await
        .unwrap();
    let ids: Vec<&str> = theirs.iter().map(|e| e.id.0.as_str()).collect();
    assert_eq!(ids, ["b1"]);
    let later = s.orders_for_account(&acct, 0, 100, NOW + 1).await.unwrap();
    let ids: Vec<&str> = later.iter().map(|e| e.id.0.as_str()).collect();
    assert_eq!(ids, ["a1", "a3", "a5", "a6"]);
    assert_eq!(
        s.orders_for_account(&aid("missing"), 0, 100, NOW)
            .await
            .unwrap(),
        Vec::<OrderListEntry>::new()
    );
}

// Finalize leases and certificates.

async fn claim_order_takes_a_lease_only_when_none_is_live(s: S) {
    new_account(&s, "acct").await;
    let o = order("o", "acct", &[], NOW + 600);
    assert!(s.create_order(&o, &[], None).await.unwrap());
    assert!(s.claim_order(&o.id, "i1", NOW, NOW + 60).await.unwrap());
    let held = s.order_by_id(&o.id).await.unwrap().unwrap();
    assert_eq!(held.processing_until, Some(NOW + 60));
    // Live until its end (exclusive), then anyone may take it.
    assert!(!s.claim_order(&o.id, "i1", NOW, NOW + 60).await.unwrap());
    assert!(!s
        .claim_order(&o.id, "i1", NOW + 59, NOW + 120)
        .await
        .unwrap());
    let held = s.order_by_id(&o.id).await.unwrap().unwrap();
    assert_eq!(held.processing_until, Some(NOW + 60));
    assert!(s
        .claim_order(&o.id, "i1", NOW + 60, NOW + 120)
        .await
        .unwrap());
    let held = s.order_by_id(&o.id).await.unwrap().unwrap();
    assert_eq!(held.processing_until, Some(NOW + 120));
    // Given back: free at once.
    s.release_order(&o.id, "i1").await.unwrap();
    let free = s.order_by_id(&o.id).await.unwrap().unwrap();
    assert_eq!(free.processing_until, None);
    assert!(s
        .claim_order(&o.id, "i1", NOW + 61, NOW + 90)
        .await
        .unwrap());
    s.release_order(&o.id, "i1").await.unwrap();
    // Releasing what is not held, or a missing order, is harmless.
    s.release_order(&o.id, "i1").await.unwrap();
    s.release_order(&oid("missing"), "i1").await.unwrap();
    assert!(!s
        .claim_order(&oid("missing"), "i1", NOW, NOW + 60)
        .await
        .unwrap());
    // An order with a certificate is never claimed again.
    assert!(s
        .store_certificate(&cert("c", "0c", "acct", NOW + 86_400), &o.id)
        .await
        .unwrap());
    assert!(!s
        .claim_order(&o.id, "i1", NOW + 1000, NOW + 1060)
        .await
        .unwrap());
}

/// A lease belongs to the instance that took it: another instance cannot
/// give it back, and once it expired and another instance took it over,
/// the first one's late release leaves the new lease alone.
async fn a_lease_is_released_only_by_its_owner(s: S) {
    new_account(&s, "acct").await;
    let o = order("o", "acct", &[], NOW + 600);
    assert!(s.create_order(&o, &[], None).await.unwrap());
    assert!(s.claim_order(&o.id, "a", NOW, NOW + 60).await.unwrap());
    s.release_order(&o.id, "b").await.unwrap();
    let held = s.order_by_id(&o.id).await.unwrap().unwrap();
    assert_eq!(
        held.processing_until,
        Some(NOW + 60),
        "b cannot release a's lease"
    );
    assert!(!s.claim_order(&o.id, "b", NOW + 30, NOW + 90).await.unwrap());
    // a died; its lease ran out; b takes the order over.
    assert!(s
        .claim_order(&o.id, "b", NOW + 60, NOW + 120)
        .await
        .unwrap());
    s.release_order(&o.id, "a").await.unwrap();
    let held = s.order_by_id(&o.id).await.unwrap().unwrap();
    assert_eq!(
        held.processing_until,
        Some(NOW + 120),
        "a's late release is ignored"
    );
    s.release_order(&o.id, "b").await.unwrap();
    let free = s.order_by_id(&o.id).await.unwrap().unwrap();
    assert_eq!(free.processing_until, None);
}

/// At its start, an instance drops the leases its previous run held, and
/// only those.
async fn release_leases_of_drops_one_owners_leases(s: S) {
    new_account(&s, "acct").await;
    for id in ["o1", "o2", "o3"] {
        assert!(s
            .create_order(&order(id, "acct", &[], NOW + 600), &[], None)
            .await
            .unwrap());
    }
    assert!(s.claim_order(&oid("o1"), "a", NOW, NOW + 60).await.unwrap());
    assert!(s.claim_order(&oid("o2"), "b", NOW, NOW + 60).await.unwrap());
    assert!(s.claim_order(&oid("o3"), "a", NOW, NOW + 60).await.unwrap());
    assert!(s
        .store_certificate(&cert("c", "0c", "acct", NOW + 86_400), &oid("o3"))
        .await
        .unwrap());
    assert_eq!(s.release_leases_of("a").await.unwrap(), 1);
    let lease = |o: Option<Order>| o.unwrap().processing_until;
    assert_eq!(lease(s.order_by_id(&oid("o1")).await.unwrap()), None);
    assert_eq!(
        lease(s.order_by_id(&oid("o2")).await.unwrap()),
        Some(NOW + 60)
    );
    assert_eq!(s.release_leases_of("a").await.unwrap(), 0);
    assert_eq!(s.release_leases_of("nobody").await.unwrap(), 0);
}

async fn store_certificate_links_once_and_keeps_every_certificate(s: S) {
    new_account(&s, "acct").await;
    let o = order("o", "acct", &[], NOW + 600);
    assert!(s.create_order(&o, &[], None).await.unwrap());
    assert!(s.claim_order(&o.id, "i1", NOW, NOW + 60).await.unwrap());
    // Every byte value survives, and whatever order the record named, it
    // is linked to the order given.
    let mut c1 = cert("c1", "00ff10", "acct", NOW + 86_400);
    c1.der = (0..=255u8).rev().chain(0..=255u8).collect();
    c1.order_id = Some(oid("ignored"));
    assert!(s.store_certificate(&c1, &o.id).await.unwrap());
    c1.order_id = Some(o.id.clone());
    assert_eq!(s.certificate_by_id(&c1.id).await.unwrap(), Some(c1.clone()));
    assert_eq!(
        s.certificate_by_serial("00ff10").await.unwrap(),
        Some(c1.clone())
    );
    // The order is valid: linked, and its lease is gone with the write.
    let mut issued = o.clone();
    issued.cert_id = Some(c1.id.clone());
    assert_eq!(s.order_by_id(&o.id).await.unwrap(), Some(issued.clone()));

    // A second certificate for the order (its lease had run out and
    // another request signed too): kept, unlinked.
    let mut c2 = cert("c2", "00ff11", "acct", NOW + 86_400);
    c2.common_name = None;
    assert!(!s.store_certificate(&c2, &o.id).await.unwrap());
    assert_eq!(s.certificate_by_id(&c2.id).await.unwrap(), Some(c2.clone()));
    assert_eq!(s.certificate_by_serial("00ff11").await.unwrap(), Some(c2));
    assert_eq!(s.order_by_id(&o.id).await.unwrap(), Some(issued));
    assert_eq!(s.certificate_by_id(&cid("missing")).await.unwrap(), None);
    assert_eq!(s.certificate_by_serial("0badc0de").await.unwrap(), None);
}

async fn release_all_leases_drops_leases_of_orders_without_certificate(s: S) {
    new_account(&s, "acct").await;
    assert_eq!(s.release_all_leases().await.unwrap(), 0);
    for id in ["o1", "o2", "o3", "o4"] {
        assert!(s
            .create_order(&order(id, "acct", &[], NOW + 600), &[], None)
            .await
            .unwrap());
    }
    for id in ["o1", "o2", "o4"] {
        assert!(s.claim_order(&oid(id), "i1", NOW, NOW + 60).await.unwrap());
    }
    assert!(s
        .store_certificate(&cert("c4", "04", "acct", NOW + 86_400), &oid("o4"))
        .await
        .unwrap());
    assert_eq!(s.release_all_leases().await.unwrap(), 2);
    for id in ["o1", "o2", "o3", "o4"] {
        let o = s.order_by_id(&oid(id)).await.unwrap().unwrap();
        assert_eq!(o.processing_until, None, "order {id}");
    }
    assert!(s
        .claim_order(&oid("o1"), "i1", NOW + 1, NOW + 60)
        .await
        .unwrap());
    assert!(!s
        .claim_order(&oid("o4"), "i1", NOW + 1, NOW + 60)
        .await
        .unwrap());
    assert_eq!(s.release_all_leases().await.unwrap(), 1);
    assert_eq!(s.release_all_leases().await.unwrap(), 0);
}

// Revocation and CRLs.

async fn revoke_certificate_once(s: S) {
    new_account(&s, "acct").await;
    let mut c = issue(&s, "o", cert("c", "0c", "acct", NOW + 86_400)).await;
    let first = revocation(NOW, 1);
    assert!(s.revoke_certificate(&c.id, first).await.unwrap());
    c.revoked = Some(first);
    assert_eq!(s.certificate_by_id(&c.id).await.unwrap(), Some(c.clone()));
    // Revoked already: refused, and the first revocation stands.
    assert!(!s
        .revoke_certificate(&c.id, revocation(NOW + 5, 4))
        .await
        .unwrap());
    assert_eq!(s.certificate_by_serial("0c").await.unwrap(), Some(c));
    assert!(!s
        .revoke_certificate(&cid("missing"), revocation(NOW, 0))
        .await
        .unwrap());
}

/// What a CRL lists: revoked certificates not yet expired at `now`
/// (expiry at `now` included), by serial.
async fn revoked_certificates_lists_unexpired_ones_by_serial(s: S) {
    new_account(&s, "acct").await;
    assert_eq!(
        s.revoked_certificates(NOW).await.unwrap(),
        Vec::<RevokedCert>::new()
    );
    let certs = [
        ("c1", "0c", NOW + 10, Some(revocation(NOW - 3, 1))),
        ("c2", "0a", NOW + 1, Some(revocation(NOW - 2, 0))),
        ("c3", "0b", NOW, Some(revocation(NOW - 1, 4))),
        ("c4", "0d", NOW - 5, Some(revocation(NOW - 9, 5))),
        ("c5", "09", NOW + 10, None),
        ("c6", "0e", NOW + 50, Some(revocation(NOW - 4, 10))),
    ];
    for (id, serial, not_after, revoked) in certs {
        issue(&s, &format!("o-{id}"), cert(id, serial, "acct", not_after)).await;
        if let Some(r) = revoked {
            assert!(s.revoke_certificate(&cid(id), r).await.unwrap());
        }
    }
    let listed = |serial: &str, r: Revocation, not_after| RevokedCert {
        serial: serial.into(),
        revocation: r,
        not_after,
    };
    assert_eq!(
        s.revoked_certificates(NOW).await.unwrap(),
        vec![
            listed("0a", revocation(NOW - 2, 0), NOW + 1),
            listed("0c", revocation(NOW - 3, 1), NOW + 10),
            listed("0e", revocation(NOW - 4, 10), NOW + 50),
        ]
    );
    let later: Vec<String> = s
        .revoked_certificates(NOW + 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(later, ["0e"]);
    let earlier: Vec<String> = s
        .revoked_certificates(NOW - 6)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(earlier, ["0a", "0b", "0c", "0d", "0e"]);
}
// Monitoring.

async fn certificates_expiring_counts_unrevoked_ones_in_each_window(s: S) {
    let (soon, later) = (NOW + 100, NOW + 1000);
    assert_eq!(
        s.certificates_expiring(NOW, soon, later).await.unwrap(),
        (0, 0)
    );
    new_account(&s, "acct").await;
    let not_afters = [
        NOW - 10,
        NOW,
        NOW + 1,
        soon,
        soon + 1,
        later - 1,
        later,
        later + 1,
    ];
    for (i, not_after) in not_afters.into_iter().enumerate() {
        issue(
            &s,
            &format!("o{i}"),
            cert(&format!("c{i}"), &format!("{i:02x}"), "acct", not_after),
        )
        .await;
    }
    // Revoked: not counted, whenever it expires.
    issue(&s, "or", cert("cr", "ff", "acct", NOW + 2)).await;
    assert!(s
        .revoke_certificate(&cid("cr"), revocation(NOW, 1))
        .await
        .unwrap());
    // After now (exclusive), at or before each bound (inclusive).
    assert_eq!(
        s.certificates_expiring(NOW, soon, later).await.unwrap(),
        (2, 5)
    );
    assert_eq!(
        s.certificates_expiring(NOW, later, later).await.unwrap(),
        (5, 5)
    );
    assert_eq!(
        s.certificates_expiring(NOW, NOW, later).await.unwrap(),
        (0, 5)
    );
    assert_eq!(
        s.certificates_expiring(soon, later, later + 5)
            .await
            .unwrap(),
        (3, 4)
    );
}

async fn ping_answers(s: S) {
    s.ping().await.unwrap();
}

/// Values with quotes, placeholders, backslashes and non-ASCII text come
/// back exactly as given (reads that no cache can answer: by thumbprint
/// and by serial).
async fn awkward_values_round_trip(s: S) {
    let mut a = account("acct", "t'1\"; --$1?%s\\");
    a.jwk = r#"{"k":"it's \"quoted\" \\ $2 ?","é":"雪"}"#.into();
    a.contact = vec![
        "mailto:o'brien@example.com".into(),
        "x'); DROP TABLE accounts; --".into(),
        "mailto:zoë@例え.jp".into(),
        "$1 $2 ? ?1 :name @p %s \\' \\\\".into(),
    ];
    assert_eq!(
        s.create_account(&a, None).await.unwrap(),
        AccountCreation::Created
    );
    assert_eq!(
        s.account_by_thumbprint(&a.thumbprint).await.unwrap(),
        Some(a.clone())
    );
    let o = order("o'1", "acct", &[], NOW + 600);
    assert!(s.create_order(&o, &[], None).await.unwrap());
    let mut c = cert("c'1", "0a'; --", "acct", NOW + 86_400);
    c.common_name = Some("ünïcödé.example'\"$1".into());
    c.der = vec![0, b'\'', b'"', b'\\', 0, 0xff, b'$', b'1'];
    assert!(s.store_certificate(&c, &o.id).await.unwrap());
    c.order_id = Some(o.id.clone());
    assert_eq!(s.certificate_by_serial(&c.serial).await.unwrap(), Some(c));
    let mut r = invalid_result(NOW, NOW + 10);
    r.error = Some(json!({"detail": "it's \"bad\" \\ $1 ? 雪", "type": "x'y"}));
    let z = pending(&s, "z'1", "acct", Identifier::dns("o'brien.example")).await;
    assert!(s
        .start_challenge(&z.id, ChallengeType::Http01, NOW, Some(&r))
        .await
        .unwrap());
    let back = s.authz_by_id(&z.id).await.unwrap().unwrap();
    assert_eq!(back.identifier, Identifier::dns("o'brien.example"));
    assert_eq!(back.attempt.unwrap().error, r.error);
}

// Races: exactly one winner.

async fn race_claim_order(s: S) {
    new_account(&s, "acct").await;
    for round in 0..ROUNDS {
        let id = oid(&format!("o{round}"));
        let o = order(&id.0, "acct", &[], NOW + 600);
        assert!(s.create_order(&o, &[], None).await.unwrap());
        let wins = race(N, |i| {
            let (s, id) = (s.clone(), id.clone());
            let until = NOW + 60 + i as Timestamp;
            async move { s.claim_order(&id, "i1", NOW, until).await.unwrap() }
        })
        .await;
        let w = winner(&wins);
        let held = s.order_by_id(&id).await.unwrap().unwrap();
        assert_eq!(held.processing_until, Some(NOW + 60 + w as Timestamp));
    }
}

async fn race_start_challenge(s: S) {
    new_account(&s, "acct").await;
    for round in 0..ROUNDS {
        let id = format!("a{round}");
        pending(&s, &id, "acct", Identifier::dns("example.com")).await;
        let wins = race(N, |i| {
            let (s, id) = (s.clone(), zid(&id));
            let kind = ChallengeType::ALL[i % ChallengeType::ALL.len()];
            async move {
                s.start_challenge(&id, kind, NOW + i as Timestamp, None)
                    .await
                    .unwrap()
            }
        })
        .await;
        let w = winner(&wins);
        let attempt = s.authz_by_id(&zid(&id)).await.unwrap().unwrap().attempt;
        let attempt = attempt.expect("the winner's attempt");
        assert_eq!(
            attempt.kind,
            ChallengeType::ALL[w % ChallengeType::ALL.len()]
        );
        assert_eq!(attempt.started_at, NOW + w as Timestamp);
        assert_eq!(attempt.state, AttemptState::Processing);
    }
}

async fn race_finish_challenge(s: S) {
    new_account(&s, "acct").await;
    for round in 0..ROUNDS {
        let id = format!("a{round}");
        pending(&s, &id, "acct", Identifier::dns("example.com")).await;
        assert!(s
            .start_challenge(&zid(&id), ChallengeType::Http01, NOW, None)
            .await
            .unwrap());
        let result = |i: usize| {
            let at = NOW + 1 + i as Timestamp;
            if i.is_multiple_of(2) {
                valid_result(at, at + 1000)
            } else {
                invalid_result(at, at + 10)
            }
        };
        let wins = race(N, |i| {
            let (s, id, r) = (s.clone(), zid(&id), result(i));
            async move { s.finish_challenge(&id, &r).await.unwrap() }
        })
        .await;
        let w = winner(&wins);
        let a = s.authz_by_id(&zid(&id)).await.unwrap().unwrap();
        let r = result(w);
        let attempt = a.attempt.unwrap();
        assert_eq!(attempt.state, r.state);
        assert_eq!(attempt.validated_at, Some(r.validated_at));
        assert_eq!((attempt.error, attempt.records), (r.error, r.records));
        assert_eq!(a.expires, r.expires);
        let state = if w.is_multiple_of(2) {
            AuthzState::Valid
        } else {
            AuthzState::Invalid
        };
        assert_eq!(a.state, state);
    }
}

async fn race_deactivate_authz(s: S) {
    new_account(&s, "acct").await;
    for round in 0..ROUNDS {
        let id = format!("a{round}");
        if round % 2 == 0 {
            pending(&s, &id, "acct", Identifier::dns("example.com")).await;
        } else {
            validated(
                &s,
                &id,
                "acct",
                Identifier::dns("example.com"),
                false,
                NOW + 500,
            )
            .await;
        }
        let wins = race(N, |_| {
            let (s, id) = (s.clone(), zid(&id));
            async move { s.deactivate_authz(&id).await.unwrap() }
        })
        .await;
        winner(&wins);
        assert_eq!(authz_state(&s, &id).await, AuthzState::Deactivated);
    }
}

async fn race_deactivate_account(s: S) {
    for round in 0..ROUNDS {
        let a = new_account(&s, &format!("acct{round}")).await;
        let wins = race(N, |_| {
            let (s, id) = (s.clone(), a.id.clone());
            async move { s.deactivate_account(&id).await.unwrap() }
        })
        .await;
        winner(&wins);
        let back = s.account_by_id(&a.id).await.unwrap().unwrap();
        assert_eq!(back.status, AccountStatus::Deactivated);
    }
}

async fn race_revoke_certificate(s: S) {
    new_account(&s, "acct").await;
    for round in 0..ROUNDS {
        let id = format!("c{round}");
        let c = issue(
            &s,
            &format!("o{round}"),
            cert(&id, &format!("{round:02x}"), "acct", NOW + 86_400),
        )
        .await;
        let reason = |i: usize| revocation(NOW + i as Timestamp, [0, 1, 3, 4, 5][i % 5]);
        let wins = race(N, |i| {
            let (s, id) = (s.clone(), c.id.clone());
            async move { s.revoke_certificate(&id, reason(i)).await.unwrap() }
        })
        .await;
        let w = winner(&wins);
        let back = s.certificate_by_id(&c.id).await.unwrap().unwrap();
        assert_eq!(back.revoked, Some(reason(w)));
        let listed = s.revoked_certificates(NOW).await.unwrap();
        let listed = listed
            .iter()
            .find(|r| r.serial == c.serial)
            .expect("listed");
        assert_eq!(listed.revocation, reason(w));
    }
}

/// The same account moved to `N` new keys at once: one move wins.
async fn race_change_account_key_to_different_keys(s: S) {
    for round in 0..ROUNDS {
        let a = new_account(&s, &format!("acct{round}")).await;
        let key = move |i: usize| format!("key-{round}-{i}");
        let wins = race(N, |i| {
            let (s, a) = (s.clone(), a.clone());
            async move {
                let jwk = format!(r#"{{"n":"{}"}}"#, key(i));
                s.change_account_key(&a.id, &a.thumbprint, &jwk, &key(i))
                    .await
                    .unwrap()
            }
        })
        .await;
        let w = winner(&wins);
        let back = s.account_by_id(&a.id).await.unwrap().unwrap();
        assert_eq!(back.thumbprint, key(w));
        assert_eq!(back.jwk, format!(r#"{{"n":"{}"}}"#, key(w)));
        assert_eq!(s.account_by_thumbprint(&a.thumbprint).await.unwrap(), None);
        for i in 0..N {
            let holder = s.account_by_thumbprint(&key(i)).await.unwrap();
            assert_eq!(holder.map(|h| h.id), (i == w).then(|| a.id.clone()));
        }
    }
}

/// `N` accounts moved to one new key at once: one gets it, the others keep
/// their keys.
async fn race_change_account_key_to_one_key(s: S) {
    for round in 0..ROUNDS {
        let mut accounts = Vec::with_capacity(N);
        for i in 0..N {
            accounts.push(new_account(&s, &format!("acct{round}-{i}")).await);
        }
        let wanted = format!("wanted-{round}");
        let wins = race(N, |i| {
            let (s, a, wanted) = (s.clone(), accounts[i].clone(), wanted.clone());
            async move {
                s.change_account_key(&a.id, &a.thumbprint, "{}", &wanted)
                    .await
                    .unwrap()
            }
        })
        .await;
        let w = winner(&wins);
        let holder = s.account_by_thumbprint(&wanted).await.unwrap().unwrap();
        assert_eq!(holder.id, accounts[w].id);
        for (i, a) in accounts.iter().enumerate().filter(|(i, _)| *i != w) {
            let back = s.account_by_id(&a.id).await.unwrap().unwrap();
            assert_eq!(&back, a, "account {i} keeps its key");
        }
    }
}

/// A key change and registrations of the same new key at once: the key
/// ends up with exactly one account, and every loser is told which.
async fn race_change_account_key_against_new_accounts(s: S) {
    for round in 0..ROUNDS {
        let a = new_account(&s, &format!("acct{round}")).await;
        let wanted = format!("wanted-{round}");
        // Task 0 moves `a` to the key; the others register it.
        let outcomes = race(N, |i| {
            let (s, a, wanted) = (s.clone(), a.clone(), wanted.clone());
            async move {
                if i == 0 {
                    let moved = s
                        .change_account_key(&a.id, &a.thumbprint, "{}", &wanted)
                        .await
                        .unwrap();
                    (moved, None)
                } else {
                    let new = account(&format!("new{round}-{i}"), &wanted);
                    let created = s.create_account(&new, None).await.unwrap();
                    (created == AccountCreation::Created, Some(created))
                }
            }
        })
        .await;
        let wins: Vec<bool> = outcomes.iter().map(|(won, _)| *won).collect();
        let w = winner(&wins);
        let holder = s.account_by_thumbprint(&wanted).await.unwrap().unwrap();
        let expected_holder = if w == 0 {
            a.id.clone()
        } else {
            aid(&format!("new{round}-{w}"))
        };
        assert_eq!(holder.id, expected_holder);
        for (i, (_, created)) in outcomes.iter().enumerate().skip(1) {
            if i != w {
                assert_eq!(
                    created.as_ref(),
                    Some(&AccountCreation::Existing(holder.clone())),
                    "task {i}"
                );
            }
        }
        if w != 0 {
            assert_eq!(s.account_by_id(&a.id).await.unwrap(), Some(a.clone()));
        }
    }
}

/// RFC 8555 §7.3.1 under concurrency: `N` registrations of one key make
/// one account, and every other registration is answered with it.
async fn race_create_account_with_one_key(s: S) {
    for round in 0..ROUNDS {
        let key = format!("key-{round}");
        let make = move |i: usize| account(&format!("acct{round}-{i}"), &key);
        let outcomes = race(N, |i| {
            let s = s.clone();
            let a = make(i);
            async move { s.create_account(&a, None).await.unwrap() }
        })
        .await;
        let wins: Vec<bool> = outcomes
            .iter()
            .map(|o| *o == AccountCreation::Created)
            .collect();
        let w = winner(&wins);
        let created = make(w);
        for (i, o) in outcomes.iter().enumerate().filter(|(i, _)| *i != w) {
            assert_eq!(o, &AccountCreation::Existing(created.clone()), "task {i}");
            assert_eq!(s.account_by_id(&make(i).id).await.unwrap(), None);
        }
        assert_eq!(
            s.account_by_thumbprint(&created.thumbprint).await.unwrap(),
            Some(created)
        );
    }
}

/// `N` registrations of one key with one external account key id (a
/// client retrying newAccount): one account is created and bound, every
/// other registration is answered with it, not told the id is taken.
async fn race_create_account_with_one_key_and_key_id(s: S) {
    for round in 0..ROUNDS {
        let kid = format!("kid-{round}");
        let key = format!("key-{round}");
        let make = move |i: usize| account(&format!("acct{round}-{i}"), &key);
        let outcomes = race(N, |i| {
            let (s, kid) = (s.clone(), kid.clone());
            let a = make(i);
            async move { s.create_account(&a, Some(&kid)).await.unwrap() }
        })
        .await;
        let wins: Vec<bool> = outcomes
            .iter()
            .map(|o| *o == AccountCreation::Created)
            .collect();
        let w = winner(&wins);
        let created = make(w);
        for (i, o) in outcomes.iter().enumerate().filter(|(i, _)| *i != w) {
            assert_eq!(o, &AccountCreation::Existing(created.clone()), "task {i}");
            assert_eq!(s.account_by_id(&make(i).id).await.unwrap(), None);
        }
        // The key id is bound: another key cannot use it.
        let other = account(&format!("late{round}"), &format!("late-key-{round}"));
        assert_eq!(
            s.create_account(&other, Some(&kid)).await.unwrap(),
            AccountCreation::KeyIdTaken
        );
    }
}

/// `N` registrations with different keys and one external account key
/// id: one account is created, the others are told the id is taken and
/// leave nothing behind.
async fn race_create_account_with_one_key_id(s: S) {
    for round in 0..ROUNDS {
        let kid = format!("kid-{round}");
        let make =
            move |i: usize| account(&format!("acct{round}-{i}"), &format!("key-{round}-{i}"));
        let outcomes = race(N, |i| {
            let (s, kid) = (s.clone(), kid.clone());
            let a = make(i);
            async move { s.create_account(&a, Some(&kid)).await.unwrap() }
        })
        .await;
        let wins: Vec<bool> = outcomes
            .iter()
            .map(|o| *o == AccountCreation::Created)
            .collect();
        let w = winner(&wins);
        for (i, o) in outcomes.iter().enumerate() {
            let stored = s.account_by_thumbprint(&make(i).thumbprint).await.unwrap();
            if i == w {
                assert_eq!(stored, Some(make(i)));
            } else {
                assert_eq!(o, &AccountCreation::KeyIdTaken, "task {i}");
                assert_eq!(stored, None, "task {i}");
                assert_eq!(s.account_by_id(&make(i).id).await.unwrap(), None);
            }
        }
    }
}

/// RFC 9773 under concurrency: `N` orders replacing one certificate; one
/// is created and becomes the replacement, the others leave nothing.
async fn race_create_order_with_one_replaces(s: S) {
    new_account(&s, "acct").await;
    for round in 0..ROUNDS {
        let c = issue(
            &s,
            &format!("o{round}"),
            cert(
                &format!("c{round}"),
                &format!("{round:02x}"),
                "acct",
                NOW + 86_400,
            ),
        )
        .await;
        let names = move |i: usize| (format!("o{round}-{i}"), format!("a{round}-{i}"));
        let wins = race(N, |i| {
            let (s, c) = (s.clone(), c.id.clone());
            let (o, a) = names(i);
            let o = order(&o, "acct", &[a.as_str()], NOW + 600);
            let a = authz(&a, "acct", Identifier::dns("example.com"), NOW + 700);
            async move { s.create_order(&o, &[a], Some((&c, None))).await.unwrap() }
        })
        .await;
        let w = winner(&wins);
        assert_eq!(
            s.replacement_of(&c.id).await.unwrap(),
            Some(oid(&names(w).0))
        );
        for i in 0..N {
            let (o, a) = names(i);
            let order = s.order_by_id(&oid(&o)).await.unwrap();
            let authz = s.authz_by_id(&zid(&a)).await.unwrap();
            assert_eq!(order.is_some(), i == w, "order of task {i}");
            assert_eq!(authz.is_some(), i == w, "authorization of task {i}");
        }
    }
}

/// `N` certificates recorded for one order at once: one is linked, every
/// one is kept.
async fn race_store_certificate_for_one_order(s: S) {
    new_account(&s, "acct").await;
    for round in 0..ROUNDS {
        let o = oid(&format!("o{round}"));
        let created = s
            .create_order(&order(&o.0, "acct", &[], NOW + 600), &[], None)
            .await
            .unwrap();
        assert!(created);
        let make = move |i: usize| {
            cert(
                &format!("c{round}-{i}"),
                &format!("{round:02x}{i:02x}"),
                "acct",
                NOW + 86_400,
            )
        };
        let wins = race(N, |i| {
            let (s, o) = (s.clone(), o.clone());
            let c = make(i);
            async move { s.store_certificate(&c, &o).await.unwrap() }
        })
        .await;
        let w = winner(&wins);
        let back = s.order_by_id(&o).await.unwrap().unwrap();
        assert_eq!(back.cert_id, Some(make(w).id));
        assert_eq!(back.processing_until, None);
        for i in 0..N {
            let c = s
                .certificate_by_id(&make(i).id)
                .await
                .unwrap()
                .expect("kept");
            assert_eq!(c.order_id, (i == w).then(|| o.clone()), "certificate {i}");
        }
    }
}
super::both!(crate::store::Store;
    accounts_are_unique_by_key,
    create_account_round_trips_and_answers_an_existing_key,
    external_account_key_ids_bind_one_account,
    update_account_contact_only_on_valid_accounts,
    deactivate_account_takes_its_pending_authzs,
    change_account_key_rules,
    authzs_round_trip_and_come_back_in_the_order_asked,
    authzs_read_at_once_each_come_back_as_asked,
    orders_and_certificates_read_at_once_each_come_back_as_asked,
    deactivate_authz_only_from_pending_or_valid,
    one_attempt_per_authorization_and_one_lease_per_order,
    start_challenge_needs_a_pending_unexpired_authz_without_attempt,
    start_challenge_settled_at_once,
    finish_challenge_settles_a_processing_attempt_once,
    authzs_processing_lists_exactly_the_attempts_in_progress,
    reusable_authz_picks_the_latest_expiring_match,
    has_valid_authz_respects_expiry_account_and_identifier,
    orders_round_trip_with_their_authzs,
    create_order_replaces_rules,
    orders_for_account_pages_and_skips_stale_orders,
    claim_order_takes_a_lease_only_when_none_is_live,
    a_lease_is_released_only_by_its_owner,
    release_leases_of_drops_one_owners_leases,
    store_certificate_links_once_and_keeps_every_certificate,
    release_all_leases_drops_leases_of_orders_without_certificate,
    revoke_certificate_once,
    revoked_certificates_lists_unexpired_ones_by_serial,
    certificates_expiring_counts_unrevoked_ones_in_each_window,
    ping_answers,
    awkward_values_round_trip,
    race_claim_order,
    race_start_challenge,
    race_finish_challenge,
    race_deactivate_authz,
    race_deactivate_account,
    race_revoke_certificate,
    race_change_account_key_to_different_keys,
    race_change_account_key_to_one_key,
    race_change_account_key_against_new_accounts,
    race_create_account_with_one_key,
    race_create_account_with_one_key_id,
    race_create_account_with_one_key_and_key_id,
    race_create_order_with_one_replaces,
    race_store_certificate_for_one_order,
);

/// The database's revocation count (what tells every instance's CRL
/// stale) moves with revocations made through the `Store` trait.
mod epoch {
    use super::*;
    use crate::store::Database;

    async fn revocations_bump_the_epoch(d: Arc<dyn Database>) {
        let s: S = d.clone();
        new_account(&s, "acct").await;
        let a = issue(&s, "o1", cert("c1", "01", "acct", NOW + 86_400)).await;
        let b = issue(&s, "o2", cert("c2", "02", "acct", NOW + 86_400)).await;
        assert_eq!(d.revocation_epoch().await.unwrap(), 0);
        assert!(s
            .revoke_certificate(&a.id, revocation(NOW, 1))
            .await
            .unwrap());
        assert_eq!(d.revocation_epoch().await.unwrap(), 1);
        // A refused second revocation changes nothing.
        assert!(!s
            .revoke_certificate(&a.id, revocation(NOW, 4))
            .await
            .unwrap());
        assert_eq!(d.revocation_epoch().await.unwrap(), 1);
        assert!(s
            .revoke_certificate(&b.id, revocation(NOW, 0))
            .await
            .unwrap());
        assert_eq!(d.revocation_epoch().await.unwrap(), 2);
    }

    crate::store::conformance::both!(crate::store::Database; revocations_bump_the_epoch);
}
