//! Verifying OpenSSF Model Signing (OMS) statements: v1.0 (`signature/v1.0`) and the
//! model-signing 0.2 form (`Digests/v0.1`). The envelope and signer checks are the
//! shared ones of `envelope`; this module reads the predicate and compares the files.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use modelseal_core::hash::Progress;
use modelseal_core::oms::{
    self, OMS_LEGACY_PREDICATE_TYPE, OMS_PREDICATE_TYPE, OmsHash, OmsMethod, OmsResource,
    OmsSerialization, ResourceName,
};
use modelseal_core::statement::Statement;
use modelseal_core::walk::ModelFile;
use modelseal_core::{ArtifactDigest, DigestAlgorithm, ManifestPath};

use crate::envelope::VerifiedStatement;
use crate::error::{
    FileDigest, FileMismatch, ModifiedFile, OmsPredicateError, SubjectProblem, VerifyError,
};

/// An OMS statement, checked for internal consistency: known serialization, names that
/// stay inside the model, no duplicates, and (for v1.0) a subject digest equal to the
/// SHA-256 over the listed resource digests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedOms {
    /// Subject name (informative; model-signing does not check it either).
    pub name: Option<String>,
    /// How the resources were made.
    pub serialization: OmsSerialization,
    /// The resources as listed.
    pub resources: Vec<OmsResource>,
    /// The subject's SHA-256 (as signed, and equal to the one computed from the
    /// resources); for the legacy form, computed here.
    pub root: ArtifactDigest,
    /// True for the model-signing 0.2 (`Digests/v0.1`) form.
    pub legacy: bool,
}

impl SignedOms {
    /// The files the resources name, sorted, each once (none for a single-file model).
    pub fn paths(&self) -> Vec<ManifestPath> {
        let mut paths: Vec<ManifestPath> = self
            .resources
            .iter()
            .filter_map(|r| r.name.path.clone())
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

#[derive(serde::Deserialize)]
struct PredicateJson {
    serialization: SerializationJson,
    resources: Vec<ResourceJson>,
}

#[derive(serde::Deserialize)]
struct SerializationJson {
    method: String,
    hash_type: String,
    #[serde(default)]
    allow_symlinks: bool,
    #[serde(default)]
    shard_size: Option<serde_json::Number>,
    #[serde(default)]
    ignore_paths: Vec<String>,
}

#[derive(serde::Deserialize)]
struct ResourceJson {
    name: String,
    algorithm: String,
    digest: String,
}

/// Reads an OMS predicate out of a verified statement. Unknown predicate fields are
/// ignored, as model-signing ignores them; everything modelseal reads is checked.
pub fn signed_oms(verified: &VerifiedStatement) -> Result<SignedOms, VerifyError> {
    match verified.statement.predicate_type.as_str() {
        OMS_PREDICATE_TYPE => signed_v1(verified),
        OMS_LEGACY_PREDICATE_TYPE => signed_legacy(verified),
        other => Err(VerifyError::PredicateType {
            found: other.to_owned(),
            expected: OMS_PREDICATE_TYPE,
        }),
    }
}

fn signed_v1(verified: &VerifiedStatement) -> Result<SignedOms, VerifyError> {
    let typed: Statement<PredicateJson> =
        serde_json::from_slice(&verified.payload).map_err(VerifyError::MalformedPredicate)?;
    let ser = typed.predicate.serialization;
    let hash =
        OmsHash::from_name(&ser.hash_type).ok_or(OmsPredicateError::Hash(ser.hash_type.clone()))?;
    let method = match ser.method.as_str() {
        "files" => OmsMethod::Files,
        "shards" => OmsMethod::Shards {
            size: whole_positive(ser.shard_size.as_ref()).ok_or(OmsPredicateError::ShardSize)?,
        },
        other => return Err(OmsPredicateError::Method(other.to_owned()).into()),
    };
    let ignore_paths = ser
        .ignore_paths
        .iter()
        .map(|p| {
            ManifestPath::parse_ignore(p).map_err(|source| OmsPredicateError::IgnorePath {
                path: p.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let serialization = OmsSerialization {
        method,
        hash,
        allow_symlinks: ser.allow_symlinks,
        ignore_paths,
    };
    let expected_algorithm = serialization.resource_algorithm();
    let mut resources = Vec::with_capacity(typed.predicate.resources.len());
    for r in typed.predicate.resources {
        let name = ResourceName::parse(&r.name, method).map_err(OmsPredicateError::from)?;
        if r.algorithm != expected_algorithm {
            return Err(OmsPredicateError::Algorithm {
                resource: r.name,
                found: r.algorithm,
                expected: expected_algorithm,
            }
            .into());
        }
        let digest = hex::decode(&r.digest)
            .ok()
            .filter(|d| d.len() == hash.digest_len())
            .ok_or_else(|| OmsPredicateError::Digest(r.name.clone()))?;
        resources.push(OmsResource {
            name,
            algorithm: r.algorithm,
            digest,
        });
    }
    if resources.is_empty() {
        return Err(VerifyError::ListsNothing(
            "an OMS predicate with no resources",
        ));
    }
    refuse_duplicates(&resources)?;
    let subject = one_subject(&typed.subject)?;
    let signed = subject
        .digest
        .get("sha256")
        .ok_or(VerifyError::Subject(SubjectProblem::NoSha256))?;
    let root = oms::root_digest(&resources);
    let computed = hex::encode(root);
    if *signed != computed {
        return Err(VerifyError::Subject(SubjectProblem::Sha256Mismatch {
            signed: signed.clone(),
            computed,
        }));
    }
    Ok(SignedOms {
        name: subject.name.clone(),
        serialization,
        resources,
        root: ArtifactDigest::new(DigestAlgorithm::Sha256, root),
        legacy: false,
    })
}

/// model-signing 0.2: one subject per file, digest `sha256`, no root, no serialization
/// block (read as files + sha256, as model-signing 1.x reads it).
fn signed_legacy(verified: &VerifiedStatement) -> Result<SignedOms, VerifyError> {
    let serialization = OmsSerialization {
        method: OmsMethod::Files,
        hash: OmsHash::Sha256,
        allow_symlinks: false,
        ignore_paths: Vec::new(),
    };
    let mut resources = Vec::new();
    for subject in &verified.statement.subject {
        let label = subject.name.clone().unwrap_or_default();
        let name =
            ResourceName::parse(&label, OmsMethod::Files).map_err(OmsPredicateError::from)?;
        let digest = subject
            .digest
            .get("sha256")
            .and_then(|h| hex::decode(h).ok())
            .filter(|d| d.len() == 32)
            .ok_or(OmsPredicateError::Digest(label))?;
        resources.push(OmsResource {
            name,
            algorithm: "sha256".into(),
            digest,
        });
    }
    if resources.is_empty() {
        return Err(VerifyError::ListsNothing(
            "a legacy OMS statement with no subjects",
        ));
    }
    refuse_duplicates(&resources)?;
    Ok(SignedOms {
        name: None,
        root: ArtifactDigest::new(DigestAlgorithm::Sha256, oms::root_digest(&resources)),
        serialization,
        resources,
        legacy: true,
    })
}

fn one_subject(
    subjects: &[modelseal_core::statement::ResourceDescriptor],
) -> Result<&modelseal_core::statement::ResourceDescriptor, VerifyError> {
    match subjects {
        [one] => Ok(one),
        other => Err(VerifyError::Subject(SubjectProblem::Count(other.len()))),
    }
}

fn whole_positive(number: Option<&serde_json::Number>) -> Option<u64> {
    let number = number?;
    // model-signing writes shard_size as a float (1048576.0); modelseal writes an integer.
    let value = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })?;
    (value >= 1).then_some(value)
}

fn refuse_duplicates(resources: &[OmsResource]) -> Result<(), OmsPredicateError> {
    let mut seen = HashSet::new();
    for r in resources {
        if !seen.insert(&r.name) {
            return Err(OmsPredicateError::Duplicate(r.name.to_string()));
        }
    }
    Ok(())
}

/// Re-hashes the model with the signed serialization (hash, method, shard size, ignore
/// paths, symlink setting) and compares resource by resource, reporting every
/// modified, missing and unsigned one.
pub fn check_oms_files(
    root: &Path,
    signed: &SignedOms,
    verify: &crate::VerifyOptions,
    progress: &dyn Progress,
) -> Result<(), VerifyError> {
    let single_file = std::fs::metadata(root).is_ok_and(|m| m.is_file());
    let options = oms::walk_options(&signed.serialization, &verify.walk);
    let signed_paths = signed.paths();
    let found =
        crate::files::find_files(root, &options, &signed_paths, verify.ignore_unsigned_files)?;
    let mut mismatch = FileMismatch::default();
    let signed_set: HashSet<&ManifestPath> = signed_paths.iter().collect();
    let to_hash: Vec<ModelFile> = found
        .into_iter()
        .filter_map(|file| {
            // A single-file model's one file is named `.`, whatever it is called on disk.
            let shards = matches!(signed.serialization.method, OmsMethod::Shards { .. });
            if single_file || signed_set.contains(&file.path) {
                Some(file)
            } else if shards && file.size == 0 && verify.allow_unlisted_empty_files {
                // An empty file has no shards, so the format cannot list it; accepted
                // only when the caller says so.
                None
            } else {
                mismatch.extra.push(file.path.to_string());
                None
            }
        })
        .collect();
    // Shard names fix each file's length (its last shard's end): a file of another length
    // is reported as it is, unread, rather than cut into shards and hashed whole (a sparse
    // file terabytes long costs no disk and would cost hours and memory).
    let mut signed_len: HashMap<Option<&ManifestPath>, u64> = HashMap::new();
    for r in &signed.resources {
        if let Some((_, end)) = r.name.shard {
            let len = signed_len.entry(r.name.path.as_ref()).or_insert(0);
            *len = (*len).max(end);
        }
    }
    let (to_hash, wrong_length): (Vec<ModelFile>, Vec<ModelFile>) =
        to_hash.into_iter().partition(|file| {
            let key = if single_file { None } else { Some(&file.path) };
            match signed_len.get(&key) {
                Some(len) => *len == file.size,
                None => true,
            }
        });
    for file in &wrong_length {
        let key = if single_file { None } else { Some(&file.path) };
        mismatch.modified.push(ModifiedFile {
            path: file.path.to_string(),
            expected: FileDigest {
                algorithm: signed.serialization.resource_algorithm(),
                hex: String::new(),
            },
            found: None,
            expected_size: signed_len.get(&key).copied(),
            found_size: Some(file.size),
        });
    }
    let actual = oms::hash_resources(&to_hash, single_file, &signed.serialization, progress)?;
    let expected: HashMap<&ResourceName, &OmsResource> =
        signed.resources.iter().map(|r| (&r.name, r)).collect();
    let digest = |r: &OmsResource| FileDigest {
        algorithm: r.algorithm.clone(),
        hex: hex::encode(&r.digest),
    };
    let mut matched = HashSet::new();
    // The shards of a file of the wrong length were not read: not "missing".
    for file in &wrong_length {
        let path = if single_file { None } else { Some(&file.path) };
        for r in signed
            .resources
            .iter()
            .filter(|r| r.name.path.as_ref() == path)
        {
            matched.insert(&r.name);
        }
    }
    for resource in &actual {
        match expected.get(&resource.name) {
            None => mismatch.extra.push(resource.name.to_string()),
            Some(want) => {
                matched.insert(&want.name);
                if want.digest != resource.digest {
                    mismatch.modified.push(ModifiedFile {
                        path: resource.name.to_string(),
                        expected: digest(want),
                        found: Some(digest(resource)),
                        expected_size: None,
                        found_size: None,
                    });
                }
            }
        }
    }
    for want in &signed.resources {
        if !matched.contains(&want.name) {
            mismatch.missing.push(want.name.to_string());
        }
    }
    mismatch.into_result()
}
