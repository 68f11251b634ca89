"""A real OCI registry on loopback, and ways to put models into it, for tests of `modelseal`.

Everything here runs on this machine and talks only to 127.0.0.1:

* `LocalRegistry` runs the CNCF distribution registry (Debian's `docker-registry`, 2.8) over
  TLS with a throw-away CA, optionally behind htpasswd basic auth, and offers raw HTTP helpers
  (`manifest`, `put_manifest`, `put_blob`, ...) so that a test can craft hostile content.
* `build_modelpack` / `build_kitops` make a CNCF ModelPack or KitOps ModelKit artifact in
  memory from a model folder (deterministic bytes); `push_artifact` pushes it, either through
  plain HTTP or through the `oras` Python SDK; `push_modelpack` / `push_kitops` do both steps.
* `push_image` builds a plain OCI image with buildah (from scratch, vfs storage, chroot
  isolation) and pushes it; `push_with_skopeo` copies an OCI layout folder (see
  `write_oci_layout`) with skopeo.
* `StallingServer` accepts connections and then never answers, answers headers and stalls the
  body, or trickles it; `closed_port` gives a port nothing listens on.

Media types and annotations follow ModelPack v1 (modelpack/model-spec, specs-go/v1) and KitOps
(kitops-ml/kitops, pkg/lib/constants/mediatype, pkg/artifact/kitfile.go).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import datetime
import functools
import gzip
import hashlib
import io
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Union

import requests

# --------------------------------------------------------------------------------------------
# Media types and annotations
# --------------------------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

# ModelPack v1 (modelpack/model-spec specs-go/v1/mediatype.go, annotations.go)
MODELPACK_ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
MODELPACK_KINDS = ("weight", "weight.config", "doc", "code", "dataset")
MODELPACK_MEDIA = ("tar", "tar+gzip", "tar+zstd", "raw")
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"
ANNOTATION_TITLE = "org.opencontainers.image.title"


def modelpack_media_type(kind: str, media: str) -> str:
    """`application/vnd.cncf.model.<kind>.v1.<media>`, e.g. weight + tar+gzip."""
    if kind not in MODELPACK_KINDS:
        raise ValueError(f"unknown ModelPack layer kind {kind!r} (one of {MODELPACK_KINDS})")
    if media not in MODELPACK_MEDIA:
        raise ValueError(f"unknown ModelPack layer media {media!r} (one of {MODELPACK_MEDIA})")
    return f"application/vnd.cncf.model.{kind}.v1.{media}"


# KitOps ModelKit (kitops-ml/kitops pkg/lib/constants/mediatype/kitops.go, artifacttype.go,
# pkg/lib/constants/consts.go)
KITOPS_ARTIFACT_TYPE = "application/vnd.kitops.modelkit.manifest.v1+json"
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
KITOPS_KINDS = ("model", "modelpart", "dataset", "code", "docs")
KITOPS_ANNOTATION_KITFILE = "ml.kitops.modelkit.kitfile"


def kitops_media_type(kind: str, compression: str = "tar+gzip") -> str:
    """`application/vnd.kitops.modelkit.<kind>.v1.<tar|tar+gzip|tar+zstd>`."""
    if kind not in KITOPS_KINDS:
        raise ValueError(f"unknown KitOps layer kind {kind!r} (one of {KITOPS_KINDS})")
    if compression not in ("tar", "tar+gzip", "tar+zstd"):
        raise ValueError(f"unknown KitOps layer format {compression!r}")
    return f"application/vnd.kitops.modelkit.{kind}.v1.{compression}"


WEIGHT_SUFFIXES = {
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".ggml", ".onnx", ".h5", ".keras",
    ".msgpack", ".pb", ".tflite", ".npz", ".npy", ".pkl", ".pickle", ".joblib", ".mlmodel",
    ".params", ".engine", ".plan",
}
DOC_NAMES = ("readme", "license", "licence", "notice", "copying", "changelog", "model_card")
DOC_SUFFIXES = {".md", ".rst", ".pdf", ".html"}
CODE_SUFFIXES = {".py", ".sh", ".ipynb", ".js", ".ts", ".rs", ".go", ".c", ".cc", ".cpp", ".h"}
DATASET_SUFFIXES = {".csv", ".parquet", ".arrow", ".jsonl", ".tsv"}


def classify(relpath: str) -> str:
    """The ModelPack layer kind of a file: weight, weight.config, doc, code or dataset."""
    name = relpath.rsplit("/", 1)[-1]
    lower = name.lower()
    suffix = os.path.splitext(lower)[1]
    if suffix in WEIGHT_SUFFIXES:
        return "weight"
    if lower.startswith(DOC_NAMES) or suffix in DOC_SUFFIXES:
        return "doc"
    if suffix in CODE_SUFFIXES:
        return "code"
    if suffix in DATASET_SUFFIXES:
        return "dataset"
    if suffix in {".json", ".yaml", ".yml", ".txt", ".model", ".tiktoken", ".jinja", ".toml"}:
        return "weight.config"
    return "weight"


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


class HarnessError(RuntimeError):
    """Something in the test harness (not in modelseal) went wrong."""


DEFAULT_HTTP_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds, for every HTTP call here
DEFAULT_CMD_TIMEOUT = 120.0

_APT_HINTS = {
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "buildah": "buildah",
    "zstd": "zstd",
}


def require_binary(name: str) -> str:
    """The full path of `name`, or a HarnessError that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pkg = _APT_HINTS.get(name, name)
        raise HarnessError(
            f"`{name}` is not on PATH; the OCI tests need it (Debian: apt-get install -y {pkg})"
        )
    return path


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return port


def unreachable_host() -> str:
    """`127.0.0.1:PORT` where nothing listens (connection refused), for "unreachable" tests."""
    return f"127.0.0.1:{closed_port()}"


def run(
    argv: list,
    *,
    timeout: float = DEFAULT_CMD_TIMEOUT,
    env: Optional[dict] = None,
    cwd: Optional[Path] = None,
    input: Optional[bytes] = None,
) -> subprocess.CompletedProcess:
    """Run a command with a timeout; raise HarnessError with its output when it fails."""
    require_binary(str(argv[0]))
    try:
        proc = subprocess.run(
            [str(a) for a in argv],
            input=input,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            env=env,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise HarnessError(
            f"timed out after {timeout:.0f} s: {' '.join(map(str, argv))}\n"
            f"stdout: {_tail(e.stdout)}\nstderr: {_tail(e.stderr)}"
        ) from None
    if proc.returncode != 0:
        raise HarnessError(
            f"exit {proc.returncode}: {' '.join(map(str, argv))}\n"
            f"stdout: {_tail(proc.stdout)}\nstderr: {_tail(proc.stderr)}"
        )
    return proc


def _tail(data, n: int = 4000) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return data[-n:]


def _import(module: str):
    """Import a Python dependency of the harness, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise HarnessError(
            f"Python package `{module}` is missing: target/interop-venv/bin/pip install -r "
            "tests/interop/requirements.txt"
        ) from e


def _set_pdeathsig() -> None:
    """In the child: get SIGKILL when the parent (the test process) dies. Linux only."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


# Registries still running, killed at interpreter exit if a test forgot to stop one.
_LIVE_GROUPS: set = set()


def _kill_live_groups() -> None:
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    _LIVE_GROUPS.clear()


atexit.register(_kill_live_groups)


# --------------------------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------------------------


@dataclass
class TlsMaterial:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost, as PEM files."""

    ca_pem: Path
    ca_key_pem: Path
    cert_pem: Path
    key_pem: Path
    cert_dir: Path  # holds ca.crt (containers/image --cert-dir layout: skopeo, buildah)

    @classmethod
    def create(cls, folder: Path, days: int = 7) -> "TlsMaterial":
        _import("cryptography")
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before = now - datetime.timedelta(hours=1)
        not_after = now + datetime.timedelta(days=days)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"modelseal test CA {secrets.token_hex(4)}")]
        )
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )

        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False,
                    crl_sign=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )

        def key_bytes(k) -> bytes:
            return k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )

        ca_pem = folder / "ca.pem"
        ca_key_pem = folder / "ca.key"
        cert_pem = folder / "server.pem"
        key_pem = folder / "server.key"
        ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        ca_key_pem.write_bytes(key_bytes(ca_key))
        cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_pem.write_bytes(key_bytes(key))
        for p in (ca_key_pem, key_pem):
            p.chmod(0o600)
        cert_dir = folder / "certs.d"
        cert_dir.mkdir(exist_ok=True)
        shutil.copyfile(ca_pem, cert_dir / "ca.crt")
        return cls(ca_pem, ca_key_pem, cert_pem, key_pem, cert_dir)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_pem), str(self.key_pem))
        return ctx


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


class LocalRegistry:
    """`docker-registry serve` over TLS on 127.0.0.1, in a context manager.

    with LocalRegistry(tmp_path, auth=True) as reg:
        reg.host, reg.ca_pem, reg.cert_dir, reg.username, reg.password, reg.docker_config_dir
    """

    def __init__(
        self,
        workdir: Path,
        auth: bool = False,
        *,
        startup_timeout: float = 30.0,
        http_timeout=DEFAULT_HTTP_TIMEOUT,
    ):
        self.workdir = Path(workdir).resolve()
        self.auth = auth
        self.startup_timeout = startup_timeout
        self.http_timeout = http_timeout
        self.port: Optional[int] = None
        self.host: str = ""
        self.username: Optional[str] = None
        self.password: Optional[str] = None
        self.tls: Optional[TlsMaterial] = None
        self.storage_dir = self.workdir / "storage"
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.docker_config_dir = self.workdir / "docker-config"
        self._proc: Optional[subprocess.Popen] = None
        self._session: Optional[requests.Session] = None
        self._log_file = None

    # -- paths ---------------------------------------------------------------------------

    @property
    def ca_pem(self) -> Path:
        assert self.tls is not None, "registry not started"
        return self.tls.ca_pem

    @property
    def cert_dir(self) -> Path:
        """A folder holding `ca.crt`, for `skopeo --cert-dir` / `buildah --cert-dir`."""
        assert self.tls is not None, "registry not started"
        return self.tls.cert_dir

    @property
    def auth_file(self) -> Path:
        """The Docker `config.json` (also usable as containers-auth.json / --authfile)."""
        return self.docker_config_dir / "config.json"

    def ref(self, repo: str, tag_or_digest: str = "latest") -> str:
        """`HOST/REPO:TAG` or `HOST/REPO@sha256:...`."""
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"

    def url(self, path: str = "/v2/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"https://{self.host}{path}"

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "LocalRegistry":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        binary = require_binary("docker-registry")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        self.tls = TlsMaterial.create(self.workdir / "tls")
        htpasswd = None
        if self.auth:
            bcrypt = _import("bcrypt")
            self.username = "u" + secrets.token_hex(6)
            self.password = secrets.token_urlsafe(18)
            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{self.username}:{hashed}\n")
        last_error = ""
        for _attempt in range(4):  # a free port can be taken between probe and bind
            self.port = free_port()
            self.host = f"127.0.0.1:{self.port}"
            self._write_config(htpasswd)
            self._write_docker_config()
            self._spawn(binary)
            try:
                self._wait_ready()
                return
            except HarnessError as e:
                last_error = str(e)
                self._terminate()
                if "address already in use" not in last_error:
                    break
        raise HarnessError(last_error)

    def restart(self) -> None:
        """Stop the server and start it again on the same port, CA, storage and credentials
        (for "the registry went away and came back" tests)."""
        if self.tls is None:
            raise HarnessError("restart() before start()")
        self._terminate()
        self._spawn(require_binary("docker-registry"))
        self._wait_ready()

    def _write_config(self, htpasswd: Optional[Path]) -> None:
        config = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                "secret": secrets.token_hex(16),
                "tls": {
                    "certificate": str(self.tls.cert_pem),
                    "key": str(self.tls.key_pem),
                },
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "modelseal-test", "path": str(htpasswd)}}
        # YAML is a superset of JSON, and JSON needs no third-party writer.
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")

    def _write_docker_config(self) -> None:
        self.docker_config_dir.mkdir(parents=True, exist_ok=True)
        auths = {}
        if self.auth:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            auths[self.host] = {"auth": token}
        self.auth_file.write_text(json.dumps({"auths": auths}, indent=2) + "\n")
        self.auth_file.chmod(0o600)

    def _spawn(self, binary: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self._log_file = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            [binary, "serve", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
            start_new_session=True,  # own process group: killpg on stop
            preexec_fn=_set_pdeathsig,  # and SIGKILL if the test process dies
        )
        _LIVE_GROUPS.add(self._proc.pid)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return _tail(self.log_path.read_bytes(), n)
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise HarnessError(
                    f"docker-registry exited with {self._proc.returncode} before answering\n"
                    f"log: {self.log_tail()}"
                )
            try:
                r = self.request("GET", "/v2/", timeout=(1.0, 2.0))
                if r.status_code in (200, 401):
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        raise HarnessError(
            f"docker-registry did not answer GET /v2/ within {self.startup_timeout:.0f} s "
            f"({last})\nlog: {self.log_tail()}"
        )

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            _LIVE_GROUPS.discard(proc.pid)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        self._terminate()
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- raw HTTP --------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """A requests session that trusts the CA and sends the credentials (if any)."""
        if self._session is None:
            s = requests.Session()
            # No proxies, netrc or REQUESTS_CA_BUNDLE from the environment: requests lets that
            # variable override Session.verify, so `request` also passes verify explicitly.
            s.trust_env = False
            s.verify = str(self.ca_pem)
            if self.auth:
                s.auth = (self.username, self.password)
            self._session = s
        return self._session

    def request(self, method: str, path_or_url: str, **kwargs) -> requests.Response:
        """One HTTP request to the registry (path like /v2/..., or a full URL), with timeout."""
        kwargs.setdefault("timeout", self.http_timeout)
        kwargs.setdefault("verify", str(self.ca_pem))
        url = path_or_url if path_or_url.startswith("https://") else self.url(path_or_url)
        return self.session.request(method, url, **kwargs)

    def manifest(self, repo: str, ref: str, accept: str = MANIFEST_ACCEPT):
        """GET a manifest: (bytes, content_type, digest). The digest is the registry's."""
        r = self.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
        _check(r, 200, f"GET manifest {repo}:{ref}")
        body = r.content
        digest = r.headers.get("Docker-Content-Digest") or sha256_digest(body)
        return body, r.headers.get("Content-Type", ""), digest

    def manifest_json(self, repo: str, ref: str) -> dict:
        return json.loads(self.manifest(repo, ref)[0])

    def put_manifest(
        self, repo: str, ref: str, data: Union[bytes, dict], media_type: str = OCI_MANIFEST
    ) -> str:
        """PUT manifest bytes (exactly as given) under a tag or digest; returns its digest."""
        if isinstance(data, dict):
            data = canonical_json(data)
        r = self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", data=data, headers={"Content-Type": media_type}
        )
        _check(r, 201, f"PUT manifest {repo}:{ref}")
        return r.headers.get("Docker-Content-Digest") or sha256_digest(data)

    def delete_manifest(self, repo: str, digest: str) -> None:
        r = self.request("DELETE", f"/v2/{repo}/manifests/{digest}")
        _check(r, 202, f"DELETE manifest {repo}@{digest}")

    def blob_exists(self, repo: str, digest: str) -> bool:
        r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            return False
        _check(r, 200, f"HEAD blob {repo}@{digest}")
        return False

    def put_blob(self, repo: str, data: Union[bytes, Path], digest: Optional[str] = None) -> str:
        """Monolithic blob upload (POST then PUT ?digest=). `digest` may lie on purpose: the
        registry then refuses it (DIGEST_INVALID) and this raises. Returns the digest."""
        if isinstance(data, Path):
            data = data.read_bytes()
        digest = digest or sha256_digest(data)
        if self.blob_exists(repo, digest):
            return digest
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        _check(r, 202, f"POST blob upload {repo}")
        location = urllib.parse.urljoin(self.url("/"), r.headers["Location"])
        sep = "&" if "?" in location else "?"
        put_url = f"{location}{sep}digest={urllib.parse.quote(digest)}"
        r = self.request(
            "PUT", put_url, data=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        )
        _check(r, 201, f"PUT blob {repo}@{digest}")
        return digest

    def get_blob(self, repo: str, digest: str, verify_digest: bool = True) -> bytes:
        r = self.request("GET", f"/v2/{repo}/blobs/{digest}")
        _check(r, 200, f"GET blob {repo}@{digest}")
        if verify_digest and sha256_digest(r.content) != digest:
            raise HarnessError(f"blob {repo}@{digest} came back with another digest")
        return r.content

    def tags(self, repo: str) -> list:
        r = self.request("GET", f"/v2/{repo}/tags/list")
        _check(r, 200, f"GET tags {repo}")
        return r.json().get("tags") or []


def _check(r: requests.Response, expected: int, what: str) -> None:
    if r.status_code != expected:
        raise HarnessError(f"{what}: HTTP {r.status_code} (expected {expected}): {r.text[:2000]}")


def canonical_json(obj) -> bytes:
    """Compact JSON with keys in insertion order: the bytes pushed as a manifest or config."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------------------------
# Artifacts (ModelPack, KitOps) built in memory
# --------------------------------------------------------------------------------------------


@dataclass
class Artifact:
    """An OCI manifest with its config and layer blobs, ready to push or to tamper with."""

    manifest: dict
    blobs: dict = field(default_factory=dict)  # digest -> bytes (config and layers)

    def manifest_bytes(self) -> bytes:
        return canonical_json(self.manifest)

    @property
    def digest(self) -> str:
        """The digest of `manifest_bytes()` (what push_artifact(client="http") stores)."""
        return sha256_digest(self.manifest_bytes())

    @property
    def layers(self) -> list:
        return self.manifest["layers"]

    def add_blob(self, data: bytes, media_type: str, annotations: Optional[dict] = None) -> dict:
        digest = sha256_digest(data)
        self.blobs[digest] = data
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if annotations:
            desc["annotations"] = annotations
        return desc


def model_files(model_dir: Path) -> list:
    """Every regular file under model_dir (symlinks not followed), as sorted posix relpaths."""
    model_dir = Path(model_dir)
    out = []
    for root, dirs, files in os.walk(model_dir, followlinks=False):
        dirs.sort()
        for name in files:
            p = Path(root) / name
            if p.is_symlink() or not p.is_file():
                continue
            out.append(p.relative_to(model_dir).as_posix())
    return sorted(out)


def tar_one(relpath: str, data: bytes, parent_dirs: bool = True, mode: int = 0o644) -> bytes:
    """A deterministic tar holding one file named `relpath` (and its parent directories)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        if parent_dirs:
            parts = relpath.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = tarfile.TarInfo("/".join(parts[:i]) + "/")
                d.type = tarfile.DIRTYPE
                d.mode = 0o755
                d.mtime = 0
                tf.addfile(d)
        info = tarfile.TarInfo(relpath)
        info.size = len(data)
        info.mode = mode
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compress(data: bytes, how: str) -> bytes:
    """'tar' (no compression), 'tar+gzip' (mtime 0) or 'tar+zstd' (the zstd CLI)."""
    if how == "tar":
        return data
    if how == "tar+gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if how == "tar+zstd":
        return run(["zstd", "-q", "-c", "-3", "--no-progress", "-"], input=data, timeout=60).stdout
    raise ValueError(f"unknown compression {how!r}")


def _file_metadata(relpath: str, size: int) -> str:
    # org.cncf.model.file.metadata+json (specs-go/v1/annotations.go FileMetadata)
    return json.dumps(
        {
            "name": relpath.rsplit("/", 1)[-1],
            "mode": 0o644,
            "uid": 0,
            "gid": 0,
            "size": size,
            "mtime": "1970-01-01T00:00:00Z",
            "typeflag": 48,  # '0': regular file
        },
        separators=(",", ":"),
    )


def build_modelpack(
    model_dir: Path,
    media: str = "tar",
    *,
    kinds: Optional[dict] = None,
    name: Optional[str] = None,
    file_metadata: bool = True,
) -> Artifact:
    """A CNCF ModelPack v1 artifact: one layer per regular file of model_dir.

    media: tar | tar+gzip | tar+zstd | raw (for every layer). kinds: relpath -> ModelPack kind
    (weight, weight.config, doc, code, dataset), overriding `classify`. Each layer carries
    org.cncf.model.filepath = relpath (and org.cncf.model.file.metadata+json). A tar layer
    holds one entry named relpath (with parent directory entries); a raw layer is the bytes.
    """
    model_dir = Path(model_dir)
    if media not in MODELPACK_MEDIA:
        raise ValueError(f"media must be one of {MODELPACK_MEDIA}, not {media!r}")
    files = model_files(model_dir)
    if not files:
        raise HarnessError(f"{model_dir} has no regular file to pack")
    kinds = kinds or {}
    art = Artifact(manifest={})
    layers, diff_ids = [], []
    formats = set()
    for rel in files:
        data = (model_dir / rel).read_bytes()
        kind = kinds.get(rel) or classify(rel)
        if media == "raw":
            uncompressed = blob = data
        else:
            uncompressed = tar_one(rel, data)
            blob = compress(uncompressed, media)
        annotations = {ANNOTATION_FILEPATH: rel}
        if file_metadata:
            annotations[ANNOTATION_FILE_METADATA] = _file_metadata(rel, len(data))
        layers.append(art.add_blob(blob, modelpack_media_type(kind, media), annotations))
        diff_ids.append(sha256_digest(uncompressed))
        if kind == "weight":
            formats.add(os.path.splitext(rel)[1].lstrip(".").lower())
    config = {
        "descriptor": {"name": name or model_dir.name, "family": "modelseal-test"},
        "config": {"format": sorted(formats)[0]} if len(formats) == 1 else {},
        "modelfs": {"type": "layers", "diffIds": diff_ids},
    }
    config_desc = art.add_blob(canonical_json(config), MODELPACK_CONFIG)
    art.manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": MODELPACK_ARTIFACT_TYPE,
        "config": config_desc,
        "layers": layers,
    }
    return art


def kitops_kind(relpath: str) -> str:
    kind = classify(relpath)
    return {"weight": "model", "doc": "docs", "dataset": "dataset"}.get(kind, "code")


def build_kitops(
    model_dir: Path,
    *,
    compression: str = "tar+gzip",
    name: Optional[str] = None,
    kinds: Optional[dict] = None,
) -> Artifact:
    """A KitOps ModelKit: one layer per regular file, the Kitfile (as JSON) as config.

    The first weight file is the Kitfile `model` (layer kind model), further weights are
    `model.parts` (modelpart), README/LICENSE/*.md are `docs`, the rest (json configs,
    scripts) are `code`. Each tar layer holds one entry named relpath. Each layer also has
    org.cncf.model.filepath (KitOps itself records paths in the Kitfile only)."""
    model_dir = Path(model_dir)
    files = model_files(model_dir)
    if not files:
        raise HarnessError(f"{model_dir} has no regular file to pack")
    kinds = kinds or {}
    art = Artifact(manifest={})
    layers = []
    kitfile: dict = {
        "manifestVersion": "1.0.0",
        "package": {"name": name or model_dir.name, "description": "modelseal test ModelKit"},
    }
    model_seen = False
    for rel in files:
        kind = kinds.get(rel) or kitops_kind(rel)
        if kind == "model" and model_seen:
            kind = "modelpart"
        uncompressed = tar_one(rel, (model_dir / rel).read_bytes())
        blob = compress(uncompressed, compression)
        desc = art.add_blob(
            blob, kitops_media_type(kind, compression), {ANNOTATION_FILEPATH: rel}
        )
        layers.append(desc)
        info = {"path": rel, "digest": desc["digest"], "diffId": sha256_digest(uncompressed)}
        if kind == "model":
            model_seen = True
            kitfile["model"] = {"name": name or model_dir.name, **info}
        elif kind == "modelpart":
            kitfile.setdefault("model", {}).setdefault("parts", []).append(info)
        elif kind == "docs":
            kitfile.setdefault("docs", []).append(info)
        elif kind == "dataset":
            kitfile.setdefault("datasets", []).append(info)
        else:
            kitfile.setdefault("code", []).append(info)
    config_bytes = canonical_json(kitfile)
    config_desc = art.add_blob(config_bytes, KITOPS_CONFIG)
    art.manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": KITOPS_ARTIFACT_TYPE,
        "config": config_desc,
        "layers": layers,
        "annotations": {KITOPS_ANNOTATION_KITFILE: config_bytes.decode()},
    }
    return art


# --------------------------------------------------------------------------------------------
# Pushing artifacts: plain HTTP, or the oras SDK
# --------------------------------------------------------------------------------------------


def push_artifact(
    reg: LocalRegistry, repo: str, tag: str, art: Artifact, client: str = "http"
) -> str:
    """Push every blob, then the manifest under `tag`. Returns the stored manifest's digest.

    client="http": the manifest bytes are exactly `art.manifest_bytes()`.
    client="oras": the oras Python SDK uploads the blobs and the manifest (it serialises the
    manifest itself, so the digest differs from `art.digest`)."""
    if client == "http":
        for digest, data in art.blobs.items():
            reg.put_blob(repo, data, digest)
        return reg.put_manifest(repo, tag, art.manifest_bytes(), art.manifest["mediaType"])
    if client == "oras":
        return _push_with_oras(reg, repo, tag, art)
    raise ValueError(f"client must be 'http' or 'oras', not {client!r}")


def oras_client(reg: LocalRegistry):
    """An oras.provider.Registry for `reg`: trusts its CA, basic auth if on, and a timeout
    on every request (the SDK sets none)."""
    oras_provider = _import("oras.provider")
    client = oras_provider.Registry(
        hostname=reg.host, tls_verify=str(reg.ca_pem), auth_backend="basic"
    )
    client.session.trust_env = False  # no proxy from the environment for loopback
    if reg.auth:
        client.auth.set_basic_auth(reg.username, reg.password)
    client.session.request = functools.partial(client.session.request, timeout=reg.http_timeout)
    return client


def _push_with_oras(reg: LocalRegistry, repo: str, tag: str, art: Artifact) -> str:
    client = oras_client(reg)
    container = client.get_container(f"{reg.host}/{repo}:{tag}")
    with tempfile.TemporaryDirectory(dir=reg.workdir, prefix="oras-") as tmp:
        descs = [art.manifest["config"], *art.manifest["layers"]]
        for i, desc in enumerate(descs):
            path = Path(tmp) / f"blob{i}"
            path.write_bytes(art.blobs[desc["digest"]])
            r = client.upload_blob(str(path), container, desc)
            if r.status_code not in (200, 201, 202):
                raise HarnessError(
                    f"oras upload_blob {desc['digest']}: HTTP {r.status_code}: {r.text[:2000]}"
                )
    r = client.upload_manifest(art.manifest, container)
    if r.status_code != 201:
        raise HarnessError(
            f"oras upload_manifest {repo}:{tag}: HTTP {r.status_code}: {r.text[:2000]}"
        )
    digest = r.headers.get("Docker-Content-Digest")
    if not digest:
        digest = reg.manifest(repo, tag)[2]
    return digest


def push_modelpack(
    reg: LocalRegistry,
    repo: str,
    tag: str,
    model_dir: Path,
    media: str = "tar",
    client: str = "oras",
    **build_kwargs,
) -> str:
    """Push model_dir as a ModelPack v1 artifact (see build_modelpack); the manifest digest."""
    return push_artifact(reg, repo, tag, build_modelpack(model_dir, media, **build_kwargs), client)


def push_kitops(
    reg: LocalRegistry, repo: str, tag: str, model_dir: Path, client: str = "http", **build_kwargs
) -> str:
    """Push model_dir as a KitOps ModelKit (see build_kitops); the manifest digest."""
    return push_artifact(reg, repo, tag, build_kitops(model_dir, **build_kwargs), client)


def write_oci_layout(art: Artifact, layout_dir: Path, ref_name: str = "latest") -> Path:
    """Write `art` as an OCI image layout folder (oci-layout, index.json, blobs/sha256/)."""
    layout_dir = Path(layout_dir)
    blobs = layout_dir / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    manifest = art.manifest_bytes()
    for digest, data in [*art.blobs.items(), (art.digest, manifest)]:
        (blobs / digest.split(":", 1)[1]).write_bytes(data)
    (layout_dir / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": art.manifest["mediaType"],
                "digest": art.digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
                **(
                    {"artifactType": art.manifest["artifactType"]}
                    if "artifactType" in art.manifest
                    else {}
                ),
            }
        ],
    }
    (layout_dir / "index.json").write_bytes(canonical_json(index))
    return layout_dir


# --------------------------------------------------------------------------------------------
# Images: buildah and skopeo
# --------------------------------------------------------------------------------------------


class ContainerTools:
    """Private storage and configuration for buildah/skopeo under `root`, so that runs do not
    share state with each other or with the machine's containers storage."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.storage = self.root / "storage"
        self.runroot = self.root / "run"
        self.tmp = self.root / "tmp"
        for d in (self.storage, self.runroot, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.policy = self.root / "policy.json"
        self.policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}\n')
        self.registries_conf = self.root / "registries.conf"
        self.registries_conf.write_text(
            'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
        )
        self.storage_conf = self.root / "storage.conf"
        self.storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\nrunroot = "{self.runroot}"\ngraphroot = "{self.storage}"\n'
        )

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            BUILDAH_ISOLATION="chroot",
            STORAGE_DRIVER="vfs",
            CONTAINERS_STORAGE_CONF=str(self.storage_conf),
            CONTAINERS_REGISTRIES_CONF=str(self.registries_conf),
            TMPDIR=str(self.tmp),
        )
        env.pop("REGISTRY_AUTH_FILE", None)
        return env

    def buildah(self, *args, timeout: float = DEFAULT_CMD_TIMEOUT) -> str:
        argv = [
            require_binary("buildah"),
            "--root", self.storage, "--runroot", self.runroot, "--storage-driver", "vfs",
            *args,
        ]
        return run(argv, timeout=timeout, env=self.env()).stdout.decode().strip()

    def skopeo(self, *args, timeout: float = DEFAULT_CMD_TIMEOUT) -> str:
        argv = [require_binary("skopeo"), "--policy", self.policy, *args]
        return run(argv, timeout=timeout, env=self.env()).stdout.decode().strip()


def push_image(
    reg: LocalRegistry,
    repo: str,
    tag: str,
    model_dir: Path,
    path: str = "/models",
    *,
    timestamp: int = 0,
    layout_dir: Optional[Path] = None,
) -> str:
    """Build a plain OCI image from scratch holding model_dir at `path` (buildah, vfs, chroot
    isolation, its own storage under reg.workdir) and push it; returns the manifest digest.

    With layout_dir, the image is also written there as an OCI layout (for push_with_skopeo)."""
    tools = ContainerTools(reg.workdir / f"buildah-{secrets.token_hex(4)}")
    ctr = tools.buildah(
        "from", "--signature-policy", tools.policy, "--pull=never", "--quiet", "scratch"
    )
    try:
        tools.buildah("copy", "--quiet", ctr, str(Path(model_dir).resolve()), path)
        tools.buildah("config", "--workingdir", path, "--label", "org.modelseal.test=1", ctr)
        image = f"localhost/modelseal-test/{repo.replace('/', '-')}:{tag}"
        tools.buildah(
            "commit", "--quiet", "--format", "oci", "--timestamp", str(timestamp),
            "--signature-policy", tools.policy, ctr, image,
        )
    finally:
        with contextlib.suppress(HarnessError):
            tools.buildah("rm", ctr)
    digestfile = tools.root / "digest"
    tools.buildah(
        "push", "--quiet", "--format", "oci", "--signature-policy", tools.policy,
        "--cert-dir", reg.cert_dir, "--authfile", reg.auth_file, "--digestfile", digestfile,
        image, f"docker://{reg.host}/{repo}:{tag}",
    )
    if layout_dir is not None:
        tools.buildah(
            "push", "--quiet", "--format", "oci", "--signature-policy", tools.policy,
            image, f"oci:{Path(layout_dir).resolve()}:{tag}",
        )
    return digestfile.read_text().strip()


def push_with_skopeo(
    reg: LocalRegistry,
    repo: str,
    tag: str,
    layout_dir: Path,
    ref_name: Optional[str] = None,
    *,
    preserve_digests: bool = True,
) -> str:
    """`skopeo copy oci:LAYOUT[:REF] docker://HOST/REPO:TAG` with the registry's CA and
    credentials; returns the pushed manifest digest."""
    tools = ContainerTools(reg.workdir / f"skopeo-{secrets.token_hex(4)}")
    digestfile = tools.root / "digest"
    src = f"oci:{Path(layout_dir).resolve()}" + (f":{ref_name}" if ref_name else "")
    args = ["copy", "--quiet", "--dest-cert-dir", reg.cert_dir, "--dest-authfile", reg.auth_file,
            "--digestfile", digestfile]
    if preserve_digests:
        args.append("--preserve-digests")
    tools.skopeo(*args, src, f"docker://{reg.host}/{repo}:{tag}")
    return digestfile.read_text().strip()


def skopeo_inspect_raw(reg: LocalRegistry, repo: str, ref: str) -> bytes:
    """`skopeo inspect --raw` of a manifest, trusting only the registry's CA."""
    argv = [require_binary("skopeo"), "inspect", "--raw", "--cert-dir", reg.cert_dir,
            "--authfile", reg.auth_file, f"docker://{reg.ref(repo, ref)}"]
    return run(argv, timeout=60).stdout


# --------------------------------------------------------------------------------------------
# Servers that never answer
# --------------------------------------------------------------------------------------------


class StallingServer:
    """A server on 127.0.0.1 that accepts connections and then stalls.

    mode="silent":    accept and never send a byte (TLS handshakes hang too).
    mode="handshake": complete the TLS handshake (tls=True), then never answer.
    mode="headers":   read the request, send the status line and headers (Content-Length
                      `content_length`, then `body_prefix`), then stall the body.
    mode="trickle":   like headers, then one body byte every `interval` seconds.

    Every connection is closed at most `max_seconds` after it was accepted, and all are
    closed when the context exits. `host` is "127.0.0.1:PORT"; `connections` counts accepts.
    """

    MODES = ("silent", "handshake", "headers", "trickle")

    def __init__(
        self,
        mode: str = "silent",
        *,
        tls: Union[bool, TlsMaterial] = False,
        tls_dir: Optional[Path] = None,
        status: int = 200,
        headers: Optional[dict] = None,
        content_length: int = 1 << 20,
        body_prefix: bytes = b"",
        interval: float = 1.0,
        max_seconds: float = 300.0,
    ):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}")
        if mode == "handshake" and not tls:
            raise ValueError("mode='handshake' needs tls")
        self.mode = mode
        self.status = status
        self.headers = headers if headers is not None else {"Content-Type": OCI_MANIFEST}
        self.content_length = content_length
        self.body_prefix = body_prefix
        self.interval = interval
        self.max_seconds = max_seconds
        self._tmp = None
        if tls is True:
            if tls_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="stalling-tls-")
                tls_dir = Path(self._tmp.name)
            tls = TlsMaterial.create(Path(tls_dir))
        self.tls: Optional[TlsMaterial] = tls or None
        self._ctx = self.tls.server_context() if self.tls else None
        self._stop = threading.Event()
        self._conns: list = []
        self._threads: list = []
        self._lock = threading.Lock()
        self.connections = 0
        self._sock: Optional[socket.socket] = None
        self.port = 0
        self.host = ""

    @property
    def ca_pem(self) -> Optional[Path]:
        return self.tls.ca_pem if self.tls else None

    @property
    def cert_dir(self) -> Optional[Path]:
        return self.tls.cert_dir if self.tls else None

    def url(self, path: str = "/v2/") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}{path if path.startswith('/') else '/' + path}"

    def __enter__(self) -> "StallingServer":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        s.settimeout(0.2)
        self._sock = s
        self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        t = threading.Thread(target=self._accept_loop, name="stalling-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()
        if self._sock is not None:
            self._sock.close()
        for t in self._threads:
            t.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + self.max_seconds
        try:
            if self.mode == "silent":
                self._stop.wait(self.max_seconds)
                return
            if self._ctx is not None:
                conn.settimeout(10)
                conn = self._ctx.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._conns.append(conn)
            if self.mode == "handshake":
                self._stop.wait(self.max_seconds)
                return
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            head = [f"HTTP/1.1 {self.status} Stalling", f"Content-Length: {self.content_length}"]
            head += [f"{k}: {v}" for k, v in self.headers.items()]
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + self.body_prefix)
            if self.mode == "headers":
                self._stop.wait(max(0.0, deadline - time.monotonic()))
                return
            sent = len(self.body_prefix)
            while sent < self.content_length and not self._stop.wait(self.interval):
                if time.monotonic() > deadline:
                    return
                conn.sendall(b"\0")
                sent += 1
        except (OSError, ssl.SSLError):
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()


@contextlib.contextmanager
def stalling_registry(mode: str = "headers", **kwargs) -> Iterator[StallingServer]:
    """StallingServer with TLS (its own CA) as a context manager; `.cert_dir`, `.ca_pem`."""
    with StallingServer(mode, tls=True, **kwargs) as s:
        yield s

