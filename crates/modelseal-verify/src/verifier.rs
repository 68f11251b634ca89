//! The one door: a [`Verifier`] is built once from what the caller trusts (keys or
//! identities, options, and the policy's rules about artifacts) and is the only thing
//! that says yes. Every door of modelseal (the CLI, watch, `bom`, the Python package)
//! holds one, so none of them assembles trust, options or model rules by itself, and a
//! rule added to the verifier holds at every door.
//!
//! ```no_run
//! use modelseal_core::{Bundle, VerifyingKey, hash::NoProgress};
//! use modelseal_verify::{TrustPolicy, Verifier};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = VerifyingKey::from_pem(&std::fs::read_to_string("key.pub")?)?;
//! let verifier = Verifier::new(TrustPolicy::from_keys(vec![key]));
//! let bundle = Bundle::read("model.sig".as_ref())?;
//! let reader = verifier.open("model".as_ref(), &bundle, None)?;
//! let config = reader.read_file("config.json")?; // only checked bytes come out
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;

use modelseal_core::hash::Progress;
use modelseal_core::statement::MANIFEST_PREDICATE_TYPE;
use modelseal_core::{ArtifactDigest, ArtifactKind, Bundle, ManifestEntry};

use crate::loader::{ModelReader, VerifiedBytes, verify_bytes};
use crate::{
    SignatureFormat, SignedManifest, SignedModel, Signer, SignerCount, SubjectProblem, TrustPolicy,
    VerifiedModel, VerifyError, VerifyOptions, check_entries, check_scope, distinct_signers,
    read_signature, verify_model,
};

/// A policy's rules about an artifact itself: allow and deny lists by digest and by the
/// name its signer gave it. modelseal's policy file (the lineage crate) implements it.
pub trait ArtifactRules: Send + Sync {
    /// Refuses an artifact of `kind` that its signer named `name`, known by every one of
    /// `digests` (its root, and the OCI manifest its signature names).
    fn check(
        &self,
        kind: ArtifactKind,
        name: Option<&str>,
        digests: &[ArtifactDigest],
    ) -> Result<(), RuleRefusal>;

    /// Whether a rule for `kind` names an artifact by BLAKE3 root: then a model signed in
    /// another format (OMS) must be judged by its BLAKE3 root too, which the verifier
    /// computes from the files, or the rule could be stepped around by signing the same
    /// files otherwise.
    fn names_blake3_roots(&self, kind: ArtifactKind) -> bool {
        let _ = kind;
        false
    }

    /// Whether the distinct trusted `signers` of one artifact of `kind` (each of whose
    /// signatures was checked against its files) are enough: the policy's threshold of
    /// named signers, each counted once and only with every algorithm it must use. The
    /// default asks for one trusted signer, which a verified signature already is.
    fn count_signers(
        &self,
        kind: ArtifactKind,
        signers: &[Signer],
    ) -> Result<Option<SignerCount>, RuleRefusal> {
        let _ = (kind, signers);
        Ok(None)
    }
}

/// Why a policy's rules refused an artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleRefusal {
    /// A stable kebab-case name for the rule's failure (`denied`, `unnamed`…).
    pub kind: &'static str,
    /// What refused it, in words.
    pub message: String,
}

/// What a caller trusts, and the only way to a verified model, reader or bytes.
#[derive(Clone)]
pub struct Verifier {
    trust: TrustPolicy,
    options: VerifyOptions,
    rules: Option<Arc<dyn ArtifactRules>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("trust", &self.trust)
            .field("options", &self.options)
            .field("rules", &self.rules.is_some())
            .finish()
    }
}

impl Verifier {
    /// Trusts `trust`, with the default options (a model, every file present signed).
    pub fn new(trust: TrustPolicy) -> Self {
        Self {
            trust,
            options: VerifyOptions::default(),
            rules: None,
        }
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: VerifyOptions) -> Self {
        self.options = options;
        self
    }

    /// Adds a policy's rules about the artifact: every yes meets them.
    pub fn with_rules(mut self, rules: Arc<dyn ArtifactRules>) -> Self {
        self.rules = Some(rules);
        self
    }

    /// What is trusted.
    pub fn trust(&self) -> &TrustPolicy {
        &self.trust
    }

    /// The options every check uses.
    pub fn options(&self) -> &VerifyOptions {
        &self.options
    }

    /// Verifies the model (directory or file) at `root` against `bundle`, every file's
    /// bytes, then the rules.
    pub fn verify(
        &self,
        root: &Path,
        bundle: &Bundle,
        progress: &dyn Progress,
    ) -> Result<VerifiedModel, VerifyError> {
        self.verify_all(root, std::slice::from_ref(bundle), progress)
            .map(|cosigned| cosigned.model)
    }

    /// Verifies the model at `root` against every one of `bundles` (co-signatures: one
    /// signer each), then counts their signers as the policy asks and applies the rules
    /// to each. A bundle that is not a trusted signature of these files does not count
    /// and is reported in [`CoSigned::uncounted`]; when none counts, the first one's error
    /// is the answer. A signature whose signed root equals one already compared with the
    /// files (same format) covers the same files, so the files are read once per
    /// distinct root.
    pub fn verify_all(
        &self,
        root: &Path,
        bundles: &[Bundle],
        progress: &dyn Progress,
    ) -> Result<CoSigned, VerifyError> {
        let mut verified: Vec<(usize, VerifiedModel)> = Vec::new();
        let mut uncounted = Vec::new();
        // The first signature that matches the files sets what every other one must sign:
        // the same format and root, so all counted signatures vouch for one state of the
        // files (a different root is never compared, so planted signatures of other
        // releases cost no read).
        let mut first: Option<SignedModel> = None;
        for (index, bundle) in bundles.iter().enumerate() {
            let outcome = match &first {
                None => verify_model(root, bundle, &self.trust, &self.options, progress),
                Some(first) => self.co_signature(root, bundle, first, progress),
            };
            match outcome {
                Ok(model) => {
                    if first.is_none() {
                        first = Some(self.read_signature(bundle)?);
                    }
                    verified.push((index, model));
                }
                Err(error) => uncounted.push((index, error)),
            }
        }
        if verified.is_empty() {
            return Err(match uncounted.into_iter().next() {
                Some((_, error)) => error,
                None => VerifyError::NoSignatures,
            });
        }
        let mut walked_root = None;
        for (index, model) in &verified {
            let mut digests = model.digests();
            if model.format != SignatureFormat::Native && self.needs_blake3_root() {
                // A digest rule names files by BLAKE3 root whatever the signature's
                // format: the root of exactly the files this OMS signature covers, and
                // the root of every file the walk finds (what `modelseal hash` prints,
                // without the signatures), so neither a file OMS leaves out (.gitattributes)
                // nor one the caller lets pass unsigned moves the model out of a rule.
                digests.push(self.oms_files_blake3_root(root, &bundles[*index], progress)?);
                if walked_root.is_none() {
                    walked_root = Some(self.walked_blake3_roots(root, progress)?);
                }
                digests.extend(walked_root.iter().flatten());
            }
            self.judge(model.name.as_deref(), &digests)?;
        }
        let signers: Vec<Signer> = verified.iter().map(|(_, m)| m.signer.clone()).collect();
        let (_, mut model) = verified.swap_remove(0);
        model.signer_count = self.count(&signers)?;
        model.signers = distinct_signers(&signers);
        Ok(CoSigned { model, uncounted })
    }

    /// A co-signature of the model `first` already matched with the files: it counts only
    /// when it signs the same root in the same format. When it also signs the same file
    /// list with the same settings (native: the whole predicate; OMS: serialization and
    /// every resource's name and digest), the files already compared are its files;
    /// otherwise it is compared with the files itself, so a scope, an ignore path or a
    /// resource name it does not share is checked as it signed it.
    fn co_signature(
        &self,
        root: &Path,
        bundle: &Bundle,
        first: &SignedModel,
        progress: &dyn Progress,
    ) -> Result<VerifiedModel, VerifyError> {
        let signed = self.read_signature(bundle)?;
        let other_model = || {
            VerifyError::Subject(SubjectProblem::OtherArtifact {
                expected: first.digests()[0],
            })
        };
        let same_files = match (first, &signed) {
            (SignedModel::Native { manifest: a, .. }, SignedModel::Native { manifest: b, .. }) => {
                if a.root != b.root {
                    return Err(other_model());
                }
                a.predicate == b.predicate
            }
            (SignedModel::Oms { statement: a, .. }, SignedModel::Oms { statement: b, .. }) => {
                if a.root != b.root || a.legacy != b.legacy {
                    return Err(other_model());
                }
                a.serialization == b.serialization && a.resources == b.resources
            }
            _ => return Err(other_model()),
        };
        if !same_files {
            return verify_model(root, bundle, &self.trust, &self.options, progress);
        }
        Ok(match signed {
            SignedModel::Native { signer, manifest } => {
                check_scope(&manifest, root)?;
                VerifiedModel::native(signer, &manifest)
            }
            SignedModel::Oms { signer, statement } => VerifiedModel::oms(signer, statement),
        })
    }

    /// The BLAKE3 root of exactly the files an OMS signature names (each file once,
    /// whatever its shards), as `modelseal hash` prints it for those files alone.
    fn oms_files_blake3_root(
        &self,
        root: &Path,
        bundle: &Bundle,
        progress: &dyn Progress,
    ) -> Result<ArtifactDigest, VerifyError> {
        let SignedModel::Oms { statement, .. } = self.read_signature(bundle)? else {
            return self.files_blake3_root(root, progress);
        };
        let paths = statement.paths();
        if paths.is_empty() {
            // A single file: the walk of the file is exactly it.
            return self.files_blake3_root(root, progress);
        }
        self.blake3_root_of(root, &paths, progress)
    }

    /// The BLAKE3 root of the files at `paths` under `root`.
    fn blake3_root_of(
        &self,
        root: &Path,
        paths: &[modelseal_core::ManifestPath],
        progress: &dyn Progress,
    ) -> Result<ArtifactDigest, VerifyError> {
        let found = modelseal_core::walk::lookup_files(root, paths, &self.options.walk)
            .map_err(VerifyError::Walk)?;
        let files: Vec<modelseal_core::walk::ModelFile> = found
            .into_iter()
            .zip(paths)
            .map(|(file, path)| {
                file.ok_or_else(|| {
                    VerifyError::Policy(RuleRefusal {
                        kind: "denied",
                        message: format!(
                            "cannot compute the model's BLAKE3 root: {path} is gone since it was checked"
                        ),
                    })
                })
            })
            .collect::<Result<_, _>>()?;
        let manifest = modelseal_core::manifest_of_files(files, progress).map_err(model_error)?;
        Ok(ArtifactDigest::blake3(&manifest.root()))
    }

    /// The roots of every file the walk finds: without the signature files (as verified)
    /// and, when a signature lies inside the model, with them too (what `modelseal hash
    /// MODEL` prints for a model that carries its signature, as model-signing lays it
    /// out). Only the small signature files are hashed a second time.
    fn walked_blake3_roots(
        &self,
        root: &Path,
        progress: &dyn Progress,
    ) -> Result<Vec<ArtifactDigest>, VerifyError> {
        let manifest = self.walked_manifest(root, progress)?;
        let mut roots = vec![ArtifactDigest::blake3(&manifest.root())];
        let mut entries = manifest.entries().to_vec();
        let mut added = false;
        for signature in &self.options.walk.exclude_files {
            let Some(path) = modelseal_core::relative_inside(root, signature) else {
                continue;
            };
            if !std::fs::symlink_metadata(signature).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let hash =
                modelseal_core::hash::hash_file(signature, progress).map_err(VerifyError::Hash)?;
            entries.push(ManifestEntry {
                path,
                size: hash.size,
                blake3: hash.blake3,
            });
            added = true;
        }
        if added {
            let with = modelseal_core::Manifest::from_unsorted(entries)
                .map_err(VerifyError::InvalidManifest)?;
            roots.push(ArtifactDigest::blake3(&with.root()));
        }
        Ok(roots)
    }

    /// The files' BLAKE3 root, hashed as `modelseal hash` does with the same walk.
    fn files_blake3_root(
        &self,
        root: &Path,
        progress: &dyn Progress,
    ) -> Result<ArtifactDigest, VerifyError> {
        Ok(ArtifactDigest::blake3(
            &self.walked_manifest(root, progress)?.root(),
        ))
    }

    /// Every file the walk finds, hashed as `modelseal hash` does.
    fn walked_manifest(
        &self,
        root: &Path,
        progress: &dyn Progress,
    ) -> Result<modelseal_core::Manifest, VerifyError> {
        modelseal_core::hash_model(root, &self.options.walk, progress).map_err(model_error)
    }

    /// Opens the model at `root` for reading checked bytes only (see [`ModelReader`]),
    /// after the rules.
    pub fn open(
        &self,
        root: &Path,
        bundle: &Bundle,
        outboards: Option<&Path>,
    ) -> Result<ModelReader, VerifyError> {
        let reader = ModelReader::open(root, bundle, &self.trust, &self.options, outboards)?;
        self.refuse_unjudgeable(reader.format() == SignatureFormat::Native)?;
        self.judge(reader.name(), &reader.digests())?;
        self.count(std::slice::from_ref(reader.signer()))?;
        Ok(reader)
    }

    /// Checks that `data` is the signed file `path` (see [`verify_bytes`]), after the
    /// rules.
    pub fn verify_bytes(
        &self,
        bundle: &Bundle,
        path: Option<&str>,
        data: &[u8],
    ) -> Result<VerifiedBytes, VerifyError> {
        let verified = verify_bytes(bundle, &self.trust, &self.options, path, data)?;
        self.refuse_unjudgeable(
            verified.root.algorithm() == modelseal_core::DigestAlgorithm::Blake3,
        )?;
        self.judge(verified.name.as_deref(), &verified.digests())?;
        self.count(std::slice::from_ref(&verified.signer))?;
        Ok(verified)
    }

    /// Reads `bundle` as every check here does (see [`read_signature`]): signer,
    /// signature, expected subject, format and kind. No file is compared and no rule
    /// applied, so this is not a yes: it is for describing what a signature lists.
    pub fn read_signature(&self, bundle: &Bundle) -> Result<SignedModel, VerifyError> {
        read_signature(bundle, &self.trust, &self.options)
    }

    /// The first half of the yes for an OCI artifact, before any layer is read: a
    /// trusted native signature that names `manifest` (the digest of the manifest the
    /// registry served, as checked against its bytes) as its OCI subject, and that the
    /// rules accept by name, root and manifest digest. Its files are then compared with
    /// what the layers unpack to by [`Verifier::check_unpacked`].
    pub fn signed_oci(
        &self,
        bundle: &Bundle,
        manifest: ArtifactDigest,
    ) -> Result<SignedOci, VerifyError> {
        let mut signed = self.signed_oci_uncounted(bundle, manifest)?;
        signed.model.signer_count = self.count(std::slice::from_ref(&signed.model.signer))?;
        Ok(signed)
    }

    /// [`Verifier::signed_oci`] for every bundle attached to one manifest (co-signatures
    /// are referrers of their own): each trusted one that the rules accept and that signs
    /// the same files as the first counts, and the policy counts their signers. A trusted
    /// bundle the rules refuse refuses the artifact. Err lists why each bundle failed (by
    /// index), or holds one entry (index `bundles.len()`) when the signers fall short.
    #[allow(clippy::type_complexity)]
    pub fn signed_oci_all(
        &self,
        bundles: &[Bundle],
        manifest: ArtifactDigest,
    ) -> Result<(usize, SignedOci, Vec<(usize, VerifyError)>), Vec<(usize, VerifyError)>> {
        let mut accepted: Vec<(usize, SignedOci)> = Vec::new();
        let mut refused = Vec::new();
        for (index, bundle) in bundles.iter().enumerate() {
            match self.signed_oci_uncounted(bundle, manifest) {
                Ok(signed) => match accepted.first() {
                    // Another root under the same manifest: not the files the first signs,
                    // so not a co-signature of what will be compared.
                    Some((_, first)) if first.signed.root != signed.signed.root => refused.push((
                        index,
                        VerifyError::Subject(SubjectProblem::OtherArtifact {
                            expected: ArtifactDigest::blake3(&first.signed.root),
                        }),
                    )),
                    _ => accepted.push((index, signed)),
                },
                Err(e) => refused.push((index, e)),
            }
        }
        // A trusted signature about this manifest whose name or root a rule refuses
        // denies the artifact, whatever another signature says of it.
        if refused
            .iter()
            .any(|(_, e)| matches!(e, VerifyError::Policy(_)))
        {
            refused.retain(|(_, e)| matches!(e, VerifyError::Policy(_)));
            return Err(refused);
        }
        if accepted.is_empty() {
            return Err(refused);
        }
        let signers: Vec<Signer> = accepted
            .iter()
            .map(|(_, s)| s.model.signer.clone())
            .collect();
        let (index, mut first) = accepted.swap_remove(0);
        first.model.signer_count = self.count(&signers).map_err(|e| vec![(bundles.len(), e)])?;
        first.model.signers = distinct_signers(&signers);
        Ok((index, first, refused))
    }

    fn signed_oci_uncounted(
        &self,
        bundle: &Bundle,
        manifest: ArtifactDigest,
    ) -> Result<SignedOci, VerifyError> {
        let (signer, signed) = match self.read_signature(bundle)? {
            SignedModel::Native { signer, manifest } => (signer, manifest),
            SignedModel::Oms { .. } => {
                return Err(VerifyError::PredicateType {
                    found: "an OMS statement".into(),
                    expected: MANIFEST_PREDICATE_TYPE,
                });
            }
        };
        // The files alone are not enough: the signer must have named this manifest (its
        // config, media types and annotations), not just files like its files.
        if signed.oci_manifest != Some(manifest) {
            return Err(VerifyError::Subject(SubjectProblem::OtherOciManifest {
                signed: signed.oci_manifest,
                found: manifest,
            }));
        }
        let model = VerifiedModel::native(signer, &signed);
        self.judge(model.name.as_deref(), &model.digests())?;
        Ok(SignedOci { model, signed })
    }

    /// The second half of the yes for an OCI artifact: the files its layers unpacked to
    /// (`found`, hashed as they streamed) are exactly the signed files.
    pub fn check_unpacked(
        &self,
        signed: SignedOci,
        found: &[ManifestEntry],
    ) -> Result<VerifiedModel, VerifyError> {
        check_entries(&signed.signed, found)?;
        Ok(signed.model)
    }

    /// Whether the rules name the artifact's kind by BLAKE3 root.
    fn needs_blake3_root(&self) -> bool {
        let kind = self.options.kind.unwrap_or(ArtifactKind::Model);
        self.rules
            .as_ref()
            .is_some_and(|rules| rules.names_blake3_roots(kind))
    }

    /// The lazy doors (a reader, checked bytes) do not hash a model up front, so they
    /// cannot learn an OMS-signed model's BLAKE3 root: under rules that name BLAKE3
    /// roots such a model is refused rather than judged by a digest the rule never names.
    fn refuse_unjudgeable(&self, native: bool) -> Result<(), VerifyError> {
        if native || !self.needs_blake3_root() {
            return Ok(());
        }
        Err(VerifyError::Policy(RuleRefusal {
            kind: "unjudgeable",
            message: "the policy names models by BLAKE3 root, which an OMS signature does not carry and this reader does not compute; verify the model in full (`modelseal verify --policy`) or sign it natively".into(),
        }))
    }

    /// The policy's count of `signers` (distinct or not: it counts each once), refused
    /// when short of its threshold.
    fn count(&self, signers: &[Signer]) -> Result<Option<SignerCount>, VerifyError> {
        let Some(rules) = &self.rules else {
            return Ok(None);
        };
        let kind = self.options.kind.unwrap_or(ArtifactKind::Model);
        rules
            .count_signers(kind, &distinct_signers(signers))
            .map_err(VerifyError::Policy)
    }

    /// The rules alone.
    pub(crate) fn judge(
        &self,
        name: Option<&str>,
        digests: &[ArtifactDigest],
    ) -> Result<(), VerifyError> {
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        let kind = self.options.kind.unwrap_or(ArtifactKind::Model);
        rules
            .check(kind, name, digests)
            .map_err(VerifyError::Policy)
    }
}

/// A hashing failure while computing a BLAKE3 root for the rules, as a verification error.
fn model_error(e: modelseal_core::ModelError) -> VerifyError {
    match e {
        modelseal_core::ModelError::Walk(e) => VerifyError::Walk(e),
        modelseal_core::ModelError::Hash(e) => VerifyError::Hash(e),
        modelseal_core::ModelError::Manifest(e) => VerifyError::InvalidManifest(e),
        other => VerifyError::Policy(RuleRefusal {
            kind: "denied",
            message: format!("cannot compute the model's BLAKE3 root: {other}"),
        }),
    }
}

/// A model verified against several signatures: the model as the first that counted
/// describes it, with every counted signer, and the signatures that did not count.
#[derive(Debug)]
#[non_exhaustive]
pub struct CoSigned {
    /// The verified model; [`VerifiedModel::signers`] lists every counted signer.
    pub model: VerifiedModel,
    /// Each bundle that did not count, by its index among those given, with why.
    pub uncounted: Vec<(usize, VerifyError)>,
}

/// A trusted signature about one OCI manifest that the rules accept, from
/// [`Verifier::signed_oci`]: its layers are still to be compared.
#[derive(Debug, Clone)]
pub struct SignedOci {
    model: VerifiedModel,
    signed: SignedManifest,
}

impl SignedOci {
    /// The model as signed (signer, name, root, files, manifest digest).
    pub fn model(&self) -> &VerifiedModel {
        &self.model
    }

    /// The signed manifest.
    pub fn manifest(&self) -> &SignedManifest {
        &self.signed
    }
}
