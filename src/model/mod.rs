//! Stored facts: the records the store keeps and the rules read.
//!
//! These are not wire types (see `protocol`) and hold no derived state: an
//! order's status, for instance, is computed from its authorizations, its
//! expiry and whether a certificate exists (`ra::state`), never stored.
//!
//! [`service`] holds the operator service's records (requests, batches,
//! recoveries, webhook deliveries), which the store keeps beside these;
//! [`san`] reads the names a certificate is for from its DER.

pub(crate) mod san;
pub(crate) mod service;

use serde::{Deserialize, Serialize};

use crate::protocol::Identifier;

/// Seconds since the Unix epoch. All stored times use it.
pub(crate) type Timestamp = i64;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) struct $name(pub(crate) String);

        impl $name {
            /// A fresh random identifier (96 bits, base64url).
            pub(crate) fn random() -> Self {
                $name(random_id())
            }

            /// Accepts an identifier taken from a URL path if it has the
            /// shape of ours (bounded length, base64url alphabet), so junk
            /// never reaches a query.
            pub(crate) fn parse(s: &str) -> Option<Self> {
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                ok.then(|| $name(s.to_owned()))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An account's identifier, the last segment of its URL.
    AccountId
);
id_type!(
    /// An order's identifier.
    OrderId
);
id_type!(
    /// An authorization's identifier.
    AuthzId
);
id_type!(
    /// A certificate's identifier (not its serial).
    CertId
);

/// 95 random bits, base64url without padding: 16 characters. The first
/// character is a letter (the top bit is cleared), so an id never begins
/// with `-` and reads as a value, not a flag, on a command line.
pub(crate) fn random_id() -> String {
    let mut buf = [0u8; 12];
    crate::rand::fill(&mut buf);
    buf[0] &= 0x7f;
    crate::jose::b64::encode(buf)
}

#[cfg(test)]
#[test]
fn ids_never_begin_with_a_dash() {
    for _ in 0..2000 {
        let id = random_id();
        assert_eq!(id.len(), 16);
        assert!(id.as_bytes()[0].is_ascii_alphabetic(), "{id}");
    }
}

/// Stored account status (RFC 8555 §7.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AccountStatus {
    Valid,
    Deactivated,
    Revoked,
}

impl AccountStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Valid => "valid",
            AccountStatus::Deactivated => "deactivated",
            AccountStatus::Revoked => "revoked",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "valid" => AccountStatus::Valid,
            "deactivated" => AccountStatus::Deactivated,
            "revoked" => AccountStatus::Revoked,
            _ => return None,
        })
    }
}

/// An ACME account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub id: AccountId,
    pub status: AccountStatus,
    /// The account key as RFC 7638 canonical JSON.
    pub jwk: String,
    /// RFC 7638 thumbprint of `jwk`; unique across accounts.
    pub thumbprint: String,
    pub contact: Vec<String>,
    pub tos_agreed: bool,
    pub created_at: Timestamp,
}

/// Challenge types this server knows (RFC 8555 §8, RFC 8737,
/// draft-ietf-acme-dns-account-label, draft-ietf-acme-dns-persist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum ChallengeType {
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "dns-01")]
    Dns01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// dns-01 at a name carrying a label derived from the account URL.
    #[serde(rename = "dns-account-01")]
    DnsAccount01,
    /// A persistent TXT record naming the CA and the account; no token.
    #[serde(rename = "dns-persist-01")]
    DnsPersist01,
}

impl ChallengeType {
    /// Every type, in the order authorizations list them.
    pub(crate) const ALL: [ChallengeType; 5] = [
        ChallengeType::Http01,
        ChallengeType::Dns01,
        ChallengeType::TlsAlpn01,
        ChallengeType::DnsAccount01,
        ChallengeType::DnsPersist01,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChallengeType::Http01 => "http-01",
            ChallengeType::Dns01 => "dns-01",
            ChallengeType::TlsAlpn01 => "tls-alpn-01",
            ChallengeType::DnsAccount01 => "dns-account-01",
            ChallengeType::DnsPersist01 => "dns-persist-01",
        }
    }

    /// Whether the challenge object carries the authorization's token: every
    /// type but dns-persist-01, whose record does not change per
    /// authorization (draft-ietf-acme-dns-persist, "Challenge Object").
    pub(crate) fn has_token(self) -> bool {
        self != ChallengeType::DnsPersist01
    }

    /// Whether the type proves control of a whole domain through DNS, and
    /// so may validate a wildcard (RFC 8555 §7.1.3 allows dns-01; the
    /// dns-account-01 and dns-persist-01 drafts extend it to their types).
    pub(crate) fn validates_wildcards(self) -> bool {
        matches!(
            self,
            ChallengeType::Dns01 | ChallengeType::DnsAccount01 | ChallengeType::DnsPersist01
        )
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        ChallengeType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What is stored about an authorization's progress. `Pending` with no
/// attempt, then the attempt's own states; `Deactivated`/`Revoked` are
/// terminal states set by the client or the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthzState {
    Pending,
    Valid,
    Invalid,
    Deactivated,
    Revoked,
}

impl AuthzState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthzState::Pending => "pending",
            AuthzState::Valid => "valid",
            AuthzState::Invalid => "invalid",
            AuthzState::Deactivated => "deactivated",
            AuthzState::Revoked => "revoked",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => AuthzState::Pending,
            "valid" => AuthzState::Valid,
            "invalid" => AuthzState::Invalid,
            "deactivated" => AuthzState::Deactivated,
            "revoked" => AuthzState::Revoked,
            _ => return None,
        })
    }
}

/// State of the one challenge attempt an authorization may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptState {
    Processing,
    Valid,
    Invalid,
}

impl AttemptState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AttemptState::Processing => "processing",
            AttemptState::Valid => "valid",
            AttemptState::Invalid => "invalid",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "processing" => AttemptState::Processing,
            "valid" => AttemptState::Valid,
            "invalid" => AttemptState::Invalid,
            _ => return None,
        })
    }
}

/// The challenge attempt of an authorization: which type the client chose
/// and how its validation went. As in Boulder, an authorization is settled
/// by its first attempted challenge; the others stay pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub kind: ChallengeType,
    pub state: AttemptState,
    pub started_at: Timestamp,
    pub validated_at: Option<Timestamp>,
    /// Problem document JSON (type, detail) if the validation failed.
    pub error: Option<serde_json::Value>,
    /// RFC 8555 §8.x validation records, as JSON.
    pub records: Option<serde_json::Value>,
}

/// An authorization (RFC 8555 §7.1.4) with its challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authz {
    pub id: AuthzId,
    pub account_id: AccountId,
    /// The identifier without any `*.` prefix.
    pub identifier: Identifier,
    pub wildcard: bool,
    pub state: AuthzState,
    pub expires: Timestamp,
    /// The challenge token (RFC 8555 §8.3), shared by the offered challenges.
    pub token: String,
    pub offered: Vec<ChallengeType>,
    pub attempt: Option<Attempt>,
    pub created_at: Timestamp,
}

/// An order (RFC 8555 §7.1.3) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Order {
    pub id: OrderId,
    pub account_id: AccountId,
    pub identifiers: Vec<Identifier>,
    pub authz_ids: Vec<AuthzId>,
    pub expires: Timestamp,
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
    /// Set while one finalize request holds the order; a lease, so that a
    /// crash mid-issuance never leaves the order processing forever.
    pub processing_until: Option<Timestamp>,
    pub cert_id: Option<CertId>,
    /// A problem document that made the order invalid, if any.
    pub error: Option<serde_json::Value>,
    pub created_at: Timestamp,
    /// The certificate profile chosen at newOrder.
    pub profile: String,
    /// The ARI identifier of the certificate this order replaces (RFC 9773
    /// `replaces`).
    pub replaces: Option<String>,
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Certificate {
    pub id: CertId,
    /// Lowercase hex serial.
    pub serial: String,
    pub account_id: AccountId,
    pub order_id: Option<OrderId>,
    pub der: Vec<u8>,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub issued_at: Timestamp,
    /// When it was revoked, and the RFC 5280 §5.3.1 reason code.
    pub revoked: Option<Revocation>,
    /// The subject common name, or the first name of the certificate when
    /// it has none: what operators search by.
    pub common_name: Option<String>,
}

/// A certificate's revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Revocation {
    pub at: Timestamp,
    pub reason: RevocationReason,
}

/// RFC 5280 §5.3.1 CRLReason codes that may be used (7 is unassigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RevocationReason(u8);

impl RevocationReason {
    pub(crate) const UNSPECIFIED: RevocationReason = RevocationReason(0);
    pub(crate) const SUPERSEDED: RevocationReason = RevocationReason(4);

    /// Accepts 0–6 and 8–10.
    pub(crate) fn from_code(code: i64) -> Option<RevocationReason> {
        match code {
            0..=6 | 8..=10 => Some(RevocationReason(code as u8)),
            _ => None,
        }
    }

    pub(crate) fn code(self) -> u8 {
        self.0
    }
}
