"""Walking the records of a fimg image without its index or footer (spec §7).

Used to open an unfinished image (a crashed or aborted writer), to resume one, and by
``check_structure`` to confirm that the records of a finished image are exactly those its index names.
The walk reads only the 64-byte record headers (and checkpoint bodies), skipping chunk data.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from construct import ConstructError

from forensimg.formats.fimg.layout import (
    HEADER_SIZE,
    MAX_METADATA_SIZE,
    RECORD_SIZE,
    T_CHECKPOINT,
    T_CHUNK,
    T_DIGESTS,
    T_INDEX,
    T_METADATA,
    T_TOP,
    location,
    parse_record,
)
from forensimg.formats.fimg.structs import CHECKPOINT_FIXED, RANGE_PAIR
from forensimg.image import Range
from forensimg.streams import SegmentSet

__all__ = ["Checkpoint", "Walk", "walk_records"]

_CRC = struct.Struct("<I")
_CHUNK_FIELDS = struct.Struct("<QQI")  # number, stored length, decoded length at record offset 8


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A valid checkpoint found by the walk (spec §5.2)."""

    sequence: int
    chunk_count: int
    media_size: int
    segment: int  # 0-based index into the segment list
    offset: int  # file offset of the checkpoint record
    end: int  # file offset just after it
    unreadable: tuple[Range, ...]

    @property
    def location(self) -> int:
        """Location of the record (spec §4.4)."""
        return location(self.segment + 1, self.offset)


@dataclass(slots=True)
class Walk:
    """What a walk over the records found.

    Attributes:
        locations: location of chunk ``i`` for every chunk record met in order (0, 1, 2, ...).
        digests: SHA-256 of each such chunk, from its record header (32 bytes each, concatenated).
        checkpoints: every valid checkpoint, in order.
        initial_metadata: the JSON of the first metadata record (``None`` if absent or damaged).
        final_records: ``(type, index, segment, offset, body_digest)`` of metadata/index/digest records
            met after the first metadata record.
        stop: ``(segment, offset, reason)`` where the walk ended before a segment's end, else ``None``.
        ends: per segment, the offset after the last valid record.
    """

    locations: array[int] = field(default_factory=lambda: array("Q"))
    digests: bytearray = field(default_factory=bytearray)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    initial_metadata: dict[str, Any] | None = None
    initial_metadata_error: str | None = None
    final_records: list[tuple[bytes, int, int, int, bytes]] = field(default_factory=list)
    stop: tuple[int, int, str] | None = None
    ends: list[int] = field(default_factory=list)

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        """The last valid checkpoint (the committed state)."""
        return self.checkpoints[-1] if self.checkpoints else None


def _read_body(segs: SegmentSet, seg: int, off: int, n: int) -> bytes:
    return segs.pread(seg, off, n)


def walk_records(
    segs: SegmentSet, chunk_size: int, *, stop_at: list[int] | None = None,
    known: tuple[array[int], array[int], bytes] | None = None,
) -> Walk:
    """Walk the record headers of every segment from the start, stopping at the first invalid one.

    Args:
        segs: the open segment files.
        chunk_size: the image's chunk size (bounds a chunk record's data).
        stop_at: per segment, an offset where the walk of that segment ends (the footer of a finished
            image), else the file size.

        known: ``(locations, stored, leaves)`` of chunk records already read and checked by this reader
            (``stored[i]`` is the stored length + 1, 0 when not read yet): their headers are not read again.

    A record is valid when its header CRC-32 matches, its type is known, its body lies inside the file,
    and it continues the sequence (chunk ``i`` after chunk ``i-1``; a checkpoint whose body digest
    matches and whose counts and entries agree with the chunks walked so far).
    """
    k_locs, k_stored, k_leaves = known if known is not None else (array("Q"), array("I"), b"")
    k_n = min(len(k_locs), len(k_stored))
    w = Walk()
    prev_ckpt = 0
    seq = 0
    for si in range(len(segs)):
        end_of = stop_at[si] if stop_at is not None else segs.sizes[si]
        off = HEADER_SIZE
        while off + RECORD_SIZE <= end_of:
            i = len(w.locations)
            if i < k_n and k_stored[i] and k_locs[i] == location(si + 1, off):
                body_end = off + RECORD_SIZE + k_stored[i] - 1
                if body_end <= end_of:
                    w.locations.append(k_locs[i])
                    w.digests += k_leaves[32 * i : 32 * i + 32]
                    off = body_end
                    continue
            raw = segs.pread(si, off, RECORD_SIZE)
            if len(raw) == RECORD_SIZE and raw[:4] == T_CHUNK and zlib.crc32(raw[:60]) == _CRC.unpack_from(raw, 60)[0]:
                # the common case, without building a RecordHeader: number, stored and decoded length, digest
                number, stored, decoded = _CHUNK_FIELDS.unpack_from(raw, 8)
                body_end = off + RECORD_SIZE + stored
                if body_end > end_of:
                    w.stop = (si, off, "record extends past the end of the file")
                    break
                if number != len(w.locations) or stored > chunk_size or decoded > chunk_size:
                    w.stop = (si, off, f"chunk record {number} out of sequence or oversized")
                    break
                w.locations.append(location(si + 1, off))
                w.digests += raw[28:60]
                off = body_end
                continue
            rh = parse_record(raw)
            if rh is None:
                w.stop = (si, off, "no valid record header")
                break
            body_end = off + RECORD_SIZE + rh.stored_length
            if body_end > end_of:
                w.stop = (si, off, "record extends past the end of the file")
                break
            if rh.type == T_CHUNK:
                if rh.number != len(w.locations) or rh.stored_length > chunk_size or rh.decoded_length > chunk_size:
                    w.stop = (si, off, f"chunk record {rh.number} out of sequence or oversized")
                    break
                w.locations.append(location(si + 1, off))
                w.digests += rh.digest
            elif rh.type == T_CHECKPOINT:
                ck = _checkpoint(segs, si, off, rh.stored_length, rh.digest, w, prev_ckpt, seq, chunk_size)
                if ck is None:
                    w.stop = (si, off, "checkpoint inconsistent with the records before it")
                    break
                w.checkpoints.append(ck)
                prev_ckpt = ck.location
                seq = ck.sequence
            elif rh.type == T_METADATA:
                if rh.stored_length > MAX_METADATA_SIZE:
                    w.stop = (si, off, "metadata record too large")
                    break
                if rh.number == 0 and si == 0 and off == HEADER_SIZE:
                    body = _read_body(segs, si, off + RECORD_SIZE, rh.stored_length)
                    if hashlib.sha256(body).digest() != rh.digest:
                        w.initial_metadata_error = "initial metadata digest mismatch"
                    try:
                        meta = json.loads(body.decode("utf-8"))
                        w.initial_metadata = meta if isinstance(meta, dict) else None
                    except (UnicodeDecodeError, ValueError):
                        w.initial_metadata_error = "initial metadata is not JSON"
                else:
                    w.final_records.append((rh.type, rh.number, si, off, rh.digest))
            elif rh.type in (T_INDEX, T_DIGESTS, T_TOP):
                w.final_records.append((rh.type, rh.number, si, off, rh.digest))
            else:
                w.stop = (si, off, f"unknown record type {rh.type!r}")
                break
            off = body_end
        w.ends.append(off)
        if w.stop is not None:
            break
        if off != end_of and off + RECORD_SIZE > end_of:
            w.stop = (si, off, "trailing bytes after the last record")
            break
    return w


def _checkpoint(
    segs: SegmentSet, si: int, off: int, n: int, digest: bytes, w: Walk, prev: int, seq: int, chunk_size: int
) -> Checkpoint | None:
    if n < CHECKPOINT_FIXED.sizeof() or n > segs.sizes[si]:
        return None
    body = _read_body(segs, si, off + RECORD_SIZE, n)
    if len(body) != n or hashlib.sha256(body).digest() != digest:
        return None
    try:
        fx = CHECKPOINT_FIXED.parse(body)
    except ConstructError:
        return None
    fixed = CHECKPOINT_FIXED.sizeof()
    if n != fixed + 8 * fx.entry_count + RANGE_PAIR.sizeof() * fx.range_count:
        return None
    count = len(w.locations)
    if fx.sequence != seq + 1 or fx.previous != prev or fx.chunk_count != count:
        return None
    if fx.first_entry + fx.entry_count != count:
        return None
    if not (count * chunk_size >= fx.media_size > (count - 1) * chunk_size or fx.media_size == count == 0):
        return None
    entries = array("Q")
    entries.frombytes(body[fixed : fixed + 8 * fx.entry_count])
    if _big_endian():
        entries.byteswap()
    if entries.tolist() != w.locations[fx.first_entry : count].tolist():
        return None
    ranges: list[Range] = []
    pos = fixed + 8 * fx.entry_count
    for _ in range(fx.range_count):
        r = RANGE_PAIR.parse(body[pos : pos + 16])
        pos += 16
        if r.end < r.start or r.end > fx.media_size:
            return None
        ranges.append(Range(r.start, r.end))
    return Checkpoint(fx.sequence, fx.chunk_count, fx.media_size, si, off, off + RECORD_SIZE + n, tuple(ranges))


def _big_endian() -> bool:
    import sys

    return sys.byteorder == "big"


def segment_paths(segs: SegmentSet) -> tuple[Path, ...]:
    """The segment paths (helper for messages)."""
    return segs.paths
