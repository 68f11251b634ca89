"""Tar archives written byte by byte, with the dialect features real readers disagree on:
ustar, GNU and v7 headers, ustar prefixes, GNU long names and long links, PAX local and
global records (path, linkpath, size, sparse and unknown keys), base-256 and oddly
terminated numbers, signed and wrong checksums, non-zero padding, every entry type, and
every way an archive can end. Nothing here checks anything: it makes inputs."""

from __future__ import annotations

import dataclasses
import gzip
import subprocess
from typing import List, Optional

BLOCK = 512


@dataclasses.dataclass
class Header:
    name: bytes = b""
    kind: bytes = b"0"
    size: int = 0
    data: bytes = b""
    linkname: bytes = b""
    prefix: bytes = b""
    magic: str = "ustar"  # "ustar", "gnu" or "v7"
    size_style: str = "octal"  # "octal", "space", "base256", "padded"
    checksum: str = "ok"  # "ok", "signed", "wrong"
    mode: int = 0o644
    padding: bytes = b"\0"  # the byte that pads the data to a block
    extra_data: bytes = b""  # bytes after the data, before padding (for size lies)
    raw: Optional[dict] = None  # header offset -> bytes written there as is


def _octal(value: int, width: int, style: str) -> bytes:
    if style == "base256":
        raw = value.to_bytes(width, "big")
        return bytes([raw[0] | 0x80]) + raw[1:]
    digits = b"%o" % value
    if style == "space":
        return digits.rjust(width - 1, b"0") + b" "
    if style == "padded":
        return b" " * (width - 1 - len(digits)) + digits + b"\0"
    return digits.rjust(width - 1, b"0") + b"\0"


def header_block(h: Header) -> bytes:
    block = bytearray(BLOCK)
    block[0:100] = h.name[:100].ljust(100, b"\0")
    block[100:108] = b"%07o\0" % h.mode
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    size = _octal(h.size, 12, h.size_style)
    block[124:136] = size[:12].ljust(12, b"\0")
    block[136:148] = b"00000000000\0"
    block[156:157] = h.kind[:1] or b"\0"
    block[157:257] = h.linkname[:100].ljust(100, b"\0")
    if h.magic == "ustar":
        block[257:263] = b"ustar\0"
        block[263:265] = b"00"
        block[345:500] = h.prefix[:155].ljust(155, b"\0")
    elif h.magic == "gnu":
        block[257:265] = b"ustar  \0"
    for at, value in (h.raw or {}).items():
        block[at:at + len(value)] = value
    block[148:156] = b" " * 8
    if h.checksum == "signed":
        total = sum((b - 256) if b > 127 else b for b in block)
    else:
        total = sum(block)
    if h.checksum == "wrong":
        total += 1
    block[148:156] = b"%06o\0 " % (total & 0o777777)
    return bytes(block)


def entry(h: Header) -> bytes:
    body = h.data + h.extra_data
    pad = (-len(body)) % BLOCK
    return header_block(h) + body + (h.padding * pad)


def pax_records(records: List[tuple], length_prefix: bytes = b"") -> bytes:
    """PAX records `LEN KEY=VALUE\\n`, each with its correct length (spelled with
    `length_prefix` before the digits, e.g. `+`)."""
    out = b""
    for key, value in records:
        body = b" " + key + b"=" + value + b"\n"
        n = len(body) + 1
        while len(length_prefix) + len(str(n).encode()) + len(body) != n:
            n += 1
        out += length_prefix + str(n).encode() + body
    return out


def end(style: str) -> bytes:
    if style == "two":
        return b"\0" * (2 * BLOCK)
    if style == "one":
        return b"\0" * BLOCK
    if style == "none":
        return b""
    if style == "garbage":
        return b"\0" * (2 * BLOCK) + b"evil" + b"\0" * 508
    if style == "more":
        return b"\0" * (2 * BLOCK) + header_block(Header(name=b"after.py", size=0)) + b"\0" * (2 * BLOCK)
    if style == "many":
        return b"\0" * (20 * BLOCK)
    raise ValueError(style)


def compress(tar: bytes, wrapper: str) -> bytes:
    """A tar wrapped as a layer blob: none, gzip (one member, two members, trailing
    bytes), zstd (one frame, two frames, a skippable frame)."""
    if wrapper == "none":
        return tar
    if wrapper == "gzip":
        return gzip.compress(tar, mtime=0)
    if wrapper == "gzip-two":
        half = len(tar) // 2
        return gzip.compress(tar[:half], mtime=0) + gzip.compress(tar[half:], mtime=0)
    if wrapper == "gzip-trailing":
        return gzip.compress(tar, mtime=0) + b"\0\0\0\0junk"
    if wrapper.startswith("zstd"):
        def z(data: bytes) -> bytes:
            return subprocess.run(["zstd", "-q", "-c", "--no-check"], input=data,
                                  capture_output=True, check=True).stdout
        if wrapper == "zstd":
            return z(tar)
        if wrapper == "zstd-two":
            half = len(tar) // 2
            return z(tar[:half]) + z(tar[half:])
        if wrapper == "zstd-skippable":
            return z(tar) + b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"skip"
    raise ValueError(wrapper)


def kind_of(wrapper: str) -> str:
    if wrapper == "none":
        return "tar"
    return "tar+gzip" if wrapper.startswith("gzip") else "tar+zstd"


def long_name_entry(kind: bytes, value: bytes, size_extra: int = 0, terminator: bytes = b"\0",
                    magic: str = "gnu") -> bytes:
    """A GNU `L` (long name) or `K` (long link) entry for `value`."""
    data = value + terminator
    return entry(Header(name=b"././@LongLink", kind=kind, size=len(data) + size_extra,
                        data=data, magic=magic))


def pax_entry(records: List[tuple], global_: bool = False, name: bytes = b"PaxHeader",
              size_extra: int = 0, length_prefix: bytes = b"") -> bytes:
    data = pax_records(records, length_prefix)
    return entry(Header(name=name, kind=b"g" if global_ else b"x",
                        size=len(data) + size_extra, data=data))


def file_entry(name: bytes, data: bytes, **kw) -> bytes:
    return entry(Header(name=name, size=len(data), data=data, **kw))


def sparse_old_gnu(name: bytes, data: bytes) -> bytes:
    """An old-GNU sparse (`S`) entry: its map lives in the header, its data is what the
    map lists; readers that do not know it see other bytes."""
    h = Header(name=name, kind=b"S", size=len(data), data=data, magic="gnu")
    block = bytearray(header_block(h))
    # one sparse region: offset 4, length len(data); real size len(data) + 4
    block[386:398] = b"%011o\0" % 4
    block[398:410] = b"%011o\0" % len(data)
    block[483:495] = b"%011o\0" % (len(data) + 4)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    pad = (-len(data)) % BLOCK
    return bytes(block) + data + b"\0" * pad


def maybe(value: Optional[bytes]) -> bytes:
    return value or b""
