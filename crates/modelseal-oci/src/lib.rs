//! # modelseal-oci
//!
//! Models in OCI registries (`spec/oci.md`): [`Reference`] names one
//! (`oci://REGISTRY/REPOSITORY[:TAG|@sha256:…]`), [`Registry`] talks to the registry with
//! every read bounded, [`model`] unpacks an artifact's layers into the files a native
//! manifest lists (hashing them as they stream by, optionally writing them out), and
//! [`referrers`] attaches and finds Sigstore bundles as OCI 1.1 referrers, with the
//! referrers tag schema for registries without the referrers API. [`store`] keeps
//! attestations in a registry repository, keyed by subject digest.
//!
//! Nothing here decides trust: callers hand what is found to `modelseal-verify`'s gate.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
mod client;
pub mod layers;
pub mod model;
pub mod reference;
pub mod referrers;
pub mod store;

pub use client::{BlobReader, FetchedManifest, Registry, RegistryOptions};
pub use reference::{OciDigest, Reference, ReferenceError};

/// Why a registry operation failed. Every variant is a refusal of what the registry
/// served or a failure to reach it; none is a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The client could not be set up (a bad CA file, say).
    #[error("registry client: {0}")]
    Setup(String),
    /// Nothing listens, or TLS failed.
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    /// A connection, read or document took longer than allowed.
    #[error("registry timed out: {0}")]
    Timeout(String),
    /// The connection broke.
    #[error("registry transport: {0}")]
    Transport(String),
    /// Authentication failed or access is denied.
    #[error("registry access denied: {0}")]
    Denied(String),
    /// 404.
    #[error("not found in the registry: {0}")]
    NotFound(String),
    /// Another unexpected status.
    #[error("registry answered {status} for {url}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The registry broke the protocol.
    #[error("registry protocol: {0}")]
    Protocol(String),
    /// A document or blob is over its limit.
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// What.
        what: String,
        /// Its size (or the size read so far).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Content is not what its digest (or size) says.
    #[error("{what} does not match its digest or size: expected {expected}, got {found}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The expected digest or size.
        expected: String,
        /// What arrived.
        found: String,
    },
    /// A manifest that is not a model modelseal can read.
    #[error("{0}")]
    Unsupported(String),
    /// A document that other readers would read differently (keys equal under Go's case
    /// folding, a key twice).
    #[error("{what} is ambiguous: {problem}")]
    Ambiguous {
        /// The document.
        what: String,
        /// The key at fault.
        problem: modelseal_core::json::AmbiguousJson,
    },
    /// A layer holds something a model may not (a link, a device, an escaping path…).
    #[error("layer {layer}: {problem}")]
    Layer {
        /// The layer digest.
        layer: String,
        /// What is wrong.
        problem: String,
    },
    /// Writing the pulled model failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl OciError {
    /// A stable kebab-case name for the failure, for JSON output and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Reference(_) => "bad-reference",
            Self::Setup(_) => "registry-setup",
            Self::Unreachable(_) => "registry-unreachable",
            Self::Timeout(_) => "registry-timeout",
            Self::Transport(_) => "registry-transport",
            Self::Denied(_) => "registry-denied",
            Self::NotFound(_) => "not-found",
            Self::Status { .. } => "registry-status",
            Self::Protocol(_) => "registry-protocol",
            Self::TooLarge { .. } => "too-large",
            Self::DigestMismatch { .. } => "digest-mismatch",
            Self::Unsupported(_) => "unsupported-artifact",
            Self::Ambiguous { .. } => "ambiguous-document",
            Self::Layer { .. } => "bad-layer",
            Self::Write { .. } => "write-failed",
        }
    }

    /// Whether this refuses what the registry served (tampering), rather than failing
    /// to reach it.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::DigestMismatch { .. }
                | Self::Unsupported(_)
                | Self::Ambiguous { .. }
                | Self::Layer { .. }
                | Self::TooLarge { .. }
        )
    }
}

/// Carries an [`OciError`] through `std::io::Read` (decompressors and tar readers only
/// speak `io::Error`).
pub(crate) fn to_io(e: OciError) -> std::io::Error {
    std::io::Error::other(e)
}

/// Gets an [`OciError`] back out of an `io::Error`, or names the I/O failure.
pub(crate) fn from_io(e: std::io::Error, what: &str) -> OciError {
    if e.get_ref().is_some_and(|inner| inner.is::<OciError>()) {
        let inner = e.into_inner().expect("checked above");
        return *inner.downcast::<OciError>().expect("checked above");
    }
    if is_timeout(&e) {
        return OciError::Timeout(what.to_owned());
    }
    OciError::Transport(format!("{what}: {}", chain(&e)))
}

/// Whether a read failed because the registry went quiet: reqwest reports a body read
/// timeout as a decoding error whose cause is the timeout.
pub(crate) fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        current = err.source();
    }
    false
}

/// An error and its causes on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
