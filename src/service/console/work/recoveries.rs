//! Key recoveries: the list by status, paged, with the approve and reject
//! forms for agents and the download request for the requester of an
//! approved one.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{may_decide, reject_form, ListAsk, ListQuery, PAGE};
use crate::clock::rfc3339;
use crate::model::service::{Caller, Recovery, RecoveryStatus};
use crate::service::console::html::{self, esc, Flash};
use crate::service::console::{Posted, Signed};
use crate::service::Service;

/// The statuses a recovery list filters on.
const RECOVERY_STATUSES: &[&str] = &["pending", "approved", "rejected", "completed"];

/// What `caller` may do with recovery `r`: approve or reject a pending
/// one (an agent other than its requester, once), or ask for the key
/// download of an approved one (its requester).
fn recovery_actions(r: &Recovery, caller: &Caller, csrf: &str) -> String {
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
    act
}

/// The table of one page of recoveries.
fn recoveries_table(list: &[Recovery], total: u64, signed: &Signed) -> String {
    let caller = signed.caller();
    let csrf = html::csrf_field(&signed.session.csrf);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                format!("<code>{}</code>", esc(&r.id)),
                format!(
                    "<a href=\"/ui/certs/{0}\"><code>{0}</code></a>",
                    esc(&r.serial)
                ),
                esc(r.status.as_str()),
                esc(&r.requester),
                format!(
                    "{} of {}{}",
                    r.approvals.len(),
                    r.required,
                    if r.approvals.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", esc(&r.approvals.join(", ")))
                    }
                ),
                esc(r.reason.as_deref().unwrap_or("")),
                esc(&rfc3339(r.created_at)),
                recovery_actions(r, caller, &csrf),
            ]
        })
        .collect();
    html::table(
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
    )
}

pub(crate) async fn recoveries(
    State(s): State<Arc<Service>>,
    signed: Signed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let ask = match ListAsk::read(q, "", RecoveryStatus::parse, RECOVERY_STATUSES) {
        Ok(a) => a,
        Err(e) => return signed.error_page(&e),
    };
    let (list, total) = match s
        .recoveries(signed.caller(), ask.status, ask.offset(), PAGE)
        .await
    {
        Ok(r) => r,
        Err(e) => return signed.error_page(&e),
    };
    let table = recoveries_table(&list, total, &signed);
    let b = ask.body(
        ("/ui/recoveries", "rec-status"),
        RECOVERY_STATUSES,
        &table,
        list.len(),
        total,
    );
    signed.page(StatusCode::OK, "Key recoveries", &b)
}

pub(crate) async fn approve_recovery(
    State(s): State<Arc<Service>>,
    posted: Posted<String>,
) -> Response {
    let Posted {
        signed, path: id, ..
    } = posted;
    match s.approve_recovery(signed.caller(), &id).await {
        Ok(r) => {
            signed
                .redirect(
                    "/ui/recoveries",
                    Flash::Done(format!(
                        "Approved recovery {} ({} of {} approvals; {}).",
                        r.id,
                        r.approvals.len(),
                        r.required,
                        r.status.as_str()
                    )),
                )
                .await
        }
        Err(e) => signed.failure("/ui/recoveries", &e).await,
    }
}

pub(crate) async fn reject_recovery(
    State(s): State<Arc<Service>>,
    posted: Posted<String>,
) -> Response {
    let (signed, id, reason) = match reject_form(posted, "/ui/recoveries").await {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let r = s.reject_recovery(signed.caller(), &id, &reason).await;
    signed
        .outcome("/ui/recoveries", &r, &format!("Rejected recovery {id}."))
        .await
}
