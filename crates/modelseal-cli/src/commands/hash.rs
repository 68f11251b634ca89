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
