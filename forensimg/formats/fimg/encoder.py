"""Encoder processes: the fimg writer's chunk hashing and compression, outside the writer's process.

Why processes: hashlib, zstandard and ISA-L release the GIL for each chunk, so encoding threads hand the
GIL to one another and to the acquisition's reading, hashing and writing threads once or more per chunk,
and waking the other vCPU for each hand-over is costly on a VM. A process keeps its own GIL. Measured on
the 2-core benchmark VM, ``forensimg acquire`` of the 1 GiB benchmark input to fimg with 16 KiB chunks:
2.74-2.85 s with encoding threads, 2.39-2.55 s with encoder processes, in turns (bench/README.md,
"Fourth session").

How: the source bytes of a job (4 MiB of chunks) are copied into a slot of shared memory (a ``memfd``),
and the job's slot, length and first chunk index go down a pipe to one worker. The worker encodes the
chunks with :func:`~forensimg.formats.fimg.record.encode_range`, exactly as a thread would, writes the
records (headers and bodies, as they go into the segment file) into the slot's output area and answers
with the end of each record, the chunk digests and the run's Merkle node. The writer copies the records
out in one piece, so the slot is free again as soon as the answer is read.

Nothing depends on a worker: a job whose worker dies, answers with an error or cannot be reached is
encoded again by the writer's threads from the source blocks it still holds, and the writer stops using
the processes. The workers exit when their job pipe closes, which includes the writer's process dying.
"""

from __future__ import annotations

import gc
import mmap
import select
import signal
import struct
import sys
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from forensimg.formats.fimg.record import M_ZSTD, RECORD_SIZE, EncodedChunk, EncodedRun, encode_range
from forensimg.formats.fimg.workers import SharedMemory, Worker, read_exact, spawn, stop_all, write_all
from forensimg.merkle import level_nodes

__all__ = ["EncoderProcesses", "ProcessJob", "worker_main"]

_JOB = struct.Struct("<IIQB")  # slot, input bytes, first chunk index, want the Merkle node
_REPLY = struct.Struct("<BIQII")  # status (0 ok), records, media bytes, output bytes used, node bytes
_BIG = sys.byteorder == "big"


def worker_main(argv: Sequence[str]) -> int:
    """An encoder process's loop (``argv``: the numbers :meth:`EncoderProcesses.start` passes).

    Runs until its job pipe closes; returns the exit status.
    """
    job_fd, reply_fd, shm_fd, shm_size, cs, method, level, slot_size, in_size, node_level = map(int, argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the writer decides when to stop (it closes the pipe)
    gc.disable()  # the loop makes no reference cycles; collections would only scan its tuples
    shm = mmap.mmap(shm_fd, shm_size)
    view = memoryview(shm)
    compress: Callable[[Any], bytes] | None = None
    if method == M_ZSTD:
        import zstandard

        compress = zstandard.ZstdCompressor(level=level, write_content_size=True).compress
    while True:
        msg = read_exact(job_fd, _JOB.size)
        if len(msg) < _JOB.size:
            return 0
        slot, n, first, want_node = _JOB.unpack(msg)
        base = slot * slot_size
        out = base + in_size
        try:
            records: list[EncodedChunk] = []
            media = encode_range(shm, base, base + n, first, cs, method, level, compress, records)
            ends = array("I")
            p = out
            for head, body, _digest, _n in records:  # the records as they go into the segment file
                view[p : p + RECORD_SIZE] = head
                p += RECORD_SIZE
                if body is not None:
                    view[p : p + len(body)] = body
                    p += len(body)
                ends.append(p - out)
            digests = [r[2] for r in records]
            node = level_nodes(digests, node_level)[0] if want_node and records else b""
            del records
            if _BIG:  # pragma: no cover - little-endian hosts only in CI
                ends.byteswap()
            reply = _REPLY.pack(0, len(ends), media, p - out, len(node)) + ends.tobytes() + b"".join(digests) + node
        except Exception as exc:  # answered, so that the writer encodes this job itself and says why
            text = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:2000]
            reply = _REPLY.pack(1, 0, 0, len(text), 0) + text
        write_all(reply_fd, reply)


class EncoderProcesses:
    """A set of encoder processes sharing one block of memory with the writer (see the module notes).

    Args:
        workers: processes.
        chunk_size, method, level: the writer's encoding (``method``: a ``record.M_*`` value).
        job_chunks: most chunks per job; ``node_level``: the Merkle level of a whole aligned job.
        slots: jobs that can be in flight at once (each holds a slot of shared memory).

    Raises:
        OSError: the shared memory or a process could not be set up (the writer then keeps its threads).
    """

    def __init__(self, workers: int, chunk_size: int, method: int, level: int, job_chunks: int,
                 node_level: int, slots: int) -> None:
        self.chunk_size = chunk_size
        self.in_size = job_chunks * chunk_size
        self.slot_size = self.in_size + job_chunks * (RECORD_SIZE + chunk_size)
        self.slot_size = -(-self.slot_size // mmap.PAGESIZE) * mmap.PAGESIZE
        size = self.slot_size * slots
        self._free = list(range(slots))
        self._workers: list[Worker] = []
        self.error: str | None = None
        self._shm = SharedMemory(size)
        self._view = self._shm.view
        try:
            for _ in range(workers):
                args = [self._shm.fd, size, chunk_size, method, level, self.slot_size, self.in_size, node_level]
                self._workers.append(spawn(__name__, "worker_main", args, (self._shm.fd,)))
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (for tests and diagnostics)."""
        return [int(w.proc.pid) for w in self._workers]

    @property
    def usable(self) -> bool:
        """False once a worker failed: the writer then encodes with its threads."""
        return self.error is None and bool(self._workers)

    def submit(self, first: int, ranges: list[tuple[bytes, int, int]], count: int, want_node: bool,
               fallback: Callable[[], EncodedRun]) -> ProcessJob | None:
        """Send a job (``count`` chunks in ``ranges``); ``None`` when no slot is free or the set is unusable."""
        if not self.usable or not self._free:
            return None
        slot = self._free.pop()
        base = slot * self.slot_size
        p = base
        view = self._view
        for block, start, stop in ranges:
            n = stop - start
            view[p : p + n] = memoryview(block)[start:stop]
            p += n
        w = min((w for w in self._workers if not w.dead), key=lambda w: w.pending, default=None)
        if w is None:
            self._free.append(slot)
            return None
        try:
            write_all(w.job_fd, _JOB.pack(slot, p - base, first, want_node))
        except OSError as exc:
            self._failed(w, f"encoder process {w.proc.pid} cannot take a job: {exc.strerror}")
            self._free.append(slot)
            return None
        w.pending += 1
        return ProcessJob(self, w, slot, fallback)

    def _failed(self, w: Worker, why: str) -> None:
        w.dead = True
        if self.error is None:
            self.error = why

    def _collect(self, job: ProcessJob) -> EncodedRun:
        w = job.worker
        if w.dead:
            raise OSError(0, "the worker failed before")
        head = read_exact(w.reply_fd, _REPLY.size)
        if len(head) < _REPLY.size:
            raise EOFError(f"encoder process {w.proc.pid} exited")
        status, count, media, used, node_len = _REPLY.unpack(head)
        if status:
            text = read_exact(w.reply_fd, used).decode("utf-8", "replace")
            w.pending -= 1
            self._free.append(job.slot)
            job.slot = -1
            raise RuntimeError(f"encoder process {w.proc.pid}: {text}")
        tail = read_exact(w.reply_fd, 4 * count + 32 * count + node_len)
        if len(tail) < 36 * count + node_len:
            raise EOFError(f"encoder process {w.proc.pid} exited")
        w.pending -= 1
        out = job.slot * self.slot_size + self.in_size
        blob = bytes(self._view[out : out + used])  # the slot is free again at once
        self._free.append(job.slot)
        job.slot = -1
        ends = array("I")
        ends.frombytes(tail[: 4 * count])
        if _BIG:  # pragma: no cover - little-endian hosts only in CI
            ends.byteswap()
        if (count and ends[-1] != used) or media > count * self.chunk_size:
            raise RuntimeError(f"encoder process {w.proc.pid}: answer does not match the job")
        return EncodedRun.from_blob(blob, ends.tolist(), tail[4 * count : 36 * count], media, self.chunk_size,
                     tail[36 * count :] or None)

    def close(self) -> None:
        """Stop the workers (their job pipes close; they exit) and free the shared memory."""
        workers, self._workers = self._workers, []
        stop_all(workers)
        self._shm.close()


class ProcessJob:
    """A job in flight in an encoder process; :meth:`result` never fails for the worker's sake."""

    __slots__ = ("fallback", "pool", "slot", "worker")

    def __init__(self, pool: EncoderProcesses, worker: Worker, slot: int, fallback: Callable[[], EncodedRun]) -> None:
        self.pool = pool
        self.worker = worker
        self.slot = slot
        self.fallback = fallback  # the writer's own encoding of the same chunks

    def done(self) -> bool:
        """True when the answer can be read without waiting (or the worker is gone)."""
        if self.worker.dead:
            return True
        poller = select.poll()
        poller.register(self.worker.reply_fd, select.POLLIN)
        return bool(poller.poll(0))

    def result(self) -> EncodedRun:
        """The encoded job: the worker's answer, or the writer's own encoding if the worker failed."""
        try:
            return self.pool._collect(self)
        except (OSError, EOFError, RuntimeError, ValueError) as exc:
            w = self.worker
            if not w.dead:
                self.pool._failed(w, str(exc) or type(exc).__name__)
            if self.slot >= 0:  # a dead worker's slot: nobody writes it any more
                self.pool._free.append(self.slot)
                self.slot = -1
            return self.fallback()
