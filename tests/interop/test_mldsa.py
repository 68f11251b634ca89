"""ML-DSA-65 (FIPS 204) keys and signatures, checked against an independent implementation.

modelseal signs with AWS-LC (through aws-lc-rs); pyca/cryptography 50 signs with OpenSSL 3.5.
Each side reads the other's keys (PKCS#8 seed form, plain and encrypted; SPKI) and checks
the other's DSSE signatures over the same PAE bytes, so a disagreement in key encoding,
signature encoding, pure mode or context would fail here.

    MODELSEAL=target/release/modelseal target/interop-venv/bin/pytest -q tests/interop/test_mldsa.py
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mldsa

REPO = Path(__file__).resolve().parents[2]
MODELSEAL = Path(os.environ.get("MODELSEAL", REPO / "target" / "release" / "modelseal")).resolve()
PASSPHRASE = b"interop passphrase"


def run(*args: object, code: int = 0, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(MODELSEAL), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding, written here from the DSSE spec."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(os.urandom(70_000))
    (root / "config.json").write_text('{"layers": 2}')
    return root


def envelope(bundle_path: Path) -> dict:
    return json.loads(bundle_path.read_text())["dsseEnvelope"]


def test_modelseal_signs_with_a_pyca_key_and_pyca_checks_the_signature(tmp_path: Path, model: Path) -> None:
    key = mldsa.MLDSA65PrivateKey.generate()
    for encrypted in (False, True):
        encryption = (
            serialization.BestAvailableEncryption(PASSPHRASE) if encrypted else serialization.NoEncryption()
        )
        pem = tmp_path / f"pyca-{encrypted}.pem"
        pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
        env = {"MODELSEAL_PASSPHRASE": PASSPHRASE.decode()} if encrypted else None
        sig = tmp_path / f"model-{encrypted}.sig"
        run("sign", model, "--key", pem, "--signature", sig, env=env)
        # The public key modelseal reports is byte for byte pyca's SPKI.
        exported = run("public-key", pem, env=env).stdout
        spki = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert exported.strip() == spki.decode().strip()
        env_ = envelope(sig)
        payload = base64.b64decode(env_["payload"])
        signature = base64.b64decode(env_["signatures"][0]["sig"])
        assert len(signature) == 3309
        key.public_key().verify(signature, pae(env_["payloadType"], payload))
        with pytest.raises(InvalidSignature):
            key.public_key().verify(signature, pae(env_["payloadType"], payload + b" "))
        # Pure ML-DSA with the empty context: under any other context it does not verify.
        with pytest.raises(InvalidSignature):
            key.public_key().verify(signature, pae(env_["payloadType"], payload), context=b"modelseal")
        pub = tmp_path / "pyca.pub"
        pub.write_bytes(spki)
        run("verify", model, "--key", pub, "--signature", sig)


def test_pyca_signs_for_a_modelseal_key_and_modelseal_checks_it(tmp_path: Path, model: Path) -> None:
    key_path = tmp_path / "ms"
    run("keygen", "--algorithm", "ml-dsa-65", "--out", key_path)
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(private, mldsa.MLDSA65PrivateKey)
    public = serialization.load_pem_public_key(Path(f"{key_path}.pub").read_bytes())
    assert public == private.public_key()
    # A statement modelseal signed, re-signed by pyca with the same key: still valid.
    sig = tmp_path / "model.sig"
    run("sign", model, "--key", key_path, "--signature", sig)
    bundle = json.loads(sig.read_text())
    env_ = bundle["dsseEnvelope"]
    payload = base64.b64decode(env_["payload"])
    theirs = private.sign(pae(env_["payloadType"], payload))
    env_["signatures"][0]["sig"] = base64.b64encode(theirs).decode()
    resigned = tmp_path / "pyca-signed.sig"
    resigned.write_text(json.dumps(bundle))
    run("verify", model, "--key", f"{key_path}.pub", "--signature", resigned)
    # A signature under a context, a cut signature and an edited one are refused.
    for name, bad in [
        ("context", private.sign(pae(env_["payloadType"], payload), context=b"x")),
        ("cut", theirs[:-1]),
        ("flipped", bytes([theirs[0] ^ 1]) + theirs[1:]),
    ]:
        env_["signatures"][0]["sig"] = base64.b64encode(bad).decode()
        path = tmp_path / f"{name}.sig"
        path.write_text(json.dumps(bundle))
        done = run("verify", model, "--key", f"{key_path}.pub", "--signature", path, code=1)
        assert "signature" in done.stderr


def test_encrypted_modelseal_key_opens_in_pyca(tmp_path: Path) -> None:
    key_path = tmp_path / "enc"
    run(
        "keygen", "--algorithm", "ml-dsa-65", "--encrypt", "--out", key_path,
        env={"MODELSEAL_PASSPHRASE": PASSPHRASE.decode()},
    )
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=PASSPHRASE)
    public = serialization.load_pem_public_key(Path(f"{key_path}.pub").read_bytes())
    assert public == private.public_key()
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(key_path.read_bytes(), password=b"wrong")
