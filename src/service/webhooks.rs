//! Webhooks: each renewal made through the service and every revocation of
//! the CA is announced to the configured URLs as a JSON event, signed with
//! HMAC-SHA256
//! (`X-Acme-Ca-Signature: sha256=<hex>`), and retried with exponential
//! backoff. Deliveries are rows in the store, so they survive a restart
//! and their failures are visible through the API.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, WebhookOutcome};
use crate::model::service::Delivery;
use crate::model::Timestamp;
use crate::store::service::ServiceStore;
use crate::store::shared::JobLease;

/// Time allowed for one delivery attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between attempts.
const MAX_BACKOFF_SECS: i64 = 3600;
/// Deliveries attempted per round.
const ROUND: u32 = 32;

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-acme-ca-signature";

/// Sends events to the configured webhooks.
pub(crate) struct Notifier {
    store: Arc<dyn ServiceStore>,
    clock: Arc<dyn Clock>,
    urls: Vec<String>,
    key: Option<aws_lc_rs::hmac::Key>,
    max_attempts: u32,
    client: reqwest::Client,
    wake: Notify,
    metrics: Arc<Metrics>,
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `key`.
pub(crate) fn signature(key: &aws_lc_rs::hmac::Key, body: &[u8]) -> String {
    let tag = aws_lc_rs::hmac::sign(key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Seconds to wait after the `attempts`-th failed attempt: 2, 4, 8, … up
/// to an hour.
pub(crate) fn backoff(attempts: u32) -> i64 {
    2i64.saturating_pow(attempts.min(20)).min(MAX_BACKOFF_SECS)
}

impl Notifier {
    pub(crate) fn new(
        store: Arc<dyn ServiceStore>,
        clock: Arc<dyn Clock>,
        urls: Vec<String>,
        secret: Option<&[u8]>,
        max_attempts: u32,
        metrics: Arc<Metrics>,
    ) -> Result<Notifier> {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal(format_args!("webhook client: {e}")))?;
        Ok(Notifier {
            store,
            clock,
            urls,
            key: secret.map(|s| aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, s)),
            max_attempts,
            client,
            wake: Notify::new(),
            metrics,
        })
    }

    /// Queues `event_type` with `data` for every URL.
    pub(crate) async fn announce(&self, event_type: &str, data: Value) -> Result<()> {
        if self.urls.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let mut id = [0u8; 12];
        crate::rand::fill(&mut id);
        let event_id = crate::jose::b64::encode(id);
        let body = json!({
            "id": event_id,
            "type": event_type,
            "created_at": crate::clock::rfc3339(now),
            "data": data,
        })
        .to_string();
        let deliveries: Vec<Delivery> = self
            .urls
            .iter()
            .enumerate()
            .map(|(i, url)| Delivery {
                id: format!("{event_id}-{i}"),
                url: url.clone(),
                event_type: event_type.to_owned(),
                body: body.clone(),
                status: "pending".into(),
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                created_at: now,
            })
            .collect();
        self.store.insert_deliveries(&deliveries).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Attempts the deliveries that are due; returns how many were tried.
    pub(crate) async fn deliver_due(&self) -> Result<usize> {
        let now = self.clock.now();
        let due = self.store.due_deliveries(now, ROUND).await?;
        // Concurrently: a slow receiver does not hold up the others.
        let outcomes = futures_util::future::join_all(due.iter().map(|d| self.attempt(d))).await;
        for (d, outcome) in due.iter().zip(outcomes) {
            let attempts = d.attempts + 1;
            match outcome {
                Ok(()) => {
                    self.metrics.webhook_delivery(WebhookOutcome::Delivered);
                    self.store.record_attempt(&d.id, true, None, None).await?
                }
                Err(why) => {
                    let next: Option<Timestamp> = (attempts < self.max_attempts)
                        .then(|| self.clock.now() + backoff(attempts));
                    self.metrics.webhook_delivery(if next.is_some() {
                        WebhookOutcome::Retry
                    } else {
                        WebhookOutcome::Failed
                    });
                    if next.is_none() {
                        tracing::warn!(delivery = %d.id, url = %d.url, error = %why,
                            "webhook delivery failed for good");
                    }
                    self.store
                        .record_attempt(&d.id, false, Some(&why), next)
                        .await?;
                }
            }
        }
        Ok(due.len())
    }

    async fn attempt(&self, d: &Delivery) -> std::result::Result<(), String> {
        let mut req = self
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .body(d.body.clone());
        if let Some(key) = &self.key {
            req = req.header(SIGNATURE_HEADER, signature(key, d.body.as_bytes()));
        }
        let resp = req.send().await.map_err(|e| {
            let mut s = e.to_string();
            s.truncate(300);
            s
        })?;
        let status = resp.status();
        // The answer's body is not read: only the status matters.
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {status}"))
        }
    }

    /// Delivers in the background: at once after an announcement, and every
    /// second for retries that fall due.
    /// Delivers due webhooks for as long as the process runs, while this
    /// instance holds `lease` (one instance delivers for the fleet).
    pub(crate) fn spawn(self: &Arc<Self>, lease: JobLease) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if !lease.hold().await {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                match this.deliver_due().await {
                    Ok(n) if n as u32 == ROUND => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook deliveries"),
                }
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), 2);
        assert_eq!(backoff(2), 4);
        assert_eq!(backoff(5), 32);
        assert_eq!(backoff(12), 3600);
        assert_eq!(backoff(40), 3600);
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
