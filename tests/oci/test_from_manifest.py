"""`sign oci://REF --format oms --from-manifest` against a real registry (CNCF distribution):
a ModelPack model of raw layers is signed from its manifest alone, and the signature is
then checked against the real bytes, by modelseal and by model-signing (the peer), in a
directory that an independent reader (this harness's plain HTTP client) pulled.

What the manifest cannot vouch for is refused: archive layers, a missing file path, one
path twice, a name model-signing leaves out. Bytes that differ from what the manifest
named (a mirror serving other content) are found when the files are verified."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import registry as r
from conftest import write_small_model
from test_oci_cli import ca, ms, oci

ROOT = Path(__file__).resolve().parents[2]
KEY = ROOT / "testdata/keys/ec-p256.priv.pem"
PUB = ROOT / "testdata/keys/ec-p256.pub.pem"
PEER = Path(sys.executable).parent / "model_signing"


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    with r.LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = write_small_model(tmp_path_factory.mktemp("m") / "tiny")
    (model / "sub").mkdir()
    (model / "sub" / "tokenizer.json").write_text('{"v": 1}\n')
    return model


def pull_raw(reg, repo, digest, dest: Path) -> Path:
    """Writes each raw layer's blob to the file its org.cncf.model.filepath names: a pull
    by a reader that is not modelseal."""
    manifest = reg.manifest_json(repo, digest)
    for layer in manifest["layers"]:
        path = dest / layer["annotations"][r.ANNOTATION_FILEPATH]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(reg.get_blob(repo, layer["digest"]))
    return dest


def peer_verify(model: Path, sig: Path):
    return subprocess.run(
        [str(PEER), "verify", "key", str(model), "--signature", str(sig), "--public_key", str(PUB)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_raw_modelpack_model_is_signed_from_its_manifest_and_verified_pulled(
    reg, model_dir, tmp_path
):
    digest = r.push_modelpack(reg, "fm/raw", "v1", model_dir, media="raw", client="oras")
    sig = tmp_path / "model.sig"
    out = ms(
        "sign", oci(reg, "fm/raw", "v1"), "--format", "oms", "--from-manifest",
        "--key", KEY, "--signature", sig, *ca(reg), "--json",
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["manifest"] == digest
    assert report["files"] == 4
    # The subject is what model-signing and `hash --format oms` compute from the files.
    hashed = ms("hash", model_dir, "--format", "oms", "--json")
    assert hashed.returncode == 0, hashed.stderr
    assert json.loads(hashed.stdout)["root"] == report["root"]

    pulled = pull_raw(reg, "fm/raw", digest, tmp_path / "pulled")
    assert ms("verify", pulled, "--key", PUB, "--signature", sig).returncode == 0
    peer = peer_verify(pulled, sig)
    assert peer.returncode == 0, peer.stdout + peer.stderr

    # A mirror that served other bytes for one layer: found when the files are verified.
    weights = pulled / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    out = ms("verify", pulled, "--key", PUB, "--signature", sig)
    assert out.returncode == 1 and "model.safetensors" in out.stderr, out.stderr
    assert peer_verify(pulled, sig).returncode != 0


@pytest.mark.parametrize("media", ["tar", "tar+gzip", "tar+zstd"])
def test_archive_layers_are_refused(reg, model_dir, tmp_path, media):
    repo = "fm/" + media.replace("+", "-")
    r.push_modelpack(reg, repo, "v1", model_dir, media=media, client="http")
    sig = tmp_path / "model.sig"
    out = ms(
        "sign", oci(reg, repo, "v1"), "--format", "oms", "--from-manifest",
        "--key", KEY, "--signature", sig, *ca(reg),
    )
    assert out.returncode == 2, out.stderr
    assert "is an archive" in out.stderr, out.stderr
    assert not sig.exists()


def _push_edited(reg, repo, model_dir, edit):
    art = r.build_modelpack(model_dir, media="raw")
    edit(art.manifest["layers"])
    return r.push_artifact(reg, repo, "v1", art, client="http")


@pytest.mark.parametrize(
    "name,edit,needle",
    [
        (
            "dup",
            lambda layers: layers[1]["annotations"].__setitem__(
                r.ANNOTATION_FILEPATH, layers[0]["annotations"][r.ANNOTATION_FILEPATH]
            ),
            "named twice",
        ),
        (
            "git",
            lambda layers: layers[0]["annotations"].__setitem__(r.ANNOTATION_FILEPATH, ".gitattributes"),
            "model-signing leaves .gitattributes out",
        ),
        (
            "nopath",
            lambda layers: layers[0]["annotations"].pop(r.ANNOTATION_FILEPATH),
            "without the org.cncf.model.filepath annotation",
        ),
        (
            "fileanddir",
            lambda layers: layers[0]["annotations"].__setitem__(r.ANNOTATION_FILEPATH, "sub"),
            "named as a file and as the directory",
        ),
    ],
)
def test_manifests_that_cannot_name_a_model_are_refused(reg, model_dir, tmp_path, name, edit, needle):
    repo = f"fm/bad-{name}"
    _push_edited(reg, repo, model_dir, edit)
    sig = tmp_path / "model.sig"
    out = ms(
        "sign", oci(reg, repo, "v1"), "--format", "oms", "--from-manifest",
        "--key", KEY, "--signature", sig, *ca(reg),
    )
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr, out.stderr
    assert not sig.exists()


def test_from_manifest_flags_are_checked_before_the_registry_is_asked(tmp_path):
    ref = "oci://127.0.0.1:1/never/asked:v1"
    sig = tmp_path / "s.sig"
    for extra, needle in [
        ([], "add --format oms"),
        (["--format", "oms", "--method", "shards"], "drop --method"),
    ]:
        out = ms("sign", ref, "--from-manifest", "--key", KEY, "--signature", sig, *extra)
        assert out.returncode == 2 and needle in out.stderr, out.stderr
    out = ms("sign", ref, "--format", "oms", "--from-manifest", "--key", KEY)
    assert out.returncode == 2 and "--signature" in out.stderr, out.stderr


# `sign oci://REF --update OLD`: layers whose digest and format OLD's stamps record are
# not fetched again; the result is what a full `sign oci://` makes.

ED_KEY = ROOT / "testdata/keys/vector-ed25519.pem"
ED_PUB = ROOT / "testdata/keys/vector-ed25519.pem.pub"
OTHER_KEY = ROOT / "testdata/keys/other-ed25519.pem"


def _release(reg, repo, tag, folder, media="tar+gzip"):
    return r.push_modelpack(reg, repo, tag, folder, media=media, client="http")


def _sign(reg, ref, *extra):
    return ms("sign", ref, "--key", ED_KEY, "--no-attach", *ca(reg), *extra)


def test_an_oci_update_reads_only_new_layers_and_equals_a_full_sign(reg, tmp_path):
    model = write_small_model(tmp_path / "m")
    (model / "sub").mkdir()
    (model / "sub" / "vocab.txt").write_text("a b c\n")
    _release(reg, "upd/m", "v1", model)
    v1 = tmp_path / "v1.sig"
    out = _sign(reg, oci(reg, "upd/m", "v1"), "--signature", v1)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "v1.sig.stamps").is_file(), out.stdout

    # v2: the README changed; the other layers are the same bytes, so the same digests.
    (model / "README.md").write_text("# tiny test model, v2\n")
    _release(reg, "upd/m", "v2", model)
    v2, fresh = tmp_path / "v2.sig", tmp_path / "fresh.sig"
    out = _sign(reg, oci(reg, "upd/m", "v2"), "--update", v1, "--signature", v2)
    assert out.returncode == 0, out.stderr
    assert "kept 3 files" in out.stdout and "hashed 1 file" in out.stdout, out.stdout
    out = _sign(reg, oci(reg, "upd/m", "v2"), "--signature", fresh, "--no-stamps")
    assert out.returncode == 0, out.stderr
    assert v2.read_bytes() == fresh.read_bytes()
    verify = ms("verify", oci(reg, "upd/m", "v2"), "--key", ED_PUB, "--signature", v2, *ca(reg))
    assert verify.returncode == 0, verify.stderr

    # Tampered stamps (the README layer claimed unchanged): not used, every layer read.
    stamps = tmp_path / "v2.sig.stamps"
    envelope = json.loads(stamps.read_text())
    import base64
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["layers"][0]["files"] = []
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    stamps.write_text(json.dumps(envelope))
    v3 = tmp_path / "v3.sig"
    out = _sign(reg, oci(reg, "upd/m", "v2"), "--update", v2, "--signature", v3)
    assert out.returncode == 0, out.stderr
    assert "kept 0 files" in out.stdout and "not by this key" in out.stdout, out.stdout
    assert v3.read_bytes() == fresh.read_bytes()

    # OLD by another key is refused before any layer is read.
    out = ms("sign", oci(reg, "upd/m", "v2"), "--key", OTHER_KEY, "--no-attach", *ca(reg),
             "--update", v1, "--signature", tmp_path / "x.sig")
    assert out.returncode == 2 and "only the signer's own signature" in out.stderr, out.stderr
    assert not (tmp_path / "x.sig").exists()


def test_a_raw_layer_renamed_is_read_again(reg, tmp_path):
    # The same blob under another org.cncf.model.filepath: one digest, another file.
    model = write_small_model(tmp_path / "m")
    _release(reg, "upd/raw", "v1", model, media="raw")
    v1 = tmp_path / "v1.sig"
    assert _sign(reg, oci(reg, "upd/raw", "v1"), "--signature", v1).returncode == 0
    (model / "README.md").rename(model / "NOTES.md")
    _release(reg, "upd/raw", "v2", model, media="raw")
    v2, fresh = tmp_path / "v2.sig", tmp_path / "fresh.sig"
    out = _sign(reg, oci(reg, "upd/raw", "v2"), "--update", v1, "--signature", v2)
    assert out.returncode == 0, out.stderr
    assert "hashed 1 file" in out.stdout, out.stdout
    assert _sign(reg, oci(reg, "upd/raw", "v2"), "--signature", fresh, "--no-stamps").returncode == 0
    assert v2.read_bytes() == fresh.read_bytes()
