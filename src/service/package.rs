//! What an operator downloads: a plain ZIP bundle of files and a PKCS#12
//! (`.p12` / `.pfx`) key store holding a certificate, its chain and its key.
//!
//! The ZIP container comes from the `zip` crate. The PKCS#12 writer is
//! ours: its ASN.1 structures (`package/asn1.rs`) are encoded by the `der`
//! crate and every cryptographic operation is done by aws-lc-rs (the
//! project's sole provider); docs/DESIGN.md says why, and the fuzz target
//! `pkcs12_writer` and the openssl round-trip tests check it.
//!
//! # ZIP
//!
//! [`zip_stored`] writes a single-disk archive with every file stored
//! without compression (method 0); what goes in is checked here first (the
//! name rules on [`ZipError`]). ZIP64 is not produced, so each file and the
//! whole archive must stay under 4 GiB and there can be at most 65 534
//! entries; larger inputs are refused rather than truncated.
//!
//! # PKCS#12
//!
//! [`pkcs12`] produces the layout that OpenSSL 3's `pkcs12 -export` writes by
//! default (RFC 7292):
//!
//! * an `EncryptedData` content holding the certificate bags (the leaf first,
//!   tagged with `friendlyName` and `localKeyId`, then the chain), encrypted
//!   with PBES2;
//! * a plain `Data` content holding one `pkcs8ShroudedKeyBag` whose
//!   `EncryptedPrivateKeyInfo` is also PBES2, carrying the same two
//!   attributes;
//! * `MacData`: HMAC-SHA-256 over the authenticated safe, keyed with the
//!   RFC 7292 appendix B derivation (ID 3, SHA-256, 2048 rounds).
//!
//! PBES2 here (RFC 8018) is PBKDF2 with HMAC-SHA-256, a 16-byte random salt
//! and 2048 rounds, feeding AES-256-CBC with a random IV and PKCS#7 padding.
//!
//! The certificates are encrypted, as OpenSSL does by default, even though
//! they are public: a reader that has the file but not the password does not
//! learn the names in it, and every importer that understands the PBES2 key
//! bag also understands a PBES2 `EncryptedData`, so nothing is lost in
//! compatibility.
//!
//! The round count is 2048 for both PBKDF2 and the MAC. Raising only the
//! PBKDF2 count would buy nothing: the MAC, at 2048 rounds, already lets
//! anyone who holds the file test password guesses, so it sets the cost of a
//! guess.

use std::fmt;
use std::num::NonZeroU32;

use aws_lc_rs::signature::{self, KeyPair as _};
use aws_lc_rs::{cipher, digest, hmac, pbkdf2, rand};
use der::asn1::{Any, BmpString, Null, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

// ---------------------------------------------------------------------------
// ZIP
// ---------------------------------------------------------------------------

/// Longest file name (in bytes) accepted in an archive.
pub const ZIP_MAX_NAME_LEN: usize = 255;

/// Most entries an archive without ZIP64 records can describe (0xFFFF is the
/// ZIP64 marker and so is not usable as a count).
const ZIP_MAX_ENTRIES: usize = 0xFFFE;

/// Files and archives must stay below 4 GiB: no ZIP64 records are written.
const ZIP_MAX_SIZE: usize = u32::MAX as usize;
/// Unix mode recorded for every entry: a regular file readable and writable
/// by its owner only, since a bundle usually contains a private key.
const ZIP_UNIX_MODE: u32 = 0o600;

/// Why an archive could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZipError {
    /// A file name was the empty string.
    EmptyName,
    /// A file name was longer than [`ZIP_MAX_NAME_LEN`] bytes.
    NameTooLong {
        /// The offending name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A file name had a byte outside printable ASCII (0x20..=0x7e).
    NotPrintableAscii(String),
    /// A file name started with `/`.
    Absolute(String),
    /// A file name contained `..`.
    ParentReference(String),
    /// A file name contained `\` or `:`, which mean a path separator or a
    /// drive / stream prefix on Windows.
    ReservedCharacter(String),
    /// A file name had an empty path component (`a//b`) or ended in `/`
    /// (which would make it a directory entry).
    EmptyComponent(String),
    /// The same name was given twice.
    DuplicateName(String),
    /// More files than a non-ZIP64 archive can list.
    TooManyFiles(usize),
    /// A file, or the archive as a whole, reached the 4 GiB limit of an
    /// archive without ZIP64 records.
    TooLarge(String),
    /// The writer failed (not expected with the checks above).
    Writer(String),
}

impl fmt::Display for ZipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZipError::EmptyName => write!(f, "zip: a file name is empty"),
            ZipError::NameTooLong { name, len } => write!(
                f,
                "zip: file name {name:?} is {len} bytes long; at most {ZIP_MAX_NAME_LEN} are allowed"
            ),
            ZipError::NotPrintableAscii(name) => write!(
                f,
                "zip: file name {name:?} must consist of printable ASCII characters only"
            ),
            ZipError::Absolute(name) => {
                write!(f, "zip: file name {name:?} is absolute; it must be relative")
            }
            ZipError::ParentReference(name) => {
                write!(f, "zip: file name {name:?} must not contain \"..\"")
            }
            ZipError::ReservedCharacter(name) => {
                write!(f, "zip: file name {name:?} must not contain '\\' or ':'")
            }
            ZipError::EmptyComponent(name) => write!(
                f,
                "zip: file name {name:?} has an empty path component or ends in '/'"
            ),
            ZipError::DuplicateName(name) => {
                write!(f, "zip: file name {name:?} is given more than once")
            }
            ZipError::TooManyFiles(n) => write!(
                f,
                "zip: {n} files given; an archive without ZIP64 holds at most {ZIP_MAX_ENTRIES}"
            ),
            ZipError::TooLarge(what) => write!(
                f,
                "zip: {what} reaches the 4 GiB limit of an archive without ZIP64"
            ),
            ZipError::Writer(e) => write!(f, "zip: {e}"),
        }
    }
}

impl std::error::Error for ZipError {}

/// Checks one archive member name against the rules listed on [`ZipError`].
fn check_zip_name(name: &str) -> Result<(), ZipError> {
    if name.is_empty() {
        return Err(ZipError::EmptyName);
    }
    if name.len() > ZIP_MAX_NAME_LEN {
        return Err(ZipError::NameTooLong {
            name: name.to_owned(),
            len: name.len(),
        });
    }
    if !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ZipError::NotPrintableAscii(name.to_owned()));
    }
    if name.starts_with('/') {
        return Err(ZipError::Absolute(name.to_owned()));
    }
    if name.contains('\\') || name.contains(':') {
        return Err(ZipError::ReservedCharacter(name.to_owned()));
    }
    if name.contains("..") {
        return Err(ZipError::ParentReference(name.to_owned()));
    }
    if name.ends_with('/') || name.contains("//") {
        return Err(ZipError::EmptyComponent(name.to_owned()));
    }
    Ok(())
}

/// The ZIP timestamp for `at`, as wall-clock time in `at`'s own offset,
/// clamped to the years 1980..=2107 the format can express (odd seconds
/// round down: the format stores two-second steps).
fn zip_time(at: OffsetDateTime) -> zip::DateTime {
    let clamped = match at.year() {
        ..1980 => zip::DateTime::from_date_and_time(1980, 1, 1, 0, 0, 0),
        2108.. => zip::DateTime::from_date_and_time(2107, 12, 31, 23, 59, 58),
        // In range: every field is within the format's bounds.
        year => zip::DateTime::from_date_and_time(
            year as u16,
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
        ),
    };
    clamped.unwrap_or_default()
}

/// Writes `files` (name, contents) into a ZIP archive, uncompressed, in the
/// order given, every entry dated 1980-01-01 00:00:00 (the earliest date the
/// format can hold, so that the same input always gives the same bytes).
///
/// Names must be non-empty relative paths of printable ASCII, at most 255
/// bytes, with `/` as the only separator, no `..`, `\`, `:`, empty component
/// or trailing `/`, and no name may repeat; see [`ZipError`].
pub fn zip_stored(files: &[(&str, &[u8])]) -> Result<Vec<u8>, ZipError> {
    zip_stored_at(files, OffsetDateTime::UNIX_EPOCH)
}

/// Like [`zip_stored`], but every entry carries `modified` as its time of
/// last modification (wall-clock time in `modified`'s own offset, to two
/// seconds; clamped to the years 1980..=2107 the format can express).
pub fn zip_stored_at(
    files: &[(&str, &[u8])],
    modified: OffsetDateTime,
) -> Result<Vec<u8>, ZipError> {
    use std::io::Write as _;

    if files.len() > ZIP_MAX_ENTRIES {
        return Err(ZipError::TooManyFiles(files.len()));
    }
    let mut total = 0usize;
    for (i, (name, data)) in files.iter().enumerate() {
        check_zip_name(name)?;
        if files[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(ZipError::DuplicateName((*name).to_owned()));
        }
        if data.len() >= ZIP_MAX_SIZE {
            return Err(ZipError::TooLarge(format!("file {name:?}")));
        }
        // Headers: 30 + 46 bytes and the name twice per entry.
        total = total.saturating_add(data.len() + 76 + 2 * name.len());
    }
    if total.saturating_add(22) >= ZIP_MAX_SIZE {
        return Err(ZipError::TooLarge("the archive".to_owned()));
    }
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip_time(modified))
        .unix_permissions(ZIP_UNIX_MODE)
        .large_file(false);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(total + 22)));
    for (name, data) in files {
        writer
            .start_file(*name, options)
            .and_then(|()| writer.write_all(data).map_err(Into::into))
            .map_err(|e| ZipError::Writer(e.to_string()))?;
    }
    let out = writer
        .finish()
        .map_err(|e| ZipError::Writer(e.to_string()))?;
    Ok(out.into_inner())
}

// ---------------------------------------------------------------------------
// PKCS#12
// ---------------------------------------------------------------------------

/// Rounds for PBKDF2 and for the MAC key derivation (OpenSSL 3's default).
pub const PKCS12_ITERATIONS: u32 = 2048;
/// Longest password accepted, in UTF-8 bytes.
pub const PKCS12_MAX_PASSWORD_LEN: usize = 128;
/// Longest friendly name accepted, in characters.
pub const PKCS12_MAX_FRIENDLY_NAME_CHARS: usize = 255;

const PBKDF2_ROUNDS: NonZeroU32 = match NonZeroU32::new(PKCS12_ITERATIONS) {
    Some(n) => n,
    None => panic!("PKCS12_ITERATIONS must not be zero"),
};
const SALT_LEN: usize = 16;
const AES_256_KEY_LEN: usize = 32;

mod asn1;

use asn1::{
    oid, CertBag, ContentInfo, DigestInfo, EncryptedContentInfo, EncryptedData,
    EncryptedPrivateKeyInfo, MacData, Pbes2Params, Pbkdf2Params, Pfx, SafeBag,
};

/// Why a PKCS#12 file could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkcs12Error {
    /// The password was empty.
    EmptyPassword,
    /// The password was longer than [`PKCS12_MAX_PASSWORD_LEN`] bytes.
    PasswordTooLong(usize),
    /// The password had a character that a BMPString cannot hold (outside
    /// U+0000..=U+FFFF), U+0000 itself, which would end it early, or the
    /// noncharacter U+FFFF, which BMPString readers (the `der` crate's
    /// among them) refuse.
    PasswordCharacter(char),
    /// The friendly name had a character a BMPString cannot hold, U+0000
    /// or U+FFFF (as for the password).
    FriendlyNameCharacter(char),
    /// The friendly name was longer than [`PKCS12_MAX_FRIENDLY_NAME_CHARS`].
    FriendlyNameTooLong(usize),
    /// The leaf certificate was not a DER X.509 certificate.
    BadCertificate(String),
    /// A chain certificate (zero-based index) was not a DER X.509 certificate.
    BadChainCertificate {
        /// Position in the chain slice.
        index: usize,
        /// What the parser said.
        reason: String,
    },
    /// The leaf certificate's public key is of a kind this module cannot
    /// match a private key against.
    UnsupportedKeyAlgorithm(String),
    /// The private key was not a PKCS#8 key of the kind the certificate
    /// names.
    BadPrivateKey(String),
    /// The private key does not belong to the leaf certificate.
    KeyMismatch,
    /// An aws-lc-rs operation failed.
    Crypto(&'static str),
    /// ASN.1 encoding failed.
    Encoding(String),
}

impl fmt::Display for Pkcs12Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkcs12Error::EmptyPassword => write!(f, "pkcs12: the password is empty"),
            Pkcs12Error::PasswordTooLong(n) => write!(
                f,
                "pkcs12: the password is {n} bytes long; at most {PKCS12_MAX_PASSWORD_LEN} are allowed"
            ),
            Pkcs12Error::PasswordCharacter(c) => write!(
                f,
                "pkcs12: the password contains {:?} (U+{:04X}); only characters U+0001..U+FFFE are allowed",
                c, *c as u32
            ),
            Pkcs12Error::FriendlyNameCharacter(c) => write!(
                f,
                "pkcs12: the friendly name contains {:?} (U+{:04X}); only characters U+0001..U+FFFE are allowed",
                c, *c as u32
            ),
            Pkcs12Error::FriendlyNameTooLong(n) => write!(
                f,
                "pkcs12: the friendly name is {n} characters long; at most {PKCS12_MAX_FRIENDLY_NAME_CHARS} are allowed"
            ),
            Pkcs12Error::BadCertificate(e) => {
                write!(f, "pkcs12: the certificate is not a DER X.509 certificate: {e}")
            }
            Pkcs12Error::BadChainCertificate { index, reason } => write!(
                f,
                "pkcs12: chain certificate #{index} is not a DER X.509 certificate: {reason}"
            ),
            Pkcs12Error::UnsupportedKeyAlgorithm(what) => write!(
                f,
                "pkcs12: the certificate's public key is {what}; supported are RSA, ECDSA P-256/P-384/P-521 and Ed25519"
            ),
            Pkcs12Error::BadPrivateKey(what) => write!(
                f,
                "pkcs12: the private key is not a PKCS#8 DER {what} key as the certificate requires"
            ),
            Pkcs12Error::KeyMismatch => write!(
                f,
                "pkcs12: the private key does not match the certificate's public key"
            ),
            Pkcs12Error::Crypto(what) => write!(f, "pkcs12: {what} failed"),
            Pkcs12Error::Encoding(e) => write!(f, "pkcs12: ASN.1 encoding failed: {e}"),
        }
    }
}

impl std::error::Error for Pkcs12Error {}

impl From<der::Error> for Pkcs12Error {
    fn from(e: der::Error) -> Self {
        Pkcs12Error::Encoding(e.to_string())
    }
}

/// Checks a string for a BMPString and returns its UTF-16BE bytes, without
/// a terminator. U+0000 is refused, and so are U+FFFF (a noncharacter that
/// BMPString decoders such as the `der` crate's refuse, so a friendly name
/// holding it failed to encode) and anything beyond.
fn to_bmp(s: &str, bad: fn(char) -> Pkcs12Error) -> Result<Vec<u8>, Pkcs12Error> {
    if let Some(c) = s.chars().find(|&c| c == '\0' || u32::from(c) >= 0xFFFF) {
        return Err(bad(c));
    }
    Ok(s.encode_utf16().flat_map(u16::to_be_bytes).collect())
}

/// The password as RFC 7292 appendix B.1 wants it for key derivation:
/// BMPString bytes followed by a two-byte zero terminator.
fn password_bmp(password: &str) -> Result<Vec<u8>, Pkcs12Error> {
    if password.is_empty() {
        return Err(Pkcs12Error::EmptyPassword);
    }
    if password.len() > PKCS12_MAX_PASSWORD_LEN {
        return Err(Pkcs12Error::PasswordTooLong(password.len()));
    }
    let mut bmp = to_bmp(password, Pkcs12Error::PasswordCharacter)?;
    bmp.extend_from_slice(&[0, 0]);
    Ok(bmp)
}

/// RFC 7292 appendix B.2: derives `out_len` bytes of key material of kind
/// `id` (1 = cipher key, 2 = IV, 3 = MAC key) from a BMP-encoded password
/// (terminator included) and a salt, hashing `iterations` times with `alg`.
///
/// In short: the salt and the password are each repeated to a whole number
/// of hash blocks and concatenated into `I`; each round hashes a block of
/// `id` bytes followed by `I`, re-hashes the result, and, if more output is
/// needed, adds that result plus one (as a big-endian number, repeated to a
/// block) to every block of `I` before the next round.
fn pkcs12_kdf(
    alg: &'static digest::Algorithm,
    id: u8,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out_len: usize,
) -> Vec<u8> {
    let u = alg.output_len();
    let v = alg.block_len();
    let repeat_to_blocks = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = v * src.len().div_ceil(v);
        src.iter().copied().cycle().take(len).collect()
    };
    let diversifier = vec![id; v];
    let mut i_buf = repeat_to_blocks(salt);
    i_buf.extend(repeat_to_blocks(password));

    let mut out = Vec::with_capacity(out_len);
    loop {
        let mut ctx = digest::Context::new(alg);
        ctx.update(&diversifier);
        ctx.update(&i_buf);
        let mut a = ctx.finish();
        for _ in 1..iterations {
            a = digest::digest(alg, a.as_ref());
        }
        let a = a.as_ref();
        let take = u.min(out_len - out.len());
        out.extend_from_slice(&a[..take]);
        if out.len() >= out_len {
            return out;
        }
        let b: Vec<u8> = a.iter().copied().cycle().take(v).collect();
        for block in i_buf.chunks_mut(v) {
            // block = (block + b + 1) mod 2^(8v), big-endian.
            let mut carry = 1u16;
            for (x, y) in block.iter_mut().zip(&b).rev() {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = sum as u8;
                carry = sum >> 8;
            }
        }
    }
}

/// An `AlgorithmIdentifier` whose parameters are an explicit NULL.
fn alg_with_null(oid: ObjectIdentifier) -> Result<AlgorithmIdentifierOwned, Pkcs12Error> {
    Ok(AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::encode_from(&Null)?),
    })
}

/// Encrypts `plaintext` with PBES2 (PBKDF2-HMAC-SHA-256 over the password's
/// UTF-8 bytes, fresh 16-byte salt, AES-256-CBC with a fresh IV and PKCS#7
/// padding) and returns the algorithm identifier describing it together
/// with the ciphertext.
fn pbes2_encrypt(
    password: &str,
    plaintext: &[u8],
) -> Result<(AlgorithmIdentifierOwned, Vec<u8>), Pkcs12Error> {
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt).map_err(|_| Pkcs12Error::Crypto("random salt generation"))?;
    let mut key = [0u8; AES_256_KEY_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        PBKDF2_ROUNDS,
        &salt,
        password.as_bytes(),
        &mut key,
    );
    let unbound = cipher::UnboundCipherKey::new(&cipher::AES_256, &key)
        .map_err(|_| Pkcs12Error::Crypto("AES-256 key setup"));
    key.fill(0);
    let encrypting = cipher::PaddedBlockEncryptingKey::cbc_pkcs7(unbound?)
        .map_err(|_| Pkcs12Error::Crypto("AES-256-CBC key setup"))?;
    let mut data = plaintext.to_vec();
    // `encrypt` draws a random IV from aws-lc-rs's generator and hands it back.
    let context = encrypting
        .encrypt(&mut data)
        .map_err(|_| Pkcs12Error::Crypto("AES-256-CBC encryption"))?;
    let iv: &[u8] = (&context)
        .try_into()
        .map_err(|_| Pkcs12Error::Crypto("reading the AES-256-CBC IV"))?;

    let kdf = AlgorithmIdentifierOwned {
        oid: oid::PBKDF2,
        parameters: Some(Any::encode_from(&Pbkdf2Params {
            salt: OctetString::new(salt.to_vec())?,
            iteration_count: PKCS12_ITERATIONS,
            prf: alg_with_null(oid::HMAC_WITH_SHA256)?,
        })?),
    };
    let scheme = AlgorithmIdentifierOwned {
        oid: oid::AES_256_CBC,
        parameters: Some(Any::encode_from(&OctetString::new(iv.to_vec())?)?),
    };
    let alg = AlgorithmIdentifierOwned {
        oid: oid::PBES2,
        parameters: Some(Any::encode_from(&Pbes2Params {
            key_derivation_func: kdf,
            encryption_scheme: scheme,
        })?),
    };
    Ok((alg, data))
}

/// Checks that `key_pkcs8_der` is a private key for the public key in
/// `cert`, dispatching on the certificate's key algorithm.
fn check_key_matches(cert: &Certificate, key_pkcs8_der: &[u8]) -> Result<(), Pkcs12Error> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let cert_public = spki.subject_public_key.raw_bytes();
    let curve = || -> Option<ObjectIdentifier> {
        spki.algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
    };
    let ecdsa = |alg: &'static signature::EcdsaSigningAlgorithm, name: &str| {
        signature::EcdsaKeyPair::from_pkcs8(alg, key_pkcs8_der)
            .map(|k| k.public_key().as_ref().to_vec())
            .map_err(|_| Pkcs12Error::BadPrivateKey(name.to_owned()))
    };
    let key_public = match spki.algorithm.oid {
        oid::RSA_ENCRYPTION => signature::RsaKeyPair::from_pkcs8(key_pkcs8_der)
            .map(|k| k.public_key().as_ref().to_vec())
            .map_err(|_| Pkcs12Error::BadPrivateKey("RSA".to_owned()))?,
        oid::EC_PUBLIC_KEY => match curve() {
            Some(oid::P256) => ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, "ECDSA P-256")?,
            Some(oid::P384) => ecdsa(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, "ECDSA P-384")?,
            Some(oid::P521) => ecdsa(&signature::ECDSA_P521_SHA512_ASN1_SIGNING, "ECDSA P-521")?,
            Some(other) => {
                return Err(Pkcs12Error::UnsupportedKeyAlgorithm(format!(
                    "an EC key on curve {other}"
                )))
            }
            None => {
                return Err(Pkcs12Error::UnsupportedKeyAlgorithm(
                    "an EC key without a named curve".to_owned(),
                ))
            }
        },
        oid::ED25519 => signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key_pkcs8_der)
            .map(|k| k.public_key().as_ref().to_vec())
            .map_err(|_| Pkcs12Error::BadPrivateKey("Ed25519".to_owned()))?,
        other => {
            return Err(Pkcs12Error::UnsupportedKeyAlgorithm(format!(
                "of algorithm {other}"
            )))
        }
    };
    if key_public != cert_public {
        return Err(Pkcs12Error::KeyMismatch);
    }
    Ok(())
}

/// A `friendlyName` (when non-empty) and `localKeyId` attribute set.
fn bag_attributes(
    friendly_name: &str,
    local_key_id: &[u8],
) -> Result<SetOfVec<Attribute>, Pkcs12Error> {
    let mut attrs = Vec::with_capacity(2);
    if !friendly_name.is_empty() {
        let name =
            BmpString::from_ucs2(to_bmp(friendly_name, Pkcs12Error::FriendlyNameCharacter)?)?;
        attrs.push(Attribute {
            oid: oid::FRIENDLY_NAME,
            values: SetOfVec::try_from(vec![Any::encode_from(&name)?])?,
        });
    }
    attrs.push(Attribute {
        oid: oid::LOCAL_KEY_ID,
        values: SetOfVec::try_from(vec![Any::encode_from(&OctetString::new(
            local_key_id.to_vec(),
        )?)?])?,
    });
    Ok(SetOfVec::try_from(attrs)?)
}

/// A `certBag` holding one X.509 certificate.
fn cert_bag(
    cert_der: &[u8],
    attributes: Option<SetOfVec<Attribute>>,
) -> Result<SafeBag, Pkcs12Error> {
    let bag = CertBag {
        cert_id: oid::X509_CERTIFICATE,
        cert_value: OctetString::new(cert_der.to_vec())?,
    };
    Ok(SafeBag {
        bag_id: oid::CERT_BAG,
        bag_value: Any::encode_from(&bag)?,
        bag_attributes: attributes,
    })
}

/// Builds a password-protected PKCS#12 file (DER) holding `cert_der` (the
/// leaf, DER X.509), the certificates of `chain_der` in the order given
/// (usually the issuing CA up towards the root), and the leaf's private key
/// `key_pkcs8_der` (unencrypted PKCS#8 DER).
///
/// The leaf's certificate bag and the key bag share a `localKeyId` (the
/// SHA-1 digest of the leaf certificate, as OpenSSL computes it) and, unless
/// `friendly_name` is empty, a `friendlyName`. See the module documentation
/// for the exact layout and algorithms.
///
/// The password must be 1 to 128 bytes of UTF-8 using only characters
/// U+0001..=U+FFFE (it is turned into a BMPString for the MAC). The
/// friendly name has the same character rule and at most 255 characters.
/// Every certificate must parse as X.509, and the key must be the one whose
/// public half is in the leaf (RSA, ECDSA P-256/P-384/P-521 or Ed25519).
pub fn pkcs12(
    cert_der: &[u8],
    chain_der: &[Vec<u8>],
    key_pkcs8_der: &[u8],
    friendly_name: &str,
    password: &str,
) -> Result<Vec<u8>, Pkcs12Error> {
    let password_bmp = password_bmp(password)?;
    let name_chars = friendly_name.chars().count();
    if name_chars > PKCS12_MAX_FRIENDLY_NAME_CHARS {
        return Err(Pkcs12Error::FriendlyNameTooLong(name_chars));
    }
    check_certificates(cert_der, chain_der, key_pkcs8_der)?;

    let local_key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der);
    let attributes = bag_attributes(friendly_name, local_key_id.as_ref())?;
    let auth_safe = vec![
        ContentInfo {
            content_type: oid::ENCRYPTED_DATA,
            content: Any::encode_from(&encrypted_certificates(
                password,
                cert_der,
                chain_der,
                attributes.clone(),
            )?)?,
        },
        ContentInfo {
            content_type: oid::DATA,
            content: Any::encode_from(&key_contents(password, key_pkcs8_der, attributes)?)?,
        },
    ];
    let auth_safe_der = auth_safe.to_der()?;
    let mac_data = mac_data(&password_bmp, &auth_safe_der)?;
    let pfx = Pfx {
        version: 3,
        auth_safe: ContentInfo {
            content_type: oid::DATA,
            content: Any::encode_from(&OctetString::new(auth_safe_der)?)?,
        },
        mac_data,
    };
    Ok(pfx.to_der()?)
}

/// The leaf and every chain certificate parse as X.509, and the key is the
/// leaf's.
fn check_certificates(
    cert_der: &[u8],
    chain_der: &[Vec<u8>],
    key_pkcs8_der: &[u8],
) -> Result<(), Pkcs12Error> {
    let cert =
        Certificate::from_der(cert_der).map_err(|e| Pkcs12Error::BadCertificate(e.to_string()))?;
    for (index, der) in chain_der.iter().enumerate() {
        Certificate::from_der(der).map_err(|e| Pkcs12Error::BadChainCertificate {
            index,
            reason: e.to_string(),
        })?;
    }
    check_key_matches(&cert, key_pkcs8_der)
}

/// The certificates: the leaf (with `attributes`) then the chain, in one
/// PBES2-encrypted `EncryptedData`.
fn encrypted_certificates(
    password: &str,
    cert_der: &[u8],
    chain_der: &[Vec<u8>],
    attributes: SetOfVec<Attribute>,
) -> Result<EncryptedData, Pkcs12Error> {
    let mut cert_bags = Vec::with_capacity(1 + chain_der.len());
    cert_bags.push(cert_bag(cert_der, Some(attributes))?);
    for der in chain_der {
        cert_bags.push(cert_bag(der, None)?);
    }
    let (cert_alg, cert_ciphertext) = pbes2_encrypt(password, &cert_bags.to_der()?)?;
    Ok(EncryptedData {
        version: 0,
        encrypted_content_info: EncryptedContentInfo {
            content_type: oid::DATA,
            content_encryption_algorithm: cert_alg,
            encrypted_content: Some(OctetString::new(cert_ciphertext)?),
        },
    })
}

/// The key: one PBES2-shrouded key bag (with `attributes`), as the
/// contents of a plain `Data`.
fn key_contents(
    password: &str,
    key_pkcs8_der: &[u8],
    attributes: SetOfVec<Attribute>,
) -> Result<OctetString, Pkcs12Error> {
    let (key_alg, key_ciphertext) = pbes2_encrypt(password, key_pkcs8_der)?;
    let shrouded = EncryptedPrivateKeyInfo {
        encryption_algorithm: key_alg,
        encrypted_data: OctetString::new(key_ciphertext)?,
    };
    let key_bags = vec![SafeBag {
        bag_id: oid::SHROUDED_KEY_BAG,
        bag_value: Any::encode_from(&shrouded)?,
        bag_attributes: Some(attributes),
    }];
    Ok(OctetString::new(key_bags.to_der()?)?)
}

/// `MacData`: HMAC-SHA-256 over the authenticated safe, keyed by the
/// RFC 7292 appendix B derivation (ID 3) from a random salt.
fn mac_data(password_bmp: &[u8], auth_safe_der: &[u8]) -> Result<MacData, Pkcs12Error> {
    let mut mac_salt = [0u8; SALT_LEN];
    rand::fill(&mut mac_salt).map_err(|_| Pkcs12Error::Crypto("random salt generation"))?;
    let mut mac_key = pkcs12_kdf(
        &digest::SHA256,
        3,
        password_bmp,
        &mac_salt,
        PKCS12_ITERATIONS,
        digest::SHA256.output_len(),
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), auth_safe_der);
    mac_key.fill(0);
    Ok(MacData {
        mac: DigestInfo {
            digest_algorithm: alg_with_null(oid::SHA256)?,
            digest: OctetString::new(tag.as_ref().to_vec())?,
        },
        mac_salt: OctetString::new(mac_salt.to_vec())?,
        iterations: PKCS12_ITERATIONS,
    })
}

/// For tests: what the `zip` crate's reader finds in an archive, per entry
/// its name, method, Unix mode, time and contents.
#[cfg(test)]
#[allow(clippy::type_complexity)]
pub(crate) fn read_back(
    zip: &[u8],
) -> Vec<(
    String,
    zip::CompressionMethod,
    Option<u32>,
    zip::DateTime,
    Vec<u8>,
)> {
    use std::io::Read as _;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (
                f.name().unwrap().to_string(),
                f.compression(),
                f.unix_mode(),
                f.last_modified().unwrap_or_default(),
                data,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::{Command, Output};

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData,
        RsaKeySize, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
    };

    // ----- helpers -------------------------------------------------------

    /// Whether `tool` can be started at all (`arg` is a harmless flag).
    fn have(tool: &str, arg: &str) -> bool {
        match Command::new(tool).arg(arg).output() {
            Ok(_) => true,
            Err(_) => {
                eprintln!("SKIPPED: `{tool}` is not installed; this part of the test did not run");
                false
            }
        }
    }

    fn run(tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("could not run {tool}: {e}"))
    }

    fn text(out: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn path_str(p: &Path) -> &str {
        p.to_str().expect("temp path is UTF-8")
    }

    /// Every PEM block with `label` in `s`, decoded to DER.
    fn pem_blocks(s: &str, label: &str) -> Vec<Vec<u8>> {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let mut found = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find(&begin) {
            let stop =
                rest[start..].find(&end).expect("unterminated PEM block") + start + end.len();
            let (got_label, der) =
                der::pem::decode_vec(&rest.as_bytes()[start..stop]).expect("PEM block decodes");
            assert_eq!(got_label, label);
            found.push(der);
            rest = &rest[stop..];
        }
        found
    }

    // ----- ZIP -----------------------------------------------------------

    fn sample_files() -> Vec<(String, Vec<u8>)> {
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        vec![
            (
                "cert.pem".into(),
                b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec(),
            ),
            ("empty.txt".into(), Vec::new()),
            (
                "nested/dir/chain.pem".into(),
                b"chain\r\nwith CRLF\r\n".to_vec(),
            ),
            ("binary.bin".into(), binary),
            ("README".into(), b"x".to_vec()),
        ]
    }

    #[test]
    fn zip_reads_back_in_order_stored_and_owner_only() {
        let files = sample_files();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let zip = zip_stored(&refs).unwrap();
        let read = read_back(&zip);
        assert_eq!(read.len(), files.len());
        for ((name, data), (got_name, method, mode, at, got)) in files.iter().zip(read) {
            assert_eq!(&got_name, name);
            assert_eq!(method, zip::CompressionMethod::Stored, "{name}");
            assert_eq!(mode.map(|m| m & 0o777), Some(0o600), "{name}");
            assert_eq!((at.year(), at.month(), at.day()), (1980, 1, 1), "{name}");
            assert_eq!(&got, data, "{name}");
        }
        // The same input gives the same bytes.
        assert_eq!(zip_stored(&refs).unwrap(), zip);
    }

    #[test]
    fn zip_round_trip_with_unzip_and_python() {
        let files = sample_files();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let zip = zip_stored(&refs).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle.zip");
        std::fs::write(&path, &zip).unwrap();
        let p = path_str(&path);

        if have("unzip", "-v") {
            let t = run("unzip", &["-t", p]);
            assert!(t.status.success(), "unzip -t failed: {}", text(&t));
            assert!(text(&t).contains("No errors detected"), "{}", text(&t));
            for (name, data) in &files {
                let out = run("unzip", &["-p", p, name]);
                assert!(out.status.success(), "unzip -p {name}: {}", text(&out));
                assert_eq!(&out.stdout, data, "unzip -p {name} gave other bytes");
            }
        }
        if have("python3", "--version") {
            let out = run(
                "python3",
                &[
                    "-c",
                    "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); print(z.testzip())",
                    p,
                ],
            );
            assert!(out.status.success(), "python zipfile: {}", text(&out));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "None");
            let script = "import zipfile,sys,hashlib\n\
                z=zipfile.ZipFile(sys.argv[1])\n\
                for i in z.infolist(): print(i.filename, i.compress_type, i.file_size, hashlib.sha256(z.read(i)).hexdigest(), i.date_time)";
            let out = run("python3", &["-c", script, p]);
            assert!(out.status.success(), "python zipfile: {}", text(&out));
            let expected: String = files
                .iter()
                .map(|(n, d)| {
                    let h = digest::digest(&digest::SHA256, d);
                    let hex: String = h.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                    format!("{n} 0 {} {hex} (1980, 1, 1, 0, 0, 0)\n", d.len())
                })
                .collect();
            assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
        }
    }

    #[test]
    fn zip_with_only_an_empty_file() {
        let zip = zip_stored(&[("empty", b"")]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.zip");
        std::fs::write(&path, &zip).unwrap();
        let p = path_str(&path);
        if have("unzip", "-v") {
            let t = run("unzip", &["-t", p]);
            assert!(t.status.success(), "unzip -t failed: {}", text(&t));
            let out = run("unzip", &["-p", p, "empty"]);
            assert!(out.status.success(), "{}", text(&out));
            assert!(out.stdout.is_empty());
        }
        if have("python3", "--version") {
            let out = run(
                "python3",
                &["-c", "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); print(z.testzip(), z.namelist(), len(z.read('empty')))", p],
            );
            assert!(out.status.success(), "{}", text(&out));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "None ['empty'] 0"
            );
        }
    }

    #[test]
    fn zip_with_no_files_is_just_the_end_record() {
        let zip = zip_stored(&[]).unwrap();
        // The end-of-central-directory record alone.
        assert_eq!(zip.len(), 22);
        assert_eq!(&zip[..4], b"PK\x05\x06");
        assert!(read_back(&zip).is_empty());
    }

    #[test]
    fn zip_timestamp() {
        let at = time::Date::from_calendar_date(2024, time::Month::May, 6)
            .unwrap()
            .with_hms(7, 8, 11)
            .unwrap()
            .assume_utc();
        let zip = zip_stored_at(&[("a.txt", b"hi")], at).unwrap();
        let t = read_back(&zip)[0].3;
        assert_eq!(
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            (2024, 5, 6, 7, 8, 10)
        );
        let parts = |t: zip::DateTime| {
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
        };
        assert_eq!(
            parts(zip_time(OffsetDateTime::UNIX_EPOCH)),
            (1980, 1, 1, 0, 0, 0)
        );
        let far = time::Date::from_calendar_date(2200, time::Month::January, 1)
            .unwrap()
            .midnight()
            .assume_utc();
        assert_eq!(parts(zip_time(far)), (2107, 12, 31, 23, 59, 58));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zip");
        std::fs::write(&path, &zip).unwrap();
        if have("python3", "--version") {
            let out = run(
                "python3",
                &["-c", "import zipfile,sys; print(zipfile.ZipFile(sys.argv[1]).infolist()[0].date_time)", path_str(&path)],
            );
            assert!(out.status.success(), "{}", text(&out));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "(2024, 5, 6, 7, 8, 10)"
            );
        }
    }

    #[test]
    fn zip_refuses_bad_names() {
        let long = "a".repeat(256);
        type Check = fn(&ZipError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| matches!(e, ZipError::EmptyName)),
            ("/etc/passwd", |e| matches!(e, ZipError::Absolute(_))),
            ("../up", |e| matches!(e, ZipError::ParentReference(_))),
            ("a/../b", |e| matches!(e, ZipError::ParentReference(_))),
            ("a/..", |e| matches!(e, ZipError::ParentReference(_))),
            ("x..y", |e| matches!(e, ZipError::ParentReference(_))),
            (&long, |e| {
                matches!(e, ZipError::NameTooLong { len: 256, .. })
            }),
            ("a\\b", |e| matches!(e, ZipError::ReservedCharacter(_))),
            ("C:x", |e| matches!(e, ZipError::ReservedCharacter(_))),
            ("a//b", |e| matches!(e, ZipError::EmptyComponent(_))),
            ("dir/", |e| matches!(e, ZipError::EmptyComponent(_))),
            ("caf\u{e9}", |e| matches!(e, ZipError::NotPrintableAscii(_))),
            ("a\nb", |e| matches!(e, ZipError::NotPrintableAscii(_))),
            ("nul\0", |e| matches!(e, ZipError::NotPrintableAscii(_))),
        ];
        for (name, is_expected) in cases {
            let err = zip_stored(&[("ok.txt", b"1"), (name, b"2")]).unwrap_err();
            assert!(is_expected(&err), "{name:?} gave {err:?}");
            assert!(err.to_string().starts_with("zip: "), "{err}");
        }
        let err = zip_stored(&[("same", b"1"), ("same", b"2")]).unwrap_err();
        assert_eq!(err, ZipError::DuplicateName("same".into()));
        assert!(err.to_string().contains("more than once"), "{err}");

        // The limits themselves are fine.
        let longest = "b".repeat(ZIP_MAX_NAME_LEN);
        assert!(zip_stored(&[(longest.as_str(), b"")]).is_ok());
        assert!(zip_stored(&[("a/b.c", b""), (".hidden", b""), ("a.b/c", b"")]).is_ok());
    }

    // ----- PKCS#12 -------------------------------------------------------

    /// A root certificate and a leaf it signed, both with keys of `alg`.
    struct TestChain {
        root_der: Vec<u8>,
        leaf_der: Vec<u8>,
        leaf_key: KeyPair,
    }

    fn new_key(alg: &'static SignatureAlgorithm) -> KeyPair {
        if alg == &PKCS_RSA_SHA256 {
            KeyPair::generate_rsa_for(alg, RsaKeySize::_2048).unwrap()
        } else {
            KeyPair::generate_for(alg).unwrap()
        }
    }

    fn test_chain(alg: &'static SignatureAlgorithm) -> TestChain {
        let root_key = new_key(alg);
        let mut root_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root_params
            .distinguished_name
            .push(DnType::CommonName, "package test root");
        let root = root_params.self_signed(&root_key).unwrap();
        let issuer = Issuer::new(root_params, &root_key);

        let leaf_key = new_key(alg);
        let mut leaf_params = CertificateParams::new(vec!["leaf.example".to_owned()]).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "leaf.example");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        TestChain {
            root_der: root.der().to_vec(),
            leaf_der: leaf.der().to_vec(),
            leaf_key,
        }
    }

    /// `-noenc` on OpenSSL 3, `-nodes` before it.
    fn noenc_flag() -> &'static str {
        let v = run("openssl", &["version"]);
        if String::from_utf8_lossy(&v.stdout).starts_with("OpenSSL 3") {
            "-noenc"
        } else {
            "-nodes"
        }
    }

    fn hex_upper_spaced(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Builds a PFX for `chain` and has OpenSSL take it apart.
    fn check_with_openssl(alg: &'static SignatureAlgorithm, name: &str, password: &str) {
        let chain = test_chain(alg);
        let p12 = pkcs12(
            &chain.leaf_der,
            std::slice::from_ref(&chain.root_der),
            chain.leaf_key.serialized_der(),
            name,
            password,
        )
        .unwrap();
        if !have("openssl", "version") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p12_path = dir.path().join("f.p12");
        std::fs::write(&p12_path, &p12).unwrap();
        let p12_file = path_str(&p12_path);
        let pass = format!("pass:{password}");

        // Everything, with -info.
        let out = run(
            "openssl",
            &[
                "pkcs12",
                "-in",
                p12_file,
                "-passin",
                &pass,
                noenc_flag(),
                "-info",
            ],
        );
        let all = text(&out);
        assert!(out.status.success(), "openssl pkcs12 -info failed:\n{all}");
        for line in [
            "MAC: sha256, Iteration 2048",
            "MAC length: 32, salt length: 16",
            "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
            "PKCS7 Data",
            "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
        ] {
            assert!(
                all.lines().any(|l| l.trim() == line),
                "missing {line:?} in:\n{all}"
            );
        }
        assert_eq!(all.matches("Certificate bag").count(), 2, "{all}");
        assert!(!all.contains("Warning"), "OpenSSL warned:\n{all}");
        let key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &chain.leaf_der);
        let key_id_line = format!("localKeyID: {}", hex_upper_spaced(key_id.as_ref()));
        // Once on the key bag, once on the leaf's certificate bag.
        assert_eq!(
            all.matches(&key_id_line).count(),
            2,
            "{key_id_line} in:\n{all}"
        );
        // OpenSSL 3.0 prints a BMPString attribute one byte per character
        // (the low byte); later versions print UTF-8. Either is accepted, as
        // long as the line appears on both bags.
        let as_utf8 = format!("friendlyName: {name}").into_bytes();
        let mut as_low_bytes = b"friendlyName: ".to_vec();
        as_low_bytes.extend(name.chars().map(|c| c as u32 as u8));
        let count = |needle: &[u8]| {
            out.stdout
                .windows(needle.len())
                .filter(|w| *w == needle)
                .count()
        };
        assert_eq!(
            count(&as_utf8).max(count(&as_low_bytes)),
            2,
            "friendlyName {name:?} in:\n{all}"
        );

        let stdout = String::from_utf8_lossy(&out.stdout);
        let certs = pem_blocks(&stdout, "CERTIFICATE");
        assert_eq!(certs, vec![chain.leaf_der.clone(), chain.root_der.clone()]);
        let keys = pem_blocks(&stdout, "PRIVATE KEY");
        assert_eq!(keys.len(), 1, "{stdout}");

        // The key OpenSSL recovered has the same public half as the original.
        let got_key = dir.path().join("got.pem");
        let want_key = dir.path().join("want.pem");
        std::fs::write(
            &got_key,
            der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &keys[0]).unwrap(),
        )
        .unwrap();
        std::fs::write(&want_key, chain.leaf_key.serialize_pem()).unwrap();
        let got_pub = run("openssl", &["pkey", "-in", path_str(&got_key), "-pubout"]);
        let want_pub = run("openssl", &["pkey", "-in", path_str(&want_key), "-pubout"]);
        assert!(got_pub.status.success(), "{}", text(&got_pub));
        assert!(want_pub.status.success(), "{}", text(&want_pub));
        assert!(String::from_utf8_lossy(&got_pub.stdout).contains("BEGIN PUBLIC KEY"));
        assert_eq!(got_pub.stdout, want_pub.stdout, "recovered key differs");

        // Leaf only.
        let out = run(
            "openssl",
            &[
                "pkcs12", "-in", p12_file, "-passin", &pass, "-nokeys", "-clcerts",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            pem_blocks(&stdout, "CERTIFICATE"),
            vec![chain.leaf_der.clone()]
        );
        assert!(!stdout.contains("PRIVATE KEY"));

        // Chain only.
        let out = run(
            "openssl",
            &[
                "pkcs12", "-in", p12_file, "-passin", &pass, "-nokeys", "-cacerts",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            pem_blocks(&stdout, "CERTIFICATE"),
            vec![chain.root_der.clone()]
        );

        // Wrong passwords are refused by the MAC check.
        for wrong in [
            format!("{password}x"),
            "password".to_owned(),
            password.to_uppercase(),
        ] {
            if wrong == password {
                continue;
            }
            let out = run(
                "openssl",
                &[
                    "pkcs12",
                    "-in",
                    p12_file,
                    "-passin",
                    &format!("pass:{wrong}"),
                    noenc_flag(),
                ],
            );
            assert!(
                !out.status.success(),
                "wrong password {wrong:?} was accepted"
            );
            assert!(text(&out).contains("Mac verify error"), "{}", text(&out));
            assert!(!String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"));
        }
    }

    #[test]
    fn pkcs12_ecdsa_p256_opens_in_openssl() {
        check_with_openssl(&PKCS_ECDSA_P256_SHA256, "acme leaf", "correct horse");
    }

    #[test]
    fn pkcs12_rsa_2048_opens_in_openssl() {
        check_with_openssl(&PKCS_RSA_SHA256, "acme-rsa", "S3cret!pw");
    }

    #[test]
    fn pkcs12_non_ascii_password_and_name() {
        check_with_openssl(
            &PKCS_ECDSA_P256_SHA256,
            "Schl\u{fc}ssel \u{20ac}",
            "p\u{e4}ssw\u{f6}rd",
        );
    }

    #[test]
    fn pkcs12_longest_password_opens_in_openssl() {
        check_with_openssl(
            &PKCS_ECDSA_P256_SHA256,
            "max",
            &"Z".repeat(PKCS12_MAX_PASSWORD_LEN),
        );
    }

    #[test]
    fn pkcs12_reads_in_python_cryptography() {
        if !have("python3", "--version") {
            return;
        }
        let probe = run(
            "python3",
            &[
                "-c",
                "import cryptography.hazmat.primitives.serialization.pkcs12",
            ],
        );
        if !probe.status.success() {
            eprintln!("SKIPPED: python3 has no `cryptography` package; this test did not run");
            return;
        }
        let chain = test_chain(&PKCS_RSA_SHA256);
        // A longer chain, to see the order kept: an extra certificate after the root.
        let extra = test_chain(&PKCS_ECDSA_P256_SHA256).root_der;
        let p12 = pkcs12(
            &chain.leaf_der,
            &[chain.root_der.clone(), extra.clone()],
            chain.leaf_key.serialized_der(),
            "py-\u{fc}\u{20ac}",
            "pw-\u{f1}",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.p12");
        std::fs::write(&path, &p12).unwrap();
        let script = "import sys\n\
            from cryptography.hazmat.primitives.serialization import pkcs12, Encoding, PublicFormat\n\
            p = pkcs12.load_pkcs12(open(sys.argv[1],'rb').read(), sys.argv[2].encode())\n\
            print(p.cert.friendly_name.decode())\n\
            print(p.cert.certificate.public_bytes(Encoding.DER).hex())\n\
            for c in p.additional_certs: print(c.certificate.public_bytes(Encoding.DER).hex())\n\
            print(p.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo).hex())";
        let out = run("python3", &["-c", script, path_str(&path), "pw-\u{f1}"]);
        assert!(out.status.success(), "{}", text(&out));
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let expected = format!(
            "py-\u{fc}\u{20ac}\n{}\n{}\n{}\n{}\n",
            hex(&chain.leaf_der),
            hex(&chain.root_der),
            hex(&extra),
            hex(&chain.leaf_key.subject_public_key_info()),
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }

    /// Key derivation outputs computed independently with
    /// `openssl kdf ... PKCS12KDF` (OpenSSL 3.0); the SHA-1 one is also the
    /// widely published vector for password "smeg".
    #[test]
    fn pkcs12_kdf_matches_reference_values() {
        let unhex = |s: &str| -> Vec<u8> {
            s.split(':')
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect()
        };
        let smeg = password_bmp("smeg").unwrap();
        assert_eq!(smeg, b"\0s\0m\0e\0g\0\0");
        let salt = [0x0A, 0x58, 0xCF, 0x64, 0x53, 0x0D, 0x82, 0x3F];
        assert_eq!(
            pkcs12_kdf(&digest::SHA1_FOR_LEGACY_USE_ONLY, 1, &smeg, &salt, 1, 24),
            unhex("8A:AA:E6:29:7B:6C:B0:46:42:AB:5B:07:78:51:28:4E:B7:12:8F:1A:2A:7F:BC:A3")
        );
        let pw = password_bmp("p\u{e4}ssw\u{f6}rd").unwrap();
        assert_eq!(
            pw,
            [0, 0x70, 0, 0xe4, 0, 0x73, 0, 0x73, 0, 0x77, 0, 0xf6, 0, 0x72, 0, 0x64, 0, 0]
        );
        let salt: Vec<u8> = (0..16u8).map(|i| i * 0x11).collect();
        assert_eq!(
            pkcs12_kdf(&digest::SHA256, 3, &pw, &salt, 2048, 32),
            unhex("62:30:31:E4:59:6C:DF:1B:1F:FD:66:3C:A4:A3:D7:73:01:9A:A6:2E:19:5E:0D:92:F8:F4:DE:7B:A8:81:17:39")
        );
        // Longer than one hash output, so the I-block update runs.
        assert_eq!(
            pkcs12_kdf(&digest::SHA256, 1, &pw, &salt, 3, 100),
            unhex("68:8F:71:0C:D8:42:18:15:6F:DA:59:AB:DF:1C:B1:42:9D:E1:34:1C:FB:B5:05:33:DE:32:50:30:B9:FF:66:E8:97:39:FD:D1:9F:14:58:94:67:31:E6:77:49:89:36:FA:74:8C:2C:07:87:6A:77:AE:08:9F:38:63:9F:BC:D8:B1:8B:78:29:F4:1A:BE:27:A2:B7:AE:3B:6A:65:2C:05:76:A6:78:0E:F5:D9:38:C7:39:C6:1F:A6:03:5C:D2:0B:32:5A:BB:6E:9D")
        );
    }

    /// Decrypts one PBES2 blob as written by `pbes2_encrypt`.
    fn pbes2_decrypt(alg: &AlgorithmIdentifierOwned, password: &str, data: &[u8]) -> Vec<u8> {
        assert_eq!(alg.oid, oid::PBES2);
        let params: Pbes2Params = alg.parameters.as_ref().unwrap().decode_as().unwrap();
        assert_eq!(params.key_derivation_func.oid, oid::PBKDF2);
        let kdf: Pbkdf2Params = params
            .key_derivation_func
            .parameters
            .unwrap()
            .decode_as()
            .unwrap();
        assert_eq!(kdf.iteration_count, 2048);
        assert_eq!(kdf.salt.as_bytes().len(), 16);
        assert_eq!(kdf.prf.oid, oid::HMAC_WITH_SHA256);
        assert_eq!(params.encryption_scheme.oid, oid::AES_256_CBC);
        let iv: OctetString = params
            .encryption_scheme
            .parameters
            .unwrap()
            .decode_as()
            .unwrap();
        let iv: [u8; 16] = iv.as_bytes().try_into().unwrap();
        let mut key = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            PBKDF2_ROUNDS,
            kdf.salt.as_bytes(),
            password.as_bytes(),
            &mut key,
        );
        let dk = cipher::PaddedBlockDecryptingKey::cbc_pkcs7(
            cipher::UnboundCipherKey::new(&cipher::AES_256, &key).unwrap(),
        )
        .unwrap();
        let mut buf = data.to_vec();
        let plain = dk
            .decrypt(&mut buf, cipher::DecryptionContext::Iv128(iv.into()))
            .unwrap();
        plain.to_vec()
    }

    #[test]
    fn pkcs12_structure_decodes() {
        let chain = test_chain(&PKCS_ECDSA_P256_SHA256);
        let password = "structure";
        let p12 = pkcs12(
            &chain.leaf_der,
            std::slice::from_ref(&chain.root_der),
            chain.leaf_key.serialized_der(),
            "n",
            password,
        )
        .unwrap();
        let pfx = Pfx::from_der(&p12).unwrap();
        assert_eq!(pfx.version, 3);
        assert_eq!(pfx.auth_safe.content_type, oid::DATA);
        let auth_safe_der: OctetString = pfx.auth_safe.content.decode_as().unwrap();

        // MAC.
        let mac = &pfx.mac_data;
        assert_eq!(mac.iterations, 2048);
        assert_eq!(mac.mac.digest_algorithm.oid, oid::SHA256);
        assert_eq!(mac.mac_salt.as_bytes().len(), 16);
        let key = pkcs12_kdf(
            &digest::SHA256,
            3,
            &password_bmp(password).unwrap(),
            mac.mac_salt.as_bytes(),
            2048,
            32,
        );
        hmac::verify(
            &hmac::Key::new(hmac::HMAC_SHA256, &key),
            auth_safe_der.as_bytes(),
            mac.mac.digest.as_bytes(),
        )
        .expect("MAC verifies");

        let contents = Vec::<ContentInfo>::from_der(auth_safe_der.as_bytes()).unwrap();
        assert_eq!(contents.len(), 2);

        // Certificates.
        assert_eq!(contents[0].content_type, oid::ENCRYPTED_DATA);
        let enc: EncryptedData = contents[0].content.decode_as().unwrap();
        assert_eq!(enc.version, 0);
        let eci = enc.encrypted_content_info;
        let plain = pbes2_decrypt(
            &eci.content_encryption_algorithm,
            password,
            eci.encrypted_content.unwrap().as_bytes(),
        );
        let bags = Vec::<SafeBag>::from_der(&plain).unwrap();
        assert_eq!(bags.len(), 2);
        let key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &chain.leaf_der);
        for (bag, want) in bags.iter().zip([&chain.leaf_der, &chain.root_der]) {
            assert_eq!(bag.bag_id, oid::CERT_BAG);
            let cert: CertBag = bag.bag_value.decode_as().unwrap();
            assert_eq!(cert.cert_id, oid::X509_CERTIFICATE);
            assert_eq!(cert.cert_value.as_bytes(), want.as_slice());
        }
        let attrs = bags[0].bag_attributes.as_ref().unwrap();
        assert_eq!(attrs.len(), 2);
        assert!(bags[1].bag_attributes.is_none());
        let local_id = attrs.iter().find(|a| a.oid == oid::LOCAL_KEY_ID).unwrap();
        let id: OctetString = local_id.values.get(0).unwrap().decode_as().unwrap();
        assert_eq!(id.as_bytes(), key_id.as_ref());
        let friendly = attrs.iter().find(|a| a.oid == oid::FRIENDLY_NAME).unwrap();
        let name: BmpString = friendly.values.get(0).unwrap().decode_as().unwrap();
        assert_eq!(name.to_string(), "n");

        // Key.
        assert_eq!(contents[1].content_type, oid::DATA);
        let data: OctetString = contents[1].content.decode_as().unwrap();
        let bags = Vec::<SafeBag>::from_der(data.as_bytes()).unwrap();
        assert_eq!(bags.len(), 1);
        assert_eq!(bags[0].bag_id, oid::SHROUDED_KEY_BAG);
        assert_eq!(bags[0].bag_attributes, Some(attrs.clone()));
        let epki: EncryptedPrivateKeyInfo = bags[0].bag_value.decode_as().unwrap();
        let key_der = pbes2_decrypt(
            &epki.encryption_algorithm,
            password,
            epki.encrypted_data.as_bytes(),
        );
        assert_eq!(key_der, chain.leaf_key.serialized_der());
    }

    #[test]
    fn pkcs12_salts_and_ivs_are_fresh() {
        let chain = test_chain(&PKCS_ECDSA_P256_SHA256);
        let make = || {
            pkcs12(
                &chain.leaf_der,
                &[],
                chain.leaf_key.serialized_der(),
                "",
                "pw",
            )
            .unwrap()
        };
        let (a, b) = (make(), make());
        assert_ne!(a, b);
        let pfx = Pfx::from_der(&a).unwrap();
        assert_ne!(
            pfx.mac_data.mac_salt,
            Pfx::from_der(&b).unwrap().mac_data.mac_salt
        );
        // Without a friendly name only localKeyId is attached.
        let auth_safe: OctetString = pfx.auth_safe.content.decode_as().unwrap();
        let contents = Vec::<ContentInfo>::from_der(auth_safe.as_bytes()).unwrap();
        let data: OctetString = contents[1].content.decode_as().unwrap();
        let bags = Vec::<SafeBag>::from_der(data.as_bytes()).unwrap();
        let attrs = bags[0].bag_attributes.as_ref().unwrap();
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs.get(0).unwrap().oid, oid::LOCAL_KEY_ID);
    }

    /// Found by the pkcs12_writer fuzz target: U+FFFF passed the character
    /// check, but the `der` crate's BMPString refuses it, so a friendly
    /// name (in the service, the certificate's common name) holding it
    /// failed as an ASN.1 encoding error, and a password holding it gave a
    /// file other BMPString readers cannot open. Both are refused now;
    /// U+FFFE, the last character allowed, still works.
    #[test]
    fn pkcs12_refuses_u_ffff() {
        let chain = test_chain(&PKCS_ECDSA_P256_SHA256);
        let key = chain.leaf_key.serialized_der();
        let root = std::slice::from_ref(&chain.root_der);
        assert_eq!(
            pkcs12(&chain.leaf_der, root, key, "n\u{FFFF}", "pw"),
            Err(Pkcs12Error::FriendlyNameCharacter('\u{FFFF}'))
        );
        assert_eq!(
            pkcs12(&chain.leaf_der, root, key, "n", "pw\u{FFFF}"),
            Err(Pkcs12Error::PasswordCharacter('\u{FFFF}'))
        );
        let file = pkcs12(&chain.leaf_der, root, key, "n\u{FFFE}", "pw\u{FFFE}").unwrap();
        assert!(Pfx::from_der(&file).is_ok());
    }

    #[test]
    fn pkcs12_refuses_bad_input() {
        let chain = test_chain(&PKCS_ECDSA_P256_SHA256);
        let key = chain.leaf_key.serialized_der();
        let root = std::slice::from_ref(&chain.root_der);
        let build = |cert: &[u8], chain: &[Vec<u8>], key: &[u8], name: &str, pw: &str| {
            pkcs12(cert, chain, key, name, pw).unwrap_err()
        };

        assert_eq!(
            build(&chain.leaf_der, root, key, "n", ""),
            Pkcs12Error::EmptyPassword
        );
        let long = "x".repeat(PKCS12_MAX_PASSWORD_LEN + 1);
        assert_eq!(
            build(&chain.leaf_der, root, key, "n", &long),
            Pkcs12Error::PasswordTooLong(129)
        );
        // The limit counts UTF-8 bytes: 65 two-byte characters are 130 bytes.
        let wide = "\u{e4}".repeat(65);
        assert_eq!(
            build(&chain.leaf_der, root, key, "n", &wide),
            Pkcs12Error::PasswordTooLong(130)
        );
        assert_eq!(
            build(&chain.leaf_der, root, key, "n", "smile\u{1F600}"),
            Pkcs12Error::PasswordCharacter('\u{1F600}')
        );
        assert_eq!(
            build(&chain.leaf_der, root, key, "n", "a\0b"),
            Pkcs12Error::PasswordCharacter('\0')
        );
        assert_eq!(
            build(&chain.leaf_der, root, key, "\u{1D11E}", "pw"),
            Pkcs12Error::FriendlyNameCharacter('\u{1D11E}')
        );
        assert_eq!(
            build(&chain.leaf_der, root, key, &"n".repeat(256), "pw"),
            Pkcs12Error::FriendlyNameTooLong(256)
        );
        assert!(matches!(
            build(b"not a cert", root, key, "n", "pw"),
            Pkcs12Error::BadCertificate(_)
        ));
        let mut trailing = chain.leaf_der.clone();
        trailing.push(0);
        assert!(matches!(
            build(&trailing, root, key, "n", "pw"),
            Pkcs12Error::BadCertificate(_)
        ));
        assert!(matches!(
            build(
                &chain.leaf_der,
                &[chain.root_der.clone(), vec![0x30, 0x00]],
                key,
                "n",
                "pw"
            ),
            Pkcs12Error::BadChainCertificate { index: 1, .. }
        ));
        // Another P-256 key: parses, but is not the certificate's.
        let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        assert_eq!(
            build(&chain.leaf_der, root, other.serialized_der(), "n", "pw"),
            Pkcs12Error::KeyMismatch
        );
        // An RSA key for an EC certificate, and garbage.
        let rsa = new_key(&PKCS_RSA_SHA256);
        let err = build(&chain.leaf_der, root, rsa.serialized_der(), "n", "pw");
        assert_eq!(err, Pkcs12Error::BadPrivateKey("ECDSA P-256".into()));
        assert!(err.to_string().contains("ECDSA P-256"), "{err}");
        assert_eq!(
            build(&chain.leaf_der, root, b"junk", "n", "pw"),
            Pkcs12Error::BadPrivateKey("ECDSA P-256".into())
        );
        // And an EC key for an RSA certificate.
        let rsa_chain = test_chain(&PKCS_RSA_SHA256);
        assert_eq!(
            build(&rsa_chain.leaf_der, &[], key, "n", "pw"),
            Pkcs12Error::BadPrivateKey("RSA".into())
        );

        for err in [
            Pkcs12Error::EmptyPassword,
            Pkcs12Error::KeyMismatch,
            Pkcs12Error::PasswordTooLong(129),
        ] {
            assert!(err.to_string().starts_with("pkcs12: "), "{err}");
        }
    }
}
