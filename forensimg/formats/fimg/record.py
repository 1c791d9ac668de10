"""The fimg record header and chunk encoding (``formats/fimg/spec.md`` §4.1-§4.3).

Kept apart from :mod:`.layout` and free of the package's heavier modules, because the encoder processes
(:mod:`.encoder`) import it on start-up: a worker that imports only this module, zstandard and ISA-L
starts in about 50 ms, one that imports :mod:`forensimg` in about 200 ms. :mod:`.layout` re-exports
everything here.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from types import ModuleType
from typing import Any, NamedTuple

import zstandard

from forensimg.compressibility import KEEP_SHARE, SAMPLE_BYTES, sample_compressor

ZLIB: ModuleType = zlib
"""ISA-L's zlib where present: it writes and reads ordinary zlib streams, several times faster (spec §4.3)."""
try:
    from isal import isal_zlib

    ZLIB = isal_zlib
except ImportError:  # pragma: no cover - isal is a dependency; plain zlib is the fallback
    pass

__all__ = [
    "DECOMPRESSORS",
    "FLAG_COMPRESSED",
    "FLAG_ZERO",
    "HEADER_SIZE",
    "METHODS",
    "METHOD_NAMES",
    "M_NONE",
    "M_ZLIB",
    "M_ZSTD",
    "RECORD",
    "RECORD_SIZE",
    "RECORD_TYPES",
    "RUN_READ_MAX",
    "T_CHECKPOINT",
    "T_CHUNK",
    "T_DIGESTS",
    "T_INDEX",
    "T_METADATA",
    "T_TOP",
    "ZLIB",
    "EncodedChunk",
    "EncodedRun",
    "RecordHeader",
    "decode_record",
    "encode_range",
    "pack_record",
    "parse_record",
    "read_runs",
    "zero_digest",
    "zeros",
]

RECORD_SIZE = 64
HEADER_SIZE = 128  # a segment's header (spec §3): no record starts before it
RUN_READ_MAX = 64 << 20  # a run of records is read with one pread up to this size (more: record by record)
_LOC_MASK = (1 << 48) - 1

# record types (spec §4.1)
T_CHUNK = b"FCHK"
T_CHECKPOINT = b"FCKP"
T_METADATA = b"FMET"
T_INDEX = b"FIDX"
T_DIGESTS = b"FDIG"
T_TOP = b"FTOP"
RECORD_TYPES = (T_CHUNK, T_CHECKPOINT, T_METADATA, T_INDEX, T_DIGESTS, T_TOP)

# chunk flags and methods (spec §4.2)
FLAG_COMPRESSED = 0x01
FLAG_ZERO = 0x02
M_NONE, M_ZLIB, M_ZSTD = 0, 1, 2
METHODS = {"none": M_NONE, "zlib": M_ZLIB, "zstd": M_ZSTD}
METHOD_NAMES = {v: k for k, v in METHODS.items()}

RECORD = struct.Struct("<4sBBHQQI32sI")
"""Record header (spec §4.1): type, flags, method, reserved, index, stored length, decoded length,
SHA-256, CRC-32 of bytes 0..59."""
_RECORD_BODY = struct.Struct("<4sBBHQQI32s")
_CRC = struct.Struct("<I")
assert RECORD.size == RECORD_SIZE



class RecordHeader(NamedTuple):
    """A parsed record header."""

    type: bytes
    flags: int
    method: int
    reserved: int
    number: int
    stored_length: int
    decoded_length: int
    digest: bytes
    crc: int


def pack_record(
    rtype: bytes, index: int, stored_length: int, digest: bytes, *, flags: int = 0, method: int = 0,
    decoded_length: int = 0,
) -> bytes:
    """Build a 64-byte record header with its CRC-32 (spec §4.1)."""
    head = _RECORD_BODY.pack(rtype, flags, method, 0, index, stored_length, decoded_length, digest)
    return head + _CRC.pack(zlib.crc32(head))


def parse_record(buf: bytes) -> RecordHeader | None:
    """Parse a record header; ``None`` when its CRC-32 does not match (not a record)."""
    if len(buf) < RECORD_SIZE:
        return None
    rh = RecordHeader(*RECORD.unpack_from(buf))
    if zlib.crc32(memoryview(buf)[:60]) != rh.crc:
        return None
    return rh


@cache
def zero_digest(length: int) -> bytes:
    """SHA-256 of ``length`` zero bytes (cached: all-zero chunks are stored as a flag, spec §4.2)."""
    return hashlib.sha256(bytes(length)).digest()


@cache
def zeros(length: int) -> bytes:
    """A shared run of zero bytes."""
    return bytes(length)


EncodedChunk = tuple[bytes | memoryview, Any, bytes, int]
"""``(record header, body or None, SHA-256, media bytes)``: the header is ``bytes`` (or a view of an
encoder process's answer); the body is the compressed bytes, or a
memoryview of the source for a chunk stored as it is, or ``None`` for an all-zero chunk."""


def encode_range(
    block: Any, start: int, stop: int, index: int, chunk_size: int, method: int, level: int,
    compress: Callable[[Any], bytes] | None, out: list[EncodedChunk],
) -> int:
    """Encode the chunks of ``block[start:stop]`` as chunk records (spec §4.2), numbered from ``index``.

    ``block`` is ``bytes``/``bytearray`` or an ``mmap`` (an encoder process's shared memory); each chunk
    is ``chunk_size`` bytes except a short last one. A chunk is hashed (SHA-256 of the data as it is),
    then stored as a flag if all zero, compressed (``compress`` for zstd, else ``ZLIB`` at ``level``) when
    that makes it smaller and the compressibility sample does not rule it out
    (:func:`~forensimg.compressibility.looks_incompressible`), else as it is. The records are appended to
    ``out``; returns the media bytes encoded.
    """
    mv = memoryview(block)
    # the zero test compares in place: bytes.startswith and mmap.find (whose needle spans the whole range,
    # so one comparison) are memcmp; bytes.find with a long needle and memoryview compares are not
    by_find = not isinstance(block, bytes | bytearray)
    starts = None if by_find else block.startswith
    find = block.find
    # one chunk costs a few microseconds of Python besides hashing and compressing, so the record header is
    # packed here (as pack_record does) and the compressibility sample inlined (as looks_incompressible)
    body_pack = _RECORD_BODY.pack
    crc_pack = _CRC.pack
    crc32 = zlib.crc32
    sample = sample_compressor()
    keep = KEEP_SHARE * SAMPLE_BYTES
    min_sampled = 2 * SAMPLE_BYTES
    deflate = ZLIB.compress
    cs = chunk_size
    zero = zeros(cs)
    zero_sha = zero_digest(cs)
    sha256 = hashlib.sha256
    append = out.append
    media = 0
    k = index
    for o in range(start, stop, cs):
        e = o + cs if o + cs <= stop else stop
        n = e - o
        media += n
        z = zero if n == cs else zeros(n)
        if (find(z, o, e) == o) if by_find else starts(z, o):  # type: ignore[misc]
            digest = zero_sha if n == cs else zero_digest(n)
            head = body_pack(T_CHUNK, FLAG_ZERO, M_NONE, 0, k, 0, n, digest)
            append((head + crc_pack(crc32(head)), None, digest, n))
            k += 1
            continue
        chunk = mv[o:e]
        digest = sha256(chunk).digest()
        payload: Any = chunk
        flags = 0
        used = M_NONE
        if method != M_NONE and (n < min_sampled or len(sample(chunk[:SAMPLE_BYTES])) < keep):
            packed = compress(chunk) if compress is not None else deflate(chunk, level)
            if len(packed) < n:
                payload, flags, used = packed, FLAG_COMPRESSED, method
        # else: random or already compressed data (its sample does not shrink), stored as it is
        head = body_pack(T_CHUNK, flags, used, 0, k, len(payload), n, digest)
        append((head + crc_pack(crc32(head)), payload, digest, n))
        k += 1
    return media


class EncodedRun:
    """A run of consecutive chunk records as they go into a segment file (a job of the fimg writer).

    Built either from the records a thread encoded (:meth:`from_records`) or from the bytes an encoder
    process wrote (:meth:`from_blob`: headers and bodies back to back, ``ends`` the end of each record).

    Attributes:
        iov: the buffers to append, in order. ends: end offset of each record within the run.
        digests: the chunk digests, joined. media: media bytes. node: the run's Merkle subtree node or None.
    """

    __slots__ = ("_blob", "_chunk_size", "_records", "digests", "ends", "iov", "media", "node")

    def __init__(self, iov: list[Any], ends: list[int], digests: bytes, media: int, node: bytes | None,
                 records: list[EncodedChunk] | None, blob: bytes | None, chunk_size: int) -> None:
        self.iov = iov
        self.ends = ends
        self.digests = digests
        self.media = media
        self.node = node
        self._records = records
        self._blob = blob
        self._chunk_size = chunk_size

    @classmethod
    def from_records(cls, records: list[EncodedChunk], media: int, node: bytes | None) -> EncodedRun:
        """A run from encoded records (headers and bodies stay separate buffers)."""
        iov: list[Any] = []
        ends: list[int] = []
        end = 0
        for head, body, _digest, _n in records:
            iov.append(head)
            end += RECORD_SIZE
            if body is not None:
                iov.append(body)
                end += len(body)
            ends.append(end)
        return cls(iov, ends, b"".join(r[2] for r in records), media, node, records, None, 0)

    @classmethod
    def from_blob(cls, blob: bytes, ends: list[int], digests: bytes, media: int, chunk_size: int,
                  node: bytes | None) -> EncodedRun:
        """A run from an encoder process's bytes: one buffer; records are only split out if asked for."""
        return cls([blob], ends, digests, media, node, None, blob, chunk_size)

    def __len__(self) -> int:
        return len(self.ends)

    def lengths(self) -> list[int]:
        """Media bytes of each record (whole chunks, except a short last one at the end of the media)."""
        if self._records is not None:
            return [r[3] for r in self._records]
        n = len(self.ends)
        if not n:
            return []
        cs = self._chunk_size
        return [cs] * (n - 1) + [self.media - cs * (n - 1)]

    def records(self) -> list[EncodedChunk]:
        """The records one by one: ``(header, body or None, digest, media bytes)`` (views of the blob)."""
        if self._records is None:
            blob = memoryview(self._blob or b"")
            out: list[EncodedChunk] = []
            start = 0
            for i, (end, n) in enumerate(zip(self.ends, self.lengths(), strict=True)):
                body = blob[start + RECORD_SIZE : end] if end > start + RECORD_SIZE else None
                out.append((blob[start : start + RECORD_SIZE], body, self.digests[32 * i : 32 * i + 32], n))
                start = end
            self._records = out
        return self._records


# -- decoding (spec §4.2, §8) -------------------------------------------------------------------------

_tls = threading.local()


def _zstd_decompress(data: bytes | memoryview, n: int) -> bytes:
    # A frame that declares its content size is decoded into a buffer of that size: check it first, so a
    # hostile frame cannot make us allocate more than the chunk (spec §8).
    declared = zstandard.frame_content_size(data)
    if declared not in (-1, n):
        raise ValueError(f"zstd frame declares {declared} bytes")
    dec = getattr(_tls, "zstd", None)
    if dec is None:  # a decompressor is not thread-safe, and making one costs as much as decoding a chunk
        dec = _tls.zstd = zstandard.ZstdDecompressor()
    out: bytes = dec.decompress(data, max_output_size=n, allow_extra_data=False)
    return out


def _zlib_decompress(data: bytes | memoryview, n: int) -> bytes:
    d = ZLIB.decompressobj()
    out: bytes = d.decompress(data, n)
    if d.unconsumed_tail or d.unused_data or not d.eof:  # spec §4.2: "nothing left over"
        raise ValueError("zlib stream longer than the chunk, truncated, or followed by other bytes")
    return out


DECOMPRESSORS: dict[int, Callable[[bytes | memoryview, int], bytes]] = {
    M_ZLIB: _zlib_decompress,
    M_ZSTD: _zstd_decompress,
}

_RECORD_UNPACK = RECORD.unpack_from
_zlib_decompressobj = ZLIB.decompressobj


def decode_record(buf: bytes | memoryview, index: int, length: int, leaves: bytes | None,
                  leaves_from: int = 0) -> tuple[bytes | None, int]:
    """The checks of spec §4.2 for a well-formed record of chunk ``index`` (``length`` media bytes) read
    into ``buf`` (its header and at least its stored data): ``(data, stored length)``, or ``(None, 0)``
    for anything unusual, which the reader's diagnosing path (:func:`.layout.decode_chunk`) then names.

    ``leaves``: the digest table (from chunk ``leaves_from`` on), whose entry must equal the record's
    digest, or ``None``. The hot path of every chunk read and scan, in the reader's threads and in the
    verify processes alike.
    """
    if len(buf) < RECORD_SIZE:
        return None, 0
    rtype, flags, method, reserved, number, stored, decoded, digest, crc = _RECORD_UNPACK(buf)
    if not (
        crc == zlib.crc32(buf[:60]) and number == index and rtype == T_CHUNK and decoded == length
        and not reserved and (leaves is None or leaves.startswith(digest, 32 * (index - leaves_from)))
    ):
        return None, 0
    data: bytes | None = None
    if flags == FLAG_ZERO:
        if not stored and not method and digest == zero_digest(length):
            data = zeros(length)
    elif not flags:
        if not method and stored == length and len(buf) >= RECORD_SIZE + length:
            data = bytes(buf[RECORD_SIZE : RECORD_SIZE + length])
            if hashlib.sha256(data).digest() != digest:
                data = None
    elif flags == FLAG_COMPRESSED and 0 < stored < length and len(buf) >= RECORD_SIZE + stored:
        try:
            if method == M_ZLIB:
                d = _zlib_decompressobj()
                data = d.decompress(buf[RECORD_SIZE : RECORD_SIZE + stored], length)
                if d.unconsumed_tail or d.unused_data or not d.eof:  # "nothing left over"
                    data = None
            else:
                dec = DECOMPRESSORS.get(method)
                if dec is not None:
                    data = dec(buf[RECORD_SIZE : RECORD_SIZE + stored], length)
        except Exception:  # undecodable: diagnosed by the caller's full check
            data = None
        if data is not None and (len(data) != length or hashlib.sha256(data).digest() != digest):
            data = None
    return data, stored


def read_runs(locations: Sequence[int], i: int, hi: int, first_chunk: int, chunk_size: int, size: int,
              fds: Sequence[int]) -> Iterator[tuple[int, memoryview | None]]:
    """The chunk records at ``locations[i:hi]`` (chunks ``first_chunk + i`` on; spec §4.4 locations), read
    with one ``pread`` per run of records that follow one another in a segment (``fds``: the segments'
    descriptors, in order). Yields ``(k, view)``: record ``k``'s bytes (its header, its body, maybe bytes
    after it), or ``None`` where its run could not be read (the caller reads that record again, alone).
    """
    while i < hi:
        seg = locations[i] >> 48
        first = locations[i] & _LOC_MASK
        j = i + 1
        while j < hi and locations[j] >> 48 == seg and locations[j] > locations[j - 1]:
            j += 1
        # up to the end of the run's last record at its largest (a stored chunk): bytes beyond a shorter
        # record are read and not used
        end = (locations[j - 1] & _LOC_MASK) + RECORD_SIZE + min(chunk_size, size - (first_chunk + j - 1) * chunk_size)
        buf = b""
        if 1 <= seg <= len(fds) and first >= HEADER_SIZE and end - first <= RUN_READ_MAX:
            try:
                buf = os.pread(fds[seg - 1], end - first, first)
            except OSError:  # each record is read again by the caller, which reports the error
                buf = b""
        run = memoryview(buf)
        for k in range(i, j):
            if not buf:
                yield k, None
                continue
            start = (locations[k] & _LOC_MASK) - first
            stop = (locations[k + 1] & _LOC_MASK) - first if k + 1 < j else len(run)
            yield k, run[start:stop]
        i = j
