//! `modelseal outboard`: outboard trees for an already signed (native) model.

use anyhow::{Context, Result, bail};
use modelseal_core::statement::{MANIFEST_PREDICATE_TYPE, ManifestPredicate, Statement};
use modelseal_core::{Bundle, Manifest, outboard};

use crate::Outcome;
use crate::cli::OutboardArgs;
use crate::output::out;

pub fn run(args: &OutboardArgs) -> Result<Outcome> {
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| super::default_signature_path(&args.model));
    let bundle = Bundle::read(&signature)
        .with_context(|| format!("cannot read signature {}", signature.display()))?;
    crate::output::check_new(
        &outboard::outboard_dir(&signature),
        "outboard directory",
        args.force,
    )?;
    // The manifest is taken unverified: each outboard is checked against it here, and
    // every read checks the outboard against the manifest the loader verified. The
    // predicate type first, so that another kind of signature is named as such.
    let not_native = || {
        format!(
            "{} does not hold a native manifest ({MANIFEST_PREDICATE_TYPE})",
            signature.display()
        )
    };
    let untyped: Statement<serde_json::Value> =
        serde_json::from_slice(&bundle.dsse_envelope.payload)
            .ok()
            .with_context(not_native)?;
    if untyped.predicate_type != MANIFEST_PREDICATE_TYPE {
        bail!(
            "outboards serve native signatures; {} holds {}",
            signature.display(),
            untyped.predicate_type
        );
    }
    let statement: Statement<ManifestPredicate> =
        serde_json::from_slice(&bundle.dsse_envelope.payload)
            .ok()
            .with_context(not_native)?;
    let manifest = Manifest::from_sorted(statement.predicate.files)
        .context("the signed manifest is invalid")?;
    out(&write(&args.model, &manifest, &signature)?.text);
    Ok(Outcome::Success)
}

/// The outboard trees written for a model.
pub struct Outboards {
    pub dir: std::path::PathBuf,
    /// One line for the human summary.
    pub text: String,
}

/// Writes the outboards of `manifest` for `model` beside `signature`.
pub fn write(
    model: &std::path::Path,
    manifest: &Manifest,
    signature: &std::path::Path,
) -> Result<Outboards> {
    let dir = outboard::outboard_dir(signature);
    let written = outboard::write_all(model, manifest, &dir)
        .with_context(|| format!("cannot write outboards for {}", model.display()))?;
    let data: u64 = manifest
        .entries()
        .iter()
        .filter(|e| e.size > outboard::BLOCK_BYTES)
        .map(|e| e.size)
        .sum();
    let overhead: u64 = manifest
        .entries()
        .iter()
        .filter(|e| e.size > outboard::BLOCK_BYTES)
        .map(|e| outboard::tree(e.size).outboard_size())
        .sum();
    let text = format!(
        "wrote {} to {} ({overhead} bytes for {data} bytes of data)",
        crate::output::count(written as u64, "outboard tree", "outboard trees"),
        dir.display()
    );
    Ok(Outboards { dir, text })
}
