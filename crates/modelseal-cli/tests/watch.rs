//! `modelseal watch` as a sidecar runs it: the real binary, real inotify events, probes
//! read over HTTP with reqwest. Each test changes the model the way an attacker or an
//! accident would, and checks /readyz turns within the time README "Watching a deployed
//! model" promises: after an event, the debounce (100 ms) plus the time to hash the
//! changed files; without one, the interval plus one paced pass.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Detection after an event: 100 ms of debounce and a few MiB hashed, with room for a
/// loaded 2-core CI machine running a debug build.
const AFTER_EVENT: Duration = Duration::from_secs(3);

struct Watcher {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    http: reqwest::Client,
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_modelseal"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A signed model (`model/`: a weights file of `weights` bytes, a config, a nested file)
/// in a fresh directory, with `publisher.key`.
fn signed_model(weights: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("model/tokenizer")).unwrap();
    let bytes: Vec<u8> = (0..weights).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(d.join("model/weights.bin"), bytes).unwrap();
    std::fs::write(d.join("model/config.json"), b"{\"layers\": 2}\n").unwrap();
    std::fs::write(d.join("model/tokenizer/vocab.txt"), b"a\nb\n").unwrap();
    run(d, &["keygen", "--out", "publisher.key"]);
    run(d, &["sign", "model", "--key", "publisher.key"]);
    dir
}

impl Watcher {
    fn start(dir: tempfile::TempDir, flags: &[&str]) -> Self {
        Self::start_at(dir, "model", flags)
    }

    /// Watches `model`, a path relative to `dir`.
    fn start_at(dir: tempfile::TempDir, model: &str, flags: &[&str]) -> Self {
        Self::start_as(dir, model, flags, None)
    }

    /// The same, run as user `uid` when given (the test must run as root).
    fn start_as(dir: tempfile::TempDir, model: &str, flags: &[&str], uid: Option<u32>) -> Self {
        use std::os::unix::process::CommandExt as _;
        let d = dir.path();
        let log = std::fs::File::create(d.join("watch.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_modelseal"));
        if let Some(uid) = uid {
            command.uid(uid);
        }
        // A policy names the signers itself; otherwise the publisher's key is trusted.
        let key: &[&str] = if flags.contains(&"--policy") {
            &[]
        } else {
            &["--key", "publisher.key.pub"]
        };
        let child = command
            .args(["watch", model, "--listen", "127.0.0.1:0"])
            .args(key)
            .args(flags)
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let port = loop {
            let listening = read_log(d).into_iter().find_map(|v| {
                (v["event"] == "listening").then(|| {
                    let addr = v["addr"].as_str().unwrap().to_owned();
                    addr.rsplit(':').next().unwrap().parse::<u16>().unwrap()
                })
            });
            if let Some(port) = listening {
                break port;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no listening line"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            dir,
            child,
            port,
            // Idle connections are dropped before the server's 5 s idle deadline, so a
            // request never races the server closing its connection.
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        let code = response.status().as_u16();
        (code, response.text().await.unwrap())
    }

    async fn readyz(&self) -> (u16, Value) {
        let (code, body) = self.get("/readyz").await;
        (code, serde_json::from_str(&body).unwrap())
    }

    /// Polls /readyz until it answers `code`, and returns how long that took. Fails after
    /// `within`.
    #[track_caller]
    fn wait_for(&self, code: u16, within: Duration) -> impl Future<Output = (Duration, Value)> {
        let caller = std::panic::Location::caller();
        async move {
            let started = Instant::now();
            loop {
                let (now, body) = self.readyz().await;
                if now == code {
                    return (started.elapsed(), body);
                }
                assert!(
                    started.elapsed() < within,
                    "{caller}: /readyz still {now} after {within:?}: {body}\nlog:\n{}",
                    std::fs::read_to_string(self.path("watch.log")).unwrap()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Waits until /readyz is 503 with a failure (not only keys pending a check).
    async fn wait_for_failure(&self) -> (Duration, Value) {
        self.wait_for_failure_within(AFTER_EVENT).await
    }

    async fn wait_for_failure_within(&self, within: Duration) -> (Duration, Value) {
        let started = Instant::now();
        loop {
            let (code, body) = self.readyz().await;
            if code == 503 && !failure_paths(&body).is_empty() {
                return (started.elapsed(), body);
            }
            assert!(
                started.elapsed() < within,
                "no failure after {within:?}: {code} {body}\nlog:\n{}",
                std::fs::read_to_string(self.path("watch.log")).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn log(&self) -> Vec<Value> {
        read_log(self.dir.path())
    }

    /// How many full passes have ended.
    fn passes(&self) -> usize {
        self.log().iter().filter(|v| v["event"] == "pass").count()
    }

    /// Waits until `n` passes have ended (fails after 20 s).
    async fn wait_for_passes(&self, n: usize) {
        let started = Instant::now();
        while self.passes() < n {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "pass did not end"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("watch.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 1], offset).unwrap();
}

fn failure_paths(body: &Value) -> Vec<String> {
    body["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_kind_of_change_is_refused_at_once_and_recovers_when_undone() {
    let w = Watcher::start(signed_model(4 << 20), &[]);
    w.wait_for(200, Duration::from_secs(20)).await;
    let weights = w.path("model/weights.bin");
    let original = std::fs::read(&weights).unwrap();

    // A changed byte, the same size.
    flip_byte(&weights, 4 << 19);
    let (took, body) = w.wait_for_failure().await;
    eprintln!("modified byte refused after {took:?}");
    assert_eq!(failure_paths(&body), ["weights.bin"], "{body}");
    assert!(
        body.to_string()
            .contains("do not match their signed digest"),
        "{body}"
    );
    flip_byte(&weights, 4 << 19);
    w.wait_for(200, AFTER_EVENT).await;

    // An added file: the file set no longer matches.
    std::fs::write(w.path("model/modeling_evil.py"), b"import os\n").unwrap();
    let body = w.wait_for_failure().await.1;
    assert!(
        body.to_string().contains("unsigned modeling_evil.py"),
        "{body}"
    );
    std::fs::remove_file(w.path("model/modeling_evil.py")).unwrap();
    w.wait_for(200, AFTER_EVENT).await;

    // A deleted file.
    let vocab = w.path("model/tokenizer/vocab.txt");
    std::fs::remove_file(&vocab).unwrap();
    let body = w.wait_for_failure().await.1;
    assert!(
        body.to_string().contains("missing tokenizer/vocab.txt"),
        "{body}"
    );
    std::fs::write(&vocab, b"a\nb\n").unwrap();
    w.wait_for(200, AFTER_EVENT).await;

    // A swapped file: other bytes renamed over it (a new inode, as `mv` or an unpacker
    // would leave it).
    let swap = w.path("swap.bin");
    let mut other = original.clone();
    other[0] ^= 0xff;
    std::fs::write(&swap, &other).unwrap();
    std::fs::rename(&swap, &weights).unwrap();
    let body = w.wait_for_failure().await.1;
    assert_eq!(failure_paths(&body), ["weights.bin"], "{body}");
    // Swapped back by the same means: a new inode with the signed bytes verifies.
    std::fs::write(&swap, &original).unwrap();
    std::fs::rename(&swap, &weights).unwrap();
    w.wait_for(200, AFTER_EVENT).await;

    // A swapped directory: the tokenizer directory replaced by one whose vocabulary has
    // other bytes of the same length.
    let planted = w.path("planted");
    std::fs::create_dir(&planted).unwrap();
    std::fs::write(planted.join("vocab.txt"), b"a\nc\n").unwrap();
    std::fs::rename(w.path("model/tokenizer"), w.path("old-tokenizer")).unwrap();
    std::fs::rename(&planted, w.path("model/tokenizer")).unwrap();
    let body = w.wait_for_failure().await.1;
    assert_eq!(failure_paths(&body), ["tokenizer/vocab.txt"], "{body}");
    std::fs::remove_dir_all(w.path("model/tokenizer")).unwrap();
    std::fs::rename(w.path("old-tokenizer"), w.path("model/tokenizer")).unwrap();
    w.wait_for(200, AFTER_EVENT).await;

    // The log has one change line per changed path, and the verdicts.
    let log = w.log();
    let changed: Vec<&str> = log
        .iter()
        .filter(|v| v["event"] == "change")
        .filter_map(|v| v["path"].as_str())
        .collect();
    for path in [
        "weights.bin",
        "modeling_evil.py",
        "tokenizer/vocab.txt",
        "tokenizer",
    ] {
        assert!(
            changed.contains(&path),
            "no change line for {path}: {changed:?}"
        );
    }
    let refused = log.iter().filter(|v| v["event"] == "refused").count();
    let recovered = log.iter().filter(|v| v["event"] == "recovered").count();
    assert!(
        refused >= 5 && recovered >= 5,
        "{refused} refused, {recovered} recovered"
    );
    assert!(log.iter().all(|v| v["time"].is_string()));

    assert_eq!(w.metric("modelseal_watch_ready").await, 1.0);
    assert!(w.metric("modelseal_watch_failures_total").await >= 5.0);
    // The first pass, and the weights hashed again after each of their changes.
    assert!(w.metric("modelseal_watch_bytes_rehashed_total").await >= (3 * (4 << 20)) as f64);
    assert!(w.metric("modelseal_watch_events_total").await >= 10.0);
    assert!(
        w.metric("modelseal_watch_last_verified_timestamp_seconds")
            .await
            > 1.7e9
    );
    assert_eq!(w.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn a_change_during_a_paced_pass_is_not_cleared_by_that_pass() {
    // 24 MiB at 8 MiB/s: each periodic pass reads the weights for 3 s, back to back.
    let w = Watcher::start(
        signed_model(24 << 20),
        &["--interval", "0s", "--max-read-rate", "8MiB"],
    );
    w.wait_for(200, Duration::from_secs(20)).await;
    let before = w.passes();
    // A second into a pass: its reader is past offset 0 of the weights, so the pass
    // itself hashed the old first bytes and would call the file fine.
    tokio::time::sleep(Duration::from_secs(1)).await;
    flip_byte(&w.path("model/weights.bin"), 0);
    let (took, body) = w.wait_for_failure().await;
    eprintln!("change during a pass refused after {took:?}");
    assert_eq!(failure_paths(&body), ["weights.bin"], "{body}");
    // When that pass ends (its verdict on the weights is stale) and when the next one
    // ends: still refused, with the failure, not merely pending.
    for n in 1..=2 {
        w.wait_for_passes(before + n).await;
        let (code, body) = w.readyz().await;
        assert_eq!(
            (code, failure_paths(&body)),
            (503, vec!["weights.bin".to_owned()]),
            "after pass {n}: {body}"
        );
    }
    // The paced passes kept to their rate: 24 MiB at 8 MiB/s is at least 3 s each.
    let seconds: Vec<f64> = w
        .log()
        .iter()
        .filter(|v| v["event"] == "pass" && v["trigger"] == "periodic")
        .filter_map(|v| v["seconds"].as_f64())
        .collect();
    assert!(seconds.iter().all(|s| *s >= 2.9), "{seconds:?}");
}

#[tokio::test]
async fn a_write_no_event_reports_is_caught_by_the_periodic_pass() {
    // The stat poll and the leases off: the periodic pass alone must find it.
    let w = Watcher::start(
        signed_model(1 << 20),
        &["--interval", "1s", "--stat-interval", "0", "--no-leases"],
    );
    w.wait_for(200, Duration::from_secs(20)).await;
    // A hard link outside the model reaches the same bytes: a write through it sends
    // no event for the model's directory watch.
    let outside = w.path("outside-link");
    std::fs::hard_link(w.path("model/weights.bin"), &outside).unwrap();
    flip_byte(&outside, 100);
    let (took, body) = w.wait_for_failure_within(Duration::from_secs(5)).await;
    eprintln!("missed write caught after {took:?}");
    assert_eq!(failure_paths(&body), ["weights.bin"], "{body}");
    let refusal = w
        .log()
        .into_iter()
        .find(|v| v["event"] == "refused")
        .expect("a refused line");
    assert_eq!(refusal["trigger"], "periodic", "{refusal}");
    // Restored the same way: the next pass recovers.
    flip_byte(&outside, 100);
    w.wait_for(200, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_write_through_a_hard_link_is_caught_by_the_stat_poll_long_before_a_pass() {
    // Without leases (which see the writer's open first: below), the stat poll.
    let w = Watcher::start(
        signed_model(1 << 20),
        &["--stat-interval", "500ms", "--no-leases"],
    );
    w.wait_for(200, Duration::from_secs(20)).await;
    let outside = w.path("outside-link");
    std::fs::hard_link(w.path("model/weights.bin"), &outside).unwrap();
    flip_byte(&outside, 100);
    // The pass interval is 10 minutes: only the stat poll can see this in time.
    let (took, body) = w.wait_for_failure_within(Duration::from_secs(4)).await;
    eprintln!("hard-link write caught by the stat poll after {took:?}");
    assert_eq!(failure_paths(&body), ["weights.bin"], "{body}");
    assert!(w.metric("modelseal_watch_stat_changes_total").await >= 1.0);
    flip_byte(&outside, 100);
    w.wait_for(200, Duration::from_secs(4)).await;
}

#[tokio::test]
async fn a_directory_above_the_model_swapped_for_a_tampered_copy_is_caught() {
    let dir = signed_model(1 << 20);
    let d = dir.path();
    std::fs::create_dir(d.join("deploy")).unwrap();
    std::fs::rename(d.join("model"), d.join("deploy/model")).unwrap();
    std::fs::rename(d.join("model.sig"), d.join("deploy/model.sig")).unwrap();
    let w = Watcher::start_at(dir, "deploy/model", &["--stat-interval", "500ms"]);
    w.wait_for(200, Duration::from_secs(20)).await;
    // A tampered copy of the whole tree, renamed over the directory above the model:
    // neither the model's watch nor its parent's hears of it.
    let copy = w.path("deploy-tampered");
    std::fs::create_dir_all(copy.join("model/tokenizer")).unwrap();
    for name in [
        "model.sig",
        "model/weights.bin",
        "model/config.json",
        "model/tokenizer/vocab.txt",
    ] {
        std::fs::copy(w.path("deploy").join(name), copy.join(name)).unwrap();
    }
    flip_byte(&copy.join("model/weights.bin"), 9);
    std::fs::rename(w.path("deploy"), w.path("deploy-old")).unwrap();
    std::fs::rename(&copy, w.path("deploy")).unwrap();
    let (took, body) = w.wait_for_failure_within(Duration::from_secs(4)).await;
    eprintln!("swapped ancestor caught after {took:?}");
    assert_eq!(failure_paths(&body), ["weights.bin"], "{body}");
    // And back: the original tree verifies again.
    std::fs::rename(w.path("deploy"), &copy).unwrap();
    std::fs::rename(w.path("deploy-old"), w.path("deploy")).unwrap();
    w.wait_for(200, Duration::from_secs(4)).await;
}

#[tokio::test]
async fn without_events_the_passes_alone_catch_a_change() {
    let w = Watcher::start(
        signed_model(1 << 20),
        &["--interval", "1s", "--no-events", "--stat-interval", "0"],
    );
    w.wait_for(200, Duration::from_secs(20)).await;
    flip_byte(&w.path("model/weights.bin"), 7);
    w.wait_for_failure_within(Duration::from_secs(5)).await;
    assert_eq!(w.metric("modelseal_watch_events_total").await, 0.0);
}

#[tokio::test]
async fn a_signature_for_another_model_is_refused() {
    let w = Watcher::start(signed_model(1 << 20), &[]);
    w.wait_for(200, Duration::from_secs(20)).await;
    let d = w.dir.path();
    // The same trusted key signed another model; its signature is put in place and the
    // model's files made to match it.
    std::fs::create_dir(d.join("other")).unwrap();
    for name in ["weights.bin", "config.json"] {
        std::fs::copy(d.join("model").join(name), d.join("other").join(name)).unwrap();
    }
    run(d, &["sign", "other", "--key", "publisher.key"]);
    let signed = std::fs::read(d.join("model.sig")).unwrap();
    std::fs::copy(d.join("other.sig"), d.join("model.sig")).unwrap();
    std::fs::rename(d.join("model/tokenizer"), d.join("tokenizer-aside")).unwrap();
    let body = w.wait_for_failure().await.1;
    assert!(
        body.to_string().contains("the signature now names"),
        "{body}"
    );
    std::fs::rename(d.join("tokenizer-aside"), d.join("model/tokenizer")).unwrap();
    std::fs::write(d.join("model.sig"), signed).unwrap();
    w.wait_for(200, AFTER_EVENT).await;
}

#[tokio::test]
async fn another_statement_about_the_same_root_is_refused() {
    // Found by an attack review: the same trusted key signed the same files again with
    // `--ignore notes`, so the root is equal, but notes/ may hold unsigned files. (An OMS
    // subject digest, which binds no file name, is open to the same swap.)
    let w = Watcher::start(signed_model(1 << 20), &[]);
    w.wait_for(200, Duration::from_secs(20)).await;
    let d = w.dir.path();
    let signed = std::fs::read(d.join("model.sig")).unwrap();
    run(
        d,
        &[
            "sign",
            "model",
            "--key",
            "publisher.key",
            "--ignore",
            "notes",
            "--signature",
            "ignoring.sig",
        ],
    );
    std::fs::create_dir(d.join("model/notes")).unwrap();
    std::fs::write(d.join("model/notes/evil.py"), b"import os\n").unwrap();
    std::fs::copy(d.join("ignoring.sig"), d.join("model.sig")).unwrap();
    let body = w.wait_for_failure().await.1;
    assert!(
        body.to_string().contains("makes another statement"),
        "{body}"
    );
    std::fs::remove_dir_all(d.join("model/notes")).unwrap();
    std::fs::write(d.join("model.sig"), signed).unwrap();
    w.wait_for(200, AFTER_EVENT).await;
}

#[tokio::test]
async fn an_untrusted_signer_is_never_ready_and_sigterm_stops_the_watch() {
    let dir = signed_model(1 << 10);
    run(dir.path(), &["keygen", "--out", "stranger.key"]);
    run(
        dir.path(),
        &["sign", "model", "--force", "--key", "stranger.key"],
    );
    let mut w = Watcher::start(dir, &[]);
    // The first pass has run (its line is logged) and the model is refused.
    let started = Instant::now();
    while !w.log().iter().any(|v| v["event"] == "pass") {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, body) = w.readyz().await;
    assert_eq!(code, 503);
    assert_eq!(failure_paths(&body), ["(model)"], "{body}");
    assert_eq!(w.get("/healthz").await.0, 200);
    let pid = w.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bad_arguments_exit_2_before_listening() {
    let dir = signed_model(1 << 10);
    let d = dir.path();
    let missing_key = Command::new(env!("CARGO_BIN_EXE_modelseal"))
        .args([
            "watch",
            "model",
            "--key",
            "no-such.pub",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    common::assert_exit(&missing_key, 2);
    assert!(common::stderr(&missing_key).contains("no-such.pub"));
    let bad_rate = Command::new(env!("CARGO_BIN_EXE_modelseal"))
        .args([
            "watch",
            "model",
            "--key",
            "publisher.key.pub",
            "--max-read-rate",
            "fast",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    common::assert_exit(&bad_rate, 2);
}

#[tokio::test]
async fn an_oms_signed_model_is_watched_shard_by_shard() {
    let dir = signed_model(3 << 20);
    let d = dir.path();
    run(
        d,
        &[
            "keygen",
            "--out",
            "publisher.key",
            "--algorithm",
            "ecdsa-p256",
            "--force",
        ],
    );
    run(
        d,
        &[
            "sign",
            "model",
            "--force",
            "--key",
            "publisher.key",
            "--format",
            "oms",
            "--method",
            "shards",
            "--shard-size",
            "1048576",
        ],
    );
    let w = Watcher::start(dir, &[]);
    w.wait_for(200, Duration::from_secs(20)).await;
    flip_byte(&w.path("model/weights.bin"), (2 << 20) + 5);
    let body = w.wait_for_failure().await.1;
    assert_eq!(failure_paths(&body), ["weights.bin"], "{body}");
    assert!(
        body.to_string().contains("offset 2097152"),
        "the third shard: {body}"
    );
    flip_byte(&w.path("model/weights.bin"), (2 << 20) + 5);
    w.wait_for(200, AFTER_EVENT).await;
}

#[tokio::test]
async fn clients_that_never_finish_a_request_are_closed_while_probes_are_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = Watcher::start(signed_model(1 << 16), &[]);
    w.wait_for(200, Duration::from_secs(20)).await;
    let mut held = Vec::new();
    for i in 0..300 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", w.port))
            .await
            .unwrap();
        if i % 2 == 0 {
            tcp.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        held.push(tcp);
    }
    // Probes are answered meanwhile.
    let (code, _) = w.readyz().await;
    assert_eq!(code, 200);
    // Every held connection is closed by the header deadline (5 s), not left open.
    let started = Instant::now();
    for mut tcp in held {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "a connection was still open after {:?}",
            started.elapsed()
        );
    }
    eprintln!(
        "300 unfinished requests closed after {:?}",
        started.elapsed()
    );
    let (code, _) = w.readyz().await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn a_readyz_body_lists_at_most_100_failures_and_counts_them_all() {
    let dir = signed_model(1 << 10);
    let d = dir.path();
    for i in 0..150 {
        std::fs::write(
            d.join(format!("model/tokenizer/part-{i:03}.txt")),
            [i as u8; 64],
        )
        .unwrap();
    }
    std::fs::remove_file(d.join("model.sig")).unwrap();
    run(d, &["sign", "model", "--key", "publisher.key"]);
    let w = Watcher::start(dir, &[]);
    w.wait_for(200, Duration::from_secs(20)).await;
    for i in 0..150 {
        flip_byte(&w.path(&format!("model/tokenizer/part-{i:03}.txt")), 3);
    }
    let started = Instant::now();
    let body = loop {
        let (code, body) = w.readyz().await;
        if code == 503 && body["failureCount"] == 150 {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["failures"].as_array().unwrap().len(), 100, "{body}");
    let unready = w
        .log()
        .into_iter()
        .find(|v| v["event"] == "unready")
        .unwrap();
    assert!(unready["pending"].as_array().unwrap().len() <= 100);
}

#[tokio::test]
async fn a_link_repointed_during_a_pass_is_not_cleared_by_that_pass() {
    // Signed with links followed: z.bin -> blobs/x.bin. y.bin is signed too, with other
    // bytes of the same size, so pointing z.bin at it changes what z.bin holds.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("model/blobs")).unwrap();
    let big: Vec<u8> = (0..24usize << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.join("model/a.bin"), big).unwrap();
    std::fs::write(d.join("model/blobs/x.bin"), [1u8; 4096]).unwrap();
    std::fs::write(d.join("model/blobs/y.bin"), [2u8; 4096]).unwrap();
    std::os::unix::fs::symlink("blobs/x.bin", d.join("model/z.bin")).unwrap();
    run(d, &["keygen", "--out", "publisher.key"]);
    run(
        d,
        &[
            "sign",
            "model",
            "--key",
            "publisher.key",
            "--allow-symlinks",
        ],
    );
    // Each periodic pass reads a.bin for 3 s before it reaches z.bin, with the link
    // target its reader resolved when the pass began.
    let w = Watcher::start(dir, &["--interval", "0s", "--max-read-rate", "8MiB"]);
    w.wait_for(200, Duration::from_secs(20)).await;
    let before = w.passes();
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::os::unix::fs::symlink("blobs/y.bin", w.path("z.tmp")).unwrap();
    std::fs::rename(w.path("z.tmp"), w.path("model/z.bin")).unwrap();
    let (took, body) = w.wait_for_failure().await;
    eprintln!("repointed link refused after {took:?}");
    assert_eq!(failure_paths(&body), ["z.bin"], "{body}");
    for n in 1..=2 {
        w.wait_for_passes(before + n).await;
        // The pass found the name moved and made it pending: never ready, and the
        // event checker refuses it again.
        let started = Instant::now();
        loop {
            let (code, body) = w.readyz().await;
            assert_eq!(code, 503, "after pass {n}: {body}");
            if failure_paths(&body) == ["z.bin"] {
                break;
            }
            assert!(started.elapsed() < AFTER_EVENT, "after pass {n}: {body}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn an_unsigned_name_in_the_model_directory_rehashes_nothing() {
    // Names come and go beside the signed files (locks, caches): with unsigned files
    // allowed, the model's check alone decides, and no signed byte is read again.
    let w = Watcher::start(
        signed_model(4 << 20),
        &["--ignore-unsigned-files", "--stat-interval", "200ms"],
    );
    w.wait_for(200, Duration::from_secs(20)).await;
    let bytes = w.metric("modelseal_watch_bytes_rehashed_total").await;
    for i in 0..6 {
        std::fs::write(w.path(&format!("model/lock-{i}")), b"x").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    w.wait_for(200, Duration::from_secs(5)).await;
    assert!(w.metric("modelseal_watch_stat_changes_total").await >= 1.0);
    assert_eq!(
        w.metric("modelseal_watch_bytes_rehashed_total").await,
        bytes
    );
}

#[tokio::test]
async fn a_writer_is_seen_before_its_first_write_under_any_name() {
    // The leases: opening a signed file for writing, here through a hard link outside
    // the model (no event, no timestamp moved), returns only after watch has marked the
    // file changed. Events and the stat poll are off, so nothing else can see it.
    let w = Watcher::start(
        signed_model(1 << 20),
        &["--no-events", "--stat-interval", "0"],
    );
    w.wait_for(200, Duration::from_secs(20)).await;
    let outside = w.path("outside-link");
    std::fs::hard_link(w.path("model/weights.bin"), &outside).unwrap();
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&outside)
        .unwrap();
    let (code, body) = w.readyz().await;
    assert_eq!(code, 503, "ready while a writer holds the file: {body}");
    // While it stays open, the file is refused, naming why, even though not a byte
    // changed.
    let (_, body) = w.wait_for_failure_within(AFTER_EVENT).await;
    assert_eq!(failure_paths(&body), ["weights.bin"], "{body}");
    assert!(body.to_string().contains("open for writing"), "{body}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.readyz().await.0, 503);
    // The writer gone, the file is checked afresh and passes.
    drop(writer);
    w.wait_for(200, AFTER_EVENT).await;
}

#[tokio::test]
async fn a_file_held_open_for_writing_when_watch_starts_is_refused_until_closed() {
    let dir = signed_model(4096);
    let writer = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("model/config.json"))
        .unwrap();
    let w = Watcher::start(dir, &[]);
    let (_, body) = w.wait_for_failure_within(Duration::from_secs(20)).await;
    assert_eq!(failure_paths(&body), ["config.json"], "{body}");
    drop(writer);
    w.wait_for(200, AFTER_EVENT).await;
}

#[tokio::test]
async fn a_filesystem_mounted_inside_the_model_is_seen_at_once() {
    // A directory mounted over an empty directory of the model, holding a new `.py`:
    // no event, and no stamp need move. The mount table says it. Needs root (mount).
    let dir = signed_model(4096);
    std::fs::create_dir(dir.path().join("model/empty")).unwrap();
    let evil = dir.path().join("evil");
    std::fs::create_dir(&evil).unwrap();
    std::fs::write(evil.join("modeling_evil.py"), b"import os\n").unwrap();
    let w = Watcher::start(dir, &["--no-events", "--stat-interval", "0"]);
    w.wait_for(200, Duration::from_secs(20)).await;
    let target = w.path("model/empty");
    let mounted = Command::new("mount")
        .arg("--bind")
        .arg(&evil)
        .arg(&target)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: `mount --bind` is not allowed here (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let mount = Unmount(target);
    let (took, body) = w.wait_for_failure_within(AFTER_EVENT).await;
    drop(mount);
    eprintln!("mount inside the model seen after {took:?}");
    assert!(body.to_string().contains("modeling_evil.py"), "{body}");
    w.wait_for(200, AFTER_EVENT).await;
}

#[tokio::test]
async fn leases_off_is_said_in_the_start_line() {
    let w = Watcher::start(signed_model(4096), &["--no-leases"]);
    w.wait_for(200, Duration::from_secs(20)).await;
    let start = w.log().into_iter().find(|v| v["event"] == "start").unwrap();
    assert_eq!(start["leases"], false, "{start}");
}

#[tokio::test]
async fn an_unsigned_file_in_a_new_directory_is_seen_with_events_off() {
    // Every directory of the model is stamped, not only those holding signed files:
    // a new directory moves its parent's stamp, and a file put into it moves its own
    // (fourth attack review).
    let w = Watcher::start(
        signed_model(4096),
        &["--no-events", "--stat-interval", "300ms"],
    );
    w.wait_for(200, Duration::from_secs(20)).await;
    let fresh = w.path("model/tokenizer/new");
    std::fs::create_dir(&fresh).unwrap();
    // Long enough for the stat poll to see the directory and a check to stamp it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::write(fresh.join("modeling_evil.py"), b"import os\n").unwrap();
    let (took, body) = w.wait_for_failure_within(AFTER_EVENT).await;
    eprintln!("unsigned file in a new directory seen after {took:?}");
    assert!(body.to_string().contains("modeling_evil.py"), "{body}");
}

#[tokio::test]
async fn a_file_watch_cannot_lease_is_refused_unless_leases_are_turned_off() {
    // Run as a user who neither owns the model's files nor has CAP_LEASE: the kernel
    // refuses the leases, and watch fails closed, saying why and what to do.
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("SKIPPED: needs root to run watch as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let open_up = |dir: &tempfile::TempDir| {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            dir.path().join("publisher.key.pub"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    };
    let dir = signed_model(4096);
    open_up(&dir);
    let w = Watcher::start_as(dir, "model", &[], Some(4321));
    let (_, body) = w.wait_for_failure_within(Duration::from_secs(20)).await;
    assert!(body.to_string().contains("CAP_LEASE"), "{body}");
    assert_eq!(w.readyz().await.0, 503);
    let dir = signed_model(4096);
    open_up(&dir);
    let w = Watcher::start_as(dir, "model", &["--no-leases"], Some(4321));
    w.wait_for(200, Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_fifo_swapped_in_for_a_signed_file_does_not_stall_the_watch() {
    // Opened to take a lease, a FIFO would block its reader until someone writes to it,
    // and a stalled lease thread would let the next writer through unreported.
    let w = Watcher::start(signed_model(4096), &[]);
    w.wait_for(200, Duration::from_secs(20)).await;
    let weights = w.path("model/weights.bin");
    let kept = std::fs::read(&weights).unwrap();
    std::fs::remove_file(&weights).unwrap();
    let made = Command::new("mkfifo").arg(&weights).status().unwrap();
    assert!(made.success());
    w.wait_for(503, AFTER_EVENT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::remove_file(&weights).unwrap();
    std::fs::write(&weights, &kept).unwrap();
    w.wait_for(200, AFTER_EVENT).await;
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap();
    assert_eq!(w.readyz().await.0, 503, "the writer went unseen");
    drop(writer);
    w.wait_for(200, AFTER_EVENT).await;
}

#[tokio::test]
async fn a_fifo_swapped_in_for_the_signature_does_not_stall_the_watch() {
    // The signature was opened blocking: a FIFO in its place hung the checker in open(),
    // and /readyz stayed 503 after the genuine signature came back.
    let w = Watcher::start(signed_model(4096), &[]);
    w.wait_for(200, Duration::from_secs(20)).await;
    let signature = w.path("model.sig");
    let kept = std::fs::read(&signature).unwrap();
    std::fs::remove_file(&signature).unwrap();
    let made = Command::new("mkfifo").arg(&signature).status().unwrap();
    assert!(made.success());
    w.wait_for(503, AFTER_EVENT).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    std::fs::remove_file(&signature).unwrap();
    std::fs::write(&signature, &kept).unwrap();
    w.wait_for(200, AFTER_EVENT).await;
}

#[tokio::test]
async fn bytes_written_to_an_accepted_empty_file_are_seen_through_any_name() {
    // An OMS `shards` signature cannot list an empty file; --allow-unsigned-empty-files
    // accepts one. Code written into it through a hard link made beforehand (so no event
    // names the model), with events on and with events off, must turn the watch unready
    // as `verify` would refuse it (eleventh attack review; both stayed ready on main).
    for flags in [
        &["--allow-unsigned-empty-files"][..],
        &[
            "--allow-unsigned-empty-files",
            "--no-events",
            "--stat-interval",
            "300ms",
        ][..],
    ] {
        let dir = signed_model(3 << 20);
        let d = dir.path();
        std::fs::create_dir(d.join("model/pkg")).unwrap();
        std::fs::write(d.join("model/pkg/__init__.py"), b"").unwrap();
        run(
            d,
            &[
                "keygen",
                "--out",
                "publisher.key",
                "--algorithm",
                "ecdsa-p256",
                "--force",
            ],
        );
        run(
            d,
            &[
                "sign",
                "model",
                "--force",
                "--key",
                "publisher.key",
                "--format",
                "oms",
                "--method",
                "shards",
            ],
        );
        let outside = d.join("elsewhere.py");
        std::fs::hard_link(d.join("model/pkg/__init__.py"), &outside).unwrap();
        let w = Watcher::start(dir, flags);
        w.wait_for(200, Duration::from_secs(20)).await;
        std::fs::write(&outside, b"import os; os.system('id')\n").unwrap();
        let (took, body) = w.wait_for_failure_within(AFTER_EVENT).await;
        eprintln!("{flags:?}: a write to an accepted empty file seen after {took:?}");
        assert!(body.to_string().contains("__init__.py"), "{body}");
    }
}

#[tokio::test]
async fn a_policy_edited_or_a_key_file_removed_after_start_is_followed() {
    // Eleventh attack review: `watch --policy` read its policy once, so a model denied
    // later, or a publisher key revoked by removing its file, stayed ready (as `serve`
    // would not let it).
    let dir = signed_model(4096);
    let d = dir.path();
    let root = run(d, &["hash", "model"]);
    let root = root.split_whitespace().next().unwrap().to_owned();
    let policy = |extra: &str| {
        format!(
            "max_depth = 1\n{extra}\n[[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.key.pub\"\n"
        )
    };
    std::fs::write(d.join("policy.toml"), policy("")).unwrap();
    let w = Watcher::start(dir, &["--policy", "policy.toml"]);
    w.wait_for(200, Duration::from_secs(20)).await;

    std::fs::write(
        w.path("policy.toml"),
        policy(&format!("[models]\ndeny = [\"{root}\"]\n")),
    )
    .unwrap();
    let (took, body) = w.wait_for_failure_within(AFTER_EVENT).await;
    eprintln!("a deny rule added was in force after {took:?}");
    assert!(body.to_string().contains("denied"), "{body}");

    std::fs::write(w.path("policy.toml"), policy("")).unwrap();
    w.wait_for(200, AFTER_EVENT).await;

    // The key file removed: the policy no longer loads, and the model is not judged by
    // the old rules meanwhile.
    std::fs::rename(w.path("publisher.key.pub"), w.path("revoked.pub")).unwrap();
    let (_, body) = w.wait_for_failure_within(AFTER_EVENT).await;
    assert!(
        body.to_string().contains("policy cannot be loaded"),
        "{body}"
    );
    std::fs::rename(w.path("revoked.pub"), w.path("publisher.key.pub")).unwrap();
    w.wait_for(200, AFTER_EVENT).await;
}

#[tokio::test]
async fn an_oms_model_under_rules_naming_blake3_roots_is_refused_not_misjudged() {
    // The reader does not hash up front, so it cannot learn an OMS-signed model's BLAKE3
    // root: under a policy that denies by BLAKE3 root the model is refused, never judged
    // by a digest the rule does not name (eleventh attack review; ready on main).
    let dir = signed_model(4096);
    let d = dir.path();
    run(
        d,
        &[
            "keygen",
            "--out",
            "publisher.key",
            "--algorithm",
            "ecdsa-p256",
            "--force",
        ],
    );
    run(
        d,
        &[
            "sign",
            "model",
            "--force",
            "--key",
            "publisher.key",
            "--format",
            "oms",
        ],
    );
    let root = run(d, &["hash", "model"]);
    let root = root.split_whitespace().next().unwrap().to_owned();
    std::fs::write(
        d.join("policy.toml"),
        format!(
            "max_depth = 1\n[models]\ndeny = [\"{root}\"]\n[[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.key.pub\"\n"
        ),
    )
    .unwrap();
    let w = Watcher::start(dir, &["--policy", "policy.toml"]);
    let (_, body) = w.wait_for_failure_within(Duration::from_secs(20)).await;
    assert!(body.to_string().contains("BLAKE3 root"), "{body}");
}
