"""Real loop devices for tests (root): attach a backing file, always detach in the finalizer.

Shared by tests/restore, tests/mirror and tests/geometry. Loop devices get no partition nodes here (no
udev); the kernel mounts ext2/3/4 but not vfat.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], check=check, capture_output=True, text=True)


def can_use_loop() -> bool:
    return os.geteuid() == 0 and Path("/dev/loop-control").exists()


needs_loop = pytest.mark.skipif(not can_use_loop(), reason="needs root and loop devices")


@contextlib.contextmanager
def loop_device(backing: Path, *, sector_size: int = 512) -> Iterator[str]:
    """Attach ``backing`` as a loop device with the given logical sector size; detach afterwards."""
    r = _run("losetup", "--find", "--show", "--sector-size", str(sector_size), backing)
    dev = r.stdout.strip()
    try:
        yield dev
    finally:
        _run("blockdev", "--setrw", dev, check=False)
        for _ in range(50):  # a just-unmounted device can be busy for a moment
            if _run("losetup", "-d", dev, check=False).returncode == 0:
                break


@contextlib.contextmanager
def mounted(dev: str, mountpoint: Path, *options: str) -> Iterator[Path]:
    """Mount ``dev`` (ext4 made beforehand) at ``mountpoint``; unmount afterwards, even on failure."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    args: list[str | Path] = ["mount"]
    if options:
        args += ["-o", ",".join(options)]
    _run(*args, dev, mountpoint)
    try:
        yield mountpoint
    finally:
        if _run("umount", mountpoint, check=False).returncode != 0:
            _run("umount", "-l", mountpoint, check=False)


def pattern_bytes(size: int, fill: bytes) -> bytes:
    """``fill`` repeated to ``size`` bytes (what :func:`make_backing` writes)."""
    return (fill * (size // len(fill) + 1))[:size]


def make_backing(path: Path, size: int, fill: bytes = b"\0") -> Path:
    """A backing file of ``size`` bytes filled with a repeating pattern."""
    path.write_bytes(pattern_bytes(size, fill))
    return path


def read_device(dev: str, offset: int, length: int) -> bytes:
    """Read the device bypassing nothing clever: a fresh fd, after dropping its cache."""
    fd = os.open(dev, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        out = bytearray()
        while len(out) < length:
            chunk = os.pread(fd, length - len(out), offset + len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)
    finally:
        os.close(fd)
