"""Interoperability of modelseal's OMS bundles with the OpenSSF `model-signing` 1.1.1 package.

Run from the repository root (see README.md next to this file):

    MODELSEAL=target/release/modelseal target/interop-venv/bin/pytest -q tests/interop

What is covered:

1. model_signing (the peer) verifies what modelseal signs.
2. modelseal verifies what the peer signs: CLI-made and API-made (blake3, blake2b, shards).
3. modelseal verifies every key and certificate vector under ../shared/vectors/.
4. Both sides refuse tampered models, wrong keys and roots, and edited payloads.
5. modelseal refuses a validly signed bundle that names a file outside the model
   (`../secret.txt`), and never opens that file.

The peer is model-signing 1.1.1 from the venv that runs pytest (`sys.executable`); its CLI is
run as a subprocess and its Python API in-process. Every model, key and bundle a test
writes lives in pytest's tmp_path. The shared vectors are only read, never written.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MODELSEAL_SHARED_VECTORS", REPO.parent / "shared" / "vectors"))
MS111 = SHARED / "model-signing-1.1.1"
HISTORICAL = SHARED / "oms-historical"
CERTS = REPO / "testdata" / "certs"

TIMEOUT = 120  # seconds for any one subprocess

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_V1 = "https://model_signing/signature/v1.0"

# The keyless historical bundles were signed by this identity on the public-good instance.
KEYLESS_IDENTITY = ("--identity", "stefanb@us.ibm.com", "--issuer", "https://sigstore.verify.ibm.com/oauth2")


# --------------------------------------------------------------------------------------
# Locating the two tools


def _modelseal_path() -> Path:
    configured = Path(os.environ.get("MODELSEAL", "target/release/modelseal"))
    if configured.is_absolute():
        return configured
    # Relative to where pytest was started (tests/run.sh starts at the repo root), or
    # failing that relative to the repository root.
    for base in (Path.cwd(), REPO):
        if (base / configured).exists():
            return (base / configured).resolve()
    return (REPO / configured).resolve()


MODELSEAL = _modelseal_path()


def _model_signing_command() -> list[str]:
    script = Path(sys.executable).parent / "model_signing"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "model_signing"]


MODEL_SIGNING = _model_signing_command()


@pytest.fixture(scope="session", autouse=True)
def _tools_present():
    if not MODELSEAL.is_file():
        pytest.fail(
            f"modelseal binary not found at {MODELSEAL}; build it (cargo build --release) "
            "or point MODELSEAL at it",
            pytrace=False,
        )
    try:
        importlib.import_module("model_signing")
    except ImportError as err:
        pytest.fail(
            f"model_signing is not importable from {sys.executable} ({err}); "
            "pip install -r tests/interop/requirements.txt",
            pytrace=False,
        )


def need_shared(path: Path) -> Path:
    """Skip, with a notice, when the shared vectors are not there (CI checks them out)."""
    if not path.exists():
        notice = f"shared vectors not found at {path}; skipping (they live in ../shared/vectors)"
        print(f"NOTICE: {notice}", file=sys.stderr)
        pytest.skip(notice)
    return path


# --------------------------------------------------------------------------------------
# Running commands


_SCRUB_ROOTS: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _scrub_roots(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    for root in {str(base), str(base.resolve()), str(SHARED), str(REPO)}:
        _SCRUB_ROOTS.append(root)
    _SCRUB_ROOTS.sort(key=len, reverse=True)


@dataclass
class Result:
    cmd: list[str]
    code: int
    out: str
    err: str

    def report(self, why: str) -> str:
        return (
            f"{why}\n$ {shlex.join(self.cmd)}\n[exit {self.code}]\n"
            f"--- stdout ---\n{self.out[-4000:]}\n--- stderr ---\n{self.err[-4000:]}"
        )

    def scrubbed_err(self) -> str:
        """stderr with our own file paths removed, so that words in test names,
        tmp dirs or vector folders (`keys/`, `..._key0/`) cannot satisfy a check."""
        text = self.err
        for root in _SCRUB_ROOTS:
            text = re.sub(re.escape(root) + r"[^\s'\"`,;)]*", "<path>", text)
        return text


def run(cmd, *, cwd=None, timeout=TIMEOUT, on_timeout: str | None = None) -> Result:
    cmd = [str(c) for c in cmd]
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            (on_timeout or "command timed out") + f" (after {timeout}s): {shlex.join(cmd)}",
            pytrace=False,
        )
    return Result(cmd, proc.returncode, proc.stdout, proc.stderr)


def expect_ok(result: Result) -> Result:
    assert result.code == 0, result.report("expected success (exit 0)")
    return result


def expect_refused(result: Result, *, code: int = 1, words=(), names=()) -> Result:
    """Refusal: the exit code, and stderr naming the problem. `words`: at least one must
    appear (case-insensitive) in stderr with our own paths scrubbed out; `names`: every
    one must appear verbatim in stderr (file names inside the model)."""
    assert result.code == code, result.report(f"expected refusal with exit {code}")
    if words:
        text = result.scrubbed_err().lower()
        assert any(w.lower() in text for w in words), result.report(
            f"stderr names none of {list(words)}"
        )
    for name in names:
        assert name in result.err, result.report(f"stderr does not name {name!r}")
    return result


# modelseal -----------------------------------------------------------------------------


def mx(*args, **kw) -> Result:
    return run([MODELSEAL, *args], **kw)


def mx_sign(model: Path, key: Path, *extra, signature: Path | None = None) -> Result:
    args = ["sign", model, "--format", "oms", "--key", key, *extra]
    if signature is not None:
        args += ["--signature", signature]
    return mx(*args)


def mx_verify(model: Path, signature: Path, *extra, key=None, root=None, **kw) -> Result:
    args = ["verify", model, "--signature", signature]
    if key is not None:
        args += ["--key", key]
    if root is not None:
        args += ["--certificate-root", root]
    return mx(*args, *extra, **kw)


# model_signing CLI ---------------------------------------------------------------------
# Its --ignore-paths and --signature are resolved against the working directory, so every
# path we pass is absolute.


def ms(*args, cwd=None) -> Result:
    return run([*MODEL_SIGNING, *args], cwd=cwd)


def ms_sign_key(model, priv, signature, *extra) -> Result:
    return ms("sign", "key", model, "--private_key", priv, "--signature", signature, *extra)


def ms_verify_key(model, pub, signature, *extra) -> Result:
    return ms("verify", "key", model, "--public_key", pub, "--signature", signature, *extra)


def ms_sign_cert(model, priv, leaf, chain, signature, *extra) -> Result:
    return ms(
        "sign", "certificate", model,
        "--private_key", priv,
        "--signing_certificate", leaf,
        "--certificate_chain", chain,
        "--signature", signature,
        *extra,
    )  # fmt: skip


def ms_verify_cert(model, root, signature, *extra) -> Result:
    return ms(
        "verify", "certificate", model, "--certificate_chain", root, "--signature", signature,
        *extra,
    )  # fmt: skip


# model_signing Python API (in-process) -------------------------------------------------

SHARD_64K = 65536

# id -> (modelseal sign flags, model_signing hashing config as (method, kwargs))
HASHING_CONFIGS = {
    "files-sha256": ([], ("files", {"hashing_algorithm": "sha256"})),
    "files-blake3": (["--hash", "blake3"], ("files", {"hashing_algorithm": "blake3"})),
    "files-blake2b": (["--hash", "blake2b"], ("files", {"hashing_algorithm": "blake2"})),
    "shards-sha256-64KiB": (
        ["--method", "shards", "--shard-size", str(SHARD_64K)],
        ("shards", {"hashing_algorithm": "sha256", "shard_size": SHARD_64K}),
    ),
    "shards-blake2b-64KiB": (
        ["--method", "shards", "--hash", "blake2b", "--shard-size", str(SHARD_64K)],
        ("shards", {"hashing_algorithm": "blake2", "shard_size": SHARD_64K}),
    ),
    "shards-sha256-default-size": (["--method", "shards"], ("shards", {})),
}


def ms_hashing_config(spec):
    from model_signing import hashing

    method, kwargs = spec
    config = hashing.Config()
    if method == "files":
        return config.use_file_serialization(**kwargs)
    return config.use_shard_serialization(**kwargs)


def ms_api_sign(model: Path, priv: Path, signature: Path, spec) -> None:
    from model_signing import signing

    signing.Config().use_elliptic_key_signer(private_key=priv).set_hashing_config(
        ms_hashing_config(spec)
    ).sign(model, signature)


def ms_api_verify(model: Path, pub: Path, signature: Path, spec) -> None:
    """Raises ValueError (from model_signing) when verification fails."""
    from model_signing import verifying

    verifying.Config().use_elliptic_key_verifier(public_key=pub).set_hashing_config(
        ms_hashing_config(spec)
    ).verify(model, signature)


# --------------------------------------------------------------------------------------
# Keys and certificates


@dataclass(frozen=True)
class KeyPair:
    priv: Path
    pub: Path


class KeyStore:
    """Key pairs made on first use, once per session.

    openssl-*: SEC1 `EC PRIVATE KEY` from `openssl ecparam -genkey -noout`.
    keygen-*:  PKCS#8 from `modelseal keygen --algorithm ecdsa-*`.
    """

    CURVES = {"p256": "prime256v1", "p384": "secp384r1", "p521": "secp521r1"}

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[str, KeyPair] = {}

    def __getitem__(self, name: str) -> KeyPair:
        if name not in self.cache:
            self.cache[name] = self._make(name)
        return self.cache[name]

    def _make(self, name: str) -> KeyPair:
        tool, curve = name.split("-", 1)
        curve = curve.split("-")[0]  # "other-p256" style names
        priv = self.root / f"{name}.pem"
        if tool in ("openssl", "other"):
            expect_ok(run(["openssl", "ecparam", "-genkey", "-name", self.CURVES[curve],
                           "-noout", "-out", priv]))  # fmt: skip
            pub = self.root / f"{name}.pem.pub"
            expect_ok(run(["openssl", "ec", "-in", priv, "-pubout", "-out", pub]))
            assert "BEGIN EC PRIVATE KEY" in priv.read_text()
            return KeyPair(priv, pub)
        assert tool == "keygen", name
        expect_ok(mx("keygen", "--out", priv, "--algorithm", f"ecdsa-{curve}"))
        pub = Path(f"{priv}.pub")
        assert priv.is_file() and pub.is_file(), f"keygen did not write {priv} and {pub}"
        assert "BEGIN PRIVATE KEY" in priv.read_text(), "keygen key is not PKCS#8 PEM"
        assert "BEGIN PUBLIC KEY" in pub.read_text(), "keygen public key is not SPKI PEM"
        return KeyPair(priv, pub)


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> KeyStore:
    return KeyStore(tmp_path_factory.mktemp("keys"))


@dataclass(frozen=True)
class CertChain:
    leaf: Path
    leaf_key: Path
    intermediate: Path
    root: Path


@pytest.fixture(scope="session")
def chain() -> CertChain:
    c = CertChain(CERTS / "leaf.pem", CERTS / "leaf.key", CERTS / "int.pem", CERTS / "root.pem")
    for p in (c.leaf, c.leaf_key, c.intermediate, c.root):
        assert p.is_file(), f"missing test certificate {p}"
    return c


@pytest.fixture(scope="session")
def other_root(tmp_path_factory) -> Path:
    """A self-signed CA that signed nothing here."""
    d = tmp_path_factory.mktemp("other-ca")
    expect_ok(run([
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-subj", "/CN=unrelated-root", "-days", "3650",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", d / "root.key", "-out", d / "root.pem",
    ]))  # fmt: skip
    return d / "root.pem"


# --------------------------------------------------------------------------------------
# Models and bundles

WEIGHTS = "weights/model.safetensors"


def make_model(path: Path) -> Path:
    """A small model: nested dirs, an empty file, the `a.txt` / `a/b.txt` sort-order probe
    and a ~1 MiB random file that is not a multiple of any shard size used here."""
    files = {
        "README.md": b"# interop test model\n",
        "config.json": b'{"architecture": "tiny", "layers": 2}\n',
        "a.txt": b"sorts after a/b.txt\n",
        "a/b.txt": b"sorts before a.txt\n",
        "empty.bin": b"",
        "notes/ignore-me.txt": b"scratch notes, not part of the model\n",
        "tokenizer/sub/vocab.txt": b"hello\nworld\n",
        "tokenizer/tokenizer.json": b'{"vocab": "sub/vocab.txt"}\n',
        WEIGHTS: os.urandom((1 << 20) + 4099),
    }
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path


def model_files(model: Path) -> list[str]:
    return sorted(
        (p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file()),
        key=lambda n: n.split("/"),
    )


def read_bundle(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def statement_of(bundle: dict) -> dict:
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def check_oms_bundle(path: Path, material: str) -> dict:
    """The shape model_signing 1.1.1 requires of a bundle; returns the statement."""
    assert path.is_file(), f"no bundle written at {path}"
    bundle = read_bundle(path)
    assert bundle["mediaType"] == BUNDLE_MEDIA_TYPE
    assert material in bundle["verificationMaterial"], bundle["verificationMaterial"].keys()
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == PAYLOAD_TYPE
    assert len(envelope["signatures"]) == 1
    statement = statement_of(bundle)
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_V1
    assert len(statement["subject"]) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", statement["subject"][0]["digest"]["sha256"])
    return statement


def resource_names(signature: Path) -> set[str]:
    return {r["name"] for r in statement_of(read_bundle(signature))["predicate"]["resources"]}


def write_bundle(path: Path, bundle: dict) -> None:
    path.write_text(json.dumps(bundle, separators=(",", ":")), encoding="utf-8")


def root_digest(resources: list[dict]) -> str:
    return hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()


def forge_payload(bundle: dict, edit) -> dict:
    """Edits the signed statement in place of the signature: `edit(statement)` mutates it,
    the root digest is recomputed so that the statement stays self-consistent, and the
    old signature is kept. Only the signature check can catch this."""
    statement = statement_of(bundle)
    edit(statement)
    statement["subject"][0]["digest"]["sha256"] = root_digest(statement["predicate"]["resources"])
    forged = json.loads(json.dumps(bundle))
    forged["dsseEnvelope"]["payload"] = base64.b64encode(
        json.dumps(statement, indent=2).encode()
    ).decode()
    return forged


# Our own minimal OMS signer (cryptography only), for bundles no honest signer would make.


def handmade_bundle(priv_pem: Path, resources: list[dict], subject: str = "model") -> dict:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(priv_pem.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    digest = {256: hashes.SHA256, 384: hashes.SHA384, 521: hashes.SHA512}[key.curve.key_size]()
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject, "digest": {"sha256": root_digest(resources)}}],
        "predicateType": PREDICATE_V1,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"],
            },
            "resources": resources,
        },
    }
    payload = json.dumps(statement, indent=2).encode()
    ptype = PAYLOAD_TYPE.encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
    signature = key.sign(pae, ec.ECDSA(digest))
    spki_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": hashlib.sha256(spki_pem).hexdigest()},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }


def file_resources(model: Path) -> list[dict]:
    return [
        {
            "name": n,
            "algorithm": "sha256",
            "digest": hashlib.sha256((model / n).read_bytes()).hexdigest(),
        }
        for n in model_files(model)
    ]


# Tampering after signing: id -> (action, the model path the refusal must name)


def _modify(model: Path) -> None:
    data = bytearray((model / WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit changed
    (model / WEIGHTS).write_bytes(bytes(data))


def _add(model: Path) -> None:
    (model / "tokenizer" / "extra.txt").write_bytes(b"added after signing\n")


def _remove(model: Path) -> None:
    (model / "a" / "b.txt").unlink()


TAMPERING = {
    "modified-file": (_modify, WEIGHTS),
    "added-file": (_add, "tokenizer/extra.txt"),
    "removed-file": (_remove, "a/b.txt"),
}


@pytest.fixture
def model(tmp_path) -> Path:
    return make_model(tmp_path / "model")


@pytest.fixture
def outdir(tmp_path) -> Path:
    """A directory outside the model for bundles."""
    d = tmp_path / "out"
    d.mkdir()
    return d


# ======================================================================================
# 1. model_signing verifies what modelseal signs


@pytest.mark.parametrize(
    "keyname", ["openssl-p256", "openssl-p384", "keygen-p256", "keygen-p384", "keygen-p521"]
)
def test_peer_verifies_modelseal_key_signature(keys, model, outdir, keyname):
    pair = keys[keyname]
    sig = outdir / "bundle.sig"
    expect_ok(mx_sign(model, pair.priv, signature=sig))
    statement = check_oms_bundle(sig, "publicKey")
    serialization = statement["predicate"]["serialization"]
    assert (serialization["method"], serialization["hash_type"]) == ("files", "sha256")
    assert sorted(r["name"] for r in statement["predicate"]["resources"]) == sorted(
        model_files(model)
    )
    expect_ok(ms_verify_key(model, pair.pub, sig))
    expect_ok(mx_verify(model, sig, key=pair.pub))


def test_peer_verifies_modelseal_signature_at_default_location(keys, tmp_path, model):
    pair = keys["openssl-p256"]
    expect_ok(mx_sign(model, pair.priv))
    sig = tmp_path / "model.sig"  # MODEL.sig beside the model
    check_oms_bundle(sig, "publicKey")
    expect_ok(ms_verify_key(model, pair.pub, sig))


def test_peer_verifies_modelseal_signature_inside_model(keys, model):
    pair = keys["openssl-p384"]
    sig = model / "model.sig"
    expect_ok(mx_sign(model, pair.priv, signature=sig))
    statement = check_oms_bundle(sig, "publicKey")
    assert "model.sig" not in {r["name"] for r in statement["predicate"]["resources"]}
    # model_signing adds --signature to its ignore list itself.
    expect_ok(ms_verify_key(model, pair.pub, sig))
    expect_ok(mx_verify(model, sig, key=pair.pub))


@pytest.mark.parametrize("keyname", ["openssl-p256", "keygen-p384"])
def test_peer_verifies_modelseal_single_file(keys, model, outdir, keyname):
    pair = keys[keyname]
    target = model / WEIGHTS
    sig = outdir / "single.sig"
    expect_ok(mx_sign(target, pair.priv, signature=sig))
    statement = check_oms_bundle(sig, "publicKey")
    assert [r["name"] for r in statement["predicate"]["resources"]] == ["."]
    expect_ok(ms_verify_key(target, pair.pub, sig))
    expect_ok(mx_verify(target, sig, key=pair.pub))


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_peer_verifies_modelseal_certificate_chain(chain, model, outdir, where):
    sig = outdir / "cert.sig" if where == "outside" else model / "model.sig"
    expect_ok(mx_sign(model, chain.leaf_key, "--certificate", chain.leaf,
                      "--certificate-chain", chain.intermediate, signature=sig))  # fmt: skip
    check_oms_bundle(sig, "x509CertificateChain")
    certs = read_bundle(sig)["verificationMaterial"]["x509CertificateChain"]["certificates"]
    assert len(certs) == 2, "expected leaf + intermediate in the bundle"
    expect_ok(ms_verify_cert(model, chain.root, sig))
    expect_ok(mx_verify(model, sig, root=chain.root))


def test_peer_verifies_modelseal_certificate_single_file(chain, model, outdir):
    target = model / "config.json"
    sig = outdir / "cert-single.sig"
    expect_ok(mx_sign(target, chain.leaf_key, "--certificate", chain.leaf,
                      "--certificate-chain", chain.intermediate, signature=sig))  # fmt: skip
    expect_ok(ms_verify_cert(target, chain.root, sig))


def test_peer_honours_ignore_paths_recorded_by_modelseal(keys, model, outdir):
    pair = keys["openssl-p256"]
    sig = outdir / "ignore.sig"
    expect_ok(mx_sign(model, pair.priv, "--ignore", "notes/ignore-me.txt", signature=sig))
    statement = check_oms_bundle(sig, "publicKey")
    names = {r["name"] for r in statement["predicate"]["resources"]}
    assert "notes/ignore-me.txt" not in names
    assert "notes/ignore-me.txt" in statement["predicate"]["serialization"].get("ignore_paths", [])
    # The ignored file may change; the peer knows to skip it only from the recorded list.
    (model / "notes" / "ignore-me.txt").write_bytes(b"changed after signing\n")
    expect_ok(ms_verify_key(model, pair.pub, sig))
    expect_ok(ms_verify_key(model, pair.pub, sig, "--ignore-paths", model / "notes/ignore-me.txt"))


def _mx_verify_shards_aware(model: Path, sig: Path, key: Path, spec) -> Result:
    """A shards signature cannot list the model's empty file (model-signing leaves it out):
    modelseal refuses it as unsigned by default, and accepts it when told to."""
    if spec[0] != "shards":
        return mx_verify(model, sig, key=key)
    expect_refused(mx_verify(model, sig, key=key), names=["empty.bin"])
    return mx_verify(model, sig, "--allow-unsigned-empty-files", key=key)


@pytest.mark.parametrize("config", [c for c in HASHING_CONFIGS if c != "files-sha256"])
def test_peer_api_verifies_modelseal_hashing_choices(keys, model, outdir, config):
    """blake3/blake2b/shards cannot be checked with the peer's CLI (it always re-hashes as
    files/sha256); its API can, given the same hashing configuration explicitly."""
    flags, spec = HASHING_CONFIGS[config]
    pair = keys["openssl-p256"]
    sig = outdir / f"{config}.sig"
    expect_ok(mx_sign(model, pair.priv, *flags, signature=sig))
    statement = check_oms_bundle(sig, "publicKey")
    serialization = statement["predicate"]["serialization"]
    assert serialization["method"] == spec[0]
    names = {r["name"] for r in statement["predicate"]["resources"]}
    if spec[0] == "shards":
        assert not any(n.startswith("empty.bin") for n in names), "empty files have no shards"
        if spec[1].get("shard_size") == SHARD_64K:
            assert f"{WEIGHTS}:{SHARD_64K}:{2 * SHARD_64K}" in names
    ms_api_verify(model, pair.pub, sig, spec)
    expect_ok(_mx_verify_shards_aware(model, sig, pair.pub, spec))
    # The same bundle must not verify a changed model (the API raises ValueError).
    _modify(model)
    with pytest.raises(ValueError):
        ms_api_verify(model, pair.pub, sig, spec)


def test_modelseal_refuses_oms_settings_the_peer_cannot_verify(keys, model, outdir, tmp_path):
    """The peer has no BLAKE3 shards (asking it for them gives files/blake3) and no
    Ed25519 keys, so modelseal refuses to write such an "OMS" bundle, and writes nothing."""
    pair = keys["openssl-p256"]
    sig = outdir / "b3-shards.sig"
    result = mx_sign(model, pair.priv, "--hash", "blake3", "--method", "shards",
                     "--shard-size", str(SHARD_64K), signature=sig)  # fmt: skip
    assert result.code == 2, result
    assert "model-signing has no BLAKE3 shards" in result.err
    assert not sig.exists()
    ed = tmp_path / "ed25519"
    assert mx("keygen", "--out", ed).code == 0
    sig = outdir / "ed25519.sig"
    result = mx_sign(model, ed, signature=sig)
    assert result.code == 2, result
    assert "model-signing verifies ECDSA P-256/P-384/P-521 keys only" in result.err
    assert not sig.exists()


# ======================================================================================
# 2. modelseal verifies what model_signing signs


@pytest.mark.parametrize("keyname", ["openssl-p256", "openssl-p384", "keygen-p256"])
def test_modelseal_verifies_peer_key_signature(keys, model, outdir, keyname):
    pair = keys[keyname]
    sig = outdir / "peer.sig"
    expect_ok(ms_sign_key(model, pair.priv, sig))
    expect_ok(mx_verify(model, sig, key=pair.pub))
    result = expect_ok(mx_verify(model, sig, "--json", key=pair.pub))
    assert json.loads(result.out)["verified"] is True


def test_modelseal_verifies_peer_certificate_chain(chain, model, outdir):
    sig = outdir / "peer-cert.sig"
    expect_ok(ms_sign_cert(model, chain.leaf_key, chain.leaf, chain.intermediate, sig))
    expect_ok(mx_verify(model, sig, root=chain.root))


@pytest.mark.parametrize("how", ["key", "certificate"])
def test_modelseal_verifies_peer_single_file(keys, chain, model, outdir, how):
    target = model / WEIGHTS
    sig = outdir / "peer-single.sig"
    if how == "key":
        pair = keys["openssl-p256"]
        expect_ok(ms_sign_key(target, pair.priv, sig))
        expect_ok(mx_verify(target, sig, key=pair.pub))
    else:
        expect_ok(ms_sign_cert(target, chain.leaf_key, chain.leaf, chain.intermediate, sig))
        expect_ok(mx_verify(target, sig, root=chain.root))


def test_modelseal_verifies_peer_signature_inside_model_with_ignore_paths(keys, model):
    pair = keys["openssl-p256"]
    sig = model / "model.sig"
    ignored = model / "notes" / "ignore-me.txt"
    expect_ok(ms_sign_key(model, pair.priv, sig, "--ignore-paths", ignored))
    recorded = statement_of(read_bundle(sig))["predicate"]["serialization"]["ignore_paths"]
    assert {"model.sig", "notes/ignore-me.txt"} <= set(recorded)
    expect_ok(mx_verify(model, sig, key=pair.pub))
    # Both were left out by the signer: changing them does not matter.
    ignored.write_bytes(b"rewritten after signing\n")
    expect_ok(mx_verify(model, sig, key=pair.pub))
    # Everything else still does.
    (model / "README.md").write_bytes(b"# changed\n")
    expect_refused(mx_verify(model, sig, key=pair.pub), names=["README.md"])


def test_modelseal_verifies_peer_signature_with_verifier_side_ignore(keys, model, outdir):
    """A file added after signing is accepted when the verifier says to ignore it."""
    pair = keys["openssl-p384"]
    sig = outdir / "peer.sig"
    expect_ok(ms_sign_key(model, pair.priv, sig))
    (model / "notes" / "later.txt").write_bytes(b"added later\n")
    expect_refused(mx_verify(model, sig, key=pair.pub), names=["notes/later.txt"])
    expect_ok(mx_verify(model, sig, "--ignore", "notes/later.txt", key=pair.pub))


@pytest.mark.parametrize("config", list(HASHING_CONFIGS))
def test_modelseal_verifies_peer_api_hashing_choices(keys, model, outdir, config):
    _, spec = HASHING_CONFIGS[config]
    pair = keys["openssl-p256"]
    sig = outdir / f"peer-{config}.sig"
    ms_api_sign(model, pair.priv, sig, spec)
    serialization = statement_of(read_bundle(sig))["predicate"]["serialization"]
    if spec[0] == "shards":
        assert isinstance(serialization["shard_size"], float)  # the peer writes 65536.0
    expect_ok(_mx_verify_shards_aware(model, sig, pair.pub, spec))
    _modify(model)
    expect_refused(mx_verify(model, sig, key=pair.pub), names=[WEIGHTS])


def test_walk_rules_agree_on_git_paths_and_dotfiles(keys, tmp_path):
    """Both walk the same files: root-level git paths are left out, nested ones and other
    dotfiles are kept."""
    model = tmp_path / "gitmodel"
    for name, data in {
        "weights.bin": os.urandom(5000),
        ".hidden": b"dotfile\n",
        ".gitignore": b"*.tmp\n",
        ".gitattributes": b"*.bin binary\n",
        ".git/HEAD": b"ref: refs/heads/main\n",
        ".github/workflows/ci.yml": b"on: push\n",
        "sub/.gitignore": b"nested, so signed\n",
        "sub/.git/config": b"nested, so signed\n",
    }.items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)
    expected = {"weights.bin", ".hidden", "sub/.gitignore", "sub/.git/config"}
    pair = keys["openssl-p256"]

    ours = tmp_path / "ours.sig"
    expect_ok(mx_sign(model, pair.priv, signature=ours))
    assert resource_names(ours) == expected
    expect_ok(ms_verify_key(model, pair.pub, ours))

    theirs = tmp_path / "theirs.sig"
    expect_ok(ms_sign_key(model, pair.priv, theirs))
    assert resource_names(theirs) == expected
    expect_ok(mx_verify(model, theirs, key=pair.pub))


def test_non_ascii_names_both_ways(keys, tmp_path):
    model = tmp_path / "unicode"
    for name in ["ümlaut.txt", "日本/データ.bin", "Zed", "e\u0301.txt"]:
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(name.encode() * 3)
    pair = keys["openssl-p256"]
    ours, theirs = tmp_path / "ours.sig", tmp_path / "theirs.sig"
    expect_ok(mx_sign(model, pair.priv, signature=ours))
    expect_ok(ms_verify_key(model, pair.pub, ours))
    expect_ok(ms_sign_key(model, pair.priv, theirs))
    expect_ok(mx_verify(model, theirs, key=pair.pub))


# ======================================================================================
# 3. Vectors under ../shared/vectors

# sig -> (model relative to model-signing-1.1.1/, "key"|"cert", trust file)
MS111_VECTORS = {
    "key-p256-in-model": ("tiny-model", "key", "keys/ec-p256.pub.pem"),
    "key-p384": ("tiny-model", "key", "keys/ec-p384.pub.pem"),
    "key-p256-pkcs8": ("tiny-model", "key", "keys/ec-p256-pkcs8.pub.pem"),
    "key-p256-single-file": ("tiny-model/model.safetensors", "key", "keys/ec-p256.pub.pem"),
    "cert-p256-chain": ("tiny-model", "cert", "keys/cert/root.pem"),
    "api-files-blake3": ("tiny-model", "key", "keys/ec-p256.pub.pem"),
    "api-files-blake2": ("tiny-model", "key", "keys/ec-p256.pub.pem"),
    "api-shards-sha256-1MiB": ("tiny-model", "key", "keys/ec-p256.pub.pem"),
    "api-shards-blake2-1MiB": ("tiny-model", "key", "keys/ec-p256.pub.pem"),
    "handmade-compact": ("tiny-model", "key", "keys/ec-p256.pub.pem"),
    "handmade-reversed-extra": ("tiny-model", "key", "keys/ec-p384.pub.pem"),
}


def _verify_with(model: Path, sig: Path, kind: str, trust: Path, *extra) -> Result:
    if kind == "keyless":
        # Offline: the public-good TrustedRoot is built into modelseal.
        return mx_verify(model, sig, *extra, *KEYLESS_IDENTITY)
    if kind == "key":
        return mx_verify(model, sig, *extra, key=trust)
    return mx_verify(model, sig, *extra, root=trust)


@pytest.mark.parametrize("name", list(MS111_VECTORS))
def test_vector_model_signing_111(name):
    base = need_shared(MS111)
    model, kind, trust = MS111_VECTORS[name]
    sig = base / "sigs" / f"{name}.sig"
    extra = []
    if "shards" in name:
        # tiny-model holds empty.bin, which the shards method cannot list.
        expect_refused(_verify_with(base / model, sig, kind, base / trust), names=["empty.bin"])
        extra = ["--allow-unsigned-empty-files"]
    expect_ok(_verify_with(base / model, sig, kind, base / trust, *extra))


def test_vector_model_signing_111_all_listed():
    base = need_shared(MS111)
    on_disk = {p.name[: -len(".sig")] for p in (base / "sigs").glob("*.sig")}
    assert on_disk == set(MS111_VECTORS), "vector folder and MS111_VECTORS disagree"


# folder -> (model inside the folder, "key"|"cert", extra verify args)
HISTORICAL_VECTORS = {
    "v0.2.0-certificate": (".", "cert", []),
    "v0.3.1-certificate": (".", "cert", []),
    "v0.3.1-elliptic-key": ("signme-1", "key", []),  # single-file signature of signme-1
    "v1.0.0-certificate": (".", "cert", []),
    "v1.0.0-elliptic-key": ("signme-1", "key", []),  # single-file signature of signme-1
    "v1.0.1-certificate": (".", "cert", ["--ignore", "ignore-me"]),
    "v1.0.1-elliptic-key": (".", "key", ["--ignore", "ignore-me"]),
    "v1.1.0-certificate": (".", "cert", []),  # ignore-me is recorded in ignore_paths
    "v1.1.0-elliptic-key": (".", "key", []),
    "v0.3.1-sigstore": (".", "keyless", []),
    "v1.0.0-sigstore": (".", "keyless", []),
    "v1.0.1-sigstore": (".", "keyless", ["--ignore", "ignore-me"]),
    "v1.1.0-sigstore": (".", "keyless", []),
}


def _historical_trust(kind: str) -> Path:
    keys_dir = HISTORICAL / "keys"
    return keys_dir / ("signing-key-pub.pem" if kind == "key" else "ca-cert.pem")


@pytest.mark.parametrize("folder", list(HISTORICAL_VECTORS))
def test_vector_oms_historical(folder):
    base = need_shared(HISTORICAL) / folder
    model, kind, extra = HISTORICAL_VECTORS[folder]
    trust = _historical_trust(kind)
    expect_ok(_verify_with(base / model, base / "model.sig", kind, trust, *extra))


def test_vector_oms_historical_all_listed():
    base = need_shared(HISTORICAL)
    on_disk = {p.name for p in base.iterdir() if p.is_dir() and p.name != "keys"}
    assert on_disk == set(HISTORICAL_VECTORS), "vector folder and HISTORICAL_VECTORS disagree"


def test_vector_v101_needs_its_ignore():
    """v1.0.1 did not record `ignore-me`; without --ignore the file is unsigned."""
    base = need_shared(HISTORICAL) / "v1.0.1-elliptic-key"
    expect_refused(
        mx_verify(base, base / "model.sig", key=_historical_trust("key")), names=["ignore-me"]
    )


WRONG_TRUST = {
    # vector, model, kind, wrong trust file (relative to the shared folder)
    "p384-vector-with-p256-key": ("model-signing-1.1.1/sigs/key-p384.sig",
                                  "model-signing-1.1.1/tiny-model", "key",
                                  "model-signing-1.1.1/keys/ec-p256.pub.pem"),
    "historical-key-with-other-key": ("oms-historical/v1.1.0-elliptic-key/model.sig",
                                      "oms-historical/v1.1.0-elliptic-key", "key",
                                      "model-signing-1.1.1/keys/ec-p384.pub.pem"),
    "cert-vector-with-other-root": ("model-signing-1.1.1/sigs/cert-p256-chain.sig",
                                    "model-signing-1.1.1/tiny-model", "cert",
                                    "oms-historical/keys/ca-cert.pem"),
    "historical-hintless-key-with-other-key": ("oms-historical/v1.0.0-elliptic-key/model.sig",
                                               "oms-historical/v1.0.0-elliptic-key/signme-1", "key",
                                               "model-signing-1.1.1/keys/ec-p384.pub.pem"),
    "historical-cert-with-other-root": ("oms-historical/v1.1.0-certificate/model.sig",
                                        "oms-historical/v1.1.0-certificate", "cert",
                                        "model-signing-1.1.1/keys/cert/root.pem"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(WRONG_TRUST))
def test_vector_with_wrong_trust_refused(case):
    base = need_shared(SHARED)
    sig, model, kind, trust = WRONG_TRUST[case]
    if kind == "key":
        words = ["key", "signer", "trust"]
    else:
        words = ["certificate", "chain", "issuer", "trust"]
    expect_refused(_verify_with(base / model, base / sig, kind, base / trust), words=words)


@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_vector_tampered_copy_refused(tmp_path, tamper):
    base = need_shared(MS111)
    model = tmp_path / "tiny-model"
    shutil.copytree(base / "tiny-model", model)
    for p in [model, *model.rglob("*")]:  # the shared copy is read-only
        p.chmod(0o755 if p.is_dir() else 0o644)
    sig = base / "sigs" / "key-p384.sig"
    pub = base / "keys" / "ec-p384.pub.pem"
    expect_ok(mx_verify(model, sig, key=pub))
    # The same three kinds of change as TAMPERING, on tiny-model's own files.
    if tamper == "modified-file":
        data = bytearray((model / "model.safetensors").read_bytes())
        data[12345] ^= 0x80
        (model / "model.safetensors").write_bytes(bytes(data))
        name = "model.safetensors"
    elif tamper == "added-file":
        (model / "a" / "c.txt").write_bytes(b"new\n")
        name = "a/c.txt"
    else:
        (model / "a" / "b.txt").unlink()
        name = "a/b.txt"
    expect_refused(mx_verify(model, sig, key=pub), names=[name])


# ======================================================================================
# 4. Tampering, wrong keys, edited payloads: refused on both sides


@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_peer_refuses_tampered_model_signed_by_modelseal(keys, model, outdir, tamper):
    pair = keys["openssl-p256"]
    sig = outdir / "bundle.sig"
    expect_ok(mx_sign(model, pair.priv, signature=sig))
    action, name = TAMPERING[tamper]
    action(model)
    result = ms_verify_key(model, pair.pub, sig)
    expect_refused(result, words=["verification failed"], names=[name])


@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_modelseal_refuses_tampered_model_signed_by_peer(keys, model, outdir, tamper):
    pair = keys["openssl-p256"]
    sig = outdir / "peer.sig"
    expect_ok(ms_sign_key(model, pair.priv, sig))
    expect_ok(mx_verify(model, sig, key=pair.pub))
    action, name = TAMPERING[tamper]
    action(model)
    expect_refused(mx_verify(model, sig, key=pair.pub), names=[name])
    result = expect_refused(mx_verify(model, sig, "--json", key=pair.pub), names=[name])
    report = json.loads(result.out)
    assert report["verified"] is False
    assert report["error"]["kind"] and report["error"]["message"]


def test_peer_refuses_tampered_certificate_signature_by_modelseal(chain, model, outdir):
    sig = outdir / "cert.sig"
    expect_ok(mx_sign(model, chain.leaf_key, "--certificate", chain.leaf,
                      "--certificate-chain", chain.intermediate, signature=sig))  # fmt: skip
    _modify(model)
    expect_refused(ms_verify_cert(model, chain.root, sig), words=["verification failed"],
                   names=[WEIGHTS])  # fmt: skip


def test_modelseal_refuses_tampered_certificate_signature_by_peer(chain, model, outdir):
    sig = outdir / "peer-cert.sig"
    expect_ok(ms_sign_cert(model, chain.leaf_key, chain.leaf, chain.intermediate, sig))
    _remove(model)
    expect_refused(mx_verify(model, sig, root=chain.root), names=["a/b.txt"])


def test_peer_refuses_modelseal_signature_with_wrong_key(keys, model, outdir):
    sig = outdir / "bundle.sig"
    expect_ok(mx_sign(model, keys["openssl-p256"].priv, signature=sig))
    expect_refused(ms_verify_key(model, keys["other-p256"].pub, sig), words=["key mismatch"])
    expect_refused(ms_verify_key(model, keys["openssl-p384"].pub, sig), words=["key mismatch"])


@pytest.mark.parametrize("wrong", ["other-p256", "openssl-p384"])
def test_modelseal_refuses_peer_signature_with_wrong_key(keys, model, outdir, wrong):
    sig = outdir / "peer.sig"
    expect_ok(ms_sign_key(model, keys["openssl-p256"].priv, sig))
    expect_refused(mx_verify(model, sig, key=keys[wrong].pub), words=["key", "signer", "trust"])


def test_modelseal_checks_the_signature_not_the_key_hint(keys, model, outdir):
    """The hint is unauthenticated: without it the right key must still verify (the peer
    accepts hintless bundles with a warning), and a hint naming the trusted key on a
    bundle signed by another key must not help."""
    trusted, attacker = keys["openssl-p256"], keys["other-p256"]
    sig = outdir / "peer.sig"
    expect_ok(ms_sign_key(model, trusted.priv, sig))
    hintless = read_bundle(sig)
    hintless["verificationMaterial"]["publicKey"] = {}
    write_bundle(outdir / "hintless.sig", hintless)
    expect_ok(ms_verify_key(model, trusted.pub, outdir / "hintless.sig"))
    expect_ok(mx_verify(model, outdir / "hintless.sig", key=trusted.pub))
    expect_refused(mx_verify(model, outdir / "hintless.sig", key=attacker.pub),
                   words=["signature"])  # fmt: skip

    lying = handmade_bundle(attacker.priv, file_resources(model))
    lying["verificationMaterial"] = read_bundle(sig)["verificationMaterial"]
    write_bundle(outdir / "lying.sig", lying)
    expect_refused(ms_verify_key(model, trusted.pub, outdir / "lying.sig"),
                   words=["verification failed"])  # fmt: skip
    expect_refused(mx_verify(model, outdir / "lying.sig", key=trusted.pub), words=["signature"])


def test_peer_refuses_modelseal_certificate_signature_with_other_root(
    chain, other_root, model, outdir
):
    sig = outdir / "cert.sig"
    expect_ok(mx_sign(model, chain.leaf_key, "--certificate", chain.leaf,
                      "--certificate-chain", chain.intermediate, signature=sig))  # fmt: skip
    expect_refused(ms_verify_cert(model, other_root, sig), words=["verification failed"])
    # Trusting only the intermediate is not enough for the peer either.
    expect_refused(ms_verify_cert(model, chain.intermediate, sig), words=["issuer"])


def test_modelseal_refuses_peer_certificate_signature_with_other_root(
    chain, other_root, model, outdir
):
    sig = outdir / "peer-cert.sig"
    expect_ok(ms_sign_cert(model, chain.leaf_key, chain.leaf, chain.intermediate, sig))
    expect_refused(mx_verify(model, sig, root=other_root),
                   words=["certificate", "chain", "issuer", "trust", "root"])  # fmt: skip


def _swap_in_modified_weights(model: Path):
    """Modifies the weights on disk and returns a statement edit that re-describes them."""
    _modify(model)
    new_digest = hashlib.sha256((model / WEIGHTS).read_bytes()).hexdigest()

    def edit(statement):
        for r in statement["predicate"]["resources"]:
            if r["name"] == WEIGHTS:
                r["digest"] = new_digest
                return
        raise AssertionError(f"{WEIGHTS} not in the signed resources")

    return edit


def test_peer_refuses_modelseal_bundle_with_edited_payload(keys, model, outdir):
    pair = keys["openssl-p256"]
    sig = outdir / "bundle.sig"
    expect_ok(mx_sign(model, pair.priv, signature=sig))
    forged = outdir / "forged.sig"
    write_bundle(forged, forge_payload(read_bundle(sig), _swap_in_modified_weights(model)))
    expect_refused(ms_verify_key(model, pair.pub, forged), words=["verification failed"])
    expect_refused(mx_verify(model, forged, key=pair.pub), words=["signature"])


def test_modelseal_refuses_peer_bundle_with_edited_payload(keys, chain, model, outdir):
    pair = keys["openssl-p384"]
    sig = outdir / "peer.sig"
    expect_ok(ms_sign_key(model, pair.priv, sig))
    cert_sig = outdir / "peer-cert.sig"
    expect_ok(ms_sign_cert(model, chain.leaf_key, chain.leaf, chain.intermediate, cert_sig))
    edit = _swap_in_modified_weights(model)
    forged = outdir / "forged.sig"
    write_bundle(forged, forge_payload(read_bundle(sig), edit))
    expect_refused(mx_verify(model, forged, key=pair.pub), words=["signature"])
    forged_cert = outdir / "forged-cert.sig"
    write_bundle(forged_cert, forge_payload(read_bundle(cert_sig), edit))
    expect_refused(mx_verify(model, forged_cert, root=chain.root), words=["signature"])
    # The peer agrees that the forgery is no good.
    expect_refused(ms_verify_key(model, pair.pub, forged), words=["verification failed"])


# ======================================================================================
# 5. Path traversal in a validly signed bundle


def test_handmade_bundle_is_accepted_by_both(keys, model, outdir):
    """Control for section 5: our own signer makes bundles both tools accept, so a refusal
    below is about the path, not the bundle."""
    pair = keys["openssl-p256"]
    sig = outdir / "handmade.sig"
    write_bundle(sig, handmade_bundle(pair.priv, file_resources(model)))
    expect_ok(ms_verify_key(model, pair.pub, sig))
    expect_ok(mx_verify(model, sig, key=pair.pub))
    expect_ok(mx_verify(model, sig, "--ignore-unsigned-files", key=pair.pub))


def _traversal_setup(keys, tmp_path, name: str, digest_ok: bool, fifo: bool = False):
    model = make_model(tmp_path / "model")
    secret = tmp_path / "secret.txt"
    secret_bytes = os.urandom(4096)
    secret_digest = hashlib.sha256(secret_bytes).hexdigest()
    if fifo:
        os.mkfifo(secret)
    else:
        secret.write_bytes(secret_bytes)
    assert (model / name).resolve() == secret.resolve()
    resources = file_resources(model) + [
        {"name": name, "algorithm": "sha256", "digest": secret_digest if digest_ok else "00" * 32}
    ]
    pair = keys["openssl-p256"]
    sig = tmp_path / "traversal.sig"
    write_bundle(sig, handmade_bundle(pair.priv, resources))
    return model, sig, pair, secret, secret_digest


TRAVERSAL_NAMES = ["../secret.txt", "a/../../secret.txt"]


def _digest_forms(hex_digest: str) -> list[str]:
    raw = bytes.fromhex(hex_digest)
    return [hex_digest, hex_digest.upper(), base64.b64encode(raw).decode().rstrip("=")]


@pytest.mark.parametrize("digest_ok", [True, False], ids=["true-digest", "wrong-digest"])
@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_modelseal_refuses_resource_outside_model(keys, tmp_path, name, digest_ok):
    model, sig, pair, secret, secret_digest = _traversal_setup(keys, tmp_path, name, digest_ok)
    for extra in (["--ignore-unsigned-files"], [], ["--ignore-unsigned-files", "--json"]):
        result = expect_refused(mx_verify(model, sig, *extra, key=pair.pub), names=[name])
        # No hash oracle: the digest of the outside file is never shown (hex or base64).
        shown = result.out + result.err
        leaked = [form for form in _digest_forms(secret_digest) if form in shown]
        assert not leaked, result.report(f"digest of the outside file leaked: {leaked}")
        if "--json" in extra:
            assert json.loads(result.out)["verified"] is False


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_modelseal_never_opens_file_outside_model(keys, tmp_path, name):
    model, sig, pair, secret, _ = _traversal_setup(keys, tmp_path, name, digest_ok=True)
    log = tmp_path / "strace.log"
    result = run([
        "strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log,
        MODELSEAL, "verify", model, "--signature", sig, "--key", pair.pub,
        "--ignore-unsigned-files",
    ])  # fmt: skip
    if not log.exists() or ("ptrace" in result.err.lower() and result.code != 1):
        pytest.skip(f"strace cannot trace here: {result.err.strip()[:200]}")
    expect_refused(result, names=[name])
    opened = [line for line in log.read_text().splitlines() if "secret.txt" in line]
    assert not opened, "modelseal opened the file outside the model:\n" + "\n".join(opened)


def test_modelseal_does_not_block_on_outside_fifo(keys, tmp_path):
    """Opening a FIFO for reading blocks until a writer comes: a verifier that followed
    `../secret.txt` would hang here."""
    model, sig, pair, *_ = _traversal_setup(keys, tmp_path, "../secret.txt", True, fifo=True)
    result = run(
        [MODELSEAL, "verify", model, "--signature", sig, "--key", pair.pub,
         "--ignore-unsigned-files"],
        timeout=20,
        on_timeout="modelseal blocked opening the FIFO at ../secret.txt outside the model",
    )
    expect_refused(result, names=["../secret.txt"])


def test_peer_follows_resource_outside_model_documented_flaw(keys, tmp_path):
    """Documents the PEER's flaw (research notes section 3.5), not desired behaviour:
    model_signing 1.1.1 with --ignore_unsigned_files hashes `model/../secret.txt` and
    accepts the bundle. If this starts failing, the peer fixed it."""
    model, sig, pair, *_ = _traversal_setup(keys, tmp_path, "../secret.txt", digest_ok=True)
    expect_ok(ms_verify_key(model, pair.pub, sig, "--ignore_unsigned_files"))
    expect_refused(ms_verify_key(model, pair.pub, sig), names=["../secret.txt"])
