//! The policy file (`spec/policy.md`): who is trusted for which role, which
//! attestations each hop needs, which builders, datasets and base models are allowed.
//! One format, read by the CLI, the loader API and the admission webhook.

use std::path::{Path, PathBuf};
use std::time::Duration;

use modelseal_core::{ArtifactDigest, KeyAlgorithm, VerifyingKey};
use modelseal_verify::keyless::{IdentityRule, KeylessTrust, timestamp_authorities};
use modelseal_verify::sigstore_verify::types::TsaAuthority;
use modelseal_verify::{Signer, SignerCount, TrustPolicy, error_chain};
use sha2::Digest as _;

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
    #[serde(default)]
    sigstore: SigstoreFile,
    #[serde(default)]
    roles: RolesFile,
}

/// `[roles.ROLE]`: how many of the role's signers must sign.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RolesFile {
    model_publisher: Option<ThresholdFile>,
    dataset_curator: Option<ThresholdFile>,
    training_builder: Option<ThresholdFile>,
    verifier: Option<ThresholdFile>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdFile {
    threshold: ThresholdCount,
    signers: Option<Vec<String>>,
}

#[derive(Debug)]
enum ThresholdCount {
    Count(i64),
    Word(String),
}

impl<'de> serde::Deserialize<'de> for ThresholdCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ThresholdCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a whole number of signers, or \"all\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ThresholdCount::Count(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ThresholdCount::Count(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ThresholdCount::Word(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[sigstore]`: the instance keyless signers are certified by, and whose timestamp
/// authorities date key signatures.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SigstoreFile {
    /// A TrustedRoot JSON file, relative to the policy [default: the built-in
    /// public-good root].
    trusted_root: Option<PathBuf>,
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
    keys: Option<Vec<PathBuf>>,
    algorithms: Option<Vec<String>>,
    identity: Option<String>,
    identity_regex: Option<String>,
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
    max_age: Option<String>,
}

/// How old a verification summary may be when `[vsa] max_age` is not given.
pub const DEFAULT_VSA_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A digest or a name pattern in an allow or deny list.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Matcher {
    /// `blake3:HEX` or `sha256:HEX`: exactly this artifact.
    Digest(ArtifactDigest),
    /// `name:PATTERN`: a glob over the artifact's name (`*`, `?`, `[...]`).
    Name(glob::Pattern),
}

/// A name pattern that could never match, or would match otherwise than it reads, is a
/// policy error: a deny rule that silently matches nothing weakens the policy.
fn refuse_dead_pattern(text: &str, pattern: &str) -> Result<(), PolicyError> {
    let invalid = |why: &str| Err(PolicyError::Invalid(format!("pattern {text:?}: {why}")));
    if pattern.is_empty() {
        return invalid("an empty name matches nothing; write name:* for every name");
    }
    if pattern.contains(['{', '}']) {
        return invalid(
            "braces are not alternation here (only *, ? and [...] are special); write one rule per name",
        );
    }
    // A range inside a character class that runs backwards ([z-a]) matches nothing.
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '[' {
            i += 1;
            continue;
        }
        // The class body: a leading `!` negates, and a `]` right after the opening (or
        // after `!`) is a literal, as glob reads it.
        let mut j = i + 1;
        if chars.get(j) == Some(&'!') {
            j += 1;
        }
        let start = j;
        if chars.get(j) == Some(&']') {
            j += 1;
        }
        while j < chars.len() && chars[j] != ']' {
            j += 1;
        }
        let body = &chars[start..j.min(chars.len())];
        for window in body.windows(3) {
            if let [from, '-', to] = window
                && from > to
            {
                return invalid(&format!(
                    "the range {from}-{to} runs backwards and matches nothing"
                ));
            }
        }
        i = j + 1;
    }
    Ok(())
}

impl Matcher {
    fn parse(text: &str) -> Result<Self, PolicyError> {
        if let Some(pattern) = text.strip_prefix("name:") {
            refuse_dead_pattern(text, pattern)?;
            return glob::Pattern::new(pattern)
                .map(Self::Name)
                .map_err(|e| PolicyError::Invalid(format!("pattern {text:?}: {e}")));
        }
        text.parse().map(Self::Digest).map_err(|e| {
            PolicyError::Invalid(format!(
                "{text:?} is neither blake3:<64 lowercase hex> (or sha256:…) nor name:<pattern>: {e}"
            ))
        })
    }

    /// Whether an artifact with this digest and signed name matches. A name rule never
    /// matches an artifact without a signed name: callers decide what that means.
    pub fn matches(&self, digest: &ArtifactDigest, name: Option<&str>) -> bool {
        match self {
            Self::Digest(d) => d == digest,
            Self::Name(pattern) => name.is_some_and(|n| pattern.matches(n)),
        }
    }

    /// Whether this is a `name:` rule.
    pub fn is_name(&self) -> bool {
        matches!(self, Self::Name(_))
    }

    /// The rule as written.
    pub fn text(&self) -> String {
        match self {
            Self::Digest(d) => d.to_string(),
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
    /// How its signatures are recognised.
    pub id: SignerId,
    /// The algorithms it must sign with, one signature each, for its signature to count
    /// (a hybrid signer: classical and post-quantum). Empty: any one of its keys.
    pub algorithms: Vec<KeyAlgorithm>,
}

/// `[roles.ROLE]`: a role whose artifacts need `threshold` of the named signers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoleThreshold {
    /// The role.
    pub role: Role,
    /// How many distinct signers of `signers` must sign.
    pub threshold: usize,
    /// The signers that count, by name, in the policy's order.
    pub signers: Vec<String>,
}

/// How a policy recognises a signer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SignerId {
    /// By its public keys (one, or several: a hybrid signer's classical and
    /// post-quantum keys, or a key and its successor).
    Keys(Vec<VerifyingKey>),
    /// Sigstore keyless: by the identity (SAN) and OIDC issuer its Fulcio certificate
    /// records, on the policy's Sigstore instance.
    Keyless {
        /// Exactly, or a regular expression over the whole identity.
        identity: IdentityRule,
        /// The issuer, exactly.
        issuer: String,
    },
}

impl SignerId {
    /// One line per key for messages and summaries: each key's fingerprint, or
    /// `keyless IDENTITY from ISSUER`.
    pub fn describe(&self) -> Vec<String> {
        match self {
            Self::Keys(keys) => keys.iter().map(|k| k.fingerprint().to_string()).collect(),
            Self::Keyless { identity, issuer } => {
                vec![format!("keyless {identity} from {issuer}")]
            }
        }
    }

    /// Whether a verified signature's signer is this one.
    pub fn recognises(&self, signer: &Signer) -> bool {
        match (self, &signer.keyless) {
            (Self::Keys(keys), None) => keys.iter().any(|k| k.fingerprint() == signer.fingerprint),
            (Self::Keyless { identity, issuer }, Some(found)) => {
                *issuer == found.issuer && identity.matches(&found.identity)
            }
            _ => false,
        }
    }
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
    /// The oldest a VSA may be to stand in.
    pub vsa_max_age: Duration,
    /// SHA-256 of the policy file's bytes: VSAs name the policy by it.
    pub sha256: String,
    /// The key files the signers were read from (and the Sigstore trusted root): a
    /// server that reloads the policy when it changes must reload it when one of these
    /// changes too.
    pub key_files: Vec<PathBuf>,
    /// `[sigstore] trusted_root`, resolved: the TrustedRoot file keyless signers are
    /// checked against (`None`: the built-in public-good root).
    pub sigstore_trusted_root: Option<PathBuf>,
    /// The Sigstore instance keyless signers are checked against, trusting nobody yet.
    keyless_root: KeylessTrust,
    /// The timestamp authorities that date key and certificate signatures.
    timestamp_authorities: Vec<TsaAuthority>,
    /// `[roles.…]` thresholds; a role without one needs one signer of the role.
    pub thresholds: Vec<RoleThreshold>,
}

/// A `[[signer]]` entry's key (read from its file) or keyless identity.
fn signer_id(
    entry: &SignerEntry,
    base: &Path,
    key_files: &mut Vec<PathBuf>,
) -> Result<SignerId, PolicyError> {
    let invalid = |why: &str| PolicyError::Invalid(format!("signer {:?}: {why}", entry.name));
    let keyless = entry.identity.is_some() || entry.identity_regex.is_some();
    let key_paths: Option<Vec<PathBuf>> = match (&entry.key, &entry.keys) {
        (Some(_), Some(_)) => return Err(invalid("give key or keys, not both")),
        (Some(one), None) => Some(vec![one.clone()]),
        (None, Some(many)) if many.is_empty() => {
            return Err(invalid("an empty keys list names no key"));
        }
        (None, Some(many)) => Some(many.clone()),
        (None, None) => None,
    };
    match (&key_paths, keyless) {
        (Some(_), true) => Err(invalid("give a key or an identity, not both")),
        (None, false) if entry.issuer.is_some() => {
            Err(invalid("an issuer needs an identity or identity_regex"))
        }
        (None, false) => Err(invalid("needs a key, or an identity and issuer (keyless)")),
        (Some(_), false) if entry.issuer.is_some() => {
            Err(invalid("an issuer belongs to keyless signers, not keys"))
        }
        (Some(paths), false) => {
            let mut keys: Vec<VerifyingKey> = Vec::new();
            for rel in paths {
                let path = base.join(rel);
                key_files.push(path.clone());
                let pem =
                    modelseal_core::open::read_regular_to_string(&path).map_err(|source| {
                        PolicyError::Io {
                            path: path.clone(),
                            source,
                        }
                    })?;
                let key = VerifyingKey::from_pem(&pem).map_err(|source| PolicyError::Key {
                    name: entry.name.clone(),
                    path: path.clone(),
                    source,
                })?;
                if keys.iter().any(|k| k.same_key(&key)) {
                    return Err(invalid(&format!("key {} is listed twice", path.display())));
                }
                keys.push(key);
            }
            Ok(SignerId::Keys(keys))
        }
        (None, true) => {
            let issuer = entry
                .issuer
                .clone()
                .filter(|issuer| !issuer.is_empty())
                .ok_or_else(|| invalid("a keyless signer needs an issuer"))?;
            let identity = match (&entry.identity, &entry.identity_regex) {
                (Some(_), Some(_)) => {
                    return Err(invalid("give identity or identity_regex, not both"));
                }
                (Some(exact), None) if exact.is_empty() => {
                    return Err(invalid("an empty identity names nobody"));
                }
                (Some(exact), None) => IdentityRule::Exact(exact.clone()),
                (None, Some(pattern)) => IdentityRule::regex(pattern)
                    .map_err(|e| invalid(&format!("identity_regex {pattern:?}: {e}")))?,
                (None, None) => unreachable!("keyless means one of them is set"),
            };
            Ok(SignerId::Keyless { identity, issuer })
        }
    }
}

/// The names `algorithms = [...]` accepts, as keys and reports spell them.
const ALGORITHM_NAMES: [(&str, KeyAlgorithm); 5] = [
    ("ed25519", KeyAlgorithm::Ed25519),
    ("ecdsa-p256", KeyAlgorithm::EcdsaP256),
    ("ecdsa-p384", KeyAlgorithm::EcdsaP384),
    ("ecdsa-p521", KeyAlgorithm::EcdsaP521),
    ("ml-dsa-65", KeyAlgorithm::MlDsa65),
];

/// A signer's `algorithms`: each a known name, once, held by one of its keys (a rule no
/// key could meet would refuse every signature of the signer, silently).
fn signer_algorithms(entry: &SignerEntry, id: &SignerId) -> Result<Vec<KeyAlgorithm>, PolicyError> {
    let invalid = |why: String| PolicyError::Invalid(format!("signer {:?}: {why}", entry.name));
    let Some(names) = &entry.algorithms else {
        return Ok(Vec::new());
    };
    let SignerId::Keys(keys) = id else {
        return Err(invalid(
            "algorithms apply to key signers; a keyless signer's certificate key is chosen by its Sigstore instance".into(),
        ));
    };
    if names.is_empty() {
        return Err(invalid(
            "an empty algorithms list asks for nothing; leave it out for any one key".into(),
        ));
    }
    let mut algorithms = Vec::new();
    for name in names {
        let algorithm = ALGORITHM_NAMES
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, a)| a.clone())
            .ok_or_else(|| {
                let known: Vec<&str> = ALGORITHM_NAMES.iter().map(|(n, _)| *n).collect();
                invalid(format!(
                    "unknown algorithm {name:?} (known: {})",
                    known.join(", ")
                ))
            })?;
        if algorithms.contains(&algorithm) {
            return Err(invalid(format!("algorithm {name} is listed twice")));
        }
        if !keys.iter().any(|k| k.algorithm() == algorithm) {
            return Err(invalid(format!(
                "must sign with {name}, and none of its keys is an {name} key"
            )));
        }
        algorithms.push(algorithm);
    }
    Ok(algorithms)
}

/// One key (or one exact keyless identity) under two names in one role would let one
/// signer count twice toward a threshold, so it is a policy error.
fn refuse_one_signer_under_two_names(signers: &[PolicySigner]) -> Result<(), PolicyError> {
    for (i, a) in signers.iter().enumerate() {
        for b in &signers[i + 1..] {
            let Some(role) = a.roles.iter().find(|r| b.roles.contains(r)) else {
                continue;
            };
            let shared = match (&a.id, &b.id) {
                (SignerId::Keys(x), SignerId::Keys(y)) => x
                    .iter()
                    .find(|k| y.iter().any(|other| other.same_key(k)))
                    .map(|k| format!("key {}", k.fingerprint())),
                (
                    SignerId::Keyless {
                        identity: ia,
                        issuer: sa,
                    },
                    SignerId::Keyless {
                        identity: ib,
                        issuer: sb,
                    },
                ) => (sa == sb && ia.to_string() == ib.to_string())
                    .then(|| format!("identity {ia} from {sa}")),
                _ => None,
            };
            if let Some(shared) = shared {
                return Err(PolicyError::Invalid(format!(
                    "signers {:?} and {:?} both hold the role {} with {shared}: one signer under two names would count twice",
                    a.name,
                    b.name,
                    role_name(*role)
                )));
            }
        }
    }
    Ok(())
}

/// `[roles.…]`, checked against the signers: every name a signer of that role, the
/// threshold between 1 and the number of signers named.
fn role_thresholds(
    file: RolesFile,
    signers: &[PolicySigner],
) -> Result<Vec<RoleThreshold>, PolicyError> {
    let mut thresholds = Vec::new();
    for (role, entry) in [
        (Role::ModelPublisher, file.model_publisher),
        (Role::DatasetCurator, file.dataset_curator),
        (Role::TrainingBuilder, file.training_builder),
        (Role::Verifier, file.verifier),
    ] {
        let Some(entry) = entry else { continue };
        let name = role_name(role);
        let invalid = |why: String| PolicyError::Invalid(format!("[roles.{name}]: {why}"));
        if matches!(role, Role::TrainingBuilder | Role::Verifier) {
            return Err(invalid(
                "thresholds apply to model-publisher and dataset-curator signatures; provenance and summaries count one trusted signer".into(),
            ));
        }
        let names: Vec<String> = match entry.signers {
            Some(names) => {
                for (i, n) in names.iter().enumerate() {
                    if names[..i].contains(n) {
                        return Err(invalid(format!("signer {n:?} is listed twice")));
                    }
                    match signers.iter().find(|s| s.name == *n) {
                        None => return Err(invalid(format!("no [[signer]] is named {n:?}"))),
                        Some(s) if !s.roles.contains(&role) => {
                            return Err(invalid(format!(
                                "signer {n:?} does not hold the role {name}"
                            )));
                        }
                        Some(_) => {}
                    }
                }
                names
            }
            None => signers
                .iter()
                .filter(|s| s.roles.contains(&role))
                .map(|s| s.name.clone())
                .collect(),
        };
        if names.is_empty() {
            return Err(invalid("no signer holds this role".into()));
        }
        let threshold = match entry.threshold {
            ThresholdCount::Word(word) if word == "all" => names.len(),
            ThresholdCount::Word(word) => {
                return Err(invalid(format!(
                    "threshold {word:?} is neither a number nor \"all\""
                )));
            }
            ThresholdCount::Count(n) if n < 1 => {
                return Err(invalid(format!(
                    "threshold {n} would accept no signature at all"
                )));
            }
            ThresholdCount::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        if threshold > names.len() {
            return Err(invalid(format!(
                "threshold {threshold} can never be met by the {} signer{} named",
                names.len(),
                if names.len() == 1 { "" } else { "s" }
            )));
        }
        thresholds.push(RoleThreshold {
            role,
            threshold,
            signers: names,
        });
    }
    Ok(thresholds)
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
        let text = modelseal_core::open::read_regular_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::InvalidData {
                PolicyError::Invalid("not UTF-8".into())
            } else {
                PolicyError::Io {
                    path: path.into(),
                    source,
                }
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base)
    }

    /// Parses policy text; key paths are relative to `base`. [`Self::read`] is this
    /// over a file's bytes.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, PolicyError> {
        let sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        let file: PolicyFile = toml::from_str(text).map_err(PolicyError::Toml)?;
        let mut signers = Vec::new();
        let mut key_files = Vec::new();
        let (sigstore_root, root_path) = match &file.sigstore.trusted_root {
            Some(rel) => {
                let path = base.join(rel);
                let json =
                    modelseal_core::open::read_regular_to_string(&path).map_err(|source| {
                        PolicyError::Io {
                            path: path.clone(),
                            source,
                        }
                    })?;
                (Some(json), Some(path))
            }
            None => (None, None),
        };
        key_files.extend(root_path.clone());
        let keyless_root = KeylessTrust::nobody(sigstore_root.as_deref()).map_err(|e| {
            PolicyError::Invalid(format!("[sigstore] trusted_root: {}", error_chain(&e)))
        })?;
        let timestamp_authorities =
            timestamp_authorities(sigstore_root.as_deref()).map_err(|e| {
                PolicyError::Invalid(format!("[sigstore] trusted_root: {}", error_chain(&e)))
            })?;
        for entry in file.signers {
            if entry.roles.is_empty() {
                return Err(PolicyError::Invalid(format!(
                    "signer {:?} has no roles",
                    entry.name
                )));
            }
            let id = signer_id(&entry, base, &mut key_files)?;
            let algorithms = signer_algorithms(&entry, &id)?;
            signers.push(PolicySigner {
                name: entry.name,
                roles: entry.roles,
                id,
                algorithms,
            });
        }
        for (i, a) in signers.iter().enumerate() {
            if signers[..i].iter().any(|b| b.name == a.name) {
                return Err(PolicyError::Invalid(format!(
                    "two [[signer]] entries are named {:?}; a name is one signer",
                    a.name
                )));
            }
            if !a.algorithms.is_empty()
                && a.roles
                    .iter()
                    .any(|r| matches!(r, Role::TrainingBuilder | Role::Verifier))
            {
                return Err(PolicyError::Invalid(format!(
                    "signer {:?}: algorithms apply to model-publisher and dataset-curator signatures; provenance and summaries count one trusted signature",
                    a.name
                )));
            }
        }
        refuse_one_signer_under_two_names(&signers)?;
        let thresholds = role_thresholds(file.roles, &signers)?;
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
        for t in &thresholds {
            let (rules, table) = match t.role {
                Role::DatasetCurator => (&datasets, "[datasets]"),
                _ => (&models, "[models]"),
            };
            if !rules.require.iter().any(|r| r == MANIFEST_PREDICATE_TYPE) {
                return Err(PolicyError::Invalid(format!(
                    "[roles.{}] sets a threshold, but {table} require leaves out {MANIFEST_PREDICATE_TYPE}, so the signatures it counts are never asked for below the top",
                    role_name(t.role)
                )));
            }
        }
        for required in models.require.iter().chain(&datasets.require) {
            if required != MANIFEST_PREDICATE_TYPE && required != SLSA_PROVENANCE_TYPE {
                return Err(PolicyError::Invalid(format!(
                    "cannot require predicate type {required:?}"
                )));
            }
        }
        let vsa_max_age = match &file.vsa.max_age {
            None => DEFAULT_VSA_MAX_AGE,
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                PolicyError::Invalid(format!("[vsa] max_age {text:?}: {e} (write e.g. \"24h\")"))
            })?,
        };
        Ok(Self {
            max_depth: file.max_depth,
            signers,
            sigstore_trusted_root: root_path,
            keyless_root,
            timestamp_authorities,
            models,
            datasets,
            builders: file.builders.allow,
            accept_vsa: file.vsa.accept,
            vsa_max_age,
            sha256,
            key_files,
            thresholds,
        })
    }

    /// The keys trusted for `role`.
    pub fn trust_for(&self, role: Role) -> TrustPolicy {
        let mut keys = Vec::new();
        let mut keyless = self.keyless_root.clone();
        let mut any_keyless = false;
        for signer in self.signers.iter().filter(|s| s.roles.contains(&role)) {
            match &signer.id {
                SignerId::Keys(list) => keys.extend(list.iter().cloned()),
                SignerId::Keyless { identity, issuer } => {
                    keyless = keyless.with_signer(identity.clone(), issuer);
                    any_keyless = true;
                }
            }
        }
        let trust = TrustPolicy::from_keys(keys)
            .with_timestamp_authorities(self.timestamp_authorities.clone());
        if any_keyless {
            trust.with_keyless(keyless)
        } else {
            trust
        }
    }

    /// The policy's name for this (verified) signer in `role`, if it names one. Only
    /// entries holding the role count: the same key or identity listed twice, under
    /// two names with two roles, is named for the role it signed in.
    pub fn signer_name(&self, signer: &Signer, role: Role) -> Option<&str> {
        self.signers
            .iter()
            .filter(|s| s.roles.contains(&role))
            .find(|s| s.id.recognises(signer))
            .map(|s| s.name.as_str())
    }

    /// What the policy resolved its signers to, one line per (role, signer) pair,
    /// sorted: `ROLE sha256:FINGERPRINT` or `ROLE keyless IDENTITY from ISSUER`, and with
    /// keyless signers the trusted root's digest. A VSA records these, so replacing a key file (a
    /// rotation or a revocation) ends every summary made under the old key even though
    /// the policy file's bytes are unchanged (`spec/lineage.md` §6).
    pub fn resolved_signers(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .signers
            .iter()
            .flat_map(|s| {
                s.roles.iter().flat_map(move |r| {
                    s.id.describe()
                        .into_iter()
                        .map(move |id| format!("{} {id}", role_name(*r)))
                })
            })
            .collect();
        // The root certifies keyless signers and supplies the timestamp authorities
        // that date key signatures, so replacing it changes the trust either way.
        lines.push(format!("sigstore-root {}", self.keyless_root.root_digest()));
        lines.sort();
        lines.dedup();
        lines
    }

    /// SHA-256 over the policy file's digest and [`Self::resolved_signers`]: what a
    /// cache or a summary keys trust on.
    pub fn trust_digest(&self) -> String {
        let mut hasher = sha2::Sha256::new();
        hasher.update(self.sha256.as_bytes());
        for line in self.resolved_signers() {
            hasher.update(b"\n");
            hasher.update(line.as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

impl LineagePolicy {
    /// The role's threshold: its `[roles.…]` entry, or one of every signer holding it.
    pub fn threshold_for(&self, role: Role) -> RoleThreshold {
        self.thresholds
            .iter()
            .find(|t| t.role == role)
            .cloned()
            .unwrap_or_else(|| RoleThreshold {
                role,
                threshold: 1,
                signers: self
                    .signers
                    .iter()
                    .filter(|s| s.roles.contains(&role))
                    .map(|s| s.name.clone())
                    .collect(),
            })
    }

    /// Counts the distinct trusted `signers` of one artifact signed in `role`: each named
    /// signer of the role's threshold counts once, when its signatures cover every
    /// algorithm it must sign with; a signature counts for one named signer at most.
    pub fn count_signers(&self, role: Role, signers: &[Signer]) -> SignerCount {
        let wanted = self.threshold_for(role);
        let mut claimed = vec![false; signers.len()];
        let mut count = SignerCount::default();
        count.threshold = wanted.threshold;
        for name in &wanted.signers {
            let Some(entry) = self
                .signers
                .iter()
                .find(|s| s.name == *name && s.roles.contains(&role))
            else {
                continue;
            };
            let mine: Vec<usize> = (0..signers.len())
                .filter(|&i| !claimed[i] && entry.id.recognises(&signers[i]))
                .collect();
            let lacking: Vec<String> = entry
                .algorithms
                .iter()
                .filter(|a| !mine.iter().any(|&i| signers[i].algorithm == **a))
                .map(|a| a.to_string())
                .collect();
            if mine.is_empty() {
                count.missing.push((name.clone(), "no signature".into()));
            } else if !lacking.is_empty() {
                count.missing.push((
                    name.clone(),
                    format!("no {} signature", lacking.join(" or ")),
                ));
            } else {
                for i in mine {
                    claimed[i] = true;
                    count.claimed.push(i);
                    count.claimed_for.push(count.counted.len());
                }
                count.counted.push(name.clone());
            }
        }
        count
    }
}

/// The role's name as the policy file writes it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::ModelPublisher => "model-publisher",
        Role::TrainingBuilder => "training-builder",
        Role::DatasetCurator => "dataset-curator",
        Role::Verifier => "verifier",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LineagePolicy, PolicyError> {
        LineagePolicy::from_toml(text, Path::new("."))
    }

    #[test]
    fn defaults_and_rules() {
        let policy = parse("[datasets]\ndeny = [\"name:scraped-*\"]\n").unwrap();
        assert_eq!(policy.max_depth, 8);
        assert_eq!(policy.models.require.len(), 2);
        let d: ArtifactDigest = format!("blake3:{}", "00".repeat(32)).parse().unwrap();
        assert!(policy.datasets.deny[0].matches(&d, Some("scraped-web")));
        assert!(!policy.datasets.deny[0].matches(&d, Some("curated")));
        assert!(!policy.datasets.deny[0].matches(&d, None));
        assert!(!policy.accept_vsa);
        assert_eq!(policy.vsa_max_age, DEFAULT_VSA_MAX_AGE);
        let policy = parse("[vsa]\naccept = true\nmax_age = \"90m\"\n").unwrap();
        assert_eq!(policy.vsa_max_age, Duration::from_secs(5400));
    }

    #[test]
    fn name_patterns_with_dashes_outside_classes_and_forward_ranges_load() {
        for pattern in ["xyz-abc*", "m[a-z]-v?", "[!a-c]*", "[]z-]*", "model-*-2024"] {
            let text = format!("[models]\ndeny = [\"name:{pattern}\"]\n");
            assert!(parse(&text).is_ok(), "{pattern}");
        }
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
                "needs a key",
            ),
            (
                "[[signer]]\nname = \"a\"\nroles = [\"verifier\"]\nidentity = \"x\"\n",
                "a keyless signer needs an issuer",
            ),
            (
                "[[signer]]\nname = \"a\"\nroles = [\"verifier\"]\nissuer = \"y\"\n",
                "an issuer needs an identity",
            ),
            // Failed on main: empty strings loaded, and matched a certificate without them.
            (
                "[[signer]]\nname = \"a\"\nroles = [\"verifier\"]\nidentity = \"x\"\nissuer = \"\"\n",
                "a keyless signer needs an issuer",
            ),
            (
                "[[signer]]\nname = \"a\"\nroles = [\"verifier\"]\nidentity = \"\"\nissuer = \"y\"\n",
                "an empty identity names nobody",
            ),
            (
                "[[signer]]\nname = \"a\"\nroles = [\"verifier\"]\nkey = \"k.pub\"\nidentity = \"x\"\nissuer = \"y\"\n",
                "not both",
            ),
            (
                "[[signer]]\nname = \"a\"\nroles = [\"verifier\"]\nidentity_regex = \"(\"\nissuer = \"y\"\n",
                "identity_regex",
            ),
            (
                "[sigstore]\ntrusted_root = \"/nonexistent/root.json\"\n",
                "cannot read",
            ),
            ("[vsa]\nmax_age = \"soon\"\n", "max_age"),
            ("[datasets]\ndeny = [\"name:[\"]\n", "pattern"),
            // Tenth attack review: loaded on main, and matched nothing.
            (
                "[models]\ndeny = [\"name:\"]\n",
                "an empty name matches nothing",
            ),
            ("[models]\ndeny = [\"name:[z-a]*\"]\n", "runs backwards"),
            (
                "[models]\ndeny = [\"name:{model,x}\"]\n",
                "braces are not alternation",
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
