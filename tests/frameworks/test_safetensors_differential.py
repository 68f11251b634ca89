"""modelseal reads a safetensors file as the `safetensors` package does, or refuses it
(issue 24, spec/loading.md §4).

Over generated files, valid and mutated the ways a signer could try to make two readers
disagree (a name given twice, a hole or trailing bytes in the data section, overlapping or
reordered tensors, a padded or prefixed header, bad metadata), each file is signed and
opened twice: through modelseal's verified `safe_open`, and through the package's own
`safe_open`, which every loader uses. Whenever modelseal hands out tensors, the package
must read the same names, dtypes, shapes and bytes. The cases both sides refuse and both
accept are counted, so the test fails if the generator stops reaching either."""

import json
import random
import struct

import numpy as np
import pytest
import safetensors

import modelseal
from conftest import run

DTYPES = {"U8": 1, "I16": 2, "F32": 4, "F64": 8, "I64": 8}


def tensors(rng):
    """A few tensors: (name, dtype, shape, bytes)."""
    out = []
    for i in range(rng.randint(1, 4)):
        dtype = rng.choice(list(DTYPES))
        shape = [rng.randint(1, 3) for _ in range(rng.randint(0, 2))]
        count = int(np.prod(shape)) if shape else 1
        out.append((f"t{i}", dtype, shape, rng.randbytes(count * DTYPES[dtype])))
    return out


def layout(items):
    """Header entries (as JSON text pieces) and the data section, tiled in order."""
    entries, data = [], b""
    for name, dtype, shape, raw in items:
        entries.append((name, {"dtype": dtype, "shape": shape,
                               "data_offsets": [len(data), len(data) + len(raw)]}))
        data += raw
    return entries, data


def text(entries, metadata=None):
    parts = [f"{json.dumps(n)}:{json.dumps(e)}" for n, e in entries]
    if metadata is not None:
        parts.insert(0, f'"__metadata__":{metadata}')
    return "{" + ",".join(parts) + "}"


def mutate(rng, entries, data):
    """One way to make readers disagree, or none; returns (header text, data, label)."""
    kind = rng.choice([
        "none", "none", "duplicate", "hole", "trailing", "short", "overlap", "reorder",
        "pad", "prefix-space", "metadata-number", "metadata-twice", "extra-field",
        "shape", "empty-with-data", "float-offset", "bom",
    ])
    entries = [(n, dict(e)) for n, e in entries]
    metadata = '{"format":"np"}' if rng.random() < 0.5 else None
    if kind == "duplicate" and entries:
        name, entry = entries[-1]
        entries.append((name, dict(entry)))
    elif kind == "hole" and len(entries) > 1:
        gap = rng.randint(1, 8)
        for _, e in entries[1:]:
            e["data_offsets"] = [o + gap for o in e["data_offsets"]]
        first_end = entries[0][1]["data_offsets"][1] - 0
        data = data[:first_end] + bytes(gap) + data[first_end:]
    elif kind == "trailing":
        data += b"\x00" * rng.randint(1, 16)
    elif kind == "short" and data:
        data = data[:-1]
    elif kind == "overlap" and len(entries) > 1:
        e = entries[1][1]
        e["data_offsets"] = [max(0, e["data_offsets"][0] - 1), e["data_offsets"][1] - 1]
    elif kind == "reorder":
        rng.shuffle(entries)
    elif kind == "pad":
        return text(entries, metadata) + " " * rng.randint(1, 7), data, kind
    elif kind == "prefix-space":
        return " " + text(entries, metadata), data, kind
    elif kind == "metadata-number":
        metadata = '{"n":1}'
    elif kind == "metadata-twice":
        return text(entries, '{"a":"1"},"__metadata__":{"a":"2"}'), data, kind
    elif kind == "extra-field" and entries:
        entries[0][1]["extra"] = 1
    elif kind == "shape" and entries:
        entries[0][1]["shape"] = entries[0][1]["shape"] + [2]
    elif kind == "empty-with-data":
        return "{}", data or b"\x01", kind
    elif kind == "float-offset" and entries:
        s = text(entries, metadata)
        return s.replace('"data_offsets": [0,', '"data_offsets": [0.0,', 1), data, kind
    elif kind == "bom":
        return "\ufeff" + text(entries, metadata), data, kind
    return text(entries, metadata), data, kind


def read_reference(path):
    out = {}
    with safetensors.safe_open(str(path), framework="numpy") as f:
        for name in f.keys():
            a = f.get_tensor(name)
            out[name] = (a.dtype.str, list(a.shape), a.tobytes())
    return out


def read_verified(path, signature, pub):
    out = {}
    with modelseal.safe_open(path, "numpy", signature=signature, key=pub) as f:
        for name in f.keys():
            a = f.get_tensor(name)
            out[name] = (a.dtype.str, list(a.shape), a.tobytes())
    return out


def test_modelseal_reads_what_safetensors_reads_or_refuses(tmp_path, keys):
    release, pub, _ = keys
    rng = random.Random(20261206)
    counts = {"both": 0, "neither": 0, "reference-only": 0}
    for i in range(160):
        header, data, kind = mutate(rng, *layout(tensors(rng)))
        model = tmp_path / f"m{i}"
        model.mkdir()
        path = model / "x.safetensors"
        raw = header.encode()
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
        run("sign", model, "--key", release, "-q")
        signature = tmp_path / f"m{i}.sig"
        try:
            ours = read_verified(path, signature, pub)
        except (modelseal.VerificationError, ValueError, KeyError, OSError):
            ours = None
        try:
            theirs = read_reference(path)
        except Exception:  # the package raises SafetensorError and others
            theirs = None
        if ours is not None:
            assert theirs == ours, f"case {i} ({kind}): {header!r}"
            counts["both"] += 1
        elif theirs is None:
            counts["neither"] += 1
        else:
            counts["reference-only"] += 1
    print(counts)
    assert counts["both"] >= 30 and counts["neither"] >= 30, counts
