//! Prometheus metrics of the server: decisions, the cache, and every limit that was hit
//! (`spec/admission.md` §4).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    cached: &'static str,
}

/// Why a connection was closed by the server rather than by its client.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Closed {
    /// The TLS handshake took longer than `handshake_timeout_ms`.
    HandshakeTimeout,
    /// The TLS handshake failed.
    TlsError,
    /// Request headers took longer than `header_timeout_ms`.
    HeaderTimeout,
    /// No request in service for `idle_timeout_ms`.
    Idle,
    /// The connection cap was reached; closed before the handshake.
    OverCapacity,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Self::HandshakeTimeout => "handshake-timeout",
            Self::TlsError => "tls-error",
            Self::HeaderTimeout => "header-timeout",
            Self::Idle => "idle",
            Self::OverCapacity => "over-capacity",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The server's metrics, registered under the `modelseal_` prefix.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    /// Decisions answered from the cache.
    pub cache_hits: Counter,
    /// Entries in the decision cache.
    pub cache_entries: Gauge,
    /// Decisions whose store lookups failed or skipped files.
    pub store_errors: Counter,
    /// Store files skipped (too large, not regular, unparsable, misnamed, …).
    pub store_files_skipped: Counter,
    /// Decisions not made within their deadline.
    pub decision_timeouts: Counter,
    /// Decisions whose code panicked (always denied).
    pub decision_panics: Counter,
    /// Requests answered 503 because `max_in_flight` decisions were under way.
    pub requests_shed: Counter,
    /// Requests answered 503 because their bodies did not fit `body_bytes_in_flight`.
    pub bodies_shed: Counter,
    /// Request bodies not received within `body_timeout_ms`.
    pub body_timeouts: Counter,
    /// `/v1/admit` requests without the right bearer token.
    pub unauthorized: Counter,
    /// Requests answered 500 because a handler panicked.
    pub handler_panics: Counter,
    closed: Family<ReasonLabels, Counter>,
    /// Open connections.
    pub connections_open: Gauge,
    /// Uncached decisions waiting for or using a worker.
    pub in_flight: Gauge,
    /// Workers reading the store now (a stuck one stays counted).
    pub workers_busy: Gauge,
    latency: Histogram,
    /// Server time per HTTP request: from its head being parsed to its response.
    pub request_seconds: Histogram,
}

/// Bucket bounds, seconds: fine below a millisecond, where cached answers fall.
fn buckets() -> impl Iterator<Item = f64> {
    [
        0.000025, 0.00005, 0.000075, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075,
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("modelseal");
        let this = Self {
            registry: Registry::default(),
            decisions: Family::default(),
            cache_hits: Counter::default(),
            cache_entries: Gauge::default(),
            store_errors: Counter::default(),
            store_files_skipped: Counter::default(),
            decision_timeouts: Counter::default(),
            decision_panics: Counter::default(),
            requests_shed: Counter::default(),
            bodies_shed: Counter::default(),
            body_timeouts: Counter::default(),
            unauthorized: Counter::default(),
            handler_panics: Counter::default(),
            closed: Family::default(),
            connections_open: Gauge::default(),
            in_flight: Gauge::default(),
            workers_busy: Gauge::default(),
            latency: Histogram::new(buckets()),
            request_seconds: Histogram::new(buckets()),
        };
        macro_rules! register {
            ($name:literal, $help:literal, $metric:ident) => {
                registry.register($name, $help, this.$metric.clone())
            };
        }
        register!(
            "admission_decisions",
            "Admission decisions by outcome and cache use",
            decisions
        );
        register!(
            "cache_hits",
            "Decisions answered from the cache",
            cache_hits
        );
        register!(
            "cache_entries",
            "Entries in the decision cache",
            cache_entries
        );
        register!(
            "store_errors",
            "Decisions whose store lookups failed or skipped files",
            store_errors
        );
        register!(
            "store_files_skipped",
            "Store files skipped: too large, not regular, unparsable or misnamed",
            store_files_skipped
        );
        register!(
            "decision_timeouts",
            "Decisions not made within the request's deadline",
            decision_timeouts
        );
        register!(
            "decision_panics",
            "Decisions whose code panicked; each was a denial",
            decision_panics
        );
        register!(
            "requests_shed",
            "Requests answered 503: max_in_flight decisions under way",
            requests_shed
        );
        register!(
            "bodies_shed",
            "Requests answered 503: their bodies did not fit body_bytes_in_flight",
            bodies_shed
        );
        register!(
            "body_timeouts",
            "Request bodies not received within body_timeout_ms",
            body_timeouts
        );
        register!(
            "unauthorized_requests",
            "Registry requests without the right bearer token",
            unauthorized
        );
        register!(
            "handler_panics",
            "Requests answered 500 because a handler panicked",
            handler_panics
        );
        register!(
            "connections_closed",
            "Connections the server closed, by reason",
            closed
        );
        register!("connections_open", "Open connections", connections_open);
        register!(
            "decisions_in_flight",
            "Uncached decisions waiting for or using a worker",
            in_flight
        );
        register!(
            "workers_busy",
            "Workers reading the store now",
            workers_busy
        );
        register!(
            "decision_seconds",
            "Server time per admission decision",
            latency
        );
        register!(
            "request_seconds",
            "Server time per HTTP request, head parsed to response",
            request_seconds
        );
        Self { registry, ..this }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Records a decision and its server time.
    pub fn record(&self, allowed: bool, cached: bool, elapsed: Duration) {
        let labels = DecisionLabels {
            decision: if allowed { "allow" } else { "deny" },
            cached: if cached { "true" } else { "false" },
        };
        self.decisions.get_or_create(&labels).inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Records a connection the server closed.
    pub fn closed(&self, why: Closed) {
        self.closed
            .get_or_create(&ReasonLabels {
                reason: why.label(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A gauge raised for as long as the guard lives.
pub(crate) struct Raised(Gauge);

impl Raised {
    pub(crate) fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        self.0.dec();
    }
}
