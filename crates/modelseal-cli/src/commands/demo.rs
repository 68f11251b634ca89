//! `modelseal demo`: the whole story on a generated sample, in a temporary directory.

use std::path::Path;

use anyhow::{Context, Result, bail};
use modelseal_core::fsio::{Overwrite, Visibility, write_atomic};
use modelseal_core::hash::NoProgress;
use modelseal_core::{SignOptions, SigningKey, sign_model, sign_statement};
use modelseal_verify::{TrustPolicy, VerifyError, VerifyOptions, verify_model};

use crate::Outcome;
use crate::output::out;

pub fn run() -> Result<Outcome> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let model = dir.path().join("demo-model");
    let (files, bytes) = make_sample_model(&model)?;
    out(&format!(
        "1. made a sample model: {} ({files} files, {bytes} bytes)",
        model.display()
    ));

    let key = SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519)?;
    let key_path = dir.path().join("demo-key");
    write_atomic(
        &key_path,
        key.to_pem(None)?.as_bytes(),
        Visibility::Private,
        Overwrite::Refuse,
    )?;
    let public = key.verifying_key();
    out(&format!(
        "2. modelseal keygen --out {}\n   public key {}",
        key_path.display(),
        public.fingerprint()
    ));

    let signature = dir.path().join("demo-model.sig");
    let signed = sign_model(&model, &SignOptions::default(), &key, &NoProgress)?;
    write_atomic(
        &signature,
        &signed.bundle.to_json(),
        Visibility::Public,
        Overwrite::Allow,
    )?;
    out(&format!(
        "3. modelseal sign {} --key {}\n   subject {} blake3:{}\n   wrote {}",
        model.display(),
        key_path.display(),
        signed.name,
        signed.root,
        signature.display()
    ));

    let trusted = TrustPolicy::from_keys(vec![public]);
    let verified = verify_model(
        &model,
        &signed.bundle,
        &trusted,
        &VerifyOptions::default(),
        &NoProgress,
    )
    .context("the freshly signed sample model did not verify")?;
    out(&format!(
        "4. modelseal verify {} --key {}.pub\n   verified: {} files, {} bytes, signer {}",
        model.display(),
        key_path.display(),
        verified.files,
        verified.bytes.unwrap_or_default(),
        verified.signer.fingerprint
    ));

    attest_and_check_lineage(dir.path(), &signed, &key)?;

    // A tampered copy: one flipped byte in a weight shard, one file added.
    let tampered = dir.path().join("tampered-model");
    copy_dir(&model, &tampered)?;
    let shard = tampered.join("model-00002-of-00002.safetensors");
    let mut weights = std::fs::read(&shard)?;
    let middle = weights.len() / 2;
    weights[middle] ^= 0x01;
    std::fs::write(&shard, weights)?;
    std::fs::write(tampered.join("backdoor.py"), b"import os\n")?;
    out(&format!(
        "6. tampered copy: flipped one bit at byte {middle} of model-00002-of-00002.safetensors, added backdoor.py\n   modelseal verify {} --signature {} --key {}.pub",
        tampered.display(),
        signature.display(),
        key_path.display()
    ));
    expect_refusal(verify_model(
        &tampered,
        &signed.bundle,
        &trusted,
        &VerifyOptions::default(),
        &NoProgress,
    ))?;

    let stranger = TrustPolicy::from_keys(vec![
        SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519)?.verifying_key(),
    ]);
    out("7. the intact model checked against someone else's key");
    expect_refusal(verify_model(
        &model,
        &signed.bundle,
        &stranger,
        &VerifyOptions::default(),
        &NoProgress,
    ))?;

    out(
        "demo passed: the signed model and its lineage verified; the tampered copy and the wrong key were refused\n\
         (its files were in a temporary directory, now removed; the README's quick start runs the same steps on your own model)",
    );
    Ok(Outcome::Success)
}

fn expect_refusal(result: Result<modelseal_verify::VerifiedModel, VerifyError>) -> Result<()> {
    match result {
        Ok(_) => bail!("a model that should have been refused verified"),
        Err(err) if err.is_refusal() => {
            out(&format!(
                "   refused: {}",
                super::refusal::error_chain(&err)
            ));
            for line in super::refusal::details(&err) {
                out(&format!("     {line}"));
            }
            Ok(())
        }
        Err(err) => Err(err).context("the demo could not read its own files"),
    }
}

/// Writes a small model in the shape of a Hugging Face checkpoint, with deterministic
/// pseudo-random weights, and returns its file count and size.
fn make_sample_model(model: &Path) -> Result<(usize, u64)> {
    std::fs::create_dir_all(model.join("tokenizer"))?;
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (
            "config.json",
            br#"{"architectures":["DemoForCausalLM"],"hidden_size":256}"#.to_vec(),
        ),
        (
            "tokenizer/tokenizer.json",
            br#"{"model":{"type":"BPE","vocab":{}}}"#.to_vec(),
        ),
        (
            "README.md",
            b"# demo-model\nGenerated by `modelseal demo`.\n".to_vec(),
        ),
    ];
    for (name, seed) in [
        ("model-00001-of-00002.safetensors", b"shard-1"),
        ("model-00002-of-00002.safetensors", b"shard-2"),
    ] {
        let mut weights = vec![0u8; 6 << 20];
        blake3::Hasher::new()
            .update(seed)
            .finalize_xof()
            .fill(&mut weights);
        files.push((name, weights));
    }
    let mut total = 0;
    for (name, bytes) in &files {
        std::fs::write(model.join(name), bytes)?;
        total += bytes.len() as u64;
    }
    Ok((files.len(), total))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Step 5: a signed dataset, a signed training provenance naming it, a store, a
/// policy, and the lineage check over all of it.
fn attest_and_check_lineage(
    dir: &Path,
    signed: &modelseal_core::SignedModel,
    publisher: &SigningKey,
) -> Result<()> {
    use modelseal_core::ArtifactKind;
    use modelseal_core::provenance::{
        BuildDefinition, Builder, DependencyKind, Provenance, RunDetails, TRAINING_BUILD_TYPE,
        dependency, provenance_statement,
    };
    use modelseal_lineage::policy::LineagePolicy;
    use modelseal_lineage::store::AttestationStore;
    use modelseal_lineage::verify_lineage;
    use std::collections::BTreeMap;

    let dataset = dir.join("demo-dataset");
    std::fs::create_dir_all(&dataset)?;
    std::fs::write(
        dataset.join("train.jsonl"),
        b"{\"text\": \"a sample training record\"}\n",
    )?;
    let curator = SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519)?;
    let builder = SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519)?;
    let options = SignOptions {
        kind: ArtifactKind::Dataset,
        ..SignOptions::default()
    };
    let data = sign_model(&dataset, &options, &curator, &NoProgress)?;
    let provenance = Provenance {
        build_definition: BuildDefinition {
            build_type: TRAINING_BUILD_TYPE.into(),
            external_parameters: serde_json::json!({"hyperparameters": {"epochs": "3"}}),
            internal_parameters: None,
            resolved_dependencies: vec![dependency(
                DependencyKind::Dataset,
                Some(data.name.clone()),
                None,
                BTreeMap::from([("blake3".to_owned(), data.root.to_hex())]),
            )],
        },
        run_details: RunDetails {
            builder: Builder {
                id: "https://ci.example.com/demo-trainer".into(),
            },
            metadata: None,
        },
    };
    let attestation = sign_statement(
        &provenance_statement(&signed.name, &signed.root, &provenance),
        &builder,
    );
    let store = AttestationStore::open(&dir.join("store"));
    for (file, bundle) in [
        ("demo-dataset.sig", &data.bundle),
        ("demo-model.provenance.sig", &attestation),
        ("demo-model.sig", &signed.bundle),
    ] {
        let path = dir.join(file);
        write_atomic(
            &path,
            &bundle.to_json(),
            Visibility::Public,
            Overwrite::Allow,
        )?;
        store.add(&path)?;
    }
    for (name, key) in [
        ("publisher", publisher),
        ("builder", &builder),
        ("curator", &curator),
    ] {
        std::fs::write(
            dir.join(format!("{name}.pub")),
            key.verifying_key().to_pem(),
        )?;
        if name != "publisher" {
            // Step 5 prints the commands that make its files, keys included.
            write_atomic(
                &dir.join(format!("{name}-key")),
                key.to_pem(None)?.as_bytes(),
                Visibility::Private,
                Overwrite::Refuse,
            )?;
        }
    }
    let policy_path = dir.join("policy.toml");
    std::fs::write(
        &policy_path,
        "[[signer]]\nname = \"release\"\nroles = [\"model-publisher\"]\nkey = \"publisher.pub\"\n\n\
         [[signer]]\nname = \"trainer\"\nroles = [\"training-builder\"]\nkey = \"builder.pub\"\n\n\
         [[signer]]\nname = \"data-team\"\nroles = [\"dataset-curator\"]\nkey = \"curator.pub\"\n\n\
         [datasets]\ndeny = [\"name:scraped-*\"]\n",
    )?;
    let policy = LineagePolicy::read(&policy_path)?;
    let report = verify_lineage(
        Some(signed.name.clone()),
        &modelseal_core::ArtifactDigest::blake3(&signed.root),
        &[],
        "release".into(),
        &policy,
        &store,
    );
    let d = dir.display();
    out(&format!(
        "5. modelseal sign {d}/demo-dataset --kind dataset --key {d}/curator-key\n   \
         modelseal attest training --model {d}/demo-model --dataset {d}/demo-dataset --key {d}/builder-key \\\n     \
         --builder-id https://ci.example.com/demo-trainer --param epochs=3\n   \
         modelseal store add {d}/store {d}/demo-dataset.sig {d}/demo-model.provenance.sig {d}/demo-model.sig\n   \
         modelseal verify {d}/demo-model --policy {d}/policy.toml --lineage --store {d}/store"
    ));
    for line in super::lineage::report_text(&report).lines() {
        out(&format!("   {line}"));
    }
    if !report.passed() {
        bail!("the demo's own lineage did not pass");
    }
    Ok(())
}
