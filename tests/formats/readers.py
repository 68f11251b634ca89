"""The readers a layer's bytes meet, each run on one blob and reduced to the state it
leaves: every non-directory path mapped to "file:SHA256", "symlink" or "other", later
entries replacing earlier ones, as extraction leaves them. A reader that fails raises
Refused. modelseal's reader is the `layer_files` example: the code `pull` runs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Dict

REPO = Path(__file__).resolve().parents[2]
LAYER_FILES = os.environ.get("MODELSEAL_LAYER_FILES",
                             str(REPO / "target" / "release" / "examples" / "layer_files"))
GOTAR = os.environ.get("MODELSEAL_GOTAR", str(REPO / "target" / "gotar"))

State = Dict[str, str]


class Refused(Exception):
    pass


def _tree(root: str) -> State:
    state: State = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if os.path.islink(path):
                state[rel] = "symlink"
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    state[rel] = "file:" + hashlib.sha256(f.read()).hexdigest()
            elif not os.path.isdir(path):
                state[rel] = "other"
    return state


def modelseal(blob: bytes, kind: str) -> State:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        run = subprocess.run([LAYER_FILES, kind, out], input=blob, capture_output=True,
                             timeout=60)
        if run.returncode != 0:
            raise AssertionError(f"layer_files failed: {run.stderr.decode(errors='replace')}")
        report = json.loads(run.stdout)
        if not report["accepted"]:
            raise Refused(report["error"])
        return _tree(out)


def gnu_tar(blob: bytes, kind: str) -> State:
    flags = {"tar": [], "tar+gzip": ["-z"], "tar+zstd": ["--zstd"]}[kind]
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(["tar", "-x", *flags, "-f", "-", "-C", tmp, "--no-same-owner",
                              "--no-same-permissions"],
                             input=blob, capture_output=True, timeout=60)
        if run.returncode != 0:
            raise Refused(run.stderr.decode(errors="replace")[:300])
        return _tree(tmp)


def decompress(blob: bytes, kind: str) -> bytes:
    """Every member or frame, as Python's gzip and the zstd tool decompress them."""
    try:
        if kind == "tar+gzip":
            return gzip.decompress(blob)
        if kind == "tar+zstd":
            run = subprocess.run(["zstd", "-d", "-q", "-c"], input=blob, capture_output=True,
                                 timeout=60)
            if run.returncode != 0:
                raise Refused(run.stderr.decode(errors="replace")[:300])
            return run.stdout
    except (OSError, EOFError) as e:
        raise Refused(str(e))
    return blob


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def python_tarfile(blob: bytes, kind: str) -> State:
    data = decompress(blob, kind)
    state: State = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for member in archive:
                name = _clean(member.name)
                if member.isdir():
                    state.pop(name, None)
                elif member.isreg():
                    content = archive.extractfile(member).read()
                    state[name] = "file:" + hashlib.sha256(content).hexdigest()
                elif member.islnk():
                    state[name] = state.get(_clean(member.linkname), "other")
                elif member.issym():
                    state[name] = "symlink"
                else:
                    state[name] = "other"
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise Refused(f"tarfile: {e}")
    return state


def go_archive_tar(blob: bytes, kind: str) -> State:
    data = decompress(blob, kind)
    run = subprocess.run([GOTAR], input=data, capture_output=True, timeout=60)
    if run.returncode != 0:
        raise AssertionError(f"gotar failed: {run.stderr.decode(errors='replace')}")
    report = json.loads(run.stdout)
    if "error" in report:
        raise Refused(f"archive/tar: {report['error']}")
    return report["files"]


REFERENCES = {"GNU tar": gnu_tar, "Python tarfile": python_tarfile,
              "Go archive/tar": go_archive_tar}
