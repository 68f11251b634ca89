//! What is known about the model right now (`spec/watch.md` §3): per key (the model as a
//! whole, and each signed file) a generation that every change event raises, and the
//! verdict of the last check with the generation it started at. A verdict counts only
//! while its generation is current, so a check that ran while the file changed can never
//! make the model ready: its result is stale the moment the event arrives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::time::SystemTime;

/// The key of the model as a whole: its signature, signer, subject and file set.
pub const MODEL: &str = "";

/// The most distinct changed paths held for the change log before they are folded into
/// "everything changed", so a flood of created names cannot grow memory without bound.
pub const MAX_DIRTY: usize = 10_000;

/// One verdict: `Ok`, or why the key does not verify.
pub type Verdict = Result<(), String>;

#[derive(Debug, Default)]
struct Entry {
    generation: u64,
    verdict: Option<(u64, Verdict)>,
}

impl Entry {
    fn current(&self) -> Option<&Verdict> {
        match &self.verdict {
            Some((at, verdict)) if *at == self.generation => Some(verdict),
            _ => None,
        }
    }

    fn ok(&self) -> bool {
        matches!(self.current(), Some(Ok(())))
    }
}

/// What a status query sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Whether every key has a current passing verdict.
    pub ready: bool,
    /// Keys whose current verdict is a refusal, with the reason (`""` is the model).
    pub failures: BTreeMap<String, String>,
    /// Keys changed since their last check, not yet checked again.
    pub pending: BTreeSet<String>,
    /// How many keys fail (the list may hold fewer).
    pub failure_count: usize,
    /// How many keys are pending (the list may hold fewer).
    pub pending_count: usize,
}

/// The tracker. Not thread-safe itself: [`crate::Watch`] holds it in a mutex.
#[derive(Debug, Default)]
pub struct Tracker {
    entries: HashMap<String, Entry>,
    /// The signed files, as of the last successful check of the model.
    signed: BTreeSet<String>,
    /// Paths changed and not yet taken by the event checker (for its log; what it checks
    /// is every signed file without a current verdict).
    dirty: BTreeSet<String>,
    /// Everything changed (the model was replaced, events were lost, or too many paths).
    dirty_all: bool,
    /// Keys without a current passing verdict: readiness in O(1), however many files.
    not_ok: usize,
    /// When a check last left every key verified.
    pub last_verified: Option<SystemTime>,
}

impl Tracker {
    /// A tracker that knows nothing yet: not ready until a first check passes.
    pub fn new() -> Self {
        let mut tracker = Self::default();
        tracker.entries.insert(MODEL.to_owned(), Entry::default());
        tracker.not_ok = 1;
        tracker
    }

    /// Records a change to `path` (relative to the model; [`MODEL`] for the signature):
    /// the model's verdict, and those of the signed files at or under `path`, stop
    /// counting. The path is kept for the change log.
    pub fn changed(&mut self, path: &str) {
        self.bump(MODEL);
        if path != MODEL {
            // A changed directory may hold changed signed files; an unsigned name only
            // matters to the file set, which the model's own check covers.
            let prefix = format!("{path}/");
            let mut touched: Vec<String> = self
                .signed
                .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .take_while(|s| s.starts_with(&prefix))
                .cloned()
                .collect();
            if self.signed.contains(path) {
                touched.push(path.to_owned());
            }
            for key in &touched {
                self.bump(key);
            }
        }
        self.mark(path.to_owned());
    }

    /// Records that anything may have changed.
    pub fn changed_all(&mut self) {
        let keys: Vec<String> = self.entries.keys().cloned().collect();
        for key in keys {
            self.bump(&key);
        }
        self.dirty_all = true;
    }

    fn bump(&mut self, key: &str) {
        let entry = self.entries.entry(key.to_owned()).or_insert_with(|| {
            self.not_ok += 1;
            Entry::default()
        });
        let was = entry.ok();
        entry.generation += 1;
        if was {
            self.not_ok += 1;
        }
    }

    fn mark(&mut self, path: String) {
        if self.dirty.len() >= MAX_DIRTY {
            self.dirty.clear();
            self.dirty_all = true;
        } else if !self.dirty_all {
            self.dirty.insert(path);
        }
    }

    /// Whether changes wait for the event checker.
    pub fn has_changes(&self) -> bool {
        self.dirty_all || !self.dirty.is_empty()
    }

    /// Takes the changed paths: `None` when everything is to be checked.
    pub fn take_changes(&mut self) -> Option<BTreeSet<String>> {
        let all = std::mem::take(&mut self.dirty_all);
        let dirty = std::mem::take(&mut self.dirty);
        (!all).then_some(dirty)
    }

    /// The generation of `key` now: pass it back to [`Tracker::record`].
    pub fn generation(&self, key: &str) -> u64 {
        self.entries.get(key).map_or(0, |e| e.generation)
    }

    /// Sets the signed file set (after a successful check of the model). Files no
    /// longer signed are forgotten; new ones start unchecked.
    pub fn set_signed(&mut self, signed: BTreeSet<String>) {
        self.entries
            .retain(|key, _| key == MODEL || signed.contains(key));
        for path in &signed {
            self.entries.entry(path.clone()).or_default();
        }
        self.signed = signed;
        self.not_ok = self.entries.values().filter(|e| !e.ok()).count();
    }

    /// The signed files.
    pub fn signed(&self) -> &BTreeSet<String> {
        &self.signed
    }

    /// Stores the verdict of a check of `key` that started at `generation`. A stale one
    /// (the key changed since) is dropped. Says whether the outcome differs from the one
    /// before, so callers log transitions only.
    pub fn record(&mut self, key: &str, generation: u64, verdict: Verdict) -> Recorded {
        let Some(entry) = self.entries.get_mut(key) else {
            return Recorded::Stale;
        };
        if entry.generation != generation {
            return Recorded::Stale;
        }
        let before = entry.verdict.as_ref().map(|(_, v)| v.is_ok());
        let now = verdict.is_ok();
        let was_ok = entry.ok();
        entry.verdict = Some((generation, verdict));
        match (was_ok, entry.ok()) {
            (true, false) => self.not_ok += 1,
            (false, true) => self.not_ok -= 1,
            _ => {}
        }
        if self.ready() {
            self.last_verified = Some(SystemTime::now());
        }
        match before {
            Some(was) if was == now => Recorded::Same,
            Some(_) => Recorded::Changed { first: false },
            None => Recorded::Changed { first: true },
        }
    }

    /// Signed files without a current verdict: what the event checker hashes next.
    pub fn unchecked_files(&self) -> Vec<String> {
        self.signed
            .iter()
            .filter(|path| {
                self.entries
                    .get(*path)
                    .is_none_or(|e| e.current().is_none())
            })
            .cloned()
            .collect()
    }

    /// Whether every key has a current passing verdict (what [`Tracker::status`] says as
    /// `ready`, without building its lists).
    pub fn ready(&self) -> bool {
        self.not_ok == 0
    }

    /// Ready, failures and pending keys.
    pub fn status(&self) -> Status {
        self.status_listing(usize::MAX)
    }

    /// Ready, the counts, and at most `limit` failures and `limit` pending keys (the
    /// first by name): what probes and log lines show, whatever the file count.
    pub fn status_listing(&self, limit: usize) -> Status {
        let mut status = Status {
            ready: self.ready(),
            failures: BTreeMap::new(),
            pending: BTreeSet::new(),
            failure_count: 0,
            pending_count: 0,
        };
        if status.ready {
            // Nothing to list: a probe of a ready model costs nothing per file.
            return status;
        }
        for (key, entry) in &self.entries {
            match entry.current() {
                Some(Ok(())) => {}
                Some(Err(reason)) => {
                    status.failure_count += 1;
                    // Kept to the first `limit` by name, whatever the map's order.
                    if status.failures.len() < limit
                        || status
                            .failures
                            .last_key_value()
                            .is_some_and(|(k, _)| key < k)
                    {
                        status.failures.insert(key.clone(), reason.clone());
                        if status.failures.len() > limit {
                            status.failures.pop_last();
                        }
                    }
                }
                None => {
                    status.pending_count += 1;
                    if status.pending.len() < limit
                        || status.pending.last().is_some_and(|k| key < k)
                    {
                        status.pending.insert(key.clone());
                        if status.pending.len() > limit {
                            status.pending.pop_last();
                        }
                    }
                }
            }
        }
        status
    }
}

/// What [`Tracker::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The key changed while it was checked: the verdict was dropped.
    Stale,
    /// Stored, with the same outcome as before.
    Same,
    /// Stored, and the outcome differs from before (`first`: there was none).
    Changed {
        /// The key had no verdict before.
        first: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    /// The O(1) count agrees with the full status after every step of a random history.
    #[test]
    fn the_ready_count_always_agrees_with_the_full_status() {
        let mut t = Tracker::new();
        let paths = ["a", "d/x", "d/y", "e"];
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..5000 {
            let key = [MODEL, "a", "d/x", "d/y", "e", "d"][next() % 6];
            match next() % 5 {
                0 => t.changed(key),
                1 => t.changed_all(),
                2 => {
                    let keep = next() % 2 == 0;
                    t.set_signed(
                        paths
                            .iter()
                            .filter(|p| keep || **p != "e")
                            .map(|p| (*p).to_owned())
                            .collect(),
                    );
                }
                _ => {
                    let g = t.generation(key);
                    let verdict = if next() % 4 == 0 {
                        Err("no".into())
                    } else {
                        Ok(())
                    };
                    t.record(key, g, verdict);
                }
            }
            let status = t.status();
            assert_eq!(
                t.ready(),
                status.failure_count == 0 && status.pending_count == 0
            );
            let listed = t.status_listing(1);
            assert!(listed.failures.len() <= 1 && listed.pending.len() <= 1);
            assert_eq!(listed.failures.keys().next(), status.failures.keys().next());
            assert_eq!(listed.pending.first(), status.pending.first());
            assert_eq!(listed.failure_count, status.failures.len());
            assert_eq!(listed.pending_count, status.pending.len());
        }
    }

    #[test]
    fn ready_only_when_every_key_passed_at_its_current_generation() {
        let mut t = Tracker::new();
        assert!(!t.status().ready, "nothing checked yet");
        t.set_signed(signed(&["a", "b"]));
        let g = t.generation(MODEL);
        t.record(MODEL, g, Ok(()));
        t.record("a", t.generation("a"), Ok(()));
        assert!(!t.status().ready, "b is unchecked");
        t.record("b", t.generation("b"), Ok(()));
        assert!(t.status().ready);
    }

    #[test]
    fn a_change_during_a_check_makes_its_pass_stale() {
        let mut t = Tracker::new();
        t.set_signed(signed(&["a"]));
        t.record(MODEL, t.generation(MODEL), Ok(()));
        let started = t.generation("a");
        t.changed("a");
        assert_eq!(t.record("a", started, Ok(())), Recorded::Stale);
        let status = t.status();
        assert!(!status.ready);
        assert!(status.pending.contains("a") && status.pending.contains(MODEL));
    }

    #[test]
    fn a_changed_directory_makes_the_files_under_it_pending() {
        let mut t = Tracker::new();
        t.set_signed(signed(&["d/x", "d/y", "e"]));
        for key in ["", "d/x", "d/y", "e"] {
            t.record(key, t.generation(key), Ok(()));
        }
        assert!(t.status().ready);
        t.changed("d");
        let pending = t.status().pending;
        assert!(pending.contains("d/x") && pending.contains("d/y"));
        assert!(!pending.contains("e"));
        let changes = t.take_changes().expect("some paths, not all");
        assert_eq!(changes, signed(&["d"]));
    }

    #[test]
    fn too_many_changed_names_fold_into_everything() {
        let mut t = Tracker::new();
        let many: Vec<String> = (0..=MAX_DIRTY).map(|i| format!("f{i}")).collect();
        t.set_signed(many.iter().cloned().collect());
        for path in &many {
            t.changed(path);
        }
        assert_eq!(t.take_changes(), None);
        assert!(!t.has_changes());
    }

    #[test]
    fn unsigned_names_only_touch_the_model() {
        let mut t = Tracker::new();
        t.set_signed(signed(&["a"]));
        t.record(MODEL, t.generation(MODEL), Ok(()));
        t.record("a", t.generation("a"), Ok(()));
        t.changed("planted.py");
        assert_eq!(t.status().pending, signed(&[MODEL]));
        t.record(
            MODEL,
            t.generation(MODEL),
            Err("unsigned planted.py".into()),
        );
        assert!(!t.status().ready);
        assert_eq!(t.entries.len(), 2, "no entry for an unsigned name");
    }
}
