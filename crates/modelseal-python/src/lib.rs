//! The `modelseal` Python package's native half: model verification and verified
//! safetensors reads, over `modelseal-verify`. The Pythonic surface (`safe_open` as a
//! context manager, numpy arrays) is in `python/modelseal/__init__.py`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modelseal_core::hash::NoProgress;
use modelseal_core::{Bundle, VerifyingKey, outboard};
use modelseal_policy::LineagePolicy;
use modelseal_verify::loader::{Granule, ModelReader, ReadError};
use modelseal_verify::safetensors::{self, SafetensorsError};
use modelseal_verify::{SignatureFormat, TrustPolicy, Verifier, VerifyError, VerifyOptions};
use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

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

/// The verifier every call here says yes through. `key` is a path or a list of paths;
/// `policy` a policy file whose model publishers are trusted (and whose `[models]` rules
/// then apply to the model); exactly one is needed. The signature file is left out of
/// the walk (it may lie inside the model); `expected` is the artifact the caller
/// expects; `links_within` where links may resolve.
fn verifier(
    key: Option<&Bound<'_, PyAny>>,
    policy: Option<PathBuf>,
    signature: &Path,
    expected: Option<String>,
    links_within: Option<PathBuf>,
) -> PyResult<Verifier> {
    verifier_for(
        key,
        policy,
        std::slice::from_ref(&signature.to_path_buf()),
        expected,
        links_within,
    )
}

/// [`verifier`] for several signature files, all left out of the walk.
fn verifier_for(
    key: Option<&Bound<'_, PyAny>>,
    policy: Option<PathBuf>,
    signatures: &[PathBuf],
    expected: Option<String>,
    links_within: Option<PathBuf>,
) -> PyResult<Verifier> {
    let mut options = VerifyOptions::default();
    options.walk.exclude_files = signatures.to_vec();
    options.walk.links_within = links_within;
    options.expected = expected_digest(expected)?;
    trusting(key, policy, options)
}

fn trusting(
    key: Option<&Bound<'_, PyAny>>,
    policy: Option<PathBuf>,
    options: VerifyOptions,
) -> PyResult<Verifier> {
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
            let trust = TrustPolicy::from_keys(loaded).with_timestamp_authorities(authorities);
            Ok(Verifier::new(trust).with_options(options))
        }
        (true, Some(path)) => {
            let policy = LineagePolicy::read(&path).map_err(|e| {
                PyValueError::new_err(format!("policy {}: {}", path.display(), chain(&e)))
            })?;
            Ok(policy.verifier(options))
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

/// Verifies every byte of `model` against `signatures` (one, or co-signatures whose
/// signers a policy counts); returns what was verified, or raises `VerificationError`
/// (with `.args[1]` the failure kind).
#[pyfunction]
#[pyo3(signature = (model, signatures, key=None, policy=None, expected=None, links_within=None))]
fn verify<'py>(
    py: Python<'py>,
    model: PathBuf,
    signatures: Vec<PathBuf>,
    key: Option<&Bound<'py, PyAny>>,
    policy: Option<PathBuf>,
    expected: Option<String>,
    links_within: Option<PathBuf>,
) -> PyResult<Bound<'py, PyDict>> {
    if signatures.is_empty() {
        return Err(PyValueError::new_err("no signature given"));
    }
    let verifier = verifier_for(key, policy, &signatures, expected, links_within)?;
    let bundles = signatures
        .iter()
        .map(|path| read_bundle(path))
        .collect::<PyResult<Vec<_>>>()?;
    let verified = py
        .detach(|| verifier.verify_all(&model, &bundles, &NoProgress))
        .map_err(verify_error)?
        .model;
    let out = PyDict::new(py);
    out.set_item(
        "signers",
        verified
            .signers
            .iter()
            .map(|s| s.fingerprint.to_string())
            .collect::<Vec<_>>(),
    )?;
    if let Some(count) = &verified.signer_count {
        out.set_item("counted", count.counted.clone())?;
        out.set_item("threshold", count.threshold)?;
    }
    out.set_item("name", verified.name)?;
    out.set_item("root", verified.root.to_string())?;
    out.set_item("signer", verified.signer.fingerprint.to_string())?;
    out.set_item("algorithm", verified.signer.algorithm.to_string())?;
    out.set_item("format", format_name(verified.format))?;
    out.set_item("files", verified.files)?;
    out.set_item("bytes", verified.bytes)?;
    Ok(out)
}

/// A tensor's name, dtype, shape, and byte range inside the file.
type TensorSpan = (String, String, Vec<u64>, u64, u64);

/// A writable, contiguous byte buffer of the caller (a numpy array or a torch tensor's
/// numpy view), filled with the GIL released.
struct Destination(PyBuffer<u8>);

impl Destination {
    fn of(buffer: &Bound<'_, PyAny>) -> PyResult<Self> {
        let buf = PyBuffer::<u8>::get(buffer)?;
        if buf.readonly() || !buf.is_c_contiguous() {
            return Err(PyValueError::new_err(
                "the destination must be a writable, contiguous byte buffer",
            ));
        }
        Ok(Self(buf))
    }

    /// Runs `fill` on the buffer's bytes with the GIL released.
    fn fill<T: Send>(&self, py: Python<'_>, fill: impl FnOnce(&mut [u8]) -> T + Send) -> T {
        let ptr = self.0.buf_ptr() as usize;
        let len = self.0.len_bytes();
        py.detach(move || {
            // SAFETY: the buffer stays exported (so neither freed nor resized) while
            // `self.0` lives, which outlasts this call; it was checked writable and
            // contiguous, `len` is its size in bytes, and the Python side hands in a
            // buffer it has just allocated and shares with no other thread.
            let bytes = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len) };
            fill(bytes)
        })
    }
}

/// A safetensors file of a signed model, its header checked, its tensors verified as
/// they are read: range by range with an outboard, else the whole file once, into a
/// buffer the caller provides (`fill`), which every tensor is then a view of.
#[pyclass(frozen)]
struct SafeOpen {
    reader: ModelReader,
    file: String,
    header: std::sync::OnceLock<safetensors::Header>,
}

#[pymethods]
impl SafeOpen {
    #[new]
    #[pyo3(signature = (path, signature, key=None, policy=None, outboard=None, expected=None, links_within=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        signature: PathBuf,
        key: Option<&Bound<'_, PyAny>>,
        policy: Option<PathBuf>,
        outboard: Option<PathBuf>,
        expected: Option<String>,
        links_within: Option<PathBuf>,
    ) -> PyResult<Self> {
        let verifier = verifier(key, policy, &signature, expected, links_within)?;
        let bundle = read_bundle(&signature)?;
        let outboards =
            outboard.or_else(|| Some(outboard::outboard_dir(&signature)).filter(|d| d.is_dir()));
        let (reader, file) =
            py.detach(|| open_either(&path, &bundle, &verifier, outboards.as_deref()))?;
        Ok(Self {
            reader,
            file,
            header: std::sync::OnceLock::new(),
        })
    }

    /// The file's signed size.
    #[getter]
    fn size(&self) -> PyResult<u64> {
        self.reader.size(&self.file).map_err(read_error)
    }

    /// True when the file can only be verified whole (no outboard; an OMS `files`
    /// digest or a shard as large as the file): the caller then gives `fill` a buffer
    /// of `size` bytes, and tensors are views of it.
    #[getter]
    fn whole(&self) -> PyResult<bool> {
        let granule = self.reader.granule(&self.file).map_err(read_error)?;
        Ok(!matches!(granule, Granule::Bytes(b) if b <= outboard::BLOCK_BYTES))
    }

    /// Reads and checks the header by verified range reads (outboard mode).
    fn read_header(&self, py: Python<'_>) -> PyResult<()> {
        if self.header.get().is_some() {
            return Ok(());
        }
        let header = py.detach(|| -> Result<safetensors::Header, SafetensorsError> {
            let size = self.reader.size(&self.file)?;
            // The first group holds the length prefix and, usually, the whole header:
            // one verified read of it, and a second only for a longer header.
            let first = self
                .reader
                .read_range(&self.file, 0..outboard::BLOCK_BYTES.min(size))?;
            if first.len() < 8 {
                return safetensors::parse_file(&self.file, &first);
            }
            let len = u64::from_le_bytes(first[..8].try_into().expect("8 bytes"));
            if len > safetensors::MAX_HEADER_BYTES || len > size - 8 {
                return Err(SafetensorsError::HeaderLength {
                    path: self.file.clone(),
                    len,
                });
            }
            let end = 8 + len as usize;
            if end <= first.len() {
                return safetensors::parse_header(&self.file, size, &first[8..end]);
            }
            let header = self.reader.read_range(&self.file, 8..8 + len)?;
            safetensors::parse_header(&self.file, size, &header)
        });
        let _ = self.header.set(header.map_err(safetensors_error)?);
        Ok(())
    }

    /// Reads the whole file into `buffer` (exactly `size` bytes), verifies it on every
    /// core with the GIL released, and checks the header from those verified bytes.
    fn fill(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<()> {
        let dest = Destination::of(buffer)?;
        let header = dest.fill(py, |all| -> Result<safetensors::Header, SafetensorsError> {
            let size = self.reader.size(&self.file)?;
            if all.len() as u64 != size {
                return Err(ReadError::OutOfBounds {
                    path: self.file.clone(),
                    start: 0,
                    end: all.len() as u64,
                    size,
                }
                .into());
            }
            self.reader.read_into(&self.file, 0, all)?;
            safetensors::parse_file(&self.file, all)
        });
        let _ = self.header.set(header.map_err(safetensors_error)?);
        Ok(())
    }

    /// Reads `len(buffer)` verified bytes of the file from `start` into `buffer`, with
    /// the GIL released: only the 64 KiB groups the range touches are read.
    fn read_into(&self, py: Python<'_>, start: u64, buffer: &Bound<'_, PyAny>) -> PyResult<()> {
        let dest = Destination::of(buffer)?;
        dest.fill(py, |buf| self.reader.read_into(&self.file, start, buf))
            .map_err(read_error)
    }

    fn keys(&self) -> PyResult<Vec<String>> {
        Ok(self.parsed()?.0.keys().cloned().collect())
    }

    fn metadata(&self) -> PyResult<BTreeMap<String, String>> {
        Ok(self.parsed()?.1.clone())
    }

    /// Every tensor's `(name, dtype, shape, start, end)`, `start..end` its bytes in the
    /// file, in file order.
    fn tensors(&self) -> PyResult<Vec<TensorSpan>> {
        let mut spans: Vec<TensorSpan> = self
            .parsed()?
            .0
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
        spans.sort_by_key(|t| t.3);
        Ok(spans)
    }

    /// One tensor's `(dtype, shape, start, end)`.
    fn info(&self, name: &str) -> PyResult<(String, Vec<u64>, u64, u64)> {
        let t = self.parsed()?.0.get(name).ok_or_else(|| {
            PyKeyError::new_err(format!("{}: no tensor named {name:?}", self.file))
        })?;
        Ok((t.dtype.clone(), t.shape.clone(), t.range.start, t.range.end))
    }

    /// The signature format: `native`, `oms` or `oms-0.2`.
    #[getter]
    fn format(&self) -> &'static str {
        format_name(self.reader.format())
    }
}

impl SafeOpen {
    fn parsed(&self) -> PyResult<&safetensors::Header> {
        self.header
            .get()
            .ok_or_else(|| PyValueError::new_err("the header has not been read"))
    }
}

fn format_name(format: SignatureFormat) -> &'static str {
    match format {
        SignatureFormat::Native => "native",
        SignatureFormat::Oms => "oms",
        SignatureFormat::OmsLegacy => "oms-0.2",
        _ => "other",
    }
}

/// The signature covers a directory the file is in (the file is one of its files) or the
/// file alone. The directory is the outermost one under which the file's path is a name
/// the signature lists, and only that one is tried: a copy of the model laid out deeper
/// (which would verify, and serve another signed file's bytes under this name) is never
/// reached. It is read as a single-file signature only when it lists exactly this one
/// file: a directory signature is never weakened to "this file matched", so an unsigned
/// file beside the weights is refused here exactly as `verify` refuses it.
fn open_either(
    path: &Path,
    bundle: &Bundle,
    verifier: &Verifier,
    outboards: Option<&Path>,
) -> PyResult<(ModelReader, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            PyValueError::new_err(format!("{} has no usable file name", path.display()))
        })?
        .to_owned();
    let signed = verifier.read_signature(bundle).map_err(verify_error)?;
    let mut model = None;
    let mut inner = PathBuf::from(&name);
    for folder in path.ancestors().skip(1) {
        if let Some(rel) = inner.to_str().filter(|rel| signed.lists(rel)) {
            let folder = if folder.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                folder.to_path_buf()
            };
            model = Some((folder, rel.to_owned()));
        }
        match folder.file_name() {
            Some(step) => inner = Path::new(step).join(&inner),
            None => break,
        }
    }
    let Some((folder, rel)) = model else {
        if signed.lists_only(&name) {
            let reader = verifier
                .open(path, bundle, outboards)
                .map_err(verify_error)?;
            return Ok((reader, name));
        }
        return Err(VerificationError::new_err((
            format!("{name} is not among the files the signature covers"),
            "not-signed",
        )));
    };
    match verifier.open(&folder, bundle, outboards) {
        Ok(reader) if reader.size(&rel).is_ok() => Ok((reader, rel)),
        Ok(_) | Err(VerifyError::Files(_) | VerifyError::WrongScope { .. })
            if signed.lists_only(&name) =>
        {
            let reader = verifier
                .open(path, bundle, outboards)
                .map_err(verify_error)?;
            Ok((reader, name))
        }
        Ok(_) => Err(VerificationError::new_err((
            format!("{rel} is not among the files the signature covers"),
            "not-signed",
        ))),
        Err(other) => Err(verify_error(other)),
    }
}

/// A signed model directory opened for verified reads: signature, signer and file set
/// checked, no byte hashed yet.
#[pyclass(frozen)]
struct Model {
    reader: ModelReader,
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (root, signature, key=None, policy=None, outboard=None, expected=None, links_within=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        root: PathBuf,
        signature: PathBuf,
        key: Option<&Bound<'_, PyAny>>,
        policy: Option<PathBuf>,
        outboard: Option<PathBuf>,
        expected: Option<String>,
        links_within: Option<PathBuf>,
    ) -> PyResult<Self> {
        let verifier = verifier(key, policy, &signature, expected, links_within)?;
        let bundle = read_bundle(&signature)?;
        let outboards =
            outboard.or_else(|| Some(outboard::outboard_dir(&signature)).filter(|d| d.is_dir()));
        let reader = py
            .detach(|| verifier.open(&root, &bundle, outboards.as_deref()))
            .map_err(verify_error)?;
        Ok(Self { reader })
    }

    /// The signed files' `(path, size)`, sorted by path.
    fn files(&self) -> Vec<(String, u64)> {
        self.reader
            .files()
            .map(|(p, size)| (p.to_owned(), size))
            .collect()
    }

    /// Reads the signed file `path` whole into `buffer` (exactly its size) and verifies
    /// it, with the GIL released.
    fn read_file_into(
        &self,
        py: Python<'_>,
        path: &str,
        buffer: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let dest = Destination::of(buffer)?;
        dest.fill(py, |buf| self.reader.read_into(path, 0, buf))
            .map_err(read_error)
    }

    /// `blake3:HEX` (native) or `sha256:HEX` (OMS): the signed model's identity.
    #[getter]
    fn root(&self) -> String {
        self.reader.root().to_string()
    }

    /// The signature format: `native`, `oms` or `oms-0.2`.
    #[getter]
    fn format(&self) -> &'static str {
        format_name(self.reader.format())
    }
}

/// Verifies that `buffer` holds, byte for byte, the signed file `name` (or the
/// signature's only file) of a trusted model, with the GIL released; returns its
/// safetensors tensors `(name, dtype, shape, start, end)` read from those bytes.
#[pyfunction]
#[pyo3(signature = (buffer, signature, key=None, policy=None, name=None, expected=None))]
fn verify_safetensors_bytes(
    py: Python<'_>,
    buffer: &Bound<'_, PyAny>,
    signature: PathBuf,
    key: Option<&Bound<'_, PyAny>>,
    policy: Option<PathBuf>,
    name: Option<String>,
    expected: Option<String>,
) -> PyResult<(Vec<TensorSpan>, BTreeMap<String, String>)> {
    let verifier = verifier(key, policy, &signature, expected, None)?;
    let bundle = read_bundle(&signature)?;
    let dest = Destination::of(buffer)?;
    let (_, header) = dest
        .fill(py, |data| {
            let verified = verifier
                .verify_bytes(&bundle, name.as_deref(), data)
                .map_err(verify_error_send)?;
            let header = safetensors::parse_file(&verified.path, data)
                .map_err(|e| (String::from("malformed"), chain(&e)))?;
            Ok::<_, (String, String)>((verified, header))
        })
        .map_err(|(kind, message)| match kind.as_str() {
            "malformed" => PyValueError::new_err(message),
            _ => refused(&kind, message),
        })?;
    let mut spans: Vec<TensorSpan> = header
        .0
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.dtype.clone(),
                t.shape.clone(),
                t.range.start,
                t.range.end,
            )
        })
        .collect();
    spans.sort_by_key(|t| t.3);
    Ok((spans, header.1))
}

/// A refusal as plain data, to cross back from a thread without the GIL.
fn verify_error_send(err: VerifyError) -> (String, String) {
    (err.kind().to_owned(), chain(&err))
}

/// Runs the `modelseal` command line `argv` (`argv[0]` is the program name) in this
/// process, with the GIL released, and returns its exit status: the console script.
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> u8 {
    py.detach(move || modelseal_cli::run(argv))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(verify_safetensors_bytes, m)?)?;
    m.add_class::<SafeOpen>()?;
    m.add_class::<Model>()?;
    m.add("VerificationError", m.py().get_type::<VerificationError>())?;
    Ok(())
}
