//! `sign --update OLD`: the earlier signature, checked against the signer's own key, and
//! the signed stamps beside it that say which files still hold the bytes it names; and
//! the stamps every key-signed directory signature gets (`spec/incremental.md`).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use modelseal_core::bundle::{MAX_BUNDLE_BYTES, PublicKeyIdentifier, VerificationMaterial};
use modelseal_core::oms::{OmsResource, OmsSerialization, resources_fit};
use modelseal_core::stamps::{KnownDigests, Stamp, Stamps};
use modelseal_core::{Blake3Digest, Bundle, KeySigner, ManifestPath, Restamped};
use modelseal_verify::{SignedModel, TrustPolicy, VerifyOptions};
use sha2::Digest as _;

/// Where the stamps of the signature at `signature` are kept: `SIGNATURE.stamps`.
pub fn stamps_path(signature: &Path) -> PathBuf {
    let mut name = signature.as_os_str().to_os_string();
    name.push(".stamps");
    PathBuf::from(name)
}

/// The signature `sign --update` starts from.
pub struct Previous {
    pub path: PathBuf,
    pub signed: SignedModel,
    /// Its stamps, or why they are not used (then every file is hashed).
    pub stamps: std::result::Result<Stamps, String>,
}

impl Previous {
    /// Reads OLD and checks that `key` signed it, whatever key its bundle names (a
    /// certificate or a hint is not trusted here: only the signature over the payload).
    /// Then reads its stamps, unless `rehash`.
    pub fn read(
        old: &Path,
        key: &dyn KeySigner,
        stamps_model: Option<&str>,
        kind: Option<modelseal_core::ArtifactKind>,
        rehash: bool,
    ) -> Result<Self> {
        let mut bytes = Vec::new();
        modelseal_core::open::open_regular(old)
            .and_then(|f| f.take(MAX_BUNDLE_BYTES + 1).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read --update signature {}", old.display()))?;
        let mut bundle = Bundle::from_json(&bytes)
            .with_context(|| format!("--update {} is not a signature bundle", old.display()))?;
        let public = key.verifying_key();
        // No hint: a refusal then names the key tried, not a hint the bundle never had.
        bundle.verification_material = VerificationMaterial {
            public_key: Some(PublicKeyIdentifier { hint: None }),
            ..VerificationMaterial::default()
        };
        let mut options = VerifyOptions::default();
        options.kind = kind;
        let signed = modelseal_verify::read_signature(
            &bundle,
            &TrustPolicy::from_keys(vec![public.clone()]),
            &options,
        )
        .with_context(|| {
            format!(
                "--update {}: not a signature of this kind by the signing key {}; only the signer's own signature can be updated",
                old.display(),
                public.fingerprint()
            )
        })?;
        let stamps = match (rehash, stamps_model) {
            (true, _) => Err("--rehash".to_owned()),
            (false, None) => Err("the model path is not UTF-8".to_owned()),
            (false, Some(model)) => read_stamps(old, &bytes, &public, model),
        };
        Ok(Self {
            path: old.to_path_buf(),
            signed,
            stamps,
        })
    }

    /// The BLAKE3 digests OLD gives files whose stamps are recorded; OLD must be native.
    pub fn known_blake3(&self) -> Result<KnownDigests<Blake3Digest>> {
        let SignedModel::Native { manifest, .. } = &self.signed else {
            crate::usage!(
                "--update {} is an OMS signature; add --format oms to update it",
                self.path.display()
            );
        };
        let Ok(stamps) = &self.stamps else {
            return Ok(KnownDigests::default());
        };
        Ok(KnownDigests::new(stamps, |path, size| {
            manifest
                .manifest
                .get(path.as_str())
                .filter(|entry| entry.size == size)
                .map(|entry| entry.blake3)
        }))
    }

    /// The resources OLD gives files whose stamps are recorded; OLD must be an OMS
    /// signature made the way `serialization` hashes.
    pub fn known_oms(
        &self,
        serialization: &OmsSerialization,
    ) -> Result<KnownDigests<Vec<OmsResource>>> {
        let SignedModel::Oms { statement, .. } = &self.signed else {
            crate::usage!(
                "--update {} is a native signature; drop --format oms to update it",
                self.path.display()
            );
        };
        let old = &statement.serialization;
        if statement.legacy || old.method != serialization.method || old.hash != serialization.hash
        {
            crate::usage!(
                "--update {} hashed with {}; pass the same --method, --hash and --shard-size (or sign without --update)",
                self.path.display(),
                describe(old),
            );
        }
        let Ok(stamps) = &self.stamps else {
            return Ok(KnownDigests::default());
        };
        let mut by_path: std::collections::HashMap<&ManifestPath, Vec<OmsResource>> =
            std::collections::HashMap::new();
        for resource in &statement.resources {
            if let Some(path) = &resource.name.path {
                by_path.entry(path).or_default().push(resource.clone());
            }
        }
        Ok(KnownDigests::new(stamps, |path, size| {
            let mut resources = by_path.get(path)?.clone();
            resources.sort_by(|a, b| a.name.cmp(&b.name));
            resources_fit(&resources, path, size, serialization).then_some(resources)
        }))
    }
}

impl Previous {
    /// What each layer OLD's stamps record unpacked to, with the digests OLD gives its
    /// files; OLD must be native. A layer with a file OLD does not list is left out.
    pub fn known_layers(&self) -> Result<modelseal_oci::model::KnownLayers> {
        let SignedModel::Native { manifest, .. } = &self.signed else {
            crate::usage!(
                "--update {} is an OMS signature; an oci:// model is signed natively",
                self.path.display()
            );
        };
        let mut known = modelseal_oci::model::KnownLayers::new();
        let Ok(stamps) = &self.stamps else {
            return Ok(known);
        };
        for layer in &stamps.layers {
            let Some(digest) = layer
                .digest
                .strip_prefix("sha256:")
                .and_then(|hex| <[u8; 32]>::try_from(hex::decode(hex).ok()?).ok())
            else {
                continue;
            };
            let files: Option<Vec<_>> = layer
                .files
                .iter()
                .map(|path| manifest.manifest.get(path.as_str()).cloned())
                .collect();
            if let Some(files) = files {
                known.insert(
                    (
                        modelseal_oci::OciDigest::from_bytes(digest),
                        layer.format.clone(),
                    ),
                    (files, layer.directories.clone()),
                );
            }
        }
        Ok(known)
    }
}

fn describe(serialization: &OmsSerialization) -> String {
    match serialization.method {
        modelseal_core::oms::OmsMethod::Files => format!("{} files", serialization.hash.name()),
        modelseal_core::oms::OmsMethod::Shards { size } => {
            format!("{} shards of {size} bytes", serialization.hash.name())
        }
        _ => serialization.hash.name().to_owned(),
    }
}

fn read_stamps(
    old: &Path,
    old_bytes: &[u8],
    key: &modelseal_core::VerifyingKey,
    model: &str,
) -> std::result::Result<Stamps, String> {
    let path = stamps_path(old);
    if path.symlink_metadata().is_err() {
        return Err(format!("{} does not exist", path.display()));
    }
    Stamps::read(&path, key, &sha2::Sha256::digest(old_bytes).into(), model)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// What a directory's stamps are taken of: its canonical path, when that is UTF-8.
pub fn canonical_model(model: &Path) -> Option<String> {
    std::fs::canonicalize(model)
        .ok()?
        .to_str()
        .map(str::to_owned)
}

/// Writes the signed stamps of a new signature (`signature` holds `signature_bytes`), or
/// says why there are none. Any earlier stamp file there goes: it names another
/// signature.
pub fn write_stamps(
    signature: &Path,
    signature_bytes: &[u8],
    model: &Path,
    key: Option<&dyn KeySigner>,
    restamped: &Restamped,
    wanted: bool,
) -> Result<std::result::Result<PathBuf, &'static str>> {
    let path = stamps_path(signature);
    let inside = modelseal_core::relative_inside(model, &path).is_some();
    let canonical = canonical_model(model);
    let why_not = match (key, &canonical) {
        _ if inside => Some("they would lie inside the model"),
        _ if !wanted => Some("--no-stamps"),
        (None, _) => Some("keyless signatures keep no stamps"),
        (_, None) => Some("the model path is not UTF-8"),
        _ => None,
    };
    let (Some(key), Some(model), None) = (key, canonical, why_not) else {
        // Never a file inside the model: removing it would change what is signed.
        if !inside && path.symlink_metadata().is_ok_and(|m| m.is_file()) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove stale stamps {}", path.display()))?;
        }
        return Ok(Err(why_not.unwrap_or("no stamps")));
    };
    let stamps = Stamps {
        signature_sha256: sha2::Sha256::digest(signature_bytes).into(),
        model,
        files: restamped
            .stamps
            .iter()
            .map(|(path, stamp): &(ManifestPath, Stamp)| (path.clone(), *stamp))
            .collect(),
        layers: Vec::new(),
    };
    sign_and_write(&path, &stamps, key)?;
    Ok(Ok(path))
}

/// Writes the signed stamps of a new signature of an `oci://` model (`signature` holds
/// `signature_bytes`): what each layer unpacked to. Keyless signatures keep none.
pub fn write_layer_stamps(
    signature: &Path,
    signature_bytes: &[u8],
    model: &str,
    key: Option<&dyn KeySigner>,
    layers: &[modelseal_oci::model::UnpackedLayer],
    wanted: bool,
) -> Result<Option<PathBuf>> {
    let path = stamps_path(signature);
    let Some(key) = key.filter(|_| wanted) else {
        if path.symlink_metadata().is_ok_and(|m| m.is_file()) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove stale stamps {}", path.display()))?;
        }
        return Ok(None);
    };
    let stamps = Stamps {
        signature_sha256: sha2::Sha256::digest(signature_bytes).into(),
        model: model.to_owned(),
        files: Default::default(),
        layers: layers
            .iter()
            .map(|layer| modelseal_core::stamps::LayerStamp {
                digest: layer.digest.to_string(),
                format: layer.format.clone(),
                files: layer.files.iter().map(|e| e.path.clone()).collect(),
                directories: layer.directories.clone(),
            })
            .collect(),
    };
    sign_and_write(&path, &stamps, key)?;
    Ok(Some(path))
}

fn sign_and_write(path: &Path, stamps: &Stamps, key: &dyn KeySigner) -> Result<()> {
    let bytes = stamps.sign(key)?;
    modelseal_core::fsio::write_atomic(
        path,
        &bytes,
        modelseal_core::fsio::Visibility::Public,
        modelseal_core::fsio::Overwrite::Allow,
    )
    .with_context(|| format!("cannot write stamps {}", path.display()))
}
