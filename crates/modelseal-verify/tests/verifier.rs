//! The one door: a `Verifier` with rules applies them at every way it says yes, and a
//! refusal by rule is a typed `VerifyError::Policy` carrying the rule's kind.

use std::sync::{Arc, Mutex};

use modelseal_core::hash::NoProgress;
use modelseal_core::{
    ArtifactDigest, ArtifactKind, KeyAlgorithm, SignOptions, SigningKey, sign_model,
};
use modelseal_verify::{ArtifactRules, RuleRefusal, TrustPolicy, Verifier, VerifyError};

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
        deny.judge(Some("m"), &[root]).err(),
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
