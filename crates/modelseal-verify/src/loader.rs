//! Verified loading (`spec/loading.md`): open a signed model with its signature, signer
//! and file set checked but no bytes hashed, then verify each byte range as it is read,
//! against the signed per-file BLAKE3 roots, with the outboard trees written beside the
//! signature. The bytes handed out are the very bytes that were verified.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bao_tree::ChunkNum;
use bao_tree::io::outboard::PreOrderMemOutboard;
use modelseal_core::outboard::{self, BLOCK_BYTES};
use modelseal_core::walk::SymlinkPolicy;
use modelseal_core::{Bundle, Manifest, ManifestEntry};

use crate::envelope::{Signer, verify_envelope};
use crate::error::{FileDigest, FileMismatch, ModifiedFile, VerifyError};
use crate::files::{find_files, signed_manifest};
use crate::{TrustPolicy, VerifyOptions};

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The path is not in the signed manifest.
    #[error("{0} is not a signed file of this model")]
    NotSigned(String),
    /// The range reaches past the file's signed size.
    #[error("{path}: range {start}..{end} is outside the signed size of {size} bytes")]
    OutOfBounds {
        /// The file.
        path: String,
        /// Requested start.
        start: u64,
        /// Requested end.
        end: u64,
        /// Signed size.
        size: u64,
    },
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The outboard does not belong to this file (wrong length, or its hashes do not lead
    /// to the signed root).
    #[error("{path}: the outboard tree does not match the signed BLAKE3 root")]
    Outboard {
        /// The file.
        path: String,
    },
    /// Bytes that differ from the signed ones.
    #[error(
        "{path}: bytes at offset {offset} do not match the signed BLAKE3 root (tampered or corrupted)"
    )]
    Tampered {
        /// The file.
        path: String,
        /// First offset of the chunk group that failed.
        offset: u64,
    },
}

/// A signed model opened for verified reads.
#[derive(Debug)]
pub struct ModelReader {
    root: PathBuf,
    single_file: bool,
    manifest: Manifest,
    outboards: Option<PathBuf>,
    signer: Signer,
    name: Option<String>,
    files: HashMap<String, PathBuf>,
}

impl ModelReader {
    /// Checks the bundle (signer, signature, native manifest) and that the model has
    /// exactly the signed files with the signed sizes, without hashing anything.
    /// `outboards` is the directory `modelseal outboard` wrote (`SIGNATURE.outboard`);
    /// without it, each large file is verified whole on its first read.
    pub fn open(
        root: &Path,
        bundle: &Bundle,
        policy: &TrustPolicy,
        options: &VerifyOptions,
        outboards: Option<&Path>,
    ) -> Result<Self, VerifyError> {
        let verified = verify_envelope(bundle, policy)?;
        let signed = signed_manifest(&verified)?;
        let mut walk = options.walk.clone();
        walk.ignore
            .extend(signed.predicate.ignore_paths.iter().cloned());
        if signed.predicate.allow_symlinks {
            walk.symlinks = SymlinkPolicy::FollowInside;
        }
        let names: Vec<_> = signed
            .manifest
            .entries()
            .iter()
            .map(|e| e.path.clone())
            .collect();
        let found = find_files(root, &walk, &names, options.ignore_unsigned_files)?;
        let mut mismatch = FileMismatch::default();
        let mut files = HashMap::new();
        for file in found {
            match signed.manifest.get(file.path.as_str()) {
                None => mismatch.extra.push(file.path.to_string()),
                Some(entry) if entry.size != file.size => mismatch.modified.push(ModifiedFile {
                    path: file.path.to_string(),
                    expected: FileDigest {
                        algorithm: "blake3".into(),
                        hex: entry.blake3.to_hex(),
                    },
                    found: None,
                    expected_size: Some(entry.size),
                    found_size: Some(file.size),
                }),
                Some(_) => {
                    files.insert(file.path.to_string(), file.fs_path);
                }
            }
        }
        for entry in signed.manifest.entries() {
            let present = files.contains_key(entry.path.as_str())
                || mismatch
                    .modified
                    .iter()
                    .any(|m| m.path == entry.path.as_str());
            if !present {
                mismatch.missing.push(entry.path.to_string());
            }
        }
        mismatch.into_result()?;
        Ok(Self {
            root: root.to_path_buf(),
            single_file: std::fs::metadata(root).is_ok_and(|m| m.is_file()),
            manifest: signed.manifest,
            outboards: outboards.map(Path::to_path_buf),
            signer: verified.signer,
            name: signed.name,
            files,
        })
    }

    /// Who signed the model.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The signed subject name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The signed files, in manifest order.
    pub fn entries(&self) -> &[ManifestEntry] {
        self.manifest.entries()
    }

    /// The signed size of `path`.
    pub fn size(&self, path: &str) -> Result<u64, ReadError> {
        self.entry(path).map(|e| e.size)
    }

    fn entry(&self, path: &str) -> Result<&ManifestEntry, ReadError> {
        self.manifest
            .get(path)
            .ok_or_else(|| ReadError::NotSigned(path.to_owned()))
    }

    /// Reads and verifies `range` of the signed file `path`. Only the 64 KiB chunk
    /// groups that overlap the range are read and hashed (plus the outboard), so the
    /// cost follows the range, not the file.
    pub fn read_range(&self, path: &str, range: Range<u64>) -> Result<Vec<u8>, ReadError> {
        let entry = self.entry(path)?;
        if range.start > range.end || range.end > entry.size {
            return Err(ReadError::OutOfBounds {
                path: path.to_owned(),
                start: range.start,
                end: range.end,
                size: entry.size,
            });
        }
        let file = self.fs_path(path);
        let outboard = self.outboard(entry)?;
        let Some(outboard) = outboard else {
            // Small file, or no outboard: verify it whole, then hand out the slice.
            let data = read_exact_at(&file, path, 0, entry.size)?;
            if blake3::hash(&data).as_bytes() != entry.blake3.as_bytes() {
                return Err(ReadError::Tampered {
                    path: path.to_owned(),
                    offset: 0,
                });
            }
            return Ok(data[range.start as usize..range.end as usize].to_vec());
        };
        let start = range.start / BLOCK_BYTES * BLOCK_BYTES;
        let end = range
            .end
            .div_ceil(BLOCK_BYTES)
            .saturating_mul(BLOCK_BYTES)
            .min(entry.size)
            .max(start);
        let data = read_exact_at(&file, path, start, end - start)?;
        check_chunks(path, entry, outboard, start, &data)?;
        let from = (range.start - start) as usize;
        Ok(data[from..from + (range.end - range.start) as usize].to_vec())
    }

    /// Reads and verifies the whole of `path`.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        let size = self.size(path)?;
        self.read_range(path, 0..size)
    }

    /// Verifies every byte of every signed file (one full pass, as `verify` does).
    pub fn verify_all(&self) -> Result<(), ReadError> {
        for entry in self.manifest.entries() {
            let path = entry.path.as_str();
            let data = read_exact_at(&self.fs_path(path), path, 0, entry.size)?;
            if blake3::hash(&data).as_bytes() != entry.blake3.as_bytes() {
                return Err(ReadError::Tampered {
                    path: path.to_owned(),
                    offset: 0,
                });
            }
        }
        Ok(())
    }

    /// Where the signed file `path` is on disk.
    pub fn fs_path_of(&self, path: &str) -> PathBuf {
        self.fs_path(path)
    }

    fn fs_path(&self, path: &str) -> PathBuf {
        match self.files.get(path) {
            Some(p) => p.clone(),
            None if self.single_file => self.root.clone(),
            None => self.root.join(path),
        }
    }

    /// The outboard of a large file, if one was written; its length is checked here,
    /// its hashes as chunks are verified.
    fn outboard(&self, entry: &ManifestEntry) -> Result<Option<Vec<u8>>, ReadError> {
        let Some(dir) = &self.outboards else {
            return Ok(None);
        };
        if entry.size <= BLOCK_BYTES {
            return Ok(None);
        }
        let file = outboard::outboard_file(dir, &entry.path);
        let data = match std::fs::read(&file) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ReadError::Io {
                    path: file.display().to_string(),
                    source,
                });
            }
        };
        if data.len() as u64 != outboard::tree(entry.size).outboard_size() {
            return Err(ReadError::Outboard {
                path: entry.path.to_string(),
            });
        }
        Ok(Some(data))
    }
}

/// Verifies `data`, the file's bytes from `start` (a group boundary) on, against the
/// signed root through the outboard.
fn check_chunks(
    path: &str,
    entry: &ManifestEntry,
    outboard: Vec<u8>,
    start: u64,
    data: &[u8],
) -> Result<(), ReadError> {
    if data.is_empty() {
        return Ok(());
    }
    let tree = outboard::tree(entry.size);
    let ob = PreOrderMemOutboard {
        root: blake3::Hash::from(*entry.blake3.as_bytes()),
        tree,
        data: outboard,
    };
    let first = ChunkNum(start / 1024);
    let last = ChunkNum((start + data.len() as u64).div_ceil(1024));
    let wanted = bao_tree::ChunkRanges::from(first..last);
    let reader = Window { start, data };
    let mut covered = first;
    for valid in bao_tree::io::sync::valid_ranges(ob, reader, &wanted) {
        let Ok(valid) = valid else {
            // The outboard's hashes do not lead to the signed root.
            return Err(ReadError::Outboard {
                path: path.to_owned(),
            });
        };
        if valid.start != covered {
            break;
        }
        covered = valid.end;
    }
    if covered < last {
        return Err(ReadError::Tampered {
            path: path.to_owned(),
            offset: covered.0 * 1024 / BLOCK_BYTES * BLOCK_BYTES,
        });
    }
    Ok(())
}

/// The bytes read for a range, seen as a file from which only that range is readable.
struct Window<'a> {
    start: u64,
    data: &'a [u8],
}

impl positioned_io::ReadAt for Window<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(from) = pos.checked_sub(self.start) else {
            return Err(std::io::Error::other("read before the verified window"));
        };
        let from = usize::try_from(from).map_err(std::io::Error::other)?;
        let available = self.data.get(from..).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        Ok(n)
    }
}

fn read_exact_at(file: &Path, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
    use std::os::unix::fs::FileExt;
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let handle = std::fs::File::open(file).map_err(io)?;
    let mut buf =
        vec![0u8; usize::try_from(len).map_err(|_| io(std::io::Error::other("range too large")))?];
    handle.read_exact_at(&mut buf, offset).map_err(io)?;
    Ok(buf)
}
