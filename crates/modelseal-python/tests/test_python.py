"""The Python package against real files written by the safetensors package (numpy)."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import modelseal

MODELSEAL = os.environ.get("MODELSEAL", "target/release/modelseal")
REPO = Path(__file__).resolve().parents[3]


def run(*args):
    exe = MODELSEAL if os.path.isabs(MODELSEAL) else str(REPO / MODELSEAL)
    result = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def signed(tmp_path):
    """A model directory with a safetensors file written by the safetensors package,
    signed with outboards, and a key pair."""
    model = tmp_path / "model"
    model.mkdir()
    rng = np.random.default_rng(7)
    tensors = {
        "embed.weight": rng.standard_normal((512, 256)).astype(np.float32),
        "norm.weight": np.arange(6, dtype=np.float16).reshape(2, 3),
        "positions": np.arange(10, dtype=np.int64),
        "mask": np.array([True, False, True]),
    }
    save_file(tensors, str(model / "model.safetensors"), metadata={"format": "np"})
    (model / "config.json").write_text(json.dumps({"layers": 2}))
    run("keygen", "--out", tmp_path / "key")
    run("sign", model, "--key", tmp_path / "key", "--outboard")
    return model, tmp_path / "model.sig", tmp_path / "key.pub", tensors


def test_verify_returns_what_was_verified(signed):
    model, sig, pub, _ = signed
    result = modelseal.verify(model, sig, key=pub)
    assert result["files"] == 2
    assert result["root"].startswith("blake3:")
    assert result["algorithm"] == "ed25519"


def test_verify_refuses_a_tampered_model(signed):
    model, sig, pub, _ = signed
    (model / "config.json").write_text(json.dumps({"layers": 3}))
    with pytest.raises(modelseal.VerificationError) as err:
        modelseal.verify(model, sig, key=pub)
    assert err.value.args[1] == "files-mismatch"
    assert "config.json" in err.value.args[0]


def test_safe_open_matches_the_safetensors_package(signed):
    model, sig, pub, tensors = signed
    with modelseal.safe_open(model / "model.safetensors", framework="numpy", signature=sig, key=pub) as f:
        assert sorted(f.keys()) == sorted(tensors)
        assert f.metadata() == {"format": "np"}
        for name, expected in tensors.items():
            got = f.get_tensor(name)
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError):
        f.keys()  # closed


def test_load_file_matches_the_safetensors_package(signed):
    from safetensors.numpy import load_file as plain_load
    model, sig, pub, _ = signed
    ours = modelseal.load_file(model / "model.safetensors", signature=sig, key=pub)
    theirs = plain_load(str(model / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_a_tampered_tensor_raises_only_when_read(signed):
    model, sig, pub, _ = signed
    path = model / "model.safetensors"
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + header_len])
    start, end = header["embed.weight"]["data_offsets"]
    data = bytearray(path.read_bytes())
    at = 8 + header_len + start + (end - start) // 2
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with modelseal.safe_open(path, signature=sig, key=pub) as f:
        np.testing.assert_array_equal(f.get_tensor("positions"), np.arange(10, dtype=np.int64))
        with pytest.raises(modelseal.VerificationError) as err:
            f.get_tensor("embed.weight")
        assert err.value.args[1] == "tampered"
        assert "model.safetensors: bytes at offset" in err.value.args[0]
    with pytest.raises(modelseal.VerificationError):
        modelseal.load_file(path, signature=sig, key=pub)


def test_signature_of_the_file_alone(signed, tmp_path):
    model, _, pub, tensors = signed
    file = model / "model.safetensors"
    run("sign", file, "--key", tmp_path / "key", "--signature", tmp_path / "file.sig")
    with modelseal.safe_open(file, signature=tmp_path / "file.sig", key=pub) as f:
        np.testing.assert_array_equal(f.get_tensor("mask"), tensors["mask"])


def test_a_nested_file_is_read_as_itself_never_as_a_copy_of_another(tmp_path):
    """Fifth attack review: with copies of every signed file laid out under 2_Dense/,
    safe_open of 2_Dense/model.safetensors verified 2_Dense/ as if it were the model and
    handed out the top-level weights under the nested name."""
    model = tmp_path / "pm"
    (model / "2_Dense").mkdir(parents=True)
    top = {"embed": np.arange(4, dtype=np.float32)}
    dense = {"dense": np.full(3, 7, dtype=np.int32)}
    save_file(top, str(model / "model.safetensors"))
    save_file(dense, str(model / "2_Dense" / "model.safetensors"))
    (model / "modules.json").write_text("[]")
    run("keygen", "--out", tmp_path / "key")
    run("sign", model, "--key", tmp_path / "key")
    sig, pub = tmp_path / "pm.sig", tmp_path / "key.pub"
    nested = model / "2_Dense" / "model.safetensors"
    # Untouched, the nested file is read as what it is.
    with modelseal.safe_open(nested, signature=sig, key=pub) as f:
        assert list(f.keys()) == ["dense"]
        np.testing.assert_array_equal(f.get_tensor("dense"), dense["dense"])
    # The copies: the model as a whole is refused, and so is the nested read.
    (model / "2_Dense" / "2_Dense").mkdir()
    (model / "2_Dense" / "2_Dense" / "model.safetensors").write_bytes(nested.read_bytes())
    (model / "2_Dense" / "modules.json").write_text("[]")
    nested.write_bytes((model / "model.safetensors").read_bytes())
    with pytest.raises(modelseal.VerificationError):
        modelseal.verify(model, sig, key=pub)
    with pytest.raises(modelseal.VerificationError):
        modelseal.safe_open(nested, signature=sig, key=pub)


def test_an_unsigned_file_beside_the_weights_is_refused_as_verify_refuses_it(signed):
    # A directory signature is never retried as a signature of the one file read.
    model, sig, pub, _ = signed
    (model / "evil.py").write_text("import os\n")
    with pytest.raises(modelseal.VerificationError) as err:
        modelseal.verify(model, sig, key=pub)
    assert err.value.args[1] == "files-mismatch"
    with pytest.raises(modelseal.VerificationError) as err:
        modelseal.safe_open(model / "model.safetensors", signature=sig, key=pub)
    assert err.value.args[1] == "files-mismatch"
    assert "evil.py" in err.value.args[0]
    with pytest.raises(modelseal.VerificationError):
        modelseal.load_file(model / "model.safetensors", signature=sig, key=pub)


def test_a_policy_applies_its_deny_rules_to_the_model(signed, tmp_path):
    model, sig, pub, _ = signed
    signer = f'[[signer]]\nname = "release"\nroles = ["model-publisher"]\nkey = "{pub}"\n'
    (tmp_path / "ok.toml").write_text(signer)
    assert modelseal.verify(model, sig, policy=tmp_path / "ok.toml")["files"] == 2
    (tmp_path / "deny.toml").write_text(signer + '[models]\ndeny = ["name:model"]\n')
    for call in (
        lambda: modelseal.verify(model, sig, policy=tmp_path / "deny.toml"),
        lambda: modelseal.safe_open(model / "model.safetensors", signature=sig,
                                    policy=tmp_path / "deny.toml"),
    ):
        with pytest.raises(modelseal.VerificationError) as err:
            call()
        assert err.value.args[1] == "denied"
        assert "name:model" in err.value.args[0]


def test_only_the_expected_model_is_accepted(signed):
    model, sig, pub, _ = signed
    root = modelseal.verify(model, sig, key=pub)["root"]
    assert modelseal.verify(model, sig, key=pub, expected=root)["root"] == root
    other = "blake3:" + "ab" * 32
    for call in (
        lambda: modelseal.verify(model, sig, key=pub, expected=other),
        lambda: modelseal.safe_open(model / "model.safetensors", signature=sig, key=pub,
                                    expected=other),
        lambda: modelseal.load_file(model / "model.safetensors", signature=sig, key=pub,
                                    expected=other),
    ):
        with pytest.raises(modelseal.VerificationError) as err:
            call()
        assert err.value.args[1] == "subject-mismatch"
    with modelseal.safe_open(model / "model.safetensors", signature=sig, key=pub,
                             expected=root) as f:
        assert "mask" in f.keys()
    with pytest.raises(ValueError):
        modelseal.verify(model, sig, key=pub, expected=root.upper())


def test_wrong_key_and_bad_arguments(signed, tmp_path):
    model, sig, _, _ = signed
    run("keygen", "--out", tmp_path / "other")
    with pytest.raises(modelseal.VerificationError) as err:
        modelseal.safe_open(model / "model.safetensors", signature=sig, key=tmp_path / "other.pub")
    assert err.value.args[1] == "untrusted-signer"
    with pytest.raises(ValueError):
        modelseal.verify(model, sig)
    with pytest.raises(ValueError):
        modelseal.safe_open(model / "model.safetensors", framework="jax", signature=sig, key=tmp_path / "other.pub")
    with pytest.raises(OSError):
        modelseal.verify(model, tmp_path / "absent.sig", key=tmp_path / "other.pub")


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory):
    """The local Sigstore instance of tests/sigstore-local (needs its `npm ci`)."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "sigstore-local"))
    from harness import LocalSigstore

    instance = LocalSigstore(tmp_path_factory.mktemp("sigstore"), "--strict")
    yield instance
    instance.close()


def test_keyless_signers_named_by_a_policy(signed, sigstore, tmp_path):
    """A model signed keylessly (Sigstore) verifies and loads through a policy that names
    the signer by identity and issuer; another identity, or no keyless signer, does not."""
    model, _, _, tensors = signed
    sig = tmp_path / "keyless.sig"
    token = sigstore.token_file(tmp_path / "token.jwt", "release@example.com")
    run("sign", model, "--signature", sig, "--outboard", "--keyless",
        "--identity-token-file", token, "--signing-config", sigstore.signing_config,
        "--trusted-root", sigstore.trusted_root)

    def policy(identity):
        path = tmp_path / f"{identity}.toml"
        path.write_text(
            f'[sigstore]\ntrusted_root = "{sigstore.trusted_root}"\n'
            f'[[signer]]\nname = "release"\nroles = ["model-publisher"]\n'
            f'identity = "{identity}"\nissuer = "{sigstore.issuer}"\n'
        )
        return path

    good = policy("release@example.com")
    result = modelseal.verify(model, sig, policy=good)
    assert result["files"] == 2
    with modelseal.safe_open(model / "model.safetensors", signature=sig, policy=good) as f:
        assert np.array_equal(f.get_tensor("embed.weight"), tensors["embed.weight"])

    for bad in (policy("eve@example.com"),):
        with pytest.raises(modelseal.VerificationError) as err:
            modelseal.verify(model, sig, policy=bad)
        assert err.value.args[1] == "identity-mismatch", err.value.args
        with pytest.raises(modelseal.VerificationError):
            modelseal.safe_open(model / "model.safetensors", signature=sig, policy=bad)


def test_co_signatures_meet_a_threshold_and_the_lazy_doors_refuse_short_of_it(signed, tmp_path):
    """A 2-of-2 policy: `verify` counts the signers of a list of signatures; a door that
    takes one signature (safe_open) refuses rather than count one signer as two."""
    model, sig, pub, _ = signed
    run("keygen", "--algorithm", "ml-dsa-65", "--out", tmp_path / "second")
    second = tmp_path / "model.second.sig"
    run("sign", model, "--key", tmp_path / "second", "--signature", second)
    policy = tmp_path / "two.toml"
    policy.write_text(
        '[[signer]]\nname = "first"\nroles = ["model-publisher"]\nkey = "key.pub"\n'
        '[[signer]]\nname = "second"\nroles = ["model-publisher"]\nkey = "second.pub"\n'
        '[roles.model-publisher]\nthreshold = "all"\n'
    )
    result = modelseal.verify(model, [sig, second], policy=policy)
    assert result["counted"] == ["first", "second"]
    assert result["threshold"] == 2
    assert len(result["signers"]) == 2
    for given in ([sig], [sig, sig], [second, second]):
        with pytest.raises(modelseal.VerificationError) as err:
            modelseal.verify(model, given, policy=policy)
        assert err.value.args[1] == "signers-missing", err.value.args
    with pytest.raises(modelseal.VerificationError) as err:
        modelseal.safe_open(model / "model.safetensors", signature=sig, policy=policy)
    assert err.value.args[1] == "signers-missing"


# The `modelseal` console script the wheel installs: the CLI, run in-process.

def console_script():
    import shutil
    import sys
    script = shutil.which("modelseal", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("no modelseal console script beside this Python (not installed as a wheel)")
    return script


def test_the_console_script_is_the_cli(tmp_path):
    cli = console_script()
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(100_000))

    def script(*args):
        return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=60)

    out = script("--version")
    assert out.returncode == 0 and out.stdout.startswith("modelseal 0.1.0 (commit "), out
    assert script("keygen", "--out", tmp_path / "key").returncode == 0
    assert script("sign", model, "--key", tmp_path / "key", "-q").returncode == 0
    out = script("verify", model, "--key", tmp_path / "key.pub", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    root = "blake3:" + report["root"]["blake3"]
    assert report["ok"] is True and root == script("hash", model).stdout.split()[0]
    # The library agrees with the script about the same files.
    verified = modelseal.verify(model, str(model) + ".sig", key=tmp_path / "key.pub")
    assert root in json.dumps(verified), verified
    with open(model / "weights.bin", "r+b") as f:
        f.write(b"\0")
    out = script("verify", model, "--key", tmp_path / "key.pub")
    assert out.returncode == 1 and "modified  weights.bin" in out.stderr, out
    out = script("verify", model, "--no-such-flag")
    assert out.returncode == 2 and "--no-such-flag" in out.stderr, out
    out = script("verify", tmp_path / "nothing", "--key", tmp_path / "key.pub", "--json")
    assert out.returncode == 2 and json.loads(out.stdout)["error"]["kind"], out
    # Output the script's Python would have buffered still arrives whole.
    out = script("completions", "bash")
    assert out.returncode == 0 and out.stdout.rstrip().endswith("fi"), out.stdout[-200:]


def test_ctrl_c_stops_the_console_script_while_rust_is_blocked(tmp_path):
    """Python only acts on SIGINT between bytecodes: a command blocked in Rust (here a
    registry that accepts and never answers) must still die at once, as the binary does."""
    import signal
    import socket
    import time
    cli = console_script()
    assert subprocess.run([cli, "keygen", "--out", tmp_path / "key"]).returncode == 0
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(30)
    port = server.getsockname()[1]
    child = subprocess.Popen(
        [cli, "pull", f"oci://127.0.0.1:{port}/m:1", tmp_path / "m", "--key", tmp_path / "key.pub"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        conn, _ = server.accept()  # the CLI is now waiting for an answer
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        child.wait(timeout=5)
        assert child.returncode == -signal.SIGINT, (child.returncode, child.stderr.read())
        conn.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        server.close()
