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
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import pytest
except ImportError:  # the server subprocess does not need pytest
    pytest = None  # type: ignore[assignment]

FILE_NAME = "disk.img"


def _serve(backing: str, mountpoint: str, flip_start: int, flip_end: int) -> None:
    """Run the FUSE server in the foreground (this process)."""
    import mfusepy as fuse

    fd = os.open(backing, os.O_RDWR)

    class Ops(fuse.Operations):  # type: ignore[misc]
        use_ns = True

        def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
            now = int(time.time() * 1e9)
            if path == "/":
                return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_atime": now, "st_mtime": now,
                        "st_ctime": now}
            if path == "/" + FILE_NAME:
                return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_size": os.fstat(fd).st_size,
                        "st_atime": now, "st_mtime": now, "st_ctime": now}
            raise fuse.FuseOSError(errno.ENOENT)

        def readdir(self, path: str, fh: Any) -> list[str]:
            return [".", "..", FILE_NAME]

        def open(self, path: str, fi: Any) -> int:
            if path != "/" + FILE_NAME:
                raise fuse.FuseOSError(errno.ENOENT)
            fi.direct_io = 1  # no page cache: every read reaches the server
            fi.keep_cache = 0
            return 0

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


class LiarDevice:
    """Starts FUSE servers that flip bytes on read and attaches their file as a loop device."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self._loops: list[str] = []
        self._n = 0

    def __call__(self, backing: str | os.PathLike[str], *, flip: tuple[int, int]) -> str:
        """Serve ``backing`` with the bytes ``flip`` = (start, end) inverted on read; returns '/dev/loopN'."""
        self._n += 1
        mp = self.workdir / f"liar-mnt-{self._n}"
        mp.mkdir(parents=True, exist_ok=True)
        logp = self.workdir / f"liar-{self._n}.log"
        with open(logp, "wb") as log:
            proc = subprocess.Popen([sys.executable, __file__, "serve", os.fspath(backing), str(mp), str(flip[0]),
                                     str(flip[1])], stdout=log, stderr=subprocess.STDOUT)
        self._procs.append((proc, mp))
        deadline = time.monotonic() + 20
        target = mp / FILE_NAME
        while not (os.path.ismount(mp) and target.exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"FUSE server did not come up: {logp.read_text()}")
            time.sleep(0.02)  # bounded poll for the mount to appear
        dev = subprocess.run(["losetup", "--find", "--show", str(target)], check=True, capture_output=True,
                             text=True).stdout.strip()
        self._loops.append(dev)
        return dev

    def cleanup(self) -> None:
        """Detach, unmount, stop (every step attempted)."""
        for dev in reversed(self._loops):
            subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)
        self._loops.clear()
        for proc, mp in reversed(self._procs):
            fm = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
            subprocess.run([fm, "-u", str(mp)], check=False, capture_output=True)
            if os.path.ismount(mp):
                subprocess.run([fm, "-uz", str(mp)], check=False, capture_output=True)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()


if pytest is not None:
    needs_fuse = pytest.mark.skipif(
        os.geteuid() != 0 or not os.path.exists("/dev/fuse") or shutil.which("losetup") is None,
        reason="needs root, /dev/fuse and losetup",
    )

    @pytest.fixture
    def liar_device(tmp_path: Path) -> Iterator[LiarDevice]:
        """A :class:`LiarDevice` factory; everything it made is removed after the test."""
        dev = LiarDevice(tmp_path)
        try:
            yield dev
        finally:
            dev.cleanup()


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "serve":
    _serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
