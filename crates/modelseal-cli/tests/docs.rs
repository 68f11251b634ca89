//! What the CLI says about itself: `--version`, completions, man pages (and the copies
//! the wheel ships), `-q`/`-v` on every command, and `NO_COLOR`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{assert_exit, modelseal, repo, stderr, stdout};

/// The man pages the Python wheel installs (crates/modelseal-python/pyproject.toml).
fn shipped_man_dir() -> std::path::PathBuf {
    repo().join("crates/modelseal-python/wheel-data/data/share/man/man1")
}

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

const COMMANDS: &[&str] = &[
    "keygen",
    "public-key",
    "hash",
    "sign",
    "verify",
    "verify-bundle",
    "inspect",
    "outboard",
    "pull",
    "serve",
    "watch",
    "bom",
    "attest",
    "store",
    "demo",
    "completions",
    "man",
];

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = modelseal(&[&"--version"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    let commit = text
        .trim()
        .strip_prefix(concat!(
            "modelseal ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected version line: {text}"));
    // The build script asks git; so does this test, independently.
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success());
    match (std::env::var("MODELSEAL_COMMIT"), head) {
        (Ok(given), _) if !given.is_empty() => assert_eq!(commit, given),
        (_, Some(head)) => assert_eq!(commit, &String::from_utf8(head.stdout).unwrap()[..12]),
        _ => assert_eq!(commit, "unknown"),
    }
}

#[test]
fn completions_name_every_command_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = modelseal(&[&"completions", &shell]);
        assert_exit(&out, 0);
        let script = stdout(&out);
        for command in COMMANDS {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
        assert!(
            script.contains("--signature"),
            "{shell} completion lacks sign's flags"
        );
    }
    let out = modelseal(&[&"completions", &"tcsh"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("invalid value 'tcsh'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bash_accepts_the_completion_script() {
    let Ok(bash) = which("bash") else { return };
    let out = modelseal(&[&"completions", &"bash"]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("modelseal.bash");
    std::fs::write(&script, out.stdout).unwrap();
    // Loaded, then asked to complete `modelseal ver`: the candidates are the commands.
    let probe = format!(
        "source {}; COMP_WORDS=(modelseal ver); COMP_CWORD=1; COMP_LINE='modelseal ver'; \
         COMP_POINT=13; _modelseal modelseal ver modelseal; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new(bash)
        .args(["--norc", "-c", &probe])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(words, ["verify", "verify-bundle"]);
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn man_pages_cover_every_command_and_match_the_pages_the_wheel_ships() {
    let dir = tempfile::tempdir().unwrap();
    let out = modelseal(&[&"man", &"--out", &dir.path()]);
    assert_exit(&out, 0);
    let pages = read_dir(dir.path());
    assert!(pages.contains_key("modelseal.1"));
    for command in COMMANDS {
        let page = format!("modelseal-{command}.1");
        let text = String::from_utf8_lossy(&pages[&page]).into_owned();
        assert!(text.contains(".TH"), "{page} is no man page");
        assert!(
            text.contains(env!("CARGO_PKG_VERSION")),
            "{page} names no version"
        );
    }
    for nested in [
        "modelseal-attest-training.1",
        "modelseal-store-add.1",
        "modelseal-store-list.1",
    ] {
        assert!(pages.contains_key(nested), "no {nested}");
    }
    let sign = String::from_utf8_lossy(&pages["modelseal-sign.1"]).into_owned();
    assert!(
        sign.contains("\\-\\-update") && sign.contains("\\-\\-from\\-digests"),
        "{sign}"
    );
    if std::env::var_os("MODELSEAL_WRITE_MAN").is_some() {
        let shipped = shipped_man_dir();
        let _ = std::fs::remove_dir_all(&shipped);
        std::fs::create_dir_all(&shipped).unwrap();
        for (name, bytes) in &pages {
            std::fs::write(shipped.join(name), bytes).unwrap();
        }
    }
    assert!(
        read_dir(&shipped_man_dir()) == pages,
        "the man pages in {} are stale: run MODELSEAL_WRITE_MAN=1 cargo test -p modelseal-cli --test docs",
        shipped_man_dir().display()
    );
}

#[test]
fn man_into_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, "x").unwrap();
    let out = modelseal(&[&"man", &"--out", &file]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("cannot make the directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn quiet_and_verbose_are_accepted_by_every_command_before_or_after_it() {
    for command in COMMANDS {
        for flags in [
            ["-q", command],
            [command, "-q"],
            ["-v", command],
            [command, "--verbose"],
        ] {
            let out = modelseal(&[&flags[0], &flags[1], &"--help"]);
            assert_exit(&out, 0);
        }
    }
    let out = modelseal(&[&"-q", &"hash", &"-v", &"."]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn quiet_hides_notes_and_verbose_adds_them_while_results_stay() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w.bin"), vec![7u8; 100_000]).unwrap();
    let pages = dir.path().join("man");

    let plain = modelseal(&[&"man", &"--out", &pages]);
    assert!(stderr(&plain).contains("wrote"), "{}", stderr(&plain));
    let quiet = modelseal(&[&"man", &"--out", &pages, &"-q"]);
    assert_exit(&quiet, 0);
    assert_eq!(stderr(&quiet), "");

    let normal = modelseal(&[&"hash", &model]);
    let verbose = modelseal(&[&"-v", &"hash", &model]);
    let quiet = modelseal(&[&"hash", &"--quiet", &model]);
    for out in [&normal, &verbose, &quiet] {
        assert_exit(out, 0);
        assert_eq!(
            stdout(out),
            stdout(&normal),
            "the result is the same at every level"
        );
    }
    assert!(!stderr(&normal).contains("hashed"), "{}", stderr(&normal));
    assert!(
        stderr(&verbose).contains("note: hashed 100000 bytes"),
        "{}",
        stderr(&verbose)
    );
    assert_eq!(stderr(&quiet), "");

    // Errors still print under -q.
    let missing = modelseal(&[&"-q", &"hash", &dir.path().join("nothing")]);
    assert_exit(&missing, 2);
    assert!(stderr(&missing).contains("error:"), "{}", stderr(&missing));
}

#[test]
fn no_color_turns_off_the_colour_that_clicolor_force_turns_on() {
    let help = |no_color: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelseal"));
        cmd.args(["sign", "--help"])
            .env("CLICOLOR_FORCE", "1")
            .env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        cmd.output().unwrap()
    };
    let coloured = help(false);
    assert!(
        coloured.stdout.contains(&0x1b),
        "CLICOLOR_FORCE gave no colour: the test proves nothing"
    );
    let plain = help(true);
    assert_exit(&plain, 0);
    assert!(
        !plain.stdout.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&plain.stdout)
    );
    // A usage error (stderr) too.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelseal"));
    let out = cmd
        .args(["sign", "--no-such-flag"])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1");
    let out = out.output().unwrap();
    assert_exit(&out, 2);
    assert!(
        !out.stderr.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
