//! From an OCI manifest digest to the model it holds (`spec/oci.md` §8): the admission
//! server knows a Pod's image by its manifest digest; lineage knows models by their BLAKE3
//! root. The link is a `model-publisher` signature whose statement names both.

use modelseal_core::{ArtifactDigest, Blake3Digest};
use modelseal_oci::OciDigest;
use modelseal_verify::{SignedModel, VerifyOptions};

use crate::policy::LineagePolicy;
use crate::stop::Stop;
use crate::store::AttestationStore;

/// Why no model could be tied to a manifest digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The store could not be read (fail closed).
    #[error("the attestation store failed: {0}")]
    Store(String),
    /// No bundle under the digest passed.
    #[error("no model-publisher signature in the store names OCI manifest {digest}{}", reasons(.refused))]
    Unsigned {
        /// The manifest digest.
        digest: String,
        /// Why each bundle found did not count.
        refused: Vec<String>,
    },
    /// The policy denies the manifest itself (`[models] deny = ["sha256:…"]`).
    #[error("OCI manifest {digest} is refused by policy: {failure}")]
    Denied {
        /// The manifest digest.
        digest: String,
        /// The rule that matched.
        failure: crate::HopFailure,
    },
    /// Trusted signatures under the digest name this manifest with different model roots:
    /// which one the image holds is not decided by store order.
    #[error("trusted signatures name OCI manifest {digest} with different model roots ({roots})")]
    Ambiguous {
        /// The manifest digest.
        digest: String,
        /// The roots named, comma-separated.
        roots: String,
    },
    /// Trusted bindings name the manifest, from fewer signers than the policy's
    /// model-publisher threshold: the image is bound by what enough signers said of it,
    /// never by one signer's word plus others' signatures of the files alone.
    #[error("OCI manifest {digest} is bound to its model by too few signers: {detail}")]
    SignersMissing {
        /// The manifest digest.
        digest: String,
        /// The count: threshold, who counted, who is missing.
        detail: String,
    },
    /// The lookup was cut short (limits or time): a missing binding could be unread.
    #[error("the store lookup for OCI manifest {digest} was incomplete: {reason}")]
    Incomplete {
        /// The manifest digest.
        digest: String,
        /// Why.
        reason: String,
    },
}

fn reasons(refused: &[String]) -> String {
    if refused.is_empty() {
        String::new()
    } else {
        format!(" ({})", refused.join("; "))
    }
}

/// The model an OCI manifest holds, as the store's trusted signatures bind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestBinding {
    /// The model's BLAKE3 root.
    pub root: Blake3Digest,
    /// Store files under the manifest digest that were unusable in themselves (planted
    /// or broken): a yes reached beside them is not one to remember.
    pub unusable_files: usize,
}

/// The BLAKE3 root of the model a trusted `model-publisher` signed as unpacked from the
/// OCI manifest `manifest`: the root every bundle in the store under `sha256:MANIFEST`
/// agrees on whose signer the policy trusts in that role, whose native statement is a
/// model's and names this manifest as its OCI subject, and whose manifest checks out.
/// The policy's `[models]` rules apply to the manifest digest first; a lookup cut short,
/// or trusted bundles naming different roots, decide nothing. Nothing else about the
/// bundle is believed; the lineage walk then starts from the root it returns.
pub fn model_of_manifest(
    manifest: OciDigest,
    policy: &LineagePolicy,
    store: &AttestationStore,
    stop: &Stop,
) -> Result<ManifestBinding, BindingError> {
    let digest = ArtifactDigest::from(manifest);
    crate::check_model(policy, None, &[digest]).map_err(|failure| BindingError::Denied {
        digest: digest.to_string(),
        failure,
    })?;
    let lookup = store
        .bundles_for_until(&digest, stop)
        .map_err(|e| BindingError::Store(modelseal_verify::error_chain(&e)))?;
    // Read as every signature is read, but not judged here: a rule that refused one of
    // two disagreeing signatures must not decide which root the image holds (the walk
    // applies the rules to the root found).
    let verifier = policy.verifier(VerifyOptions::default());
    let mut refused = Vec::new();
    let mut roots: Vec<Blake3Digest> = Vec::new();
    let mut signers = Vec::new();
    for stored in &lookup.bundles {
        match verifier.read_signature(&stored.bundle) {
            Ok(SignedModel::Native { manifest, signer })
                if manifest.oci_manifest == Some(digest) =>
            {
                if !roots.contains(&manifest.root) {
                    roots.push(manifest.root);
                }
                signers.push(signer);
            }
            Ok(_) => refused.push(format!("{}: names another manifest or none", stored.sha256)),
            Err(e) => refused.push(format!("{}: {}", stored.sha256, e.kind())),
        }
    }
    if let Some(reason) = lookup.incomplete {
        return Err(BindingError::Incomplete {
            digest: digest.to_string(),
            reason,
        });
    }
    match roots.as_slice() {
        [_] => {
            // The binding itself must meet the threshold: those signers named this image.
            let count = policy.count_signers(
                crate::policy::Role::ModelPublisher,
                &modelseal_verify::distinct_signers(&signers),
            );
            if !count.met() {
                return Err(BindingError::SignersMissing {
                    digest: digest.to_string(),
                    detail: count.describe(),
                });
            }
            Ok(ManifestBinding {
                root: roots[0],
                unusable_files: lookup.skipped.iter().filter(|s| s.unusable).count(),
            })
        }
        [] => Err(BindingError::Unsigned {
            digest: digest.to_string(),
            refused,
        }),
        many => Err(BindingError::Ambiguous {
            digest: digest.to_string(),
            roots: many
                .iter()
                .map(|r| format!("blake3:{r}"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
