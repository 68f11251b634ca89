//! The manifest: every signed file's path, size and BLAKE3 hash, in canonical order.

use std::collections::HashMap;

use crate::digest::Blake3Digest;
use crate::merkle;
use crate::path::ManifestPath;

/// One signed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Where the file lies inside the model.
    pub path: ManifestPath,
    /// Its length in bytes.
    pub size: u64,
    /// Its BLAKE3 hash, equal to `b3sum` of the file.
    pub blake3: Blake3Digest,
}

/// A non-empty list of entries sorted by path bytes, with no path twice and no path that
/// is both a file and a directory of another file (`spec/manifest.md` §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<ManifestEntry>,
}

/// Why a list of entries is not a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// No entries at all.
    #[error("manifest lists no files")]
    Empty,
    /// The same path twice.
    #[error("manifest lists {0} more than once")]
    Duplicate(ManifestPath),
    /// Entries out of canonical order (only when order is required).
    #[error("manifest is not sorted: {after} comes after {before}")]
    Unsorted {
        /// The earlier entry.
        before: ManifestPath,
        /// The entry that should have come before it.
        after: ManifestPath,
    },
    /// A path that is a file and also the directory of another file.
    #[error("manifest lists {file} as a file and also {nested} inside it")]
    FileIsDirectory {
        /// The entry used as a file.
        file: ManifestPath,
        /// The entry that needs it to be a directory.
        nested: ManifestPath,
    },
    /// A recorded ignore path that is not a literal path.
    #[error("recorded ignore path refused")]
    IgnorePath(#[source] crate::path::PathError),
}

/// Refuses a list of ignore paths if any is not literal (`ManifestPath::check_ignore`):
/// the one rule for recorded and requested ignore paths alike.
pub fn check_ignore_paths(paths: &[ManifestPath]) -> Result<(), ManifestError> {
    paths
        .iter()
        .try_for_each(|p| p.check_ignore().map_err(ManifestError::IgnorePath))
}

impl Manifest {
    /// Builds a manifest from entries in any order (as a directory walk yields them).
    pub fn from_unsorted(mut entries: Vec<ManifestEntry>) -> Result<Self, ManifestError> {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Self::from_sorted(entries)
    }

    /// Builds a manifest from entries that must already be in canonical order, as a
    /// signed manifest must be: one model has exactly one manifest encoding.
    pub fn from_sorted(entries: Vec<ManifestEntry>) -> Result<Self, ManifestError> {
        if entries.is_empty() {
            return Err(ManifestError::Empty);
        }
        for pair in entries.windows(2) {
            let (before, after) = (&pair[0].path, &pair[1].path);
            match before.as_bytes().cmp(after.as_bytes()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(ManifestError::Duplicate(after.clone())),
                std::cmp::Ordering::Greater => {
                    return Err(ManifestError::Unsorted {
                        before: before.clone(),
                        after: after.clone(),
                    });
                }
            }
        }
        let files: HashMap<&str, &ManifestPath> =
            entries.iter().map(|e| (e.path.as_str(), &e.path)).collect();
        for entry in &entries {
            let path = entry.path.as_str();
            for (i, _) in path.match_indices('/') {
                if let Some(file) = files.get(&path[..i]) {
                    return Err(ManifestError::FileIsDirectory {
                        file: (*file).clone(),
                        nested: entry.path.clone(),
                    });
                }
            }
        }
        Ok(Self { entries })
    }

    /// Entries in canonical order.
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// The entry for `path`, if signed.
    pub fn get(&self, path: &str) -> Option<&ManifestEntry> {
        self.entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Sum of all file sizes.
    pub fn total_bytes(&self) -> u64 {
        // Saturating: a signed manifest may claim sizes no disk holds.
        self.entries
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.size))
    }

    /// The Merkle root that a statement's subject carries.
    pub fn root(&self) -> Blake3Digest {
        let leaves: Vec<_> = self
            .entries
            .iter()
            .map(|e| merkle::leaf_hash(&e.path, e.size, &e.blake3))
            .collect();
        merkle::root(&leaves).expect("a manifest is never empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, byte: u8) -> ManifestEntry {
        ManifestEntry {
            path: ManifestPath::parse(path).unwrap(),
            size: u64::from(byte),
            blake3: Blake3Digest::from_bytes([byte; 32]),
        }
    }

    #[test]
    fn sorts_by_bytes_not_by_components() {
        // '.' (0x2e) sorts before '/' (0x2f): "a.txt" lies between "a" dir files.
        let m =
            Manifest::from_unsorted(vec![entry("a/b.txt", 1), entry("a.txt", 2), entry("B", 3)])
                .unwrap();
        let order: Vec<_> = m.entries().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(order, ["B", "a.txt", "a/b.txt"]);
        assert_eq!(m.get("a.txt").unwrap().size, 2);
        assert!(m.get("a").is_none());
        assert_eq!(m.total_bytes(), 6);
    }

    #[test]
    fn rejects_bad_entry_lists() {
        assert_eq!(Manifest::from_unsorted(vec![]), Err(ManifestError::Empty));
        assert_eq!(
            Manifest::from_unsorted(vec![entry("x", 1), entry("x", 2)]),
            Err(ManifestError::Duplicate(ManifestPath::parse("x").unwrap()))
        );
        assert_eq!(
            Manifest::from_sorted(vec![entry("b", 1), entry("a", 2)]),
            Err(ManifestError::Unsorted {
                before: ManifestPath::parse("b").unwrap(),
                after: ManifestPath::parse("a").unwrap(),
            })
        );
        assert_eq!(
            Manifest::from_unsorted(vec![entry("a", 1), entry("a.txt", 1), entry("a/b", 2)]),
            Err(ManifestError::FileIsDirectory {
                file: ManifestPath::parse("a").unwrap(),
                nested: ManifestPath::parse("a/b").unwrap(),
            })
        );
    }

    #[test]
    fn root_binds_every_field() {
        let base = Manifest::from_unsorted(vec![entry("a", 1), entry("b", 2)])
            .unwrap()
            .root();
        let renamed = Manifest::from_unsorted(vec![entry("a", 1), entry("c", 2)])
            .unwrap()
            .root();
        let mut resized = entry("b", 2);
        resized.size = 3;
        let resized = Manifest::from_unsorted(vec![entry("a", 1), resized])
            .unwrap()
            .root();
        let rehashed = Manifest::from_unsorted(vec![entry("a", 1), entry("b", 9)]);
        let mut rehashed = rehashed.unwrap().entries().to_vec();
        rehashed[1].size = 2;
        let rehashed = Manifest::from_sorted(rehashed).unwrap().root();
        let dropped = Manifest::from_unsorted(vec![entry("a", 1)]).unwrap().root();
        let all = [base, renamed, resized, rehashed, dropped];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }
}
