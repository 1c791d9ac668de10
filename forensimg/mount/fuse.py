"""Read-only FUSE file system over an image (mfusepy on libfuse3).

The mount shows, flat in its root:

* ``disk.raw`` — the whole media (size = media size);
* ``pN-TYPE-START.raw`` — one file per partition found in an MBR or GPT table (``N`` as in
  ``forensimg partitions``, ``TYPE`` the file system Sleuth Kit finds there or the partition type,
  ``START`` the first sector), e.g. ``p1-fat16-2048.raw``, ``p2-ext4-8192.raw``;
* ``info.json`` — the image's metadata (``ImageInfo.to_dict()``), whether zero-fill is on, the files.

Everything is strictly read-only: the mount is made ``ro``, ``open`` refuses write flags with ``EROFS``
and every mutating operation answers ``EROFS``. Reads go through :meth:`Image.read_at` (thread-safe, so the
multithreaded FUSE loop may be used) and fail closed: a read covering a corrupt chunk returns ``EIO`` and
logs the chunk, unless the image was opened with ``zero_fill=True`` (then zeros, recorded in
``image.faults``). The kernel keeps pages it has read (``kernel_cache``: the media never changes), but
never an error: a read that failed reaches the server again the next time.

The FUSE loop: by default forensimg's own loop on libfuse 3 (:mod:`forensimg.mount.loop`): one request
at a time, polling ``/dev/fuse`` for up to ``poll_us`` (100 µs) after each reply before it sleeps, which
spares a reader that waits for each answer the wake-up of the server (one ``O_DIRECT`` reader of random
4 KiB pages: 1.8x ewfmount's rate; four readers 1.1-1.2x; ``bench/bench_mount.py``, 2026-11-28).
``multi_threaded=True`` gives libfuse's multithreaded loop, ``False`` libfuse's own single-threaded loop.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from forensimg._version import __version__
from forensimg.errors import ChecksumError, Error, MountError
from forensimg.mount.loop import DEFAULT_POLL_US

if TYPE_CHECKING:
    from forensimg.fs.tsk import Partition
    from forensimg.image import Image

__all__ = [
    "INSTALL_HINT",
    "ImageFS",
    "MountFile",
    "build_files",
    "load_mfusepy",
    "prefault_cache_memory",
    "serve",
    "set_cache_budget",
]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "FUSE support is not installed: install it with `pip install 'forensimg[fuse]'` (mfusepy) and the "
    "libfuse3 library (Debian/Ubuntu: `apt install fuse3`)"
)

MEDIA_NAME = "disk.raw"
INFO_NAME = "info.json"


def load_mfusepy() -> Any:
    """Import mfusepy (it loads libfuse at import time).

    Raises:
        MountError: mfusepy or libfuse is missing (the message says how to install them).
    """
    if "FUSE_LIBRARY_PATH" not in os.environ:
        # mfusepy prefers libfuse 2 when both are installed (ewf-tools pulls in libfuse2 for ewfmount);
        # we mount through libfuse3 unless the caller chose a library explicitly.
        from ctypes.util import find_library

        fuse3 = find_library("fuse3")
        if fuse3:
            os.environ["FUSE_LIBRARY_PATH"] = fuse3
    try:
        import mfusepy
    except (ImportError, OSError) as exc:
        raise MountError(f"{INSTALL_HINT} ({exc})") from None
    return mfusepy


@dataclass(frozen=True, slots=True)
class MountFile:
    """One file of the mount: a window ``[start, start + size)`` of the media, or generated content.

    Attributes:
        name: file name in the mount's root.
        start: media offset of the first byte (media and partition files).
        size: size in bytes.
        kind: ``media``, ``partition`` or ``info``.
        partition: the partition shown, for ``partition`` files.
        content: the bytes of generated files (``info.json``).
    """

    name: str
    start: int
    size: int
    kind: str
    partition: Partition | None = None
    content: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the content)."""
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "offset": self.start, "size": self.size}
        if self.partition is not None:
            d["partition"] = self.partition.to_dict()
        return d


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "part"


def build_files(image: Image, *, zero_fill: bool, source: str | None = None) -> list[MountFile]:
    """The files a mount of ``image`` shows: the media, one per partition, ``info.json``.

    Partitions are found with Sleuth Kit when pytsk3 is installed; without it the mount shows the media
    and ``info.json`` only (and says so in ``info.json``).
    """
    files = [MountFile(MEDIA_NAME, 0, image.size, "media")]
    note = None
    try:
        from forensimg.fs import tsk

        vs = tsk.volume_system(image)
    except Error as exc:
        vs = None
        note = f"partitions not listed: {exc}"
    if vs is not None:
        for p in vs.partitions:
            if not p.allocated or p.offset >= image.size:
                continue
            size = min(p.size, image.size - p.offset)
            kind = p.fs_type or _slug(p.description)
            files.append(MountFile(f"p{p.index}-{kind}-{p.start}.raw", p.offset, size, "partition", p))
    info: dict[str, Any] = {
        "image": image.info.to_dict(),
        "source": source,
        "zero_fill": zero_fill,
        "zero_fill_note": (
            "chunks that fail their check read as zeros (logged)"
            if zero_fill
            else "reads covering a corrupt chunk fail with EIO (logged)"
        ),
        "read_only": True,
        "mounted_at": datetime.now(UTC).isoformat(),
        "tool": f"forensimg {__version__}",
        "partition_table": vs.to_dict() if vs is not None else None,
        "files": [f.to_dict() for f in files],
    }
    if note:
        info["note"] = note
    content = (json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    files.append(MountFile(INFO_NAME, 0, len(content), "info", content=content))
    return files


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _pin_thread_state() -> None:
    """Keep the Python thread state of the current libfuse worker thread alive between callbacks.

    libfuse's worker threads are not Python threads: for every callback ctypes creates a thread state
    (PyGILState_Ensure) and destroys it again when the callback returns, which costs more than a cached
    chunk read. One extra, never released PyGILState_Ensure per worker thread keeps its state for the
    life of the thread (measured in bench/bench_mount.py: about 15-20 µs less CPU per 4 KiB read).
    """
    try:
        import ctypes

        ctypes.pythonapi.PyGILState_Ensure()
    except Exception:  # not CPython, or no pythonapi: only slower
        pass


def ImageFS(
    image: Image,
    files: list[MountFile],
    *,
    on_ready: Callable[[], None] | None = None,
    pin_threads: bool = True,
) -> Any:
    """The FUSE operations object for ``image`` showing ``files`` (see :func:`build_files`).

    ``pin_threads`` keeps a Python thread state on every libfuse worker thread (see
    :func:`_pin_thread_state`); only useful with the multithreaded loop.
    """
    global _IMAGEFS
    if _IMAGEFS is None:
        _IMAGEFS = _make_class()
    return _IMAGEFS(image, files, on_ready=on_ready, pin_threads=pin_threads)


_IMAGEFS: type | None = None


def _make_class() -> type:
    mfusepy = load_mfusepy()
    FuseOSError = mfusepy.FuseOSError

    def erofs(*_args: Any, **_kw: Any) -> int:
        raise FuseOSError(errno.EROFS)

    class _ImageFS(mfusepy.Operations):  # type: ignore[misc, name-defined]
        use_ns = True

        def __init__(
            self,
            image: Image,
            files: list[MountFile],
            *,
            on_ready: Callable[[], None] | None,
            pin_threads: bool = True,
        ) -> None:
            self.image = image
            self.files = {"/" + f.name: f for f in files}
            # file handles: open() returns the index of the file here (never 0), so read() needs no path
            # lookup; handle 0 is what a read without an open (libfuse never does that) would carry
            self.handles: list[MountFile | None] = [None, *files]
            self.handle_of = {"/" + f.name: i for i, f in enumerate(files, 1)}
            self.pin_threads = pin_threads
            self.on_ready = on_ready
            self.uid, self.gid = os.getuid(), os.getgid()
            acquired = image.info.acquired_at
            self.time_ns = int((acquired.timestamp() if acquired else time.time()) * 1e9)
            self.tls = threading.local()

        # -- lifecycle ----------------------------------------------------------------------------

        def init(self, path: str) -> None:
            if self.on_ready is not None:
                self.on_ready()

        def destroy(self, path: str) -> None:
            log.info("unmounted")

        # -- reading ------------------------------------------------------------------------------

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            t = self.time_ns
            if path == "/":
                mode, size, nlink = stat.S_IFDIR | 0o555, 0, 2
            else:
                f = self.files.get(path)
                if f is None:
                    raise FuseOSError(errno.ENOENT)
                mode, size, nlink = stat.S_IFREG | 0o444, f.size, 1
            return {
                "st_mode": mode,
                "st_nlink": nlink,
                "st_size": size,
                "st_uid": self.uid,
                "st_gid": self.gid,
                "st_atime": t,
                "st_mtime": t,
                "st_ctime": t,
                "st_blocks": (size + 511) // 512,
                "st_blksize": 65536,
            }

        def readdir(self, path: str, fh: int) -> list[str]:
            if path != "/":
                raise FuseOSError(errno.ENOTDIR)
            return [".", "..", *(p[1:] for p in self.files)]

        def access(self, path: str, amode: int) -> int:
            if path != "/" and path not in self.files:
                raise FuseOSError(errno.ENOENT)
            if amode & os.W_OK:
                raise FuseOSError(errno.EROFS)
            return 0

        def open(self, path: str, flags: int) -> int:
            fh = self.handle_of.get(path)
            if fh is None:
                raise FuseOSError(errno.ENOENT)
            if flags & _WRITE_FLAGS:
                raise FuseOSError(errno.EROFS)
            return fh

        def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
            # the hot path (one call per 4 KiB page for O_DIRECT readers): the handle from open() names
            # the file, no path lookup; no exception unless the read fails
            if self.pin_threads and not getattr(self.tls, "pinned", False):
                _pin_thread_state()
                self.tls.pinned = True
            f = self.handles[fh] if 0 < fh < len(self.handles) else self.files.get(path or "")
            if f is None:
                raise FuseOSError(errno.ENOENT)
            if offset >= f.size or size <= 0:
                return b""
            n = min(size, f.size - offset)
            if f.content is not None:
                return f.content[offset : offset + n]
            try:
                return self.image.read_at(f.start + offset, n)
            except ChecksumError as exc:
                log.error(
                    "EIO: read of %s bytes %d..%d covers corrupt chunk %s (media bytes %s..%s): %s",
                    f.name, offset, offset + n - 1, exc.chunk, exc.media_start,
                    None if exc.media_end is None else exc.media_end - 1, exc,
                )  # fmt: skip
                raise FuseOSError(errno.EIO) from None
            except Error as exc:
                log.error("EIO: read of %s at %d failed: %s", f.name, offset, exc)
                raise FuseOSError(errno.EIO) from None

        def release(self, path: str, fh: int) -> int:
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            total = sum(f.size for f in self.files.values())
            return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": (total + 4095) // 4096, "f_bfree": 0,
                    "f_bavail": 0, "f_files": len(self.files), "f_ffree": 0, "f_namemax": 255}  # fmt: skip

        def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
            raise FuseOSError(errno.ENODATA)

        def listxattr(self, path: str) -> list[str]:
            return []

        # -- every mutation is refused ------------------------------------------------------------

        chmod = chown = create = link = mkdir = mknod = rename = rmdir = symlink = erofs
        truncate = unlink = utimens = write = setxattr = removexattr = erofs

    return _ImageFS


class _LeanRead:
    """A leaner libfuse ``read`` callback than mfusepy's generic one, installed for one :func:`serve`.

    mfusepy turns every callback argument into a ctypes object (the path into ``bytes`` then ``str``, the
    buffer and ``fuse_file_info`` into pointer objects) and goes through a generic exception wrapper; for
    a 4 KiB read that is a measurable part of the request (``bench/bench_mount.py``). This callback takes
    plain integers, reads the file handle straight from ``fuse_file_info`` (its offset from mfusepy's own
    declaration of the struct, so it follows the libfuse 2/3 layout mfusepy loaded), calls the same
    ``read`` method and copies the bytes into libfuse's buffer. Errors keep mfusepy's contract: an
    ``OSError`` becomes ``-errno``, any other exception ``-EIO`` (logged), and a ``BaseException`` stops
    the loop and is raised again when it returns.

    :func:`_hook_main` puts :attr:`field` in mfusepy's callback table. If this mfusepy does not have the
    expected names, :attr:`field` is ``None`` and mfusepy's own callback is used.
    """

    def __init__(self, mfusepy: Any, ops: Any) -> None:
        import ctypes

        self.mfusepy = mfusepy
        self.critical: BaseException | None = None
        self.field: Any = None
        """The callback as a ``read`` entry of mfusepy's table (``None``: this mfusepy's layout is not the one
        expected, so mfusepy's own callback stays)."""
        ops_type = getattr(mfusepy, "fuse_operations", None)
        fi_type = getattr(mfusepy, "fuse_file_info", None)
        if ops_type is None or fi_type is None or not hasattr(mfusepy, "fuse_main_real"):
            return
        proto = dict((f[0], f[1]) for f in getattr(ops_type, "_fields_", ()) if len(f) >= 2).get("read")
        fh_field = getattr(fi_type, "fh", None)
        if proto is None or fh_field is None or getattr(fh_field, "size", 0) != 8:
            return
        fh_offset = fh_field.offset
        fh_at = ctypes.c_uint64.from_address
        string_at = ctypes.string_at
        memmove = ctypes.memmove
        read = ops.read

        def lean_read(path: int | None, buf: int, size: int, offset: int, fip: int | None) -> int:
            try:
                fh = fh_at(fip + fh_offset).value if fip else 0
                name = None if fh else string_at(path).decode("utf-8", "surrogateescape") if path else None
                data = read(name, size, offset, fh)
                n = len(data)
                if n > size:  # never write past libfuse's buffer
                    return -errno.EIO
                if n:
                    memmove(buf, data, n)
                return n
            except OSError as exc:
                return -exc.errno if isinstance(exc.errno, int) and exc.errno > 0 else -errno.EIO
            except Exception:
                log.exception("EIO: unexpected error in read at %d", offset)
                return -errno.EIO
            except BaseException as exc:  # stop the loop; raised again once FUSE() returns
                self.critical = exc
                mfusepy.fuse_exit()
                return -errno.EIO

        self._callback = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64, ctypes.c_void_p
        )(lean_read)
        self.field = ctypes.cast(self._callback, proto)



def _hook_main(mfusepy: Any, read_field: Any, poll_us: int | None) -> Callable[[], None]:
    """Wrap mfusepy's module-level ``fuse_main_real`` for one ``FUSE()`` call; returns the undo function.

    mfusepy builds the callback table inside ``FUSE()`` and hands it to ``fuse_main_real``. The wrapper
    puts ``read_field`` (the lean read callback, if any) in place of mfusepy's ``read`` entry, and with
    ``poll_us`` not ``None`` runs forensimg's request loop (:func:`forensimg.mount.loop.run`) instead of
    libfuse's.
    """
    from forensimg.mount import loop

    real_main = mfusepy.fuse_main_real
    lib = mfusepy._libfuse

    def fuse_main_real(argc: Any, argv: Any, fuse_ops_p: Any, size: Any, user_data: Any) -> Any:
        if read_field is not None and fuse_ops_p.contents.read:  # mfusepy set a read callback: ours instead
            fuse_ops_p.contents.read = read_field
        if poll_us is not None:
            return loop.run(lib, [argv[i] for i in range(argc)], fuse_ops_p, size, user_data, poll_us=poll_us)
        return real_main(argc, argv, fuse_ops_p, size, user_data)

    mfusepy.fuse_main_real = fuse_main_real

    def undo() -> None:
        mfusepy.fuse_main_real = real_main

    return undo


def _own_loop_available(mfusepy: Any) -> bool:
    from forensimg.mount import loop

    lib = getattr(mfusepy, "_libfuse", None)
    version = (getattr(mfusepy, "fuse_version_major", 0) or 0, getattr(mfusepy, "fuse_version_minor", 0) or 0)
    return lib is not None and hasattr(mfusepy, "fuse_main_real") and loop.available(lib, version)


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
PREFAULT_LIMIT = 256 << 20


def prefault_cache_memory(image: Image, limit: int = PREFAULT_LIMIT) -> int:
    """Touch the memory the decoded-chunk cache will fill, once, before serving (glibc only).

    Every chunk the cache keeps is new memory until the cache is full, and the first touch of each
    4 KiB page of it is a page fault: on a virtual machine that costs several µs per page, more than
    decoding the chunk (``bench/bench_mount.py`` measured 3.6 faults and 10-30 µs of system time per
    4 KiB read while a fresh mount's 64 MiB cache fills). Here the serving process allocates and
    writes that much memory (up to ``limit`` bytes) and frees it again, with glibc told to keep freed
    memory (``M_TRIM_THRESHOLD``) instead of handing it back to the kernel, to keep allocations of
    chunk buffers on its heap (``M_MMAP_THRESHOLD``) and to serve every thread from that heap
    (``M_ARENA_MAX`` 1): later chunk buffers reuse the touched pages. The cost moves to the start of
    the mount (about 80 ms for 64 MiB here) and the process keeps that memory, which the cache would
    use anyway. Call it in the serving process before its FUSE loop starts threads. Without glibc
    (no ``mallopt``) nothing happens.

    Returns:
        The number of bytes touched (0 when nothing was done).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return 0
    chunk = image.chunk_size
    # the cache itself, plus room for what lives beside it (fragmentation, buffers being decoded)
    nbytes = min(limit, image.cache_chunks * (chunk + 64) * 9 // 8 + (8 << 20))
    try:
        ok = mallopt(_M_TRIM_THRESHOLD, min((1 << 31) - 1, nbytes + (64 << 20)))
        # a chunk buffer larger than the mmap threshold would be a fresh mmap (and fresh faults) every time
        ok = ok and mallopt(_M_MMAP_THRESHOLD, min(32 << 20, max(1 << 20, 4 * (chunk + 4096))))
        ok = ok and mallopt(_M_ARENA_MAX, 1)
    except (ctypes.ArgumentError, OSError):
        return 0
    if not ok:
        return 0
    block = min(nbytes, max(chunk + 64, 32768))
    blocks = [b"\0" * block for _ in range(nbytes // block)]  # b"\0" * n writes every byte (calloc may not)
    touched = len(blocks) * block
    del blocks
    return touched


def set_cache_budget(image: Image, megabytes: int) -> int:
    """Let the image keep up to ``megabytes`` MiB of decoded chunks (LRU) for the life of a mount.

    A mount serves many small random reads (4 KiB pages) from the same chunks; the default cache of an
    opened image (32 chunks) is sized for sequential reading. Returns the number of chunks kept.
    """
    chunks = max(32, (megabytes << 20) // max(1, image.chunk_size))
    # only raised here, never lowered
    image.set_cache_chunks(max(image.cache_chunks, chunks))
    return chunks


def serve(
    image: Image,
    files: list[MountFile],
    mountpoint: str,
    *,
    allow_other: bool = False,
    on_ready: Callable[[], None] | None = None,
    debug: bool = False,
    single_threaded: bool | None = None,
    multi_threaded: bool | None = None,
    lean_read: bool = True,
    prefault: bool = True,
    poll_us: int = DEFAULT_POLL_US,
) -> None:
    """Mount and serve until unmounted (blocks; ``ro``).

    Args:
        image: the open image (zero-fill decided when it was opened).
        files: from :func:`build_files`.
        mountpoint: an existing empty folder.
        allow_other: let other users read the mount (needs ``user_allow_other`` for non-root).
        on_ready: called once the kernel mount is live (from FUSE's ``init``).
        multi_threaded: ``None`` (default): forensimg's request loop (:mod:`forensimg.mount.loop`; where
            libfuse is not version 3, libfuse's single-threaded loop); ``True``: libfuse's multithreaded
            loop; ``False``: libfuse's single-threaded loop (one request at a time on the calling thread).
        single_threaded: the opposite of ``multi_threaded`` (kept for callers of the earlier API);
            ``None`` leaves ``multi_threaded`` in charge.
        lean_read: serve ``read`` through a leaner ctypes callback than mfusepy's (see
            :class:`_LeanRead`); ``False`` keeps mfusepy's.
        prefault: touch the decoded-chunk cache's memory before serving (see
            :func:`prefault_cache_memory`), so that filling the cache costs no page faults.
        poll_us: forensimg's loop: how long to keep asking for the next request after serving one
            (µs; 0: sleep at once). See :mod:`forensimg.mount.loop`.

    Raises:
        MountError: the mount could not be made.
    """
    if single_threaded is not None:
        multi_threaded = not single_threaded
    if poll_us < 0:
        raise ValueError("poll_us must not be negative")
    mfusepy = load_mfusepy()
    own_loop = multi_threaded is None and _own_loop_available(mfusepy)
    threaded = bool(multi_threaded)
    ops = ImageFS(image, files, on_ready=on_ready, pin_threads=threaded)
    name = os.path.basename(os.fspath(image.info.segments[0])) if image.info.segments else "image"
    fsname = "forensimg:" + re.sub(r"[,\s\\]", "_", name)
    if prefault:
        prefault_cache_memory(image)
    lean = _LeanRead(mfusepy, ops) if lean_read else None
    if lean is not None and lean.field is None:
        lean = None
        log.info("mfusepy's read callback kept (this mfusepy's layout is not the one expected)")
    kind = "forensimg" if own_loop else "multithreaded" if threaded else "single-threaded"
    log.info("reads served through the %s read callback, %s FUSE loop", "lean" if lean else "mfusepy's", kind)
    undo = _hook_main(mfusepy, None if lean is None else lean.field, poll_us if own_loop else None)
    try:
        mfusepy.FUSE(
            ops,
            mountpoint,
            foreground=True,
            nothreads=not threaded,
            ro=True,
            allow_other=allow_other,
            fsname=fsname,
            subtype="forensimg",
            default_permissions=True,
            # the media never changes while mounted: keep pages across opens. Errors are never cached:
            # a page whose read failed (EIO) is not in the page cache, so the next read asks again.
            kernel_cache=True,
            debug=debug,
        )
    except RuntimeError as exc:
        raise MountError(f"cannot mount on '{mountpoint}' (libfuse error {exc})", path=mountpoint) from None
    finally:
        undo()
    if lean is not None and lean.critical is not None:
        raise lean.critical
