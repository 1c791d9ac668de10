"""E01 writer: the EnCase 6 layout, byte-compatible with libewf (``formats/ewf/spec.md``, ewf-notes).

What one set looks like (ewf-notes §1.4)::

    E01 (single):  header2 header2 header volume {sectors table table2}+ data [error2] [digest] hash done
    E01 (of n):    header2 header2 header volume {sectors table table2}+ next
    E02..En-1:     data {sectors table table2}+ next
    En:            data {sectors table table2}+ [error2] [digest] hash done

Each ``sectors``/``table``/``table2`` group holds at most 65534 chunks and less than 2 GiB of chunk
data; table entries are relative to the group's base offset, the file offset of its ``sectors``
descriptor (EnCase 6+, ewf-notes §4.2, §4.4). A chunk is stored zlib-compressed only when the zlib
stream is strictly smaller than the raw chunk, else raw followed by its little-endian Adler-32
(pitfall 8). All-zero chunks are compressed once and reused, in every mode (pitfall 11).

The total size is not known while writing (standard input acquisition), so ``volume`` and every
``data`` section are written with zero counts and rewritten at close, checksums included (§6.5).
Files get their final names at once: an aborted or crashed set has no ``done`` section, which readers
report as incomplete.

Speed: chunks are compressed in a thread pool in batches (ISA-L's deflate via ``isal`` when installed,
else zlib; both release the GIL), results are written strictly in order with ``os.writev`` in large
runs, and hashing is the base class's job (one thread per algorithm), so each byte is hashed once.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import struct
import sys
import uuid
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from forensimg.compressibility import looks_incompressible
from forensimg.errors import UsageError, WriteError
from forensimg.formats.ewf import structs as S
from forensimg.formats.ewf.header import (
    build_header2_text,
    build_header_text,
    encode_header,
    encode_header2,
    header_values,
)
from forensimg.formats.ewf.naming import segment_path
from forensimg.hashing import hash_file, hash_file_direct, update_all
from forensimg.image import Range
from forensimg.outputs import OutputSet, copy_bases
from forensimg.writer import ImageWriter, WriteResult

_isal_zlib: Any
try:  # ISA-L deflate: ordinary zlib streams, several times faster than zlib at level 1
    _isal_zlib = importlib.import_module("isal.isal_zlib")
except ImportError:  # pragma: no cover - isal is a dependency, but stay usable without it
    _isal_zlib = None

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "MAX_TABLE_ENTRIES",
    "RECOMMENDED_MIN_SEGMENT_SIZE",
    "EWFWriter",
    "create_writer",
]

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_SIZE = 1500 * 1024 * 1024
"""1500 MiB, libewf's ``LIBEWF_DEFAULT_SEGMENT_FILE_SIZE`` (ewfacquire shows it as "1.4 GiB")."""

RECOMMENDED_MIN_SEGMENT_SIZE = 1024 * 1024
"""ewfacquire refuses segments below 1 MiB; the library accepts smaller ones (tests) but examiners
should not go below this."""

MAX_TABLE_ENTRIES = 65534
"""Chunks per ``table`` in EnCase 6+ files (ewf-notes §4.5)."""
GROUP_CHUNKS = 2048
"""Chunks per ``sectors``/``table``/``table2`` group written by forensimg (any count up to
:data:`MAX_TABLE_ENTRIES` is valid, ewf-notes §4.4): a group's ``sectors`` descriptor is final only when
the group closes, so smaller groups let the segment's SHA-256 follow the writing (see ``_StreamHash``)."""

_MAX_GROUP_BYTES = 0x7FFFFFFF
"""Table entries hold a 31-bit offset from the group base (ewf-notes §4.4)."""

_DESC = S.DESCRIPTOR_SIZE  # 76
_VOLUME_SECTION = _DESC + S.VOLUME_SIZE  # 1128
_DIGEST_SECTION = _DESC + S.DIGEST_SIZE  # 156
_HASH_SECTION = _DESC + S.HASH_SIZE  # 112
_TABLE_FIXED = _DESC + S.TABLE_HEADER_SIZE + 4  # descriptor + header + footer = 104

COMPRESSION_LEVELS: Mapping[str, int] = {"none": 0, "fast": 1, "best": 2}
"""Volume byte 52 per compression choice (ewf-notes §3.1)."""

MEDIA_TYPES: Mapping[str, int] = {"removable": 0x00, "fixed": 0x01, "optical": 0x03, "memory": 0x10}
"""Volume byte 0 per media type (ewf-notes §3.1)."""

_FLAG_IMAGE = 0x01  # always set (pitfall 17)
_FLAG_PHYSICAL = 0x02

_BATCH_BYTES = 1 << 20  # media bytes per compression job
_FLUSH_BYTES = 8 << 20  # buffered output written with one writev
_SYNC_BYTES = 64 << 20  # written bytes between background syncs (with fsync)
_IOV_MAX = 1000  # below Linux IOV_MAX (1024): flushed before a chunk (2 entries) or a run would pass it

_le_u32 = struct.Struct("<I")

# Adler-32 of raw chunks: ISA-L's is ~6x faster than zlib's on this machine (same values)
_adler32: Callable[[memoryview | bytes], int] = _isal_zlib.adler32 if _isal_zlib is not None else zlib.adler32

Compressor = Callable[[memoryview | bytes], bytes]


def _compressor(compression: str) -> tuple[Compressor | None, str]:
    """The chunk compressor for a choice, and a label naming the library and level used."""
    if compression == "none":
        return None, "none"
    if compression == "fast":
        if _isal_zlib is not None:
            isal = _isal_zlib
            # ISA-L level 1: ~15 % faster than level 2 on incompressible chunks, output within 0.2 %
            return (lambda d: isal.compress(d, 1)), "isal-1"
        return (lambda d: zlib.compress(d, 1)), "zlib-1"
    # best: zlib level 9, as libewf's "best" (78 da); smaller than ISA-L's level 3
    return (lambda d: zlib.compress(d, 9)), "zlib-9"


# A chunk ready for the file: (payload, LE Adler-32 trailer) for raw chunks, (zlib stream, None) for
# compressed ones.
_Stored = tuple[memoryview | bytes, bytes | None]


class _Run(NamedTuple):
    """Encoded chunks of one pool job, with what :meth:`EWFWriter._place` needs to place them at once."""

    stored: list[_Stored]
    iov: list[memoryview | bytes]  # payloads and Adler-32 trailers in file order
    lengths: list[int]  # stored bytes per chunk (trailer included)
    flags: list[int]  # table entry flag per chunk: bit 31 for a compressed chunk (ewf-notes §4.1)
    total: int

    @staticmethod
    def of(stored: list[_Stored]) -> _Run:
        iov: list[memoryview | bytes] = []
        lengths = []
        flags = []
        for payload, trailer in stored:
            iov.append(payload)
            if trailer is None:
                lengths.append(len(payload))
                flags.append(0x80000000)
            else:
                iov.append(trailer)
                lengths.append(len(payload) + 4)
                flags.append(0)
        return _Run(stored, iov, lengths, flags, sum(lengths))


def _encode_batch(
    data: bytes, start: int, stop: int, chunk_size: int, compress: Compressor | None, zero: bytes, zero_stored: bytes,
    probe: bool = False,
) -> _Run:
    """Encode the chunks of ``data[start:stop]`` (runs on a pool thread; zlib/isal release the GIL).

    ``probe``: store a chunk raw without deflating it when a sample of it does not compress
    (:mod:`forensimg.compressibility`; ``fast`` only: ``best`` deflates every chunk).
    """
    out: list[_Stored] = []
    mv = memoryview(data)
    adler = _adler32
    pack = _le_u32.pack
    for o in range(start, stop, chunk_size):
        e = o + chunk_size if o + chunk_size <= stop else stop
        n = e - o
        # cheap first-byte test before the 32 KiB compare (a slice of bytes compares with memcmp)
        if n == chunk_size and data[o] == 0 and data[o:e] == zero:
            out.append((zero_stored, None))
            continue
        view = mv[o:e]
        if compress is not None and not (probe and looks_incompressible(view)):
            c = compress(view)
            if len(c) < n:  # strictly smaller, else raw + checksum (pitfall 8)
                out.append((c, None))
                continue
        out.append((view, pack(adler(view))))
    return _Run.of(out)


def _with_checksum(raw: bytes | bytearray) -> bytes:
    """Replace the last 4 bytes with the Adler-32 of everything before them (pitfall 3)."""
    b = bytearray(raw)
    _le_u32.pack_into(b, len(b) - 4, zlib.adler32(memoryview(b)[:-4]))
    return bytes(b)


def _descriptor(kind: str, offset: int, size: int) -> bytes:
    """A 76-byte section descriptor; ``size`` includes the descriptor. ``next`` = ``offset + size``.

    ``next``/``done`` sections have size 0 and point at themselves (ewf-notes §1.2).
    """
    raw = S.section_descriptor.build(
        {"type": kind, "next": offset + size, "size": size, "padding": bytes(40), "checksum": 0}
    )
    return _with_checksum(raw)


def _entries_bytes(entries: array[int]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover - EWF is little-endian
        entries = array("I", entries)
        entries.byteswap()
    return entries.tobytes()


class EWFWriter(ImageWriter):
    """Writes an E01 set in the EnCase 6 layout (see the module docstring).

    Args:
        path: the first segment (``NAME.E01``; later segments are ``.E02`` … ``.E99``, ``.EAA`` …).
        segment_size: maximum bytes per segment file; default 1500 MiB as ewfacquire. The library
            accepts anything that holds one chunk (for tests); examiners should use at least 1 MiB
            (:data:`RECOMMENDED_MIN_SEGMENT_SIZE`).
        compression: ``"none"``, ``"fast"`` (deflate level 1, ISA-L when available) or ``"best"``
            (zlib level 9). All-zero chunks are compressed in every mode.
        sectors_per_chunk: 16 … 32768, a power of two (default 64: 32 KiB chunks with 512-byte sectors).
        chunk_size: the same in bytes (a multiple of the sector size), as other formats take it.
        media_type: ``fixed``, ``removable``, ``optical`` or ``memory``; default the source's, else fixed.
        threads: compression threads (default: the number of CPUs, at most 8).
        software: acquisition software recorded in the headers (``av``, ≤ 11 characters).
        os_name: acquisition OS recorded in the headers (``ov``, ≤ 23 characters).
        fsync: flush every segment to stable storage at close (default).
        mirror_paths: first-segment paths of further identical copies (see :mod:`forensimg.outputs`):
            each chunk is compressed once and the same bytes go to every copy, segment by segment (each
            copy named from its own first path). A copy that fails is dropped (it holds a prefix of the
            others' files, without ``done``); the writer raises only when every copy failed. Per-copy
            results are in ``WriteResult.details["copies"]``.
        direct: write the segments with ``O_DIRECT`` where the file system supports it (default), and read
            them back the same way for their SHA-256, bypassing the page cache (on this VM, writing fresh
            page-cache pages cost up to 1.8 s of system time per 400 MB); ``False`` for ordinary I/O.
        **kwargs: see :class:`~forensimg.writer.ImageWriter` (case, source, sector_size, hashes, ...).

    Raises:
        UsageError: an invalid option.
        WriteError: a segment file exists already (without ``overwrite``) or cannot be created.
    """

    format: ClassVar[str] = "ewf"
    requires_whole_sectors: ClassVar[bool] = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        segment_size: int | None = None,
        compression: str = "fast",
        sectors_per_chunk: int | None = None,
        chunk_size: int | None = None,
        media_type: str | None = None,
        threads: int | None = None,
        software: str | None = None,
        os_name: str | None = None,
        fsync: bool = True,
        mirror_paths: Sequence[str | os.PathLike[str]] = (),
        direct: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(path, **kwargs)
        self._pool: ThreadPoolExecutor | None = None
        try:
            self._direct = direct
            self._out = OutputSet(copy_bases(self.path, mirror_paths), _segment_namer, self._check_target,
                                  lambda: self._pos, direct=direct)
            if chunk_size is not None:
                # the registry-wide option, in bytes; EWF stores chunks as a sector count
                if chunk_size <= 0 or chunk_size % self.sector_size:
                    raise UsageError(f"chunk size {chunk_size} is not a multiple of the sector size {self.sector_size}")
                spc = chunk_size // self.sector_size
                if sectors_per_chunk is not None and sectors_per_chunk != spc:
                    raise UsageError(f"chunk size {chunk_size} contradicts sectors_per_chunk={sectors_per_chunk}")
                sectors_per_chunk = spc
            spc_value = 64 if sectors_per_chunk is None else sectors_per_chunk
            self._setup(segment_size, compression, spc_value, media_type, threads, software, os_name, fsync)
            self._open_segment()
        except BaseException:
            if self._hasher is not None:
                self._hasher.close()
            self._release()
            raise

    def _setup(
        self,
        segment_size: int | None,
        compression: str,
        sectors_per_chunk: int,
        media_type: str | None,
        threads: int | None,
        software: str | None,
        os_name: str | None,
        fsync: bool,
    ) -> None:
        self._paths: list[Path] = []
        compression = (compression or "none").lower()
        if compression not in COMPRESSION_LEVELS:
            raise UsageError(f"unknown compression '{compression}' (choose none, fast or best)")
        spc = int(sectors_per_chunk)
        if spc < 16 or spc > 32768 or spc & (spc - 1):
            raise UsageError(f"sectors per chunk must be a power of two from 16 to 32768, not {sectors_per_chunk}")
        if self.sector_size < 512 or self.sector_size > 65536:
            raise UsageError(f"E01 bytes per sector must be 512 … 65536, not {self.sector_size}")
        mt = (media_type or (self.source.media_type if self.source else "") or "fixed").lower()
        if mt not in MEDIA_TYPES:
            raise UsageError(f"unknown media type '{media_type}' (choose {', '.join(MEDIA_TYPES)})")
        if spc * self.sector_size + 4 + _DESC > _MAX_GROUP_BYTES:
            raise UsageError(f"chunks of {spc} × {self.sector_size} bytes are too large for E01 (31-bit offsets)")
        self.compression = compression
        self.sectors_per_chunk = spc
        self.chunk_size = spc * self.sector_size
        self.media_type = mt
        self.segment_size = DEFAULT_SEGMENT_SIZE if segment_size is None else int(segment_size)
        # random (v4) set GUID in the little-endian GUID layout of Windows, so that libewf and EnCase show
        # it as the canonical UUID string; readers treat the 16 bytes as opaque (ewf-notes §11)
        self.set_uuid = uuid.uuid4()
        self.set_identifier = self.set_uuid.bytes_le
        self._fsync = fsync
        # with fsync: what was written is synced by a helper thread every _SYNC_BYTES while writing goes
        # on (at most one sync in flight), so the sync at close has little left to do
        self._syncer: ThreadPoolExecutor | None = None
        self._sync_future: Future[list[tuple[int, OSError]]] | None = None
        self._unsynced = 0
        self._compress, self._compressor_label = _compressor(compression)
        # every all-zero full chunk is stored as this one stream (ewf-notes pitfall 11)
        self._zero = bytes(self.chunk_size)
        self._zero_stored = (self._compress or (lambda d: zlib.compress(d, 1)))(self._zero)
        # header sections: the same text for the whole set
        system_date = datetime.now(UTC)
        src = self.source
        values = header_values(
            self.case,
            acquired_at=self.acquired_at,
            system_date=system_date,
            model=src.model if src else "",
            serial=src.serial if src else "",
            software=software,
            os_name=os_name,
        )
        self._header_values = values
        self._header2 = zlib.compress(encode_header2(build_header2_text(values)))
        self._header = zlib.compress(encode_header(build_header_text(values)))
        # sizing: what the first segment needs before and after its chunks
        first_overhead = S.FILE_HEADER_SIZE + 2 * (_DESC + len(self._header2)) + _DESC + len(self._header)
        first_overhead += _VOLUME_SECTION
        minimum = first_overhead + _DESC + self.chunk_size + 4 + 2 * (_TABLE_FIXED + 4) + self._closing_reserve(0)
        if self.segment_size < minimum:
            raise UsageError(
                f"segment size {self.segment_size} cannot hold one {self.chunk_size}-byte chunk "
                f"(minimum {minimum}; at least {RECOMMENDED_MIN_SEGMENT_SIZE} is recommended)"
            )
        n = threads if threads is not None else min(os.cpu_count() or 1, 8)
        self.threads = max(1, int(n))
        self._inflight: deque[Future[_Run]] = deque()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="forensimg-ewf")
        self._max_inflight = max(8, 4 * self.threads)  # batches of 1 MiB: bounds memory, rides out slow writes
        self._pending = bytearray()
        # output state
        self._seg_pos = 0  # logical end of the current segment (written + buffered)
        self._iov: list[memoryview | bytes | bytearray] = []
        self._iov_bytes = 0
        self._iov_marks: list[tuple[int, int]] = []  # (end of a chunk within _iov, its media bytes)
        self._flushed_to = 0  # file offset up to which the buffer has been written
        self._data_sections: list[tuple[Path, int]] = []  # (segment, offset) of each data placeholder
        self._volume_at = 0
        # group state
        self._group_base: int | None = None
        self._group_desc: bytearray | None = None
        self._group_entries: array[int] = array("I")
        self._chunk_count = 0
        self._seg_chunks = 0
        self._group_limit = min(MAX_TABLE_ENTRIES, GROUP_CHUNKS)
        # the volume written at the start: with the source's size known, the final counts are written at
        # once (as ewfacquire does), so nothing before the chunks needs patching and the SHA-256 of every
        # segment follows the writing; otherwise the counts are patched at close and the files read back
        self._first_volume = self._expected_volume()
        self._stream = self._first_volume is not None
        self._seg_shash: _StreamHash | None = None
        self._hash_pool: ThreadPoolExecutor | None = None
        self._stream_digests: list[str] = []

    # -- sizing -----------------------------------------------------------------------------------

    def _closing_reserve(self, error_ranges: int) -> int:
        """Bytes the end of a segment may need: ``next``, or the closing sections of the last one."""
        error2 = _DESC + S.ERROR2_HEADER_SIZE + 8 * error_ranges + 4 if error_ranges else 0
        last = _VOLUME_SECTION + error2 + _DIGEST_SECTION + _HASH_SECTION + _DESC
        return max(_DESC, last)

    # -- raw output -------------------------------------------------------------------------------

    def _emit(self, buf: memoryview | bytes | bytearray) -> None:
        self._iov.append(buf)
        n = len(buf)  # memoryviews here are 1-D bytes views: len == nbytes
        self._iov_bytes += n
        self._seg_pos += n
        if self._iov_bytes >= _FLUSH_BYTES or len(self._iov) >= _IOV_MAX:
            self._flush()

    def _flush(self) -> None:
        if not self._iov:
            return
        iov, total, marks = self._iov, self._iov_bytes, self._iov_marks
        self._iov = []
        self._iov_bytes = 0
        self._iov_marks = []
        # the same bytes to every live copy (a copy that fails is dropped; WriteError when none is left)
        self._out.writev(iov, total, marks)
        if self._seg_shash is not None:
            self._seg_shash.feed(iov, self._group_desc)
        self._flushed_to += total
        self._unsynced += total
        if self._fsync and self._unsynced >= _SYNC_BYTES:
            self._background_sync()

    def _background_sync(self) -> None:
        """Sync the current segment of every copy in a helper thread (the previous sync must be done)."""
        self._wait_sync()
        self._unsynced = 0
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(1, thread_name_prefix="forensimg-ewf-sync")
        self._sync_future = self._syncer.submit(self._out.sync_job(data_only=True))

    def _wait_sync(self) -> None:
        fut, self._sync_future = self._sync_future, None
        if fut is not None:
            self._out.apply_sync_results(fut.result())

    # -- segments ---------------------------------------------------------------------------------

    def _open_segment(self) -> None:
        number = len(self._paths) + 1
        try:
            p = self.path if number == 1 else segment_path(self.path, number)
        except ValueError as exc:
            raise WriteError(f"too many segments for '{self.path}': {exc}", path=self.path) from None
        try:
            if number == 1:
                self._out.check_new(1)  # refuse before creating any copy
            else:
                for c in self._out.live:
                    _segment_namer(c.base, number)  # every copy can take this many segments
        except ValueError as exc:
            raise WriteError(f"too many segments for '{self.path}': {exc}", path=self.path) from None
        self._out.open_segment(number)
        self._paths.append(p)
        if self._stream:
            if self._hash_pool is None:  # one thread: the bytes are hashed in order
                self._hash_pool = ThreadPoolExecutor(1, thread_name_prefix="forensimg-ewf-seghash")
            self._seg_shash = _StreamHash(self._hash_pool)
        self._seg_pos = 0
        self._flushed_to = 0
        self._seg_chunks = 0
        self._emit(S.file_header.build({"segment_number": number}))
        if number == 1:
            for kind, data in (("header2", self._header2), ("header2", self._header2), ("header", self._header)):
                self._emit(_descriptor(kind, self._seg_pos, _DESC + len(data)))
                self._emit(data)
            self._volume_at = self._seg_pos
            self._emit_volume("volume")
        else:
            self._data_sections.append((p, self._seg_pos))
            self._emit_volume("data")

    def _expected_volume(self) -> bytes | None:
        """The volume/data section body with the counts the source's size gives (``None``: size unknown)."""
        size = self.source.size if self.source is not None else None
        if not size:
            return None
        padded = -(-size // self.sector_size) * self.sector_size  # whole sectors, as the writer pads
        return self._volume_data(padded // self.sector_size, -(-padded // self.chunk_size))

    def _volume_data(self, sector_count: int | None = None, chunk_count: int | None = None) -> bytes:
        """The volume/data section body, with the counts so far unless given."""
        if sector_count is None:
            sector_count = self.position // self.sector_size
        if chunk_count is None:
            chunk_count = self._chunk_count
        flags = _FLAG_IMAGE
        if self.source is None or self.source.is_physical:
            flags |= _FLAG_PHYSICAL
        raw = S.volume.build(
            {
                "media_type": MEDIA_TYPES[self.media_type],
                "chunk_count": chunk_count,
                "sectors_per_chunk": self.sectors_per_chunk,
                "bytes_per_sector": self.sector_size,
                "sector_count": sector_count,
                "cylinders": 0,
                "heads": 0,
                "sectors": 0,
                "media_flags": flags,
                "palm_volume_start": 0,
                "smart_logs_start": 0,
                "compression_level": COMPRESSION_LEVELS[self.compression],
                "error_granularity": self.sectors_per_chunk,
                "set_identifier": self.set_identifier,
                "unknown": bytes(963),
                "signature": bytes(5),
                "checksum": 0,
            }
        )
        return _with_checksum(raw)

    def _emit_volume(self, kind: str, *, final: bool = False) -> None:
        self._emit(_descriptor(kind, self._seg_pos, _VOLUME_SECTION))
        body = self._volume_data() if final or self._first_volume is None else self._first_volume
        self._emit(body)

    def _end_segment(self) -> None:
        """Close the group and end the segment with ``next`` (more segments follow)."""
        self._close_group()
        self._emit(_descriptor("next", self._seg_pos, 0))
        self._flush()
        self._finish_stream_hash()
        self._wait_sync()
        self._out.close_segment()

    def _finish_stream_hash(self) -> None:
        shash, self._seg_shash = self._seg_shash, None
        if shash is not None:
            self._stream_digests.append(shash.hexdigest())

    # -- groups -----------------------------------------------------------------------------------

    def _open_group(self) -> None:
        self._group_base = self._seg_pos
        self._group_desc = bytearray(_DESC)  # filled in when the group closes
        self._group_entries = array("I")
        self._emit(self._group_desc)

    def _close_group(self) -> None:
        base = self._group_base
        if base is None:
            return
        assert self._group_desc is not None
        desc = _descriptor("sectors", base, self._seg_pos - base)
        self._group_desc[:] = desc  # the bytes held for the segment's SHA-256 (and those not yet written)
        if self._flushed_to > base:  # already on disk: patch it there
            self._flush()
            self._out.pwrite(desc, base)
        entries = _entries_bytes(self._group_entries)
        header = _with_checksum(
            S.table_header.build({"entry_count": len(self._group_entries), "base_offset": base, "checksum": 0})
        )
        footer = _le_u32.pack(zlib.adler32(entries))
        size = _DESC + len(header) + len(entries) + 4
        for kind in ("table", "table2"):  # table2: byte-identical recovery copy (ewf-notes §4.1)
            self._emit(_descriptor(kind, self._seg_pos, size))
            self._emit(header)
            self._emit(entries)
            self._emit(footer)
        self._group_base = None
        self._group_desc = None
        if self._seg_shash is not None:
            self._seg_shash.release()  # everything up to here is final now

    # -- chunks -----------------------------------------------------------------------------------

    def _make_room(self, length: int, reserve: int) -> None:
        """Slow path of :meth:`_place`: close the group and/or the segment so that a chunk of ``length``
        stored bytes fits, then open a group for it."""
        while True:
            base = self._group_base
            if base is not None and (
                len(self._group_entries) >= self._group_limit or self._seg_pos + length - base > _MAX_GROUP_BYTES
            ):
                self._close_group()
                base = None
            n = len(self._group_entries) + 1 if base is not None else 1
            need = self._seg_pos + (_DESC if base is None else 0) + length + 2 * (_TABLE_FIXED + 4 * n) + reserve
            if need <= self.segment_size or self._seg_chunks == 0:
                break
            self._end_segment()
            self._open_segment()
        if self._group_base is None:
            self._open_group()

    def _place(self, run: _Run) -> None:
        """Append a pool job's encoded chunks; a run that fits the open group and segment whole is placed
        at once (its table entries follow from the stored lengths), any other chunk by chunk."""
        base = self._group_base
        n = len(run.lengths)
        entries = self._group_entries
        pos = self._seg_pos
        if (
            base is None
            or len(entries) + n > self._group_limit
            or pos + run.total - base > _MAX_GROUP_BYTES
            or pos + run.total + 2 * (_TABLE_FIXED + 4) + 8 * (len(entries) + n)
            + self._closing_reserve(len(self._unreadable)) > self.segment_size
        ):
            self._place_each(run.stored)
            return
        if len(self._iov) + len(run.iov) > _IOV_MAX:
            self._flush()  # one writev takes at most IOV_MAX buffers
        rel = pos - base
        ends = list(accumulate(run.lengths, initial=rel))
        entries.extend([e | f for e, f in zip(ends, run.flags, strict=False)])
        self._iov.extend(run.iov)
        mark = self._iov_bytes - rel
        cs = self.chunk_size
        self._iov_marks.extend([(mark + e, cs) for e in ends[1:]])
        self._seg_pos = pos + run.total
        self._iov_bytes += run.total
        self._seg_chunks += n
        self._chunk_count += n
        if self._chunk_count > 0xFFFFFFFF:
            raise WriteError("more than 2^32 - 1 chunks: use a larger chunk size", path=self.path)
        if self._iov_bytes >= _FLUSH_BYTES or len(self._iov) >= _IOV_MAX:
            self._flush()

    def _place_each(self, stored: list[_Stored]) -> None:
        """Append encoded chunks to the output, in order, starting groups and segments as needed.

        Sizing (ewf-notes §7): a chunk goes into the current segment only if the segment can still take
        it, its two table entries, the group's table/table2 sections and the closing sections of a last
        segment (``data``, ``error2`` for the ranges known so far, ``digest``, ``hash``, ``done``).
        """
        limit = self.segment_size
        cs = self.chunk_size  # media per chunk (the last one may be shorter: media_stored caps it)
        reserve = self._closing_reserve(len(self._unreadable))
        tables = 2 * (_TABLE_FIXED + 4)
        for payload, trailer in stored:
            length = len(payload) + 4 if trailer is not None else len(payload)
            base = self._group_base
            pos = self._seg_pos
            entries = self._group_entries
            if (
                base is None
                or len(entries) >= self._group_limit
                or pos + length - base > _MAX_GROUP_BYTES
                or pos + length + tables + 8 * len(entries) + reserve > limit
            ):
                self._make_room(length, reserve)
                base = self._group_base
                pos = self._seg_pos
                entries = self._group_entries
            assert base is not None
            offset = pos - base
            entries.append(offset if trailer is not None else offset | 0x80000000)
            iov = self._iov
            iov.append(payload)
            if trailer is not None:
                iov.append(trailer)
            self._seg_pos = pos + length
            self._iov_bytes += length
            self._iov_marks.append((self._iov_bytes, cs))
            self._seg_chunks += 1
            if self._iov_bytes >= _FLUSH_BYTES or len(iov) >= _IOV_MAX:
                self._flush()
        self._chunk_count += len(stored)
        if self._chunk_count > 0xFFFFFFFF:
            raise WriteError("more than 2^32 - 1 chunks: use a larger chunk size", path=self.path)

    def _submit(self, data: bytes, start: int, stop: int) -> None:
        assert self._pool is not None
        step = max(1, _BATCH_BYTES // self.chunk_size) * self.chunk_size
        for s in range(start, stop, step):
            e = min(s + step, stop)
            fut = self._pool.submit(
                _encode_batch, data, s, e, self.chunk_size, self._compress, self._zero, self._zero_stored,
                self.compression == "fast",
            )
            self._inflight.append(fut)
            while self._inflight and (len(self._inflight) > self._max_inflight or self._inflight[0].done()):
                self._place(self._inflight.popleft().result())

    def _drain(self) -> None:
        while self._inflight:
            self._place(self._inflight.popleft().result())

    def _write(self, data: bytes) -> None:
        cs = self.chunk_size
        off = 0
        n = len(data)
        if self._pending:
            take = min(cs - len(self._pending), n)
            self._pending += data[:take]
            off = take
            if len(self._pending) < cs:
                return
            self._submit(bytes(self._pending), 0, cs)
            self._pending = bytearray()
        end = off + (n - off) // cs * cs
        if end > off:
            self._submit(data, off, end)
        if end < n:
            self._pending += data[end:]

    # -- closing ----------------------------------------------------------------------------------

    def _error_entries(self, unreadable: Sequence[Range]) -> list[tuple[int, int]]:
        """error2 entries (first sector, sector count) as u32 pairs; sectors past 2^32 cannot be stored."""
        bps = self.sector_size
        sectors: list[list[int]] = []  # [first, end) in sectors; byte ranges sharing a sector merge
        for r in unreadable:
            first, end = r.start // bps, -(-r.end // bps)
            if sectors and first <= sectors[-1][1]:
                sectors[-1][1] = max(sectors[-1][1], end)
            else:
                sectors.append([first, end])
        out: list[tuple[int, int]] = []
        for first, last in sectors:
            if first > 0xFFFFFFFF:
                log.warning("unreadable range at sector %d is past what error2 can record (2^32 sectors)", first)
                continue
            while last > first:
                count = min(last - first, 0xFFFFFFFF)
                out.append((first, count))
                first += count
                if first > 0xFFFFFFFF:
                    break
        return out

    def _finalize(self, hashes: Mapping[str, str], unreadable: tuple[Range, ...]) -> WriteResult:
        if self._pending:
            self._submit(bytes(self._pending), 0, len(self._pending))
            self._pending = bytearray()
        self._drain()
        self._close_group()
        errors = self._error_entries(unreadable)
        end = self._closing_reserve(len(errors))
        if self._seg_pos + end > self.segment_size and self._seg_chunks > 0:
            # unreadable ranges reported after the last chunk was placed made the closing sections too
            # big for this segment: they go to one more segment without chunks (data, error2, digest,
            # hash, done), which libewf 20140813, current libewf and forensimg read
            self._end_segment()
            self._open_segment()
        if self._seg_pos + end > self.segment_size:
            log.warning("segment '%s' ends past the segment size: %d error2 entries", self._paths[-1], len(errors))
        single = len(self._paths) == 1
        if single:
            self._emit_volume("data", final=True)
        if errors:
            entries = b"".join(struct.pack("<II", a, b) for a, b in errors)
            header = _with_checksum(
                S.error2_header.build({"entry_count": len(errors), "padding": bytes(512), "checksum": 0})
            )
            body = header + entries + _le_u32.pack(zlib.adler32(entries))
            self._emit(_descriptor("error2", self._seg_pos, _DESC + len(body)))
            self._emit(body)
        md5 = bytes.fromhex(hashes["md5"]) if "md5" in hashes else None
        sha1 = bytes.fromhex(hashes["sha1"]) if "sha1" in hashes else None
        if sha1 is not None:  # digest: EnCase 6.12+, only with a SHA-1 (ewf-notes §1.4, §6.2)
            body = _with_checksum(
                S.digest_struct.build({"md5": md5 or bytes(16), "sha1": sha1, "padding": bytes(40), "checksum": 0})
            )
            self._emit(_descriptor("digest", self._seg_pos, _DESC + len(body)))
            self._emit(body)
        if md5 is not None:
            body = _with_checksum(S.hash_struct.build({"md5": md5, "unknown": bytes(16), "checksum": 0}))
            self._emit(_descriptor("hash", self._seg_pos, _DESC + len(body)))
            self._emit(body)
        self._emit(_descriptor("done", self._seg_pos, 0))
        self._flush()
        self._finish_stream_hash()
        # the counts are known now: rewrite volume and every data section unless they were written with
        # the final counts from the start (ewf-notes §6.5)
        volume = self._volume_data()
        last = len(self._paths)
        patches: dict[int, list[int]] = {}  # segment number -> offsets of its volume/data section
        if volume != self._first_volume:
            self._stream_digests = []  # patched in place: the digests of the written bytes no longer apply
            patches.setdefault(1, []).append(self._volume_at)
            index = {p: i + 1 for i, p in enumerate(self._paths)}
            for p, off in self._data_sections:
                patches.setdefault(index[p], []).append(off)
        hashing: Future[dict[str, str]] | None = None
        try:
            self._wait_sync()
            for number, offsets in patches.items():
                for off in offsets:
                    self._out.pwrite(volume, off + _DESC, number)
            # every byte is in place: the segment files' SHA-256 (for reports) is computed from the first
            # live copy while the files are synced (hashlib releases the GIL)
            assert self._pool is not None
            hashing = self._pool.submit(self._hash_segments)
            if self._fsync:
                for number in range(1, last):
                    self._out.sync_segment(number)
                self._out.fsync()
            segment_sha256 = hashing.result()
        finally:
            if hashing is not None:
                hashing.cancel()
            self._out.close_segment()
        self._shutdown_pool()
        return WriteResult(
            format=self.format,
            paths=tuple(self._out.primary.paths),
            size=self.position,
            hashes=dict(hashes),
            unreadable=unreadable,
            details={
                "layout": "encase6",
                "segments": len(self._paths),
                "chunk_count": self._chunk_count,
                "sectors_per_chunk": self.sectors_per_chunk,
                "bytes_per_sector": self.sector_size,
                "sector_count": self.position // self.sector_size,
                "compression": self.compression,
                "compressor": self._compressor_label,
                "set_identifier": str(self.set_uuid),
                "error2_entries": len(errors),
                "copies": self._out.details(),
                "segment_sha256": segment_sha256,
            },
        )

    @property
    def media_stored(self) -> int:
        """Media bytes of the chunks the first copy's files took whole (to the chunk)."""
        return min(self._out.copies[0].media, self._pos)

    @property
    def copies(self) -> list[dict[str, Any]]:
        """Every copy (the first is ``path``): paths, whether it is still complete, failure offset and error."""
        return self._out.details()

    def _hash_segments(self) -> dict[str, str]:
        """SHA-256 of every segment file of the first live copy, read back from the file once it is final.

        Every live copy got the same bytes and the same patches (a copy that missed any was dropped), so
        the digests are listed for the matching segment of each live copy (as fimg's writer does)."""
        live = self._out.live
        if not live:
            return {}
        if len(self._stream_digests) == len(live[0].paths):
            digests = self._stream_digests  # computed from the bytes written, every byte final
        elif self._stream:
            # the counts had to be patched at close: read the final files back (not the page cache)
            digests = [hash_file_direct(str(p)) if self._direct else hash_file(str(p))["sha256"]
                       for p in live[0].paths]
        else:
            return {}  # size unknown from the start: a caller that needs the digests reads the files
        return {str(p): d for c in live for p, d in zip(c.paths, digests, strict=True)}

    def _shutdown_pool(self) -> None:
        for name in ("_syncer", "_hash_pool"):
            ex: ThreadPoolExecutor | None = getattr(self, name, None)  # None: the constructor failed first
            setattr(self, name, None)
            if ex is not None:
                ex.shutdown(wait=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            for f in self._inflight:
                f.cancel()
            self._inflight.clear()
            pool.shutdown(wait=True)

    def _release(self) -> None:
        self._shutdown_pool()
        out: OutputSet | None = getattr(self, "_out", None)  # None: the constructor failed before it
        if out is not None:
            out.close_segment()

    def _abort(self) -> None:
        """Stop; what was written stays, without ``done`` (readers report the set as incomplete).

        Best effort: chunks already handed over are written and the open group gets its tables, so
        that the data up to the failure remains recoverable; any error on the way is ignored (the
        abort may be the consequence of a write error).
        """
        try:
            if self._out.is_open:
                self._drain()
                self._close_group()
                self._flush()
        except (OSError, WriteError, UsageError):
            pass
        finally:
            self._iov = []
            self._release()


class _StreamHash:
    """SHA-256 of a segment file computed from the bytes appended to it, in order, on a pool thread.

    The only bytes of a segment that change after they are written (with the counts known from the start)
    are the open group's ``sectors`` descriptor, filled in when the group closes: bytes from that
    descriptor on are held (references, no copies) until :meth:`release`, which :class:`EWFWriter` calls
    when the group is complete. So at most one group (``GROUP_CHUNKS`` chunks) is held at a time.
    """

    def __init__(self, pool: ThreadPoolExecutor) -> None:  # a one-thread pool: the bytes in order
        self._h = hashlib.sha256()
        self._pool = pool
        self._held: list[Any] = []
        self._barrier: Any = None
        self._job: Future[None] | None = None

    def feed(self, items: Sequence[Any], barrier: Any) -> None:
        """Bytes appended (in file order); ``barrier``: the open group's descriptor (held from there on)."""
        self._held.extend(items)
        self._barrier = barrier
        self._hash_upto_barrier()

    def release(self) -> None:
        """The open group is complete: everything held is final."""
        self._barrier = None
        self._hash_upto_barrier()

    def _hash_upto_barrier(self) -> None:
        cut = len(self._held)
        if self._barrier is not None:
            for i, item in enumerate(self._held):
                if item is self._barrier:
                    cut = i
                    break
        if cut == 0:
            return
        ready = self._held[:cut]
        del self._held[:cut]
        self._job = self._pool.submit(update_all, self._h, ready)

    def hexdigest(self) -> str:
        """The digest of everything fed (all of it must have been released)."""
        self.release()
        if self._job is not None:
            self._job.result()
        return self._h.hexdigest()


def _segment_namer(base: Path, number: int) -> Path:
    return base if number == 1 else segment_path(base, number)


def create_writer(path: Path, **options: Any) -> ImageWriter:
    """Registry entry point: an :class:`EWFWriter` (EnCase 6 layout)."""
    return EWFWriter(path, **options)
