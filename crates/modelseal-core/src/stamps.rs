//! Incremental re-signing: which files may keep the digest an earlier, verified signature
//! gives them, and the signed stamp file that decides it (`spec/incremental.md`).
//!
//! A stamp is what `stat` says about a file: device, inode, size, modification and change
//! time. Any write moves the change time, which no unprivileged call can set back, and a
//! replaced file has another inode. A file whose stamp is the one recorded when its bytes
//! were hashed keeps that digest; any doubt (no stamp, another stamp, a stamp taken in the
//! same clock tick as a write could still land in) means hashing it again.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dsse;
use crate::keys::{KeyError, KeySigner, VerifyingKey};
use crate::path::ManifestPath;
use crate::walk::ModelFile;

/// DSSE payload type of a stamp file: bound into its signature, so a stamp file can never
/// pass for a signed statement, nor a statement for stamps.
pub const STAMPS_PAYLOAD_TYPE: &str = "application/vnd.modelseal.stamps.v1+json";

/// The `_type` of the stamp payload.
const STAMPS_TYPE: &str = "https://modelseal.dev/stamps/v1";

/// A stamp file larger than this is not read (about a million files).
pub const MAX_STAMPS_BYTES: u64 = 256 << 20;

/// How close to the start of hashing a file's times may be before its stamp is in doubt.
/// A write in the same filesystem clock tick as the `stat` leaves the times unchanged
/// (git's "racily clean" case); ticks are at most 2 s (FAT), and the filesystem clock
/// lags the system clock by less than that.
pub const RACY_MARGIN_NANOS: i128 = 2_000_000_000;

/// What `stat` says about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stamp {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time: seconds and nanoseconds since the Unix epoch.
    pub mtime: (i64, i64),
    /// Change time (inode change), likewise.
    pub ctime: (i64, i64),
}

impl Stamp {
    /// The stamp `meta` gives.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The stamp of a walked file now, or `None` when its path no longer leads to the file
    /// the walk found.
    pub fn of_file(file: &ModelFile) -> Option<Self> {
        let meta = std::fs::metadata(&file.fs_path).ok()?;
        (meta.is_file() && crate::open::FileId::of(&meta) == file.identity).then(|| Self::of(&meta))
    }

    /// [`Stamp::of_file`], only when no process can write the file unseen: none has it
    /// open for writing or mapped writable. A write through a shared mapping whose page
    /// is already dirty moves no time at all (on tmpfs, never), so a stamp taken while
    /// such a mapping exists proves nothing.
    pub fn of_unwritten_file(file: &ModelFile) -> Option<Self> {
        let stamp = Self::of_file(file)?;
        no_writer(file).then_some(stamp)
    }

    /// Whether a write after this stamp was taken at `started` could have left it
    /// unchanged: its modification or change time lies within the margin of `started`,
    /// or after it.
    pub fn is_racy(&self, started: SystemTime) -> bool {
        let nanos = |(s, ns): (i64, i64)| i128::from(s) * 1_000_000_000 + i128::from(ns);
        let started = match started.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(_) => return true,
        };
        nanos(self.mtime).max(nanos(self.ctime)) >= started - RACY_MARGIN_NANOS
    }
}

/// Whether the kernel grants a read lease on the walked file now (Linux): it does only
/// while no process has the file open for writing or holds a writable shared mapping of
/// it, even one whose descriptor was closed. The lease is released at once. No owner is
/// set, so a writer arriving in that instant signals nobody; its `open` waits for the
/// release. Where leases are unavailable (another owner without `CAP_LEASE`, a
/// filesystem without them, another OS) the answer is no: the file is hashed.
#[allow(unsafe_code)]
fn no_writer(file: &ModelFile) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let Ok(opened) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&file.fs_path)
        else {
            return false;
        };
        let same = opened
            .metadata()
            .is_ok_and(|m| m.is_file() && crate::open::FileId::of(&m) == file.identity);
        if !same {
            return false;
        }
        let fd = opened.as_raw_fd();
        // SAFETY: fcntl on a descriptor owned here, with integer arguments.
        let granted = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == 0;
        if granted {
            // SAFETY: as above; closing the descriptor would release it too.
            unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        }
        granted
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

/// Per-file digests an earlier signature gives, each with the stamp its file had when
/// modelseal hashed those bytes. `D` is the format's digest: a BLAKE3 hash, or the OMS
/// resources of one file.
#[derive(Debug, Clone)]
pub struct KnownDigests<D> {
    files: HashMap<ManifestPath, (Stamp, D)>,
}

impl<D> Default for KnownDigests<D> {
    fn default() -> Self {
        Self {
            files: HashMap::new(),
        }
    }
}

impl<D: Clone> KnownDigests<D> {
    /// Digests of the files `stamps` names and `digest_of` knows, for a file of the
    /// stamped size; others are left out, so those files are hashed.
    pub fn new(stamps: &Stamps, digest_of: impl Fn(&ManifestPath, u64) -> Option<D>) -> Self {
        let files = stamps
            .files
            .iter()
            .filter_map(|(path, stamp)| {
                let digest = digest_of(path, stamp.size)?;
                Some((path.clone(), (*stamp, digest)))
            })
            .collect();
        Self { files }
    }

    /// Splits walked files into those that keep a known digest (their stamp now is the
    /// recorded one) and those to hash. Each kept file comes with its stamp.
    pub fn split(&self, files: Vec<ModelFile>) -> Split<D> {
        let mut split = Split {
            kept: Vec::new(),
            to_hash: Vec::new(),
        };
        for file in files {
            let kept = self.files.contains_key(&file.path).then(|| {
                let now = Stamp::of_unwritten_file(&file);
                self.keeps(&file.path, file.size, now.as_ref())
            });
            match kept.flatten() {
                Some((stamp, digest)) => split.kept.push((file, *stamp, digest.clone())),
                None => split.to_hash.push(file),
            }
        }
        split
    }

    /// The stamp and digest a file at `path`, walked at `size` bytes with the stamp `now`,
    /// keeps: only when its recorded stamp is exactly `now` and of that size
    /// (`spec/incremental.md` §3 step 5).
    pub fn keeps(
        &self,
        path: &ManifestPath,
        size: u64,
        now: Option<&Stamp>,
    ) -> Option<&(Stamp, D)> {
        self.files
            .get(path)
            .filter(|(stamp, _)| stamp.size == size && now == Some(stamp))
    }
}

/// Walked files split by [`KnownDigests::split`].
#[derive(Debug)]
pub struct Split<D> {
    /// Files that keep a digest, with their stamp.
    pub kept: Vec<(ModelFile, Stamp, D)>,
    /// Files to hash.
    pub to_hash: Vec<ModelFile>,
}

/// Stamps of files to be hashed, taken before their bytes are read, at `started`.
#[derive(Debug)]
pub struct BeforeHashing {
    started: SystemTime,
    stamps: Vec<Option<Stamp>>,
}

impl BeforeHashing {
    /// Stamps `files` now.
    pub fn take(files: &[ModelFile]) -> Self {
        let started = SystemTime::now();
        Self {
            started,
            stamps: files.iter().map(Stamp::of_unwritten_file).collect(),
        }
    }

    /// The stamps to record for `files` (the same files, in the same order) once hashed:
    /// those unchanged since [`BeforeHashing::take`] and not racy. A file left out is
    /// hashed again next time.
    pub fn after(self, files: &[ModelFile]) -> Vec<(ManifestPath, Stamp)> {
        files
            .iter()
            .zip(self.stamps)
            .filter_map(|(file, before)| {
                let before = before?;
                let unchanged = Stamp::of_file(file) == Some(before);
                (unchanged && !before.is_racy(self.started)).then(|| (file.path.clone(), before))
            })
            .collect()
    }
}

/// The stamps recorded beside one signature: which files had which stamp when the
/// digests that signature names were computed from their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    /// SHA-256 of the signature file's bytes: stamps go with that one signature only.
    pub signature_sha256: [u8; 32],
    /// The model directory, canonical: stamps of another tree are not used.
    pub model: String,
    /// Stamps by manifest path.
    pub files: std::collections::BTreeMap<ManifestPath, Stamp>,
    /// For a model in an OCI registry: what each layer unpacked to. A layer is named by
    /// its digest, which the registry client checks, so it needs no file stamp.
    pub layers: Vec<LayerStamp>,
}

/// The files and directories one OCI layer (by digest and format) unpacked to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerStamp {
    /// `sha256:HEX`.
    pub digest: String,
    /// How it was read: `tar`, `tar+gzip`, `tar+zstd` or `raw:PATH`.
    pub format: String,
    /// The files it held, in the order it held them.
    pub files: Vec<ManifestPath>,
    /// The directory entries it held.
    pub directories: Vec<ManifestPath>,
}

/// Why a stamp file was not used. Never fatal: the files are hashed instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StampsError {
    /// Not readable.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// Too large.
    #[error("it is larger than {MAX_STAMPS_BYTES} bytes")]
    TooLarge,
    /// Not a DSSE envelope of stamps.
    #[error("it is not a stamp file: {0}")]
    Malformed(String),
    /// Not signed by the signer's key.
    #[error("its signature is not by this key")]
    Signature,
    /// Stamps for another signature.
    #[error("it belongs to another signature")]
    OtherSignature,
    /// Stamps for another directory.
    #[error("it was taken of another directory ({0})")]
    OtherModel(String),
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StampsJson {
    #[serde(rename = "_type")]
    kind: String,
    signature: DigestJson,
    model: String,
    files: Vec<FileJson>,
    layers: Vec<LayerStamp>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestJson {
    sha256: String,
}

/// One stamped file; the fields spelled out (serde's `flatten` would not refuse unknown
/// ones).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    path: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamps {
    /// The signed stamp file: a DSSE envelope of [`STAMPS_PAYLOAD_TYPE`] by `key`.
    pub fn sign(&self, key: &dyn KeySigner) -> Result<Vec<u8>, KeyError> {
        let json = StampsJson {
            kind: STAMPS_TYPE.to_owned(),
            signature: DigestJson {
                sha256: hex::encode(self.signature_sha256),
            },
            model: self.model.clone(),
            layers: self.layers.clone(),
            files: self
                .files
                .iter()
                .map(|(path, stamp)| FileJson {
                    path: path.to_string(),
                    dev: stamp.dev,
                    ino: stamp.ino,
                    size: stamp.size,
                    mtime: stamp.mtime,
                    ctime: stamp.ctime,
                })
                .collect(),
        };
        let payload = serde_json::to_vec(&json).expect("stamps always serialize");
        let sig = crate::keys::sign_checked(key, &dsse::pae(STAMPS_PAYLOAD_TYPE, &payload))?;
        let envelope = dsse::Envelope {
            payload,
            payload_type: STAMPS_PAYLOAD_TYPE.to_owned(),
            signatures: vec![dsse::Signature {
                sig,
                keyid: Some(String::new()),
            }],
        };
        let mut out = serde_json::to_vec(&envelope).expect("an envelope always serializes");
        out.push(b'\n');
        Ok(out)
    }

    /// Reads the stamp file at `path`, signed by `key`, for the signature whose bytes
    /// hash to `signature_sha256`, taken of `model` (canonical).
    pub fn read(
        path: &Path,
        key: &VerifyingKey,
        signature_sha256: &[u8; 32],
        model: &str,
    ) -> Result<Self, StampsError> {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        crate::open::open_regular(path)?
            .take(MAX_STAMPS_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_STAMPS_BYTES {
            return Err(StampsError::TooLarge);
        }
        let stamps = Self::open(&bytes, key)?;
        if &stamps.signature_sha256 != signature_sha256 {
            return Err(StampsError::OtherSignature);
        }
        if stamps.model != model {
            return Err(StampsError::OtherModel(stamps.model));
        }
        Ok(stamps)
    }

    /// Checks a stamp file's signature by `key` and parses what it signs.
    pub fn open(bytes: &[u8], key: &VerifyingKey) -> Result<Self, StampsError> {
        let malformed = |e: &dyn std::fmt::Display| StampsError::Malformed(e.to_string());
        let envelope: dsse::Envelope = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
        if envelope.payload_type != STAMPS_PAYLOAD_TYPE {
            return Err(malformed(&"another payload type"));
        }
        let [signature] = envelope.signatures.as_slice() else {
            return Err(malformed(&"not exactly one signature"));
        };
        if !key.verify(
            &dsse::pae(STAMPS_PAYLOAD_TYPE, &envelope.payload),
            &signature.sig,
        ) {
            return Err(StampsError::Signature);
        }
        let json: StampsJson =
            serde_json::from_slice(&envelope.payload).map_err(|e| malformed(&e))?;
        if json.kind != STAMPS_TYPE {
            return Err(malformed(&"another _type"));
        }
        let mut signature_sha256 = [0; 32];
        hex::decode_to_slice(&json.signature.sha256, &mut signature_sha256)
            .map_err(|e| malformed(&e))?;
        let mut files = std::collections::BTreeMap::new();
        for file in json.files {
            let path = ManifestPath::parse(&file.path).map_err(|e| malformed(&e))?;
            let stamp = Stamp {
                dev: file.dev,
                ino: file.ino,
                size: file.size,
                mtime: file.mtime,
                ctime: file.ctime,
            };
            if files.insert(path, stamp).is_some() {
                return Err(malformed(&format!("{} is stamped twice", file.path)));
            }
        }
        Ok(Self {
            signature_sha256,
            model: json.model,
            files,
            layers: json.layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mtime: i64, ctime: i64) -> Stamp {
        Stamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (mtime, 0),
            ctime: (ctime, 0),
        }
    }

    #[test]
    fn a_stamp_near_or_after_the_start_is_racy() {
        let started = UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        assert!(!stamp(990, 990).is_racy(started));
        assert!(stamp(999, 990).is_racy(started), "mtime within the margin");
        assert!(stamp(990, 998).is_racy(started), "ctime at the margin");
        assert!(stamp(990, 1_500).is_racy(started), "ctime in the future");
        assert!(!stamp(997, 997).is_racy(started));
    }

    #[test]
    fn stamps_round_trip_and_refuse_other_keys_and_edits() {
        let key = crate::SigningKey::generate(crate::KeyAlgorithm::Ed25519).unwrap();
        let other = crate::SigningKey::generate(crate::KeyAlgorithm::Ed25519).unwrap();
        let stamps = Stamps {
            signature_sha256: [7; 32],
            model: "/models/m".into(),
            files: [(ManifestPath::parse("a/b.bin").unwrap(), stamp(5, 6))].into(),
            layers: vec![],
        };
        let bytes = stamps.sign(&key).unwrap();
        assert_eq!(Stamps::open(&bytes, &key.verifying_key()).unwrap(), stamps);
        assert!(matches!(
            Stamps::open(&bytes, &other.verifying_key()),
            Err(StampsError::Signature)
        ));
        // The payload edited (a later change time), the signature kept.
        let mut envelope: dsse::Envelope = serde_json::from_slice(&bytes).unwrap();
        let text = String::from_utf8(envelope.payload.clone()).unwrap();
        envelope.payload = text
            .replace("\"ctime\":[6,0]", "\"ctime\":[7,0]")
            .into_bytes();
        assert_ne!(envelope.payload, text.as_bytes());
        let edited = serde_json::to_vec(&envelope).unwrap();
        assert!(matches!(
            Stamps::open(&edited, &key.verifying_key()),
            Err(StampsError::Signature)
        ));
    }
}
