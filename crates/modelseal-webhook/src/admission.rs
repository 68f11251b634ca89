//! `admission.k8s.io/v1` AdmissionReview: the parts read and written (`spec/admission.md`
//! §2). Small hand-written types: the full Kubernetes API types are not needed.

use serde_json::Value;

/// Annotation naming the model an object runs, as `blake3:HEX` (several: comma-separated).
pub const MODEL_ANNOTATION: &str = "modelseal.dev/model";
/// Optional annotation naming the model, for messages.
pub const MODEL_NAME_ANNOTATION: &str = "modelseal.dev/model-name";

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
}

/// `spec`, as far as it is read.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Spec {
    /// A workload's pod template.
    pub template: Option<Template>,
}

/// `spec.template`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Template {
    /// Its metadata.
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: Metadata,
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
}

/// The models an object names (its own annotations, or for workloads such as
/// Deployments its pod template's), each once, in the order first named; and the
/// name given for messages.
pub fn named_models(object: &Object) -> Result<(Vec<String>, Option<String>), NamingError> {
    let template = object
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(|t| &t.metadata);
    for metadata in std::iter::once(&object.metadata).chain(template) {
        let Some(a) = &metadata.annotations else {
            continue;
        };
        if let Some(list) = &a.model {
            if list.len() > MAX_ANNOTATION_BYTES {
                return Err(NamingError::TooLong(list.len()));
            }
            let mut models: Vec<String> = Vec::new();
            for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                if !models.iter().any(|seen| seen == m) {
                    if models.len() == MAX_MODELS {
                        return Err(NamingError::TooMany);
                    }
                    models.push(m.to_owned());
                }
            }
            let name = a.model_name.as_deref().map(|n| shorten(n, 80).into_owned());
            return Ok((models, name));
        }
    }
    Ok((Vec::new(), None))
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

    fn hex_of(i: u8) -> String {
        format!("{i:02x}").repeat(32)
    }
}
