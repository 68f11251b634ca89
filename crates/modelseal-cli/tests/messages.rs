//! What users read when something is wrong, pinned exactly: every case in
//! `tests/messages/*.toml` gives the arguments, the exit status and the whole stderr
//! (and, where it matters, stdout). A change to a message shows up here as a diff.
//!
//! Each case runs in a fresh directory holding fixed inputs (so messages are stable):
//! `release.key`/`release.key.pub` (a fixed Ed25519 pair), `other.key.pub`, a model
//! `model/` signed by `release.key` into `model.sig`, `policy.toml` trusting `release`
//! only as a dataset curator and `other` as the model publisher, `curators.toml` with the
//! curator alone, and key files in other formats.

mod common;

use std::path::Path;
use std::process::Command;

fn fixture(dir: &Path) {
    let copy = |from: &str, to: &str| {
        std::fs::copy(common::testkey(from), dir.join(to)).unwrap();
    };
    copy("vector-ed25519.pem", "release.key");
    copy("vector-ed25519.pem.pub", "release.key.pub");
    copy("other-ed25519.pem.pub", "other.key.pub");
    std::fs::create_dir(dir.join("model")).unwrap();
    std::fs::write(dir.join("model/weights.bin"), vec![3u8; 1000]).unwrap();
    std::fs::write(dir.join("model/config.json"), b"{}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelseal"))
        .args(["sign", "model", "--key", "release.key", "-q"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let curator = "[[signer]]\nname = \"release\"\nroles = [\"dataset-curator\"]\nkey = \"release.key.pub\"\n";
    std::fs::write(dir.join("curators.toml"), curator).unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        format!("{curator}\n[[signer]]\nname = \"other\"\nroles = [\"model-publisher\"]\nkey = \"other.key.pub\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("id_ed25519.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxeYXBvbHlnb25hbGx5LWZpeGVkLWtleS1ieXRlcw user@host\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("id_ed25519"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("key.der"),
        [
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, 0xff, 0xfe,
        ],
    )
    .unwrap();
    std::fs::write(
        dir.join("key.jwk"),
        "{\"kty\": \"OKP\", \"crv\": \"Ed25519\", \"x\": \"AAAA\"}\n",
    )
    .unwrap();
    copy("../certs/chains/root.pem", "ca.pem");
    std::fs::write(dir.join("empty.pub"), "").unwrap();
}

#[test]
fn every_message_is_exactly_as_pinned() {
    let dir = common::repo().join("crates/modelseal-cli/tests/messages");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in &files {
        let doc: toml::Table = toml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for case in doc["case"].as_array().unwrap() {
            cases += 1;
            let name = case["name"].as_str().unwrap();
            let args: Vec<&str> = case["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let work = tempfile::tempdir().unwrap();
            fixture(work.path());
            let out = Command::new(env!("CARGO_BIN_EXE_modelseal"))
                .args(&args)
                .current_dir(work.path())
                .env_remove("MODELSEAL_PASSPHRASE")
                .output()
                .unwrap();
            let status = case["status"].as_integer().unwrap() as i32;
            let stderr = common::stderr(&out);
            let mut problems = Vec::new();
            if out.status.code() != Some(status) {
                problems.push(format!("exit {:?}, expected {status}", out.status.code()));
            }
            let expected = case["stderr"].as_str().unwrap();
            if stderr != expected {
                problems.push(format!(
                    "stderr was:\n{stderr}---\nexpected:\n{expected}---"
                ));
            }
            if let Some(expected) = case.get("stdout").and_then(|s| s.as_str()) {
                let stdout = common::stdout(&out);
                if stdout != expected {
                    problems.push(format!(
                        "stdout was:\n{stdout}---\nexpected:\n{expected}---"
                    ));
                }
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{} / {name}: modelseal {}\n{}",
                    file.file_name().unwrap().to_string_lossy(),
                    args.join(" "),
                    problems.join("\n")
                ));
            }
        }
    }
    assert!(cases >= 20, "only {cases} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
