//! JOSE for ACME (RFC 8555 §6.2): flattened JWS parsing and verification,
//! public JWKs, RFC 7638 thumbprints and key authorizations.
//!
//! Pure functions, no I/O. The flow for a request is:
//! [`Jws::parse`] the body (structure, header and key checks), look up or
//! take the key named by [`Protected::key`], check the nonce and URL (the
//! caller's business), then [`Jws::verify`].
//!
//! Only aws-lc-rs does cryptography. Keys are parsed once into aws-lc-rs
//! verification keys when a [`Jwk`] is built, and the signing input is kept
//! as the original base64url text, so verification neither re-parses keys
//! nor re-serializes JSON.

pub mod b64;
pub mod eab;
mod jwk;

pub use jwk::Jwk;

use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};

/// Signature algorithms on the allow-list (RFC 8555 §6.2): ES256, ES384,
/// RS256, RS384, RS512, PS256, EdDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256, fixed-width `r || s` signature.
    Es256,
    /// ECDSA P-384 with SHA-384, fixed-width `r || s` signature.
    Es384,
    /// ECDSA P-521 with SHA-512, fixed-width `r || s` signature.
    Es512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256.
    Ps256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

/// The JWS `alg` names this server accepts, in the order of [`Alg::ALL`];
/// the HTTP layer puts them in a `badSignatureAlgorithm` problem's
/// `algorithms` field (RFC 8555 §6.2).
pub(crate) const ACCEPTED_ALGORITHMS: [&str; 8] = [
    "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "EdDSA",
];

/// [`ACCEPTED_ALGORITHMS`] as one comma-separated string, for details.
pub(crate) const ACCEPTED_ALGORITHMS_LIST: &str =
    "ES256, ES384, ES512, RS256, RS384, RS512, PS256, EdDSA";

impl Alg {
    /// Every accepted algorithm.
    pub const ALL: [Alg; 8] = [
        Alg::Es256,
        Alg::Es384,
        Alg::Es512,
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::EdDsa,
    ];

    /// The JWS `alg` name (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Es512 => "ES512",
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// The algorithm named `name` (case-sensitive), if it is accepted.
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The accepted `alg` names ([`ACCEPTED_ALGORITHMS`]).
    pub fn accepted_names() -> &'static [&'static str] {
        &ACCEPTED_ALGORITHMS
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the protected header names the signing key (RFC 8555 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// The key itself (`jwk`): newAccount, revokeCert by certificate key,
    /// the inner JWS of keyChange.
    Jwk(Jwk),
    /// An account URL (`kid`): every other request.
    Kid(String),
}

/// The protected header of an ACME JWS, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// The signature algorithm; on the allow-list, and fitting the key when
    /// the key is a `jwk`.
    pub alg: Alg,
    /// The anti-replay nonce, if present; a non-empty base64url string. The
    /// caller decides whether it is required and whether it is valid.
    pub nonce: Option<String>,
    /// The URL the request was sent to, as the client claims it.
    pub url: String,
    /// The signing key, or the account that names it.
    pub key: KeyRef,
}

/// A flattened JWS (RFC 7515 §7.2.2) as parsed from a request body, checked
/// for structure but not yet verified.
#[derive(Debug, Clone)]
pub struct Jws {
    /// The checked protected header.
    pub protected: Protected,
    /// ASCII(protected_b64 || '.' || payload_b64), exactly as received.
    signing_input: Box<str>,
    /// Where payload_b64 starts in `signing_input`.
    payload_start: usize,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl Jws {
    /// Parses and checks a flattened JWS from a request body.
    ///
    /// Checks, in order: the body is a JSON object with exactly the string
    /// members `protected`, `payload` and `signature` (no `signatures`, no
    /// unprotected `header`, nothing else); each decodes as strict base64url;
    /// the protected header is a JSON object without `crit` or `b64`, with an
    /// accepted `alg`, exactly one of `jwk` and `kid`, a string `url`, and if
    /// present a base64url `nonce`; an embedded `jwk` is a valid public key
    /// that fits `alg`. The caller has already capped the body size.
    ///
    /// # Errors
    /// - [`ErrorKind::BadSignatureAlgorithm`] for an `alg` not on the
    ///   allow-list (detail lists [`ACCEPTED_ALGORITHMS`]) or not fitting the
    ///   `jwk`.
    /// - [`ErrorKind::BadPublicKey`] for an unsupported or invalid `jwk`.
    /// - [`ErrorKind::BadNonce`] for a `nonce` string that is empty or not
    ///   base64url (RFC 8555 §6.5: not a valid nonce).
    /// - [`ErrorKind::Malformed`] for everything else.
    pub fn parse(body: &[u8]) -> Result<Jws> {
        let mut outer: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|_| Error::malformed("request body is not a JSON object"))?;
        if outer.contains_key("signatures") {
            return Err(Error::malformed(
                "JWS general serialization is not supported; use the flattened serialization",
            ));
        }
        if outer.contains_key("header") {
            return Err(Error::malformed("JWS unprotected header is not allowed"));
        }
        if let Some(k) = outer
            .keys()
            .find(|k| !matches!(k.as_str(), "protected" | "payload" | "signature"))
        {
            return Err(Error::malformed(format!(
                "JWS has an unknown member \"{}\"",
                truncate(k)
            )));
        }
        let protected_b64 = take_string(&mut outer, "protected")?;
        let payload_b64 = take_string(&mut outer, "payload")?;
        let signature_b64 = take_string(&mut outer, "signature")?;

        let header_bytes = b64::decode(&protected_b64)
            .map_err(|_| Error::malformed("JWS protected header is not valid base64url"))?;
        let payload = b64::decode(&payload_b64)
            .map_err(|_| Error::malformed("JWS payload is not valid base64url"))?;
        let signature = b64::decode(&signature_b64)
            .map_err(|_| Error::malformed("JWS signature is not valid base64url"))?;

        let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
            .map_err(|_| Error::malformed("JWS protected header is not a JSON object"))?;
        let protected = parse_protected(header)?;

        let mut signing_input = String::with_capacity(protected_b64.len() + 1 + payload_b64.len());
        signing_input.push_str(&protected_b64);
        signing_input.push('.');
        signing_input.push_str(&payload_b64);
        Ok(Jws {
            protected,
            payload_start: protected_b64.len() + 1,
            signing_input: signing_input.into_boxed_str(),
            payload,
            signature,
        })
    }

    /// Verifies the signature over ASCII(protected_b64 || '.' || payload_b64)
    /// with `key` and the header's `alg`.
    ///
    /// # Errors
    /// [`ErrorKind::BadSignatureAlgorithm`] if `alg` does not fit `key`;
    /// [`ErrorKind::Malformed`] `JWS verification error` on a bad signature.
    pub fn verify(&self, key: &Jwk) -> Result<()> {
        key.verify(
            self.protected.alg,
            self.signing_input.as_bytes(),
            &self.signature,
        )
    }

    /// The embedded `jwk`, if the header names the key that way.
    pub fn jwk(&self) -> Option<&Jwk> {
        match &self.protected.key {
            KeyRef::Jwk(k) => Some(k),
            KeyRef::Kid(_) => None,
        }
    }

    /// The `kid` (account URL), if the header names the key that way.
    pub fn kid(&self) -> Option<&str> {
        match &self.protected.key {
            KeyRef::Kid(k) => Some(k),
            KeyRef::Jwk(_) => None,
        }
    }

    /// The decoded payload; empty for POST-as-GET.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Whether the `payload` member is the empty string (POST-as-GET,
    /// RFC 8555 §6.3). A non-empty base64url string never decodes to
    /// nothing, so this is the same as an empty [`Jws::payload`].
    pub fn is_post_as_get(&self) -> bool {
        self.signing_input.len() == self.payload_start
    }

    /// The signing input: ASCII(protected_b64 || '.' || payload_b64).
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The `protected` member as received (base64url).
    pub fn protected_b64(&self) -> &str {
        &self.signing_input[..self.payload_start - 1]
    }

    /// The `payload` member as received (base64url).
    pub fn payload_b64(&self) -> &str {
        &self.signing_input[self.payload_start..]
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// RFC 8555 §8.1 key authorization: `token || '.' || base64url(thumbprint)`.
pub(crate) fn key_authorization(token: &str, jwk: &Jwk) -> String {
    let tp = jwk.thumbprint();
    let mut s = String::with_capacity(token.len() + 1 + tp.len());
    s.push_str(token);
    s.push('.');
    s.push_str(tp);
    s
}

/// The error for an `alg` that is not on the allow-list.
fn unsupported_alg(name: &str) -> Error {
    Error::new(
        ErrorKind::BadSignatureAlgorithm,
        format!(
            "unsupported JWS algorithm \"{}\"; accepted algorithms: {ACCEPTED_ALGORITHMS_LIST}",
            truncate(name)
        ),
    )
}

fn parse_protected(mut h: Map<String, Value>) -> Result<Protected> {
    if h.contains_key("crit") {
        return Err(Error::malformed(
            "JWS \"crit\" header parameter is not supported",
        ));
    }
    if h.contains_key("b64") {
        return Err(Error::malformed(
            "JWS \"b64\" header parameter is not allowed",
        ));
    }
    let alg = match h.get("alg") {
        Some(Value::String(name)) => Alg::from_name(name).ok_or_else(|| unsupported_alg(name))?,
        Some(_) => return Err(Error::malformed("JWS \"alg\" is not a string")),
        None => return Err(Error::malformed("JWS protected header has no \"alg\"")),
    };
    let key = match (h.remove("jwk"), h.remove("kid")) {
        (Some(_), Some(_)) => {
            return Err(Error::malformed(
                "JWS protected header has both \"jwk\" and \"kid\"",
            ))
        }
        (None, None) => {
            return Err(Error::malformed(
                "JWS protected header has neither \"jwk\" nor \"kid\"",
            ))
        }
        (Some(jwk), None) => {
            let jwk = Jwk::from_json(&jwk)?;
            if !jwk.fits(alg) {
                return Err(jwk::alg_mismatch(alg, jwk.key_type()));
            }
            KeyRef::Jwk(jwk)
        }
        (None, Some(Value::String(kid))) => KeyRef::Kid(kid),
        (None, Some(_)) => return Err(Error::malformed("JWS \"kid\" is not a string")),
    };
    let url = match h.remove("url") {
        Some(Value::String(url)) => url,
        Some(_) => return Err(Error::malformed("JWS \"url\" is not a string")),
        None => return Err(Error::malformed("JWS protected header has no \"url\"")),
    };
    let nonce = match h.remove("nonce") {
        None => None,
        Some(Value::String(n)) if b64::is_alphabet(&n) => Some(n),
        Some(Value::String(_)) => {
            return Err(Error::new(
                ErrorKind::BadNonce,
                "JWS \"nonce\" is not a base64url string",
            ))
        }
        Some(_) => return Err(Error::malformed("JWS \"nonce\" is not a string")),
    };
    Ok(Protected {
        alg,
        nonce,
        url,
        key,
    })
}

/// Removes a required string member from the outer JWS object.
fn take_string(outer: &mut Map<String, Value>, member: &'static str) -> Result<String> {
    match outer.remove(member) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::malformed(format!(
            "JWS member \"{member}\" is not a string"
        ))),
        None => Err(Error::malformed(format!("JWS has no \"{member}\" member"))),
    }
}

/// Client-supplied text echoed in a detail, cut to a sane length.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests;
