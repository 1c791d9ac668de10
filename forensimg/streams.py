"""Format-agnostic helpers for reading image files: a set of segment files read with positional I/O.

Image files (not evidence sources: those are opened only by :mod:`forensimg.acquire.source`) are opened
read-only once, and read with :func:`os.pread`, so that several threads can read at once without a shared
file position.
"""

from __future__ import annotations

import bisect
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from forensimg.errors import FormatError, ImageNotFoundError, ImageReadError

__all__ = ["SegmentSet", "check_input_file"]


def check_input_file(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` names a regular file (or block device) that can be opened for reading.

    Raises:
        ImageNotFoundError: it does not exist.
        ImageReadError: it is a directory, a special file, or cannot be opened.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageNotFoundError(f"no such file: '{p}'", path=p) from None
    except OSError as exc:
        raise ImageReadError(f"cannot access '{p}': {exc.strerror}", path=p, errno_=exc.errno) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(f"'{p}' is a directory, not an image file", path=p, errno_=errno.EISDIR)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise ImageReadError(f"'{p}' is not a regular file", path=p)
    return p


class SegmentSet:
    """The files of one image, opened read-only, with positional reads.

    Args:
        paths: the segment files in order.

    Raises:
        ImageNotFoundError, ImageReadError: a file is missing or cannot be opened.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.paths: tuple[Path, ...] = tuple(Path(p) for p in paths)
        self._fds: list[int] = []
        self.sizes: list[int] = []
        try:
            for p in self.paths:
                check_input_file(p)
                try:
                    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    raise ImageReadError(
                        f"cannot open '{p}': {exc.strerror}", path=p, errno_=exc.errno
                    ) from None
                self._fds.append(fd)
                self.sizes.append(_fd_size(fd))
        except BaseException:
            self.close()
            raise
        self.starts: list[int] = []
        total = 0
        for s in self.sizes:
            self.starts.append(total)
            total += s
        self.total_size = total

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def fds(self) -> list[int]:
        """The open file descriptors, in segment order, for a caller's own :func:`os.pread` on a hot path.

        The same list object for the life of the set; :meth:`close` empties it in place, so a reference
        kept by a reader sees no descriptor (``IndexError``) rather than a closed, possibly reused one.
        """
        return self._fds

    def pread(self, index: int, offset: int, length: int) -> bytes:
        """Read up to ``length`` bytes at ``offset`` of segment ``index`` (short only at its end).

        Raises:
            ImageReadError: the read failed (names the file and offset).
        """
        fd = self._fds[index]
        try:
            data = os.pread(fd, length, offset)
            if len(data) < length and offset + len(data) < self.sizes[index]:
                # a short read before the end of the file: keep reading
                parts = [data]
                got = len(data)
                while got < length:
                    more = os.pread(fd, length - got, offset + got)
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
                data = b"".join(parts)
            return data
        except OSError as exc:
            raise ImageReadError(
                f"read error in '{self.paths[index]}': {exc.strerror}",
                path=self.paths[index],
                offset=offset,
                errno_=exc.errno,
            ) from None

    def pread_exact(self, index: int, offset: int, length: int, what: str = "data") -> bytes:
        """Like :meth:`pread` but raises :class:`FormatError` when the file ends early."""
        data = self.pread(index, offset, length)
        if len(data) != length:
            raise FormatError(
                f"truncated {what}: needed {length} bytes, the file ends after {len(data)}",
                path=self.paths[index],
                offset=offset,
            )
        return data

    def read_concat(self, offset: int, length: int) -> bytes:
        """Read across the concatenation of all segments (split raw)."""
        end = min(offset + length, self.total_size)
        parts: list[bytes] = []
        pos = offset
        while pos < end:
            i = bisect.bisect_right(self.starts, pos) - 1
            seg_off = pos - self.starts[i]
            n = min(end - pos, self.sizes[i] - seg_off)
            if n <= 0:  # cannot happen: bisect_right skips zero-size segments
                break
            data = self.pread(i, seg_off, n)
            if len(data) != n:
                raise ImageReadError(
                    f"'{self.paths[i]}' shrank while open (expected {self.sizes[i]} bytes)",
                    path=self.paths[i],
                    offset=seg_off + len(data),
                )
            parts.append(data)
            pos += n
        return b"".join(parts)

    def close(self) -> None:
        """Close every file. Safe to call twice."""
        fds = list(self._fds)
        self._fds.clear()
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _fd_size(fd: int) -> int:
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return os.lseek(fd, 0, os.SEEK_END)
    return st.st_size
