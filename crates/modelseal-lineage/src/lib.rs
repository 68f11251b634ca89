//! # modelseal-lineage
//!
//! Everything about training lineage that a loader does not need: the policy file
//! ([`policy`]), the attestation store ([`store`]), the transitive walk over base models
//! and datasets ([`verify_lineage`], [`verify_digest`]) with its report ([`report`]),
//! and verification summaries ([`vsa`]). Every attestation it relies on passes
//! `modelseal_verify::verify_attestation`, the one gate; nothing here re-checks a
//! signature its own way.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bom;
pub mod oci;
/// The policy file, now its own crate; re-exported for the lineage walk's callers.
pub use modelseal_policy as policy;
pub mod report;
pub mod stop;
pub mod store;
pub mod vsa;
mod walk;

pub use report::{Hop, HopFailure, HopKind, LineageReport, SignedBy, TrainingRun};
pub use stop::Stop;
pub use walk::{check_artifact, check_model, verify_digest, verify_digest_until, verify_lineage};
