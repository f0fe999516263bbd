//! Validation authority: decides whether a challenge is fulfilled.
//!
//! Validation runs asynchronously behind the [`Validator`] trait. A challenge
//! POST reserves a place in a bounded queue, marks the attempt processing,
//! and returns; a dispatcher runs at most `concurrency` validations at once,
//! each under a timeout, and records the outcome with a conditional store
//! update. At start, attempts left processing by a previous run are queued
//! again, so none stays processing forever.
//!
//! With `always_valid` (Pebble's PEBBLE_VA_ALWAYS_VALID) no network is
//! touched and the outcome is recorded before the POST returns.

pub(crate) mod addr;
pub(crate) mod caa;
mod connect;
pub(crate) mod dns;
pub(crate) mod dns01;
pub(crate) mod dns_account01;
pub(crate) mod dns_persist01;
#[cfg(test)]
mod fake;
pub(crate) mod hickory;
pub(crate) mod http01;
pub(crate) mod tlsalpn01;
mod tlsclient;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::Metrics;
use crate::model::{AttemptState, Authz, ChallengeType};
use crate::store::{Store, ValidationResult};

/// What a validator is asked to check.
#[derive(Debug, Clone)]
pub(crate) struct ValidationRequest {
    pub authz: Authz,
    pub kind: ChallengeType,
    /// RFC 8555 §8.1 key authorization for the authorization's token.
    pub key_authorization: String,
    /// The account's URL, for CAA `accounturi` (RFC 8657), the
    /// dns-account-01 label and the dns-persist-01 `accounturi`.
    pub account_uri: String,
}

/// The validators that reach the network, one per challenge type, and the
/// CAA check that a successful validation must also pass (RFC 8659).
pub(crate) struct NetworkValidator {
    pub http01: http01::Http01,
    pub dns01: dns01::Dns01,
    pub tls_alpn01: tlsalpn01::TlsAlpn01,
    pub dns_account01: dns_account01::DnsAccount01,
    pub dns_persist01: dns_persist01::DnsPersist01,
    /// None when CAA checking is switched off in the config.
    pub caa: Option<Arc<caa::CaaChecker>>,
}

impl Validator for NetworkValidator {
    fn validate<'a>(&'a self, req: &'a ValidationRequest) -> ValidationFuture<'a> {
        Box::pin(async move {
            let outcome = match req.kind {
                ChallengeType::Http01 => self.http01.validate(req).await,
                ChallengeType::Dns01 => self.dns01.validate(req).await,
                ChallengeType::TlsAlpn01 => self.tls_alpn01.validate(req).await,
                ChallengeType::DnsAccount01 => self.dns_account01.validate(req).await,
                ChallengeType::DnsPersist01 => self.dns_persist01.validate(req).await,
            };
            match (outcome, &self.caa) {
                (Outcome::Valid { records }, Some(caa)) => {
                    let ident = &req.authz.identifier;
                    match caa
                        .check(ident, req.authz.wildcard, &req.account_uri, req.kind)
                        .await
                    {
                        Ok(()) => Outcome::Valid { records },
                        Err(error) => Outcome::Invalid { error, records },
                    }
                }
                (outcome, _) => outcome,
            }
        })
    }
}

/// A validator's verdict with its validation records (RFC 8555 §8.x).
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Valid {
        records: serde_json::Value,
    },
    Invalid {
        error: Error,
        records: serde_json::Value,
    },
}

/// The future a validator returns.
pub(crate) type ValidationFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// Checks one challenge. Implementations must bound their own I/O; the VA
/// also cancels them after the configured timeout.
pub(crate) trait Validator: Send + Sync + 'static {
    fn validate<'a>(&'a self, req: &'a ValidationRequest) -> ValidationFuture<'a>;
}

/// Accepts every challenge without contacting anything. For development and
/// CI only.
pub(crate) struct AlwaysValid;

impl Validator for AlwaysValid {
    fn validate<'a>(&'a self, req: &'a ValidationRequest) -> ValidationFuture<'a> {
        Box::pin(async move {
            Outcome::Valid {
                records: serde_json::json!([{
                    "hostname": req.authz.identifier.value,
                    "note": "validation skipped: always_valid is set",
                }]),
            }
        })
    }
}

/// Told of every failed validation the VA records from its queue (the
/// rate limiter counts them per account and hostname).
pub(crate) trait FailureObserver: Send + Sync + 'static {
    fn failed<'a>(&'a self, authz: &'a Authz) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Settings of the VA.
#[derive(Debug, Clone)]
pub(crate) struct VaSettings {
    /// Record outcomes before the challenge POST returns (only sensible for
    /// validators that do no I/O, such as [`AlwaysValid`]).
    pub inline: bool,
    pub concurrency: usize,
    pub queue_size: usize,
    pub timeout: Duration,
    /// Each queued validation first waits a random time up to this.
    pub random_delay: Duration,
    pub valid_authz_lifetime: Duration,
    /// Forced failures and shortened lifetimes (docs/CHAOS.md).
    pub chaos: Arc<crate::chaos::Chaos>,
}

struct Job {
    req: ValidationRequest,
}

/// The validation authority.
pub(crate) struct Va {
    store: Arc<dyn Store>,
    validator: Arc<dyn Validator>,
    clock: Arc<dyn Clock>,
    settings: VaSettings,
    queue: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    /// Set once, at assembly (`observe_failures`).
    failures: std::sync::OnceLock<Arc<dyn FailureObserver>>,
}

/// A place reserved in the validation queue.
pub(crate) struct Reservation<'a> {
    permit: Option<mpsc::Permit<'a, Job>>,
}

impl Va {
    /// Creates the VA and starts its dispatcher on the current runtime.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        validator: Arc<dyn Validator>,
        clock: Arc<dyn Clock>,
        settings: VaSettings,
        metrics: Arc<Metrics>,
    ) -> Arc<Va> {
        let (tx, rx) = mpsc::channel(settings.queue_size.max(1));
        let va = Arc::new(Va {
            store,
            validator,
            clock,
            settings,
            queue: tx,
            metrics,
            failures: std::sync::OnceLock::new(),
        });
        tokio::spawn(dispatch(Arc::downgrade(&va), rx));
        va
    }

    /// Reserves a place for one validation, so that a challenge is only
    /// marked processing if it will be validated. Fails with rateLimited
    /// when the queue is full.
    pub(crate) fn reserve(&self) -> Result<Reservation<'_>> {
        if self.settings.inline {
            return Ok(Reservation { permit: None });
        }
        match self.queue.try_reserve() {
            Ok(permit) => Ok(Reservation {
                permit: Some(permit),
            }),
            Err(_) => Err(Error::new(
                ErrorKind::RateLimited,
                "too many validations are waiting; retry shortly",
            )),
        }
    }

    /// Tells `observer` of every failed validation recorded from the queue
    /// from now on (the first observer set stays).
    pub(crate) fn observe_failures(&self, observer: Arc<dyn FailureObserver>) {
        if self.failures.set(observer).is_err() {
            tracing::warn!("the VA already has a failure observer");
        }
    }

    /// Whether outcomes are known before the challenge POST returns.
    pub(crate) fn is_inline(&self) -> bool {
        self.settings.inline
    }

    /// Queues `req` in the reserved place (the attempt is already marked
    /// processing in the store).
    pub(crate) fn submit(&self, reservation: Reservation<'_>, req: ValidationRequest) {
        match reservation.permit {
            Some(permit) => {
                permit.send(Job { req });
                self.metrics.validation_queued();
            }
            None => {
                // An inline VA hands out no permits: the caller records the
                // outcome itself through `validate_now`.
                tracing::error!(authz = %req.authz.id, "submit on an inline VA");
            }
        }
    }

    /// Runs the validator now, under the timeout, and returns what to store.
    pub(crate) async fn validate_now(&self, req: &ValidationRequest) -> ValidationResult {
        let started = std::time::Instant::now();
        let outcome =
            match tokio::time::timeout(self.settings.timeout, self.validator.validate(req)).await {
                Ok(o) => o,
                Err(_) => Outcome::Invalid {
                    error: Error::new(
                        ErrorKind::Connection,
                        format!(
                            "validation of {} did not finish within {:?}",
                            req.authz.identifier.value, self.settings.timeout
                        ),
                    ),
                    records: serde_json::Value::Array(Vec::new()),
                },
            };
        let outcome = match (outcome, self.settings.chaos.validation_failure()) {
            (Outcome::Valid { records }, Some(kind)) => Outcome::Invalid {
                error: Error::new(
                    kind,
                    format!(
                        "chaos: validation of {} failed on purpose (chaos.validation_failure)",
                        req.authz.identifier.value
                    ),
                ),
                records,
            },
            (outcome, _) => outcome,
        };
        let took = started.elapsed();
        log_attempt(req, &outcome, took);
        self.metrics.validation(
            req.kind.as_str(),
            matches!(outcome, Outcome::Valid { .. }),
            took,
        );
        let now = self.clock.now();
        let lifetime = match self.settings.chaos.authz_lifetime() {
            Some(short) => short.min(self.settings.valid_authz_lifetime),
            None => self.settings.valid_authz_lifetime,
        };
        let expires = now + lifetime.as_secs() as i64;
        match outcome {
            Outcome::Valid { records } => ValidationResult {
                state: AttemptState::Valid,
                validated_at: now,
                error: None,
                records: Some(records),
                expires,
            },
            Outcome::Invalid { error, records } => ValidationResult {
                state: AttemptState::Invalid,
                validated_at: now,
                error: Some(crate::error::problem_json(&error)),
                records: Some(records),
                // A failed authorization keeps its expiry: it is invalid
                // whatever the time.
                expires: req.authz.expires,
            },
        }
    }

    /// Queues again the attempts left processing: every one (a previous
    /// run of the only instance left them), or those started before
    /// `started_before` (an instance sharing the database died with them).
    pub(crate) async fn resume(
        &self,
        pending: Vec<Authz>,
        started_before: Option<crate::model::Timestamp>,
        key_authorization: impl Fn(&Authz) -> Option<String>,
        account_uri: impl Fn(&Authz) -> String,
    ) -> Result<()> {
        let mut n = 0;
        for authz in pending {
            let Some(attempt) = &authz.attempt else {
                continue;
            };
            if started_before.is_some_and(|t| attempt.started_at >= t) {
                continue;
            }
            n += 1;
            let kind = attempt.kind;
            let Some(key_authorization) = key_authorization(&authz) else {
                continue;
            };
            let account_uri = account_uri(&authz);
            let req = ValidationRequest {
                authz,
                kind,
                key_authorization,
                account_uri,
            };
            if self.settings.inline {
                self.run(&req).await?;
            } else if self.queue.send(Job { req }).await.is_err() {
                return Err(Error::internal("validation queue closed"));
            } else {
                self.metrics.validation_queued();
            }
        }
        if n > 0 {
            tracing::info!(count = n, "resumed validations left processing");
        }
        Ok(())
    }

    async fn run(&self, req: &ValidationRequest) -> Result<()> {
        let result = self.validate_now(req).await;
        if self.store.finish_challenge(&req.authz.id, &result).await? {
            if result.state == AttemptState::Invalid {
                self.metrics.order_invalid();
                if let Some(observer) = self.failures.get() {
                    observer.failed(&req.authz).await;
                }
            }
        } else {
            tracing::debug!(authz = %req.authz.id, "validation outcome not recorded: attempt no longer processing");
        }
        Ok(())
    }

    /// Runs a job taken from the queue, counted as running meanwhile.
    async fn run_queued(&self, req: &ValidationRequest) {
        self.metrics.validation_started();
        if let Err(e) = self.run(req).await {
            tracing::warn!(authz = %req.authz.id, error = %e, "recording validation failed");
        }
        self.metrics.validation_finished();
    }

    /// Counts an outcome the RA recorded itself (an inline VA's): a failed
    /// validation makes its order invalid.
    pub(crate) fn recorded_inline(&self, result: &ValidationResult) {
        if result.state == AttemptState::Invalid {
            self.metrics.order_invalid();
        }
    }
}

/// One log line per validation attempt, as Pebble writes, so that users can
/// debug their clients from the log: identifier, challenge type, outcome
/// (with the problem), the address last used and the duration.
fn log_attempt(req: &ValidationRequest, outcome: &Outcome, took: Duration) {
    let records = match outcome {
        Outcome::Valid { records } | Outcome::Invalid { records, .. } => records,
    };
    let address = records
        .as_array()
        .and_then(|r| r.last())
        .and_then(|r| r.get("addressUsed"))
        .and_then(|a| a.as_str())
        .unwrap_or("-");
    let identifier = &req.authz.identifier.value;
    let kind = req.kind.as_str();
    let ms = took.as_millis();
    match outcome {
        Outcome::Valid { .. } => {
            tracing::info!(%identifier, challenge = kind, %address, ms, "validation: valid");
        }
        Outcome::Invalid { error, .. } => tracing::info!(
            %identifier,
            challenge = kind,
            %address,
            ms,
            problem = error.kind.acme_type(),
            detail = %error.detail,
            "validation: invalid"
        ),
    }
}

async fn dispatch(va: std::sync::Weak<Va>, mut rx: mpsc::Receiver<Job>) {
    let limit = match va.upgrade() {
        Some(v) => v.settings.concurrency,
        None => return,
    };
    let slots = Arc::new(Semaphore::new(limit));
    let queue_size = match va.upgrade() {
        Some(v) => v.settings.queue_size.max(1),
        None => return,
    };
    // Jobs waiting out their random delay, at most a queue's worth: beyond,
    // the channel fills and challenge POSTs get rateLimited.
    let waiting = Arc::new(Semaphore::new(queue_size));
    while let Some(job) = rx.recv().await {
        let Some(va) = va.upgrade() else { return };
        let delay = va.settings.random_delay;
        if !delay.is_zero() {
            // Waiting happens outside the concurrency slots: a delayed job
            // holds no slot until it runs.
            let Ok(wait_slot) = waiting.clone().acquire_owned().await else {
                return;
            };
            let slots = slots.clone();
            tokio::spawn(async move {
                let mut b = [0u8; 8];
                crate::rand::fill(&mut b);
                // Under `delay`, as Pebble's rand.Intn(N) seconds.
                let ms = u64::from_le_bytes(b) % (delay.as_millis() as u64).max(1);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                drop(wait_slot);
                let Ok(slot) = slots.acquire_owned().await else {
                    return;
                };
                va.run_queued(&job.req).await;
                drop(slot);
            });
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            va.run_queued(&job.req).await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::model::{Account, AccountId, AccountStatus, AuthzId, AuthzState, Order, OrderId};
    use crate::protocol::Identifier;

    /// Counts the validations it is asked for and says valid.
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Validator for Counting {
        fn validate<'a>(&'a self, _req: &'a ValidationRequest) -> ValidationFuture<'a> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async {
                Outcome::Valid {
                    records: serde_json::json!([]),
                }
            })
        }
    }

    /// An attempt a previous run left processing is validated again at start.
    #[tokio::test]
    async fn processing_attempts_are_resumed() {
        resume_with_delay(Duration::ZERO).await;
    }

    /// With a random delay (Pebble's VA sleep), the validation still runs.
    #[tokio::test]
    async fn delayed_validations_run() {
        resume_with_delay(Duration::from_millis(300)).await;
    }

    async fn resume_with_delay(random_delay: Duration) {
        let (_dir, store) = crate::test_support::temp_store().await;
        let store: Arc<dyn Store> = Arc::new(store);
        let account = Account {
            id: AccountId("acct".into()),
            status: AccountStatus::Valid,
            jwk: "{}".into(),
            thumbprint: "t".into(),
            contact: vec![],
            tos_agreed: true,
            created_at: 1,
        };
        store.create_account(&account, None).await.unwrap();
        let authz = Authz {
            id: AuthzId("a1".into()),
            account_id: account.id.clone(),
            identifier: Identifier::dns("example.com"),
            wildcard: false,
            state: AuthzState::Pending,
            expires: 1_000_000,
            token: "tok".into(),
            offered: ChallengeType::ALL.to_vec(),
            attempt: None,
            created_at: 1,
        };
        let order = Order {
            id: OrderId("o1".into()),
            account_id: account.id.clone(),
            identifiers: vec![Identifier::dns("example.com")],
            authz_ids: vec![authz.id.clone()],
            expires: 1_000_000,
            not_before: None,
            not_after: None,
            processing_until: None,
            cert_id: None,
            error: None,
            created_at: 1,
            profile: "classic".into(),
            replaces: None,
        };
        store
            .create_order(&order, std::slice::from_ref(&authz), None)
            .await
            .unwrap();
        assert!(store
            .start_challenge(&authz.id, ChallengeType::Http01, 10, None)
            .await
            .unwrap());

        // A new VA (as after a restart) picks it up.
        let validator = Arc::new(Counting(Default::default()));
        let va = Va::start(
            store.clone(),
            validator.clone(),
            Arc::new(FakeClock::new(20)),
            VaSettings {
                inline: false,
                concurrency: 2,
                queue_size: 8,
                timeout: Duration::from_secs(5),
                random_delay,
                valid_authz_lifetime: Duration::from_secs(100),
                chaos: std::sync::Arc::new(crate::chaos::Chaos::off()),
            },
            Arc::new(Metrics::new()),
        );
        let pending = store.authzs_processing().await.unwrap();
        va.resume(
            pending,
            None,
            |_| Some("ka".into()),
            |_| "https://ca.test/acme/acct/acct".into(),
        )
        .await
        .unwrap();
        for _ in 0..300 {
            let a = store.authz_by_id(&authz.id).await.unwrap().unwrap();
            if a.state == AuthzState::Valid {
                assert_eq!(validator.0.load(std::sync::atomic::Ordering::SeqCst), 1);
                assert_eq!(a.expires, 120);
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the attempt left processing was not validated again");
    }
}
