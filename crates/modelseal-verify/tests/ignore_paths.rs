//! Ignore paths are literal: a signed native manifest that records one with a glob
//! character is refused, even though its signature is good (`spec/statement.md` §1).

use modelseal_core::hash::NoProgress;
use modelseal_core::{ManifestPath, SignOptions, SigningKey, sign_statement, state_model};
use modelseal_verify::{TrustPolicy, VerifyError, VerifyOptions, verify_model};

#[test]
fn a_signed_manifest_recording_a_glob_ignore_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("weights.bin"), b"weights").unwrap();
    std::fs::write(model.join("notes.txt"), b"notes").unwrap();
    let key = SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519).unwrap();
    let policy = TrustPolicy::from_keys(vec![key.verifying_key()]);
    let mut stated = state_model(&model, &SignOptions::default(), &NoProgress).unwrap();
    let good = sign_statement(&stated.statement, &key);
    verify_model(
        &model,
        &good,
        &policy,
        &VerifyOptions::default(),
        &NoProgress,
    )
    .unwrap();

    // A signer (another tool, or an older one) records "*.txt" meaning a pattern.
    stated
        .statement
        .predicate
        .ignore_paths
        .push(ManifestPath::parse("*.txt").unwrap());
    let bad = sign_statement(&stated.statement, &key);
    let err = verify_model(
        &model,
        &bad,
        &policy,
        &VerifyOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::InvalidManifest(_)), "{err}");
    assert_eq!(err.kind(), "invalid-manifest");
    assert!(
        modelseal_verify::error_chain(&err).contains("glob character"),
        "{}",
        modelseal_verify::error_chain(&err)
    );
}
