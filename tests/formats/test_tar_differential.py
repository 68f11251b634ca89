"""Layers read as the real readers read them (spec/oci.md §4): for every generated layer
blob, modelseal's reader either refuses it or leaves exactly the files GNU tar, Python's
tarfile and Go's archive/tar (as runtimes apply layers) leave: same names, same bytes,
same count. Any disagreement fails and prints the blob (base64) to keep as a case.

Inputs: hand-written hostile cases (each dialect feature), then generated archives
(hypothesis) mixing those features at random, then random byte mutations of them.
MODELSEAL_FORMATS_EXAMPLES sets how many generated inputs each property runs."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import readers
from tarcraft import (BLOCK, Header, compress, end, entry, file_entry, kind_of,
                      long_name_entry, pax_entry, sparse_old_gnu)

EXAMPLES = int(os.environ.get("MODELSEAL_FORMATS_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def check(blob: bytes, kind: str) -> str:
    """The harness's one rule. Returns what happened, for the counts."""
    try:
        ours = readers.modelseal(blob, kind)
    except readers.Refused:
        return "refused"
    shown = base64.b64encode(blob).decode()
    for name, reader in readers.REFERENCES.items():
        try:
            theirs = reader(blob, kind)
        except readers.NotApplicable:
            continue
        except readers.Refused as e:
            pytest.fail(f"modelseal accepted a {kind} layer that {name} refuses ({e}); "
                        f"modelseal read {sorted(ours)}\nblob: {shown}")
        if theirs != ours:
            pytest.fail(f"modelseal and {name} read different files from a {kind} layer:\n"
                        f"  modelseal: {ours}\n  {name}: {theirs}\nblob: {shown}")
    return "agreed"


# Hand-written cases: one dialect feature each.
WEIGHTS = b"W" * 700
CONFIG = b'{"model_type": "bert"}'
EVIL = b"import os\n"


def plain(*entries: bytes, ending: str = "two") -> bytes:
    return b"".join(entries) + end(ending)


CASES = {
    "plain ustar": plain(file_entry(b"w.bin", WEIGHTS), file_entry(b"config.json", CONFIG)),
    "gnu magic": plain(file_entry(b"w.bin", WEIGHTS, magic="gnu")),
    "v7 header": plain(file_entry(b"w.bin", WEIGHTS, magic="v7")),
    "ustar prefix": plain(file_entry(b"w.bin", WEIGHTS, prefix=b"sub")),
    "dot slash": plain(file_entry(b"./w.bin", WEIGHTS)),
    "absolute": plain(file_entry(b"/w.bin", WEIGHTS)),
    "dot dot": plain(file_entry(b"../w.bin", WEIGHTS)),
    "trailing slash on a file": plain(file_entry(b"w.bin/", WEIGHTS)),
    "duplicate name": plain(file_entry(b"config.json", CONFIG), file_entry(b"config.json", EVIL)),
    "directory then file": plain(entry(Header(name=b"d/", kind=b"5")), file_entry(b"d/w", WEIGHTS)),
    "directory with data": plain(entry(Header(name=b"d/", kind=b"5", size=3, data=b"abc"))),
    "symlink": plain(entry(Header(name=b"l", kind=b"2", linkname=b"w.bin")), file_entry(b"w.bin", WEIGHTS)),
    "hard link": plain(file_entry(b"w.bin", WEIGHTS), entry(Header(name=b"h", kind=b"1", linkname=b"w.bin"))),
    "contiguous file (7)": plain(file_entry(b"w.bin", WEIGHTS, kind=b"7")),
    "old regular (NUL)": plain(file_entry(b"w.bin", WEIGHTS, kind=b"\0")),
    "unknown kind": plain(file_entry(b"w.bin", WEIGHTS, kind=b"Z")),
    "gnu volume header": plain(entry(Header(name=b"vol", kind=b"V")), file_entry(b"w.bin", WEIGHTS)),
    "gnu multivolume": plain(file_entry(b"w.bin", WEIGHTS, kind=b"M")),
    "gnu old sparse": plain(sparse_old_gnu(b"w.bin", WEIGHTS)),
    "gnu long name": plain(long_name_entry(b"L", b"evil.py"), file_entry(b"placeholder", EVIL)),
    "gnu long name, no NUL": plain(long_name_entry(b"L", b"evil.py", terminator=b""),
                                   file_entry(b"placeholder", EVIL)),
    "gnu long name, size lies": plain(long_name_entry(b"L", b"evil.py", size_extra=3),
                                      file_entry(b"placeholder", EVIL)),
    "gnu long link": plain(long_name_entry(b"K", b"w.bin"),
                           entry(Header(name=b"h", kind=b"1", linkname=b"x"))),
    "pax path": plain(pax_entry([(b"path", b"evil.py")]), file_entry(b"placeholder", EVIL)),
    "pax size": plain(pax_entry([(b"size", b"3")]), file_entry(b"w.bin", WEIGHTS)),
    "pax linkpath": plain(pax_entry([(b"linkpath", b"w.bin")]),
                          entry(Header(name=b"h", kind=b"1", linkname=b"x"))),
    "pax unknown key": plain(pax_entry([(b"SCHILY.xattr.user.x", b"1")]), file_entry(b"w.bin", WEIGHTS)),
    "pax sparse": plain(pax_entry([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
                                   (b"GNU.sparse.name", b"evil.py"),
                                   (b"GNU.sparse.realsize", b"10")]),
                        file_entry(b"GNUSparseFile.0/evil.py", b"1\n0\n10\n" + b"\0" * 506 + EVIL)),
    "pax global path": plain(pax_entry([(b"path", b"evil.py")], global_=True),
                             file_entry(b"placeholder", EVIL)),
    "pax then gnu long name": plain(pax_entry([(b"path", b"a.py")]), long_name_entry(b"L", b"b.py"),
                                    file_entry(b"c.py", EVIL)),
    "pax record length lies": plain(entry(Header(name=b"p", kind=b"x", size=20,
                                                 data=b"99 path=evil.py\n    ")),
                                    file_entry(b"placeholder", EVIL)),
    "base-256 size": plain(file_entry(b"w.bin", WEIGHTS, size_style="base256")),
    "space-terminated size": plain(file_entry(b"w.bin", WEIGHTS, size_style="space")),
    "space-padded size": plain(file_entry(b"w.bin", WEIGHTS, size_style="padded")),
    "signed checksum": plain(file_entry("w\u00e9.bin".encode(), WEIGHTS, checksum="signed")),
    "wrong checksum": plain(file_entry(b"w.bin", WEIGHTS, checksum="wrong")),
    "non-zero padding": plain(file_entry(b"w.bin", WEIGHTS, padding=b"X")),
    "size smaller than data": plain(file_entry(b"w.bin", WEIGHTS, extra_data=b"\0" * 600)),
    "one end block": plain(file_entry(b"w.bin", WEIGHTS), ending="one"),
    "no end blocks": plain(file_entry(b"w.bin", WEIGHTS), ending="none"),
    "garbage after the end": plain(file_entry(b"w.bin", WEIGHTS), ending="garbage"),
    "entry after the end": plain(file_entry(b"w.bin", WEIGHTS), ending="more"),
    "many zero blocks": plain(file_entry(b"w.bin", WEIGHTS), ending="many"),
    "empty archive": end("two"),
    "empty file": plain(file_entry(b"empty", b"")),
    "nul in name": plain(file_entry(b"w.bin\0evil.py", WEIGHTS)),
    "pax record length with a plus": plain(pax_entry([(b"path", b"evil.py")], length_prefix=b"+"),
                                           file_entry(b"placeholder", EVIL)),
    "mode not octal": plain(file_entry(b"w.bin", WEIGHTS, raw={100: b"07a4\0\0\0\0"})),
    "uid not a number": plain(file_entry(b"w.bin", WEIGHTS, raw={108: b"zz\0\0\0\0\0\0"})),
    "devmajor not octal": plain(file_entry(b"w.bin", WEIGHTS, raw={329: b"9\0"})),
    "size with a NUL inside": plain(file_entry(b"w.bin", b"x", raw={124: b"000000001\0 4"})),
}
# Sixth attack review: a PAX size the `tar` crate cannot parse (it keeps the header's
# size) while Go, Python and GNU tar read a number, and so find a hidden entry inside
# the "file" modelseal hashed. Each spelling below hides an EVIL model.safetensors.
HIDDEN = file_entry(b"model.safetensors", b"E" * 150)
for spelling in [b"-0", b"+1024", b" 150", b"0x400", b"1_024", b"", b"1024.0",
                 b"99999999999999999999999", b"0"]:
    CASES[f"pax size {spelling!r} over a hidden entry"] = plain(
        file_entry(b"model.safetensors", b"B" * 150), pax_entry([(b"size", spelling)]),
        file_entry(b"notes.bin", HIDDEN))
WRAPPERS = ["none", "gzip", "gzip-two", "gzip-trailing", "zstd", "zstd-two", "zstd-skippable"]


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_dialect_feature(case, wrapper):
    check(compress(CASES[case], wrapper), kind_of(wrapper))


def test_the_harness_can_fail():
    """A reader that disagrees is caught: the harness compares, it does not just run."""
    blob = CASES["plain ustar"]
    assert check(blob, "tar") == "agreed"
    real = readers.REFERENCES["Go archive/tar"]
    readers.REFERENCES["Go archive/tar"] = lambda b, k: {**real(b, k), "extra": "file:00"}
    try:
        with pytest.raises(pytest.fail.Exception, match="read different files"):
            check(blob, "tar")
    finally:
        readers.REFERENCES["Go archive/tar"] = real


# Generated archives: names from a small set (so they collide), each entry a feature.
NAMES = st.sampled_from([b"w.bin", b"config.json", b"evil.py", b"d/w.bin", b"./w.bin",
                         b"d", b"d/", b"a" * 120, b"d/" + b"b" * 110, b"\xc3\xa9.bin"])
# Names for plain files: more of them, fewer collisions, so more layers are accepted
# (only accepted layers are compared).
FILE_NAMES = st.sampled_from([b"w.bin", b"config.json", b"evil.py", b"e/w.bin", b"./x.bin",
                              b"a" * 120, b"e/" + b"b" * 110, b"\xc3\xa9.bin", b"t.json",
                              b"f/g/h.bin", b"c" * 99, b"c" * 100, b"c" * 101, b"v.txt"])


@st.composite
def an_entry(draw) -> bytes:
    name = draw(NAMES)
    file_name = draw(FILE_NAMES)
    data = draw(st.sampled_from([b"", b"x", WEIGHTS, CONFIG, EVIL, b"y" * 512]))
    feature = draw(st.sampled_from(["file"] * 12 + ["numbers", "dir", "symlink", "hardlink",
                                    "pax", "pax-size", "pax-global", "gnu-long", "kind",
                                    "prefix", "sparse"]))
    magic = draw(st.sampled_from(["ustar", "ustar", "gnu", "v7"]))
    size_style = draw(st.sampled_from(["octal", "octal", "space", "base256", "padded"]))
    if feature == "dir":
        return entry(Header(name=name.rstrip(b"/") + b"/", kind=b"5", magic=magic))
    if feature == "symlink":
        return entry(Header(name=name, kind=b"2", linkname=draw(NAMES), magic=magic))
    if feature == "hardlink":
        return entry(Header(name=name, kind=b"1", linkname=draw(NAMES), magic=magic))
    if feature == "pax":
        key = draw(st.sampled_from([b"path", b"linkpath", b"comment", b"GNU.sparse.name",
                                    b"mtime", b"uid", b"gid", b"uname"]))
        value = draw(st.one_of(NAMES, st.sampled_from([b"-1", b"1.5", b"+3", b" 7", b"1e3",
                                                        b"", b"12", b"\xff"])))
        return pax_entry([(key, value)],
                         length_prefix=draw(st.sampled_from([b""] * 6 + [b"+", b"0", b" "]))) \
            + file_entry(name, data, magic=magic)
    if feature == "pax-size":
        lie = draw(st.integers(0, len(data) + 600))
        spelled = draw(st.sampled_from([b"%d", b"-%d", b"+%d", b" %d", b"%d.0", b"0%d",
                                        b"%d ", b"0x%x"])) % lie
        return pax_entry([(b"size", spelled)]) + file_entry(name, data)
    if feature == "numbers":
        field = draw(st.sampled_from([100, 108, 116, 124, 136, 329, 337]))
        junk = draw(st.sampled_from([b"z", b"\0" + b"7", b" 1 2", b"-1", b"+7", b"8", b"\xff"]))
        return file_entry(file_name, data, raw={field: junk})
    if feature == "pax-global":
        return pax_entry([(b"path", draw(NAMES))], global_=True) + file_entry(name, data)
    if feature == "gnu-long":
        return long_name_entry(draw(st.sampled_from([b"L", b"K"])), draw(NAMES)) + \
            file_entry(name, data, magic="gnu")
    if feature == "kind":
        kind = draw(st.sampled_from([b"\0", b"7", b"3", b"4", b"6", b"A", b"D", b"M", b"N",
                                     b"V", b"X", b"g", b"x"]))
        return file_entry(name, data, kind=kind, magic=magic)
    if feature == "prefix":
        return file_entry(name, data, prefix=draw(NAMES), magic="ustar")
    if feature == "sparse":
        return sparse_old_gnu(name, data)
    return file_entry(file_name, data, magic=magic, size_style=size_style,
                      padding=draw(st.sampled_from([b"\0"] * 7 + [b"P"])))


@st.composite
def a_tar(draw) -> bytes:
    body = b"".join(draw(st.lists(an_entry(), min_size=0, max_size=6)))
    return body + end(draw(st.sampled_from(["two"] * 6 + ["one", "none", "garbage", "more",
                                                          "many"])))


@st.composite
def a_layer(draw):
    wrapper = draw(st.sampled_from(["none"] * 4 + WRAPPERS))
    return compress(draw(a_tar()), wrapper), kind_of(wrapper)


@SETTINGS
@given(a_layer())
def test_generated_layers(layer):
    event(check(*layer))


@SETTINGS
@given(a_layer(), st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)),
                           min_size=1, max_size=4))
def test_mutated_layers(layer, flips):
    blob, kind = layer
    if kind != "tar" or not blob:
        return
    data = bytearray(blob)
    for at, value in flips:
        data[at % len(data)] = value
    event(check(bytes(data), kind))
