"""Keyless signing and trusted time, end to end, against a local Sigstore instance.

The instance is tests/sigstore-local (the Sigstore project's own service doubles from
`@sigstore/mock`, served over HTTP on 127.0.0.1, with a token-minting OIDC issuer). It
makes new keys on every start, so every trust root here is this run's own.

What is covered:

1. `modelseal sign --keyless` (native and OMS) -> `modelseal verify` offline with the
   instance's trusted root; `model_signing verify sigstore --trust_config` 1.1.1 accepts
   our OMS keyless bundles.
2. Each of these is refused: wrong identity, wrong issuer, a log entry of another
   artifact, a missing inclusion proof or log entry, a timestamp of another signature,
   a tampered model, a log whose time falls outside the certificate (refused at signing,
   before anything is written), a forged or expired identity token.
3. The token sources: file, SIGSTORE_ID_TOKEN, and GitHub Actions' ambient credentials
   (ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN served by the local issuer).
4. `sign --timestamp-url` for key and certificate signing: the chain is checked at the
   timestamped time; a timestamp moved to another signature, or from an authority the
   verifier does not trust, is refused.
5. Lineage policies with keyless signers (every signer of a role, by identity and
   issuer): a keyless chain passes, and a keyless signer holding another role does not
   count.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sigstore-local"))

from harness import LocalSigstore  # noqa: E402
from test_oms_interop import (  # noqa: E402
    CERTS,
    MODEL_SIGNING,
    MODELSEAL,
    TIMEOUT,
    Result,
    expect_ok,
    expect_refused,
    mx,
    run,
)

PUBLISHER = "release@example.com"
CURATOR = "data@example.com"
BUILDER = "https://github.com/example/trainer/.github/workflows/train.yml@refs/heads/main"


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory):
    # --strict: Fulcio checks the token's signature, expiry and audience and the proof of
    # possession, as the real one does (the mock alone checks none of them).
    instance = LocalSigstore(tmp_path_factory.mktemp("sigstore"), "--strict")
    yield instance
    instance.close()


def make_model(root: Path, seed: int = 0) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"hidden": 8, "seed": seed}))
    (root / "weights.bin").write_bytes(bytes((i * 7 + seed) % 251 for i in range(300_000)))
    return root


def keyless_args(sigstore: LocalSigstore, token: Path) -> list:
    return [
        "--keyless",
        "--identity-token-file",
        token,
        "--signing-config",
        sigstore.signing_config,
        "--trusted-root",
        sigstore.trusted_root,
    ]


def verify_keyless(sigstore, model, signature, identity=PUBLISHER, issuer=None, *extra):
    return mx(
        "verify",
        model,
        "--signature",
        signature,
        "--identity",
        identity,
        "--issuer",
        issuer or sigstore.issuer,
        "--trusted-root",
        sigstore.trusted_root,
        *extra,
    )


def sign_keyless(sigstore, tmp_path, model, signature, *extra, identity=PUBLISHER):
    token = sigstore.token_file(tmp_path / f"{signature.name}.jwt", identity)
    return mx("sign", model, "--signature", signature, *keyless_args(sigstore, token), *extra)


def edited(bundle: Path, out: Path, change) -> Path:
    data = json.loads(bundle.read_text())
    change(data)
    out.write_text(json.dumps(data))
    return out


# 1. --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["native", "oms"])
def test_keyless_sign_then_verify_offline(sigstore, tmp_path, fmt):
    model = make_model(tmp_path / "model")
    sig = tmp_path / "model.sig"
    signed = expect_ok(sign_keyless(sigstore, tmp_path, model, sig, "--format", fmt))
    assert f"keyless {PUBLISHER} from {sigstore.issuer}" in signed.out, signed.report("summary")
    bundle = json.loads(sig.read_text())
    material = bundle["verificationMaterial"]
    assert set(material) >= {"certificate", "tlogEntries", "timestampVerificationData"}
    assert material["tlogEntries"][0]["inclusionProof"]["hashes"] is not None
    assert material["timestampVerificationData"]["rfc3161Timestamps"]
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    digests = statement["subject"][0]["digest"]
    assert ("blake3" in digests) == (fmt == "native") and "sha256" in digests

    result = expect_ok(verify_keyless(sigstore, model, sig, PUBLISHER, None, "--json"))
    report = json.loads(result.out)
    assert report["signer"]["identity"] == PUBLISHER
    assert report["signer"]["issuer"] == sigstore.issuer
    assert report["signer"]["logIndex"] == int(material["tlogEntries"][0]["logIndex"])
    assert report["format"] == fmt

    (model / "weights.bin").write_bytes(b"tampered")
    expect_refused(verify_keyless(sigstore, model, sig), words=["modified", "mismatch"])

    if fmt == "native":
        # Tenth attack review (a wrong yes on main): the keyless binding is signed as a
        # sha256 subject, so `verify-bundle` took a 65-byte file anyone can write (the
        # binding's preimage) for a signed artifact.
        root = bytes.fromhex(digests["blake3"])
        blob = tmp_path / "binding.bin"
        blob.write_bytes(b"modelseal.dev/keyless-binding/v1\0" + root)
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == digests["sha256"]
        out = mx("verify-bundle", blob, "--bundle", sig, "--identity", PUBLISHER, "--issuer",
                 sigstore.issuer, "--trusted-root", sigstore.trusted_root, "--json")
        assert out.code == 1, out.report("verify-bundle of the binding")
        assert json.loads(out.out)["error"]["kind"] == "binding-not-artifact", out.out
        # Eleventh attack review (a wrong yes on main): one unknown field in the unsigned
        # bundle JSON made modelseal's strict reader give up and skip the check.
        extra = edited(sig, tmp_path / "extra.sig", lambda b: b.update(x=1))
        out = mx("verify-bundle", blob, "--bundle", extra, "--identity", PUBLISHER, "--issuer",
                 sigstore.issuer, "--trusted-root", sigstore.trusted_root, "--json")
        assert out.code == 1, out.report("verify-bundle of the binding, unknown field")
        assert json.loads(out.out)["error"]["kind"] == "binding-not-artifact", out.out
    else:
        # Eleventh attack review (a wrong yes on main): an OMS subject is a digest of the
        # files' digests, so a file holding them verified as a signed artifact.
        resources = statement["predicate"]["resources"]
        blob = tmp_path / "digests.bin"
        blob.write_bytes(b"".join(bytes.fromhex(r["digest"]) for r in resources))
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == digests["sha256"]
        out = mx("verify-bundle", blob, "--bundle", sig, "--identity", PUBLISHER, "--issuer",
                 sigstore.issuer, "--trusted-root", sigstore.trusted_root, "--json")
        assert out.code == 1, out.report("verify-bundle of the OMS subject")
        assert json.loads(out.out)["error"]["kind"] == "model-not-artifact", out.out


def test_model_signing_verifies_our_oms_keyless_bundles(sigstore, tmp_path):
    model = make_model(tmp_path / "model")
    sig = tmp_path / "model.sig"
    expect_ok(sign_keyless(sigstore, tmp_path, model, sig, "--format", "oms"))
    peer = [*MODEL_SIGNING, "verify", "sigstore", model, "--signature", sig,
            "--trust_config", sigstore.trust_config, "--identity_provider", sigstore.issuer]
    result = expect_ok(run([*peer, "--identity", PUBLISHER]))
    assert "Verification succeeded" in result.out + result.err, result.report("peer verdict")
    # The peer refuses a wrong identity too (it exits 0 and says so, as 1.1.1 does).
    result = run([*peer, "--identity", CURATOR])
    assert "Verification failed" in result.out + result.err, result.report("peer verdict")


# 2. --------------------------------------------------------------------------------


def test_wrong_identity_or_issuer_is_refused(sigstore, tmp_path):
    model = make_model(tmp_path / "model")
    sig = tmp_path / "model.sig"
    expect_ok(sign_keyless(sigstore, tmp_path, model, sig))
    expect_refused(verify_keyless(sigstore, model, sig, CURATOR), words=["does not match"])
    expect_refused(
        verify_keyless(sigstore, model, sig, PUBLISHER, "https://accounts.google.com"),
        words=["not among the trusted issuers"],
    )
    # The regex is anchored: a prefix of the identity does not pass.
    expect_refused(
        mx("verify", model, "--signature", sig, "--identity-regex", "release",
           "--issuer", sigstore.issuer, "--trusted-root", sigstore.trusted_root),
        words=["does not match"],
    )
    # Another instance's root does not vouch for this one's certificates.
    other = LocalSigstore(tmp_path / "other")
    try:
        expect_refused(
            mx("verify", model, "--signature", sig, "--identity", PUBLISHER,
               "--issuer", sigstore.issuer, "--trusted-root", other.trusted_root),
            words=["signature invalid"],
        )
    finally:
        other.close()


def test_swapped_or_missing_log_evidence_is_refused(sigstore, tmp_path):
    model = make_model(tmp_path / "model")
    other_model = make_model(tmp_path / "other", seed=1)
    sig, other_sig = tmp_path / "model.sig", tmp_path / "other.sig"
    expect_ok(sign_keyless(sigstore, tmp_path, model, sig))
    expect_ok(sign_keyless(sigstore, tmp_path, other_model, other_sig))
    theirs = json.loads(other_sig.read_text())["verificationMaterial"]

    def swap_entry(b):
        b["verificationMaterial"]["tlogEntries"] = copy.deepcopy(theirs["tlogEntries"])

    def drop_proof(b):
        del b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]

    def drop_entries(b):
        b["verificationMaterial"]["tlogEntries"] = []

    def swap_timestamp(b):
        b["verificationMaterial"]["timestampVerificationData"] = copy.deepcopy(
            theirs["timestampVerificationData"]
        )

    cases = [
        (swap_entry, ["log entry does not match the bundle"]),
        (drop_proof, ["must have an inclusion proof"]),
        (drop_entries, ["must have an inclusion proof"]),
        (swap_timestamp, ["timestamp message hash mismatch"]),
    ]
    for change, words in cases:
        bad = edited(sig, tmp_path / f"{change.__name__}.sig", change)
        expect_refused(verify_keyless(sigstore, model, bad), words=words)
    expect_ok(verify_keyless(sigstore, model, sig))


def test_a_log_time_outside_the_certificate_is_refused_before_writing(tmp_path):
    # This log stamps entries an hour ahead: the 10-minute Fulcio certificate has expired
    # by the log's account, so the bundle would not verify, and is not written.
    skewed = LocalSigstore(tmp_path / "skewed", "--strict", "--rekor-clock-offset", "3600")
    try:
        model = make_model(tmp_path / "model")
        sig = tmp_path / "model.sig"
        result = sign_keyless(skewed, tmp_path, model, sig)
        expect_refused(result, code=2, words=["does not verify against the trusted root"])
        assert not sig.exists(), "a bundle that does not verify was written"
    finally:
        skewed.close()


def test_a_token_the_issuer_did_not_sign_gets_no_certificate(sigstore, tmp_path):
    model = make_model(tmp_path / "model")
    header, claims, _ = sigstore.token(PUBLISHER).split(".")
    forged = tmp_path / "forged.jwt"
    forged.write_text(f"{header}.{claims}.{base64.urlsafe_b64encode(bytes(64)).decode().rstrip('=')}")
    result = mx("sign", model, *keyless_args(sigstore, forged))
    expect_refused(result, code=2, words=["token signature is not from this issuer"])
    assert not (tmp_path / "model.sig").exists()


def test_expired_token_is_refused_before_any_service_is_called(sigstore, tmp_path):
    model = make_model(tmp_path / "model")
    token = tmp_path / "old.jwt"
    token.write_text(sigstore.token(PUBLISHER, ttl="-60"))
    result = mx("sign", model, *keyless_args(sigstore, token))
    expect_refused(result, code=2, words=["expired"])
    assert not (tmp_path / "model.sig").exists()


def test_half_an_instance_is_refused_before_anything_is_sent(sigstore, tmp_path):
    # The local root with the public-good services (or the reverse) would publish the
    # signer's identity to a log the root does not vouch for.
    model = make_model(tmp_path / "model")
    token = sigstore.token_file(tmp_path / "t.jwt", PUBLISHER)
    for flags, words in (
        (["--trusted-root", sigstore.trusted_root], ["give its signing config too"]),
        (["--signing-config", sigstore.signing_config], ["give its trusted root too"]),
    ):
        result = mx("sign", model, "--keyless", "--identity-token-file", token, *flags)
        expect_refused(result, code=2, words=words)
        assert not (tmp_path / "model.sig").exists()


# 3. --------------------------------------------------------------------------------


def test_token_from_the_environment_and_from_github_actions(sigstore, tmp_path):
    model = make_model(tmp_path / "model")
    base = [
        "sign", model, "--force", "--keyless", "--signing-config", sigstore.signing_config,
        "--trusted-root", sigstore.trusted_root,
    ]
    clean = {k: v for k, v in os.environ.items()
             if k not in ("SIGSTORE_ID_TOKEN", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI")}

    env = dict(clean, SIGSTORE_ID_TOKEN=sigstore.token(CURATOR))
    result = expect_ok(run_env([str(a) for a in base], env))
    assert f"keyless {CURATOR}" in result.out, result.report("identity from SIGSTORE_ID_TOKEN")

    github = dict(
        clean,
        GITHUB_ACTIONS="true",
        ACTIONS_ID_TOKEN_REQUEST_URL=f"{sigstore.url}/oidc/github?sub={BUILDER}",
        ACTIONS_ID_TOKEN_REQUEST_TOKEN="request-token",
    )
    result = expect_ok(run_env([str(a) for a in base], github))
    assert f"keyless {BUILDER}" in result.out, result.report("identity from GitHub Actions")
    expect_ok(verify_keyless(sigstore, model, tmp_path / "model.sig", BUILDER))

    # Nothing at all: a clear error, not a hang waiting for a browser.
    result = run_env([str(a) for a in base], clean)
    expect_refused(result, code=2, words=["no identity token"])


def run_env(args, env) -> Result:
    """modelseal with exactly this environment (no inherited CI variables)."""
    cmd = [str(MODELSEAL), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    return Result(cmd, proc.returncode, proc.stdout, proc.stderr)


# 4. --------------------------------------------------------------------------------


def test_timestamped_certificate_signatures(sigstore, tmp_path):
    chains = CERTS / "chains"
    model = make_model(tmp_path / "model")
    tsa = f"{sigstore.url}/api/v1/timestamp"

    def sign(leaf, sig):
        return mx("sign", model, "--format", "oms", "--signature", sig,
                  "--key", chains / f"{leaf}.key", "--certificate", chains / f"{leaf}.pem",
                  "--certificate-chain", chains / "int.pem",
                  "--timestamp-url", tsa, "--trusted-root", sigstore.trusted_root)

    def verify(sig, *extra):
        return mx("verify", model, "--signature", sig,
                  "--certificate-root", chains / "root.pem", *extra)

    good, other = tmp_path / "good.sig", tmp_path / "other.sig"
    expect_ok(sign("leaf-ok", good))
    expect_ok(sign("leaf-eku-only", other))
    result = expect_ok(verify(good, "--trusted-root", sigstore.trusted_root, "--json"))
    assert json.loads(result.out)["signer"]["signedAt"] > 0

    # The authority must be one the verifier trusts: the public-good root is not this one.
    expect_refused(verify(good), words=["timestamp"])

    # A timestamp taken from another signature does not cover this one.
    theirs = json.loads(other.read_text())["verificationMaterial"]["timestampVerificationData"]
    moved = edited(good, tmp_path / "moved.sig",
                   lambda b: b["verificationMaterial"].update(timestampVerificationData=theirs))
    expect_refused(verify(moved, "--trusted-root", sigstore.trusted_root), words=["timestamp"])

    # An expired leaf timestamped now is still expired at the timestamped time.
    expired = tmp_path / "expired.sig"
    expect_ok(sign("leaf-expired", expired))
    expect_refused(verify(expired, "--trusted-root", sigstore.trusted_root), words=["not valid at"])


def short_lived_chain(directory: Path, seconds: int) -> tuple[Path, Path, Path]:
    """A root CA and a signing leaf valid for `seconds` from now (cryptography)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder().subject_name(name("short-root")).issuer_name(name("short-root"))
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, False, False, False), True)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder().subject_name(name("short-leaf")).issuer_name(name("short-root"))
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=1))
        .not_valid_after(now + datetime.timedelta(seconds=seconds))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
        .sign(root_key, hashes.SHA256())
    )
    paths = directory / "short-root.pem", directory / "short-leaf.pem", directory / "short-leaf.key"
    paths[0].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def test_a_certificate_expired_now_verifies_at_its_timestamped_signing_time(sigstore, tmp_path):
    import time

    root, leaf, key = short_lived_chain(tmp_path, seconds=4)
    model = make_model(tmp_path / "model")
    sig = tmp_path / "model.sig"
    expect_ok(mx("sign", model, "--format", "oms", "--signature", sig, "--key", key,
                 "--certificate", leaf, "--timestamp-url", f"{sigstore.url}/api/v1/timestamp",
                 "--trusted-root", sigstore.trusted_root))
    time.sleep(6)  # the leaf has expired
    verify = ["verify", model, "--certificate-root", root, "--trusted-root", sigstore.trusted_root]
    result = expect_ok(mx(*verify, "--signature", sig, "--json"))
    assert json.loads(result.out)["signer"]["certificate"] == "CN=short-leaf"
    # The same bundle without its timestamp is judged now: expired.
    bare = edited(sig, tmp_path / "bare.sig",
                  lambda b: b["verificationMaterial"].pop("timestampVerificationData"))
    expect_refused(mx(*verify, "--signature", bare), words=['"CN=short-leaf" was not valid at'])


# 5. --------------------------------------------------------------------------------


def policy_text(sigstore, builder_roles='["training-builder"]'):
    return f"""
max_depth = 4

[sigstore]
trusted_root = "{sigstore.trusted_root}"

[[signer]]
name = "release"
roles = ["model-publisher"]
identity = "{PUBLISHER}"
issuer = "{sigstore.issuer}"

[[signer]]
name = "curator"
roles = ["dataset-curator"]
identity = "{CURATOR}"
issuer = "{sigstore.issuer}"

[[signer]]
name = "trainer"
roles = {builder_roles}
identity_regex = 'https://github\\.com/example/trainer/\\.github/workflows/.*'
issuer = "{sigstore.issuer}"
"""


def test_lineage_with_keyless_signers(sigstore, tmp_path):
    data = make_model(tmp_path / "corpus", seed=3)
    model = make_model(tmp_path / "model", seed=4)
    data_sig, model_sig = tmp_path / "corpus.sig", tmp_path / "model.sig"
    expect_ok(sign_keyless(sigstore, tmp_path, data, data_sig, "--kind", "dataset", identity=CURATOR))
    expect_ok(sign_keyless(sigstore, tmp_path, model, model_sig))
    token = sigstore.token_file(tmp_path / "builder.jwt", BUILDER)
    provenance = tmp_path / "model.provenance.sig"
    expect_ok(mx("attest", "training", "--model", model, "--dataset", data,
                 "--builder-id", "https://ci.example.com/trainer", "--out", provenance,
                 *keyless_args(sigstore, token)))
    store = tmp_path / "store"
    expect_ok(mx("store", "add", store, data_sig, model_sig, provenance))
    # Filed under their BLAKE3 roots only: the keyless binding digest names no artifact.
    assert sorted(p.name for p in store.iterdir()) == ["blake3"]

    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text(sigstore))
    lineage = ["verify", model, "--signature", model_sig, "--policy", policy,
               "--lineage", "--store", store]
    result = expect_ok(mx(*lineage, "--json"))
    report = json.loads(result.out)
    assert report["signer"]["identity"] == PUBLISHER
    assert "trainer" in result.out and "curator" in result.out, result.report("signers named")

    # The builder's identity holds another role only: its provenance no longer counts.
    policy.write_text(policy_text(sigstore, '["dataset-curator"]'))
    expect_refused(mx(*lineage), words=["provenance", "training-builder", "no trusted"])


# 6. --------------------------------------------------------------------------------

VERIFIER = "verifier@example.com"


def serving_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed serving certificate for 127.0.0.1 (cryptography, from the venv)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


class Server:
    """`modelseal serve` on a free loopback port, asked through /v1/admit."""

    TOKEN = "keyless-admission-test-token"

    def __init__(self, directory: Path, policy: Path, store: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cert, key = serving_certificate(directory)
        (directory / "admit.token").write_text(self.TOKEN)
        config = directory / "serve.toml"
        config.write_text(
            f'listen = "127.0.0.1:{self.port}"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
            f'policy = "{policy}"\nstore = "{store}"\nadmit_token_file = "{directory / "admit.token"}"\n'
        )
        self.log = open(directory / "serve.log", "wb")
        self.process = subprocess.Popen([str(MODELSEAL), "serve", "--config", str(config)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        import ssl

        self.context = ssl.create_default_context(cafile=str(cert))
        import time
        import urllib.request

        for _ in range(100):
            try:
                urllib.request.urlopen(f"https://127.0.0.1:{self.port}/healthz",
                                       context=self.context, timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError((directory / "serve.log").read_text())

    def admit(self, digest: str) -> dict:
        import urllib.request

        request = urllib.request.Request(
            f"https://127.0.0.1:{self.port}/v1/admit",
            data=json.dumps({"digest": digest}).encode(),
            headers={"Authorization": f"Bearer {self.TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def test_admission_and_summaries_with_keyless_signers(sigstore, tmp_path):
    data = make_model(tmp_path / "corpus", seed=5)
    model = make_model(tmp_path / "model", seed=6)
    rogue = make_model(tmp_path / "rogue", seed=7)
    sigs = {name: tmp_path / f"{name}.sig" for name in ("corpus", "model", "rogue")}
    expect_ok(sign_keyless(sigstore, tmp_path, data, sigs["corpus"], "--kind", "dataset", identity=CURATOR))
    expect_ok(sign_keyless(sigstore, tmp_path, model, sigs["model"]))
    # Signed keylessly, by an identity the policy does not name.
    expect_ok(sign_keyless(sigstore, tmp_path, rogue, sigs["rogue"], identity="eve@example.com"))
    token = sigstore.token_file(tmp_path / "builder.jwt", BUILDER)
    provenance = tmp_path / "model.provenance.sig"
    expect_ok(mx("attest", "training", "--model", model, "--dataset", data,
                 "--builder-id", "https://ci.example.com/trainer", "--out", provenance,
                 *keyless_args(sigstore, token)))
    store = tmp_path / "store"
    expect_ok(mx("store", "add", store, *sigs.values(), provenance))
    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text(sigstore) + f"""
[[signer]]
name = "summaries"
roles = ["verifier"]
identity = "{VERIFIER}"
issuer = "{sigstore.issuer}"

[vsa]
accept = true
""")
    digest = lambda m: mx("hash", m).out.split()[0]  # noqa: E731

    # A keyless verification summary, by the verifier's identity.
    vsa = tmp_path / "model.vsa.sig"
    vsa_token = sigstore.token_file(tmp_path / "verifier.jwt", VERIFIER)
    result = expect_ok(mx("verify", model, "--signature", sigs["model"], "--policy", policy,
                          "--lineage", "--store", store, "--emit-vsa", vsa, "--vsa-keyless",
                          "--vsa-identity-token-file", vsa_token,
                          "--vsa-signing-config", sigstore.signing_config))
    assert f"keyless {VERIFIER}" in result.out, result.report("summary signer")

    served = tmp_path / "served"
    served.mkdir()
    server = Server(served, policy, store)
    try:
        decision = server.admit(digest(model))
        assert decision["allowed"], decision
        decision = server.admit(digest(rogue))
        assert not decision["allowed"], decision
    finally:
        server.close()

    # Only the model's signature and the summary: the summary stands in for the lineage
    # (without it, the same store is refused for want of a provenance).
    for with_summary in (False, True):
        summary_store = tmp_path / f"summary-store-{with_summary}"
        expect_ok(mx("store", "add", summary_store, sigs["model"], *([vsa] if with_summary else [])))
        served2 = tmp_path / f"served-{with_summary}"
        served2.mkdir()
        server = Server(served2, policy, summary_store)
        try:
            decision = server.admit(digest(model))
            assert decision["allowed"] == with_summary, decision
        finally:
            server.close()


def test_verify_bundle_names_the_statement_and_type_narrows_it(sigstore, tmp_path):
    """Fourteenth attack review: verify-bundle passed a DSSE bundle of any predicate about
    the artifact (a summary recording FAILED) without saying which. It now reports the
    signed predicate type, and --type requires one."""
    import hashlib

    from sigstore.dsse import StatementBuilder, Subject
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(os.urandom(100))
    ctx = SigningContext.from_trust_config(ClientTrustConfig.from_json(sigstore.trust_config.read_text()))
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    vsa_type = "https://slsa.dev/verification_summary/v1"
    statement = (
        StatementBuilder()
        .subjects([Subject(name="artifact.bin", digest={"sha256": digest})])
        .predicate_type(vsa_type)
        .predicate({"verificationResult": "FAILED", "verifier": {"id": "https://ci.example/v"}})
        .build()
    )
    with ctx.signer(IdentityToken(sigstore.token(PUBLISHER))) as signer:
        bundle = tmp_path / "vsa.json"
        bundle.write_text(signer.sign_dsse(statement).to_json())
    base = ("verify-bundle", artifact, "--bundle", bundle, "--identity", PUBLISHER, "--issuer",
            sigstore.issuer, "--trusted-root", sigstore.trusted_root)
    out = mx(*base, "--json")
    assert out.code == 0, out.report("verify-bundle of a summary")
    assert json.loads(out.out)["predicateType"] == vsa_type
    out = mx(*base, "--type", "https://slsa.dev/provenance/v1", "--json")
    assert out.code == 1, out.report("verify-bundle --type of another predicate")
    assert json.loads(out.out)["error"]["kind"] == "wrong-predicate-type"
    out = mx(*base, "--type", vsa_type)
    assert out.code == 0, out.report("verify-bundle --type of its predicate")
    assert f"statement {vsa_type}" in out.out
