//! The certificate authority: a root, an intermediate that signs leaves, and
//! the checks on what subscribers send us.
//!
//! * [`Ca::load_or_generate`] loads the root and intermediate from configured
//!   PEM files or from the data directory, or generates them on first start.
//!   Everything the issuance hot path needs (the intermediate's name, key
//!   identifier and parsed signing key) is prepared once, there. So are the
//!   [`Chain`]s: the default one and any alternates, each leading from the
//!   same signing intermediate to its own root.
//! * [`csr::parse_and_verify`] and [`csr::check_names`] check a finalize
//!   request's CSR: its self-signature, its key and its names.
//! * [`Ca::issue`] signs a leaf following the CA/Browser Forum Baseline
//!   Requirements TLS subscriber profile. Nothing from the CSR reaches the
//!   certificate except the public key and the (already checked) names.
//!
//! Only aws-lc-rs does cryptography here (through rcgen for signing).

mod chains;
pub mod csr;
mod issuer;
mod leaf;
pub(crate) mod verify;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Result;
use crate::protocol::Identifier;

pub(crate) use crate::config::{KeyAlgorithm, NameStyle, MAX_ALTERNATE_ROOTS, MAX_CHAIN_LENGTH};
pub(crate) use chains::Chain;
pub(crate) use csr::PublicKeyKind;

/// Where the CA's certificates and keys come from, and how to make new ones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct CaSettings {
    /// Key algorithm for a newly generated root and intermediate. Ignored
    /// when they are loaded from files.
    pub key_algorithm: KeyAlgorithm,
    /// PEM file with the root certificate. Set together with
    /// `intermediate_cert` and `intermediate_key` to use an existing CA.
    pub root_cert: Option<PathBuf>,
    /// PEM file with the root's private key. Optional even with an existing
    /// CA (the root key is not needed to issue); when set, it is checked
    /// against `root_cert`.
    pub root_key: Option<PathBuf>,
    /// PEM file with the intermediate certificate, signed by the root.
    pub intermediate_cert: Option<PathBuf>,
    /// PEM file with the intermediate's private key (PKCS#8, SEC1 or PKCS#1).
    pub intermediate_key: Option<PathBuf>,
    /// Start of the generated CA names: "`<prefix> root <6 hex>`" and
    /// "`<prefix> intermediate <6 hex>`" (upper intermediates add
    /// "` #<n>`"). Empty means `"acme-ca"`.
    pub name_prefix: String,
    /// The words after the prefix (see [`NameStyle`]).
    pub name_style: NameStyle,
    /// Intermediates per generated chain, from 1 to 4 (default 1): the
    /// certificate for the signing key plus `chain_length - 1` upper
    /// intermediates between it and the root. Fixed once a data directory
    /// holds a CA (a different value is refused at start). A configured CA
    /// (`root_cert` …) is served as configured; the setting then applies to
    /// the generated alternate chains only.
    pub chain_length: u32,
    /// Generated alternate chains besides the default one, from 0 to 8
    /// (default 0). Each has its own root and issues its own certificate
    /// for the signing key, so every leaf also verifies up to that root.
    /// Stored in the data directory under `chains/`; missing ones are
    /// generated at start, and a lower number serves the first ones only.
    pub alternate_roots: u32,
    /// Operator-supplied alternate chains, served after the generated
    /// ones: PEM files each holding a certificate for the signing
    /// intermediate (same subject name, same key) issued by another CA,
    /// then any further intermediates, then that CA's self-signed root.
    pub alternate_chains: Vec<PathBuf>,
}

impl Default for CaSettings {
    fn default() -> Self {
        CaSettings {
            key_algorithm: KeyAlgorithm::default(),
            root_cert: None,
            root_key: None,
            intermediate_cert: None,
            intermediate_key: None,
            name_prefix: "acme-ca".to_owned(),
            name_style: NameStyle::default(),
            chain_length: 1,
            alternate_roots: 0,
            alternate_chains: Vec::new(),
        }
    }
}

impl From<&crate::config::CaConfig> for CaSettings {
    /// The `[ca]` section as the CA reads it.
    fn from(c: &crate::config::CaConfig) -> Self {
        CaSettings {
            key_algorithm: c.key_algorithm,
            root_cert: c.root_cert.clone(),
            root_key: c.root_key.clone(),
            intermediate_cert: c.intermediate_cert.clone(),
            intermediate_key: c.intermediate_key.clone(),
            name_prefix: c.name.clone(),
            name_style: c.name_style,
            chain_length: c.chain_length,
            alternate_roots: c.alternate_roots,
            alternate_chains: c.alternate_chains.clone(),
        }
    }
}

/// The certificate authority: the signing intermediate's key ready to sign,
/// and the chains from it to one or more roots.
pub(crate) struct Ca {
    /// Chain 0's certificate for the signing key.
    intermediate_der: Vec<u8>,
    /// The earliest expiry in chain 0.
    intermediate_not_after: time::OffsetDateTime,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Chain 0 first; never empty.
    chains: Vec<Chain>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("issuer", &self.issuer)
            .field("intermediate_not_after", &self.intermediate_not_after)
            .field("chains", &self.chains)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Load root+intermediate from the configured PEM files, or else from
    /// `data_dir` (files root.pem, root.key, intermediate.pem,
    /// intermediate.key), or else generate them and write them there
    /// (private keys written with mode 0600, created atomically: write temp
    /// file then rename). Same data_dir ⇒ same CA after restart.
    ///
    /// Then the alternate chains: the generated ones under
    /// `<data_dir>/chains/` (generating those that `alternate_roots` asks
    /// for and that are not stored yet), then the `alternate_chains` files.
    /// The layout is described in the `chains` module.
    ///
    /// Loading checks that each key matches its certificate, that every
    /// certificate of every chain is an unexpired CA certificate issued and
    /// signed by the next one, that every chain starts with a certificate
    /// for the signing intermediate's name and key, and that leaves signed
    /// here name the intermediate byte for byte as their issuer. A data
    /// directory holding only some of the four files, or chains whose
    /// length differs from `chain_length`, is an error (nothing is
    /// overwritten).
    ///
    /// Errors are [`ErrorKind::ServerInternal`](crate::error::ErrorKind) with
    /// a detail meant for the operator (this runs at startup, never on behalf
    /// of a client).
    pub(crate) fn load_or_generate(data_dir: &Path, settings: &CaSettings) -> Result<Ca> {
        issuer::load_or_generate(data_dir, settings)
    }

    /// The signing intermediate as an rcgen issuer (its name, key
    /// identifier and key): what signs leaves, CRLs and OCSP answers.
    pub(crate) fn issuer(&self) -> &rcgen::Issuer<'static, rcgen::KeyPair> {
        &self.issuer
    }

    /// Every chain, the default one (chain 0) first: then the generated
    /// alternates, then the operator-supplied ones.
    pub(crate) fn chains(&self) -> &[Chain] {
        &self.chains
    }

    /// Chain 0's root certificate, PEM.
    pub(crate) fn root_pem(&self) -> &str {
        self.chains[0].root_pem()
    }

    #[cfg(test)]
    /// Chain 0's root certificate, DER.
    pub(crate) fn root_der(&self) -> &[u8] {
        self.chains[0].root_der()
    }

    /// The intermediate certificate that issues leaves, as in chain 0, DER.
    pub(crate) fn intermediate_der(&self) -> &[u8] {
        &self.intermediate_der
    }

    #[cfg(test)]
    /// Chain 0's intermediates, PEM: what follows the leaf in an
    /// `application/pem-certificate-chain` download of the default chain.
    pub(crate) fn chain_pem(&self) -> &str {
        self.chains[0].intermediates_pem()
    }

    /// The earliest expiry among chain 0's certificates (normally the
    /// intermediate's). Leaves should not outlive it.
    pub(crate) fn intermediate_not_after(&self) -> time::OffsetDateTime {
        self.intermediate_not_after
    }

    /// Sign a leaf certificate (Baseline Requirements TLS subscriber
    /// profile) for `req`. Failures are internal errors: the request is
    /// expected to have been checked already.
    pub(crate) fn issue(&self, req: &LeafRequest) -> Result<IssuedCert> {
        leaf::issue(&self.issuer, req)
    }

    /// A certificate for the server's own HTTPS listener (e.g. localhost,
    /// 127.0.0.1, ::1), with a fresh ECDSA P-256 key: returns (chain DER:
    /// [leaf, intermediate], PKCS#8 key DER).
    ///
    /// Valid from five minutes ago for a year, but not past the
    /// intermediate's expiry.
    pub(crate) fn tls_server_identity(
        &self,
        names: &[Identifier],
    ) -> Result<(Vec<Vec<u8>>, Vec<u8>)> {
        leaf::tls_server_identity(self, names)
    }
}

/// What goes into a leaf certificate. Everything here has been checked by the
/// caller (CSR verified, identifiers authorized and policy-checked).
#[derive(Debug, Clone)]
pub(crate) struct LeafRequest<'a> {
    /// The subject's SubjectPublicKeyInfo, DER, from the checked CSR
    /// ([`csr::CheckedCsr::spki_der`], which is in canonical form).
    pub spki_der: &'a [u8],
    /// The kind of that key, to choose key usages.
    pub key_kind: PublicKeyKind,
    /// DNS names and IP addresses for the subjectAltName, in order.
    pub identifiers: &'a [Identifier],
    /// Start of validity (UTC, whole seconds; finer parts are dropped).
    pub not_before: time::OffsetDateTime,
    /// End of validity (UTC, whole seconds; finer parts are dropped).
    pub not_after: time::OffsetDateTime,
    /// AIA caIssuers URL (the server serves the intermediate there).
    pub ca_issuers_url: Option<&'a str>,
    /// AIA OCSP responder URL.
    pub ocsp_url: Option<&'a str>,
    /// cRLDistributionPoints URL.
    pub crl_url: Option<&'a str>,
    /// What the profile puts in the certificate.
    pub profile: &'a LeafProfile,
    /// Add the TLS Feature extension with status_request (OCSP
    /// Must-Staple). Needs `ocsp_url`.
    pub must_staple: bool,
    /// The subject common name, instead of the first DNS name (the
    /// operator service's devices and clients; the profile must allow a
    /// common name). With it, `identifiers` may be empty: no
    /// subjectAltName then.
    pub subject_cn: Option<&'a str>,
}

/// The parts of a certificate profile that shape the leaf itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeafProfile {
    /// Put the first DNS name (when it fits) in the subject's common name.
    pub common_name: bool,
    /// extKeyUsage id-kp-serverAuth.
    pub server_auth: bool,
    /// extKeyUsage id-kp-clientAuth.
    pub client_auth: bool,
    /// keyUsage keyEncipherment for RSA keys (besides digitalSignature).
    pub rsa_key_encipherment: bool,
}

impl Default for LeafProfile {
    /// The Baseline Requirements' classic subscriber certificate.
    fn default() -> Self {
        LeafProfile {
            common_name: true,
            server_auth: true,
            client_auth: true,
            rsa_key_encipherment: true,
        }
    }
}

/// A freshly signed leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssuedCert {
    /// The serial number, big-endian, positive, exactly as in the
    /// certificate's INTEGER (16 bytes).
    pub serial: Vec<u8>,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// Start of validity as written in the certificate (UTC, whole seconds).
    pub not_before: time::OffsetDateTime,
    /// End of validity as written in the certificate (UTC, whole seconds).
    pub not_after: time::OffsetDateTime,
}

/// The keyIdentifier of a certificate's authorityKeyIdentifier extension.
pub(crate) fn authority_key_id(cert: &x509_cert::Certificate) -> Option<Vec<u8>> {
    use der::Decode;
    let ext = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == der::asn1::ObjectIdentifier::new_unwrap("2.5.29.35"))?;
    let aki =
        x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(ext.extn_value.as_bytes()).ok()?;
    aki.key_identifier.map(|k| k.as_bytes().to_vec())
}

/// A serial number as lowercase hex, no separators.
pub fn serial_hex(serial: &[u8]) -> String {
    use std::fmt::Write;
    serial
        .iter()
        .fold(String::with_capacity(serial.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
