//! One function per parser of untrusted input. Each must return (never panic, hang or
//! allocate without bound) whatever the bytes; where a parse succeeds, some also check
//! a property the result must have. `fuzz_targets/` feeds them to libFuzzer;
//! `tests/replay.rs` feeds them every corpus file on stable.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use modelseal_core::bundle::Bundle;
use modelseal_core::statement::{STATEMENT_TYPE, Statement};
use modelseal_core::{ArtifactDigest, KeyAlgorithm, ManifestPath, SigningKey, dsse};
use modelseal_lineage::policy::LineagePolicy;
use modelseal_verify::{TrustPolicy, VerifyOptions, verify_attestation, verify_envelope};

/// A fixed signing key, and a policy that trusts it.
fn signer() -> &'static (SigningKey, TrustPolicy) {
    static SIGNER: OnceLock<(SigningKey, TrustPolicy)> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let key = SigningKey::generate(KeyAlgorithm::Ed25519).expect("key");
        let trust = TrustPolicy::from_keys(vec![key.verifying_key()]);
        (key, trust)
    })
}

/// A bundle whose DSSE payload is `payload`, validly signed by [`signer`]: what lies
/// behind the signature is then reached by every input, as it is by a trusted signer's
/// mistake or a compromised key.
fn signed_bundle(payload: &[u8]) -> Bundle {
    let (key, _) = signer();
    let statement: Statement = Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: Vec::new(),
        predicate_type: String::new(),
        predicate: serde_json::Value::Null,
    };
    let mut bundle = modelseal_core::sign_statement(&statement, key);
    let envelope = &mut bundle.dsse_envelope;
    envelope.payload = payload.to_vec();
    envelope.signatures[0].sig = key.sign(&dsse::pae(&envelope.payload_type, payload));
    bundle
}

fn expected() -> ArtifactDigest {
    format!("blake3:{}", "ab".repeat(32))
        .parse()
        .expect("a digest")
}

/// Sigstore bundle JSON.
pub fn bundle_json(data: &[u8]) {
    if let Ok(bundle) = Bundle::from_json(data) {
        // What parses serializes and parses again.
        let again = Bundle::from_json(&bundle.to_json()).expect("re-parse");
        assert_eq!(again.dsse_envelope.payload, bundle.dsse_envelope.payload);
    }
}

/// A whole bundle through the envelope checks (signer, signature, payload type).
pub fn envelope(data: &[u8]) {
    if let Ok(bundle) = Bundle::from_json(data) {
        let _ = verify_envelope(&bundle, &signer().1);
    }
}

/// A signed in-toto statement, through the gate.
pub fn statement(data: &[u8]) {
    let bundle = signed_bundle(data);
    if let Ok(verified) = verify_envelope(&bundle, &signer().1) {
        let t = verified.statement.predicate_type.clone();
        if let Ok(ok) = verify_attestation(&bundle, &signer().1, &expected(), &t) {
            assert_eq!(ok.subject, expected());
        }
    }
}

/// A signed native manifest predicate.
pub fn manifest_predicate(data: &[u8]) {
    if let Ok(verified) = verify_envelope(&signed_bundle(data), &signer().1)
        && let Ok(signed) = modelseal_verify::signed_manifest(&verified)
    {
        assert_eq!(signed.manifest.root(), signed.root);
        assert!(!signed.manifest.entries().is_empty());
    }
}

/// A signed OMS (v1.0 or legacy) predicate.
pub fn oms_predicate(data: &[u8]) {
    if let Ok(verified) = verify_envelope(&signed_bundle(data), &signer().1)
        && let Ok(signed) = modelseal_verify::oms::signed_oms(&verified)
    {
        assert!(!signed.resources.is_empty());
    }
}

/// A signed SLSA provenance predicate, parsed as the lineage walk parses it.
pub fn provenance(data: &[u8]) {
    let bundle = signed_bundle(data);
    let t = modelseal_core::provenance::SLSA_PROVENANCE_TYPE;
    if let Ok(ok) = verify_attestation(&bundle, &signer().1, &expected(), t)
        && let Ok(p) = ok.predicate::<modelseal_core::provenance::Provenance>()
    {
        for dependency in &p.build_definition.resolved_dependencies {
            let _ = modelseal_core::provenance::dependency_kind(dependency);
            for (algorithm, hex) in &dependency.digest {
                let _ = ArtifactDigest::from_entry(algorithm, hex);
            }
        }
    }
}

/// A signed verification summary, and whether it would be accepted.
pub fn vsa(data: &[u8]) {
    static POLICY: OnceLock<LineagePolicy> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        LineagePolicy::from_toml("[vsa]\naccept = true\n", Path::new("/nonexistent"))
            .expect("policy")
    });
    let bundle = signed_bundle(data);
    let t = modelseal_core::provenance::SLSA_VSA_TYPE;
    if let Ok(ok) = verify_attestation(&bundle, &signer().1, &expected(), t)
        && let Ok(summary) = ok.predicate::<modelseal_core::provenance::VerificationSummary>()
    {
        let _ =
            modelseal_lineage::vsa::acceptable(&summary, policy, std::time::SystemTime::now(), 0);
    }
}

/// A lineage policy file (key paths lead nowhere, so only the text is exercised).
pub fn policy_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = LineagePolicy::from_toml(text, Path::new("/nonexistent"));
    }
}

/// The admission server's configuration file.
pub fn webhook_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = modelseal_webhook::config::Config::from_toml(text, Path::new("/nonexistent"));
    }
}

/// An AdmissionReview body, and the models its object names.
pub fn admission_review(data: &[u8]) {
    if let Ok(review) = serde_json::from_slice::<modelseal_webhook::admission::Review>(data)
        && let Some(request) = review.request
        && let Ok((models, _)) = modelseal_webhook::admission::named_models(&request.object)
    {
        assert!(models.len() <= modelseal_webhook::admission::MAX_MODELS);
        for model in models {
            let _ = model.parse::<ArtifactDigest>();
        }
    }
}

/// A safetensors header: the first 8 bytes are the file size, the rest the header.
pub fn safetensors_header(data: &[u8]) {
    let Some((size, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let size = u64::from_le_bytes(*size);
    if let Ok((tensors, _)) = modelseal_verify::safetensors::parse_header("f", size, header) {
        let mut spans: Vec<_> = tensors.values().map(|t| t.range.clone()).collect();
        spans.sort_by_key(|r| r.start);
        // The tensors tile the data section exactly, as the safetensors package requires.
        let mut next = 8 + header.len() as u64;
        for span in &spans {
            assert_eq!(span.start, next, "a hole or an overlap accepted");
            assert!(span.start <= span.end);
            next = span.end;
        }
        assert_eq!(next, size, "bytes after the last tensor accepted");
    }
    safetensors_differential(size, header);
}

/// A header modelseal accepts is one the `safetensors` crate (the reader the Python
/// package wraps) accepts too, with the same tensors: names, dtypes, shapes and byte
/// ranges. Files whose data section would exceed 1 MiB are not built.
fn safetensors_differential(size: u64, header: &[u8]) {
    let Ok((tensors, _)) = modelseal_verify::safetensors::parse_header("f", size, header) else {
        return;
    };
    let Some(data) = size.checked_sub(8 + header.len() as u64) else {
        return;
    };
    if data > 1 << 20 {
        return;
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.resize(file.len() + data as usize, 0);
    let theirs = safetensors::SafeTensors::deserialize(&file).unwrap_or_else(|e| {
        panic!("modelseal accepted a header the safetensors crate refuses: {e}")
    });
    assert_eq!(theirs.len(), tensors.len(), "another tensor count");
    for (name, ours) in &tensors {
        let view = theirs
            .tensor(name)
            .unwrap_or_else(|e| panic!("{name}: not a tensor to the crate: {e}"));
        assert_eq!(
            format!("{:?}", view.dtype()),
            ours.dtype,
            "{name}: another dtype"
        );
        let shape: Vec<u64> = view.shape().iter().map(|d| *d as u64).collect();
        assert_eq!(shape, ours.shape, "{name}: another shape");
        let start = view.data().as_ptr() as u64 - file.as_ptr() as u64;
        let range = start..start + view.data().len() as u64;
        assert_eq!(range, ours.range, "{name}: other bytes");
    }
}

/// The JSON key audit: Go's folding rule is stricter than the exact one, and a document
/// either rule accepts is JSON serde reads.
pub fn json_keys(data: &[u8]) {
    use modelseal_core::json::{KeyRule, check_keys};
    let exact = check_keys(data, KeyRule::Exact).is_ok();
    let folded = check_keys(
        data,
        KeyRule::GoFolding {
            known: &["layers", "digest", "mediaType"],
        },
    )
    .is_ok();
    assert!(
        !folded || exact,
        "folding accepted what the exact rule refused"
    );
    if exact {
        assert!(
            serde_json::from_slice::<serde_json::Value>(data).is_ok(),
            "accepted a document serde cannot read"
        );
    }
}

/// A model with one file larger than an outboard group, signed once per process.
struct OutboardModel {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outboards: PathBuf,
    bundle: Bundle,
    bytes: Vec<u8>,
}

fn outboard_model() -> &'static OutboardModel {
    static MODEL: OnceLock<OutboardModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("m");
        std::fs::create_dir(&root).expect("mkdir");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(root.join("w.bin"), &bytes).expect("write");
        let signed = modelseal_core::sign_model(
            &root,
            &modelseal_core::SignOptions::default(),
            &signer().0,
            &modelseal_core::hash::NoProgress,
        )
        .expect("sign");
        let outboards = dir.path().join("m.sig.outboard");
        modelseal_core::outboard::write_all(&root, &signed.manifest, &outboards).expect("ob");
        OutboardModel {
            _dir: dir,
            root,
            outboards,
            bundle: signed.bundle,
            bytes,
        }
    })
}

/// An outboard tree file: whatever it holds, a read either fails or returns the bytes
/// that were signed.
pub fn outboard(data: &[u8]) {
    let m = outboard_model();
    let path = ManifestPath::parse("w.bin").expect("path");
    let file = modelseal_core::outboard::outboard_file(&m.outboards, &path);
    std::fs::write(&file, data).expect("write outboard");
    let Ok(reader) = modelseal_verify::loader::ModelReader::open(
        &m.root,
        &m.bundle,
        &signer().1,
        &VerifyOptions::default(),
        Some(&m.outboards),
    ) else {
        return;
    };
    let len = m.bytes.len() as u64;
    for range in [0..10, 65_536..140_000, len - 5..len] {
        if let Ok(read) = reader.read_range("w.bin", range.clone()) {
            let (a, b) = (range.start as usize, range.end as usize);
            assert_eq!(read, m.bytes[a..b], "unverified bytes handed out");
        }
    }
}

/// A certificate chain: 2-byte big-endian lengths, each followed by one DER certificate
/// (leaf first), checked against the test root and against the first certificate.
pub fn x509_chain(data: &[u8]) {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        modelseal_core::certificates_from_pem(include_str!("../../testdata/certs/root.pem"))
            .expect("root")
    });
    let mut chain = Vec::new();
    let mut rest = data;
    while chain.len() < 16 {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        chain.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    use modelseal_verify::certs::{ValidityTime, verify_chain};
    let at = ValidityTime::At(1_780_000_000);
    let _ = verify_chain(&chain, roots, at);
    if let Some(first) = chain.first() {
        let _ = verify_chain(
            &chain,
            std::slice::from_ref(first),
            ValidityTime::LeafIssuance,
        );
    }
}

/// An RFC 3161 timestamp token (DER) in a validly signed key bundle, through the
/// envelope's timestamp check against the public-good timestamp authorities: the token
/// is untrusted input that is parsed before any of it can be believed.
pub fn timestamp(data: &[u8]) {
    use base64::Engine as _;
    static TRUST: OnceLock<TrustPolicy> = OnceLock::new();
    let trust = TRUST.get_or_init(|| {
        let authorities = modelseal_verify::keyless::timestamp_authorities(None).expect("root");
        signer().1.clone().with_timestamp_authorities(authorities)
    });
    let mut bundle = signed_bundle(b"{}");
    bundle.verification_material.timestamp_verification_data = Some(serde_json::json!({
        "rfc3161Timestamps": [
            {"signedTimestamp": base64::engine::general_purpose::STANDARD.encode(data)}
        ]
    }));
    // No authority of the public-good root signed these bytes over this signature, so
    // nothing may pass; the point is that nothing panics, hangs or grows on the way.
    assert!(verify_envelope(&bundle, trust).is_err());
}

/// Digest and manifest path text: one spelling each, so what parses prints back the same.
pub fn digests_and_paths(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = text.parse::<ArtifactDigest>() {
        assert_eq!(d.to_string(), text);
    }
    if let Ok(p) = ManifestPath::parse(text) {
        assert_eq!(p.as_str(), text);
    }
}

/// A registry's layer bytes through the unpacker in every archive format (the first byte
/// picks tar, tar+gzip, tar+zstd or raw), and the rest also as reference and
/// `WWW-Authenticate` text: nothing may panic, every name handed out is a valid manifest
/// path, and what parses as a reference prints back the same.
pub fn oci_layer(data: &[u8]) {
    use modelseal_oci::layers::{LayerFormat, UnpackLimits, Unpacker};
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let format = match selector % 4 {
        0 => LayerFormat::Tar,
        1 => LayerFormat::TarGzip,
        2 => LayerFormat::TarZstd,
        _ => LayerFormat::Raw(modelseal_core::ManifestPath::parse("w.bin").expect("valid")),
    };
    let limits = UnpackLimits {
        max_files: 64,
        max_expansion: 16,
    };
    let mut unpacker = Unpacker::new(None, limits);
    let _ = unpacker.layer("fuzz", &format, rest.len() as u64, &mut &rest[..]);
    for entry in &unpacker.entries {
        assert!(modelseal_core::ManifestPath::parse(entry.path.as_str()).is_ok());
    }
    if let Ok(text) = std::str::from_utf8(rest) {
        // Docker Hub's official images print with the `library/` they are read as.
        if let Ok(reference) = modelseal_oci::Reference::parse(text)
            && reference.registry() != "docker.io"
        {
            assert_eq!(reference.to_string(), text);
        }
        let _ = modelseal_oci::auth::parse_challenge(text);
    }
}

/// A model of one 4 MiB + 3 KiB file (two whole-file pieces), signed natively and as
/// OMS shards of 1 MiB, signed once per process; each input gets its own copy.
struct ChangedModel {
    _dir: tempfile::TempDir,
    root: PathBuf,
    native: Bundle,
    shards: Bundle,
    bytes: Vec<u8>,
}

fn changed_model() -> &'static ChangedModel {
    static MODEL: OnceLock<ChangedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("m");
        std::fs::create_dir(&root).expect("mkdir");
        let bytes: Vec<u8> = (0..(4u32 << 20) + 3072)
            .map(|i| (i * 131 % 251) as u8)
            .collect();
        std::fs::write(root.join("w.bin"), &bytes).expect("write");
        let native = modelseal_core::sign_model(
            &root,
            &modelseal_core::SignOptions::default(),
            &signer().0,
            &modelseal_core::hash::NoProgress,
        )
        .expect("sign")
        .bundle;
        let ecdsa = SigningKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let options = modelseal_core::OmsSignOptions {
            name: None,
            method: modelseal_core::oms::OmsMethod::Shards { size: 1 << 20 },
            hash: modelseal_core::oms::OmsHash::Sha256,
            walk: modelseal_core::WalkOptions::default(),
            certificate_chain: None,
        };
        let shards = modelseal_core::sign_model_oms(
            &root,
            &options,
            &ecdsa,
            &modelseal_core::hash::NoProgress,
        )
        .expect("sign oms")
        .bundle;
        // Both signers trusted through one policy.
        let _ = ECDSA.set(ecdsa);
        ChangedModel {
            _dir: dir,
            root,
            native,
            shards,
            bytes,
        }
    })
}

static ECDSA: OnceLock<SigningKey> = OnceLock::new();

/// Verified reads of a file changed on disk after open: the input is a list of 8-byte
/// records, the first ones (high bit of byte 0 clear) byte changes `offset:u32, value`,
/// the rest reads `start:u32, len:u32`. Every read, whole-file or sharded, at any edge,
/// either fails or returns exactly the signed bytes.
pub fn changed_file_reads(data: &[u8]) {
    let m = changed_model();
    let trust = TrustPolicy::from_keys(vec![
        signer().0.verifying_key(),
        ECDSA.get().expect("set").verifying_key(),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("m");
    std::fs::create_dir(&root).expect("mkdir");
    let file = root.join("w.bin");
    std::fs::write(&file, &m.bytes).expect("write");
    let _ = &m.root;
    let readers: Vec<_> = [&m.native, &m.shards]
        .into_iter()
        .filter_map(|bundle| {
            modelseal_verify::loader::ModelReader::open(
                &root,
                bundle,
                &trust,
                &VerifyOptions::default(),
                None,
            )
            .ok()
        })
        .collect();
    assert_eq!(readers.len(), 2, "the untouched model opens");
    let mut bytes = m.bytes.clone();
    let len = bytes.len() as u64;
    let mut reads = Vec::new();
    for record in data.chunks_exact(8).take(64) {
        let a = u64::from(u32::from_le_bytes(record[..4].try_into().expect("4")));
        let b = u64::from(u32::from_le_bytes(record[4..].try_into().expect("4")));
        if record[0] & 0x80 == 0 && reads.is_empty() {
            let at = (a % len) as usize;
            bytes[at] = record[4];
        } else {
            let start = a % (len + 1);
            reads.push(start..(start + b % (len - start + 1)));
        }
    }
    std::fs::write(&file, &bytes).expect("rewrite");
    for reader in &readers {
        for range in &reads {
            if let Ok(read) = reader.read_range("w.bin", range.clone()) {
                let (a, b) = (range.start as usize, range.end as usize);
                assert_eq!(read, m.bytes[a..b], "unverified bytes handed out");
            }
        }
    }
}

/// Device key names and TPM key files: the bytes as a `pkcs11:`, `tpm:` and `awskms://`
/// name (each parser strict, so mostly refusals), and as a TSS2 key file, PEM or DER. A
/// TSS2 key that parses must have non-empty public and private parts and a parent the
/// loader accepts.
pub fn device_names(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        for prefix in ["", "pkcs11:", "awskms://"] {
            let name = format!("{prefix}{text}");
            let _ = modelseal_devices::Pkcs11Uri::parse(&name);
            if let Ok(parsed) = modelseal_devices::AwsKmsKeyName::parse(&name) {
                assert!(!parsed.key_id.is_empty());
            }
        }
    }
    for parsed in [
        modelseal_devices::tss2_key::Tss2Key::from_pem(data),
        modelseal_devices::tss2_key::Tss2Key::from_der(data),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!parsed.public.is_empty() && !parsed.private.is_empty());
        assert!(parsed.parent >> 24 == 0x81 || parsed.parent == modelseal_devices::tss2_key::OWNER);
    }
}

/// A public key as SPKI DER (how a certificate or a key file carries it) and a private key
/// as PEM: every algorithm, ML-DSA-65 included, parsed strictly. A key that parses checks
/// an arbitrary signature without panicking, and an ML-DSA key keeps the FIPS 204 length.
pub fn public_keys(data: &[u8]) {
    if let Ok(key) = modelseal_core::VerifyingKey::from_spki_der(data) {
        let (message, signature) = data.split_at(data.len() / 2);
        let _ = key.verify(message, signature);
        if key.algorithm() == modelseal_core::KeyAlgorithm::MlDsa65 {
            assert!(key.spki_der().len() > 1952);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = modelseal_core::SigningKey::from_pem(text, Some(b"passphrase"));
    }
}

/// A `sha256sum` list (`sign --from-digests`) and a stamp file (`sign --update`): both
/// untrusted input. A list that parses names each path once, and written back the way
/// `sha256sum` writes it, parses to the same files; a stamp file under a fixed key never
/// verifies from arbitrary bytes and never panics.
pub fn digest_lists_and_stamps(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(files) = modelseal_core::digest_list::parse_sha256sum(text)
    {
        let hex = |digest: &[u8; 32]| {
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let mut again = String::new();
        for (path, digest) in &files {
            let name = path.as_str();
            if name.contains('\n') {
                again.push('\\');
                again.push_str(&hex(digest));
                again.push_str("  ");
                again.push_str(&name.replace('\n', "\\n"));
            } else {
                again.push_str(&hex(digest));
                again.push_str("  ");
                again.push_str(name);
            }
            again.push('\n');
        }
        let reparsed = modelseal_core::digest_list::parse_sha256sum(&again)
            .expect("a list written back from a parsed list parses");
        assert_eq!(reparsed, files);
    }
    let key = stamps_key();
    if let Ok(stamps) = modelseal_core::stamps::Stamps::open(data, &key.verifying_key()) {
        // Only a signature by the key verifies; the fuzzer cannot forge one, but a seed
        // made with the key replays here.
        let _ = stamps.files.len();
    }
}

/// The fixed key the stamp seeds are signed with (its seed was made by `sign` with
/// `testdata/keys/vector-ed25519.pem`).
fn stamps_key() -> &'static modelseal_core::SigningKey {
    static KEY: std::sync::OnceLock<modelseal_core::SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        modelseal_core::SigningKey::from_pem(
            include_str!("../../testdata/keys/vector-ed25519.pem"),
            None,
        )
        .expect("the vector key parses")
    })
}
