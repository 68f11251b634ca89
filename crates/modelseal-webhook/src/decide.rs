//! Decisions by digest: the lineage check of `modelseal-lineage` and a bounded cache of
//! positive results. Nothing here waits on a clock or a thread: `pool` does that.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use modelseal_core::ArtifactDigest;
use modelseal_lineage::policy::LineagePolicy;
use modelseal_lineage::store::AttestationStore;
use modelseal_lineage::{Stop, verify_digest_until};

use crate::metrics::Metrics;

/// The policy and store in force; replaced whole when the policy file changes, so a
/// request in flight keeps the one it started with.
pub struct Trust {
    /// The lineage policy.
    pub policy: LineagePolicy,
    /// The attestation store.
    pub store: AttestationStore,
    /// Identifies policy and trust material for the cache:
    /// `LineagePolicy::trust_digest` (the policy file's SHA-256 and the keys it resolved).
    pub version: Arc<str>,
}

impl Trust {
    /// Loads the policy at `policy` over `store` (shared across reloads, so a registry
    /// store keeps its cache of content-addressed bundles).
    pub fn load(
        policy: &std::path::Path,
        store: &AttestationStore,
    ) -> Result<Self, modelseal_lineage::policy::PolicyError> {
        let policy = LineagePolicy::read(policy)?;
        Ok(Self {
            version: policy.trust_digest().into(),
            policy,
            store: store.clone(),
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
    /// Whether the walk stopped because its time ran out (not a verdict).
    pub timed_out: bool,
}

/// Positive decisions by (digest, trust version), bounded in entries (quick_cache
/// evicts to stay within them) and age (an entry older than the TTL is a miss and is
/// removed). Negative decisions are never cached: a fix in the store takes effect at once.
type Cache = quick_cache::sync::Cache<(ArtifactDigest, Arc<str>), Instant>;

/// Tags resolved to manifest digests, kept briefly: a tag may move, and a moved tag must
/// be noticed within this long.
const TAG_TTL: Duration = Duration::from_secs(30);

/// Everything a request needs.
pub struct Decider {
    trust: RwLock<Arc<Trust>>,
    cache: Option<Cache>,
    ttl: Duration,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    registry_options: modelseal_oci::RegistryOptions,
    // Made on a worker thread, on first use (a blocking client is never built inside
    // the async runtime).
    registry: std::sync::OnceLock<Result<modelseal_oci::Registry, String>>,
    tags: quick_cache::sync::Cache<String, (modelseal_oci::OciDigest, Instant)>,
    oci_registries: Vec<String>,
    oci_tags: crate::config::OciTags,
    // Positive decisions for OCI manifests, apart from those for digests: a manifest
    // digest is never a model's identity (its 32 bytes could be anything's).
    oci_cache: Option<quick_cache::sync::Cache<(modelseal_oci::OciDigest, Arc<str>), Instant>>,
    /// Why the policy could not be reloaded, while it cannot: every decision is then a
    /// refusal. Keeping the old policy would keep a revoked key (its file deleted, the
    /// policy unchanged) admitting models for whoever calls the server directly.
    suspended: RwLock<Option<String>>,
}

impl Decider {
    /// A decider over `trust` with a cache of `capacity` entries kept for `ttl`.
    pub fn new(trust: Trust, capacity: usize, ttl: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            trust: RwLock::new(Arc::new(trust)),
            cache: (capacity > 0 && !ttl.is_zero()).then(|| Cache::new(capacity)),
            ttl,
            metrics,
            registry_options: modelseal_oci::RegistryOptions::default(),
            registry: std::sync::OnceLock::new(),
            tags: quick_cache::sync::Cache::new(1024),
            oci_registries: Vec::new(),
            oci_tags: crate::config::OciTags::Refuse,
            oci_cache: (capacity > 0 && !ttl.is_zero())
                .then(|| quick_cache::sync::Cache::new(capacity)),
            suspended: RwLock::new(None),
        }
    }

    /// The same decider, admitting models by OCI reference from `registries` (reached
    /// with `options`), tags handled as `tags` says.
    pub fn with_registry(
        mut self,
        options: modelseal_oci::RegistryOptions,
        registries: Vec<String>,
        tags: crate::config::OciTags,
    ) -> Self {
        self.registry_options = options;
        self.oci_registries = registries;
        self.oci_tags = tags;
        self
    }

    /// The manifest digest a reference names: its own digest, or its tag resolved (kept
    /// for [`TAG_TTL`]). Blocking: call it on a worker.
    fn resolve(
        &self,
        reference: &modelseal_oci::Reference,
    ) -> Result<modelseal_oci::OciDigest, String> {
        if let Some(digest) = reference.digest() {
            return Ok(digest);
        }
        let key = reference.to_string();
        if let Some((digest, at)) = self.tags.get(&key) {
            if at.elapsed() < TAG_TTL {
                return Ok(digest);
            }
        }
        let registry = self
            .registry
            .get_or_init(|| {
                modelseal_oci::Registry::new(self.registry_options.clone())
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)?;
        let fetched = registry
            .manifest(reference)
            .map_err(|e| modelseal_verify::error_chain(&e))?;
        self.tags.insert(key, (fetched.digest, Instant::now()));
        Ok(fetched.digest)
    }

    /// Decides for a model named by OCI reference: the reference resolved to its manifest
    /// digest, a trusted `model-publisher` signature in the store naming that manifest
    /// (and so the model's BLAKE3 root), then the model decided by its root. No layer is
    /// read. A registry or store that fails refuses (fail closed). Blocking.
    pub fn decide_oci(
        &self,
        text: &str,
        remember: bool,
        stop: Stop,
        want_report: bool,
    ) -> Decision {
        if let Some(refusal) = self.suspension() {
            return refusal;
        }
        let shown = crate::admission::shorten(text, 160);
        let refuse = |message: String| Decision {
            allowed: false,
            message,
            report: serde_json::Value::Null,
            cached: false,
            timed_out: false,
        };
        let reference = match modelseal_oci::Reference::parse(text) {
            Ok(r) => r,
            Err(e) => return refuse(format!("model {shown} refused: {e}")),
        };
        if !self
            .oci_registries
            .iter()
            .any(|r| r == reference.registry())
        {
            return refuse(format!(
                "model {shown} refused: registry {} is not one this server admits models from (oci_registries)",
                crate::admission::shorten(reference.registry(), 80)
            ));
        }
        if reference.digest().is_none() && self.oci_tags == crate::config::OciTags::Refuse {
            return refuse(format!(
                "model {shown} refused: name the model by digest (@sha256:…): a tag can move between this check and the kubelet's pull"
            ));
        }
        if stop.reached() {
            return Decision {
                timed_out: true,
                ..refuse(format!("model {shown}: out of time before it was resolved"))
            };
        }
        let manifest = match self.resolve(&reference) {
            Ok(d) => d,
            Err(e) => {
                self.metrics.store_errors.inc();
                return refuse(format!(
                    "model {shown} refused: its registry could not resolve it: {e}"
                ));
            }
        };
        let trust = self.trust();
        let key = (manifest, Arc::clone(&trust.version));
        if let Some(cache) = &self.oci_cache {
            if let Some(at) = cache.get(&key) {
                if at.elapsed() < self.ttl {
                    self.metrics.cache_hits.inc();
                    return Decision {
                        allowed: true,
                        message: format!("model {shown} ({manifest}) verified (cached)"),
                        report: serde_json::Value::Null,
                        cached: true,
                        timed_out: false,
                    };
                }
                cache.remove(&key);
            }
        }
        let binding = match modelseal_lineage::oci::model_of_manifest(
            manifest,
            &trust.policy,
            &trust.store,
            &stop,
        ) {
            Ok(binding) => binding,
            Err(e) => {
                if matches!(e, modelseal_lineage::oci::BindingError::Store(_)) {
                    self.metrics.store_errors.inc();
                }
                return refuse(format!("model {shown} refused: {e}"));
            }
        };
        let root = binding.root;
        let (mut decision, store_trouble) = self.decide_digest(
            &ArtifactDigest::blake3(&root),
            Some(&shown),
            remember,
            stop,
            want_report,
        );
        if binding.unusable_files > 0 {
            self.metrics.store_errors.inc();
        }
        if decision.allowed {
            decision.message = format!(
                "model {shown} ({manifest}) is blake3:{root}: {}",
                decision.message
            );
            // As for digests: a yes reached beside an unusable store file (under the
            // manifest or below) is answered, not remembered.
            if remember && !store_trouble && binding.unusable_files == 0 {
                if let Some(cache) = &self.oci_cache {
                    cache.insert(key, Instant::now());
                }
            }
        }
        decision
    }

    /// The trust in force now.
    pub fn trust(&self) -> Arc<Trust> {
        Arc::clone(&self.trust.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the trust; requests in flight finish with the old one.
    pub fn replace_trust(&self, trust: Trust) {
        *self.trust.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(trust);
        *self.suspended.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Refuses every decision, saying `why`, until [`Self::replace_trust`] puts a policy
    /// in force again (a reload that failed).
    pub fn suspend(&self, why: String) {
        *self.suspended.write().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// The refusal every request gets while the policy cannot be loaded.
    fn suspension(&self) -> Option<Decision> {
        let why = self
            .suspended
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        Some(Decision {
            allowed: false,
            message: format!("refused: {why}"),
            report: serde_json::Value::Null,
            cached: false,
            timed_out: false,
        })
    }

    /// Entries in the cache now.
    pub fn cache_len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// The answer for a digest that does not parse.
    pub fn malformed(digest: &str) -> Decision {
        Decision {
            allowed: false,
            message: format!(
                "{:?} is not a model digest; write it as blake3:<64 lowercase hex>",
                crate::admission::shorten(digest, 80)
            ),
            report: serde_json::Value::Null,
            cached: false,
            timed_out: false,
        }
    }

    /// The cached positive decision for `digest` under the trust in force, if any. Cheap
    /// and non-blocking: called on the async threads.
    pub fn cached(&self, digest: &ArtifactDigest) -> Option<Decision> {
        if let Some(refusal) = self.suspension() {
            return Some(refusal);
        }
        let cache = self.cache.as_ref()?;
        let key = (*digest, Arc::clone(&self.trust().version));
        let at = cache.get(&key)?;
        if at.elapsed() >= self.ttl {
            cache.remove(&key);
            return None;
        }
        self.metrics.cache_hits.inc();
        Some(Decision {
            allowed: true,
            message: format!("model {digest} verified (cached)"),
            report: serde_json::Value::Null,
            cached: true,
            timed_out: false,
        })
    }

    /// Decides for one model digest from the store. Blocking: call it on a worker.
    /// `remember` is false for dry runs, which leave no trace. `name` is what the
    /// object calls the model: shown in messages, never used for policy (the signed
    /// name is). Work ends when `stop` is reached (the answer is no longer wanted then).
    /// The per-hop report is kept only when `want_report`.
    pub fn decide(
        &self,
        digest: &ArtifactDigest,
        name: Option<&str>,
        remember: bool,
        stop: Stop,
        want_report: bool,
    ) -> Decision {
        self.decide_digest(digest, name, remember, stop, want_report)
            .0
    }

    /// [`Self::decide`], also saying whether the store was in trouble (a failed lookup
    /// or an unusable file beside the answer), so a caller caching on top of it does not
    /// remember a yes the digest's own cache would not.
    fn decide_digest(
        &self,
        digest: &ArtifactDigest,
        name: Option<&str>,
        remember: bool,
        stop: Stop,
        want_report: bool,
    ) -> (Decision, bool) {
        if let Some(refusal) = self.suspension() {
            return (refusal, true);
        }
        let trust = self.trust();
        let report = verify_digest_until(digest, &trust.policy, &trust.store, stop);
        // Files a healthy store also holds (bundles by other keys, summaries too old to
        // stand in) are skipped without trouble; unusable ones mean something was
        // planted or broke.
        let skipped = report.skipped_files();
        self.metrics.store_files_skipped.inc_by(skipped as u64);
        let store_trouble = report.has_store_error() || report.unusable_files() > 0;
        if store_trouble {
            self.metrics.store_errors.inc();
        }
        let allowed = report.passed();
        let timed_out = report
            .first_failure()
            .is_some_and(|(_, f)| matches!(f, modelseal_lineage::HopFailure::OutOfTime));
        let message = match report.first_failure() {
            None => format!("model {digest} verified: signature and lineage satisfy the policy"),
            Some((hop, failure)) => format!(
                "model {}{digest} refused: {} {} ({}): {failure}",
                name.map(|n| format!("{} ", crate::admission::shorten(n, 80)))
                    .unwrap_or_default(),
                hop.kind.name(),
                hop.display_name(),
                hop.digest_text()
            ),
        };
        // A yes reached beside an unusable file (something planted) is not kept: the
        // next request looks again.
        if allowed && remember && !store_trouble {
            if let Some(cache) = &self.cache {
                cache.insert((*digest, Arc::clone(&trust.version)), Instant::now());
                self.metrics.cache_entries.set(cache.len() as i64);
            }
        }
        let decision = Decision {
            allowed,
            message,
            report: if want_report {
                report.to_json()
            } else {
                serde_json::Value::Null
            },
            cached: false,
            timed_out,
        };
        (decision, store_trouble)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_entries_however_many_keys_pass_through() {
        let cache = Cache::new(100);
        let version: Arc<str> = "v1".into();
        for i in 0u32..100_000 {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            let digest: ArtifactDigest = format!("blake3:{}", hex::encode(bytes)).parse().unwrap();
            cache.insert((digest, Arc::clone(&version)), Instant::now());
            assert!(
                cache.len() <= 100,
                "{} entries after {i} inserts",
                cache.len()
            );
        }
        assert!(cache.len() > 50, "the cache still holds recent entries");
    }
}
