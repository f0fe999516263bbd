//! Rate-limit tests: GCRA as pure arithmetic, then the limiter against a
//! real SQLite store with a fake clock (time moves only when a test says).

use super::*;
use crate::clock::FakeClock;
use crate::model::{AuthzId, AuthzState, ChallengeType};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::test_support::temp_store;

const T0: i64 = 1_800_000_000;

fn rate(count: u64, secs: u64) -> Rate {
    Rate {
        count,
        period: Duration::from_secs(secs),
    }
}

#[test]
fn gcra_allows_a_burst_then_one_per_emission_interval() {
    // 10 per 100 s: emission interval 10 s, burst 10.
    let r = rate(10, 100);
    assert_eq!(r.emission_interval(), 10_000);
    assert_eq!(r.burst_offset(), 100_000);
    let now = 1_000_000;
    let mut tat = None;
    for i in 0..10 {
        let d = gcra(tat, now, r, 1);
        assert!(d.allowed, "request {i} of the burst");
        tat = Some(d.new_tat);
    }
    let d = gcra(tat, now, r, 1);
    assert!(!d.allowed);
    assert_eq!(d.retry_in, 10_000, "one frees after one emission interval");
    assert_eq!(d.new_tat, tat.unwrap(), "a refusal changes nothing");
    // 9.999 s later: still refused, by 1 ms.
    let d = gcra(tat, now + 9_999, r, 1);
    assert!(!d.allowed);
    assert_eq!(d.retry_in, 1);
    // One interval later exactly one more passes.
    let d = gcra(tat, now + 10_000, r, 1);
    assert!(d.allowed);
    assert!(!gcra(Some(d.new_tat), now + 10_000, r, 1).allowed);
    // After a whole period the bucket is full again: a full burst.
    let mut tat = Some(d.new_tat);
    for _ in 0..10 {
        let d = gcra(tat, now + 10_000 + 100_000, r, 1);
        assert!(d.allowed);
        tat = Some(d.new_tat);
    }
}

#[test]
fn gcra_cost_above_the_burst_is_never_allowed_and_costs_add() {
    let r = rate(5, 50);
    assert!(!gcra(None, 0, r, 6).allowed);
    let d = gcra(None, 0, r, 5);
    assert!(d.allowed);
    assert_eq!(d.new_tat, 50_000);
    // An idle bucket does not bank more than one burst.
    let d = gcra(Some(0), 10_000_000, r, 5);
    assert!(d.allowed);
    assert!(!gcra(Some(d.new_tat), 10_000_000, r, 1).allowed);
}

#[test]
fn registered_domains_follow_the_public_suffix_list() {
    let rd = |n: &str| registered_domain(n);
    assert_eq!(rd("a.example.co.uk").as_deref(), Some("example.co.uk"));
    assert_eq!(rd("b.example.co.uk"), rd("a.example.co.uk"));
    assert_eq!(rd("www.Example.COM.").as_deref(), Some("example.com"));
    assert_eq!(rd("*.x.example.com").as_deref(), Some("example.com"));
    // The private section counts: every github.io site is its own.
    assert_eq!(rd("a.github.io").as_deref(), Some("a.github.io"));
    assert_ne!(rd("a.github.io"), rd("b.github.io"));
    assert_eq!(rd("x.a.github.io").as_deref(), Some("a.github.io"));
    // A public suffix has no registered domain.
    assert_eq!(rd("co.uk"), None);
}

#[test]
fn client_addresses_group_ipv6_by_64() {
    let k = |s: &str| client_key(s.parse().unwrap());
    assert_eq!(k("192.0.2.7"), "192.0.2.7");
    assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
    assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    assert_eq!(k("2001:db8:1:2:bbbb::9"), k("2001:db8:1:2::1"));
    assert_ne!(k("2001:db8:1:3::1"), k("2001:db8:1:2::1"));
    let r = |s: &str| ipv6_range(s.parse().unwrap());
    assert_eq!(
        r("2001:db8:1:2:aaaa::1").as_deref(),
        Some("2001:db8:1::/48")
    );
    assert_eq!(r("2001:db8:1:ffff::1"), r("2001:db8:1:2::1"));
    assert_eq!(r("192.0.2.7"), None);
    assert_eq!(r("::ffff:192.0.2.7"), None);
}

#[tokio::test]
async fn ipv6_clients_count_per_64_and_per_48() {
    let f = fixture().await;
    let l = f.limiter(&config_with(|c| {
        c.new_accounts_per_ip.count = 2;
        c.new_accounts_per_ipv6_range.count = 3;
    }));
    let from = |s: &str| l.new_account_transactions(s.parse().unwrap());
    let _ = l.spend(&from("2001:db8:7:1::1")).await.unwrap();
    let _ = l.spend(&from("2001:db8:7:1::2")).await.unwrap();
    let e = l.spend(&from("2001:db8:7:1::3")).await.unwrap_err();
    assert!(e.detail.contains("from 2001:db8:7:1::/64"), "{}", e.detail);
    // Another /64 of the same /48: one more, then the range is used up
    // (and the refused request spent nothing from its /64).
    let _ = l.spend(&from("2001:db8:7:2::1")).await.unwrap();
    let e = l.spend(&from("2001:db8:7:3::1")).await.unwrap_err();
    assert!(
        e.detail.contains("new_accounts_per_ipv6_range")
            && e.detail.contains("from 2001:db8:7::/48"),
        "{}",
        e.detail
    );
    // IPv4 clients have no range.
    assert_eq!(from("192.0.2.1").len(), 1);
}

#[test]
fn prefixes() {
    let p = Prefix::parse("10.0.0.0/8").unwrap();
    assert!(p.contains("10.1.2.3".parse().unwrap()));
    assert!(p.contains("::ffff:10.1.2.3".parse().unwrap()));
    assert!(!p.contains("11.0.0.1".parse().unwrap()));
    let one = Prefix::parse("2001:db8::1").unwrap();
    assert!(one.contains("2001:db8::1".parse().unwrap()));
    assert!(!one.contains("2001:db8::2".parse().unwrap()));
    assert!(Prefix::parse("0.0.0.0/0")
        .unwrap()
        .contains("203.0.113.1".parse().unwrap()));
    assert!(Prefix::parse("10.0.0.0/33").is_err());
    assert!(Prefix::parse("example.com").is_err());
}

#[test]
fn config_validation() {
    let ok = |t: &str| toml::from_str::<RateLimitsConfig>(t).map_err(|e| e.to_string());
    let valid = |t: &str| ok(t).unwrap().validate();
    assert!(RateLimitsConfig::default().validate().is_ok());
    assert!(valid("new_orders_per_account = { count = 0, period = \"1h\" }").is_err());
    assert!(valid("new_orders_per_account = { count = 5, period = \"0s\" }").is_err());
    assert!(valid("pending_authorizations = { count = 5 }").is_ok());
    let over = |body: &str| valid(&format!("[[overrides]]\n{body}"));
    assert!(over(
        "limit = \"new_orders_per_account\"\naccount = \"abc\"\ncount = 9\nperiod = \"1h\""
    )
    .is_ok());
    assert!(over("limit = \"certificates_per_domain\"\ndomain = \"example.co.uk\"\ncount = 9\nperiod = \"7d\"").is_ok());
    // Not a registered domain; a limit without domain overrides; both keys.
    assert!(over("limit = \"certificates_per_domain\"\ndomain = \"www.example.co.uk\"\ncount = 9\nperiod = \"7d\"").is_err());
    assert!(over(
        "limit = \"new_orders_per_account\"\ndomain = \"example.com\"\ncount = 9\nperiod = \"7d\""
    )
    .is_err());
    assert!(
        over("limit = \"new_accounts_per_ip\"\naccount = \"abc\"\ncount = 9\nperiod = \"7d\"")
            .is_err()
    );
    assert!(over("limit = \"certificates_per_domain\"\naccount = \"a\"\ndomain = \"example.com\"\ncount = 9\nperiod = \"7d\"").is_err());
    assert!(ok("[[overrides]]\nlimit = \"no_such_limit\"\naccount = \"a\"\ncount = 1").is_err());
    assert!(valid("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]").is_ok());
    assert!(valid("trusted_proxies = [\"10.0.0.0/99\"]").is_err());
}

struct Fixture {
    store: Arc<SqliteStore>,
    clock: Arc<FakeClock>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let (dir, store) = temp_store().await;
    Fixture {
        store: Arc::new(store),
        clock: Arc::new(FakeClock::new(T0)),
        metrics: Arc::new(Metrics::new()),
        _dir: dir,
    }
}

impl Fixture {
    fn limiter(&self, config: &RateLimitsConfig) -> Limiter {
        Limiter::new(
            self.store.clone(),
            self.clock.clone(),
            config,
            self.metrics.clone(),
        )
    }
}

fn acct(id: &str) -> AccountId {
    AccountId(id.to_owned())
}

fn dns(names: &[&str]) -> Vec<Identifier> {
    names.iter().map(|n| Identifier::dns(*n)).collect()
}

fn config_with(adjust: impl FnOnce(&mut RateLimitsConfig)) -> RateLimitsConfig {
    let mut c = RateLimitsConfig::default();
    adjust(&mut c);
    c.validate().unwrap();
    c
}

#[tokio::test]
async fn buckets_refill_with_the_clock() {
    let f = fixture().await;
    // 3 per 30 s: one refills every 10 s.
    let l = f.limiter(&config_with(|c| {
        c.new_orders_per_account = RateConfig {
            count: 3,
            period: Duration::from_secs(30),
        }
    }));
    let txns = l.new_order_transactions(&acct("a1"));
    for _ in 0..3 {
        let _ = l.spend(&txns).await.unwrap();
    }
    let e = l.spend(&txns).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(10));
    assert!(
        e.detail.contains("new_orders_per_account")
            && e.detail.contains("account a1")
            && e.detail.contains("3 per 30s")
            && e.detail.contains(&rfc3339(T0 + 10)),
        "{}",
        e.detail
    );
    // Another account has its own bucket.
    let _ = l
        .spend(&l.new_order_transactions(&acct("a2")))
        .await
        .unwrap();
    f.clock.advance(9);
    assert_eq!(
        l.spend(&txns).await.unwrap_err().retry_after(),
        Some(1),
        "retry-after counts down"
    );
    f.clock.advance(1);
    let _ = l.spend(&txns).await.unwrap();
    assert!(l.spend(&txns).await.is_err(), "exactly one refilled");
    // A full period later the whole burst is back.
    f.clock.advance(30);
    for _ in 0..3 {
        let _ = l.spend(&txns).await.unwrap();
    }
    assert!(l.spend(&txns).await.is_err());
    let text = f.metrics.encode();
    assert!(
        text.contains("acme_ca_rate_limited_total{limit=\"new_orders_per_account\"} 4\n"),
        "{text}"
    );
}

#[tokio::test]
async fn retry_after_rounds_up_to_whole_seconds() {
    let f = fixture().await;
    // 3 per 10 s: 3333 ms per request.
    let l = f.limiter(&config_with(|c| {
        c.new_accounts_per_ip = RateConfig {
            count: 3,
            period: Duration::from_secs(10),
        }
    }));
    let txns = l.new_account_transactions("198.51.100.4".parse().unwrap());
    for _ in 0..3 {
        let _ = l.spend(&txns).await.unwrap();
    }
    let e = l.spend(&txns).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(4), "3.333 s rounds up to 4");
    assert!(
        e.detail.contains("new accounts from 198.51.100.4"),
        "{}",
        e.detail
    );
}

#[tokio::test]
async fn overrides_by_account_and_by_domain() {
    let f = fixture().await;
    let config = config_with(|c| {
        c.new_orders_per_account.count = 1;
        c.certificates_per_domain.count = 1;
        c.overrides = vec![
            config::OverrideConfig {
                limit: LimitName::NewOrdersPerAccount,
                account: Some("big".into()),
                domain: None,
                count: 3,
                period: Duration::from_secs(3600),
            },
            config::OverrideConfig {
                limit: LimitName::CertificatesPerDomain,
                account: None,
                domain: Some("Example.ORG".into()),
                count: 2,
                period: Duration::from_secs(3600),
            },
        ];
    });
    let l = f.limiter(&config);
    let small = l.new_order_transactions(&acct("small"));
    let _ = l.spend(&small).await.unwrap();
    assert!(l.spend(&small).await.is_err());
    let big = l.new_order_transactions(&acct("big"));
    for _ in 0..3 {
        let _ = l.spend(&big).await.unwrap();
    }
    let e = l.spend(&big).await.unwrap_err();
    assert!(e.detail.contains("3 per 1h"), "{}", e.detail);
    // The domain override: two certificates for example.org, one for
    // example.net (distinct name sets, so duplicates do not interfere).
    let a = acct("a");
    for (i, want) in [(0, true), (1, true), (2, false)] {
        let txns = l.certificate_transactions(&a, &dns(&[&format!("h{i}.example.org")]));
        assert_eq!(l.spend(&txns).await.is_ok(), want, "example.org #{i}");
    }
    let _ = l
        .spend(&l.certificate_transactions(&a, &dns(&["h0.example.net"])))
        .await
        .unwrap();
    let e = l
        .spend(&l.certificate_transactions(&a, &dns(&["h1.example.net"])))
        .await
        .unwrap_err();
    assert!(
        e.detail.contains("certificates_per_domain")
            && e.detail.contains("registered domain example.net"),
        "{}",
        e.detail
    );
}

#[tokio::test]
async fn registered_domain_grouping_in_buckets() {
    let f = fixture().await;
    let l = f.limiter(&config_with(|c| c.certificates_per_domain.count = 1));
    let a = acct("a");
    let spend = |names: &'static [&'static str]| {
        let txns = l.certificate_transactions(&a, &dns(names));
        let l = &l;
        async move { l.spend(&txns).await.is_ok() }
    };
    assert!(spend(&["a.example.co.uk"]).await);
    assert!(
        !spend(&["b.example.co.uk"]).await,
        "a.example.co.uk and b.example.co.uk share example.co.uk"
    );
    assert!(spend(&["a.github.io"]).await);
    assert!(
        spend(&["b.github.io"]).await,
        "github.io is a public suffix (private section): each site is its own"
    );
    // Two names under one registered domain spend it once.
    assert!(spend(&["x.example.com", "y.example.com"]).await);
    assert!(!spend(&["z.example.com"]).await);
}

#[tokio::test]
async fn duplicate_certificates_count_the_normalised_set() {
    let f = fixture().await;
    let l = f.limiter(&config_with(|c| {
        c.duplicate_certificates.count = 2;
        c.certificates_per_domain.count = 100;
    }));
    let a = acct("a");
    for names in [
        &["a.example.com", "b.example.com"][..],
        &["B.EXAMPLE.COM", "a.example.com."],
    ] {
        let _ = l
            .spend(&l.certificate_transactions(&a, &dns(names)))
            .await
            .unwrap();
    }
    let e = l
        .spend(&l.certificate_transactions(&a, &dns(&["b.example.com", "a.example.com"])))
        .await
        .unwrap_err();
    assert!(
        e.detail.contains("duplicate_certificates")
            && e.detail
                .contains("exactly the names a.example.com, b.example.com"),
        "{}",
        e.detail
    );
    // A different set is another bucket.
    let _ = l
        .spend(&l.certificate_transactions(&a, &dns(&["a.example.com"])))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_batch_is_all_or_nothing_and_refunds_give_back() {
    let f = fixture().await;
    let l = f.limiter(&config_with(|c| {
        c.certificates_per_domain.count = 1;
        c.duplicate_certificates.count = 5;
    }));
    let a = acct("a");
    let _ = l
        .spend(&l.certificate_transactions(&a, &dns(&["www.full.com"])))
        .await
        .unwrap();
    // full.com is used up: the order for both names spends nothing, not
    // even free.com's bucket.
    let both = l.certificate_transactions(&a, &dns(&["www.free.com", "www.full.com"]));
    let e = l.spend(&both).await.unwrap_err();
    assert!(e.detail.contains("full.com"), "{}", e.detail);
    let spent = l
        .spend(&l.certificate_transactions(&a, &dns(&["www.free.com"])))
        .await
        .unwrap();
    // free.com is used up now; a refund gives it back.
    let again = l.certificate_transactions(&a, &dns(&["api.free.com"]));
    assert!(l.spend(&again).await.is_err());
    l.refund(spent).await;
    let _ = l.spend(&again).await.unwrap();
    // A check reads and spends nothing.
    let other = l.certificate_transactions(&a, &dns(&["www.other.com"]));
    for _ in 0..3 {
        l.check(&other).await.unwrap();
    }
    let _ = l.spend(&other).await.unwrap();
    assert_eq!(
        l.check(&other).await.unwrap_err().kind,
        ErrorKind::RateLimited
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_on_one_key_pass_exactly_n() {
    let f = fixture().await;
    const N: u64 = 7;
    let l = Arc::new(f.limiter(&config_with(|c| {
        c.new_orders_per_account = RateConfig {
            count: N,
            period: Duration::from_secs(3600),
        }
    })));
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let txns = l.new_order_transactions(&acct("racer"));
            l.spend(&txns).await.map(drop)
        }));
    }
    let mut passed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => passed += 1,
            Err(e) => assert_eq!(e.kind, ErrorKind::RateLimited),
        }
    }
    assert_eq!(passed, N);
}

#[tokio::test]
async fn failed_validations_are_counted_and_checked() {
    let f = fixture().await;
    let l = f.limiter(&config_with(|c| {
        c.failed_validations = RateConfig {
            count: 2,
            period: Duration::from_secs(3600),
        }
    }));
    let authz = Authz {
        id: AuthzId("z".into()),
        account_id: acct("a"),
        identifier: Identifier::dns("bad.example.com"),
        wildcard: false,
        state: AuthzState::Invalid,
        expires: T0 + 100,
        token: "t".into(),
        offered: ChallengeType::ALL.to_vec(),
        attempt: None,
        created_at: T0,
    };
    let check = l.failed_validation_transaction(&acct("a"), &Identifier::dns("*.bad.example.com"));
    l.check(std::slice::from_ref(&check)).await.unwrap();
    // Three failures: the third finds the bucket empty and is absorbed.
    for _ in 0..3 {
        l.validation_failed(&authz).await;
    }
    let e = l.check(std::slice::from_ref(&check)).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(1800));
    assert!(
        e.detail
            .contains("failed validations of bad.example.com by account a"),
        "{}",
        e.detail
    );
    // Other hostnames and other accounts are unaffected.
    l.check(&[l.failed_validation_transaction(&acct("a"), &Identifier::dns("ok.example.com"))])
        .await
        .unwrap();
    l.check(&[l.failed_validation_transaction(&acct("b"), &Identifier::dns("bad.example.com"))])
        .await
        .unwrap();
    f.clock.advance(1800);
    l.check(std::slice::from_ref(&check)).await.unwrap();
}

#[tokio::test]
async fn pending_authorizations_have_a_ceiling() {
    let f = fixture().await;
    let l = f.limiter(&config_with(|c| c.pending_authorizations.count = 2));
    let account = crate::model::Account {
        id: acct("p"),
        status: crate::model::AccountStatus::Valid,
        jwk: "{}".into(),
        thumbprint: "tp".into(),
        contact: vec![],
        tos_agreed: true,
        created_at: T0,
    };
    f.store.create_account(&account, None).await.unwrap();
    for (i, expires) in [(0, T0 + 500), (1, T0 + 300)] {
        let authz = Authz {
            id: AuthzId(format!("pz{i}")),
            account_id: acct("p"),
            identifier: Identifier::dns(format!("h{i}.example.com")),
            wildcard: false,
            state: AuthzState::Pending,
            expires,
            token: "t".into(),
            offered: ChallengeType::ALL.to_vec(),
            attempt: None,
            created_at: T0,
        };
        l.check_pending_authorizations(&acct("p"), 1).await.unwrap();
        f.store.create_authz(&authz).await.unwrap();
    }
    let e = l
        .check_pending_authorizations(&acct("p"), 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(300), "the first expiry frees one");
    assert!(e.detail.contains("pending_authorizations"), "{}", e.detail);
    // Nothing added, nothing checked; an expired one no longer counts.
    l.check_pending_authorizations(&acct("p"), 0).await.unwrap();
    f.clock.advance(300);
    l.check_pending_authorizations(&acct("p"), 1).await.unwrap();
}

/// Says invalid to every challenge.
struct Failing;

impl crate::va::Validator for Failing {
    fn validate<'a>(
        &'a self,
        req: &'a crate::va::ValidationRequest,
    ) -> crate::va::ValidationFuture<'a> {
        let host = req.authz.identifier.value.clone();
        Box::pin(async move {
            crate::va::Outcome::Invalid {
                error: Error::new(ErrorKind::IncorrectResponse, format!("{host}: wrong")),
                records: serde_json::json!([]),
            }
        })
    }
}

/// A failure the VA records from its queue reaches the limiter through
/// its failure observer.
#[tokio::test]
async fn the_va_reports_queued_failures_to_the_limiter() {
    use crate::va::{Va, VaSettings};
    let f = fixture().await;
    let l = Arc::new(f.limiter(&config_with(|c| {
        c.failed_validations = RateConfig {
            count: 1,
            period: Duration::from_secs(3600),
        }
    })));
    let account = crate::model::Account {
        id: acct("v"),
        status: crate::model::AccountStatus::Valid,
        jwk: "{}".into(),
        thumbprint: "tv".into(),
        contact: vec![],
        tos_agreed: true,
        created_at: T0,
    };
    f.store.create_account(&account, None).await.unwrap();
    let authz = Authz {
        id: AuthzId("va1".into()),
        account_id: acct("v"),
        identifier: Identifier::dns("fails.example.com"),
        wildcard: false,
        state: AuthzState::Pending,
        expires: T0 + 3600,
        token: "t".into(),
        offered: ChallengeType::ALL.to_vec(),
        attempt: None,
        created_at: T0,
    };
    f.store.create_authz(&authz).await.unwrap();
    assert!(f
        .store
        .start_challenge(&authz.id, ChallengeType::Http01, T0, None)
        .await
        .unwrap());
    let va = Va::start(
        f.store.clone(),
        Arc::new(Failing),
        f.clock.clone(),
        VaSettings {
            inline: false,
            concurrency: 1,
            queue_size: 4,
            timeout: Duration::from_secs(30),
            random_delay: Duration::ZERO,
            valid_authz_lifetime: Duration::from_secs(3600),
            chaos: Arc::new(crate::chaos::Chaos::off()),
        },
        f.metrics.clone(),
    );
    va.observe_failures(l.clone());
    // The attempt is queued as a restart would queue it.
    let pending = f.store.authzs_processing().await.unwrap();
    va.resume(
        pending,
        None,
        |_| Some("ka".into()),
        |_| "https://ca.test/acct/v".into(),
    )
    .await
    .unwrap();
    let check =
        [l.failed_validation_transaction(&acct("v"), &Identifier::dns("fails.example.com"))];
    // Wait for the outcome to be recorded and counted (a condition, not a
    // duration: the loop ends as soon as the bucket is spent).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while l.check(&check).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the failed validation was never counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a = f.store.authz_by_id(&authz.id).await.unwrap().unwrap();
    assert_eq!(a.state, AuthzState::Invalid);
}

#[tokio::test]
async fn renewals_are_exempt_from_certificates_per_domain_only() {
    let f = fixture().await;
    let l = f.limiter(&config_with(|c| {
        c.certificates_per_domain.count = 1;
        c.duplicate_certificates.count = 2;
    }));
    let a = acct("a");
    let names = dns(&["www.renew.com", "renew.com"]);
    let first = l.issuance_transactions(&a, &names).await.unwrap();
    assert_eq!(first.len(), 2, "per domain and duplicate");
    let _ = l.spend(&first).await.unwrap();
    l.issued(&names, T0 + 90 * 86400).await;
    // The same set, in another order and case: a renewal.
    let again = dns(&["RENEW.com", "www.renew.com"]);
    let txns = l.issuance_transactions(&a, &again).await.unwrap();
    assert!(txns
        .iter()
        .all(|t| t.limit == LimitName::DuplicateCertificates));
    let _ = l.spend(&txns).await.unwrap();
    let e = l.spend(&txns).await.unwrap_err();
    assert!(e.detail.contains("duplicate_certificates"), "{}", e.detail);
    // Another set under the domain is no renewal.
    let other = l
        .issuance_transactions(&a, &dns(&["api.renew.com"]))
        .await
        .unwrap();
    assert!(l
        .spend(&other)
        .await
        .unwrap_err()
        .detail
        .contains("certificates_per_domain"));
    // Once the certificate has expired, the set is no renewal any more.
    f.clock.advance(90 * 86400 + 1);
    let txns = l.issuance_transactions(&a, &names).await.unwrap();
    assert!(txns
        .iter()
        .any(|t| t.limit == LimitName::CertificatesPerDomain));
}
