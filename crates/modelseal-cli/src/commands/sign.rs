use anyhow::{Context, Result};
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
use modelseal_core::{ArtifactKind, SignOptions, sign_model};

use crate::Outcome;
use crate::cli::{Kind, SignArgs};
use crate::output::out;
use crate::progress::Bar;

pub fn run(args: &SignArgs) -> Result<Outcome> {
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| super::default_signature_path(&args.model));
    // Load the key first: a wrong passphrase should not cost a full hash of the model.
    let key = super::load_signing_key(&args.key)?;
    let options = SignOptions {
        name: args.name.clone(),
        kind: match args.kind {
            Kind::Model => ArtifactKind::Model,
            Kind::Dataset => ArtifactKind::Dataset,
        },
        walk: super::walk_options(&args.model, &args.walk, Some(&signature))?,
    };
    let bar = Bar::new(args.quiet);
    let signed = sign_model(&args.model, &options, &key, &bar)
        .with_context(|| format!("cannot sign model {}", args.model.display()))?;
    bar.finish();
    write_atomic(
        &signature,
        &signed.bundle.to_json(),
        Visibility::Public,
        Overwrite::Allow,
    )
    .with_context(|| format!("cannot write signature {}", signature.display()))?;
    out(&format!(
        "signed {} ({} files, {} bytes)\n  subject {} blake3:{}\n  signer  {}\n  wrote   {}",
        args.model.display(),
        signed.manifest.entries().len(),
        signed.manifest.total_bytes(),
        signed.name,
        signed.root,
        key.verifying_key().fingerprint(),
        signature.display()
    ));
    Ok(Outcome::Success)
}
