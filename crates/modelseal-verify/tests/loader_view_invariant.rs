//! Invariant (spec/statement.md §5, SECURITY.md): whenever verification says yes, the
//! regular files a loader could open under the model, found by an independent walk that
//! follows every link as Python's `os.walk(followlinks=True)` + `open` would, are exactly
//! the signed files, byte for byte (less what the signer recorded as ignored and the
//! signature file itself). Trees are generated with links in and out (to files, to
//! directories, to the signature), hard links, nested VCS folders, ignore paths, a
//! signature inside or beside the model, and changes made after signing.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use modelseal_core::hash::NoProgress;
use modelseal_core::walk::{SymlinkPolicy, WalkOptions};
use modelseal_core::{ManifestPath, SignOptions, SigningKey, sign_model};
use modelseal_verify::loader::ModelReader;
use modelseal_verify::{
    TrustPolicy, VerifyOptions, signed_manifest, verify_envelope, verify_model,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Change {
    /// A link at `at` to the model file `to` (relative target).
    LinkToFile { at: String, to: usize },
    /// A link at `at` to a file outside the model.
    LinkOut { at: String },
    /// A link at `at` to a directory of the model, or `..`.
    LinkToDir { at: String, up: bool },
    /// A link at `at` to the signature.
    LinkToSignature { at: String },
    /// A hard link at `at` to the model file `to`.
    HardLink { at: String, to: usize },
    /// A new file.
    Add { at: String, content: Vec<u8> },
    /// A file under a nested VCS folder.
    NestedVcs { dir: String },
    /// The signature replaced by a link to a new file holding it.
    SignatureAsLink,
    /// A file's bytes changed.
    Modify { file: usize, byte: u8 },
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "w.bin", "cfg.json"]).prop_map(str::to_owned)
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(name(), 1..=3).prop_map(|p| p.join("/"))
}

fn model() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    prop::collection::btree_map(path(), prop::collection::vec(any::<u8>(), 0..200), 1..5)
        .prop_filter("no file/directory clash", |files| {
            !files
                .keys()
                .any(|a| files.keys().any(|b| b.starts_with(&format!("{a}/"))))
        })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (path(), any::<usize>()).prop_map(|(at, to)| Change::LinkToFile { at, to }),
        path().prop_map(|at| Change::LinkOut { at }),
        (path(), any::<bool>()).prop_map(|(at, up)| Change::LinkToDir { at, up }),
        path().prop_map(|at| Change::LinkToSignature { at }),
        (path(), any::<usize>()).prop_map(|(at, to)| Change::HardLink { at, to }),
        (path(), prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(at, content)| Change::Add { at, content }),
        name().prop_map(|dir| Change::NestedVcs { dir }),
        Just(Change::SignatureAsLink),
        (any::<usize>(), any::<u8>()).prop_map(|(file, byte)| Change::Modify { file, byte }),
    ]
}

/// `target` as a link path relative to the directory holding `at` (both model-relative).
fn relative(at: &str, target: &str) -> PathBuf {
    let depth = at.matches('/').count();
    let mut p = PathBuf::new();
    for _ in 0..depth {
        p.push("..");
    }
    p.join(target)
}

/// Makes the parent directories of `model/at`; false when one of them is not a plain
/// directory (then the change is skipped).
fn parents(model: &Path, at: &str) -> bool {
    let full = model.join(at);
    let parent = full.parent().unwrap();
    let mut dir = model.to_path_buf();
    for part in parent.strip_prefix(model).unwrap().components() {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return false,
            Err(_) => {
                if std::fs::create_dir(&dir).is_err() {
                    return false;
                }
            }
        }
    }
    std::fs::symlink_metadata(&full).is_err()
}

fn apply(model: &Path, outside: &Path, sig: &Path, files: &[String], change: &Change) {
    let pick = |i: usize| &files[i % files.len()];
    match change {
        Change::LinkToFile { at, to } => {
            if parents(model, at) {
                let _ = symlink(relative(at, pick(*to)), model.join(at));
            }
        }
        Change::LinkOut { at } => {
            if parents(model, at) {
                let _ = symlink(outside, model.join(at));
            }
        }
        Change::LinkToDir { at, up } => {
            if parents(model, at) {
                let target = if *up {
                    PathBuf::from("..")
                } else {
                    relative(at, "")
                };
                let _ = symlink(target, model.join(at));
            }
        }
        Change::LinkToSignature { at } => {
            if parents(model, at) {
                let _ = symlink(sig, model.join(at));
            }
        }
        Change::HardLink { at, to } => {
            if parents(model, at) {
                let _ = std::fs::hard_link(model.join(pick(*to)), model.join(at));
            }
        }
        Change::Add { at, content } => {
            if parents(model, at) {
                let _ = std::fs::write(model.join(at), content);
            }
        }
        Change::NestedVcs { dir } => {
            let git = model.join(dir).join(".git");
            if std::fs::create_dir_all(&git).is_ok() {
                let _ = std::fs::write(git.join("config"), b"[core]");
            }
        }
        Change::SignatureAsLink => {
            if let Ok(bytes) = std::fs::read(sig) {
                let copy = sig.with_file_name("chat_template.json");
                if std::fs::write(&copy, bytes).is_ok() && std::fs::remove_file(sig).is_ok() {
                    let _ = symlink("chat_template.json", sig);
                }
            }
        }
        Change::Modify { file, byte } => {
            let path = model.join(pick(*file));
            if let Ok(mut data) = std::fs::read(&path) {
                data.push(*byte);
                let _ = std::fs::write(&path, data);
            }
        }
    }
}

/// The oracle: every regular file reachable under `root` by following every link (with
/// a depth bound against loops), as model-relative path -> bytes; `None` when a name is
/// reachable that is not a regular file or directory, or the walk loops.
fn loader_view(root: &Path) -> Option<BTreeMap<String, Vec<u8>>> {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut BTreeMap<String, Vec<u8>>) -> bool {
        if depth > 8 {
            return false;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{prefix}{name}");
            let full = entry.path();
            match std::fs::metadata(&full) {
                // A dangling link opens nothing.
                Err(_) => continue,
                Ok(m) if m.is_dir() => {
                    if !walk(&full, &format!("{path}/"), depth + 1, out) {
                        return false;
                    }
                }
                Ok(m) if m.is_file() => {
                    out.insert(path, std::fs::read(&full).unwrap());
                }
                Ok(_) => return false,
            }
        }
        true
    }
    let mut out = BTreeMap::new();
    walk(root, "", 0, &mut out).then_some(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn a_yes_means_the_loader_sees_exactly_the_signed_bytes(
        files in model(),
        sig_inside in any::<bool>(),
        follow in any::<bool>(),
        ignore_first in any::<bool>(),
        changes in prop::collection::vec(change(), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m");
        let outside = dir.path().join("secret.txt");
        std::fs::write(&outside, b"outside").unwrap();
        for (p, content) in &files {
            let full = model.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        }
        let sig = if sig_inside { model.join("model.sig") } else { dir.path().join("m.sig") };
        let names: Vec<String> = files.keys().cloned().collect();
        let ignore: Vec<ManifestPath> = if ignore_first && names.len() > 1 {
            vec![ManifestPath::parse(&names[0]).unwrap()]
        } else {
            Vec::new()
        };
        let walk = WalkOptions {
            ignore: ignore.clone(),
            exclude_files: vec![sig.clone()],
            symlinks: if follow { SymlinkPolicy::FollowInside } else { SymlinkPolicy::Refuse },
            ..WalkOptions::default()
        };
        let key = SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519).unwrap();
        let options = SignOptions { walk: walk.clone(), ..SignOptions::default() };
        let signed = sign_model(&model, &options, &key, &NoProgress).unwrap();
        std::fs::write(&sig, signed.bundle.to_json()).unwrap();
        for change in &changes {
            apply(&model, &outside, &sig, &names, change);
        }
        let trust = TrustPolicy::from_keys(vec![key.verifying_key()]);
        let mut verify = VerifyOptions::default();
        verify.walk.exclude_files = vec![sig.clone()];
        let Ok(bundle) = modelseal_core::Bundle::read(&sig) else {
            return Ok(()); // the signature itself was made unreadable: nothing said yes
        };
        let full = verify_model(&model, &bundle, &trust, &verify, &NoProgress);
        let lazy = ModelReader::open(&model, &bundle, &trust, &verify, None)
            .and_then(|r| r.verify_all().map(|()| r).map_err(|e| {
                modelseal_verify::VerifyError::Walk(modelseal_core::WalkError::Io {
                    path: model.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            }));
        prop_assert_eq!(full.is_ok(), lazy.is_ok(), "the two entry points disagree: {:?} / {:?}",
            full.as_ref().err().map(ToString::to_string), lazy.as_ref().err().map(ToString::to_string));
        if full.is_err() {
            return Ok(());
        }
        // Said yes: the loader's view, less what the signer ignored, the signature
        // file and the top-level VCS folders, must be the signed files exactly.
        let view = loader_view(&model);
        prop_assert!(view.is_some(), "a yes over a tree with special files or a loop: {changes:?}");
        let mut view = view.unwrap();
        view.retain(|p, _| {
            let ignored = ignore.iter().any(|i| p == i.as_str() || p.starts_with(&format!("{}/", i.as_str())));
            let is_sig = sig_inside && p == "model.sig";
            !ignored && !is_sig && !p.starts_with(".git/")
        });
        let statement = signed_manifest(&verify_envelope(&bundle, &trust).unwrap()).unwrap();
        let signed_files: BTreeMap<String, String> = statement
            .manifest
            .entries()
            .iter()
            .map(|e| (e.path.to_string(), e.blake3.to_hex()))
            .collect();
        let seen: BTreeMap<String, String> = view
            .iter()
            .map(|(p, b)| (p.clone(), blake3::hash(b).to_hex().to_string()))
            .collect();
        prop_assert_eq!(seen, signed_files, "changes {:?}", changes);
    }
}
