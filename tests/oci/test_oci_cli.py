"""`modelseal sign / verify / pull oci://…` against a real registry (CNCF distribution 2.8 on
loopback, TLS), with models pushed by other clients: the oras SDK, buildah, raw HTTP.

Every refusal here is tried the way an attacker would: a tag pushed over, a layer swapped,
a bundle re-attached to another manifest, layers that escape or link out, and registries that
are unreachable, stall or want credentials."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import registry as r
from conftest import write_small_model

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("MODELSEAL", str(ROOT / "target/release/modelseal"))
KEY = ROOT / "testdata/keys/vector-ed25519.pem"
PUB = ROOT / "testdata/keys/vector-ed25519.pem.pub"
OTHER_PUB = ROOT / "testdata/keys/other-ed25519.pem.pub"


def ms(*args, env=None, timeout=120):
    full_env = dict(os.environ)
    # No credentials from the machine: only what a test gives.
    full_env.pop("MODELSEAL_REGISTRY_USERNAME", None)
    full_env.pop("MODELSEAL_REGISTRY_PASSWORD", None)
    full_env.pop("MODELSEAL_REGISTRY_HOST", None)
    full_env["DOCKER_CONFIG"] = "/nonexistent"
    full_env["REGISTRY_AUTH_FILE"] = "/nonexistent"
    full_env.update(env or {})
    return subprocess.run(
        [BIN, *map(str, args)], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def ca(reg):
    return ["--registry-ca", reg.ca_pem]


def oci(reg, repo, ref):
    sep = "@" if ref.startswith("sha256:") else ":"
    return f"oci://{reg.host}/{repo}{sep}{ref}"


def local_root(model_dir):
    out = ms("hash", model_dir, "--json", "-q")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["root"]


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    with r.LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_small_model(tmp_path_factory.mktemp("m") / "tiny")


def sign(reg, ref, *extra):
    out = ms("sign", ref, "--key", KEY, *ca(reg), "-q", *extra)
    assert out.returncode == 0, out.stderr
    return out


def verify(reg, ref, *extra, key=PUB):
    return ms("verify", ref, "--key", key, *ca(reg), "-q", *extra)


@pytest.mark.parametrize(
    "push",
    [
        pytest.param(lambda reg, d: r.push_modelpack(reg, "mp/tar", "v1", d, client="oras"), id="modelpack-tar-oras"),
        pytest.param(lambda reg, d: r.push_modelpack(reg, "mp/gz", "v1", d, media="tar+gzip", client="http"), id="modelpack-gzip"),
        pytest.param(lambda reg, d: r.push_modelpack(reg, "mp/zst", "v1", d, media="tar+zstd", client="http"), id="modelpack-zstd"),
        pytest.param(lambda reg, d: r.push_modelpack(reg, "mp/raw", "v1", d, media="raw", client="oras"), id="modelpack-raw"),
        pytest.param(lambda reg, d: r.push_kitops(reg, "kit/m", "v1", d), id="kitops"),
    ],
)
def test_a_model_pushed_by_another_client_is_signed_verified_and_pulled(reg, model_dir, tmp_path, push):
    digest = push(reg, model_dir)
    repo = None
    for candidate in ("mp/tar", "mp/gz", "mp/zst", "mp/raw", "kit/m"):
        try:
            if reg.manifest(candidate, digest)[2] == digest:
                repo = candidate
                break
        except Exception:
            continue
    assert repo, "pushed manifest not found"
    ref = oci(reg, repo, "v1")
    signed = sign(reg, ref)
    assert digest in signed.stderr + signed.stdout  # the tag was resolved to this digest
    assert "sha256-" in signed.stdout, "no referrers API here: the fallback tag is used"
    assert digest.replace(":", "-") in reg.tags(repo)

    out = verify(reg, ref, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # The same files, hashed from the registry and from disk, give the same root.
    assert report["root"] == local_root(model_dir)
    assert report["files"] == 3

    # By digest, with the bundle written to a file instead of found.
    bundle = tmp_path / "b.sig"
    sign(reg, oci(reg, repo, digest), "--signature", bundle, "--no-attach")
    assert verify(reg, oci(reg, repo, digest), "--signature", bundle).returncode == 0

    # Pulled, verified, into a new directory that then verifies offline.
    dest = tmp_path / "pulled"
    out = ms("pull", ref, dest, "--key", PUB, *ca(reg), "-q")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (dest / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()
    out = ms("verify", dest, "--key", PUB, "-q")
    assert out.returncode == 0, out.stderr


def test_a_plain_image_built_by_buildah_is_signed_and_verified(reg, model_dir, tmp_path):
    digest = r.push_image(reg, "img/model", "v1", model_dir, path="/models")
    ref = oci(reg, "img/model", "v1")
    sign(reg, ref)
    out = verify(reg, ref, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["files"] == 3
    dest = tmp_path / "img"
    assert ms("pull", oci(reg, "img/model", digest), dest, "--key", PUB, *ca(reg), "-q").returncode == 0
    assert (dest / "models/config.json").is_file()


def test_the_wrong_signer_and_an_unsigned_model_are_refused(reg, model_dir):
    r.push_modelpack(reg, "refuse/unsigned", "v1", model_dir, client="http")
    out = verify(reg, oci(reg, "refuse/unsigned", "v1"))
    assert out.returncode == 1
    assert "no signature is attached" in out.stderr
    r.push_modelpack(reg, "refuse/signed", "v1", model_dir, client="http")
    sign(reg, oci(reg, "refuse/signed", "v1"))
    out = verify(reg, oci(reg, "refuse/signed", "v1"), key=OTHER_PUB)
    assert out.returncode == 1
    assert "not trusted" in out.stderr or "untrusted" in out.stderr, out.stderr


def test_a_tag_pushed_over_is_refused(reg, model_dir, tmp_path):
    r.push_modelpack(reg, "over/m", "v1", model_dir, client="http")
    bundle = tmp_path / "v1.sig"
    sign(reg, oci(reg, "over/m", "v1"), "--signature", bundle)
    other = write_small_model(tmp_path / "other")
    r.push_modelpack(reg, "over/m", "v1", other, client="http")
    # The tag now names another manifest: nothing is attached to it...
    out = verify(reg, oci(reg, "over/m", "v1"))
    assert out.returncode == 1, out.stderr
    assert "no signature is attached" in out.stderr
    # ...and the old bundle names the old manifest, not this one.
    out = verify(reg, oci(reg, "over/m", "v1"), "--signature", bundle)
    assert out.returncode == 1
    assert "names OCI manifest" in out.stderr, out.stderr


def test_a_swapped_layer_with_the_old_bundle_reattached_is_refused(reg, model_dir, tmp_path):
    art = r.build_modelpack(model_dir, media="tar")
    digest = r.push_artifact(reg, "swap/m", "v1", art, client="http")
    bundle = tmp_path / "good.sig"
    sign(reg, oci(reg, "swap/m", "v1"), "--signature", bundle)

    # The attacker swaps the weights layer for another of the same name, re-tags, and
    # attaches the original (valid, trusted) bundle to the new manifest.
    evil = dict(art.manifest)
    evil["layers"] = list(art.layers)
    weights = next(i for i, l in enumerate(evil["layers"]) if "weight.v1" in l["mediaType"])
    blob = r.tar_one("model.safetensors", b"\0" * 4096)
    desc = art.add_blob(blob, evil["layers"][weights]["mediaType"], evil["layers"][weights].get("annotations"))
    evil["layers"][weights] = desc
    reg.put_blob("swap/m", blob)
    evil_digest = reg.put_manifest("swap/m", "v1", r.canonical_json(evil))
    assert evil_digest != digest
    out = ms("verify", oci(reg, "swap/m", "v1"), "--key", PUB, "--signature", bundle, *ca(reg), "-q")
    assert out.returncode == 1
    assert "names OCI manifest" in out.stderr, out.stderr

    # The same bundle listed in the new manifest's fallback index by hand: its referrer
    # manifest names the old subject, so it is passed over, and nothing else is there.
    good_index = reg.manifest_json("swap/m", digest.replace(":", "-"))
    reg.put_manifest("swap/m", evil_digest.replace(":", "-"), r.canonical_json(good_index), r.OCI_INDEX)
    out = verify(reg, oci(reg, "swap/m", "v1"))
    assert out.returncode == 1
    assert "passed over a referrer" in out.stderr and "another subject" in out.stderr, out.stderr


def hostile(reg, tmp_path, repo, layer_bytes, media=r.modelpack_media_type("weight", "tar"), annotations=None):
    art = r.build_modelpack(write_small_model(tmp_path / repo.replace("/", "-")), media="tar")
    desc = art.add_blob(layer_bytes, media, annotations)
    art.manifest["layers"].append(desc)
    return r.push_artifact(reg, repo, "v1", art, client="http")


def raw_tar(name, kind=b"0", data=b"x", link=b""):
    import tarfile, io
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo("placeholder")
        info.size = len(data) if kind == b"0" else 0
        if kind == b"2":
            info.type = tarfile.SYMTYPE
            info.linkname = link.decode()
        tf.addfile(info, io.BytesIO(data) if kind == b"0" else None)
    raw = bytearray(buf.getvalue())
    raw[0:100] = name.encode().ljust(100, b"\0")
    # Recompute the header checksum for the patched name.
    raw[148:156] = b" " * 8
    raw[148:156] = ("%06o\0 " % sum(raw[0:512])).encode()
    return bytes(raw)


@pytest.mark.parametrize(
    "repo,layer,media,want",
    [
        ("bad/escape", raw_tar("../../outside"), None, "climbs out"),
        ("bad/abs", raw_tar("/etc/cron.d/x"), None, "absolute"),
        ("bad/link", raw_tar("weights.bin", kind=b"2", link=b"/etc/shadow"), None, "is a link"),
        ("bad/dup", raw_tar("config.json"), None, "appears twice"),
        ("bad/media", b"whatever", "application/x-foreign-layer", "not a model layer"),
    ],
)
def test_a_layer_outside_the_model_is_refused(reg, tmp_path, repo, layer, media, want):
    hostile(reg, tmp_path, repo, layer, **({"media": media} if media else {}))
    out = ms("sign", oci(reg, repo, "v1"), "--key", KEY, *ca(reg), "-q")
    assert out.returncode == 2, out.stderr
    assert want in out.stderr, out.stderr


def test_unreachable_stalled_and_locked_registries_fail_clearly(reg, model_dir, tmp_path):
    started = time.monotonic()
    out = ms("verify", f"oci://{r.unreachable_host()}/m:v1", "--key", PUB, "-q")
    assert out.returncode == 2 and "unreachable" in out.stderr, out.stderr
    for mode in ("handshake", "headers", "trickle"):
        with r.stalling_registry(mode, interval=0.5) as stall:
            t0 = time.monotonic()
            out = ms("verify", f"oci://{stall.host}/m:v1", "--key", PUB, "--registry-ca", stall.ca_pem,
                     "--registry-timeout", "2", "-q", timeout=60)
            took = time.monotonic() - t0
            assert out.returncode == 2, (mode, out.stderr)
            assert "timed out" in out.stderr, (mode, out.stderr)
            assert took < 20, (mode, took)
    assert time.monotonic() - started < 90


def test_credentials_come_from_docker_config_or_the_environment(registry_factory, model_dir):
    locked = registry_factory(auth=True, name="locked")
    r.push_modelpack(locked, "private/m", "v1", model_dir, client="http")
    ref = oci(locked, "private/m", "v1")
    out = ms("sign", ref, "--key", KEY, *ca(locked), "-q")
    assert out.returncode == 2
    assert "none was found" in out.stderr, out.stderr
    env = {"DOCKER_CONFIG": str(locked.docker_config_dir)}
    out = ms("sign", ref, "--key", KEY, *ca(locked), "-q", env=env)
    assert out.returncode == 0, out.stderr
    env = {"MODELSEAL_REGISTRY_USERNAME": locked.username, "MODELSEAL_REGISTRY_PASSWORD": locked.password}
    # Without the host they are for, environment credentials go nowhere.
    out = ms("verify", ref, "--key", PUB, *ca(locked), "-q", env=env)
    assert out.returncode == 2 and "none was found" in out.stderr, out.stderr
    env["MODELSEAL_REGISTRY_HOST"] = "other.example:5000"
    assert ms("verify", ref, "--key", PUB, *ca(locked), "-q", env=env).returncode == 2
    env["MODELSEAL_REGISTRY_HOST"] = locked.host
    assert ms("verify", ref, "--key", PUB, *ca(locked), "-q", env=env).returncode == 0
    env["MODELSEAL_REGISTRY_PASSWORD"] = "wrong"
    out = ms("verify", ref, "--key", PUB, *ca(locked), "-q", env=env)
    assert out.returncode == 2 and "refused" in out.stderr, out.stderr


def test_a_refused_pull_writes_nothing(reg, model_dir, tmp_path):
    r.push_modelpack(reg, "pull/m", "v1", model_dir, client="http")
    sign(reg, oci(reg, "pull/m", "v1"))
    dest = tmp_path / "out" / "model"
    dest.parent.mkdir()
    out = ms("pull", oci(reg, "pull/m", "v1"), dest, "--key", OTHER_PUB, *ca(reg), "-q")
    assert out.returncode == 1, out.stderr
    assert list(dest.parent.iterdir()) == [], "a refused pull left files behind"
    dest.mkdir()
    out = ms("pull", oci(reg, "pull/m", "v1"), dest, "--key", PUB, *ca(reg), "-q")
    assert out.returncode == 2 and "exists" in out.stderr


def test_inspect_shows_the_manifest_layers_and_attached_claims_unverified(reg, model_dir):
    digest = r.push_modelpack(reg, "inspect/m", "v1", model_dir, client="http")
    out = ms("inspect", oci(reg, "inspect/m", "v1"), *ca(reg), "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["verified"] is False and shown["signatures"] == []
    assert shown["manifest"] == digest and shown["artifact"] == "modelpack"
    assert len(shown["layers"]) == 3
    sign(reg, oci(reg, "inspect/m", "v1"))
    shown = json.loads(ms("inspect", oci(reg, "inspect/m", digest), *ca(reg), "--json").stdout)
    [claims] = [s["claims"] for s in shown["signatures"]]
    assert claims["predicateType"] == "https://modelseal.dev/manifest/v1"
    digests = [d for s in claims["subject"] for d in s["digest"].items()]
    assert ("sha256", digest.split(":")[1]) in digests
    assert any(alg == "blake3" for alg, _ in digests)


class LyingRegistry:
    """A TLS proxy in front of the real registry that alters what it serves: `tamper(path,
    body) -> body` rewrites response bodies (the registry itself never serves bytes that
    do not match their digest, a compromised one or a man in the middle can)."""

    def __init__(self, upstream, workdir, tamper):
        import http.server
        import ssl
        import threading

        import requests

        self.tls = r.TlsMaterial.create(workdir)
        session = requests.Session()
        session.trust_env = False
        session.verify = str(upstream.ca_pem)
        base = f"https://{upstream.host}"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                resp = session.get(base + self.path, headers={"Accept": self.headers.get("Accept", "*/*")},
                                   timeout=30, allow_redirects=True)
                body = tamper(self.path, resp.content)
                self.send_response(resp.status_code)
                for k in ("Content-Type", "Docker-Content-Digest"):
                    if k in resp.headers:
                        self.send_header(k, resp.headers[k])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.tls.cert_pem), str(self.tls.key_pem))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def flip_last(body):
    return body[:-1] + bytes([body[-1] ^ 1]) if body else body


@pytest.mark.parametrize(
    "what,tamper,want",
    [
        ("a layer blob", lambda p, b: flip_last(b) if "/blobs/" in p and len(b) > 1000 else b, "digest-mismatch"),
        ("a manifest fetched by digest", lambda p, b: b + b" " if "/manifests/sha256:" in p else b, "digest"),
        ("a manifest whose header names another digest",
         lambda p, b: b.replace(b'"schemaVersion":2', b'"schemaVersion": 2') if "/manifests/v1" in p else b, "Docker-Content-Digest"),
        ("a blob cut short", lambda p, b: b[: len(b) // 2] if "/blobs/" in p and len(b) > 1000 else b, "length"),
    ],
)
def test_a_registry_serving_other_bytes_than_their_digests_is_refused(reg, model_dir, tmp_path, what, tamper, want):
    digest = r.push_modelpack(reg, "lying/m", "v1", model_dir, client="http")
    bundle = tmp_path / "good.sig"
    sign(reg, oci(reg, "lying/m", "v1"), "--signature", bundle)
    liar = LyingRegistry(reg, tmp_path / "tls", tamper)
    try:
        ref = f"oci://{liar.host}/lying/m" + ("@" + digest if "by digest" in what else ":v1")
        out = ms("verify", ref, "--key", PUB, "--signature", bundle, "--registry-ca", liar.tls.ca_pem, "-q",
                 "--json")
        assert out.returncode == 1, (what, out.stdout, out.stderr)
        assert want in out.stdout + out.stderr, (what, out.stdout, out.stderr)
        dest = tmp_path / "pulled"
        out = ms("pull", ref, dest, "--key", PUB, "--signature", bundle, "--registry-ca", liar.tls.ca_pem, "-q")
        assert out.returncode == 1, (what, out.stderr)
        assert not dest.exists() and not (tmp_path / "pulled.sig").exists()
    finally:
        liar.close()


def test_a_manifest_whose_keys_go_reads_differently_is_refused(reg, tmp_path):
    """serde reads keys exactly; Go's encoding/json (skopeo, containerd, CRI-O) matches
    fields ignoring case and lets the last key win. A manifest with both "layers" and
    "Layers" is one model to serde and another to the runtime."""
    art = r.build_modelpack(write_small_model(tmp_path / "amb"), media="tar")
    evil = r.tar_one("evil.py", b"import os; os.system('id')\n")
    evil_desc = art.add_blob(evil, r.modelpack_media_type("code", "tar"))
    for digest, data in art.blobs.items():
        reg.put_blob("amb/m", data, digest)
    manifest = dict(art.manifest)
    manifest["Layers"] = [*art.layers, evil_desc]
    digest = reg.put_manifest("amb/m", "v1", r.canonical_json(manifest), manifest["mediaType"])

    # The oracle: skopeo (Go) copies the layers it reads, and the planted one is among them.
    out = tmp_path / "skopeo"
    r.run(["skopeo", "--policy", r.ContainerTools(tmp_path / "tools").policy, "copy", "--quiet",
           "--src-cert-dir", reg.cert_dir, "--src-authfile", reg.auth_file,
           f"docker://{reg.ref('amb/m', digest)}", f"dir:{out}"], timeout=60)
    assert (out / evil_desc["digest"].split(":", 1)[1]).read_bytes() == evil

    out = ms("sign", oci(reg, "amb/m", "v1"), "--key", KEY, *ca(reg), "-q")
    assert out.returncode == 2, out.stderr
    assert "ambiguous" in out.stderr and '"Layers"' in out.stderr, out.stderr

    # The same with a descriptor's field in another case, and a key given twice.
    text = r.canonical_json(art.manifest).decode()
    first = art.layers[0]["digest"]
    for i, (variant, want) in enumerate([
        (text.replace(f'"digest":"{first}"', f'"digest":"{first}","Digest":"{evil_desc["digest"]}"', 1), '"Digest"'),
        (text.replace('"layers":[', '"layers":[],"layers":[', 1), "appears twice"),
    ]):
        reg.put_manifest("amb/m", f"v{i + 2}", variant.encode(), manifest["mediaType"])
        out = ms("verify", oci(reg, "amb/m", f"v{i + 2}"), "--key", PUB, *ca(reg), "-q")
        assert out.returncode != 0 and want in out.stderr, out.stderr


def test_co_signatures_attached_as_referrers_are_counted_by_a_threshold(reg, model_dir, tmp_path):
    """Two publishers sign one image, each attaching their own referrer; a 2-of-2 policy
    counts both, and refuses while only one is attached or when one signer attaches twice."""
    r.push_modelpack(reg, "cosign/m", "v1", model_dir, client="http")
    ref = oci(reg, "cosign/m", "v1")
    out = ms("keygen", "--algorithm", "ml-dsa-65", "--out", tmp_path / "second")
    assert out.returncode == 0, out.stderr
    policy = tmp_path / "policy.toml"
    shutil.copy(PUB, tmp_path / "first.pub")
    policy.write_text(
        '[[signer]]\nname = "first"\nroles = ["model-publisher"]\nkey = "first.pub"\n'
        '[[signer]]\nname = "second"\nroles = ["model-publisher"]\nkey = "second.pub"\n'
        '[roles.model-publisher]\nthreshold = "all"\n'
    )

    def verify_policy():
        out = ms("verify", ref, "--policy", policy, *ca(reg), "-q", "--json")
        return out.returncode, json.loads(out.stdout)

    sign(reg, ref)
    sign(reg, ref)  # the first signer again: still one signer
    code, report = verify_policy()
    assert code == 1, report
    assert report["error"]["kind"] == "signers-missing", report
    assert "second: no signature" in report["error"]["message"]
    out = ms("sign", ref, "--key", tmp_path / "second", *ca(reg), "-q")
    assert out.returncode == 0, out.stderr
    code, report = verify_policy()
    assert code == 0, report
    assert report["signerCount"]["counted"] == ["first", "second"]
    # A pull under the same policy counts the same referrers.
    out = ms("pull", ref, tmp_path / "pulled", "--policy", policy, *ca(reg), "-q")
    assert out.returncode == 0, out.stderr
