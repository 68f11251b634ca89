"""``safetensors.torch``, verified: the same calls, plus who must have signed the model.

    from modelseal.torch import load_file
    state = load_file("model/model.safetensors", signature="model.sig", key="release.pub")
"""
from __future__ import annotations

from typing import Dict

from . import _tensors
from ._bytes import load_bytes
from ._tensors import safe_slice

__all__ = ["load", "load_file", "safe_open", "safe_slice"]


def safe_open(filename, framework: str = "pt", device="cpu", **trust) -> _tensors.safe_open:
    """``safetensors.safe_open`` with tensors verified before they are returned."""
    return _tensors.safe_open(filename, framework, device, **trust)


def load_file(filename, device="cpu", **trust) -> Dict[str, "torch.Tensor"]:  # noqa: F821
    """``safetensors.torch.load_file``: every tensor, the file read once and verified."""
    return _tensors.load_file(filename, "pt", device, **trust)


def load(data: bytes, **trust) -> Dict[str, "torch.Tensor"]:  # noqa: F821
    """``safetensors.torch.load``: tensors out of bytes in memory, which must be a signed
    file (``name=`` which one, when the signature covers several)."""
    return load_bytes(data, "pt", **trust)
