//! The probe and metrics endpoints (`spec/watch.md` §4): plain HTTP, meant for the
//! kubelet and Prometheus inside the pod's network, never for the outside.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::Watch;

/// `/healthz`, `/readyz` and `/metrics` for `watch`.
pub fn router(watch: Watch) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(watch)
}

/// Serves the router on `listener` until `shutdown` resolves.
pub async fn serve(
    watch: Watch,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(watch))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz(State(watch): State<Watch>) -> Response {
    if watch.healthy() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "a checker thread stopped\n",
        )
            .into_response()
    }
}

async fn readyz(State(watch): State<Watch>) -> Response {
    let status = watch.status();
    let code = if status.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let failures: Vec<_> = status
        .failures
        .iter()
        .map(|(path, reason)| {
            let path = if path.is_empty() {
                "(model)"
            } else {
                path.as_str()
            };
            json!({"path": path, "reason": reason})
        })
        .collect();
    let pending: Vec<_> = status
        .pending
        .iter()
        .map(|p| if p.is_empty() { "(model)" } else { p.as_str() })
        .collect();
    let body = json!({"ready": status.ready, "failures": failures, "pending": pending});
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(watch): State<Watch>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        watch.metrics_text(),
    )
        .into_response()
}
