"""Keyless signing and verification, modelseal against model_signing 1.1.1, side by side.

Both sign the same generated model in the OMS format (files, SHA-256) keylessly against
the same local Sigstore instance (tests/sigstore-local), and verify each other's
bundles' counterpart with their own verifier. Runs are interleaved (modelseal, peer,
modelseal, ...) and the medians compared. The services are local doubles on loopback,
so the figures measure each tool's own work (hashing, key generation, requests,
bundle checks), not the public-good services' latency.

    MODELSEAL=target/release/modelseal target/interop-venv/bin/python bench/keyless.py

Settings: SHARDS (default 4), SHARD_MIB (256), REPS (5), OUT (a JSON results file).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sigstore-local"))
from harness import LocalSigstore  # noqa: E402

MODELSEAL = Path(os.environ.get("MODELSEAL", REPO / "target/release/modelseal")).resolve()
PEER = Path(sys.executable).parent / "model_signing"
SHARDS = int(os.environ.get("SHARDS", "4"))
SHARD_MIB = int(os.environ.get("SHARD_MIB", "256"))
REPS = int(os.environ.get("REPS", "5"))
IDENTITY = "bench@example.com"


def timed(cmd: list, **kw) -> float:
    started = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "Verification failed" in result.stdout + result.stderr:
        raise SystemExit(f"failed: {cmd}\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="keyless-bench-") as tmp:
        tmp = Path(tmp)
        sigstore = LocalSigstore(tmp / "sigstore")
        try:
            model = tmp / "model"
            model.mkdir()
            chunk = os.urandom(1 << 20)
            for i in range(SHARDS):
                with open(model / f"model-{i:05}.safetensors", "wb") as f:
                    for _ in range(SHARD_MIB):
                        f.write(chunk)
            (model / "config.json").write_text("{}")
            ours, theirs = tmp / "ours.sig", tmp / "theirs.sig"
            token = sigstore.token_file(tmp / "token.jwt", IDENTITY)
            sign_ours = [MODELSEAL, "sign", model, "--format", "oms", "--signature", ours, "--quiet",
                         "--keyless", "--identity-token-file", token,
                         "--signing-config", sigstore.signing_config,
                         "--trusted-root", sigstore.trusted_root]
            verify_ours = [MODELSEAL, "verify", model, "--signature", ours, "--quiet",
                           "--identity", IDENTITY, "--issuer", sigstore.issuer,
                           "--trusted-root", sigstore.trusted_root]
            peer = [PEER]
            times: dict[str, list[float]] = {k: [] for k in
                                             ("sign-modelseal", "sign-model_signing",
                                              "verify-modelseal", "verify-model_signing")}
            for rep in range(REPS + 1):  # the first round warms the page cache, not timed
                # A token per round, as a CI job gets one; minted outside the timing.
                raw = sigstore.token(IDENTITY)
                token.write_text(raw)
                sign_peer = [*peer, "sign", "sigstore", model, "--signature", theirs,
                             "--trust_config", sigstore.trust_config, "--identity_token", raw]
                verify_peer = [*peer, "verify", "sigstore", model, "--signature", theirs,
                               "--trust_config", sigstore.trust_config,
                               "--identity", IDENTITY, "--identity_provider", sigstore.issuer]
                runs = [("sign-modelseal", sign_ours), ("sign-model_signing", sign_peer),
                        ("verify-modelseal", verify_ours), ("verify-model_signing", verify_peer)]
                if rep % 2:
                    runs = [runs[1], runs[0], runs[3], runs[2]]
                for name, cmd in runs:
                    t = timed(cmd)
                    if rep:
                        times[name].append(t)
        finally:
            sigstore.close()
    medians = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "model": {"shards": SHARDS, "shard_mib": SHARD_MIB, "bytes": SHARDS * SHARD_MIB << 20},
        "reps": REPS,
        "runs_seconds": times,
        "median_seconds": medians,
        "ratio_peer_over_modelseal": {
            "sign": medians["sign-model_signing"] / medians["sign-modelseal"],
            "verify": medians["verify-model_signing"] / medians["verify-modelseal"],
        },
        "cpus": os.cpu_count(),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
