//! In-process tests of chaos mode (`[chaos]`, docs/CHAOS.md): injected
//! 503 and 429 answers with `Retry-After` and a fresh nonce, clients held
//! back until their time is up, a finalize that answers processing and
//! completes later, forced validation failures and short authorizations.

use super::*;
use crate::chaos::{ChaosConfig, EndpointFaults, Fault, QueuedFault};

fn next(h: &Harness, endpoint: &str, fault: Fault, retry_after: u64) {
    h.server
        .app
        .chaos
        .queue(QueuedFault {
            endpoint: endpoint.into(),
            fault,
            retry_after: Some(retry_after),
            count: 1,
        })
        .unwrap();
}

#[tokio::test]
async fn a_queued_429_holds_the_client_back_then_lets_it_through() {
    let h = harness().await;
    let mut c = Client::new();
    h.register(&mut c).await;
    next(&h, "newOrder", Fault::RateLimited, 2);
    let ids = json!({"identifiers": [{"type": "dns", "value": "a.example.com"}]});
    let r = h.post(&c, "/acme/new-order", Some(&ids)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.problem(), "rateLimited");
    assert_eq!(r.header("retry-after").as_deref(), Some("2"));
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .starts_with("chaos: newOrder"));
    assert!(
        r.header("replay-nonce").is_some(),
        "a fresh nonce to retry with"
    );
    // Other endpoints are not held.
    let acct = c.kid.clone().unwrap();
    assert_eq!(h.post(&c, &acct, None).await.status, StatusCode::OK);
    // Back at once, ignoring Retry-After: refused again.
    let r = h.post(&c, "/acme/new-order", Some(&ids)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let left: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&left), "{left}");
    // Back on time: served.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = h.post(&c, "/acme/new-order", Some(&ids)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
}

#[tokio::test]
async fn unavailable_is_a_503_server_internal_problem() {
    let h = harness_with(|c| {
        c.chaos.seed = Some(1);
        c.chaos.retry_after = 4;
        c.chaos.endpoints.insert(
            "newNonce".into(),
            EndpointFaults {
                unavailable: 1.0,
                ..Default::default()
            },
        );
    })
    .await;
    let r = h.get("/acme/new-nonce").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.problem(), "serverInternal");
    assert_eq!(r.json()["status"], 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("4"));
    // The directory is not touched by a newNonce knob.
    assert_eq!(h.get("/directory").await.status, StatusCode::OK);
    // Switched off at run time.
    h.server.app.chaos.reset();
    assert_ne!(
        h.get("/acme/new-nonce").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_delayed_finalize_answers_processing_then_issues() {
    let h = harness_with(|c| c.chaos.finalize_delay = 1).await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let (url, order) = h.ready_order(&c, &["slow.example.com"]).await;
    let r = h
        .post(
            &c,
            order["finalize"].as_str().unwrap(),
            Some(&json!({"csr": csr_for(&["slow.example.com"])})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["status"], "processing");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(r.json().get("certificate").is_none());
    // A second finalize meanwhile is refused: the order is processing.
    let again = h
        .post(
            &c,
            order["finalize"].as_str().unwrap(),
            Some(&json!({"csr": csr_for(&["slow.example.com"])})),
        )
        .await;
    assert_eq!(again.problem(), "orderNotReady");
    // Polled until valid, within a generous bound.
    let mut status = String::new();
    for _ in 0..100 {
        let o = h.post(&c, &url, None).await.json();
        status = o["status"].as_str().unwrap().to_string();
        if status == "valid" {
            assert!(o["certificate"].is_string());
            break;
        }
        assert_eq!(status, "processing");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "valid");
}

#[tokio::test]
async fn forced_validation_failures_have_the_chosen_type() {
    let h = harness_with(|c| {
        c.chaos.validation_failure = 1.0;
        c.chaos.validation_error = "dns".into();
    })
    .await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let ids = json!({"identifiers": [{"type": "dns", "value": "fail.example.com"}]});
    let order = h.post(&c, "/acme/new-order", Some(&ids)).await.json();
    let authz_url = order["authorizations"][0].as_str().unwrap();
    let authz = h.post(&c, authz_url, None).await.json();
    let chall = authz["challenges"][0]["url"].as_str().unwrap().to_string();
    h.post(&c, &chall, Some(&json!({}))).await;
    let authz = h.post(&c, authz_url, None).await.json();
    assert_eq!(authz["status"], "invalid", "{authz}");
    let failed = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["status"] == "invalid")
        .expect("the challenge answered is invalid");
    assert_eq!(failed["error"]["type"], "urn:ietf:params:acme:error:dns");
    assert!(failed["error"]["detail"]
        .as_str()
        .unwrap()
        .starts_with("chaos:"));
}

#[tokio::test]
async fn authorizations_expire_early_when_asked() {
    let h = harness_with(|c| c.chaos.authz_lifetime = 30).await;
    let mut c = Client::new();
    h.register(&mut c).await;
    let (_, order) = h.ready_order(&c, &["short.example.com"]).await;
    let authz = h
        .post(&c, order["authorizations"][0].as_str().unwrap(), None)
        .await
        .json();
    let expires = crate::clock::parse_rfc3339(authz["expires"].as_str().unwrap()).unwrap();
    let now = h.server.app.ra.clock_for_tests().now();
    assert!(
        expires <= now + 30 && expires > now,
        "expires {expires}, now {now}"
    );
}

#[tokio::test]
async fn knobs_replaced_at_run_time_are_checked() {
    let h = harness().await;
    let chaos = &h.server.app.chaos;
    assert!(chaos
        .set(ChaosConfig {
            validation_error: "nonsense".into(),
            ..Default::default()
        })
        .is_err());
    chaos
        .set(ChaosConfig {
            endpoints: [(
                "*".to_owned(),
                EndpointFaults {
                    rate_limited: 1.0,
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        h.get("/directory").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}
