#!/usr/bin/env python3
"""The watch invariant (spec/watch.md §0) under attack: `modelseal watch` runs against a
real signed model while this script drives random sequences of hostile operations on it
(writes by path and through hard links, writes through shared mappings held across
checks, rename dances, same-size writes with the times put back, truncate and re-extend,
links swapped in, files held open for writing, new files and directories, bind mounts
when run as root) and restores. An independent oracle samples every 50 ms: its own
hashes of the signed bytes, its own walk of the model, and every process's descriptors
and mappings read from /proc. Whenever /readyz answers 200 while the oracle sees a
violation, the window is timed; the run fails if one lasts longer than the bound (1 s).

Usage: adversarial.py [--seconds N] [--seed S] [--modelseal PATH]
Prints one JSON summary line: operations tried, samples, violations seen, worst window.
Standard library only."""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = 0.05
BOUND = 1.0


class Model:
    """The signed model and what the hostile side has done to it."""

    def __init__(self, root: Path, rng: random.Random):
        self.root = root
        self.dir = root / "model"
        self.outside = root / "outside"
        self.outside.mkdir()
        self.rng = rng
        files = {
            "weights.bin": rng.randbytes(256 << 10),
            "config.json": b'{"layers": 2}\n',
            "tokenizer/vocab.txt": b"a\nb\nc\n",
            "sub/deep/extra.bin": rng.randbytes(64 << 10),
        }
        for rel, data in files.items():
            (self.dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.dir / rel).write_bytes(data)
        (self.dir / "empty").mkdir()  # a place to mount over
        self.signed = {rel: hashlib.sha256(data).digest() for rel, data in files.items()}
        self.original = files
        self.maps: list[tuple[float, mmap.mmap]] = []
        self.writers: list[tuple[float, object]] = []
        self.mounted: list[Path] = []
        self.counter = 0

    # The oracle.

    def violation(self) -> str | None:
        for rel, digest in self.signed.items():
            path = self.dir / rel
            try:
                if path.is_symlink() or not path.is_file():
                    return f"{rel} is not a regular file"
                if hashlib.sha256(path.read_bytes()).digest() != digest:
                    return f"{rel} differs from its signed bytes"
            except OSError as e:
                return f"{rel}: {e}"
        for folder, dirs, names in os.walk(self.dir):
            for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
                rel = os.path.relpath(os.path.join(folder, name), self.dir)
                if rel not in self.signed:
                    return f"unsigned {rel}"
        return self.writer()

    def writer(self) -> str | None:
        ids = set()
        for rel in self.signed:
            try:
                st = os.stat(self.dir / rel)
                ids.add((st.st_dev, st.st_ino))
            except OSError:
                pass
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                    if (st.st_dev, st.st_ino) not in ids:
                        continue
                    with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                        flags = next(int(line.split()[1], 8) for line in info
                                     if line.startswith("flags:"))
                    if flags & 3 in (os.O_WRONLY, os.O_RDWR):
                        return f"process {pid} holds a signed file open for writing"
                except (OSError, StopIteration):
                    continue
            try:
                with open(f"/proc/{pid}/maps") as maps:
                    for line in maps:
                        parts = line.split()
                        if len(parts) < 5 or parts[1][1] != "w" or parts[1][3] != "s":
                            continue
                        major, minor = (int(x, 16) for x in parts[3].split(":"))
                        if (os.makedev(major, minor), int(parts[4])) in ids:
                            return f"process {pid} maps a signed file writable"
            except OSError:
                continue
        return None

    # Hostile operations. Each may leave the model violated; `restore` undoes all.

    def pick(self) -> Path:
        return self.dir / self.rng.choice(sorted(self.signed))

    def flip(self, f, size: int) -> None:
        at = self.rng.randrange(max(size, 1))
        f.seek(at)
        old = f.read(1) or b"\0"
        f.seek(at)
        f.write(bytes([old[0] ^ 0xFF]))

    def write_by_path(self):
        path = self.pick()
        with open(path, "r+b") as f:
            self.flip(f, path.stat().st_size)

    def write_through_hard_link(self):
        path = self.pick()
        link = self.outside / f"link-{self.counter}"
        self.counter += 1
        os.link(path, link)
        with open(link, "r+b") as f:
            self.flip(f, link.stat().st_size)
        link.unlink()

    def write_through_held_mapping(self):
        path = self.pick()
        if path.stat().st_size == 0:
            return
        with open(path, "r+b") as f:
            mapped = mmap.mmap(f.fileno(), 0)
        # The descriptor is closed; the mapping stays, across checks, and is written later.
        self.maps.append((time.monotonic() + self.rng.uniform(0.3, 3.0), mapped))

    def hold_open_for_writing(self):
        f = open(self.pick(), "r+b")
        self.writers.append((time.monotonic() + self.rng.uniform(0.2, 2.0), f))

    def rename_dance(self):
        path = self.pick()
        temp = self.outside / f"new-{self.counter}"
        self.counter += 1
        data = bytearray(path.read_bytes())
        if data and self.rng.random() < 0.7:
            data[self.rng.randrange(len(data))] ^= 0xFF
        temp.write_bytes(data)
        os.replace(temp, path)

    def same_size_times_restored(self):
        path = self.pick()
        st = path.stat()
        with open(path, "r+b") as f:
            self.flip(f, st.st_size)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    def truncate_and_extend(self):
        path = self.pick()
        data = path.read_bytes()
        with open(path, "r+b") as f:
            f.truncate(0)
            time.sleep(self.rng.uniform(0, 0.3))
            f.write(data)
        # The same bytes in the end: only the moments between were violations.

    def link_swapped_in(self):
        path = self.pick()
        copy = self.outside / f"copy-{self.counter}"
        self.counter += 1
        shutil.copyfile(path, copy)
        temp = self.outside / f"symlink-{self.counter}"
        os.symlink(copy, temp)
        os.replace(temp, path)

    def unsigned_file(self):
        folder = self.rng.choice([self.dir, self.dir / "tokenizer", self.dir / "sub/deep"])
        (folder / f"modeling_{self.counter}.py").write_bytes(b"import os\n")
        self.counter += 1

    def new_directory_and_file(self):
        folder = self.dir / f"new-{self.counter}"
        self.counter += 1
        folder.mkdir()
        time.sleep(self.rng.uniform(0, 0.5))
        (folder / "evil.py").write_bytes(b"import os\n")

    def bind_mount(self):
        if os.geteuid() != 0 or self.mounted:
            return
        evil = self.outside / "evil-mount"
        evil.mkdir(exist_ok=True)
        (evil / "modeling_evil.py").write_bytes(b"import os\n")
        target = self.dir / "empty"
        if subprocess.run(["mount", "--bind", str(evil), str(target)],
                          capture_output=True).returncode == 0:
            self.mounted.append(target)

    def tick(self):
        """Writes through held mappings, and lets go of those whose time is up."""
        now = time.monotonic()
        for until, mapped in list(self.maps):
            if self.rng.random() < 0.5 and len(mapped):
                at = self.rng.randrange(len(mapped))
                mapped[at] = mapped[at] ^ 0xFF
            if now >= until:
                mapped.close()
                self.maps.remove((until, mapped))
        for until, f in list(self.writers):
            if now >= until:
                f.close()
                self.writers.remove((until, f))

    def restore(self):
        for _, mapped in self.maps:
            mapped.close()
        for _, f in self.writers:
            f.close()
        self.maps, self.writers = [], []
        for target in self.mounted:
            subprocess.run(["umount", str(target)], capture_output=True)
        self.mounted = []
        for folder, dirs, names in os.walk(self.dir, topdown=False):
            for name in names + dirs:
                path = Path(folder) / name
                rel = os.path.relpath(path, self.dir)
                if rel in self.signed or rel in ("empty", "tokenizer", "sub", "sub/deep"):
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        for rel, data in self.original.items():
            path = self.dir / rel
            if path.is_symlink() or not path.is_file():
                path.unlink()
            if not path.exists() or path.read_bytes() != data:
                with open(path, "wb") as f:
                    f.write(data)


OPERATIONS = ["write_by_path", "write_through_hard_link", "write_through_held_mapping",
              "hold_open_for_writing", "rename_dance", "same_size_times_restored",
              "truncate_and_extend", "link_swapped_in", "unsigned_file",
              "new_directory_and_file", "bind_mount"]


def run(cmd, cwd):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True)
    if out.returncode != 0:
        sys.exit(f"{cmd}: {out.stderr.decode(errors='replace')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--modelseal", default=os.environ.get(
        "MODELSEAL", str(REPO / "target" / "release" / "modelseal")))
    parser.add_argument("--bound", type=float, default=BOUND)
    parser.add_argument("--watch-flag", action="append", default=[],
                        help="an extra flag for watch (to weaken it, showing the test can fail)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="watch-adversarial-"))
    model = Model(root, rng)
    run([args.modelseal, "keygen", "--out", "k"], root)
    run([args.modelseal, "sign", "model", "--key", "k"], root)
    log = open(root / "watch.log", "wb")
    watch = subprocess.Popen([args.modelseal, "watch", "model", "--key", "k.pub",
                              "--listen", "127.0.0.1:0", *args.watch_flag], cwd=root, stdout=log,
                             stderr=subprocess.STDOUT)
    port = None
    started = time.monotonic()
    while port is None and time.monotonic() - started < 20:
        for line in (root / "watch.log").read_text().splitlines():
            if '"listening"' in line:
                port = int(json.loads(line)["addr"].rsplit(":", 1)[1])
        time.sleep(0.05)
    if port is None:
        watch.kill()
        sys.exit("watch did not start: " + (root / "watch.log").read_text())

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    while not ready():
        if time.monotonic() - started > 20:
            sys.exit("watch never became ready: " + (root / "watch.log").read_text())
        time.sleep(0.05)

    stop = threading.Event()
    stats = {"samples": 0, "violated": 0, "violations": 0, "readyWhileViolated": 0,
             "worstWindow": 0.0, "worstWindowSamples": 0, "worstViolation": None,
             "slowestSample": 0.0}

    def oracle():
        window_start, window_samples = None, 0
        was_wrong = False
        while not stop.is_set():
            # The oracle looks first, then asks watch: a 200 after a violation was seen
            # is a miss; the other order would count an operation that began between the
            # two looks.
            t = time.monotonic()
            wrong = model.violation()
            said_ready = ready()
            stats["samples"] += 1
            if wrong:
                stats["violated"] += 1
                stats["violations"] += not was_wrong
            was_wrong = bool(wrong)
            if said_ready and wrong:
                stats["readyWhileViolated"] += 1
                if window_start is None:
                    window_start, window_samples = t, 0
                window_samples += 1
                window = time.monotonic() - window_start
                if window > stats["worstWindow"]:
                    stats["worstWindow"] = round(window, 3)
                    stats["worstWindowSamples"] = window_samples
                    stats["worstViolation"] = wrong
            else:
                window_start = None
            took = time.monotonic() - t
            stats["slowestSample"] = max(stats["slowestSample"], round(took, 3))
            time.sleep(max(0.0, SAMPLE - took))

    thread = threading.Thread(target=oracle, daemon=True)
    thread.start()
    counts = {name: 0 for name in OPERATIONS + ["restore"]}
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            name = rng.choice(OPERATIONS)
            getattr(model, name)()
            counts[name] += 1
            for _ in range(rng.randrange(1, 20)):
                model.tick()
                time.sleep(0.05)
            if rng.random() < 0.6:
                model.restore()
                counts["restore"] += 1
                # The next operation then meets a ready watch, where a miss would count.
                settle = time.monotonic()
                while not ready() and time.monotonic() - settle < 5:
                    time.sleep(0.05)
    finally:
        model.restore()
        stop.set()
        thread.join()
        watch.terminate()
        watch.wait(timeout=10)
    summary = {"seed": seed, "seconds": args.seconds, "operations": counts,
               "root": str(root), **stats, "bound": args.bound}
    print(json.dumps(summary))
    if stats["worstWindow"] > args.bound:
        print(f"FAILED: watch said ready for {stats['worstWindow']} s while: "
              f"{stats['worstViolation']} (watch log: {root / 'watch.log'})", file=sys.stderr)
        return 1
    if stats["violated"] == 0:
        print("FAILED: no operation made a violation the oracle saw", file=sys.stderr)
        return 1
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
