//! The signing side end to end: walk, hash, manifest, statement, envelope, bundle.

use std::path::Path;

use crate::bundle::{
    BUNDLE_MEDIA_TYPE, Bundle, PublicKeyIdentifier, VerificationMaterial, X509Certificate,
    X509CertificateChain,
};
use crate::digest::Blake3Digest;
use crate::dsse::{self, Envelope};
use crate::hash::{self, HashError, Progress};
use crate::keys::{KeySigner, SigningKey};
use crate::manifest::{Manifest, ManifestEntry, ManifestError};
use crate::oms;
use crate::stamps::{BeforeHashing, KnownDigests, Stamp};
use crate::statement::{ArtifactKind, IN_TOTO_PAYLOAD_TYPE, ManifestPredicate, Scope, Statement};
use crate::walk::{self, SymlinkPolicy, WalkError, WalkOptions};

/// Why a model could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Walking the directory failed.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// Reading a file failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The files do not form a valid manifest.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// OMS settings that model-signing could not verify.
    #[error("{0}")]
    UnsupportedOms(&'static str),
    /// The key (or the device holding it) could not sign.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// Known digests that do not name a model model-signing could verify.
    #[error("{0}")]
    Listed(String),
}

/// Walks and hashes the model at `root` into its manifest.
pub fn hash_model(
    root: &Path,
    options: &WalkOptions,
    progress: &dyn Progress,
) -> Result<Manifest, ModelError> {
    let files = walk::walk_model(root, options)?;
    manifest_of_files(files, progress)
}

/// Hashes files already found (walked or looked up) into their manifest.
pub fn manifest_of_files(
    files: Vec<walk::ModelFile>,
    progress: &dyn Progress,
) -> Result<Manifest, ModelError> {
    let hashes = hash::hash_files(&files, progress)?;
    Ok(Manifest::from_unsorted(hashed_entries(files, hashes))?)
}

/// Manifest entries of files and their hashes, in the same order.
fn hashed_entries(files: Vec<walk::ModelFile>, hashes: Vec<hash::FileHash>) -> Vec<ManifestEntry> {
    files
        .into_iter()
        .zip(hashes)
        .map(|(file, hash)| ManifestEntry {
            path: file.path,
            size: hash.size,
            blake3: hash.blake3,
        })
        .collect()
}

/// What hashing a model for signing read, kept and stamped.
#[derive(Debug, Clone, Default)]
pub struct Restamped {
    /// The stamps to record beside the new signature: every kept file's, and every hashed
    /// file's that did not change while it was read and is not racy.
    pub stamps: Vec<(crate::ManifestPath, Stamp)>,
    /// Files that kept a digest from the earlier signature, and their bytes.
    pub kept: (u64, u64),
    /// Files hashed, and their bytes.
    pub hashed: (u64, u64),
}

impl Restamped {
    fn count(files: &[walk::ModelFile]) -> (u64, u64) {
        (files.len() as u64, files.iter().map(|f| f.size).sum())
    }

    /// Counts a file that kept its digest, and keeps its stamp.
    fn keep(&mut self, file: &walk::ModelFile, stamp: Stamp) {
        self.kept.0 += 1;
        self.kept.1 += file.size;
        self.stamps.push((file.path.clone(), stamp));
    }
}

/// Hashes the walked files that do not keep a known digest, and puts both into one
/// manifest: the manifest a full hash of the same files gives, when every kept digest is
/// still the file's.
fn manifest_since(
    files: Vec<walk::ModelFile>,
    known: &KnownDigests<Blake3Digest>,
    progress: &dyn Progress,
) -> Result<(Manifest, Restamped), ModelError> {
    let split = known.split(files);
    let before = BeforeHashing::take(&split.to_hash);
    let hashes = hash::hash_files(&split.to_hash, progress)?;
    let mut restamped = Restamped {
        hashed: Restamped::count(&split.to_hash),
        ..Restamped::default()
    };
    restamped.stamps = before.after(&split.to_hash);
    let mut entries = hashed_entries(split.to_hash, hashes);
    for (file, stamp, blake3) in split.kept {
        restamped.keep(&file, stamp);
        entries.push(ManifestEntry {
            path: file.path,
            size: file.size,
            blake3,
        });
    }
    Ok((Manifest::from_unsorted(entries)?, restamped))
}

/// Walks and hashes the model at `root` the OMS way, keeping the resources of files
/// whose stamp is unchanged.
fn hash_model_oms(
    root: &Path,
    serialization: &oms::OmsSerialization,
    base: &WalkOptions,
    known: &KnownDigests<Vec<oms::OmsResource>>,
    progress: &dyn Progress,
) -> Result<(Vec<oms::OmsResource>, Restamped), ModelError> {
    let single_file = std::fs::metadata(root).is_ok_and(|m| m.is_file());
    let options = oms::walk_options(serialization, base);
    let files = match walk::walk_model(root, &options) {
        Ok(files) => files,
        // OMS signs an empty model as an empty list; the caller decides whether to allow it.
        Err(WalkError::Empty { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    // A single-file model's resource has no name to carry a digest under.
    let split = if single_file {
        KnownDigests::default().split(files)
    } else {
        known.split(files)
    };
    let before = BeforeHashing::take(&split.to_hash);
    let mut resources = oms::hash_resources(&split.to_hash, single_file, serialization, progress)?;
    let mut restamped = Restamped {
        hashed: Restamped::count(&split.to_hash),
        ..Restamped::default()
    };
    restamped.stamps = before.after(&split.to_hash);
    for (file, stamp, kept) in split.kept {
        restamped.keep(&file, stamp);
        resources.extend(kept);
    }
    resources.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((resources, restamped))
}

/// What to sign, besides the files.
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// Subject name; defaults to the model directory's name.
    pub name: Option<String>,
    /// Model or dataset.
    pub kind: ArtifactKind,
    /// Which files are covered.
    pub walk: WalkOptions,
}

/// A signed model: the bundle to write, and what it covers.
#[derive(Debug, Clone)]
pub struct SignedModel {
    /// The Sigstore bundle.
    pub bundle: Bundle,
    /// The manifest signed.
    pub manifest: Manifest,
    /// Its Merkle root, the subject digest.
    pub root: Blake3Digest,
    /// The subject name.
    pub name: String,
}

/// A hashed model and the native statement about it, not yet signed: for signers that
/// are not a local key (Sigstore keyless).
#[derive(Debug, Clone)]
pub struct StatedModel {
    /// The statement to sign.
    pub statement: Statement<ManifestPredicate>,
    /// The manifest it carries.
    pub manifest: Manifest,
    /// Its Merkle root, the subject digest.
    pub root: Blake3Digest,
    /// The subject name.
    pub name: String,
}

/// Hashes a model directory (or single file) into its native statement.
pub fn state_model(
    root: &Path,
    options: &SignOptions,
    progress: &dyn Progress,
) -> Result<StatedModel, ModelError> {
    state_model_since(root, options, &KnownDigests::default(), progress).map(|(stated, _)| stated)
}

/// [`state_model`], keeping the digest `known` gives each file whose stamp is unchanged
/// (`sign --update`), and stamping what it hashes.
pub fn state_model_since(
    root: &Path,
    options: &SignOptions,
    known: &KnownDigests<Blake3Digest>,
    progress: &dyn Progress,
) -> Result<(StatedModel, Restamped), ModelError> {
    crate::manifest::check_ignore_paths(&options.walk.ignore)?;
    let files = walk::walk_model(root, &options.walk)?;
    let (manifest, restamped) = manifest_since(files, known, progress)?;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| walk::model_name(root));
    let predicate = ManifestPredicate {
        kind: options.kind,
        ignore_paths: options.walk.ignore.clone(),
        allow_symlinks: options.walk.symlinks == SymlinkPolicy::FollowInside,
        scope: Some(Scope::of(root)),
        files: manifest.entries().to_vec(),
    };
    let digest = manifest.root();
    let stated = StatedModel {
        statement: Statement::for_manifest(&name, &digest, predicate),
        manifest,
        root: digest,
        name,
    };
    Ok((stated, restamped))
}

/// Hashes and signs a model directory (or single file) with the native manifest.
pub fn sign_model(
    root: &Path,
    options: &SignOptions,
    key: &dyn KeySigner,
    progress: &dyn Progress,
) -> Result<SignedModel, ModelError> {
    let stated = state_model(root, options, progress)?;
    let hint = key.verifying_key().fingerprint().as_str().to_owned();
    Ok(SignedModel {
        bundle: sign_statement_by(&stated.statement, key, key_material(hint))?,
        manifest: stated.manifest,
        root: stated.root,
        name: stated.name,
    })
}

/// Wraps any statement in a DSSE envelope signed by `key`, inside a bundle whose
/// `publicKey.hint` is the key's fingerprint.
pub fn sign_statement<P: serde::Serialize>(statement: &Statement<P>, key: &SigningKey) -> Bundle {
    let hint = key.verifying_key().fingerprint().as_str().to_owned();
    sign_statement_with(statement, key, key_material(hint))
}

fn key_material(hint: String) -> VerificationMaterial {
    VerificationMaterial {
        public_key: Some(PublicKeyIdentifier { hint: Some(hint) }),
        ..VerificationMaterial::default()
    }
}

/// Wraps a statement in a DSSE envelope signed by `key`, with the given verification
/// material (a key hint, or the certificate chain that certifies `key`).
pub fn sign_statement_with<P: serde::Serialize>(
    statement: &Statement<P>,
    key: &SigningKey,
    material: VerificationMaterial,
) -> Bundle {
    let payload = statement.to_json();
    let sig = key.sign(&dsse::pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    envelope_bundle(payload, sig, material)
}

/// [`sign_statement_with`] for any [`KeySigner`]: a device may fail, and its signature
/// is checked against its public key before the bundle is made.
pub fn sign_statement_by<P: serde::Serialize>(
    statement: &Statement<P>,
    key: &dyn KeySigner,
    material: VerificationMaterial,
) -> Result<Bundle, crate::keys::KeyError> {
    let payload = statement.to_json();
    let sig = crate::keys::sign_checked(key, &dsse::pae(IN_TOTO_PAYLOAD_TYPE, &payload))?;
    Ok(envelope_bundle(payload, sig, material))
}

/// Signs `statement` with `key`, naming the key by its fingerprint (the native format).
pub fn sign_statement_keyed<P: serde::Serialize>(
    statement: &Statement<P>,
    key: &dyn KeySigner,
) -> Result<Bundle, crate::keys::KeyError> {
    let hint = key.verifying_key().fingerprint().as_str().to_owned();
    sign_statement_by(statement, key, key_material(hint))
}

fn envelope_bundle(payload: Vec<u8>, sig: Vec<u8>, material: VerificationMaterial) -> Bundle {
    Bundle {
        media_type: BUNDLE_MEDIA_TYPE.to_owned(),
        verification_material: material,
        dsse_envelope: Envelope {
            payload,
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
            signatures: vec![dsse::Signature {
                sig,
                keyid: Some(String::new()),
            }],
        },
    }
}

/// What to sign in the OMS profile, besides the files.
#[derive(Debug, Clone)]
pub struct OmsSignOptions {
    /// Subject name; defaults to the model's file name.
    pub name: Option<String>,
    /// Files or shards.
    pub method: oms::OmsMethod,
    /// Per-resource hash.
    pub hash: oms::OmsHash,
    /// User ignore paths, excluded files (the signature), symlink policy.
    pub walk: WalkOptions,
    /// The certificate chain (DER, leaf first) for certificate signing; `None` signs
    /// with a bare key, named by model-signing's key hint.
    pub certificate_chain: Option<Vec<Vec<u8>>>,
}

/// An OMS-signed model.
#[derive(Debug, Clone)]
pub struct SignedOmsModel {
    /// The Sigstore bundle.
    pub bundle: Bundle,
    /// The resources signed, in order.
    pub resources: Vec<oms::OmsResource>,
    /// The subject's SHA-256 digest.
    pub root: [u8; 32],
    /// The subject name.
    pub name: String,
}

/// A model hashed in the OMS v1.0 profile and its statement, not yet signed.
#[derive(Debug, Clone)]
pub struct StatedOmsModel {
    /// The statement to sign.
    pub statement: Statement,
    /// The resources it lists, in order.
    pub resources: Vec<oms::OmsResource>,
    /// The subject's SHA-256 digest.
    pub root: [u8; 32],
    /// The subject name.
    pub name: String,
}

/// Hashes a model in the OMS v1.0 profile into its statement. The recorded
/// `ignore_paths` are the user's, the signature file's when it lies inside the model,
/// and model-signing's four git defaults, as model-signing records them.
pub fn state_model_oms(
    root: &Path,
    options: &OmsSignOptions,
    progress: &dyn Progress,
) -> Result<StatedOmsModel, ModelError> {
    state_model_oms_since(root, options, &KnownDigests::default(), progress)
        .map(|(stated, _)| stated)
}

/// The OMS serialization `options` ask for, before any file is read: model-signing's
/// recorded ignore paths included, and settings it could not verify refused.
pub fn oms_serialization(
    root: &Path,
    options: &OmsSignOptions,
) -> Result<oms::OmsSerialization, ModelError> {
    // Refuse what model-signing cannot verify, so an "OMS" signature always is one.
    if options.hash == oms::OmsHash::Blake3
        && matches!(options.method, oms::OmsMethod::Shards { .. })
    {
        return Err(ModelError::UnsupportedOms(
            "model-signing has no BLAKE3 shards (it hashes whole files with BLAKE3); use --method files with --hash blake3",
        ));
    }
    let mut ignore_paths = options.walk.ignore.clone();
    let is_dir = std::fs::metadata(root).is_ok_and(|m| m.is_dir());
    if is_dir {
        for excluded in &options.walk.exclude_files {
            if let Some(inside) = relative_inside(root, excluded) {
                ignore_paths.push(inside);
            }
        }
    }
    for name in walk::OMS_IGNORED_NAMES {
        ignore_paths
            .push(crate::ManifestPath::parse(name).expect("constant names are valid paths"));
    }
    ignore_paths.sort();
    ignore_paths.dedup();
    crate::manifest::check_ignore_paths(&ignore_paths)?;
    Ok(oms::OmsSerialization {
        method: options.method,
        hash: options.hash,
        allow_symlinks: options.walk.symlinks == SymlinkPolicy::FollowInside,
        ignore_paths,
    })
}

/// [`state_model_oms`], keeping the resources `known` gives each file whose stamp is
/// unchanged (`sign --update`), and stamping what it hashes.
pub fn state_model_oms_since(
    root: &Path,
    options: &OmsSignOptions,
    known: &KnownDigests<Vec<oms::OmsResource>>,
    progress: &dyn Progress,
) -> Result<(StatedOmsModel, Restamped), ModelError> {
    let serialization = oms_serialization(root, options)?;
    let mut base = options.walk.clone();
    base.ignore.clear();
    let (resources, restamped) = hash_model_oms(root, &serialization, &base, known, progress)?;
    if resources.is_empty() {
        return Err(WalkError::Empty { path: root.into() }.into());
    }
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| walk::model_name(root));
    let stated = StatedOmsModel {
        statement: oms::statement(&name, &serialization, &resources),
        root: oms::root_digest(&resources),
        resources,
        name,
    };
    Ok((stated, restamped))
}

/// An OMS v1.0 statement (whole files, SHA-256) of files whose digests are already
/// known (a `sha256sum` list, raw OCI layers): no byte is read. Refuses what a verifier
/// of the directory could never match: a name model-signing leaves out of its walk, or a
/// file named also as a directory.
pub fn state_oms_from_digests(
    name: &str,
    files: Vec<(crate::ManifestPath, [u8; 32])>,
) -> Result<StatedOmsModel, ModelError> {
    if files.is_empty() {
        return Err(ModelError::Listed("no file is named".into()));
    }
    let paths: std::collections::HashSet<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    if paths.len() != files.len() {
        return Err(ModelError::Listed("a file is named twice".into()));
    }
    for (path, _) in &files {
        let text = path.as_str();
        let top = text.split('/').next().unwrap_or(text);
        if walk::OMS_IGNORED_NAMES.contains(&top) {
            return Err(ModelError::Listed(format!(
                "{text}: model-signing leaves {top} out of every model, so no verifier could match it"
            )));
        }
        let mut prefix = text;
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if paths.contains(parent) {
                return Err(ModelError::Listed(format!(
                    "{parent} is named as a file and as the directory of {text}"
                )));
            }
            prefix = parent;
        }
    }
    let mut ignore_paths: Vec<crate::ManifestPath> = walk::OMS_IGNORED_NAMES
        .iter()
        .map(|n| crate::ManifestPath::parse(n).expect("constant names are valid paths"))
        .collect();
    ignore_paths.sort();
    let serialization = oms::OmsSerialization {
        method: oms::OmsMethod::Files,
        hash: oms::OmsHash::Sha256,
        allow_symlinks: false,
        ignore_paths,
    };
    let algorithm = serialization.resource_algorithm();
    let mut resources: Vec<oms::OmsResource> = files
        .into_iter()
        .map(|(path, digest)| oms::OmsResource {
            name: oms::ResourceName {
                path: Some(path),
                shard: None,
            },
            algorithm: algorithm.clone(),
            digest: digest.to_vec(),
        })
        .collect();
    resources.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(StatedOmsModel {
        statement: oms::statement(name, &serialization, &resources),
        root: oms::root_digest(&resources),
        resources,
        name: name.to_owned(),
    })
}

/// Hashes and signs a model in the OMS v1.0 profile, so that model-signing verifies it.
pub fn sign_model_oms(
    root: &Path,
    options: &OmsSignOptions,
    key: &dyn KeySigner,
    progress: &dyn Progress,
) -> Result<SignedOmsModel, ModelError> {
    check_oms_key(key)?;
    let stated = state_model_oms(root, options, progress)?;
    sign_stated_oms(stated, options, key)
}

/// Refuses a key model-signing could not verify, before any file is hashed.
pub fn check_oms_key(key: &dyn KeySigner) -> Result<(), ModelError> {
    use crate::KeyAlgorithm::{EcdsaP256, EcdsaP384, EcdsaP521};
    if !matches!(
        key.verifying_key().algorithm(),
        EcdsaP256 | EcdsaP384 | EcdsaP521
    ) {
        return Err(ModelError::UnsupportedOms(
            "model-signing verifies ECDSA P-256/P-384/P-521 keys only (Ed25519 and ML-DSA-65 sign the native format); make one with `modelseal keygen --algorithm ecdsa-p256`",
        ));
    }
    Ok(())
}

/// Signs an OMS statement already made with `key`, with the certificate chain `options`
/// name or else model-signing's key hint.
pub fn sign_stated_oms(
    stated: StatedOmsModel,
    options: &OmsSignOptions,
    key: &dyn KeySigner,
) -> Result<SignedOmsModel, ModelError> {
    let material = match &options.certificate_chain {
        None => key_material(key.verifying_key().pem_hint()),
        Some(chain) => VerificationMaterial {
            x509_certificate_chain: Some(X509CertificateChain {
                certificates: chain
                    .iter()
                    .map(|der| X509Certificate {
                        raw_bytes: der.clone(),
                    })
                    .collect(),
            }),
            ..VerificationMaterial::default()
        },
    };
    Ok(SignedOmsModel {
        bundle: sign_statement_by(&stated.statement, key, material)?,
        root: stated.root,
        resources: stated.resources,
        name: stated.name,
    })
}

/// `path` relative to the model directory `root`, when it lies inside it (it need not
/// exist yet: its parent must).
pub fn relative_inside(root: &Path, path: &Path) -> Option<crate::ManifestPath> {
    let root = std::fs::canonicalize(root).ok()?;
    let full = walk::place(path)?;
    let inside = full.strip_prefix(&root).ok()?.to_str()?;
    crate::ManifestPath::parse(&inside.replace(std::path::MAIN_SEPARATOR, "/")).ok()
}
