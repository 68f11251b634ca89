"""Shared set-up for the framework tests: the modelseal binary, keys, and no network.

Before huggingface_hub is imported anywhere: any request that does not go to a test's
own hub server fails at once on a closed local port instead of leaving the machine.
"""
import os

os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_HUB_OFFLINE", None)

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[2]
MODELSEAL = os.environ.get("MODELSEAL", "target/release/modelseal")


def run(*args, ok=True):
    exe = MODELSEAL if os.path.isabs(MODELSEAL) else str(REPO / MODELSEAL)
    result = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """An ECDSA P-256 release key (both formats accept it) and a stranger's key."""
    d = tmp_path_factory.mktemp("keys")
    run("keygen", "--algorithm", "ecdsa-p256", "--out", d / "release")
    run("keygen", "--algorithm", "ecdsa-p256", "--out", d / "stranger")
    return d / "release", d / "release.pub", d / "stranger.pub"


def flip(path, at):
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))
