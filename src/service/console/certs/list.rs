//! The certificate list: a search form (entity, common name, serial,
//! status, expiry), one page of results and links to the pages around it.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::badge;
use crate::clock::rfc3339;
use crate::model::service::{CertFilter, CertRow};
use crate::service::console::html::{self, esc, query_value};
use crate::service::console::Signed;
use crate::service::{cert_status, normalize_serial, Service};

/// Certificates a list page shows.
const PAGE: u32 = 25;

/// The query of the list page. Dates are `YYYY-MM-DD` (the form's date
/// input) or RFC 3339.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    entity: String,
    #[serde(default)]
    common_name: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    expiring_before: String,
    #[serde(default)]
    page: Option<u32>,
}

fn parse_date(s: &str) -> Option<i64> {
    if s.len() == 10 {
        crate::clock::parse_rfc3339(&format!("{s}T00:00:00Z"))
    } else if s.len() <= 40 {
        crate::clock::parse_rfc3339(s)
    } else {
        None
    }
}

/// Each problem with a list query, by the field it is about ("query" for
/// the query as a whole).
type Problems = Vec<(&'static str, String)>;

/// The problem with field `name`, if any.
fn problem_of<'a>(problems: &'a Problems, name: &str) -> Option<&'a str> {
    problems
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| m.as_str())
}

/// The list query as typed (shown again in the form), and each problem
/// with it.
fn read_query(query: Result<Query<ListQuery>, QueryRejection>) -> (ListQuery, Problems) {
    match query {
        Ok(Query(q)) => (q, Vec::new()),
        Err(e) => (ListQuery::default(), vec![("query", e.body_text())]),
    }
}

/// The search a list query asks for, on page `page` (offset and limit
/// set); each field that does not read is added to `errors`.
fn filter_of(q: &ListQuery, page: u32, errors: &mut Problems) -> CertFilter {
    let bounded = |name: &'static str, v: &str, errors: &mut Problems| {
        if v.len() > 128 {
            errors.push((name, "at most 128 characters".into()));
            None
        } else {
            (!v.is_empty()).then(|| v.to_owned())
        }
    };
    let entity = bounded("entity", q.entity.trim(), errors);
    let common_name = bounded("common_name", q.common_name.trim(), errors);
    let serial = match q.serial.trim() {
        "" => None,
        v => match normalize_serial(v) {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push((
                    "serial",
                    "a serial is hexadecimal, at most 64 digits".into(),
                ));
                None
            }
        },
    };
    let status = match q.status.as_str() {
        "" => None,
        v @ ("valid" | "revoked" | "expired") => Some(v.to_owned()),
        _ => {
            errors.push(("status", "valid, revoked or expired".into()));
            None
        }
    };
    let expiring_before = match q.expiring_before.trim() {
        "" => None,
        v => match parse_date(v) {
            Some(t) => Some(t),
            None => {
                errors.push(("expiring_before", "a date (YYYY-MM-DD)".into()));
                None
            }
        },
    };
    CertFilter {
        entity_id: entity,
        status,
        common_name,
        serial,
        expiring_before,
        requester: None,
        offset: (page - 1).saturating_mul(PAGE),
        limit: PAGE,
    }
}

/// The search form, filled in as typed, each problem next to its field.
fn filters_form(q: &ListQuery, errors: &Problems) -> String {
    let err_of = |name: &str| problem_of(errors, name);
    let text_input = |id: &str, label: &str, value: &str| {
        format!(
            "<p><label for=\"{id}\">{label}</label><input type=\"text\" id=\"{id}\" name=\"{id}\" \
             value=\"{}\" maxlength=\"128\"{}>{}</p>",
            esc(value),
            html::invalid_attrs(id, err_of(id)),
            html::field_error(id, err_of(id))
        )
    };
    let mut body = String::from(
        "<form method=\"get\" action=\"/ui/certs\" class=\"filters\" role=\"search\">",
    );
    body.push_str(&text_input("entity", "Entity", &q.entity));
    body.push_str(&text_input("common_name", "Common name", &q.common_name));
    body.push_str(&text_input("serial", "Serial", &q.serial));
    let _ = write!(
        body,
        "<p><label for=\"status\">Status</label><select id=\"status\" name=\"status\"{}>",
        html::invalid_attrs("status", err_of("status"))
    );
    for (v, label) in [
        ("", "any"),
        ("valid", "valid"),
        ("revoked", "revoked"),
        ("expired", "expired"),
    ] {
        let sel = if q.status == v { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{v}\"{sel}>{label}</option>");
    }
    let _ = write!(
        body,
        "</select>{}</p><p><label for=\"expiring_before\">Expiring before</label>\
         <input type=\"date\" id=\"expiring_before\" name=\"expiring_before\" value=\"{}\"{}>{}</p>\
         <p><button type=\"submit\">Search</button></p></form>",
        html::field_error("status", err_of("status")),
        esc(&q.expiring_before),
        html::invalid_attrs("expiring_before", err_of("expiring_before")),
        html::field_error("expiring_before", err_of("expiring_before")),
    );
    if let Some(e) = err_of("query") {
        let _ = write!(body, "<p class=\"flash err\" role=\"alert\">{}</p>", esc(e));
    }
    body
}

/// The table of one page of certificates: rows `first`.. of `total`.
fn cert_table(rows: &[CertRow], first: u64, total: u64, now: i64) -> String {
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|c| {
            vec![
                format!(
                    "<a href=\"/ui/certs/{0}\"><code>{0}</code></a>",
                    esc(&c.serial)
                ),
                esc(c.common_name.as_deref().unwrap_or("")),
                esc(c
                    .service
                    .as_ref()
                    .map(|m| m.entity_id.as_str())
                    .unwrap_or("")),
                badge(cert_status(c, now)),
                if c.service.is_some() {
                    "service"
                } else {
                    "acme"
                }
                .to_owned(),
                esc(&rfc3339(c.not_after)),
            ]
        })
        .collect();
    let last = first - 1 + rows.len() as u64;
    html::table(
        &if rows.is_empty() {
            format!("No certificates on this page ({total} match)")
        } else {
            format!("Certificates {first}–{last} of {total}")
        },
        &[
            "Serial",
            "Common name",
            "Entity",
            "Status",
            "Source",
            "Expires",
        ],
        &table_rows,
    )
}

/// Links to the previous and next pages, keeping the filters; `last` is
/// the number of the last certificate shown.
fn cert_pager(q: &ListQuery, page: u32, last: u64, total: u64) -> String {
    let keep = format!(
        "entity={}&common_name={}&serial={}&status={}&expiring_before={}",
        query_value(&q.entity),
        query_value(&q.common_name),
        query_value(&q.serial),
        query_value(&q.status),
        query_value(&q.expiring_before)
    );
    let mut body = String::from("<nav aria-label=\"Pages\" class=\"pages\">");
    if page > 1 {
        let _ = write!(
            body,
            "<a href=\"/ui/certs?{}&page={}\">Previous page</a> ",
            esc(&keep),
            page - 1
        );
    }
    if last < total {
        let _ = write!(
            body,
            "<a href=\"/ui/certs?{}&page={}\">Next page</a>",
            esc(&keep),
            page + 1
        );
    }
    body.push_str("</nav>");
    body
}

pub(crate) async fn list(
    State(s): State<Arc<Service>>,
    signed: Signed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let (q, mut errors) = read_query(query);
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    let filter = filter_of(&q, page, &mut errors);
    let mut body = filters_form(&q, &errors);
    if !errors.is_empty() {
        return signed.page(StatusCode::BAD_REQUEST, "Certificates", &body);
    }
    let (rows, total) = match s.certificates(signed.caller(), filter).await {
        Ok(r) => r,
        Err(e) => return signed.error_page(&e),
    };
    let first = u64::from((page - 1) * PAGE) + 1;
    let last = u64::from((page - 1) * PAGE) + rows.len() as u64;
    body.push_str(&cert_table(&rows, first, total, s.clock.now()));
    // Page links keep the filters.
    body.push_str(&cert_pager(&q, page, last, total));
    signed.page(StatusCode::OK, "Certificates", &body)
}
