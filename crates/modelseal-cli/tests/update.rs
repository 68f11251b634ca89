//! `sign --update`: a signature made from an earlier one and the stamps beside it must be
//! the signature a full `sign` of the same tree makes, whatever happened to the tree in
//! between (spec/incremental.md). The full `sign` is the oracle; every test below also
//! tries to make the update carry a digest the files no longer have.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_exit, modelseal, stderr, stdout};
use serde_json::Value;

/// A command that stopped with an error (exit 2) naming `needle`.
fn assert_error(out: &std::process::Output, needle: &str) {
    assert_exit(out, 2);
    assert!(
        stderr(out).contains(needle),
        "missing {needle:?} in\n{}",
        stderr(out)
    );
}

/// A small deterministic generator (SplitMix64): the edit sequences are reproducible
/// from the seed a failure prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Every file of the model, relative paths.
fn files(model: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = vec![];
    walk(model, &mut out);
    out.sort();
    out
}

/// Writes new bytes over a file and sets its modification time back: only the change
/// time (which no unprivileged call sets) and perhaps the size tell.
fn rewrite_keeping_mtime(path: &Path, bytes: &[u8]) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
}

/// One random edit of the kinds that reach a model between two releases.
fn edit(model: &Path, rng: &mut Rng, step: usize) -> String {
    let all = files(model);
    let pick = all[rng.below(all.len())].clone();
    let len = std::fs::metadata(&pick).unwrap().len() as usize;
    match rng.below(9) {
        0 => {
            let bytes = rng.bytes(len);
            rewrite_keeping_mtime(&pick, &bytes);
            format!(
                "rewrote {} at the same size, mtime restored",
                pick.display()
            )
        }
        1 => {
            use std::io::Write as _;
            let mut file = std::fs::File::options().append(true).open(&pick).unwrap();
            let len = 1 + rng.below(100);
            file.write_all(&rng.bytes(len)).unwrap();
            format!("appended to {}", pick.display())
        }
        2 => {
            let file = std::fs::File::options().write(true).open(&pick).unwrap();
            file.set_len(len as u64 / 2).unwrap();
            format!("truncated {}", pick.display())
        }
        3 => {
            let new = model.join(format!("added-{step}.bin"));
            let len = rng.below(5000);
            std::fs::write(&new, rng.bytes(len)).unwrap();
            format!("added {}", new.display())
        }
        4 if all.len() > 1 => {
            std::fs::remove_file(&pick).unwrap();
            format!("removed {}", pick.display())
        }
        5 => {
            let new = model.join(format!("renamed-{step}.bin"));
            std::fs::rename(&pick, &new).unwrap();
            format!("renamed {} to {}", pick.display(), new.display())
        }
        6 => {
            // Another inode of the same size under the same name (a download tool's
            // write-then-rename).
            let tmp = model.with_extension("tmp");
            std::fs::write(&tmp, rng.bytes(len)).unwrap();
            std::fs::rename(&tmp, &pick).unwrap();
            format!("replaced {} by another inode of its size", pick.display())
        }
        7 if all.len() > 1 => {
            // Two files swap names.
            let other = all.iter().find(|p| **p != pick).unwrap().clone();
            let tmp = model.with_extension("swap");
            std::fs::rename(&pick, &tmp).unwrap();
            std::fs::rename(&other, &pick).unwrap();
            std::fs::rename(&tmp, &other).unwrap();
            format!("swapped {} and {}", pick.display(), other.display())
        }
        _ => {
            // Metadata only: the bytes are the same, the stamp is not.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&pick, std::fs::Permissions::from_mode(0o600)).unwrap();
            format!("chmod {}", pick.display())
        }
    }
}

/// A model of a few files in two directories, old enough that its stamps are not racy.
fn model_in(dir: &Path, rng: &mut Rng) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(model.join("sub")).unwrap();
    for (i, name) in ["a.bin", "b.bin", "sub/c.json", "sub/d.txt", "e"]
        .iter()
        .enumerate()
    {
        // One file spans several 1 KiB OMS shards, another is empty.
        let len = [70_000, 3_000, 17, 0, 2_500][i];
        std::fs::write(model.join(name), rng.bytes(len)).unwrap();
    }
    model
}

/// Waits until files written now are outside the racy margin, once for all trees.
fn let_stamps_settle() {
    std::thread::sleep(Duration::from_millis(2_200));
}

fn sign(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Value {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"sign", &"--json"];
    all.extend_from_slice(args);
    let out = modelseal(&all);
    assert_exit(&out, 0);
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The DSSE payload of a bundle file: what a signer's statement says, whatever the
/// (randomized) ECDSA signature bytes are.
fn payload(bundle: &Path) -> Vec<u8> {
    use base64::Engine as _;
    let json: Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    let payload = json["dsseEnvelope"]["payload"].as_str().unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap()
}

struct Format {
    key: &'static str,
    flags: &'static [&'static str],
    /// Whether the bundle bytes are deterministic (Ed25519) or only the payload.
    deterministic: bool,
}

const NATIVE: Format = Format {
    key: "ed25519",
    flags: &[],
    deterministic: true,
};
const OMS_SHARDS: Format = Format {
    key: "ecdsa-p256",
    flags: &[
        "--format",
        "oms",
        "--method",
        "shards",
        "--shard-size",
        "1024",
    ],
    deterministic: false,
};

fn keygen(dir: &Path, algorithm: &str) -> PathBuf {
    let key = dir.join(format!("{algorithm}.pem"));
    assert_exit(
        &modelseal(&[&"keygen", &"--algorithm", &algorithm, &"--out", &key]),
        0,
    );
    key
}

fn random_edit_sequences(format: &Format, seeds: std::ops::Range<u64>) {
    let dirs: Vec<(u64, tempfile::TempDir, PathBuf)> = seeds
        .map(|seed| {
            let dir = tempfile::tempdir().unwrap();
            let model = model_in(dir.path(), &mut Rng(seed));
            (seed, dir, model)
        })
        .collect();
    let_stamps_settle();
    let mut kept_total = 0;
    for (seed, dir, model) in &dirs {
        let key = keygen(dir.path(), format.key);
        let sig = dir.path().join("model.sig");
        let fresh = dir.path().join("fresh.sig");
        let mut flags: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![model, &"--key", &key];
        for flag in format.flags {
            flags.push(flag);
        }
        let mut first = flags.clone();
        first.extend([&"--signature" as &dyn AsRef<std::ffi::OsStr>, &sig]);
        sign(&first);
        let mut rng = Rng(seed ^ 0xfeed);
        let mut history = vec![];
        for step in 0..6 {
            history.push(edit(model, &mut rng, step));
            let mut update = flags.clone();
            update.extend([&"--update" as &dyn AsRef<std::ffi::OsStr>, &sig]);
            let report = sign(&update);
            kept_total += report["update"]["kept"]["files"].as_u64().unwrap();
            let mut full = flags.clone();
            full.extend([
                &"--signature" as &dyn AsRef<std::ffi::OsStr>,
                &fresh,
                &"--force",
                &"--no-stamps",
            ]);
            sign(&full);
            let same = if format.deterministic {
                std::fs::read(&sig).unwrap() == std::fs::read(&fresh).unwrap()
            } else {
                payload(&sig) == payload(&fresh)
            };
            assert!(
                same,
                "seed {seed}: the update differs from a fresh sign after {history:#?}"
            );
            let public = key.with_extension("pem.pub");
            let verify = modelseal(&[
                &"verify",
                model,
                &"--key",
                &public,
                &"--signature",
                &sig,
                // The shards method cannot list an empty file.
                &"--allow-unsigned-empty-files",
            ]);
            assert_exit(&verify, 0);
        }
    }
    // Untouched files kept their digests: the sequences exercised the carrying, not only
    // the re-hashing.
    assert!(kept_total > 0, "no update kept a digest");
}

#[test]
fn native_updates_equal_a_fresh_sign_over_random_edits() {
    random_edit_sequences(&NATIVE, 0..12);
}

#[test]
fn oms_shard_updates_equal_a_fresh_sign_over_random_edits() {
    random_edit_sequences(&OMS_SHARDS, 100..106);
}

/// A prepared release: a settled model signed with stamps.
struct Signed {
    dir: tempfile::TempDir,
    model: PathBuf,
    key: PathBuf,
    sig: PathBuf,
}

impl Signed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let model = model_in(dir.path(), &mut Rng(7));
        let_stamps_settle();
        let key = keygen(dir.path(), "ed25519");
        let sig = dir.path().join("model.sig");
        sign(&[&model, &"--key", &key]);
        Self {
            dir,
            model,
            key,
            sig,
        }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn update(&self) -> Value {
        sign(&[&self.model, &"--key", &self.key, &"--update", &self.sig])
    }

    /// The update (already made into model.sig) is what a fresh sign makes.
    fn assert_equals_fresh(&self) {
        let fresh = self.p("fresh.sig");
        sign(&[
            &self.model,
            &"--key",
            &self.key,
            &"--signature",
            &fresh,
            &"--force",
            &"--no-stamps",
        ]);
        assert_eq!(
            std::fs::read(&self.sig).unwrap(),
            std::fs::read(&fresh).unwrap()
        );
    }
}

#[test]
fn a_file_rewritten_with_its_times_restored_is_hashed_again() {
    let s = Signed::new();
    let report = s.update();
    assert_eq!(report["update"]["kept"]["files"], 5, "{report}");
    // Same size, same modification time, other bytes.
    let bytes: Vec<u8> = std::fs::read(s.model.join("b.bin"))
        .unwrap()
        .iter()
        .map(|b| b ^ 1)
        .collect();
    rewrite_keeping_mtime(&s.model.join("b.bin"), &bytes);
    let report = s.update();
    assert_eq!(report["update"]["hashed"]["files"], 1, "{report}");
    assert_eq!(report["update"]["kept"]["files"], 4, "{report}");
    s.assert_equals_fresh();
}

#[test]
fn a_file_written_in_the_tick_it_is_stamped_is_not_stamped() {
    let s = Signed::new();
    // Written just before the update: its times lie within the racy margin of the
    // stamping, so a second write in the same clock tick could leave them unchanged.
    std::fs::write(s.model.join("sub/c.json"), b"{\"v\":2}").unwrap();
    s.update();
    let stamped = stamped_paths(&s.sig);
    assert!(!stamped.contains(&"sub/c.json".to_owned()), "{stamped:?}");
    assert!(stamped.contains(&"a.bin".to_owned()), "{stamped:?}");
    // So the next update hashes it again, even unchanged.
    let report = s.update();
    assert_eq!(report["update"]["hashed"]["files"], 1, "{report}");
    s.assert_equals_fresh();
}

/// The paths a stamp file records.
fn stamped_paths(sig: &Path) -> Vec<String> {
    use base64::Engine as _;
    let mut stamps_path = sig.as_os_str().to_owned();
    stamps_path.push(".stamps");
    let envelope: Value = serde_json::from_slice(&std::fs::read(stamps_path).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    payload["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_file_replaced_by_another_inode_of_its_size_is_hashed_again() {
    let s = Signed::new();
    let path = s.model.join("a.bin");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let tmp = s.p("replacement");
    std::fs::write(&tmp, vec![0u8; 70_000]).unwrap();
    let file = std::fs::File::options().write(true).open(&tmp).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let report = s.update();
    assert_eq!(report["update"]["hashed"]["files"], 1, "{report}");
    s.assert_equals_fresh();
}

/// Rewrites the stamp file's payload with `edit`, keeping its signature.
fn tamper_stamps(sig: &Path, edit: impl Fn(&mut Value)) {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut path = sig.as_os_str().to_owned();
    path.push(".stamps");
    let mut envelope: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut payload: Value = serde_json::from_slice(
        &engine
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    edit(&mut payload);
    envelope["payload"] = engine.encode(serde_json::to_vec(&payload).unwrap()).into();
    std::fs::write(&path, serde_json::to_vec(&envelope).unwrap()).unwrap();
}

/// The stamp `stat` gives `path` now, in the stamp file's form.
fn stamp_now(path: &Path) -> Value {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).unwrap();
    serde_json::json!({
        "dev": m.dev(), "ino": m.ino(), "size": m.len(),
        "mtime": [m.mtime(), m.mtime_nsec()], "ctime": [m.ctime(), m.ctime_nsec()],
    })
}

#[test]
fn a_tampered_stamp_file_is_not_used() {
    let s = Signed::new();
    // The attack: a file is changed, and the stamp file is edited to the changed file's
    // stamp, so the update would carry the old digest over the new bytes.
    let path = s.model.join("b.bin");
    std::fs::write(&path, vec![9u8; 3_000]).unwrap();
    let now = stamp_now(&path);
    tamper_stamps(&s.sig, |payload| {
        for file in payload["files"].as_array_mut().unwrap() {
            if file["path"] == "b.bin" {
                for field in ["dev", "ino", "size", "mtime", "ctime"] {
                    file[field] = now[field].clone();
                }
            }
        }
    });
    let report = s.update();
    assert_eq!(report["update"]["kept"]["files"], 0, "{report}");
    let why = report["update"]["stampsUnused"].as_str().unwrap();
    assert!(why.contains("signature is not by this key"), "{why}");
    s.assert_equals_fresh();
}

#[test]
fn stamps_signed_by_another_key_are_not_used() {
    let s = Signed::new();
    std::fs::write(s.model.join("b.bin"), vec![9u8; 3_000]).unwrap();
    // The attacker makes a whole stamp file of their own, with the changed file's stamp.
    let theirs = Signed::new();
    let mut stamps = s.sig.as_os_str().to_owned();
    stamps.push(".stamps");
    sign(&[
        &s.model,
        &"--key",
        &theirs.key,
        &"--signature",
        &s.p("theirs.sig"),
    ]);
    std::fs::copy(s.p("theirs.sig.stamps"), &stamps).unwrap();
    let report = s.update();
    assert_eq!(report["update"]["kept"]["files"], 0, "{report}");
    s.assert_equals_fresh();
}

#[test]
fn stale_stamps_from_another_tree_or_signature_are_not_used() {
    let s = Signed::new();
    // A copy of the tree with its times (cp -a), signature and stamps beside it.
    let copy = s.p("copy");
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(&s.model)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(&s.sig, s.p("copy.sig")).unwrap();
    std::fs::copy(s.p("model.sig.stamps"), s.p("copy.sig.stamps")).unwrap();
    let out = sign(&[&copy, &"--key", &s.key, &"--update", &s.p("copy.sig")]);
    assert_eq!(out["update"]["kept"]["files"], 0, "{out}");
    let why = out["update"]["stampsUnused"].as_str().unwrap();
    assert!(why.contains("another directory"), "{why}");
    // Stamps of a newer signature beside an older one.
    let older = s.p("older.sig");
    std::fs::copy(&s.sig, &older).unwrap();
    std::fs::write(s.model.join("added"), b"new").unwrap();
    s.update();
    std::fs::copy(s.p("model.sig.stamps"), s.p("older.sig.stamps")).unwrap();
    let out = sign(&[&s.model, &"--key", &s.key, &"--update", &older]);
    let why = out["update"]["stampsUnused"].as_str().unwrap();
    assert!(why.contains("another signature"), "{why}");
    std::fs::copy(&older, &s.sig).unwrap();
    s.assert_equals_fresh();
}

#[test]
fn only_the_signers_own_signature_is_updated() {
    let s = Signed::new();
    let other = keygen(s.dir.path(), "ecdsa-p256");
    let out = modelseal(&[&"sign", &s.model, &"--key", &other, &"--update", &s.sig]);
    assert_error(&out, "only the signer's own signature can be updated");
    // A dataset signature by the same key does not update a model's.
    let dataset = s.p("dataset.sig");
    sign(&[
        &s.model,
        &"--key",
        &s.key,
        &"--kind",
        &"dataset",
        &"--signature",
        &dataset,
    ]);
    let out = modelseal(&[&"sign", &s.model, &"--key", &s.key, &"--update", &dataset]);
    assert_error(&out, "not a signature of this kind");
    // Nor an OMS signature a native one, nor the reverse.
    let oms = s.p("oms.sig");
    let oms_flags: [&dyn AsRef<std::ffi::OsStr>; 7] = [
        &"sign",
        &s.model,
        &"--key",
        &other,
        &"--format",
        &"oms",
        &"--signature",
    ];
    let mut first = oms_flags.to_vec();
    first.push(&oms);
    assert_exit(&modelseal(&first), 0);
    let out = modelseal(&[&"sign", &s.model, &"--key", &other, &"--update", &oms]);
    assert_error(&out, "is an OMS signature; add --format oms");
    let out = modelseal(&[
        &"sign",
        &s.model,
        &"--key",
        &other,
        &"--format",
        &"oms",
        &"--method",
        &"shards",
        &"--update",
        &oms,
    ]);
    assert_error(&out, "pass the same --method");
    // The signature was left as it was.
    s.update();
    s.assert_equals_fresh();
}

#[test]
fn update_refusals_leave_no_output() {
    let s = Signed::new();
    let before = std::fs::read(&s.sig).unwrap();
    let garbage = s.p("garbage.sig");
    std::fs::write(&garbage, b"{not json").unwrap();
    let out = modelseal(&[&"sign", &s.model, &"--key", &s.key, &"--update", &garbage]);
    assert_error(&out, "is not a signature bundle");
    assert_eq!(std::fs::read(&garbage).unwrap(), b"{not json");
    let out = modelseal(&[&"sign", &s.model, &"--keyless", &"--update", &s.sig]);
    assert_exit(&out, 2);
    assert_eq!(std::fs::read(&s.sig).unwrap(), before);
    // Stamps that are not a stamp file at all: every file hashed, no error.
    std::fs::write(s.p("model.sig.stamps"), b"\x00\xff").unwrap();
    let report = s.update();
    assert_eq!(report["update"]["kept"]["files"], 0, "{report}");
}

#[test]
fn a_file_written_through_a_held_shared_mapping_is_hashed_again() {
    // A write through a shared writable mapping whose page is already dirty moves no
    // time: the stamp stays as it was. A process holds such a mapping across the first
    // sign and writes through it afterwards (python3's mmap, as a co-tenant job would).
    let dir = tempfile::tempdir().unwrap();
    let model = model_in(dir.path(), &mut Rng(11));
    let go = dir.path().join("go");
    let done = dir.path().join("done");
    let mut writer = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import mmap, os, sys, time\n\
             fd = os.open(sys.argv[1], os.O_RDWR); mm = mmap.mmap(fd, 0)\n\
             mm[0:4] = b'OLD!'\n\
             while not os.path.exists(sys.argv[2]): time.sleep(0.02)\n\
             mm[0:4] = b'NEW!'\n\
             open(sys.argv[3], 'w').close(); time.sleep(0.5)\n",
        )
        .arg(model.join("a.bin"))
        .arg(&go)
        .arg(&done)
        .spawn()
        .unwrap();
    let_stamps_settle();
    let key = keygen(dir.path(), "ed25519");
    let sig = dir.path().join("model.sig");
    sign(&[&model, &"--key", &key]);
    std::fs::write(&go, b"").unwrap();
    while !done.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.wait().unwrap();
    assert_eq!(&std::fs::read(model.join("a.bin")).unwrap()[..4], b"NEW!");
    let report = sign(&[&model, &"--key", &key, &"--update", &sig]);
    assert!(
        report["update"]["hashed"]["files"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let fresh = dir.path().join("fresh.sig");
    sign(&[
        &model,
        &"--key",
        &key,
        &"--signature",
        &fresh,
        &"--no-stamps",
    ]);
    assert_eq!(std::fs::read(&sig).unwrap(), std::fs::read(&fresh).unwrap());
}

/// Found by the attack review of this issue, on `attest training`, which also names
/// digests: a path that holds `blake3:` is hashed, never read as a digest; a git checkout
/// with uncommitted changes does not name the code that ran.
#[test]
fn attest_training_names_only_digests_it_computed_or_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_in(dir.path(), &mut Rng(3));
    let key = keygen(dir.path(), "ed25519");
    let fake = "ab".repeat(32);
    let cache = dir.path().join(format!("cache/blake3:{fake}"));
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("train.jsonl"), b"poisoned\n").unwrap();
    let out_path = dir.path().join("prov.sig");
    let out = modelseal(&[
        &"attest",
        &"training",
        &"--model",
        &model,
        &"--key",
        &key,
        &"--dataset",
        &cache,
        &"--code",
        &format!("https://example.com/t@{}", "1".repeat(40)),
        &"--out",
        &out_path,
    ]);
    assert_exit(&out, 0);
    let statement = String::from_utf8(payload(&out_path)).unwrap();
    assert!(
        !statement.contains(&format!("\"blake3\":\"{fake}\"")),
        "the path's name was signed as a digest"
    );
    let hashed = modelseal(&[&"hash", &cache]);
    let root = stdout(&hashed)
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("blake3:")
        .to_owned();
    assert!(
        statement.contains(&root),
        "the dataset's real root is missing"
    );

    // A dirty checkout: no code is recorded by default, and a warning says why.
    let repo = dir.path().join("code");
    std::fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("train.py"), b"print('train')\n").unwrap();
    git(&["add", "train.py"]);
    git(&["commit", "-q", "-m", "c"]);
    std::fs::write(repo.join("train.py"), b"import os; os.system('evil')\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelseal"))
        .args(["attest", "training", "--model"])
        .arg(&model)
        .arg("--key")
        .arg(&key)
        .arg("--out")
        .arg(dir.path().join("dirty.sig"))
        .current_dir(&repo)
        .env_remove("GITHUB_SHA")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("uncommitted"), "{}", stderr(&out));
    let payload = String::from_utf8(payload(&dir.path().join("dirty.sig"))).unwrap();
    assert!(
        !payload.contains("gitCommit"),
        "a dirty checkout's commit was recorded"
    );
}
