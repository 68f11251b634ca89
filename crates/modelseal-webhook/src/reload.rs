//! Two threads that keep what `/readyz` reports. One watches the files the server was
//! configured with: every `reload_interval_ms` it reloads the serving certificate, the
//! policy with every key file it names, and the admit token when any of their files
//! changed. The other probes the store, so a hung store file system cannot hold up a
//! key revocation. Plain threads rather than tasks: these are blocking file reads, and
//! if one hangs only its thread waits (readiness then goes stale and says so) while
//! requests are still answered.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::App;
use crate::auth::Token;
use crate::decide::Trust;
use crate::tls::{self, ServingCert};

/// What the last round of checks found.
struct Checks {
    certificate: Result<(), String>,
    policy: Result<(), String>,
    token: Result<(), String>,
    at: Instant,
}

/// Readiness, as `/readyz` reports it.
pub struct Health {
    checks: RwLock<Checks>,
    store: RwLock<(Result<(), String>, Instant)>,
    draining: AtomicBool,
    stale_after: Duration,
}

impl Health {
    /// Healthy as of now; checks older than `stale_after` make the server unready.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            checks: RwLock::new(Checks {
                certificate: Ok(()),
                policy: Ok(()),
                token: Ok(()),
                at: Instant::now(),
            }),
            store: RwLock::new((Ok(()), Instant::now())),
            draining: AtomicBool::new(false),
            stale_after,
        }
    }

    /// From now on the server reports itself unready (it is shutting down).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the server is ready, and why (a JSON object naming each check).
    pub fn report(&self, serving: &ServingCert) -> (bool, Value) {
        let checks = self.checks.read().unwrap_or_else(|p| p.into_inner());
        let certificate = checks
            .certificate
            .clone()
            .and_then(|()| serving.check(SystemTime::now()));
        let fresh = |at: Instant, what: &str| {
            if at.elapsed() <= self.stale_after {
                Ok(())
            } else {
                Err(format!(
                    "the last {what} was {} s ago (a file system may be hung)",
                    at.elapsed().as_secs()
                ))
            }
        };
        let files = fresh(
            checks.at,
            "check of the certificate, policy and token files",
        );
        let store = {
            let (result, at) = &*self.store.read().unwrap_or_else(|p| p.into_inner());
            result.clone().and_then(|()| fresh(*at, "store probe"))
        };
        let draining = if self.draining.load(Ordering::Relaxed) {
            Err("shutting down".to_owned())
        } else {
            Ok(())
        };
        // The admit token is reported but does not decide readiness: a broken registry
        // token must not take Kubernetes admission down with it.
        let deciding = [
            ("certificate", &certificate),
            ("policy", &checks.policy),
            ("store", &store),
            ("files", &files),
            ("shutdown", &draining),
        ];
        let ready = deciding.iter().all(|(_, r)| r.is_ok());
        let body: serde_json::Map<String, Value> = deciding
            .iter()
            .chain(std::iter::once(&("admit_token", &checks.token)))
            .map(|(name, r)| {
                let v = match r {
                    Ok(()) => Value::from("ok"),
                    Err(e) => Value::from(e.as_str()),
                };
                ((*name).to_owned(), v)
            })
            .collect();
        (ready, json!({"ready": ready, "checks": body}))
    }
}

/// What identifies a version of a file: a replacement that keeps the modification time
/// (`cp -p`, `rsync -a`, a Secret's symlink swap) still changes the inode or the ctime.
type Stamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

fn stamp(p: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(p).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

fn stamps<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Vec<Stamp> {
    paths.into_iter().map(|p| stamp(p)).collect()
}

/// Starts the threads; they end when `stop` is set.
pub fn spawn(app: Arc<App>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let (probe_app, probe_stop) = (Arc::clone(&app), Arc::clone(&stop));
    std::thread::Builder::new()
        .name("modelseal-store-probe".into())
        .spawn(move || probe_store(&probe_app, &probe_stop))?;
    std::thread::Builder::new()
        .name("modelseal-reload".into())
        .spawn(move || watch(&app, &stop))
        .map(drop)
}

fn probe_store(app: &App, stop: &AtomicBool) {
    let interval = Duration::from_millis(app.config.reload_interval_ms);
    while !stop.load(Ordering::Relaxed) {
        // A real read: the directory's first entry, or the registry repository's tags.
        let store = app.decider.trust().store.clone();
        let result = store.probe().map_err(|e| {
            format!(
                "cannot list the store: {}",
                modelseal_verify::error_chain(&e)
            )
        });
        *app.health.store.write().unwrap_or_else(|p| p.into_inner()) = (result, Instant::now());
        std::thread::sleep(interval);
    }
}

fn watch(app: &App, stop: &AtomicBool) {
    let config = &app.config;
    let interval = Duration::from_millis(config.reload_interval_ms.max(100));
    let cert_files = [config.tls_cert.clone(), config.tls_key.clone()];
    let trust_files = |app: &App| {
        let trust = app.decider.trust();
        let mut files = vec![config.policy.clone()];
        files.extend(trust.policy.key_files.iter().cloned());
        files
    };
    let mut cert_seen = stamps(&cert_files);
    let mut trust_seen = stamps(&trust_files(app));
    let mut token_seen = stamps(&config.admit_token_file);
    let mut checks = Checks {
        certificate: Ok(()),
        policy: Ok(()),
        token: Ok(()),
        at: Instant::now(),
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(interval);
        // Stamps are taken before the files are read: a file replaced while it is read
        // is seen as changed again next time, never recorded as loaded.
        let cert_now = stamps(&cert_files);
        if cert_now != cert_seen {
            checks.certificate = tls::load(&config.tls_cert, &config.tls_key).map(|loaded| {
                app.serving.replace(loaded);
                tracing::info!(event = "tls-reloaded");
            });
            if let Err(e) = &checks.certificate {
                tracing::error!(event = "tls-reload-failed", error = %e);
            }
            cert_seen = cert_now;
        }
        let trust_now = stamps(&trust_files(app));
        if trust_now != trust_seen {
            let store = app.decider.trust().store.clone();
            match Trust::load(&config.policy, &store) {
                Ok(trust) => {
                    tracing::info!(event = "policy-reloaded", version = %trust.version);
                    // The new policy may name other key files; their stamps are read
                    // before it is put in force, for the same reason as above.
                    let mut files = vec![config.policy.clone()];
                    files.extend(trust.policy.key_files.iter().cloned());
                    let seen_now = stamps(&files);
                    app.decider.replace_trust(trust);
                    checks.policy = Ok(());
                    // Anything that changed while it was read (or a policy naming other
                    // key files) is loaded again next time; a needless reload is harmless.
                    trust_seen = if seen_now == trust_now {
                        seen_now
                    } else {
                        Vec::new()
                    };
                }
                Err(e) => {
                    let e = modelseal_verify::error_chain(&e);
                    let reported = format!(
                        "the policy could not be reloaded, so nothing is admitted until it loads: {e}"
                    );
                    app.decider.suspend(reported.clone());
                    // Logged once per distinct error and tried again every interval: the
                    // file that fixes it may be one that only the failed policy names.
                    if checks.policy.as_ref().err() != Some(&reported) {
                        tracing::error!(event = "policy-reload-failed", error = %e);
                    }
                    checks.policy = Err(reported);
                    trust_seen = Vec::new();
                }
            }
        }
        let token_now = stamps(&config.admit_token_file);
        if token_now != token_seen {
            if let Some(path) = &config.admit_token_file {
                // A token that no longer loads switches the endpoint off: fail closed.
                let read = Token::read(path);
                app.token.set(read.as_ref().ok().copied());
                checks.token = read.map(drop);
                tracing::info!(event = "admit-token-reloaded", ok = checks.token.is_ok());
            }
            token_seen = token_now;
        }
        checks.at = Instant::now();
        let mut shared = app.health.checks.write().unwrap_or_else(|p| p.into_inner());
        *shared = Checks {
            certificate: checks.certificate.clone(),
            policy: checks.policy.clone(),
            token: checks.token.clone(),
            at: checks.at,
        };
    }
}
