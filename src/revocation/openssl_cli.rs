//! The `openssl` command line for the revocation tests' cross-checks
//! (CRLs and OCSP responses read and verified by a second implementation).

use std::process::Command;

/// Whether the openssl command can be run; when it cannot, the cross-check
/// that asks is skipped, and says so.
pub(crate) fn openssl_available() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        println!("openssl is not installed: skipping this openssl cross-check");
    }
    found
}

/// Runs openssl with `args`; whether it succeeded, and stdout then stderr.
pub(crate) fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
