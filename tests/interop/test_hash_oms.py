"""`modelseal hash --format oms` against the subject digest model-signing 1.1.1 signs.

A model with git files model-signing ignores, signed by the peer's CLI (its `files`
serialization, SHA-256; the 1.1.1 CLI signs no shards): the digest `hash --format oms`
prints must be the one in the peer's bundle.

    MODELSEAL=target/release/modelseal target/interop-venv/bin/pytest -q tests/interop/test_hash_oms.py
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELSEAL = Path(os.environ.get("MODELSEAL", REPO / "target" / "release" / "modelseal")).resolve()
PEER = Path(sys.executable).parent / "model_signing"


def run(*args: object) -> subprocess.CompletedProcess:
    done = subprocess.run([*map(str, args)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def test_hash_format_oms_prints_the_digest_model_signing_signs(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(os.urandom(3_000_000))
    (model / "sub" / "config.json").write_text('{"a": 1}')
    (model / ".gitattributes").write_text("*.bin filter=lfs\n")
    key = tmp_path / "key"
    run(MODELSEAL, "keygen", "--algorithm", "ecdsa-p256", "--out", key)
    signature = tmp_path / "model.sig"
    run(PEER, "sign", "key", model, "--private_key", key, "--signature", signature)
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    signed = statement["subject"][0]["digest"]["sha256"]
    ours: list[str] = []
    out = run(MODELSEAL, "hash", model, "--format", "oms", *ours, "--json")
    assert json.loads(out.stdout)["root"]["sha256"] == signed
    # The ignored git file does not change it; a signed file does.
    (model / ".gitattributes").write_text("changed\n")
    assert json.loads(run(MODELSEAL, "hash", model, "--format", "oms", *ours, "--json").stdout)["root"]["sha256"] == signed
    (model / "sub" / "config.json").write_text('{"a": 2}')
    assert json.loads(run(MODELSEAL, "hash", model, "--format", "oms", *ours, "--json").stdout)["root"]["sha256"] != signed
