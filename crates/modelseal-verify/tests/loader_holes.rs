//! The loader hands out only bytes it checked (issue 23, hole 9): each test failed on
//! main before its fix.

use std::path::Path;
use std::time::Duration;

use modelseal_core::hash::NoProgress;
use modelseal_core::oms::{OmsHash, OmsMethod};
use modelseal_core::{
    KeyAlgorithm, ManifestPath, OmsSignOptions, SignOptions, SigningKey, WalkOptions, outboard,
    sign_model, sign_model_oms,
};
use modelseal_verify::loader::{ModelReader, ReadError};
use modelseal_verify::{TrustPolicy, VerifyOptions};

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 251) as u8).collect()
}

fn open(m: &Path, key: &SigningKey, bundle: &modelseal_core::Bundle) -> ModelReader {
    ModelReader::open(
        m,
        bundle,
        &TrustPolicy::from_keys(vec![key.verifying_key()]),
        &VerifyOptions::default(),
        Some(&m.with_extension("outboard")),
    )
    .unwrap()
}

/// A model `m` of `files` in a new directory, signed natively with a fresh key.
fn native(
    files: &[(&str, Vec<u8>)],
) -> (tempfile::TempDir, SigningKey, modelseal_core::SignedModel) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    for (name, content) in files {
        std::fs::write(m.join(name), content).unwrap();
    }
    let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
    (dir, key, signed)
}

#[test]
fn an_oms_file_emptied_before_open_is_never_served() {
    for hash in [OmsHash::Sha256, OmsHash::Blake2b, OmsHash::Blake3] {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("w.bin"), data(5000)).unwrap();
        std::fs::write(m.join("config.json"), b"{\"safe\":true}").unwrap();
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let options = OmsSignOptions {
            name: None,
            method: OmsMethod::Files,
            hash,
            walk: WalkOptions::default(),
            certificate_chain: None,
        };
        let bundle = sign_model_oms(&m, &options, &key, &NoProgress)
            .unwrap()
            .bundle;
        // OMS `files` records no size: the walk at open sees 0 bytes.
        std::fs::write(m.join("config.json"), b"").unwrap();
        let reader = open(&m, &key, &bundle);
        let err = reader.read_file("config.json").unwrap_err();
        assert!(matches!(err, ReadError::Tampered { .. }), "{hash:?}: {err}");
        assert!(reader.verify_all().is_err(), "{hash:?}");
    }
}

#[test]
fn a_signed_empty_file_reads_only_while_it_stays_empty() {
    let (dir, key, signed) = native(&[("__init__.py", b"".to_vec()), ("w.bin", data(100))]);
    let m = dir.path().join("m");
    let reader = open(&m, &key, &signed.bundle);
    assert_eq!(reader.read_file("__init__.py").unwrap(), b"");
    reader.verify_all().unwrap();
    std::fs::write(m.join("__init__.py"), b"import os").unwrap();
    assert!(reader.read_file("__init__.py").is_err());
}

#[test]
fn a_huge_range_is_refused_before_anything_is_allocated() {
    let (dir, key, signed) = native(&[("w.bin", data(100))]);
    let m = dir.path().join("m");
    let reader = open(&m, &key, &signed.bundle);
    let err = reader.read_range("w.bin", 0..1 << 62).unwrap_err();
    assert!(matches!(err, ReadError::OutOfBounds { .. }), "{err}");
}

#[test]
fn a_refused_read_leaves_no_tampered_byte_in_the_callers_buffer() {
    let (dir, key, signed) = native(&[("w.bin", data(300_000))]);
    let m = dir.path().join("m");
    let reader = open(&m, &key, &signed.bundle);
    let mut tampered = data(300_000);
    tampered[1000] = 0xEE;
    tampered[2000] = 0xEE;
    std::fs::write(m.join("w.bin"), &tampered).unwrap();
    let mut buf = vec![0u8; 300_000];
    let err = reader.read_into("w.bin", 0, &mut buf).unwrap_err();
    assert!(matches!(err, ReadError::Tampered { .. }), "{err}");
    assert!(
        buf.iter().all(|&b| b == 0),
        "tampered bytes were left in the buffer"
    );
}

#[test]
fn a_fifo_in_an_outboards_place_is_refused_not_waited_on() {
    let (dir, key, signed) = native(&[("w.bin", data(300_000))]);
    let m = dir.path().join("m");
    let outboards = m.with_extension("outboard");
    outboard::write_all(&m, &signed.manifest, &outboards).unwrap();
    let place = outboard::outboard_file(&outboards, &ManifestPath::parse("w.bin").unwrap());
    std::fs::remove_file(&place).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&place)
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let bundle = signed.bundle.clone();
    std::thread::spawn(move || {
        let reader = open(&m, &key, &bundle);
        let _ = tx.send(reader.read_range("w.bin", 0..10).map(|_| ()));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a read with a FIFO outboard hung");
    assert!(result.is_err(), "a FIFO served as an outboard");
}

#[test]
fn a_directorys_signature_opens_no_file_alone_but_an_older_one_still_does() {
    use modelseal_core::statement::{ManifestPredicate, Statement};
    let (dir, key, signed) = native(&[("w.bin", data(100))]);
    let m = dir.path().join("m");
    let trust = TrustPolicy::from_keys(vec![key.verifying_key()]);
    let options = VerifyOptions::default();
    let err =
        ModelReader::open(&m.join("w.bin"), &signed.bundle, &trust, &options, None).unwrap_err();
    assert_eq!(err.kind(), "wrong-scope", "{err}");
    // A signature made before the scope was recorded is read as either (spec/statement.md).
    let typed: Statement<ManifestPredicate> =
        serde_json::from_slice(&signed.bundle.dsse_envelope.payload).unwrap();
    let mut legacy = typed.clone();
    legacy.predicate.scope = None;
    let legacy = modelseal_core::sign_statement(&legacy, &key);
    assert!(!String::from_utf8_lossy(&legacy.dsse_envelope.payload).contains("scope"));
    ModelReader::open(&m.join("w.bin"), &legacy, &trust, &options, None).unwrap();
    ModelReader::open(&m, &legacy, &trust, &options, None).unwrap();
}

#[test]
fn every_door_knows_a_pulled_directory_by_its_oci_manifest_too() {
    // Third attack review: the loader (watch, Python) knew a pulled directory by its root
    // only, so a policy rule on the OCI manifest its signature names never met it.
    let (dir, key, _) = native(&[("w.bin", data(3000))]);
    let m = dir.path().join("m");
    let stated = modelseal_core::state_model(&m, &SignOptions::default(), &NoProgress).unwrap();
    let mut statement = stated.statement;
    let manifest = "ab".repeat(32);
    statement
        .subject
        .push(modelseal_core::statement::ResourceDescriptor {
            name: Some("registry.example.com/m".into()),
            uri: None,
            digest: [("sha256".to_owned(), manifest.clone())].into(),
            annotations: None,
        });
    let bundle = modelseal_core::sign_statement(&statement, &key);
    let want = [
        modelseal_core::ArtifactDigest::blake3(&stated.root),
        modelseal_core::ArtifactDigest::from_entry("sha256", &manifest).unwrap(),
    ];
    assert_eq!(open(&m, &key, &bundle).digests(), want);
    let bytes = modelseal_verify::loader::verify_bytes(
        &bundle,
        &TrustPolicy::from_keys(vec![key.verifying_key()]),
        &VerifyOptions::default(),
        Some("w.bin"),
        &data(3000),
    )
    .unwrap();
    assert_eq!(bytes.digests(), want);
}
