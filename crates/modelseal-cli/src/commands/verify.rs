use std::path::Path;

use anyhow::{Context, Result};
use modelseal_core::walk::WalkOptions;
use modelseal_core::{Bundle, BundleError};
use modelseal_verify::{TrustPolicy, VerifyError, verify_model};
use serde_json::{Value, json};

use crate::Outcome;
use crate::cli::VerifyArgs;
use crate::output::{out, out_json};
use crate::progress::Bar;

pub fn run(args: &VerifyArgs) -> Result<Outcome> {
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| super::default_signature_path(&args.model));
    let keys = args
        .keys
        .iter()
        .map(|path| super::load_public_key(path))
        .collect::<Result<Vec<_>>>()?;
    let policy = TrustPolicy::from_keys(keys);
    let ignore = args
        .ignore
        .iter()
        .map(|arg| super::resolve_ignore(&args.model, arg))
        .collect::<Result<_>>()?;
    let extra = WalkOptions {
        ignore,
        exclude_files: vec![signature.clone()],
        ..WalkOptions::default()
    };
    let bar = Bar::new(args.quiet || args.json);
    let result = match Bundle::read(&signature) {
        Err(BundleError::Io(e)) => {
            return Err(e)
                .with_context(|| format!("cannot read signature {}", signature.display()));
        }
        Err(e) => Err(VerifyError::Bundle(e)),
        Ok(bundle) => verify_model(&args.model, &bundle, &policy, &extra, &bar),
    };
    bar.finish();
    let verified = match result {
        Ok(verified) => verified,
        Err(err) if !err.is_refusal() => {
            return Err(err)
                .with_context(|| format!("cannot verify model {}", args.model.display()));
        }
        Err(err) => {
            report_refusal(args, &signature, &err);
            return Ok(Outcome::Refused);
        }
    };
    if args.json {
        out_json(&json!({
            "verified": true,
            "model": args.model.display().to_string(),
            "signature": signature.display().to_string(),
            "name": verified.name,
            "root": { "blake3": verified.root },
            "signer": {
                "algorithm": verified.signer.algorithm.to_string(),
                "fingerprint": verified.signer.fingerprint.to_string(),
            },
            "files": verified.files,
            "bytes": verified.bytes,
        }));
    } else {
        out(&format!(
            "verified {} ({} files, {} bytes)\n  subject {} blake3:{}\n  signer  {} {}",
            args.model.display(),
            verified.files,
            verified.bytes,
            verified.name.as_deref().unwrap_or("(unnamed)"),
            verified.root,
            verified.signer.algorithm,
            verified.signer.fingerprint,
        ));
    }
    Ok(Outcome::Success)
}

fn report_refusal(args: &VerifyArgs, signature: &Path, err: &VerifyError) {
    let mut stderr_lines = vec![format!(
        "error: {}: {}",
        signature.display(),
        error_chain(err)
    )];
    stderr_lines.extend(details(err).into_iter().map(|line| format!("  {line}")));
    stderr_lines.extend(hints(err).into_iter().map(|hint| format!("hint: {hint}")));
    eprintln!("{}", stderr_lines.join("\n"));
    if args.json {
        let mut report = json!({
            "verified": false,
            "model": args.model.display().to_string(),
            "signature": signature.display().to_string(),
            "error": { "kind": err.kind(), "message": error_chain(err) },
        });
        if let VerifyError::Files(mismatch) = err {
            let modified: Vec<Value> = mismatch
                .modified
                .iter()
                .map(|m| {
                    json!({
                        "path": m.path,
                        "expected": { "size": m.expected_size, "blake3": m.expected_blake3 },
                        "found": { "size": m.found_size, "blake3": m.found_blake3 },
                    })
                })
                .collect();
            report["modified"] = modified.into();
            report["missing"] = json!(mismatch.missing);
            report["unsigned"] = json!(mismatch.extra);
        }
        out_json(&report);
    }
}

pub(super) fn error_chain(err: &VerifyError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(super) fn details(err: &VerifyError) -> Vec<String> {
    match err {
        VerifyError::Files(mismatch) => {
            let mut lines = Vec::new();
            for m in &mismatch.modified {
                let found = match &m.found_blake3 {
                    Some(digest) => format!("blake3 {} ({} bytes)", digest.short(), m.found_size),
                    None => format!("{} bytes", m.found_size),
                };
                lines.push(format!(
                    "modified  {}: expected blake3 {} ({} bytes), found {found}",
                    m.path,
                    m.expected_blake3.short(),
                    m.expected_size
                ));
            }
            lines.extend(mismatch.missing.iter().map(|p| format!("missing   {p}")));
            lines.extend(mismatch.extra.iter().map(|p| format!("unsigned  {p}")));
            lines
        }
        VerifyError::UntrustedSigner { trusted, .. }
        | VerifyError::BadSignature { tried: trusted } => {
            trusted.iter().map(|f| format!("trusted key {f}")).collect()
        }
        _ => Vec::new(),
    }
}

fn hints(err: &VerifyError) -> Vec<&'static str> {
    match err {
        VerifyError::Files(mismatch)
            if !mismatch.extra.is_empty()
                && mismatch.modified.is_empty()
                && mismatch.missing.is_empty() =>
        {
            vec![
                "files were added after signing; remove them, or pass --ignore PATH if they are not part of the model",
            ]
        }
        VerifyError::Files(_) => {
            vec![
                "the model changed after signing; restore it from the release, or re-sign if the change is intended",
            ]
        }
        VerifyError::UntrustedSigner { .. } => {
            vec!["pass the signer's public key with --key if you trust it"]
        }
        VerifyError::BadSignature { .. } => {
            vec![
                "the signature or its signed statement was altered; fetch the bundle again from the release",
            ]
        }
        _ => Vec::new(),
    }
}
