//! The delegated OCSP responder (RFC 6960 §4.2.2.2): one certificate and
//! key per issuer for the whole fleet, kept in the shared store, so every
//! instance signs OCSP answers with the same responder and it is renewed
//! once, not once per instance.
//!
//! The instance holding the CRL refresh lease renews the responder ahead
//! of time ([`DelegatedResponder::renew_if_due`]); any instance renews it
//! itself only when the one stored could not outlive an answer it must
//! sign now (the lease holder is gone, or the fleet just started), and a
//! compare-and-swap on the stored certificate lets exactly one renewal
//! stand. The responder's private key is stored sealed (AES-256-GCM)
//! under a key derived with HKDF-SHA256 from the issuer's private key,
//! which every instance holds and the database does not: reading the
//! database does not give the power to sign OCSP answers.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::aead::{self, Aad, Nonce, RandomizedNonceKey, NONCE_LEN};
use aws_lc_rs::{digest, hkdf};
use rcgen::KeyPair;
use time::OffsetDateTime;

use super::ocsp;
use crate::ca::Ca;
use crate::error::{Error, Result};
use crate::model::Timestamp;
use crate::store::shared::{SharedStore, StoredResponder};

/// HKDF salt of the key that seals responder keys.
const SEAL_SALT: &[u8] = b"acme-ca delegated OCSP responder key v1";

/// A delegated responder: its certificate, key and expiry.
pub(super) struct Delegated {
    pub cert: Vec<u8>,
    pub key: KeyPair,
    pub not_after: Timestamp,
}

/// The fleet's delegated responder for this instance's issuer.
pub(super) struct DelegatedResponder {
    shared: Arc<dyn SharedStore>,
    ca: Arc<Ca>,
    /// How long an OCSP answer is valid, seconds.
    answer_lifetime: i64,
    /// The store's name of the issuer: SHA-256 of its certificate, hex.
    issuer_id: String,
    seal_key: RandomizedNonceKey,
    /// The responder this instance signs with, once read or made.
    held: std::sync::Mutex<Option<Arc<Delegated>>>,
    /// One look at the store (and renewal) at a time in this process.
    refreshing: tokio::sync::Mutex<()>,
}

fn crypto(what: &str) -> Error {
    Error::internal(format_args!("delegated OCSP responder: {what}"))
}

impl DelegatedResponder {
    pub(super) fn new(
        shared: Arc<dyn SharedStore>,
        ca: Arc<Ca>,
        answer_lifetime: Duration,
    ) -> Result<DelegatedResponder> {
        let issuer_id = hex(digest::digest(&digest::SHA256, ca.intermediate_der()).as_ref());
        let issuer_key = ca.issuer().key().serialize_der();
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SEAL_SALT).extract(&issuer_key);
        let info = [issuer_id.as_bytes()];
        let okm = prk
            .expand(&info, &aead::AES_256_GCM)
            .map_err(|_| crypto("deriving the sealing key"))?;
        let mut raw = [0u8; 32];
        okm.fill(&mut raw)
            .map_err(|_| crypto("deriving the sealing key"))?;
        let seal_key = RandomizedNonceKey::new(&aead::AES_256_GCM, &raw)
            .map_err(|_| crypto("the sealing key"));
        raw.fill(0);
        let seal_key = seal_key?;
        Ok(DelegatedResponder {
            shared,
            ca,
            answer_lifetime: i64::try_from(answer_lifetime.as_secs()).unwrap_or(i64::MAX),
            issuer_id,
            seal_key,
            held: std::sync::Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    fn held(&self) -> Option<Arc<Delegated>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn hold(&self, d: Delegated) -> Arc<Delegated> {
        let d = Arc::new(d);
        *self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(d.clone());
        d
    }

    /// The responder for an answer signed at `now`: the one held if it
    /// outlives the answer, else the stored one, else a new one.
    pub(super) async fn for_answer(&self, now: Timestamp) -> Result<Arc<Delegated>> {
        let until = now.saturating_add(self.answer_lifetime);
        if let Some(d) = self.held().filter(|d| self.good_until(d.not_after, until)) {
            return Ok(d);
        }
        self.refresh(now, until).await
    }

    /// The lease holder's round: renews half a day before any instance
    /// would have to renew it for an answer.
    pub(super) async fn renew_if_due(&self, now: Timestamp) -> Result<()> {
        let until = now
            .saturating_add(self.answer_lifetime)
            .saturating_add(12 * 3600);
        self.refresh(now, until).await.map(drop)
    }

    /// Whether a responder valid until `not_after` serves until `until`;
    /// one that ends with the issuer is as good as any can be.
    fn good_until(&self, not_after: Timestamp, until: Timestamp) -> bool {
        not_after > until || not_after >= self.ca.intermediate_not_after().unix_timestamp()
    }

    /// A responder good until `until`: the one held, the stored one, or a
    /// new one stored in place of the stored one (if another instance
    /// replaced it first, that one).
    async fn refresh(&self, now: Timestamp, until: Timestamp) -> Result<Arc<Delegated>> {
        let _one = self.refreshing.lock().await;
        if let Some(d) = self.held().filter(|d| self.good_until(d.not_after, until)) {
            return Ok(d);
        }
        let stored = self.shared.ocsp_responder(&self.issuer_id).await?;
        if let Some(s) = stored
            .as_ref()
            .filter(|s| self.good_until(s.not_after, until))
        {
            return Ok(self.hold(self.open(s)?));
        }
        let made = self.make(now)?;
        let record = StoredResponder {
            cert: made.cert.clone(),
            key_sealed: self.seal(&made)?,
            not_after: made.not_after,
        };
        let replacing = stored.as_ref().map(|s| s.cert.as_slice());
        if self
            .shared
            .replace_ocsp_responder(&self.issuer_id, replacing, &record)
            .await?
        {
            tracing::info!(
                not_after = made.not_after,
                "issued a new delegated OCSP responder certificate"
            );
            return Ok(self.hold(made));
        }
        // Another instance stored its own first: sign with that one.
        let winner = self
            .shared
            .ocsp_responder(&self.issuer_id)
            .await?
            .ok_or_else(|| crypto("the stored responder vanished"))?;
        Ok(self.hold(self.open(&winner)?))
    }

    /// A new responder certificate valid for two answer lifetimes plus a
    /// day (never past the issuer): short, since clients do not check its
    /// revocation (ocsp-nocheck).
    fn make(&self, now: Timestamp) -> Result<Delegated> {
        let start = OffsetDateTime::from_unix_timestamp(now)
            .map_err(|e| Error::internal(format_args!("time {now}: {e}")))?;
        let life = time::Duration::seconds(self.answer_lifetime.saturating_mul(2) + 86400);
        let not_after = (start + life).min(self.ca.intermediate_not_after());
        let (cert, key) = ocsp::make_delegated_responder(
            self.ca.issuer(),
            self.ca.intermediate_der(),
            start - time::Duration::hours(1),
            not_after,
        )
        .map_err(|e| Error::internal(format_args!("OCSP responder certificate: {e}")))?;
        Ok(Delegated {
            cert,
            key,
            not_after: not_after.unix_timestamp(),
        })
    }

    /// The responder's PKCS#8 key sealed, bound to its certificate:
    /// nonce || ciphertext || tag.
    fn seal(&self, d: &Delegated) -> Result<Vec<u8>> {
        let mut body = d.key.serialize_der();
        let nonce = self
            .seal_key
            .seal_in_place_append_tag(Aad::from(&d.cert), &mut body)
            .map_err(|_| crypto("sealing the key"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + body.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// A stored responder, its key unsealed.
    fn open(&self, s: &StoredResponder) -> Result<Delegated> {
        if s.key_sealed.len() < NONCE_LEN {
            return Err(crypto("the sealed key is too short"));
        }
        let nonce = Nonce::try_assume_unique_for_key(&s.key_sealed[..NONCE_LEN])
            .map_err(|_| crypto("reading the nonce"))?;
        let mut body = s.key_sealed[NONCE_LEN..].to_vec();
        let plain = self
            .seal_key
            .open_in_place(nonce, Aad::from(&s.cert), &mut body)
            .map_err(|_| crypto("the stored key does not open with this issuer's key"))?;
        let key = KeyPair::try_from(&*plain).map_err(|e| crypto(&format!("stored key: {e}")))?;
        Ok(Delegated {
            cert: s.cert.clone(),
            key,
            not_after: s.not_after,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::CaSettings;

    const DAY: i64 = 86400;
    /// A time well inside the generated CA's validity.
    fn t0() -> Timestamp {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    struct Fleet {
        _dirs: Vec<tempfile::TempDir>,
        a: DelegatedResponder,
        b: DelegatedResponder,
        store: Arc<dyn SharedStore>,
    }

    /// Two instances' responders on one store, with one CA.
    async fn fleet() -> Fleet {
        let ca_dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(Ca::load_or_generate(ca_dir.path(), &CaSettings::default()).unwrap());
        let (store_dir, store) = crate::test_support::temp_store().await;
        let store: Arc<dyn SharedStore> = Arc::new(store);
        let lifetime = Duration::from_secs(4 * DAY as u64);
        let a = DelegatedResponder::new(store.clone(), ca.clone(), lifetime).unwrap();
        let b = DelegatedResponder::new(store.clone(), ca, lifetime).unwrap();
        Fleet {
            _dirs: vec![ca_dir, store_dir],
            a,
            b,
            store,
        }
    }

    #[tokio::test]
    async fn the_fleet_signs_with_one_responder_renewed_once() {
        let f = fleet().await;
        let now = t0();
        let a1 = f.a.for_answer(now).await.unwrap();
        let b1 = f.b.for_answer(now).await.unwrap();
        assert_eq!(a1.cert, b1.cert, "B signs with the responder A stored");
        // Two answer lifetimes plus a day.
        assert!((a1.not_after - now - 9 * DAY).abs() < 3700);
        // Before it is due, the lease holder's round changes nothing.
        f.a.renew_if_due(now + 4 * DAY).await.unwrap();
        assert_eq!(f.a.for_answer(now + 4 * DAY).await.unwrap().cert, a1.cert);
        // Half a day before anyone must renew, the lease holder does.
        let due = a1.not_after - 4 * DAY - 12 * 3600 + 60;
        f.a.renew_if_due(due).await.unwrap();
        let a2 = f.a.for_answer(due).await.unwrap();
        assert_ne!(a2.cert, a1.cert);
        assert_eq!(
            f.store
                .ocsp_responder(&f.a.issuer_id)
                .await
                .unwrap()
                .unwrap()
                .cert,
            a2.cert
        );
        // B keeps its responder while it covers an answer, then reads the
        // renewed one instead of making its own.
        assert_eq!(f.b.for_answer(due).await.unwrap().cert, a1.cert);
        let late = a1.not_after - 4 * DAY;
        assert_eq!(f.b.for_answer(late).await.unwrap().cert, a2.cert);
    }

    #[tokio::test]
    async fn without_the_lease_holder_one_instance_renews() {
        let f = fleet().await;
        let now = t0();
        let first = f.a.for_answer(now).await.unwrap();
        // Nobody renewed ahead: at the last moment both need a new one at
        // once; one is made and stored, and both sign with it.
        let late = first.not_after - 4 * DAY;
        let (a, b) = tokio::join!(f.a.for_answer(late), f.b.for_answer(late));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a.cert, first.cert);
        assert_eq!(a.cert, b.cert);
    }

    #[tokio::test]
    async fn the_stored_key_is_sealed_under_the_issuers_key() {
        let f = fleet().await;
        let d = f.a.for_answer(t0()).await.unwrap();
        let stored = f
            .store
            .ocsp_responder(&f.a.issuer_id)
            .await
            .unwrap()
            .unwrap();
        let pkcs8 = d.key.serialize_der();
        assert!(
            !stored
                .key_sealed
                .windows(pkcs8.len())
                .any(|w| w == pkcs8.as_slice()),
            "the key is not stored in clear"
        );
        assert_eq!(
            f.b.open(&stored).unwrap().key.serialize_der(),
            pkcs8,
            "another instance with the CA's key opens it"
        );
        // Bound to its certificate: under another certificate it does not
        // open.
        let mut moved = stored.clone();
        moved.cert[20] ^= 1;
        assert!(f.a.open(&moved).is_err());
        // Another CA's key does not open it.
        let other_dir = tempfile::tempdir().unwrap();
        let other =
            Arc::new(Ca::load_or_generate(other_dir.path(), &CaSettings::default()).unwrap());
        let stranger =
            DelegatedResponder::new(f.store.clone(), other, Duration::from_secs(3600)).unwrap();
        assert!(stranger.open(&stored).is_err());
    }
}
