"""The modelseal container image, built by deploy/image/build.sh (buildah, FROM scratch, no
Docker daemon), pushed to a real registry on loopback (CNCF distribution 2.8, TLS), then:

* its manifest and config as skopeo reads them (OCI media types, gzip layers, entrypoint,
  user, labels);
* its layers downloaded blob by blob and unpacked into a root filesystem that holds exactly
  the binary, the libraries ldd names, the loader, the CA bundle, passwd/group, /tmp and the
  nonroot home, and nothing that is a link;
* the binary run from that root filesystem under chroot (`--version`, `--help`, and keygen,
  hash, sign and verify of a small model as uid 65532), since no container can run here;
* the image signed and verified by modelseal itself as an `oci://` reference, and the same
  tag pushed over by a rebuilt image with one extra file refused with the original bundle.
"""

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

import registry as r
from conftest import write_small_model
from test_oci_cli import BIN, KEY, PUB, ms

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy/image/build.sh"
REPO = "modelseal/modelseal"
LABEL_SOURCE = "https://github.com/modelseal/modelseal"

pytestmark = pytest.mark.skipif(
    shutil.which("buildah") is None,
    reason="buildah is not installed (Debian: apt-get install -y buildah); "
    "deploy/image/build.sh builds the image with it",
)


def build(reg, tmp_path, tag, *extra, timeout=300):
    """Run build.sh, pushing to reg as REPO:tag; returns (digest, seconds, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "STORAGE_OPTS")}
    # The script's work directory (buildah's storage) under tmp_path, removed when it exits.
    env["TMPDIR"] = str(tmp_path)
    started = time.monotonic()
    out = subprocess.run(
        [SCRIPT, "--binary", BIN, "--push", f"{reg.host}/{REPO}:{tag}", "--cert-dir", reg.cert_dir,
         "--authfile", reg.auth_file, *map(str, extra)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    seconds = time.monotonic() - started
    assert out.returncode == 0, f"build.sh failed:\n{out.stderr}"
    digest = out.stdout.strip()
    assert digest.startswith("sha256:") and len(digest) == 71, out.stdout
    return digest, seconds, out.stderr


def binary_version():
    out = subprocess.run([BIN, "--version"], capture_output=True, text=True, check=True)
    name, version = out.stdout.split()[:2]
    assert name == "modelseal"
    return version


def ldd_paths(binary):
    """The absolute paths ldd prints for binary: each library and the loader."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = []
    for line in out.splitlines():
        words = line.split()
        if "=>" in words:
            paths.append(words[words.index("=>") + 1])
        elif words and words[0].startswith("/"):
            paths.append(words[0])
    return paths


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    with r.LocalRegistry(tmp_path_factory.mktemp("image-registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def image(reg, tmp_path_factory):
    """The image built and pushed as REPO:TAG (also written as an OCI layout)."""
    d = tmp_path_factory.mktemp("image")
    tag = binary_version()
    digest, seconds, log = build(reg, d, tag, "--layout", d / "layout")
    return {"tag": tag, "digest": digest, "seconds": seconds, "layout": d / "layout", "log": log}


@pytest.fixture(scope="module")
def manifest(reg, image):
    raw = r.skopeo_inspect_raw(reg, REPO, image["tag"])
    assert r.sha256_digest(raw) == image["digest"], "the pushed digest is the manifest's"
    return json.loads(raw)


@pytest.fixture(scope="module")
def rootfs(reg, image, manifest, tmp_path_factory):
    """The image's layers downloaded from the registry and unpacked in order."""
    root = tmp_path_factory.mktemp("rootfs") / "root"
    root.mkdir()
    members = {}
    for layer in manifest["layers"]:
        blob = reg.get_blob(REPO, layer["digest"])  # checks the digest
        path = root.parent / layer["digest"].replace(":", "-")
        path.write_bytes(blob)
        with tarfile.open(path, "r:*") as tf:
            batch = tf.getmembers()
            for m in batch:
                name = m.name[2:] if m.name.startswith("./") else m.name
                name = name.rstrip("/")
                assert name and not m.name.startswith("/") and ".." not in name.split("/"), m.name
                assert m.isfile() or m.isdir(), f"{m.name} is neither a file nor a directory"
                assert not name.rsplit("/", 1)[-1].startswith(".wh."), f"whiteout {m.name}"
                members[name] = m
            # Checked above: only files and directories, inside the root. Modes (the sticky
            # /tmp) and owners (65532) are kept, which the stricter filters would change.
            tf.extractall(root, members=batch, numeric_owner=True, filter="fully_trusted")
        path.unlink()
    return root, members


def test_the_manifest_and_config_are_oci_with_the_entrypoint_user_and_labels(reg, image, manifest):
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == r.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == r.OCI_IMAGE_CONFIG
    assert len(manifest["layers"]) == 1
    assert [l["mediaType"] for l in manifest["layers"]] == [r.OCI_LAYER_TAR_GZIP]

    out = r.run(["skopeo", "inspect", "--config", "--cert-dir", reg.cert_dir, "--authfile",
                 reg.auth_file, f"docker://{reg.ref(REPO, image['tag'])}"], timeout=60)
    config = json.loads(out.stdout)
    assert config["os"] == "linux"
    assert config["created"] == "1970-01-01T00:00:00Z"  # --timestamp 0
    c = config["config"]
    assert c["Entrypoint"] == ["/usr/local/bin/modelseal"]
    assert c["Cmd"] == ["--help"]
    assert c["User"] == "65532:65532"
    assert c["WorkingDir"] == "/"
    labels = c["Labels"]
    assert labels["org.opencontainers.image.source"] == LABEL_SOURCE
    assert labels["org.opencontainers.image.version"] == binary_version()
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])

    # The OCI layout written by the same run holds the same manifest: one build, two outputs.
    index = json.loads((image["layout"] / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["digest"] == image["digest"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == image["tag"]


def test_the_layers_hold_exactly_the_binary_its_libraries_and_base_files(rootfs):
    root, members = rootfs
    files = {n for n, m in members.items() if m.isfile()}
    libs = {p.lstrip("/") for p in ldd_paths(BIN)}
    assert any("ld-linux" in p for p in libs), libs
    # The man pages are the ones the binary writes, page for page.
    pages = Path(tempfile.mkdtemp()) / "man1"
    subprocess.run([BIN, "man", "--out", pages, "-q"], check=True)
    man = {f"usr/local/share/man/man1/{p.name}" for p in pages.iterdir()}
    assert "usr/local/share/man/man1/modelseal-verify.1" in man, man
    assert files == {
        "usr/local/bin/modelseal",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
        "etc/group",
        *libs,
        *man,
    }
    for name in man:
        assert (root / name).read_bytes() == (pages / Path(name).name).read_bytes(), name
    assert (root / "usr/local/bin/modelseal").read_bytes() == Path(BIN).read_bytes()
    for lib in libs:
        assert (root / lib).read_bytes() == Path("/" + lib).resolve().read_bytes(), lib
    assert members["usr/local/bin/modelseal"].mode & 0o777 == 0o755
    assert members["tmp"].isdir() and members["tmp"].mode & 0o7777 == 0o1777
    assert members["home/nonroot"].isdir() and members["home/nonroot"].uid == 65532
    assert "nonroot:x:65532:65532:" in (root / "etc/passwd").read_text()
    assert "nonroot:x:65532:" in (root / "etc/group").read_text()
    assert b"BEGIN CERTIFICATE" in (root / "etc/ssl/certs/ca-certificates.crt").read_bytes()
    for name, m in members.items():
        if m.isfile() and name != "usr/local/bin/modelseal" and name not in libs:
            assert m.uid == 0 and m.gid == 0 and m.mode & 0o022 == 0, name
        assert m.mtime == 0, f"{name}: mtime {m.mtime} (--timestamp 0)"


def in_chroot(root, *args, user="65532:65532", timeout=60):
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return subprocess.run(
        [chroot, f"--userspec={user}", root, "/usr/local/bin/modelseal", *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
        env={"PATH": "/usr/local/bin", "HOME": "/home/nonroot", "LC_ALL": "C"},
    )


def test_the_binary_runs_from_the_unpacked_image_under_chroot(rootfs, tmp_path):
    root, _ = rootfs
    out = in_chroot(root, "--version", user="0:0")
    assert out.returncode == 0, out.stderr
    host = subprocess.run([BIN, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout == host.stdout and out.stdout.startswith(f"modelseal {binary_version()} (commit ")
    out = in_chroot(root, "--help")  # the image's cmd, as the image's user
    assert out.returncode == 0, out.stderr
    assert "sign" in out.stdout and "verify" in out.stdout

    # A real round trip inside the image's filesystem, as uid 65532 (writes only to /tmp).
    model = write_small_model(root / "tmp/model", weight_bytes=64 << 10)
    out = in_chroot(root, "keygen", "--out", "/tmp/k")
    assert out.returncode == 0, out.stderr
    assert (root / "tmp/k").stat().st_uid == 65532
    out = in_chroot(root, "sign", "/tmp/model", "--key", "/tmp/k", "-q")
    assert out.returncode == 0, out.stderr
    assert (root / "tmp/model.sig").is_file()
    out = in_chroot(root, "verify", "/tmp/model", "--key", "/tmp/k.pub", "-q")
    assert out.returncode == 0, out.stderr
    out = in_chroot(root, "hash", "/tmp/model", "--json", "-q")
    assert out.returncode == 0, out.stderr
    host = ms("hash", model, "--json", "-q")
    assert host.returncode == 0, host.stderr
    assert json.loads(out.stdout)["root"] == json.loads(host.stdout)["root"]
    # The signature made inside verifies outside with the host binary, and a change is caught.
    assert ms("verify", model, "--key", root / "tmp/k.pub", "-q").returncode == 0
    (model / "config.json").write_text("{}\n")
    out = in_chroot(root, "verify", "/tmp/model", "--key", "/tmp/k.pub", "-q")
    assert out.returncode == 1, out.stderr


def oci_ref(reg, tag):
    return f"oci://{reg.host}/{REPO}:{tag}"


def test_modelseal_signs_and_verifies_its_own_image(reg, image, rootfs, tmp_path):
    ref = oci_ref(reg, image["tag"])
    ca = ["--registry-ca", reg.ca_pem]
    out = ms("sign", ref, "--key", KEY, *ca, "-q")
    assert out.returncode == 0, out.stderr
    out = ms("verify", ref, "--key", PUB, *ca, "-q")
    assert out.returncode == 0, out.stderr
    out = ms("verify", ref, "--key", PUB, *ca, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    _, members = rootfs
    assert report["files"] == sum(1 for m in members.values() if m.isfile())


def test_the_tag_pushed_over_by_an_image_with_one_more_file_is_refused(reg, image, tmp_path):
    # Its own tag, so that the other tests' tag is left alone: the same image, copied.
    tag = "pushed-over"
    pushed = r.push_with_skopeo(reg, REPO, tag, image["layout"], image["tag"])
    assert pushed == image["digest"]
    ref = oci_ref(reg, tag)
    ca = ["--registry-ca", reg.ca_pem]
    bundle = tmp_path / "image.sig"
    out = ms("sign", ref, "--key", KEY, "--signature", bundle, "--no-attach", *ca, "-q")
    assert out.returncode == 0, out.stderr
    out = ms("verify", ref, "--key", PUB, "--signature", bundle, *ca, "-q")
    assert out.returncode == 0, out.stderr

    # The same build with one file more (an attacker's library, say), pushed over the tag.
    extra = tmp_path / "evil.so"
    extra.write_bytes(b"\x7fELF not really\n")
    evil, _, _ = build(reg, tmp_path, tag, "--extra", f"{extra}:/lib/x86_64-linux-gnu/libevil.so")
    assert evil != image["digest"]
    assert r.sha256_digest(r.skopeo_inspect_raw(reg, REPO, tag)) == evil
    out = ms("verify", ref, "--key", PUB, "--signature", bundle, *ca, "-q")
    assert out.returncode == 1, out.stderr
    assert "names OCI manifest" in out.stderr, out.stderr
    # By digest, the original is still the signed one.
    out = ms("verify", f"oci://{reg.host}/{REPO}@{image['digest']}", "--key", PUB,
             "--signature", bundle, *ca, "-q")
    assert out.returncode == 0, out.stderr
