//! SPDX 3.0.1 JSON-LD with the AI, Dataset and Build profiles (`spec/bom.md` §4): every
//! model hop an `ai_AIPackage`, every dataset a `dataset_DatasetPackage`, the lineage as
//! `descendantOf` and `trainedOn` relationships, each training run a `build_Build`, each
//! signer an agent, and each hop's verdict a review `Annotation` on it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{BomInput, Material, MaterialKind, Node, flatten, materials, nodes};
use crate::report::{HopKind, SignedBy, TrainingRun};

/// The JSON-LD context of SPDX 3.0.1.
pub const CONTEXT: &str = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld";
/// The id of the one creation info every element shares.
const CREATION: &str = "_:creationinfo";

struct Graph {
    ns: String,
    elements: Vec<Value>,
    ids: Vec<String>,
    agents: BTreeMap<String, String>,
    seq: usize,
}

impl Graph {
    fn id(&self, local: &str) -> String {
        format!("{}#{local}", self.ns)
    }

    /// Adds an element (with its creation info) and returns its id.
    fn add(&mut self, local: &str, kind: &str, mut fields: Value) -> String {
        let id = self.id(local);
        fields["type"] = kind.into();
        fields["spdxId"] = id.clone().into();
        fields["creationInfo"] = CREATION.into();
        self.elements.push(fields);
        self.ids.push(id.clone());
        id
    }

    fn relate(&mut self, from: &str, kind: &str, to: Vec<String>, build_scope: bool) -> String {
        self.seq += 1;
        let local = format!("rel-{}", self.seq);
        let mut fields = json!({"from": from, "relationshipType": kind, "to": to});
        if build_scope {
            fields["scope"] = "build".into();
            self.add(&local, "LifecycleScopedRelationship", fields)
        } else {
            self.add(&local, "Relationship", fields)
        }
    }

    fn annotate(&mut self, subject: &str, statement: &Value) {
        self.seq += 1;
        let local = format!("annotation-{}", self.seq);
        self.add(
            &local,
            "Annotation",
            json!({
                "annotationType": "review",
                "subject": subject,
                "contentType": "application/json",
                "statement": statement.to_string(),
            }),
        );
    }

    /// The agent element for a signer (one per key or identity, role and policy name).
    fn agent(&mut self, signed: &SignedBy) -> String {
        let (key, identifier) = match &signed.identity.keyless {
            Some(k) => (
                format!("{} {}", k.identity, k.issuer),
                json!({
                    "type": "ExternalIdentifier",
                    "externalIdentifierType": if k.identity.contains('@') { "email" } else { "urlScheme" },
                    "identifier": k.identity,
                    "issuingAuthority": k.issuer,
                    "comment": "Sigstore keyless identity (certificate SAN) and OIDC issuer, verified",
                }),
            ),
            None => {
                let fp = signed.identity.fingerprint.to_string();
                (
                    fp.clone(),
                    json!({
                        "type": "ExternalIdentifier",
                        "externalIdentifierType": "other",
                        "identifier": fp,
                        "issuingAuthority": "modelseal",
                        "comment": format!("{} public key fingerprint", signed.identity.algorithm),
                    }),
                )
            }
        };
        // One key may sign in two roles under two policy names: one agent for each.
        let key = format!("{key} {} {}", signed.role, signed.signer);
        if let Some(id) = self.agents.get(&key) {
            return id.clone();
        }
        let local = format!("agent-{}", &hex::encode(super::sha2_label(&key))[..16]);
        let id = self.add(
            &local,
            "Agent",
            json!({
                "name": signed.signer,
                "externalIdentifier": [identifier],
                "comment": format!("trusted by the policy as {} (policy name {})", signed.role, signed.signer),
            }),
        );
        self.agents.insert(key, id.clone());
        id
    }
}

fn signer_json(signed: &SignedBy) -> Value {
    json!({
        "role": signed.role,
        "name": signed.signer,
        "predicateType": signed.predicate_type,
        "keyFingerprint": signed.identity.fingerprint.to_string(),
        "identity": signed.identity.keyless.as_ref().map(|k| &k.identity),
        "issuer": signed.identity.keyless.as_ref().map(|k| &k.issuer),
        "certificate": signed.identity.certificate_subject,
        "signedAt": signed.signed_at(),
        "bundleSha256": signed.bundle_sha256,
    })
}

/// SPDX times are exactly `YYYY-MM-DDTHH:MM:SSZ`: anything RFC 3339 is normalised to
/// that, anything else is left out (and kept in the run's annotation as signed).
fn spdx_time(text: &str) -> Option<String> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let utc = parsed.to_offset(time::UtcOffset::UTC);
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    ))
}

fn dictionary(params: &Value) -> Vec<Value> {
    flatten(params)
        .into_iter()
        .map(|(key, value)| json!({"type": "DictionaryEntry", "key": key, "value": value}))
        .collect()
}

/// The document as JSON-LD.
pub fn document(input: &BomInput<'_>) -> Value {
    let mut g = Graph {
        ns: format!("urn:uuid:{}", input.uuid()),
        elements: Vec::new(),
        ids: Vec::new(),
        agents: BTreeMap::new(),
        seq: 0,
    };
    let tool_agent = g.add("modelseal", "SoftwareAgent", json!({"name": "modelseal"}));
    let tool = g.add(
        "modelseal-tool",
        "Tool",
        json!({"name": format!("modelseal {}", input.tool_version)}),
    );
    let cc0 = g.add(
        "license-cc0",
        "simplelicensing_LicenseExpression",
        json!({"simplelicensing_licenseExpression": "CC0-1.0"}),
    );
    let nodes = nodes(input.report);
    // Every package first, so relationships can name them.
    let mut package_ids = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let signers: Vec<&SignedBy> = if i == 0 {
            std::iter::once(&input.signature)
                .chain(&node.hop.attestations)
                .collect()
        } else {
            node.hop.attestations.iter().collect()
        };
        package_ids.push(package(&mut g, node, i == 0, &signers, input));
    }
    for (node, id) in nodes.iter().zip(&package_ids) {
        let position = |input_id: &String| nodes.iter().position(|n| n.id == *input_id);
        let mut base = Vec::new();
        let mut data = Vec::new();
        for input_id in &node.inputs {
            if let Some(p) = position(input_id) {
                match nodes[p].hop.kind {
                    HopKind::Dataset => data.push(package_ids[p].clone()),
                    _ => base.push(package_ids[p].clone()),
                }
            }
        }
        if !base.is_empty() {
            g.relate(id, "descendantOf", base, false);
        }
        if !data.is_empty() {
            g.relate(id, "trainedOn", data, false);
        }
        for run in &node.hop.runs {
            let inputs: Vec<String> = super::run_inputs(node, &run.provenance)
                .into_iter()
                .filter_map(|i| position(i).map(|p| package_ids[p].clone()))
                .collect();
            build(&mut g, node, run, id, inputs);
        }
    }
    files(&mut g, input, &package_ids[0]);
    let document_id = g.id("document");
    let mut elements = g.ids.clone();
    elements.retain(|e| *e != document_id);
    let document = json!({
        "type": "SpdxDocument",
        "spdxId": document_id,
        "creationInfo": CREATION,
        "name": format!("AI BOM of {}", nodes[0].hop.display_name()),
        "dataLicense": cc0,
        "profileConformance": ["core", "software", "ai", "dataset", "build", "simpleLicensing"],
        "rootElement": [package_ids[0]],
        "element": elements,
        "comment": format!(
            "Built by modelseal from verified attestations only; lineage {}. A refused element is marked UNVERIFIED and is not proven.",
            if input.report.passed() { "passed" } else { "REFUSED" }
        ),
    });
    let mut graph = vec![json!({
        "type": "CreationInfo",
        "@id": CREATION,
        "specVersion": "3.0.1",
        "created": spdx_time(&input.created).unwrap_or_else(|| input.created.clone()),
        "createdBy": [tool_agent],
        "createdUsing": [tool],
    })];
    graph.push(document);
    graph.extend(g.elements);
    json!({"@context": CONTEXT, "@graph": graph})
}

/// A hop's package: its digest, who supplied it, its verdict in words and as a review.
fn package(
    g: &mut Graph,
    node: &Node<'_>,
    top: bool,
    signers: &[&SignedBy],
    input: &BomInput<'_>,
) -> String {
    let hop = node.hop;
    let verdict_word = node.verdict;
    let mut fields = json!({"name": hop.display_name()});
    if let Some(d) = &hop.digest {
        fields["verifiedUsing"] = json!([{
            "type": "Hash",
            "algorithm": d.algorithm().name(),
            "hashValue": d.to_hex(),
        }]);
    }
    let comment = match &hop.failure {
        Some(failure) => format!(
            "UNVERIFIED: modelseal refused this {} ({}: {failure}); its digest is as the provenance of the model trained from it claims",
            hop.kind.name(),
            failure.kind()
        ),
        None if hop.via_vsa => format!(
            "modelseal: {verdict_word}; accepted on a verification summary, its inputs were not walked"
        ),
        None if verdict_word == "unsigned" => format!(
            "modelseal: {verdict_word}; no signer the policy trusts signed this {} itself (the policy does not require it); its digest is as the provenance of the model trained from it states",
            hop.kind.name()
        ),
        None => format!(
            "modelseal: {verdict_word}; every statement about it was signed by a signer the policy trusts for its role"
        ),
    };
    fields["comment"] = comment.into();
    // The one who signed the artifact itself (publisher or curator) supplied it.
    let own: Vec<&&SignedBy> = signers
        .iter()
        .filter(|s| s.role == "model-publisher" || s.role == "dataset-curator")
        .collect();
    if let Some(first) = own.first() {
        let agent = g.agent(first);
        fields["suppliedBy"] = agent.into();
    }
    let (kind, local) = match hop.kind {
        HopKind::Dataset => {
            fields["software_primaryPurpose"] = "data".into();
            fields["dataset_datasetType"] = json!(["noAssertion"]);
            ("dataset_DatasetPackage", node.id.clone())
        }
        _ => {
            fields["software_primaryPurpose"] = "model".into();
            if top {
                let params: Vec<Value> = hop
                    .runs
                    .iter()
                    .flat_map(|r| dictionary(&r.provenance.build_definition.external_parameters))
                    .collect();
                if !params.is_empty() {
                    fields["ai_hyperparameter"] = Value::Array(params);
                }
                if let Some(end) = hop
                    .runs
                    .iter()
                    .find_map(|r| {
                        r.provenance
                            .run_details
                            .metadata
                            .as_ref()?
                            .finished_on
                            .as_deref()
                    })
                    .and_then(spdx_time)
                {
                    fields["builtTime"] = end.into();
                }
                if input.card.is_some() {
                    fields["ai_informationAboutTraining"] =
                        "see the model card this document links with hasDocumentation".into();
                }
            }
            ("ai_AIPackage", node.id.clone())
        }
    };
    let id = g.add(&local, kind, fields);
    // The AI and Dataset profiles want a declared and a concluded licence: the signed
    // statements carry none, so both are NoAssertion, never a guess.
    for relation in ["hasDeclaredLicense", "hasConcludedLicense"] {
        g.relate(
            &id,
            relation,
            vec!["expandedlicensing_NoAssertionLicense".into()],
            false,
        );
    }
    let mut statement = json!({
        "modelseal:verdict": verdict_word,
        "signers": signers.iter().map(|s| signer_json(s)).collect::<Vec<_>>(),
    });
    if let Some(failure) = &hop.failure {
        statement["failure"] = json!({"kind": failure.kind(), "message": failure.to_string()});
    }
    if hop.name.is_none() {
        if let Some(claimed) = &hop.claimed_name {
            statement["claimedName"] = claimed.clone().into();
            statement["claimedNameEvidence"] =
                "named only by the provenance of the model trained from it".into();
        }
    }
    g.annotate(&id, &statement);
    id
}

/// A training run: a `build_Build` with its times and parameters, its inputs and output,
/// the builder that ran it, and who attested it.
fn build(g: &mut Graph, node: &Node<'_>, run: &TrainingRun, output: &str, mut inputs: Vec<String>) {
    let provenance = &run.provenance;
    g.seq += 1;
    let local = format!("run-{}", g.seq);
    let metadata = provenance.run_details.metadata.as_ref();
    let mut fields = json!({
        "name": format!("training run of {}", node.hop.display_name()),
        "build_buildType": provenance.build_definition.build_type,
    });
    if let Some(id) = metadata.and_then(|m| m.invocation_id.clone()) {
        fields["build_buildId"] = id.into();
    }
    if let Some(t) = metadata
        .and_then(|m| m.started_on.as_deref())
        .and_then(spdx_time)
    {
        fields["build_buildStartTime"] = t.into();
    }
    if let Some(t) = metadata
        .and_then(|m| m.finished_on.as_deref())
        .and_then(spdx_time)
    {
        fields["build_buildEndTime"] = t.into();
    }
    let params = dictionary(&provenance.build_definition.external_parameters);
    if !params.is_empty() {
        fields["build_parameter"] = Value::Array(params);
    }
    let mut environment = Vec::new();
    let materials = materials(provenance);
    for m in &materials {
        let d = m.descriptor;
        match m.kind {
            MaterialKind::Code => {
                if let Some(uri) = &d.uri {
                    fields["build_configSourceUri"] = json!([uri]);
                }
                if let Some(commit) = d.digest.get("gitCommit").filter(|c| c.len() == 40) {
                    fields["build_configSourceDigest"] =
                        json!([{"type": "Hash", "algorithm": "sha1", "hashValue": commit}]);
                }
            }
            MaterialKind::Image => {
                let digest = d.digest.get("sha256").map(|h| format!("@sha256:{h}"));
                environment.push(json!({
                    "type": "DictionaryEntry",
                    "key": "image",
                    "value": format!("{}{}", m.label(), digest.unwrap_or_default()),
                }));
            }
            MaterialKind::Other => {}
        }
    }
    if !environment.is_empty() {
        fields["build_environment"] = Value::Array(environment);
    }
    let id = g.add(&local, "build_Build", fields);
    for m in &materials {
        inputs.push(material_package(g, m, &local));
    }
    if !inputs.is_empty() {
        g.relate(&id, "hasInput", inputs, true);
    }
    g.relate(&id, "hasOutput", vec![output.to_owned()], true);
    let builder = &provenance.run_details.builder.id;
    g.seq += 1;
    let builder_local = format!("builder-{}", g.seq);
    let builder_id = g.add(
        &builder_local,
        "SoftwareAgent",
        json!({
            "name": builder,
            "externalIdentifier": [{
                "type": "ExternalIdentifier",
                "externalIdentifierType": "urlScheme",
                "identifier": builder,
                "comment": "SLSA builder id, as the trusted training builder signed it",
            }],
        }),
    );
    g.relate(&id, "invokedBy", vec![builder_id], false);
    let attester = g.agent(&run.signed_by);
    g.annotate(
        &id,
        &json!({
            "modelseal:verdict": "attested",
            "attestedBy": attester,
            "signer": signer_json(&run.signed_by),
            "evidence": "the run, its code and image are as the trusted builder attested; modelseal did not check the code or image themselves",
            "startedOn": metadata.and_then(|m| m.started_on.clone()),
            "finishedOn": metadata.and_then(|m| m.finished_on.clone()),
        }),
    );
}

fn material_package(g: &mut Graph, m: &Material<'_>, run: &str) -> String {
    let d = m.descriptor;
    let mut fields = json!({
        "name": m.label(),
        "software_primaryPurpose": match m.kind {
            MaterialKind::Code => "source",
            MaterialKind::Image => "container",
            MaterialKind::Other => "other",
        },
        "comment": "as the training builder attested it; not verified by modelseal",
    });
    let hashes: Vec<Value> = d
        .digest
        .iter()
        .filter_map(|(alg, hex)| {
            let alg = match alg.as_str() {
                "sha256" => "sha256",
                "sha512" => "sha512",
                "blake3" => "blake3",
                "gitCommit" if hex.len() == 40 => "sha1",
                _ => return None,
            };
            Some(json!({"type": "Hash", "algorithm": alg, "hashValue": hex}))
        })
        .collect();
    if !hashes.is_empty() {
        fields["verifiedUsing"] = Value::Array(hashes);
    }
    if let (MaterialKind::Code, Some(uri)) = (m.kind, &d.uri) {
        fields["software_downloadLocation"] = uri.clone().into();
        if let Some(commit) = d.digest.get("gitCommit") {
            fields["software_packageVersion"] = commit.clone().into();
        }
    }
    g.add(&format!("{run}-{}", m.id), "software_Package", fields)
}

/// The top model's files, and its model card as documentation.
fn files(g: &mut Graph, input: &BomInput<'_>, model: &str) {
    let mut ids = Vec::new();
    let mut card_id = None;
    for (i, f) in input.files.iter().enumerate() {
        let is_card = input.card.as_ref().is_some_and(|c| c.path == f.path);
        let mut fields = json!({
            "name": f.path,
            "verifiedUsing": [{"type": "Hash", "algorithm": "blake3", "hashValue": f.blake3}],
            "comment": format!("{} bytes; a signed file of the model, verified byte for byte", f.size),
        });
        if is_card {
            fields["software_primaryPurpose"] = "documentation".into();
        }
        let id = g.add(&format!("file-{i}"), "software_File", fields);
        if is_card {
            card_id = Some(id.clone());
        }
        ids.push(id);
    }
    if !ids.is_empty() {
        g.relate(model, "contains", ids.clone(), false);
    }
    if let Some(card) = card_id {
        g.relate(model, "hasDocumentation", vec![card], false);
    }
}
