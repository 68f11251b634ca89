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
/// The annotation on the summary's `policy` descriptor that records how many levels of
/// lineage the check walked below the model.
pub const DEPTH_ANNOTATION: &str = "modelseal.dev/lineageDepth";
/// How far in the future a summary's `timeVerified` may be (clock skew between hosts).
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Makes a VSA recording that `report` passed `policy` at `time_verified`. Only a full
/// walk gets one: a report in which any hop stood on a summary would record the depth it
/// walked (not the depth the summary covered) and a fresh time for a lineage nobody
/// walked again, so summaries made from summaries would stretch `max_depth` and
/// `[vsa] max_age` without end.
pub fn summary(
    report: &LineageReport,
    policy: &LineagePolicy,
    time_verified: SystemTime,
    resource_uri: String,
) -> Option<VerificationSummary> {
    if !report.passed() || report.leans_on_summaries() {
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
            annotations: Some(BTreeMap::from([
                (
                    RESOLVED_SIGNERS_ANNOTATION.to_owned(),
                    serde_json::json!(policy.resolved_signers()),
                ),
                (
                    DEPTH_ANNOTATION.to_owned(),
                    serde_json::json!(report.depth()),
                ),
            ])),
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
/// model) may stand in under `policy` at `now` for a hop at `depth`; the error says why
/// not. The lineage it covers must still fit `max_depth` below that hop.
pub fn acceptable(
    summary: &VerificationSummary,
    policy: &LineagePolicy,
    now: SystemTime,
    depth: usize,
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
        return Err("made when the policy's signers were others (a key, a keyless identity or the Sigstore root was replaced)".into());
    }
    let covered = summary
        .policy
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEPTH_ANNOTATION))
        .and_then(serde_json::Value::as_u64)
        .ok_or("records no lineage depth")?;
    if (depth as u64).saturating_add(covered) > policy.max_depth as u64 {
        return Err(format!(
            "covers {covered} levels, which at depth {depth} exceeds the policy's max_depth of {}",
            policy.max_depth
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn summary_at(policy: &LineagePolicy, time: &str, covered: u64) -> VerificationSummary {
        VerificationSummary {
            verifier: Builder {
                id: VERIFIER_ID.into(),
            },
            time_verified: time.into(),
            resource_uri: "m".into(),
            policy: ResourceDescriptor {
                name: None,
                uri: None,
                digest: BTreeMap::from([("sha256".to_owned(), policy.sha256.clone())]),
                annotations: Some(BTreeMap::from([
                    (
                        RESOLVED_SIGNERS_ANNOTATION.to_owned(),
                        serde_json::json!(policy.resolved_signers()),
                    ),
                    (DEPTH_ANNOTATION.to_owned(), serde_json::json!(covered)),
                ])),
            },
            input_attestations: Vec::new(),
            verification_result: "PASSED".into(),
            verified_levels: vec![LINEAGE_LEVEL.into()],
        }
    }

    #[test]
    fn a_summary_stands_in_only_within_depth_age_and_trust() {
        let policy = LineagePolicy::from_toml(
            "max_depth = 4\n[vsa]\naccept = true\n",
            std::path::Path::new("."),
        )
        .unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let fresh = OffsetDateTime::from(now - Duration::from_secs(60))
            .format(&Rfc3339)
            .unwrap();
        let ok = summary_at(&policy, &fresh, 3);
        assert_eq!(acceptable(&ok, &policy, now, 1), Ok(()));
        // Three levels below a hop at depth 2 would reach 5 > max_depth.
        assert!(
            acceptable(&ok, &policy, now, 2)
                .unwrap_err()
                .contains("max_depth")
        );
        let mut no_depth = ok.clone();
        no_depth
            .policy
            .annotations
            .as_mut()
            .unwrap()
            .remove(DEPTH_ANNOTATION);
        assert!(acceptable(&no_depth, &policy, now, 0).is_err());
        let mut other_signers = ok.clone();
        other_signers.policy.annotations.as_mut().unwrap().insert(
            RESOLVED_SIGNERS_ANNOTATION.into(),
            serde_json::json!(["verifier sha256:00"]),
        );
        assert!(
            acceptable(&other_signers, &policy, now, 0)
                .unwrap_err()
                .contains("key")
        );
        let old = OffsetDateTime::from(now - Duration::from_secs(25 * 3600))
            .format(&Rfc3339)
            .unwrap();
        assert!(acceptable(&summary_at(&policy, &old, 0), &policy, now, 0).is_err());
        let ahead = OffsetDateTime::from(now + Duration::from_secs(600))
            .format(&Rfc3339)
            .unwrap();
        assert!(acceptable(&summary_at(&policy, &ahead, 0), &policy, now, 0).is_err());
        let mut failed = ok;
        failed.verification_result = "FAILED".into();
        assert!(acceptable(&failed, &policy, now, 0).is_err());
    }
}
