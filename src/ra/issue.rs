//! One road to the CA: every leaf this server signs for a subscriber, an
//! ACME order's (finalize) or the operator service's, goes through
//! [`Ra::issue_certificate`]. The caller says what the certificate needs
//! (key, names, validity window, profile, which status URLs); the RA turns
//! it into the CA's [`LeafRequest`] the same way for both, so the two can
//! no longer drift apart.
//!
//! It also holds the narrow read-only views other layers (the operator
//! service) need of the RA's CA and settings, so nobody reaches through
//! its fields.

use std::sync::Arc;

use crate::ca::{Chain, IssuedCert, LeafProfile, LeafRequest, PublicKeyKind};
use crate::error::{Error, Result};
use crate::model::Timestamp;
use crate::protocol::Identifier;
use crate::revocation::RevocationEvents;

use super::{secs, Ra};

/// When a certificate is valid. Both ends count (RFC 5280 §4.1.2.5): a
/// certificate of lifetime `n` seconds runs from `nb` to `nb + n - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    /// notBefore the subscriber asked for (ACME newOrder's `notBefore`);
    /// `None`: now, backdated by the RA's `backdate` setting.
    pub not_before: Option<Timestamp>,
    /// notAfter the subscriber asked for; `None`: `lifetime` after the
    /// start.
    pub not_after: Option<Timestamp>,
    /// The longest lifetime, in seconds (the profile's validity, or less).
    pub lifetime: i64,
}

/// Which of the CA's status URLs go into the certificate. The AIA
/// caIssuers URL (where the intermediate is served) always does when the
/// server has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusUrls {
    /// AIA OCSP responder URL.
    pub ocsp: bool,
    /// cRLDistributionPoints URL.
    pub crl: bool,
}

/// Everything a certificate needs; checked by the caller (CSR verified,
/// identifiers authorized or policy-checked).
#[derive(Debug, Clone)]
pub(crate) struct Issuance<'a> {
    /// SubjectPublicKeyInfo, DER, in canonical form.
    pub spki_der: &'a [u8],
    /// The kind of that key (it decides the key usages).
    pub key_kind: PublicKeyKind,
    /// DNS names and IP addresses for the subjectAltName, in order.
    pub identifiers: &'a [Identifier],
    /// A subject common name instead of the first DNS name (the operator
    /// service's devices).
    pub subject_cn: Option<&'a str>,
    /// When the certificate is valid.
    pub validity: Validity,
    /// Key usages, extended key usages and the common name rule.
    pub leaf: &'a LeafProfile,
    /// Which status URLs it carries.
    pub urls: StatusUrls,
    /// OCSP Must-Staple (needs `urls.ocsp` and an OCSP URL).
    pub must_staple: bool,
}

impl Validity {
    /// (notBefore, notAfter) at `now` with `backdate` seconds of backdating.
    fn window(self, now: Timestamp, backdate: i64) -> (Timestamp, Timestamp) {
        let last = |nb: Timestamp| nb + self.lifetime - 1;
        match (self.not_before, self.not_after) {
            (None, None) => {
                let nb = now - backdate;
                (nb, last(nb))
            }
            (Some(nb), na) => (nb, na.unwrap_or(last(nb))),
            // Only notAfter asked: backdate, but never beyond the lifetime.
            (None, Some(na)) => ((now - backdate).max(na - self.lifetime + 1), na),
        }
    }
}

fn to_time(t: Timestamp) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t).map_err(Error::internal)
}

impl Ra {
    /// Signs the certificate `req` describes, at `now`. The caller records
    /// it (ACME with its order, the service with its request).
    pub(crate) fn issue_certificate(
        &self,
        req: &Issuance<'_>,
        now: Timestamp,
    ) -> Result<IssuedCert> {
        let (not_before, not_after) = req.validity.window(now, secs(self.settings.backdate));
        self.ca.issue(&LeafRequest {
            spki_der: req.spki_der,
            key_kind: req.key_kind,
            identifiers: req.identifiers,
            not_before: to_time(not_before)?,
            not_after: to_time(not_after)?,
            ca_issuers_url: self.urls.ca_issuers.as_deref(),
            ocsp_url: self.urls.ocsp.as_deref().filter(|_| req.urls.ocsp),
            crl_url: self.urls.crl.as_deref().filter(|_| req.urls.crl),
            profile: req.leaf,
            must_staple: req.must_staple,
            subject_cn: req.subject_cn,
        })
    }

    /// The default chain: the signing intermediate(s) up to its root, as a
    /// download's `ca.pem` or a PKCS#12 bag holds it.
    pub(crate) fn default_chain(&self) -> &Chain {
        &self.ca.chains()[0]
    }

    /// How far back every certificate's notBefore is set.
    pub(crate) fn backdate(&self) -> std::time::Duration {
        self.settings.backdate
    }

    /// The OCSP responder URL written into certificates, if any.
    pub(crate) fn ocsp_url(&self) -> Option<&str> {
        self.urls.ocsp.as_deref()
    }

    /// The channel every revocation is announced on, if any.
    pub(crate) fn revocation_events(&self) -> Option<&Arc<RevocationEvents>> {
        self.revocations.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = 1_000_000;

    fn v(nb: Option<Timestamp>, na: Option<Timestamp>) -> Validity {
        Validity {
            not_before: nb,
            not_after: na,
            lifetime: 100,
        }
    }

    #[test]
    fn windows() {
        // Nothing asked: backdated, the whole lifetime, both ends counted.
        assert_eq!(v(None, None).window(NOW, 60), (NOW - 60, NOW - 60 + 99));
        assert_eq!(v(Some(NOW + 5), None).window(NOW, 60), (NOW + 5, NOW + 104));
        assert_eq!(
            v(Some(NOW + 5), Some(NOW + 50)).window(NOW, 60),
            (NOW + 5, NOW + 50)
        );
        // Only notAfter: backdated unless that would exceed the lifetime.
        assert_eq!(
            v(None, Some(NOW + 10)).window(NOW, 60),
            (NOW - 60, NOW + 10)
        );
        assert_eq!(v(None, Some(NOW + 90)).window(NOW, 60), (NOW - 9, NOW + 90));
    }
}
