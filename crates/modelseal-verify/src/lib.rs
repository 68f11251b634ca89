//! # modelseal-verify
//!
//! Verification that loaders embed: is this model, byte for byte, what a trusted signer
//! signed? The crate has no network, terminal or async dependencies.
//!
//! One call does the common case, [`verify_model`]; the steps it chains are public for
//! callers that need them apart: [`verify_envelope`] (signer and signature),
//! [`signed_manifest`] (statement and predicate), [`check_files`] (bytes on disk).
//! Each failure is a [`VerifyError`] variant carrying its evidence.
//!
//! ```no_run
//! use modelseal_core::{Bundle, VerifyingKey, hash::NoProgress, walk::WalkOptions};
//! use modelseal_verify::{TrustPolicy, VerifyError, verify_model};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = VerifyingKey::from_pem(&std::fs::read_to_string("key.pub")?)?;
//! let policy = TrustPolicy::from_keys(vec![key]);
//! let bundle = Bundle::read("model.sig".as_ref())?;
//! match verify_model("model".as_ref(), &bundle, &policy, &WalkOptions::default(), &NoProgress) {
//!     Ok(verified) => println!("verified blake3:{}", verified.root),
//!     Err(VerifyError::Files(mismatch)) => eprintln!("refused: {} modified", mismatch.modified.len()),
//!     Err(other) => eprintln!("refused: {other}"),
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod envelope;
mod error;
mod files;
mod policy;

use std::path::Path;

use modelseal_core::hash::Progress;
use modelseal_core::walk::WalkOptions;
use modelseal_core::{Blake3Digest, Bundle};

pub use envelope::{Signer, VerifiedStatement, verify_envelope};
pub use error::{FileMismatch, ModifiedFile, SubjectProblem, VerifyError};
pub use files::{SignedManifest, check_files, signed_manifest};
pub use policy::TrustPolicy;

/// A model that matched its signature.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedModel {
    /// Who signed it.
    pub signer: Signer,
    /// The signed subject name.
    pub name: Option<String>,
    /// The manifest root.
    pub root: Blake3Digest,
    /// Number of files checked.
    pub files: usize,
    /// Bytes hashed.
    pub bytes: u64,
}

/// Verifies the model at `root` against `bundle`: trusted signer, valid signature, native
/// manifest statement, and every file's bytes. `extra` adds ignored paths (and the
/// signature file, when it lies inside the model) to those the signer recorded.
pub fn verify_model(
    root: &Path,
    bundle: &Bundle,
    policy: &TrustPolicy,
    extra: &WalkOptions,
    progress: &dyn Progress,
) -> Result<VerifiedModel, VerifyError> {
    let verified = verify_envelope(bundle, policy)?;
    let signed = signed_manifest(&verified)?;
    check_files(root, &signed, extra, progress)?;
    Ok(VerifiedModel {
        signer: verified.signer,
        name: signed.name,
        root: signed.root,
        files: signed.manifest.entries().len(),
        bytes: signed.manifest.total_bytes(),
    })
}
