//! The probe and metrics endpoints (`spec/watch.md` §4): plain HTTP, meant for the
//! kubelet and Prometheus inside the pod's network, never for the outside. Whoever
//! else can reach the port gets bounded costs: a cap on open connections, a deadline
//! for a request head and for a connection's whole life, small buffers, and answers
//! whose size does not grow with the model.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::Watch;

/// Connections open at once; more are closed as they are accepted.
pub const MAX_CONNECTIONS: usize = 512;
/// Time for a request head to arrive (on a new or an idle kept-alive connection).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection's whole life: probes and scrapes reconnect, a held-open one cannot
/// keep its slot. At its end a request in flight is still answered (for up to
/// [`HEADER_TIMEOUT`] more).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Paths listed in a `/readyz` body at most, for failures and for pending keys each
/// (the counts are always whole).
pub const MAX_LISTED: usize = 100;
/// Buffer per connection.
const CONNECTION_BUFFER: usize = 16 << 10;

/// `/healthz`, `/readyz` and `/metrics` for `watch`.
pub fn router(watch: Watch) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(watch)
}

/// Serves the router on `listener` until `shutdown` resolves, then gives requests in
/// flight a second.
pub async fn serve(
    watch: Watch,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(watch);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    // Out of descriptors, or reset while queued: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    drop(tcp);
                    continue;
                };
                let router = router.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            router.clone().oneshot(request.map(axum::body::Body::new))
                        },
                    );
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .max_buf_size(CONNECTION_BUFFER)
                        .serve_connection(TokioIo::new(tcp), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        // Ended or failed: either way the connection is done.
                        _ = connection.as_mut() => return,
                        _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                    }
                    // Its life is over: a request in flight is answered, then it closes;
                    // one that does not finish in time is dropped.
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(HEADER_TIMEOUT, connection).await;
                });
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    Ok(())
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
    let status = watch.status_listing(MAX_LISTED);
    let code = if status.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let shown = |key: &str| if key.is_empty() { "(model)" } else { key }.to_owned();
    let failures: Vec<_> = status
        .failures
        .iter()
        .take(MAX_LISTED)
        .map(|(path, reason)| json!({"path": shown(path), "reason": reason}))
        .collect();
    let pending: Vec<_> = status
        .pending
        .iter()
        .take(MAX_LISTED)
        .map(|p| shown(p))
        .collect();
    let body = json!({
        "ready": status.ready,
        "failures": failures,
        "pending": pending,
        "failureCount": status.failure_count,
        "pendingCount": status.pending_count,
    });
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
