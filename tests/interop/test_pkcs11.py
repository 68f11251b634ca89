"""PKCS#11 interoperability with model-signing 1.1.1, against one SoftHSM2 token.

What model-signing signs with `sign pkcs11-key`, modelseal verifies; what modelseal signs
with the token in the OMS format, `model_signing verify key` accepts; for P-256 and
P-384. The public key each side verifies with is the one modelseal exports from the token
(`modelseal public-key`), checked against OpenSSL's reading of the token's own export for
P-256 in crates/modelseal-cli/tests/pkcs11.rs.

model-signing takes the PIN as `pin-value` in its URI; modelseal refuses that (a PIN on a
command line is in shell history and the process list) and reads it from
MODELSEAL_PKCS11_PIN here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "271828"
TIMEOUT = 120


def _modelseal() -> str:
    configured = Path(os.environ.get("MODELSEAL", "target/release/modelseal"))
    return str(configured.resolve())


def _model_signing() -> str:
    return str(Path(sys.executable).with_name("model_signing"))


@pytest.fixture(scope="module")
def token(tmp_path_factory):
    if not Path(MODULE).exists() or shutil.which("pkcs11-tool") is None:
        pytest.fail("SoftHSM2 and OpenSC are needed: apt-get install -y softhsm2 opensc (tests/run.sh does)")
    home = tmp_path_factory.mktemp("softhsm")
    (home / "tokens").mkdir()
    conf = home / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    run = lambda *args: subprocess.run(args, env=env, check=True, capture_output=True, timeout=TIMEOUT)
    run("softhsm2-util", "--init-token", "--free", "--label", "interop", "--pin", PIN, "--so-pin", "99887766")
    for curve, label, key_id in (("EC:prime256v1", "p256", "11"), ("EC:secp384r1", "p384", "12")):
        run("pkcs11-tool", "--module", MODULE, "--token-label", "interop", "--login", "--pin", PIN,
            "--keypairgen", "--key-type", curve, "--label", label, "--id", key_id)
    env["MODELSEAL_PKCS11_PIN"] = PIN
    return home, env


def _uri(label: str, pin_value: bool = False) -> str:
    uri = f"pkcs11:token=interop;object={label}?module-path={MODULE}"
    return uri + (f"&pin-value={PIN}" if pin_value else "")


def _model(root: Path) -> Path:
    model = root / "model"
    model.mkdir(exist_ok=True)
    (model / "weights.bin").write_bytes(os.urandom(200_000))
    (model / "config.json").write_text('{"hidden": 64}\n')
    return model


def _run(args, env, expect=0):
    out = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == expect, f"{args}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.mark.parametrize("label", ["p256", "p384"])
def test_model_signing_token_signatures_verify_in_modelseal(token, tmp_path, label):
    _, env = token
    model = _model(tmp_path)
    public = tmp_path / "key.pub"
    _run([_modelseal(), "public-key", _uri(label), "--out", public], env)
    signature = tmp_path / "peer.sig"
    _run([_model_signing(), "sign", "pkcs11-key", "--signature", signature,
          "--pkcs11_uri", _uri(label, pin_value=True), model], env)
    out = _run([_modelseal(), "verify", model, "--signature", signature, "--key", public], env)
    assert "(oms" in out.stdout
    # The same bundle over a changed model is refused.
    (model / "config.json").write_text('{"hidden": 65}\n')
    _run([_modelseal(), "verify", model, "--signature", signature, "--key", public], env, expect=1)


@pytest.mark.parametrize("label", ["p256", "p384"])
def test_modelseal_token_signatures_verify_in_model_signing(token, tmp_path, label):
    _, env = token
    model = _model(tmp_path)
    public = tmp_path / "key.pub"
    _run([_modelseal(), "public-key", _uri(label), "--out", public], env)
    signature = tmp_path / "ours.sig"
    _run([_modelseal(), "sign", model, "--format", "oms", "--key", _uri(label), "--signature", signature], env)
    _run([_model_signing(), "verify", "key", "--signature", signature, "--public_key", public, model], env)
    # model-signing refuses it under the other curve's key: the signature is the token key's.
    other = "p384" if label == "p256" else "p256"
    other_public = tmp_path / "other.pub"
    _run([_modelseal(), "public-key", _uri(other), "--out", other_public], env)
    out = subprocess.run([_model_signing(), "verify", "key", "--signature", str(signature),
                          "--public_key", str(other_public), str(model)],
                         env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode != 0, out.stdout


def test_model_signing_uris_with_a_pin_value_are_refused_with_the_way_out(token, tmp_path):
    _, env = token
    model = _model(tmp_path)
    out = _run([_modelseal(), "sign", model, "--format", "oms", "--key", _uri("p256", pin_value=True)], env, expect=2)
    assert "MODELSEAL_PKCS11_PIN" in out.stderr
    assert PIN not in out.stderr
    assert not (tmp_path / "model.sig").exists()
