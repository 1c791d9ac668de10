"""Scan processes: verify's chunk checks of a large fimg, outside the verifier's process.

Why: a chunk check inflates and hashes (ISA-L and hashlib release the GIL for each call), so two scanning
threads, the whole-media hashing thread and the verifier's own thread hand the GIL around twice per chunk;
with 16 KiB chunks that made verifying 1 GiB take about as long with two threads as with one. Processes
keep their own GIL (bench/README.md, "Fourth session").

How: the verifier sends a worker the chunk range of a task (about 4 MiB of media), its record locations
and its digest-table entries. The worker reads the records of the range with one ``pread`` per segment
run (the segment files' descriptors are inherited from the verifier: nothing is opened again), checks each
chunk with :func:`~forensimg.formats.fimg.record.decode_record` (the reader's own hot path), writes the
decoded bytes into the task's slot of shared memory and answers, per chunk, "good" with its stored length
or "look again". The verifier checks every "look again" chunk itself with the reader's diagnosing path
(which names the fault and fills the slot with zeros), so the faults reported are the reader's, word for
word. A worker that fails costs only speed: its tasks are checked again by the verifier's threads.
"""

from __future__ import annotations

import gc
import mmap
import signal
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from forensimg.formats.fimg.record import decode_record, read_runs
from forensimg.formats.fimg.workers import SharedMemory, Worker, read_exact, spawn, stop_all, write_all

__all__ = ["ScanJob", "ScanProcesses", "scan_main"]

_JOB = struct.Struct("<IQIB")  # slot, first chunk, chunks, has digest-table entries
_BIG = sys.byteorder == "big"


def scan_main(argv: Sequence[str]) -> int:
    """A scan process's loop (``argv``: what :class:`ScanProcesses` passes). Runs until its job pipe closes."""
    job_fd, reply_fd, shm_fd, shm_size, cs, size, slot_size, *seg_fds = map(int, argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()  # the loop makes no reference cycles
    view = memoryview(mmap.mmap(shm_fd, shm_size))
    while True:
        msg = read_exact(job_fd, _JOB.size)
        if len(msg) < _JOB.size:
            return 0
        slot, lo, n, has_leaves = _JOB.unpack(msg)
        locs = array("Q")
        locs.frombytes(read_exact(job_fd, 8 * n))
        leaves = read_exact(job_fd, 32 * n) if has_leaves else None
        if _BIG:  # pragma: no cover - little-endian hosts only in CI
            locs.byteswap()
        base = slot * slot_size
        status = bytearray(n)  # 1: good (its decoded bytes are in the slot); 0: the verifier looks again
        stored = array("I", bytes(4 * n))
        for k, record in read_runs(locs, 0, n, lo, cs, size, seg_fds):
            if record is None:  # the verifier reads these chunks again and reports the error
                continue
            length = min(cs, size - (lo + k) * cs)
            try:
                data, used = decode_record(record, lo + k, length, leaves, lo)
            except Exception:  # anything unexpected: the verifier's own check decides
                data = None
            if data is not None:
                view[base + k * cs : base + k * cs + length] = data
                status[k] = 1
                stored[k] = used
        if _BIG:  # pragma: no cover
            stored.byteswap()
        write_all(reply_fd, bytes(status) + stored.tobytes())


@dataclass(eq=False)
class ScanJob:
    """A task in flight: its worker, slot and chunk range."""

    worker: Worker
    slot: int
    lo: int
    hi: int


class ScanProcesses:
    """Scan processes sharing a block of memory with the verifier (see the module notes).

    Args:
        fds: the open segment files, in order (inherited by the workers).
        chunk_size, size: the image's chunk size and media size.
        workers: processes. slots: tasks in flight at once. slot_chunks: most chunks per task.

    Raises:
        OSError: the shared memory or a process could not be set up (the verifier then uses threads).
    """

    def __init__(self, fds: Sequence[int], chunk_size: int, size: int, workers: int, slots: int,
                 slot_chunks: int) -> None:
        self.chunk_size = chunk_size
        self.slot_size = -(-slot_chunks * chunk_size // mmap.PAGESIZE) * mmap.PAGESIZE
        self._free = list(range(slots))
        self._workers: list[Worker] = []
        self.error: str | None = None
        self._shm = SharedMemory(self.slot_size * slots)
        try:
            for _ in range(workers):
                args = [self._shm.fd, self._shm.size, chunk_size, size, self.slot_size, *fds]
                self._workers.append(spawn(__name__, "scan_main", args, (self._shm.fd, *fds)))
        except BaseException:
            self.close()
            raise

    @property
    def usable(self) -> bool:
        """False once a worker failed."""
        return self.error is None and bool(self._workers)

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (for tests)."""
        return [int(w.proc.pid) for w in self._workers]

    def submit(self, lo: int, hi: int, locations: array[int], leaves: bytes | None) -> ScanJob | None:
        """Send chunks ``lo..hi-1`` (their ``locations`` and digest-table entries) to the least busy worker;
        ``None`` when no slot is free or no worker is left."""
        if not self.usable or not self._free:
            return None
        w = min(self._workers, key=lambda w: w.pending)
        slot = self._free.pop()
        locs = array("Q", locations)
        if _BIG:  # pragma: no cover
            locs.byteswap()
        try:
            write_all(w.job_fd, _JOB.pack(slot, lo, hi - lo, leaves is not None) + locs.tobytes() + (leaves or b""))
        except OSError as exc:
            self._free.append(slot)
            self.error = f"scan process {w.proc.pid} cannot take a task: {exc.strerror}"
            return None
        w.pending += 1
        return ScanJob(w, slot, lo, hi)

    def collect(self, job: ScanJob) -> tuple[memoryview, bytes, array[int]]:
        """The task's answer: the slot's bytes (valid until :meth:`release`), per-chunk status (1: good),
        stored lengths.

        Raises:
            OSError: the worker failed (the task must be checked another way; the set is no longer usable).
        """
        n = job.hi - job.lo
        answer = read_exact(job.worker.reply_fd, 5 * n) if self.error is None else b""
        if len(answer) < 5 * n:
            self.error = self.error or f"scan process {job.worker.proc.pid} exited"
            raise OSError(0, self.error)
        job.worker.pending -= 1
        stored = array("I")
        stored.frombytes(answer[n:])
        if _BIG:  # pragma: no cover
            stored.byteswap()
        base = job.slot * self.slot_size
        return self._shm.view[base : base + self.slot_size], answer[:n], stored

    def release(self, job: ScanJob) -> None:
        """The slot of ``job`` may be written again."""
        self._free.append(job.slot)

    def close(self) -> None:
        """Stop the workers and free the shared memory."""
        workers, self._workers = self._workers, []
        stop_all(workers)
        self._shm.close()
