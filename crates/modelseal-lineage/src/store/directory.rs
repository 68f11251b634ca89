//! A store kept in a directory (`spec/lineage.md` §4):
//! `STORE/<algorithm>/<hex>/<sha256 of the file>.json`. A bundle is stored once under
//! each of its subjects; its name is its content hash, so adding the same bundle twice
//! (even concurrently) writes the same bytes to the same name, and every write goes
//! through a temporary file and a rename, so a reader never sees half a bundle and an
//! interrupted add leaves only an ignored temp file.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use modelseal_core::bundle::Bundle;
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
use modelseal_core::{ArtifactDigest, DigestAlgorithm};
use sha2::Digest as _;

use super::{LISTING_FACTOR, Lookup, Skipped, StoreBackend, StoreError, StoreLimits, StoredBundle};
use crate::stop::Stop;

const ALGORITHMS: &[DigestAlgorithm] = &[DigestAlgorithm::Blake3, DigestAlgorithm::Sha256];

/// A store in a directory.
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    root: PathBuf,
}

impl DirectoryStore {
    /// The store at `root` (not created until a bundle is added).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// Where bundles about `digest` are kept.
    pub(super) fn dir_of(&self, digest: &ArtifactDigest) -> PathBuf {
        self.root
            .join(digest.algorithm().name())
            .join(digest.to_hex())
    }
}

impl StoreBackend for DirectoryStore {
    fn add(
        &self,
        bytes: &[u8],
        keys: &[ArtifactDigest],
        _predicate_type: &str,
    ) -> Result<(), StoreError> {
        let name = format!("{}.json", hex::encode(sha2::Sha256::digest(bytes)));
        for digest in keys {
            let dir = self.dir_of(digest);
            std::fs::create_dir_all(&self.root).map_err(|source| StoreError::Io {
                path: self.root.clone(),
                source,
            })?;
            // As lookup does: the algorithm and digest directories must be real
            // directories, each made or checked before anything goes below it, or a link
            // planted in the store would take the bundle elsewhere.
            for d in [dir.parent().unwrap_or(&self.root), dir.as_path()] {
                match std::fs::create_dir(d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(StoreError::Io {
                            path: d.to_path_buf(),
                            source,
                        });
                    }
                }
                if !std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
                    return Err(StoreError::Io {
                        path: d.to_path_buf(),
                        source: std::io::Error::other(
                            "not a directory (a link or a file where a directory should be)",
                        ),
                    });
                }
            }
            let target = dir.join(&name);
            write_atomic(&target, bytes, Visibility::Public, Overwrite::Allow).map_err(
                |source| StoreError::Io {
                    path: target,
                    source,
                },
            )?;
        }
        Ok(())
    }

    fn lookup(
        &self,
        digest: &ArtifactDigest,
        limits: StoreLimits,
        stop: &Stop,
    ) -> Result<Lookup, StoreError> {
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

    fn probe(&self) -> Result<(), StoreError> {
        // Listing the first entry is a real read of the directory, not just an open.
        std::fs::read_dir(&self.root)
            .and_then(|mut entries| entries.next().transpose().map(drop))
            .map_err(|source| StoreError::Io {
                path: self.root.clone(),
                source,
            })
    }

    fn digests(&self) -> Result<Vec<String>, StoreError> {
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

/// Why a file was not read.
enum Unread {
    /// The file itself is unusable (too large for any bundle, not a regular file, …).
    Skip(String),
    /// It would take the lookup past its per-digest byte budget.
    OverBudget(String),
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
