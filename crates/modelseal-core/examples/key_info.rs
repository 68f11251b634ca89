//! What modelseal makes of a key file, for the differential harness (tests/formats):
//! prints `{"spki": "HEX"}`, the SubjectPublicKeyInfo DER of the public key it read (for a
//! private key, of the public key it derives), or `{"error": "…"}` when it refuses the
//! file. The same parsers `--key`, `sign --key` and policies use.
//!
//! Usage: `key_info public|private FILE`

use modelseal_core::{SigningKey, VerifyingKey};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: key_info public|private FILE");
        std::process::exit(2);
    };
    let report = match std::fs::read(&path) {
        Err(e) => serde_json::json!({"error": format!("cannot read {path}: {e}")}),
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned());
            let spki = text.and_then(|pem| match kind.as_str() {
                "public" => VerifyingKey::from_pem(&pem)
                    .map(|k| k.spki_der().to_vec())
                    .map_err(|e| e.to_string()),
                _ => SigningKey::from_pem(&pem, None)
                    .map(|k| k.verifying_key().spki_der().to_vec())
                    .map_err(|e| e.to_string()),
            });
            match spki {
                Ok(der) => serde_json::json!({"spki": hex::encode(der)}),
                Err(e) => serde_json::json!({"error": e}),
            }
        }
    };
    println!("{report}");
}
