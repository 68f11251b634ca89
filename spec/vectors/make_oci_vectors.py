"""Writes spec/vectors/oci/*.json: small OCI artifacts (manifest and layer bytes) and what
spec/oci.md §4 says they unpack to, or why they are refused. Run from the repository root
with the test venv: target/interop-venv/bin/python spec/vectors/make_oci_vectors.py"""

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import blake3

OUT = Path(__file__).resolve().parent / "oci"
MP = "application/vnd.cncf.model.{}.v1.{}"
IMG = "application/vnd.oci.image.layer.v1.{}"


def tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data.decode()
                tf.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = data.decode()
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def layer(media, content, annotations=None):
    d = {"mediaType": media, "digest": "sha256:" + hashlib.sha256(content).hexdigest(),
         "size": len(content), "contentHex": content.hex()}
    if annotations:
        d["annotations"] = annotations
    return d


def vector(name, comment, layers, expect, files=None):
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                           "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(), "size": 2},
                "layers": [{k: v for k, v in l.items() if k != "contentHex"} for l in layers]}
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    v = {"comment": comment, "expect": expect, "manifestHex": raw.hex(),
         "manifestDigest": "sha256:" + hashlib.sha256(raw).hexdigest(),
         "layers": [{"digest": l["digest"], "contentHex": l["contentHex"]} for l in layers]}
    if files is not None:
        v["files"] = [{"path": p, "size": len(b), "blake3": blake3.blake3(b).hexdigest()}
                      for p, b in sorted(files.items(), key=lambda kv: kv[0].encode())]
    (OUT / f"{name}.json").write_text(json.dumps(v, indent=2) + "\n")


weights, config, readme = b"\x01\x02" * 700, b'{"hidden": 8}\n', b"# tiny\n"
vector("modelpack-tar-raw-gzip", "ModelPack: a tar layer with ./ and parent directories, a raw layer named by annotation, a gzip layer",
       [layer(MP.format("weight", "tar"), tar([("./", "dir", b""), ("./w/", "dir", b""), ("./w/model.bin", "file", weights)])),
        layer(MP.format("weight.config", "raw"), config, {"org.cncf.model.filepath": "config.json"}),
        layer(MP.format("doc", "tar+gzip"), gzip.compress(tar([("README.md", "file", readme)]), mtime=0))],
       "ok", {"w/model.bin": weights, "config.json": config, "README.md": readme})
vector("image-two-layers", "a plain image: the model is the union of two gzip layers, paths from the image root",
       [layer(IMG.format("tar+gzip"), gzip.compress(tar([("models/", "dir", b""), ("models/a.bin", "file", weights)]), mtime=0)),
        layer(IMG.format("tar+gzip"), gzip.compress(tar([("models/", "dir", b""), ("models/b.json", "file", config)]), mtime=0))],
       "ok", {"models/a.bin": weights, "models/b.json": config})
vector("refused-escape", "a name that climbs out of the model",
       [layer(MP.format("weight", "tar"), tar([("../outside", "file", b"x")]))], "escape")
vector("refused-symlink", "a symbolic link (to anywhere) in a layer",
       [layer(MP.format("weight", "tar"), tar([("w.bin", "symlink", b"/etc/shadow")]))], "link")
vector("refused-hardlink", "a hard link to a file of the same layer",
       [layer(MP.format("weight", "tar"), tar([("a", "file", b"x"), ("b", "hardlink", b"a")]))], "link")
vector("refused-overlay", "the same path in two layers: a model is never an overlay",
       [layer(MP.format("weight", "tar"), tar([("a", "file", b"1")])),
        layer(MP.format("weight", "tar"), tar([("./a", "file", b"2")]))], "duplicate")
vector("refused-whiteout", "an overlay whiteout",
       [layer(IMG.format("tar"), tar([("models/.wh.old.bin", "file", b"")]))], "whiteout")
vector("refused-media-type", "a layer that is not a model layer",
       [layer("application/vnd.example.binary", b"anything")], "media-type")
print(f"wrote {len(list(OUT.glob('*.json')))} vectors to {OUT}", file=sys.stderr)
