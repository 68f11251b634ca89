//! Which signers a verifier trusts.

use modelseal_core::{KeyFingerprint, VerifyingKey};

/// The keys whose signatures are accepted. A policy file (names, roles, identities,
/// lineage rules) will build one of these; for now callers list keys directly.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    keys: Vec<VerifyingKey>,
}

impl TrustPolicy {
    /// Trusts exactly `keys`.
    pub fn from_keys(keys: Vec<VerifyingKey>) -> Self {
        Self { keys }
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Their fingerprints, for messages.
    pub fn fingerprints(&self) -> Vec<KeyFingerprint> {
        self.keys.iter().map(VerifyingKey::fingerprint).collect()
    }
}
