"""Time from a fresh machine to a first verification, side by side in one run:

- `pip install WHEEL` (modelseal's wheel file, numpy from the index) into a new venv, then
  the first `modelseal verify` (the wheel's console script) of a model signed in the
  OMS format;
- `pip install model-signing==1.1.1 pyOpenSSL` into a new venv, then the first
  `model_signing verify key` of the same model and signature.

Both verify the same files against the same ECDSA P-256 key and the same bundle (made by
modelseal, `--format oms`; model-signing verifies it unchanged). Each rep makes new venvs
with pip's cache off (PIP_NO_CACHE_DIR=1), so every package is downloaded and unpacked;
the two tools alternate within a rep. Medians of REPS. The index is whatever pip is
configured with here (a PyPI mirror on these machines).

    MODELSEAL=target/release/modelseal WHEEL=target/wheels/modelseal-*.whl \\
      python3 bench/install.py

Settings: REPS (5), MODEL_MIB (64), OUT (JSON).
"""

from __future__ import annotations

import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELSEAL = Path(os.environ.get("MODELSEAL", REPO / "target/release/modelseal")).resolve()
WHEEL = os.environ.get("WHEEL") or sorted(glob.glob(str(REPO / "target/wheels/modelseal-*.whl")))[-1]
REPS = int(os.environ.get("REPS", "5"))
MODEL_MIB = int(os.environ.get("MODEL_MIB", "64"))
PEER = ["model-signing==1.1.1", "pyOpenSSL"]


def timed(*cmd, env=None) -> float:
    start = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{result.stdout}{result.stderr}")
    return took


def main() -> None:
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        work = Path(tmp)
        model = work / "model"
        model.mkdir()
        (model / "model.safetensors").write_bytes(os.urandom(MODEL_MIB << 20))
        (model / "config.json").write_text('{"model_type": "bench"}\n')
        key = work / "key"
        timed(MODELSEAL, "keygen", "--out", key, "--algorithm", "ecdsa-p256")
        signature = work / "model.sig"
        timed(MODELSEAL, "sign", model, "--format", "oms", "--key", key, "--signature", signature, "-q")
        public = f"{key}.pub"
        runs: dict[str, list[float]] = {k: [] for k in (
            "modelseal_install", "modelseal_first_verify", "peer_install", "peer_first_verify")}
        for rep in range(REPS):
            for tool in ("modelseal", "peer") if rep % 2 == 0 else ("peer", "modelseal"):
                venv = work / f"{tool}-{rep}"
                subprocess.run([sys.executable, "-m", "venv", venv], check=True)
                pip = venv / "bin/pip"
                if tool == "modelseal":
                    runs["modelseal_install"].append(timed(pip, "install", "--quiet", WHEEL, env=env))
                    runs["modelseal_first_verify"].append(timed(
                        venv / "bin/modelseal", "verify", model, "--signature", signature,
                        "--key", public, "-q"))
                else:
                    runs["peer_install"].append(timed(pip, "install", "--quiet", *PEER, env=env))
                    runs["peer_first_verify"].append(timed(
                        venv / "bin/model_signing", "verify", "key", model, "--signature",
                        signature, "--public_key", public))
                subprocess.run(["rm", "-rf", str(venv)], check=True)
        medians = {k: statistics.median(v) for k, v in runs.items()}
        report = {
            "what": "pip install into a new venv (no pip cache), then the first verify",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "wheel": os.path.basename(WHEEL),
            "wheel_bytes": os.path.getsize(WHEEL),
            "peer": PEER,
            "model_mib": MODEL_MIB,
            "reps": REPS,
            "runs_s": runs,
            "median_s": medians,
            "ratio_install": medians["peer_install"] / medians["modelseal_install"],
            "ratio_first_verify": medians["peer_first_verify"] / medians["modelseal_first_verify"],
        }
        text = json.dumps(report, indent=2)
        print(text)
        if os.environ.get("OUT"):
            Path(os.environ["OUT"]).write_text(text + "\n")


if __name__ == "__main__":
    main()
