//! Transitive lineage checks (`spec/lineage.md` §5): from a model, through its training
//! provenance, to every base model and dataset it names, recursively, each hop checked
//! by digest against the policy. Nothing here reads model bytes.
//!
//! Per hop, in this order: cycle and depth; the hop's own signature (manifest), which
//! gives the hop its name; the name its parent's provenance claims, which must agree;
//! allow and deny lists; a summary that may stand in for what lies below; provenance
//! and its inputs.

use std::collections::BTreeSet;
use std::time::SystemTime;

use modelseal_core::ArtifactDigest;
use modelseal_core::provenance::{
    DependencyKind, Provenance, SLSA_PROVENANCE_TYPE, SLSA_VSA_TYPE, TRAINING_BUILD_TYPE,
    VerificationSummary, dependency_kind,
};
use modelseal_core::statement::{ArtifactKind, MANIFEST_PREDICATE_TYPE, ManifestPredicate};
use modelseal_verify::{Attestation, error_chain, verify_attestation};

use crate::policy::{LineagePolicy, Role, Rules, role_name};
use crate::report::{Hop, HopFailure, HopKind, LineageReport, SignedBy, TrainingRun};
use crate::stop::Stop;
use crate::store::{AttestationStore, Lookup, Skipped};
use crate::vsa;

/// Walks the lineage of the model whose signature the caller has verified: `name` is
/// the subject name in that signature, `digest` its root, `known_as` any other digest
/// that signature names it by (the OCI manifest of a model from a registry: the policy's
/// rules apply to it too), `top_signer` the policy name of its signer.
pub fn verify_lineage(
    name: Option<String>,
    digest: &ArtifactDigest,
    known_as: &[ArtifactDigest],
    top_signer: String,
    policy: &LineagePolicy,
    store: &AttestationStore,
) -> LineageReport {
    let mut walk = Walk::new(policy, store, false);
    walk.top_known_as = known_as.to_vec();
    let mut top = Hop::new(HopKind::Model, None, Some(*digest));
    top.name = name;
    top.signers.push(top_signer);
    walk.check_into(&mut top, 0);
    walk.report(top)
}

/// Checks a model known only by its digest, as an admission controller does: its own
/// signature must be in the store, by a `model-publisher` (a summary never replaces
/// it), and then its lineage is walked as by [`verify_lineage`]. No model bytes are read.
/// The model's name is the one its publisher signed; what the caller calls it (an
/// annotation, a registry field) is never used for policy.
pub fn verify_digest(
    digest: &ArtifactDigest,
    policy: &LineagePolicy,
    store: &AttestationStore,
) -> LineageReport {
    verify_digest_until(digest, policy, store, Stop::never())
}

/// [`verify_digest`] under a stopping rule: once it is reached, the hop being checked
/// and those not yet reached fail with [`HopFailure::OutOfTime`] and a store lookup
/// under way stops within one file, so work whose answer is no longer wanted ends
/// instead of running on.
pub fn verify_digest_until(
    digest: &ArtifactDigest,
    policy: &LineagePolicy,
    store: &AttestationStore,
    stop: Stop,
) -> LineageReport {
    let mut walk = Walk::new(policy, store, true);
    walk.stop = stop;
    let mut top = Hop::new(HopKind::Model, None, Some(*digest));
    walk.check_into(&mut top, 0);
    walk.report(top)
}

/// The policy's rules for the model itself (its `[models]` deny rules, by signed name and
/// digest), for callers that verify a model's signature against a policy without walking
/// its lineage (`verify --policy`, the Python package): the same rules as the walk's top.
/// `digests` are every digest the model is known by (its root, and an OCI manifest's
/// digest for a model from a registry): a rule naming any of them applies.
pub fn check_model(
    policy: &LineagePolicy,
    signed_name: Option<&str>,
    digests: &[ArtifactDigest],
) -> Result<(), HopFailure> {
    check_artifact(policy, ArtifactKind::Model, signed_name, digests)
}

/// [`check_model`] for an artifact of either kind: a dataset verified on its own meets
/// the policy's `[datasets]` rules, a model its `[models]` rules.
pub fn check_artifact(
    policy: &LineagePolicy,
    kind: ArtifactKind,
    signed_name: Option<&str>,
    digests: &[ArtifactDigest],
) -> Result<(), HopFailure> {
    modelseal_policy::check_artifact(policy, kind, signed_name, digests).map_err(HopFailure::from)
}

struct Walk<'a> {
    policy: &'a LineagePolicy,
    store: &'a AttestationStore,
    attestations: BTreeSet<String>,
    stack: Vec<ArtifactDigest>,
    /// Whether the top model's own signature must be found in the store.
    top_signature: bool,
    now: SystemTime,
    /// Hops checked so far.
    hops: usize,
    /// When the caller stops wanting an answer.
    stop: Stop,
    /// Digests the caller's signature names the top model by, besides its root.
    top_known_as: Vec<ArtifactDigest>,
}

/// The most hops one walk checks.
pub const MAX_HOPS: usize = 10_000;

impl<'a> Walk<'a> {
    fn new(policy: &'a LineagePolicy, store: &'a AttestationStore, top_signature: bool) -> Self {
        Self {
            policy,
            store,
            attestations: BTreeSet::new(),
            stack: Vec::new(),
            top_signature,
            now: SystemTime::now(),
            hops: 0,
            stop: Stop::never(),
            top_known_as: Vec::new(),
        }
    }

    fn report(self, root: Hop) -> LineageReport {
        LineageReport {
            root,
            attestations: self.attestations,
        }
    }

    fn check_into(&mut self, hop: &mut Hop, depth: usize) {
        if let Err(failure) = self.check(hop, depth) {
            hop.failure = Some(failure);
        }
    }

    fn rules(&self, kind: HopKind) -> &'a Rules {
        match kind {
            HopKind::Model => &self.policy.models,
            HopKind::Dataset => &self.policy.datasets,
        }
    }

    fn check(&mut self, hop: &mut Hop, depth: usize) -> Result<(), HopFailure> {
        let digest = hop.digest.ok_or(HopFailure::NoDigest)?;
        self.hops += 1;
        if self.hops > MAX_HOPS {
            return Err(HopFailure::TooManyHops(MAX_HOPS));
        }
        if self.stack.contains(&digest) {
            return Err(HopFailure::Cycle);
        }
        if depth > self.policy.max_depth {
            return Err(HopFailure::TooDeep(self.policy.max_depth));
        }
        // One store lookup per hop serves the manifest, summary and provenance steps.
        if self.stop.reached() {
            return Err(HopFailure::OutOfTime);
        }
        let lookup = self
            .store
            .bundles_for_until(&digest, &self.stop)
            .map_err(|e| HopFailure::Store(error_chain(&e)))?;
        hop.skipped.extend(lookup.skipped.iter().cloned());
        if self.stop.reached() {
            return Err(HopFailure::OutOfTime);
        }
        // What was not looked at could be a provenance naming a denied input: a lookup
        // cut short by a limit fails the hop rather than pass it on what it saw.
        if let Some(reason) = &lookup.incomplete {
            return Err(HopFailure::Store(format!("lookup incomplete: {reason}")));
        }
        let rules = self.rules(hop.kind);
        let is_top = depth == 0;
        let require_manifest = if is_top {
            self.top_signature
        } else {
            rules.require.iter().any(|t| t == MANIFEST_PREDICATE_TYPE)
        };
        // Rules meet every name a trusted signer gave the artifact and every digest it
        // is known by (the OCI manifest a pulled directory's signature names), whether or
        // not its signature had to be in the store (the top model's was checked by the
        // caller): admission, which reads them all, must not differ.
        let mut digests = vec![digest];
        if is_top {
            digests.extend(self.top_known_as.iter().copied());
        }
        let mut others = if require_manifest {
            self.check_manifest(hop, &lookup, &digest)?
        } else {
            self.add_signed_names(hop, &lookup, &digest)
        };
        digests.append(&mut others.manifests);
        let names: Vec<&str> = hop
            .name
            .iter()
            .chain(&hop.aliases)
            .map(String::as_str)
            .collect();
        let other_names: Vec<&str> = others.other_names.iter().map(String::as_str).collect();
        modelseal_policy::check_lists_with(
            rules,
            (&names, &digests),
            (&other_names, &others.other_manifests),
            is_top,
        )?;
        if self.policy.accept_vsa
            && hop.kind == HopKind::Model
            && self.accepted_vsa(hop, &lookup, &digest, depth)?
        {
            hop.via_vsa = true;
            return Ok(());
        }
        let require_provenance = rules.require.iter().any(|t| t == SLSA_PROVENANCE_TYPE);
        let provenances = self.provenances(hop, &lookup, &digest, require_provenance)?;
        // The hop's bundles are done with: a deep walk holds one lookup at a time, not
        // one per level (each may be up to the store's per-digest byte limit).
        drop(lookup);
        self.stack.push(digest);
        // Keyed by kind too: an input named a base model by one provenance and a dataset
        // by another is checked against both kinds' rules.
        let mut walked = BTreeSet::new();
        for provenance in &provenances {
            let mut listed = BTreeSet::new();
            for dependency in &provenance.build_definition.resolved_dependencies {
                let kind = match dependency_kind(dependency) {
                    Some(DependencyKind::BaseModel) => HopKind::Model,
                    Some(DependencyKind::Dataset) => HopKind::Dataset,
                    _ => {
                        hop.materials.push(material(dependency));
                        continue;
                    }
                };
                let mut child = Hop::new(kind, dependency.name.clone(), None);
                match dependency.digest.get("blake3") {
                    None => child.failure = Some(HopFailure::NoDigest),
                    Some(hex) => match ArtifactDigest::from_entry("blake3", hex) {
                        Err(e) => child.failure = Some(HopFailure::MalformedDigest(e.to_string())),
                        Ok(d) if !listed.insert(d) => {
                            child.digest = Some(d);
                            child.failure = Some(HopFailure::DuplicateDependency(d.to_string()));
                        }
                        // The same input named again by a second trusted provenance of
                        // this hop is walked once.
                        Ok(d) if !walked.insert((kind, d)) => continue,
                        Ok(d) => {
                            child.digest = Some(d);
                            self.check_into(&mut child, depth + 1);
                        }
                    },
                }
                hop.inputs.push(child);
            }
        }
        self.stack.pop();
        Ok(())
    }

    /// Every stored attestation of `predicate_type` about `digest` that passes the gate
    /// for `role`. What does not pass is recorded as skipped and the search goes on, so
    /// nothing planted in the store can deny a hop: only a `required` type that no
    /// stored attestation passes fails it (with the first reason met, if any).
    fn trusted(
        &mut self,
        hop: &mut Hop,
        lookup: &Lookup,
        digest: &ArtifactDigest,
        predicate_type: &str,
        role: Role,
        required: bool,
    ) -> Result<Vec<(Attestation, String, String)>, HopFailure> {
        let trust = self.policy.trust_for(role);
        let mut passed = Vec::new();
        let mut first_error = None;
        for candidate in &lookup.bundles {
            if predicate_type_of(&candidate.bundle.dsse_envelope.payload).as_deref()
                != Some(predicate_type)
            {
                continue;
            }
            match verify_attestation(&candidate.bundle, &trust, digest, predicate_type) {
                Ok(attestation) => {
                    self.attestations.insert(candidate.sha256.clone());
                    let signer = self
                        .policy
                        .signer_name(&attestation.signer, role)
                        .map_or_else(|| attestation.signer.fingerprint.to_string(), str::to_owned);
                    passed.push((attestation, signer, candidate.sha256.clone()));
                }
                Err(e) => {
                    let reason = error_chain(&e);
                    first_error.get_or_insert_with(|| reason.clone());
                    hop.skipped
                        .push(Skipped::unused(candidate.path.clone(), reason));
                }
            }
        }
        if passed.is_empty() && required {
            return Err(match first_error {
                Some(reason) => HopFailure::Untrusted {
                    predicate_type: predicate_type.to_owned(),
                    role: role_name(role),
                    reason,
                },
                None => HopFailure::Missing {
                    predicate_type: predicate_type.to_owned(),
                },
            });
        }
        Ok(passed)
    }

    /// The hop's own signature: a model by a publisher, a dataset by a curator. It gives
    /// the hop its names: every name a trusted signature of the right kind gave it (two
    /// genuine signatures may name the same files differently: a directory and an
    /// image). A trusted signature of another kind is not counted (filing one cannot
    /// deny the hop); at least one of the right kind must pass. The name its parent's
    /// provenance used must be one of the signed names.
    /// Only signatures that count toward the role's threshold name the hop (for allow
    /// rules and the parent's name); the others can still deny it.
    fn check_manifest(
        &mut self,
        hop: &mut Hop,
        lookup: &Lookup,
        digest: &ArtifactDigest,
    ) -> Result<Named, HopFailure> {
        let (role, expected) = own_signer(hop.kind);
        let signed = self.trusted(hop, lookup, digest, MANIFEST_PREDICATE_TYPE, role, true)?;
        let mut other_kind = None;
        let mut of_kind = Vec::new();
        for (attestation, signer, sha256) in signed {
            let kind = attestation.predicate::<ManifestPredicate>().map(|p| p.kind);
            if kind.as_ref().ok() != Some(&expected) {
                other_kind.get_or_insert(match kind {
                    Ok(_) => "it is signed as another kind".to_owned(),
                    Err(e) => error_chain(&e),
                });
                continue;
            }
            of_kind.push((attestation, signer, sha256));
        }
        if of_kind.is_empty() {
            return Err(HopFailure::Mismatch {
                predicate_type: MANIFEST_PREDICATE_TYPE.into(),
                expected: hop.kind.name(),
                found: other_kind.unwrap_or_default(),
            });
        }
        // Each named signer counts once, however many of its signatures are stored.
        let all: Vec<modelseal_verify::Signer> =
            of_kind.iter().map(|(a, ..)| a.signer.clone()).collect();
        let distinct = modelseal_verify::distinct_signers(&all);
        let count = self.policy.count_signers(role, &distinct);
        if !count.met() {
            return Err(HopFailure::SignersMissing {
                role: role_name(role),
                detail: count.describe(),
            });
        }
        let (mut names, named) = self.facts(role, &of_kind, &distinct, &count);
        for ((attestation, signer, sha256), counted) in of_kind.iter().zip(&named.counted) {
            if *counted {
                record(hop, attestation, role, signer, sha256.clone());
                if !hop.signers.contains(signer) {
                    hop.signers.push(signer.clone());
                }
            }
        }
        let mismatch = match &hop.claimed_name {
            Some(claimed) if !names.contains(claimed) => Some(HopFailure::NameMismatch {
                signed: names.clone(),
                claimed: claimed.clone(),
            }),
            // The name shown first is the one its parent used, among the signed ones.
            Some(claimed) => {
                names.retain(|n| n != claimed);
                names.insert(0, claimed.clone());
                None
            }
            None => None,
        };
        let mut names = names.into_iter();
        hop.name = names.next();
        hop.aliases = names.collect();
        mismatch.map_or(Ok(named), Err)
    }

    /// Adds to `hop.aliases` the names that trusted signatures of the hop's own kind in
    /// the store give it; none need be there.
    /// Returns the OCI manifests those signatures name.
    fn add_signed_names(
        &mut self,
        hop: &mut Hop,
        lookup: &Lookup,
        digest: &ArtifactDigest,
    ) -> Named {
        let (role, expected) = own_signer(hop.kind);
        let Ok(signed) = self.trusted(hop, lookup, digest, MANIFEST_PREDICATE_TYPE, role, false)
        else {
            return Named::default();
        };
        let of_kind: Vec<_> = signed
            .into_iter()
            .filter(|(a, ..)| {
                a.predicate::<ManifestPredicate>().map(|p| p.kind).ok() == Some(expected)
            })
            .collect();
        let all: Vec<modelseal_verify::Signer> =
            of_kind.iter().map(|(a, ..)| a.signer.clone()).collect();
        let distinct = modelseal_verify::distinct_signers(&all);
        let count = self.policy.count_signers(role, &distinct);
        let (names, named) = self.facts(role, &of_kind, &distinct, &count);
        for name in names {
            if hop.name.as_ref() != Some(&name) && !hop.aliases.contains(&name) {
                hop.aliases.push(name);
            }
        }
        named
    }

    /// What a hop's own signatures establish: a name or an OCI manifest counts (for allow
    /// rules and the parent's name) when at least the role's threshold of counted signers
    /// vouch for it, a hybrid signer vouching only when a signature of every algorithm it
    /// must use gives it; anything else a trusted signature says can only deny. Returns
    /// the names that count, and the rest in [`Named`] with which signatures counted.
    fn facts(
        &self,
        role: Role,
        of_kind: &[(Attestation, String, String)],
        distinct: &[modelseal_verify::Signer],
        count: &modelseal_verify::SignerCount,
    ) -> (Vec<String>, Named) {
        let member_of = |signer: &modelseal_verify::Signer| {
            count
                .claimed
                .iter()
                .zip(&count.claimed_for)
                .find(|(i, _)| modelseal_verify::same_signer(&distinct[**i], signer))
                .map(|(_, m)| *m)
        };
        let members: Vec<Option<usize>> =
            of_kind.iter().map(|(a, ..)| member_of(&a.signer)).collect();
        let algorithms: Vec<Vec<modelseal_core::KeyAlgorithm>> = count
            .counted
            .iter()
            .map(|name| {
                self.policy
                    .signers
                    .iter()
                    .find(|s| s.name == *name && s.roles.contains(&role))
                    .map(|s| s.algorithms.clone())
                    .unwrap_or_default()
            })
            .collect();
        // Whether counted signer `member` vouches for what `fact` picks out.
        let vouches = |member: usize, fact: &dyn Fn(&Attestation) -> bool| {
            let theirs: Vec<&Attestation> = of_kind
                .iter()
                .zip(&members)
                .filter(|(_, m)| **m == Some(member))
                .map(|((a, ..), _)| a)
                .collect();
            if algorithms[member].is_empty() {
                theirs.iter().any(|a| fact(a))
            } else {
                algorithms[member]
                    .iter()
                    .all(|alg| theirs.iter().any(|a| a.signer.algorithm == *alg && fact(a)))
            }
        };
        let needed = count.threshold.max(1);
        let established = |fact: &dyn Fn(&Attestation) -> bool| {
            (0..count.counted.len())
                .filter(|&m| vouches(m, fact))
                .count()
                >= needed
        };
        let mut names: Vec<String> = Vec::new();
        let mut named = Named::default();
        for ((attestation, ..), member) in of_kind.iter().zip(&members) {
            named.counted.push(member.is_some());
            if let Some(m) = attestation.oci_manifest {
                if member.is_some() && established(&|a: &Attestation| a.oci_manifest == Some(m)) {
                    if !named.manifests.contains(&m) {
                        named.manifests.push(m);
                    }
                } else {
                    named.other_manifests.push(m);
                }
            }
            if let Some(name) = &attestation.subject_name {
                let holds = member.is_some()
                    && established(&|a: &Attestation| a.subject_name.as_ref() == Some(name));
                if !holds {
                    named.other_names.push(name.clone());
                } else if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        (names, named)
    }

    fn provenances(
        &mut self,
        hop: &mut Hop,
        lookup: &Lookup,
        digest: &ArtifactDigest,
        required: bool,
    ) -> Result<Vec<Provenance>, HopFailure> {
        let trusted = self.trusted(
            hop,
            lookup,
            digest,
            SLSA_PROVENANCE_TYPE,
            Role::TrainingBuilder,
            required,
        )?;
        let mut out = Vec::new();
        for (attestation, signer, sha256) in trusted {
            let provenance: Provenance =
                attestation.predicate().map_err(|e| HopFailure::Mismatch {
                    predicate_type: SLSA_PROVENANCE_TYPE.into(),
                    expected: "provenance",
                    found: error_chain(&e),
                })?;
            if provenance.build_definition.build_type != TRAINING_BUILD_TYPE {
                return Err(HopFailure::BuildType(
                    provenance.build_definition.build_type,
                ));
            }
            let builder = provenance.run_details.builder.id.clone();
            if !hop.builders.contains(&builder) {
                hop.builders.push(builder.clone());
            }
            // Checked before it is recorded: a refused builder's attestation is not one
            // the hop was accepted on, and a BOM must not list it as such.
            if !self.policy.builders.is_empty() && !self.policy.builders.contains(&builder) {
                return Err(HopFailure::Builder(builder));
            }
            record(hop, &attestation, Role::TrainingBuilder, &signer, sha256);
            if !hop.signers.contains(&signer) {
                hop.signers.push(signer);
            }
            let signed_by = hop.attestations.last().cloned();
            if let Some(signed_by) = signed_by {
                hop.runs.push(TrainingRun {
                    provenance: provenance.clone(),
                    signed_by,
                });
            }
            out.push(provenance);
        }
        Ok(out)
    }

    /// A verifier-signed summary that passed this very policy, with the same keys, for
    /// this artifact, recently enough. Summaries that do not qualify are skipped.
    fn accepted_vsa(
        &mut self,
        hop: &mut Hop,
        lookup: &Lookup,
        digest: &ArtifactDigest,
        depth: usize,
    ) -> Result<bool, HopFailure> {
        // Never required: an untrusted or unusable summary only means the walk decides.
        let summaries = self.trusted(hop, lookup, digest, SLSA_VSA_TYPE, Role::Verifier, false)?;
        for (attestation, signer, sha256) in summaries {
            let verdict = attestation
                .predicate::<VerificationSummary>()
                .map_err(|e| error_chain(&e))
                .and_then(|summary| vsa::acceptable(&summary, self.policy, self.now, depth));
            match verdict {
                Ok(()) => {
                    record(hop, &attestation, Role::Verifier, &signer, sha256);
                    hop.signers.push(signer);
                    return Ok(true);
                }
                Err(reason) => hop.skipped.push(Skipped::unused(
                    format!("verification summary by {signer}"),
                    reason,
                )),
            }
        }
        Ok(false)
    }
}

/// The role that signs a hop of `kind` itself, and the kind its signature must record.
fn own_signer(kind: HopKind) -> (Role, ArtifactKind) {
    match kind {
        HopKind::Model => (Role::ModelPublisher, ArtifactKind::Model),
        HopKind::Dataset => (Role::DatasetCurator, ArtifactKind::Dataset),
    }
}

fn record(hop: &mut Hop, attestation: &Attestation, role: Role, signer: &str, sha256: String) {
    hop.attestations.push(SignedBy {
        predicate_type: attestation.predicate_type.clone(),
        role: role_name(role),
        signer: signer.to_owned(),
        identity: attestation.signer.clone(),
        bundle_sha256: Some(sha256),
    });
}

fn material(dependency: &modelseal_core::statement::ResourceDescriptor) -> String {
    let label = dependency
        .uri
        .clone()
        .or_else(|| dependency.name.clone())
        .unwrap_or_default();
    let digests: Vec<String> = dependency
        .digest
        .iter()
        .map(|(a, h)| format!("{a}:{h}"))
        .collect();
    format!("{label} {}", digests.join(" "))
}

/// What a hop's own signatures name it by: the OCI manifests of those that count, and the
/// names and manifests of trusted ones that do not (which can deny, never allow).
#[derive(Default)]
struct Named {
    /// For each signature given, whether it counted.
    counted: Vec<bool>,
    manifests: Vec<ArtifactDigest>,
    other_names: Vec<String>,
    other_manifests: Vec<ArtifactDigest>,
}

fn predicate_type_of(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "predicateType")]
        predicate_type: String,
    }
    serde_json::from_slice::<Probe>(payload)
        .ok()
        .map(|p| p.predicate_type)
}
