//! Bundle to trusted statement: signer, signature, payload and statement type.
//! Every kind of statement modelseal verifies goes through here first.

use modelseal_core::bundle::Bundle;
use modelseal_core::dsse;
use modelseal_core::oms::OMS_LEGACY_PREDICATE_TYPE;
use modelseal_core::statement::{IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE, Statement};
use modelseal_core::{KeyAlgorithm, KeyFingerprint, VerifyingKey};

use crate::certs;
use crate::error::VerifyError;
use crate::policy::{CertificateTime, TrustPolicy};

/// Who signed a verified statement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Signer {
    /// The key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// The key's fingerprint.
    pub fingerprint: KeyFingerprint,
    /// The signing certificate's subject, for certificate-signed bundles.
    pub certificate_subject: Option<String>,
    /// For Sigstore keyless bundles: the verified identity (SAN), OIDC issuer, and the
    /// signing time the transparency log or a timestamp authority vouches for.
    pub keyless: Option<KeylessIdentity>,
    /// For key- and certificate-signed bundles: the signing time that RFC 3161
    /// timestamps from a trusted authority prove, Unix seconds.
    pub timestamped_at: Option<u64>,
}

/// The verified identity of a Sigstore keyless signer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeylessIdentity {
    /// The certificate's subject alternative name (an email address or URI).
    pub identity: String,
    /// The OIDC issuer the certificate records.
    pub issuer: String,
    /// Verified signing time, Unix seconds.
    pub signed_at: Option<i64>,
    /// The index of the verified transparency-log entry.
    pub log_index: Option<u64>,
}

/// A statement whose signature checked out against a trusted key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedStatement {
    /// The statement, its predicate untyped.
    pub statement: Statement,
    /// The exact signed payload bytes, for parsing the predicate with its type.
    pub payload: Vec<u8>,
    /// Its signer.
    pub signer: Signer,
}

/// Checks the bundle's one signature, by a trusted key or by a certificate chaining to a
/// trusted root, and returns the statement it covers. Nothing in the payload is trusted
/// before the signature is checked. Every kind of statement goes through here.
pub fn verify_envelope(
    bundle: &Bundle,
    policy: &TrustPolicy,
) -> Result<VerifiedStatement, VerifyError> {
    let material = &bundle.verification_material;
    let envelope = &bundle.dsse_envelope;
    let signature = match envelope.signatures.as_slice() {
        [] => return Err(VerifyError::NoSignatures),
        [one] => &one.sig,
        many => return Err(VerifyError::MultipleSignatures { count: many.len() }),
    };
    let signed = SignedBytes {
        standard: dsse::pae(&envelope.payload_type, &envelope.payload),
        legacy: is_legacy_oms(&envelope.payload).then(|| dsse::pae_legacy_oms(&envelope.payload)),
        signature,
    };
    let signer = match (
        &material.public_key,
        &material.certificate,
        &material.x509_certificate_chain,
    ) {
        (Some(key), None, None) => {
            if policy.keys().is_empty() {
                return Err(VerifyError::NoTrustedKeys);
            }
            let hint = key.hint.clone().unwrap_or_default();
            // The hint is unauthenticated: it picks nothing, every trusted key is tried.
            let key = policy
                .keys()
                .iter()
                .find(|key| signed.verified_by(key))
                .ok_or_else(|| refusal(policy, &hint))?;
            let mut signer = signer_of(key, None);
            signer.timestamped_at = signing_time(bundle, signature, policy)?;
            signer
        }
        (None, None, Some(chain)) => {
            if policy.certificate_roots().is_empty() {
                return Err(VerifyError::NoTrustedRoots);
            }
            let ders: Vec<Vec<u8>> = chain
                .certificates
                .iter()
                .map(|c| c.raw_bytes.clone())
                .collect();
            // The timestamps cover the signature bytes, so they are checked first; the
            // chain is then judged at the time they prove, else as the policy says.
            let timestamped_at = signing_time(bundle, signature, policy)?;
            let at = match (timestamped_at, policy.certificate_time()) {
                (Some(t), _) => certs::ValidityTime::At(t),
                (None, CertificateTime::Now) => certs::ValidityTime::At(policy.now()),
                (None, CertificateTime::LeafIssuance) => certs::ValidityTime::LeafIssuance,
            };
            let leaf = certs::verify_chain(&ders, policy.certificate_roots(), at)?;
            if !signed.verified_by(&leaf.key) {
                return Err(VerifyError::BadSignature {
                    tried: vec![leaf.key.fingerprint()],
                });
            }
            let mut signer = signer_of(&leaf.key, Some(leaf.subject));
            signer.timestamped_at = timestamped_at;
            signer
        }
        (None, Some(cert), None) => keyless_signer(bundle, &cert.raw_bytes, policy)?,
        (None, None, None) => return unsupported("missing"),
        _ => return unsupported("ambiguous (more than one kind)"),
    };
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
        payload: envelope.payload.clone(),
        signer,
    })
}

/// What a signature may cover: the standard DSSE PAE, or for model-signing 0.2 payloads
/// only, that release's malformed PAE.
struct SignedBytes<'a> {
    standard: Vec<u8>,
    legacy: Option<Vec<u8>>,
    signature: &'a [u8],
}

impl SignedBytes<'_> {
    fn verified_by(&self, key: &VerifyingKey) -> bool {
        key.verify(&self.standard, self.signature)
            || self.legacy.as_ref().is_some_and(|legacy| {
                key.verify_ecdsa_sha256(legacy, self.signature)
                    || key.verify(legacy, self.signature)
            })
    }
}

/// The legacy PAE is tried only for payloads that claim the legacy predicate type, so
/// no current statement can be accepted under the old encoding.
fn is_legacy_oms(payload: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "predicateType")]
        predicate_type: String,
    }
    serde_json::from_slice::<Probe>(payload)
        .is_ok_and(|p| p.predicate_type == OMS_LEGACY_PREDICATE_TYPE)
}

fn signer_of(key: &VerifyingKey, certificate_subject: Option<String>) -> Signer {
    Signer {
        algorithm: key.algorithm(),
        fingerprint: key.fingerprint(),
        certificate_subject,
        keyless: None,
        timestamped_at: None,
    }
}

/// The signing time trusted RFC 3161 timestamps prove, if the bundle has any and the
/// policy trusts an authority.
#[cfg(feature = "sigstore")]
fn signing_time(
    bundle: &Bundle,
    signature: &[u8],
    policy: &TrustPolicy,
) -> Result<Option<u64>, VerifyError> {
    crate::timestamps::signing_time(bundle, signature, policy.timestamp_authorities())
        .map_err(VerifyError::Timestamp)
}

/// Without the `sigstore` feature no timestamp can be checked, so none is believed.
#[cfg(not(feature = "sigstore"))]
fn signing_time(_: &Bundle, _: &[u8], _: &TrustPolicy) -> Result<Option<u64>, VerifyError> {
    Ok(None)
}

/// Sigstore keyless: every check is `keyless::verify_keyless`'s; the statement's sha256
/// subject binds the signature to the artifact, and the caller then checks the files.
#[cfg(feature = "sigstore")]
fn keyless_signer(
    bundle: &Bundle,
    leaf_der: &[u8],
    policy: &TrustPolicy,
) -> Result<Signer, VerifyError> {
    let trust = policy.keyless().ok_or(VerifyError::NoKeylessIdentity)?;
    let digest = sha256_subject(&bundle.dsse_envelope.payload).ok_or(VerifyError::Keyless(
        crate::keyless::KeylessError::NoSha256Subject,
    ))?;
    let verified =
        crate::keyless::verify_keyless(bundle, digest, trust).map_err(VerifyError::Keyless)?;
    let key = crate::certs::leaf_key(leaf_der)?;
    let mut signer = signer_of(&key, None);
    signer.keyless = Some(KeylessIdentity {
        identity: verified.identity,
        issuer: verified.issuer,
        signed_at: verified.signed_at,
        log_index: verified.log_index,
    });
    Ok(signer)
}

#[cfg(not(feature = "sigstore"))]
fn keyless_signer(_: &Bundle, _: &[u8], _: &TrustPolicy) -> Result<Signer, VerifyError> {
    Err(VerifyError::UnsupportedVerificationMaterial {
        found: "a single certificate (Sigstore keyless; build with the `sigstore` feature)",
    })
}

/// The first sha256 subject digest of an (as yet unverified) in-toto payload.
#[cfg(feature = "sigstore")]
fn sha256_subject(payload: &[u8]) -> Option<[u8; 32]> {
    let statement: Statement = serde_json::from_slice(payload).ok()?;
    statement.subject.iter().find_map(|s| {
        let bytes = hex::decode(s.digest.get("sha256")?).ok()?;
        bytes.try_into().ok()
    })
}

fn unsupported(found: &'static str) -> Result<VerifiedStatement, VerifyError> {
    Err(VerifyError::UnsupportedVerificationMaterial { found })
}

/// A bundle that names a key outside the policy is reported as an untrusted signer;
/// one that names a trusted key (or none) but fails is a bad signature.
fn refusal(policy: &TrustPolicy, hint: &str) -> VerifyError {
    let trusted = policy.fingerprints();
    let names_trusted_key = hint.is_empty() || policy.keys().iter().any(|k| k.matches_hint(hint));
    if names_trusted_key {
        VerifyError::BadSignature { tried: trusted }
    } else {
        VerifyError::UntrustedSigner {
            hint: hint.to_owned(),
            trusted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelseal_core::SigningKey;
    use modelseal_core::bundle::PublicKeyIdentifier;

    fn signed() -> (Bundle, SigningKey) {
        let key = SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519).unwrap();
        let statement: Statement = serde_json::from_value(serde_json::json!({
            "_type": STATEMENT_TYPE, "subject": [], "predicateType": "x", "predicate": {}
        }))
        .unwrap();
        (modelseal_core::sign_statement(&statement, &key), key)
    }

    #[test]
    fn accepts_the_signer_and_reports_it() {
        let (bundle, key) = signed();
        let policy = TrustPolicy::from_keys(vec![
            SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519)
                .unwrap()
                .verifying_key(),
            key.verifying_key(),
        ]);
        let verified = verify_envelope(&bundle, &policy).unwrap();
        assert_eq!(
            verified.signer.fingerprint,
            key.verifying_key().fingerprint()
        );
        assert_eq!(verified.statement.predicate_type, "x");
    }

    #[test]
    fn hint_is_not_trusted_to_pick_the_key() {
        // A hint naming nobody does not stop a trusted key from verifying.
        let (mut bundle, key) = signed();
        bundle.verification_material.public_key = Some(PublicKeyIdentifier {
            hint: Some("00".repeat(32)),
        });
        let policy = TrustPolicy::from_keys(vec![key.verifying_key()]);
        assert!(verify_envelope(&bundle, &policy).is_ok());
    }

    #[test]
    fn refuses_material_it_cannot_check() {
        let (bundle, key) = signed();
        let policy = TrustPolicy::from_keys(vec![key.verifying_key()]);
        let mut cert = bundle.clone();
        cert.verification_material.public_key = None;
        let der = modelseal_core::bundle::X509Certificate {
            raw_bytes: vec![0x30],
        };
        cert.verification_material.certificate = Some(der.clone());
        // A keyless bundle needs a keyless policy; without the feature it cannot be read.
        let err = verify_envelope(&cert, &policy).unwrap_err();
        if cfg!(feature = "sigstore") {
            assert!(matches!(err, VerifyError::NoKeylessIdentity), "{err}");
        } else {
            assert!(
                matches!(err, VerifyError::UnsupportedVerificationMaterial { .. }),
                "{err}"
            );
        }
        let mut chain = bundle.clone();
        chain.verification_material.public_key = None;
        chain.verification_material.x509_certificate_chain =
            Some(modelseal_core::bundle::X509CertificateChain {
                certificates: vec![der.clone()],
            });
        let err = verify_envelope(&chain, &policy).unwrap_err();
        assert!(matches!(err, VerifyError::NoTrustedRoots), "{err}");
        assert!(!err.is_refusal());
        let mut both = bundle.clone();
        both.verification_material.certificate = Some(der);
        assert!(matches!(
            verify_envelope(&both, &policy),
            Err(VerifyError::UnsupportedVerificationMaterial {
                found: "ambiguous (more than one kind)"
            })
        ));
        let mut none = bundle.clone();
        none.verification_material.public_key = None;
        assert!(matches!(
            verify_envelope(&none, &policy),
            Err(VerifyError::UnsupportedVerificationMaterial { found: "missing" })
        ));
        let empty = TrustPolicy::default();
        let err = verify_envelope(&bundle, &empty).unwrap_err();
        assert!(matches!(err, VerifyError::NoTrustedKeys));
        assert!(!err.is_refusal());
    }
}
