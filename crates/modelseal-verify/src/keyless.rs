//! Sigstore keyless bundles, verified offline: the Fulcio certificate chain, its SCT,
//! the Rekor entry (bound to this bundle, with inclusion proof, signed checkpoint and
//! signed entry timestamp), RFC 3161 timestamps where present, the certificate's
//! validity at the verified signing time, and the signer's identity and issuer.
//!
//! The checks themselves are `sigstore-verify`'s (pinned; `spec/sigstore.md` says why,
//! and the tests under `tests/keyless.rs` prove each one on real bundles); this module
//! chooses the trust root and the identity rule, and maps the results.

use modelseal_core::Bundle;
use sigstore_verify::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};
use sigstore_verify::{VerificationPolicy, Verifier};

/// How the certificate's subject alternative name must match.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum IdentityRule {
    /// Exactly this string (an email address or URI).
    Exact(String),
    /// A regular expression that must match the whole identity (it is anchored).
    Regex(regex::Regex),
}

impl IdentityRule {
    /// An anchored regular expression: `^(?:pattern)$`.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(&format!("^(?:{pattern})$")).map(Self::Regex)
    }

    fn matches(&self, identity: &str) -> bool {
        match self {
            Self::Exact(expected) => identity == expected,
            Self::Regex(pattern) => pattern.is_match(identity),
        }
    }
}

impl std::fmt::Display for IdentityRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(value) => f.write_str(value),
            Self::Regex(pattern) => write!(f, "/{}/", pattern.as_str()),
        }
    }
}

/// Who may sign keylessly, and against which Sigstore instance.
#[derive(Debug, Clone)]
pub struct KeylessTrust {
    root: TrustedRoot,
    identity: IdentityRule,
    issuer: String,
}

/// Why a trusted root could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("not a usable Sigstore trusted root")]
pub struct TrustedRootError(#[source] sigstore_verify::trust_root::Error);

impl KeylessTrust {
    /// Trusts `identity` from OIDC `issuer` on the Sigstore public-good instance, whose
    /// TrustedRoot is built in (no network access, ever).
    pub fn public_good(identity: IdentityRule, issuer: &str) -> Self {
        let root = TrustedRoot::from_json(SIGSTORE_PRODUCTION_TRUSTED_ROOT)
            .expect("the built-in public-good trusted root parses");
        Self {
            root,
            identity,
            issuer: issuer.to_owned(),
        }
    }

    /// Trusts `identity` from `issuer` on the instance a TrustedRoot JSON describes.
    pub fn from_trusted_root(
        json: &str,
        identity: IdentityRule,
        issuer: &str,
    ) -> Result<Self, TrustedRootError> {
        let root = TrustedRoot::from_json(json).map_err(TrustedRootError)?;
        Ok(Self {
            root,
            identity,
            issuer: issuer.to_owned(),
        })
    }
}

/// Why a keyless bundle was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeylessError {
    /// A Sigstore check failed; the inner error says which.
    #[error(transparent)]
    Sigstore(#[from] sigstore_verify::Error),
    /// The identity is not the one the policy names.
    #[error("signer identity {found:?} does not match {expected}")]
    Identity {
        /// The rule.
        expected: String,
        /// The certificate's identity.
        found: String,
    },
    /// The statement has no sha256 subject to bind the signature to.
    #[error("keyless statements need a sha256 subject digest to bind the signature to")]
    NoSha256Subject,
}

impl KeylessError {
    /// A stable name for the failure, for JSON output.
    pub fn kind(&self) -> &'static str {
        use sigstore_verify::Error as E;
        match self {
            Self::Identity { .. } | Self::Sigstore(E::IdentityMismatch { .. }) => {
                "identity-mismatch"
            }
            Self::Sigstore(E::IssuerMismatch { .. }) => "issuer-mismatch",
            Self::Sigstore(E::SignatureInvalid(_)) => "bad-signature",
            Self::Sigstore(E::ArtifactMismatch(_)) | Self::NoSha256Subject => "subject-mismatch",
            Self::Sigstore(E::Certificate(_)) => "untrusted-certificate",
            Self::Sigstore(E::TransparencyLog(_)) => "transparency-log",
            Self::Sigstore(E::Timestamp(_)) => "timestamp",
            Self::Sigstore(_) => "malformed-bundle",
        }
    }
}

/// What a verified keyless signature proves about its signer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeylessSigner {
    /// The certificate's identity (SAN).
    pub identity: String,
    /// The OIDC issuer recorded in the certificate.
    pub issuer: String,
    /// The signing time the log (or a timestamp authority) vouches for, Unix seconds.
    pub signed_at: Option<i64>,
}

/// Runs every Sigstore check on a DSSE bundle whose statement names `digest` (SHA-256)
/// among its subjects.
pub fn verify_keyless(
    bundle: &Bundle,
    digest: [u8; 32],
    trust: &KeylessTrust,
) -> Result<KeylessSigner, KeylessError> {
    let json = String::from_utf8(bundle.to_json()).expect("bundle JSON is UTF-8");
    let parsed =
        sigstore_verify::types::Bundle::from_json(&json).map_err(sigstore_verify::Error::from)?;
    verify_parsed(
        &parsed,
        sigstore_verify::types::Sha256Hash::new(digest),
        trust,
    )
}

/// The same checks on any bundle sigstore understands (message signatures included),
/// for an artifact given as its SHA-256 digest.
pub fn verify_keyless_json(
    json: &str,
    digest: [u8; 32],
    trust: &KeylessTrust,
) -> Result<KeylessSigner, KeylessError> {
    let parsed =
        sigstore_verify::types::Bundle::from_json(json).map_err(sigstore_verify::Error::from)?;
    verify_parsed(
        &parsed,
        sigstore_verify::types::Sha256Hash::new(digest),
        trust,
    )
}

fn verify_parsed(
    bundle: &sigstore_verify::types::Bundle,
    digest: sigstore_verify::types::Sha256Hash,
    trust: &KeylessTrust,
) -> Result<KeylessSigner, KeylessError> {
    let verifier = Verifier::new(&trust.root)?;
    let policy = match &trust.identity {
        IdentityRule::Exact(identity) => {
            VerificationPolicy::new(identity.as_str(), trust.issuer.as_str())
        }
        // The regex is ours: sigstore checks the issuer, we check the identity after.
        IdentityRule::Regex(_) => {
            VerificationPolicy::any_identity().require_issuer(trust.issuer.as_str())
        }
    };
    let result = verifier.verify(digest, bundle, &policy)?;
    let identity = result
        .identity()
        .map(|san| san.as_str().to_owned())
        .unwrap_or_default();
    if !trust.identity.matches(&identity) {
        return Err(KeylessError::Identity {
            expected: trust.identity.to_string(),
            found: identity,
        });
    }
    Ok(KeylessSigner {
        identity,
        issuer: result.issuer().unwrap_or_default().to_owned(),
        signed_at: result.integrated_time().map(|t| t.as_second()),
    })
}

/// Checks a bundle signed by a known key (with its transparency-log entry, which
/// Sigstore clients require for keys too) over an artifact given as its SHA-256.
pub fn verify_key_json(
    json: &str,
    digest: [u8; 32],
    spki_der: &[u8],
    root_json: Option<&str>,
) -> Result<Option<i64>, KeylessError> {
    let parsed =
        sigstore_verify::types::Bundle::from_json(json).map_err(sigstore_verify::Error::from)?;
    let root = match root_json {
        Some(json) => TrustedRoot::from_json(json).map_err(sigstore_verify::Error::from)?,
        None => TrustedRoot::from_json(SIGSTORE_PRODUCTION_TRUSTED_ROOT)
            .expect("the built-in trusted root parses"),
    };
    let verifier = Verifier::new(&root)?;
    let policy = sigstore_verify::PublicKeyVerificationPolicy::new(
        sigstore_verify::types::DerPublicKey::new(spki_der.to_vec()),
    );
    let result = verifier.verify(
        sigstore_verify::types::Sha256Hash::new(digest),
        &parsed,
        &policy,
    )?;
    Ok(result.integrated_time().map(|t| t.as_second()))
}
