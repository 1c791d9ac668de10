"""The source is opened O_RDONLY|O_NOATIME|O_CLOEXEC; without O_NOATIME only on EPERM (recorded)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from forensimg.acquire.source import open_source

O_NOATIME = 0o1000000
O_CLOEXEC = 0o2000000
O_ACCMODE = 0o3


def _fd_flags(fd: int) -> int:
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8)
    raise AssertionError("no flags in fdinfo")


def test_source_flags(tmp_path: Path) -> None:
    p = tmp_path / "s.bin"
    p.write_bytes(os.urandom(4096))
    with open_source(str(p)) as src:
        flags = _fd_flags(src.fd)
        assert flags & O_ACCMODE == os.O_RDONLY
        assert flags & O_NOATIME and flags & O_CLOEXEC
        assert src.noatime and src.kind == "file" and src.size == 4096
        assert src.read_at(0, 8192) == p.read_bytes()  # short only at the end


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_noatime_eperm_fallback_for_non_owner() -> None:
    d = Path(tempfile.mkdtemp(prefix="forensimg-noatime-", dir="/tmp"))
    try:
        os.chmod(d, 0o755)
        p = d / "s.bin"
        p.write_bytes(b"x" * 512)
        os.chmod(p, 0o644)
        code = (
            "import os; from forensimg.acquire.source import open_source;"
            "os.setgid(65534); os.setuid(65534);"
            f"s=open_source({str(p)!r}); print(s.noatime, len(s.read_at(0, 512)))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    finally:
        shutil.rmtree(d)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "512"]


def test_stdin_source_is_a_stream() -> None:
    r, w = os.pipe()
    os.write(w, b"abc" * 1000)
    os.close(w)
    saved = os.dup(0)
    os.dup2(r, 0)
    try:
        src = open_source("-")
        assert src.is_stream and src.size is None
        assert src.read_stream(10_000) == b"abc" * 1000
        assert src.read_stream(10) == b""
        src.close()
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(r)
