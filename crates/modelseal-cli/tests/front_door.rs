//! Issue 23's holes, each tried as an attacker would through the binary. Every test here
//! failed on main before its fix (the commit that adds it says so).

mod common;

use std::path::{Path, PathBuf};

use common::{assert_exit, assert_refused, modelseal, stderr, testkey};

/// A small model `m` in a temporary directory.
struct Model {
    dir: tempfile::TempDir,
}

impl Model {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("config.json"), br#"{"hidden_size":8}"#).unwrap();
        std::fs::write(m.join("weights.bin"), vec![3u8; 70_000]).unwrap();
        Self { dir }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn m(&self) -> PathBuf {
        self.p("m")
    }
}

/// Signs `model` with the test key of `format` ("native" or "oms"), the signature at `sig`.
fn sign(model: &Path, sig: &Path, format: &str, extra: &[&str]) {
    let key = match format {
        "native" => testkey("vector-ed25519.pem"),
        _ => testkey("ec-p256.priv.pem"),
    };
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"sign",
        &model,
        &"--key",
        &key,
        &"--signature",
        &sig,
        &"--format",
        &format,
    ];
    for e in extra {
        args.push(e);
    }
    assert_exit(&modelseal(&args), 0);
}

fn verify(model: &Path, sig: &Path, format: &str) -> std::process::Output {
    let key = match format {
        "native" => testkey("vector-ed25519.pem.pub"),
        _ => testkey("ec-p256.pub.pem"),
    };
    modelseal(&[&"verify", &model, &"--signature", &sig, &"--key", &key])
}

#[test]
fn a_link_to_the_signature_outside_the_model_is_judged_as_a_link() {
    for format in ["native", "oms"] {
        let t = Model::new();
        sign(&t.m(), &t.p("m.sig"), format, &[]);
        assert_exit(&verify(&t.m(), &t.p("m.sig"), format), 0);
        std::os::unix::fs::symlink("../m.sig", t.m().join("chat_template.jinja")).unwrap();
        let out = verify(&t.m(), &t.p("m.sig"), format);
        assert_refused(&out, "chat_template.jinja");
    }
}

#[test]
fn a_signature_in_the_model_replaced_by_a_link_to_an_unsigned_file_is_refused() {
    for format in ["native", "oms"] {
        let t = Model::new();
        let sig = t.m().join("model.sig");
        sign(&t.m(), &sig, format, &[]);
        assert_exit(&verify(&t.m(), &sig, format), 0);
        // The genuine bundle plus keys of the attacker's, under a name a loader reads.
        let mut bundle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
        bundle["chat_template"] = "{{ evil }}".into();
        std::fs::write(
            t.m().join("chat_template.json"),
            serde_json::to_vec(&bundle).unwrap(),
        )
        .unwrap();
        std::fs::remove_file(&sig).unwrap();
        std::os::unix::fs::symlink("chat_template.json", &sig).unwrap();
        let out = verify(&t.m(), &sig, format);
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains("chat_template.json"),
            "{format}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_hard_link_to_the_signature_inside_the_model_is_an_unsigned_file() {
    let t = Model::new();
    sign(&t.m(), &t.p("m.sig"), "native", &[]);
    std::fs::hard_link(t.p("m.sig"), t.m().join("tokenizer.json")).unwrap();
    assert_refused(
        &verify(&t.m(), &t.p("m.sig"), "native"),
        "unsigned  tokenizer.json",
    );
}
