//! Signing an approved request: its key (generated here, or the CSR's),
//! the certificate through the RA's one issuance road
//! ([`crate::ra::Ra::issue_certificate`]), and the record of both.
//!
//! Service certificates always carry the CA's OCSP and CRL URLs (when the
//! server has them): a service profile has no setting to leave them out,
//! and relying parties of operator-issued certificates check revocation
//! through them (docs/SERVICE.md).

use std::net::IpAddr;

use rcgen::PublicKeyData;

use super::config::ServiceProfileConfig;
use super::keys::{self, KeySpec};
use super::{bad, pem_blocks, secs, Service};
use crate::ca::{IssuedCert, LeafProfile, PublicKeyKind};
use crate::error::{Error, Result};
use crate::model::service::{Request, RequestParams, ServiceCert};
use crate::model::{CertId, Certificate, Timestamp};
use crate::protocol::Identifier;
use crate::ra::issue::{Issuance, StatusUrls, Validity};

/// What a request's certificate is made of.
struct Subject {
    spki: Vec<u8>,
    key_kind: PublicKeyKind,
    /// The private key, PKCS#8, when the service made it.
    key_pkcs8: Option<Vec<u8>>,
    ids: Vec<Identifier>,
    common_name: Option<String>,
    /// Requested lifetime in seconds (never above the profile's).
    ttl: Option<u64>,
    auto_renew: bool,
}

/// The certificate's shape under a service profile: a common name when
/// given, the profile's extended key usages, keyEncipherment for RSA.
fn leaf_profile(profile: &ServiceProfileConfig) -> LeafProfile {
    let has = |usage: &str| profile.extended_key_usages.iter().any(|e| e == usage);
    LeafProfile {
        common_name: true,
        server_auth: has("serverAuth"),
        client_auth: has("clientAuth"),
        rsa_key_encipherment: true,
    }
}

impl Service {
    /// Signs the certificate of an approved request and records it (with
    /// its sealed key when the profile archives keys); returns its serial.
    pub(super) async fn sign_for(&self, request: &Request) -> Result<String> {
        let profile = self.profile(&request.profile)?;
        let now = self.now();
        let subject = self.subject_of(&request.params).await?;
        let issued = self.sign(profile, &subject, now)?;
        let serial = crate::ca::serial_hex(&issued.serial);
        let key_sealed = match (&subject.key_pkcs8, profile.archive_keys, &self.kek) {
            (Some(key), true, Some(kek)) => Some(
                kek.seal(key, serial.as_bytes())
                    .map_err(|e| Error::internal(e.to_string()))?,
            ),
            _ => None,
        };
        let cert = Certificate {
            id: CertId::random(),
            serial: serial.clone(),
            account_id: crate::model::AccountId(crate::store::service::SERVICE_ACCOUNT.to_owned()),
            order_id: None,
            der: issued.der,
            not_before: issued.not_before.unix_timestamp(),
            not_after: issued.not_after.unix_timestamp(),
            issued_at: now,
            revoked: None,
            common_name: subject
                .common_name
                .or_else(|| subject.ids.first().map(|i| i.value.clone())),
        };
        let meta = ServiceCert {
            serial: serial.clone(),
            entity_id: request.entity_id.clone(),
            profile: request.profile.clone(),
            requester: request.requester.clone(),
            key_sealed,
            auto_renew: subject.auto_renew,
            renewed_to: None,
            request_id: Some(request.id.clone()),
            created_at: now,
        };
        self.store.record_issued(&cert, &meta).await?;
        tracing::info!(serial = %serial, entity = %request.entity_id, profile = %request.profile,
            "service issued");
        Ok(serial)
    }

    /// The key and names of a request: a key generated now for POST
    /// /certs, the CSR's key for an upload; the names checked again by the
    /// identifier policy.
    async fn subject_of(&self, params: &RequestParams) -> Result<Subject> {
        match params {
            RequestParams::Issue {
                names,
                ip_addresses,
                common_name,
                key_type,
                key_size,
                ttl,
                auto_renew,
            } => {
                let spec = KeySpec::parse(key_type, *key_size).map_err(|e| bad(e.to_string()))?;
                // RSA key generation takes up to seconds: off the async workers.
                let key = tokio::task::spawn_blocking(move || keys::generate(spec))
                    .await
                    .map_err(Error::internal)?
                    .map_err(|e| Error::internal(e.to_string()))?;
                Ok(Subject {
                    spki: key.subject_public_key_info(),
                    key_kind: key_kind(spec),
                    key_pkcs8: Some(key.serialize_der()),
                    ids: self.identifiers(names, ip_addresses)?,
                    common_name: common_name.clone(),
                    ttl: *ttl,
                    auto_renew: *auto_renew,
                })
            }
            RequestParams::Csr { csr_pem } => {
                let blocks = pem_blocks(csr_pem, "CERTIFICATE REQUEST")?;
                let (der, _) = blocks
                    .first()
                    .ok_or_else(|| Error::internal("stored CSR without a PEM block"))?;
                let csr = crate::ca::csr::parse_and_verify(der)?;
                let ips: Vec<String> = csr.ip_addrs.iter().map(IpAddr::to_string).collect();
                Ok(Subject {
                    ids: self.identifiers(&csr.dns_names, &ips)?,
                    spki: csr.spki_der,
                    key_kind: csr.key_kind,
                    key_pkcs8: None,
                    common_name: csr.common_name,
                    ttl: None,
                    auto_renew: false,
                })
            }
        }
    }

    /// Signs `subject` under `profile` through the RA: backdated like every
    /// certificate of this CA, for the requested lifetime or the
    /// profile's, with the OCSP and CRL URLs.
    fn sign(
        &self,
        profile: &ServiceProfileConfig,
        subject: &Subject,
        now: Timestamp,
    ) -> Result<IssuedCert> {
        let leaf = leaf_profile(profile);
        // Checked when the request came in; checked again here, the one
        // place every service certificate is signed.
        if leaf.server_auth && subject.ids.is_empty() {
            return Err(bad(
                "a serverAuth certificate needs at least one name or IP address",
            ));
        }
        let longest = secs(profile.validity);
        let lifetime = subject
            .ttl
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX))
            .unwrap_or(longest)
            .min(longest);
        self.ra.issue_certificate(
            &Issuance {
                spki_der: &subject.spki,
                key_kind: subject.key_kind,
                identifiers: &subject.ids,
                subject_cn: subject.common_name.as_deref(),
                validity: Validity {
                    not_before: None,
                    not_after: None,
                    lifetime,
                },
                leaf: &leaf,
                urls: StatusUrls {
                    ocsp: true,
                    crl: true,
                },
                must_staple: false,
            },
            now,
        )
    }
}

/// The public key kind of a generated key.
fn key_kind(spec: KeySpec) -> PublicKeyKind {
    match spec {
        KeySpec::Rsa(bits) => PublicKeyKind::Rsa {
            bits: bits as usize,
        },
        KeySpec::Ec(256) => PublicKeyKind::EcdsaP256,
        KeySpec::Ec(_) => PublicKeyKind::EcdsaP384,
    }
}
