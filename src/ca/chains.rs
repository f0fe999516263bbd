//! Chains: the certificate paths from the signing intermediate up to a root.
//!
//! Leaves are signed by one key, K, under one name, S. Every chain starts
//! with a certificate for S and K, so a leaf verifies along any of them; what
//! differs is the path above it: zero or more "upper" intermediates, then
//! the chain's own root. Chain 0 is the default one (`root.pem` and
//! `intermediate.pem`); the others are alternates that clients can pick, as
//! with Let's Encrypt's cross-signed roots or Pebble's
//! `PEBBLE_ALTERNATE_ROOTS`.
//!
//! # Data directory layout
//!
//! Chain 0 keeps the four files of the data directory (`root.pem`,
//! `root.key`, `intermediate.pem` = the certificate for K, `intermediate.key`
//! = K). Everything else lives under `chains/`, one directory per chain:
//!
//! ```text
//! <data_dir>/chains/
//!   0/                      only when chain 0 has upper intermediates
//!     intermediate-1.pem    upper intermediate #1: it issued intermediate.pem
//!     intermediate-1.key
//!     intermediate-2.pem    #2 issued #1; the highest number was issued by
//!     intermediate-2.key    the root
//!   1/                      generated alternate chain 1
//!     root.pem  root.key    its own self-signed root
//!     intermediate.pem      its certificate for S and K (K is not copied)
//!     intermediate-1.pem …  its upper intermediates, numbered as above
//!   2/ …
//! ```
//!
//! A chain's length is one plus its number of `intermediate-<n>.pem` files.
//! A generated chain directory is written in full under a temporary name and
//! then renamed, so it is either complete or absent. Keys are written with
//! mode 0600. A stored chain is bound to K by its `intermediate.pem`, which
//! must hold K's public key and the name S: if K changes, loading says which
//! directories to remove instead of silently minting new roots.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use der::asn1::ObjectIdentifier;
use der::{Decode, Tag, Tagged};
use time::OffsetDateTime;
use x509_cert::name::Name;
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::issuer::{
    cert_has_key, check_is_ca, check_key_matches, exists, generate_hierarchy, load_cert,
    load_certs, load_key, not_after, path_len_constraint, random_tag, read_input, setup, spki_of,
    subject_key_identifier, write_atomic, Input, LoadedCert, Signer, EXPIRY_WARNING,
    INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE, ROOT_CERT_FILE, ROOT_KEY_FILE,
};
use super::verify::{self, raw_tbs_names, split_signed};
use super::{CaSettings, MAX_ALTERNATE_ROOTS, MAX_CHAIN_LENGTH};
use crate::error::Result;

/// The directory under the data directory that holds chain material other
/// than chain 0's four files.
pub(super) const CHAINS_DIR: &str = "chains";

const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// One certificate of a chain being loaded: the certificate, how messages
/// name it, and its private key when this server holds it.
pub(super) struct Link {
    pub cert: LoadedCert,
    pub label: String,
    pub key_pem: Option<String>,
}

/// One certificate chain from the signing intermediate to a root.
///
/// The first intermediate is always the certificate for the name and key
/// that sign leaves; the others (if any) lead up to the root, which is not
/// part of [`Chain::intermediates_der`]: it is what a client trusts.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    intermediates_der: Vec<Vec<u8>>,
    intermediates_pem: String,
    intermediate_keys_pem: Vec<Option<String>>,
    intermediate_names: Vec<String>,
    root_der: Vec<u8>,
    root_pem: String,
    root_key_pem: Option<String>,
    root_name: String,
    not_after: OffsetDateTime,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("intermediates", &self.intermediate_names)
            .field("root", &self.root_name)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// `links` runs from the certificate for K up to the root (at least two
    /// links, already checked with [`check_links`]).
    pub(super) fn from_links(mut links: Vec<Link>) -> Result<Chain> {
        let mut earliest = None::<OffsetDateTime>;
        for link in &links {
            let t = not_after(&link.cert)?;
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
        let root = links
            .pop()
            .filter(|_| !links.is_empty())
            .ok_or_else(|| setup("a chain needs an intermediate and a root"))?;
        Ok(Chain {
            intermediates_pem: links.iter().map(|l| l.cert.pem.as_str()).collect(),
            intermediate_names: links
                .iter()
                .map(|l| common_name(&l.cert.cert.tbs_certificate.subject))
                .collect(),
            intermediate_keys_pem: links.iter().map(|l| l.key_pem.clone()).collect(),
            intermediates_der: links.into_iter().map(|l| l.cert.der).collect(),
            root_name: common_name(&root.cert.cert.tbs_certificate.subject),
            root_der: root.cert.der,
            root_pem: root.cert.pem,
            root_key_pem: root.key_pem,
            not_after: earliest.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        })
    }

    /// The intermediates, DER, from the certificate for the signing key up
    /// to (not including) the root.
    pub(crate) fn intermediates_der(&self) -> &[Vec<u8>] {
        &self.intermediates_der
    }

    /// The same intermediates as concatenated PEM: what follows the leaf in
    /// an `application/pem-certificate-chain` download of this chain.
    pub(crate) fn intermediates_pem(&self) -> &str {
        &self.intermediates_pem
    }

    /// The root certificate, DER.
    pub(crate) fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The root certificate, PEM.
    pub(crate) fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The root's private key, PEM, when this server holds it (not for a
    /// configured CA without `root_key`, nor for an operator-supplied
    /// chain).
    pub(crate) fn root_key_pem(&self) -> Option<&str> {
        self.root_key_pem.as_deref()
    }

    /// For each intermediate, in the order of
    /// [`Chain::intermediates_der`], its private key as PEM when this server
    /// holds it. The first one, the signing key, is always held.
    pub(crate) fn intermediate_keys_pem(&self) -> &[Option<String>] {
        &self.intermediate_keys_pem
    }

    #[cfg(test)]
    /// The common name in the subject of intermediate `i` (empty when it
    /// has none); `None` when there is no intermediate `i`.
    pub(crate) fn intermediate_common_name(&self, i: usize) -> Option<String> {
        self.intermediate_names.get(i).cloned()
    }

    #[cfg(test)]
    /// The common name of the issuer of intermediate `i`: the next
    /// intermediate's, or the root's for the last one. This is what
    /// clients match when they choose a chain by the name its topmost
    /// certificate was issued by (certbot's `--preferred-chain`). `None`
    /// when there is no intermediate `i`.
    pub(crate) fn issuer_common_name(&self, i: usize) -> Option<String> {
        if i >= self.intermediate_names.len() {
            return None;
        }
        Some(
            self.intermediate_names
                .get(i + 1)
                .unwrap_or(&self.root_name)
                .clone(),
        )
    }

    #[cfg(test)]
    /// The common name in the root's subject (empty when it has none).
    pub(crate) fn root_common_name(&self) -> String {
        self.root_name.clone()
    }

    /// The earliest expiry among the chain's certificates, root included.
    pub(crate) fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

/// The first common name in `name`, or "" when it has none.
fn common_name(name: &Name) -> String {
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == COMMON_NAME {
                let bytes = atv.value.value();
                return match atv.value.tag() {
                    Tag::BmpString => {
                        let units: Vec<u16> = bytes
                            .chunks(2)
                            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                            .collect();
                        String::from_utf16_lossy(&units)
                    }
                    _ => String::from_utf8_lossy(bytes).into_owned(),
                };
            }
        }
    }
    String::new()
}

/// The limits on the chain settings.
pub(super) fn check_settings(settings: &CaSettings) -> Result<()> {
    if settings.chain_length == 0 || settings.chain_length > MAX_CHAIN_LENGTH {
        return Err(setup(format!(
            "chain_length must be between 1 and {MAX_CHAIN_LENGTH} (it is {})",
            settings.chain_length
        )));
    }
    if settings.alternate_roots > MAX_ALTERNATE_ROOTS {
        return Err(setup(format!(
            "alternate_roots must be at most {MAX_ALTERNATE_ROOTS} (it is {})",
            settings.alternate_roots
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Checks

/// Check a chain given from the certificate for K up to the root: every
/// certificate is an unexpired CA certificate whose pathLenConstraint allows
/// the intermediates below it, and each one names the next as its issuer
/// byte for byte and carries a signature that verifies with the next one's
/// key. With `self_signed_root`, the last one must also be self-signed.
pub(super) fn check_links(links: &[Link], self_signed_root: bool) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    for (below, link) in links.iter().enumerate() {
        check_is_ca(&link.cert, &link.label)?;
        if let Some(limit) = path_len_constraint(&link.cert, &link.label)? {
            if usize::from(limit) < below {
                return Err(setup(format!(
                    "{} allows {limit} intermediate(s) below it (basicConstraints pathLenConstraint), but the chain has {below}",
                    link.label
                )));
            }
        }
        let expiry = not_after(&link.cert)?;
        if expiry <= now {
            return Err(setup(format!("{} expired at {expiry}", link.label)));
        }
        if expiry - now < EXPIRY_WARNING {
            tracing::warn!(certificate = %link.label, expires = %expiry, "a CA certificate expires soon");
        }
    }
    for pair in links.windows(2) {
        check_issued_by(&pair[0], &pair[1])?;
    }
    if self_signed_root {
        if let Some(root) = links.last() {
            let names = tbs_names(root)?;
            if names.0 != names.1 {
                return Err(setup(format!(
                    "{} is not self-signed (its issuer and subject names differ); the last certificate of a chain must be its root",
                    root.label
                )));
            }
            check_signature(root, root).map_err(|e| {
                setup(format!(
                    "{} is not self-signed (its signature does not verify with its own key: {e}); the last certificate of a chain must be its root",
                    root.label
                ))
            })?;
        }
    }
    Ok(())
}

/// The raw (issuer, subject) names of a link's certificate.
fn tbs_names(link: &Link) -> Result<(Vec<u8>, Vec<u8>)> {
    let signed = split_signed(&link.cert.der).map_err(|e| setup(format!("{}: {e}", link.label)))?;
    let names = raw_tbs_names(signed.tbs).map_err(|e| setup(format!("{}: {e}", link.label)))?;
    Ok((names.issuer.to_vec(), names.subject.to_vec()))
}

/// Whether `child` was signed with `parent`'s key.
fn check_signature(child: &Link, parent: &Link) -> std::result::Result<(), String> {
    let signed = split_signed(&child.cert.der).map_err(|e| e.to_string())?;
    let spki = spki_of(&parent.cert).map_err(|e| e.detail.to_string())?;
    let spki = SubjectPublicKeyInfoRef::from_der(&spki).map_err(|e| e.to_string())?;
    verify::verify_signature(&spki, &signed.algorithm, signed.tbs, signed.signature)
        .map_err(|e| e.to_string())
}

/// `child` names `parent` as its issuer and is signed by its key.
fn check_issued_by(child: &Link, parent: &Link) -> Result<()> {
    let (child_issuer, _) = tbs_names(child)?;
    let (_, parent_subject) = tbs_names(parent)?;
    if child_issuer != parent_subject {
        return Err(setup(format!(
            "{} was not issued by {} (issuer and subject names differ)",
            child.label, parent.label
        )));
    }
    check_signature(child, parent).map_err(|e| {
        setup(format!(
            "{} is not signed by {}: {e}",
            child.label, parent.label
        ))
    })
}

/// The first certificate of a chain must be for the signing intermediate:
/// subject S byte for byte, key K, and no other key identifier than the one
/// leaves name as their authority's. `hint` tells the operator what to do.
fn check_binding(first: &Link, signer: &Signer, hint: &str) -> Result<()> {
    let hint = if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    };
    let (_, subject) = tbs_names(first)?;
    if subject != signer.subject {
        return Err(setup(format!(
            "{} is not a certificate for the signing intermediate: its subject name is not exactly the one in {} ({}){hint}",
            first.label, signer.cert_name, signer.cert.cert.tbs_certificate.subject
        )));
    }
    if !cert_has_key(&first.cert, signer.key()) {
        return Err(setup(format!(
            "{} is not a certificate for the signing intermediate: its public key is not the one in {} (it was made for another key){hint}",
            first.label, signer.key_name
        )));
    }
    if let Some(ski) = subject_key_identifier(&first.cert, &first.label)? {
        if ski != signer.key_id {
            return Err(setup(format!(
                "{}: its subjectKeyIdentifier {} differs from the {} that leaves carry as their authorityKeyIdentifier, so leaves would not chain to it{hint}",
                first.label,
                super::serial_hex(&ski),
                super::serial_hex(&signer.key_id)
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The chains/ directory

fn upper_cert_file(n: usize) -> String {
    format!("intermediate-{n}.pem")
}

fn upper_key_file(n: usize) -> String {
    format!("intermediate-{n}.key")
}

/// The upper intermediates stored in `dir` (certificate and key inputs, #1
/// first); none when `dir` does not exist. `hint` ends the message about a
/// half-present pair.
pub(super) fn read_uppers(dir: &Path, hint: &str) -> Result<Vec<(Input, Input)>> {
    let mut uppers = Vec::new();
    if !exists(dir)? {
        return Ok(uppers);
    }
    for n in 1.. {
        let cert = dir.join(upper_cert_file(n));
        let key = dir.join(upper_key_file(n));
        match (exists(&cert)?, exists(&key)?) {
            (true, true) => uppers.push((read_input(&cert, false)?, read_input(&key, true)?)),
            (false, false) => break,
            (has_cert, _) => {
                let missing = if has_cert { key } else { cert };
                return Err(setup(format!(
                    "{} is incomplete: {} is missing; {hint}",
                    dir.display(),
                    missing.display()
                )));
            }
        }
    }
    Ok(uppers)
}

/// Load stored upper intermediates with their keys.
pub(super) fn load_uppers(uppers: &[(Input, Input)]) -> Result<Vec<Link>> {
    uppers
        .iter()
        .map(|(cert_input, key_input)| {
            let cert = load_cert(cert_input, "intermediate")?;
            let key = load_key(key_input, "intermediate")?;
            check_key_matches(&key.key, key_input, &cert, &cert_input.name)?;
            Ok(Link {
                cert,
                label: format!("the intermediate certificate in {}", cert_input.name),
                key_pem: Some(key.pem),
            })
        })
        .collect()
}

/// The files of generated upper intermediates: (name, contents, private).
pub(super) fn upper_files(uppers: &[(String, String)]) -> Vec<(String, &str, bool)> {
    uppers
        .iter()
        .enumerate()
        .flat_map(|(i, (cert, key))| {
            [
                (upper_cert_file(i + 1), cert.as_str(), false),
                (upper_key_file(i + 1), key.as_str(), true),
            ]
        })
        .collect()
}

#[cfg(unix)]
fn create_private_dir(dir: &Path, recursive: bool) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(recursive)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path, recursive: bool) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(recursive).create(dir)
}

/// Store `files` (name, contents, private) as `<data_dir>/chains/<name>/`:
/// written in full under a temporary name, then renamed into place.
pub(super) fn store(data_dir: &Path, name: &str, files: &[(String, &str, bool)]) -> Result<()> {
    let chains_dir = data_dir.join(CHAINS_DIR);
    create_private_dir(&chains_dir, true)
        .map_err(|e| setup(format!("creating {}: {e}", chains_dir.display())))?;
    let target = chains_dir.join(name);
    let tmp = chains_dir.join(format!(".{name}.{}.tmp", random_tag()?));
    create_private_dir(&tmp, false)
        .map_err(|e| setup(format!("creating {}: {e}", tmp.display())))?;
    let result = (|| {
        for (file, contents, private) in files {
            let path = tmp.join(file);
            write_atomic(&path, contents.as_bytes(), *private)
                .map_err(|e| setup(format!("writing {}: {e}", path.display())))?;
        }
        fs::rename(&tmp, &target).map_err(|e| {
            setup(format!(
                "renaming {} to {}: {e}",
                tmp.display(),
                target.display()
            ))
        })
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
        return result;
    }
    if let Ok(dir) = fs::File::open(&chains_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The numbered chain directories in `<data_dir>/chains`, sorted.
fn stored_chain_numbers(data_dir: &Path) -> Result<Vec<u32>> {
    let chains_dir = data_dir.join(CHAINS_DIR);
    if !exists(&chains_dir)? {
        return Ok(Vec::new());
    }
    let entries = fs::read_dir(&chains_dir)
        .map_err(|e| setup(format!("reading {}: {e}", chains_dir.display())))?;
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| setup(format!("reading {}: {e}", chains_dir.display())))?;
        if let Some(n) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Before a new CA is generated in `data_dir`: stored chains there were
/// made for the CA whose files are gone, and are refused rather than
/// replaced.
pub(super) fn check_no_stored_chains(data_dir: &Path) -> Result<()> {
    let numbers = stored_chain_numbers(data_dir)?;
    if numbers.is_empty() {
        return Ok(());
    }
    let chains_dir = data_dir.join(CHAINS_DIR);
    Err(setup(format!(
        "{} holds chains ({}) made for a CA whose files ({}, {}, {}, {}) are missing from {}; restore those files, or remove {} to generate a new CA",
        chains_dir.display(),
        numbers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        ROOT_CERT_FILE,
        ROOT_KEY_FILE,
        INTERMEDIATE_CERT_FILE,
        INTERMEDIATE_KEY_FILE,
        data_dir.display(),
        chains_dir.display()
    )))
}

// ---------------------------------------------------------------------------
// Alternate chains

/// The alternate chains the settings ask for, after chain 0: the first
/// `alternate_roots` generated ones (loaded from `<data_dir>/chains/<n>/`,
/// generating those missing), then the operator-supplied files in order.
/// Stored chains are all checked before anything is generated, and a chain
/// length that differs from `chain_length` is an error that names the
/// directories to remove.
pub(super) fn load_alternates(
    data_dir: &Path,
    settings: &CaSettings,
    signer: &Signer,
) -> Result<Vec<Chain>> {
    let chains_dir = data_dir.join(CHAINS_DIR);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for n in 1..=settings.alternate_roots {
        let dir = chains_dir.join(n.to_string());
        if !exists(&dir)? {
            missing.push(n);
            continue;
        }
        if !dir.is_dir() {
            return Err(setup(format!("{} is not a directory", dir.display())));
        }
        let uppers = read_uppers(&dir, &remove_hint(&dir))?;
        let length = uppers.len() + 1;
        if length != settings.chain_length as usize {
            mismatched.push(format!("{} ({length})", dir.display()));
            continue;
        }
        found.push((n, dir, uppers));
    }
    if !mismatched.is_empty() {
        return Err(setup(format!(
            "chain_length is {}, but stored alternate chains have another length: {}; set chain_length back, or remove those directories to generate new alternate chains (with new roots)",
            settings.chain_length,
            mismatched.join(", ")
        )));
    }

    let mut chains = Vec::new();
    for (n, dir, uppers) in found {
        chains.push((n, load_stored(&dir, &uppers, signer)?));
    }
    for n in missing {
        tracing::info!(
            chain = n,
            chain_length = settings.chain_length,
            "generating an alternate chain"
        );
        let generated = generate_hierarchy(
            settings,
            &random_tag()?,
            &signer.name,
            &signer.key_id,
            signer.key(),
        )?;
        let mut files = vec![
            (
                ROOT_CERT_FILE.to_owned(),
                generated.root_cert.as_str(),
                false,
            ),
            (ROOT_KEY_FILE.to_owned(), generated.root_key.as_str(), true),
            (
                INTERMEDIATE_CERT_FILE.to_owned(),
                generated.signer_cert.as_str(),
                false,
            ),
        ];
        files.extend(upper_files(&generated.uppers));
        store(data_dir, &n.to_string(), &files)?;
        // Serve what was stored, checked as on every start.
        let dir = chains_dir.join(n.to_string());
        let uppers = read_uppers(&dir, &remove_hint(&dir))?;
        chains.push((n, load_stored(&dir, &uppers, signer)?));
    }
    chains.sort_by_key(|(n, _)| *n);
    let mut chains: Vec<Chain> = chains.into_iter().map(|(_, chain)| chain).collect();

    for path in &settings.alternate_chains {
        chains.push(load_supplied(path, signer)?);
    }
    Ok(chains)
}

fn remove_hint(dir: &Path) -> String {
    format!(
        "remove {} to generate this chain anew (with a new root)",
        dir.display()
    )
}

/// A generated chain stored in `dir`.
fn load_stored(dir: &Path, uppers: &[(Input, Input)], signer: &Signer) -> Result<Chain> {
    let hint = remove_hint(dir);
    let path = |file: &str| -> Result<PathBuf> {
        let path = dir.join(file);
        if !exists(&path)? {
            return Err(setup(format!(
                "{} is incomplete: {} is missing; {hint}",
                dir.display(),
                path.display()
            )));
        }
        Ok(path)
    };
    let sk_input = read_input(&path(INTERMEDIATE_CERT_FILE)?, false)?;
    let root_input = read_input(&path(ROOT_CERT_FILE)?, false)?;
    let root_key_input = read_input(&path(ROOT_KEY_FILE)?, true)?;

    let first = Link {
        cert: load_cert(&sk_input, "intermediate")?,
        label: format!("the intermediate certificate in {}", sk_input.name),
        key_pem: Some(signer.key_pem.clone()),
    };
    check_binding(&first, signer, &hint)?;
    let root = load_cert(&root_input, "root")?;
    let root_key = load_key(&root_key_input, "root")?;
    check_key_matches(&root_key.key, &root_key_input, &root, &root_input.name)?;

    let mut links = vec![first];
    links.extend(load_uppers(uppers)?);
    links.push(Link {
        cert: root,
        label: format!("the root certificate in {}", root_input.name),
        key_pem: Some(root_key.pem),
    });
    check_links(&links, true)?;
    Chain::from_links(links)
}

/// An operator-supplied chain: one PEM file with the certificate for S and
/// K first, then any further intermediates, then the root.
fn load_supplied(path: &Path, signer: &Signer) -> Result<Chain> {
    let input = read_input(path, false)?;
    let certs = load_certs(&input, "alternate chain")?;
    let count = certs.len();
    if count < 2 {
        return Err(setup(format!(
            "{}: an alternate chain needs the certificate for the signing intermediate, then any further intermediates, then the root; found {count} certificate(s)",
            input.name
        )));
    }
    let links: Vec<Link> = certs
        .into_iter()
        .enumerate()
        .map(|(i, cert)| Link {
            label: format!(
                "certificate #{} of {count} in {} ({})",
                i + 1,
                input.name,
                cert.cert.tbs_certificate.subject
            ),
            key_pem: (i == 0).then(|| signer.key_pem.clone()),
            cert,
        })
        .collect();
    check_binding(&links[0], signer, "")?;
    check_links(&links, true)?;
    tracing::info!(file = %input.name, "loaded an alternate chain");
    Chain::from_links(links)
}
