//! The issue pages: the profiles a requester may use, and the issue form
//! of each profile, which shows a service error next to the field it is
//! about.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::may_request;
use crate::model::service::{Request, RequestStatus};
use crate::service::config::{Approval, ServiceProfileConfig};
use crate::service::console::html::{self, esc, query_value, Flash};
use crate::service::console::{Fields, Posted, Signed};
use crate::service::{IssueInput, Service};

fn human_secs(s: u64) -> String {
    if s > 0 && s.is_multiple_of(86_400) {
        format!("{} days", s / 86_400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("{} hours", s / 3600)
    } else {
        format!("{s} seconds")
    }
}

pub(crate) async fn profiles(State(s): State<Arc<Service>>, signed: Signed) -> Response {
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

impl IssueForm {
    /// The form as posted.
    fn read(f: &Fields) -> IssueForm {
        IssueForm {
            entity_id: f.text("entity_id").to_owned(),
            names: f.text("names").to_owned(),
            ip_addresses: f.text("ip_addresses").to_owned(),
            common_name: f.text("common_name").to_owned(),
            key: f.text("key").to_owned(),
            ttl: f.text("ttl").to_owned(),
            auto_renew: f.get("auto_renew").is_some(),
        }
    }
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

/// The mark after a field's label.
fn req_mark(yes: bool) -> &'static str {
    if yes {
        " <span class=\"req\">(required)</span>"
    } else {
        " <span class=\"hint\">(optional)</span>"
    }
}

/// The issue form of one profile, filled in as typed, with at most one
/// error: `(field, message)`.
struct IssueView<'a> {
    p: &'a ServiceProfileConfig,
    v: &'a IssueForm,
    error: Option<(&'a str, &'a str)>,
}

impl<'a> IssueView<'a> {
    /// The error shown next to `field`.
    fn err(&self, field: &str) -> Option<&'a str> {
        self.error.filter(|(f, _)| *f == field).map(|(_, m)| m)
    }

    fn requires(&self, r: &str) -> bool {
        self.p.required.iter().any(|x| x == r)
    }

    /// What the profile issues, and the error that is about no field.
    fn intro(&self, b: &mut String, name: &str) {
        let p = self.p;
        let _ = write!(
            b,
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
        if let Some(m) = self.err("form") {
            let _ = write!(b, "<p class=\"flash err\" role=\"alert\">{}</p>", esc(m));
        }
    }

    /// Entity, DNS names, IP addresses and common name.
    fn subject_fields(&self, b: &mut String) {
        let (v, err) = (self.v, |f: &str| self.err(f));
        let server_auth = self.p.extended_key_usages.iter().any(|e| e == "serverAuth");
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
            req_mark(self.requires("names")),
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
            req_mark(self.requires("common_name")),
            esc(&v.common_name),
            if self.requires("common_name") { " required" } else { "" },
            html::invalid_attrs("common_name", err("common_name")),
            html::field_error("common_name", err("common_name"))
        );
    }

    /// The key types and sizes the profile allows.
    fn key_select(&self, b: &mut String) {
        let p = self.p;
        let _ = write!(
            b,
            "<p><label for=\"key\">Key type and size{}</label><select id=\"key\" name=\"key\"{}>",
            req_mark(true),
            html::invalid_attrs("key", self.err("key"))
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
            let sel = if *k == self.v.key { " selected" } else { "" };
            let _ = write!(b, "<option value=\"{k}\"{sel}>{label}</option>");
        }
        let _ = write!(
            b,
            "</select>{}</p>",
            html::field_error("key", self.err("key"))
        );
    }

    /// Lifetime and automatic renewal.
    fn lifetime_fields(&self, b: &mut String) {
        let (p, v, err) = (self.p, self.v, |f: &str| self.err(f));
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
    let view = IssueView { p, v, error };
    let mut b = String::new();
    view.intro(&mut b, name);
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/ui/issue/{}\" class=\"card\" novalidate>{}",
        esc(&query_value(name)),
        html::csrf_field(&signed.session.csrf)
    );
    view.subject_fields(&mut b);
    view.key_select(&mut b);
    view.lifetime_fields(&mut b);
    b.push_str("<p><button type=\"submit\" id=\"issue\">Issue</button></p></form>");
    signed.page(status, &format!("Issue: {name}"), &b)
}

pub(crate) async fn issue_form(
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

/// What the form asks the service for; or the field that does not read,
/// and why.
fn issue_input(profile: &str, v: &IssueForm) -> Result<IssueInput, (&'static str, &'static str)> {
    let Some((key_type, key_size)) = v
        .key
        .split_once('-')
        .and_then(|(t, n)| Some((t.to_owned(), n.parse::<u32>().ok()?)))
    else {
        return Err(("key", "choose a key type and size"));
    };
    let ttl = if v.ttl.is_empty() {
        None
    } else {
        match parse_ttl(&v.ttl) {
            Some(t) => Some(t),
            None => return Err(("ttl", "a lifetime such as 30d, 12h or a number of seconds")),
        }
    };
    Ok(IssueInput {
        entity_id: v.entity_id.clone(),
        profile: profile.to_owned(),
        names: list_of(&v.names),
        ip_addresses: list_of(&v.ip_addresses),
        common_name: Some(v.common_name.clone()).filter(|c| !c.is_empty()),
        key_type,
        key_size,
        ttl,
        auto_renew: v.auto_renew,
    })
}

/// Where a recorded request sends the browser: its certificate, or the
/// request list saying it waits or failed.
async fn recorded(signed: &Signed, r: &Request) -> Response {
    match (r.status, &r.serial) {
        (RequestStatus::Issued, Some(serial)) => {
            signed
                .redirect(
                    &format!("/ui/certs/{}", query_value(serial)),
                    Flash::Done(format!("Issued certificate {serial}.")),
                )
                .await
        }
        (RequestStatus::Pending, _) => {
            signed
                .redirect(
                    "/ui/requests",
                    Flash::Done(format!(
                        "Request {} is pending: an agent approves it.",
                        r.id
                    )),
                )
                .await
        }
        _ => {
            signed
                .redirect(
                    "/ui/requests",
                    Flash::Failed(format!(
                        "Request {} was recorded but issuance failed: {}",
                        r.id,
                        r.error.as_deref().unwrap_or("see the server log")
                    )),
                )
                .await
        }
    }
}

pub(crate) async fn issue(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted {
        signed,
        path: name,
        fields,
    } = posted;
    let p = match s.profile(&name) {
        Ok(p) => p,
        Err(e) => return signed.error_page(&e),
    };
    let v = IssueForm::read(&fields);
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
    let input = match issue_input(&name, &v) {
        Ok(input) => input,
        Err((field, m)) => return bad(field, m),
    };
    let (names, ips) = (input.names.clone(), input.ip_addresses.clone());
    match s.issue(signed.caller(), input).await {
        Ok(r) => recorded(&signed, &r).await,
        Err(e) => {
            let (status, message) = crate::service::console::error_status(&e);
            if status == StatusCode::BAD_REQUEST {
                bad(field_of(&message, &names, &ips), &message)
            } else {
                issue_page(&signed, status, &name, p, &v, Some(("form", &message)))
            }
        }
    }
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
