//! Deciding a model named by OCI reference from a directory store: the manifest digest is
//! bound to the model by a trusted publisher signature naming both. No registry is
//! contacted: the reference names its digest.

mod common;

use std::sync::Arc;
use std::time::Duration;

use modelseal_core::statement::{ManifestPredicate, ResourceDescriptor, Statement};
use modelseal_core::{ArtifactKind, sign_statement};
use modelseal_lineage::Stop;
use modelseal_lineage::store::AttestationStore;
use modelseal_webhook::decide::{Decider, Trust};

/// A model signature that also names OCI manifest `manifest_hex`, filed in the store.
fn bind(world: &common::World, manifest_hex: &str) -> String {
    let d = world.dir.path();
    let signed = modelseal_core::sign_model(
        &d.join("model"),
        &modelseal_core::SignOptions::default(),
        &world.publisher,
        &modelseal_core::hash::NoProgress,
    )
    .unwrap();
    let (manifest, root) = (signed.manifest, signed.root);
    let predicate = ManifestPredicate {
        kind: ArtifactKind::Model,
        ignore_paths: Vec::new(),
        allow_symlinks: false,
        scope: Some(modelseal_core::statement::Scope::Directory),
        files: manifest.entries().to_vec(),
    };
    let mut statement = Statement::for_manifest("model", &root, predicate);
    statement.subject.push(ResourceDescriptor {
        name: Some("127.0.0.1:1/models/m".into()),
        uri: None,
        digest: [("sha256".to_owned(), manifest_hex.to_owned())].into(),
        annotations: None,
    });
    let file = d.join("model.oci.sig");
    std::fs::write(
        &file,
        sign_statement(&statement, &world.publisher).to_json(),
    )
    .unwrap();
    AttestationStore::open(&d.join("store")).add(&file).unwrap();
    format!("oci://127.0.0.1:1/models/m@sha256:{manifest_hex}")
}

#[test]
fn a_yes_beside_a_planted_store_file_is_not_remembered_for_the_reference() {
    // Failed on main: the digest path refused to cache such a yes, the reference path
    // cached it anyway.
    let world = common::world();
    let d = world.dir.path();
    let manifest_hex = "ab".repeat(32);
    let reference = bind(&world, &manifest_hex);
    let store = AttestationStore::open(&d.join("store"));
    let decider = || {
        Decider::new(
            Trust::load(&d.join("policy.toml"), &store).unwrap(),
            16,
            Duration::from_secs(60),
            Arc::new(Default::default()),
        )
        .with_registry(
            modelseal_oci::RegistryOptions::default(),
            vec!["127.0.0.1:1".into()],
            modelseal_webhook::config::OciTags::Refuse,
        )
    };
    let planted = store
        .root()
        .join("sha256")
        .join(&manifest_hex)
        .join(format!("{}.json", "cd".repeat(32)));
    std::fs::write(&planted, b"junk").unwrap();
    let decider_with_junk = decider();
    let first = decider_with_junk.decide_oci(&reference, true, Stop::never(), false);
    assert!(first.allowed, "{}", first.message);
    let again = decider_with_junk.decide_oci(&reference, true, Stop::never(), false);
    assert!(
        again.allowed && !again.cached,
        "a yes beside junk was cached"
    );
    std::fs::remove_file(&planted).unwrap();
    let clean = decider();
    assert!(
        clean
            .decide_oci(&reference, true, Stop::never(), false)
            .allowed
    );
    let again = clean.decide_oci(&reference, true, Stop::never(), false);
    assert!(again.allowed && again.cached, "a clean yes is cached");
}
