"""Mirrored output files: one encoded byte stream written to several copies of an image.

A writer that mirrors (``mirror_paths=[...]`` on the E01, fimg and raw writers) encodes each chunk once and
hands the bytes to an :class:`OutputSet`, which applies every file operation (create a segment, write,
patch in place, sync, close) to every copy that is still alive. A copy whose operation fails (a disk
filling up, an I/O error, a removed disk) is dropped: the exact segment file, file offset and error are
recorded in its :class:`Copy` and the other copies go on. Only when every copy has failed does the
operation raise :class:`~forensimg.errors.WriteError` (the last failure), so that a writer with a single
copy behaves exactly as one writing its own file.

Every copy has the same segment structure; its names derive from its own base path (folder and name may
differ between copies), through the format's segment namer. A copy that failed part-way holds a prefix
of the bytes of the good copies, file by file.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import mmap
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensimg.errors import UsageError, WriteError
from forensimg.hashing import update_all
from forensimg.records import fsync_dir

__all__ = ["Copy", "OutputSet", "copy_bases"]

log = logging.getLogger(__name__)

Namer = Callable[[Path, int], Path]
"""Segment path of a copy: ``(base path, segment number from 1) -> path``."""

Buffer = bytes | bytearray | memoryview


@dataclass
class Copy:
    """One copy of the output.

    Attributes:
        base: its first segment's path.
        paths: the segment files created so far, in order.
        error: why it was dropped (``None`` while it is alive).
        failed_path: the segment file whose operation failed.
        failed_offset: the file offset in ``failed_path`` where the failure happened (for a write: the
            copy holds that file's bytes ``[0, failed_offset)``).
        media: media bytes of the records that reached this copy whole (as counted by the writer's marks).
        position_at_failure: the writer's media position at the start of the ``write`` call (the source
            block) that appended the first byte this copy does not hold (the copy's media ends at or before
            the end of that block). In direct mode a failure is noticed a call or more later; the position
            is still that of the block whose bytes failed.
    """

    base: Path
    paths: list[Path] = field(default_factory=list)
    error: WriteError | None = None
    failed_path: Path | None = None
    failed_offset: int | None = None
    media: int = 0
    position_at_failure: int | None = None
    fd: int | None = field(default=None, repr=False)
    pos: int = field(default=0, repr=False)  # bytes written to the current segment
    dfd: int | None = field(default=None, repr=False)  # O_DIRECT descriptor of the segment (direct mode)

    @property
    def alive(self) -> bool:
        """True until an operation on this copy failed."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``WriteResult.details["copies"]`` holds)."""
        return {
            "path": str(self.base),
            "paths": [str(p) for p in self.paths],
            "complete": self.error is None,
            "error": str(self.error) if self.error is not None else None,
            "errno": self.error.errno if self.error is not None else None,
            "failed_path": str(self.failed_path) if self.failed_path is not None else None,
            "failed_offset": self.failed_offset,
            "media_stored": self.media,
            "position_at_failure": self.position_at_failure,
        }


class OutputSet:
    """Applies each file operation to every live copy; drops a copy that fails (see the module docstring).

    Args:
        bases: first-segment path of each copy; the first is the primary.
        namer: segment naming of the format.
        check: called with each new segment path before it is created (refuse an existing file).
        position: the writer's media position (recorded when a copy fails).
        hash_segments: compute the SHA-256 of each segment file from the bytes appended to it (for an
            append-only format: only :meth:`writev` after :meth:`open_segment`); see :attr:`segment_sha256`.
        media_bytes: the bytes appended are the media themselves (raw): a copy counts every byte that
            reached it (:attr:`Copy.media` to the byte, even inside a write that failed part-way) and
            ``marks`` are not needed.
        direct: append with ``O_DIRECT`` where the file system allows it: the bytes are gathered in
            page-aligned buffers and written in aligned blocks by helper threads (one per copy, so that
            the copies wait on their devices at the same time), bypassing the page cache; the unaligned end
            goes through an ordinary descriptor whenever the set syncs, patches or closes (see
            :class:`_Stage`). A failed block write is noticed when its result is collected: with
            ``media_bytes`` at the latest in the next :meth:`writev` (or sync/close), so that a writer with
            one copy raises no later than its next write; otherwise when the next buffer is handed over.
            Either way the copy's failure offset and media are those of the bytes its file really holds.
    """

    def __init__(self, bases: Sequence[Path], namer: Namer, check: Callable[[Path], None] | None = None,
                 position: Callable[[], int] | None = None, *, hash_segments: bool = False,
                 media_bytes: bool = False, direct: bool = False) -> None:
        if not bases:
            raise ValueError("an output set needs at least one copy")
        self.copies = [Copy(Path(b)) for b in bases]
        self._media_bytes = media_bytes
        self._namer = namer
        self._check = check
        self._position = position
        self._graveyard: list[int] = []  # fds of dropped copies, closed with the segment (a sync may use them)
        self._pool: ThreadPoolExecutor | None = None
        self._hash_segments = hash_segments
        # SHA-256 of the current segment's bytes, fed in a helper thread in write order (None: not vouched
        # for, e.g. a segment reopened by resume or patched in place)
        self._seg_hash: Any = None
        self._seg_hashed = 0
        self._hash_pool: ThreadPoolExecutor | None = None
        self._hash_job: Future[None] | None = None
        self._stage: _Stage | None = _Stage(len(self.copies)) if direct else None
        self.segment_sha256: dict[Path, str] = {}
        """SHA-256 (hex) of every closed segment file whose whole content this set wrote, per path, for
        every copy alive when the segment was closed (with ``hash_segments``). Every live copy receives the
        same bytes (a copy that misses any is dropped), so one digest per segment serves all copies."""

    # -- state ------------------------------------------------------------------------------------

    @property
    def live(self) -> list[Copy]:
        """The copies still written."""
        return [c for c in self.copies if c.error is None]

    @property
    def primary(self) -> Copy:
        """The first live copy (the first copy when none is alive)."""
        for c in self.copies:
            if c.error is None:
                return c
        return self.copies[0]

    def _drop(self, c: Copy, exc: WriteError, path: Path | None, offset: int | None,
              position: int | None = None) -> None:
        c.error = exc
        c.failed_path = path
        c.failed_offset = offset
        if position is None and self._position is not None:
            position = self._position()
        c.position_at_failure = position
        if c.fd is not None:
            self._graveyard.append(c.fd)
            c.fd = None
        if c.dfd is not None:
            self._graveyard.append(c.dfd)
            c.dfd = None
        if any(o.error is None for o in self.copies):
            log.warning("copy %s dropped, the other copies go on: %s", c.base, exc)

    def _raise_if_all_failed(self) -> None:
        if all(c.error is not None for c in self.copies):
            err = self.copies[0].error  # the primary's: the one a single-copy writer would have raised
            assert err is not None
            raise err

    # -- segments ---------------------------------------------------------------------------------

    def check_new(self, number: int) -> list[Path]:
        """Segment ``number``'s path of every live copy, each checked with ``check`` (raises on the first refused)."""
        out = []
        for c in self.live:
            p = self._namer(c.base, number)
            if self._check is not None:
                self._check(p)
            out.append(p)
        return out

    def open_segment(self, number: int) -> None:
        """Create segment ``number`` in every live copy (``O_TRUNC``; the writer checked the names).

        Raises:
            WriteError: no copy could create it.
        """
        for c in self.live:
            try:
                p = self._namer(c.base, number)
            except WriteError as exc:  # this copy's naming has no name left (raw: 'x.zz', 'x.999')
                self._drop(c, exc, Path(exc.path) if exc.path is not None else None, None)
                continue
            if number > 1 and self._check is not None:
                try:
                    self._check(p)
                except WriteError as exc:
                    self._drop(c, exc, p, 0)
                    continue
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                self._drop(c, WriteError(f"cannot create '{p}': {exc.strerror}", path=p, errno_=exc.errno), p, 0)
                continue
            c.fd = fd
            c.paths.append(p)
            c.pos = 0
            if self._stage is not None:
                c.dfd = _open_direct(p)
        self._raise_if_all_failed()
        if self._stage is not None:
            self._stage.reset(0)
        if self._hash_segments:
            self._seg_hash = hashlib.sha256()
            self._seg_hashed = 0

    def adopt(self, fd: int, paths: Sequence[Path], pos: int) -> None:
        """Take over an open file (resume of a single copy): ``paths`` so far, ``fd`` on the last one at ``pos``."""
        c = self.copies[0]
        c.paths = list(paths)
        c.fd = fd
        c.pos = pos
        self._seg_hash = None  # bytes written before the resume were not seen here: not vouched for
        if self._stage is not None:
            c.dfd = _open_direct(c.paths[-1])
            # direct writes start at a block boundary: the stage begins with the file's last partial block
            start = pos - pos % _ALIGN
            with open(c.paths[-1], "rb") as f:
                f.seek(start)
                head = f.read(pos - start)
            if len(head) != pos - start:
                raise WriteError(f"'{c.paths[-1]}' is shorter than {pos} bytes", path=c.paths[-1], offset=pos)
            self._stage.reset(start, head)

    def close_segment(self) -> None:
        """Close the current segment of every copy (and the files of dropped copies)."""
        if self._stage is not None and self.is_open:
            try:
                self._drain_stage()
            except WriteError:
                pass  # every copy failed: each has its error; the files are closed below
        h, self._seg_hash = self._seg_hash, None
        if h is not None:
            self._wait_hash()
            digest = h.hexdigest()
            for c in self.copies:
                # vouch only for a live copy that holds exactly the bytes hashed
                if c.error is None and c.fd is not None and c.pos == self._seg_hashed:
                    self.segment_sha256[c.paths[-1]] = digest
        hpool, self._hash_pool = self._hash_pool, None
        if hpool is not None:
            hpool.shutdown(wait=True)
        for c in self.copies:
            fd, c.fd = c.fd, None
            if fd is not None:
                os.close(fd)
            dfd, c.dfd = c.dfd, None
            if dfd is not None:
                os.close(dfd)
        graveyard, self._graveyard = self._graveyard, []
        for fd in graveyard:
            os.close(fd)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self._stage is not None:
            self._stage.close()

    @property
    def is_open(self) -> bool:
        """True while a segment is open in some live copy."""
        return any(c.fd is not None for c in self.copies)

    # -- writing ----------------------------------------------------------------------------------

    def writev(self, iov: Sequence[Buffer], total: int, marks: Sequence[tuple[int, int]] = ()) -> None:
        """Append ``iov`` (``total`` bytes) to the current segment of every live copy.

        ``marks``: ``(end within iov, media bytes)`` of each record, so that each copy counts the media
        of the records that reached it whole (:attr:`Copy.media`).

        Raises:
            WriteError: every copy has failed.
        """
        if not iov:
            return
        if self._seg_hash is not None:
            # the segment's SHA-256 is computed from the very bytes appended (immutable ``bytes`` from
            # the writer), in a helper thread while the copies are written (hashlib releases the GIL)
            self._wait_hash()  # at most one job queued: bounded memory, write order kept
            if self._hash_pool is None:
                self._hash_pool = ThreadPoolExecutor(1, thread_name_prefix="forensimg-seghash")
            self._hash_job = self._hash_pool.submit(update_all, self._seg_hash, tuple(iov))
            self._seg_hashed += total
        if self._stage is not None:
            self._stage_append(iov, total, marks)
            return
        live = self.live
        fds = [c.fd for c in live]
        if len(live) == 1:
            assert fds[0] is not None
            results = [_write_all(fds[0], iov, total)]
        else:
            # the copies are written at the same time (one helper thread per further copy; os.writev
            # releases the GIL), so that a second copy adds little wall time; all finish before returning
            if self._pool is None:
                self._pool = ThreadPoolExecutor(len(self.copies) - 1, thread_name_prefix="forensimg-copy")
            futs = [self._pool.submit(_write_all, fd, iov, total) for fd in fds[1:] if fd is not None]
            assert fds[0] is not None
            results = [_write_all(fds[0], iov, total), *(f.result() for f in futs)]
        for c, (done, err) in zip(live, results, strict=True):
            if err is not None:
                exc = err
                c.media += done if self._media_bytes else sum(m for end, m in marks if end <= done)
                p = c.paths[-1]
                off = c.pos + done
                c.pos = off
                self._drop(c, WriteError(f"cannot write '{p}': {exc.strerror}", path=p, offset=off,
                                         errno_=exc.errno), p, off)
                continue
            c.pos += total
            c.media += total if self._media_bytes else sum(m for _, m in marks)
        self._raise_if_all_failed()

    def pwrite(self, data: Buffer, offset: int, segment: int | None = None) -> None:
        """Overwrite ``data`` at ``offset`` in segment number ``segment`` (default: the current one) of every
        live copy; an earlier segment is reopened, written, synced (with ``sync``) and closed.

        Raises:
            WriteError: every copy has failed.
        """
        live = self.live
        if self._stage is not None and live and (segment is None or segment == len(live[0].paths)):
            self._drain_stage()
            self._stage.patch(data, offset)  # its unaligned end is written again with the next block
            live = self.live
        if live:
            idx0 = len(live[0].paths) if segment is None else segment
            if idx0 == len(live[0].paths):
                self._seg_hash = None  # patched in place: the appended bytes no longer describe the file
            for c in live:
                self.segment_sha256.pop(c.paths[idx0 - 1], None)
        for c in live:
            idx = len(c.paths) if segment is None else segment
            p = c.paths[idx - 1]
            fd = c.fd if idx == len(c.paths) else None
            try:
                if fd is None:
                    fd = os.open(p, os.O_WRONLY | os.O_CLOEXEC)
                    try:
                        _pwrite_all(fd, data, offset)
                    finally:
                        os.close(fd)
                else:
                    _pwrite_all(fd, data, offset)
            except OSError as exc:
                self._drop(c, WriteError(f"cannot write '{p}': {exc.strerror}", path=p, offset=offset,
                                         errno_=exc.errno), p, offset)
        self._raise_if_all_failed()

    def sync_segment(self, number: int) -> None:
        """``fsync`` an earlier (closed) segment of every live copy."""
        for c in self.live:
            p = c.paths[number - 1]
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self._drop(c, WriteError(f"cannot sync '{p}': {exc.strerror}", path=p, errno_=exc.errno), p, None)
        self._raise_if_all_failed()

    def fsync(self, *, data_only: bool = False) -> None:
        """``fsync`` (or ``fdatasync``) the current segment of every live copy.

        Raises:
            WriteError: every copy has failed.
        """
        if self._stage is not None:
            self._drain_stage()
        self.apply_sync_results(_sync_all(self._sync_targets(), data_only))

    def sync_job(self, *, data_only: bool = True) -> Callable[[], list[tuple[int, OSError]]]:
        """A function that syncs the current segment of every live copy, for a helper thread; hand its
        result to :meth:`apply_sync_results` in the writing thread (copies are dropped only there).
        Everything appended so far is in the files before this returns (direct mode writes it out here,
        in the writing thread, so that a failed write is recorded with its exact offset)."""
        if self._stage is not None:
            self._drain_stage()
        targets = self._sync_targets()
        return lambda: _sync_all(targets, data_only)

    def _sync_targets(self) -> list[tuple[int, int]]:
        out = []
        for i, c in enumerate(self.copies):
            if c.error is None and c.fd is not None:
                out.append((i, c.fd))
        return out

    def apply_sync_results(self, failures: list[tuple[int, OSError]]) -> None:
        """Drop the copies whose sync failed.

        Raises:
            WriteError: every copy has failed.
        """
        for i, exc in failures:
            c = self.copies[i]
            if c.error is None:
                p = c.paths[-1]
                self._drop(c, WriteError(f"cannot sync '{p}': {exc.strerror}", path=p, errno_=exc.errno), p, None)
        self._raise_if_all_failed()

    def each_live(self, op: Callable[[Copy], None]) -> None:
        """Apply ``op`` to every live copy (e.g. rename its files, write its sidecars at close); a copy for
        which it raises :class:`~forensimg.errors.WriteError` is dropped with that error (its ``path`` and
        ``offset``), the others go on.

        Raises:
            WriteError: every copy has failed.
        """
        for c in self.live:
            try:
                op(c)
            except WriteError as exc:
                self._drop(c, exc, Path(exc.path) if exc.path is not None else None, exc.offset)
        self._raise_if_all_failed()

    def fsync_dirs(self) -> None:
        """Sync the folder of every live copy (new names survive a power loss)."""
        seen = set()
        for c in self.live:
            d = c.base.parent
            if d not in seen:
                seen.add(d)
                fsync_dir(d)

    # -- direct mode (O_DIRECT appends through page-aligned buffers) ------------------------------

    def _stage_append(self, iov: Sequence[Buffer], total: int, marks: Sequence[tuple[int, int]]) -> None:
        st = self._stage
        assert st is not None
        base = st.end
        st.marks.extend((base + end, m) for end, m in marks)
        if self._position is not None:
            st.calls.append((base + total, self._position()))
        if st.len + total <= st.capacity:  # the common case: one copy per buffer, no per-item calls
            buf = st.current
            pos = st.len
            for b in iov:
                n = len(b)  # bytes, or 1-D memoryviews of bytes (len == nbytes)
                buf[pos : pos + n] = b
                pos += n
            st.len = pos
            if st.full:
                self._write_stage(final=False)
            elif self._media_bytes and st.pending is not None:
                # raw: the blocks handed over in an earlier call are waited for here, after this call's
                # bytes were copied (the device write overlapped the caller's work since), so that a
                # failure is reported no later than the next write
                self._collect_stage()
            return
        for b in iov:
            view = memoryview(b).cast("B")
            while view:
                n = st.put(view)
                view = view[n:]
                if st.full:
                    self._write_stage(final=False)
        if self._media_bytes and st.pending is not None:
            self._collect_stage()

    def _write_stage(self, *, final: bool) -> None:
        """Hand the stage's whole blocks to the helper thread (``final``: also write its unaligned end,
        through the ordinary descriptors, and wait for everything)."""
        st = self._stage
        assert st is not None
        self._collect_stage()
        live = self.live
        block, off, n = st.take_blocks()
        if n:
            if st.pool is None:
                st.pool = ThreadPoolExecutor(st.workers, thread_name_prefix="forensimg-direct")
            # one job per copy, each in its own thread: O_DIRECT writes wait on the device, and the copies'
            # devices work at the same time
            futs = [st.pool.submit(_write_block, c.dfd if c.dfd is not None else c.fd, block, off, n) for c in live]
            st.pending = (futs, live, off, n)
        if final:
            self._collect_stage()
            tail, toff = st.tail()
            if tail:
                results: list[tuple[Copy, int, OSError | None]] = []
                for c in self.live:
                    assert c.fd is not None
                    results.append((c, *_write_block(c.fd, tail, toff, len(tail))))
                self._apply_stage_results(results, toff, len(tail))

    def _collect_stage(self) -> None:
        st = self._stage
        assert st is not None
        pending, st.pending = st.pending, None
        if pending is None:
            return
        futs, copies, off, n = pending
        outcome = [f.result() for f in futs]
        results: list[tuple[Copy, int, OSError | None]] = []
        for c, (done, err) in zip(copies, outcome, strict=True):
            if err is not None and err.errno == errno.EINVAL and c.dfd is not None:
                # the file system refused O_DIRECT after all: this copy goes on through its ordinary
                # descriptor, from where the direct write stopped
                os.close(c.dfd)
                c.dfd = None
                assert c.fd is not None
                more, err = _write_block(c.fd, st.view(off + done, off + n), off + done, n - done)
                done += more
            results.append((c, done, err))
        self._apply_stage_results(results, off, n)

    def _apply_stage_results(self, results: list[tuple[Copy, int, OSError | None]], off: int, n: int) -> None:
        st = self._stage
        assert st is not None
        gained = st.media_to(off + n)
        for c, done, err in results:
            if c.error is not None:
                continue
            # the file holds [0, held): the bytes written at ``off`` (rewritten blocks start at or before
            # the end of what an earlier write of the unaligned end put there, which stays)
            held = max(c.pos, off + done)
            if self._media_bytes:
                c.media += held - c.pos
            if err is not None:
                if not self._media_bytes:
                    c.media += st.media_to(off + done)
                c.pos = held
                p = c.paths[-1]
                self._drop(c, WriteError(f"cannot write '{p}': {err.strerror}", path=p, offset=held,
                                         errno_=err.errno), p, held, st.position_of(held))
                continue
            c.pos = held
            if not self._media_bytes:
                c.media += gained
        st.commit_media(off + n)
        self._raise_if_all_failed()

    def _drain_stage(self) -> None:
        """Everything appended so far into the files of every live copy."""
        self._write_stage(final=True)

    def _wait_hash(self) -> None:
        job, self._hash_job = self._hash_job, None
        if job is not None:
            job.result()

    # -- results ----------------------------------------------------------------------------------

    def details(self) -> list[dict[str, Any]]:
        """Every copy's :meth:`Copy.to_dict`, in the order given."""
        return [c.to_dict() for c in self.copies]


def _write_all(fd: int, iov: Sequence[Buffer], total: int) -> tuple[int, OSError | None]:
    """Write ``iov`` whole to ``fd``: (bytes written, the error that stopped it or ``None``)."""
    done = 0
    try:
        done = os.writev(fd, iov)
        if done != total:  # a short write (a disk filling up): go on from where it stopped
            view = memoryview(b"".join(iov))[done:]
            while view:
                n = os.write(fd, view)
                view = view[n:]
                done += n
    except OSError as exc:
        return done, exc
    return done, None


def _pwrite_all(fd: int, data: Buffer, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (a short write goes on from where it stopped); raise what stopped it."""
    _done, err = _write_block(fd, data, offset, memoryview(data).nbytes)
    if err is not None:
        raise err


def _sync_all(targets: list[tuple[int, int]], data_only: bool) -> list[tuple[int, OSError]]:
    out: list[tuple[int, OSError]] = []
    sync = os.fdatasync if data_only else os.fsync
    for i, fd in targets:
        try:
            sync(fd)
        except OSError as exc:
            out.append((i, exc))
    return out


def copy_bases(path: Path, mirror_paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """``[path, *mirror_paths]`` as the first-segment paths of the copies, refusing a copy named twice
    (it would be written over itself)."""
    bases = [path, *(Path(m) for m in mirror_paths)]
    seen: set[Path] = set()
    for b in bases:
        key = Path(os.path.abspath(b))
        if key in seen:
            raise UsageError(f"'{b}' is named twice as a copy of the image", path=b)
        seen.add(key)
    return bases


_ALIGN = 4096  # O_DIRECT alignment of buffers, offsets and lengths (the largest logical block size in use)
_STAGE_BYTES = 4 << 20  # bytes gathered before a direct write


def _open_direct(path: Path) -> int | None:
    """An ``O_DIRECT`` write descriptor on ``path``, or ``None`` where the file system refuses it (tmpfs)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None


def _write_block(fd: int | None, block: Buffer, off: int, n: int) -> tuple[int, OSError | None]:
    """Write ``block[:n]`` at file offset ``off`` (a helper thread per copy): (bytes written, the error
    that stopped it or ``None``); a short write goes on from where it stopped until it fails."""
    done = 0
    view = memoryview(block).cast("B")
    try:
        assert fd is not None
        while done < n:
            w = os.pwrite(fd, view[done:n], off + done)
            if w <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += w
    except OSError as exc:
        return done, exc
    return done, None


class _Stage:
    """Two page-aligned buffers for direct mode: bytes are gathered in one while the helper thread writes
    the other's whole blocks. The unaligned end of the data stays at the start of the next buffer, so each
    direct write starts at a block boundary of the file (the end is written again as part of the next
    block, after an ordinary write of it at a sync)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers  # helper threads: one per copy
        self.capacity = 2 * _STAGE_BYTES + _ALIGN  # written from _STAGE_BYTES on: a whole flush usually fits
        self._bufs = [mmap.mmap(-1, self.capacity), mmap.mmap(-1, self.capacity)]
        self._cur = 0
        self.len = 0  # bytes in the current buffer
        self.off = 0  # file offset of the current buffer's first byte (a multiple of _ALIGN)
        self.pool: ThreadPoolExecutor | None = None
        self.pending: tuple[list[Future[tuple[int, OSError | None]]], list[Copy], int, int] | None = None
        self.marks: deque[tuple[int, int]] = deque()  # (end offset in the file, media bytes) not yet counted
        # (end offset in the file, writer position at the call) of each append not yet in every live copy
        self.calls: deque[tuple[int, int]] = deque()
        self._handed = 0
        self._handed_off = 0

    @property
    def end(self) -> int:
        """File offset just past the bytes appended so far."""
        return self.off + self.len

    @property
    def full(self) -> bool:
        return self.len >= _STAGE_BYTES

    def reset(self, off: int, head: bytes = b"") -> None:
        """Start at file offset ``off`` (aligned) with ``head`` (the file's bytes from ``off``) already in place."""
        self.off = off
        self.len = len(head)
        self._bufs[self._cur][: self.len] = head
        self.marks.clear()
        self.calls.clear()

    @property
    def current(self) -> mmap.mmap:
        """The buffer being filled."""
        return self._bufs[self._cur]

    def put(self, view: memoryview) -> int:
        n = min(len(view), self.capacity - self.len)
        self._bufs[self._cur][self.len : self.len + n] = view[:n]
        self.len += n
        return n

    def take_blocks(self) -> tuple[memoryview, int, int]:
        """The current buffer's whole blocks for writing (its file offset and length); the rest moves to the
        other buffer, which becomes current. The buffer handed out is not touched until the next call."""
        n = self.len - self.len % _ALIGN
        buf = self._bufs[self._cur]
        off = self.off
        self._handed, self._handed_off = self._cur, off
        if n:
            other = self._bufs[1 - self._cur]
            rest = self.len - n
            other[:rest] = buf[n : self.len]
            self._cur = 1 - self._cur
            self.off += n
            self.len = rest
        return memoryview(buf), off, n

    def tail(self) -> tuple[bytes, int]:
        """The unaligned end (kept in the buffer) and its file offset."""
        return bytes(self._bufs[self._cur][: self.len]), self.off

    def view(self, start: int, stop: int) -> bytes:
        """File bytes ``[start, stop)`` of the blocks last handed out (for a fallback write)."""
        return bytes(self._bufs[self._handed][start - self._handed_off : stop - self._handed_off])

    def patch(self, data: Buffer, offset: int) -> None:
        """Apply an in-place write at file ``offset`` to the bytes still held (they are written again)."""
        lo = max(offset, self.off)
        hi = min(offset + len(data), self.end)
        if lo < hi:
            self._bufs[self._cur][lo - self.off : hi - self.off] = memoryview(data).cast("B")[lo - offset : hi - offset]

    def media_to(self, end: int) -> int:
        """Media bytes of the records not yet counted that end at or before file offset ``end``."""
        total = 0
        for e, m in self.marks:
            if e > end:
                break
            total += m
        return total

    def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def commit_media(self, end: int) -> None:
        while self.marks and self.marks[0][0] <= end:
            self.marks.popleft()
        while self.calls and self.calls[0][0] <= end:
            self.calls.popleft()

    def position_of(self, offset: int) -> int | None:
        """The writer position of the append that holds file byte ``offset`` (``None``: not recorded)."""
        for e, p in self.calls:
            if e > offset:
                return p
        return None
