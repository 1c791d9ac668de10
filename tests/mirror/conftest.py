"""Fixtures of tests/mirror: loop devices (from the reusable tests.fixtures) and a small disk that fills up."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.loopdev import loop_factory  # noqa: F401
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
