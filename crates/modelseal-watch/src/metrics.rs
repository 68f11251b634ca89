//! The watch's Prometheus metrics (`spec/watch.md` §5), under the `modelseal_watch_`
//! prefix.

use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: &'static str,
}

/// Counters the checkers raise; gauges are set when the metrics are read.
pub struct Metrics {
    registry: Registry,
    checks: Family<TriggerLabels, Counter>,
    /// Verdicts that were refusals (a file or the model not verifying).
    pub failures: Counter,
    /// Bytes read and hashed after the start.
    pub bytes: Counter,
    /// Filesystem events that can change the model.
    pub events: Counter,
    /// Changes the stat poll found (metadata differing from what a check saw).
    pub stat_changes: Counter,
    ready: Gauge,
    signed_files: Gauge,
    last_verified: Gauge<f64, AtomicU64>,
    last_pass: Gauge<f64, AtomicU64>,
    pass_seconds: Gauge<f64, AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("modelseal_watch");
        let checks = Family::<TriggerLabels, Counter>::default();
        let failures = Counter::default();
        let bytes = Counter::default();
        let events = Counter::default();
        let stat_changes = Counter::default();
        let ready = Gauge::default();
        let signed_files = Gauge::default();
        let last_verified = Gauge::<f64, AtomicU64>::default();
        let last_pass = Gauge::<f64, AtomicU64>::default();
        let pass_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "checks",
            "Checks run (the model's signature and file set, or one file's bytes), by trigger",
            checks.clone(),
        );
        registry.register(
            "failures",
            "Checks whose verdict was a refusal",
            failures.clone(),
        );
        registry.register(
            "bytes_rehashed",
            "Bytes read and hashed by checks",
            bytes.clone(),
        );
        registry.register(
            "events",
            "Filesystem events that can change the model or its signature (writes, creations, removals, renames)",
            events.clone(),
        );
        registry.register(
            "stat_changes",
            "Changes found by the stat poll: metadata no longer what a check saw",
            stat_changes.clone(),
        );
        registry.register(
            "ready",
            "1 while the model verifies, 0 while it does not or a change is being checked",
            ready.clone(),
        );
        registry.register(
            "signed_files",
            "Files the signature lists",
            signed_files.clone(),
        );
        registry.register(
            "last_verified_timestamp_seconds",
            "Unix time when checks last left every file verified (0: never)",
            last_verified.clone(),
        );
        registry.register(
            "last_pass_timestamp_seconds",
            "Unix time when the last full pass ended",
            last_pass.clone(),
        );
        registry.register(
            "last_pass_duration_seconds",
            "How long the last full pass took",
            pass_seconds.clone(),
        );
        Self {
            registry,
            checks,
            failures,
            bytes,
            events,
            stat_changes,
            ready,
            signed_files,
            last_verified,
            last_pass,
            pass_seconds,
        }
    }

    pub(crate) fn check(&self, trigger: &'static str) {
        self.checks.get_or_create(&TriggerLabels { trigger }).inc();
    }

    pub(crate) fn pass_done(&self, at: SystemTime, seconds: f64) {
        self.last_pass.set(unix(at));
        self.pass_seconds.set(seconds);
    }

    pub(crate) fn encode(
        &self,
        ready: bool,
        last_verified: Option<SystemTime>,
        signed_files: usize,
    ) -> String {
        self.ready.set(i64::from(ready));
        self.signed_files
            .set(i64::try_from(signed_files).unwrap_or(i64::MAX));
        self.last_verified.set(last_verified.map_or(0.0, unix));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn unix(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
