"""`sign --from-digests LIST --format oms`: a model signed from a `sha256sum` list, reading
no file.

- GNU coreutils' `sha256sum` writes the lists and `sha256sum --check --strict` is the
  reference reader: each list, and many lists mutated from it, must be read as it reads
  them (the same files, the same digests) or refused.
- model-signing (the peer) verifies the directory against the signature.
"""

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("MODELSEAL", str(ROOT / "target/release/modelseal"))
KEY = ROOT / "testdata/keys/ec-p256.priv.pem"
PUB = ROOT / "testdata/keys/ec-p256.pub.pem"
PEER = Path(sys.executable).parent / "model_signing"

NAMES = [
    "model.safetensors",
    "config.json",
    "sub dir/tok en.json",
    "-leading-dash",
    "ünïcode/ψ.bin",
    "new\nline.txt",
    " leading space",
]


def ms(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=120)


def make_model(folder: Path) -> Path:
    rng = random.Random(29)
    for name in NAMES:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 3000))))
    return folder


def gnu_list(model: Path, prefix: str = "./", binary: bool = False) -> bytes:
    names = sorted(str(p.relative_to(model)) for p in model.rglob("*") if p.is_file())
    flags = ["-b"] if binary else []
    return subprocess.run(
        ["sha256sum", *flags, "--", *(prefix + n for n in names)],
        cwd=model, capture_output=True, check=True,
    ).stdout


def gnu_check(model: Path, listing: bytes) -> bool:
    return subprocess.run(
        ["sha256sum", "--check", "--strict", "--quiet", "-"],
        cwd=model, input=listing, capture_output=True,
    ).returncode == 0


def signed_resources(sig: Path) -> dict:
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}


def real_digests(model: Path, names) -> dict:
    return {n: hashlib.sha256((model / n).read_bytes()).hexdigest() for n in names}


def sign_list(model: Path, listing: bytes, tmp: Path, tag: str):
    path = tmp / f"{tag}.sha256"
    path.write_bytes(listing)
    sig = tmp / f"{tag}.sig"
    out = ms("sign", model, "--format", "oms", "--from-digests", path, "--key", KEY,
             "--signature", sig, "--force", "-q")
    return out, sig


def test_lists_gnu_writes_are_read_as_gnu_reads_them_and_verify_with_model_signing(tmp_path):
    model = make_model(tmp_path / "model")
    for prefix, binary in [("./", False), ("", True), ("", False)]:
        listing = gnu_list(model, prefix, binary)
        assert gnu_check(model, listing)
        out, sig = sign_list(model, listing, tmp_path, "list")
        assert out.returncode == 0, out.stderr
        resources = signed_resources(sig)
        assert resources == real_digests(model, NAMES)
    # The peer verifies the directory, reading the bytes; so does modelseal.
    peer = subprocess.run(
        [str(PEER), "verify", "key", str(model), "--signature", str(sig), "--public_key", str(PUB)],
        capture_output=True, text=True, timeout=300,
    )
    assert peer.returncode == 0, peer.stdout + peer.stderr
    assert ms("verify", model, "--key", PUB, "--signature", sig).returncode == 0
    # A listed digest the bytes do not have is signed as listed, and found at verify.
    with open(model / "config.json", "ab") as f:
        f.write(b" ")
    out = ms("verify", model, "--key", PUB, "--signature", sig)
    assert out.returncode == 1 and "config.json" in out.stderr, out.stderr


def mutations(listing: bytes, rng: random.Random):
    """Small edits of a valid list, of the kinds hand-edited or foreign lists have."""
    lines = listing.split(b"\n")
    edits = [
        lambda b: b.replace(b"  ", b" ", 1),
        lambda b: b.replace(b"  ", b"\t", 1),
        lambda b: b.replace(b"  ", b"   ", 1),
        lambda b: b.replace(b"\n", b"\r\n"),
        lambda b: b.upper(),
        lambda b: b[:64].upper() + b[64:],
        lambda b: b.replace(b"  ./", b"  .//", 1),
        lambda b: b.replace(b"  ./", b"  ././", 1),
        lambda b: b.rstrip(b"\n"),
        lambda b: b + b"\n",
        lambda b: b"\n" + b,
        lambda b: b"# comment\n" + b,
        lambda b: b.replace(b"  ", b" *", 1),
        lambda b: b"\n".join(lines[:2] + lines[:1] + lines[2:]),
        lambda b: b[1:],
        lambda b: b.replace(b"\\n", b"\\t", 1),
        lambda b: b.replace(b"./", b"../", 1),
        lambda b: b.replace(b"  ./", b"  /", 1),
        lambda b: b"\\" + b,
    ]
    for edit in edits:
        yield edit(listing)
    for _ in range(40):
        data = bytearray(listing)
        for _ in range(rng.randrange(1, 3)):
            i = rng.randrange(len(data))
            data[i] = rng.choice(b" *\\\t\r\n./0aFx")
        yield bytes(data)


def test_mutated_lists_are_read_as_gnu_reads_them_or_refused(tmp_path):
    model = make_model(tmp_path / "model")
    rng = random.Random(568)
    base = gnu_list(model)
    accepted = 0
    for index, listing in enumerate(mutations(base, rng)):
        out, sig = sign_list(model, listing, tmp_path, f"m{index}")
        if out.returncode != 0:
            assert out.returncode == 2, out.stderr
            assert "--from-digests" in out.stderr and "panicked" not in out.stderr, out.stderr
            continue
        # Accepted: sha256sum, reading the same list, must find the disk as modelseal's
        # reading of it says (every named file there with the digest signed), and not
        # otherwise (a file name read with a leading space, a digest with a changed digit).
        resources = signed_resources(sig)
        named_files_exist = all((model / n).is_file() for n in resources)
        as_signed = named_files_exist and resources == real_digests(model, resources)
        assert gnu_check(model, listing) == as_signed, listing
        accepted += as_signed
    assert accepted >= 3, "the mutations never produced a list both readers take"
