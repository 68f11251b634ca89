//! `modelseal store add|list`.

use anyhow::{Context, Result};
use modelseal_core::ArtifactDigest;
use modelseal_lineage::store::AttestationStore;

use crate::Outcome;
use crate::cli::{RegistryArgs, StoreCommand};
use crate::output::out;

pub fn run(command: &StoreCommand) -> Result<Outcome> {
    match command {
        StoreCommand::Add {
            store,
            bundles,
            registry,
        } => {
            let store_dir = open(store, registry)?;
            for bundle in bundles {
                let keys = store_dir
                    .add(bundle)
                    .with_context(|| format!("cannot add {}", bundle.display()))?;
                out(&format!(
                    "added {} under {}",
                    bundle.display(),
                    keys.iter()
                        .map(ArtifactDigest::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        StoreCommand::List {
            store,
            digest,
            registry,
        } => {
            let store_dir = open(store, registry)?;
            match digest {
                None => {
                    for digest in store_dir.digests()? {
                        out(&digest);
                    }
                }
                Some(digest) => {
                    let digest: ArtifactDigest = digest
                        .parse()
                        .with_context(|| format!("digest {digest:?}"))?;
                    let lookup = store_dir.bundles_for(&digest)?;
                    for skipped in &lookup.skipped {
                        eprintln!(
                            "warning: skipped {}: {}",
                            skipped.path.display(),
                            skipped.reason
                        );
                    }
                    if let Some(reason) = &lookup.incomplete {
                        eprintln!(
                            "warning: not every file under {digest} was considered ({reason}); \
                             a lineage check fails this hop until the store is pruned or the limits raised"
                        );
                    }
                    for stored in lookup.bundles {
                        let payload = &stored.bundle.dsse_envelope.payload;
                        let predicate = serde_json::from_slice::<serde_json::Value>(payload)
                            .ok()
                            .and_then(|v| v["predicateType"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| "(not an in-toto statement)".into());
                        out(&format!("{}  {predicate}", stored.sha256));
                    }
                }
            }
        }
    }
    Ok(Outcome::Success)
}

/// A directory store, or a registry store reached with the registry flags.
pub(super) fn open(store: &str, registry: &RegistryArgs) -> Result<AttestationStore> {
    let options = super::registry::registry_options(registry)?;
    AttestationStore::at(store, options).with_context(|| format!("store {store}"))
}
