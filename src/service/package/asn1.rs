//! The ASN.1 structures of a PKCS#12 file (RFC 7292) and of the PKCS#5
//! and PKCS#7 parts it is made of, as the `der` crate encodes them, with
//! the object identifiers they use. Only what [`super::pkcs12`] writes.

use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::Sequence;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

pub(super) mod oid {
    use der::asn1::ObjectIdentifier as Oid;

    /// PKCS#7 `data`.
    pub(crate) const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    /// PKCS#7 `encryptedData`.
    pub(crate) const ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");
    /// PKCS#12 `pkcs8ShroudedKeyBag`.
    pub(crate) const SHROUDED_KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.2");
    /// PKCS#12 `certBag`.
    pub(crate) const CERT_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.3");
    /// PKCS#9 `x509Certificate` (certificate type inside a `certBag`).
    pub(crate) const X509_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.22.1");
    /// PKCS#9 `friendlyName`.
    pub(crate) const FRIENDLY_NAME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.20");
    /// PKCS#9 `localKeyId`.
    pub(crate) const LOCAL_KEY_ID: Oid = Oid::new_unwrap("1.2.840.113549.1.9.21");
    /// PKCS#5 `PBES2`.
    pub(crate) const PBES2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.13");
    /// PKCS#5 `PBKDF2`.
    pub(crate) const PBKDF2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.12");
    /// `hmacWithSHA256`.
    pub(crate) const HMAC_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.2.9");
    /// `aes256-CBC`.
    pub(crate) const AES_256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
    /// `id-sha256`.
    pub(crate) const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// `rsaEncryption`.
    pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    /// `id-ecPublicKey`.
    pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    /// `prime256v1` (P-256).
    pub(crate) const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    /// `secp384r1` (P-384).
    pub(crate) const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    /// `secp521r1` (P-521).
    pub(crate) const P521: Oid = Oid::new_unwrap("1.3.132.0.35");
    /// `id-Ed25519`.
    pub(crate) const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
}

/// `PFX` (RFC 7292 section 4).
#[derive(Clone, Debug, Sequence)]
pub(super) struct Pfx {
    pub(super) version: u8,
    pub(super) auth_safe: ContentInfo,
    pub(super) mac_data: MacData,
}

/// PKCS#7 `ContentInfo`, with the content kept as an opaque value.
#[derive(Clone, Debug, Sequence)]
pub(super) struct ContentInfo {
    pub(super) content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub(super) content: Any,
}

/// `MacData` (RFC 7292 section 4). `iterations` has DEFAULT 1 in the
/// module, so it may only be written because it is never 1 here.
#[derive(Clone, Debug, Sequence)]
pub(super) struct MacData {
    pub(super) mac: DigestInfo,
    pub(super) mac_salt: OctetString,
    pub(super) iterations: u32,
}

/// `DigestInfo` (PKCS#1).
#[derive(Clone, Debug, Sequence)]
pub(super) struct DigestInfo {
    pub(super) digest_algorithm: AlgorithmIdentifierOwned,
    pub(super) digest: OctetString,
}

/// `SafeBag` (RFC 7292 section 4.2).
#[derive(Clone, Debug, Sequence)]
pub(super) struct SafeBag {
    pub(super) bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub(super) bag_value: Any,
    #[asn1(optional = "true")]
    pub(super) bag_attributes: Option<SetOfVec<Attribute>>,
}

/// `CertBag` (RFC 7292 section 4.2.3).
#[derive(Clone, Debug, Sequence)]
pub(super) struct CertBag {
    pub(super) cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub(super) cert_value: OctetString,
}

/// `EncryptedPrivateKeyInfo` (RFC 5958 section 3).
#[derive(Clone, Debug, Sequence)]
pub(super) struct EncryptedPrivateKeyInfo {
    pub(super) encryption_algorithm: AlgorithmIdentifierOwned,
    pub(super) encrypted_data: OctetString,
}

/// PKCS#7 `EncryptedData`.
#[derive(Clone, Debug, Sequence)]
pub(super) struct EncryptedData {
    pub(super) version: u8,
    pub(super) encrypted_content_info: EncryptedContentInfo,
}

/// PKCS#7 `EncryptedContentInfo`.
#[derive(Clone, Debug, Sequence)]
pub(super) struct EncryptedContentInfo {
    pub(super) content_type: ObjectIdentifier,
    pub(super) content_encryption_algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub(super) encrypted_content: Option<OctetString>,
}

/// `PBES2-params` (RFC 8018 appendix A.4).
#[derive(Clone, Debug, Sequence)]
pub(super) struct Pbes2Params {
    pub(super) key_derivation_func: AlgorithmIdentifierOwned,
    pub(super) encryption_scheme: AlgorithmIdentifierOwned,
}

/// `PBKDF2-params` (RFC 8018 appendix A.2) as written here: the salt is
/// always given inline, `keyLength` is left out (AES-256 fixes it) and the
/// PRF is always spelled out because it is not the SHA-1 default.
#[derive(Clone, Debug, Sequence)]
pub(super) struct Pbkdf2Params {
    pub(super) salt: OctetString,
    pub(super) iteration_count: u32,
    pub(super) prf: AlgorithmIdentifierOwned,
}
