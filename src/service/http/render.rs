//! The JSON bodies of the service's REST API: profiles, certificates,
//! requests and key recoveries as docs/SERVICE.md shows them.

use serde_json::{json, Value};

use crate::clock::rfc3339;
use crate::model::service::{CertRow, Recovery, Request, RequestParams};

/// A service profile as GET /profiles shows it.
pub(super) fn profile_json(name: &str, p: &crate::service::config::ServiceProfileConfig) -> Value {
    json!({
        "name": name,
        "description": p.description,
        "key_types": p.key_types,
        "rsa_sizes": p.rsa_sizes,
        "ec_sizes": p.ec_sizes,
        "validity_seconds": p.validity.as_secs(),
        "extended_key_usages": p.extended_key_usages,
        "required": p.required,
        "approval": match p.approval { crate::service::config::Approval::Auto => "auto", crate::service::config::Approval::Manual => "manual" },
        "renew_before_seconds": p.renew_before.as_secs(),
        "archive_keys": p.archive_keys,
        "key_download_window_seconds": p.key_download_window.as_secs(),
        "recovery_approvals": p.recovery_approvals,
    })
}

/// A certificate as the API shows it (with its PEM when `with_pem`).
pub(super) fn cert_json(c: &CertRow, now: i64, with_pem: bool) -> Value {
    let mut v = json!({
        "serial": c.serial,
        "common_name": c.common_name,
        "not_before": rfc3339(c.not_before),
        "not_after": rfc3339(c.not_after),
        "status": crate::service::cert_status(c, now),
        "source": if c.service.is_some() { "service" } else { "acme" },
    });
    if let Some(r) = &c.revoked {
        v["revoked_at"] = json!(rfc3339(r.at));
        v["revocation_reason"] = json!(crate::service::reason_name(r.reason.code()));
    }
    if let Some(s) = &c.service {
        v["entity_id"] = json!(s.entity_id);
        v["profile"] = json!(s.profile);
        v["requester"] = json!(s.requester);
        v["auto_renew"] = json!(s.auto_renew);
        v["renewed_to"] = json!(s.renewed_to);
        v["request_id"] = json!(s.request_id);
        v["key_archived"] = json!(s.key_sealed.is_some());
    }
    if with_pem {
        v["certificate"] =
            json!(
                der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &c.der)
                    .unwrap_or_default()
            );
    }
    v
}

/// A request as the API shows it.
pub(super) fn request_json(r: &Request) -> Value {
    let mut v = json!({
        "id": r.id,
        "status": r.status.as_str(),
        "requester": r.requester,
        "profile": r.profile,
        "entity_id": r.entity_id,
        "batch_id": r.batch_id,
        "serial": r.serial,
        "error": r.error,
        "created_at": rfc3339(r.created_at),
        "decided_by": r.decided_by,
        "decided_at": r.decided_at.map(rfc3339),
        "reason": r.reason,
    });
    match &r.params {
        RequestParams::Issue {
            names,
            ip_addresses,
            common_name,
            key_type,
            key_size,
            ttl,
            auto_renew,
        } => {
            v["kind"] = json!("issue");
            v["names"] = json!(names);
            v["ip_addresses"] = json!(ip_addresses);
            v["common_name"] = json!(common_name);
            v["key_type"] = json!(key_type);
            v["key_size"] = json!(key_size);
            v["ttl"] = json!(ttl);
            v["auto_renew"] = json!(auto_renew);
        }
        RequestParams::Csr { .. } => {
            v["kind"] = json!("csr");
        }
    }
    v
}

/// A key recovery as the API shows it.
pub(super) fn recovery_json(r: &Recovery) -> Value {
    json!({
        "id": r.id,
        "serial": r.serial,
        "requester": r.requester,
        "status": r.status.as_str(),
        "required": r.required,
        "approvals": r.approvals,
        "created_at": rfc3339(r.created_at),
        "decided_by": r.decided_by,
        "decided_at": r.decided_at.map(rfc3339),
        "reason": r.reason,
    })
}
