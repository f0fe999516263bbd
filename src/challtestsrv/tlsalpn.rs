//! The TLS-ALPN-01 server (RFC 8737).
//!
//! Every handshake is recorded in the history under its SNI. A ClientHello
//! offering exactly the `acme-tls/1` protocol, with an SNI that has a key
//! authorization set, gets a self-signed certificate for that name carrying
//! the critical `id-pe-acmeIdentifier` extension (SHA-256 of the key
//! authorization); any other handshake is refused (the connection is
//! closed), as `pebble-challtestsrv` does.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::Acceptor;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::LazyConfigAcceptor;

use super::{accept_loop, tls_provider, ChallTestSrv, TlsAlpnRequestEvent};

/// The ALPN protocol of TLS-ALPN-01.
pub const ACME_TLS_1: &str = "acme-tls/1";

/// OID of the `id-pe-acmeIdentifier` certificate extension.
pub const ID_PE_ACME_IDENTIFIER: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 31];

/// Longest a connection may stay open.
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

/// Issues TLS-ALPN-01 challenge certificates with one P-256 key.
pub struct Responder {
    key: KeyPair,
}

impl Responder {
    /// A responder with a fresh P-256 key.
    pub fn new() -> Result<Self, String> {
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
        Ok(Responder { key })
    }

    /// A self-signed certificate for `host` carrying the critical
    /// acmeIdentifier extension: a DER OCTET STRING holding
    /// SHA-256(`key_authorization`).
    pub fn certificate(
        &self,
        host: &str,
        key_authorization: &str,
    ) -> Result<CertificateDer<'static>, String> {
        let mut params =
            CertificateParams::new(vec![host.to_string()]).map_err(|e| e.to_string())?;
        params.distinguished_name = DistinguishedName::new();
        let hash = digest::digest(&digest::SHA256, key_authorization.as_bytes());
        params.custom_extensions = vec![CustomExtension::new_acme_identifier(hash.as_ref())];
        let cert = params.self_signed(&self.key).map_err(|e| e.to_string())?;
        Ok(cert.der().clone())
    }

    /// A TLS configuration answering `acme-tls/1` with [`Self::certificate`].
    pub fn server_config(
        &self,
        host: &str,
        key_authorization: &str,
    ) -> Result<Arc<ServerConfig>, String> {
        let cert = self.certificate(host, key_authorization)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let provider = tls_provider();
        let signer = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| e.to_string())?;
        // Not `with_single_cert`: it parses the certificate and refuses the
        // critical acmeIdentifier extension it does not know.
        let resolver = SingleCertAndKey::from(CertifiedKey::new(vec![cert], signer));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![ACME_TLS_1.as_bytes().to_vec()];
        Ok(Arc::new(config))
    }
}

/// Serves TLS-ALPN-01 until `stop`.
pub(crate) async fn serve(
    srv: ChallTestSrv,
    responder: Arc<Responder>,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) {
    accept_loop(listener, stop, CONNECTION_LIMIT, move |stream, _| {
        serve_conn(srv.clone(), responder.clone(), stream)
    })
    .await
}

async fn serve_conn(srv: ChallTestSrv, responder: Arc<Responder>, stream: TcpStream) {
    let Ok(start) = LazyConfigAcceptor::new(Acceptor::default(), stream).await else {
        return;
    };
    let hello = start.client_hello();
    let server_name = hello.server_name().unwrap_or("").to_string();
    let protos: Option<Vec<String>> = hello.alpn().map(|it| {
        it.map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    });
    srv.record_tlsalpn(TlsAlpnRequestEvent {
        server_name: server_name.clone(),
        supported_protos: protos.clone(),
    });
    if protos.as_deref() != Some(&[ACME_TLS_1.to_string()][..]) {
        return;
    }
    let Some(key_authorization) = srv.tlsalpn01_response(&server_name) else {
        return;
    };
    let Ok(config) = responder.server_config(&server_name, &key_authorization) else {
        return;
    };
    let Ok(mut tls) = start.into_stream(config).await else {
        return;
    };
    // The validator only looks at the certificate: wait for it to close.
    let mut buf = [0u8; 1024];
    while let Ok(n) = tls.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    let _ = tls.shutdown().await;
}
