//! Decisions by digest: the lineage check of `modelseal-verify`, a bounded cache of
//! positive results, and the metrics of both.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use modelseal_core::ArtifactDigest;
use modelseal_lineage::policy::LineagePolicy;
use modelseal_lineage::store::AttestationStore;
use modelseal_lineage::verify_digest;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The policy and store in force; replaced whole when the policy file changes, so a
/// request in flight keeps the one it started with.
pub struct Trust {
    /// The lineage policy.
    pub policy: LineagePolicy,
    /// The attestation store.
    pub store: AttestationStore,
    /// Identifies policy and trust material for the cache:
    /// `LineagePolicy::trust_digest` (the policy file's SHA-256 and the keys it resolved).
    pub version: String,
}

impl Trust {
    /// Loads the policy at `policy` over the store at `store`.
    pub fn load(
        policy: &std::path::Path,
        store: &std::path::Path,
    ) -> Result<Self, modelseal_lineage::policy::PolicyError> {
        let policy = LineagePolicy::read(policy)?;
        Ok(Self {
            version: policy.trust_digest(),
            policy,
            store: AttestationStore::open(store),
        })
    }
}

/// The outcome for one model.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Admit or not.
    pub allowed: bool,
    /// Why, in words a person can act on.
    pub message: String,
    /// The lineage report, as JSON (`null` when it came from the cache).
    pub report: serde_json::Value,
    /// Whether the cache answered.
    pub cached: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: String,
    cached: String,
}

/// Prometheus metrics of the server.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    cache_hits: Counter,
    store_errors: Counter,
    timeouts: Counter,
    latency: Histogram,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("modelseal");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let cache_hits = Counter::default();
        let store_errors = Counter::default();
        let timeouts = Counter::default();
        let latency = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
        ]);
        registry.register(
            "admission_decisions",
            "Admission decisions by outcome and cache use",
            decisions.clone(),
        );
        registry.register(
            "cache_hits",
            "Decisions answered from the cache",
            cache_hits.clone(),
        );
        registry.register(
            "store_errors",
            "Decisions that failed to read the attestation store",
            store_errors.clone(),
        );
        registry.register(
            "decision_timeouts",
            "Decisions not made within the request's deadline",
            timeouts.clone(),
        );
        registry.register(
            "decision_seconds",
            "Server time per admission decision",
            latency.clone(),
        );
        Self {
            registry,
            decisions,
            cache_hits,
            store_errors,
            timeouts,
            latency,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Records a decision and its server time.
    pub fn record(&self, allowed: bool, cached: bool, elapsed: Duration) {
        let labels = DecisionLabels {
            decision: if allowed { "allow" } else { "deny" }.into(),
            cached: cached.to_string(),
        };
        self.decisions.get_or_create(&labels).inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Records a decision that ran out of time.
    pub fn timeout(&self) {
        self.timeouts.inc();
    }
}

/// Positive decisions by (digest, trust version), bounded in entries and age. Negative
/// decisions are never cached: a fix in the store must take effect at once.
struct Cache {
    entries: HashMap<(String, String), Instant>,
    order: VecDeque<(String, String)>,
    capacity: usize,
    ttl: Duration,
}

impl Cache {
    fn hit(&mut self, key: &(String, String)) -> bool {
        match self.entries.get(key) {
            Some(at) if at.elapsed() < self.ttl => true,
            Some(_) => {
                self.entries.remove(key);
                false
            }
            None => false,
        }
    }

    fn insert(&mut self, key: (String, String)) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        if self.entries.insert(key.clone(), Instant::now()).is_none() {
            self.order.push_back(key);
        }
    }
}

/// Everything a request needs.
pub struct Decider {
    trust: RwLock<Arc<Trust>>,
    cache: Mutex<Cache>,
    /// Metrics.
    pub metrics: Metrics,
}

impl Decider {
    /// A decider over `trust` with a cache of `capacity` entries kept for `ttl`.
    pub fn new(trust: Trust, capacity: usize, ttl: Duration) -> Self {
        Self {
            trust: RwLock::new(Arc::new(trust)),
            cache: Mutex::new(Cache {
                entries: HashMap::new(),
                order: VecDeque::new(),
                capacity,
                ttl,
            }),
            metrics: Metrics::new(),
        }
    }

    /// The trust in force now.
    pub fn trust(&self) -> Arc<Trust> {
        Arc::clone(&self.trust.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the trust; requests in flight finish with the old one.
    pub fn replace_trust(&self, trust: Trust) {
        *self.trust.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(trust);
    }

    /// Decides for one model digest (`blake3:HEX`). Blocking: call it off the async
    /// threads. `remember` is false for dry runs, which leave no trace; `use_cache` is
    /// false when the caller wants the full report rather than a cached yes. `name` is
    /// what the object calls the model: shown in messages, never used for policy (the
    /// signed name is), so it is not part of the cache key.
    pub fn decide(
        &self,
        digest: &str,
        name: Option<String>,
        remember: bool,
        use_cache: bool,
    ) -> Decision {
        let trust = self.trust();
        let Ok(parsed) = digest.parse::<ArtifactDigest>() else {
            return Decision {
                allowed: false,
                message: format!(
                    "{digest:?} is not a model digest; write it as blake3:<64 lowercase hex>"
                ),
                report: serde_json::Value::Null,
                cached: false,
            };
        };
        let key = (parsed.to_string(), trust.version.clone());
        if use_cache
            && self
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .hit(&key)
        {
            self.metrics.cache_hits.inc();
            return Decision {
                allowed: true,
                message: format!("model {digest} verified (cached)"),
                report: serde_json::Value::Null,
                cached: true,
            };
        }
        let report = verify_digest(&parsed, &trust.policy, &trust.store);
        if report.has_store_error() || report.skipped_files() > 0 {
            self.metrics.store_errors.inc();
        }
        let allowed = report.passed();
        let message = match report.first_failure() {
            None => format!("model {digest} verified: signature and lineage satisfy the policy"),
            Some((hop, failure)) => format!(
                "model {}{digest} refused: {} {} ({}): {failure}",
                name.as_deref().map(|n| format!("{n} ")).unwrap_or_default(),
                hop.kind.name(),
                hop.display_name(),
                hop.digest_text()
            ),
        };
        if allowed && remember {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
        }
        Decision {
            allowed,
            message,
            report: report.to_json(),
            cached: false,
        }
    }
}
