//! The root and the intermediate: loading, checking, generating, storing.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use der::{Decode, Encode, Tag, Tagged};
use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::{
    BasicConstraints as X509BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;

use super::leaf::{random_serial, whole_seconds_utc};
use super::verify::{self, raw_tbs_names, split_signed};
use super::{csr, Ca, CaSettings, KeyAlgorithm};
use crate::error::{Error, ErrorKind, Result};

/// File names in the data directory.
pub(super) const ROOT_CERT_FILE: &str = "root.pem";
pub(super) const ROOT_KEY_FILE: &str = "root.key";
pub(super) const INTERMEDIATE_CERT_FILE: &str = "intermediate.pem";
pub(super) const INTERMEDIATE_KEY_FILE: &str = "intermediate.key";

const ROOT_VALIDITY: Duration = Duration::days(3653);
const INTERMEDIATE_VALIDITY: Duration = Duration::days(1827);
/// Generated CA certificates start this long before their creation, to
/// tolerate clients whose clocks run a little behind.
const BACKDATE: Duration = Duration::hours(1);
/// Warn at startup when the intermediate expires sooner than this.
const EXPIRY_WARNING: Duration = Duration::days(30);

/// A setup error: the operator sees the detail (it never reaches a client).
fn setup(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::ServerInternal, detail.into())
}

pub(super) fn load_or_generate(data_dir: &Path, settings: &CaSettings) -> Result<Ca> {
    let any_configured = settings.root_cert.is_some()
        || settings.root_key.is_some()
        || settings.intermediate_cert.is_some()
        || settings.intermediate_key.is_some();
    if any_configured {
        let (Some(root_cert), Some(int_cert), Some(int_key)) = (
            &settings.root_cert,
            &settings.intermediate_cert,
            &settings.intermediate_key,
        ) else {
            return Err(setup(
                "CA files: root_cert, intermediate_cert and intermediate_key must be configured together (root_key is optional)",
            ));
        };
        return load_files(root_cert, settings.root_key.as_deref(), int_cert, int_key);
    }

    let paths = [
        data_dir.join(ROOT_CERT_FILE),
        data_dir.join(ROOT_KEY_FILE),
        data_dir.join(INTERMEDIATE_CERT_FILE),
        data_dir.join(INTERMEDIATE_KEY_FILE),
    ];
    let mut missing = Vec::new();
    for path in &paths {
        let exists = path
            .try_exists()
            .map_err(|e| setup(format!("CA file {}: {e}", path.display())))?;
        if !exists {
            missing.push(path.display().to_string());
        }
    }
    match missing.len() {
        0 => {
            let [root_cert, root_key, int_cert, int_key] = &paths;
            load_files(root_cert, Some(root_key), int_cert, int_key)
        }
        4 => generate_into(data_dir, settings),
        _ => Err(setup(format!(
            "the data directory {} holds an incomplete CA (missing {}); restore the missing files, or remove {}, {}, {} and {} to generate a new CA",
            data_dir.display(),
            missing.join(", "),
            ROOT_CERT_FILE,
            ROOT_KEY_FILE,
            INTERMEDIATE_CERT_FILE,
            INTERMEDIATE_KEY_FILE
        ))),
    }
}

/// One PEM input: where it came from (for messages) and its text.
struct Input {
    name: String,
    text: String,
}

fn read_input(path: &Path, private: bool) -> Result<Input> {
    let text =
        fs::read_to_string(path).map_err(|e| setup(format!("reading {}: {e}", path.display())))?;
    if private {
        warn_if_readable_by_others(path);
    }
    Ok(Input {
        name: path.display().to_string(),
        text,
    })
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "CA private key file is accessible to other users");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

fn load_files(
    root_cert: &Path,
    root_key: Option<&Path>,
    int_cert: &Path,
    int_key: &Path,
) -> Result<Ca> {
    let root_cert = read_input(root_cert, false)?;
    let root_key = root_key.map(|p| read_input(p, true)).transpose()?;
    let int_cert = read_input(int_cert, false)?;
    let int_key = read_input(int_key, true)?;
    let ca = build(&root_cert, root_key.as_ref(), &int_cert, &int_key)?;
    tracing::info!(root = %root_cert.name, intermediate = %int_cert.name, "loaded CA");
    Ok(ca)
}

/// The PEM blocks of `text` as (label, DER). Text outside blocks is
/// ignored; inside a block, line length and line endings do not matter.
fn pem_blocks(input: &Input) -> Result<Vec<(String, Vec<u8>)>> {
    use base64::Engine;

    let mut blocks = Vec::new();
    let mut rest = input.text.as_str();
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| setup(format!("{}: malformed PEM header", input.name)))?;
        let label = &after[..label_end];
        let body_start = label_end + "-----".len();
        let footer = format!("-----END {label}-----");
        let body_len = after[body_start..].find(&footer).ok_or_else(|| {
            setup(format!(
                "{}: PEM block {label:?} has no end line",
                input.name
            ))
        })?;
        let body = &after[body_start..body_start + body_len];
        if body.contains(':') {
            return Err(setup(format!(
                "{}: PEM block {label:?} has headers (an encrypted legacy key?); not supported",
                input.name
            )));
        }
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| {
                setup(format!(
                    "{}: PEM block {label:?} does not decode: {e}",
                    input.name
                ))
            })?;
        blocks.push((label.to_owned(), der));
        rest = &after[body_start + body_len + footer.len()..];
    }
    Ok(blocks)
}

/// A certificate as loaded: DER, normalized PEM, parsed.
struct LoadedCert {
    der: Vec<u8>,
    pem: String,
    cert: Certificate,
}

fn load_cert(input: &Input, what: &str) -> Result<LoadedCert> {
    let mut certs: Vec<Vec<u8>> = pem_blocks(input)?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der)
        .collect();
    if certs.len() != 1 {
        return Err(setup(format!(
            "{}: expected exactly one {what} certificate, found {} CERTIFICATE blocks",
            input.name,
            certs.len()
        )));
    }
    let der = certs.remove(0);
    let cert = Certificate::from_der(&der).map_err(|e| {
        setup(format!(
            "{}: {what} certificate does not parse: {e}",
            input.name
        ))
    })?;
    let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der)
        .map_err(|e| setup(format!("{}: PEM encoding: {e}", input.name)))?;
    Ok(LoadedCert { der, pem, cert })
}

fn load_key(input: &Input, what: &str) -> Result<KeyPair> {
    let blocks = pem_blocks(input)?;
    if blocks
        .iter()
        .any(|(label, _)| label == "ENCRYPTED PRIVATE KEY")
    {
        return Err(setup(format!(
            "{}: encrypted {what} keys are not supported; store the key unencrypted with mode 0600",
            input.name
        )));
    }
    let mut keys: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|(label, _)| {
            matches!(
                label.as_str(),
                "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY"
            )
        })
        .map(|(_, der)| der)
        .collect();
    if keys.len() != 1 {
        return Err(setup(format!(
            "{}: expected exactly one {what} private key, found {}",
            input.name,
            keys.len()
        )));
    }
    KeyPair::try_from(keys.remove(0)).map_err(|e| {
        setup(format!(
            "{}: {what} private key does not parse: {e}",
            input.name
        ))
    })
}

fn spki_of(cert: &LoadedCert) -> Result<Vec<u8>> {
    cert.cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| setup(format!("encoding SubjectPublicKeyInfo: {e}")))
}

/// The key must be the certificate's.
fn check_key_matches(
    key: &KeyPair,
    key_input: &Input,
    cert: &LoadedCert,
    cert_name: &str,
) -> Result<()> {
    let cert_key = cert
        .cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes();
    if cert_key != Some(key.der_bytes()) {
        return Err(setup(format!(
            "the private key in {} does not belong to the certificate in {cert_name}",
            key_input.name
        )));
    }
    Ok(())
}

/// Only keys acceptable for a publicly-trusted-style CA sign leaves.
fn check_ca_key(key: &KeyPair, input: &Input) -> Result<()> {
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 || alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        return Ok(());
    }
    if alg == &rcgen::PKCS_RSA_SHA256 {
        return match csr::rsa_public_key(key.der_bytes()) {
            Some((bits, _)) if bits >= csr::RSA_MIN_BITS => Ok(()),
            _ => Err(setup(format!(
                "{}: RSA CA keys must have at least 2048 bits",
                input.name
            ))),
        };
    }
    Err(setup(format!(
        "{}: unsupported CA key type; use ECDSA P-256/P-384 or RSA",
        input.name
    )))
}

/// The certificate must be a CA certificate allowed to sign certificates.
fn check_is_ca(cert: &LoadedCert, input: &Input, what: &str) -> Result<()> {
    let tbs = &cert.cert.tbs_certificate;
    let bc = tbs
        .get::<X509BasicConstraints>()
        .map_err(|e| setup(format!("{}: {what} basicConstraints: {e}", input.name)))?;
    if !bc.is_some_and(|(_, bc)| bc.ca) {
        return Err(setup(format!(
            "{}: the {what} certificate is not a CA certificate (basicConstraints CA:TRUE missing)",
            input.name
        )));
    }
    let ku = tbs
        .get::<KeyUsage>()
        .map_err(|e| setup(format!("{}: {what} keyUsage: {e}", input.name)))?;
    if let Some((_, ku)) = ku {
        if !ku.0.contains(KeyUsages::KeyCertSign) {
            return Err(setup(format!(
                "{}: the {what} certificate's keyUsage lacks keyCertSign",
                input.name
            )));
        }
    }
    Ok(())
}

fn not_after(cert: &LoadedCert) -> Result<OffsetDateTime> {
    let t = cert
        .cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration();
    OffsetDateTime::from_unix_timestamp(t.as_secs() as i64)
        .map_err(|e| setup(format!("certificate expiry out of range: {e}")))
}

/// Convert a certificate Name to rcgen's form, so that rcgen writes it back
/// identically. Names rcgen cannot express (multi-valued RDNs, an attribute
/// type used twice, unusual string types) are refused.
fn to_rcgen_name(name: &Name) -> std::result::Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.0.iter() {
        let attrs = rdn.0.as_slice();
        let [atv] = attrs else {
            return Err("it has a multi-valued RDN".into());
        };
        let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
        let ty = DnType::from_oid(&arcs);
        if dn.get(&ty).is_some() {
            return Err(format!("attribute {} appears twice", atv.oid));
        }
        let bytes = atv.value.value();
        let text =
            || std::str::from_utf8(bytes).map_err(|_| "a name attribute is not text".to_owned());
        let bad = |e: rcgen::Error| format!("name attribute {}: {e}", atv.oid);
        let value = match atv.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => {
                DnValue::PrintableString(PrintableString::try_from(text()?).map_err(bad)?)
            }
            Tag::Ia5String => DnValue::Ia5String(Ia5String::try_from(text()?).map_err(bad)?),
            Tag::TeletexString => {
                DnValue::TeletexString(TeletexString::try_from(text()?).map_err(bad)?)
            }
            Tag::BmpString => {
                DnValue::BmpString(BmpString::from_utf16be(bytes.to_vec()).map_err(bad)?)
            }
            other => {
                return Err(format!(
                    "name attribute {} has string type {other}",
                    atv.oid
                ))
            }
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// The intermediate's key identifier: its subjectKeyIdentifier, or else the
/// RFC 5280 §4.2.1.2 method 1 value (SHA-1 of the subjectPublicKey).
fn key_identifier(cert: &LoadedCert, key: &KeyPair) -> Result<Vec<u8>> {
    let ski = cert
        .cert
        .tbs_certificate
        .get::<SubjectKeyIdentifier>()
        .map_err(|e| setup(format!("intermediate subjectKeyIdentifier: {e}")))?;
    Ok(match ski {
        Some((_, ski)) => ski.0.as_bytes().to_vec(),
        None => aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            key.der_bytes(),
        )
        .as_ref()
        .to_vec(),
    })
}

/// Check the CA and prepare the intermediate for signing.
fn build(
    root_input: &Input,
    root_key_input: Option<&Input>,
    int_input: &Input,
    int_key_input: &Input,
) -> Result<Ca> {
    let root = load_cert(root_input, "root")?;
    let int = load_cert(int_input, "intermediate")?;
    check_is_ca(&root, root_input, "root")?;
    check_is_ca(&int, int_input, "intermediate")?;

    if let Some(root_key_input) = root_key_input {
        let root_key = load_key(root_key_input, "root")?;
        check_key_matches(&root_key, root_key_input, &root, &root_input.name)?;
    }
    let int_key = load_key(int_key_input, "intermediate")?;
    check_key_matches(&int_key, int_key_input, &int, &int_input.name)?;
    check_ca_key(&int_key, int_key_input)?;

    // The intermediate must be issued and signed by the root.
    let root_signed = split_signed(&root.der)
        .map_err(|e| setup(format!("{}: root certificate: {e}", root_input.name)))?;
    let root_names = raw_tbs_names(root_signed.tbs)
        .map_err(|e| setup(format!("{}: root certificate: {e}", root_input.name)))?;
    let int_signed = split_signed(&int.der)
        .map_err(|e| setup(format!("{}: intermediate certificate: {e}", int_input.name)))?;
    let int_names = raw_tbs_names(int_signed.tbs)
        .map_err(|e| setup(format!("{}: intermediate certificate: {e}", int_input.name)))?;
    if int_names.issuer != root_names.subject {
        return Err(setup(format!(
            "the intermediate certificate in {} was not issued by the root in {} (issuer and subject names differ)",
            int_input.name, root_input.name
        )));
    }
    let root_spki = spki_of(&root)?;
    let root_spki = SubjectPublicKeyInfoRef::from_der(&root_spki)
        .map_err(|e| setup(format!("{}: root public key: {e}", root_input.name)))?;
    verify::verify_signature(
        &root_spki,
        &int_signed.algorithm,
        int_signed.tbs,
        int_signed.signature,
    )
    .map_err(|e| {
        setup(format!(
            "the intermediate certificate in {} is not signed by the root key in {}: {e}",
            int_input.name, root_input.name
        ))
    })?;

    // The issuer for leaves.
    let name = to_rcgen_name(&int.cert.tbs_certificate.subject).map_err(|why| {
        setup(format!(
            "{}: the intermediate's subject name cannot be reproduced in leaves: {why}",
            int_input.name
        ))
    })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(&int, &int_key)?);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let issuer = Issuer::new(params, int_key);
    self_check(&issuer, &int, int_names.subject, int_input)?;

    let intermediate_not_after = not_after(&int)?;
    let now = OffsetDateTime::now_utc();
    if intermediate_not_after <= now {
        return Err(setup(format!(
            "the intermediate certificate in {} expired at {intermediate_not_after}",
            int_input.name
        )));
    }
    if intermediate_not_after - now < EXPIRY_WARNING {
        tracing::warn!(intermediate = %int_input.name, expires = %intermediate_not_after, "the intermediate certificate expires soon");
    }

    Ok(Ca {
        root_der: root.der,
        root_pem: root.pem,
        intermediate_der: int.der,
        intermediate_pem: int.pem,
        intermediate_not_after,
        issuer,
    })
}

/// Sign a throwaway certificate and check that it names the intermediate
/// byte for byte as its issuer and that its signature verifies with the
/// intermediate's public key: leaves will chain.
fn self_check(
    issuer: &Issuer<'static, KeyPair>,
    int: &LoadedCert,
    int_subject: &[u8],
    int_input: &Input,
) -> Result<()> {
    let now = whole_seconds_utc(OffsetDateTime::now_utc());
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "acme-ca issuer self-check");
    params.serial_number = Some(SerialNumber::from_slice(&[1]));
    params.not_before = now;
    params.not_after = now + Duration::minutes(1);
    let probe = params
        .signed_by(issuer.key(), issuer)
        .map_err(|e| setup(format!("signing with the intermediate key failed: {e}")))?;
    let signed =
        split_signed(probe.der()).map_err(|e| setup(format!("self-check certificate: {e}")))?;
    let names =
        raw_tbs_names(signed.tbs).map_err(|e| setup(format!("self-check certificate: {e}")))?;
    if names.issuer != int_subject {
        return Err(setup(format!(
            "{}: the intermediate's subject name is not reproduced exactly in leaves (unusual encoding); leaves would not chain",
            int_input.name
        )));
    }
    let spki = spki_of(int)?;
    let spki = SubjectPublicKeyInfoRef::from_der(&spki)
        .map_err(|e| setup(format!("{}: intermediate public key: {e}", int_input.name)))?;
    verify::verify_signature(&spki, &signed.algorithm, signed.tbs, signed.signature).map_err(|e| {
        setup(format!(
            "{}: signatures by the intermediate key do not verify with the intermediate certificate: {e}",
            int_input.name
        ))
    })
}

/// PEM text of a freshly generated CA.
pub(super) struct GeneratedCa {
    pub root_cert: String,
    pub root_key: String,
    pub intermediate_cert: String,
    pub intermediate_key: String,
}

fn generate_key(alg: KeyAlgorithm) -> Result<KeyPair> {
    let key = match alg {
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyAlgorithm::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
        KeyAlgorithm::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
        }
    };
    key.map_err(|e| setup(format!("generating a {alg} key: {e}")))
}

/// A prefix short enough that "<prefix> intermediate <6 hex>" fits in a
/// 64-character common name.
fn name_prefix(settings: &CaSettings) -> String {
    let prefix = settings.name_prefix.trim();
    let prefix = if prefix.is_empty() { "acme-ca" } else { prefix };
    prefix.chars().take(40).collect()
}

fn ca_params(
    common_name: String,
    is_ca: IsCa,
    key_usages: Vec<KeyUsagePurpose>,
    validity: Duration,
    key: &KeyPair,
) -> Result<CertificateParams> {
    let now = whole_seconds_utc(OffsetDateTime::now_utc());
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = is_ca;
    params.key_usages = key_usages;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    let ski = params.key_identifier(key);
    params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    Ok(params)
}

/// Generate a root and an intermediate signed by it.
pub(super) fn generate(settings: &CaSettings) -> Result<GeneratedCa> {
    let prefix = name_prefix(settings);
    let mut tag = [0u8; 3];
    aws_lc_rs::rand::fill(&mut tag).map_err(|_| setup("random generator failed"))?;
    let tag = super::serial_hex(&tag);

    let root_key = generate_key(settings.key_algorithm)?;
    let root_params = ca_params(
        format!("{prefix} root {tag}"),
        IsCa::Ca(BasicConstraints::Unconstrained),
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        ROOT_VALIDITY,
        &root_key,
    )?;
    let root_cert = root_params
        .self_signed(&root_key)
        .map_err(|e| setup(format!("signing the root certificate: {e}")))?;

    let int_key = generate_key(settings.key_algorithm)?;
    let mut int_params = ca_params(
        format!("{prefix} intermediate {tag}"),
        IsCa::Ca(BasicConstraints::Constrained(0)),
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ],
        INTERMEDIATE_VALIDITY,
        &int_key,
    )?;
    int_params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    int_params.use_authority_key_identifier_extension = true;
    let root_issuer = Issuer::from_params(&root_params, &root_key);
    let int_cert = int_params
        .signed_by(&int_key, &root_issuer)
        .map_err(|e| setup(format!("signing the intermediate certificate: {e}")))?;

    Ok(GeneratedCa {
        root_cert: root_cert.pem(),
        root_key: root_key.serialize_pem(),
        intermediate_cert: int_cert.pem(),
        intermediate_key: int_key.serialize_pem(),
    })
}

fn generate_into(data_dir: &Path, settings: &CaSettings) -> Result<Ca> {
    fs::create_dir_all(data_dir)
        .map_err(|e| setup(format!("creating {}: {e}", data_dir.display())))?;
    tracing::info!(dir = %data_dir.display(), algorithm = %settings.key_algorithm, "generating a new CA");
    let generated = generate(settings)?;
    // Keys first, the intermediate certificate last.
    let files: [(&str, &str, bool); 4] = [
        (ROOT_KEY_FILE, &generated.root_key, true),
        (INTERMEDIATE_KEY_FILE, &generated.intermediate_key, true),
        (ROOT_CERT_FILE, &generated.root_cert, false),
        (INTERMEDIATE_CERT_FILE, &generated.intermediate_cert, false),
    ];
    for (file, contents, private) in files {
        let path = data_dir.join(file);
        write_atomic(&path, contents.as_bytes(), private)
            .map_err(|e| setup(format!("writing {}: {e}", path.display())))?;
    }
    let input = |file: &str, text: &str| Input {
        name: data_dir.join(file).display().to_string(),
        text: text.to_owned(),
    };
    build(
        &input(ROOT_CERT_FILE, &generated.root_cert),
        Some(&input(ROOT_KEY_FILE, &generated.root_key)),
        &input(INTERMEDIATE_CERT_FILE, &generated.intermediate_cert),
        &input(INTERMEDIATE_KEY_FILE, &generated.intermediate_key),
    )
}

/// Write `contents` to `path` atomically: a new temporary file in the same
/// directory (mode 0600 if `private`, else 0644), synced, then renamed over
/// `path`.
pub(super) fn write_atomic(path: &Path, contents: &[u8], private: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy();
    let mut suffix = [0u8; 6];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| io::Error::other("random generator failed"))?;
    let tmp: PathBuf = dir.join(format!(".{file_name}.{}.tmp", super::serial_hex(&suffix)));

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        if private {
            // The mode given at creation is reduced by the umask; make sure.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename durable; not every platform can sync a directory.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
