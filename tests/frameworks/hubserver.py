"""A tiny fake Hugging Face Hub, for building real HF cache folders in tests.

It serves one model repo from a local directory over HTTP on 127.0.0.1, speaking just enough of the Hub API
for `huggingface_hub.snapshot_download` / `hf_hub_download` to run their normal (online) code path and write
the usual cache layout:

    CACHE/models--ORG--NAME/
        blobs/<etag>                      git blob sha1 (small files) or sha256 (LFS files)
        refs/main                         commit sha (only when a branch name was requested)
        snapshots/<commit>/<path>         relative symlinks: ../../blobs/<etag>, one more ../ per subfolder
        trees/<commit>.json               tree listing cached by huggingface_hub >= 2.x
        .no_exist/<commit>/<path>         files asked for but missing (404 EntryNotFound)

Endpoints served (models only, one repo, revisions `branch` and the commit sha):

    GET  /api/models/{repo}                       model info of `branch` (sha, siblings)
    GET  /api/models/{repo}/revision/{rev}        model info; `?blobs=true` adds size/blobId/lfs
    GET  /api/models/{repo}/tree/{rev}[/{path}]   tree listing, `?recursive=true`, single page
    HEAD/GET /{repo}/resolve/{rev}/{path}         small file: 200 + ETag + X-Repo-Commit
                                                  LFS file: 302 to the "CDN" + X-Linked-Etag/-Size
    HEAD/GET /lfs/{sha256}   (second port)       the "CDN" serving LFS blobs

The LFS redirect goes to a second listening port on purpose: huggingface_hub only follows a HEAD redirect
when it stays on the same origin, and reads the LFS metadata (X-Linked-*) from the redirect response itself,
exactly like it does with the real Hub and its CDN. No Xet headers are ever sent, so downloads use plain HTTP
even when `hf_xet` is installed.

Nothing here talks to the internet; callers must pass `endpoint=` (build_cache does) and HF_HUB_OFFLINE must
be unset (huggingface_hub refuses all HTTP in offline mode).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

# Files at least this big are stored as LFS, like big files on the real Hub.
DEFAULT_LFS_THRESHOLD = 1 << 20
# Suffixes that the Hub's default .gitattributes puts in LFS whatever their size.
DEFAULT_LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack", ".gguf", ".pkl", ".npy", ".npz",
    ".model", ".tflite", ".ot", ".zip", ".tar", ".gz",
)
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RepoEntry:
    path: str  # posix path inside the repo
    source: Path  # file on disk
    size: int
    git_oid: str  # sha1 of the git blob (for LFS files: of the pointer file, as the Hub reports it)
    sha256: str | None  # set for LFS files only
    pointer_size: int | None  # size of the LFS pointer file

    @property
    def etag(self) -> str:
        # The Hub's etag (and so the blob file name in the cache) is sha256 for LFS, git sha1 otherwise.
        return self.sha256 or self.git_oid


def _git_blob_sha1(data_chunks, size: int) -> str:
    h = hashlib.sha1(b"blob %d\0" % size)
    for chunk in data_chunks:
        h.update(chunk)
    return h.hexdigest()


def _read_chunks(path: Path):
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _index_file(path: str, source: Path, lfs_threshold: int, lfs_suffixes) -> RepoEntry:
    size = source.stat().st_size
    if size >= lfs_threshold or path.lower().endswith(tuple(lfs_suffixes)):
        h = hashlib.sha256()
        for chunk in _read_chunks(source):
            h.update(chunk)
        sha256 = h.hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
        return RepoEntry(path, source, size, _git_blob_sha1([pointer], len(pointer)), sha256, len(pointer))
    return RepoEntry(path, source, size, _git_blob_sha1(_read_chunks(source), size), None, None)


def index_repo(files_dir, lfs_threshold=DEFAULT_LFS_THRESHOLD, lfs_suffixes=DEFAULT_LFS_SUFFIXES):
    """Map repo path -> RepoEntry for every file under files_dir (skipping .git and a top-level .cache)."""
    root = Path(files_dir)
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not (rel_dir == Path(".") and d == ".cache"))
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            entries[rel] = _index_file(rel, Path(dirpath) / name, lfs_threshold, lfs_suffixes)
    if not entries:
        raise ValueError(f"no files to serve in {root}")
    return dict(sorted(entries.items()))


def content_commit_sha(entries) -> str:
    """Deterministic fake commit id: sha1 over the sorted (path, git oid) pairs."""
    h = hashlib.sha1()
    for e in entries.values():
        h.update(f"{e.path}\0{e.git_oid}\n".encode())
    return h.hexdigest()


class HubServer:
    """Serves one repo; use as a context manager or call stop(). See module docstring."""

    def __init__(self, files_dir, repo_id, revision_sha=None, *, branch="main",
                 lfs_threshold=DEFAULT_LFS_THRESHOLD, lfs_suffixes=DEFAULT_LFS_SUFFIXES):
        if revision_sha is not None and not _COMMIT_RE.fullmatch(revision_sha):
            # huggingface_hub only treats 40 lowercase hex chars as a commit id
            raise ValueError(f"revision_sha must be 40 lowercase hex chars, got {revision_sha!r}")
        self.repo_id = repo_id
        self.branch = branch
        self.entries = index_repo(files_dir, lfs_threshold, lfs_suffixes)
        self.commit_sha = revision_sha or content_commit_sha(self.entries)
        self.by_sha256 = {e.sha256: e for e in self.entries.values() if e.sha256}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, hub and CDN
        self._hub = self._listen()
        self._cdn = self._listen()
        self.endpoint = f"http://127.0.0.1:{self._hub.server_port}"
        self.cdn_url = f"http://127.0.0.1:{self._cdn.server_port}"
        for srv in (self._hub, self._cdn):
            # short poll interval: shutdown() waits up to one interval, 0.5 s by default
            threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()

    def _listen(self):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)  # port 0: the OS picks a free port
        server.hub = self
        return server

    def stop(self):
        for srv in (self._hub, self._cdn):
            srv.shutdown()
            srv.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- JSON documents -------------------------------------------------------------------------------------

    def model_info(self, with_blobs: bool) -> dict:
        siblings = []
        for e in self.entries.values():
            s = {"rfilename": e.path}
            if with_blobs:
                s.update(size=e.size, blobId=e.git_oid)
                if e.sha256:
                    s["lfs"] = {"sha256": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
            siblings.append(s)
        return {
            "_id": self.commit_sha[:24], "id": self.repo_id, "modelId": self.repo_id, "sha": self.commit_sha,
            "private": False, "gated": False, "disabled": False, "tags": [], "downloads": 0, "likes": 0,
            "lastModified": "2024-01-01T00:00:00.000Z", "createdAt": "2024-01-01T00:00:00.000Z",
            "siblings": siblings,
        }

    def tree(self, prefix: str, recursive: bool) -> list | None:
        """Hub-style tree listing under `prefix` ('' = root); None if prefix is not a folder."""
        base = prefix.strip("/") + "/" if prefix.strip("/") else ""
        items: dict[str, dict] = {}
        for e in self.entries.values():
            if not e.path.startswith(base):
                continue
            parts = e.path[len(base):].split("/")
            # folders on the way to the file (only the first one when not recursive)
            for i in range(1, len(parts) if recursive else min(2, len(parts))):
                folder = base + "/".join(parts[:i])
                oid = hashlib.sha1(f"tree {folder}".encode()).hexdigest()  # placeholder, not a real git tree id
                items.setdefault(folder, {"type": "directory", "oid": oid, "size": 0, "path": folder})
            if recursive or len(parts) == 1:
                item = {"type": "file", "oid": e.git_oid, "size": e.size, "path": e.path}
                if e.sha256:
                    item["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
                items[e.path] = item
        if not items and base:
            return None
        return [items[k] for k in sorted(items)]


class _Handler(BaseHTTPRequestHandler):
    server_version = "fakehub/1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_HEAD(self):
        self._route(head=True)

    def do_GET(self):
        self._route(head=False)

    # --- plumbing --------------------------------------------------------------------------------------------

    def _send(self, status, headers=(), body=b"", head=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, obj, status=200, head=False, extra=()):
        body = json.dumps(obj).encode()
        self._send(status, [("Content-Type", "application/json; charset=utf-8"), *extra], body, head)

    def _error(self, status, code, message, head=False, extra=()):
        # huggingface_hub maps X-Error-Code to RepositoryNotFoundError / RevisionNotFoundError / EntryNotFoundError
        headers = [("X-Error-Code", code), ("X-Error-Message", message), *extra]
        self._json({"error": message}, status, head, headers)

    def _send_file(self, entry: RepoEntry, etag: str, extra, head):
        self.send_response(200)
        for k, v in [("ETag", f'"{etag}"'), ("Content-Type", "application/octet-stream"),
                     ("Accept-Ranges", "none"), *extra]:
            self.send_header(k, v)
        self.send_header("Content-Length", str(entry.size))
        self.end_headers()
        if not head:
            for chunk in _read_chunks(entry.source):
                self.wfile.write(chunk)

    # --- routing ---------------------------------------------------------------------------------------------

    def _route(self, head):
        hub: HubServer = self.server.hub
        hub.requests.append((self.command, self.path))
        url = urlsplit(self.path)
        raw, query = url.path, parse_qs(url.query)
        is_cdn = self.server is hub._cdn

        if is_cdn:
            entry = hub.by_sha256.get(raw.removeprefix("/lfs/")) if raw.startswith("/lfs/") else None
            if entry is None:
                return self._send(404, head=head)
            name = entry.path.rsplit("/", 1)[-1]
            disposition = f"attachment; filename*=UTF-8''{quote(name)}; filename=\"{name}\";"
            return self._send_file(entry, entry.sha256, [("Content-Disposition", disposition)], head)

        api = f"/api/models/{hub.repo_id}"
        resolve = f"/{hub.repo_id}/resolve/"
        if raw == api or raw.startswith(api + "/"):
            return self._api(hub, raw[len(api):], query, head)
        if raw.startswith(resolve):
            return self._resolve(hub, raw[len(resolve):], head)
        return self._error(404, "RepoNotFound", "Repository not found", head)

    def _revision_ok(self, hub, rev, head):
        if rev in (hub.branch, hub.commit_sha):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
        return False

    def _api(self, hub: HubServer, rest: str, query, head):
        # rest is "", "/revision/<rev>" or "/tree/<rev>[/<path>]"; segments stay %-encoded until split,
        # because huggingface_hub encodes "/" inside revisions (refs/pr/1 -> refs%2Fpr%2F1).
        parts = rest.strip("/").split("/") if rest.strip("/") else []
        with_blobs = query.get("blobs", ["false"])[0].lower() == "true"
        if not parts:
            return self._json(hub.model_info(with_blobs), head=head)
        if len(parts) >= 2 and parts[0] in ("revision", "tree"):
            rev = unquote(parts[1])
            if not self._revision_ok(hub, rev, head):
                return
            if parts[0] == "revision" and len(parts) == 2:
                return self._json(hub.model_info(with_blobs), head=head)
            if parts[0] == "tree":
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                listing = hub.tree(unquote("/".join(parts[2:])), recursive)
                if listing is None:
                    return self._error(404, "EntryNotFound", "Path not found", head)
                return self._json(listing, head=head)  # no Link header: a single page
        return self._error(404, "EntryNotFound", f"Unknown API route {rest}", head)

    def _resolve(self, hub: HubServer, rest: str, head):
        rev_raw, _, path_raw = rest.partition("/")
        rev, path = unquote(rev_raw), unquote(path_raw)
        if not self._revision_ok(hub, rev, head):
            return
        commit = [("X-Repo-Commit", hub.commit_sha)]
        entry = hub.entries.get(path)
        if entry is None:
            # X-Repo-Commit on the 404 lets huggingface_hub record the miss in .no_exist/<commit>/
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}", head, commit)
        if entry.sha256:
            # LFS: redirect to the CDN; metadata rides on the redirect (the client does not follow it on HEAD)
            headers = [*commit, ("Location", f"{hub.cdn_url}/lfs/{entry.sha256}"), ("ETag", f'"{entry.git_oid}"'),
                       ("X-Linked-Etag", f'"{entry.sha256}"'), ("X-Linked-Size", str(entry.size))]
            return self._send(302, headers, head=head)
        return self._send_file(entry, entry.git_oid, commit, head)


def serve_repo(files_dir, repo_id, revision_sha=None, **kwargs) -> HubServer:
    """Start serving files_dir as repo_id. Returns a running HubServer (context manager; or call .stop()).

    Useful attributes: .endpoint (pass as `endpoint=`), .commit_sha, .requests, .entries.
    kwargs: branch="main", lfs_threshold, lfs_suffixes.
    """
    return HubServer(files_dir, repo_id, revision_sha, **kwargs)


def build_cache(files_dir, cache_dir, repo_id, revision=None, *, revision_sha=None, **kwargs):
    """Download files_dir as repo_id into cache_dir with huggingface_hub's own code.

    revision: what to ask snapshot_download for; default the branch ("main"); pass the commit sha to get a
    snapshot with no refs/ entry. Returns (snapshot_path, commit_sha). The server is stopped afterwards.
    """
    from huggingface_hub import constants, snapshot_download

    if constants.is_offline_mode():
        raise RuntimeError("HF_HUB_OFFLINE is set: huggingface_hub would refuse to talk to the local server")
    with serve_repo(files_dir, repo_id, revision_sha, **kwargs) as hub:
        path = snapshot_download(
            repo_id,
            revision=revision or hub.branch,
            cache_dir=cache_dir,
            endpoint=hub.endpoint,
            token=False,  # never read or send the user's HF token
            max_workers=4,
        )
    return path, hub.commit_sha
