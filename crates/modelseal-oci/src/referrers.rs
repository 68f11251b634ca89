//! Sigstore bundles as OCI 1.1 referrers (`spec/oci.md` §5): attached the way cosign v3
//! attaches them, found through the referrers API or, on registries without it, the
//! referrers tag schema (`sha256-HEX`).

use std::collections::HashMap;

use serde_json::json;

use crate::reference::{OciDigest, Reference};
use crate::{OciError, Registry};

/// `artifactType` of a referrer that carries a Sigstore bundle (and its layer's type).
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The older spelling some clients give the same layer.
const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// The OCI empty descriptor's media type, and its two-byte blob `{}`.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_BLOB: &[u8] = b"{}";
/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Most referrers looked at for one subject; a crowded subject is reported, not walked.
pub const MAX_REFERRERS: usize = 64;

/// What the attached referrer is.
#[derive(Debug, Clone)]
pub struct Attached {
    /// Digest of the referrer manifest.
    pub digest: OciDigest,
    /// Whether the referrers tag was updated (the registry has no referrers API).
    pub via_fallback_tag: bool,
}

/// The subject a referrer points at: the manifest's digest, media type and size.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Digest.
    pub digest: OciDigest,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// Attaches `bundle` (Sigstore bundle JSON) to `subject` in `repository`'s repository.
pub fn attach_bundle(
    registry: &Registry,
    repository: &Reference,
    subject: &Subject,
    bundle: &[u8],
    predicate_type: &str,
) -> Result<Attached, OciError> {
    let pushed = push_bundle_artifact(registry, repository, bundle, predicate_type, Some(subject))?;
    let digest = pushed.digest;
    // A registry with the referrers API names the subject back; otherwise the client
    // keeps the index under the fallback tag itself.
    if pushed.echoed_subject.as_deref() == Some(subject.digest.to_string().as_str()) {
        return Ok(Attached {
            digest,
            via_fallback_tag: false,
        });
    }
    add_to_index(
        registry,
        &repository.with_tag(&subject.digest.fallback_tag()),
        pushed.descriptor,
    )?;
    Ok(Attached {
        digest,
        via_fallback_tag: true,
    })
}

/// A bundle artifact as pushed: its digest, its descriptor for an index, and the
/// `OCI-Subject` the registry echoed, if any.
pub struct PushedArtifact {
    /// The artifact manifest's digest.
    pub digest: OciDigest,
    /// Its descriptor, as an index lists it (artifact type and annotations copied).
    pub descriptor: serde_json::Value,
    /// The `OCI-Subject` header of the push.
    pub echoed_subject: Option<String>,
}

/// Pushes `bundle` as a bundle artifact (the empty config, one bundle layer, by digest):
/// a referrer of `subject` when given (with its creation time, as cosign writes it), or
/// a subject-less store entry (no time, so the same bundle is the same artifact).
pub fn push_bundle_artifact(
    registry: &Registry,
    repository: &Reference,
    bundle: &[u8],
    predicate_type: &str,
    subject: Option<&Subject>,
) -> Result<PushedArtifact, OciError> {
    registry.push_blob(repository, EMPTY_BLOB)?;
    let layer = registry.push_blob(repository, bundle)?;
    let mut annotations = json!({
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": predicate_type,
    });
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": BUNDLE_ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": OciDigest::of(EMPTY_BLOB).to_string(),
            "size": EMPTY_BLOB.len(),
        },
        "layers": [{
            "mediaType": BUNDLE_ARTIFACT_TYPE,
            "digest": layer.to_string(),
            "size": bundle.len(),
        }],
    });
    if let Some(subject) = subject {
        let created = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        annotations["org.opencontainers.image.created"] = created.into();
        manifest["subject"] = json!({
            "mediaType": subject.media_type,
            "digest": subject.digest.to_string(),
            "size": subject.size,
        });
    }
    manifest["annotations"] = annotations.clone();
    let bytes = serde_json::to_vec(&manifest).expect("JSON values serialize");
    let digest = OciDigest::of(&bytes);
    let echoed_subject =
        registry.push_manifest(&repository.pinned(digest), &bytes, MANIFEST_MEDIA_TYPE)?;
    Ok(PushedArtifact {
        digest,
        descriptor: json!({
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": digest.to_string(),
            "size": bytes.len(),
            "artifactType": BUNDLE_ARTIFACT_TYPE,
            "annotations": annotations,
        }),
        echoed_subject,
    })
}

/// Read-modify-write of an image index under `tag_ref`, adding `descriptor` unless an
/// entry with its digest is there. Registries offer no compare-and-swap on tags, so the
/// write is read back and retried when another writer's update replaced it.
pub fn add_to_index(
    registry: &Registry,
    tag_ref: &Reference,
    descriptor: serde_json::Value,
) -> Result<(), OciError> {
    let digest = descriptor["digest"].as_str().unwrap_or_default().to_owned();
    for _attempt in 0..4 {
        let mut manifests = match registry.manifest_if_exists(tag_ref)? {
            Some(existing) => index_entries(&existing.bytes, tag_ref)?,
            None => Vec::new(),
        };
        if manifests.iter().any(|m| m["digest"] == digest.as_str()) {
            return Ok(());
        }
        if manifests.len() >= 4 * MAX_REFERRERS {
            return Err(OciError::Unsupported(format!(
                "{tag_ref} already lists {} entries; not adding more",
                manifests.len()
            )));
        }
        manifests.push(descriptor.clone());
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).expect("JSON values serialize");
        registry.push_manifest(tag_ref, &bytes, INDEX_MEDIA_TYPE)?;
        let back = registry.manifest_if_exists(tag_ref)?;
        if let Some(back) = back {
            let entries = index_entries(&back.bytes, tag_ref)?;
            if entries.iter().any(|m| m["digest"] == digest.as_str()) {
                return Ok(());
            }
        }
    }
    Err(OciError::Protocol(format!(
        "{tag_ref}: another writer kept replacing the index; the referrer was pushed but is not listed"
    )))
}

fn index_entries(bytes: &[u8], at: &Reference) -> Result<Vec<serde_json::Value>, OciError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| OciError::Protocol(format!("{at} is not JSON: {e}")))?;
    let is_index = value["mediaType"] == INDEX_MEDIA_TYPE || value["manifests"].is_array();
    if !is_index {
        return Err(OciError::Protocol(format!(
            "{at} holds something other than an image index"
        )));
    }
    Ok(value["manifests"].as_array().cloned().unwrap_or_default())
}

/// A bundle found attached to a subject.
#[derive(Debug, Clone)]
pub struct FoundBundle {
    /// The referrer manifest it came from.
    pub referrer: OciDigest,
    /// The bundle JSON bytes.
    pub bytes: Vec<u8>,
}

/// What looking for bundles found, and what it passed over.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Bundles whose referrer manifest names the subject.
    pub bundles: Vec<FoundBundle>,
    /// Whether the referrers tag schema was used (no referrers API).
    pub via_fallback_tag: bool,
    /// Entries passed over, and why (another subject, unreadable, not a bundle…).
    pub skipped: Vec<String>,
}

/// Finds the Sigstore bundles attached to `subject`. Each listed referrer is fetched by
/// digest and must itself name `subject`: an index entry proves nothing on its own,
/// since anyone who may push to the repository may write the fallback tag.
pub fn find_bundles(
    registry: &Registry,
    repository: &Reference,
    subject: OciDigest,
) -> Result<Discovery, OciError> {
    let mut discovery = Discovery::default();
    let entries = match registry.referrers_api(repository, subject)? {
        Some(bytes) => index_entries(&bytes, repository)?,
        None => {
            discovery.via_fallback_tag = true;
            let tag = repository.with_tag(&subject.fallback_tag());
            match registry.manifest_if_exists(&tag)? {
                Some(index) => index_entries(&index.bytes, &tag)?,
                None => Vec::new(),
            }
        }
    };
    let candidates: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| {
            // cosign's fallback entries carry the config type, not the artifact type.
            matches!(
                e["artifactType"].as_str(),
                None | Some(BUNDLE_ARTIFACT_TYPE)
                    | Some(BUNDLE_MEDIA_TYPE_ALT)
                    | Some(EMPTY_MEDIA_TYPE)
            )
        })
        .collect();
    if candidates.len() > MAX_REFERRERS {
        discovery.skipped.push(format!(
            "{} referrers listed; only the first {MAX_REFERRERS} were looked at",
            candidates.len()
        ));
    }
    for entry in candidates.into_iter().take(MAX_REFERRERS) {
        let Some(digest) = entry["digest"]
            .as_str()
            .and_then(|d| d.parse::<OciDigest>().ok())
        else {
            discovery
                .skipped
                .push(format!("an entry without a sha256 digest: {entry}"));
            continue;
        };
        match bundle_of(registry, repository, digest, subject) {
            Ok(bytes) => discovery.bundles.push(FoundBundle {
                referrer: digest,
                bytes,
            }),
            Err(e) if e.is_refusal() || matches!(e, OciError::NotFound(_)) => {
                discovery.skipped.push(format!("{digest}: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(discovery)
}

/// The bundle a referrer manifest carries, if it is a bundle referrer of `subject`.
fn bundle_of(
    registry: &Registry,
    repository: &Reference,
    referrer: OciDigest,
    subject: OciDigest,
) -> Result<Vec<u8>, OciError> {
    let fetched = registry.manifest(&repository.pinned(referrer))?;
    #[derive(serde::Deserialize)]
    struct Descriptor {
        #[serde(rename = "mediaType")]
        media_type: String,
        digest: String,
        size: u64,
        #[allow(dead_code)]
        annotations: Option<HashMap<String, String>>,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(rename = "artifactType")]
        artifact_type: Option<String>,
        layers: Vec<Descriptor>,
        subject: Option<Descriptor>,
    }
    let manifest: Manifest = serde_json::from_slice(&fetched.bytes)
        .map_err(|e| OciError::Unsupported(format!("referrer manifest: {e}")))?;
    let names_subject = manifest
        .subject
        .as_ref()
        .is_some_and(|s| s.digest == subject.to_string());
    if !names_subject {
        return Err(OciError::Unsupported(
            "its manifest names another subject".into(),
        ));
    }
    if manifest.artifact_type.as_deref() != Some(BUNDLE_ARTIFACT_TYPE) {
        return Err(OciError::Unsupported(match &manifest.artifact_type {
            Some(found) => format!("artifact type \"{found}\" is not a Sigstore bundle"),
            None => "it has no artifact type, so it is not a Sigstore bundle".into(),
        }));
    }
    let layer = match manifest.layers.as_slice() {
        [one]
            if one.media_type == BUNDLE_ARTIFACT_TYPE
                || one.media_type == BUNDLE_MEDIA_TYPE_ALT =>
        {
            one
        }
        _ => {
            return Err(OciError::Unsupported(
                "a bundle referrer must have exactly one bundle layer".into(),
            ));
        }
    };
    let digest: OciDigest = layer.digest.parse()?;
    registry.blob(
        repository,
        digest,
        layer.size,
        registry.options().max_bundle_bytes,
    )
}
