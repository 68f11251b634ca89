//! A signed file's bytes already in memory, checked against the signature.

use super::*;

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
    let signed = crate::read_signature(bundle, policy, options)?;
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
    let (signer, signed) = match signed {
        SignedModel::Native { signer, manifest } => (signer, manifest),
        SignedModel::Oms {
            signer,
            statement: signed,
        } => {
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
                signer,
                name: signed.name,
                root: signed.root,
                oci_manifest: None,
            });
        }
    };
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
        signer,
        name: signed.name,
        root: ArtifactDigest::blake3(&signed.root),
        oci_manifest: signed.oci_manifest,
    })
}
