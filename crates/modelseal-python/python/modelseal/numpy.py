"""``safetensors.numpy``, verified: the same calls, plus who must have signed the model."""
from __future__ import annotations

from typing import Dict

import numpy as np

from . import _tensors
from ._bytes import load_bytes
from ._tensors import safe_slice

__all__ = ["load", "load_file", "safe_open", "safe_slice"]


def safe_open(filename, framework: str = "np", device="cpu", **trust) -> _tensors.safe_open:
    """``safetensors.safe_open`` with arrays verified before they are returned."""
    return _tensors.safe_open(filename, framework, device, **trust)


def load_file(filename, **trust) -> Dict[str, np.ndarray]:
    """``safetensors.numpy.load_file``: every array, the file read once and verified."""
    return _tensors.load_file(filename, "np", "cpu", **trust)


def load(data: bytes, **trust) -> Dict[str, np.ndarray]:
    """``safetensors.numpy.load``: arrays out of bytes in memory, which must be a signed
    file (``name=`` which one, when the signature covers several)."""
    return load_bytes(data, "np", **trust)
