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

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


# Certificates: model-signing's `sign pkcs11-certificate` takes the token key and a
# certificate file; modelseal takes the same, or reads the certificate from the token
# (`--certificate` with a pkcs11: URI, the key's own URI finding the certificate with the
# same label and id). Either way the chain lands in the bundle; model-signing verifies
# modelseal's against the root. (The other way is blocked by a model-signing bug; see
# test_model_signing_pkcs11_certificate_bundles_verify_in_modelseal.)


@pytest.fixture(scope="module")
def certified(token, tmp_path_factory):
    """A root CA, and for each token key a leaf certificate written into the token too."""
    home, env = token
    directory = tmp_path_factory.mktemp("pkcs11-certs")
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelseal pkcs11 test root")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA384()))
    root_pem = directory / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    leaves = {}
    for label, key_id in (("p256", "11"), ("p384", "12")):
        public = directory / f"{label}.pub"
        _run([_modelseal(), "public-key", _uri(label), "--out", public], env)
        subject = serialization.load_pem_public_key(public.read_bytes())
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"release signer {label}")]))
                .issuer_name(root_name).public_key(subject).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
                .sign(root_key, hashes.SHA384()))
        pem, der = directory / f"{label}.pem", directory / f"{label}.der"
        pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        der.write_bytes(leaf.public_bytes(serialization.Encoding.DER))
        subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label", "interop", "--login", "--pin", PIN,
                        "--write-object", str(der), "--type", "cert", "--label", label, "--id", key_id],
                       env=env, check=True, capture_output=True, timeout=TIMEOUT)
        leaves[label] = pem
    return root_pem, leaves


def _chain_in(signature: Path) -> list[bytes]:
    bundle = json.loads(signature.read_text())
    return [base64.b64decode(c["rawBytes"])
            for c in bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]]


@pytest.mark.parametrize("label", ["p256", "p384"])
def test_certificates_read_from_the_token_verify_in_model_signing(token, certified, tmp_path, label):
    _, env = token
    root, leaves = certified
    model = _model(tmp_path)
    signature = tmp_path / "ours.sig"
    # No PIN in the certificate's URI, and none needed: certificates are public objects.
    _run([_modelseal(), "sign", model, "--format", "oms", "--key", _uri(label),
          "--certificate", f"pkcs11:token=interop;object={label};type=cert?module-path={MODULE}",
          "--signature", signature], env)
    leaf = x509.load_pem_x509_certificate(leaves[label].read_bytes())
    assert _chain_in(signature) == [leaf.public_bytes(serialization.Encoding.DER)]
    _run([_model_signing(), "verify", "certificate", "--signature", signature, "--certificate_chain", root, model], env)
    _run([_modelseal(), "verify", model, "--signature", signature, "--certificate-root", root], env)
    # The key's own URI finds the same certificate.
    again = tmp_path / "again.sig"
    _run([_modelseal(), "sign", model, "--format", "oms", "--key", _uri(label), "--certificate", _uri(label),
          "--signature", again], env)
    assert _chain_in(again) == _chain_in(signature)


@pytest.mark.parametrize("label", ["p256", "p384"])
def test_model_signing_pkcs11_certificate_bundles_verify_in_modelseal(token, certified, tmp_path, label):
    _, env = token
    root, leaves = certified
    model = _model(tmp_path)
    signature = tmp_path / "theirs.sig"
    out = subprocess.run([_model_signing(), "sign", "pkcs11-certificate", "--signature", str(signature),
                          "--pkcs11_uri", _uri(label, pin_value=True), "--signing_certificate", str(leaves[label]),
                          # model-signing 1.1.1 fails on an empty chain, so the root goes in too.
                          "--certificate_chain", str(root), str(model)],
                         env=env, capture_output=True, text=True, timeout=TIMEOUT)
    if out.returncode != 0:
        # model-signing 1.1.1's PKCS#11 certificate signer (sign_pkcs11.py) cannot make a
        # bundle: it hands the certificates' DER to a field that takes base64 (its file-key
        # certificate signer encodes it), and leaves out tlog_entries (its other signers
        # pass []); pydantic refuses one or the other, depending on the DER's bytes. Any
        # other failure is a real one; once the peer is fixed this test checks its bundles.
        assert "X509Certificate" in out.stderr or "tlogEntries" in out.stderr, out.stderr
        pytest.xfail("model-signing 1.1.1 `sign pkcs11-certificate` makes no bundle (DER not base64, no tlog_entries)")
    _run([_modelseal(), "verify", model, "--signature", signature, "--certificate-root", root], env)
    (model / "config.json").write_text('{"hidden": 65}\n')
    _run([_modelseal(), "verify", model, "--signature", signature, "--certificate-root", root], env, expect=1)


@pytest.mark.parametrize("certificate,words", [
    # Another key's certificate from the same token: refused before anything is hashed or written.
    ("pkcs11:token=interop;object=p384;type=cert", ["certificate"]),
    ("pkcs11:token=interop;object=nope;type=cert", ["no such X.509 certificate", "nope"]),
    ("pkcs11:token=interop;object=p256;type=private", ["type=private"]),
    ("pkcs11:token=interop;object=p256;type=cert?pin-value=1", ["pin-value"]),
])
def test_wrong_token_certificates_are_refused(token, certified, tmp_path, certificate, words):
    _, env = token
    model = _model(tmp_path)
    signature = tmp_path / "refused.sig"
    if "module-path" not in certificate and "?" not in certificate:
        certificate += f"?module-path={MODULE}"
    elif "module-path" not in certificate:
        certificate += f"&module-path={MODULE}"
    out = _run([_modelseal(), "sign", model, "--format", "oms", "--key", _uri("p256"), "--certificate", certificate,
                "--signature", signature], env, expect=2)
    for word in words:
        assert word in out.stderr, out.stderr
    assert PIN not in out.stderr
    assert not signature.exists()
