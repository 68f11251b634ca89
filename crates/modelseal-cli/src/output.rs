//! Printing: stdout for results, stderr for errors and hints. A closed stdout pipe
//! (`modelseal hash m | head -1`) ends output quietly instead of panicking.

use std::io::Write;

/// Writes `text` and a newline to stdout, ignoring a closed pipe.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
}

/// Writes a JSON value, pretty-printed, to stdout.
pub fn out_json(value: &serde_json::Value) {
    out(&serde_json::to_string_pretty(value).expect("JSON values serialize"));
}

/// Prints `error: <chain>` and any hints that fit the error.
pub fn print_error(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err:#}");
    for hint in hints(err) {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}

fn hints(err: &anyhow::Error) -> Vec<&'static str> {
    use modelseal_core::{KeyError, ModelError};
    let mut hints = Vec::new();
    for cause in err.chain() {
        if let Some(key) = cause.downcast_ref::<KeyError>() {
            match key {
                KeyError::PassphraseRequired => {
                    hints.push("set MODELSEAL_PASSPHRASE, or run on a terminal to be asked")
                }
                KeyError::UnsupportedAlgorithm { .. } => {
                    hints.push("make an ed25519 key with `modelseal keygen --out PATH`")
                }
                _ => {}
            }
        }
        if let Some(ModelError::Walk(walk)) = cause.downcast_ref::<ModelError>() {
            hints.extend(walk_hint(walk));
        }
    }
    hints
}

/// What to do about a model that could not be walked.
pub fn walk_hint(err: &modelseal_core::WalkError) -> Option<&'static str> {
    use modelseal_core::WalkError;
    match err {
        WalkError::SymlinkRefused { .. } => Some(
            "replace the link with the file, or pass --allow-symlinks if it stays inside the model",
        ),
        WalkError::SymlinkOutside { .. } => {
            Some("a model may not link outside itself; copy the file into the model")
        }
        WalkError::NonUtf8Name { .. } => {
            Some("rename the file, or --ignore the directory that holds it")
        }
        WalkError::BadName(_) => Some("rename the file, or leave it out with --ignore"),
        _ => None,
    }
}
