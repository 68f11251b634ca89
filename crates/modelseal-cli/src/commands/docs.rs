//! `modelseal completions` and `modelseal man`: generated from the clap definitions, so
//! they list exactly the commands and flags this build accepts.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};

use crate::Outcome;
use crate::cli::{Cli, CompletionsArgs, ManArgs};

pub fn completions(args: &CompletionsArgs) -> Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "modelseal", &mut script);
    // A closed pipe (`modelseal completions bash | head`) is not an error.
    let _ = std::io::stdout().lock().write_all(&script);
    Ok(Outcome::Success)
}

pub fn man(args: &ManArgs) -> Result<Outcome> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot make the directory {}", args.out.display()))?;
    let mut command = Cli::command();
    command.build();
    let written = write_pages(&command, "modelseal", &args.out)?;
    crate::note!("wrote {written} man pages to {}", args.out.display());
    Ok(Outcome::Success)
}

/// Writes `NAME.1` for `command` and `NAME-SUB.1` for each subcommand, recursively, each
/// file whole or not at all. Returns how many were written.
fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> Result<usize> {
    let mut page = Vec::new();
    // The version without the commit: the pages shipped in the wheel are committed, and
    // must not go stale with every commit (tests/docs.rs compares them).
    let command = command
        .clone()
        .name(name.to_owned())
        .version(env!("CARGO_PKG_VERSION"));
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .context("cannot render a man page")?;
    let path = dir.join(format!("{name}.1"));
    write_atomic(&path, &page, Visibility::Public, Overwrite::Allow)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
