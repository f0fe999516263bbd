//! Certificate pages: the list (search, filters, pages; list.rs), one
//! certificate's details (detail.rs), and here the handlers of its
//! actions (download, renew, revoke, key recovery).

mod detail;
mod list;

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

pub(super) use detail::detail;
pub(super) use list::list;

use super::html::{esc, query_value, Flash};
use super::session::PendingDownload;
use super::Posted;
use crate::clock::rfc3339;
use crate::service::{normalize_serial, Format, Service};

/// RFC 5280 §5.3.1 reasons an operator may give (removeFromCRL (8) is
/// for delta CRLs, and 7 is unused).
pub(super) const REASONS: &[(&str, &str)] = &[
    ("unspecified", "unspecified (0)"),
    ("keyCompromise", "keyCompromise (1)"),
    ("cACompromise", "cACompromise (2)"),
    ("affiliationChanged", "affiliationChanged (3)"),
    ("superseded", "superseded (4)"),
    ("cessationOfOperation", "cessationOfOperation (5)"),
    ("certificateHold", "certificateHold (6)"),
    ("privilegeWithdrawn", "privilegeWithdrawn (9)"),
    ("aACompromise", "aACompromise (10)"),
];

fn badge(status: &str) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", esc(status))
}

fn detail_url(serial: &str) -> String {
    format!("/ui/certs/{}", query_value(serial))
}

pub(super) async fn download_token(
    State(s): State<Arc<Service>>,
    posted: Posted<String>,
) -> Response {
    let Posted {
        signed,
        path: serial,
        fields: f,
    } = posted;
    let to = detail_url(&serial);
    let format = match f.text("format") {
        "" | "zip" => Format::Zip,
        "p12" => Format::Pkcs12,
        _ => {
            return signed
                .redirect(&to, Flash::Failed("the format is zip or p12".into()))
                .await
        }
    };
    let password = match (format, f.get("password")) {
        (Format::Pkcs12, Some(p)) if !p.is_empty() => Some(p.to_owned()),
        _ => None,
    };
    let recovery = Some(f.text("recovery"))
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let with_recovery = recovery.is_some();
    match s
        .download_token(signed.caller(), &serial, format, password, recovery)
        .await
    {
        Ok((token, expires)) => {
            let serial = normalize_serial(&serial).unwrap_or(serial);
            let pending = PendingDownload {
                serial: serial.clone(),
                format,
                expires,
                recovery: with_recovery,
            };
            if let Err(e) = signed
                .console
                .sessions
                .add_download(&signed.id, &pending, &token, s.now())
                .await
            {
                return signed.error_page(&e);
            }
            signed
                .redirect(
                    &detail_url(&serial),
                    Flash::Done(format!("The download is ready until {}.", rfc3339(expires))),
                )
                .await
        }
        Err(e) => signed.failure(&to, &e).await,
    }
}

pub(super) async fn download(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted { signed, path, .. } = posted;
    let serial = match normalize_serial(&path) {
        Ok(n) => n,
        Err(e) => return signed.error_page(&e),
    };
    let to = detail_url(&serial);
    let taken = signed
        .console
        .sessions
        .take_download(&signed.id, &serial, s.now())
        .await;
    let token = match taken {
        Ok(Some((_, token))) => token,
        Ok(None) => {
            return signed
                .redirect(
                    &to,
                    Flash::Failed(
                        "no download is ready for this certificate (it expired or was used): \
                         request one"
                            .into(),
                    ),
                )
                .await
        }
        Err(e) => return signed.error_page(&e),
    };
    match s.download(&serial, &token).await {
        Ok(file) => crate::service::http::attachment(file),
        Err(e) => signed.failure(&to, &e).await,
    }
}

pub(super) async fn renew(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted {
        signed,
        path: serial,
        ..
    } = posted;
    match s.renew(signed.caller(), &serial).await {
        Ok(old) => match old.service.as_ref().and_then(|m| m.renewed_to.clone()) {
            Some(new) => {
                signed
                    .redirect(
                        &detail_url(&new),
                        Flash::Done(format!(
                            "Renewed: this certificate replaces {}.",
                            old.serial
                        )),
                    )
                    .await
            }
            None => {
                signed
                    .redirect(&detail_url(&old.serial), Flash::Done("Renewed.".into()))
                    .await
            }
        },
        Err(e) => signed.failure(&detail_url(&serial), &e).await,
    }
}

pub(super) async fn revoke(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted {
        signed,
        path: serial,
        fields,
    } = posted;
    let r = s
        .revoke(signed.caller(), &serial, fields.text("reason"))
        .await;
    signed.outcome(&detail_url(&serial), &r, "Revoked.").await
}

pub(super) async fn recover(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted {
        signed,
        path: serial,
        ..
    } = posted;
    match s.recover(signed.caller(), &serial).await {
        Ok(r) => {
            signed
                .redirect(
                    "/ui/recoveries",
                    Flash::Done(format!(
                        "Key recovery {} requested: it needs {} agent approvals.",
                        r.id, r.required
                    )),
                )
                .await
        }
        Err(e) => signed.failure(&detail_url(&serial), &e).await,
    }
}
