//! Console sessions: a random id in an `HttpOnly`, `Secure`,
//! `SameSite=Strict` cookie, the rest on the server. A session holds the
//! caller a service token named at sign-in (never the token), its CSRF
//! token, when it ends, a one-shot message and the download tokens it has
//! asked for (so no download token ever appears in a URL).
//!
//! Bounds: at most `max_sessions` live sessions (expired ones are swept on
//! every sign-in), at most [`MAX_DOWNLOADS`] pending downloads each; the
//! map is keyed by the SHA-256 of the id, so the ids themselves are not
//! kept. Sessions live in this process's memory, like the service's
//! download tokens: a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::service::Caller;
use crate::model::Timestamp;
use crate::service::Format;

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
/// Longest cookie header value looked at.
const MAX_COOKIE_HEADER: usize = 8192;

/// A download token the session asked for, until it is used or expires.
#[derive(Debug, Clone)]
pub(super) struct PendingDownload {
    pub serial: String,
    pub token: String,
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
    pub created: Timestamp,
    pub last_seen: Timestamp,
    pub flash: Option<Flash>,
    pub downloads: Vec<PendingDownload>,
}

/// Sign-in failures.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SessionError {
    /// `max_sessions` are live.
    Full,
}

/// The live sessions.
pub(super) struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    lifetime: i64,
    idle: i64,
    max: usize,
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
        lifetime: std::time::Duration,
        idle: std::time::Duration,
        max: usize,
    ) -> Self {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Sessions {
            map: Mutex::new(HashMap::new()),
            lifetime: secs(lifetime),
            idle: secs(idle),
            max,
        }
    }

    /// Seconds a session lives at most (the cookie's Max-Age).
    pub(super) fn lifetime(&self) -> i64 {
        self.lifetime
    }

    fn live(&self, s: &Session, now: Timestamp) -> bool {
        now < s.created.saturating_add(self.lifetime) && now < s.last_seen.saturating_add(self.idle)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `caller`; returns its id (the cookie value).
    pub(super) fn create(&self, caller: Caller, now: Timestamp) -> Result<String, SessionError> {
        let mut map = self.lock();
        map.retain(|_, s| self.live(s, now));
        if map.len() >= self.max {
            return Err(SessionError::Full);
        }
        let id = random_token();
        map.insert(
            digest(&id),
            Session {
                caller,
                csrf: random_token(),
                created: now,
                last_seen: now,
                flash: None,
                downloads: Vec::new(),
            },
        );
        Ok(id)
    }

    /// The live session of `id`, touched (its idle time starts again), with
    /// its one-shot message taken out. An expired one is removed.
    pub(super) fn get(&self, id: &str, now: Timestamp) -> Option<Session> {
        if id.is_empty() || id.len() > 64 {
            return None;
        }
        let key = digest(id);
        let mut map = self.lock();
        let live = map.get(&key).is_some_and(|s| self.live(s, now));
        if !live {
            map.remove(&key);
            return None;
        }
        let s = map.get_mut(&key)?;
        s.last_seen = now;
        s.downloads.retain(|d| d.expires > now);
        let view = s.clone();
        s.flash = None;
        Some(view)
    }

    /// Ends the session of `id`.
    pub(super) fn remove(&self, id: &str) {
        self.lock().remove(&digest(id));
    }

    /// Sets the message the next page of session `id` shows.
    pub(super) fn flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.lock().get_mut(&digest(id)) {
            s.flash = Some(flash);
        }
    }

    /// Keeps a download token for the session (replacing one for the same
    /// certificate).
    pub(super) fn add_download(&self, id: &str, d: PendingDownload) {
        if let Some(s) = self.lock().get_mut(&digest(id)) {
            s.downloads.retain(|o| o.serial != d.serial);
            if s.downloads.len() >= MAX_DOWNLOADS {
                s.downloads.remove(0);
            }
            s.downloads.push(d);
        }
    }

    /// Takes the session's download token for `serial` out (it is used
    /// once).
    pub(super) fn take_download(&self, id: &str, serial: &str) -> Option<PendingDownload> {
        let mut map = self.lock();
        let s = map.get_mut(&digest(id))?;
        let i = s.downloads.iter().position(|d| d.serial == serial)?;
        Some(s.downloads.remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::service::Role;
    use std::time::Duration;

    fn alice() -> Caller {
        Caller {
            name: "alice".into(),
            role: Role::Requester,
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_lifetime() {
        let s = Sessions::new(Duration::from_secs(1000), Duration::from_secs(100), 10);
        let id = s.create(alice(), 0).unwrap();
        assert!(s.get(&id, 99).is_some());
        // Touched at 99: idle until 199.
        assert!(s.get(&id, 198).is_some());
        assert!(s.get(&id, 298).is_none(), "idle for 100 s");
        let id = s.create(alice(), 0).unwrap();
        for t in (50..1000).step_by(50) {
            assert!(s.get(&id, t).is_some(), "at {t}");
        }
        assert!(s.get(&id, 1000).is_none(), "past its lifetime");
    }

    #[test]
    fn unknown_ids_and_full_tables() {
        let s = Sessions::new(Duration::from_secs(1000), Duration::from_secs(100), 2);
        assert!(s.get("nope", 0).is_none());
        let a = s.create(alice(), 0).unwrap();
        let b = s.create(alice(), 0).unwrap();
        assert_ne!(a, b);
        assert_eq!(s.create(alice(), 0), Err(SessionError::Full));
        // Expired ones are swept to make room.
        assert!(s.create(alice(), 500).is_ok());
        s.remove(&a);
        assert!(s.get(&a, 500).is_none());
    }

    #[test]
    fn flash_is_shown_once_and_downloads_are_taken_once() {
        let s = Sessions::new(Duration::from_secs(1000), Duration::from_secs(100), 10);
        let id = s.create(alice(), 0).unwrap();
        s.flash(&id, Flash::Done("ok".into()));
        assert_eq!(s.get(&id, 1).unwrap().flash, Some(Flash::Done("ok".into())));
        assert_eq!(s.get(&id, 2).unwrap().flash, None);
        let d = |serial: &str| PendingDownload {
            serial: serial.into(),
            token: "t".into(),
            format: Format::Zip,
            expires: 100,
            recovery: false,
        };
        for i in 0..(MAX_DOWNLOADS + 3) {
            s.add_download(&id, d(&format!("{i:02x}")));
        }
        assert_eq!(s.get(&id, 3).unwrap().downloads.len(), MAX_DOWNLOADS);
        assert!(s.take_download(&id, "0a").is_some());
        assert!(s.take_download(&id, "0a").is_none());
        assert!(
            s.take_download(&id, "00").is_none(),
            "the oldest was dropped"
        );
        // Expired downloads are dropped.
        assert!(s.get(&id, 100).unwrap().downloads.is_empty());
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
