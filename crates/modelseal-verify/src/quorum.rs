//! Several signatures for one artifact: which of them count, and whether enough signers
//! signed. A policy decides who counts ([`crate::ArtifactRules::count_signers`]); this
//! module holds what it decided, so every door reports it the same way.

use crate::Signer;

/// What a policy decided about the signers of an artifact: `counted` met `threshold`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignerCount {
    /// How many distinct named signers the policy needs.
    pub threshold: usize,
    /// The named signers whose signatures counted, in the policy's order.
    pub counted: Vec<String>,
    /// The named signers that could have counted and did not, each with why (no
    /// signature, or not with every algorithm it must sign with).
    pub missing: Vec<(String, String)>,
    /// Which of the signers counted (indices into those given to the count): only
    /// their signatures may name the artifact for an allow rule.
    pub claimed: Vec<usize>,
    /// For each of `claimed`, the index in `counted` of the named signer it counted for.
    pub claimed_for: Vec<usize>,
}

impl SignerCount {
    /// Whether the count meets the threshold.
    pub fn met(&self) -> bool {
        self.counted.len() >= self.threshold
    }

    /// One line for messages: `2 of 3 needed: counted alice, bob; missing carol (no
    /// signature)`.
    pub fn describe(&self) -> String {
        let counted = if self.counted.is_empty() {
            "none".to_owned()
        } else {
            self.counted.join(", ")
        };
        let mut text = format!(
            "{} signer{} needed, {} counted ({counted})",
            self.threshold,
            if self.threshold == 1 { "" } else { "s" },
            self.counted.len()
        );
        if !self.missing.is_empty() {
            let missing: Vec<String> = self
                .missing
                .iter()
                .map(|(name, why)| format!("{name}: {why}"))
                .collect();
            text.push_str(&format!("; missing {}", missing.join("; ")));
        }
        text
    }
}

/// The same signer once: a key by its fingerprint, a keyless signer by its identity and
/// issuer (each keyless signature has its own short-lived key).
pub fn same_signer(a: &Signer, b: &Signer) -> bool {
    match (&a.keyless, &b.keyless) {
        (Some(a), Some(b)) => a.identity == b.identity && a.issuer == b.issuer,
        (None, None) => a.fingerprint == b.fingerprint,
        _ => false,
    }
}

/// `signers` with repeats left out (the same signature given twice, or two signatures by
/// one key), first occurrence kept.
pub fn distinct_signers(signers: &[Signer]) -> Vec<Signer> {
    let mut distinct: Vec<Signer> = Vec::new();
    for signer in signers {
        if !distinct.iter().any(|d| same_signer(d, signer)) {
            distinct.push(signer.clone());
        }
    }
    distinct
}
