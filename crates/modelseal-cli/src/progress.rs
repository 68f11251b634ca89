//! A progress bar on stderr while hashing, only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use modelseal_core::hash::Progress;

/// Below this many bytes hashing is too quick for a bar to help.
const MIN_BYTES_FOR_BAR: u64 = 64 << 20;

pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar that draws only when stderr is a terminal and `quiet` is off.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "hashing {bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("template is valid"),
            );
            bar
        });
        Self { bar }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
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
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
}
