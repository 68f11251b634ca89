//! The binary Merkle tree over a manifest (`spec/manifest.md` §4).
//!
//! Leaves and nodes are hashed in BLAKE3's key-derivation mode under two distinct
//! context strings. That separates leaves from nodes, and separates both from plain
//! BLAKE3 file hashes, so a root can never be mistaken for the `b3sum` of some file.

use crate::digest::Blake3Digest;
use crate::path::ManifestPath;

/// BLAKE3 `derive_key` context for leaves.
pub const LEAF_CONTEXT: &str = "modelseal.dev 2026-11 manifest leaf v1";
/// BLAKE3 `derive_key` context for inner nodes.
pub const NODE_CONTEXT: &str = "modelseal.dev 2026-11 manifest node v1";

/// Hashes one manifest entry into a leaf:
/// `u64le(len(path)) || path || u64le(size) || file_blake3`.
pub fn leaf_hash(path: &ManifestPath, size: u64, file: &Blake3Digest) -> Blake3Digest {
    let mut hasher = blake3::Hasher::new_derive_key(LEAF_CONTEXT);
    hasher.update(&(path.as_bytes().len() as u64).to_le_bytes());
    hasher.update(path.as_bytes());
    hasher.update(&size.to_le_bytes());
    hasher.update(file.as_bytes());
    hasher.finalize().into()
}

/// Hashes two children into their parent: `left || right`.
pub fn node_hash(left: &Blake3Digest, right: &Blake3Digest) -> Blake3Digest {
    let mut hasher = blake3::Hasher::new_derive_key(NODE_CONTEXT);
    hasher.update(left.as_bytes());
    hasher.update(right.as_bytes());
    hasher.finalize().into()
}

/// The root over `leaves`, split as in RFC 6962 §2.1: the left subtree holds the largest
/// power of two strictly less than the number of leaves. `None` for no leaves.
pub fn root(leaves: &[Blake3Digest]) -> Option<Blake3Digest> {
    match leaves {
        [] => None,
        [only] => Some(*only),
        _ => {
            let split = largest_power_of_two_below(leaves.len());
            let (left, right) = leaves.split_at(split);
            // Both halves are non-empty, so both roots exist.
            Some(node_hash(&root(left)?, &root(right)?))
        }
    }
}

fn largest_power_of_two_below(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(byte: u8) -> Blake3Digest {
        Blake3Digest::from_bytes([byte; 32])
    }

    #[test]
    fn split_points() {
        assert_eq!(largest_power_of_two_below(2), 1);
        assert_eq!(largest_power_of_two_below(3), 2);
        assert_eq!(largest_power_of_two_below(4), 2);
        assert_eq!(largest_power_of_two_below(5), 4);
        assert_eq!(largest_power_of_two_below(8), 4);
        assert_eq!(largest_power_of_two_below(9), 8);
    }

    #[test]
    fn shape_follows_rfc6962() {
        let [a, b, c] = [d(1), d(2), d(3)];
        assert_eq!(root(&[]), None);
        assert_eq!(root(&[a]), Some(a));
        assert_eq!(root(&[a, b]), Some(node_hash(&a, &b)));
        // Three leaves: ((a, b), c), not (a, (b, c)).
        assert_eq!(root(&[a, b, c]), Some(node_hash(&node_hash(&a, &b), &c)));
    }

    #[test]
    fn leaf_and_node_are_domain_separated() {
        let p = ManifestPath::parse("a").unwrap();
        let file = d(7);
        let leaf = leaf_hash(&p, 1, &file);
        // The same bytes hashed plainly must differ from a leaf.
        let mut plain = Vec::new();
        plain.extend_from_slice(&1u64.to_le_bytes());
        plain.extend_from_slice(b"a");
        plain.extend_from_slice(&1u64.to_le_bytes());
        plain.extend_from_slice(file.as_bytes());
        assert_ne!(leaf, Blake3Digest::from(blake3::hash(&plain)));
        assert_ne!(
            node_hash(&d(1), &d(2)),
            Blake3Digest::from(blake3::hash(&[[1u8; 32], [2u8; 32]].concat()))
        );
        // Order matters.
        assert_ne!(node_hash(&d(1), &d(2)), node_hash(&d(2), &d(1)));
    }
}
