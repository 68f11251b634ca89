//! The attestation gate: the one door through which any attestation *about a named
//! artifact* is believed. The caller says which artifact it expects (an
//! [`ArtifactDigest`]), which predicate type, and whom it trusts; the gate checks the
//! envelope (signer, signature, payload and statement type), the predicate type, and
//! that exactly one subject is that artifact, and hands back the signer, the name the
//! signer gave the artifact, and the signed bytes for a strict typed parse.
//! Lineage hops, store lookups and the admission server all come through here.

use modelseal_core::bundle::Bundle;
use modelseal_core::statement::Statement;
use modelseal_core::{ArtifactDigest, DigestAlgorithm, ParseArtifactDigestError};
use serde::de::DeserializeOwned;

use crate::envelope::{Signer, VerifiedStatement, verify_envelope};
use crate::error::VerifyError;
use crate::policy::TrustPolicy;

/// An attestation that passed the gate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Attestation {
    /// Who signed it (a signer the caller trusts).
    pub signer: Signer,
    /// The artifact it is about: the one the caller expected.
    pub subject: ArtifactDigest,
    /// The name its signer gave that artifact, if any.
    pub subject_name: Option<String>,
    /// The predicate type (the one the caller expected).
    pub predicate_type: String,
    /// The OCI manifest a native manifest names beside the model's root (a directory
    /// pulled from a registry): a second digest the artifact is known by.
    pub oci_manifest: Option<ArtifactDigest>,
    payload: Vec<u8>,
}

impl Attestation {
    /// The predicate, parsed as `P` from the signed bytes themselves (not from a
    /// re-serialized value), so a duplicated key or, where `P` denies them, an unknown
    /// field is an error rather than silently resolved.
    pub fn predicate<P: DeserializeOwned>(&self) -> Result<P, GateError> {
        serde_json::from_slice::<Statement<P>>(&self.payload)
            .map(|s| s.predicate)
            .map_err(GateError::MalformedPredicate)
    }
}

/// Why an attestation did not pass the gate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The envelope failed: signer not trusted, bad signature, wrong payload type…
    #[error(transparent)]
    Envelope(#[from] VerifyError),
    /// A statement of another predicate type.
    #[error("predicate type is {found:?}; expected {expected:?}")]
    PredicateType {
        /// The type found.
        found: String,
        /// The type required.
        expected: String,
    },
    /// A statement with no subject: it is about nothing, so it vouches for nothing.
    #[error("signed statement lists nothing: it has no subjects")]
    ListsNothing,
    /// A subject digest of a known algorithm that is not in canonical form.
    #[error("a subject's {algorithm} digest is malformed")]
    MalformedSubject {
        /// The algorithm.
        algorithm: &'static str,
        /// Why.
        #[source]
        source: ParseArtifactDigestError,
    },
    /// A subject names a BLAKE3 root and a sha256 that is not its keyless binding.
    #[error(
        "a subject names a blake3 root and a sha256 that is not derived from it: one subject, two artifacts"
    )]
    ConfusedDigest,
    /// No subject is the artifact expected.
    #[error("the statement is about another artifact, not {expected}")]
    OtherArtifact {
        /// The artifact the caller expected.
        expected: ArtifactDigest,
    },
    /// More than one subject is the artifact expected (under one or more names).
    #[error("the statement names {expected} in {count} subjects")]
    AmbiguousSubject {
        /// The artifact.
        expected: ArtifactDigest,
        /// How many subjects name it.
        count: usize,
    },
    /// The predicate does not parse as its type requires.
    #[error("signed predicate is malformed")]
    MalformedPredicate(#[source] serde_json::Error),
}

impl GateError {
    /// A stable kebab-case name for the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Envelope(e) => e.kind(),
            Self::PredicateType { .. } => "wrong-predicate-type",
            Self::ListsNothing => "lists-nothing",
            Self::MalformedSubject { .. } => "malformed-digest",
            Self::ConfusedDigest => "confused-digest",
            Self::OtherArtifact { .. } | Self::AmbiguousSubject { .. } => "subject-mismatch",
            Self::MalformedPredicate(_) => "malformed-predicate",
        }
    }
}

/// Verifies `bundle` as a `predicate_type` attestation about `expected`, signed by a
/// signer `trust` accepts. Every check is done before anything in the payload is used.
pub fn verify_attestation(
    bundle: &Bundle,
    trust: &TrustPolicy,
    expected: &ArtifactDigest,
    predicate_type: &str,
) -> Result<Attestation, GateError> {
    attestation_of(verify_envelope(bundle, trust)?, expected, predicate_type)
}

/// The gate's checks after the envelope: for callers that verified the envelope already
/// (`verify_model`, `ModelReader::open`), so the signature is checked once.
pub fn attestation_of(
    verified: VerifiedStatement,
    expected: &ArtifactDigest,
    predicate_type: &str,
) -> Result<Attestation, GateError> {
    let statement = &verified.statement;
    if statement.predicate_type != predicate_type {
        return Err(GateError::PredicateType {
            found: statement.predicate_type.clone(),
            expected: predicate_type.to_owned(),
        });
    }
    if statement.subject.is_empty() {
        return Err(GateError::ListsNothing);
    }
    // A native manifest names its model by BLAKE3 root only: a sha256 in it is a keyless
    // binding or the OCI manifest the files were unpacked from (`spec/oci.md` §3), never
    // the artifact itself, so a manifest digest cannot stand in for the model (its
    // provenance and deny rules are filed under the root).
    let native = predicate_type == modelseal_core::statement::MANIFEST_PREDICATE_TYPE;
    let mut matching = Vec::new();
    for subject in &statement.subject {
        let mut is_expected = false;
        let bound = keyless_bound(subject)? || native;
        for (name, hex) in &subject.digest {
            // Digests of algorithms modelseal does not use cannot name the artifact.
            let Some(algorithm) = DigestAlgorithm::from_name(name) else {
                continue;
            };
            // Beside a BLAKE3 root a sha256 is its keyless binding, and in a native manifest
            // it is never the artifact: neither names what is expected.
            if bound && algorithm == DigestAlgorithm::Sha256 {
                continue;
            }
            let digest = ArtifactDigest::from_entry(algorithm.name(), hex).map_err(|source| {
                GateError::MalformedSubject {
                    algorithm: algorithm.name(),
                    source,
                }
            })?;
            is_expected |= digest == *expected;
        }
        if is_expected {
            matching.push(subject);
        }
    }
    let subject = match matching.as_slice() {
        [] => {
            return Err(GateError::OtherArtifact {
                expected: *expected,
            });
        }
        [one] => *one,
        many => {
            return Err(GateError::AmbiguousSubject {
                expected: *expected,
                count: many.len(),
            });
        }
    };
    let oci_manifest = if native {
        crate::files::model_subjects(&statement.subject)
            .ok()
            .and_then(|(_, oci)| oci)
    } else {
        None
    };
    Ok(Attestation {
        oci_manifest,
        subject_name: subject.name.clone(),
        signer: verified.signer,
        subject: *expected,
        predicate_type: predicate_type.to_owned(),
        payload: verified.payload,
    })
}

/// Whether `subject` names a BLAKE3 root beside a sha256; if so, that sha256 must be the
/// root's keyless binding (`spec/sigstore.md` §4), or the statement is refused: a
/// subject may not claim two unrelated artifacts.
fn keyless_bound(
    subject: &modelseal_core::statement::ResourceDescriptor,
) -> Result<bool, GateError> {
    let (Some(root), Some(sha)) = (subject.digest.get("blake3"), subject.digest.get("sha256"))
    else {
        return Ok(false);
    };
    let malformed = |algorithm| move |source| GateError::MalformedSubject { algorithm, source };
    let root = ArtifactDigest::from_entry("blake3", root).map_err(malformed("blake3"))?;
    let sha = ArtifactDigest::from_entry("sha256", sha).map_err(malformed("sha256"))?;
    let binding = modelseal_core::statement::keyless_binding(
        &modelseal_core::Blake3Digest::from_bytes(*root.as_bytes()),
    );
    if *sha.as_bytes() != binding {
        return Err(GateError::ConfusedDigest);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelseal_core::statement::STATEMENT_TYPE;
    use modelseal_core::{KeyAlgorithm, SigningKey, sign_statement};
    use serde_json::json;

    fn bundle(subjects: serde_json::Value, key: &SigningKey) -> Bundle {
        let statement: Statement = serde_json::from_value(json!({
            "_type": STATEMENT_TYPE, "subject": subjects, "predicateType": "t",
            "predicate": {"a": 1}
        }))
        .unwrap();
        sign_statement(&statement, key)
    }

    #[test]
    fn only_the_expected_artifact_by_a_trusted_signer_passes() {
        let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let trust = TrustPolicy::from_keys(vec![key.verifying_key()]);
        let hex = "ab".repeat(32);
        let expected: ArtifactDigest = format!("blake3:{hex}").parse().unwrap();
        let good = bundle(json!([{"name": "m", "digest": {"blake3": hex}}]), &key);
        let ok = verify_attestation(&good, &trust, &expected, "t").unwrap();
        assert_eq!(ok.subject_name.as_deref(), Some("m"));
        assert_eq!(ok.predicate::<serde_json::Value>().unwrap()["a"], 1);
        let cases = [
            (json!([]), "lists-nothing"),
            (
                json!([{"digest": {"blake3": "cd".repeat(32)}}]),
                "subject-mismatch",
            ),
            (
                json!([{"digest": {"sha256": hex}}]),
                "subject-mismatch", // same bytes, another algorithm
            ),
            (
                json!([{"digest": {"blake3": hex.to_ascii_uppercase()}}]),
                "malformed-digest",
            ),
            (
                json!([{"name": "a", "digest": {"blake3": hex}}, {"name": "b", "digest": {"blake3": hex}}]),
                "subject-mismatch",
            ),
        ];
        for (subjects, kind) in cases {
            let err = verify_attestation(&bundle(subjects.clone(), &key), &trust, &expected, "t")
                .unwrap_err();
            assert_eq!(err.kind(), kind, "{subjects}: {err}");
        }
        // A keyless binding beside the root passes; any other sha256 there does not, and
        // the binding never stands for an artifact of its own.
        let root = modelseal_core::Blake3Digest::from_bytes(*expected.as_bytes());
        let binding = hex::encode(modelseal_core::statement::keyless_binding(&root));
        let bound = bundle(
            json!([{"digest": {"blake3": hex, "sha256": binding}}]),
            &key,
        );
        verify_attestation(&bound, &trust, &expected, "t").unwrap();
        let as_sha: ArtifactDigest = format!("sha256:{binding}").parse().unwrap();
        let err = verify_attestation(&bound, &trust, &as_sha, "t").unwrap_err();
        assert_eq!(err.kind(), "subject-mismatch", "{err}");
        let other_sha = "ef".repeat(32);
        let confused = bundle(
            json!([{"digest": {"blake3": hex, "sha256": other_sha}}]),
            &key,
        );
        for wanted in [expected, format!("sha256:{other_sha}").parse().unwrap()] {
            let err = verify_attestation(&confused, &trust, &wanted, "t").unwrap_err();
            assert_eq!(err.kind(), "confused-digest", "{err}");
        }
        // A native manifest statement with the OCI manifest as a second subject is found by
        // its root, never by the manifest digest.
        let manifest_type = modelseal_core::statement::MANIFEST_PREDICATE_TYPE;
        let oci_sha = "12".repeat(32);
        let statement: Statement = serde_json::from_value(json!({
            "_type": STATEMENT_TYPE, "predicateType": manifest_type, "predicate": {},
            "subject": [{"digest": {"blake3": hex}}, {"digest": {"sha256": oci_sha}}]
        }))
        .unwrap();
        let oci = sign_statement(&statement, &key);
        verify_attestation(&oci, &trust, &expected, manifest_type).unwrap();
        let by_manifest: ArtifactDigest = format!("sha256:{oci_sha}").parse().unwrap();
        let err = verify_attestation(&oci, &trust, &by_manifest, manifest_type).unwrap_err();
        assert_eq!(err.kind(), "subject-mismatch", "{err}");
        let err = verify_attestation(&good, &trust, &expected, "other").unwrap_err();
        assert_eq!(err.kind(), "wrong-predicate-type");
        let stranger = TrustPolicy::from_keys(vec![
            SigningKey::generate(KeyAlgorithm::Ed25519)
                .unwrap()
                .verifying_key(),
        ]);
        let err = verify_attestation(&good, &stranger, &expected, "t").unwrap_err();
        assert_eq!(err.kind(), "untrusted-signer");
    }
}
