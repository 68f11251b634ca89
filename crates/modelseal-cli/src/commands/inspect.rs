use anyhow::{Context, Result};
use modelseal_core::Bundle;
use modelseal_core::statement::{MANIFEST_PREDICATE_TYPE, ManifestPredicate, Statement};
use serde_json::json;

use crate::Outcome;
use crate::cli::InspectArgs;
use crate::output::{out, out_report};

/// Shows a bundle's claims. Nothing here is verified, and the output says so.
pub fn run(args: &InspectArgs) -> Result<Outcome> {
    if modelseal_oci::Reference::is_oci(&args.signature.display().to_string()) {
        return super::oci::inspect(args);
    }
    let bundle = Bundle::read(&args.signature)
        .with_context(|| format!("cannot inspect {}", args.signature.display()))?;
    let envelope = &bundle.dsse_envelope;
    let statement: Statement = serde_json::from_slice(&envelope.payload)
        .context("the payload is not an in-toto statement")?;
    let hint = bundle
        .verification_material
        .public_key
        .as_ref()
        .and_then(|k| k.hint.clone());
    let manifest: Option<ManifestPredicate> = (statement.predicate_type == MANIFEST_PREDICATE_TYPE)
        .then(|| serde_json::from_value(statement.predicate.clone()).ok())
        .flatten();
    if args.json {
        out_report(
            true,
            json!({
                "verified": false,
                "mediaType": bundle.media_type,
                "payloadType": envelope.payload_type,
                "signatures": envelope.signatures.len(),
                "keyHint": hint,
                "statementType": statement.statement_type,
                "predicateType": statement.predicate_type,
                "subject": statement.subject,
                "predicate": statement.predicate,
            }),
        );
        return Ok(Outcome::Success);
    }
    let mut lines = vec![
        format!(
            "{} (not verified: inspect only reads the claims)",
            args.signature.display()
        ),
        format!("  bundle     {}", bundle.media_type),
        format!("  payload    {}", envelope.payload_type),
        format!("  signatures {}", envelope.signatures.len()),
        format!(
            "  signer     {}",
            hint.map_or_else(
                || "(no key hint)".to_owned(),
                |h| format!("key hint {h} (unverified)")
            )
        ),
        format!("  statement  {}", statement.statement_type),
        format!("  predicate  {}", statement.predicate_type),
    ];
    for subject in &statement.subject {
        let digests: Vec<String> = subject
            .digest
            .iter()
            .map(|(alg, hex)| format!("{alg}:{hex}"))
            .collect();
        lines.push(format!(
            "  subject    {} {}",
            subject.name.as_deref().unwrap_or("(unnamed)"),
            digests.join(" ")
        ));
    }
    if let Some(predicate) = manifest {
        // Sizes are unverified claims here: add them without overflow.
        let total = predicate
            .files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.size))
            .map_or_else(|| "more than 2^64".to_owned(), |t| t.to_string());
        lines.push(format!(
            "  kind       {}",
            serde_json::to_value(predicate.kind)?
                .as_str()
                .unwrap_or("?")
        ));
        if !predicate.ignore_paths.is_empty() {
            let ignored: Vec<&str> = predicate.ignore_paths.iter().map(|p| p.as_str()).collect();
            lines.push(format!("  ignored    {}", ignored.join(", ")));
        }
        lines.push(format!(
            "  files      {} ({total} bytes)",
            predicate.files.len()
        ));
        for file in &predicate.files {
            lines.push(format!(
                "    {}  {:>12}  {}",
                file.blake3, file.size, file.path
            ));
        }
    }
    out(&lines.join("\n"));
    Ok(Outcome::Success)
}
