//! Assembly tests: listeners' readiness, the data-directory lock, listener certificates.

use super::*;
use crate::ca::Ca;
use crate::protocol::Identifier;

/// Regression: the ACME listener counted as serving only once `run`
/// first polled it, after the other listeners' tasks were spawned, so
/// a `/ready` waiting in the status listener's backlog since the
/// "ready" line could be answered 503 (listener:acme not serving).
/// A listener is up from the `serving` call, before its loop is
/// polled, and down when the loop ends or is dropped.
#[test]
fn a_listener_is_up_from_the_serving_call_until_its_loop_ends() {
    let metrics = Arc::new(Metrics::new());
    metrics.listener_configured(Listener::Acme);
    assert_eq!(metrics.listeners_down(), vec![Listener::Acme]);
    let never = serving(metrics.clone(), Listener::Acme, std::future::pending());
    assert!(
        metrics.listeners_down().is_empty(),
        "up before being polled"
    );
    drop(never);
    assert_eq!(metrics.listeners_down(), vec![Listener::Acme]);
    let done = serving(metrics.clone(), Listener::Acme, async {});
    assert!(metrics.listeners_down().is_empty());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(done);
    assert_eq!(metrics.listeners_down(), vec![Listener::Acme]);
}

/// A configured certificate and key serve the listener instead of a
/// generated one.
#[tokio::test]
async fn configured_listener_certificate_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().join("data");
    config.validation.always_valid = true;
    config.status.listen = "127.0.0.1:0".parse().unwrap();
    // Make a chain with a CA of its own, and hand it over as files.
    let other = Ca::load_or_generate(
        &dir.path().join("other"),
        &crate::ca::CaSettings::from(&config.ca),
    )
    .unwrap();
    let (chain, key) = other
        .tls_server_identity(&[Identifier::dns("acme.test")])
        .unwrap();
    let pem: String = chain
        .iter()
        .map(|c| der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, c).unwrap())
        .collect();
    let key_pem = der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &key).unwrap();
    std::fs::write(dir.path().join("tls.pem"), pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), key_pem).unwrap();
    config.server.tls_cert = Some(dir.path().join("tls.pem"));
    config.server.tls_key = Some(dir.path().join("tls.key"));
    config.validate().unwrap();
    let server = Server::build(&config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    // A TLS client that trusts only the other CA's root, for acme.test.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(other.root_der().to_vec().into()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("acme.test").unwrap();
    connector
        .connect(name, tcp)
        .await
        .expect("handshake with the configured certificate");
    let _ = stop.send(());
    task.await.unwrap();
}
