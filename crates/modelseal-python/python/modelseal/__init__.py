"""Verify signed ML models, and read safetensors files with every byte verified.

    import modelseal
    modelseal.verify("my-model", "my-model.sig", key="release.pub")

    from modelseal.torch import load_file, safe_open      # or modelseal.numpy
    state = load_file("my-model/model.safetensors", signature="my-model.sig", key="release.pub")
    with safe_open("my-model/model.safetensors", "pt", signature="my-model.sig",
                   key="release.pub") as f:
        tensor = f.get_tensor("embed.weight")       # verified before it is returned

The signature may be native (modelseal) or OMS (model-signing), and may cover the file
alone or the model directory holding it. Outboard trees (``modelseal outboard``) found
at SIGNATURE.outboard make each tensor cost in proportion to itself; without them the
file is verified whole, once, when opened. ``modelseal.hub`` finds and verifies models
in a Hugging Face cache; ``modelseal.verified_model`` makes transformers and
sentence-transformers load a model only through verified reads.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, Optional, Union

import numpy as np

from . import _tensors
from ._native import VerificationError
from ._native import verify as _verify
from ._tensors import safe_open as _safe_open
from ._tensors import safe_slice
from .integrations import from_pretrained, verified_model

__all__ = ["VerificationError", "from_pretrained", "load_file", "safe_open", "safe_slice",
           "verified_model", "verify"]

PathLike = Union[str, "os.PathLike[str]"]
Keys = Optional[Union[PathLike, Iterable[PathLike]]]


def _keys(key: Keys):
    if key is None:
        return None
    if isinstance(key, (str, os.PathLike)):
        return os.fspath(key)
    return [os.fspath(k) for k in key]


def verify(model: PathLike, signature: Union[PathLike, Iterable[PathLike]], key: Keys = None,
           policy: Optional[PathLike] = None, expected: Optional[str] = None,
           links_within: Optional[PathLike] = None) -> dict:
    """Verify every file of ``model`` against ``signature`` (by ``key``, a public key
    file or a list of them, or by the model publishers of a ``policy`` file). A list of
    signatures gives co-signatures: a policy's threshold counts their signers, and the
    result's ``counted`` names who counted. With
    ``expected="blake3:HEX"`` the signature must be about exactly that model. Links in
    the model are followed only if they resolve inside ``links_within``.

    Returns what was verified; raises VerificationError (``err.args[1]`` is the failure
    kind, e.g. ``"files-mismatch"``) when the model is refused.
    """
    signatures = _keys(signature)
    if isinstance(signatures, str):
        signatures = [signatures]
    return _verify(os.fspath(model), signatures, _keys(key),
                   os.fspath(policy) if policy is not None else None, expected,
                   os.fspath(links_within) if links_within is not None else None)


def safe_open(filename: PathLike, framework: str = "numpy", device="cpu", **trust) -> _safe_open:
    """Like ``safetensors.safe_open`` (``framework`` "np" or "pt"), with each tensor
    verified before it is returned; ``signature=`` and ``key=`` or ``policy=`` say who
    must have signed it."""
    return _safe_open(filename, framework, device, **trust)


def load_file(filename: PathLike, *, signature: PathLike, key: Keys = None,
              policy: Optional[PathLike] = None, expected: Optional[str] = None,
              **more) -> Dict[str, np.ndarray]:
    """Like ``safetensors.numpy.load_file`` (``modelseal.torch.load_file`` for torch):
    every array, the whole file read once and verified on every core."""
    return _tensors.load_file(filename, "np", "cpu", signature=signature, key=key,
                              policy=policy, expected=expected, **more)
