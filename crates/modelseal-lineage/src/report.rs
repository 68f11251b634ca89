//! The lineage report: one [`Hop`] per artifact with its verdict, and its JSON form
//! (`spec/lineage.md` §5), which the CLI and the admission server both print.

use std::collections::BTreeSet;

use modelseal_core::ArtifactDigest;
use modelseal_core::provenance::{Provenance, TRAINING_BUILD_TYPE};
use modelseal_verify::Signer;

use crate::store::Skipped;

/// What a hop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// Attestations are stored, but none passes the gate for the role it needs.
    #[error("{predicate_type} attestation is not signed by a trusted {role}: {reason}")]
    Untrusted {
        /// The predicate type.
        predicate_type: String,
        /// The role needed.
        role: &'static str,
        /// The first verification error met.
        reason: String,
    },
    /// A trusted attestation describes another kind of artifact than the hop.
    #[error("{predicate_type} attestation does not describe this {expected}: {found}")]
    Mismatch {
        /// The predicate type.
        predicate_type: String,
        /// What the hop should be.
        expected: &'static str,
        /// What the attestation says.
        found: String,
    },
    /// The parent's provenance names the artifact otherwise than its own signers did.
    #[error("the provenance calls it \"{claimed}\", but {}", signed_names(.signed))]
    NameMismatch {
        /// The names its own trusted signers gave it (none: nobody named it).
        signed: Vec<String>,
        /// The name the parent's provenance gives it.
        claimed: String,
    },
    /// Trusted signatures of the hop's own kind are stored, from fewer distinct named
    /// signers than the policy's threshold for the role (or without every algorithm a
    /// hybrid signer must use).
    #[error("not enough {role} signatures: {detail}")]
    SignersMissing {
        /// The role counted.
        role: &'static str,
        /// The count: threshold, who counted, who is missing.
        detail: String,
    },
    /// A name rule applies to this kind of hop, and the hop has no signed name.
    #[error("policy rule {0} matches names, and no trusted signer named this artifact")]
    Unnamed(String),
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
    /// A base model or dataset named without a digest to follow.
    #[error("dependency has no blake3 digest to follow")]
    NoDigest,
    /// A base model or dataset digest that is not in canonical form.
    #[error("dependency digest is malformed: {0}")]
    MalformedDigest(String),
    /// The same base model or dataset listed more than once by one provenance.
    #[error("the provenance lists {0} more than once")]
    DuplicateDependency(String),
    /// The walk reached its budget of hops (a lattice of inputs can make a tree of
    /// exponential size).
    #[error("lineage has more than {0} hops")]
    TooManyHops(usize),
    /// The store could not be read.
    #[error("store: {0}")]
    Store(String),
    /// The caller's deadline passed before this hop was checked.
    #[error("out of time: the deadline passed before this hop was checked")]
    OutOfTime,
}

/// "its signer named it "a"", "its signers named it "a" and "b"", or "no trusted signer
/// named it".
fn signed_names(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match quoted.as_slice() {
        [] => "no trusted signer named it".to_owned(),
        [one] => format!("its signer named it {one}"),
        [rest @ .., last] => format!("its signers named it {} and {last}", rest.join(", ")),
    }
}

impl From<modelseal_policy::RuleFailure> for HopFailure {
    fn from(failure: modelseal_policy::RuleFailure) -> Self {
        match failure {
            modelseal_policy::RuleFailure::Denied(rule) => Self::Denied(rule),
            modelseal_policy::RuleFailure::Unnamed(rule) => Self::Unnamed(rule),
            _ => Self::NotAllowed,
        }
    }
}

impl HopFailure {
    /// A stable name for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "missing-attestation",
            Self::Untrusted { .. } => "untrusted-signer",
            Self::Mismatch { .. } => "digest-mismatch",
            Self::NameMismatch { .. } => "name-mismatch",
            Self::SignersMissing { .. } => "signers-missing",
            Self::Unnamed(_) => "unnamed",
            Self::BuildType(_) => "unknown-build-type",
            Self::Builder(_) => "untrusted-builder",
            Self::Denied(_) => "denied",
            Self::NotAllowed => "not-allowed",
            Self::Cycle => "cycle",
            Self::TooDeep(_) => "too-deep",
            Self::NoDigest => "no-digest",
            Self::MalformedDigest(_) => "malformed-digest",
            Self::DuplicateDependency(_) => "duplicate-dependency",
            Self::TooManyHops(_) => "too-many-hops",
            Self::Store(_) => "store-error",
            Self::OutOfTime => "out-of-time",
        }
    }
}

/// One attestation that passed the gate for a hop: what it is, and who signed it in
/// which role.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedBy {
    /// Its predicate type.
    pub predicate_type: String,
    /// The role the policy trusted its signer for.
    pub role: &'static str,
    /// The signer's policy name (its key fingerprint when the policy names none).
    pub signer: String,
    /// The verified signer: key, certificate or keyless identity, trusted time.
    pub identity: Signer,
    /// SHA-256 of the stored bundle (`None` for the top model's own signature, which the
    /// caller verified from a file, not from the store).
    pub bundle_sha256: Option<String>,
}

impl SignedBy {
    /// A record of a signature verified outside the walk (the top model's).
    pub fn new(predicate_type: &str, role: &'static str, signer: String, identity: Signer) -> Self {
        Self {
            predicate_type: predicate_type.to_owned(),
            role,
            signer,
            identity,
            bundle_sha256: None,
        }
    }

    /// The time a transparency log or timestamp authority vouches for, Unix seconds.
    pub fn signed_at(&self) -> Option<i64> {
        self.identity
            .keyless
            .as_ref()
            .and_then(|k| k.signed_at)
            .or_else(|| {
                self.identity
                    .timestamped_at
                    .and_then(|t| i64::try_from(t).ok())
            })
    }
}

/// A training run a trusted builder attested, with the attestation.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrainingRun {
    /// The provenance as signed.
    pub provenance: Provenance,
    /// Who signed it.
    pub signed_by: SignedBy,
}

/// One artifact in the lineage tree, with its verdict.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Hop {
    /// Model or dataset.
    pub kind: HopKind,
    /// Its name for policy: the one its own trusted signer gave it (for the top model,
    /// the name in the signature the caller verified). `None` when no trusted signer
    /// named it.
    pub name: Option<String>,
    /// Further names other trusted signers gave the same digest (the same files signed
    /// as a directory and as an image, say). Policy rules by name apply to every name.
    pub aliases: Vec<String>,
    /// The name its parent's provenance gives it (reported; never used for policy).
    pub claimed_name: Option<String>,
    /// Its digest; `None` when the provenance gave none that parses.
    pub digest: Option<ArtifactDigest>,
    /// The policy names of the signers whose attestations were accepted.
    pub signers: Vec<String>,
    /// Each attestation accepted for this hop, with its signer.
    pub attestations: Vec<SignedBy>,
    /// The training runs its trusted provenance describes, as signed.
    pub runs: Vec<TrainingRun>,
    /// The builder ids of its provenance, when it has one.
    pub builders: Vec<String>,
    /// Accepted on a verification summary instead of walking below it.
    pub via_vsa: bool,
    /// Code and image the run used (recorded, not verified).
    pub materials: Vec<String>,
    /// Store files looked at for this hop and not used, with the reason.
    pub skipped: Vec<Skipped>,
    /// `None` when the hop passes.
    pub failure: Option<HopFailure>,
    /// Base models and datasets it was trained from.
    pub inputs: Vec<Hop>,
}

impl Hop {
    pub(crate) fn new(
        kind: HopKind,
        claimed_name: Option<String>,
        digest: Option<ArtifactDigest>,
    ) -> Self {
        Self {
            kind,
            name: None,
            aliases: Vec::new(),
            claimed_name,
            digest,
            signers: Vec::new(),
            attestations: Vec::new(),
            runs: Vec::new(),
            builders: Vec::new(),
            via_vsa: false,
            materials: Vec::new(),
            skipped: Vec::new(),
            failure: None,
            inputs: Vec::new(),
        }
    }

    /// The name to show: the signed one, else the claimed one marked as such.
    pub fn display_name(&self) -> String {
        match (&self.name, &self.claimed_name) {
            (Some(name), _) => name.clone(),
            (None, Some(claimed)) => format!("{claimed} (unsigned name)"),
            (None, None) => "(unnamed)".into(),
        }
    }

    /// The digest as text, or `(none)`.
    pub fn digest_text(&self) -> String {
        self.digest
            .map_or_else(|| "(none)".to_owned(), |d| d.to_string())
    }
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
    /// one object per hop with its verdict.
    pub fn to_json(&self) -> serde_json::Value {
        fn hop_json(hop: &Hop) -> serde_json::Value {
            serde_json::json!({
                "kind": hop.kind.name(),
                "name": hop.name,
                "aliases": hop.aliases,
                "claimedName": hop.claimed_name,
                "digest": hop.digest,
                "verdict": if hop.failure.is_some() { "refused" } else { "ok" },
                "failure": hop.failure.as_ref().map(|f| serde_json::json!({"kind": f.kind(), "message": f.to_string()})),
                "signers": hop.signers,
                "builders": hop.builders,
                "viaVsa": hop.via_vsa,
                "materials": hop.materials,
                "skipped": hop.skipped.iter().map(|s| serde_json::json!({
                    "path": s.path.display().to_string(), "reason": s.reason,
                })).collect::<Vec<_>>(),
                "inputs": hop.inputs.iter().map(hop_json).collect::<Vec<_>>(),
            })
        }
        serde_json::json!({
            "passed": self.passed(),
            "firstFailure": self.first_failure().map(|(hop, f)| serde_json::json!({
                "digest": hop.digest, "name": hop.name, "claimedName": hop.claimed_name,
                "kind": f.kind(), "message": f.to_string(),
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

    /// Whether any hop failed because the store could not be read.
    pub fn has_store_error(&self) -> bool {
        fn walk(hop: &Hop) -> bool {
            matches!(hop.failure, Some(HopFailure::Store(_))) || hop.inputs.iter().any(walk)
        }
        walk(&self.root)
    }

    /// Whether any hop was accepted on a verification summary instead of being walked.
    pub fn leans_on_summaries(&self) -> bool {
        fn walk(hop: &Hop) -> bool {
            hop.via_vsa || hop.inputs.iter().any(walk)
        }
        walk(&self.root)
    }

    /// How many levels lie below the top model (0: no inputs).
    pub fn depth(&self) -> usize {
        fn walk(hop: &Hop) -> usize {
            hop.inputs.iter().map(|h| 1 + walk(h)).max().unwrap_or(0)
        }
        walk(&self.root)
    }

    /// How many store files were skipped across the tree.
    pub fn skipped_files(&self) -> usize {
        fn walk(hop: &Hop) -> usize {
            hop.skipped.len() + hop.inputs.iter().map(walk).sum::<usize>()
        }
        walk(&self.root)
    }

    /// How many of those were unusable in themselves ([`Skipped::unusable`]): planted
    /// or broken files, not bundles that were merely not needed or did not pass.
    ///
    /// [`Skipped::unusable`]: crate::store::Skipped::unusable
    pub fn unusable_files(&self) -> usize {
        fn walk(hop: &Hop) -> usize {
            hop.skipped.iter().filter(|s| s.unusable).count()
                + hop.inputs.iter().map(walk).sum::<usize>()
        }
        walk(&self.root)
    }
}
