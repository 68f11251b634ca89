//! Every way verification can fail, each carrying the evidence a caller acts on.

use modelseal_core::hash::HashError;
use modelseal_core::oms::ResourceNameError;
use modelseal_core::{
    ArtifactDigest, ArtifactKind, Blake3Digest, BundleError, KeyFingerprint, ManifestError,
    PathError, WalkError,
};

use modelseal_core::statement::Scope;

use crate::certs::CertificateError;

/// Why a model or bundle was refused, or could not be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The bundle could not be read or parsed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The policy trusts no key, so nothing can verify.
    #[error("no trusted keys were given")]
    NoTrustedKeys,
    /// A certificate-signed bundle, and no trusted root certificate to check it against.
    #[error("bundle is signed with a certificate chain, and no trusted root certificate was given")]
    NoTrustedRoots,
    /// The certificate chain does not lead to a trusted root, or the leaf is unfit.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// A Sigstore keyless bundle, and no keyless identity and issuer to check it against.
    #[error("bundle is signed keylessly (Sigstore), and no identity and issuer were given")]
    NoKeylessIdentity,
    /// A Sigstore keyless check failed.
    #[cfg(feature = "sigstore")]
    #[error("Sigstore keyless verification failed")]
    Keyless(#[source] crate::keyless::KeylessError),
    /// The bundle's RFC 3161 timestamps do not verify against the trusted authorities.
    #[cfg(feature = "sigstore")]
    #[error("bundle timestamp refused")]
    Timestamp(#[source] crate::timestamps::TimestampError),
    /// The envelope carries no signature.
    #[error("bundle holds no signature")]
    NoSignatures,
    /// More than one signature: Sigstore bundles carry exactly one.
    #[error("bundle holds {count} signatures; a Sigstore bundle carries exactly one")]
    MultipleSignatures {
        /// How many.
        count: usize,
    },
    /// Verification material modelseal cannot check yet, or none.
    #[error("bundle verification material is {found}, which this version cannot check")]
    UnsupportedVerificationMaterial {
        /// What was there.
        found: &'static str,
    },
    /// The bundle names a signer key that the policy does not trust, and no trusted key
    /// verifies the signature.
    #[error("signer is not trusted: the bundle's key hint {hint} names none of the trusted keys")]
    UntrustedSigner {
        /// The bundle's (unauthenticated) key hint.
        hint: String,
        /// The keys that were tried.
        trusted: Vec<KeyFingerprint>,
    },
    /// No trusted key verifies the signature: the envelope was altered, or signed by
    /// a key the bundle does not name.
    #[error(
        "signature does not verify with any trusted key; the envelope was altered or signed by another key"
    )]
    BadSignature {
        /// The keys that were tried.
        tried: Vec<KeyFingerprint>,
    },
    /// The DSSE payload is not an in-toto statement.
    #[error("payload type is {found:?}; expected \"application/vnd.in-toto+json\"")]
    PayloadType {
        /// The type found.
        found: String,
    },
    /// The payload is not a well-formed in-toto statement.
    #[error("signed payload is not a valid in-toto statement")]
    MalformedStatement(#[source] serde_json::Error),
    /// The statement's `_type` is not Statement v1.
    #[error("statement type is {found:?}; expected \"https://in-toto.io/Statement/v1\"")]
    StatementType {
        /// The type found.
        found: String,
    },
    /// The statement's predicate is not of the expected type.
    #[error("predicate type is {found:?}; expected {expected:?}")]
    PredicateType {
        /// The type found.
        found: String,
        /// The type required.
        expected: &'static str,
    },
    /// The predicate does not parse as its type requires (bad paths included).
    #[error("signed predicate is malformed")]
    MalformedPredicate(#[source] serde_json::Error),
    /// A signed statement that covers no file, resource or subject: it would vouch for
    /// any model (with unsigned files ignored), so it is refused in every format.
    #[error("signed statement lists nothing: {0}")]
    ListsNothing(&'static str),
    /// The signed manifest breaks a manifest rule (duplicates, order, file/dir clash).
    #[error("signed manifest is invalid")]
    InvalidManifest(#[source] ManifestError),
    /// An OMS predicate that modelseal refuses (bad names, unknown hash, duplicates).
    #[error("signed OMS predicate is refused")]
    OmsPredicate(#[from] OmsPredicateError),
    /// The statement's subject does not describe the manifest it carries.
    #[error("statement subject does not match its manifest: {0}")]
    Subject(SubjectProblem),
    /// A native signature of another kind than the caller needs: a dataset's signature
    /// offered as a model's, or the reverse.
    #[error("the signature is for a {}, not a {}", kind_name(*signed), kind_name(*expected))]
    WrongKind {
        /// The kind the caller needs.
        expected: ArtifactKind,
        /// The kind the signer recorded.
        signed: ArtifactKind,
    },
    /// A directory's signature offered for one file opened alone, or the reverse.
    #[error("the signature is for a {}, but {} was given", scope_name(*signed), scope_name(*found))]
    WrongScope {
        /// What the signer signed.
        signed: Scope,
        /// What the caller gave.
        found: Scope,
    },
    /// The files on disk differ from the signed manifest.
    #[error("{0}")]
    Files(FileMismatch),
    /// The model could not be walked (symlink refused, unreadable directory…).
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// A file could not be read while hashing.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The signature and bytes verified, and the policy's rules about the artifact
    /// (allow and deny by digest or name) refused it.
    #[error("refused by policy: {0}")]
    Policy(crate::verifier::RuleRefusal),
}

impl VerifyError {
    /// True when the input was read and refused (a failed verification); false when it
    /// could not be read at all, or the caller gave nothing to trust, so nothing was
    /// decided. Each variant is listed: a new one must be placed on a side.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Bundle(BundleError::Io(_))
            | Self::Walk(WalkError::Io { .. })
            | Self::Hash(HashError::Io { .. })
            | Self::NoTrustedKeys
            | Self::NoTrustedRoots
            | Self::NoKeylessIdentity => false,
            Self::Bundle(_)
            | Self::Certificate(_)
            | Self::NoSignatures
            | Self::MultipleSignatures { .. }
            | Self::UnsupportedVerificationMaterial { .. }
            | Self::UntrustedSigner { .. }
            | Self::BadSignature { .. }
            | Self::PayloadType { .. }
            | Self::MalformedStatement(_)
            | Self::StatementType { .. }
            | Self::PredicateType { .. }
            | Self::MalformedPredicate(_)
            | Self::ListsNothing(_)
            | Self::InvalidManifest(_)
            | Self::OmsPredicate(_)
            | Self::Subject(_)
            | Self::WrongKind { .. }
            | Self::WrongScope { .. }
            | Self::Files(_)
            | Self::Walk(_)
            | Self::Hash(_)
            | Self::Policy(_) => true,
            #[cfg(feature = "sigstore")]
            Self::Keyless(_) | Self::Timestamp(_) => true,
        }
    }

    /// A stable kebab-case name for the failure, used in JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bundle(BundleError::Io(_)) => "unreadable-bundle",
            Self::Bundle(_) => "malformed-bundle",
            Self::NoTrustedKeys => "no-trusted-keys",
            Self::NoTrustedRoots => "no-trusted-roots",
            Self::NoKeylessIdentity => "no-keyless-identity",
            #[cfg(feature = "sigstore")]
            Self::Keyless(e) => e.kind(),
            #[cfg(feature = "sigstore")]
            Self::Timestamp(_) => "timestamp",
            Self::Certificate(_) => "untrusted-certificate",
            Self::OmsPredicate(OmsPredicateError::Duplicate(_)) => "invalid-manifest",
            Self::OmsPredicate(_) => "malformed-predicate",
            Self::NoSignatures => "no-signature",
            Self::MultipleSignatures { .. } => "multiple-signatures",
            Self::UnsupportedVerificationMaterial { .. } => "unsupported-verification-material",
            Self::UntrustedSigner { .. } => "untrusted-signer",
            Self::BadSignature { .. } => "bad-signature",
            Self::PayloadType { .. } => "wrong-payload-type",
            Self::MalformedStatement(_) => "malformed-statement",
            Self::StatementType { .. } => "wrong-statement-type",
            Self::PredicateType { .. } => "wrong-predicate-type",
            Self::MalformedPredicate(_) => "malformed-predicate",
            Self::InvalidManifest(_) => "invalid-manifest",
            Self::ListsNothing(_) => "lists-nothing",
            Self::Subject(_) => "subject-mismatch",
            Self::WrongKind { .. } => "wrong-kind",
            Self::WrongScope { .. } => "wrong-scope",
            Self::Files(_) => "files-mismatch",
            Self::Walk(WalkError::Io { .. }) | Self::Hash(HashError::Io { .. }) => {
                "unreadable-model"
            }
            Self::Walk(_) => "model-walk-refused",
            Self::Hash(_) => "model-changed-during-hash",
            Self::Policy(refusal) => refusal.kind,
        }
    }
}

/// The words for a scope in messages.
fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::File => "single file",
        _ => "directory",
    }
}

/// The word for a kind in messages.
pub fn kind_name(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Dataset => "dataset",
        _ => "model",
    }
}

/// How a statement's subject fails to describe its manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectProblem {
    /// Not exactly one subject.
    #[error("expected exactly one subject, found {0}")]
    Count(usize),
    /// The subject has no usable `blake3` digest.
    #[error("subject has no valid blake3 digest")]
    NoBlake3,
    /// The subject's sha256 is not the keyless binding of its blake3 root.
    #[error("subject's sha256 is not derived from its blake3 root: one subject, two artifacts")]
    ConfusedDigest,
    /// The subject digest is not the manifest's Merkle root.
    #[error("subject says blake3 {signed}, the manifest's root is {computed}")]
    RootMismatch {
        /// In the subject.
        signed: Blake3Digest,
        /// Computed from the manifest.
        computed: Blake3Digest,
    },
    /// A legacy OMS (0.2) statement names files, not a model: there is no model digest
    /// to expect.
    #[error(
        "not the expected artifact: a legacy OMS (0.2) statement names files, not a model digest"
    )]
    LegacyNamesFiles,
    /// No subject is the artifact the caller expected.
    #[error("not the expected artifact: the statement is about another artifact, not {expected}")]
    OtherArtifact {
        /// The artifact expected.
        expected: ArtifactDigest,
    },
    /// More than one subject names the artifact expected.
    #[error("not the expected artifact: the statement names {expected} in {count} subjects")]
    AmbiguousSubject {
        /// The artifact expected.
        expected: ArtifactDigest,
        /// How many subjects name it.
        count: usize,
    },
    /// A subject digest of a known algorithm that is not in canonical form.
    #[error("a subject's {algorithm} digest is malformed")]
    MalformedDigest {
        /// The algorithm.
        algorithm: &'static str,
    },
    /// The signature names another OCI manifest (or none) than the one being verified.
    #[error(
        "not the expected artifact: the signature names OCI manifest {}, not {found}",
        signed.map_or_else(|| "none".to_owned(), |d| d.to_string())
    )]
    OtherOciManifest {
        /// The manifest the signature names.
        signed: Option<ArtifactDigest>,
        /// The manifest being verified.
        found: ArtifactDigest,
    },
    /// The signed root is not the one the caller expected.
    #[error("not the expected artifact: the signed root is {signed}, not {expected}")]
    OtherRoot {
        /// The root signed.
        signed: ArtifactDigest,
        /// The root expected.
        expected: ArtifactDigest,
    },
    /// An OMS subject without a `sha256` digest.
    #[error("subject has no sha256 digest")]
    NoSha256,
    /// An OMS subject digest that is not the SHA-256 over the listed resource digests.
    #[error("subject says sha256 {signed}, the resources give {computed}")]
    Sha256Mismatch {
        /// In the subject.
        signed: String,
        /// Computed from the resources.
        computed: String,
    },
}

/// Why an OMS predicate is refused. model-signing accepts some of these; modelseal is
/// stricter on purpose (`spec/oms.md`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OmsPredicateError {
    /// `serialization.method` is neither `files` nor `shards`.
    #[error("unknown serialization method {0:?}")]
    Method(String),
    /// `serialization.hash_type` is not sha256, blake2b or blake3.
    #[error("unknown hash type {0:?}")]
    Hash(String),
    /// A shard size that is missing, zero, negative or fractional.
    #[error("shards need a positive whole shard_size")]
    ShardSize,
    /// A resource name that leaves the model or is malformed.
    #[error(transparent)]
    Name(#[from] ResourceNameError),
    /// A resource whose algorithm differs from the serialization's.
    #[error("resource {resource} has algorithm {found:?}, the serialization says {expected:?}")]
    Algorithm {
        /// The resource.
        resource: String,
        /// Its algorithm.
        found: String,
        /// The one expected.
        expected: String,
    },
    /// A digest that is not hex of the right length.
    #[error("resource {0} has a malformed digest")]
    Digest(String),
    /// The same resource twice (model-signing keeps the last; modelseal refuses).
    #[error("resource {0} is listed more than once")]
    Duplicate(String),
    /// A recorded ignore path that is not a model-relative path (`.`, `..`, absolute).
    #[error("recorded ignore path {path:?} is refused")]
    IgnorePath {
        /// The path.
        path: String,
        /// The rule broken.
        source: PathError,
    },
}

/// Evidence in a file mismatch: one file's (or OMS resource's) digest as the signature
/// records it, with its algorithm name (`blake3`, `sha256`, `sha256-sharded-1048576`…).
/// Only reported, never compared or judged: artifacts are named by `ArtifactDigest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Algorithm name as the manifest records it.
    pub algorithm: String,
    /// Lowercase hex.
    pub hex: String,
}

impl FileDigest {
    /// `9f2c…41ab`, for messages.
    pub fn short(&self) -> String {
        if self.hex.len() <= 12 {
            return self.hex.clone();
        }
        format!("{}…{}", &self.hex[..4], &self.hex[self.hex.len() - 4..])
    }
}

/// A file (or OMS resource) whose bytes differ from the signed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifiedFile {
    /// The file, or the OMS resource name.
    pub path: String,
    /// Signed digest.
    pub expected: FileDigest,
    /// Digest on disk; `None` when a size difference made hashing pointless.
    pub found: Option<FileDigest>,
    /// Signed size, when the manifest records sizes (native manifests do).
    pub expected_size: Option<u64>,
    /// Size on disk, when known.
    pub found_size: Option<u64>,
}

/// Every difference between the files on disk and the signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FileMismatch {
    /// Present and signed, with other bytes.
    pub modified: Vec<ModifiedFile>,
    /// Signed but absent.
    pub missing: Vec<String>,
    /// Present but not signed (and not ignored).
    pub extra: Vec<String>,
}

impl FileMismatch {
    /// True when disk and manifest agree.
    pub fn is_empty(&self) -> bool {
        self.modified.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }

    /// `Ok` when empty, else the mismatch with each list in byte order of its names.
    pub(crate) fn into_result(mut self) -> Result<(), VerifyError> {
        if self.is_empty() {
            return Ok(());
        }
        self.modified
            .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        self.missing.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        self.extra.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Err(VerifyError::Files(self))
    }
}

impl std::fmt::Display for FileMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.modified.len() + self.missing.len() + self.extra.len();
        let noun = if total == 1 { "file does" } else { "files do" };
        write!(
            f,
            "{total} {noun} not match the signed manifest ({} modified, {} missing, {} unsigned)",
            self.modified.len(),
            self.missing.len(),
            self.extra.len()
        )
    }
}

/// An error's message followed by each of its causes, `: `-separated: the one-line form
/// the CLI prints after `error:` and the Python package puts in its exceptions.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = without_os_code(err.to_string());
    let mut source = err.source();
    while let Some(cause) = source {
        // Many errors print their source in their own message: say each thing once.
        let said = without_os_code(cause.to_string());
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// `No such file or directory (os error 2)` reads as `No such file or directory`: the
/// number is for programs, and the text already says it.
fn without_os_code(mut text: String) -> String {
    while let Some(at) = text.find(" (os error ") {
        let Some(len) = text[at..].find(')') else {
            break;
        };
        let code = &text[at + " (os error ".len()..at + len];
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            break;
        }
        text.replace_range(at..=at + len, "");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_say_each_cause_once_and_drop_os_codes() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read key.pub")]
        struct Outer(#[source] std::io::Error);
        let outer = Outer(std::io::Error::from_raw_os_error(2));
        let text = error_chain(&outer);
        assert_eq!(text, "cannot read key.pub: No such file or directory");
        assert_eq!(
            without_os_code("a (os error 13) b (os error x)".into()),
            "a b (os error x)"
        );
    }
}
