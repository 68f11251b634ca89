//! The vectors of spec/vectors/stamps, which spec/vectors/check_vectors.py checks on its
//! own from spec/incremental.md. Each is rebuilt here from its description with the
//! library and must equal the committed file; `MODELSEAL_WRITE_VECTORS=1` rewrites them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use modelseal_core::stamps::{KnownDigests, STAMPS_PAYLOAD_TYPE, Stamp, Stamps, StampsError};
use modelseal_core::{ManifestPath, SigningKey, dsse};
use serde_json::{Value, json};

const MODEL: &str = "/models/chat";
const SIGNATURE_FILE: &[u8] = b"{\"mediaType\": \"a signature file\"}\n";

fn key(name: &str) -> SigningKey {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/keys")
        .join(name);
    SigningKey::from_pem(&std::fs::read_to_string(path).unwrap(), None).unwrap()
}

fn stamp(ino: u64, size: u64, time: i64) -> Stamp {
    Stamp {
        dev: 2049,
        ino,
        size,
        mtime: (time, 250_000_000),
        ctime: (time, 250_000_000),
    }
}

fn path(p: &str) -> ManifestPath {
    ManifestPath::parse(p).unwrap()
}

/// The stamps every vector starts from, and the sizes the old signature lists.
fn recorded() -> (Stamps, BTreeMap<&'static str, u64>) {
    use sha2::Digest as _;
    let stamps = Stamps {
        signature_sha256: sha2::Sha256::digest(SIGNATURE_FILE).into(),
        model: MODEL.into(),
        files: [
            (path("model.safetensors"), stamp(11, 70_000, 1_765_000_000)),
            (path("config.json"), stamp(12, 700, 1_765_000_001)),
            (path("tokenizer/vocab.txt"), stamp(13, 3_000, 1_765_000_002)),
            (path("README.md"), stamp(14, 900, 1_765_000_003)),
        ]
        .into(),
        layers: vec![],
    };
    let old = [
        ("model.safetensors", 70_000),
        ("config.json", 700),
        ("tokenizer/vocab.txt", 3_000),
        // The old signature lists README.md at another size than its stamp: not kept.
        ("README.md", 800),
    ]
    .into();
    (stamps, old)
}

/// Signs an arbitrary payload as a stamp file (for the malformed vectors).
fn envelope(payload: &[u8], payload_type: &str, signers: &[&SigningKey]) -> Vec<u8> {
    let signatures: Vec<Value> = signers
        .iter()
        .map(|k| {
            let sig = k.sign(&dsse::pae(payload_type, payload));
            json!({"sig": base64::engine::general_purpose::STANDARD.encode(sig), "keyid": ""})
        })
        .collect();
    let mut out = serde_json::to_vec(&json!({
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
        "payloadType": payload_type,
        "signatures": signatures,
    }))
    .unwrap();
    out.push(b'\n');
    out
}

/// The payload of a signed stamp file, as JSON.
fn payload_of(file: &[u8]) -> Value {
    let envelope: Value = serde_json::from_slice(file).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

struct Case {
    name: &'static str,
    comment: &'static str,
    file: Vec<u8>,
    model: &'static str,
    /// The walk now: path, size, stamp.
    walked: Vec<(&'static str, u64, Option<Stamp>)>,
}

fn unchanged() -> Vec<(&'static str, u64, Option<Stamp>)> {
    let (stamps, _) = recorded();
    stamps
        .files
        .iter()
        .map(|(p, s)| {
            let name: &'static str = Box::leak(p.to_string().into_boxed_str());
            (name, s.size, Some(*s))
        })
        .collect()
}

fn cases() -> Vec<Case> {
    let vector = key("vector-ed25519.pem");
    let other = key("other-ed25519.pem");
    let (stamps, _) = recorded();
    let good = stamps.sign(&vector).unwrap();
    let resign = |edit: &dyn Fn(&mut Value)| {
        let mut payload = payload_of(&good);
        edit(&mut payload);
        envelope(
            &serde_json::to_vec(&payload).unwrap(),
            STAMPS_PAYLOAD_TYPE,
            &[&vector],
        )
    };
    let mut changed = unchanged();
    // ctime moved (a write with mtime put back), another inode, another size, a new file.
    changed[0].2.as_mut().unwrap().ctime.1 += 1;
    changed[2].2.as_mut().unwrap().ino = 99;
    changed.push(("added.bin", 5, Some(stamp(20, 5, 1_765_000_009))));
    let mut gone = unchanged();
    gone[1].2 = None; // its path no longer leads to the walked file
    gone[0].1 = 69_999; // walked at another size than its stamp
    vec![
        Case {
            name: "unchanged",
            comment: "every stamp as recorded: every file the old signature lists at its stamped size is kept (README.md is listed at another size, so it is hashed)",
            file: good.clone(),
            model: MODEL,
            walked: unchanged(),
        },
        Case {
            name: "changed-files",
            comment: "a moved change time, another inode, and a new file are hashed; the rest kept",
            file: good.clone(),
            model: MODEL,
            walked: changed,
        },
        Case {
            name: "unstamped-and-resized",
            comment: "a file with no stamp now, and one walked at another size, are hashed",
            file: good.clone(),
            model: MODEL,
            walked: gone,
        },
        Case {
            name: "other-model",
            comment: "stamps taken of another directory are not used",
            file: good.clone(),
            model: "/models/other",
            walked: unchanged(),
        },
        Case {
            name: "other-signature",
            comment: "stamps for another signature file are not used",
            file: resign(&|p| p["signature"]["sha256"] = json!("00".repeat(32))),
            model: MODEL,
            walked: unchanged(),
        },
        Case {
            name: "tampered-payload",
            comment: "a stamp edited to a changed file's stamp, the signature kept",
            file: {
                let mut env: Value = serde_json::from_slice(&good).unwrap();
                let mut payload = payload_of(&good);
                payload["files"][0]["ctime"][1] = json!(250_000_001);
                env["payload"] = json!(
                    base64::engine::general_purpose::STANDARD
                        .encode(serde_json::to_vec(&payload).unwrap())
                );
                serde_json::to_vec(&env).unwrap()
            },
            model: MODEL,
            walked: unchanged(),
        },
        Case {
            name: "other-key",
            comment: "stamps signed by a key that is not the signer's",
            file: stamps.sign(&other).unwrap(),
            model: MODEL,
            walked: unchanged(),
        },
        Case {
            name: "statement-payload-type",
            comment: "the in-toto payload type: a stamp file is never a statement, nor the reverse",
            file: envelope(
                &serde_json::to_vec(&payload_of(&good)).unwrap(),
                "application/vnd.in-toto+json",
                &[&vector],
            ),
            model: MODEL,
            walked: unchanged(),
        },
        Case {
            name: "two-signatures",
            comment: "exactly one signature",
            file: envelope(
                &serde_json::to_vec(&payload_of(&good)).unwrap(),
                STAMPS_PAYLOAD_TYPE,
                &[&vector, &vector],
            ),
            model: MODEL,
            walked: unchanged(),
        },
        Case {
            name: "path-twice",
            comment: "a path stamped twice",
            file: resign(&|p| {
                let first = p["files"][0].clone();
                p["files"].as_array_mut().unwrap().push(first);
            }),
            model: MODEL,
            walked: unchanged(),
        },
        Case {
            name: "unknown-field",
            comment: "unknown payload fields are refused",
            file: resign(&|p| p["files"][0]["inode"] = json!(1)),
            model: MODEL,
            walked: unchanged(),
        },
        Case {
            name: "path-escapes",
            comment: "a stamped path that is not a manifest path",
            file: resign(&|p| p["files"][0]["path"] = json!("../outside")),
            model: MODEL,
            walked: unchanged(),
        },
    ]
}

fn outcome(case: &Case) -> (String, Vec<String>) {
    use sha2::Digest as _;
    let public = key("vector-ed25519.pem").verifying_key();
    let stamps = match Stamps::open(&case.file, &public) {
        Ok(s) => s,
        Err(StampsError::Signature) => return ("signature".into(), vec![]),
        Err(StampsError::Malformed(_)) => return ("malformed".into(), vec![]),
        Err(e) => panic!("unexpected {e}"),
    };
    let sha: [u8; 32] = sha2::Sha256::digest(SIGNATURE_FILE).into();
    if stamps.signature_sha256 != sha {
        return ("other-signature".into(), vec![]);
    }
    if stamps.model != case.model {
        return ("other-model".into(), vec![]);
    }
    let (_, old) = recorded();
    let known = KnownDigests::new(&stamps, |p, size| {
        old.get(p.as_str()).filter(|s| **s == size).map(|_| ())
    });
    let mut kept: Vec<String> = case
        .walked
        .iter()
        .filter(|(p, size, now)| known.keeps(&path(p), *size, now.as_ref()).is_some())
        .map(|(p, _, _)| p.to_string())
        .collect();
    kept.sort();
    ("ok".into(), kept)
}

#[test]
fn stamp_vectors_are_what_the_library_makes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors/stamps");
    let write = std::env::var_os("MODELSEAL_WRITE_VECTORS").is_some();
    let (_, old) = recorded();
    let public_pem = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/keys/vector-ed25519.pem.pub"),
    )
    .unwrap();
    for case in cases() {
        let (expect, kept) = outcome(&case);
        let walked: Vec<Value> = case
            .walked
            .iter()
            .map(|(p, size, now)| json!({"path": p, "size": size, "stamp": now}))
            .collect();
        let vector = json!({
            "name": case.name,
            "comment": case.comment,
            "publicKeyPem": public_pem,
            "signatureFileBase64": base64::engine::general_purpose::STANDARD.encode(SIGNATURE_FILE),
            "model": case.model,
            "stampFile": String::from_utf8(case.file.clone()).unwrap(),
            "oldManifestSizes": old,
            "walked": walked,
            "expect": expect,
            "kept": kept,
        });
        let text = serde_json::to_string_pretty(&vector).unwrap() + "\n";
        let file = dir.join(format!("{}.json", case.name));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&file).unwrap_or_else(|_| {
            panic!(
                "{} is missing: make it with MODELSEAL_WRITE_VECTORS=1",
                file.display()
            )
        });
        assert_eq!(
            committed,
            text,
            "{} differs from what the library makes",
            file.display()
        );
    }
}
