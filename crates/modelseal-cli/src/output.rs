//! Printing: stdout for results, stderr for errors and hints. A closed stdout pipe
//! (`modelseal hash m | head -1`) ends output quietly instead of panicking. Under
//! `--json` every run prints exactly one object on stdout (spec/cli.md): the command's
//! report, or [`print_error`]'s object when it stopped with an error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI8, Ordering};

use serde_json::{Value, json};

/// `eprintln!` whose text passes [`terminal_safe`] first: diagnostics quote bundles,
/// paths and registry answers nobody vouched for.
// Exported only so every module can reach it; not part of the library API.
#[doc(hidden)]
#[macro_export]
macro_rules! eprintln_safe {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::output::terminal_safe(&format!($($arg)*)))
    };
}

/// How much goes to stderr besides results, warnings and errors: -1 under `-q`, 0 by
/// default, the number of `-v` otherwise. Set once, from the command line.
static VERBOSITY: AtomicI8 = AtomicI8::new(0);

pub fn set_verbosity(level: i8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

/// `-q`: no progress bar and no notes.
pub fn quiet() -> bool {
    VERBOSITY.load(Ordering::Relaxed) < 0
}

/// The number of `-v` given.
pub fn verbose() -> u8 {
    VERBOSITY.load(Ordering::Relaxed).max(0) as u8
}

/// A note on stderr (what was resolved, written or passed over), made terminal-safe like
/// [`eprintln_safe!`]; `-q` hides it. Warnings and errors use `eprintln_safe!`.
// Exported only so every module can reach it; not part of the library API.
#[doc(hidden)]
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        if !$crate::output::quiet() {
            $crate::eprintln_safe!($($arg)*)
        }
    };
}

/// Writes `text` and a newline to stdout, ignoring a closed pipe.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", terminal_safe(text));
}

/// `text` with every character that could move the cursor, recolour or reorder what a
/// terminal shows escaped (`\u{1b}`): controls other than newline and tab, and Unicode
/// bidirectional overrides. Much of what modelseal prints comes from unverified files (a
/// bundle's names and hints, planted file names), and none of it may draw a fake line.
/// JSON is unaffected: serde_json already escapes control characters in strings.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Writes a command's JSON report, pretty-printed, to stdout, with `ok` set: true when
/// the command did what was asked (exit 0), false for a refusal (exit 1).
pub fn out_report(ok: bool, mut report: Value) {
    if let Value::Object(fields) = &mut report {
        fields.insert("ok".into(), ok.into());
    }
    out(&serde_json::to_string_pretty(&report).expect("JSON values serialize"));
}

/// `1 file`, `2 files`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The user called modelseal in a way it cannot honour: flags that conflict, or a flag
/// missing for another. Found before any work is done; `error.kind` is `usage`.
#[derive(Debug)]
pub struct UsageError {
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// Returns early with a [`UsageError`]: `usage!("what happened")`, or
/// `usage!("what happened"; hint = "what to do")`.
// Exported only so every module can reach it; not part of the library API.
#[doc(hidden)]
#[macro_export]
macro_rules! usage {
    ($message:expr; hint = $hint:expr) => {
        return Err($crate::output::UsageError {
            message: $message.into(),
            hint: Some($hint.into()),
        }
        .into())
    };
    ($($arg:tt)*) => {
        return Err($crate::output::UsageError {
            message: format!($($arg)*),
            hint: None,
        }
        .into())
    };
}

/// A store path that names no directory.
#[derive(Debug)]
pub struct StoreMissing(pub String);

impl std::fmt::Display for StoreMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreMissing {}

/// An output path that already exists, where replacing it needs `--force`.
#[derive(Debug)]
pub struct OutputExists {
    pub what: &'static str,
    pub path: PathBuf,
}

impl std::fmt::Display for OutputExists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} already exists", self.what, self.path.display())
    }
}

impl std::error::Error for OutputExists {}

/// Refuses to replace `path` unless `force`: a signature, BOM or tree written over
/// another is a silent loss the user did not ask for.
pub fn check_new(path: &Path, what: &'static str, force: bool) -> anyhow::Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(OutputExists {
            what,
            path: path.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

/// How a command that stopped with an error (exit 2) reports it, on stderr always and,
/// under `--json`, as one object on stdout.
pub struct ErrorReport {
    pub json: bool,
    /// For commands whose report says `verified`: it is false here too.
    pub verifies: bool,
}

/// Prints `error: <chain>` and any hints that fit the error; under `--json` also the
/// error object on stdout.
pub fn print_error(err: &anyhow::Error, report: &ErrorReport) {
    let message = modelseal_verify::error_chain(err.as_ref());
    let hints = hints(err);
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", terminal_safe(&message));
    for hint in &hints {
        let _ = writeln!(stderr, "hint: {}", terminal_safe(hint));
    }
    drop(stderr);
    if report.json {
        let mut object = json!({
            "error": { "kind": error_kind(err), "message": message, "hints": hints },
        });
        if report.verifies {
            object["verified"] = false.into();
        }
        out_report(false, object);
    }
}

/// A clap parse error: clap's own message on stderr and, when `--json` was among the
/// arguments, the usage error object on stdout. Help and version print as clap prints them.
pub fn print_usage_error(err: &clap::Error, args: &[std::ffi::OsString]) -> u8 {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return 0;
    }
    let _ = err.print();
    let json_asked = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| *a == "--json");
    if json_asked {
        let rendered = err.render().to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned();
        out_report(
            false,
            json!({ "error": { "kind": "usage", "message": message, "hints": ["run with --help for the flags"] } }),
        );
    }
    2
}

/// The stable `error.kind` of an error that stopped a command (spec/cli.md §2).
pub fn error_kind(err: &anyhow::Error) -> &'static str {
    use modelseal_core::{BundleError, KeyError};
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return "usage";
        }
        if cause.is::<OutputExists>() {
            return "output-exists";
        }
        if cause.is::<StoreMissing>() {
            return "missing-store";
        }
        if cause.is::<KeyError>() || cause.is::<crate::commands::KeyFileError>() {
            return "key";
        }
        if let Some(e) = cause.downcast_ref::<modelseal_verify::VerifyError>() {
            return e.kind();
        }
        if let Some(e) = cause.downcast_ref::<modelseal_oci::OciError>() {
            return e.kind();
        }
        if cause.is::<modelseal_lineage::policy::PolicyError>() {
            return "policy";
        }
        if let Some(e) = cause.downcast_ref::<BundleError>() {
            return match e {
                BundleError::Io(_) => "io",
                _ => "malformed-bundle",
            };
        }
    }
    if err.chain().any(|c| c.is::<std::io::Error>()) {
        return "io";
    }
    "invalid-input"
}

fn hints(err: &anyhow::Error) -> Vec<String> {
    use modelseal_core::{KeyError, ModelError};
    let mut hints: Vec<String> = Vec::new();
    for cause in err.chain() {
        if let Some(UsageError {
            hint: Some(hint), ..
        }) = cause.downcast_ref::<UsageError>()
        {
            hints.push(hint.clone());
        }
        if let Some(key_file) = cause.downcast_ref::<crate::commands::KeyFileError>() {
            hints.push(key_file.hint.clone());
        }
        if cause.is::<OutputExists>() {
            hints.push("pass --force to replace it, or choose another path".into());
        }
        if cause.is::<StoreMissing>() {
            hints.push(
                "check the path; `modelseal store add STORE BUNDLE...` creates a store".into(),
            );
        }
        if let Some(key) = cause.downcast_ref::<KeyError>() {
            match key {
                KeyError::PassphraseRequired => {
                    hints.push("set MODELSEAL_PASSPHRASE, or run on a terminal to be asked".into())
                }
                KeyError::UnsupportedAlgorithm { .. } => {
                    hints.push("make an ed25519 key with `modelseal keygen --out PATH`".into())
                }
                _ => {}
            }
        }
        if let Some(ModelError::Walk(walk)) = cause.downcast_ref::<ModelError>() {
            hints.extend(walk_hint(walk).map(str::to_owned));
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
