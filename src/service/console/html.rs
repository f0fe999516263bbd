//! HTML building for the console: one escaping function every piece of
//! text goes through, and the page frame (navigation, flash message,
//! sign-out form).

use std::fmt::Write as _;

use crate::model::service::{Caller, Role};

/// `s` escaped for HTML text and for attribute values in double or single
/// quotes: `&`, `<`, `>`, `"` and `'` become character references, so
/// nothing from a request, a certificate or the store can open a tag or
/// leave an attribute.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one query-string value (RFC 3986 unreserved characters kept,
/// everything else percent-encoded), for links the console builds.
pub(super) fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A one-shot message shown at the top of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Flash {
    Done(String),
    Failed(String),
}

/// Who is signed in, for the frame.
pub(super) struct Frame<'a> {
    pub caller: Option<&'a Caller>,
    pub csrf: Option<&'a str>,
    pub flash: Option<Flash>,
}

/// The hidden CSRF field every state-changing form carries.
pub(super) fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A whole page: `title` and `body` (already HTML) inside the frame.
pub(super) fn page(title: &str, frame: &Frame<'_>, body: &str) -> String {
    let mut nav = String::new();
    if let (Some(caller), Some(csrf)) = (frame.caller, frame.csrf) {
        let mut links = vec![("/ui/", "Dashboard"), ("/ui/certs", "Certificates")];
        if matches!(caller.role, Role::Admin | Role::Requester) {
            links.push(("/ui/issue", "Issue"));
        }
        links.push(("/ui/requests", "Requests"));
        if matches!(caller.role, Role::Admin | Role::Requester) {
            links.push(("/ui/upload", "Upload CSRs"));
        }
        links.push(("/ui/recoveries", "Key recoveries"));
        nav.push_str("<nav aria-label=\"Main\"><ul>");
        for (href, text) in links {
            let _ = write!(nav, "<li><a href=\"{href}\">{text}</a></li>");
        }
        let _ = write!(
            nav,
            "</ul><form method=\"post\" action=\"/ui/signout\" class=\"signout\">{}\
             <span class=\"who\">{} ({})</span> <button type=\"submit\">Sign out</button></form></nav>",
            csrf_field(csrf),
            esc(&caller.name),
            caller.role.as_str()
        );
    }
    let flash = match &frame.flash {
        Some(Flash::Done(m)) => format!("<p class=\"flash ok\" role=\"status\">{}</p>", esc(m)),
        Some(Flash::Failed(m)) => format!("<p class=\"flash err\" role=\"alert\">{}</p>", esc(m)),
        None => String::new(),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · acme-ca console</title>\
         <link rel=\"stylesheet\" href=\"/ui/static/console.css\"></head>\
         <body><a href=\"#main\" class=\"skip\">Skip to content</a>\
         <header><p class=\"brand\">acme-ca console</p>{nav}</header>\
         <main id=\"main\"><h1>{}</h1>{flash}{body}</main></body></html>\n",
        esc(title),
        esc(title)
    )
}

/// A `<table>` with a caption, header cells and rows of cells that are
/// already HTML.
pub(super) fn table(caption: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = format!("<table><caption>{}</caption><thead><tr>", esc(caption));
    for h in head {
        let _ = write!(t, "<th scope=\"col\">{}</th>", esc(h));
    }
    t.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            t,
            "<tr><td colspan=\"{}\">Nothing to show.</td></tr>",
            head.len()
        );
    }
    for row in rows {
        t.push_str("<tr>");
        for cell in row {
            let _ = write!(t, "<td>{cell}</td>");
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// An error message for a form field, referenced by the field's
/// `aria-describedby` so a screen reader reads it with the field.
pub(super) fn field_error(id: &str, message: Option<&str>) -> String {
    match message {
        Some(m) => format!(
            "<p class=\"field-error\" id=\"{}-error\">{}</p>",
            esc(id),
            esc(m)
        ),
        None => String::new(),
    }
}

/// The `aria-*` attributes of a field that has an error.
pub(super) fn invalid_attrs(id: &str, message: Option<&str>) -> String {
    match message {
        Some(_) => format!(
            " aria-invalid=\"true\" aria-describedby=\"{}-error\"",
            esc(id)
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("plain é"), "plain é");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_value("fleet-7_x.y~"), "fleet-7_x.y~");
    }

    #[test]
    fn table_escapes_caption_and_head() {
        let t = table("<c>", &["<h>"], &[]);
        assert!(t.contains("&lt;c&gt;") && t.contains("&lt;h&gt;"));
        assert!(!t.contains("<c>"));
    }
}
