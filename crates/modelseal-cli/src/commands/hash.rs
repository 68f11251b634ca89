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
    let bar = Bar::new(false);
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
    let (method, hash) = super::sign::oms_flags(args.method, args.hash, args.shard_size)?;
    let options = modelseal_core::OmsSignOptions {
        name: None,
        method,
        hash,
        walk,
        certificate_chain: None,
    };
    let bar = Bar::new(args.json);
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
