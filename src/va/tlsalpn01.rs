//! The tls-alpn-01 validator (RFC 8737, with RFC 8738 §6 for IP identifiers).
//!
//! The VA connects to the identifier's address on the TLS port, offers only
//! the `acme-tls/1` ALPN protocol with the identifier as SNI (for an IP
//! address, its reverse-DNS name), and checks the self-signed certificate the
//! server presents: a subjectAltName holding exactly the identifier, and a
//! critical id-pe-acmeIdentifier extension holding the SHA-256 digest of the
//! key authorization.
//!
//! As in Let's Encrypt's Boulder: DNS names are resolved through the VA's
//! [`Resolver`] (never the system resolver); the first IPv6 address is tried
//! first and, if connecting or the handshake fails, the first IPv4 address;
//! addresses the [`AddressPolicy`] refuses are never contacted. The
//! certificate chain is deliberately not verified (the certificate is
//! self-signed by design), but the handshake signature is, so the server must
//! hold the certificate's private key.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use der::asn1::{ObjectIdentifier, OctetString};
use der::Decode;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::AlertDescription;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::Certificate;

use super::addr::AddressPolicy;
use super::connect::{self, Dialer, Host, Record};
use super::dns::Resolver;
use super::{Outcome, ValidationFuture, ValidationRequest, Validator};
use crate::error::{Error, ErrorKind};

/// The ALPN protocol name of tls-alpn-01 (RFC 8737 §6.2).
pub(crate) const ACME_TLS_1: &[u8] = b"acme-tls/1";

/// id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31 (RFC 8737 §6.1): the certificate
/// extension that carries the SHA-256 digest of the key authorization.
pub(crate) const ID_PE_ACME_IDENTIFIER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.31");

/// The port tls-alpn-01 validations connect to unless configured otherwise
/// (RFC 8737 §3). Pebble's test configuration uses 5001.
pub(crate) const DEFAULT_PORT: u16 = 443;

/// The subjectAltName extension, 2.5.29.17 (RFC 5280 §4.2.1.6).
const ID_CE_SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// The challenge name, as it appears in error details.
const CHALLENGE: &str = "tls-alpn-01";

/// Validates tls-alpn-01 challenges (RFC 8737) for DNS and IP identifiers.
pub(crate) struct TlsAlpn01 {
    resolver: Arc<dyn Resolver>,
    port: u16,
    policy: AddressPolicy,
    timeout: Duration,
}

impl fmt::Debug for TlsAlpn01 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAlpn01")
            .field("resolver", &self.resolver.describe())
            .field("port", &self.port)
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TlsAlpn01 {
    /// A validator that resolves names with `resolver`, refuses the
    /// addresses `policy` refuses, connects to port [`DEFAULT_PORT`] (443;
    /// see [`TlsAlpn01::with_port`]) and gives each validation at most
    /// `timeout` overall (DNS, connect and handshake together).
    pub(crate) fn new(
        resolver: Arc<dyn Resolver>,
        policy: AddressPolicy,
        timeout: Duration,
    ) -> Self {
        TlsAlpn01 {
            resolver,
            port: DEFAULT_PORT,
            policy,
            timeout,
        }
    }

    /// The same validator connecting to `port` instead (Pebble's test setup
    /// uses 5001).
    pub(crate) fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Checks the tls-alpn-01 challenge of `req`: valid if the server at the
    /// identifier's address negotiates `acme-tls/1` and presents a
    /// certificate whose only subjectAltName entry is the identifier and
    /// whose critical acmeIdentifier extension holds the SHA-256 digest of
    /// `req.key_authorization`. The records are one Boulder-style validation
    /// record (`hostname`, `port` as a string, `addressesResolved`,
    /// `addressUsed`, and `addressesTried` after an IPv6 failure).
    pub(crate) async fn validate(&self, req: &ValidationRequest) -> Outcome {
        let mut record = Record::new(None, req.authz.identifier.value.clone(), self.port);
        let result = self.run(req, &mut record).await;
        let records = serde_json::Value::Array(vec![record.to_json()]);
        match result {
            Ok(()) => Outcome::Valid { records },
            Err(error) => Outcome::Invalid { error, records },
        }
    }

    async fn run(&self, req: &ValidationRequest, record: &mut Record) -> Result<(), Error> {
        let deadline = Instant::now() + self.timeout;
        let ident = &req.authz.identifier;
        let value = ident.value.as_str();
        let host = connect::identifier_host(ident, self.policy, CHALLENGE)?;
        let (server_name, expected) = sni_and_expected(&host, value)?;
        let dialer = Dialer {
            resolver: &*self.resolver,
            policy: self.policy,
            timeout: self.timeout,
        };
        let allowed = dialer.addresses(&host, deadline, record).await?;
        let config = super::tlsclient::client_config(ACME_TLS_1)?;
        let attempt = Attempt {
            config: &config,
            server_name: &server_name,
            port: self.port,
            timeout: self.timeout,
            ident: value,
        };
        let (handshake, ip) = dialer
            .first_answer(&allowed, deadline, record, "", |ip, until| {
                attempt.fetch(ip, until)
            })
            .await?;
        let used = SocketAddr::new(ip, self.port);
        check_alpn(&handshake, used)?;
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, req.key_authorization.as_bytes());
        check_certificate(&handshake.cert, &expected, digest.as_ref()).map_err(|msg| {
            Error::unauthorized(format!(
                "Incorrect validation certificate for {CHALLENGE} challenge. Requested {value} from {used}. {msg}"
            ))
        })
    }
}

/// The SNI to send for `host` (the identifier `value` itself for a name,
/// the reverse-DNS name for an IP address, RFC 8738 §6) and what the
/// certificate must name.
fn sni_and_expected<'a>(
    host: &Host,
    value: &'a str,
) -> Result<(ServerName<'static>, Expected<'a>), Error> {
    let (sni, expected) = match host {
        Host::Name(_) => (value.to_owned(), Expected::Dns(value)),
        Host::Ip(ip) => (reverse_dns_name(*ip), Expected::Ip(*ip)),
    };
    let server_name = ServerName::try_from(sni.clone())
        .map_err(|_| Error::internal(format!("{sni} is not a valid SNI name")))?;
    Ok((server_name, expected))
}

/// Checks that the server at `used` negotiated `acme-tls/1` (RFC 8737 §3).
fn check_alpn(handshake: &Handshake, used: SocketAddr) -> Result<(), Error> {
    if handshake.alpn.as_deref() == Some(ACME_TLS_1) {
        return Ok(());
    }
    let got = match &handshake.alpn {
        None => "selected no ALPN protocol".to_owned(),
        Some(p) => format!("selected {:?}", String::from_utf8_lossy(p)),
    };
    Err(Error::unauthorized(format!(
        "Cannot negotiate ALPN protocol \"acme-tls/1\" for {CHALLENGE} challenge: the server at {used} {got}"
    )))
}

impl Validator for TlsAlpn01 {
    fn validate<'a>(&'a self, req: &'a ValidationRequest) -> ValidationFuture<'a> {
        Box::pin(TlsAlpn01::validate(self, req))
    }
}

/// The reverse-DNS name of `ip`, used as SNI for IP identifiers (RFC 8738
/// §6): "4.3.2.1.in-addr.arpa" for 1.2.3.4, the nibble format ending in
/// "ip6.arpa" for IPv6.
pub(crate) fn reverse_dns_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// What the certificate must name.
#[derive(Clone, Copy)]
enum Expected<'a> {
    Dns(&'a str),
    Ip(IpAddr),
}

/// What a completed handshake yielded.
struct Handshake {
    cert: CertificateDer<'static>,
    alpn: Option<Vec<u8>>,
}

/// The settings of one connection attempt.
struct Attempt<'a> {
    config: &'a Arc<rustls::ClientConfig>,
    server_name: &'a ServerName<'static>,
    port: u16,
    timeout: Duration,
    ident: &'a str,
}

impl Attempt<'_> {
    /// Connects to `ip`, completes the TLS handshake before `deadline`, and
    /// returns the end-entity certificate and the negotiated protocol.
    async fn fetch(&self, ip: IpAddr, deadline: Instant) -> Result<Handshake, Error> {
        let addr = SocketAddr::new(ip, self.port);
        let ident = self.ident;
        let tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "Timeout during connect to {addr} for {CHALLENGE} challenge on {ident} (likely firewall problem): no TCP connection within the time allowed ({:?} for the whole validation)",
                        self.timeout
                    ),
                ))
            }
            Ok(Err(e)) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "Error connecting to {addr} for {CHALLENGE} challenge on {ident}: {}",
                        super::tlsclient::describe_io(&e)
                    ),
                ))
            }
            Ok(Ok(tcp)) => tcp,
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(self.config));
        let tls = match timeout_at(deadline, connector.connect(self.server_name.clone(), tcp)).await
        {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "Timeout after connect to {addr} for {CHALLENGE} challenge on {ident}: the server accepted the connection but did not complete the TLS handshake within the time allowed ({:?} for the whole validation; your server may be slow or overloaded)",
                        self.timeout
                    ),
                ))
            }
            Ok(Err(e)) => return Err(handshake_error(&e, addr, ident)),
            Ok(Ok(tls)) => tls,
        };
        let (_, conn) = tls.get_ref();
        let Some(cert) = conn.peer_certificates().and_then(|c| c.first()).cloned() else {
            return Err(Error::unauthorized(format!(
                "No certificate presented by {addr} for {CHALLENGE} challenge on {ident}"
            )));
        };
        Ok(Handshake {
            cert,
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        })
    }
}

/// The error for a failed TLS handshake.
fn handshake_error(e: &io::Error, addr: SocketAddr, ident: &str) -> Error {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol)) => {
            Error::unauthorized(format!(
                "Cannot negotiate ALPN protocol \"acme-tls/1\" for {CHALLENGE} challenge: the server at {addr} refused it (TLS alert no_application_protocol)"
            ))
        }
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)) => {
            Error::new(
                ErrorKind::Tls,
                format!(
                    "TLS handshake with {addr} for {CHALLENGE} challenge on {ident} failed: the server's handshake signature does not verify with the public key of the certificate it presented (the server must hold that certificate's private key)"
                ),
            )
        }
        Some(tls) => Error::new(
            ErrorKind::Tls,
            format!("TLS handshake with {addr} for {CHALLENGE} challenge on {ident} failed: {tls}"),
        ),
        None => Error::new(
            ErrorKind::Connection,
            format!(
                "Connection to {addr} for {CHALLENGE} challenge on {ident} failed during the TLS handshake: {}",
                super::tlsclient::describe_io(e)
            ),
        ),
    }
}

/// Checks the challenge certificate (RFC 8737 §3); on failure, the sentence
/// that ends the error detail.
fn check_certificate(der: &[u8], expected: &Expected<'_>, digest: &[u8]) -> Result<(), String> {
    let cert = Certificate::from_der(der)
        .map_err(|e| format!("Received a certificate that is not valid DER X.509 ({e})."))?;
    let extensions = cert.tbs_certificate.extensions.as_deref().unwrap_or(&[]);
    for (i, ext) in extensions.iter().enumerate() {
        if extensions[..i].iter().any(|e| e.extn_id == ext.extn_id) {
            return Err(format!(
                "Received certificate with extension {} more than once.",
                ext.extn_id
            ));
        }
    }
    check_subject_alt_name(extensions, expected)?;
    check_acme_identifier(extensions, digest)
}

/// The subjectAltName: exactly one entry, the identifier.
fn check_subject_alt_name(extensions: &[Extension], expected: &Expected<'_>) -> Result<(), String> {
    let want = match expected {
        Expected::Dns(name) => format!("the dNSName '{name}'"),
        Expected::Ip(ip) => format!("the iPAddress '{ip}'"),
    };
    let san = extensions
        .iter()
        .find(|e| e.extn_id == ID_CE_SUBJECT_ALT_NAME)
        .ok_or_else(|| {
            format!("Received certificate without a subjectAltName extension; it must contain exactly one entry, {want}.")
        })?;
    let SubjectAltName(names) =
        SubjectAltName::from_der(san.extn_value.as_bytes()).map_err(|e| {
            format!("Received certificate with a malformed subjectAltName extension ({e}).")
        })?;
    if names.is_empty() {
        return Err(format!(
            "Received certificate with an empty subjectAltName extension; it must contain exactly one entry, {want}."
        ));
    }
    let matches = names.len() == 1 && names_identifier(&names[0], expected);
    if !matches {
        let got: Vec<String> = names
            .iter()
            .map(|n| format!("'{}'", describe_name(n)))
            .collect();
        let why = if names.len() > 1 {
            format!("the subjectAltName must contain only {want}")
        } else {
            format!("the subjectAltName must contain {want}")
        };
        return Err(format!(
            "Received certificate containing {} ({why}).",
            got.join(", ")
        ));
    }
    Ok(())
}

/// Whether the subjectAltName entry `name` is the identifier.
fn names_identifier(name: &GeneralName, expected: &Expected<'_>) -> bool {
    match (name, expected) {
        (GeneralName::DnsName(got), Expected::Dns(name)) => got.as_str().eq_ignore_ascii_case(name),
        (GeneralName::IpAddress(got), Expected::Ip(ip)) => {
            let octets = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            got.as_bytes() == octets.as_slice()
        }
        _ => false,
    }
}

/// The acmeIdentifier: critical, an OCTET STRING of the 32-byte digest.
fn check_acme_identifier(extensions: &[Extension], digest: &[u8]) -> Result<(), String> {
    let acme = extensions
        .iter()
        .find(|e| e.extn_id == ID_PE_ACME_IDENTIFIER)
        .ok_or_else(|| {
            format!("Received certificate without the acmeIdentifier extension ({ID_PE_ACME_IDENTIFIER}) holding the SHA-256 digest of the key authorization.")
        })?;
    if !acme.critical {
        return Err(
            "Received certificate whose acmeIdentifier extension is not marked critical, as RFC 8737 requires."
                .to_owned(),
        );
    }
    let value = OctetString::from_der(acme.extn_value.as_bytes())
        .ok()
        .filter(|v| v.as_bytes().len() == digest.len())
        .ok_or_else(|| {
            format!(
                "Received certificate whose acmeIdentifier extension is not a DER OCTET STRING of {} bytes (got {}).",
                digest.len(),
                hex(acme.extn_value.as_bytes())
            )
        })?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(value.as_bytes(), digest).is_err() {
        return Err(format!(
            "Received certificate whose acmeIdentifier extension holds {}, but the SHA-256 digest of the key authorization is {}.",
            hex(value.as_bytes()),
            hex(digest)
        ));
    }
    Ok(())
}

/// A subjectAltName entry as a person would write it.
fn describe_name(name: &GeneralName) -> String {
    match name {
        GeneralName::DnsName(s) => s.as_str().to_owned(),
        GeneralName::IpAddress(o) => {
            let b = o.as_bytes();
            if let Ok(v4) = <[u8; 4]>::try_from(b) {
                IpAddr::from(v4).to_string()
            } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
                IpAddr::from(v6).to_string()
            } else {
                format!("IP address of {} bytes", b.len())
            }
        }
        GeneralName::Rfc822Name(s) => format!("email:{}", s.as_str()),
        GeneralName::UniformResourceIdentifier(s) => format!("URI:{}", s.as_str()),
        GeneralName::DirectoryName(n) => format!("DirName:{n}"),
        GeneralName::RegisteredId(oid) => format!("RID:{oid}"),
        GeneralName::OtherName(o) => format!("othername:{}", o.type_id),
        GeneralName::EdiPartyName(_) => "an ediPartyName entry".to_owned(),
    }
}

/// Lowercase hexadecimal.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    use rcgen::{CertificateParams, CustomExtension, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use crate::model::ChallengeType;
    use crate::protocol::Identifier;
    use crate::va::fake::{
        invalid, local_listener, reach_loopback, token_request, valid, FakeResolver, KEY_AUTH,
    };

    /// The shared fake answering A/AAAA lookups for `name` only.
    fn resolver_with(name: &str, addrs: &[&str]) -> Arc<dyn Resolver> {
        FakeResolver::default()
            .described_as("the test resolver")
            .ip(name, addrs)
            .shared()
    }

    /// The shared fake, knowing no name.
    fn no_names() -> Arc<dyn Resolver> {
        FakeResolver::default()
            .described_as("the test resolver")
            .shared()
    }

    fn request(ident: Identifier) -> ValidationRequest {
        token_request(ChallengeType::TlsAlpn01, ident)
    }

    fn sha256(s: &str) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
            .as_ref()
            .to_vec()
    }

    fn good_ext() -> CustomExtension {
        CustomExtension::new_acme_identifier(&sha256(KEY_AUTH))
    }

    /// A self-signed certificate with these SANs and extensions.
    fn cert(sans: &[&str], exts: Vec<CustomExtension>) -> (CertificateDer<'static>, KeyPair) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.custom_extensions = exts;
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().clone(), key)
    }

    /// Serves the certificate and records the SNI of each ClientHello.
    #[derive(Debug)]
    struct Recording {
        key: Arc<CertifiedKey>,
        seen: Arc<Mutex<Vec<Option<String>>>>,
    }

    impl ResolvesServerCert for Recording {
        fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            self.seen
                .lock()
                .unwrap()
                .push(hello.server_name().map(str::to_owned));
            Some(Arc::clone(&self.key))
        }
    }

    struct ServerOpts {
        alpn: Vec<Vec<u8>>,
        tls12_only: bool,
        /// Sign the handshake with this key instead of the certificate's.
        signing_key: Option<KeyPair>,
    }

    impl Default for ServerOpts {
        fn default() -> Self {
            ServerOpts {
                alpn: vec![ACME_TLS_1.to_vec()],
                tls12_only: false,
                signing_key: None,
            }
        }
    }

    /// Runs a TLS server on `listener`; returns the SNIs it sees.
    fn serve(
        listener: TcpListener,
        (cert, key): (CertificateDer<'static>, KeyPair),
        opts: ServerOpts,
    ) -> Arc<Mutex<Vec<Option<String>>>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let signing = opts.signing_key.unwrap_or(key);
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing.serialize_der()));
        let signing_key = provider.key_provider.load_private_key(der).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let resolver = Recording {
            key: Arc::new(CertifiedKey::new(vec![cert], signing_key)),
            seen: Arc::clone(&seen),
        };
        let versions: &[&rustls::SupportedProtocolVersion] = if opts.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = opts.alpn;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let mut buf = [0u8; 64];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
                    }
                });
            }
        });
        seen
    }

    fn validator(resolver: Arc<dyn Resolver>, port: u16) -> TlsAlpn01 {
        TlsAlpn01::new(resolver, reach_loopback(), Duration::from_secs(5)).with_port(port)
    }

    /// Validates example.com (resolving to 127.0.0.1) against a server
    /// presenting `cert` with `opts`.
    async fn outcome_for(
        cert: (CertificateDer<'static>, KeyPair),
        opts: ServerOpts,
    ) -> (Outcome, u16) {
        let (l, port) = local_listener().await;
        serve(l, cert, opts);
        let va = validator(resolver_with("example.com", &["127.0.0.1"]), port);
        (
            va.validate(&request(Identifier::dns("example.com"))).await,
            port,
        )
    }

    #[tokio::test]
    async fn valid_for_a_dns_name() {
        let (l, port) = local_listener().await;
        let seen = serve(
            l,
            cert(&["example.com"], vec![good_ext()]),
            ServerOpts::default(),
        );
        let va = validator(resolver_with("example.com", &["127.0.0.1"]), port);
        let records = valid(va.validate(&request(Identifier::dns("example.com"))).await);
        assert_eq!(
            records,
            serde_json::json!([{
                "hostname": "example.com",
                "port": port.to_string(),
                "addressesResolved": ["127.0.0.1"],
                "addressUsed": "127.0.0.1",
            }])
        );
        assert_eq!(*seen.lock().unwrap(), vec![Some("example.com".to_owned())]);
    }

    #[tokio::test]
    async fn valid_through_the_validator_trait_and_over_tls12() {
        let (l, port) = local_listener().await;
        let opts = ServerOpts {
            tls12_only: true,
            ..ServerOpts::default()
        };
        serve(l, cert(&["example.com"], vec![good_ext()]), opts);
        let va: Arc<dyn Validator> = Arc::new(validator(
            resolver_with("example.com", &["127.0.0.1"]),
            port,
        ));
        valid(Validator::validate(&*va, &request(Identifier::dns("example.com"))).await);
    }

    #[tokio::test]
    async fn san_comparison_ignores_case() {
        let (outcome, _) = outcome_for(
            cert(&["Example.COM"], vec![good_ext()]),
            ServerOpts::default(),
        )
        .await;
        valid(outcome);
    }

    #[tokio::test]
    async fn valid_for_an_ip_identifier_with_reverse_dns_sni() {
        let (l, port) = local_listener().await;
        let seen = serve(
            l,
            cert(&["127.0.0.1"], vec![good_ext()]),
            ServerOpts::default(),
        );
        // No DNS at all for IP identifiers.
        let va = validator(no_names(), port);
        let records = valid(va.validate(&request(Identifier::ip("127.0.0.1"))).await);
        assert_eq!(records[0]["addressUsed"], "127.0.0.1");
        assert_eq!(records[0]["hostname"], "127.0.0.1");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Some("1.0.0.127.in-addr.arpa".to_owned())]
        );
    }

    #[tokio::test]
    async fn ip_identifier_needs_an_ip_san() {
        let (l, port) = local_listener().await;
        serve(
            l,
            cert(&["localhost"], vec![good_ext()]),
            ServerOpts::default(),
        );
        let va = validator(no_names(), port);
        let (e, _) = invalid(va.validate(&request(Identifier::ip("127.0.0.1"))).await);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.detail.contains("'localhost'"), "{}", e.detail);
        assert!(e.detail.contains("iPAddress '127.0.0.1'"), "{}", e.detail);
    }

    #[test]
    fn reverse_dns_names() {
        assert_eq!(
            reverse_dns_name("1.2.3.4".parse().unwrap()),
            "4.3.2.1.in-addr.arpa"
        );
        // RFC 8738 §6's example.
        assert_eq!(
            reverse_dns_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[tokio::test]
    async fn missing_acme_identifier_is_unauthorized() {
        let (outcome, port) =
            outcome_for(cert(&["example.com"], vec![]), ServerOpts::default()).await;
        let (e, records) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(
            e.detail.starts_with(&format!(
                "Incorrect validation certificate for tls-alpn-01 challenge. Requested example.com from 127.0.0.1:{port}. "
            )),
            "{}",
            e.detail
        );
        assert!(
            e.detail.contains("without the acmeIdentifier extension"),
            "{}",
            e.detail
        );
        assert_eq!(records[0]["addressUsed"], "127.0.0.1");
    }

    #[tokio::test]
    async fn non_critical_acme_identifier_is_unauthorized() {
        let mut ext = good_ext();
        ext.set_criticality(false);
        let (outcome, _) =
            outcome_for(cert(&["example.com"], vec![ext]), ServerOpts::default()).await;
        let (e, _) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.detail.contains("not marked critical"), "{}", e.detail);
    }

    #[tokio::test]
    async fn wrong_digest_is_unauthorized() {
        let ext = CustomExtension::new_acme_identifier(&sha256("some other key authorization"));
        let (outcome, _) =
            outcome_for(cert(&["example.com"], vec![ext]), ServerOpts::default()).await;
        let (e, _) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.detail.contains(&hex(&sha256(KEY_AUTH))), "{}", e.detail);
        assert!(
            e.detail
                .contains(&hex(&sha256("some other key authorization"))),
            "{}",
            e.detail
        );
    }

    #[tokio::test]
    async fn malformed_acme_identifier_is_unauthorized() {
        // The raw digest without the OCTET STRING wrapping.
        let mut ext =
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 31], sha256(KEY_AUTH));
        ext.set_criticality(true);
        let (outcome, _) =
            outcome_for(cert(&["example.com"], vec![ext]), ServerOpts::default()).await;
        let (e, _) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(
            e.detail.contains("not a DER OCTET STRING of 32 bytes"),
            "{}",
            e.detail
        );
    }

    #[tokio::test]
    async fn duplicate_acme_identifier_is_unauthorized() {
        let (outcome, _) = outcome_for(
            cert(&["example.com"], vec![good_ext(), good_ext()]),
            ServerOpts::default(),
        )
        .await;
        let (e, _) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(
            e.detail.contains("1.3.6.1.5.5.7.1.31 more than once"),
            "{}",
            e.detail
        );
    }

    #[tokio::test]
    async fn wrong_san_is_unauthorized() {
        let (outcome, port) = outcome_for(
            cert(&["other.example"], vec![good_ext()]),
            ServerOpts::default(),
        )
        .await;
        let (e, _) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(
            e.detail.starts_with(&format!(
                "Incorrect validation certificate for tls-alpn-01 challenge. Requested example.com from 127.0.0.1:{port}. Received certificate containing 'other.example'"
            )),
            "{}",
            e.detail
        );
    }

    #[tokio::test]
    async fn two_sans_are_unauthorized() {
        let (outcome, _) = outcome_for(
            cert(&["example.com", "www.example.com"], vec![good_ext()]),
            ServerOpts::default(),
        )
        .await;
        let (e, _) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(
            e.detail.contains("'example.com', 'www.example.com'"),
            "{}",
            e.detail
        );
        assert!(e.detail.contains("must contain only"), "{}", e.detail);
    }

    #[tokio::test]
    async fn missing_san_is_unauthorized() {
        let (outcome, _) = outcome_for(cert(&[], vec![good_ext()]), ServerOpts::default()).await;
        let (e, _) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.detail.contains("subjectAltName"), "{}", e.detail);
    }

    #[tokio::test]
    async fn server_without_alpn_is_unauthorized() {
        let opts = ServerOpts {
            alpn: vec![],
            ..ServerOpts::default()
        };
        let (outcome, _) = outcome_for(cert(&["example.com"], vec![good_ext()]), opts).await;
        let (e, _) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(
            e.detail
                .contains("Cannot negotiate ALPN protocol \"acme-tls/1\""),
            "{}",
            e.detail
        );
        assert!(
            e.detail.contains("selected no ALPN protocol"),
            "{}",
            e.detail
        );
    }

    #[tokio::test]
    async fn server_with_other_alpn_is_unauthorized() {
        let opts = ServerOpts {
            alpn: vec![b"h2".to_vec()],
            ..ServerOpts::default()
        };
        let (outcome, _) = outcome_for(cert(&["example.com"], vec![good_ext()]), opts).await;
        let (e, _) = invalid(outcome);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(
            e.detail
                .contains("Cannot negotiate ALPN protocol \"acme-tls/1\""),
            "{}",
            e.detail
        );
    }

    #[tokio::test]
    async fn handshake_signature_is_still_verified() {
        for tls12_only in [false, true] {
            // The server presents a certificate but signs with another key.
            let opts = ServerOpts {
                signing_key: Some(KeyPair::generate().unwrap()),
                tls12_only,
                ..ServerOpts::default()
            };
            let (outcome, _) = outcome_for(cert(&["example.com"], vec![good_ext()]), opts).await;
            let (e, _) = invalid(outcome);
            assert_eq!(e.kind, ErrorKind::Tls, "{}", e.detail);
            assert!(
                e.detail.contains("handshake signature does not verify"),
                "TLS 1.2 only: {tls12_only}: {}",
                e.detail
            );
        }
    }

    #[tokio::test]
    async fn connection_refused() {
        let (l, port) = local_listener().await;
        drop(l);
        let va = validator(resolver_with("example.com", &["127.0.0.1"]), port);
        let (e, records) = invalid(va.validate(&request(Identifier::dns("example.com"))).await);
        assert_eq!(e.kind, ErrorKind::Connection);
        assert!(e.detail.contains("connection refused"), "{}", e.detail);
        assert!(
            e.detail.contains(&format!("127.0.0.1:{port}")),
            "{}",
            e.detail
        );
        assert_eq!(records[0]["addressUsed"], "127.0.0.1");
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let (l, port) = local_listener().await;
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = l.accept().await {
                held.push(tcp);
            }
        });
        let va = TlsAlpn01::new(
            resolver_with("example.com", &["127.0.0.1"]),
            AddressPolicy {
                allow_reserved: true,
            },
            Duration::from_millis(300),
        )
        .with_port(port);
        let start = std::time::Instant::now();
        let (e, _) = invalid(va.validate(&request(Identifier::dns("example.com"))).await);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(e.kind, ErrorKind::Connection);
        assert!(
            e.detail.contains("did not complete the TLS handshake"),
            "{}",
            e.detail
        );
    }

    #[tokio::test]
    async fn reserved_addresses_are_refused_by_default() {
        let va = TlsAlpn01::new(
            resolver_with("example.com", &["127.0.0.1", "10.0.0.1"]),
            AddressPolicy::default(),
            Duration::from_secs(5),
        );
        let (e, records) = invalid(va.validate(&request(Identifier::dns("example.com"))).await);
        assert_eq!(e.kind, ErrorKind::Dns);
        assert!(
            e.detail.contains("127.0.0.1 is a loopback address"),
            "{}",
            e.detail
        );
        assert!(
            e.detail.contains("10.0.0.1 is a private address"),
            "{}",
            e.detail
        );
        assert_eq!(
            records[0]["addressesResolved"],
            serde_json::json!(["127.0.0.1", "10.0.0.1"])
        );
        assert!(records[0].get("addressUsed").is_none());

        let (e, _) = invalid(va.validate(&request(Identifier::ip("127.0.0.1"))).await);
        assert_eq!(e.kind, ErrorKind::RejectedIdentifier);
        assert_eq!(
            e.detail,
            "Refusing to connect to 127.0.0.1 for tls-alpn-01 challenge: it is a loopback address, which this CA does not contact"
        );
    }

    #[tokio::test]
    async fn dns_failure_is_a_dns_error() {
        let va = validator(no_names(), 443);
        let (e, _) = invalid(va.validate(&request(Identifier::dns("example.com"))).await);
        assert_eq!(e.kind, ErrorKind::Dns);
        assert!(e.detail.contains("NXDOMAIN"), "{}", e.detail);
        assert!(e.detail.contains("the test resolver"), "{}", e.detail);
    }

    #[tokio::test]
    async fn ipv6_failure_falls_back_to_ipv4() {
        // Nothing listens on [::1]:port (or ::1 does not exist here).
        let (l, port) = local_listener().await;
        serve(
            l,
            cert(&["example.com"], vec![good_ext()]),
            ServerOpts::default(),
        );
        let va = validator(resolver_with("example.com", &["127.0.0.1", "::1"]), port);
        let records = valid(va.validate(&request(Identifier::dns("example.com"))).await);
        assert_eq!(records[0]["addressUsed"], "127.0.0.1");
        assert_eq!(records[0]["addressesTried"], serde_json::json!(["::1"]));
        assert_eq!(
            records[0]["addressesResolved"],
            serde_json::json!(["127.0.0.1", "::1"])
        );
    }

    #[tokio::test]
    async fn ipv6_is_preferred() {
        // The IPv4 port may be taken on ::1 by some other socket: pick again
        // until both are ours. Only a machine without ::1 skips the test.
        let mut tries = 0;
        let (l4, l6, port) = loop {
            let (l4, port) = local_listener().await;
            match TcpListener::bind(("::1", port)).await {
                Ok(l6) => break (l4, l6, port),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    tries += 1;
                    assert!(tries < 20, "no port free on both 127.0.0.1 and ::1: {e}");
                }
                Err(e) => {
                    eprintln!("skipped: cannot listen on [::1]:{port}: {e}");
                    return;
                }
            }
        };
        // Only the IPv6 server has the right certificate.
        serve(
            l4,
            cert(&["other.example"], vec![good_ext()]),
            ServerOpts::default(),
        );
        serve(
            l6,
            cert(&["example.com"], vec![good_ext()]),
            ServerOpts::default(),
        );
        let va = validator(resolver_with("example.com", &["127.0.0.1", "::1"]), port);
        let records = valid(va.validate(&request(Identifier::dns("example.com"))).await);
        assert_eq!(records[0]["addressUsed"], "::1");
        assert!(records[0].get("addressesTried").is_none());
    }

    #[tokio::test]
    async fn both_failures_are_reported() {
        let (l, port) = local_listener().await;
        drop(l);
        let va = validator(resolver_with("example.com", &["::1", "127.0.0.1"]), port);
        let (e, records) = invalid(va.validate(&request(Identifier::dns("example.com"))).await);
        assert_eq!(e.kind, ErrorKind::Connection);
        assert!(
            e.detail.contains("the IPv6 address ::1 was tried first"),
            "{}",
            e.detail
        );
        assert_eq!(records[0]["addressUsed"], "127.0.0.1");
    }
}
