//! in-toto Statement v1 and modelseal's native manifest predicate (`spec/statement.md`).

use std::collections::BTreeMap;

use crate::digest::Blake3Digest;
use crate::manifest::ManifestEntry;
use crate::path::ManifestPath;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// DSSE `payloadType` of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Predicate type of modelseal's native BLAKE3 manifest.
pub const MANIFEST_PREDICATE_TYPE: &str = "https://modelseal.dev/manifest/v1";

/// An in-toto Statement v1. With the default `P`, the predicate stays untyped JSON until
/// its type is known; verifiers then parse the signed bytes again with a typed `P`, so
/// a duplicated key anywhere in a typed object is refused rather than silently merged.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(bound(deserialize = "P: serde::de::DeserializeOwned"))]
pub struct Statement<P = serde_json::Value> {
    /// Always [`STATEMENT_TYPE`] for statements modelseal accepts.
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What the statement is about.
    pub subject: Vec<ResourceDescriptor>,
    /// How to read `predicate`.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim itself.
    pub predicate: P,
}

/// An in-toto ResourceDescriptor, reduced to the fields modelseal reads or writes.
/// Unknown fields are ignored, as the in-toto specification asks of consumers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceDescriptor {
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the resource lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Algorithm name to lowercase hex digest.
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
    /// Free-form properties; modelseal records a dependency's kind under
    /// `modelseal.dev/kind` (`spec/lineage.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, serde_json::Value>>,
}

/// Whether a signed directory is a model or a dataset; both are hashed the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ArtifactKind {
    /// Model weights and their files.
    #[default]
    Model,
    /// Training or evaluation data.
    Dataset,
}

/// What was signed: a directory, or one file on its own. A directory holding exactly one
/// file has the same manifest as that file alone, so without this a directory's
/// signature would also vouch for its file opened alone, with unsigned files beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Scope {
    /// A model directory: every file under it.
    Directory,
    /// A single file, named in the manifest by its own name.
    File,
}

impl Scope {
    /// What the model path `root` is: a single file, else a directory.
    pub fn of(root: &std::path::Path) -> Self {
        if std::fs::metadata(root).is_ok_and(|m| m.is_file()) {
            Self::File
        } else {
            Self::Directory
        }
    }
}

/// The predicate of [`MANIFEST_PREDICATE_TYPE`]. Unknown fields are refused: a later
/// version of this predicate gets a new type URI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestPredicate {
    /// Model or dataset.
    pub kind: ArtifactKind,
    /// Paths the signer left out, beyond the default ignores.
    pub ignore_paths: Vec<ManifestPath>,
    /// Whether symlinks inside the model were followed.
    pub allow_symlinks: bool,
    /// A directory or a single file. Written by every signer since it was added; absent
    /// in older signatures, which are then accepted for either (`spec/statement.md` §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Every signed file, sorted by path bytes.
    pub files: Vec<ManifestEntry>,
}

impl Statement<ManifestPredicate> {
    /// A statement about one artifact named `name` whose manifest root is `root`.
    pub fn for_manifest(name: &str, root: &Blake3Digest, predicate: ManifestPredicate) -> Self {
        Self {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject: vec![ResourceDescriptor {
                name: Some(name.to_owned()),
                uri: None,
                digest: BTreeMap::from([("blake3".to_owned(), root.to_hex())]),
                annotations: None,
            }],
            predicate_type: MANIFEST_PREDICATE_TYPE.to_owned(),
            predicate,
        }
    }
}

/// Domain separator of the keyless binding digest (`spec/sigstore.md` §4).
pub const KEYLESS_BINDING_CONTEXT: &[u8] = b"modelseal.dev/keyless-binding/v1\0";

/// The SHA-256 that a keyless-signed native statement carries beside each BLAKE3 root:
/// `SHA-256(KEYLESS_BINDING_CONTEXT || root)`. Sigstore verifiers bind a DSSE
/// signature to a SHA-2 subject digest, and a BLAKE3 root has none; this one is a
/// function of the root alone, so a verifier that knows the root derives it, and it
/// names no artifact of its own (it is never taken as an artifact's SHA-256).
pub fn keyless_binding(root: &Blake3Digest) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(KEYLESS_BINDING_CONTEXT);
    hasher.update(root.as_bytes());
    hasher.finalize().into()
}

impl<P> Statement<P> {
    /// Adds the keyless binding digest to every subject named by a BLAKE3 root, for a
    /// statement about to be signed keylessly. Subjects without one are left alone.
    pub fn bind_for_keyless(&mut self) {
        for subject in &mut self.subject {
            let Some(root) = subject
                .digest
                .get("blake3")
                .and_then(|hex| crate::ArtifactDigest::from_entry("blake3", hex).ok())
            else {
                continue;
            };
            let binding = keyless_binding(&Blake3Digest::from_bytes(*root.as_bytes()));
            subject
                .digest
                .insert("sha256".to_owned(), hex::encode(binding));
        }
    }
}

impl<P: serde::Serialize> Statement<P> {
    /// Compact JSON bytes, as carried in a DSSE payload. Fields appear in declaration
    /// order (the order `spec/statement.md` shows).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement always serializes")
    }
}

#[cfg(test)]
mod keyless_binding_tests {
    use super::*;

    /// The vectors of spec/vectors/keyless-binding, which spec/vectors/check_vectors.py
    /// checks independently.
    #[test]
    fn matches_the_spec_vectors() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../spec/vectors/keyless-binding");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let root: Blake3Digest = v["root"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                hex::encode(keyless_binding(&root)),
                v["binding"].as_str().unwrap()
            );
            seen += 1;
        }
        assert!(seen >= 3, "vectors missing under {}", dir.display());
    }

    #[test]
    fn binding_is_added_beside_each_root_only() {
        let root: Blake3Digest = "ab".repeat(32).parse().unwrap();
        let mut statement: Statement = serde_json::from_value(serde_json::json!({
            "_type": STATEMENT_TYPE, "predicateType": "t", "predicate": {},
            "subject": [{"digest": {"blake3": root.to_hex()}}, {"digest": {"sha512": "00"}}]
        }))
        .unwrap();
        statement.bind_for_keyless();
        assert_eq!(
            statement.subject[0].digest["sha256"],
            hex::encode(keyless_binding(&root))
        );
        assert!(!statement.subject[1].digest.contains_key("sha256"));
    }
}
