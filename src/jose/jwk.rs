//! Public JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) and their
//! thumbprints (RFC 7638).

use std::fmt;
use std::sync::OnceLock;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{
    ParsedPublicKey, RsaParameters, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED,
    ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED, ED25519,
    RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
    RSA_PSS_2048_8192_SHA256,
};
use serde_json::{Map, Value};

use super::{b64, Alg};
use crate::error::{Error, ErrorKind, Result};

/// Smallest RSA modulus a server accepts by default, in bits (see
/// [`Jwk::check_rsa_size`]).
pub(super) const RSA_MIN_BITS: usize = 2048;
/// Smallest RSA modulus that parses at all: weaker keys are a policy
/// matter (`acme-ca pebble` takes 1024-bit keys, as Pebble does), checked
/// where a key enters, by [`Jwk::check_rsa_size`].
pub(super) const RSA_LEGACY_MIN_BITS: usize = 1024;
/// Largest accepted RSA modulus, in bits.
pub(super) const RSA_MAX_BITS: usize = 8192;

/// JWK members that only a private (or symmetric) key has. A JWK carrying
/// any of them is refused: a client must never send its private key.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The kinds of public key this server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA, 2048 to 8192 bits (`kty` `RSA`).
    Rsa,
    /// ECDSA on NIST P-256 (`kty` `EC`, `crv` `P-256`).
    EcP256,
    /// ECDSA on NIST P-384 (`kty` `EC`, `crv` `P-384`).
    EcP384,
    /// ECDSA on NIST P-521 (`kty` `EC`, `crv` `P-521`).
    EcP521,
    /// Ed25519 (`kty` `OKP`, `crv` `Ed25519`).
    Ed25519,
}

impl KeyType {
    /// A short human-readable name, for error details and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::EcP521 => "EC P-521",
            KeyType::Ed25519 => "OKP Ed25519",
        }
    }

    /// Whether a signature algorithm can be used with this key type
    /// (ES256↔P-256, ES384↔P-384, ES512↔P-521, RS*/PS256↔RSA,
    /// EdDSA↔Ed25519).
    pub fn fits(self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (KeyType::EcP256, Alg::Es256)
                | (KeyType::EcP384, Alg::Es384)
                | (KeyType::EcP521, Alg::Es512)
                | (KeyType::Ed25519, Alg::EdDsa)
                | (
                    KeyType::Rsa,
                    Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256
                )
        )
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The RSA verification algorithms, in the order of [`RsaKey::parsed`].
const RSA_PARAMS: [&RsaParameters; 4] = [
    &RSA_PKCS1_2048_8192_SHA256,
    &RSA_PKCS1_2048_8192_SHA384,
    &RSA_PKCS1_2048_8192_SHA512,
    &RSA_PSS_2048_8192_SHA256,
];

/// The same for keys under 2048 bits: aws-lc-rs verifies only RS256 and
/// RS512 for them.
const RSA_LEGACY_PARAMS: [Option<&RsaParameters>; 4] = [
    Some(&RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY),
    None,
    Some(&RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY),
    None,
];

/// An RSA public key. aws-lc-rs binds a parsed key to one verification
/// algorithm, so one is kept per RSA algorithm: RS256's is built when the
/// JWK is parsed (which also validates the components), the others the
/// first time they are used.
#[derive(Clone)]
struct RsaKey {
    /// Modulus, big-endian, no leading zero.
    n: Box<[u8]>,
    /// Public exponent, big-endian, no leading zero.
    e: Box<[u8]>,
    parsed: [OnceLock<ParsedPublicKey>; 4],
}

impl RsaKey {
    fn new(n: Box<[u8]>, e: Box<[u8]>) -> Result<RsaKey> {
        let key = RsaKey {
            n,
            e,
            parsed: Default::default(),
        };
        key.parsed_for(0)?;
        Ok(key)
    }

    /// The parsed key for `RSA_PARAMS[slot]`, built on first use.
    fn parsed_for(&self, slot: usize) -> Result<&ParsedPublicKey> {
        let cell = &self.parsed[slot];
        if let Some(k) = cell.get() {
            return Ok(k);
        }
        let params = if bit_len(&self.n) < RSA_MIN_BITS {
            RSA_LEGACY_PARAMS[slot].ok_or_else(|| {
                Error::new(
                    ErrorKind::BadSignatureAlgorithm,
                    "an RSA key under 2048 bits signs only with RS256 or RS512",
                )
            })?
        } else {
            RSA_PARAMS[slot]
        };
        let components = RsaPublicKeyComponents {
            n: &self.n[..],
            e: &self.e[..],
        };
        let parsed = components
            .to_parsed_public_key(params)
            .map_err(|_| Error::new(ErrorKind::BadPublicKey, "invalid RSA public key"))?;
        Ok(cell.get_or_init(|| parsed))
    }
}

#[derive(Clone)]
enum KeyMaterial {
    P256(ParsedPublicKey),
    P384(ParsedPublicKey),
    P521(ParsedPublicKey),
    Ed25519(ParsedPublicKey),
    Rsa(Box<RsaKey>),
}

/// A parsed, checked public JWK: RSA (2048–8192 bits), EC P-256 / P-384, or
/// OKP Ed25519.
///
/// The key is parsed once, when the `Jwk` is built, into the form the
/// verifier uses. The canonical JSON (RFC 7638 §3.2: required members only,
/// in lexicographic order, no whitespace) and the SHA-256 thumbprint are
/// computed then too. Two `Jwk`s are equal when their canonical JSON is.
#[derive(Clone)]
pub struct Jwk {
    key: KeyMaterial,
    canonical: String,
    thumbprint: String,
}

impl Jwk {
    /// Parses and checks a public JWK given as a JSON object.
    ///
    /// Members other than the required ones (`use`, `alg`, `kid`, ...) are
    /// ignored. RSA `n` and `e` with leading zero octets are accepted and
    /// normalized (the canonical JSON and thumbprint use the minimal form).
    ///
    /// # Errors
    /// - [`ErrorKind::Malformed`]: not an object, a private-key member
    ///   (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) present, a required
    ///   member missing or not a string, or not valid base64url.
    /// - [`ErrorKind::BadPublicKey`]: an unsupported `kty` or `crv`, wrong
    ///   coordinate lengths, a point not on the curve, an RSA modulus outside
    ///   1024–8192 bits, or an unreasonable exponent. Whether a modulus
    ///   under 2048 bits is acceptable is [`Jwk::check_rsa_size`]'s
    ///   question.
    pub fn from_json(v: &Value) -> Result<Jwk> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::malformed("JWK is not a JSON object"))?;
        if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
            return Err(Error::malformed("JWK contains private key material"));
        }
        match required_str(obj, "kty")? {
            "EC" => Jwk::ec_from_json(obj),
            "OKP" => Jwk::okp_from_json(obj),
            "RSA" => Jwk::rsa_from_json(obj),
            _ => Err(bad_key("unsupported key type; accepted: RSA, EC, OKP")),
        }
    }

    /// An EC public key (RFC 7518 §6.2.1): P-256, P-384 or P-521, with
    /// coordinates of the curve's length forming a point on it.
    fn ec_from_json(obj: &Map<String, Value>) -> Result<Jwk> {
        let crv = required_str(obj, "crv")?;
        let (alg, len) = match crv {
            "P-256" => (&ECDSA_P256_SHA256_FIXED, 32),
            "P-384" => (&ECDSA_P384_SHA384_FIXED, 48),
            "P-521" => (&ECDSA_P521_SHA512_FIXED, 66),
            _ => {
                return Err(bad_key(
                    "unsupported EC curve; accepted: P-256, P-384, P-521",
                ))
            }
        };
        let x_b64 = required_str(obj, "x")?;
        let y_b64 = required_str(obj, "y")?;
        let x = decode_member(x_b64, "x")?;
        let y = decode_member(y_b64, "y")?;
        if x.len() != len || y.len() != len {
            return Err(bad_key(
                "EC coordinates have the wrong length for the curve",
            ));
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        let parsed = ParsedPublicKey::new(alg, &point)
            .map_err(|_| bad_key("EC public key is not a point on the curve"))?;
        // Strict decoding makes the input the canonical encoding.
        let canonical = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x_b64}","y":"{y_b64}"}}"#);
        let key = match len {
            32 => KeyMaterial::P256(parsed),
            48 => KeyMaterial::P384(parsed),
            _ => KeyMaterial::P521(parsed),
        };
        Ok(Jwk::build(key, canonical))
    }

    /// An OKP public key (RFC 8037 §2): Ed25519 only.
    fn okp_from_json(obj: &Map<String, Value>) -> Result<Jwk> {
        let crv = required_str(obj, "crv")?;
        if crv != "Ed25519" {
            return Err(bad_key("unsupported OKP curve; accepted: Ed25519"));
        }
        let x_b64 = required_str(obj, "x")?;
        let x = decode_member(x_b64, "x")?;
        if x.len() != 32 {
            return Err(bad_key("Ed25519 public key must be 32 bytes"));
        }
        let parsed = ParsedPublicKey::new(&ED25519, &x)
            .map_err(|_| bad_key("invalid Ed25519 public key"))?;
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x_b64}"}}"#);
        Ok(Jwk::build(KeyMaterial::Ed25519(parsed), canonical))
    }

    /// An RSA public key (RFC 7518 §6.3.1): modulus of 1024 to 8192 bits and
    /// odd, exponent odd, greater than 1 and at most 32 bits.
    fn rsa_from_json(obj: &Map<String, Value>) -> Result<Jwk> {
        let n = decode_member(required_str(obj, "n")?, "n")?;
        let e = decode_member(required_str(obj, "e")?, "e")?;
        let n = strip_leading_zeros(&n);
        let e = strip_leading_zeros(&e);
        let bits = bit_len(n);
        if !(RSA_LEGACY_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(bad_key("RSA key size must be between 2048 and 8192 bits"));
        }
        if n[n.len() - 1] & 1 == 0 {
            return Err(bad_key("RSA modulus must be odd"));
        }
        // e: odd, greater than 1, at most 32 bits.
        if e.is_empty() || e.len() > 4 || e[e.len() - 1] & 1 == 0 || e == [1] {
            return Err(bad_key(
                "RSA public exponent must be odd, greater than 1 and at most 32 bits",
            ));
        }
        let mut canonical = String::with_capacity(32 + (n.len() + e.len()) * 4 / 3);
        canonical.push_str(r#"{"e":""#);
        b64::encode_to(e, &mut canonical);
        canonical.push_str(r#"","kty":"RSA","n":""#);
        b64::encode_to(n, &mut canonical);
        canonical.push_str(r#""}"#);
        let key = RsaKey::new(n.into(), e.into())?;
        Ok(Jwk::build(KeyMaterial::Rsa(Box::new(key)), canonical))
    }

    /// Parses a JWK from JSON text, e.g. a stored [`Jwk::canonical_json`].
    ///
    /// # Errors
    /// [`ErrorKind::Malformed`] if `s` is not JSON; otherwise as
    /// [`Jwk::from_json`].
    pub fn from_json_str(s: &str) -> Result<Jwk> {
        let v: Value = serde_json::from_str(s).map_err(|_| Error::malformed("JWK is not JSON"))?;
        Jwk::from_json(&v)
    }

    fn build(key: KeyMaterial, canonical: String) -> Jwk {
        let digest = digest::digest(&digest::SHA256, canonical.as_bytes());
        Jwk {
            key,
            thumbprint: b64::encode(digest.as_ref()),
            canonical,
        }
    }

    /// The RFC 7638 thumbprint: base64url (no padding) of the SHA-256 of
    /// [`Jwk::canonical_json`].
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The RFC 7638 thumbprint input: the required members only, sorted, no
    /// whitespace. Use it to store the key and to compare keys.
    pub fn canonical_json(&self) -> &str {
        &self.canonical
    }

    /// The canonical JSON as a [`serde_json::Value`], e.g. for the `key`
    /// member of an account object.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.canonical).expect("canonical JWK JSON is valid JSON")
    }

    /// What kind of key this is.
    pub fn key_type(&self) -> KeyType {
        match self.key {
            KeyMaterial::P256(_) => KeyType::EcP256,
            KeyMaterial::P384(_) => KeyType::EcP384,
            KeyMaterial::P521(_) => KeyType::EcP521,
            KeyMaterial::Ed25519(_) => KeyType::Ed25519,
            KeyMaterial::Rsa(_) => KeyType::Rsa,
        }
    }

    /// Refuses an RSA key of fewer than `min_bits` bits (a new account key,
    /// or keyChange's new key); other keys pass.
    ///
    /// # Errors
    /// [`ErrorKind::BadPublicKey`].
    pub fn check_rsa_size(&self, min_bits: usize) -> Result<()> {
        match &self.key {
            KeyMaterial::Rsa(r) if bit_len(&r.n) < min_bits => Err(Error::new(
                ErrorKind::BadPublicKey,
                format!("RSA key size must be between {min_bits} and {RSA_MAX_BITS} bits"),
            )),
            _ => Ok(()),
        }
    }

    /// Whether signatures made with `alg` can come from this key.
    pub fn fits(&self, alg: Alg) -> bool {
        self.key_type().fits(alg)
    }

    /// The key as a DER SubjectPublicKeyInfo (RFC 5280), e.g. to compare
    /// with a certificate's or a CSR's key.
    ///
    /// # Errors
    /// [`ErrorKind::ServerInternal`] if the encoder fails (it should not).
    pub fn to_spki_der(&self) -> Result<Vec<u8>> {
        let parsed = match &self.key {
            KeyMaterial::P256(k)
            | KeyMaterial::P384(k)
            | KeyMaterial::P521(k)
            | KeyMaterial::Ed25519(k) => k,
            KeyMaterial::Rsa(r) => r.parsed_for(0)?,
        };
        let der = parsed
            .as_der()
            .map_err(|_| Error::internal("SPKI encoding failed"))?;
        Ok(der.as_ref().to_vec())
    }

    /// Verifies `signature` over `signing_input` with algorithm `alg`.
    ///
    /// ECDSA signatures are the JOSE fixed-width `r || s` form.
    ///
    /// # Errors
    /// - [`ErrorKind::BadSignatureAlgorithm`] if `alg` does not fit the key
    ///   type.
    /// - [`ErrorKind::Malformed`] with detail `JWS verification error` if the
    ///   signature does not verify.
    pub fn verify(&self, alg: Alg, signing_input: &[u8], signature: &[u8]) -> Result<()> {
        let parsed = match (&self.key, alg) {
            (KeyMaterial::P256(k), Alg::Es256)
            | (KeyMaterial::P384(k), Alg::Es384)
            | (KeyMaterial::P521(k), Alg::Es512)
            | (KeyMaterial::Ed25519(k), Alg::EdDsa) => k,
            (KeyMaterial::Rsa(r), Alg::Rs256) => r.parsed_for(0)?,
            (KeyMaterial::Rsa(r), Alg::Rs384) => r.parsed_for(1)?,
            (KeyMaterial::Rsa(r), Alg::Rs512) => r.parsed_for(2)?,
            (KeyMaterial::Rsa(r), Alg::Ps256) => r.parsed_for(3)?,
            _ => return Err(alg_mismatch(alg, self.key_type())),
        };
        parsed
            .verify_sig(signing_input, signature)
            .map_err(|_| Error::malformed("JWS verification error"))
    }
}

impl PartialEq for Jwk {
    fn eq(&self, other: &Jwk) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for Jwk {}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("key_type", &self.key_type())
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

/// The error for an algorithm that does not fit the key type.
pub(super) fn alg_mismatch(alg: Alg, kt: KeyType) -> Error {
    Error::new(
        ErrorKind::BadSignatureAlgorithm,
        format!(
            "algorithm {} cannot be used with an {} key; accepted algorithms: {}",
            alg.as_str(),
            kt.as_str(),
            super::ACCEPTED_ALGORITHMS_LIST
        ),
    )
}

fn bad_key(detail: &'static str) -> Error {
    Error::new(ErrorKind::BadPublicKey, detail)
}

fn required_str<'a>(obj: &'a Map<String, Value>, member: &'static str) -> Result<&'a str> {
    match obj.get(member) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::malformed(format!(
            "JWK member \"{member}\" is not a string"
        ))),
        None => Err(Error::malformed(format!(
            "JWK member \"{member}\" is missing"
        ))),
    }
}

fn decode_member(s: &str, member: &'static str) -> Result<Vec<u8>> {
    b64::decode(s)
        .map_err(|_| Error::malformed(format!("JWK member \"{member}\" is not valid base64url")))
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// Bit length of a big-endian unsigned integer without leading zero bytes.
fn bit_len(b: &[u8]) -> usize {
    match b.first() {
        None => 0,
        Some(&top) => (b.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}
