//! The `modelseal` binary as a user runs it: exit codes, stdout, stderr, files written.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;

use common::{assert_exit, modelseal, repo, stderr, stdout, testkey};

/// A temporary directory with a small model in it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir_all(model.join("tokenizer")).unwrap();
        std::fs::write(model.join("config.json"), br#"{"hidden_size":8}"#).unwrap();
        std::fs::write(model.join("tokenizer/vocab.txt"), b"a\nb\n").unwrap();
        let weights: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(model.join("weights.bin"), weights).unwrap();
        Self { dir }
    }
    fn model(&self) -> PathBuf {
        self.dir.path().join("model")
    }
    fn sig(&self) -> PathBuf {
        self.dir.path().join("model.sig")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn sign(&self) {
        let out = modelseal(&[
            &"sign",
            &self.model(),
            &"--key",
            &testkey("vector-ed25519.pem"),
        ]);
        assert_exit(&out, 0);
    }
    fn verify(&self, extra: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
        let pubkey = testkey("vector-ed25519.pem.pub");
        let model = self.model();
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"verify", &model, &"--key", &pubkey];
        args.extend_from_slice(extra);
        modelseal(&args)
    }
}

#[test]
fn sign_then_verify_round_trip_with_default_signature_path() {
    let f = Fixture::new();
    f.sign();
    assert!(
        f.sig().exists(),
        "default signature is MODEL.sig beside the model"
    );
    let out = f.verify(&[]);
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("verified "), "{}", stdout(&out));
}

#[test]
fn verify_json_is_stable() {
    let f = Fixture::new();
    f.sign();
    let out = f.verify(&[&"--json"]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["name"], "model");
    assert_eq!(v["files"], 3);
    assert_eq!(v["bytes"], 200_000 + 17 + 4);
    assert_eq!(v["signer"]["algorithm"], "ed25519");
    let hash = modelseal(&[&"hash", &f.model(), &"--json"]);
    let h: Value = serde_json::from_slice(&hash.stdout).unwrap();
    assert_eq!(v["root"]["blake3"], h["root"]["blake3"]);
}

#[test]
fn hash_matches_b3sum_style_per_file_digests() {
    let f = Fixture::new();
    let out = modelseal(&[&"hash", &f.model(), &"--json"]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["config.json", "tokenizer/vocab.txt", "weights.bin"]);
    for entry in files {
        let content = std::fs::read(f.model().join(entry["path"].as_str().unwrap())).unwrap();
        assert_eq!(entry["blake3"], blake3::hash(&content).to_hex().as_str());
        assert_eq!(entry["size"], content.len());
    }
    let plain = modelseal(&[&"hash", &f.model()]);
    let line = stdout(&plain);
    assert!(
        line.starts_with(&format!("blake3:{}", v["root"]["blake3"].as_str().unwrap())),
        "{line}"
    );
}

/// Every way the files can differ is reported, each file by name, with exit status 1.
#[test]
fn tampering_table() {
    type Tamper = fn(&Path);
    let cases: Vec<(&str, Tamper, &[&str])> = vec![
        (
            "truncated file",
            |m| truncate(&m.join("weights.bin"), 199_999),
            &[
                "modified  weights.bin: expected blake3",
                "(200000 bytes), found 199999 bytes",
            ],
        ),
        (
            "appended byte",
            |m| append(&m.join("weights.bin"), b"\0"),
            &["found 200001 bytes"],
        ),
        (
            "flipped bit",
            |m| flip(&m.join("weights.bin"), 100_000),
            &["modified  weights.bin: expected blake3", "found blake3"],
        ),
        (
            "renamed file",
            |m| std::fs::rename(m.join("config.json"), m.join("config.old")).unwrap(),
            &["missing   config.json", "unsigned  config.old"],
        ),
        (
            "extra file",
            |m| std::fs::write(m.join("extra.py"), b"x").unwrap(),
            &[
                "1 file does not match the signed manifest (0 modified, 0 missing, 1 unsigned)",
                "unsigned  extra.py",
            ],
        ),
        (
            "removed file",
            |m| std::fs::remove_file(m.join("tokenizer/vocab.txt")).unwrap(),
            &["missing   tokenizer/vocab.txt"],
        ),
        (
            "emptied model",
            |m| {
                std::fs::remove_dir_all(m).unwrap();
                std::fs::create_dir(m).unwrap();
            },
            &["3 files do not match the signed manifest (0 modified, 3 missing, 0 unsigned)"],
        ),
    ];
    for (name, tamper, expected) in cases {
        let f = Fixture::new();
        f.sign();
        tamper(&f.model());
        let out = f.verify(&[]);
        assert_exit(&out, 1);
        let err = stderr(&out);
        for needle in expected {
            assert!(err.contains(needle), "{name}: missing {needle:?} in\n{err}");
        }
        let json = f.verify(&[&"--json"]);
        assert_exit(&json, 1);
        let v: Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(v["verified"], false, "{name}");
        assert_eq!(v["error"]["kind"], "files-mismatch", "{name}");
    }
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn flip(path: &Path, at: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[at] ^= 1;
    std::fs::write(path, data).unwrap();
}

#[test]
fn wrong_key_and_wrong_key_types() {
    let f = Fixture::new();
    f.sign();
    let out = modelseal(&[
        &"verify",
        &f.model(),
        &"--key",
        &testkey("other-ed25519.pem.pub"),
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("signer is not trusted: the bundle's key hint 992f3124"),
        "{}",
        stderr(&out)
    );

    // A key of another algorithm is a valid key, just not the signer.
    let out = modelseal(&[&"verify", &f.model(), &"--key", &testkey("ec-p256.pub.pem")]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("signer is not trusted"),
        "{}",
        stderr(&out)
    );
    let out = modelseal(&[&"verify", &f.model(), &"--key", &testkey("rsa2048.pub.pem")]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out)
            .contains("rsa keys are not supported; use ed25519, ecdsa-p256/p384/p521 or ml-dsa-65"),
        "{}",
        stderr(&out)
    );
    let out = modelseal(&[
        &"verify",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("is a private key, and verifying needs the public key"),
        "{}",
        stderr(&out)
    );
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("rsa2048.pub.pem"),
        &"--signature",
        &f.path("x.sig"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("is a public key, and signing needs the private key"),
        "{}",
        stderr(&out)
    );
    assert!(!f.path("x.sig").exists());
}

/// Native signatures work with every supported key type, SEC1 and PKCS#8 alike.
#[test]
fn native_signing_with_ecdsa_keys() {
    for (private, public) in [
        ("ec-p256.priv.pem", "ec-p256.pub.pem"),
        ("ec-p256-pkcs8.priv.pem", "ec-p256-pkcs8.pub.pem"),
        ("ec-p384.priv.pem", "ec-p384.pub.pem"),
    ] {
        let f = Fixture::new();
        let out = modelseal(&[&"sign", &f.model(), &"--key", &testkey(private)]);
        assert_exit(&out, 0);
        let out = modelseal(&[&"verify", &f.model(), &"--key", &testkey(public), &"--json"]);
        assert_exit(&out, 0);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v["signer"]["algorithm"]
                .as_str()
                .unwrap()
                .starts_with("ecdsa-p"),
            "{v}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("p521");
    let out = modelseal(&[&"keygen", &"--out", &key, &"--algorithm", &"ecdsa-p521"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("ecdsa-p521 private"),
        "{}",
        stdout(&out)
    );
    let f = Fixture::new();
    assert_exit(&modelseal(&[&"sign", &f.model(), &"--key", &key]), 0);
    assert_exit(
        &modelseal(&[
            &"verify",
            &f.model(),
            &"--key",
            &tmp.path().join("p521.pub"),
        ]),
        0,
    );
}

/// Crafted bundles from `spec/vectors/bundle/`: each fails with its own message.
#[test]
fn crafted_bundle_vectors_through_the_cli() {
    let dir = repo().join("spec/vectors/bundle");
    let expected_message = [
        ("ok", None),
        ("ok-dataset-ignore-path", None),
        (
            "zero-signature",
            Some("signature does not verify with any trusted key"),
        ),
        (
            "bad-base64",
            Some("not a valid Sigstore bundle: expected base64"),
        ),
        (
            "ambiguous-material",
            Some(
                "bundle verification material is ambiguous (more than one kind), which this version cannot check",
            ),
        ),
        (
            "payload-not-json",
            Some("signed payload is not a valid in-toto statement: expected ident"),
        ),
        (
            "duplicate-key",
            Some("signed payload is not a valid in-toto statement: duplicate field `_type`"),
        ),
        (
            "statement-v0.1",
            Some("statement type is \"https://in-toto.io/Statement/v0.1\""),
        ),
        (
            "unknown-predicate-field",
            Some("signed predicate is malformed: unknown field `extra`"),
        ),
        (
            "empty-model",
            Some("3 files do not match the signed manifest (0 modified, 3 missing, 0 unsigned)"),
        ),
        (
            "tampered-payload",
            Some("signature does not verify with any trusted key"),
        ),
        ("untrusted-signer", Some("signer is not trusted")),
        ("ok-scope-directory", None),
        (
            "wrong-scope",
            Some("the signature is for a single file, but directory was given"),
        ),
        (
            "two-signatures",
            Some("bundle holds 2 signatures; a Sigstore bundle carries exactly one"),
        ),
        ("no-signature", Some("bundle holds no signature")),
        (
            "wrong-payload-type",
            Some("payload type is \"application/json\""),
        ),
        (
            "wrong-predicate-type",
            Some("predicate type is \"https://slsa.dev/provenance/v1\""),
        ),
        (
            "subject-mismatch",
            Some("statement subject does not match its manifest"),
        ),
        (
            "path-traversal",
            Some("path \"../secret.txt\" climbs out with `..`"),
        ),
        (
            "duplicate-path",
            Some("manifest lists README.md more than once"),
        ),
        ("modified-file", Some("modified  weights/model.safetensors")),
        ("extra-file", Some("unsigned  unsigned.py")),
        ("missing-file", Some("missing   README.md")),
        ("renamed-file", Some("unsigned  config.json.bak")),
    ];
    let count = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        count,
        expected_message.len(),
        "every bundle vector has a CLI expectation"
    );
    for (name, message) in expected_message {
        let vector: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        std::fs::create_dir(&model).unwrap();
        for file in vector["files"].as_array().unwrap() {
            let path = model.join(file["path"].as_str().unwrap());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(
                path,
                hex::decode(file["contentHex"].as_str().unwrap()).unwrap(),
            )
            .unwrap();
        }
        let sig = tmp.path().join("model.sig");
        std::fs::write(&sig, serde_json::to_vec(&vector["bundle"]).unwrap()).unwrap();
        // A dataset's signature verifies only as a dataset's.
        let kind = if name.contains("dataset") {
            "dataset"
        } else {
            "model"
        };
        let out = modelseal(&[
            &"verify",
            &model,
            &"--signature",
            &sig,
            &"--key",
            &testkey("vector-ed25519.pem.pub"),
            &"--kind",
            &kind,
            &"--json",
        ]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        match message {
            None => assert_exit(&out, 0),
            Some(message) => {
                assert_exit(&out, 1);
                assert!(
                    stderr(&out).contains(message),
                    "{name}: want {message:?} in\n{}",
                    stderr(&out)
                );
                assert_eq!(report["error"]["kind"], vector["expect"], "{name}");
            }
        }
    }
}

#[test]
fn malformed_huge_and_nested_bundles() {
    let f = Fixture::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not json", b"hello".to_vec(), "not a valid Sigstore bundle: expected value at line 1 column 1"),
        ("truncated", br#"{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "#.to_vec(), "EOF while parsing"),
        ("bad base64", br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}},"dsseEnvelope":{"payload":"*","payloadType":"x","signatures":[]}}"#.to_vec(), "expected base64 at line 1 column"),
        ("message signature", br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}},"messageSignature":{}}"#.to_vec(), "unknown field `messageSignature`"),
        ("old media type", br#"{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1","verificationMaterial":{"publicKey":{}},"dsseEnvelope":{"payload":"","payloadType":"x","signatures":[]}}"#.to_vec(), "unsupported bundle media type"),
        ("deeply nested", format!(r#"{{"verificationMaterial":{{"tlogEntries":[{}{}]}}}}"#, "[".repeat(5000), "]".repeat(5000)).into_bytes(), "recursion limit exceeded"),
        ("huge", vec![b' '; (64 << 20) + 1], "bundle is larger than the 67108864-byte limit"),
    ];
    for (name, bytes, message) in cases {
        std::fs::write(f.sig(), bytes).unwrap();
        let out = f.verify(&[]);
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains(message),
            "{name}: want {message:?} in\n{}",
            stderr(&out)
        );
    }
    let out = modelseal(&[
        &"verify",
        &f.model(),
        &"--signature",
        &f.path("absent.sig"),
        &"--key",
        &testkey("vector-ed25519.pem.pub"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("cannot read signature"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn symlinks_inside_and_outside() {
    use std::os::unix::fs::symlink;
    let f = Fixture::new();
    symlink("config.json", f.model().join("alias.json")).unwrap();
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(
            "alias.json is a symbolic link to config.json; symlinks are refused by default"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("hint: replace the link"),
        "{}",
        stderr(&out)
    );
    assert!(!f.sig().exists(), "no signature written on failure");

    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
        &"--allow-symlinks",
    ]);
    assert_exit(&out, 0);
    assert_exit(&f.verify(&[]), 0);
    // The link is signed as a file: repointing it is a modification.
    std::fs::remove_file(f.model().join("alias.json")).unwrap();
    symlink("tokenizer/vocab.txt", f.model().join("alias.json")).unwrap();
    let out = f.verify(&[]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("modified  alias.json"),
        "{}",
        stderr(&out)
    );

    let g = Fixture::new();
    std::fs::write(g.path("secret.txt"), b"outside").unwrap();
    symlink(g.path("secret.txt"), g.model().join("leak")).unwrap();
    for extra in [&[][..], &["--allow-symlinks"][..]] {
        let model = g.model();
        let key = testkey("vector-ed25519.pem");
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"sign", &model, &"--key", &key];
        for e in extra {
            args.push(e);
        }
        let out = modelseal(&args);
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains("leak is a symbolic link that leads outside the model"),
            "{}",
            stderr(&out)
        );
    }
    // A symlink planted after signing is refused at verify time, exit 1.
    let h = Fixture::new();
    h.sign();
    symlink("/etc/hostname", h.model().join("planted")).unwrap();
    let out = h.verify(&[]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("planted is a symbolic link that leads outside the model"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn empty_model_and_missing_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = modelseal(&[&"sign", &empty, &"--key", &testkey("vector-ed25519.pem")]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("holds no files to sign"),
        "{}",
        stderr(&out)
    );

    let absent = tmp.path().join("absent");
    let out = modelseal(&[&"hash", &absent]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    let f = Fixture::new();
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
        &"--signature",
        &f.path("no/such/dir/model.sig"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("cannot write signature"),
        "{}",
        stderr(&out)
    );
    assert!(!f.path("no").exists());
}

#[cfg(target_os = "linux")]
#[test]
fn non_utf8_file_name_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fixture::new();
    std::fs::create_dir(f.model().join("junk")).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"bad-\xff-name");
    std::fs::write(f.model().join("junk").join(name), b"x").unwrap();
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("file name is not valid UTF-8"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("hint: rename the file, or --ignore the directory that holds it"),
        "{}",
        stderr(&out)
    );
    assert!(!f.sig().exists());
    // Leaving out the directory that holds it works.
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
        &"--ignore",
        &"junk",
    ]);
    assert_exit(&out, 0);
    assert_exit(&f.verify(&[]), 0);
}

#[test]
fn ignore_paths_are_recorded_and_applied() {
    let f = Fixture::new();
    std::fs::create_dir(f.model().join("notes")).unwrap();
    std::fs::write(f.model().join("notes/draft.txt"), b"draft").unwrap();
    std::fs::create_dir(f.model().join(".git")).unwrap();
    std::fs::write(f.model().join(".git/HEAD"), b"ref").unwrap();
    // Given as a path inside the model, as a shell user would type it.
    let notes = f.model().join("notes");
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
        &"--ignore",
        &notes,
    ]);
    assert_exit(&out, 0);
    let inspect = modelseal(&[&"inspect", &f.sig(), &"--json"]);
    let v: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["predicate"]["ignorePaths"], serde_json::json!(["notes"]));
    assert_eq!(
        v["predicate"]["files"].as_array().unwrap().len(),
        3,
        "neither notes/ nor .git/ signed"
    );
    // Changes under ignored paths do not matter; elsewhere they do.
    std::fs::write(f.model().join("notes/draft.txt"), b"changed").unwrap();
    std::fs::write(f.model().join(".git/HEAD"), b"changed").unwrap();
    assert_exit(&f.verify(&[]), 0);
    std::fs::write(f.model().join("scratch.txt"), b"new").unwrap();
    assert_exit(&f.verify(&[]), 1);
    // The verifier may ignore more, by model-relative path.
    assert_exit(&f.verify(&[&"--ignore", &"scratch.txt"]), 0);
    let outside = f.path("elsewhere");
    std::fs::write(&outside, b"x").unwrap();
    let out = f.verify(&[&"--ignore", &outside]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("lies outside the model"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn signature_inside_the_model_is_excluded() {
    let f = Fixture::new();
    let inside = f.model().join("model.sig");
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
        &"--signature",
        &inside,
    ]);
    assert_exit(&out, 0);
    let out = f.verify(&[&"--signature", &inside]);
    assert_exit(&out, 0);
    // Re-signing in place (replacing the signature: --force) gives a signature that
    // still verifies.
    let out = modelseal(&[
        &"sign",
        &"--force",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
        &"--signature",
        &inside,
    ]);
    assert_exit(&out, 0);
    assert_exit(&f.verify(&[&"--signature", &inside]), 0);
}

#[test]
fn single_file_model() {
    let f = Fixture::new();
    let file = f.model().join("weights.bin");
    let sig = f.path("weights.sig");
    let out = modelseal(&[
        &"sign",
        &file,
        &"--key",
        &testkey("vector-ed25519.pem"),
        &"--signature",
        &sig,
    ]);
    assert_exit(&out, 0);
    let out = modelseal(&[
        &"verify",
        &file,
        &"--signature",
        &sig,
        &"--key",
        &testkey("vector-ed25519.pem.pub"),
    ]);
    assert_exit(&out, 0);
    // The file's name is signed: a renamed copy is refused.
    let copy = f.path("renamed.bin");
    std::fs::copy(&file, &copy).unwrap();
    let out = modelseal(&[
        &"verify",
        &copy,
        &"--signature",
        &sig,
        &"--key",
        &testkey("vector-ed25519.pem.pub"),
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("missing   weights.bin"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn keygen_modes_overwrite_and_encryption() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k");
    let out = modelseal(&[&"keygen", &"--out", &key]);
    assert_exit(&out, 0);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(tmp.path().join("k.pub"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    let before = std::fs::read(&key).unwrap();
    let out = modelseal(&[&"keygen", &"--out", &key]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("already exists\nhint: pass --force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "refused keygen leaves the key alone"
    );

    // Encrypted keys: no passphrase and no terminal is a clear error; the env var works.
    let f = Fixture::new();
    let locked = testkey("encrypted-ed25519.pem");
    let out = modelseal(&[&"sign", &f.model(), &"--key", &locked]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("private key is encrypted and needs a passphrase"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("hint: set MODELSEAL_PASSPHRASE"),
        "{}",
        stderr(&out)
    );
    let sign = |pass: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_modelseal"))
            .args([
                std::ffi::OsStr::new("sign"),
                f.model().as_os_str(),
                "--key".as_ref(),
                locked.as_os_str(),
            ])
            .env("MODELSEAL_PASSPHRASE", pass)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = sign("nope");
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    assert_exit(&sign("test passphrase"), 0);
    let out = modelseal(&[
        &"verify",
        &f.model(),
        &"--key",
        &testkey("encrypted-ed25519.pem.pub"),
    ]);
    assert_exit(&out, 0);

    let out = modelseal(&[&"keygen", &"--out", &tmp.path().join("e"), &"--encrypt"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--encrypt needs a passphrase"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("e").exists());
}

#[test]
fn inspect_shows_claims_and_says_unverified() {
    let f = Fixture::new();
    f.sign();
    let out = modelseal(&[&"inspect", &f.sig()]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    for needle in [
        "not verified",
        "predicate  https://modelseal.dev/manifest/v1",
        "signer     key hint 992f3124",
        "files      3 (200021 bytes)",
        "weights.bin",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn demo_runs_and_refuses_the_tampered_copy() {
    let out = modelseal(&[&"demo"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("refused: 2 files do not match the signed manifest"),
        "{text}"
    );
    assert!(text.contains("refused: signer is not trusted"), "{text}");
    assert!(text.contains("demo passed"), "{text}");
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    assert_exit(&modelseal(&[&"verify"]), 2);
    assert_exit(&modelseal(&[&"frobnicate"]), 2);
    let help = modelseal(&[&"--help"]);
    assert_exit(&help, 0);
    assert!(
        stdout(&help).contains("1  verification refused"),
        "{}",
        stdout(&help)
    );
    let help = modelseal(&[&"sign", &"--help"]);
    assert!(
        stdout(&help).contains("MODELSEAL_PASSPHRASE"),
        "{}",
        stdout(&help)
    );
}

fn testcert(name: &str) -> PathBuf {
    repo().join("testdata/certs").join(name)
}

#[test]
fn oms_sign_and_verify_with_keys() {
    let f = Fixture::new();
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--format",
        &"oms",
        &"--key",
        &testkey("ec-p256.priv.pem"),
    ]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("OMS v1.0, 3 resources"),
        "{}",
        stdout(&out)
    );
    let out = modelseal(&[
        &"verify",
        &f.model(),
        &"--key",
        &testkey("ec-p256.pub.pem"),
        &"--json",
    ]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "oms");
    assert_eq!(v["root"]["sha256"].as_str().unwrap().len(), 64);
    let inspect = modelseal(&[&"inspect", &f.sig(), &"--json"]);
    let claims: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        claims["predicateType"],
        "https://model_signing/signature/v1.0"
    );
    assert_eq!(
        claims["predicate"]["serialization"]["ignore_paths"],
        serde_json::json!([".git", ".gitattributes", ".github", ".gitignore"])
    );
    // Tampering is reported resource by resource.
    flip(&f.model().join("weights.bin"), 10);
    let out = modelseal(&[&"verify", &f.model(), &"--key", &testkey("ec-p256.pub.pem")]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("modified  weights.bin: expected sha256"),
        "{}",
        stderr(&out)
    );
    // Flags of one format are refused with the other.
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("ec-p256.priv.pem"),
        &"--hash",
        &"blake3",
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--hash applies to --format oms only"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn oms_shards_and_other_hashes() {
    for (hash, method) in [
        ("blake2b", "files"),
        ("blake3", "files"),
        ("sha256", "shards"),
    ] {
        let f = Fixture::new();
        let out = modelseal(&[
            &"sign",
            &f.model(),
            &"--format",
            &"oms",
            &"--key",
            &testkey("ec-p384.priv.pem"),
            &"--hash",
            &hash,
            &"--method",
            &method,
            &"--shard-size",
            &"65536",
        ]);
        if method == "files" {
            // A shard size with the files method would be ignored: refused instead.
            assert_exit(&out, 2);
            assert!(stderr(&out).contains("--shard-size applies to --method shards only"));
            continue;
        }
        assert_exit(&out, 0);
        let out = modelseal(&[&"verify", &f.model(), &"--key", &testkey("ec-p384.pub.pem")]);
        assert_exit(&out, 0);
        append(&f.model().join("weights.bin"), b"!");
        let out = modelseal(&[&"verify", &f.model(), &"--key", &testkey("ec-p384.pub.pem")]);
        assert_exit(&out, 1);
    }
}

#[test]
fn oms_certificate_signing_and_roots() {
    let f = Fixture::new();
    let sign = |leaf: &str| {
        modelseal(&[
            &"sign",
            &f.model(),
            &"--format",
            &"oms",
            &"--key",
            &testcert("leaf.key"),
            &"--certificate",
            &testcert(leaf),
            &"--certificate-chain",
            &testcert("int.pem"),
        ])
    };
    assert_exit(&sign("leaf.pem"), 0);
    let out = modelseal(&[
        &"verify",
        &f.model(),
        &"--certificate-root",
        &testcert("root.pem"),
        &"--json",
    ]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signer"]["certificate"], "CN=msv-release-engineer");

    let out = modelseal(&[
        &"verify",
        &f.model(),
        &"--certificate-root",
        &testcert("chains/other-root.pem"),
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("does not chain to a trusted root"),
        "{}",
        stderr(&out)
    );
    let out = modelseal(&[&"verify", &f.model(), &"--key", &testkey("ec-p256.pub.pem")]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no trusted root certificate was given"),
        "{}",
        stderr(&out)
    );
    assert_exit(&modelseal(&[&"verify", &f.model()]), 2);

    // A certificate for another key is refused before anything is written.
    std::fs::remove_file(f.sig()).unwrap();
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--format",
        &"oms",
        &"--key",
        &testkey("ec-p256.priv.pem"),
        &"--certificate",
        &testcert("leaf.pem"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("the signing certificate's public key is not the private key's"),
        "{}",
        stderr(&out)
    );
    assert!(!f.sig().exists());
}

/// The published keyless OMS bundles, or `None` (with a notice) without the shared
/// vectors; under `CI` their absence fails the test.
fn keyless_vectors() -> Option<PathBuf> {
    common::shared_vectors("keyless CLI tests").map(|dir| dir.join("oms-historical"))
}

const IBM_ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";

#[test]
fn keyless_verify_from_the_command_line() {
    let Some(dir) = keyless_vectors() else { return };
    let model = dir.join("v1.1.0-sigstore");
    let sig = model.join("model.sig");
    let out = modelseal(&[
        &"verify",
        &model,
        &"--signature",
        &sig,
        &"--identity",
        &"stefanb@us.ibm.com",
        &"--issuer",
        &IBM_ISSUER,
        &"--json",
    ]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signer"]["identity"], "stefanb@us.ibm.com");
    assert_eq!(v["signer"]["issuer"], IBM_ISSUER);
    assert_eq!(v["signer"]["signedAt"], 1_760_062_340);
    let trusted_root =
        repo().join("../shared/vectors/sigstore-trust/public-good.trusted_root.json");
    let out = modelseal(&[
        &"verify",
        &model,
        &"--signature",
        &sig,
        &"--identity-regex",
        &r".*@us\.ibm\.com",
        &"--issuer",
        &IBM_ISSUER,
        &"--trusted-root",
        &trusted_root,
    ]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("identity stefanb@us.ibm.com from"),
        "{}",
        stdout(&out)
    );

    let out = modelseal(&[
        &"verify",
        &model,
        &"--signature",
        &sig,
        &"--identity",
        &"eve@example.com",
        &"--issuer",
        &IBM_ISSUER,
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out)
            .contains("signer identity \"stefanb@us.ibm.com\" does not match eve@example.com"),
        "{}",
        stderr(&out)
    );
    let out = modelseal(&[
        &"verify",
        &model,
        &"--signature",
        &sig,
        &"--identity",
        &"stefanb@us.ibm.com",
        &"--issuer",
        &"https://accounts.google.com",
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("is not among the trusted issuers"),
        "{}",
        stderr(&out)
    );
    let out = modelseal(&[
        &"verify",
        &model,
        &"--signature",
        &sig,
        &"--key",
        &testkey("ec-p256.pub.pem"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("signed keylessly (Sigstore), and no identity and issuer were given"),
        "{}",
        stderr(&out)
    );
    // --identity alone is a usage error.
    assert_exit(
        &modelseal(&[&"verify", &model, &"--signature", &sig, &"--identity", &"x"]),
        2,
    );
    let out = modelseal(&[
        &"verify",
        &model,
        &"--signature",
        &sig,
        &"--identity-regex",
        &"(",
        &"--issuer",
        &IBM_ISSUER,
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--identity-regex"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verify_bundle_for_a_digest_or_a_file() {
    let Some(dir) = keyless_vectors() else { return };
    let sig = dir.join("v1.1.0-sigstore/model.sig");
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&sig).unwrap()).unwrap();
    let payload = base64_decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap());
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    let digest = statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = ["--identity", "stefanb@us.ibm.com", "--issuer", IBM_ISSUER];
    let out = modelseal(&[
        &"verify-bundle",
        &format!("sha256:{digest}"),
        &"--bundle",
        &sig,
        &id[0],
        &id[1],
        &id[2],
        &id[3],
        &"--json",
    ]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["artifact"]["sha256"], digest.as_str());
    // A file whose SHA-256 is not the attested subject.
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other.bin");
    std::fs::write(&other, b"not the artifact").unwrap();
    let out = modelseal(&[
        &"verify-bundle",
        &other,
        &"--bundle",
        &sig,
        &id[0],
        &id[1],
        &id[2],
        &id[3],
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("artifact hash does not match any subject"),
        "{}",
        stderr(&out)
    );
    let out = modelseal(&[
        &"verify-bundle",
        &"sha256:1234",
        &"--bundle",
        &sig,
        &id[0],
        &id[1],
        &id[2],
        &id[3],
    ]);
    assert_exit(&out, 2);
    // A key-signed bundle without a log entry has no trusted signing time.
    let f = Fixture::new();
    assert_exit(
        &modelseal(&[
            &"sign",
            &f.model(),
            &"--format",
            &"oms",
            &"--key",
            &testkey("ec-p256.priv.pem"),
        ]),
        0,
    );
    let ours: Value = serde_json::from_str(&std::fs::read_to_string(f.sig()).unwrap()).unwrap();
    let ours = base64_decode(ours["dsseEnvelope"]["payload"].as_str().unwrap());
    let ours: Value = serde_json::from_slice(&ours).unwrap();
    let root = format!(
        "sha256:{}",
        ours["subject"][0]["digest"]["sha256"].as_str().unwrap()
    );
    let out = modelseal(&[
        &"verify-bundle",
        &root,
        &"--bundle",
        &f.sig(),
        &"--key",
        &testkey("ec-p256.pub.pem"),
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("carries no transparency-log entry"),
        "{}",
        stderr(&out)
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The lineage story as a release engineer runs it: sign a dataset and a model, attest
/// the training run, store the bundles, verify the chain, emit a verification summary,
/// and accept that summary later in place of the walk.
#[test]
fn lineage_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    for name in ["publisher", "builder", "curator", "verifier"] {
        assert_exit(&modelseal(&[&"keygen", &"--out", &p(name)]), 0);
    }
    std::fs::create_dir(p("corpus")).unwrap();
    std::fs::write(p("corpus/train.jsonl"), b"{\"text\":\"hello\"}\n").unwrap();
    let f = Fixture::new();
    let model = f.model();
    assert_exit(
        &modelseal(&[
            &"sign",
            &p("corpus"),
            &"--kind",
            &"dataset",
            &"--key",
            &p("curator"),
        ]),
        0,
    );
    assert_exit(&modelseal(&[&"sign", &model, &"--key", &p("publisher")]), 0);
    let out = modelseal(&[
        &"attest",
        &"training",
        &"--model",
        &model,
        &"--key",
        &p("builder"),
        &"--dataset",
        &p("corpus"),
        &"--code",
        &"https://example.com/train.git@0123456789abcdef0123456789abcdef01234567",
        &"--image",
        &"registry.example.com/train:1@sha256:",
        &"--param",
        &"lr=0.001",
        &"--builder-id",
        &"https://ci.example.com/trainer",
        &"--out",
        &p("model.provenance.sig"),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("the digest must be 64 hex digits"),
        "{}",
        stderr(&out)
    );
    let image = format!("registry.example.com/train:1@sha256:{}", "ab".repeat(32));
    let out = modelseal(&[
        &"attest",
        &"training",
        &"--model",
        &model,
        &"--key",
        &p("builder"),
        &"--dataset",
        &p("corpus"),
        &"--code",
        &"https://example.com/train.git@0123456789abcdef0123456789abcdef01234567",
        &"--image",
        &image,
        &"--param",
        &"lr=0.001",
        &"--started-on",
        &"2026-11-01T10:00:00Z",
        &"--builder-id",
        &"https://ci.example.com/trainer",
        &"--out",
        &p("model.provenance.sig"),
    ]);
    assert_exit(&out, 0);
    let store = p("store");
    let out = modelseal(&[
        &"store",
        &"add",
        &store,
        &p("corpus.sig"),
        &f.sig(),
        &p("model.provenance.sig"),
    ]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out).matches("added").count(), 3);
    let listed = modelseal(&[&"store", &"list", &store]);
    assert_eq!(
        stdout(&listed).lines().count(),
        2,
        "two digests: model and dataset"
    );

    let write_policy = |extra: &str| {
        let policy = format!(
            "max_depth = 3\n{extra}\n\
             [[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.pub\"\n\n\
             [[signer]]\nname = \"ci\"\nroles = [\"training-builder\"]\nkey = \"builder.pub\"\n\n\
             [[signer]]\nname = \"data\"\nroles = [\"dataset-curator\"]\nkey = \"curator.pub\"\n\n\
             [[signer]]\nname = \"gate\"\nroles = [\"verifier\"]\nkey = \"verifier.pub\"\n\n\
             [builders]\nallow = [\"https://ci.example.com/trainer\"]\n"
        );
        std::fs::write(p("policy.toml"), policy).unwrap();
        p("policy.toml")
    };
    let policy = write_policy("[vsa]\naccept = true\n");
    let out = modelseal(&[
        &"verify",
        &model,
        &"--policy",
        &policy,
        &"--lineage",
        &"--store",
        &store,
        &"--emit-vsa",
        &p("model.vsa.sig"),
        &"--vsa-key",
        &p("verifier"),
    ]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    for needle in [
        "lineage passed",
        "└─ dataset corpus",
        "[signed by data]",
        "[built by https://ci.example.com/trainer]",
        "git+https://example.com/train.git",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(p("model.vsa.sig").exists());

    // The summary stands in for the walk: a store with only the VSA passes...
    let vsa_store = p("vsa-store");
    assert_exit(
        &modelseal(&[&"store", &"add", &vsa_store, &p("model.vsa.sig")]),
        0,
    );
    let out = modelseal(&[
        &"verify",
        &model,
        &"--policy",
        &policy,
        &"--lineage",
        &"--store",
        &vsa_store,
        &"--json",
    ]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lineage"]["tree"]["viaVsa"], true);
    // ...but only for the policy it was made under.
    let changed = write_policy("[vsa]\naccept = true\n[datasets]\ndeny = [\"name:scraped-*\"]\n");
    let out = modelseal(&[
        &"verify",
        &model,
        &"--policy",
        &changed,
        &"--lineage",
        &"--store",
        &vsa_store,
        &"--json",
    ]);
    assert_exit(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lineage"]["firstFailure"]["kind"], "missing-attestation");

    // The poisoning case from the command line: the dataset is denied.
    let denied = write_policy("[datasets]\ndeny = [\"name:corpus\"]\n");
    let out = modelseal(&[
        &"verify",
        &model,
        &"--policy",
        &denied,
        &"--lineage",
        &"--store",
        &store,
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("error: lineage refused at corpus blake3:"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("denied by policy rule name:corpus"),
        "{}",
        stderr(&out)
    );
    // Scripts grep for a line starting "verified": a refused lineage prints none.
    assert!(
        !stdout(&out).lines().any(|l| l.starts_with("verified")),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).starts_with("refused (lineage"),
        "{}",
        stdout(&out)
    );
    // Policy mistakes are usage errors.
    std::fs::write(p("bad.toml"), "max_depht = 3\n").unwrap();
    let out = modelseal(&[
        &"verify",
        &model,
        &"--policy",
        &p("bad.toml"),
        &"--lineage",
        &"--store",
        &store,
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("unknown field `max_depht`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn outboards_from_sign_and_from_the_outboard_command() {
    let f = Fixture::new();
    // 200,000 bytes: 4 groups of 64 KiB, so 3 hash pairs of 64 bytes.
    let out = modelseal(&[
        &"sign",
        &f.model(),
        &"--key",
        &testkey("vector-ed25519.pem"),
        &"--outboard",
    ]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("wrote 1 outboard tree "),
        "{}",
        stdout(&out)
    );
    let ob = f.path("model.sig.outboard/weights.bin.obao");
    assert_eq!(std::fs::metadata(&ob).unwrap().len(), 3 * 64);
    std::fs::remove_dir_all(f.path("model.sig.outboard")).unwrap();
    let out = modelseal(&[&"outboard", &f.model()]);
    assert_exit(&out, 0);
    assert_eq!(std::fs::metadata(&ob).unwrap().len(), 3 * 64);
    // Trees already there are replaced only with --force.
    let out = modelseal(&[&"outboard", &f.model()]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("outboard directory"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    // A file changed since signing gets no outboard, and the command says so.
    flip(&f.model().join("weights.bin"), 5);
    let out = modelseal(&[&"outboard", &f.model(), &"--force"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("weights.bin does not match its signed BLAKE3"),
        "{}",
        stderr(&out)
    );
}

/// OMS v1.0 §8.2 without a timestamp: the leaf and chain must be valid now. A leaf not
/// yet valid and an expired one are refused; `--lenient-certificate-time` (model-signing's
/// rule: the chain as it stood at the leaf's issuance) accepts the expired one. A
/// self-signed certificate named as the root verifies as the leaf.
#[test]
fn certificates_are_checked_now_unless_told_otherwise() {
    let f = Fixture::new();
    let model = f.model();
    let sign_with = |leaf: &str, chain: Option<&str>| {
        let key = testcert(&format!("chains/{leaf}.key"));
        let cert = testcert(&format!("chains/{leaf}.pem"));
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"sign",
            &model,
            &"--force",
            &"--format",
            &"oms",
            &"--key",
            &key,
            &"--certificate",
            &cert,
        ];
        let int = chain.map(testcert);
        if let Some(int) = &int {
            args.extend([&"--certificate-chain" as &dyn AsRef<std::ffi::OsStr>, int]);
        }
        assert_exit(&modelseal(&args), 0);
    };
    let root = testcert("chains/root.pem");
    let verify = |root: &Path, extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"verify", &model, &"--certificate-root", &root];
        for e in extra {
            args.push(e);
        }
        modelseal(&args)
    };
    for leaf in ["leaf-future", "leaf-expired"] {
        sign_with(leaf, Some("chains/int.pem"));
        let out = verify(&root, &[]);
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains(&format!("certificate \"CN={leaf}\" was not valid at")),
            "{leaf}: {}",
            stderr(&out)
        );
    }
    // The expired leaf was valid when issued, under a CA valid then.
    assert_exit(&verify(&root, &["--lenient-certificate-time"]), 0);

    sign_with("self-signed", None);
    let own = testcert("chains/self-signed.pem");
    let out = verify(&own, &["--json"]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signer"]["certificate"], "CN=self-signed");
    // Another root does not vouch for it.
    assert_exit(&verify(&root, &[]), 1);
}

/// Ignore paths are literal: a glob character is refused when signing (both formats)
/// and verifying, and in a signed OMS predicate.
#[test]
fn glob_characters_in_ignore_paths_are_refused() {
    let f = Fixture::new();
    for format in ["native", "oms"] {
        let key = if format == "oms" {
            testkey("ec-p256.priv.pem")
        } else {
            testkey("vector-ed25519.pem")
        };
        for pattern in ["*.bin", "weights?.bin", "[ab].txt"] {
            let out = modelseal(&[
                &"sign",
                &f.model(),
                &"--format",
                &format,
                &"--key",
                &key,
                &"--ignore",
                &pattern,
            ]);
            assert_exit(&out, 2);
            assert!(
                stderr(&out).contains("holds a glob character"),
                "{format} {pattern}: {}",
                stderr(&out)
            );
            assert!(!f.sig().exists(), "nothing written for {pattern}");
        }
    }
    f.sign();
    let out = f.verify(&[&"--ignore", &"*.txt"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("holds a glob character"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hash_format_oms_prints_the_subject_an_oms_signature_names() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w.bin"), vec![5u8; 200_000]).unwrap();
    std::fs::write(model.join("c.json"), b"{}").unwrap();
    for method in [
        &["--method", "files"][..],
        &["--method", "shards", "--shard-size", "65536"],
    ] {
        let sig = dir.path().join("m.sig");
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"sign",
            &model,
            &"--format",
            &"oms",
            &"--force",
            &"-q",
            &"--signature",
            &sig,
        ];
        let key = testkey("ec-p256.priv.pem");
        args.push(&"--key");
        args.push(&key);
        for m in method {
            args.push(m);
        }
        assert_exit(&modelseal(&args), 0);
        let inspected = modelseal(&[&"inspect", &sig, &"--json"]);
        let claims: Value = serde_json::from_slice(&inspected.stdout).unwrap();
        let signed = claims.to_string();
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"hash", &model, &"--format", &"oms", &"--json"];
        for m in method {
            args.push(m);
        }
        let hashed = modelseal(&args);
        assert_exit(&hashed, 0);
        let root: Value = serde_json::from_slice(&hashed.stdout).unwrap();
        let hex = root["root"]["sha256"].as_str().unwrap();
        assert_eq!(hex.len(), 64);
        assert!(signed.contains(hex), "{method:?}: {hex} not in {signed}");
    }
}
