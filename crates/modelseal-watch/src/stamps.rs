//! Stat polling: the metadata each key was checked with, compared every stat interval
//! with what it is now. It catches writes that the model's directory watch never hears
//! of: through a hard link under another name, through a shared mapping, to a linked
//! file outside the model, or a rename of a directory above the model. It reads no
//! bytes: one `stat` per stamped path per interval.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// What a path's metadata says about its contents and identity. Any write moves the
/// change time, and a replaced file or directory has another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// Whether both are the same file (device and inode), whatever its contents.
    pub fn same_file(&self, other: &Self) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }

    /// Device and inode.
    pub fn ids(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// The stamp of `path` now, following links; `None` when it cannot be read, which
    /// differs from any stamp it had while it existed.
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// The paths a key was checked with and their stamps, taken before the check read
/// anything: a change after that moment, even during the check, shows as a difference.
pub type Stamped = Vec<(PathBuf, Option<Stamp>)>;

/// Stamps `paths` now.
pub fn stamp(paths: impl IntoIterator<Item = PathBuf>) -> Stamped {
    // A set, not a scan of `out`: a model may hold tens of thousands of directories.
    let mut seen = std::collections::HashSet::new();
    let mut out: Stamped = vec![];
    for path in paths {
        if seen.insert(path.clone()) {
            let stamp = Stamp::of(&path);
            out.push((path, stamp));
        }
    }
    out
}

/// Which path of a key's stamps differs now, if any.
pub fn first_difference(stamped: &Stamped) -> Option<usize> {
    stamped
        .iter()
        .position(|(path, was)| Stamp::of(path) != *was)
}

/// The stamps of every checked key.
#[derive(Default)]
pub struct Stamps(Mutex<HashMap<String, Stamped>>);

impl Stamps {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Stamped>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps the stamps `key`'s recorded verdict was reached with.
    pub fn set(&self, key: &str, stamped: Stamped) {
        self.map().insert(key.to_owned(), stamped);
    }

    /// Forgets `key` (no longer signed, or its check was stale).
    pub fn remove(&self, key: &str) {
        self.map().remove(key);
    }

    /// Keeps only the keys `keep` accepts.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.map().retain(|key, _| keep(key));
    }

    /// A copy to compare without holding the lock through the `stat`s.
    pub fn snapshot(&self) -> Vec<(String, Stamped)> {
        self.map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Forgets `key` if its stamps are still `seen`, so one change is reported once;
    /// says whether it did (a check that stamped afresh meanwhile wins).
    pub fn take_if(&self, key: &str, seen: &Stamped) -> bool {
        let mut map = self.map();
        if map.get(key) == Some(seen) {
            map.remove(key);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_renames_and_hard_link_writes_change_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        let before = stamp([file.clone()]);
        assert_eq!(first_difference(&before), None);

        // Same length, written through another name for the same inode.
        let link = dir.path().join("link");
        std::fs::hard_link(&file, &link).unwrap();
        let after_link = stamp([file.clone()]);
        assert_eq!(first_difference(&before), Some(0), "a new link moves ctime");
        std::fs::write(&link, b"abd").unwrap();
        assert_eq!(first_difference(&after_link), Some(0));

        // Replaced by another file of the same size.
        let now = stamp([file.clone()]);
        let other = dir.path().join("other");
        std::fs::write(&other, b"abd").unwrap();
        std::fs::rename(&other, &file).unwrap();
        assert_eq!(first_difference(&now), Some(0));

        // Gone.
        let now = stamp([file.clone()]);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(first_difference(&now), Some(0));
    }
}
