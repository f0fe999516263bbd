//! Tests of what is particular to the SQLite store: reopening the database
//! file, the common-name backfill, the quoting of values into SQL text and
//! the writer's batches. What every backend must do is tested by the
//! conformance suite (`store::conformance`).

use super::*;
use std::sync::Arc;

use crate::model::{AccountStatus, AuthzState};
use crate::protocol::Identifier;

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

fn order(id: &str, authz: &str) -> Order {
    Order {
        id: OrderId(id.into()),
        account_id: AccountId("acct".into()),
        identifiers: vec![Identifier::dns("example.com")],
        authz_ids: vec![AuthzId(authz.into())],
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
        order_id: Some(OrderId("o1".into())),
        der: vec![0x30, 0x03, 0x02, 0x01, 0x27],
        not_before: 1,
        not_after: 2,
        issued_at: 1,
        revoked: None,
        common_name: None,
    }
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("db.sqlite3"), Durability::Issuance)
        .await
        .unwrap()
}

/// The account "acct" and its orders o1…on, each with its authorization
/// a1…an.
async fn account_and_orders(s: &SqliteStore, n: usize) {
    s.create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    for i in 1..=n {
        let a = format!("a{i}");
        s.create_order(&order(&format!("o{i}"), &a), &[authz(&a)], None)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn state_survives_reopening_and_leases_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (o1, o2) = (OrderId("o1".into()), OrderId("o2".into()));
    {
        let s = open(&dir).await;
        account_and_orders(&s, 2).await;
        assert!(s.claim_order(&o1, "i1", 10, 1_000).await.unwrap());
        assert!(s.claim_order(&o2, "i1", 10, 1_000).await.unwrap());
        let o2_read = s.order_by_id(&o2).await.unwrap().unwrap();
        assert_eq!(o2_read.processing_until, Some(1_000), "a lease shows");
        assert!(s.store_certificate(&cert("c1", "0a"), &o1).await.unwrap());
        // o1's lease ended with its certificate; o2's is held.
        assert_eq!(s.leases.len(), 1);
        // An order with its certificate, or none at all, is not claimed,
        // and the claim leaves no lease behind.
        assert!(!s.claim_order(&o1, "i1", 20, 1_000).await.unwrap());
        let none = OrderId("none".into());
        assert!(!s.claim_order(&none, "i1", 20, 1_000).await.unwrap());
        assert_eq!(s.leases.len(), 1);
        s.close().await;
    }
    // The leases went with the process that held them: nothing is left
    // in the database to release, and o2 can be claimed again.
    let s = open(&dir).await;
    assert_eq!(s.release_all_leases().await.unwrap(), 0);
    let o1_read = s.order_by_id(&o1).await.unwrap().unwrap();
    assert_eq!(o1_read.cert_id, Some(CertId("c1".into())));
    assert_eq!(o1_read.processing_until, None);
    let o2_read = s.order_by_id(&o2).await.unwrap().unwrap();
    assert_eq!(o2_read.processing_until, None);
    assert!(s.claim_order(&o2, "i1", 11, 40).await.unwrap());
    let c = s
        .certificate_by_id(&CertId("c1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.der, vec![0x30, 0x03, 0x02, 0x01, 0x27]);
    s.close().await;
    // A lease an earlier version recorded in the orders table is
    // released at start, once.
    {
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
        conn.execute(
            "UPDATE orders SET processing_until = 1000, processing_owner = 'old' WHERE id = 'o2'",
            [],
        )
        .unwrap();
    }
    let s = open(&dir).await;
    assert_eq!(s.release_all_leases().await.unwrap(), 1);
    let o2_read = s.order_by_id(&o2).await.unwrap().unwrap();
    assert_eq!(o2_read.processing_until, None);
    s.close().await;
    let s = open(&dir).await;
    assert_eq!(s.release_all_leases().await.unwrap(), 0);
}

#[tokio::test]
async fn leases_are_released_by_their_owner_and_swept_once_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    account_and_orders(&s, 2).await;
    let o1 = OrderId("o1".into());
    assert!(s.claim_order(&o1, "i1", 10, 50).await.unwrap());
    s.release_order(&o1, "i2").await.unwrap();
    assert!(!s.claim_order(&o1, "i1", 11, 51).await.unwrap(), "not i2's");
    s.release_order(&o1, "i1").await.unwrap();
    assert_eq!(
        s.order_by_id(&o1).await.unwrap().unwrap().processing_until,
        None
    );
    assert!(s.claim_order(&o1, "i1", 12, 52).await.unwrap());
    // Leases a dropped request never gave back: run out, swept when the
    // map is full, the live one kept.
    for i in 0..super::leases::SWEEP_AT {
        let id = format!("x{i}");
        s.create_order(
            &order(&id, &format!("ax{i}")),
            &[authz(&format!("ax{i}"))],
            None,
        )
        .await
        .unwrap();
        assert!(s.claim_order(&OrderId(id), "i1", 12, 20).await.unwrap());
    }
    assert_eq!(s.leases.len(), super::leases::SWEEP_AT + 1);
    assert!(s
        .claim_order(&OrderId("o2".into()), "i1", 30, 60)
        .await
        .unwrap());
    assert_eq!(s.leases.len(), 2, "o1's and o2's");
    assert!(
        !s.claim_order(&o1, "i1", 31, 61).await.unwrap(),
        "o1's kept"
    );
    s.close().await;
}

/// A self-signed certificate's DER naming `names` in its subjectAltName.
fn der_naming(names: Vec<rcgen::SanType>) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = names;
    params.self_signed(&key).unwrap().der().to_vec()
}

#[tokio::test]
async fn certificates_without_a_common_name_get_their_first_name_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(&dir).await;
        account_and_orders(&s, 2).await;
        let mut named = cert("c1", "0a");
        named.der = der_naming(vec![
            rcgen::SanType::IpAddress("192.0.2.7".parse().unwrap()),
            rcgen::SanType::DnsName("Web.Example.ORG".try_into().unwrap()),
        ]);
        assert!(s
            .store_certificate(&named, &OrderId("o1".into()))
            .await
            .unwrap());
        // Not a certificate at all.
        assert!(s
            .store_certificate(&cert("c2", "0b"), &OrderId("o2".into()))
            .await
            .unwrap());
        let mut kept = cert("c3", "0c");
        kept.common_name = Some("kept.example".into());
        s.store_certificate(&kept, &OrderId("o1".into()))
            .await
            .unwrap();
        s.close().await;
    }
    let s = open(&dir).await;
    let name = |id: &'static str| {
        let s = &s;
        async move {
            s.certificate_by_id(&CertId(id.into()))
                .await
                .unwrap()
                .unwrap()
                .common_name
        }
    };
    // The first DNS name, lowercased, comes before any address.
    assert_eq!(name("c1").await.as_deref(), Some("web.example.org"));
    // Unreadable: filled with nothing, so it is not read again.
    assert_eq!(name("c2").await.as_deref(), Some(""));
    assert_eq!(name("c3").await.as_deref(), Some("kept.example"));
}

#[tokio::test]
async fn quoted_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let mut a = account("acct", "t1");
    a.contact = vec![
        "mailto:o'brien@example.com".into(),
        "x'); DROP TABLE accounts; --".into(),
    ];
    s.create_account(&a, None).await.unwrap();
    s.close().await;
    let s = open(&dir).await;
    let back = s
        .account_by_id(&AccountId("acct".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, a);
}

#[tokio::test]
async fn concurrent_writes_are_committed_together_and_each_answered() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir).await);
    s.create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let (o, a) = (format!("o{i}"), format!("a{i}"));
            s.create_order(&order(&o, &a), &[authz(&a)], None)
                .await
                .unwrap();
            // Two claims race; exactly one wins.
            let id = OrderId(o.clone());
            let (x, y) = tokio::join!(
                s.claim_order(&id, "i1", 10, 40),
                s.claim_order(&id, "i1", 10, 40)
            );
            assert!(x.unwrap() ^ y.unwrap(), "{o}: exactly one claim");
            // A duplicate account key is reported, not an error.
            match s
                .create_account(&account(&format!("dup{i}"), "t1"), None)
                .await
                .unwrap()
            {
                AccountCreation::Existing(e) => assert_eq!(e.id.0, "acct"),
                other => panic!("{other:?}"),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.leases.len(), 200);
    let s = Arc::try_unwrap(s).ok().unwrap();
    s.close().await;
    // Every order was committed; the leases were this process's.
    let s = open(&dir).await;
    for i in [0, 99, 199] {
        let o = s
            .order_by_id(&OrderId(format!("o{i}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o.processing_until, None);
    }
}

/// Another connection holding SQLite's write lock, as another process
/// would; `COMMIT` on it lets the store write again.
fn hold_write_lock(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let other = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    other
}

#[tokio::test]
async fn a_locked_database_is_waited_for_off_the_runtime() {
    // A current-thread runtime: had the write waited for the lock on the
    // runtime's thread, this test could not release it.
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir).await);
    let other = hold_write_lock(&dir);
    let writer = s.clone();
    let write =
        tokio::spawn(async move { writer.create_account(&account("acct", "t1"), None).await });
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the runtime's thread was blocked for {:?}",
        started.elapsed()
    );
    assert!(!write.is_finished(), "the write waits for the lock");
    other.execute_batch("COMMIT").unwrap();
    assert!(matches!(
        write.await.unwrap().unwrap(),
        AccountCreation::Created
    ));
    let back = s.account_by_id(&AccountId("acct".into())).await.unwrap();
    assert_eq!(back.unwrap().thumbprint, "t1");
}

#[tokio::test]
async fn the_wal_is_checkpointed_while_commits_run_inline() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    // One at a time: each commits inline, several WAL pages each, well
    // past the checkpoint threshold (1,000 pages) many times over.
    for i in 0..3_000 {
        let a = account(&format!("acct{i}"), &format!("thumb{i}"));
        s.create_account(&a, None).await.unwrap();
    }
    // Let the writer thread finish the checkpoint asked for last.
    s.create_account(&account("last", "thumb-last"), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let wal = std::fs::metadata(dir.path().join("db.sqlite3-wal")).unwrap();
    // Without checkpoints the WAL would hold every commit's pages (tens
    // of MiB); with them it is reused from the start at about 4 MiB.
    assert!(wal.len() < 8 << 20, "WAL of {} bytes", wal.len());
    let check = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
    let n: i64 = check
        .query_row(
            "SELECT count(*) FROM accounts WHERE id LIKE 'acct%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3_000);
}

#[tokio::test]
async fn a_failing_write_does_not_sink_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir).await);
    s.create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    // While another connection holds the lock, every write queues for the
    // writer thread, which then commits them in batches.
    let other = hold_write_lock(&dir);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            // Every fifth order reuses an authorization id: its insert
            // fails (primary key), the others must still commit.
            let a = if i % 5 == 0 {
                "shared".to_string()
            } else {
                format!("a{i}")
            };
            s.create_order(&order(&format!("o{i}"), &a), &[authz(&a)], None)
                .await
                .is_ok()
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    other.execute_batch("COMMIT").unwrap();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    // 40 distinct ids plus the first "shared" one.
    assert_eq!(ok, 41);
}

#[tokio::test]
async fn a_reusable_authorization_reads_the_same_on_either_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir).await);
    s.create_account(&account("acct", "t1"), None)
        .await
        .unwrap();
    let mut a = authz("v");
    a.account_id = AccountId("acct".into());
    a.wildcard = true;
    s.create_authz(&a).await.unwrap();
    assert!(s
        .start_challenge(&a.id, ChallengeType::Dns01, 10, None)
        .await
        .unwrap());
    let valid = ValidationResult {
        state: crate::model::AttemptState::Valid,
        validated_at: 11,
        error: None,
        records: Some(serde_json::json!([{"hostname": "example.com"}])),
        expires: 5_000,
    };
    assert!(s.finish_challenge(&a.id, &valid).await.unwrap());
    let ident = Identifier::dns("example.com");
    let acct = AccountId("acct".into());
    // Idle: on the write connection.
    let inline = s.reusable_authz(&acct, &ident, true, 100).await.unwrap();
    let back = s.authz_by_id(&a.id).await.unwrap();
    assert!(inline.is_some());
    assert_eq!(inline, back);
    assert_eq!(
        s.reusable_authz(&acct, &ident, false, 100).await.unwrap(),
        None
    );
    assert_eq!(
        s.reusable_authz(&acct, &ident, true, 5_000).await.unwrap(),
        None
    );
    // The writer thread busy (waiting for another connection's lock with
    // the write connection in hand): on a reader connection.
    let other = hold_write_lock(&dir);
    let writer = s.clone();
    let write = tokio::spawn(async move { writer.create_account(&account("b", "t2"), None).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pooled = s.reusable_authz(&acct, &ident, true, 100).await.unwrap();
    assert!(!write.is_finished());
    assert_eq!(pooled, inline);
    assert_eq!(
        s.reusable_authz(&acct, &ident, false, 100).await.unwrap(),
        None
    );
    other.execute_batch("COMMIT").unwrap();
    write.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_read_the_write_connection_finds_locked_is_left_to_a_reader() {
    // SQLite's lock held by another process shows as SQLITE_BUSY (or
    // SQLITE_LOCKED): the inline read gives way (None), and the caller
    // reads on a reader connection, which waits for the lock. Any other
    // failure is the read's answer.
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let failure =
        |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("test".into()));
    for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
        let read = s.writer.read_inline(|_| Err::<(), _>(failure(code)));
        assert!(read.is_none(), "code {code}");
    }
    let read = s
        .writer
        .read_inline(|_| Err::<(), _>(failure(rusqlite::ffi::SQLITE_CORRUPT)));
    assert!(matches!(read, Some(Err(_))));
    let read = s.writer.read_inline(|conn| {
        conn.query_row("SELECT count(*) FROM accounts", [], |row| {
            row.get::<_, i64>(0)
        })
    });
    assert!(matches!(read, Some(Ok(_))));
}
