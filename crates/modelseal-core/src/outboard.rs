//! BLAKE3 outboard trees (`spec/loading.md`): for each large signed file, the hash tree
//! of its 64 KiB chunk groups, so any byte range can later be verified against the
//! file's signed BLAKE3 root without reading the rest of the file. An outboard needs no
//! signature of its own: every hash in it is checked against the signed root.

use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::{BaoTree, BlockSize};

use crate::fsio::{Overwrite, Visibility, write_atomic};
use crate::manifest::Manifest;
use crate::path::ManifestPath;

/// Chunk groups of 2^6 BLAKE3 chunks = 64 KiB: 64 bytes of outboard per 64 KiB of data
/// (0.1%), and a range read costs at most one extra group at each end.
pub const BLOCK: BlockSize = BlockSize::from_chunk_log(6);
/// Files up to this size get no outboard: verifying them whole costs one group.
pub const BLOCK_BYTES: u64 = 64 << 10;

/// The outboard tree shape for a file of `size` bytes.
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK)
}

/// Where a signature's outboards live: `SIGNATURE.outboard/`.
pub fn outboard_dir(signature: &Path) -> PathBuf {
    let mut name = signature.as_os_str().to_owned();
    name.push(".outboard");
    PathBuf::from(name)
}

/// The outboard file of one signed file: `DIR/<manifest path>.obao`.
pub fn outboard_file(dir: &Path, path: &ManifestPath) -> PathBuf {
    let mut file = path.to_fs_path(dir).into_os_string();
    file.push(".obao");
    PathBuf::from(file)
}

/// Computes a file's outboard (pre-order hash pairs) and its BLAKE3 root in one pass.
pub fn create(file: &Path, size: u64) -> io::Result<(blake3::Hash, Vec<u8>)> {
    let tree = tree(size);
    let mut outboard = PreOrderMemOutboard {
        root: blake3::Hash::from([0; 32]),
        tree,
        data: vec![0u8; tree.outboard_size() as usize],
    };
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(file)?);
    let root = bao_tree::io::sync::outboard(reader, tree, &mut outboard)?;
    Ok((root, outboard.data))
}

/// Why outboards could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboardError {
    /// Reading a file or writing an outboard failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file's bytes are not the ones signed: no outboard is written for it.
    #[error("{path} does not match its signed BLAKE3; no outboard written")]
    Changed {
        /// The file.
        path: ManifestPath,
    },
}

/// Writes the outboard of every signed file larger than [`BLOCK_BYTES`] of the model at
/// `root` into `dir`, each checked against the signed hash first. Returns how many.
pub fn write_all(model: &Path, manifest: &Manifest, dir: &Path) -> Result<usize, OutboardError> {
    let single_file = std::fs::metadata(model).is_ok_and(|m| m.is_file());
    let mut written = 0;
    for entry in manifest.entries().iter().filter(|e| e.size > BLOCK_BYTES) {
        let file = if single_file {
            model.to_path_buf()
        } else {
            entry.path.to_fs_path(model)
        };
        let io_err = |source| OutboardError::Io {
            path: file.clone(),
            source,
        };
        // The size comes from the signature and is only a claim until the file agrees:
        // the tree is sized from it, so a file of another size is refused before any
        // memory is reserved for it.
        let size = std::fs::metadata(&file).map_err(io_err)?.len();
        if size != entry.size {
            return Err(OutboardError::Changed {
                path: entry.path.clone(),
            });
        }
        let (root, data) = create(&file, entry.size).map_err(io_err)?;
        if root.as_bytes() != entry.blake3.as_bytes() {
            return Err(OutboardError::Changed {
                path: entry.path.clone(),
            });
        }
        let target = outboard_file(dir, &entry.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|source| OutboardError::Io {
                path: parent.into(),
                source,
            })?;
        }
        write_atomic(&target, &data, Visibility::Public, Overwrite::Allow).map_err(|source| {
            OutboardError::Io {
                path: target.clone(),
                source,
            }
        })?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twelfth attack review: an unverified bundle claiming 2^62 bytes for a file made
    /// `outboard` reserve the tree for that size and abort.
    #[test]
    fn a_claimed_size_the_file_does_not_have_is_refused_before_any_allocation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), vec![1u8; 100_000]).unwrap();
        let real = crate::hash_model(
            dir.path(),
            &crate::WalkOptions::default(),
            &crate::hash::NoProgress,
        )
        .unwrap();
        let mut entry = real.entries()[0].clone();
        entry.size = 1 << 62;
        let claimed = Manifest::from_unsorted(vec![entry]).unwrap();
        let out = dir.path().join("out");
        assert!(matches!(
            write_all(dir.path(), &claimed, &out),
            Err(OutboardError::Changed { .. })
        ));
    }

    /// The outboard's root is the plain BLAKE3 of the file (what `b3sum` prints) for
    /// every size, including the empty file and each chunk and group boundary.
    #[test]
    fn root_equals_blake3_for_many_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0u64,
            1,
            1023,
            1024,
            1025,
            2048,
            65_535,
            65_536,
            65_537,
            131_072,
            131_073,
            (1 << 20) + 7,
            3 << 20,
        ];
        for size in sizes {
            let data: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &data).unwrap();
            let (root, outboard) = create(&path, size).unwrap();
            assert_eq!(root, blake3::hash(&data), "size {size}");
            assert_eq!(
                outboard.len() as u64,
                tree(size).outboard_size(),
                "size {size}"
            );
            // 64 bytes per 64 KiB group after the first: about 0.1% of the data.
            assert_eq!(
                outboard.len() as u64,
                size.div_ceil(BLOCK_BYTES).saturating_sub(1) * 64,
                "size {size}"
            );
        }
    }
}
