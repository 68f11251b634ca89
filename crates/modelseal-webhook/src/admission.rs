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
    /// The object being admitted.
    #[serde(default)]
    pub object: Value,
    /// Whether the request is a dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// Namespace, for logs.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The models an object names: its own annotations, or (for workloads such as
/// Deployments) its pod template's.
pub fn named_models(object: &Value) -> (Vec<String>, Option<String>) {
    let annotations = [
        &object["metadata"]["annotations"],
        &object["spec"]["template"]["metadata"]["annotations"],
    ];
    for a in annotations {
        if let Some(list) = a.get(MODEL_ANNOTATION).and_then(Value::as_str) {
            let models = list
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .collect();
            let name = a
                .get(MODEL_NAME_ANNOTATION)
                .and_then(Value::as_str)
                .map(str::to_owned);
            return (models, name);
        }
    }
    (Vec::new(), None)
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
