"""Models in a Hugging Face hub cache, verified where they lie.

The cache keeps a model at ``CACHE/models--ORG--NAME/snapshots/COMMIT/``, whose files
are links into ``CACHE/models--ORG--NAME/blobs/``. Verification follows those links
only if they resolve inside that repo folder, never elsewhere.

    snap = modelseal.hub.snapshot("org/name")                  # revision="main"
    modelseal.hub.verify("org/name", key="release.pub")        # signature: model.sig in it
    model = modelseal.hub.from_pretrained(AutoModel, "org/name", key="release.pub")
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple, Optional

from . import integrations

_COMMIT = re.compile(r"[0-9a-f]{40}")


class Snapshot(NamedTuple):
    """A revision of a cached repo: the snapshot folder, and the repo folder its links
    may resolve in."""

    path: Path
    repo_folder: Path


def default_cache() -> Path:
    """Where huggingface_hub keeps models (its own setting, when it is installed)."""
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except ImportError:
        home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
        return Path(os.environ.get("HF_HUB_CACHE", os.path.join(home, "hub")))


def snapshot(repo_id: str, revision: str = "main", cache_dir=None) -> Snapshot:
    """The cached snapshot of ``repo_id`` at ``revision`` (a branch or tag the cache has
    a ref for, or a 40-hex commit)."""
    parts = repo_id.split("/")
    if not 1 <= len(parts) <= 2 or any(p in ("", ".", "..") or "--" in p for p in parts):
        raise ValueError(f"{repo_id!r} is not a repo id (ORG/NAME)")
    if not revision or revision.startswith("/") or "\\" in revision or ".." in revision.split("/"):
        raise ValueError(f"{revision!r} is not a revision")
    repo_folder = Path(cache_dir if cache_dir is not None else default_cache()) / (
        "models--" + "--".join(parts))
    # The revision is resolved exactly as huggingface_hub resolves it (and transformers,
    # which then reads every further file pinned to the commit it found): `refs/REVISION`
    # first, whatever the revision looks like, its text taken as it is.
    refs = repo_folder / "refs"
    ref = refs / revision
    if _COMMIT.fullmatch(revision) and (ref.exists() or ref.is_symlink()):
        raise ValueError(f"{ref} exists: huggingface_hub would read {revision} from another snapshot")
    if ref.is_file():
        with open(ref) as f:
            commit = f.read()
        if not _COMMIT.fullmatch(commit):
            raise ValueError(f"{ref} does not hold exactly a commit hash: {commit[:80]!r}")
    elif _COMMIT.fullmatch(revision):
        commit = revision
    else:
        raise FileNotFoundError(f"{repo_id} has no cached revision {revision!r} ({ref})")
    # A ref named like a commit sends every read pinned to that commit elsewhere.
    pinned = refs / commit
    if pinned.exists() or pinned.is_symlink():
        raise ValueError(f"{pinned} exists: huggingface_hub would read {commit} from another snapshot")
    path = repo_folder / "snapshots" / commit
    if not path.is_dir():
        raise FileNotFoundError(f"{repo_id}@{revision}: no snapshot folder {path}")
    # huggingface_hub makes the snapshot folders itself; one that is a link (or under
    # one) could lead to a copy outside the repo folder that no blob link points into.
    for folder in (repo_folder / "snapshots", path):
        if folder.is_symlink():
            raise ValueError(f"{folder} is a link; a hub cache's snapshot folders are not")
    if repo_folder.resolve() not in path.resolve().parents:
        raise ValueError(f"{path} resolves outside its repo folder {repo_folder}")
    # huggingface_hub answers "no such file" for a name under `.no_exist/COMMIT/`
    # before it looks in the snapshot: a marker there hides a signed file from loaders.
    # Asked the way it asks (is `.no_exist/COMMIT/NAME` a file?) for every file of the
    # snapshot, so a marker behind a linked folder or in an unlistable one counts too.
    hidden = repo_folder / ".no_exist" / commit

    def unreadable(error: OSError):
        raise ValueError(f"cannot read the snapshot {path}: {error}")

    seen = set()
    for folder, folders, names in os.walk(path, onerror=unreadable, followlinks=True):
        # Linked folders are followed (a name under one is a name a loader asks for),
        # each real folder once, so a link loop ends.
        real = os.path.realpath(folder)
        if real in seen:
            folders.clear()
            continue
        seen.add(real)
        for name in names:
            rel = Path(folder, name).relative_to(path)
            if os.path.isfile(hidden / rel):
                raise ValueError(f"{hidden / rel} hides the snapshot's {rel} from huggingface_hub")
    return Snapshot(path, repo_folder)


def _signature(snap: Snapshot, signature) -> str:
    return os.fspath(signature) if signature is not None else os.fspath(snap.path / "model.sig")


def verify(repo_id: str, revision: str = "main", *, cache_dir=None, signature=None, key=None,
           policy=None, expected: Optional[str] = None) -> dict:
    """``modelseal.verify`` of a cached snapshot; the signature defaults to its
    ``model.sig`` (where model-signing puts it)."""
    from . import verify as _verify

    snap = snapshot(repo_id, revision, cache_dir)
    return _verify(snap.path, _signature(snap, signature), key=key, policy=policy,
                   expected=expected, links_within=snap.repo_folder)


def verified_model(repo_id: str, revision: str = "main", *, cache_dir=None, signature=None,
                   **trust):
    """``modelseal.verified_model`` over a cached snapshot."""
    snap = snapshot(repo_id, revision, cache_dir)
    return integrations.verified_model(snap.path, signature=_signature(snap, signature),
                                       links_within=snap.repo_folder, **trust)


def from_pretrained(loader, repo_id: str, revision: str = "main", *, cache_dir=None,
                    signature=None, key=None, policy=None, expected=None, **kwargs):
    """``modelseal.from_pretrained`` over a cached snapshot."""
    with verified_model(repo_id, revision, cache_dir=cache_dir, signature=signature, key=key,
                        policy=policy, expected=expected) as path:
        make = getattr(loader, "from_pretrained", loader)
        return make(path, **kwargs)
