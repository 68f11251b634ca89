//! A model in a registry: the manifest a reference resolves to, what kind of artifact it
//! is, and the files its layers unpack to (`spec/oci.md` §3-4).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

use modelseal_core::hash::Progress;
use modelseal_core::statement::{ManifestPredicate, ResourceDescriptor, Statement};
use modelseal_core::{ArtifactKind, Blake3Digest, Manifest, ManifestEntry, ManifestPath};
use oci_spec::image::ImageManifest;

use crate::layers::{LayerFormat, UnpackLimits, Unpacker, layer_format};
use crate::reference::{OciDigest, Reference};
use crate::referrers::Subject;
use crate::{OciError, Registry};

/// What kind of artifact a manifest is, by its config media type (or artifact type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactFlavor {
    /// CNCF ModelPack.
    ModelPack,
    /// KitOps ModelKit.
    KitOps,
    /// A container image (OCI or Docker).
    Image,
    /// Another artifact whose layers are all model layers.
    Other,
}

impl ArtifactFlavor {
    /// A short name for output.
    pub fn name(self) -> &'static str {
        match self {
            Self::ModelPack => "modelpack",
            Self::KitOps => "kitops",
            Self::Image => "image",
            Self::Other => "artifact",
        }
    }
}

/// A layer to unpack.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Its digest (the blob name).
    pub digest: OciDigest,
    /// Compressed size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// How to read it.
    pub format: LayerFormat,
}

/// A model artifact, resolved to one manifest.
#[derive(Debug, Clone)]
pub struct OciModel {
    /// The reference, pinned to the manifest's digest.
    pub reference: Reference,
    /// The manifest bytes, as fetched and hashed.
    pub manifest_bytes: Vec<u8>,
    /// The manifest's media type.
    pub media_type: String,
    /// Its kind.
    pub flavor: ArtifactFlavor,
    /// The config's media type.
    pub config_media_type: String,
    /// The layers, in order, each checked to be a model layer.
    pub layers: Vec<Layer>,
}

impl OciModel {
    /// The manifest's digest.
    pub fn digest(&self) -> OciDigest {
        self.reference
            .digest()
            .expect("an opened model is pinned to its digest")
    }

    /// The manifest as a referrer's subject.
    pub fn subject(&self) -> Subject {
        Subject {
            digest: self.digest(),
            media_type: self.media_type.clone(),
            size: self.manifest_bytes.len() as u64,
        }
    }

    /// Bytes of all layers, compressed.
    pub fn layer_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Resolves `reference` (a tag once, to the digest of the bytes fetched) and reads its
/// manifest, refusing anything that is not a single manifest of model layers.
pub fn open(registry: &Registry, reference: &Reference) -> Result<OciModel, OciError> {
    let fetched = registry.manifest(reference)?;
    let pinned = reference.pinned(fetched.digest);
    if INDEX_TYPES.contains(&fetched.media_type.as_str()) {
        let listed = serde_json::from_slice::<serde_json::Value>(&fetched.bytes)
            .ok()
            .and_then(|v| v["manifests"].as_array().cloned())
            .unwrap_or_default();
        let digests: Vec<String> = listed
            .iter()
            .take(8)
            .filter_map(|m| m["digest"].as_str().map(str::to_owned))
            .collect();
        return Err(OciError::Unsupported(format!(
            "{pinned} is an index of {} manifests (one per platform?); name one by digest: {}",
            listed.len(),
            digests.join(", ")
        )));
    }
    if !MANIFEST_TYPES.contains(&fetched.media_type.as_str()) {
        return Err(OciError::Unsupported(format!(
            "{pinned} has media type {:?}, not an OCI or Docker image manifest",
            fetched.media_type
        )));
    }
    let manifest: ImageManifest = serde_json::from_slice(&fetched.bytes)
        .map_err(|e| OciError::Unsupported(format!("{pinned}: manifest does not parse: {e}")))?;
    let config_media_type = manifest.config().media_type().to_string();
    let artifact_type = manifest.artifact_type().as_ref().map(|t| t.to_string());
    let flavor = match (config_media_type.as_str(), artifact_type.as_deref()) {
        ("application/vnd.cncf.model.config.v1+json", _)
        | (_, Some("application/vnd.cncf.model.manifest.v1+json")) => ArtifactFlavor::ModelPack,
        ("application/vnd.kitops.modelkit.config.v1+json", _) => ArtifactFlavor::KitOps,
        (
            "application/vnd.oci.image.config.v1+json"
            | "application/vnd.docker.container.image.v1+json",
            _,
        ) => ArtifactFlavor::Image,
        _ => ArtifactFlavor::Other,
    };
    if manifest.layers().is_empty() {
        return Err(OciError::Unsupported(format!(
            "{pinned} has no layers: no model"
        )));
    }
    let mut layers = Vec::new();
    for descriptor in manifest.layers() {
        let digest_text = descriptor.digest().to_string();
        let digest: OciDigest = digest_text.parse().map_err(|_| OciError::Layer {
            layer: digest_text.clone(),
            problem: "not a sha256 digest (the only algorithm accepted)".into(),
        })?;
        let media_type = descriptor.media_type().to_string();
        let format = layer_format(&media_type, descriptor.annotations().as_ref(), &digest_text)?;
        layers.push(Layer {
            digest,
            size: descriptor.size(),
            media_type,
            format,
        });
    }
    Ok(OciModel {
        reference: pinned,
        manifest_bytes: fetched.bytes,
        media_type: fetched.media_type,
        flavor,
        config_media_type,
        layers,
    })
}

/// Streams every layer and returns the manifest of the files they unpack to. With
/// `out`, the files are also written under that (new, empty) directory.
///
/// Each layer is read on a second thread, which checks its digest, while this one
/// unpacks and hashes: network and hashing overlap, and at most a few MiB are in
/// flight.
pub fn unpack(
    registry: &Registry,
    model: &OciModel,
    out: Option<&Path>,
    limits: UnpackLimits,
    progress: &dyn Progress,
) -> Result<Manifest, OciError> {
    let mut unpacker = Unpacker::new(out, limits);
    for layer in &model.layers {
        read_layer(registry, model, layer, &mut unpacker, progress)?;
    }
    manifest_of(model, unpacker)
}

/// What one layer unpacked to: the files (with their digests) and directory entries, for
/// the stamps `sign --update` reuses (`spec/incremental.md` §6).
#[derive(Debug, Clone)]
pub struct UnpackedLayer {
    /// The layer's digest.
    pub digest: OciDigest,
    /// How it was read ([`crate::layers::LayerFormat::key`]).
    pub format: String,
    /// Its files, in order.
    pub files: Vec<ManifestEntry>,
    /// Its directory entries.
    pub directories: Vec<ManifestPath>,
    /// Taken from `known` rather than read.
    pub carried: bool,
}

/// Layers read before, by digest and format: what each unpacked to.
pub type KnownLayers = HashMap<(OciDigest, String), (Vec<ManifestEntry>, Vec<ManifestPath>)>;

/// [`unpack`] (hashing only), taking what a layer holds from `known` when the same digest
/// and format were read before: such a layer is not fetched. The registry checks a
/// layer's digest against its bytes, so one digest is one content.
pub fn unpack_since(
    registry: &Registry,
    model: &OciModel,
    known: &KnownLayers,
    limits: UnpackLimits,
    progress: &dyn Progress,
) -> Result<(Manifest, Vec<UnpackedLayer>), OciError> {
    let mut unpacker = Unpacker::new(None, limits);
    let mut layers = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let format = layer.format.key();
        let before = unpacker.entries.len();
        let carried = match known.get(&(layer.digest, format.clone())) {
            Some((files, directories)) => {
                unpacker.carry(
                    &layer.digest.to_string(),
                    files.clone(),
                    directories.clone(),
                )?;
                true
            }
            None => {
                read_layer(registry, model, layer, &mut unpacker, progress)?;
                false
            }
        };
        layers.push(UnpackedLayer {
            digest: layer.digest,
            format,
            files: unpacker.entries[before..].to_vec(),
            directories: unpacker.layer_directories.clone(),
            carried,
        });
    }
    Ok((manifest_of(model, unpacker)?, layers))
}

fn manifest_of(model: &OciModel, unpacker: Unpacker<'_>) -> Result<Manifest, OciError> {
    Manifest::from_unsorted(unpacker.entries).map_err(|e| OciError::Layer {
        layer: model.digest().to_string(),
        problem: format!("the files do not form a manifest: {e}"),
    })
}

/// Fetches one layer and unpacks it: on a second thread the blob is read (and its digest
/// checked), on this one unpacked and hashed.
fn read_layer(
    registry: &Registry,
    model: &OciModel,
    layer: &Layer,
    unpacker: &mut Unpacker<'_>,
    progress: &dyn Progress,
) -> Result<(), OciError> {
    let blob = registry.blob_reader(&model.reference, layer.digest, layer.size)?;
    let before = unpacker.bytes;
    std::thread::scope(|scope| -> Result<(), OciError> {
        let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(4);
        scope.spawn(move || pump(blob, tx));
        let mut reader = ChannelReader {
            rx,
            current: Vec::new(),
            offset: 0,
        };
        unpacker.layer(
            &layer.digest.to_string(),
            &layer.format,
            layer.size,
            &mut reader,
        )
    })?;
    progress.advance(unpacker.bytes - before);
    Ok(())
}

/// Reads a blob in 1 MiB chunks into the channel; stops when the reader hangs up.
fn pump(mut blob: crate::BlobReader, tx: mpsc::SyncSender<std::io::Result<Vec<u8>>>) {
    loop {
        let mut buf = vec![0u8; 1 << 20];
        let mut filled = 0;
        let result = loop {
            match blob.read(&mut buf[filled..]) {
                Ok(0) => break Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break Ok(filled);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.send(Ok(buf)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    offset: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.offset == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.offset = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // the pump finished: end of blob
            }
        }
        let n = buf.len().min(self.current.len() - self.offset);
        buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// The native statement about a model unpacked from `model`: the files' BLAKE3 root as
/// the first subject, the OCI manifest digest as the second (`spec/oci.md` §3).
pub fn statement(
    model: &OciModel,
    manifest: &Manifest,
    name: Option<&str>,
    kind: ArtifactKind,
) -> (Statement<ManifestPredicate>, Blake3Digest) {
    let root = manifest.root();
    let name = name
        .map(str::to_owned)
        .unwrap_or_else(|| model.reference.name());
    let predicate = ManifestPredicate {
        kind,
        ignore_paths: Vec::new(),
        allow_symlinks: false,
        scope: Some(modelseal_core::statement::Scope::Directory),
        files: manifest.entries().to_vec(),
    };
    let mut statement = Statement::for_manifest(&name, &root, predicate);
    statement.subject.push(ResourceDescriptor {
        name: Some(model.reference.name()),
        uri: None,
        digest: [("sha256".to_owned(), model.digest().hex())].into(),
        annotations: None,
    });
    (statement, root)
}
