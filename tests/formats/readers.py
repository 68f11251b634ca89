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


class NotApplicable(Exception):
    """The reader does not take this kind of layer at all (umoci 0.4.7 and zstd)."""


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


LAYER_MEDIA_TYPES = {"tar": "application/vnd.oci.image.layer.v1.tar",
                     "tar+gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
                     "tar+zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}


def _blob(layout: str, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def umoci(blob: bytes, kind: str) -> State:
    """The layer as a container runtime applies it: an OCI image layout holding this one
    layer, unpacked by `umoci unpack` (Go: its own decompressors, archive/tar, and the
    runtime's rules for whiteouts, links and paths). umoci 0.4.7 predates zstd layers."""
    if kind == "tar+zstd":
        raise NotApplicable(kind)
    with tempfile.TemporaryDirectory() as tmp:
        layout = os.path.join(tmp, "image")
        os.mkdir(layout)
        with open(os.path.join(layout, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        diff_id = "sha256:" + hashlib.sha256(decompress(blob, kind)).hexdigest()
        config = _blob(layout, json.dumps({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode(),
            "application/vnd.oci.image.config.v1+json")
        manifest = _blob(layout, json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": [_blob(layout, blob, LAYER_MEDIA_TYPES[kind])]}).encode(),
            "application/vnd.oci.image.manifest.v1+json")
        manifest["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [manifest]}, f)
        bundle = os.path.join(tmp, "bundle")
        run = subprocess.run(["umoci", "unpack", "--rootless", "--image", layout + ":latest",
                              bundle], capture_output=True, timeout=60)
        if run.returncode != 0:
            raise Refused("umoci: " + run.stderr.decode(errors="replace")[-300:])
        return _tree(os.path.join(bundle, "rootfs"))


REFERENCES = {"GNU tar": gnu_tar, "Python tarfile": python_tarfile,
              "Go archive/tar": go_archive_tar, "umoci": umoci}
