//! Blocking work under two caps and a deadline. `max_in_flight` requests may wait for or
//! run an uncached decision (one more is shed, never queued); `blocking_threads` of them
//! run at once on Tokio's blocking threads. A decision still running at its deadline is
//! answered without it; the work itself is told the deadline and stops at its next
//! check, and one stuck in the kernel holds only its own worker, so a store that never
//! answers costs at most `blocking_threads` threads however many requests it stalls.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{Metrics, Raised};

/// Why blocking work gave no answer.
#[derive(Debug)]
pub enum WorkError {
    /// `max_in_flight` decisions are already waiting or running.
    Shed,
    /// The deadline passed first.
    OutOfTime,
    /// The work panicked; the message, if it had one.
    Panicked(String),
}

/// The caps.
pub struct Pool {
    in_flight: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Pool {
    /// A pool of `threads` workers for at most `in_flight` waiting or running requests.
    pub fn new(in_flight: usize, threads: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(in_flight)),
            workers: Arc::new(Semaphore::new(threads)),
            metrics,
        }
    }

    /// Runs `work` on a worker, answering by `deadline`.
    pub async fn run<T, F>(&self, deadline: Instant, work: F) -> Result<T, WorkError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Ok(slot) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            self.metrics.requests_shed.inc();
            return Err(WorkError::Shed);
        };
        let _waiting = Raised::new(&self.metrics.in_flight);
        let deadline = tokio::time::Instant::from_std(deadline);
        let worker = match tokio::time::timeout_at(
            deadline,
            Arc::clone(&self.workers).acquire_owned(),
        )
        .await
        {
            Ok(Ok(worker)) => worker,
            // The semaphore is never closed; a timeout is the only way here.
            _ => return Err(WorkError::OutOfTime),
        };
        let busy = Raised::new(&self.metrics.workers_busy);
        let task = tokio::task::spawn_blocking(move || {
            // The worker is released when the work ends, not when the request is
            // answered: a stuck read keeps it, and the pool never grows past its cap.
            let _worker: OwnedSemaphorePermit = worker;
            let _busy = busy;
            work()
        });
        let answer = tokio::time::timeout_at(deadline, task).await;
        drop(slot);
        match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                Err(WorkError::Panicked(message))
            }
            Ok(Err(_)) | Err(_) => Err(WorkError::OutOfTime),
        }
    }
}
