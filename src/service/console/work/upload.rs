//! CSR upload (pasted PEM or a file, made one batch) and the page of a
//! batch with the outcome of each CSR and its zip download.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::clock::rfc3339;
use crate::model::service::{RequestFilter, RequestStatus};
use crate::service::console::html::{self, esc, query_value, Flash};
use crate::service::console::Signed;
use crate::service::Service;

/// Largest PEM text a CSR upload takes (the body limit is 1 MiB too).
const MAX_UPLOAD_PEM: usize = 512 * 1024;

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

pub(crate) async fn upload_form(State(s): State<Arc<Service>>, signed: Signed) -> Response {
    upload_page(&s, &signed, StatusCode::OK, &UploadForm::default(), None)
}

/// An upload as posted: the form's fields, its CSRF token and the file's
/// text (the first value of each field counts).
#[derive(Default)]
struct Upload {
    form: UploadForm,
    csrf: Option<String>,
    file: String,
}

/// Reads the multipart body; on an error, what was read so far and the
/// error's text.
async fn read_upload(mut mp: Multipart) -> Result<Upload, (UploadForm, String)> {
    let mut u = Upload::default();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(u),
            Err(e) => return Err((u.form, e.body_text())),
        };
        let name = field.name().unwrap_or("").to_owned();
        let text = match field.text().await {
            Ok(t) => t,
            Err(e) => return Err((u.form, e.body_text())),
        };
        let slot = match name.as_str() {
            "csrf" => u.csrf.get_or_insert_with(String::new),
            "profile" => &mut u.form.profile,
            "entity_id" => &mut u.form.entity_id,
            "name" => &mut u.form.name,
            "pem" => &mut u.form.pem,
            "file" => &mut u.file,
            _ => continue,
        };
        if slot.is_empty() {
            *slot = text;
        }
    }
}

pub(crate) async fn upload(
    State(s): State<Arc<Service>>,
    signed: Signed,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let bad =
        |v: &UploadForm, m: &str| upload_page(&s, &signed, StatusCode::BAD_REQUEST, v, Some(m));
    let read = match multipart {
        Ok(mp) => read_upload(mp).await,
        Err(e) => Err((UploadForm::default(), e.body_text())),
    };
    let Upload {
        form: v,
        csrf,
        file,
    } = match read {
        Ok(u) => u,
        Err((v, m)) => return bad(&v, &m),
    };
    if let Err(r) = signed.check_csrf(csrf.as_deref()) {
        return *r;
    }
    let pem = format!("{}\n{}", v.pem, file);
    if pem.len() > MAX_UPLOAD_PEM {
        return bad(&v, "the CSRs are at most 512 KiB");
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
        Ok((batch, requests)) => {
            signed
                .redirect(
                    &format!("/ui/batches/{}", query_value(&batch.id)),
                    Flash::Done(format!(
                        "Uploaded {} CSRs as batch {}.",
                        requests.len(),
                        batch.id
                    )),
                )
                .await
        }
        Err(e) => {
            let (status, message) = crate::service::console::error_status(&e);
            upload_page(&s, &signed, status, &v, Some(&message))
        }
    }
}

pub(crate) async fn batch(
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

pub(crate) async fn batch_download(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match s.batch_zip(signed.caller(), &id).await {
        Ok(d) => crate::service::http::attachment(d),
        Err(e) => signed.error_page(&e),
    }
}
