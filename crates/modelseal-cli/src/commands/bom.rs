//! `modelseal bom`: verify the model and its lineage, then write what was verified as a
//! CycloneDX ML-BOM or an SPDX 3 document, optionally signed into the store.

use anyhow::{Context, Result, bail};
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
use modelseal_core::provenance::{CYCLONEDX_PREDICATE_TYPE, SPDX3_PREDICATE_TYPE, bom_statement};
use modelseal_core::statement::MANIFEST_PREDICATE_TYPE;
use modelseal_core::walk::WalkOptions;
use modelseal_core::{Blake3Digest, Bundle, BundleError};
use modelseal_lineage::SignedBy;
use modelseal_lineage::bom::{BomInput, ModelCard, ModelFile, cyclonedx, spdx};
use modelseal_lineage::policy::LineagePolicy;
use modelseal_verify::loader::ModelReader;
use modelseal_verify::{SignatureFormat, VerifyError, VerifyOptions};

use crate::Outcome;
use crate::cli::{BomArgs, BomFormat};
use crate::output::out;
use crate::progress::Bar;

/// The largest model card read (a card is text; anything bigger is not one).
const MAX_CARD_BYTES: u64 = 1 << 20;

pub fn run(args: &BomArgs) -> Result<Outcome> {
    if args.sign_key.is_some() && args.allow_refused {
        crate::usage!(
            "--sign-key puts the BOM into the store as a signed attestation, and --allow-refused can make one for a refused lineage";
            hint = "drop one of them: sign only a BOM whose lineage passed"
        );
    }
    if let Some(path) = &args.out {
        crate::output::check_new(path, "BOM", args.force)?;
    }
    // The BOM's signer before any hashing: a wrong passphrase should not cost a full check.
    let bom_signer = match &args.sign_key {
        Some(key) => Some(crate::signing::StatementSigner::from_args(
            &crate::cli::SignerArgs {
                key: Some(key.to_path_buf()),
                keyless: false,
                identity_token: None,
                identity_token_file: None,
                signing_config: None,
                trusted_root: None,
                timestamp_url: None,
            },
        )?),
        None => None,
    };
    let policy = LineagePolicy::read(&args.policy)
        .with_context(|| format!("policy {}", args.policy.display()))?;
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| super::default_signature_path(&args.model));
    let ignore = args
        .ignore
        .iter()
        .map(|arg| super::resolve_ignore(&args.model, arg))
        .collect::<Result<_>>()?;
    let mut options = VerifyOptions::default();
    options.walk = WalkOptions {
        ignore,
        exclude_files: vec![signature.clone()],
        ..WalkOptions::default()
    };
    let verifier = policy.verifier(options);
    let bundle = match Bundle::read(&signature) {
        Err(BundleError::Io(e)) => {
            return Err(e)
                .with_context(|| format!("cannot read signature {}", signature.display()));
        }
        Err(e) => return refused(args, &signature, &VerifyError::Bundle(e)),
        Ok(bundle) => bundle,
    };
    // Every byte first: a BOM describes this model only if these are its signed bytes.
    let bar = Bar::new(false);
    let verified = verifier.verify(&args.model, &bundle, &bar);
    bar.finish();
    let verified = match verified {
        Ok(verified) => verified,
        Err(err) if !err.is_refusal() => {
            return Err(err)
                .with_context(|| format!("cannot verify model {}", args.model.display()));
        }
        Err(err) => return refused(args, &signature, &err),
    };
    if verified.format != SignatureFormat::Native {
        bail!(
            "a BOM follows the lineage, which needs a native (BLAKE3 manifest) signature; this model is signed in the OMS format"
        );
    }
    let report = super::lineage::walk(&args.store, &args.registry, &policy, &verified)?;
    if !report.passed() && !args.allow_refused {
        super::lineage::report_failure(&report);
        crate::eprintln_safe!(
            "hint: --allow-refused writes the BOM with the refused hops marked so"
        );
        if args.json {
            crate::output::out_report(false, lineage_refused_json(args, &report));
        }
        return Ok(Outcome::Refused);
    }
    // The manifest and the card, read through the verified loader: the card's bytes are
    // checked against the signed root as they are read, so a card changed since the
    // pass above is refused rather than described.
    let reader = verifier
        .open(&args.model, &bundle, None)
        .with_context(|| format!("cannot reopen model {}", args.model.display()))?;
    let modelseal_verify::SignedModel::Native { manifest, .. } =
        verifier.read_signature(&bundle)?
    else {
        bail!("a BOM needs a native (BLAKE3 manifest) signature");
    };
    let files: Vec<ModelFile> = manifest
        .manifest
        .entries()
        .iter()
        .map(|e| ModelFile {
            path: e.path.to_string(),
            size: e.size,
            blake3: e.blake3.to_hex(),
        })
        .collect();
    let card = model_card(args, &reader, &files)?;
    let signer_name = policy
        .signer_name(
            &verified.signer,
            modelseal_lineage::policy::Role::ModelPublisher,
        )
        .map_or_else(|| verified.signer.fingerprint.to_string(), str::to_owned);
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).context("no randomness for the BOM's serial number")?;
    let created = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the time")?;
    let input = BomInput {
        report: &report,
        files,
        signature: SignedBy::new(
            MANIFEST_PREDICATE_TYPE,
            "model-publisher",
            signer_name,
            verified.signer.clone(),
        ),
        card,
        created,
        serial,
        tool_version: env!("CARGO_PKG_VERSION"),
    };
    let (bom, predicate_type) = match args.format {
        BomFormat::Cyclonedx => (cyclonedx::document(&input), CYCLONEDX_PREDICATE_TYPE),
        BomFormat::Spdx => (spdx::document(&input), SPDX3_PREDICATE_TYPE),
    };
    let mut text = serde_json::to_string_pretty(&bom).context("serializing the BOM")?;
    text.push('\n');
    match &args.out {
        Some(path) => {
            write_atomic(path, text.as_bytes(), Visibility::Public, Overwrite::Allow)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if !args.json {
                crate::note!("wrote {}", path.display());
            }
        }
        None => out(text.trim_end()),
    }
    let signed = match &bom_signer {
        Some(signer) => Some(sign_into_store(
            args,
            signer,
            &manifest.root,
            verified.name.as_deref(),
            predicate_type,
            bom,
        )?),
        None => None,
    };
    if !report.passed() {
        super::lineage::report_failure(&report);
        if args.json {
            crate::output::out_report(false, lineage_refused_json(args, &report));
        }
        return Ok(Outcome::Refused);
    }
    if args.json {
        crate::output::out_report(
            true,
            serde_json::json!({
                "model": args.model.display().to_string(),
                "format": predicate_type,
                "out": args.out.as_ref().map(|p| p.display().to_string()),
                "root": { "blake3": manifest.root.to_hex() },
                "lineage": report.to_json(),
                "signedInto": signed.map(|signer| serde_json::json!({"store": args.store, "signer": signer})),
            }),
        );
    }
    Ok(Outcome::Success)
}

fn lineage_refused_json(
    args: &BomArgs,
    report: &modelseal_lineage::LineageReport,
) -> serde_json::Value {
    let message = report
        .first_failure()
        .map_or_else(String::new, |(hop, failure)| {
            format!(
                "lineage refused at {} {}: {failure}",
                hop.display_name(),
                hop.digest_text()
            )
        });
    serde_json::json!({
        "model": args.model.display().to_string(),
        "out": args.out.as_ref().map(|p| p.display().to_string()),
        "lineage": report.to_json(),
        "error": { "kind": "lineage-refused", "message": message, "hints": [] },
    })
}

fn refused(args: &BomArgs, signature: &std::path::Path, err: &VerifyError) -> Result<Outcome> {
    let line = format!(
        "error: {}: {}",
        signature.display(),
        modelseal_verify::error_chain(err)
    );
    crate::eprintln_safe!("{}", crate::output::terminal_safe(&line));
    if args.json {
        crate::output::out_report(
            false,
            serde_json::json!({
                "model": args.model.display().to_string(),
                "signature": signature.display().to_string(),
                "error": { "kind": err.kind(), "message": modelseal_verify::error_chain(err), "hints": [] },
            }),
        );
    }
    Ok(Outcome::Refused)
}

/// The named card, or README.md when it is signed; read verified, at most 1 MiB, UTF-8.
fn model_card(
    args: &BomArgs,
    reader: &ModelReader,
    files: &[ModelFile],
) -> Result<Option<ModelCard>> {
    // A card asked for must be usable; a README.md found by default only if it is.
    let (path, asked) = match &args.model_card {
        Some(path) => {
            if !files.iter().any(|f| f.path == *path) {
                bail!("--model-card {path} is not a signed file of this model");
            }
            (path.clone(), true)
        }
        None if files.iter().any(|f| f.path == "README.md") => ("README.md".to_owned(), false),
        None => return Ok(None),
    };
    let file = files.iter().find(|f| f.path == path).context("listed")?;
    let unusable = |why: String| -> Result<Option<ModelCard>> {
        if asked {
            bail!("{why}");
        }
        crate::eprintln_safe!("warning: no model card in the BOM: {why}");
        Ok(None)
    };
    if file.size > MAX_CARD_BYTES {
        return unusable(format!(
            "the model card {path} is {} bytes; a card is at most {MAX_CARD_BYTES}",
            file.size
        ));
    }
    let bytes = reader
        .read_file(&path)
        .with_context(|| format!("model card {path}"))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(ModelCard {
            path,
            blake3: file.blake3.clone(),
            text,
        })),
        Err(_) => unusable(format!("the model card {path} is not UTF-8")),
    }
}

/// Signs the BOM about `root` and adds it to the store; the signer, for `--json`.
fn sign_into_store(
    args: &BomArgs,
    signer: &crate::signing::StatementSigner,
    root: &Blake3Digest,
    name: Option<&str>,
    predicate_type: &str,
    bom: serde_json::Value,
) -> Result<serde_json::Value> {
    let statement = bom_statement(name.unwrap_or("model"), root, predicate_type, bom);
    let issued = signer.sign_native(statement, root)?;
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let path = dir.path().join("bom.sig");
    write_atomic(
        &path,
        &issued.bundle.to_json(),
        Visibility::Public,
        Overwrite::Allow,
    )
    .context("writing the signed BOM")?;
    let store = super::store::open(&args.store, &args.registry)?;
    store
        .add(&path)
        .with_context(|| format!("cannot add the signed BOM to {}", args.store))?;
    if !args.json {
        // A result, not a note: which signed statement went into the store, and by
        // whom. Printed under -q too.
        crate::eprintln_safe!(
            "signed the BOM ({predicate_type}) and added it to {}\n  signer  {}",
            args.store,
            issued.signer_text
        );
    }
    Ok(issued.signer_json)
}
