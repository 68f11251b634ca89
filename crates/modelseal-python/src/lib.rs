//! The `modelseal` Python package's native half: model verification and verified
//! safetensors reads, over `modelseal-verify`. The Pythonic surface (`safe_open` as a
//! context manager, numpy arrays) is in `python/modelseal/__init__.py`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modelseal_core::hash::NoProgress;
use modelseal_core::{Bundle, VerifyingKey, outboard};
use modelseal_lineage::policy::{LineagePolicy, Role};
use modelseal_verify::loader::{ModelReader, ReadError};
use modelseal_verify::safetensors::{SafeTensors, SafetensorsError, TensorInfo};
use modelseal_verify::{
    TrustPolicy, VerifyError, VerifyOptions, signed_manifest, verify_envelope, verify_model,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

create_exception!(
    _native,
    VerificationError,
    PyException,
    "A model or tensor failed verification."
);

use modelseal_verify::error_chain as chain;

fn refused(kind: &str, message: String) -> PyErr {
    VerificationError::new_err((message, kind.to_owned()))
}

fn verify_error(err: VerifyError) -> PyErr {
    if let VerifyError::Files(mismatch) = &err {
        // Name every file, as the CLI does on its detail lines.
        let mut message = chain(&err);
        let modified: Vec<&str> = mismatch.modified.iter().map(|m| m.path.as_str()).collect();
        for (label, names) in [
            ("modified", modified),
            (
                "missing",
                mismatch.missing.iter().map(String::as_str).collect(),
            ),
            (
                "unsigned",
                mismatch.extra.iter().map(String::as_str).collect(),
            ),
        ] {
            if !names.is_empty() {
                message.push_str(&format!("; {label}: {}", names.join(", ")));
            }
        }
        return refused(err.kind(), message);
    }
    if err.is_refusal() {
        refused(err.kind(), chain(&err))
    } else {
        PyOSError::new_err(chain(&err))
    }
}

fn read_error(err: ReadError) -> PyErr {
    match err {
        ReadError::Io { .. } => PyOSError::new_err(chain(&err)),
        ReadError::NotSigned(_) | ReadError::OutOfBounds { .. } => {
            PyValueError::new_err(chain(&err))
        }
        ReadError::Tampered { .. } => refused("tampered", chain(&err)),
        ReadError::Outboard { .. } => refused("bad-outboard", chain(&err)),
        other => refused("read-refused", chain(&other)),
    }
}

fn safetensors_error(err: SafetensorsError) -> PyErr {
    match err {
        SafetensorsError::Read(e) => read_error(e),
        SafetensorsError::NoTensor { .. } => PyKeyError::new_err(chain(&err)),
        other => PyValueError::new_err(chain(&other)),
    }
}

/// `key` is a path or a list of paths; `policy` a policy file whose model publishers
/// are trusted (and whose `[models]` deny rules then apply to the model). Exactly one is
/// needed.
fn trust(
    key: Option<&Bound<'_, PyAny>>,
    policy: Option<PathBuf>,
) -> PyResult<(TrustPolicy, Option<LineagePolicy>)> {
    let keys: Vec<PathBuf> = match key {
        None => Vec::new(),
        Some(k) => match k.extract::<PathBuf>() {
            Ok(one) => vec![one],
            Err(_) => k.extract::<Vec<PathBuf>>()?,
        },
    };
    match (keys.is_empty(), policy) {
        (false, None) => {
            let loaded = keys
                .iter()
                .map(|path| {
                    let pem = std::fs::read_to_string(path).map_err(|e| {
                        PyOSError::new_err(format!("cannot read key {}: {e}", path.display()))
                    })?;
                    VerifyingKey::from_pem(&pem).map_err(|e| {
                        PyValueError::new_err(format!("key {}: {}", path.display(), chain(&e)))
                    })
                })
                .collect::<PyResult<Vec<_>>>()?;
            // Timestamps are judged as `modelseal verify --key` judges them: against the
            // built-in public-good authorities (a policy names its own).
            let authorities = modelseal_verify::keyless::timestamp_authorities(None)
                .map_err(|e| PyValueError::new_err(chain(&e)))?;
            Ok((
                TrustPolicy::from_keys(loaded).with_timestamp_authorities(authorities),
                None,
            ))
        }
        (true, Some(path)) => {
            let policy = LineagePolicy::read(&path).map_err(|e| {
                PyValueError::new_err(format!("policy {}: {}", path.display(), chain(&e)))
            })?;
            Ok((policy.trust_for(Role::ModelPublisher), Some(policy)))
        }
        _ => Err(PyValueError::new_err(
            "give key=... or policy=..., exactly one",
        )),
    }
}

/// `expected="blake3:HEX"` (or `sha256:HEX`): the artifact the caller expects.
fn expected_digest(text: Option<String>) -> PyResult<Option<modelseal_core::ArtifactDigest>> {
    text.map(|t| {
        t.parse()
            .map_err(|e| PyValueError::new_err(format!("expected={t:?}: {e}")))
    })
    .transpose()
}

/// The policy's rules for the model itself, as `modelseal verify --policy` applies them.
fn model_rules(
    policy: Option<&LineagePolicy>,
    name: Option<&str>,
    digest: &modelseal_core::ArtifactDigest,
) -> PyResult<()> {
    match policy.map(|p| modelseal_lineage::check_model(p, name, digest)) {
        Some(Err(failure)) => Err(refused(
            failure.kind(),
            format!("refused by policy: {failure}"),
        )),
        _ => Ok(()),
    }
}

fn read_bundle(signature: &Path) -> PyResult<Bundle> {
    Bundle::read(signature).map_err(|e| match e {
        modelseal_core::BundleError::Io(_) => PyOSError::new_err(format!(
            "cannot read {}: {}",
            signature.display(),
            chain(&e)
        )),
        other => refused(
            "malformed-bundle",
            format!("{}: {}", signature.display(), chain(&other)),
        ),
    })
}

/// Verifies every byte of `model` against `signature`; returns what was verified, or
/// raises `VerificationError` (with `.args[1]` the failure kind).
#[pyfunction]
#[pyo3(signature = (model, signature, key=None, policy=None, expected=None))]
fn verify<'py>(
    py: Python<'py>,
    model: PathBuf,
    signature: PathBuf,
    key: Option<&Bound<'py, PyAny>>,
    policy: Option<PathBuf>,
    expected: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let (trust, policy) = trust(key, policy)?;
    let bundle = read_bundle(&signature)?;
    let mut options = VerifyOptions::default();
    options.walk.exclude_files = vec![signature.clone()];
    options.expected = expected_digest(expected)?;
    let verified = py
        .detach(|| verify_model(&model, &bundle, &trust, &options, &NoProgress))
        .map_err(verify_error)?;
    let digest =
        modelseal_core::ArtifactDigest::from_entry(&verified.root.algorithm, &verified.root.hex)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
    model_rules(policy.as_ref(), verified.name.as_deref(), &digest)?;
    let out = PyDict::new(py);
    out.set_item("name", verified.name)?;
    out.set_item(
        "root",
        format!("{}:{}", verified.root.algorithm, verified.root.hex),
    )?;
    out.set_item("signer", verified.signer.fingerprint.to_string())?;
    out.set_item("algorithm", verified.signer.algorithm.to_string())?;
    out.set_item("files", verified.files)?;
    out.set_item("bytes", verified.bytes)?;
    Ok(out)
}

/// A tensor's name, dtype, shape, and byte range inside the file.
type TensorSpan = (String, String, Vec<u64>, u64, u64);

/// A safetensors file of a signed model, its header checked, its tensors verified as
/// they are read.
#[pyclass(frozen)]
struct SafeOpen {
    reader: ModelReader,
    file: String,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

#[pymethods]
impl SafeOpen {
    #[new]
    #[pyo3(signature = (path, signature, key=None, policy=None, outboard=None, expected=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        signature: PathBuf,
        key: Option<&Bound<'_, PyAny>>,
        policy: Option<PathBuf>,
        outboard: Option<PathBuf>,
        expected: Option<String>,
    ) -> PyResult<Self> {
        let (trust, policy) = trust(key, policy)?;
        let expected = expected_digest(expected)?;
        let bundle = read_bundle(&signature)?;
        let outboards =
            outboard.or_else(|| Some(outboard::outboard_dir(&signature)).filter(|d| d.is_dir()));
        let (reader, file) = py.detach(|| {
            open_either(
                &path,
                &signature,
                &bundle,
                &trust,
                outboards.as_deref(),
                expected,
            )
        })?;
        model_rules(policy.as_ref(), reader.name(), &reader.root())?;
        let st = SafeTensors::open(&reader, &file).map_err(safetensors_error)?;
        let tensors = st
            .keys()
            .into_iter()
            .map(|k| (k.to_owned(), st.info(k).expect("listed key").clone()))
            .collect();
        let metadata = st.metadata().clone();
        Ok(Self {
            reader,
            file,
            tensors,
            metadata,
        })
    }

    fn keys(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.metadata.clone()
    }

    /// `(dtype, shape, bytes, offset)` of one tensor: the tensor is `bytes[offset:]`.
    /// Its 64 KiB groups are read straight into the `bytes` object and verified there.
    fn tensor<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<(String, Vec<u64>, Bound<'py, PyBytes>, u64)> {
        let info = self.tensors.get(name).ok_or_else(|| {
            PyKeyError::new_err(format!("{}: no tensor named {name:?}", self.file))
        })?;
        let span = self
            .reader
            .verified_span(&self.file, info.range.clone())
            .map_err(read_error)?;
        let len = usize::try_from(span.end - span.start)
            .map_err(|_| PyValueError::new_err("tensor too large"))?;
        let mut outcome = Ok(());
        let bytes = PyBytes::new_with(py, len, |buf| {
            outcome = self.reader.read_span_into(&self.file, span.clone(), buf);
            Ok(())
        })?;
        outcome.map_err(read_error)?;
        Ok((
            info.dtype.clone(),
            info.shape.clone(),
            bytes,
            info.range.start - span.start,
        ))
    }

    /// The whole file, read once straight into a `bytes` object and verified with
    /// multi-threaded BLAKE3, and each tensor's `(name, dtype, shape, start, end)`.
    fn load_all<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Vec<TensorSpan>)> {
        let entry = self
            .reader
            .entries()
            .iter()
            .find(|e| e.path.as_str() == self.file)
            .expect("opened file is signed");
        let size =
            usize::try_from(entry.size).map_err(|_| PyValueError::new_err("file too large"))?;
        let expected = *entry.blake3.as_bytes();
        let handle = self.reader.open_file(&self.file).map_err(read_error)?;
        let mut outcome: Result<(), ReadError> = Ok(());
        let bytes = PyBytes::new_with(py, size, |buf| {
            outcome = read_and_verify(handle, &self.file, buf, &expected);
            Ok(())
        })?;
        outcome.map_err(read_error)?;
        let tensors = self
            .tensors
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    t.dtype.clone(),
                    t.shape.clone(),
                    t.range.start,
                    t.range.end,
                )
            })
            .collect();
        Ok((bytes, tensors))
    }
}

/// Reads `buf.len()` bytes of `path` into `buf` and checks them against `expected`.
/// Reading piece `i + 1` overlaps hashing piece `i`, so the check costs little more
/// than the read itself.
fn read_and_verify(
    handle: std::fs::File,
    name: &str,
    buf: &mut [u8],
    expected: &[u8; 32],
) -> Result<(), ReadError> {
    use std::io::Read;
    const PIECE: usize = 32 << 20;
    let io = |source| ReadError::Io {
        path: name.to_owned(),
        source,
    };
    let mut file = handle;
    let mut hasher = blake3::Hasher::new();
    let (mut done, mut rest) = buf.split_at_mut(0);
    while !rest.is_empty() || !done.is_empty() {
        let take = rest.len().min(PIECE);
        let (next, after) = rest.split_at_mut(take);
        let (read, ()) = rayon::join(
            || file.read_exact(next),
            || {
                hasher.update(done);
            },
        );
        read.map_err(io)?;
        done = next;
        rest = after;
    }
    if hasher.finalize().as_bytes() != expected {
        return Err(ReadError::Tampered {
            path: name.to_owned(),
            offset: 0,
        });
    }
    Ok(())
}

/// The signature covers the file's directory (the file is one of its files) or the file
/// alone. It is read as a single-file signature only when it lists exactly this one file:
/// a directory signature is never weakened to "this file matched", so an unsigned file
/// beside the weights is refused here exactly as `verify` refuses it.
fn open_either(
    path: &Path,
    signature: &Path,
    bundle: &Bundle,
    trust: &TrustPolicy,
    outboards: Option<&Path>,
    expected: Option<modelseal_core::ArtifactDigest>,
) -> PyResult<(ModelReader, String)> {
    let mut options = VerifyOptions::default();
    options.walk.exclude_files = vec![signature.to_path_buf()];
    options.expected = expected;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            PyValueError::new_err(format!("{} has no usable file name", path.display()))
        })?
        .to_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Read as a file-alone signature only when the signature lists just this file; the
    // signature is looked at again only on that path, not on the common one.
    let lists_only_this_file = || {
        verify_envelope(bundle, trust)
            .and_then(|v| signed_manifest(&v))
            .is_ok_and(
                |signed| matches!(signed.manifest.entries(), [only] if only.path.as_str() == name),
            )
    };
    match ModelReader::open(&parent, bundle, trust, &options, outboards) {
        Ok(reader) if reader.size(&name).is_ok() => Ok((reader, name)),
        Ok(_) | Err(VerifyError::Files(_)) if lists_only_this_file() => {
            let reader = ModelReader::open(path, bundle, trust, &options, outboards)
                .map_err(verify_error)?;
            Ok((reader, name))
        }
        Ok(_) => Err(VerificationError::new_err((
            format!("{name} is not among the files the signature covers"),
            "not-signed",
        ))),
        Err(other) => Err(verify_error(other)),
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_class::<SafeOpen>()?;
    m.add("VerificationError", m.py().get_type::<VerificationError>())?;
    Ok(())
}
