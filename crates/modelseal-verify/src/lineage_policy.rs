//! The lineage policy file (`spec/policy.md`): who is trusted for which role, which
//! attestations each hop needs, which builders, datasets and base models are allowed.
//! One format, read by the CLI, the loader API and (later) the admission webhook.

use std::path::{Path, PathBuf};

use modelseal_core::{KeyFingerprint, VerifyingKey};
use sha2::Digest as _;

use crate::policy::TrustPolicy;

/// What a signer is trusted to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Role {
    /// Model signatures (manifests).
    ModelPublisher,
    /// Training provenance.
    TrainingBuilder,
    /// Dataset signatures.
    DatasetCurator,
    /// Verification summaries (VSAs).
    Verifier,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default = "default_depth")]
    max_depth: usize,
    #[serde(default, rename = "signer")]
    signers: Vec<SignerEntry>,
    #[serde(default)]
    models: RulesFile,
    #[serde(default)]
    datasets: RulesFile,
    #[serde(default)]
    builders: BuildersFile,
    #[serde(default)]
    vsa: VsaFile,
}

fn default_depth() -> usize {
    8
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignerEntry {
    name: String,
    roles: Vec<Role>,
    key: Option<PathBuf>,
    identity: Option<String>,
    issuer: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    require: Option<Vec<String>>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildersFile {
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VsaFile {
    #[serde(default)]
    accept: bool,
}

/// A digest or a name pattern in an allow or deny list.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Matcher {
    /// `blake3:HEX`: exactly this artifact.
    Digest(String),
    /// `name:PATTERN`: a glob over the artifact's name (`*`, `?`, `[...]`).
    Name(glob::Pattern),
}

impl Matcher {
    fn parse(text: &str) -> Result<Self, PolicyError> {
        if let Some(hex) = text.strip_prefix("blake3:") {
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Ok(Self::Digest(text.to_owned()));
            }
        } else if let Some(pattern) = text.strip_prefix("name:") {
            return glob::Pattern::new(pattern)
                .map(Self::Name)
                .map_err(|e| PolicyError::Invalid(format!("pattern {text:?}: {e}")));
        }
        Err(PolicyError::Invalid(format!(
            "{text:?} is neither blake3:<64 lowercase hex> nor name:<pattern>"
        )))
    }

    /// Whether an artifact with this digest (`blake3:HEX`) and name matches.
    pub fn matches(&self, digest: &str, name: Option<&str>) -> bool {
        match self {
            Self::Digest(d) => d == digest,
            Self::Name(pattern) => name.is_some_and(|n| pattern.matches(n)),
        }
    }

    /// The rule as written.
    pub fn text(&self) -> String {
        match self {
            Self::Digest(d) => d.clone(),
            Self::Name(p) => format!("name:{}", p.as_str()),
        }
    }
}

/// Requirements and allow/deny lists for one kind of hop.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Rules {
    /// Predicate types each hop of this kind needs a verified attestation of.
    pub require: Vec<String>,
    /// When not empty, only matching artifacts are allowed.
    pub allow: Vec<Matcher>,
    /// Matching artifacts are refused.
    pub deny: Vec<Matcher>,
}

/// A trusted signer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PolicySigner {
    /// Its name in messages.
    pub name: String,
    /// What it may sign.
    pub roles: Vec<Role>,
    /// Its key, when it signs with one.
    pub key: Option<VerifyingKey>,
    /// Its Sigstore identity and issuer, when it signs keylessly.
    pub keyless: Option<(String, String)>,
}

/// A parsed lineage policy.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LineagePolicy {
    /// Hops allowed below the model being verified.
    pub max_depth: usize,
    /// Trusted signers.
    pub signers: Vec<PolicySigner>,
    /// Model hops.
    pub models: Rules,
    /// Dataset hops.
    pub datasets: Rules,
    /// Allowed builder ids (empty: any builder a training-builder signer vouches for).
    pub builders: Vec<String>,
    /// Whether a verifier-signed VSA for this policy stands in for the hops below it.
    pub accept_vsa: bool,
    /// SHA-256 of the policy file's bytes: VSAs name the policy by it.
    pub sha256: String,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file or a key it names could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or an unknown key, or a value of the wrong type.
    #[error("not a valid policy file")]
    Toml(#[source] toml::de::Error),
    /// A value that parses but makes no sense.
    #[error("invalid policy: {0}")]
    Invalid(String),
    /// A key file that is not a usable public key.
    #[error("signer {name:?}: key {}", path.display())]
    Key {
        /// The signer.
        name: String,
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: modelseal_core::KeyError,
    },
}

impl LineagePolicy {
    /// Reads a policy file; key paths are relative to its directory.
    pub fn read(path: &Path) -> Result<Self, PolicyError> {
        let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
            path: path.into(),
            source,
        })?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| PolicyError::Invalid("not UTF-8".into()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, hex::encode(sha2::Sha256::digest(&bytes)))
    }

    fn parse(text: &str, base: &Path, sha256: String) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(PolicyError::Toml)?;
        let mut signers = Vec::new();
        for entry in file.signers {
            let key = match &entry.key {
                None => None,
                Some(rel) => {
                    let path = base.join(rel);
                    let pem = std::fs::read_to_string(&path).map_err(|source| PolicyError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    Some(
                        VerifyingKey::from_pem(&pem).map_err(|source| PolicyError::Key {
                            name: entry.name.clone(),
                            path,
                            source,
                        })?,
                    )
                }
            };
            let keyless = match (entry.identity, entry.issuer) {
                (Some(identity), Some(issuer)) => Some((identity, issuer)),
                (None, None) => None,
                _ => {
                    return Err(PolicyError::Invalid(format!(
                        "signer {:?}: identity and issuer go together",
                        entry.name
                    )));
                }
            };
            if key.is_some() == keyless.is_some() {
                return Err(PolicyError::Invalid(format!(
                    "signer {:?} needs exactly one of key, or identity and issuer",
                    entry.name
                )));
            }
            if entry.roles.is_empty() {
                return Err(PolicyError::Invalid(format!(
                    "signer {:?} has no roles",
                    entry.name
                )));
            }
            signers.push(PolicySigner {
                name: entry.name,
                roles: entry.roles,
                key,
                keyless,
            });
        }
        let rules = |file: RulesFile, default: &[&str]| -> Result<Rules, PolicyError> {
            Ok(Rules {
                require: file
                    .require
                    .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect()),
                allow: file
                    .allow
                    .iter()
                    .map(|t| Matcher::parse(t))
                    .collect::<Result<_, _>>()?,
                deny: file
                    .deny
                    .iter()
                    .map(|t| Matcher::parse(t))
                    .collect::<Result<_, _>>()?,
            })
        };
        use modelseal_core::provenance::SLSA_PROVENANCE_TYPE;
        use modelseal_core::statement::MANIFEST_PREDICATE_TYPE;
        let models = rules(
            file.models,
            &[MANIFEST_PREDICATE_TYPE, SLSA_PROVENANCE_TYPE],
        )?;
        let datasets = rules(file.datasets, &[MANIFEST_PREDICATE_TYPE])?;
        for required in models.require.iter().chain(&datasets.require) {
            if required != MANIFEST_PREDICATE_TYPE && required != SLSA_PROVENANCE_TYPE {
                return Err(PolicyError::Invalid(format!(
                    "cannot require predicate type {required:?}"
                )));
            }
        }
        Ok(Self {
            max_depth: file.max_depth,
            signers,
            models,
            datasets,
            builders: file.builders.allow,
            accept_vsa: file.vsa.accept,
            sha256,
        })
    }

    /// The keys (and keyless identities) trusted for `role`.
    pub fn trust_for(&self, role: Role) -> TrustPolicy {
        let keys = self
            .signers
            .iter()
            .filter(|s| s.roles.contains(&role))
            .filter_map(|s| s.key.clone())
            .collect();
        #[allow(unused_mut)]
        let mut trust = TrustPolicy::from_keys(keys);
        #[cfg(feature = "sigstore")]
        if let Some((identity, issuer)) = self
            .signers
            .iter()
            .filter(|s| s.roles.contains(&role))
            .find_map(|s| s.keyless.clone())
        {
            use crate::keyless::{IdentityRule, KeylessTrust};
            trust = trust.with_keyless(KeylessTrust::public_good(
                IdentityRule::Exact(identity),
                &issuer,
            ));
        }
        trust
    }

    /// The policy's name for the signer with this key, if any.
    pub fn signer_name(&self, fingerprint: &KeyFingerprint) -> Option<&str> {
        self.signers
            .iter()
            .find(|s| {
                s.key
                    .as_ref()
                    .is_some_and(|k| &k.fingerprint() == fingerprint)
            })
            .map(|s| s.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LineagePolicy, PolicyError> {
        LineagePolicy::parse(text, Path::new("."), String::new())
    }

    #[test]
    fn defaults_and_rules() {
        let policy = parse("[datasets]\ndeny = [\"name:scraped-*\"]\n").unwrap();
        assert_eq!(policy.max_depth, 8);
        assert_eq!(policy.models.require.len(), 2);
        assert!(policy.datasets.deny[0].matches("blake3:00", Some("scraped-web")));
        assert!(!policy.datasets.deny[0].matches("blake3:00", Some("curated")));
        assert!(!policy.accept_vsa);
    }

    #[test]
    fn mistakes_are_errors() {
        let unknown = parse("max_depht = 3\n").unwrap_err();
        let cause = std::error::Error::source(&unknown).unwrap().to_string();
        assert!(cause.contains("unknown field `max_depht`"), "{cause}");
        for (text, message) in [
            ("[datasets]\ndeny = [\"sha1:abc\"]\n", "neither blake3"),
            ("[datasets]\ndeny = [\"blake3:ABC\"]\n", "neither blake3"),
            (
                "[models]\nrequire = [\"https://example.com/x\"]\n",
                "cannot require predicate type",
            ),
            (
                "[[signer]]\nname = \"a\"\nroles = [\"verifier\"]\n",
                "needs exactly one of key",
            ),
            (
                "[[signer]]\nname = \"a\"\nroles = []\nidentity = \"x\"\nissuer = \"y\"\n",
                "has no roles",
            ),
            (
                "[[signer]]\nname = \"a\"\nroles = [\"verifier\"]\nidentity = \"x\"\n",
                "go together",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.to_string().contains(message), "{text}: {err}");
        }
        let bad_role = parse(
            "[[signer]]\nname = \"a\"\nroles = [\"admin\"]\nidentity = \"x\"\nissuer = \"y\"\n",
        )
        .unwrap_err();
        assert!(matches!(bad_role, PolicyError::Toml(_)));
    }
}
