//! Verified loading (`spec/loading.md`): open a signed model with its signature, signer
//! and file set checked but no bytes hashed, then verify each byte range as it is read,
//! against the signed per-file BLAKE3 roots, with the outboard trees written beside the
//! signature. The bytes handed out are the very bytes that were verified.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bao_tree::ChunkNum;
use bao_tree::io::outboard::PreOrderOutboard;
use modelseal_core::open::FileId;
use modelseal_core::outboard::{self, BLOCK_BYTES};
use modelseal_core::walk::SymlinkPolicy;
use modelseal_core::{Bundle, Manifest, ManifestEntry};
use positioned_io::RandomAccessFile;

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
    /// The path no longer leads to the file opened: swapped for a link, a FIFO or another
    /// file after the model was opened.
    #[error("{path} changed after the model was opened: {reason}")]
    Swapped {
        /// The file.
        path: String,
        /// What it is now.
        reason: modelseal_core::open::NotTheFile,
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
    files: HashMap<String, (PathBuf, FileId)>,
    /// Outboards opened so far, by file. Only the hash pairs a read needs are read.
    outboard_cache: Mutex<HashMap<String, Arc<RandomAccessFile>>>,
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
        crate::check_expected(&verified, options)?;
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
                    files.insert(file.path.to_string(), (file.fs_path, file.identity));
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
            outboard_cache: Mutex::new(HashMap::new()),
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

    /// The model's identity: its manifest's BLAKE3 root (the signed subject digest).
    pub fn root(&self) -> modelseal_core::ArtifactDigest {
        modelseal_core::ArtifactDigest::blake3(&self.manifest.root())
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
        let span = self.verified_span(path, range.clone())?;
        let mut data = vec![0u8; (span.end - span.start) as usize];
        self.read_span_into(path, span.clone(), &mut data)?;
        // Hand out the verified bytes themselves: trim the padding in place.
        data.truncate((range.end - span.start) as usize);
        data.drain(..(range.start - span.start) as usize);
        Ok(data)
    }

    /// The bytes a verified read of `range` must cover: the range widened to whole
    /// 64 KiB groups when the file has an outboard, else the whole file.
    pub fn verified_span(&self, path: &str, range: Range<u64>) -> Result<Range<u64>, ReadError> {
        let entry = self.entry(path)?;
        if range.start > range.end || range.end > entry.size {
            return Err(ReadError::OutOfBounds {
                path: path.to_owned(),
                start: range.start,
                end: range.end,
                size: entry.size,
            });
        }
        if self.outboard(entry)?.is_none() {
            return Ok(0..entry.size);
        }
        let start = range.start / BLOCK_BYTES * BLOCK_BYTES;
        let end = range
            .end
            .div_ceil(BLOCK_BYTES)
            .saturating_mul(BLOCK_BYTES)
            .min(entry.size)
            .max(start);
        Ok(start..end)
    }

    /// Reads `span` (as [`Self::verified_span`] gave it) of `path` into `buf`, which must
    /// be exactly as long, and verifies it there: callers that own the destination
    /// (a Python `bytes`, say) get verified bytes with no further copy.
    pub fn read_span_into(
        &self,
        path: &str,
        span: Range<u64>,
        buf: &mut [u8],
    ) -> Result<(), ReadError> {
        let entry = self.entry(path)?;
        if buf.len() as u64 != span.end.saturating_sub(span.start) || span.end > entry.size {
            return Err(ReadError::OutOfBounds {
                path: path.to_owned(),
                start: span.start,
                end: span.end,
                size: entry.size,
            });
        }
        read_exact_into(&self.open_file(path)?, path, span.start, buf)?;
        match self.outboard(entry)? {
            Some(outboard) => check_chunks(path, entry, &outboard, span.start, buf),
            _ => {
                if span != (0..entry.size) {
                    return Err(ReadError::OutOfBounds {
                        path: path.to_owned(),
                        start: span.start,
                        end: span.end,
                        size: entry.size,
                    });
                }
                let mut hasher = blake3::Hasher::new();
                hasher.update_rayon(buf);
                if hasher.finalize().as_bytes() != entry.blake3.as_bytes() {
                    return Err(ReadError::Tampered {
                        path: path.to_owned(),
                        offset: 0,
                    });
                }
                Ok(())
            }
        }
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
            let data = read_exact_at(&self.open_file(path)?, path, 0, entry.size)?;
            if blake3::hash(&data).as_bytes() != entry.blake3.as_bytes() {
                return Err(ReadError::Tampered {
                    path: path.to_owned(),
                    offset: 0,
                });
            }
        }
        Ok(())
    }

    /// Opens the signed file `path` for reading: not through a link, never blocking on
    /// a FIFO, and only if it is still the file `open` found (device and inode).
    pub fn open_file(&self, path: &str) -> Result<std::fs::File, ReadError> {
        let (fs_path, identity) = match self.files.get(path) {
            Some((p, id)) => (p.clone(), Some(*id)),
            None if self.single_file => (self.root.clone(), None),
            None => (self.root.join(path), None),
        };
        modelseal_core::open::open_checked(&fs_path, identity)
            .map_err(|source| ReadError::Io {
                path: path.to_owned(),
                source,
            })?
            .map_err(|reason| ReadError::Swapped {
                path: path.to_owned(),
                reason,
            })
    }

    /// The outboard of a large file, if one was written; its length is checked here,
    /// its hashes as chunks are verified.
    fn outboard(&self, entry: &ManifestEntry) -> Result<Option<Arc<RandomAccessFile>>, ReadError> {
        let Some(dir) = &self.outboards else {
            return Ok(None);
        };
        if entry.size <= BLOCK_BYTES {
            return Ok(None);
        }
        let mut cache = self
            .outboard_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = cache.get(entry.path.as_str()) {
            return Ok(Some(Arc::clone(cached)));
        }
        let file = outboard::outboard_file(dir, &entry.path);
        let io = |source| ReadError::Io {
            path: file.display().to_string(),
            source,
        };
        let handle = match std::fs::File::open(&file) {
            Ok(handle) => handle,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io(source)),
        };
        if handle.metadata().map_err(io)?.len() != outboard::tree(entry.size).outboard_size() {
            return Err(ReadError::Outboard {
                path: entry.path.to_string(),
            });
        }
        let handle = Arc::new(RandomAccessFile::try_new(handle).map_err(io)?);
        cache.insert(entry.path.to_string(), Arc::clone(&handle));
        Ok(Some(handle))
    }
}

/// Verifies `data`, the file's bytes from `start` (a group boundary) on, against the
/// signed root through the outboard. Large ranges are split into group-aligned pieces
/// checked on every core; each piece is checked from the root down, so the pieces
/// together prove exactly what one check would.
fn check_chunks(
    path: &str,
    entry: &ManifestEntry,
    outboard: &RandomAccessFile,
    start: u64,
    data: &[u8],
) -> Result<(), ReadError> {
    use rayon::prelude::*;
    const PIECE: usize = 1 << 20; // below this, splitting costs more than it saves
    if data.len() <= PIECE {
        return check_piece(path, entry, outboard, start, data);
    }
    let pieces = rayon::current_num_threads().max(1);
    let group = BLOCK_BYTES as usize;
    let per_piece = (data.len().div_ceil(group).div_ceil(pieces) * group).max(PIECE);
    let results: Vec<Result<(), ReadError>> = data
        .par_chunks(per_piece)
        .enumerate()
        .map(|(i, piece)| check_piece(path, entry, outboard, start + (i * per_piece) as u64, piece))
        .collect();
    // The first failure by offset, so the report does not depend on thread timing.
    results.into_iter().collect()
}

fn check_piece(
    path: &str,
    entry: &ManifestEntry,
    outboard: &RandomAccessFile,
    start: u64,
    data: &[u8],
) -> Result<(), ReadError> {
    if data.is_empty() {
        return Ok(());
    }
    let tree = outboard::tree(entry.size);
    let ob = PreOrderOutboard {
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

fn read_exact_into(
    handle: &std::fs::File,
    path: &str,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), ReadError> {
    use std::os::unix::fs::FileExt;
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    handle.read_exact_at(buf, offset).map_err(io)
}

fn read_exact_at(
    handle: &std::fs::File,
    path: &str,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, ReadError> {
    use std::os::unix::fs::FileExt;
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut buf =
        vec![0u8; usize::try_from(len).map_err(|_| io(std::io::Error::other("range too large")))?];
    handle.read_exact_at(&mut buf, offset).map_err(io)?;
    Ok(buf)
}
