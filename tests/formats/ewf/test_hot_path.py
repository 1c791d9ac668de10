"""The EWF reader's hot path (``EWFImage._read_chunk``) agrees with the checked path on every chunk.

The hot path returns a chunk only when its stored bytes check out; everything else must reach the
diagnosing path and raise the same ChecksumError. Each case here damages one chunk of a real
ewfacquire-made image in a copy (compressed stream, its Adler-32, an uncompressed chunk's data and
its Adler-32) and compares the two paths chunk by chunk.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import forensimg
from forensimg.errors import ChecksumError
from forensimg.formats.ewf.reader import EWFImage
from tests.helpers import TESTDATA


def _outcome(fn: object, index: int) -> tuple[str, object]:
    try:
        return "ok", fn(index)  # type: ignore[operator]
    except ChecksumError as exc:
        return "error", (exc.chunk, exc.media_start, exc.media_end, str(exc))


def _compare(img: EWFImage) -> list[str]:
    kinds = []
    for i in range(img.chunk_count):
        hot = _outcome(img._read_chunk, i)
        checked = _outcome(img._read_chunk_checked, i)
        assert hot == checked, f"chunk {i}"
        kinds.append(hot[0])
    # a scan task (one pread per group, then the hot checks) gives check_chunk's data and Fault, chunk by
    # chunk, and looks again only at the chunks that fail them (and a padded last chunk)
    n = img.chunk_count
    one = [(i, *img.check_chunk(i)) for i in range(n)]
    calls: list[int] = []
    real = img.check_chunk
    img.check_chunk = lambda i: (calls.append(i), real(i))[1]  # type: ignore[method-assign]
    try:
        assert img._check_run(0, n) == one
        assert img._check_run(1, min(n, 5)) == one[1:5]
    finally:
        del img.check_chunk
    bad = [i for i, k in enumerate(kinds) if k == "error"]
    assert set(bad) <= set(calls) <= set(bad) | {n - 1}
    return kinds


@pytest.mark.parametrize("name", ["floppy_fat12.E01", "disk_mbr.E01", "floppy_fat12_corrupt_chunk.E01"])
def test_hot_path_equals_checked_path(name: str) -> None:
    with forensimg.open(TESTDATA / name) as img:
        assert isinstance(img, EWFImage)
        kinds = _compare(img)
    assert ("error" in kinds) == ("corrupt" in name)


def _chunks(img: EWFImage) -> tuple[int | None, int | None]:
    """A compressed and an uncompressed chunk of ``img`` (by index), where there are such."""
    comp = raw = None
    for i in range(img.chunk_count):
        _path, _off, _n, compressed = img.chunk_location(i)
        if compressed and comp is None:
            comp = i
        if not compressed and raw is None:
            raw = i
    return comp, raw


@pytest.mark.parametrize("where", ["compressed-body", "compressed-adler", "raw-data", "raw-adler"])
def test_damaged_chunk_reaches_the_diagnosing_path(tmp_path: Path, where: str) -> None:
    src = TESTDATA / "disk_mbr.E01"
    with forensimg.open(src) as img:
        assert isinstance(img, EWFImage)
        comp, raw = _chunks(img)
        index = comp if where.startswith("compressed") else raw
        assert index is not None, "the test image lacks this kind of chunk"
        _path, off, n, _c = img.chunk_location(index)
    pos = off + n // 2 if where.endswith(("body", "data")) else off + n - 2
    dst = tmp_path / src.name
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x40]))
    with forensimg.open(dst) as img:
        assert isinstance(img, EWFImage)
        kinds = _compare(img)
        with pytest.raises(ChecksumError) as exc:
            img.read_at(index * img.chunk_size, 4096)
    assert exc.value.chunk == index
    assert [i for i, k in enumerate(kinds) if k == "error"] == [index]


def test_bytes_after_the_zlib_stream_are_refused(tmp_path: Path) -> None:
    """A chunk whose stored bytes hold a complete, correct zlib stream followed by other bytes is refused
    (spec §Chunks: nothing after the stream) by both paths."""
    import zlib

    # an image of our own writer at deflate level 1, whose text chunks level 9 packs tighter
    src = tmp_path / "src" / "text.E01"
    src.parent.mkdir()
    text = b"".join(b"line %06d of a text file that compresses\n" % i for i in range(3000))
    with forensimg.create(src, compression="fast") as w:
        w.write(text[: len(text) // 512 * 512])
    found = None
    with forensimg.open(src) as img:
        assert isinstance(img, EWFImage)
        for i in range(img.chunk_count):
            _path, off, n, compressed = img.chunk_location(i)
            if compressed:
                shorter = zlib.compress(img.read_chunk(i), 9)
                if len(shorter) < n:  # a complete stream that leaves room for bytes after it
                    found = (i, off, n, shorter)
                    break
    assert found is not None, "no chunk compresses better at level 9"
    index, off, n, shorter = found
    dst = tmp_path / src.name
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.seek(off)
        f.write(shorter + b"\0" * (n - len(shorter)))
    with forensimg.open(dst) as img:
        assert isinstance(img, EWFImage)
        kinds = _compare(img)
    assert [i for i, k in enumerate(kinds) if k == "error"] == [index]
