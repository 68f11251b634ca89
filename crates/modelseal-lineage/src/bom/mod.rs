//! AI bills of materials built from a verified lineage (`spec/bom.md`): CycloneDX 1.6
//! ML-BOM ([`cyclonedx`]) and SPDX 3.0.1 with the AI and Dataset profiles ([`spdx`]).
//!
//! Every fact comes from the [`LineageReport`] (what trusted signers signed, checked hop
//! by hop) or from the top model's verified signature and bytes. What is not proven is
//! marked: a refused hop carries its verdict and reason, a name only a parent's
//! provenance gives is a claim, and code and images are what the builder attested, not
//! things modelseal checked.

pub mod cyclonedx;
pub mod spdx;

use std::collections::{BTreeMap, BTreeSet};

use modelseal_core::provenance::{DependencyKind, dependency_kind};
use modelseal_core::statement::ResourceDescriptor;

use crate::report::{Hop, LineageReport, SignedBy};

/// A file of the top model, as its verified manifest lists it.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// Path inside the model.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3, hex.
    pub blake3: String,
}

/// The model card: a signed file of the top model, read verified.
#[derive(Debug, Clone)]
pub struct ModelCard {
    /// Its path inside the model.
    pub path: String,
    /// Its BLAKE3, hex.
    pub blake3: String,
    /// Its text.
    pub text: String,
}

/// What the BOM is built from.
#[derive(Debug)]
pub struct BomInput<'a> {
    /// The lineage check (its root is the top model).
    pub report: &'a LineageReport,
    /// The top model's files, from its verified manifest.
    pub files: Vec<ModelFile>,
    /// The top model's own signature, as verified.
    pub signature: SignedBy,
    /// The model card, when one is among the signed files.
    pub card: Option<ModelCard>,
    /// When the BOM was made, RFC 3339 UTC to the second.
    pub created: String,
    /// A fresh random serial (CycloneDX `serialNumber`, SPDX document namespace).
    pub serial: [u8; 16],
    /// modelseal's version.
    pub tool_version: &'a str,
}

impl BomInput<'_> {
    /// The serial as a UUID.
    pub fn uuid(&self) -> String {
        uuid_v4(self.serial)
    }
}

/// Random bytes as a version 4 UUID (the version and variant bits set).
fn uuid_v4(serial: [u8; 16]) -> String {
    let mut b = serial;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The verdict words both formats carry. "verified" needs a signature of the artifact
/// itself by a signer trusted for its role (or, for the top model, the signature the
/// caller verified with its bytes); a hop the policy let pass without one (a dataset
/// whose curator signature is not required) is "unsigned": its digest is only what the
/// provenance of the model trained from it states.
pub(crate) fn verdict(hop: &Hop, top: bool) -> &'static str {
    let own_signature = top
        || hop
            .attestations
            .iter()
            .any(|a| a.role == "model-publisher" || a.role == "dataset-curator");
    match (&hop.failure, hop.via_vsa, own_signature) {
        (Some(_), _, _) => "refused",
        (None, true, _) => "verified-by-summary",
        (None, false, true) => "verified",
        (None, false, false) => "unsigned",
    }
}

/// The inputs of one training run: those of the node's inputs that this run's own
/// provenance lists (a model with two trusted provenances has two runs, each with its
/// own inputs, not the union of both).
pub(crate) fn run_inputs<'n>(
    node: &'n Node<'_>,
    provenance: &modelseal_core::provenance::Provenance,
) -> Vec<&'n String> {
    let listed: BTreeSet<String> = provenance
        .build_definition
        .resolved_dependencies
        .iter()
        .filter_map(|d| {
            let kind = match dependency_kind(d)? {
                DependencyKind::BaseModel => "model",
                DependencyKind::Dataset => "dataset",
                _ => return None,
            };
            let hex = d.digest.get("blake3")?;
            Some(format!("{kind}-blake3-{hex}"))
        })
        .collect();
    node.inputs
        .iter()
        .filter(|id| listed.contains(*id))
        .collect()
}

/// A stable local id for a hop: kind and digest (hops without a digest get their
/// position, since nothing else identifies them).
pub(crate) fn hop_id(hop: &Hop, position: usize) -> String {
    match &hop.digest {
        Some(d) => format!(
            "{}-{}-{}",
            hop.kind.name(),
            d.algorithm().name(),
            d.to_hex()
        ),
        None => format!("{}-unresolved-{position}", hop.kind.name()),
    }
}

/// One distinct artifact of the lineage, with the ids of the inputs it was trained from.
pub(crate) struct Node<'a> {
    pub hop: &'a Hop,
    pub id: String,
    pub inputs: Vec<String>,
    /// [`verdict`] of the hop shown.
    pub verdict: &'static str,
}

/// The hops of the tree, each artifact once (a dataset two models share is one
/// component), in depth-first order from the top model. An artifact met more than once
/// shows its worst verdict (a refusal anywhere is not hidden by a pass elsewhere) and
/// the inputs of every occurrence.
pub(crate) fn nodes(report: &LineageReport) -> Vec<Node<'_>> {
    fn rank(hop: &Hop) -> u8 {
        match (&hop.failure, hop.via_vsa) {
            (Some(_), _) => 2,
            (None, true) => 1,
            (None, false) => 0,
        }
    }
    fn walk<'a>(
        hop: &'a Hop,
        out: &mut Vec<Node<'a>>,
        seen: &mut BTreeMap<String, usize>,
        counter: &mut usize,
    ) -> String {
        *counter += 1;
        let id = hop_id(hop, *counter);
        let at = match seen.get(&id) {
            Some(&at) => {
                if rank(hop) > rank(out[at].hop) {
                    out[at].hop = hop;
                }
                at
            }
            None => {
                seen.insert(id.clone(), out.len());
                out.push(Node {
                    hop,
                    id: id.clone(),
                    inputs: Vec::new(),
                    verdict: "",
                });
                out.len() - 1
            }
        };
        // Linear in the report, which is already a tree with every occurrence in it.
        for input in &hop.inputs {
            let input_id = walk(input, out, seen, counter);
            if !out[at].inputs.contains(&input_id) {
                out[at].inputs.push(input_id);
            }
        }
        id
    }
    let mut out = Vec::new();
    walk(&report.root, &mut out, &mut BTreeMap::new(), &mut 0);
    for (i, node) in out.iter_mut().enumerate() {
        node.verdict = verdict(node.hop, i == 0);
    }
    out
}

/// The store files (SHA-256 of each bundle) some hop was accepted on: the manifests,
/// provenances and summaries of hops that passed. Attestations whose signature verified
/// but which a later check refused, or which belong to a refused hop, are not among them.
pub(crate) fn accepted_attestations(report: &LineageReport) -> BTreeSet<&str> {
    fn walk<'a>(hop: &'a Hop, out: &mut BTreeSet<&'a str>) {
        // A refused hop was accepted on nothing, whatever passed before its refusal.
        if hop.failure.is_none() {
            out.extend(
                hop.attestations
                    .iter()
                    .filter_map(|a| a.bundle_sha256.as_deref()),
            );
        }
        for input in &hop.inputs {
            walk(input, out);
        }
    }
    let mut out = BTreeSet::new();
    walk(&report.root, &mut out);
    out
}

/// What a run's provenance lists besides base models and datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaterialKind {
    Code,
    Image,
    Other,
}

/// A run's code, image or other input, as the builder attested it.
pub(crate) struct Material<'a> {
    pub kind: MaterialKind,
    pub descriptor: &'a ResourceDescriptor,
    /// Unique within its run: kind and digests, made safe for an IRI or a bom-ref.
    pub id: String,
}

impl Material<'_> {
    /// A label: the URI, else the name, else the first digest.
    pub fn label(&self) -> String {
        label(self.descriptor)
    }
}

fn label(d: &ResourceDescriptor) -> String {
    d.uri
        .clone()
        .or_else(|| d.name.clone())
        .or_else(|| d.digest.iter().next().map(|(a, h)| format!("{a}:{h}")))
        .unwrap_or_else(|| "(unnamed)".into())
}

/// A material's id before it is made unique: its digests when they are plain words,
/// else a hash of them (digest maps come from the provenance and may hold anything).
fn material_id(kind: MaterialKind, d: &ResourceDescriptor) -> String {
    let kind = match kind {
        MaterialKind::Code => "code",
        MaterialKind::Image => "image",
        MaterialKind::Other => "material",
    };
    let digests: Vec<String> = d.digest.iter().map(|(a, h)| format!("{a}-{h}")).collect();
    let joined = digests.join("-");
    let plain = joined
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !digests.is_empty() && plain && joined.len() <= 200 {
        format!("{kind}-{joined}")
    } else {
        let source = if digests.is_empty() { label(d) } else { joined };
        format!("{kind}-{}", hex::encode(&sha2_label(&source)[..8]))
    }
}

pub(crate) fn sha2_label(text: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// The code, image and other inputs of a run.
pub(crate) fn materials(provenance: &modelseal_core::provenance::Provenance) -> Vec<Material<'_>> {
    let mut seen = BTreeSet::new();
    provenance
        .build_definition
        .resolved_dependencies
        .iter()
        .filter_map(|d| {
            let kind = match dependency_kind(d) {
                Some(DependencyKind::BaseModel | DependencyKind::Dataset) => return None,
                Some(DependencyKind::Code) => MaterialKind::Code,
                Some(DependencyKind::Image) => MaterialKind::Image,
                _ => MaterialKind::Other,
            };
            // The same digests listed twice (under two URIs, say) stay two materials.
            let base = material_id(kind, d);
            let mut id = base.clone();
            let mut n = 1;
            while !seen.insert(id.clone()) {
                n += 1;
                id = format!("{base}-{n}");
            }
            Some(Material {
                kind,
                descriptor: d,
                id,
            })
        })
        .collect()
}

/// A signer in words: policy name, role, and key fingerprint or keyless identity.
pub(crate) fn signer_text(signed: &SignedBy) -> String {
    let who = match (
        &signed.identity.keyless,
        &signed.identity.certificate_subject,
    ) {
        (Some(k), _) => format!("identity {} from {}", k.identity, k.issuer),
        (None, Some(subject)) => {
            format!("certificate {subject}, key {}", signed.identity.fingerprint)
        }
        (None, None) => format!(
            "{} key {}",
            signed.identity.algorithm, signed.identity.fingerprint
        ),
    };
    format!("{} ({}): {who}", signed.signer, signed.role)
}

/// Flattens JSON parameters into `key` -> text pairs (nested keys joined with `.`), for
/// the formats' key-value lists.
pub(crate) fn flatten(value: &serde_json::Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let key = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&key, value, out);
                }
            }
            serde_json::Value::String(s) => {
                out.insert(prefix.to_owned(), s.clone());
            }
            // Nothing was given: not a parameter.
            serde_json::Value::Null => {}
            serde_json::Value::Array(items) if items.is_empty() => {}
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::HopKind;
    use modelseal_core::ArtifactDigest;

    fn hop(kind: HopKind, byte: u8, inputs: Vec<Hop>) -> Hop {
        let mut hop = Hop::new(
            kind,
            None,
            Some(ArtifactDigest::new(
                modelseal_core::DigestAlgorithm::Blake3,
                [byte; 32],
            )),
        );
        hop.inputs = inputs;
        hop
    }

    #[test]
    fn a_shared_input_is_one_node_named_by_both_parents() {
        // chat <- (base <- corpus), corpus: a diamond.
        let corpus = || hop(HopKind::Dataset, 3, vec![]);
        let base = hop(HopKind::Model, 2, vec![corpus()]);
        let chat = hop(HopKind::Model, 1, vec![base, corpus()]);
        let report = LineageReport {
            root: chat,
            attestations: BTreeSet::new(),
        };
        let nodes = nodes(&report);
        assert_eq!(nodes.len(), 3);
        let corpus_id = hop_id(&corpus(), 0);
        assert_eq!(nodes[0].inputs[1], corpus_id);
        assert_eq!(nodes[1].inputs, vec![corpus_id.clone()]);
        assert_eq!(nodes.iter().filter(|n| n.id == corpus_id).count(), 1);
    }

    #[test]
    fn an_artifact_refused_in_one_place_is_refused_in_the_bom_wherever_it_passed_first() {
        // chat <- (base <- corpus ok), corpus refused: the second occurrence must win.
        let corpus = || hop(HopKind::Dataset, 3, vec![]);
        let mut refused = corpus();
        refused.failure = Some(crate::report::HopFailure::Missing {
            predicate_type: "p".into(),
        });
        refused.inputs = vec![hop(HopKind::Dataset, 4, vec![])];
        let base = hop(HopKind::Model, 2, vec![corpus()]);
        let chat = hop(HopKind::Model, 1, vec![base, refused]);
        let report = LineageReport {
            root: chat,
            attestations: BTreeSet::new(),
        };
        let nodes = nodes(&report);
        let corpus_id = hop_id(&corpus(), 0);
        let node = nodes.iter().find(|n| n.id == corpus_id).unwrap();
        assert_eq!(node.verdict, "refused");
        assert_eq!(
            node.inputs.len(),
            1,
            "the refused occurrence's input is kept"
        );
        assert_eq!(nodes.len(), 4);
    }

    fn run_over(datasets: &[u8]) -> modelseal_core::provenance::Provenance {
        let deps: Vec<serde_json::Value> = datasets
            .iter()
            .map(|b| {
                serde_json::json!({
                    "digest": {"blake3": hex::encode([*b; 32])},
                    "annotations": {"modelseal.dev/kind": "dataset"}
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "buildDefinition": {"buildType": "t", "externalParameters": {}, "resolvedDependencies": deps},
            "runDetails": {"builder": {"id": "b"}}
        }))
        .unwrap()
    }

    #[test]
    fn each_run_lists_its_own_inputs_and_an_unsigned_input_is_not_verified() {
        // Failed on main: with two trusted provenances every run listed the union of
        // their inputs, and a dataset nobody signed was labelled verified.
        let model = hop(
            HopKind::Model,
            1,
            vec![
                hop(HopKind::Dataset, 3, vec![]),
                hop(HopKind::Dataset, 4, vec![]),
            ],
        );
        let report = LineageReport {
            root: model,
            attestations: BTreeSet::new(),
        };
        let nodes = nodes(&report);
        let ids: Vec<&String> = nodes[0].inputs.iter().collect();
        assert_eq!(run_inputs(&nodes[0], &run_over(&[3])), [ids[0]]);
        assert_eq!(run_inputs(&nodes[0], &run_over(&[4])), [ids[1]]);
        assert_eq!(
            nodes[0].verdict, "verified",
            "the top model's signature was checked"
        );
        assert_eq!(nodes[1].verdict, "unsigned");
    }

    #[test]
    fn material_ids_are_unique_and_plain_whatever_the_provenance_holds() {
        let provenance: modelseal_core::provenance::Provenance =
            serde_json::from_value(serde_json::json!({
                "buildDefinition": {
                    "buildType": "t",
                    "externalParameters": {},
                    "resolvedDependencies": [
                        {"uri": "git+https://a/x.git", "digest": {"gitCommit": "abc"}},
                        {"uri": "git+https://mirror/x.git", "digest": {"gitCommit": "abc"}},
                        {"uri": "odd", "digest": {"sha256": "a b#c/d"}},
                        {"name": "nothing"},
                    ]
                },
                "runDetails": {"builder": {"id": "b"}}
            }))
            .unwrap();
        let ids: Vec<String> = materials(&provenance).into_iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 4, "{ids:?}");
        assert_eq!(ids[0], "material-gitCommit-abc");
        assert_eq!(ids[1], "material-gitCommit-abc-2");
        for id in &ids {
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{id}"
            );
        }
    }

    #[test]
    fn parameters_flatten_and_leave_out_what_was_not_given() {
        let params = serde_json::json!({"hyperparameters": {"lr": "0.1", "epochs": 3}, "entryPoint": null, "configs": []});
        let flat = flatten(&params);
        assert_eq!(
            flat.get("hyperparameters.lr").map(String::as_str),
            Some("0.1")
        );
        assert_eq!(
            flat.get("hyperparameters.epochs").map(String::as_str),
            Some("3")
        );
        assert_eq!(flat.len(), 2);
    }

    #[test]
    fn serials_are_version_4_uuids() {
        let uuid = uuid_v4([0xff; 16]);
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"));
    }
}
