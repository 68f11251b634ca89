"""Certificate chains read as OpenSSL reads them. For every generated PKI (roots,
intermediates and a leaf with drawn keys, validity, basic constraints, key usages,
extended key usages, critical extensions, names, issuers, signature algorithms, byte
changes, orderings and extra certificates), modelseal either refuses the chain or
`openssl verify` accepts it too and modelseal's signing key is the leaf key OpenSSL
reads. modelseal may refuse more than OpenSSL does (it asks for a signing usage, DER
equal names and CA constraints on roots); it may never accept more. And for generated
PEM files, the certificates modelseal reads are those OpenSSL and pyca/cryptography
(model-signing's reader) read, or modelseal refuses the file."""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
CHAIN_CHECK = os.environ.get("MODELSEAL_CHAIN_CHECK",
                             str(REPO / "target" / "release" / "examples" / "chain_check"))
EXAMPLES = int(os.environ.get("MODELSEAL_FORMATS_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
NOW = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
ECDSA_SHA256 = bytes.fromhex("06082a8648ce3d040302")
ECDSA_SHA384 = bytes.fromhex("06082a8648ce3d040303")


@pytest.fixture(scope="module")
def keys():
    return {
        "p256": [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)],
        "p384": [ec.generate_private_key(ec.SECP384R1()) for _ in range(2)],
        "ed25519": [ed25519.Ed25519PrivateKey.generate() for _ in range(2)],
        "rsa": [rsa.generate_private_key(public_exponent=65537, key_size=2048)],
    }


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem_of(ders) -> bytes:
    out = b""
    for d in ders:
        body = base64.b64encode(d)
        out += b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(
            body[i:i + 64] for i in range(0, len(body), 64)) + b"\n-----END CERTIFICATE-----\n"
    return out


def make(subject: str, issuer: str, public, signer, profile: dict) -> bytes:
    """One certificate with the drawn profile (see `a_profile`), as DER."""
    start, end = profile["validity"]
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(public)
               .serial_number(profile.get("serial", 1))
               .not_valid_before(NOW + start * DAY)
               .not_valid_after(NOW + end * DAY))
    bc = profile["basic_constraints"]
    if bc is not None:
        ca, path_len = bc
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_len),
                                        critical=profile["bc_critical"])
    ku = profile["key_usage"]
    if ku is not None:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature="sign" in ku, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign="certs" in ku,
            crl_sign="certs" in ku, encipher_only=False, decipher_only=False), critical=True)
    eku = profile["eku"]
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if profile["unknown_critical"]:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            critical=True)
    if profile["name_constraints"]:
        builder = builder.add_extension(x509.NameConstraints(
            permitted_subtrees=[x509.DNSName("example.org")], excluded_subtrees=None),
            critical=profile["name_constraints"] == "critical")
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else profile["hash"]
    # Deterministic ECDSA (RFC 6979): the same draws make the same bytes, so hypothesis
    # can replay and shrink a failing case.
    ecdsa = isinstance(signer, ec.EllipticCurvePrivateKey)
    cert = builder.sign(signer, algorithm, ecdsa_deterministic=True if ecdsa else None)
    data = der(cert)
    if profile["outer_algorithm"] and isinstance(signer, ec.EllipticCurvePrivateKey):
        data = resign_outer(cert, signer)
    return data


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def resign_outer(cert: x509.Certificate, signer) -> bytes:
    """The same TBS, signed again with another hash and named so only outside it: the
    inner and outer signature algorithms disagree (RFC 5280 §4.1.1.2 says they must not)."""
    tbs = cert.tbs_certificate_bytes
    inner = cert.signature_hash_algorithm
    outer_hash = hashes.SHA384() if isinstance(inner, hashes.SHA256) else hashes.SHA256()
    oid = ECDSA_SHA384 if isinstance(outer_hash, hashes.SHA384) else ECDSA_SHA256
    signature = signer.sign(tbs, ec.ECDSA(outer_hash, deterministic_signing=True))
    algorithm = b"\x30" + der_len(len(oid)) + oid
    bits = b"\x03" + der_len(len(signature) + 1) + b"\x00" + signature
    body = tbs + algorithm + bits
    return b"\x30" + der_len(len(body)) + body


@st.composite
def a_profile(draw, role: str):
    ca = role != "leaf"
    return {
        "validity": draw(st.sampled_from([(-10, 10)] * 8 + [(-10, -1), (1, 10), (-10, 0),
                                                            (0, 10)])),
        "basic_constraints": draw(st.sampled_from(
            [(True, None)] * 6 + [(True, 0), (True, 1), (False, None), None]
            if ca else [None] * 6 + [(False, None), (True, None)])),
        "bc_critical": draw(st.booleans()),
        "key_usage": draw(st.sampled_from(
            ["certs"] * 5 + [None, "sign", "certs sign"] if ca
            else ["sign"] * 5 + [None, "certs", "certs sign"])),
        "eku": draw(st.sampled_from(
            [None] * 6 + [[ExtendedKeyUsageOID.CODE_SIGNING], [ExtendedKeyUsageOID.SERVER_AUTH],
                          [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]]
            if ca else [[ExtendedKeyUsageOID.CODE_SIGNING]] * 5 + [
                None, [ExtendedKeyUsageOID.SERVER_AUTH],
                [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]])),
        "unknown_critical": draw(st.sampled_from([False] * 12 + [True])),
        "name_constraints": ca and draw(st.sampled_from([False] * 12 + ["critical", "plain"])),
        "hash": draw(st.sampled_from([hashes.SHA256(), hashes.SHA256(), hashes.SHA384()])),
        "outer_algorithm": draw(st.sampled_from([False] * 12 + [True])),
        "serial": draw(st.integers(1, 2**63)),
    }


@st.composite
def a_pki(draw, keys):
    """(roots PEM, chain PEM: leaf first) for a drawn hierarchy and drawn mistakes."""
    depth = draw(st.integers(0, 2))
    pool = keys["p256"] + keys["p384"] + keys["ed25519"]
    ca_pool = pool + keys["rsa"]
    names = ["root"] + [f"inter{i}" for i in range(depth)] + ["leaf"]
    private = [draw(st.sampled_from(ca_pool)) for _ in names[:-1]] + [draw(st.sampled_from(pool))]
    ders = []
    for i, name in enumerate(names):
        role = "root" if i == 0 else "leaf" if i == len(names) - 1 else "inter"
        issuer = names[max(i - 1, 0)]
        signer = private[max(i - 1, 0)]
        mistake = draw(st.sampled_from(["none"] * 14 + ["issuer-name", "signer"]))
        if mistake == "issuer-name":
            issuer = draw(st.sampled_from([n for n in names if n != issuer]))
        elif mistake == "signer":
            signer = draw(st.sampled_from([k for k in ca_pool if k is not signer]))
        ders.append(make(name, issuer, private[i].public_key(), signer, draw(a_profile(role))))
    flip = draw(st.sampled_from([None] * 10 + list(range(len(ders)))))
    if flip is not None:
        # ECDSA signatures vary in length between runs: the place is drawn as a fraction.
        at = draw(st.integers(0, 2**16)) * len(ders[flip]) // (2**16 + 1)
        changed = bytearray(ders[flip])
        changed[at] ^= draw(st.integers(1, 255))
        ders[flip] = bytes(changed)
    root, chain = ders[0], [ders[-1]] + draw(st.permutations(ders[1:-1]))
    roots = [root]
    extra = draw(st.sampled_from(["none"] * 6 + ["root-in-chain", "leaf-as-root",
                                                 "inter-as-root", "leaf-twice"]))
    if extra == "root-in-chain":
        chain.append(root)
    elif extra == "leaf-as-root":
        roots = [ders[-1]]
    elif extra == "inter-as-root" and depth:
        roots = [ders[1]]
    elif extra == "leaf-twice":
        chain.append(ders[-1])
    return pem_of(roots), pem_of(chain)


def ours(roots: bytes, chain: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        r, c = Path(tmp, "roots.pem"), Path(tmp, "chain.pem")
        r.write_bytes(roots)
        c.write_bytes(chain)
        run = subprocess.run([CHAIN_CHECK, str(r), str(c), str(int(NOW.timestamp()))],
                             capture_output=True, timeout=30)
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
    return bytes.fromhex(report["spki"]) if "spki" in report else None


def split_pem(text: bytes):
    return [b"-----BEGIN CERTIFICATE-----" + block.split(b"-----END CERTIFICATE-----")[0]
            + b"-----END CERTIFICATE-----\n"
            for block in text.split(b"-----BEGIN CERTIFICATE-----")[1:]]


def theirs(roots: bytes, chain: bytes):
    """OpenSSL's verdict and its leaf key: `openssl verify` with the roots as trust
    anchors (a trusted certificate ends the path, as with modelseal) at the same time."""
    blocks = split_pem(chain)
    with tempfile.TemporaryDirectory() as tmp:
        r, leaf, rest = Path(tmp, "roots.pem"), Path(tmp, "leaf.pem"), Path(tmp, "rest.pem")
        r.write_bytes(roots)
        leaf.write_bytes(blocks[0])
        args = ["openssl", "verify", "-partial_chain", "-attime", str(int(NOW.timestamp())),
                "-CAfile", str(r)]
        if blocks[1:]:
            rest.write_bytes(b"".join(blocks[1:]))
            args += ["-untrusted", str(rest)]
        run = subprocess.run(args + [str(leaf)], capture_output=True, timeout=30)
        if run.returncode != 0:
            return None
        key = subprocess.run(["openssl", "x509", "-in", str(leaf), "-noout", "-pubkey"],
                             capture_output=True, check=True).stdout
        return subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=key,
                              capture_output=True, check=True).stdout


def check(roots: bytes, chain: bytes) -> str:
    mine = ours(roots, chain)
    reference = theirs(roots, chain)
    if mine is None:
        return "refused by both" if reference is None else "refused by modelseal only"
    if reference != mine:
        pytest.fail("modelseal accepted a chain with leaf key "
                    f"{mine.hex()}, OpenSSL {'refused it' if reference is None else 'read ' + reference.hex()}"
                    f":\nroots:\n{roots.decode()}\nchain:\n{chain.decode()}")
    return "accepted by both"


def a_genuine_pki(keys, depth=1, **changes):
    profiles = {
        "root": {"validity": (-10, 10), "basic_constraints": (True, None),
                 "bc_critical": True, "key_usage": "certs", "eku": None,
                 "unknown_critical": False, "name_constraints": False,
                 "hash": hashes.SHA256(), "outer_algorithm": False},
    }
    profiles["inter"] = dict(profiles["root"])
    profiles["leaf"] = dict(profiles["root"], basic_constraints=None, key_usage="sign",
                            eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    for role_key, value in changes.items():
        role, key = role_key.split("__")
        profiles[role] = dict(profiles[role], **{key: value})
    names = ["root"] + [f"inter{i}" for i in range(depth)] + ["leaf"]
    private = [keys["p256"][i % 4] for i in range(len(names))]
    ders = []
    for i, name in enumerate(names):
        role = "root" if i == 0 else "leaf" if i == len(names) - 1 else "inter"
        ders.append(make(name, names[max(i - 1, 0)], private[i].public_key(),
                         private[max(i - 1, 0)], profiles[role]))
    return pem_of([ders[0]]), pem_of([ders[-1]] + ders[1:-1])


def test_a_genuine_chain_is_accepted_by_both(keys):
    for depth in range(3):
        assert check(*a_genuine_pki(keys, depth)) == "accepted by both", depth


def test_signature_algorithm_named_only_outside_the_signed_part(keys):
    """Found by this harness: modelseal checked a certificate's signature with the outer
    algorithm alone, while OpenSSL refuses a certificate whose signed (inner) algorithm
    differs from it."""
    for role in ("leaf", "inter"):
        result = check(*a_genuine_pki(keys, **{f"{role}__outer_algorithm": True}))
        assert result == "refused by both", role


def test_name_constraints_even_when_not_critical(keys):
    """Eighth attack review: an intermediate with name constraints not marked critical
    was accepted by modelseal, which does not evaluate them, while OpenSSL enforces them
    and refuses a leaf outside them."""
    pki = a_genuine_pki(keys, inter__name_constraints="plain")
    assert ours(*pki) is None, "modelseal does not evaluate name constraints: it must refuse"
    check(*pki)


def test_the_harness_can_fail(keys):
    """Another leaf's key is caught: the keys are compared, not only the verdicts."""
    first, second = a_genuine_pki(keys), a_genuine_pki(keys, depth=0)
    assert ours(*first) is not None and ours(*first) == theirs(*first)
    assert ours(*first) != theirs(*second)


@SETTINGS
@given(st.data())
def test_generated_chains(keys, data):
    roots, chain = data.draw(a_pki(keys))
    event(check(roots, chain))


# PEM files of certificates: which certificates are in them.

def ours_pem(text: bytes):
    with tempfile.NamedTemporaryFile() as f:
        f.write(text)
        f.flush()
        run = subprocess.run([CHAIN_CHECK, "pem", f.name], capture_output=True, timeout=30)
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
    return [bytes.fromhex(c) for c in report["certificates"]] if "certificates" in report else None


def openssl_pem(text: bytes):
    """Every certificate OpenSSL's PEM reader finds, in order (`crl2pkcs7 -certfile`
    reads a file the way `-CAfile` and `-untrusted` do)."""
    run = subprocess.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", "/dev/stdin",
                          "-outform", "DER"], input=text, capture_output=True, timeout=30)
    if run.returncode != 0:
        return None
    certs = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-print_certs"],
                           input=run.stdout, capture_output=True, timeout=30)
    if certs.returncode != 0:
        return None
    return [base64.b64decode(b"".join(block.split(b"\n")[1:-2]))
            for block in split_pem(certs.stdout)]


def cryptography_pem(text: bytes):
    try:
        return [der(c) for c in x509.load_pem_x509_certificates(text)]
    except ValueError:
        return None


@st.composite
def a_pem_file(draw, keys):
    roots, chain = a_genuine_pki(keys, depth=draw(st.integers(0, 1)))
    blocks = split_pem(chain) + split_pem(roots)
    parts = []
    for block in draw(st.lists(st.sampled_from(blocks), min_size=1, max_size=3)):
        change = draw(st.sampled_from(["none"] * 6 + [
            "crlf", "label", "trusted", "x509-label", "headers", "bad-base64", "cut",
            "trailing-der", "no-end", "indent", "long-lines"]))
        if change == "crlf":
            block = block.replace(b"\n", b"\r\n")
        elif change in ("label", "trusted", "x509-label"):
            label = {"label": b"PUBLIC KEY", "trusted": b"TRUSTED CERTIFICATE",
                     "x509-label": b"X509 CERTIFICATE"}[change]
            block = block.replace(b"CERTIFICATE", label)
        elif change == "headers":
            first, rest = block.split(b"\n", 1)
            block = first + b"\nProc-Type: 4,ENCRYPTED\n\n" + rest
        elif change == "bad-base64":
            block = block[:40] + b"*" + block[41:]
        elif change == "cut":
            lines = block.split(b"\n")
            block = b"\n".join(lines[:1] + lines[2:])
        elif change == "trailing-der":
            body = base64.b64decode(b"".join(block.split(b"\n")[1:-2]))
            block = pem_of([body + b"\x00\x00"])
        elif change == "no-end":
            block = block.replace(b"-----END CERTIFICATE-----\n", b"")
        elif change == "indent":
            block = b"\n".join(b" " + line for line in block.split(b"\n"))
        elif change == "long-lines":
            body = base64.b64encode(base64.b64decode(b"".join(block.split(b"\n")[1:-2])))
            block = b"-----BEGIN CERTIFICATE-----\n" + body + b"\n-----END CERTIFICATE-----\n"
        parts.append(block)
        parts.append(draw(st.sampled_from([b"", b"", b"text between\n", b"\n\n"])))
    return b"".join(parts)


def check_pem(text: bytes) -> str:
    mine = ours_pem(text)
    if mine is None:
        return "refused"
    for name, reference in (("OpenSSL", openssl_pem(text)),
                            ("pyca/cryptography", cryptography_pem(text))):
        if reference != mine:
            pytest.fail(f"modelseal read {len(mine)} certificates from a PEM file, {name} "
                        f"{'refused it' if reference is None else f'read {len(reference)}'} "
                        f"or others:\n{text.decode(errors='replace')}")
    return "agreed"


def test_the_genuine_pem_files_agree(keys):
    roots, chain = a_genuine_pki(keys, depth=2)
    assert check_pem(chain) == "agreed"
    assert check_pem(roots + chain) == "agreed"


@SETTINGS
@given(st.data())
def test_generated_pem_files(keys, data):
    event(check_pem(data.draw(a_pem_file(keys))))
