"""The fimg writer: append-only, parallel, crash-safe and resumable (``formats/fimg/spec.md`` §5, §7).

Chunks are hashed (SHA-256) and compressed in jobs of 4 MiB by encoder processes (:mod:`.encoder`), or by
a thread pool for small images and wherever processes cannot run, and written strictly in order by the
calling thread. Every ``checkpoint_interval`` chunks, at each segment's end and at close, the writer
syncs the data, appends a checkpoint record and syncs again: after
a crash at any moment, everything up to the last checkpoint is intact and :func:`resume_writer` continues
from there. The whole-media hashes come from :class:`~forensimg.writer.ImageWriter` (``MultiHasher``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import threading
import uuid as uuidlib
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import zstandard

from forensimg._version import __version__
from forensimg.errors import ChecksumError, FormatError, UsageError, WriteError
from forensimg.formats.fimg.encoder import EncoderProcesses, ProcessJob
from forensimg.formats.fimg.layout import (
    DEFAULT_CHECKPOINT_BYTES,
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    M_ZLIB,
    M_ZSTD,
    METHODS,
    RECORD_SIZE,
    T_CHECKPOINT,
    T_DIGESTS,
    T_INDEX,
    T_METADATA,
    T_TOP,
    VERSION,
    ZLIB,
    check_chunk_size,
    drop_torn,
    find_segments,
    location,
    pack_record,
    segment_name,
    split_location,
)
from forensimg.formats.fimg.record import EncodedChunk, EncodedRun, encode_range
from forensimg.formats.fimg.structs import CHECKPOINT_FIXED, FOOTER, HEADER, RANGE_PAIR
from forensimg.hashing import MultiHasher
from forensimg.image import CaseInfo, Range, SourceInfo, merge_ranges
from forensimg.merkle import level_nodes, level_up, root_from_nodes, top_level
from forensimg.outputs import OutputSet, copy_bases
from forensimg.records import fsync_dir
from forensimg.streams import SegmentSet
from forensimg.writer import ImageWriter, WriteResult

__all__ = ["FimgWriter", "resume_writer"]

_BIG = sys.byteorder == "big"
_ZLIB_DEFAULT_LEVEL = 1
_FLUSH_BYTES = 4 << 20  # queued output written with one writev
_IOV_MAX = 1000  # below Linux IOV_MAX (1024): flushed before a record (2 entries) or a run would pass it
_ZSTD_DEFAULT_LEVEL = 1
_PROCESSES_AFTER = 16 << 20  # encoder="auto": media bytes queued before the encoder processes start
_ENCODERS = ("auto", "processes", "threads")
_RESUME_OPTIONS = {
    "sync", "workers", "checkpoint_interval", "compression", "compression_level", "custody_event", "compute_hashes",
    "case", "source", "sector_size", "chunk_size", "hashes", "segment_size", "overwrite", "acquired_at", "direct",
    "encoder",
}


def _le(a: array[int]) -> bytes:
    if _BIG:  # pragma: no cover - little-endian hosts only in CI
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _build_header(uid: bytes, chunk_size: int, sector_size: int, number: int, max_seg: int) -> bytes:
    fields = {
        "version_major": VERSION[0], "version_minor": VERSION[1], "header_size": HEADER_SIZE, "uuid": uid,
        "chunk_size": chunk_size, "sector_size": sector_size, "segment_number": number, "flags": 0,
        "max_segment_size": max_seg, "digest": bytes(32),
    }
    raw = bytes(HEADER.build(fields))
    return raw[:96] + hashlib.sha256(raw[:96]).digest()


class FimgWriter(ImageWriter):
    """Writes a fimg image (spec: ``formats/fimg/spec.md``).

    Args:
        path: first segment (``disk.fimg``); further segments are ``disk.f002``, ``disk.f003`` ...
        chunk_size: bytes per chunk, a power of two from 4 KiB to 16 MiB (default 16 KiB).
        compression: ``zlib`` (default; ISA-L where installed), ``zstd`` or ``none``. A chunk is stored
            compressed only when that makes it smaller; an all-zero chunk is stored as a flag.
        compression_level: zlib level (ISA-L 0..3 / zlib 1..9; default 1) or zstd level (default 1).
        segment_size: maximum bytes per segment file (chunk records never straddle files); ``None``: one file.
        checkpoint_interval: chunks between checkpoints (default: 128 MiB of media, 8192 chunks of 16 KiB;
            fewer where ``segment_size`` is too small for such a checkpoint: each checkpoint waits for the data
            written so far; every 32 MiB cost a 1 GiB acquisition 0.2 s, every 128 MiB loses at most that
            much media to a crash).
        workers: processes or threads that hash and compress (default: the CPU count).
        encoder: ``auto`` (default: threads for the first 16 MiB, then encoder processes, see
            :mod:`.encoder`), ``processes`` (from the start) or ``threads`` (never processes). Processes
            hand no GIL between encoding threads; the image is the same byte for byte either way. Should a
            process fail, its jobs are encoded again by threads and ``WriteResult.details["encoder"]`` says
            why.
        custody_event: a custody event (JSON-able mapping) embedded in the final metadata.
        sync: ``background`` (default: checkpoints are synced by a helper thread while writing goes on) or
            ``strict`` (data synced before each checkpoint and the checkpoint after it, before returning).
        mirror_paths: first-segment paths of further identical copies (see :mod:`forensimg.outputs`): each
            chunk is encoded once and the same bytes go to every copy, segment by segment. A copy that
            fails is dropped (its files hold a prefix of the others', checkpoints included, so it can be
            resumed on its own); the writer raises only when every copy failed. Per-copy results are in
            ``WriteResult.details["copies"]``. The metadata lists the first copy's segment names.
        direct: write the segments with ``O_DIRECT`` where the file system supports it (default), bypassing
            the page cache (:class:`~forensimg.outputs.OutputSet`); ``False`` for ordinary writes.
        **kwargs: see :class:`~forensimg.writer.ImageWriter` (``hashes`` defaults to ``sha256``).

    Raises:
        UsageError: bad option values.
        WriteError: the output exists (without ``overwrite``) or cannot be written.
    """

    format: ClassVar[str] = "fimg"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compression: str = "zlib",
        compression_level: int | None = None,
        segment_size: int | None = None,
        checkpoint_interval: int | None = None,
        workers: int | None = None,
        custody_event: Mapping[str, Any] | None = None,
        sync: str = "background",
        mirror_paths: Sequence[str | os.PathLike[str]] = (),
        direct: bool = True,
        encoder: str = "auto",
        _resume: _ResumeState | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("hashes", ("sha256",))
        super().__init__(path, **kwargs)
        # fimg is append-only (spec §5): each segment file is exactly the bytes appended to it, so its
        # SHA-256 is computed while writing (``details["segment_sha256"]``) instead of re-reading it
        # O_DIRECT appends (where the file system allows them): 400 MB through the page cache cost this VM
        # 0.7-1.0 CPU-s per acquisition (most of it first-touch of fresh page-cache pages), direct 0.03 s
        self._out = OutputSet(copy_bases(self.path, mirror_paths), segment_name, self._check_target,
                              lambda: self._pos, hash_segments=True, direct=direct)
        check_chunk_size(chunk_size)
        if self.sector_size < 256 or self.sector_size > chunk_size:
            raise UsageError(f"fimg sector size must be 256..chunk size, not {self.sector_size}")
        fixed = HEADER_SIZE + 2 * (RECORD_SIZE + chunk_size) + RECORD_SIZE + 64 + 4096  # + 8 bytes per entry
        if checkpoint_interval is None:
            # the default, unless a segment is too small for a checkpoint of that many entries (spec §5.2)
            checkpoint_interval = max(1, DEFAULT_CHECKPOINT_BYTES // chunk_size)
            if segment_size is not None:
                checkpoint_interval = max(1, min(checkpoint_interval, (segment_size - fixed) // 8))
        if checkpoint_interval < 1:
            raise UsageError("checkpoint interval must be at least 1 chunk")
        self.chunk_size = chunk_size
        self.checkpoint_interval = checkpoint_interval
        self.custody_event = dict(custody_event) if custody_event is not None else None
        self._set_compression(compression, compression_level)
        if segment_size is not None:
            need = fixed + 8 * checkpoint_interval
            if segment_size < need:
                raise UsageError(
                    f"fimg segment size {segment_size} is too small for chunks of {chunk_size} bytes and "
                    f"checkpoints every {checkpoint_interval} chunks (at least {need})"
                )
        self.segment_size = segment_size
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        if encoder not in _ENCODERS:
            raise UsageError(f"fimg encoder must be one of {', '.join(_ENCODERS)}, not {encoder!r}")
        self.encoder = encoder
        # a job encodes 4 MiB of chunks (at most 256 chunks, and no more than the checkpoint interval; a power
        # of two, so that an aligned job is one Merkle node): fewer hand-offs between threads or processes
        # (each costs a wake-up; 4 MiB jobs made a 1 GiB acquisition 7-10 % faster than 1 MiB jobs), while
        # ``_window`` jobs in flight keep every worker busy during a slow write
        jobs = max(1, min(256, (4 << 20) // chunk_size, checkpoint_interval))
        self._batch_chunks = 1 << (jobs.bit_length() - 1)
        self._window = self.workers + 1
        # a run of ``_batch_chunks`` chunks starting at a multiple of it is one node of the Merkle tree at
        # level ``_batch_level``: the pool threads hash those subtrees, so closing needs only the levels
        # above them (None once a run was not aligned, e.g. after a resume: then every leaf is hashed)
        self._batch_level = self._batch_chunks.bit_length() - 1
        self._job_nodes: list[bytes] | None = []
        if sync not in ("background", "strict"):
            raise UsageError(f"sync must be 'background' or 'strict', not {sync!r}")
        self.sync = sync
        self._syncer: ThreadPoolExecutor | None = None
        self._sync_future: Future[list[tuple[int, OSError]]] | None = None
        self._tls = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: deque[Future[EncodedRun] | ProcessJob] = deque()
        self._procs: EncoderProcesses | None = None
        self._procs_error: str | None = None
        # chunks waiting for a job: ranges ``(block, start, stop)`` of immutable source blocks (no copy)
        self._batch: list[tuple[bytes, int, int]] = []
        self._batch_count = 0
        self._buf = bytearray()
        self._iov: list[Any] = []
        self._iov_len = 0
        self._iov_marks: list[tuple[int, int]] = []  # (end of a chunk record within _iov, its media bytes)
        self._paths: list[Path] = []
        self._header_digests: list[bytes] = []
        self._seg_off = 0
        self._seg_records = 0
        self._index: array[int] = array("Q")
        self._digests = bytearray()
        self._next_index = 0
        self._media_done = 0
        self._ckpt_seq = 0
        self._ckpt_prev_loc = 0
        self._ckpt_count = 0
        self._ckpt_media = 0
        self._resumed_at: list[str] = []
        self._initial_meta: dict[str, Any]
        if _resume is None:
            self.uuid = uuidlib.uuid4().bytes
            self._initial_meta = self._metadata(final=False)
            self._start()
        else:
            self._adopt(_resume)

    # -- options ----------------------------------------------------------------------------------

    def _set_compression(self, compression: str, level: int | None) -> None:
        name = compression.strip().lower()
        if name in ("fast", "best", "deflate"):
            name = "zlib"
        if name not in METHODS:
            raise UsageError(f"unknown fimg compression '{compression}' (choose zstd, zlib or none)")
        self.compression = name
        self._method = METHODS[name]
        if self._method == M_ZSTD:
            self.compression_level = _ZSTD_DEFAULT_LEVEL if level is None else level
            if not -7 <= self.compression_level <= 22:
                raise UsageError(f"zstd level must be -7..22, not {self.compression_level}")
        elif self._method == M_ZLIB:
            self.compression_level = _ZLIB_DEFAULT_LEVEL if level is None else level
            top = 3 if ZLIB.__name__.startswith("isal") else 9
            if not 0 <= self.compression_level <= top:
                raise UsageError(f"zlib level must be 0..{top}, not {self.compression_level}")
        else:
            self.compression_level = 0

    # -- files ------------------------------------------------------------------------------------

    def _start(self) -> None:
        self._open_segment(1)
        body = json.dumps(self._initial_meta, sort_keys=True).encode("utf-8")
        self._append(pack_record(T_METADATA, 0, len(body), hashlib.sha256(body).digest()), body)
        self._checkpoint(durable=True)  # checkpoint 1: nothing committed yet, but the image is resumable
        self._out.fsync_dirs()

    def _open_segment(self, number: int) -> None:
        p = segment_name(self.path, number)
        if number == 1:
            self._out.check_new(1)  # refuse before creating any copy
        self._out.open_segment(number)
        self._paths.append(p)
        self._seg_off = 0
        self._seg_records = 0
        head = _build_header(self.uuid, self.chunk_size, self.sector_size, number, self.segment_size or 0)
        self._header_digests.append(head[96:])
        self._append(head, None, is_record=False)

    def _close_segment(self) -> None:
        try:
            self._wait_sync()
        finally:
            self._out.close_segment()

    def _append(self, head: bytes | memoryview, body: Any, *, is_record: bool = True, media: int = 0) -> int:
        """Queue bytes at the end of the current segment; returns their file offset.

        ``media``: media bytes the record carries (a chunk's decoded length), for :attr:`media_stored`.
        """
        off = self._seg_off
        self._iov.append(head)
        n = len(head)
        if body:
            self._iov.append(body)
            n += len(body)
        self._seg_off += n
        self._iov_len += n
        if media:
            self._iov_marks.append((self._iov_len, media))
        if is_record:
            self._seg_records += 1
        if self._iov_len >= _FLUSH_BYTES or len(self._iov) >= _IOV_MAX:
            self._flush()  # one writev (and one segment-hash job) per few MiB
        return off

    def _flush(self) -> None:
        iov, self._iov = self._iov, []
        total, self._iov_len = self._iov_len, 0
        marks, self._iov_marks = self._iov_marks, []
        if not iov:
            return
        # every live copy gets the same bytes; the chunk records that reached a copy whole count for its
        # media_stored (a copy that fails is dropped; WriteError only when none is left)
        self._out.writev(iov, total, marks)

    def _sync(self) -> None:
        self._wait_sync()
        self._flush()
        self._out.fsync(data_only=True)

    # -- checkpoints (spec §5.2) ------------------------------------------------------------------

    def _committed_ranges(self, media: int) -> list[Range]:
        out = []
        for r in merge_ranges(self._unreadable):
            if r.start < media:
                out.append(Range(r.start, min(r.end, media)))
        return out

    def _checkpoint(self, *, durable: bool = False) -> None:
        """Append a checkpoint covering every chunk written so far (spec §5.2).

        With ``sync="strict"`` (or ``durable``) the data is synced before the checkpoint and the checkpoint
        after it, in the calling thread. By default the sync runs in the background while writing goes on
        (at most one sync in flight): after a process crash nothing committed is lost (the page cache
        survives); after a power loss resume falls back to the last checkpoint whose chunks check out.
        """
        strict = durable or self.sync == "strict"
        if strict:
            self._sync()  # the chunks first: a checkpoint never points at data that is not on disk
        count = len(self._index)
        first = self._ckpt_count
        ranges = self._committed_ranges(self._media_done)
        entries = _le(self._index[first:count])
        fixed = CHECKPOINT_FIXED.build({
            "sequence": self._ckpt_seq + 1, "chunk_count": count, "media_size": self._media_done,
            "previous": self._ckpt_prev_loc, "first_entry": first, "entry_count": count - first,
            "range_count": len(ranges),
        })
        body = fixed + entries + b"".join(RANGE_PAIR.build({"start": r.start, "end": r.end}) for r in ranges)
        head = pack_record(T_CHECKPOINT, self._ckpt_seq + 1, len(body), hashlib.sha256(body).digest())
        off = self._append(head, body)
        if strict:
            self._sync()
        else:
            self._flush()
            self._background_sync()
        self._ckpt_seq += 1
        self._ckpt_prev_loc = location(len(self._paths), off)
        self._ckpt_count = count
        self._ckpt_media = self._media_done

    def _background_sync(self) -> None:
        self._wait_sync()
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forensimg-fimg-sync")
        self._sync_future = self._syncer.submit(self._out.sync_job(data_only=True))

    def _wait_sync(self) -> None:
        fut, self._sync_future = self._sync_future, None
        if fut is not None:
            self._out.apply_sync_results(fut.result())

    def _checkpoint_size(self, extra_entries: int) -> int:
        n = len(self._index) + extra_entries - self._ckpt_count
        return RECORD_SIZE + int(CHECKPOINT_FIXED.sizeof()) + 8 * n + 16 * (len(self._unreadable) + 1)

    # -- chunk pipeline (spec §5.1) ---------------------------------------------------------------

    def _compressor(self) -> Any:
        c = getattr(self._tls, "c", None)
        if c is None:
            c = zstandard.ZstdCompressor(level=self.compression_level, write_content_size=True)
            self._tls.c = c
        return c

    def _encode(self, first: int, ranges: list[tuple[bytes, int, int]]) -> EncodedRun:
        """Hash and compress the chunks of ``ranges`` (runs on a pool thread; hashlib, zstandard and ISA-L
        release the GIL). Chunks are memoryviews of the immutable blocks: nothing is copied."""
        records: list[EncodedChunk] = []
        compress = self._compressor().compress if self._method == M_ZSTD else None
        media = 0
        for block, start, stop in ranges:
            media += encode_range(block, start, stop, first + len(records), self.chunk_size, self._method,
                                  self.compression_level, compress, records)
        node = None
        if first % self._batch_chunks == 0 and len(records) <= self._batch_chunks:
            node = level_nodes([r[2] for r in records], self._batch_level)[0]
        return EncodedRun.from_records(records, media, node)

    def _processes(self) -> EncoderProcesses | None:
        """The encoder processes, started once the image is large enough to repay them (or at once with
        ``encoder="processes"``); ``None``: encode with threads."""
        procs = self._procs
        if procs is not None:
            return procs if procs.usable else None
        if self.encoder == "threads" or self._procs_error is not None:
            return None
        if self.encoder == "auto" and self._next_index * self.chunk_size < _PROCESSES_AFTER:
            return None
        try:
            procs = EncoderProcesses(self.workers, self.chunk_size, self._method, self.compression_level,
                                     self._batch_chunks, self._batch_level, self._window + 1)
        except (OSError, AttributeError, TypeError, ValueError) as exc:  # no memfd (not Linux), no interpreter
            self._procs_error = f"encoder processes could not start: {exc}"
            return None
        self._procs = procs
        return procs

    def _submit(self) -> None:
        batch, self._batch = self._batch, []
        count, self._batch_count = self._batch_count, 0
        if not batch:
            return
        first = self._next_index
        procs = self._processes()
        job = None
        if procs is not None:
            job = procs.submit(first, batch, count, first % self._batch_chunks == 0,
                               partial(self._encode, first, batch))
        if job is not None:
            self._inflight.append(job)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="forensimg-fimg")
            self._inflight.append(self._pool.submit(self._encode, first, batch))
        self._next_index += count
        while len(self._inflight) > self._window or (self._inflight and self._inflight[0].done()):
            self._drain_one()

    def _add(self, block: bytes, start: int, stop: int) -> None:
        """Queue the chunks of ``block[start:stop]`` (whole chunks, except a last short one at close)."""
        cs = self.chunk_size
        while start < stop:
            room = (self._batch_chunks - self._batch_count) * cs
            e = min(stop, start + room)
            self._batch.append((block, start, e))
            self._batch_count += -(-(e - start) // cs)
            start = e
            if self._batch_count >= self._batch_chunks:
                self._submit()

    def _drain_one(self) -> None:
        job = self._inflight.popleft().result()
        count = len(job)
        if self._job_nodes is not None:
            if job.node is None:
                self._job_nodes = None
            else:
                self._job_nodes.append(job.node)
        total = job.ends[-1] if count else 0
        if len(self._index) + count - self._ckpt_count < self.checkpoint_interval and (
            self.segment_size is None
            or self._seg_off + total + self._checkpoint_size(count) <= self.segment_size
        ):
            # fast path: the whole run fits before the next checkpoint and in this segment; its record
            # offsets follow from their ends (no per-record calls)
            if len(self._iov) + len(job.iov) > _IOV_MAX:
                self._flush()  # one writev takes at most IOV_MAX buffers
            base = self._seg_off
            seg = len(self._paths) << 48  # a location (spec §4.4)
            self._index.append(seg | base)
            self._index.extend([seg | (base + e) for e in job.ends[:-1]])
            iov_base = self._iov_len
            self._iov_marks.extend([(iov_base + e, n) for e, n in zip(job.ends, job.lengths(), strict=True)])
            self._iov.extend(job.iov)
            self._iov_len += total
            self._seg_off += total
            self._seg_records += count
            self._digests += job.digests
            self._media_done += job.media
            if self._iov_len >= _FLUSH_BYTES or len(self._iov) >= _IOV_MAX:
                self._flush()
            return
        for head, payload, digest, n in job.records():
            size = len(head) + (len(payload) if payload else 0)
            if (
                self.segment_size is not None
                and self._seg_records > 0
                and self._seg_off + size + self._checkpoint_size(1) > self.segment_size
            ):
                self._checkpoint(durable=True)
                self._close_segment()
                self._open_segment(len(self._paths) + 1)
                self._out.fsync_dirs()
            off = self._append(head, payload, media=n)
            self._index.append(location(len(self._paths), off))
            self._digests += digest
            self._media_done += n
            if len(self._index) - self._ckpt_count >= self.checkpoint_interval:
                self._checkpoint()

    def _drain(self) -> None:
        while self._inflight:
            self._drain_one()

    def _write(self, data: bytes) -> None:
        if not self._out.is_open:
            raise ValueError("the fimg writer has no open segment")
        cs = self.chunk_size
        start = 0
        if self._buf:
            take = cs - len(self._buf)
            self._buf += data[:take]
            start = min(take, len(data))
            if len(self._buf) < cs:
                return
            self._add(bytes(self._buf), 0, cs)
            self._buf = bytearray()
        full = start + (len(data) - start) // cs * cs
        if full > start:
            self._add(data, start, full)  # the chunks stay in ``data`` (immutable bytes): no copy
        if full < len(data):
            self._buf += data[full:]

    # -- metadata (spec §5.3) ---------------------------------------------------------------------

    def _metadata(self, *, final: bool, hashes: Mapping[str, str] | None = None,
                  unreadable: tuple[Range, ...] = (), root: bytes | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "format": "fimg",
            "version": f"{VERSION[0]}.{VERSION[1]}",
            "state": "final" if final else "open",
            "uuid": str(uuidlib.UUID(bytes=self.uuid)),
            "chunk_size": self.chunk_size,
            "sector_size": self.sector_size,
            "compression": self.compression,
            "compression_level": self.compression_level,
            "hash_algorithms": list(self.hash_algorithms),
            "checkpoint_interval": self.checkpoint_interval,
            "case": self.case.to_dict(),
            "source": self.source.to_dict() if self.source else None,
            "acquisition": {
                "started": self.acquired_at.astimezone(UTC).isoformat(),
                "finished": datetime.now(UTC).isoformat() if final else None,
                "tool": "forensimg",
                "tool_version": __version__,
                "os": f"{platform.system()} {platform.release()}",
                "resumed_at": list(self._resumed_at),
            },
            "custody_event": self.custody_event,
        }
        if final:
            meta["media"] = {
                "size": self.position,
                "hashes": dict(hashes or {}),
                "unreadable": [r.to_dict(self.sector_size) for r in unreadable],
            }
            meta["chunk_count"] = len(self._index)
            meta["segments"] = [{"number": i + 1, "name": p.name} for i, p in enumerate(self._paths)]
            meta["merkle_root"] = root.hex() if root is not None else None
        return meta

    # -- finishing --------------------------------------------------------------------------------

    def _finalize(self, hashes: Mapping[str, str], unreadable: tuple[Range, ...]) -> WriteResult:
        if self._buf:
            self._add(bytes(self._buf), 0, len(self._buf))
            self._buf = bytearray()
        self._submit()
        self._drain()
        if self._media_done != self.position:  # pragma: no cover - internal invariant
            raise WriteError(f"fimg writer lost data ({self._media_done} of {self.position} bytes)", path=self.path)
        self._unreadable = list(unreadable)
        self._checkpoint(durable=True)
        count = len(self._index)
        lvl = top_level(count)
        if self._job_nodes is not None and len(self._job_nodes) == -(-count // self._batch_chunks) \
                and lvl >= self._batch_level:
            # the pool threads hashed every aligned run's subtree: only the levels above are left
            nodes = level_up(self._job_nodes, lvl - self._batch_level)
        else:
            leaves = [bytes(self._digests[i : i + 32]) for i in range(0, len(self._digests), 32)]
            nodes = level_nodes(leaves, lvl)  # stored after the digest table (spec §5.5a)
        root = root_from_nodes(nodes)
        meta = json.dumps(
            self._metadata(final=True, hashes=hashes, unreadable=unreadable, root=root), sort_keys=True
        ).encode("utf-8")
        seg = len(self._paths)
        meta_digest = hashlib.sha256(meta).digest()
        meta_off = self._append(pack_record(T_METADATA, 1, len(meta), meta_digest), meta)
        idx = _le(self._index)
        idx_digest = hashlib.sha256(idx).digest()
        idx_off = self._append(pack_record(T_INDEX, len(self._index), len(idx), idx_digest), idx)
        dig = bytes(self._digests)
        dig_digest = hashlib.sha256(dig).digest()
        dig_off = self._append(pack_record(T_DIGESTS, len(self._index), len(dig), dig_digest), dig)
        # the nodes of one tree level right after the digest table, so that a range proof needs only the
        # leaves of the blocks it touches (spec §5.5)
        top = b"".join(nodes)
        self._append(pack_record(T_TOP, lvl, len(top), hashlib.sha256(top).digest()), top)
        footer = FOOTER.build({
            "metadata_location": location(seg, meta_off), "index_location": location(seg, idx_off),
            "digests_location": location(seg, dig_off), "chunk_count": len(self._index),
            "media_size": self.position, "segment_count": seg, "reserved": 0, "uuid": self.uuid,
            "merkle_root": root, "seal": bytes(32),
        })
        seal = hashlib.sha256(
            b"".join(self._header_digests) + meta_digest + idx_digest + dig_digest + footer[:104]
        ).digest()
        self._append(footer[:104] + seal, None, is_record=False)
        self._sync()
        self._close_segment()
        self._out.fsync_dirs()
        used_procs = self._procs is not None
        self._shutdown_pool()
        encoder = "processes" if used_procs and self._procs_error is None else "threads"
        if self._procs_error is not None:
            encoder += f" ({self._procs_error}; its jobs were encoded again by threads)" if used_procs else \
                f" ({self._procs_error})"
        return WriteResult(
            format="fimg",
            paths=tuple(self._out.primary.paths),
            size=self.position,
            hashes=dict(hashes),
            unreadable=unreadable,
            details={
                "merkle_root": root.hex(), "chunk_size": self.chunk_size, "chunk_count": len(self._index),
                "uuid": str(uuidlib.UUID(bytes=self.uuid)), "compression": self.compression,
                "copies": self._out.details(),
                # SHA-256 of each segment file of every copy, computed from the bytes appended to it;
                # a segment this writer did not write whole (reopened by resume) is absent
                "segment_sha256": {str(p): h for p, h in self._out.segment_sha256.items()},
                "encoder": encoder,
            },
        )

    def _shutdown_pool(self) -> None:
        procs, self._procs = self._procs, None
        if procs is not None:
            if procs.error is not None and self._procs_error is None:
                self._procs_error = procs.error
            procs.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.shutdown(wait=True)

    def _abort(self) -> None:
        """Write what is done, checkpoint it and stop: the image stays incomplete and resumable."""
        try:
            if self._out.is_open:
                self._submit()  # whole chunks still waiting in the batch; a partial chunk is dropped
                self._drain()
                self._checkpoint()
        except (WriteError, OSError, ValueError):
            pass
        finally:
            self._inflight.clear()
            self._shutdown_pool()
            self._close_segment()

    @property
    def media_stored(self) -> int:
        """Media bytes of the chunk records the OS accepted: after a write error, the target holds the
        chunks of ``[0, media_stored)`` (whole chunks; a checkpoint makes them resumable, see
        :attr:`committed`)."""
        return self._out.copies[0].media

    @property
    def copies(self) -> list[dict[str, Any]]:
        """Every copy (the first is ``path``): paths, whether it is still complete, failure offset and error."""
        return self._out.details()

    @property
    def committed(self) -> int:
        """Media bytes covered by the last checkpoint: what survives if the process dies now."""
        return self._ckpt_media

    # -- resume (spec §7.2) -----------------------------------------------------------------------

    @classmethod
    def resume(cls, path: str | os.PathLike[str], **options: Any) -> FimgWriter:
        """Reopen an unfinished fimg image and continue it. See :func:`resume_writer`."""
        return resume_writer(path, **options)

    def _adopt(self, st: _ResumeState) -> None:
        self.uuid = st.uuid
        self._initial_meta = st.meta
        self._paths = list(st.paths)
        self._header_digests = list(st.header_digests)
        self._index = st.index
        self._digests = st.digests
        self._next_index = len(st.index)
        self._media_done = st.media
        self._out.copies[0].media = st.media
        self._pos = st.media
        self._unreadable = list(st.unreadable)
        self._ckpt_seq = st.ckpt_seq
        self._ckpt_prev_loc = st.ckpt_loc
        self._ckpt_count = st.ckpt_count
        self._ckpt_media = st.media if not st.needs_checkpoint else st.ckpt_count * self.chunk_size
        self._resumed_at = [*st.meta.get("acquisition", {}).get("resumed_at", []), datetime.now(UTC).isoformat()]
        p = self._paths[-1]
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise WriteError(f"cannot reopen '{p}': {exc.strerror}", path=p, errno_=exc.errno) from None
        try:
            os.lseek(fd, st.end, os.SEEK_SET)
        except OSError as exc:
            os.close(fd)
            raise WriteError(f"cannot reopen '{p}': {exc.strerror}", path=p, errno_=exc.errno) from None
        self._out.adopt(fd, self._paths, st.end)
        self._seg_off = st.end
        self._seg_records = 1
        if self._hasher is not None:
            if st.hasher is not None and st.hashed_chunks == len(st.index):
                self._hasher.close()
                self._hasher = st.hasher  # fed while the committed chunks were checked
                st.hasher = None
            else:  # the committed state moved back (a bad chunk): hash the kept chunks again
                for block in st.media_blocks():
                    self._hasher.update(block)
        if st.hasher is not None:
            st.hasher.close()
        if st.needs_checkpoint:
            self._checkpoint()


class _ResumeState:
    """What :func:`resume_writer` found: the committed prefix, checked."""

    def __init__(self) -> None:
        self.uuid = b""
        self.meta: dict[str, Any] = {}
        self.paths: list[Path] = []
        self.header_digests: list[bytes] = []
        self.index: array[int] = array("Q")
        self.digests = bytearray()
        self.media = 0
        self.unreadable: tuple[Range, ...] = ()
        self.ckpt_seq = 0
        self.ckpt_loc = 0
        self.ckpt_count = 0
        self.end = 0
        self.needs_checkpoint = False
        self.segs: SegmentSet | None = None
        self.chunk_size = 0
        self.hasher: MultiHasher | None = None
        self.hashed_chunks = 0

    def media_blocks(self) -> Any:
        """Decoded committed media, chunk by chunk (re-read and checked again), for the whole-media hashes."""
        from forensimg.formats.fimg.reader import read_chunk_at

        assert self.segs is not None
        n = len(self.index)
        for i in range(n):
            length = min(self.chunk_size, self.media - i * self.chunk_size)
            data, _ = read_chunk_at(self.segs, self.index[i], i, length, self.chunk_size)
            yield data


def resume_writer(path: str | os.PathLike[str], **options: Any) -> FimgWriter:
    """Reopen an unfinished fimg image (crash, SIGKILL, abort) and return a writer that continues it.

    The committed chunks (up to the last valid checkpoint) are re-read and checked (SHA-256 per chunk);
    anything after the last good checkpoint is cut off (later segment files are removed); the whole-media
    hash state is rebuilt by re-hashing the committed media. Continue feeding the source from
    ``writer.position``. The finished image has the same media, root and hashes as an uninterrupted run.

    Args:
        path: any segment of the image.
        **options: ``workers``, ``checkpoint_interval``, ``compression``, ``compression_level``,
            ``custody_event``, ``compute_hashes``. Geometry options (``chunk_size``, ``sector_size``,
            ``hashes``, ``segment_size``), if given, must equal the image's.

    Raises:
        UsageError: the image is finished, or an option contradicts it.
        FormatError: the file is not a resumable fimg image (no header or initial metadata).
        WriteError: the files cannot be reopened.
    """
    from forensimg.formats.fimg.reader import parse_headers, read_chunk_at, read_footer
    from forensimg.formats.fimg.recover import walk_records

    options = {k: v for k, v in options.items() if v is not None}  # "not given"
    unknown = set(options) - _RESUME_OPTIONS
    if unknown:
        raise UsageError(f"unknown option(s) for resuming a fimg image: {', '.join(sorted(unknown))}")
    paths, torn = drop_torn(find_segments(Path(path)))
    segs = SegmentSet(paths)
    try:
        headers = parse_headers(segs)
        h0 = headers[0]
        cs = h0.chunk_size
        if read_footer(segs, h0) is not None:
            raise UsageError(f"fimg image '{paths[0]}' is finished: there is nothing to resume", path=paths[0])
        walk = walk_records(segs, cs)
        meta = walk.initial_metadata
        if meta is None or walk.initial_metadata_error or not walk.checkpoints:
            raise FormatError(
                f"'{paths[0]}' has no intact initial metadata and checkpoint: it cannot be resumed", path=paths[0]
            )
        algs = tuple(meta.get("hash_algorithms") or ("sha256",))
        geometry = (("chunk_size", cs), ("sector_size", h0.sector_size), ("segment_size", h0.max_segment_size or None))
        for key, have in geometry:
            if key in options and options[key] != have:
                raise UsageError(f"{key} {options[key]} differs from the image's ({have})")
        if "hashes" in options:
            from forensimg.hashing import normalize_algorithms

            if normalize_algorithms(options["hashes"]) != algs:
                raise UsageError(f"hashes {options['hashes']} differ from the image's ({', '.join(algs)})")

        # check every committed chunk; a bad one moves the committed state back to an earlier checkpoint
        last = walk.checkpoints[-1]
        # (the whole-media hashes are fed in the same pass, except for a short last chunk, which is dropped)
        hasher = MultiHasher(algs) if options.get("compute_hashes", True) else None
        bad = last.chunk_count
        try:
            for i in range(last.chunk_count):
                length = min(cs, last.media_size - i * cs)
                try:
                    data, _ = read_chunk_at(segs, walk.locations[i], i, length, cs)
                except ChecksumError:
                    bad = i
                    break
                if hasher is not None and length == cs:
                    hasher.update(data)
        except BaseException:
            if hasher is not None:
                hasher.close()
            raise
        usable = [c for c in walk.checkpoints if c.chunk_count <= bad]
        ck = usable[-1]
        st = _ResumeState()
        st.hasher = hasher
        st.hashed_chunks = bad if last.media_size % cs == 0 or bad < last.chunk_count else bad - 1
        st.segs = segs
        st.chunk_size = cs
        st.uuid = h0.uuid
        st.meta = meta
        count, media = ck.chunk_count, ck.media_size
        prev = ck
        if media % cs:
            # the last chunk is short (a crash during close): drop it and the checkpoint after it, so that
            # writing can go on; the caller re-reads that chunk's media from writer.position.
            count -= 1
            media = count * cs
            earlier = [c for c in walk.checkpoints if c.chunk_count <= count]
            prev = earlier[-1]
            seg_no, cut = split_location(walk.locations[count])
            st.needs_checkpoint = True
        else:
            seg_no, cut = ck.segment + 1, ck.end
        st.index = walk.locations[:count]
        st.digests = walk.digests[: 32 * count]
        st.media = media
        st.unreadable = tuple(Range(r.start, min(r.end, media)) for r in ck.unreadable if r.start < media)
        st.ckpt_seq, st.ckpt_loc, st.ckpt_count = prev.sequence, prev.location, prev.chunk_count
        st.paths = paths[:seg_no]
        st.header_digests = [h.digest for h in headers[:seg_no]]
        st.end = cut
        opts = {k: v for k, v in options.items() if k not in ("chunk_size", "sector_size", "hashes", "segment_size",
                                                                "overwrite", "case", "source", "acquired_at")}
        opts.setdefault("compression", meta.get("compression", "zlib"))
        if isinstance(meta.get("checkpoint_interval"), int) and meta["checkpoint_interval"] > 0:
            opts.setdefault("checkpoint_interval", meta["checkpoint_interval"])
        if "compression_level" not in opts and opts["compression"] == meta.get("compression"):
            opts["compression_level"] = meta.get("compression_level")
        started = meta.get("acquisition", {}).get("started")
        acquired = datetime.fromisoformat(started) if isinstance(started, str) else None
        if acquired is not None and acquired.tzinfo is None:
            acquired = acquired.replace(tzinfo=UTC)
        # cut off everything after the committed state: it was never checkpointed
        for p in [*paths[seg_no:], *torn]:
            os.unlink(p)
        with open(paths[seg_no - 1], "r+b") as f:
            f.truncate(cut)
            os.fsync(f.fileno())
        fsync_dir(paths[0].parent)
        w = FimgWriter(
            paths[0],
            chunk_size=cs,
            sector_size=h0.sector_size,
            hashes=algs,
            case=CaseInfo.from_dict(meta.get("case") or {}),
            source=SourceInfo.from_dict(meta["source"]) if isinstance(meta.get("source"), dict) else None,
            acquired_at=acquired,
            segment_size=h0.max_segment_size or None,
            _resume=st,
            **opts,
        )
        return w
    except OSError as exc:
        if isinstance(exc, WriteError):
            raise
        raise WriteError(f"cannot resume '{paths[0]}': {exc.strerror}", path=paths[0], errno_=exc.errno) from None
    finally:
        segs.close()
