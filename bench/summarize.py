#!/usr/bin/env python3
"""Summarise a bench/run.sh raw.csv: medians, ratios, and the targets.

Input columns: tool, rep, wall_s, max_rss_kib (one row per timed run).
Exit status: 0 when every target is met, 1 when one is missed, 2 on bad input.
Standard library only.
"""

import argparse
import csv
import statistics
import sys

LABELS = {
    "modelseal_sign": "modelseal sign",
    "modelseal_verify": "modelseal verify",
    "b3sum": "b3sum",
    "model_signing_sign": "model_signing sign key",
    "modelseal_sign_oms": "modelseal sign --format oms",
}

# Targets (see bench/README.md).
SIGN_VS_B3SUM_MAX = 1.10
VERIFY_VS_B3SUM_MAX = 1.10
MODEL_SIGNING_SLOWDOWN_MIN = 2.5
MODEL_SIGNING_VS_OMS_MIN = 1.5
MODELSEAL_RSS_MAX_MIB = 128.0


def load(path):
    runs = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"tool", "rep", "wall_s", "max_rss_kib"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                wall = float(row["wall_s"])
                rss_kib = int(row["max_rss_kib"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: bad number in {row}") from None
            runs.setdefault(row["tool"], []).append((wall, rss_kib / 1024.0))
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw_csv")
    ap.add_argument("--bytes", type=int, default=0,
                    help="model size in bytes, to print throughput")
    args = ap.parse_args()

    try:
        runs = load(args.raw_csv)
    except (OSError, ValueError) as e:
        print(f"summarize.py: {e}", file=sys.stderr)
        return 2
    missing = [t for t in LABELS if t not in runs]
    if missing:
        print(f"summarize.py: no runs of {', '.join(missing)} in {args.raw_csv}", file=sys.stderr)
        return 2

    wall = {t: statistics.median(w for w, _ in runs[t]) for t in runs}
    rss = {t: statistics.median(r for _, r in runs[t]) for t in runs}

    out = []
    reps = sorted({len(v) for v in runs.values()})
    out.append(f"runs per tool: {'/'.join(map(str, reps))}   (medians over runs; wall clock, warm page cache)")
    if args.bytes:
        out.append(f"model size: {args.bytes / 2**30:.3f} GiB ({args.bytes} bytes)")
    out.append("")
    head = f"{'tool':<24}{'wall s':>9}{'min':>9}{'max':>9}{'GiB/s':>8}{'RSS MiB':>10}{'max RSS':>10}"
    out.append(head)
    out.append("-" * len(head))
    order = list(LABELS) + sorted(t for t in runs if t not in LABELS)
    for t in order:
        walls = [w for w, _ in runs[t]]
        rate = f"{args.bytes / 2**30 / wall[t]:8.2f}" if args.bytes and wall[t] > 0 else f"{'-':>8}"
        out.append(
            f"{LABELS.get(t, t):<24}{wall[t]:9.3f}{min(walls):9.3f}{max(walls):9.3f}{rate}"
            f"{rss[t]:10.1f}{max(r for _, r in runs[t]):10.1f}"
        )
    out.append("")

    def ratio(a, b):
        return wall[a] / wall[b] if wall[b] > 0 else float("inf")

    sign_b3 = ratio("modelseal_sign", "b3sum")
    verify_b3 = ratio("modelseal_verify", "b3sum")
    speedup = ratio("model_signing_sign", "modelseal_sign")
    oms_speedup = ratio("model_signing_sign", "modelseal_sign_oms") if "modelseal_sign_oms" in wall else None
    ms_rss = max(r for t in ("modelseal_sign", "modelseal_verify", "modelseal_sign_oms") if t in runs for _, r in runs[t])

    checks = [
        ("modelseal sign / b3sum", f"{sign_b3:.3f}x", f"<= {SIGN_VS_B3SUM_MAX:.2f}x",
         sign_b3 <= SIGN_VS_B3SUM_MAX),
        ("modelseal verify / b3sum", f"{verify_b3:.3f}x", f"<= {VERIFY_VS_B3SUM_MAX:.2f}x",
         verify_b3 <= VERIFY_VS_B3SUM_MAX),
        ("model_signing / modelseal sign", f"{speedup:.2f}x", f">= {MODEL_SIGNING_SLOWDOWN_MIN:.2f}x",
         speedup >= MODEL_SIGNING_SLOWDOWN_MIN),
    ]
    if oms_speedup is not None:
        checks.append(("model_signing / modelseal sign --format oms", f"{oms_speedup:.2f}x",
                       f">= {MODEL_SIGNING_VS_OMS_MIN:.2f}x", oms_speedup >= MODEL_SIGNING_VS_OMS_MIN))
    checks += [
        ("modelseal peak RSS (worst run)", f"{ms_rss:.1f} MiB", f"< {MODELSEAL_RSS_MAX_MIB:.0f} MiB",
         ms_rss < MODELSEAL_RSS_MAX_MIB),
    ]
    head = f"{'check (ratios of median wall times)':<44}{'value':>12}{'target':>14}  result"
    out.append(head)
    out.append("-" * len(head))
    for name, value, target, ok in checks:
        out.append(f"{name:<44}{value:>12}{target:>14}  {'PASS' if ok else 'FAIL'}")
    passed = sum(ok for *_, ok in checks)
    out.append("")
    out.append(f"overall: {'PASS' if passed == len(checks) else 'FAIL'} ({passed}/{len(checks)} targets met)")

    print("\n".join(out))
    return 0 if passed == len(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
