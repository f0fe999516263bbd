//! Pages that make or decide work: the issue form of each profile
//! (issue.rs), the request queue with approve and reject (requests.rs),
//! CSR batch upload and its per-CSR results (upload.rs), and key
//! recoveries with their approvals (recoveries.rs). This module holds
//! what their list pages share: the status query, filter and pager, and
//! the reject form's reason.

mod issue;
mod recoveries;
mod requests;
mod upload;

use std::fmt::Write as _;

use axum::response::Response;
use serde::Deserialize;

pub(super) use issue::{issue, issue_form, profiles};
pub(super) use recoveries::{approve_recovery, recoveries, reject_recovery};
pub(super) use requests::{approve, reject, requests};
pub(super) use upload::{batch, batch_download, upload, upload_form};

use super::html::{query_value, Flash};
use super::{Posted, Signed};
use crate::model::service::Role;

/// Requests or recoveries a list page shows.
const PAGE: u32 = 25;

fn may_request(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Requester)
}

fn may_decide(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Agent)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    page: Option<u32>,
}

/// What a list page's query asks for: a status (as typed, and read) and
/// a page.
struct ListAsk<T> {
    text: String,
    status: Option<T>,
    page: u32,
}

impl<T> ListAsk<T> {
    /// Reads `q`; without a status, `default`. The status is none when
    /// its text is empty, else one of `options` as `parse` reads it.
    fn read(
        q: ListQuery,
        default: &str,
        parse: fn(&str) -> Option<T>,
        options: &[&str],
    ) -> crate::error::Result<ListAsk<T>> {
        let text = q.status.unwrap_or_else(|| default.to_owned());
        let status = if text.is_empty() {
            None
        } else {
            Some(parse(&text).ok_or_else(|| {
                let (last, rest) = options.split_last().unwrap_or((&"", &[]));
                crate::error::Error::malformed(format!("status is {} or {last}", rest.join(", ")))
            })?)
        };
        Ok(ListAsk {
            text,
            status,
            page: q.page.unwrap_or(1).clamp(1, 100_000),
        })
    }

    /// How many items the pages before this one hold.
    fn offset(&self) -> u32 {
        (self.page - 1).saturating_mul(PAGE)
    }

    /// The body of the list page at `base`: the status filter (its select
    /// `select_id`, of `options`), `table` (`shown` of `total` items),
    /// then links to the pages around this one.
    fn body(
        &self,
        (base, select_id): (&str, &str),
        options: &[&str],
        table: &str,
        shown: usize,
        total: u64,
    ) -> String {
        let mut b = status_filter(base, select_id, &self.text, options);
        b.push_str(table);
        b.push_str(&pager(base, &self.text, self.page, shown, total));
        b
    }
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

/// A reject form: who posted it, the id of what it rejects and the
/// reason given; without a reason, back to `back` saying so.
async fn reject_form(
    posted: Posted<String>,
    back: &str,
) -> Result<(Signed, String, String), Box<Response>> {
    let Posted {
        signed,
        path,
        fields,
    } = posted;
    match fields.text("reason") {
        "" => Err(Box::new(
            signed
                .redirect(back, Flash::Failed("give a reason to reject".into()))
                .await,
        )),
        reason => Ok((signed, path, reason.to_owned())),
    }
}
