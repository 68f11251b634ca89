//! Verified reads beyond native outboards (`spec/loading.md` §3, §6, §7): whole-file
//! BLAKE3 reads hashed in pieces on every core, OMS `files` and `shards` signatures,
//! reads at every kind of edge, bytes checked in memory, and Hugging Face cache links.

use std::path::Path;

use modelseal_core::hash::NoProgress;
use modelseal_core::oms::{OmsHash, OmsMethod};
use modelseal_core::{
    KeyAlgorithm, OmsSignOptions, SignOptions, SigningKey, WalkOptions, outboard, sign_model,
    sign_model_oms,
};
use modelseal_verify::loader::{Granule, ModelReader, ReadError, verify_bytes};
use modelseal_verify::{SignatureFormat, TrustPolicy, VerifyError, VerifyOptions};

fn data(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed) % 253) as u8).collect()
}

fn key() -> SigningKey {
    SigningKey::generate(KeyAlgorithm::Ed25519).unwrap()
}

fn trust(key: &SigningKey) -> TrustPolicy {
    TrustPolicy::from_keys(vec![key.verifying_key()])
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Sizes around the 4 MiB piece a whole-file read is hashed in, and BLAKE3's chunk.
const SIZES: [usize; 10] = [
    0,
    1,
    1024,
    1025,
    (4 << 20) - 1,
    4 << 20,
    (4 << 20) + 1,
    8 << 20,
    (12 << 20) + 5,
    (17 << 20) + 4097,
];

#[test]
fn whole_file_reads_hashed_in_pieces_match_the_signed_blake3_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    for (i, size) in SIZES.iter().enumerate() {
        std::fs::write(m.join(format!("f{i}.bin")), data(*size, i)).unwrap();
    }
    let key = key();
    let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
    let reader = ModelReader::open(
        &m,
        &signed.bundle,
        &trust(&key),
        &VerifyOptions::default(),
        None,
    )
    .unwrap();
    for (i, size) in SIZES.iter().enumerate() {
        let name = format!("f{i}.bin");
        assert_eq!(reader.granule(&name).unwrap(), Granule::File);
        assert_eq!(reader.read_file(&name).unwrap(), data(*size, i), "{size}");
    }
    // A flipped byte in the last piece, and in the first, of the largest file.
    let name = format!("f{}.bin", SIZES.len() - 1);
    for at in [SIZES[SIZES.len() - 1] - 1, 0] {
        flip(&m.join(&name), at);
        let err = reader.read_file(&name).unwrap_err();
        assert!(matches!(err, ReadError::Tampered { .. }), "{err}");
        flip(&m.join(&name), at);
    }
    assert!(reader.read_file(&name).is_ok());
}

#[test]
fn reads_at_every_edge_return_the_signed_bytes_with_and_without_an_outboard() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    let size = (1 << 20) + 777;
    let content = data(size, 3);
    std::fs::write(m.join("w.bin"), &content).unwrap();
    let key = key();
    let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
    let outboards = dir.path().join("m.sig.outboard");
    outboard::write_all(&m, &signed.manifest, &outboards).unwrap();
    let group = 64 << 10;
    let ranges = [
        0..0,
        0..1,
        5..9,
        group - 3..group + 3,
        group..2 * group,
        group - 1..3 * group + 1,
        0..size,
        size - 1..size,
        size - 700..size,
        3..size,
    ];
    for outboards in [None, Some(outboards.as_path())] {
        let reader = ModelReader::open(
            &m,
            &signed.bundle,
            &trust(&key),
            &VerifyOptions::default(),
            outboards,
        )
        .unwrap();
        for range in ranges.clone() {
            let got = reader.read_range("w.bin", range.start as u64..range.end as u64);
            assert_eq!(got.unwrap(), &content[range.clone()], "{range:?}");
        }
        let past = reader.read_range("w.bin", 0..size as u64 + 1).unwrap_err();
        assert!(matches!(past, ReadError::OutOfBounds { .. }), "{past}");
    }
}

fn oms_model(
    method: OmsMethod,
    hash: OmsHash,
) -> (tempfile::TempDir, SigningKey, modelseal_core::Bundle) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir_all(m.join("sub")).unwrap();
    std::fs::write(m.join("w.bin"), data(10_000, 1)).unwrap();
    std::fs::write(m.join("sub/c.json"), b"{}").unwrap();
    std::fs::write(m.join("empty"), b"").unwrap();
    // model-signing's keys are ECDSA.
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let options = OmsSignOptions {
        name: None,
        method,
        hash,
        walk: WalkOptions::default(),
        certificate_chain: None,
    };
    let signed = sign_model_oms(&m, &options, &key, &NoProgress).unwrap();
    (dir, key, signed.bundle)
}

/// Opens the OMS model; its `empty` file is accepted although a shards signature cannot
/// list it (the caller's explicit choice, tested on its own below).
fn open_oms(
    dir: &tempfile::TempDir,
    key: &SigningKey,
    bundle: &modelseal_core::Bundle,
) -> Result<ModelReader, VerifyError> {
    let mut options = VerifyOptions::default();
    options.allow_unlisted_empty_files = true;
    ModelReader::open(&dir.path().join("m"), bundle, &trust(key), &options, None)
}

#[test]
fn an_empty_file_a_shards_signature_cannot_list_is_refused_unless_allowed() {
    // Failed on main: an unsigned empty file beside a shards signature was accepted.
    let (dir, key, bundle) = oms_model(OmsMethod::Shards { size: 3000 }, OmsHash::Sha256);
    let m = dir.path().join("m");
    let options = VerifyOptions::default();
    let VerifyError::Files(mismatch) =
        ModelReader::open(&m, &bundle, &trust(&key), &options, None).unwrap_err()
    else {
        panic!()
    };
    assert_eq!(mismatch.extra, ["empty"]);
    let VerifyError::Files(mismatch) =
        modelseal_verify::verify_model(&m, &bundle, &trust(&key), &options, &NoProgress)
            .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(mismatch.extra, ["empty"]);
    open_oms(&dir, &key, &bundle).unwrap();
    // The files method lists empty files: nothing to allow.
    let (dir, key, bundle) = oms_model(OmsMethod::Files, OmsHash::Sha256);
    ModelReader::open(&dir.path().join("m"), &bundle, &trust(&key), &options, None).unwrap();
}

#[test]
fn oms_signatures_serve_verified_reads_for_every_method_and_hash() {
    let cases = [
        (OmsMethod::Files, OmsHash::Sha256),
        (OmsMethod::Files, OmsHash::Blake2b),
        (OmsMethod::Files, OmsHash::Blake3),
        (OmsMethod::Shards { size: 3000 }, OmsHash::Sha256),
        (OmsMethod::Shards { size: 3000 }, OmsHash::Blake2b),
    ];
    for (method, hash) in cases {
        let (dir, key, bundle) = oms_model(method, hash);
        let reader = open_oms(&dir, &key, &bundle).unwrap();
        assert_eq!(reader.format(), SignatureFormat::Oms);
        assert!(reader.root().to_string().starts_with("sha256:"));
        let content = data(10_000, 1);
        let expect_granule = match method {
            OmsMethod::Shards { size } => Granule::Bytes(size),
            _ => Granule::File,
        };
        assert_eq!(reader.granule("w.bin").unwrap(), expect_granule);
        for range in [0..10_000usize, 2999..3001, 6000..9000, 9999..10_000, 10..20] {
            let got = reader
                .read_range("w.bin", range.start as u64..range.end as u64)
                .unwrap();
            assert_eq!(
                got,
                &content[range.clone()],
                "{method:?} {hash:?} {range:?}"
            );
        }
        assert_eq!(reader.read_file("sub/c.json").unwrap(), b"{}");
        // One flipped byte in 7000: a read touching it fails; with shards, a read of
        // another shard still succeeds.
        flip(&dir.path().join("m/w.bin"), 7000);
        let err = reader.read_range("w.bin", 6990..7010).unwrap_err();
        assert!(
            matches!(err, ReadError::Tampered { .. }),
            "{method:?} {hash:?}: {err}"
        );
        let other = reader.read_range("w.bin", 100..200);
        match method {
            OmsMethod::Shards { .. } => assert_eq!(other.unwrap(), &content[100..200]),
            _ => assert!(matches!(other.unwrap_err(), ReadError::Tampered { .. })),
        }
    }
}

#[test]
fn oms_open_refuses_extra_missing_and_resized_files_without_reading_them() {
    let (dir, key, bundle) = oms_model(OmsMethod::Shards { size: 3000 }, OmsHash::Sha256);
    let m = dir.path().join("m");
    std::fs::write(m.join("extra.py"), b"import os").unwrap();
    let VerifyError::Files(mismatch) = open_oms(&dir, &key, &bundle).unwrap_err() else {
        panic!()
    };
    assert_eq!(mismatch.extra, ["extra.py"]);
    std::fs::remove_file(m.join("extra.py")).unwrap();
    // One byte longer: the shard layout no longer matches the file.
    let mut grown = data(10_000, 1);
    grown.push(0);
    std::fs::write(m.join("w.bin"), &grown).unwrap();
    let VerifyError::Files(mismatch) = open_oms(&dir, &key, &bundle).unwrap_err() else {
        panic!()
    };
    assert_eq!(mismatch.modified[0].path, "w.bin");
    std::fs::remove_file(m.join("w.bin")).unwrap();
    let VerifyError::Files(mismatch) = open_oms(&dir, &key, &bundle).unwrap_err() else {
        panic!()
    };
    assert_eq!(mismatch.missing, ["w.bin"]);
}

#[test]
fn bytes_in_memory_verify_only_as_the_signed_file_they_claim_to_be() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("a.bin"), data(5000, 1)).unwrap();
    std::fs::write(m.join("b.bin"), data(6000, 2)).unwrap();
    let key = key();
    let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
    let options = VerifyOptions::default();
    let ok = verify_bytes(
        &signed.bundle,
        &trust(&key),
        &options,
        Some("a.bin"),
        &data(5000, 1),
    );
    assert_eq!(ok.unwrap().path, "a.bin");
    // b's bytes claimed as a, a byte changed, no name with two files, an unknown name.
    for (name, bytes) in [
        (Some("a.bin"), data(6000, 2)),
        (Some("a.bin"), {
            let mut d = data(5000, 1);
            d[4999] ^= 1;
            d
        }),
        (None, data(5000, 1)),
        (Some("c.bin"), data(5000, 1)),
    ] {
        let err = verify_bytes(&signed.bundle, &trust(&key), &options, name, &bytes).unwrap_err();
        assert!(matches!(err, VerifyError::Files(_)), "{name:?}: {err}");
    }
    // An untrusted key is refused before any byte is looked at.
    let err = verify_bytes(
        &signed.bundle,
        &trust(&self::key()),
        &options,
        Some("a.bin"),
        &data(5000, 1),
    )
    .unwrap_err();
    assert!(!matches!(err, VerifyError::Files(_)), "{err}");
    // OMS shards: each shard is checked.
    let (dir, key, bundle) = oms_model(OmsMethod::Shards { size: 3000 }, OmsHash::Sha256);
    let good = std::fs::read(dir.path().join("m/w.bin")).unwrap();
    assert!(verify_bytes(&bundle, &trust(&key), &options, Some("w.bin"), &good).is_ok());
    let mut bad = good.clone();
    bad[9500] ^= 1;
    assert!(verify_bytes(&bundle, &trust(&key), &options, Some("w.bin"), &bad).is_err());
    assert!(
        verify_bytes(
            &bundle,
            &trust(&key),
            &options,
            Some("w.bin"),
            &good[..9999]
        )
        .is_err()
    );
}

/// A Hugging Face cache's shape: snapshot files are links into the repo's `blobs/`.
#[cfg(unix)]
#[test]
fn cache_links_are_followed_only_inside_the_named_root() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(plain.join("sub")).unwrap();
    std::fs::write(plain.join("model.bin"), data(70_000, 5)).unwrap();
    std::fs::write(plain.join("sub/config.json"), b"{}").unwrap();
    let key = key();
    let signed = sign_model(&plain, &SignOptions::default(), &key, &NoProgress).unwrap();
    let repo = dir.path().join("models--org--name");
    let snap = repo.join("snapshots/0123");
    std::fs::create_dir_all(snap.join("sub")).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::copy(plain.join("model.bin"), repo.join("blobs/aaaa")).unwrap();
    std::fs::copy(plain.join("sub/config.json"), repo.join("blobs/bbbb")).unwrap();
    symlink("../../blobs/aaaa", snap.join("model.bin")).unwrap();
    symlink("../../../blobs/bbbb", snap.join("sub/config.json")).unwrap();
    let open = |within: Option<&Path>| {
        let mut options = VerifyOptions::default();
        options.walk.links_within = within.map(Path::to_path_buf);
        ModelReader::open(&snap, &signed.bundle, &trust(&key), &options, None)
    };
    let refused = open(None).unwrap_err();
    assert!(
        refused.to_string().contains("symbolic link")
            || modelseal_verify::error_chain(&refused).contains("link"),
        "{refused}"
    );
    let reader = open(Some(&repo)).unwrap();
    assert_eq!(reader.read_file("model.bin").unwrap(), data(70_000, 5));
    let verified = modelseal_verify::verify_model(
        &snap,
        &signed.bundle,
        &trust(&key),
        &{
            let mut o = VerifyOptions::default();
            o.walk.links_within = Some(repo.clone());
            o
        },
        &NoProgress,
    );
    assert!(verified.is_ok(), "{:?}", verified.err());
    // A link out of the repo folder, to a file with the very bytes signed, is refused.
    let outside = dir.path().join("elsewhere.bin");
    std::fs::copy(plain.join("model.bin"), &outside).unwrap();
    std::fs::remove_file(snap.join("model.bin")).unwrap();
    symlink(&outside, snap.join("model.bin")).unwrap();
    let err = open(Some(&repo)).unwrap_err();
    assert!(
        modelseal_verify::error_chain(&err).contains("outside"),
        "{err}"
    );
    // The blob changed after open: the read fails.
    std::fs::remove_file(snap.join("model.bin")).unwrap();
    symlink("../../blobs/aaaa", snap.join("model.bin")).unwrap();
    let reader = open(Some(&repo)).unwrap();
    flip(&repo.join("blobs/aaaa"), 69_999);
    assert!(matches!(
        reader.read_file("model.bin").unwrap_err(),
        ReadError::Tampered { .. }
    ));
}

/// `check_file_paced` (what `modelseal watch` re-verifies with): every format, every
/// byte counted through the pacer, a flipped byte, a grown file and a swapped file refused.
#[test]
fn paced_whole_file_checks_refuse_changed_grown_and_swapped_files_in_every_format() {
    let native = || {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir_all(m.join("sub")).unwrap();
        std::fs::write(m.join("w.bin"), data(10_000, 1)).unwrap();
        std::fs::write(m.join("sub/c.json"), b"{}").unwrap();
        std::fs::write(m.join("empty"), b"").unwrap();
        let key = key();
        let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
        (dir, key, signed.bundle)
    };
    let cases: Vec<(&str, Box<dyn Fn() -> _>)> = vec![
        ("native", Box::new(native)),
        (
            "oms files sha256",
            Box::new(|| oms_model(OmsMethod::Files, OmsHash::Sha256)),
        ),
        (
            "oms shards blake2b",
            Box::new(|| oms_model(OmsMethod::Shards { size: 3000 }, OmsHash::Blake2b)),
        ),
    ];
    for (label, make) in cases {
        let (dir, key, bundle) = make();
        let w = dir.path().join("m/w.bin");
        let reader = open_oms(&dir, &key, &bundle).unwrap();
        let files: Vec<(String, u64)> = reader.files().map(|(p, s)| (p.to_owned(), s)).collect();
        assert!(
            files.iter().any(|(p, s)| p == "w.bin" && *s == 10_000),
            "{label}"
        );
        for (path, size) in &files {
            let (path, size) = (path.as_str(), *size);
            let mut counted = 0;
            reader
                .check_file_paced(path, 4096, &mut |n| counted += n)
                .unwrap_or_else(|e| panic!("{label} {path}: {e}"));
            assert_eq!(counted, size, "{label} {path}: every byte paced");
        }
        flip(&w, 9_999);
        let err = reader
            .check_file_paced("w.bin", 4096, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, ReadError::Tampered { .. }), "{label}: {err}");
        flip(&w, 9_999);
        // Grown in place (same inode): the signed bytes still match, the length does not.
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&w).unwrap();
            f.write_all(&[0]).unwrap();
        }
        let err = reader
            .check_file_paced("w.bin", 4096, &mut |_| {})
            .unwrap_err();
        assert!(
            matches!(err, ReadError::Resized { found: 10_001, .. }),
            "{label}: {err}"
        );
        // Swapped for a new file with the signed bytes: not the file opened.
        let swap = dir.path().join("swap");
        std::fs::write(&swap, data(10_000, 1)).unwrap();
        std::fs::rename(&swap, &w).unwrap();
        let err = reader
            .check_file_paced("w.bin", 4096, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, ReadError::Swapped { .. }), "{label}: {err}");
    }
}
