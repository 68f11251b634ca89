#!/usr/bin/env python3
"""Verified loading against the same framework's unverified loading (issue 14), run with
the framework venv tests/run.sh builds (torch, safetensors, numpy):

    VENV/bin/python bench/frameworks.py [--gib 2] [--reps 7] [--out results.json]

Two files, written once with safetensors.torch (random bytes):
  big   GIB GiB of 16 MiB float32 tensors
  many  20,000 tensors of 1-32 KiB (about 330 MiB): per-tensor overheads
Each signed natively twice (whole-file, and with outboards), and as OMS (SHA-256 files).
Page cache warm (but for cold.*); every load in a fresh process of its own, timed
inside it, interleaved with its peer in each round; medians.

  np.load        safetensors.numpy.load_file        vs  modelseal.numpy.load_file
  pt.load        safetensors.torch.load_file        vs  modelseal.torch.load_file
  pt.load+touch  the same, then one read of every 4 KiB page of every tensor: torch's
                 unverified load is a lazy mmap that reads nothing until the tensors are
                 used, so this is the pair that compares bytes in memory with bytes in
                 memory
  open           safe_open of the big file (outboards) and keys(): both packages, with
                 an ECDSA P-256 and an Ed25519 signature
  tensor         get_tensor of one tensor of 64 KiB .. 16 MiB on an open file
  pt.load-bytes  safetensors.torch.load(bytes) vs modelseal.torch.load(bytes): the file
                 read into memory first, as transformers does where mmap is off
  oms            modelseal.torch.load_file under an OMS (SHA-256 per file) signature
  cold.*         the big file's loads with the page cache dropped before each run
"""
import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open as plain_safe_open
from safetensors.numpy import load_file as plain_np_load
from safetensors.torch import load as plain_pt_bytes
from safetensors.torch import load_file as plain_pt_load
from safetensors.torch import save_file

import modelseal.numpy as msnp
import modelseal.torch as mst

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "frameworks"
EXE = REPO / "target" / "release" / "modelseal"


def sh(*args):
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def make(path: Path, sizes):
    """A safetensors file of float32 tensors with these byte sizes, random content."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    tensors = {f"t.{i:05d}": torch.from_numpy(np.frombuffer(rng.bytes(s), dtype=np.float32).copy())
               for i, s in enumerate(sizes)}
    save_file(tensors, str(path))


def sign(model: Path, key: Path, sig: Path, *extra):
    if not sig.exists():
        sh(EXE, "sign", model, "--key", key, "--signature", sig, "-q", *extra)


def touch(state):
    """Reads one byte of every 4 KiB page of every tensor."""
    total = 0
    for t in state.values():
        flat = t.reshape(-1).view(torch.uint8) if isinstance(t, torch.Tensor) else t.reshape(-1).view(np.uint8)
        total += int(flat[::4096].sum())
    return total


def timed(fn):
    gc.collect()
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    del out
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warm-gib", type=int, default=12)
    ap.add_argument("--out")
    ap.add_argument("--loads-only", action="store_true", help="only the whole-file loads")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # child mode: time one load once
    args = ap.parse_args()
    key = WORK / "key"
    if not key.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        sh(EXE, "keygen", "--algorithm", "ecdsa-p256", "--out", key)
    pub = f"{key}.pub"
    files = {}
    for name, sizes in {
        "big": [16 << 20] * (args.gib * 64),
        "many": [4 * (256 + (i * 2654435761) % 7936) for i in range(20_000)],
    }.items():
        model = WORK / f"{name}-{args.gib}g" if name == "big" else WORK / name
        make(model / "model.safetensors", sizes)
        sign(model, key, model.with_suffix(".sig"))
        sign(model, key, model.with_suffix(".ob.sig"), "--outboard")
        sign(model, key, model.with_suffix(".oms.sig"), "--format", "oms")
        files[name] = (model / "model.safetensors", model.with_suffix(".sig"),
                       model.with_suffix(".ob.sig"), model.with_suffix(".oms.sig"))
        (model / "model.safetensors").read_bytes()  # warm the page cache

    cases = {}
    for name, (path, sig, ob_sig, oms_sig) in files.items():
        p = str(path)
        cases[f"{name}.np.load.plain"] = lambda p=p: plain_np_load(p)
        cases[f"{name}.np.load.verified"] = lambda p=p, s=sig: msnp.load_file(p, signature=s, key=pub)
        cases[f"{name}.pt.load.plain"] = lambda p=p: plain_pt_load(p)
        cases[f"{name}.pt.load.verified"] = lambda p=p, s=sig: mst.load_file(p, signature=s, key=pub)
        cases[f"{name}.pt.load+touch.plain"] = lambda p=p: touch(plain_pt_load(p))
        cases[f"{name}.pt.load+touch.verified"] = lambda p=p, s=sig: touch(mst.load_file(p, signature=s, key=pub))
        cases[f"{name}.pt.load-bytes.plain"] = lambda p=p: plain_pt_bytes(Path(p).read_bytes())
        cases[f"{name}.pt.load-bytes.verified"] = lambda p=p, s=sig: mst.load(
            Path(p).read_bytes(), signature=s, key=pub, name="model.safetensors")
        cases[f"{name}.pt.load.verified-oms"] = lambda p=p, s=oms_sig: mst.load_file(p, signature=s, key=pub)

    big, big_sig, big_ob, _ = files["big"]
    # Cold page cache: the first load after a download or a reboot, where the disk sets
    # the pace. Each run starts with the caches dropped (needs root; skipped otherwise).
    cold = os.access("/proc/sys/vm/drop_caches", os.W_OK)

    def dropped(fn):
        def run():
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            return fn()
        return run

    if cold:
        p = str(big)
        cases["cold.big.np.load.plain"] = dropped(lambda: plain_np_load(p))
        cases["cold.big.np.load.verified"] = dropped(lambda: msnp.load_file(p, signature=big_sig, key=pub))
        cases["cold.big.pt.load+touch.plain"] = dropped(lambda: touch(plain_pt_load(p)))
        cases["cold.big.pt.load+touch.verified"] = dropped(
            lambda: touch(mst.load_file(p, signature=big_sig, key=pub)))

    def open_plain():
        with plain_safe_open(str(big), framework="pt") as f:
            return f.keys()

    def open_verified():
        with mst.safe_open(big, "pt", signature=big_ob, key=pub) as f:
            return f.keys()

    # The same with an Ed25519 key (`modelseal keygen`'s default; OMS needs ECDSA).
    ed_key = WORK / "key-ed25519"
    if not ed_key.exists():
        sh(EXE, "keygen", "--out", ed_key)
    ed_sig = big.parent.with_suffix(".ob-ed25519.sig")
    sign(big.parent, ed_key, ed_sig, "--outboard")

    def open_verified_ed25519():
        with mst.safe_open(big, "pt", signature=ed_sig, key=f"{ed_key}.pub") as f:
            return f.keys()

    if args.case:
        print(json.dumps({"seconds": timed(cases[args.case])}))
        return
    # This VM reports freed 2 MiB blocks to its host at once (free page reporting), so
    # every fresh buffer (both peers allocate one per load) was faulted in from the host
    # again, at up to a second per GiB, swamping what is measured. Reporting is delayed
    # for the run where the kernel allows it (restored at the end), the memory the runs
    # need is touched once up front, and every case runs once unmeasured.
    reporting = Path("/sys/module/page_reporting/parameters/min_free_ms")
    saved = reporting.read_text() if reporting.exists() else None
    try:
        reporting.write_text("60000\n")
    except OSError:
        saved = None
    warm = np.empty(args.warm_gib << 30, dtype=np.uint8)
    warm[::4096] = 1
    del warm
    results = {name: [] for name in cases}
    opens = {"open.plain": [], "open.verified": [], "open.verified-ed25519": []}
    for _ in range(args.reps):
        for name in cases:
            # Each load in a process of its own, as a loader starts and loads a model
            # once: neither peer reuses memory a previous load freed. Only the load
            # itself is timed, inside the child.
            child = subprocess.run([sys.executable, __file__, "--gib", str(args.gib), "--case", name],
                                   check=True, capture_output=True, text=True)
            results[name].append(json.loads(child.stdout.strip().splitlines()[-1])["seconds"])
        if args.loads_only:
            continue
        gc.collect()
        for _ in range(20):
            for key_name, fn in (("open.plain", open_plain), ("open.verified", open_verified),
                                 ("open.verified-ed25519", open_verified_ed25519)):
                start = time.perf_counter()
                fn()
                opens[key_name].append(time.perf_counter() - start)
    results.update(opens)

    if args.loads_only:
        sizes = []
    else:
        sizes = [64 << 10, 1 << 20, 4 << 20, 16 << 20]
    # Per-tensor cost with outboards: one tensor of each size, on an open file.
    scratch = WORK / "sizes" / "model.safetensors"
    make(scratch, sizes * 4)
    sign(scratch.parent, key, scratch.parent.with_suffix(".ob.sig"), "--outboard")
    scratch.read_bytes()
    with mst.safe_open(scratch, "pt", signature=scratch.parent.with_suffix(".ob.sig"), key=pub) as f, \
            plain_safe_open(str(scratch), framework="pt") as g:
        names = f.offset_keys()
        for i, size in enumerate(sizes):
            n = names[len(sizes) + i]  # the second of each size: not next to the header
            ours, theirs = [], []
            for _ in range(args.reps * 5):
                ours.append(timed(lambda: f.get_tensor(n)))
                theirs.append(timed(lambda: g.get_tensor(n).clone()))
            results[f"tensor.{size >> 10}KiB.verified"] = ours
            results[f"tensor.{size >> 10}KiB.plain+copy"] = theirs

    if saved is not None:
        reporting.write_text(saved)
    medians = {name: statistics.median(v) for name, v in results.items() if v}
    ratios = {}
    for name in medians:
        if ".verified" in name:
            base, _, variant = name.partition(".verified")
            label = base + variant
            for peer in (".plain", ".plain+copy"):
                if base + peer in medians:
                    ratios[label] = round(medians[name] / medians[base + peer], 3)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "gib": args.gib,
        "reps": args.reps,
        "page_reporting_delayed": saved is not None,
        "median_seconds": {k: round(v, 6) for k, v in medians.items()},
        "ratio_verified_to_plain": ratios,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
