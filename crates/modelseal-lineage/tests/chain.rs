//! A real multi-hop chain, built here: two datasets -> base model -> fine-tuned model ->
//! quantized model, each signed, each run attested, everything in a store. The chain
//! passes; then each way it can be broken is refused with its own failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modelseal_core::hash::NoProgress;
use modelseal_core::provenance::{
    BuildDefinition, BuildMetadata, Builder, DependencyKind, Provenance, RunDetails,
    TRAINING_BUILD_TYPE, dependency, provenance_statement,
};

use modelseal_core::{
    ArtifactKind, Blake3Digest, KeyAlgorithm, SignOptions, SigningKey, sign_model, sign_statement,
};
use modelseal_lineage::policy::LineagePolicy;
use modelseal_lineage::store::AttestationStore;
use modelseal_lineage::{HopFailure, LineageReport, verify_lineage};

const BUILDER: &str = "https://ci.example.com/trainer";

struct Keys {
    publisher: SigningKey,
    builder: SigningKey,
    curator: SigningKey,
    rogue: SigningKey,
}

struct Chain {
    dir: tempfile::TempDir,
    keys: Keys,
    digests: BTreeMap<&'static str, Blake3Digest>,
    bundles: Vec<(&'static str, PathBuf)>,
}

impl Chain {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn digest(&self, name: &str) -> String {
        format!("blake3:{}", self.digests[name])
    }

    /// Makes an artifact directory and signs it; the bundle goes to the list.
    fn artifact(&mut self, name: &'static str, kind: ArtifactKind, seed: u8) {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data.bin"), vec![seed; 4096 + seed as usize]).unwrap();
        std::fs::write(dir.join("README.md"), format!("# {name}\n")).unwrap();
        let key = if kind == ArtifactKind::Dataset {
            &self.keys.curator
        } else {
            &self.keys.publisher
        };
        let options = SignOptions {
            kind,
            ..SignOptions::default()
        };
        let signed = sign_model(&dir, &options, key, &NoProgress).unwrap();
        self.digests.insert(name, signed.root);
        self.save(name, "sig", &signed.bundle);
    }

    fn save(&mut self, name: &'static str, what: &str, bundle: &modelseal_core::Bundle) {
        let path = self.path(&format!("{name}.{what}.json"));
        std::fs::write(&path, bundle.to_json()).unwrap();
        self.bundles.push((name, path));
    }

    /// Attests that `model` was trained from `bases` and `datasets`.
    fn provenance(
        &self,
        model: &'static str,
        bases: &[&str],
        datasets: &[&str],
        key: Option<&SigningKey>,
    ) -> modelseal_core::Bundle {
        let mut deps = Vec::new();
        for (names, kind) in [
            (bases, DependencyKind::BaseModel),
            (datasets, DependencyKind::Dataset),
        ] {
            for name in names {
                deps.push(dependency(
                    kind,
                    Some((*name).into()),
                    None,
                    BTreeMap::from([("blake3".into(), self.digests[name].to_hex())]),
                ));
            }
        }
        deps.push(dependency(
            DependencyKind::Code,
            None,
            Some("git+https://example.com/train.git".into()),
            BTreeMap::from([("gitCommit".into(), "a".repeat(40))]),
        ));
        let provenance = Provenance {
            build_definition: BuildDefinition {
                build_type: TRAINING_BUILD_TYPE.into(),
                external_parameters: serde_json::json!({"hyperparameters": {"lr": "0.001"}}),
                internal_parameters: None,
                resolved_dependencies: deps,
            },
            run_details: RunDetails {
                builder: Builder { id: BUILDER.into() },
                metadata: Some(BuildMetadata {
                    invocation_id: Some("run-1".into()),
                    started_on: None,
                    finished_on: None,
                }),
            },
        };
        let statement = provenance_statement(model, &self.digests[model], &provenance);
        sign_statement(&statement, key.unwrap_or(&self.keys.builder))
    }

    fn store(&self, skip: &[&str]) -> AttestationStore {
        let dir = self.dir.path().join(format!("store-{}", rand_suffix()));
        let store = AttestationStore::open(&dir);
        for (name, path) in &self.bundles {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if skip.iter().any(|s| file == *s) {
                continue;
            }
            let _ = name;
            store.add(path).unwrap();
        }
        store
    }

    fn policy(&self, extra: &str) -> LineagePolicy {
        self.policy_with(4, BUILDER, extra)
    }

    fn policy_with(&self, max_depth: usize, builder: &str, extra: &str) -> LineagePolicy {
        let keys = [
            ("publisher", &self.keys.publisher),
            ("builder", &self.keys.builder),
            ("curator", &self.keys.curator),
        ];
        for (name, key) in keys {
            std::fs::write(
                self.path(&format!("{name}.pub")),
                key.verifying_key().to_pem(),
            )
            .unwrap();
        }
        let text = format!(
            r#"max_depth = {max_depth}
{extra}
[[signer]]
name = "release"
roles = ["model-publisher"]
key = "publisher.pub"

[[signer]]
name = "trainer"
roles = ["training-builder"]
key = "builder.pub"

[[signer]]
name = "data-team"
roles = ["dataset-curator"]
key = "curator.pub"

[builders]
allow = ["{builder}"]
"#
        );
        let path = self.path(&format!("policy-{}.toml", rand_suffix()));
        std::fs::write(&path, text).unwrap();
        LineagePolicy::read(&path).unwrap()
    }

    fn check(&self, store: &AttestationStore, policy: &LineagePolicy) -> LineageReport {
        verify_lineage(
            Some("quantized".into()),
            &self.digest("quantized").parse().unwrap(),
            &[],
            "release".into(),
            policy,
            store,
        )
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

fn key() -> SigningKey {
    SigningKey::generate(KeyAlgorithm::Ed25519).unwrap()
}

fn build() -> Chain {
    let mut chain = Chain {
        dir: tempfile::tempdir().unwrap(),
        keys: Keys {
            publisher: key(),
            builder: key(),
            curator: key(),
            rogue: key(),
        },
        digests: BTreeMap::new(),
        bundles: Vec::new(),
    };
    chain.artifact("corpus-a", ArtifactKind::Dataset, 1);
    chain.artifact("corpus-b", ArtifactKind::Dataset, 2);
    chain.artifact("base", ArtifactKind::Model, 3);
    chain.artifact("fine-tuned", ArtifactKind::Model, 4);
    chain.artifact("quantized", ArtifactKind::Model, 5);
    let p = chain.provenance("base", &[], &["corpus-a", "corpus-b"], None);
    chain.save("base", "provenance", &p);
    let p = chain.provenance("fine-tuned", &["base"], &[], None);
    chain.save("fine-tuned", "provenance", &p);
    let p = chain.provenance("quantized", &["fine-tuned"], &[], None);
    chain.save("quantized", "provenance", &p);
    chain
}

fn failure_of(report: &LineageReport) -> (String, HopFailure) {
    let (hop, failure) = report
        .first_failure()
        .expect("the lineage should be refused");
    (
        hop.name
            .clone()
            .or(hop.claimed_name.clone())
            .unwrap_or_default(),
        failure.clone(),
    )
}

#[test]
fn the_whole_chain_passes_and_names_every_hop() {
    let chain = build();
    let report = chain.check(&chain.store(&[]), &chain.policy(""));
    assert!(report.passed(), "{:?}", report.first_failure());
    let root = &report.root;
    assert_eq!(root.builders, [BUILDER]);
    assert_eq!(root.signers, ["release", "trainer"]);
    let fine = &root.inputs[0];
    assert_eq!(fine.name.as_deref(), Some("fine-tuned"));
    let base = &fine.inputs[0];
    assert_eq!(base.name.as_deref(), Some("base"));
    let names: Vec<_> = base
        .inputs
        .iter()
        .map(|h| h.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["corpus-a", "corpus-b"]);
    assert_eq!(base.inputs[0].signers, ["data-team"]);
    assert!(root.materials[0].contains("git+https://example.com/train.git"));
    // Every attestation relied on is recorded: the signatures of the 3 models (the top's
    // stored copy gives the names its rules meet) and of the 2 datasets, and 3
    // provenances.
    assert_eq!(report.attestations.len(), 8);
}

#[test]
fn a_key_listed_under_two_names_is_named_for_the_role_it_signed_in() {
    let chain = build();
    // The builder's key is also a curator under another name, listed first: its
    // provenance must still be credited to "trainer", the name with that role.
    let alias = "[[signer]]\nname = \"curator-alias\"\nroles = [\"dataset-curator\"]\nkey = \"builder.pub\"\n";
    let report = chain.check(&chain.store(&[]), &chain.policy(alias));
    assert!(report.passed(), "{:?}", report.first_failure());
    assert_eq!(report.root.signers, ["release", "trainer"]);
    let base = &report.root.inputs[0].inputs[0];
    assert_eq!(base.inputs[0].signers, ["data-team"]);
}

#[test]
fn a_denied_dataset_is_refused() {
    let chain = build();
    let policy = chain.policy(&format!(
        "[datasets]\ndeny = [\"{}\"]\n",
        chain.digest("corpus-b")
    ));
    let (hop, failure) = failure_of(&chain.check(&chain.store(&[]), &policy));
    assert_eq!(hop, "corpus-b");
    assert_eq!(failure, HopFailure::Denied(chain.digest("corpus-b")));
    // By name pattern too.
    let policy = chain.policy("[datasets]\ndeny = [\"name:corpus-*\"]\n");
    let (hop, failure) = failure_of(&chain.check(&chain.store(&[]), &policy));
    assert_eq!((hop.as_str(), failure.kind()), ("corpus-a", "denied"));
}

#[test]
fn a_refused_hop_lends_none_of_its_attestations_to_a_bom() {
    use modelseal_lineage::bom::{BomInput, cyclonedx};
    let chain = build();
    let policy = chain.policy("[datasets]\ndeny = [\"name:corpus-b\"]\n");
    let report = chain.check(&chain.store(&[]), &policy);
    fn find<'a>(hop: &'a modelseal_lineage::Hop, name: &str) -> Option<&'a modelseal_lineage::Hop> {
        if hop.name.as_deref() == Some(name) {
            return Some(hop);
        }
        hop.inputs.iter().find_map(|h| find(h, name))
    }
    let refused = find(&report.root, "corpus-b").unwrap();
    assert!(refused.failure.is_some());
    // Its curator's signature verified before the deny rule refused it.
    let refused_sha = refused.attestations[0].bundle_sha256.clone().unwrap();
    let passed_sha = find(&report.root, "corpus-a").unwrap().attestations[0]
        .bundle_sha256
        .clone()
        .unwrap();
    let input = BomInput {
        report: &report,
        files: vec![],
        signature: report.root.attestations[0].clone(),
        card: None,
        created: "2026-12-02T00:00:00Z".into(),
        serial: [7; 16],
        tool_version: "test",
    };
    let doc = cyclonedx::document(&input);
    let relied: Vec<&str> = doc["metadata"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "modelseal:attestation:sha256")
        .map(|p| p["value"].as_str().unwrap())
        .collect();
    assert!(relied.contains(&passed_sha.as_str()), "{relied:?}");
    assert!(!relied.contains(&refused_sha.as_str()), "{relied:?}");
}

#[test]
fn a_swapped_base_model_is_refused() {
    let mut chain = build();
    // Another model, signed by the same publisher, with its own clean lineage...
    chain.artifact("other-base", ArtifactKind::Model, 9);
    let p = chain.provenance("other-base", &[], &["corpus-a"], None);
    chain.save("other-base", "provenance", &p);
    // ...swapped in as the fine-tune's base.
    chain.bundles.retain(|(name, path)| {
        !(*name == "fine-tuned" && path.to_string_lossy().contains("provenance"))
    });
    let p = chain.provenance("fine-tuned", &["other-base"], &[], None);
    chain.save("fine-tuned", "provenance", &p);
    let allow = format!(
        "[models]\nallow = [\"{}\", \"{}\"]\n",
        chain.digest("base"),
        chain.digest("fine-tuned")
    );
    let (hop, failure) = failure_of(&chain.check(&chain.store(&[]), &chain.policy(&allow)));
    assert_eq!(
        (hop.as_str(), failure),
        ("other-base", HopFailure::NotAllowed)
    );
}

#[test]
fn a_provenance_from_an_untrusted_builder_is_refused() {
    let mut chain = build();
    chain
        .bundles
        .retain(|(name, path)| !(*name == "base" && path.to_string_lossy().contains("provenance")));
    let p = chain.provenance(
        "base",
        &[],
        &["corpus-a", "corpus-b"],
        Some(&chain.keys.rogue),
    );
    chain.save("base", "provenance", &p);
    let (hop, failure) = failure_of(&chain.check(&chain.store(&[]), &chain.policy("")));
    assert_eq!(hop, "base");
    assert!(
        matches!(
            &failure,
            HopFailure::Untrusted {
                role: "training-builder",
                ..
            }
        ),
        "{failure}"
    );
    // And a builder id the policy does not allow, even with a trusted signature.
    let chain = build();
    let policy = chain.policy_with(4, "https://other.example.com", "");
    let report = chain.check(&chain.store(&[]), &policy);
    let (_, failure) = failure_of(&report);
    assert_eq!(failure, HopFailure::Builder(BUILDER.into()));
    // The refused provenance is not among what the hop was accepted on (a BOM lists
    // those), nor is its signer credited.
    let root = &report.root;
    assert!(
        root.attestations
            .iter()
            .all(|a| a.predicate_type != "https://slsa.dev/provenance/v1"),
        "{:?}",
        root.attestations
    );
    assert!(root.runs.is_empty());
    assert_eq!(root.signers, ["release"]);
}

#[test]
fn a_missing_dataset_attestation_is_refused() {
    let chain = build();
    let store = chain.store(&["corpus-a.sig.json"]);
    let (hop, failure) = failure_of(&chain.check(&store, &chain.policy("")));
    assert_eq!(hop, "corpus-a");
    assert_eq!(failure.kind(), "missing-attestation");
}

#[test]
fn a_cycle_is_refused() {
    let mut chain = build();
    // The base model claims to derive from the quantized model, which derives from it.
    chain
        .bundles
        .retain(|(name, path)| !(*name == "base" && path.to_string_lossy().contains("provenance")));
    let p = chain.provenance("base", &["quantized"], &["corpus-a"], None);
    chain.save("base", "provenance", &p);
    let (hop, failure) = failure_of(&chain.check(&chain.store(&[]), &chain.policy("")));
    assert_eq!((hop.as_str(), failure), ("quantized", HopFailure::Cycle));
}

#[test]
fn a_tampered_provenance_is_refused() {
    let chain = build();
    let store = chain.store(&[]);
    // Edit the stored provenance of fine-tuned: claim a higher learning rate.
    let path = Path::new(&chain.digest("fine-tuned").replace(':', "/")).to_path_buf();
    let dir = store_dir(&store).join(path);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        let mut bundle: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let payload = base64_decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap());
        let text = String::from_utf8(payload).unwrap();
        if text.contains("provenance") {
            let edited = text.replace("0.001", "0.002");
            bundle["dsseEnvelope"]["payload"] = base64_encode(edited.as_bytes()).into();
            // Filed under its own hash, as `store add` would file it, so it is read.
            let bytes = serde_json::to_vec(&bundle).unwrap();
            let name = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            std::fs::remove_file(&file).unwrap();
            std::fs::write(dir.join(format!("{name}.json")), bytes).unwrap();
        }
    }
    let (hop, failure) = failure_of(&chain.check(&store, &chain.policy("")));
    assert_eq!(hop, "fine-tuned");
    let HopFailure::Untrusted { reason, .. } = &failure else {
        panic!("{failure}")
    };
    assert!(reason.contains("signature does not verify"), "{reason}");
}

#[test]
fn a_chain_deeper_than_policy_allows_is_refused() {
    let chain = build();
    let policy = chain.policy_with(2, BUILDER, "");
    let (hop, failure) = failure_of(&chain.check(&chain.store(&[]), &policy));
    assert_eq!(
        (hop.as_str(), failure),
        ("corpus-a", HopFailure::TooDeep(2))
    );
}

fn store_dir(store: &AttestationStore) -> PathBuf {
    store.root().to_path_buf()
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_walk_past_its_deadline_stops_instead_of_running_on() {
    let chain = build();
    let (store, policy) = (chain.store(&[]), chain.policy(""));
    let digest = chain.digest("quantized").parse().unwrap();
    let on_time = modelseal_lineage::verify_digest_until(
        &digest,
        &policy,
        &store,
        modelseal_lineage::Stop::at(std::time::Instant::now() + std::time::Duration::from_secs(60)),
    );
    assert!(on_time.passed(), "{:?}", on_time.first_failure());
    let late = modelseal_lineage::verify_digest_until(
        &digest,
        &policy,
        &store,
        modelseal_lineage::Stop::at(std::time::Instant::now()),
    );
    let (_, failure) = failure_of(&late);
    assert_eq!(failure.kind(), "out-of-time");
    assert!(
        late.root.inputs.is_empty(),
        "nothing below the top was walked"
    );
}

#[test]
fn a_lookup_cut_short_by_a_limit_fails_the_hop_rather_than_pass_it_on_what_it_saw() {
    let chain = build();
    // Two junk files with valid-looking names fill the file limit of a store that
    // considers two files per digest: whatever else is there (a provenance naming a
    // denied input, say) is not seen, so the hop cannot pass.
    let store = chain
        .store(&[])
        .with_limits(modelseal_lineage::store::StoreLimits {
            max_files_per_digest: 2,
            ..Default::default()
        });
    let hex = chain
        .digest("corpus-a")
        .strip_prefix("blake3:")
        .unwrap()
        .to_owned();
    let dir = store_dir(&store).join("blake3").join(hex);
    for i in 0..2 {
        std::fs::write(dir.join(format!("{i:064x}.json")), b"junk").unwrap();
    }
    let report = chain.check(&store, &chain.policy(""));
    let (name, failure) = failure_of(&report);
    assert_eq!(failure.kind(), "store-error", "{failure}");
    assert!(
        failure.to_string().contains("lookup incomplete"),
        "{failure}"
    );
    assert_eq!(name, "corpus-a");
}

#[test]
fn two_genuine_signatures_with_different_names_both_count_and_neither_denies() {
    // Failed on main: a second genuine publisher signature naming the same files
    // otherwise (a directory "base" and an image "registry.example.com/base"), or one of
    // another kind filed by anyone, denied the lineage ("its signer named it Some(…)").
    let mut chain = build();
    let dir = chain.path("base");
    for (name, kind) in [
        ("registry.example.com/base", ArtifactKind::Model),
        ("base-as-data", ArtifactKind::Dataset),
    ] {
        let options = SignOptions {
            kind,
            name: Some(name.into()),
            ..SignOptions::default()
        };
        let signed = sign_model(&dir, &options, &chain.keys.publisher, &NoProgress).unwrap();
        chain.save(
            "base",
            if kind == ArtifactKind::Model {
                "image-sig"
            } else {
                "data-sig"
            },
            &signed.bundle,
        );
    }
    let store = chain.store(&[]);
    let report = chain.check(&store, &chain.policy(""));
    assert!(report.passed(), "{:?}", report.first_failure());
    let base = find(&report.root, "base").expect("base is in the tree by its parent's name");
    assert_eq!(base.aliases, ["registry.example.com/base"]);
    // Admission decides the digest from the store alone: the same holds there.
    let by_digest = modelseal_lineage::verify_digest(
        &chain.digest("base").parse().unwrap(),
        &chain.policy(""),
        &store,
    );
    assert!(by_digest.passed(), "{:?}", by_digest.first_failure());
    // A deny rule for either name applies.
    let denied = chain.check(
        &store,
        &chain.policy("[models]\ndeny = [\"name:registry.example.com/*\"]\n"),
    );
    let (_, failure) = failure_of(&denied);
    assert!(matches!(failure, HopFailure::Denied(_)), "{failure}");
    // A name the provenance uses that no trusted signer gave is refused, and the message
    // lists the signed names in plain words.
    let failure = HopFailure::NameMismatch {
        signed: vec!["a".into(), "b".into()],
        claimed: "c".into(),
    };
    assert_eq!(
        failure.to_string(),
        "the provenance calls it \"c\", but its signers named it \"a\" and \"b\""
    );
}

fn find<'a>(hop: &'a modelseal_lineage::Hop, name: &str) -> Option<&'a modelseal_lineage::Hop> {
    if hop.name.as_deref() == Some(name) {
        return Some(hop);
    }
    hop.inputs.iter().find_map(|h| find(h, name))
}

#[test]
fn a_name_rule_meets_every_name_a_trusted_signer_gave_the_top_model() {
    // Failed on main: `verify --lineage` judged name rules against the one signature the
    // caller gave, while admission (by digest, from the store) saw every signed name: a
    // model filed under a denied name passed the CLI and was denied by the webhook.
    let mut chain = build();
    let options = SignOptions {
        name: Some("vendor/recalled".into()),
        ..SignOptions::default()
    };
    let dir = chain.path("quantized");
    let signed = sign_model(&dir, &options, &chain.keys.publisher, &NoProgress).unwrap();
    chain.save("quantized", "recalled-sig", &signed.bundle);
    // The same name signed by a key the policy does not trust is no name of the model.
    let rogue = sign_model(
        &dir,
        &SignOptions {
            name: Some("vendor/rogue".into()),
            ..SignOptions::default()
        },
        &chain.keys.rogue,
        &NoProgress,
    )
    .unwrap();
    chain.save("quantized", "rogue-sig", &rogue.bundle);
    let store = chain.store(&[]);
    let policy = chain.policy("[models]\ndeny = [\"name:vendor/recalled\"]\n");
    let (name, failure) = failure_of(&chain.check(&store, &policy));
    assert!(matches!(failure, HopFailure::Denied(_)), "{failure}");
    assert_eq!(name, "quantized");
    let by_digest = modelseal_lineage::verify_digest(
        &chain.digest("quantized").parse().unwrap(),
        &policy,
        &store,
    );
    assert!(matches!(
        by_digest.first_failure(),
        Some((_, HopFailure::Denied(_)))
    ));
    let report = chain.check(
        &store,
        &chain.policy("[models]\ndeny = [\"name:vendor/rogue\"]\n"),
    );
    assert!(report.passed(), "{:?}", report.first_failure());
    assert_eq!(report.root.aliases, ["vendor/recalled"]);
}

#[test]
fn a_rule_on_the_oci_manifest_a_pulled_directory_was_signed_from_applies_by_its_root() {
    // Failed on main: a model pulled from a registry is signed with the OCI manifest as
    // a second subject; `[models] deny = ["sha256:<manifest>"]` applied to `verify` of
    // that signature but not where the model was found by its BLAKE3 root (admission,
    // an input of another model's provenance, the walk's top).
    let mut chain = build();
    let manifest = "ab".repeat(32);
    for name in ["quantized", "base"] {
        let stated = modelseal_core::state_model(
            &chain.path(name),
            &SignOptions {
                name: Some(format!("registry.example.com/{name}")),
                ..SignOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
        let mut statement = stated.statement;
        statement
            .subject
            .push(modelseal_core::statement::ResourceDescriptor {
                name: Some(format!("registry.example.com/{name}")),
                uri: None,
                digest: [("sha256".to_owned(), manifest.clone())].into(),
                annotations: None,
            });
        let bundle = sign_statement(&statement, &chain.keys.publisher);
        chain.save(name, "pulled-sig", &bundle);
    }
    let store = chain.store(&[]);
    let policy = chain.policy(&format!("[models]\ndeny = [\"sha256:{manifest}\"]\n"));
    let (name, failure) = failure_of(&chain.check(&store, &policy));
    assert_eq!(name, "quantized");
    assert_eq!(failure, HopFailure::Denied(format!("sha256:{manifest}")));
    for top in ["quantized", "base"] {
        let by_digest =
            modelseal_lineage::verify_digest(&chain.digest(top).parse().unwrap(), &policy, &store);
        assert!(
            matches!(by_digest.first_failure(), Some((_, HopFailure::Denied(_)))),
            "{top}: {:?}",
            by_digest.first_failure()
        );
    }
    // Another manifest's digest denies nothing.
    let other = chain.policy(&format!(
        "[models]\ndeny = [\"sha256:{}\"]\n",
        "cd".repeat(32)
    ));
    assert!(chain.check(&store, &other).passed());
}

#[test]
fn a_threshold_of_publishers_holds_at_every_model_hop_and_at_admission() {
    let mut chain = build();
    std::fs::write(
        chain.path("second.pub"),
        chain.keys.rogue.verifying_key().to_pem(),
    )
    .unwrap();
    let two_of_two = r#"
[[signer]]
name = "second"
roles = ["model-publisher"]
key = "second.pub"

[roles.model-publisher]
threshold = "all"
"#;
    // One publisher signed each model: the hops below the top, and the top decided by
    // digest alone (admission), are short of the threshold.
    let store = chain.store(&[]);
    let policy = chain.policy(two_of_two);
    let (hop, failure) = failure_of(&chain.check(&store, &policy));
    assert_eq!(hop, "fine-tuned");
    assert!(
        matches!(&failure, HopFailure::SignersMissing { detail, .. } if detail.contains("second: no signature")),
        "{failure}"
    );
    let quantized = chain.digest("quantized").parse().unwrap();
    let by_digest = modelseal_lineage::verify_digest(&quantized, &policy, &store);
    let (_, failure) = failure_of(&by_digest);
    assert_eq!(failure.kind(), "signers-missing", "{failure}");
    // The same signature filed twice is still one signer.
    let again = chain.path("quantized.sig.json");
    let copy = chain.path("quantized-copy.sig.json");
    std::fs::copy(&again, &copy).unwrap();
    chain.bundles.push(("quantized", copy));
    let store = chain.store(&[]);
    let by_digest = modelseal_lineage::verify_digest(&quantized, &policy, &store);
    assert_eq!(failure_of(&by_digest).1.kind(), "signers-missing");
    // The second publisher co-signs every model: the whole chain passes.
    for name in ["base", "fine-tuned", "quantized"] {
        let signed = sign_model(
            &chain.path(name),
            &SignOptions::default(),
            &chain.keys.rogue,
            &NoProgress,
        )
        .unwrap();
        chain.save(name, "second-sig", &signed.bundle);
    }
    let store = chain.store(&[]);
    let report = chain.check(&store, &policy);
    assert!(report.passed(), "{:?}", report.first_failure());
    let by_digest = modelseal_lineage::verify_digest(&quantized, &policy, &store);
    assert!(by_digest.passed(), "{:?}", by_digest.first_failure());
    for name in ["release", "second"] {
        assert!(by_digest.root.signers.iter().any(|s| s == name), "{name}");
    }
}

/// A native statement binding `manifest_hex` (an OCI manifest) to `model`'s files.
fn oci_binding(
    chain: &Chain,
    model: &str,
    manifest_hex: &str,
    key: &SigningKey,
) -> modelseal_core::Bundle {
    let manifest = modelseal_core::hash_model(
        &chain.path(model),
        &modelseal_core::WalkOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let predicate = modelseal_core::ManifestPredicate {
        kind: ArtifactKind::Model,
        ignore_paths: Vec::new(),
        allow_symlinks: false,
        scope: Some(modelseal_core::statement::Scope::Directory),
        files: manifest.entries().to_vec(),
    };
    let mut statement = modelseal_core::Statement::for_manifest(
        "registry.example.com/evil",
        &manifest.root(),
        predicate,
    );
    statement
        .subject
        .push(modelseal_core::statement::ResourceDescriptor {
            name: Some("registry.example.com/evil".into()),
            uri: None,
            digest: [("sha256".to_owned(), manifest_hex.to_owned())].into(),
            annotations: None,
        });
    sign_statement(&statement, key)
}

#[test]
fn an_oci_binding_by_fewer_signers_than_the_threshold_binds_nothing() {
    // Thirteenth attack review (a wrong yes on main): admission bound an image to a model
    // on one publisher's word, then counted every signature of the model's files, so one
    // key met a 2-of-2 threshold for an image the other signer never named.
    let mut chain = build();
    std::fs::write(
        chain.path("second.pub"),
        chain.keys.rogue.verifying_key().to_pem(),
    )
    .unwrap();
    let policy = chain.policy(
        "[[signer]]\nname = \"second\"\nroles = [\"model-publisher\"]\nkey = \"second.pub\"\n\n[roles.model-publisher]\nthreshold = \"all\"\n",
    );
    // Both publishers signed the files; only the second named the image.
    let signed = sign_model(
        &chain.path("base"),
        &SignOptions::default(),
        &chain.keys.rogue,
        &NoProgress,
    )
    .unwrap();
    chain.save("base", "second-sig", &signed.bundle);
    let evil = "ee".repeat(32);
    let binding = oci_binding(&chain, "base", &evil, &chain.keys.rogue);
    chain.save("base", "binding", &binding);
    let store = chain.store(&[]);
    let manifest: modelseal_oci::OciDigest = format!("sha256:{evil}").parse().unwrap();
    let err = modelseal_lineage::oci::model_of_manifest(
        manifest,
        &policy,
        &store,
        &modelseal_lineage::Stop::never(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            modelseal_lineage::oci::BindingError::SignersMissing { .. }
        ),
        "{err}"
    );
    // The first publisher names the image too: now it is bound.
    let binding = oci_binding(&chain, "base", &evil, &chain.keys.publisher);
    chain.save("base", "binding-2", &binding);
    let store = chain.store(&[]);
    let bound = modelseal_lineage::oci::model_of_manifest(
        manifest,
        &policy,
        &store,
        &modelseal_lineage::Stop::never(),
    )
    .unwrap();
    assert_eq!(format!("blake3:{}", bound.root), chain.digest("base"));
}

#[test]
fn a_name_given_by_a_signature_that_does_not_count_never_meets_an_allow_rule() {
    // Thirteenth attack review (a wrong yes on main): names were taken from every trusted
    // signature, so a role holder outside the threshold's signers (or a hybrid signer's
    // classical half alone) renamed a dataset into the allow list.
    let mut chain = build();
    let intern = key();
    std::fs::write(chain.path("intern.pub"), intern.verifying_key().to_pem()).unwrap();
    let options = SignOptions {
        kind: ArtifactKind::Dataset,
        name: Some("approved-scrape".into()),
        ..SignOptions::default()
    };
    let signed = sign_model(&chain.path("corpus-a"), &options, &intern, &NoProgress).unwrap();
    chain.save("corpus-a", "intern-sig", &signed.bundle);
    let store = chain.store(&[]);
    let policy = |counted: &str| {
        chain.policy(&format!(
            "[[signer]]\nname = \"intern\"\nroles = [\"dataset-curator\"]\nkey = \"intern.pub\"\n\n\
             [roles.dataset-curator]\nthreshold = 1\nsigners = [{counted}]\n\n\
             [datasets]\nallow = [\"name:approved-*\", \"name:corpus-b\"]\n"
        ))
    };
    let report = chain.check(&store, &policy("\"data-team\""));
    let (name, failure) = failure_of(&report);
    assert_eq!(name, "corpus-a");
    assert!(matches!(failure, HopFailure::NotAllowed), "{failure}");
    // Counted, the intern's name is the dataset's too, and meets the allow rule.
    let report = chain.check(&store, &policy("\"data-team\", \"intern\""));
    assert!(report.passed(), "{:?}", report.first_failure());
    // A deny rule still meets a name from a signature that does not count.
    let report = chain.check(
        &store,
        &chain.policy(
            "[[signer]]\nname = \"intern\"\nroles = [\"dataset-curator\"]\nkey = \"intern.pub\"\n\n\
             [roles.dataset-curator]\nthreshold = 1\nsigners = [\"data-team\"]\n\n\
             [datasets]\ndeny = [\"name:approved-*\"]\n",
        ),
    );
    assert!(matches!(failure_of(&report).1, HopFailure::Denied(_)));
}

#[test]
fn a_hybrid_signers_half_alone_names_nothing() {
    // Re-run of the thirteenth attack review's script: a hybrid curator's classical key
    // alone (the half the rule exists to survive) named a dataset into the allow list.
    let mut chain = build();
    let ec = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let pq = SigningKey::generate(KeyAlgorithm::MlDsa65).unwrap();
    std::fs::write(chain.path("hyb-ec.pub"), ec.verifying_key().to_pem()).unwrap();
    std::fs::write(chain.path("hyb-pq.pub"), pq.verifying_key().to_pem()).unwrap();
    let sign_as =
        |chain: &mut Chain, dataset: &'static str, name: &str, key: &SigningKey, tag: &str| {
            let options = SignOptions {
                kind: ArtifactKind::Dataset,
                name: Some(name.into()),
                ..SignOptions::default()
            };
            let signed = sign_model(&chain.path(dataset), &options, key, &NoProgress).unwrap();
            let leaked: &'static str = Box::leak(format!("{tag}-sig").into_boxed_str());
            chain.save(dataset, leaked, &signed.bundle);
        };
    for dataset in ["corpus-a", "corpus-b"] {
        sign_as(&mut chain, dataset, dataset, &ec, "hyb-ec");
        sign_as(&mut chain, dataset, dataset, &pq, "hyb-pq");
    }
    sign_as(&mut chain, "corpus-a", "approved-scrape", &ec, "evil-ec");
    let policy = chain.policy(
        "[[signer]]\nname = \"hybrid\"\nroles = [\"dataset-curator\"]\nkeys = [\"hyb-ec.pub\", \"hyb-pq.pub\"]\nalgorithms = [\"ecdsa-p256\", \"ml-dsa-65\"]\n\n\
         [roles.dataset-curator]\nthreshold = 1\nsigners = [\"hybrid\"]\n\n\
         [datasets]\nallow = [\"name:approved-*\", \"name:corpus-b\"]\n",
    );
    let store = chain.store(&[]);
    let (name, failure) = failure_of(&chain.check(&store, &policy));
    assert_eq!(name, "corpus-a");
    assert!(matches!(failure, HopFailure::NotAllowed), "{failure}");
    // Both halves give the name: it is the dataset's.
    sign_as(&mut chain, "corpus-a", "approved-scrape", &pq, "good-pq");
    let store = chain.store(&[]);
    let report = chain.check(&store, &policy);
    assert!(report.passed(), "{:?}", report.first_failure());
}

#[test]
fn a_name_needs_the_thresholds_signers_and_both_halves_of_a_hybrid_signer() {
    // Fourteenth attack review (wrong yeses on main): under "2 of 3" one counted curator
    // renamed a co-signed dataset into the allow list; and where the dataset's manifest
    // is not required, one half of a hybrid curator named it alone.
    let mut chain = build();
    let [alice, bob] = [key(), key()];
    std::fs::write(chain.path("alice.pub"), alice.verifying_key().to_pem()).unwrap();
    std::fs::write(chain.path("bob.pub"), bob.verifying_key().to_pem()).unwrap();
    let sign_as = |chain: &mut Chain, name: &str, key: &SigningKey, tag: &str| {
        let options = SignOptions {
            kind: ArtifactKind::Dataset,
            name: Some(name.into()),
            ..SignOptions::default()
        };
        let signed = sign_model(&chain.path("corpus-a"), &options, key, &NoProgress).unwrap();
        chain.save("corpus-a", &format!("{tag}-sig"), &signed.bundle);
    };
    // data-team (the chain's curator) and bob co-signed corpus-a by its own name; alice
    // alone calls it approved-corpus.
    sign_as(&mut chain, "corpus-a", &bob, "bob");
    sign_as(&mut chain, "approved-corpus", &alice, "alice");
    // corpus-b meets the threshold too, so what refuses is corpus-a's name.
    let signed = sign_model(
        &chain.path("corpus-b"),
        &SignOptions {
            kind: ArtifactKind::Dataset,
            ..SignOptions::default()
        },
        &bob,
        &NoProgress,
    )
    .unwrap();
    chain.save("corpus-b", "bob-sig", &signed.bundle);
    let store = chain.store(&[]);
    let policy = chain.policy(
        "[[signer]]\nname = \"alice\"\nroles = [\"dataset-curator\"]\nkey = \"alice.pub\"\n\n\
         [[signer]]\nname = \"bob\"\nroles = [\"dataset-curator\"]\nkey = \"bob.pub\"\n\n\
         [roles.dataset-curator]\nthreshold = 2\nsigners = [\"alice\", \"bob\", \"data-team\"]\n\n\
         [datasets]\nallow = [\"name:approved-*\", \"name:corpus-b\"]\n",
    );
    let (name, failure) = failure_of(&chain.check(&store, &policy));
    assert_eq!(name, "corpus-a");
    // corpus-b has one curator only: the threshold fails it first, or corpus-a's name does.
    assert!(
        matches!(
            failure,
            HopFailure::NotAllowed | HopFailure::SignersMissing { .. }
        ),
        "{failure}"
    );
    // With bob agreeing on the name, two signers vouch for it: it counts.
    sign_as(&mut chain, "approved-corpus", &bob, "bob-approves");
    let store = chain.store(&[]);
    let report = chain.check(&store, &policy);
    let corpus_a = find(&report.root, "corpus-a").expect("corpus-a in the tree");
    assert!(
        corpus_a.aliases.contains(&"approved-corpus".to_owned())
            || corpus_a.name.as_deref() == Some("approved-corpus")
    );

    // Manifest not required: a hybrid curator's classical half alone names nothing.
    let mut chain = build();
    let ec = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let pq = SigningKey::generate(KeyAlgorithm::MlDsa65).unwrap();
    std::fs::write(chain.path("hyb-ec.pub"), ec.verifying_key().to_pem()).unwrap();
    std::fs::write(chain.path("hyb-pq.pub"), pq.verifying_key().to_pem()).unwrap();
    sign_as(&mut chain, "approved-corpus", &ec, "half");
    let store = chain.store(&[]);
    let policy = chain.policy(
        "[[signer]]\nname = \"hybrid\"\nroles = [\"dataset-curator\"]\nkeys = [\"hyb-ec.pub\", \"hyb-pq.pub\"]\nalgorithms = [\"ecdsa-p256\", \"ml-dsa-65\"]\n\n\
         [datasets]\nrequire = []\nallow = [\"name:approved-*\", \"name:corpus-b\"]\n",
    );
    let (name, failure) = failure_of(&chain.check(&store, &policy));
    assert!(
        matches!(failure, HopFailure::NotAllowed),
        "{name}: {failure}"
    );
}
