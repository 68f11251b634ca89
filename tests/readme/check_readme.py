#!/usr/bin/env python3
"""Runs every command line the README shows in a ```sh block, against the real binary.

Each sh block is preceded by a marker comment:

    <!-- readme-test: run SETUP -->     run the block's commands in a fresh directory
                                       that SETUP (a function below) prepared
    <!-- readme-test: skip REASON -->  not run here; REASON says where it is tested

A block without a marker fails the check, so a new example cannot go untested by
accident. In a run block every line is a command (backslash continuations joined,
`#` comments dropped); each must exit 0, except `modelseal watch`, which must become
ready on the address it was given and stop cleanly on SIGTERM.

Usage: MODELSEAL=target/release/modelseal python3 tests/readme/check_readme.py [README.md]
Optional: MODEL_SIGNING=path/to/model_signing runs the model_signing lines too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELSEAL = Path(os.environ.get("MODELSEAL", ROOT / "target/release/modelseal")).resolve()
MODEL_SIGNING = os.environ.get("MODEL_SIGNING")
CHAINS = ROOT / "testdata/certs/chains"

MARKER = re.compile(r"<!--\s*readme-test:\s*(run|skip)\s+(.*?)\s*-->")


def blocks(readme: str):
    """(line number, marker kind, marker argument, [commands]) for every ```sh block."""
    lines = readme.splitlines()
    found = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i
            body = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            marker = None
            for back in range(start - 1, max(start - 4, -1), -1):
                m = MARKER.search(lines[back])
                if m:
                    marker = m
                    break
            joined = "\n".join(body).replace("\\\n", " ")
            commands = []
            for line in joined.splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    commands.append(words)
            found.append((start + 1, marker, commands))
        i += 1
    return found


def sh(cwd: Path, *args, check=True):
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    if check and result.returncode != 0:
        raise SystemExit(f"setup step failed: {args}\n{result.stdout}{result.stderr}")
    return result


def ms(cwd: Path, *args):
    return sh(cwd, MODELSEAL, *args)


def make_model(path: Path, seed: int = 1):
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"architectures": ["DemoModel"]}\n')
    (path / "model.safetensors").write_bytes(bytes((seed * 7 + i) % 251 for i in range(200_000)))
    (path / "README.md").write_text(f"# sample model {seed}\n")


# Setups: each prepares a fresh directory with what its block names.

def setup_quickstart(d: Path):
    make_model(d / "my-model")


def setup_completions(d: Path):
    pass  # the block needs nothing but the binary


def setup_oms(d: Path):
    make_model(d / "my-model")
    # A model published by someone else, its OMS signature inside it (as model-signing
    # and NVIDIA ship them), and a vendor's model signed with a certificate chain.
    make_model(d / "their-model", seed=2)
    ms(d, "keygen", "--out", "their-key", "--algorithm", "ecdsa-p256")
    ms(d, "sign", "their-model", "--format", "oms", "--key", "their-key",
       "--signature", "their-model/model.sig")
    make_model(d / "vendor-model", seed=3)
    ms(d, "sign", "vendor-model", "--format", "oms", "--key", CHAINS / "leaf-ok.key",
       "--certificate", CHAINS / "leaf-ok.pem", "--certificate-chain", CHAINS / "int.pem",
       "--signature", "vendor-model/model.sig")
    shutil.copy(CHAINS / "root.pem", d / "ca.pem")


def setup_lineage(d: Path):
    make_model(d / "model", seed=4)
    make_model(d / "base", seed=5)
    (d / "corpus").mkdir()
    (d / "corpus/train.jsonl").write_text('{"text": "a record"}\n')
    for name in ("curator", "release", "builder"):
        ms(d, "keygen", "--out", f"{name}.pem")
    ms(d, "sign", "base", "--key", "release.pem")
    ms(d, "attest", "training", "--model", "base", "--key", "builder.pem", "--dataset", "corpus",
       "--builder-id", "https://ci.example.com/trainer")
    write_policy(d)


def write_policy(d: Path):
    (d / "policy.toml").write_text(
        '[[signer]]\nname = "release"\nroles = ["model-publisher"]\nkey = "release.pem.pub"\n\n'
        '[[signer]]\nname = "ci"\nroles = ["training-builder"]\nkey = "builder.pem.pub"\n\n'
        '[[signer]]\nname = "data"\nroles = ["dataset-curator"]\nkey = "curator.pem.pub"\n')


def setup_cosign(d: Path):
    make_model(d / "my-model", seed=7)
    ms(d, "keygen", "--out", "alice-ec", "--algorithm", "ecdsa-p256")
    ms(d, "keygen", "--out", "bob")
    (d / "policy.toml").write_text(
        '[[signer]]\nname = "alice"\nroles = ["model-publisher"]\n'
        'keys = ["alice-ec.pub", "alice-pq.pub"]\nalgorithms = ["ecdsa-p256", "ml-dsa-65"]\n\n'
        '[[signer]]\nname = "bob"\nroles = ["model-publisher"]\nkey = "bob.pub"\n\n'
        '[roles.model-publisher]\nthreshold = 2\n')


def setup_update(d: Path):
    import hashlib
    make_model(d / "my-model", seed=8)
    ms(d, "keygen", "--out", "release.pem")
    ms(d, "keygen", "--out", "release-ec.pem", "--algorithm", "ecdsa-p256")
    time.sleep(2.2)  # past the racy margin, so the stamps record every file
    ms(d, "sign", "my-model", "--key", "release.pem")
    with open(d / "my-model/README.md", "a") as f:
        f.write("A typo fixed.\n")
    listing = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  ./{p.name}\n"
        for p in sorted((d / "my-model").iterdir()))
    (d / "my-model.sha256").write_text(listing)


def setup_watch(d: Path):
    make_model(d / "model", seed=6)
    ms(d, "keygen", "--out", "release.key")
    ms(d, "sign", "model", "--key", "release.key")


def setup_bom(d: Path):
    make_model(d / "chat", seed=7)
    (d / "corpus").mkdir()
    (d / "corpus/train.jsonl").write_text('{"text": "a record"}\n')
    for name in ("curator", "release", "builder", "bom"):
        ms(d, "keygen", "--out", f"{name}.pem")
    shutil.move(d / "bom.pem", d / "bom.key")
    ms(d, "sign", "corpus", "--kind", "dataset", "--key", "curator.pem")
    ms(d, "sign", "chat", "--key", "release.pem")
    ms(d, "attest", "training", "--model", "chat", "--key", "builder.pem", "--dataset", "corpus",
       "--param", "epochs=3")
    ms(d, "store", "add", "store", "corpus.sig", "chat.sig", "chat.provenance.sig")
    write_policy(d)


SETUPS = {name[len("setup_"):]: fn for name, fn in globals().items() if name.startswith("setup_")}


def free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_watch(d: Path, words: list[str]):
    # The README's port may be taken on this machine: the same command on a free one.
    at = words.index("--listen") + 1
    listen = f"127.0.0.1:{free_port()}"
    words = [*words[:at], listen, *words[at + 1:]]
    child = subprocess.Popen([str(MODELSEAL), *words[1:]], cwd=d, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{listen}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                out, err = child.communicate(timeout=5)
                return f"never ready on {listen} (exit {child.returncode})\n{out}{err}"
            time.sleep(0.1)
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=10)
        return None if code == 0 else f"exit {code} after SIGTERM"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def run_block(setup: str, commands: list[list[str]]) -> list[str]:
    failures = []
    with tempfile.TemporaryDirectory(prefix="readme-") as tmp:
        d = Path(tmp)
        SETUPS[setup](d)
        for words in commands:
            shown = shlex.join(words)
            # `COMMAND > FILE`: stdout into FILE, as the shell would.
            redirect = None
            if len(words) > 2 and words[-2] == ">":
                redirect, words = words[-1], words[:-2]
            if words[0] == "model_signing":
                if not MODEL_SIGNING:
                    print(f"  (MODEL_SIGNING not set) skipped: {shown}")
                    continue
                words = [MODEL_SIGNING, *words[1:]]
            elif words[0] != "modelseal":
                failures.append(f"{shown}: only modelseal and model_signing lines can run here")
                continue
            else:
                words = [str(MODELSEAL), *words[1:]]
            if words[1] == "watch":
                problem = run_watch(d, words)
            else:
                result = subprocess.run(words, cwd=d, capture_output=True, text=True, timeout=300)
                problem = None if result.returncode == 0 else (
                    f"exit {result.returncode}\n{result.stdout}{result.stderr}")
                if redirect is not None:
                    (d / redirect).write_text(result.stdout)
            print(f"  {'ok  ' if problem is None else 'FAIL'} {shown}")
            if problem:
                failures.append(f"{shown}: {problem}")
    return failures


def main() -> int:
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "README.md")
    failures = []
    ran = 0
    for line, marker, commands in blocks(readme.read_text()):
        if marker is None:
            failures.append(f"README line {line}: a sh block without a readme-test marker")
            continue
        kind, argument = marker.group(1), marker.group(2)
        if kind == "skip":
            print(f"README line {line}: skipped ({argument})")
            continue
        if argument not in SETUPS:
            failures.append(f"README line {line}: unknown setup {argument!r}")
            continue
        print(f"README line {line}: setup {argument}")
        failures += [f"README line {line}: {f}" for f in run_block(argument, commands)]
        ran += len(commands)
    if failures:
        print("\n".join(["", "README commands that failed:", *failures]), file=sys.stderr)
        return 1
    print(f"every README command ran ({ran} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
