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

/// The verdict words both formats carry.
pub(crate) fn verdict(hop: &Hop) -> &'static str {
    match (&hop.failure, hop.via_vsa) {
        (Some(_), _) => "refused",
        (None, true) => "verified-by-summary",
        (None, false) => "verified",
    }
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
}

/// The hops of the tree, each artifact once (a dataset two models share is one
/// component), in depth-first order from the top model.
pub(crate) fn nodes(report: &LineageReport) -> Vec<Node<'_>> {
    fn walk<'a>(
        hop: &'a Hop,
        out: &mut Vec<Node<'a>>,
        seen: &mut BTreeSet<String>,
        counter: &mut usize,
    ) -> String {
        *counter += 1;
        let id = hop_id(hop, *counter);
        if !seen.insert(id.clone()) {
            return id;
        }
        let at = out.len();
        out.push(Node {
            hop,
            id: id.clone(),
            inputs: Vec::new(),
        });
        let inputs: Vec<String> = hop
            .inputs
            .iter()
            .map(|input| walk(input, out, seen, counter))
            .collect();
        out[at].inputs = inputs;
        id
    }
    let mut out = Vec::new();
    walk(&report.root, &mut out, &mut BTreeSet::new(), &mut 0);
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
}

impl Material<'_> {
    /// A label: the URI, else the name, else the first digest.
    pub fn label(&self) -> String {
        let d = self.descriptor;
        d.uri
            .clone()
            .or_else(|| d.name.clone())
            .or_else(|| d.digest.iter().next().map(|(a, h)| format!("{a}:{h}")))
            .unwrap_or_else(|| "(unnamed)".into())
    }

    /// A stable id: kind and digests.
    pub fn id(&self) -> String {
        let kind = match self.kind {
            MaterialKind::Code => "code",
            MaterialKind::Image => "image",
            MaterialKind::Other => "material",
        };
        let digests: Vec<String> = self
            .descriptor
            .digest
            .iter()
            .map(|(a, h)| format!("{a}-{h}"))
            .collect();
        if digests.is_empty() {
            format!("{kind}-{}", hex::encode(&sha2_label(&self.label())[..8]))
        } else {
            format!("{kind}-{}", digests.join("-"))
        }
    }
}

pub(crate) fn sha2_label(text: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// The code, image and other inputs of a run.
pub(crate) fn materials(provenance: &modelseal_core::provenance::Provenance) -> Vec<Material<'_>> {
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
            Some(Material {
                kind,
                descriptor: d,
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
