//! The management API of `pebble-challtestsrv`: JSON bodies POSTed to one
//! path per action (any method is accepted, as in Go's `net/http`).
//!
//! | Path | Body | Effect |
//! |---|---|---|
//! | `/set-default-ipv4` | `{"ip": "10.0.0.1"}` (`""` clears) | default `A` answer |
//! | `/set-default-ipv6` | `{"ip": "::1"}` (`""` clears) | default `AAAA` answer |
//! | `/add-a`, `/add-aaaa` | `{"host": "h", "addresses": ["…"]}` | add address answers |
//! | `/clear-a`, `/clear-aaaa` | `{"host": "h"}` | remove them |
//! | `/add-caa` | `{"host": "h", "policies": [{"tag": "issue", "value": "ca.example"}]}` | add CAA answers |
//! | `/clear-caa` | `{"host": "h"}` | remove them |
//! | `/set-cname` | `{"host": "h", "target": "t"}` | alias `h` to `t` |
//! | `/clear-cname` | `{"host": "h"}` | remove the alias |
//! | `/set-servfail`, `/clear-servfail` | `{"host": "h"}` | SERVFAIL every query for `h`, or stop |
//! | `/set-txt` | `{"host": "_acme-challenge.h.", "value": "v"}` | add a TXT answer (any name: `_validation-persist.h.`, `_<label>._acme-challenge.h.`, …) |
//! | `/clear-txt` | `{"host": "_acme-challenge.h."}` | remove the TXT answers |
//! | `/add-http01` | `{"token": "t", "content": "keyauth"}` | serve an HTTP-01 response |
//! | `/del-http01` | `{"token": "t"}` | remove it |
//! | `/add-redirect` | `{"path": "/p", "targetURL": "https://…"}` | redirect plain HTTP requests for `/p` |
//! | `/del-redirect` | `{"path": "/p"}` | remove it |
//! | `/add-tlsalpn01` | `{"host": "h", "content": "keyauth"}` | serve a TLS-ALPN-01 certificate |
//! | `/del-tlsalpn01` | `{"host": "h"}` | remove it |
//! | `/http-request-history`, `/dns-request-history`, `/tlsalpn01-request-history` | `{"host": "h"}` | JSON list of events |
//! | `/clear-request-history` | `{"host": "h", "type": "http" \| "dns" \| "tlsalpn"}` | forget those events |
//!
//! Field names are matched case-insensitively and unknown fields ignored, as
//! Go's `encoding/json` does. Success is `200 OK` with an empty body (the
//! history endpoints return JSON); a missing or empty required field is
//! `400` with an empty body; an empty or invalid body is `400` with a
//! message; an unknown path is `404`.

use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{accept_loop, CaaPolicy, ChallTestSrv, RequestEventType};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// Longest a connection may stay open.
const CONNECTION_LIMIT: Duration = Duration::from_secs(60);

/// A management API answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type`, if any.
    pub content_type: Option<&'static str>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    fn ok() -> Self {
        Reply {
            status: StatusCode::OK,
            content_type: None,
            body: Vec::new(),
        }
    }

    fn bad_request() -> Self {
        Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: None,
            body: Vec::new(),
        }
    }

    /// Like Go's `http.Error`.
    fn error(status: StatusCode, message: &str) -> Self {
        Reply {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            body: format!("{message}\n").into_bytes(),
        }
    }

    fn json<T: Serialize>(value: &T) -> Self {
        let mut body = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
        let mut ser = serde_json::Serializer::with_formatter(&mut body, formatter);
        if value.serialize(&mut ser).is_err() {
            return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "marshaling history");
        }
        Reply {
            status: StatusCode::OK,
            content_type: Some("application/json; charset=utf-8"),
            body,
        }
    }
}

/// Serves the management API until `stop`.
pub(crate) async fn serve(srv: ChallTestSrv, listener: TcpListener, stop: watch::Receiver<bool>) {
    accept_loop(listener, stop, CONNECTION_LIMIT, move |stream, _| {
        let srv = srv.clone();
        async move {
            let service = hyper::service::service_fn(move |req| {
                let srv = srv.clone();
                async move { Ok::<_, Infallible>(respond(&srv, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await
}

async fn respond(srv: &ChallTestSrv, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let reply = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => srv.manage(&path, &body.to_bytes()),
        Err(e) => Reply::error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = reply.status;
    if let Some(ct) = reply.content_type {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    resp
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HostReq {
    host: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpReq {
    ip: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AddressesReq {
    host: Option<String>,
    addresses: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PolicyReq {
    tag: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CaaReq {
    host: Option<String>,
    policies: Option<Vec<PolicyReq>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CnameReq {
    host: Option<String>,
    target: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TxtReq {
    host: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Http01Req {
    token: Option<String>,
    content: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RedirectReq {
    path: Option<String>,
    targeturl: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TlsAlpnReq {
    host: Option<String>,
    content: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HistoryClearReq {
    host: Option<String>,
    #[serde(rename = "type")]
    typ: Option<String>,
}

/// Lower-cases every object key, so that fields match case-insensitively.
fn lowercase_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// Parses a JSON body the way the Go management server does.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    let err = |m: &str| Reply::error(StatusCode::BAD_REQUEST, m);
    if body.is_empty() {
        return Err(err("expected JSON POST body, was empty"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| err(&e.to_string()))?;
    let value = match lowercase_keys(value) {
        Value::Null => Value::Object(Default::default()),
        v @ Value::Object(_) => v,
        other => {
            let kind = match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            };
            return Err(err(&format!(
                "json: cannot unmarshal {kind} into Go value of type struct"
            )));
        }
    };
    serde_json::from_value(value).map_err(|e| err(&e.to_string()))
}

/// A required non-empty string field.
fn required(field: Option<String>) -> Result<String, Reply> {
    field
        .filter(|s| !s.is_empty())
        .ok_or_else(Reply::bad_request)
}

fn parse_ips<T: std::str::FromStr>(addresses: &[String], family: &str) -> Result<Vec<T>, Reply> {
    addresses
        .iter()
        .map(|a| {
            a.trim().parse().map_err(|_| {
                Reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid {family} address {a:?}"),
                )
            })
        })
        .collect()
}

fn history_host(body: &[u8]) -> Result<String, Reply> {
    let req: HostReq = parse(body)?;
    req.host.filter(|h| !h.is_empty()).ok_or_else(|| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            "host parameter of POST body must not be empty",
        )
    })
}

impl ChallTestSrv {
    /// Handles one management API request: `path` and its body. This is
    /// what the management server runs; tests may call it directly.
    pub fn manage(&self, path: &str, body: &[u8]) -> Reply {
        match self.manage_inner(path, body) {
            Ok(r) | Err(r) => r,
        }
    }

    fn manage_inner(&self, path: &str, body: &[u8]) -> Result<Reply, Reply> {
        match path {
            "/set-default-ipv4" | "/set-default-ipv6" => self.set_default_ip(path, body)?,
            "/add-a" | "/add-aaaa" => self.add_addresses(path, body)?,
            "/clear-a" | "/clear-aaaa" | "/clear-caa" | "/clear-cname" | "/set-servfail"
            | "/clear-servfail" | "/clear-txt" | "/del-tlsalpn01" => {
                self.host_command(path, body)?
            }
            "/add-caa" | "/set-cname" | "/set-txt" => self.set_records(path, body)?,
            "/add-http01" | "/del-http01" | "/add-redirect" | "/del-redirect"
            | "/add-tlsalpn01" => self.set_challenge(path, body)?,
            "/http-request-history" | "/dns-request-history" | "/tlsalpn01-request-history" => {
                return self.history(path, body);
            }
            "/clear-request-history" => self.clear_history(path, body)?,
            _ => return Err(Reply::error(StatusCode::NOT_FOUND, "404 page not found")),
        }
        Ok(Reply::ok())
    }

    /// `/set-default-ipv4` and `/set-default-ipv6`: an empty `ip` clears
    /// the default.
    fn set_default_ip(&self, path: &str, body: &[u8]) -> Result<(), Reply> {
        let req: IpReq = parse(body)?;
        let ip = req.ip.unwrap_or_default();
        if path == "/set-default-ipv4" {
            let ip = if ip.is_empty() {
                None
            } else {
                Some(parse_ips::<Ipv4Addr>(&[ip], "IPv4")?[0])
            };
            self.set_default_ipv4(ip);
            self.log(format_args!("set default IPv4 for A queries to {ip:?}"));
        } else {
            let ip = if ip.is_empty() {
                None
            } else {
                Some(parse_ips::<Ipv6Addr>(&[ip], "IPv6")?[0])
            };
            self.set_default_ipv6(ip);
            self.log(format_args!("set default IPv6 for AAAA queries to {ip:?}"));
        }
        Ok(())
    }

    /// `/add-a` and `/add-aaaa`.
    fn add_addresses(&self, path: &str, body: &[u8]) -> Result<(), Reply> {
        let req: AddressesReq = parse(body)?;
        let addresses = req.addresses.unwrap_or_default();
        if addresses.is_empty() {
            return Err(Reply::bad_request());
        }
        let host = required(req.host)?;
        if path == "/add-a" {
            self.add_a(&host, &parse_ips::<Ipv4Addr>(&addresses, "IPv4")?);
        } else {
            self.add_aaaa(&host, &parse_ips::<Ipv6Addr>(&addresses, "IPv6")?);
        }
        self.log(format_args!("{path} {host:?}: {}", addresses.join(", ")));
        Ok(())
    }

    /// The commands that take only a `host`: clearing its records, its
    /// SERVFAIL mark or its TLS-ALPN-01 response.
    fn host_command(&self, path: &str, body: &[u8]) -> Result<(), Reply> {
        let req: HostReq = parse(body)?;
        let host = required(req.host)?;
        match path {
            "/clear-a" => self.clear_a(&host),
            "/clear-aaaa" => self.clear_aaaa(&host),
            "/clear-caa" => self.clear_caa(&host),
            "/clear-cname" => self.clear_cname(&host),
            "/set-servfail" => self.set_servfail(&host),
            "/clear-servfail" => self.clear_servfail(&host),
            "/clear-txt" => self.clear_txt(&host),
            _ => self.del_tlsalpn01(&host),
        }
        self.log(format_args!("{path} {host:?}"));
        Ok(())
    }

    /// `/add-caa`, `/set-cname` and `/set-txt`.
    fn set_records(&self, path: &str, body: &[u8]) -> Result<(), Reply> {
        match path {
            "/add-caa" => {
                let req: CaaReq = parse(body)?;
                let policies = req.policies.unwrap_or_default();
                if policies.is_empty() {
                    return Err(Reply::bad_request());
                }
                let host = required(req.host)?;
                let policies: Vec<CaaPolicy> = policies
                    .into_iter()
                    .map(|p| CaaPolicy {
                        tag: p.tag.unwrap_or_default(),
                        value: p.value.unwrap_or_default(),
                    })
                    .collect();
                self.add_caa(&host, &policies);
                self.log(format_args!("{path} {host:?}: {policies:?}"));
            }
            "/set-cname" => {
                let req: CnameReq = parse(body)?;
                let host = required(req.host)?;
                let target = required(req.target)?;
                self.set_cname(&host, &target);
                self.log(format_args!("{path} {host:?} -> {target:?}"));
            }
            _ => {
                let req: TxtReq = parse(body)?;
                let host = required(req.host)?;
                let value = required(req.value)?;
                self.set_txt(&host, &value);
                self.log(format_args!("{path} {host:?}: {value:?}"));
            }
        }
        Ok(())
    }

    /// The HTTP-01 responses and redirects, and the TLS-ALPN-01
    /// responses.
    fn set_challenge(&self, path: &str, body: &[u8]) -> Result<(), Reply> {
        match path {
            "/add-http01" | "/del-http01" => {
                let req: Http01Req = parse(body)?;
                let token = required(req.token)?;
                if path == "/add-http01" {
                    let content = required(req.content)?;
                    self.add_http01(&token, &content);
                    self.log(format_args!("{path} {token:?}: {content:?}"));
                } else {
                    self.del_http01(&token);
                    self.log(format_args!("{path} {token:?}"));
                }
            }
            "/add-redirect" | "/del-redirect" => {
                let req: RedirectReq = parse(body)?;
                let p = required(req.path)?;
                if path == "/add-redirect" {
                    let target = required(req.targeturl)?;
                    self.add_redirect(&p, &target);
                    self.log(format_args!("{path} {p:?} -> {target:?}"));
                } else {
                    self.del_redirect(&p);
                    self.log(format_args!("{path} {p:?}"));
                }
            }
            _ => {
                let req: TlsAlpnReq = parse(body)?;
                let host = required(req.host)?;
                let content = required(req.content)?;
                self.add_tlsalpn01(&host, &content);
                self.log(format_args!("{path} {host:?}: {content:?}"));
            }
        }
        Ok(())
    }

    /// The request history of a host, of one kind.
    fn history(&self, path: &str, body: &[u8]) -> Result<Reply, Reply> {
        let host = history_host(body)?;
        Ok(match path {
            "/http-request-history" => Reply::json(&self.http_request_history(&host)),
            "/dns-request-history" => Reply::json(&self.dns_request_history(&host)),
            _ => Reply::json(&self.tlsalpn01_request_history(&host)),
        })
    }

    /// `/clear-request-history`: one kind of a host's history.
    fn clear_history(&self, path: &str, body: &[u8]) -> Result<(), Reply> {
        let req: HistoryClearReq = parse(body)?;
        let host = req.host.filter(|h| !h.is_empty()).ok_or_else(|| {
            Reply::error(StatusCode::BAD_REQUEST, "host parameter must not be empty")
        })?;
        let name = req.typ.unwrap_or_default();
        let typ = RequestEventType::from_api_name(&name).ok_or_else(|| {
            Reply::error(
                StatusCode::BAD_REQUEST,
                &format!("{name:?} event type unknown"),
            )
        })?;
        self.clear_request_history(&host, typ);
        self.log(format_args!("{path} {host:?} {name:?}"));
        Ok(())
    }
}
