//! Continuous verification of a deployed model (`spec/watch.md`): verify once, then keep
//! verifying. Filesystem events make the changed files pending (the model is unready
//! from that moment) and one event checker re-hashes them at once; a periodic full pass,
//! paced to a read-rate limit, catches what events miss. [`server`] answers `/healthz`,
//! `/readyz` and `/metrics` from the same state, and every change and verdict is logged
//! as one JSON line.

pub mod pace;
pub mod server;
pub mod stamps;
pub mod state;

mod events;
mod leases;
mod metrics;
mod mounts;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use modelseal_core::{ArtifactDigest, Bundle};
use modelseal_verify::loader::ModelReader;
use modelseal_verify::{Verifier, error_chain};
use serde_json::{Value, json};

pub use metrics::Metrics;
use pace::Pacer;
use stamps::Stamps;
use state::{MODEL, Recorded, Status, Tracker};

/// Bytes of a file held in memory at a time while it is hashed.
pub const CHUNK: usize = 1 << 20;

/// The most directories of a model that are stamped.
pub const MAX_DIRS: usize = 100_000;

/// Where the JSON event lines go.
pub type LogSink = Box<dyn Fn(&Value) + Send + Sync>;

/// What to watch and how.
#[non_exhaustive]
pub struct Config {
    /// The model directory or file.
    pub model: PathBuf,
    /// Its signature bundle.
    pub signature: PathBuf,
    /// Who may sign it, the options (walk, unsigned files, the digest expected) and the
    /// policy's rules about the model, as `verify` has them.
    pub verifier: Verifier,
    /// Time from the end of one full pass to the start of the next.
    pub interval: Duration,
    /// The read-rate limit of periodic passes, bytes per second (`None`: none). The
    /// first pass and event checks are not paced.
    pub max_read_rate: Option<u64>,
    /// How long to let events gather before checking.
    pub debounce: Duration,
    /// Whether to listen for filesystem events at all (off: periodic passes only, for
    /// filesystems that send none).
    pub events: bool,
    /// How often to compare each checked file's metadata with what it was checked
    /// with (`None`: never). Catches writes no event reports, for one `stat` per file.
    pub stat_interval: Option<Duration>,
    /// Whether to hold a file lease on every signed file (`spec/watch.md` §2): a writer
    /// is then seen before its first write. Off: the timestamp-only mode.
    pub leases: bool,
    /// Where the event log goes.
    pub log: LogSink,
    /// Where the verifier comes from when it can change (a policy file and the key files
    /// it names); `None`: `verifier` holds for good (keys given as flags).
    pub trust_source: Option<TrustSource>,
}

/// A policy the watch follows: the files its verifier is built from, and how to build it
/// again. Any change to one of the files (seen by the stat poll, or at the next pass)
/// loads it anew before the model is checked again; while it cannot be loaded the model
/// is unready, never judged by the old rules.
pub struct TrustSource {
    /// Builds the verifier, and says which files it was built from (the policy first).
    pub load: TrustLoader,
}

/// Builds a verifier and names the files it read, or says why it cannot.
pub type TrustLoader = Box<dyn Fn() -> Result<(Verifier, Vec<PathBuf>), String> + Send + Sync>;

/// The verifier in force, and what it was built from.
struct TrustState {
    /// `Ok(None)`: the configuration's own verifier (no trust source).
    verifier: Result<Option<Arc<Verifier>>, String>,
    /// The files and their stamps when they were read (taken before reading).
    seen: stamps::Stamped,
}

impl Config {
    /// A configuration with the defaults of `modelseal watch`.
    pub fn new(model: PathBuf, signature: PathBuf, verifier: Verifier) -> Self {
        Self {
            model,
            signature,
            verifier,
            interval: Duration::from_secs(600),
            max_read_rate: Some(64 << 20),
            debounce: Duration::from_millis(100),
            events: true,
            stat_interval: Some(Duration::from_secs(1)),
            leases: true,
            log: Box::new(|line| println!("{line}")),
            trust_source: None,
        }
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The model's path could not be resolved.
    #[error("cannot resolve {path}")]
    Path {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The event source could not be set up.
    #[error("cannot watch {path} for changes")]
    Events {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: notify::Error,
    },
    /// A checker thread could not be started.
    #[error("cannot start a checker thread")]
    Thread(#[source] std::io::Error),
    /// The lease signal could not be set up.
    #[error("cannot set up file leases")]
    Leases(#[source] std::io::Error),
}

pub(crate) struct Shared {
    config: Config,
    tracker: Mutex<Tracker>,
    wake: Condvar,
    /// The subject verified first (or expected): a later signature must name the same.
    pinned: Mutex<Option<ArtifactDigest>>,
    /// The statement verified first, byte for byte: a later signature must make the same
    /// one. A root alone binds too little: an OMS subject digest names no file, and a
    /// native root no ignore path, so another genuine signature of the same root could
    /// admit other names or unsigned files.
    pinned_statement: Mutex<Option<Vec<u8>>>,
    ready: AtomicBool,
    /// Set when a checker thread ends, which only a panic can make it do.
    dead: AtomicBool,
    metrics: Metrics,
    /// What each key's last recorded verdict was reached with, for the stat poll.
    stamps: Stamps,
    /// Tells the event thread to watch the model's path afresh (it was replaced).
    rearm: OnceLock<events::Rearm>,
    /// The signed files' leases (`None`: leases off).
    leases: Option<leases::Leases>,
    /// The verifier in force, reloaded when its policy changes.
    trust: Mutex<TrustState>,
}

/// A running watch: cheap to clone, shared by the checkers and the server.
#[derive(Clone)]
pub struct Watch {
    shared: Arc<Shared>,
}

/// Which check produced a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Start,
    Event,
    Periodic,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Event => "event",
            Self::Periodic => "periodic",
        }
    }
}

impl Watch {
    /// Starts watching: the event source, the event checker and the pass thread, which
    /// begins with an unpaced first pass. Returns at once; the model is unready until
    /// that pass has verified it.
    pub fn start(mut config: Config) -> Result<Self, WatchError> {
        let resolve = |path: &PathBuf| {
            std::path::absolute(path).map_err(|source| WatchError::Path {
                path: path.clone(),
                source,
            })
        };
        config.model = resolve(&config.model)?;
        // A zero interval would poll without pause: it means off.
        config.stat_interval = config.stat_interval.filter(|d| !d.is_zero());
        config.signature = resolve(&config.signature)?;
        let pinned = config.verifier.options().expected;
        let leases = if config.leases {
            Some(leases::Leases::new().map_err(WatchError::Leases)?)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            leases,
            tracker: Mutex::new(Tracker::new()),
            wake: Condvar::new(),
            pinned: Mutex::new(pinned),
            pinned_statement: Mutex::new(None),
            ready: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            metrics: Metrics::new(),
            stamps: Stamps::default(),
            rearm: OnceLock::new(),
            // With a trust source the policy is read afresh before the first check: the
            // empty stamps differ from any file, and stamps taken before that read pin
            // exactly what it read.
            trust: Mutex::new(TrustState {
                verifier: Ok(None),
                seen: Vec::new(),
            }),
            config,
        });
        let watch = Self { shared };
        watch.log(json!({
            "event": "start",
            "model": watch.shared.config.model.display().to_string(),
            "signature": watch.shared.config.signature.display().to_string(),
            "intervalSeconds": watch.shared.config.interval.as_secs_f64(),
            "maxReadRate": watch.shared.config.max_read_rate,
            "events": watch.shared.config.events,
            "statIntervalSeconds": watch.shared.config.stat_interval.map(|d| d.as_secs_f64()),
            "leases": watch.shared.config.leases,
        }));
        if watch.shared.config.events {
            events::start(watch.clone())?;
        }
        let spawn = |name: &str, work: fn(Watch)| {
            let watch = watch.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let guard = DeadOnExit(watch.clone());
                    work(watch);
                    drop(guard);
                })
                .map_err(WatchError::Thread)
        };
        spawn("watch-events", event_checker)?;
        spawn("watch-passes", pass_loop)?;
        if watch.shared.config.stat_interval.is_some() {
            spawn("watch-stat", stat_loop)?;
        }
        spawn("watch-kernel", kernel_loop)?;
        Ok(watch)
    }

    /// Ready, failures and pending keys now.
    pub fn status(&self) -> Status {
        self.tracker().status()
    }

    /// Ready, the counts, and at most `limit` failing and `limit` pending keys.
    pub fn status_listing(&self, limit: usize) -> Status {
        self.tracker().status_listing(limit)
    }

    /// Whether both checker threads are running.
    pub fn healthy(&self) -> bool {
        !self.shared.dead.load(Ordering::Relaxed)
    }

    /// The metrics, as Prometheus text.
    pub fn metrics_text(&self) -> String {
        let tracker = self.tracker();
        self.shared.metrics.encode(
            tracker.ready(),
            tracker.last_verified,
            tracker.signed().len(),
        )
    }

    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        // A panic while holding the lock leaves the tracker as consistent as any record
        // left it; readiness stays computed from it, and /healthz reports the dead thread.
        self.shared
            .tracker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes one line to the event log, with its time.
    pub fn log(&self, mut line: Value) {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line["time"] = now.into();
        // The shape `modelseal serve` logs in too (spec/cli.md §4).
        let level = match line["event"].as_str() {
            Some("refused" | "unready" | "error") => "warn",
            _ => "info",
        };
        line["level"] = level.into();
        (self.shared.config.log)(&line);
    }

    /// Called by the event source and the stat poll for each changed path (relative to the model, or
    /// [`MODEL`] for the signature), or with `None` when anything may have changed.
    pub(crate) fn changed(&self, path: Option<&str>) {
        let mut tracker = self.tracker();
        match path {
            Some(path) => tracker.changed(path),
            None => tracker.changed_all(),
        }
        drop(tracker);
        self.update_ready(Trigger::Event);
        self.shared.wake.notify_all();
    }

    /// Re-verifies the signature and the file set, without hashing: the model's own
    /// verdict. Returns the reader for the files' checks when it passes.
    fn check_model(&self, trigger: Trigger) -> Option<ModelReader> {
        let generation = self.tracker().generation(MODEL);
        let trust_files = self.refresh_trust();
        let known_paths = self.model_paths();
        let config = &self.shared.config;
        let mut stamped = stamps::stamp(
            [config.model.clone(), config.signature.clone()]
                .into_iter()
                .chain(trust_files)
                .chain(known_paths),
        );
        let result = self.open_model();
        self.shared.metrics.check(trigger.name());
        let (verdict, reader) = match result {
            Ok(reader) => (Ok(()), Some(reader)),
            Err(reason) => (Err(reason), None),
        };
        let mut again = false;
        let mut tracker = self.tracker();
        if let Some(reader) = &reader {
            tracker.set_signed(reader.files().map(|(path, _)| path.to_owned()).collect());
        }
        let recorded = tracker.record(MODEL, generation, verdict.clone());
        if recorded != Recorded::Stale {
            // Directories and empty files first seen in this walk are stamped just
            // after it, and the model is checked again with them stamped first: a file
            // put in such a directory, or bytes written to such a file, between the walk
            // and its stamp would otherwise go unseen. Stamps are stored under the
            // tracker's lock, with the verdict they belong to.
            let known: std::collections::HashSet<&PathBuf> =
                stamped.iter().map(|(p, _)| p).collect();
            let new_paths: Vec<PathBuf> = self
                .model_paths()
                .into_iter()
                .filter(|d| !known.contains(d))
                .collect();
            again = !new_paths.is_empty();
            stamped.extend(stamps::stamp(new_paths));
            self.shared.stamps.set(MODEL, stamped);
            if let Some(reader) = &reader {
                let signed: std::collections::HashSet<&str> =
                    reader.files().map(|(p, _)| p).collect();
                self.shared
                    .stamps
                    .retain(|key| key == MODEL || signed.contains(key));
                if let Some(leases) = &self.shared.leases {
                    leases.retain(|key| signed.contains(key));
                }
            }
        }
        drop(tracker);
        if again {
            self.changed(Some(MODEL));
        }
        self.after_record(trigger, "(model)", &verdict, recorded);
        reader
    }

    fn open_model(&self) -> Result<ModelReader, String> {
        let config = &self.shared.config;
        let bundle = Bundle::read(&config.signature).map_err(|e| {
            format!(
                "signature {}: {}",
                config.signature.display(),
                error_chain(&e)
            )
        })?;
        let verifier = self.verifier()?;
        let verifier = verifier.as_deref().unwrap_or(&config.verifier);
        let reader = verifier
            .open(&config.model, &bundle, None)
            .map_err(|e| model_reason(&e))?;
        let root = reader.root();
        {
            let mut pinned = self
                .shared
                .pinned
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match *pinned {
                Some(first) if first != root => {
                    return Err(format!(
                        "the signature now names {root}, not {first}, the model this watch verified first"
                    ));
                }
                Some(_) => {}
                None => *pinned = Some(root),
            }
        }
        // The payload the verifier just checked the signature over.
        let statement = &bundle.dsse_envelope.payload;
        let mut pinned = self
            .shared
            .pinned_statement
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*pinned {
            Some(first) if first != statement => {
                return Err(format!(
                    "the signature now makes another statement about {root} (other file names, ignore paths or settings) than the one this watch verified first"
                ));
            }
            Some(_) => {}
            None => *pinned = Some(statement.clone()),
        }
        drop(pinned);
        Ok(reader)
    }

    /// Hashes one signed file and records its verdict (unless it changed meanwhile).
    fn check_file(&self, reader: &ModelReader, path: &str, pacer: &mut Pacer, trigger: Trigger) {
        let generation = self.tracker().generation(path);
        let config = &self.shared.config;
        let named = config.model.is_dir().then(|| config.model.join(path));
        let read_path = reader.fs_path(path).map(Path::to_path_buf).ok();
        let stamped = stamps::stamp(read_path.clone().into_iter().chain(named));
        // The reader resolved the name's link when it opened, which for a pass can be
        // minutes ago: if the name now leads elsewhere, hashing the old target would
        // vouch for a file the model no longer uses. That is a change to check afresh.
        if let ([(_, Some(read)), (_, now)], Some(_)) = (stamped.as_slice(), &read_path) {
            if !now.is_some_and(|now| now.same_file(read)) {
                self.changed(Some(path));
                return;
            }
        }
        // The lease first (§2): while it is held no process can write the file before
        // watch has marked it changed. It must be on the very file the stamp names.
        let lease = match (&self.shared.leases, &read_path) {
            (Some(leases), Some(read)) => match leases.hold(path, read) {
                Ok(ids) => {
                    if !matches!(stamped.first(), Some((_, Some(s))) if s.ids() == ids) {
                        self.changed(Some(path));
                        return;
                    }
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            },
            _ => Ok(()),
        };
        let checked = match lease {
            Err(reason) => Err(reason),
            Ok(()) => Ok(reader.check_file_paced(path, CHUNK, &mut |n| {
                self.shared.metrics.bytes.inc_by(n);
                pacer.take(n);
            })),
        };
        let verdict = match checked {
            Err(reason) => Err(reason),
            Ok(Ok(())) => Ok(()),
            // Another file now has the name: it changed after this pass's reader was
            // opened (minutes ago, perhaps). That is a change to check afresh, not a
            // refusal of the new file. A reader opened this round that meets it is
            // refused, so a name that cannot be opened as found does not loop.
            Ok(Err(modelseal_verify::loader::ReadError::Swapped { .. }))
                if trigger == Trigger::Periodic =>
            {
                self.changed(Some(path));
                return;
            }
            Ok(Err(e)) => Err(error_chain(&e)),
        };
        self.shared.metrics.check(trigger.name());
        let mut tracker = self.tracker();
        let recorded = tracker.record(path, generation, verdict.clone());
        if recorded != Recorded::Stale {
            self.shared.stamps.set(path, stamped);
        }
        drop(tracker);
        self.after_record(trigger, path, &verdict, recorded);
    }

    /// Loads the policy again if one of its files changed since it was read (or it was
    /// never read); returns the files, which the model's stamps then include so that the
    /// stat poll sees the next change.
    fn refresh_trust(&self) -> Vec<PathBuf> {
        let Some(source) = &self.shared.config.trust_source else {
            return Vec::new();
        };
        let mut state = self
            .shared
            .trust
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let files: Vec<PathBuf> = state.seen.iter().map(|(p, _)| p.clone()).collect();
        let fresh = !state.seen.is_empty()
            && state.verifier.is_ok()
            && stamps::first_difference(&state.seen).is_none();
        if fresh {
            return files;
        }
        let first = state.seen.is_empty();
        // Stamped before reading: a file changed while it is read shows as changed again.
        let before = stamps::stamp(files.clone());
        match (source.load)() {
            Ok((verifier, read)) => {
                // A policy naming other key files: those are stamped now, and if any
                // changed meanwhile the next check loads once more (harmless).
                state.seen = if read == files {
                    before
                } else {
                    stamps::stamp(read.clone())
                };
                state.verifier = Ok(Some(Arc::new(verifier)));
                if !first {
                    self.log(json!({"event": "policy-reloaded"}));
                }
                read
            }
            Err(reason) => {
                if state.verifier.as_ref().err() != Some(&reason) {
                    self.log(json!({"event": "error", "reason": format!("the policy cannot be loaded: {reason}")}));
                }
                // Keep watching the same files (or, never loaded, nothing: every check
                // then tries again).
                state.seen = before;
                state.verifier = Err(reason);
                files
            }
        }
    }

    /// The verifier in force: `Ok(None)` for the configuration's own.
    fn verifier(&self) -> Result<Option<Arc<Verifier>>, String> {
        let state = self
            .shared
            .trust
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state
            .verifier
            .clone()
            .map_err(|reason| format!("the policy cannot be loaded: {reason}"))
    }

    /// Every directory under the model (not following links), the model's own excluded:
    /// a name added, removed or renamed in any of them, or a filesystem mounted on one,
    /// moves its stamp. And every empty regular file: an unsigned one is accepted only
    /// while empty (`--allow-unsigned-empty-files`), and a write to it through another
    /// name, or with events off, moves nothing else. At most [`MAX_DIRS`] of each; past
    /// that the walk stops, and the periodic pass and the events cover the rest.
    fn model_paths(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        let mut empty = Vec::new();
        let mut todo = vec![(self.shared.config.model.clone(), 0)];
        while let Some((dir, depth)) = todo.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() && dirs.len() < MAX_DIRS {
                    dirs.push(entry.path());
                    // Deeper than a model may nest, the walk refuses the model anyway:
                    // stamping such a chain would only cost time at every poll.
                    if depth < modelseal_core::walk::MAX_DIR_DEPTH {
                        todo.push((entry.path(), depth + 1));
                    }
                } else if kind.is_file()
                    && empty.len() < MAX_DIRS
                    && entry.metadata().is_ok_and(|m| m.len() == 0)
                {
                    empty.push(entry.path());
                }
            }
        }
        dirs.sort();
        empty.sort();
        dirs.extend(empty);
        dirs
    }

    fn after_record(
        &self,
        trigger: Trigger,
        path: &str,
        verdict: &Result<(), String>,
        recorded: Recorded,
    ) {
        if recorded == Recorded::Stale {
            return;
        }
        if let Err(reason) = verdict {
            self.shared.metrics.failures.inc();
            if matches!(recorded, Recorded::Changed { .. }) {
                self.log(json!({"event": "refused", "path": path, "trigger": trigger.name(), "reason": reason}));
            }
        } else if recorded == (Recorded::Changed { first: false }) {
            self.log(json!({"event": "recovered", "path": path, "trigger": trigger.name()}));
        }
        self.update_ready(trigger);
    }

    /// Logs a change of readiness.
    fn update_ready(&self, trigger: Trigger) {
        let ready = self.tracker().ready();
        let was = self.shared.ready.swap(ready, Ordering::SeqCst);
        if was == ready {
            return;
        }
        let status = self.tracker().status_listing(server::MAX_LISTED);
        if ready {
            self.log(json!({"event": "ready", "trigger": trigger.name()}));
        } else {
            let shown = |key: &String| {
                if key.is_empty() {
                    "(model)".to_owned()
                } else {
                    key.clone()
                }
            };
            let failures: serde_json::Map<String, Value> = status
                .failures
                .iter()
                .map(|(k, v)| (shown(k), v.clone().into()))
                .collect();
            let pending: Vec<String> = status.pending.iter().map(shown).collect();
            self.log(json!({
                "event": "unready",
                "trigger": trigger.name(),
                "failures": failures,
                "pending": pending,
                "failureCount": status.failure_count,
                "pendingCount": status.pending_count,
            }));
        }
    }
}

/// Why the model as a whole does not verify, naming the files (a few of them) when the
/// file set is what differs.
fn model_reason(err: &modelseal_verify::VerifyError) -> String {
    const SHOWN: usize = 10;
    let modelseal_verify::VerifyError::Files(mismatch) = err else {
        return error_chain(err);
    };
    let mut parts = Vec::new();
    let mut list = |what: &str, names: Vec<&str>| {
        if !names.is_empty() {
            let more = names.len().saturating_sub(SHOWN);
            let mut text = format!("{what} {}", names[..names.len().min(SHOWN)].join(", "));
            if more > 0 {
                text.push_str(&format!(" and {more} more"));
            }
            parts.push(text);
        }
    };
    list(
        "modified",
        mismatch.modified.iter().map(|m| m.path.as_str()).collect(),
    );
    list(
        "missing",
        mismatch.missing.iter().map(String::as_str).collect(),
    );
    list(
        "unsigned",
        mismatch.extra.iter().map(String::as_str).collect(),
    );
    format!("{}: {}", error_chain(err), parts.join("; "))
}

/// Marks the watch unhealthy when a checker thread ends (a panic unwinding through it).
struct DeadOnExit(Watch);

impl Drop for DeadOnExit {
    fn drop(&mut self) {
        self.0.shared.dead.store(true, Ordering::SeqCst);
    }
}

/// Waits for changes, lets them gather, and re-checks the model and every signed file
/// that has no current verdict, unpaced, until nothing is left unchecked.
fn event_checker(watch: Watch) {
    loop {
        {
            let mut tracker = watch.tracker();
            while !tracker.has_changes() {
                tracker = watch
                    .shared
                    .wake
                    .wait(tracker)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
        std::thread::sleep(watch.shared.config.debounce);
        let changes = watch.tracker().take_changes();
        match changes {
            None => watch.log(json!({"event": "change", "path": "*"})),
            Some(paths) => {
                for path in paths {
                    let shown = if path == MODEL {
                        "(signature)"
                    } else {
                        path.as_str()
                    };
                    watch.log(json!({"event": "change", "path": shown}));
                }
            }
        }
        let Some(reader) = watch.check_model(Trigger::Event) else {
            continue;
        };
        let mut pacer = Pacer::new(None);
        // Taken first: a guard in the loop's head would hold the lock through the loop.
        let unchecked = watch.tracker().unchecked_files();
        for path in unchecked {
            watch.check_file(&reader, &path, &mut pacer, Trigger::Event);
        }
    }
}

/// The full passes: the first at once and unpaced, then one every interval, paced.
fn pass_loop(watch: Watch) {
    let mut trigger = Trigger::Start;
    loop {
        let started = Instant::now();
        let rate = match trigger {
            Trigger::Start => None,
            _ => watch.shared.config.max_read_rate,
        };
        let mut pacer = Pacer::new(rate);
        let reader = watch.check_model(trigger);
        let files = match &reader {
            Some(reader) => {
                let paths: Vec<String> = reader.files().map(|(p, _)| p.to_owned()).collect();
                for path in &paths {
                    watch.check_file(reader, path, &mut pacer, trigger);
                }
                paths.len()
            }
            None => 0,
        };
        let seconds = started.elapsed().as_secs_f64();
        let ready = watch.tracker().ready();
        watch.shared.metrics.pass_done(SystemTime::now(), seconds);
        watch.log(json!({
            "event": "pass",
            "trigger": trigger.name(),
            "files": files,
            "bytes": pacer.bytes(),
            "seconds": seconds,
            "ready": ready,
        }));
        trigger = Trigger::Periodic;
        std::thread::sleep(watch.shared.config.interval);
    }
}

/// Every stat interval, compares each key's stamps with the metadata now: a difference
/// is a change, as if an event had reported it. The model's own path replaced (a
/// directory above it renamed, say) means anything changed, and the event watch is
/// re-armed on the new one.
fn stat_loop(watch: Watch) {
    let Some(every) = watch.shared.config.stat_interval else {
        return;
    };
    loop {
        std::thread::sleep(every);
        for (key, stamped) in watch.shared.stamps.snapshot() {
            let Some(index) = stamps::first_difference(&stamped) else {
                continue;
            };
            if !watch.shared.stamps.take_if(&key, &stamped) {
                continue;
            }
            watch.shared.metrics.stat_changes.inc();
            let (path, was) = &stamped[index];
            // The model's directory itself: a new unsigned name there only moves its
            // times (the model's check decides about it); another inode means the
            // directory was replaced, and with it everything.
            let replaced = key == MODEL
                && *path == watch.shared.config.model
                && !matches!((stamps::Stamp::of(path), was), (Some(now), Some(was)) if now.same_file(was));
            if replaced {
                if let Some(rearm) = watch.shared.rearm.get() {
                    rearm.request();
                }
                watch.changed(None);
            } else {
                watch.changed(Some(&key));
            }
        }
    }
}

/// What the kernel tells: a writer breaking a signed file's lease (marked changed before
/// the lease is let go, so before the writer's `open` returns), a file whose writer has
/// gone (leased again and checked afresh), and a mount or unmount on or above the model
/// (everything changed). Wakes at least every 100 ms to retry leases.
fn kernel_loop(watch: Watch) {
    let model = std::fs::canonicalize(&watch.shared.config.model)
        .unwrap_or_else(|_| watch.shared.config.model.clone());
    let mut mountinfo = std::fs::File::open("/proc/self/mountinfo").ok();
    let mut mounts = mountinfo
        .as_mut()
        .and_then(|f| mounts::read(f).ok())
        .map(|t| mounts::relevant(&t, &model));
    let signal_fd = watch.shared.leases.as_ref().map_or(-1, |l| l.signal_fd());
    loop {
        let (signalled, remounted) = leases::wait(signal_fd, mountinfo.as_ref(), 100);
        if let Some(leases) = &watch.shared.leases {
            if signalled {
                for key in leases.breaking() {
                    watch.changed(Some(&key));
                    leases.release(&key);
                }
            }
            for key in leases.retry() {
                watch.changed(Some(&key));
            }
        }
        if remounted {
            let now = mountinfo
                .as_mut()
                .and_then(|f| mounts::read(f).ok())
                .map(|t| mounts::relevant(&t, &model));
            if now != mounts {
                mounts = now;
                watch.shared.metrics.stat_changes.inc();
                if let Some(rearm) = watch.shared.rearm.get() {
                    rearm.request();
                }
                watch.changed(None);
            }
        }
    }
}
