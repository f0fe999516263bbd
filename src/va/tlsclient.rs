//! What the validators that open connections share besides the road to an
//! address (`connect`): a TLS client that accepts any certificate but checks
//! handshake signatures, and readable descriptions of socket errors.

use std::io;
use std::sync::Arc;

use der::{Decode, Encode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{
    CertificateDer, ServerName, SignatureVerificationAlgorithm, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::{DigitallySignedStruct, PeerMisbehaved, SignatureScheme};
use x509_cert::spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;

use crate::error::Error;

/// A person-readable account of a socket error.
pub(crate) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens on that port, or a firewall rejects the connection)"
                .to_owned()
        }
        io::ErrorKind::ConnectionReset => "the server reset the connection".to_owned(),
        io::ErrorKind::ConnectionAborted => "the connection was aborted".to_owned(),
        io::ErrorKind::UnexpectedEof => {
            "the server closed the connection unexpectedly".to_owned()
        }
        io::ErrorKind::TimedOut => "the connection timed out".to_owned(),
        io::ErrorKind::NetworkUnreachable => "the network is unreachable".to_owned(),
        io::ErrorKind::HostUnreachable => "the host is unreachable".to_owned(),
        io::ErrorKind::AddrNotAvailable => {
            "the address cannot be reached from this host (address not available)".to_owned()
        }
        _ => e.to_string(),
    }
}

/// A TLS client for validation: TLS 1.2 and 1.3 with aws-lc-rs, ALPN
/// exactly `alpn`, no session resumption (every validation sees a fresh
/// certificate), and a verifier that skips the chain but checks the
/// handshake signature ([`SkipChainVerifier`]).
pub(crate) fn client_config(alpn: &[u8]) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(SkipChainVerifier {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(Error::internal)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    Ok(Arc::new(config))
}

/// Accepts any certificate chain (a tls-alpn-01 certificate is self-signed
/// by design and is checked after the handshake; an http-01 HTTPS redirect
/// target may present any certificate, RFC 8555 §8.3) but verifies
/// handshake signatures, so the server must hold the certificate's key.
///
/// The signatures are checked against the certificate's public key with
/// the provider's algorithms, as `rustls::crypto::verify_tls1{2,3}_signature`
/// do, but without webpki parsing the whole certificate: webpki refuses a
/// certificate with a critical extension it does not know, and the
/// acmeIdentifier extension is critical by design. TLS 1.3 uses the
/// provider's `verify_tls13_signature_with_raw_key` on the certificate's
/// SubjectPublicKeyInfo; TLS 1.2, which rustls offers no raw-key variant
/// for, repeats what `verify_tls12_signature` does on that key.
#[derive(Debug)]
struct SkipChainVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl SkipChainVerifier {
    /// The algorithms that `scheme` maps to.
    fn candidates(
        &self,
        scheme: SignatureScheme,
    ) -> Result<&'static [&'static dyn SignatureVerificationAlgorithm], rustls::Error> {
        self.algorithms
            .mapping
            .iter()
            .find(|(s, _)| *s == scheme)
            .map(|(_, algs)| *algs)
            .ok_or(rustls::Error::PeerMisbehaved(
                PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))
    }

    /// Verifies a TLS 1.2 signature `dss` over `message` with the public key
    /// of `cert`, trying each algorithm `dss.scheme` maps to that fits the
    /// key's type (TLS 1.2 schemes name no curve), as rustls does.
    fn verify_tls12(
        &self,
        cert: &CertificateDer<'_>,
        message: &[u8],
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki_der = subject_public_key_info(cert)?;
        let bad_encoding =
            || rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding);
        let spki = SubjectPublicKeyInfoRef::from_der(&spki_der).map_err(|_| bad_encoding())?;
        let alg_der = spki.algorithm.to_der().map_err(|_| bad_encoding())?;
        let alg_id = der::asn1::AnyRef::from_der(&alg_der)
            .map_err(|_| bad_encoding())?
            .value();
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(bad_encoding)?;
        let mut fitting = self
            .candidates(dss.scheme)?
            .iter()
            .filter(|alg| alg.public_key_alg_id().as_ref() == alg_id)
            .peekable();
        if fitting.peek().is_none() {
            return Err(rustls::Error::PeerMisbehaved(
                PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        for alg in fitting {
            if alg.verify_signature(key, message, dss.signature()).is_ok() {
                return Ok(HandshakeSignatureValid::assertion());
            }
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadSignature,
        ))
    }
}

/// The DER SubjectPublicKeyInfo of `cert`.
fn subject_public_key_info(cert: &CertificateDer<'_>) -> Result<Vec<u8>, rustls::Error> {
    Certificate::from_der(cert)
        .ok()
        .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().ok())
        .ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))
}

impl ServerCertVerifier for SkipChainVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_tls12(cert, message, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = subject_public_key_info(cert)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki),
            dss,
            &self.algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
