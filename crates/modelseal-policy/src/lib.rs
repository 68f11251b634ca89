//! # modelseal-policy
//!
//! A policy file (`spec/policy.md`) read once: the signers trusted for each role and the
//! rules about artifacts (allow and deny by digest and by signed name). It makes the
//! [`Verifier`](modelseal_verify::Verifier) every door says yes through
//! ([`LineagePolicy::verifier`]) and gives the lineage walk its rules. TOML and globs, no
//! network, no async runtime.
//!
//! ```no_run
//! use modelseal_core::{Bundle, hash::NoProgress};
//! use modelseal_policy::LineagePolicy;
//! use modelseal_verify::VerifyOptions;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = LineagePolicy::read("policy.toml".as_ref())?;
//! let verifier = policy.verifier(VerifyOptions::default());
//! let verified = verifier.verify("model".as_ref(), &Bundle::read("model.sig".as_ref())?, &NoProgress)?;
//! println!("{:?} passed the policy's publishers and rules", verified.name);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod file;
mod rules;

pub use file::*;
pub use rules::{RuleFailure, check_artifact, check_lists, check_lists_with};
