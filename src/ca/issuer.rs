//! The signing intermediate (subject S, key K) and chain 0, the default
//! chain: loading, checking and storing here, generating in
//! `issuer/generate.rs`. Chains other than chain 0 are in `chains.rs`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use der::{Decode, Encode, Tag, Tagged};
use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::{
    BasicConstraints as X509BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;

use super::chains::{self, Chain, Link};
use super::leaf::whole_seconds_utc;
use super::verify::{self, raw_tbs_names, split_signed};
use super::{csr, Ca, CaSettings};
use crate::error::{Error, ErrorKind, Result};

use self::generate::generate_into;
pub(super) use self::generate::{generate_hierarchy, random_tag};

mod generate;

/// File names in the data directory.
pub(super) const ROOT_CERT_FILE: &str = "root.pem";
pub(super) const ROOT_KEY_FILE: &str = "root.key";
pub(super) const INTERMEDIATE_CERT_FILE: &str = "intermediate.pem";
pub(super) const INTERMEDIATE_KEY_FILE: &str = "intermediate.key";

pub(super) const ROOT_VALIDITY: Duration = Duration::days(3653);
pub(super) const INTERMEDIATE_VALIDITY: Duration = Duration::days(1827);
/// Warn at startup when a CA certificate expires sooner than this.
pub(super) const EXPIRY_WARNING: Duration = Duration::days(30);

/// A setup error: the operator sees the detail (it never reaches a client).
pub(super) fn setup(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::ServerInternal, detail.into())
}

pub(super) fn load_or_generate(data_dir: &Path, settings: &CaSettings) -> Result<Ca> {
    chains::check_settings(settings)?;
    let any_configured = settings.root_cert.is_some()
        || settings.root_key.is_some()
        || settings.intermediate_cert.is_some()
        || settings.intermediate_key.is_some();
    let (signer, chain0) = if any_configured {
        let (Some(root_cert), Some(int_cert), Some(int_key)) = (
            &settings.root_cert,
            &settings.intermediate_cert,
            &settings.intermediate_key,
        ) else {
            return Err(setup(
                "CA files: root_cert, intermediate_cert and intermediate_key must be configured together (root_key is optional)",
            ));
        };
        if settings.chain_length > 1 {
            tracing::info!(
                chain_length = settings.chain_length,
                "the configured CA is served as configured; chain_length applies to the generated alternate chains"
            );
        }
        load_files(root_cert, settings.root_key.as_deref(), int_cert, int_key)?
    } else {
        load_or_generate_in(data_dir, settings)?
    };

    let mut all = vec![chain0];
    all.extend(chains::load_alternates(data_dir, settings, &signer)?);
    if all.len() > 1 {
        tracing::info!(chains = all.len(), "serving alternate chains");
    }
    Ok(signer.into_ca(all))
}

/// Chain 0 from the data directory, or a new CA generated there.
fn load_or_generate_in(data_dir: &Path, settings: &CaSettings) -> Result<(Signer, Chain)> {
    let paths = [
        data_dir.join(ROOT_CERT_FILE),
        data_dir.join(ROOT_KEY_FILE),
        data_dir.join(INTERMEDIATE_CERT_FILE),
        data_dir.join(INTERMEDIATE_KEY_FILE),
    ];
    let mut missing = Vec::new();
    for path in &paths {
        if !exists(path)? {
            missing.push(path.display().to_string());
        }
    }
    match missing.len() {
        0 => load_data_dir(data_dir, settings),
        4 => generate_into(data_dir, settings),
        _ => {
            let chains_note = if exists(&data_dir.join(chains::CHAINS_DIR))? {
                format!(" and {}/", chains::CHAINS_DIR)
            } else {
                String::new()
            };
            Err(setup(format!(
                "the data directory {} holds an incomplete CA (missing {}); restore the missing files, or remove {}, {}, {} and {}{chains_note} to generate a new CA",
                data_dir.display(),
                missing.join(", "),
                ROOT_CERT_FILE,
                ROOT_KEY_FILE,
                INTERMEDIATE_CERT_FILE,
                INTERMEDIATE_KEY_FILE
            )))
        }
    }
}

/// Chain 0 from the four files in `data_dir` and the upper intermediates in
/// `chains/0/`.
fn load_data_dir(data_dir: &Path, settings: &CaSettings) -> Result<(Signer, Chain)> {
    let input = |file: &str, private: bool| read_input(&data_dir.join(file), private);
    let signer = load_signer(
        &input(INTERMEDIATE_CERT_FILE, false)?,
        &input(INTERMEDIATE_KEY_FILE, true)?,
    )?;
    let chain0_dir = data_dir.join(chains::CHAINS_DIR).join("0");
    let uppers = chains::read_uppers(
        &chain0_dir,
        "restore it; the CA cannot be served without it",
    )?;
    let stored = uppers.len() as u32 + 1;
    if stored != settings.chain_length {
        return Err(setup(format!(
            "chain_length is {}, but the CA in {} was made with {stored} intermediate(s) per chain; set chain_length = {stored}, or move {}, {}, {}, {} and {}/ out of {} to generate a new CA (a new root and signing key)",
            settings.chain_length,
            data_dir.display(),
            ROOT_CERT_FILE,
            ROOT_KEY_FILE,
            INTERMEDIATE_CERT_FILE,
            INTERMEDIATE_KEY_FILE,
            chains::CHAINS_DIR,
            data_dir.display(),
        )));
    }
    let chain0 = build_chain0(
        &signer,
        &uppers,
        &input(ROOT_CERT_FILE, false)?,
        Some(&input(ROOT_KEY_FILE, true)?),
    )?;
    tracing::info!(dir = %data_dir.display(), "loaded CA");
    Ok((signer, chain0))
}

pub(super) fn exists(path: &Path) -> Result<bool> {
    path.try_exists()
        .map_err(|e| setup(format!("CA file {}: {e}", path.display())))
}

/// One PEM input: where it came from (for messages) and its text.
pub(super) struct Input {
    pub name: String,
    pub text: String,
}

pub(super) fn read_input(path: &Path, private: bool) -> Result<Input> {
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

fn load_files(
    root_cert: &Path,
    root_key: Option<&Path>,
    int_cert: &Path,
    int_key: &Path,
) -> Result<(Signer, Chain)> {
    let root_cert = read_input(root_cert, false)?;
    let root_key = root_key.map(|p| read_input(p, true)).transpose()?;
    let int_cert = read_input(int_cert, false)?;
    let int_key = read_input(int_key, true)?;
    let signer = load_signer(&int_cert, &int_key)?;
    let chain0 = build_chain0(&signer, &[], &root_cert, root_key.as_ref())?;
    tracing::info!(root = %root_cert.name, intermediate = %int_cert.name, "loaded CA");
    Ok((signer, chain0))
}

/// A certificate as loaded: DER, normalized PEM, parsed.
#[derive(Clone)]
pub(super) struct LoadedCert {
    pub der: Vec<u8>,
    pub pem: String,
    pub cert: Certificate,
}

fn parse_cert(der: Vec<u8>, input: &Input, what: &str) -> Result<LoadedCert> {
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

/// Every CERTIFICATE block of `input`, in order.
pub(super) fn load_certs(input: &Input, what: &str) -> Result<Vec<LoadedCert>> {
    pem_blocks(input)?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| parse_cert(der, input, what))
        .collect()
}

pub(super) fn load_cert(input: &Input, what: &str) -> Result<LoadedCert> {
    let mut certs = load_certs(input, what)?;
    if certs.len() != 1 {
        return Err(setup(format!(
            "{}: expected exactly one {what} certificate, found {} CERTIFICATE blocks",
            input.name,
            certs.len()
        )));
    }
    Ok(certs.remove(0))
}

/// A private key as loaded: ready to use, and as PEM (the block as found,
/// re-encoded with its own label).
pub(super) struct LoadedKey {
    pub key: KeyPair,
    pub pem: String,
}

pub(super) fn load_key(input: &Input, what: &str) -> Result<LoadedKey> {
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
    let mut keys: Vec<(String, Vec<u8>)> = blocks
        .into_iter()
        .filter(|(label, _)| {
            matches!(
                label.as_str(),
                "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY"
            )
        })
        .collect();
    if keys.len() != 1 {
        return Err(setup(format!(
            "{}: expected exactly one {what} private key, found {}",
            input.name,
            keys.len()
        )));
    }
    let (label, der) = keys.remove(0);
    let pem = der::pem::encode_string(&label, der::pem::LineEnding::LF, &der)
        .map_err(|e| setup(format!("{}: PEM encoding: {e}", input.name)))?;
    let key = KeyPair::try_from(der).map_err(|e| {
        setup(format!(
            "{}: {what} private key does not parse: {e}",
            input.name
        ))
    })?;
    Ok(LoadedKey { key, pem })
}

pub(super) fn spki_of(cert: &LoadedCert) -> Result<Vec<u8>> {
    cert.cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| setup(format!("encoding SubjectPublicKeyInfo: {e}")))
}

/// The key must be the certificate's.
pub(super) fn check_key_matches(
    key: &KeyPair,
    key_input: &Input,
    cert: &LoadedCert,
    cert_name: &str,
) -> Result<()> {
    if !cert_has_key(cert, key) {
        return Err(setup(format!(
            "the private key in {} does not belong to the certificate in {cert_name}",
            key_input.name
        )));
    }
    Ok(())
}

/// Whether `cert` holds the public half of `key`.
pub(super) fn cert_has_key(cert: &LoadedCert, key: &KeyPair) -> bool {
    cert.cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()
        == Some(key.der_bytes())
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
/// `label` names it in messages ("the root certificate in /x/root.pem").
pub(super) fn check_is_ca(cert: &LoadedCert, label: &str) -> Result<()> {
    let tbs = &cert.cert.tbs_certificate;
    let bc = tbs
        .get::<X509BasicConstraints>()
        .map_err(|e| setup(format!("{label}: basicConstraints: {e}")))?;
    if !bc.is_some_and(|(_, bc)| bc.ca) {
        return Err(setup(format!(
            "{label} is not a CA certificate (basicConstraints CA:TRUE missing)"
        )));
    }
    let ku = tbs
        .get::<KeyUsage>()
        .map_err(|e| setup(format!("{label}: keyUsage: {e}")))?;
    if let Some((_, ku)) = ku {
        if !ku.0.contains(KeyUsages::KeyCertSign) {
            return Err(setup(format!("{label}: its keyUsage lacks keyCertSign")));
        }
    }
    Ok(())
}

/// The basicConstraints pathLenConstraint, if the certificate has one.
pub(super) fn path_len_constraint(cert: &LoadedCert, label: &str) -> Result<Option<u8>> {
    let bc = cert
        .cert
        .tbs_certificate
        .get::<X509BasicConstraints>()
        .map_err(|e| setup(format!("{label}: basicConstraints: {e}")))?;
    Ok(bc.and_then(|(_, bc)| bc.path_len_constraint))
}

/// The subjectKeyIdentifier, if the certificate has one.
pub(super) fn subject_key_identifier(cert: &LoadedCert, label: &str) -> Result<Option<Vec<u8>>> {
    let ski = cert
        .cert
        .tbs_certificate
        .get::<SubjectKeyIdentifier>()
        .map_err(|e| setup(format!("{label}: subjectKeyIdentifier: {e}")))?;
    Ok(ski.map(|(_, ski)| ski.0.as_bytes().to_vec()))
}

pub(super) fn not_after(cert: &LoadedCert) -> Result<OffsetDateTime> {
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
fn key_identifier(cert: &LoadedCert, key: &KeyPair, label: &str) -> Result<Vec<u8>> {
    Ok(match subject_key_identifier(cert, label)? {
        Some(ski) => ski,
        None => aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            key.der_bytes(),
        )
        .as_ref()
        .to_vec(),
    })
}

/// The signing intermediate: key K, its certificate in chain 0, and what a
/// certificate for K in another chain must reproduce.
pub(super) struct Signer {
    issuer: Issuer<'static, KeyPair>,
    /// S in rcgen's form; rcgen writes it back byte for byte (checked by
    /// [`self_check`]).
    pub name: DistinguishedName,
    /// S, DER, exactly as in chain 0's certificate.
    pub subject: Vec<u8>,
    /// The key identifier leaves carry in their authorityKeyIdentifier.
    pub key_id: Vec<u8>,
    /// K, PEM.
    pub key_pem: String,
    /// Chain 0's certificate for K.
    pub cert: LoadedCert,
    /// The files K's certificate and key came from, for messages.
    pub cert_name: String,
    pub key_name: String,
}

impl Signer {
    pub(super) fn key(&self) -> &KeyPair {
        self.issuer.key()
    }

    /// The link for K's certificate in chain 0.
    fn link(&self) -> Link {
        Link {
            cert: self.cert.clone(),
            label: format!("the intermediate certificate in {}", self.cert_name),
            key_pem: Some(self.key_pem.clone()),
        }
    }

    fn into_ca(self, chains: Vec<Chain>) -> Ca {
        Ca {
            intermediate_der: self.cert.der,
            intermediate_not_after: chains[0].not_after(),
            issuer: self.issuer,
            chains,
        }
    }
}

/// Load and check the signing intermediate, and prepare it for signing.
fn load_signer(int_input: &Input, int_key_input: &Input) -> Result<Signer> {
    let int = load_cert(int_input, "intermediate")?;
    let label = format!("the intermediate certificate in {}", int_input.name);
    check_is_ca(&int, &label)?;
    let int_key = load_key(int_key_input, "intermediate")?;
    check_key_matches(&int_key.key, int_key_input, &int, &int_input.name)?;
    check_ca_key(&int_key.key, int_key_input)?;

    let int_signed = split_signed(&int.der)
        .map_err(|e| setup(format!("{}: intermediate certificate: {e}", int_input.name)))?;
    let subject = raw_tbs_names(int_signed.tbs)
        .map_err(|e| setup(format!("{}: intermediate certificate: {e}", int_input.name)))?
        .subject
        .to_vec();

    // The issuer for leaves.
    let name = to_rcgen_name(&int.cert.tbs_certificate.subject).map_err(|why| {
        setup(format!(
            "{}: the intermediate's subject name cannot be reproduced in leaves: {why}",
            int_input.name
        ))
    })?;
    let key_id = key_identifier(&int, &int_key.key, &label)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name.clone();
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.clone());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let issuer = Issuer::new(params, int_key.key);
    self_check(&issuer, &int, &subject, int_input)?;

    Ok(Signer {
        issuer,
        name,
        subject,
        key_id,
        key_pem: int_key.pem,
        cert: int,
        cert_name: int_input.name.clone(),
        key_name: int_key_input.name.clone(),
    })
}

/// Check chain 0: the signing intermediate, the upper intermediates of
/// `uppers` (certificate and key files, "#1" first) and the root.
fn build_chain0(
    signer: &Signer,
    uppers: &[(Input, Input)],
    root_input: &Input,
    root_key_input: Option<&Input>,
) -> Result<Chain> {
    let root = load_cert(root_input, "root")?;
    let root_key_pem = match root_key_input {
        Some(input) => {
            let key = load_key(input, "root")?;
            check_key_matches(&key.key, input, &root, &root_input.name)?;
            Some(key.pem)
        }
        None => None,
    };
    let mut links = vec![signer.link()];
    links.extend(chains::load_uppers(uppers)?);
    links.push(Link {
        cert: root,
        label: format!("the root certificate in {}", root_input.name),
        key_pem: root_key_pem,
    });
    chains::check_links(&links, false)?;
    Chain::from_links(links)
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
