"""Keys in AWS KMS (`awskms://`, cosign's syntax), against moto's KMS on loopback over TLS.

The endpoint is tests/interop/kms_double.py: moto 5.2.6's server, taught to sign a digest
as the real service does. Keys are made with boto3; modelseal (built with the `kms`
feature) signs with them through the AWS SDK for Rust; the bundle verifies in modelseal
with the exported public key and, for OMS, in model-signing 1.1.1. The public key
modelseal exports is compared with the one boto3 reads.

Hostile and broken endpoints are this file's own small servers: one that never answers,
one that is not KMS, one that hands out one key and signs with another, one whose key
spec and public key disagree, one that refuses with an AWS error. Each must give exit 2,
a message naming the key, no output file, and no credential in any message.

What this leaves unproven against the real service: SigV4 acceptance by AWS itself, IAM
policies and grants, disabled or pending-deletion keys (moto signs with them anyway; the
error mapping is exercised by the refusing endpoint here), real KMS error texts and
throttling, multi-Region keys, and the SDK's credential sources beyond environment
variables (profiles, SSO, instance roles).
"""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TIMEOUT = 120
SECRET = "kms-test-secret-never-printed"
HERE = Path(__file__).resolve().parent


def _modelseal() -> str:
    return str(Path(os.environ.get("MODELSEAL", "target/release/modelseal")).resolve())


def _model_signing() -> str:
    return str(Path(sys.executable).with_name("model_signing"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it issued: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelseal kms test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _wait_for(port: int, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"the KMS double exited: {process.stderr.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


class Kms:
    """moto's KMS over TLS on loopback, with keys by alias."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.ca, cert, key = _tls_files(directory)
        self.port = _free_port()
        self.process = subprocess.Popen([sys.executable, str(HERE / "kms_double.py"), str(self.port), str(cert), str(key)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_for(self.port, self.process)
        self.client = boto3.client("kms", region_name="us-east-1", endpoint_url=f"https://127.0.0.1:{self.port}",
                                   verify=str(self.ca), aws_access_key_id="AKIDKMSTEST", aws_secret_access_key=SECRET)
        self.arns = {}
        for alias, spec, usage in (("p256", "ECC_NIST_P256", "SIGN_VERIFY"), ("p384", "ECC_NIST_P384", "SIGN_VERIFY"),
                                   ("p521", "ECC_NIST_P521", "SIGN_VERIFY"), ("rsa", "RSA_2048", "SIGN_VERIFY"),
                                   ("k256", "ECC_SECG_P256K1", "SIGN_VERIFY"), ("aes", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")):
            meta = self.client.create_key(KeyUsage=usage, KeySpec=spec)["KeyMetadata"]
            self.client.create_alias(AliasName=f"alias/{alias}", TargetKeyId=meta["KeyId"])
            self.arns[alias] = meta["Arn"]

    def name(self, alias: str) -> str:
        return f"awskms://127.0.0.1:{self.port}/alias/{alias}"

    def env(self, **changes) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(HOME=str(self.dir), AWS_ACCESS_KEY_ID="AKIDKMSTEST", AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", SSL_CERT_FILE=str(self.ca))
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def public_pem(self, alias: str) -> bytes:
        der = self.client.get_public_key(KeyId=f"alias/{alias}")["PublicKey"]
        return serialization.load_der_public_key(der).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def kms(tmp_path_factory):
    service = Kms(tmp_path_factory.mktemp("kms"))
    yield service
    service.process.terminate()
    service.process.wait(timeout=30)


def _model(root: Path) -> Path:
    model = root / "model"
    model.mkdir(exist_ok=True)
    (model / "weights.bin").write_bytes(os.urandom(300_000))
    (model / "config.json").write_text('{"hidden": 64}\n')
    return model


def _run(args, env, expect=0, timeout=TIMEOUT):
    out = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == expect, f"{args}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    assert SECRET not in out.stdout + out.stderr
    return out


@pytest.mark.parametrize("alias", ["p256", "p384", "p521"])
@pytest.mark.parametrize("form", ["native", "oms"])
def test_kms_keys_sign_both_formats_and_the_bundle_verifies_elsewhere(kms, tmp_path, alias, form):
    env = kms.env()
    model = _model(tmp_path)
    public = tmp_path / "kms.pub"
    _run([_modelseal(), "public-key", kms.name(alias), "--out", public], env)
    expected = serialization.load_pem_public_key(kms.public_pem(alias))
    assert serialization.load_pem_public_key(public.read_bytes()).public_numbers() == expected.public_numbers()

    signature = tmp_path / "model.sig"
    out = _run([_modelseal(), "sign", model, "--key", kms.name(alias), "--format", form, "--signature", signature], env)
    assert "(awskms)" in out.stdout, out.stdout
    _run([_modelseal(), "verify", model, "--signature", signature, "--key", public], env)
    if form == "oms" and alias != "p521":
        # model-signing 1.1.1 verifies P-256 and P-384 keys (its key verifier has no P-521).
        _run([_model_signing(), "verify", "key", "--signature", signature, "--public_key", public, model], env)
    (model / "config.json").write_text('{"hidden": 65}\n')
    _run([_modelseal(), "verify", model, "--signature", signature, "--key", public], env, expect=1)


def test_key_arns_take_their_region_and_the_sdk_endpoint_setting_is_honoured(kms, tmp_path):
    model = _model(tmp_path)
    # The ARN says us-east-1, where the keys are; the environment's other region must lose.
    env = kms.env(AWS_REGION="eu-west-3", AWS_ENDPOINT_URL_KMS=f"https://127.0.0.1:{kms.port}")
    key_id = kms.arns["p256"].split("/")[-1]
    for name in (f"awskms:///{kms.arns['p256']}", f"awskms:///{key_id}"):
        region_env = env if name.startswith("awskms:///arn") else kms.env(AWS_ENDPOINT_URL_KMS=env["AWS_ENDPOINT_URL_KMS"])
        signature = tmp_path / "arn.sig"
        _run([_modelseal(), "sign", model, "--key", name, "--signature", signature, "--force"], region_env)
        public = tmp_path / "p256.pub"
        public.write_bytes(kms.public_pem("p256"))
        _run([_modelseal(), "verify", model, "--signature", signature, "--key", public], env)


def test_training_attestations_sign_with_kms_keys(kms, tmp_path):
    env = kms.env()
    model = _model(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("tokens\n")
    public = tmp_path / "p384.pub"
    public.write_bytes(kms.public_pem("p384"))
    attestation = tmp_path / "training.sig"
    _run([_modelseal(), "attest", "training", "--model", model, "--dataset", data, "--key", kms.name("p384"),
          "--out", attestation], env)
    # The attestation's DSSE signature is the KMS key's, checked here by pyca/cryptography.
    envelope = json.loads(attestation.read_text())["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    kind = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    key = serialization.load_pem_public_key(public.read_bytes())
    key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA384()))
    assert json.loads(payload)["predicateType"] == "https://slsa.dev/provenance/v1"


def _refused(kms, tmp_path, name, env, *words, timeout=TIMEOUT):
    model = _model(tmp_path)
    signature = tmp_path / "refused.sig"
    started = time.monotonic()
    out = _run([_modelseal(), "sign", model, "--key", name, "--signature", signature], env, expect=2, timeout=timeout)
    assert not signature.exists(), "a refused signing left a signature behind"
    assert not list(tmp_path.glob("*.tmp*")), list(tmp_path.iterdir())
    message = out.stderr.lower()
    for word in words:
        assert word.lower() in message, out.stderr
    assert "panicked" not in message and "debug" not in message
    return time.monotonic() - started


@pytest.mark.parametrize("alias,words", [
    ("rsa", ["alias/rsa", "RSA_2048", "ECC_NIST_P256"]),
    ("k256", ["alias/k256", "ECC_SECG_P256K1"]),
    ("aes", ["alias/aes", "ENCRYPT_DECRYPT", "SIGN_VERIFY"]),
    ("missing", ["alias/missing", "NotFoundException"]),
])
def test_keys_that_cannot_sign_are_named_and_refused(kms, tmp_path, alias, words):
    _refused(kms, tmp_path, kms.name(alias), kms.env(), *words)


def test_configuration_mistakes_are_named(kms, tmp_path):
    key_id = kms.arns["p256"].split("/")[-1]
    # No region anywhere (a key ID or alias does not carry one).
    _refused(kms, tmp_path, kms.name("p256"), kms.env(AWS_REGION=None, AWS_DEFAULT_REGION=None), "region")
    # The endpoint's certificate is from a CA nobody trusts.
    _refused(kms, tmp_path, kms.name("p256"), kms.env(SSL_CERT_FILE=None, SSL_CERT_DIR=str(tmp_path)), "alias/p256",
             "cannot reach")
    # Nothing listens.
    closed = f"awskms://127.0.0.1:{_free_port()}/{key_id}"
    _refused(kms, tmp_path, closed, kms.env(), key_id, "cannot reach")
    # A malformed name, a bad deadline.
    _refused(kms, tmp_path, "awskms:///alias/has space", kms.env(), "alias")
    _refused(kms, tmp_path, kms.name("p256"), kms.env(MODELSEAL_KMS_TIMEOUT="soon"), "MODELSEAL_KMS_TIMEOUT")
    # No credentials at all.
    _refused(kms, tmp_path, kms.name("p256"), kms.env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None),
             "alias/p256", "credentials")


class Hostile:
    """A TLS endpoint that speaks KMS's JSON protocol as a hostile or broken service would."""

    def __init__(self, kms: Kms, behaviour: str):
        self.behaviour = behaviour
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.other = ec.generate_private_key(ec.SECP256R1())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(kms.dir / "cert.pem", kms.dir / "key.pem")
        hostile = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                status, answer = hostile.answer(target, json.loads(body or b"{}"))
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, target: str, request: dict):
        spki = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        if self.behaviour == "refuses":
            return 400, {"__type": "AccessDeniedException",
                         "message": "User is not authorized to perform kms:Sign\x1b[31m on this key"}
        if self.behaviour == "not-kms":
            return 200, b"<html>hello</html>"
        if target.endswith("GetPublicKey"):
            spec = "ECC_NIST_P384" if self.behaviour == "spec-mismatch" else "ECC_NIST_P256"
            return 200, {"KeyId": "arn:aws:kms:us-east-1:111122223333:key/x", "KeySpec": spec,
                         "KeyUsage": "SIGN_VERIFY", "SigningAlgorithms": ["ECDSA_SHA_256", "ECDSA_SHA_384"],
                         "PublicKey": base64.b64encode(spki).decode()}
        if target.endswith("Sign"):
            from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
            digest = base64.b64decode(request["Message"])
            signature = self.other.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            return 200, {"KeyId": request["KeyId"], "Signature": base64.b64encode(signature).decode(),
                         "SigningAlgorithm": request["SigningAlgorithm"]}
        return 400, {"__type": "UnknownOperationException"}

    def name(self) -> str:
        return f"awskms://127.0.0.1:{self.port}/alias/hostile"

    def close(self):
        self.server.shutdown()


@pytest.mark.parametrize("behaviour,words", [
    ("signs-with-another-key", ["signature does not verify with its own public key"]),
    ("spec-mismatch", ["alias/hostile", "ECC_NIST_P384"]),
    ("refuses", ["alias/hostile", "AccessDeniedException", "not authorized"]),
    ("not-kms", ["alias/hostile"]),
])
def test_hostile_endpoints_cannot_get_a_signature_written(kms, tmp_path, behaviour, words):
    hostile = Hostile(kms, behaviour)
    try:
        model = _model(tmp_path)
        signature = tmp_path / "hostile.sig"
        out = _run([_modelseal(), "sign", model, "--key", hostile.name(), "--signature", signature], kms.env(),
                   expect=2)
        assert not signature.exists()
        for word in words:
            assert word in out.stderr, out.stderr
        assert "\x1b" not in out.stderr, "an endpoint's control characters reached the terminal"
    finally:
        hostile.close()


def test_a_kms_that_never_answers_is_given_up_on_at_the_deadline(kms, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections (the kernel does) and never says a word
    try:
        name = f"awskms://127.0.0.1:{silent.getsockname()[1]}/alias/p256"
        took = _refused(kms, tmp_path, name, kms.env(MODELSEAL_KMS_TIMEOUT="3"), "alias/p256", "in time",
                        timeout=60)
        assert took < 20, f"took {took:.1f} s with a 3 s deadline"
    finally:
        silent.close()
