use anyhow::{Context, Result, bail};
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
use modelseal_core::oms::{OmsHash, OmsMethod};
use modelseal_core::{
    ArtifactKind, OmsSignOptions, SignOptions, SigningKey, sign_model, sign_model_oms,
};

use crate::Outcome;
use crate::cli::{Format, Kind, OmsHashArg, OmsMethodArg, SignArgs};
use crate::output::out;
use crate::progress::Bar;

pub fn run(args: &SignArgs) -> Result<Outcome> {
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
    // Load the key first: a wrong passphrase should not cost a full hash of the model.
    let key = super::load_signing_key(&args.key)?;
    let walk = super::walk_options(&args.model, &args.walk, Some(&signature))?;
    let bar = Bar::new(args.quiet);
    let summary = match args.format {
        Format::Native => sign_native(args, &key, walk, &bar, &signature)?,
        Format::Oms => sign_oms(args, &key, walk, &bar, &signature)?,
    };
    bar.finish();
    out(&format!(
        "{summary}\n  signer  {} {}\n  wrote   {}",
        key.algorithm(),
        key.verifying_key().fingerprint(),
        signature.display()
    ));
    Ok(Outcome::Success)
}

fn sign_native(
    args: &SignArgs,
    key: &SigningKey,
    walk: modelseal_core::WalkOptions,
    bar: &Bar,
    signature: &std::path::Path,
) -> Result<String> {
    let options = SignOptions {
        name: args.name.clone(),
        kind: match args.kind {
            Kind::Model => ArtifactKind::Model,
            Kind::Dataset => ArtifactKind::Dataset,
        },
        walk,
    };
    let signed = sign_model(&args.model, &options, key, bar)
        .with_context(|| format!("cannot sign model {}", args.model.display()))?;
    write_signature(signature, &signed.bundle)?;
    if args.outboard {
        super::outboard::write(&args.model, &signed.manifest, signature)?;
    }
    Ok(format!(
        "signed {} ({} files, {} bytes)\n  subject {} blake3:{}",
        args.model.display(),
        signed.manifest.entries().len(),
        signed.manifest.total_bytes(),
        signed.name,
        signed.root,
    ))
}

fn sign_oms(
    args: &SignArgs,
    key: &SigningKey,
    walk: modelseal_core::WalkOptions,
    bar: &Bar,
    signature: &std::path::Path,
) -> Result<String> {
    let certificate_chain = match &args.certificate {
        None => None,
        Some(leaf) => {
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
    let signed = sign_model_oms(&args.model, &options, key, bar)
        .with_context(|| format!("cannot sign model {}", args.model.display()))?;
    write_signature(signature, &signed.bundle)?;
    Ok(format!(
        "signed {} (OMS v1.0, {} resources)\n  subject {} sha256:{}",
        args.model.display(),
        signed.resources.len(),
        signed.name,
        hex::encode(signed.root),
    ))
}

fn write_signature(path: &std::path::Path, bundle: &modelseal_core::Bundle) -> Result<()> {
    write_atomic(
        path,
        &bundle.to_json(),
        Visibility::Public,
        Overwrite::Allow,
    )
    .with_context(|| format!("cannot write signature {}", path.display()))
}
