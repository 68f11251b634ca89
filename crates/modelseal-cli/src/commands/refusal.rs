//! How a refused verification is told: the error chain, its evidence line by line, a
//! hint where one helps, and the JSON report.

use modelseal_verify::VerifyError;
use serde_json::{Value, json};

use crate::cli::VerifyArgs;
use crate::output::out_json;

pub(super) fn report_refusal(args: &VerifyArgs, signature: &str, err: &VerifyError) {
    let mut stderr_lines = vec![format!("error: {signature}: {}", error_chain(err))];
    stderr_lines.extend(details(err).into_iter().map(|line| format!("  {line}")));
    stderr_lines.extend(hints(err).into_iter().map(|hint| format!("hint: {hint}")));
    eprintln!("{}", stderr_lines.join("\n"));
    if args.json {
        let mut report = json!({
            "verified": false,
            "model": args.model.display().to_string(),
            "signature": signature,
            "error": { "kind": err.kind(), "message": error_chain(err) },
        });
        if let VerifyError::Files(mismatch) = err {
            let modified: Vec<Value> = mismatch
                .modified
                .iter()
                .map(|m| {
                    let mut expected = serde_json::Map::new();
                    let mut found = serde_json::Map::new();
                    if let Some(size) = m.expected_size {
                        expected.insert("size".into(), size.into());
                    }
                    if let Some(size) = m.found_size {
                        found.insert("size".into(), size.into());
                    }
                    expected.insert(m.expected.algorithm.clone(), m.expected.hex.clone().into());
                    let found_hex = m.found.as_ref().map(|d| d.hex.clone());
                    found.insert(m.expected.algorithm.clone(), found_hex.into());
                    json!({ "path": m.path, "expected": expected, "found": found })
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
    modelseal_verify::error_chain(err)
}

pub(super) fn details(err: &VerifyError) -> Vec<String> {
    match err {
        VerifyError::Files(mismatch) => {
            let mut lines = Vec::new();
            let sized =
                |size: Option<u64>| size.map(|s| format!(" ({s} bytes)")).unwrap_or_default();
            for m in &mismatch.modified {
                let found = match &m.found {
                    Some(digest) => format!(
                        "{} {}{}",
                        digest.algorithm,
                        digest.short(),
                        sized(m.found_size)
                    ),
                    None => format!("{} bytes", m.found_size.unwrap_or_default()),
                };
                lines.push(format!(
                    "modified  {}: expected {} {}{}, found {found}",
                    m.path,
                    m.expected.algorithm,
                    m.expected.short(),
                    sized(m.expected_size)
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
