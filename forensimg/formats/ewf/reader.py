"""Reader of EWF version 1 images (E01 / s01 / e01): :class:`EWFImage`.

Opening walks the section chain of every segment once (each descriptor's Adler-32 checked), reads the
volume, the header texts, the tables, hashes, sessions and acquisition errors, and keeps each table's
entries as an ``array('I')``. Reading a chunk is then index arithmetic, one ``pread`` and one check:

* compressed chunk (entry bit 31): one complete zlib stream that must end exactly at the chunk's end and
  inflate to exactly the chunk's length (zlib's own Adler-32 checks the content);
* uncompressed chunk: the chunk's bytes followed by their Adler-32, little-endian.

Checksum policy (see ``formats/ewf/spec.md`` §Checksum policy): a bad descriptor, volume or table-header
checksum makes the file unusable (:class:`~forensimg.errors.FormatError` at open, as libewf); a bad
``table`` footer falls back to the ``table2`` copy and is reported by :meth:`EWFImage.check_structure`;
a bad chunk raises :class:`~forensimg.errors.ChecksumError` (or reads as zeros with ``zero_fill``); a
bad ``hash``/``digest``/``error2``/``session``/``data`` checksum is reported by ``check_structure`` and
its content is not used.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import sys
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

from construct import ConstructError

from forensimg.errors import (
    ChecksumError,
    FormatError,
    IncompleteImageError,
    MissingSegmentError,
    UnsupportedFormatError,
)
from forensimg.formats.ewf import structs
from forensimg.formats.ewf.header import (
    HeaderText,
    case_from_values,
    merge_headers,
    parse_header_date,
    parse_header_section,
)
from forensimg.formats.ewf.naming import segment_path, set_members
from forensimg.image import Fault, FaultKind, Image, ImageInfo, Range, SourceInfo
from forensimg.streams import SegmentSet

try:  # ISA-L's zlib: same streams, several times faster (optional)
    from isal import isal_zlib as _fastzlib

    _decompressobj: Callable[[], Any] = _fastzlib.decompressobj
    _adler32: Callable[[bytes | memoryview], int] = _fastzlib.adler32
    _ZLIB_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast(type[Exception], _fastzlib.error))
except ImportError:  # pragma: no cover - isal is a declared dependency
    _decompressobj = zlib.decompressobj
    _adler32 = zlib.adler32
    _ZLIB_ERRORS = (zlib.error,)

__all__ = [
    "EWFImage",
    "decode_chunk",
    "decode_table_entries",
    "open_image",
    "order_segments",
    "read_and_decode_chunk",
    "walk_sections",
]

log = logging.getLogger(__name__)

_MASK = 0x7FFFFFFF
_pread = os.pread
_bisect_right = bisect.bisect_right
_MAX_CHUNK_SIZE = 256 << 20  # 32768 sectors x 4096 bytes = 128 MiB is the largest ewfacquire makes
_MAX_HEADER_SECTION = 64 << 20
_MEDIA_TYPES = {0x00: "removable", 0x01: "fixed", 0x03: "optical", 0x0E: "logical", 0x10: "memory"}
_COMPRESSION_LEVELS = {0: "none", 1: "fast", 2: "best"}
_REFUSED = (
    (structs.EVF2_SIGNATURE, "EWF2 (Ex01), which is read only when it is the first file given"),
    (structs.LEF2_SIGNATURE, "EWF2 logical (Lx01)"),
    (structs.LVF_SIGNATURE, "EWF logical evidence (L01)"),
    (structs.ADCRYPT_SIGNATURE, "FTK AD-encrypted EWF (ADCRYPT)"),
)


_RUN_READ_MAX = 64 << 20  # a scan task's chunks read in one pread up to this size (more: chunk by chunk)


def _decode_hot(compressed: int, stored: bytes | memoryview, expected: int, cs: int) -> bytes | None:
    """A well-formed chunk's data from its stored bytes (a complete zlib stream with nothing after it that
    inflates to exactly the chunk, or the data plus its little-endian Adler-32, spec §Chunks), else ``None``
    (the diagnosing path decides)."""
    if compressed:
        d = _decompressobj()
        try:
            out: bytes = d.decompress(stored, cs + 1)
        except _ZLIB_ERRORS:
            return None
        return out if len(out) == expected and d.eof and not d.unused_data else None
    if len(stored) == expected + 4 and _adler32(stored[:expected]) == int.from_bytes(stored[expected:], "little"):
        return bytes(stored[:expected])
    return None


def _chunk_error(
    kind: FaultKind,
    message: str,
    *,
    path: Path,
    offset: int,
    chunk: int,
    media: tuple[int, int],
    expected: str | None = None,
    found: str | None = None,
) -> ChecksumError:
    exc = ChecksumError(
        f"chunk {chunk} (media bytes {media[0]}..{media[1] - 1}) in '{path}' at offset "
        f"0x{offset:08x} ({offset}): {message}",
        path=path,
        offset=offset,
        chunk=chunk,
        media_start=media[0],
        media_end=media[1],
    )
    # read by Fault.from_error (forensimg/image.py) with getattr
    exc.fault_kind = kind  # type: ignore[attr-defined]
    exc.expected = expected  # type: ignore[attr-defined]
    exc.found = found  # type: ignore[attr-defined]
    return exc


def read_and_decode_chunk(
    files: SegmentSet,
    segment: int,
    offset: int,
    size: int,
    compressed: bool,
    *,
    expected: int,
    chunk_size: int,
    last: bool,
    chunk: int,
    media: tuple[int, int],
) -> bytes:
    """Read ``size`` stored bytes of a chunk at ``offset`` of segment ``segment`` and check/decode them.

    Shared by the EWF1 and EWF2 readers. Raises the ChecksumError that names chunk, media range, file
    and offset (with expected/found where known).
    """
    path = files.paths[segment]
    stored = files.pread(segment, offset, size)
    if len(stored) != size:
        raise _chunk_error(
            FaultKind.SHORT_READ,
            "the segment file ends inside the chunk",
            path=path,
            offset=offset,
            chunk=chunk,
            media=media,
            expected=f"{size} stored bytes",
            found=f"{len(stored)} stored bytes",
        )
    data, problem = decode_chunk(stored, compressed, expected, chunk_size, last)
    if problem is not None:
        kind, message, want, got = problem
        raise _chunk_error(kind, message, path=path, offset=offset, chunk=chunk, media=media, expected=want, found=got)
    return data


# -- sections -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Section:
    type: str
    offset: int  # file offset of the descriptor
    size: int  # including the descriptor

    @property
    def data_offset(self) -> int:
        return self.offset + structs.DESCRIPTOR_SIZE

    @property
    def data_size(self) -> int:
        return self.size - structs.DESCRIPTOR_SIZE

    @property
    def end(self) -> int:
        return self.offset + self.size


def walk_sections(files: SegmentSet, index: int) -> list[_Section]:
    """The section chain of segment ``index``, checked; ends with a ``next`` or ``done`` section.

    Every step must move forward (so a chain cannot loop) and every section must lie inside the file.

    Raises:
        FormatError: a descriptor checksum fails, a size or ``next`` pointer is inconsistent.
        IncompleteImageError: the file ends before a ``next``/``done`` section.
    """
    path = files.paths[index]
    fsize = files.sizes[index]
    off = structs.FILE_HEADER_SIZE
    out: list[_Section] = []
    while True:
        if off + structs.DESCRIPTOR_SIZE > fsize:
            raise IncompleteImageError(
                f"segment '{path}' ends at {fsize} bytes before its 'done' or 'next' section "
                "(truncated, or the writer never finished)",
                path=path,
                offset=off,
            )
        raw = files.pread_exact(index, off, structs.DESCRIPTOR_SIZE, "section descriptor")
        stored = int.from_bytes(raw[72:76], "little")
        if _adler32(raw[:72]) != stored:
            raise FormatError(
                f"section descriptor checksum mismatch in '{path}' at offset 0x{off:08x} ({off})",
                path=path,
                offset=off,
            )
        try:
            d = structs.section_descriptor.parse(raw)
        except ConstructError:
            raise FormatError(
                f"section type at offset 0x{off:08x} in '{path}' is not ASCII text", path=path, offset=off
            ) from None
        stype = raw[:16].rstrip(b"\x00").decode("ascii", errors="replace")
        nxt, size = int(d.next), int(d.size)
        if stype in ("next", "done"):
            out.append(_Section(stype, off, structs.DESCRIPTOR_SIZE))
            return out
        if size == 0:  # Expert Witness 1.35 leaves size 0: the extent comes from next
            size = nxt - off
        if size < structs.DESCRIPTOR_SIZE:
            raise FormatError(
                f"section '{stype}' in '{path}' at offset 0x{off:08x} has an impossible size {size}",
                path=path,
                offset=off,
            )
        if nxt != off + size:
            raise FormatError(
                f"section '{stype}' in '{path}' at offset 0x{off:08x}: next 0x{nxt:x} disagrees with "
                f"size {size} (corrupt descriptor)",
                path=path,
                offset=off,
            )
        if off + size > fsize:
            raise IncompleteImageError(
                f"section '{stype}' in '{path}' at offset 0x{off:08x} runs past the end of the file "
                f"({off + size} > {fsize}): the segment is truncated",
                path=path,
                offset=off,
            )
        out.append(_Section(stype, off, size))
        off = nxt


def _zlib_check_values(stored: bytes | memoryview, chunk_size: int) -> tuple[str | None, str | None]:
    """The Adler-32 a zlib stream stores in its trailer (RFC 1950 §2.2, big-endian) and that of the data
    it inflates to, by inflating it raw; ``(None, None)`` when the stream cannot be inflated that far."""
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(memoryview(stored)[2:], chunk_size + 1)
    except zlib.error:
        return None, None
    if not d.eof or len(d.unused_data) < 4:
        return None, None
    return f"adler32:{int.from_bytes(d.unused_data[:4], 'big'):08x}", f"adler32:{_adler32(out):08x}"


ChunkProblem = tuple[FaultKind, str, str | None, str | None]
"""A bad chunk: fault kind, message, what the check expected and what it found (``None`` if unknown)."""


def decode_chunk(
    stored: bytes | memoryview, compressed: bool, expected: int, chunk_size: int, last: bool = False
) -> tuple[bytes, ChunkProblem | None]:
    """Check and decode one chunk's stored bytes (spec §Chunks). Never raises for content.

    Compressed: one complete zlib stream, nothing after it, inflating to exactly ``expected`` bytes.
    Uncompressed: ``expected`` bytes followed by their Adler-32, little-endian. The last chunk of the
    media may hold up to a whole chunk (a padded last chunk, which libewf also reads); the excess is cut.

    Returns:
        ``(data, None)`` for a good chunk, ``(b"", (fault kind, message, expected, found))`` for a bad
        one: the stored and computed Adler-32 (hex), the expected and decoded lengths, or zlib's error text.
    """
    if compressed:
        d = _decompressobj()
        try:
            out: bytes = d.decompress(stored, chunk_size + 1)
        except _ZLIB_ERRORS as exc:
            # zlib's own Adler-32 of the inflated data failing is a checksum fault
            kind = FaultKind.CHECKSUM if "check" in str(exc).lower() else FaultKind.DECOMPRESS
            z_want, z_got = _zlib_check_values(stored, chunk_size) if kind is FaultKind.CHECKSUM else (None, None)
            if z_want is not None:
                return b"", (kind, f"zlib stream is corrupt ({exc})", z_want, z_got)
            return b"", (kind, f"zlib stream is corrupt ({exc})", "a valid zlib stream", f"zlib error: {exc}")
        n = len(out)
        if not d.eof:
            if n > chunk_size:
                return b"", (
                    FaultKind.SIZE,
                    f"inflates to more than the chunk size {chunk_size}",
                    f"{expected} bytes",
                    f"more than {chunk_size} bytes",
                )
            return b"", (
                FaultKind.DECOMPRESS,
                "zlib stream does not end inside the chunk",
                "a complete zlib stream",
                f"a stream cut off after {len(stored)} stored bytes",
            )
        if d.unused_data:
            n_extra = len(d.unused_data)
            return b"", (
                FaultKind.SIZE,
                f"{n_extra} bytes follow the zlib stream inside the chunk",
                f"{len(stored) - n_extra} stored bytes",
                f"{len(stored)} stored bytes",
            )
        if n != expected and not (last and expected < n <= chunk_size):
            return b"", (
                FaultKind.SIZE,
                f"inflates to {n} bytes, expected {expected}",
                f"{expected} bytes",
                f"{n} bytes",
            )
        return (out if n == expected else out[:expected]), None
    n = len(stored) - 4
    if n != expected and not (last and expected < n <= chunk_size):
        return b"", (
            FaultKind.SIZE,
            f"stored size {len(stored)} is not {expected} bytes + 4-byte checksum",
            f"{expected + 4} stored bytes",
            f"{len(stored)} stored bytes",
        )
    found = _adler32(memoryview(stored)[:n])
    want = int.from_bytes(stored[n:], "little")
    if found != want:
        return b"", (
            FaultKind.CHECKSUM,
            f"Adler-32 {found:08x} does not match the stored {want:08x}",
            f"adler32:{want:08x}",
            f"adler32:{found:08x}",
        )
    return bytes(stored[:expected]), None


# -- tables -------------------------------------------------------------------------------------------


def decode_table_entries(entries: array[int], base: int, data_end: int) -> tuple[array[int], bytes]:
    """Chunk file offsets and compressed flags of one table.

    Returns ``(starts, compressed)``: ``starts`` has one more element than ``entries`` (the end of the
    last chunk, ``data_end``); ``compressed[i]`` is 1 for a compressed chunk.

    EnCase 6.7.1 quirk (spec §Tables, libewf docs "EnCase 6.7.1 table entry overflow"): past 2 GiB it
    stored full 32-bit offsets. A masked offset smaller than the previous one shows bit 31 is part of the
    offset; from there on every entry is a full 32-bit offset of an uncompressed chunk.
    """
    n = len(entries)
    starts = array("Q", [0]) * (n + 1)
    comp = bytearray(n)
    prev = -1
    overflow = False
    for i, e in enumerate(entries):
        if not overflow:
            masked = e & _MASK
            if masked < prev and (e >> 31) and e >= prev:
                overflow = True
            else:
                starts[i] = base + masked
                comp[i] = e >> 31
                prev = masked
                continue
        starts[i] = base + e
        comp[i] = 0
    starts[n] = data_end
    return starts, bytes(comp)


@dataclass(slots=True)
class _Group:
    """The chunks listed by one table (``table`` or its ``table2`` copy)."""

    segment: int
    first_chunk: int
    entries: array[int]
    base: int
    data_start: int
    data_end: int
    table_offset: int
    source: str
    decoded: tuple[array[int], bytes] | None = None

    @property
    def count(self) -> int:
        return len(self.entries)

    def locate(self, k: int) -> tuple[int, int, bool]:
        """File offset, end offset and compressed flag of entry ``k``.

        The usual table (its chunks end within 2^31 bytes of its base) needs only arithmetic on the
        stored entries; a table that reaches past that may carry the EnCase 6.7.1 overflow and is
        decoded once (:func:`decode_table_entries`).
        """
        entries = self.entries
        if self.data_end - self.base <= _MASK:
            e = entries[k]
            end = self.base + (entries[k + 1] & _MASK) if k + 1 < len(entries) else self.data_end
            return self.base + (e & _MASK), end, bool(e >> 31)
        d = self.decoded
        if d is None:
            d = decode_table_entries(entries, self.base, self.data_end)
            self.decoded = d  # benign race: every thread computes the same value
        return d[0][k], d[0][k + 1], bool(d[1][k])


@dataclass(slots=True)
class _Parsed:
    """Everything gathered while walking the segments."""

    volume: Any = None
    volume_raw: bytes = b""
    volume_kind: str = ""  # "e01" or "smart"
    headers: list[HeaderText] = field(default_factory=list)
    header_counts: dict[str, int] = field(default_factory=dict)
    groups: list[_Group] = field(default_factory=list)
    md5_hash: str | None = None
    md5_digest: str | None = None
    sha1_digest: str | None = None
    xhash: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[int, int]] = field(default_factory=list)
    sessions: list[dict[str, int]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    header_used: dict[str, tuple[bytes, str, int]] = field(default_factory=dict)  # kind -> bytes, file, offset
    data_sections: list[tuple[int, int, bytes]] = field(default_factory=list)


# -- segments -----------------------------------------------------------------------------------------


def _head(path: Path, n: int = 16) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _refuse(path: Path, head: bytes) -> None:
    for sig, name in _REFUSED:
        if head.startswith(sig):
            raise UnsupportedFormatError(
                f"'{path}' is {name}: forensimg reads EWF version 1 (E01/s01) only", path=path, offset=0
            )


def order_segments(paths: Sequence[Path]) -> list[Path]:
    """Find the set's members and put them in segment-number order, checking 1..n without gaps.

    One path: every sibling with the same stem and an EWF extension is considered (siblings that are
    not EWF files are ignored). Several paths: exactly those files. The order comes from the segment
    number in each file header, never from the names.

    Raises:
        UnsupportedFormatError: Ex01, Lx01, L01 or AD-encrypted.
        FormatError: a given file is not an EWF1 file.
        MissingSegmentError: a number is missing or used twice.
    """
    given = [Path(p) for p in paths]
    candidates = set_members(given[0]) if len(given) == 1 else list(given)
    if given[0] not in candidates:
        candidates.append(given[0])
    numbered: dict[int, Path] = {}
    for p in candidates:
        head = _head(p)
        explicit = p in given
        if not head.startswith(structs.EVF_SIGNATURE):
            if explicit:
                _refuse(p, head)
                raise FormatError(f"'{p}' is not an EWF (E01) file: bad signature", path=p, offset=0)
            log.debug("ignoring '%s': not an EWF segment", p)
            continue
        if len(head) < structs.FILE_HEADER_SIZE or head[8] != 1 or head[11:13] != b"\x00\x00":
            raise FormatError(f"'{p}' has a malformed EWF file header", path=p, offset=0)
        number = int.from_bytes(head[9:11], "little")
        if number == 0:
            raise MissingSegmentError(f"'{p}' has segment number 0 in its file header", path=p, offset=9)
        if number in numbered:
            raise MissingSegmentError(
                f"segment number {number} appears twice: '{numbered[number]}' and '{p}'", path=p, offset=9
            )
        numbered[number] = p
    if not numbered:
        raise FormatError(f"'{given[0]}' is not an EWF (E01) file", path=given[0], offset=0)
    last = max(numbered)
    first = numbered.get(1)
    for k in range(1, last + 1):
        if k not in numbered:
            ref = first or next(iter(numbered.values()))
            try:
                missing = segment_path(ref, k) if first else ref.with_name(f"(segment {k} of '{ref.stem}')")
            except ValueError:
                missing = ref.with_name(f"{ref.stem} segment {k}")
            misnumbered = next((q for n, q in numbered.items() if q.name == missing.name and n != k), None)
            if misnumbered is not None:
                raise MissingSegmentError(
                    f"'{misnumbered}' is named as segment {k} but its file header says segment "
                    f"{next(n for n, q in numbered.items() if q == misnumbered)}; segment {k} is missing",
                    path=misnumbered,
                    offset=9,
                )
            raise MissingSegmentError(f"EWF set '{ref.stem}' is missing segment {k} ('{missing}')", path=missing)
    return [numbered[k] for k in range(1, last + 1)]


# -- the image ----------------------------------------------------------------------------------------


class EWFImage(Image):
    """An EWF version 1 image (E01 in the EnCase 1-7, FTK, linen 5-7, ewfx layouts; SMART s01; EWF e01).

    Args:
        paths: one segment (its siblings are found) or every segment.
        zero_fill: read bad chunks as zeros and record them in :attr:`faults`.
        codepage: codepage of the 8-bit ``header`` text (default ``cp1252``).

    Raises:
        FormatError and subclasses: the files do not form a readable EWF1 image.
    """

    format: ClassVar[str] = "ewf"

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], *, zero_fill: bool = False, codepage: str = "cp1252"
    ) -> None:
        ordered = order_segments([Path(p) for p in paths])
        self._files = SegmentSet(ordered)
        try:
            info, parsed = self._load(codepage)
        except ConstructError as exc:  # pragma: no cover - fixed-size parses of checked bytes
            self._files.close()
            raise FormatError(f"malformed EWF structure ({exc})", path=ordered[0]) from None
        except BaseException:
            self._files.close()
            raise
        self._groups = parsed.groups
        self._group_firsts = [g.first_chunk for g in parsed.groups]
        self._structure_faults = tuple(parsed.faults)
        super().__init__(info, zero_fill=zero_fill)
        # the constants of the hot path in one attribute (see _read_chunk)
        self._hot = (self._chunk_size, self._size, self._groups, self._group_firsts, self._files.fds)

    # -- opening ----------------------------------------------------------------------------------

    def _load(self, codepage: str) -> tuple[ImageInfo, _Parsed]:
        files = self._files
        p = _Parsed()
        n = len(files)
        next_chunk = 0
        for si in range(n):
            sections = walk_sections(files, si)
            path = files.paths[si]
            end = sections[-1]
            if si < n - 1 and end.type != "next":
                raise FormatError(
                    f"segment {si + 1} '{path}' ends with '{end.type}' but more segments follow",
                    path=path,
                    offset=end.offset,
                )
            if si == n - 1 and end.type != "done":
                try:
                    missing = segment_path(files.paths[0], n + 1)
                except ValueError:
                    missing = path
                raise MissingSegmentError(
                    f"'{path}' is segment {n} of a longer set: it ends with 'next', segment {n + 1} "
                    f"('{missing}') is missing",
                    path=missing,
                )
            next_chunk = self._load_segment(si, sections, p, codepage, next_chunk)
        if p.volume is None:
            raise FormatError(f"no 'volume' section in '{files.paths[0]}'", path=files.paths[0])
        return self._build_info(p, next_chunk), p

    def _load_segment(self, si: int, sections: list[_Section], p: _Parsed, codepage: str, next_chunk: int) -> int:
        files = self._files
        path = files.paths[si]
        last_sectors: _Section | None = None
        pending_table: tuple[_Section, array[int], int, bool] | None = None  # section, entries, base, ok
        for idx, sec in enumerate(sections):
            t = sec.type
            if pending_table is not None and t != "table2":
                # a table not followed by table2 stands alone (SMART, EWF, EnCase 1)
                tsec, _, _, ok = pending_table
                if not ok:
                    raise FormatError(
                        f"'table' fails its footer checksum and has no 'table2' copy in '{path}'",
                        path=path,
                        offset=tsec.offset,
                    )
                pending_table = None
                last_sectors = None
            if t in ("header", "header2", "xheader"):
                p.header_counts[t] = p.header_counts.get(t, 0) + 1
                if any(h.kind == t for h in p.headers):
                    # writers store identical copies (EnCase: header2 twice); the first good one is
                    # used, and any other copy must equal it, else one of them was altered or damaged
                    self._check_header_copy(si, sec, p, codepage)
                    continue
                if sec.data_size > _MAX_HEADER_SECTION:
                    raise FormatError(
                        f"'{t}' section of {sec.data_size} bytes is implausibly large",
                        path=path,
                        offset=sec.offset,
                    )
                data = files.pread_exact(si, sec.data_offset, sec.data_size, f"'{t}' section")
                try:
                    p.headers.append(
                        parse_header_section(data, t, codepage=codepage, path=str(path), offset=sec.data_offset)
                    )
                    p.header_used[t] = (data, str(path), sec.offset)
                except FormatError as exc:
                    if not any(s.type == t for s in sections[idx + 1 :]):  # no further copy left to try
                        raise
                    # the next copy is used, but a damaged copy is still damage to the image
                    p.faults.append(
                        Fault(
                            FaultKind.METADATA,
                            f"copy {p.header_counts[t]} of the '{t}' section in '{path}' at offset "
                            f"0x{sec.offset:08x} is damaged ({exc}); the next copy is used",
                            segment=str(path),
                            offset=sec.offset,
                        )
                    )
            elif t in ("volume", "disk", "data"):
                self._load_volume(si, sec, p)
            elif t == "sectors":
                last_sectors = sec
            elif t == "table":
                entries, base, ok = self._load_table(si, sec, last_sectors, p)
                pending_table = (sec, entries, base, ok)
                if ok:
                    next_chunk = self._add_group(si, sec, entries, base, last_sectors, p, next_chunk, "table")
            elif t == "table2":
                try:
                    entries2, base2, ok2 = self._load_table(si, sec, last_sectors, p)
                except FormatError as exc:
                    if pending_table is None or not pending_table[3]:
                        raise
                    # the copy is unusable but the table it copies is good: report, go on
                    p.faults.append(Fault(FaultKind.METADATA, str(exc), segment=str(path), offset=exc.offset))
                    pending_table = None
                    last_sectors = None
                    continue
                if pending_table is None:
                    if not ok2:
                        raise FormatError("'table2' footer checksum mismatch", path=path, offset=sec.offset)
                    next_chunk = self._add_group(si, sec, entries2, base2, last_sectors, p, next_chunk, "table2")
                else:
                    tsec, entries, base, ok = pending_table
                    if not ok:
                        if not ok2:
                            raise FormatError(
                                f"both 'table' (0x{tsec.offset:x}) and 'table2' (0x{sec.offset:x}) fail their "
                                f"footer checksums in '{path}'",
                                path=path,
                                offset=sec.offset,
                            )
                        next_chunk = self._add_group(si, tsec, entries2, base2, last_sectors, p, next_chunk, "table2")
                        p.faults.append(
                            Fault(
                                FaultKind.METADATA,
                                f"'table' at 0x{tsec.offset:x} in '{path}' fails its footer checksum; "
                                "chunks located through its 'table2' copy",
                                segment=str(path),
                                offset=tsec.offset,
                            )
                        )
                    elif ok2 and (entries2 != entries or base2 != base):
                        p.faults.append(
                            Fault(
                                FaultKind.METADATA,
                                f"'table2' at 0x{sec.offset:x} in '{path}' disagrees with its 'table'",
                                segment=str(path),
                                offset=sec.offset,
                            )
                        )
                    elif not ok2:
                        p.faults.append(
                            Fault(
                                FaultKind.METADATA,
                                f"'table2' at 0x{sec.offset:x} in '{path}' fails its footer checksum",
                                segment=str(path),
                                offset=sec.offset,
                            )
                        )
                pending_table = None
                last_sectors = None
            elif t == "hash":
                hdata = self._checked_data(si, sec, structs.HASH_SIZE, 32, p)
                if hdata is not None:
                    md5 = hdata[:16]
                    if any(md5):
                        p.md5_hash = md5.hex()
            elif t == "digest":
                ddata = self._checked_data(si, sec, structs.DIGEST_SIZE, 76, p)
                if ddata is not None:
                    if any(ddata[:16]):
                        p.md5_digest = ddata[:16].hex()
                    if any(ddata[16:36]):
                        p.sha1_digest = ddata[16:36].hex()
            elif t == "xhash":
                self._load_xhash(si, sec, p)
            elif t == "error2":
                self._load_error2(si, sec, p)
            elif t == "session":
                self._load_session(si, sec, p)
            else:
                log.debug("skipping section '%s' at 0x%x in %s", t, sec.offset, path)
        return next_chunk

    def _checked_data(self, si: int, sec: _Section, size: int, covered: int, p: _Parsed) -> bytes | None:
        """Read a fixed-size section; on a checksum failure record a fault and return ``None``."""
        path = self._files.paths[si]
        if sec.data_size < size:
            raise FormatError(
                f"'{sec.type}' section has {sec.data_size} data bytes, needs {size}", path=path, offset=sec.offset
            )
        data = self._files.pread_exact(si, sec.data_offset, size, f"'{sec.type}' section")
        stored = int.from_bytes(data[covered : covered + 4], "little")
        if _adler32(data[:covered]) != stored:
            p.faults.append(
                Fault(
                    FaultKind.METADATA,
                    f"'{sec.type}' section at 0x{sec.offset:x} in '{path}' fails its checksum; not used",
                    segment=str(path),
                    offset=sec.data_offset + covered,
                    expected=f"{stored:08x}",
                    found=f"{_adler32(data[:covered]):08x}",
                )
            )
            return None
        return data

    def _check_header_copy(self, si: int, sec: _Section, p: _Parsed, codepage: str) -> None:
        """Compare a further ``header``/``header2``/``xheader`` copy with the one in use; a difference is a
        METADATA fault naming the copy (damaged if it does not parse, else differing). Never raises."""
        files = self._files
        path = files.paths[si]
        t = sec.type
        used = p.header_used.get(t)
        where = f"copy {p.header_counts[t]} of the '{t}' section in '{path}' at offset 0x{sec.offset:08x}"
        if used is None:
            return
        if sec.data_size > _MAX_HEADER_SECTION:
            data = None
        else:
            try:
                data = files.pread_exact(si, sec.data_offset, sec.data_size, f"'{t}' section")
            except FormatError:
                data = None
        if data == used[0]:
            return
        damaged = data is None
        if data is not None:
            try:
                parse_header_section(data, t, codepage=codepage, path=str(path), offset=sec.data_offset)
            except FormatError:
                damaged = True
        what = "is damaged" if damaged else "differs from"
        p.faults.append(
            Fault(
                FaultKind.METADATA,
                f"{where} {what} the copy in use ('{used[1]}' at offset 0x{used[2]:08x})"
                if not damaged
                else f"{where} is damaged; the copy in '{used[1]}' at offset 0x{used[2]:08x} is used",
                segment=str(path),
                offset=sec.offset,
                expected=f"{len(used[0])} bytes equal to the copy in use",
                found=f"{sec.data_size} bytes, {'damaged' if damaged else 'different'}",
            )
        )

    def _load_volume(self, si: int, sec: _Section, p: _Parsed) -> None:
        files = self._files
        path = files.paths[si]
        if sec.data_size >= structs.VOLUME_SIZE:
            kind, size, covered = "e01", structs.VOLUME_SIZE, 1048
        elif sec.data_size >= structs.SMART_VOLUME_SIZE:
            kind, size, covered = "smart", structs.SMART_VOLUME_SIZE, 90
        else:
            raise FormatError(
                f"'{sec.type}' section has {sec.data_size} data bytes (expected 1052 or 94)",
                path=path,
                offset=sec.offset,
            )
        raw = files.pread_exact(si, sec.data_offset, size, f"'{sec.type}' section")
        stored = int.from_bytes(raw[covered : covered + 4], "little")
        good = _adler32(raw[:covered]) == stored or stored == 0  # Logicube writes 0: accepted (spec)
        if sec.type == "data" and p.volume is not None:
            if not good:
                p.faults.append(
                    Fault(
                        FaultKind.METADATA,
                        f"'data' section at 0x{sec.offset:x} in '{path}' fails its checksum",
                        segment=str(path),
                        offset=sec.data_offset + covered,
                    )
                )
            elif raw != p.volume_raw:
                p.faults.append(
                    Fault(
                        FaultKind.METADATA,
                        f"'data' section at 0x{sec.offset:x} in '{path}' disagrees with the 'volume' section",
                        segment=str(path),
                        offset=sec.offset,
                    )
                )
            return
        if p.volume is not None:
            return
        if not good:
            raise FormatError(
                f"'{sec.type}' section checksum mismatch in '{path}' at offset 0x{sec.data_offset + covered:08x}",
                path=path,
                offset=sec.data_offset + covered,
            )
        p.volume = (structs.volume if kind == "e01" else structs.smart_volume).parse(raw)
        p.volume_raw = raw
        p.volume_kind = kind

    def _load_table(self, si: int, sec: _Section, sectors: _Section | None, p: _Parsed) -> tuple[array[int], int, bool]:
        """Read a table's header (checked: fatal) and entries; ``ok`` is the footer check."""
        files = self._files
        path = files.paths[si]
        if sec.data_size < structs.TABLE_HEADER_SIZE:
            raise FormatError(f"'{sec.type}' section too small ({sec.data_size} bytes)", path=path, offset=sec.offset)
        head = files.pread_exact(si, sec.data_offset, structs.TABLE_HEADER_SIZE, f"'{sec.type}' header")
        stored = int.from_bytes(head[20:24], "little")
        if _adler32(head[:20]) != stored:
            raise FormatError(
                f"'{sec.type}' header checksum mismatch in '{path}' at offset 0x{sec.data_offset:08x}",
                path=path,
                offset=sec.data_offset,
            )
        h = structs.table_header.parse(head)
        count, base = int(h.entry_count), int(h.base_offset)
        if base >= files.sizes[si]:
            raise FormatError(
                f"'{sec.type}' base offset 0x{base:x} lies beyond the end of the file",
                path=path,
                offset=sec.data_offset + 8,
            )
        # chunk data inside the table (SMART, EWF, EnCase 1) when no sectors section precedes it
        has_footer = sectors is not None
        room = sec.data_size - structs.TABLE_HEADER_SIZE - (4 if has_footer else 0)
        if count * 4 > room or count == 0:
            raise FormatError(
                f"'{sec.type}' claims {count} entries but its section holds room for {max(room, 0) // 4}",
                path=path,
                offset=sec.data_offset,
            )
        raw = files.pread_exact(si, sec.data_offset + structs.TABLE_HEADER_SIZE, count * 4, "table entries")
        entries = array("I")
        entries.frombytes(raw)
        if sys.byteorder == "big":  # pragma: no cover - little-endian hosts in CI
            entries.byteswap()
        ok = True
        if has_footer:
            foot = files.pread_exact(si, sec.data_offset + structs.TABLE_HEADER_SIZE + count * 4, 4, "table footer")
            ok = _adler32(raw) == int.from_bytes(foot, "little")
        return entries, base, ok

    def _add_group(
        self,
        si: int,
        sec: _Section,
        entries: array[int],
        base: int,
        sectors: _Section | None,
        p: _Parsed,
        next_chunk: int,
        source: str,
    ) -> int:
        if sectors is not None:
            data_start, data_end = sectors.data_offset, sectors.end
        else:
            data_start = sec.data_offset + structs.TABLE_HEADER_SIZE + 4 * len(entries)
            data_end = sec.end
        p.groups.append(_Group(si, next_chunk, entries, base, data_start, data_end, sec.offset, source))
        return next_chunk + len(entries)

    def _load_xhash(self, si: int, sec: _Section, p: _Parsed) -> None:
        if sec.data_size > _MAX_HEADER_SECTION:
            return
        data = self._files.pread_exact(si, sec.data_offset, sec.data_size, "'xhash' section")
        try:
            text = zlib.decompressobj().decompress(data, 1 << 20).decode("utf-8", errors="replace")
        except zlib.error:
            return
        for alg in ("md5", "sha1"):
            m = re.search(rf"<{alg}>([0-9a-fA-F]+)</{alg}>", text, re.IGNORECASE)
            if m and any(c != "0" for c in m.group(1)):
                p.xhash[alg] = m.group(1).lower()

    def _load_counted_entries(
        self, si: int, sec: _Section, p: _Parsed, name: str, header_size: int, entry_size: int
    ) -> bytes | None:
        """The entry array of an ``error2`` or ``session`` section (ewf-notes §6.3, §6.4).

        Both are: a header whose last 4 bytes are the Adler-32 of the bytes before them and whose first
        4 bytes count the entries, then the entries, then the Adler-32 of the entries. A checksum
        mismatch is a METADATA fault (the section is ignored); a count that does not fit is fatal.
        """
        files = self._files
        path = files.paths[si]
        if sec.data_size < header_size:
            raise FormatError(f"'{name}' section too small", path=path, offset=sec.offset)
        head = files.pread_exact(si, sec.data_offset, header_size, f"'{name}' header")
        sum_at = header_size - 4
        if _adler32(head[:sum_at]) != int.from_bytes(head[sum_at:], "little"):
            p.faults.append(
                Fault(
                    FaultKind.METADATA,
                    f"'{name}' header checksum mismatch in '{path}'",
                    segment=str(path),
                    offset=sec.data_offset + sum_at,
                )
            )
            return None
        count = int.from_bytes(head[:4], "little")
        room = (sec.data_size - header_size - 4) // entry_size
        if count > room:
            raise FormatError(
                f"'{name}' claims {count} entries but its section holds room for {max(room, 0)}",
                path=path,
                offset=sec.data_offset,
            )
        raw = files.pread_exact(si, sec.data_offset + header_size, count * entry_size + 4, f"'{name}' entries")
        if _adler32(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            p.faults.append(
                Fault(
                    FaultKind.METADATA,
                    f"'{name}' entries checksum mismatch in '{path}'",
                    segment=str(path),
                    offset=sec.data_offset + header_size + count * entry_size,
                )
            )
            return None
        return raw[:-4]

    def _load_error2(self, si: int, sec: _Section, p: _Parsed) -> None:
        raw = self._load_counted_entries(si, sec, p, "error2", structs.ERROR2_HEADER_SIZE, 8) or b""
        for i in range(0, len(raw), 8):
            first = int.from_bytes(raw[i : i + 4], "little")
            num = int.from_bytes(raw[i + 4 : i + 8], "little")
            p.errors.append((first, num))

    def _load_session(self, si: int, sec: _Section, p: _Parsed) -> None:
        raw = self._load_counted_entries(si, sec, p, "session", structs.SESSION_HEADER_SIZE, 32) or b""
        for i in range(0, len(raw), 32):
            flags = int.from_bytes(raw[i : i + 4], "little")
            first = int.from_bytes(raw[i + 4 : i + 8], "little")
            p.sessions.append({"first_sector": first, "flags": flags})

    def _build_info(self, p: _Parsed, total_entries: int) -> ImageInfo:
        files = self._files
        v = p.volume
        first = files.paths[0]
        spc, bps, sectors = int(v.sectors_per_chunk), int(v.bytes_per_sector), int(v.sector_count)
        if not (0 < bps <= 1 << 16) or not (0 < spc <= 1 << 20) or spc * bps > _MAX_CHUNK_SIZE:
            raise FormatError(
                f"volume geometry is implausible: {spc} sectors per chunk of {bps} bytes",
                path=first,
                offset=structs.FILE_HEADER_SIZE,
            )
        chunk_size = spc * bps
        size = sectors * bps  # never from the chunk count (spec: media size)
        needed = -(-size // chunk_size)
        if total_entries < needed:
            raise FormatError(
                f"the tables list {total_entries} chunks but the media of {sectors} sectors needs {needed}",
                path=files.paths[-1],
            )
        vol_chunks = int(v.chunk_count)
        if vol_chunks and vol_chunks != total_entries:
            p.faults.append(
                Fault(
                    FaultKind.METADATA,
                    f"volume says {vol_chunks} chunks, the tables list {total_entries}",
                    segment=str(first),
                )
            )
        merged = merge_headers(p.headers)
        values = merged.values
        hashes: dict[str, str] = {}
        md5 = p.md5_digest or p.md5_hash or p.xhash.get("md5")
        if md5:
            hashes["md5"] = md5
        sha1 = p.sha1_digest or p.xhash.get("sha1")
        if sha1:
            hashes["sha1"] = sha1
        if p.md5_digest and p.md5_hash and p.md5_digest != p.md5_hash:
            p.faults.append(
                Fault(
                    FaultKind.HASH_MISMATCH,
                    f"the 'hash' section's MD5 {p.md5_hash} differs from the 'digest' section's {p.md5_digest}",
                    segment=str(files.paths[-1]),
                    expected=p.md5_digest,
                    found=p.md5_hash,
                )
            )
        unreadable: list[Range] = []
        for first_sector, count in p.errors:
            start = min(first_sector * bps, size)
            end = min((first_sector + count) * bps, size)
            if end > start:
                unreadable.append(Range(start, end))
        details: dict[str, Any] = {
            "sectors_per_chunk": spc,
            "sector_count": sectors,
            "chunk_count": vol_chunks or total_entries,
            "segment_count": len(files),
            "volume_layout": "SMART (94 bytes)" if p.volume_kind == "smart" else "E01 (1052 bytes)",
            "header_sections": dict(p.header_counts),
        }
        # the 94-byte SMART volume has no media type or flags: libewf reports their zero values
        # (removable, not physical), and so do we
        media_type = "removable"
        is_physical = False
        if p.volume_kind == "smart":
            details["media_type"] = media_type
            details["is_physical"] = is_physical
        else:
            level = int(v.compression_level)
            details["compression_level"] = _COMPRESSION_LEVELS.get(level, str(level))
            details["error_granularity"] = int(v.error_granularity)
            media_type = _MEDIA_TYPES.get(int(v.media_type), f"0x{int(v.media_type):02x}")
            details["media_type"] = media_type
            details["media_flags"] = int(v.media_flags)
            is_physical = bool(int(v.media_flags) & 0x02)
            details["is_physical"] = is_physical
            details["set_identifier"] = bytes(v.set_identifier).hex()
        if "r" in values:
            details["header_compression"] = {"n": "none", "f": "fast", "b": "best"}.get(values["r"], values["r"])
        if p.sessions:
            details["sessions"] = list(p.sessions)
        fallbacks = sum(1 for g in p.groups if g.source == "table2")
        if fallbacks:
            details["table2_fallbacks"] = fallbacks
        if values.get("p", "0") not in ("", "0"):
            details["password_hash"] = values["p"]
        acquired = parse_header_date(values.get("m", ""))
        system = parse_header_date(values.get("u", ""))
        source = SourceInfo(
            size=size,
            logical_sector_size=bps,
            model=values.get("md", ""),
            serial=values.get("sn", ""),
            media_type=media_type,
            is_physical=is_physical,
        )
        return ImageInfo(
            format="ewf",
            size=size,
            sector_size=bps,
            chunk_size=chunk_size,
            segments=tuple(files.paths),
            format_version=_guess_format(p),
            case=case_from_values(values),
            acquired_at=acquired,
            system_date=system,
            acquisition_software=values.get("av") or None,
            acquisition_os=values.get("ov") or None,
            stored_hashes=hashes,
            unreadable=tuple(unreadable),
            complete=True,
            source=source,
            details=details,
        )

    # -- reading ----------------------------------------------------------------------------------

    def _read_chunk(self, index: int) -> bytes:
        # The hot path of every read: a chunk of the usual table (entries within 2^31 bytes of the base)
        # whose stored bytes read whole and check out (a complete zlib stream with nothing after it and
        # its own Adler-32 right, inflating to exactly the chunk; or the data plus its little-endian
        # Adler-32, spec §Chunks) is returned from here. Anything else (a short read, an entry outside its
        # data, a padded last chunk, a bad checksum, undecodable data, an EnCase 6.7.1 overflow table) goes
        # through _read_chunk_checked, which applies the same rules again and raises the ChecksumError
        # that names the chunk, its media range, the segment file and the offset.
        cs, size, groups, firsts, fds = self._hot
        g = groups[_bisect_right(firsts, index) - 1]
        base = g.base
        data_end = g.data_end
        if data_end - base <= _MASK:
            entries = g.entries
            k = index - g.first_chunk
            e = entries[k]
            start = base + (e & _MASK)
            end = base + (entries[k + 1] & _MASK) if k + 1 < len(entries) else data_end
            expected = size - index * cs
            if expected > cs:
                expected = cs
            if g.data_start <= start < end <= data_end:
                try:
                    stored = _pread(fds[g.segment], end - start, start)
                except (OSError, IndexError):  # read again below, which names the file and the error
                    stored = b""
                if len(stored) == end - start:
                    out = _decode_hot(e >> 31, stored, expected, cs)
                    if out is not None:
                        return out
        return self._read_chunk_checked(index)

    def _check_run(self, lo: int, hi: int) -> list[tuple[int, bytes, Fault | None]]:
        # A scan task (verify, convert): the stored bytes of a group's consecutive chunks lie back to back,
        # so they are read with one pread per group and each chunk checked as _read_chunk checks it;
        # anything unusual goes through check_chunk, which reads it again and names the fault.
        cs, size, groups, firsts, fds = self._hot
        out: list[tuple[int, bytes, Fault | None]] = []
        i = lo
        while i < hi:
            g = groups[_bisect_right(firsts, i) - 1]
            j = min(hi, g.first_chunk + g.count)
            entries = g.entries
            base = g.base
            k0 = i - g.first_chunk
            k1 = j - g.first_chunk
            first = base + (entries[k0] & _MASK)
            last = base + (entries[k1] & _MASK) if k1 < len(entries) else g.data_end
            buf = b""
            if g.data_end - base <= _MASK and g.data_start <= first < last <= g.data_end \
                    and last - first <= _RUN_READ_MAX:
                try:
                    buf = _pread(fds[g.segment], last - first, first)
                except (OSError, IndexError):  # each chunk is read again by check_chunk, which reports it
                    buf = b""
            run = memoryview(buf)
            for k in range(i, j):
                kk = k - g.first_chunk
                e = entries[kk]
                start = base + (e & _MASK) - first
                end = (base + (entries[kk + 1] & _MASK) if kk + 1 < len(entries) else g.data_end) - first
                data = None
                if 0 <= start < end <= len(run):
                    data = _decode_hot(e >> 31, run[start:end], min(cs, size - k * cs), cs)
                out.append((k, data, None) if data is not None else (k, *self.check_chunk(k)))
            i = j
        return out

    def _read_chunk_checked(self, index: int) -> bytes:
        """Read and check chunk ``index`` the long way, diagnosing what is wrong with it."""
        cs = self._chunk_size
        mstart = index * cs
        expected = min(cs, self._size - mstart)
        media = (mstart, mstart + expected)
        g = self._groups[bisect.bisect_right(self._group_firsts, index) - 1]
        k = index - g.first_chunk
        start, end, compressed = g.locate(k)
        path = self._files.paths[g.segment]
        if not (g.data_start <= start < end <= g.data_end):
            raise _chunk_error(
                FaultKind.SIZE,
                f"table entry points outside its data (0x{start:x}..0x{end:x} not inside "
                f"0x{g.data_start:x}..0x{g.data_end:x})",
                path=path,
                offset=start,
                chunk=index,
                media=media,
            )
        return read_and_decode_chunk(
            self._files, g.segment, start, end - start, compressed, expected=expected, chunk_size=cs,
            last=index == self._chunk_count - 1, chunk=index, media=media,
        )  # fmt: skip

    def _close_files(self) -> None:
        self._files.close()

    # -- verification hooks -----------------------------------------------------------------------

    def check_structure(self) -> tuple[Fault, ...]:
        """Faults found in the image's structure at open: ``table`` footers that failed (``table2``
        used), ``table``/``table2`` and ``data``/``volume`` disagreements, ``hash`` vs ``digest`` MD5
        disagreement, metadata sections whose checksums fail. Never raises."""
        return self._structure_faults

    def chunk_location(self, index: int) -> tuple[Path, int, int, bool]:
        """Where chunk ``index`` is stored: segment file, file offset, stored size, compressed."""
        g = self._groups[bisect.bisect_right(self._group_firsts, index) - 1]
        start, end, compressed = g.locate(index - g.first_chunk)
        return self._files.paths[g.segment], start, end - start, compressed


def _guess_format(p: _Parsed) -> str:
    """The writer profile, guessed as libewf does from the volume layout and the header texts."""
    if p.volume_kind == "smart":
        return "SMART" if bytes(p.volume.signature) == b"SMART" else "EWF"
    kinds = {h.kind: h for h in p.headers}
    if "xheader" in kinds:
        return "EWFX"
    h2 = kinds.get("header2")
    if h2 is not None:
        if "l" in h2.keys:
            return "EnCase 7"
        if "md" in h2.keys:
            return "EnCase 6"
        return "EnCase 5" if h2.category_count >= 3 else "EnCase 4"
    h = kinds.get("header")
    if h is None:
        return "EWF"
    if "md" in h.keys:
        return "linen 6"
    if h.category_count >= 3:
        return "linen 5"
    if p.header_counts.get("header", 0) <= 1:
        return "EnCase 1"
    if "r" in h.keys:
        if not h.crlf:
            return "FTK"
        return "EnCase 3" if h.main.get("av", "").startswith("3") else "EnCase 2"
    return "EnCase 4"


def open_image(paths: Sequence[Path], *, zero_fill: bool = False, **options: Any) -> Image:
    """Open an EWF1 image (any segment, or all of them).

    Options:
        codepage: codepage of the 8-bit ``header`` text (default ``cp1252``).
    """
    codepage = str(options.pop("codepage", "cp1252"))
    if _head(Path(paths[0])).startswith(structs.EVF2_SIGNATURE):
        from forensimg.formats.ewf import ewf2

        return ewf2.open_image(paths, zero_fill=zero_fill)
    return EWFImage(paths, zero_fill=zero_fill, codepage=codepage)
