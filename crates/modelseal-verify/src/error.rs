//! Every way verification can fail, each carrying the evidence a caller acts on.

use modelseal_core::hash::HashError;
use modelseal_core::{
    Blake3Digest, BundleError, KeyFingerprint, ManifestError, ManifestPath, WalkError,
};

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
    #[error("bundle verification material is {found}; only publicKey bundles are supported")]
    UnsupportedVerificationMaterial {
        /// What was there.
        found: &'static str,
    },
    /// The bundle names a signer key that the policy does not trust, and no trusted key
    /// verifies the signature.
    #[error(
        "signer is not trusted: bundle names key sha256:{hint}, which is not among the trusted keys"
    )]
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
    #[error("signed payload is not a valid in-toto statement: {0}")]
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
    #[error("signed predicate is malformed: {0}")]
    MalformedPredicate(#[source] serde_json::Error),
    /// The signed manifest breaks a manifest rule (duplicates, order, file/dir clash).
    #[error("signed manifest is invalid")]
    InvalidManifest(#[source] ManifestError),
    /// The statement's subject does not describe the manifest it carries.
    #[error("statement subject does not match its manifest: {0}")]
    Subject(SubjectProblem),
    /// The files on disk differ from the signed manifest.
    #[error("{0}")]
    Files(FileMismatch),
    /// The model could not be walked (symlink refused, unreadable directory…).
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// A file could not be read while hashing.
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl VerifyError {
    /// True when the input was read and refused (a failed verification); false when it
    /// could not be read at all (missing or unreadable files), so nothing was decided.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            Self::Bundle(BundleError::Io(_))
                | Self::Walk(WalkError::Io { .. })
                | Self::Hash(HashError::Io { .. })
                | Self::NoTrustedKeys
        )
    }

    /// A stable kebab-case name for the failure, used in JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bundle(BundleError::Io(_)) => "unreadable-bundle",
            Self::Bundle(_) => "malformed-bundle",
            Self::NoTrustedKeys => "no-trusted-keys",
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
            Self::Subject(_) => "subject-mismatch",
            Self::Files(_) => "files-mismatch",
            Self::Walk(WalkError::Io { .. }) | Self::Hash(HashError::Io { .. }) => {
                "unreadable-model"
            }
            Self::Walk(_) => "model-walk-refused",
            Self::Hash(_) => "model-changed-during-hash",
        }
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
    /// The subject digest is not the manifest's Merkle root.
    #[error("subject says blake3 {signed}, the manifest's root is {computed}")]
    RootMismatch {
        /// In the subject.
        signed: Blake3Digest,
        /// Computed from the manifest.
        computed: Blake3Digest,
    },
}

/// A file whose bytes differ from the signed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifiedFile {
    /// The file.
    pub path: ManifestPath,
    /// Signed size.
    pub expected_size: u64,
    /// Signed hash.
    pub expected_blake3: Blake3Digest,
    /// Size on disk.
    pub found_size: u64,
    /// Hash on disk; `None` when a size difference made hashing pointless.
    pub found_blake3: Option<Blake3Digest>,
}

/// Every difference between the files on disk and the signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FileMismatch {
    /// Present and signed, with other bytes.
    pub modified: Vec<ModifiedFile>,
    /// Signed but absent.
    pub missing: Vec<ManifestPath>,
    /// Present but not signed (and not ignored).
    pub extra: Vec<ManifestPath>,
}

impl FileMismatch {
    /// True when disk and manifest agree.
    pub fn is_empty(&self) -> bool {
        self.modified.is_empty() && self.missing.is_empty() && self.extra.is_empty()
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
