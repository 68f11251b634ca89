//! `modelseal store add|list`.

use anyhow::{Context, Result};
use modelseal_core::ArtifactDigest;
use modelseal_lineage::store::AttestationStore;

use crate::Outcome;
use crate::cli::{RegistryArgs, StoreCommand};
use crate::output::{out, out_report};
use serde_json::json;

pub fn run(command: &StoreCommand) -> Result<Outcome> {
    match command {
        StoreCommand::Add {
            store,
            bundles,
            registry,
            json,
        } => {
            let store_dir =
                AttestationStore::at(store, super::registry::registry_options(registry)?)
                    .with_context(|| format!("store {store}"))?;
            // Every bundle is read and indexed first (its bytes kept): one that cannot be
            // added must not leave the store holding the others, half of what was asked.
            let prepared = bundles
                .iter()
                .map(|bundle| {
                    AttestationStore::prepare(bundle)
                        .with_context(|| format!("cannot add bundle {}", bundle.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut added = Vec::new();
            for (bundle, ready) in bundles.iter().zip(&prepared) {
                let keys = store_dir
                    .add_prepared(ready)
                    .with_context(|| format!("cannot add {}", bundle.display()))?;
                let keys: Vec<String> = keys.iter().map(ArtifactDigest::to_string).collect();
                if !json {
                    out(&format!(
                        "added {} under {}",
                        bundle.display(),
                        keys.join(", ")
                    ));
                }
                added.push(json!({ "bundle": bundle.display().to_string(), "digests": keys }));
            }
            if *json {
                out_report(true, json!({ "store": store, "added": added }));
            }
        }
        StoreCommand::List {
            store,
            digest,
            registry,
            json,
        } => {
            let store_dir = open(store, registry)?;
            match digest {
                None => {
                    let digests = store_dir.digests()?;
                    if *json {
                        out_report(true, json!({ "store": store, "digests": digests }));
                    }
                    for digest in digests.iter().filter(|_| !json) {
                        out(digest);
                    }
                }
                Some(digest) => {
                    let digest: ArtifactDigest = digest
                        .parse()
                        .with_context(|| format!("digest {digest:?}"))?;
                    let lookup = store_dir.bundles_for(&digest)?;
                    for skipped in &lookup.skipped {
                        crate::eprintln_safe!(
                            "warning: skipped {}: {}",
                            skipped.path.display(),
                            skipped.reason
                        );
                    }
                    if let Some(reason) = &lookup.incomplete {
                        crate::eprintln_safe!(
                            "warning: not every file under {digest} was considered ({reason}); \
                             a lineage check fails this hop until the store is pruned or the limits raised"
                        );
                    }
                    let mut listed = Vec::new();
                    for stored in lookup.bundles {
                        let payload = &stored.bundle.dsse_envelope.payload;
                        let predicate = serde_json::from_slice::<serde_json::Value>(payload)
                            .ok()
                            .and_then(|v| v["predicateType"].as_str().map(str::to_owned));
                        if !json {
                            let shown =
                                predicate.as_deref().unwrap_or("(not an in-toto statement)");
                            out(&format!("{}  {shown}", stored.sha256));
                        }
                        listed.push(json!({ "sha256": stored.sha256, "predicateType": predicate }));
                    }
                    if *json {
                        out_report(
                            true,
                            json!({
                                "store": store,
                                "digest": digest.to_string(),
                                "bundles": listed,
                                "skipped": lookup.skipped.iter().map(|s| json!({"path": s.path.display().to_string(), "reason": s.reason.to_string()})).collect::<Vec<_>>(),
                                "incomplete": lookup.incomplete.as_ref().map(ToString::to_string),
                            }),
                        );
                    }
                }
            }
        }
    }
    Ok(Outcome::Success)
}

/// An existing directory store, or a registry store reached with the registry flags. A
/// directory that is not there is an error, not an empty store: a mistyped path must
/// not read as "nothing attested".
pub(super) fn open(store: &str, registry: &RegistryArgs) -> Result<AttestationStore> {
    if !modelseal_oci::Reference::is_oci(store) && !std::path::Path::new(store).is_dir() {
        let problem = if std::path::Path::new(store).exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(crate::output::StoreMissing(format!("store {store} {problem}")).into());
    }
    let options = super::registry::registry_options(registry)?;
    AttestationStore::at(store, options).with_context(|| format!("store {store}"))
}
