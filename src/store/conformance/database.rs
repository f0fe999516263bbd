//! Methods of [`Database`] that span two of its traits: the shared state
//! and the core records read in one step.

use std::sync::Arc;

use crate::model::{Account, AccountId, AccountStatus};
use crate::store::{AccountCreation, Database};

super::both!(crate::store::Database;
    a_nonce_is_spent_and_the_account_read_together,
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
    let (fresh, found) = s
        .spend_nonce_reading_account(b"n1", 10_000, id)
        .await
        .unwrap();
    assert!(fresh);
    assert_eq!(found.as_ref(), Some(&account));
    // Spent: refused everywhere after, the account still read.
    let (fresh, found) = s
        .spend_nonce_reading_account(b"n1", 10_000, id)
        .await
        .unwrap();
    assert!(!fresh);
    assert_eq!(found.as_ref(), Some(&account));
    assert!(!s.spend_nonce(b"n1", 10_000).await.unwrap());
    // A nonce spent the other way is spent here too.
    assert!(s.spend_nonce(b"n2", 10_000).await.unwrap());
    let (fresh, _) = s
        .spend_nonce_reading_account(b"n2", 10_000, id)
        .await
        .unwrap();
    assert!(!fresh);
    // An unknown account: no account, the nonce spent all the same.
    let (fresh, found) = s
        .spend_nonce_reading_account(b"n3", 10_000, &AccountId("nobody".into()))
        .await
        .unwrap();
    assert!(fresh);
    assert_eq!(found, None);
    assert!(!s.spend_nonce(b"n3", 10_000).await.unwrap());
    // The account's current state, not a copy.
    assert!(s.deactivate_account(id).await.unwrap());
    let (_, found) = s
        .spend_nonce_reading_account(b"n4", 10_000, id)
        .await
        .unwrap();
    assert_eq!(found.unwrap().status, AccountStatus::Deactivated);
}
