"""Fixtures of tests/mirror: loop devices (from the reusable tests.fixtures) and a small disk that fills up."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.loopdev import LoopDevices, loop_factory  # noqa: F401
from tests.helpers import run


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs (its own file system: a write past it fails with ENOSPC); unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    run("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


@pytest.fixture
def small_ext4(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB ext4 on a loop device with about 5 MiB free (a filler takes the rest); torn down after."""
    loops = LoopDevices()
    try:
        backing = tmp_path / "small.img"
        with open(backing, "wb") as f:
            f.truncate(16 << 20)
        dev = loops(backing)
        run("mkfs.ext4", "-q", "-F", "-m", "0", dev)
        mnt = loops.mount(dev, tmp_path / "small")
        st = os.statvfs(mnt)
        (mnt / "filler").write_bytes(bytes(st.f_bavail * st.f_frsize - (5 << 20)))
        yield mnt
    finally:
        loops.cleanup()
