//! Replays every corpus file of every target through its function, on stable: what the
//! fuzzers found (and the seeds) stays fixed. Each target must have a non-empty corpus.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("bundle_json", modelseal_fuzz::bundle_json),
    ("envelope", modelseal_fuzz::envelope),
    ("statement", modelseal_fuzz::statement),
    ("manifest_predicate", modelseal_fuzz::manifest_predicate),
    ("oms_predicate", modelseal_fuzz::oms_predicate),
    ("provenance", modelseal_fuzz::provenance),
    ("vsa", modelseal_fuzz::vsa),
    ("policy_toml", modelseal_fuzz::policy_toml),
    ("webhook_config", modelseal_fuzz::webhook_config),
    ("admission_review", modelseal_fuzz::admission_review),
    ("safetensors_header", modelseal_fuzz::safetensors_header),
    ("outboard", modelseal_fuzz::outboard),
    ("x509_chain", modelseal_fuzz::x509_chain),
    ("timestamp", modelseal_fuzz::timestamp),
    ("digests_and_paths", modelseal_fuzz::digests_and_paths),
    ("oci_layer", modelseal_fuzz::oci_layer),
    ("changed_file_reads", modelseal_fuzz::changed_file_reads),
    ("json_keys", modelseal_fuzz::json_keys),
    ("device_names", modelseal_fuzz::device_names),
    ("public_keys", modelseal_fuzz::public_keys),
    (
        "digest_lists_and_stamps",
        modelseal_fuzz::digest_lists_and_stamps,
    ),
];

#[test]
fn every_corpus_file_of_every_target_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz_targets"))
        .unwrap()
        .count();
    assert_eq!(targets, TARGETS.len(), "a target is missing from this list");
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name} has an empty corpus");
        for file in &files {
            let data = match std::fs::read(file) {
                Ok(data) => data,
                // A fuzzer running beside this test may reduce a file away meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", file.display()),
            };
            target(&data);
        }
        eprintln!("{name}: {} inputs replayed", files.len());
    }
}
