"""Loading a signed model through transformers or sentence-transformers, verified.

    model = modelseal.from_pretrained(AutoModel, "my-model", signature="my-model.sig",
                                      key="release.pub")

or, for any loader that takes a model folder:

    with modelseal.verified_model("my-model", signature="my-model.sig", key="release.pub") as path:
        model = SentenceTransformer(path)

Inside the block the loader sees a private folder holding a verified copy of every
signed file that is not safetensors (configs, tokenizers, code), so nothing it reads
can change after it was checked; each safetensors file there is an empty stand-in, and
``safetensors.safe_open``, ``safetensors.torch.load_file`` and ``safetensors.torch.load``
(wherever a module imported them) are replaced by verified ones that serve the signed
file instead. A loader that reads the stand-in another way gets an empty file and fails;
safetensors calls for any other file are refused while the block runs.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
from typing import Any, Dict, Iterator, Optional

import numpy as np

from . import _bytes, _tensors
from ._native import Model as _Model
from ._native import VerificationError

# One verified load at a time: the replacements are process-wide.
_LOCK = threading.Lock()


def _replace_everywhere(original, replacement, undo):
    """Points every module attribute bound to ``original`` at ``replacement``."""
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            if value is original:
                namespace[attr] = replacement
                undo.append((namespace, attr, original))


@contextlib.contextmanager
def verified_model(model_dir, *, signature, key=None, policy=None, expected=None,
                   outboard=None, links_within=None) -> Iterator[str]:
    """Yields a folder to hand to a loader: see the module's documentation."""
    model_dir = os.fspath(model_dir)
    trust = dict(signature=os.fspath(signature), key=_tensors._keys(key),
                 policy=_tensors._path(policy), outboard=_tensors._path(outboard),
                 expected=expected, links_within=_tensors._path(links_within))
    model = _Model(model_dir, trust["signature"], trust["key"], trust["policy"],
                   trust["outboard"], expected, trust["links_within"])
    # Every later read is pinned to the model verified now: a folder and signature swapped
    # for another model by the same signer (same names) between staging and loading is
    # refused instead of mixing this model's configs with that one's weights.
    trust["expected"] = model.root
    staging = tempfile.mkdtemp(prefix="modelseal-")
    served: Dict[str, str] = {}
    json_files = []
    try:
        for path, size in model.files():
            staged = os.path.join(staging, *path.split("/"))
            os.makedirs(os.path.dirname(staged), exist_ok=True)
            if path.endswith(".safetensors"):
                open(staged, "wb").close()
                served[os.path.realpath(staged)] = path
                continue
            data = np.empty(size, dtype=np.uint8)
            if size:
                model.read_file_into(path, data)
            with open(staged, "wb") as out:
                out.write(data.tobytes())
            if path.endswith(".json"):
                json_files.append((path, data.tobytes()))
        signed = {path for path, _ in model.files()}
        for path, data in json_files:
            _refuse_code_elsewhere(path, data, signed)
        with _LOCK, _patched(model_dir, served, trust):
            yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# How transformers and sentence-transformers find code for a class reference
# (`get_class_from_dynamic_module`): `REPO--module.Class` takes `module.py` from REPO (the
# hub, its cache, or a local folder of that name); otherwise `module.py` is joined onto
# the model folder, so an absolute or climbing module path leaves it. sentence-transformers
# then falls back to importing the module from `sys.path` (the working directory,
# PYTHONPATH, installed packages). Such code runs unsigned. Refused:
# - any string without spaces that holds `--` with a dot after it, anywhere in a signed
#   JSON file (free text with spaces is let through there);
# - where a class reference is read (`auto_map`, `custom_pipelines` `impl`, modules.json
#   `type`, a Router's `types`, WordEmbeddings' `tokenizer_class`), spaces or not: `--`,
#   or a module path that is not a plain name in the model folder;
# - where sentence-transformers imports it (`type`, `types`, `tokenizer_class`, Dense's
#   `activation_function`, CrossEncoder's `activation_fn`): a module that is not
#   installed in this Python's own library folders (standard library, site-packages),
#   unless it is one plain module (`mod.Class`, no package) whose `mod.py` is a signed
#   file: only that form is taken from the model folder; a dotted one is imported from
#   `sys.path` (the working directory, PYTHONPATH), whatever the model holds;
# - another model or folder to load from (`tokenizer_name_or_path`,
#   `audio_tokenizer_name_or_path`, any `*_name_or_path` but transformers' informational
#   `_name_or_path`; PEFT's `base_model_name_or_path` is a documented gap);
# - a file named outside the model (an absolute or climbing path) under a key that names
#   files or folders (`*_file`, `*_files`, `*_dir`, `*_path`, `*_folder`, `path`,
#   `subfolder`, `folder`, `cache_dir`, and the shard names of a `weight_map`):
#   `tokenizer_args`, `config_args`, a modules.json entry's `path` and index files are
#   read that way;
# - any file named inside keyword arguments sentence-transformers forwards to a loader
#   (`tokenizer_args`, `model_args`, `config_args`, `processor_kwargs`, `model_kwargs`,
#   `config_kwargs`, `tokenizer_kwargs`), relative or not, but a `subfolder`: transformers
#   opens a file its caller names as given, against the working directory, not the model.
#   And `.` as another model (`*_name_or_path`): loaders read it as the working directory;
# - an attention implementation named as a Hub repository (`attn_implementation`, with a
#   `/`): transformers fetches that kernel code from the Hub (the `kernels` package).
_REFERENCE_KEYS = {"impl", "type", "types", "tokenizer_class", "activation_function",
                   "activation_fn"}
_IMPORTED_KEYS = {"type", "types", "tokenizer_class", "activation_function", "activation_fn"}
_INFORMATIONAL_KEYS = {"_name_or_path", "base_model_name_or_path"}
_FILE_KEY_ENDINGS = ("_file", "_files", "_dir", "_path", "_folder")
_FILE_KEYS = {"path", "subfolder", "folder", "cache_dir", "weight_map"}
_FORWARDED_KWARGS = {"tokenizer_args", "model_args", "config_args", "processor_kwargs",
                     "model_kwargs", "config_kwargs", "tokenizer_kwargs"}


_KERNEL_KEYS = {"attn_implementation", "_attn_implementation"}


def _names_other_model(key: str, value) -> bool:
    if key in _KERNEL_KEYS:
        return isinstance(value, str) and "/" in value
    return (key.endswith("_name_or_path") and key not in _INFORMATIONAL_KEYS
            and value not in (None, ""))


def _leaves_model(value: str) -> bool:
    """A file name that an `os.path.join` onto the model folder would take out of it."""
    parts = value.replace("\\", "/").split("/")
    return value.startswith(("/", "\\", "~")) or ".." in parts or (
        len(value) > 1 and value[1] == ":")


def _names_code_elsewhere(value: str, reference: bool) -> bool:
    if not reference and any(c.isspace() for c in value):
        return False
    if "--" in value and "." in value.split("--")[-1]:
        return True
    if reference and "." in value:
        module = value.rsplit(".", 1)[0]
        return ("/" in module or "\\" in module or module.startswith(".") or ".." in module
                or any(c.isspace() for c in module))
    return False


def _installed(top: str) -> bool:
    """Whether module ``top`` is found in this Python's own library folders, before any
    folder a caller's working directory or PYTHONPATH adds."""
    import importlib.machinery
    import site
    import sysconfig
    if top in sys.builtin_module_names:
        return True
    folders = [sysconfig.get_paths().get(key)
               for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    folders += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    roots = {os.path.realpath(p) for p in folders if p}
    search = [p for p in sys.path if p and os.path.realpath(p) in roots]
    spec = importlib.machinery.PathFinder.find_spec(top, search)
    return spec is not None and (spec.origin is not None or bool(spec.submodule_search_locations))


def _imports_unsigned(value: str, signed) -> bool:
    """A sentence-transformers class reference whose module is neither a signed file of
    the model nor installed."""
    parts = value.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        return False
    in_model = len(parts) == 2 and parts[0] + ".py" in signed
    return not in_model and not _installed(parts[0])


def _refuse_code_elsewhere(path: str, data: bytes, signed=frozenset()) -> None:
    """A signed JSON file must not point a loader at code or files outside the model."""
    try:
        document = json.loads(data)
    except ValueError:
        return
    # (value, read as a class reference, imported, names files, forwarded to a loader)
    pending = [(document, False, False, False, False)]
    while pending:
        value, reference, imported, names_files, forwarded = pending.pop()
        if isinstance(value, dict):
            for key, inner in value.items():
                if _names_other_model(key, inner):
                    raise VerificationError(
                        f"{path}: {key} names another model or folder ({inner!r}), which "
                        "the loader would read unverified", "code-elsewhere")
                file_key = key.endswith(_FILE_KEY_ENDINGS) or key in _FILE_KEYS
                if (forwarded and file_key and key != "subfolder"
                        and isinstance(inner, str) and inner):
                    raise VerificationError(
                        f"{path}: {key} passes a file name to the loader ({inner!r}), which "
                        "it opens from the working directory, unsigned", "code-elsewhere")
                pending.append((inner, reference or key == "auto_map" or key in _REFERENCE_KEYS,
                                imported or key in _IMPORTED_KEYS,
                                names_files or file_key,
                                forwarded or key in _FORWARDED_KWARGS))
        elif isinstance(value, list):
            pending.extend((inner, reference, imported, names_files, forwarded)
                           for inner in value)
        elif isinstance(value, str) and names_files and _leaves_model(value):
            raise VerificationError(
                f"{path}: names a file outside the model ({value!r}), which the loader "
                "would read unsigned", "code-elsewhere")
        elif isinstance(value, str) and (
                _names_code_elsewhere(value, reference)
                or (imported and _imports_unsigned(value, signed))):
            raise VerificationError(
                f"{path}: names code outside the model ({value!r}), which the loader "
                "would run unsigned", "code-elsewhere")


@contextlib.contextmanager
def _patched(model_dir: str, served: Dict[str, str], trust: Dict[str, Any]):
    import safetensors
    import safetensors.torch

    file_trust = dict(trust)

    def signed_file(filename) -> str:
        path = served.get(os.path.realpath(os.fspath(filename)))
        if path is None:
            raise VerificationError(
                f"{filename}: not a signed file of the model being loaded", "not-signed")
        return os.path.join(model_dir, *path.split("/"))

    def safe_open(filename, framework="pt", device="cpu", **kwargs):
        kwargs.pop("backend", None)
        return _tensors.safe_open(signed_file(filename), framework, device, **file_trust)

    def load_file(filename, device="cpu"):
        return _tensors.load_file(signed_file(filename), "pt", device, **file_trust)

    def load(data):
        bytes_trust = {k: file_trust[k] for k in ("signature", "key", "policy", "expected")}
        last = None
        for path in sorted(set(served.values())):
            try:
                return _bytes.load_bytes(data, "pt", name=path, **bytes_trust)
            except VerificationError as err:
                last = err
        raise last or VerificationError("the model has no safetensors file", "not-signed")

    undo: list = []
    try:
        _replace_everywhere(safetensors.safe_open, safe_open, undo)
        _replace_everywhere(safetensors.torch.load_file, load_file, undo)
        _replace_everywhere(safetensors.torch.load, load, undo)
        yield
    finally:
        for namespace, attr, original in reversed(undo):
            namespace[attr] = original


def from_pretrained(loader, model_dir, *, signature, key=None, policy=None, expected=None,
                    outboard=None, links_within=None, **kwargs):
    """``loader.from_pretrained(folder, **kwargs)`` (transformers classes) or
    ``loader(folder, **kwargs)`` (``SentenceTransformer``), with every file verified."""
    with verified_model(model_dir, signature=signature, key=key, policy=policy,
                        expected=expected, outboard=outboard, links_within=links_within) as path:
        make = getattr(loader, "from_pretrained", loader)
        return make(path, **kwargs)
