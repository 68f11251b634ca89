//! What modelseal makes of a certificate chain, for the differential harness
//! (tests/formats): reads trusted roots and a chain (leaf first) from PEM files as
//! `--certificate-chain` and `trust` do, checks the chain at a time as certificate-signed
//! bundles are checked, and prints `{"spki": "HEX"}` (the leaf's SubjectPublicKeyInfo
//! DER) or `{"error": "…"}`.
//!
//! Usage: `chain_check ROOTS.pem CHAIN.pem UNIX_SECONDS`, or `chain_check pem FILE` to
//! print `{"certificates": ["HEX", …]}`, the DER of every certificate a PEM file holds.

use modelseal_verify::certs::{ValidityTime, verify_chain};
use serde_json::json;

fn read_pem(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))?;
    modelseal_core::certificates_from_pem(&text).map_err(|e| e.to_string())
}

fn check(roots: &str, chain: &str, at: &str) -> Result<Vec<u8>, String> {
    let at: u64 = at.parse().map_err(|_| format!("not a time: {at}"))?;
    let roots = read_pem(roots)?;
    let chain = read_pem(chain)?;
    let verified = verify_chain(&chain, &roots, ValidityTime::At(at)).map_err(|e| e.to_string())?;
    Ok(verified.key.spki_der().to_vec())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let report = match args.as_slice() {
        [mode, file] if mode == "pem" => match read_pem(file) {
            Ok(certs) => json!({"certificates": certs.iter().map(hex::encode).collect::<Vec<_>>()}),
            Err(e) => json!({"error": e}),
        },
        [roots, chain, at] => match check(roots, chain, at) {
            Ok(spki) => json!({"spki": hex::encode(spki)}),
            Err(e) => json!({"error": e}),
        },
        _ => {
            eprintln!("usage: chain_check ROOTS.pem CHAIN.pem UNIX_SECONDS | chain_check pem FILE");
            std::process::exit(2);
        }
    };
    println!("{report}");
}
