"""Evidence sources: the ONLY module that opens an evidence device or file (house rule 7).

Every descriptor on evidence is opened here with ``O_RDONLY | O_NOATIME | O_CLOEXEC``. ``O_NOATIME``
is refused with ``EPERM`` when the caller neither owns the file nor has ``CAP_FOWNER``; only then the
source is opened without it, and :attr:`Source.noatime` says so (the report records it).

A second descriptor with ``O_DIRECT`` is opened on demand for the sector-by-sector fallback after a
read error: buffered reads of a block device fail a whole page (4 KiB) around one bad 512-byte sector,
while an ``O_DIRECT`` read into an aligned buffer isolates the single sector (Linux ``open(2)``,
"O_DIRECT": buffer, length and offset aligned to the logical block size).

Standard input (``-``) is a stream of unknown size, read front to back with :meth:`Source.read_stream`.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import stat
import struct
from dataclasses import dataclass
from typing import Any

from forensimg.errors import ImageNotFoundError, SourceError, SourceReadError, UsageError

__all__ = [
    "BLKGETSIZE64",
    "BLKPBSZGET",
    "BLKROGET",
    "BLKROSET",
    "BLKSSZGET",
    "CDROMMULTISESSION",
    "CDROMREADTOCENTRY",
    "CDROMREADTOCHDR",
    "Source",
    "open_control",
    "open_source",
    "parse_multisession",
    "parse_toc_entry",
    "parse_toc_header",
]

log = logging.getLogger(__name__)

# Linux <linux/fs.h> block-device ioctls.
BLKROSET = 0x125D  # _IO(0x12, 93): set the device read-only (int, 1 = ro)
BLKROGET = 0x125E  # _IO(0x12, 94): get the read-only flag
BLKSSZGET = 0x1268  # _IO(0x12, 104): logical sector size
BLKPBSZGET = 0x127B  # _IO(0x12, 123): physical sector size
BLKGETSIZE64 = 0x80081272  # _IOR(0x12, 114, size_t): size in bytes

# Linux <linux/cdrom.h> ioctls: the table of contents of a CD, as the drive reports it. They read the
# TOC only (no medium access beyond what the drive does on its own) and never write.
CDROMREADTOCHDR = 0x5305  # struct cdrom_tochdr {u8 cdth_trk0, cdth_trk1}: first and last track
CDROMREADTOCENTRY = 0x5306  # struct cdrom_tocentry: one track's start (asked for as an LBA)
CDROMMULTISESSION = 0x5310  # struct cdrom_multisession: start of the last session, xa flag
CDROM_LBA = 0x01
CDROM_LEADOUT = 0xAA
CDROM_DATA_TRACK = 0x04  # control nibble bit: a data (not audio) track
# cdrom_tocentry: track u8, adr:4|ctrl:4 u8 (adr in the low nibble with GCC on little-endian), format u8,
# pad, union cdrom_addr (int lba, 4-byte aligned), datamode u8, pad to 12 bytes.
_TOCENTRY = struct.Struct("=BBBxiB3x")
_TOCHDR = struct.Struct("=BB")
_MULTISESSION = struct.Struct("=iBB2x")  # union cdrom_addr addr; u8 xa_flag; u8 addr_format

_BASE_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)
_DIRECT = getattr(os, "O_DIRECT", 0)


def _open_ro(path: str, extra: int = 0) -> tuple[int, bool]:
    """Open ``path`` read-only with O_NOATIME; fall back without it only on EPERM. Returns (fd, noatime)."""
    try:
        return os.open(path, _BASE_FLAGS | _NOATIME | extra), bool(_NOATIME)
    except PermissionError:
        if not _NOATIME:
            raise
        log.info("O_NOATIME refused for %s (not the owner); opening without it", path)
        return os.open(path, _BASE_FLAGS | extra), False


def open_control(path: str) -> int:
    """Open a block device (or a partition of it) read-only, for ioctls only (BLKROGET/BLKROSET).

    Raises:
        OSError: the node cannot be opened.
    """
    fd, _ = _open_ro(path)
    return fd


def _ioctl_int(fd: int, req: int, fmt: str = "i") -> int:
    buf = bytearray(struct.calcsize(fmt))
    fcntl.ioctl(fd, req, buf, True)
    return int(struct.unpack(fmt, buf)[0])


@dataclass
class _Geometry:
    size: int | None
    logical: int
    physical: int | None


class Source:
    """An open evidence source: a block device, a regular file, or standard input.

    Attributes:
        path: the path as given (``-`` for standard input).
        kind: ``block``, ``file`` or ``stream``.
        size: size in bytes (``None`` for a stream).
        sector_size: logical sector size (the device's, or 512 for files and streams).
        physical_sector_size: physical sector size where the device reports one.
        noatime: whether ``O_NOATIME`` was in effect.
        st_rdev: device number for a block device (0 otherwise); st_dev/st_ino for a file.
    """

    def __init__(self, path: str, fd: int, kind: str, noatime: bool, st: os.stat_result | None) -> None:
        self.path = path
        self.kind = kind
        self.noatime = noatime
        self._fd: int | None = fd
        self._direct_fd: int | None = None
        self._direct_failed = False
        self._stream_eof = False
        self.st_rdev = st.st_rdev if (st is not None and kind == "block") else 0
        self.st_dev = st.st_dev if st is not None else 0
        self.st_ino = st.st_ino if st is not None else 0
        geo = self._geometry(st)
        self.size = geo.size
        self.sector_size = geo.logical
        self.physical_sector_size = geo.physical

    def _geometry(self, st: os.stat_result | None) -> _Geometry:
        assert self._fd is not None
        if self.kind == "block":
            size = _ioctl_int(self._fd, BLKGETSIZE64, "Q")
            try:
                logical = _ioctl_int(self._fd, BLKSSZGET)
            except OSError:
                logical = 512
            try:
                physical: int | None = _ioctl_int(self._fd, BLKPBSZGET, "I")
            except OSError:
                physical = None
            return _Geometry(size, logical, physical)
        if self.kind == "file":
            assert st is not None
            return _Geometry(st.st_size, 512, None)
        return _Geometry(None, 512, None)

    @property
    def is_stream(self) -> bool:
        """True for standard input (no size, no random access)."""
        return self.kind == "stream"

    @property
    def fd(self) -> int:
        """The (buffered) read descriptor."""
        if self._fd is None:
            raise ValueError("source is closed")
        return self._fd

    def read_at(self, offset: int, length: int) -> bytes:
        """Read up to ``length`` bytes at ``offset`` (buffered). Short only at the end of the source.

        Raises:
            SourceReadError: the read failed (errno recorded).
        """
        out = bytearray()
        while len(out) < length:
            try:
                data = os.pread(self.fd, length - len(out), offset + len(out))
                if not out and len(data) == length:
                    return data  # the usual case: one read, no copy
            except OSError as exc:
                raise SourceReadError(
                    f"cannot read {length} bytes of '{self.path}': {exc.strerror}",
                    path=self.path,
                    offset=offset,
                    length=length,
                    errno_=exc.errno,
                ) from None
            if not data:
                break
            out += data
        return bytes(out)

    def read_direct(self, offset: int, length: int) -> bytes:
        """Read with ``O_DIRECT`` into an aligned buffer (offset/length multiples of the sector size).

        Falls back to a buffered read when the source does not support ``O_DIRECT`` (e.g. tmpfs).

        Raises:
            SourceReadError: the read failed.
        """
        if self._direct_fd is None and not self._direct_failed and _DIRECT:
            try:
                self._direct_fd, _ = _open_ro(self.path, _DIRECT)
            except OSError:
                self._direct_failed = True
        if self._direct_fd is None:
            return self.read_at(offset, length)
        span = -(-length // mmap.PAGESIZE) * mmap.PAGESIZE
        buf = mmap.mmap(-1, max(span, mmap.PAGESIZE))  # page-aligned, as O_DIRECT requires
        try:
            try:
                n = os.preadv(self._direct_fd, [memoryview(buf)[:length]], offset)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    # O_DIRECT alignment not accepted here: buffered read is the best we can do.
                    return self.read_at(offset, length)
                raise SourceReadError(
                    f"cannot read {length} bytes of '{self.path}' (direct): {exc.strerror}",
                    path=self.path,
                    offset=offset,
                    length=length,
                    errno_=exc.errno,
                ) from None
            return bytes(buf[:n])
        finally:
            buf.close()

    def read_stream(self, length: int) -> bytes:
        """Read the next ``length`` bytes of a stream (fewer only at its end).

        Raises:
            SourceReadError: the read failed.
        """
        out = bytearray()
        while len(out) < length and not self._stream_eof:
            try:
                data = os.read(self.fd, length - len(out))
                if not out and len(data) == length:
                    return data
            except OSError as exc:
                raise SourceReadError(
                    f"cannot read standard input: {exc.strerror}",
                    path=self.path,
                    length=length,
                    errno_=exc.errno,
                ) from None
            if not data:
                self._stream_eof = True
                break
            out += data
        return bytes(out)

    def read_cd_toc(self) -> dict[str, Any]:
        """The table of contents of a CD in this (block device) source, best effort.

        Read with ``CDROMREADTOCHDR``/``CDROMREADTOCENTRY`` (tracks, their start LBA, data or audio) and
        ``CDROMMULTISESSION`` (start of the last session). Returns ``{"status": "read", ...}`` or
        ``{"status": "not available", "detail": why}`` (not a CD drive, no medium, a DVD/BD drive
        that answers no TOC); never raises for the device's answer.
        """
        if self.kind != "block" or self._fd is None:
            return {"status": "not available", "detail": f"source is a {self.kind}, not an optical drive"}
        fd = self._fd
        try:
            first, last = parse_toc_header(bytes(fcntl.ioctl(fd, CDROMREADTOCHDR, bytes(_TOCHDR.size))))
            tracks = []
            for n in [*range(first, last + 1), CDROM_LEADOUT]:
                buf = _TOCENTRY.pack(n, 0, CDROM_LBA, 0, 0)
                tracks.append(parse_toc_entry(bytes(fcntl.ioctl(fd, CDROMREADTOCENTRY, buf))))
        except OSError as exc:
            return {"status": "not available", "detail": f"CDROMREADTOCHDR/ENTRY: {exc.strerror}"}
        out: dict[str, Any] = {
            "status": "read",
            "first_track": first,
            "last_track": last,
            "tracks": [t for t in tracks if t["track"] != CDROM_LEADOUT],
            "leadout_lba": tracks[-1]["lba"],
        }
        try:
            ms = parse_multisession(bytes(fcntl.ioctl(fd, CDROMMULTISESSION, _MULTISESSION.pack(0, 0, CDROM_LBA))))
        except OSError as exc:
            out["sessions"] = {"status": "not available", "detail": f"CDROMMULTISESSION: {exc.strerror}"}
        else:
            out["sessions"] = ms
        return out

    def close(self) -> None:
        """Close the descriptors this source opened (standard input is left open)."""
        for name in ("_direct_fd", "_fd"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None and not (self.kind == "stream" and name == "_fd"):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Source {self.kind} {self.path!r} size={self.size}>"


def parse_toc_header(buf: bytes) -> tuple[int, int]:
    """First and last track numbers from a ``struct cdrom_tochdr``."""
    first, last = _TOCHDR.unpack_from(buf)
    return int(first), int(last)


def parse_toc_entry(buf: bytes) -> dict[str, Any]:
    """One ``struct cdrom_tocentry`` (asked for with ``CDROM_LBA``) as a dict."""
    track, adr_ctrl, fmt, lba, mode = _TOCENTRY.unpack_from(buf)
    ctrl = adr_ctrl >> 4
    return {"track": track, "lba": lba, "data": bool(ctrl & CDROM_DATA_TRACK), "adr": adr_ctrl & 0x0F,
            "ctrl": ctrl, "mode": mode if fmt == CDROM_LBA else None}


def parse_multisession(buf: bytes) -> dict[str, Any]:
    """A ``struct cdrom_multisession``: whether the disc has more than one session, and where the last starts."""
    lba, xa, _fmt = _MULTISESSION.unpack_from(buf)
    if xa:
        return {"multisession": True, "last_session_lba": lba,
                "detail": "more than one session; the drive reports the start of the last one only"}
    return {"multisession": False, "count": 1}


def open_source(path: str) -> Source:
    """Open an evidence source read-only (``O_RDONLY | O_NOATIME | O_CLOEXEC``).

    Args:
        path: a block device, a regular file, or ``-`` for standard input.

    Raises:
        ImageNotFoundError: the path does not exist.
        SourceError: it is neither a block device nor a regular file, or cannot be opened.
    """
    if path == "-":
        return Source("-", 0, "stream", False, None)  # file descriptor 0, whatever sys.stdin wraps
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageNotFoundError(f"source '{path}' does not exist", path=path) from None
    except OSError as exc:
        raise SourceError(f"cannot examine source '{path}': {exc.strerror}", path=path) from None
    if stat.S_ISBLK(st.st_mode):
        kind = "block"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        kind = "stream"
    elif stat.S_ISDIR(st.st_mode):
        raise UsageError(f"source '{path}' is a folder, not a device or an image file")
    else:
        raise SourceError(f"source '{path}' is not a block device or a regular file", path=path)
    try:
        fd, noatime = _open_ro(path)
    except OSError as exc:
        raise SourceError(f"cannot open source '{path}': {exc.strerror}", path=path) from None
    try:
        return Source(path, fd, kind, noatime, st)
    except OSError as exc:
        os.close(fd)
        raise SourceError(f"cannot query source '{path}': {exc.strerror}", path=path) from None
