//! Filesystem events (`notify`: inotify on Linux) turned into changed keys: a path
//! relative to the model, the model as a whole for its signature, or "anything" when the
//! model itself was replaced or events were lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};

use crate::state::MODEL;
use crate::{Watch, WatchError};

/// Events queued for the event thread at most: a storm beyond that is one "anything
/// may have changed", not unbounded memory.
const QUEUE: usize = 4096;

/// How long the event thread waits for an event before it looks at its flags.
const FLAG_CHECK: Duration = Duration::from_millis(200);

/// Asks the event thread to watch the model's path and its parents afresh.
pub(crate) struct Rearm(Arc<AtomicBool>);

impl Rearm {
    /// Sets the flag the event thread checks after every event and every 200 ms: a
    /// full queue cannot lose it.
    pub(crate) fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What one event path means.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    /// A path inside the model directory.
    Path(String),
    /// The signature.
    Signature,
    /// The model itself (created, removed or renamed as a whole).
    Model,
    /// Something else in a watched parent directory.
    Unrelated,
}

struct Paths {
    model: PathBuf,
    model_is_dir: bool,
    signature: PathBuf,
}

impl Paths {
    fn key(&self, path: &Path) -> Key {
        if path == self.signature {
            return Key::Signature;
        }
        if path == self.model {
            return Key::Model;
        }
        if !self.model_is_dir {
            return Key::Unrelated;
        }
        match path.strip_prefix(&self.model) {
            Ok(rel) => match rel.to_str() {
                Some(rel) if !rel.is_empty() => Key::Path(rel.to_owned()),
                // A non-UTF-8 name is never a signed file: only the file set can change.
                _ => Key::Path(MODEL.to_owned()),
            },
            Err(_) => Key::Unrelated,
        }
    }
}

/// Whether an event can change what a file holds or which files there are. Opens,
/// reads and metadata changes cannot (a file made unreadable is found by the next pass).
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

/// Starts the event thread: it owns the watcher and re-arms it when the model directory
/// is replaced, since a recursive watch follows the old directory, not the name.
pub(crate) fn start(watch: Watch) -> Result<(), WatchError> {
    let config = &watch.shared.config;
    let paths = Paths {
        model: config.model.clone(),
        model_is_dir: config.model.is_dir(),
        signature: config.signature.clone(),
    };
    let (sender, events) = mpsc::sync_channel(QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let handler = {
        let sender = sender.clone();
        let overflow = overflow.clone();
        let watch = watch.clone();
        move |event| {
            // A dropped event: anything may have changed, now; the event thread says so
            // again once it has taken the next event, so a drop while the flag was
            // already up is not lost either.
            if sender.try_send(event).is_err() && !overflow.swap(true, Ordering::SeqCst) {
                watch.changed(None);
            }
        }
    };
    // Links inside the model are not followed: a link's target is checked through the
    // stat poll, and following would let a link make the watch cover any directory.
    let notify_config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher =
        notify::RecommendedWatcher::new(handler, notify_config).map_err(|source| {
            WatchError::Events {
                path: paths.model.clone(),
                source,
            }
        })?;
    drop(sender);
    let rearm_requested = Arc::new(AtomicBool::new(false));
    let _ = watch.shared.rearm.set(Rearm(rearm_requested.clone()));
    let arm = |watcher: &mut notify::RecommendedWatcher, path: &Path, mode| {
        watcher
            .watch(path, mode)
            .map_err(|source| WatchError::Events {
                path: path.to_path_buf(),
                source,
            })
    };
    let mut parents = vec![];
    for path in [&paths.model, &paths.signature] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parents.contains(&parent.to_path_buf()) && !parent.starts_with(&paths.model) {
                parents.push(parent.to_path_buf());
            }
        }
    }
    for parent in &parents {
        arm(&mut watcher, parent, RecursiveMode::NonRecursive)?;
    }
    if paths.model_is_dir {
        arm(&mut watcher, &paths.model, RecursiveMode::Recursive)?;
    }
    std::thread::Builder::new()
        .name("watch-notify".into())
        .spawn(move || {
            let _guard = crate::DeadOnExit(watch.clone());
            let rearm = |watcher: &mut notify::RecommendedWatcher| {
                for parent in &parents {
                    let _ = watcher.unwatch(parent);
                    let _ = watcher.watch(parent, RecursiveMode::NonRecursive);
                }
                if paths.model_is_dir {
                    let _ = watcher.unwatch(&paths.model);
                    // Absent now (removed, or between two renames): the parent's watch
                    // reports it coming back.
                    let _ = watcher.watch(&paths.model, RecursiveMode::Recursive);
                }
            };
            loop {
                let event = match events.recv_timeout(FLAG_CHECK) {
                    Ok(event) => Some(event),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                if overflow.swap(false, Ordering::SeqCst) {
                    watch.changed(None);
                }
                if rearm_requested.swap(false, Ordering::SeqCst) {
                    // A directory above the model was replaced: every watch follows
                    // the old one.
                    rearm(&mut watcher);
                    watch.changed(None);
                }
                let Some(event) = event else {
                    continue;
                };
                let event: notify::Event = match event {
                    Ok(event) => event,
                    // Lost or failed events: anything may have changed.
                    Err(_) => {
                        watch.changed(None);
                        continue;
                    }
                };
                if event.need_rescan() {
                    watch.changed(None);
                    continue;
                }
                if !relevant(&event.kind) {
                    continue;
                }
                let keys: Vec<Key> = event.paths.iter().map(|p| paths.key(p)).collect();
                if keys.iter().any(|k| *k != Key::Unrelated) {
                    watch.shared.metrics.events.inc();
                }
                for key in keys {
                    match key {
                        Key::Path(rel) => watch.changed(Some(&rel)),
                        Key::Signature => watch.changed(Some(MODEL)),
                        Key::Model => {
                            rearm(&mut watcher);
                            watch.changed(None);
                        }
                        Key::Unrelated => {}
                    }
                }
            }
        })
        .map_err(WatchError::Thread)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_paths_map_to_keys() {
        let paths = Paths {
            model: "/m/model".into(),
            model_is_dir: true,
            signature: "/m/model.sig".into(),
        };
        assert_eq!(
            paths.key(Path::new("/m/model/a/b.bin")),
            Key::Path("a/b.bin".into())
        );
        assert_eq!(paths.key(Path::new("/m/model.sig")), Key::Signature);
        assert_eq!(paths.key(Path::new("/m/model")), Key::Model);
        assert_eq!(paths.key(Path::new("/m/model2/x")), Key::Unrelated);
        assert_eq!(paths.key(Path::new("/m/other")), Key::Unrelated);
    }
}
