//! The attestation store: bundles indexed by subject digest, in a directory
//! (`spec/lineage.md` §4) or a registry repository (`spec/oci.md` §8). Directory layout:
//! `STORE/<algorithm>/<hex>/<sha256 of the file>.json`.
//! A bundle is stored once under each of its subjects; its name is its content hash,
//! so adding the same bundle twice (even concurrently) writes the same bytes to the
//! same name, and every write goes through a temporary file and a rename, so a reader
//! never sees half a bundle and an interrupted add leaves only an ignored temp file.
//!
//! Nothing in a store is trusted: whoever can write to it can plant files. A lookup
//! therefore never fails because of one bad file: what is not a regular file, is too
//! large or does not parse is skipped and reported, and the search goes on.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use modelseal_core::bundle::{Bundle, BundleError};
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
use modelseal_core::statement::Statement;
use modelseal_core::{ArtifactDigest, DigestAlgorithm};
use sha2::Digest as _;

use modelseal_oci::store::{RegistryStore, tag_for};
use modelseal_oci::{OciError, Reference, RegistryOptions};

use crate::stop::Stop;

/// The largest file a lookup reads; larger ones are skipped unread. A bundle is a few
/// KiB; a manifest of a hundred thousand files is about 16 MiB.
pub const MAX_BUNDLE_BYTES: u64 = 16 << 20;
/// The most files a lookup considers under one digest (in name order); the rest are
/// counted as skipped, unread, so a flooded digest costs bounded work.
pub const MAX_BUNDLES_PER_DIGEST: usize = 1024;
/// The most bytes one lookup reads, over all its files.
pub const MAX_BYTES_PER_DIGEST: u64 = 64 << 20;
/// A digest directory is listed up to this many times `max_files_per_digest` entries
/// (misnamed ones included); past that the lookup is incomplete.
pub const LISTING_FACTOR: usize = 16;

/// How much one lookup may read. Files over `max_file_bytes` (or over what is left of
/// `max_bytes_per_digest`) are skipped unread, judged by their size before any byte is
/// read, so a planted multi-GiB file costs one `fstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// The largest file read.
    pub max_file_bytes: u64,
    /// The most bytes read over all the files of one digest.
    pub max_bytes_per_digest: u64,
    /// The most files considered under one digest.
    pub max_files_per_digest: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: MAX_BUNDLE_BYTES,
            max_bytes_per_digest: MAX_BYTES_PER_DIGEST,
            max_files_per_digest: MAX_BUNDLES_PER_DIGEST,
        }
    }
}

/// An attestation store: a directory, or a registry repository.
#[derive(Debug, Clone)]
pub struct AttestationStore {
    root: PathBuf,
    registry: Option<std::sync::Arc<RegistryStore>>,
    limits: StoreLimits,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the store failed.
    #[error("attestation store {}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a bundle.
    #[error("{} is not a bundle", path.display())]
    Bundle {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: BundleError,
    },
    /// The registry holding the store failed (unreachable, timed out, denied, or it
    /// served something unreadable). Lookups fail closed on it.
    #[error("attestation store {location}")]
    Registry {
        /// The store's `oci://` location.
        location: String,
        /// The cause.
        #[source]
        source: modelseal_oci::OciError,
    },
    /// A bundle whose payload names no subject digest the store can index.
    #[error("{} names no subject digest (blake3 or sha256)", path.display())]
    NoSubject {
        /// The file.
        path: PathBuf,
    },
}

/// One stored bundle.
#[derive(Debug, Clone)]
pub struct StoredBundle {
    /// Where it is.
    pub path: PathBuf,
    /// SHA-256 of its bytes (its name in the store).
    pub sha256: String,
    /// The parsed bundle. Nothing in it is verified by the store.
    pub bundle: Bundle,
}

/// A file a lookup did not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
    /// Whether the file itself is unusable (not a regular file, too large, not named by
    /// its content's hash, not a bundle): something planted or broken, as opposed to a
    /// good bundle that was not needed or did not pass (another key, an old summary).
    pub unusable: bool,
}

impl Skipped {
    /// A file that is unusable in itself.
    pub fn unusable(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
            unusable: true,
        }
    }

    /// A file (or group of files) that was fine as a file but not used.
    pub fn unused(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
            unusable: false,
        }
    }
}

/// What a lookup found: the bundles that parsed, and every file it skipped.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// Parsed bundles, in name order. Not verified.
    pub bundles: Vec<StoredBundle>,
    /// Files that were not used.
    pub skipped: Vec<Skipped>,
    /// Why the lookup did not consider every file under the digest, if it did not (a
    /// per-digest limit, the listing limit, or its stopping rule): the bundles found are
    /// then not all there are, and a caller that must not miss one (a hidden provenance
    /// can hide a denied input) fails closed.
    pub incomplete: Option<String>,
}

/// Why a file was not read.
enum Unread {
    /// The file itself is unusable (too large for any bundle, not a regular file, …).
    Skip(String),
    /// It would take the lookup past its per-digest byte budget.
    OverBudget(String),
}

const ALGORITHMS: &[DigestAlgorithm] = &[DigestAlgorithm::Blake3, DigestAlgorithm::Sha256];

impl AttestationStore {
    /// Opens (without creating) the store at `root`.
    pub fn open(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            registry: None,
            limits: StoreLimits::default(),
        }
    }

    /// Opens a store kept in a registry repository (`oci://REGISTRY/REPOSITORY`).
    pub fn open_registry(repository: &str, options: RegistryOptions) -> Result<Self, StoreError> {
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
            root: PathBuf::from(repository),
            registry: Some(std::sync::Arc::new(store)),
            limits: StoreLimits::default(),
        })
    }

    /// A directory or, for `oci://…`, a registry store.
    pub fn at(location: &str, options: RegistryOptions) -> Result<Self, StoreError> {
        if Reference::is_oci(location) {
            Self::open_registry(location, options)
        } else {
            Ok(Self::open(Path::new(location)))
        }
    }

    /// Whether the store is kept in a registry.
    pub fn is_registry(&self) -> bool {
        self.registry.is_some()
    }

    fn registry_error(&self, source: OciError) -> StoreError {
        StoreError::Registry {
            location: self.root.display().to_string(),
            source,
        }
    }

    /// The same store, read with other limits.
    pub fn with_limits(mut self, limits: StoreLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits lookups read with.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Adds a bundle file under each of its subject digests; returns the digests it
    /// was stored under. The bundle is parsed, not verified.
    pub fn add(&self, file: &Path) -> Result<Vec<ArtifactDigest>, StoreError> {
        let bytes = std::fs::read(file).map_err(|source| StoreError::Io {
            path: file.into(),
            source,
        })?;
        let bundle = Bundle::from_json(&bytes).map_err(|source| StoreError::Bundle {
            path: file.into(),
            source,
        })?;
        let keys = subject_keys(&bundle);
        if keys.is_empty() {
            return Err(StoreError::NoSubject { path: file.into() });
        }
        if let Some(registry) = &self.registry {
            let tags: Vec<String> = keys
                .iter()
                .map(|k| tag_for(k.algorithm().name(), &k.to_hex()))
                .collect();
            let predicate_type = serde_json::from_slice::<Statement>(&bundle.dsse_envelope.payload)
                .map(|s| s.predicate_type)
                .unwrap_or_default();
            registry
                .add(&bytes, &tags, &predicate_type)
                .map_err(|e| self.registry_error(e))?;
            return Ok(keys);
        }
        let name = format!("{}.json", hex::encode(sha2::Sha256::digest(&bytes)));
        for digest in &keys {
            let dir = self.dir_of(digest);
            std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })?;
            let target = dir.join(&name);
            write_atomic(&target, &bytes, Visibility::Public, Overwrite::Allow).map_err(
                |source| StoreError::Io {
                    path: target,
                    source,
                },
            )?;
        }
        Ok(keys)
    }

    fn dir_of(&self, digest: &ArtifactDigest) -> PathBuf {
        self.root
            .join(digest.algorithm().name())
            .join(digest.to_hex())
    }

    /// The bundles stored under `digest`, in name order, and the files skipped. Only
    /// failing to list the digest's directory is an error; an absent digest has none.
    /// Only files named as `store add` names them (`<sha256 of the content>.json`) are
    /// read, and only when the name is the content's hash; within the store's
    /// [`StoreLimits`]. Whoever can write to the store can always deny (by deleting, or
    /// by flooding these limits); nothing in it can make a bundle that does not verify
    /// count.
    pub fn bundles_for(&self, digest: &ArtifactDigest) -> Result<Lookup, StoreError> {
        self.bundles_for_until(digest, &Stop::never())
    }

    /// [`bundles_for`](Self::bundles_for) under a stopping rule, checked every 256
    /// directory entries and before each file: once it is reached the lookup ends
    /// `incomplete`, so a caller out of time stops within one file read.
    pub fn bundles_for_until(
        &self,
        digest: &ArtifactDigest,
        stop: &Stop,
    ) -> Result<Lookup, StoreError> {
        if let Some(registry) = &self.registry {
            return self.registry_lookup(registry, digest, stop);
        }
        let dir = self.dir_of(digest);
        let mut lookup = Lookup::default();
        // The algorithm and digest directories must be real directories, not links that
        // lead the lookup (and `store add`) elsewhere.
        for d in [dir.parent().unwrap_or(&self.root), dir.as_path()] {
            match std::fs::symlink_metadata(d) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    lookup.skipped.push(Skipped::unusable(
                        d,
                        "not a directory (a link or a file where a directory should be)",
                    ));
                    return Ok(lookup);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(lookup),
                Err(source) => {
                    return Err(StoreError::Io {
                        path: d.to_path_buf(),
                        source,
                    });
                }
            }
        }
        let entries = std::fs::read_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let limits = self.limits;
        // The listing is streamed and only the `max_files_per_digest` smallest names
        // are kept, so a directory flooded with millions of entries costs bounded memory;
        // past `LISTING_FACTOR` times that many entries it is not listed further.
        let listing_limit = limits.max_files_per_digest.saturating_mul(LISTING_FACTOR);
        let mut names = std::collections::BinaryHeap::new();
        let (mut listed, mut valid, mut misnamed) = (0usize, 0usize, 0usize);
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })?;
            listed += 1;
            if listed % 256 == 0 && stop.reached() {
                lookup.incomplete = Some("out of time while listing".into());
                return Ok(lookup);
            }
            if listed > listing_limit {
                lookup.incomplete = Some(format!(
                    "more than {listing_limit} entries under the digest; not listed further"
                ));
                return Ok(lookup);
            }
            let name = entry.file_name();
            match name.to_str().and_then(|n| n.strip_suffix(".json")) {
                Some(stem) if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    valid += 1;
                    names.push(stem.to_ascii_lowercase());
                    if names.len() > limits.max_files_per_digest {
                        names.pop(); // the largest name: the first in order are kept
                    }
                }
                // A temporary file of an add in progress, or something planted.
                _ => misnamed += 1,
            }
        }
        let names = names.into_sorted_vec();
        if misnamed > 0 {
            // Never opened, so never harmful (an interrupted add leaves one).
            lookup.skipped.push(Skipped::unused(
                &dir,
                format!("{misnamed} entries not named <sha256>.json, not read"),
            ));
        }
        if valid > names.len() {
            let reason = format!(
                "{} more files beyond the first {}, not read",
                valid - names.len(),
                limits.max_files_per_digest
            );
            lookup.skipped.push(Skipped::unused(&dir, reason.clone()));
            // The hop fails on an incomplete lookup: reading the first ones is no use.
            lookup.incomplete = Some(reason);
            return Ok(lookup);
        }
        let mut budget = limits.max_bytes_per_digest;
        for (i, stem) in names.iter().enumerate() {
            let path = dir.join(format!("{stem}.json"));
            if stop.reached() {
                lookup.incomplete =
                    Some(format!("{} files not read: out of time", names.len() - i));
                break;
            }
            let bytes = match read_bounded(&path, &limits, budget) {
                Err(Unread::Skip(reason)) => {
                    lookup.skipped.push(Skipped::unusable(path, reason));
                    continue;
                }
                Err(Unread::OverBudget(reason)) => {
                    lookup.skipped.push(Skipped::unused(path, reason.clone()));
                    lookup.incomplete = Some(reason);
                    break;
                }
                Ok(bytes) => bytes,
            };
            budget -= bytes.len() as u64;
            let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
            if sha256 != *stem {
                lookup.skipped.push(Skipped::unusable(
                    path,
                    "its name is not the SHA-256 of its content",
                ));
                continue;
            }
            match Bundle::from_json(&bytes) {
                Err(e) => lookup
                    .skipped
                    .push(Skipped::unusable(path, modelseal_verify::error_chain(&e))),
                Ok(bundle) => lookup.bundles.push(StoredBundle {
                    sha256,
                    path,
                    bundle,
                }),
            }
        }
        Ok(lookup)
    }

    /// A lookup in a registry store, under the same limits and rules as a directory:
    /// entries over the per-file cap are skipped (judged by their descriptor's size,
    /// unread), and one over the per-digest byte or file cap, or past the stopping rule,
    /// makes the lookup incomplete. A registry that fails is a store error.
    fn registry_lookup(
        &self,
        registry: &RegistryStore,
        digest: &ArtifactDigest,
        stop: &Stop,
    ) -> Result<Lookup, StoreError> {
        let limits = self.limits;
        let mut lookup = Lookup::default();
        let tag = tag_for(digest.algorithm().name(), &digest.to_hex());
        let entries = registry
            .entries(&tag, limits.max_files_per_digest)
            .map_err(|e| self.registry_error(e))?;
        if entries.len() > limits.max_files_per_digest {
            let reason = format!(
                "more than {} entries under tag {tag}, not read",
                limits.max_files_per_digest
            );
            lookup
                .skipped
                .push(Skipped::unused(&self.root, reason.clone()));
            lookup.incomplete = Some(reason);
            return Ok(lookup);
        }
        let mut budget = limits.max_bytes_per_digest;
        for (i, entry) in entries.iter().enumerate() {
            let path = PathBuf::from(format!("{}@{}", self.root.display(), entry.digest));
            if stop.reached() {
                lookup.incomplete = Some(format!(
                    "{} entries not read: out of time",
                    entries.len() - i
                ));
                break;
            }
            let planted = |e: &OciError| e.is_refusal() || matches!(e, OciError::NotFound(_));
            let (layer, size) = match registry.bundle_layer(*entry) {
                Ok(found) => found,
                Err(e) if planted(&e) => {
                    lookup.skipped.push(Skipped::unusable(path, e.to_string()));
                    continue;
                }
                Err(e) => return Err(self.registry_error(e)),
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
            let bytes = match registry.bundle(layer, size) {
                Ok(bytes) => bytes,
                Err(e) if planted(&e) => {
                    lookup.skipped.push(Skipped::unusable(path, e.to_string()));
                    continue;
                }
                Err(e) => return Err(self.registry_error(e)),
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

    /// Whether the store can be read at all (a readiness probe): a directory that can
    /// be listed, a registry repository that answers.
    pub fn probe(&self) -> Result<(), StoreError> {
        match &self.registry {
            Some(registry) => registry.probe().map_err(|e| self.registry_error(e)),
            // Listing the first entry is a real read of the directory, not just an open.
            None => std::fs::read_dir(&self.root)
                .and_then(|mut entries| entries.next().transpose().map(drop))
                .map_err(|source| StoreError::Io {
                    path: self.root.clone(),
                    source,
                }),
        }
    }

    /// Every indexed digest, as `algorithm:hex`, sorted.
    pub fn digests(&self) -> Result<Vec<String>, StoreError> {
        if let Some(registry) = &self.registry {
            let tags = registry.tags().map_err(|e| self.registry_error(e))?;
            let mut out: Vec<String> = tags
                .iter()
                .filter_map(|t| t.strip_prefix(modelseal_oci::store::TAG_PREFIX))
                .filter_map(|t| t.split_once('-'))
                .map(|(alg, hex)| format!("{alg}:{hex}"))
                .collect();
            out.sort();
            return Ok(out);
        }
        let mut out = Vec::new();
        for algorithm in ALGORITHMS {
            let dir = self.root.join(algorithm.name());
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Io { path: dir, source }),
            };
            for entry in entries.filter_map(Result::ok) {
                if let Some(name) = entry.file_name().to_str() {
                    out.push(format!("{}:{name}", algorithm.name()));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Reads a store file that must be a regular file (no link is followed, a FIFO cannot
/// block the open) of at most `limits.max_file_bytes` and `budget` bytes.
fn read_bounded(path: &Path, limits: &StoreLimits, budget: u64) -> Result<Vec<u8>, Unread> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Unread::Skip(format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| Unread::Skip(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(Unread::Skip("not a regular file".into()));
    }
    if meta.len() > limits.max_file_bytes {
        return Err(Unread::Skip(format!(
            "{} bytes, over the limit of {} per file",
            meta.len(),
            limits.max_file_bytes
        )));
    }
    if meta.len() > budget {
        return Err(Unread::OverBudget(format!(
            "{} bytes, over the {budget} left of the limit of {} per digest",
            meta.len(),
            limits.max_bytes_per_digest
        )));
    }
    let limit = limits.max_file_bytes.min(budget);
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Unread::Skip(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(Unread::OverBudget(format!(
            "grew past the limit of {limit} bytes while read"
        )));
    }
    Ok(bytes)
}

/// The subject digests of a bundle's statement that the store indexes: those of a
/// known algorithm in canonical form (others could never be looked up).
fn subject_keys(bundle: &Bundle) -> Vec<ArtifactDigest> {
    let Ok(statement) = serde_json::from_slice::<Statement>(&bundle.dsse_envelope.payload) else {
        return Vec::new();
    };
    let mut keys: Vec<ArtifactDigest> = statement
        .subject
        .iter()
        .flat_map(|s| {
            // Beside a BLAKE3 root, a sha256 is its keyless binding: no artifact to file
            // the bundle under (spec/sigstore.md §4).
            let bound = s.digest.contains_key("blake3");
            s.digest
                .iter()
                .filter(move |(algorithm, _)| !(bound && *algorithm == "sha256"))
        })
        .filter_map(|(algorithm, hex)| ArtifactDigest::from_entry(algorithm, hex).ok())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn digest() -> ArtifactDigest {
        format!("blake3:{}", "ab".repeat(32)).parse().unwrap()
    }

    #[test]
    fn a_linked_digest_directory_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join(format!("{}.json", "00".repeat(32))), b"{}").unwrap();
        let store = AttestationStore::open(&tmp.path().join("store"));
        std::fs::create_dir_all(store.root().join("blake3")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, store.dir_of(&digest())).unwrap();
        let lookup = store.bundles_for(&digest()).unwrap();
        assert!(lookup.bundles.is_empty());
        assert_eq!(lookup.skipped.len(), 1, "{:?}", lookup.skipped);
        assert!(lookup.skipped[0].reason.contains("not a directory"));
    }

    #[test]
    fn a_flooded_digest_costs_bounded_work() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AttestationStore::open(tmp.path());
        let dir = store.dir_of(&digest());
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..MAX_BUNDLES_PER_DIGEST + 10 {
            std::fs::write(dir.join(format!("{i:064x}.json")), b"x").unwrap();
        }
        let lookup = store.bundles_for(&digest()).unwrap();
        // The lookup is incomplete, so nothing is read: the hop fails whatever is there.
        assert_eq!(lookup.skipped.len(), 1, "{:?}", lookup.skipped);
        let first = &lookup.skipped[0].reason;
        assert!(first.contains("10 more files"), "{first}");
        assert_eq!(lookup.incomplete.as_deref(), Some(first.as_str()));
    }

    #[test]
    fn configured_limits_skip_large_files_unread_and_a_deadline_stops_the_lookup() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AttestationStore::open(tmp.path()).with_limits(StoreLimits {
            max_file_bytes: 100,
            max_bytes_per_digest: 150,
            max_files_per_digest: 10,
        });
        let dir = store.dir_of(&digest());
        std::fs::create_dir_all(&dir).unwrap();
        for (i, size) in [(1, 101), (2, 90), (3, 90)] {
            std::fs::write(dir.join(format!("{i:064x}.json")), vec![b'x'; size]).unwrap();
        }
        let lookup = store.bundles_for(&digest()).unwrap();
        let reasons: Vec<&str> = lookup.skipped.iter().map(|s| s.reason.as_str()).collect();
        // Too large for any bundle: skipped, and the lookup goes on.
        assert!(
            reasons[0].starts_with("101 bytes, over the limit of 100 per file"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("not the SHA-256"), "{reasons:?}");
        // 90 of the 150 bytes are spent: the third file is over what is left, so the
        // lookup has not seen everything and says so.
        assert!(
            reasons[2].starts_with("90 bytes, over the 60 left of the limit of 150 per digest"),
            "{reasons:?}"
        );
        assert_eq!(lookup.incomplete.as_deref(), Some(reasons[2]));
        let late = store
            .bundles_for_until(&digest(), &Stop::at(Instant::now()))
            .unwrap();
        assert!(late.skipped.is_empty(), "{:?}", late.skipped);
        assert_eq!(
            late.incomplete.as_deref(),
            Some("3 files not read: out of time")
        );
    }

    #[test]
    fn a_directory_flooded_with_entries_is_listed_only_so_far() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AttestationStore::open(tmp.path()).with_limits(StoreLimits {
            max_files_per_digest: 4,
            ..StoreLimits::default()
        });
        let dir = store.dir_of(&digest());
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..4 * LISTING_FACTOR + 1 {
            std::fs::write(dir.join(format!("planted-{i}")), b"").unwrap();
        }
        let lookup = store.bundles_for(&digest()).unwrap();
        assert_eq!(
            lookup.incomplete.as_deref(),
            Some("more than 64 entries under the digest; not listed further")
        );
    }
}
