"""Read-only FUSE file system over an image (mfusepy on libfuse3).

The mount shows, flat in its root:

* ``disk.raw`` — the whole media (size = media size);
* ``pN-TYPE-START.raw`` — one file per partition found in an MBR or GPT table (``N`` as in
  ``forensimg partitions``, ``TYPE`` the file system Sleuth Kit finds there or the partition type,
  ``START`` the first sector), e.g. ``p1-fat16-2048.raw``, ``p2-ext4-8192.raw``;
* ``info.json`` — the image's metadata (``ImageInfo.to_dict()``), whether zero-fill is on, the files.

Everything is strictly read-only: the mount is made ``ro``, ``open`` refuses write flags with ``EROFS``
and every mutating operation answers ``EROFS``. Reads go through :meth:`Image.read_at` (thread-safe; the
FUSE loop is multithreaded) and fail closed: a read covering a corrupt chunk returns ``EIO`` and logs the
chunk, unless the image was opened with ``zero_fill=True`` (then zeros, recorded in ``image.faults``).
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

if TYPE_CHECKING:
    from forensimg.fs.tsk import Partition
    from forensimg.image import Image

__all__ = ["INSTALL_HINT", "ImageFS", "MountFile", "build_files", "load_mfusepy", "serve", "set_cache_budget"]

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
) -> Any:
    """The FUSE operations object for ``image`` showing ``files`` (see :func:`build_files`)."""
    global _IMAGEFS
    if _IMAGEFS is None:
        _IMAGEFS = _make_class()
    return _IMAGEFS(image, files, on_ready=on_ready)


_IMAGEFS: type | None = None


def _make_class() -> type:
    mfusepy = load_mfusepy()
    FuseOSError = mfusepy.FuseOSError

    def erofs(*_args: Any, **_kw: Any) -> int:
        raise FuseOSError(errno.EROFS)

    class _ImageFS(mfusepy.Operations):  # type: ignore[misc, name-defined]
        use_ns = True

        def __init__(self, image: Image, files: list[MountFile], *, on_ready: Callable[[], None] | None) -> None:
            self.image = image
            self.files = {"/" + f.name: f for f in files}
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
            if path not in self.files:
                raise FuseOSError(errno.ENOENT)
            if flags & _WRITE_FLAGS:
                raise FuseOSError(errno.EROFS)
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            if not getattr(self.tls, "pinned", False):
                _pin_thread_state()
                self.tls.pinned = True
            f = self.files.get(path)
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
    single_threaded: bool = False,
) -> None:
    """Mount and serve until unmounted (blocks; multithreaded FUSE loop, ``ro``).

    Args:
        image: the open image (zero-fill decided when it was opened).
        files: from :func:`build_files`.
        mountpoint: an existing empty folder.
        allow_other: let other users read the mount (needs ``user_allow_other`` for non-root).
        on_ready: called once the kernel mount is live (from FUSE's ``init``).
        single_threaded: serve one request at a time on the calling thread (less CPU per request, no
            overlap between concurrent readers); the default is libfuse's multithreaded loop.

    Raises:
        MountError: the mount could not be made.
    """
    mfusepy = load_mfusepy()
    ops = ImageFS(image, files, on_ready=on_ready)
    name = os.path.basename(os.fspath(image.info.segments[0])) if image.info.segments else "image"
    fsname = "forensimg:" + re.sub(r"[,\s\\]", "_", name)
    try:
        mfusepy.FUSE(
            ops,
            mountpoint,
            foreground=True,
            nothreads=single_threaded,
            ro=True,
            allow_other=allow_other,
            fsname=fsname,
            subtype="forensimg",
            default_permissions=True,
            kernel_cache=True,  # the media never changes while mounted: keep pages across opens
            debug=debug,
        )
    except RuntimeError as exc:
        raise MountError(f"cannot mount on '{mountpoint}' (libfuse error {exc})", path=mountpoint) from None
