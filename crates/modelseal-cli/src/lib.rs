//! The `modelseal` command as a library: [`run`] parses a command line, calls the
//! libraries, prints, and returns the exit status. The binary (`src/main.rs`) and the
//! Python package's `modelseal` console script both call it, so the two are one CLI.
//! Formats, hashing and trust decisions live in `modelseal-core` and `modelseal-verify`.

mod cli;
mod commands;
mod logline;
mod output;
mod progress;
mod signing;

use std::ffi::OsString;

use clap::Parser;

/// What a command concluded, when it ran to the end.
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: a verification was refused (its report is already printed).
    Refused,
}

/// Runs one command line (`args[0]` is the program name) and returns its exit status:
/// 0 success, 1 refused, 2 usage error or unreadable input (spec/cli.md §1).
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return output::print_usage_error(&err, &args),
    };
    // clap checks conflicts per level only: `-q hash -v` gets here.
    if cli.verbosity.quiet && cli.verbosity.verbose > 0 {
        use clap::CommandFactory;
        let err = cli::Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            "the argument '--quiet' cannot be used with '--verbose'",
        );
        return output::print_usage_error(&err, &args);
    }
    output::set_verbosity(cli.verbosity.level());
    let report = output::ErrorReport {
        json: cli.command.json(),
        verifies: cli.command.verifies(),
    };
    let status = match commands::run(cli.command) {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::Refused) => 1,
        Err(err) => {
            output::print_error(&err, &report);
            2
        }
    };
    // Run from the Python console script there is no Rust runtime exit to flush stdout.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    status
}
