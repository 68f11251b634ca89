//! Bundle to trusted statement: signer, signature, payload and statement type.
//! Every kind of statement modelseal verifies goes through here first.

use modelseal_core::bundle::Bundle;
use modelseal_core::dsse;
use modelseal_core::statement::{IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE, Statement};
use modelseal_core::{KeyAlgorithm, KeyFingerprint, VerifyingKey};

use crate::error::VerifyError;
use crate::policy::TrustPolicy;

/// Who signed a verified statement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Signer {
    /// The key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// The key's fingerprint.
    pub fingerprint: KeyFingerprint,
}

/// A statement whose signature checked out against a trusted key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedStatement {
    /// The statement.
    pub statement: Statement,
    /// Its signer.
    pub signer: Signer,
}

/// Checks the bundle's one signature against the policy's keys and returns the statement
/// it covers. Nothing in the payload is trusted before the signature is checked.
pub fn verify_envelope(
    bundle: &Bundle,
    policy: &TrustPolicy,
) -> Result<VerifiedStatement, VerifyError> {
    if policy.keys().is_empty() {
        return Err(VerifyError::NoTrustedKeys);
    }
    let material = &bundle.verification_material;
    let hint = match (
        &material.public_key,
        &material.certificate,
        &material.x509_certificate_chain,
    ) {
        (Some(key), None, None) => key.hint.clone().unwrap_or_default(),
        (None, Some(_), None) => return unsupported("a certificate"),
        (None, None, Some(_)) => return unsupported("an x509CertificateChain"),
        (None, None, None) => return unsupported("missing"),
        _ => return unsupported("ambiguous (more than one kind)"),
    };
    let envelope = &bundle.dsse_envelope;
    let signature = match envelope.signatures.as_slice() {
        [] => return Err(VerifyError::NoSignatures),
        [one] => one,
        many => return Err(VerifyError::MultipleSignatures { count: many.len() }),
    };
    let signed_bytes = dsse::pae(&envelope.payload_type, &envelope.payload);
    // The hint is unauthenticated: it picks nothing, every trusted key is tried.
    let key = policy
        .keys()
        .iter()
        .find(|key| key.verify(&signed_bytes, &signature.sig))
        .ok_or_else(|| refusal(policy, &hint))?;
    // The payload type is covered by the signature, so it is checked after it.
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType {
            found: envelope.payload_type.clone(),
        });
    }
    let statement: Statement =
        serde_json::from_slice(&envelope.payload).map_err(VerifyError::MalformedStatement)?;
    if statement.statement_type != STATEMENT_TYPE {
        return Err(VerifyError::StatementType {
            found: statement.statement_type,
        });
    }
    Ok(VerifiedStatement {
        statement,
        signer: signer_of(key),
    })
}

fn signer_of(key: &VerifyingKey) -> Signer {
    Signer {
        algorithm: key.algorithm(),
        fingerprint: key.fingerprint(),
    }
}

fn unsupported(found: &'static str) -> Result<VerifiedStatement, VerifyError> {
    Err(VerifyError::UnsupportedVerificationMaterial { found })
}

/// A bundle that names a key outside the policy is reported as an untrusted signer;
/// one that names a trusted key (or none) but fails is a bad signature.
fn refusal(policy: &TrustPolicy, hint: &str) -> VerifyError {
    let trusted = policy.fingerprints();
    let names_trusted_key = hint.is_empty() || trusted.iter().any(|f| f.as_str() == hint);
    if names_trusted_key {
        VerifyError::BadSignature { tried: trusted }
    } else {
        VerifyError::UntrustedSigner {
            hint: hint.to_owned(),
            trusted,
        }
    }
}
