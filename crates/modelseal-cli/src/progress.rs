//! A progress bar on stderr while hashing, only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use modelseal_core::hash::Progress;

/// Below this many bytes hashing is too quick for a bar to help.
const MIN_BYTES_FOR_BAR: u64 = 64 << 20;

pub struct Bar {
    bar: Option<ProgressBar>,
    /// For `-v`: bytes hashed since the bar was made.
    bytes: AtomicU64,
    started: Instant,
}

impl Bar {
    /// A bar that draws only when stderr is a terminal, neither `hidden` (for `--json`)
    /// nor `-q` is given.
    pub fn new(hidden: bool) -> Self {
        let shown = !hidden && !crate::output::quiet() && std::io::stderr().is_terminal();
        let bar = shown.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "hashing {bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("template is valid"),
            );
            bar
        });
        Self {
            bar,
            bytes: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Clears the bar; under `-v`, says how much was hashed and how fast.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if crate::output::verbose() > 0 {
            let bytes = self.bytes.load(Ordering::Relaxed);
            let seconds = self.started.elapsed().as_secs_f64();
            let rate = bytes as f64 / seconds.max(1e-9) / f64::from(1 << 20);
            crate::note!("note: hashed {bytes} bytes in {seconds:.3} s ({rate:.0} MiB/s)");
        }
    }
}

impl Progress for Bar {
    fn begin(&self, total_bytes: u64) {
        if let Some(bar) = &self.bar {
            if total_bytes < MIN_BYTES_FOR_BAR {
                bar.set_draw_target(ProgressDrawTarget::hidden());
            }
            bar.set_length(total_bytes);
        }
    }

    fn advance(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
}
