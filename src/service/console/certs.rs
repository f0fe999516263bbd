//! Certificate pages: the list (search, filters, pages), one
//! certificate's details, and its actions (download, renew, revoke, key
//! recovery).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use der::Decode;
use serde::Deserialize;

use super::html::{self, esc, query_value, Flash};
use super::session::PendingDownload;
use super::{Posted, Signed};
use crate::clock::rfc3339;
use crate::service::types::{CertFilter, CertRow, Role, ServiceCert};
use crate::service::{cert_status, normalize_serial, reason_name, Format, Service};

/// Certificates a list page shows.
const PAGE: u32 = 25;

/// RFC 5280 §5.3.1 reasons an operator may give (removeFromCRL (8) is
/// for delta CRLs, and 7 is unused).
pub const REASONS: &[(&str, &str)] = &[
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

/// The query of the list page. Dates are `YYYY-MM-DD` (the form's date
/// input) or RFC 3339.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
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

pub async fn list(
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

/// Subject, issuer, DNS names and IP addresses of a certificate.
struct Parsed {
    subject: String,
    issuer: String,
    dns: Vec<String>,
    ips: Vec<String>,
}

fn parse(der_bytes: &[u8]) -> Option<Parsed> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let cert = x509_cert::Certificate::from_der(der_bytes).ok()?;
    let tbs = &cert.tbs_certificate;
    let mut p = Parsed {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        dns: Vec::new(),
        ips: Vec::new(),
    };
    let san_oid = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.17");
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id != san_oid {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).ok()?;
        for n in san.0 {
            match n {
                GeneralName::DnsName(d) => p.dns.push(d.to_string()),
                GeneralName::IpAddress(o) => {
                    let b = o.as_bytes();
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        p.ips.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Some(p)
}

fn pem(der_bytes: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der_bytes).unwrap_or_default()
}

/// `<dt>term</dt><dd>value</dd>`: `value` is HTML already.
fn dd(b: &mut String, term: &str, value: String) {
    let _ = write!(b, "<dt>{}</dt><dd>{value}</dd>", esc(term));
}

/// A list of names, or a dash when there is none.
fn names_or_dash(names: &[String]) -> String {
    if names.is_empty() {
        "—".to_owned()
    } else {
        names.join(", ")
    }
}

/// What this CA's OCSP responder answers for `c` (revoked, else good,
/// expired or not): it reads the same certificate row. Without a status
/// listener there is no responder to speak for.
fn ocsp_fact(s: &Service, c: &CertRow) -> String {
    let ocsp = match &c.revoked {
        Some(r) => format!(
            "<span class=\"badge revoked\">revoked</span> at {} ({})",
            esc(&rfc3339(r.at)),
            reason_name(r.reason.code())
        ),
        None => "<span class=\"badge valid\">good</span>".to_owned(),
    };
    match s.app.ra.urls.ocsp.as_deref() {
        Some(u) => format!("{ocsp} from <code>{}</code>", esc(u)),
        None => "none: this CA runs no OCSP responder (no status listener)".to_owned(),
    }
}

/// The facts of the service's record of a certificate it issued.
fn service_facts(b: &mut String, m: &ServiceCert) {
    dd(b, "Entity", esc(&m.entity_id));
    dd(b, "Profile", esc(&m.profile));
    dd(b, "Requester", esc(&m.requester));
    dd(
        b,
        "Auto-renew",
        if m.auto_renew { "yes" } else { "no" }.to_owned(),
    );
    dd(
        b,
        "Key archived",
        if m.key_sealed.is_some() { "yes" } else { "no" }.to_owned(),
    );
    if let Some(next) = &m.renewed_to {
        dd(
            b,
            "Renewed by",
            format!("<a href=\"/ui/certs/{0}\"><code>{0}</code></a>", esc(next)),
        );
    }
}

/// The "About" section: what the certificate says and where it stands.
fn about_section(s: &Service, c: &CertRow, now: i64) -> String {
    let mut b = String::from("<section aria-labelledby=\"about\"><h2 id=\"about\">About</h2><dl>");
    dd(&mut b, "Serial", format!("<code>{}</code>", esc(&c.serial)));
    dd(&mut b, "Status", badge(cert_status(c, now)));
    dd(
        &mut b,
        "Common name",
        esc(c.common_name.as_deref().unwrap_or("—")),
    );
    if let Some(p) = parse(&c.der) {
        dd(&mut b, "Subject", esc(&p.subject));
        dd(&mut b, "DNS names", esc(&names_or_dash(&p.dns)));
        dd(&mut b, "IP addresses", esc(&names_or_dash(&p.ips)));
        dd(&mut b, "Issuer", esc(&p.issuer));
    }
    dd(&mut b, "Not before", esc(&rfc3339(c.not_before)));
    dd(&mut b, "Not after", esc(&rfc3339(c.not_after)));
    dd(
        &mut b,
        "Source",
        if c.service.is_some() {
            "service"
        } else {
            "ACME"
        }
        .to_owned(),
    );
    dd(&mut b, "OCSP status", ocsp_fact(s, c));
    if let Some(m) = &c.service {
        service_facts(&mut b, m);
    }
    b.push_str("</dl></section>");
    b
}

/// What the actions' forms share: the session's CSRF field and the
/// certificate they act on.
struct Actions<'a> {
    csrf: String,
    serial: &'a str,
}

impl Actions<'_> {
    /// The URL of action `what` on the certificate.
    fn url(&self, what: &str) -> String {
        format!("/ui/certs/{}/{what}", esc(self.serial))
    }

    /// Download: request a token, then (once one is ready in this session)
    /// use it.
    fn download(&self, b: &mut String, signed: &Signed) {
        let csrf = &self.csrf;
        let _ = write!(
            b,
            "<form method=\"post\" action=\"{}\" class=\"card\">{csrf}\
             <fieldset><legend>Request a download</legend>\
             <p><input type=\"radio\" id=\"fmt-zip\" name=\"format\" value=\"zip\" checked>\
             <label for=\"fmt-zip\">zip (ca.pem, cert.pem, key.pem while the key may be downloaded)</label></p>\
             <p><input type=\"radio\" id=\"fmt-p12\" name=\"format\" value=\"p12\">\
             <label for=\"fmt-p12\">PKCS#12</label></p>\
             <p><label for=\"p12-password\">PKCS#12 password</label>\
             <input type=\"password\" id=\"p12-password\" name=\"password\" maxlength=\"128\" autocomplete=\"new-password\"></p>\
             </fieldset><p><button type=\"submit\" id=\"request-download\">Request download</button></p></form>",
            self.url("download-token")
        );
        if let Some(d) = signed
            .session
            .downloads
            .iter()
            .find(|d| d.serial == self.serial)
        {
            let what = match (d.format, d.recovery) {
                (Format::Pkcs12, _) => "PKCS#12 file",
                (Format::Zip, true) => "zip with the recovered key",
                (Format::Zip, false) => "zip",
            };
            let _ = write!(
                b,
                "<form method=\"post\" action=\"{}\" class=\"card ready\">{csrf}\
                 <p role=\"status\">A {what} download is ready until {}.</p>\
                 <p><button type=\"submit\" id=\"download\">Download certificate</button></p></form>",
                self.url("download"),
                esc(&rfc3339(d.expires))
            );
        }
    }

    /// Renew (inside the profile's window, shown disabled with the reason
    /// outside it), and key recovery when the key is archived.
    fn renew(&self, b: &mut String, s: &Service, c: &CertRow, m: &ServiceCert, now: i64) {
        let csrf = &self.csrf;
        let _ = write!(
            b,
            "<form method=\"post\" action=\"{}\" class=\"card\">{csrf}",
            self.url("renew")
        );
        match why_not_renew(s, c, m, now) {
            Some(w) => {
                let _ = write!(
                    b,
                    "<p><button type=\"submit\" id=\"renew\" disabled aria-describedby=\"renew-why\">Renew</button> \
                     <span id=\"renew-why\">{}</span></p>",
                    esc(&w)
                );
            }
            None => b.push_str("<p><button type=\"submit\" id=\"renew\">Renew</button></p>"),
        }
        b.push_str("</form>");
        if m.key_sealed.is_some() && c.revoked.is_none() {
            let _ = write!(
                b,
                "<form method=\"post\" action=\"{}\" class=\"card\">{csrf}<p>\
                 <button type=\"submit\" id=\"recover\">Request key recovery</button> \
                 <span class=\"hint\">after the download window, the key comes back once agents approve</span>\
                 </p></form>",
                self.url("recovery")
            );
        }
    }

    /// Revoke, with an RFC 5280 reason.
    fn revoke(&self, b: &mut String) {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"{}\" class=\"card danger\">{}\
             <p><label for=\"reason\">Revocation reason (RFC 5280)</label><select id=\"reason\" name=\"reason\">",
            self.url("revoke"),
            self.csrf
        );
        for (v, label) in REASONS {
            let _ = write!(b, "<option value=\"{v}\">{label}</option>");
        }
        b.push_str(
            "</select></p><p><button type=\"submit\" id=\"revoke\">Revoke</button></p></form>",
        );
    }
}

/// Why a service certificate cannot be renewed now, if it cannot.
fn why_not_renew(s: &Service, c: &CertRow, m: &ServiceCert, now: i64) -> Option<String> {
    let opens = s
        .profile(&m.profile)
        .ok()
        .map(|p| c.not_after - i64::try_from(p.renew_before.as_secs()).unwrap_or(i64::MAX));
    if c.revoked.is_some() {
        Some("A revoked certificate cannot be renewed.".to_owned())
    } else if let Some(next) = &m.renewed_to {
        Some(format!("Already renewed by {next}."))
    } else {
        match opens {
            Some(o) if now < o => Some(format!("The renewal window opens at {}.", rfc3339(o))),
            None => Some(format!("The profile {} no longer exists.", m.profile)),
            _ => None,
        }
    }
}

/// The "Actions" section: the forms the caller's role may use.
fn actions_section(s: &Service, signed: &Signed, c: &CertRow, now: i64) -> String {
    let role = signed.caller().role;
    let actions = Actions {
        csrf: html::csrf_field(&signed.session.csrf),
        serial: &c.serial,
    };
    let mut b =
        String::from("<section aria-labelledby=\"actions\"><h2 id=\"actions\">Actions</h2>");
    let mut any = false;
    if matches!(role, Role::Admin | Role::Requester) {
        any = true;
        actions.download(&mut b, signed);
    }
    // Renew: service certificates, inside the profile's window.
    if let (Some(m), true) = (&c.service, matches!(role, Role::Admin | Role::Requester)) {
        any = true;
        actions.renew(&mut b, s, c, m, now);
    }
    // Revoke: agents and admins.
    if matches!(role, Role::Admin | Role::Agent) && c.revoked.is_none() {
        any = true;
        actions.revoke(&mut b);
    }
    if !any {
        b.push_str("<p>Nothing your role may do here.</p>");
    }
    b.push_str("</section>");
    b
}

/// The certificate and its chain, PEM.
fn pem_section(s: &Service, c: &CertRow) -> String {
    let chain = &s.app.ra.ca.chains()[0];
    format!(
        "<section aria-labelledby=\"pem\"><h2 id=\"pem\">Certificate (PEM)</h2><pre id=\"cert-pem\">{}</pre>\
         <h2>Chain</h2><p>Intermediates, then the root (the <code>ca.pem</code> of a download).</p>\
         <pre id=\"chain-pem\">{}{}</pre></section>",
        esc(&pem(&c.der)),
        esc(chain.intermediates_pem()),
        esc(chain.root_pem())
    )
}

pub async fn detail(
    State(s): State<Arc<Service>>,
    signed: Signed,
    Path(serial): Path<String>,
) -> Response {
    let c = match s.certificate(signed.caller(), &serial).await {
        Ok(c) => c,
        Err(e) => return signed.error_page(&e),
    };
    let now = s.clock.now();
    let mut b = about_section(&s, &c, now);
    b.push_str(&actions_section(&s, &signed, &c, now));
    b.push_str(&pem_section(&s, &c));
    signed.page(StatusCode::OK, &format!("Certificate {}", c.serial), &b)
}

fn detail_url(serial: &str) -> String {
    format!("/ui/certs/{}", query_value(serial))
}

pub async fn download_token(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted {
        signed,
        path: serial,
        fields: f,
    } = posted;
    let to = detail_url(&serial);
    let format = match f.text("format") {
        "" | "zip" => Format::Zip,
        "p12" => Format::Pkcs12,
        _ => return signed.redirect(&to, Flash::Failed("the format is zip or p12".into())),
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
            signed.console.sessions.add_download(
                &signed.id,
                PendingDownload {
                    serial: serial.clone(),
                    token,
                    format,
                    expires,
                    recovery: with_recovery,
                },
            );
            signed.redirect(
                &detail_url(&serial),
                Flash::Done(format!("The download is ready until {}.", rfc3339(expires))),
            )
        }
        Err(e) => signed.failure(&to, &e),
    }
}

pub async fn download(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted { signed, path, .. } = posted;
    let serial = match normalize_serial(&path) {
        Ok(n) => n,
        Err(e) => return signed.error_page(&e),
    };
    let to = detail_url(&serial);
    let Some(d) = signed.console.sessions.take_download(&signed.id, &serial) else {
        return signed.redirect(
            &to,
            Flash::Failed(
                "no download is ready for this certificate (it expired or was used): request one"
                    .into(),
            ),
        );
    };
    match s.download(&serial, &d.token).await {
        Ok(file) => crate::service::http::attachment(file),
        Err(e) => signed.failure(&to, &e),
    }
}

pub async fn renew(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted {
        signed,
        path: serial,
        ..
    } = posted;
    match s.renew(signed.caller(), &serial).await {
        Ok(old) => match old.service.as_ref().and_then(|m| m.renewed_to.clone()) {
            Some(new) => signed.redirect(
                &detail_url(&new),
                Flash::Done(format!(
                    "Renewed: this certificate replaces {}.",
                    old.serial
                )),
            ),
            None => signed.redirect(&detail_url(&old.serial), Flash::Done("Renewed.".into())),
        },
        Err(e) => signed.failure(&detail_url(&serial), &e),
    }
}

pub async fn revoke(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted {
        signed,
        path: serial,
        fields,
    } = posted;
    let r = s
        .revoke(signed.caller(), &serial, fields.text("reason"))
        .await;
    signed.outcome(&detail_url(&serial), &r, "Revoked.")
}

pub async fn recover(State(s): State<Arc<Service>>, posted: Posted<String>) -> Response {
    let Posted {
        signed,
        path: serial,
        ..
    } = posted;
    match s.recover(signed.caller(), &serial).await {
        Ok(r) => signed.redirect(
            "/ui/recoveries",
            Flash::Done(format!(
                "Key recovery {} requested: it needs {} agent approvals.",
                r.id, r.required
            )),
        ),
        Err(e) => signed.failure(&detail_url(&serial), &e),
    }
}
