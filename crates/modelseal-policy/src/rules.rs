//! A policy's rules about one artifact: deny and allow lists, by digest and by the names
//! trusted signers gave it (`spec/policy.md`).

use modelseal_core::{ArtifactDigest, ArtifactKind};
use modelseal_verify::{ArtifactRules, RuleRefusal, SignerCount, Verifier, VerifyOptions};

use crate::{LineagePolicy, Matcher, Role, Rules};

/// Why a policy's rules refused an artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleFailure {
    /// On a deny list (the rule's text).
    #[error("denied by policy rule {0}")]
    Denied(String),
    /// A name rule applies to this kind, and no trusted signer named the artifact.
    #[error("policy rule {0} matches names, and no trusted signer named this artifact")]
    Unnamed(String),
    /// Not on a non-empty allow list.
    #[error("not on the policy's allow list")]
    NotAllowed,
}

impl RuleFailure {
    /// A stable kebab-case name for the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Denied(_) => "denied",
            Self::Unnamed(_) => "unnamed",
            Self::NotAllowed => "not-allowed",
        }
    }
}

/// Deny if any rule meets any of the artifact's `names` or `digests`; unless `is_top`
/// (the artifact verified, rather than an input of its lineage), allow only if one does.
pub fn check_lists(
    rules: &Rules,
    names: &[&str],
    digests: &[ArtifactDigest],
    is_top: bool,
) -> Result<(), RuleFailure> {
    check_lists_with(rules, (names, digests), (&[], &[]), is_top)
}

/// [`check_lists`] where some names and digests come from trusted signatures that did not
/// count toward the role's threshold (`also`): those can deny, never allow, so a
/// signature that counts for nothing cannot rename an artifact into an allow list.
pub fn check_lists_with(
    rules: &Rules,
    (names, digests): (&[&str], &[ArtifactDigest]),
    (also_names, also_digests): (&[&str], &[ArtifactDigest]),
    is_top: bool,
) -> Result<(), RuleFailure> {
    let meets = |rule: &Matcher, names: &[&str], digests: &[ArtifactDigest]| {
        digests.iter().any(|digest| {
            rule.matches(digest, None) || names.iter().any(|n| rule.matches(digest, Some(n)))
        })
    };
    let all_names: Vec<&str> = names.iter().chain(also_names).copied().collect();
    let all_digests: Vec<ArtifactDigest> = digests.iter().chain(also_digests).copied().collect();
    if let Some(rule) = rules
        .deny
        .iter()
        .find(|m| meets(m, &all_names, &all_digests))
    {
        return Err(RuleFailure::Denied(rule.text()));
    }
    if names.is_empty() {
        if let Some(rule) = rules.deny.iter().find(|m| m.is_name()) {
            return Err(RuleFailure::Unnamed(rule.text()));
        }
    }
    if !is_top && !rules.allow.is_empty() && !rules.allow.iter().any(|m| meets(m, names, digests)) {
        return Err(RuleFailure::NotAllowed);
    }
    Ok(())
}

/// The policy's rules for an artifact verified on its own (not an input of a lineage):
/// a dataset meets the `[datasets]` rules, anything else the `[models]` rules.
/// `digests` are every digest it is known by (its root, and the OCI manifest its
/// signature names).
pub fn check_artifact(
    policy: &LineagePolicy,
    kind: ArtifactKind,
    signed_name: Option<&str>,
    digests: &[ArtifactDigest],
) -> Result<(), RuleFailure> {
    let rules = match kind {
        ArtifactKind::Dataset => &policy.datasets,
        _ => &policy.models,
    };
    check_lists(rules, signed_name.as_slice(), digests, true)
}

/// The policy's rules as the verifier's: every door that verifies with a policy's
/// [`Verifier`] meets them.
impl ArtifactRules for LineagePolicy {
    fn check(
        &self,
        kind: ArtifactKind,
        name: Option<&str>,
        digests: &[ArtifactDigest],
    ) -> Result<(), RuleRefusal> {
        check_artifact(self, kind, name, digests).map_err(|failure| RuleRefusal {
            kind: failure.kind(),
            message: failure.to_string(),
        })
    }

    fn names_blake3_roots(&self, kind: ArtifactKind) -> bool {
        let rules = match kind {
            ArtifactKind::Dataset => &self.datasets,
            _ => &self.models,
        };
        rules.deny.iter().chain(&rules.allow).any(|rule| {
            matches!(rule, Matcher::Digest(d) if d.algorithm() == modelseal_core::DigestAlgorithm::Blake3)
        })
    }

    fn count_signers(
        &self,
        kind: ArtifactKind,
        signers: &[modelseal_verify::Signer],
    ) -> Result<Option<SignerCount>, RuleRefusal> {
        let role = match kind {
            ArtifactKind::Dataset => Role::DatasetCurator,
            _ => Role::ModelPublisher,
        };
        let count = LineagePolicy::count_signers(self, role, signers);
        if count.met() {
            Ok(Some(count))
        } else {
            Err(RuleRefusal {
                kind: "signers-missing",
                message: format!(
                    "not enough {} signatures: {}",
                    crate::role_name(role),
                    count.describe()
                ),
            })
        }
    }
}

impl LineagePolicy {
    /// The verifier for an artifact of `options.kind` (a model unless set): it trusts the
    /// signers of the role that signs that kind (model publishers, dataset curators) and
    /// applies this policy's rules for it.
    pub fn verifier(&self, options: VerifyOptions) -> Verifier {
        let role = match options.kind {
            Some(ArtifactKind::Dataset) => Role::DatasetCurator,
            _ => Role::ModelPublisher,
        };
        Verifier::new(self.trust_for(role))
            .with_options(options)
            .with_rules(std::sync::Arc::new(self.clone()))
    }
}
