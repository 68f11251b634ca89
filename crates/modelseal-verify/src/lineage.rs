//! Transitive lineage checks (`spec/lineage.md` §5): from a verified model, through its
//! training provenance, to every base model and dataset it names, recursively, each hop
//! checked by digest against the policy. Nothing here reads model bytes below the top.

use std::collections::BTreeSet;

use modelseal_core::provenance::{
    DependencyKind, LINEAGE_LEVEL, Provenance, SLSA_PROVENANCE_TYPE, SLSA_VSA_TYPE,
    TRAINING_BUILD_TYPE, VerificationSummary, dependency_kind,
};
use modelseal_core::statement::{
    ArtifactKind, MANIFEST_PREDICATE_TYPE, ManifestPredicate, Statement,
};
use modelseal_core::store::{AttestationStore, StoreError, StoredBundle};

use crate::envelope::verify_envelope;
use crate::error::{VerifyError, error_chain};
use crate::lineage_policy::{LineagePolicy, Role, Rules};

/// What a hop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HopKind {
    /// A model (the one verified, or a base model).
    Model,
    /// A dataset.
    Dataset,
}

impl HopKind {
    /// `model` or `dataset`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Dataset => "dataset",
        }
    }
}

/// Why a hop fails the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HopFailure {
    /// No attestation of a required type is stored for the hop.
    #[error("no {predicate_type} attestation is in the store")]
    Missing {
        /// The predicate type.
        predicate_type: String,
    },
    /// Attestations are stored, but none is signed by a signer the policy trusts for it.
    #[error("{predicate_type} attestation is not signed by a trusted {role}: {reason}")]
    Untrusted {
        /// The predicate type.
        predicate_type: String,
        /// The role needed.
        role: &'static str,
        /// The first verification error met.
        reason: String,
    },
    /// A trusted attestation describes another artifact or kind than the hop.
    #[error("{predicate_type} attestation does not describe this {expected}: {found}")]
    Mismatch {
        /// The predicate type.
        predicate_type: String,
        /// What the hop should be.
        expected: &'static str,
        /// What the attestation says.
        found: String,
    },
    /// Provenance of an unknown build type.
    #[error("provenance has build type {0:?}, expected {TRAINING_BUILD_TYPE}")]
    BuildType(String),
    /// Provenance from a builder the policy does not allow.
    #[error("built by {0}, which the policy does not allow")]
    Builder(String),
    /// On a deny list.
    #[error("denied by policy rule {0}")]
    Denied(String),
    /// Not on a non-empty allow list.
    #[error("not on the policy's allow list")]
    NotAllowed,
    /// The hop is one of its own ancestors.
    #[error("cycle: this artifact is its own ancestor")]
    Cycle,
    /// Deeper than the policy allows.
    #[error("lineage deeper than the policy's max_depth of {0}")]
    TooDeep(usize),
    /// A dependency named without a blake3 digest.
    #[error("dependency has no blake3 digest to follow")]
    NoDigest,
    /// The store could not be read.
    #[error("store: {0}")]
    Store(String),
}

impl HopFailure {
    /// A stable name for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "missing-attestation",
            Self::Untrusted { .. } => "untrusted-signer",
            Self::Mismatch { .. } => "digest-mismatch",
            Self::BuildType(_) => "unknown-build-type",
            Self::Builder(_) => "untrusted-builder",
            Self::Denied(_) => "denied",
            Self::NotAllowed => "not-allowed",
            Self::Cycle => "cycle",
            Self::TooDeep(_) => "too-deep",
            Self::NoDigest => "no-digest",
            Self::Store(_) => "store-error",
        }
    }
}

/// One artifact in the lineage tree, with its verdict.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Hop {
    /// Model or dataset.
    pub kind: HopKind,
    /// Its name, as its parent's provenance (or its own signature) gives it.
    pub name: Option<String>,
    /// `blake3:HEX`.
    pub digest: String,
    /// The policy names of the signers whose attestations were accepted.
    pub signers: Vec<String>,
    /// The builder id of its provenance, when it has one.
    pub builder: Option<String>,
    /// Accepted on a verification summary instead of walking below it.
    pub via_vsa: bool,
    /// Code and image the run used (recorded, not verified).
    pub materials: Vec<String>,
    /// `None` when the hop passes.
    pub failure: Option<HopFailure>,
    /// Base models and datasets it was trained from.
    pub inputs: Vec<Hop>,
}

/// The whole check.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LineageReport {
    /// The tree, rooted at the model verified.
    pub root: Hop,
    /// SHA-256 of every stored bundle relied on.
    pub attestations: BTreeSet<String>,
}

impl LineageReport {
    /// The report as JSON (`spec/lineage.md` §5): `passed`, `firstFailure` and `tree`,
    /// one object per hop with its verdict. The CLI and the admission server both print it.
    pub fn to_json(&self) -> serde_json::Value {
        fn hop_json(hop: &Hop) -> serde_json::Value {
            serde_json::json!({
                "kind": hop.kind.name(),
                "name": hop.name,
                "digest": hop.digest,
                "verdict": if hop.failure.is_some() { "refused" } else { "ok" },
                "failure": hop.failure.as_ref().map(|f| serde_json::json!({"kind": f.kind(), "message": f.to_string()})),
                "signers": hop.signers,
                "builder": hop.builder,
                "viaVsa": hop.via_vsa,
                "materials": hop.materials,
                "inputs": hop.inputs.iter().map(hop_json).collect::<Vec<_>>(),
            })
        }
        serde_json::json!({
            "passed": self.passed(),
            "firstFailure": self.first_failure().map(|(hop, f)| serde_json::json!({
                "digest": hop.digest, "name": hop.name, "kind": f.kind(), "message": f.to_string(),
            })),
            "tree": hop_json(&self.root),
        })
    }

    /// True when every hop passes.
    pub fn passed(&self) -> bool {
        self.first_failure().is_none()
    }

    /// The first failing hop in depth-first order, and why.
    pub fn first_failure(&self) -> Option<(&Hop, &HopFailure)> {
        fn find(hop: &Hop) -> Option<(&Hop, &HopFailure)> {
            if let Some(failure) = &hop.failure {
                return Some((hop, failure));
            }
            hop.inputs.iter().find_map(find)
        }
        find(&self.root)
    }
}

/// Walks the lineage of the model `name` whose manifest root is `digest` (`blake3:HEX`),
/// already verified with its own signature by the caller.
pub fn verify_lineage(
    name: Option<String>,
    digest: &str,
    top_signer: String,
    policy: &LineagePolicy,
    store: &AttestationStore,
) -> LineageReport {
    let mut report = walk(name, digest, policy, store, false);
    report.root.signers.insert(0, top_signer);
    report
}

/// Checks a model known only by its digest (`blake3:HEX`), as an admission controller
/// does: its own signature must be in the store, by a `model-publisher`, and then its
/// lineage is walked as by [`verify_lineage`]. No model bytes are read.
pub fn verify_digest(
    name: Option<String>,
    digest: &str,
    policy: &LineagePolicy,
    store: &AttestationStore,
) -> LineageReport {
    walk(name, digest, policy, store, true)
}

/// The walk both entry points share; `top_signature` says whether the top model's own
/// signature must be found in the store.
fn walk(
    name: Option<String>,
    digest: &str,
    policy: &LineagePolicy,
    store: &AttestationStore,
    top_signature: bool,
) -> LineageReport {
    let mut walk = Walk {
        policy,
        store,
        attestations: BTreeSet::new(),
        stack: Vec::new(),
        top_signature,
    };
    let root = walk.hop(HopKind::Model, name, digest.to_owned(), 0, true);
    LineageReport {
        root,
        attestations: walk.attestations,
    }
}

struct Walk<'a> {
    policy: &'a LineagePolicy,
    store: &'a AttestationStore,
    attestations: BTreeSet<String>,
    stack: Vec<String>,
    /// Whether the top model's own signature must be found in the store.
    top_signature: bool,
}

impl Walk<'_> {
    fn hop(
        &mut self,
        kind: HopKind,
        name: Option<String>,
        digest: String,
        depth: usize,
        is_top: bool,
    ) -> Hop {
        let mut hop = Hop {
            kind,
            name,
            digest,
            signers: Vec::new(),
            builder: None,
            via_vsa: false,
            materials: Vec::new(),
            failure: None,
            inputs: Vec::new(),
        };
        if let Err(failure) = self.check(&mut hop, depth, is_top) {
            hop.failure = Some(failure);
        }
        hop
    }

    fn check(&mut self, hop: &mut Hop, depth: usize, is_top: bool) -> Result<(), HopFailure> {
        if self.stack.contains(&hop.digest) {
            return Err(HopFailure::Cycle);
        }
        if depth > self.policy.max_depth {
            return Err(HopFailure::TooDeep(self.policy.max_depth));
        }
        if !is_top {
            self.check_lists(hop)?;
        }
        if self.policy.accept_vsa && self.accepted_vsa(hop)? {
            hop.via_vsa = true;
            return Ok(());
        }
        let rules = match hop.kind {
            HopKind::Model => &self.policy.models,
            HopKind::Dataset => &self.policy.datasets,
        };
        let require_manifest = if is_top {
            self.top_signature
        } else {
            rules.require.iter().any(|t| t == MANIFEST_PREDICATE_TYPE)
        };
        if require_manifest {
            self.check_manifest(hop)?;
        }
        let require_provenance = rules.require.iter().any(|t| t == SLSA_PROVENANCE_TYPE);
        let provenance = self.provenance(hop, require_provenance)?;
        let Some(provenance) = provenance else {
            return Ok(());
        };
        self.stack.push(hop.digest.clone());
        for dependency in &provenance.build_definition.resolved_dependencies {
            let kind = match dependency_kind(dependency) {
                Some(DependencyKind::BaseModel) => HopKind::Model,
                Some(DependencyKind::Dataset) => HopKind::Dataset,
                _ => {
                    let label = dependency
                        .uri
                        .clone()
                        .or_else(|| dependency.name.clone())
                        .unwrap_or_default();
                    let digests: Vec<String> = dependency
                        .digest
                        .iter()
                        .map(|(a, h)| format!("{a}:{h}"))
                        .collect();
                    hop.materials.push(format!("{label} {}", digests.join(" ")));
                    continue;
                }
            };
            let child = match dependency.digest.get("blake3") {
                Some(hex) => self.hop(
                    kind,
                    dependency.name.clone(),
                    format!("blake3:{hex}"),
                    depth + 1,
                    false,
                ),
                None => Hop {
                    kind,
                    name: dependency.name.clone(),
                    digest: "(none)".into(),
                    signers: Vec::new(),
                    builder: None,
                    via_vsa: false,
                    materials: Vec::new(),
                    failure: Some(HopFailure::NoDigest),
                    inputs: Vec::new(),
                },
            };
            hop.inputs.push(child);
        }
        self.stack.pop();
        Ok(())
    }

    fn check_lists(&self, hop: &Hop) -> Result<(), HopFailure> {
        let rules: &Rules = match hop.kind {
            HopKind::Model => &self.policy.models,
            HopKind::Dataset => &self.policy.datasets,
        };
        let name = hop.name.as_deref();
        if let Some(rule) = rules.deny.iter().find(|m| m.matches(&hop.digest, name)) {
            return Err(HopFailure::Denied(rule.text()));
        }
        if !rules.allow.is_empty() && !rules.allow.iter().any(|m| m.matches(&hop.digest, name)) {
            return Err(HopFailure::NotAllowed);
        }
        Ok(())
    }

    fn stored(&self, digest: &str, predicate_type: &str) -> Result<Vec<StoredBundle>, HopFailure> {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("", ""));
        let all = self
            .store
            .bundles_for(algorithm, hex)
            .map_err(|e: StoreError| HopFailure::Store(error_chain(&e)))?;
        Ok(all
            .into_iter()
            .filter(|b| {
                predicate_type_of(&b.bundle.dsse_envelope.payload).as_deref()
                    == Some(predicate_type)
            })
            .collect())
    }

    /// The first stored attestation of `predicate_type` for the hop that a signer trusted
    /// for `role` signed, with the statement and the signer's policy name.
    fn trusted(
        &mut self,
        hop: &Hop,
        predicate_type: &str,
        role: Role,
    ) -> Result<Option<(Statement, String)>, HopFailure> {
        let candidates = self.stored(&hop.digest, predicate_type)?;
        if candidates.is_empty() {
            return Ok(None);
        }
        let trust = self.policy.trust_for(role);
        let mut first_error = None;
        for candidate in candidates {
            match verify_envelope(&candidate.bundle, &trust) {
                Ok(verified) => {
                    let subject_digest = verified.statement.subject.iter().any(|s| {
                        s.digest
                            .get("blake3")
                            .map(|h| format!("blake3:{h}"))
                            .as_deref()
                            == Some(hop.digest.as_str())
                    });
                    if !subject_digest {
                        return Err(HopFailure::Mismatch {
                            predicate_type: predicate_type.to_owned(),
                            expected: "digest",
                            found: "the statement's subject is another artifact".into(),
                        });
                    }
                    self.attestations.insert(candidate.sha256.clone());
                    let signer = self
                        .policy
                        .signer_name(&verified.signer.fingerprint)
                        .map(str::to_owned)
                        .or_else(|| verified.signer.keyless.as_ref().map(|k| k.identity.clone()))
                        .unwrap_or_else(|| verified.signer.fingerprint.to_string());
                    return Ok(Some((verified.statement, signer)));
                }
                Err(e) => {
                    first_error.get_or_insert(error_chain(&e));
                }
            }
        }
        Err(HopFailure::Untrusted {
            predicate_type: predicate_type.to_owned(),
            role: role_name(role),
            reason: first_error.unwrap_or_default(),
        })
    }

    fn check_manifest(&mut self, hop: &mut Hop) -> Result<(), HopFailure> {
        let role = match hop.kind {
            HopKind::Model => Role::ModelPublisher,
            HopKind::Dataset => Role::DatasetCurator,
        };
        let Some((statement, signer)) = self.trusted(hop, MANIFEST_PREDICATE_TYPE, role)? else {
            return Err(HopFailure::Missing {
                predicate_type: MANIFEST_PREDICATE_TYPE.into(),
            });
        };
        let predicate: Option<ManifestPredicate> = serde_json::from_value(statement.predicate).ok();
        let expected = match hop.kind {
            HopKind::Model => ArtifactKind::Model,
            HopKind::Dataset => ArtifactKind::Dataset,
        };
        if predicate.as_ref().map(|p| p.kind) != Some(expected) {
            return Err(HopFailure::Mismatch {
                predicate_type: MANIFEST_PREDICATE_TYPE.into(),
                expected: if expected == ArtifactKind::Model {
                    "model"
                } else {
                    "dataset"
                },
                found: "it is signed as another kind".into(),
            });
        }
        if hop.name.is_none() {
            hop.name = statement.subject.first().and_then(|s| s.name.clone());
        }
        hop.signers.push(signer);
        Ok(())
    }

    fn provenance(
        &mut self,
        hop: &mut Hop,
        required: bool,
    ) -> Result<Option<Provenance>, HopFailure> {
        let Some((statement, signer)) =
            self.trusted(hop, SLSA_PROVENANCE_TYPE, Role::TrainingBuilder)?
        else {
            if required {
                return Err(HopFailure::Missing {
                    predicate_type: SLSA_PROVENANCE_TYPE.into(),
                });
            }
            return Ok(None);
        };
        let provenance: Provenance =
            serde_json::from_value(statement.predicate).map_err(|e| HopFailure::Mismatch {
                predicate_type: SLSA_PROVENANCE_TYPE.into(),
                expected: "provenance",
                found: e.to_string(),
            })?;
        if provenance.build_definition.build_type != TRAINING_BUILD_TYPE {
            return Err(HopFailure::BuildType(
                provenance.build_definition.build_type,
            ));
        }
        let builder = provenance.run_details.builder.id.clone();
        hop.builder = Some(builder.clone());
        hop.signers.push(signer);
        if !self.policy.builders.is_empty() && !self.policy.builders.contains(&builder) {
            return Err(HopFailure::Builder(builder));
        }
        Ok(Some(provenance))
    }

    /// A verifier-signed VSA that passed this very policy for this artifact.
    fn accepted_vsa(&mut self, hop: &mut Hop) -> Result<bool, HopFailure> {
        let Ok(Some((statement, signer))) = self.trusted(hop, SLSA_VSA_TYPE, Role::Verifier) else {
            return Ok(false);
        };
        let Ok(summary) = serde_json::from_value::<VerificationSummary>(statement.predicate) else {
            return Ok(false);
        };
        let same_policy = summary.policy.digest.get("sha256") == Some(&self.policy.sha256);
        let passed = summary.verification_result == "PASSED"
            && summary.verified_levels.iter().any(|l| l == LINEAGE_LEVEL);
        if same_policy && passed {
            hop.signers.push(signer);
            return Ok(true);
        }
        Ok(false)
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::ModelPublisher => "model-publisher",
        Role::TrainingBuilder => "training-builder",
        Role::DatasetCurator => "dataset-curator",
        Role::Verifier => "verifier",
    }
}

fn predicate_type_of(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "predicateType")]
        predicate_type: String,
    }
    serde_json::from_slice::<Probe>(payload)
        .ok()
        .map(|p| p.predicate_type)
}

/// Makes a VSA recording that `report` passed `policy`.
pub fn summary(
    report: &LineageReport,
    policy: &LineagePolicy,
    time_verified: String,
    resource_uri: String,
) -> Option<VerificationSummary> {
    use modelseal_core::statement::ResourceDescriptor;
    use std::collections::BTreeMap;
    if !report.passed() {
        return None;
    }
    Some(VerificationSummary {
        verifier: modelseal_core::provenance::Builder {
            id: modelseal_core::provenance::VERIFIER_ID.into(),
        },
        time_verified,
        resource_uri,
        policy: ResourceDescriptor {
            name: Some("lineage policy".into()),
            uri: None,
            digest: BTreeMap::from([("sha256".to_owned(), policy.sha256.clone())]),
            annotations: None,
        },
        input_attestations: report
            .attestations
            .iter()
            .map(|sha| ResourceDescriptor {
                name: None,
                uri: None,
                digest: BTreeMap::from([("sha256".to_owned(), sha.clone())]),
                annotations: None,
            })
            .collect(),
        verification_result: "PASSED".into(),
        verified_levels: vec![LINEAGE_LEVEL.into()],
    })
}

impl From<HopFailure> for VerifyError {
    fn from(failure: HopFailure) -> Self {
        VerifyError::Lineage(failure)
    }
}
