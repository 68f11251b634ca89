//! One thread that watches the files the server was configured with and keeps what
//! `/readyz` reports: every `reload_interval_ms` it reloads the serving certificate, the
//! policy with every key file it names, and the admit token when any of their files
//! changed, and probes the store. A plain thread rather than a task: these are blocking
//! file reads, and if the store hangs only this thread waits (readiness then goes stale
//! and says so) while requests are still answered.

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
    store: Result<(), String>,
    token: Result<(), String>,
    at: Instant,
}

/// Readiness, as `/readyz` reports it.
pub struct Health {
    checks: RwLock<Checks>,
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
                store: Ok(()),
                token: Ok(()),
                at: Instant::now(),
            }),
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
        let fresh = if checks.at.elapsed() <= self.stale_after {
            Ok(())
        } else {
            Err(format!(
                "the last file and store check was {} s ago (the store or a file system may be hung)",
                checks.at.elapsed().as_secs()
            ))
        };
        let draining = if self.draining.load(Ordering::Relaxed) {
            Err("shutting down".to_owned())
        } else {
            Ok(())
        };
        let parts = [
            ("certificate", &certificate),
            ("policy", &checks.policy),
            ("store", &checks.store),
            ("admit_token", &checks.token),
            ("checks", &fresh),
            ("shutdown", &draining),
        ];
        let ready = parts.iter().all(|(_, r)| r.is_ok());
        let body: serde_json::Map<String, Value> = parts
            .iter()
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

fn stamp(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn stamps<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Vec<Option<SystemTime>> {
    paths.into_iter().map(|p| stamp(p)).collect()
}

/// Starts the thread; it ends when `stop` is set.
pub fn spawn(app: Arc<App>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("modelseal-reload".into())
        .spawn(move || watch(&app, &stop))
        .map(drop)
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
        store: Ok(()),
        token: Ok(()),
        at: Instant::now(),
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(interval);
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
            match Trust::load(&config.policy, &config.store, config.limits.store()) {
                Ok(trust) => {
                    tracing::info!(event = "policy-reloaded", version = %trust.version);
                    app.decider.replace_trust(trust);
                    checks.policy = Ok(());
                    // Stamps of the files the trust now in force was read from.
                    trust_seen = stamps(&trust_files(app));
                }
                Err(e) => {
                    let e = modelseal_verify::error_chain(&e);
                    tracing::error!(event = "policy-reload-failed", error = %e);
                    checks.policy = Err(format!(
                        "reload failed, the previous policy is in force: {e}"
                    ));
                    trust_seen = trust_now;
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
        checks.store = match std::fs::read_dir(&config.store) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("cannot list {}: {e}", config.store.display())),
        };
        checks.at = Instant::now();
        let mut shared = app.health.checks.write().unwrap_or_else(|p| p.into_inner());
        *shared = Checks {
            certificate: checks.certificate.clone(),
            policy: checks.policy.clone(),
            store: checks.store.clone(),
            token: checks.token.clone(),
            at: checks.at,
        };
    }
}
