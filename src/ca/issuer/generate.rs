//! Generating a CA: a new signing key and its hierarchy (root, upper
//! intermediates, the certificate for the signing key), written to the data
//! directory and then loaded as on every start. Used for chain 0 here and
//! for the alternate chains in `chains.rs`.

use std::fs;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{
    load_data_dir, setup, write_atomic, Signer, INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE,
    INTERMEDIATE_VALIDITY, ROOT_CERT_FILE, ROOT_KEY_FILE, ROOT_VALIDITY,
};
use crate::ca::chains::{self, Chain};
use crate::ca::leaf::{random_serial, whole_seconds_utc};
use crate::ca::{CaSettings, KeyAlgorithm};
use crate::error::Result;

/// Generated CA certificates start this long before their creation, to
/// tolerate clients whose clocks run a little behind.
const BACKDATE: Duration = Duration::hours(1);

pub(in crate::ca) fn generate_key(alg: KeyAlgorithm) -> Result<KeyPair> {
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

/// A prefix short enough that "<prefix> Intermediate CA <6 hex> #<n>" fits
/// in a 64-character common name.
fn name_prefix(settings: &CaSettings) -> String {
    let prefix = settings.name_prefix.trim();
    let prefix = if prefix.is_empty() { "acme-ca" } else { prefix };
    prefix.chars().take(37).collect()
}

/// Six random hex digits that tell generated hierarchies apart.
pub(in crate::ca) fn random_tag() -> Result<String> {
    let mut tag = [0u8; 3];
    aws_lc_rs::rand::fill(&mut tag).map_err(|_| setup("random generator failed"))?;
    Ok(crate::ca::serial_hex(&tag))
}

fn common_name(cn: String) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// The subjectKeyIdentifier rcgen derives for a new certificate of `key`.
fn new_key_id(key: &KeyPair) -> Vec<u8> {
    CertificateParams::default().key_identifier(key)
}

fn ca_params(
    name: DistinguishedName,
    is_ca: IsCa,
    key_usages: Vec<KeyUsagePurpose>,
    now: OffsetDateTime,
    validity: Duration,
    key_id: Vec<u8>,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    params.is_ca = is_ca;
    params.key_usages = key_usages;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id);
    Ok(params)
}

/// An intermediate that may have `path_len` intermediates below it.
fn intermediate_params(
    name: DistinguishedName,
    path_len: u8,
    now: OffsetDateTime,
    key_id: Vec<u8>,
) -> Result<CertificateParams> {
    let mut params = ca_params(
        name,
        IsCa::Ca(BasicConstraints::Constrained(path_len)),
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ],
        now,
        INTERMEDIATE_VALIDITY,
        key_id,
    )?;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// PEM text of a freshly generated hierarchy above the signing key K.
pub(in crate::ca) struct Hierarchy {
    pub root_cert: String,
    pub root_key: String,
    /// The upper intermediates, certificate and key: `uppers[0]` is "#1",
    /// which issued the certificate for K; the last was issued by the root.
    pub uppers: Vec<(String, String)>,
    /// The certificate for K (subject S).
    pub signer_cert: String,
}

/// Generate a root, `chain_length - 1` upper intermediates below it, and a
/// certificate for the signing key with the name `signer_name` and the key
/// identifier `signer_key_id` at the bottom. The root is named
/// "`<prefix> root <tag>`", the upper intermediates
/// "`<prefix> intermediate <tag> #<n>`", #1 being the lowest.
pub(in crate::ca) fn generate_hierarchy(
    settings: &CaSettings,
    tag: &str,
    signer_name: &DistinguishedName,
    signer_key_id: &[u8],
    signer_key: &KeyPair,
) -> Result<Hierarchy> {
    let prefix = name_prefix(settings);
    let (root_label, int_label) = settings.name_style.labels();
    let alg = settings.key_algorithm;
    let now = whole_seconds_utc(OffsetDateTime::now_utc());

    let root_key = generate_key(alg)?;
    let root_params = ca_params(
        common_name(format!("{prefix} {root_label} {tag}")),
        IsCa::Ca(BasicConstraints::Unconstrained),
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        now,
        ROOT_VALIDITY,
        new_key_id(&root_key),
    )?;
    let root_cert = root_params
        .self_signed(&root_key)
        .map_err(|e| setup(format!("signing the root certificate: {e}")))?;

    // From the top down: #(n-1) is issued by the root, #1 issues K's
    // certificate.
    let upper_count = settings.chain_length.saturating_sub(1);
    let mut uppers: Vec<(CertificateParams, KeyPair, String)> = Vec::new();
    for n in (1..=upper_count).rev() {
        let key = generate_key(alg)?;
        let params = intermediate_params(
            common_name(format!("{prefix} {int_label} {tag} #{n}")),
            u8::try_from(n).map_err(|_| setup("chain too long"))?,
            now,
            new_key_id(&key),
        )?;
        let (parent_params, parent_key) = uppers
            .last()
            .map_or((&root_params, &root_key), |(p, k, _)| (p, k));
        let cert = params
            .signed_by(&key, &Issuer::from_params(parent_params, parent_key))
            .map_err(|e| setup(format!("signing intermediate #{n}: {e}")))?;
        uppers.push((params, key, cert.pem()));
    }

    let signer_params = intermediate_params(signer_name.clone(), 0, now, signer_key_id.to_vec())?;
    let (parent_params, parent_key) = uppers
        .last()
        .map_or((&root_params, &root_key), |(p, k, _)| (p, k));
    let signer_cert = signer_params
        .signed_by(signer_key, &Issuer::from_params(parent_params, parent_key))
        .map_err(|e| setup(format!("signing the intermediate certificate: {e}")))?;

    Ok(Hierarchy {
        root_cert: root_cert.pem(),
        root_key: root_key.serialize_pem(),
        uppers: uppers
            .into_iter()
            .rev()
            .map(|(_, key, cert)| (cert, key.serialize_pem()))
            .collect(),
        signer_cert: signer_cert.pem(),
    })
}

/// Generate a new CA in `data_dir`: chain 0 with `chain_length`
/// intermediates. The upper intermediates go to `chains/0/` first, then the
/// keys, the root and, last, intermediate.pem.
pub(super) fn generate_into(data_dir: &Path, settings: &CaSettings) -> Result<(Signer, Chain)> {
    fs::create_dir_all(data_dir)
        .map_err(|e| setup(format!("creating {}: {e}", data_dir.display())))?;
    chains::check_no_stored_chains(data_dir)?;
    tracing::info!(dir = %data_dir.display(), algorithm = %settings.key_algorithm, chain_length = settings.chain_length, "generating a new CA");
    let tag = random_tag()?;
    let int_key = generate_key(settings.key_algorithm)?;
    let int_label = settings.name_style.labels().1;
    let name = common_name(format!("{} {int_label} {tag}", name_prefix(settings)));
    let generated = generate_hierarchy(settings, &tag, &name, &new_key_id(&int_key), &int_key)?;
    if !generated.uppers.is_empty() {
        chains::store(data_dir, "0", &chains::upper_files(&generated.uppers))?;
    }
    let int_key_pem = int_key.serialize_pem();
    // Keys first, the intermediate certificate last.
    let files: [(&str, &str, bool); 4] = [
        (ROOT_KEY_FILE, &generated.root_key, true),
        (INTERMEDIATE_KEY_FILE, &int_key_pem, true),
        (ROOT_CERT_FILE, &generated.root_cert, false),
        (INTERMEDIATE_CERT_FILE, &generated.signer_cert, false),
    ];
    for (file, contents, private) in files {
        let path = data_dir.join(file);
        write_atomic(&path, contents.as_bytes(), private)
            .map_err(|e| setup(format!("writing {}: {e}", path.display())))?;
    }
    // Serve what was stored, checked as on every start.
    load_data_dir(data_dir, settings)
}
