//! In-process tests of the rate limits (`[rate_limits]`): each limit
//! answered with a rateLimited problem, HTTP 429, `Retry-After` and a
//! detail naming the limit, its key and when it frees; refunds; client
//! addresses and `X-Forwarded-For`.

use std::net::SocketAddr;

use super::*;
use crate::http::PeerAddr;
use crate::model::AuthzId;
use crate::ratelimit::RateConfig;

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

fn one_per_hour() -> RateConfig {
    RateConfig {
        count: 1,
        period: HOUR,
    }
}

/// Asserts a rateLimited answer whose detail has every one of `needles`;
/// returns its Retry-After in seconds.
fn assert_limited(r: &Resp, needles: &[&str]) -> u64 {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json());
    assert_eq!(r.problem(), "rateLimited");
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    for n in needles {
        assert!(detail.contains(n), "{n:?} not in {detail:?}");
    }
    // The detail ends with the time the limit frees, in RFC 3339.
    let at = detail.rsplit("retry after ").next().unwrap();
    assert!(crate::clock::parse_rfc3339(at).is_some(), "{detail}");
    let secs: u64 = r
        .header("retry-after")
        .expect("Retry-After on rateLimited")
        .parse()
        .unwrap();
    assert!(secs >= 1);
    secs
}

async fn order(h: &Harness, c: &Client, names: &[&str]) -> Resp {
    let ids: Vec<Value> = names
        .iter()
        .map(|n| json!({"type": "dns", "value": n}))
        .collect();
    h.post(c, "/acme/new-order", Some(&json!({"identifiers": ids})))
        .await
}

async fn finalize(h: &Harness, c: &Client, order: &Value, names: &[&str]) -> Resp {
    h.post(
        c,
        order["finalize"].as_str().unwrap(),
        Some(&json!({"csr": csr_for(names)})),
    )
    .await
}

/// newAccount for `c` as if it came over TCP from `peer`, with an
/// optional X-Forwarded-For.
async fn register_from(h: &Harness, c: &Client, peer: &str, xff: Option<&str>) -> Resp {
    let url = format!("{BASE}/acme/new-account");
    let body = c.jws(
        &h.nonce(),
        &url,
        Some(&json!({"termsOfServiceAgreed": true})),
    );
    let mut req = Request::post("/acme/new-account")
        .header(header::HOST, "localhost:14000")
        .header(header::CONTENT_TYPE, "application/jose+json")
        .extension(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    h.send(req.body(Body::from(body)).unwrap()).await
}

/// A harness with rate limits on, adjusted by `set`, and a registered
/// client.
async fn limited(set: impl FnOnce(&mut crate::ratelimit::RateLimitsConfig)) -> (Harness, Client) {
    let h = harness_with(|c| {
        c.rate_limits.enabled = Some(true);
        set(&mut c.rate_limits);
    })
    .await;
    let mut c = Client::new();
    h.register(&mut c).await;
    (h, c)
}

#[tokio::test]
async fn new_orders_per_account() {
    let (h, c) = limited(|rl| {
        rl.new_orders_per_account = RateConfig {
            count: 2,
            period: HOUR,
        }
    })
    .await;
    for i in 0..2 {
        let r = order(&h, &c, &[&format!("o{i}.example.com")]).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = order(&h, &c, &["o2.example.com"]).await;
    let account_id = c.kid.as_deref().unwrap().rsplit('/').next().unwrap();
    let secs = assert_limited(
        &r,
        &[
            "new_orders_per_account",
            &format!("account {account_id}"),
            "2 per 1h",
        ],
    );
    // One refills every 30 minutes.
    assert!((1..=1800).contains(&secs), "{secs}");
    // Another account is not affected.
    let mut other = Client::new();
    h.register(&mut other).await;
    assert_eq!(
        order(&h, &other, &["o3.example.com"]).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn certificates_per_domain_checked_at_new_order_spent_at_finalize() {
    let (h, c) = limited(|rl| {
        rl.certificates_per_domain = one_per_hour();
    })
    .await;
    // Two orders under example.co.uk pass newOrder: nothing is spent yet.
    let (_, first) = h.ready_order(&c, &["a.example.co.uk"]).await;
    let (second_url, second) = h.ready_order(&c, &["b.example.co.uk"]).await;
    let r = finalize(&h, &c, &first, &["a.example.co.uk"]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    // The second is refused at finalize, and stays ready.
    let r = finalize(&h, &c, &second, &["b.example.co.uk"]).await;
    let secs = assert_limited(
        &r,
        &[
            "certificates_per_domain",
            "registered domain example.co.uk",
            "1 per 1h",
        ],
    );
    assert!((3500..=3600).contains(&secs), "{secs}");
    assert_eq!(
        h.post(&c, &second_url, None).await.json()["status"],
        "ready"
    );
    // A new order under the same registered domain is refused at once.
    let r = order(&h, &c, &["c.example.co.uk"]).await;
    assert_limited(&r, &["certificates_per_domain", "example.co.uk"]);
    // A renewal (exactly the names of an unexpired certificate) is exempt,
    // as at Let's Encrypt; the duplicate limit (5) still counts it.
    let (_, renewal) = h.ready_order(&c, &["A.example.co.uk"]).await;
    let r = finalize(&h, &c, &renewal, &["a.example.co.uk"]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    // github.io is a public suffix: its sites are separate domains.
    for name in ["a.github.io", "b.github.io"] {
        let (_, o) = h.ready_order(&c, &[name]).await;
        let r = finalize(&h, &c, &o, &[name]).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.json());
    }
}

#[tokio::test]
async fn duplicate_certificates() {
    let (h, c) = limited(|rl| {
        rl.duplicate_certificates = one_per_hour();
    })
    .await;
    let names = ["dup.example.com", "www.dup.example.com"];
    let (_, o) = h.ready_order(&c, &names).await;
    assert_eq!(finalize(&h, &c, &o, &names).await.status, StatusCode::OK);
    // The same set, in another order and case.
    let r = order(&h, &c, &["WWW.dup.example.com", "dup.example.com"]).await;
    assert_limited(
        &r,
        &[
            "duplicate_certificates",
            "exactly the names dup.example.com, www.dup.example.com",
        ],
    );
    // A subset is another set.
    assert_eq!(
        order(&h, &c, &["dup.example.com"]).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn failed_validations_per_account_and_hostname() {
    let (h, c) = limited(|rl| {
        rl.failed_validations = RateConfig {
            count: 2,
            period: HOUR,
        }
    })
    .await;
    let r = order(&h, &c, &["flaky.example.com"]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_string();
    let id = AuthzId::parse(authz_url.rsplit('/').next().unwrap()).unwrap();
    let authz = h
        .server
        .app
        .ra
        .store_for_tests()
        .authz_by_id(&id)
        .await
        .unwrap()
        .unwrap();
    // Two failures, as the VA reports them.
    for _ in 0..2 {
        h.server.app.ra.validation_failed(&authz).await;
    }
    let r = order(&h, &c, &["flaky.example.com"]).await;
    let account_id = c.kid.as_deref().unwrap().rsplit('/').next().unwrap();
    let secs = assert_limited(
        &r,
        &[
            "failed_validations",
            &format!("of flaky.example.com by account {account_id}"),
        ],
    );
    assert!((1..=1800).contains(&secs), "{secs}");
    // Other names of the account still order.
    assert_eq!(
        order(&h, &c, &["steady.example.com"]).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn new_accounts_per_ip_with_forwarded_for_only_from_trusted_proxies() {
    let h = harness_with(|c| {
        c.rate_limits.enabled = Some(true);
        c.rate_limits.new_accounts_per_ip = one_per_hour();
        c.rate_limits.trusted_proxies = vec!["10.0.0.0/8".into()];
    })
    .await;
    let first = Client::new();
    let r = register_from(&h, &first, "203.0.113.9:40000", None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // The same key again finds its account and spends nothing.
    let r = register_from(&h, &first, "203.0.113.9:40001", None).await;
    assert_eq!(r.status, StatusCode::OK);
    // A second account from that address is refused; a forged
    // X-Forwarded-For from an untrusted peer changes nothing.
    let r = register_from(
        &h,
        &Client::new(),
        "203.0.113.9:40002",
        Some("198.51.100.1"),
    )
    .await;
    assert_limited(&r, &["new_accounts_per_ip", "from 203.0.113.9", "1 per 1h"]);
    // Another address may.
    let r = register_from(&h, &Client::new(), "203.0.113.10:40000", None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Through a trusted proxy, the forwarded address counts: the
    // rightmost entry that is not a trusted proxy.
    let r = register_from(
        &h,
        &Client::new(),
        "10.1.1.1:5000",
        Some("203.0.113.9, 10.2.2.2"),
    )
    .await;
    assert_limited(&r, &["from 203.0.113.9"]);
    let r = register_from(&h, &Client::new(), "10.1.1.1:5000", Some("192.0.2.77")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // IPv6 clients of one /64 share a bucket.
    let r = register_from(&h, &Client::new(), "[2001:db8:5:6::1]:443", None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = register_from(&h, &Client::new(), "[2001:db8:5:6:ffff::2]:443", None).await;
    assert_limited(&r, &["from 2001:db8:5:6::/64"]);
}

#[tokio::test]
async fn pending_authorizations_and_refunds_of_refused_orders() {
    let (h, c) = limited(|rl| {
        rl.pending_authorizations.count = 2;
        rl.new_orders_per_account = RateConfig {
            count: 2,
            period: HOUR,
        };
    })
    .await;
    let r = order(&h, &c, &["p1.example.com", "p2.example.com"]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let authzs: Vec<String> = r.json()["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    // A third pending authorization is over the ceiling; this refusal
    // spends nothing from new_orders_per_account.
    let r = order(&h, &c, &["p3.example.com"]).await;
    let secs = assert_limited(&r, &["pending_authorizations", "at most 2"]);
    assert!(secs > 1, "{secs}");
    // Deactivating them frees the places; this order is the account's
    // second, and the one after it is refused by new_orders_per_account.
    for authz in &authzs {
        let r = h
            .post(&c, authz, Some(&json!({"status": "deactivated"})))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(
        order(&h, &c, &["p3.example.com"]).await.status,
        StatusCode::CREATED
    );
    let r = order(&h, &c, &["p4.example.com"]).await;
    assert_limited(&r, &["new_orders_per_account"]);
}

#[tokio::test]
async fn disabled_limits_refuse_nothing_and_pebble_mode_has_none() {
    let pebble = crate::pebble::defaults();
    assert!(!pebble
        .rate_limits
        .is_enabled(pebble.validation.always_valid));
    // serve: on, unless nothing is validated (and not told otherwise).
    let serve = Config::default();
    assert!(serve.rate_limits.is_enabled(false));
    assert!(!serve.rate_limits.is_enabled(true));
    let h = harness_with(|c| {
        c.rate_limits.enabled = Some(false);
        c.rate_limits.new_orders_per_account = one_per_hour();
        c.rate_limits.new_accounts_per_ip = one_per_hour();
    })
    .await;
    let mut c = Client::new();
    h.register(&mut c).await;
    for i in 0..3 {
        assert_eq!(
            order(&h, &c, &[&format!("free{i}.example.com")])
                .await
                .status,
            StatusCode::CREATED
        );
        let r = register_from(&h, &Client::new(), "203.0.113.9:1", None).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
}

#[test]
fn client_address_from_forwarded_for() {
    use crate::http::client_ip;
    use crate::ratelimit::Prefix;
    let trusted = [
        Prefix::parse("10.0.0.0/8").unwrap(),
        Prefix::parse("::1").unwrap(),
    ];
    let peer = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
    let headers = |values: &[&str]| {
        let mut h = axum::http::HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    };
    let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
    // No peer (in-process): nothing to count.
    assert_eq!(client_ip(None, &headers(&["192.0.2.1"]), &trusted), None);
    // An untrusted peer's header is ignored.
    assert_eq!(
        client_ip(peer("198.51.100.7:1"), &headers(&["192.0.2.1"]), &trusted),
        ip("198.51.100.7")
    );
    // A trusted peer: the rightmost untrusted entry, across header lines.
    assert_eq!(
        client_ip(
            peer("10.0.0.1:1"),
            &headers(&["203.0.113.66, 192.0.2.1", "10.9.9.9"]),
            &trusted
        ),
        ip("192.0.2.1")
    );
    assert_eq!(
        client_ip(peer("[::1]:1"), &headers(&["2001:db8::5"]), &trusted),
        ip("2001:db8::5")
    );
    // Malformed, absent, or only proxies: the peer.
    for h in [&["not an address"][..], &[], &["10.1.1.1, 10.2.2.2"]] {
        assert_eq!(
            client_ip(peer("10.0.0.1:1"), &headers(h), &trusted),
            ip("10.0.0.1"),
            "{h:?}"
        );
    }
}
