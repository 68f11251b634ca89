//! The one door: a [`Verifier`] is built once from what the caller trusts (keys or
//! identities, options, and the policy's rules about artifacts) and is the only thing
//! that says yes. Every door of modelseal (the CLI, watch, `bom`, the Python package)
//! holds one, so none of them assembles trust, options or model rules by itself, and a
//! rule added to the verifier holds at every door.
//!
//! ```no_run
//! use modelseal_core::{Bundle, VerifyingKey, hash::NoProgress};
//! use modelseal_verify::{TrustPolicy, Verifier};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = VerifyingKey::from_pem(&std::fs::read_to_string("key.pub")?)?;
//! let verifier = Verifier::new(TrustPolicy::from_keys(vec![key]));
//! let bundle = Bundle::read("model.sig".as_ref())?;
//! let reader = verifier.open("model".as_ref(), &bundle, None)?;
//! let config = reader.read_file("config.json")?; // only checked bytes come out
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;

use modelseal_core::hash::Progress;
use modelseal_core::{ArtifactDigest, ArtifactKind, Bundle};

use crate::loader::{ModelReader, VerifiedBytes, verify_bytes};
use crate::{TrustPolicy, VerifiedModel, VerifyError, VerifyOptions, verify_model};

/// A policy's rules about an artifact itself: allow and deny lists by digest and by the
/// name its signer gave it. modelseal's policy file (the lineage crate) implements it.
pub trait ArtifactRules: Send + Sync {
    /// Refuses an artifact of `kind` that its signer named `name`, known by every one of
    /// `digests` (its root, and the OCI manifest its signature names).
    fn check(
        &self,
        kind: ArtifactKind,
        name: Option<&str>,
        digests: &[ArtifactDigest],
    ) -> Result<(), RuleRefusal>;
}

/// Why a policy's rules refused an artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleRefusal {
    /// A stable kebab-case name for the rule's failure (`denied`, `unnamed`…).
    pub kind: &'static str,
    /// What refused it, in words.
    pub message: String,
}

/// What a caller trusts, and the only way to a verified model, reader or bytes.
#[derive(Clone)]
pub struct Verifier {
    trust: TrustPolicy,
    options: VerifyOptions,
    rules: Option<Arc<dyn ArtifactRules>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("trust", &self.trust)
            .field("options", &self.options)
            .field("rules", &self.rules.is_some())
            .finish()
    }
}

impl Verifier {
    /// Trusts `trust`, with the default options (a model, every file present signed).
    pub fn new(trust: TrustPolicy) -> Self {
        Self {
            trust,
            options: VerifyOptions::default(),
            rules: None,
        }
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: VerifyOptions) -> Self {
        self.options = options;
        self
    }

    /// Adds a policy's rules about the artifact: every yes meets them.
    pub fn with_rules(mut self, rules: Arc<dyn ArtifactRules>) -> Self {
        self.rules = Some(rules);
        self
    }

    /// What is trusted.
    pub fn trust(&self) -> &TrustPolicy {
        &self.trust
    }

    /// The options every check uses.
    pub fn options(&self) -> &VerifyOptions {
        &self.options
    }

    /// Verifies the model (directory or file) at `root` against `bundle`, every file's
    /// bytes, then the rules.
    pub fn verify(
        &self,
        root: &Path,
        bundle: &Bundle,
        progress: &dyn Progress,
    ) -> Result<VerifiedModel, VerifyError> {
        let verified = verify_model(root, bundle, &self.trust, &self.options, progress)?;
        self.judge(verified.name.as_deref(), &verified.digests())?;
        Ok(verified)
    }

    /// Opens the model at `root` for reading checked bytes only (see [`ModelReader`]),
    /// after the rules.
    pub fn open(
        &self,
        root: &Path,
        bundle: &Bundle,
        outboards: Option<&Path>,
    ) -> Result<ModelReader, VerifyError> {
        let reader = ModelReader::open(root, bundle, &self.trust, &self.options, outboards)?;
        self.judge(reader.name(), &reader.digests())?;
        Ok(reader)
    }

    /// Checks that `data` is the signed file `path` (see [`verify_bytes`]), after the
    /// rules.
    pub fn verify_bytes(
        &self,
        bundle: &Bundle,
        path: Option<&str>,
        data: &[u8],
    ) -> Result<VerifiedBytes, VerifyError> {
        let verified = verify_bytes(bundle, &self.trust, &self.options, path, data)?;
        self.judge(verified.name.as_deref(), &verified.digests())?;
        Ok(verified)
    }

    /// The rules alone, for an artifact whose signature and files were checked by a path
    /// that does not read a directory (an OCI artifact's layers as they stream).
    pub fn judge(&self, name: Option<&str>, digests: &[ArtifactDigest]) -> Result<(), VerifyError> {
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        let kind = self.options.kind.unwrap_or(ArtifactKind::Model);
        rules
            .check(kind, name, digests)
            .map_err(VerifyError::Policy)
    }
}
