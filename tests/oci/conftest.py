"""Fixtures for the OCI registry tests: `registry.py` beside this file is importable, and
`oci_model` / `registry_factory` / `plain_registry` / `auth_registry` are shared."""

import json
import os
import struct
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import registry  # noqa: E402


def write_small_model(folder: Path, weight_bytes: int = 1 << 20) -> Path:
    """model.safetensors (a valid safetensors file: one U8 tensor of random bytes, about
    `weight_bytes`), config.json and README.md."""
    folder.mkdir(parents=True, exist_ok=True)
    header = json.dumps(
        {"weight": {"dtype": "U8", "shape": [weight_bytes], "data_offsets": [0, weight_bytes]}},
        separators=(",", ":"),
    ).encode()
    header += b" " * (-len(header) % 8)
    (folder / "model.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header + os.urandom(weight_bytes)
    )
    (folder / "config.json").write_text(
        json.dumps(
            {"architectures": ["TinyTest"], "hidden_size": 8, "model_type": "tiny"}, indent=2
        )
        + "\n"
    )
    (folder / "README.md").write_text("# tiny test model\n\nMade by tests/oci/conftest.py.\n")
    return folder


@pytest.fixture(scope="session")
def oci_model(tmp_path_factory) -> Path:
    """A small model folder: model.safetensors (1 MiB), config.json, README.md."""
    return write_small_model(tmp_path_factory.mktemp("oci-model") / "tiny-model")


@pytest.fixture
def registry_factory(tmp_path):
    """registry_factory(auth=False) -> a started LocalRegistry, stopped after the test."""
    started = []

    def make(auth: bool = False, name: str = "registry") -> registry.LocalRegistry:
        reg = registry.LocalRegistry(tmp_path / f"{name}-{len(started)}", auth=auth)
        started.append(reg)
        reg.start()
        return reg

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory):
    with registry.LocalRegistry(tmp_path_factory.mktemp("registry-plain"), auth=False) as reg:
        yield reg


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    with registry.LocalRegistry(tmp_path_factory.mktemp("registry-auth"), auth=True) as reg:
        yield reg
