//! Verified loading (`spec/loading.md`): open a signed model with its signature, signer
//! and file set checked but no bytes hashed, then verify each byte range as it is read.
//! Native signatures verify against the signed per-file BLAKE3 roots (in 64 KiB groups
//! with the outboard trees written beside the signature); OMS signatures against their
//! per-file or per-shard digests. Every byte is read once, into the caller's buffer, and
//! verified there: the bytes handed out are the very bytes that were verified.
//!
//! By job: this module opens a model against a native signature and serves reads;
//! `oms.rs` opens one against an OMS signature; `fill.rs` verifies spans as they fill the
//! caller's buffer; `bytes.rs` checks a file already in memory.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use modelseal_core::hash::Digester;
use modelseal_core::oms::{OmsHash, OmsMethod, ResourceName};
use modelseal_core::open::FileId;
use modelseal_core::outboard::{self, BLOCK_BYTES};
use modelseal_core::walk::{ModelFile, SymlinkPolicy};
use modelseal_core::{ArtifactDigest, Bundle, ManifestPath};

use crate::envelope::Signer;
use crate::error::{FileDigest, FileMismatch, ModifiedFile, VerifyError};
use crate::files::find_files;
use crate::oms::SignedOms;
use crate::{SignatureFormat, SignedModel, TrustPolicy, VerifyOptions};

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
    /// The file's length changed after the model was opened.
    #[error("{path} is now {found} bytes long; it was {signed} bytes when the model was opened")]
    Resized {
        /// The file.
        path: String,
        /// Its length at open (the signed size, where the signature records one).
        signed: u64,
        /// Its length now.
        found: u64,
    },
    /// Bytes that differ from the signed ones.
    #[error(
        "{path}: bytes at offset {offset} do not match their signed digest (tampered or corrupted)"
    )]
    Tampered {
        /// The file.
        path: String,
        /// First offset of the chunk group that failed.
        offset: u64,
    },
}

/// How one signed file's bytes are checked.
#[derive(Debug, Clone)]
enum Check {
    /// The file's BLAKE3 (native manifests, OMS with `blake3` files): outboards apply,
    /// and a whole-file read is hashed on every core.
    Blake3([u8; 32]),
    /// One sequential digest over the whole file (OMS `files` with SHA-256 or BLAKE2b).
    Whole { hash: OmsHash, digest: Vec<u8> },
    /// One digest per `size`-byte shard (OMS `shards`).
    Shards {
        hash: OmsHash,
        size: u64,
        digests: Vec<Vec<u8>>,
    },
}

#[derive(Debug)]
struct SignedFile {
    /// The size the signature records (native, shards) or the walk found (OMS files,
    /// whose digests bind the content and so its length).
    size: u64,
    check: Check,
    fs_path: PathBuf,
    identity: FileId,
}

/// The smallest piece of a file that can be verified on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Granule {
    /// The whole file: any read of it costs a read and hash of all of it.
    File,
    /// Pieces of this many bytes, aligned to multiples of it: 64 KiB groups with an
    /// outboard, or OMS shards.
    Bytes(u64),
}

/// A signed model opened for verified reads.
#[derive(Debug)]
pub struct ModelReader {
    format: SignatureFormat,
    name: Option<String>,
    digest: ArtifactDigest,
    /// The OCI manifest a native signature names (a directory pulled from a registry).
    oci_manifest: Option<ArtifactDigest>,
    signer: Signer,
    files: BTreeMap<String, SignedFile>,
    outboards: Option<PathBuf>,
    /// Outboards opened so far, by file. Only the hash pairs a read needs are read.
    outboard_cache: Mutex<HashMap<String, Arc<std::fs::File>>>,
}

impl ModelReader {
    /// Checks the bundle (signer, signature, a native manifest or an OMS statement) and
    /// that the model has exactly the signed files (with the signed sizes, where the
    /// signature records them), without hashing anything. `outboards` is the directory
    /// `modelseal outboard` wrote (`SIGNATURE.outboard`); without it, a native file is
    /// verified whole on its first read.
    pub fn open(
        root: &Path,
        bundle: &Bundle,
        policy: &TrustPolicy,
        options: &VerifyOptions,
        outboards: Option<&Path>,
    ) -> Result<Self, VerifyError> {
        let (signer, signed) = match crate::read_signature(bundle, policy, options)? {
            SignedModel::Oms { signer, statement } => {
                return open_oms(root, signer, statement, options);
            }
            SignedModel::Native { signer, manifest } => (signer, manifest),
        };
        crate::check_scope(&signed, root)?;
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
        let mut files = BTreeMap::new();
        for file in found {
            match signed.manifest.get(file.path.as_str()) {
                None => mismatch.extra.push(file.path.to_string()),
                Some(entry) if entry.size != file.size => mismatch.modified.push(resized(
                    &file,
                    "blake3",
                    entry.blake3.to_hex(),
                    Some(entry.size),
                )),
                Some(entry) => {
                    files.insert(
                        file.path.to_string(),
                        SignedFile {
                            size: entry.size,
                            check: Check::Blake3(*entry.blake3.as_bytes()),
                            fs_path: file.fs_path,
                            identity: file.identity,
                        },
                    );
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
            format: SignatureFormat::Native,
            name: signed.name,
            digest: ArtifactDigest::blake3(&signed.root),
            oci_manifest: signed.oci_manifest,
            signer,
            files,
            outboards: outboards.map(Path::to_path_buf),
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

    /// The signature format.
    pub fn format(&self) -> SignatureFormat {
        self.format
    }

    /// The model's identity, the signed subject digest: the manifest's BLAKE3 root
    /// (native) or the OMS subject's SHA-256.
    pub fn root(&self) -> ArtifactDigest {
        self.digest
    }

    /// Every digest the model is known by: its root and, for a directory pulled from a
    /// registry, the OCI manifest its signature names. Policy rules by digest apply to
    /// each.
    pub fn digests(&self) -> Vec<ArtifactDigest> {
        std::iter::once(self.digest)
            .chain(self.oci_manifest)
            .collect()
    }

    /// The signed files' paths and sizes, sorted by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64)> {
        self.files.iter().map(|(path, f)| (path.as_str(), f.size))
    }

    /// Where the signed file `path` is on disk (a link's target, for followed links).
    pub fn fs_path(&self, path: &str) -> Result<&Path, ReadError> {
        self.file(path).map(|f| f.fs_path.as_path())
    }

    /// The size of the signed file `path`.
    pub fn size(&self, path: &str) -> Result<u64, ReadError> {
        self.file(path).map(|f| f.size)
    }

    fn file(&self, path: &str) -> Result<&SignedFile, ReadError> {
        self.files
            .get(path)
            .ok_or_else(|| ReadError::NotSigned(path.to_owned()))
    }

    /// What a read of `path` costs at least: the whole file, or the aligned pieces it
    /// touches.
    pub fn granule(&self, path: &str) -> Result<Granule, ReadError> {
        let file = self.file(path)?;
        Ok(match &file.check {
            Check::Blake3(_) if self.outboard(path, file)?.is_some() => Granule::Bytes(BLOCK_BYTES),
            Check::Shards { size, .. } if *size < file.size => Granule::Bytes(*size),
            _ => Granule::File,
        })
    }

    /// Reads and verifies `range` of the signed file `path`.
    pub fn read_range(&self, path: &str, range: Range<u64>) -> Result<Vec<u8>, ReadError> {
        // Bounds first: nothing is allocated for a range the file cannot hold.
        if range.end > self.size(path)? {
            return Err(self.out_of_bounds(path, &range));
        }
        let len = range
            .end
            .checked_sub(range.start)
            .ok_or_else(|| self.out_of_bounds(path, &range))?;
        let mut data =
            vec![0u8; usize::try_from(len).map_err(|_| self.out_of_bounds(path, &range))?];
        self.read_into(path, range.start, &mut data)?;
        Ok(data)
    }

    /// Reads and verifies the whole of `path`.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        let size = self.size(path)?;
        self.read_range(path, 0..size)
    }

    /// Reads `buf.len()` bytes of `path` from `start` into `buf` and verifies them there.
    /// Pieces that lie wholly inside the range are read straight into `buf` (once,
    /// verified in place, on every core); the at most two pieces at its edges that
    /// reach outside it are read into scratch, verified, and the requested part copied.
    /// With [`Granule::File`] a partial read costs the whole file.
    ///
    /// On a refusal `buf` is zeroed: no byte that failed its check stays with the caller.
    pub fn read_into(&self, path: &str, start: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let result = self.read_verified(path, start, buf);
        if result.is_err() {
            buf.fill(0);
        }
        result
    }

    fn read_verified(&self, path: &str, start: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let file = self.file(path)?;
        let range = start..start.saturating_add(buf.len() as u64);
        if range.end > file.size || start.checked_add(buf.len() as u64).is_none() {
            return Err(self.out_of_bounds(path, &range));
        }
        if file.size == 0 {
            // No byte to read, but an empty file still has a signed digest to meet: an
            // OMS `files` signature records no size, so a file emptied before `open`
            // would otherwise pass unchecked.
            return self.check_empty(path, file);
        }
        if buf.is_empty() {
            return Ok(());
        }
        let handle = self.open_file(path)?;
        if buf.len() >= READAHEAD_FROM {
            // Large reads are cut into pieces read by several cores: ask the kernel to
            // read the whole span ahead, so a cold disk streams instead of seeking.
            modelseal_core::open::read_ahead(&handle, start, buf.len() as u64);
        }
        let ctx = Fill {
            path,
            size: file.size,
            handle: &handle,
        };
        match (&file.check, self.outboard(path, file)?) {
            (Check::Blake3(root), Some(outboard)) => {
                read_pieces(&ctx, BLOCK_BYTES, start, buf, &|at, span| {
                    fill_outboard(&ctx, root, &outboard, at, span)
                })
            }
            (Check::Blake3(root), None) => read_pieces(&ctx, file.size, start, buf, &|_, all| {
                fill_blake3(&ctx, root, all)
            }),
            (Check::Whole { hash, digest }, _) => {
                read_pieces(&ctx, file.size, start, buf, &|_, all| {
                    fill_digest(&ctx, *hash, 0, all, digest)
                })
            }
            (
                Check::Shards {
                    hash,
                    size,
                    digests,
                },
                _,
            ) => read_pieces(&ctx, *size, start, buf, &|at, span| {
                fill_shards(&ctx, *hash, *size, digests, at, span)
            }),
        }
    }

    /// Verifies every byte of every signed file (one full pass, as `verify` does), one
    /// file in memory at a time.
    pub fn verify_all(&self) -> Result<(), ReadError> {
        for path in self.files.keys() {
            self.read_file(path)?;
        }
        Ok(())
    }

    /// Verifies every byte of the signed file `path` as a stream, holding one `chunk`
    /// of it in memory at a time and calling `pace` with the size of each chunk read,
    /// so a caller can limit the read rate (a background re-verification). One thread,
    /// against the signed digest itself (no outboard). A file that has changed length
    /// since `open` is refused even if its first signed bytes still match.
    pub fn check_file_paced(
        &self,
        path: &str,
        chunk: usize,
        pace: &mut dyn FnMut(u64),
    ) -> Result<(), ReadError> {
        let file = self.file(path)?;
        let handle = self.open_file(path)?;
        let ctx = Fill {
            path,
            size: file.size,
            handle: &handle,
        };
        let mut buf = vec![0u8; chunk.max(1)];
        // Where each digest starts, how long it runs, and what it must equal.
        let pieces: Vec<(u64, u64, &[u8])> = match &file.check {
            Check::Blake3(root) => vec![(0, file.size, root.as_slice())],
            Check::Whole { digest, .. } => vec![(0, file.size, digest.as_slice())],
            Check::Shards { size, digests, .. } => digests
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let at = i as u64 * size;
                    (at, (*size).min(file.size - at), d.as_slice())
                })
                .collect(),
        };
        let algorithm = match &file.check {
            Check::Blake3(_) => modelseal_core::hash::DigestAlgorithm::Blake3,
            Check::Whole { hash, .. } | Check::Shards { hash, .. } => hash.algorithm(),
        };
        for (at, len, expected) in pieces {
            let mut digester = Digester::new(algorithm);
            let mut done = 0u64;
            while done < len {
                let take = (len - done).min(buf.len() as u64) as usize;
                ctx.read(at + done, &mut buf[..take])?;
                digester.update(&buf[..take]);
                done += take as u64;
                pace(take as u64);
            }
            if digester.finalize() != expected {
                return Err(ctx.tampered(at));
            }
        }
        let now = handle.metadata().map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })?;
        if now.len() != file.size {
            return Err(ReadError::Resized {
                path: path.to_owned(),
                signed: file.size,
                found: now.len(),
            });
        }
        Ok(())
    }

    fn out_of_bounds(&self, path: &str, range: &Range<u64>) -> ReadError {
        ReadError::OutOfBounds {
            path: path.to_owned(),
            start: range.start,
            end: range.end,
            size: self.files.get(path).map_or(0, |f| f.size),
        }
    }

    /// Checks that the empty signed file `path` is still the file `open` found, still
    /// empty, and that the empty string has its signed digest.
    fn check_empty(&self, path: &str, file: &SignedFile) -> Result<(), ReadError> {
        let handle = self.open_file(path)?;
        let found = handle
            .metadata()
            .map_err(|source| ReadError::Io {
                path: path.to_owned(),
                source,
            })?
            .len();
        if found != 0 {
            return Err(ReadError::Resized {
                path: path.to_owned(),
                signed: 0,
                found,
            });
        }
        let matches = match &file.check {
            Check::Blake3(root) => blake3::hash(b"").as_bytes() == root,
            Check::Whole { hash, digest } => {
                Digester::new(hash.algorithm()).finalize() == digest.as_slice()
            }
            // An empty file has no shards.
            Check::Shards { digests, .. } => digests.is_empty(),
        };
        if matches {
            Ok(())
        } else {
            Err(ReadError::Tampered {
                path: path.to_owned(),
                offset: 0,
            })
        }
    }

    /// Opens the signed file `path` for reading: not through a link, never blocking on
    /// a FIFO, and only if it is still the file `open` found (device and inode). Private:
    /// a caller gets verified bytes, never a handle whose reads nothing checks.
    fn open_file(&self, path: &str) -> Result<std::fs::File, ReadError> {
        let file = self.file(path)?;
        modelseal_core::open::open_checked(&file.fs_path, Some(file.identity))
            .map_err(|source| ReadError::Io {
                path: path.to_owned(),
                source,
            })?
            .map_err(|reason| ReadError::Swapped {
                path: path.to_owned(),
                reason,
            })
    }

    /// The outboard of a large native file, if one was written; its length is checked
    /// here, its hashes as chunks are verified.
    fn outboard(
        &self,
        path: &str,
        file: &SignedFile,
    ) -> Result<Option<Arc<std::fs::File>>, ReadError> {
        let Some(dir) = &self.outboards else {
            return Ok(None);
        };
        if file.size <= BLOCK_BYTES || !matches!(file.check, Check::Blake3(_)) {
            return Ok(None);
        }
        let mut cache = self
            .outboard_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = cache.get(path) {
            return Ok(Some(Arc::clone(cached)));
        }
        let manifest_path =
            ManifestPath::parse(path).map_err(|_| ReadError::NotSigned(path.to_owned()))?;
        let location = outboard::outboard_file(dir, &manifest_path);
        let io = |source| ReadError::Io {
            path: location.display().to_string(),
            source,
        };
        // A FIFO in an outboard's place must not hang the read.
        let Some(handle) = modelseal_core::open::open_sidecar(&location).map_err(io)? else {
            return Ok(None);
        };
        if handle.metadata().map_err(io)?.len() != outboard::tree(file.size).outboard_size() {
            return Err(ReadError::Outboard {
                path: path.to_owned(),
            });
        }
        let handle = Arc::new(handle);
        cache.insert(path.to_owned(), Arc::clone(&handle));
        Ok(Some(handle))
    }
}

fn resized(
    file: &ModelFile,
    algorithm: &str,
    hex: String,
    expected_size: Option<u64>,
) -> ModifiedFile {
    ModifiedFile {
        path: file.path.to_string(),
        expected: FileDigest {
            algorithm: algorithm.into(),
            hex,
        },
        found: None,
        expected_size,
        found_size: Some(file.size),
    }
}

mod bytes;
mod fill;
mod oms;

use fill::*;
use oms::open_oms;

pub use bytes::{VerifiedBytes, verify_bytes};
