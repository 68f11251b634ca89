//! The accept loop: TCP, TLS (tokio-rustls) and HTTP/1.1 or HTTP/2 (hyper), each stage
//! under its own limit (`spec/admission.md` §5). A connection over `max_connections` is
//! closed before its handshake; a handshake has `handshake_timeout_ms`; the first
//! request's headers must arrive within `header_timeout_ms` of it (hyper also enforces
//! that for every HTTP/1.1 request head); a connection with no request in service for
//! `idle_timeout_ms` is closed. On shutdown the listener closes at once, each connection
//! finishes the requests it has (HTTP/2 gets a GOAWAY), and whatever is still open after
//! the grace period is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::Limits;
use crate::metrics::{Closed, Metrics, Raised};

/// The most a connection's HTTP/1.1 read buffer grows to, and the largest HTTP/2 header
/// list accepted. API servers send heads of about a KiB.
pub const CONNECTION_BUFFER: usize = 16 << 10;
/// HTTP/2 flow-control window per stream (twice this per connection): the most body
/// bytes a client may send before the server has read them.
pub const H2_WINDOW: u32 = 64 << 10;

/// What every connection shares.
pub struct Listener {
    /// The bound socket.
    pub tcp: TcpListener,
    /// TLS for every connection.
    pub tls: TlsAcceptor,
    /// The routes.
    pub router: Router,
    /// The limits.
    pub limits: Limits,
    /// Counts of what was refused.
    pub metrics: Arc<Metrics>,
}

/// Requests in service on one connection, and whether it has served any yet.
#[derive(Default)]
struct Activity {
    active: AtomicUsize,
    served: AtomicBool,
    /// Bumped when a request ends, so the watchdog restarts its idle clock.
    ended: AtomicUsize,
}

struct InService(Arc<Activity>);

impl InService {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.active.fetch_add(1, Ordering::AcqRel);
        activity.served.store(true, Ordering::Release);
        Self(Arc::clone(activity))
    }
}

impl Drop for InService {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::AcqRel);
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the connections share (the socket stays with the accept loop, so it closes
/// the moment shutdown begins).
struct Shared {
    tls: TlsAcceptor,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
}

impl Listener {
    /// Accepts until `shutdown` turns true, then drains for `limits.shutdown_grace_ms`.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let Listener {
            tcp,
            tls,
            router,
            limits,
            metrics,
        } = self;
        let listener = Arc::new(Shared {
            tls,
            router,
            limits,
            metrics,
        });
        let slots = Arc::new(Semaphore::new(listener.limits.max_connections));
        let mut connections = JoinSet::new();
        let connection_shutdown = shutdown.clone();
        let stop = stopped(shutdown);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = tcp.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Out of file descriptors, or a connection reset while queued:
                            // wait a moment rather than spin.
                            tracing::warn!(event = "accept-failed", error = %e);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        listener.metrics.closed(Closed::OverCapacity);
                        drop(tcp);
                        continue;
                    };
                    let listener = Arc::clone(&listener);
                    let shutdown = connection_shutdown.clone();
                    connections.spawn(async move {
                        let _slot = slot;
                        listener.serve(tcp, peer, shutdown).await;
                    });
                }
            }
        }
        drop(tcp);
        let grace = Limits::ms(listener.limits.shutdown_grace_ms);
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                event = "shutdown-grace-exceeded",
                connections = connections.len()
            );
            connections.abort_all();
        }
    }
}

impl Shared {
    async fn serve(&self, tcp: TcpStream, peer: SocketAddr, shutdown: watch::Receiver<bool>) {
        let _open = Raised::new(&self.metrics.connections_open);
        let _ = tcp.set_nodelay(true);
        let limits = &self.limits;
        let tls = match tokio::time::timeout(
            Limits::ms(limits.handshake_timeout_ms),
            self.tls.accept(tcp),
        )
        .await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.metrics.closed(Closed::TlsError);
                tracing::debug!(event = "tls-handshake-failed", %peer, error = %e);
                return;
            }
            Err(_) => {
                self.metrics.closed(Closed::HandshakeTimeout);
                return;
            }
        };
        let activity = Arc::new(Activity::default());
        let service = {
            let router = self.router.clone();
            let activity = Arc::clone(&activity);
            let metrics = Arc::clone(&self.metrics);
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let in_service = InService::begin(&activity);
                let router = router.clone();
                let metrics = Arc::clone(&metrics);
                let started = Instant::now();
                async move {
                    let response = router.oneshot(request.map(axum::body::Body::new)).await;
                    metrics
                        .request_seconds
                        .observe(started.elapsed().as_secs_f64());
                    drop(in_service);
                    response
                }
            })
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Small per-connection buffers: what a connection can make the server hold is
        // bounded by these, whatever the client sends (`spec/admission.md` §5).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Limits::ms(limits.header_timeout_ms))
            .max_buf_size(CONNECTION_BUFFER);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_streams_per_connection)
            .max_header_list_size(CONNECTION_BUFFER as u32)
            .initial_stream_window_size(H2_WINDOW)
            .initial_connection_window_size(H2_WINDOW * 2);
        let connection = builder.serve_connection(TokioIo::new(tls), service);
        tokio::pin!(connection);
        let header = Limits::ms(limits.header_timeout_ms);
        let idle = Limits::ms(limits.idle_timeout_ms);
        let mut draining = false;
        let stop = stopped(shutdown);
        tokio::pin!(stop);
        loop {
            // The clock restarts whenever a request ends; it only runs out while no
            // request is in service.
            let ended = activity.ended.load(Ordering::Acquire);
            let allowed = if activity.served.load(Ordering::Acquire) {
                idle
            } else {
                header
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        let timed_out = e
                            .downcast_ref::<hyper::Error>()
                            .is_some_and(hyper::Error::is_timeout);
                        if timed_out {
                            self.metrics.closed(Closed::HeaderTimeout);
                        }
                        tracing::debug!(event = "connection-error", %peer, error = %e);
                    }
                    return;
                }
                _ = &mut stop, if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = tokio::time::sleep(allowed) => {
                    let busy = activity.active.load(Ordering::Acquire) > 0
                        || activity.ended.load(Ordering::Acquire) != ended;
                    if !busy {
                        self.metrics.closed(if activity.served.load(Ordering::Acquire) {
                            Closed::Idle
                        } else {
                            Closed::HeaderTimeout
                        });
                        return;
                    }
                }
            }
        }
    }
}

/// Resolves once shutdown has begun.
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    // An error means the sender is gone: the server is going away too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
