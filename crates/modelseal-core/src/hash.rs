//! Hashing model files with BLAKE3: parallel across files and within large files, with a
//! bounded amount of the model resident at once.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::digest::Blake3Digest;
use crate::walk::ModelFile;

/// Files at least this large are hashed one at a time with every core on the one file;
/// smaller files are hashed one per core.
const LARGE_FILE: u64 = 4 << 20;

/// Bytes of a large file mapped at once. Peak resident memory stays near this figure
/// (plus one small-file buffer per core) however large the model is.
const WINDOW: u64 = 32 << 20;

/// Receives progress while a model is hashed. Called from several threads.
pub trait Progress: Sync {
    /// Hashing of `total_bytes` begins.
    fn begin(&self, _total_bytes: u64) {}
    /// `bytes` more bytes were hashed.
    fn advance(&self, bytes: u64);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _bytes: u64) {}
}

/// Why a file could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Reading failed.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file grew or shrank between the walk and the read.
    #[error("{} changed size while it was hashed ({expected} bytes, then {found})", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// Size when walked.
        expected: u64,
        /// Size when read.
        found: u64,
    },
}

/// A file's BLAKE3 hash and the number of bytes it covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHash {
    /// BLAKE3 of the content.
    pub blake3: Blake3Digest,
    /// Bytes hashed.
    pub size: u64,
}

/// Hashes every file, returning results in the order of `files`.
pub fn hash_files(
    files: &[ModelFile],
    progress: &dyn Progress,
) -> Result<Vec<FileHash>, HashError> {
    progress.begin(files.iter().map(|f| f.size).sum());
    let mut out: Vec<Option<FileHash>> = vec![None; files.len()];
    let (large, small): (Vec<usize>, Vec<usize>) =
        (0..files.len()).partition(|&i| files[i].size >= LARGE_FILE);
    // Small files: one file per core.
    let small_hashes = small
        .par_iter()
        .map(|&i| hash_small(&files[i].fs_path, files[i].size, progress))
        .collect::<Result<Vec<_>, _>>()?;
    for (&i, hash) in small.iter().zip(small_hashes) {
        out[i] = Some(hash);
    }
    // Large files: one at a time, all cores on each, so memory stays bounded.
    for &i in &large {
        out[i] = Some(hash_large(&files[i].fs_path, files[i].size, progress)?);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Hashes one file of any size.
pub fn hash_file(path: &Path, progress: &dyn Progress) -> Result<FileHash, HashError> {
    let size = std::fs::metadata(path).map_err(io_err(path))?.len();
    if size >= LARGE_FILE {
        hash_large(path, size, progress)
    } else {
        hash_small(path, size, progress)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HashError + '_ {
    move |source| HashError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hash_small(path: &Path, expected: u64, progress: &dyn Progress) -> Result<FileHash, HashError> {
    let file = File::open(path).map_err(io_err(path))?;
    // Read one byte past the expected end so growth is noticed.
    let mut data = Vec::with_capacity(expected as usize + 1);
    file.take(expected + 1)
        .read_to_end(&mut data)
        .map_err(io_err(path))?;
    let size = data.len() as u64;
    if size != expected {
        return Err(HashError::Changed {
            path: path.into(),
            expected,
            found: size,
        });
    }
    progress.advance(size);
    Ok(FileHash {
        blake3: blake3::hash(&data).into(),
        size,
    })
}

fn hash_large(path: &Path, expected: u64, progress: &dyn Progress) -> Result<FileHash, HashError> {
    let file = File::open(path).map_err(io_err(path))?;
    let size = file.metadata().map_err(io_err(path))?.len();
    if size != expected {
        return Err(HashError::Changed {
            path: path.into(),
            expected,
            found: size,
        });
    }
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0;
    while offset < size {
        let len = WINDOW.min(size - offset);
        let window = crate::mapped::Window::map(&file, offset, len).map_err(io_err(path))?;
        hasher.update_rayon(window.bytes());
        progress.advance(len);
        offset += len;
    }
    Ok(FileHash {
        blake3: hasher.finalize().into(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_plain_blake3_at_window_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            0,
            1,
            LARGE_FILE - 1,
            LARGE_FILE,
            WINDOW + 1,
            2 * WINDOW + 4097,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &data).unwrap();
            let hash = hash_file(&path, &NoProgress).unwrap();
            assert_eq!(hash.size, size);
            assert_eq!(
                hash.blake3,
                Blake3Digest::from(blake3::hash(&data)),
                "size {size}"
            );
        }
    }

    #[test]
    fn size_change_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"four").unwrap();
        let files = [ModelFile {
            path: crate::ManifestPath::parse("f").unwrap(),
            fs_path: path,
            size: 3,
        }];
        assert!(matches!(
            hash_files(&files, &NoProgress),
            Err(HashError::Changed {
                expected: 3,
                found: 4,
                ..
            })
        ));
    }
}
