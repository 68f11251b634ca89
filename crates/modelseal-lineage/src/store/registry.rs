//! A store kept in a registry repository (`spec/oci.md` §8): each bundle an artifact
//! whose tag names the subject digest it is filed under.

use std::path::{Path, PathBuf};

use modelseal_core::ArtifactDigest;
use modelseal_core::bundle::Bundle;
use modelseal_oci::store::{RegistryStore, tag_for};
use modelseal_oci::{OciError, Reference, RegistryOptions};

use super::{Lookup, Skipped, StoreBackend, StoreError, StoreLimits, StoredBundle};
use crate::stop::Stop;

/// A store in a registry repository (`oci://REGISTRY/REPOSITORY`).
#[derive(Debug)]
pub struct RegistryBackedStore {
    location: String,
    store: RegistryStore,
}

impl RegistryBackedStore {
    /// The store at `repository`, reached with `options`.
    pub fn new(repository: &str, options: RegistryOptions) -> Result<Self, StoreError> {
        let location = || repository.to_owned();
        let reference = Reference::parse(repository).map_err(|e| StoreError::Registry {
            location: location(),
            source: e.into(),
        })?;
        let store =
            RegistryStore::new(reference, options).map_err(|source| StoreError::Registry {
                location: location(),
                source,
            })?;
        Ok(Self {
            location: location(),
            store,
        })
    }

    fn error(&self, source: OciError) -> StoreError {
        StoreError::Registry {
            location: self.location.clone(),
            source,
        }
    }
}

impl StoreBackend for RegistryBackedStore {
    fn add(
        &self,
        bytes: &[u8],
        keys: &[ArtifactDigest],
        predicate_type: &str,
    ) -> Result<(), StoreError> {
        let tags: Vec<String> = keys
            .iter()
            .map(|k| tag_for(k.algorithm().name(), &k.to_hex()))
            .collect();
        self.store
            .add(bytes, &tags, predicate_type)
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Under the same limits and rules as a directory: entries over the per-file cap
    /// are skipped (judged by their descriptor's size, unread), and one over the
    /// per-digest byte or file cap, or past the stopping rule, makes the lookup
    /// incomplete. A registry that fails is a store error.
    fn lookup(
        &self,
        digest: &ArtifactDigest,
        limits: StoreLimits,
        stop: &Stop,
    ) -> Result<Lookup, StoreError> {
        let mut lookup = Lookup::default();
        let tag = tag_for(digest.algorithm().name(), &digest.to_hex());
        let entries = self
            .store
            .entries(&tag, limits.max_files_per_digest)
            .map_err(|e| self.error(e))?;
        if entries.len() > limits.max_files_per_digest {
            let reason = format!(
                "more than {} entries under tag {tag}, not read",
                limits.max_files_per_digest
            );
            lookup
                .skipped
                .push(Skipped::unused(Path::new(&self.location), reason.clone()));
            lookup.incomplete = Some(reason);
            return Ok(lookup);
        }
        let mut budget = limits.max_bytes_per_digest;
        for (i, entry) in entries.iter().enumerate() {
            let path = PathBuf::from(format!("{}@{}", self.location, entry.digest));
            if stop.reached() {
                lookup.incomplete = Some(format!(
                    "{} entries not read: out of time",
                    entries.len() - i
                ));
                break;
            }
            let planted = |e: &OciError| e.is_refusal() || matches!(e, OciError::NotFound(_));
            let (layer, size) = match self.store.bundle_layer(*entry) {
                Ok(found) => found,
                Err(e) if planted(&e) => {
                    lookup.skipped.push(Skipped::unusable(path, e.to_string()));
                    continue;
                }
                Err(e) => return Err(self.error(e)),
            };
            if size > limits.max_file_bytes {
                lookup.skipped.push(Skipped::unusable(
                    path,
                    format!(
                        "{size} bytes, over the limit of {} per file",
                        limits.max_file_bytes
                    ),
                ));
                continue;
            }
            if size > budget {
                let reason = format!(
                    "{size} bytes, over the {budget} left of the limit of {} per digest",
                    limits.max_bytes_per_digest
                );
                lookup.skipped.push(Skipped::unused(path, reason.clone()));
                lookup.incomplete = Some(reason);
                break;
            }
            let bytes = match self.store.bundle(layer, size) {
                Ok(bytes) => bytes,
                Err(e) if planted(&e) => {
                    lookup.skipped.push(Skipped::unusable(path, e.to_string()));
                    continue;
                }
                Err(e) => return Err(self.error(e)),
            };
            budget -= size;
            match Bundle::from_json(&bytes) {
                Err(e) => lookup
                    .skipped
                    .push(Skipped::unusable(path, modelseal_verify::error_chain(&e))),
                Ok(bundle) => lookup.bundles.push(StoredBundle {
                    sha256: layer.hex(),
                    path,
                    bundle,
                }),
            }
        }
        Ok(lookup)
    }

    fn probe(&self) -> Result<(), StoreError> {
        self.store.probe().map_err(|e| self.error(e))
    }

    fn digests(&self) -> Result<Vec<String>, StoreError> {
        let tags = self.store.tags().map_err(|e| self.error(e))?;
        let mut out: Vec<String> = tags
            .iter()
            .filter_map(|t| t.strip_prefix(modelseal_oci::store::TAG_PREFIX))
            .filter_map(|t| t.split_once('-'))
            .map(|(alg, hex)| format!("{alg}:{hex}"))
            .collect();
        out.sort();
        Ok(out)
    }

    fn is_registry(&self) -> bool {
        true
    }
}
