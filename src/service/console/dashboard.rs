//! The dashboard: certificates by status, issuance per day over the last
//! 30 days, expiries per day over the next 30, pending work, and (for
//! admins, as in the API) recent webhook delivery failures.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::chart;
use super::html::{self, esc};
use super::Signed;
use crate::clock::rfc3339;
use crate::model::service::{CertFilter, RecoveryStatus, RequestFilter, RequestStatus, Role};
use crate::service::Service;

/// Most certificates read for each chart; past that the chart says it is
/// partial, so one page load stays bounded on a large database.
pub(super) const MAX_SCAN: u32 = 5_000;
const DAYS: usize = 30;
const DAY: i64 = 86_400;

pub(super) async fn dashboard(State(s): State<Arc<Service>>, signed: Signed) -> Response {
    match render(&s, &signed).await {
        Ok(body) => signed.page(StatusCode::OK, "Dashboard", &body),
        Err(e) => signed.error_page(&e),
    }
}

async fn count(s: &Service, signed: &Signed, status: &str) -> crate::error::Result<u64> {
    let (_, total) = s
        .certificates(
            signed.caller(),
            CertFilter {
                status: Some(status.to_owned()),
                limit: 1,
                ..Default::default()
            },
        )
        .await?;
    Ok(total)
}

/// Reads certificates newest first, page by page, handing each `keep` and
/// stopping when `keep` says so or at [`MAX_SCAN`]; returns whether it
/// stopped at the bound.
async fn scan(
    s: &Service,
    signed: &Signed,
    base: CertFilter,
    mut keep: impl FnMut(&crate::model::service::CertRow) -> bool,
) -> crate::error::Result<bool> {
    let page = s.config.max_page.min(MAX_SCAN);
    let mut offset = 0;
    while offset < MAX_SCAN {
        let (rows, total) = s
            .certificates(
                signed.caller(),
                CertFilter {
                    offset,
                    limit: page,
                    ..base.clone()
                },
            )
            .await?;
        for c in &rows {
            if !keep(c) {
                return Ok(false);
            }
        }
        offset += page;
        if rows.is_empty() || u64::from(offset) >= total {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The counts: certificates by status, and the pending work.
async fn counts_section(s: &Service, signed: &Signed) -> crate::error::Result<String> {
    let caller = signed.caller();
    let valid = count(s, signed, "valid").await?;
    let revoked = count(s, signed, "revoked").await?;
    let expired = count(s, signed, "expired").await?;
    let (_, pending) = s
        .requests(
            caller,
            RequestFilter {
                status: Some(RequestStatus::Pending),
                limit: 1,
                ..Default::default()
            },
        )
        .await?;
    let (_, recoveries) = s
        .recoveries(caller, Some(RecoveryStatus::Pending), 0, 1)
        .await?;
    let mut b = String::from("<section aria-labelledby=\"counts\"><h2 id=\"counts\">Certificates</h2><ul class=\"counts\">");
    for (label, n, href) in [
        ("valid", valid, "/ui/certs?status=valid"),
        ("revoked", revoked, "/ui/certs?status=revoked"),
        ("expired", expired, "/ui/certs?status=expired"),
        ("pending requests", pending, "/ui/requests?status=pending"),
        (
            "pending key recoveries",
            recoveries,
            "/ui/recoveries?status=pending",
        ),
    ] {
        let _ = write!(
            b,
            "<li><a href=\"{href}\"><span class=\"n\" id=\"count-{}\">{n}</span> {label}</a></li>",
            label.replace(' ', "-")
        );
    }
    b.push_str("</ul></section>");
    Ok(b)
}

/// A chart of `times` per day from `from`, and a note when the scan
/// stopped at [`MAX_SCAN`] certificates (`partial`: which ones it counted).
fn add_chart(
    b: &mut String,
    id: &str,
    title: &str,
    (times, from): (Vec<i64>, i64),
    partial: Option<&str>,
) {
    b.push_str(&chart::bars(
        id,
        title,
        &chart::per_day(times, from, DAYS),
        from,
    ));
    if let Some(which) = partial {
        let _ = write!(
            b,
            "<p class=\"hint\">Counted from {which}{MAX_SCAN} certificates only.</p>"
        );
    }
}

/// The charts: issued per day over the last 30 days, expiring per day
/// over the next 30.
async fn charts_section(s: &Service, signed: &Signed, now: i64) -> crate::error::Result<String> {
    // Issued per day: the list is newest first, so stop at the first one
    // issued before the window. Issuance time is notBefore plus the
    // backdate every certificate of this CA gets.
    let backdate = i64::try_from(s.ra.backdate().as_secs()).unwrap_or(0);
    let start = (now - (DAYS as i64 - 1) * DAY).div_euclid(DAY) * DAY;
    let mut issued = Vec::new();
    let partial_issued = scan(s, signed, CertFilter::default(), |c| {
        let at = c.not_before + backdate;
        if at < start {
            return false;
        }
        issued.push(at);
        true
    })
    .await?;
    // Expiring per day: valid ones whose notAfter falls in the next 30 days.
    let mut expiring = Vec::new();
    let partial_expiring = scan(
        s,
        signed,
        CertFilter {
            status: Some("valid".into()),
            expiring_before: Some(now + DAYS as i64 * DAY),
            ..Default::default()
        },
        |c| {
            expiring.push(c.not_after);
            true
        },
    )
    .await?;
    let mut b = String::from(
        "<section aria-labelledby=\"charts\"><h2 id=\"charts\">Issuance and expiry</h2>",
    );
    add_chart(
        &mut b,
        "issued-chart",
        "Certificates issued per day, last 30 days",
        (issued, start),
        partial_issued.then_some("the newest "),
    );
    add_chart(
        &mut b,
        "expiry-chart",
        "Certificates expiring per day, next 30 days",
        (expiring, now),
        partial_expiring.then_some(""),
    );
    b.push_str("</section>");
    Ok(b)
}

/// Recent webhook delivery failures (admins only, as in the API).
async fn webhooks_section(s: &Service, signed: &Signed) -> crate::error::Result<String> {
    let mut b = String::from(
        "<section aria-labelledby=\"hooks\"><h2 id=\"hooks\">Recent webhook delivery failures</h2>",
    );
    if signed.caller().role == Role::Admin {
        let (list, total) = s.store.deliveries(Some("failed"), 0, 10).await?;
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|d| {
                vec![
                    esc(&d.event_type),
                    format!("<code>{}</code>", esc(&d.url)),
                    d.attempts.to_string(),
                    esc(d.last_error.as_deref().unwrap_or("")),
                    esc(&rfc3339(d.created_at)),
                ]
            })
            .collect();
        b.push_str(&html::table(
            &format!("{} of {total} failed deliveries", list.len()),
            &["Event", "URL", "Attempts", "Last error", "Created"],
            &rows,
        ));
    } else {
        b.push_str("<p>Only admins see webhook deliveries.</p>");
    }
    b.push_str("</section>");
    Ok(b)
}

async fn render(s: &Service, signed: &Signed) -> crate::error::Result<String> {
    let now = s.clock.now();
    let mut b = counts_section(s, signed).await?;
    b.push_str(&charts_section(s, signed, now).await?);
    b.push_str(&webhooks_section(s, signed).await?);
    Ok(b)
}
