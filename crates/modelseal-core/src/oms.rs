//! The OpenSSF Model Signing (OMS) v1.0 profile: resources, serialization parameters and
//! the subject digest, as the `model-signing` Python package writes and checks them
//! (`spec/oms.md`). The envelope and bundle are the shared ones of `dsse` and `bundle`.

use std::cmp::Ordering;
use std::fmt;

use sha2::Digest as _;

use crate::hash::{self, DigestAlgorithm, Progress, RangeJob};
use crate::path::ManifestPath;
use crate::statement::{ResourceDescriptor, STATEMENT_TYPE, Statement};
use crate::walk::{self, DefaultIgnores, ModelFile, WalkOptions};

/// Predicate type of OMS v1.0 signatures (model-signing 0.3 and later).
pub const OMS_PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// Predicate type of model-signing 0.2 signatures: one subject per file, no root.
pub const OMS_LEGACY_PREDICATE_TYPE: &str = "https://model_signing/Digests/v0.1";
/// The default shard size of model-signing's API (10^9 bytes).
pub const DEFAULT_SHARD_SIZE: u64 = 1_000_000_000;

/// A per-resource hash of the OMS profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OmsHash {
    /// SHA-256 (the default, and the only one model-signing's CLI verifies).
    Sha256,
    /// BLAKE2b-512, recorded as `blake2b`.
    Blake2b,
    /// BLAKE3.
    Blake3,
}

impl OmsHash {
    /// The name recorded in `hash_type` and resource algorithms.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Blake2b => "blake2b",
            Self::Blake3 => "blake3",
        }
    }

    /// Parses a recorded `hash_type`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "blake2b" => Some(Self::Blake2b),
            "blake3" => Some(Self::Blake3),
            _ => None,
        }
    }

    /// The digest algorithm it names.
    pub fn algorithm(self) -> DigestAlgorithm {
        match self {
            Self::Sha256 => DigestAlgorithm::Sha256,
            Self::Blake2b => DigestAlgorithm::Blake2b512,
            Self::Blake3 => DigestAlgorithm::Blake3,
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Blake2b => 64,
            Self::Sha256 | Self::Blake3 => 32,
        }
    }
}

/// How a model is cut into resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OmsMethod {
    /// One resource per file.
    Files,
    /// One resource per `size`-byte shard of each non-empty file.
    Shards {
        /// Shard size in bytes, at least 1.
        size: u64,
    },
}

/// The `serialization` block of an OMS predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OmsSerialization {
    /// Files or shards.
    pub method: OmsMethod,
    /// Per-resource hash.
    pub hash: OmsHash,
    /// Whether symlinks were followed.
    pub allow_symlinks: bool,
    /// Model-relative paths left out when signing.
    pub ignore_paths: Vec<ManifestPath>,
}

impl OmsSerialization {
    /// The `algorithm` every resource carries: the hash name, or
    /// `<hash>-sharded-<size>` for shards.
    pub fn resource_algorithm(&self) -> String {
        match self.method {
            OmsMethod::Files => self.hash.name().to_owned(),
            OmsMethod::Shards { size } => format!("{}-sharded-{size}", self.hash.name()),
        }
    }
}

/// A resource's name: a file (`None` for the file of a single-file model, written `.`),
/// optionally one shard `start..end` of it (written `path:start:end`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceName {
    /// The file, or `None` for a single-file model.
    pub path: Option<ManifestPath>,
    /// The shard's byte range.
    pub shard: Option<(u64, u64)>,
}

/// Why a resource name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceNameError {
    /// A path that leaves the model or is not normalised.
    #[error("resource {name:?} is refused")]
    Path {
        /// The name.
        name: String,
        /// The path rule broken.
        source: crate::path::PathError,
    },
    /// A shard name without `path:start:end`, or with `end <= start`.
    #[error("resource {0:?} is not a shard name path:start:end")]
    BadShard(String),
}

impl ResourceName {
    /// Parses a recorded name for the given method. Paths obey `spec/manifest.md` §3,
    /// except that `.` names a single-file model.
    pub fn parse(name: &str, method: OmsMethod) -> Result<Self, ResourceNameError> {
        let (path, shard) = match method {
            OmsMethod::Files => (name, None),
            OmsMethod::Shards { .. } => {
                let parts: Vec<&str> = name.split(':').collect();
                let [path, start, end] = parts.as_slice() else {
                    return Err(ResourceNameError::BadShard(name.to_owned()));
                };
                let range = start
                    .parse::<u64>()
                    .ok()
                    .zip(end.parse::<u64>().ok())
                    .filter(|(s, e)| s < e)
                    .ok_or_else(|| ResourceNameError::BadShard(name.to_owned()))?;
                (*path, Some(range))
            }
        };
        let path = match path {
            "." => None,
            other => {
                Some(
                    ManifestPath::parse(other).map_err(|source| ResourceNameError::Path {
                        name: name.to_owned(),
                        source,
                    })?,
                )
            }
        };
        Ok(Self { path, shard })
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => f.write_str(path.as_str())?,
            None => f.write_str(".")?,
        }
        if let Some((start, end)) = self.shard {
            write!(f, ":{start}:{end}")?;
        }
        Ok(())
    }
}

impl Ord for ResourceName {
    /// model-signing's order: the path compared component by component (so `a/b.txt`
    /// sorts before `a.txt`), then shard offsets as integers.
    fn cmp(&self, other: &Self) -> Ordering {
        let components = |name: &Self| -> Vec<String> {
            name.path
                .as_ref()
                .map(|p| p.as_str().split('/').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        components(self)
            .cmp(&components(other))
            .then_with(|| self.shard.cmp(&other.shard))
    }
}

impl PartialOrd for ResourceName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One signed resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OmsResource {
    /// Its name.
    pub name: ResourceName,
    /// Its algorithm string, as recorded.
    pub algorithm: String,
    /// Its digest bytes.
    pub digest: Vec<u8>,
}

/// The subject digest: SHA-256 over the concatenated raw resource digests, in the order
/// the resources are listed.
pub fn root_digest(resources: &[OmsResource]) -> [u8; 32] {
    let mut hasher = sha2::Sha256::new();
    for resource in resources {
        hasher.update(&resource.digest);
    }
    hasher.finalize().into()
}

/// Walk options for an OMS model: model-signing's top-level git ignores, plus the
/// caller's ignore paths and excluded files.
pub fn walk_options(serialization: &OmsSerialization, base: &WalkOptions) -> WalkOptions {
    let mut options = base.clone();
    options.defaults = DefaultIgnores::OmsGitAtRoot;
    options
        .ignore
        .extend(serialization.ignore_paths.iter().cloned());
    if serialization.allow_symlinks {
        options.symlinks = walk::SymlinkPolicy::FollowInside;
    }
    options
}

/// Hashes the given files into resources, sorted in model-signing's order. When the
/// model is a single file, `single_file` is true and its name is `.`.
pub fn hash_resources(
    files: &[ModelFile],
    single_file: bool,
    serialization: &OmsSerialization,
    progress: &dyn Progress,
) -> Result<Vec<OmsResource>, hash::HashError> {
    let name_of = |file: &ModelFile| (!single_file).then(|| file.path.clone());
    let mut names = Vec::new();
    let mut jobs = Vec::new();
    for file in files {
        let ranges: Vec<(u64, u64)> = match serialization.method {
            OmsMethod::Files => vec![(0, file.size)],
            OmsMethod::Shards { size } => (0..file.size.div_ceil(size))
                .map(|i| (i * size, ((i + 1) * size).min(file.size)))
                .collect(),
        };
        for (start, end) in ranges {
            let shard =
                matches!(serialization.method, OmsMethod::Shards { .. }).then_some((start, end));
            names.push(ResourceName {
                path: name_of(file),
                shard,
            });
            jobs.push(RangeJob {
                fs_path: file.fs_path.clone(),
                start,
                end,
                file_size: file.size,
                identity: Some(file.identity),
            });
        }
    }
    let digests =
        if serialization.hash == OmsHash::Blake3 && serialization.method == OmsMethod::Files {
            // BLAKE3 of whole files: the multi-threaded tree path.
            hash::hash_files(files, progress)?
                .into_iter()
                .map(|h| h.blake3.as_bytes().to_vec())
                .collect()
        } else {
            hash::hash_ranges(&jobs, serialization.hash.algorithm(), progress)?
        };
    let algorithm = serialization.resource_algorithm();
    let mut resources: Vec<OmsResource> = names
        .into_iter()
        .zip(digests)
        .map(|(name, digest)| OmsResource {
            name,
            algorithm: algorithm.clone(),
            digest,
        })
        .collect();
    resources.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(resources)
}

/// The OMS statement: subject `{name, digest: {sha256: root}}` and the v1.0 predicate,
/// fields in the order model-signing's payloads show.
pub fn statement(
    name: &str,
    serialization: &OmsSerialization,
    resources: &[OmsResource],
) -> Statement {
    let mut ser = serde_json::Map::new();
    let method = match serialization.method {
        OmsMethod::Files => "files",
        OmsMethod::Shards { .. } => "shards",
    };
    ser.insert("method".into(), method.into());
    ser.insert("hash_type".into(), serialization.hash.name().into());
    ser.insert("allow_symlinks".into(), serialization.allow_symlinks.into());
    if let OmsMethod::Shards { size } = serialization.method {
        ser.insert("shard_size".into(), size.into());
    }
    if !serialization.ignore_paths.is_empty() {
        let paths: Vec<&str> = serialization
            .ignore_paths
            .iter()
            .map(ManifestPath::as_str)
            .collect();
        ser.insert("ignore_paths".into(), paths.into());
    }
    let listed: Vec<serde_json::Value> = resources
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name.to_string(),
                "algorithm": r.algorithm,
                "digest": hex::encode(&r.digest),
            })
        })
        .collect();
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![ResourceDescriptor {
            name: Some(name.to_owned()),
            uri: None,
            digest: std::collections::BTreeMap::from([(
                "sha256".to_owned(),
                hex::encode(root_digest(resources)),
            )]),
            annotations: None,
        }],
        predicate_type: OMS_PREDICATE_TYPE.to_owned(),
        predicate: serde_json::json!({
            "serialization": serde_json::Value::Object(ser),
            "resources": listed,
        }),
    }
}

/// Whether `resources` are exactly what hashing one file of `file_size` bytes at `path`
/// under `serialization` lists, digests aside: the right names, shards and algorithm, so a
/// file's resources from an earlier signature can stand in for hashing it again.
pub fn resources_fit(
    resources: &[OmsResource],
    path: &ManifestPath,
    file_size: u64,
    serialization: &OmsSerialization,
) -> bool {
    let shards: Vec<Option<(u64, u64)>> = match serialization.method {
        OmsMethod::Files => vec![None],
        OmsMethod::Shards { size } => (0..file_size.div_ceil(size))
            .map(|i| Some((i * size, ((i + 1) * size).min(file_size))))
            .collect(),
    };
    let algorithm = serialization.resource_algorithm();
    resources.len() == shards.len()
        && resources.iter().zip(shards).all(|(resource, shard)| {
            resource.name.path.as_ref() == Some(path)
                && resource.name.shard == shard
                && resource.algorithm == algorithm
                && resource.digest.len() == serialization.hash.digest_len()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str, method: OmsMethod) -> ResourceName {
        ResourceName::parse(s, method).unwrap()
    }

    #[test]
    fn order_is_component_wise_then_numeric() {
        let files = OmsMethod::Files;
        let mut names = [
            name("config.json", files),
            name("a.txt", files),
            name("a/b.txt", files),
            name("README.md", files),
        ];
        names.sort();
        let shown: Vec<String> = names.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["README.md", "a/b.txt", "a.txt", "config.json"]);
        let shards = OmsMethod::Shards { size: 8 };
        let mut names = [
            name("d/f:16:17", shards),
            name("d/f:0:8", shards),
            name("d/f:8:16", shards),
        ];
        names.sort();
        let shown: Vec<String> = names.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["d/f:0:8", "d/f:8:16", "d/f:16:17"]);
    }

    #[test]
    fn names_that_leave_the_model_are_refused() {
        for bad in ["../secret.txt", "/etc/passwd", "a/../../b", "./a", ""] {
            assert!(ResourceName::parse(bad, OmsMethod::Files).is_err(), "{bad}");
        }
        assert_eq!(name(".", OmsMethod::Files).path, None);
        let shards = OmsMethod::Shards { size: 8 };
        for bad in ["f", "f:1", "f:8:8", "f:9:8", "f:a:b", "a:b:0:1", "../x:0:1"] {
            assert!(ResourceName::parse(bad, shards).is_err(), "{bad}");
        }
    }
}
