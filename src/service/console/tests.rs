//! The console through the service router: sessions, sign-in and
//! sign-out, CSRF refusals, roles enforced whatever the page offers, and
//! the pages of the seed's flow.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};

use crate::model::service::{Caller, Role};
use crate::service::config::TokenConfig;
use crate::service::test_harness::{
    harness as harness_with, Harness as H, ADMIN, AGENT, ALICE, BOB, KEK, R,
};
use crate::service::IssueInput;
use crate::store::shared::{
    GrantHold, GrantLimits, SessionLimits, SharedStore, StoredDownload, StoredFlash, StoredGrant,
    StoredSession,
};
use crate::store::StoreFuture;

impl R {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of `Set-Cookie: name=…`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.split(';')
                    .next()
                    .and_then(|kv| kv.split_once('='))
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_owned())
            })
    }
}

/// A browser: its session cookie and CSRF token once signed in.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn harness() -> H {
    harness_with(|_| {}).await
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                super::html::query_value(k),
                super::html::query_value(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl H {
    async fn get(&self, path: &str, cookie: Option<&str>) -> R {
        let mut b = Request::builder().method("GET").uri(path);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> R {
        let mut b = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::from(form_body(fields))).unwrap())
            .await
    }

    /// A page as `b` sees it.
    async fn view(&self, b: &Browser, path: &str) -> R {
        self.get(path, Some(&b.cookie)).await
    }

    /// Posts a form as `b` would: its session cookie and CSRF token, then
    /// `fields`.
    async fn submit(&self, b: &Browser, path: &str, fields: &[(&str, &str)]) -> R {
        let mut all = vec![("csrf", b.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, Some(&b.cookie), &all).await
    }

    /// The sign-in form as a browser loads it: its pre-session cookie
    /// (`name=value`) and the double-submit token the form carries.
    async fn signin_form(&self) -> (String, String) {
        let form = self.get("/ui/signin", None).await;
        assert_eq!(form.status, StatusCode::OK);
        let pre = form.cookie(super::session::SIGNIN_COOKIE).unwrap();
        assert!(form.text().contains(&format!("value=\"{pre}\"")));
        (format!("{}={pre}", super::session::SIGNIN_COOKIE), pre)
    }

    /// Posts the sign-in form: `csrf` and `token`, sending `cookie`.
    async fn post_signin(&self, cookie: Option<&str>, csrf: &str, token: &str) -> R {
        self.post("/ui/signin", cookie, &[("csrf", csrf), ("token", token)])
            .await
    }

    /// Signs in with `token` as a browser would: the form, then its POST.
    async fn sign_in(&self, token: &str) -> Browser {
        let (pre_cookie, pre) = self.signin_form().await;
        let r = self.post_signin(Some(&pre_cookie), &pre, token).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        let id = r.cookie(super::session::COOKIE).expect("a session cookie");
        let cookie = format!("{}={id}", super::session::COOKIE);
        let page = self.get("/ui/", Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let text = page.text();
        let at = text.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = text[at..].split('"').next().unwrap().to_owned();
        Browser { cookie, csrf }
    }

    /// A certificate as the service has it (read as the admin).
    async fn cert_as_root(&self, serial: &str) -> crate::model::service::CertRow {
        self.service.certificate(&root(), serial).await.unwrap()
    }

    /// A request's status as the service has it (read as the admin).
    async fn request_status(&self, id: &str) -> &'static str {
        self.service
            .request_for(&root(), id)
            .await
            .unwrap()
            .status
            .as_str()
    }

    /// A certificate issued at once to alice for `name` (entity e1) on
    /// `profile`; its serial.
    async fn alice_cert(&self, profile: &str, name: &str) -> String {
        self.issue_as(
            "alice",
            Role::Requester,
            profile,
            input("e1", &[name], None),
        )
        .await
        .serial
        .expect("issued at once")
    }

    async fn issue_as(
        &self,
        name: &str,
        role: Role,
        profile: &str,
        input: IssueInput,
    ) -> crate::model::service::Request {
        let caller = Caller {
            name: name.into(),
            role,
        };
        self.service
            .issue(
                &caller,
                IssueInput {
                    profile: profile.into(),
                    ..input
                },
            )
            .await
            .unwrap()
    }
}

/// The admin token's caller.
fn root() -> Caller {
    Caller {
        name: "root".into(),
        role: Role::Admin,
    }
}

fn input(entity: &str, names: &[&str], cn: Option<&str>) -> IssueInput {
    IssueInput {
        entity_id: entity.into(),
        profile: String::new(),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        ip_addresses: vec![],
        common_name: cn.map(str::to_owned),
        key_type: "ec".into(),
        key_size: 256,
        ttl: None,
        auto_renew: false,
    }
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_sign_in() {
    let h = harness().await;
    for path in [
        "/ui/",
        "/ui/certs",
        "/ui/certs/01",
        "/ui/issue/server",
        "/ui/requests",
        "/ui/upload",
        "/ui/recoveries",
    ] {
        let r = h.get(path, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.location(), "/ui/signin", "{path}");
        // An unknown or forged session id too.
        let r = h
            .get(path, Some(&format!("{}=forged", super::session::COOKIE)))
            .await;
        assert_eq!(r.location(), "/ui/signin", "{path}");
    }
    let r = h
        .post("/ui/certs/01/revoke", None, &[("reason", "keyCompromise")])
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/ui/signin")
    );
    // The sign-in page itself, with the strict policy and the pre-session
    // cookie's flags.
    let r = h.get("/ui/signin", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let csp = r
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    let set = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    // No script anywhere, no inline style.
    assert!(!r.text().contains("<script") && !r.text().contains("style="));
    let css = h.get("/ui/static/console.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

#[tokio::test]
async fn sign_in_checks_token_and_form_then_sign_out_ends_the_session() {
    let h = harness().await;
    let (pre_cookie, pre) = h.signin_form().await;
    // A wrong token: 401, no session.
    let r = h
        .post_signin(Some(&pre_cookie), &pre, "not-a-token-000000000")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.cookie(super::session::COOKIE).is_none());
    assert!(r.text().contains("the token is not valid"));
    // A sign-in posted from elsewhere (no pre-session cookie, or another
    // value): refused before the token is looked at.
    let r = h.post_signin(None, &pre, ALICE).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h.post_signin(Some(&pre_cookie), "other", ALICE).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.cookie(super::session::COOKIE).is_none());
    // The right one: a session cookie with every flag; the token is not
    // in it, nor in the page.
    let r = h.post_signin(Some(&pre_cookie), &pre, ALICE).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/ui/"));
    let set: Vec<&str> = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-acme-ca-console="))
        .unwrap();
    for flag in [
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=28800",
    ] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(!session.contains(ALICE));
    let b = h.sign_in(ALICE).await;
    let page = h.view(&b, "/ui/").await;
    assert!(page.text().contains("alice (requester)"));
    assert!(!page.text().contains(ALICE));
    // Signing in again from the same browser ends its earlier session.
    let first = h.sign_in(ALICE).await;
    let (pre_cookie, pre) = h.signin_form().await;
    let both = format!("{pre_cookie}; {}", first.cookie);
    let r = h.post_signin(Some(&both), &pre, ALICE).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(h.view(&first, "/ui/").await.location(), "/ui/signin");
    // Sign-out needs the CSRF token too.
    let r = h.post("/ui/signout", Some(&b.cookie), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(h.view(&b, "/ui/").await.status, StatusCode::OK);
    let r = h.submit(&b, "/ui/signout", &[]).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/ui/signin")
    );
    assert!(r
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = h.view(&b, "/ui/").await;
    assert_eq!(
        r.location(),
        "/ui/signin",
        "the session is gone on the server"
    );
}

#[tokio::test]
async fn forms_without_this_sessions_csrf_token_are_refused() {
    let h = harness().await;
    let serial = h.alice_cert("server", "a.example.com").await;
    let agent = h.sign_in(AGENT).await;
    let other = h.sign_in(AGENT).await;
    assert_ne!(agent.csrf, other.csrf, "each session has its own token");
    let path = format!("/ui/certs/{serial}/revoke");
    for fields in [
        vec![("reason", "keyCompromise")],
        vec![("reason", "keyCompromise"), ("csrf", "forged-token")],
        vec![("reason", "keyCompromise"), ("csrf", "")],
        // Another session's token.
        vec![("reason", "keyCompromise"), ("csrf", other.csrf.as_str())],
    ] {
        let r = h.post(&path, Some(&agent.cookie), &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{fields:?}");
        assert!(r.text().contains("security token"));
    }
    assert!(
        h.cert_as_root(&serial).await.revoked.is_none(),
        "nothing was done"
    );
    // A multipart form (CSR upload) is checked the same way.
    let alice = h.sign_in(ALICE).await;
    let body =
        "--XyZ\r\nContent-Disposition: form-data; name=\"profile\"\r\n\r\nserver\r\n--XyZ--\r\n";
    let req = Request::builder()
        .method("POST")
        .uri("/ui/upload")
        .header(header::COOKIE, &alice.cookie)
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::FORBIDDEN);
    // With the token: done.
    let r = h
        .submit(&agent, &path, &[("reason", "keyCompromise")])
        .await;
    assert_eq!(
        (r.status, r.location()),
        (
            StatusCode::SEE_OTHER,
            format!("/ui/certs/{serial}").as_str()
        )
    );
    let c = h.cert_as_root(&serial).await;
    assert_eq!(c.revoked.unwrap().reason.code(), 1);
    let page = h.view(&agent, &format!("/ui/certs/{serial}")).await;
    assert!(page.text().contains("Revoked."), "the flash");
    assert!(page.text().contains("revoked</span> at") && page.text().contains("(keyCompromise)"));
}

/// Every state-changing form route checks, in this order: a session
/// (else the sign-in redirect, whatever the body), a readable form (else
/// the 400 page), this session's CSRF token (else 403); nothing is done
/// before all three pass.
#[tokio::test]
async fn every_form_route_checks_session_then_form_then_csrf() {
    let h = harness().await;
    let serial = h.alice_cert("server", "a.example.com").await;
    let agent = h.sign_in(AGENT).await;
    let routes = [
        format!("/ui/certs/{serial}/download-token"),
        format!("/ui/certs/{serial}/download"),
        format!("/ui/certs/{serial}/renew"),
        format!("/ui/certs/{serial}/revoke"),
        format!("/ui/certs/{serial}/recovery"),
        "/ui/issue/server".to_owned(),
        "/ui/requests/r1/approve".to_owned(),
        "/ui/requests/r1/reject".to_owned(),
        "/ui/recoveries/k1/approve".to_owned(),
        "/ui/recoveries/k1/reject".to_owned(),
    ];
    let json_post = |path: &str, cookie: Option<&str>| {
        let mut b = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        b.body(Body::from("{}")).unwrap()
    };
    for path in &routes {
        let r = h.send(json_post(path, None)).await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/ui/signin"),
            "{path}: no session"
        );
        let r = h.send(json_post(path, Some(&agent.cookie))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: not a form");
        assert!(r.text().contains("Bad request"), "{path}");
        let r = h
            .post(
                path,
                Some(&agent.cookie),
                &[("csrf", "forged"), ("reason", "x")],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: forged token");
        assert!(r.text().contains("security token"), "{path}");
    }
    assert!(
        h.cert_as_root(&serial).await.revoked.is_none(),
        "nothing was done"
    );
}

#[tokio::test]
async fn requesters_cannot_reach_agent_actions_by_crafting_requests() {
    let h = harness().await;
    let pending = h
        .issue_as(
            "bob",
            Role::Requester,
            "device",
            input("thing-1", &[], Some("thing-1")),
        )
        .await;
    let serial = h.alice_cert("server", "a.example.com").await;
    let alice = h.sign_in(ALICE).await;
    // The pages do not offer them...
    let page = h.view(&alice, &format!("/ui/certs/{serial}")).await;
    assert!(
        !page.text().contains("/revoke"),
        "no revoke form for a requester"
    );
    // ...and crafted posts with a valid CSRF token are refused by the
    // service's role checks.
    let r = h
        .submit(
            &alice,
            &format!("/ui/certs/{serial}/revoke"),
            &[("reason", "keyCompromise")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r
        .text()
        .contains("a requester token may not revoke certificates"));
    let r = h
        .submit(&alice, &format!("/ui/requests/{}/approve", pending.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .submit(
            &alice,
            &format!("/ui/requests/{}/reject", pending.id),
            &[("reason", "no")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.cert_as_root(&serial).await.revoked.is_none());
    assert_eq!(h.request_status(&pending.id).await, "pending");
    // Bob's pending request and Alice's certificate are invisible to the
    // other requester.
    let bob = h.sign_in(BOB).await;
    assert_eq!(
        h.view(&bob, &format!("/ui/certs/{serial}")).await.status,
        StatusCode::NOT_FOUND
    );
    let list = h.view(&bob, "/ui/certs").await;
    assert!(!list.text().contains(&serial));
    let reqs = h.view(&alice, "/ui/requests").await;
    assert!(!reqs.text().contains(&pending.id));
    // An agent approves it through the console.
    let ann = h.sign_in(AGENT).await;
    let queue = h.view(&ann, "/ui/requests").await;
    assert!(queue
        .text()
        .contains(&format!("/ui/requests/{}/approve", pending.id)));
    let r = h
        .submit(&ann, &format!("/ui/requests/{}/approve", pending.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(h.request_status(&pending.id).await, "issued");
}

#[tokio::test]
async fn issue_form_shows_errors_next_to_their_field_then_issues_and_downloads() {
    let h = harness().await;
    let alice = h.sign_in(ALICE).await;
    let form = h.view(&alice, "/ui/issue/server").await;
    assert_eq!(form.status, StatusCode::OK);
    let t = form.text();
    assert!(t.contains("<label for=\"ip_addresses\">") && t.contains("id=\"ip_addresses\""));
    assert!(t.contains("value=\"ec-256\"") && t.contains("value=\"rsa-2048\""));
    let base = [
        ("entity_id", "fde3263e"),
        ("names", "backend-1.example.com"),
        ("key", "ec-256"),
    ];
    let mut bad_ip = base.to_vec();
    bad_ip.push(("ip_addresses", "192.168.100.400"));
    let r = h.submit(&alice, "/ui/issue/server", &bad_ip).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let t = r.text();
    assert!(t.contains("id=\"ip_addresses-error\""), "{t}");
    assert!(t.contains("is not an IP address"));
    assert!(t.contains("192.168.100.400"), "the typed value is kept");
    let mut bad_ttl = base.to_vec();
    bad_ttl.push(("ttl", "9999d"));
    let r = h.submit(&alice, "/ui/issue/server", &bad_ttl).await;
    assert!(r.text().contains("id=\"ttl-error\""));
    let mut good = base.to_vec();
    good.push(("ip_addresses", "192.168.100.4"));
    let r = h.submit(&alice, "/ui/issue/server", &good).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let detail_path = r.location().to_owned();
    assert!(detail_path.starts_with("/ui/certs/"));
    let serial = detail_path.trim_start_matches("/ui/certs/").to_owned();
    let page = h.view(&alice, &detail_path).await;
    let t = page.text();
    assert!(t.contains("192.168.100.4") && t.contains("backend-1.example.com"));
    assert!(t.contains("The renewal window opens at") && t.contains("id=\"renew\" disabled"));
    // Download: nothing ready yet; request, then download once.
    let token_path = format!("{detail_path}/download-token");
    let download_path = format!("{detail_path}/download");
    let r = h.submit(&alice, &download_path, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = h.submit(&alice, &token_path, &[("format", "zip")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = h.view(&alice, &detail_path).await;
    assert!(page.text().contains("id=\"download\""));
    let r = h.submit(&alice, &download_path, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/zip");
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION].to_str().unwrap(),
        format!("attachment; filename=\"{serial}.zip\"")
    );
    assert_eq!(&r.body[..2], b"PK");
    let again = h.submit(&alice, &download_path, &[]).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "used once");
    // PKCS#12 needs a password.
    let r = h.submit(&alice, &token_path, &[("format", "p12")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h
        .view(&alice, &detail_path)
        .await
        .text()
        .contains("needs a password"));
    let r = h
        .submit(
            &alice,
            &token_path,
            &[("format", "p12"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h
        .view(&alice, &detail_path)
        .await
        .text()
        .contains("A PKCS#12 file download is ready"));
    let r = h.submit(&alice, &download_path, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/x-pkcs12");
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION].to_str().unwrap(),
        format!("attachment; filename=\"{serial}.p12\"")
    );
}

#[tokio::test]
async fn pages_escape_what_they_show() {
    let h = harness().await;
    let alice = h.sign_in(ALICE).await;
    let r = h
        .view(&alice, "/ui/certs?common_name=%3Cscript%3Ex%3C%2Fscript%3E")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text().contains("<script>x"));
    assert!(r.text().contains("&lt;script&gt;x"));
    let r = h.view(&alice, "/ui/certs?expiring_before=yesterday").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"expiring_before-error\""));
}

#[tokio::test]
async fn dashboard_counts_and_charts() {
    let h = harness().await;
    for i in 0..3 {
        h.alice_cert("server", &format!("h{i}.example.com")).await;
    }
    // A delivery that failed, its error from the far side (escaped).
    h.service
        .store
        .insert_deliveries(&[crate::model::service::Delivery {
            id: "d1".into(),
            url: "https://hooks.example.com/x".into(),
            event_type: "certificate.revoked".into(),
            body: "{}".into(),
            status: "failed".into(),
            attempts: 8,
            next_attempt_at: 0,
            last_error: Some("HTTP 500 <b>oops</b>".into()),
            created_at: 0,
        }])
        .await
        .unwrap();
    let root = h.sign_in(ADMIN).await;
    let r = h.view(&root, "/ui/").await;
    let t = r.text();
    assert!(
        t.contains("<span class=\"n\" id=\"count-valid\">3</span>"),
        "{t}"
    );
    assert!(t.contains("Certificates issued per day, last 30 days (3 in all"));
    assert!(t.contains("Certificates expiring per day, next 30 days (0 in all"));
    assert!(t.contains("1 of 1 failed deliveries"), "{t}");
    assert!(t.contains("HTTP 500 &lt;b&gt;oops&lt;/b&gt;") && t.contains("certificate.revoked"));
    let bob = h.sign_in(BOB).await;
    let t = h.view(&bob, "/ui/").await.text();
    assert!(
        t.contains("<span class=\"n\" id=\"count-valid\">0</span>"),
        "requesters count their own"
    );
    assert!(t.contains("Only admins see webhook deliveries."));
}

fn csr_pem(name: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// A multipart/form-data body of `fields`, and `file` as the "file" part.
fn multipart(fields: &[(&str, &str)], file: Option<&str>) -> (String, String) {
    let boundary = "console-test-boundary-0123";
    let mut b = String::new();
    for (k, v) in fields {
        b.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    if let Some(f) = file {
        b.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"csrs.pem\"\r\n\
             Content-Type: application/x-pem-file\r\n\r\n{f}\r\n"
        ));
    }
    b.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), b)
}

#[tokio::test]
async fn csr_upload_pasted_and_as_a_file_shows_each_csr() {
    let h = harness().await;
    let alice = h.sign_in(ALICE).await;
    let form = h.view(&alice, "/ui/upload").await;
    assert!(form.text().contains("enctype=\"multipart/form-data\""));
    let upload = |fields: Vec<(&'static str, String)>, file: Option<String>| {
        let cookie = alice.cookie.clone();
        let h = &h;
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (ctype, body) = multipart(&f, file.as_deref());
            let req = Request::builder()
                .method("POST")
                .uri("/ui/upload")
                .header(header::COOKIE, cookie)
                .header(header::CONTENT_TYPE, ctype)
                .body(Body::from(body))
                .unwrap();
            h.send(req).await
        }
    };
    let base = |pem: &str| {
        vec![
            ("csrf", alice.csrf.clone()),
            ("profile", "server".to_owned()),
            ("entity_id", "fleet-7".to_owned()),
            ("name", "November".to_owned()),
            ("pem", pem.to_owned()),
        ]
    };
    // One pasted, one in the file: one batch of two.
    let r = upload(
        base(&csr_pem("c1.example.com")),
        Some(csr_pem("c2.example.com")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let batch = r.location().to_owned();
    assert!(batch.starts_with("/ui/batches/"));
    let page = h.view(&alice, &batch).await;
    let t = page.text();
    assert!(t.contains("Uploaded 2 CSRs"), "{t}");
    assert!(
        t.contains("2: 2 issued, 0 pending, 0 rejected, 0 failed"),
        "{t}"
    );
    assert_eq!(t.matches("<td>issued</td>").count(), 2);
    let zip = h.view(&alice, &format!("{batch}/download")).await;
    assert_eq!(zip.status, StatusCode::OK);
    assert_eq!(&zip.body[..2], b"PK");
    // A bad CSR: refused with its position, shown at the field, nothing
    // recorded; the pasted text is kept.
    let bad = format!(
        "{}-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        csr_pem("c3.example.com")
    );
    let r = upload(base(&bad), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let t = r.text();
    assert!(t.contains("id=\"pem-error\""), "{t}");
    assert!(
        t.contains("CSR 2 of the upload") || t.contains("not valid PEM"),
        "{t}"
    );
    // Bob does not see Alice's batch.
    let bob = h.sign_in(BOB).await;
    assert_eq!(h.view(&bob, &batch).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn key_recovery_needs_two_agents_then_the_requester_downloads_the_key() {
    let h = harness().await;
    let serial = h.alice_cert("server", "k.example.com").await;
    let alice = h.sign_in(ALICE).await;
    let r = h
        .submit(&alice, &format!("/ui/certs/{serial}/recovery"), &[])
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/ui/recoveries")
    );
    let page = h.view(&alice, "/ui/recoveries").await.text();
    let at = page.find("Key recovery ").unwrap() + 13;
    let id = page[at..].split(' ').next().unwrap().to_owned();
    let approve = format!("/ui/recoveries/{id}/approve");
    assert!(page.contains("0 of 2"), "{page}");
    assert!(!page.contains(&approve), "requesters do not approve");
    // The requester cannot approve by crafting the post.
    let r = h.submit(&alice, &approve, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let ann = h.sign_in(AGENT).await;
    let page = h.view(&ann, "/ui/recoveries").await.text();
    assert!(page.contains(&approve));
    let r = h.submit(&ann, &approve, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = h.view(&ann, "/ui/recoveries").await.text();
    assert!(page.contains("1 of 2: ann"), "{page}");
    assert!(!page.contains(&approve), "ann approved already");
    // Twice by the same agent: refused, with the reason shown.
    let r = h.submit(&ann, &approve, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h
        .view(&ann, "/ui/recoveries")
        .await
        .text()
        .contains("ann already approved"));
    let root = h.sign_in(ADMIN).await;
    let r = h.submit(&root, &approve, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Approved: the requester asks for the key download from the list.
    let page = h.view(&alice, "/ui/recoveries").await.text();
    assert!(
        page.contains("2 of 2: ann, root") && page.contains("Request the key download"),
        "{page}"
    );
    let r = h
        .submit(
            &alice,
            &format!("/ui/certs/{serial}/download-token"),
            &[("recovery", &id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h
        .view(&alice, &format!("/ui/certs/{serial}"))
        .await
        .text()
        .contains("zip with the recovered key"));
    let r = h
        .submit(&alice, &format!("/ui/certs/{serial}/download"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let page = h
        .view(&alice, "/ui/recoveries?status=completed")
        .await
        .text();
    assert!(page.contains(&id), "the recovery is completed");
}

#[tokio::test]
async fn renew_inside_the_window_moves_to_the_new_certificate() {
    let h = harness_with(|c| {
        let short = crate::service::config::ServiceProfileConfig {
            validity: std::time::Duration::from_secs(7200),
            renew_before: std::time::Duration::from_secs(7199),
            extended_key_usages: vec!["serverAuth".into()],
            ..Default::default()
        };
        c.service.profiles.insert("short".into(), short);
    })
    .await;
    let old = h.alice_cert("short", "r.example.com").await;
    let alice = h.sign_in(ALICE).await;
    let page = h.view(&alice, &format!("/ui/certs/{old}")).await;
    assert!(page
        .text()
        .contains("<button type=\"submit\" id=\"renew\">Renew</button>"));
    let r = h
        .submit(&alice, &format!("/ui/certs/{old}/renew"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let new_path = r.location().to_owned();
    assert_ne!(new_path, format!("/ui/certs/{old}"));
    let page = h.view(&alice, &new_path).await.text();
    assert!(
        page.contains(&format!("Renewed: this certificate replaces {old}.")),
        "{page}"
    );
    let page = h.view(&alice, &format!("/ui/certs/{old}")).await.text();
    assert!(
        page.contains("(superseded)") && page.contains("Renewed by"),
        "{page}"
    );
    assert!(page.contains("id=\"renew\" disabled"), "{page}");
}

#[tokio::test]
async fn console_can_be_turned_off() {
    let h = harness_with(|c| c.service.console.enabled = false).await;
    for path in ["/ui/", "/ui/signin", "/ui/static/console.css"] {
        let r = h.get(path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/problem+json");
    }
}

#[test]
fn console_settings_are_checked_at_load() {
    let mut c = crate::service::config::ServiceConfig {
        enabled: true,
        kek: Some(KEK.into()),
        tokens: vec![TokenConfig {
            name: "root".into(),
            token: ADMIN.into(),
            role: Role::Admin,
        }],
        ..Default::default()
    };
    assert_eq!(c.validate(), Ok(()));
    let d = std::time::Duration::from_secs;
    for (lifetime, idle, max, field) in [
        (d(30), d(30), 10, "session_lifetime"),
        (d(8 * 86400), d(60), 10, "session_lifetime"),
        (d(3600), d(7200), 10, "session_idle"),
        (d(3600), d(10), 10, "session_idle"),
        (d(3600), d(600), 0, "max_sessions"),
    ] {
        c.console.session_lifetime = lifetime;
        c.console.session_idle = idle;
        c.console.max_sessions = max;
        let e = c.validate().unwrap_err();
        assert!(e.contains(&format!("service.console.{field}")), "{e}");
    }
}

/// A second instance of the service on the same database (the harness's
/// store and shared store), with its own console and router: what another
/// process behind the load balancer is.
fn another_instance(h: &H, shared: Arc<dyn SharedStore>) -> axum::Router {
    let s = &h.service;
    let other = crate::service::Service::new(
        s.ra.clone(),
        s.metrics.clone(),
        s.store.clone(),
        shared,
        s.clock.clone(),
        s.config.clone(),
    )
    .unwrap();
    crate::service::http::router(Arc::new(other))
}

#[tokio::test]
async fn a_session_made_on_one_instance_works_on_another() {
    let mut h = harness().await;
    let a = h.router.clone();
    let b = another_instance(&h, h.service.shared.clone());
    let alice = h.sign_in(ALICE).await;
    // B knows the browser: same caller, same CSRF token.
    h.router = b.clone();
    let page = h.view(&alice, "/ui/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains(&format!("value=\"{}\"", alice.csrf)));
    // A form posted at B with the token from A's page; its message is
    // shown by A, once.
    let r = h
        .submit(
            &alice,
            "/ui/issue/server",
            &[
                ("entity_id", "fleet"),
                ("names", "shared.example.com"),
                ("key", "ec-256"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let detail = r.location().to_owned();
    h.router = a.clone();
    assert!(h
        .view(&alice, &detail)
        .await
        .text()
        .contains("Issued certificate"));
    h.router = b.clone();
    assert!(!h
        .view(&alice, &detail)
        .await
        .text()
        .contains("Issued certificate"));
    // A download asked for at A is used once, at B.
    h.router = a.clone();
    let r = h
        .submit(
            &alice,
            &format!("{detail}/download-token"),
            &[("format", "zip")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    h.router = b.clone();
    let r = h.submit(&alice, &format!("{detail}/download"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(&r.body[..2], b"PK");
    h.router = a.clone();
    let r = h.submit(&alice, &format!("{detail}/download"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "used once");
    // Signed out at B: signed out at A.
    h.router = b;
    let r = h.submit(&alice, "/ui/signout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    h.router = a;
    let r = h.view(&alice, "/ui/").await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/ui/signin")
    );
}

/// A shared store whose database is lost: every call fails as PostgreSQL's
/// store does then (ErrorKind::Unavailable, retry after 3 s).
struct Lost;

fn lost<T: Send + 'static>() -> crate::store::StoreFuture<'static, T> {
    Box::pin(async {
        Err(crate::error::Error::unavailable(
            "database: connection refused",
            3,
        ))
    })
}

impl SharedStore for Lost {
    fn shared_secret<'a>(&'a self, _: &'a str, _: &'a [u8]) -> StoreFuture<'a, Vec<u8>> {
        lost()
    }
    fn spend_nonce<'a>(&'a self, _: &'a [u8], _: i64) -> StoreFuture<'a, bool> {
        lost()
    }
    fn spend_nonce_reading_account<'a>(
        &'a self,
        _: &'a [u8],
        _: i64,
        _: &'a crate::model::AccountId,
        _: Option<&'a crate::store::shared::Lookup>,
    ) -> StoreFuture<'a, crate::store::shared::NonceSpent> {
        lost()
    }
    fn prune_nonces(&self, _: i64) -> StoreFuture<'_, u64> {
        lost()
    }
    fn ocsp_responder<'a>(
        &'a self,
        _: &'a str,
    ) -> StoreFuture<'a, Option<crate::store::shared::StoredResponder>> {
        lost()
    }
    fn replace_ocsp_responder<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a [u8]>,
        _: &'a crate::store::shared::StoredResponder,
    ) -> StoreFuture<'a, bool> {
        lost()
    }
    fn take_job<'a>(&'a self, _: &'a str, _: &'a str, _: i64, _: i64) -> StoreFuture<'a, bool> {
        lost()
    }
    fn release_job<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
        lost()
    }
    fn set_ari_override<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
        lost()
    }
    fn ari_override<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<String>> {
        lost()
    }
    fn hold_grant<'a>(
        &'a self,
        _: &'a [u8],
        _: &'a StoredGrant,
        _: i64,
        _: GrantLimits,
    ) -> StoreFuture<'a, GrantHold> {
        lost()
    }
    fn take_grant<'a>(&'a self, _: &'a [u8], _: i64) -> StoreFuture<'a, Option<StoredGrant>> {
        lost()
    }
    fn peek_grant<'a>(&'a self, _: &'a [u8], _: i64) -> StoreFuture<'a, Option<StoredGrant>> {
        lost()
    }
    fn revocation_epoch(&self) -> StoreFuture<'_, i64> {
        lost()
    }
    fn next_crl_number<'a>(&'a self, _: &'a str, _: i64) -> StoreFuture<'a, i64> {
        lost()
    }
    fn create_session<'a>(
        &'a self,
        _: &'a [u8],
        _: &'a Caller,
        _: &'a str,
        _: i64,
        _: SessionLimits,
    ) -> StoreFuture<'a, bool> {
        lost()
    }
    fn session<'a>(
        &'a self,
        _: &'a [u8],
        _: i64,
        _: SessionLimits,
    ) -> StoreFuture<'a, Option<StoredSession>> {
        lost()
    }
    fn set_session_flash<'a>(&'a self, _: &'a [u8], _: &'a StoredFlash) -> StoreFuture<'a, ()> {
        lost()
    }
    fn add_session_download<'a>(
        &'a self,
        _: &'a [u8],
        _: &'a StoredDownload,
        _: i64,
        _: u64,
    ) -> StoreFuture<'a, bool> {
        lost()
    }
    fn take_session_download<'a>(
        &'a self,
        _: &'a [u8],
        _: &'a str,
        _: i64,
    ) -> StoreFuture<'a, Option<StoredDownload>> {
        lost()
    }
    fn remove_session<'a>(&'a self, _: &'a [u8]) -> StoreFuture<'a, ()> {
        lost()
    }
}

#[tokio::test]
async fn a_lost_database_answers_503_with_retry_after() {
    let mut h = harness().await;
    let alice = h.sign_in(ALICE).await;
    let (pre_cookie, pre) = h.signin_form().await;
    h.router = another_instance(&h, Arc::new(Lost));
    let unavailable = |r: &R| {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert_eq!(r.headers[header::RETRY_AFTER], "3");
        assert_eq!(r.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let t = r.text();
        assert!(t.contains("database is unavailable"), "{t}");
        assert!(
            !t.contains("connection refused"),
            "the cause stays in the log"
        );
    };
    // A page, a form, signing in and out: none redirects to sign-in as if
    // the session were gone.
    unavailable(&h.view(&alice, "/ui/").await);
    unavailable(&h.view(&alice, "/ui/certs").await);
    unavailable(&h.submit(&alice, "/ui/signout", &[]).await);
    unavailable(&h.post_signin(Some(&pre_cookie), &pre, ALICE).await);
}
