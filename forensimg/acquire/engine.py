"""The acquisition engine: read the source once, hash it once, feed every block to every writer.

Pipeline (issue 5, point 15)::

    reader thread ── 4 MiB blocks ──► main thread ──► MultiHasher (one thread per algorithm)
    (pread into buffers,                           └─► writer 1, writer 2, ... (compression in
     retries, bisection)                                 each writer's own pool)

Read errors: a failed block read is retried ``retries`` times, then split in halves down to single
sectors, read with ``O_DIRECT`` into aligned buffers, so that only the truly unreadable sectors are lost.
Those are zero-filled, given to every writer with :meth:`~forensimg.writer.ImageWriter.mark_unreadable`
and returned with their errno. The whole-media hashes cover the data *as stored*: zero-filled sectors
included (as EnCase and ewfacquire do). A source that ends inside a sector is hashed exactly; only a
writer whose format stores whole sectors (E01) pads it, and that copy alone gets the hashes of its
padded media (computed from the same one read).

Several writers (mirroring): one writer that raises :class:`~forensimg.errors.WriteError` is aborted
(a fimg target stays resumable), its failure is recorded with the media offset, and the others go on.

Interruption (``KeyboardInterrupt``, or the ``stop`` event set by a signal handler): the reader
stops, every writer is aborted (fimg stays resumable), and the result is returned with
``interrupted=True``; nothing is finalised.

The library never prints: progress goes to the ``on_progress`` callback.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensimg.acquire.source import Source
from forensimg.errors import SourceReadError, UsageError, WriteError
from forensimg.hashing import MultiHasher, normalize_algorithms
from forensimg.image import Range
from forensimg.writer import ImageWriter, WriteResult

__all__ = [
    "AcquisitionResult",
    "Progress",
    "TargetOutcome",
    "UnreadableRange",
    "VerifyOutcome",
    "acquire",
    "verify_targets",
]

log = logging.getLogger(__name__)

DEFAULT_BLOCK = 4 << 20

_GONE = frozenset({errno.ENODEV, errno.ENXIO, errno.ENOMEDIUM})
"""Errors that mean the device is gone (unplugged, no medium): stop instead of bisecting."""


@dataclass(frozen=True, slots=True)
class UnreadableRange:
    """Media bytes ``[start, end)`` that could not be read, with the errno of the last attempt."""

    start: int
    end: int
    errno: int | None

    @property
    def length(self) -> int:
        """Bytes in the range."""
        return self.end - self.start

    def to_dict(self, sector_size: int) -> dict[str, Any]:
        """JSON form with LBAs (inclusive)."""
        return {
            "start": self.start,
            "end": self.end,
            "length": self.length,
            "first_lba": self.start // sector_size,
            "last_lba": (self.end - 1) // sector_size,
            "sectors": -(-self.length // sector_size),
            "errno": self.errno,
        }


@dataclass(frozen=True, slots=True)
class Progress:
    """Progress of an acquisition, given to ``on_progress`` after each block.

    Attributes:
        done: media bytes read so far (including a resumed prefix).
        total: media size, ``None`` for a stream.
        unreadable_bytes: bytes zero-filled so far.
        unreadable_sectors: sectors zero-filled so far.
        elapsed: seconds since the start.
        rate: bytes per second read in this run.
        phase: ``rehash`` (re-reading an already written prefix on resume), ``acquire`` or ``verify``.
    """

    done: int
    total: int | None
    unreadable_bytes: int
    unreadable_sectors: int
    elapsed: float
    rate: float
    phase: str = "acquire"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "done": self.done,
            "total": self.total,
            "unreadable_bytes": self.unreadable_bytes,
            "unreadable_sectors": self.unreadable_sectors,
            "elapsed": round(self.elapsed, 3),
            "rate": round(self.rate),
            "phase": self.phase,
        }


@dataclass
class TargetOutcome:
    """What happened to one writer.

    Attributes:
        writer: the writer.
        path: its output path.
        result: the finished image (``None`` unless it was closed).
        error: why it failed (``None`` if it did not).
        failed_at: exact media offset where it stopped (the target holds ``[0, failed_at)``).
        block_at: media offset of the read block whose write failed (``failed_at`` lies inside it).
        written: media bytes this target holds when that differs from its writer's position: a failed
            target's ``failed_at``, also for one copy of a mirroring writer that went on without it.
        state: ``finished``, ``failed``, ``aborted`` (interrupted) or ``open``.
        stored_hashes: the whole-media hashes given to this writer: those of the media as it stores
            it (the exact media, or the media zero-padded to a whole sector for E01).
    """

    writer: ImageWriter
    path: Path
    result: WriteResult | None = None
    error: str | None = None
    failed_at: int | None = None
    state: str = "open"
    errno: int | None = None
    stored_hashes: dict[str, str] | None = None
    block_at: int | None = None
    written: int | None = None

    @property
    def padded_bytes(self) -> int:
        """Zero bytes this copy appended to store whole sectors (0 when it holds the exact media)."""
        return self.result.padded_bytes if self.result is not None else 0

    def to_dict(self, sector_size: int = 512) -> dict[str, Any]:
        """JSON form: ``padded_bytes``, ``stored_size`` and ``hashes`` describe the media as this copy stores it."""
        r = self.result
        return {
            "path": str(self.path),
            "format": self.writer.format,
            "state": self.state,
            "error": self.error,
            "failed_at": self.failed_at,
            "failed_block_at": self.block_at,
            "written": self.writer.position if self.written is None else self.written,
            "padded": bool(r and r.padded_bytes),
            "padded_bytes": r.padded_bytes if r else 0,
            "stored_size": r.size if r else None,
            "hashes": dict(r.hashes) if r else None,
            "hashes_cover": None if r is None else (
                f"the media zero-padded with {r.padded_bytes} bytes to a whole {self.writer.sector_size}-byte "
                "sector, as this format stores it" if r.padded_bytes else "the exact media"),
            "result": r.to_dict(sector_size) if r else None,
        }


@dataclass
class VerifyOutcome:
    """Re-read of a finished target compared with the acquisition hashes."""

    path: str
    ok: bool
    hashes: dict[str, str]
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "ok": self.ok, "hashes": self.hashes, "detail": self.detail}


@dataclass
class AcquisitionResult:
    """The outcome of :func:`acquire`.

    Attributes:
        source: the source path.
        offset: first source byte acquired.
        size: media bytes acquired (read or zero-filled).
        sector_size: the sector size used for LBAs.
        hashes: whole-media hashes of the exact media acquired, ``size`` bytes, unreadable sectors
            zero-filled (``{}`` if interrupted). A copy in a format that stores whole sectors only (E01)
            is zero-padded to the next sector and stores the hashes of its padded media: see each
            target's ``padded_bytes`` and ``stored_hashes``.
        unreadable: unreadable ranges, media offsets, with errno.
        targets: one outcome per writer, in order.
        started_at, finished_at: UTC times.
        interrupted: stopped by ``KeyboardInterrupt``.
        resumed_from: media offset a resumed run continued from (0 for a fresh run).
        read_retries: failed block reads that were retried.
    """

    source: str
    offset: int
    size: int
    sector_size: int
    hashes: dict[str, str] = field(default_factory=dict)
    unreadable: list[UnreadableRange] = field(default_factory=list)
    targets: list[TargetOutcome] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    interrupted: bool = False
    resumed_from: int = 0
    read_retries: int = 0
    expected_size: int | None = None
    verification: list[VerifyOutcome] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every byte was acquired and every target finished."""
        return (
            not self.interrupted
            and bool(self.targets)
            and all(t.state == "finished" for t in self.targets)
            and (self.expected_size is None or self.size == self.expected_size)
        )

    @property
    def failed_targets(self) -> list[TargetOutcome]:
        """Targets that failed mid-way."""
        return [t for t in self.targets if t.state == "failed"]

    @property
    def unreadable_bytes(self) -> int:
        """Total zero-filled bytes."""
        return sum(r.length for r in self.unreadable)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        ss = self.sector_size
        return {
            "source": self.source,
            "offset": self.offset,
            "size": self.size,
            "expected_size": self.expected_size,
            "sector_size": ss,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "resumed_from": self.resumed_from,
            "hashes": dict(self.hashes),
            "hashes_cover": "the exact media acquired (size bytes); unreadable sectors zero-filled; a target padded"
                            " to a whole sector stores its own hashes (see targets[].hashes)",
            "unreadable": [r.to_dict(ss) for r in self.unreadable],
            "unreadable_sectors": sum(-(-r.length // ss) for r in self.unreadable),
            "read_retries": self.read_retries,
            "targets": [t.to_dict(ss) for t in self.targets],
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "verification": [v.to_dict() for v in self.verification],
        }


class _Stop(Exception):
    pass


class _Reader(threading.Thread):
    """Reads the media front to back into a bounded queue; bisects failed reads down to sectors."""

    def __init__(
        self,
        source: Source,
        base: int,
        start: int,
        end: int | None,
        block: int,
        sector: int,
        retries: int,
        depth: int = 4,
    ) -> None:
        super().__init__(name="forensimg-reader", daemon=True)
        self.source = source
        self.base = base
        self.pos = start
        self.end = end
        self.block = block
        self.sector = sector
        self.retries = retries
        self.q: queue.Queue[tuple[int, bytes, list[UnreadableRange]] | BaseException | None] = queue.Queue(depth)
        self.stop = threading.Event()
        self.retried = 0
        self.rescuing = False  # True while a failed block is being split into sectors

    def _put(self, item: tuple[int, bytes, list[UnreadableRange]] | BaseException | None) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.end is not None:
                    n = min(self.block, self.end - self.pos)
                    if n <= 0:
                        break
                else:
                    n = self.block
                if self.source.is_stream:
                    data = self.source.read_stream(n)
                    bad: list[UnreadableRange] = []
                else:
                    data, bad = self._read_block(self.pos, n)
                if not data:
                    break
                self._put((self.pos, data, bad))
                self.pos += len(data)
                if len(data) < n:
                    break  # end of the source
            self._put(None)
        except _Stop:
            return
        except BaseException as exc:
            try:
                self._put(exc)
            except _Stop:
                return

    def _read_block(self, pos: int, n: int) -> tuple[bytes, list[UnreadableRange]]:
        last: SourceReadError | None = None
        for _ in range(self.retries + 1):
            try:
                return self.source.read_at(self.base + pos, n), []
            except SourceReadError as exc:
                last = exc
                self.retried += 1
        assert last is not None
        if last.errno in _GONE:
            raise last  # the device went away: splitting would only fail sector by sector
        log.info("read of %d bytes at media offset %d failed (%s); splitting", n, pos, last)
        size = self.source.size
        if size is not None:
            n = min(n, size - self.base - pos)
        bad: list[UnreadableRange] = []
        self.rescuing = True
        try:
            data = self._bisect(pos, n, bad, last.errno)
        finally:
            self.rescuing = False
        return data, _merge_unreadable(bad)

    def _bisect(self, pos: int, n: int, bad: list[UnreadableRange], errno_: int | None) -> bytes:
        if self.stop.is_set():
            raise _Stop
        attempts = self.retries + 1 if n <= self.sector else 1
        for _ in range(attempts):
            try:
                data = self.source.read_direct(self.base + pos, n)
                if len(data) == n:
                    return data
                if len(data) < n:  # end of the device inside the range
                    return data
            except SourceReadError as exc:
                if exc.errno in _GONE:
                    raise
                errno_ = exc.errno
        if n <= self.sector:
            bad.append(UnreadableRange(pos, pos + n, errno_))
            return bytes(n)
        # Split on a sector boundary: the half sizes are whole sectors (but the last piece).
        sectors = -(-n // self.sector)
        half = (sectors // 2) * self.sector
        return self._bisect(pos, half, bad, errno_) + self._bisect(pos + half, n - half, bad, errno_)


def _merge_unreadable(rs: list[UnreadableRange]) -> list[UnreadableRange]:
    out: list[UnreadableRange] = []
    for r in sorted(rs, key=lambda x: x.start):
        if out and r.start <= out[-1].end and r.errno == out[-1].errno:
            out[-1] = UnreadableRange(out[-1].start, max(out[-1].end, r.end), r.errno)
        else:
            out.append(r)
    return out


def _check_args(
    source: Source,
    sector_size: int | None,
    block_size: int,
    offset: int,
    length: int | None,
    start: int,
    hashes: Sequence[str] | str,
) -> tuple[int, tuple[str, ...], int | None]:
    ss = sector_size or source.sector_size
    if block_size <= 0 or block_size % ss:
        raise UsageError(f"block size {block_size} is not a multiple of the sector size {ss}")
    if offset < 0 or (length is not None and length < 0):
        raise UsageError("negative offset or length")
    if source.is_stream and (start or offset):
        raise UsageError("a stream (standard input) cannot be resumed or offset")
    algs = normalize_algorithms(hashes)
    end: int | None = None
    if source.size is not None:
        if offset > source.size:
            raise UsageError(f"offset {offset} is past the end of the source ({source.size} bytes)")
        end = source.size - offset if length is None else min(length, source.size - offset)
    elif length is not None:
        end = length
    if end is not None and start > end:
        raise UsageError(f"resume position {start} is past the media end {end}")
    return ss, algs, end


def acquire(
    source: Source,
    writers: Sequence[ImageWriter],
    *,
    offset: int = 0,
    length: int | None = None,
    sector_size: int | None = None,
    block_size: int = DEFAULT_BLOCK,
    hashes: Sequence[str] | str = ("md5", "sha1"),
    retries: int = 2,
    start: int = 0,
    on_progress: Callable[[Progress], None] | None = None,
    on_target_failed: Callable[[TargetOutcome], None] | None = None,
    finalize: bool = True,
    stop: threading.Event | None = None,
) -> AcquisitionResult:
    """Acquire ``source`` into every writer in one pass.

    Writers must be created with ``compute_hashes=False``: the media is hashed once here and the
    hashes are given to each writer with :meth:`~forensimg.writer.ImageWriter.set_hashes`.

    Args:
        source: an open :class:`~forensimg.acquire.source.Source`.
        writers: one or more image writers (mirroring when several).
        offset: first source byte to acquire.
        length: bytes to acquire (default: to the end of the source).
        sector_size: sector size for bisection and LBAs (default: the source's).
        block_size: bytes per read (a multiple of the sector size).
        hashes: whole-media hashes to compute.
        retries: extra attempts for a failed read before splitting it.
        start: media offset to continue from (resume: the writers already hold ``[0, start)``; that
            prefix is re-read from the source to compute the whole-media hashes, not written again).
        on_progress: called with a :class:`Progress` after each block.
        on_target_failed: called when a writer fails mid-way.
        finalize: close the writers at the end (else the caller closes them, after giving each one
            its ``TargetOutcome.stored_hashes`` with ``set_hashes``).
        stop: when set (e.g. by a SIGINT handler), the acquisition stops between two blocks exactly as
            on ``KeyboardInterrupt`` — the safe way to interrupt: no exception lands inside a writer.

    Returns:
        An :class:`AcquisitionResult`.

    Raises:
        UsageError: bad arguments (no writers, unaligned block size, resume of a stream).
        SourceReadError: a stream (stdin) failed to read.
        WriteError: every writer failed (the first failure is raised after all were aborted).
    """
    if not writers:
        raise UsageError("acquire needs at least one writer")
    try:
        ss, algs, end = _check_args(source, sector_size, block_size, offset, length, start, hashes)
    except UsageError:
        for w in writers:
            w.abort()  # nothing was written: leave no writer open
        raise
    res = AcquisitionResult(source=source.path, offset=offset, size=0, sector_size=ss, expected_size=end,
                            resumed_from=start)
    res.targets = [TargetOutcome(w, w.path) for w in writers]
    hasher = MultiHasher(algs)
    t0 = time.monotonic()
    unreadable_bytes = 0
    unreadable_sectors = 0
    live = list(res.targets)
    first_error: WriteError | None = None

    def report(done: int, phase: str, base: int) -> None:
        if on_progress is not None:
            el = time.monotonic() - t0
            on_progress(Progress(done, end, unreadable_bytes, unreadable_sectors, el,
                                 (done - base) / el if el > 0 else 0.0, phase))

    readers: list[_Reader] = []
    try:
        # Resume: hash the prefix the writers already hold (re-read from the source, not written).
        if start:
            pre = _Reader(source, offset, 0, start, block_size, ss, retries)
            readers.append(pre)
            pre.start()
            for pos, data, bad in _blocks(pre, stop):
                hasher.update(data)
                for r in bad:
                    res.unreadable.append(r)
                    unreadable_bytes += r.length
                    unreadable_sectors += -(-r.length // ss)
                report(pos + len(data), "rehash", 0)
            res.read_retries += pre.retried
        rd = _Reader(source, offset, start, end, block_size, ss, retries)
        readers.append(rd)
        rd.start()
        done = start

        def idle() -> None:  # a slow read or a block being split into sectors: keep the progress alive
            report(done, "rescue" if rd.rescuing else "acquire", start)

        for pos, data, bad in _blocks(rd, stop, idle):
            hasher.update(data)
            for t in list(live):
                try:
                    t.writer.write(data)
                    for r in bad:
                        t.writer.mark_unreadable(r.start, r.length)
                except (WriteError, OSError) as exc:
                    _fail(t, exc, pos)
                    live.remove(t)
                    if first_error is None:
                        first_error = exc if isinstance(exc, WriteError) else WriteError(
                            str(exc), path=t.path, offset=pos, errno_=exc.errno)
                    if on_target_failed is not None:
                        on_target_failed(t)
            for r in bad:
                res.unreadable.append(r)
                unreadable_bytes += r.length
                unreadable_sectors += -(-r.length // ss)
            done = pos + len(data)
            res.size = done
            report(done, "acquire", start)
            if not live:
                break
        res.read_retries += rd.retried
        res.size = done
        res.unreadable = _merge_unreadable(res.unreadable)
        if not live:
            rd.stop.set()
            hasher.close()
            res.finished_at = datetime.now(UTC)
            assert first_error is not None
            raise first_error
        # The acquisition's media hashes cover the exact media. A format that stores whole sectors only
        # (E01) pads the last partial sector with zeros at close: that copy gets the hashes of the media
        # as it stores it (from the same one read, see MultiHasher.digests_with_suffix); the others hold
        # the exact bytes and get the exact hashes.
        res.hashes = hasher.hexdigests()
        stored_hashes: dict[int, dict[str, str]] = {}
        for t in live:
            pad = _padding(t.writer, done)
            if pad:
                if pad not in stored_hashes:
                    stored_hashes[pad] = hasher.hexdigests_with_suffix(bytes(pad))
                t.stored_hashes = stored_hashes[pad]
            else:
                t.stored_hashes = res.hashes
        if finalize:
            for t in live:
                try:
                    t.writer.set_hashes(t.stored_hashes or res.hashes)
                    t.result = t.writer.close()
                    t.state = "finished"
                except (WriteError, OSError) as exc:
                    _fail(t, exc, done)
                    if on_target_failed is not None:
                        on_target_failed(t)
            if all(t.state == "failed" for t in res.targets):
                res.finished_at = datetime.now(UTC)
                assert res.targets[0].error is not None
                raise WriteError(res.targets[0].error, path=res.targets[0].path, errno_=res.targets[0].errno)
    except KeyboardInterrupt:
        res.interrupted = True
        for t in live:
            if t.state == "open":
                t.writer.abort()
                t.state = "aborted"
        hasher.close()
    except BaseException:
        for t in live:
            if t.state == "open":
                t.writer.abort()
                t.state = "aborted"
        hasher.close()
        raise
    finally:
        for r_ in readers:
            r_.stop.set()
        for r_ in readers:
            r_.join(timeout=5)
        res.finished_at = res.finished_at or datetime.now(UTC)
    return res


def _padding(writer: ImageWriter, size: int) -> int:
    """Zero bytes ``writer`` will append at close to store ``size`` media bytes as whole sectors."""
    if not writer.requires_whole_sectors or size % writer.sector_size == 0:
        return 0
    return writer.sector_size - size % writer.sector_size


def _blocks(
    reader: _Reader, stop: threading.Event | None, on_idle: Callable[[], None] | None = None
) -> Iterator[tuple[int, bytes, list[UnreadableRange]]]:
    """The blocks a reader thread hands over, in order: ``(offset, data, unreadable ranges)``.

    Raises KeyboardInterrupt when ``stop`` is set, and the reader's own error when it failed.
    """
    while True:
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        try:
            item = reader.q.get(timeout=0.5)
        except queue.Empty:
            if on_idle is not None:
                on_idle()
            continue
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _fail(t: TargetOutcome, exc: BaseException, pos: int) -> None:
    """Record a failed target and abort it.

    ``failed_at`` is the exact media offset where the target stopped: the writer's
    :attr:`~forensimg.writer.ImageWriter.media_stored` once aborted (the target holds ``[0, failed_at)``;
    inside the block that failed, to the byte for raw, to the chunk for fimg), else ``pos``, the start
    of the block whose write failed.
    """
    t.state = "failed"
    t.error = str(exc)
    t.errno = getattr(exc, "errno", None)
    try:
        t.writer.abort()
    except Exception as abort_exc:  # the writer is already broken; keep the first error
        log.warning("abort of %s failed: %s", t.path, abort_exc)
    try:
        stored = int(t.writer.media_stored)
    except Exception:  # a writer broken beyond telling
        stored = pos
    t.failed_at = stored
    t.written = stored
    t.block_at = pos
    # a writer that writes in the background (direct mode) notices a failed write a call later: its
    # first copy records the block whose bytes failed
    copies = getattr(t.writer, "copies", None)
    if copies:
        at = copies[0].get("position_at_failure")
        if isinstance(at, int) and at <= pos:
            t.block_at = at
    log.warning("target %s failed at media offset %d (block at %d): %s", t.path, stored, pos, exc)


def verify_targets(
    result: AcquisitionResult,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    block_size: int = DEFAULT_BLOCK,
) -> list[VerifyOutcome]:
    """Re-read every finished target and compare its media hashes with the acquisition hashes.

    The outcomes are also stored in ``result.verification``.
    """
    from forensimg.registry import open as open_image

    out: list[VerifyOutcome] = []
    algs = list(result.hashes)
    for t in result.targets:
        if t.result is None:
            continue
        t0 = time.monotonic()
        try:
            with open_image(list(t.result.paths) if t.result.format == "split" else t.result.paths[0]) as img:
                hasher = MultiHasher(algs)
                pos = 0
                while pos < img.size:
                    data = img.read_at(pos, block_size)
                    if not data:
                        break
                    hasher.update(data)
                    pos += len(data)
                    if on_progress is not None:
                        el = time.monotonic() - t0
                        on_progress(Progress(pos, img.size, 0, 0, el, pos / el if el else 0.0, "verify"))
                got = hasher.hexdigests()
        except Exception as exc:
            out.append(VerifyOutcome(str(t.path), False, {}, f"cannot re-read: {exc}"))
            continue
        expected: Mapping[str, str] = t.result.hashes or result.hashes
        bad = [a for a in algs if got.get(a) != expected.get(a)]
        detail = "media hashes match" if not bad else f"mismatch in {', '.join(bad)}"
        out.append(VerifyOutcome(str(t.path), not bad, got, detail))
    result.verification = out
    return out


def unreadable_as_ranges(result: AcquisitionResult) -> tuple[Range, ...]:
    """The unreadable ranges as plain :class:`~forensimg.image.Range` values."""
    return tuple(Range(r.start, r.end) for r in result.unreadable)
