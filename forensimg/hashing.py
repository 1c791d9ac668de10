"""Whole-media hashing in one pass: MD5, SHA-1 and SHA-256 (any subset) from one read.

:class:`MultiHasher` runs each digest on its own thread, fed large immutable blocks through a bounded
queue. hashlib releases the GIL while it hashes buffers larger than 2 KiB, so the digests run concurrently
with each other and with the caller's reading, compressing and writing: on two cores, MD5 and SHA-1 of
the same data finish in about the time of the slower one.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from forensimg.errors import UsageError

if TYPE_CHECKING:
    from forensimg.image import Image

__all__ = [
    "ALGORITHMS",
    "DEFAULT_HASHES",
    "MultiHasher",
    "hash_file",
    "hash_file_direct",
    "hash_image",
    "normalize_algorithms",
    "update_all",
]

ALGORITHMS: tuple[str, ...] = ("md5", "sha1", "sha256", "sha512")
"""Algorithms accepted everywhere (lower-case hashlib names)."""

DEFAULT_HASHES: tuple[str, ...] = ("md5", "sha1")

_ALIASES = {"sha-1": "sha1", "sha-256": "sha256", "sha-512": "sha512", "md-5": "md5"}

_FLUSH = 1 << 20  # small updates are gathered into blocks of this size before they go to the threads


def normalize_algorithms(names: Iterable[str] | str) -> tuple[str, ...]:
    """Turn ``"MD5,sha-1"`` or ``["md5", "SHA256"]`` into ``("md5", "sha1")``-style names, in order.

    Raises:
        UsageError: an unknown algorithm.
    """
    if isinstance(names, str):
        names = names.split(",")
    out: list[str] = []
    for raw in names:
        n = raw.strip().lower()
        if not n:
            continue
        n = _ALIASES.get(n, n)
        if n not in ALGORITHMS:
            raise UsageError(f"unknown hash algorithm '{raw}' (choose from {', '.join(ALGORITHMS)})")
        if n not in out:
            out.append(n)
    return tuple(out)


class _Worker(threading.Thread):
    def __init__(self, name: str, depth: int, done: threading.Condition) -> None:
        super().__init__(name=f"forensimg-hash-{name}", daemon=True)
        self.h = hashlib.new(name)
        self.q: queue.Queue[bytes | memoryview | tuple[bytes, ...] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.done = 0  # items hashed (MultiHasher reuses a gathering buffer once every worker is past it)
        self._cond = done

    def run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            try:
                if isinstance(item, tuple):
                    for part in item:
                        self.h.update(part)
                else:
                    self.h.update(item)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                self.error = exc
            with self._cond:
                self.done += 1
                self._cond.notify_all()


class MultiHasher:
    """Feed several hash algorithms from one stream of data.

    Args:
        algorithms: names such as ``("md5", "sha1")``.
        threaded: run each algorithm on its own thread (default). Worth it from about 64 KiB per update.
        queue_depth: blocks that may wait per algorithm; bounds the memory held.

    ``update`` takes ownership of nothing: memoryviews and bytearrays are copied, bytes are shared.
    Call :meth:`hexdigests` (or :meth:`digests`) once at the end; it waits for the threads.
    """

    def __init__(self, algorithms: Sequence[str] | str, *, threaded: bool = True, queue_depth: int = 8) -> None:
        self.algorithms = normalize_algorithms(algorithms)
        self._threaded = threaded and len(self.algorithms) > 0
        self._pending = bytearray()
        self._result: dict[str, bytes] | None = None
        self.bytes_hashed = 0
        self._sent = 0  # items queued to every worker
        self._ring: list[tuple[bytearray, int]] = []  # gathering buffers and the item number they last held
        self._ring_next = 0
        self._ring_size = queue_depth + 2
        self._done = threading.Condition()
        if self._threaded:
            self._workers = [_Worker(a, queue_depth, self._done) for a in self.algorithms]
            for w in self._workers:
                w.start()
        else:
            self._plain = [hashlib.new(a) for a in self.algorithms]

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add data to every digest."""
        if self._result is not None:
            raise ValueError("MultiHasher already finished")
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        if n == 0:
            return
        self.bytes_hashed += n
        if not self._threaded:
            for h in self._plain:
                h.update(data)
            return
        if n < _FLUSH:
            self._pending += data
            if len(self._pending) >= _FLUSH:
                self._send(bytes(self._pending))
                self._pending = bytearray()
            return
        if self._pending:
            self._send(bytes(self._pending))
            self._pending = bytearray()
        self._send(data if isinstance(data, bytes) else bytes(data))

    def update_blocks(self, blocks: Sequence[bytes]) -> None:
        """Add several immutable blocks, in order, without joining or copying them.

        The threads hash each block in turn (hashlib releases the GIL from 2 KiB): e.g. the decoded
        chunks of one write, shared with the writer instead of copied into one buffer.
        """
        if self._result is not None:
            raise ValueError("MultiHasher already finished")
        if not self._threaded:
            for b in blocks:
                self.update(b)
            return
        if not all(isinstance(b, bytes) for b in blocks):
            raise TypeError("update_blocks takes bytes (immutable) only")
        n = sum(len(b) for b in blocks)
        if n == 0:
            return
        self.bytes_hashed += n
        if self._pending:
            self._send(bytes(self._pending))
            self._pending = bytearray()
        item = tuple(blocks)
        self._sent += 1
        for w in self._workers:
            w.q.put(item)

    def update_gathered(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """Add the concatenation of ``parts`` (e.g. the decoded chunks of a verify block), copied into one of
        a few gathering buffers the hasher reuses once its threads are done with them.

        ``b"".join(parts)`` would allocate a fresh block each time; on the benchmark VM first-touching those
        pages cost 0.7 s per GiB, as much as the memory copy ten times over.
        """
        if self._result is not None:
            raise ValueError("MultiHasher already finished")
        n = sum(len(p) for p in parts)
        if not self._threaded or n < _FLUSH:
            for p in parts:
                self.update(p)
            return
        if self._pending:
            self._send(bytes(self._pending))
            self._pending = bytearray()
        self.bytes_hashed += n
        k = self._ring_next
        self._ring_next = (k + 1) % self._ring_size
        if k < len(self._ring):
            buf, last = self._ring[k]
            # every thread must be past the item this buffer held; with depth + 2 buffers and each thread
            # taking its items in order, the queue's own back-pressure already ensures it: a safety net
            with self._done:
                self._done.wait_for(lambda: all(w.done >= last for w in self._workers))
            if len(buf) < n:
                buf = bytearray(n)
        else:
            buf = bytearray(n)
            self._ring.append((buf, 0))
        view = memoryview(buf)
        pos = 0
        for p in parts:
            m = len(p)
            view[pos : pos + m] = p
            pos += m
        self._send(view[:n])
        self._ring[k] = (buf, self._sent)

    def update_borrowed(self, block: bytes | bytearray | memoryview) -> int:
        """Add ``block`` without copying it; the caller keeps it unchanged until :meth:`wait` returns for the
        number returned here (e.g. a shared-memory slot that is reused afterwards)."""
        if self._result is not None:
            raise ValueError("MultiHasher already finished")
        if not self._threaded:
            self.update(block)
            return self._sent
        if self._pending:
            self._send(bytes(self._pending))
            self._pending = bytearray()
        n = len(block) if not isinstance(block, memoryview) else block.nbytes
        if n:
            self.bytes_hashed += n
            self._send(block if isinstance(block, bytes | memoryview) else memoryview(block))
        return self._sent

    def wait(self, ticket: int) -> None:
        """Return once every thread has hashed the block :meth:`update_borrowed` returned ``ticket`` for."""
        if self._threaded:
            with self._done:
                self._done.wait_for(lambda: all(w.done >= ticket for w in self._workers))

    def _send(self, block: bytes | memoryview) -> None:
        self._sent += 1
        for w in self._workers:
            w.q.put(block)

    def digests(self) -> dict[str, bytes]:
        """Finish and return raw digests. Further calls return the same values."""
        if self._result is None:
            if self._threaded:
                if self._pending:
                    self._send(bytes(self._pending))
                    self._pending = bytearray()
                for w in self._workers:
                    w.q.put(None)
                for w in self._workers:
                    w.join()
                    if w.error is not None:
                        raise w.error
                self._result = {w.h.name: w.h.digest() for w in self._workers}
            else:
                self._result = {h.name: h.digest() for h in self._plain}
            self._result = {a: self._result[a] for a in self.algorithms}
        return dict(self._result)

    def hexdigests(self) -> dict[str, str]:
        """Finish and return lower-case hex digests keyed by algorithm."""
        return {k: v.hex() for k, v in self.digests().items()}

    def digests_with_suffix(self, suffix: bytes | bytearray | memoryview) -> dict[str, bytes]:
        """Raw digests of (everything given so far + ``suffix``), without feeding ``suffix`` for good.

        Finishes the hasher like :meth:`digests` (whose plain digests stay available), then hashes the
        suffix on a copy of each algorithm's state: e.g. the hashes of the media as a format that stores
        whole sectors holds it, zero-padded, beside the hashes of the exact media, from one read.
        """
        self.digests()
        states = [w.h for w in self._workers] if self._threaded else self._plain
        out: dict[str, bytes] = {}
        for h in states:
            c = h.copy()
            c.update(suffix)
            out[h.name] = c.digest()
        return {a: out[a] for a in self.algorithms}

    def hexdigests_with_suffix(self, suffix: bytes | bytearray | memoryview) -> dict[str, str]:
        """Hex form of :meth:`digests_with_suffix`."""
        return {k: v.hex() for k, v in self.digests_with_suffix(suffix).items()}

    def close(self) -> None:
        """Stop the threads without needing the result."""
        if self._result is None:
            self.digests()

    def __enter__(self) -> MultiHasher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def hash_image(
    image: Image,
    algorithms: Sequence[str] | str = DEFAULT_HASHES,
    *,
    block_size: int = 4 << 20,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, str]:
    """Hash the whole media of ``image`` (fails closed on a bad chunk unless opened with zero-fill).

    Returns:
        ``{"md5": hex, ...}``.
    """
    hasher = MultiHasher(algorithms)
    pos = 0
    size = image.size
    try:
        while pos < size:
            data = image.read_at(pos, block_size)
            if not data:
                break
            hasher.update(data)
            pos += len(data)
            if on_progress is not None:
                on_progress(pos, size)
    finally:
        result = hasher.hexdigests()
    return result


def update_all(h: Any, items: Iterable[Any]) -> None:
    """Feed every buffer of ``items`` to the hash object ``h``, in order (for a helper thread: hashlib
    releases the GIL for large buffers)."""
    for b in items:
        h.update(b)


def hash_file_direct(path: str, algorithm: str = "sha256", *, block_size: int = 8 << 20) -> str:
    """Hex digest of a file's bytes read with ``O_DIRECT`` (from the disk, not the page cache).

    For a file just written without the page cache (or one whose pages should not be refilled): the next
    block is read by a helper thread while the current one is hashed. Falls back to :func:`hash_file` where
    the file system refuses ``O_DIRECT``.
    """
    name = normalize_algorithms([algorithm])[0]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return hash_file(path, (name,))[name]
    h = hashlib.new(name)
    bufs = [mmap.mmap(-1, block_size), mmap.mmap(-1, block_size)]  # page-aligned, as O_DIRECT needs
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="forensimg-direct-read") as pool:
            off = 0
            job = pool.submit(os.preadv, fd, [bufs[0]], 0)
            k = 0
            while True:
                try:
                    n = job.result()
                except OSError as exc:
                    if exc.errno == errno.EINVAL and off == 0:  # O_DIRECT reads refused after all
                        return hash_file(path, (name,))[name]
                    raise
                if n <= 0:
                    break
                off += n
                job = pool.submit(os.preadv, fd, [bufs[1 - k]], off)
                h.update(memoryview(bufs[k])[:n])
                k = 1 - k
    finally:
        os.close(fd)
    return h.hexdigest()


def hash_file(path: str, algorithms: Sequence[str] | str = ("sha256",), *, block_size: int = 4 << 20) -> dict[str, str]:
    """Hash a file's bytes (segment files, reports) with the given algorithms."""
    hasher = MultiHasher(algorithms, threaded=False)
    with open(path, "rb") as f:
        while True:
            block = f.read(block_size)
            if not block:
                break
            hasher.update(block)
    return hasher.hexdigests()
