//! Co-signatures, thresholds and hybrid (classical and post-quantum) signers: each test
//! tries to make a policy's "k of n" or "both algorithms" say yes with fewer real
//! signers than it asks for (spec/policy.md, "Thresholds").

mod common;

use std::path::PathBuf;

use common::{assert_exit, modelseal, stderr, stdout};
use serde_json::Value;

/// A model, three publishers (alice's key is a hybrid pair: ECDSA P-256 and ML-DSA-65),
/// a training builder, and a second model.
struct Release {
    dir: tempfile::TempDir,
}

impl Release {
    fn new() -> Self {
        let r = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for (name, algorithm) in [
            ("alice-ec", "ecdsa-p256"),
            ("alice-pq", "ml-dsa-65"),
            ("bob", "ed25519"),
            ("carol", "ml-dsa-65"),
            ("builder", "ed25519"),
        ] {
            assert_exit(
                &modelseal(&[&"keygen", &"--algorithm", &algorithm, &"--out", &r.p(name)]),
                0,
            );
        }
        for model in ["model", "other"] {
            std::fs::create_dir(r.p(model)).unwrap();
            std::fs::write(r.p(&format!("{model}/weights.bin")), model.repeat(999)).unwrap();
            std::fs::write(r.p(&format!("{model}/config.json")), b"{}").unwrap();
        }
        r
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Signs `model` with `key` into `model.<as_name>.sig`.
    fn sign(&self, model: &str, key: &str, as_name: &str) -> PathBuf {
        let sig = self.p(&format!("{model}.{as_name}.sig"));
        assert_exit(
            &modelseal(&[
                &"sign",
                &self.p(model),
                &"--key",
                &self.p(key),
                &"--signature",
                &sig,
            ]),
            0,
        );
        sig
    }

    fn policy(&self, text: &str) -> PathBuf {
        let path = self.p("policy.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The 2-of-3 policy of the tests: alice (hybrid), bob and carol publish; builder
    /// builds.
    fn two_of_three(&self) -> PathBuf {
        self.policy(
            r#"
[[signer]]
name = "alice"
roles = ["model-publisher"]
keys = ["alice-ec.pub", "alice-pq.pub"]
algorithms = ["ecdsa-p256", "ml-dsa-65"]

[[signer]]
name = "bob"
roles = ["model-publisher"]
key = "bob.pub"

[[signer]]
name = "carol"
roles = ["model-publisher"]
key = "carol.pub"

[[signer]]
name = "builder"
roles = ["training-builder"]
key = "builder.pub"

[roles.model-publisher]
threshold = 2
signers = ["alice", "bob", "carol"]
"#,
        )
    }

    /// `verify --json` of `model` with exactly these signatures.
    fn verify(&self, policy: &std::path::Path, signatures: &[&PathBuf]) -> (i32, Value) {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"verify", &"--json", &"--policy", &policy];
        for sig in signatures {
            args.push(&"--signature");
            args.push(*sig);
        }
        let model = self.p("model");
        args.push(&model);
        let out = modelseal(&args);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        (out.status.code().unwrap(), report)
    }
}

fn counted(report: &Value) -> Vec<String> {
    report["signerCount"]["counted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_of_three_counts_distinct_named_signers() {
    let r = Release::new();
    let policy = r.two_of_three();
    let bob = r.sign("model", "bob", "bob");
    let carol = r.sign("model", "carol", "carol");
    let (code, report) = r.verify(&policy, &[&bob]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["error"]["kind"], "signers-missing");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2 signers needed, 1 counted (bob)"),
        "{message}"
    );
    assert!(message.contains("carol: no signature"), "{message}");
    let (code, report) = r.verify(&policy, &[&bob, &carol]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(counted(&report), ["bob", "carol"]);
    assert_eq!(report["signers"].as_array().unwrap().len(), 2);
}

#[test]
fn the_same_signature_twice_or_two_signatures_by_one_key_count_once() {
    let r = Release::new();
    let policy = r.two_of_three();
    let bob = r.sign("model", "bob", "bob");
    let copy = r.p("model.bob-again.sig");
    std::fs::copy(&bob, &copy).unwrap();
    let (code, report) = r.verify(&policy, &[&bob, &copy]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["error"]["kind"], "signers-missing");
    // A second, fresh signature by the same key (ML-DSA signing is randomised, so the
    // bytes differ) is still one signer.
    let carol = r.sign("model", "carol", "carol");
    let carol_again = r.sign("model", "carol", "carol2");
    assert_ne!(
        std::fs::read(&carol).unwrap(),
        std::fs::read(&carol_again).unwrap()
    );
    let (code, report) = r.verify(&policy, &[&carol, &carol_again]);
    assert_eq!(code, 1, "{report}");
}

#[test]
fn one_key_under_two_names_is_a_policy_error() {
    let r = Release::new();
    let policy = r.policy(
        r#"
[[signer]]
name = "bob"
roles = ["model-publisher"]
key = "bob.pub"

[[signer]]
name = "robert"
roles = ["model-publisher"]
key = "bob.pub"

[roles.model-publisher]
threshold = 2
"#,
    );
    let bob = r.sign("model", "bob", "bob");
    let out = modelseal(&[
        &"verify",
        &r.p("model"),
        &"--policy",
        &policy,
        &"--signature",
        &bob,
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("one signer under two names would count twice"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_signature_of_another_model_does_not_count() {
    let r = Release::new();
    let policy = r.two_of_three();
    let bob = r.sign("model", "bob", "bob");
    // carol signed the other model; her bundle is copied beside this one.
    let carol_other = r.sign("other", "carol", "carol");
    let (code, report) = r.verify(&policy, &[&bob, &carol_other]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["error"]["kind"], "signers-missing");
    // Given first, the copied bundle is the one refused, and bob's still counts alone.
    let (code, report) = r.verify(&policy, &[&carol_other, &bob]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["error"]["kind"], "signers-missing");
}

#[test]
fn a_signer_trusted_only_in_another_role_does_not_count() {
    let r = Release::new();
    let policy = r.two_of_three();
    let bob = r.sign("model", "bob", "bob");
    let builder = r.sign("model", "builder", "builder");
    let (code, report) = r.verify(&policy, &[&bob, &builder]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["error"]["kind"], "signers-missing");
}

#[test]
fn a_hybrid_signer_counts_only_with_both_algorithms() {
    let r = Release::new();
    let policy = r.two_of_three();
    let bob = r.sign("model", "bob", "bob");
    let alice_ec = r.sign("model", "alice-ec", "alice-ec");
    let alice_pq = r.sign("model", "alice-pq", "alice-pq");
    let (code, report) = r.verify(&policy, &[&bob, &alice_ec, &alice_pq]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(counted(&report), ["alice", "bob"]);
    // The downgrade: the post-quantum bundle removed.
    let (code, report) = r.verify(&policy, &[&bob, &alice_ec]);
    assert_eq!(code, 1, "{report}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("alice: no ml-dsa-65 signature"),
        "{message}"
    );
    // The classical one removed instead.
    let (code, report) = r.verify(&policy, &[&bob, &alice_pq]);
    assert_eq!(code, 1, "{report}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("alice: no ecdsa-p256 signature"),
        "{message}"
    );
    // The classical signature twice is not a post-quantum one.
    let copy = r.p("model.alice-ec2.sig");
    std::fs::copy(&alice_ec, &copy).unwrap();
    let (code, _) = r.verify(&policy, &[&bob, &alice_ec, &copy]);
    assert_eq!(code, 1);
}

#[test]
fn a_hybrid_rule_no_key_could_meet_is_a_policy_error() {
    let r = Release::new();
    // alice's P-256 key with its point compressed: another SPKI, the same key.
    let compressed = std::process::Command::new("openssl")
        .args(["ec", "-pubin", "-conv_form", "compressed", "-pubout", "-in"])
        .arg(r.p("alice-ec.pub"))
        .arg("-out")
        .arg(r.p("alice-ec-compressed.pub"))
        .output()
        .unwrap();
    assert!(compressed.status.success());
    for (text, message) in [
        (
            "[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"alice-ec.pub\"\nalgorithms = [\"ecdsa-p256\", \"ml-dsa-65\"]\n",
            "none of its keys is an ml-dsa-65 key",
        ),
        (
            "[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"alice-pq.pub\"\nalgorithms = [\"ml-dsa-44\"]\n",
            "unknown algorithm",
        ),
        (
            "[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"bob.pub\"\n[roles.model-publisher]\nthreshold = 2\n",
            "can never be met",
        ),
        (
            "[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"bob.pub\"\n[roles.model-publisher]\nthreshold = 0\n",
            "would accept no signature",
        ),
        (
            "[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"bob.pub\"\n[[signer]]\nname = \"b\"\nroles = [\"training-builder\"]\nkey = \"builder.pub\"\n[roles.model-publisher]\nthreshold = 1\nsigners = [\"a\", \"b\"]\n",
            "does not hold the role model-publisher",
        ),
        (
            "[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"bob.pub\"\n[roles.model-publisher]\nthreshold = \"most\"\n",
            "neither a number nor",
        ),
        // Thirteenth attack review: each of these loaded on main and took no effect, or
        // said so in serde's words.
        (
            "[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"bob.pub\"\n[roles.model-publisher]\nthreshold = 1.5\n",
            "a whole number of signers",
        ),
        (
            "[[signer]]\nname = \"a\"\nroles = [\"dataset-curator\"]\nkey = \"bob.pub\"\n[roles.dataset-curator]\nthreshold = 1\n[datasets]\nrequire = []\n",
            "require leaves out",
        ),
        (
            "[[signer]]\nname = \"b\"\nroles = [\"training-builder\"]\nkeys = [\"alice-ec.pub\", \"alice-pq.pub\"]\nalgorithms = [\"ecdsa-p256\", \"ml-dsa-65\"]\n",
            "algorithms apply to model-publisher and dataset-curator",
        ),
        (
            "[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"bob.pub\"\n[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"carol.pub\"\n",
            "two [[signer]] entries are named",
        ),
        (
            "[[signer]]\nname = \"a\"\nroles = [\"model-publisher\"]\nkey = \"alice-ec.pub\"\n[[signer]]\nname = \"b\"\nroles = [\"model-publisher\"]\nkey = \"alice-ec-compressed.pub\"\n",
            "one signer under two names",
        ),
    ] {
        let policy = r.policy(text);
        let out = modelseal(&[&"verify", &r.p("model"), &"--policy", &policy]);
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(message), "{text}\n{}", stderr(&out));
    }
}

#[test]
fn an_ml_dsa_signature_checks_only_under_its_own_key() {
    let r = Release::new();
    let carol = r.sign("model", "carol", "carol");
    // carol's ML-DSA bundle, checked against bob's Ed25519 key and alice's ML-DSA key.
    for other in ["bob.pub", "alice-pq.pub"] {
        let out = modelseal(&[
            &"verify",
            &r.p("model"),
            &"--key",
            &r.p(other),
            &"--signature",
            &carol,
        ]);
        assert_exit(&out, 1);
    }
    let out = modelseal(&[
        &"verify",
        &r.p("model"),
        &"--key",
        &r.p("carol.pub"),
        &"--signature",
        &carol,
    ]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("ml-dsa-65"), "{}", stdout(&out));
    // The OMS format is for model-signing's verifiers, which read no ML-DSA key.
    let out = modelseal(&[
        &"sign",
        &r.p("model"),
        &"--format",
        &"oms",
        &"--key",
        &r.p("carol"),
        &"--signature",
        &r.p("oms.sig"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("ML-DSA-65 sign the native format"),
        "{}",
        stderr(&out)
    );
    assert!(!r.p("oms.sig").exists());
}

#[test]
fn co_signatures_beside_the_model_are_found_without_naming_them() {
    let r = Release::new();
    let policy = r.two_of_three();
    r.sign("model", "bob", "bob");
    r.sign("model", "carol", "carol");
    // A stray file that is not a bundle does not count and does not stop the others.
    std::fs::write(r.p("model.notes.sig"), b"not a bundle").unwrap();
    let out = modelseal(&[&"verify", &r.p("model"), &"--policy", &policy, &"--json"]);
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counted(&report), ["bob", "carol"]);
    let uncounted = report["uncounted"].as_array().unwrap();
    assert_eq!(uncounted.len(), 1, "{report}");
    assert!(
        uncounted[0]["signature"]
            .as_str()
            .unwrap()
            .ends_with("model.notes.sig")
    );
    // Human output names the threshold and who counted.
    let out = modelseal(&[&"verify", &r.p("model"), &"--policy", &policy]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("signers 2 signers needed, 2 counted (bob, carol)"),
        "{}",
        stdout(&out)
    );
    // Without the policy's threshold, keys alone: every co-signer is listed.
    let out = modelseal(&[
        &"verify",
        &r.p("model"),
        &"--key",
        &r.p("bob.pub"),
        &"--key",
        &r.p("carol.pub"),
    ]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("co-signer ml-dsa-65"),
        "{}",
        stdout(&out)
    );
}

/// Thirteenth attack review: the co-signature shortcut ("same root, already compared")
/// counted a signature without its own checks. The root names the files, not the
/// signer's ignore paths (native) or the files' names at all (OMS).
#[test]
fn a_co_signature_is_checked_under_its_own_settings_not_counted_by_its_root() {
    let r = Release::new();
    let policy = r.policy(
        "[[signer]]\nname = \"alice\"\nroles = [\"model-publisher\"]\nkey = \"alice-ec.pub\"\n\
         [[signer]]\nname = \"bob\"\nroles = [\"model-publisher\"]\nkey = \"bob.pub\"\n\
         [roles.model-publisher]\nthreshold = \"all\"\n",
    );
    let bob = r.sign("model", "bob", "bob");
    // alice's key (held by the attacker) signs the same files, leaving out a path.
    let alice = r.p("model.alice.sig");
    assert_exit(
        &modelseal(&[
            &"sign",
            &r.p("model"),
            &"--key",
            &r.p("alice-ec"),
            &"--ignore",
            &"modeling_evil.py",
            &"--signature",
            &alice,
        ]),
        0,
    );
    std::fs::write(r.p("model/modeling_evil.py"), b"import os\n").unwrap();
    let (code, report) = r.verify(&policy, &[&alice, &bob]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["error"]["kind"], "signers-missing", "{report}");
}

#[test]
fn an_oms_co_signature_counts_only_for_the_file_names_it_signed() {
    let r = Release::new();
    assert_exit(
        &modelseal(&[
            &"keygen",
            &"--algorithm",
            &"ecdsa-p256",
            &"--out",
            &r.p("bob-ec"),
        ]),
        0,
    );
    let policy = r.policy(
        "[[signer]]\nname = \"alice\"\nroles = [\"model-publisher\"]\nkey = \"alice-ec.pub\"\n\
         [[signer]]\nname = \"bob\"\nroles = [\"model-publisher\"]\nkey = \"bob-ec.pub\"\n\
         [roles.model-publisher]\nthreshold = \"all\"\n",
    );
    std::fs::write(r.p("model/notes.txt"), b"print('hi')\n").unwrap();
    let oms = |key: &str, sig: &str| {
        let path = r.p(sig);
        assert_exit(
            &modelseal(&[
                &"sign",
                &r.p("model"),
                &"--format",
                &"oms",
                &"--key",
                &r.p(key),
                &"--signature",
                &path,
            ]),
            0,
        );
        path
    };
    let bob = oms("bob-ec", "model.bob.sig");
    // The data file renamed into code; the attacker signs the renamed directory.
    std::fs::rename(r.p("model/notes.txt"), r.p("model/__init__.py")).unwrap();
    let alice = oms("alice-ec", "model.alice.sig");
    let (code, report) = r.verify(&policy, &[&alice, &bob]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["error"]["kind"], "signers-missing", "{report}");
}

#[test]
fn co_signatures_of_different_files_never_add_up() {
    // Alice signed one model, bob another; a directory holding both files, checked with
    // --ignore-unsigned-files, is not "signed by both".
    let r = Release::new();
    let policy = r.two_of_three();
    let bob = r.sign("model", "bob", "bob");
    let carol_other = r.sign("other", "carol", "carol");
    for entry in std::fs::read_dir(r.p("other")).unwrap().flatten() {
        let name = entry.file_name();
        std::fs::copy(
            entry.path(),
            r.p("model").join(format!("o-{}", name.to_string_lossy())),
        )
        .unwrap();
    }
    let out = modelseal(&[
        &"verify",
        &"--json",
        &"--ignore-unsigned-files",
        &"--policy",
        &policy,
        &"--signature",
        &bob,
        &"--signature",
        &carol_other,
        &r.p("model"),
    ]);
    assert_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["kind"], "signers-missing", "{report}");
}

#[test]
fn signatures_found_beside_a_model_are_bounded_before_any_is_read() {
    // Thirteenth attack review: every MODEL.*.sig was read and held, without limit.
    let r = Release::new();
    let bob = r.sign("model", "bob", "bob");
    for i in 0..33 {
        std::fs::hard_link(&bob, r.p(&format!("model.copy{i}.sig"))).unwrap();
    }
    let out = modelseal(&[&"verify", &r.p("model"), &"--key", &r.p("bob.pub")]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("name the signatures to check with --signature"),
        "{}",
        stderr(&out)
    );
    // Named, they are read.
    let out = modelseal(&[
        &"verify",
        &r.p("model"),
        &"--key",
        &r.p("bob.pub"),
        &"--signature",
        &bob,
    ]);
    assert_exit(&out, 0);
}
