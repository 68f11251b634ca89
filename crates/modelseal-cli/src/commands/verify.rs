use anyhow::{Context, Result};
use modelseal_core::walk::WalkOptions;
use modelseal_core::{Bundle, BundleError};
use modelseal_verify::{SignatureFormat, VerifyError, VerifyOptions};
use serde_json::json;

use crate::Outcome;
use crate::cli::VerifyArgs;
use crate::output::{out, out_report};
use crate::progress::Bar;
use crate::usage;

pub fn run(args: &VerifyArgs) -> Result<Outcome> {
    resolve_flags(args)?;
    let (policy, lineage_policy) = super::trust::trust(args)?;
    if let (Some(_), Some(path)) = (&lineage_policy, &args.policy) {
        let role = super::trust::role_of(args.kind);
        if policy.keys().is_empty() && policy.keyless().is_none() {
            let role = modelseal_lineage::policy::role_name(role);
            usage!(
                format!(
                    "policy {} names no signer with the role {role}, so nothing could verify",
                    path.display()
                );
                hint = format!("add a [[signer]] with roles = [\"{role}\"] to the policy")
            );
        }
    }
    // The summary's signer is loaded before any hashing: a wrong passphrase or a missing
    // token should not cost a full check first.
    let vsa_signer = match (&args.emit_vsa, &lineage_policy) {
        (Some(path), Some(policy)) => {
            crate::output::check_new(path, "verification summary", args.force)?;
            let signer = crate::cli::SignerArgs {
                key: args.vsa_key.clone(),
                keyless: args.vsa_keyless,
                identity_token: None,
                identity_token_file: args.vsa_identity_token_file.clone(),
                signing_config: args.vsa_signing_config.clone(),
                trusted_root: policy.sigstore_trusted_root.clone(),
                timestamp_url: None,
            };
            Some(crate::signing::StatementSigner::from_args(&signer)?)
        }
        _ => None,
    };
    let model_text = args.model.display().to_string();
    let mut options = VerifyOptions::default();
    options.expected = args.expect;
    options.kind = Some(args.kind.into());
    let mut uncounted: Vec<(String, VerifyError)> = Vec::new();
    let (verified, signature) = if modelseal_oci::Reference::is_oci(&model_text) {
        if args.signature.len() > 1 {
            usage!(
                "co-signatures of an oci:// model are read from its referrers; give at most one --signature";
                hint = "attach each signer's bundle with `modelseal sign oci://…` and leave out --signature"
            );
        }
        let verifier = super::trust::verifier(policy, lineage_policy.as_ref(), options);
        match super::oci::verify(args, &verifier)? {
            Some(found) => found,
            None => return Ok(Outcome::Refused),
        }
    } else {
        let signatures = signature_paths(args)?;
        check_model_argument(args, &signatures[0])?;
        let ignore = args
            .ignore
            .iter()
            .map(|arg| super::resolve_ignore(&args.model, arg))
            .collect::<Result<_>>()?;
        options.walk = WalkOptions {
            ignore,
            exclude_files: signatures.clone(),
            ..WalkOptions::default()
        };
        options.ignore_unsigned_files = args.ignore_unsigned_files;
        options.allow_unlisted_empty_files = args.allow_unsigned_empty_files;
        let verifier = super::trust::verifier(policy, lineage_policy.as_ref(), options);
        // Every bundle is read before any file is hashed; one that is not a bundle at
        // all is simply one that does not count.
        let mut bundles = Vec::new();
        let mut named = Vec::new();
        for path in &signatures {
            match Bundle::read(path) {
                Err(BundleError::Io(e)) => {
                    return Err(e)
                        .with_context(|| format!("cannot read signature {}", path.display()));
                }
                Err(e) => uncounted.push((path.display().to_string(), VerifyError::Bundle(e))),
                Ok(bundle) => {
                    bundles.push(bundle);
                    named.push(path.display().to_string());
                }
            }
        }
        let all_names = signatures
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let bar = Bar::new(args.json);
        let result = if bundles.is_empty() {
            Err(uncounted.remove(0).1)
        } else {
            verifier.verify_all(&args.model, &bundles, &bar)
        };
        bar.finish();
        match result {
            Ok(cosigned) => {
                uncounted.extend(
                    cosigned
                        .uncounted
                        .into_iter()
                        .map(|(i, e)| (named[i].clone(), e)),
                );
                (cosigned.model, all_names)
            }
            Err(err) if !err.is_refusal() => {
                return Err(err)
                    .with_context(|| format!("cannot verify model {}", args.model.display()));
            }
            Err(err) => {
                let shown = if signatures.len() == 1 {
                    all_names
                } else {
                    named.first().cloned().unwrap_or(all_names)
                };
                super::refusal::report_refusal(args, &shown, &err);
                return Ok(Outcome::Refused);
            }
        }
    };
    let format = match verified.format {
        SignatureFormat::Native => "native",
        SignatureFormat::Oms => "oms",
        _ => "oms-legacy",
    };
    let lineage = match (&lineage_policy, args.lineage) {
        (Some(lineage_policy), true) => {
            Some(super::lineage::check(args, lineage_policy, &verified)?)
        }
        _ => None,
    };
    let passed = lineage.as_ref().is_none_or(|r| r.passed());
    let vsa = match (&vsa_signer, &lineage, &lineage_policy, &args.emit_vsa) {
        (Some(signer), Some(report), Some(policy), Some(path)) if passed => Some(
            super::lineage::emit_vsa(report, policy, &verified, signer, path)?,
        ),
        _ => None,
    };
    if args.json {
        let mut root = serde_json::Map::new();
        root.insert(
            verified.root.algorithm().name().to_owned(),
            verified.root.to_hex().into(),
        );
        let mut report = json!({
            // A refused lineage is a refused model, in the JSON as in the exit code.
            "verified": passed,
            "format": format,
            "model": args.model.display().to_string(),
            "signature": signature,
            "name": verified.name,
            "root": root,
            "signer": signer_json(&verified.signer),
            "signers": verified.signers.iter().map(signer_json).collect::<Vec<_>>(),
            "signerCount": verified.signer_count.as_ref().map(signer_count_json),
            "uncounted": uncounted.iter().map(|(path, err)| json!({
                "signature": path,
                "kind": err.kind(),
                "message": modelseal_verify::error_chain(err),
            })).collect::<Vec<_>>(),
            "files": verified.files,
            "bytes": verified.bytes,
            "lineage": lineage.as_ref().map(|r| r.to_json()),
        });
        if let (Some(issued), Some(path)) = (&vsa, &args.emit_vsa) {
            report["verificationSummary"] =
                json!({ "path": path.display().to_string(), "signer": issued.signer_json });
        }
        if let Some((hop, failure)) = lineage.as_ref().and_then(|r| r.first_failure()) {
            report["error"] = json!({
                "kind": "lineage-refused",
                "message": format!("lineage refused at {} {}: {failure}", hop.display_name(), hop.digest_text()),
                "hints": [],
            });
        }
        out_report(passed, report);
    } else {
        let counted = match verified.bytes {
            Some(bytes) => format!(
                "{}, {}",
                crate::output::count(verified.files as u64, "file", "files"),
                crate::output::count(bytes, "byte", "bytes")
            ),
            None => crate::output::count(verified.files as u64, "resource", "resources"),
        };
        let certificate = match (
            &verified.signer.certificate_subject,
            &verified.signer.keyless,
        ) {
            (Some(subject), _) => format!(" (certificate {subject})"),
            (None, Some(k)) => format!(
                "\n  identity {} from {}, logged at {}",
                k.identity,
                k.issuer,
                k.signed_at.map_or_else(
                    || "an unknown time".to_owned(),
                    |t| format!("Unix time {t}")
                )
            ),
            (None, None) => String::new(),
        };
        let timestamped = verified
            .signer
            .timestamped_at
            .map(|t| format!("\n  timestamped at Unix time {t} (RFC 3161, trusted authority)"))
            .unwrap_or_default();
        // A refused lineage refuses the model: no line of the output may start with
        // "verified" then (scripts grep for it), though the signature itself did verify.
        let head = if passed {
            "verified"
        } else {
            "refused (lineage; the signature alone verifies)"
        };
        out(&format!(
            "{head} {} ({format}, {counted})\n  subject {} {}\n  signer  {} {}{certificate}{timestamped}",
            args.model.display(),
            verified.name.as_deref().unwrap_or("(unnamed)"),
            verified.root,
            verified.signer.algorithm,
            verified.signer.fingerprint,
        ));
        if verified.signers.len() > 1 {
            let others: Vec<String> = verified.signers[1..]
                .iter()
                .map(|s| format!("  co-signer {} {}", s.algorithm, s.fingerprint))
                .collect();
            out(&others.join("\n"));
        }
        if let Some(count) = &verified.signer_count {
            out(&format!("  signers {}", count.describe()));
        }
        for (path, err) in &uncounted {
            out(&format!(
                "  not counted {path}: {}",
                modelseal_verify::error_chain(err)
            ));
        }
        if let Some(report) = &lineage {
            out(&super::lineage::report_text(report));
        }
        if let (Some(issued), Some(path)) = (&vsa, &args.emit_vsa) {
            out(&format!(
                "wrote verification summary {}\n  signer  {}",
                path.display(),
                issued.signer_text
            ));
        }
    }
    if let Some(report) = &lineage {
        if !report.passed() {
            super::lineage::report_failure(report);
            return Ok(Outcome::Refused);
        }
    }
    Ok(Outcome::Success)
}

/// The common slips with a model argument, told as such before anything is hashed: a
/// model that is not there (not "a missing signature"), and a signature given where the
/// model goes.
/// The `signer` object of every verifying report (`verify`, `pull`): one shape.
pub(super) fn signer_json(signer: &modelseal_verify::Signer) -> serde_json::Value {
    let keyless = signer.keyless.as_ref();
    json!({
        "algorithm": signer.algorithm.to_string(),
        "fingerprint": signer.fingerprint.to_string(),
        "certificate": signer.certificate_subject,
        "identity": keyless.map(|k| &k.identity),
        "issuer": keyless.map(|k| &k.issuer),
        "signedAt": keyless
            .and_then(|k| k.signed_at)
            .or(signer.timestamped_at.and_then(|t| i64::try_from(t).ok())),
        "logIndex": keyless.and_then(|k| k.log_index),
    })
}

/// The `signerCount` object of a report: the policy's threshold, who counted, who did not.
pub(super) fn signer_count_json(count: &modelseal_verify::SignerCount) -> serde_json::Value {
    json!({
        "threshold": count.threshold,
        "counted": count.counted,
        "missing": count.missing.iter().map(|(name, why)| json!({"name": name, "why": why})).collect::<Vec<_>>(),
    })
}

/// The signatures to check: those named, else `MODEL.sig` and every `MODEL.NAME.sig`
/// beside the model (co-signatures, one signer each), in name order. `MODEL.sig` leads
/// even when missing and nothing else is there, so its absence is what is reported.
fn signature_paths(args: &VerifyArgs) -> Result<Vec<std::path::PathBuf>> {
    if !args.signature.is_empty() {
        return Ok(args.signature.clone());
    }
    let primary = super::default_signature_path(&args.model);
    let mut found = Vec::new();
    if let (Some(dir), Some(model_name)) = (primary.parent(), args.model.file_name()) {
        let dir = if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        };
        use std::os::unix::ffi::OsStrExt as _;
        let mut prefix = model_name.as_bytes().to_vec();
        prefix.push(b'.');
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let bytes = name.as_bytes();
                let is_cosignature = bytes.len() > prefix.len() + ".sig".len()
                    && bytes.starts_with(&prefix)
                    && bytes.ends_with(b".sig")
                    && entry.file_type().is_ok_and(|t| t.is_file());
                if is_cosignature {
                    found.push(primary.with_file_name(&name));
                }
            }
        }
    }
    found.sort();
    if primary.exists() || found.is_empty() {
        found.insert(0, primary);
    }
    // Whoever can write beside the model decides how many files are found: their number
    // and size are bounded before any is read, as every bundle is held while hashing.
    let bytes: u64 = found
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    if found.len() > MAX_DISCOVERED_SIGNATURES || bytes > MAX_DISCOVERED_BYTES {
        usage!(
            format!(
                "{} signature files ({} bytes) beside {}: more than the {MAX_DISCOVERED_SIGNATURES} files and {} MiB read without being named",
                found.len(),
                bytes,
                args.model.display(),
                MAX_DISCOVERED_BYTES >> 20
            );
            hint = "name the signatures to check with --signature (repeatable)"
        );
    }
    Ok(found)
}

/// At most this many `MODEL.sig`/`MODEL.*.sig` files are read when none is named.
const MAX_DISCOVERED_SIGNATURES: usize = 32;
/// And at most this many bytes of them together.
const MAX_DISCOVERED_BYTES: u64 = 256 << 20;

fn check_model_argument(args: &VerifyArgs, signature: &std::path::Path) -> Result<()> {
    super::require_model(&args.model)?;
    if args.signature.is_empty() && !signature.exists() && args.model.is_file() {
        let bundle = std::fs::File::open(&args.model)
            .ok()
            .and_then(|f| {
                use std::io::Read as _;
                let mut head = Vec::new();
                f.take(4096).read_to_end(&mut head).ok().map(|_| head)
            })
            .is_some_and(|head| {
                String::from_utf8_lossy(&head).contains("application/vnd.dev.sigstore.bundle")
            });
        if bundle {
            usage!(
                format!("{} is a signature bundle, not a model", args.model.display());
                hint = format!(
                    "give the model and name the bundle: modelseal verify MODEL --signature {}",
                    args.model.display()
                )
            );
        }
    }
    Ok(())
}

/// Refuses, before anything is read, flag combinations that would skip a check the user
/// asked for or leave a flag unused.
fn resolve_flags(args: &VerifyArgs) -> Result<()> {
    // clap drops `--lineage`'s need for `--policy` when `--key` (which conflicts with
    // `--policy`) is given: a lineage check must never be skipped silently.
    if args.lineage && matches!(args.kind, crate::cli::Kind::Dataset) {
        usage!(
            "--lineage walks a model's training lineage; verify a dataset with --kind dataset alone, or its lineage as an input of the model trained on it"
        );
    }
    if args.lineage && args.policy.is_none() {
        usage!(
            "--lineage needs --policy: the lineage rules and every role's signers come from the policy, not from --key"
        );
    }
    if args.store.is_some() && !args.lineage {
        usage!("--store is read only for --lineage; add --lineage, or drop --store");
    }
    if args.emit_vsa.is_some() && args.vsa_key.is_none() && !args.vsa_keyless {
        usage!("--emit-vsa needs --vsa-key or --vsa-keyless to sign the summary");
    }
    super::refuse_key_with_identity(&args.keys, &args.keyless)?;
    if args.lenient_certificate_time && args.certificate_roots.is_empty() && args.policy.is_none() {
        usage!(
            "--lenient-certificate-time applies to certificate-signed bundles; add --certificate-root, or drop it"
        );
    }
    Ok(())
}
