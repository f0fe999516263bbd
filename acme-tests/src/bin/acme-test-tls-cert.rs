//! acme-test-tls-cert: write a throw-away test CA and a server certificate.
//!
//! Writes `ca.pem`, `cert.pem` (server certificate followed by the CA) and
//! `key.pem` (PKCS#8) into `--out DIR`. Used by scripts/bench to run Pebble,
//! whose Debian package does not ship the test certificates its example
//! configuration names. Never use these files outside tests.

use std::path::PathBuf;

use clap::Parser;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Parser, Debug)]
#[command(
    name = "acme-test-tls-cert",
    version,
    about = "Write a test CA and a localhost server certificate"
)]
struct Args {
    /// Directory to write ca.pem, cert.pem and key.pem into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// DNS names of the server certificate.
    #[arg(long = "dns", default_values_t = vec!["localhost".to_string()])]
    dns: Vec<String>,
    /// IP addresses of the server certificate.
    #[arg(long = "ip", default_values_t = vec!["127.0.0.1".to_string(), "::1".to_string()])]
    ip: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;

    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "acme-tests throw-away CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(365);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(args.dns.clone())?;
    for ip in &args.ip {
        params
            .subject_alt_names
            .push(SanType::IpAddress(ip.parse()?));
    }
    params.distinguished_name.push(
        DnType::CommonName,
        args.dns.first().cloned().unwrap_or_default(),
    );
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    let cert = params.signed_by(&key, &issuer)?;

    std::fs::write(args.out.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(
        args.out.join("cert.pem"),
        format!("{}{}", cert.pem(), ca_cert.pem()),
    )?;
    std::fs::write(args.out.join("key.pem"), key.serialize_pem())?;
    Ok(())
}
