//! `modelseal attest training`: a signed SLSA Provenance v1 statement for a training run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
use modelseal_core::hash::NoProgress;
use modelseal_core::provenance::{
    BuildDefinition, BuildMetadata, Builder, DependencyKind, Provenance, RunDetails,
    TRAINING_BUILD_TYPE, dependency, provenance_statement,
};
use modelseal_core::statement::ResourceDescriptor;
use modelseal_core::{Blake3Digest, WalkOptions, hash_model, walk};
use serde_json::json;
use sha2::Digest as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Outcome;
use crate::cli::{AttestCommand, TrainingArgs};
use crate::output::out;
use crate::progress::Bar;
use crate::signing::StatementSigner;

pub fn run(command: &AttestCommand) -> Result<Outcome> {
    match command {
        AttestCommand::Training(args) => training(args),
    }
}

fn training(args: &TrainingArgs) -> Result<Outcome> {
    let out_path = args.out.clone().unwrap_or_else(|| {
        let mut file = args
            .model
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "model".into());
        file.push(".provenance.sig");
        args.model.with_file_name(file)
    });
    crate::output::check_new(&out_path, "provenance bundle", args.force)?;
    let signer = StatementSigner::from_args(&args.signer)?;
    let mut dependencies = Vec::new();
    for spec in &args.base_models {
        dependencies.push(artifact(spec, DependencyKind::BaseModel, args)?);
    }
    for spec in &args.datasets {
        dependencies.push(artifact(spec, DependencyKind::Dataset, args)?);
    }
    let code = match args.code.clone() {
        Some(code) => Some(code),
        None => code_from_environment()?,
    };
    if let Some(code) = code {
        dependencies.push(code_dependency(&code)?);
    }
    if let Some(image) = &args.image {
        dependencies.push(image_dependency(image)?);
    }
    let mut hyperparameters = serde_json::Map::new();
    for param in &args.params {
        let Some((k, v)) = param.split_once('=') else {
            bail!("--param {param:?} is not KEY=VALUE");
        };
        hyperparameters.insert(k.to_owned(), v.into());
    }
    let mut configs = Vec::new();
    for path in &args.configs {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        configs.push(json!({
            "name": path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "digest": { "sha256": hex::encode(sha2::Sha256::digest(&bytes)) },
        }));
    }
    let started_on = args.started_on.as_deref().map(rfc3339).transpose()?;
    let finished_on = match &args.finished_on {
        Some(t) => rfc3339(t)?,
        None => OffsetDateTime::now_utc().format(&Rfc3339)?,
    };
    let mut invocation = [0u8; 16];
    getrandom::fill(&mut invocation).map_err(|e| anyhow::anyhow!("system random source: {e}"))?;
    let provenance = Provenance {
        build_definition: BuildDefinition {
            build_type: TRAINING_BUILD_TYPE.into(),
            external_parameters: json!({
                "entryPoint": args.entry_point,
                "hyperparameters": hyperparameters,
                "configs": configs,
            }),
            internal_parameters: None,
            resolved_dependencies: dependencies,
        },
        run_details: RunDetails {
            builder: Builder {
                id: args.builder_id.clone(),
            },
            metadata: Some(BuildMetadata {
                invocation_id: Some(hex::encode(invocation)),
                started_on,
                finished_on: Some(finished_on),
            }),
        },
    };
    let model_text = args.model.display().to_string();
    let (root, default_name) = if modelseal_oci::Reference::is_oci(&model_text) {
        if args.out.is_none() {
            bail!("--out is required for an oci:// model: there is no directory to write beside");
        }
        super::oci::root_of(&model_text, &args.registry, false)?
    } else {
        let bar = Bar::new(false);
        let manifest = hash_model(&args.model, &WalkOptions::default(), &bar)
            .with_context(|| format!("cannot hash model {}", args.model.display()))?;
        bar.finish();
        (manifest.root(), walk::model_name(&args.model))
    };
    let name = args.name.clone().unwrap_or(default_name);
    let issued = signer.sign_native(provenance_statement(&name, &root, &provenance), &root)?;
    write_atomic(
        &out_path,
        &issued.bundle.to_json(),
        Visibility::Public,
        Overwrite::Allow,
    )
    .with_context(|| format!("cannot write {}", out_path.display()))?;
    let inputs = provenance.build_definition.resolved_dependencies.len();
    if args.json {
        crate::output::out_report(
            true,
            json!({
                "name": name,
                "root": { "blake3": root.to_hex() },
                "builder": args.builder_id,
                "inputs": inputs,
                "signer": issued.signer_json,
                "out": out_path.display().to_string(),
            }),
        );
        return Ok(Outcome::Success);
    }
    out(&format!(
        "attested {name} blake3:{root}\n  built by {} from {}\n  signer  {}\n  wrote   {}",
        args.builder_id,
        crate::output::count(inputs as u64, "input", "inputs"),
        issued.signer_text,
        out_path.display()
    ));
    Ok(Outcome::Success)
}

fn rfc3339(text: &str) -> Result<String> {
    let time = OffsetDateTime::parse(text, &Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))?;
    Ok(time.format(&Rfc3339)?)
}

/// `DIR`, `oci://…`, `blake3:HEX` or `NAME=blake3:HEX`: a directory (or what an OCI
/// artifact's layers unpack to) is hashed like a model.
fn artifact(spec: &str, kind: DependencyKind, args: &TrainingArgs) -> Result<ResourceDescriptor> {
    if modelseal_oci::Reference::is_oci(spec) {
        let (root, name) = super::oci::root_of(spec, &args.registry, true)?;
        return Ok(dependency(
            kind,
            Some(name),
            None,
            BTreeMap::from([("blake3".to_owned(), root.to_hex())]),
        ));
    }
    // A digest given as such: `blake3:HEX` or `NAME=blake3:HEX`, never a path that
    // happens to hold `blake3:` (that path is hashed like any other).
    let given = spec.split_once("blake3:").filter(|(prefix, _)| {
        prefix.is_empty() || (prefix.ends_with('=') && !prefix.contains('/'))
    });
    let given = given.filter(|_| Path::new(spec).symlink_metadata().is_err());
    let (name, digest) = match given {
        Some((prefix, hex)) => {
            let digest: Blake3Digest = hex.parse().with_context(|| format!("{spec:?}"))?;
            let name = prefix
                .strip_suffix('=')
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
            (name, digest)
        }
        None => {
            let path = Path::new(spec);
            let manifest = hash_model(path, &WalkOptions::default(), &NoProgress)
                .with_context(|| format!("cannot hash {spec}"))?;
            (Some(walk::model_name(path)), manifest.root())
        }
    };
    Ok(dependency(
        kind,
        name,
        None,
        BTreeMap::from([("blake3".to_owned(), digest.to_hex())]),
    ))
}

fn code_dependency(spec: &str) -> Result<ResourceDescriptor> {
    let Some((url, commit)) = spec.rsplit_once('@') else {
        bail!("--code {spec:?} is not GIT_URL@COMMIT");
    };
    let hex_ok = matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_ok || url.is_empty() {
        bail!("--code {spec:?}: the commit must be a 40- or 64-digit hex git hash");
    }
    let uri = if url.starts_with("git+") {
        url.to_owned()
    } else {
        format!("git+{url}")
    };
    Ok(dependency(
        DependencyKind::Code,
        None,
        Some(uri),
        BTreeMap::from([("gitCommit".to_owned(), commit.to_ascii_lowercase())]),
    ))
}

fn image_dependency(spec: &str) -> Result<ResourceDescriptor> {
    let Some((reference, hex)) = spec.rsplit_once("@sha256:") else {
        bail!("--image {spec:?} is not REF@sha256:HEX");
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--image {spec:?}: the digest must be 64 hex digits");
    }
    Ok(dependency(
        DependencyKind::Image,
        None,
        Some(format!("oci://{reference}")),
        BTreeMap::from([("sha256".to_owned(), hex.to_ascii_lowercase())]),
    ))
}

/// The code being built, from CI variables or the current git checkout. A checkout with
/// uncommitted changes names no code (with a warning): its commit is not the code that
/// ran, and a claim left out can only make a policy that asks for it refuse.
fn code_from_environment() -> Result<Option<String>> {
    if let (Ok(server), Ok(repo), Ok(sha)) = (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_SHA"),
    ) {
        return Ok(Some(format!("{server}/{repo}@{sha}")));
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "HEAD"]) else {
        return Ok(None);
    };
    match git(&["status", "--porcelain", "--untracked-files=normal"]) {
        Some(status) if status.is_empty() => {}
        _ => {
            crate::eprintln_safe!(
                "warning: the git checkout here has uncommitted or untracked changes, so commit {commit} is not the code that ran: no code is recorded (commit them, or name the code with --code GIT_URL@COMMIT)"
            );
            return Ok(None);
        }
    }
    let url = git(&["config", "--get", "remote.origin.url"]).unwrap_or_else(|| "file://.".into());
    Ok(Some(format!("{url}@{commit}")))
}
