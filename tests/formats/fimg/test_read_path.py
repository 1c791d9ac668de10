"""The fimg chunk-read hot path (``FimgImage._read_chunk``) and ``Image.read_at``: same bytes and same
faults as the full, diagnosing check; spec §4.2's "nothing left over"; many threads at once."""

from __future__ import annotations

import random
import threading
import zlib
from pathlib import Path

import pytest

import forensimg
from forensimg.errors import ChecksumError
from forensimg.formats.fimg import create_writer
from forensimg.formats.fimg.layout import FLAG_COMPRESSED, M_ZLIB, RECORD_SIZE, parse_record, split_location
from forensimg.formats.fimg.reader import read_chunk_at
from forensimg.image import FaultKind
from tests.helpers import mixed_media

CS = 4096


def _media(size: int, seed: int) -> bytes:
    return mixed_media(size, seed, CS, 3)


def _write(path: Path, data: bytes, **opts: object) -> list[Path]:
    with create_writer(path, chunk_size=CS, **opts) as w:  # type: ignore[arg-type]
        w.write(data)
    return list(w.close().paths)


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
def test_reads_equal_the_media_and_the_full_check(tmp_path: Path, compression: str) -> None:
    data = _media(97 * CS + 1234, seed=5)  # a short last chunk
    paths = _write(tmp_path / "m.fimg", data, compression=compression, segment_size=40_000)
    assert len(paths) > 1  # records in several segments
    rng = random.Random(1)
    with forensimg.open(paths[0]) as img:
        kinds = set()
        for i in range(img.chunk_count):
            seg, off = split_location(img._locations[i])  # type: ignore[attr-defined]
            rh = parse_record(img._segs.pread(seg - 1, off, RECORD_SIZE))  # type: ignore[attr-defined]
            assert rh is not None
            kinds.add(rh.flags)
            fast = img._read_chunk(i)
            full, _ = read_chunk_at(img._segs, img._locations[i], i, img.chunk_length(i), CS)  # type: ignore[attr-defined]
            assert fast == full == data[i * CS : (i + 1) * CS]
        assert kinds == {0, 1, 2}  # raw, compressed, zero
        for _ in range(300):
            off = rng.randrange(len(data) + 10)
            n = rng.choice([1, 512, 4096, CS + 1, 3 * CS])
            assert img.read_at(off, n) == data[off : off + n]
        img.seek(len(data) - 100)
        assert img.read(4096) == data[-100:]
    with pytest.raises(ValueError, match="closed"):
        img.read_at(0, 1)
    assert img._segs.fds == []  # type: ignore[attr-defined]  # emptied in place: no stale descriptor is kept


def test_zlib_body_with_bytes_after_the_stream_is_refused(tmp_path: Path) -> None:
    """Spec §4.2: a compressed body decodes to the chunk "with nothing left over". A body whose zlib
    stream ends early and is followed by other bytes decodes to the right data (the SHA-256 matches),
    so only this rule catches it."""
    data = _media(64 * CS, seed=8)
    path = _write(tmp_path / "t.fimg", data)[0]
    raw = bytearray(path.read_bytes())
    with forensimg.open(path) as img:
        locs = list(img._locations)  # type: ignore[attr-defined]
    victim = None
    for i, loc in enumerate(locs):
        _, off = split_location(loc)
        rh = parse_record(bytes(raw[off : off + RECORD_SIZE]))
        assert rh is not None
        if rh.flags == FLAG_COMPRESSED and rh.method == M_ZLIB:
            shorter = zlib.compress(data[i * CS : (i + 1) * CS], 9)
            if len(shorter) < rh.stored_length:
                body = shorter + b"\x5a" * (rh.stored_length - len(shorter))
                raw[off + RECORD_SIZE : off + RECORD_SIZE + rh.stored_length] = body
                victim = (i, off)
                break
    assert victim is not None, "no zlib chunk that zlib level 9 makes shorter"
    i, off = victim
    path.write_bytes(bytes(raw))
    with forensimg.open(path) as img:
        with pytest.raises(ChecksumError) as ei:
            img.read_at(i * CS + 100, 10)
        e = ei.value
        assert (e.chunk, e.media_start, e.media_end, e.path, e.offset) == (i, i * CS, (i + 1) * CS, str(path), off)
        assert f"chunk {i}" in str(e)
        faults = [f for _, _, f in img.scan_chunks() if f is not None]
        assert [(f.chunk, f.kind) for f in faults] == [(i, FaultKind.DECOMPRESS)]
        assert img.read_at(0, i * CS) == data[: i * CS]  # the chunks before still read
    with forensimg.open(path, zero_fill=True) as img:
        assert img.read_at(i * CS, CS) == bytes(CS)
        assert [f.chunk for f in img.faults] == [i]


def test_reads_from_many_threads(tmp_path: Path) -> None:
    """Several threads reading through a small cache (evictions race with lookups) get the media's
    bytes, and a damaged chunk fails in every thread that meets it."""
    data = _media(80 * CS, seed=11)
    path = _write(tmp_path / "th.fimg", data)[0]
    raw = bytearray(path.read_bytes())
    with forensimg.open(path) as img:
        _, bad_off = split_location(img._locations[30])  # type: ignore[attr-defined]
    raw[bad_off + 40] ^= 0xFF  # a byte of chunk 30's stored digest: its header CRC-32 fails
    path.write_bytes(bytes(raw))
    errors: list[BaseException] = []
    bad_hits = []

    with forensimg.open(path) as img:
        img.set_cache_chunks(3)

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for _ in range(400):
                    off = rng.randrange(len(data))
                    n = rng.choice([512, 4096, 2 * CS])
                    try:
                        got = img.read_at(off, n)
                    except ChecksumError as exc:
                        assert exc.chunk == 30 and off // CS <= 30 <= (off + n - 1) // CS
                        bad_hits.append(seed)
                        continue
                    assert got == data[off : off + n]
                    assert not off // CS <= 30 <= (min(off + n, len(data)) - 1) // CS
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert bad_hits  # the damaged chunk was met, and failed each time


@pytest.mark.parametrize("damage", ["none", "data", "header", "stream", "truncated"])
def test_scan_runs_equal_check_chunk_chunk_by_chunk(tmp_path: Path, damage: str) -> None:
    """``FimgImage._check_run`` (one pread per run of records, used by verify and convert) gives, chunk by
    chunk, the data and fault of ``check_chunk``, on several segments and with damage of each kind."""
    data = _media(150 * CS + 777, seed=13)
    paths = _write(tmp_path / "r.fimg", data, segment_size=120_000)
    assert len(paths) > 2
    with forensimg.open(paths[0]) as img:
        locs = list(img._locations)  # type: ignore[attr-defined]
    hurt = []
    for i in (3, 40, 41, 97, 149):
        seg, off = split_location(locs[i])
        p = paths[seg - 1]
        raw = bytearray(p.read_bytes())
        rh = parse_record(bytes(raw[off : off + RECORD_SIZE]))
        assert rh is not None
        if damage == "data" and rh.stored_length:
            raw[off + RECORD_SIZE + rh.stored_length // 2] ^= 0x40
        elif damage == "header":
            raw[off + 20] ^= 0x01
        elif damage == "stream" and rh.flags == FLAG_COMPRESSED:
            raw[off + RECORD_SIZE + 2] ^= 0xFF
        else:
            continue
        hurt.append(i)
        p.write_bytes(bytes(raw))
    if damage == "truncated":  # the second segment ends inside its last chunk record
        raw = paths[1].read_bytes()
        stored = [i for i, loc in enumerate(locs) if split_location(loc)[0] == 2
                  and parse_record(raw[split_location(loc)[1] :][:RECORD_SIZE]).stored_length > 20]  # type: ignore[union-attr]
        cut = split_location(locs[stored[-1]])[1] + RECORD_SIZE + 10
        paths[1].write_bytes(raw[:cut])
        hurt = [i for i, loc in enumerate(locs) if split_location(loc)[0] == 2 and split_location(loc)[1] >= cut - 74]
    with forensimg.open(paths[0]) as img:
        n = img.chunk_count
        runs = img._check_run(0, n)  # type: ignore[attr-defined]
        one = [(i, *img.check_chunk(i)) for i in range(n)]
        assert runs == one  # the same data and the same Fault (kind, message, chunk, range, file, offset)
        bad = [i for i, _, f in runs if f is not None]
        if damage == "none":
            assert bad == [] and b"".join(d for _, d, _ in runs) == data
            calls = []
            img.check_chunk = lambda i: calls.append(i)  # type: ignore[method-assign,assignment,return-value]
            assert img._check_run(0, n) == runs and calls == []  # type: ignore[attr-defined]  # all from the runs
        else:
            assert hurt and bad == hurt
        assert img._check_run(40, 42) == one[40:42]  # type: ignore[attr-defined]  # a run in the middle
