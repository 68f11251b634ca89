//! An attestation store kept in a registry repository (`spec/oci.md` §8), so CI and
//! every admission replica share one. Each subject digest has a tag `attest-ALG-HEX`
//! holding an OCI image index; each entry is a bundle artifact (the referrer shape of
//! §5, without a subject). Content is addressed by digest, so what was fetched once is
//! cached; the index tags are read on every lookup.
//!
//! Like the directory store, nothing here is trusted: whoever may push to the repository
//! may list anything under any tag. Callers (the lineage crate) bound what they read and
//! hand every bundle to the gate.

use std::sync::{Arc, OnceLock};

use crate::reference::{OciDigest, Reference};
use crate::referrers::BUNDLE_ARTIFACT_TYPE;
use crate::{OciError, Registry, RegistryOptions};

/// Prefix of the index tags.
pub const TAG_PREFIX: &str = "attest-";
/// Bytes of bundles kept in memory across lookups.
const CACHE_BYTES: u64 = 64 << 20;

/// The index tag of a subject digest.
pub fn tag_for(algorithm: &str, hex: &str) -> String {
    format!("{TAG_PREFIX}{algorithm}-{hex}")
}

/// One entry of an index: a bundle artifact manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The artifact manifest's digest.
    pub digest: OciDigest,
}

#[derive(Clone)]
struct BundleWeight;

impl quick_cache::Weighter<OciDigest, Arc<Vec<u8>>> for BundleWeight {
    fn weight(&self, _key: &OciDigest, value: &Arc<Vec<u8>>) -> u64 {
        value.len() as u64 + 64
    }
}

/// A registry repository used as an attestation store.
pub struct RegistryStore {
    repository: Reference,
    options: RegistryOptions,
    // Made on first use, on the thread that looks things up: a blocking HTTP client must
    // not be built inside an async runtime (the admission server loads configs there).
    registry: OnceLock<Result<Registry, String>>,
    bundles: quick_cache::sync::Cache<OciDigest, Arc<Vec<u8>>, BundleWeight>,
}

impl std::fmt::Debug for RegistryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryStore")
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

impl RegistryStore {
    /// A store in `repository` (`oci://REGISTRY/REPOSITORY`, no tag or digest).
    pub fn new(repository: Reference, options: RegistryOptions) -> Result<Self, OciError> {
        if repository.tag().is_some() || repository.digest().is_some() {
            return Err(OciError::Unsupported(format!(
                "a store is a repository: {repository} names a tag or digest"
            )));
        }
        Ok(Self {
            repository,
            options,
            registry: OnceLock::new(),
            bundles: quick_cache::sync::Cache::with_weighter(1024, CACHE_BYTES, BundleWeight),
        })
    }

    /// The repository.
    pub fn repository(&self) -> &Reference {
        &self.repository
    }

    fn registry(&self) -> Result<&Registry, OciError> {
        self.registry
            .get_or_init(|| Registry::new(self.options.clone()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| OciError::Setup(e.clone()))
    }

    /// The entries under a subject's tag (none if the tag does not exist), at most
    /// `max + 1` of them so a caller can tell that more were listed.
    pub fn entries(&self, tag: &str, max: usize) -> Result<Vec<Entry>, OciError> {
        let registry = self.registry()?;
        let Some(index) = registry.manifest_if_exists(&self.repository.with_tag(tag))? else {
            return Ok(Vec::new());
        };
        let value: serde_json::Value = serde_json::from_slice(&index.bytes)
            .map_err(|e| OciError::Unsupported(format!("tag {tag} is not JSON: {e}")))?;
        let Some(listed) = value["manifests"].as_array() else {
            return Err(OciError::Unsupported(format!(
                "tag {tag} holds something other than an image index"
            )));
        };
        let mut out = Vec::new();
        for m in listed.iter().take(max.saturating_add(1)) {
            let Some(digest) = m["digest"].as_str().and_then(|d| d.parse().ok()) else {
                continue;
            };
            out.push(Entry { digest });
        }
        Ok(out)
    }

    /// The size of the bundle an entry carries, and a way to fetch it: a caller checks
    /// the size against its budget before any bundle byte is read.
    pub fn bundle_layer(&self, entry: Entry) -> Result<(OciDigest, u64), OciError> {
        let registry = self.registry()?;
        let fetched = registry.manifest(&self.repository.pinned(entry.digest))?;
        #[derive(serde::Deserialize)]
        struct Layer {
            #[serde(rename = "mediaType")]
            media_type: String,
            digest: String,
            size: u64,
        }
        #[derive(serde::Deserialize)]
        struct Manifest {
            #[serde(rename = "artifactType")]
            artifact_type: Option<String>,
            layers: Vec<Layer>,
        }
        let manifest: Manifest = serde_json::from_slice(&fetched.bytes)
            .map_err(|e| OciError::Unsupported(format!("not a bundle artifact: {e}")))?;
        match (
            manifest.artifact_type.as_deref(),
            manifest.layers.as_slice(),
        ) {
            (Some(BUNDLE_ARTIFACT_TYPE), [layer]) if layer.media_type == BUNDLE_ARTIFACT_TYPE => {
                Ok((layer.digest.parse()?, layer.size))
            }
            _ => Err(OciError::Unsupported(
                "not a bundle artifact (one bundle layer, bundle artifact type)".into(),
            )),
        }
    }

    /// The bundle bytes of a layer found by [`bundle_layer`](Self::bundle_layer).
    pub fn bundle(&self, layer: OciDigest, size: u64) -> Result<Arc<Vec<u8>>, OciError> {
        if let Some(hit) = self.bundles.get(&layer) {
            return Ok(hit);
        }
        let registry = self.registry()?;
        let bytes = Arc::new(registry.blob(&self.repository, layer, size, size)?);
        self.bundles.insert(layer, bytes.clone());
        Ok(bytes)
    }

    /// Stores `bundle` and lists it under each tag; returns the artifact's digest.
    pub fn add(
        &self,
        bundle: &[u8],
        tags: &[String],
        predicate_type: &str,
    ) -> Result<OciDigest, OciError> {
        let registry = self.registry()?;
        let pushed = crate::referrers::push_bundle_artifact(
            registry,
            &self.repository,
            bundle,
            predicate_type,
            None,
        )?;
        for tag in tags {
            crate::referrers::add_to_index(
                registry,
                &self.repository.with_tag(tag),
                pushed.descriptor.clone(),
            )?;
        }
        Ok(pushed.digest)
    }

    /// Every index tag in the repository (the registry's tag list, bounded).
    pub fn tags(&self) -> Result<Vec<String>, OciError> {
        let all = self.registry()?.tags(&self.repository, 100_000)?;
        Ok(all
            .into_iter()
            .filter(|t| t.starts_with(TAG_PREFIX))
            .collect())
    }

    /// Whether the repository answers (for readiness probes): its tag list, or a 404
    /// for a repository nothing was pushed to yet.
    pub fn probe(&self) -> Result<(), OciError> {
        match self.registry()?.tags(&self.repository, 1) {
            Ok(_) | Err(OciError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
