//! The HTTPS client of the operator service: bearer token, JSON in and out,
//! RFC 7807 problems turned into one line, bounded answers.
//!
//! Errors are plain strings without the token, the download token or any
//! URL query (they can hold credentials): `METHOD /path: what failed`.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::output::clean;

/// Largest JSON answer read.
pub const MAX_JSON: usize = 4 << 20;
/// Largest download (zip or PKCS#12) read.
pub const MAX_DOWNLOAD: usize = 64 << 20;
/// Largest `--ca-file`.
const MAX_CA_FILE: u64 = 1 << 20;

/// A client of one service, with one token.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    /// Whether the server is trusted through `--ca-file` (for hints).
    own_ca: bool,
}

/// A successful answer.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Client {
    /// A client for `base` (an https URL), sending `token`, trusting
    /// `ca_file` alone when given and the system's roots otherwise.
    pub fn new(base: &Url, token: &str, ca_file: Option<&Path>) -> Result<Client, String> {
        // The crate's one provider (see server::install_crypto_provider).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| "the token has characters a header cannot carry".to_owned())?;
        auth.set_sensitive(true);
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("acme-ca/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120));
        if let Some(path) = ca_file {
            builder = builder.tls_certs_only(read_ca_file(path)?);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTPS client: {}", chain(&e)))?;
        Ok(Client {
            http,
            base: base.clone(),
            auth,
            own_ca: ca_file.is_some(),
        })
    }

    /// The URL of `segments` under the base, each percent-encoded, with
    /// `query` pairs.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// GET a JSON resource.
    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value, String> {
        let url = self.url(segments, query);
        let a = self.send(Method::GET, url, None, true, MAX_JSON).await?;
        json_of(&Method::GET, segments, &a)
    }

    /// POST a JSON body (or none) and read the JSON answer.
    pub async fn post(&self, segments: &[&str], body: Option<&Value>) -> Result<Value, String> {
        let url = self.url(segments, &[]);
        let a = self.send(Method::POST, url, body, true, MAX_JSON).await?;
        json_of(&Method::POST, segments, &a)
    }

    /// GET a file (at most [`MAX_DOWNLOAD`] bytes), with the bearer token
    /// or without it (when the query is the credential).
    pub async fn fetch_file(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        bearer: bool,
    ) -> Result<Answer, String> {
        let url = self.url(segments, query);
        self.send(Method::GET, url, None, bearer, MAX_DOWNLOAD)
            .await
    }

    /// Sends one request; anything but 2xx becomes an error line.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        bearer: bool,
        limit: usize,
    ) -> Result<Answer, String> {
        // Only the path goes into messages: queries may hold tokens.
        let what = format!("{method} {}", url.path());
        let mut req = self
            .http
            .request(method, url)
            .header(ACCEPT, "application/json, application/problem+json, */*");
        if bearer {
            req = req.header(AUTHORIZATION, self.auth.clone());
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let mut resp = req.send().await.map_err(|e| {
            let mut msg = format!(
                "{what}: cannot reach {}: {}",
                self.origin(),
                chain(&e.without_url())
            );
            if !self.own_ca && msg.contains("certificate") {
                msg.push_str(" (trust the server's CA with --ca-file)");
            }
            msg
        })?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !status.is_success() {
            let body = read_limited(&mut resp, MAX_JSON).await.unwrap_or_default();
            return Err(problem_line(status, &body));
        }
        let body = read_limited(&mut resp, limit)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    /// scheme://host:port of the base URL.
    fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }
}

/// The trust anchors of `--ca-file`.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    use std::io::Read;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("--ca-file {shown}: {e}"))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("--ca-file {shown}: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!("--ca-file {shown}: larger than 1 MiB"));
    }
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("--ca-file {shown}: {}", chain(&e)))?;
    if certs.is_empty() {
        return Err(format!("--ca-file {shown}: no PEM CERTIFICATE in it"));
    }
    Ok(certs)
}

/// Reads a body, refusing more than `limit` bytes.
async fn read_limited(resp: &mut reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let too_big = || format!("the answer is larger than {} MiB; refused", limit >> 20);
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", chain(&e.without_url())))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn json_of(method: &Method, segments: &[&str], a: &Answer) -> Result<Value, String> {
    serde_json::from_slice(&a.body).map_err(|e| {
        format!(
            "{method} /{}: the answer ({}) is not JSON: {e}",
            segments.join("/"),
            a.status
        )
    })
}

/// One line for an error answer: `409 conflict: detail` from an RFC 7807
/// problem, else the status and the start of the body.
pub fn problem_line(status: StatusCode, body: &[u8]) -> String {
    let problem: Option<Value> = serde_json::from_slice(body).ok();
    let text = |k: &str| {
        problem
            .as_ref()
            .and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .map(|s| clean(s).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let code = problem
        .as_ref()
        .and_then(|p| p.get("status"))
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(status.as_u16()));
    let title = text("title").unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    });
    // A request that was recorded but failed (500) carries "error".
    match text("detail").or_else(|| text("error")) {
        Some(detail) => format!("{code} {title}: {}", shorten(&detail, 1000)),
        None if problem.is_none() && !body.is_empty() => {
            let raw = clean(&String::from_utf8_lossy(body));
            let raw = raw.trim();
            if raw.is_empty() {
                format!("{code} {title}")
            } else {
                format!("{code} {title}: {}", shorten(raw, 200))
            }
        }
        None => format!("{code} {title}"),
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// An error and its sources on one line, without repeating a source that
/// an outer message already includes.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !msg.is_empty() && !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    clean(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_become_one_line() {
        let body = br#"{"type":"about:blank","title":"conflict","status":409,"detail":"the renewal window opens at 2026-01-01T00:00:00Z (30 days before expiry)"}"#;
        assert_eq!(
            problem_line(StatusCode::CONFLICT, body),
            "409 conflict: the renewal window opens at 2026-01-01T00:00:00Z (30 days before expiry)"
        );
        let body = br#"{"title":"unauthorized","status":401,"detail":"the token\nis not valid"}"#;
        assert_eq!(
            problem_line(StatusCode::UNAUTHORIZED, body),
            "401 unauthorized: the token is not valid"
        );
        assert_eq!(
            problem_line(StatusCode::BAD_GATEWAY, b"<html>\n<b>bad</b>\n</html>"),
            "502 bad gateway: <html> <b>bad</b> </html>"
        );
        assert_eq!(problem_line(StatusCode::NOT_FOUND, b""), "404 not found");
        let failed = br#"{"id":"r1","status":"failed","error":"the CA could not sign"}"#;
        assert_eq!(
            problem_line(StatusCode::INTERNAL_SERVER_ERROR, failed),
            "500 internal server error: the CA could not sign"
        );
    }

    #[test]
    fn urls_encode_segments_and_keep_a_base_path() {
        let base = Url::parse("https://ca.example:8443/api/").unwrap();
        let c = Client::new(&base, "t0ken-0123456789", None).unwrap();
        assert_eq!(
            c.url(&["certs", "0a/../b"], &[("token", "a b&c".into())])
                .as_str(),
            "https://ca.example:8443/api/certs/0a%2F..%2Fb?token=a+b%26c"
        );
        let base = Url::parse("https://localhost:14443").unwrap();
        let c = Client::new(&base, "t0ken-0123456789", None).unwrap();
        assert_eq!(
            c.url(&["profiles"], &[]).as_str(),
            "https://localhost:14443/profiles"
        );
    }
}
