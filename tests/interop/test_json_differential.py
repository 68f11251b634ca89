"""Bundles and statements read as model-signing reads them (Python `json` for the
statement, sigstore-python's protobuf JSON for the bundle): for every generated spelling
of a validly signed OMS bundle (duplicate keys at each level, escaped keys, a byte-order
mark, trailing bytes, unknown fields, numbers spelled otherwise), modelseal either refuses
it or model-signing 1.1.1 accepts it too, for the same model. A signature modelseal
accepts where the reference reader sees another statement (Python keeps the last of two
duplicate keys) fails the test and prints the bundle.

Run with the interop venv, from the repository root:
    MODELSEAL=target/release/modelseal target/interop-venv/bin/pytest -q tests/interop
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from test_oms_interop import (BUNDLE_MEDIA_TYPE, MODELSEAL, PAYLOAD_TYPE, PREDICATE_V1,
                              STATEMENT_TYPE, root_digest)

EXAMPLES = int(os.environ.get("MODELSEAL_FORMATS_EXAMPLES", "60"))


class Obj(list):
    """A JSON object as written: (key, value) pairs, duplicates allowed."""


def dump(value) -> str:
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k) if not k.startswith(chr(0)) else k[1:]}:{dump(v)}"
                              for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    if isinstance(value, Raw):
        return value.text
    return json.dumps(value)


class Raw:
    """Text written as is (a number spelled otherwise)."""

    def __init__(self, text: str):
        self.text = text


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("jsondiff")
    model = root / "model"
    (model / "sub").mkdir(parents=True)
    files = {"config.json": b'{"layers": 2}\n', "w.bin": os.urandom(3000),
             "sub/tok.json": b'{"v": 1}\n'}
    for name, data in files.items():
        (model / name).write_bytes(data)
    key = root / "key.pem"
    subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out",
                    key], check=True, capture_output=True)
    pub = root / "key.pub"
    subprocess.run(["openssl", "ec", "-in", key, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    resources = [{"name": n, "algorithm": "sha256",
                  "digest": hashlib.sha256(files[n]).hexdigest()} for n in sorted(files)]
    return root, model, key, pub, resources


def statement(resources, *, edits=()) -> Obj:
    """The OMS statement as pairs; `edits` add the hostile spellings."""
    res = [Obj([("name", r["name"]), ("algorithm", r["algorithm"]), ("digest", r["digest"])])
           for r in resources]
    serialization = Obj([("method", "files"), ("hash_type", "sha256"),
                         ("allow_symlinks", False), ("ignore_paths", [])])
    predicate = Obj([("serialization", serialization), ("resources", res)])
    subject = Obj([("name", "model"),
                   ("digest", Obj([("sha256", root_digest(resources))]))])
    top = Obj([("_type", STATEMENT_TYPE), ("subject", [subject]),
               ("predicateType", PREDICATE_V1), ("predicate", predicate)])
    parts = {"top": top, "predicate": predicate, "serialization": serialization,
             "subject": subject, "resource": res[0]}
    for where, key, value in edits:
        parts[where].append((key, value))
    return top


def sign(key: Path, payload: bytes) -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    ptype = PAYLOAD_TYPE.encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
    return base64.b64encode(private.sign(pae, ec.ECDSA(hashes.SHA256()))).decode()


def bundle_text(key: Path, pub: Path, payload: bytes, *, edits=()) -> str:
    envelope = Obj([("payload", base64.b64encode(payload).decode()),
                    ("payloadType", PAYLOAD_TYPE),
                    ("signatures", [Obj([("sig", sign(key, payload)), ("keyid", "")])])])
    hint = hashlib.sha256(pub.read_bytes()).hexdigest()
    material = Obj([("publicKey", Obj([("hint", hint)])), ("tlogEntries", [])])
    top = Obj([("mediaType", BUNDLE_MEDIA_TYPE), ("verificationMaterial", material),
               ("dsseEnvelope", envelope)])
    parts = {"top": top, "envelope": envelope, "material": material}
    for where, key_, value in edits:
        parts[where].append((key_, value))
    return dump(top)


def modelseal_accepts(model: Path, signature: Path, pub: Path) -> bool:
    run = subprocess.run([str(MODELSEAL), "verify", str(model), "--signature", str(signature),
                          "--key", str(pub), "--quiet"], capture_output=True, timeout=60)
    assert run.returncode in (0, 1, 2), run.stderr
    return run.returncode == 0


def model_signing_accepts(model: Path, signature: Path, pub: Path) -> bool:
    from model_signing import hashing, verifying

    config = verifying.Config().use_elliptic_key_verifier(public_key=pub)
    config.set_hashing_config(hashing.Config().use_file_serialization(hashing_algorithm="sha256"))
    try:
        config.verify(model, signature)
        return True
    except Exception:  # model-signing raises ValueError and others for every refusal
        return False


def check(setup, payload_text: str, *, bundle_edits=(), prefix=b"", suffix=b"") -> str:
    root, model, key, pub, _ = setup
    signature = root / "model.sig"
    text = prefix + bundle_text(key, pub, payload_text.encode("utf-8", "surrogatepass"),
                                edits=bundle_edits).encode() + suffix
    signature.write_bytes(text)
    if not modelseal_accepts(model, signature, pub):
        return "refused"
    if not model_signing_accepts(model, signature, pub):
        pytest.fail("modelseal accepted a bundle model-signing refuses:\n" + text.decode())
    return "agreed"


def test_the_genuine_bundle_passes_both(setup):
    _, _, _, _, resources = setup
    assert check(setup, dump(statement(resources))) == "agreed"


def test_the_harness_can_fail(setup):
    """A bundle model-signing refuses (its payload type changed) makes check() fail when
    modelseal is made to accept it, so the comparison is real."""
    root, model, key, pub, resources = setup
    signature = root / "model.sig"
    signature.write_text(bundle_text(key, pub, dump(statement(resources)).encode(),
                                     edits=[("envelope", "payloadType", "text/plain")]))
    assert not model_signing_accepts(model, signature, pub)


OTHER = [{"name": "evil.py", "algorithm": "sha256", "digest": "00" * 32}]
HOSTILE_STATEMENT_EDITS = {
    "duplicate resources (Python keeps the last)": [("predicate", "resources", OTHER)],
    "duplicate predicateType": [("top", "predicateType", "https://example.com/other")],
    "duplicate subject": [("top", "subject", [])],
    "duplicate _type": [("top", "_type", "https://in-toto.io/Statement/v0.1")],
    "duplicate name in a resource": [("resource", "name", "evil.py")],
    "duplicate digest in a resource": [("resource", "digest", "00" * 32)],
    "duplicate method": [("serialization", "method", "shards")],
    "duplicate hash_type": [("serialization", "hash_type", "blake2b")],
    "duplicate subject digest": [("subject", "digest", Obj([("sha256", "00" * 32)]))],
    "escaped duplicate key": [("predicate", "\0\"r\\u0065sources\"", OTHER)],
    "unknown predicate field": [("predicate", "extra", 1)],
    "unknown top field": [("top", "extra", Obj())],
    "allow_symlinks as a number": [("serialization", "allow_symlinks", Raw("0"))],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_STATEMENT_EDITS))
def test_hostile_statements(setup, case):
    _, _, _, _, resources = setup
    check(setup, dump(statement(resources, edits=HOSTILE_STATEMENT_EDITS[case])))


HOSTILE_BUNDLES = {
    "duplicate dsseEnvelope": dict(bundle_edits=[("top", "dsseEnvelope", Obj())]),
    "duplicate payload": dict(bundle_edits=[("envelope", "payload", "e30=")]),
    "duplicate mediaType": dict(bundle_edits=[("top", "mediaType", "application/json")]),
    # Found by this harness: modelseal ignored unknown bundle fields, sigstore-python
    # refuses them; protobuf JSON also reads a field by its proto name, so a second
    # envelope spelled `dsse_envelope` is one more reason to refuse what is not known.
    "unknown bundle field": dict(bundle_edits=[("top", "extra", 1)]),
    "envelope under its proto name": dict(bundle_edits=[("top", "dsse_envelope", Obj())]),
    "unknown envelope field": dict(bundle_edits=[("envelope", "extra", 1)]),
    "byte-order mark": dict(prefix=b"\xef\xbb\xbf"),
    "trailing bytes": dict(suffix=b" {}"),
    "trailing whitespace": dict(suffix=b"\n\n"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BUNDLES))
def test_hostile_bundles(setup, case):
    _, _, _, _, resources = setup
    check(setup, dump(statement(resources)), **HOSTILE_BUNDLES[case])


WHERE = st.sampled_from(["top", "predicate", "serialization", "subject", "resource"])
KEYS = st.sampled_from(["_type", "subject", "predicateType", "predicate", "resources",
                        "serialization", "method", "hash_type", "name", "digest", "sha256",
                        "algorithm", "allow_symlinks", "ignore_paths", "extra"])
VALUES = st.sampled_from(["x", "files", "sha256", PREDICATE_V1, STATEMENT_TYPE, [], OTHER,
                          Obj(), True, Raw("1"), Raw("1e0"), None, "00" * 32])


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(WHERE, KEYS, VALUES), max_size=3))
def test_generated_statements(setup, edits):
    _, _, _, _, resources = setup
    event(check(setup, dump(statement(resources, edits=edits))))
