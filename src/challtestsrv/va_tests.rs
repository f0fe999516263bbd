//! The VA's DNS validators against this challenge test server, as a CI
//! setup uses them: records published through the management API
//! (`/set-txt`, `/clear-txt` on any name), asked over UDP on loopback by the
//! VA's own resolver.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{ChallTestSrv, Config, Running};
use crate::clock::FakeClock;
use crate::error::ErrorKind;
use crate::model::{AccountId, Authz, AuthzId, AuthzState, ChallengeType};
use crate::protocol::Identifier;
use crate::va::dns::Resolver;
use crate::va::dns01::expected_txt;
use crate::va::dns_account01::{self, DnsAccount01};
use crate::va::dns_persist01::DnsPersist01;
use crate::va::hickory::HickoryResolver;
use crate::va::{Outcome, ValidationRequest};

const ACCOUNT: &str = "https://ca.test/acme/acct/Ab3";
const KEY_AUTHZ: &str = "tok.thumb";
const NOW: i64 = 1_800_000_000;

async fn start() -> (Running, Arc<dyn Resolver>) {
    let srv = ChallTestSrv::start(Config::local_ephemeral())
        .await
        .expect("start challtestsrv");
    let dns = srv.dns_addr().expect("a DNS listener");
    let resolver: Arc<dyn Resolver> =
        Arc::new(HickoryResolver::new(&[dns], Duration::from_secs(2), 2, false).unwrap());
    (srv, resolver)
}

async fn manage(srv: &Running, path: &str, body: Value) {
    let url = format!("http://{}{path}", srv.management_addr().unwrap());
    let resp = reqwest::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path} {body}");
}

fn request(kind: ChallengeType, domain: &str, wildcard: bool) -> ValidationRequest {
    ValidationRequest {
        account_uri: ACCOUNT.to_owned(),
        authz: Authz {
            id: AuthzId("a".to_owned()),
            account_id: AccountId("Ab3".to_owned()),
            identifier: Identifier::dns(domain),
            wildcard,
            state: AuthzState::Pending,
            expires: 0,
            token: "tok".to_owned(),
            offered: vec![kind],
            attempt: None,
            created_at: 0,
        },
        kind,
        key_authorization: KEY_AUTHZ.to_owned(),
    }
}

fn verdict(out: Outcome) -> Result<(), (ErrorKind, String)> {
    match out {
        Outcome::Valid { .. } => Ok(()),
        Outcome::Invalid { error, .. } => Err((error.kind, error.detail.into_owned())),
    }
}

#[tokio::test]
async fn dns_account_01_through_the_management_api() {
    let (srv, resolver) = start().await;
    let va = DnsAccount01::new(resolver);
    let label = dns_account01::account_label(ACCOUNT);
    let host = format!("_{label}._acme-challenge.example.com.");
    let req = request(ChallengeType::DnsAccount01, "example.com", false);

    // Nothing published: the name answers with no records.
    let (kind, detail) = verdict(va.validate(&req).await).unwrap_err();
    assert_eq!(kind, ErrorKind::Unauthorized, "{detail}");
    assert_eq!(
        detail,
        format!("No TXT record found at {}", host.trim_end_matches('.'))
    );

    // The plain dns-01 name does not count.
    manage(
        &srv,
        "/set-txt",
        json!({"host": "_acme-challenge.example.com.", "value": expected_txt(KEY_AUTHZ)}),
    )
    .await;
    assert!(verdict(va.validate(&req).await).is_err());

    manage(
        &srv,
        "/set-txt",
        json!({"host": host, "value": expected_txt(KEY_AUTHZ)}),
    )
    .await;
    verdict(va.validate(&req).await).unwrap();
    // A wildcard authorization uses the same (base) name.
    verdict(
        va.validate(&request(ChallengeType::DnsAccount01, "example.com", true))
            .await,
    )
    .unwrap();

    manage(&srv, "/clear-txt", json!({"host": host})).await;
    let (kind, _) = verdict(va.validate(&req).await).unwrap_err();
    assert_eq!(kind, ErrorKind::Unauthorized);

    // A SERVFAIL is a dns problem.
    manage(&srv, "/set-servfail", json!({"host": host})).await;
    let (kind, detail) = verdict(va.validate(&req).await).unwrap_err();
    assert_eq!(kind, ErrorKind::Dns, "{detail}");
    srv.shutdown().await;
}

#[tokio::test]
async fn dns_persist_01_through_the_management_api() {
    let (srv, resolver) = start().await;
    let va = DnsPersist01::new(
        resolver,
        Arc::new(FakeClock::new(NOW)),
        vec!["ca.test".to_owned()],
    );
    let name = "_validation-persist.example.com.";
    let www = request(ChallengeType::DnsPersist01, "www.example.com", false);
    let wildcard = request(ChallengeType::DnsPersist01, "example.com", true);

    let (kind, detail) = verdict(va.validate(&www).await).unwrap_err();
    assert_eq!(kind, ErrorKind::Unauthorized);
    assert_eq!(
        detail,
        "No TXT record found at _validation-persist.www.example.com (or, with policy=wildcard, _validation-persist.example.com)"
    );

    // Another CA's record and ours for another account, then ours without
    // a policy: neither the subdomain nor the wildcard is covered.
    manage(
        &srv,
        "/set-txt",
        json!({"host": name, "value": format!("ca.example; accounturi={ACCOUNT}")}),
    )
    .await;
    manage(
        &srv,
        "/set-txt",
        json!({"host": name, "value": "ca.test; accounturi=https://ca.test/acme/acct/other"}),
    )
    .await;
    manage(
        &srv,
        "/set-txt",
        json!({"host": name, "value": format!("ca.test; accounturi={ACCOUNT}")}),
    )
    .await;
    let (kind, detail) = verdict(va.validate(&wildcard).await).unwrap_err();
    assert_eq!(kind, ErrorKind::Unauthorized);
    assert!(detail.contains("needs policy=wildcard"), "{detail}");
    assert!(detail.contains("is not this account"), "{detail}");
    let (_, detail) = verdict(va.validate(&www).await).unwrap_err();
    assert!(
        detail.contains("covers subdomains only with policy=wildcard"),
        "{detail}"
    );
    // The name itself is covered.
    verdict(
        va.validate(&request(ChallengeType::DnsPersist01, "example.com", false))
            .await,
    )
    .unwrap();

    // policy=wildcard, in a record longer than one TXT character-string
    // (the server splits it, the resolver joins it), covers both.
    manage(&srv, "/clear-txt", json!({"host": name})).await;
    let long = format!(
        "ca.test; accounturi={ACCOUNT}; note={}; policy=wildcard; persistUntil={}",
        "x".repeat(300),
        NOW + 60
    );
    manage(&srv, "/set-txt", json!({"host": name, "value": long})).await;
    verdict(va.validate(&wildcard).await).unwrap();
    verdict(va.validate(&www).await).unwrap();

    // An expired record no longer validates.
    manage(&srv, "/clear-txt", json!({"host": name})).await;
    let expired = format!("ca.test; accounturi={ACCOUNT}; persistUntil={}", NOW - 1);
    manage(&srv, "/set-txt", json!({"host": name, "value": expired})).await;
    let (kind, detail) = verdict(
        va.validate(&request(ChallengeType::DnsPersist01, "example.com", false))
            .await,
    )
    .unwrap_err();
    assert_eq!(kind, ErrorKind::Unauthorized);
    assert!(detail.contains("has passed"), "{detail}");

    // A malformed record of ours.
    manage(&srv, "/clear-txt", json!({"host": name})).await;
    let dup = format!("ca.test; accounturi={ACCOUNT}; accounturi={ACCOUNT}");
    manage(&srv, "/set-txt", json!({"host": name, "value": dup})).await;
    let (kind, detail) = verdict(va.validate(&wildcard).await).unwrap_err();
    assert_eq!(kind, ErrorKind::Malformed, "{detail}");
    srv.shutdown().await;
}
