//! # modelseal-verify
//!
//! Verification that loaders embed: is this model, byte for byte, what a trusted signer
//! signed? The crate has no network, terminal or async dependencies.
//!
//! Every door of modelseal says yes through a [`Verifier`]: built once from what the
//! caller trusts, it verifies a model, opens one for checked reads, or checks bytes in
//! memory, and applies the policy's rules about the artifact each time.
//! [`verify_model`] is the same check without rules; the steps it chains are public for
//! callers that need them apart: [`verify_envelope`] (signer and signature),
//! [`signed_manifest`] (statement and predicate), [`check_files`] (bytes on disk).
//! Each failure is a [`VerifyError`] variant carrying its evidence.
//!
//! ```
//! use modelseal_core::{Bundle, VerifyingKey, hash::NoProgress};
//! use modelseal_verify::{TrustPolicy, VerifyError, VerifyOptions, verify_model};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // A model, its publisher's key and signature, as `modelseal sign` leaves them.
//! # let dir = tempfile::tempdir()?;
//! # let (model, signature) = (dir.path().join("model"), dir.path().join("model.sig"));
//! # let public_key = dir.path().join("release.pub");
//! # std::fs::create_dir(&model)?;
//! # std::fs::write(model.join("weights.bin"), [7u8; 4096])?;
//! # let signer = modelseal_core::SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519)?;
//! # std::fs::write(&public_key, signer.verifying_key().to_pem())?;
//! # let options = modelseal_core::SignOptions::default();
//! # let signed = modelseal_core::sign_model(&model, &options, &signer, &NoProgress)?;
//! # std::fs::write(&signature, signed.bundle.to_json())?;
//! let key = VerifyingKey::from_pem(&std::fs::read_to_string(&public_key)?)?;
//! let policy = TrustPolicy::from_keys(vec![key]);
//! let bundle = Bundle::read(&signature)?;
//! match verify_model(&model, &bundle, &policy, &VerifyOptions::default(), &NoProgress) {
//!     Ok(verified) => println!("verified {}", verified.root),
//!     Err(VerifyError::Files(mismatch)) => eprintln!("refused: {} modified", mismatch.modified.len()),
//!     Err(other) => eprintln!("refused: {other}"),
//! }
//! # assert!(verify_model(&model, &bundle, &policy, &VerifyOptions::default(), &NoProgress).is_ok());
//! # // One byte changed: refused, naming the file.
//! # std::fs::write(model.join("weights.bin"), [8u8; 4096])?;
//! # match verify_model(&model, &bundle, &policy, &VerifyOptions::default(), &NoProgress) {
//! #     Err(VerifyError::Files(mismatch)) => assert_eq!(mismatch.modified.len(), 1),
//! #     _ => panic!("a changed file was not refused"),
//! # }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod certs;
mod envelope;
mod error;
mod files;
pub mod gate;
#[cfg(feature = "sigstore")]
pub mod keyless;
pub mod loader;
pub mod oms;
mod policy;
mod quorum;
pub mod safetensors;
mod signed;
#[cfg(feature = "sigstore")]
pub mod timestamps;
mod verifier;
/// The pinned Sigstore verifier, for the types its APIs take (trust roots, authorities).
#[cfg(feature = "sigstore")]
pub use sigstore_verify;

use std::path::Path;

use modelseal_core::hash::Progress;
use modelseal_core::oms::OMS_LEGACY_PREDICATE_TYPE;
use modelseal_core::walk::WalkOptions;
use modelseal_core::{ArtifactDigest, ArtifactKind, Bundle};

pub use envelope::{KeylessIdentity, Signer, VerifiedStatement, verify_envelope};
pub use error::{
    FileDigest, FileMismatch, ModifiedFile, OmsPredicateError, SubjectProblem, VerifyError,
    error_chain,
};
pub use files::{SignedManifest, check_entries, check_files, signed_manifest};
pub use gate::{Attestation, GateError, attestation_of, verify_attestation};
pub use policy::{CertificateTime, TrustPolicy};
pub use quorum::{SignerCount, distinct_signers, same_signer};
pub use signed::{SignedModel, read_signature};
pub use verifier::{ArtifactRules, CoSigned, RuleRefusal, SignedOci, Verifier};

/// What the verifier adds to what the signer recorded. The default checks a model: a
/// native signature recording another kind (a dataset) is refused.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Further ignored paths, and files to leave out (the signature when it lies inside
    /// the model).
    pub walk: WalkOptions,
    /// Check only the files the signature lists; others present are not reported. Names
    /// are still checked first, so a signed name can never lead outside the model.
    pub ignore_unsigned_files: bool,
    /// The artifact the caller expects (the digest an admission request, a registry or a
    /// lock file names). When given, the signature must pass the attestation gate for
    /// exactly this digest, before any file is read.
    pub expected: Option<ArtifactDigest>,
    /// The kind of artifact the caller needs. When given (a model, by default), a native signature recording
    /// another kind is refused (a dataset's signature is not a model's). OMS signatures
    /// record no kind and are model signatures by definition.
    pub kind: Option<ArtifactKind>,
    /// Accept empty files that an OMS `shards` signature does not list. That format
    /// cannot list an empty file (model-signing's shard serializer leaves them out), so
    /// by default such a file is unsigned and refused like any other (a planted empty
    /// `__init__.py` turns a folder into a package); set this to verify model-signing's
    /// shards signatures of models that hold empty files. Other formats list empty files
    /// and are not affected.
    pub allow_unlisted_empty_files: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            walk: WalkOptions::default(),
            ignore_unsigned_files: false,
            expected: None,
            kind: Some(ArtifactKind::Model),
            allow_unlisted_empty_files: false,
        }
    }
}

/// Refuses a signed predicate of another kind than `expected` (nothing when `None`):
/// every path that takes a native signature as a model's asks this.
pub fn check_kind(expected: Option<ArtifactKind>, signed: ArtifactKind) -> Result<(), VerifyError> {
    match expected {
        Some(expected) if expected != signed => Err(VerifyError::WrongKind { expected, signed }),
        _ => Ok(()),
    }
}

/// Refuses a native signature whose recorded scope (directory or single file) is not
/// what `root` is. Signatures without one (made before it was recorded) pass.
pub(crate) fn check_scope(signed: &SignedManifest, root: &Path) -> Result<(), VerifyError> {
    let found = modelseal_core::statement::Scope::of(root);
    match signed.predicate.scope {
        Some(scope) if scope != found => Err(VerifyError::WrongScope {
            signed: scope,
            found,
        }),
        _ => Ok(()),
    }
}

/// For OMS signatures: model signatures by definition.
pub(crate) fn check_oms_kind(options: &VerifyOptions) -> Result<(), VerifyError> {
    check_kind(options.kind, ArtifactKind::Model)
}

/// With `options.expected`, the gate's subject checks on a verified statement.
fn check_expected(
    verified: &VerifiedStatement,
    options: &VerifyOptions,
) -> Result<(), VerifyError> {
    let Some(expected) = &options.expected else {
        return Ok(());
    };
    let predicate_type = verified.statement.predicate_type.clone();
    if predicate_type == OMS_LEGACY_PREDICATE_TYPE {
        // Its subjects are the files, not the model: there is no model digest to expect.
        return Err(VerifyError::Subject(SubjectProblem::LegacyNamesFiles));
    }
    gate::attestation_of(verified.clone(), expected, &predicate_type)
        .map(|_| ())
        .map_err(|e| match e {
            GateError::Envelope(e) => e,
            GateError::ListsNothing => VerifyError::ListsNothing("a statement with no subjects"),
            GateError::MalformedSubject { algorithm, .. } => {
                VerifyError::Subject(SubjectProblem::MalformedDigest { algorithm })
            }
            GateError::ConfusedDigest => VerifyError::Subject(SubjectProblem::ConfusedDigest),
            GateError::OtherArtifact { expected } => {
                VerifyError::Subject(SubjectProblem::OtherArtifact { expected })
            }
            GateError::AmbiguousSubject { expected, count } => {
                VerifyError::Subject(SubjectProblem::AmbiguousSubject { expected, count })
            }
            // The gate was asked about the statement's own predicate type and parses no
            // predicate, so neither can happen here.
            GateError::PredicateType { found, .. } => VerifyError::PredicateType {
                found,
                expected: "the statement's own",
            },
            GateError::MalformedPredicate(e) => VerifyError::MalformedPredicate(e),
        })
}

/// Which signature format a model was verified against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureFormat {
    /// modelseal's BLAKE3 Merkle manifest.
    Native,
    /// OpenSSF Model Signing v1.0.
    Oms,
    /// OpenSSF Model Signing 0.2 (`Digests/v0.1`).
    OmsLegacy,
}

/// A model that matched its signature.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedModel {
    /// Who signed it.
    pub signer: Signer,
    /// The signature format.
    pub format: SignatureFormat,
    /// The signed subject name.
    pub name: Option<String>,
    /// The subject digest: the BLAKE3 Merkle root (native) or the OMS SHA-256 root.
    pub root: ArtifactDigest,
    /// Number of files (native) or resources (OMS) checked.
    pub files: usize,
    /// Bytes signed, when the manifest records sizes.
    pub bytes: Option<u64>,
    /// The OCI manifest the signature names (checked against the registry's for a model
    /// verified there; as signed for a directory pulled from one): a second digest the
    /// model is known by.
    pub oci_manifest: Option<ArtifactDigest>,
    /// Every distinct signer whose signature of these files counted, `signer` first
    /// (more than one when several signatures were given: co-signers).
    pub signers: Vec<Signer>,
    /// What the policy decided about them (its threshold, who counted, who is missing),
    /// when a policy judged the model.
    pub signer_count: Option<SignerCount>,
}

impl VerifiedModel {
    /// The result for a native manifest whose files were checked elsewhere than on disk
    /// (an OCI artifact's layers, with [`check_entries`]).
    pub fn native(signer: Signer, signed: &SignedManifest) -> Self {
        Self {
            signers: vec![signer.clone()],
            signer_count: None,
            signer,
            format: SignatureFormat::Native,
            name: signed.name.clone(),
            root: ArtifactDigest::blake3(&signed.root),
            files: signed.manifest.entries().len(),
            bytes: Some(signed.manifest.total_bytes()),
            oci_manifest: signed.oci_manifest,
        }
    }

    /// The result for an OMS statement whose resources were checked.
    pub fn oms(signer: Signer, statement: oms::SignedOms) -> Self {
        Self {
            signers: vec![signer.clone()],
            signer_count: None,
            signer,
            format: if statement.legacy {
                SignatureFormat::OmsLegacy
            } else {
                SignatureFormat::Oms
            },
            files: statement.resources.len(),
            name: statement.name,
            root: statement.root,
            bytes: None,
            oci_manifest: None,
        }
    }

    /// Every digest the model is known by: its signed root and, from a registry, the OCI
    /// manifest the signature names. Policy rules by digest apply to each.
    pub fn digests(&self) -> Vec<ArtifactDigest> {
        std::iter::once(self.root)
            .chain(self.oci_manifest)
            .collect()
    }
}

/// Verifies the model at `root` against `bundle`: trusted signer, valid signature, a
/// native manifest or OMS statement (recognised by predicate type), and every file's
/// bytes.
pub fn verify_model(
    root: &Path,
    bundle: &Bundle,
    policy: &TrustPolicy,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifiedModel, VerifyError> {
    let (signer, signed) = match read_signature(bundle, policy, options)? {
        SignedModel::Oms { signer, statement } => {
            oms::check_oms_files(root, &statement, options, progress)?;
            return Ok(VerifiedModel::oms(signer, statement));
        }
        SignedModel::Native { signer, manifest } => (signer, manifest),
    };
    check_scope(&signed, root)?;
    check_files(
        root,
        &signed,
        &options.walk,
        options.ignore_unsigned_files,
        progress,
    )?;
    Ok(VerifiedModel {
        signers: vec![signer.clone()],
        signer_count: None,
        signer,
        format: SignatureFormat::Native,
        name: signed.name,
        root: ArtifactDigest::blake3(&signed.root),
        files: signed.manifest.entries().len(),
        bytes: Some(signed.manifest.total_bytes()),
        // A directory pulled from a registry keeps the manifest its signer named, so
        // rules by that digest still apply to it.
        oci_manifest: signed.oci_manifest,
    })
}
