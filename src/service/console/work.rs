//! Pages that make or decide work: the issue form of each profile, the
//! request queue (approve or reject), CSR batch upload and its per-CSR
//! results, and key recoveries with their approvals.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use super::html::{self, esc, query_value, Flash};
use super::Signed;
use crate::clock::rfc3339;
use crate::service::config::{Approval, ServiceProfileConfig};
use crate::service::types::{
    RecoveryStatus, Request, RequestFilter, RequestParams, RequestStatus, Role,
};
use crate::service::{IssueInput, Service};

/// Requests or recoveries a list page shows.
const PAGE: u32 = 25;
/// Largest PEM text a CSR upload takes (the body limit is 1 MiB too).
const MAX_UPLOAD_PEM: usize = 512 * 1024;

type FormResult = Result<Form<Vec<(String, String)>>, FormRejection>;

fn may_request(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Requester)
}

fn may_decide(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Agent)
}

fn human_secs(s: u64) -> String {
    if s > 0 && s.is_multiple_of(86_400) {
        format!("{} days", s / 86_400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("{} hours", s / 3600)
    } else {
        format!("{s} seconds")
    }
}

// ---------------------------------------------------------------------------
// issue
// ---------------------------------------------------------------------------

pub async fn profiles(State(s): State<Arc<Service>>, signed: Signed) -> Response {
    let mut rows = Vec::new();
    for (name, p) in &s.config.profiles {
        rows.push(vec![
            format!(
                "<a href=\"/ui/issue/{}\">{}</a>",
                esc(&query_value(name)),
                esc(name)
            ),
            esc(&p.description),
            match p.approval {
                Approval::Auto => "issued at once".to_owned(),
                Approval::Manual => "an agent approves".to_owned(),
            },
            esc(&p.required.join(", ")),
            human_secs(p.validity.as_secs()),
        ]);
    }
    let mut body = String::new();
    if !may_request(signed.caller().role) {
        body.push_str("<p>Your role does not request certificates; these are the profiles requesters use.</p>");
    }
    body.push_str(&html::table(
        "Profiles",
        &["Profile", "Description", "Approval", "Requires", "Validity"],
        &rows,
    ));
    signed.page(StatusCode::OK, "Issue a certificate", &body)
}

/// What the issue form holds (as typed, for showing it again).
#[derive(Default)]
struct IssueForm {
    entity_id: String,
    names: String,
    ip_addresses: String,
    common_name: String,
    key: String,
    ttl: String,
    auto_renew: bool,
}

/// Splits a list typed one per line or separated by commas or spaces.
fn list_of(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A lifetime typed as `90d`, `12h`, `30m`, `3600s` or seconds.
fn parse_ttl(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (num, unit) = match s.char_indices().last()? {
        (i, 'd') => (&s[..i], 86_400),
        (i, 'h') => (&s[..i], 3600),
        (i, 'm') => (&s[..i], 60),
        (i, 's') => (&s[..i], 1),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(unit)
}

/// The form field a service error is about, so it shows next to it;
/// "form" when it is about none in particular.
fn field_of(detail: &str, names: &[String], ips: &[String]) -> &'static str {
    let quoted = |v: &String| detail.starts_with(&format!("{v:?}"));
    if detail.contains("entity_id") {
        "entity_id"
    } else if detail.contains("ttl") {
        "ttl"
    } else if detail.contains("auto_renew") {
        "auto_renew"
    } else if detail.contains("common_name") {
        "common_name"
    } else if detail.contains("allows keys")
        || detail.contains("key type")
        || detail.contains("key size")
    {
        "key"
    } else if detail.contains("is not an IP address") || ips.iter().any(quoted) {
        "ip_addresses"
    } else if names.iter().any(quoted)
        || detail.contains("requires names")
        || detail.contains("name or IP address")
        || detail.contains("names and addresses")
        || detail.contains("give names")
    {
        "names"
    } else {
        "form"
    }
}

fn issue_page(
    signed: &Signed,
    status: StatusCode,
    name: &str,
    p: &ServiceProfileConfig,
    v: &IssueForm,
    error: Option<(&str, &str)>,
) -> Response {
    let err = |field: &str| error.filter(|(f, _)| *f == field).map(|(_, m)| m);
    let requires = |r: &str| p.required.iter().any(|x| x == r);
    let server_auth = p.extended_key_usages.iter().any(|e| e == "serverAuth");
    let mut b = format!(
        "<p>{}</p><p>Profile <strong>{}</strong>: {}, valid {}, {}.</p>",
        esc(&p.description),
        esc(name),
        esc(&p.extended_key_usages.join(" and ")),
        human_secs(p.validity.as_secs()),
        match p.approval {
            Approval::Auto => "issued at once",
            Approval::Manual => "issued once an agent approves",
        }
    );
    if let Some(m) = err("form") {
        let _ = write!(b, "<p class=\"flash err\" role=\"alert\">{}</p>", esc(m));
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/ui/issue/{}\" class=\"card\" novalidate>{}",
        esc(&query_value(name)),
        html::csrf_field(&signed.session.csrf)
    );
    let req_mark = |yes: bool| {
        if yes {
            " <span class=\"req\">(required)</span>"
        } else {
            " <span class=\"hint\">(optional)</span>"
        }
    };
    let _ = write!(
        b,
        "<p><label for=\"entity_id\">Entity{}</label><input type=\"text\" id=\"entity_id\" name=\"entity_id\" \
         value=\"{}\" maxlength=\"128\" required{}>{}</p>",
        req_mark(true),
        esc(&v.entity_id),
        html::invalid_attrs("entity_id", err("entity_id")),
        html::field_error("entity_id", err("entity_id"))
    );
    let names_hint = if server_auth {
        "DNS names, one per line; a serverAuth certificate needs at least one name or IP address"
    } else {
        "DNS names, one per line"
    };
    let _ = write!(
        b,
        "<p><label for=\"names\">Names{}</label><textarea id=\"names\" name=\"names\" rows=\"3\" \
         aria-describedby=\"names-hint\"{}>{}</textarea><span class=\"hint\" id=\"names-hint\">{}</span>{}</p>",
        req_mark(requires("names")),
        html::invalid_attrs("names", err("names")),
        esc(&v.names),
        names_hint,
        html::field_error("names", err("names"))
    );
    let _ = write!(
        b,
        "<p><label for=\"ip_addresses\">IP addresses{}</label><textarea id=\"ip_addresses\" name=\"ip_addresses\" \
         rows=\"2\"{}>{}</textarea><span class=\"hint\">IPv4 or IPv6, one per line</span>{}</p>",
        req_mark(false),
        html::invalid_attrs("ip_addresses", err("ip_addresses")),
        esc(&v.ip_addresses),
        html::field_error("ip_addresses", err("ip_addresses"))
    );
    let _ = write!(
        b,
        "<p><label for=\"common_name\">Common name{}</label><input type=\"text\" id=\"common_name\" \
         name=\"common_name\" value=\"{}\" maxlength=\"64\"{}{}>{}</p>",
        req_mark(requires("common_name")),
        esc(&v.common_name),
        if requires("common_name") { " required" } else { "" },
        html::invalid_attrs("common_name", err("common_name")),
        html::field_error("common_name", err("common_name"))
    );
    let _ = write!(
        b,
        "<p><label for=\"key\">Key type and size{}</label><select id=\"key\" name=\"key\"{}>",
        req_mark(true),
        html::invalid_attrs("key", err("key"))
    );
    let mut keys: Vec<String> = Vec::new();
    if p.key_types.iter().any(|k| k == "ec") {
        keys.extend(p.ec_sizes.iter().map(|s| format!("ec-{s}")));
    }
    if p.key_types.iter().any(|k| k == "rsa") {
        keys.extend(p.rsa_sizes.iter().map(|s| format!("rsa-{s}")));
    }
    for k in &keys {
        let label = match k.split_once('-') {
            Some(("ec", "256")) => "EC P-256".to_owned(),
            Some(("ec", "384")) => "EC P-384".to_owned(),
            Some((_, size)) => format!("RSA {size}"),
            None => k.clone(),
        };
        let sel = if *k == v.key { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{k}\"{sel}>{label}</option>");
    }
    let _ = write!(b, "</select>{}</p>", html::field_error("key", err("key")));
    let _ = write!(
        b,
        "<p><label for=\"ttl\">Lifetime{}</label><input type=\"text\" id=\"ttl\" name=\"ttl\" value=\"{}\" \
         maxlength=\"20\" aria-describedby=\"ttl-hint\"{}><span class=\"hint\" id=\"ttl-hint\">e.g. 30d, 12h or \
         seconds; at most {} (empty: that)</span>{}</p>",
        req_mark(false),
        esc(&v.ttl),
        html::invalid_attrs("ttl", err("ttl")),
        human_secs(p.validity.as_secs()),
        html::field_error("ttl", err("ttl"))
    );
    let _ = write!(
        b,
        "<p><input type=\"checkbox\" id=\"auto_renew\" name=\"auto_renew\" value=\"yes\"{}{}>\
         <label for=\"auto_renew\">Renew automatically {} before expiry</label>{}</p>",
        if v.auto_renew { " checked" } else { "" },
        html::invalid_attrs("auto_renew", err("auto_renew")),
        human_secs(p.renew_before.as_secs()),
        html::field_error("auto_renew", err("auto_renew"))
    );
    b.push_str("<p><button type=\"submit\" id=\"issue\">Issue</button></p></form>");
    signed.page(status, &format!("Issue: {name}"), &b)
}

pub async fn issue_form(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(name): Path<String>,
) -> Response {
    let p = match s.profile(&name) {
        Ok(p) => p,
        Err(e) => return signed.error_page(&e),
    };
    issue_page(
        &signed,
        StatusCode::OK,
        &name,
        p,
        &IssueForm::default(),
        None,
    )
}

pub async fn issue(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(name): Path<String>,
    form: FormResult,
) -> Response {
    let f = match signed.form(form) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let p = match s.profile(&name) {
        Ok(p) => p,
        Err(e) => return signed.error_page(&e),
    };
    let v = IssueForm {
        entity_id: f.text("entity_id").to_owned(),
        names: f.text("names").to_owned(),
        ip_addresses: f.text("ip_addresses").to_owned(),
        common_name: f.text("common_name").to_owned(),
        key: f.text("key").to_owned(),
        ttl: f.text("ttl").to_owned(),
        auto_renew: f.get("auto_renew").is_some(),
    };
    let bad = |field: &str, m: &str| {
        issue_page(
            &signed,
            StatusCode::BAD_REQUEST,
            &name,
            p,
            &v,
            Some((field, m)),
        )
    };
    let Some((key_type, key_size)) = v
        .key
        .split_once('-')
        .and_then(|(t, n)| Some((t.to_owned(), n.parse::<u32>().ok()?)))
    else {
        return bad("key", "choose a key type and size");
    };
    let ttl = if v.ttl.is_empty() {
        None
    } else {
        match parse_ttl(&v.ttl) {
            Some(t) => Some(t),
            None => return bad("ttl", "a lifetime such as 30d, 12h or a number of seconds"),
        }
    };
    let names = list_of(&v.names);
    let ips = list_of(&v.ip_addresses);
    let input = IssueInput {
        entity_id: v.entity_id.clone(),
        profile: name.clone(),
        names: names.clone(),
        ip_addresses: ips.clone(),
        common_name: Some(v.common_name.clone()).filter(|c| !c.is_empty()),
        key_type,
        key_size,
        ttl,
        auto_renew: v.auto_renew,
    };
    match s.issue(signed.caller(), input).await {
        Ok(r) => match (r.status, &r.serial) {
            (RequestStatus::Issued, Some(serial)) => signed.redirect(
                &format!("/ui/certs/{}", query_value(serial)),
                Flash::Done(format!("Issued certificate {serial}.")),
            ),
            (RequestStatus::Pending, _) => signed.redirect(
                "/ui/requests",
                Flash::Done(format!(
                    "Request {} is pending: an agent approves it.",
                    r.id
                )),
            ),
            _ => signed.redirect(
                "/ui/requests",
                Flash::Failed(format!(
                    "Request {} was recorded but issuance failed: {}",
                    r.id,
                    r.error.as_deref().unwrap_or("see the server log")
                )),
            ),
        },
        Err(e) => {
            let (status, message) = super::error_status(&e);
            if status == StatusCode::BAD_REQUEST {
                bad(field_of(&message, &names, &ips), &message)
            } else {
                issue_page(&signed, status, &name, p, &v, Some(("form", &message)))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// requests
// ---------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    page: Option<u32>,
}

fn what_of(r: &Request) -> String {
    match &r.params {
        RequestParams::Issue {
            names,
            ip_addresses,
            common_name,
            key_type,
            key_size,
            ..
        } => {
            let mut parts: Vec<String> = names.iter().chain(ip_addresses).cloned().collect();
            if let Some(cn) = common_name {
                parts.insert(0, format!("CN={cn}"));
            }
            format!("{} ({key_type} {key_size})", parts.join(", "))
        }
        RequestParams::Csr { .. } => "a CSR".to_owned(),
    }
}

/// The statuses a request list filters on.
const REQUEST_STATUSES: &[&str] = &["pending", "approved", "rejected", "issued", "failed"];
/// The statuses a recovery list filters on.
const RECOVERY_STATUSES: &[&str] = &["pending", "approved", "rejected", "completed"];

/// The status a list page filters on: none when `text` is empty, else one
/// of `options` as `parse` reads it.
fn status_of<T>(
    text: &str,
    parse: fn(&str) -> Option<T>,
    options: &[&str],
) -> crate::error::Result<Option<T>> {
    if text.is_empty() {
        return Ok(None);
    }
    parse(text).map(Some).ok_or_else(|| {
        let (last, rest) = options.split_last().unwrap_or((&"", &[]));
        crate::error::Error::malformed(format!("status is {} or {last}", rest.join(", ")))
    })
}

/// The filter form of a list page: a status select (or any) sent to `action`.
fn status_filter(action: &str, id: &str, current: &str, options: &[&str]) -> String {
    let mut b = format!(
        "<form method=\"get\" action=\"{action}\" class=\"filters\"><p><label for=\"{id}\">Status</label>\
         <select id=\"{id}\" name=\"status\"><option value=\"\">any</option>"
    );
    for o in options {
        let sel = if *o == current { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{o}\"{sel}>{o}</option>");
    }
    b.push_str("</select></p><p><button type=\"submit\">Show</button></p></form>");
    b
}

fn pager(base: &str, status: &str, page: u32, shown: usize, total: u64) -> String {
    let mut b = String::from("<nav aria-label=\"Pages\" class=\"pages\">");
    if page > 1 {
        let _ = write!(
            b,
            "<a href=\"{base}?status={}&amp;page={}\">Previous page</a> ",
            query_value(status),
            page - 1
        );
    }
    if u64::from((page - 1) * PAGE) + (shown as u64) < total {
        let _ = write!(
            b,
            "<a href=\"{base}?status={}&amp;page={}\">Next page</a>",
            query_value(status),
            page + 1
        );
    }
    b.push_str("</nav>");
    b
}

pub async fn requests(
    State(s): State<Arc<Service>>,
    signed: Signed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let role = signed.caller().role;
    // Agents land on their queue; requesters on all of theirs.
    let status_text = q.status.clone().unwrap_or_else(|| {
        if may_decide(role) {
            "pending".into()
        } else {
            String::new()
        }
    });
    let status = match status_of(&status_text, RequestStatus::parse, REQUEST_STATUSES) {
        Ok(st) => st,
        Err(e) => return signed.error_page(&e),
    };
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    let filter = RequestFilter {
        status,
        offset: (page - 1).saturating_mul(PAGE),
        limit: PAGE,
        ..Default::default()
    };
    let (list, total) = match s.requests(signed.caller(), filter).await {
        Ok(r) => r,
        Err(e) => return signed.error_page(&e),
    };
    let csrf = html::csrf_field(&signed.session.csrf);
    let mut b = status_filter("/ui/requests", "req-status", &status_text, REQUEST_STATUSES);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let mut decide = String::new();
            if r.status == RequestStatus::Pending && may_decide(role) && r.requester != signed.caller().name {
                let id = esc(&r.id);
                let _ = write!(
                    decide,
                    "<form method=\"post\" action=\"/ui/requests/{id}/approve\" class=\"inline\">{csrf}\
                     <button type=\"submit\" id=\"approve-{id}\">Approve</button></form>\
                     <form method=\"post\" action=\"/ui/requests/{id}/reject\" class=\"inline\">{csrf}\
                     <label for=\"reason-{id}\">Reason</label>\
                     <input type=\"text\" id=\"reason-{id}\" name=\"reason\" maxlength=\"500\" required>\
                     <button type=\"submit\" id=\"reject-{id}\">Reject</button></form>"
                );
            }
            vec![
                format!("<code>{}</code>", esc(&r.id)),
                esc(r.status.as_str()),
                esc(&r.requester),
                esc(&r.profile),
                esc(&r.entity_id),
                esc(&what_of(r)),
                match &r.serial {
                    Some(sn) => format!("<a href=\"/ui/certs/{0}\"><code>{0}</code></a>", esc(sn)),
                    None => esc(r.error.as_deref().or(r.reason.as_deref()).unwrap_or("")),
                },
                esc(&rfc3339(r.created_at)),
                decide,
            ]
        })
        .collect();
    b.push_str(&html::table(
        &format!("{total} requests"),
        &[
            "Request",
            "Status",
            "Requester",
            "Profile",
            "Entity",
            "For",
            "Certificate or note",
            "Created",
            "Decide",
        ],
        &rows,
    ));
    b.push_str(&pager(
        "/ui/requests",
        &status_text,
        page,
        list.len(),
        total,
    ));
    signed.page(StatusCode::OK, "Requests", &b)
}

pub async fn approve(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormResult,
) -> Response {
    if let Err(r) = signed.form(form) {
        return *r;
    }
    match s.approve(signed.caller(), &id).await {
        Ok(r) => match (&r.status, &r.serial) {
            (RequestStatus::Issued, Some(serial)) => signed.redirect(
                "/ui/requests",
                Flash::Done(format!(
                    "Approved request {}: certificate {serial} issued.",
                    r.id
                )),
            ),
            _ => signed.redirect(
                "/ui/requests",
                Flash::Failed(format!(
                    "Approved request {}, but issuance failed: {}",
                    r.id,
                    r.error.as_deref().unwrap_or("see the server log")
                )),
            ),
        },
        Err(e) => signed.failure("/ui/requests", &e),
    }
}

/// The reason a reject form gives; without one, back to `back` saying so.
fn reject_reason(signed: &Signed, form: FormResult, back: &str) -> Result<String, Box<Response>> {
    let f = signed.form(form)?;
    match f.text("reason") {
        "" => Err(Box::new(
            signed.redirect(back, Flash::Failed("give a reason to reject".into())),
        )),
        reason => Ok(reason.to_owned()),
    }
}

pub async fn reject(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormResult,
) -> Response {
    let reason = match reject_reason(&signed, form, "/ui/requests") {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let r = s.reject(signed.caller(), &id, &reason).await;
    signed.outcome("/ui/requests", &r, &format!("Rejected request {id}."))
}

// ---------------------------------------------------------------------------
// CSR upload and batches
// ---------------------------------------------------------------------------

#[derive(Default)]
struct UploadForm {
    profile: String,
    entity_id: String,
    name: String,
    pem: String,
}

fn upload_page(
    s: &Service,
    signed: &Signed,
    status: StatusCode,
    v: &UploadForm,
    error: Option<&str>,
) -> Response {
    let mut b = String::from(
        "<p>Paste one or more PEM <code>CERTIFICATE REQUEST</code> blocks, or choose a file; they \
         become one batch. Every CSR is checked before anything is recorded.</p>",
    );
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/ui/upload\" enctype=\"multipart/form-data\" class=\"card\">{}\
         <p><label for=\"profile\">Profile</label><select id=\"profile\" name=\"profile\">",
        html::csrf_field(&signed.session.csrf)
    );
    for name in s.config.profiles.keys() {
        let sel = if *name == v.profile { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{0}\"{sel}>{0}</option>", esc(name));
    }
    let _ = write!(
        b,
        "</select></p><p><label for=\"entity_id\">Entity</label><input type=\"text\" id=\"entity_id\" \
         name=\"entity_id\" value=\"{}\" maxlength=\"128\" required></p>\
         <p><label for=\"batch-name\">Batch name <span class=\"hint\">(optional)</span></label>\
         <input type=\"text\" id=\"batch-name\" name=\"name\" value=\"{}\" maxlength=\"128\"></p>\
         <p><label for=\"pem\">CSRs (PEM)</label><textarea id=\"pem\" name=\"pem\" rows=\"10\"{}>{}</textarea></p>\
         <p><label for=\"file\">or a file</label><input type=\"file\" id=\"file\" name=\"file\" accept=\".pem,.csr,.txt\"></p>\
         {}<p><button type=\"submit\" id=\"upload\">Upload</button></p></form>",
        esc(&v.entity_id),
        esc(&v.name),
        html::invalid_attrs("pem", error),
        esc(&v.pem),
        html::field_error("pem", error)
    );
    signed.page(status, "Upload CSRs", &b)
}

pub async fn upload_form(State(s): State<Arc<Service>>, signed: Signed) -> Response {
    upload_page(&s, &signed, StatusCode::OK, &UploadForm::default(), None)
}

pub async fn upload(
    State(s): State<Arc<Service>>,
    signed: Signed,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let mut mp = match multipart {
        Ok(m) => m,
        Err(e) => {
            return upload_page(
                &s,
                &signed,
                StatusCode::BAD_REQUEST,
                &UploadForm::default(),
                Some(&e.body_text()),
            )
        }
    };
    let mut v = UploadForm::default();
    let mut csrf: Option<String> = None;
    let mut file = String::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return upload_page(
                    &s,
                    &signed,
                    StatusCode::BAD_REQUEST,
                    &v,
                    Some(&e.body_text()),
                )
            }
        };
        let name = field.name().unwrap_or("").to_owned();
        let text = match field.text().await {
            Ok(t) => t,
            Err(e) => {
                return upload_page(
                    &s,
                    &signed,
                    StatusCode::BAD_REQUEST,
                    &v,
                    Some(&e.body_text()),
                )
            }
        };
        let slot = match name.as_str() {
            "csrf" => csrf.get_or_insert_with(String::new),
            "profile" => &mut v.profile,
            "entity_id" => &mut v.entity_id,
            "name" => &mut v.name,
            "pem" => &mut v.pem,
            "file" => &mut file,
            _ => continue,
        };
        if slot.is_empty() {
            *slot = text;
        }
    }
    if let Err(r) = signed.check_csrf(csrf.as_deref()) {
        return *r;
    }
    let pem = format!("{}\n{}", v.pem, file);
    if pem.len() > MAX_UPLOAD_PEM {
        return upload_page(
            &s,
            &signed,
            StatusCode::BAD_REQUEST,
            &v,
            Some("the CSRs are at most 512 KiB"),
        );
    }
    match s
        .upload_csrs(
            signed.caller(),
            &v.profile,
            v.entity_id.trim(),
            v.name.trim(),
            &pem,
        )
        .await
    {
        Ok((batch, requests)) => signed.redirect(
            &format!("/ui/batches/{}", query_value(&batch.id)),
            Flash::Done(format!(
                "Uploaded {} CSRs as batch {}.",
                requests.len(),
                batch.id
            )),
        ),
        Err(e) => {
            let (status, message) = super::error_status(&e);
            upload_page(&s, &signed, status, &v, Some(&message))
        }
    }
}

pub async fn batch(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let caller = signed.caller();
    let batch = match s.store.batch(&id).await {
        Ok(Some(b)) if caller.sees_all() || b.requester == caller.name => b,
        Ok(_) => return signed.error_page(&crate::error::Error::not_found("no such batch")),
        Err(e) => return signed.error_page(&e),
    };
    let (list, total) = match s
        .requests(
            caller,
            RequestFilter {
                batch_id: Some(batch.id.clone()),
                limit: crate::service::MAX_CSRS as u32,
                ..Default::default()
            },
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return signed.error_page(&e),
    };
    let count = |st: RequestStatus| list.iter().filter(|r| r.status == st).count();
    let mut b = format!(
        "<dl><dt>Name</dt><dd>{}</dd><dt>Profile</dt><dd>{}</dd><dt>Requester</dt><dd>{}</dd>\
         <dt>Uploaded</dt><dd>{}</dd><dt>CSRs</dt><dd>{total}: {} issued, {} pending, {} rejected, {} failed</dd></dl>",
        esc(&batch.name),
        esc(&batch.profile),
        esc(&batch.requester),
        esc(&rfc3339(batch.created_at)),
        count(RequestStatus::Issued),
        count(RequestStatus::Pending),
        count(RequestStatus::Rejected),
        count(RequestStatus::Failed),
    );
    let rows: Vec<Vec<String>> = list
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                (i + 1).to_string(),
                format!("<code>{}</code>", esc(&r.id)),
                esc(r.status.as_str()),
                match &r.serial {
                    Some(sn) => format!("<a href=\"/ui/certs/{0}\"><code>{0}</code></a>", esc(sn)),
                    None => "—".to_owned(),
                },
                esc(r.error.as_deref().or(r.reason.as_deref()).unwrap_or("")),
            ]
        })
        .collect();
    b.push_str(&html::table(
        "Each CSR",
        &["#", "Request", "Status", "Certificate", "Note"],
        &rows,
    ));
    let _ = write!(
        b,
        "<p><a href=\"/ui/batches/{}/download\">Download the issued certificates (zip)</a></p>",
        esc(&query_value(&batch.id))
    );
    signed.page(StatusCode::OK, &format!("Batch {}", batch.id), &b)
}

pub async fn batch_download(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match s.batch_zip(signed.caller(), &id).await {
        Ok(d) => crate::service::http::attachment(d),
        Err(e) => signed.error_page(&e),
    }
}

// ---------------------------------------------------------------------------
// key recoveries
// ---------------------------------------------------------------------------

pub async fn recoveries(
    State(s): State<Arc<Service>>,
    signed: Signed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let status_text = q.status.clone().unwrap_or_default();
    let status = match status_of(&status_text, RecoveryStatus::parse, RECOVERY_STATUSES) {
        Ok(st) => st,
        Err(e) => return signed.error_page(&e),
    };
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    let (list, total) = match s
        .recoveries(
            signed.caller(),
            status,
            (page - 1).saturating_mul(PAGE),
            PAGE,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return signed.error_page(&e),
    };
    let caller = signed.caller();
    let csrf = html::csrf_field(&signed.session.csrf);
    let mut b = status_filter(
        "/ui/recoveries",
        "rec-status",
        &status_text,
        RECOVERY_STATUSES,
    );
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let id = esc(&r.id);
            let mut act = String::new();
            if r.status == RecoveryStatus::Pending
                && may_decide(caller.role)
                && r.requester != caller.name
                && !r.approvals.contains(&caller.name)
            {
                let _ = write!(
                    act,
                    "<form method=\"post\" action=\"/ui/recoveries/{id}/approve\" class=\"inline\">{csrf}\
                     <button type=\"submit\" id=\"approve-rec-{id}\">Approve</button></form>\
                     <form method=\"post\" action=\"/ui/recoveries/{id}/reject\" class=\"inline\">{csrf}\
                     <label for=\"rec-reason-{id}\">Reason</label>\
                     <input type=\"text\" id=\"rec-reason-{id}\" name=\"reason\" maxlength=\"500\" required>\
                     <button type=\"submit\">Reject</button></form>"
                );
            }
            if r.status == RecoveryStatus::Approved && r.requester == caller.name {
                let _ = write!(
                    act,
                    "<form method=\"post\" action=\"/ui/certs/{}/download-token\" class=\"inline\">{csrf}\
                     <input type=\"hidden\" name=\"recovery\" value=\"{id}\">\
                     <button type=\"submit\">Request the key download</button></form>",
                    esc(&r.serial)
                );
            }
            vec![
                format!("<code>{id}</code>"),
                format!("<a href=\"/ui/certs/{0}\"><code>{0}</code></a>", esc(&r.serial)),
                esc(r.status.as_str()),
                esc(&r.requester),
                format!(
                    "{} of {}{}",
                    r.approvals.len(),
                    r.required,
                    if r.approvals.is_empty() { String::new() } else { format!(": {}", esc(&r.approvals.join(", "))) }
                ),
                esc(r.reason.as_deref().unwrap_or("")),
                esc(&rfc3339(r.created_at)),
                act,
            ]
        })
        .collect();
    b.push_str(&html::table(
        &format!("{total} key recoveries"),
        &[
            "Recovery",
            "Certificate",
            "Status",
            "Requester",
            "Approvals",
            "Reason",
            "Created",
            "Act",
        ],
        &rows,
    ));
    b.push_str(&pager(
        "/ui/recoveries",
        &status_text,
        page,
        list.len(),
        total,
    ));
    signed.page(StatusCode::OK, "Key recoveries", &b)
}

pub async fn approve_recovery(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormResult,
) -> Response {
    if let Err(r) = signed.form(form) {
        return *r;
    }
    match s.approve_recovery(signed.caller(), &id).await {
        Ok(r) => signed.redirect(
            "/ui/recoveries",
            Flash::Done(format!(
                "Approved recovery {} ({} of {} approvals; {}).",
                r.id,
                r.approvals.len(),
                r.required,
                r.status.as_str()
            )),
        ),
        Err(e) => signed.failure("/ui/recoveries", &e),
    }
}

pub async fn reject_recovery(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormResult,
) -> Response {
    let reason = match reject_reason(&signed, form, "/ui/recoveries") {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let r = s.reject_recovery(signed.caller(), &id, &reason).await;
    signed.outcome("/ui/recoveries", &r, &format!("Rejected recovery {id}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_ttl("90d"), Some(90 * 86_400));
        assert_eq!(parse_ttl("12h"), Some(12 * 3600));
        assert_eq!(parse_ttl("30m"), Some(1800));
        assert_eq!(parse_ttl("3600s"), Some(3600));
        assert_eq!(parse_ttl("3600"), Some(3600));
        for bad in ["", "d", "-1d", "1.5d", "1w", "99999999999999999999d"] {
            assert_eq!(parse_ttl(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_split_on_lines_commas_and_spaces() {
        assert_eq!(
            list_of("a.example, b.example\nc.example  "),
            ["a.example", "b.example", "c.example"]
        );
        assert!(list_of(" \n ,").is_empty());
    }

    #[test]
    fn errors_land_on_their_field() {
        let names = vec!["bad..example".to_owned()];
        let ips = vec!["10.0.0.300".to_owned()];
        for (detail, field) in [
            ("entity_id must be 1 to 128 letters, digits or . - _ : @ /", "entity_id"),
            ("ttl must be between 1 and 7776000 seconds (the server profile's validity)", "ttl"),
            ("auto_renew needs a lifetime longer than the server profile's renewal window", "auto_renew"),
            ("common_name must be 1 to 64 printable characters", "common_name"),
            ("the server profile allows keys ec 256; not rsa 1024", "key"),
            ("unsupported RSA key size 1024; allowed are 2048, 3072 and 4096", "key"),
            ("\"10.0.0.300\" is not an IP address", "ip_addresses"),
            ("\"bad..example\": the name is not valid", "names"),
            ("the server profile requires names", "names"),
            ("the server profile issues serverAuth certificates, which need at least one name or IP address", "names"),
            ("the device profile requires common_name", "common_name"),
            ("something else", "form"),
        ] {
            assert_eq!(field_of(detail, &names, &ips), field, "{detail}");
        }
    }
}
