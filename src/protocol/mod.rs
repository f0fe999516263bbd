//! RFC 8555 wire types: the JSON that crosses the network, and nothing else.
//!
//! No I/O and no business rules live here. Request payloads are deserialized
//! into these types (unknown fields are ignored, as RFC 8555 §7 asks of
//! servers for extensibility), responses are serialized from them.

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
