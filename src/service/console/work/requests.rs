//! The request queue: requests by status, paged, and the approve and
//! reject forms of the ones the caller may decide.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{may_decide, reject_form, ListAsk, ListQuery, PAGE};
use crate::clock::rfc3339;
use crate::model::service::{Request, RequestFilter, RequestParams, RequestStatus};
use crate::service::console::html::{self, esc, Flash};
use crate::service::console::{Posted, Signed};
use crate::service::Service;

/// The statuses a request list filters on.
const REQUEST_STATUSES: &[&str] = &["pending", "approved", "rejected", "issued", "failed"];

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

/// The approve and reject forms of a pending request, for one who may
/// decide it (not its requester).
fn decide_forms(r: &Request, signed: &Signed, csrf: &str) -> String {
    let mut decide = String::new();
    let caller = signed.caller();
    if r.status == RequestStatus::Pending && may_decide(caller.role) && r.requester != caller.name {
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
    decide
}

/// The table of one page of requests.
fn requests_table(list: &[Request], total: u64, signed: &Signed) -> String {
    let csrf = html::csrf_field(&signed.session.csrf);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
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
                decide_forms(r, signed, &csrf),
            ]
        })
        .collect();
    html::table(
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
    )
}

pub(crate) async fn requests(
    State(s): State<Arc<Service>>,
    signed: Signed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    // Agents land on their queue; requesters on all of theirs.
    let default = if may_decide(signed.caller().role) {
        "pending"
    } else {
        ""
    };
    let ask = match ListAsk::read(q, default, RequestStatus::parse, REQUEST_STATUSES) {
        Ok(a) => a,
        Err(e) => return signed.error_page(&e),
    };
    let filter = RequestFilter {
        status: ask.status,
        offset: ask.offset(),
        limit: PAGE,
        ..Default::default()
    };
    let (list, total) = match s.requests(signed.caller(), filter).await {
        Ok(r) => r,
        Err(e) => return signed.error_page(&e),
    };
    let table = requests_table(&list, total, &signed);
    let b = ask.body(
        ("/ui/requests", "req-status"),
        REQUEST_STATUSES,
        &table,
        list.len(),
        total,
    );
    signed.page(StatusCode::OK, "Requests", &b)
}

pub(crate) async fn approve(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted {
        signed, path: id, ..
    } = posted;
    match s.approve(signed.caller(), &id).await {
        Ok(r) => match (&r.status, &r.serial) {
            (RequestStatus::Issued, Some(serial)) => {
                signed
                    .redirect(
                        "/ui/requests",
                        Flash::Done(format!(
                            "Approved request {}: certificate {serial} issued.",
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
                            "Approved request {}, but issuance failed: {}",
                            r.id,
                            r.error.as_deref().unwrap_or("see the server log")
                        )),
                    )
                    .await
            }
        },
        Err(e) => signed.failure("/ui/requests", &e).await,
    }
}

pub(crate) async fn reject(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let (signed, id, reason) = match reject_form(posted, "/ui/requests").await {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let r = s.reject(signed.caller(), &id, &reason).await;
    signed
        .outcome("/ui/requests", &r, &format!("Rejected request {id}."))
        .await
}
