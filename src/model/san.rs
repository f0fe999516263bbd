//! The names a certificate is for, read from its subjectAltName extension
//! (RFC 5280 §4.2.1.6).
//!
//! It lives with the model because the store reads it too (the name a
//! stored certificate is listed by); `ca` reads certificates and CSRs
//! through the same functions.

use std::net::IpAddr;

use der::oid::AssociatedOid;
use der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use crate::error::{Error, Result};
use crate::protocol::Identifier;

/// DNS names and IP addresses of a subjectAltName, in order. Any other
/// kind of name, or an IP address that is neither 4 nor 16 bytes, is
/// refused with the reason (the caller picks the error type).
pub(crate) fn split_names(
    names: Vec<GeneralName>,
) -> std::result::Result<(Vec<String>, Vec<IpAddr>), &'static str> {
    let mut dns_names = Vec::new();
    let mut ip_addrs = Vec::new();
    for name in names {
        match name {
            GeneralName::DnsName(n) => dns_names.push(n.to_string()),
            GeneralName::IpAddress(octets) => {
                let bytes = octets.as_bytes();
                let ip = match bytes.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(bytes).expect("length checked")),
                    16 => IpAddr::from(<[u8; 16]>::try_from(bytes).expect("length checked")),
                    _ => {
                        return Err(
                            "subjectAltName has an IP address that is neither 4 nor 16 bytes",
                        )
                    }
                };
                ip_addrs.push(ip);
            }
            _ => return Err("subjectAltName may only contain DNS names and IP addresses"),
        }
    }
    Ok((dns_names, ip_addrs))
}

/// The identifiers a certificate's subjectAltName names (DNS names
/// lowercased), for revocation checks; a malformed extension is
/// `malformed`.
pub fn certificate_identifiers(cert: &x509_cert::Certificate) -> Result<Vec<Identifier>> {
    let mut out = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != SubjectAltName::OID {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
            .map_err(|_| Error::malformed("the certificate's subjectAltName is malformed"))?;
        let (dns, ips) = split_names(san.0).map_err(Error::malformed)?;
        out.extend(
            dns.into_iter()
                .map(|d| Identifier::dns(d.to_ascii_lowercase())),
        );
        out.extend(ips.into_iter().map(|ip| Identifier::ip(ip.to_string())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    /// A self-signed certificate naming `names`, as DER.
    fn cert_der(names: Vec<SanType>) -> Vec<u8> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = names;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn identifiers(der: &[u8]) -> Result<Vec<Identifier>> {
        certificate_identifiers(&x509_cert::Certificate::from_der(der).unwrap())
    }

    #[test]
    fn names_in_order_dns_lowercased_then_addresses() {
        let der = cert_der(vec![
            SanType::IpAddress("192.0.2.1".parse().unwrap()),
            SanType::DnsName("Example.COM".try_into().unwrap()),
            SanType::DnsName("www.example.com".try_into().unwrap()),
            SanType::IpAddress("2001:db8::1".parse().unwrap()),
        ]);
        assert_eq!(
            identifiers(&der).unwrap(),
            vec![
                Identifier::dns("example.com"),
                Identifier::dns("www.example.com"),
                Identifier::ip("192.0.2.1"),
                Identifier::ip("2001:db8::1"),
            ]
        );
    }

    #[test]
    fn no_subject_alt_name_is_no_names() {
        assert_eq!(identifiers(&cert_der(vec![])).unwrap(), vec![]);
    }

    #[test]
    fn other_kinds_of_name_are_malformed() {
        let der = cert_der(vec![SanType::URI(
            "https://example.com/".try_into().unwrap(),
        )]);
        let err = identifiers(&der).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Malformed);
        assert_eq!(
            err.detail,
            "subjectAltName may only contain DNS names and IP addresses"
        );
    }

    #[test]
    fn addresses_of_other_lengths_are_refused() {
        let five = x509_cert::der::asn1::OctetString::new(vec![1, 2, 3, 4, 5]).unwrap();
        assert_eq!(
            split_names(vec![GeneralName::IpAddress(five)]),
            Err("subjectAltName has an IP address that is neither 4 nor 16 bytes")
        );
    }
}
