//! The configuration loaders: Pebble's JSON config as `acme-ca pebble`
//! reads it (`pebble::defaults`, `pebble::apply_json`, then
//! `Config::validate`, as `pebble::load` does without the file system),
//! and the same bytes as acme-ca's own TOML file (`Config::from_toml`,
//! `Config::validate`).
//!
//! Invariants: no panic; a Pebble config that is applied keeps at least
//! one profile and a default profile that exists; every warning and error
//! is one line.
#![no_main]

use acme_ca::config::Config;
use acme_ca::pebble;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut config = pebble::defaults();
    match pebble::apply_json(&mut config, text) {
        Ok(warnings) => {
            assert!(!config.profiles.is_empty());
            assert!(
                config.profiles.contains_key(&config.acme.default_profile),
                "default profile {:?} is not among {:?}",
                config.acme.default_profile,
                config.profiles.keys().collect::<Vec<_>>()
            );
            for w in &warnings {
                assert!(!w.contains('\n'), "{w:?}");
            }
            if let Err(e) = config.validate() {
                assert!(!e.contains('\n'), "{e:?}");
            }
        }
        Err(e) => assert!(!e.contains('\n'), "{e:?}"),
    }

    match Config::from_toml(text) {
        Ok(config) => {
            if let Err(e) = config.validate() {
                assert!(!e.contains('\n'), "{e:?}");
            }
        }
        Err(e) => assert!(!e.contains('\n'), "{e:?}"),
    }
});
