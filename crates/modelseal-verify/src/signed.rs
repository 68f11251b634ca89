//! A signature read once: signer and signature checked, the statement matched with what
//! the caller expects, and its predicate parsed into one typed value whichever format it
//! came in. Every path that compares files (a directory, a reader, bytes in memory, an
//! OCI artifact's layers) starts from this value, so the format dispatch and the checks
//! before it are written once.

use modelseal_core::oms::{OMS_LEGACY_PREDICATE_TYPE, OMS_PREDICATE_TYPE};
use modelseal_core::{ArtifactDigest, Bundle};

use crate::envelope::{Signer, verify_envelope};
use crate::oms::SignedOms;
use crate::{SignedManifest, TrustPolicy, VerifyError, VerifyOptions};

/// What a trusted signer signed about a model, in the format it was signed in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SignedModel {
    /// modelseal's BLAKE3 Merkle manifest.
    Native {
        /// Who signed it.
        signer: Signer,
        /// The manifest, its name, root and (from a registry) OCI manifest.
        manifest: SignedManifest,
    },
    /// An OpenSSF Model Signing statement (v1.0 or the 0.2 legacy format).
    Oms {
        /// Who signed it.
        signer: Signer,
        /// The statement's resources and serialization.
        statement: SignedOms,
    },
}

/// Reads `bundle` against `trust` and `options`: a trusted signer and a valid signature,
/// the subject the caller expects (`options.expected`), a predicate of a format modelseal
/// reads, and the kind the caller needs (`options.kind`). No file is looked at.
pub fn read_signature(
    bundle: &Bundle,
    trust: &TrustPolicy,
    options: &VerifyOptions,
) -> Result<SignedModel, VerifyError> {
    let verified = verify_envelope(bundle, trust)?;
    crate::check_expected(&verified, options)?;
    let predicate_type = verified.statement.predicate_type.as_str();
    if predicate_type == OMS_PREDICATE_TYPE || predicate_type == OMS_LEGACY_PREDICATE_TYPE {
        let statement = crate::oms::signed_oms(&verified)?;
        crate::check_oms_kind(options)?;
        return Ok(SignedModel::Oms {
            signer: verified.signer,
            statement,
        });
    }
    let manifest = crate::signed_manifest(&verified)?;
    crate::check_kind(options.kind, manifest.predicate.kind)?;
    Ok(SignedModel::Native {
        signer: verified.signer,
        manifest,
    })
}

impl SignedModel {
    /// Who signed it.
    pub fn signer(&self) -> &Signer {
        match self {
            Self::Native { signer, .. } | Self::Oms { signer, .. } => signer,
        }
    }

    /// The name its signer gave it.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Native { manifest, .. } => manifest.name.as_deref(),
            Self::Oms { statement, .. } => statement.name.as_deref(),
        }
    }

    /// Every digest it is known by: its signed root and, for a native signature made
    /// from a registry, the OCI manifest it names. Rules by digest apply to each.
    pub fn digests(&self) -> Vec<ArtifactDigest> {
        match self {
            Self::Native { manifest, .. } => {
                std::iter::once(ArtifactDigest::blake3(&manifest.root))
                    .chain(manifest.oci_manifest)
                    .collect()
            }
            Self::Oms { statement, .. } => vec![statement.root],
        }
    }

    /// Whether the signature lists a file named `name` (a `/`-separated path in the
    /// model).
    pub fn lists(&self, name: &str) -> bool {
        match self {
            Self::Native { manifest, .. } => manifest.manifest.get(name).is_some(),
            Self::Oms { statement, .. } => statement
                .resources
                .iter()
                .any(|r| r.name.path.as_ref().is_some_and(|p| p.as_str() == name)),
        }
    }

    /// Whether the signature lists exactly one file, `name`, as a signature of that
    /// file alone does (an OMS signature of a single file names its resources `.`).
    pub fn lists_only(&self, name: &str) -> bool {
        match self {
            Self::Native { manifest, .. } => {
                matches!(manifest.manifest.entries(), [only] if only.path.as_str() == name)
            }
            Self::Oms { statement, .. } => {
                statement.resources.iter().all(|r| r.name.path.is_none())
            }
        }
    }
}
