//! Signing with a key that stays in a PKCS#11 token: SoftHSM2 (Debian `softhsm2`) as the
//! token, OpenSC's `pkcs11-tool` to make keys in it, OpenSSL as the independent reader of
//! the public key. tests/run.sh installs both packages before the cargo tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "483920";

/// A fresh SoftHSM2 token `modelseal` holding P-256 (`p256`, id 01), P-384 (`p384`, id 02)
/// and Ed25519 (`ed`, id 03) key pairs, in its own directory.
struct Token {
    dir: tempfile::TempDir,
}

impl Token {
    fn new() -> Self {
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSM2 is not installed (Debian: apt-get install -y softhsm2 opensc); tests/run.sh installs it"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let token = Self { dir };
        token.tool(
            "softhsm2-util",
            &[
                "--init-token",
                "--free",
                "--label",
                "modelseal",
                "--pin",
                PIN,
                "--so-pin",
                "11223344",
            ],
        );
        for (curve, label, id) in [
            ("EC:prime256v1", "p256", "01"),
            ("EC:secp384r1", "p384", "02"),
            ("EC:edwards25519", "ed", "03"),
        ] {
            token.tool(
                "pkcs11-tool",
                &[
                    "--module",
                    MODULE,
                    "--token-label",
                    "modelseal",
                    "--login",
                    "--pin",
                    PIN,
                    "--keypairgen",
                    "--key-type",
                    curve,
                    "--label",
                    label,
                    "--id",
                    id,
                ],
            );
        }
        token
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    fn tool(&self, tool: &str, args: &[&str]) -> Output {
        let out = Command::new(tool)
            .args(args)
            .env("SOFTHSM2_CONF", self.conf())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {tool} ({e}); apt-get install -y softhsm2 opensc")
            });
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            common::stderr(&out)
        );
        out
    }

    fn uri(&self, object: &str) -> String {
        format!("pkcs11:token=modelseal;object={object}?module-path={MODULE}")
    }

    /// `modelseal ARGS` against this token, with `pin` (if any) in the environment.
    fn modelseal(&self, args: &[&dyn AsRef<std::ffi::OsStr>], pin: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_modelseal"));
        command
            .args(args)
            .env("SOFTHSM2_CONF", self.conf())
            .env_remove("MODELSEAL_PKCS11_PIN")
            .env_remove("MODELSEAL_PKCS11_MODULE")
            .current_dir(self.dir.path());
        if let Some(pin) = pin {
            command.env("MODELSEAL_PKCS11_PIN", pin);
        }
        command.output().unwrap()
    }
}

fn model(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("weights.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(model.join("config.json"), b"{\"layers\": 2}\n").unwrap();
    model
}

#[test]
fn each_curve_signs_natively_and_verifies_with_the_exported_public_key() {
    let token = Token::new();
    let model = model(token.dir.path());
    for object in ["p256", "p384", "ed"] {
        let public = token.dir.path().join(format!("{object}.pub"));
        let out = token.modelseal(
            &[&"public-key", &token.uri(object), &"--out", &public],
            Some(PIN),
        );
        common::assert_exit(&out, 0);
        let signature = token.dir.path().join(format!("{object}.sig"));
        let out = token.modelseal(
            &[
                &"sign",
                &model,
                &"--key",
                &token.uri(object),
                &"--signature",
                &signature,
            ],
            Some(PIN),
        );
        common::assert_exit(&out, 0);
        assert!(
            common::stdout(&out).contains("(pkcs11)"),
            "{}",
            common::stdout(&out)
        );
        let out = token.modelseal(
            &[
                &"verify",
                &model,
                &"--signature",
                &signature,
                &"--key",
                &public,
            ],
            None,
        );
        common::assert_exit(&out, 0);

        // The signature is the token key's: another key refuses it, and a changed model too.
        let other = token.dir.path().join("other.pub");
        std::fs::copy(common::testkey("other-ed25519.pem.pub"), &other).unwrap();
        let out = token.modelseal(
            &[
                &"verify",
                &model,
                &"--signature",
                &signature,
                &"--key",
                &other,
            ],
            None,
        );
        common::assert_exit(&out, 1);
    }
    std::fs::write(model.join("config.json"), b"{\"layers\": 3}\n").unwrap();
    let out = token.modelseal(
        &[
            &"verify",
            &model,
            &"--signature",
            &token.dir.path().join("p256.sig"),
            &"--key",
            &token.dir.path().join("p256.pub"),
        ],
        None,
    );
    common::assert_exit(&out, 1);
}

#[test]
fn the_exported_public_key_is_the_one_openssl_reads_from_the_token() {
    let token = Token::new();
    let der = token.dir.path().join("p256.der");
    token.tool(
        "pkcs11-tool",
        &[
            "--module",
            MODULE,
            "--token-label",
            "modelseal",
            "--read-object",
            "--type",
            "pubkey",
            "--id",
            "01",
            "-o",
            der.to_str().unwrap(),
        ],
    );
    let openssl = Command::new("openssl")
        .args(["pkey", "-pubin", "-inform", "DER", "-in"])
        .arg(&der)
        .output()
        .unwrap();
    assert!(openssl.status.success(), "{}", common::stderr(&openssl));
    let out = token.modelseal(&[&"public-key", &token.uri("p256")], Some(PIN));
    common::assert_exit(&out, 0);
    assert_eq!(common::stdout(&out), common::stdout(&openssl));
}

#[test]
fn oms_signatures_from_the_token_verify_and_ed25519_is_refused_for_oms() {
    let token = Token::new();
    let model = model(token.dir.path());
    let public = token.dir.path().join("p384.pub");
    common::assert_exit(
        &token.modelseal(
            &[&"public-key", &token.uri("p384"), &"--out", &public],
            Some(PIN),
        ),
        0,
    );
    let signature = token.dir.path().join("oms.sig");
    let out = token.modelseal(
        &[
            &"sign",
            &model,
            &"--format",
            &"oms",
            &"--key",
            &token.uri("p384"),
            &"--signature",
            &signature,
        ],
        Some(PIN),
    );
    common::assert_exit(&out, 0);
    let out = token.modelseal(
        &[
            &"verify",
            &model,
            &"--signature",
            &signature,
            &"--key",
            &public,
        ],
        None,
    );
    common::assert_exit(&out, 0);
    assert!(
        common::stdout(&out).contains("(oms"),
        "{}",
        common::stdout(&out)
    );

    let refused = token.dir.path().join("ed-oms.sig");
    let out = token.modelseal(
        &[
            &"sign",
            &model,
            &"--format",
            &"oms",
            &"--key",
            &token.uri("ed"),
            &"--signature",
            &refused,
        ],
        Some(PIN),
    );
    common::assert_exit(&out, 2);
    assert!(!refused.exists());
}

#[test]
fn bad_pins_tokens_and_uris_are_named_and_leave_no_output_and_no_pin_in_messages() {
    let token = Token::new();
    let model = model(token.dir.path());
    let pin_file = token.dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let wrong = "000000";
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        (
            token.uri("p256"),
            Some(wrong),
            "key \"p256\" on PKCS#11 token \"modelseal\": cannot log in: wrong PIN",
        ),
        (
            token.uri("p256"),
            None,
            "PKCS#11 token \"modelseal\" needs a PIN: set MODELSEAL_PKCS11_PIN",
        ),
        (
            format!("pkcs11:token=absent;object=p256?module-path={MODULE}"),
            Some(PIN),
            "PKCS#11 token \"absent\" not found",
        ),
        (
            token.uri("nokey"),
            Some(PIN),
            "key \"nokey\" on PKCS#11 token \"modelseal\": no such private key",
        ),
        (
            format!("pkcs11:token=modelseal;id=%09?module-path={MODULE}"),
            Some(PIN),
            "key id 09 on PKCS#11 token \"modelseal\": no such private key",
        ),
        (
            format!("pkcs11:token=modelseal;object=p256?module-path={MODULE}&pin-value={PIN}"),
            None,
            "pin-value puts the PIN on the command line",
        ),
        (
            "pkcs11:token=modelseal;object=p256".to_owned(),
            Some(PIN),
            "the pkcs11: URI names no module",
        ),
        (
            "pkcs11:token=modelseal;object=p256?module-path=/nonexistent/module.so".to_owned(),
            Some(PIN),
            "cannot load the PKCS#11 module /nonexistent/module.so",
        ),
        (
            format!("pkcs11:token=modelseal;object=p256;object=p384?module-path={MODULE}"),
            Some(PIN),
            "attribute \"object\" is given twice",
        ),
        (
            format!(
                "pkcs11:token=modelseal;object=p256?module-path={MODULE}&pin-source=file:{}",
                token.dir.path().join("absent-pin").display()
            ),
            None,
            "cannot read the PIN for PKCS#11 token \"modelseal\"",
        ),
    ];
    for (uri, pin, expected) in &cases {
        let signature = token.dir.path().join("out.sig");
        let out = token.modelseal(
            &[&"sign", &model, &"--key", uri, &"--signature", &signature],
            *pin,
        );
        common::assert_exit(&out, 2);
        let stderr = common::stderr(&out);
        assert!(stderr.contains(expected), "{uri}: {stderr}");
        assert!(
            !stderr.contains(PIN) && !stderr.contains(wrong),
            "PIN in {stderr}"
        );
        assert!(!signature.exists(), "{uri} left a signature");
    }

    // The PIN from a file works, with the newline `echo` leaves.
    let uri = format!(
        "pkcs11:token=modelseal;object=p256?module-path={MODULE}&pin-source=file:{}",
        pin_file.display()
    );
    let out = token.modelseal(&[&"sign", &model, &"--key", &uri], None);
    common::assert_exit(&out, 0);
}

#[test]
fn public_key_exports_only_a_key_the_token_signs_for() {
    // Fourteenth attack review (a wrong yes on main): the token's public-key object was
    // exported unproven, so whoever could write one object swapped in their own key and
    // every verifier was handed it.
    let token = Token::new();
    let attacker =
        modelseal_core::SigningKey::generate(modelseal_core::KeyAlgorithm::EcdsaP256).unwrap();
    let der = token.dir.path().join("attacker.pub.der");
    std::fs::write(&der, attacker.verifying_key().spki_der()).unwrap();
    let base = [
        "--module",
        MODULE,
        "--token-label",
        "modelseal",
        "--login",
        "--pin",
        PIN,
    ];
    let mut delete = base.to_vec();
    delete.extend(["--delete-object", "--type", "pubkey", "--id", "01"]);
    token.tool("pkcs11-tool", &delete);
    let mut write = base.to_vec();
    let der_text = der.to_str().unwrap();
    write.extend([
        "--write-object",
        der_text,
        "--type",
        "pubkey",
        "--id",
        "01",
        "--label",
        "p256",
    ]);
    token.tool("pkcs11-tool", &write);
    let out_path = token.dir.path().join("release.pub");
    let out = token.modelseal(
        &[&"public-key", &token.uri("p256"), &"--out", &out_path],
        Some(PIN),
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("did not sign for the public key it lists"),
        "{}",
        common::stderr(&out)
    );
    assert!(!out_path.exists());
}
