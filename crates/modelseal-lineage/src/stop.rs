//! When a walk or a lookup should stop: a deadline, a flag its caller raises when it no
//! longer wants the answer (a client gone), or both. Checked before each hop, every few
//! hundred directory entries and before each store file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A stopping rule; the default never stops.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    deadline: Option<Instant>,
    cancelled: Option<Arc<AtomicBool>>,
}

impl Stop {
    /// Never stops.
    pub fn never() -> Self {
        Self::default()
    }

    /// Stops at `deadline`.
    pub fn at(deadline: Instant) -> Self {
        Self {
            deadline: Some(deadline),
            cancelled: None,
        }
    }

    /// Also stops once `flag` is set.
    pub fn or_when(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancelled = Some(flag);
        self
    }

    /// Whether it is time to stop.
    pub fn reached(&self) -> bool {
        self.cancelled
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}
