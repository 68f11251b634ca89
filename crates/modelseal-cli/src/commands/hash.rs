use anyhow::{Context, Result};
use modelseal_core::{hash_model, walk};
use serde_json::json;

use crate::Outcome;
use crate::cli::HashArgs;
use crate::output::{out, out_report};
use crate::progress::Bar;

pub fn run(args: &HashArgs) -> Result<Outcome> {
    super::require_model(&args.model)?;
    let options = super::walk_options(&args.model, &args.walk, None)?;
    if args.format == crate::cli::Format::Oms {
        return oms(args, options);
    }
    let bar = Bar::new(args.quiet);
    let manifest = hash_model(&args.model, &options, &bar)
        .with_context(|| format!("cannot hash model {}", args.model.display()))?;
    bar.finish();
    let root = manifest.root();
    if args.json {
        out_report(
            true,
            json!({
                "name": walk::model_name(&args.model),
                "root": { "blake3": root },
                "files": manifest.entries(),
                "totalBytes": manifest.total_bytes(),
            }),
        );
    } else {
        out(&format!("blake3:{root}  {}", args.model.display()));
    }
    Ok(Outcome::Success)
}

/// `hash --format oms`: the subject digest an OMS signature of this model names, hashed
/// as `sign --format oms` hashes (model-signing's ignore rules), nothing signed.
fn oms(args: &HashArgs, walk: modelseal_core::walk::WalkOptions) -> Result<Outcome> {
    use crate::cli::{OmsHashArg, OmsMethodArg};
    use modelseal_core::oms::{OmsHash, OmsMethod};
    let shard_size = args
        .shard_size
        .unwrap_or(modelseal_core::oms::DEFAULT_SHARD_SIZE);
    if shard_size == 0 {
        crate::usage!("--shard-size must be at least 1");
    }
    let options = modelseal_core::OmsSignOptions {
        name: None,
        method: match args.method {
            OmsMethodArg::Files => OmsMethod::Files,
            OmsMethodArg::Shards => OmsMethod::Shards { size: shard_size },
        },
        hash: match args.hash {
            OmsHashArg::Sha256 => OmsHash::Sha256,
            OmsHashArg::Blake2b => OmsHash::Blake2b,
            OmsHashArg::Blake3 => OmsHash::Blake3,
        },
        walk,
        certificate_chain: None,
    };
    let bar = Bar::new(args.quiet || args.json);
    let stated = modelseal_core::state_model_oms(&args.model, &options, &bar)
        .with_context(|| format!("cannot hash model {}", args.model.display()))?;
    bar.finish();
    let root = hex::encode(stated.root);
    if args.json {
        out_report(
            true,
            json!({
                "name": stated.name,
                "root": { "sha256": root },
                "resources": stated.resources.len(),
            }),
        );
    } else {
        out(&format!("sha256:{root}  {}", args.model.display()));
    }
    Ok(Outcome::Success)
}
