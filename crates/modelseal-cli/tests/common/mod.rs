//! Helpers the CLI test targets share: run the binary, read its output, check exit codes.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn testkey(name: &str) -> PathBuf {
    repo().join("testdata/keys").join(name)
}

/// Runs `modelseal ARGS` with no passphrase in the environment and no stdin.
pub fn modelseal(args: &[&dyn AsRef<OsStr>]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_modelseal"));
    for arg in args {
        cmd.arg(arg);
    }
    cmd.env_remove("MODELSEAL_PASSPHRASE");
    cmd.stdin(std::process::Stdio::null());
    cmd.output().expect("modelseal runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Exit 1 (refused) and `needle` somewhere in stdout or stderr.
#[track_caller]
pub fn assert_refused(out: &Output, needle: &str) {
    assert_exit(out, 1);
    let all = format!("{}{}", stdout(out), stderr(out));
    assert!(all.contains(needle), "missing {needle:?} in\n{all}");
}

/// The shared `../shared/vectors` directory, when present. Missing under `CI` is a failure
/// (those tests must run there); elsewhere the caller skips with a printed notice.
pub fn shared_vectors(test: &str) -> Option<PathBuf> {
    let dir = repo().join("../shared/vectors");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI is set and {} is missing",
        dir.display()
    );
    eprintln!("notice: {test} skipped: {} is absent", dir.display());
    None
}
