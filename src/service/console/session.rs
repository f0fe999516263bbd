//! Console sessions: a random id in an `HttpOnly`, `Secure`,
//! `SameSite=Strict` cookie, the rest in the database the instances share
//! ([`SharedStore`]), so any instance behind a plain round-robin load
//! balancer serves any browser and a restart signs no one out. A session
//! holds the caller a service token named at sign-in (never the token), its
//! CSRF token, when it ends, a one-shot message and the download tokens it
//! has asked for (so no download token ever appears in a URL).
//!
//! The database never sees a session id: rows are keyed by its SHA-256.
//! Download tokens are bearer secrets, so each is sealed (AES-256-GCM, the
//! certificate serial as additional data) under a key derived from the
//! session id, HMAC-SHA256(id, "console-download"): whoever reads the
//! database cannot use them, and only the browser holding the cookie can
//! have them opened.
//!
//! Bounds: at most `max_sessions` live sessions (expired ones are swept on
//! every sign-in), at most [`MAX_DOWNLOADS`] pending downloads each, a
//! one-shot message of at most [`MAX_FLASH`] bytes; ids longer than 64
//! characters are not looked up.

use std::sync::Arc;

use aws_lc_rs::hmac;

use crate::error::{Error, Result};
use crate::model::service::Caller;
use crate::model::Timestamp;
use crate::service::keys::Kek;
use crate::service::Format;
use crate::store::shared::{SessionLimits, SharedStore, StoredDownload, StoredFlash};

use super::html::Flash;

/// The session cookie. The `__Host-` prefix makes browsers refuse it
/// unless it is `Secure`, has `Path=/` and no `Domain`: no other host or
/// plain-HTTP page can set or overwrite it.
pub(super) const COOKIE: &str = "__Host-acme-ca-console";
/// The pre-session cookie of the sign-in form (double-submit CSRF check:
/// a site cannot sign a browser in under its own token).
pub(super) const SIGNIN_COOKIE: &str = "__Host-acme-ca-signin";
/// Pending downloads one session keeps (oldest dropped first).
pub(super) const MAX_DOWNLOADS: usize = 8;
/// Longest one-shot message kept, in bytes (longer ones are cut).
pub(super) const MAX_FLASH: usize = 2048;
/// Longest cookie header value looked at.
const MAX_COOKIE_HEADER: usize = 8192;
/// Longest session id looked up (ids are 43 characters).
const MAX_ID: usize = 64;
/// What the key that seals a session's download tokens is derived for.
const DOWNLOAD_KEY_LABEL: &[u8] = b"console-download";

/// A download the session asked for, until it is used or expires (its
/// token stays sealed in the database until it is taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingDownload {
    pub serial: String,
    pub format: Format,
    pub expires: Timestamp,
    /// Whether it carries a key recovery.
    pub recovery: bool,
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub caller: Caller,
    /// Synchronizer token: every state-changing form carries it.
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Unexpired, oldest first.
    pub downloads: Vec<PendingDownload>,
}

/// The sessions, in the shared store.
pub(super) struct Sessions {
    store: Arc<dyn SharedStore>,
    limits: SessionLimits,
}

/// 32 random bytes, base64url: a session id or CSRF token.
pub(super) fn random_token() -> String {
    let mut raw = [0u8; 32];
    crate::rand::fill(&mut raw);
    crate::jose::b64::encode(raw)
}

fn digest(id: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The key that seals session `id`'s download tokens: HMAC-SHA256 keyed
/// with the id (which only the browser and this request know) over a fixed
/// label, as an AES-256-GCM key.
fn download_key(id: &str) -> Result<Kek> {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, id.as_bytes()),
        DOWNLOAD_KEY_LABEL,
    );
    let bytes: &[u8; 32] = tag
        .as_ref()
        .try_into()
        .map_err(|_| Error::internal("HMAC-SHA256 is not 32 bytes"))?;
    Kek::from_bytes(bytes).map_err(|e| Error::internal(format_args!("session download key: {e}")))
}

/// Seals a download token for session `id`, bound to `serial`.
fn seal_token(id: &str, serial: &str, token: &str) -> Result<Vec<u8>> {
    download_key(id)?
        .seal(token.as_bytes(), serial.as_bytes())
        .map_err(|e| Error::internal(format_args!("sealing a download token: {e}")))
}

/// Opens a token [`seal_token`] sealed for the same `id` and `serial`.
fn open_token(id: &str, serial: &str, sealed: &[u8]) -> Result<String> {
    let plain = download_key(id)?
        .open(sealed, serial.as_bytes())
        .map_err(|e| Error::internal(format_args!("opening a download token: {e}")))?;
    String::from_utf8(plain).map_err(|_| Error::internal("a download token is not text"))
}

/// `text` cut to at most [`MAX_FLASH`] bytes, on a character boundary.
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_FLASH {
        return text;
    }
    let mut end = MAX_FLASH;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Equal strings, compared in constant time (for CSRF tokens).
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The value of cookie `name` in a `Cookie` header (RFC 6265 §5.4).
pub(super) fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    if header.len() > MAX_COOKIE_HEADER {
        return None;
    }
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v.trim_matches('"'))
    })
}

/// `Set-Cookie` for `name` = `value`, living `max_age` seconds (0
/// deletes it).
pub(super) fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict")
}

impl Sessions {
    pub(super) fn new(
        store: Arc<dyn SharedStore>,
        lifetime: std::time::Duration,
        idle: std::time::Duration,
        max: usize,
    ) -> Self {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Sessions {
            store,
            limits: SessionLimits {
                lifetime: secs(lifetime),
                idle: secs(idle),
                max: u64::try_from(max).unwrap_or(u64::MAX),
            },
        }
    }

    /// Seconds a session lives at most (the cookie's Max-Age).
    pub(super) fn lifetime(&self) -> i64 {
        self.limits.lifetime
    }

    /// A new session for `caller`; its id (the cookie value), or None when
    /// `max_sessions` are live.
    pub(super) async fn create(&self, caller: &Caller, now: Timestamp) -> Result<Option<String>> {
        let id = random_token();
        let created = self
            .store
            .create_session(&digest(&id), caller, &random_token(), now, self.limits)
            .await?;
        Ok(created.then_some(id))
    }

    /// The live session of `id`, touched (its idle time starts again), with
    /// its one-shot message taken out (shown once, whichever instance
    /// serves the next page). An expired one is removed.
    pub(super) async fn get(&self, id: &str, now: Timestamp) -> Result<Option<Session>> {
        if id.is_empty() || id.len() > MAX_ID {
            return Ok(None);
        }
        let Some(s) = self.store.session(&digest(id), now, self.limits).await? else {
            return Ok(None);
        };
        let downloads = s
            .downloads
            .into_iter()
            .map(|d| {
                Ok(PendingDownload {
                    format: Format::from_stored(&d.format)?,
                    serial: d.serial,
                    expires: d.expires,
                    recovery: d.recovery,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Session {
            caller: s.caller,
            csrf: s.csrf,
            flash: s.flash.map(|f| {
                if f.failed {
                    Flash::Failed(f.text)
                } else {
                    Flash::Done(f.text)
                }
            }),
            downloads,
        }))
    }

    /// Ends the session of `id` (and its pending downloads).
    pub(super) async fn remove(&self, id: &str) -> Result<()> {
        if id.is_empty() || id.len() > MAX_ID {
            return Ok(());
        }
        self.store.remove_session(&digest(id)).await
    }

    /// Sets the message the next page of session `id` shows.
    pub(super) async fn flash(&self, id: &str, flash: Flash) -> Result<()> {
        let stored = match &flash {
            Flash::Done(t) => StoredFlash {
                failed: false,
                text: bounded(t).to_owned(),
            },
            Flash::Failed(t) => StoredFlash {
                failed: true,
                text: bounded(t).to_owned(),
            },
        };
        self.store.set_session_flash(&digest(id), &stored).await
    }

    /// Keeps download `d` with its `token` for the session (replacing one
    /// for the same certificate; the oldest goes beyond [`MAX_DOWNLOADS`]).
    /// The token is stored sealed under the session's download key.
    pub(super) async fn add_download(
        &self,
        id: &str,
        d: &PendingDownload,
        token: &str,
        now: Timestamp,
    ) -> Result<()> {
        let stored = StoredDownload {
            serial: d.serial.clone(),
            format: d.format.stored().to_owned(),
            expires: d.expires,
            recovery: d.recovery,
            token_sealed: seal_token(id, &d.serial, token)?,
        };
        self.store
            .add_session_download(&digest(id), &stored, now, MAX_DOWNLOADS as u64)
            .await
            .map(drop)
    }

    /// Takes the session's download for `serial` out, with its token
    /// opened: it is used once, even by concurrent requests.
    pub(super) async fn take_download(
        &self,
        id: &str,
        serial: &str,
        now: Timestamp,
    ) -> Result<Option<(PendingDownload, String)>> {
        let Some(d) = self
            .store
            .take_session_download(&digest(id), serial, now)
            .await?
        else {
            return Ok(None);
        };
        let token = open_token(id, &d.serial, &d.token_sealed)?;
        let pending = PendingDownload {
            format: Format::from_stored(&d.format)?,
            serial: d.serial,
            expires: d.expires,
            recovery: d.recovery,
        };
        Ok(Some((pending, token)))
    }
}

#[cfg(test)]
mod tests {
    //! The console's side of sessions: ids, sealing, messages. What the
    //! store guarantees (expiry, the bound, a message and a download taken
    //! once under concurrency) is checked on every backend by
    //! src/store/conformance/shared.rs.
    use super::*;
    use crate::model::service::Role;
    use std::time::Duration;

    fn alice() -> Caller {
        Caller {
            name: "alice".into(),
            role: Role::Requester,
        }
    }

    async fn sessions(max: usize) -> (tempfile::TempDir, Sessions) {
        let (dir, store) = crate::test_support::temp_store().await;
        let s = Sessions::new(
            Arc::new(store),
            Duration::from_secs(1000),
            Duration::from_secs(100),
            max,
        );
        (dir, s)
    }

    fn zip(serial: &str, expires: Timestamp) -> PendingDownload {
        PendingDownload {
            serial: serial.into(),
            format: Format::Zip,
            expires,
            recovery: false,
        }
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_and_at_their_lifetime() {
        let (_dir, s) = sessions(10).await;
        let id = s.create(&alice(), 0).await.unwrap().unwrap();
        assert_eq!(s.get(&id, 99).await.unwrap().unwrap().caller, alice());
        // Touched at 99: idle until 199.
        assert!(s.get(&id, 198).await.unwrap().is_some());
        assert!(s.get(&id, 298).await.unwrap().is_none(), "idle for 100 s");
        let id = s.create(&alice(), 0).await.unwrap().unwrap();
        for t in (50..1000).step_by(50) {
            assert!(s.get(&id, t).await.unwrap().is_some(), "at {t}");
        }
        assert!(
            s.get(&id, 1000).await.unwrap().is_none(),
            "past its lifetime"
        );
    }

    #[tokio::test]
    async fn ids_are_random_and_bounded_and_tables_are_full_at_max() {
        let (_dir, s) = sessions(2).await;
        assert!(s.get("nope", 0).await.unwrap().is_none());
        assert!(s.get("", 0).await.unwrap().is_none());
        assert!(s.get(&"a".repeat(65), 0).await.unwrap().is_none());
        let a = s.create(&alice(), 0).await.unwrap().unwrap();
        let b = s.create(&alice(), 0).await.unwrap().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let csrf_a = s.get(&a, 1).await.unwrap().unwrap().csrf;
        let csrf_b = s.get(&b, 1).await.unwrap().unwrap().csrf;
        assert_ne!(csrf_a, csrf_b);
        assert!(!same_secret(&csrf_a, &csrf_b));
        assert_eq!(s.create(&alice(), 1).await.unwrap(), None, "full");
        // Expired ones are swept to make room.
        assert!(s.create(&alice(), 500).await.unwrap().is_some());
        s.remove(&a).await.unwrap();
        assert!(s.get(&a, 500).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn flash_is_shown_once_and_bounded() {
        let (_dir, s) = sessions(10).await;
        let id = s.create(&alice(), 0).await.unwrap().unwrap();
        s.flash(&id, Flash::Done("ok".into())).await.unwrap();
        assert_eq!(
            s.get(&id, 1).await.unwrap().unwrap().flash,
            Some(Flash::Done("ok".into()))
        );
        assert_eq!(s.get(&id, 2).await.unwrap().unwrap().flash, None);
        // Cut to MAX_FLASH bytes, never inside a character.
        let long = "é".repeat(MAX_FLASH);
        s.flash(&id, Flash::Failed(long)).await.unwrap();
        let Some(Flash::Failed(text)) = s.get(&id, 3).await.unwrap().unwrap().flash else {
            panic!("the failure message is kept");
        };
        assert_eq!(text, "é".repeat(MAX_FLASH / 2));
    }

    #[tokio::test]
    async fn downloads_are_sealed_under_the_session_id_and_taken_once() {
        let (dir, s) = sessions(10).await;
        let id = s.create(&alice(), 0).await.unwrap().unwrap();
        let token = "download-token-0123456789abcdef";
        s.add_download(&id, &zip("0a", 100), token, 1)
            .await
            .unwrap();
        let mut p12 = zip("0b", 100);
        p12.format = Format::Pkcs12;
        p12.recovery = true;
        s.add_download(&id, &p12, "other-token", 1).await.unwrap();
        let got = s.get(&id, 2).await.unwrap().unwrap();
        assert_eq!(got.downloads, vec![zip("0a", 100), p12.clone()]);

        // What the database holds opens under no other id or serial.
        let stored = s
            .store
            .session(&digest(&id), 3, s.limits)
            .await
            .unwrap()
            .unwrap()
            .downloads;
        let sealed = &stored[0].token_sealed;
        assert!(!sealed.windows(token.len()).any(|w| w == token.as_bytes()));
        assert_eq!(open_token(&id, "0a", sealed).unwrap(), token);
        assert!(open_token(&random_token(), "0a", sealed).is_err());
        assert!(open_token(&id, "0b", sealed).is_err());
        // Nor anywhere in the database file.
        drop(stored);
        let files = std::fs::read_dir(dir.path()).unwrap();
        for f in files {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
        }

        // Another session cannot take it; its own takes it once.
        let other = s.create(&alice(), 0).await.unwrap().unwrap();
        assert_eq!(s.take_download(&other, "0a", 4).await.unwrap(), None);
        assert_eq!(
            s.take_download(&id, "0a", 4).await.unwrap(),
            Some((zip("0a", 100), token.to_owned()))
        );
        assert_eq!(s.take_download(&id, "0a", 4).await.unwrap(), None);
        assert_eq!(
            s.take_download(&id, "0b", 4).await.unwrap(),
            Some((p12, "other-token".to_owned()))
        );
        // Signing out takes pending downloads with it.
        s.add_download(&id, &zip("0c", 100), token, 5)
            .await
            .unwrap();
        s.remove(&id).await.unwrap();
        assert_eq!(s.take_download(&id, "0c", 6).await.unwrap(), None);
    }

    #[test]
    fn cookies() {
        let h = "a=1; __Host-acme-ca-console=abc; b=\"2\"";
        assert_eq!(cookie_value(h, COOKIE), Some("abc"));
        assert_eq!(cookie_value(h, "b"), Some("2"));
        assert_eq!(cookie_value(h, "c"), None);
        let c = set_cookie(COOKIE, "x", 60);
        for part in [
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!c.contains("Domain"));
    }
}
