use anyhow::{Context, Result};
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
use modelseal_core::{KeyAlgorithm, SigningKey};

use crate::Outcome;
use crate::cli::{Algorithm, KeygenArgs, PublicKeyArgs};
use crate::output::out;

pub fn run(args: &KeygenArgs) -> Result<Outcome> {
    let key = SigningKey::generate(match args.algorithm {
        Algorithm::Ed25519 => KeyAlgorithm::Ed25519,
        Algorithm::EcdsaP256 => KeyAlgorithm::EcdsaP256,
        Algorithm::EcdsaP384 => KeyAlgorithm::EcdsaP384,
        Algorithm::EcdsaP521 => KeyAlgorithm::EcdsaP521,
        Algorithm::MlDsa65 => KeyAlgorithm::MlDsa65,
    })?;
    let passphrase = if args.encrypt {
        Some(super::new_passphrase()?)
    } else {
        None
    };
    let private = key.to_pem(passphrase.as_ref().map(|p| p.as_bytes()))?;
    let public = key.verifying_key();
    let mut pub_path = args.out.clone().into_os_string();
    pub_path.push(".pub");
    let pub_path = std::path::PathBuf::from(pub_path);
    let overwrite = if args.force {
        Overwrite::Allow
    } else {
        Overwrite::Refuse
    };
    // Both files are checked before either is written, so a refusal leaves nothing half-made.
    crate::output::check_new(&args.out, "private key", args.force)?;
    crate::output::check_new(&pub_path, "public key", args.force)?;
    write_atomic(
        &args.out,
        private.as_bytes(),
        Visibility::Private,
        overwrite,
    )
    .with_context(|| format!("cannot write {}", args.out.display()))?;
    write_atomic(
        &pub_path,
        public.to_pem().as_bytes(),
        Visibility::Public,
        overwrite,
    )
    .with_context(|| format!("cannot write {}", pub_path.display()))?;
    out(&format!(
        "wrote {} ({} private{}) and {}\npublic key {}",
        args.out.display(),
        key.algorithm(),
        if args.encrypt { ", encrypted" } else { "" },
        pub_path.display(),
        public.fingerprint()
    ));
    Ok(Outcome::Success)
}

/// The public half of a signing key, wherever the key is kept.
pub fn public_key(args: &PublicKeyArgs) -> Result<Outcome> {
    if let Some(path) = &args.out {
        crate::output::check_new(path, "public key", args.force)?;
    }
    let signer = super::load_signer(&args.key)?;
    let public = signer.verifying_key();
    // The public key a device lists beside a private key is only a claim until the
    // private key signs for it: verifiers are handed what is printed here.
    if signer.location() != "file" {
        modelseal_core::keys::sign_checked(&*signer, b"modelseal public-key: proof of possession")
            .with_context(|| {
                format!(
                    "the {} key did not sign for the public key it lists; nothing exported",
                    signer.location()
                )
            })?;
    }
    match &args.out {
        Some(path) => {
            let overwrite = if args.force {
                Overwrite::Allow
            } else {
                Overwrite::Refuse
            };
            write_atomic(
                path,
                public.to_pem().as_bytes(),
                Visibility::Public,
                overwrite,
            )
            .with_context(|| format!("cannot write {}", path.display()))?;
            out(&format!(
                "wrote {} ({} {})",
                path.display(),
                public.algorithm(),
                public.fingerprint()
            ));
        }
        None => print!("{}", public.to_pem()),
    }
    Ok(Outcome::Success)
}
