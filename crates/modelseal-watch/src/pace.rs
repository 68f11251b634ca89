//! The read-rate limit of background passes: a pass may read no more than `rate` bytes
//! per second on average since it began, with at most one chunk read ahead of that.

use std::time::{Duration, Instant};

/// Paces one pass.
#[derive(Debug)]
pub struct Pacer {
    rate: Option<u64>,
    started: Instant,
    bytes: u64,
}

impl Pacer {
    /// `rate` in bytes per second; `None` reads as fast as the disk and one core allow.
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            rate: rate.filter(|r| *r > 0),
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `n` bytes read, and sleeps until the average is back under the rate.
    pub fn take(&mut self, n: u64) {
        self.bytes += n;
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_takes_at_least_bytes_over_rate() {
        let mut pacer = Pacer::new(Some(1 << 20));
        let start = Instant::now();
        for _ in 0..4 {
            pacer.take(128 << 10);
        }
        // 512 KiB at 1 MiB/s: at least half a second, wherever the machine is.
        assert!(start.elapsed() >= Duration::from_millis(500));
        assert_eq!(pacer.bytes(), 512 << 10);
    }

    #[test]
    fn no_rate_never_sleeps_long() {
        let mut pacer = Pacer::new(None);
        let start = Instant::now();
        pacer.take(u64::MAX / 2);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
