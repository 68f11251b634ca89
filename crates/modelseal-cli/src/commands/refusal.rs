//! How a refused verification is told: the error chain, its evidence line by line, a
//! hint where one helps, and the JSON report.

use modelseal_lineage::policy::{LineagePolicy, Role, SignerId, role_name};
use modelseal_verify::VerifyError;
use serde_json::{Value, json};

use crate::cli::VerifyArgs;
use crate::output::out_report;

pub(super) fn report_refusal(args: &VerifyArgs, signature: &str, err: &VerifyError) {
    report_stderr(args, signature, err);
    if args.json {
        out_report(false, refusal_json(args, signature, err));
    }
}

/// The refusal, its evidence and hints, on stderr.
pub(super) fn report_stderr(args: &VerifyArgs, signature: &str, err: &VerifyError) {
    let mut stderr_lines = vec![format!("error: {signature}: {}", error_chain(err))];
    stderr_lines.extend(details(err).into_iter().map(|line| format!("  {line}")));
    stderr_lines.extend(
        hints(args, err)
            .into_iter()
            .map(|hint| format!("hint: {hint}")),
    );
    crate::eprintln_safe!("{}", stderr_lines.join("\n"));
}

/// The `--json` report of a refusal (spec/cli.md).
pub(super) fn refusal_json(args: &VerifyArgs, signature: &str, err: &VerifyError) -> Value {
    {
        let mut report = json!({
            "verified": false,
            "model": args.model.display().to_string(),
            "signature": signature,
            "error": { "kind": err.kind(), "message": error_chain(err), "hints": hints(args, err) },
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
        report
    }
}

pub(super) fn error_chain(err: &VerifyError) -> String {
    modelseal_verify::error_chain(err)
}

/// A file name as a terminal may show it: control characters (a newline, an escape
/// sequence) in a planted name would otherwise draw lines modelseal never wrote, such as a
/// fake "verified". They are shown escaped, as `\n` or `\u{1b}`; JSON keeps the name as is.
pub(super) fn printable(name: &str) -> String {
    if !name.chars().any(char::is_control) {
        return name.to_owned();
    }
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
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
                    printable(&m.path.to_string()),
                    m.expected.algorithm,
                    m.expected.short(),
                    sized(m.expected_size)
                ));
            }
            lines.extend(
                (mismatch.missing.iter())
                    .map(|p| format!("missing   {}", printable(&p.to_string()))),
            );
            lines.extend(
                (mismatch.extra.iter()).map(|p| format!("unsigned  {}", printable(&p.to_string()))),
            );
            lines
        }
        VerifyError::UntrustedSigner { trusted, .. }
        | VerifyError::BadSignature { tried: trusted } => {
            trusted.iter().map(|f| format!("trusted key {f}")).collect()
        }
        _ => Vec::new(),
    }
}

fn hints(args: &VerifyArgs, err: &VerifyError) -> Vec<String> {
    if let (VerifyError::UntrustedSigner { hint, .. }, Some(path)) = (err, &args.policy) {
        return vec![policy_hint(path, hint, super::trust::role_of(args.kind))];
    }
    let hints: Vec<&str> = match err {
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
        VerifyError::NoSignatures => {
            vec!["the bundle carries no signature; fetch it again from the release"]
        }
        VerifyError::BadSignature { .. } => {
            vec![
                "the signature or its signed statement was altered; fetch the bundle again from the release",
            ]
        }
        _ => Vec::new(),
    };
    hints.into_iter().map(str::to_owned).collect()
}

/// Under a policy the way to trust a signer is the policy, not `--key`; and a key the
/// policy trusts in another role is named, with its roles.
fn policy_hint(path: &std::path::Path, hint: &str, role: Role) -> String {
    let wanted = role_name(role);
    let Ok(policy) = LineagePolicy::read(path) else {
        return format!(
            "add the signer to the policy as a [[signer]] with roles = [\"{wanted}\"] if you trust it"
        );
    };
    let other_role = policy.signers.iter().find(|s| match &s.id {
        SignerId::Keys(keys) => keys.iter().any(|key| key.matches_hint(hint)),
        _ => false,
    });
    match other_role {
        Some(signer) => {
            let roles: Vec<&str> = signer.roles.iter().map(|r| role_name(*r)).collect();
            format!(
                "the policy trusts this key as signer \"{}\" with roles {}, not {wanted}; add \"{wanted}\" to its roles if it should sign here",
                signer.name,
                roles.join(", ")
            )
        }
        None => format!(
            "the policy {} trusts no such key; add it as a [[signer]] with roles = [\"{wanted}\"] if you trust it",
            path.display()
        ),
    }
}
