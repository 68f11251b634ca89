//! `modelseal verify --lineage`: run the lineage walk, print the tree, emit a VSA.

use std::path::Path;

use anyhow::{Context, Result, bail};
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
use modelseal_core::provenance::vsa_statement;
use modelseal_lineage::policy::LineagePolicy;
use modelseal_lineage::vsa::summary;
use modelseal_lineage::{Hop, LineageReport, verify_lineage};
use modelseal_verify::VerifiedModel;

use crate::cli::VerifyArgs;

pub fn check(
    args: &VerifyArgs,
    policy: &LineagePolicy,
    verified: &VerifiedModel,
) -> Result<LineageReport> {
    let store = args.store.as_deref().context("--lineage needs --store")?;
    walk(store, &args.registry, policy, verified)
}

/// The lineage walk from a model whose signature (and bytes) the caller verified.
pub fn walk(
    store: &str,
    registry: &crate::cli::RegistryArgs,
    policy: &LineagePolicy,
    verified: &VerifiedModel,
) -> Result<LineageReport> {
    if verified.root.as_blake3().is_none() {
        bail!(
            "lineage checks follow native (BLAKE3 manifest) signatures; this model is signed in the OMS format"
        );
    }
    let signer = policy
        .signer_name(
            &verified.signer,
            modelseal_lineage::policy::Role::ModelPublisher,
        )
        .map(str::to_owned)
        .unwrap_or_else(|| verified.signer.fingerprint.to_string());
    Ok(verify_lineage(
        verified.name.clone(),
        &verified.root,
        &verified.oci_manifest.into_iter().collect::<Vec<_>>(),
        signer,
        policy,
        &super::store::open(store, registry)?,
    ))
}

fn label(hop: &Hop) -> String {
    let kind = hop.kind.name();
    let digest = hop.digest_text();
    let short = digest.get(..19).unwrap_or(&digest);
    let verdict = match &hop.failure {
        None if hop.via_vsa => "ok (verification summary)".to_owned(),
        None => "ok".to_owned(),
        Some(failure) => format!("REFUSED: {failure}"),
    };
    let mut text = format!("{kind} {} {short}… {verdict}", hop.display_name());
    if !hop.signers.is_empty() {
        text.push_str(&format!(" [signed by {}]", hop.signers.join(", ")));
    }
    if !hop.builders.is_empty() {
        text.push_str(&format!(" [built by {}]", hop.builders.join(", ")));
    }
    if !hop.skipped.is_empty() {
        text.push_str(&format!(" [{} store files skipped]", hop.skipped.len()));
    }
    text
}

pub fn report_text(report: &LineageReport) -> String {
    fn walk(hop: &Hop, prefix: &str, last: bool, top: bool, lines: &mut Vec<String>) {
        let branch = if top {
            ""
        } else if last {
            "└─ "
        } else {
            "├─ "
        };
        lines.push(format!("{prefix}{branch}{}", label(hop)));
        let child_prefix = if top {
            prefix.to_owned()
        } else {
            format!("{prefix}{}", if last { "   " } else { "│  " })
        };
        for material in &hop.materials {
            lines.push(format!("{child_prefix}   · {material}"));
        }
        for (i, input) in hop.inputs.iter().enumerate() {
            walk(
                input,
                &child_prefix,
                i + 1 == hop.inputs.len(),
                false,
                lines,
            );
        }
    }
    let mut lines = vec!["lineage:".to_owned()];
    walk(&report.root, "  ", true, true, &mut lines);
    lines.push(if report.passed() {
        "lineage passed".into()
    } else {
        "lineage REFUSED".into()
    });
    lines.join("\n")
}

pub fn report_failure(report: &LineageReport) {
    if let Some((hop, failure)) = report.first_failure() {
        let line = format!(
            "error: lineage refused at {} {}: {failure}",
            hop.display_name(),
            hop.digest_text()
        );
        crate::eprintln_safe!("{}", crate::output::terminal_safe(&line));
    }
}

pub fn emit_vsa(
    report: &LineageReport,
    policy: &LineagePolicy,
    verified: &VerifiedModel,
    signer: &crate::signing::StatementSigner,
    out_path: &Path,
) -> Result<crate::signing::Issued> {
    if report.leans_on_summaries() {
        bail!(
            "a verification summary is made only from a full walk; this one accepted a hop on another summary (check again under a policy without [vsa] accept)"
        );
    }
    let name = verified.name.clone().unwrap_or_else(|| "model".into());
    let summary = summary(report, policy, std::time::SystemTime::now(), name.clone())
        .context("only a passed check gets a summary")?;
    let root = verified
        .root
        .as_blake3()
        .context("a VSA is about a native (BLAKE3 manifest) signature")?;
    let issued = signer.sign_native(vsa_statement(&name, &root, &summary), &root)?;
    write_atomic(
        out_path,
        &issued.bundle.to_json(),
        Visibility::Public,
        Overwrite::Allow,
    )
    .with_context(|| format!("cannot write {}", out_path.display()))?;
    Ok(issued)
}
