//! What the server tests share: a signed world on disk (a dataset, a model trained on it,
//! a model by an untrusted key, the store and the policy), certificates made with the
//! openssl command, a configuration, and an HTTPS client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use modelseal_core::hash::NoProgress;
use modelseal_core::provenance::{
    BuildDefinition, Builder, DependencyKind, Provenance, RunDetails, TRAINING_BUILD_TYPE,
    dependency, provenance_statement,
};
use modelseal_core::{
    ArtifactKind, KeyAlgorithm, SignOptions, SigningKey, sign_model, sign_statement,
};
use modelseal_lineage::store::AttestationStore;
use modelseal_webhook::config::Config;
use serde_json::{Value, json};

pub struct World {
    pub dir: tempfile::TempDir,
    pub model: String,
    pub rogue_model: String,
    pub dataset_name: String,
    /// The key the policy trusts as `model-publisher`.
    pub publisher: SigningKey,
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A CA and a serving certificate for 127.0.0.1, made with the openssl command.
pub fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=modelseal-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tls.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

pub fn key() -> SigningKey {
    SigningKey::generate(KeyAlgorithm::Ed25519).unwrap()
}

/// A dataset and a model trained on it, both signed, the run attested, all stored; and a
/// second model signed by a key the policy does not trust.
pub fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let (publisher, builder, curator, rogue) = (key(), key(), key(), key());
    for (name, k) in [
        ("publisher", &publisher),
        ("builder", &builder),
        ("curator", &curator),
    ] {
        std::fs::write(d.join(format!("{name}.pub")), k.verifying_key().to_pem()).unwrap();
    }
    let make = |name: &str, seed: u8| {
        let path = d.join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("data.bin"), vec![seed; 10_000]).unwrap();
        path
    };
    let store = AttestationStore::open(&d.join("store"));
    let save = |name: &str, bundle: &modelseal_core::Bundle| {
        let file = d.join(format!("{name}.json"));
        std::fs::write(&file, bundle.to_json()).unwrap();
        store.add(&file).unwrap();
    };
    let dataset = sign_model(
        &make("corpus", 1),
        &SignOptions {
            kind: ArtifactKind::Dataset,
            ..SignOptions::default()
        },
        &curator,
        &NoProgress,
    )
    .unwrap();
    save("corpus.sig", &dataset.bundle);
    let model = sign_model(
        &make("model", 2),
        &SignOptions::default(),
        &publisher,
        &NoProgress,
    )
    .unwrap();
    save("model.sig", &model.bundle);
    let provenance = Provenance {
        build_definition: BuildDefinition {
            build_type: TRAINING_BUILD_TYPE.into(),
            external_parameters: json!({}),
            internal_parameters: None,
            resolved_dependencies: vec![dependency(
                DependencyKind::Dataset,
                Some("corpus".into()),
                None,
                BTreeMap::from([("blake3".into(), dataset.root.to_hex())]),
            )],
        },
        run_details: RunDetails {
            builder: Builder {
                id: "https://ci.example.com/trainer".into(),
            },
            metadata: None,
        },
    };
    save(
        "model.provenance",
        &sign_statement(
            &provenance_statement("model", &model.root, &provenance),
            &builder,
        ),
    );
    let rogue_model = sign_model(
        &make("rogue", 3),
        &SignOptions::default(),
        &rogue,
        &NoProgress,
    )
    .unwrap();
    save("rogue.sig", &rogue_model.bundle);
    write_policy(d, "");
    World {
        model: format!("blake3:{}", model.root),
        rogue_model: format!("blake3:{}", rogue_model.root),
        dataset_name: "corpus".into(),
        publisher,
        dir,
    }
}

pub fn write_policy(dir: &Path, extra: &str) {
    let policy = format!(
        "{extra}\n[[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.pub\"\n\n\
         [[signer]]\nname = \"ci\"\nroles = [\"training-builder\"]\nkey = \"builder.pub\"\n\n\
         [[signer]]\nname = \"data\"\nroles = [\"dataset-curator\"]\nkey = \"curator.pub\"\n"
    );
    // Write then rename, as a config management tool would: readers never see half a file.
    let tmp = dir.join("policy.toml.tmp");
    std::fs::write(&tmp, policy).unwrap();
    std::fs::rename(tmp, dir.join("policy.toml")).unwrap();
}

pub fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "listen = \"127.0.0.1:0\"\ntls_cert = \"tls.pem\"\ntls_key = \"tls.key\"\npolicy = \"policy.toml\"\nstore = \"store\"\nreload_interval_ms = 100\n{extra}"
    );
    let path = dir.join(format!("config-{}.toml", extra.len()));
    std::fs::write(&path, text).unwrap();
    Config::read(&path).unwrap()
}

pub fn client(dir: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

pub fn review(uid: &str, annotations: Value, dry_run: bool) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "ml",
            "operation": "CREATE",
            "dryRun": dry_run,
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "server", "annotations": annotations}},
        }
    })
}

pub async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Signs a small model of its own under `dir/models/NAME` with `key` and stores the
/// signature; returns its digest.
pub fn signed_model(dir: &Path, name: &str, key: &SigningKey) -> String {
    let path = dir.join("models").join(name);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("weights.bin"), name.as_bytes()).unwrap();
    let signed = sign_model(&path, &SignOptions::default(), key, &NoProgress).unwrap();
    let file = dir.join("models").join(format!("{name}.sig"));
    std::fs::write(&file, signed.bundle.to_json()).unwrap();
    AttestationStore::open(&dir.join("store"))
        .add(&file)
        .unwrap();
    format!("blake3:{}", signed.root)
}

/// The value of an unlabelled metric in an OpenMetrics page.
pub fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
}
