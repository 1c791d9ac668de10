"""A block device that returns other bytes than were written: a FUSE file that flips bytes on read, on a loop device.

The FUSE server runs in a subprocess (this file run as a script) and exposes one read-write file
``disk.img`` over a backing image: writes go to the backing image as they are, but every read that
touches the byte range ``[flip_start, flip_end)`` returns those bytes inverted. Files are opened with
``direct_io``, so the kernel caches nothing and every read of the loop device attached to the file
reaches the server. It stands for a destination disk that acknowledges writes and returns something
else (a failing disk, a counterfeit USB stick): restore must then fail its read-back.

Usage::

    def test_x(liar_device, tmp_path):
        dev = liar_device(backing_path, flip=(4096, 4097))   # '/dev/loopN'

Teardown (even on failure): detach the loop device, unmount FUSE, stop the server.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

try:
    from tests.fixtures.eio import FuseLoopDevice
except ImportError:  # the server subprocess (this file run as a script) does not need it
    FuseLoopDevice = object  # type: ignore[misc,assignment]

try:
    import pytest
except ImportError:  # the server subprocess does not need pytest
    pytest = None  # type: ignore[assignment]

FILE_NAME = "disk.img"


def _serve(backing: str, mountpoint: str, flip_start: int, flip_end: int) -> None:
    """Run the FUSE server in the foreground (this process)."""
    import mfusepy as fuse

    from tests.fixtures.eio import one_file_ops

    fd = os.open(backing, os.O_RDWR)

    class Ops(one_file_ops(fuse, lambda: os.fstat(fd).st_size, writable=True)):  # type: ignore[misc]
        def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
            data = os.pread(fd, size, offset)
            lo, hi = max(offset, flip_start), min(offset + len(data), flip_end)
            if lo < hi:
                b = bytearray(data)
                for i in range(lo - offset, hi - offset):
                    b[i] ^= 0xFF
                data = bytes(b)
            return data

        def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
            return os.pwrite(fd, data, offset)

        def truncate(self, path: str, length: int, fh: Any = None) -> int:
            raise fuse.FuseOSError(errno.EPERM)  # a disk does not change its size

        def fsync(self, path: str, datasync: int, fh: Any) -> int:
            os.fsync(fd)
            return 0

        def flush(self, path: str, fh: Any) -> int:
            return 0

    fuse.FUSE(Ops(), mountpoint, raw_fi=True, foreground=True, nothreads=False, allow_other=True)


class LiarDevice(FuseLoopDevice):
    """Starts FUSE servers that flip bytes on read and attaches their file as a loop device."""

    label = "liar"

    def __call__(self, backing: str | os.PathLike[str], *, flip: tuple[int, int]) -> str:
        """Serve ``backing`` with the bytes ``flip`` = (start, end) inverted on read; returns '/dev/loopN'."""
        return self._start(__file__, backing, [str(flip[0]), str(flip[1])], FILE_NAME)


if pytest is not None and FuseLoopDevice is not object:
    from tests.fixtures.eio import device_fixture, needs_fuse  # noqa: F401 - needs_fuse is re-exported

    liar_device = device_fixture(LiarDevice, "liar_device")


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "serve":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.fixtures.eio
    _serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
