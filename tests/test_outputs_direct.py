"""OutputSet in direct mode (O_DIRECT appends through aligned buffers) writes exactly what ordinary mode does.

A seeded random sequence of appends (small and large, memoryviews and bytes), syncs (which write the
unaligned end through the ordinary descriptor), in-place patches (inside the buffered end and inside data
already written), segment changes and a resume at an unaligned offset is applied to a direct set of two
copies; the files must equal a model of the bytes, and the segment SHA-256s must equal the files'.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from forensimg.outputs import OutputSet


def _namer(base: Path, number: int) -> Path:
    return base.with_name(f"{base.name}.{number:03d}")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_direct_mode_writes_what_ordinary_mode_writes(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    bases = [tmp_path / "a" / "img", tmp_path / "b" / "img"]
    for b in bases:
        b.parent.mkdir()
    out = OutputSet(bases, _namer, hash_segments=True, direct=True)
    model: list[bytearray] = []
    used_direct = False
    for number in (1, 2, 3):
        out.open_segment(number)
        model.append(bytearray())
        used_direct |= all(c.dfd is not None for c in out.live)
        for _ in range(rnd.randrange(20, 60)):
            op = rnd.random()
            seg = model[-1]
            if op < 0.7:
                n = rnd.choice([1, 7, 64, 4095, 4096, 4097, 100_000, 1 << 20, (5 << 20) + 3])
                data = rnd.randbytes(n)
                iov = [memoryview(data)[: n // 2], data[n // 2 :]] if rnd.random() < 0.5 else [data]
                out.writev(iov, n, [(n, n)])
                seg += data
            elif op < 0.78:
                out.fsync(data_only=True)
            elif op < 0.85:  # a background sync (as the fimg and E01 writers do), run at once here
                out.apply_sync_results(out.sync_job(data_only=True)())
            elif seg:
                off = rnd.randrange(len(seg))
                patch = rnd.randbytes(min(rnd.randrange(1, 200), len(seg) - off))
                out.pwrite(patch, off)
                seg[off : off + len(patch)] = patch
        out.close_segment()
    assert used_direct  # /tmp is ext4 here: O_DIRECT was taken
    for b in bases:
        for i, want in enumerate(model, 1):
            assert _namer(b, i).read_bytes() == bytes(want), (b, i)
    # copies count every byte they hold; a patched segment is not vouched for, the others are
    assert [c.media for c in out.copies] == [sum(len(m) for m in model)] * 2
    for p, digest in out.segment_sha256.items():
        assert digest == hashlib.sha256(p.read_bytes()).hexdigest()


def test_direct_mode_resumes_at_an_unaligned_offset(tmp_path: Path) -> None:
    base = tmp_path / "img"
    first = os.urandom(10_000 + 123)
    out = OutputSet([base], _namer, direct=True)
    out.open_segment(1)
    out.writev([first], len(first))
    out.close_segment()
    # resume: the writer reopens the segment and hands it over at its end
    p = _namer(base, 1)
    fd = os.open(p, os.O_WRONLY | os.O_CLOEXEC)
    os.lseek(fd, len(first), os.SEEK_SET)
    out2 = OutputSet([base], _namer, direct=True)
    out2.adopt(fd, [p], len(first))
    more = os.urandom((6 << 20) + 5)
    out2.writev([more], len(more))
    out2.fsync()
    out2.close_segment()
    assert p.read_bytes() == first + more


def test_a_copy_without_o_direct_is_written_from_the_same_buffers(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a file system refuses O_DIRECT (older tmpfs, FUSE), the copy gets ordinary aligned writes from
    the same buffers. Every local file system here accepts O_DIRECT, so the refusal is simulated for the
    second copy only."""
    import forensimg.outputs as O

    real = O._open_direct
    monkeypatch.setattr(O, "_open_direct", lambda p: None if "refuses" in str(p) else real(p))
    (tmp_path / "refuses").mkdir()
    out = OutputSet([tmp_path / "img", tmp_path / "refuses" / "img"], _namer, direct=True)
    out.open_segment(1)
    assert out.copies[0].dfd is not None and out.copies[1].dfd is None
    data = os.urandom((9 << 20) + 77)
    out.writev([data], len(data))
    out.close_segment()
    assert _namer(tmp_path / "img", 1).read_bytes() == data == _namer(tmp_path / "refuses" / "img", 1).read_bytes()
