//! One module per subcommand, and the flag resolution they share.

mod attest;
mod bom;
mod demo;
mod docs;
mod hash;
mod inspect;
mod keyfile;
mod keygen;
mod lineage;
mod oci;
mod outboard;
mod refusal;
mod registry;
mod restamp;
mod serve;
mod sign;
mod store;
mod trust;
mod verify;
mod verify_bundle;
mod watch;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use modelseal_core::keys::PrivateKeyForm;
use modelseal_core::walk::{SymlinkPolicy, WalkOptions};
use modelseal_core::{ManifestPath, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::Outcome;
use crate::cli::{Command, KeylessArgs, WalkArgs};

/// Environment variable that holds a private key's passphrase.
pub const PASSPHRASE_ENV: &str = "MODELSEAL_PASSPHRASE";

pub fn run(command: Command) -> Result<Outcome> {
    match command {
        Command::Keygen(args) => keygen::run(&args),
        Command::PublicKey(args) => keygen::public_key(&args),
        Command::Hash(args) => hash::run(&args),
        Command::Sign(args) => sign::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::VerifyBundle(args) => verify_bundle::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Attest(command) => attest::run(&command),
        Command::Store(command) => store::run(&command),
        Command::Outboard(args) => outboard::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Watch(args) => watch::run(&args),
        Command::Bom(args) => bom::run(&args),
        Command::Pull(args) => oci::pull(&args),
        Command::Demo => demo::run(),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
    }
}

/// `MODEL.sig` beside the model: outside it, so signing never changes what is signed.
fn default_signature_path(model: &Path) -> PathBuf {
    let mut name = model
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "model".into());
    name.push(".sig");
    model.with_file_name(name)
}

/// Turns an `--ignore` argument into a model-relative path. An argument that names an
/// existing path inside the model is taken relative to the model; one that names an
/// existing path elsewhere is an error; anything else is read as model-relative.
fn resolve_ignore(model: &Path, arg: &Path) -> Result<ManifestPath> {
    let text = arg
        .to_str()
        .with_context(|| format!("--ignore {} is not valid UTF-8", arg.display()))?;
    let model_relative = model.join(arg);
    let exists_in_model = !arg.is_absolute() && model_relative.symlink_metadata().is_ok();
    if !exists_in_model && arg.symlink_metadata().is_ok() {
        let root = std::fs::canonicalize(model)
            .with_context(|| format!("cannot read model {}", model.display()))?;
        // The entry itself, its name not resolved: a link planted in the model at the
        // name given is ignored as that link, never as whatever it leads to.
        let target = modelseal_core::walk::place(arg)
            .with_context(|| format!("--ignore {} cannot be resolved", arg.display()))?;
        let Ok(inside) = target.strip_prefix(&root) else {
            bail!(
                "--ignore {} lies outside the model {}",
                arg.display(),
                model.display()
            );
        };
        let inside = inside
            .to_str()
            .with_context(|| format!("--ignore {} is not valid UTF-8", arg.display()))?;
        return ManifestPath::parse_ignore(&inside.replace(std::path::MAIN_SEPARATOR, "/"))
            .with_context(|| format!("--ignore {}", arg.display()));
    }
    let text = text.trim_end_matches('/');
    let text = text.strip_prefix("./").unwrap_or(text);
    ManifestPath::parse_ignore(text).with_context(|| format!("--ignore {}", arg.display()))
}

fn walk_options(model: &Path, args: &WalkArgs, exclude: Option<&Path>) -> Result<WalkOptions> {
    let ignore = args
        .ignore
        .iter()
        .map(|arg| resolve_ignore(model, arg))
        .collect::<Result<_>>()?;
    Ok(WalkOptions {
        ignore,
        exclude_files: exclude.into_iter().map(Path::to_path_buf).collect(),
        symlinks: if args.allow_symlinks {
            SymlinkPolicy::FollowInside
        } else {
            SymlinkPolicy::Refuse
        },
        ..WalkOptions::default()
    })
}

/// `--key` beside `--identity`: each alone says whom to trust; together they would trust
/// either, so a key signature would pass without the identity the user named.
fn refuse_key_with_identity(keys: &[PathBuf], keyless: &KeylessArgs) -> Result<()> {
    let identity = match (&keyless.identity, &keyless.identity_regex) {
        (Some(_), _) => "--identity",
        (None, Some(_)) => "--identity-regex",
        (None, None) => return Ok(()),
    };
    if !keys.is_empty() {
        crate::usage!(
            format!("--key and {identity} name two different signers, and only one can be checked");
            hint = "give one of them; a policy (--policy) can trust keys and keyless identities together"
        );
    }
    Ok(())
}

pub(super) fn read_text(path: &Path, what: &str) -> Result<String> {
    modelseal_core::open::read_regular_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))
}

pub use keyfile::KeyFileError;

pub(super) fn load_public_key(path: &Path) -> Result<VerifyingKey> {
    let pem = keyfile::read(path, keyfile::Wanted::Public)?;
    VerifyingKey::from_pem(&pem).with_context(|| format!("public key {}", path.display()))
}

/// The signing key `--key` (or `--vsa-key`, `--sign-key`) names: a PEM file, a key in a
/// device (`pkcs11:`, `tpm:`, `awskms://`), or a TPM key file, whose key signs without
/// ever leaving the device.
pub(crate) fn load_signer(name: &Path) -> Result<Box<dyn modelseal_core::KeySigner>> {
    if let Some(text) = name.to_str()
        && modelseal_devices::is_device_key(text)
    {
        return Ok(modelseal_devices::open(text)?);
    }
    if modelseal_devices::is_tpm_key_file(name) {
        return Ok(modelseal_devices::open_tpm_key_file(name)?);
    }
    Ok(Box::new(load_signing_key(name)?))
}

pub(super) fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let pem = keyfile::read(path, keyfile::Wanted::Private)?;
    let form =
        SigningKey::pem_form(&pem).with_context(|| format!("private key {}", path.display()))?;
    let passphrase = match form {
        PrivateKeyForm::Encrypted => {
            Some(passphrase(&format!("Passphrase for {}: ", path.display()))?)
        }
        _ => None,
    };
    SigningKey::from_pem(&pem, passphrase.as_ref().map(|p| p.as_bytes()))
        .with_context(|| format!("private key {}", path.display()))
}

/// The passphrase from the environment, else from the terminal, else an error.
fn passphrase(prompt: &str) -> Result<Zeroizing<String>> {
    if let Ok(value) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Zeroizing::new(value));
    }
    if !std::io::stdin().is_terminal() {
        return Err(modelseal_core::KeyError::PassphraseRequired.into());
    }
    Ok(Zeroizing::new(rpassword::prompt_password(prompt)?))
}

fn new_passphrase() -> Result<Zeroizing<String>> {
    if let Ok(value) = std::env::var(PASSPHRASE_ENV) {
        if value.is_empty() {
            bail!("{PASSPHRASE_ENV} is set but empty");
        }
        return Ok(Zeroizing::new(value));
    }
    if !std::io::stdin().is_terminal() {
        bail!("--encrypt needs a passphrase: set {PASSPHRASE_ENV} or run on a terminal");
    }
    let first = Zeroizing::new(rpassword::prompt_password("New passphrase: ")?);
    let second = Zeroizing::new(rpassword::prompt_password("Repeat passphrase: ")?);
    if first != second {
        bail!("the passphrases differ");
    }
    if first.is_empty() {
        bail!("an empty passphrase would not protect the key");
    }
    Ok(first)
}

/// The timestamp authorities of the `--trusted-root`, or of the public-good instance.
fn timestamp_authorities(
    args: &KeylessArgs,
) -> Result<Vec<modelseal_verify::sigstore_verify::types::TsaAuthority>> {
    let json = match &args.trusted_root {
        Some(path) => Some(read_text(path, "trusted root")?),
        None => None,
    };
    modelseal_verify::keyless::timestamp_authorities(json.as_deref()).with_context(|| {
        match &args.trusted_root {
            Some(path) => format!("trusted root {}", path.display()),
            None => "the built-in trusted root".to_owned(),
        }
    })
}

/// The keyless identity rule and trust root the flags name, if any.
fn keyless_trust(args: &KeylessArgs) -> Result<Option<modelseal_verify::keyless::KeylessTrust>> {
    use modelseal_verify::keyless::{IdentityRule, KeylessTrust};
    let rule = match (&args.identity, &args.identity_regex) {
        (Some(identity), _) => IdentityRule::Exact(identity.clone()),
        (None, Some(pattern)) => {
            IdentityRule::regex(pattern).with_context(|| format!("--identity-regex {pattern:?}"))?
        }
        (None, None) => {
            if args.issuer.is_some() {
                bail!("--issuer needs --identity or --identity-regex");
            }
            return Ok(None);
        }
    };
    let issuer = args
        .issuer
        .as_deref()
        .context("--identity needs --issuer")?;
    Ok(Some(match &args.trusted_root {
        None => KeylessTrust::public_good(rule, issuer),
        Some(path) => {
            let json = read_text(path, "trusted root")?;
            KeylessTrust::from_trusted_root(&json, rule, issuer)
                .with_context(|| format!("trusted root {}", path.display()))?
        }
    }))
}

pub(super) fn write_signature(
    path: &std::path::Path,
    bundle: &modelseal_core::Bundle,
) -> Result<()> {
    use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
    write_atomic(
        path,
        &bundle.to_json(),
        Visibility::Public,
        Overwrite::Allow,
    )
    .with_context(|| format!("cannot write signature {}", path.display()))
}

/// A model path that names nothing is said so, before any other check reads it.
pub fn require_model(model: &Path) -> anyhow::Result<()> {
    if model.symlink_metadata().is_err() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("model {} does not exist", model.display()),
        )
        .into());
    }
    Ok(())
}
