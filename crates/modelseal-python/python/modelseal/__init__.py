"""Verify signed ML models, and read safetensors files with every byte verified.

    import modelseal
    modelseal.verify("my-model", "my-model.sig", key="release.pub")

    with modelseal.safe_open("my-model/model.safetensors", framework="numpy",
                             signature="my-model.sig", key="release.pub") as f:
        for name in f.keys():
            array = f.get_tensor(name)      # verified before it is returned

A tensor whose bytes differ from the signed ones raises VerificationError when (and
only when) it is read. The signature may cover the file alone or the model directory
holding it. Outboard trees (``modelseal outboard``) found at SIGNATURE.outboard make
each read cost in proportion to the tensor, not the file.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Union

import numpy as np

from ._native import SafeOpen as _SafeOpen
from ._native import VerificationError
from ._native import verify as _verify

__all__ = ["VerificationError", "load_file", "safe_open", "verify"]

PathLike = Union[str, "os.PathLike[str]"]
Keys = Optional[Union[PathLike, Iterable[PathLike]]]

# safetensors dtype names -> numpy dtypes (little-endian, as the format stores them).
_DTYPES = {
    "BOOL": np.dtype("bool"),
    "U8": np.dtype("<u1"), "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}


def _keys(key: Keys):
    if key is None:
        return None
    if isinstance(key, (str, os.PathLike)):
        return os.fspath(key)
    return [os.fspath(k) for k in key]


def verify(model: PathLike, signature: PathLike, key: Keys = None, policy: Optional[PathLike] = None,
           expected: Optional[str] = None) -> dict:
    """Verify every file of ``model`` against ``signature`` (by ``key``, a public key
    file or a list of them, or by the model publishers of a ``policy`` file). With
    ``expected="blake3:HEX"`` the signature must be about exactly that model.

    Returns what was verified; raises VerificationError (``err.args[1]`` is the failure
    kind, e.g. ``"files-mismatch"``) when the model is refused.
    """
    return _verify(os.fspath(model), os.fspath(signature), _keys(key),
                   os.fspath(policy) if policy is not None else None, expected)


def _array(dtype: str, shape: List[int], data, offset: int = 0) -> np.ndarray:
    if dtype not in _DTYPES:
        raise TypeError(f"dtype {dtype} has no numpy equivalent")
    np_dtype = _DTYPES[dtype]
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return np.frombuffer(data, dtype=np_dtype, count=count, offset=offset).reshape(shape)


class safe_open:
    """Like ``safetensors.safe_open``, with each tensor verified before it is returned."""

    def __init__(self, filename: PathLike, framework: str = "numpy", *, signature: PathLike,
                 key: Keys = None, policy: Optional[PathLike] = None,
                 outboard: Optional[PathLike] = None, expected: Optional[str] = None):
        if framework not in ("numpy", "np"):
            raise ValueError(f"framework {framework!r} is not supported; use 'numpy'")
        self._inner = _SafeOpen(os.fspath(filename), os.fspath(signature), _keys(key),
                                os.fspath(policy) if policy is not None else None,
                                os.fspath(outboard) if outboard is not None else None,
                                expected)

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc) -> bool:
        self._inner = None
        return False

    def _open(self) -> _SafeOpen:
        if self._inner is None:
            raise ValueError("the file is closed")
        return self._inner

    def keys(self) -> List[str]:
        return self._open().keys()

    def metadata(self) -> Dict[str, str]:
        return self._open().metadata()

    def get_tensor(self, name: str) -> np.ndarray:
        dtype, shape, data, offset = self._open().tensor(name)
        return _array(dtype, shape, data, offset=offset)


def load_file(filename: PathLike, *, signature: PathLike, key: Keys = None,
              policy: Optional[PathLike] = None, expected: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Like ``safetensors.numpy.load_file``: every tensor, with the whole file read once
    and verified with multi-threaded BLAKE3 before any array is made."""
    inner = safe_open(filename, signature=signature, key=key, policy=policy,
                      expected=expected)._open()
    data, tensors = inner.load_all()
    return {name: _array(dtype, shape, data, offset=start) for name, dtype, shape, start, _end in tensors}
