//! Signing with a key that stays in a TPM 2.0: `swtpm` as the TPM (on loopback, no
//! `/dev/tpm*` here), `tpm2-tools` to make persistent keys and to read their public keys
//! independently. Built with the `tpm` feature, which tests/run.sh enables.
#![cfg(feature = "tpm")]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// A running swtpm with persistent ECDSA keys: P-256 at 0x81000010, P-384 at 0x81000011,
/// and P-256 with the authorization value `s3cret` at 0x81000012.
struct Tpm {
    dir: tempfile::TempDir,
    port: u16,
    process: Child,
}

impl Drop for Tpm {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Two free loopback ports in a row: the swtpm TCTI finds the control channel at the
/// server port plus one.
fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

impl Tpm {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        // Port pairs are picked, then bound by swtpm: two TPMs starting at once could pick
        // the same pair, so they start one at a time, and a swtpm that could not bind
        // (exited) is started again on other ports.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let (port, process) = loop {
            let port = free_port_pair();
            let mut process = Self::spawn(dir.path(), port);
            let mut up = false;
            for _ in 0..100 {
                if process.try_wait().unwrap().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if up && process.try_wait().unwrap().is_none() {
                break (port, process);
            }
            let _ = process.kill();
            let _ = process.wait();
        };
        let tpm = Self { dir, port, process };
        tpm.init_keys();
        tpm
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        let control = port + 1;
        Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.join("state").display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={control},bindaddr=127.0.0.1"))
            .spawn()
            .expect("swtpm is not installed (Debian: apt-get install -y swtpm tpm2-tools); tests/run.sh installs it")
    }

    fn init_keys(&self) {
        let tpm = self;
        tpm.tools(&[
            "tpm2_createprimary",
            "-C",
            "o",
            "-g",
            "sha256",
            "-G",
            "ecc256",
            "-c",
            "primary.ctx",
            "-Q",
        ]);
        for (alg, handle, auth) in [
            ("ecc256:ecdsa-sha256", "0x81000010", None),
            ("ecc384:ecdsa-sha384", "0x81000011", None),
            ("ecc256:ecdsa-sha256", "0x81000012", Some("s3cret")),
        ] {
            tpm.tools(&["tpm2_flushcontext", "-t"]);
            let mut create = vec![
                "tpm2_create",
                "-C",
                "primary.ctx",
                "-G",
                alg,
                "-u",
                "k.pub",
                "-r",
                "k.priv",
                "-Q",
            ];
            if let Some(auth) = auth {
                create.extend(["-p", auth]);
            }
            tpm.tools(&create);
            tpm.tools(&["tpm2_flushcontext", "-t"]);
            tpm.tools(&[
                "tpm2_load",
                "-C",
                "primary.ctx",
                "-u",
                "k.pub",
                "-r",
                "k.priv",
                "-c",
                "k.ctx",
                "-Q",
            ]);
            tpm.tools(&["tpm2_evictcontrol", "-C", "o", "-c", "k.ctx", handle, "-Q"]);
            tpm.tools(&["tpm2_flushcontext", "-t"]);
        }
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn tools(&self, args: &[&str]) -> Output {
        let out = Command::new(args[0])
            .args(&args[1..])
            .env("TPM2TOOLS_TCTI", self.tcti())
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}); apt-get install -y tpm2-tools",
                    args[0]
                )
            });
        assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
        out
    }

    fn modelseal(&self, args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_modelseal"));
        command
            .args(args)
            .env_remove("TPM2TOOLS_TCTI")
            .env_remove("TCTI")
            .env_remove("TEST_TCTI")
            .env_remove("MODELSEAL_TPM_AUTH")
            .current_dir(self.dir.path());
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    }

    fn key(&self, handle: &str) -> String {
        format!("tpm:handle={handle}?tcti={}", self.tcti())
    }

    /// The public key as tpm2-tools reads it (the independent reader).
    fn public_pem(&self, handle: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{handle}.pem"));
        self.tools(&[
            "tpm2_readpublic",
            "-c",
            handle,
            "-f",
            "pem",
            "-o",
            path.to_str().unwrap(),
            "-Q",
        ]);
        path
    }
}

fn model(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("weights.bin"), vec![5u8; 250_000]).unwrap();
    std::fs::write(model.join("tokenizer.json"), b"{}\n").unwrap();
    model
}

#[test]
fn tpm_keys_sign_both_formats_and_verify_with_the_tpms_own_public_key() {
    let tpm = Tpm::start();
    let model = model(tpm.dir.path());
    for handle in ["0x81000010", "0x81000011"] {
        let pem = tpm.public_pem(handle);
        let out = tpm.modelseal(&[&"public-key", &tpm.key(handle)], &[]);
        common::assert_exit(&out, 0);
        assert_eq!(common::stdout(&out), std::fs::read_to_string(&pem).unwrap());
        for format in ["native", "oms"] {
            let signature = tpm.dir.path().join(format!("{handle}-{format}.sig"));
            let out = tpm.modelseal(
                &[
                    &"sign",
                    &model,
                    &"--format",
                    &format,
                    &"--key",
                    &tpm.key(handle),
                    &"--signature",
                    &signature,
                ],
                &[],
            );
            common::assert_exit(&out, 0);
            assert!(
                common::stdout(&out).contains("(tpm)"),
                "{}",
                common::stdout(&out)
            );
            let out = tpm.modelseal(
                &[
                    &"verify",
                    &model,
                    &"--signature",
                    &signature,
                    &"--key",
                    &pem,
                ],
                &[],
            );
            common::assert_exit(&out, 0);
        }
    }
    // The TCTI from the environment, as tpm2-tools read it, and a key with an auth value.
    let signature = tpm.dir.path().join("auth.sig");
    let out = tpm.modelseal(
        &[
            &"sign",
            &model,
            &"--key",
            &"tpm:handle=0x81000012",
            &"--signature",
            &signature,
        ],
        &[
            ("TPM2TOOLS_TCTI", &tpm.tcti()),
            ("MODELSEAL_TPM_AUTH", "s3cret"),
        ],
    );
    common::assert_exit(&out, 0);
    let out = tpm.modelseal(
        &[
            &"verify",
            &model,
            &"--signature",
            &signature,
            &"--key",
            &tpm.public_pem("0x81000012"),
        ],
        &[],
    );
    common::assert_exit(&out, 0);
}

/// A key name, its environment, and what stderr must say.
type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn bad_handles_auth_and_tctis_are_named_and_leave_no_output() {
    let tpm = Tpm::start();
    let model = model(tpm.dir.path());
    let cases: Vec<Case> = vec![
        (
            tpm.key("0x81000099"),
            vec![],
            "TPM key 0x81000099: cannot load the key: no key at this handle",
        ),
        (
            tpm.key("0x81000012"),
            vec![("MODELSEAL_TPM_AUTH", "wrong")],
            "TPM key 0x81000012: cannot sign: wrong authorization value",
        ),
        (
            tpm.key("0x81000012"),
            vec![],
            "TPM key 0x81000012: cannot sign: wrong authorization value",
        ),
        (
            "tpm:handle=0x81000010".to_owned(),
            vec![],
            "no TPM named; add ?tcti=",
        ),
        (
            "tpm:handle=0x40000001".to_owned(),
            vec![],
            "is not a persistent handle",
        ),
        (
            "tpm:handle=0x81000010?tcti=swtpm:host=127.0.0.1,port=1".to_owned(),
            vec![],
            "TPM key 0x81000010: cannot reach the TPM",
        ),
    ];
    for (key, env, expected) in &cases {
        let signature = tpm.dir.path().join("out.sig");
        let out = tpm.modelseal(
            &[&"sign", &model, &"--key", key, &"--signature", &signature],
            env,
        );
        common::assert_exit(&out, 2);
        let stderr = common::stderr(&out);
        assert!(stderr.contains(expected), "{key}: {stderr}");
        assert!(
            !stderr.contains("wrong\n") && !stderr.contains("s3cret"),
            "{stderr}"
        );
        assert!(!signature.exists(), "{key} left a signature");
    }
}

impl Tpm {
    /// Key files as tpm2-tools writes them (`tpm2_encodeobject`): a P-256 key under the
    /// owner hierarchy's default ECC primary (recorded as parent 0x40000001), and a P-384
    /// key with the authorization value `s3cret` under that primary made persistent at
    /// 0x81000001. Returns (owner.pem, persistent.pem) and each key's public PEM as
    /// tpm2-tools reads it once loaded.
    fn key_files(&self) -> [(PathBuf, PathBuf); 2] {
        let tpm = self;
        let path = |name: &str| tpm.dir.path().join(name);
        tpm.tools(&["tpm2_flushcontext", "-t"]);
        tpm.tools(&[
            "tpm2_create",
            "-C",
            "primary.ctx",
            "-G",
            "ecc256:ecdsa-sha256",
            "-u",
            "f1.pub",
            "-r",
            "f1.priv",
            "-Q",
        ]);
        tpm.tools(&["tpm2_flushcontext", "-t"]);
        tpm.tools(&[
            "tpm2_encodeobject",
            "-C",
            "primary.ctx",
            "-u",
            "f1.pub",
            "-r",
            "f1.priv",
            "-o",
            "owner.pem",
        ]);
        tpm.tools(&["tpm2_flushcontext", "-t"]);
        tpm.tools(&[
            "tpm2_evictcontrol",
            "-C",
            "o",
            "-c",
            "primary.ctx",
            "0x81000001",
            "-Q",
        ]);
        tpm.tools(&["tpm2_flushcontext", "-t"]);
        tpm.tools(&[
            "tpm2_create",
            "-C",
            "0x81000001",
            "-G",
            "ecc384:ecdsa-sha384",
            "-p",
            "s3cret",
            "-u",
            "f2.pub",
            "-r",
            "f2.priv",
            "-Q",
        ]);
        tpm.tools(&["tpm2_flushcontext", "-t"]);
        tpm.tools(&[
            "tpm2_encodeobject",
            "-C",
            "0x81000001",
            "-u",
            "f2.pub",
            "-r",
            "f2.priv",
            "-p",
            "-o",
            "persistent.pem",
        ]);
        let mut publics = Vec::new();
        for (parent, stem) in [("0x81000001", "f1"), ("0x81000001", "f2")] {
            tpm.tools(&["tpm2_flushcontext", "-t"]);
            tpm.tools(&[
                "tpm2_load",
                "-C",
                parent,
                "-u",
                &format!("{stem}.pub"),
                "-r",
                &format!("{stem}.priv"),
                "-c",
                &format!("{stem}.ctx"),
                "-Q",
            ]);
            tpm.tools(&[
                "tpm2_readpublic",
                "-c",
                &format!("{stem}.ctx"),
                "-f",
                "pem",
                "-o",
                &format!("{stem}-public.pem"),
                "-Q",
            ]);
            tpm.tools(&["tpm2_flushcontext", "-t"]);
            publics.push(path(&format!("{stem}-public.pem")));
        }
        [
            (path("owner.pem"), publics[0].clone()),
            (path("persistent.pem"), publics[1].clone()),
        ]
    }

    /// The transient objects in the TPM: modelseal must leave none behind.
    fn transient_handles(&self) -> String {
        common::stdout(&self.tools(&["tpm2_getcap", "handles-transient"]))
    }
}

#[test]
fn tpm_key_files_load_under_their_parent_sign_and_leave_the_tpm_clean() {
    let tpm = Tpm::start();
    let model = model(tpm.dir.path());
    let [(owner, owner_public), (persistent, persistent_public)] = tpm.key_files();
    let tcti = tpm.tcti();
    let by_env = [("TPM2TOOLS_TCTI", tcti.as_str())];
    let with_auth = [
        ("TPM2TOOLS_TCTI", tcti.as_str()),
        ("MODELSEAL_TPM_AUTH", "s3cret"),
    ];
    let in_name = format!("tpm:file={}?tcti={tcti}", persistent.display());
    type FileCase<'a> = (
        &'a dyn AsRef<std::ffi::OsStr>,
        &'a [(&'a str, &'a str)],
        &'a PathBuf,
    );
    let cases: [FileCase; 3] = [
        // A key file given as a plain --key path is recognised by its PEM label.
        (&owner, &by_env, &owner_public),
        (&persistent, &with_auth, &persistent_public),
        (&in_name, &with_auth[1..], &persistent_public),
    ];
    for (n, (key, env, public)) in cases.into_iter().enumerate() {
        let out = tpm.modelseal(&[&"public-key", key], env);
        common::assert_exit(&out, 0);
        assert_eq!(
            common::stdout(&out),
            std::fs::read_to_string(public).unwrap()
        );
        for format in ["native", "oms"] {
            let signature = tpm.dir.path().join(format!("file-{n}-{format}.sig"));
            let out = tpm.modelseal(
                &[
                    &"sign",
                    &model,
                    &"--format",
                    &format,
                    &"--key",
                    key,
                    &"--signature",
                    &signature,
                ],
                env,
            );
            common::assert_exit(&out, 0);
            assert!(
                common::stdout(&out).contains("(tpm)"),
                "{}",
                common::stdout(&out)
            );
            let out = tpm.modelseal(
                &[
                    &"verify",
                    &model,
                    &"--signature",
                    &signature,
                    &"--key",
                    public,
                ],
                &[],
            );
            common::assert_exit(&out, 0);
        }
    }
    assert_eq!(
        tpm.transient_handles().trim(),
        "",
        "modelseal left objects loaded"
    );
}

#[test]
fn broken_and_foreign_tpm_key_files_are_named_and_leave_no_output() {
    let tpm = Tpm::start();
    let model = model(tpm.dir.path());
    let [(owner, _), (persistent, _)] = tpm.key_files();
    let tcti = tpm.tcti();
    let by_env = [("TPM2TOOLS_TCTI", tcti.as_str())];

    // The wrapped private part altered by one bit: the TPM's integrity check refuses it.
    let pem = std::fs::read_to_string(&owner).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    *der.last_mut().unwrap() ^= 1;
    let tampered = tpm.dir.path().join("tampered.pem");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    std::fs::write(
        &tampered,
        format!(
            "-----BEGIN TSS2 PRIVATE KEY-----\n{}\n-----END TSS2 PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    let not_tpm = tpm.dir.path().join("not-tpm.pem");
    std::fs::copy(common::testkey("other-ed25519.pem"), &not_tpm).unwrap();

    let cases: Vec<Case> = vec![
        (
            tampered.display().to_string(),
            by_env.to_vec(),
            "tampered.pem: cannot load the key under its parent",
        ),
        (
            format!("tpm:file={}", not_tpm.display()),
            by_env.to_vec(),
            "not a usable TPM key file: a PEM \"PRIVATE KEY\" block",
        ),
        (
            format!("tpm:file={}", tpm.dir.path().join("absent.pem").display()),
            by_env.to_vec(),
            "absent.pem: cannot read it (no such file)",
        ),
        (
            persistent.display().to_string(),
            by_env.to_vec(),
            "persistent.pem: cannot sign: wrong authorization value",
        ),
        (
            owner.display().to_string(),
            vec![],
            "no TPM named; add ?tcti=",
        ),
    ];
    for (key, env, expected) in &cases {
        let signature = tpm.dir.path().join("out.sig");
        let out = tpm.modelseal(
            &[&"sign", &model, &"--key", key, &"--signature", &signature],
            env,
        );
        common::assert_exit(&out, 2);
        let stderr = common::stderr(&out);
        assert!(stderr.contains(expected), "{key}: {stderr}");
        assert!(!signature.exists(), "{key} left a signature");
    }
    assert_eq!(
        tpm.transient_handles().trim(),
        "",
        "modelseal left objects loaded"
    );
}

#[test]
fn a_tpm_gone_between_opening_the_key_and_signing_is_named_and_leaves_no_output() {
    // The device removed mid-sign: the key opens (before hashing), the TPM goes away
    // while a large model is hashed, and the one TPM2_Sign at the end fails.
    let mut tpm = Tpm::start();
    let model = tpm.dir.path().join("large");
    std::fs::create_dir(&model).unwrap();
    // Sparse: no disk, and seconds of hashing on two cores.
    std::fs::File::create(model.join("weights.bin"))
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    let signature = tpm.dir.path().join("large.sig");
    let child = Command::new(env!("CARGO_BIN_EXE_modelseal"))
        .args(["sign", "large", "--key", &tpm.key("0x81000010"), "-q"])
        .arg("--signature")
        .arg(&signature)
        .env_remove("TPM2TOOLS_TCTI")
        .current_dir(tpm.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    tpm.process.kill().unwrap();
    tpm.process.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    common::assert_exit(&out, 2);
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("TPM key 0x81000010: cannot sign"),
        "{stderr}"
    );
    assert!(
        !signature.exists(),
        "a signature was written without the TPM"
    );
}

#[test]
fn a_tpm_locked_out_by_wrong_authorization_values_says_so() {
    // A locked device: swtpm allows 3 authorization failures (TPM2_PT_MAX_AUTH_FAIL)
    // before dictionary-attack lockout; then even the right value is refused, by name.
    let tpm = Tpm::start();
    let model = model(tpm.dir.path());
    let signature = tpm.dir.path().join("locked.sig");
    let sign = |auth: &str| {
        tpm.modelseal(
            &[
                &"sign",
                &model,
                &"--key",
                &tpm.key("0x81000012"),
                &"--signature",
                &signature,
            ],
            &[("MODELSEAL_TPM_AUTH", auth)],
        )
    };
    let mut locked = false;
    for _ in 0..6 {
        let out = sign("wrong");
        common::assert_exit(&out, 2);
        if common::stderr(&out).contains("dictionary-attack lockout") {
            locked = true;
            break;
        }
    }
    assert!(locked, "no lockout after 6 wrong authorization values");
    let out = sign("s3cret");
    common::assert_exit(&out, 2);
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("TPM key 0x81000012: cannot sign: the TPM is in dictionary-attack lockout"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret") && !signature.exists());
}
