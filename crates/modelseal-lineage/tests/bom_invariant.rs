//! The AI-BOM states only what trusted signers attested (spec/bom.md): over generated
//! lineages (datasets and models signed by trusted keys, by a rogue key or not at all,
//! provenances by the trusted builder or a rogue one, listing inputs under their signed
//! names or others, a deny rule or none), every component the CycloneDX BOM calls
//! `verified` has a digest and name that a signer trusted for its role signed, and every
//! training edge (a run's inputs, a component's `dependsOn`) is one that a provenance by
//! the trusted builder lists. The oracle is the generator's own record of what it signed
//! with which key, not modelseal's reading of the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use modelseal_core::hash::NoProgress;
use modelseal_core::provenance::{
    BuildDefinition, Builder, DependencyKind, Provenance, RunDetails, TRAINING_BUILD_TYPE,
    dependency, provenance_statement,
};
use modelseal_core::{
    ArtifactKind, Blake3Digest, KeyAlgorithm, SignOptions, SigningKey, sign_model, sign_statement,
};
use modelseal_lineage::bom::{BomInput, cyclonedx};
use modelseal_lineage::policy::LineagePolicy;
use modelseal_lineage::store::AttestationStore;
use modelseal_lineage::{SignedBy, verify_lineage};
use proptest::prelude::*;
use serde_json::Value;

const BUILDER: &str = "https://ci.example.com/trainer";

#[derive(Debug, Clone, Copy)]
enum Signer {
    Trusted,
    Rogue,
    Nobody,
}

#[derive(Debug, Clone)]
struct Run {
    trusted_builder: bool,
    /// (is a model, index) of each input; models only below the one trained.
    inputs: Vec<(bool, usize)>,
    /// Whether the provenance names its inputs otherwise than their signers did.
    rename: bool,
}

#[derive(Debug, Clone)]
struct Lineage {
    datasets: Vec<Signer>,
    /// Each model's signer and runs; the last model is the one verified.
    models: Vec<(Signer, Vec<Run>)>,
    deny_dataset: Option<usize>,
}

fn signer() -> impl Strategy<Value = Signer> {
    prop_oneof![
        3 => Just(Signer::Trusted),
        1 => Just(Signer::Rogue),
        1 => Just(Signer::Nobody)
    ]
}

fn lineage() -> impl Strategy<Value = Lineage> {
    let run = (
        prop::bool::weighted(0.8),
        prop::collection::vec((any::<bool>(), 0usize..3), 0..4),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(trusted_builder, inputs, rename)| Run {
            trusted_builder,
            inputs,
            rename,
        });
    (
        prop::collection::vec(signer(), 1..=3),
        prop::collection::vec((signer(), prop::collection::vec(run, 0..=2)), 1..=3),
        prop::option::of(0usize..3),
    )
        .prop_map(|(datasets, models, deny_dataset)| Lineage {
            datasets,
            models,
            deny_dataset,
        })
}

/// What the generator signed with trusted keys: the oracle.
#[derive(Default)]
struct Truth {
    /// digest hex -> names its trusted signer gave it (with the kind).
    signed: BTreeMap<String, BTreeSet<(String, &'static str)>>,
    /// (model digest hex, input digest hex) listed by a trusted builder's provenance.
    edges: BTreeSet<(String, String)>,
}

struct Keys {
    publisher: SigningKey,
    curator: SigningKey,
    builder: SigningKey,
    rogue: SigningKey,
}

fn artifact(
    dir: &Path,
    name: &str,
    kind: ArtifactKind,
    who: Signer,
    keys: &Keys,
    bundles: &mut Vec<std::path::PathBuf>,
    truth: &mut Truth,
) -> Blake3Digest {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("data.bin"), name.as_bytes()).unwrap();
    let options = SignOptions {
        kind,
        ..SignOptions::default()
    };
    let trusted = if kind == ArtifactKind::Dataset {
        &keys.curator
    } else {
        &keys.publisher
    };
    let key = match who {
        Signer::Trusted => trusted,
        Signer::Rogue => &keys.rogue,
        Signer::Nobody => {
            return modelseal_core::hash_model(&path, &Default::default(), &NoProgress)
                .unwrap()
                .root();
        }
    };
    let signed = sign_model(&path, &options, key, &NoProgress).unwrap();
    if matches!(who, Signer::Trusted) {
        let kind_name = if kind == ArtifactKind::Dataset {
            "data"
        } else {
            "machine-learning-model"
        };
        truth
            .signed
            .entry(signed.root.to_hex())
            .or_default()
            .insert((name.to_owned(), kind_name));
    }
    let file = dir.join(format!("{name}.sig"));
    std::fs::write(&file, signed.bundle.to_json()).unwrap();
    bundles.push(file);
    signed.root
}

fn build(case: &Lineage, dir: &Path) -> (AttestationStore, LineagePolicy, Blake3Digest, Truth) {
    let key = || SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let keys = Keys {
        publisher: key(),
        curator: key(),
        builder: key(),
        rogue: key(),
    };
    let mut truth = Truth::default();
    let mut bundles = Vec::new();
    let datasets: Vec<Blake3Digest> = (case.datasets.iter().enumerate())
        .map(|(i, who)| {
            let name = format!("corpus-{i}");
            let kind = ArtifactKind::Dataset;
            artifact(dir, &name, kind, *who, &keys, &mut bundles, &mut truth)
        })
        .collect();
    let mut models: Vec<Blake3Digest> = Vec::new();
    let top = case.models.len() - 1;
    for (i, (who, runs)) in case.models.iter().enumerate() {
        let name = format!("model-{i}");
        // The verified model's own signature is the caller's: trusted by construction.
        let who = if i == top { Signer::Trusted } else { *who };
        let root = artifact(
            dir,
            &name,
            ArtifactKind::Model,
            who,
            &keys,
            &mut bundles,
            &mut truth,
        );
        for (r, run) in runs.iter().enumerate() {
            let mut deps = Vec::new();
            let mut listed = BTreeSet::new();
            for (is_model, index) in &run.inputs {
                let (digest, label, kind) = if *is_model && !models.is_empty() {
                    let j = index % models.len();
                    (models[j], format!("model-{j}"), DependencyKind::BaseModel)
                } else {
                    let j = index % datasets.len();
                    (datasets[j], format!("corpus-{j}"), DependencyKind::Dataset)
                };
                if !listed.insert(digest) {
                    continue;
                }
                let label = if run.rename {
                    format!("{label}-renamed")
                } else {
                    label
                };
                deps.push(dependency(
                    kind,
                    Some(label),
                    None,
                    BTreeMap::from([("blake3".into(), digest.to_hex())]),
                ));
                if run.trusted_builder {
                    truth.edges.insert((root.to_hex(), digest.to_hex()));
                }
            }
            let provenance = Provenance {
                build_definition: BuildDefinition {
                    build_type: TRAINING_BUILD_TYPE.into(),
                    external_parameters: serde_json::json!({"run": r}),
                    internal_parameters: None,
                    resolved_dependencies: deps,
                },
                run_details: RunDetails {
                    builder: Builder { id: BUILDER.into() },
                    metadata: None,
                },
            };
            let statement = provenance_statement(&name, &root, &provenance);
            let key = if run.trusted_builder {
                &keys.builder
            } else {
                &keys.rogue
            };
            let file = dir.join(format!("{name}.run{r}.json"));
            std::fs::write(&file, sign_statement(&statement, key).to_json()).unwrap();
            bundles.push(file);
        }
        models.push(root);
    }
    let store = AttestationStore::open(&dir.join("store"));
    for bundle in &bundles {
        store.add(bundle).unwrap();
    }
    for (name, key) in [
        ("publisher", &keys.publisher),
        ("builder", &keys.builder),
        ("curator", &keys.curator),
    ] {
        std::fs::write(
            dir.join(format!("{name}.pub")),
            key.verifying_key().to_pem(),
        )
        .unwrap();
    }
    let deny = case
        .deny_dataset
        .map(|i| format!("[datasets]\ndeny = [\"name:corpus-{i}\"]\n"))
        .unwrap_or_default();
    let text = format!(
        "max_depth = 4\n{deny}\n[[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.pub\"\n\n\
         [[signer]]\nname = \"trainer\"\nroles = [\"training-builder\"]\nkey = \"builder.pub\"\n\n\
         [[signer]]\nname = \"data-team\"\nroles = [\"dataset-curator\"]\nkey = \"curator.pub\"\n\n\
         [builders]\nallow = [\"{BUILDER}\"]\n"
    );
    std::fs::write(dir.join("policy.toml"), text).unwrap();
    let policy = LineagePolicy::read(&dir.join("policy.toml")).unwrap();
    (store, policy, models[top], truth)
}

fn prop_value<'a>(component: &'a Value, name: &str) -> Option<&'a str> {
    component["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["value"].as_str())
}

/// The BLAKE3 hex a component's hashes give, if any.
fn digest_of(component: &Value) -> Option<String> {
    component["hashes"]
        .as_array()?
        .iter()
        .find(|h| h["alg"] == "BLAKE3")
        .and_then(|h| h["content"].as_str())
        .map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_fact_the_bom_calls_verified_was_attested_by_a_trusted_signer(case in lineage()) {
        let dir = tempfile::tempdir().unwrap();
        let (store, policy, top, truth) = build(&case, dir.path());
        let top_name = format!("model-{}", case.models.len() - 1);
        let report = verify_lineage(
            Some(top_name.clone()),
            &modelseal_core::ArtifactDigest::blake3(&top),
            &[],
            "release".into(),
            &policy,
            &store,
        );
        // The top model's signature, verified as `bom` verifies it.
        let bundle = modelseal_core::Bundle::read(&dir.path().join(format!("{top_name}.sig"))).unwrap();
        let trust = policy.trust_for(modelseal_lineage::policy::Role::ModelPublisher);
        let signer = modelseal_verify::verify_envelope(&bundle, &trust).unwrap().signer;
        let input = BomInput {
            report: &report,
            files: Vec::new(),
            signature: SignedBy::new(
                modelseal_core::statement::MANIFEST_PREDICATE_TYPE,
                "model-publisher",
                "release".into(),
                signer,
            ),
            card: None,
            created: "2026-12-06T00:00:00Z".into(),
            serial: [7; 16],
            tool_version: "test",
        };
        let bom = cyclonedx::document(&input);
        let mut components: Vec<&Value> = vec![&bom["metadata"]["component"]];
        components.extend(bom["components"].as_array().into_iter().flatten());
        let mut id_digest = BTreeMap::new();
        for c in &components {
            let (Some(id), Some(digest)) = (c["bom-ref"].as_str(), digest_of(c)) else { continue };
            id_digest.insert(id.to_owned(), digest.clone());
            if prop_value(c, "modelseal:verdict") != Some("verified") {
                continue;
            }
            let names = truth.signed.get(&digest);
            prop_assert!(names.is_some(), "verified without a trusted signature: {c}");
            let kind = c["type"].as_str().unwrap_or_default();
            let name = c["name"].as_str().unwrap_or_default();
            prop_assert!(
                names.unwrap().iter().any(|(n, k)| n == name && *k == kind),
                "verified under a name or kind no trusted signer gave: {c}"
            );
        }
        let edge = |from: &str, to: &str| -> Option<(String, String)> {
            Some((id_digest.get(from)?.clone(), id_digest.get(to)?.clone()))
        };
        for dep in bom["dependencies"].as_array().into_iter().flatten() {
            let from = dep["ref"].as_str().unwrap_or_default();
            for to in dep["dependsOn"].as_array().into_iter().flatten() {
                if let Some(e) = edge(from, to.as_str().unwrap_or_default()) {
                    prop_assert!(truth.edges.contains(&e), "an edge no trusted provenance lists: {e:?}");
                }
            }
        }
        for formula in bom["formulation"].as_array().into_iter().flatten() {
            for workflow in formula["workflows"].as_array().into_iter().flatten() {
                let output = workflow["outputs"][0]["resource"]["ref"].as_str().unwrap_or_default();
                for input in workflow["inputs"].as_array().into_iter().flatten() {
                    let Some(to) = input["resource"]["ref"].as_str() else { continue };
                    if let Some(e) = edge(output, to) {
                        prop_assert!(truth.edges.contains(&e), "a run input no trusted provenance lists: {e:?}");
                    }
                }
            }
        }
    }
}
