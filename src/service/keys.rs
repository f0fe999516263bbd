//! Keys the server makes on a subscriber's behalf, and how they are kept.
//!
//! [`KeySpec`] names the key kinds the server will generate (RSA 2048, 3072
//! or 4096 bits; ECDSA on P-256 or P-384) and [`generate`] makes one as an
//! [`rcgen::KeyPair`], ready to go into a certificate and, as PKCS#8, into a
//! download.
//!
//! Private keys that must be kept are sealed under a key-encryption key,
//! [`Kek`], with AES-256-GCM from aws-lc-rs. A sealed blob is
//!
//! ```text
//! version (1 byte, = 1) || nonce (12 random bytes) || ciphertext || tag (16 bytes)
//! ```
//!
//! and the caller's associated data (the certificate's serial number) is
//! authenticated but not stored, so a blob only opens for the certificate
//! it was sealed for.

use std::fmt;

use aws_lc_rs::aead::{self, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;

/// Why a key could not be chosen, made, or sealed / opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// The key kind was neither `rsa` nor `ec`.
    UnsupportedKind(String),
    /// The size is not one offered for that kind.
    UnsupportedSize {
        /// "RSA" or "EC".
        kind: &'static str,
        /// The size asked for, in bits.
        size: u32,
    },
    /// Key generation failed inside aws-lc-rs or rcgen.
    Generation(String),
    /// The key-encryption key text was not base64.
    KekEncoding(String),
    /// The key-encryption key decoded to the wrong number of bytes.
    KekLength(usize),
    /// A sealed blob was shorter than a version byte, a nonce and a tag.
    SealedTooShort(usize),
    /// A sealed blob started with a version this code does not know.
    SealedVersion(u8),
    /// Authentication failed while opening: the key-encryption key or the
    /// associated data differ from the ones used to seal, or the blob was
    /// altered.
    Unseal,
    /// An aws-lc-rs operation failed.
    Crypto(&'static str),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::UnsupportedKind(kind) => write!(
                f,
                "unsupported key type {kind:?}; allowed are \"rsa\" and \"ec\""
            ),
            KeyError::UnsupportedSize { kind: "RSA", size } => write!(
                f,
                "unsupported RSA key size {size}; allowed are 2048, 3072 and 4096"
            ),
            KeyError::UnsupportedSize { kind, size } => write!(
                f,
                "unsupported {kind} key size {size}; allowed are 256 (P-256) and 384 (P-384)"
            ),
            KeyError::Generation(e) => write!(f, "key generation failed: {e}"),
            KeyError::KekEncoding(e) => {
                write!(f, "the key-encryption key is not valid base64: {e}")
            }
            KeyError::KekLength(n) => write!(
                f,
                "the key-encryption key must decode to exactly {KEK_LEN} bytes, got {n}"
            ),
            KeyError::SealedTooShort(n) => write!(
                f,
                "sealed key is {n} bytes long; at least {MIN_SEALED_LEN} are needed"
            ),
            KeyError::SealedVersion(v) => write!(
                f,
                "sealed key has format version {v}; only version {SEAL_VERSION} is known"
            ),
            KeyError::Unseal => write!(
                f,
                "sealed key could not be opened: wrong key-encryption key, wrong certificate serial, or the data was altered"
            ),
            KeyError::Crypto(what) => write!(f, "{what} failed"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A kind and size of key the server can generate.
///
/// The sizes are in bits: 2048, 3072 or 4096 for RSA; 256 (P-256) or 384
/// (P-384) for EC. Build one with [`KeySpec::parse`] to have the size
/// checked early; [`generate`] checks it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeySpec {
    /// RSA with a modulus of this many bits; signs with PKCS#1 v1.5 SHA-256.
    Rsa(u32),
    /// ECDSA on the NIST curve of this many bits; signs with SHA-256 on
    /// P-256 and SHA-384 on P-384.
    Ec(u32),
}

impl KeySpec {
    /// Reads a key kind (`"rsa"` or `"ec"`, any case) and size in bits,
    /// refusing anything the server does not offer.
    pub(crate) fn parse(kind: &str, size: u32) -> Result<KeySpec, KeyError> {
        let spec = if kind.eq_ignore_ascii_case("rsa") {
            KeySpec::Rsa(size)
        } else if kind.eq_ignore_ascii_case("ec") {
            KeySpec::Ec(size)
        } else {
            return Err(KeyError::UnsupportedKind(kind.to_owned()));
        };
        spec.signature_algorithm()?;
        Ok(spec)
    }

    /// The rcgen signature algorithm a key of this spec signs with, or an
    /// error if the size is not offered.
    pub(crate) fn signature_algorithm(
        self,
    ) -> Result<&'static rcgen::SignatureAlgorithm, KeyError> {
        match self {
            KeySpec::Rsa(2048 | 3072 | 4096) => Ok(&rcgen::PKCS_RSA_SHA256),
            KeySpec::Ec(256) => Ok(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeySpec::Ec(384) => Ok(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeySpec::Rsa(size) => Err(KeyError::UnsupportedSize { kind: "RSA", size }),
            KeySpec::Ec(size) => Err(KeyError::UnsupportedSize { kind: "EC", size }),
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Rsa(size) => write!(f, "RSA {size}"),
            KeySpec::Ec(size) => write!(f, "EC P-{size}"),
        }
    }
}

/// Makes a new key pair of the given spec with aws-lc-rs's generator.
///
/// RSA keys are generated by aws-lc-rs directly and handed to rcgen as
/// PKCS#8; EC keys are generated by rcgen (which also uses aws-lc-rs).
/// [`rcgen::KeyPair::serialize_der`] gives the PKCS#8 form either way.
pub(crate) fn generate(spec: KeySpec) -> Result<rcgen::KeyPair, KeyError> {
    let alg = spec.signature_algorithm()?;
    let generation = |e: rcgen::Error| KeyError::Generation(format!("{spec}: {e}"));
    match spec {
        KeySpec::Rsa(bits) => {
            let size = match bits {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                size => return Err(KeyError::UnsupportedSize { kind: "RSA", size }),
            };
            let rsa = aws_lc_rs::rsa::KeyPair::generate(size)
                .map_err(|_| KeyError::Generation(format!("{spec}: aws-lc-rs refused")))?;
            let pkcs8 = rsa
                .as_der()
                .map_err(|_| KeyError::Generation(format!("{spec}: PKCS#8 encoding failed")))?;
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_ref().into(), alg)
                .map_err(generation)
        }
        KeySpec::Ec(_) => rcgen::KeyPair::generate_for(alg).map_err(generation),
    }
}

/// Length of a key-encryption key in bytes (AES-256).
pub(crate) use crate::config::service::KEK_LEN;
/// Format version written as the first byte of every sealed blob.
pub(crate) const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = aead::NONCE_LEN;
const TAG_LEN: usize = 16;
const MIN_SEALED_LEN: usize = 1 + NONCE_LEN + TAG_LEN;

/// A key-encryption key: 32 bytes used with AES-256-GCM to seal private
/// keys for storage.
///
/// Only the aws-lc-rs key schedule is kept, not the raw bytes, and `Debug`
/// prints nothing of it.
pub(crate) struct Kek {
    key: RandomizedNonceKey,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(AES-256-GCM, <redacted>)")
    }
}

impl Kek {
    /// A KEK from its 32 raw bytes.
    pub(crate) fn from_bytes(bytes: &[u8; KEK_LEN]) -> Result<Kek, KeyError> {
        let key = RandomizedNonceKey::new(&aead::AES_256_GCM, bytes)
            .map_err(|_| KeyError::Crypto("AES-256-GCM key setup"))?;
        Ok(Kek { key })
    }

    /// A KEK from base64 text (standard `+/` or URL-safe `-_` alphabet,
    /// padding optional, surrounding whitespace ignored) that must decode to
    /// exactly 32 bytes. Error messages never echo the text.
    pub(crate) fn from_b64(text: &str) -> Result<Kek, KeyError> {
        let mut bytes = decode_base64(text.trim())?;
        let result = match <&[u8; KEK_LEN]>::try_from(bytes.as_slice()) {
            Ok(array) => Kek::from_bytes(array),
            Err(_) => Err(KeyError::KekLength(bytes.len())),
        };
        bytes.fill(0);
        result
    }

    /// Encrypts `plaintext` and authenticates it together with `aad` (the
    /// certificate serial); returns version || nonce || ciphertext || tag.
    /// The nonce is fresh and random for every call.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut body = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut body)
            .map_err(|_| KeyError::Crypto("AES-256-GCM sealing"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Reverses [`Kek::seal`]. Fails unless `sealed` is intact and was made
    /// by this KEK with the same `aad`.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        match sealed.first() {
            None => return Err(KeyError::SealedTooShort(0)),
            Some(&SEAL_VERSION) => {}
            Some(&other) => return Err(KeyError::SealedVersion(other)),
        }
        if sealed.len() < MIN_SEALED_LEN {
            return Err(KeyError::SealedTooShort(sealed.len()));
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN])
            .map_err(|_| KeyError::Crypto("reading the nonce"))?;
        let mut body = sealed[1 + NONCE_LEN..].to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| KeyError::Unseal)?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }
}

/// Decodes key text (see [`crate::config::service::decode_key_text`]).
fn decode_base64(text: &str) -> Result<Vec<u8>, KeyError> {
    crate::config::service::decode_key_text(text).map_err(KeyError::KekEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::Uint;
    use der::{Decode, Encode, Sequence};
    use rcgen::{CertificateParams, PublicKeyData};
    use x509_cert::Certificate;

    /// PKCS#1 `RSAPublicKey`, to read the modulus size back.
    #[derive(Sequence)]
    struct RsaPublicKey {
        modulus: Uint,
        public_exponent: Uint,
    }

    fn modulus_bits(key: &rcgen::KeyPair) -> usize {
        let public = RsaPublicKey::from_der(key.der_bytes()).expect("RSAPublicKey");
        let n = public.modulus.as_bytes();
        n.len() * 8 - n[0].leading_zeros() as usize
    }

    /// The key can sign a certificate, and the certificate carries its
    /// public key.
    fn assert_signs(key: &rcgen::KeyPair) {
        let params = CertificateParams::new(vec!["keys.example".to_owned()]).unwrap();
        let cert = params.self_signed(key).unwrap();
        let parsed = Certificate::from_der(cert.der()).unwrap();
        let spki = parsed
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        assert_eq!(spki, key.subject_public_key_info());
    }

    #[test]
    fn parse_accepts_offered_specs() {
        assert_eq!(KeySpec::parse("rsa", 2048), Ok(KeySpec::Rsa(2048)));
        assert_eq!(KeySpec::parse("RSA", 3072), Ok(KeySpec::Rsa(3072)));
        assert_eq!(KeySpec::parse("Rsa", 4096), Ok(KeySpec::Rsa(4096)));
        assert_eq!(KeySpec::parse("ec", 256), Ok(KeySpec::Ec(256)));
        assert_eq!(KeySpec::parse("EC", 384), Ok(KeySpec::Ec(384)));
        assert_eq!(KeySpec::Rsa(2048).to_string(), "RSA 2048");
        assert_eq!(KeySpec::Ec(384).to_string(), "EC P-384");
    }

    #[test]
    fn parse_refuses_other_specs() {
        for (kind, size) in [("rsa", 1024), ("rsa", 0), ("rsa", 8192), ("rsa", 256)] {
            let err = KeySpec::parse(kind, size).unwrap_err();
            assert_eq!(err, KeyError::UnsupportedSize { kind: "RSA", size });
            assert!(err.to_string().contains("2048, 3072 and 4096"), "{err}");
        }
        for size in [224, 521, 2048, 0] {
            let err = KeySpec::parse("ec", size).unwrap_err();
            assert_eq!(err, KeyError::UnsupportedSize { kind: "EC", size });
            assert!(
                err.to_string().contains("256 (P-256) and 384 (P-384)"),
                "{err}"
            );
        }
        for kind in ["dsa", "ed25519", "ecdsa", "", " rsa", "rsa "] {
            let err = KeySpec::parse(kind, 2048).unwrap_err();
            assert_eq!(err, KeyError::UnsupportedKind(kind.to_owned()));
            assert!(err.to_string().contains("\"rsa\" and \"ec\""), "{err}");
        }
    }

    #[test]
    fn generate_refuses_unsupported_specs() {
        for spec in [
            KeySpec::Rsa(1024),
            KeySpec::Rsa(2047),
            KeySpec::Ec(521),
            KeySpec::Ec(0),
        ] {
            let err = generate(spec).unwrap_err();
            assert!(
                matches!(err, KeyError::UnsupportedSize { .. }),
                "{spec:?}: {err:?}"
            );
        }
    }

    #[test]
    fn generates_ec_keys() {
        for (size, alg, point_len) in [
            (256, &rcgen::PKCS_ECDSA_P256_SHA256, 65),
            (384, &rcgen::PKCS_ECDSA_P384_SHA384, 97),
        ] {
            let key = generate(KeySpec::Ec(size)).unwrap();
            assert_eq!(key.algorithm(), alg);
            // Uncompressed point: 0x04 || x || y.
            assert_eq!(key.der_bytes().len(), point_len);
            assert_eq!(key.der_bytes()[0], 4);
            assert_signs(&key);
            let again = generate(KeySpec::Ec(size)).unwrap();
            assert_ne!(key.der_bytes(), again.der_bytes());
        }
    }

    #[test]
    fn generates_rsa_keys_of_each_size() {
        for size in [2048u32, 3072, 4096] {
            let key = generate(KeySpec::Rsa(size)).unwrap();
            assert_eq!(key.algorithm(), &rcgen::PKCS_RSA_SHA256);
            assert_eq!(modulus_bits(&key), size as usize);
            // The PKCS#8 form reloads as RSA.
            aws_lc_rs::rsa::KeyPair::from_pkcs8(key.serialized_der()).unwrap();
            assert_signs(&key);
        }
    }

    fn test_kek(seed: u8) -> (Kek, [u8; KEK_LEN]) {
        let mut bytes = [0u8; KEK_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = seed.wrapping_add((i as u8).wrapping_mul(37));
        }
        (Kek::from_bytes(&bytes).unwrap(), bytes)
    }

    #[test]
    fn seal_open_round_trip() {
        let (kek, _) = test_kek(1);
        let pkcs8 = generate(KeySpec::Ec(256)).unwrap().serialize_der();
        for plain in [&b""[..], b"x", &pkcs8, &[0u8; 5000]] {
            for aad in [&b""[..], b"\x01\x02\x03serial"] {
                let sealed = kek.seal(plain, aad).unwrap();
                assert_eq!(sealed.len(), 1 + 12 + plain.len() + 16);
                assert_eq!(sealed[0], SEAL_VERSION);
                if plain.len() > 16 {
                    assert!(
                        !sealed.windows(16).any(|w| w == &plain[..16]),
                        "plaintext visible"
                    );
                }
                assert_eq!(kek.open(&sealed, aad).unwrap(), plain);
            }
        }
        // Fresh nonce each time.
        let a = kek.seal(&pkcs8, b"s").unwrap();
        let b = kek.seal(&pkcs8, b"s").unwrap();
        assert_ne!(a[1..13], b[1..13]);
        assert_ne!(a, b);
    }

    #[test]
    fn open_fails_on_every_kind_of_damage() {
        let (kek, _) = test_kek(7);
        let serial = b"\x4f\x2a\x91";
        let sealed = kek.seal(b"private key bytes", serial).unwrap();

        // Wrong KEK.
        let (other, _) = test_kek(8);
        assert_eq!(other.open(&sealed, serial), Err(KeyError::Unseal));
        // Wrong or missing AAD: another certificate's serial.
        assert_eq!(kek.open(&sealed, b"\x4f\x2a\x92"), Err(KeyError::Unseal));
        assert_eq!(kek.open(&sealed, b""), Err(KeyError::Unseal));
        assert_eq!(
            kek.open(&sealed, b"\x4f\x2a\x91\x00"),
            Err(KeyError::Unseal)
        );
        // Every single-bit change anywhere.
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                let err = kek.open(&bad, serial).unwrap_err();
                if i == 0 {
                    assert_eq!(err, KeyError::SealedVersion(SEAL_VERSION ^ (1 << bit)));
                } else {
                    assert_eq!(err, KeyError::Unseal, "byte {i} bit {bit}");
                }
            }
        }
        // Every truncation, and extra bytes.
        for len in 0..sealed.len() {
            let err = kek.open(&sealed[..len], serial).unwrap_err();
            if len < MIN_SEALED_LEN {
                assert_eq!(err, KeyError::SealedTooShort(len));
            } else {
                assert_eq!(err, KeyError::Unseal, "truncated to {len}");
            }
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(kek.open(&longer, serial), Err(KeyError::Unseal));
        // Unknown version, even with the rest intact.
        let mut v2 = sealed.clone();
        v2[0] = 2;
        let err = kek.open(&v2, serial).unwrap_err();
        assert_eq!(err, KeyError::SealedVersion(2));
        assert!(err.to_string().contains("version 2"), "{err}");
        assert!(KeyError::Unseal
            .to_string()
            .contains("wrong key-encryption key"));
        // And the original still opens.
        assert_eq!(kek.open(&sealed, serial).unwrap(), b"private key bytes");
    }

    #[test]
    fn kek_debug_shows_no_key_material() {
        let (kek, bytes) = test_kek(0xA7);
        let shown = format!("{kek:?} {kek:#?}");
        let hex_lower: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hex_upper = hex_lower.to_uppercase();
        let decimal = format!("{:?}", &bytes[..4]);
        let decimal = decimal.trim_matches(|c| c == '[' || c == ']');
        let b64 = encode_base64_for_test(&bytes, false);
        for needle in [&hex_lower[..8], &hex_upper[..8], decimal, &b64[..8]] {
            assert!(!shown.contains(needle), "Debug shows {needle:?}: {shown}");
        }
        assert!(shown.contains("redacted"), "{shown}");
    }

    /// Base64 encoder for tests only (standard or URL-safe, no padding).
    fn encode_base64_for_test(bytes: &[u8], url: bool) -> String {
        let alphabet: &[u8] = if url {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        } else {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        };
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn kek_from_b64_accepts_both_alphabets() {
        // Bytes chosen so the text has '+', '/', '-' and '_' digits.
        let mut bytes = [0u8; KEK_LEN];
        bytes[..6].copy_from_slice(&[0xFB, 0xEF, 0xBE, 0xFF, 0xFF, 0xFF]);
        bytes[31] = 0x42;
        let std = encode_base64_for_test(&bytes, false);
        let url = encode_base64_for_test(&bytes, true);
        assert!(std.contains('+') && std.contains('/'), "{std}");
        assert!(url.contains('-') && url.contains('_'), "{url}");
        assert_eq!(std.len(), 43);

        let reference = Kek::from_bytes(&bytes).unwrap();
        let sealed = reference.seal(b"k", b"serial").unwrap();
        for text in [
            std.clone(),
            format!("{std}="),
            url.clone(),
            format!("{url}="),
            format!("  {std}=\n"),
        ] {
            let kek = Kek::from_b64(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(kek.open(&sealed, b"serial").unwrap(), b"k", "{text:?}");
        }
    }

    #[test]
    fn kek_from_b64_refuses_bad_text() {
        let bytes = [0x5Au8; 33];
        let b64_33 = encode_base64_for_test(&bytes, false);
        let b64_31 = encode_base64_for_test(&bytes[..31], false);
        let b64_32 = encode_base64_for_test(&bytes[..32], false);
        assert_eq!(Kek::from_b64(&b64_33).unwrap_err(), KeyError::KekLength(33));
        assert_eq!(Kek::from_b64(&b64_31).unwrap_err(), KeyError::KekLength(31));
        assert_eq!(Kek::from_b64("").unwrap_err(), KeyError::KekLength(0));
        assert!(KeyError::KekLength(31)
            .to_string()
            .contains("exactly 32 bytes, got 31"));

        let bad = |text: &str| match Kek::from_b64(text) {
            Err(KeyError::KekEncoding(msg)) => msg,
            other => panic!("{text:?} gave {other:?}"),
        };
        let mut star = b64_32.clone();
        star.replace_range(5..6, "*");
        assert!(bad(&star).contains("position 6"));
        let mut inner_pad = b64_32.clone();
        inner_pad.replace_range(5..6, "=");
        bad(&inner_pad);
        bad(&format!("{b64_32}==")); // 46 characters: wrong padding
        bad(&format!("{b64_32}==="));
        // 44 digits decode to 33 bytes; 45 digits cannot end on a byte.
        assert_eq!(
            Kek::from_b64(&format!("{b64_32}A")).unwrap_err(),
            KeyError::KekLength(33)
        );
        assert!(bad(&format!("{b64_32}AA")).contains("45 base64 digits"));
        bad("A");
        // Same digits but the last one has its unused low bits set.
        let last = b64_32.as_bytes()[42];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let pos = alphabet.iter().position(|&c| c == last).unwrap();
        let mut noncanonical = b64_32.clone();
        noncanonical.replace_range(42..43, &(alphabet[pos | 1] as char).to_string());
        assert!(bad(&noncanonical).contains("not canonical"));
        // Messages do not echo the text.
        assert!(!bad(&star).contains(&b64_32[..10]));
    }
}
