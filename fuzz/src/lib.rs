//! What the fuzz targets share: how an input that carries several values is
//! cut into fields, and the fixed certificates and keys some targets sign
//! or package with (fuzz/fixtures, made once with openssl for these targets
//! only; they protect nothing).

/// Separates the fields of a multi-value input. Four bytes that no seed
/// contains by accident (the dictionaries of the targets that use it, fuzz/dict/, hand it to libFuzzer).
pub const SEPARATOR: &[u8] = b"\xf0\x9f\x94\xaa";

/// The fields of `data`, cut at every [`SEPARATOR`]; always at least one
/// (possibly empty) field.
pub fn fields(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        out.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    out.push(rest);
    out
}

/// A certificate and the PKCS#8 DER of its private key.
pub struct Fixture {
    /// What kind of key (for messages).
    pub name: &'static str,
    /// DER X.509 certificate, self-signed.
    pub cert_der: &'static [u8],
    /// Unencrypted PKCS#8 DER private key of `cert_der`.
    pub key_pkcs8_der: &'static [u8],
}

/// One fixture per key kind the service packages: ECDSA P-256, Ed25519 and
/// RSA 2048.
pub const FIXTURES: [Fixture; 3] = [
    Fixture {
        name: "ECDSA P-256",
        cert_der: include_bytes!("../fixtures/p256.cert.der"),
        key_pkcs8_der: include_bytes!("../fixtures/p256.key.der"),
    },
    Fixture {
        name: "Ed25519",
        cert_der: include_bytes!("../fixtures/ed25519.cert.der"),
        key_pkcs8_der: include_bytes!("../fixtures/ed25519.key.der"),
    },
    Fixture {
        name: "RSA 2048",
        cert_der: include_bytes!("../fixtures/rsa2048.cert.der"),
        key_pkcs8_der: include_bytes!("../fixtures/rsa2048.key.der"),
    },
];
