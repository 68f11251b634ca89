"""Self-check of tests/oci/registry.py: the registry starts (with and without auth), every
way of pushing a model gives the manifest and layers it should, and the stalling servers stall.

Manifests are read back with `skopeo inspect --raw --cert-dir` (the CA as ca.crt, never
--tls-verify=false); layers with the registry HTTP API and, once, with `skopeo copy`."""

import base64
import gzip
import io
import json
import os
import socket
import ssl
import tarfile
import time

import pytest
import requests

import registry as R

MODEL_FILES = ["README.md", "config.json", "model.safetensors"]


@pytest.fixture(scope="module", params=[False, True], ids=["noauth", "auth"])
def reg(request, tmp_path_factory):
    with R.LocalRegistry(tmp_path_factory.mktemp("reg"), auth=request.param) as r:
        yield r


def inspect(reg, repo, ref) -> dict:
    return json.loads(R.skopeo_inspect_raw(reg, repo, ref))


def tar_members(data: bytes) -> dict:
    """name -> bytes for regular files, name -> None for directories; fails on anything else."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for m in tf.getmembers():
            if m.isdir():
                out[m.name.rstrip("/")] = None
            else:
                assert m.isfile(), f"unexpected tar member type {m.type!r} for {m.name}"
                out[m.name] = tf.extractfile(m).read()
    return out


def unpack(data: bytes, media_type: str) -> bytes:
    if media_type.endswith("+gzip"):
        return gzip.decompress(data)
    if media_type.endswith("+zstd"):
        return R.run(["zstd", "-d", "-q", "-c", "-"], input=data, timeout=60).stdout
    return data


# --------------------------------------------------------------------------------------------
# The registry itself
# --------------------------------------------------------------------------------------------


def test_registry_answers_and_auth(reg):
    assert reg.host.startswith("127.0.0.1:") and reg.running
    assert reg.url("/v2/") == f"https://{reg.host}/v2/"
    assert (reg.cert_dir / "ca.crt").read_bytes() == reg.ca_pem.read_bytes()
    anonymous = requests.get(reg.url("/v2/"), verify=str(reg.ca_pem), timeout=10)
    config = json.loads(reg.auth_file.read_text())
    assert reg.auth_file.parent == reg.docker_config_dir
    if reg.auth:
        assert anonymous.status_code == 401
        assert "basic" in anonymous.headers.get("WWW-Authenticate", "").lower()
        assert reg.username and reg.password
        token = base64.b64decode(config["auths"][reg.host]["auth"]).decode()
        assert token == f"{reg.username}:{reg.password}"
        wrong = requests.get(reg.url("/v2/"), verify=str(reg.ca_pem), timeout=10,
                             auth=(reg.username, reg.password + "x"))
        assert wrong.status_code == 401
    else:
        assert anonymous.status_code == 200
        assert reg.username is None and reg.password is None
        assert config == {"auths": {}}
    assert reg.request("GET", "/v2/").status_code == 200
    # Only our CA is trusted: the system store does not know it.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(reg.url("/v2/"), verify=True, timeout=10)


def test_certificate_names(reg):
    ctx = ssl.create_default_context(cafile=str(reg.ca_pem))
    for name in ("127.0.0.1", "localhost"):
        with socket.create_connection(("127.0.0.1", reg.port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=name) as tls:
                assert tls.version()


def test_registry_has_no_referrers_api(reg, oci_model):
    digest = R.push_modelpack(reg, "referrers/check", "v1", oci_model, client="http")
    r = reg.request("GET", f"/v2/referrers/check/referrers/{digest}")
    assert r.status_code == 404


def test_restart_then_stop_frees_the_port(tmp_path):
    reg = R.LocalRegistry(tmp_path / "r", auth=True)
    with reg:
        digest = reg.put_blob("restart/check", b"kept across a restart")
        host, ca = reg.host, reg.ca_pem.read_bytes()
        reg.restart()
        assert (reg.host, reg.ca_pem.read_bytes()) == (host, ca)
        assert reg.get_blob("restart/check", digest) == b"kept across a restart"
        pid = reg._proc.pid
        port = reg.port
    assert not reg.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_missing_binary_is_a_clear_error():
    with pytest.raises(R.HarnessError, match="apt-get install"):
        R.require_binary("no-such-binary-modelseal-test")


# --------------------------------------------------------------------------------------------
# ModelPack
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "media,client",
    [(m, c) for m in ("tar", "tar+gzip", "raw") for c in ("oras", "http")] + [("tar+zstd", "http")],
)
def test_modelpack(reg, oci_model, media, client):
    repo = f"modelpack/{media.replace('+', '-')}-{client}"
    digest = R.push_modelpack(reg, repo, "v1", oci_model, media=media, client=client)
    raw = R.skopeo_inspect_raw(reg, repo, "v1")
    assert R.sha256_digest(raw) == digest
    if client == "http":
        assert raw == R.build_modelpack(oci_model, media).manifest_bytes()  # deterministic
    m = json.loads(raw)
    assert m["schemaVersion"] == 2
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert m["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    expected_kind = {
        "model.safetensors": "weight", "config.json": "weight.config", "README.md": "doc"
    }
    by_path = {layer["annotations"]["org.cncf.model.filepath"]: layer for layer in m["layers"]}
    assert sorted(by_path) == MODEL_FILES
    config = json.loads(reg.get_blob(repo, m["config"]["digest"]))
    assert config["modelfs"]["type"] == "layers"
    assert len(config["modelfs"]["diffIds"]) == len(m["layers"])
    assert set(config) >= {"descriptor", "config", "modelfs"}
    for layer, diff_id in zip(m["layers"], config["modelfs"]["diffIds"]):
        rel = layer["annotations"]["org.cncf.model.filepath"]
        assert layer["mediaType"] == f"application/vnd.cncf.model.{expected_kind[rel]}.v1.{media}"
        meta = json.loads(layer["annotations"]["org.cncf.model.file.metadata+json"])
        want = (oci_model / rel).read_bytes()
        assert meta["name"] == rel and meta["size"] == len(want)
        blob = reg.get_blob(repo, layer["digest"])
        assert len(blob) == layer["size"]
        body = unpack(blob, layer["mediaType"])
        assert R.sha256_digest(body) == diff_id
        if media == "raw":
            assert body == want
        else:
            assert tar_members(body) == {rel: want}


def test_modelpack_nested_paths(plain_registry, tmp_path):
    model = tmp_path / "nested"
    (model / "tokenizer" / "extra").mkdir(parents=True)
    (model / "tokenizer" / "extra" / "vocab.txt").write_text("a\nb\n")
    (model / "weights.bin").write_bytes(b"\x00" * 100)
    digest = R.push_modelpack(plain_registry, "modelpack/nested", "v1", model, media="tar")
    m = json.loads(R.skopeo_inspect_raw(plain_registry, "modelpack/nested", digest))
    by_path = {x["annotations"][R.ANNOTATION_FILEPATH]: x for x in m["layers"]}
    assert sorted(by_path) == ["tokenizer/extra/vocab.txt", "weights.bin"]
    layer = by_path["tokenizer/extra/vocab.txt"]
    assert layer["annotations"][R.ANNOTATION_FILEPATH] == "tokenizer/extra/vocab.txt"
    members = tar_members(plain_registry.get_blob("modelpack/nested", layer["digest"]))
    assert members == {
        "tokenizer": None, "tokenizer/extra": None, "tokenizer/extra/vocab.txt": b"a\nb\n"
    }


def test_skopeo_copy_pulls_the_layers(reg, oci_model, tmp_path):
    """An independent client (skopeo, containers/image) reads back what the oras SDK pushed."""
    repo = "modelpack/skopeo-pull"
    digest = R.push_modelpack(reg, repo, "v1", oci_model, media="raw", client="oras")
    out = tmp_path / "pulled"
    R.run(["skopeo", "--policy", R.ContainerTools(tmp_path / "tools").policy, "copy", "--quiet",
           "--src-cert-dir", reg.cert_dir, "--src-authfile", reg.auth_file,
           f"docker://{reg.ref(repo, digest)}", f"dir:{out}"], timeout=60)
    m = json.loads((out / "manifest.json").read_bytes())
    for layer in m["layers"]:
        rel = layer["annotations"][R.ANNOTATION_FILEPATH]
        pulled = out / layer["digest"].split(":", 1)[1]
        assert pulled.read_bytes() == (oci_model / rel).read_bytes()


def test_skopeo_pushes_an_oci_layout(reg, oci_model, tmp_path):
    art = R.build_modelpack(oci_model, "tar+gzip")
    layout = R.write_oci_layout(art, tmp_path / "layout", "v1")
    digest = R.push_with_skopeo(reg, "modelpack/from-layout", "v1", layout, "v1")
    assert digest == art.digest
    assert R.skopeo_inspect_raw(reg, "modelpack/from-layout", "v1") == art.manifest_bytes()


# --------------------------------------------------------------------------------------------
# KitOps
# --------------------------------------------------------------------------------------------


def test_kitops(reg, oci_model):
    digest = R.push_kitops(reg, "kitops/tiny", "v1", oci_model)
    m = inspect(reg, "kitops/tiny", "v1")
    assert R.sha256_digest(R.skopeo_inspect_raw(reg, "kitops/tiny", digest)) == digest
    assert m["artifactType"] == "application/vnd.kitops.modelkit.manifest.v1+json"
    assert m["config"]["mediaType"] == "application/vnd.kitops.modelkit.config.v1+json"
    kinds = {"model.safetensors": "model", "README.md": "docs", "config.json": "code"}
    kitfile = json.loads(reg.get_blob("kitops/tiny", m["config"]["digest"]))
    assert json.loads(m["annotations"]["ml.kitops.modelkit.kitfile"]) == kitfile
    assert kitfile["manifestVersion"] == "1.0.0"
    assert kitfile["model"]["path"] == "model.safetensors"
    assert [d["path"] for d in kitfile["docs"]] == ["README.md"]
    assert [c["path"] for c in kitfile["code"]] == ["config.json"]
    for layer in m["layers"]:
        rel = layer["annotations"][R.ANNOTATION_FILEPATH]
        assert layer["mediaType"] == f"application/vnd.kitops.modelkit.{kinds[rel]}.v1.tar+gzip"
        body = gzip.decompress(reg.get_blob("kitops/tiny", layer["digest"]))
        assert tar_members(body) == {rel: (oci_model / rel).read_bytes()}


# --------------------------------------------------------------------------------------------
# Plain images (buildah)
# --------------------------------------------------------------------------------------------


def test_buildah_image(reg, oci_model, tmp_path):
    layout = tmp_path / "image-layout"
    digest = R.push_image(reg, "images/tiny", "v1", oci_model, "/models", layout_dir=layout)
    raw = R.skopeo_inspect_raw(reg, "images/tiny", "v1")
    assert R.sha256_digest(raw) == digest
    m = json.loads(raw)
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [layer["mediaType"] for layer in m["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ]
    files = {}
    for layer in m["layers"]:
        files.update(tar_members(gzip.decompress(reg.get_blob("images/tiny", layer["digest"]))))
    for rel in MODEL_FILES:
        assert files[f"models/{rel}"] == (oci_model / rel).read_bytes()
    # The same image from its OCI layout, through skopeo, lands on the same digest.
    assert R.push_with_skopeo(reg, "images/tiny-copy", "v1", layout, "v1") == digest


# --------------------------------------------------------------------------------------------
# Hostile content through the raw helpers
# --------------------------------------------------------------------------------------------


def test_hostile_manifests(plain_registry, oci_model):
    reg = plain_registry
    art = R.build_modelpack(oci_model, "raw")
    good = R.push_artifact(reg, "hostile/a", "v1", art)
    body, ctype, digest = reg.manifest("hostile/a", "v1")
    assert digest == good and ctype == R.OCI_MANIFEST and body == art.manifest_bytes()

    # A swapped layer: same annotations, other bytes.
    evil = reg.put_blob("hostile/a", b"not the weights")
    swapped = json.loads(body)
    weight = next(
        x for x in swapped["layers"]
        if x["annotations"][R.ANNOTATION_FILEPATH] == "model.safetensors"
    )
    weight.update(digest=evil, size=len(b"not the weights"))
    # An escaping path.
    swapped["layers"][0]["annotations"][R.ANNOTATION_FILEPATH] = "../../etc/cron.d/evil"
    # Pushed over the tag.
    over = reg.put_manifest("hostile/a", "v1", R.canonical_json(swapped), R.OCI_MANIFEST)
    assert over != good
    assert reg.manifest("hostile/a", "v1")[2] == over
    assert reg.manifest("hostile/a", good)[0] == body  # the old one is still there by digest
    assert sorted(reg.tags("hostile/a")) == ["v1"]

    # A blob whose claimed digest lies is refused by the registry.
    with pytest.raises(R.HarnessError, match="DIGEST_INVALID|digest"):
        reg.put_blob("hostile/a", b"abc", digest=R.sha256_digest(b"abd"))
    # A manifest naming a blob the registry lacks is refused.
    missing = json.loads(body)
    missing["layers"][0]["digest"] = R.sha256_digest(b"never uploaded")
    with pytest.raises(R.HarnessError, match="BLOB_UNKNOWN"):
        reg.put_manifest("hostile/a", "v2", R.canonical_json(missing))
    reg.delete_manifest("hostile/a", over)
    with pytest.raises(R.HarnessError, match="404"):
        reg.manifest("hostile/a", over)


# --------------------------------------------------------------------------------------------
# Servers that stall, and a port that refuses
# --------------------------------------------------------------------------------------------


def test_closed_port_refuses():
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", R.closed_port()), timeout=2).close()
    host = R.unreachable_host()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"https://{host}/v2/", timeout=2)


def test_stalling_silent():
    with R.StallingServer("silent") as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=2) as c:
            c.settimeout(0.5)
            c.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            with pytest.raises(socket.timeout):
                c.recv(1)
        assert s.connections == 1


def test_stalling_tls_handshake_and_silent_tls(tmp_path):
    with R.StallingServer("handshake", tls=True, tls_dir=tmp_path / "tls") as s:
        assert (s.cert_dir / "ca.crt").exists() and s.url().startswith("https://127.0.0.1:")
        t0 = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(s.url(), verify=str(s.ca_pem), timeout=(2, 0.5))
        assert time.monotonic() - t0 < 5
    with R.StallingServer("silent", tls=True) as s:
        # The handshake never completes: urllib3 reports a read timeout (or a connection error).
        with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            requests.get(s.url(), verify=str(s.ca_pem), timeout=(1, 0.5))


def test_stalling_headers_then_body():
    with R.StallingServer("headers", body_prefix=b'{"schema') as s:
        r = requests.get(s.url("/v2/x/manifests/v1"), timeout=(2, 0.5), stream=True)
        assert r.status_code == 200 and r.headers["Content-Type"] == R.OCI_MANIFEST
        assert r.raw.read(8) == b'{"schema'
        with pytest.raises(Exception):
            r.raw.read(1)  # urllib3 ReadTimeoutError
        r.close()


def test_stalling_trickle_defeats_read_timeouts():
    with R.StallingServer("trickle", interval=0.1, content_length=1000) as s:
        with R.stalling_registry("headers") as tls_s:
            assert tls_s.tls is not None
        r = requests.get(s.url(), timeout=(2, 0.5), stream=True)
        got = b""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            got += r.raw.read(1)
        r.close()
        assert 3 <= len(got) <= 15  # a byte every 0.1 s: never a read timeout, never done
