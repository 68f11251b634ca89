//! `admission.k8s.io/v1` AdmissionReview: the parts read and written (`spec/admission.md`
//! §2). Small hand-written types: the full Kubernetes API types are not needed.

use serde_json::Value;

/// Annotation naming the model an object runs, as `blake3:HEX` (several: comma-separated).
pub const MODEL_ANNOTATION: &str = "modelseal.dev/model";
/// Optional annotation naming the model, for messages.
pub const MODEL_NAME_ANNOTATION: &str = "modelseal.dev/model-name";
/// Annotation listing (comma-separated) the names of a Pod's containers whose images are
/// models (KServe's `modelcar`, say): their images are verified as OCI models.
pub const MODEL_CONTAINERS_ANNOTATION: &str = "modelseal.dev/model-containers";

/// An AdmissionReview request, as far as it is read.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// Must be `admission.k8s.io/v1`.
    pub api_version: String,
    /// Must be `AdmissionReview`.
    pub kind: String,
    /// The request; absent is refused.
    pub request: Option<Request>,
}

/// `request`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Echoed in the response; required.
    #[serde(default)]
    pub uid: String,
    /// The object being admitted: only the fields read are kept, the rest is skipped
    /// as it is parsed, so a large object costs no memory beyond its body. Absent or
    /// `null` (a DELETE review carries `oldObject` instead) is an object naming nothing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub object: Object,
    /// Whether the request is a dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// Namespace, for logs.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The parts of an object that name its model.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Object {
    /// `metadata`.
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    /// `spec` (workloads carry a pod template in it).
    pub spec: Option<Spec>,
}

/// `metadata` (or a pod template's).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// The object's name, for logs.
    pub name: Option<String>,
    /// Only modelseal's annotations.
    pub annotations: Option<Annotations>,
}

/// modelseal's annotations; others are skipped.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Annotations {
    /// [`MODEL_ANNOTATION`].
    #[serde(rename = "modelseal.dev/model")]
    pub model: Option<String>,
    /// [`MODEL_NAME_ANNOTATION`].
    #[serde(rename = "modelseal.dev/model-name")]
    pub model_name: Option<String>,
    /// [`MODEL_CONTAINERS_ANNOTATION`].
    #[serde(rename = "modelseal.dev/model-containers")]
    pub model_containers: Option<String>,
    /// [`KSERVE_SOURCE_URI_ANNOTATION`]: KServe's pod mutator turns it into a storage
    /// initializer (or a modelcar) that fetches and serves this model, so it names a
    /// model like `storageUri`.
    #[serde(rename = "internal.serving.kserve.io/storage-initializer-sourceuri")]
    pub kserve_source_uri: Option<String>,
}

/// The annotation KServe's pod mutator reads a pod's model from.
pub const KSERVE_SOURCE_URI_ANNOTATION: &str =
    "internal.serving.kserve.io/storage-initializer-sourceuri";

/// `spec`, as far as it is read: a Pod's, a workload's (with its pod template), or a
/// KServe InferenceService's.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Spec {
    /// A workload's pod template (a Job's, a Deployment's…).
    pub template: Option<Template>,
    /// A CronJob's job template: its `spec` is a Job's, with its own pod template.
    pub job_template: Option<Template>,
    /// A Pod's containers (their images count as models only when named by
    /// [`MODEL_CONTAINERS_ANNOTATION`]).
    #[serde(deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
    /// A Pod's init containers (likewise).
    #[serde(deserialize_with = "null_as_default")]
    pub init_containers: Vec<Container>,
    /// A Pod's volumes: `image` volumes are models.
    #[serde(deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
    /// A KServe InferenceService's predictor.
    pub predictor: Option<Predictor>,
    /// A KServe InferenceService's transformer (a pod spec of its own).
    pub transformer: Option<Predictor>,
    /// A KServe InferenceService's explainer (likewise).
    pub explainer: Option<Predictor>,
    /// A KServe LLMInferenceService's model (`spec.model.uri`).
    pub model: Option<StorageUri>,
    /// A KServe LLMInferenceService's worker pod spec (multi-node serving).
    pub worker: Option<Template>,
    /// A KServe LLMInferenceService's prefill workload: a spec with a `template`, a
    /// `worker` and a `model` of its own.
    pub prefill: Option<Box<Spec>>,
    /// A KServe LLMInferenceService's `baseRefs`: LLMInferenceServiceConfig objects the
    /// controller merges under this spec, which can name models this request does not
    /// show. Only whether there are any is read.
    #[serde(deserialize_with = "null_as_default")]
    pub base_refs: Vec<serde::de::IgnoredAny>,
}

/// `spec.template`: a workload's pod template (`metadata` and `spec`), or, in a KServe
/// LLMInferenceService (`template`, `worker`), a pod spec itself. Both shapes are read.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Template {
    /// Its metadata.
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    /// Its pod spec.
    pub spec: Option<Box<Spec>>,
    /// The pod spec fields written in the template itself.
    #[serde(flatten)]
    pub pod: Box<Spec>,
}

/// A container: its name, image and environment.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Container {
    /// `name`.
    pub name: String,
    /// `image`.
    pub image: Option<String>,
    /// `env`: KServe reads a custom container's model from `STORAGE_URI`.
    #[serde(deserialize_with = "null_as_default")]
    pub env: Vec<EnvVar>,
}

/// `env[]`, as far as a literal value goes.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct EnvVar {
    /// `name`.
    pub name: String,
    /// `value` (a `valueFrom` is not followed).
    pub value: Option<String>,
}

/// The environment variable KServe takes a container's model from, as `storageUri`.
pub const STORAGE_URI_ENV: &str = "STORAGE_URI";

/// A volume, as far as an `image` volume source goes.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Volume {
    /// `image` (Kubernetes image volumes).
    pub image: Option<ImageVolume>,
}

/// `volumes[].image`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ImageVolume {
    /// `reference`.
    pub reference: Option<String>,
}

/// KServe `spec.predictor`: `model.storageUri`, `<framework>.storageUri`, `storageUris`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Predictor {
    /// The pod spec KServe embeds in each component: its containers (models when named
    /// by [`MODEL_CONTAINERS_ANNOTATION`]), init containers and `image` volumes.
    #[serde(deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
    /// Init containers of the embedded pod spec.
    #[serde(deserialize_with = "null_as_default")]
    pub init_containers: Vec<Container>,
    /// Volumes of the embedded pod spec.
    #[serde(deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
    /// `storageUris[].uri`.
    #[serde(deserialize_with = "null_as_default")]
    pub storage_uris: Vec<StorageUri>,
    /// `workerSpec`: the pod spec of multi-node workers, with containers and volumes
    /// of its own.
    pub worker_spec: Option<Box<Predictor>>,
    /// `model`, and each framework-specific spec.
    #[serde(
        alias = "sklearn",
        alias = "xgboost",
        alias = "tensorflow",
        alias = "pytorch",
        alias = "triton",
        alias = "onnx",
        alias = "huggingface",
        alias = "pmml",
        alias = "lightgbm",
        alias = "paddle",
        alias = "art",
        alias = "alibi"
    )]
    pub model: Option<StorageSpec>,
}

/// A KServe spec with a `storageUri`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StorageSpec {
    /// `storageUri`.
    pub storage_uri: Option<String>,
    /// `storage`: KServe's StorageSpec (`key`, `path`, `parameters`), a model whose bucket
    /// and credentials come from a storage secret; never checkable here.
    pub storage: Option<serde::de::IgnoredAny>,
}

/// `storageUris[]`, a KServe LLMInferenceService's `spec.model`, and a TrainedModel's
/// `spec.model`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct StorageUri {
    /// `uri`.
    pub uri: Option<String>,
    /// `storageUri` (a TrainedModel's model).
    #[serde(rename = "storageUri")]
    pub storage_uri: Option<String>,
    /// An LLMInferenceService model's LoRA adapters, each a model of its own.
    pub lora: Option<Lora>,
}

/// `spec.model.lora`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Lora {
    /// `adapters[].uri`.
    #[serde(deserialize_with = "null_as_default")]
    pub adapters: Vec<StorageUri>,
}

/// `null` read as the type's default, as Kubernetes itself treats it.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(<Option<T> as serde::Deserialize>::deserialize(deserializer)?.unwrap_or_default())
}

/// The most models one object may name.
pub const MAX_MODELS: usize = 16;
/// The longest model annotation read: sixteen digests with room to spare.
pub const MAX_ANNOTATION_BYTES: usize = 4096;

/// Why an object's model annotation was refused before any decision.
#[derive(Debug, thiserror::Error)]
pub enum NamingError {
    /// More distinct models than [`MAX_MODELS`].
    #[error(
        "the object names more than {MAX_MODELS} models; at most {MAX_MODELS} are decided per object"
    )]
    TooMany,
    /// An annotation longer than [`MAX_ANNOTATION_BYTES`].
    #[error(
        "the {MODEL_ANNOTATION} annotation is {0} bytes; at most {MAX_ANNOTATION_BYTES} are read"
    )]
    TooLong(usize),
    /// Part of the spec comes from other objects (an LLMInferenceService's `baseRefs`),
    /// which admission does not see: their models, LoRA adapters included, would be
    /// served unchecked.
    #[error(
        "spec.baseRefs merges LLMInferenceServiceConfig objects into this service, and the models they name are not in this request: write the model and its adapters in the service itself"
    )]
    Inherited,
    /// A storage URI of a scheme admission cannot check (`hf://`, `s3://`, `gs://`,
    /// `https://`, `pvc://`…): KServe would download and serve it unverified, whatever
    /// digests the object's annotation names.
    #[error(
        "storage URI {0:?} cannot be checked at admission: serve the model from an OCI registry (oci://) so its signature can be verified"
    )]
    Unverifiable(String),
    /// A KServe `storage` spec: the model is a path in a bucket a storage secret names.
    #[error(
        "a KServe storage spec (storage: key/path) names a model in a bucket from a storage secret, which admission cannot check: serve the model with storageUri: oci://… so its signature can be verified"
    )]
    StorageSecret,
}

/// The models an object names, each once, in the order first named, and the name given
/// for messages (`spec/admission.md` §3):
/// - digests in the [`MODEL_ANNOTATION`] annotation, at every level: the object's own,
///   its pod template's, a CronJob's job template's and that job's pod template's;
/// - OCI references, as `oci://…`: a Pod's (or pod template's) `image` volumes; the
///   images of containers the [`MODEL_CONTAINERS_ANNOTATION`] annotation names; a KServe
///   predictor's `oci://` storage URIs (`oci+native://` and the other KServe forms read
///   as `oci://`).
pub fn named_models(object: &Object) -> Result<(Vec<String>, Option<String>), NamingError> {
    // Every level that can carry annotations or a pod spec: the object, its pod
    // template, a CronJob's job template and that job's pod template. Each level's
    // models count; none hides another's.
    let mut levels: Vec<(&Metadata, Option<&Spec>)> =
        vec![(&object.metadata, object.spec.as_ref())];
    let mut i = 0;
    while i < levels.len() {
        if let Some(spec) = levels[i].1 {
            let templates = [&spec.template, &spec.job_template, &spec.worker];
            for template in templates.into_iter().flatten() {
                levels.push((&template.metadata, template.spec.as_deref()));
                levels.push((&template.metadata, Some(&*template.pod)));
            }
            if let Some(prefill) = &spec.prefill {
                levels.push((levels[i].0, Some(prefill)));
            }
        }
        i += 1;
    }
    if levels
        .iter()
        .any(|(_, spec)| spec.is_some_and(|s| !s.base_refs.is_empty()))
    {
        return Err(NamingError::Inherited);
    }
    let mut models: Vec<String> = Vec::new();
    let mut add = |m: String| -> Result<(), NamingError> {
        if m.len() > MAX_ANNOTATION_BYTES {
            return Err(NamingError::TooLong(m.len()));
        }
        if !models.contains(&m) {
            if models.len() == MAX_MODELS {
                return Err(NamingError::TooMany);
            }
            models.push(m);
        }
        Ok(())
    };
    let mut name = None;
    let annotations: Vec<&Annotations> = levels
        .iter()
        .filter_map(|(m, _)| m.annotations.as_ref())
        .collect();
    for a in annotations.iter().filter(|a| a.model.is_some()) {
        let list = a.model.as_deref().unwrap_or_default();
        if list.len() > MAX_ANNOTATION_BYTES {
            return Err(NamingError::TooLong(list.len()));
        }
        for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            add(m.to_owned())?;
        }
        if name.is_none() {
            name = a.model_name.as_deref().map(|n| shorten(n, 80).into_owned());
        }
    }
    // A set: a client sends both the list and the containers, so matching them must not
    // cost their product (a megabyte of each held a core for minutes).
    let model_containers: std::collections::HashSet<&str> = annotations
        .iter()
        .filter_map(|a| a.model_containers.as_deref())
        .flat_map(|list| list.split(',').map(str::trim))
        .filter(|n| !n.is_empty())
        .collect();
    for uri in annotations
        .iter()
        .filter_map(|a| a.kserve_source_uri.as_deref())
    {
        add(storage_model(uri)?)?;
    }
    for spec in levels.iter().filter_map(|(_, spec)| *spec) {
        // A pod spec's own fields, and those KServe embeds in each component.
        let components: Vec<&Predictor> = [&spec.predictor, &spec.transformer, &spec.explainer]
            .into_iter()
            .flatten()
            .flat_map(|c| std::iter::once(c).chain(c.worker_spec.as_deref()))
            .collect();
        let pods = std::iter::once((&spec.volumes, &spec.containers, &spec.init_containers)).chain(
            components
                .iter()
                .map(|c| (&c.volumes, &c.containers, &c.init_containers)),
        );
        for (volumes, containers, init_containers) in pods {
            for volume in volumes {
                if let Some(reference) = volume.image.as_ref().and_then(|i| i.reference.as_deref())
                {
                    add(as_oci(reference))?;
                }
            }
            for container in containers.iter().chain(init_containers) {
                if model_containers.contains(&container.name.as_str()) {
                    if let Some(image) = &container.image {
                        add(as_oci(image))?;
                    }
                }
                let storage = container.env.iter().filter(|e| e.name == STORAGE_URI_ENV);
                for uri in storage.filter_map(|e| e.value.as_deref()) {
                    add(storage_model(uri)?)?;
                }
            }
        }
        if let Some(model) = &spec.model {
            let adapters = model.lora.iter().flat_map(|l| &l.adapters);
            let uris = std::iter::once(model).chain(adapters);
            let named = uris.flat_map(|m| [m.uri.as_deref(), m.storage_uri.as_deref()]);
            for uri in named.flatten() {
                add(storage_model(uri)?)?;
            }
        }
        for predictor in components {
            if predictor
                .model
                .as_ref()
                .is_some_and(|m| m.storage.is_some())
            {
                return Err(NamingError::StorageSecret);
            }
            let uris = predictor
                .model
                .iter()
                .filter_map(|m| m.storage_uri.as_deref())
                .chain(
                    predictor
                        .storage_uris
                        .iter()
                        .filter_map(|u| u.uri.as_deref()),
                );
            for uri in uris {
                add(storage_model(uri)?)?;
            }
        }
    }
    Ok((models, name))
}

/// An image reference as `oci://…` (an image field has no scheme).
fn as_oci(image: &str) -> String {
    let image = image.trim();
    if image.starts_with("oci://") {
        image.to_owned()
    } else {
        format!("oci://{image}")
    }
}

/// The model a KServe storage URI names, as `oci://…`; any other scheme is refused.
fn storage_model(uri: &str) -> Result<String, NamingError> {
    kserve_oci(uri)
        .map(|rest| format!("oci://{rest}"))
        .ok_or_else(|| NamingError::Unverifiable(shorten(uri.trim(), 120).into_owned()))
}

/// The reference in a KServe OCI storage URI, if it is one.
fn kserve_oci(uri: &str) -> Option<&str> {
    ["oci://", "oci+native://", "oci+modelcar://", "oci+fetch://"]
        .iter()
        .find_map(|scheme| uri.trim().strip_prefix(scheme))
}

/// `text` cut to at most `max` bytes (at a character boundary) with an ellipsis: what
/// a client sent is never echoed at length into messages and logs.
pub fn shorten(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

/// The AdmissionReview response body.
pub fn response(
    uid: &str,
    allowed: bool,
    message: &str,
    warnings: Vec<String>,
    audit: Value,
) -> Value {
    let mut response = serde_json::json!({
        "uid": uid,
        "allowed": allowed,
        "auditAnnotations": audit,
    });
    if !allowed {
        response["status"] =
            serde_json::json!({"code": 403, "reason": "Forbidden", "message": message});
    }
    if !warnings.is_empty() {
        response["warnings"] = warnings.into();
    }
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: serde_json::Value) -> Object {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn models_are_named_once_each_and_at_most_sixteen() {
        let d = |i: u8| format!("blake3:{}", hex_of(i));
        let repeated = vec![d(1); 40].join(",");
        let (models, _) = named_models(&object(serde_json::json!({
            "metadata": {"annotations": {MODEL_ANNOTATION: format!("{repeated},{}", d(2))}}
        })))
        .unwrap();
        assert_eq!(models, [d(1), d(2)]);
        let many = (0..17).map(d).collect::<Vec<_>>().join(",");
        let err = named_models(&object(serde_json::json!({
            "spec": {"template": {"metadata": {"annotations": {MODEL_ANNOTATION: many}}}}
        })))
        .unwrap_err();
        assert!(err.to_string().contains("more than 16 models"), "{err}");
        let long = vec![d(1); 100].join(",");
        let err = named_models(&object(serde_json::json!({
            "metadata": {"annotations": {MODEL_ANNOTATION: long}}
        })))
        .unwrap_err();
        assert!(err.to_string().contains("at most 4096 are read"), "{err}");
    }

    #[test]
    fn null_objects_and_metadata_name_nothing() {
        for json in [
            serde_json::json!({"uid": "u", "object": null}),
            serde_json::json!({"uid": "u", "object": {"metadata": null}}),
            serde_json::json!({"uid": "u", "object": {"spec": {"template": {"metadata": null}}}}),
        ] {
            let request: Request = serde_json::from_value(json).unwrap();
            assert!(named_models(&request.object).unwrap().0.is_empty());
        }
    }

    #[test]
    fn everything_else_in_the_object_is_skipped_not_kept() {
        let (models, name) = named_models(&object(serde_json::json!({
            "metadata": {"name": "p", "labels": {"a": "b"}, "annotations": {
                "other": "x", MODEL_NAME_ANNOTATION: "m", MODEL_ANNOTATION: "blake3:aa"}},
            "spec": null,
            "status": [0, 0, 0],
        })))
        .unwrap();
        assert_eq!(models, ["blake3:aa"]);
        assert_eq!(name.as_deref(), Some("m"));
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("é", 1), "…");
    }

    #[test]
    fn oci_models_come_from_image_volumes_named_containers_and_kserve_uris() {
        let (models, _) = named_models(&object(serde_json::json!({
            "metadata": {"annotations": {MODEL_CONTAINERS_ANNOTATION: "modelcar"}},
            "spec": {
                "containers": [
                    {"name": "server", "image": "r.io/inference:1"},
                    {"name": "modelcar", "image": "r.io/models/a:v1"}
                ],
                "volumes": [{"name": "w", "image": {"reference": "r.io/models/b@sha256:00"}},
                            {"name": "e", "emptyDir": {}}]
            }
        })))
        .unwrap();
        assert_eq!(
            models,
            ["oci://r.io/models/b@sha256:00", "oci://r.io/models/a:v1"]
        );
        let (models, _) = named_models(&object(serde_json::json!({
            "spec": {"predictor": {
                "pytorch": {"storageUri": "oci+native://r.io/m:1"},
                "storageUris": [{"uri": "oci://r.io/n:2"}]
            }}
        })))
        .unwrap();
        assert_eq!(models, ["oci://r.io/m:1", "oci://r.io/n:2"]);
        // Third attack review (passed on main with no model read): KServe embeds a pod
        // spec in each component, with image volumes and model containers of its own.
        let (models, _) = named_models(&object(serde_json::json!({
            "metadata": {"annotations": {MODEL_CONTAINERS_ANNOTATION: "modelcar"}},
            "spec": {
                "predictor": {
                    "containers": [{"name": "kserve-container", "image": "r.io/server:1"}],
                    "initContainers": [{"name": "modelcar", "image": "r.io/models/c:1"}],
                    "volumes": [{"name": "w", "image": {"reference": "r.io/models/d:1"}}]
                },
                "transformer": {"volumes": [{"name": "t", "image": {"reference": "r.io/t:1"}}]},
                "explainer": {"containers": [{"name": "modelcar", "image": "r.io/e:1"}]}
            }
        })))
        .unwrap();
        assert_eq!(
            models,
            [
                "oci://r.io/models/d:1",
                "oci://r.io/models/c:1",
                "oci://r.io/t:1",
                "oci://r.io/e:1"
            ]
        );
        // Fourteenth attack review (allowed on main): KServe's internal annotation, from
        // which its pod mutator makes a storage initializer that fetches the model.
        for (uri, want) in [
            ("hf://org/model", Err(())),
            ("oci://r.io/m:1", Ok("oci://r.io/m:1")),
        ] {
            let got = named_models(&object(serde_json::json!({
                "metadata": {"annotations": {KSERVE_SOURCE_URI_ANNOTATION: uri}},
                "spec": {"containers": [{"name": "c", "image": "r.io/server:1"}]}
            })))
            .map(|(m, _)| m);
            match want {
                Ok(model) => assert_eq!(got.unwrap(), [model]),
                Err(()) => assert!(matches!(got, Err(NamingError::Unverifiable(_)))),
            }
        }
        // Third attack review (allowed on main): a custom container's STORAGE_URI, which
        // KServe reads as storageUri, and an LLMInferenceService's spec.model.uri.
        let (models, _) = named_models(&object(serde_json::json!({
            "spec": {
                "predictor": {"containers": [{"name": "kserve-container", "image": "r.io/s:1",
                    "env": [{"name": "STORAGE_URI", "value": "oci://r.io/models/u:1"},
                            {"name": "OTHER", "value": "oci://r.io/not-a-model:1"}]}]},
                "model": {"uri": "oci+native://r.io/models/llm:1"}
            }
        })))
        .unwrap();
        assert_eq!(models, ["oci://r.io/models/u:1", "oci://r.io/models/llm:1"]);
        // Fifth attack review (allowed on main): an LLMInferenceService's template,
        // worker and prefill are pod specs themselves, and an InferenceService
        // component's workerSpec has volumes of its own.
        let (models, _) = named_models(&object(serde_json::json!({
            "kind": "LLMInferenceService",
            "spec": {
                "template": {"volumes": [{"name": "a", "image": {"reference": "r.io/a:1"}}]},
                "worker": {"volumes": [{"name": "b", "image": {"reference": "r.io/b:1"}}]},
                "prefill": {
                    "template": {"volumes": [{"name": "c", "image": {"reference": "r.io/c:1"}}]},
                    "worker": {"volumes": [{"name": "d", "image": {"reference": "r.io/d:1"}}]},
                    "model": {"uri": "oci://r.io/e:1"}
                }
            }
        })))
        .unwrap();
        assert_eq!(
            models,
            [
                "oci://r.io/a:1",
                "oci://r.io/b:1",
                "oci://r.io/e:1",
                "oci://r.io/c:1",
                "oci://r.io/d:1"
            ]
        );
        let (models, _) = named_models(&object(serde_json::json!({
            "spec": {"predictor": {"workerSpec": {
                "volumes": [{"name": "w", "image": {"reference": "r.io/w:1"}}],
                "containers": [{"name": "x", "env": [{"name": "STORAGE_URI", "value": "oci://r.io/s:1"}]}]
            }}}
        })))
        .unwrap();
        assert_eq!(models, ["oci://r.io/w:1", "oci://r.io/s:1"]);
        // Sixth attack review (allowed on main): an explainer's `art`/`alibi` storage
        // URI, and an LLMInferenceService model's LoRA adapters.
        let (models, _) = named_models(&object(serde_json::json!({
            "spec": {"explainer": {"art": {"storageUri": "oci://r.io/x:1"}}}
        })))
        .unwrap();
        assert_eq!(models, ["oci://r.io/x:1"]);
        let (models, _) = named_models(&object(serde_json::json!({
            "spec": {
                "model": {"uri": "oci://r.io/base:1",
                          "lora": {"adapters": [{"uri": "oci://r.io/lora:1"}]}},
                "prefill": {"model": {"lora": {"adapters": [{"uri": "oci://r.io/lora2:1"}]}}}
            }
        })))
        .unwrap();
        assert_eq!(
            models,
            [
                "oci://r.io/base:1",
                "oci://r.io/lora:1",
                "oci://r.io/lora2:1"
            ]
        );
        // Seventh attack review (allowed on main): a service whose baseRefs merge in a
        // config with other models (a LoRA adapter) is refused, at any level.
        for spec in [
            serde_json::json!({"model": {"uri": "oci://r.io/base:1"},
                               "baseRefs": [{"name": "with-adapter"}]}),
            serde_json::json!({"prefill": {"baseRefs": [{"name": "x"}]}}),
        ] {
            let err = named_models(&object(serde_json::json!({
                "kind": "LLMInferenceService", "spec": spec
            })))
            .unwrap_err();
            assert!(matches!(err, NamingError::Inherited), "{err}");
        }
        // Eighth attack review (allowed on main): a storage URI of another scheme was
        // skipped, so an annotation naming any approved digest let KServe serve bytes
        // nobody checked.
        for spec in [
            serde_json::json!({"predictor": {"model": {"storageUri": "hf://evil/model"}}}),
            serde_json::json!({"predictor": {"storageUris": [{"uri": "s3://b/m"}]}}),
            serde_json::json!({"containers": [{"name": "c",
                "env": [{"name": "STORAGE_URI", "value": "pvc://claim/m"}]}]}),
            serde_json::json!({"model": {"uri": "https://example.org/m.tar"}}),
            serde_json::json!({"model": {"uri": "oci://r.io/m:1",
                "lora": {"adapters": [{"uri": "gs://b/lora"}]}}}),
        ] {
            let err = named_models(&object(serde_json::json!({
                "metadata": {"annotations": {MODEL_ANNOTATION: "blake3:00"}},
                "spec": spec
            })))
            .unwrap_err();
            assert!(matches!(err, NamingError::Unverifiable(_)), "{err}");
        }
        // Tenth attack review (allowed on main): a TrainedModel's spec.model.storageUri
        // was not read, and a KServe storage spec (key/path from a storage secret) was
        // not seen at all.
        let err = named_models(&object(serde_json::json!({
            "kind": "TrainedModel",
            "metadata": {"annotations": {MODEL_ANNOTATION: "blake3:00"}},
            "spec": {"inferenceService": "mms",
                     "model": {"storageUri": "s3://evil/m", "framework": "sklearn"}}
        })))
        .unwrap_err();
        assert!(matches!(err, NamingError::Unverifiable(_)), "{err}");
        let (models, _) = named_models(&object(serde_json::json!({
            "kind": "TrainedModel",
            "spec": {"model": {"storageUri": "oci://r.io/tm:1", "framework": "sklearn"}}
        })))
        .unwrap();
        assert_eq!(models, ["oci://r.io/tm:1"]);
        for component in ["model", "sklearn", "pytorch"] {
            let err = named_models(&object(serde_json::json!({
                "metadata": {"annotations": {MODEL_ANNOTATION: "blake3:00"}},
                "spec": {"predictor": {component: {"modelFormat": {"name": "sklearn"},
                    "storage": {"key": "localMinIO", "path": "evil/model.joblib"}}}}
            })))
            .unwrap_err();
            assert!(
                matches!(err, NamingError::StorageSecret),
                "{component}: {err}"
            );
        }
        // An empty or null list is no reference.
        let (models, _) = named_models(&object(serde_json::json!({
            "spec": {"model": {"uri": "oci://r.io/base:1"}, "baseRefs": null}
        })))
        .unwrap();
        assert_eq!(models, ["oci://r.io/base:1"]);
        let (models, _) = named_models(&object(serde_json::json!({
            "spec": {"template": {
                "metadata": {"annotations": {MODEL_CONTAINERS_ANNOTATION: "m"}},
                "spec": {"initContainers": [{"name": "m", "image": "r.io/x:1"}]}
            }}
        })))
        .unwrap();
        assert_eq!(models, ["oci://r.io/x:1"]);
        // A container not named as a model is the server, not a model.
        let (models, _) = named_models(&object(serde_json::json!({
            "spec": {"containers": [{"name": "server", "image": "r.io/inference:1"}]}
        })))
        .unwrap();
        assert!(models.is_empty());
    }

    #[test]
    fn every_levels_models_count_and_a_cronjobs_job_template_is_read() {
        // Fails on main: the object's own annotation hid its pod template's, and a
        // CronJob's jobTemplate was never read.
        let d = |i: u8| format!("blake3:{}", hex_of(i));
        let (models, _) = named_models(&object(serde_json::json!({
            "metadata": {"annotations": {MODEL_ANNOTATION: d(1)}},
            "spec": {"template": {"metadata": {"annotations": {MODEL_ANNOTATION: d(2)}}}}
        })))
        .unwrap();
        assert_eq!(models, [d(1), d(2)]);
        let (models, _) = named_models(&object(serde_json::json!({
            "kind": "CronJob",
            "spec": {"schedule": "* * * * *", "jobTemplate": {
                "metadata": {"annotations": {MODEL_ANNOTATION: d(3)}},
                "spec": {"template": {
                    "metadata": {"annotations": {MODEL_ANNOTATION: d(4)}},
                    "spec": {"volumes": [{"name": "w", "image": {"reference": "r.io/m@sha256:00"}}]}
                }}
            }}
        })))
        .unwrap();
        assert_eq!(models, [d(3), d(4), "oci://r.io/m@sha256:00".to_owned()]);
    }

    fn hex_of(i: u8) -> String {
        format!("{i:02x}").repeat(32)
    }
}
