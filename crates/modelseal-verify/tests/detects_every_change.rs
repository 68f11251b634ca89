//! Property: after signing, any change to any file's bytes, any file's name, or the set of
//! files makes verification fail with a files mismatch naming that file, and changes
//! the manifest root; an unchanged model always verifies.

use std::collections::BTreeMap;
use std::path::Path;

use modelseal_core::hash::NoProgress;
use modelseal_core::walk::WalkOptions;
use modelseal_core::{SignOptions, SigningKey, hash_model, sign_model};
use modelseal_verify::{TrustPolicy, VerifyError, VerifyOptions, verify_model};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Change {
    FlipBit { file: usize, at: usize, bit: u8 },
    Truncate { file: usize, by: usize },
    Append { file: usize, byte: u8 },
    Rename { file: usize, to: String },
    Add { path: String, content: Vec<u8> },
    Remove { file: usize },
}

fn path_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-c]{1,2}", 1..=3).prop_map(|parts| parts.join("/"))
}

/// Files with no path that is also another file's directory.
fn model_strategy() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    prop::collection::btree_map(
        path_strategy(),
        prop::collection::vec(any::<u8>(), 0..3000),
        1..6,
    )
    .prop_filter("no file/directory clash", |files| {
        !files
            .keys()
            .any(|a| files.keys().any(|b| b.starts_with(&format!("{a}/"))))
    })
}

fn change_strategy() -> impl Strategy<Value = Change> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(file, at, bit)| Change::FlipBit {
            file,
            at,
            bit
        }),
        (any::<usize>(), 1usize..50).prop_map(|(file, by)| Change::Truncate { file, by }),
        (any::<usize>(), any::<u8>()).prop_map(|(file, byte)| Change::Append { file, byte }),
        (any::<usize>(), path_strategy()).prop_map(|(file, to)| Change::Rename { file, to }),
        (path_strategy(), prop::collection::vec(any::<u8>(), 0..100))
            .prop_map(|(path, content)| Change::Add { path, content }),
        any::<usize>().prop_map(|file| Change::Remove { file }),
    ]
}

fn write(model: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (path, content) in files {
        let target = model.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, content).unwrap();
    }
}

/// Applies `change` to the file map; `None` when it would change nothing or would make
/// an impossible tree (a file where a directory is).
fn apply(files: &BTreeMap<String, Vec<u8>>, change: &Change) -> Option<BTreeMap<String, Vec<u8>>> {
    let mut out = files.clone();
    let names: Vec<String> = files.keys().cloned().collect();
    let pick = |i: usize| names[i % names.len()].clone();
    match change {
        Change::FlipBit { file, at, bit } => {
            let content = out.get_mut(&pick(*file))?;
            if content.is_empty() {
                return None;
            }
            let at = at % content.len();
            content[at] ^= 1 << bit;
        }
        Change::Truncate { file, by } => {
            let content = out.get_mut(&pick(*file))?;
            if content.is_empty() {
                return None;
            }
            let keep = content.len().saturating_sub(*by);
            content.truncate(keep);
        }
        Change::Append { file, byte } => out.get_mut(&pick(*file))?.push(*byte),
        Change::Rename { file, to } => {
            let from = pick(*file);
            if out.contains_key(to) {
                return None;
            }
            let content = out.remove(&from)?;
            out.insert(to.clone(), content);
        }
        Change::Add { path, content } => {
            if out.contains_key(path) {
                return None;
            }
            out.insert(path.clone(), content.clone());
        }
        Change::Remove { file } => {
            out.remove(&pick(*file));
        }
    }
    let clash = out
        .keys()
        .any(|a| out.keys().any(|b| b.starts_with(&format!("{a}/"))));
    (!clash).then_some(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_change_is_detected(files in model_strategy(), change in change_strategy()) {
        let Some(changed) = apply(&files, &change) else { return Ok(()); };
        let key = SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519).unwrap();
        let policy = TrustPolicy::from_keys(vec![key.verifying_key()]);
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m");
        std::fs::create_dir(&model).unwrap();
        write(&model, &files);
        let signed = sign_model(&model, &SignOptions::default(), &key, &NoProgress).unwrap();
        prop_assert!(verify_model(&model, &signed.bundle, &policy, &VerifyOptions::default(), &NoProgress).is_ok());

        let other = dir.path().join("changed");
        std::fs::create_dir(&other).unwrap();
        write(&other, &changed);
        match verify_model(&other, &signed.bundle, &policy, &VerifyOptions::default(), &NoProgress) {
            Err(VerifyError::Files(mismatch)) => {
                // Exactly the files that differ are named, each in its own list.
                let differs = |p: &String| files.get(p) != changed.get(p);
                let expect = |pick: &dyn Fn(&String) -> bool| -> Vec<String> {
                    let mut v: Vec<String> = files.keys().chain(changed.keys())
                        .filter(|p| differs(p) && pick(p)).cloned().collect();
                    v.sort();
                    v.dedup();
                    v
                };
                let modified: Vec<String> = mismatch.modified.iter().map(|m| m.path.clone()).collect();
                prop_assert_eq!(modified, expect(&|p| files.contains_key(p) && changed.contains_key(p)));
                prop_assert_eq!(&mismatch.missing, &expect(&|p| !changed.contains_key(p)));
                prop_assert_eq!(&mismatch.extra, &expect(&|p| !files.contains_key(p)));
            }
            other => prop_assert!(false, "{change:?} not detected: {other:?}"),
        }
        if !changed.is_empty() {
            let root = hash_model(&other, &WalkOptions::default(), &NoProgress).unwrap().root();
            prop_assert_ne!(root, signed.root);
        }
    }
}
