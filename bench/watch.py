"""Continuous verification, `modelseal watch` against re-running model_signing 1.1.1.

The peer way to keep checking a deployed model (what the model-validation-operator's
sidecar does) is to run `model_signing verify` again. This compares, on one model with
its page cache warm, runs interleaved and medians taken:

- one full re-verification: `model_signing verify key` (OMS, SHA-256) against the watch's
  unpaced first pass on the same signature (OMS, SHA-256) and on a native one (BLAKE3):
  wall time, CPU seconds and peak RSS of the process;
- a paced pass (`--max-read-rate`): achieved rate, CPU use, peak RSS;
- detection: a byte flipped in one file until /readyz answers 503 (the peer has no event
  path: it finds a change at its next run);
- the stat poll: on a model of many small files, an idle watch's CPU with the poll on
  (1 s) and off, and how long a write through a hard link outside the model (no event)
  takes to be refused.

    MODELSEAL=target/release/modelseal target/interop-venv/bin/python bench/watch.py

Settings: SHARDS (8), SHARD_MIB (256), REPS (5), RATE_MIB (512), SMALL_FILES (10000),
IDLE_S (20), PARTS (full,paced,detect,stat: which parts to run), OUT (a JSON file).
"""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELSEAL = Path(os.environ.get("MODELSEAL", REPO / "target/release/modelseal")).resolve()
PEER = Path(sys.executable).parent / "model_signing"
SHARDS = int(os.environ.get("SHARDS", "8"))
SHARD_MIB = int(os.environ.get("SHARD_MIB", "256"))
REPS = int(os.environ.get("REPS", "5"))
RATE_MIB = int(os.environ.get("RATE_MIB", "512"))
SMALL_FILES = int(os.environ.get("SMALL_FILES", "10000"))
IDLE_S = float(os.environ.get("IDLE_S", "20"))
PARTS = set(os.environ.get("PARTS", "full,paced,detect,stat").split(","))
TICKS = os.sysconf("SC_CLK_TCK")


def run(cmd, **kw):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if result.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{result.stdout}\n{result.stderr}")
    return result


def child_run(cmd) -> dict:
    """Wall, CPU and peak RSS of one command, from its own rusage."""
    started = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read().decode() + proc.stderr.read().decode()
    if status != 0 or "Verification failed" in out:
        raise SystemExit(f"failed: {cmd}\n{out}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_hwm_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


class Watch:
    def __init__(self, model: Path, signature: Path, key: Path, log: Path, *flags):
        self.port = free_port()
        self.log_path = log
        self.proc = subprocess.Popen(
            [str(MODELSEAL), "watch", str(model), "--signature", str(signature), "--key", str(key),
             "--listen", f"127.0.0.1:{self.port}", *map(str, flags)],
            stdout=open(log, "w"), stderr=subprocess.STDOUT)

    def lines(self) -> list[dict]:
        return [json.loads(l) for l in self.log_path.read_text().splitlines() if l.strip()]

    def passes(self) -> list[dict]:
        return [l for l in self.lines() if l["event"] == "pass"]

    def wait_passes(self, n: int, timeout: float = 600) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.passes()) < n:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"watch: no pass {n}:\n{self.log_path.read_text()}")
            time.sleep(0.005)
        return self.passes()

    def ready(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def flip(path: Path, offset: int):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 1]))


def main() -> int:
    results: dict = {"settings": {"shards": SHARDS, "shard_mib": SHARD_MIB, "reps": REPS,
                                  "rate_mib": RATE_MIB, "cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
        tmp = Path(tmp)
        if PARTS <= {"stat"}:
            stat_poll(results, tmp)
            return finish(results)
        model = tmp / "model"
        model.mkdir()
        for i in range(SHARDS):
            with open(model / f"model-{i:05}.safetensors", "wb") as f:
                for _ in range(SHARD_MIB):
                    f.write(os.urandom(1 << 20))
        (model / "config.json").write_text("{}")
        key = tmp / "p256.pem"
        run([MODELSEAL, "keygen", "--out", key, "--algorithm", "ecdsa-p256"])
        pub = Path(f"{key}.pub")
        native, oms, peer_sig = tmp / "native.sig", tmp / "oms.sig", tmp / "peer.sig"
        ed = tmp / "ed.pem"
        run([MODELSEAL, "keygen", "--out", ed])
        run([MODELSEAL, "sign", model, "--key", ed, "--signature", native, "-q"])
        run([PEER, "sign", "key", model, "--private_key", key, "--signature", peer_sig])
        # Warm the page cache.
        run([MODELSEAL, "verify", model, "--signature", native, "--key", f"{ed}.pub", "-q"])

        if "full" in PARTS:
            full_pass(results, model, key, pub, native, ed, peer_sig)
        if "paced" in PARTS:
            paced_pass(results, tmp, model, native, ed)
        if "detect" in PARTS:
            detection(results, tmp, model, native, ed)
        if "stat" in PARTS:
            stat_poll(results, tmp)
    return finish(results)


def finish(results) -> int:
    if "full" in PARTS:
        peer = results["full_pass"]["model_signing verify"]
        for label, r in results["full_pass"].items():
            r["wall_vs_model_signing"] = peer["wall"] / r["wall"]
    print(json.dumps(results, indent=2))
    if out := os.environ.get("OUT"):
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def full_pass(results, model, key, pub, native, ed, peer_sig):
    tmp = model.parent
    full: dict[str, list[dict]] = {k: [] for k in ("model_signing verify", "watch pass (OMS sha256)",
                                                     "watch pass (native BLAKE3)", "modelseal verify (native)")}
    for rep in range(REPS):
        full["model_signing verify"].append(child_run(
            [PEER, "verify", "key", model, "--signature", peer_sig, "--public_key", pub]))
        for label, sig, k in (("watch pass (OMS sha256)", peer_sig, pub),
                              ("watch pass (native BLAKE3)", native, f"{ed}.pub")):
            w = Watch(model, sig, k, tmp / "w.log", "--interval", "1h")
            first = w.wait_passes(1)[0]
            assert first["ready"], first
            full[label].append({"wall": first["seconds"], "cpu": proc_cpu(w.proc.pid),
                                "rss_mib": proc_hwm_mib(w.proc.pid)})
            w.stop()
        full["modelseal verify (native)"].append(child_run(
            [MODELSEAL, "verify", model, "--signature", native, "--key", f"{ed}.pub", "-q"]))
    results["full_pass"] = {
        label: {m: statistics.median(r[m] for r in runs) for m in ("wall", "cpu", "rss_mib")}
        for label, runs in full.items()}


def paced_pass(results, tmp, model, native, ed):
    # A paced pass: back to back at RATE_MIB, measured between two pass lines.
    w = Watch(model, native, f"{ed}.pub", tmp / "paced.log", "--interval", "0s",
              "--max-read-rate", f"{RATE_MIB}MiB")
    w.wait_passes(1)
    cpu0 = proc_cpu(w.proc.pid)
    passes = w.wait_passes(3)
    cpu1 = proc_cpu(w.proc.pid)
    paced = [p for p in passes[1:3]]
    seconds = sum(p["seconds"] for p in paced)
    total = sum(p["bytes"] for p in paced)
    results["paced_pass"] = {"seconds": [p["seconds"] for p in paced],
                             "achieved_mib_s": total / seconds / (1 << 20),
                             "cpu_fraction_of_one_core": (cpu1 - cpu0) / seconds,
                             "rss_mib": proc_hwm_mib(w.proc.pid)}
    w.stop()


def detection(results, tmp, model, native, ed):
    # Detection after an event: one byte in one 256 MiB file, until 503.
    w = Watch(model, native, f"{ed}.pub", tmp / "detect.log", "--interval", "1h")
    w.wait_passes(1)
    target = model / "model-00003.safetensors"
    detect, recover = [], []
    for rep in range(REPS):
        while w.ready() != 200:
            time.sleep(0.01)
        refusals = lambda: sum(1 for l in w.lines() if l["event"] == "refused" and l["path"] == target.name)
        before = refusals()
        started = time.perf_counter()
        flip(target, (SHARD_MIB << 20) - 1)
        while w.ready() != 503:
            time.sleep(0.001)
        unready = time.perf_counter() - started
        # Refused, not merely pending: the file's verdict is in.
        while refusals() == before:
            time.sleep(0.001)
        detect.append({"unready": unready, "refused": time.perf_counter() - started})
        started = time.perf_counter()
        flip(target, (SHARD_MIB << 20) - 1)
        while w.ready() != 200:
            time.sleep(0.001)
        recover.append(time.perf_counter() - started)
    results["detection"] = {
        "unready_ms": statistics.median(d["unready"] for d in detect) * 1000,
        "refused_ms": statistics.median(d["refused"] for d in detect) * 1000,
        "ready_again_ms": statistics.median(recover) * 1000,
        "peer": "no event path: found at its next run (interval + one full verify)",
    }
    w.stop()


def stat_poll(results, tmp):
    """Many small files: what the poll costs idle, and how fast it finds a write no event
    reports."""
    model = tmp / "small"
    per_dir = 100
    for i in range(SMALL_FILES):
        d = model / f"d{i // per_dir:04}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i % per_dir:03}.bin").write_bytes(os.urandom(4096))
    key = tmp / "small.pem"
    run([MODELSEAL, "keygen", "--out", key])
    sig = tmp / "small.sig"
    run([MODELSEAL, "sign", model, "--key", key, "--signature", sig, "-q"])
    idle = {}
    configurations = (("stat poll off, leases off", ["--stat-interval", "0", "--no-leases"]),
                      ("stat poll 1s, leases off", ["--stat-interval", "1s", "--no-leases"]),
                      ("stat poll 1s, leases on (default)", ["--stat-interval", "1s"]))
    for label, flags in configurations:
        cpus, rss = [], []
        for rep in range(REPS):
            w = Watch(model, sig, f"{key}.pub", tmp / "idle.log", "--interval", "1h", *flags)
            w.wait_passes(1)
            time.sleep(1.5)
            cpu0 = proc_cpu(w.proc.pid)
            time.sleep(IDLE_S)
            cpus.append((proc_cpu(w.proc.pid) - cpu0) / IDLE_S)
            rss.append(proc_hwm_mib(w.proc.pid))
            w.stop()
        idle[label] = {"cpu_fraction_of_one_core": statistics.median(cpus),
                       "rss_mib": statistics.median(rss)}
    target = model / "d0042" / "f007.bin"
    link = tmp / "outside-link"
    os.link(target, link)
    detection = {}
    for label, flags in (("leases off (stat poll)", ["--no-leases"]),
                         ("leases on (default)", [])):
        w = Watch(model, sig, f"{key}.pub", tmp / "link.log", "--interval", "1h", *flags)
        w.wait_passes(1)
        caught = []
        for rep in range(REPS):
            while w.ready() != 200:
                time.sleep(0.01)
            started = time.perf_counter()
            flip(link, 100)
            while w.ready() != 503:
                if time.perf_counter() - started > 30:
                    raise SystemExit(f"hard-link write not caught:\n{w.log_path.read_text()}")
                time.sleep(0.005)
            caught.append(time.perf_counter() - started)
            flip(link, 100)
        w.stop()
        detection[label] = {"unready_ms": statistics.median(caught) * 1000,
                            "unready_ms_all": [c * 1000 for c in caught]}
    results["stat_poll"] = {"files": SMALL_FILES, "idle_seconds": IDLE_S, "idle": idle,
                            "hard_link_write": detection}


if __name__ == "__main__":
    sys.exit(main())
