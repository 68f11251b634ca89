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
    Regex {
        /// The pattern as written.
        pattern: String,
        /// `^(?:pattern)$`, compiled.
        anchored: regex::Regex,
    },
}

impl IdentityRule {
    /// An anchored regular expression: `^(?:pattern)$`. The pattern must compile on its
    /// own first, so that one like `a)|(.*` cannot close the group and escape the
    /// anchors.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(pattern)?;
        Ok(Self::Regex {
            pattern: pattern.to_owned(),
            anchored: regex::Regex::new(&format!("^(?:{pattern})$"))?,
        })
    }

    /// Whether `identity` satisfies the rule.
    pub fn matches(&self, identity: &str) -> bool {
        match self {
            Self::Exact(expected) => identity == expected,
            Self::Regex { anchored, .. } => anchored.is_match(identity),
        }
    }
}

impl std::fmt::Display for IdentityRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(value) => f.write_str(value),
            Self::Regex { pattern, .. } => write!(f, "/{pattern}/"),
        }
    }
}

/// Who may sign keylessly, and against which Sigstore instance: one trusted root, and
/// any number of (identity, issuer) signers, any one of which is accepted.
#[derive(Clone)]
pub struct KeylessTrust {
    root: TrustedRoot,
    root_sha256: String,
    signers: Vec<(IdentityRule, String)>,
}

impl std::fmt::Debug for KeylessTrust {
    // The root's keys and certificates would fill a screen; its digest names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeylessTrust")
            .field("root", &self.root_digest())
            .field("signers", &self.describe())
            .finish()
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Why a trusted root could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("not a usable Sigstore trusted root")]
pub struct TrustedRootError(#[source] sigstore_verify::trust_root::Error);

impl KeylessTrust {
    /// Trusts `identity` from OIDC `issuer` on the Sigstore public-good instance, whose
    /// TrustedRoot is built in (no network access, ever).
    pub fn public_good(identity: IdentityRule, issuer: &str) -> Self {
        Self::nobody(None)
            .expect("the built-in public-good trusted root parses")
            .with_signer(identity, issuer)
    }

    /// The instance a TrustedRoot JSON describes (`None`: the built-in public-good
    /// root), trusting no signer until [`Self::with_signer`] names one.
    pub fn nobody(json: Option<&str>) -> Result<Self, TrustedRootError> {
        let json = json.unwrap_or(SIGSTORE_PRODUCTION_TRUSTED_ROOT);
        Ok(Self {
            root: TrustedRoot::from_json(json).map_err(TrustedRootError)?,
            root_sha256: sha256_hex(json),
            signers: Vec::new(),
        })
    }

    /// SHA-256 of the trusted root's JSON text: what summaries and caches key on.
    pub fn root_digest(&self) -> String {
        format!("sha256:{}", self.root_sha256)
    }

    /// Trusts `identity` from `issuer` on the instance a TrustedRoot JSON describes.
    pub fn from_trusted_root(
        json: &str,
        identity: IdentityRule,
        issuer: &str,
    ) -> Result<Self, TrustedRootError> {
        Ok(Self::nobody(Some(json))?.with_signer(identity, issuer))
    }

    /// Also trusts `identity` from `issuer` (same instance).
    pub fn with_signer(mut self, identity: IdentityRule, issuer: &str) -> Self {
        self.signers.push((identity, issuer.to_owned()));
        self
    }

    /// The signers trusted, as `identity from issuer` text.
    pub fn describe(&self) -> Vec<String> {
        self.signers
            .iter()
            .map(|(identity, issuer)| format!("{identity} from {issuer}"))
            .collect()
    }
}

/// The timestamp authorities of a TrustedRoot JSON, or of the built-in public-good
/// root when `json` is `None`: whom to believe about when a key or certificate signed.
pub fn timestamp_authorities(
    json: Option<&str>,
) -> Result<Vec<sigstore_verify::types::TsaAuthority>, TrustedRootError> {
    let root = TrustedRoot::from_json(json.unwrap_or(SIGSTORE_PRODUCTION_TRUSTED_ROOT))
        .map_err(TrustedRootError)?;
    Ok(root.tsa_authorities())
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
    /// The certificate's OIDC issuer is none the policy names.
    #[error("signer issuer {found:?} is not among the trusted issuers {expected:?}")]
    Issuer {
        /// The issuers trusted.
        expected: Vec<String>,
        /// The certificate's issuer.
        found: String,
    },
    /// The statement has no sha256 subject to bind the signature to.
    #[error("keyless statements need a sha256 subject digest to bind the signature to")]
    NoSha256Subject,
    /// The certificate names no identity (SAN) or no OIDC issuer: nobody to trust.
    #[error(
        "the signing certificate names no {0}; a keyless signer is known by identity and issuer"
    )]
    Anonymous(&'static str),
    /// The digest given is a modelseal keyless binding (`spec/sigstore.md` §4), which the
    /// signature covers but which names no artifact: anyone can write a file with that
    /// SHA-256.
    #[error(
        "sha256 {0} is the keyless binding of a modelseal model signature, not an artifact; verify the model with `modelseal verify MODEL --identity … --issuer …`"
    )]
    BindingNotArtifact(String),
    /// The digest given is the subject of a model signature (an OMS root, a hash of the
    /// files' hashes): it names a model directory, not a file.
    #[error(
        "sha256 {0} is the subject of a model signature (a digest of the model's file digests), not an artifact; verify the model with `modelseal verify MODEL`"
    )]
    ModelNotArtifact(String),
}

impl KeylessError {
    /// A stable name for the failure, for JSON output.
    pub fn kind(&self) -> &'static str {
        use sigstore_verify::Error as E;
        match self {
            Self::Identity { .. } | Self::Sigstore(E::IdentityMismatch { .. }) => {
                "identity-mismatch"
            }
            Self::Issuer { .. } | Self::Sigstore(E::IssuerMismatch { .. }) => "issuer-mismatch",
            Self::Sigstore(E::SignatureInvalid(_)) => "bad-signature",
            Self::Sigstore(E::ArtifactMismatch(_)) | Self::NoSha256Subject => "subject-mismatch",
            Self::Anonymous(_) => "untrusted-certificate",
            Self::BindingNotArtifact(_) => "binding-not-artifact",
            Self::ModelNotArtifact(_) => "model-not-artifact",
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
    /// The index of the bundle's (verified) transparency-log entry.
    pub log_index: Option<u64>,
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

/// The log index of a bundle's first transparency-log entry (verified by then).
fn log_index(bundle: &sigstore_verify::types::Bundle) -> Option<u64> {
    let entry = bundle.verification_material.tlog_entries.first()?;
    entry.log_index.to_string().parse().ok()
}

/// The same checks on any bundle sigstore understands (message signatures included),
/// for an artifact given as its SHA-256 digest.
pub fn verify_keyless_json(
    json: &str,
    artifact: Artifact,
    trust: &KeylessTrust,
) -> Result<KeylessSigner, KeylessError> {
    let digest = artifact.digest();
    let parsed =
        sigstore_verify::types::Bundle::from_json(json).map_err(sigstore_verify::Error::from)?;
    refuse_non_artifacts(&parsed, artifact)?;
    verify_parsed(
        &parsed,
        sigstore_verify::types::Sha256Hash::new(digest),
        trust,
    )
}

/// What `verify-bundle` is asked about: a file (by its SHA-256) or a digest given as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// The SHA-256 of a file's bytes.
    File([u8; 32]),
    /// A SHA-256 digest the caller names (`sha256:HEX`), such as an OMS model root.
    Digest([u8; 32]),
}

impl Artifact {
    /// The SHA-256 either way.
    pub fn digest(self) -> [u8; 32] {
        match self {
            Self::File(d) | Self::Digest(d) => d,
        }
    }
}

/// A model signature's subjects name a model, not a file: its keyless binding (signed as
/// a sha256 subject beside the BLAKE3 root it binds, `spec/sigstore.md` §4) names nothing
/// at all, and an OMS root (a hash of the files' hashes) is bytes anyone can write into a
/// file. The binding is refused however it is given; a model root only as a file (asked
/// as a digest, "is this model root signed" is a fair question). Read with the same
/// parser that verifies, so a bundle modelseal's stricter reader would refuse (an unknown
/// field) cannot skip this check.
fn refuse_non_artifacts(
    bundle: &sigstore_verify::types::Bundle,
    artifact: Artifact,
) -> Result<(), KeylessError> {
    let digest = artifact.digest();
    let sigstore_verify::types::SignatureContent::DsseEnvelope(envelope) = &bundle.content else {
        return Ok(()); // a message signature signs the artifact's own digest
    };
    let Ok(statement) = serde_json::from_slice::<serde_json::Value>(envelope.payload.as_bytes())
    else {
        return Ok(()); // not an in-toto statement: sigstore-verify refuses it
    };
    let wanted = hex::encode(digest);
    let model_types = [
        modelseal_core::statement::MANIFEST_PREDICATE_TYPE,
        modelseal_core::oms::OMS_PREDICATE_TYPE,
        modelseal_core::oms::OMS_LEGACY_PREDICATE_TYPE,
    ];
    let names_model = statement["predicateType"]
        .as_str()
        .is_some_and(|t| model_types.contains(&t));
    for subject in statement["subject"].as_array().into_iter().flatten() {
        let Some(sha) = subject["digest"]["sha256"].as_str() else {
            continue;
        };
        if !sha.eq_ignore_ascii_case(&wanted) {
            continue;
        }
        let root = subject["digest"]["blake3"]
            .as_str()
            .and_then(|hex| modelseal_core::ArtifactDigest::from_entry("blake3", hex).ok());
        if let Some(root) = root {
            let binding = modelseal_core::statement::keyless_binding(
                &modelseal_core::Blake3Digest::from_bytes(*root.as_bytes()),
            );
            if binding == digest {
                return Err(KeylessError::BindingNotArtifact(wanted));
            }
        }
        if names_model && matches!(artifact, Artifact::File(_)) {
            return Err(KeylessError::ModelNotArtifact(wanted));
        }
    }
    Ok(())
}

fn verify_parsed(
    bundle: &sigstore_verify::types::Bundle,
    digest: sigstore_verify::types::Sha256Hash,
    trust: &KeylessTrust,
) -> Result<KeylessSigner, KeylessError> {
    // Every cryptographic check once; the signer rules (any of several) are ours, after.
    let signer = checked(bundle, digest, &trust.root)?;
    let same_issuer = || trust.signers.iter().filter(|(_, i)| *i == signer.issuer);
    if same_issuer().any(|(rule, _)| rule.matches(&signer.identity)) {
        return Ok(signer);
    }
    if same_issuer().next().is_none() {
        return Err(KeylessError::Issuer {
            expected: trust.signers.iter().map(|(_, i)| i.clone()).collect(),
            found: signer.issuer,
        });
    }
    Err(KeylessError::Identity {
        expected: same_issuer()
            .map(|(rule, _)| rule.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
        found: signer.identity,
    })
}

/// Every Sigstore check except whom to trust; the identity is reported, not judged.
fn checked(
    bundle: &sigstore_verify::types::Bundle,
    digest: sigstore_verify::types::Sha256Hash,
    root: &TrustedRoot,
) -> Result<KeylessSigner, KeylessError> {
    let verifier = Verifier::new(root)?;
    let result = verifier.verify(digest, bundle, &VerificationPolicy::any_identity())?;
    // No identity or issuer is a refusal, never an empty string a rule could match.
    let identity = result
        .identity()
        .map(|san| san.as_str().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or(KeylessError::Anonymous(
            "identity (subject alternative name)",
        ))?;
    let issuer = result
        .issuer()
        .filter(|s| !s.is_empty())
        .ok_or(KeylessError::Anonymous("OIDC issuer"))?
        .to_owned();
    Ok(KeylessSigner {
        identity,
        issuer,
        signed_at: result.integrated_time().map(|t| t.as_second()),
        log_index: log_index(bundle),
    })
}

/// For signers: every Sigstore check on a bundle just issued, against a TrustedRoot
/// JSON (or the public-good root), so that nothing is written that would not verify.
/// The identity is the one the signer's token named, reported back: this decides
/// nothing about whom to trust, and verifiers must use [`verify_keyless`].
pub fn check_issued(
    json: &str,
    digest: [u8; 32],
    root_json: Option<&str>,
) -> Result<KeylessSigner, KeylessError> {
    let parsed =
        sigstore_verify::types::Bundle::from_json(json).map_err(sigstore_verify::Error::from)?;
    let root = TrustedRoot::from_json(root_json.unwrap_or(SIGSTORE_PRODUCTION_TRUSTED_ROOT))
        .map_err(sigstore_verify::Error::from)?;
    checked(
        &parsed,
        sigstore_verify::types::Sha256Hash::new(digest),
        &root,
    )
}

/// Checks a bundle signed by a known key (with its transparency-log entry, which
/// Sigstore clients require for keys too) over an artifact given as its SHA-256.
pub fn verify_key_json(
    json: &str,
    artifact: Artifact,
    spki_der: &[u8],
    root_json: Option<&str>,
) -> Result<Option<i64>, KeylessError> {
    let digest = artifact.digest();
    let parsed =
        sigstore_verify::types::Bundle::from_json(json).map_err(sigstore_verify::Error::from)?;
    refuse_non_artifacts(&parsed, artifact)?;
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
