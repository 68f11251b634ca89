//! Sigstore keyless verification, offline, on the four keyless OMS bundles published by
//! the model-signing project (`../shared/vectors/oms-historical/*-sigstore`): each
//! verifies, and each altered part of the evidence is refused with its own error. The
//! tests are skipped, with a notice, when the shared vectors are absent.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use modelseal_core::Bundle;
use modelseal_core::hash::NoProgress;
use modelseal_verify::keyless::{IdentityRule, KeylessTrust};
use modelseal_verify::{SignatureFormat, TrustPolicy, VerifyError, VerifyOptions, verify_model};
use serde_json::Value;

const IDENTITY: &str = "stefanb@us.ibm.com";
const ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";
const FOLDERS: [&str; 4] = [
    "v0.3.1-sigstore",
    "v1.0.0-sigstore",
    "v1.0.1-sigstore",
    "v1.1.0-sigstore",
];

fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    if dir.join("oms-historical").is_dir() {
        Some(dir)
    } else {
        // In CI the vectors must be there: a skipped check must not look like a pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and {} is missing",
            dir.display()
        );
        eprintln!(
            "notice: {} is absent; skipping the Sigstore keyless vector tests",
            dir.display()
        );
        None
    }
}

fn trust(identity: IdentityRule, issuer: &str) -> TrustPolicy {
    TrustPolicy::default().with_keyless(KeylessTrust::public_good(identity, issuer))
}

fn two_signers(first: (&str, &str), second: (&str, &str)) -> TrustPolicy {
    TrustPolicy::default().with_keyless(
        KeylessTrust::public_good(IdentityRule::Exact(first.0.into()), first.1)
            .with_signer(IdentityRule::Exact(second.0.into()), second.1),
    )
}

fn exact() -> TrustPolicy {
    trust(IdentityRule::Exact(IDENTITY.into()), ISSUER)
}

/// Verifies a copy of `folder`'s model against `bundle`, the way the CLI does: the
/// signature file inside the model left out, and `ignore-me` ignored for v1.0.1 (which
/// did not record it).
fn verify(
    shared: &Path,
    folder: &str,
    bundle: &Value,
    policy: &TrustPolicy,
) -> Result<modelseal_verify::VerifiedModel, VerifyError> {
    let model = shared.join("oms-historical").join(folder);
    let bundle = Bundle::from_json(&serde_json::to_vec(bundle).unwrap())?;
    let mut options = VerifyOptions::default();
    options.walk.exclude_files = vec![model.join("model.sig")];
    options.walk.ignore = vec![modelseal_core::ManifestPath::parse("ignore-me").unwrap()];
    verify_model(&model, &bundle, policy, &options, &NoProgress)
}

fn bundle_of(shared: &Path, folder: &str) -> Value {
    let text =
        std::fs::read_to_string(shared.join("oms-historical").join(folder).join("model.sig"))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The stable kind and the whole message chain of a failure.
fn failure(result: Result<modelseal_verify::VerifiedModel, VerifyError>) -> (String, String) {
    let err = result.expect_err("verification should have failed");
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    (err.kind().to_owned(), text)
}

#[test]
fn all_four_keyless_bundles_verify_offline() {
    let Some(shared) = shared() else { return };
    let file_root =
        std::fs::read_to_string(shared.join("sigstore-trust/public-good.trusted_root.json"))
            .unwrap();
    for folder in FOLDERS {
        let bundle = bundle_of(&shared, folder);
        let verified =
            verify(&shared, folder, &bundle, &exact()).unwrap_or_else(|e| panic!("{folder}: {e}"));
        assert_eq!(verified.format, SignatureFormat::Oms);
        let keyless = verified.signer.keyless.expect("keyless signer");
        assert_eq!(keyless.identity, IDENTITY);
        assert_eq!(keyless.issuer, ISSUER);
        assert!(keyless.signed_at.unwrap() > 1_700_000_000, "{folder}");
        // The same with the trusted root given as a file.
        let policy = TrustPolicy::default().with_keyless(
            KeylessTrust::from_trusted_root(
                &file_root,
                IdentityRule::Exact(IDENTITY.into()),
                ISSUER,
            )
            .unwrap(),
        );
        verify(&shared, folder, &bundle, &policy)
            .unwrap_or_else(|e| panic!("{folder} with file root: {e}"));
    }
}

#[test]
fn a_pattern_cannot_close_the_anchoring_group() {
    // Wrapped as ^(?:a)|(.*)$ this would match anything; it must not compile at all.
    assert!(IdentityRule::regex("a)|(.*").is_err());
    let rule = IdentityRule::regex(r".*@example\.com").unwrap();
    assert!(rule.matches("a@example.com"));
    assert!(!rule.matches("a@example.com.evil"));
    assert_eq!(rule.to_string(), r"/.*@example\.com/");
}

#[test]
fn identity_issuer_and_trust_root_must_match() {
    let Some(shared) = shared() else { return };
    let bundle = bundle_of(&shared, "v1.1.0-sigstore");
    let cases = [
        (
            trust(IdentityRule::Exact("someone@us.ibm.com".into()), ISSUER),
            "identity-mismatch",
            "someone@us.ibm.com",
        ),
        (
            trust(IdentityRule::regex(r".*@example\.com").unwrap(), ISSUER),
            "identity-mismatch",
            "does not match",
        ),
        // Anchored: a pattern matching only part of the identity does not pass.
        (
            trust(IdentityRule::regex(r"stefanb").unwrap(), ISSUER),
            "identity-mismatch",
            "does not match",
        ),
        (
            trust(
                IdentityRule::Exact(IDENTITY.into()),
                "https://accounts.google.com",
            ),
            "issuer-mismatch",
            "is not among the trusted issuers",
        ),
        // Two signers: the identity of one with the issuer of the other is neither.
        (
            two_signers(
                (IDENTITY, "https://accounts.google.com"),
                ("someone@us.ibm.com", ISSUER),
            ),
            "identity-mismatch",
            "does not match someone@us.ibm.com",
        ),
    ];
    for (policy, kind, message) in cases {
        let (found, text) = failure(verify(&shared, "v1.1.0-sigstore", &bundle, &policy));
        assert_eq!(found, kind, "{text}");
        assert!(text.contains(message), "want {message:?}: {text}");
    }
    verify(
        &shared,
        "v1.1.0-sigstore",
        &bundle,
        &trust(IdentityRule::regex(r".*@us\.ibm\.com").unwrap(), ISSUER),
    )
    .unwrap();
    // Any one of several signers is enough, not only the first.
    verify(
        &shared,
        "v1.1.0-sigstore",
        &bundle,
        &two_signers(("someone@us.ibm.com", ISSUER), (IDENTITY, ISSUER)),
    )
    .unwrap();

    let staging =
        std::fs::read_to_string(shared.join("sigstore-trust/staging.trusted_root.json")).unwrap();
    let policy = TrustPolicy::default().with_keyless(
        KeylessTrust::from_trusted_root(&staging, IdentityRule::Exact(IDENTITY.into()), ISSUER)
            .unwrap(),
    );
    let (kind, text) = failure(verify(&shared, "v1.1.0-sigstore", &bundle, &policy));
    // The staging instance's Fulcio, Rekor and TSA keys sign nothing in this bundle.
    assert!(
        ["untrusted-certificate", "transparency-log", "timestamp"].contains(&kind.as_str()),
        "{kind}: {text}"
    );

    // A keyless bundle with no keyless policy is a usage problem, not a refusal.
    let (kind, _) = failure(verify(
        &shared,
        "v1.1.0-sigstore",
        &bundle,
        &TrustPolicy::default(),
    ));
    assert_eq!(kind, "no-keyless-identity");
}

/// Decodes a base64 field, flips one bit of byte `at` (counted from the end when
/// negative), and encodes it back.
fn flip_base64(value: &mut Value, at: isize) {
    let mut bytes = STANDARD.decode(value.as_str().unwrap()).unwrap();
    let index = if at < 0 {
        bytes.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    bytes[index] ^= 0x01;
    *value = Value::String(STANDARD.encode(bytes));
}

#[test]
fn every_altered_piece_of_evidence_is_refused() {
    let Some(shared) = shared() else { return };
    type Mutation = fn(&mut Value);
    let cases: Vec<(&str, Mutation, &[&str], &str)> = vec![
        (
            "certificate",
            |b| {
                flip_base64(
                    &mut b["verificationMaterial"]["certificate"]["rawBytes"],
                    -20,
                )
            },
            &["untrusted-certificate", "bad-signature", "malformed-bundle"],
            "",
        ),
        (
            "log entry body",
            |b| {
                flip_base64(
                    &mut b["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"],
                    40,
                )
            },
            &["transparency-log", "malformed-bundle"],
            "",
        ),
        (
            "log index",
            |b| {
                let entry = &mut b["verificationMaterial"]["tlogEntries"][0];
                let index: u64 = entry["logIndex"].as_str().unwrap().parse().unwrap();
                entry["logIndex"] = Value::String((index + 1).to_string());
            },
            &["transparency-log"],
            "",
        ),
        (
            "integrated time",
            |b| {
                let entry = &mut b["verificationMaterial"]["tlogEntries"][0];
                let time: u64 = entry["integratedTime"].as_str().unwrap().parse().unwrap();
                entry["integratedTime"] = Value::String((time + 3600).to_string());
            },
            &["transparency-log"],
            "",
        ),
        (
            "inclusion proof hash",
            |b| {
                flip_base64(
                    &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0],
                    3,
                )
            },
            &["transparency-log"],
            "inclusion proof",
        ),
        (
            "inclusion proof root",
            |b| {
                flip_base64(
                    &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["rootHash"],
                    3,
                )
            },
            &["transparency-log", "malformed-bundle"],
            "root hash",
        ),
        (
            "checkpoint",
            |b| {
                let checkpoint = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
                    ["checkpoint"]["envelope"];
                let text = checkpoint.as_str().unwrap().replacen(
                    "rekor.sigstore.dev",
                    "rekor.sigstore.dew",
                    1,
                );
                *checkpoint = Value::String(text);
            },
            &["transparency-log"],
            "checkpoint",
        ),
        (
            "signed entry timestamp",
            |b| {
                flip_base64(
                    &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"],
                    10,
                )
            },
            &["transparency-log"],
            "inclusion promise",
        ),
        (
            "RFC 3161 timestamp",
            |b| {
                flip_base64(
                    &mut b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
                        [0]["signedTimestamp"],
                    -10,
                )
            },
            &["timestamp", "malformed-bundle"],
            "",
        ),
        (
            "DSSE signature",
            |b| flip_base64(&mut b["dsseEnvelope"]["signatures"][0]["sig"], 10),
            &["bad-signature", "transparency-log", "timestamp"],
            "",
        ),
    ];
    let original = bundle_of(&shared, "v1.1.0-sigstore");
    for (what, mutate, kinds, message) in cases {
        let mut bundle = original.clone();
        mutate(&mut bundle);
        assert_ne!(bundle, original, "{what}: the mutation changed nothing");
        let (kind, text) = failure(verify(&shared, "v1.1.0-sigstore", &bundle, &exact()));
        assert!(
            kinds.contains(&kind.as_str()),
            "{what}: kind {kind}: {text}"
        );
        assert!(
            text.to_lowercase().contains(message),
            "{what}: want {message:?} in {text}"
        );
        eprintln!("{what}: refused as {kind}: {text}");
    }
}

#[test]
fn model_bytes_are_still_checked_after_the_signature() {
    let Some(shared) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let source = shared.join("oms-historical/v1.1.0-sigstore");
    let model = tmp.path().join("v1.1.0-sigstore");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let mut data = std::fs::read(model.join("signme-1")).unwrap();
    data[0] ^= 0x01;
    std::fs::write(model.join("signme-1"), data).unwrap();
    let bundle = Bundle::read(&model.join("model.sig")).unwrap();
    let mut options = VerifyOptions::default();
    options.walk.exclude_files = vec![model.join("model.sig")];
    let err = verify_model(&model, &bundle, &exact(), &options, &NoProgress).unwrap_err();
    let VerifyError::Files(mismatch) = &err else {
        panic!("{err}")
    };
    assert_eq!(mismatch.modified.len(), 1);
    assert_eq!(mismatch.modified[0].path, "signme-1");
}
