//! The attestation store: a directory of bundles indexed by subject digest
//! (`spec/lineage.md` §4). Layout: `STORE/<algorithm>/<hex>/<sha256 of the file>.json`.
//! A bundle is stored once under each of its subjects; its name is its content hash,
//! so adding the same bundle twice (even concurrently) writes the same bytes to the
//! same name, and every write goes through a temporary file and a rename, so a reader
//! never sees half a bundle and an interrupted add leaves only an ignored temp file.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::bundle::{Bundle, BundleError};
use crate::fsio::{Overwrite, Visibility, write_atomic};
use crate::statement::Statement;

/// A store directory.
#[derive(Debug, Clone)]
pub struct AttestationStore {
    root: PathBuf,
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

const ALGORITHMS: &[&str] = &["blake3", "sha256"];

impl AttestationStore {
    /// Opens (without creating) the store at `root`.
    pub fn open(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Adds a bundle file under each of its subject digests; returns the index keys
    /// (`algorithm:hex`) it was stored under. The bundle is parsed, not verified.
    pub fn add(&self, file: &Path) -> Result<Vec<String>, StoreError> {
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
        let name = format!("{}.json", hex::encode(sha2::Sha256::digest(&bytes)));
        for (algorithm, hex) in &keys {
            let dir = self.root.join(algorithm).join(hex);
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
        Ok(keys.into_iter().map(|(a, h)| format!("{a}:{h}")).collect())
    }

    /// Every bundle stored under `algorithm:hex`, in name order. An absent digest has
    /// none; files that are not bundles are reported, not skipped.
    pub fn bundles_for(&self, algorithm: &str, hex: &str) -> Result<Vec<StoredBundle>, StoreError> {
        if !ALGORITHMS.contains(&algorithm) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let dir = self.root.join(algorithm).join(hex.to_ascii_lowercase());
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let bytes = std::fs::read(&path).map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                let bundle = Bundle::from_json(&bytes).map_err(|source| StoreError::Bundle {
                    path: path.clone(),
                    source,
                })?;
                Ok(StoredBundle {
                    sha256: hex::encode(sha2::Sha256::digest(&bytes)),
                    path,
                    bundle,
                })
            })
            .collect()
    }

    /// Every indexed digest, as `algorithm:hex`, sorted.
    pub fn digests(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for algorithm in ALGORITHMS {
            let dir = self.root.join(algorithm);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Io { path: dir, source }),
            };
            for entry in entries.filter_map(Result::ok) {
                if let Some(name) = entry.file_name().to_str() {
                    out.push(format!("{algorithm}:{name}"));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The (algorithm, hex) subject digests of a bundle's statement that the store indexes.
fn subject_keys(bundle: &Bundle) -> Vec<(String, String)> {
    let Ok(statement) = serde_json::from_slice::<Statement>(&bundle.dsse_envelope.payload) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for subject in &statement.subject {
        for algorithm in ALGORITHMS {
            if let Some(hex) = subject.digest.get(*algorithm) {
                if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    keys.push(((*algorithm).to_owned(), hex.to_ascii_lowercase()));
                }
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}
