//! # modelseal-core
//!
//! The formats and cryptography of modelseal, with no I/O beyond reading model files and
//! writing outputs atomically: no terminal, network or async runtime.
//!
//! Data flows through the modules in this order when a model is signed:
//! [`walk`] lists the files, [`hash`] computes each file's BLAKE3, [`manifest`] orders
//! them and [`merkle`] reduces them to a root, [`statement`] wraps the manifest in an
//! in-toto Statement v1, [`dsse`] signs it, and [`bundle`] stores the envelope as Sigstore
//! bundle JSON. [`sign_model`] does all of it in one call.
//!
//! ```no_run
//! use modelseal_core::{SignOptions, SigningKey, hash::NoProgress, sign_model};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = SigningKey::from_pem(&std::fs::read_to_string("key.pem")?, None)?;
//! let signed = sign_model("my-model".as_ref(), &SignOptions::default(), &key, &NoProgress)?;
//! println!("root blake3:{}", signed.root);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

// Files are opened race-free with O_NOFOLLOW and then checked by device and inode
// (`open.rs`), and read with positioned reads: Unix (Linux, macOS, the BSDs) has both.
#[cfg(not(unix))]
compile_error!(
    "modelseal supports Unix targets only (Linux, macOS): opening model files race-free needs \
     O_NOFOLLOW and device/inode identity, which this target lacks. Windows is not supported yet."
);

pub mod bundle;
mod digest;
pub mod digest_list;
pub mod dsse;
pub mod fsio;
pub mod hash;
pub mod json;
pub mod keys;
pub mod manifest;
pub mod merkle;
mod model;
pub mod oms;
pub mod open;
pub mod outboard;
mod path;
pub mod provenance;
pub mod stamps;
pub mod statement;
pub mod walk;

pub use bundle::{Bundle, BundleError};
pub use digest::{
    ArtifactDigest, Blake3Digest, DigestAlgorithm, ParseArtifactDigestError, ParseDigestError,
};
pub use keys::{
    KeyAlgorithm, KeyError, KeyFingerprint, KeySigner, SigningKey, VerifyingKey, certificate_chain,
    certificate_chain_from_der, certificates_from_pem, sign_checked,
};
pub use manifest::{Manifest, ManifestEntry, ManifestError};
pub use model::{
    ModelError, OmsSignOptions, Restamped, SignOptions, SignedModel, SignedOmsModel, StatedModel,
    StatedOmsModel, check_oms_key, hash_model, manifest_of_files, oms_serialization,
    relative_inside, sign_model, sign_model_oms, sign_stated_oms, sign_statement,
    sign_statement_by, sign_statement_keyed, sign_statement_with, state_model, state_model_oms,
    state_model_oms_since, state_model_since, state_oms_from_digests,
};
pub use path::{MAX_PATH_BYTES, ManifestPath, PathError};
pub use statement::{ArtifactKind, ManifestPredicate, Statement};
pub use walk::{SymlinkPolicy, WalkError, WalkOptions};
