//! # modelseal-webhook
//!
//! Admits or refuses models by digest, before they run: a Kubernetes
//! ValidatingAdmissionWebhook (`POST /validate`) and a plain JSON endpoint for model
//! registries (`POST /v1/admit`), over HTTPS only, with the same policy file and
//! attestation store as `modelseal verify --lineage` (`spec/admission.md`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod config;
pub mod decide;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::tls_rustls::RustlsConfig;
use serde_json::{Value, json};

use crate::config::{Config, NoModel};
use crate::decide::{Decider, Decision, Trust};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The policy did not load.
    #[error("policy {}", path.display())]
    Policy {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: modelseal_lineage::policy::PolicyError,
    },
    /// The certificate or key did not load, or the address could not be bound.
    #[error("{0}")]
    Io(String),
}

struct App {
    config: Config,
    decider: Decider,
}

/// A running server: its address, and a handle to stop it.
pub struct Running {
    /// The bound address (useful when `listen` asked for port 0).
    pub addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting connections and waits for requests in flight.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        let _ = self.task.await;
    }

    /// Waits until the server stops.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Starts the server described by `config` on the current Tokio runtime.
pub async fn start(config: Config) -> Result<Running, ServeError> {
    let trust =
        Trust::load(&config.policy, &config.store).map_err(|source| ServeError::Policy {
            path: config.policy.clone(),
            source,
        })?;
    let tls = RustlsConfig::from_pem_file(&config.tls_cert, &config.tls_key)
        .await
        .map_err(|e| {
            ServeError::Io(format!(
                "TLS certificate {} / key {}: {e}",
                config.tls_cert.display(),
                config.tls_key.display()
            ))
        })?;
    let decider = Decider::new(
        trust,
        config.cache_entries,
        Duration::from_secs(config.cache_ttl_seconds),
    );
    let app = Arc::new(App {
        config: config.clone(),
        decider,
    });
    let router = Router::new()
        .route("/validate", post(validate))
        .route("/v1/admit", post(admit))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(Arc::clone(&app));
    let handle = axum_server::Handle::new();
    let server = axum_server::bind_rustls(config.listen, tls.clone()).handle(handle.clone());
    let task = tokio::spawn(async move { server.serve(router.into_make_service()).await });
    let addr = handle
        .listening()
        .await
        .ok_or_else(|| ServeError::Io(format!("cannot listen on {}", config.listen)))?;
    tokio::spawn(reload(Arc::clone(&app), tls));
    Ok(Running { addr, handle, task })
}

/// Reloads the certificate and the policy when their files change. A policy that does
/// not load is logged and the old one kept.
async fn reload(app: Arc<App>, tls: RustlsConfig) {
    let config = &app.config;
    let stamp = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut cert_seen: (Option<SystemTime>, Option<SystemTime>) =
        (stamp(&config.tls_cert), stamp(&config.tls_key));
    // The policy and every key file it names: replacing a key file (a rotation or a
    // revocation) reloads the trust as an edit of the policy does.
    let trust_stamps = |app: &App| -> Vec<Option<SystemTime>> {
        let trust = app.decider.trust();
        std::iter::once(&config.policy)
            .chain(&trust.policy.key_files)
            .map(|p| stamp(p))
            .collect()
    };
    let mut policy_seen = trust_stamps(&app);
    let mut tick = tokio::time::interval(Duration::from_millis(config.reload_interval_ms.max(100)));
    loop {
        tick.tick().await;
        let cert_now = (stamp(&config.tls_cert), stamp(&config.tls_key));
        if cert_now != cert_seen {
            match tls
                .reload_from_pem_file(&config.tls_cert, &config.tls_key)
                .await
            {
                Ok(()) => tracing::info!(event = "tls-reloaded"),
                Err(e) => tracing::error!(event = "tls-reload-failed", error = %e),
            }
            cert_seen = cert_now;
        }
        let policy_now = trust_stamps(&app);
        if policy_now != policy_seen {
            match Trust::load(&config.policy, &config.store) {
                Ok(trust) => {
                    tracing::info!(event = "policy-reloaded", version = %trust.version);
                    app.decider.replace_trust(trust);
                    // Stamps of the files the trust now in force was read from.
                    policy_seen = trust_stamps(&app);
                }
                Err(e) => {
                    tracing::error!(event = "policy-reload-failed", error = %e);
                    policy_seen = policy_now;
                }
            }
        }
    }
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.decider.metrics.render(),
    )
}

/// The deadline the API server gives as `?timeout=10s`, less a margin to answer in.
fn deadline(query: &std::collections::HashMap<String, String>, default_ms: u64) -> Duration {
    let given = query.get("timeout").and_then(|t| {
        let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = number.parse().ok()?;
        match unit {
            "s" | "" => Some(Duration::from_secs(n)),
            "ms" => Some(Duration::from_millis(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            _ => None,
        }
    });
    let total = given
        .unwrap_or(Duration::from_millis(default_ms))
        .min(Duration::from_secs(30));
    total
        .saturating_sub(total / 10)
        .max(Duration::from_millis(50))
}

/// Decides for every model, within `limit`; a model not decided in time is refused
/// (or admitted, with `fail_open`, and a warning either way).
async fn decide_all(
    app: &Arc<App>,
    models: Vec<String>,
    name: Option<String>,
    remember: bool,
    use_cache: bool,
    limit: Duration,
) -> (bool, String, Vec<String>, Value) {
    let started = Instant::now();
    let worker = Arc::clone(app);
    let names = models.clone();
    let work = tokio::task::spawn_blocking(move || {
        names
            .iter()
            .map(|digest| {
                worker
                    .decider
                    .decide(digest, name.clone(), remember, use_cache)
            })
            .collect::<Vec<Decision>>()
    });
    let mut warnings = Vec::new();
    let (allowed, message, reports) = match tokio::time::timeout(limit, work).await {
        Ok(Ok(decisions)) => {
            let allowed = decisions.iter().all(|d| d.allowed);
            let message = decisions
                .iter()
                .find(|d| !d.allowed)
                .or(decisions.first())
                .map(|d| d.message.clone())
                .unwrap_or_default();
            for d in &decisions {
                app.decider
                    .metrics
                    .record(d.allowed, d.cached, started.elapsed());
            }
            let reports: Vec<Value> = decisions.iter().map(|d| d.report.clone()).collect();
            (allowed, message, reports)
        }
        _ => {
            app.decider.metrics.timeout();
            let message = format!(
                "modelseal could not verify {} within {} ms (attestation store slow or unreachable)",
                models.join(", "),
                limit.as_millis()
            );
            warnings.push(message.clone());
            (app.config.fail_open, message, Vec::new())
        }
    };
    (allowed, message, warnings, Value::from(reports))
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": message})),
    )
        .into_response()
}

async fn validate(
    State(app): State<Arc<App>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let limit = deadline(&query, app.config.default_timeout_ms);
    let review: admission::Review = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(e) => return bad_request(&format!("not an AdmissionReview: {e}")),
    };
    if review.api_version != "admission.k8s.io/v1" || review.kind != "AdmissionReview" {
        return bad_request(&format!(
            "expected admission.k8s.io/v1 AdmissionReview, got {} {}",
            review.api_version, review.kind
        ));
    }
    let Some(request) = review.request else {
        return bad_request("AdmissionReview has no request");
    };
    if request.uid.is_empty() {
        return bad_request("AdmissionReview request has no uid");
    }
    let (models, name) = admission::named_models(&request.object);
    let object = format!(
        "{}/{}",
        request.namespace.as_deref().unwrap_or("-"),
        request.object["metadata"]["name"].as_str().unwrap_or("-")
    );
    let (allowed, message, mut warnings, _) = if models.is_empty() {
        let allowed = app.config.no_model == NoModel::Allow;
        let message = if allowed {
            "no model named; admitted by configuration".to_owned()
        } else {
            format!(
                "{object} names no model; annotate it with {}: blake3:<root>",
                admission::MODEL_ANNOTATION
            )
        };
        (allowed, message, Vec::new(), Value::Null)
    } else {
        decide_all(&app, models.clone(), name, !request.dry_run, true, limit).await
    };
    if request.dry_run {
        warnings.push("dry run: decision not cached".into());
    }
    tracing::info!(
        event = "admission",
        uid = %request.uid,
        object = %object,
        models = %models.join(","),
        allowed,
        dry_run = request.dry_run,
        reason = %message
    );
    let audit = json!({
        "modelseal.dev/decision": if allowed { "allow" } else { "deny" },
        "modelseal.dev/reason": message,
    });
    axum::Json(admission::response(
        &request.uid,
        allowed,
        &message,
        warnings,
        audit,
    ))
    .into_response()
}

/// Registry requests: `{"digest": "blake3:…", "name": "…"}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AdmitRequest {
    digest: String,
    #[serde(default)]
    name: Option<String>,
}

async fn admit(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let request: AdmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&format!("expected {{\"digest\": \"blake3:…\"}}: {e}")),
    };
    let limit = Duration::from_millis(app.config.default_timeout_ms);
    // A registry wants the per-hop report, so the cache is not consulted here.
    let (allowed, message, warnings, reports) = decide_all(
        &app,
        vec![request.digest.clone()],
        request.name,
        true,
        false,
        limit,
    )
    .await;
    tracing::info!(event = "registry-admission", digest = %request.digest, allowed, reason = %message);
    axum::Json(json!({
        "digest": request.digest,
        "allowed": allowed,
        "message": message,
        "warnings": warnings,
        "lineage": reports.get(0).cloned().unwrap_or(Value::Null),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_parameter_cannot_overflow_or_exceed_the_bounds() {
        let at = |t: &str| {
            let query = std::collections::HashMap::from([("timeout".to_owned(), t.to_owned())]);
            deadline(&query, 10_000)
        };
        assert_eq!(at("10s"), Duration::from_secs(9));
        assert_eq!(
            at("2m"),
            Duration::from_secs(27),
            "capped at 30 s, less a tenth"
        );
        // Overflowing, malformed or zero values fall back or are bounded.
        assert_eq!(at("999999999999999999m"), Duration::from_secs(9));
        assert_eq!(at("99999999999999999999999s"), Duration::from_secs(9));
        assert_eq!(at("5h"), Duration::from_secs(9));
        assert_eq!(at("0s"), Duration::from_millis(50));
    }
}
