//! Verified loading (`spec/loading.md`): open a signed model with its signature, signer
//! and file set checked but no bytes hashed, then verify each byte range as it is read.
//! Native signatures verify against the signed per-file BLAKE3 roots (in 64 KiB groups
//! with the outboard trees written beside the signature); OMS signatures against their
//! per-file or per-shard digests. Every byte is read once, into the caller's buffer, and
//! verified there: the bytes handed out are the very bytes that were verified.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use modelseal_core::hash::Digester;
use modelseal_core::oms::{
    OMS_LEGACY_PREDICATE_TYPE, OMS_PREDICATE_TYPE, OmsHash, OmsMethod, ResourceName,
};
use modelseal_core::open::FileId;
use modelseal_core::outboard::{self, BLOCK_BYTES};
use modelseal_core::walk::{ModelFile, SymlinkPolicy};
use modelseal_core::{ArtifactDigest, Bundle, ManifestPath};

use crate::envelope::{Signer, VerifiedStatement, verify_envelope};
use crate::error::{FileDigest, FileMismatch, ModifiedFile, VerifyError};
use crate::files::{find_files, signed_manifest};
use crate::{SignatureFormat, TrustPolicy, VerifyOptions};

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
        let verified = verify_envelope(bundle, policy)?;
        crate::check_expected(&verified, options)?;
        let predicate_type = verified.statement.predicate_type.as_str();
        if predicate_type == OMS_PREDICATE_TYPE || predicate_type == OMS_LEGACY_PREDICATE_TYPE {
            return open_oms(root, verified, options);
        }
        let signed = signed_manifest(&verified)?;
        crate::check_kind(options.kind, signed.predicate.kind)?;
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
            signer: verified.signer,
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

/// An OMS model: the statement's resources matched with the files found, by name and
/// (for shards) by the exact shard layout the file's size gives. No byte is read.
fn open_oms(
    root: &Path,
    verified: VerifiedStatement,
    options: &VerifyOptions,
) -> Result<ModelReader, VerifyError> {
    let signed = crate::oms::signed_oms(&verified)?;
    crate::check_oms_kind(options)?;
    let walk = modelseal_core::oms::walk_options(&signed.serialization, &options.walk);
    let paths = signed.paths();
    let single_file = std::fs::metadata(root).is_ok_and(|m| m.is_file());
    let found = find_files(root, &walk, &paths, options.ignore_unsigned_files)?;
    // Resources by file: a single-file model's one file is `.` (no path).
    let mut by_file: BTreeMap<Option<ManifestPath>, Vec<(&ResourceName, &Vec<u8>)>> =
        BTreeMap::new();
    for r in &signed.resources {
        by_file
            .entry(r.name.path.clone())
            .or_default()
            .push((&r.name, &r.digest));
    }
    let hash = signed.serialization.hash;
    let mut mismatch = FileMismatch::default();
    let mut files = BTreeMap::new();
    for file in found {
        let key = (!single_file).then(|| file.path.clone());
        let Some(mut resources) = by_file.remove(&key) else {
            let shards = matches!(signed.serialization.method, OmsMethod::Shards { .. });
            // An empty file has no shards, so the format cannot list it: accepted only
            // when the caller says so (`VerifyOptions::allow_unlisted_empty_files`).
            if shards && file.size == 0 && options.allow_unlisted_empty_files {
                continue;
            }
            mismatch.extra.push(file.path.to_string());
            continue;
        };
        let check = match signed.serialization.method {
            OmsMethod::Files => match (hash, resources.as_slice()) {
                (OmsHash::Blake3, [(_, digest)]) if digest.len() == 32 => {
                    Check::Blake3(digest.as_slice().try_into().expect("32 bytes"))
                }
                (_, [(_, digest)]) => Check::Whole {
                    hash,
                    digest: digest.to_vec(),
                },
                _ => {
                    mismatch
                        .modified
                        .push(resized(&file, hash.name(), String::new(), None));
                    continue;
                }
            },
            OmsMethod::Shards { size } => {
                resources.sort_by_key(|(name, _)| name.shard);
                let layout: Vec<(u64, u64)> = (0..file.size.div_ceil(size))
                    .map(|i| (i * size, ((i + 1) * size).min(file.size)))
                    .collect();
                let listed: Vec<(u64, u64)> =
                    resources.iter().filter_map(|(n, _)| n.shard).collect();
                if listed != layout {
                    // The shards name another length (or have a gap): the file changed.
                    let signed_size = resources
                        .iter()
                        .filter_map(|(n, _)| n.shard)
                        .map(|(_, end)| end)
                        .max();
                    mismatch.modified.push(resized(
                        &file,
                        &signed.serialization.resource_algorithm(),
                        String::new(),
                        signed_size,
                    ));
                    continue;
                }
                Check::Shards {
                    hash,
                    size,
                    digests: resources.iter().map(|(_, d)| d.to_vec()).collect(),
                }
            }
            other => {
                return Err(crate::error::OmsPredicateError::Method(format!("{other:?}")).into());
            }
        };
        files.insert(
            file.path.to_string(),
            SignedFile {
                size: file.size,
                check,
                fs_path: file.fs_path,
                identity: file.identity,
            },
        );
    }
    for (path, _) in by_file {
        mismatch
            .missing
            .push(path.map_or_else(|| ".".to_owned(), |p| p.to_string()));
    }
    mismatch.into_result()?;
    let root_digest = ArtifactDigest::from_entry("sha256", &signed.root)
        .map_err(|_| VerifyError::ListsNothing("an OMS statement without a usable root"))?;
    Ok(ModelReader {
        format: if signed.legacy {
            SignatureFormat::OmsLegacy
        } else {
            SignatureFormat::Oms
        },
        name: signed.name,
        digest: root_digest,
        oci_manifest: None,
        signer: verified.signer,
        files,
        outboards: None,
        outboard_cache: Mutex::new(HashMap::new()),
    })
}

/// Reads at least this large get a read-ahead hint for their whole span.
const READAHEAD_FROM: usize = 8 << 20;

/// One open signed file being read.
struct Fill<'a> {
    path: &'a str,
    size: u64,
    handle: &'a std::fs::File,
}

impl Fill<'_> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        read_exact_into(self.handle, self.path, offset, buf)
    }

    fn tampered(&self, offset: u64) -> ReadError {
        ReadError::Tampered {
            path: self.path.to_owned(),
            offset,
        }
    }
}

/// A span-filling verifier: reads `buf.len()` bytes at a piece-aligned offset into
/// `buf` and verifies them (the span ends on a piece boundary or at the end of file).
type FillSpan<'a> = dyn Fn(u64, &mut [u8]) -> Result<(), ReadError> + Sync + 'a;

/// Reads `start..start + buf.len()` into `buf` through `fill`, which verifies whole
/// `piece`-aligned spans: the aligned middle is filled in place, the partial pieces at
/// either edge through scratch.
fn read_pieces(
    ctx: &Fill<'_>,
    piece: u64,
    start: u64,
    buf: &mut [u8],
    fill: &FillSpan<'_>,
) -> Result<(), ReadError> {
    let end = start + buf.len() as u64;
    let floor = |x: u64| x / piece * piece;
    let piece_end = |at: u64| (at + piece).min(ctx.size);
    let inner_start = if start.is_multiple_of(piece) {
        start
    } else {
        floor(start) + piece
    };
    let inner_end = if end == ctx.size { end } else { floor(end) };
    if inner_start < inner_end {
        let from = (inner_start - start) as usize;
        let to = (inner_end - start) as usize;
        fill(inner_start, &mut buf[from..to])?;
    }
    let mut edges = vec![floor(start)];
    if floor(end.saturating_sub(1)) != floor(start) {
        edges.push(floor(end - 1));
    }
    for at in edges {
        let span = at..piece_end(at);
        if inner_start <= span.start && span.end <= inner_end {
            continue;
        }
        let mut scratch = vec![0u8; (span.end - span.start) as usize];
        fill(span.start, &mut scratch)?;
        let lo = start.max(span.start);
        let hi = end.min(span.end);
        buf[(lo - start) as usize..(hi - start) as usize]
            .copy_from_slice(&scratch[(lo - span.start) as usize..(hi - span.start) as usize]);
    }
    Ok(())
}

/// Pieces a whole-file BLAKE3 read is cut into: a power of two of 1 KiB chunks, so that
/// each piece is a subtree of the file's BLAKE3 tree and can be hashed on its own.
const TREE_PIECE: u64 = 4 << 20;

/// Reads the whole file into `all` and checks its BLAKE3 against `root`. The pieces are
/// read and hashed on every core (each core reads a piece, then hashes it), and their
/// chaining values merged into the root: no outboard is needed, no byte is read twice.
fn fill_blake3(ctx: &Fill<'_>, root: &[u8; 32], all: &mut [u8]) -> Result<(), ReadError> {
    use blake3::hazmat::{HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
    if all.len() as u64 <= TREE_PIECE {
        ctx.read(0, all)?;
        return if blake3::hash(all).as_bytes() == root {
            Ok(())
        } else {
            Err(ctx.tampered(0))
        };
    }
    let cvs: Vec<blake3::hazmat::ChainingValue> =
        in_file_order(all, TREE_PIECE as usize, &|i, piece| {
            let at = i as u64 * TREE_PIECE;
            ctx.read(at, piece)?;
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(at);
            hasher.update(piece);
            Ok(hasher.finalize_non_root())
        })?;
    // Merge as BLAKE3's tree does: a node of `len` bytes splits at its left subtree's
    // length, always a multiple of the piece size here.
    fn node(
        cvs: &[blake3::hazmat::ChainingValue],
        offset: u64,
        len: u64,
    ) -> blake3::hazmat::ChainingValue {
        if len <= TREE_PIECE {
            return cvs[(offset / TREE_PIECE) as usize];
        }
        let left = blake3::hazmat::left_subtree_len(len);
        merge_subtrees_non_root(
            &node(cvs, offset, left),
            &node(cvs, offset + left, len - left),
            Mode::Hash,
        )
    }
    let len = all.len() as u64;
    let left = blake3::hazmat::left_subtree_len(len);
    let computed = merge_subtrees_root(
        &node(&cvs, 0, left),
        &node(&cvs, left, len - left),
        Mode::Hash,
    );
    if computed.as_bytes() == root {
        Ok(())
    } else {
        Err(ctx.tampered(0))
    }
}

/// Reads `buf.len()` bytes at `offset` into `buf` and checks one sequential digest over
/// them. Reading piece `i + 1` overlaps hashing piece `i`, so the check costs little
/// more than the slower of the two.
fn fill_digest(
    ctx: &Fill<'_>,
    hash: OmsHash,
    offset: u64,
    buf: &mut [u8],
    expected: &[u8],
) -> Result<(), ReadError> {
    const PIECE: usize = 8 << 20;
    let mut digester = Digester::new(hash.algorithm());
    let (mut done, mut rest) = buf.split_at_mut(0);
    let mut at = offset;
    while !rest.is_empty() || !done.is_empty() {
        let take = rest.len().min(PIECE);
        let (next, after) = rest.split_at_mut(take);
        let (read, ()) = rayon::join(|| ctx.read(at, next), || digester.update(done));
        read?;
        at += take as u64;
        done = next;
        rest = after;
    }
    if digester.finalize() == expected {
        Ok(())
    } else {
        Err(ctx.tampered(offset))
    }
}

/// Reads and checks the whole shards `span` covers, from shard-aligned `at`: shards on
/// every core, each read and hashed as [`fill_digest`] does.
fn fill_shards(
    ctx: &Fill<'_>,
    hash: OmsHash,
    size: u64,
    digests: &[Vec<u8>],
    at: u64,
    span: &mut [u8],
) -> Result<(), ReadError> {
    let first = (at / size) as usize;
    in_file_order(span, size as usize, &|i, shard| {
        let index = first + i;
        let expected = digests
            .get(index)
            .ok_or_else(|| ctx.tampered(index as u64 * size))?;
        fill_digest(ctx, hash, index as u64 * size, shard, expected)
    })
    .map(|_| ())
}

/// Reads `span` (from `start`, a group boundary) and verifies it through the outboard,
/// from the signed root down. Large spans are cut into group-aligned pieces, each read
/// and checked on one core, so reading and hashing overlap across cores; each piece is
/// checked from the root, so together they prove exactly what one check would.
fn fill_outboard(
    ctx: &Fill<'_>,
    root: &[u8; 32],
    outboard: &std::fs::File,
    start: u64,
    span: &mut [u8],
) -> Result<(), ReadError> {
    const PIECE: usize = 4 << 20; // a multiple of the 64 KiB group
    in_file_order(span, PIECE, &|i, piece| {
        let at = start + (i * PIECE) as u64;
        ctx.read(at, piece)?;
        check_piece(ctx.path, ctx.size, root, outboard, at, piece)
    })
    .map(|_| ())
}

/// What [`in_file_order`] runs on each piece: its index, its bytes.
type PieceWork<'a, R> = dyn Fn(usize, &mut [u8]) -> Result<R, ReadError> + Sync + 'a;

/// Runs `work` on every `piece`-byte piece of `buf` (with its index) on every core,
/// the pieces taken in file order (each core takes the next one), so that the reads
/// form one stream a cold disk can serve sequentially rather than one stream per core
/// from distant offsets. Results come back by index; the first failure by offset wins,
/// so the report does not depend on thread timing.
fn in_file_order<R: Send>(
    buf: &mut [u8],
    piece: usize,
    work: &PieceWork<'_, R>,
) -> Result<Vec<R>, ReadError> {
    let count = buf.len().div_ceil(piece.max(1));
    let pieces = Mutex::new(buf.chunks_mut(piece.max(1)).enumerate());
    let done = Mutex::new(Vec::with_capacity(count));
    let workers = rayon::current_num_threads().clamp(1, count.max(1));
    rayon::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|_| {
                loop {
                    let next = pieces.lock().unwrap_or_else(|p| p.into_inner()).next();
                    let Some((index, piece)) = next else { break };
                    let result = work(index, piece);
                    done.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((index, result));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

/// Verifies `data`, the file's bytes from `start` (a group boundary), against the
/// signed `root` through the outboard: each 64 KiB group's chaining value is computed
/// in place (`blake3::hazmat`, no copy), then the tree is walked from the root down to
/// those groups, every hash pair read from the outboard checked against its parent
/// before it is trusted. A pair that does not lead to its parent is `Outboard`; a group
/// whose bytes do not lead to its pair is `Tampered`.
fn check_piece(
    path: &str,
    size: u64,
    root: &[u8; 32],
    outboard: &std::fs::File,
    start: u64,
    data: &[u8],
) -> Result<(), ReadError> {
    use blake3::hazmat::HasherExt as _;
    if data.is_empty() {
        return Ok(());
    }
    let cvs = data
        .chunks(BLOCK_BYTES as usize)
        .enumerate()
        .map(|(i, group)| {
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(start + i as u64 * BLOCK_BYTES);
            hasher.update(group);
            hasher.finalize_non_root()
        })
        .collect();
    let walk = TreeWalk {
        path,
        outboard,
        span: start..start + data.len() as u64,
        cvs,
    };
    walk.node(0, size, 0, Expected::Root(root), None)
}

/// What a node's hash must be: the signed root, or the chaining value its parent's
/// (already checked) pair names.
enum Expected<'a> {
    Root(&'a [u8; 32]),
    Node(blake3::hazmat::ChainingValue),
}

/// A walk of a file's BLAKE3 tree, at 64 KiB group level, down to the groups of `span`.
/// The outboard holds the (left, right) pair of every inner node in pre-order, so a
/// node's left child is the next pair and its right child follows the left subtree's
/// `groups - 1` pairs.
struct TreeWalk<'a> {
    path: &'a str,
    outboard: &'a std::fs::File,
    span: Range<u64>,
    cvs: Vec<blake3::hazmat::ChainingValue>,
}

impl TreeWalk<'_> {
    fn node(
        &self,
        offset: u64,
        len: u64,
        index: u64,
        expected: Expected<'_>,
        loaded: Option<(u64, &[u8])>,
    ) -> Result<(), ReadError> {
        use blake3::hazmat::{
            Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
        };
        if len <= BLOCK_BYTES {
            let cv = self.cvs[((offset - self.span.start) / BLOCK_BYTES) as usize];
            return match expected {
                Expected::Node(want) if want == cv => Ok(()),
                _ => Err(ReadError::Tampered {
                    path: self.path.to_owned(),
                    offset,
                }),
            };
        }
        // A subtree wholly inside the span needs every one of its pairs: one read.
        let owned;
        let loaded = match loaded {
            None if self.span.start <= offset && offset + len <= self.span.end => {
                owned = self.read_pairs(index, len.div_ceil(BLOCK_BYTES) - 1)?;
                Some((index, owned.as_slice()))
            }
            other => other,
        };
        let pair = match loaded {
            Some((first, pairs)) => {
                let at = ((index - first) * 64) as usize;
                pairs[at..at + 64].to_vec()
            }
            None => self.read_pairs(index, 1)?,
        };
        let left: [u8; 32] = pair[..32].try_into().expect("32 bytes");
        let right: [u8; 32] = pair[32..].try_into().expect("32 bytes");
        let leads_to_parent = match expected {
            Expected::Root(root) => {
                merge_subtrees_root(&left, &right, Mode::Hash).as_bytes() == root
            }
            Expected::Node(cv) => merge_subtrees_non_root(&left, &right, Mode::Hash) == cv,
        };
        if !leads_to_parent {
            return Err(ReadError::Outboard {
                path: self.path.to_owned(),
            });
        }
        let split = left_subtree_len(len);
        let overlaps = |from: u64, to: u64| from < self.span.end && self.span.start < to;
        if overlaps(offset, offset + split) {
            self.node(offset, split, index + 1, Expected::Node(left), loaded)?;
        }
        if overlaps(offset + split, offset + len) {
            let right_index = index + split.div_ceil(BLOCK_BYTES);
            self.node(
                offset + split,
                len - split,
                right_index,
                Expected::Node(right),
                loaded,
            )?;
        }
        Ok(())
    }

    fn read_pairs(&self, index: u64, count: u64) -> Result<Vec<u8>, ReadError> {
        use std::os::unix::fs::FileExt as _;
        let mut pairs = vec![0u8; (count * 64) as usize];
        self.outboard
            .read_exact_at(&mut pairs, index * 64)
            .map_err(|_| ReadError::Outboard {
                path: self.path.to_owned(),
            })?;
        Ok(pairs)
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

/// A file checked in memory by [`verify_bytes`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedBytes {
    /// The signed file the bytes are.
    pub path: String,
    /// Who signed the model.
    pub signer: Signer,
    /// The model's signed subject name.
    pub name: Option<String>,
    /// The model's identity (as [`ModelReader::root`]).
    pub root: ArtifactDigest,
    /// The OCI manifest the signature names, if any (as [`ModelReader::digests`]).
    pub oci_manifest: Option<ArtifactDigest>,
}

impl VerifiedBytes {
    /// Every digest the model is known by (as [`ModelReader::digests`]).
    pub fn digests(&self) -> Vec<ArtifactDigest> {
        std::iter::once(self.root)
            .chain(self.oci_manifest)
            .collect()
    }
}

/// Checks that `data` is, byte for byte, the signed file `path` (or, without `path`, the
/// signature's only file) of a model a trusted signer signed. Only this file is judged:
/// the rest of the model is not looked at, so this is for bytes already in memory.
pub fn verify_bytes(
    bundle: &Bundle,
    policy: &TrustPolicy,
    options: &VerifyOptions,
    path: Option<&str>,
    data: &[u8],
) -> Result<VerifiedBytes, VerifyError> {
    let verified = verify_envelope(bundle, policy)?;
    crate::check_expected(&verified, options)?;
    let not_listed = |what: String| {
        VerifyError::Files(FileMismatch {
            missing: vec![what],
            ..FileMismatch::default()
        })
    };
    let changed = |path: &str, algorithm: String, hex: String| {
        VerifyError::Files(FileMismatch {
            modified: vec![ModifiedFile {
                path: path.to_owned(),
                expected: FileDigest { algorithm, hex },
                found: None,
                expected_size: None,
                found_size: Some(data.len() as u64),
            }],
            ..FileMismatch::default()
        })
    };
    let predicate_type = verified.statement.predicate_type.as_str();
    if predicate_type == OMS_PREDICATE_TYPE || predicate_type == OMS_LEGACY_PREDICATE_TYPE {
        let signed = crate::oms::signed_oms(&verified)?;
        crate::check_oms_kind(options)?;
        let mut paths: Vec<Option<&ManifestPath>> = signed
            .resources
            .iter()
            .map(|r| r.name.path.as_ref())
            .collect();
        paths.dedup();
        let chosen = match (path, paths.as_slice()) {
            (None, [only]) => *only,
            (Some(want), _) => *paths
                .iter()
                .find(|p| p.map(ManifestPath::as_str) == Some(want))
                .ok_or_else(|| not_listed(want.to_owned()))?,
            (None, _) => {
                return Err(not_listed(
                    "(a file name: the signature lists several)".into(),
                ));
            }
        };
        let label = chosen.map_or_else(|| ".".to_owned(), ManifestPath::to_string);
        let mut resources: Vec<_> = signed
            .resources
            .iter()
            .filter(|r| r.name.path.as_ref() == chosen)
            .collect();
        resources.sort_by_key(|r| r.name.shard);
        let size = data.len() as u64;
        let algorithm = signed.serialization.resource_algorithm();
        let pieces: Vec<(u64, u64)> = match signed.serialization.method {
            OmsMethod::Shards { size: shard } => (0..size.div_ceil(shard))
                .map(|i| (i * shard, ((i + 1) * shard).min(size)))
                .collect(),
            _ => vec![(0, size)],
        };
        let listed: Vec<(u64, u64)> = resources
            .iter()
            .map(|r| r.name.shard.unwrap_or((0, size)))
            .collect();
        if listed != pieces {
            return Err(changed(&label, algorithm, String::new()));
        }
        use rayon::prelude::*;
        let hash = signed.serialization.hash;
        let all_match = resources
            .par_iter()
            .zip(pieces.par_iter())
            .all(|(r, (a, b))| {
                let mut digester = Digester::new(hash.algorithm());
                digester.update(&data[*a as usize..*b as usize]);
                digester.finalize() == r.digest
            });
        if !all_match {
            return Err(changed(&label, algorithm, String::new()));
        }
        return Ok(VerifiedBytes {
            path: label,
            signer: verified.signer,
            name: signed.name,
            root: ArtifactDigest::from_entry("sha256", &signed.root)
                .map_err(|_| VerifyError::ListsNothing("an OMS statement without a usable root"))?,
            oci_manifest: None,
        });
    }
    let signed = signed_manifest(&verified)?;
    crate::check_kind(options.kind, signed.predicate.kind)?;
    let entry = match (path, signed.manifest.entries()) {
        (None, [only]) => only,
        (Some(want), _) => signed
            .manifest
            .get(want)
            .ok_or_else(|| not_listed(want.to_owned()))?,
        (None, _) => {
            return Err(not_listed(
                "(a file name: the signature lists several)".into(),
            ));
        }
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update_rayon(data);
    if entry.size != data.len() as u64 || hasher.finalize().as_bytes() != entry.blake3.as_bytes() {
        return Err(changed(
            entry.path.as_str(),
            "blake3".into(),
            entry.blake3.to_hex(),
        ));
    }
    Ok(VerifiedBytes {
        path: entry.path.to_string(),
        signer: verified.signer,
        name: signed.name,
        root: ArtifactDigest::blake3(&signed.root),
        oci_manifest: signed.oci_manifest,
    })
}
