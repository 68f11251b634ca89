"""Keyless (Sigstore) signing of a model in a registry, against the local Sigstore instance
(tests/sigstore-local) and the local registry: the bundle is attached as a referrer, found,
and verified offline against the instance's trusted root."""

import sys
from pathlib import Path

import pytest

import registry as r
from conftest import write_small_model
from test_oci_cli import ms

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/sigstore-local"))
from harness import LocalSigstore  # noqa: E402

PUBLISHER = "release@example.com"


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory):
    instance = LocalSigstore(tmp_path_factory.mktemp("sigstore"), "--strict")
    yield instance
    instance.close()


def test_a_model_in_a_registry_is_signed_keylessly_and_verified_offline(sigstore, tmp_path):
    with r.LocalRegistry(tmp_path / "registry") as reg:
        ca = ["--registry-ca", reg.ca_pem]
        r.push_modelpack(reg, "keyless/m", "v1", write_small_model(tmp_path / "m"), client="oras")
        ref = f"oci://{reg.host}/keyless/m:v1"
        token = sigstore.token_file(tmp_path / "token.jwt", PUBLISHER)
        out = ms("sign", ref, "--keyless", "--identity-token-file", token, "--signing-config",
                 sigstore.signing_config, "--trusted-root", sigstore.trusted_root, *ca, "-q")
        assert out.returncode == 0, out.stderr
        trust = ["--trusted-root", sigstore.trusted_root, "--issuer", sigstore.issuer]
        out = ms("verify", ref, "--identity", PUBLISHER, *trust, *ca, "-q")
        assert out.returncode == 0, out.stderr
        out = ms("verify", ref, "--identity", "someone@example.com", *trust, *ca, "-q")
        assert out.returncode == 1, out.stderr
        dest = tmp_path / "pulled"
        out = ms("pull", ref, dest, "--identity", PUBLISHER, *trust, *ca, "-q")
        assert out.returncode == 0, out.stderr
        out = ms("verify", dest, "--identity", PUBLISHER, *trust, "-q")
        assert out.returncode == 0, out.stderr
