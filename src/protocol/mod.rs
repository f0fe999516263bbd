//! RFC 8555 wire types: the JSON that crosses the network, and nothing else.
//!
//! No I/O and no business rules live here. Request payloads are deserialized
//! into these types (unknown fields are ignored, as RFC 8555 §7 asks of
//! servers for extensibility), responses are serialized from them.

pub(crate) mod names;
pub(crate) mod paths;

use serde::{Deserialize, Serialize};

/// The type of an identifier (RFC 8555 §9.7.7, RFC 8738).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierType {
    Dns,
    Ip,
    /// Any type this server does not know; refused as `unsupportedIdentifier`.
    #[serde(other)]
    Unknown,
}

impl IdentifierType {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierType::Dns => "dns",
            IdentifierType::Ip => "ip",
            IdentifierType::Unknown => "unknown",
        }
    }
}

/// An identifier as it appears on the wire (RFC 8555 §7.1.3, §7.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    pub value: String,
}

impl Identifier {
    pub fn dns(value: impl Into<String>) -> Self {
        Identifier {
            kind: IdentifierType::Dns,
            value: value.into(),
        }
    }

    pub fn ip(value: impl Into<String>) -> Self {
        Identifier {
            kind: IdentifierType::Ip,
            value: value.into(),
        }
    }
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.value)
    }
}

/// The URN prefix of ACME problem types (RFC 8555 §6.7).
pub(crate) const ERROR_NS: &str = "urn:ietf:params:acme:error:";

/// newAccount payload (RFC 8555 §7.3).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewAccount {
    pub contact: Option<Vec<String>>,
    pub terms_of_service_agreed: Option<bool>,
    pub only_return_existing: Option<bool>,
    pub external_account_binding: Option<serde_json::Value>,
}

/// Account update payload (RFC 8555 §7.3.2, §7.3.6).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccountUpdate {
    pub contact: Option<Vec<String>>,
    pub status: Option<String>,
}

/// newOrder payload (RFC 8555 §7.4).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewOrder {
    pub identifiers: Vec<Identifier>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// draft-aaron-acme-profiles: the certificate profile.
    pub profile: Option<String>,
    /// RFC 9773: the ARI identifier of the certificate this order renews.
    pub replaces: Option<String>,
}

/// newAuthz payload (RFC 8555 §7.4.1).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct NewAuthz {
    pub identifier: Identifier,
}

/// A renewalInfo answer (RFC 9773 §4.2).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RenewalInfo {
    pub suggested_window: SuggestedWindow,
    #[serde(rename = "explanationURL", skip_serializing_if = "Option::is_none")]
    pub explanation_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SuggestedWindow {
    pub start: String,
    pub end: String,
}

/// finalize payload (RFC 8555 §7.4).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Finalize {
    pub csr: String,
}

/// The directory (RFC 8555 §7.1.1).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Directory {
    pub new_nonce: String,
    pub new_account: String,
    pub new_order: String,
    pub revoke_cert: String,
    pub key_change: String,
    /// RFC 8555 §7.4.1 pre-authorization.
    pub new_authz: String,
    /// RFC 9773 ARI.
    pub renewal_info: String,
    pub meta: DirectoryMeta,
}

/// Directory `meta` (RFC 8555 §7.1.1).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DirectoryMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms_of_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub caa_identities: Vec<String>,
    pub external_account_required: bool,
    /// draft-aaron-acme-profiles: profile name → description.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub profiles: std::collections::BTreeMap<String, String>,
}

/// An account resource (RFC 8555 §7.1.2).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccountResource {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contact: Vec<String>,
    pub terms_of_service_agreed: bool,
    pub orders: String,
    pub key: serde_json::Value,
    pub created_at: String,
}

/// An order resource (RFC 8555 §7.1.3).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderResource {
    pub status: &'static str,
    pub expires: String,
    pub identifiers: Vec<Identifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    pub authorizations: Vec<String>,
    pub finalize: String,
    /// The order's certificate profile.
    pub profile: String,
    /// RFC 9773: the certificate this order replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// An authorization resource (RFC 8555 §7.1.4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthzResource {
    pub identifier: Identifier,
    pub status: &'static str,
    pub expires: String,
    pub challenges: Vec<ChallengeResource>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub wildcard: bool,
}

/// A challenge resource (RFC 8555 §7.1.5, §8).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChallengeResource {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub url: String,
    pub status: &'static str,
    /// Absent for dns-persist-01, which has no token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// dns-persist-01: the URL the record's `accounturi` must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounturi: Option<String>,
    /// dns-persist-01: the names the record may give as its
    /// issuer-domain-name (draft-ietf-acme-dns-persist).
    #[serde(
        rename = "issuer-domain-names",
        skip_serializing_if = "Option::is_none"
    )]
    pub issuer_domain_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_record: Option<serde_json::Value>,
}

/// The orders list of an account (RFC 8555 §7.1.2.1).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OrdersList {
    pub orders: Vec<String>,
}

/// The inner payload of a keyChange request (RFC 8555 §7.3.5).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyChange {
    pub account: String,
    pub old_key: serde_json::Value,
}

/// revokeCert payload (RFC 8555 §7.6).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RevokeCert {
    /// The certificate, base64url DER.
    pub certificate: String,
    /// RFC 5280 §5.3.1 reason code.
    pub reason: Option<i64>,
}
