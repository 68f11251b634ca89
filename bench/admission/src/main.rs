//! Admission load and fault benchmark (`bench/admission/run.sh` drives it).
//!
//! `serve CONFIG STORE_LATENCY_MS`: runs the admission server of `modelseal serve`, with
//! every uncached decision delayed by the given store latency before it reads the store
//! (the fault), and prints `listening PORT`.
//!
//! `load PORT CA MODEL SECONDS CONNECTIONS IDLE`: holds IDLE TLS connections open (each
//! served one request, then kept alive) while CONNECTIONS others send AdmissionReviews
//! for MODEL back to back over HTTP/1.1 for SECONDS; prints one JSON object: requests/s,
//! client-side latency percentiles, server-time percentiles from the server's own
//! `modelseal_request_seconds` histogram, and every request that was not answered 200.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") if args.len() == 3 => serve(&args[1], args[2].parse()?).await,
        Some("load") if args.len() == 7 => {
            load(
                args[1].parse()?,
                &args[2],
                &args[3],
                Duration::from_secs(args[4].parse()?),
                args[5].parse()?,
                args[6].parse()?,
            )
            .await
        }
        _ => bail!(
            "usage: serve CONFIG STORE_LATENCY_MS | load PORT CA MODEL SECONDS CONNECTIONS IDLE"
        ),
    }
}

async fn serve(config: &str, latency_ms: u64) -> Result<()> {
    // Logs as `modelseal serve` writes them (one JSON line per decision): part of the cost.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = modelseal_webhook::config::Config::read(config.as_ref())?;
    let latency = Duration::from_millis(latency_ms);
    config.hooks.before_decision = Some(Arc::new(move |_: &modelseal_core::ArtifactDigest| {
        std::thread::sleep(latency)
    }));
    let running = modelseal_webhook::start(config).await?;
    println!("listening {}", running.addr.port());
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}

async fn connect(tls: &tokio_rustls::TlsConnector, port: u16) -> Result<Sender> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let stream = tls.connect(ServerName::try_from("127.0.0.1")?, tcp).await?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request; Ok(true) when answered 200 with a body that says it was allowed.
async fn ask(sender: &mut Sender, path: &str, body: &Bytes) -> Result<bool> {
    sender.ready().await?;
    let method = if body.is_empty() { "GET" } else { "POST" };
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))?;
    let response = sender.send_request(request).await?;
    let ok = response.status() == 200;
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(ok && (body.is_empty() || bytes.windows(14).any(|w| w == b"\"allowed\":true")))
}

async fn server_histogram(tls: &tokio_rustls::TlsConnector, port: u16) -> Result<Vec<(f64, f64)>> {
    let mut sender = connect(tls, port).await?;
    sender.ready().await?;
    let request = hyper::Request::builder()
        .uri("/metrics")
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))?;
    let page = sender
        .send_request(request)
        .await?
        .into_body()
        .collect()
        .await?
        .to_bytes();
    let page = String::from_utf8(page.to_vec())?;
    // (upper bound in seconds, cumulative count)
    Ok(page
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("modelseal_request_seconds_bucket{le=\"")?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect())
}

/// The upper bound of the bucket holding quantile `q` of the requests between two
/// readings of a cumulative histogram.
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let total = after.last().map_or(0.0, |b| b.1) - before.last().map_or(0.0, |b| b.1);
    for ((le, a), (_, b)) in after.iter().zip(before) {
        if a - b >= q * total {
            return *le;
        }
    }
    f64::INFINITY
}

fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn load(
    port: u16,
    ca: &str,
    model: &str,
    seconds: Duration,
    connections: usize,
    idle: usize,
) -> Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).context("CA certificate")?)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    // The idle connections: each served one request, then held open for the whole run.
    let mut held = Vec::with_capacity(idle);
    for _ in 0..idle {
        let mut sender = connect(&tls, port).await?;
        if !ask(&mut sender, "/healthz", &Bytes::new()).await? {
            bail!("an idle connection's first request failed");
        }
        held.push(sender);
    }
    let review = Bytes::from(
        serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "bench", "namespace": "ml", "object": {"metadata": {"name": "bench",
                "annotations": {"modelseal.dev/model": model}}}},
        })
        .to_string(),
    );
    let before = server_histogram(&tls, port).await?;
    let started = Instant::now();
    let end = started + seconds;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let tls = tls.clone();
        let review = review.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            let mut sender = match connect(&tls, port).await {
                Ok(s) => s,
                Err(_) => return (latencies, 1),
            };
            while Instant::now() < end {
                let t = Instant::now();
                match ask(&mut sender, "/validate?timeout=10s", &review).await {
                    Ok(true) => latencies.push(t.elapsed().as_micros() as u32),
                    Ok(false) => failures += 1,
                    Err(_) => {
                        failures += 1;
                        match connect(&tls, port).await {
                            Ok(s) => sender = s,
                            Err(_) => return (latencies, failures),
                        }
                    }
                }
            }
            (latencies, failures)
        });
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    while let Some(done) = workers.join_next().await {
        let (l, f) = done?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = server_histogram(&tls, port).await?;
    // The idle connections are still open and still answer.
    let mut idle_alive = 0;
    for sender in &mut held {
        if matches!(ask(sender, "/healthz", &Bytes::new()).await, Ok(true)) {
            idle_alive += 1;
        }
    }
    latencies.sort_unstable();
    let ms = |s: f64| {
        if s.is_finite() {
            serde_json::json!(s * 1e3)
        } else {
            serde_json::json!("inf")
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": latencies.len(),
            "failures": failures,
            "seconds": elapsed,
            "requests_per_second": latencies.len() as f64 / elapsed,
            "client_ms": {
                "p50": quantile(&latencies, 0.5) as f64 / 1e3,
                "p99": quantile(&latencies, 0.99) as f64 / 1e3,
                "p999": quantile(&latencies, 0.999) as f64 / 1e3,
            },
            "server_ms_at_most": {
                "p50": ms(bucket_quantile(&before, &after, 0.5)),
                "p99": ms(bucket_quantile(&before, &after, 0.99)),
                "p999": ms(bucket_quantile(&before, &after, 0.999)),
            },
            "idle_connections_held": idle,
            "idle_connections_still_answering": idle_alive,
        })
    );
    Ok(())
}
