"""Key files read as OpenSSL reads them: for every generated variant of a PEM public or
private key (labels, extra text and blocks, line ends, base64 spellings, DER encodings
of the same key and of other keys), modelseal either refuses the file or reads the very
key `openssl pkey` reads (the same SubjectPublicKeyInfo). Any disagreement fails and
prints the file."""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
KEY_INFO = os.environ.get("MODELSEAL_KEY_INFO",
                          str(REPO / "target" / "release" / "examples" / "key_info"))
EXAMPLES = int(os.environ.get("MODELSEAL_FORMATS_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
ALGORITHMS = {
    "ed25519": ["-algorithm", "ed25519"],
    "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
}


def openssl(*args: str, data: bytes = b"") -> bytes:
    run = subprocess.run(["openssl", *args], input=data, capture_output=True)
    if run.returncode != 0:
        raise ValueError(run.stderr.decode(errors="replace")[:200])
    return run.stdout


@pytest.fixture(scope="module")
def keys():
    """For each algorithm, two keys: PEM and DER of private and public halves."""
    out = {}
    for name, args in ALGORITHMS.items():
        for i in range(2):
            private = openssl("genpkey", *args)
            out[(name, i)] = {
                "private": private,
                "private_der": openssl("pkey", "-outform", "DER", data=private),
                "sec1": openssl("ec", "-outform", "PEM", data=private) if "p" in name[:1] else None,
                "public": openssl("pkey", "-pubout", data=private),
                "public_der": openssl("pkey", "-pubout", "-outform", "DER", data=private),
            }
    return out


def ours(kind: str, text: bytes):
    with tempfile.NamedTemporaryFile() as f:
        f.write(text)
        f.flush()
        run = subprocess.run([KEY_INFO, kind, f.name], capture_output=True, timeout=30)
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
    return bytes.fromhex(report["spki"]) if "spki" in report else None


def theirs(kind: str, text: bytes):
    args = ["pkey", "-pubout", "-outform", "DER"]
    if kind == "public":
        args.insert(1, "-pubin")
    try:
        return openssl(*args, "-passin", "pass:", data=text)
    except ValueError:
        return None


def check(kind: str, text: bytes) -> str:
    mine = ours(kind, text)
    if mine is None:
        return "refused"
    reference = theirs(kind, text)
    if reference != mine:
        pytest.fail(f"modelseal read a {kind} key file as {mine.hex()}, OpenSSL as "
                    f"{reference.hex() if reference else 'nothing (refused)'}:\n"
                    f"{base64.b64encode(text).decode()}")
    return "agreed"


def pem(label: bytes, der: bytes, width: int = 64, eol: bytes = b"\n") -> bytes:
    body = base64.b64encode(der)
    lines = [body[i:i + width] for i in range(0, len(body), width)]
    return b"-----BEGIN " + label + b"-----" + eol + eol.join(lines) + eol + \
        b"-----END " + label + b"-----" + eol


@st.composite
def a_key_file(draw, keys):
    name = draw(st.sampled_from(["ed25519", "p256", "p384"] * 3 + ["rsa"]))
    key, other = keys[(name, 0)], keys[(name, 1)]
    kind = draw(st.sampled_from(["public", "private"]))
    der = key["public_der"] if kind == "public" else key["private_der"]
    other_der = other["public_der"] if kind == "public" else other["private_der"]
    right = b"PUBLIC KEY" if kind == "public" else b"PRIVATE KEY"
    label = draw(st.sampled_from([right] * 10 + [b"PUBLIC KEY", b"PRIVATE KEY",
                                                 b"EC PRIVATE KEY", b"RSA PUBLIC KEY",
                                                 b"EC PUBLIC KEY", b"CERTIFICATE"]))
    # The DER: as is, with bytes after it, a length spelled long, or a byte changed.
    change = draw(st.sampled_from(["none"] * 4 + ["trailing", "long-length", "flip", "cut"]))
    if change == "trailing":
        der = der + draw(st.sampled_from([b"\0", b"\x05\x00", der]))
    elif change == "long-length" and len(der) < 256 and der[1] < 0x80:
        der = der[:1] + b"\x81" + der[1:2] + der[2:]
    elif change == "flip":
        at = draw(st.integers(0, len(der) - 1))
        der = der[:at] + bytes([draw(st.integers(0, 255))]) + der[at + 1:]
    elif change == "cut":
        der = der[:draw(st.integers(1, len(der) - 1))]
    text = pem(label, der, width=draw(st.sampled_from([64] * 6 + [76, 16, 1000])),
               eol=draw(st.sampled_from([b"\n", b"\n", b"\r\n"])))
    # Around it: nothing, text, another key's block, headers, spaces.
    around = draw(st.sampled_from(["none"] * 5 + ["before", "after", "second-block",
                                   "first-block", "headers", "indent", "no-newline"]))
    if around == "before":
        text = b"a comment line\n" + text
    elif around == "after":
        text = text + b"trailing text\n"
    elif around == "second-block":
        text = text + pem(label, other_der)
    elif around == "first-block":
        text = pem(label, other_der) + text
    elif around == "headers":
        first, rest = text.split(b"\n", 1)
        text = first + b"\nProc-Type: 4,ENCRYPTED\n\n" + rest
    elif around == "indent":
        text = b"\n".join(b"  " + line for line in text.split(b"\n"))
    elif around == "no-newline":
        text = text.rstrip(b"\r\n")
    return kind, text


def test_the_genuine_files_agree(keys):
    for (name, _), key in keys.items():
        if name == "rsa":
            continue  # modelseal signs with Ed25519 and ECDSA only; RSA keys are refused
        assert check("public", key["public"]) == "agreed", name
        assert check("private", key["private"]) == "agreed", name
        if key["sec1"]:
            assert check("private", key["sec1"]) == "agreed", name


def test_a_private_key_carrying_another_public_key(keys):
    """Found by this harness: modelseal derived the public key from a SEC1 private key
    and ignored the one the file carries, which is the one OpenSSL reports (and hands
    out with `pkey -pubout`). Each checked as PKCS#8 and as SEC1, P-256 and P-384."""
    for name, point in (("p256", 65), ("p384", 97)):
        key, other = keys[(name, 0)], keys[(name, 1)]
        foreign = other["public_der"][-point:]
        sec1_der = openssl("ec", "-outform", "DER", data=key["private"])
        for label, der in ((b"EC PRIVATE KEY", sec1_der), (b"PRIVATE KEY", key["private_der"])):
            assert der[-point:] == key["public_der"][-point:], "the point ends the DER"
            check("private", pem(label, der[:-point] + foreign))


def test_the_harness_can_fail(keys):
    """A swapped key is caught: the harness compares the keys, not just exit codes."""
    key, other = keys[("p256", 0)], keys[("p256", 1)]
    assert ours("public", key["public"]) != ours("public", other["public"])
    assert theirs("public", key["public"]) == ours("public", key["public"])


@SETTINGS
@given(st.data())
def test_generated_key_files(keys, data):
    kind, text = data.draw(a_key_file(keys))
    event(check(kind, text))
