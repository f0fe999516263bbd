//! In-process tests of the monitoring endpoints: `/metrics` after some
//! ACME traffic (counters moved, the text parses as Prometheus text),
//! `/health` and `/ready`.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::clock::SystemClock;
use crate::http::monitor::{self, Monitor};
use crate::metrics::{Listener, Metrics};

async fn status_get(h: &Harness, path: &str) -> Resp {
    let router = crate::http::status::router(h.server.status.as_ref().unwrap().app.clone());
    call(
        router,
        Request::get(path)
            .header(header::HOST, "localhost:14080")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// The families declared by `# TYPE` lines, and the samples, by their
/// `name{labels}` text, of a Prometheus text exposition. Panics on any
/// line that is not a comment, a blank or a `name{labels} value` sample,
/// and on a sample whose family has no `# HELP` and `# TYPE`.
fn parse_exposition(text: &str) -> (BTreeMap<String, String>, BTreeMap<String, f64>) {
    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    /// `k="v",k="v"` with `\\`, `\"` and `\n` escapes in values.
    fn labels_ok(mut s: &str) -> bool {
        while !s.is_empty() {
            let Some(eq) = s.find("=\"") else {
                return false;
            };
            if !is_name(&s[..eq]) {
                return false;
            }
            let mut rest = s[eq + 2..].char_indices();
            let end = loop {
                match rest.next() {
                    Some((_, '\\')) => {
                        if rest.next().is_none() {
                            return false;
                        }
                    }
                    Some((i, '"')) => break eq + 2 + i,
                    Some(_) => {}
                    None => return false,
                }
            };
            s = &s[end + 1..];
            if let Some(r) = s.strip_prefix(',') {
                s = r;
            } else if !s.is_empty() {
                return false;
            }
        }
        true
    }
    let mut help = BTreeSet::new();
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP name text");
            assert!(is_name(name), "{line}");
            help.insert(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            assert!(is_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment line: {line}");
        let (series, value) = line.rsplit_once(' ').expect("name{labels} value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("closing brace");
                assert!(labels_ok(labels), "bad labels: {line}");
                name
            }
            None => series,
        };
        assert!(is_name(name), "bad name: {line}");
        let family = types
            .keys()
            .find(|f| {
                name == f.as_str()
                    || ["_total", "_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(f.as_str()))
            })
            .unwrap_or_else(|| panic!("no TYPE line for {line}"))
            .clone();
        assert!(help.contains(&family), "no HELP line for {line}");
        assert!(name.starts_with("acme_ca_"), "unprefixed: {line}");
        samples.insert(series.to_string(), value);
    }
    (types, samples)
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series} in {samples:#?}"))
}

#[tokio::test]
async fn metrics_count_acme_traffic_and_parse() {
    // Short-lived certificates, so the one issued below expires within 7
    // days.
    let h = harness_with(|c| c.acme.default_profile = "shortlived".into()).await;
    let mut c = Client::new();
    h.register(&mut c).await;
    assert_eq!(
        h.get("/acme/new-nonce").await.status,
        StatusCode::NO_CONTENT
    );

    // A nonce used twice: the second use is refused with badNonce.
    let n = h.nonce();
    let url = format!("{BASE}/acme/new-order");
    let body = c.jws(
        &n,
        &url,
        Some(&json!({"identifiers": [{"type": "dns", "value": "a.example.com"}]})),
    );
    let r = h
        .raw_post("/acme/new-order", "application/jose+json", body.clone())
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = h
        .raw_post("/acme/new-order", "application/jose+json", body)
        .await;
    assert_eq!(r.problem(), "badNonce");

    let names = ["www.example.com"];
    let (_, order) = h.ready_order(&c, &names).await;
    let finalize = order["finalize"].as_str().unwrap().to_string();
    let r = h
        .post(&c, &finalize, Some(&json!({"csr": csr_for(&names)})))
        .await;
    assert_eq!(r.json()["status"], "valid", "{}", r.json());
    let order_id = finalize.rsplit('/').nth(1).unwrap().to_string();

    // The status listener: a CRL, and an OCSP GET that is not base64.
    assert_eq!(
        status_get(&h, "/crl/intermediate.crl").await.status,
        StatusCode::OK
    );
    let r = status_get(&h, "/ocsp/%25%25%25").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        status_get(&h, "/no/such/path").await.status,
        StatusCode::NOT_FOUND
    );

    let r = status_get(&h, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    let (types, s) = parse_exposition(&text);

    assert_eq!(types["acme_ca_http_requests_total"], "counter");
    assert_eq!(types["acme_ca_http_request_duration_seconds"], "histogram");
    assert_eq!(types["acme_ca_validation_queue_depth"], "gauge");
    // Every POST and the newNonce GET got a nonce; the harness signs with
    // nonces it takes directly, so only redemptions are counted for those.
    assert!(sample(&s, "acme_ca_nonces_total{event=\"issued\"}") >= 8.0);
    assert!(sample(&s, "acme_ca_nonces_total{event=\"redeemed\"}") >= 6.0);
    assert_eq!(sample(&s, "acme_ca_nonces_total{event=\"refused\"}"), 1.0);
    assert_eq!(
        sample(&s, "acme_ca_acme_problems_total{type=\"badNonce\"}"),
        1.0
    );
    assert_eq!(sample(&s, "acme_ca_orders_total{state=\"valid\"}"), 1.0);
    assert_eq!(sample(&s, "acme_ca_orders_total{state=\"invalid\"}"), 0.0);
    assert_eq!(
        sample(
            &s,
            "acme_ca_finalize_duration_seconds_count{outcome=\"issued\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "acme_ca_validation_attempts_total{challenge=\"http-01\",outcome=\"valid\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "acme_ca_validation_duration_seconds_count{challenge=\"http-01\"}"
        ),
        1.0
    );
    assert_eq!(sample(&s, "acme_ca_validation_queue_depth"), 0.0);
    assert_eq!(
        sample(
            &s,
            "acme_ca_http_requests_total{listener=\"acme\",route=\"/acme/new-order\",status=\"201\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &s,
            "acme_ca_http_requests_total{listener=\"acme\",route=\"/acme/new-order\",status=\"400\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "acme_ca_http_requests_total{listener=\"acme\",route=\"/acme/order/{id}/finalize\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "acme_ca_http_requests_total{listener=\"status\",route=\"/crl/intermediate.crl\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "acme_ca_http_requests_total{listener=\"status\",route=\"unmatched\",status=\"404\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "acme_ca_http_request_duration_seconds_count{listener=\"acme\",route=\"/acme/new-nonce\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&s, "acme_ca_crl_requests_total{outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(
        sample(&s, "acme_ca_ocsp_requests_total{outcome=\"malformed\"}"),
        1.0
    );
    assert!(sample(&s, "acme_ca_store_write_batch_size_count") >= 5.0);
    assert!(sample(&s, "acme_ca_store_write_duration_seconds_count") >= 5.0);
    assert_eq!(
        sample(&s, "acme_ca_certificates_expiring{within=\"7d\"}"),
        1.0
    );
    assert_eq!(
        sample(&s, "acme_ca_certificates_expiring{within=\"30d\"}"),
        1.0
    );
    // Routes are templates: no id of a resource appears in a label.
    assert!(!text.contains(&order_id), "{text}");
}

#[tokio::test]
async fn health_and_ready() {
    let h = harness().await;
    let r = status_get(&h, "/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"ok\n");

    // In process, no accept loop runs: the configured listeners are down.
    let r = status_get(&h, "/ready").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = r.json();
    assert_eq!(body["ready"], false);
    assert_eq!(body["not_ready"]["listener:acme"], "not serving");
    assert_eq!(body["not_ready"]["listener:status"], "not serving");
    assert!(body["not_ready"].get("store").is_none(), "{body}");
    assert!(
        body["not_ready"].get("listener:service").is_none(),
        "{body}"
    );

    let metrics = &h.server.monitor.metrics;
    metrics.listener_serving(Listener::Acme, true);
    metrics.listener_serving(Listener::Status, true);
    let r = status_get(&h, "/ready").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json(), json!({"ready": true}));

    // A store that no longer answers: not ready, and it is named.
    let (_dir, store) = crate::test_support::temp_store().await;
    let store = Arc::new(store);
    store.close().await;
    let metrics = Arc::new(Metrics::new());
    let monitor = Arc::new(Monitor::new(
        metrics.clone(),
        store,
        h.server.app.ra.ca_for_tests().clone(),
        Arc::new(SystemClock),
    ));
    let router = monitor::router(monitor);
    let r = call(
        router.clone(),
        Request::get("/ready").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["not_ready"]["store"], "the store query failed");
    // /metrics still answers, from the counters; the gauges read from the
    // store keep their last values.
    let r = call(
        router,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8(r.body).unwrap();
    let (_, s) = parse_exposition(&text);
    assert_eq!(
        sample(
            &s,
            "acme_ca_http_requests_total{listener=\"metrics\",route=\"/ready\",status=\"503\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&s, "acme_ca_certificates_expiring{within=\"30d\"}"),
        0.0
    );
}
