use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyUsagePurpose, SerialNumber,
    SignatureAlgorithm,
};
use time::macros::datetime;
use time::Duration;
use x509_cert::ext::pkix::{BasicConstraints as X509BasicConstraints, ExtendedKeyUsage, KeyUsage};
use x509_cert::Certificate;

use super::responder::{responder_common_name, whole_seconds_utc, CertParts};
use super::*;
use crate::test_support::{openssl, openssl_available};

// Requests are built here with a few lines of hand-written DER, apart
// from the module's own encoder.

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(0x04, bytes)
}

/// AlgorithmIdentifier { sha1, NULL }.
const SHA1_ALG: [u8; 11] = [
    0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
];
/// OBJECT IDENTIFIER id-pkix-ocsp-nonce.
const NONCE_OID: [u8; 11] = [
    0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
];
/// OBJECT IDENTIFIER 1.2.3.4.
const OTHER_OID: [u8; 5] = [0x06, 0x03, 0x2a, 0x03, 0x04];

fn cert_id_with(alg: &[u8], hash_len: usize, serial: &[u8]) -> Vec<u8> {
    seq(&[
        alg.to_vec(),
        octet_string(&vec![0x11; hash_len]),
        octet_string(&vec![0x22; hash_len]),
        tlv(0x02, serial),
    ])
}

fn cert_id(serial: &[u8]) -> Vec<u8> {
    cert_id_with(&SHA1_ALG, 20, serial)
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![oid.to_vec()];
    if critical {
        parts.push(vec![0x01, 0x01, 0xff]);
    }
    parts.push(octet_string(value));
    seq(&parts)
}

fn nonce_extension(nonce: &[u8]) -> Vec<u8> {
    extension(&NONCE_OID, false, &octet_string(nonce))
}

/// An OCSPRequest from its TBSRequest fields.
fn request_from(before_list: &[Vec<u8>], requests: &[Vec<u8>], extensions: &[Vec<u8>]) -> Vec<u8> {
    let mut tbs = before_list.to_vec();
    tbs.push(seq(requests));
    if !extensions.is_empty() {
        tbs.push(tlv(0xa2, &seq(extensions)));
    }
    seq(&[seq(&tbs)])
}

/// A request for `count` certificates, with serials 0x0100, 0x0101...
fn request(count: usize, extensions: &[Vec<u8>]) -> Vec<u8> {
    let requests: Vec<Vec<u8>> = (0..count)
        .map(|i| seq(&[cert_id(&[0x01, i as u8])]))
        .collect();
    request_from(&[], &requests, extensions)
}

fn malformed(der: &[u8]) -> String {
    let err = parse_request(der).expect_err("the request should be refused");
    assert_eq!(err.status(), ErrorStatus::MalformedRequest, "{err}");
    err.to_string()
}

#[test]
fn parses_a_plain_request() {
    let der = request(2, &[nonce_extension(&[7; 16])]);
    let parsed = parse_request(&der).unwrap();
    assert_eq!(parsed.cert_ids.len(), 2);
    let first = &parsed.cert_ids[0];
    assert_eq!(first.hash_alg, HashAlg::Sha1);
    assert_eq!(first.issuer_name_hash, vec![0x11; 20]);
    assert_eq!(first.issuer_key_hash, vec![0x22; 20]);
    assert_eq!(first.serial, vec![0x01, 0x00]);
    assert_eq!(first.der(), cert_id(&[0x01, 0x00]).as_slice());
    assert_eq!(parsed.cert_ids[1].serial, vec![0x01, 0x01]);
    assert_eq!(parsed.nonce, Some(vec![7; 16]));

    let without_nonce = parse_request(&request(1, &[])).unwrap();
    assert_eq!(without_nonce.nonce, None);
}

#[test]
fn serials_keep_their_leading_zero() {
    let der = request_from(&[], &[seq(&[cert_id(&[0x00, 0x80, 0x01])])], &[]);
    let parsed = parse_request(&der).unwrap();
    assert_eq!(parsed.cert_ids[0].serial, vec![0x00, 0x80, 0x01]);
}

#[test]
fn refuses_empty_input() {
    assert_eq!(malformed(&[]), "OCSP request is empty");
}

#[test]
fn refuses_oversize_input_before_parsing() {
    // Pad a valid request with an ignored extension to exactly the limit.
    let padded = |filler: usize| request(1, &[extension(&OTHER_OID, false, &vec![0; filler])]);
    let filler = 1000 + MAX_REQUEST_LEN - padded(1000).len();
    let at_limit = padded(filler);
    assert_eq!(at_limit.len(), MAX_REQUEST_LEN);
    parse_request(&at_limit).unwrap();

    let over = padded(filler + 1);
    assert_eq!(
        malformed(&over),
        "OCSP request too large (8193 bytes, at most 8192)"
    );
    // Not parsed: garbage of that size gets the same answer.
    assert_eq!(
        malformed(&vec![0xff; MAX_REQUEST_LEN + 1]),
        "OCSP request too large (8193 bytes, at most 8192)"
    );
}

#[test]
fn refuses_trailing_bytes() {
    let mut der = request(1, &[]);
    der.push(0);
    let message = malformed(&der);
    assert!(
        message.starts_with("OCSP request is not valid DER: "),
        "{message}"
    );
    assert!(message.contains("trailing"), "{message}");

    // Inside the TBSRequest too.
    let der = request_from(&[], &[seq(&[cert_id(&[1])])], &[]);
    let mut tbs_content = der[4..].to_vec();
    tbs_content.extend([0x05, 0x00]);
    let der = seq(&[seq(&[tbs_content])]);
    assert!(malformed(&der).starts_with("OCSP request is not valid DER: "));
}

#[test]
fn refuses_garbage_and_non_der() {
    for garbage in [
        b"hello, OCSP".to_vec(),
        vec![0x30],
        vec![0x30, 0x05, 0x30, 0x03],
        vec![0x04, 0x02, 0x30, 0x00],
        vec![0x00; 64],
    ] {
        let message = malformed(&garbage);
        assert!(
            message.starts_with("OCSP request is not valid DER: "),
            "{message}"
        );
    }
    // Truncated.
    let der = request(1, &[]);
    assert!(malformed(&der[..der.len() - 1]).contains("not valid DER"));
    // BER indefinite length.
    let mut ber = vec![0x30, 0x80];
    ber.extend_from_slice(&der[2..]);
    ber.extend([0x00, 0x00]);
    assert!(malformed(&ber).contains("not valid DER"));
    // A length in long form where the short form fits.
    let mut long_form = vec![0x30, 0x81, der[1]];
    long_form.extend_from_slice(&der[2..]);
    assert!(malformed(&long_form).contains("not valid DER"));
    // A certificate that is not a request.
    let cert = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    assert!(malformed(&cert.int_der).contains("not valid DER"));
}

#[test]
fn refuses_zero_requests() {
    assert_eq!(
        malformed(&request(0, &[])),
        "OCSP request asks about no certificate"
    );
}

#[test]
fn refuses_more_than_sixteen_certificates() {
    assert_eq!(parse_request(&request(16, &[])).unwrap().cert_ids.len(), 16);
    assert_eq!(
        malformed(&request(17, &[])),
        "too many certificates in request (17, at most 16)"
    );
}

#[test]
fn checks_the_nonce_size() {
    for len in [1, 16, 32] {
        let parsed = parse_request(&request(1, &[nonce_extension(&vec![0xab; len])])).unwrap();
        assert_eq!(parsed.nonce, Some(vec![0xab; len]));
    }
    assert_eq!(
        malformed(&request(1, &[nonce_extension(&[])])),
        "nonce of 0 octets (RFC 8954 allows 1 to 32)"
    );
    assert_eq!(
        malformed(&request(1, &[nonce_extension(&[0xab; 33])])),
        "nonce of 33 octets (RFC 8954 allows 1 to 32)"
    );
    // The value must be an OCTET STRING, not bare octets.
    let bare = extension(&NONCE_OID, false, &[0xab; 16]);
    assert!(malformed(&request(1, &[bare])).contains("does not hold a DER OCTET STRING"));
    // Once only.
    let twice = [nonce_extension(&[1; 16]), nonce_extension(&[2; 16])];
    assert_eq!(
        malformed(&request(1, &twice)),
        "extension 1.3.6.1.5.5.7.48.1.2 appears twice in the request extensions"
    );
    // A critical nonce is understood.
    let critical = extension(&NONCE_OID, true, &octet_string(&[3; 16]));
    assert_eq!(
        parse_request(&request(1, &[critical])).unwrap().nonce,
        Some(vec![3; 16])
    );
}

#[test]
fn handles_other_extensions() {
    let ignored = extension(&OTHER_OID, false, &[0x05, 0x00]);
    assert!(parse_request(&request(1, std::slice::from_ref(&ignored))).is_ok());
    let critical = extension(&OTHER_OID, true, &[0x05, 0x00]);
    assert_eq!(
        malformed(&request(1, std::slice::from_ref(&critical))),
        "unsupported critical extension 1.2.3.4 in the request extensions"
    );
    // singleRequestExtensions.
    let one = |ext: &Vec<u8>| {
        request_from(
            &[],
            &[seq(&[
                cert_id(&[1]),
                tlv(0xa0, &seq(std::slice::from_ref(ext))),
            ])],
            &[],
        )
    };
    assert!(parse_request(&one(&ignored)).is_ok());
    assert_eq!(
        malformed(&one(&critical)),
        "unsupported critical extension 1.2.3.4 in the extensions of certificate 1"
    );
}

#[test]
fn checks_cert_ids() {
    let md5 = [
        0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00,
    ];
    let one = |id: Vec<u8>| request_from(&[], &[seq(&[id])], &[]);
    assert_eq!(
        malformed(&one(cert_id_with(&md5, 16, &[1]))),
        "certificate 1 of the request: unsupported CertID hash algorithm 1.2.840.113549.2.5"
    );
    assert_eq!(
        malformed(&one(cert_id_with(&SHA1_ALG, 19, &[1]))),
        "certificate 1 of the request: issuerNameHash is 19 octets, a SHA-1 hash is 20"
    );
    let sha256_no_params = [
        0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    let parsed = parse_request(&one(cert_id_with(&sha256_no_params, 32, &[1]))).unwrap();
    assert_eq!(parsed.cert_ids[0].hash_alg, HashAlg::Sha256);
    assert!(malformed(&one(cert_id_with(&sha256_no_params, 20, &[1]))).contains("SHA-256"));
    let sha1_odd_params = [
        0x30, 0x0a, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x02, 0x01, 0x00,
    ];
    assert!(malformed(&one(cert_id_with(&sha1_odd_params, 20, &[1])))
        .contains("parameters other than NULL"));
    // Serials: minimal INTEGER encoding only.
    assert!(malformed(&one(cert_id(&[0x00, 0x01]))).contains("CertID is not valid DER"));
    assert!(malformed(&one(cert_id(&[]))).contains("CertID is not valid DER"));
    // A CertID with an extra element.
    let mut long_id = cert_id(&[1]);
    long_id[1] += 2;
    long_id.extend([0x05, 0x00]);
    assert!(malformed(&one(long_id)).contains("CertID is not valid DER"));
    // The second of two is named.
    let der = request_from(
        &[],
        &[seq(&[cert_id(&[1])]), seq(&[cert_id(&[0x00, 0x01])])],
        &[],
    );
    assert!(malformed(&der).starts_with("certificate 2 of the request"));
}

#[test]
fn accepts_version_requestor_and_signature() {
    let version = |v: u8| tlv(0xa0, &[0x02, 0x01, v]);
    let requests = [seq(&[cert_id(&[5])])];
    assert!(parse_request(&request_from(&[version(0)], &requests, &[])).is_ok());
    assert_eq!(
        malformed(&request_from(&[version(1)], &requests, &[])),
        "unsupported OCSP request version (only v1 exists)"
    );

    // requestorName [1] EXPLICIT GeneralName (a dNSName here).
    let requestor = tlv(0xa1, &tlv(0x82, b"client.example"));
    let der = request_from(&[version(0), requestor.clone()], &requests, &[]);
    assert!(parse_request(&der).is_ok());
    // Out of order.
    let der = request_from(&[requestor.clone(), version(0)], &requests, &[]);
    assert!(malformed(&der).contains("not valid DER"));

    // optionalSignature [0] EXPLICIT Signature: accepted, not checked.
    let tbs = request_from(&[requestor], &requests, &[nonce_extension(&[9; 20])]);
    let tbs = tbs[2..].to_vec(); // the TBSRequest inside the outer SEQUENCE
    let signature = seq(&[
        seq(&[vec![
            0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
        ]]),
        tlv(0x03, &[0x00, 0x01, 0x02, 0x03]),
    ]);
    let signed = seq(&[tbs.clone(), tlv(0xa0, &signature)]);
    let parsed = parse_request(&signed).unwrap();
    assert_eq!(parsed.cert_ids[0].serial, vec![5]);
    assert_eq!(parsed.nonce, Some(vec![9; 20]));
    // A "signature" that is not a SEQUENCE.
    let bogus = seq(&[tbs, tlv(0xa0, &[0x05, 0x00])]);
    assert!(malformed(&bogus).contains("not valid DER"));
}

#[test]
fn error_responses_are_fixed() {
    assert_eq!(
        error_response(ErrorStatus::MalformedRequest),
        [0x30, 0x03, 0x0a, 0x01, 0x01]
    );
    assert_eq!(error_response(ErrorStatus::InternalError)[4], 2);
    assert_eq!(error_response(ErrorStatus::TryLater)[4], 3);
    assert_eq!(error_response(ErrorStatus::Unauthorized)[4], 6);
}

#[test]
fn responder_names_fit() {
    assert_eq!(
        responder_common_name(Some("acme-ca intermediate ab12cd")),
        "acme-ca intermediate ab12cd OCSP responder"
    );
    assert_eq!(responder_common_name(None), "OCSP responder");
    assert_eq!(responder_common_name(Some("  ")), "OCSP responder");
    let long = "é".repeat(64);
    assert_eq!(responder_common_name(Some(&long)).chars().count(), 64);
}

// A root, an intermediate that acts as the issuer, and a leaf.

struct Chain {
    dir: tempfile::TempDir,
    int_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    leaf_serial: Vec<u8>,
}

impl Chain {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn write(&self, name: &str, contents: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

fn new_key(alg: &'static SignatureAlgorithm) -> KeyPair {
    if alg == &rcgen::PKCS_RSA_SHA256 {
        KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
    } else {
        KeyPair::generate_for(alg).unwrap()
    }
}

fn random_serial() -> Vec<u8> {
    let mut serial = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).unwrap();
    serial[0] = (serial[0] & 0x7f) | 0x10;
    serial
}

fn params(cn: &str, is_ca: IsCa) -> CertificateParams {
    let now = whole_seconds_utc(OffsetDateTime::now_utc());
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = is_ca;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(30);
    params
}

/// Generate the chain and write root.pem, int.pem, chain.pem (root and
/// intermediate) and leaf.pem.
fn ca_chain(alg: &'static SignatureAlgorithm) -> Chain {
    let root_key = new_key(alg);
    let mut root_params = params("test root", IsCa::Ca(BasicConstraints::Unconstrained));
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);

    let int_key = new_key(alg);
    let mut int_params = params(
        "test intermediate",
        IsCa::Ca(BasicConstraints::Constrained(0)),
    );
    int_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    int_params.use_authority_key_identifier_extension = true;
    let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
    let issuer = Issuer::new(int_params, int_key);

    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf_params = params("leaf.example", IsCa::NoCa);
    leaf_params.subject_alt_names =
        vec![rcgen::SanType::DnsName("leaf.example".try_into().unwrap())];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_serial = leaf_params.serial_number.as_ref().unwrap().to_bytes();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let chain = Chain {
        dir: tempfile::tempdir().unwrap(),
        int_der: int.der().to_vec(),
        issuer,
        leaf_serial,
    };
    chain.write("root.pem", root.pem().as_bytes());
    chain.write("int.pem", int.pem().as_bytes());
    chain.write(
        "chain.pem",
        format!("{}{}", root.pem(), int.pem()).as_bytes(),
    );
    chain.write("leaf.pem", leaf.pem().as_bytes());
    chain
}

/// Have openssl write a request for the leaf; `digest` is e.g. "-sha256".
fn openssl_request(chain: &Chain, digest: Option<&str>, nonce: bool) -> Vec<u8> {
    let (int, leaf, req) = (
        chain.path("int.pem"),
        chain.path("leaf.pem"),
        chain.path("req.der"),
    );
    let mut args = vec!["ocsp", "-issuer", &int];
    args.extend(digest);
    args.extend(["-cert", &leaf, "-reqout", &req]);
    if !nonce {
        args.push("-no_nonce");
    }
    let (ok, text) = openssl(&args);
    assert!(ok, "openssl ocsp -reqout failed:\n{text}");
    std::fs::read(&req).unwrap()
}

/// Check a response with openssl, first against the request (which
/// checks the nonce) with the full text, then against the leaf
/// certificate (openssl matches its own CertID and prints a summary).
/// Returns both outputs.
fn openssl_check(chain: &Chain, response: &[u8], digest: Option<&str>) -> (String, String) {
    let resp = chain.write("resp.der", response);
    let (req, int, ca) = (
        chain.path("req.der"),
        chain.path("int.pem"),
        chain.path("chain.pem"),
    );
    let (_, with_request) = openssl(&[
        "ocsp",
        "-reqin",
        &req,
        "-respin",
        &resp,
        "-issuer",
        &int,
        "-CAfile",
        &ca,
        "-resp_text",
    ]);
    let leaf = chain.path("leaf.pem");
    let mut args = vec!["ocsp", "-respin", &resp, "-issuer", &int, "-CAfile", &ca];
    args.extend(digest);
    args.extend(["-cert", &leaf, "-no_nonce"]);
    let (_, with_cert) = openssl(&args);
    (with_request, with_cert)
}

fn key_compromise(at: OffsetDateTime) -> CertStatus {
    CertStatus::Revoked {
        at,
        reason: Some(1),
    }
}

/// For each way of asking and each status: openssl asks, we parse and
/// answer, openssl verifies and reads the answer.
fn round_trips(chain: &Chain, responder: &Responder<'_>) {
    let hashes = IssuerHashes::from_issuer_cert(&chain.int_der).unwrap();
    for (digest, nonce) in [(None, true), (None, false), (Some("-sha256"), true)] {
        let now = whole_seconds_utc(OffsetDateTime::now_utc());
        for (status, word) in [
            (CertStatus::Good, "good"),
            (key_compromise(now - Duration::hours(2)), "revoked"),
            (CertStatus::Unknown, "unknown"),
        ] {
            let case = format!("{digest:?}, nonce {nonce}, {word}");
            let request = parse_request(&openssl_request(chain, digest, nonce)).unwrap();
            assert_eq!(request.cert_ids.len(), 1, "{case}");
            let id = &request.cert_ids[0];
            let alg = if digest.is_some() {
                HashAlg::Sha256
            } else {
                HashAlg::Sha1
            };
            assert_eq!(id.hash_alg, alg, "{case}");
            assert_eq!(id.serial, chain.leaf_serial, "{case}");
            assert!(hashes.matches(id), "{case}");
            assert_eq!(
                hashes.cert_id(alg, &chain.leaf_serial).unwrap().der(),
                id.der(),
                "{case}"
            );
            match &request.nonce {
                Some(n) => assert!(nonce && n.len() == 16, "{case}"),
                None => assert!(!nonce, "{case}"),
            }

            let answer = SingleAnswer {
                id,
                status,
                this_update: now - Duration::minutes(1),
                next_update: now + Duration::days(1),
            };
            let response =
                build_response(responder, &[answer], now, request.nonce.as_deref()).unwrap();
            let (text, summary) = openssl_check(chain, &response, digest);
            for out in [&text, &summary] {
                assert!(out.contains("Response verify OK"), "{case}:\n{out}");
                assert!(!out.contains("WARNING"), "{case}:\n{out}");
                assert!(!out.contains("rror"), "{case}:\n{out}");
            }
            assert!(
                text.contains("OCSP Response Status: successful (0x0)"),
                "{case}:\n{text}"
            );
            assert!(
                text.contains("Response Type: Basic OCSP Response"),
                "{case}:\n{text}"
            );
            assert!(
                text.contains(&format!("Cert Status: {word}")),
                "{case}:\n{text}"
            );
            assert_eq!(text.contains("OCSP Nonce"), nonce, "{case}:\n{text}");
            let leaf = chain.path("leaf.pem");
            assert!(
                summary.contains(&format!("{leaf}: {word}")),
                "{case}:\n{summary}"
            );
            if word == "revoked" {
                assert!(
                    text.contains("Revocation Reason: keyCompromise (0x1)"),
                    "{case}:\n{text}"
                );
                assert!(
                    summary.contains("Reason: keyCompromise"),
                    "{case}:\n{summary}"
                );
            }
            assert_eq!(
                text.contains("Certificate:"),
                responder.include_cert,
                "{case}:\n{text}"
            );
        }
    }
}

fn issuer_signed(alg: &'static SignatureAlgorithm) {
    let chain = ca_chain(alg);
    if !openssl_available() {
        return;
    }
    let responder = Responder {
        key: chain.issuer.key(),
        responder_cert_der: &chain.int_der,
        include_cert: false,
    };
    round_trips(&chain, &responder);
}

fn delegated(alg: &'static SignatureAlgorithm) {
    let chain = ca_chain(alg);
    if !openssl_available() {
        return;
    }
    let now = whole_seconds_utc(OffsetDateTime::now_utc());
    let (cert, key) = make_delegated_responder(
        &chain.issuer,
        &chain.int_der,
        now - Duration::hours(1),
        now + Duration::days(7),
    )
    .unwrap();
    let responder = Responder {
        key: &key,
        responder_cert_der: &cert,
        include_cert: true,
    };
    round_trips(&chain, &responder);
}

#[test]
fn openssl_issuer_signed_p256() {
    issuer_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
}

#[test]
fn openssl_issuer_signed_p384() {
    issuer_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
}

#[test]
fn openssl_issuer_signed_rsa() {
    issuer_signed(&rcgen::PKCS_RSA_SHA256);
}

#[test]
fn openssl_delegated_p256() {
    delegated(&rcgen::PKCS_ECDSA_P256_SHA256);
}

#[test]
fn openssl_delegated_rsa() {
    delegated(&rcgen::PKCS_RSA_SHA256);
}

/// The checks above can fail: openssl notices a changed response, a
/// wrong nonce, a missing nonce and a responder from another CA.
#[test]
fn openssl_rejects_bad_responses() {
    let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    if !openssl_available() {
        return;
    }
    let request = parse_request(&openssl_request(&chain, None, true)).unwrap();
    let now = whole_seconds_utc(OffsetDateTime::now_utc());
    let answer = SingleAnswer {
        id: &request.cert_ids[0],
        status: CertStatus::Good,
        this_update: now,
        next_update: now + Duration::days(1),
    };
    let responder = Responder {
        key: chain.issuer.key(),
        responder_cert_der: &chain.int_der,
        include_cert: false,
    };
    let nonce = request.nonce.as_deref();

    // Good "good" changed to "unknown": [0] NULL -> [2] NULL.
    let mut response = build_response(&responder, &[answer], now, nonce).unwrap();
    let status_at = response
        .windows(2 + request.cert_ids[0].der().len())
        .position(|w| w.ends_with(&[0x80, 0x00]) && w.starts_with(request.cert_ids[0].der()))
        .expect("the CertID followed by good");
    let good = status_at + request.cert_ids[0].der().len();
    response[good] = 0x82;
    let (text, _) = openssl_check(&chain, &response, None);
    assert!(text.contains("Cert Status: unknown"), "{text}");
    assert!(text.contains("Response Verify Failure"), "{text}");
    assert!(!text.contains("Response verify OK"), "{text}");

    let other_nonce = [0x5a; 16];
    let response = build_response(&responder, &[answer], now, Some(&other_nonce)).unwrap();
    let (text, _) = openssl_check(&chain, &response, None);
    assert!(text.contains("Nonce Verify error"), "{text}");

    let response = build_response(&responder, &[answer], now, None).unwrap();
    let (text, _) = openssl_check(&chain, &response, None);
    assert!(text.contains("WARNING: no nonce in response"), "{text}");

    // A delegated responder certified by another CA's intermediate.
    let other = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (cert, key) = make_delegated_responder(
        &other.issuer,
        &other.int_der,
        now - Duration::hours(1),
        now + Duration::days(1),
    )
    .unwrap();
    let stranger = Responder {
        key: &key,
        responder_cert_der: &cert,
        include_cert: true,
    };
    let response = build_response(&stranger, &[answer], now, nonce).unwrap();
    let (text, summary) = openssl_check(&chain, &response, None);
    assert!(text.contains("Response Verify Failure"), "{text}");
    assert!(summary.contains("Response Verify Failure"), "{summary}");

    // The issuer's own key, without including the issuer certificate
    // and without -issuer: openssl cannot find the signer.
    let response = build_response(&responder, &[answer], now, nonce).unwrap();
    let resp = chain.write("resp.der", &response);
    let (ok, text) = openssl(&[
        "ocsp",
        "-reqin",
        &chain.path("req.der"),
        "-respin",
        &resp,
        "-CAfile",
        &chain.path("root.pem"),
    ]);
    assert!(!ok || !text.contains("Response verify OK"), "{text}");
}

#[test]
fn openssl_reads_error_responses() {
    let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    if !openssl_available() {
        return;
    }
    for (status, printed) in [
        (ErrorStatus::MalformedRequest, "malformedrequest (1)"),
        (ErrorStatus::InternalError, "internalerror (2)"),
        (ErrorStatus::TryLater, "trylater (3)"),
        (ErrorStatus::Unauthorized, "unauthorized (6)"),
    ] {
        let path = chain.write("error.der", &error_response(status));
        let (_, text) = openssl(&["ocsp", "-respin", &path, "-resp_text", "-noverify"]);
        assert!(
            text.to_lowercase()
                .contains(&format!("responder error: {printed}")),
            "{status:?}:\n{text}"
        );
    }
}

/// Several answers in one response; times with fractions and offsets
/// are written in UTC whole seconds; reason 0 is left out.
#[test]
fn openssl_reads_times_and_several_answers() {
    let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let hashes = IssuerHashes::from_issuer_cert(&chain.int_der).unwrap();
    let ids = [
        hashes.cert_id(HashAlg::Sha1, &[0x01]).unwrap(),
        hashes.cert_id(HashAlg::Sha256, &[0x00, 0x80]).unwrap(),
        hashes.cert_id(HashAlg::Sha1, &[0x03]).unwrap(),
    ];
    let this_update = datetime!(2026-03-01 12:00:00.999 +02:00);
    let next_update = datetime!(2026-03-08 12:00:00.5 +02:00);
    let answers = [
        SingleAnswer {
            id: &ids[0],
            status: CertStatus::Revoked {
                at: datetime!(2026-02-27 10:11:12.75 UTC),
                reason: Some(0),
            },
            this_update,
            next_update,
        },
        SingleAnswer {
            id: &ids[1],
            status: CertStatus::Revoked {
                at: datetime!(2026-02-28 00:00:01 -05:00),
                reason: Some(4),
            },
            this_update,
            next_update,
        },
        SingleAnswer {
            id: &ids[2],
            status: CertStatus::Good,
            this_update,
            next_update,
        },
    ];
    let responder = Responder {
        key: chain.issuer.key(),
        responder_cert_der: &chain.int_der,
        include_cert: false,
    };
    let produced_at = datetime!(2026-03-01 10:30:00.25 UTC);
    let response = build_response(&responder, &answers, produced_at, None).unwrap();
    for id in &ids {
        assert!(response.windows(id.der().len()).any(|w| w == id.der()));
    }
    if !openssl_available() {
        return;
    }
    let path = chain.write("resp.der", &response);
    let (ok, text) = openssl(&["ocsp", "-respin", &path, "-resp_text", "-noverify"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("Produced At: Mar  1 10:30:00 2026 GMT"),
        "{text}"
    );
    assert_eq!(
        text.matches("This Update: Mar  1 10:00:00 2026 GMT")
            .count(),
        3,
        "{text}"
    );
    assert_eq!(
        text.matches("Next Update: Mar  8 10:00:00 2026 GMT")
            .count(),
        3,
        "{text}"
    );
    assert!(
        text.contains("Revocation Time: Feb 27 10:11:12 2026 GMT"),
        "{text}"
    );
    assert!(
        text.contains("Revocation Time: Feb 28 05:00:01 2026 GMT"),
        "{text}"
    );
    assert_eq!(text.matches("Revocation Reason").count(), 1, "{text}");
    assert!(
        text.contains("Revocation Reason: superseded (0x4)"),
        "{text}"
    );
    assert!(text.contains("Serial Number: 80"), "{text}");
    assert!(text.contains("Hash Algorithm: sha256"), "{text}");
    assert_eq!(text.matches("Cert Status: revoked").count(), 2, "{text}");
    assert_eq!(text.matches("Cert Status: good").count(), 1, "{text}");
    // byKey: the SHA-1 of the intermediate's public key.
    let public_key = CertParts::parse(&chain.int_der).unwrap().public_key;
    let key_hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &public_key);
    let key_hash_hex: String = key_hash
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(
        text.contains(&format!("Responder Id: {key_hash_hex}")),
        "{text}"
    );
}

#[test]
fn echoes_cert_ids_byte_for_byte() {
    let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    // SHA-256 without the NULL parameters that openssl would write.
    let sha256_no_params = [
        0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    let der = request_from(
        &[],
        &[seq(&[cert_id_with(&sha256_no_params, 32, &[0x42])])],
        &[],
    );
    let request = parse_request(&der).unwrap();
    let id = &request.cert_ids[0];
    let now = OffsetDateTime::now_utc();
    let responder = Responder {
        key: chain.issuer.key(),
        responder_cert_der: &chain.int_der,
        include_cert: false,
    };
    let answer = SingleAnswer {
        id,
        status: CertStatus::Unknown,
        this_update: now,
        next_update: now,
    };
    let response = build_response(&responder, &[answer], now, Some(&[1, 2, 3])).unwrap();
    assert!(response.windows(id.der().len()).any(|w| w == id.der()));
    // The nonce extension as a client would send it.
    let nonce = nonce_extension(&[1, 2, 3]);
    assert!(response.windows(nonce.len()).any(|w| w == nonce.as_slice()));
}

#[test]
fn issuer_hashes_tell_issuers_apart() {
    let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let other = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let ours = IssuerHashes::from_issuer_cert(&chain.int_der).unwrap();
    let theirs = IssuerHashes::from_issuer_cert(&other.int_der).unwrap();
    for alg in HashAlg::ALL {
        let id = ours.cert_id(alg, &[7]).unwrap();
        assert_eq!(id.issuer_name_hash.len(), alg.output_len());
        assert!(ours.matches(&id));
        assert!(!theirs.matches(&id));
        // Same names (both "test intermediate"), different keys.
        let mut same_name = theirs.cert_id(alg, &[7]).unwrap();
        assert_eq!(same_name.issuer_name_hash, id.issuer_name_hash);
        same_name.issuer_key_hash = id.issuer_key_hash.clone();
        assert!(ours.matches(&same_name));
    }
    if openssl_available() {
        let request = parse_request(&openssl_request(&other, None, false)).unwrap();
        assert!(!ours.matches(&request.cert_ids[0]));
        assert!(theirs.matches(&request.cert_ids[0]));
    }
    assert!(ours.cert_id(HashAlg::Sha1, &[0x00, 0x01]).is_err());
    assert!(IssuerHashes::from_issuer_cert(b"not a certificate").is_err());
}

#[test]
fn delegated_responder_certificate_profile() {
    let chain = ca_chain(&rcgen::PKCS_RSA_SHA256);
    // A fraction of a second and a local offset, both to be dropped.
    let now = whole_seconds_utc(OffsetDateTime::now_utc());
    let not_before = (now - Duration::hours(1) + Duration::milliseconds(500))
        .to_offset(time::macros::offset!(+05:30));
    let not_after = now + Duration::days(7);
    let (der, key) =
        make_delegated_responder(&chain.issuer, &chain.int_der, not_before, not_after).unwrap();
    assert!(key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256);
    let cert = Certificate::from_der(&der).unwrap();
    let tbs = &cert.tbs_certificate;
    assert_eq!(
        tbs.subject.to_string(),
        "CN=test intermediate OCSP responder"
    );
    assert_eq!(tbs.issuer.to_string(), "CN=test intermediate");
    assert_eq!(
        tbs.validity.not_before.to_unix_duration().as_secs(),
        not_before.unix_timestamp() as u64
    );
    assert_eq!(
        tbs.validity.not_after.to_unix_duration().as_secs(),
        not_after.unix_timestamp() as u64
    );
    assert_eq!(
        tbs.subject_public_key_info.subject_public_key.raw_bytes(),
        key.der_bytes()
    );
    let serial = tbs.serial_number.as_bytes();
    assert!(serial.len() == 16 && serial[0] & 0x80 == 0, "{serial:02x?}");

    let extensions = tbs.extensions.as_ref().unwrap();
    let find = |oid: &str| {
        let oid = ObjectIdentifier::new_unwrap(oid);
        let found: Vec<_> = extensions.iter().filter(|e| e.extn_id == oid).collect();
        assert_eq!(found.len(), 1, "{oid}");
        found[0]
    };
    let eku = find("2.5.29.37");
    assert!(!eku.critical);
    let eku = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).unwrap();
    assert_eq!(
        eku.0,
        vec![ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9")]
    );
    let ku = find("2.5.29.15");
    assert!(ku.critical);
    let ku = KeyUsage::from_der(ku.extn_value.as_bytes()).unwrap();
    assert!(ku.digital_signature());
    // BIT STRING with only bit 0 (digitalSignature) set.
    assert_eq!(ku.to_der().unwrap(), [0x03, 0x02, 0x07, 0x80]);
    let bc = find("2.5.29.19");
    let bc = X509BasicConstraints::from_der(bc.extn_value.as_bytes()).unwrap();
    assert!(!bc.ca);
    let nocheck = find("1.3.6.1.5.5.7.48.1.5");
    assert!(!nocheck.critical);
    assert_eq!(nocheck.extn_value.as_bytes(), [0x05, 0x00]);
    find("2.5.29.14");
    let parts = CertParts::parse(&der).unwrap();
    let int_parts = CertParts::parse(&chain.int_der).unwrap();
    assert!(parts.subject_key_id.is_some());
    assert_eq!(parts.authority_key_id, int_parts.subject_key_id);
    assert!(parts.authority_key_id.is_some());
    assert_eq!(extensions.len(), 6);

    if openssl_available() {
        let path = chain.write("responder.der", &der);
        let (ok, text) = openssl(&["x509", "-inform", "DER", "-in", &path, "-noout", "-text"]);
        assert!(ok, "{text}");
        assert!(text.contains("OCSP Signing"), "{text}");
        assert!(text.contains("OCSP No Check"), "{text}");
        assert!(text.contains("CA:FALSE"), "{text}");
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64(&der)
        );
        let path = chain.write("responder.pem", pem.as_bytes());
        let (ok, text) = openssl(&[
            "verify",
            "-CAfile",
            &chain.path("chain.pem"),
            "-purpose",
            "ocsphelper",
            &path,
        ]);
        assert!(ok && text.contains(": OK"), "{text}");
    }
}

/// Standard base64 with line breaks every 64 characters, for PEM.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn refuses_bad_responder_setups() {
    let chain = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let other = ca_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let id = IssuerHashes::from_issuer_cert(&chain.int_der)
        .unwrap()
        .cert_id(HashAlg::Sha1, &[1])
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let answer = |status| SingleAnswer {
        id: &id,
        status,
        this_update: now,
        next_update: now + Duration::hours(1),
    };
    let responder = Responder {
        key: chain.issuer.key(),
        responder_cert_der: &chain.int_der,
        include_cert: false,
    };
    let fails = |responder: &Responder<'_>,
                 answers: &[SingleAnswer<'_>],
                 nonce: Option<&[u8]>,
                 wanted: &str| {
        let err = build_response(responder, answers, now, nonce).unwrap_err();
        assert_eq!(err.status(), ErrorStatus::InternalError);
        assert!(err.to_string().contains(wanted), "{err}");
    };
    fails(&responder, &[], None, "needs an answer");
    let revoked = |reason| CertStatus::Revoked {
        at: now,
        reason: Some(reason),
    };
    fails(&responder, &[answer(revoked(7))], None, "reason 7");
    fails(&responder, &[answer(revoked(11))], None, "reason 11");
    fails(
        &responder,
        &[answer(CertStatus::Good)],
        Some(&[]),
        "nonce of 0 octets",
    );
    fails(
        &responder,
        &[answer(CertStatus::Good)],
        Some(&[0; 33]),
        "nonce of 33 octets",
    );
    let mut backwards = answer(CertStatus::Good);
    backwards.next_update = now - Duration::seconds(2);
    fails(&responder, &[backwards], None, "is before thisUpdate");
    let mut ancient = answer(CertStatus::Good);
    ancient.this_update = datetime!(1960-01-01 00:00:00 UTC);
    fails(
        &responder,
        &[ancient],
        None,
        "cannot be written as a GeneralizedTime",
    );

    let mismatched = Responder {
        responder_cert_der: &other.int_der,
        ..responder
    };
    fails(
        &mismatched,
        &[answer(CertStatus::Good)],
        None,
        "does not carry the public key",
    );
    let garbage = Responder {
        responder_cert_der: b"junk",
        ..responder
    };
    fails(
        &garbage,
        &[answer(CertStatus::Good)],
        None,
        "not a valid DER certificate",
    );
    let ed25519 = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed_cert = params("ed", IsCa::NoCa).self_signed(&ed25519).unwrap();
    let ed = Responder {
        key: &ed25519,
        responder_cert_der: ed_cert.der(),
        include_cert: false,
    };
    fails(
        &ed,
        &[answer(CertStatus::Good)],
        None,
        "cannot be signed with",
    );
    assert!(build_response(&responder, &[answer(revoked(10))], now, None).is_ok());

    let err = make_delegated_responder(&chain.issuer, &other.int_der, now, now + Duration::days(1))
        .unwrap_err();
    assert!(err.to_string().contains("public key"), "{err}");
    let err = make_delegated_responder(&chain.issuer, &chain.int_der, now, now).unwrap_err();
    assert!(err.to_string().contains("ends"), "{err}");
}
