//! Which signers a verifier trusts.

use modelseal_core::{KeyFingerprint, VerifyingKey};

/// The keys whose signatures are accepted. A policy file (names, roles, identities,
/// lineage rules) will build one of these; for now callers list keys directly.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    keys: Vec<VerifyingKey>,
    roots: Vec<Vec<u8>>,
    certificate_time: CertificateTime,
    now: Option<u64>,
    #[cfg(feature = "sigstore")]
    keyless: Option<crate::keyless::KeylessTrust>,
    #[cfg(feature = "sigstore")]
    timestamp_authorities: Vec<sigstore_verify::types::TsaAuthority>,
}

/// When a certificate chain must have been valid, for a bundle without a trusted
/// timestamp (with one, it is checked at the timestamped time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateTime {
    /// Now (OMS v1.0 §8.2): a not-yet-valid or expired leaf or chain is refused.
    #[default]
    Now,
    /// model-signing's lenient rule: at the moment the leaf became valid, so a chain
    /// that has since expired still verifies. Opt-in.
    LeafIssuance,
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

    /// Checks certificate chains of untimestamped bundles under `rule`.
    pub fn with_certificate_time(mut self, rule: CertificateTime) -> Self {
        self.certificate_time = rule;
        self
    }

    /// The rule for certificate chains of untimestamped bundles.
    pub fn certificate_time(&self) -> CertificateTime {
        self.certificate_time
    }

    /// Verifies as if the current time were `unix_seconds` (for tests and replays).
    pub fn with_now(mut self, unix_seconds: u64) -> Self {
        self.now = Some(unix_seconds);
        self
    }

    /// The current time, Unix seconds, as verification sees it.
    pub fn now(&self) -> u64 {
        self.now.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    /// Trusts these RFC 3161 timestamp authorities for the signing time of key- and
    /// certificate-signed bundles.
    #[cfg(feature = "sigstore")]
    pub fn with_timestamp_authorities(
        mut self,
        authorities: Vec<sigstore_verify::types::TsaAuthority>,
    ) -> Self {
        self.timestamp_authorities = authorities;
        self
    }

    /// The trusted timestamp authorities.
    #[cfg(feature = "sigstore")]
    pub fn timestamp_authorities(&self) -> &[sigstore_verify::types::TsaAuthority] {
        &self.timestamp_authorities
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
