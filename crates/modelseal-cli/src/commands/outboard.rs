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
    // The manifest is taken unverified: each outboard is checked against it here, and
    // every read checks the outboard against the manifest the loader verified.
    let statement: Statement<ManifestPredicate> =
        serde_json::from_slice(&bundle.dsse_envelope.payload).with_context(|| {
            format!(
                "{} does not hold a native manifest ({MANIFEST_PREDICATE_TYPE})",
                signature.display()
            )
        })?;
    if statement.predicate_type != MANIFEST_PREDICATE_TYPE {
        bail!(
            "outboards serve native signatures; {} is {}",
            signature.display(),
            statement.predicate_type
        );
    }
    let manifest = Manifest::from_sorted(statement.predicate.files)
        .context("the signed manifest is invalid")?;
    write(&args.model, &manifest, &signature)
}

/// Writes the outboards of `manifest` for `model` beside `signature`.
pub fn write(
    model: &std::path::Path,
    manifest: &Manifest,
    signature: &std::path::Path,
) -> Result<Outcome> {
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
    out(&format!(
        "wrote {written} outboard trees to {} ({overhead} bytes for {data} bytes of data)",
        dir.display()
    ));
    Ok(Outcome::Success)
}
