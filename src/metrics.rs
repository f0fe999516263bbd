//! Prometheus metrics: what the server counts, and the text it serves on
//! `GET /metrics` (docs/OPERATIONS.md lists every metric).
//!
//! One [`Metrics`] is made by `server` and handed to each component that
//! counts something (an `Arc`, like the store or the clock): there is no
//! global registry. This module is a leaf: it imports nothing of the crate,
//! so every layer may import it.
//!
//! Cost on the hot path: a counter is one atomic add. Metrics whose labels
//! are a small fixed set keep a handle per label value, made here, so
//! counting does not look anything up; labelled families (HTTP route and
//! status, problem type, challenge type) take a short read lock and a hash
//! of labels that borrow static strings or the router's shared route
//! template, so nothing is allocated per request once a label set has been
//! seen. Memory is bounded by the label values, which are all fixed sets:
//! routes are the router's templates (never a raw path), statuses are HTTP
//! codes, problem types are RFC 8555's.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::extract::MatchedPath;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::encode`]'s text (Prometheus text
/// format 0.0.4).
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The plain-HTTP and HTTPS listeners of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Listener {
    /// The HTTPS ACME listener.
    Acme,
    /// The plain-HTTP status listener (CRL, OCSP, issuer, metrics, health).
    Status,
    /// The operator service's REST API.
    Service,
    /// Pebble's management interface.
    Management,
    /// The listener of `[metrics] listen`.
    Metrics,
}

impl Listener {
    /// Every listener, in the order of [`Listener::index`].
    pub(crate) const ALL: [Listener; 5] = [
        Listener::Acme,
        Listener::Status,
        Listener::Service,
        Listener::Management,
        Listener::Metrics,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Listener::Acme => "acme",
            Listener::Status => "status",
            Listener::Service => "service",
            Listener::Management => "management",
            Listener::Metrics => "metrics",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl EncodeLabelValue for Listener {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// A route label: the template the router matched (`/acme/order/{id}`),
/// shared with the router, or a fixed name for requests no route matched.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    Matched(MatchedPath),
    Fixed(&'static str),
}

impl Route {
    /// Requests that matched no route (the router's fallback).
    pub(crate) const UNMATCHED: Route = Route::Fixed("unmatched");

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Route::Matched(m) => m.as_str(),
            Route::Fixed(s) => s,
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Route) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    listener: Listener,
    route: Route,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    listener: Listener,
    route: Route,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ValidationLabels {
    challenge: &'static str,
    outcome: &'static str,
}

/// One label with a static value.
type One = [(&'static str, &'static str); 1];

/// How a finalize ended, for [`Metrics::finalized`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FinalizeOutcome {
    /// A certificate was issued.
    Issued,
    /// The request was refused or failed (order not ready, bad CSR, …).
    Refused,
}

/// What became of an OCSP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OcspOutcome {
    /// A signed answer; every certificate asked about is good.
    Good,
    /// A signed answer saying (at least one certificate) revoked.
    Revoked,
    /// A signed answer saying (at least one certificate) unknown.
    Unknown,
    Malformed,
    Unauthorized,
    InternalError,
}

impl OcspOutcome {
    const ALL: [OcspOutcome; 6] = [
        OcspOutcome::Good,
        OcspOutcome::Revoked,
        OcspOutcome::Unknown,
        OcspOutcome::Malformed,
        OcspOutcome::Unauthorized,
        OcspOutcome::InternalError,
    ];

    fn as_str(self) -> &'static str {
        match self {
            OcspOutcome::Good => "good",
            OcspOutcome::Revoked => "revoked",
            OcspOutcome::Unknown => "unknown",
            OcspOutcome::Malformed => "malformed",
            OcspOutcome::Unauthorized => "unauthorized",
            OcspOutcome::InternalError => "internal_error",
        }
    }
}

/// Why the server closed a connection on its own, for
/// [`Metrics::connection_closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionClosed {
    /// Its client address already held `max_connections_per_client`
    /// connections on the listener: closed at accept.
    ClientLimit,
    /// No TLS handshake within `handshake_timeout`.
    HandshakeTimeout,
    /// No progress for `idle_timeout`: no request started, or none of a
    /// request in progress read or written.
    Idle,
}

impl ConnectionClosed {
    fn as_str(self) -> &'static str {
        match self {
            ConnectionClosed::ClientLimit => "client_limit",
            ConnectionClosed::HandshakeTimeout => "handshake_timeout",
            ConnectionClosed::Idle => "idle",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClosedLabels {
    listener: Listener,
    reason: &'static str,
}

/// What became of one webhook delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebhookOutcome {
    Delivered,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Failed for the last time.
    Failed,
}

/// Seconds of an HTTP request: 1 ms to 10 s.
const REQUEST_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Seconds of a validation (network round trips, DNS, redirects): 10 ms to
/// 60 s.
const VALIDATION_BUCKETS: [f64; 11] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];
/// Ops in one store batch: 1 to the writer's cap of 64.
const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

const NOT_CONFIGURED: u8 = 0;
const DOWN: u8 = 1;
const UP: u8 = 2;

/// Every metric of the process, and the registry that encodes them.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    acme: AcmeMetrics,
    va: VaMetrics,
    store: StoreMetrics,
    status: StatusMetrics,
    process: ProcessMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under the `acme_ca_` prefix, by
    /// subsystem (the order of the `/metrics` text).
    pub(crate) fn new() -> Metrics {
        let mut r = Registry::with_prefix("acme_ca");
        let http = HttpMetrics::register(&mut r);
        let acme = AcmeMetrics::register(&mut r);
        let va = VaMetrics::register(&mut r);
        let store = StoreMetrics::register(&mut r);
        let status = StatusMetrics::register(&mut r);
        let process = ProcessMetrics::register(&mut r);
        Metrics {
            registry: r,
            http,
            acme,
            va,
            store,
            status,
            process,
        }
    }
}

/// The HTTP front ends: requests and their time, ACME problem documents,
/// rate-limit refusals.
#[derive(Debug)]
struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    problems: Family<One, Counter>,
    rate_limited: Family<One, Counter>,
}

impl HttpMetrics {
    fn register(r: &mut Registry) -> HttpMetrics {
        let requests = Family::<RequestLabels, Counter>::default();
        r.register(
            "http_requests",
            "HTTP requests answered, by listener, matched route template and status code",
            requests.clone(),
        );
        let duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(request_histogram as fn() -> _);
        r.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response headers, by listener and route",
            Unit::Seconds,
            duration.clone(),
        );
        let rate_limited = Family::<One, Counter>::default();
        r.register(
            "rate_limited",
            "Requests refused by a rate limit ([rate_limits]), by limit",
            rate_limited.clone(),
        );
        let problems = Family::<One, Counter>::default();
        r.register(
            "acme_problems",
            "ACME problem documents returned, by problem type (RFC 8555 section 6.7)",
            problems.clone(),
        );
        HttpMetrics {
            requests,
            duration,
            problems,
            rate_limited,
        }
    }
}

/// The ACME flow: nonces, orders that reached a final state, finalize.
#[derive(Debug)]
struct AcmeMetrics {
    nonces_issued: Counter,
    nonces_redeemed: Counter,
    nonces_refused: Counter,
    orders_valid: Counter,
    orders_invalid: Counter,
    finalize_issued: Histogram,
    finalize_refused: Histogram,
}

impl AcmeMetrics {
    fn register(r: &mut Registry) -> AcmeMetrics {
        let nonces = Family::<One, Counter>::default();
        r.register(
            "nonces",
            "Replay nonces issued to clients, redeemed by a valid JWS, or refused as badNonce",
            nonces.clone(),
        );
        let nonce = |event| nonces.get_or_create_owned(&[("event", event)]);
        let orders = Family::<One, Counter>::default();
        r.register(
            "orders",
            "Orders that reached a final state: valid (certificate issued) or invalid (an authorization failed validation)",
            orders.clone(),
        );
        let finalize =
            Family::<One, Histogram>::new_with_constructor(request_histogram as fn() -> _);
        r.register_with_unit(
            "finalize_duration",
            "Time of the RA's finalize (checks, CA signing, durable write), by outcome (issued or refused)",
            Unit::Seconds,
            finalize.clone(),
        );
        AcmeMetrics {
            nonces_issued: nonce("issued"),
            nonces_redeemed: nonce("redeemed"),
            nonces_refused: nonce("refused"),
            orders_valid: orders.get_or_create_owned(&[("state", "valid")]),
            orders_invalid: orders.get_or_create_owned(&[("state", "invalid")]),
            finalize_issued: finalize.get_or_create_owned(&[("outcome", "issued")]),
            finalize_refused: finalize.get_or_create_owned(&[("outcome", "refused")]),
        }
    }
}

/// The VA: attempts and their time, the queue, what runs now.
#[derive(Debug)]
struct VaMetrics {
    attempts: Family<ValidationLabels, Counter>,
    duration: Family<One, Histogram>,
    queue: Gauge,
    running: Gauge,
}

impl VaMetrics {
    fn register(r: &mut Registry) -> VaMetrics {
        let attempts = Family::<ValidationLabels, Counter>::default();
        r.register(
            "validation_attempts",
            "Challenge validation attempts, by challenge type and outcome (valid or invalid)",
            attempts.clone(),
        );
        let duration =
            Family::<One, Histogram>::new_with_constructor(validation_histogram as fn() -> _);
        r.register_with_unit(
            "validation_duration",
            "Time of one validation attempt (CAA included), by challenge type",
            Unit::Seconds,
            duration.clone(),
        );
        let queue = Gauge::default();
        r.register(
            "validation_queue_depth",
            "Validations accepted and not yet started (in the VA's queue or waiting out their random delay)",
            queue.clone(),
        );
        let running = Gauge::default();
        r.register(
            "validations_running",
            "Validations running now",
            running.clone(),
        );
        VaMetrics {
            attempts,
            duration,
            queue,
            running,
        }
    }
}

/// The store's writer: batch time and size.
#[derive(Debug)]
struct StoreMetrics {
    write: Histogram,
    batch: Histogram,
}

impl StoreMetrics {
    fn register(r: &mut Registry) -> StoreMetrics {
        let write = Histogram::new(REQUEST_BUCKETS);
        r.register_with_unit(
            "store_write_duration",
            "Time of one store write batch (one transaction, one round trip to SQLite)",
            Unit::Seconds,
            write.clone(),
        );
        let batch = Histogram::new(BATCH_BUCKETS);
        r.register(
            "store_write_batch_size",
            "Writes committed together in one store transaction (group commit)",
            batch.clone(),
        );
        StoreMetrics { write, batch }
    }
}

/// Answers to relying parties and operators: CRL and OCSP requests on
/// the status listener, the service's webhook deliveries.
#[derive(Debug)]
struct StatusMetrics {
    crl_ok: Counter,
    crl_error: Counter,
    ocsp: [Counter; 6],
    webhooks: [Counter; 3],
}

impl StatusMetrics {
    fn register(r: &mut Registry) -> StatusMetrics {
        let crl = Family::<One, Counter>::default();
        r.register(
            "crl_requests",
            "CRL requests on the status listener, by outcome (ok or error)",
            crl.clone(),
        );
        let ocsp = Family::<One, Counter>::default();
        r.register(
            "ocsp_requests",
            "OCSP requests on the status listener, by outcome",
            ocsp.clone(),
        );
        let webhooks = Family::<One, Counter>::default();
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts of the operator service, by outcome (delivered, retry, failed)",
            webhooks.clone(),
        );
        StatusMetrics {
            crl_ok: crl.get_or_create_owned(&[("outcome", "ok")]),
            crl_error: crl.get_or_create_owned(&[("outcome", "error")]),
            ocsp: OcspOutcome::ALL.map(|o| ocsp.get_or_create_owned(&[("outcome", o.as_str())])),
            webhooks: ["delivered", "retry", "failed"]
                .map(|o| webhooks.get_or_create_owned(&[("outcome", o)])),
        }
    }
}

/// The process: certificates about to expire, listeners, connections the
/// server closed.
#[derive(Debug)]
struct ProcessMetrics {
    expiring_7d: Gauge,
    expiring_30d: Gauge,
    listeners: Family<[(&'static str, Listener); 1], Gauge>,
    listener_state: [AtomicU8; 5],
    connections_closed: Family<ClosedLabels, Counter>,
}

impl ProcessMetrics {
    fn register(r: &mut Registry) -> ProcessMetrics {
        let expiring = Family::<One, Gauge>::default();
        r.register(
            "certificates_expiring",
            "Unrevoked certificates whose notAfter is within the next 7 or 30 days (counted at scrape time)",
            expiring.clone(),
        );
        let listeners = Family::<[(&'static str, Listener); 1], Gauge>::default();
        r.register(
            "listener_up",
            "1 while a configured listener is serving, 0 when it is configured but not serving",
            listeners.clone(),
        );
        let connections_closed = Family::<ClosedLabels, Counter>::default();
        r.register(
            "connections_closed",
            "Connections the server closed on its own, by listener and reason (client_limit, handshake_timeout, idle)",
            connections_closed.clone(),
        );
        ProcessMetrics {
            expiring_7d: expiring.get_or_create_owned(&[("within", "7d")]),
            expiring_30d: expiring.get_or_create_owned(&[("within", "30d")]),
            listeners,
            listener_state: Listener::ALL.map(|_| AtomicU8::new(NOT_CONFIGURED)),
            connections_closed,
        }
    }
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn validation_histogram() -> Histogram {
    Histogram::new(VALIDATION_BUCKETS)
}

impl Metrics {
    /// One answered HTTP request.
    pub(crate) fn http_request(
        &self,
        listener: Listener,
        route: Route,
        status: u16,
        took: Duration,
    ) {
        let labels = RouteLabels { listener, route };
        self.http
            .duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.http
            .requests
            .get_or_create(&RequestLabels {
                listener,
                route: labels.route,
                status,
            })
            .inc();
    }

    /// One ACME problem document, by its type (`badNonce`, …).
    pub(crate) fn acme_problem(&self, kind: &'static str) {
        self.http.problems.get_or_create(&[("type", kind)]).inc();
    }

    /// One request refused by rate limit `limit` (`new_orders_per_account`,
    /// …).
    pub(crate) fn rate_limited(&self, limit: &'static str) {
        self.http
            .rate_limited
            .get_or_create(&[("limit", limit)])
            .inc();
    }

    pub(crate) fn nonce_issued(&self) {
        self.acme.nonces_issued.inc();
    }

    pub(crate) fn nonce_redeemed(&self) {
        self.acme.nonces_redeemed.inc();
    }

    pub(crate) fn nonce_refused(&self) {
        self.acme.nonces_refused.inc();
    }

    /// A finalize call ended: a certificate issued (the order is valid) or
    /// the request refused.
    pub(crate) fn finalized(&self, outcome: FinalizeOutcome, took: Duration) {
        match outcome {
            FinalizeOutcome::Issued => {
                self.acme.orders_valid.inc();
                self.acme.finalize_issued.observe(took.as_secs_f64());
            }
            FinalizeOutcome::Refused => self.acme.finalize_refused.observe(took.as_secs_f64()),
        }
    }

    /// A failed validation was recorded: its order is invalid (RFC 8555
    /// §7.1.6). A pending authorization belongs to one order.
    pub(crate) fn order_invalid(&self) {
        self.acme.orders_invalid.inc();
    }

    /// One validation attempt of `challenge` (`http-01`, …) ended.
    pub(crate) fn validation(&self, challenge: &'static str, valid: bool, took: Duration) {
        let outcome = if valid { "valid" } else { "invalid" };
        self.va
            .attempts
            .get_or_create(&ValidationLabels { challenge, outcome })
            .inc();
        self.va
            .duration
            .get_or_create(&[("challenge", challenge)])
            .observe(took.as_secs_f64());
    }

    /// A validation entered the VA's queue.
    pub(crate) fn validation_queued(&self) {
        self.va.queue.inc();
    }

    /// A queued validation starts running.
    pub(crate) fn validation_started(&self) {
        self.va.queue.dec();
        self.va.running.inc();
    }

    /// A running validation ended.
    pub(crate) fn validation_finished(&self) {
        self.va.running.dec();
    }

    /// One store write batch of `ops` writes, committed (or failed) in
    /// `took`.
    pub(crate) fn store_write(&self, ops: usize, took: Duration) {
        self.store.batch.observe(ops as f64);
        self.store.write.observe(took.as_secs_f64());
    }

    pub(crate) fn crl_request(&self, ok: bool) {
        if ok {
            self.status.crl_ok.inc();
        } else {
            self.status.crl_error.inc();
        }
    }

    pub(crate) fn ocsp_request(&self, outcome: OcspOutcome) {
        self.status.ocsp[outcome as usize].inc();
    }

    pub(crate) fn webhook_delivery(&self, outcome: WebhookOutcome) {
        self.status.webhooks[outcome as usize].inc();
    }

    /// A connection on `listener` that the server closed on its own.
    pub(crate) fn connection_closed(&self, listener: Listener, why: ConnectionClosed) {
        self.process
            .connections_closed
            .get_or_create(&ClosedLabels {
                listener,
                reason: why.as_str(),
            })
            .inc();
    }

    /// Sets the counts of unrevoked certificates expiring within 7 and 30
    /// days.
    pub(crate) fn set_expiring(&self, within_7d: u64, within_30d: u64) {
        self.process
            .expiring_7d
            .set(i64::try_from(within_7d).unwrap_or(i64::MAX));
        self.process
            .expiring_30d
            .set(i64::try_from(within_30d).unwrap_or(i64::MAX));
    }

    /// `listener` is part of this configuration: `/ready` waits for it
    /// and `listener_up` shows it.
    pub(crate) fn listener_configured(&self, listener: Listener) {
        let _ = self.process.listener_state[listener.index()].compare_exchange(
            NOT_CONFIGURED,
            DOWN,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        let _ = self
            .process
            .listeners
            .get_or_create(&[("listener", listener)]);
    }

    /// `listener` started (true) or stopped (false) serving.
    pub(crate) fn listener_serving(&self, listener: Listener, serving: bool) {
        self.process.listener_state[listener.index()]
            .store(if serving { UP } else { DOWN }, Ordering::SeqCst);
        self.process
            .listeners
            .get_or_create(&[("listener", listener)])
            .set(i64::from(serving));
    }

    /// The configured listeners that are not serving.
    pub(crate) fn listeners_down(&self) -> Vec<Listener> {
        Listener::ALL
            .into_iter()
            .filter(|l| self.process.listener_state[l.index()].load(Ordering::SeqCst) == DOWN)
            .collect()
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub(crate) fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; an encoding error would be a bug
        // in a label value, which are all ours.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            let _ = writeln!(out, "# encoding failed: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_counters_move() {
        let m = Metrics::new();
        m.nonce_issued();
        m.nonce_issued();
        m.acme_problem("badNonce");
        m.http_request(
            Listener::Acme,
            Route::Fixed("/acme/new-nonce"),
            204,
            Duration::from_millis(3),
        );
        m.listener_configured(Listener::Status);
        m.connection_closed(Listener::Service, ConnectionClosed::ClientLimit);
        m.connection_closed(Listener::Service, ConnectionClosed::ClientLimit);
        m.connection_closed(Listener::Acme, ConnectionClosed::Idle);
        let text = m.encode();
        assert!(text.contains(
            "acme_ca_connections_closed_total{listener=\"service\",reason=\"client_limit\"} 2\n"
        ));
        assert!(text
            .contains("acme_ca_connections_closed_total{listener=\"acme\",reason=\"idle\"} 1\n"));
        assert!(
            text.contains("acme_ca_nonces_total{event=\"issued\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("acme_ca_acme_problems_total{type=\"badNonce\"} 1\n"));
        assert!(text.contains(
            "acme_ca_http_requests_total{listener=\"acme\",route=\"/acme/new-nonce\",status=\"204\"} 1\n"
        ));
        assert!(text.contains("# TYPE acme_ca_http_request_duration_seconds histogram\n"));
        assert!(text.contains("acme_ca_listener_up{listener=\"status\"} 0\n"));
        assert!(!text.contains("listener=\"management\""));
        assert_eq!(m.listeners_down(), vec![Listener::Status]);
        m.listener_serving(Listener::Status, true);
        assert!(m.listeners_down().is_empty());
    }
}
