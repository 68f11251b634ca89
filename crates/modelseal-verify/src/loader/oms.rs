//! Opening a model against an OMS signature.

use super::*;

/// An OMS model: the statement's resources matched with the files found, by name and
/// (for shards) by the exact shard layout the file's size gives. No byte is read.
pub(super) fn open_oms(
    root: &Path,
    signer: Signer,
    signed: SignedOms,
    options: &VerifyOptions,
) -> Result<ModelReader, VerifyError> {
    let walk = modelseal_core::oms::walk_options(&signed.serialization, &options.walk);
    let paths = signed.paths();
    let single_file = std::fs::metadata(root).is_ok_and(|m| m.is_file());
    let found = find_files(root, &walk, &paths, options.ignore_unsigned_files)?;
    // Resources by file: a single-file model's one file is `.` (no path).
    let mut by_file: BTreeMap<Option<ManifestPath>, Vec<(&ResourceName, &Vec<u8>)>> =
        BTreeMap::new();
    for r in &signed.resources {
        by_file
            .entry(r.name.path.clone())
            .or_default()
            .push((&r.name, &r.digest));
    }
    let hash = signed.serialization.hash;
    let mut mismatch = FileMismatch::default();
    let mut files = BTreeMap::new();
    for file in found {
        let key = (!single_file).then(|| file.path.clone());
        let Some(mut resources) = by_file.remove(&key) else {
            let shards = matches!(signed.serialization.method, OmsMethod::Shards { .. });
            // An empty file has no shards, so the format cannot list it: accepted only
            // when the caller says so (`VerifyOptions::allow_unlisted_empty_files`).
            if shards && file.size == 0 && options.allow_unlisted_empty_files {
                continue;
            }
            mismatch.extra.push(file.path.to_string());
            continue;
        };
        let check = match signed.serialization.method {
            OmsMethod::Files => match (hash, resources.as_slice()) {
                (OmsHash::Blake3, [(_, digest)]) if digest.len() == 32 => {
                    Check::Blake3(digest.as_slice().try_into().expect("32 bytes"))
                }
                (_, [(_, digest)]) => Check::Whole {
                    hash,
                    digest: digest.to_vec(),
                },
                _ => {
                    mismatch
                        .modified
                        .push(resized(&file, hash.name(), String::new(), None));
                    continue;
                }
            },
            OmsMethod::Shards { size } => {
                resources.sort_by_key(|(name, _)| name.shard);
                let layout: Vec<(u64, u64)> = (0..file.size.div_ceil(size))
                    .map(|i| (i * size, ((i + 1) * size).min(file.size)))
                    .collect();
                let listed: Vec<(u64, u64)> =
                    resources.iter().filter_map(|(n, _)| n.shard).collect();
                if listed != layout {
                    // The shards name another length (or have a gap): the file changed.
                    let signed_size = resources
                        .iter()
                        .filter_map(|(n, _)| n.shard)
                        .map(|(_, end)| end)
                        .max();
                    mismatch.modified.push(resized(
                        &file,
                        &signed.serialization.resource_algorithm(),
                        String::new(),
                        signed_size,
                    ));
                    continue;
                }
                Check::Shards {
                    hash,
                    size,
                    digests: resources.iter().map(|(_, d)| d.to_vec()).collect(),
                }
            }
            other => {
                return Err(crate::error::OmsPredicateError::Method(format!("{other:?}")).into());
            }
        };
        files.insert(
            file.path.to_string(),
            SignedFile {
                size: file.size,
                check,
                fs_path: file.fs_path,
                identity: file.identity,
            },
        );
    }
    for (path, _) in by_file {
        mismatch
            .missing
            .push(path.map_or_else(|| ".".to_owned(), |p| p.to_string()));
    }
    mismatch.into_result()?;
    let root_digest = signed.root;
    Ok(ModelReader {
        format: if signed.legacy {
            SignatureFormat::OmsLegacy
        } else {
            SignatureFormat::Oms
        },
        name: signed.name,
        digest: root_digest,
        oci_manifest: None,
        signer,
        files,
        outboards: None,
        outboard_cache: Mutex::new(HashMap::new()),
    })
}
