"""safetensors files of a signed model, read verified, as numpy arrays or torch tensors.

The shapes of the calls are those of the ``safetensors`` package (``safe_open`` with
``keys``, ``metadata``, ``get_tensor``, ``get_slice``, ``offset_keys``; ``load_file``;
``load``), so loader code changes only in what it imports and in naming who must have
signed the model.

Where the bytes go: every byte is read once, by the native half with the GIL released,
straight into memory this module has just allocated (a numpy array or a torch tensor),
and verified there. With an outboard (``modelseal outboard``) a tensor costs a read of
its own 64 KiB groups; without one, the file is read and verified whole on open (the
only way to check a whole-file digest) and every tensor is a view of that memory.
"""
from __future__ import annotations

import math
import mmap
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ._native import SafeOpen as _Native

PathLike = Any

# Element sizes in bits: F4 and F6 pack below a byte.
_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "U16": 16, "I16": 16, "F16": 16, "BF16": 16,
    "U32": 32, "I32": 32, "F32": 32, "C64": 64,
    "U64": 64, "I64": 64, "F64": 64,
}


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def _keys(key):
    if key is None:
        return None
    if isinstance(key, (str, os.PathLike)):
        return os.fspath(key)
    return [os.fspath(k) for k in key]


def _fresh(nbytes: int) -> np.ndarray:
    """An uninitialised byte array. Large ones are an anonymous mapping of their own
    rather than numpy's allocation, which asks the kernel for huge pages: on hosts that
    reclaim freed huge pages (free page reporting in VMs), faulting them back in made a
    multi-GiB load take several times longer, and erratically."""
    if nbytes < (1 << 20):
        return np.empty(nbytes, dtype=np.uint8)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=np.uint8)


class _Numpy:
    """Arrays over numpy; BF16 and F8 through ml_dtypes when it is installed."""

    name = "np"
    _PLAIN = {
        "BOOL": "bool", "U8": "<u1", "I8": "<i1", "U16": "<u2", "I16": "<i2",
        "F16": "<f2", "U32": "<u4", "I32": "<i4", "F32": "<f4", "U64": "<u8",
        "I64": "<i8", "F64": "<f8", "C64": "<c8",
    }
    _ML = {
        "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
        "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
        "F8_E8M0": "float8_e8m0fnu",
    }

    def __init__(self, device):
        self._cache = {}
        if device not in (None, "cpu"):
            raise ValueError(f"numpy arrays live on the CPU; device={device!r} is not possible")

    def dtype(self, dtype: str):
        if dtype in self._PLAIN:
            return np.dtype(self._PLAIN[dtype])
        if dtype in self._ML:
            try:
                import ml_dtypes
            except ImportError:
                raise TypeError(f"dtype {dtype} needs the ml_dtypes package with numpy") from None
            return np.dtype(getattr(ml_dtypes, self._ML[dtype]))
        raise TypeError(f"dtype {dtype} has no numpy equivalent (it packs below a byte)")

    def empty(self, nbytes: int):
        return _fresh(nbytes)

    def buffer(self, raw):
        return raw

    def view(self, raw, start: int, end: int, dtype: str, shape: List[int]):
        np_dtype = self._cache.get(dtype) or self._cache.setdefault(dtype, self.dtype(dtype))
        return np.frombuffer(raw, np_dtype, (end - start) // np_dtype.itemsize, start).reshape(shape)

    def place(self, array):
        return array


class _Torch:
    """Tensors over torch, built on the CPU and moved to ``device`` afterwards."""

    name = "pt"

    def __init__(self, device):
        import torch

        self.torch = torch
        self.device = torch.device("cpu" if device is None else device)
        self.on_cpu = self.device.type == "cpu"
        names = {
            "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16",
            "F16": "float16", "BF16": "bfloat16", "U32": "uint32", "I32": "int32",
            "F32": "float32", "U64": "uint64", "I64": "int64", "F64": "float64",
            "C64": "complex64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
            "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
            "F8_E8M0": "float8_e8m0fnu", "F4": "float4_e2m1fn_x2",
        }
        self.dtypes = {k: getattr(torch, v) for k, v in names.items() if hasattr(torch, v)}

    def dtype(self, dtype: str):
        if dtype not in self.dtypes:
            raise TypeError(f"dtype {dtype} has no torch equivalent in torch {self.torch.__version__}")
        return self.dtypes[dtype]

    def empty(self, nbytes: int):
        return self.torch.empty(nbytes, dtype=self.torch.uint8)

    def buffer(self, raw):
        return raw.numpy()

    def view(self, raw, start: int, end: int, dtype: str, shape: List[int]):
        torch_dtype = self.dtypes.get(dtype) or self.dtype(dtype)
        if dtype == "F4":
            shape = list(shape)
            # float4_e2m1fn_x2 holds two values per element, as safetensors.torch reads it.
            if not shape or shape[-1] % 2:
                raise ValueError(f"F4 tensors need an even last dimension, got {shape}")
            shape[-1] //= 2
        if end == start:
            return self.torch.empty(shape, dtype=torch_dtype)
        piece = raw[start:end]
        size = torch_dtype.itemsize
        if size > 1 and start % size:
            # A view needs an aligned offset; an unaligned tensor (legal, if rare) is copied.
            piece = piece.clone()
        return piece.view(torch_dtype).reshape(shape)

    def place(self, tensor):
        return tensor if self.on_cpu else tensor.to(self.device)


def _framework(framework: str, device):
    if framework in ("np", "numpy"):
        return _Numpy(device)
    if framework in ("pt", "torch"):
        return _Torch(device)
    raise ValueError(f"framework {framework!r} is not supported; use 'pt' or 'np'")


class safe_slice:
    """A tensor not read yet: its shape and dtype, and ``[...]`` to read part of it.
    A run of whole rows along the first dimension reads only those rows' bytes."""

    def __init__(self, owner: "safe_open", name: str):
        self._owner = owner
        self._name = name
        self._dtype, self._shape, self._start, self._end = owner._open().info(name)

    def get_shape(self) -> List[int]:
        return list(self._shape)

    def get_dtype(self) -> str:
        return self._dtype

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self._shape)

    def __len__(self) -> int:
        return self._shape[0] if self._shape else 0

    def __getitem__(self, index):
        rows = self._rows(index)
        if rows is None or self._owner._whole is not None:
            return self._owner.get_tensor(self._name)[index]
        first, last, rest = rows
        per_row = (self._end - self._start) // self._shape[0]
        shape = [last - first] + list(self._shape[1:])
        tensor = self._owner._read(self._start + first * per_row, self._start + last * per_row,
                                   self._dtype, shape)
        return tensor[(slice(None),) + rest] if rest else tensor

    def _rows(self, index):
        """``(first, last, rest)`` when ``index`` starts with a step-1 slice of the first
        dimension and the rows are whole bytes; otherwise None."""
        if not self._shape or self._shape[0] == 0:
            return None
        index = index if isinstance(index, tuple) else (index,)
        head, rest = index[0], index[1:]
        if head is Ellipsis and not rest:
            return 0, self._shape[0], ()
        if not isinstance(head, slice) or head.step not in (None, 1):
            return None
        if any(i is None for i in rest):
            return None
        first, last, _ = head.indices(self._shape[0])
        if last <= first:
            return None
        bits = _BITS[self._dtype] * math.prod(self._shape[1:])
        if bits % 8:
            return None
        return first, last, tuple(rest)


class safe_open:
    """Like ``safetensors.safe_open``, with every tensor verified before it is returned.

    ``signature`` is the model's signature; who must have signed it is ``key`` (a public
    key file or a list of them) or the model publishers of a ``policy`` file.
    ``links_within`` names a directory the file's links may resolve into (a Hugging Face
    cache's repo folder: see ``modelseal.hub``).
    """

    def __init__(self, filename: PathLike, framework: str = "pt", device="cpu", *,
                 signature: PathLike, key=None, policy: Optional[PathLike] = None,
                 outboard: Optional[PathLike] = None, expected: Optional[str] = None,
                 links_within: Optional[PathLike] = None, whole: Optional[bool] = None,
                 backend: Optional[str] = None):
        # `backend` is safetensors' choice of mmap or pread: reads here are always
        # positioned reads into fresh memory, so it is accepted and has no effect.
        del backend
        self._fw = _framework(framework, device)
        self._inner = _Native(os.fspath(filename), os.fspath(signature), _keys(key),
                              _path(policy), _path(outboard), expected, _path(links_within))
        self._whole = None
        if whole if whole is not None else self._inner.whole:
            raw = self._fw.empty(self._inner.size)
            self._inner.fill(self._fw.buffer(raw))
            self._whole = raw
        else:
            self._inner.read_header()

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc) -> bool:
        self._inner = None
        self._whole = None
        return False

    def _open(self) -> _Native:
        if self._inner is None:
            raise ValueError("the file is closed")
        return self._inner

    @property
    def signature_format(self) -> str:
        """``native``, ``oms`` or ``oms-0.2``."""
        return self._open().format

    def keys(self) -> List[str]:
        return self._open().keys()

    def offset_keys(self) -> List[str]:
        """Tensor names in the order of their bytes in the file."""
        return [name for name, *_ in self._open().tensors()]

    def metadata(self) -> Optional[Dict[str, str]]:
        return self._open().metadata()

    def get_tensor(self, name: str):
        dtype, shape, start, end = self._open().info(name)
        return self._read(start, end, dtype, shape)

    def get_tensors(self) -> Dict[str, Any]:
        spans = self._open().tensors()
        if self._whole is None:
            return {name: self._read(start, end, dtype, shape)
                    for name, dtype, shape, start, end in spans}
        # Every tensor a view of the verified file: the per-tensor work is kept to the
        # view itself, which matters for files of many small tensors.
        fw, raw, views = self._fw, self._whole, {}
        view, place = fw.view, fw.place
        for name, dtype, shape, start, end in spans:
            views[name] = place(view(raw, start, end, dtype, shape))
        return views

    def get_slice(self, name: str) -> safe_slice:
        return safe_slice(self, name)

    def _read(self, start: int, end: int, dtype: str, shape: List[int]):
        fw = self._fw
        if self._whole is not None:
            return fw.place(fw.view(self._whole, start, end, dtype, shape))
        raw = fw.empty(end - start)
        if end > start:
            self._open().read_into(start, fw.buffer(raw))
        return fw.place(fw.view(raw, 0, end - start, dtype, shape))


def load_file(filename: PathLike, framework: str, device="cpu", **trust) -> Dict[str, Any]:
    """Every tensor of the file: the whole file read once into one buffer, verified on
    every core, and each tensor a view of it."""
    with safe_open(filename, framework, device, whole=True, **trust) as f:
        return f.get_tensors()
