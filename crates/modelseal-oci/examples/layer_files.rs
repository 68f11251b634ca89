//! What modelseal's layer reader makes of one layer blob, for the differential harness
//! (tests/formats): reads the blob from stdin, unpacks it with the same code `pull`
//! uses into the new directory given as the second argument, and prints one JSON object:
//! `{"accepted": true, "files": N}` or `{"accepted": false, "error": "…"}`. The files
//! themselves are on disk, as `pull` would leave them.
//!
//! Usage: `layer_files tar|tar+gzip|tar+zstd OUT_DIR < blob`

use std::io::Read;
use std::path::Path;

use modelseal_oci::layers::{LayerFormat, UnpackLimits, Unpacker};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: layer_files tar|tar+gzip|tar+zstd OUT_DIR < blob");
        std::process::exit(2);
    };
    let format = match kind.as_str() {
        "tar" => LayerFormat::Tar,
        "tar+gzip" => LayerFormat::TarGzip,
        "tar+zstd" => LayerFormat::TarZstd,
        other => {
            eprintln!("unknown layer kind {other:?}");
            std::process::exit(2);
        }
    };
    let mut blob = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut blob) {
        eprintln!("cannot read stdin: {e}");
        std::process::exit(2);
    }
    let out = Path::new(&out);
    let mut unpacker = Unpacker::new(Some(out), UnpackLimits::default());
    let result = unpacker.layer("stdin", &format, blob.len() as u64, &mut &blob[..]);
    let report = match result {
        Ok(()) => serde_json::json!({"accepted": true, "files": unpacker.entries.len()}),
        Err(e) => serde_json::json!({"accepted": false, "error": e.to_string()}),
    };
    println!("{report}");
}
