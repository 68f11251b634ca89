//! The policy's own rules for the artifact verified (its `[models]` or `[datasets]`
//! allow and deny lists), applied to every digest it is known by.

use anyhow::{Result, bail};
use modelseal_lineage::policy::LineagePolicy;
use modelseal_verify::VerifiedModel;

/// The policy's rules for the verified model itself, when its lineage is not walked.
pub fn model_rules(
    policy: &LineagePolicy,
    verified: &VerifiedModel,
) -> Result<Option<modelseal_lineage::HopFailure>> {
    artifact_rules(policy, modelseal_core::ArtifactKind::Model, verified)
}

/// [`model_rules`] for an artifact of either kind (`verify --kind dataset`).
pub fn artifact_rules(
    policy: &LineagePolicy,
    kind: modelseal_core::ArtifactKind,
    verified: &VerifiedModel,
) -> Result<Option<modelseal_lineage::HopFailure>> {
    let digests = verified.digests();
    if digests.is_empty() {
        bail!("the verified root is not a digest");
    }
    Ok(modelseal_lineage::check_artifact(policy, kind, verified.name.as_deref(), &digests).err())
}
