"""Raw and split raw output through ``O_DIRECT`` (``RawWriter(direct=True)``, the default).

The bytes are gathered in page-aligned buffers and each copy's whole blocks are written by its own helper
thread; the unaligned end goes through the ordinary descriptor at close. What must hold: the files are
the media to the byte (any size, any member boundary), the page cache is bypassed where the file system
allows it, and a copy that fills its disk is dropped with ``media_stored`` equal, to the byte, to what its
files hold (a prefix of the media), reported no later than the next write.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

import forensimg
from forensimg.errors import WriteError
from forensimg.formats.raw import RawWriter
from forensimg.outputs import _STAGE_BYTES
from tests.fixtures.loopdev import needs_root


def _data(size: int, seed: int = 5) -> bytes:
    return random.Random(seed).randbytes(size)


def _write(w: RawWriter, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        w.write(data[i : i + step])


def _is_direct(fd: int | None) -> bool:
    """True if ``fd`` is open with O_DIRECT (from the kernel's own record of the descriptor's flags)."""
    if fd is None:
        return False
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return bool(int(line.split()[1], 8) & os.O_DIRECT)
    return False


def _cached_bytes(p: Path) -> int | None:
    """Bytes of ``p`` resident in the page cache (util-linux ``fincore``), ``None`` without it."""
    if shutil.which("fincore") is None:
        return None
    r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(p)], capture_output=True,
                       text=True, check=False)
    return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else None


def _direct_supported(folder: Path) -> bool:
    probe = folder / ".direct-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


@pytest.mark.parametrize("size,step", [(1, 1), (4095, 4095), (4097, 1000), ((5 << 20) + 1234, 1_000_003),
                                       ((9 << 20) - 1, 4 << 20)])
def test_direct_raw_files_are_the_media_for_odd_sizes(tmp_path, size, step):
    data = _data(size)
    a, b = tmp_path / "a.raw", tmp_path / "b" / "b.dd"
    b.parent.mkdir()
    w = RawWriter(a, mirror_paths=[b], hashes=("sha256",))
    direct = _direct_supported(tmp_path)
    # each copy's member open with O_DIRECT beside its ordinary descriptor (for the unaligned end)
    assert [_is_direct(c.dfd) for c in w._out.copies] == [direct, direct]
    _write(w, data, step)
    res = w.close()
    assert a.read_bytes() == b.read_bytes() == data
    assert all(c["complete"] and c["media_stored"] == size for c in res.details["copies"])
    # each member's SHA-256 (from the bytes appended) is that of the file
    assert res.details["segment_sha256"] == {str(p): hashlib.sha256(data).hexdigest() for p in (a, b)}
    assert res.hashes == {"sha256": hashlib.sha256(data).hexdigest()}


def test_direct_raw_bypasses_the_page_cache(tmp_path):
    if not _direct_supported(tmp_path):
        pytest.skip("the temporary folder's file system refuses O_DIRECT")
    data = _data((8 << 20) + 100)
    direct, buffered = tmp_path / "direct.raw", tmp_path / "buffered.raw"
    cached = {}
    for p, d in ((direct, True), (buffered, False)):
        with RawWriter(p, direct=d) as w:
            _write(w, data, 1 << 20)
        cached[d] = _cached_bytes(p)  # before anything reads the file
    assert direct.read_bytes() == buffered.read_bytes() == data
    if cached[True] is None:
        pytest.skip("fincore not available")
    assert cached[True] <= 2 * 4096  # only the unaligned end went through the page cache
    assert cached[False] is not None and cached[False] > (4 << 20)  # the ordinary path fills it


def test_direct_split_members_at_odd_boundaries(tmp_path):
    seg = (1 << 20) + 512  # not a whole number of 4 KiB blocks: every member starts a new alignment
    data = _data((3 * seg) + 777, seed=8)
    a, b = tmp_path / "ev.001", tmp_path / "m" / "copy.raw"
    b.parent.mkdir()
    with RawWriter(a, segment_size=seg, mirror_paths=[b], hashes=("md5",)) as w:
        _write(w, data, 1_048_573)  # blocks straddle the member boundaries
    res = w.close()
    ca, cb = res.details["copies"]
    assert len(ca["paths"]) == len(cb["paths"]) == 4
    for i, (pa, pb) in enumerate(zip(ca["paths"], cb["paths"], strict=True)):
        want = data[i * seg : (i + 1) * seg]
        assert Path(pa).read_bytes() == Path(pb).read_bytes() == want
        assert res.details["segment_sha256"][pa] == res.details["segment_sha256"][pb] == hashlib.sha256(
            want).hexdigest()
    with forensimg.open(a) as img:
        assert img.read() == data and img.info.stored_hashes == {"md5": hashlib.md5(data).hexdigest()}


@needs_root
@pytest.mark.root
def test_direct_single_copy_on_full_ext4_raises_by_the_next_write(small_ext4):
    data = _data(12 << 20, seed=4)
    step = 1 << 20
    p = small_ext4 / "one.raw"
    w = RawWriter(p)
    assert _is_direct(w._out.copies[0].dfd)  # ext4 takes O_DIRECT
    calls = 0
    with pytest.raises(WriteError) as ei:
        for i in range(0, len(data), step):
            calls += 1
            w.write(data[i : i + step])
    w.abort()
    partial = small_ext4 / "one.raw.partial"
    held = partial.stat().st_size
    assert ei.value.errno == 28 and ei.value.offset == held and str(partial) in str(ei.value)
    assert w.media_stored == held and partial.read_bytes() == data[:held]
    # the blocks holding the first byte not stored went to the device when the buffer filled (at the
    # write that completed it); the failure surfaced in the very next write
    handed = -(-(held + 1) // _STAGE_BYTES) * _STAGE_BYTES // step
    assert calls == handed + 1
    assert w.copies[0]["position_at_failure"] == held // step * step
