//! # modelseal-policy
//!
//! A policy file (`spec/policy.md`) read once: the signers trusted for each role and the
//! rules about artifacts (allow and deny by digest and by signed name). It makes the
//! [`Verifier`](modelseal_verify::Verifier) every door says yes through
//! ([`LineagePolicy::verifier`]) and gives the lineage walk its rules. TOML and globs, no
//! network, no async runtime.
//!
//! ```
//! use modelseal_core::{Bundle, hash::NoProgress};
//! use modelseal_policy::LineagePolicy;
//! use modelseal_verify::VerifyOptions;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // A policy trusting one publisher, and a model that publisher signed.
//! # let dir = tempfile::tempdir()?;
//! # let (model, signature) = (dir.path().join("model"), dir.path().join("model.sig"));
//! # let policy_file = dir.path().join("policy.toml");
//! # std::fs::create_dir(&model)?;
//! # std::fs::write(model.join("weights.bin"), [7u8; 4096])?;
//! # let signer = modelseal_core::SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519)?;
//! # std::fs::write(dir.path().join("release.pub"), signer.verifying_key().to_pem())?;
//! # std::fs::write(&policy_file, "[[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"release.pub\"\n")?;
//! # let options = modelseal_core::SignOptions::default();
//! # let signed = modelseal_core::sign_model(&model, &options, &signer, &NoProgress)?;
//! # std::fs::write(&signature, signed.bundle.to_json())?;
//! let policy = LineagePolicy::read(&policy_file)?;
//! let verifier = policy.verifier(VerifyOptions::default());
//! let verified = verifier.verify(&model, &Bundle::read(&signature)?, &NoProgress)?;
//! println!("{:?} passed the policy's publishers and rules", verified.name);
//! # // Another signer's signature of the same model is refused.
//! # let stranger = modelseal_core::SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519)?;
//! # let theirs = modelseal_core::sign_model(&model, &options, &stranger, &NoProgress)?;
//! # assert!(verifier.verify(&model, &theirs.bundle, &NoProgress).is_err());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod file;
mod rules;

pub use file::*;
pub use rules::{RuleFailure, check_artifact, check_lists, check_lists_with};
