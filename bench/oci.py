"""Verifying a model straight from an OCI registry, modelseal against a pull and a hash.

One generated model (SHARDS files of SHARD_MIB MiB of random bytes, plus config.json) is
pushed once as a CNCF ModelPack artifact with uncompressed tar layers (the spec's advice for
weights) to a local registry (tests/oci: the distribution registry over TLS on loopback), and
signed once with `modelseal sign oci://...` (the bundle is attached as a referrer). Then, in
REPS interleaved rounds after one untimed warm-up of each, with the page cache warm:

* modelseal: `modelseal verify oci://HOST/bench/model:v1 --key PUB --registry-ca CA -q`
  (streams every layer, checks each blob's sha256, BLAKE3-hashes each file, checks the
  signature);
* peer: the oras Python SDK pulls the same artifact into a fresh folder (`Registry.pull`,
  in this process: no interpreter start-up is counted), then `b3sum` hashes every pulled
  file; timed as pull + hash, and pull alone. The folder is deleted after each round.

Medians are compared. modelseal's peak RSS is GNU time's %M (ru_maxrss) for each run.

    target/interop-venv/bin/python bench/oci.py

Settings: SHARDS (default 4), SHARD_MIB (512), REPS (5), MODELSEAL (the binary; copied into
the work folder first, so a rebuild during the run does not change it), B3SUM (b3sum),
BENCH_DIR (parent of the work folder; default the system temp folder, or target/bench-oci
when that has too little room), OUT (a JSON results file).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
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
B3SUM = shutil.which(os.environ.get("B3SUM", "b3sum"))
GNU_TIME = "/usr/bin/time"
SHARDS = int(os.environ.get("SHARDS", "4"))
SHARD_MIB = int(os.environ.get("SHARD_MIB", "512"))
REPS = int(os.environ.get("REPS", "5"))
KEY = REPO / "testdata/keys/vector-ed25519.pem"
PUB = REPO / "testdata/keys/vector-ed25519.pem.pub"
OTHER_PUB = REPO / "testdata/keys/other-ed25519.pem.pub"
REPO_NAME, TAG = "bench/model", "v1"


def run(cmd: list, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if result.returncode != expect:
        raise SystemExit(f"exit {result.returncode} (expected {expect}): {cmd}\n"
                         f"{result.stdout}\n{result.stderr}")
    return result


def timed_rss(cmd: list, rss_file: Path) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (KiB) of one command, run under GNU time."""
    started = time.perf_counter()
    result = run([GNU_TIME, "-f", "%M", "-o", rss_file, *cmd])
    elapsed = time.perf_counter() - started
    return elapsed, int(rss_file.read_text().split()[-1]), result


def work_parent(need: int) -> Path:
    if os.environ.get("BENCH_DIR"):
        parent = Path(os.environ["BENCH_DIR"])
    else:
        parent = Path(tempfile.gettempdir())
        if shutil.disk_usage(parent).free < need:
            parent = REPO / "target" / "bench-oci"
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if free < need:
        raise SystemExit(f"{parent} has {free >> 20} MiB free, the run needs {need >> 20} MiB "
                         "(the model, the registry's copy, one pull); try SHARD_MIB=256")
    return parent


def make_model(model: Path) -> None:
    model.mkdir()
    for i in range(SHARDS):
        with open(model / f"model-{i + 1:05}-of-{SHARDS:05}.safetensors", "wb") as f:
            for _ in range(SHARD_MIB):
                f.write(os.urandom(1 << 20))
    (model / "config.json").write_text(json.dumps({"architectures": ["Bench"],
                                                   "hidden_size": 4096}, indent=2) + "\n")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def version(cmd: list) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kib / (1 << 20), 1),
            "kernel": platform.release()}


def main() -> int:
    import oras
    import requests

    if B3SUM is None or not Path(GNU_TIME).exists():
        raise SystemExit("needs b3sum and GNU time (/usr/bin/time) on this machine")
    model_bytes = SHARDS * SHARD_MIB << 20
    load_start = os.getloadavg()
    parent = work_parent(3 * model_bytes + (512 << 20))
    with tempfile.TemporaryDirectory(prefix="oci-bench-", dir=parent) as tmp:
        tmp = Path(tmp)
        binary = tmp / "modelseal"  # a snapshot: another session may rebuild target/release
        shutil.copy2(MODELSEAL, binary)
        binary_sha256 = sha256_file(binary)
        with registry.LocalRegistry(tmp / "registry") as reg:
            ref = f"{reg.host}/{REPO_NAME}:{TAG}"
            oci_ref = f"oci://{ref}"
            model = tmp / "model"
            started = time.perf_counter()
            make_model(model)
            generate_s = time.perf_counter() - started
            started = time.perf_counter()
            digest = registry.push_modelpack(reg, REPO_NAME, TAG, model, media="tar",
                                             client="http")
            push_s = time.perf_counter() - started
            layers = reg.manifest_json(REPO_NAME, TAG)["layers"]
            layer_digests = {layer["digest"] for layer in layers}
            shutil.rmtree(model)  # the registry's copy is what both sides read from now on
            started = time.perf_counter()
            run([binary, "sign", oci_ref, "--key", KEY, "--registry-ca", reg.ca_pem, "-q"])
            sign_s = time.perf_counter() - started
            # The signature must hold, and not under another key (untimed).
            run([binary, "verify", oci_ref, "--key", OTHER_PUB, "--registry-ca", reg.ca_pem,
                 "-q"], expect=1)

            verify_cmd = [binary, "verify", oci_ref, "--key", PUB, "--registry-ca", reg.ca_pem,
                          "-q"]
            rss_file = tmp / "rss.txt"
            times: dict[str, list[float]] = {k: [] for k in
                                             ("modelseal_verify", "peer_pull", "peer_hash",
                                              "peer_pull_hash")}
            rss: dict[str, list[int]] = {"modelseal_verify": [], "b3sum": []}

            def ours(rep: int) -> None:
                t, kib, _ = timed_rss(verify_cmd, rss_file)
                if rep:
                    times["modelseal_verify"].append(t)
                    rss["modelseal_verify"].append(kib)

            def peer(rep: int) -> None:
                outdir = tmp / f"pull-{rep}"
                outdir.mkdir()
                try:
                    started = time.perf_counter()
                    files = registry.oras_client(reg).pull(target=ref, outdir=str(outdir))
                    pulled = time.perf_counter()
                    t_hash, kib, result = timed_rss([B3SUM, *files], rss_file)
                    done = time.perf_counter()
                    if len(files) != len(layers) or len(result.stdout.splitlines()) != len(files):
                        raise SystemExit(f"peer pulled {len(files)} files of {len(layers)}, "
                                         f"b3sum printed {result.stdout!r}")
                    if rep == REPS:  # the pulled bytes are the layers (untimed, once)
                        got = {sha256_file(Path(f)) for f in files}
                        if got != layer_digests:
                            raise SystemExit("oras pulled bytes that are not the layers")
                    if rep:
                        times["peer_pull"].append(pulled - started)
                        times["peer_hash"].append(done - pulled)
                        times["peer_pull_hash"].append(done - started)
                        rss["b3sum"].append(kib)
                finally:
                    shutil.rmtree(outdir, ignore_errors=True)

            # Round 0 is the warm-up of each (page cache, registry, TLS), not timed.
            for rep in range(REPS + 1):
                order = (ours, peer) if rep % 2 == 0 else (peer, ours)
                for step in order:
                    step(rep)
                print(f"round {rep}{' (warm-up)' if rep == 0 else ''}: " + ", ".join(
                    f"{k} {v[-1]:.2f} s" for k, v in times.items() if v and rep), file=sys.stderr)
            registry_version = version(["docker-registry", "--version"])
    medians = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "what": "verify a ModelPack artifact from a local OCI registry (TLS, loopback): "
                "modelseal verify oci:// against oras-py pull + b3sum",
        "machine": machine(),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "work_dir_parent": str(parent),
        "model": {"weight_files": SHARDS, "shard_mib": SHARD_MIB, "bytes": model_bytes,
                  "extra_files": ["config.json"], "layers": len(layers),
                  "layer_media_types": sorted({layer["mediaType"] for layer in layers}),
                  "manifest_digest": digest},
        "setup_seconds": {"generate": generate_s, "push_http": push_s, "sign": sign_s},
        "commands": {
            "modelseal_verify": "modelseal verify oci://HOST/bench/model:v1 --key "
                                "testdata/keys/vector-ed25519.pem.pub --registry-ca CA -q",
            "peer_pull": "oras.provider.Registry(hostname=HOST, tls_verify=CA)"
                         ".pull(target='HOST/bench/model:v1', outdir=FRESH_DIR) (in-process)",
            "peer_hash": "b3sum PULLED_FILE...",
        },
        "reps": REPS,
        "runs_seconds": times,
        "median_seconds": medians,
        "ratio_over_modelseal": {
            "peer_pull_hash": medians["peer_pull_hash"] / medians["modelseal_verify"],
            "peer_pull": medians["peer_pull"] / medians["modelseal_verify"],
        },
        "throughput_mib_s": {k: (model_bytes >> 20) / v for k, v in medians.items()
                             if k != "peer_hash"},
        "peak_rss_kib": {**rss, "modelseal_verify_max": max(rss["modelseal_verify"])},
        "versions": {
            "modelseal": version([str(MODELSEAL), "--version"]),
            "modelseal_binary_sha256": binary_sha256,
            "git_commit": version(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
            "git_dirty": bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                              "--untracked-files=no"],
                                             capture_output=True, text=True).stdout.strip()),
            "b3sum": version([B3SUM, "--version"]),
            "oras_py": oras.__version__,
            "requests": requests.__version__,
            "python": platform.python_version(),
            "docker_registry": registry_version,
            "gnu_time": version([GNU_TIME, "--version"]),
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
