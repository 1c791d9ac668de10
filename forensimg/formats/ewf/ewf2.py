"""Reader of EWF version 2 images (Ex01, EnCase 7+): :class:`EWF2Image`.

EWF2 (spec §6, libewf's "Expert Witness Compression Format 2 (EWF2)" document) stores each section's
data first and its 64-byte descriptor after it, so a segment is read from its end backwards: the last
descriptor (``done`` or ``next``) names the previous one, down to the first section at offset 32. The
reader shares the chunk checks of the EWF1 reader (:func:`~forensimg.formats.ewf.reader.decode_chunk`);
table entries hold absolute offsets, stored sizes and flags (compressed, followed by an Adler-32,
fill pattern). Encrypted images, bzip2 compression and Lx01 are refused.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from forensimg.errors import FormatError, IncompleteImageError, MissingSegmentError, UnsupportedFormatError
from forensimg.formats.ewf import structs
from forensimg.formats.ewf.header import decode_header2_text, inflate_header, parse_header_date, parse_header_text
from forensimg.formats.ewf.reader import _adler32, _chunk_error, read_and_decode_chunk
from forensimg.image import CaseInfo, Fault, FaultKind, Image, ImageInfo, SourceInfo
from forensimg.streams import SegmentSet

__all__ = ["EWF2Image", "ex01_extension", "open_image"]

log = logging.getLogger(__name__)

_DEVICE, _CASE, _SECTORS, _TABLE, _MD5, _SHA1, _ENCRYPTION, _NEXT, _DONE = 1, 2, 3, 4, 8, 9, 0xB, 0xD, 0xF
_SECTION_NAMES = {
    1: "device information", 2: "case data", 3: "sector data", 4: "sector table", 5: "error table",
    6: "session table", 7: "increment data", 8: "MD5 hash", 9: "SHA-1 hash", 0xA: "restart data",
    0xB: "encryption keys", 0xC: "memory extents", 0xD: "next", 0xE: "final information", 0xF: "done",
    0x10: "analytical data",
}  # fmt: skip
_EXT = re.compile(r"^(?P<stem>.+)\.(?P<ext>[E-Z][x-z](?:\d\d|[A-Z]{2}))$")
_MEDIA_TYPES = {"a": "removable", "c": "optical", "f": "fixed", "l": "logical", "m": "memory", "r": "memory"}
_UNESCAPE = str.maketrans({"\x01": "\n", "\x02": "\r", "\x03": "\t"})


def ex01_extension(number: int) -> str:
    """Extension of Ex01 segment ``number``: ``Ex01``…``Ex99``, ``ExAA``…``ExZZ``, ``EyAA``…``EzZZ``."""
    if number < 1:
        raise ValueError(f"segment number {number} cannot be named")
    if number <= 99:
        return f"Ex{number:02d}"
    m = number - 100
    third, m = m % 26, m // 26
    second, m = m % 26, m // 26
    if m > 2:
        raise ValueError(f"segment number {number} cannot be named after 'EzZZ'")
    return "E" + chr(ord("x") + m) + chr(65 + second) + chr(65 + third)


def _members(path: Path) -> list[Path]:
    m = _EXT.match(path.name)
    if not m:
        return [path]
    stem = m.group("stem")
    try:
        names = [p.name for p in path.parent.iterdir()]
    except OSError:
        return [path]
    out = [path.parent / n for n in names if (mm := _EXT.match(n)) and mm.group("stem") == stem]
    return sorted(out) or [path]


@dataclass(frozen=True, slots=True)
class _Section2:
    type: int
    descriptor: int  # file offset of the descriptor
    data_offset: int
    data_size: int  # including padding
    padding: int
    flags: int


def walk_sections2(files: SegmentSet, index: int) -> list[_Section2]:
    """The sections of EWF2 segment ``index`` in file order, read backwards from the end and checked.

    Raises:
        FormatError: a descriptor checksum fails or the chain does not step backwards inside the file.
        IncompleteImageError: the file does not end with a descriptor.
    """
    path = files.paths[index]
    size = files.sizes[index]
    first_data = structs.EWF2_FILE_HEADER_SIZE
    off = size - structs.EWF2_DESCRIPTOR_SIZE
    out: list[_Section2] = []
    while True:
        if off < first_data:
            raise IncompleteImageError(f"'{path}' ends without a section descriptor", path=path, offset=size)
        raw = files.pread_exact(index, off, structs.EWF2_DESCRIPTOR_SIZE, "EWF2 section descriptor")
        if _adler32(raw[:60]) != int.from_bytes(raw[60:64], "little"):
            raise FormatError(
                f"EWF2 section descriptor checksum mismatch in '{path}' at offset 0x{off:08x} ({off})"
                + (" (the file may be truncated)" if not out else ""),
                path=path,
                offset=off,
            )
        d = structs.ewf2_section_descriptor.parse(raw)
        prev = int(d.previous_offset)
        start = prev + structs.EWF2_DESCRIPTOR_SIZE if prev else first_data
        if prev >= off or (prev and prev < first_data) or start > off:
            raise FormatError(
                f"EWF2 section at 0x{off:08x} in '{path}' points to a previous section at 0x{prev:x}",
                path=path,
                offset=off,
            )
        dsize, pad = int(d.data_size), int(d.padding_size)
        if dsize != off - start or pad > dsize:
            raise FormatError(
                f"EWF2 section at 0x{off:08x} in '{path}': data size {dsize} does not fit its extent "
                f"0x{start:x}..0x{off:x}",
                path=path,
                offset=off,
            )
        out.append(_Section2(int(d.type), off, start, dsize, pad, int(d.data_flags)))
        if not prev:
            out.reverse()
            return out
        off = prev


@dataclass(slots=True)
class _Table2:
    segment: int
    first_chunk: int
    offsets: array[int]
    sizes: array[int]
    flags: bytes
    table_offset: int


@dataclass(slots=True)
class _Parsed2:
    device: dict[str, str] = field(default_factory=dict)
    case: dict[str, str] = field(default_factory=dict)
    tables: list[_Table2] = field(default_factory=list)
    md5: str | None = None
    sha1: str | None = None
    faults: list[Fault] = field(default_factory=list)
    compression: int = 1
    set_identifier: bytes = b""


def _order(paths: Sequence[Path]) -> tuple[list[Path], dict[int, int]]:
    given = [Path(p) for p in paths]
    candidates = _members(given[0]) if len(given) == 1 else given
    numbered: dict[int, Path] = {}
    for p in candidates:
        try:
            with p.open("rb") as f:
                head = f.read(structs.EWF2_FILE_HEADER_SIZE)
        except OSError:
            head = b""
        if not head.startswith(structs.EVF2_SIGNATURE) or len(head) < structs.EWF2_FILE_HEADER_SIZE:
            if p in given:
                raise FormatError(f"'{p}' is not an Ex01 segment", path=p, offset=0)
            continue
        h = structs.ewf2_file_header.parse(head)
        n = int(h.segment_number)
        if n == 0 or n in numbered:
            other = numbered.get(n)
            raise MissingSegmentError(
                f"segment number {n} of '{p}' is invalid or also used by '{other}'", path=p, offset=12
            )
        numbered[n] = p
    last = max(numbered)
    for k in range(1, last + 1):
        if k not in numbered:
            ref = numbered.get(1) or next(iter(numbered.values()))
            m = _EXT.match(ref.name)
            stem = m.group("stem") if m else ref.stem
            missing = ref.with_name(f"{stem}.{ex01_extension(k)}")
            raise MissingSegmentError(f"Ex01 set '{stem}' is missing segment {k} ('{missing}')", path=missing)
    return [numbered[k] for k in range(1, last + 1)], {}


def _text_values(raw: bytes, *, path: Path, offset: int) -> dict[str, str]:
    # metadata: zlib stream (zero padding after it is expected), UTF-16LE text with a BOM
    text = decode_header2_text(inflate_header(raw, path=str(path), offset=offset))
    parsed = parse_header_text(text, "ewf2")
    return {k: v.translate(_UNESCAPE) for k, v in parsed.main.items()}


class EWF2Image(Image):
    """An EWF2 (Ex01) image written by EnCase 7+ (unencrypted, zlib or uncompressed chunks).

    Args:
        paths: one segment (its siblings are found by name) or every segment.
        zero_fill: read bad chunks as zeros and record them in :attr:`faults`.
    """

    format: ClassVar[str] = "ewf"

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, zero_fill: bool = False) -> None:
        ordered, _ = _order([Path(p) for p in paths])
        self._files = SegmentSet(ordered)
        try:
            info, parsed = self._load()
        except BaseException:
            self._files.close()
            raise
        self._tables = parsed.tables
        self._firsts = [t.first_chunk for t in parsed.tables]
        self._structure_faults = tuple(parsed.faults)
        super().__init__(info, zero_fill=zero_fill)

    def _load(self) -> tuple[ImageInfo, _Parsed2]:
        files = self._files
        p = _Parsed2()
        n = len(files)
        for si in range(n):
            path = files.paths[si]
            head = structs.ewf2_file_header.parse(files.pread_exact(si, 0, 32, "Ex01 file header"))
            if si == 0:
                p.compression = int(head.compression_method)
                p.set_identifier = bytes(head.set_identifier)
                if p.compression == 2:
                    raise UnsupportedFormatError(f"'{path}' uses bzip2 chunk compression", path=path, offset=10)
            sections = walk_sections2(files, si)
            last_type = sections[-1].type
            if si < n - 1 and last_type != _NEXT:
                raise FormatError(f"segment '{path}' does not end with 'next'", path=path)
            if si == n - 1 and last_type != _DONE:
                try:
                    missing = files.paths[0].with_name(
                        files.paths[0].name[: -len(files.paths[0].suffix)] + "." + ex01_extension(n + 1)
                    )
                except ValueError:
                    missing = path
                raise MissingSegmentError(
                    f"'{path}' does not end with 'done': segment {n + 1} ('{missing}') is missing", path=missing
                )
            for sec in sections:
                self._load_section(si, sec, p)
        return self._build_info(p), p

    def _load_section(self, si: int, sec: _Section2, p: _Parsed2) -> None:
        files = self._files
        path = files.paths[si]
        if sec.flags & 2 or sec.type == _ENCRYPTION:
            raise UnsupportedFormatError(f"'{path}' is an encrypted Ex01 image", path=path, offset=sec.descriptor)
        if sec.type in (_DEVICE, _CASE):
            if sec.data_size > 64 << 20:
                raise FormatError("Ex01 metadata section is implausibly large", path=path, offset=sec.descriptor)
            raw = files.pread_exact(si, sec.data_offset, sec.data_size, "Ex01 metadata")
            values = _text_values(raw, path=path, offset=sec.data_offset)
            (p.device if sec.type == _DEVICE else p.case).update(values)
        elif sec.type == _TABLE:
            self._load_table(si, sec, p)
        elif sec.type in (_MD5, _SHA1):
            n = 16 if sec.type == _MD5 else 20
            if sec.data_size < n + 4:
                raise FormatError("Ex01 hash section too small", path=path, offset=sec.descriptor)
            raw = files.pread_exact(si, sec.data_offset, n + 4, "Ex01 hash")
            if _adler32(raw[:n]) != int.from_bytes(raw[n:], "little"):
                p.faults.append(
                    Fault(
                        FaultKind.METADATA,
                        f"Ex01 {_SECTION_NAMES[sec.type]} section in '{path}' fails its checksum; not used",
                        segment=str(path),
                        offset=sec.data_offset + n,
                    )
                )
            elif any(raw[:n]):
                if sec.type == _MD5:
                    p.md5 = raw[:n].hex()
                else:
                    p.sha1 = raw[:n].hex()
        else:
            log.debug("skipping Ex01 section %s at 0x%x", _SECTION_NAMES.get(sec.type, sec.type), sec.descriptor)

    def _load_table(self, si: int, sec: _Section2, p: _Parsed2) -> None:
        files = self._files
        path = files.paths[si]
        hs, es = structs.EWF2_TABLE_HEADER_SIZE, structs.EWF2_TABLE_ENTRY_SIZE
        if sec.data_size < hs + 16:
            raise FormatError("Ex01 sector table too small", path=path, offset=sec.descriptor)
        head = files.pread_exact(si, sec.data_offset, hs, "Ex01 table header")
        if _adler32(head[:16]) != int.from_bytes(head[16:20], "little"):
            raise FormatError(
                f"Ex01 sector table header checksum mismatch in '{path}' at offset 0x{sec.data_offset:08x}",
                path=path,
                offset=sec.data_offset,
            )
        h = structs.ewf2_table_header.parse(head)
        count = int(h.entry_count)
        if count * es > sec.data_size - hs - 16:
            raise FormatError(
                f"Ex01 sector table claims {count} entries but its section holds fewer",
                path=path,
                offset=sec.data_offset,
            )
        raw = files.pread_exact(si, sec.data_offset + hs, count * es + 4, "Ex01 table entries")
        if _adler32(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            raise FormatError(
                f"Ex01 sector table entries checksum mismatch in '{path}'",
                path=path,
                offset=sec.data_offset + hs + count * es,
            )
        offsets = array("Q")
        sizes = array("I")
        flags = bytearray(count)
        for i, (off, size, fl) in enumerate(struct.iter_unpack("<QII", raw[:-4])):
            offsets.append(off)
            sizes.append(size)
            flags[i] = fl & 0xFF
        first = int(h.first_chunk)
        expected_first = sum(len(t.sizes) for t in p.tables)
        if first != expected_first:
            raise FormatError(
                f"Ex01 sector table starts at chunk {first}, expected {expected_first}",
                path=path,
                offset=sec.data_offset,
            )
        p.tables.append(_Table2(si, first, offsets, sizes, bytes(flags), sec.descriptor))

    def _build_info(self, p: _Parsed2) -> ImageInfo:
        files = self._files
        first = files.paths[0]
        dev, case = p.device, p.case

        def num(d: dict[str, str], key: str, default: int = 0) -> int:
            try:
                return int(d.get(key, "") or default)
            except ValueError:
                return default

        bps = num(dev, "bp", 512)
        sectors = num(dev, "ts")
        spc = num(case, "sb", 64)
        if not (0 < bps <= 1 << 16) or not (0 < spc <= 1 << 20) or spc * bps > 256 << 20:
            raise FormatError(f"Ex01 geometry is implausible: {spc} sectors of {bps} bytes per chunk", path=first)
        chunk_size = spc * bps
        size = sectors * bps
        total = sum(len(t.sizes) for t in p.tables)
        if total < -(-size // chunk_size):
            raise FormatError(
                f"the Ex01 tables list {total} chunks, the media of {sectors} sectors needs more", path=files.paths[-1]
            )
        hashes = {k: v for k, v in (("md5", p.md5), ("sha1", p.sha1)) if v}
        media_type = _MEDIA_TYPES.get(dev.get("dt", "f"), "fixed")
        return ImageInfo(
            format="ewf",
            size=size,
            sector_size=bps,
            chunk_size=chunk_size,
            segments=tuple(files.paths),
            format_version="EnCase 7 (Ex01)",
            case=CaseInfo(
                case_number=case.get("cn", ""),
                evidence_number=case.get("en", ""),
                examiner=case.get("ex", ""),
                description=case.get("nm", ""),
                notes=case.get("nt", ""),
            ),
            acquired_at=parse_header_date(case.get("at", "")),
            system_date=parse_header_date(case.get("tt", "")),
            acquisition_software=case.get("av") or None,
            acquisition_os=case.get("os") or None,
            stored_hashes=hashes,
            source=SourceInfo(
                size=size,
                logical_sector_size=bps,
                model=dev.get("md", ""),
                serial=dev.get("sn", ""),
                media_type=media_type,
                is_physical=dev.get("ph", "") == "1",
                extra={"label": dev["lb"]} if dev.get("lb") else {},
            ),
            details={
                "ewf_version": 2,
                "sectors_per_chunk": spc,
                "sector_count": sectors,
                "chunk_count": total,
                "segment_count": len(files),
                "compression_method": {0: "none", 1: "zlib", 2: "bzip2"}.get(p.compression, str(p.compression)),
                "error_granularity": num(case, "gr"),
                "media_type": media_type,
                "set_identifier": p.set_identifier.hex(),
            },
        )

    def _read_chunk(self, index: int) -> bytes:
        cs = self._chunk_size
        mstart = index * cs
        expected = min(cs, self._size - mstart)
        media = (mstart, mstart + expected)
        t = self._tables[bisect.bisect_right(self._firsts, index) - 1]
        k = index - t.first_chunk
        off, size, fl = t.offsets[k], t.sizes[k], t.flags[k]
        path = self._files.paths[t.segment]
        if fl & 5 == 5:  # fill pattern (flag 4, honoured only with flag 1): the 8-byte "offset" repeated
            pattern = off.to_bytes(8, "little")
            return (pattern * (-(-expected // 8)))[:expected]
        if not fl & 1 and not fl & 2:
            raise _chunk_error(
                FaultKind.CHECKSUM,
                "uncompressed Ex01 chunk without a checksum cannot be verified",
                path=path,
                offset=off,
                chunk=index,
                media=media,
            )
        if size == 0 or size > cs + 4 + (cs >> 3) + 1024 or off + size > self._files.sizes[t.segment]:
            raise _chunk_error(
                FaultKind.SIZE, f"stored size {size} at 0x{off:x} is out of bounds", path=path, offset=off,
                chunk=index, media=media,
            )  # fmt: skip
        return read_and_decode_chunk(
            self._files, t.segment, off, size, bool(fl & 1), expected=expected, chunk_size=cs,
            last=index == self._chunk_count - 1, chunk=index, media=media,
        )  # fmt: skip

    def _close_files(self) -> None:
        self._files.close()

    def chunk_location(self, index: int) -> tuple[Path, int, int, bool]:
        """Where chunk ``index`` is stored: segment file, file offset, stored size, compressed.

        For a fill-pattern chunk the offset is the pattern and the size 0 (nothing is stored).
        """
        t = self._tables[bisect.bisect_right(self._firsts, index) - 1]
        k = index - t.first_chunk
        fill = t.flags[k] & 5 == 5
        return self._files.paths[t.segment], t.offsets[k], 0 if fill else t.sizes[k], bool(t.flags[k] & 1)

    def check_structure(self) -> tuple[Fault, ...]:
        """Metadata sections whose checksums failed (their content was not used). Never raises."""
        return self._structure_faults


def open_image(paths: Sequence[Path], *, zero_fill: bool = False, **options: Any) -> Image:
    """Open an Ex01 image (any segment, or all of them)."""
    return EWF2Image(paths, zero_fill=zero_fill)
