//! Account keys and JWS signing for ACME requests (RFC 8555 §6.2, RFC 7515).
//!
//! An [`AccountKey`] is an ES256 (ECDSA P-256 / SHA-256) key generated with
//! aws-lc-rs. Everything that does not change between requests (the public
//! JWK, its RFC 7638 thumbprint) is computed once when the key is created, so
//! signing a request costs one ECDSA signature plus a little base64 and string
//! formatting: no key parsing and no JSON tree building per request.
//!
//! Requests are serialised in the *flattened* JWS JSON serialisation
//! (`{"protected":…,"payload":…,"signature":…}`), with the signature in the
//! fixed-width `r || s` form JWS requires for ES256 (64 bytes).

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Base64url without padding, as used everywhere in JOSE and ACME.
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// How the account is identified in the protected header.
#[derive(Debug, Clone, Copy)]
pub enum KeyId<'a> {
    /// Embed the public key (`"jwk"`): used for newAccount (and revocation by
    /// certificate key).
    Jwk,
    /// Refer to an existing account by its URL (`"kid"`).
    Kid(&'a str),
}

/// An ES256 ACME account key.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    /// Public JWK, serialised once with members in lexicographic order (which is
    /// also the order RFC 7638 requires for thumbprints).
    jwk_json: String,
    thumbprint: String,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey")
            .field("jwk", &self.jwk_json)
            .finish_non_exhaustive()
    }
}

impl AccountKey {
    /// Generate a fresh P-256 key.
    pub fn generate() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?;
        Ok(Self::from_key_pair(pair))
    }

    /// Load a P-256 key from PKCS#8 DER (e.g. to reuse a known account).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, aws_lc_rs::error::KeyRejected> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)?;
        Ok(Self::from_key_pair(pair))
    }

    fn from_key_pair(pair: EcdsaKeyPair) -> Self {
        // Uncompressed SEC1 point: 0x04 || X (32 bytes) || Y (32 bytes).
        let point = pair.public_key().as_ref();
        debug_assert_eq!(point.len(), 65);
        let x = b64url(&point[1..33]);
        let y = b64url(&point[33..65]);
        let jwk_json = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = b64url(digest::digest(&digest::SHA256, jwk_json.as_bytes()).as_ref());
        AccountKey {
            pair,
            rng: SystemRandom::new(),
            jwk_json,
            thumbprint,
        }
    }

    /// The public key as a JWK JSON object (canonical member order).
    pub fn jwk_json(&self) -> &str {
        &self.jwk_json
    }

    /// RFC 7638 JWK thumbprint (base64url SHA-256), as used in key authorizations.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The key authorization for a challenge token (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint)
    }

    /// Sign raw bytes; returns the 64-byte `r || s` signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&self.rng, message)
            .expect("ECDSA signing with a valid key does not fail")
            .as_ref()
            .to_vec()
    }

    /// Build the flattened JWS JSON body of an ACME POST.
    ///
    /// `payload` is `None` for POST-as-GET (empty payload string), otherwise
    /// the JSON bytes to send. `nonce` and `url` go into the protected header
    /// as RFC 8555 §6.4 and §6.5 require.
    pub fn sign_request(
        &self,
        id: KeyId<'_>,
        nonce: &str,
        url: &str,
        payload: Option<&[u8]>,
    ) -> Vec<u8> {
        let protected = match id {
            KeyId::Jwk => format!(
                r#"{{"alg":"ES256","jwk":{},"nonce":{},"url":{}}}"#,
                self.jwk_json,
                json_str(nonce),
                json_str(url)
            ),
            KeyId::Kid(kid) => format!(
                r#"{{"alg":"ES256","kid":{},"nonce":{},"url":{}}}"#,
                json_str(kid),
                json_str(nonce),
                json_str(url)
            ),
        };
        let protected_b64 = b64url(protected.as_bytes());
        let payload_b64 = payload.map(b64url).unwrap_or_default();
        let mut signing_input = String::with_capacity(protected_b64.len() + 1 + payload_b64.len());
        signing_input.push_str(&protected_b64);
        signing_input.push('.');
        signing_input.push_str(&payload_b64);
        let signature = b64url(&self.sign(signing_input.as_bytes()));
        format!(r#"{{"protected":"{protected_b64}","payload":"{payload_b64}","signature":"{signature}"}}"#)
            .into_bytes()
    }
}

/// Quote a string as a JSON string literal. Nonces and URLs rarely contain
/// anything that needs escaping, so the fast path is a plain copy.
pub fn json_str(s: &str) -> String {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        out
    } else {
        serde_json::to_string(s).expect("serialising a string cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn signed_request_verifies() {
        let key = AccountKey::generate().unwrap();
        let body = key.sign_request(
            KeyId::Kid("https://x/acct/1"),
            "n0nce",
            "https://x/new-order",
            Some(b"{}"),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let protected = v["protected"].as_str().unwrap();
        let payload = v["payload"].as_str().unwrap();
        let sig = URL_SAFE_NO_PAD
            .decode(v["signature"].as_str().unwrap())
            .unwrap();
        assert_eq!(sig.len(), 64);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "https://x/acct/1");
        assert_eq!(header["nonce"], "n0nce");
        assert_eq!(URL_SAFE_NO_PAD.decode(payload).unwrap(), b"{}");
        let pk = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.pair.public_key().as_ref());
        pk.verify(format!("{protected}.{payload}").as_bytes(), &sig)
            .unwrap();
    }

    #[test]
    fn post_as_get_has_empty_payload_and_jwk() {
        let key = AccountKey::generate().unwrap();
        let body = key.sign_request(KeyId::Jwk, "n", "u", None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["payload"], "");
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(v["protected"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["jwk"]["kty"], "EC");
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert!(header.get("kid").is_none());
    }

    #[test]
    fn json_str_escapes() {
        assert_eq!(json_str("abc"), "\"abc\"");
        assert_eq!(json_str("a\"b"), "\"a\\\"b\"");
    }
}
