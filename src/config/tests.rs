//! The configuration's unit tests, and the annotated example file read back.

use super::*;

/// A profile name holding a newline made validate's error two lines.
/// Seen while writing the pebble_config fuzz target (which also reads
/// its input as TOML), whose one-line check now guards it.
#[test]
fn profile_names_in_errors_stay_on_one_line() {
    let config =
        Config::from_toml("[acme]\ndefault_profile = \"a\\nb\"\n[profiles.\"a\\nb\"]\n").unwrap();
    let e = config.validate().unwrap_err();
    assert!(!e.contains('\n'), "{e:?}");
    assert!(e.contains(r"profiles.a\nb"), "{e:?}");
}

#[test]
fn durations() {
    assert_eq!(
        parse_duration("90d").unwrap(),
        Duration::from_secs(90 * 86400)
    );
    assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
    assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("3 weeks").is_err());
    assert!(parse_duration("d").is_err());
    assert!(parse_duration("99999999999999999999d").is_err());
}

#[test]
fn empty_file_gives_defaults_and_unknown_fields_are_refused() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c.server.listen.port(), 14000);
    assert!(!c.validation.always_valid);
    let e = Config::from_toml("[server]\nlisten_address = \"x\"\n").unwrap_err();
    assert!(e.contains("listen_address"), "{e}");
    let e = Config::from_toml("[nope]\n").unwrap_err();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn parse_errors_are_one_line_with_line_column_and_field() {
    let e =
        Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisten_adress = 1\n").unwrap_err();
    assert!(!e.contains('\n'), "{e}");
    assert!(e.starts_with("line 3, column 1"), "{e}");
    assert!(e.contains("unknown field `listen_adress`"), "{e}");
    assert!(e.contains("`listen`"), "the valid fields are listed: {e}");

    let e = Config::from_toml("[validation]\n\n  concurrency = \"many\"\n").unwrap_err();
    assert!(!e.contains('\n'), "{e}");
    assert!(
        e.starts_with("line 3, column 17, field `concurrency`: "),
        "{e}"
    );

    let e = Config::from_toml("[server\n").unwrap_err();
    assert!(!e.contains('\n') && e.starts_with("line 1, column "), "{e}");
}

#[test]
fn parses_a_full_file() {
    let c = Config::from_toml(
        r#"
        [server]
        listen = "127.0.0.1:8443"
        data_dir = "/var/lib/acme-ca"
        [ca]
        key_algorithm = "rsa-2048"
        leaf_validity = "6d"
        chain_length = 2
        alternate_roots = 1
        alternate_chains = ["/etc/acme-ca/cross.pem"]
        [acme]
        terms_of_service = "https://example.com/tos"
        order_lifetime = 3600
        [validation]
        always_valid = true
        [store]
        durability = "full"
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.ca.key_algorithm, KeyAlgorithm::Rsa2048);
    assert_eq!(c.ca.leaf_validity, Some(Duration::from_secs(6 * 86400)));
    assert_eq!(
        c.effective_profiles()["classic"].validity,
        Duration::from_secs(6 * 86400)
    );
    let ca = crate::ca::CaSettings::from(&c.ca);
    assert_eq!((ca.chain_length, ca.alternate_roots), (2, 1));
    assert_eq!(
        ca.alternate_chains,
        [PathBuf::from("/etc/acme-ca/cross.pem")]
    );
    assert_eq!(c.acme.order_lifetime, Duration::from_secs(3600));
    assert_eq!(c.store.durability, Durability::Full);
    assert_eq!(
        c.store_path(),
        PathBuf::from("/var/lib/acme-ca/acme-ca.sqlite3")
    );
}

#[test]
fn env_overrides() {
    let mut c = Config::default();
    c.apply_env(|k| (k == "PEBBLE_VA_ALWAYS_VALID").then(|| "1".to_string()))
        .unwrap();
    assert!(c.validation.always_valid);
    assert!(c
        .apply_env(|k| (k == "PEBBLE_VA_ALWAYS_VALID").then(|| "maybe".to_string()))
        .is_err());
}

#[test]
fn profile_and_lifecycle_rules() {
    let ok = Config::from_toml(
        r#"
        [acme]
        default_profile = "tls"
        external_account_required = true
        [acme.eab_keys]
        kid-1 = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
        [profiles.tls]
        description = "TLS server"
        validity = "7d"
        extended_key_usages = ["serverAuth"]
        identifier_types = ["dns"]
        ocsp = false
        "#,
    )
    .unwrap();
    ok.validate().unwrap();
    assert_eq!(
        ok.profiles.len(),
        1,
        "a [profiles] table replaces the defaults"
    );
    assert_eq!(ok.profiles["tls"].validity, Duration::from_secs(7 * 86400));
    assert!(ok.profiles["tls"].crl);
    let bad = |toml: &str, want: &str| {
        let e = Config::from_toml(toml)
            .and_then(|c| c.validate())
            .unwrap_err();
        assert!(e.contains(want), "{toml}: {e}");
    };
    bad("[acme]\ndefault_profile = \"x\"\n", "not a defined profile");
    bad(
        "[profiles.a]\nvalidity = \"500d\"\n[acme]\ndefault_profile = \"a\"\n",
        "validity",
    );
    bad(
        "[profiles.classic]\nextended_key_usages = [\"codeSigning\"]\n",
        "codeSigning",
    );
    bad(
        "[profiles.classic]\nidentifier_types = [\"email\"]\n",
        "email",
    );
    bad(
        "[profiles.classic]\nidentifier_types = []\n",
        "identifier_types",
    );
    bad("[profiles.classic]\nbogus = 1\n", "bogus");
    bad(
        "[profiles.\"a b\"]\n[acme]\ndefault_profile = \"a b\"\n",
        "profile name",
    );
    bad("[status]\nenabled = false\n", "status listener");
    bad("[acme]\nexternal_account_required = true\n", "eab_keys");
    bad("[acme]\nauthz_reuse = 101\n", "percentage");
    bad("[acme.eab_keys]\nk = \"short\"\n", "acme.eab_keys.k");
    bad("[status]\ncrl_refresh = \"8d\"\n", "crl_refresh");
    bad("[status]\nbase_url = \"http://x/\"\n", "base_url");
    // Without OCSP and CRL in any profile, the status listener may go.
    let c = Config::from_toml(
        "[status]\nenabled = false\n[profiles.p]\nocsp = false\ncrl = false\n[acme]\ndefault_profile = \"p\"\n",
    )
    .unwrap();
    c.validate().unwrap();
}

#[test]
fn every_pebble_environment_variable_maps_onto_a_field() {
    let env = [
        ("PEBBLE_VA_ALWAYS_VALID", "1"),
        ("PEBBLE_VA_SLEEPTIME", "7"),
        ("PEBBLE_WFE_NONCEREJECT", "15"),
        ("PEBBLE_AUTHZREUSE", "40"),
        ("PEBBLE_WFE_ORDERS_PER_PAGE", "3"),
        ("PEBBLE_CHAIN_LENGTH", "2"),
        ("PEBBLE_ALTERNATE_ROOTS", "3"),
    ];
    let mut c = Config::default();
    c.apply_env(|k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    assert!(c.validation.always_valid);
    assert_eq!(c.validation.random_delay, Duration::from_secs(7));
    assert_eq!(c.acme.bad_nonce_percent, 15);
    assert_eq!(c.acme.authz_reuse, 40);
    assert_eq!(c.acme.orders_per_page, 3);
    assert_eq!((c.ca.chain_length, c.ca.alternate_roots), (2, 3));
    // NOSLEEP wins over SLEEPTIME; empty values are unset.
    c.apply_env(|k| match k {
        "PEBBLE_VA_NOSLEEP" => Some("1".into()),
        "PEBBLE_AUTHZREUSE" => Some("".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.validation.random_delay, Duration::ZERO);
    assert_eq!(c.acme.authz_reuse, 40);
    for (k, v) in [
        ("PEBBLE_WFE_NONCEREJECT", "101"),
        ("PEBBLE_AUTHZREUSE", "-1"),
        ("PEBBLE_CHAIN_LENGTH", "0"),
        ("PEBBLE_CHAIN_LENGTH", "9"),
        ("PEBBLE_ALTERNATE_ROOTS", "x"),
        ("PEBBLE_VA_SLEEPTIME", "0"),
        ("PEBBLE_VA_NOSLEEP", "perhaps"),
    ] {
        let e = Config::default()
            .apply_env(|n| (n == k).then(|| v.to_string()))
            .unwrap_err();
        assert!(e.contains(k), "{k}={v}: {e}");
    }
}

#[test]
fn validation_rules() {
    let mut c = Config::default();
    c.ca.leaf_validity = Some(Duration::from_secs(400 * 86400));
    assert!(c.validate().is_err());
    let mut c = Config::default();
    c.server.external_url = Some("https://x.example/".into());
    assert!(c.validate().is_err());
    for (chain_length, alternate_roots, ok) in
        [(0, 0, false), (5, 0, false), (1, 9, false), (4, 8, true)]
    {
        let mut c = Config::default();
        c.ca.chain_length = chain_length;
        c.ca.alternate_roots = alternate_roots;
        assert_eq!(c.validate().is_ok(), ok, "{chain_length} {alternate_roots}");
    }
}

mod example {
    use super::*;

    /// The annotated example in docs/ is a valid config and says the defaults.
    #[test]
    fn the_documented_example_parses_and_validates() {
        let c = Config::from_toml(include_str!("../../docs/acme-ca.example.toml")).unwrap();
        c.validate().unwrap();
        let d = Config::default();
        assert_eq!(c.server.listen, d.server.listen);
        assert_eq!(c.ca.leaf_validity, d.ca.leaf_validity);
        assert_eq!(
            crate::ca::CaSettings::from(&c.ca),
            crate::ca::CaSettings::from(&d.ca)
        );
        assert_eq!(c.acme.order_lifetime, d.acme.order_lifetime);
        assert_eq!(c.validation.queue_size, d.validation.queue_size);
        assert_eq!(c.profiles, d.profiles);
        assert_eq!(c.status.listen, d.status.listen);
        assert_eq!(c.status.crl_refresh, d.status.crl_refresh);
        assert_eq!(c.acme.authz_reuse, d.acme.authz_reuse);
        assert_eq!(c.rate_limits, d.rate_limits);
    }
}
