use anyhow::{Context, Result};
use modelseal_core::walk::WalkOptions;
use modelseal_core::{Bundle, BundleError};
use modelseal_verify::{SignatureFormat, VerifyError, VerifyOptions};
use serde_json::json;

use crate::Outcome;
use crate::cli::VerifyArgs;
use crate::output::{out, out_json};
use crate::progress::Bar;

pub fn run(args: &VerifyArgs) -> Result<Outcome> {
    // clap drops `--lineage`'s need for `--policy` when `--key` (which conflicts with
    // `--policy`) is given: a lineage check must never be skipped silently.
    if args.lineage && matches!(args.kind, crate::cli::Kind::Dataset) {
        anyhow::bail!(
            "--lineage walks a model's training lineage; verify a dataset with --kind dataset alone, or its lineage as an input of the model trained on it"
        );
    }
    if args.lineage && args.policy.is_none() {
        anyhow::bail!(
            "--lineage needs --policy: the lineage rules and every role's signers come from the policy, not from --key"
        );
    }
    let (policy, lineage_policy) = super::trust::trust(args)?;
    let model_text = args.model.display().to_string();
    let mut options = VerifyOptions::default();
    options.expected = args.expect;
    options.kind = Some(args.kind.into());
    let (verified, signature) = if modelseal_oci::Reference::is_oci(&model_text) {
        let verifier = super::trust::verifier(policy, lineage_policy.as_ref(), options);
        match super::oci::verify(args, &verifier)? {
            Some(found) => found,
            None => return Ok(Outcome::Refused),
        }
    } else {
        let signature = args
            .signature
            .clone()
            .unwrap_or_else(|| super::default_signature_path(&args.model));
        let ignore = args
            .ignore
            .iter()
            .map(|arg| super::resolve_ignore(&args.model, arg))
            .collect::<Result<_>>()?;
        options.walk = WalkOptions {
            ignore,
            exclude_files: vec![signature.clone()],
            ..WalkOptions::default()
        };
        options.ignore_unsigned_files = args.ignore_unsigned_files;
        options.allow_unlisted_empty_files = args.allow_unsigned_empty_files;
        let verifier = super::trust::verifier(policy, lineage_policy.as_ref(), options);
        let bar = Bar::new(args.quiet || args.json);
        let result = match Bundle::read(&signature) {
            Err(BundleError::Io(e)) => {
                return Err(e)
                    .with_context(|| format!("cannot read signature {}", signature.display()));
            }
            Err(e) => Err(VerifyError::Bundle(e)),
            Ok(bundle) => verifier.verify(&args.model, &bundle, &bar),
        };
        bar.finish();
        let signature = signature.display().to_string();
        match result {
            Ok(verified) => (verified, signature),
            Err(err) if !err.is_refusal() => {
                return Err(err)
                    .with_context(|| format!("cannot verify model {}", args.model.display()));
            }
            Err(err) => {
                super::refusal::report_refusal(args, &signature, &err);
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
    if args.json {
        let mut root = serde_json::Map::new();
        root.insert(
            verified.root.algorithm().name().to_owned(),
            verified.root.to_hex().into(),
        );
        out_json(&json!({
            // A refused lineage is a refused model, in the JSON as in the exit code.
            "verified": lineage.as_ref().is_none_or(|r| r.passed()),
            "format": format,
            "model": args.model.display().to_string(),
            "signature": signature,
            "name": verified.name,
            "root": root,
            "signer": {
                "algorithm": verified.signer.algorithm.to_string(),
                "fingerprint": verified.signer.fingerprint.to_string(),
                "certificate": verified.signer.certificate_subject,
                "identity": verified.signer.keyless.as_ref().map(|k| &k.identity),
                "issuer": verified.signer.keyless.as_ref().map(|k| &k.issuer),
                "signedAt": verified.signer.keyless.as_ref().and_then(|k| k.signed_at)
                    .or(verified.signer.timestamped_at.and_then(|t| i64::try_from(t).ok())),
                "logIndex": verified.signer.keyless.as_ref().and_then(|k| k.log_index),
            },
            "files": verified.files,
            "bytes": verified.bytes,
            "lineage": lineage.as_ref().map(|r| r.to_json()),
        }));
    } else {
        let counted = match verified.bytes {
            Some(bytes) => format!("{} files, {bytes} bytes", verified.files),
            None => format!("{} resources", verified.files),
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
        out(&format!(
            "verified {} ({format}, {counted})\n  subject {} {}\n  signer  {} {}{certificate}{timestamped}",
            args.model.display(),
            verified.name.as_deref().unwrap_or("(unnamed)"),
            verified.root,
            verified.signer.algorithm,
            verified.signer.fingerprint,
        ));
    }
    if let Some(report) = &lineage {
        if !args.json {
            out(&super::lineage::report_text(report));
        }
        if !report.passed() {
            super::lineage::report_failure(report);
            return Ok(Outcome::Refused);
        }
        if let Some(path) = &args.emit_vsa {
            let Some(policy) = &lineage_policy else {
                unreachable!("clap requires --policy with --lineage");
            };
            let signer = crate::cli::SignerArgs {
                key: args.vsa_key.clone(),
                keyless: args.vsa_keyless,
                identity_token: None,
                identity_token_file: args.vsa_identity_token_file.clone(),
                signing_config: args.vsa_signing_config.clone(),
                trusted_root: policy.sigstore_trusted_root.clone(),
                timestamp_url: None,
            };
            if signer.key.is_none() && !signer.keyless {
                anyhow::bail!("--emit-vsa needs --vsa-key or --vsa-keyless");
            }
            super::lineage::emit_vsa(report, policy, &verified, &signer, path)?;
        }
    }
    Ok(Outcome::Success)
}
