use anyhow::{Context, Result};
use modelseal_core::oms::{OmsHash, OmsMethod};
use modelseal_core::{
    OmsSignOptions, Restamped, SignOptions, StatedOmsModel, check_oms_key, oms_serialization,
    sign_stated_oms, state_model_oms_since, state_model_since, state_oms_from_digests,
};

use modelseal_core::stamps::KnownDigests;

use super::restamp::Previous;
use crate::Outcome;
use crate::cli::{Format, OmsHashArg, OmsMethodArg, SignArgs};
use crate::output::{out, out_report};
use crate::progress::Bar;
use crate::signing::{Issued, StatementSigner};
use crate::usage;

pub fn run(args: &SignArgs) -> Result<Outcome> {
    resolve_flags(args)?;
    // An update replaces OLD in place unless told otherwise.
    let replacing = |path: &std::path::Path| args.update.as_deref() == Some(path);
    if let Some(path) = &args.signature {
        crate::output::check_new(path, "signature", args.force || replacing(path))?;
    }
    if modelseal_oci::Reference::is_oci(&args.model.display().to_string()) {
        let signer = StatementSigner::from_args(&args.signer)?;
        super::oci::sign(args, &signer)?;
        return Ok(Outcome::Success);
    }
    if args.no_attach {
        usage!("--no-attach applies to oci:// references");
    }
    if args.from_digests.is_none() {
        super::require_model(&args.model)?;
    }
    let signature = args
        .signature
        .clone()
        .or_else(|| args.update.clone())
        .unwrap_or_else(|| super::default_signature_path(&args.model));
    crate::output::check_new(&signature, "signature", args.force || replacing(&signature))?;
    if args.outboard {
        let dir = modelseal_core::outboard::outboard_dir(&signature);
        crate::output::check_new(&dir, "outboard directory", args.force)?;
        super::outboard::refuse_inside(&args.model, &dir)?;
    }
    // The key (or the identity token) first: a wrong passphrase or a missing token
    // should not cost a full hash of the model.
    let signer = StatementSigner::from_args(&args.signer)?;
    let previous = match (&args.update, signer.key()) {
        (Some(old), Some(key)) => Some(Previous::read(
            old,
            key,
            super::restamp::canonical_model(&args.model).as_deref(),
            (args.format == Format::Native).then(|| args.kind.into()),
            args.rehash,
        )?),
        _ => None,
    };
    let walk = super::walk_options(&args.model, &args.walk, Some(&signature))?;
    let bar = Bar::new(false);
    let (mut summary, issued, restamped) = match args.format {
        Format::Native => sign_native(args, &signer, walk, previous.as_ref(), &bar)?,
        Format::Oms => sign_oms(args, &signer, walk, previous.as_ref(), &bar)?,
    };
    bar.finish();
    if let Some(previous) = &previous {
        let (text, json) = update_summary(previous, &restamped);
        summary.text.push_str(&text);
        summary.json["update"] = json;
    }
    // Outboards before the signature: a file changed since it was hashed stops the
    // command with neither written.
    let outboards = match (&summary.manifest, args.outboard) {
        (Some(manifest), true) => Some(super::outboard::write(&args.model, manifest, &signature)?),
        _ => None,
    };
    super::write_signature(&signature, &issued.bundle)?;
    let stamps = super::restamp::write_stamps(
        &signature,
        &issued.bundle.to_json(),
        &args.model,
        signer.key(),
        &restamped,
        !args.no_stamps && args.from_digests.is_none(),
    )?;
    if args.json {
        let mut report = summary.json;
        report["model"] = args.model.display().to_string().into();
        report["signature"] = signature.display().to_string().into();
        report["signer"] = issued.signer_json;
        report["outboard"] = serde_json::to_value(outboards.map(|o| o.dir))?;
        report["stamps"] = serde_json::to_value(stamps.as_ref().ok())?;
        out_report(true, report);
        return Ok(Outcome::Success);
    }
    let stamps = match &stamps {
        Ok(path) => format!("\n  stamps  {}", path.display()),
        Err(_) => String::new(),
    };
    out(&format!(
        "{}\n  signer  {}\n  wrote   {}{stamps}",
        summary.text,
        issued.signer_text,
        signature.display()
    ));
    if let Some(outboards) = outboards {
        out(&outboards.text);
    }
    Ok(Outcome::Success)
}

/// Refuses, before any key is read or byte hashed, flags that do not apply to what is
/// signed: a flag ignored is a promise broken.
fn resolve_flags(args: &SignArgs) -> Result<()> {
    let oci = modelseal_oci::Reference::is_oci(&args.model.display().to_string());
    if args.format == Format::Oms {
        if args.outboard {
            usage!("--outboard serves native signatures; OMS hashes are not BLAKE3 trees");
        }
        if matches!(args.kind, crate::cli::Kind::Dataset) {
            usage!(
                "--kind dataset applies to the native format; the OMS format has no kind (drop --kind, or sign natively)"
            );
        }
    } else {
        let oms_only = [
            (args.certificate.is_some(), "--certificate"),
            (args.method != OmsMethodArg::Files, "--method"),
            (args.hash != OmsHashArg::Sha256, "--hash"),
            (args.shard_size.is_some(), "--shard-size"),
        ];
        if let Some((_, flag)) = oms_only.iter().find(|(given, _)| *given) {
            usage!("{flag} applies to --format oms only");
        }
    }
    if args.shard_size.is_some() && args.method != OmsMethodArg::Shards {
        usage!("--shard-size applies to --method shards only");
    }
    if args.signer.trusted_root.is_some()
        && !args.signer.keyless
        && args.signer.timestamp_url.is_none()
    {
        usage!(
            "--trusted-root checks a keyless bundle or a timestamp; with --key it needs --timestamp-url (or drop it)"
        );
    }
    let from = match (&args.from_digests, args.from_manifest) {
        (Some(_), _) => Some("--from-digests"),
        (None, true) => Some("--from-manifest"),
        (None, false) => None,
    };
    if let Some(from) = from {
        if args.format != Format::Oms {
            usage!("{from} signs the OMS format: add --format oms");
        }
        if args.method != OmsMethodArg::Files || args.hash != OmsHashArg::Sha256 {
            usage!("{from} gives whole-file SHA-256 digests: drop --method and --hash");
        }
        if !args.walk.ignore.is_empty() || args.walk.allow_symlinks {
            usage!("{from} reads no directory: drop --ignore and --allow-symlinks");
        }
        if args.from_manifest != oci {
            usage!("--from-manifest applies to oci:// models, --from-digests to a model by name");
        }
    }
    if oci && args.update.is_some() && args.format == Format::Oms {
        usage!("--update of an oci:// model signs natively, as every oci:// signature is");
    }
    if oci && args.no_stamps && args.signature.is_none() {
        usage!("--no-stamps applies where a signature file is written (--signature)");
    }
    if oci && (!args.walk.ignore.is_empty() || args.walk.allow_symlinks) {
        usage!(
            "--ignore and --allow-symlinks apply to directories; an oci:// model is every file its layers hold"
        );
    }
    Ok(())
}

/// What was signed, for the summary (and the manifest, for outboard trees).
pub(super) struct Summary {
    pub text: String,
    /// The same, for `--json`.
    pub json: serde_json::Value,
    pub manifest: Option<modelseal_core::Manifest>,
}

fn sign_native(
    args: &SignArgs,
    signer: &StatementSigner,
    walk: modelseal_core::WalkOptions,
    previous: Option<&Previous>,
    bar: &Bar,
) -> Result<(Summary, Issued, Restamped)> {
    let options = SignOptions {
        name: args.name.clone(),
        kind: args.kind.into(),
        walk,
    };
    let known = match previous {
        Some(previous) => previous.known_blake3()?,
        None => KnownDigests::default(),
    };
    let (stated, restamped) = state_model_since(&args.model, &options, &known, bar)
        .with_context(|| format!("cannot sign model {}", args.model.display()))?;
    let files = stated.manifest.entries().len() as u64;
    let bytes = stated.manifest.total_bytes();
    let text = format!(
        "signed {} ({}, {})\n  subject {} blake3:{}",
        args.model.display(),
        crate::output::count(files, "file", "files"),
        crate::output::count(bytes, "byte", "bytes"),
        stated.name,
        stated.root,
    );
    let json = serde_json::json!({
        "format": "native",
        "name": stated.name,
        "root": { "blake3": stated.root.to_hex() },
        "files": files,
        "bytes": bytes,
    });
    let issued = signer.sign_native(stated.statement, &stated.root)?;
    Ok((
        Summary {
            text,
            json,
            manifest: Some(stated.manifest),
        },
        issued,
        restamped,
    ))
}

fn sign_oms(
    args: &SignArgs,
    signer: &StatementSigner,
    walk: modelseal_core::WalkOptions,
    previous: Option<&Previous>,
    bar: &Bar,
) -> Result<(Summary, Issued, Restamped)> {
    let options = oms_options(args, signer, walk)?;
    if args.method == OmsMethodArg::Shards {
        warn_unlistable_empty_files(&args.model, &options.walk);
    }
    let failed = || format!("cannot sign model {}", args.model.display());
    if let Some(key) = signer.key() {
        check_oms_key(key).with_context(failed)?;
    }
    if let Some(list) = &args.from_digests {
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| modelseal_core::walk::model_name(&args.model));
        let stated = stated_from_list(list, &name)?;
        return summarize_oms(args, signer, &options, stated, Restamped::default());
    }
    let known = match previous {
        Some(previous) => {
            previous.known_oms(&oms_serialization(&args.model, &options).with_context(failed)?)?
        }
        None => KnownDigests::default(),
    };
    let (stated, restamped) =
        state_model_oms_since(&args.model, &options, &known, bar).with_context(failed)?;
    summarize_oms(args, signer, &options, stated, restamped)
}

/// Signs an OMS statement made from known digests (an OCI manifest's raw layers).
pub(super) fn sign_oms_stated(
    args: &SignArgs,
    signer: &StatementSigner,
    stated: StatedOmsModel,
) -> Result<(Summary, Issued, Restamped)> {
    let options = oms_options(args, signer, modelseal_core::WalkOptions::default())?;
    if let Some(key) = signer.key() {
        check_oms_key(key)
            .with_context(|| format!("cannot sign model {}", args.model.display()))?;
    }
    summarize_oms(args, signer, &options, stated, Restamped::default())
}

/// The OMS settings the flags ask for, with the certificate chain read (from files or
/// the token) and checked against the key.
fn oms_options(
    args: &SignArgs,
    signer: &StatementSigner,
    walk: modelseal_core::WalkOptions,
) -> Result<OmsSignOptions> {
    let certificate_chain = match (&args.certificate, signer.key()) {
        (Some(leaf), Some(key)) => {
            let chain = args
                .certificate_chain
                .iter()
                .map(|p| super::read_text(p, "certificate chain"))
                .collect::<Result<Vec<_>>>()?;
            let on_token = leaf
                .to_str()
                .filter(|text| modelseal_devices::Pkcs11Uri::is_pkcs11(text));
            let certs = match on_token {
                // The certificate on the token, named by a URI (often the key's own).
                Some(uri) => {
                    let uri = modelseal_devices::Pkcs11Uri::parse(uri)
                        .map_err(|e| anyhow::anyhow!("--certificate: PKCS#11 URI: {e}"))?;
                    let der = modelseal_devices::pkcs11::read_certificate(&uri)?;
                    modelseal_core::certificate_chain_from_der(vec![der], &chain, key)
                }
                None => {
                    let leaf_pem = super::read_text(leaf, "certificate")?;
                    modelseal_core::certificate_chain(&leaf_pem, &chain, key)
                }
            };
            Some(certs.with_context(|| format!("certificate {}", leaf.display()))?)
        }
        _ => None,
    };
    let (method, hash) = oms_flags(args.method, args.hash, args.shard_size)?;
    Ok(OmsSignOptions {
        name: args.name.clone(),
        method,
        hash,
        walk,
        certificate_chain,
    })
}

/// The OMS statement of the files a `sha256sum` list names.
fn stated_from_list(list: &std::path::Path, name: &str) -> Result<StatedOmsModel> {
    let text = super::read_text(list, "digest list")?;
    let files = modelseal_core::digest_list::parse_sha256sum(&text)
        .with_context(|| format!("--from-digests {}", list.display()))?;
    state_oms_from_digests(name, files)
        .with_context(|| format!("--from-digests {}", list.display()))
}

/// Signs an OMS statement made already, and says what was signed.
pub(super) fn summarize_oms(
    args: &SignArgs,
    signer: &StatementSigner,
    options: &OmsSignOptions,
    stated: StatedOmsModel,
    restamped: Restamped,
) -> Result<(Summary, Issued, Restamped)> {
    let failed = || format!("cannot sign model {}", args.model.display());
    let (name, root, resources) = (stated.name.clone(), stated.root, stated.resources.len());
    let issued = match signer.key() {
        Some(key) => {
            let signed = sign_stated_oms(stated, options, key).with_context(failed)?;
            signer.finish_key_bundle(signed.bundle)?
        }
        None => signer.sign_oms(&stated.statement, stated.root)?,
    };
    let mut text = format!(
        "signed {} (OMS v1.0, {})\n  subject {name} sha256:{}",
        args.model.display(),
        crate::output::count(resources as u64, "resource", "resources"),
        hex::encode(root),
    );
    if let Some(list) = &args.from_digests {
        text.push_str(&format!(
            "\n  from    {} (no file read: the files are checked when verified)",
            list.display()
        ));
    }
    let json = serde_json::json!({
        "format": "oms",
        "name": name,
        "root": { "sha256": hex::encode(root) },
        "files": resources,
        "bytes": null,
    });
    Ok((
        Summary {
            text,
            json,
            manifest: None,
        },
        issued,
        restamped,
    ))
}

/// What an update kept from OLD and what it hashed, for the summary.
pub(super) fn update_summary(
    previous: &Previous,
    restamped: &Restamped,
) -> (String, serde_json::Value) {
    use crate::output::count;
    let (kept_files, kept_bytes) = restamped.kept;
    let (hashed_files, hashed_bytes) = restamped.hashed;
    let mut text = format!(
        "\n  update  kept {} ({}) from {}; hashed {} ({})",
        count(kept_files, "file", "files"),
        count(kept_bytes, "byte", "bytes"),
        crate::output::terminal_safe(&previous.path.display().to_string()),
        count(hashed_files, "file", "files"),
        count(hashed_bytes, "byte", "bytes"),
    );
    if let Err(why) = &previous.stamps {
        text.push_str(&format!(
            "\n          no stamps used ({}): every file hashed",
            crate::output::terminal_safe(why)
        ));
    }
    let json = serde_json::json!({
        "from": previous.path.display().to_string(),
        "kept": { "files": kept_files, "bytes": kept_bytes },
        "hashed": { "files": hashed_files, "bytes": hashed_bytes },
        "stampsUnused": previous.stamps.as_ref().err(),
    });
    (text, json)
}

/// The `shards` method cannot list an empty file (there is no shard to hash), so such a
/// file is unsigned: say so before signing, with what a verifier must then pass.
fn warn_unlistable_empty_files(model: &std::path::Path, walk: &modelseal_core::WalkOptions) {
    let Ok(files) = modelseal_core::walk::walk_model(model, walk) else {
        return; // the signing walk reports the problem
    };
    let mut empty: Vec<String> = files
        .iter()
        .filter(|f| f.size == 0)
        .map(|f| f.path.to_string())
        .collect();
    if empty.is_empty() {
        return;
    }
    empty.sort();
    crate::eprintln_safe!(
        "warning: the shards method cannot list empty files, so these are not signed: {}\n\
         hint: verifiers refuse them unless given --allow-unsigned-empty-files; --method files signs them",
        empty.join(", ")
    );
}

/// The OMS serialization the `--method`, `--hash` and `--shard-size` flags ask for (`sign`
/// and `hash --format oms` read them alike).
pub(super) fn oms_flags(
    method: OmsMethodArg,
    hash: OmsHashArg,
    shard_size: Option<u64>,
) -> Result<(OmsMethod, OmsHash)> {
    let shard_size = shard_size.unwrap_or(modelseal_core::oms::DEFAULT_SHARD_SIZE);
    if shard_size == 0 {
        usage!("--shard-size must be at least 1");
    }
    let method = match method {
        OmsMethodArg::Files => OmsMethod::Files,
        OmsMethodArg::Shards => OmsMethod::Shards { size: shard_size },
    };
    let hash = match hash {
        OmsHashArg::Sha256 => OmsHash::Sha256,
        OmsHashArg::Blake2b => OmsHash::Blake2b,
        OmsHashArg::Blake3 => OmsHash::Blake3,
    };
    Ok((method, hash))
}
