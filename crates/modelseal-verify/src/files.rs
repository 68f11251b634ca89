//! Comparing the files on disk with a signed manifest.

use std::collections::HashSet;
use std::path::Path;

use modelseal_core::hash::{self, Progress};
use modelseal_core::statement::ResourceDescriptor;
use modelseal_core::statement::{MANIFEST_PREDICATE_TYPE, ManifestPredicate, Statement};
use modelseal_core::walk::{self, ModelFile, SymlinkPolicy, WalkOptions};
use modelseal_core::{ArtifactDigest, Blake3Digest, Manifest, ManifestPath};

use crate::envelope::VerifiedStatement;
use crate::error::{FileDigest, FileMismatch, ModifiedFile, SubjectProblem, VerifyError};

/// A verified statement that carries a native manifest, checked for internal consistency:
/// valid paths, canonical order, and a subject digest equal to the manifest's root.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedManifest {
    /// Subject name.
    pub name: Option<String>,
    /// The Merkle root (the subject digest).
    pub root: Blake3Digest,
    /// The predicate as signed.
    pub predicate: ManifestPredicate,
    /// The manifest it lists.
    pub manifest: Manifest,
    /// The OCI manifest these files were unpacked from, when the signer named one: a
    /// second subject with a `sha256` digest only (`spec/oci.md` §3).
    pub oci_manifest: Option<ArtifactDigest>,
}

/// Reads the native manifest predicate out of a verified statement.
pub fn signed_manifest(verified: &VerifiedStatement) -> Result<SignedManifest, VerifyError> {
    let statement = &verified.statement;
    if statement.predicate_type != MANIFEST_PREDICATE_TYPE {
        return Err(VerifyError::PredicateType {
            found: statement.predicate_type.clone(),
            expected: MANIFEST_PREDICATE_TYPE,
        });
    }
    // Parse the signed bytes again, typed: unknown or duplicated predicate fields fail here.
    let typed: Statement<ManifestPredicate> =
        serde_json::from_slice(&verified.payload).map_err(VerifyError::MalformedPredicate)?;
    let predicate = typed.predicate;
    modelseal_core::manifest::check_ignore_paths(&predicate.ignore_paths)
        .map_err(VerifyError::InvalidManifest)?;
    let manifest =
        Manifest::from_sorted(predicate.files.clone()).map_err(VerifyError::InvalidManifest)?;
    if manifest.entries().is_empty() {
        return Err(VerifyError::ListsNothing("a manifest with no files"));
    }
    let (subject, oci_manifest) = model_subjects(&statement.subject)?;
    let signed: Blake3Digest = subject
        .digest
        .get("blake3")
        .and_then(|hex| hex.parse().ok())
        .ok_or(VerifyError::Subject(SubjectProblem::NoBlake3))?;
    // A sha256 beside the root may only be its keyless binding (spec/sigstore.md §4).
    if let Some(sha) = subject.digest.get("sha256") {
        if *sha != hex::encode(modelseal_core::statement::keyless_binding(&signed)) {
            return Err(VerifyError::Subject(SubjectProblem::ConfusedDigest));
        }
    }
    let computed = manifest.root();
    if signed != computed {
        return Err(VerifyError::Subject(SubjectProblem::RootMismatch {
            signed,
            computed,
        }));
    }
    Ok(SignedManifest {
        name: subject.name.clone(),
        root: computed,
        predicate,
        manifest,
        oci_manifest,
    })
}

/// Splits a native statement's subjects into the model (one subject with a `blake3`
/// root) and, optionally, the OCI manifest it was unpacked from (one subject whose only
/// digest is a `sha256`). Any other shape is refused.
pub(crate) fn model_subjects(
    subjects: &[ResourceDescriptor],
) -> Result<(&ResourceDescriptor, Option<ArtifactDigest>), VerifyError> {
    let count = || VerifyError::Subject(SubjectProblem::Count(subjects.len()));
    let is_oci = |s: &ResourceDescriptor| s.digest.len() == 1 && s.digest.contains_key("sha256");
    match subjects {
        [one] => Ok((one, None)),
        [a, b] => {
            let (model, oci) = match (is_oci(a), is_oci(b)) {
                (false, true) => (a, b),
                (true, false) => (b, a),
                _ => return Err(count()),
            };
            let digest = ArtifactDigest::from_entry("sha256", &oci.digest["sha256"])
                .map_err(|_| VerifyError::Subject(SubjectProblem::NoSha256))?;
            Ok((model, Some(digest)))
        }
        _ => Err(count()),
    }
}

/// Compares files found elsewhere than on disk (an OCI artifact's layers, hashed as they
/// streamed by) with a signed manifest, reporting every modified, missing and unsigned
/// file at once.
pub fn check_entries(
    signed: &SignedManifest,
    found: &[modelseal_core::ManifestEntry],
) -> Result<(), VerifyError> {
    let mut mismatch = FileMismatch::default();
    let blake3 = |d: &Blake3Digest| FileDigest {
        algorithm: "blake3".into(),
        hex: d.to_hex(),
    };
    let mut seen: HashSet<&ManifestPath> = HashSet::new();
    for file in found {
        if signed
            .predicate
            .ignore_paths
            .iter()
            .any(|i| *i == file.path || i.is_dir_prefix_of(&file.path))
        {
            continue;
        }
        match signed.manifest.get(file.path.as_str()) {
            None => mismatch.extra.push(file.path.to_string()),
            Some(entry) => {
                seen.insert(&entry.path);
                if entry.blake3 != file.blake3 || entry.size != file.size {
                    mismatch.modified.push(ModifiedFile {
                        path: file.path.to_string(),
                        expected: blake3(&entry.blake3),
                        found: Some(blake3(&file.blake3)),
                        expected_size: Some(entry.size),
                        found_size: Some(file.size),
                    });
                }
            }
        }
    }
    for entry in signed.manifest.entries() {
        if !seen.contains(&entry.path) {
            mismatch.missing.push(entry.path.to_string());
        }
    }
    mismatch.into_result()
}

/// The files to compare with a manifest: everything the walk finds or, when unsigned
/// files are to be ignored, just the signed names looked up one by one (no name can
/// lead outside the model: `walk::lookup_files` refuses links in the path).
pub(crate) fn find_files(
    root: &Path,
    options: &WalkOptions,
    signed: &[ManifestPath],
    ignore_unsigned: bool,
) -> Result<Vec<ModelFile>, VerifyError> {
    let is_dir = std::fs::metadata(root).is_ok_and(|m| m.is_dir());
    if ignore_unsigned && is_dir {
        let found = walk::lookup_files(root, signed, options)?;
        return Ok(found.into_iter().flatten().collect());
    }
    match walk::walk_model(root, options) {
        Ok(found) => Ok(found),
        // An empty directory is a model with every file missing.
        Err(modelseal_core::WalkError::Empty { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Walks the model and hashes every signed file, reporting every modified, missing and
/// unsigned file at once rather than stopping at the first.
///
/// `extra` adds to the walk what the caller knows and the signer could not: further
/// ignored paths, and the signature file when it lies inside the model. With
/// `ignore_unsigned`, files the manifest does not list are not looked at.
pub fn check_files(
    root: &Path,
    signed: &SignedManifest,
    extra: &WalkOptions,
    ignore_unsigned: bool,
    progress: &dyn Progress,
) -> Result<(), VerifyError> {
    let mut options = extra.clone();
    options
        .ignore
        .extend(signed.predicate.ignore_paths.iter().cloned());
    if signed.predicate.allow_symlinks {
        options.symlinks = SymlinkPolicy::FollowInside;
    }
    let names: Vec<ManifestPath> = signed
        .manifest
        .entries()
        .iter()
        .map(|e| e.path.clone())
        .collect();
    let found = find_files(root, &options, &names, ignore_unsigned)?;
    let mut mismatch = FileMismatch::default();
    let mut to_hash: Vec<ModelFile> = Vec::new();
    let mut seen: HashSet<ManifestPath> = HashSet::new();
    let blake3 = |d: &Blake3Digest| FileDigest {
        algorithm: "blake3".into(),
        hex: d.to_hex(),
    };
    for file in found {
        match signed.manifest.get(file.path.as_str()) {
            None => mismatch.extra.push(file.path.to_string()),
            Some(entry) if entry.size != file.size => {
                seen.insert(file.path.clone());
                mismatch.modified.push(ModifiedFile {
                    path: file.path.to_string(),
                    expected: blake3(&entry.blake3),
                    found: None,
                    expected_size: Some(entry.size),
                    found_size: Some(file.size),
                });
            }
            Some(_) => {
                seen.insert(file.path.clone());
                to_hash.push(file);
            }
        }
    }
    for entry in signed.manifest.entries() {
        if !seen.contains(&entry.path) {
            mismatch.missing.push(entry.path.to_string());
        }
    }
    let hashes = hash::hash_files(&to_hash, progress)?;
    for (file, hash) in to_hash.into_iter().zip(hashes) {
        let Some(entry) = signed.manifest.get(file.path.as_str()) else {
            continue;
        };
        if hash.blake3 != entry.blake3 || hash.size != entry.size {
            mismatch.modified.push(ModifiedFile {
                path: file.path.to_string(),
                expected: blake3(&entry.blake3),
                found: Some(blake3(&hash.blake3)),
                expected_size: Some(entry.size),
                found_size: Some(hash.size),
            });
        }
    }
    mismatch.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(algorithm: &str, hex: &str) -> ResourceDescriptor {
        ResourceDescriptor {
            name: None,
            uri: None,
            digest: [(algorithm.to_owned(), hex.to_owned())].into(),
            annotations: None,
        }
    }

    /// A native statement may name the OCI manifest its files came from, beside the
    /// root, and nothing else: two roots, a third subject or a malformed digest are refused.
    #[test]
    fn subjects_are_one_root_and_at_most_one_oci_manifest() {
        let (r, o) = ("ab".repeat(32), "cd".repeat(32));
        let root = || subject("blake3", &r);
        let oci = || subject("sha256", &o);
        let (_, none) = model_subjects(&[root()]).unwrap();
        assert_eq!(none, None);
        for order in [vec![root(), oci()], vec![oci(), root()]] {
            let (model, manifest) = model_subjects(&order).unwrap();
            assert!(model.digest.contains_key("blake3"));
            assert_eq!(manifest.unwrap().to_string(), format!("sha256:{o}"));
        }
        let refused = [
            vec![root(), root()],
            vec![oci(), oci()],
            vec![root(), oci(), oci()],
            vec![root(), subject("sha256", &"CD".repeat(32))],
            vec![],
        ];
        for subjects in refused {
            assert!(model_subjects(&subjects).is_err(), "{subjects:?}");
        }
    }
}
