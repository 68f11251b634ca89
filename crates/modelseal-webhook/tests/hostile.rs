//! Faults injected into decisions of a server running over real TLS: a panic, a store
//! that never answers, a server full of stalled decisions, and a long run through a
//! small cache. Serialised: two of them count this process's threads.

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use modelseal_core::ArtifactDigest;
use modelseal_webhook::config::DecisionHook;
use serde_json::json;

use common::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A gate that holds every decision reaching it until the test opens it (at the end, so
/// the runtime can shut down): a store that, meanwhile, never answers.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    entered: Mutex<usize>,
}

impl Gate {
    /// Holds decisions of every digest but `spared`.
    fn hook(self: &Arc<Self>, spared: Option<&str>) -> DecisionHook {
        let gate = Arc::clone(self);
        let spared = spared.map(str::to_owned);
        Arc::new(move |digest: &ArtifactDigest| {
            if spared.as_deref() == Some(digest.to_string().as_str()) {
                return;
            }
            *gate.entered.lock().unwrap() += 1;
            let mut open = gate.open.lock().unwrap();
            while !*open {
                open = gate.opened.wait(open).unwrap();
            }
        })
    }

    fn release(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.opened.notify_all();
    }

    /// Opens the gate when dropped, so a failing assertion does not leave the runtime
    /// waiting for its blocked workers forever.
    fn opened_on_drop(self: &Arc<Self>) -> impl Drop {
        struct Opener(Arc<Gate>);
        impl Drop for Opener {
            fn drop(&mut self) {
                self.0.release();
            }
        }
        Opener(Arc::clone(self))
    }
}

async fn metrics_page(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_decision_code_is_a_denial_even_with_fail_open() {
    let _serial = SERIAL.lock().await;
    let w = world();
    let d = w.dir.path();
    let mut config = config(d, "fail_open = true\n");
    config.hooks.before_decision = Some(Arc::new(|_: &ArtifactDigest| {
        panic!("injected by the test");
    }));
    let server = modelseal_webhook::start(config).await.unwrap();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let http = client(d);
    let (status, body) = post(
        &http,
        &format!("{base}/validate?timeout=5s"),
        &review("p-1", json!({"modelseal.dev/model": w.model}), false),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["response"]["allowed"], false, "{body}");
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("internal error"), "{message}");
    let page = metrics_page(&http, &base).await;
    assert_eq!(metric(&page, "modelseal_decision_panics_total"), 1.0);
    assert_eq!(metric(&page, "modelseal_decision_timeouts_total"), 0.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_never_answers_costs_a_fixed_number_of_threads() {
    let _serial = SERIAL.lock().await;
    let w = world();
    let d = w.dir.path();
    let gate = Arc::new(Gate::default());
    let _open_at_end = gate.opened_on_drop();
    let mut config = config(
        d,
        "cache_ttl_seconds = 600\n[limits]\nblocking_threads = 2\n",
    );
    // The store answers for the verified model and stalls for every other digest.
    config.hooks.before_decision = Some(gate.hook(Some(&w.model)));
    let server = modelseal_webhook::start(config).await.unwrap();
    let stalled = format!("blake3:{}", "ab".repeat(32));
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let http = client(d);
    let validate = format!("{base}/validate?timeout=300ms");
    let ask = |uid: String, digest: String| {
        let http = http.clone();
        let validate = validate.clone();
        async move {
            post(
                &http,
                &validate,
                &review(&uid, json!({"modelseal.dev/model": digest}), false),
            )
            .await
        }
    };
    // Connections and runtime threads exist before the count is taken.
    let (_, first) = ask("model".into(), w.model.clone()).await;
    assert_eq!(first["response"]["allowed"], true, "{first}");
    let (_, first) = ask("warm".into(), stalled.clone()).await;
    assert_eq!(first["response"]["allowed"], false, "the gate holds it");
    let before = threads();
    let started = Instant::now();
    for round in 0..10 {
        let asks = (0..10).map(|i| ask(format!("s-{round}-{i}"), stalled.clone()));
        for (status, body) in futures_join(asks).await {
            assert_eq!(status, 200);
            assert_eq!(body["response"]["allowed"], false, "{body}");
            let message = body["response"]["status"]["message"].as_str().unwrap();
            assert!(message.contains("could not verify"), "{message}");
        }
    }
    let after = threads();
    let elapsed = started.elapsed();
    assert!(
        after <= before + 2,
        "100 stalled decisions grew the process from {before} to {after} threads"
    );
    // Each round waits at most one deadline: the requests are answered, not queued
    // behind the stuck workers.
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    assert_eq!(
        *gate.entered.lock().unwrap(),
        2,
        "only the two workers ever reached the store"
    );
    // Cached decisions are made on the async threads: the stall does not reach them.
    let (_, cached) = ask("cached".into(), w.model.clone()).await;
    assert_eq!(cached["response"]["allowed"], true, "{cached}");
    let page = metrics_page(&http, &base).await;
    assert_eq!(metric(&page, "modelseal_workers_busy"), 2.0);
    assert_eq!(metric(&page, "modelseal_decision_timeouts_total"), 101.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_sheds_with_503_rather_than_queueing() {
    let _serial = SERIAL.lock().await;
    let w = world();
    let d = w.dir.path();
    let gate = Arc::new(Gate::default());
    let _open_at_end = gate.opened_on_drop();
    let mut config = config(
        d,
        "cache_ttl_seconds = 600\n[limits]\nblocking_threads = 1\nmax_in_flight = 3\n",
    );
    config.hooks.before_decision = Some(gate.hook(None));
    let server = modelseal_webhook::start(config).await.unwrap();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let http = client(d);
    let validate = format!("{base}/validate?timeout=3s");
    let asks = (0..12).map(|i| {
        let http = http.clone();
        let validate = validate.clone();
        async move {
            let digest = format!("blake3:{:064x}", i + 1);
            let response = http
                .post(&validate)
                .json(&review(
                    &format!("f-{i}"),
                    json!({"modelseal.dev/model": digest}),
                    false,
                ))
                .send()
                .await
                .unwrap();
            let retry = response.headers().get("retry-after").cloned();
            (response.status().as_u16(), retry)
        }
    });
    let answers = futures_join(asks).await;
    let shed = answers.iter().filter(|(s, _)| *s == 503).count();
    assert_eq!(shed, 9, "3 in flight, the other 9 shed: {answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s == 503)
            .all(|(_, retry)| retry.as_ref().is_some_and(|r| r == "1"))
    );
    let page = metrics_page(&http, &base).await;
    assert_eq!(metric(&page, "modelseal_requests_shed_total"), 9.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_stays_within_its_bounds_over_a_long_run() {
    let _serial = SERIAL.lock().await;
    let w = world();
    let d = w.dir.path();
    write_policy(
        d,
        "[models]\nrequire = [\"https://modelseal.dev/manifest/v1\"]\n",
    );
    let models: Vec<String> = (0..120)
        .map(|i| signed_model(d, &format!("m{i}"), &w.publisher))
        .collect();
    let server =
        modelseal_webhook::start(config(d, "cache_entries = 16\ncache_ttl_seconds = 600\n"))
            .await
            .unwrap();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let http = client(d);
    let validate = format!("{base}/validate?timeout=10s");
    let mut most = 0;
    for round in 0..5 {
        for (i, model) in models.iter().enumerate() {
            let (_, body) = post(
                &http,
                &validate,
                &review(
                    &format!("c-{round}-{i}"),
                    json!({"modelseal.dev/model": model}),
                    false,
                ),
            )
            .await;
            assert_eq!(body["response"]["allowed"], true, "{body}");
            most = most.max(server.cache_len());
        }
    }
    assert!(most <= 16, "the cache held {most} entries");
    assert!(most >= 8, "the cache was used: {most}");
    let page = metrics_page(&http, &base).await;
    assert!(metric(&page, "modelseal_cache_entries") <= 16.0);
    server.shutdown().await;
}

/// A TLS connection to the server that has sent a request head and part of its body.
async fn half_sent_body(
    dir: &std::path::Path,
    port: u16,
    declared: usize,
    sent: usize,
) -> impl Drop {
    use tokio::io::AsyncWriteExt as _;
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&vec![b' '; sent]).await.unwrap();
    tls.flush().await.unwrap();
    struct Held(#[allow(dead_code)] tokio_rustls::client::TlsStream<tokio::net::TcpStream>);
    impl Drop for Held {
        fn drop(&mut self) {}
    }
    Held(tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_the_shared_byte_budget_are_shed_not_buffered() {
    let _serial = SERIAL.lock().await;
    let w = world();
    let d = w.dir.path();
    let server = modelseal_webhook::start(config(
        d,
        "max_body_bytes = 65536\n[limits]\nbody_bytes_in_flight = 65536\n",
    ))
    .await
    .unwrap();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let http = client(d);
    let validate = format!("{base}/validate");
    let ask = |uid: String| {
        let (http, validate) = (http.clone(), validate.clone());
        let body = review(&uid, json!({"modelseal.dev/model": w.model}), false);
        async move { post(&http, &validate, &body).await }
    };
    assert_eq!(ask("before".into()).await.0, 200);
    // A client trickling a body holds the share it has sent (40 KiB), no more.
    let held = half_sent_body(d, server.addr.port(), 60_000, 40_000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        ask("small-fits".into()).await.0,
        200,
        "a small review still fits beside it"
    );
    let big = http
        .post(format!("{base}/validate"))
        .header("content-type", "application/json")
        .body(vec![b' '; 40_000])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 503, "40 KiB more does not fit");
    assert_eq!(big.headers()["retry-after"], "1");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..20 {
        let (status, body) = ask(format!("after-{i}")).await;
        assert_eq!(
            status, 200,
            "the budget is returned when a body ends: {body}"
        );
    }
    let page = metrics_page(&http, &base).await;
    assert_eq!(metric(&page, "modelseal_bodies_shed_total"), 1.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_made_in_time_is_not_outweighed_by_fail_open() {
    let _serial = SERIAL.lock().await;
    let w = world();
    let d = w.dir.path();
    let gate = Arc::new(Gate::default());
    let _open_at_end = gate.opened_on_drop();
    let mut config = config(d, "fail_open = true\n");
    // The rogue model is decided (refused) at once; every other digest stalls.
    config.hooks.before_decision = Some(gate.hook(Some(&w.rogue_model)));
    let server = modelseal_webhook::start(config).await.unwrap();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let http = client(d);
    let stalled = format!("blake3:{}", "ab".repeat(32));
    let validate = format!("{base}/validate?timeout=500ms");
    // Refused first, then one that would time out: the request is refused, at once.
    let annotation = format!("{},{stalled}", w.rogue_model);
    let started = Instant::now();
    let (_, body) = post(
        &http,
        &validate,
        &review("r-1", json!({"modelseal.dev/model": annotation}), false),
    )
    .await;
    assert_eq!(body["response"]["allowed"], false, "{body}");
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("not signed by a trusted model-publisher"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    // The same digest named thousands of times is decided once.
    let many = vec![w.rogue_model.as_str(); 3000].join(",");
    let (_, body) = post(
        &http,
        &validate,
        &review("r-2", json!({"modelseal.dev/model": many}), false),
    )
    .await;
    assert_eq!(body["response"]["allowed"], false, "{body}");
    // Seventeen distinct models are refused before any decision, fail_open or not.
    let seventeen = (1..=17)
        .map(|i| format!("blake3:{i:064x}"))
        .collect::<Vec<_>>()
        .join(",");
    let (_, body) = post(
        &http,
        &validate,
        &review("r-3", json!({"modelseal.dev/model": seventeen}), false),
    )
    .await;
    assert_eq!(body["response"]["allowed"], false, "{body}");
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("more than 16 models"), "{message}");
    let page = metrics_page(&http, &base).await;
    assert_eq!(metric(&page, "modelseal_decision_timeouts_total"), 0.0);
    assert_eq!(
        *gate.entered.lock().unwrap(),
        0,
        "no stalled digest was reached"
    );
    server.shutdown().await;
}

/// Runs futures concurrently, each on its own task, and collects their outputs in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_by_another_key_beside_the_good_one_does_not_keep_a_yes_out_of_the_cache() {
    let _serial = SERIAL.lock().await;
    let w = world();
    let d = w.dir.path();
    // Another team's signature over the same model, in the shared store: not used, but
    // nothing is wrong with it as a file.
    let other = modelseal_core::sign_model(
        &d.join("model"),
        &modelseal_core::SignOptions::default(),
        &key(),
        &modelseal_core::hash::NoProgress,
    )
    .unwrap();
    std::fs::write(d.join("other.sig"), other.bundle.to_json()).unwrap();
    modelseal_lineage::store::AttestationStore::open(&d.join("store"))
        .add(&d.join("other.sig"))
        .unwrap();
    let server = modelseal_webhook::start(config(d, "cache_ttl_seconds = 600\n"))
        .await
        .unwrap();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let http = client(d);
    for uid in ["first", "second"] {
        let (_, body) = post(
            &http,
            &format!("{base}/validate"),
            &review(uid, json!({"modelseal.dev/model": w.model}), false),
        )
        .await;
        assert_eq!(body["response"]["allowed"], true, "{body}");
    }
    let page = metrics_page(&http, &base).await;
    assert_eq!(metric(&page, "modelseal_cache_hits_total"), 1.0, "{page}");
    assert_eq!(metric(&page, "modelseal_store_errors_total"), 0.0, "{page}");
    server.shutdown().await;
}
