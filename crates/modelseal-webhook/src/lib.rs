//! # modelseal-webhook
//!
//! Admits or refuses models by digest, before they run: a Kubernetes
//! ValidatingAdmissionWebhook (`POST /validate`) and a plain JSON endpoint for model
//! registries (`POST /v1/admit`), over HTTPS only, with the same policy file and
//! attestation store as `modelseal verify --lineage` (`spec/admission.md`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod auth;
pub mod config;
pub mod decide;
pub mod metrics;
pub mod pool;
mod reload;
mod server;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::auth::Token;
use crate::config::{Config, Limits, NoModel};
use crate::decide::{Decider, Decision, Trust};
use crate::metrics::Metrics;
use crate::pool::{Pool, WorkError};
use crate::reload::Health;
use crate::tls::ServingCert;
use modelseal_lineage::Stop;

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
    /// The certificate, key or token did not load, or the address could not be bound.
    #[error("{0}")]
    Io(String),
}

struct App {
    config: Config,
    decider: Decider,
    pool: Pool,
    serving: Arc<ServingCert>,
    health: Health,
    token: Token,
    /// KiB of request bodies that may be buffered at once.
    body_budget: tokio::sync::Semaphore,
    metrics: Arc<Metrics>,
}

/// A running server: its address, and a handle to stop it.
pub struct Running {
    /// The bound address (useful when `listen` asked for port 0).
    pub addr: SocketAddr,
    app: Arc<App>,
    shutdown: watch::Sender<bool>,
    stop_reload: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting connections at once, lets those open finish the requests they
    /// have for up to `limits.shutdown_grace_ms`, and returns when they are done.
    pub async fn shutdown(self) {
        self.app.health.drain();
        tracing::info!(
            event = "draining",
            connections = self.app.metrics.connections_open.get()
        );
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.stop_reload.store(true, Ordering::Relaxed);
        tracing::info!(event = "stopped");
    }

    /// The server's metrics as `/metrics` shows them (for tests and embedders).
    pub fn metrics(&self) -> String {
        self.app.metrics.render()
    }

    /// Entries in the decision cache.
    pub fn cache_len(&self) -> usize {
        self.app.decider.cache_len()
    }
}

/// Starts the server described by `config` on the current Tokio runtime.
pub async fn start(config: Config) -> Result<Running, ServeError> {
    let limits = config.limits.clone();
    let store = config
        .open_store()
        .map_err(|e| ServeError::Io(format!("store: {}", modelseal_verify::error_chain(&*e))))?;
    let trust = Trust::load(&config.policy, &store).map_err(|source| ServeError::Policy {
        path: config.policy.clone(),
        source,
    })?;
    let serving = Arc::new(ServingCert::new(
        tls::load(&config.tls_cert, &config.tls_key).map_err(ServeError::Io)?,
    ));
    let tls_config = serving.server_config().map_err(ServeError::Io)?;
    let token = Token::default();
    if let Some(path) = &config.admit_token_file {
        token.set(Some(Token::read(path).map_err(ServeError::Io)?));
    }
    let metrics = Arc::new(Metrics::new());
    let decider = Decider::new(
        trust,
        config.cache_entries,
        Duration::from_secs(config.cache_ttl_seconds),
        Arc::clone(&metrics),
    )
    .with_registry(
        config.registry_options().map_err(|e| {
            ServeError::Io(format!("registry: {}", modelseal_verify::error_chain(&e)))
        })?,
        config.oci_registries.clone(),
        config.oci_tags,
    );
    let stale_after = Duration::from_millis(config.reload_interval_ms.max(100) * 3 + 5_000);
    let app = Arc::new(App {
        pool: Pool::new(
            limits.max_in_flight,
            limits.blocking_threads,
            Arc::clone(&metrics),
        ),
        config: config.clone(),
        decider,
        serving,
        health: Health::new(stale_after),
        token,
        body_budget: tokio::sync::Semaphore::new(
            usize::try_from(limits.body_bytes_in_flight.div_ceil(1024))
                .unwrap_or(usize::MAX)
                .min(tokio::sync::Semaphore::MAX_PERMITS),
        ),
        metrics: Arc::clone(&metrics),
    });
    let panics = Arc::clone(&metrics);
    let router = Router::new()
        .route("/validate", post(validate))
        .route("/v1/admit", post(admit))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::clone(&app))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            move |_: Box<dyn std::any::Any + Send>| {
                panics.handler_panics.inc();
                tracing::error!(event = "handler-panic");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": "internal error; the request was not decided"})),
                )
                    .into_response()
            },
        ));
    let tcp = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServeError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = tcp
        .local_addr()
        .map_err(|e| ServeError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
    let listener = server::Listener {
        tcp,
        tls: tokio_rustls::TlsAcceptor::from(Arc::new(tls_config)),
        router,
        limits,
        metrics,
    };
    let (shutdown, watch_shutdown) = watch::channel(false);
    let task = tokio::spawn(listener.run(watch_shutdown));
    let stop_reload = Arc::new(AtomicBool::new(false));
    reload::spawn(Arc::clone(&app), Arc::clone(&stop_reload))
        .map_err(|e| ServeError::Io(format!("cannot start the reload thread: {e}")))?;
    Ok(Running {
        addr,
        app,
        shutdown,
        stop_reload,
        task,
    })
}

async fn metrics_page(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let (ready, body) = app.health.report(&app.serving);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
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

/// What a request's models came to.
struct Outcome {
    allowed: bool,
    message: String,
    warnings: Vec<String>,
    reports: Vec<Value>,
    cached: bool,
}

/// Sets a flag when dropped: the request's handler is gone (its client reset the
/// stream or closed the connection), so its work can stop.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A model to decide on a worker: by digest, or by OCI reference (resolved there).
#[derive(Debug, Clone)]
enum Target {
    Digest(modelseal_core::ArtifactDigest),
    Oci(String),
}

/// Decides for every model within `limit`: cached answers on this thread, the rest on a
/// worker, one after another, stopping at the first refusal (the request is refused
/// then). Each decision is kept as it is made, so a refusal reached before the deadline
/// stands even if later models run out of time; only models not decided in time fall
/// under `fail_open`. A panic is always a refusal. `Err` is a response to send as is
/// (the server is full).
async fn decide_all(
    app: &Arc<App>,
    models: &[String],
    name: Option<String>,
    remember: bool,
    want_report: bool,
    started: Instant,
    limit: Duration,
) -> Result<Outcome, Response> {
    let deadline = started + limit;
    let mut decisions: Vec<Option<Decision>> = Vec::with_capacity(models.len());
    let mut pending = Vec::new();
    for (i, text) in models.iter().enumerate() {
        if modelseal_oci::Reference::is_oci(text) {
            // Resolved (and looked up in the cache by manifest digest) on a worker.
            decisions.push(None);
            pending.push((i, Target::Oci(text.clone())));
            continue;
        }
        match text.parse::<modelseal_core::ArtifactDigest>() {
            Err(_) => decisions.push(Some(Decider::malformed(text))),
            Ok(digest) => match app.decider.cached(&digest) {
                Some(hit) => decisions.push(Some(hit)),
                None => {
                    decisions.push(None);
                    pending.push((i, Target::Digest(digest)));
                }
            },
        }
    }
    let mut warnings = Vec::new();
    let refused_already = decisions.iter().flatten().any(|d| !d.allowed);
    if !pending.is_empty() && !refused_already {
        let made: Arc<std::sync::Mutex<Vec<Decision>>> = Arc::default();
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel = CancelOnDrop(Arc::clone(&cancelled));
        let stop = Stop::at(deadline).or_when(Arc::clone(&cancelled));
        let work = {
            let (worker, made) = (Arc::clone(app), Arc::clone(&made));
            let targets: Vec<Target> = pending.iter().map(|(_, t)| t.clone()).collect();
            move || {
                for target in &targets {
                    let decision = match target {
                        Target::Digest(digest) => {
                            if let Some(hook) = &worker.config.hooks.before_decision {
                                hook(digest);
                            }
                            worker.decider.decide(
                                digest,
                                name.as_deref(),
                                remember,
                                stop.clone(),
                                want_report,
                            )
                        }
                        Target::Oci(text) => {
                            worker
                                .decider
                                .decide_oci(text, remember, stop.clone(), want_report)
                        }
                    };
                    if decision.timed_out {
                        // Not a verdict: the time ran out. The caller answers for it.
                        return;
                    }
                    let refused = !decision.allowed;
                    made.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(decision);
                    if refused || stop.reached() {
                        return;
                    }
                }
            }
        };
        let result = app.pool.run(deadline, work).await;
        // Whatever was decided, in time or not, in the order of `pending`.
        let made = std::mem::take(&mut *made.lock().unwrap_or_else(|p| p.into_inner()));
        let decided = made.len();
        for ((i, _), decision) in pending.iter().zip(made) {
            decisions[*i] = Some(decision);
        }
        let undecided = || pending.iter().skip(decided).map(|(i, _)| *i);
        let unfilled = |message: String, allowed: bool| Decision {
            allowed,
            message,
            report: Value::Null,
            cached: false,
            timed_out: true,
        };
        let joined = || admission::shorten(&models.join(", "), 200).into_owned();
        let refused = decisions.iter().flatten().any(|d| !d.allowed);
        // Work that ended without deciding everything (its stopping rule was reached
        // just as the deadline came) ran out of time as surely as work still running.
        let result = match result {
            Ok(()) if decided < pending.len() && !refused => Err(WorkError::OutOfTime),
            other => other,
        };
        match result {
            Ok(()) => {}
            Err(WorkError::Shed) => {
                return Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    axum::Json(json!({"error": format!(
                        "modelseal is making {} decisions already (limits.max_in_flight); try again",
                        app.config.limits.max_in_flight
                    )})),
                )
                    .into_response());
            }
            Err(WorkError::OutOfTime) => {
                app.metrics.decision_timeouts.inc();
                let message = format!(
                    "modelseal could not verify {} within {} ms (attestation store slow or unreachable)",
                    joined(),
                    limit.as_millis()
                );
                warnings.push(message.clone());
                for i in undecided().collect::<Vec<_>>() {
                    // A refusal made in time is never outweighed by fail_open.
                    decisions[i] =
                        Some(unfilled(message.clone(), app.config.fail_open && !refused));
                }
            }
            Err(WorkError::Panicked(panic)) => {
                // A bug is never a reason to admit, whatever fail_open says.
                app.metrics.decision_panics.inc();
                tracing::error!(event = "decision-panic", models = %joined(), panic = %panic);
                let message = format!(
                    "modelseal failed while deciding {} (an internal error, logged); refused",
                    joined()
                );
                for i in undecided().collect::<Vec<_>>() {
                    decisions[i] = Some(unfilled(message.clone(), false));
                }
            }
        }
    }
    // Models left undecided because an earlier one was refused are refused with it.
    let decisions: Vec<Decision> = decisions.into_iter().flatten().collect();
    for d in &decisions {
        app.metrics.record(d.allowed, d.cached, started.elapsed());
    }
    let allowed = decisions.len() == models.len() && decisions.iter().all(|d| d.allowed);
    let message = decisions
        .iter()
        .find(|d| !d.allowed)
        .or(decisions.first())
        .map(|d| d.message.clone())
        .unwrap_or_default();
    Ok(Outcome {
        allowed,
        message,
        warnings,
        cached: !decisions.is_empty() && decisions.iter().all(|d| d.cached),
        reports: decisions.into_iter().map(|d| d.report).collect(),
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// Part of `limits.body_bytes_in_flight`, in KiB, held while a body is read and parsed.
struct BodyBudget<'a> {
    semaphore: &'a tokio::sync::Semaphore,
    kib: u32,
}

impl BodyBudget<'_> {
    /// Grows the share to cover `bytes`; false when the budget has no more.
    fn cover(&mut self, bytes: usize) -> bool {
        let want = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        if want <= self.kib {
            return true;
        }
        match self.semaphore.try_acquire_many(want - self.kib) {
            Ok(permit) => {
                permit.forget();
                self.kib = want;
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for BodyBudget<'_> {
    fn drop(&mut self) {
        self.semaphore.add_permits(self.kib as usize);
    }
}

enum BodyError {
    TooLarge,
    OverBudget,
    Unreadable(String),
}

/// The body, whole, within `body_timeout_ms` and `max_body_bytes`, taking its share of
/// `limits.body_bytes_in_flight` as its bytes arrive (so a body trickled slowly holds
/// only what it has sent); the share is held until the caller drops it, after parsing.
async fn read_body<'a>(
    app: &'a App,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, BodyBudget<'a>), Response> {
    use http_body_util::BodyExt as _;
    let max = app.config.max_body_bytes;
    let limit = Limits::ms(app.config.limits.body_timeout_ms);
    // Content-Length is only a hint for the first allocation, never trusted for more.
    let hint = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(max)
        .min(64 << 10);
    let mut budget = BodyBudget {
        semaphore: &app.body_budget,
        kib: 0,
    };
    let mut body = body;
    let read = async {
        let mut bytes = Vec::with_capacity(hint);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Unreadable(e.to_string()))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            if bytes.len() + data.len() > max {
                return Err(BodyError::TooLarge);
            }
            // What is charged is the buffer's capacity, what it really holds.
            bytes.reserve(data.len());
            if !budget.cover(bytes.capacity()) {
                return Err(BodyError::OverBudget);
            }
            bytes.extend_from_slice(data);
        }
        Ok(Bytes::from(bytes))
    };
    let outcome = tokio::time::timeout(limit, read).await;
    match outcome {
        Ok(Ok(bytes)) => Ok((bytes, budget)),
        Ok(Err(BodyError::TooLarge)) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body over max_body_bytes ({max})"),
        )),
        Ok(Err(BodyError::Unreadable(e))) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("request body unreadable: {e}"),
        )),
        Ok(Err(BodyError::OverBudget)) => {
            drop(budget);
            app.metrics.bodies_shed.inc();
            // Read and drop the rest (nothing is kept) so that the client, still
            // sending, gets the 503 rather than a broken pipe.
            let _ = tokio::time::timeout(limit, discard(body, max)).await;
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                axum::Json(json!({"error": "modelseal is reading too many request bodies at once (limits.body_bytes_in_flight); try again"})),
            )
                .into_response())
        }
        Err(_) => {
            app.metrics.body_timeouts.inc();
            Err(error(
                StatusCode::REQUEST_TIMEOUT,
                &format!("request body not received within {} ms", limit.as_millis()),
            ))
        }
    }
}

/// The body read as [`read_body`] reads it and parsed as JSON; the body's share of the
/// budget is returned once it is parsed. A parse error is HTTP 400 starting `what`.
async fn read_json<T: serde::de::DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<T, Response> {
    let (body, _budget) = read_body(app, headers, body).await?;
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("{what}: {e}")))
}

/// Sends `response` once the request body has been read and dropped (up to the body
/// limits). Over HTTP/2, an answer sent while the client is still sending ends its
/// stream with a reset, which clients such as curl report instead of the answer.
async fn after_body(app: &App, body: Body, response: Response) -> Response {
    let limit = Limits::ms(app.config.limits.body_timeout_ms);
    let _ = tokio::time::timeout(limit, discard(body, app.config.max_body_bytes)).await;
    response
}

async fn not_found(State(app): State<Arc<App>>, uri: axum::http::Uri, body: Body) -> Response {
    let message = format!(
        "no such endpoint {}; modelseal serves /validate, /v1/admit, /healthz, /readyz and /metrics",
        admission::shorten(uri.path(), 200)
    );
    after_body(&app, body, error(StatusCode::NOT_FOUND, &message)).await
}

async fn method_not_allowed(
    State(app): State<Arc<App>>,
    method: axum::http::Method,
    body: Body,
) -> Response {
    let message = format!(
        "method {method} is not allowed here: /validate and /v1/admit take POST, the others GET"
    );
    after_body(&app, body, error(StatusCode::METHOD_NOT_ALLOWED, &message)).await
}

/// Reads up to `max` bytes of `body` and keeps none of them.
async fn discard(mut body: Body, max: usize) {
    use http_body_util::BodyExt as _;
    let mut seen = 0usize;
    while seen <= max {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

async fn validate(
    State(app): State<Arc<App>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The API server's clock started when it sent the request: so does ours.
    let entered = Instant::now();
    let limit = deadline(&query, app.config.default_timeout_ms);
    let review: admission::Review =
        match read_json(&app, &headers, body, "not an AdmissionReview").await {
            Ok(review) => review,
            Err(response) => return response,
        };
    if review.api_version != "admission.k8s.io/v1" || review.kind != "AdmissionReview" {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "expected admission.k8s.io/v1 AdmissionReview, got {} {}",
                review.api_version, review.kind
            ),
        );
    }
    let Some(request) = review.request else {
        return error(StatusCode::BAD_REQUEST, "AdmissionReview has no request");
    };
    if request.uid.is_empty() || request.uid.len() > 128 {
        return error(
            StatusCode::BAD_REQUEST,
            "AdmissionReview request has no uid, or one longer than 128 bytes",
        );
    }
    // Only bounded copies of what the request said are kept while it is decided.
    let named = admission::named_models(&request.object);
    let object = format!(
        "{}/{}",
        admission::shorten(request.namespace.as_deref().unwrap_or("-"), 253),
        admission::shorten(request.object.metadata.name.as_deref().unwrap_or("-"), 253)
    );
    let (uid, dry_run) = (request.uid, request.dry_run);
    drop(request.object);
    let (models, name, refusal) = match named {
        Ok((models, name)) => (models, name, None),
        Err(refusal) => (Vec::new(), None, Some(refusal.to_string())),
    };
    let mut outcome = if let Some(refusal) = refusal {
        // The annotation was refused before any decision (too many models): never the
        // "names no model" case, which no_model = allow would admit.
        Outcome {
            allowed: false,
            message: format!("{object}: {refusal}"),
            warnings: Vec::new(),
            reports: Vec::new(),
            cached: false,
        }
    } else if models.is_empty() {
        let allowed = app.config.no_model == NoModel::Allow;
        let message = if allowed {
            "no model named; admitted by configuration".to_owned()
        } else {
            format!(
                "{object} names no model; annotate it with {}: blake3:<root>",
                admission::MODEL_ANNOTATION
            )
        };
        Outcome {
            allowed,
            message,
            warnings: Vec::new(),
            reports: Vec::new(),
            cached: false,
        }
    } else {
        match decide_all(&app, &models, name, !dry_run, false, entered, limit).await {
            Ok(outcome) => outcome,
            Err(response) => return response,
        }
    };
    if dry_run {
        outcome.warnings.push("dry run: decision not cached".into());
    }
    tracing::info!(
        event = "admission",
        uid = %uid,
        object = %object,
        models = %admission::shorten(&models.join(","), 1200),
        allowed = outcome.allowed,
        cached = outcome.cached,
        dry_run,
        reason = %outcome.message
    );
    let audit = json!({
        "modelseal.dev/decision": if outcome.allowed { "allow" } else { "deny" },
        "modelseal.dev/reason": outcome.message,
    });
    axum::Json(admission::response(
        &uid,
        outcome.allowed,
        &outcome.message,
        outcome.warnings,
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

async fn admit(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let entered = Instant::now();
    if !app.token.configured() {
        let off = error(
            StatusCode::FORBIDDEN,
            "the registry endpoint is off: set admit_token_file in the server's configuration",
        );
        return after_body(&app, body, off).await;
    }
    let presented = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if !app.token.admits(presented) {
        app.metrics.unauthorized.inc();
        let refused = (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(json!({"error": "a valid bearer token is required"})),
        )
            .into_response();
        return after_body(&app, body, refused).await;
    }
    let request: AdmitRequest =
        match read_json(&app, &headers, body, "expected {\"digest\": \"blake3:…\"}").await {
            Ok(request) => request,
            Err(response) => return response,
        };
    // The same margin and cap as a deadline the API server gives.
    let limit = deadline(
        &std::collections::HashMap::new(),
        app.config.default_timeout_ms,
    );
    let digest = admission::shorten(&request.digest, 80).into_owned();
    let name = request
        .name
        .as_deref()
        .map(|n| admission::shorten(n, 80).into_owned());
    let outcome = match decide_all(
        &app,
        std::slice::from_ref(&request.digest),
        name,
        true,
        true,
        entered,
        limit,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(response) => return response,
    };
    tracing::info!(event = "registry-admission", digest = %digest, allowed = outcome.allowed, cached = outcome.cached, reason = %outcome.message);
    axum::Json(json!({
        "digest": digest,
        "allowed": outcome.allowed,
        "message": outcome.message,
        "warnings": outcome.warnings,
        "cached": outcome.cached,
        "lineage": outcome.reports.first().cloned().unwrap_or(Value::Null),
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
