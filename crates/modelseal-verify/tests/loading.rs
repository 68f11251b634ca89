//! Verified range reads (`spec/loading.md`): bytes are checked against the signed BLAKE3
//! roots as they are read, through the outboard trees; a tampered range fails with its
//! file and offset while untouched ranges still read.

use std::path::{Path, PathBuf};

use modelseal_core::hash::NoProgress;
use modelseal_core::{KeyAlgorithm, SignOptions, SigningKey, outboard, sign_model};
use modelseal_verify::loader::{ModelReader, ReadError};
use modelseal_verify::{TrustPolicy, VerifyError, VerifyOptions};

const BIG: usize = (3 << 20) + 12_345;

fn big() -> Vec<u8> {
    (0..BIG).map(|i| (i * 7 % 251) as u8).collect()
}

struct Signed {
    dir: tempfile::TempDir,
    key: SigningKey,
    bundle: modelseal_core::Bundle,
}

impl Signed {
    fn model(&self) -> PathBuf {
        self.dir.path().join("m")
    }
    fn outboards(&self) -> PathBuf {
        self.dir.path().join("m.sig.outboard")
    }
    fn open(&self, outboards: Option<&Path>) -> Result<ModelReader, VerifyError> {
        let policy = TrustPolicy::from_keys(vec![self.key.verifying_key()]);
        ModelReader::open(
            &self.model(),
            &self.bundle,
            &policy,
            &VerifyOptions::default(),
            outboards,
        )
    }
}

fn signed() -> Signed {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("weights.bin"), big()).unwrap();
    std::fs::write(m.join("config.json"), b"{\"layers\":2}").unwrap();
    let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
    let written =
        outboard::write_all(&m, &signed.manifest, &dir.path().join("m.sig.outboard")).unwrap();
    assert_eq!(
        written, 1,
        "only the file larger than one 64 KiB group gets an outboard"
    );
    Signed {
        dir,
        key,
        bundle: signed.bundle,
    }
}

fn flip(path: &Path, at: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[at] ^= 0x10;
    std::fs::write(path, data).unwrap();
}

#[test]
fn ranges_read_back_the_signed_bytes() {
    let s = signed();
    let reader = s.open(Some(&s.outboards())).unwrap();
    let data = big();
    for (start, end) in [
        (0, 0),
        (0, 1),
        (5, 70_000),
        (65_535, 65_537),
        (1 << 20, (1 << 20) + 4096),
        (BIG as u64 - 10, BIG as u64),
        (0, BIG as u64),
    ] {
        let got = reader.read_range("weights.bin", start..end).unwrap();
        assert_eq!(got, &data[start as usize..end as usize], "{start}..{end}");
    }
    assert_eq!(reader.read_file("config.json").unwrap(), b"{\"layers\":2}");
    assert!(matches!(
        reader.read_range("weights.bin", 10..(BIG as u64 + 1)),
        Err(ReadError::OutOfBounds { .. })
    ));
    assert!(matches!(
        reader.read_range("nope.bin", 0..1),
        Err(ReadError::NotSigned(_))
    ));
    reader.verify_all().unwrap();
}

#[test]
fn a_tampered_range_fails_with_file_and_offset_and_others_still_read() {
    let s = signed();
    let at = (2 << 20) + 100;
    flip(&s.model().join("weights.bin"), at);
    // Same size, so opening (which hashes nothing) succeeds.
    let reader = s.open(Some(&s.outboards())).unwrap();
    let err = reader
        .read_range("weights.bin", (at as u64 - 10)..(at as u64 + 10))
        .unwrap_err();
    match &err {
        ReadError::Tampered { path, offset } => {
            assert_eq!(path, "weights.bin");
            assert_eq!(
                *offset,
                2 << 20,
                "the 64 KiB group holding the flipped byte"
            );
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .contains("weights.bin: bytes at offset 2097152 do not match"),
        "{err}"
    );
    let data = big();
    assert_eq!(
        reader.read_range("weights.bin", 0..4096).unwrap(),
        &data[..4096]
    );
    assert_eq!(
        reader
            .read_range("weights.bin", (3 << 20)..(3 << 20) + 100)
            .unwrap(),
        &data[3 << 20..(3 << 20) + 100]
    );
    assert!(matches!(
        reader.verify_all(),
        Err(ReadError::Tampered { .. })
    ));
    // Without outboards the whole file is checked, and the tampering is caught as well.
    let whole = s.open(None).unwrap();
    assert!(matches!(
        whole.read_range("weights.bin", 0..10),
        Err(ReadError::Tampered { offset: 0, .. })
    ));
}

#[test]
fn a_foreign_or_damaged_outboard_is_refused() {
    let s = signed();
    let ob = outboard::outboard_file(
        &s.outboards(),
        &modelseal_core::ManifestPath::parse("weights.bin").unwrap(),
    );
    // Flip a hash inside the outboard: it no longer leads to the signed root.
    flip(&ob, 40);
    let reader = s.open(Some(&s.outboards())).unwrap();
    let err = reader.read_range("weights.bin", 0..10).unwrap_err();
    assert!(
        matches!(err, ReadError::Outboard { .. } | ReadError::Tampered { .. }),
        "{err}"
    );
    // A truncated outboard is refused by its length.
    let bytes = std::fs::read(&ob).unwrap();
    std::fs::write(&ob, &bytes[..bytes.len() - 64]).unwrap();
    assert!(matches!(
        reader.read_range("weights.bin", 0..10),
        Err(ReadError::Outboard { .. })
    ));
}

#[test]
fn open_checks_the_file_set_and_sizes_without_hashing() {
    let s = signed();
    std::fs::write(s.model().join("extra.py"), b"x").unwrap();
    let err = s.open(None).unwrap_err();
    let VerifyError::Files(mismatch) = &err else {
        panic!("{err}")
    };
    assert_eq!(mismatch.extra, ["extra.py"]);
    std::fs::remove_file(s.model().join("extra.py")).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(s.model().join("weights.bin"))
        .unwrap();
    file.set_len(BIG as u64 - 1).unwrap();
    let err = s.open(None).unwrap_err();
    let VerifyError::Files(mismatch) = &err else {
        panic!("{err}")
    };
    assert_eq!(mismatch.modified[0].path, "weights.bin");
    assert_eq!(mismatch.modified[0].found_size, Some(BIG as u64 - 1));
}
