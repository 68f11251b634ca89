//! OMS predicate rules (`spec/oms.md` §4 and §7): what modelseal refuses that
//! model-signing 1.1.1 accepts, and what it reads the way model-signing writes it.

use std::path::Path;

use modelseal_core::hash::NoProgress;
use modelseal_core::oms::{OmsHash, OmsMethod};
use modelseal_core::statement::Statement;
use modelseal_core::{
    KeyAlgorithm, OmsSignOptions, SigningKey, WalkOptions, sign_model_oms, sign_statement_with,
};
use modelseal_verify::{TrustPolicy, VerifyError, VerifyOptions, verify_model};
use serde_json::{Value, json};
use sha2::Digest;

struct Model {
    dir: tempfile::TempDir,
}

impl Model {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir_all(m.join("sub")).unwrap();
        std::fs::write(m.join("w.bin"), vec![5u8; 3000]).unwrap();
        std::fs::write(m.join("sub/a.txt"), b"abc").unwrap();
        std::fs::write(m.join("empty"), b"").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"outside the model").unwrap();
        Self { dir }
    }
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("m")
    }
}

fn sha(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// A validly signed OMS bundle over hand-made resources, the way another tool might
/// write it; the subject digest is computed over the resources as listed.
fn bundle(
    key: &SigningKey,
    serialization: Value,
    resources: Vec<(&str, &str, String)>,
) -> modelseal_core::Bundle {
    let mut root = sha2::Sha256::new();
    for (_, _, digest) in &resources {
        root.update(hex::decode(digest).unwrap());
    }
    let resources: Vec<Value> = resources
        .into_iter()
        .map(|(name, alg, digest)| json!({"name": name, "algorithm": alg, "digest": digest}))
        .collect();
    let statement: Statement = serde_json::from_value(json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": hex::encode(root.finalize())}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {"serialization": serialization, "resources": resources},
    }))
    .unwrap();
    let hint = key.verifying_key().pem_hint();
    let material = modelseal_core::bundle::VerificationMaterial {
        public_key: Some(modelseal_core::bundle::PublicKeyIdentifier { hint: Some(hint) }),
        ..Default::default()
    };
    sign_statement_with(&statement, key, material)
}

/// The message and every cause under it, as the CLI prints them.
fn chain(err: &VerifyError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

fn files_sha256() -> Value {
    json!({"method": "files", "hash_type": "sha256", "allow_symlinks": false})
}

fn verify(
    model: &Path,
    bundle: &modelseal_core::Bundle,
    key: &SigningKey,
    ignore_unsigned: bool,
) -> Result<(), VerifyError> {
    let policy = TrustPolicy::from_keys(vec![key.verifying_key()]);
    let mut options = VerifyOptions::default();
    options.ignore_unsigned_files = ignore_unsigned;
    // The model holds an empty file, which a shards signature cannot list (refused by
    // default: tests/loading_formats.rs); the files method lists it and ignores this.
    options.allow_unlisted_empty_files = true;
    verify_model(model, bundle, &policy, &options, &NoProgress).map(drop)
}

fn good_resources() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("empty", "sha256", sha(b"")),
        ("sub/a.txt", "sha256", sha(b"abc")),
        ("w.bin", "sha256", sha(&[5u8; 3000])),
    ]
}

#[test]
fn hand_made_bundle_in_any_order_verifies() {
    let m = Model::new();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut resources = good_resources();
    resources.reverse();
    verify(
        &m.path(),
        &bundle(&key, files_sha256(), resources),
        &key,
        false,
    )
    .unwrap();
}

#[test]
fn a_signed_name_outside_the_model_is_refused_before_any_read() {
    let m = Model::new();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut resources = good_resources();
    // The digest is right: model-signing --ignore_unsigned_files accepts this bundle.
    resources.push(("../secret.txt", "sha256", sha(b"outside the model")));
    for ignore_unsigned in [false, true] {
        let err = verify(
            &m.path(),
            &bundle(&key, files_sha256(), resources.clone()),
            &key,
            ignore_unsigned,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "malformed-predicate", "{err}");
        assert!(chain(&err).contains("\"../secret.txt\""), "{}", chain(&err));
    }
    for bad in ["/etc/hostname", "sub/../w.bin", "./w.bin", "sub//a.txt"] {
        let mut resources = good_resources();
        resources.push((bad, "sha256", sha(b"x")));
        let err = verify(
            &m.path(),
            &bundle(&key, files_sha256(), resources),
            &key,
            true,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "malformed-predicate", "{bad}: {err}");
    }
}

#[test]
fn ignore_unsigned_files_checks_only_signed_names() {
    let m = Model::new();
    std::fs::write(m.path().join("unsigned.py"), b"x").unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let b = bundle(&key, files_sha256(), good_resources());
    let err = verify(&m.path(), &b, &key, false).unwrap_err();
    let VerifyError::Files(mismatch) = &err else {
        panic!("{err}")
    };
    assert_eq!(mismatch.extra, ["unsigned.py"]);
    verify(&m.path(), &b, &key, true).unwrap();
    // A signed file that is missing is still reported.
    std::fs::remove_file(m.path().join("sub/a.txt")).unwrap();
    let err = verify(&m.path(), &b, &key, true).unwrap_err();
    let VerifyError::Files(mismatch) = &err else {
        panic!("{err}")
    };
    assert_eq!(mismatch.missing, ["sub/a.txt"]);
    // A symlink on the way to a signed name is refused, not followed.
    std::fs::remove_dir_all(m.path().join("sub")).unwrap();
    std::os::unix::fs::symlink(m.dir.path(), m.path().join("sub")).unwrap();
    let err = verify(&m.path(), &b, &key, true).unwrap_err();
    assert_eq!(err.kind(), "model-walk-refused", "{err}");
}

#[test]
fn duplicates_and_unknown_settings_are_refused() {
    let m = Model::new();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut dup = good_resources();
    dup.insert(0, ("w.bin", "sha256", sha(b"wrong")));
    let err = verify(&m.path(), &bundle(&key, files_sha256(), dup), &key, false).unwrap_err();
    assert_eq!(err.kind(), "invalid-manifest", "{err}");
    assert!(
        chain(&err).contains("w.bin is listed more than once"),
        "{err}"
    );

    let cases = [
        (
            json!({"method": "tree", "hash_type": "sha256"}),
            "unknown serialization method",
        ),
        (
            json!({"method": "files", "hash_type": "md5"}),
            "unknown hash type",
        ),
        (
            json!({"method": "shards", "hash_type": "sha256", "shard_size": 0}),
            "positive whole shard_size",
        ),
        (
            json!({"method": "shards", "hash_type": "sha256", "shard_size": 1.5}),
            "positive whole shard_size",
        ),
        (
            json!({"method": "files", "hash_type": "sha256", "ignore_paths": ["."]}),
            "recorded ignore path \".\"",
        ),
        (
            json!({"method": "files", "hash_type": "sha256", "ignore_paths": ["../x"]}),
            "recorded ignore path \"../x\"",
        ),
        (
            json!({"method": "files", "hash_type": "sha256", "ignore_paths": ["*.bin"]}),
            "recorded ignore path \"*.bin\"",
        ),
        (
            json!({"method": "files", "hash_type": "blake3"}),
            "has algorithm \"sha256\", the serialization says \"blake3\"",
        ),
    ];
    for (serialization, message) in cases {
        let err = verify(
            &m.path(),
            &bundle(&key, serialization, good_resources()),
            &key,
            false,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "malformed-predicate", "{err}");
        assert!(
            chain(&err).contains(message),
            "want {message:?}: {}",
            chain(&err)
        );
    }
}

#[test]
fn shard_size_written_as_a_float_is_read() {
    let m = Model::new();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
    let data = [5u8; 3000];
    let resources = vec![
        ("sub/a.txt:0:3", "sha256-sharded-1024", sha(b"abc")),
        ("w.bin:0:1024", "sha256-sharded-1024", sha(&data[..1024])),
        (
            "w.bin:1024:2048",
            "sha256-sharded-1024",
            sha(&data[1024..2048]),
        ),
        ("w.bin:2048:3000", "sha256-sharded-1024", sha(&data[2048..])),
    ];
    let serialization = json!({"method": "shards", "hash_type": "sha256", "shard_size": 1024.0, "allow_symlinks": false});
    verify(
        &m.path(),
        &bundle(&key, serialization, resources),
        &key,
        false,
    )
    .unwrap();
}

#[test]
fn every_method_and_hash_round_trips_and_detects_tampering() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP521).unwrap();
    for hash in [OmsHash::Sha256, OmsHash::Blake2b, OmsHash::Blake3] {
        for method in [OmsMethod::Files, OmsMethod::Shards { size: 1000 }] {
            let m = Model::new();
            if hash == OmsHash::Blake3 && method != OmsMethod::Files {
                // model-signing has no BLAKE3 shards, so modelseal does not write them.
                let options = OmsSignOptions {
                    name: None,
                    method,
                    hash,
                    walk: WalkOptions::default(),
                    certificate_chain: None,
                };
                let err = sign_model_oms(&m.path(), &options, &key, &NoProgress).unwrap_err();
                assert!(err.to_string().contains("no BLAKE3 shards"), "{err}");
                continue;
            }
            let signature = m.path().join("model.sig");
            let options = OmsSignOptions {
                name: None,
                method,
                hash,
                walk: WalkOptions {
                    exclude_files: vec![signature.clone()],
                    ..WalkOptions::default()
                },
                certificate_chain: None,
            };
            let signed = sign_model_oms(&m.path(), &options, &key, &NoProgress).unwrap();
            std::fs::write(&signature, signed.bundle.to_json()).unwrap();
            let policy = TrustPolicy::from_keys(vec![key.verifying_key()]);
            let mut verify_options = VerifyOptions::default();
            verify_options.walk.exclude_files = vec![signature.clone()];
            verify_options.allow_unlisted_empty_files = true;
            verify_model(
                &m.path(),
                &signed.bundle,
                &policy,
                &verify_options,
                &NoProgress,
            )
            .unwrap_or_else(|e| panic!("{hash:?} {method:?}: {e}"));
            let mut data = std::fs::read(m.path().join("w.bin")).unwrap();
            data[2500] ^= 1;
            std::fs::write(m.path().join("w.bin"), data).unwrap();
            let err = verify_model(
                &m.path(),
                &signed.bundle,
                &policy,
                &verify_options,
                &NoProgress,
            )
            .unwrap_err();
            let VerifyError::Files(mismatch) = &err else {
                panic!("{err}")
            };
            let expected = if method == OmsMethod::Files {
                "w.bin"
            } else {
                "w.bin:2000:3000"
            };
            assert_eq!(mismatch.modified.len(), 1, "{hash:?} {method:?}");
            assert_eq!(mismatch.modified[0].path, expected);
        }
    }
}
