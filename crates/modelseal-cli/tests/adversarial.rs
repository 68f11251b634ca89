//! The adversarial suite: each test tries to talk a "yes" out of modelseal that the
//! signatures and the policy do not support. SECURITY.md maps every attack to the check
//! that stops it and to the test here that proves it.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_exit, assert_refused, modelseal, stderr, stdout};
use modelseal_core::statement::{ResourceDescriptor, STATEMENT_TYPE, Statement};
use modelseal_core::{KeyAlgorithm, SigningKey, sign_statement};
use serde_json::{Value, json};

/// Four signers, a dataset its curator named `scraped-web`, a model and its provenance.
struct Lineage {
    dir: tempfile::TempDir,
    dataset_hex: String,
    model_hex: String,
}

impl Lineage {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let l = Self {
            dir,
            dataset_hex: String::new(),
            model_hex: String::new(),
        };
        for name in ["publisher", "builder", "curator", "verifier"] {
            assert_exit(&modelseal(&[&"keygen", &"--out", &l.p(name)]), 0);
        }
        std::fs::create_dir(l.p("corpus")).unwrap();
        std::fs::write(l.p("corpus/train.jsonl"), b"{\"text\":\"scraped\"}\n").unwrap();
        std::fs::create_dir(l.p("model")).unwrap();
        std::fs::write(l.p("model/weights.bin"), vec![7u8; 4096]).unwrap();
        std::fs::write(l.p("model/config.json"), b"{}").unwrap();
        assert_exit(
            &modelseal(&[
                &"sign",
                &l.p("corpus"),
                &"--kind",
                &"dataset",
                &"--name",
                &"scraped-web",
                &"--key",
                &l.p("curator"),
            ]),
            0,
        );
        assert_exit(
            &modelseal(&[&"sign", &l.p("model"), &"--key", &l.p("publisher")]),
            0,
        );
        let dataset_hex = l.root_of("corpus");
        let model_hex = l.root_of("model");
        Self {
            dataset_hex,
            model_hex,
            ..l
        }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root_of(&self, name: &str) -> String {
        let out = modelseal(&[&"hash", &self.p(name), &"--json"]);
        assert_exit(&out, 0);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["root"]["blake3"].as_str().unwrap().to_owned()
    }

    /// `attest training` for the model with these `--dataset` arguments, into `out`.
    fn attest(&self, datasets: &[&str], out: &str) {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"attest",
            &"training",
            &"--key",
            &"",
            &"--builder-id",
            &"https://ci.example.com/trainer",
            &"--code",
            &"https://example.com/train.git@0123456789abcdef0123456789abcdef01234567",
        ];
        let key = self.p("builder");
        let model = self.p("model");
        let out_path = self.p(out);
        args[3] = &key;
        args.extend_from_slice(&[&"--model", &model, &"--out", &out_path]);
        let specs: Vec<String> = datasets.iter().map(|s| (*s).to_owned()).collect();
        for spec in &specs {
            args.push(&"--dataset");
            args.push(spec);
        }
        assert_exit(&modelseal(&args), 0);
    }

    fn store(&self, store: &str, bundles: &[&Path]) -> PathBuf {
        let store = self.p(store);
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"store", &"add", &store];
        for bundle in bundles {
            args.push(bundle);
        }
        assert_exit(&modelseal(&args), 0);
        store
    }

    /// The usual four signers, then `extra` (rules, `[vsa]`…).
    fn policy(&self, extra: &str) -> PathBuf {
        let text = format!(
            "max_depth = 3\n{extra}\n\
             [[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.pub\"\n\n\
             [[signer]]\nname = \"ci\"\nroles = [\"training-builder\"]\nkey = \"builder.pub\"\n\n\
             [[signer]]\nname = \"data\"\nroles = [\"dataset-curator\"]\nkey = \"curator.pub\"\n\n\
             [[signer]]\nname = \"gate\"\nroles = [\"verifier\"]\nkey = \"verifier.pub\"\n"
        );
        std::fs::write(self.p("policy.toml"), text).unwrap();
        self.p("policy.toml")
    }

    fn verify_lineage(&self, policy: &Path, store: &Path, extra: &[&str]) -> std::process::Output {
        let model = self.p("model");
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"verify",
            &model,
            &"--policy",
            &policy,
            &"--lineage",
            &"--store",
            &store,
        ];
        for e in extra {
            args.push(e);
        }
        modelseal(&args)
    }

    /// The standard store: dataset, model and a provenance naming the dataset by digest.
    fn standard_store(&self) -> PathBuf {
        self.attest(&[&format!("blake3:{}", self.dataset_hex)], "prov.sig");
        self.store(
            "store",
            &[
                &self.p("corpus.sig"),
                &self.p("model.sig"),
                &self.p("prov.sig"),
            ],
        )
    }

    fn key(&self, name: &str) -> SigningKey {
        let pem = std::fs::read_to_string(self.p(name)).unwrap();
        SigningKey::from_pem(&pem, None).unwrap()
    }
}

fn subject(name: &str, hex: &str) -> ResourceDescriptor {
    serde_json::from_value(json!({"name": name, "digest": {"blake3": hex}})).unwrap()
}

fn write_bundle(path: &Path, statement: &Statement, key: &SigningKey) {
    std::fs::write(path, sign_statement(statement, key).to_json()).unwrap();
}

#[test]
fn a_dataset_named_by_digest_only_keeps_its_curators_name_for_deny_rules() {
    let l = Lineage::new();
    let store = l.standard_store();
    let policy = l.policy("[datasets]\ndeny = [\"name:scraped-*\"]\n");
    let out = l.verify_lineage(&policy, &store, &["--json"]);
    assert_exit(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &v["lineage"]["firstFailure"];
    assert_eq!(first["kind"], "denied", "{v:#}");
    assert_eq!(first["name"], "scraped-web", "{v:#}");
    assert_eq!(v["lineage"]["tree"]["inputs"][0]["verdict"], "refused");
}

#[test]
fn a_builder_cannot_rename_a_curator_signed_dataset() {
    let l = Lineage::new();
    l.attest(
        &[&format!("clean-corpus=blake3:{}", l.dataset_hex)],
        "prov.sig",
    );
    let store = l.store(
        "store",
        &[&l.p("corpus.sig"), &l.p("model.sig"), &l.p("prov.sig")],
    );
    // Without a deny rule the rename itself is refused: the hop's name is its curator's.
    let out = l.verify_lineage(&l.policy(""), &store, &["--json"]);
    assert_exit(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["lineage"]["firstFailure"]["kind"], "name-mismatch",
        "{v:#}"
    );
    assert_eq!(v["lineage"]["firstFailure"]["name"], "scraped-web", "{v:#}");
    let message = v["lineage"]["firstFailure"]["message"].as_str().unwrap();
    assert!(message.contains("clean-corpus"), "{message}");
    // And a deny rule on the signed name still bites.
    let out = l.verify_lineage(
        &l.policy("[datasets]\ndeny = [\"name:scraped-*\"]\n"),
        &store,
        &[],
    );
    assert_refused(&out, "scraped-web");
}

#[test]
fn a_dependency_listed_twice_is_refused() {
    let l = Lineage::new();
    let digest = format!("blake3:{}", l.dataset_hex);
    l.attest(&[&digest, &digest], "prov.sig");
    let store = l.store(
        "store",
        &[&l.p("corpus.sig"), &l.p("model.sig"), &l.p("prov.sig")],
    );
    let out = l.verify_lineage(&l.policy(""), &store, &["--json"]);
    assert_exit(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["lineage"]["firstFailure"]["kind"], "duplicate-dependency",
        "{v:#}"
    );
}

#[test]
fn deny_rules_apply_to_the_model_being_verified() {
    let l = Lineage::new();
    let store = l.standard_store();
    for rule in ["name:model", &format!("blake3:{}", l.model_hex)] {
        let policy = l.policy(&format!("[models]\ndeny = [\"{rule}\"]\n"));
        let out = l.verify_lineage(&policy, &store, &[]);
        assert_refused(&out, &format!("denied by policy rule {rule}"));
    }
    // Without --lineage the policy's deny rules still apply to the model itself.
    let model = l.p("model");
    let policy = l.policy("[models]\ndeny = [\"name:model\"]\n");
    let out = modelseal(&[&"verify", &model, &"--policy", &policy]);
    assert_refused(&out, "refused by policy: denied by policy rule name:model");
    // Allow lists name the inputs a run may use; the model verified is not one.
    let policy = l.policy("[models]\nallow = [\"name:other-*\"]\n");
    assert_exit(&l.verify_lineage(&policy, &store, &[]), 0);
}

#[test]
fn digest_case_and_prefix_confusion_is_refused() {
    let l = Lineage::new();
    // A provenance (signed by the trusted builder) whose dataset digest is upper case,
    // under a policy that denies the dataset by its canonical digest.
    let upper = l.dataset_hex.to_ascii_uppercase();
    for (label, digest) in [
        ("upper case", json!({"blake3": upper})),
        (
            "prefixed",
            json!({"blake3": format!("blake3:{}", l.dataset_hex)}),
        ),
        ("short", json!({"blake3": &l.dataset_hex[..32]})),
    ] {
        let provenance = json!({
            "buildDefinition": {
                "buildType": "https://modelseal.dev/buildtypes/training/v1",
                "externalParameters": {},
                "resolvedDependencies": [{
                    "name": "scraped-web", "digest": digest,
                    "annotations": {"modelseal.dev/kind": "dataset"}
                }]
            },
            "runDetails": {"builder": {"id": "https://ci.example.com/trainer"}}
        });
        let statement = Statement {
            statement_type: STATEMENT_TYPE.into(),
            subject: vec![subject("model", &l.model_hex)],
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            predicate: provenance,
        };
        write_bundle(&l.p("prov.sig"), &statement, &l.key("builder"));
        let store_name = format!("store-{}", label.replace(' ', "-"));
        let store = l.store(
            &store_name,
            &[&l.p("corpus.sig"), &l.p("model.sig"), &l.p("prov.sig")],
        );
        let policy = l.policy(&format!(
            "[datasets]\ndeny = [\"blake3:{}\"]\n",
            l.dataset_hex
        ));
        let out = l.verify_lineage(&policy, &store, &["--json"]);
        assert_exit(&out, 1);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["lineage"]["firstFailure"]["kind"], "malformed-digest",
            "{label}: {v:#}"
        );
    }
    // Policy files and the command line take only the canonical form.
    let policy = l.policy(&format!(
        "[datasets]\ndeny = [\"BLAKE3:{}\"]\n",
        l.dataset_hex
    ));
    let out = l.verify_lineage(&policy, &l.p("nowhere"), &[]);
    assert_exit(&out, 2);
}

#[test]
fn junk_and_foreign_bundles_in_the_store_do_not_deny_a_good_model() {
    let l = Lineage::new();
    let store = l.standard_store();
    let policy = l.policy("");
    assert_exit(&l.verify_lineage(&policy, &store, &[]), 0);
    let dataset_dir = store.join("blake3").join(&l.dataset_hex);
    // Files named as the store names them (<sha256 of the content>.json), so they are read.
    let plant = |bytes: &[u8]| {
        let name = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
        std::fs::write(dataset_dir.join(format!("{name}.json")), bytes).unwrap();
    };
    // A file that is not a bundle.
    plant(b"not json");
    // A bundle the trusted curator signed, about another artifact, filed under this one.
    let other = Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![subject("other", &"ab".repeat(32))],
        predicate_type: "https://modelseal.dev/manifest/v1".into(),
        predicate: json!({"kind": "dataset", "files": []}),
    };
    plant(&sign_statement(&other, &l.key("curator")).to_json());
    // A provenance for the dataset (which needs none) by a key nobody trusts.
    let stranger = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let planted = Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![subject("scraped-web", &l.dataset_hex)],
        predicate_type: "https://slsa.dev/provenance/v1".into(),
        predicate: json!({}),
    };
    plant(&sign_statement(&planted, &stranger).to_json());
    // A huge file is skipped unread, by its size.
    let huge =
        std::fs::File::create(dataset_dir.join(format!("{}.json", "00".repeat(32)))).unwrap();
    huge.set_len(64 << 20).unwrap();
    // A copy of the genuine bundle under a name that is not its hash: not read.
    let genuine = std::fs::read(l.p("corpus.sig")).unwrap();
    std::fs::write(
        dataset_dir.join(format!("{}.json", "01".repeat(32))),
        &genuine,
    )
    .unwrap();
    // Thousands of entries not named as the store names them: counted once, never read.
    for i in 0..3000 {
        std::fs::write(dataset_dir.join(format!("!{i:04}.json")), b"").unwrap();
    }
    let out = l.verify_lineage(&policy, &store, &["--json"]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped = v["lineage"]["tree"]["inputs"][0]["skipped"]
        .as_array()
        .unwrap_or_else(|| panic!("no skipped list: {v:#}"));
    let reasons: Vec<&str> = skipped
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 6, "{reasons:#?}");
    for needle in [
        "not a valid Sigstore bundle",
        "about another artifact",
        "names none of the trusted keys",
        "over the limit",
        "not the SHA-256 of its content",
        "3000 entries not named <sha256>.json",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{needle}: {reasons:#?}"
        );
    }
}

#[test]
fn a_trusted_key_in_the_wrong_role_is_refused() {
    let l = Lineage::new();
    // The builder signs the dataset (it is no curator) and the model (it is no publisher).
    assert_exit(
        &modelseal(&[
            &"sign",
            &l.p("corpus"),
            &"--kind",
            &"dataset",
            &"--key",
            &l.p("builder"),
            &"--signature",
            &l.p("corpus-by-builder.sig"),
        ]),
        0,
    );
    l.attest(&[&format!("blake3:{}", l.dataset_hex)], "prov.sig");
    let store = l.store(
        "store",
        &[
            &l.p("corpus-by-builder.sig"),
            &l.p("model.sig"),
            &l.p("prov.sig"),
        ],
    );
    let out = l.verify_lineage(&l.policy(""), &store, &["--json"]);
    assert_exit(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["lineage"]["firstFailure"]["kind"], "untrusted-signer",
        "{v:#}"
    );
    // The provenance signed by the publisher is no provenance either.
    let model = l.p("model");
    let out = modelseal(&[
        &"attest",
        &"training",
        &"--model",
        &model,
        &"--key",
        &l.p("publisher"),
        &"--builder-id",
        &"https://ci.example.com/trainer",
        &"--out",
        &l.p("prov-by-publisher.sig"),
    ]);
    assert_exit(&out, 0);
    let store = l.store(
        "store2",
        &[&l.p("model.sig"), &l.p("prov-by-publisher.sig")],
    );
    let out = l.verify_lineage(&l.policy(""), &store, &[]);
    assert_refused(&out, "not signed by a trusted training-builder");
}

/// Emits a VSA for the standard lineage and returns a store holding the model's own
/// signature and the VSA only.
fn vsa_store(l: &Lineage, extra_policy: &str) -> PathBuf {
    let store = l.standard_store();
    let policy = l.policy(&format!("[vsa]\naccept = true\n{extra_policy}"));
    let out = l.verify_lineage(
        &policy,
        &store,
        &[
            "--emit-vsa",
            l.p("model.vsa.sig").to_str().unwrap(),
            "--vsa-key",
            l.p("verifier").to_str().unwrap(),
        ],
    );
    assert_exit(&out, 0);
    l.store("vsa-store", &[&l.p("model.sig"), &l.p("model.vsa.sig")])
}

#[test]
fn a_vsa_stands_in_for_the_walk_only_under_the_trust_it_was_made_under() {
    let l = Lineage::new();
    let store = vsa_store(&l, "");
    let policy = l.policy("[vsa]\naccept = true\n");
    let out = l.verify_lineage(&policy, &store, &["--json"]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lineage"]["tree"]["viaVsa"], true);
    // Replayed under another policy: refused.
    let other = l.policy("[vsa]\naccept = true\n[builders]\nallow = [\"https://x\"]\n");
    assert_exit(&l.verify_lineage(&other, &store, &[]), 1);
    // The curator's key is rotated (the policy file's bytes are unchanged): every VSA
    // made under the old key stops standing in.
    let policy = l.policy("[vsa]\naccept = true\n");
    std::fs::rename(l.p("curator.pub"), l.p("curator-old.pub")).unwrap();
    assert_exit(
        &modelseal(&[&"keygen", &"--out", &l.p("curator"), &"--force"]),
        0,
    );
    let out = l.verify_lineage(&policy, &store, &["--json"]);
    assert_exit(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lineage"]["tree"]["viaVsa"], false, "{v:#}");
}

#[test]
fn a_summary_is_never_made_from_a_check_that_stood_on_a_summary() {
    // Found by the second attack review: a summary made from a summary recorded depth 0
    // and a fresh time, stretching max_depth and [vsa] max_age without end.
    let l = Lineage::new();
    let store = vsa_store(&l, "");
    let policy = l.policy("[vsa]\naccept = true\n");
    let out = l.verify_lineage(
        &policy,
        &store,
        &[
            "--emit-vsa",
            l.p("laundered.vsa.sig").to_str().unwrap(),
            "--vsa-key",
            l.p("verifier").to_str().unwrap(),
        ],
    );
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("a verification summary is made only from a full walk"),
        "{}",
        stderr(&out)
    );
    assert!(!l.p("laundered.vsa.sig").exists());
}

#[test]
fn a_refused_lineage_is_not_verified_in_the_json_either() {
    // Found by the second attack review: "verified": true beside a refused lineage.
    let l = Lineage::new();
    let store = l.standard_store();
    let policy = l.policy("[datasets]\ndeny = [\"name:scraped-*\"]\n");
    let out = l.verify_lineage(&policy, &store, &["--json"]);
    assert_exit(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lineage"]["passed"], false, "{v:#}");
    assert_eq!(v["verified"], false, "{v:#}");
}

#[test]
fn a_vsa_too_old_or_from_the_future_is_not_accepted() {
    let l = Lineage::new();
    let store = vsa_store(&l, "max_age = \"1h\"\n");
    let policy = l.policy("[vsa]\naccept = true\nmax_age = \"1h\"\n");
    assert_exit(&l.verify_lineage(&policy, &store, &[]), 0);
    // Re-sign the same summary with an old and with a future timeVerified.
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(l.p("model.vsa.sig")).unwrap()).unwrap();
    let payload = base64_decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap());
    let mut statement: Statement = serde_json::from_slice(&payload).unwrap();
    for (label, time) in [
        ("two hours old", "2026-01-01T00:00:00Z"),
        ("from the future", "2999-01-01T00:00:00Z"),
    ] {
        statement.predicate["timeVerified"] = json!(time);
        write_bundle(&l.p("stale.vsa.sig"), &statement, &l.key("verifier"));
        let name = format!("stale-{}", label.replace(' ', "-"));
        let stale = l.store(&name, &[&l.p("model.sig"), &l.p("stale.vsa.sig")]);
        let out = l.verify_lineage(&policy, &stale, &["--json"]);
        assert_exit(&out, 1);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["lineage"]["tree"]["viaVsa"], false, "{label}: {v:#}");
    }
    // A malformed max_age is a policy error.
    let bad = l.policy("[vsa]\naccept = true\nmax_age = \"soon\"\n");
    assert_exit(&l.verify_lineage(&bad, &store, &[]), 2);
}

#[test]
fn a_vsa_never_replaces_the_models_own_signature_in_the_digest_path() {
    use modelseal_lineage::policy::LineagePolicy;
    use modelseal_lineage::store::AttestationStore;
    let l = Lineage::new();
    let store = vsa_store(&l, "");
    let policy = LineagePolicy::read(&l.p("policy.toml")).unwrap();
    let digest: modelseal_core::ArtifactDigest = format!("blake3:{}", l.model_hex).parse().unwrap();
    let report =
        modelseal_lineage::verify_digest(&digest, &policy, &AttestationStore::open(&store));
    assert!(report.passed(), "{:#}", report.to_json());
    // Without the model's own signature in the store, the VSA alone does not admit it.
    let only_vsa = l.store("only-vsa", &[&l.p("model.vsa.sig")]);
    let report =
        modelseal_lineage::verify_digest(&digest, &policy, &AttestationStore::open(&only_vsa));
    assert!(!report.passed(), "{:#}", report.to_json());
    assert_eq!(
        report.first_failure().unwrap().1.kind(),
        "missing-attestation"
    );
}

#[test]
fn a_keyless_signer_in_a_policy_trusts_no_key_and_a_half_written_one_is_refused() {
    let l = Lineage::new();
    let store = l.standard_store();
    let keyless = "[[signer]]\nname = \"ci-keyless\"\nroles = [\"training-builder\"]\n\
         identity = \"https://github.com/org/repo/.github/workflows/train.yml@refs/heads/main\"\n\
         issuer = \"https://token.actions.githubusercontent.com\"\n";
    // Beside the key signers, a keyless one changes nothing for key-signed bundles.
    assert_exit(&l.verify_lineage(&l.policy(keyless), &store, &[]), 0);
    // Alone in its role, it does not vouch for the key-signed provenance.
    let only_keyless = l.policy(keyless).with_file_name("keyless-builder.toml");
    let text = std::fs::read_to_string(l.policy(keyless)).unwrap();
    let without_ci = text.replace(
        "[[signer]]\nname = \"ci\"\nroles = [\"training-builder\"]\nkey = \"builder.pub\"\n",
        "",
    );
    assert_ne!(text, without_ci, "the key builder was removed");
    std::fs::write(&only_keyless, without_ci).unwrap();
    let out = l.verify_lineage(&only_keyless, &store, &[]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("lineage refused") && stderr(&out).contains("provenance"),
        "{}",
        stderr(&out)
    );
    // Half a keyless signer, or one that is also a key, is a policy error (exit 2).
    for (entry, message) in [
        ("identity = \"a@example.com\"\n", "needs an issuer"),
        ("issuer = \"https://x\"\n", "an issuer needs an identity"),
        (
            "identity = \"a@example.com\"\nissuer = \"https://x\"\nkey = \"builder.pub\"\n",
            "not both",
        ),
    ] {
        let policy = l.policy(&format!(
            "[[signer]]\nname = \"half\"\nroles = [\"verifier\"]\n{entry}"
        ));
        let out = l.verify_lineage(&policy, &store, &[]);
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(message), "{entry}: {}", stderr(&out));
    }
}

#[test]
fn a_policy_is_not_widened_by_command_line_trust() {
    let l = Lineage::new();
    let policy = l.policy("");
    let model = l.p("model");
    let other = common::testkey("vector-ed25519.pem.pub");
    let root = common::repo().join("testdata/certs");
    let root = std::fs::read_dir(root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".pem"))
        .unwrap();
    for extra in [
        vec![&"--key" as &dyn AsRef<std::ffi::OsStr>, &other],
        vec![&"--certificate-root", &root],
        vec![&"--identity", &"a@example.com", &"--issuer", &"https://x"],
    ] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"verify", &model, &"--policy", &policy];
        args.extend(extra);
        let out = modelseal(&args);
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains("cannot be used with"),
            "{}",
            stderr(&out)
        );
    }
}

/// An ECDSA-signed OMS v1.0 statement over `resources`, as model-signing would write it.
fn oms_statement(resources: Value, subject_sha256: &str) -> Statement {
    Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![
            serde_json::from_value(json!({"name": "model", "digest": {"sha256": subject_sha256}}))
                .unwrap(),
        ],
        predicate_type: "https://model_signing/signature/v1.0".into(),
        predicate: json!({
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": []},
            "resources": resources,
        }),
    }
}

#[test]
fn statements_that_list_nothing_are_refused_in_every_format() {
    let l = Lineage::new();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    std::fs::write(l.p("p256.pub"), key.verifying_key().to_pem()).unwrap();
    let model = l.p("model");
    let empty_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b""));
    let legacy = Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![],
        predicate_type: "https://model_signing/Digests/v0.1".into(),
        predicate: json!({}),
    };
    let native = Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![subject("model", &hex::encode(blake3::hash(b"").as_bytes()))],
        predicate_type: "https://modelseal.dev/manifest/v1".into(),
        predicate: json!({"kind": "model", "ignorePaths": [], "allowSymlinks": false, "files": []}),
    };
    for (label, statement) in [
        (
            "oms with no resources",
            oms_statement(json!([]), &empty_sha),
        ),
        ("legacy with no subjects", legacy),
        ("native with no files", native),
    ] {
        write_bundle(&l.p("empty.sig"), &statement, &key);
        for extra in [&[][..], &["--ignore-unsigned-files"][..]] {
            let sig = l.p("empty.sig");
            let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
                vec![&"verify", &model, &"--signature", &sig];
            let pubkey = l.p("p256.pub");
            args.push(&"--key");
            args.push(&pubkey);
            for e in extra {
                args.push(e);
            }
            let out = modelseal(&args);
            assert_exit(&out, 1);
            let text = format!("{}{}", stdout(&out), stderr(&out));
            // Native manifests with no files were refused before (the manifest rules).
            assert!(
                text.contains("lists nothing") || text.contains("manifest lists no files"),
                "{label} {extra:?}: {text}"
            );
        }
    }
}

#[test]
fn ed25519_private_keys_are_written_as_rfc8410_v1_and_other_tools_read_them() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k.pem");
    assert_exit(&modelseal(&[&"keygen", &"--out", &key]), 0);
    let pem = std::fs::read_to_string(&key).unwrap();
    let der = base64_decode(
        &pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>(),
    );
    // RFC 8410 §7: SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING }, 48 bytes.
    assert_eq!(der.len(), 48, "{}", hex::encode(&der));
    assert_eq!(&der[..5], &[0x30, 0x2e, 0x02, 0x01, 0x00]);
    if let Ok(out) = std::process::Command::new("openssl")
        .args(["pkey", "-in"])
        .arg(&key)
        .args(["-pubout"])
        .output()
    {
        assert!(
            out.status.success(),
            "openssl pkey: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours = std::fs::read_to_string(tmp.path().join("k.pem.pub")).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ours.trim());
    }
    // Keys written before (PKCS#8 v2, public key attached) still load and sign.
    let model = tmp.path().join("m");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w"), b"x").unwrap();
    assert_exit(
        &modelseal(&[
            &"sign",
            &model,
            &"--key",
            &common::testkey("vector-ed25519.pem"),
        ]),
        0,
    );
}

#[test]
fn a_model_signed_by_a_trusted_key_is_refused_when_it_is_not_the_one_expected() {
    // A trusted publisher signed both; the caller expects the dataset, gets the model.
    let l = Lineage::new();
    let model = l.p("model");
    let verify = |expect: &str| {
        modelseal(&[
            &"verify",
            &model,
            &"--key",
            &l.p("publisher.pub"),
            &"--expect",
            &expect,
        ])
    };
    assert_exit(&verify(&format!("blake3:{}", l.model_hex)), 0);
    assert_refused(
        &verify(&format!("blake3:{}", l.dataset_hex)),
        "not the expected artifact",
    );
    // Same bytes under another algorithm are another artifact; other spellings do not parse.
    assert_refused(
        &verify(&format!("sha256:{}", l.model_hex)),
        "not the expected artifact",
    );
    assert_exit(
        &verify(&format!("blake3:{}", l.model_hex.to_ascii_uppercase())),
        2,
    );
    assert_exit(&verify(&l.model_hex), 2);
}

#[test]
fn sizes_that_overflow_are_not_a_crash() {
    // A signed manifest whose sizes add up past 2^64: inspect shows it, verify refuses it.
    let l = Lineage::new();
    let big = u64::MAX / 2 + 1;
    let files = json!([
        {"path": "a", "size": big, "blake3": "00".repeat(32)},
        {"path": "b", "size": big, "blake3": "11".repeat(32)},
    ]);
    let entries: Vec<modelseal_core::ManifestEntry> =
        serde_json::from_value(files.clone()).unwrap();
    let root = modelseal_core::Manifest::from_sorted(entries)
        .unwrap()
        .root();
    let statement = Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![subject("model", &root.to_hex())],
        predicate_type: "https://modelseal.dev/manifest/v1".into(),
        predicate: json!({"kind": "model", "ignorePaths": [], "allowSymlinks": false, "files": files}),
    };
    write_bundle(&l.p("huge.sig"), &statement, &l.key("publisher"));
    let out = modelseal(&[&"inspect", &l.p("huge.sig")]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("more than 2^64"), "{}", stdout(&out));
    let model = l.p("model");
    let out = modelseal(&[
        &"verify",
        &model,
        &"--signature",
        &l.p("huge.sig"),
        &"--key",
        &l.p("publisher.pub"),
        &"--json",
    ]);
    assert_exit(&out, 1);
}

/// Writes `bundle` to `out` with its (unsigned-for-this-purpose) statement changed by
/// `change`: a forged bundle whose signature no longer matches.
fn with_statement(bundle: &Path, out: &Path, change: impl FnOnce(&mut Value)) {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut json: Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    let payload = base64_decode(json["dsseEnvelope"]["payload"].as_str().unwrap());
    let mut statement: Value = serde_json::from_slice(&payload).unwrap();
    change(&mut statement);
    json["dsseEnvelope"]["payload"] = json!(engine.encode(serde_json::to_vec(&statement).unwrap()));
    std::fs::write(out, serde_json::to_vec(&json).unwrap()).unwrap();
}

/// The digests `store list` shows (none when the store does not exist).
fn stored_digests(store: &Path) -> Value {
    let listed = modelseal(&[&"store", &"list", &store, &"--json"]);
    if listed.status.success() {
        serde_json::from_str::<Value>(&stdout(&listed)).unwrap()["digests"].clone()
    } else {
        json!([])
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

#[test]
fn a_fifo_in_place_of_the_signature_is_refused_at_once_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w.bin"), b"weights").unwrap();
    let signature = dir.path().join("model.sig");
    let made = std::process::Command::new("mkfifo")
        .arg(&signature)
        .status()
        .unwrap();
    assert!(made.success());
    let key = common::testkey("vector-ed25519.pem.pub");
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let out = modelseal(&[&"verify", &model, &"--key", &key, &"--json"]);
        done.send(out).unwrap();
    });
    let out = wait
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("verify waited on a FIFO signature");
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
}

#[test]
fn store_add_adds_nothing_when_one_bundle_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w.bin"), b"weights").unwrap();
    let key = common::testkey("vector-ed25519.pem");
    assert_exit(&modelseal(&[&"sign", &model, &"--key", &key, &"-q"]), 0);
    let store = dir.path().join("store");
    let signature = dir.path().join("model.sig");
    let missing = dir.path().join("missing.sig");
    let out = modelseal(&[&"store", &"add", &store, &signature, &missing, &"--json"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(&format!("cannot add bundle {}", missing.display())),
        "{}",
        stderr(&out)
    );
    let digests = stored_digests(&store);
    assert_eq!(digests, json!([]), "half of the bundles were added");

    // Eleventh attack review (half-applied on main): a well-formed bundle whose statement
    // names no subject passed the first reading, and failed after the first was filed.
    let no_subject = dir.path().join("no-subject.sig");
    with_statement(&signature, &no_subject, |statement| {
        statement["subject"] = json!([])
    });
    let out = modelseal(&[&"store", &"add", &store, &signature, &no_subject]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("no-subject.sig"), "{}", stderr(&out));
    let digests = stored_digests(&store);
    assert_eq!(
        digests,
        json!([]),
        "the first bundle was filed before the second failed"
    );
}

#[test]
fn control_characters_in_planted_file_names_are_shown_escaped() {
    // Tenth attack review: a planted file named "evil\n\x1b[2Kverified OK" printed its
    // newline and escape sequence raw, drawing a fake "verified" line on a terminal.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w.bin"), b"weights").unwrap();
    let key = common::testkey("vector-ed25519.pem");
    assert_exit(&modelseal(&[&"sign", &model, &"--key", &key, &"-q"]), 0);
    std::fs::write(model.join("evil\n\x1b[2Kverified OK"), b"x").unwrap();
    let out = modelseal(&[
        &"verify",
        &model,
        &"--key",
        &common::testkey("vector-ed25519.pem.pub"),
    ]);
    assert_exit(&out, 1);
    let shown = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!shown.contains('\x1b'), "{shown:?}");
    assert!(
        shown.contains("unsigned  evil\\n\\u{1b}[2Kverified OK"),
        "{shown:?}"
    );
    // JSON keeps the name itself.
    let out = modelseal(&[
        &"verify",
        &model,
        &"--key",
        &common::testkey("vector-ed25519.pem.pub"),
        &"--json",
    ]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["unsigned"], json!(["evil\n\x1b[2Kverified OK"]));
}

#[test]
fn outboards_are_all_or_nothing_and_never_inside_the_model() {
    // Eleventh attack review: `outboard` stopped by a changed file left a half-filled
    // outboard directory; `sign --outboard` with the signature inside the model put the
    // outboard directory in the model, which then failed its own verification.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("a.bin"), vec![1u8; 300_000]).unwrap();
    std::fs::write(model.join("b.bin"), vec![2u8; 300_000]).unwrap();
    let key = common::testkey("vector-ed25519.pem");
    let inside = model.join("model.sig");
    let out = modelseal(&[
        &"sign",
        &model,
        &"--key",
        &key,
        &"--signature",
        &inside,
        &"--outboard",
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("inside the model"),
        "{}",
        stderr(&out)
    );
    assert!(!inside.exists() && !model.join("model.sig.outboard").exists());

    let signature = dir.path().join("model.sig");
    assert_exit(&modelseal(&[&"sign", &model, &"--key", &key, &"-q"]), 0);
    std::fs::write(model.join("b.bin"), vec![3u8; 300_000]).unwrap();
    let out = modelseal(&[&"outboard", &model, &"--signature", &signature]);
    assert_exit(&out, 2);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("outboard"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    // Staged and renamed, the outboards of an unchanged model still land beside the
    // signature, and the model verifies.
    std::fs::write(model.join("b.bin"), vec![2u8; 300_000]).unwrap();
    let out = modelseal(&[
        &"sign",
        &model,
        &"--key",
        &key,
        &"--outboard",
        &"--force",
        &"-q",
    ]);
    assert_exit(&out, 0);
    assert!(dir.path().join("model.sig.outboard").is_dir());
    let out = modelseal(&[
        &"verify",
        &model,
        &"--key",
        &common::testkey("vector-ed25519.pem.pub"),
    ]);
    assert_exit(&out, 0);
}

#[test]
fn text_from_an_unverified_bundle_cannot_draw_on_the_terminal() {
    // Eleventh attack review: `inspect` printed a bundle's subject name raw, so escape
    // sequences in a forged bundle could paint a fake "verified" screen.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w.bin"), b"weights").unwrap();
    let key = common::testkey("vector-ed25519.pem");
    let signature = dir.path().join("model.sig");
    assert_exit(&modelseal(&[&"sign", &model, &"--key", &key, &"-q"]), 0);
    let forged = dir.path().join("forged.sig");
    with_statement(&signature, &forged, |statement| {
        statement["subject"][0]["name"] = json!("m\r\x1b[2K\x1b[32mverified OK\u{202e}");
    });
    let inspected = modelseal(&[&"inspect", &forged]);
    let verified = modelseal(&[
        &"verify",
        &model,
        &"--signature",
        &forged,
        &"--key",
        &common::testkey("vector-ed25519.pem.pub"),
    ]);
    assert_exit(&verified, 1);
    for out in [&inspected, &verified] {
        let shown = format!("{}{}", stdout(out), stderr(out));
        assert!(
            !shown.contains('\x1b') && !shown.contains('\r') && !shown.contains('\u{202e}'),
            "{shown:?}"
        );
    }
    assert!(
        stdout(&inspected).contains("\\u{1b}"),
        "{}",
        stdout(&inspected)
    );
}

#[test]
fn a_model_denied_by_its_blake3_root_is_denied_under_an_oms_signature_too() {
    // Eleventh attack review (a wrong yes on main): `[models] deny = ["blake3:ROOT"]`
    // (the root `modelseal hash` prints) refused the native signature and let the same
    // files through under an OMS signature by the same trusted publisher.
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::create_dir(p("model")).unwrap();
    std::fs::write(p("model/w.bin"), vec![7u8; 100_000]).unwrap();
    std::fs::write(p("model/config.json"), b"{}").unwrap();
    let key = common::testkey("ec-p256.priv.pem");
    std::fs::copy(common::testkey("ec-p256.pub.pem"), p("publisher.pub")).unwrap();
    for (format, sig) in [("native", "native.sig"), ("oms", "oms.sig")] {
        let out = modelseal(&[
            &"sign",
            &p("model"),
            &"--key",
            &key,
            &"--format",
            &format,
            &"--signature",
            &p(sig),
            &"-q",
        ]);
        assert_exit(&out, 0);
    }
    let hashed = modelseal(&[&"hash", &p("model")]);
    let root = stdout(&hashed)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let policy = p("policy.toml");
    let write = |extra: &str| {
        std::fs::write(
            &policy,
            format!(
                "max_depth = 1\n{extra}\n[[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.pub\"\n"
            ),
        )
        .unwrap();
    };
    write("");
    for sig in ["native.sig", "oms.sig"] {
        let out = modelseal(&[
            &"verify",
            &p("model"),
            &"--signature",
            &p(sig),
            &"--policy",
            &policy,
        ]);
        assert_exit(&out, 0);
    }
    write(&format!("[models]\ndeny = [\"{root}\"]\n"));
    for sig in ["native.sig", "oms.sig"] {
        let out = modelseal(&[
            &"verify",
            &p("model"),
            &"--signature",
            &p(sig),
            &"--policy",
            &policy,
        ]);
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains(&format!("denied by policy rule {root}")),
            "{sig}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_key_path_with_a_multibyte_character_is_read_as_a_file_not_a_panic() {
    // Found by the device_names fuzzer (a panic on main): the device-name check sliced
    // the key name at a byte inside a character.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w.bin"), b"weights").unwrap();
    for name in [
        "abcdef\u{e9}.pem",
        "ab\u{e9}\u{e9}.pem",
        "awskms\u{e9}\u{e9}.pem",
    ] {
        let key = dir.path().join(name);
        std::fs::copy(common::testkey("vector-ed25519.pem"), &key).unwrap();
        let out = modelseal(&[
            &"sign",
            &model,
            &"--key",
            &name,
            &"--signature",
            &dir.path().join("m.sig"),
            &"--force",
            &"-q",
        ]);
        assert!(
            !stderr(&out).contains("panicked"),
            "{name}: {}",
            stderr(&out)
        );
        assert_exit(&out, 2); // a relative name from another directory: not found, said so
        let out = modelseal(&[
            &"sign",
            &model,
            &"--key",
            &key,
            &"--signature",
            &dir.path().join("m.sig"),
            &"--force",
            &"-q",
        ]);
        assert_exit(&out, 0);
    }
}

#[test]
fn an_oms_model_denied_by_blake3_root_stays_denied_whatever_oms_leaves_out() {
    // Twelfth attack review (wrong yeses on main): the BLAKE3 root judged for an OMS
    // model was the native walk's, so a file OMS does not cover moved the model out of a
    // `blake3:` deny rule: a `.gitattributes` added or edited, an extra file under
    // --ignore-unsigned-files, or (with the signature inside the model, as model-signing
    // lays it out) the rule written from `modelseal hash MODEL`, which counts model.sig.
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::create_dir(p("model")).unwrap();
    std::fs::write(p("model/w.bin"), vec![9u8; 50_000]).unwrap();
    std::fs::write(p("model/config.json"), b"{}").unwrap();
    std::fs::write(p("model/.gitattributes"), b"*.bin filter=lfs\n").unwrap();
    let key = common::testkey("ec-p256.priv.pem");
    std::fs::copy(common::testkey("ec-p256.pub.pem"), p("publisher.pub")).unwrap();
    let sig = p("model/model.sig");
    let out = modelseal(&[
        &"sign",
        &p("model"),
        &"--key",
        &key,
        &"--format",
        &"oms",
        &"--signature",
        &sig,
        &"-q",
    ]);
    assert_exit(&out, 0);
    let root_of = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"hash"];
        let model = p("model");
        args.push(&model);
        for e in extra {
            args.push(e);
        }
        let out = modelseal(&args);
        assert_exit(&out, 0);
        stdout(&out).split_whitespace().next().unwrap().to_owned()
    };
    // The rule as a user would write it, three ways: from `hash MODEL`, leaving the
    // signature out, and leaving out what OMS leaves out.
    let rules = [
        root_of(&[]),
        root_of(&["--ignore", "model.sig"]),
        root_of(&["--ignore", "model.sig", "--ignore", ".gitattributes"]),
    ];
    let policy = p("policy.toml");
    let verify = |rule: &str, extra: &[&str]| {
        std::fs::write(
            &policy,
            format!(
                "[models]\ndeny = [\"{rule}\"]\n[[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.pub\"\n"
            ),
        )
        .unwrap();
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"verify", &"--signature", &sig, &"--policy", &policy];
        for e in extra {
            args.push(e);
        }
        let model = p("model");
        args.push(&model);
        modelseal(&args)
    };
    for (i, rule) in rules.iter().enumerate() {
        let out = verify(rule, &[]);
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains("denied by policy rule"),
            "rule {i}: {}",
            stderr(&out)
        );
    }
    // .gitattributes edited: OMS does not cover it, so the signed files are unchanged and
    // a rule naming them still denies. (A rule that also named the old .gitattributes
    // names bytes nobody signed; SECURITY.md, known gaps.)
    std::fs::write(
        p("model/.gitattributes"),
        b"*.bin filter=lfs\n*.pt filter=lfs\n",
    )
    .unwrap();
    for rule in &rules[2..] {
        let out = verify(rule, &[]);
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains("denied by policy rule"),
            "{}",
            stderr(&out)
        );
    }
    // An extra unsigned file let through by --ignore-unsigned-files.
    std::fs::write(p("model/extra.txt"), b"hello").unwrap();
    let out = verify(&rules[2], &["--ignore-unsigned-files"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("denied by policy rule"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn refusals_never_print_a_bundles_text_raw_to_the_terminal() {
    // Twelfth attack review: a refusal's message quoted untrusted text raw (an unknown
    // bundle key through serde, a bundle's mediaType through verify-bundle), so a crafted
    // bundle could erase the refusal and draw a green "verified" block over it.
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::create_dir(p("m")).unwrap();
    std::fs::write(p("m/a.bin"), b"weights").unwrap();
    assert_exit(&modelseal(&[&"keygen", &"--out", &p("k")]), 0);
    assert_exit(&modelseal(&[&"sign", &p("m"), &"--key", &p("k"), &"-q"]), 0);
    let spoof = "\r\u{1b}[2K\u{1b}[32mverified m (native, 1 file)\u{1b}[0m\u{202e}";
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(p("m.sig")).unwrap()).unwrap();
    bundle[spoof] = json!(1);
    std::fs::write(p("key.sig"), bundle.to_string()).unwrap();
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(p("m.sig")).unwrap()).unwrap();
    bundle["mediaType"] = json!(spoof);
    std::fs::write(p("media.sig"), bundle.to_string()).unwrap();
    for out in [
        modelseal(&[
            &"verify",
            &p("m"),
            &"--signature",
            &p("key.sig"),
            &"--key",
            &p("k.pub"),
        ]),
        modelseal(&[
            &"verify-bundle",
            &p("m/a.bin"),
            &"--bundle",
            &p("media.sig"),
            &"--identity",
            &"x",
            &"--issuer",
            &"y",
        ]),
    ] {
        assert_ne!(out.status.code(), Some(0));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{202e}'),
            "{text:?}"
        );
    }
}

#[test]
fn a_fifo_given_as_a_key_or_policy_is_refused_not_waited_on() {
    // Twelfth attack review: `verify --key FIFO` and `--policy FIFO` hung until a writer
    // came.
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::create_dir(p("m")).unwrap();
    std::fs::write(p("m/a.bin"), b"weights").unwrap();
    assert_exit(&modelseal(&[&"keygen", &"--out", &p("k")]), 0);
    assert_exit(&modelseal(&[&"sign", &p("m"), &"--key", &p("k"), &"-q"]), 0);
    let fifo = p("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for flag in ["--key", "--policy"] {
        let out = std::process::Command::new("timeout")
            .arg("20")
            .arg(env!("CARGO_BIN_EXE_modelseal"))
            .args([
                "verify".as_ref(),
                p("m").as_os_str(),
                flag.as_ref(),
                fifo.as_os_str(),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("not a regular file"),
            "{flag}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn an_oms_shards_file_of_another_length_is_refused_unread() {
    // Fourteenth attack review: a file made sparse and terabytes long was cut into shards
    // in memory and hashed whole before its length was compared with the signed shards.
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::create_dir(p("m")).unwrap();
    std::fs::write(p("m/w.bin"), vec![3u8; 300_000]).unwrap();
    let key = common::testkey("ec-p256.priv.pem");
    assert_exit(
        &modelseal(&[
            &"sign",
            &p("m"),
            &"--key",
            &key,
            &"--format",
            &"oms",
            &"--method",
            &"shards",
            &"--shard-size",
            &"65536",
            &"-q",
        ]),
        0,
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(p("m/w.bin"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let out = std::process::Command::new("timeout")
        .arg("30")
        .arg(env!("CARGO_BIN_EXE_modelseal"))
        .args([
            "verify".as_ref(),
            p("m").as_os_str(),
            "--key".as_ref(),
            common::testkey("ec-p256.pub.pem").as_os_str(),
            "--json".as_ref(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["kind"], "files-mismatch", "{report}");
}
