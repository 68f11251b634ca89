//! Which signers a verifier trusts.

use modelseal_core::{KeyFingerprint, VerifyingKey};

/// The keys whose signatures are accepted. A policy file (names, roles, identities,
/// lineage rules) will build one of these; for now callers list keys directly.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    keys: Vec<VerifyingKey>,
    roots: Vec<Vec<u8>>,
    #[cfg(feature = "sigstore")]
    keyless: Option<crate::keyless::KeylessTrust>,
}

impl TrustPolicy {
    /// Trusts exactly `keys`.
    pub fn from_keys(keys: Vec<VerifyingKey>) -> Self {
        Self {
            keys,
            ..Self::default()
        }
    }

    /// Also trusts Sigstore keyless signatures by this identity and issuer.
    #[cfg(feature = "sigstore")]
    pub fn with_keyless(mut self, trust: crate::keyless::KeylessTrust) -> Self {
        self.keyless = Some(trust);
        self
    }

    /// The keyless identity trusted, if any.
    #[cfg(feature = "sigstore")]
    pub fn keyless(&self) -> Option<&crate::keyless::KeylessTrust> {
        self.keyless.as_ref()
    }

    /// Also trusts certificate chains that lead to one of these root certificates (DER).
    pub fn with_certificate_roots(mut self, roots: Vec<Vec<u8>>) -> Self {
        self.roots = roots;
        self
    }

    /// The trusted root certificates (DER).
    pub fn certificate_roots(&self) -> &[Vec<u8>] {
        &self.roots
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
