//! `sign`, `verify` and `pull` for models in registries (`oci://…`, spec/oci.md).

use std::path::Path;

use anyhow::{Context, Result, bail};
use modelseal_core::statement::MANIFEST_PREDICATE_TYPE;
use modelseal_core::{ArtifactDigest, Bundle};
use modelseal_oci::layers::UnpackLimits;
use modelseal_oci::model::{self, OciModel};
use modelseal_oci::referrers;
use modelseal_oci::{OciError, Reference, Registry};

use super::registry::registry;
use modelseal_verify::{SignedOci, VerifiedModel, Verifier, VerifyError, VerifyOptions};

use crate::cli::{Format, PullArgs, RegistryArgs, SignArgs, VerifyArgs};
use crate::output::{out, out_report};
use crate::progress::Bar;
use crate::signing::StatementSigner;

fn open(registry: &Registry, text: &str) -> Result<OciModel> {
    match open_checked(registry, text)? {
        Ok(model) => Ok(model),
        Err(e) => Err(e).with_context(|| format!("cannot read {text}")),
    }
}

/// [`open`], with what the registry served wrongly (a manifest that does not match its
/// digest, one that is not a model) kept apart: verifying commands refuse on it (exit 1)
/// rather than fail (exit 2).
fn open_checked(
    registry: &Registry,
    text: &str,
) -> Result<std::result::Result<OciModel, OciError>> {
    let reference = Reference::parse(text)?;
    match model::open(registry, &reference) {
        Ok(model) => {
            if reference.digest().is_none() {
                crate::note!("resolved {reference} to {}", model.digest());
            }
            Ok(Ok(model))
        }
        Err(e) if e.is_refusal() => Ok(Err(e)),
        Err(e) => Err(e).with_context(|| format!("cannot read {reference}")),
    }
}

/// The BLAKE3 root of what an OCI artifact's layers unpack to, and its default name
/// (`REGISTRY/REPOSITORY`): the same root as the same files in a directory.
pub fn root_of(
    text: &str,
    args: &RegistryArgs,
    hidden: bool,
) -> Result<(modelseal_core::Blake3Digest, String)> {
    let registry = registry(args)?;
    let model = open(&registry, text)?;
    let bar = Bar::new(hidden);
    modelseal_core::hash::Progress::begin(&bar, model.layer_bytes());
    let manifest = model::unpack(&registry, &model, None, UnpackLimits::default(), &bar)
        .with_context(|| format!("cannot hash {}", model.reference))?;
    bar.finish();
    Ok((manifest.root(), model.reference.name()))
}

/// `sign oci://…`: hash what the layers unpack to, sign files and manifest digest in one
/// statement, attach the bundle as a referrer (and write `--signature` if given).
pub fn sign(args: &SignArgs, signer: &StatementSigner) -> Result<()> {
    if args.from_manifest {
        return sign_from_manifest(args, signer);
    }
    if args.format == Format::Oms {
        bail!(
            "--format oms cannot sign an OCI reference: the OMS predicate has no place for the manifest digest (spec/oci.md §3); sign the native format"
        );
    }
    if args.outboard {
        bail!(
            "--outboard writes beside a directory; pull the model, then run `modelseal outboard`"
        );
    }
    let registry = registry(&args.registry)?;
    let model = open(&registry, &args.model.display().to_string())?;
    // Stamps of an oci:// model name the repository, not a directory.
    let stamps_model = format!("oci://{}", model.reference.name());
    let previous = match (&args.update, signer.key()) {
        (Some(old), Some(key)) => Some(super::restamp::Previous::read(
            old,
            key,
            Some(&stamps_model),
            Some(args.kind.into()),
            args.rehash,
        )?),
        _ => None,
    };
    let known = match &previous {
        Some(previous) => previous.known_layers()?,
        None => model::KnownLayers::new(),
    };
    let bar = Bar::new(false);
    modelseal_core::hash::Progress::begin(&bar, model.layer_bytes());
    let (manifest, layers) =
        model::unpack_since(&registry, &model, &known, UnpackLimits::default(), &bar)
            .with_context(|| format!("cannot sign {}", model.reference))?;
    bar.finish();
    let kind = args.kind.into();
    let (statement, root) = model::statement(&model, &manifest, args.name.as_deref(), kind);
    let issued = signer.sign_native(statement, &root)?;
    let json = issued.bundle.to_json();
    let signature = args.signature.as_ref().or(args.update.as_ref());
    let mut stamps = None;
    if let Some(path) = signature {
        super::write_signature(path, &issued.bundle)?;
        stamps = super::restamp::write_layer_stamps(
            path,
            &json,
            &stamps_model,
            signer.key(),
            &layers,
            !args.no_stamps,
        )?;
    }
    let attached = if args.no_attach {
        None
    } else {
        Some(
            referrers::attach_bundle(
                &registry,
                &model.reference,
                &model.subject(),
                &json,
                MANIFEST_PREDICATE_TYPE,
            )
            .with_context(|| {
                format!(
                    "signed, but cannot attach the bundle to {}",
                    model.reference
                )
            })?,
        )
    };
    let mut text = format!(
        "signed {} ({} {}, {} files, {} bytes)\n  subject {} blake3:{root}\n  manifest {}\n  signer  {}",
        model.reference,
        model.flavor.name(),
        model.media_type,
        manifest.entries().len(),
        manifest.total_bytes(),
        args.name.clone().unwrap_or_else(|| model.reference.name()),
        model.digest(),
        issued.signer_text,
    );
    if let Some(a) = attached {
        text.push_str(&format!(
            "\n  attached referrer {}{}",
            a.digest,
            if a.via_fallback_tag {
                format!(" (listed under tag {})", model.digest().fallback_tag())
            } else {
                String::new()
            }
        ));
    }
    if let Some(previous) = &previous {
        let count = |carried: bool| {
            let files = layers
                .iter()
                .filter(|l| l.carried == carried)
                .flat_map(|l| &l.files);
            files.fold((0, 0), |(n, bytes), e| (n + 1, bytes + e.size))
        };
        let restamped = modelseal_core::Restamped {
            kept: count(true),
            hashed: count(false),
            ..Default::default()
        };
        text.push_str(&super::sign::update_summary(previous, &restamped).0);
    }
    if let Some(path) = signature {
        text.push_str(&format!("\n  wrote   {}", path.display()));
    }
    if let Some(path) = stamps {
        text.push_str(&format!("\n  stamps  {}", path.display()));
    }
    out(&text);
    Ok(())
}

/// `sign oci://REF --format oms --from-manifest`: an OMS statement of the files the
/// manifest's raw layers hold, each named by its `org.cncf.model.filepath` and digested by
/// the layer's SHA-256, which is the file's. No layer is fetched. The bundle goes to
/// `--signature` only: the OMS format names no OCI subject, so no verifier would take it
/// as a referrer of this manifest; verifiers check it against the files once pulled.
fn sign_from_manifest(args: &SignArgs, signer: &StatementSigner) -> Result<()> {
    use modelseal_oci::layers::LayerFormat;
    let registry = registry(&args.registry)?;
    let model = open(&registry, &args.model.display().to_string())?;
    let mut files = Vec::with_capacity(model.layers.len());
    for (index, layer) in model.layers.iter().enumerate() {
        let LayerFormat::Raw(path) = &layer.format else {
            bail!(
                "cannot sign {} from its manifest: layer {index} ({}) is an archive, so the manifest does not give its files' digests; sign without --from-manifest (modelseal reads the layers)",
                model.reference,
                crate::output::terminal_safe(&layer.media_type),
            );
        };
        files.push((path.clone(), *layer.digest.as_bytes()));
    }
    let name = args.name.clone().unwrap_or_else(|| model.reference.name());
    let stated = modelseal_core::state_oms_from_digests(&name, files)
        .with_context(|| format!("cannot sign {} from its manifest", model.reference))?;
    let (summary, issued, _) = super::sign::sign_oms_stated(args, signer, stated)?;
    let path = args
        .signature
        .as_deref()
        .expect("clap requires --signature with --from-manifest");
    super::write_signature(path, &issued.bundle)?;
    if args.json {
        let mut report = summary.json;
        report["model"] = model.reference.to_string().into();
        report["manifest"] = model.digest().to_string().into();
        report["signature"] = path.display().to_string().into();
        report["signer"] = issued.signer_json;
        crate::output::out_report(true, report);
        return Ok(());
    }
    out(&format!(
        "{}\n  from manifest {} (no layer read)\n  signer  {}\n  wrote   {}",
        summary.text,
        model.digest(),
        issued.signer_text,
        path.display()
    ));
    Ok(())
}

/// The bundles to try: the named file, or every bundle attached to the model.
fn bundles(registry: &Registry, model: &OciModel, signature: Option<&Path>) -> Result<Candidates> {
    if let Some(path) = signature {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read signature {}", path.display()))?;
        return Ok(vec![(path.display().to_string(), bytes)]);
    }
    let found = referrers::find_bundles(registry, &model.reference, model.digest())
        .with_context(|| format!("cannot list the signatures attached to {}", model.reference))?;
    for skipped in &found.skipped {
        // Shown under -q too: it is often why a verification is refused.
        crate::eprintln_safe!("note: passed over a referrer: {skipped}");
    }
    Ok(found
        .bundles
        .into_iter()
        .map(|b| (format!("referrer {}", b.referrer), b.bytes))
        .collect())
}

/// Bundles to try, each named for messages (a file, or `referrer sha256:…`), as JSON.
type Candidates = Vec<(String, Vec<u8>)>;

/// The trusted bundles about this manifest that the rules accept, counted as the policy
/// asks (co-signatures are referrers of their own), named by the first; or every reason
/// none counts. A trusted bundle the rules deny denies the artifact.
fn signed_for(
    model: &OciModel,
    candidates: &Candidates,
    verifier: &Verifier,
) -> std::result::Result<(String, SignedOci), Vec<(String, VerifyError)>> {
    let manifest = ArtifactDigest::from(model.digest());
    let mut parsed = Vec::new();
    let mut names = Vec::new();
    let mut refused = Vec::new();
    for (name, json) in candidates {
        match Bundle::from_json(json) {
            Ok(bundle) => {
                parsed.push(bundle);
                names.push(name.clone());
            }
            Err(e) => refused.push((name.clone(), VerifyError::Bundle(e))),
        }
    }
    let name_of = |index: usize| {
        names
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("the signatures attached to {}", model.reference))
    };
    match verifier.signed_oci_all(&parsed, manifest) {
        Ok((index, signed, _uncounted)) => Ok((name_of(index), signed)),
        Err(errors) => {
            let errors: Vec<(String, VerifyError)> =
                errors.into_iter().map(|(i, e)| (name_of(i), e)).collect();
            // A policy refusal among them is the answer; otherwise every reason.
            if errors
                .iter()
                .any(|(_, e)| matches!(e, VerifyError::Policy(_)))
            {
                Err(errors)
            } else {
                Err(refused.into_iter().chain(errors).collect())
            }
        }
    }
}

/// `verify oci://…`: a trusted signature about this manifest, then every layer streamed
/// and its files compared with the signed manifest. `None`: refused (already reported).
pub fn verify(args: &VerifyArgs, verifier: &Verifier) -> Result<Option<(VerifiedModel, String)>> {
    if args.ignore_unsigned_files || !args.ignore.is_empty() {
        bail!("--ignore and --ignore-unsigned-files apply to directories, not oci:// references");
    }
    let registry = registry(&args.registry)?;
    let model = match open_checked(&registry, &args.model.display().to_string())? {
        Ok(model) => model,
        Err(e) => {
            Refusal::Content(e).report(args);
            return Ok(None);
        }
    };
    let candidates = bundles(
        &registry,
        &model,
        args.signature.first().map(|p| p.as_path()),
    )?;
    let checked = checked_model(&registry, &model, &candidates, verifier, None, args.json)?;
    match checked {
        Ok(found) => Ok(Some(found)),
        Err(refusal) => {
            refusal.report(args);
            Ok(None)
        }
    }
}

/// Why an OCI model was refused.
enum Refusal {
    /// No signature passed.
    Signatures(Vec<(String, VerifyError)>),
    /// A signature passed and the files do not match it.
    Files(String, VerifyError),
    /// The registry served something that is not what it names.
    Content(OciError),
}

impl Refusal {
    fn report(&self, args: &VerifyArgs) {
        match self {
            Self::Files(name, err) => super::refusal::report_refusal(args, name, err),
            Self::Signatures(refused) if refused.is_empty() => {
                let err = VerifyError::ListsNothing("no signature is attached to this model");
                super::refusal::report_refusal(args, &args.model.display().to_string(), &err);
            }
            Self::Signatures(refused) => {
                for (name, err) in refused {
                    super::refusal::report_stderr(args, name, err);
                }
                // One object: the first refusal, and every bundle's below it.
                if let (true, Some((name, err))) = (args.json, refused.first()) {
                    let mut report = super::refusal::refusal_json(args, name, err);
                    report["refusals"] = refused
                        .iter()
                        .map(|(name, err)| {
                            serde_json::json!({"signature": name, "kind": err.kind(), "message": modelseal_verify::error_chain(err)})
                        })
                        .collect();
                    out_report(false, report);
                }
            }
            Self::Content(err) => {
                crate::eprintln_safe!(
                    "error: {}: refused: {}",
                    args.model.display(),
                    modelseal_verify::error_chain(err)
                );
                if args.json {
                    out_report(
                        false,
                        serde_json::json!({
                            "verified": false,
                            "model": args.model.display().to_string(),
                            "error": { "kind": err.kind(), "message": err.to_string(), "hints": [] },
                        }),
                    );
                }
            }
        }
    }
}

/// Checks signatures, then streams the layers (writing them under `out` if given).
fn checked_model(
    registry: &Registry,
    model: &OciModel,
    candidates: &Candidates,
    verifier: &Verifier,
    out_dir: Option<&Path>,
    hidden: bool,
) -> Result<std::result::Result<(VerifiedModel, String), Refusal>> {
    // Signatures first: a model nobody trusted signed is not worth downloading, nor one
    // the policy's rules refuse (by its signed name, root or manifest digest).
    let (name, signed) = match signed_for(model, candidates, verifier) {
        Ok(found) => found,
        Err(refused) => return Ok(Err(Refusal::Signatures(refused))),
    };
    let bar = Bar::new(hidden);
    modelseal_core::hash::Progress::begin(&bar, model.layer_bytes());
    let unpacked = model::unpack(registry, model, out_dir, UnpackLimits::default(), &bar);
    bar.finish();
    let found = match unpacked {
        Ok(found) => found,
        Err(e) if e.is_refusal() => return Ok(Err(Refusal::Content(e))),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot verify {}", model.reference));
        }
    };
    match verifier.check_unpacked(signed, found.entries()) {
        Ok(verified) => Ok(Ok((verified, format!("{name} on {}", model.reference)))),
        Err(e) => Ok(Err(Refusal::Files(name, e))),
    }
}

/// `pull oci://… DIR`: verify, writing the files into a new directory beside DIR, and
/// rename it to DIR only when every layer and file checked out; the bundle goes to
/// DIR.sig, so `modelseal verify DIR` works offline afterwards.
pub fn pull(args: &PullArgs) -> Result<crate::Outcome> {
    let v = &args.verify;
    super::refuse_key_with_identity(&v.keys, &v.keyless)?;
    let (policy, lineage_policy) = super::trust::trust_from(
        modelseal_lineage::policy::Role::ModelPublisher,
        &v.keys,
        &[],
        v.policy.as_deref(),
        &v.keyless,
        false,
    )?;
    let verifier =
        super::trust::verifier(policy, lineage_policy.as_ref(), VerifyOptions::default());
    let signature_path = super::default_signature_path(&args.out);
    crate::output::check_new(&args.out, "pull destination", args.force)?;
    crate::output::check_new(&signature_path, "signature", args.force)?;
    let parent = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let registry = registry(&v.registry)?;
    let model = match open_checked(&registry, &args.reference)? {
        Ok(model) => model,
        Err(e) => {
            let message = modelseal_verify::error_chain(&e);
            return Ok(pull_refused(args, e.kind(), &args.reference, &message));
        }
    };
    let candidates = bundles(&registry, &model, v.signature.as_deref())?;
    let staging = tempfile::Builder::new()
        .prefix(".modelseal-pull-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    let checked = checked_model(
        &registry,
        &model,
        &candidates,
        &verifier,
        Some(staging.path()),
        args.json,
    )?;
    let (verified, signature_name) = match checked {
        Ok(found) => found,
        Err(refusal) => {
            let kind = match &refusal {
                Refusal::Signatures(r) if r.is_empty() => "no-signature",
                Refusal::Signatures(r) => r[0].1.kind(),
                Refusal::Files(_, e) => e.kind(),
                Refusal::Content(e) => e.kind(),
            };
            let text = match refusal {
                Refusal::Signatures(r) if r.is_empty() => {
                    "no signature is attached to this model".to_owned()
                }
                Refusal::Signatures(r) => r
                    .iter()
                    .map(|(n, e)| format!("{n}: {}", modelseal_verify::error_chain(e)))
                    .collect::<Vec<_>>()
                    .join("\n  "),
                Refusal::Files(n, e) => format!("{n}: {}", modelseal_verify::error_chain(&e)),
                Refusal::Content(e) => modelseal_verify::error_chain(&e),
            };
            let reference = model.reference.to_string();
            return Ok(pull_refused(args, kind, &reference, &text));
        }
    };
    let used = signature_name
        .rsplit_once(" on ")
        .map_or(signature_name.as_str(), |(n, _)| n);
    let json = candidates
        .iter()
        .find(|(n, _)| n == used)
        .map(|(_, json)| json.clone())
        .context("the bundle used is among those found")?;
    // The signature first (refusing to replace one), then the directory: a pull that
    // fails in between leaves a signature without a model, never a model without its
    // signature or beside someone else's.
    modelseal_core::fsio::write_atomic(
        &signature_path,
        &json,
        modelseal_core::fsio::Visibility::Public,
        if args.force {
            modelseal_core::fsio::Overwrite::Allow
        } else {
            modelseal_core::fsio::Overwrite::Refuse
        },
    )
    .with_context(|| format!("cannot write {}", signature_path.display()))?;
    if args.force && args.out.symlink_metadata().is_ok() {
        // Only now, with the new model verified and staged beside it.
        remove_path(&args.out).with_context(|| format!("cannot replace {}", args.out.display()))?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &args.out) {
        let _ = std::fs::remove_dir_all(&staged);
        let _ = std::fs::remove_file(&signature_path);
        return Err(e)
            .with_context(|| format!("cannot move the pulled model to {}", args.out.display()));
    }
    if args.json {
        out_report(
            true,
            serde_json::json!({
                "verified": true,
                "reference": model.reference.to_string(),
                "manifest": model.digest().to_string(),
                "out": args.out.display().to_string(),
                "signature": signature_path.display().to_string(),
                "name": verified.name,
                "root": { verified.root.algorithm().name(): verified.root.to_hex() },
                "signer": super::verify::signer_json(&verified.signer),
                "files": verified.files,
                "bytes": verified.bytes,
            }),
        );
        return Ok(crate::Outcome::Success);
    }
    out(&format!(
        "pulled {} ({}, {}) into {}\n  subject {} {}\n  signer  {} {}\n  wrote   {}",
        model.reference,
        crate::output::count(verified.files as u64, "file", "files"),
        crate::output::count(verified.bytes.unwrap_or(0), "byte", "bytes"),
        args.out.display(),
        verified.name.as_deref().unwrap_or("(unnamed)"),
        verified.root,
        verified.signer.algorithm,
        verified.signer.fingerprint,
        signature_path.display(),
    ));
    Ok(crate::Outcome::Success)
}

/// A pull refused (exit 1): on stderr, and under `--json` as the one object.
fn pull_refused(args: &PullArgs, kind: &str, reference: &str, message: &str) -> crate::Outcome {
    crate::eprintln_safe!("error: {reference}: refused, nothing written: {message}");
    if args.json {
        out_report(
            false,
            serde_json::json!({
                "verified": false,
                "reference": reference,
                "error": { "kind": kind, "message": message, "hints": [] },
            }),
        );
    }
    crate::Outcome::Refused
}

/// Removes a file, a link, or a directory tree.
fn remove_path(path: &std::path::Path) -> std::io::Result<()> {
    if path.symlink_metadata()?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// `inspect oci://…`: the manifest, its layers and the bundles attached to it, without
/// verifying anything (and saying so).
pub fn inspect(args: &crate::cli::InspectArgs) -> Result<crate::Outcome> {
    let registry = registry(&args.registry)?;
    let model = open(&registry, &args.signature.display().to_string())?;
    let found = referrers::find_bundles(&registry, &model.reference, model.digest())
        .with_context(|| format!("cannot list the signatures attached to {}", model.reference))?;
    let bundles: Vec<serde_json::Value> = found
        .bundles
        .iter()
        .map(|b| {
            let claims = Bundle::from_json(&b.bytes).ok().and_then(|bundle| {
                serde_json::from_slice::<modelseal_core::statement::Statement>(
                    &bundle.dsse_envelope.payload,
                )
                .ok()
                .map(|s| {
                    serde_json::json!({
                        "predicateType": s.predicate_type,
                        "subject": s.subject,
                        "keyHint": bundle.verification_material.public_key.and_then(|k| k.hint),
                    })
                })
            });
            serde_json::json!({"referrer": b.referrer.to_string(), "claims": claims})
        })
        .collect();
    let layers: Vec<serde_json::Value> = model
        .layers
        .iter()
        .map(|l| serde_json::json!({"digest": l.digest.to_string(), "size": l.size, "mediaType": l.media_type}))
        .collect();
    if args.json {
        out_report(
            true,
            serde_json::json!({
                "verified": false,
                "reference": model.reference.to_string(),
                "manifest": model.digest().to_string(),
                "mediaType": model.media_type,
                "artifact": model.flavor.name(),
                "config": model.config_media_type,
                "layers": layers,
                "signatures": bundles,
                "referrersFallbackTag": found.via_fallback_tag,
                "skipped": found.skipped,
            }),
        );
        return Ok(crate::Outcome::Success);
    }
    let mut lines = vec![
        format!(
            "{} (not verified: inspect only reads the claims)",
            model.reference
        ),
        format!("  manifest   {} ({})", model.digest(), model.media_type),
        format!(
            "  artifact   {} (config {})",
            model.flavor.name(),
            model.config_media_type
        ),
    ];
    for l in &model.layers {
        lines.push(format!(
            "  layer      {} {} bytes {}",
            l.digest, l.size, l.media_type
        ));
    }
    for b in &bundles {
        lines.push(format!(
            "  signature  {} {}",
            b["referrer"].as_str().unwrap_or_default(),
            b["claims"]["predicateType"]
                .as_str()
                .unwrap_or("(not a statement)")
        ));
    }
    if bundles.is_empty() {
        lines.push("  signature  none attached".into());
    }
    out(&lines.join("\n"));
    Ok(crate::Outcome::Success)
}
