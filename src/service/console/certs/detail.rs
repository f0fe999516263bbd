//! One certificate's page: what it says and where it stands, the
//! actions the caller's role may take on it, its PEM and chain.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use der::Decode;

use super::{badge, REASONS};
use crate::clock::rfc3339;
use crate::model::service::{CertRow, Role, ServiceCert};
use crate::service::console::html::{self, esc};
use crate::service::console::Signed;
use crate::service::{cert_status, reason_name, Format, Service};

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
    match s.ra.ocsp_url() {
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
    let chain = s.ra.default_chain();
    format!(
        "<section aria-labelledby=\"pem\"><h2 id=\"pem\">Certificate (PEM)</h2><pre id=\"cert-pem\">{}</pre>\
         <h2>Chain</h2><p>Intermediates, then the root (the <code>ca.pem</code> of a download).</p>\
         <pre id=\"chain-pem\">{}{}</pre></section>",
        esc(&pem(&c.der)),
        esc(chain.intermediates_pem()),
        esc(chain.root_pem())
    )
}

pub(crate) async fn detail(
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
