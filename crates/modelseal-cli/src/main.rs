//! The `modelseal` binary: parse flags, call the libraries, print, pick the exit code.
//! Formats, hashing and trust decisions live in `modelseal-core` and `modelseal-verify`.

mod cli;
mod commands;
mod logline;
mod output;
mod progress;
mod signing;

use std::process::ExitCode;

use clap::Parser;

/// What a command concluded, when it ran to the end.
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: a verification was refused (its report is already printed).
    Refused,
}

fn main() -> ExitCode {
    #[cfg(feature = "tpm")]
    if std::env::var_os("TSS2_LOG").is_none() {
        // tpm2-tss logs its own warnings to stderr; modelseal reports TPM errors in its
        // own words, so the library is quiet unless the user asks (TSS2_LOG=all+debug).
        // SAFETY: the first statement of main, before any thread exists.
        unsafe { std::env::set_var("TSS2_LOG", "all+NONE") };
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return output::print_usage_error(&err),
    };
    let report = output::ErrorReport {
        json: cli.command.json(),
        verifies: cli.command.verifies(),
    };
    match commands::run(cli.command) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(1),
        Err(err) => {
            output::print_error(&err, &report);
            ExitCode::from(2)
        }
    }
}
