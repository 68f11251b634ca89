//! `modelseal verify-bundle`: the Sigstore checks for one artifact, as other Sigstore
//! clients offer them (message signatures and DSSE attestations alike).

use anyhow::{Context, Result, bail};
use modelseal_core::hash::{DigestAlgorithm, NoProgress, RangeJob, hash_ranges};
use modelseal_verify::{error_chain, keyless};
use serde_json::json;

use crate::Outcome;
use crate::cli::VerifyBundleArgs;
use crate::output::{out, out_report};

pub fn run(args: &VerifyBundleArgs) -> Result<Outcome> {
    let artifact = artifact_digest(&args.artifact)?;
    let digest = artifact.digest();
    let json = super::read_text(&args.bundle, "bundle")?;
    if args.key.is_some() && !carries_log_entry(&json) {
        let message = format!(
            "{} carries no transparency-log entry, and verify-bundle checks key-signed bundles by their log entry",
            args.bundle.display()
        );
        let hint = "a modelseal or model-signing signature made with a key is checked with `modelseal verify MODEL --signature BUNDLE --key PUB`";
        crate::eprintln_safe!("error: {message}\nhint: {hint}");
        if args.json {
            out_report(
                false,
                json!({
                    "verified": false,
                    "error": { "kind": "no-log-entry", "message": message, "hints": [hint] },
                }),
            );
        }
        return Ok(Outcome::Refused);
    }
    let result = match &args.key {
        Some(path) => {
            let key = super::load_public_key(path)?;
            let root = match &args.keyless.trusted_root {
                Some(p) => Some(super::read_text(p, "trusted root")?),
                None => None,
            };
            keyless::verify_key_json(&json, artifact, key.spki_der(), root.as_deref())
                .map(|time| (format!("key {}", key.fingerprint()), None, time))
        }
        None => {
            let trust = super::keyless_trust(&args.keyless)?
                .context("give --key, or --identity and --issuer")?;
            keyless::verify_keyless_json(&json, artifact, &trust).map(|s| {
                (
                    format!("{} from {}", s.identity, s.issuer),
                    Some(s.identity),
                    s.signed_at,
                )
            })
        }
    };
    let hex = hex::encode(digest);
    match result {
        Ok((signer, identity, signed_at)) => {
            // Read only now the signature is checked: the payload is what was signed.
            let predicate_type = signed_predicate_type(&json);
            if let Some(wanted) = &args.predicate_type {
                if predicate_type.as_deref() != Some(wanted.as_str()) {
                    let found = predicate_type
                        .as_deref()
                        .unwrap_or("none (a message signature)");
                    let message =
                        format!("the bundle's statement has predicate type {found}, not {wanted}");
                    crate::eprintln_safe!("error: {}: {message}", args.bundle.display());
                    if args.json {
                        out_report(
                            false,
                            json!({
                                "verified": false, "artifact": { "sha256": hex },
                                "predicateType": predicate_type,
                                "error": { "kind": "wrong-predicate-type", "message": message, "hints": [] },
                            }),
                        );
                    }
                    return Ok(Outcome::Refused);
                }
            }
            if args.json {
                out_report(
                    true,
                    json!({
                        "verified": true, "artifact": { "sha256": hex }, "signer": signer,
                        "identity": identity, "signedAt": signed_at,
                        "predicateType": predicate_type,
                    }),
                );
            } else {
                let time =
                    signed_at.map_or_else(String::new, |t| format!(", logged at Unix time {t}"));
                let what = predicate_type
                    .as_deref()
                    .map_or_else(String::new, |t| format!("\n  statement {t}"));
                out(&format!(
                    "verified sha256:{hex}\n  signer {signer}{time}{what}"
                ));
            }
            Ok(Outcome::Success)
        }
        Err(err) => {
            crate::eprintln_safe!("error: {}: {}", args.bundle.display(), error_chain(&err));
            if args.json {
                out_report(
                    false,
                    json!({
                        "verified": false, "artifact": { "sha256": hex },
                        "error": { "kind": err.kind(), "message": error_chain(&err), "hints": [] },
                    }),
                );
            }
            Ok(Outcome::Refused)
        }
    }
}

/// The predicate type of a DSSE bundle's in-toto statement (`None` for a message
/// signature). Only called once the bundle verified, so the payload is the signed one.
fn signed_predicate_type(json: &str) -> Option<String> {
    use base64::Engine as _;
    let bundle: serde_json::Value = serde_json::from_str(json).ok()?;
    let payload = bundle["dsseEnvelope"]["payload"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let statement: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    statement["predicateType"].as_str().map(str::to_owned)
}

/// Whether a bundle's JSON lists at least one transparency-log entry. Only a shortcut to
/// a clearer message: the full check still reads the bundle.
fn carries_log_entry(json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| {
            v["verificationMaterial"]["tlogEntries"]
                .as_array()
                .map(|a| !a.is_empty())
        })
        .unwrap_or(true)
}

/// `sha256:HEX`, or the SHA-256 of the named file.
fn artifact_digest(artifact: &str) -> Result<keyless::Artifact> {
    if let Some(hex) = artifact.strip_prefix("sha256:") {
        let bytes = hex::decode(hex).ok().filter(|b| b.len() == 32);
        let Some(bytes) = bytes else {
            bail!("{artifact:?} is not sha256: followed by 64 hex digits");
        };
        return Ok(keyless::Artifact::Digest(
            bytes.try_into().expect("length checked"),
        ));
    }
    // The user named this path: a link they name is followed, once, here.
    let path = std::fs::canonicalize(artifact)
        .with_context(|| format!("cannot read artifact {artifact}"))?;
    let meta =
        std::fs::metadata(&path).with_context(|| format!("cannot read artifact {artifact}"))?;
    let size = meta.len();
    let job = RangeJob {
        fs_path: path,
        start: 0,
        end: size,
        file_size: size,
        identity: Some(modelseal_core::open::FileId::of(&meta)),
    };
    let digest = hash_ranges(&[job], DigestAlgorithm::Sha256, &NoProgress)
        .with_context(|| format!("cannot hash artifact {artifact}"))?;
    Ok(keyless::Artifact::File(
        digest[0].clone().try_into().expect("SHA-256 is 32 bytes"),
    ))
}
