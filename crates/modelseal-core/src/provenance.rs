//! SLSA Provenance v1 for training runs, and SLSA Verification Summaries v1
//! (`spec/lineage.md`). Only the types and their construction live here; checking
//! them is `modelseal-verify`'s.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::digest::Blake3Digest;
use crate::statement::{ResourceDescriptor, STATEMENT_TYPE, Statement};

/// Predicate type of SLSA Provenance v1.
pub const SLSA_PROVENANCE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Predicate type of SLSA Verification Summary v1.
pub const SLSA_VSA_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// modelseal's build type for training (and fine-tuning, quantizing…) runs.
pub const TRAINING_BUILD_TYPE: &str = "https://modelseal.dev/buildtypes/training/v1";
/// Annotation naming what a resolved dependency is.
pub const KIND_ANNOTATION: &str = "modelseal.dev/kind";
/// The verifier id modelseal writes into VSAs.
pub const VERIFIER_ID: &str = "https://modelseal.dev/verifier/lineage/v1";
/// The level a VSA from a passed lineage check records.
pub const LINEAGE_LEVEL: &str = "MODELSEAL_LINEAGE_VERIFIED";

/// What a resolved dependency of a training run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DependencyKind {
    /// A model the run started from.
    BaseModel,
    /// Data the run trained on.
    Dataset,
    /// The training code (a git commit).
    Code,
    /// The container image (an OCI digest).
    Image,
}

/// SLSA Provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// What was built and from what.
    pub build_definition: BuildDefinition,
    /// Who built it and when.
    pub run_details: RunDetails,
}

/// SLSA `buildDefinition`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    /// Always [`TRAINING_BUILD_TYPE`] for modelseal runs.
    pub build_type: String,
    /// Parameters the run was given (entry point, hyperparameters, config digests).
    pub external_parameters: Value,
    /// Parameters the builder chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_parameters: Option<Value>,
    /// Inputs: base models, datasets, code, image.
    #[serde(default)]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// SLSA `runDetails`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    /// The builder.
    pub builder: Builder,
    /// Invocation id and times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BuildMetadata>,
}

/// SLSA `builder`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Builder {
    /// URI naming the builder (the trust boundary the policy allows or not).
    pub id: String,
}

/// SLSA `metadata`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    /// Unique id of this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// RFC 3339 start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    /// RFC 3339 end time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

/// A dependency by kind, name and digests, as [`Provenance`] records it.
pub fn dependency(
    kind: DependencyKind,
    name: Option<String>,
    uri: Option<String>,
    digest: BTreeMap<String, String>,
) -> ResourceDescriptor {
    ResourceDescriptor {
        name,
        uri,
        digest,
        annotations: Some(BTreeMap::from([(
            KIND_ANNOTATION.to_owned(),
            serde_json::to_value(kind).expect("a kind serializes"),
        )])),
    }
}

/// The kind a dependency is annotated with, if any.
pub fn dependency_kind(resource: &ResourceDescriptor) -> Option<DependencyKind> {
    let value = resource.annotations.as_ref()?.get(KIND_ANNOTATION)?;
    serde_json::from_value(value.clone()).ok()
}

/// A provenance statement about the model `name` whose manifest root is `root`.
pub fn provenance_statement(name: &str, root: &Blake3Digest, provenance: &Provenance) -> Statement {
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![subject(name, root)],
        predicate_type: SLSA_PROVENANCE_TYPE.to_owned(),
        predicate: serde_json::to_value(provenance).expect("provenance serializes"),
    }
}

fn subject(name: &str, root: &Blake3Digest) -> ResourceDescriptor {
    ResourceDescriptor {
        name: Some(name.to_owned()),
        uri: None,
        digest: BTreeMap::from([("blake3".to_owned(), root.to_hex())]),
        annotations: None,
    }
}

/// SLSA Verification Summary v1 predicate, as modelseal writes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSummary {
    /// Who verified.
    pub verifier: Builder,
    /// RFC 3339 time of the check.
    pub time_verified: String,
    /// What was verified (the model's name).
    pub resource_uri: String,
    /// The policy applied, by digest.
    pub policy: ResourceDescriptor,
    /// The attestations the check used, by SHA-256 of their bundle files.
    #[serde(default)]
    pub input_attestations: Vec<ResourceDescriptor>,
    /// `PASSED` (modelseal never writes a failed summary).
    pub verification_result: String,
    /// [`LINEAGE_LEVEL`].
    #[serde(default)]
    pub verified_levels: Vec<String>,
}

/// A VSA statement about the model `name` whose manifest root is `root`.
pub fn vsa_statement(name: &str, root: &Blake3Digest, summary: &VerificationSummary) -> Statement {
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![subject(name, root)],
        predicate_type: SLSA_VSA_TYPE.to_owned(),
        predicate: serde_json::to_value(summary).expect("summary serializes"),
    }
}

/// Predicate type of a CycloneDX BOM as an in-toto predicate.
pub const CYCLONEDX_PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";
/// Predicate type of an SPDX 3 document as an in-toto predicate.
pub const SPDX3_PREDICATE_TYPE: &str = "https://spdx.org/rdf/3.0.1/terms/Core/SpdxDocument";

/// A statement that the model `name` with root `root` has the bill of materials `bom`
/// (`modelseal bom --sign-key`): one of the two predicate types above.
pub fn bom_statement(
    name: &str,
    root: &Blake3Digest,
    predicate_type: &str,
    bom: serde_json::Value,
) -> Statement {
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![subject(name, root)],
        predicate_type: predicate_type.to_owned(),
        predicate: bom,
    }
}
