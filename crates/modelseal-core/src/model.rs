//! The signing side end to end: walk, hash, manifest, statement, envelope, bundle.

use std::path::Path;

use crate::bundle::{BUNDLE_MEDIA_TYPE, Bundle, PublicKeyIdentifier, VerificationMaterial};
use crate::digest::Blake3Digest;
use crate::dsse::{self, Envelope};
use crate::hash::{self, HashError, Progress};
use crate::keys::SigningKey;
use crate::manifest::{Manifest, ManifestEntry, ManifestError};
use crate::statement::{ArtifactKind, IN_TOTO_PAYLOAD_TYPE, ManifestPredicate, Statement};
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
}

/// Walks and hashes the model at `root` into its manifest.
pub fn hash_model(
    root: &Path,
    options: &WalkOptions,
    progress: &dyn Progress,
) -> Result<Manifest, ModelError> {
    let files = walk::walk_model(root, options)?;
    let hashes = hash::hash_files(&files, progress)?;
    let entries = files
        .into_iter()
        .zip(hashes)
        .map(|(file, hash)| ManifestEntry {
            path: file.path,
            size: hash.size,
            blake3: hash.blake3,
        })
        .collect();
    Ok(Manifest::from_unsorted(entries)?)
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

/// Hashes and signs a model directory (or single file) with the native manifest.
pub fn sign_model(
    root: &Path,
    options: &SignOptions,
    key: &SigningKey,
    progress: &dyn Progress,
) -> Result<SignedModel, ModelError> {
    let manifest = hash_model(root, &options.walk, progress)?;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| walk::model_name(root));
    let predicate = ManifestPredicate {
        kind: options.kind,
        ignore_paths: options.walk.ignore.clone(),
        allow_symlinks: options.walk.symlinks == SymlinkPolicy::FollowInside,
        files: manifest.entries().to_vec(),
    };
    let digest = manifest.root();
    let statement = Statement::for_manifest(&name, &digest, predicate);
    Ok(SignedModel {
        bundle: sign_statement(&statement, key),
        manifest,
        root: digest,
        name,
    })
}

/// Wraps any statement in a DSSE envelope signed by `key`, inside a bundle whose
/// `publicKey.hint` is the key's fingerprint.
pub fn sign_statement<P: serde::Serialize>(statement: &Statement<P>, key: &SigningKey) -> Bundle {
    let payload = statement.to_json();
    let sig = key.sign(&dsse::pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    Bundle {
        media_type: BUNDLE_MEDIA_TYPE.to_owned(),
        verification_material: VerificationMaterial {
            public_key: Some(PublicKeyIdentifier {
                hint: Some(key.verifying_key().fingerprint().as_str().to_owned()),
            }),
            ..VerificationMaterial::default()
        },
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
