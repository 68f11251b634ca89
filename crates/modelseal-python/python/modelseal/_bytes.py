"""safetensors bytes already in memory, verified against a signed file before use."""
from __future__ import annotations

import os

import numpy as np

from . import _tensors
from ._native import verify_safetensors_bytes


def load_bytes(data, framework: str, *, signature, key=None, policy=None, name=None,
               expected=None, device="cpu"):
    """The tensors of ``data``: copied once into fresh memory, and that copy verified
    (so that the bytes handed out are the bytes checked), then viewed."""
    fw = _tensors._framework(framework, device)
    raw = fw.empty(len(data))
    fw.buffer(raw)[:] = np.frombuffer(data, dtype=np.uint8)
    spans, _metadata = verify_safetensors_bytes(
        fw.buffer(raw), os.fspath(signature), _tensors._keys(key), _tensors._path(policy),
        name, expected)
    return {n: fw.place(fw.view(raw, start, end, dtype, shape))
            for n, dtype, shape, start, end in spans}
