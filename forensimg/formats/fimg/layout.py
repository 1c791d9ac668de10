"""fimg constants, locations, segment naming and chunk decoding; the record header comes from :mod:`.record`.

Everything here follows ``formats/fimg/spec.md``; section numbers below refer to it. The per-record header
is parsed with :data:`RECORD` (a ``struct.Struct``) because it sits in front of every chunk: construct is
kept for the structures read once (:mod:`.structs`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from forensimg.errors import ChecksumError, MissingSegmentError, UsageError
from forensimg.formats.fimg.record import (
    DECOMPRESSORS,
    FLAG_COMPRESSED,
    FLAG_ZERO,
    HEADER_SIZE,
    M_NONE,
    M_ZLIB,
    M_ZSTD,
    METHOD_NAMES,
    METHODS,
    RECORD,
    RECORD_SIZE,
    RECORD_TYPES,
    T_CHECKPOINT,
    T_CHUNK,
    T_DIGESTS,
    T_INDEX,
    T_METADATA,
    T_TOP,
    ZLIB,
    RecordHeader,
    decode_record,
    pack_record,
    parse_record,
    zero_digest,
    zeros,
)
from forensimg.image import FaultKind

__all__ = [
    "DEFAULT_CHECKPOINT_BYTES",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_CHUNK_SIZE",
    "FLAG_COMPRESSED",
    "FLAG_ZERO",
    "HEADER_SIZE",
    "MAX_CHUNK_SIZE",
    "METHODS",
    "METHOD_NAMES",
    "MIN_CHUNK_SIZE",
    "M_NONE",
    "M_ZLIB",
    "M_ZSTD",
    "RECORD",
    "RECORD_SIZE",
    "RECORD_TYPES",
    "T_CHECKPOINT",
    "T_CHUNK",
    "T_DIGESTS",
    "T_INDEX",
    "T_METADATA",
    "T_TOP",
    "VERSION",
    "ZLIB",
    "RecordHeader",
    "decode_chunk",
    "drop_torn",
    "find_segments",
    "location",
    "pack_record",
    "parse_record",
    "segment_name",
    "split_location",
    "zero_digest",
    "zeros",
]

VERSION = (1, 0)
FOOTER_SIZE = 136
MIN_CHUNK_SIZE = 4096
MAX_CHUNK_SIZE = 16 << 20
# 16 KiB: a random 4 KiB read decodes and hashes half as much as with 32 KiB (45,000 against 24,500 reads/s
# on the benchmark input); measured: bench/README.md "fimg" and "Fourth session"
DEFAULT_CHUNK_SIZE = 16384
DEFAULT_CHECKPOINT_BYTES = 128 << 20  # media between checkpoints: measured, bench/README.md "Acquisition"
DEFAULT_CHECKPOINT_INTERVAL = DEFAULT_CHECKPOINT_BYTES // DEFAULT_CHUNK_SIZE  # chunks, at the default chunk size
MAX_METADATA_SIZE = 64 << 20

_LOC_SHIFT = 48
_LOC_MASK = (1 << _LOC_SHIFT) - 1


def location(segment_number: int, offset: int) -> int:
    """Pack a location (spec §4.4): segment number in bits 48..63, file offset in bits 0..47."""
    return (segment_number << _LOC_SHIFT) | offset


def split_location(loc: int) -> tuple[int, int]:
    """``(segment_number, offset)`` of a location."""
    return loc >> _LOC_SHIFT, loc & _LOC_MASK


# -- segment naming (spec §2) -------------------------------------------------------------------------

_MEMBER = re.compile(r"^(?P<base>.+)\.[fF](?P<num>\d{3,})$")


def segment_name(first: Path, number: int) -> Path:
    """Name of segment ``number`` (1-based): ``disk.fimg``, ``disk.f002``, ``disk.f003`` ... ``disk.f1000``.

    A first file not ending in ``.fimg`` keeps its whole name as the base: ``img.bin`` → ``img.bin.f002``.
    """
    if number == 1:
        return first
    base = first.name[:-5] if first.name.lower().endswith(".fimg") else first.name
    return first.with_name(f"{base}.f{number:03d}")


def first_segment(path: Path) -> Path:
    """The first segment of the set ``path`` belongs to (``disk.f003`` → ``disk.fimg``)."""
    m = _MEMBER.match(path.name)
    if m and int(m.group("num")) >= 2:
        base = m.group("base")
        for cand in (path.with_name(base + ".fimg"), path.with_name(base + ".FIMG"), path.with_name(base)):
            if cand.is_file():
                return cand
        raise MissingSegmentError(
            f"fimg segment '{path}' belongs to a set whose first segment '{path.with_name(base + '.fimg')}' "
            "is missing",
            path=path.with_name(base + ".fimg"),
        )
    return path


def find_segments(path: Path, expected: int | None = None) -> list[Path]:
    """The segment files of the image ``path`` is a member of, in order.

    Args:
        path: any segment.
        expected: the segment count recorded in the footer, when known.

    Raises:
        MissingSegmentError: a segment is missing (the message names it).
    """
    first = first_segment(path)
    out = [first]
    n = 2
    while True:
        p = segment_name(first, n)
        if not p.is_file():
            break
        out.append(p)
        n += 1
    if expected is not None and len(out) < expected:
        missing = segment_name(first, len(out) + 1)
        raise MissingSegmentError(
            f"fimg image '{first}' has {expected} segments but segment {len(out) + 1} '{missing}' is missing",
            path=missing,
        )
    # a gap: a higher-numbered segment exists beyond the first missing one
    base = first.name[:-5] if first.name.lower().endswith(".fimg") else first.name
    for sib in first.parent.glob(_glob_escape(base) + ".f[0-9][0-9][0-9]*"):
        m = _MEMBER.match(sib.name)
        if m and m.group("base") == base and int(m.group("num")) > len(out) + 1:
            missing = segment_name(first, len(out) + 1)
            raise MissingSegmentError(
                f"fimg image '{first}' is missing segment {len(out) + 1} '{missing}' "
                f"(a later segment '{sib.name}' exists)",
                path=missing,
            )
    if expected is not None:
        return out[:expected]
    return out


def drop_torn(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split off a last segment shorter than a header: a writer killed while creating it (spec §7.1).

    Returns ``(segments, torn)``; ``torn`` is empty or the one torn file.
    """
    if len(paths) > 1:
        try:
            size = paths[-1].stat().st_size
        except OSError:
            return paths, []
        if size < HEADER_SIZE:
            return paths[:-1], paths[-1:]
    return paths, []


def _glob_escape(s: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", s)


# -- chunk decoding (spec §4.2, §8) -------------------------------------------------------------------

class ChunkFault(ChecksumError):
    """A chunk record that fails a check (a :class:`ChecksumError` with the fault kind for verify)."""

    def __init__(self, message: str, *, kind: FaultKind = FaultKind.CHECKSUM, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.fault_kind = kind


def decode_chunk(
    buf: bytes, index: int, length: int, *, path: Path, offset: int, media_start: int,
    leaf: bytes | None = None,
) -> tuple[bytes, bytes]:
    """Check and decode one chunk record read at ``offset`` of ``path`` (header + up to ``length`` data).

    Args:
        buf: the bytes read at the record's location (at least the header; the data may be short).
        index: the chunk index expected.
        length: the decoded length expected.
        path: segment file (for messages).
        offset: file offset of the record.
        media_start: first media byte of the chunk.
        leaf: the chunk digest from the digest table, when the image has one.

    Returns:
        ``(data, digest)``.

    Raises:
        ChunkFault: any check fails; the message names chunk, media range, file and offset.
    """
    # The hot path (record.decode_record) for a well-formed record, the common case; anything unusual goes
    # through the full, diagnosing check below, which applies the same rules (spec §4.2) and names what failed.
    data, _stored = decode_record(buf, index, length, leaf, index)
    if data is not None:
        return data, bytes(buf[28:60])  # the record's digest (spec §4.1: bytes 28..59)
    return _decode_checked(buf, index, length, path=path, offset=offset, media_start=media_start, leaf=leaf)


def _decode_checked(
    buf: bytes, index: int, length: int, *, path: Path, offset: int, media_start: int,
    leaf: bytes | None = None,
) -> tuple[bytes, bytes]:
    where = f"fimg chunk {index} (media {media_start}..{media_start + length - 1})"
    kw: dict[str, Any] = {
        "path": path, "offset": offset, "chunk": index, "media_start": media_start, "media_end": media_start + length,
    }
    rh = parse_record(buf)
    if rh is None:
        kind = FaultKind.SHORT_READ if len(buf) < RECORD_SIZE else FaultKind.CHECKSUM
        raise ChunkFault(f"{where}: record header damaged (CRC-32 mismatch or truncated)", kind=kind, **kw)
    if rh.type != T_CHUNK or rh.number != index:
        raise ChunkFault(
            f"{where}: record header names {rh.type!r} {rh.number}, not chunk {index}", kind=FaultKind.METADATA, **kw
        )
    if rh.decoded_length != length or rh.stored_length > length or rh.reserved or rh.flags & ~3:
        raise ChunkFault(
            f"{where}: bad record fields (decoded length {rh.decoded_length}, stored {rh.stored_length}, "
            f"flags 0x{rh.flags:02x})",
            kind=FaultKind.SIZE, **kw,
        )
    if leaf is not None and leaf != rh.digest:
        raise ChunkFault(
            f"{where}: record digest {rh.digest.hex()} differs from the digest table ({leaf.hex()})", **kw
        )
    if rh.flags & FLAG_ZERO:
        if rh.stored_length or rh.method:
            raise ChunkFault(f"{where}: all-zero chunk with stored data", kind=FaultKind.SIZE, **kw)
        if rh.digest != zero_digest(length):
            raise ChunkFault(f"{where}: SHA-256 of an all-zero chunk does not match its record", **kw)
        return zeros(length), rh.digest
    stored = buf[RECORD_SIZE : RECORD_SIZE + rh.stored_length]
    if len(stored) < rh.stored_length:
        raise ChunkFault(
            f"{where}: segment ends inside the chunk data ({len(stored)} of {rh.stored_length} bytes)",
            kind=FaultKind.SHORT_READ, **kw,
        )
    if rh.flags & FLAG_COMPRESSED:
        dec = DECOMPRESSORS.get(rh.method)
        if dec is None or rh.stored_length >= length:
            raise ChunkFault(f"{where}: bad compression method {rh.method}", kind=FaultKind.DECOMPRESS, **kw)
        try:
            data = dec(stored, length)
        except Exception as exc:  # zlib.error, zstandard.ZstdError, ValueError: all mean bad data
            raise ChunkFault(
                f"{where}: {METHOD_NAMES[rh.method]} data cannot be decoded ({exc})", kind=FaultKind.DECOMPRESS, **kw
            ) from None
        if len(data) != length:
            raise ChunkFault(
                f"{where}: decodes to {len(data)} bytes, not {length}", kind=FaultKind.DECOMPRESS, **kw
            )
    else:
        if rh.method or rh.stored_length != length:
            raise ChunkFault(f"{where}: uncompressed chunk of the wrong length", kind=FaultKind.SIZE, **kw)
        data = stored
    digest = hashlib.sha256(data).digest()
    if digest != rh.digest:
        raise ChunkFault(
            f"{where}: SHA-256 mismatch (stored {rh.digest.hex()}, computed {digest.hex()})", **kw
        )
    return data, digest


def check_chunk_size(chunk_size: int) -> None:
    """Refuse a chunk size that is not a power of two in 4 KiB..16 MiB (spec §3)."""
    if not (MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE) or chunk_size & (chunk_size - 1):
        raise UsageError(f"fimg chunk size must be a power of two from 4 KiB to 16 MiB, not {chunk_size}")
