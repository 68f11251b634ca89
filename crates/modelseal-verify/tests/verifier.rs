//! The one door: a `Verifier` with rules applies them at every way it says yes, and a
//! refusal by rule is a typed `VerifyError::Policy` carrying the rule's kind.

use std::sync::{Arc, Mutex};

use modelseal_core::hash::NoProgress;
use modelseal_core::statement::{ManifestPredicate, ResourceDescriptor, Scope, Statement};
use modelseal_core::{
    ArtifactDigest, ArtifactKind, Bundle, DigestAlgorithm, KeyAlgorithm, Manifest, SignOptions,
    SigningKey, sign_model, sign_statement,
};
use modelseal_verify::{
    ArtifactRules, RuleRefusal, SubjectProblem, TrustPolicy, Verifier, VerifyError,
};

/// One question put to the rules: kind, name, digests.
type Asked = (ArtifactKind, Option<String>, Vec<ArtifactDigest>);

/// Denies one digest, and records every question it was asked.
struct DenyOne {
    denied: ArtifactDigest,
    asked: Mutex<Vec<Asked>>,
}

impl ArtifactRules for DenyOne {
    fn check(
        &self,
        kind: ArtifactKind,
        name: Option<&str>,
        digests: &[ArtifactDigest],
    ) -> Result<(), RuleRefusal> {
        self.asked
            .lock()
            .unwrap()
            .push((kind, name.map(str::to_owned), digests.to_vec()));
        if digests.contains(&self.denied) {
            return Err(RuleRefusal {
                kind: "denied",
                message: format!("{} is denied", self.denied),
            });
        }
        Ok(())
    }
}

#[test]
fn every_way_to_yes_meets_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("w.bin"), vec![7u8; 5000]).unwrap();
    let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
    let root = ArtifactDigest::blake3(&signed.root);
    let trust = TrustPolicy::from_keys(vec![key.verifying_key()]);

    let allow = Arc::new(DenyOne {
        denied: ArtifactDigest::blake3(&modelseal_core::Blake3Digest::from_bytes([1; 32])),
        asked: Mutex::new(Vec::new()),
    });
    let open = Verifier::new(trust.clone()).with_rules(allow.clone());
    open.verify(&m, &signed.bundle, &NoProgress).unwrap();
    let reader = open.open(&m, &signed.bundle, None).unwrap();
    assert_eq!(reader.read_file("w.bin").unwrap(), vec![7u8; 5000]);
    open.verify_bytes(&signed.bundle, Some("w.bin"), &[7u8; 5000])
        .unwrap();
    let asked = allow.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 3);
    for (kind, name, digests) in asked {
        assert_eq!(kind, ArtifactKind::Model);
        assert_eq!(name.as_deref(), Some("m"));
        assert_eq!(digests, [root]);
    }

    let deny = Verifier::new(trust).with_rules(Arc::new(DenyOne {
        denied: root,
        asked: Mutex::new(Vec::new()),
    }));
    let refusals = [
        deny.verify(&m, &signed.bundle, &NoProgress).err(),
        deny.open(&m, &signed.bundle, None).err(),
        deny.verify_bytes(&signed.bundle, Some("w.bin"), &[7u8; 5000])
            .err(),
    ];
    for refusal in refusals {
        let refusal = refusal.expect("the rule refuses");
        assert!(matches!(&refusal, VerifyError::Policy(r) if r.kind == "denied"));
        assert_eq!(refusal.kind(), "denied");
        assert!(refusal.is_refusal());
        assert_eq!(
            refusal.to_string(),
            format!("refused by policy: {root} is denied")
        );
    }
}

/// A native statement about `manifest`'s files that also names an OCI manifest, as
/// `sign oci://` makes.
fn oci_bundle(manifest: &Manifest, oci: ArtifactDigest, key: &SigningKey) -> Bundle {
    let predicate = ManifestPredicate {
        kind: ArtifactKind::Model,
        ignore_paths: Vec::new(),
        allow_symlinks: false,
        scope: Some(Scope::Directory),
        files: manifest.entries().to_vec(),
    };
    let mut statement = Statement::for_manifest("registry/m", &manifest.root(), predicate);
    statement.subject.push(ResourceDescriptor {
        name: Some("registry/m".into()),
        uri: None,
        digest: [("sha256".to_owned(), oci.to_hex())].into(),
        annotations: None,
    });
    sign_statement(&statement, key)
}

#[test]
fn an_oci_artifact_is_judged_by_its_manifest_digest_before_any_layer_and_by_its_files_after() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), vec![3u8; 100]).unwrap();
    let manifest = modelseal_core::hash_model(
        dir.path(),
        &modelseal_core::walk::WalkOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let trust = TrustPolicy::from_keys(vec![key.verifying_key()]);
    let oci = ArtifactDigest::new(DigestAlgorithm::Sha256, [9; 32]);
    let bundle = oci_bundle(&manifest, oci, &key);

    let open = Verifier::new(trust.clone());
    let signed = open.signed_oci(&bundle, oci).unwrap();
    assert_eq!(signed.model().oci_manifest, Some(oci));
    let verified = open
        .check_unpacked(signed.clone(), manifest.entries())
        .unwrap();
    assert_eq!(verified.root, ArtifactDigest::blake3(&manifest.root()));
    // Files like its files, but another manifest: refused before any layer.
    let other = ArtifactDigest::new(DigestAlgorithm::Sha256, [8; 32]);
    assert!(matches!(
        open.signed_oci(&bundle, other),
        Err(VerifyError::Subject(
            SubjectProblem::OtherOciManifest { .. }
        ))
    ));
    // The layers unpacked to one file fewer: refused.
    assert!(matches!(
        open.check_unpacked(signed, &[]),
        Err(VerifyError::Files(_))
    ));
    // A rule on the manifest digest alone refuses it, before any layer.
    let deny = Verifier::new(trust).with_rules(Arc::new(DenyOne {
        denied: oci,
        asked: Mutex::new(Vec::new()),
    }));
    assert!(matches!(
        deny.signed_oci(&bundle, oci),
        Err(VerifyError::Policy(r)) if r.kind == "denied"
    ));
}
