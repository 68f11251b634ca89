//! Verification summaries (SLSA VSA v1, `spec/lineage.md` §6): making one from a passed
//! report, and deciding whether a verified one may stand in for the walk below a hop.
//! A summary is bound to the policy file's digest and to the signer keys that policy
//! resolved to, and it has a maximum age.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use modelseal_core::provenance::{Builder, LINEAGE_LEVEL, VERIFIER_ID, VerificationSummary};
use modelseal_core::statement::ResourceDescriptor;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::policy::LineagePolicy;
use crate::report::LineageReport;

/// The annotation on the summary's `policy` descriptor that lists the resolved signers.
pub const RESOLVED_SIGNERS_ANNOTATION: &str = "modelseal.dev/resolvedSigners";
/// How far in the future a summary's `timeVerified` may be (clock skew between hosts).
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Makes a VSA recording that `report` passed `policy` at `time_verified`.
pub fn summary(
    report: &LineageReport,
    policy: &LineagePolicy,
    time_verified: SystemTime,
    resource_uri: String,
) -> Option<VerificationSummary> {
    if !report.passed() {
        return None;
    }
    let time_verified = OffsetDateTime::from(time_verified).format(&Rfc3339).ok()?;
    Some(VerificationSummary {
        verifier: Builder {
            id: VERIFIER_ID.into(),
        },
        time_verified,
        resource_uri,
        policy: ResourceDescriptor {
            name: Some("lineage policy".into()),
            uri: None,
            digest: BTreeMap::from([("sha256".to_owned(), policy.sha256.clone())]),
            annotations: Some(BTreeMap::from([(
                RESOLVED_SIGNERS_ANNOTATION.to_owned(),
                serde_json::json!(policy.resolved_signers()),
            )])),
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

/// Whether a summary (already through the gate, from a trusted verifier, about this
/// artifact) may stand in under `policy` at `now`; the error says why not.
pub fn acceptable(
    summary: &VerificationSummary,
    policy: &LineagePolicy,
    now: SystemTime,
) -> Result<(), String> {
    if summary.verifier.id != VERIFIER_ID {
        return Err(format!("made by verifier {:?}", summary.verifier.id));
    }
    if summary.verification_result != "PASSED"
        || !summary.verified_levels.iter().any(|l| l == LINEAGE_LEVEL)
    {
        return Err("does not record a passed lineage check".into());
    }
    if summary.policy.digest.get("sha256") != Some(&policy.sha256) {
        return Err("made under another policy file".into());
    }
    let signers = summary
        .policy
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESOLVED_SIGNERS_ANNOTATION));
    if signers != Some(&serde_json::json!(policy.resolved_signers())) {
        return Err("made when the policy's keys were others (a key was replaced)".into());
    }
    let verified_at = OffsetDateTime::parse(&summary.time_verified, &Rfc3339)
        .map_err(|e| format!("timeVerified {:?}: {e}", summary.time_verified))?;
    let verified_at = SystemTime::from(verified_at);
    if verified_at > now + CLOCK_SKEW {
        return Err(format!(
            "timeVerified {} is in the future",
            summary.time_verified
        ));
    }
    let age = now.duration_since(verified_at).unwrap_or_default();
    if age > policy.vsa_max_age {
        return Err(format!(
            "made {} ago, older than the policy's max_age of {}",
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            humantime::format_duration(policy.vsa_max_age)
        ));
    }
    Ok(())
}
