"""Checks that hubserver.py makes caches that huggingface_hub itself accepts as genuine."""

import os

# Before huggingface_hub is imported: any request that does not go to our server (default endpoint) fails
# fast on a closed local port instead of reaching the internet, and no telemetry is attempted.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_HUB_OFFLINE", None)

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import huggingface_hub  # noqa: E402
from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download, try_to_load_from_cache  # noqa: E402
from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError  # noqa: E402

from hubserver import build_cache, serve_repo  # noqa: E402

REPO = "modelseal-test/tiny-model"
FOLDER = "models--modelseal-test--tiny-model"


@pytest.fixture
def files(tmp_path):
    src = tmp_path / "src"
    (src / "1_Pooling").mkdir(parents=True)
    contents = {
        "model.safetensors": random.Random(0).randbytes(2 * 1024 * 1024 + 7),  # LFS by size (and suffix)
        "config.json": b'{"hidden_size": 8}\n',  # plain git blob
        "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}\n',  # plain git blob in a subfolder
        "1_Pooling/tiny.bin": b"\x00\x01\x02",  # LFS by suffix, though tiny
    }
    for rel, data in contents.items():
        (src / rel).write_bytes(data)
    return src, contents


def check_cache(cache: Path, snapshot: str, commit: str, contents: dict, refs: set):
    repo_dir = cache / FOLDER
    assert Path(snapshot) == repo_dir / "snapshots" / commit

    info = scan_cache_dir(cache)
    assert info.warnings == []
    (repo,) = info.repos
    assert (repo.repo_id, repo.repo_type) == (REPO, "model")
    (rev,) = repo.revisions
    assert rev.commit_hash == commit and set(rev.refs) == refs
    assert {f.file_path.relative_to(snapshot).as_posix() for f in rev.files} == set(contents)

    for rel, data in contents.items():
        link = Path(snapshot) / rel
        # Snapshot entries are relative symlinks into this repo's blobs/, named by etag.
        blob = link.resolve()
        assert blob.parent == (repo_dir / "blobs").resolve()
        assert link.is_symlink() and os.readlink(link) == "../" * (rel.count("/") + 2) + "blobs/" + blob.name
        is_lfs = rel.endswith((".safetensors", ".bin"))
        assert len(blob.name) == (64 if is_lfs else 40)  # sha256 for LFS, git blob sha1 otherwise
        assert blob.read_bytes() == data
        found = try_to_load_from_cache(REPO, rel, cache_dir=cache, revision=commit)
        assert found == str(link)
        if refs:
            assert try_to_load_from_cache(REPO, rel, cache_dir=cache) == str(link)

    # Offline again: the same path comes back from the cache alone (the server is gone by now).
    again = snapshot_download(REPO, revision="main" if refs else commit, cache_dir=cache, local_files_only=True)
    assert again == snapshot


def test_build_cache_main(files, tmp_path):
    src, contents = files
    cache = tmp_path / "cache"
    snapshot, commit = build_cache(src, cache, REPO)
    check_cache(cache, snapshot, commit, contents, refs={"main"})
    assert (cache / FOLDER / "refs" / "main").read_text() == commit
    # Deterministic commit id: same content, same sha.
    assert build_cache(src, tmp_path / "cache2", REPO)[1] == commit


def test_revision_as_commit_sha(files, tmp_path):
    src, contents = files
    cache = tmp_path / "cache"
    sha = "0123456789abcdef0123456789abcdef01234567"
    with serve_repo(src, REPO, revision_sha=sha) as hub:
        snapshot = snapshot_download(REPO, revision=sha, cache_dir=cache, endpoint=hub.endpoint, token=False)
        # Asking by commit skips the model-info call entirely.
        assert not any(path.startswith(f"/api/models/{REPO}/revision") for _, path in hub.requests)
    check_cache(cache, snapshot, sha, contents, refs=set())
    assert not (cache / FOLDER / "refs").exists()


def test_hf_hub_download_and_errors(files, tmp_path):
    src, contents = files
    cache = tmp_path / "cache"
    with serve_repo(src, REPO) as hub:
        kw = dict(cache_dir=cache, endpoint=hub.endpoint, token=False)
        path = hf_hub_download(REPO, "1_Pooling/config.json", **kw)
        assert Path(path).read_bytes() == contents["1_Pooling/config.json"]
        assert path == str(cache / FOLDER / "snapshots" / hub.commit_sha / "1_Pooling" / "config.json")
        with pytest.raises(EntryNotFoundError):
            hf_hub_download(REPO, "missing.txt", **kw)
        with pytest.raises(RevisionNotFoundError):
            hf_hub_download(REPO, "config.json", revision="nope", **kw)
        # huggingface_hub's own API reads the repo info as the Hub would describe it.
        info = huggingface_hub.HfApi(endpoint=hub.endpoint, token=False).model_info(REPO, files_metadata=True)
        assert info.sha == hub.commit_sha
        lfs = {s.rfilename: s.lfs is not None for s in info.siblings}
        assert lfs == {"model.safetensors": True, "1_Pooling/tiny.bin": True,
                       "config.json": False, "1_Pooling/config.json": False}
    # The 404 was remembered the Hub way.
    assert try_to_load_from_cache(REPO, "missing.txt", cache_dir=cache) is huggingface_hub.file_download._CACHED_NO_EXIST
