//! `[ca]`: the issuing hierarchy and the limits on it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{de_duration, de_opt_duration};

/// `[ca]`: the issuing hierarchy and leaf certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// Key algorithm of a generated root and intermediate.
    pub key_algorithm: KeyAlgorithm,
    pub root_cert: Option<PathBuf>,
    pub root_key: Option<PathBuf>,
    pub intermediate_cert: Option<PathBuf>,
    pub intermediate_key: Option<PathBuf>,
    /// Prefix of generated CA names.
    pub name: String,
    /// How generated CA names read: "acme-ca" ("<name> root <tag>",
    /// "<name> intermediate <tag>") or "pebble" ("<name> Root CA <tag>",
    /// "<name> Intermediate CA <tag>", as Pebble names its CAs).
    pub name_style: NameStyle,
    /// Intermediates per generated chain (1–4).
    pub chain_length: u32,
    /// Generated alternate chains, each with its own root (0–8).
    pub alternate_roots: u32,
    /// PEM files of operator-supplied alternate chains.
    pub alternate_chains: Vec<PathBuf>,
    /// Older setting, kept for existing files: when set, the validity of
    /// the default profile's certificates. Profiles set their own.
    #[serde(deserialize_with = "de_opt_duration")]
    pub leaf_validity: Option<Duration>,
    /// How far before the issuance time notBefore is set, to tolerate
    /// clients whose clocks run slow.
    #[serde(deserialize_with = "de_duration")]
    pub backdate: Duration,
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            key_algorithm: KeyAlgorithm::default(),
            root_cert: None,
            root_key: None,
            intermediate_cert: None,
            intermediate_key: None,
            name: "acme-ca".into(),
            name_style: NameStyle::default(),
            chain_length: 1,
            alternate_roots: 0,
            alternate_chains: Vec::new(),
            leaf_validity: None,
            backdate: Duration::from_secs(60),
        }
    }
}

/// The largest `chain_length` (`ca.chain_length`).
pub const MAX_CHAIN_LENGTH: u32 = 4;
/// The largest `alternate_roots` (`ca.alternate_roots`).
pub const MAX_ALTERNATE_ROOTS: u32 = 8;

/// The key algorithm of a generated root and intermediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256, signing with SHA-256 (the default).
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on NIST P-384, signing with SHA-384.
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    /// RSA 2048 bits, PKCS#1 v1.5 signatures with SHA-256.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA 4096 bits, PKCS#1 v1.5 signatures with SHA-256. Slow to generate.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyAlgorithm {
    /// Every algorithm, in the order of the enum.
    pub const ALL: [KeyAlgorithm; 4] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa4096,
    ];

    /// The configuration name: `"ecdsa-p256"`, `"ecdsa-p384"`, `"rsa-2048"`
    /// or `"rsa-4096"`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;

    /// Parses the configuration name (see [`KeyAlgorithm::as_str`]).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown key algorithm {s:?} (expected one of: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-4096)"
                )
            })
    }
}

/// The words of generated CA names, between the prefix and the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NameStyle {
    /// "`<prefix> root <tag>`", "`<prefix> intermediate <tag>`".
    #[default]
    AcmeCa,
    /// "`<prefix> Root CA <tag>`", "`<prefix> Intermediate CA <tag>`":
    /// Pebble's names, which client test suites check (acme.sh's CI looks
    /// for "Pebble Intermediate CA" in every issuer).
    Pebble,
}

impl NameStyle {
    /// The root's and the intermediates' words.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            NameStyle::AcmeCa => ("root", "intermediate"),
            NameStyle::Pebble => ("Root CA", "Intermediate CA"),
        }
    }
}

/// The longest leaf validity the CA/Browser Forum Baseline Requirements
/// allow (398 days, §6.3.2).
pub const MAX_LEAF_VALIDITY: Duration = Duration::from_secs(398 * 86400);
