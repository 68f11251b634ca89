//! The vectors of spec/vectors/oci (which spec/vectors/check_vectors.py checks on its own):
//! what each artifact's layers unpack to, or the refusal, through the crate's unpacker.

use std::collections::HashMap;
use std::path::Path;

use modelseal_oci::layers::{UnpackLimits, Unpacker, layer_format};

#[test]
fn every_oci_vector_unpacks_as_the_spec_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors/oci");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let manifest: serde_json::Value =
            serde_json::from_slice(&hex::decode(v["manifestHex"].as_str().unwrap()).unwrap())
                .unwrap();
        let blobs: HashMap<&str, Vec<u8>> = v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let content = hex::decode(l["contentHex"].as_str().unwrap()).unwrap();
                (l["digest"].as_str().unwrap(), content)
            })
            .collect();
        let mut unpacker = Unpacker::new(None, UnpackLimits::default());
        let mut result = Ok(());
        for desc in manifest["layers"].as_array().unwrap() {
            let digest = desc["digest"].as_str().unwrap();
            let annotations: Option<HashMap<String, String>> =
                serde_json::from_value(desc["annotations"].clone()).ok();
            let data = &blobs[digest];
            result = layer_format(
                desc["mediaType"].as_str().unwrap(),
                annotations.as_ref(),
                digest,
            )
            .and_then(|format| unpacker.layer(digest, &format, data.len() as u64, &mut &data[..]));
            if result.is_err() {
                break;
            }
        }
        match v["expect"].as_str().unwrap() {
            "ok" => {
                result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let manifest = modelseal_core::Manifest::from_unsorted(unpacker.entries).unwrap();
                let got: Vec<serde_json::Value> = manifest
                    .entries()
                    .iter()
                    .map(|e| {
                        serde_json::json!({"path": e.path.as_str(), "size": e.size, "blake3": e.blake3.to_hex()})
                    })
                    .collect();
                assert_eq!(serde_json::Value::from(got), v["files"], "{name}");
            }
            kind => {
                let err = result.expect_err(&name).to_string();
                let words = match kind {
                    "escape" => "climbs out",
                    "link" => "is a link",
                    "duplicate" => "appears twice",
                    "whiteout" => "whiteout",
                    "media-type" => "not a model layer",
                    other => panic!("{name}: unknown expectation {other}"),
                };
                assert!(err.contains(words), "{name}: {err}");
            }
        }
        seen += 1;
    }
    assert!(seen >= 8, "vectors missing under {}", dir.display());
}
