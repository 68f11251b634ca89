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
    // A read large enough to be checked in parallel pieces reports the same group.
    assert!(matches!(
        reader.read_range("weights.bin", 0..BIG as u64),
        Err(ReadError::Tampered {
            offset: 2_097_152,
            ..
        })
    ));
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
    // A well-formed outboard of another file of the same size: right length, wrong tree.
    let other = signed();
    let mut bytes = big();
    bytes[BIG / 2] ^= 1;
    std::fs::write(other.model().join("weights.bin"), &bytes).unwrap();
    let manifest = modelseal_core::hash_model(
        &other.model(),
        &modelseal_core::WalkOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let foreign = other.dir.path().join("foreign.outboard");
    outboard::write_all(&other.model(), &manifest, &foreign).unwrap();
    let foreign_ob = outboard::outboard_file(
        &foreign,
        &modelseal_core::ManifestPath::parse("weights.bin").unwrap(),
    );
    assert_eq!(
        std::fs::metadata(&foreign_ob).unwrap().len(),
        std::fs::metadata(&ob).unwrap().len()
    );
    std::fs::copy(&foreign_ob, &ob).unwrap();
    let reader = s.open(Some(&s.outboards())).unwrap();
    let big = BIG as u64;
    for range in [0..10, big - 10..big] {
        let err = reader.read_range("weights.bin", range.clone()).unwrap_err();
        // Refused either way; which words depends on where the tree first disagrees.
        assert!(
            matches!(err, ReadError::Outboard { .. } | ReadError::Tampered { .. }),
            "{range:?}: {err}"
        );
    }
    // Put the file's own outboard back: reads pass again.
    let own = modelseal_core::hash_model(
        &s.model(),
        &modelseal_core::WalkOptions::default(),
        &NoProgress,
    )
    .unwrap();
    outboard::write_all(&s.model(), &own, &s.outboards()).unwrap();
    let reader = s.open(Some(&s.outboards())).unwrap();
    assert!(reader.read_range("weights.bin", 0..10).is_ok());
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
    // (A reader reads each outboard once; a fresh one sees the truncated file.)
    let reader = s.open(Some(&s.outboards())).unwrap();
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

mod safetensors_files {
    use super::*;
    use modelseal_verify::safetensors::{SafeTensors, SafetensorsError};

    /// Writes a safetensors file: the 8-byte header length, the JSON header, the data.
    fn write_safetensors(path: &Path, header: &serde_json::Value, data: &[u8]) {
        let header = serde_json::to_vec(header).unwrap();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(data);
        std::fs::write(path, bytes).unwrap();
    }

    fn tensors() -> (serde_json::Value, Vec<u8>) {
        let big: Vec<u8> = (0..300_000u32 * 4).map(|i| (i % 253) as u8).collect();
        let small: Vec<u8> = (0..24u8).collect();
        let ints: Vec<u8> = (0..32u8).map(|i| i * 3).collect();
        let mut data = big.clone();
        data.extend_from_slice(&small);
        data.extend_from_slice(&ints);
        let b = big.len() as u64;
        let header = serde_json::json!({
            "__metadata__": {"format": "pt"},
            "embed.weight": {"dtype": "F32", "shape": [1000, 300], "data_offsets": [0, b]},
            "norm.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, b + 24]},
            "positions": {"dtype": "I64", "shape": [4], "data_offsets": [b + 24, b + 56]},
        });
        (header, data)
    }

    fn sign_file(dir: &Path, header: &serde_json::Value, data: &[u8]) -> (ModelReader, PathBuf) {
        let m = dir.join("m");
        std::fs::create_dir_all(&m).unwrap();
        write_safetensors(&m.join("model.safetensors"), header, data);
        let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
        let obs = dir.join("m.sig.outboard");
        outboard::write_all(&m, &signed.manifest, &obs).unwrap();
        let policy = TrustPolicy::from_keys(vec![key.verifying_key()]);
        let reader = ModelReader::open(
            &m,
            &signed.bundle,
            &policy,
            &VerifyOptions::default(),
            Some(&obs),
        )
        .unwrap();
        (reader, m.join("model.safetensors"))
    }

    #[test]
    fn tensors_read_verified_with_dtype_and_shape() {
        let dir = tempfile::tempdir().unwrap();
        let (header, data) = tensors();
        let (reader, _) = sign_file(dir.path(), &header, &data);
        let st = SafeTensors::open(&reader, "model.safetensors").unwrap();
        assert_eq!(st.keys(), ["embed.weight", "norm.weight", "positions"]);
        assert_eq!(st.metadata()["format"], "pt");
        let norm = st.tensor("norm.weight").unwrap();
        assert_eq!(
            (norm.info.dtype.as_str(), norm.info.shape.clone()),
            ("F32", vec![2, 3])
        );
        assert_eq!(norm.data, (0..24u8).collect::<Vec<_>>());
        assert_eq!(st.tensor("embed.weight").unwrap().data.len(), 1_200_000);
        assert!(matches!(
            st.tensor("nope"),
            Err(SafetensorsError::NoTensor { .. })
        ));
    }

    #[test]
    fn a_tampered_tensor_fails_only_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let (header, data) = tensors();
        let (reader, file) = sign_file(dir.path(), &header, &data);
        let st = SafeTensors::open(&reader, "model.safetensors").unwrap();
        // Flip a byte deep inside embed.weight, far from the other tensors' groups.
        let at = st.info("embed.weight").unwrap().range.start as usize + 500_000;
        flip(&file, at);
        let err = st.tensor("embed.weight").unwrap_err();
        assert!(
            err.to_string().contains("do not match their signed digest"),
            "{err}"
        );
        assert_eq!(
            st.tensor("positions").unwrap().data,
            (0..32u8).map(|i| i * 3).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_headers_are_refused_before_any_tensor_is_read() {
        let (_, data) = tensors();
        let b = 1_200_000u64;
        let cases = [
            (
                serde_json::json!({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}),
                "needs Some(8) bytes",
            ),
            (
                serde_json::json!({"t": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}),
                "unknown dtype F33",
            ),
            (
                serde_json::json!({"t": {"dtype": "U8", "shape": [8], "data_offsets": [b + 100, b + 108]}}),
                "outside the file",
            ),
            (
                serde_json::json!({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}, "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}}),
                "overlap",
            ),
            (
                serde_json::json!({"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "extra": 1}}),
                "unknown field",
            ),
            (
                serde_json::json!({"__metadata__": {"n": 1}}),
                "__metadata__ must map strings to strings",
            ),
        ];
        for (header, message) in cases {
            let dir = tempfile::tempdir().unwrap();
            let (reader, _) = sign_file(dir.path(), &header, &data);
            let err = SafeTensors::open(&reader, "model.safetensors").unwrap_err();
            assert!(err.to_string().contains(message), "want {message:?}: {err}");
        }
        // A length prefix larger than the file.
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir(&m).unwrap();
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        std::fs::write(m.join("x.safetensors"), bytes).unwrap();
        let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
        let policy = TrustPolicy::from_keys(vec![key.verifying_key()]);
        let reader =
            ModelReader::open(&m, &signed.bundle, &policy, &VerifyOptions::default(), None)
                .unwrap();
        assert!(matches!(
            SafeTensors::open(&reader, "x.safetensors"),
            Err(SafetensorsError::HeaderLength { .. })
        ));
    }

    /// Opens a signed file of exactly `header` (JSON text) and `data`.
    fn open_raw(header: &str, data: &[u8]) -> Result<Vec<String>, SafetensorsError> {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir(&m).unwrap();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        std::fs::write(m.join("x.safetensors"), bytes).unwrap();
        let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
        let policy = TrustPolicy::from_keys(vec![key.verifying_key()]);
        let reader =
            ModelReader::open(&m, &signed.bundle, &policy, &VerifyOptions::default(), None)
                .unwrap();
        SafeTensors::open(&reader, "x.safetensors")
            .map(|st| st.keys().into_iter().map(str::to_owned).collect())
    }

    #[test]
    fn headers_the_safetensors_package_reads_otherwise_are_refused() {
        // Issue 24: each was accepted on main; the safetensors package refuses them or
        // reads another tensor than modelseal did.
        let t = |name: &str, at: u64| {
            format!(
                r#""{name}":{{"dtype":"U8","shape":[4],"data_offsets":[{at},{}]}}"#,
                at + 4
            )
        };
        let ok = format!("{{{},{}}}  ", t("a", 0), t("b", 4));
        assert_eq!(open_raw(&ok, &[0; 8]).unwrap(), ["a", "b"]);
        for (header, data, want) in [
            // The same name twice: serde kept the last, a streaming reader the first.
            (
                format!("{{{},{}}}", t("a", 0), t("a", 4)),
                8,
                "appears twice",
            ),
            // A hole before a tensor, and bytes after the last.
            (
                format!("{{{},{}}}", t("a", 0), t("b", 8)),
                12,
                "belong to no tensor",
            ),
            (
                format!("{{{},{}}}", t("a", 0), t("b", 4)),
                9,
                "after the last tensor",
            ),
            (format!("{{{}}}", t("a", 4)), 8, "before tensor"),
            // A header the package refuses for its first byte.
            (format!(" {{{}}}", t("a", 0)), 4, "does not start"),
        ] {
            let err = open_raw(&header, &vec![0; data]).unwrap_err();
            assert!(err.to_string().contains(want), "{header}: {err}");
        }
    }
}

#[test]
fn a_reader_opens_only_the_artifact_the_caller_expects() {
    let s = signed();
    let policy = TrustPolicy::from_keys(vec![s.key.verifying_key()]);
    let manifest = modelseal_core::hash_model(
        &s.model(),
        &modelseal_core::WalkOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let open = |expected: modelseal_core::ArtifactDigest| {
        let mut options = VerifyOptions::default();
        options.expected = Some(expected);
        ModelReader::open(&s.model(), &s.bundle, &policy, &options, None)
    };
    assert!(open(modelseal_core::ArtifactDigest::blake3(&manifest.root())).is_ok());
    let other: modelseal_core::ArtifactDigest =
        format!("blake3:{}", "ab".repeat(32)).parse().unwrap();
    let err = open(other).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Subject(modelseal_verify::SubjectProblem::OtherArtifact { expected })
                if expected == other
        ),
        "{err}"
    );
}
