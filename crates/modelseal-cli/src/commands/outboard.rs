//! `modelseal outboard`: outboard trees for an already signed (native) model.

use anyhow::{Context, Result, bail};
use modelseal_core::statement::{MANIFEST_PREDICATE_TYPE, ManifestPredicate, Statement};
use modelseal_core::{Bundle, Manifest, outboard};

use crate::Outcome;
use crate::cli::OutboardArgs;
use crate::output::out;
use crate::usage;

pub fn run(args: &OutboardArgs) -> Result<Outcome> {
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| super::default_signature_path(&args.model));
    let bundle = Bundle::read(&signature)
        .with_context(|| format!("cannot read signature {}", signature.display()))?;
    let dir = outboard::outboard_dir(&signature);
    crate::output::check_new(&dir, "outboard directory", args.force)?;
    refuse_inside(&args.model, &dir)?;
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
    // Written to a fresh directory beside the target and renamed into place: a failure
    // (a file changed since signing, a full disk) leaves nothing half-written behind.
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".modelseal-outboard-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write outboards in {}", parent.display()))?;
    let written = outboard::write_all(model, manifest, staging.path())
        .with_context(|| format!("cannot write outboards for {}", model.display()))?;
    replace_dir(staging, &dir)
        .with_context(|| format!("cannot put the outboards at {}", dir.display()))?;
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

/// An outboard directory inside the model would be files the signature does not list,
/// and the model would fail its own verification.
pub fn refuse_inside(model: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    let (Ok(model), Some(parent)) = (std::fs::canonicalize(model), dir.parent()) else {
        return Ok(());
    };
    let parent = if parent.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        parent
    };
    if std::fs::canonicalize(parent).is_ok_and(|p| p.starts_with(&model)) {
        usage!(
            "the outboard directory {} would lie inside the model, unsigned; put the signature outside the model (--signature PATH)",
            dir.display()
        );
    }
    Ok(())
}

/// Moves the finished `staging` directory to `dir`, replacing what is there (an existing
/// one only under `--force`, checked before any work).
fn replace_dir(staging: tempfile::TempDir, dir: &std::path::Path) -> std::io::Result<()> {
    if dir.symlink_metadata().is_ok() {
        let old = tempfile::Builder::new()
            .prefix(".modelseal-outboard-old-")
            .tempdir_in(staging.path().parent().unwrap_or(std::path::Path::new(".")))?;
        let aside = old.path().join("previous");
        std::fs::rename(dir, &aside)?;
        if let Err(e) = std::fs::rename(staging.path(), dir) {
            let _ = std::fs::rename(&aside, dir);
            return Err(e);
        }
        let _ = staging.keep();
        drop(old); // removes the previous outboards
        return Ok(());
    }
    std::fs::rename(staging.path(), dir)?;
    let _ = staging.keep();
    Ok(())
}
