//! Tests for alternate chains and the chain length: generation, storage and
//! reloading, the settings' limits, operator-supplied chains, and
//! verification of leaves along every chain by OpenSSL and webpki.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

const LEAF_NAME: &str = "chains.example";

fn chain_settings(alternate_roots: u32, chain_length: u32) -> CaSettings {
    CaSettings {
        alternate_roots,
        chain_length,
        ..CaSettings::default()
    }
}

/// Every file under `dir` (recursively) with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn subject_der(cert_der: &[u8]) -> Vec<u8> {
    Certificate::from_der(cert_der)
        .unwrap()
        .tbs_certificate
        .subject
        .to_der()
        .unwrap()
}

fn public_key_bits(cert_der: &[u8]) -> Vec<u8> {
    Certificate::from_der(cert_der)
        .unwrap()
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec()
}

fn path_len(cert_der: &[u8]) -> Option<u8> {
    let cert = Certificate::from_der(cert_der).unwrap();
    let (_, bc) = ext::<X509BasicConstraints>(&cert).unwrap();
    assert!(bc.ca);
    bc.path_len_constraint
}

fn leaf(ca: &Ca) -> IssuedCert {
    let key = p256();
    issue_from_csr(ca, &csr(&key, &[LEAF_NAME], None), &ids(&[LEAF_NAME]))
}

/// `openssl verify` of `leaf_pem` for a TLS server with the leaf's name:
/// Ok, or what OpenSSL said.
fn openssl_verify_with(
    root_pem: &str,
    intermediates_pem: &str,
    leaf_pem: &str,
) -> std::result::Result<(), String> {
    assert!(openssl_available());
    openssl_verify_leaf(root_pem, intermediates_pem, leaf_pem, Some(LEAF_NAME))
}

fn openssl_verify_chain(chain: &Chain, leaf_pem: &str) -> std::result::Result<(), String> {
    openssl_verify_with(chain.root_pem(), chain.intermediates_pem(), leaf_pem)
}

/// webpki path validation of `leaf_der` with `root_der` as the only trust
/// anchor and `intermediates` as sent by a server.
fn webpki_verify_with(
    root_der: &[u8],
    intermediates: &[Vec<u8>],
    leaf_der: &[u8],
) -> std::result::Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root_der.to_vec())).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .unwrap();
    let intermediates: Vec<CertificateDer<'static>> = intermediates
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf_der.to_vec()),
            &intermediates,
            &ServerName::try_from(LEAF_NAME.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

fn webpki_verify_chain(chain: &Chain, leaf_der: &[u8]) -> std::result::Result<(), rustls::Error> {
    webpki_verify_with(chain.root_der(), chain.intermediates_der(), leaf_der)
}

/// The PEM certificates of a chain directory, signing certificate first.
fn stored_chain_pems(dir: &Path, chain_length: usize) -> Vec<String> {
    let mut pems = vec![read(dir.join("intermediate.pem"))];
    for n in 1..chain_length {
        pems.push(read(dir.join(format!("intermediate-{n}.pem"))));
    }
    pems.push(read(dir.join("root.pem")));
    pems
}

// ---------------------------------------------------------------------------
// Defaults and settings

#[test]
fn default_settings_give_one_chain_like_before() {
    let settings = CaSettings::default();
    assert_eq!(settings.chain_length, 1);
    assert_eq!(settings.alternate_roots, 0);
    assert!(settings.alternate_chains.is_empty());

    let (dir, ca) = new_ca(KeyAlgorithm::EcdsaP256);
    let d = dir.path();
    assert_eq!(ca.chains().len(), 1);
    let chain = &ca.chains()[0];
    assert_eq!(chain.intermediates_der(), [ca.intermediate_der().to_vec()]);
    assert_eq!(chain.intermediates_pem(), ca.chain_pem());
    assert_eq!(chain.intermediates_pem(), read(d.join("intermediate.pem")));
    assert_eq!(chain.root_der(), ca.root_der());
    assert_eq!(chain.root_pem(), ca.root_pem());
    assert_eq!(chain.root_pem(), read(d.join("root.pem")));
    assert_eq!(
        chain.root_key_pem(),
        Some(read(d.join("root.key")).as_str())
    );
    assert_eq!(
        chain.intermediate_keys_pem(),
        [Some(read(d.join("intermediate.key")))]
    );
    assert!(chain.root_common_name().starts_with("acme-ca root "));
    assert!(chain
        .intermediate_common_name(0)
        .unwrap()
        .starts_with("acme-ca intermediate "));
    assert_eq!(
        chain.issuer_common_name(0).unwrap(),
        chain.root_common_name()
    );
    assert_eq!(chain.issuer_common_name(1), None);
    assert_eq!(chain.intermediate_common_name(1), None);
    assert_eq!(
        chain.not_after(),
        Certificate::from_der(ca.intermediate_der())
            .map(|c| {
                OffsetDateTime::from_unix_timestamp(
                    c.tbs_certificate
                        .validity
                        .not_after
                        .to_unix_duration()
                        .as_secs() as i64,
                )
                .unwrap()
            })
            .unwrap()
    );
    // Nothing but the four files of today.
    assert!(!d.join("chains").exists());
    assert_eq!(snapshot(d).len(), 4);
}

#[test]
fn chain_settings_have_limits() {
    for (settings, word) in [
        (chain_settings(0, 0), "chain_length"),
        (chain_settings(0, 5), "chain_length"),
        (chain_settings(9, 1), "alternate_roots"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let err = Ca::load_or_generate(dir.path(), &settings).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ServerInternal);
        assert!(err.detail.contains(word), "{}", err.detail);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
    // The largest values are accepted.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_generate(dir.path(), &chain_settings(8, 4)).unwrap();
    assert_eq!(ca.chains().len(), 9);
    assert!(ca.chains().iter().all(|c| c.intermediates_der().len() == 4));
}

#[test]
fn chain_settings_parse_from_toml() {
    let settings: CaSettings = toml::from_str(
        "chain_length = 3\nalternate_roots = 2\nalternate_chains = [\"/x/cross.pem\"]",
    )
    .unwrap();
    assert_eq!(settings.chain_length, 3);
    assert_eq!(settings.alternate_roots, 2);
    assert_eq!(settings.alternate_chains, [PathBuf::from("/x/cross.pem")]);
    assert!(toml::from_str::<CaSettings>("alternate_root = 1").is_err());
}

// ---------------------------------------------------------------------------
// Generated chains

#[test]
fn alternate_roots_and_chain_length_two_verify_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::load_or_generate(d, &chain_settings(2, 2)).unwrap();
    let chains = ca.chains();
    assert_eq!(chains.len(), 3);

    // Distinct roots, with distinct names.
    let roots: std::collections::HashSet<&[u8]> = chains.iter().map(|c| c.root_der()).collect();
    assert_eq!(roots.len(), 3);
    let root_names: std::collections::HashSet<String> =
        chains.iter().map(|c| c.root_common_name()).collect();
    assert_eq!(root_names.len(), 3);

    // Chain 0 is what the legacy accessors serve; intermediate.pem holds
    // the certificate for the signing key, issued by upper intermediate #1.
    assert_eq!(chains[0].intermediates_der()[0], ca.intermediate_der());
    assert_eq!(chains[0].intermediates_pem(), ca.chain_pem());
    assert_eq!(chains[0].root_der(), ca.root_der());
    assert_eq!(
        read(d.join("intermediate.pem")) + &read(d.join("chains/0/intermediate-1.pem")),
        ca.chain_pem()
    );
    assert_eq!(read(d.join("root.pem")), ca.root_pem());

    let signer_subject = subject_der(ca.intermediate_der());
    let signer_key = KeyPair::from_pem(&read(d.join("intermediate.key"))).unwrap();
    let signer_key_pem = read(d.join("intermediate.key"));
    for (k, chain) in chains.iter().enumerate() {
        let ints = chain.intermediates_der();
        assert_eq!(ints.len(), 2, "chain {k}");
        // The first intermediate is for S and K.
        assert_eq!(subject_der(&ints[0]), signer_subject, "chain {k}");
        assert_eq!(
            public_key_bits(&ints[0]),
            signer_key.der_bytes(),
            "chain {k}"
        );
        assert_eq!(path_len(&ints[0]), Some(0));
        assert_eq!(path_len(&ints[1]), Some(1));
        // Names: "#1" above the signing certificate, then the root.
        let upper_name = chain.intermediate_common_name(1).unwrap();
        assert!(upper_name.ends_with(" #1"), "{upper_name}");
        assert_eq!(chain.issuer_common_name(0).unwrap(), upper_name);
        assert_eq!(
            chain.issuer_common_name(1).unwrap(),
            chain.root_common_name()
        );
        assert_eq!(chain.issuer_common_name(2), None);
        // Keys: all held for generated chains.
        let keys = chain.intermediate_keys_pem();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].as_deref(), Some(signer_key_pem.as_str()));
        let upper_key = KeyPair::from_pem(keys[1].as_deref().unwrap()).unwrap();
        assert_eq!(public_key_bits(&ints[1]), upper_key.der_bytes());
        let root_key = KeyPair::from_pem(chain.root_key_pem().unwrap()).unwrap();
        assert_eq!(public_key_bits(chain.root_der()), root_key.der_bytes());
    }
    // Alternate chains are stored in full; keys are private.
    for (k, chain) in chains.iter().enumerate().skip(1) {
        let cd = d.join(format!("chains/{k}"));
        let pems = stored_chain_pems(&cd, 2);
        assert_eq!(pems[0].clone() + &pems[1], chain.intermediates_pem());
        assert_eq!(pems[2], chain.root_pem());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in ["root.key", "intermediate-1.key"] {
                let mode = std::fs::metadata(cd.join(key))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{key}");
            }
        }
    }

    // One leaf verifies along every chain, with OpenSSL and webpki.
    let issued = leaf(&ca);
    for (k, chain) in chains.iter().enumerate() {
        openssl_verify_chain(chain, &issued.pem).unwrap_or_else(|e| panic!("chain {k}: {e}"));
        webpki_verify_chain(chain, &issued.der).unwrap_or_else(|e| panic!("chain {k}: {e}"));
    }
    // Controls: a root with another chain's intermediates, or without the
    // upper intermediate, does not verify.
    assert!(openssl_verify_with(
        chains[1].root_pem(),
        chains[0].intermediates_pem(),
        &issued.pem
    )
    .is_err());
    assert!(webpki_verify_with(
        chains[1].root_der(),
        chains[0].intermediates_der(),
        &issued.der
    )
    .is_err());
    let first_only = &chains[2].intermediates_der()[..1];
    assert!(webpki_verify_with(chains[2].root_der(), first_only, &issued.der).is_err());
    assert!(openssl_verify_with(
        chains[2].root_pem(),
        &chains[2].intermediates_pem()
            [..chains[2].intermediates_pem().find("-----END").unwrap() + 26],
        &issued.pem
    )
    .is_err());
}

#[test]
fn chain_length_three_on_a_fresh_data_dir_serves_the_full_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_generate(dir.path(), &chain_settings(0, 3)).unwrap();
    let chain = &ca.chains()[0];
    assert_eq!(chain.intermediates_der().len(), 3);
    assert_eq!(path_len(&chain.intermediates_der()[2]), Some(2));
    assert!(chain.intermediate_common_name(2).unwrap().ends_with(" #2"));
    assert_eq!(ca.chain_pem().matches("BEGIN CERTIFICATE").count(), 3);
    let issued = leaf(&ca);
    openssl_verify(&ca, &issued.pem, Some(LEAF_NAME));
    webpki_verify_chain(chain, &issued.der).unwrap();
    // The listener identity needs the upper intermediates after its chain.
    let (mut tls_chain, _) = ca.tls_server_identity(&ids(&[LEAF_NAME])).unwrap();
    tls_chain.extend(chain.intermediates_der().iter().skip(1).cloned());
    webpki_verify_with(ca.root_der(), &tls_chain[1..], &tls_chain[0]).unwrap();
}

#[test]
fn reload_gives_byte_identical_chains() {
    let dir = tempfile::tempdir().unwrap();
    let settings = chain_settings(2, 2);
    let ca = Ca::load_or_generate(dir.path(), &settings).unwrap();
    let files = snapshot(dir.path());
    let again = Ca::load_or_generate(dir.path(), &settings).unwrap();
    assert_eq!(ca.chains(), again.chains());
    assert_eq!(ca.intermediate_der(), again.intermediate_der());
    assert_eq!(ca.chain_pem(), again.chain_pem());
    assert_eq!(snapshot(dir.path()), files);
    // A leaf from the reloaded CA chains to the first instance's roots.
    let issued = leaf(&again);
    for chain in ca.chains() {
        webpki_verify_chain(chain, &issued.der).unwrap();
    }
}

#[test]
fn raising_alternate_roots_keeps_existing_chains() {
    let dir = tempfile::tempdir().unwrap();
    let one = Ca::load_or_generate(dir.path(), &chain_settings(1, 1)).unwrap();
    assert_eq!(one.chains().len(), 2);
    let before = snapshot(dir.path());

    let two = Ca::load_or_generate(dir.path(), &chain_settings(2, 1)).unwrap();
    assert_eq!(two.chains().len(), 3);
    assert_eq!(two.chains()[..2], one.chains()[..]);
    assert_ne!(two.chains()[2].root_der(), one.chains()[1].root_der());
    assert_ne!(two.chains()[2].root_der(), one.chains()[0].root_der());
    // Files already there are unchanged; chains/2 was added.
    let after = snapshot(dir.path());
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{}", path.display());
    }
    assert!(after.keys().any(|p| p.starts_with("chains/2")));

    // Fewer: the first ones only; nothing is removed.
    let back = Ca::load_or_generate(dir.path(), &chain_settings(1, 1)).unwrap();
    assert_eq!(back.chains(), one.chains());
    let none = Ca::load_or_generate(dir.path(), &chain_settings(0, 1)).unwrap();
    assert_eq!(none.chains(), &one.chains()[..1]);
    assert_eq!(snapshot(dir.path()), after);
    // And up again: chain 2 is the stored one.
    let again = Ca::load_or_generate(dir.path(), &chain_settings(2, 1)).unwrap();
    assert_eq!(again.chains(), two.chains());
}

#[test]
fn chain_length_mismatch_is_an_error_and_nothing_is_overwritten() {
    // Chain 0 in the data directory.
    let dir = tempfile::tempdir().unwrap();
    Ca::load_or_generate(dir.path(), &chain_settings(1, 2)).unwrap();
    let files = snapshot(dir.path());
    for (alternates, length) in [(1, 1), (1, 3), (2, 3), (0, 1)] {
        let err =
            Ca::load_or_generate(dir.path(), &chain_settings(alternates, length)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ServerInternal);
        assert!(
            err.detail
                .contains(&format!("chain_length is {length}, but the CA in")),
            "{}",
            err.detail
        );
        assert!(
            err.detail.contains("set chain_length = 2"),
            "{}",
            err.detail
        );
        assert!(err.detail.contains("intermediate.key"), "{}", err.detail);
        assert_eq!(snapshot(dir.path()), files);
    }

    // A legacy data directory (chain_length 1) with chain_length 2.
    let (legacy, _) = new_ca(KeyAlgorithm::EcdsaP256);
    let files = snapshot(legacy.path());
    let err = Ca::load_or_generate(legacy.path(), &chain_settings(1, 2)).unwrap_err();
    assert!(
        err.detail.contains("set chain_length = 1"),
        "{}",
        err.detail
    );
    assert_eq!(snapshot(legacy.path()), files);

    // Alternate chains of a configured CA (chain 0 is served as configured).
    let (ca_dir, _) = new_ca(KeyAlgorithm::EcdsaP256);
    let data = tempfile::tempdir().unwrap();
    let configured_with = |alternate_roots, chain_length| CaSettings {
        alternate_roots,
        chain_length,
        ..configured(ca_dir.path(), true)
    };
    let ca = Ca::load_or_generate(data.path(), &configured_with(2, 2)).unwrap();
    assert_eq!(ca.chains().len(), 3);
    let files = snapshot(data.path());
    for (alternates, length) in [(2, 1), (1, 3)] {
        let err =
            Ca::load_or_generate(data.path(), &configured_with(alternates, length)).unwrap_err();
        let chain1 = data.path().join("chains/1").display().to_string();
        assert!(err.detail.contains(&chain1), "{}", err.detail);
        assert!(
            err.detail.contains("remove those directories"),
            "{}",
            err.detail
        );
        if alternates == 2 {
            let chain2 = data.path().join("chains/2").display().to_string();
            assert!(err.detail.contains(&chain2), "{}", err.detail);
        }
        assert_eq!(snapshot(data.path()), files);
    }
}

#[test]
fn configured_ca_gets_alternates_bound_to_its_key() {
    let (ca_dir, original) = new_ca(KeyAlgorithm::EcdsaP384);
    let data = tempfile::tempdir().unwrap();
    let settings = CaSettings {
        alternate_roots: 1,
        chain_length: 2,
        ..configured(ca_dir.path(), false)
    };
    let ca = Ca::load_or_generate(data.path(), &settings).unwrap();
    let chains = ca.chains();
    assert_eq!(chains.len(), 2);
    // Chain 0 as configured; no root key without root_key.
    assert_eq!(
        chains[0].intermediates_der(),
        [original.intermediate_der().to_vec()]
    );
    assert_eq!(chains[0].root_der(), original.root_der());
    assert_eq!(chains[0].root_key_pem(), None);
    // Chain 1 generated into the data directory, and nothing else there.
    assert_eq!(chains[1].intermediates_der().len(), 2);
    assert!(snapshot(data.path())
        .keys()
        .all(|p| p.starts_with("chains/1")));
    let issued = leaf(&ca);
    for chain in chains {
        openssl_verify_chain(chain, &issued.pem).unwrap();
        webpki_verify_chain(chain, &issued.der).unwrap();
    }
    let again = Ca::load_or_generate(data.path(), &settings).unwrap();
    assert_eq!(again.chains(), chains);

    // Another signing key: the stored chain is refused, not replaced.
    let files = snapshot(data.path());
    let (other_dir, _) = new_ca(KeyAlgorithm::EcdsaP384);
    let other = CaSettings {
        alternate_roots: 1,
        chain_length: 2,
        ..configured(other_dir.path(), false)
    };
    let err = Ca::load_or_generate(data.path(), &other).unwrap_err();
    assert!(
        err.detail
            .contains("is not a certificate for the signing intermediate"),
        "{}",
        err.detail
    );
    let chain1 = data.path().join("chains/1").display().to_string();
    assert!(
        err.detail.contains(&format!("remove {chain1}")),
        "{}",
        err.detail
    );
    assert_eq!(snapshot(data.path()), files);

    // Same name, another key: the key check catches it.
    let same_name = tempfile::tempdir().unwrap();
    let new_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let root_key = KeyPair::from_pem(&read(ca_dir.path().join("root.key"))).unwrap();
    let root_cert = Certificate::from_der(original.root_der()).unwrap();
    let mut root_params = CertificateParams::default();
    root_params.distinguished_name = cn_name(&root_cert);
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let int_cert = Certificate::from_der(original.intermediate_der()).unwrap();
    let mut int_params = CertificateParams::default();
    int_params.distinguished_name = cn_name(&int_cert);
    int_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let reissued = int_params
        .signed_by(
            &new_key,
            &rcgen::Issuer::from_params(&root_params, &root_key),
        )
        .unwrap();
    assert_eq!(
        subject_der(reissued.der()),
        subject_der(original.intermediate_der())
    );
    std::fs::write(same_name.path().join("int.pem"), reissued.pem()).unwrap();
    std::fs::write(same_name.path().join("int.key"), new_key.serialize_pem()).unwrap();
    let rekeyed = CaSettings {
        intermediate_cert: Some(same_name.path().join("int.pem")),
        intermediate_key: Some(same_name.path().join("int.key")),
        ..settings.clone()
    };
    let err = Ca::load_or_generate(data.path(), &rekeyed).unwrap_err();
    assert!(
        err.detail.contains("its public key is not the one in"),
        "{}",
        err.detail
    );
    assert!(
        err.detail.contains(&format!("remove {chain1}")),
        "{}",
        err.detail
    );
    assert_eq!(snapshot(data.path()), files);
}

/// The certificate's subject as an rcgen name of one UTF8String CN (what
/// this CA generates), checked to encode identically.
fn cn_name(cert: &Certificate) -> DistinguishedName {
    let subject = cert.tbs_certificate.subject.to_string();
    let cn = subject.strip_prefix("CN=").unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

#[test]
fn new_ca_refuses_chains_left_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    Ca::load_or_generate(dir.path(), &chain_settings(1, 1)).unwrap();
    for file in [
        "root.pem",
        "root.key",
        "intermediate.pem",
        "intermediate.key",
    ] {
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    let files = snapshot(dir.path());
    let err = Ca::load_or_generate(dir.path(), &chain_settings(1, 1)).unwrap_err();
    assert!(err.detail.contains("holds chains (1)"), "{}", err.detail);
    assert_eq!(snapshot(dir.path()), files);

    // A half-removed CA mentions chains/ in its advice.
    let dir = tempfile::tempdir().unwrap();
    Ca::load_or_generate(dir.path(), &chain_settings(0, 2)).unwrap();
    std::fs::remove_file(dir.path().join("root.key")).unwrap();
    let err = Ca::load_or_generate(dir.path(), &chain_settings(0, 2)).unwrap_err();
    assert!(err.detail.contains("incomplete CA"), "{}", err.detail);
    assert!(err.detail.contains("chains/"), "{}", err.detail);
}

#[test]
fn incomplete_or_leftover_chain_directories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::load_or_generate(d, &chain_settings(1, 2)).unwrap();
    // A temporary directory left by an interrupted generation is ignored.
    std::fs::create_dir(d.join("chains/.2.abcdef.tmp")).unwrap();
    std::fs::write(d.join("chains/.2.abcdef.tmp/root.pem"), "junk").unwrap();
    let two = Ca::load_or_generate(d, &chain_settings(2, 2)).unwrap();
    assert_eq!(two.chains()[..2], ca.chains()[..]);
    assert_eq!(two.chains().len(), 3);

    // An upper intermediate without its key.
    std::fs::remove_file(d.join("chains/1/intermediate-1.key")).unwrap();
    let err = Ca::load_or_generate(d, &chain_settings(2, 2)).unwrap_err();
    assert!(err.detail.contains("is incomplete"), "{}", err.detail);
    assert!(err.detail.contains("intermediate-1.key"), "{}", err.detail);
    // An upper intermediate replaced by another chain's: a broken link.
    std::fs::copy(
        d.join("chains/2/intermediate-1.key"),
        d.join("chains/1/intermediate-1.key"),
    )
    .unwrap();
    std::fs::copy(
        d.join("chains/2/intermediate-1.pem"),
        d.join("chains/1/intermediate-1.pem"),
    )
    .unwrap();
    let err = Ca::load_or_generate(d, &chain_settings(2, 2)).unwrap_err();
    assert!(err.detail.contains("was not issued by"), "{}", err.detail);
}

// ---------------------------------------------------------------------------
// Operator-supplied chains

/// A data directory with two generated alternate chains of length 2, whose
/// files serve as material for operator-supplied chains.
fn ca_with_material() -> (tempfile::TempDir, Ca) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_generate(dir.path(), &chain_settings(2, 2)).unwrap();
    (dir, ca)
}

fn supplied(file: &Path) -> CaSettings {
    CaSettings {
        chain_length: 2,
        alternate_chains: vec![file.to_path_buf()],
        ..CaSettings::default()
    }
}

#[test]
fn operator_supplied_chain_loads_and_verifies() {
    let (dir, ca) = ca_with_material();
    let d = dir.path();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("cross.pem");
    // With text around the blocks, as `openssl x509 -text` writes.
    let text: String = stored_chain_pems(&d.join("chains/1"), 2)
        .iter()
        .map(|p| format!("subject=whatever\n{p}\n"))
        .collect();
    std::fs::write(&file, text).unwrap();

    let loaded = Ca::load_or_generate(d, &supplied(&file)).unwrap();
    let chains = loaded.chains();
    assert_eq!(chains.len(), 2);
    assert_eq!(chains[0], ca.chains()[0]);
    let chain = &chains[1];
    assert_eq!(
        chain.intermediates_der(),
        ca.chains()[1].intermediates_der()
    );
    assert_eq!(
        chain.intermediates_pem(),
        ca.chains()[1].intermediates_pem()
    );
    assert_eq!(chain.root_der(), ca.chains()[1].root_der());
    assert_eq!(chain.root_key_pem(), None);
    assert_eq!(
        chain.intermediate_keys_pem(),
        [Some(read(d.join("intermediate.key"))), None]
    );
    // Served after the generated ones.
    let both = Ca::load_or_generate(
        d,
        &CaSettings {
            alternate_roots: 2,
            ..supplied(&file)
        },
    )
    .unwrap();
    assert_eq!(both.chains().len(), 4);
    assert_eq!(both.chains()[3], *chain);

    let issued = leaf(&loaded);
    openssl_verify_chain(chain, &issued.pem).unwrap();
    webpki_verify_chain(chain, &issued.der).unwrap();
}

#[test]
fn operator_supplied_chains_with_problems_are_refused() {
    let (dir, ca) = ca_with_material();
    let d = dir.path();
    let work = tempfile::tempdir().unwrap();
    let c1 = stored_chain_pems(&d.join("chains/1"), 2);
    let c2 = stored_chain_pems(&d.join("chains/2"), 2);
    let files = snapshot(d);

    let refuse = |name: &str, text: String, wants: &[&str]| {
        let file = work.path().join(name);
        std::fs::write(&file, text).unwrap();
        let err = Ca::load_or_generate(d, &supplied(&file)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ServerInternal);
        assert!(
            err.detail.contains(&file.display().to_string()),
            "{name}: {}",
            err.detail
        );
        for want in wants {
            assert!(err.detail.contains(want), "{name}: {}", err.detail);
        }
    };

    // A broken link: chain 1's signing certificate under chain 2's upper
    // intermediate.
    refuse(
        "broken.pem",
        format!("{}{}{}", c1[0], c2[1], c2[2]),
        &[
            "certificate #1 of 3",
            "was not issued by certificate #2 of 3",
        ],
    );
    // Same names, wrong signature: chain 1's upper intermediate re-signed
    // by another key under the right name would be caught the same way;
    // here the root of another chain under chain 1's upper intermediate.
    refuse(
        "wrong-root.pem",
        format!("{}{}{}", c1[0], c1[1], c2[2]),
        &[
            "certificate #2 of 3",
            "was not issued by certificate #3 of 3",
        ],
    );
    // The root left out: the last certificate is not self-signed.
    refuse(
        "no-root.pem",
        format!("{}{}", c1[0], c1[1]),
        &["certificate #2 of 2", "is not self-signed"],
    );
    // Only one certificate.
    refuse("one.pem", c1[2].clone(), &["found 1 certificate"]);
    // Not PEM certificates at all.
    refuse(
        "empty.pem",
        "nothing here\n".into(),
        &["found 0 certificate"],
    );

    // A certificate with the signing intermediate's name but another key,
    // issued by another root.
    let other_root_key = p256();
    let mut root_params = CertificateParams::default();
    root_params.distinguished_name = DistinguishedName::new();
    root_params
        .distinguished_name
        .push(DnType::CommonName, "Other Root");
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let other_root = root_params.self_signed(&other_root_key).unwrap();
    let other_issuer = rcgen::Issuer::from_params(&root_params, &other_root_key);
    let signer_cert = Certificate::from_der(ca.intermediate_der()).unwrap();
    let mut int_params = CertificateParams::default();
    int_params.distinguished_name = cn_name(&signer_cert);
    int_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    int_params.use_authority_key_identifier_extension = true;
    let wrong_key = int_params.signed_by(&p256(), &other_issuer).unwrap();
    assert_eq!(
        subject_der(wrong_key.der()),
        subject_der(ca.intermediate_der())
    );
    refuse(
        "other-key.pem",
        format!("{}{}", wrong_key.pem(), other_root.pem()),
        &[
            "certificate #1 of 2",
            "is not a certificate for the signing intermediate",
            "its public key is not the one in",
        ],
    );

    // The right key under another name.
    let signer_key = KeyPair::from_pem(&read(d.join("intermediate.key"))).unwrap();
    let mut renamed = CertificateParams::default();
    renamed.distinguished_name = DistinguishedName::new();
    renamed
        .distinguished_name
        .push(DnType::CommonName, "Someone Else");
    renamed.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let renamed = renamed.signed_by(&signer_key, &other_issuer).unwrap();
    refuse(
        "other-name.pem",
        format!("{}{}", renamed.pem(), other_root.pem()),
        &["its subject name is not exactly the one in"],
    );

    // The right name and key, but another key identifier than the one
    // leaves carry as their authorityKeyIdentifier.
    let mut other_ski = CertificateParams::default();
    other_ski.distinguished_name = cn_name(&signer_cert);
    other_ski.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    other_ski.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![7; 20]);
    let other_ski = other_ski.signed_by(&signer_key, &other_issuer).unwrap();
    refuse(
        "other-ski.pem",
        format!("{}{}", other_ski.pem(), other_root.pem()),
        &["subjectKeyIdentifier", "would not chain"],
    );
    // The same certificate without the odd key identifier is accepted,
    // and leaves verify through the other root.
    let mut good = CertificateParams::default();
    good.distinguished_name = cn_name(&signer_cert);
    good.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    good.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    good.use_authority_key_identifier_extension = true;
    let (_, signer_ski) = ext::<SubjectKeyIdentifier>(&signer_cert).unwrap();
    good.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(signer_ski.0.as_bytes().to_vec());
    let good = good.signed_by(&signer_key, &other_issuer).unwrap();
    let file = work.path().join("good.pem");
    std::fs::write(&file, format!("{}{}", good.pem(), other_root.pem())).unwrap();
    let loaded = Ca::load_or_generate(d, &supplied(&file)).unwrap();
    assert_eq!(loaded.chains()[1].root_common_name(), "Other Root");
    let issued = leaf(&loaded);
    openssl_verify_chain(&loaded.chains()[1], &issued.pem).unwrap();
    webpki_verify_chain(&loaded.chains()[1], &issued.der).unwrap();

    // A missing file.
    let err = Ca::load_or_generate(d, &supplied(&work.path().join("absent.pem"))).unwrap_err();
    assert!(err.detail.contains("absent.pem"), "{}", err.detail);

    // Nothing in the data directory changed along the way.
    assert_eq!(snapshot(d), files);
}

// ---------------------------------------------------------------------------
// Legacy data directories

/// Write a data directory the way the code before chains did: a root and
/// an intermediate it signed, four files, no chains/.
fn legacy_data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let root_key = p256();
    let mut root = CertificateParams::default();
    root.distinguished_name = DistinguishedName::new();
    root.distinguished_name
        .push(DnType::CommonName, "acme-ca root 0a1b2c");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.not_before = now - Duration::hours(1);
    root.not_after = now + Duration::days(3653);
    let root_ski = root.key_identifier(&root_key);
    root.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(root_ski);
    let root_cert = root.self_signed(&root_key).unwrap();

    let int_key = p256();
    let mut int = CertificateParams::default();
    int.distinguished_name = DistinguishedName::new();
    int.distinguished_name
        .push(DnType::CommonName, "acme-ca intermediate 0a1b2c");
    int.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    int.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    int.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    int.use_authority_key_identifier_extension = true;
    int.not_before = now - Duration::hours(1);
    int.not_after = now + Duration::days(1827);
    let int_ski = int.key_identifier(&int_key);
    int.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(int_ski);
    let int_cert = int
        .signed_by(&int_key, &rcgen::Issuer::from_params(&root, &root_key))
        .unwrap();

    let d = dir.path();
    std::fs::write(d.join("root.pem"), root_cert.pem()).unwrap();
    std::fs::write(d.join("root.key"), root_key.serialize_pem()).unwrap();
    std::fs::write(d.join("intermediate.pem"), int_cert.pem()).unwrap();
    std::fs::write(d.join("intermediate.key"), int_key.serialize_pem()).unwrap();
    dir
}

#[test]
fn legacy_data_dir_loads_unchanged() {
    let dir = legacy_data_dir();
    let d = dir.path();
    let files = snapshot(d);
    let ca = Ca::load_or_generate(d, &CaSettings::default()).unwrap();
    assert_eq!(snapshot(d), files);
    assert_eq!(ca.root_pem(), read(d.join("root.pem")));
    assert_eq!(ca.chain_pem(), read(d.join("intermediate.pem")));
    assert_eq!(ca.chains().len(), 1);
    assert_eq!(ca.chains()[0].root_common_name(), "acme-ca root 0a1b2c");
    let again = Ca::load_or_generate(d, &CaSettings::default()).unwrap();
    assert_eq!(again.chains(), ca.chains());
    let issued = leaf(&ca);
    openssl_verify(&ca, &issued.pem, Some(LEAF_NAME));

    // Alternate roots added to a legacy CA: chain 0 and its files stay.
    let more = Ca::load_or_generate(d, &chain_settings(1, 1)).unwrap();
    assert_eq!(more.chains()[0], ca.chains()[0]);
    let after = snapshot(d);
    for (path, bytes) in &files {
        assert_eq!(after.get(path), Some(bytes), "{}", path.display());
    }
    let issued = leaf(&more);
    openssl_verify_chain(&more.chains()[1], &issued.pem).unwrap();
    webpki_verify_chain(&more.chains()[1], &issued.der).unwrap();
    // And back to the defaults: exactly the legacy chain again.
    let back = Ca::load_or_generate(d, &CaSettings::default()).unwrap();
    assert_eq!(back.chains(), ca.chains());
}
