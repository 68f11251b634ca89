"""Verify time and bundle size by signature algorithm (Ed25519, ECDSA P-256, ML-DSA-65), and
what co-signatures cost `verify`: one signer against two and three signatures of the
same files under a 2-of-3 policy.

The model is small by default (4 MiB), so the per-signature constant shows; the files are
read once per distinct signed root, so co-signatures add signature checks, not reads.
Runs are interleaved (ed25519, ecdsa, mldsa, ... then 1, 2, 3 signatures); medians of
REPS. The peer has no counterpart: model_signing verifies one signature per bundle and
reads no ML-DSA key, so each column here is modelseal against itself.

    MODELSEAL=target/release/modelseal python3 bench/cosign.py

Settings: MODEL_MIB (default 4), REPS (15), OUT (a JSON results file).
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
MODELSEAL = Path(os.environ.get("MODELSEAL", REPO / "target/release/modelseal")).resolve()
MODEL_MIB = int(os.environ.get("MODEL_MIB", "4"))
REPS = int(os.environ.get("REPS", "15"))
ALGORITHMS = ["ed25519", "ecdsa-p256", "ml-dsa-65"]


def ms(*args: object) -> None:
    done = subprocess.run([str(MODELSEAL), *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"modelseal {' '.join(map(str, args))} failed:\n{done.stderr}")


def timed(*args: object) -> float:
    start = time.perf_counter()
    ms(*args)
    return time.perf_counter() - start


def main() -> None:
    w = Path(tempfile.mkdtemp(prefix="modelseal-cosign-bench-"))
    model = w / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(MODEL_MIB << 20))
    (model / "config.json").write_text('{"layers": 2}')
    sigs: dict[str, Path] = {}
    for alg in ALGORITHMS:
        ms("keygen", "--algorithm", alg, "--out", w / alg)
        sigs[alg] = w / f"model.{alg}.sig"
        ms("sign", model, "--key", w / alg, "--signature", sigs[alg])
    names = {"ed25519": "a", "ecdsa-p256": "b", "ml-dsa-65": "c"}
    policy = w / "policy.toml"
    policy.write_text(
        "".join(
            f'[[signer]]\nname = "{names[alg]}"\nroles = ["model-publisher"]\nkey = "{alg}.pub"\n\n'
            for alg in ALGORITHMS
        )
        + "[roles.model-publisher]\nthreshold = 2\n"
    )
    single = w / "policy-one.toml"
    single.write_text('[[signer]]\nname = "a"\nroles = ["model-publisher"]\nkey = "ed25519.pub"\n')

    by_alg: dict[str, list[float]] = {alg: [] for alg in ALGORITHMS}
    by_count: dict[str, list[float]] = {"1 signer (no threshold)": [], "2 of 3": [], "3 given, 2 of 3": []}
    for _ in range(REPS):
        for alg in ALGORITHMS:
            by_alg[alg].append(timed("verify", model, "--key", w / f"{alg}.pub", "--signature", sigs[alg]))
        by_count["1 signer (no threshold)"].append(
            timed("verify", model, "--policy", single, "--signature", sigs["ed25519"]))
        by_count["2 of 3"].append(timed(
            "verify", model, "--policy", policy, "--signature", sigs["ed25519"], "--signature", sigs["ecdsa-p256"]))
        by_count["3 given, 2 of 3"].append(timed(
            "verify", model, "--policy", policy, *[a for alg in ALGORITHMS for a in ("--signature", sigs[alg])]))

    result = {
        "model_mib": MODEL_MIB,
        "reps": REPS,
        "verify_ms_median": {alg: round(statistics.median(t) * 1000, 2) for alg, t in by_alg.items()},
        "bundle_bytes": {alg: sigs[alg].stat().st_size for alg in ALGORITHMS},
        "public_key_pem_bytes": {alg: (w / f"{alg}.pub").stat().st_size for alg in ALGORITHMS},
        "cosign_verify_ms_median": {k: round(statistics.median(t) * 1000, 2) for k, t in by_count.items()},
    }
    print(f"model {MODEL_MIB} MiB, median of {REPS} (interleaved)")
    print(f"{'algorithm':<12} {'verify ms':>10} {'bundle bytes':>13} {'public key PEM':>15}")
    for alg in ALGORITHMS:
        print(f"{alg:<12} {result['verify_ms_median'][alg]:>10} {result['bundle_bytes'][alg]:>13}"
              f" {result['public_key_pem_bytes'][alg]:>15}")
    for k, v in result["cosign_verify_ms_median"].items():
        print(f"verify --policy, {k:<26} {v:>8} ms")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
