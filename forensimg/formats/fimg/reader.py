"""The fimg reader (``formats/fimg/spec.md`` §3-§8): checked chunk reads, structure checks, range proofs.

A finished image is opened through its footer, index and digest table; an unfinished one (no footer) by
walking its records up to the last valid checkpoint (:mod:`.recover`), and then reports
``info.complete == False`` and the committed size. Every chunk read checks the record header CRC-32,
the decoded length and the SHA-256 of the decoded data (against the record and the digest table).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import uuid as uuidlib
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from construct import ConstructError

from forensimg.errors import ChecksumError, FormatError, UnsupportedFormatError
from forensimg.formats.fimg.layout import (
    FOOTER_SIZE,
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    MAX_METADATA_SIZE,
    MIN_CHUNK_SIZE,
    RECORD_SIZE,
    T_DIGESTS,
    T_INDEX,
    T_METADATA,
    T_TOP,
    ChunkFault,
    decode_chunk,
    drop_torn,
    find_segments,
    parse_record,
    split_location,
)
from forensimg.formats.fimg.record import decode_record, read_runs
from forensimg.formats.fimg.recover import Walk, walk_records
from forensimg.formats.fimg.scanner import ScanJob, ScanProcesses
from forensimg.formats.fimg.structs import FOOTER, FOOTER_MAGIC, HEADER
from forensimg.image import CaseInfo, Fault, FaultKind, Image, ImageInfo, Range, SourceInfo
from forensimg.merkle import (
    audit_path,
    level_nodes,
    merkle_root,
    root_from_nodes,
    tree_levels,
    tree_levels_from_nodes,
    verify_path,
)
from forensimg.registry import FIMG_MAGIC
from forensimg.streams import SegmentSet, check_input_file

__all__ = ["FimgImage", "open_image", "parse_headers", "read_chunk_at", "read_footer"]

_BIG = sys.byteorder == "big"
_LOC_MASK = (1 << 48) - 1
_pread = os.pread
SCAN_PROCESSES_AFTER = 64 << 20
"""Media bytes from which verify checks a fimg's chunks in scan processes (two or more workers)."""
_HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """A checked segment header (spec §3)."""

    version: tuple[int, int]
    uuid: bytes
    chunk_size: int
    sector_size: int
    segment_number: int
    max_segment_size: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class Footer:
    """A parsed footer (spec §5.6); ``seal_ok`` tells whether its seal matched."""

    metadata_location: int
    index_location: int
    digests_location: int
    chunk_count: int
    media_size: int
    segment_count: int
    uuid: bytes
    merkle_root: bytes
    seal: bytes
    raw: bytes


def parse_headers(segs: SegmentSet) -> list[SegmentHeader]:
    """Parse and check every segment header (magic, version, digest, geometry, numbering, UUID).

    Raises:
        FormatError: not a fimg file or a header field is invalid.
        ChecksumError: a header digest does not match.
        UnsupportedFormatError: a newer major version.
    """
    out: list[SegmentHeader] = []
    for i, p in enumerate(segs.paths):
        raw = segs.pread(i, 0, HEADER_SIZE)
        if len(raw) < HEADER_SIZE or not raw.startswith(FIMG_MAGIC):
            raise FormatError(f"'{p}' is not a fimg segment (no fimg header)", path=p, offset=0)
        try:
            h = HEADER.parse(raw)
        except ConstructError as exc:  # pragma: no cover - the length and magic were checked
            raise FormatError(f"'{p}': bad fimg header ({exc})", path=p, offset=0) from None
        if hashlib.sha256(raw[:96]).digest() != h.digest:
            raise ChecksumError(f"fimg segment header of '{p}' fails its SHA-256", path=p, offset=96)
        if h.version_major != 1:
            raise UnsupportedFormatError(
                f"'{p}' is fimg version {h.version_major}.{h.version_minor}; this reader knows 1.x", path=p, offset=8
            )
        cs, ss = h.chunk_size, h.sector_size
        if h.header_size != HEADER_SIZE or not (MIN_CHUNK_SIZE <= cs <= MAX_CHUNK_SIZE) or cs & (cs - 1):
            raise FormatError(f"'{p}': bad header size or chunk size {cs}", path=p, offset=12)
        if not 256 <= ss <= cs or ss & (ss - 1):
            raise FormatError(f"'{p}': bad sector size {ss}", path=p, offset=36)
        if h.segment_number != i + 1:
            raise FormatError(
                f"'{p}' is segment {h.segment_number} of its image, expected segment {i + 1}", path=p, offset=40
            )
        hdr = SegmentHeader((h.version_major, h.version_minor), h.uuid, cs, ss, h.segment_number,
                            h.max_segment_size, h.digest)
        if out and (hdr.uuid, hdr.chunk_size, hdr.sector_size) != (out[0].uuid, out[0].chunk_size, out[0].sector_size):
            raise FormatError(f"'{p}' belongs to another fimg image (UUID or geometry differs)", path=p, offset=16)
        out.append(hdr)
    return out


def read_footer(segs: SegmentSet, h0: SegmentHeader) -> Footer | None:
    """The footer at the end of the last segment, or ``None`` when there is none (an unfinished image)."""
    last = len(segs) - 1
    size = segs.sizes[last]
    if size < HEADER_SIZE + FOOTER_SIZE:
        return None
    raw = segs.pread(last, size - FOOTER_SIZE, FOOTER_SIZE)
    if not raw.startswith(FOOTER_MAGIC):
        return None
    try:
        f = FOOTER.parse(raw)
    except ConstructError:
        return None
    return Footer(f.metadata_location, f.index_location, f.digests_location, f.chunk_count, f.media_size,
                  f.segment_count, f.uuid, f.merkle_root, f.seal, raw)


def read_chunk_at(
    segs: SegmentSet, loc: int, index: int, length: int, chunk_size: int, leaf: bytes | None = None,
    span: int | None = None,
) -> tuple[bytes, bytes]:
    """Read, check and decode chunk ``index`` stored at location ``loc``. Returns ``(data, digest)``.

    ``span`` bounds the bytes read (default: a header and ``length`` bytes of data); a record whose data
    does not fit in it fails as a short read, so it must be at least the record's size.

    Raises:
        ChecksumError: the record is damaged or its data fails its SHA-256 (names chunk, media range,
            segment file and offset).
    """
    seg, off = split_location(loc)
    media_start = index * chunk_size
    if not 1 <= seg <= len(segs) or off < HEADER_SIZE or off >= segs.sizes[seg - 1]:
        p = segs.paths[min(max(seg, 1), len(segs)) - 1]
        raise ChunkFault(
            f"fimg chunk {index} (media {media_start}..{media_start + length - 1}): index entry points outside "
            f"the segments (segment {seg}, offset {off})",
            kind=FaultKind.METADATA, path=p, offset=off, chunk=index, media_start=media_start,
            media_end=media_start + length,
        )
    buf = segs.pread(seg - 1, off, span if span is not None else RECORD_SIZE + length)
    return decode_chunk(buf, index, length, path=segs.paths[seg - 1], offset=off, media_start=media_start, leaf=leaf)


def _record_body(segs: SegmentSet, loc: int, rtype: bytes, what: str, max_len: int) -> tuple[bytes, bool, int, int]:
    """Read the body of a record at ``loc``; returns (body, digest_ok, record index field, offset).

    Raises:
        FormatError: no valid record of that type there, or its length is out of bounds.
    """
    seg, off = split_location(loc)
    if not 1 <= seg <= len(segs) or off < HEADER_SIZE or off + RECORD_SIZE > segs.sizes[seg - 1]:
        p = segs.paths[-1]
        raise FormatError(f"fimg footer points {what} outside the segments (segment {seg}, offset {off})", path=p)
    p = segs.paths[seg - 1]
    rh = parse_record(segs.pread(seg - 1, off, RECORD_SIZE))
    if rh is None or rh.type != rtype:
        raise ChecksumError(f"fimg {what} record in '{p}' is damaged (header CRC-32 or type)", path=p, offset=off)
    if rh.stored_length > max_len or off + RECORD_SIZE + rh.stored_length > segs.sizes[seg - 1]:
        raise FormatError(f"fimg {what} record in '{p}' has an impossible length {rh.stored_length}",
                          path=p, offset=off)
    body = segs.pread(seg - 1, off + RECORD_SIZE, rh.stored_length)
    return body, hashlib.sha256(body).digest() == rh.digest, rh.number, off


def _read_top(segs: SegmentSet, digests_loc: int, leaves: bytes, count: int) -> tuple[int, list[bytes]] | None:
    """The ``FTOP`` record right after the digest table (spec §5.5), or ``None`` if absent or invalid."""
    seg, off = split_location(digests_loc)
    off += RECORD_SIZE + len(leaves)
    if not 1 <= seg <= len(segs) or off + RECORD_SIZE > segs.sizes[seg - 1]:
        return None
    rh = parse_record(segs.pread(seg - 1, off, RECORD_SIZE))
    if rh is None or rh.type != T_TOP or rh.number > 62:
        return None
    want = -(-count >> rh.number) if count else 0
    if rh.stored_length != 32 * want or off + RECORD_SIZE + rh.stored_length > segs.sizes[seg - 1]:
        return None
    body = segs.pread(seg - 1, off + RECORD_SIZE, rh.stored_length)
    if hashlib.sha256(body).digest() != rh.digest:
        return None
    return rh.number, [body[i : i + 32] for i in range(0, len(body), 32)]


def _u64s(raw: bytes) -> array[int]:
    a = array("Q")
    a.frombytes(raw)
    if _BIG:  # pragma: no cover
        a.byteswap()
    return a


def _dt(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        return None
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def _source(d: Any) -> SourceInfo | None:
    if not isinstance(d, Mapping):
        return None
    types: dict[str, tuple[type, ...]] = {
        "path": (str,), "size": (int, type(None)), "logical_sector_size": (int,),
        "physical_sector_size": (int, type(None)), "model": (str,), "serial": (str,), "media_type": (str,),
        "is_physical": (bool,), "extra": (dict,),
    }
    clean = {k: v for k, v in d.items() if k in types and isinstance(v, types[k])}
    return SourceInfo.from_dict(clean)


def _hashes(d: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(d, Mapping):
        for k, v in d.items():
            if (isinstance(k, str) and isinstance(v, str) and _HASH_LENGTHS.get(k.lower()) == len(v)
                    and all(c in "0123456789abcdef" for c in v.lower())):
                out[k.lower()] = v.lower()
    return out


def _ranges(items: Any, size: int) -> tuple[Range, ...]:
    out: list[Range] = []
    if isinstance(items, list):
        for it in items:
            if isinstance(it, Mapping):
                a, b = it.get("start"), it.get("end")
                if isinstance(a, int) and isinstance(b, int) and 0 <= a <= b <= size:
                    out.append(Range(a, b))
    return tuple(out)


class FimgImage(Image):
    """A fimg image, finished or not (see the module docstring)."""

    format: ClassVar[str] = "fimg"

    def __init__(self, paths: Sequence[Path], *, zero_fill: bool = False) -> None:
        self._segs = SegmentSet(paths)
        try:
            self._open()
        except BaseException:
            self._segs.close()
            raise
        super().__init__(self._info_built, zero_fill=zero_fill, cache_chunks=32)
        # what every chunk read needs, in one attribute (each attribute lookup on an io subclass costs
        # about as much as a dict lookup): none of it changes after opening; fds is emptied at close
        cs = self._chunk_size
        self._hot = (cs, self._size, self._locations, len(self._locations), self._leaves, self._segs.fds,
                     self._stored)

    # -- opening ----------------------------------------------------------------------------------

    def _open(self) -> None:
        segs = self._segs
        self._headers = parse_headers(segs)
        h0 = self._headers[0]
        cs = h0.chunk_size
        self._open_faults: list[Fault] = []
        self._leaves: bytes | None = None
        self._footer = read_footer(segs, h0)
        self._walk: Walk | None = None
        self._roots: tuple[list[bytes] | None, bytes] | None = None
        self._scan_procs: ScanProcesses | None = None
        self._top: tuple[int, list[bytes]] | None = None
        self._top_tree: tuple[list[list[bytes]], dict[int, list[list[bytes]]]] | None = None
        self._locations: array[int] = array("Q")
        self._stored: array[int] = array("I")
        self._tree: list[list[bytes]] | None = None
        self._tree_lock = threading.Lock()
        meta: dict[str, Any] | None = None
        first = segs.paths[0]
        if self._footer is not None:
            f = self._footer
            last = segs.paths[-1]
            if f.uuid != h0.uuid or f.segment_count != len(segs):
                raise FormatError(
                    f"fimg footer of '{last}' names {f.segment_count} segments of another image "
                    f"({len(segs)} found)",
                    path=last, offset=segs.sizes[-1] - FOOTER_SIZE,
                )
            if f.chunk_count != -(-f.media_size // cs) or f.chunk_count * 40 > sum(segs.sizes):
                raise FormatError(
                    f"fimg footer of '{last}': chunk count {f.chunk_count} does not fit media size {f.media_size}",
                    path=last, offset=segs.sizes[-1] - FOOTER_SIZE,
                )
            size = f.media_size
            count = f.chunk_count
            # metadata (spec §5.3)
            body, ok, _, moff = _record_body(segs, f.metadata_location, T_METADATA, "metadata", MAX_METADATA_SIZE)
            meta_digest = hashlib.sha256(body).digest()
            if not ok:
                self._open_faults.append(Fault(FaultKind.METADATA, f"fimg metadata in '{last}' fails its SHA-256",
                                               segment=str(last), offset=moff))
            try:
                parsed = json.loads(body.decode("utf-8"))
                meta = parsed if isinstance(parsed, dict) else None
            except (UnicodeDecodeError, ValueError):
                meta = None
            if meta is None:
                self._open_faults.append(Fault(FaultKind.METADATA, f"fimg metadata in '{last}' is not a JSON object",
                                               segment=str(last), offset=moff))
            # index (spec §5.4)
            locs: array[int] | None = None
            ibody, iok, icount, ioff = _record_body(segs, f.index_location, T_INDEX, "index", 8 * count)
            idx_digest = hashlib.sha256(ibody).digest()
            if len(ibody) != 8 * count or icount != count:
                self._open_faults.append(Fault(FaultKind.METADATA, f"fimg index in '{last}' has the wrong length",
                                               segment=str(last), offset=ioff))
            elif not iok:
                self._open_faults.append(Fault(FaultKind.METADATA, f"fimg index in '{last}' fails its SHA-256",
                                               segment=str(last), offset=ioff))
            else:
                locs = _u64s(ibody)
            # digest table (spec §5.5)
            dbody, dok, dcount, doff = _record_body(segs, f.digests_location, T_DIGESTS, "digest table", 32 * count)
            dig_digest = hashlib.sha256(dbody).digest()
            if len(dbody) != 32 * count or dcount != count or not dok:
                self._open_faults.append(Fault(FaultKind.METADATA,
                                               f"fimg digest table in '{last}' fails its SHA-256 or length",
                                               segment=str(last), offset=doff))
            else:
                self._leaves = dbody
                self._top = _read_top(segs, f.digests_location, dbody, count)
            seal = hashlib.sha256(
                b"".join(h.digest for h in self._headers) + meta_digest + idx_digest + dig_digest + f.raw[:104]
            ).digest()
            if seal != f.seal:
                self._open_faults.append(Fault(FaultKind.METADATA, f"fimg footer seal of '{last}' does not match",
                                               segment=str(last), offset=segs.sizes[-1] - FOOTER_SIZE + 104))
            if locs is None:  # recover the locations by walking the records (spec §7.1)
                w = self._walk_all()
                if len(w.locations) < count:
                    raise FormatError(
                        f"fimg index of '{last}' is damaged and only {len(w.locations)} of {count} chunk records "
                        "can be found",
                        path=last, offset=ioff,
                    )
                locs = w.locations[:count]
            self._locations = locs
            complete = True
            unreadable = _ranges((meta or {}).get("media", {}).get("unreadable") if meta else None, size)
            stored = _hashes((meta or {}).get("media", {}).get("hashes")) if meta else {}
        else:
            w = walk_records(segs, cs)
            self._walk = w
            ck = w.last_checkpoint
            count = ck.chunk_count if ck else 0
            size = ck.media_size if ck else 0
            self._locations = w.locations[:count]
            meta = w.initial_metadata
            complete = False
            unreadable = ck.unreadable if ck else ()
            stored = {}
        self._count_check = count
        self._stored = array("I", bytes(4 * count))  # stored length + 1 of records already checked
        meta = meta or {}
        acq = meta.get("acquisition") if isinstance(meta.get("acquisition"), dict) else {}
        assert isinstance(acq, dict)
        tool = acq.get("tool")
        ver = acq.get("tool_version")
        details: dict[str, Any] = {
            "state": "complete" if complete else "incomplete",
            "uuid": str(uuidlib.UUID(bytes=h0.uuid)),
            "chunk_count": count,
            "compression": meta.get("compression") if isinstance(meta.get("compression"), str) else None,
            "merkle_root": self._footer.merkle_root.hex() if self._footer is not None else None,
            "segment_count": len(segs),
            "max_segment_size": h0.max_segment_size,
        }
        if acq.get("finished"):
            details["acquisition_finished"] = str(acq.get("finished"))
        if isinstance(acq.get("resumed_at"), list) and acq["resumed_at"]:
            details["resumed_at"] = [str(x) for x in acq["resumed_at"]]
        if meta.get("custody_event") is not None:
            details["custody_event"] = meta.get("custody_event")
        if self._open_faults:
            details["structure_faults"] = len(self._open_faults)
        if not complete and self._walk is not None and self._walk.last_checkpoint is not None:
            details["checkpoints"] = len(self._walk.checkpoints)
        self._info_built = ImageInfo(
            format="fimg",
            format_version=f"fimg {h0.version[0]}.{h0.version[1]}",
            size=size,
            sector_size=h0.sector_size,
            chunk_size=cs,
            segments=segs.paths,
            case=CaseInfo.from_dict(meta["case"]) if isinstance(meta.get("case"), dict) else CaseInfo(),
            acquired_at=_dt(acq.get("started")),
            acquisition_software=f"{tool} {ver}" if isinstance(tool, str) and isinstance(ver, str) else None,
            acquisition_os=acq.get("os") if isinstance(acq.get("os"), str) else None,
            stored_hashes=stored,
            unreadable=unreadable,
            complete=complete,
            source=_source(meta.get("source")),
            details=details,
        )
        if len(self._locations) != count:  # pragma: no cover - guarded above
            raise FormatError(f"fimg image '{first}': index length mismatch", path=first)

    def _walk_all(self) -> Walk:
        if self._walk is None:
            stop = list(self._segs.sizes)
            if self._footer is not None:
                stop[-1] -= FOOTER_SIZE
            known = None
            if self._leaves is not None and len(self._stored) == len(self._locations) > 0:
                known = (self._locations, self._stored, self._leaves)
            self._walk = walk_records(self._segs, self._headers[0].chunk_size, stop_at=stop, known=known)
        return self._walk

    # -- chunks -----------------------------------------------------------------------------------

    def _leaf(self, index: int) -> bytes | None:
        if self._leaves is None:
            return None
        return self._leaves[32 * index : 32 * index + 32]

    def _read_chunk(self, index: int) -> bytes:
        # The hot path of every read: one pread of the record (header and data together), then the
        # checks of spec §4.2 inlined for a well-formed record (_decode_hot). Anything unusual (a short
        # read, a bad field, a digest mismatch, undecodable data) goes through read_chunk_at /
        # decode_chunk, which apply the same rules again and raise a ChunkFault naming what failed, the
        # chunk, its media range, the segment file and the offset.
        cs, size, locs, count, _leaves, fds, _checked = self._hot
        length = size - index * cs
        if length > cs:
            length = cs
        loc = locs[index]
        # Read no further than the next chunk's record when it follows in the same segment: a zero chunk
        # then costs 64 bytes, a compressed one its stored size.
        span = RECORD_SIZE + length
        if index + 1 < count:
            nxt = locs[index + 1]
            if loc < nxt < loc + span:
                span = nxt - loc
        seg = loc >> 48  # spec §4.4
        off = loc & _LOC_MASK
        if seg and off >= HEADER_SIZE:
            try:
                data = self._decode_hot(index, length, _pread(fds[seg - 1], span, off))
            except (OSError, IndexError):  # read again below, which names the file and the error
                data = None
            if data is not None:
                return data
        # the full, diagnosing check: raises for a bad record (or returns the data if a retried read is whole)
        return read_chunk_at(self._segs, loc, index, length, cs, self._leaf(index), span)[0]

    def _decode_hot(self, index: int, length: int, buf: bytes | memoryview) -> bytes | None:
        """:func:`~.record.decode_record` for chunk ``index``; a chunk checked against the digest table is
        marked, so that the record walk need not read it again."""
        leaves = self._hot[4]
        data, stored = decode_record(buf, index, length, leaves)
        if data is not None and leaves is not None:
            self._hot[6][index] = stored + 1
        return data

    def _check_run(self, lo: int, hi: int) -> list[tuple[int, bytes, Fault | None]]:
        # A scan task (verify, convert) reads the records of consecutive chunks with one pread per segment
        # run instead of one per chunk (at 16 KiB chunks, 256 preads fewer per task); each chunk is then
        # checked as _read_chunk checks it, and anything unusual goes through check_chunk, which reads
        # that record again and names the fault.
        cs, size, locs, _count, _leaves, fds, _checked = self._hot
        out: list[tuple[int, bytes, Fault | None]] = []
        for k, record in read_runs(locs, lo, hi, 0, cs, size, fds):
            data = self._decode_hot(k, min(cs, size - k * cs), record) if record is not None else None
            out.append((k, data, None) if data is not None else (k, *self.check_chunk(k)))
        return out

    def scan_blocks(
        self, start: int = 0, stop: int | None = None, *, workers: int = 1
    ) -> Iterator[tuple[int, int, Sequence[bytes | memoryview], list[Fault]]]:
        """:meth:`Image.scan_blocks`, on scan processes (:mod:`.scanner`) for a large image and two or more
        workers, else on threads. The runs, data and faults are the same either way."""
        stop = self.chunk_count if stop is None else min(stop, self.chunk_count)
        cs = self.chunk_size
        procs = None
        if workers >= 2 and (stop - start) * cs >= SCAN_PROCESSES_AFTER and self._segs.fds:
            try:
                procs = ScanProcesses(self._segs.fds, cs, self.size, workers, 2 * workers + 1,
                                      max(1, self._SCAN_TASK_BYTES // cs))
            except (OSError, AttributeError, TypeError, ValueError):  # no memfd (not Linux), no interpreter
                procs = None
        if procs is None:
            yield from super().scan_blocks(start, stop, workers=workers)
            return
        self._scan_procs = procs  # for tests and diagnostics
        try:
            yield from self._scan_on(procs, start, stop, workers)
        finally:
            self._scan_procs = None
            procs.close()

    def _scan_on(self, procs: ScanProcesses, start: int, stop: int,
                 workers: int) -> Iterator[tuple[int, int, Sequence[bytes | memoryview], list[Fault]]]:
        cs, size, locs, _count, leaves, _fds, checked = self._hot
        per = max(1, self._SCAN_TASK_BYTES // cs)
        pending: deque[ScanJob] = deque()
        nxt = start
        while pending or nxt < stop:
            while nxt < stop and len(pending) < 2 * workers:
                hi = min(nxt + per, stop)
                job = procs.submit(nxt, hi, locs[nxt:hi], leaves[32 * nxt : 32 * hi] if leaves is not None else None)
                if job is None:
                    break
                pending.append(job)
                nxt = hi
            if not pending:  # the processes are gone: the rest on threads
                yield from super().scan_blocks(nxt, stop, workers=workers)
                return
            job = pending.popleft()
            media = min(job.hi * cs, size) - job.lo * cs
            try:
                view, status, stored = procs.collect(job)
            except OSError:  # this task again, here (and the next ones too, once they come up)
                rows = self._check_run(job.lo, job.hi)
                yield job.lo, job.hi, [d for _, d, _ in rows], [f for _, _, f in rows if f is not None]
                continue
            faults: list[Fault] = []
            for r, good in enumerate(status):
                k = job.lo + r
                if good:
                    if leaves is not None:  # checked against the digest table: the record walk skips it
                        checked[k] = stored[r] + 1
                    continue
                data, fault = self.check_chunk(k)  # the diagnosing path names the fault; zeros in its place
                view[r * cs : r * cs + len(data)] = data
                if fault is not None:
                    faults.append(fault)
            yield job.lo, job.hi, [view[:media]], faults
            procs.release(job)

    def _close_files(self) -> None:
        self._segs.close()

    # -- verification hooks (spec §6, §8) ---------------------------------------------------------

    def prepare_structure(self) -> None:
        """Recompute the Merkle tree from the digest table (no chunk data needed): verify runs this in a
        helper thread beside the chunk scan, whose threads wait in inflate and SHA-256 most of the time.
        Only from a digest table (which cannot fail); without one, check_structure walks the records."""
        if self._leaves is not None:
            self._root_from_leaves()

    def _root_from_leaves(self) -> tuple[list[bytes] | None, bytes]:
        """``(nodes of the stored FTOP level or None, root)`` recomputed from the leaf digests (cached)."""
        with self._lock:
            cached = self._roots
        if cached is not None:
            return cached
        leaves = self._leaf_digests()
        if self._top is not None:  # one pass: the stored level's nodes from the leaves, then the root
            nodes: list[bytes] | None = level_nodes(leaves, self._top[0])
            out = (nodes, root_from_nodes(nodes or []))
        else:
            out = (None, merkle_root(leaves))
        if self._leaves is not None:  # the digest table is fixed once read; the record walk's digests are not
            with self._lock:
                self._roots = out
        return out

    def _leaf_digests(self) -> list[bytes]:
        """Leaf digests: the digest table, else the record headers."""
        if self._leaves is not None:
            return [self._leaves[i : i + 32] for i in range(0, len(self._leaves), 32)]
        w = self._walk_all()
        n = self.chunk_count
        return [bytes(w.digests[32 * i : 32 * i + 32]) for i in range(min(n, len(w.locations)))]

    def check_structure(self) -> tuple[Fault, ...]:
        """Header, metadata, index, digest-table and footer digests; record layout; the Merkle root.

        Returns every fault found (empty when all hold). Chunk data is checked by the chunk walk
        (:meth:`scan_chunks`), not here.
        """
        faults = list(self._open_faults)
        last = str(self._segs.paths[-1])
        if self._footer is None:
            return tuple(faults)
        f = self._footer
        try:
            w = self._walk_all()
        except FormatError as exc:
            return (*faults, Fault.from_error(exc, FaultKind.METADATA))
        n = self.chunk_count
        if w.stop is not None:
            # one damaged record ends the walk: report it once, and compare only what was walked
            si, off, why = w.stop
            where = ""
            locs = self._locations.tolist()
            loc = ((si + 1) << 48) | off
            if loc in locs:
                i = locs.index(loc)
                where = f" (the record of chunk {i}, media {self.chunk_range(i).start}..{self.chunk_range(i).end - 1})"
            faults.append(Fault(FaultKind.METADATA, f"fimg records end early in '{self._segs.paths[si]}': {why}{where}",
                                segment=str(self._segs.paths[si]), offset=off))
            walked = len(w.locations)
            if w.locations.tolist() != self._locations.tolist()[:walked]:
                faults.append(Fault(FaultKind.METADATA, "fimg index disagrees with the chunk records", segment=last))
        else:
            if w.locations != self._locations:
                faults.append(Fault(FaultKind.METADATA, f"fimg index disagrees with the chunk records "
                                    f"({len(w.locations)} records, {n} entries)", segment=last))
            expect = {f.metadata_location, f.index_location, f.digests_location}
            have = {((si + 1) << 48) | off for (_t, _i, si, off, _d) in w.final_records}
            if not expect <= have:
                faults.append(Fault(FaultKind.METADATA, "fimg footer points at metadata/index/digest records the "
                                    "walk did not find", segment=last))
            ck = w.last_checkpoint
            if ck is None or ck.chunk_count != n or ck.media_size != self.size:
                faults.append(Fault(FaultKind.METADATA, "the last fimg checkpoint does not cover the whole media",
                                    segment=last))
        if self._leaves is not None and w.digests != self._leaves[: len(w.digests)]:
            for i in range(min(n, len(w.locations))):
                if w.digests[32 * i : 32 * i + 32] != self._leaves[32 * i : 32 * i + 32]:
                    r = self.chunk_range(i)
                    seg, off = split_location(self._locations[i])
                    faults.append(Fault(FaultKind.CHECKSUM,
                                        f"fimg chunk {i}: record digest differs from the digest table",
                                        chunk=i, media=r, segment=str(self._segs.paths[seg - 1]), offset=off,
                                        expected=self._leaves[32 * i : 32 * i + 32].hex(),
                                        found=bytes(w.digests[32 * i : 32 * i + 32]).hex()))
        nodes, root = self._root_from_leaves()
        if self._top is not None and nodes != self._top[1]:
            faults.append(Fault(FaultKind.MERKLE, "fimg stored tree level (FTOP) differs from the digest table",
                                segment=last))
        if root != f.merkle_root:
            faults.append(Fault(FaultKind.MERKLE, "Merkle root recomputed from the chunk digests differs from the "
                                "stored root", segment=last, expected=f.merkle_root.hex(), found=root.hex()))
        meta_root = self._meta_root()
        if meta_root is not None and meta_root != f.merkle_root.hex():
            faults.append(Fault(FaultKind.MERKLE, "Merkle root in the metadata differs from the footer's",
                                segment=last, expected=f.merkle_root.hex(), found=meta_root))
        return tuple(faults)

    def _meta_root(self) -> str | None:
        try:
            body, _, _, _ = _record_body(self._segs, self._footer.metadata_location, T_METADATA, "metadata",
                                         MAX_METADATA_SIZE) if self._footer else (b"", True, 0, 0)
            meta = json.loads(body.decode("utf-8"))
        except (FormatError, UnicodeDecodeError, ValueError):
            return None
        v = meta.get("merkle_root") if isinstance(meta, dict) else None
        return v if isinstance(v, str) else None

    def _levels(self) -> list[list[bytes]]:
        with self._tree_lock:
            if self._tree is None:
                self._tree = tree_levels(self._leaf_digests())
            return self._tree

    def _path_function(self, root: bytes, n: int) -> Callable[[int], list[bytes]] | None:
        """A function giving the audit path of chunk ``i``; ``None`` when the digests cannot give one.

        With a valid stored tree level (``FTOP``, spec §5.5) only the leaves of the block holding ``i`` are
        hashed (blocks cached); otherwise the whole tree is built from the digest table once.
        """
        with self._tree_lock:
            if self._top is not None and self._leaves is not None and self._top_tree is None:
                # nodes that do not lead to the root are not used (the digest table is; check_structure
                # reports the difference)
                ok = root_from_nodes(self._top[1]) == root
                self._top_tree = (tree_levels_from_nodes(self._top[1]) if ok else [], {})
        if self._top is not None and self._top_tree and self._top_tree[0] and self._leaves is not None:
            lvl = self._top[0]
            top_levels, blocks = self._top_tree
            leaves = self._leaves

            def path(i: int) -> list[bytes]:
                j = i >> lvl
                with self._tree_lock:
                    bl = blocks.get(j)
                    if bl is None:
                        lo, hi = j << lvl, min((j + 1) << lvl, n)
                        bl = tree_levels([leaves[32 * k : 32 * k + 32] for k in range(lo, hi)])
                        if len(blocks) > 64:
                            blocks.clear()
                        blocks[j] = bl
                return audit_path(bl, i - (j << lvl)) + audit_path(top_levels, j)

            return path
        levels = self._levels()
        if len(levels[0]) != n:
            return None
        return lambda i: audit_path(levels, i)

    def prove_range(self, start: int, end: int) -> tuple[Fault, ...] | None:
        """Prove media ``[start, end)`` against the stored Merkle root, reading only the chunks it covers.

        Each covered chunk is read and checked against its digest, and its audit path (from the digest
        table) is verified against the footer's root. Returns the faults (empty: proven); ``None`` for an
        unfinished image, which has no root.
        """
        if self._footer is None:
            return None
        end = min(end, self.size)
        if start < 0 or start >= end:
            return ()
        root = self._footer.merkle_root
        n = self.chunk_count
        faults: list[Fault] = []
        path_of = self._path_function(root, n)
        if path_of is None:
            return (Fault(FaultKind.MERKLE, "fimg digest table is unusable: no proof possible",
                          segment=str(self._segs.paths[-1])),)
        for i in range(start // self._chunk_size, (end - 1) // self._chunk_size + 1):
            data, fault = self.check_chunk(i)
            if fault is not None:
                faults.append(fault)
                continue
            digest = hashlib.sha256(data).digest()
            if not verify_path(digest, i, n, path_of(i), root):
                seg, off = split_location(self._locations[i])
                faults.append(Fault(FaultKind.MERKLE, f"fimg chunk {i}: audit path does not lead to the stored root",
                                    chunk=i, media=self.chunk_range(i), segment=str(self._segs.paths[seg - 1]),
                                    offset=off, expected=root.hex()))
        return tuple(faults)


def open_image(paths: Sequence[Path], *, zero_fill: bool = False, **_: Any) -> Image:
    """Open a fimg image (registry entry point): any one segment, or all of them in order.

    Raises:
        MissingSegmentError: a segment is missing (named).
        FormatError / ChecksumError: the headers or footer are invalid.
    """
    if len(paths) == 1:
        check_input_file(paths[0])
        members, _torn = drop_torn(find_segments(Path(paths[0])))
        tmp = SegmentSet(members)
        try:
            headers = parse_headers(tmp)
            footer = read_footer(tmp, headers[0])
        finally:
            tmp.close()
        if footer is not None and footer.segment_count > len(members):  # names the missing segment
            members = find_segments(Path(paths[0]), expected=footer.segment_count)
        paths = members
    return FimgImage(paths, zero_fill=zero_fill)
