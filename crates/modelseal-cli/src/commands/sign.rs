use anyhow::{Context, Result, bail};
use modelseal_core::oms::{OmsHash, OmsMethod};
use modelseal_core::{OmsSignOptions, SignOptions, sign_model_oms, state_model, state_model_oms};

use crate::Outcome;
use crate::cli::{Format, OmsHashArg, OmsMethodArg, SignArgs};
use crate::output::out;
use crate::progress::Bar;
use crate::signing::{Issued, StatementSigner};

pub fn run(args: &SignArgs) -> Result<Outcome> {
    if modelseal_oci::Reference::is_oci(&args.model.display().to_string()) {
        let signer = StatementSigner::from_args(&args.signer)?;
        super::oci::sign(args, &signer)?;
        return Ok(Outcome::Success);
    }
    if args.no_attach {
        bail!("--no-attach applies to oci:// references");
    }
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| super::default_signature_path(&args.model));
    if args.outboard && args.format == Format::Oms {
        bail!("--outboard serves native signatures; OMS hashes are not BLAKE3 trees");
    }
    let oms_only = args.certificate.is_some()
        || args.method != OmsMethodArg::Files
        || args.hash != OmsHashArg::Sha256;
    if args.format == Format::Native && oms_only {
        bail!("--hash, --method and --certificate apply to --format oms only");
    }
    // The key (or the identity token) first: a wrong passphrase or a missing token
    // should not cost a full hash of the model.
    let signer = StatementSigner::from_args(&args.signer)?;
    let walk = super::walk_options(&args.model, &args.walk, Some(&signature))?;
    let bar = Bar::new(args.quiet);
    let (summary, issued) = match args.format {
        Format::Native => sign_native(args, &signer, walk, &bar)?,
        Format::Oms => sign_oms(args, &signer, walk, &bar)?,
    };
    bar.finish();
    super::write_signature(&signature, &issued.bundle)?;
    if args.outboard {
        if let Some(manifest) = &summary.manifest {
            super::outboard::write(&args.model, manifest, &signature)?;
        }
    }
    out(&format!(
        "{}\n  signer  {}\n  wrote   {}",
        summary.text,
        issued.signer_text,
        signature.display()
    ));
    Ok(Outcome::Success)
}

/// What was signed, for the summary (and the manifest, for outboard trees).
struct Summary {
    text: String,
    manifest: Option<modelseal_core::Manifest>,
}

fn sign_native(
    args: &SignArgs,
    signer: &StatementSigner,
    walk: modelseal_core::WalkOptions,
    bar: &Bar,
) -> Result<(Summary, Issued)> {
    let options = SignOptions {
        name: args.name.clone(),
        kind: args.kind.into(),
        walk,
    };
    let stated = state_model(&args.model, &options, bar)
        .with_context(|| format!("cannot sign model {}", args.model.display()))?;
    let text = format!(
        "signed {} ({} files, {} bytes)\n  subject {} blake3:{}",
        args.model.display(),
        stated.manifest.entries().len(),
        stated.manifest.total_bytes(),
        stated.name,
        stated.root,
    );
    let issued = signer.sign_native(stated.statement, &stated.root)?;
    Ok((
        Summary {
            text,
            manifest: Some(stated.manifest),
        },
        issued,
    ))
}

fn sign_oms(
    args: &SignArgs,
    signer: &StatementSigner,
    walk: modelseal_core::WalkOptions,
    bar: &Bar,
) -> Result<(Summary, Issued)> {
    let certificate_chain = match (&args.certificate, signer.key()) {
        (Some(leaf), Some(key)) => {
            let leaf_pem = super::read_text(leaf, "certificate")?;
            let chain = args
                .certificate_chain
                .iter()
                .map(|p| super::read_text(p, "certificate chain"))
                .collect::<Result<Vec<_>>>()?;
            Some(
                modelseal_core::certificate_chain(&leaf_pem, &chain, key)
                    .with_context(|| format!("certificate {}", leaf.display()))?,
            )
        }
        _ => None,
    };
    if args.shard_size == 0 {
        bail!("--shard-size must be at least 1");
    }
    let options = OmsSignOptions {
        name: args.name.clone(),
        method: match args.method {
            OmsMethodArg::Files => OmsMethod::Files,
            OmsMethodArg::Shards => OmsMethod::Shards {
                size: args.shard_size,
            },
        },
        hash: match args.hash {
            OmsHashArg::Sha256 => OmsHash::Sha256,
            OmsHashArg::Blake2b => OmsHash::Blake2b,
            OmsHashArg::Blake3 => OmsHash::Blake3,
        },
        walk,
        certificate_chain,
    };
    if args.method == OmsMethodArg::Shards {
        warn_unlistable_empty_files(&args.model, &options.walk);
    }
    let failed = || format!("cannot sign model {}", args.model.display());
    let (name, root, resources, issued) = match signer.key() {
        Some(key) => {
            let signed = sign_model_oms(&args.model, &options, key, bar).with_context(failed)?;
            let issued = signer.finish_key_bundle(signed.bundle)?;
            (signed.name, signed.root, signed.resources.len(), issued)
        }
        None => {
            let stated = state_model_oms(&args.model, &options, bar).with_context(failed)?;
            let issued = signer.sign_oms(&stated.statement, stated.root)?;
            (stated.name, stated.root, stated.resources.len(), issued)
        }
    };
    let text = format!(
        "signed {} (OMS v1.0, {resources} resources)\n  subject {name} sha256:{}",
        args.model.display(),
        hex::encode(root),
    );
    Ok((
        Summary {
            text,
            manifest: None,
        },
        issued,
    ))
}

/// The `shards` method cannot list an empty file (there is no shard to hash), so such a
/// file is unsigned: say so before signing, with what a verifier must then pass.
fn warn_unlistable_empty_files(model: &std::path::Path, walk: &modelseal_core::WalkOptions) {
    let Ok(files) = modelseal_core::walk::walk_model(model, walk) else {
        return; // the signing walk reports the problem
    };
    let mut empty: Vec<String> = files
        .iter()
        .filter(|f| f.size == 0)
        .map(|f| f.path.to_string())
        .collect();
    if empty.is_empty() {
        return;
    }
    empty.sort();
    eprintln!(
        "warning: the shards method cannot list empty files, so these are not signed: {}\n\
         hint: verifiers refuse them unless given --allow-unsigned-empty-files; --method files signs them",
        empty.join(", ")
    );
}
