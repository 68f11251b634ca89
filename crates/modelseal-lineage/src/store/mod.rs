//! The attestation store: bundles indexed by subject digest, behind one trait
//! ([`StoreBackend`]) with two implementations, a directory ([`directory`],
//! `spec/lineage.md` §4) and a registry repository ([`registry`], `spec/oci.md` §8).
//!
//! Nothing in a store is trusted: whoever can write to it can plant files. A lookup
//! therefore never fails because of one bad file: what is not a regular file, is too
//! large or does not parse is skipped and reported, and the search goes on.

pub mod directory;
pub mod registry;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use modelseal_core::ArtifactDigest;
use modelseal_core::bundle::{Bundle, BundleError};
use modelseal_core::statement::Statement;
use modelseal_oci::{Reference, RegistryOptions};

pub use directory::DirectoryStore;
pub use registry::RegistryBackedStore;

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

/// Where bundles are kept: a directory, a registry repository, or another backend.
/// Implementations read within `limits`, never fail a lookup for one bad entry (it is
/// skipped and reported), and say when a lookup saw less than everything.
pub trait StoreBackend: std::fmt::Debug + Send + Sync {
    /// Files `bytes` (a parsed bundle of `predicate_type`) under each of `keys`.
    fn add(
        &self,
        bytes: &[u8],
        keys: &[ArtifactDigest],
        predicate_type: &str,
    ) -> Result<(), StoreError>;
    /// The bundles filed under `digest` (unverified), within `limits`, until `stop`.
    fn lookup(
        &self,
        digest: &ArtifactDigest,
        limits: StoreLimits,
        stop: &Stop,
    ) -> Result<Lookup, StoreError>;
    /// Whether the store can be read at all (a readiness probe).
    fn probe(&self) -> Result<(), StoreError>;
    /// Every indexed digest, as `algorithm:hex`, sorted.
    fn digests(&self) -> Result<Vec<String>, StoreError>;
    /// Whether the store is kept in a registry.
    fn is_registry(&self) -> bool {
        false
    }
}

/// A bundle read and indexed, ready to be filed by [`AttestationStore::add_prepared`].
#[derive(Debug, Clone)]
pub struct PreparedBundle {
    bytes: Vec<u8>,
    keys: Vec<ArtifactDigest>,
    predicate_type: String,
}

/// An attestation store: a backend, read within limits.
#[derive(Debug, Clone)]
pub struct AttestationStore {
    location: PathBuf,
    backend: Arc<dyn StoreBackend>,
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

impl AttestationStore {
    /// Opens (without creating) the store in the directory `root`.
    pub fn open(root: &Path) -> Self {
        Self::with_backend(root, Arc::new(DirectoryStore::new(root)))
    }

    /// Opens a store kept in a registry repository (`oci://REGISTRY/REPOSITORY`).
    pub fn open_registry(repository: &str, options: RegistryOptions) -> Result<Self, StoreError> {
        let backend = RegistryBackedStore::new(repository, options)?;
        Ok(Self::with_backend(Path::new(repository), Arc::new(backend)))
    }

    /// A store on any backend; `location` names it in messages.
    pub fn with_backend(location: &Path, backend: Arc<dyn StoreBackend>) -> Self {
        Self {
            location: location.to_path_buf(),
            backend,
            limits: StoreLimits::default(),
        }
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
        self.backend.is_registry()
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

    /// The store's directory (or its `oci://` location).
    pub fn root(&self) -> &Path {
        &self.location
    }

    /// Adds a bundle file under each of its subject digests; returns the digests it
    /// was stored under. The bundle is parsed, not verified.
    pub fn add(&self, file: &Path) -> Result<Vec<ArtifactDigest>, StoreError> {
        self.add_prepared(&Self::prepare(file)?)
    }

    /// Reads a bundle file and works out everything [`add`](Self::add) needs, writing
    /// nothing: so a caller adding several can find the one that cannot be added before
    /// any is.
    pub fn prepare(file: &Path) -> Result<PreparedBundle, StoreError> {
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
        let predicate_type = serde_json::from_slice::<Statement>(&bundle.dsse_envelope.payload)
            .map(|s| s.predicate_type)
            .unwrap_or_default();
        Ok(PreparedBundle {
            bytes,
            keys,
            predicate_type,
        })
    }

    /// Files a prepared bundle (the bytes read then, not the file as it is now); returns
    /// the digests it was stored under.
    pub fn add_prepared(&self, bundle: &PreparedBundle) -> Result<Vec<ArtifactDigest>, StoreError> {
        self.backend
            .add(&bundle.bytes, &bundle.keys, &bundle.predicate_type)?;
        Ok(bundle.keys.clone())
    }

    /// The bundles stored under `digest`, in name order, and the files skipped. Only
    /// failing to list the digest's entries is an error; an absent digest has none.
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
        self.backend.lookup(digest, self.limits, stop)
    }

    /// Whether the store can be read at all (a readiness probe): a directory that can
    /// be listed, a registry repository that answers.
    pub fn probe(&self) -> Result<(), StoreError> {
        self.backend.probe()
    }

    /// Every indexed digest, as `algorithm:hex`, sorted.
    pub fn digests(&self) -> Result<Vec<String>, StoreError> {
        self.backend.digests()
    }
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
        std::os::unix::fs::symlink(
            &elsewhere,
            DirectoryStore::new(store.root()).dir_of(&digest()),
        )
        .unwrap();
        let lookup = store.bundles_for(&digest()).unwrap();
        assert!(lookup.bundles.is_empty());
        assert_eq!(lookup.skipped.len(), 1, "{:?}", lookup.skipped);
        assert!(lookup.skipped[0].reason.contains("not a directory"));
    }

    #[test]
    fn add_does_not_follow_a_linked_algorithm_or_digest_directory() {
        // Twelfth attack review: lookup refused the links, add followed them and wrote
        // the bundle outside the store, reporting success.
        let tmp = tempfile::tempdir().unwrap();
        let bundle = tmp.path().join("m.sig");
        let key =
            modelseal_core::SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519).unwrap();
        std::fs::create_dir(tmp.path().join("m")).unwrap();
        std::fs::write(tmp.path().join("m/w.bin"), b"w").unwrap();
        let signed = modelseal_core::sign_model(
            &tmp.path().join("m"),
            &modelseal_core::SignOptions::default(),
            &key,
            &modelseal_core::hash::NoProgress,
        )
        .unwrap();
        std::fs::write(&bundle, signed.bundle.to_json()).unwrap();
        for linked in ["algorithm", "digest"] {
            let elsewhere = tmp.path().join(format!("elsewhere-{linked}"));
            std::fs::create_dir(&elsewhere).unwrap();
            let store = AttestationStore::open(&tmp.path().join(format!("store-{linked}")));
            let digest = ArtifactDigest::blake3(&signed.root);
            let dir = DirectoryStore::new(store.root()).dir_of(&digest);
            if linked == "algorithm" {
                std::fs::create_dir_all(store.root()).unwrap();
                std::os::unix::fs::symlink(&elsewhere, dir.parent().unwrap()).unwrap();
            } else {
                std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
            }
            let err = store.add(&bundle).unwrap_err();
            assert!(
                std::error::Error::source(&err)
                    .is_some_and(|e| e.to_string().contains("not a directory")),
                "{linked}: {err}"
            );
            let written: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().flatten().collect();
            assert!(written.is_empty(), "{linked}: made {written:?}");
        }
    }

    #[test]
    fn a_flooded_digest_costs_bounded_work() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AttestationStore::open(tmp.path());
        let dir = DirectoryStore::new(store.root()).dir_of(&digest());
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
        let dir = DirectoryStore::new(store.root()).dir_of(&digest());
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
        let dir = DirectoryStore::new(store.root()).dir_of(&digest());
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
