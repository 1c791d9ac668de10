"""One conformance suite for every Image implementation (house rule 4).

Random reads against the media, boundary reads, every seek whence, threads, open/close twice.
Each format registers its variants in tests/conformance/cases.py.
"""

from __future__ import annotations

import io
import random
import threading
from pathlib import Path

import pytest

import forensimg
from tests.conformance.cases import CASES, Case

_built: dict[str, tuple[list[Path], bytes]] = {}


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, list[Path], bytes]:
    c: Case = request.param
    for m in c.marks:
        request.applymarker(getattr(pytest.mark, m))
    if c.id not in _built:
        folder = tmp_path_factory.mktemp(c.id)
        _built[c.id] = c.build(folder)
    paths, media = _built[c.id]
    return c, paths, media


def _open(paths: list[Path]) -> forensimg.Image:
    return forensimg.open(paths[0] if len(paths) == 1 else paths)


def test_detects_format_and_size(case):
    c, paths, media = case
    with _open(paths) as img:
        assert img.info.format == c.format
        assert img.size == len(media) == img.info.size
        assert img.sector_size in (512, 2048, 4096)
        assert img.chunk_size > 0
        assert img.chunk_count == -(-len(media) // img.chunk_size)
        assert all(p.exists() for p in img.info.segments)
        for t in (img.info.acquired_at, img.info.system_date):
            assert t is None or t.tzinfo is not None


def test_whole_media_equal(case):
    _, paths, media = case
    with _open(paths) as img:
        assert img.read() == media
        assert img.tell() == len(media)
        assert img.read(10) == b""


def test_thousand_random_reads(case):
    _, paths, media = case
    rng = random.Random(1234)
    size = len(media)
    with _open(paths) as img:
        for _ in range(1000):
            off = rng.randrange(0, size + 100)
            n = rng.choice([0, 1, 7, 512, 513, 4096, rng.randrange(1, 200_000)])
            assert img.seek(off) == off
            got = img.read(n)
            assert got == media[off : off + n], (off, n)
            assert img.tell() == off + len(got)


def test_reads_across_chunk_boundaries(case):
    _, paths, media = case
    with _open(paths) as img:
        cs = img.chunk_size
        for b in range(cs, len(media), cs):
            for a, n in ((b - 1, 2), (b - 513, 1026), (b - 8, 8), (b, 1)):
                assert img.read_at(a, n) == media[a : a + n], (a, n)
        seg_ends = []
        pos = 0
        for p in img.info.segments[:-1]:
            pos += p.stat().st_size
            seg_ends.append(pos)
        for b in seg_ends:  # meaningful for split raw (for container formats a byte position in a file)
            if 0 < b < len(media):
                assert img.read_at(b - 3, 6) == media[b - 3 : b + 3]


def test_tail_and_past_end(case):
    _, paths, media = case
    size = len(media)
    with _open(paths) as img:
        assert img.read_at(size - 8, 16) == media[-8:]
        assert img.read_at(size, 1) == b""
        assert img.read_at(size + 10_000, 10) == b""
        assert img.seek(size + 5) == size + 5
        assert img.read(4) == b""
        buf = bytearray(10)
        img.seek(size - 4)
        assert img.readinto(buf) == 4
        assert bytes(buf[:4]) == media[-4:]
        assert img.readinto(buf) == 0


def test_seek_every_whence(case):
    _, paths, media = case
    size = len(media)
    with _open(paths) as img:
        assert img.seek(100) == 100
        assert img.seek(50, io.SEEK_CUR) == 150
        assert img.read(10) == media[150:160]
        assert img.seek(-20, io.SEEK_CUR) == 140
        assert img.seek(-512, io.SEEK_END) == size - 512
        assert img.read() == media[-512:]
        assert img.seek(0, io.SEEK_END) == size
        with pytest.raises(OSError):
            img.seek(-1)
        with pytest.raises(ValueError):
            img.seek(0, 7)


def test_read_at_from_four_threads(case):
    _, paths, media = case
    size = len(media)
    errors: list[str] = []
    with _open(paths) as img:

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(200):
                off = rng.randrange(0, size)
                n = rng.randrange(1, 70_000)
                if img.read_at(off, n) != media[off : off + n]:
                    errors.append(f"{seed}: {off}+{n}")

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_open_close_twice_and_closed_state(case):
    _, paths, media = case
    for _ in range(2):
        img = _open(paths)
        assert img.read(512) == media[:512]
        img.close()
        img.close()
        assert img.closed
        with pytest.raises(ValueError):
            img.read(1)
        with pytest.raises(ValueError):
            img.read_at(0, 1)


def test_read_only_and_io_compatible(case):
    _, paths, media = case
    with _open(paths) as img:
        assert img.readable() and img.seekable() and not img.writable()
        with pytest.raises(io.UnsupportedOperation):
            img.write(b"x")
        with pytest.raises(io.UnsupportedOperation):
            img.truncate(0)
        buffered = io.BufferedReader(img, buffer_size=8192)
        buffered.seek(4000)
        assert buffered.read(9000) == media[4000:13000]


def test_chunks_cover_media(case):
    _, paths, media = case
    with _open(paths) as img:
        parts = [data for _, data in img.iter_chunks()]
        assert b"".join(parts) == media
        scanned = list(img.scan_chunks(workers=2))
        assert [i for i, _, _ in scanned] == list(range(img.chunk_count))
        assert all(f is None for _, _, f in scanned)
        assert b"".join(d for _, d, _ in scanned) == media
