//! `modelseal serve` as a separate process over real TLS, tried as a hostile client and a
//! hostile store would: connections that never finish their headers (HTTP/1.1 and
//! HTTP/2) or never finish their handshake, a body that never ends, a multi-GiB file
//! planted in the store, readiness when the store, policy or certificate go bad, and
//! SIGTERM with a request in flight.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// A CA, and serving certificates for 127.0.0.1 that it signs.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Names distinct from the leaf's, or OpenSSL-based clients take the leaf for
        // a self-signed certificate.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "modelseal test CA");
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// Writes `tls.pem` and `tls.key` (via a rename, as a Secret update does), valid
    /// until `not_after`.
    fn serve_as_localhost(&self, dir: &Path, not_after: time::OffsetDateTime) {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        params.not_before = not_after - time::Duration::days(2);
        params.not_after = not_after;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        for (name, text) in [("tls.key", key.serialize_pem()), ("tls.pem", cert.pem())] {
            std::fs::write(dir.join(format!("{name}.tmp")), text).unwrap();
            std::fs::rename(dir.join(format!("{name}.tmp")), dir.join(name)).unwrap();
        }
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.issuer.pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap()
    }

    fn tls(&self, alpn: &[u8]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// A signed model in a store, a policy trusting its publisher, and `modelseal serve`
/// running over them with short limits.
struct Server {
    dir: tempfile::TempDir,
    authority: Authority,
    child: Child,
    port: u16,
    model: String,
}

impl Server {
    fn start(limits: &str) -> Self {
        Self::start_with("", limits)
    }

    /// As [`Server::start`], with `top` added to the configuration's top-level keys.
    fn start_with(top: &str, limits: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_modelseal"))
                .args(args)
                .current_dir(d)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
            String::from_utf8(out.stdout).unwrap()
        };
        run(&["keygen", "--out", "publisher.key"]);
        std::fs::create_dir(d.join("model")).unwrap();
        std::fs::write(d.join("model/weights.bin"), vec![7u8; 50_000]).unwrap();
        run(&["sign", "model", "--key", "publisher.key"]);
        run(&["store", "add", "store", "model.sig"]);
        let model = run(&["hash", "model"])
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        std::fs::write(
            d.join("policy.toml"),
            "[models]\nrequire = [\"https://modelseal.dev/manifest/v1\"]\n\n\
             [[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.key.pub\"\n",
        )
        .unwrap();
        // For configurations that turn the registry endpoint on.
        std::fs::write(d.join("admit.token"), "the-right-token-of-some-length\n").unwrap();
        let authority = Authority::new();
        authority.serve_as_localhost(d, time::OffsetDateTime::now_utc() + time::Duration::days(1));
        std::fs::write(
            d.join("webhook.toml"),
            format!(
                "listen = \"127.0.0.1:0\"\ntls_cert = \"tls.pem\"\ntls_key = \"tls.key\"\n\
                 policy = \"policy.toml\"\nstore = \"store\"\nreload_interval_ms = 100\n{top}\n\
                 [limits]\n{limits}\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("serve.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_modelseal"))
            .args(["serve", "--config", "webhook.toml"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let port = loop {
            let text = std::fs::read_to_string(d.join("serve.log")).unwrap();
            let listening = text.lines().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
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
                "no listening event: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            dir,
            authority,
            child,
            port,
            model,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn validate(&self, http: &reqwest::Client, uid: &str) -> Value {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "object": {"metadata": {"name": uid, "annotations": {"modelseal.dev/model": self.model}}},
            }
        });
        let response = http
            .post(self.url("/validate?timeout=5s"))
            .json(&review)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.unwrap()
    }

    async fn metrics(&self, http: &reqwest::Client) -> String {
        http.get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .parse()
            .unwrap()
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn counter(page: &str, line_start: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Reads until the server closes the connection; how long that took.
async fn until_closed(mut stream: impl tokio::io::AsyncRead + Unpin) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => return Duration::from_secs(30),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_clients_that_never_finish_are_closed_on_time_while_real_requests_are_answered()
{
    let server = Server::start(
        "handshake_timeout_ms = 1000\nheader_timeout_ms = 1000\nbody_timeout_ms = 1000\nidle_timeout_ms = 2000\n",
    );
    let http = server.authority.client();
    assert_eq!(
        server.validate(&http, "first").await["response"]["allowed"],
        true
    );
    let baseline = server.open_fds();
    let addr = format!("127.0.0.1:{}", server.port);
    let mut stalled = tokio::task::JoinSet::new();
    // 300 HTTP/1.1 clients that send half a request head; 50 HTTP/2 clients that send
    // the connection preface and nothing more; 100 that never start TLS; 20 that send
    // a whole head and then half a body.
    for i in 0..470 {
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let (alpn, what): (&[u8], u8) = match i {
            0..300 => (b"http/1.1", 0),
            300..350 => (b"h2", 1),
            350..450 => (b"", 2),
            _ => (b"http/1.1", 3),
        };
        let connector = server.authority.tls(alpn);
        stalled.spawn(async move {
            if what == 2 {
                return (what, until_closed(tcp).await);
            }
            let mut tls = connector
                .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
                .await
                .unwrap();
            let bytes: &[u8] = match what {
                0 => b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl",
                1 => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                _ => b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"apiVersion\"",
            };
            tls.write_all(bytes).await.unwrap();
            tls.flush().await.unwrap();
            (what, until_closed(tls).await)
        });
    }
    // Meanwhile real requests are answered.
    for i in 0..20 {
        let reply = server.validate(&http, &format!("real-{i}")).await;
        assert_eq!(reply["response"]["allowed"], true, "{reply}");
    }
    let mut slowest = [Duration::ZERO; 4];
    while let Some(done) = stalled.join_next().await {
        let (what, took) = done.unwrap();
        slowest[what as usize] = slowest[what as usize].max(took);
    }
    for (what, took) in ["HTTP/1.1 head", "HTTP/2 preface", "TLS handshake", "body"]
        .iter()
        .zip(slowest)
    {
        assert!(
            took < Duration::from_millis(3500),
            "a stalled {what} was kept open for {took:?} (limit 1 s)"
        );
    }
    let page = server.metrics(&http).await;
    let closed = |reason: &str| {
        counter(
            &page,
            &format!("modelseal_connections_closed_total{{reason=\"{reason}\"}}"),
        )
    };
    assert!(closed("header-timeout") >= 350.0, "{page}");
    assert!(closed("handshake-timeout") >= 100.0, "{page}");
    assert_eq!(
        counter(&page, "modelseal_body_timeouts_total"),
        20.0,
        "{page}"
    );
    // Every stalled connection's descriptor is gone again.
    let after = server.open_fds();
    assert!(
        after <= baseline + 5,
        "{baseline} descriptors before, {after} after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_gib_file_planted_in_the_store_leaves_memory_bounded_and_the_decision_on_time() {
    let server = Server::start("");
    let hex = server.model.strip_prefix("blake3:").unwrap();
    let planted = server
        .path("store/blake3")
        .join(hex)
        .join(format!("{}.json", "0f".repeat(32)));
    let file = std::fs::File::create(&planted).unwrap();
    file.set_len(3 << 30).unwrap(); // 3 GiB, sparse
    let http = server.authority.client();
    let started = Instant::now();
    let reply = server.validate(&http, "planted").await;
    let took = started.elapsed();
    // The planted file is skipped (and counted); the real signature beside it still counts.
    assert_eq!(reply["response"]["allowed"], true, "{reply}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A yes reached beside a planted file is not cached: the next request looks again.
    let again = server.validate(&http, "planted-again").await;
    assert_eq!(again["response"]["allowed"], true, "{again}");
    let page = server.metrics(&http).await;
    assert_eq!(counter(&page, "modelseal_cache_hits_total"), 0.0, "{page}");
    assert_eq!(
        counter(&page, "modelseal_store_files_skipped_total"),
        2.0,
        "{page}"
    );
    assert_eq!(
        counter(&page, "modelseal_store_errors_total"),
        2.0,
        "{page}"
    );
    let peak_kib = server.proc_status("VmHWM:");
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_store_the_policy_and_the_certificate() {
    let server = Server::start("");
    // The certificate may be expired at one point: readiness is asked without checking it.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let ready = || async {
        let response = http.get(server.url("/readyz")).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let settle = || tokio::time::sleep(Duration::from_millis(400));
    assert_eq!(ready().await.0, 200);

    std::fs::rename(server.path("store"), server.path("store.away")).unwrap();
    settle().await;
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["checks"]["store"]
            .as_str()
            .unwrap()
            .contains("cannot list"),
        "{body}"
    );
    std::fs::rename(server.path("store.away"), server.path("store")).unwrap();
    settle().await;
    assert_eq!(ready().await.0, 200);

    let policy = std::fs::read_to_string(server.path("policy.toml")).unwrap();
    std::fs::write(server.path("policy.toml"), "[[signer]]\nname = 1\n").unwrap();
    settle().await;
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["checks"]["policy"]
            .as_str()
            .unwrap()
            .contains("nothing is admitted until it loads"),
        "{body}"
    );
    std::fs::write(server.path("policy.toml"), policy).unwrap();
    settle().await;
    assert_eq!(ready().await.0, 200);
    let admitted = server.validate(&http, "before-revocation").await;
    assert_eq!(admitted["response"]["allowed"], true, "{admitted}");

    // A key revoked by deleting its file (the policy text unchanged): the reload fails,
    // and the old key admits nothing more, cached or not (found by the attack review:
    // the previous policy stayed in force for direct callers).
    std::fs::rename(
        server.path("publisher.key.pub"),
        server.path("publisher.key.pub.revoked"),
    )
    .unwrap();
    settle().await;
    assert_eq!(ready().await.0, 503);
    let refused = server.validate(&http, "after-revocation").await;
    assert_eq!(refused["response"]["allowed"], false, "{refused}");
    assert!(
        refused["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be reloaded"),
        "{refused}"
    );
    std::fs::rename(
        server.path("publisher.key.pub.revoked"),
        server.path("publisher.key.pub"),
    )
    .unwrap();
    settle().await;
    assert_eq!(ready().await.0, 200);

    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    server
        .authority
        .serve_as_localhost(server.dir.path(), yesterday);
    settle().await;
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["checks"]["certificate"], "the serving certificate has expired",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_answers_the_request_in_flight_and_exits_zero() {
    let mut server = Server::start("shutdown_grace_ms = 5000\n");
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "in-flight", "object": {"metadata": {"annotations": {"modelseal.dev/model": server.model}}}}
    })
    .to_string();
    let addr = format!("127.0.0.1:{}", server.port);
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let mut tls = server
        .authority
        .tls(b"http/1.1")
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "POST /validate?timeout=5s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        review.len()
    );
    let (first, rest) = review.as_bytes().split_at(review.len() / 2);
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(first).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The listener is closed at once: no new connection is accepted.
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    tls.write_all(rest).await.unwrap();
    tls.flush().await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut response))
        .await
        .expect("the answer arrives")
        .ok();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"allowed\":true"), "{response}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(server.path("serve.log")).unwrap();
    assert!(log.contains("\"signal\":\"SIGTERM\""), "{log}");
    assert!(log.contains("\"event\":\"stopped\""), "{log}");
}

/// curl over HTTP/2 (nghttp2), repeated (issue 26): an answer sent before the request body was read
/// must still reach the client whole, not as a stream reset.
#[test]
fn error_answers_reach_a_real_http2_client_intact() {
    let server = Server::start_with("admit_token_file = \"admit.token\"", "");
    std::fs::write(server.path("ca.pem"), server.authority.issuer.pem()).unwrap();
    let body = format!("{{\"digest\": \"{}\"}}", server.model);
    let curl = |path: &str, token: &str| {
        let out = Command::new("curl")
            .args([
                "--http2",
                "-sS",
                "-o",
                "-",
                "-w",
                "\n%{http_version} %{http_code}",
            ])
            .arg("--cacert")
            .arg(server.path("ca.pem"))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
            ])
            .arg(server.url(path))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {path}: {}",
            common::stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for attempt in 0..8 {
        let refused = curl("/v1/admit", "a-wrong-token");
        assert!(refused.ends_with("\n2 401"), "try {attempt}: {refused}");
        assert!(refused.contains("bearer token"), "{refused}");
        let unknown = curl("/v1/nothing-here", "the-right-token-of-some-length");
        assert!(unknown.ends_with("\n2 404"), "try {attempt}: {unknown}");
        let admitted = curl("/v1/admit", "the-right-token-of-some-length");
        assert!(admitted.ends_with("\n2 200"), "try {attempt}: {admitted}");
        assert!(admitted.contains("\"allowed\":true"), "{admitted}");
    }
}
