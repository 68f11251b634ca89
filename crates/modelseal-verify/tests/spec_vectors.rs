//! The vectors in `spec/vectors/` are the contract between the code and the spec.
//!
//! Each vector is made here from its description, then compared with the committed file:
//! a change of format fails this test until the vectors (and the spec) are re-made with
//! `MODELSEAL_WRITE_VECTORS=1 cargo test -p modelseal-verify --test spec_vectors`.
//! Bundle vectors are also verified with `modelseal-verify` and must fail with exactly
//! their `expect` kind. `spec/vectors/check_vectors.py` checks the same files
//! independently of this code.

use std::path::{Path, PathBuf};

use modelseal_core::statement::{MANIFEST_PREDICATE_TYPE, Statement};
use modelseal_core::walk::WalkOptions;
use modelseal_core::{
    Blake3Digest, Bundle, ManifestPath, SigningKey, VerifyingKey, merkle, sign_statement,
};
use modelseal_verify::{TrustPolicy, VerifyOptions, verify_model};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn key(name: &str) -> SigningKey {
    let pem = std::fs::read_to_string(repo().join("testdata/keys").join(name)).unwrap();
    SigningKey::from_pem(&pem, None).unwrap()
}

type Files = Vec<(&'static str, Vec<u8>)>;

fn files_json(files: &Files) -> Value {
    files
        .iter()
        .map(|(path, content)| json!({"path": path, "contentHex": hex::encode(content)}))
        .collect()
}

/// Manifest entries for `files`, in manifest order, with each leaf for the reader.
fn manifest_of(files: &Files) -> Vec<Value> {
    let mut sorted = files.clone();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    sorted
        .iter()
        .map(|(path, content)| {
            let digest = Blake3Digest::from(blake3::hash(content));
            let leaf = merkle::leaf_hash(
                &ManifestPath::parse(path).unwrap(),
                content.len() as u64,
                &digest,
            );
            json!({"path": path, "size": content.len(), "blake3": digest, "leaf": leaf})
        })
        .collect()
}

fn root_of(entries: &[Value]) -> Blake3Digest {
    let leaves: Vec<Blake3Digest> = entries
        .iter()
        .map(|e| e["leaf"].as_str().unwrap().parse().unwrap())
        .collect();
    merkle::root(&leaves).unwrap()
}

fn predicate_files(entries: &[Value]) -> Value {
    entries
        .iter()
        .map(|e| json!({"path": e["path"], "size": e["size"], "blake3": e["blake3"]}))
        .collect()
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Compares `vector` with the committed file, or writes it when asked to.
fn check_or_write(kind: &str, name: &str, vector: &Value) {
    let path = repo()
        .join("spec/vectors")
        .join(kind)
        .join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(vector).unwrap() + "\n";
    if std::env::var_os("MODELSEAL_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; re-make the vectors (see this file's docs)",
            path.display()
        )
    });
    assert_eq!(
        committed,
        text,
        "{} no longer matches the code",
        path.display()
    );
}

fn manifest_cases() -> Vec<(&'static str, &'static str, Files)> {
    vec![
        (
            "single-file",
            "one entry: the root is that entry's leaf",
            vec![("model.bin", bytes(256, 7))],
        ),
        (
            "two-files",
            "the worked example of manifest.md §6",
            vec![("a.txt", b"hello\n".to_vec()), ("b/c.bin", vec![0, 1, 2])],
        ),
        (
            "sort-order",
            "bytewise order: 'B' < 'a-b' < 'a.txt' < 'a/b.txt' < 'z' < 'é.txt'",
            vec![
                ("é.txt", b"e".to_vec()),
                ("a/b.txt", b"ab".to_vec()),
                ("z", b"z".to_vec()),
                ("a.txt", b"a".to_vec()),
                ("B", b"B".to_vec()),
                ("a-b", b"-".to_vec()),
            ],
        ),
        (
            "five-files-with-empty",
            "n = 5 splits 4 + 1; an empty file hashes to blake3 of no bytes",
            vec![
                ("empty", vec![]),
                ("one", vec![1]),
                ("dir/two", vec![2, 2]),
                ("dir/sub/three", vec![3, 3, 3]),
                (".hidden", b"dot-files are signed".to_vec()),
            ],
        ),
        (
            "chunk-boundaries",
            "file sizes around BLAKE3's 1024-byte chunk: 1023, 1024, 1025, 2048, 4097",
            vec![
                ("c1023", bytes(1023, 1)),
                ("c1024", bytes(1024, 2)),
                ("c1025", bytes(1025, 3)),
                ("c2048", bytes(2048, 4)),
                ("c4097", bytes(4097, 5)),
                ("c0", vec![]),
                ("c1", vec![9]),
            ],
        ),
    ]
}

#[test]
fn manifest_vectors() {
    for (name, comment, files) in manifest_cases() {
        let entries = manifest_of(&files);
        let root = root_of(&entries);
        // The vector's root must be what the library computes from a real directory.
        let dir = tempfile::tempdir().unwrap();
        let model = write_model(dir.path(), &files);
        let manifest = modelseal_core::hash_model(
            &model,
            &WalkOptions::default(),
            &modelseal_core::hash::NoProgress,
        )
        .unwrap();
        assert_eq!(manifest.root(), root, "{name}");
        let vector = json!({
            "name": name,
            "comment": comment,
            "expect": "ok",
            "files": files_json(&files),
            "manifest": entries,
            "root": root,
        });
        check_or_write("manifest", name, &vector);
    }
}

fn fake_entry(path: &str) -> Value {
    json!({"path": path, "size": 1, "blake3": "00".repeat(32)})
}

#[test]
fn invalid_manifest_vectors() {
    let cases: Vec<(&str, &str, &str, Vec<Value>)> = vec![
        (
            "duplicate-path",
            "invalid-manifest",
            "the same path twice",
            vec![fake_entry("a"), fake_entry("a")],
        ),
        (
            "unsorted",
            "invalid-manifest",
            "entries out of bytewise order",
            vec![fake_entry("b"), fake_entry("a")],
        ),
        (
            "file-dir-clash",
            "invalid-manifest",
            "'a' is a file and a directory",
            vec![fake_entry("a"), fake_entry("a/b")],
        ),
        (
            "file-dir-clash-apart",
            "invalid-manifest",
            "'a' is a file and a directory; the two entries are not adjacent in sorted order",
            vec![fake_entry("a"), fake_entry("a-b"), fake_entry("a/b")],
        ),
        ("empty", "invalid-manifest", "no entries", vec![]),
        (
            "parent-component",
            "malformed-predicate",
            "'..' climbs out of the model",
            vec![fake_entry("../secret.txt")],
        ),
        (
            "absolute-path",
            "malformed-predicate",
            "absolute path",
            vec![fake_entry("/etc/passwd")],
        ),
        (
            "backslash",
            "malformed-predicate",
            "backslash is refused",
            vec![fake_entry("a\\b")],
        ),
        (
            "nul",
            "malformed-predicate",
            "NUL is refused",
            vec![fake_entry("a\u{0}b")],
        ),
        (
            "dot-component",
            "malformed-predicate",
            "'.' component",
            vec![fake_entry("./a")],
        ),
        (
            "empty-component",
            "malformed-predicate",
            "empty component",
            vec![fake_entry("a//b")],
        ),
        (
            "too-long",
            "malformed-predicate",
            "a path of 4097 bytes",
            vec![fake_entry(&"a".repeat(4097))],
        ),
        (
            "uppercase-hex",
            "malformed-predicate",
            "file hashes are lowercase hex only",
            vec![json!({"path": "a", "size": 1, "blake3": "AB".repeat(32)})],
        ),
        (
            "bad-ignore-path",
            "malformed-predicate",
            "ignorePaths obey the path rules too: '../x'",
            vec![fake_entry("a")],
        ),
    ];
    for (name, expect, comment, entries) in cases {
        let ignore = if name == "bad-ignore-path" {
            json!(["../x"])
        } else {
            json!([])
        };
        let predicate = json!({"kind": "model", "ignorePaths": ignore, "allowSymlinks": false, "files": entries});
        let outcome =
            match serde_json::from_value::<modelseal_core::ManifestPredicate>(predicate.clone()) {
                Err(_) => "malformed-predicate",
                Ok(p) => match modelseal_core::Manifest::from_sorted(p.files) {
                    Ok(_) => "ok",
                    Err(_) => "invalid-manifest",
                },
            };
        assert_eq!(outcome, expect, "{name}");
        let vector =
            json!({"name": name, "comment": comment, "expect": expect, "predicate": predicate});
        check_or_write("manifest-invalid", name, &vector);
    }
}

fn write_model(dir: &Path, files: &Files) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for (path, content) in files {
        let target = model.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, content).unwrap();
    }
    model
}

const IN_TOTO: &str = "application/vnd.in-toto+json";

fn statement_with(subject_root: &str, predicate_type: &str, predicate: Value) -> Statement {
    serde_json::from_value(json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"blake3": subject_root}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .unwrap()
}

fn statement(subject_root: &str, predicate_type: &str, files: Value) -> Statement {
    statement_with(
        subject_root,
        predicate_type,
        json!({"kind": "model", "ignorePaths": [], "allowSymlinks": false, "files": files}),
    )
}

fn to_value(bundle: &Bundle) -> Value {
    serde_json::from_slice(&bundle.to_json()).unwrap()
}

/// Signs arbitrary payload bytes under `payload_type`.
fn sign_payload(payload_type: &str, payload: &[u8], key: &SigningKey) -> Value {
    let mut bundle = sign_statement(&statement(&"00".repeat(32), "x", json!([])), key);
    bundle.dsse_envelope.payload_type = payload_type.to_owned();
    bundle.dsse_envelope.payload = payload.to_vec();
    bundle.dsse_envelope.signatures[0].sig =
        key.sign(&modelseal_core::dsse::pae(payload_type, payload));
    to_value(&bundle)
}

#[test]
fn bundle_vectors() {
    let signer = key("vector-ed25519.pem");
    let other = key("other-ed25519.pem");
    let files: Files = vec![
        ("config.json", br#"{"hidden_size":8}"#.to_vec()),
        ("weights/model.safetensors", bytes(3000, 11)),
        ("README.md", b"# vector model\n".to_vec()),
    ];
    let entries = manifest_of(&files);
    let root = root_of(&entries).to_hex();
    let good = statement(&root, MANIFEST_PREDICATE_TYPE, predicate_files(&entries));
    let good_bundle = to_value(&sign_statement(&good, &signer));
    let signed = |s: &Statement| to_value(&sign_statement(s, &signer));

    let mut cases: Vec<(&str, &str, &str, Value, Files)> = Vec::new();
    cases.push((
        "ok",
        "ok",
        "a valid signature over the model's files",
        good_bundle.clone(),
        files.clone(),
    ));

    // A dataset with a recorded ignore path; the ignored directory holds an unsigned file.
    let mut dataset_files = files.clone();
    dataset_files.push(("scratch/notes.txt", b"not signed".to_vec()));
    let dataset = statement_with(
        &root,
        MANIFEST_PREDICATE_TYPE,
        json!({"kind": "dataset", "ignorePaths": ["scratch"], "allowSymlinks": false, "files": predicate_files(&entries)}),
    );
    cases.push((
        "ok-dataset-ignore-path",
        "ok",
        "kind dataset; files under the recorded ignore path are not checked",
        signed(&dataset),
        dataset_files,
    ));

    // The recorded scope (statement.md §3): every vector's model is a directory.
    for (scope, name, expect, comment) in [
        (
            "directory",
            "ok-scope-directory",
            "ok",
            "scope directory, verified as the directory it names",
        ),
        (
            "file",
            "wrong-scope",
            "wrong-scope",
            "scope file: a single file's signature, offered for a directory",
        ),
    ] {
        let scoped = statement_with(
            &root,
            MANIFEST_PREDICATE_TYPE,
            json!({"kind": "model", "ignorePaths": [], "allowSymlinks": false, "scope": scope, "files": predicate_files(&entries)}),
        );
        cases.push((name, expect, comment, signed(&scoped), files.clone()));
    }

    let mut tampered = good_bundle.clone();
    let text = String::from_utf8(sign_statement(&good, &signer).dsse_envelope.payload).unwrap();
    let edited = text.replacen("\"size\":3000", "\"size\":3001", 1);
    assert_ne!(edited, text);
    tampered["dsseEnvelope"]["payload"] = json!(base64_standard(edited.as_bytes()));
    cases.push((
        "tampered-payload",
        "bad-signature",
        "statement edited after signing",
        tampered,
        files.clone(),
    ));

    let mut bad_sig = good_bundle.clone();
    bad_sig["dsseEnvelope"]["signatures"][0]["sig"] = json!(base64_standard(&[0u8; 64]));
    cases.push((
        "zero-signature",
        "bad-signature",
        "64 zero bytes instead of a signature",
        bad_sig,
        files.clone(),
    ));

    cases.push((
        "untrusted-signer",
        "untrusted-signer",
        "signed by a key the verifier does not trust (and named by its hint)",
        to_value(&sign_statement(&good, &other)),
        files.clone(),
    ));

    let mut two = good_bundle.clone();
    let first = two["dsseEnvelope"]["signatures"][0].clone();
    two["dsseEnvelope"]["signatures"]
        .as_array_mut()
        .unwrap()
        .push(first);
    cases.push((
        "two-signatures",
        "multiple-signatures",
        "a bundle carries exactly one signature",
        two,
        files.clone(),
    ));

    let mut none = good_bundle.clone();
    none["dsseEnvelope"]["signatures"] = json!([]);
    cases.push((
        "no-signature",
        "no-signature",
        "empty signature list",
        none,
        files.clone(),
    ));

    let mut bad_b64 = good_bundle.clone();
    bad_b64["dsseEnvelope"]["payload"] = json!("not*base64");
    cases.push((
        "bad-base64",
        "malformed-bundle",
        "payload is not base64",
        bad_b64,
        files.clone(),
    ));

    let mut cert = good_bundle.clone();
    let hint = cert["verificationMaterial"]["publicKey"].clone();
    cert["verificationMaterial"] =
        json!({"publicKey": hint, "certificate": {"rawBytes": "MIIB"}, "tlogEntries": []});
    cases.push((
        "ambiguous-material",
        "unsupported-verification-material",
        "a key and a certificate at once: which one signs is ambiguous, so neither is used",
        cert,
        files.clone(),
    ));

    let good_payload = sign_statement(&good, &signer).dsse_envelope.payload;
    cases.push((
        "wrong-payload-type",
        "wrong-payload-type",
        "validly signed, but not an in-toto payload type",
        sign_payload("application/json", &good_payload, &signer),
        files.clone(),
    ));

    cases.push((
        "payload-not-json",
        "malformed-statement",
        "validly signed in-toto payload that is not JSON",
        sign_payload(IN_TOTO, b"not json", &signer),
        files.clone(),
    ));

    let duplicated = String::from_utf8(good_payload.clone()).unwrap().replacen(
        "\"_type\":\"https://in-toto.io/Statement/v1\"",
        "\"_type\":\"https://in-toto.io/Statement/v1\",\"_type\":\"https://in-toto.io/Statement/v1\"",
        1,
    );
    cases.push((
        "duplicate-key",
        "malformed-statement",
        "a key repeated in the signed statement: parsers could disagree, so it is refused",
        sign_payload(IN_TOTO, duplicated.as_bytes(), &signer),
        files.clone(),
    ));

    let v01 = String::from_utf8(good_payload.clone()).unwrap().replacen(
        "https://in-toto.io/Statement/v1",
        "https://in-toto.io/Statement/v0.1",
        1,
    );
    cases.push((
        "statement-v0.1",
        "wrong-statement-type",
        "an in-toto Statement v0.1",
        sign_payload(IN_TOTO, v01.as_bytes(), &signer),
        files.clone(),
    ));

    cases.push((
        "wrong-predicate-type",
        "wrong-predicate-type",
        "validly signed statement of another predicate type",
        signed(&statement(
            &root,
            "https://slsa.dev/provenance/v1",
            predicate_files(&entries),
        )),
        files.clone(),
    ));

    let extra_field = statement_with(
        &root,
        MANIFEST_PREDICATE_TYPE,
        json!({"kind": "model", "ignorePaths": [], "allowSymlinks": false, "files": predicate_files(&entries), "extra": 1}),
    );
    cases.push((
        "unknown-predicate-field",
        "malformed-predicate",
        "an unknown predicate field is refused",
        signed(&extra_field),
        files.clone(),
    ));

    cases.push((
        "subject-mismatch",
        "subject-mismatch",
        "subject digest is not the manifest's root",
        signed(&statement(
            &"ab".repeat(32),
            MANIFEST_PREDICATE_TYPE,
            predicate_files(&entries),
        )),
        files.clone(),
    ));

    let mut escape = predicate_files(&entries);
    escape[0]["path"] = json!("../secret.txt");
    cases.push((
        "path-traversal",
        "malformed-predicate",
        "a signed path that leaves the model is refused before any file is read",
        signed(&statement(&root, MANIFEST_PREDICATE_TYPE, escape)),
        files.clone(),
    ));

    let mut dup = predicate_files(&entries);
    let first = dup[0].clone();
    dup.as_array_mut().unwrap().insert(1, first);
    cases.push((
        "duplicate-path",
        "invalid-manifest",
        "a signed manifest listing one path twice",
        signed(&statement(&root, MANIFEST_PREDICATE_TYPE, dup)),
        files.clone(),
    ));

    let mut modified = files.clone();
    modified[1].1[1500] ^= 0x40;
    cases.push((
        "modified-file",
        "files-mismatch",
        "one flipped bit in a weight file",
        good_bundle.clone(),
        modified,
    ));

    let mut extra = files.clone();
    extra.push(("unsigned.py", b"print('hi')\n".to_vec()));
    cases.push((
        "extra-file",
        "files-mismatch",
        "a file added after signing",
        good_bundle.clone(),
        extra,
    ));

    let missing: Files = files[..2].to_vec();
    cases.push((
        "missing-file",
        "files-mismatch",
        "a signed file (README.md) removed",
        good_bundle.clone(),
        missing,
    ));

    let mut renamed = files.clone();
    renamed[0].0 = "config.json.bak";
    cases.push((
        "renamed-file",
        "files-mismatch",
        "a signed file renamed",
        good_bundle.clone(),
        renamed,
    ));

    cases.push((
        "empty-model",
        "files-mismatch",
        "every signed file gone: all reported missing",
        good_bundle,
        vec![],
    ));

    let trusted = TrustPolicy::from_keys(vec![signer.verifying_key()]);
    // The vectors hold datasets as well as models.
    let mut any_kind = VerifyOptions::default();
    any_kind.kind = None;
    for (name, expect, comment, bundle, model_files) in cases {
        let dir = tempfile::tempdir().unwrap();
        let model = write_model(dir.path(), &model_files);
        let outcome = match Bundle::from_json(&serde_json::to_vec(&bundle).unwrap()) {
            Err(e) => modelseal_verify::VerifyError::Bundle(e).kind(),
            Ok(parsed) => match verify_model(
                &model,
                &parsed,
                &trusted,
                &any_kind,
                &modelseal_core::hash::NoProgress,
            ) {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            },
        };
        assert_eq!(outcome, expect, "{name}");
        let vector = json!({
            "name": name,
            "comment": comment,
            "expect": expect,
            "publicKeyPem": signer.verifying_key().to_pem(),
            "files": files_json(&model_files),
            "bundle": bundle,
        });
        check_or_write("bundle", name, &vector);
    }
    // The committed public key is the one the vectors name.
    let committed =
        std::fs::read_to_string(repo().join("testdata/keys/vector-ed25519.pem.pub")).unwrap();
    assert_eq!(
        VerifyingKey::from_pem(&committed).unwrap(),
        signer.verifying_key()
    );
}

fn base64_standard(bytes: &[u8]) -> String {
    // Test-side encoder, independent of the crate's: 3 bytes to 4 characters, '=' padding.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
