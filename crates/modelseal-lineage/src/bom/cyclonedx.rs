//! CycloneDX 1.6 JSON ML-BOM (`spec/bom.md` §3): the top model as
//! `metadata.component`, every other hop as a `machine-learning-model` or `data`
//! component, the training runs as `formulation`, and the lineage as `dependencies`.
//! modelseal's facts that CycloneDX has no field for are `modelseal:` properties.

use serde_json::{Value, json};

use super::{BomInput, Material, MaterialKind, Node, flatten, materials, nodes, signer_text};
use crate::report::{Hop, HopKind, SignedBy, TrainingRun};

/// The specification version written.
pub const SPEC_VERSION: &str = "1.6";

/// The BOM as JSON.
pub fn document(input: &BomInput<'_>) -> Value {
    let nodes = nodes(input.report);
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let mut top = component(&nodes[0], &[&input.signature]);
    top["modelCard"] = model_card(input, &nodes);
    top["components"] = input
        .files
        .iter()
        .map(|f| {
            json!({
                "type": "file",
                "bom-ref": format!("{}/{}", nodes[0].id, f.path),
                "name": f.path,
                "hashes": [{"alg": "BLAKE3", "content": f.blake3}],
                "properties": [prop("modelseal:size", f.size.to_string())],
            })
        })
        .collect();
    if let Some(card) = &input.card {
        top["externalReferences"] = json!([{
            "type": "model-card",
            "url": card.path,
            "hashes": [{"alg": "BLAKE3", "content": card.blake3}],
            "comment": "a signed file of the model, verified",
        }]);
    }
    let mut formulation = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for (r, run) in node.hop.runs.iter().enumerate() {
            formulation.push(formula(node, run, &format!("run-{n}-{r}"), &ids));
        }
    }
    let attestations: Vec<Value> = super::accepted_attestations(input.report)
        .into_iter()
        .map(|sha| prop("modelseal:attestation:sha256", sha.to_owned()))
        .collect();
    let mut metadata_props = vec![
        prop(
            "modelseal:lineage:verdict",
            if input.report.passed() { "passed" } else { "refused" }.to_owned(),
        ),
        prop(
            "modelseal:evidence",
            "every component, hash, signer and run here comes from attestations modelseal verified against the policy; a refused component is not proven".to_owned(),
        ),
    ];
    metadata_props.extend(attestations);
    let mut doc = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": format!("urn:uuid:{}", input.uuid()),
        "version": 1,
        "metadata": {
            "timestamp": input.created,
            "lifecycles": [{"phase": "post-build"}],
            "tools": {"components": [{
                "type": "application",
                "name": "modelseal",
                "version": input.tool_version,
            }]},
            "component": top,
            "properties": metadata_props,
        },
        "components": nodes[1..].iter().map(|n| component(n, &[])).collect::<Vec<_>>(),
        "dependencies": nodes.iter().map(|n| json!({"ref": n.id, "dependsOn": n.inputs})).collect::<Vec<_>>(),
    });
    if !formulation.is_empty() {
        doc["formulation"] = Value::Array(formulation);
    }
    doc
}

fn prop(name: &str, value: String) -> Value {
    json!({"name": name, "value": value})
}

/// A hop as a component: its kind, signed name, digest, verdict and signers.
fn component(node: &Node<'_>, extra_signers: &[&SignedBy]) -> Value {
    let hop = node.hop;
    let mut props = vec![prop("modelseal:verdict", node.verdict.to_owned())];
    if let Some(failure) = &hop.failure {
        props.push(prop("modelseal:verdict:kind", failure.kind().to_owned()));
        props.push(prop("modelseal:verdict:reason", failure.to_string()));
    }
    if hop.via_vsa {
        props.push(prop(
            "modelseal:lineage",
            "accepted on a verification summary; its inputs were not walked".to_owned(),
        ));
    }
    if hop.name.is_none() {
        if let Some(claimed) = &hop.claimed_name {
            props.push(prop("modelseal:claimedName", claimed.clone()));
            props.push(prop(
                "modelseal:claimedName:evidence",
                "named only by the provenance of the model trained from it; no trusted signer of this artifact named it".to_owned(),
            ));
        }
    }
    for signed in extra_signers.iter().copied().chain(&hop.attestations) {
        props.extend(signer_props(signed));
    }
    let mut c = json!({
        "type": if hop.kind == HopKind::Dataset { "data" } else { "machine-learning-model" },
        "bom-ref": node.id,
        "name": name(hop),
        "properties": props,
    });
    if let Some(d) = &hop.digest {
        let alg = match d.algorithm() {
            modelseal_core::DigestAlgorithm::Blake3 => "BLAKE3",
            _ => "SHA-256",
        };
        c["hashes"] = json!([{"alg": alg, "content": d.to_hex()}]);
    }
    if hop.kind == HopKind::Dataset {
        c["data"] = json!([{"type": "dataset", "name": name(hop)}]);
    }
    c
}

/// The signed name; without one, the claimed name marked as a claim, or the digest.
fn name(hop: &Hop) -> String {
    match (&hop.name, &hop.claimed_name) {
        (Some(name), _) => name.clone(),
        (None, Some(claimed)) => format!("{claimed} (unverified name)"),
        (None, None) => hop.digest_text(),
    }
}

fn signer_props(signed: &SignedBy) -> Vec<Value> {
    let mut props = vec![
        prop("modelseal:signer", signer_text(signed)),
        prop("modelseal:signer:role", signed.role.to_owned()),
        prop("modelseal:signer:name", signed.signer.clone()),
        prop(
            "modelseal:signer:predicateType",
            signed.predicate_type.clone(),
        ),
        prop(
            "modelseal:signer:keyFingerprint",
            signed.identity.fingerprint.to_string(),
        ),
    ];
    if let Some(k) = &signed.identity.keyless {
        props.push(prop("modelseal:signer:identity", k.identity.clone()));
        props.push(prop("modelseal:signer:issuer", k.issuer.clone()));
    }
    if let Some(subject) = &signed.identity.certificate_subject {
        props.push(prop("modelseal:signer:certificate", subject.clone()));
    }
    if let Some(at) = signed.signed_at() {
        props.push(prop("modelseal:signer:signedAt", at.to_string()));
    }
    if let Some(sha) = &signed.bundle_sha256 {
        props.push(prop("modelseal:signer:bundleSha256", sha.clone()));
    }
    props
}

/// The top model's card: its datasets (refs to the data components) and the
/// hyperparameters its runs were given.
fn model_card(input: &BomInput<'_>, nodes: &[Node<'_>]) -> Value {
    let top = &nodes[0];
    let datasets: Vec<Value> = top
        .hop
        .inputs
        .iter()
        .zip(&top.inputs)
        .filter(|(hop, _)| hop.kind == HopKind::Dataset)
        .map(|(_, id)| json!({"ref": id}))
        .collect();
    let mut card = json!({});
    if !datasets.is_empty() {
        card["modelParameters"] = json!({"datasets": datasets});
    }
    let mut props = Vec::new();
    for run in &top.hop.runs {
        let params = &run.provenance.build_definition.external_parameters;
        for (key, value) in flatten(params) {
            props.push(prop(&format!("modelseal:parameter:{key}"), value));
        }
    }
    if let Some(card_file) = &input.card {
        props.push(prop("modelseal:modelCard:path", card_file.path.clone()));
    }
    if !props.is_empty() {
        card["properties"] = Value::Array(props);
    }
    card
}

/// One training run: the code and image it used, the workflow with its times, inputs,
/// parameters and output, and who attested it.
fn formula(node: &Node<'_>, run: &TrainingRun, run_id: &str, ids: &[&str]) -> Value {
    let provenance = &run.provenance;
    let materials = materials(provenance);
    let material_ref = |m: &Material<'_>| format!("{run_id}/{}", m.id);
    let components: Vec<Value> = materials
        .iter()
        .map(|m| material_component(m, &material_ref(m)))
        .collect();
    let mut inputs: Vec<Value> = super::run_inputs(node, &run.provenance)
        .into_iter()
        .filter(|id| ids.contains(&id.as_str()))
        .map(|id| json!({"resource": {"ref": id}}))
        .collect();
    inputs.extend(
        materials
            .iter()
            .map(|m| json!({"resource": {"ref": material_ref(m)}})),
    );
    let parameters: Vec<Value> = flatten(&provenance.build_definition.external_parameters)
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    if !parameters.is_empty() {
        inputs.push(json!({"parameters": parameters}));
    }
    let builder = &provenance.run_details.builder.id;
    let mut resource_refs: Vec<Value> = materials
        .iter()
        .map(|m| json!({"ref": material_ref(m)}))
        .collect();
    resource_refs.push(json!({"externalReference": {"type": "build-system", "url": builder}}));
    let metadata = provenance.run_details.metadata.as_ref();
    let mut props = vec![
        prop("modelseal:builder:id", builder.clone()),
        prop(
            "modelseal:buildType",
            provenance.build_definition.build_type.clone(),
        ),
        prop(
            "modelseal:evidence",
            "attested by the training builder below; the code and image themselves were not verified by modelseal".to_owned(),
        ),
    ];
    props.extend(signer_props(&run.signed_by));
    if let Some(internal) = &provenance.build_definition.internal_parameters {
        for (key, value) in flatten(internal) {
            props.push(prop(&format!("modelseal:internalParameter:{key}"), value));
        }
    }
    let mut workflow = json!({
        "bom-ref": format!("{run_id}/workflow"),
        "uid": metadata.and_then(|m| m.invocation_id.clone()).unwrap_or_else(|| run_id.to_owned()),
        "name": format!("training run of {}", name(node.hop)),
        "taskTypes": ["build"],
        "resourceReferences": resource_refs,
        "inputs": inputs,
        "outputs": [{"type": "artifact", "resource": {"ref": node.id}}],
        "properties": props,
    });
    if let Some(start) = metadata.and_then(|m| m.started_on.clone()) {
        workflow["timeStart"] = start.into();
    }
    if let Some(end) = metadata.and_then(|m| m.finished_on.clone()) {
        workflow["timeEnd"] = end.into();
    }
    json!({
        "bom-ref": run_id,
        "components": components,
        "workflows": [workflow],
    })
}

fn material_component(m: &Material<'_>, bom_ref: &str) -> Value {
    let d = m.descriptor;
    let mut c = json!({
        "type": match m.kind {
            MaterialKind::Code => "application",
            MaterialKind::Image => "container",
            MaterialKind::Other => "file",
        },
        "bom-ref": bom_ref,
        "name": m.label(),
    });
    let mut hashes = Vec::new();
    for (alg, hex) in &d.digest {
        match alg.as_str() {
            "sha256" => hashes.push(json!({"alg": "SHA-256", "content": hex})),
            "sha512" => hashes.push(json!({"alg": "SHA-512", "content": hex})),
            "blake3" => hashes.push(json!({"alg": "BLAKE3", "content": hex})),
            "gitCommit" => {
                c["version"] = hex.clone().into();
                c["pedigree"] = json!({"commits": [{"uid": hex}]});
            }
            _ => {}
        }
    }
    if !hashes.is_empty() {
        c["hashes"] = Value::Array(hashes);
    }
    if m.kind == MaterialKind::Code {
        if let Some(uri) = &d.uri {
            c["externalReferences"] = json!([{"type": "vcs", "url": uri}]);
        }
    }
    c
}
