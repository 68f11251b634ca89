//! Records the git commit the binary is built from, for `modelseal --version`.
//! MODELSEAL_COMMIT, when set, wins (a build from a source archive); otherwise `git
//! rev-parse HEAD` in the source tree; otherwise `unknown` (a build from a packaged crate).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MODELSEAL_COMMIT");
    let commit = std::env::var("MODELSEAL_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_head)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MODELSEAL_COMMIT={commit}");
}

/// The first 12 hex digits of HEAD, and rerun-if-changed on the files that move it. Only
/// files that exist are named: cargo reruns a script whose named file is missing every
/// time, which would rebuild the CLI on every build. Only modelseal's own checkout
/// counts: a packaged crate unpacked inside some other repository (a home directory
/// kept in git, `target/package/`) names no commit.
fn git_head() -> Option<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let output = Command::new("git")
        .args(["rev-parse", "--show-toplevel", "--git-dir", "HEAD"])
        .current_dir(&manifest_dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let mut lines = text.lines();
    let toplevel = Path::new(lines.next()?).join("crates/modelseal-cli");
    if toplevel.canonicalize().ok()? != Path::new(&manifest_dir).canonicalize().ok()? {
        return None;
    }
    let git_dir = Path::new(&manifest_dir).join(lines.next()?);
    let head = lines.next()?;
    if head.len() < 12 || !head.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut watched = vec![git_dir.join("HEAD"), git_dir.join("packed-refs")];
    if let Ok(symbolic) = std::fs::read_to_string(git_dir.join("HEAD")) {
        if let Some(reference) = symbolic.trim().strip_prefix("ref: ") {
            watched.push(git_dir.join(reference));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(head[..12].to_owned())
}
