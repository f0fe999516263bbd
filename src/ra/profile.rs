//! Certificate profiles (draft-aaron-acme-profiles): named sets of rules
//! for what a certificate looks like, chosen per order.

use std::time::Duration;

use crate::ca::LeafProfile;
use crate::config::ProfileConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{Identifier, IdentifierType};

/// A profile as the RA applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    pub name: String,
    pub description: String,
    /// notAfter - notBefore of its certificates (both ends counted).
    pub validity: Duration,
    pub leaf: LeafProfile,
    pub allow_dns: bool,
    pub allow_ip: bool,
    /// Certificates carry the OCSP URL (and may be Must-Staple).
    pub ocsp: bool,
    /// Certificates carry the CRL distribution point.
    pub crl: bool,
}

impl Profile {
    /// From a checked config entry ([`crate::config::Config::validate`]
    /// has refused unknown usages and identifier types).
    pub(crate) fn from_config(name: &str, c: &ProfileConfig) -> Profile {
        let has = |list: &[String], v: &str| list.iter().any(|x| x == v);
        Profile {
            name: name.to_owned(),
            description: c.description.clone(),
            validity: c.validity,
            leaf: LeafProfile {
                common_name: c.common_name,
                server_auth: has(&c.extended_key_usages, "serverAuth"),
                client_auth: has(&c.extended_key_usages, "clientAuth"),
                rsa_key_encipherment: c.rsa_key_encipherment,
            },
            allow_dns: has(&c.identifier_types, "dns"),
            allow_ip: has(&c.identifier_types, "ip"),
            ocsp: c.ocsp,
            crl: c.crl,
        }
    }

    /// Refuses identifiers of a type this profile does not issue for.
    pub(crate) fn check_identifiers(&self, identifiers: &[Identifier]) -> Result<()> {
        for id in identifiers {
            let allowed = match id.kind {
                IdentifierType::Dns => self.allow_dns,
                IdentifierType::Ip => self.allow_ip,
                IdentifierType::Unknown => false,
            };
            if !allowed {
                return Err(Error::new(
                    ErrorKind::RejectedIdentifier,
                    format!(
                        "the {:?} profile does not issue certificates for {} identifiers",
                        self.name,
                        id.kind.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_profiles;

    #[test]
    fn default_profiles_map_onto_the_leaf() {
        let profiles = default_profiles();
        let classic = Profile::from_config("classic", &profiles["classic"]);
        assert_eq!(classic.leaf, LeafProfile::default());
        assert!(classic.ocsp && classic.crl && classic.allow_dns && classic.allow_ip);
        assert_eq!(classic.validity, Duration::from_secs(90 * 86400));
        let short = Profile::from_config("shortlived", &profiles["shortlived"]);
        assert!(!short.leaf.common_name && !short.leaf.client_auth && short.leaf.server_auth);
        assert!(!short.ocsp && !short.crl);
        assert_eq!(short.validity, Duration::from_secs(160 * 3600));
    }

    #[test]
    fn identifier_types_are_enforced() {
        let c = ProfileConfig {
            identifier_types: vec!["dns".into()],
            ..ProfileConfig::default()
        };
        let p = Profile::from_config("dnsonly", &c);
        assert!(p.check_identifiers(&[Identifier::dns("a.example")]).is_ok());
        let e = p
            .check_identifiers(&[Identifier::dns("a.example"), Identifier::ip("192.0.2.1")])
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::RejectedIdentifier);
        assert!(
            e.detail.contains("dnsonly") && e.detail.contains("ip"),
            "{}",
            e.detail
        );
    }
}
