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
async fn bodies_beyond_the_shared_byte_budget_are_shed_not_buffered() {
    let _serial = SERIAL.lock().await;
    let w = world();
    let d = w.dir.path();
    let server = modelseal_webhook::start(config(d, "[limits]\nbody_bytes_in_flight = 65536\n"))
        .await
        .unwrap();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let http = client(d);
    // A body declared larger than the whole budget (though under max_body_bytes) is shed
    // with 503 at once; a normal review still fits, before and after.
    let (status, _) = post(
        &http,
        &format!("{base}/validate"),
        &review("b-1", json!({"modelseal.dev/model": w.model}), false),
    )
    .await;
    assert_eq!(status, 200);
    let big = http
        .post(format!("{base}/validate"))
        .header("content-type", "application/json")
        .body(vec![b' '; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 503);
    for i in 0..20 {
        let (status, body) = post(
            &http,
            &format!("{base}/validate"),
            &review(
                &format!("b-{i}"),
                json!({"modelseal.dev/model": w.model}),
                false,
            ),
        )
        .await;
        assert_eq!(
            status, 200,
            "the budget is returned after each request: {body}"
        );
    }
    let page = metrics_page(&http, &base).await;
    assert_eq!(metric(&page, "modelseal_bodies_shed_total"), 1.0);
    server.shutdown().await;
}
