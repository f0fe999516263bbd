//! Following http-01 redirects: which Location headers lead somewhere the
//! VA may go (RFC 8555 §8.3 and Boulder's rules), and where exactly.
//!
//! A redirect is followed only to an `http` or `https` URL without
//! credentials, to a DNS name (under a public suffix when so configured)
//! or, for IP identifiers, an IP address, on port 80, 443 or one of the two
//! configured ports (any port with `any_redirect_port`). Relative references
//! are resolved against the URL that redirected (RFC 3986 §5.2).

use hyper::header::HeaderValue;
use hyper::http::uri::Authority;
use hyper::{StatusCode, Uri};
use rustls::pki_types::ServerName;
use std::net::IpAddr;

use super::{quote, Host, Http01, Scheme, Target, DEFAULT_HTTPS_PORT, DEFAULT_PORT};
use crate::error::{Error, ErrorKind};

impl Http01 {
    /// The target a redirect from `from` (fetched as `from_url`) to
    /// `location` points to, if it may be followed.
    pub(super) fn redirect_target(
        &self,
        from: &Target,
        from_url: &str,
        location: &HeaderValue,
        ip_identifier: bool,
    ) -> Result<Target, Error> {
        let quoted = quote(location.as_bytes());
        let refuse =
            |why: String| Error::new(ErrorKind::Connection, format!("Fetching {from_url}: {why}"));
        let (scheme, uri) = parse_location(from, location, &quoted).map_err(refuse)?;
        let Some(authority) = uri.authority() else {
            return Err(refuse(format!(
                "Invalid host in redirect target {quoted}: the URL names no host"
            )));
        };
        if authority.as_str().contains('@') {
            return Err(refuse(format!(
                "Invalid host in redirect target {quoted}: credentials in URLs are not supported"
            )));
        }
        let host = self
            .redirect_host(authority.host(), &quoted, ip_identifier)
            .map_err(refuse)?;
        let port = self
            .redirect_port(authority, scheme, &quoted)
            .map_err(refuse)?;
        let path = match uri.path_and_query() {
            Some(pq) if pq.as_str().starts_with('/') => pq.as_str().to_owned(),
            Some(pq) => format!("/{}", pq.as_str()),
            None => "/".to_owned(),
        };
        Ok(Target {
            scheme,
            host,
            port,
            path,
        })
    }

    /// The host a redirect names, if the VA may go there: an IP address
    /// only for IP identifiers, a name only under a public suffix when the
    /// suffix check is on. Errors are the sentence after "Fetching <url>: ".
    fn redirect_host(
        &self,
        raw_host: &str,
        quoted: &str,
        ip_identifier: bool,
    ) -> Result<Host, String> {
        let host = parse_host(raw_host, quoted)?;
        if let Host::Ip(ip) = host {
            if !ip_identifier {
                return Err(format!(
                    "Invalid host in redirect target {quoted}. Only domain names are supported, not IP addresses like {ip}"
                ));
            }
        }
        if let (Host::Name(name), Some(special_use)) = (&host, &self.redirect_suffixes) {
            if !ends_in_public_suffix(name, special_use) {
                return Err(format!(
                    "Invalid host in redirect target {quoted}: {name} does not end in a public suffix (a registered top-level domain)"
                ));
            }
        }
        Ok(host)
    }

    /// The port a redirect leads to: the one it names, if allowed, else the
    /// configured port of its scheme.
    fn redirect_port(
        &self,
        authority: &Authority,
        scheme: Scheme,
        quoted: &str,
    ) -> Result<u16, String> {
        match authority.port_u16() {
            Some(port) => {
                let allowed = [DEFAULT_PORT, DEFAULT_HTTPS_PORT, self.port, self.https_port];
                if !self.any_redirect_port && !allowed.contains(&port) {
                    return Err(format!(
                        "Invalid port in redirect target {quoted}. Only ports {} are supported, not {port}",
                        describe_ports(&allowed)
                    ));
                }
                Ok(port)
            }
            None if authority.port().is_some() => Err(format!(
                "Invalid port in redirect target {quoted}: the port is not a number from 1 to 65535"
            )),
            None => Ok(match scheme {
                Scheme::Http => self.port,
                Scheme::Https => self.https_port,
            }),
        }
    }
}

/// `location` resolved against `from` as an absolute `http` or `https` URL.
fn parse_location(
    from: &Target,
    location: &HeaderValue,
    quoted: &str,
) -> Result<(Scheme, Uri), String> {
    let location = location.to_str().map_err(|_| {
        format!("Invalid redirect target {quoted}: the Location header is not printable ASCII")
    })?;
    let absolute = resolve_reference(from, location.trim());
    if let Some(scheme) = scheme_of(&absolute) {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(format!(
                "Invalid protocol scheme in redirect target {quoted}. Only \"http\" and \"https\" protocol schemes are supported, not {}",
                quote(scheme.as_bytes())
            ));
        }
    }
    let uri: Uri = absolute
        .parse()
        .map_err(|e| format!("Invalid redirect target {quoted}: it is not a valid URL ({e})"))?;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
        Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
        _ => {
            return Err(format!(
                "Invalid redirect target {quoted}: it is not an absolute http or https URL"
            ))
        }
    };
    Ok((scheme, uri))
}

/// The host of a URL's authority: a bracketed IPv6 address, an IPv4
/// address, or a valid DNS name (lowercase, trailing dot removed).
fn parse_host(raw_host: &str, quoted: &str) -> Result<Host, String> {
    if let Some(v6) = raw_host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match v6.parse::<IpAddr>() {
            Ok(ip) => Ok(Host::Ip(ip)),
            Err(_) => Err(format!(
                "Invalid host in redirect target {quoted}: {} is not an IPv6 address",
                quote(v6.as_bytes())
            )),
        };
    }
    if let Ok(ip) = raw_host.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let name = raw_host.trim_end_matches('.').to_ascii_lowercase();
    match ServerName::try_from(name.as_str()) {
        Ok(ServerName::DnsName(_)) => Ok(Host::Name(name)),
        Ok(_) => name.parse().map(Host::Ip).map_err(|_| {
            format!(
                "Invalid host in redirect target {quoted}: {} is neither a DNS name nor an IP address",
                quote(raw_host.as_bytes())
            )
        }),
        Err(_) => Err(format!(
            "Invalid host in redirect target {quoted}: {} is not a valid DNS name",
            quote(raw_host.as_bytes())
        )),
    }
}

/// Whether `name` ends in a suffix the Public Suffix List knows (and is
/// not that suffix itself), or is under one of `special_use`.
pub(super) fn ends_in_public_suffix(name: &str, special_use: &[String]) -> bool {
    let under = |d: &str| name == d || name.strip_suffix(d).is_some_and(|rest| rest.ends_with('.'));
    if special_use.iter().any(|d| under(d)) {
        return true;
    }
    psl::suffix(name.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes().len() < name.len())
}

/// Whether `status` is a redirect that is followed.
pub(super) fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// "80, 443 and 5002", without duplicates.
fn describe_ports(ports: &[u16]) -> String {
    let mut unique: Vec<u16> = Vec::new();
    for &p in ports {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    let words: Vec<String> = unique.iter().map(u16::to_string).collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => words.join(""),
    }
}

/// The scheme of `url` if it starts with one (RFC 3986 §3.1).
fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// `reference` (a Location header) resolved against `base` (RFC 3986
/// §5.2), without its fragment.
pub(super) fn resolve_reference(base: &Target, reference: &str) -> String {
    let reference = reference.split('#').next().unwrap_or("");
    if scheme_of(reference).is_some() {
        return reference.to_owned();
    }
    let origin = format!("{}://{}", base.scheme.as_str(), base.host_header());
    if reference.starts_with("//") {
        return format!("{}:{reference}", base.scheme.as_str());
    }
    let base_path = base.path.split('?').next().unwrap_or("/");
    if reference.is_empty() {
        return format!("{origin}{}", base.path);
    }
    if reference.starts_with('?') {
        return format!("{origin}{base_path}{reference}");
    }
    let (path, query) = match reference.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (reference, None),
    };
    let merged = if path.starts_with('/') {
        path.to_owned()
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{path}")
    };
    let mut out = format!("{origin}{}", remove_dot_segments(&merged));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}
