"""Signing without re-reading what did not change (spec/incremental.md), side by side in
one run:

Part 1, a model of SHARDS weight shards (default 8 x 2560 MiB = 20 GiB) and small files:
  after a 1 KiB edit of a small file (README.md), and after a 1 KiB edit inside one shard,
  - `modelseal sign --update` (native, Ed25519) and `sign --update --format oms` (ECDSA),
  - a full `modelseal sign` in both formats,
  - a full `model_signing sign key` (the peer; it has no incremental mode).
Part 2, the same shards pushed as a ModelPack model of raw layers to a local registry
(CNCF distribution; the shard files are moved into its storage, not copied):
  - `modelseal sign oci://REF --format oms --from-manifest` (reads the manifest only),
  - `modelseal sign oci://REF` (pulls every layer through BLAKE3, the pull-and-sign path
    that needs no disk).

Runs are interleaved; medians of REPS. The update's time does not depend on the page
cache (it reads no shard); the full runs read 20 GiB, from the cache where it holds them.

    MODELSEAL=target/release/modelseal MODEL_SIGNING=target/interop-venv/bin/model_signing \\
      target/interop-venv/bin/python bench/incremental.py

Settings: SHARDS (8), SHARD_MIB (2560), REPS (3), BENCH_DIR (work directory), OUT (JSON).
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "oci"))
import registry  # noqa: E402

MODELSEAL = Path(os.environ.get("MODELSEAL", REPO / "target/release/modelseal")).resolve()
PEER = Path(os.environ.get("MODEL_SIGNING", REPO / "target/interop-venv/bin/model_signing"))
SHARDS = int(os.environ.get("SHARDS", "8"))
SHARD_MIB = int(os.environ.get("SHARD_MIB", "2560"))
REPS = int(os.environ.get("REPS", "3"))
ED = REPO / "testdata/keys/vector-ed25519.pem"
EC = REPO / "testdata/keys/ec-p256.priv.pem"


def run(*cmd: object) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{done.stdout}\n{done.stderr}")
    return done


def timed(*cmd: object) -> float:
    start = time.perf_counter()
    run(*cmd)
    return time.perf_counter() - start


def write_model(model: Path) -> None:
    model.mkdir(parents=True)
    block = bytearray(os.urandom(64 << 20))
    for shard in range(SHARDS):
        with open(model / f"model-{shard + 1:05d}-of-{SHARDS:05d}.safetensors", "wb") as f:
            for chunk in range(SHARD_MIB // 64):
                # Every block differs, so nothing dedupes or compresses away.
                block[:16] = shard.to_bytes(8, "little") + chunk.to_bytes(8, "little")
                f.write(block)
    for name, size in [("config.json", 700), ("generation_config.json", 200),
                       ("tokenizer.json", 2 << 20), ("tokenizer_config.json", 4000),
                       ("README.md", 8000)]:
        (model / name).write_bytes(os.urandom(size))


def edit_1k(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(os.urandom(1024))


def oms_digests(bundle: Path) -> dict[str, str]:
    payload = json.loads(base64.b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"]))
    return {r["name"]: r["digest"] for r in payload["predicate"]["resources"]}


def summary(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}


def part_one(work: Path, model: Path) -> dict:
    sig, oms = work / "model.sig", work / "model-oms.sig"
    full, full_oms, peer_sig = work / "full.sig", work / "full-oms.sig", work / "peer.sig"
    time.sleep(2.5)  # past the racy margin: the first stamps record every file
    run(MODELSEAL, "sign", model, "--key", ED, "--signature", sig, "-q")
    run(MODELSEAL, "sign", model, "--format", "oms", "--key", EC, "--signature", oms, "-q")
    shard = model / f"model-{min(3, SHARDS):05d}-of-{SHARDS:05d}.safetensors"
    results = {}
    for edit, target, offset in [("small-file", model / "README.md", 100),
                                 ("inside-shard", shard, (SHARD_MIB << 20) // 2)]:
        times: dict[str, list[float]] = {k: [] for k in [
            "update_native", "update_oms", "full_native", "full_oms", "model_signing"]}
        for rep in range(REPS):
            edit_1k(target, offset)
            times["update_native"].append(timed(
                MODELSEAL, "sign", model, "--key", ED, "--update", sig, "-q"))
            times["update_oms"].append(timed(
                MODELSEAL, "sign", model, "--format", "oms", "--key", EC, "--update", oms, "-q"))
            times["full_native"].append(timed(
                MODELSEAL, "sign", model, "--key", ED, "--signature", full, "--force",
                "--no-stamps", "-q"))
            times["full_oms"].append(timed(
                MODELSEAL, "sign", model, "--format", "oms", "--key", EC, "--signature",
                full_oms, "--force", "--no-stamps", "-q"))
            times["model_signing"].append(timed(
                PEER, "sign", "key", model, "--private_key", EC, "--signature", peer_sig))
            # The oracle: the update is the full signature (Ed25519 is deterministic).
            if sig.read_bytes() != full.read_bytes():
                sys.exit("the native update differs from a full sign")
            if oms_digests(oms) != oms_digests(full_oms) or oms_digests(oms) != oms_digests(peer_sig):
                sys.exit("the OMS update differs from a full sign or model_signing's")
            print(f"  {edit} rep {rep + 1}: " + ", ".join(
                f"{k} {v[-1]:.3f}s" for k, v in times.items()), flush=True)
        results[edit] = summary(times)
    return results


def part_two(work: Path, model: Path) -> dict:
    """Moves the shards into a local registry's storage as raw ModelPack layers."""
    digests = oms_digests(work / "model-oms.sig")
    with registry.LocalRegistry(work / "registry") as reg:
        repo = "bench/incremental"
        blobs = reg.storage_dir / "docker/registry/v2/blobs/sha256"
        links = reg.storage_dir / f"docker/registry/v2/repositories/{repo}/_layers/sha256"
        layers = []
        for path in sorted(model.rglob("*")):
            if not path.is_file():
                continue
            rel = str(path.relative_to(model))
            hexdigest = digests[rel]
            data = blobs / hexdigest[:2] / hexdigest / "data"
            data.parent.mkdir(parents=True, exist_ok=True)
            size = path.stat().st_size
            os.rename(path, data)
            (links / hexdigest).mkdir(parents=True, exist_ok=True)
            (links / hexdigest / "link").write_text(f"sha256:{hexdigest}")
            kind = "weight" if rel.endswith(".safetensors") else "weight.config"
            layers.append({
                "mediaType": registry.modelpack_media_type(kind, "raw"),
                "digest": f"sha256:{hexdigest}", "size": size,
                "annotations": {registry.ANNOTATION_FILEPATH: rel},
            })
        config = json.dumps({"descriptor": {"name": "bench"}, "modelfs": {"type": "layers", "diffIds": [l["digest"] for l in layers]}}).encode()
        config_digest = reg.put_blob(repo, config)
        manifest = {
            "schemaVersion": 2, "mediaType": registry.OCI_MANIFEST,
            "artifactType": "application/vnd.cncf.model.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.model.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": layers,
        }
        reg.put_manifest(repo, "v1", manifest)
        ref = f"oci://{reg.host}/{repo}:v1"
        ca = ["--registry-ca", reg.ca_pem]
        times: dict[str, list[float]] = {"from_manifest": [], "pull_and_sign": []}
        for rep in range(REPS):
            times["from_manifest"].append(timed(
                MODELSEAL, "sign", ref, "--format", "oms", "--from-manifest", "--key", EC,
                "--signature", work / "fm.sig", "--force", *ca, "-q"))
            times["pull_and_sign"].append(timed(
                MODELSEAL, "sign", ref, "--key", ED, "--no-attach", "--signature",
                work / "pulled.sig", "--force", *ca, "-q"))
            print(f"  oci rep {rep + 1}: " + ", ".join(
                f"{k} {v[-1]:.3f}s" for k, v in times.items()), flush=True)
        if oms_digests(work / "fm.sig") != digests:
            sys.exit("the manifest signature names other digests than the files'")
        return summary(times)


def main() -> None:
    parent = Path(os.environ.get("BENCH_DIR") or tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="modelseal-incremental-", dir=parent))
    model = work / "model"
    total = SHARDS * SHARD_MIB
    print(f"writing {SHARDS} x {SHARD_MIB} MiB = {total / 1024:.1f} GiB to {model}", flush=True)
    write_model(model)
    results = {"shards": SHARDS, "shard_mib": SHARD_MIB, "reps": REPS}
    results["update"] = part_one(work, model)
    results["oci"] = part_two(work, model)
    print(json.dumps(results, indent=2))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).write_text(json.dumps(results, indent=2) + "\n")
    subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
