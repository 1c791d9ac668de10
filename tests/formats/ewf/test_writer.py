"""E01 writer: layout, sizes, checksums and options, checked on the bytes (no libewf needed).

The libewf/Sleuth Kit oracle checks are in ``test_writer_oracle.py``.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensimg.errors import UsageError, WriteError
from forensimg.formats.ewf.writer import EWFWriter
from forensimg.image import CaseInfo, SourceInfo


@dataclass
class Section:
    kind: str
    offset: int
    next: int
    size: int
    data: bytes


def walk(path: Path) -> list[Section]:
    """Every section of one segment, checking each descriptor's checksum."""
    raw = path.read_bytes()
    assert raw[:8] == b"EVF\x09\x0d\x0a\xff\x00"
    out: list[Section] = []
    off = 13
    while True:
        d = raw[off : off + 76]
        assert len(d) == 76, f"descriptor at {off} truncated"
        kind = d[:16].rstrip(b"\0").decode()
        nxt, size = struct.unpack_from("<QQ", d, 16)
        assert struct.unpack_from("<I", d, 72)[0] == zlib.adler32(d[:72]), f"{kind} descriptor checksum"
        assert d[32:72] == bytes(40)
        out.append(Section(kind, off, nxt, size, raw[off + 76 : off + size]))
        if kind in ("next", "done"):
            assert size == 0 and nxt == off, f"{kind} must have size 0 and point at itself"
            assert off + 76 == len(raw), "the file ends after next/done"
            return out
        assert nxt == off + size, f"{kind} at {off}: next {nxt} != offset + size {off + size}"
        off = nxt


def segment_number(path: Path) -> int:
    return struct.unpack_from("<H", path.read_bytes(), 9)[0]


def adler_ok(data: bytes) -> bool:
    return struct.unpack("<I", data[-4:])[0] == zlib.adler32(data[:-4])


def volume_fields(data: bytes) -> dict[str, int]:
    assert len(data) == 1052 and adler_ok(data)
    media_type, chunks, spc, bps, sectors = struct.unpack_from("<B3xIIIQ", data, 0)
    return {
        "media_type": media_type,
        "chunks": chunks,
        "spc": spc,
        "bps": bps,
        "sectors": sectors,
        "flags": data[36],
        "level": data[52],
        "granularity": struct.unpack_from("<I", data, 56)[0],
    }


def table_entries(sec: Section) -> tuple[int, list[int]]:
    hdr = sec.data[:24]
    assert adler_ok(hdr)
    count, base = struct.unpack_from("<I4xQ", hdr)
    entries = sec.data[24 : 24 + 4 * count]
    assert len(sec.data) == 24 + 4 * count + 4
    assert struct.unpack("<I", sec.data[-4:])[0] == zlib.adler32(entries)
    return base, list(struct.unpack(f"<{count}I", entries))


def chunks_of(path: Path, sections: list[Section]) -> list[tuple[bool, bytes]]:
    """(compressed, stored bytes) of every chunk in one segment, from the tables."""
    raw = path.read_bytes()
    out = []
    for i, s in enumerate(sections):
        if s.kind != "table":
            continue
        sectors = sections[i - 1]
        assert sectors.kind == "sectors" and sections[i + 1].kind == "table2"
        assert sections[i + 1].data == s.data, "table2 is a byte copy of table"
        base, entries = table_entries(s)
        assert base == sectors.offset, "EnCase 6 base offset = sectors section offset"
        starts = [base + (e & 0x7FFFFFFF) for e in entries]
        assert starts[0] == sectors.offset + 76
        ends = [*starts[1:], sectors.offset + sectors.size]
        for e, a, b in zip(entries, starts, ends, strict=True):
            out.append((bool(e >> 31), raw[a:b]))
    return out


def decode(chunks: list[tuple[bool, bytes]]) -> bytes:
    out = bytearray()
    for compressed, stored in chunks:
        if compressed:
            d = zlib.decompressobj()
            plain = d.decompress(stored)
            assert d.eof and not d.unused_data
            out += plain
        else:
            assert adler_ok(stored), "raw chunk + LE Adler-32"
            out += stored[:-4]
    return bytes(out)


def mixed(size: int, seed: int = 7) -> bytes:
    import random

    rnd = random.Random(seed)
    parts = []
    total = 0
    i = 0
    while total < size:
        n = rnd.randrange(1000, 90000)
        k = i % 3
        parts.append(bytes(n) if k == 0 else rnd.randbytes(n) if k == 1 else (b"text %08d line\n" % i) * (n // 19))
        total += len(parts[-1])
        i += 1
    return b"".join(parts)[:size]


def write(path: Path, data: bytes, *, unreadable: tuple[tuple[int, int], ...] = (), **opts: object) -> object:
    w = EWFWriter(path, **opts)  # type: ignore[arg-type]
    for i in range(0, len(data), 300_000):
        w.write(data[i : i + 300_000])
    for off, ln in unreadable:
        w.mark_unreadable(off, ln)
    return w.close()


PROFILE_SINGLE = ["header2", "header2", "header", "volume", "sectors", "table", "table2"]


def test_section_order_and_sizes_single_segment(tmp_path: Path) -> None:
    data = mixed(700_000)
    r = write(tmp_path / "a.E01", data, case=CaseInfo("c1", "e1", "ex", "d", "n"))
    (path,) = r.paths  # type: ignore[attr-defined]
    secs = walk(path)
    kinds = [s.kind for s in secs]
    assert kinds == [*PROFILE_SINGLE, "data", "digest", "hash", "done"]
    sizes = {s.kind: s.size for s in secs}
    assert sizes["volume"] == sizes["data"] == 1128
    assert sizes["digest"] == 156 and sizes["hash"] == 112 and sizes["done"] == 0
    assert secs[0].data == secs[1].data, "two identical header2 copies"
    vol = volume_fields(secs[3].data)
    assert secs[3].data == secs[7].data, "data = volume"
    padded = data + bytes(-len(data) % 512)
    assert vol == {
        "media_type": 1,
        "chunks": -(-len(padded) // 32768),
        "spc": 64,
        "bps": 512,
        "sectors": len(padded) // 512,
        "flags": 0x03,
        "level": 1,
        "granularity": 64,
    }
    assert secs[3].data[64:80] != bytes(16), "random set GUID"
    assert decode(chunks_of(path, secs)) == padded
    digest = secs[-3].data
    assert adler_ok(digest) and digest[:16] == hashlib.md5(padded).digest()
    assert digest[16:36] == hashlib.sha1(padded).digest() and digest[36:76] == bytes(40)
    h = secs[-2].data
    assert adler_ok(h) and h[:16] == hashlib.md5(padded).digest() and h[16:32] == bytes(16)
    assert r.hashes == {"md5": hashlib.md5(padded).hexdigest(), "sha1": hashlib.sha1(padded).hexdigest()}  # type: ignore[attr-defined]
    assert r.padded_bytes == len(padded) - len(data)  # type: ignore[attr-defined]


def test_section_order_multi_segment_and_error2(tmp_path: Path) -> None:
    data = mixed(1_500_000)
    limit = 200_000
    r = write(
        tmp_path / "m.E01",
        data,
        segment_size=limit,
        compression="none",
        unreadable=((5000, 1000), (600_000, 70_000)),
    )
    paths = r.paths  # type: ignore[attr-defined]
    assert len(paths) > 3
    assert [p.suffix for p in paths] == [f".E{i:02d}" for i in range(1, len(paths) + 1)]
    padded = data + bytes(-len(data) % 512)
    media = bytearray()
    volumes = []
    for n, p in enumerate(paths, 1):
        assert segment_number(p) == n
        assert p.stat().st_size <= limit
        secs = walk(p)
        kinds = [s.kind for s in secs]
        if n == 1:
            assert kinds[:4] == ["header2", "header2", "header", "volume"]
            body = kinds[4:]
            volumes.append(secs[3].data)
        else:
            assert kinds[0] == "data"
            body = kinds[1:]
            volumes.append(secs[0].data)
        if n < len(paths):
            assert body[-1] == "next"
            groups = body[:-1]
        else:
            assert body[-4:] == ["error2", "digest", "hash", "done"]
            groups = body[:-4]
            err = secs[-4].data
            assert adler_ok(err[:520])
            count = struct.unpack_from("<I", err)[0]
            assert count == 2 and len(err) == 520 + 8 * count + 4
            entries = err[520 : 520 + 8 * count]
            assert struct.unpack("<4I", entries) == (9, 3, 1171, 138)  # sectors 9-11, 1171-1308
            assert struct.unpack("<I", err[-4:])[0] == zlib.adler32(entries)
        assert groups and len(groups) % 3 == 0
        assert groups == ["sectors", "table", "table2"] * (len(groups) // 3)
        media += decode(chunks_of(p, secs))
    assert bytes(media) == padded
    assert len({v for v in volumes}) == 1, "volume and every data section carry the same final counts"
    vol = volume_fields(volumes[0])
    assert vol["sectors"] == len(padded) // 512 and vol["chunks"] == -(-len(padded) // 32768)
    assert vol["level"] == 0


def test_group_split_at_entry_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import forensimg.formats.ewf.writer as W

    monkeypatch.setattr(W, "MAX_TABLE_ENTRIES", 5)
    data = mixed(20 * 8192 + 100)
    r = write(tmp_path / "g.E01", data, sectors_per_chunk=16)
    (path,) = r.paths  # type: ignore[attr-defined]
    secs = walk(path)
    kinds = [s.kind for s in secs]
    assert kinds == ["header2", "header2", "header", "volume"] + ["sectors", "table", "table2"] * 5 + [
        "data",
        "digest",
        "hash",
        "done",
    ]
    assert decode(chunks_of(path, secs)) == data + bytes(-len(data) % 512)


@pytest.mark.parametrize("compression", ["none", "fast", "best"])
def test_chunk_storage_rules(tmp_path: Path, compression: str) -> None:
    rnd = os.urandom(32768)
    text = (b"0123456789 compressible text\n" * 2000)[:32768]
    data = rnd + bytes(32768) + text + b"tail" * 128
    r = write(tmp_path / "c.E01", data, compression=compression)
    (path,) = r.paths  # type: ignore[attr-defined]
    chunks = chunks_of(path, walk(path))
    assert len(chunks) == 4
    assert chunks[0] == (False, rnd + struct.pack("<I", zlib.adler32(rnd))), "random: raw + LE Adler-32"
    assert chunks[1][0] and len(chunks[1][1]) < 200, "all-zero chunks are compressed in every mode"
    if compression == "none":
        assert not chunks[2][0] and not chunks[3][0]
    else:
        assert chunks[2][0] and len(chunks[2][1]) < 32768
        assert chunks[3][0] and len(chunks[3][1]) < 512
        if compression == "best":
            assert chunks[2][1][:2] == b"\x78\xda"
    for compressed, stored in chunks:
        if compressed:
            assert len(stored) < 32768, "never a compressed chunk bigger than the raw one"
    assert decode(chunks) == data


def _inflate(section: Section) -> bytes:
    return zlib.decompress(section.data)


def test_header_texts_encase6_profile(tmp_path: Path) -> None:
    when = datetime(2026, 11, 28, 3, 3, 33, tzinfo=UTC)
    case = CaseInfo("case\t1", "ev 日本", "Jürgen", "desc é", "line1\nline2")
    src = SourceInfo(model="WDC WD10", serial="SN123", is_physical=False, media_type="removable")
    r = write(tmp_path / "h.E01", b"x" * 4096, case=case, source=src, acquired_at=when)
    secs = walk(r.paths[0])  # type: ignore[attr-defined]
    h2 = _inflate(secs[0])
    assert h2[:2] == b"\xff\xfe"
    lines = h2[2:].decode("utf-16-le").split("\n")
    assert lines[:3] == ["3", "main", "a\tc\tn\te\tt\tmd\tsn\tav\tov\tm\tu\tp\tdc"]
    values = dict(zip(lines[2].split("\t"), lines[3].split("\t"), strict=True))
    assert values["a"] == "desc é" and values["c"] == "case 1" and values["n"] == "ev 日本"
    assert values["e"] == "Jürgen" and values["t"] == "line1 line2"
    assert values["md"] == "WDC WD10" and values["sn"] == "SN123"
    assert values["m"] == str(int(when.timestamp())) and values["p"] == "0"
    assert 0 < len(values["av"]) <= 11 and 0 < len(values["ov"]) <= 23
    assert lines[4:] == [
        "",
        "srce",
        "0\t1",
        "p\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq",
        "0\t0",
        "\t\t\t\t\t-1\t-1\t\t\t",
        "",
        "sub",
        "0\t1",
        "p\tn\tid\tnu\tco\tgu",
        "0\t0",
        "\t\t\t\t1\t",
        "",
        "",
    ]
    h = _inflate(secs[2])
    assert h.endswith(b"\r\n\r\n") and b"\n" not in h.replace(b"\r\n", b"")
    hl = h.decode("cp1252").split("\r\n")
    assert hl[:3] == ["1", "main", "c\tn\ta\te\tt\tav\tov\tm\tu\tp"]
    hv = dict(zip(hl[2].split("\t"), hl[3].split("\t"), strict=True))
    assert hv["n"] == "ev ??" and hv["e"] == "Jürgen" and hv["a"] == "desc é"
    local = when.astimezone()
    assert hv["m"] == f"{local.year} {local.month} {local.day} {local.hour} {local.minute} {local.second}"
    vol = volume_fields(secs[3].data)
    assert vol["media_type"] == 0 and vol["flags"] == 0x01, "removable, image flag only (not physical)"


def test_empty_case_fields(tmp_path: Path) -> None:
    r = write(tmp_path / "e.E01", b"\0" * 512)
    secs = walk(r.paths[0])  # type: ignore[attr-defined]
    lines = _inflate(secs[0])[2:].decode("utf-16-le").split("\n")
    values = dict(zip(lines[2].split("\t"), lines[3].split("\t"), strict=True))
    assert values["a"] == values["c"] == values["n"] == values["e"] == values["t"] == ""


def test_segment_names_past_e99(tmp_path: Path) -> None:
    """Tiny segments of one 8 KiB raw chunk each: 120 segments, names .E01….E99, .EAA…"""
    data = os.urandom(8192 * 120)
    r = write(tmp_path / "n.E01", data, sectors_per_chunk=16, compression="none", segment_size=14_000)
    names = [p.suffix for p in r.paths]  # type: ignore[attr-defined]
    assert len(names) == 120
    assert names[98:102] == [".E99", ".EAA", ".EAB", ".EAC"] and names[-1] == ".EAU"
    assert all(p.stat().st_size <= 14_000 for p in r.paths)  # type: ignore[attr-defined]
    assert segment_number(r.paths[100]) == 101  # type: ignore[attr-defined]


def test_empty_media(tmp_path: Path) -> None:
    r = write(tmp_path / "z.E01", b"")
    secs = walk(r.paths[0])  # type: ignore[attr-defined]
    assert [s.kind for s in secs] == ["header2", "header2", "header", "volume", "data", "digest", "hash", "done"]
    assert volume_fields(secs[3].data)["sectors"] == 0


def test_abort_leaves_no_done(tmp_path: Path) -> None:
    w = EWFWriter(tmp_path / "x.E01", segment_size=100_000)
    w.write(os.urandom(250_000))
    w.abort()
    paths = sorted(tmp_path.glob("x.E*"))
    assert len(paths) >= 2
    raw = paths[-1].read_bytes()
    assert b"done" not in raw[-76:]
    for p in paths[:-1]:
        assert walk(p)[-1].kind == "next"
    with pytest.raises(ValueError):
        w.write(b"x")


def test_context_manager_exception_aborts(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), EWFWriter(tmp_path / "y.E01") as w:
        w.write(b"a" * 100_000)
        raise RuntimeError("source died")
    assert b"done" not in (tmp_path / "y.E01").read_bytes()[-76:]


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "o.E01").write_bytes(b"keep")
    with pytest.raises(WriteError):
        EWFWriter(tmp_path / "o.E01")
    assert (tmp_path / "o.E01").read_bytes() == b"keep"


@pytest.mark.parametrize(
    "opts",
    [
        {"compression": "zstd"},
        {"sectors_per_chunk": 48},
        {"sectors_per_chunk": 8},
        {"media_type": "tape"},
        {"segment_size": 4096},
        {"sector_size": 256},
        {"sector_size": 65536, "sectors_per_chunk": 32768},
        {"chunk_size": 1000},
        {"chunk_size": 65536, "sectors_per_chunk": 64},
    ],
)
def test_bad_options(tmp_path: Path, opts: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        EWFWriter(tmp_path / "b.E01", **opts)  # type: ignore[arg-type]
    assert not (tmp_path / "b.E01").exists()


def test_threads_one_and_many_give_same_bytes(tmp_path: Path) -> None:
    data = mixed(2_000_000, seed=3)
    outs = []
    for t in (1, 3):
        r = write(tmp_path / f"t{t}.E01", data, threads=t, acquired_at=datetime(2026, 1, 1, tzinfo=UTC))
        secs = walk(r.paths[0])  # type: ignore[attr-defined]
        outs.append(decode(chunks_of(r.paths[0], secs)))  # type: ignore[attr-defined]
    assert outs[0] == outs[1] == data + bytes(-len(data) % 512)


def test_many_small_raw_chunks_in_one_write(tmp_path: Path) -> None:
    """Thousands of raw chunks (payload + trailer each) between two flushes: writev's IOV_MAX holds."""
    data = os.urandom(12 << 20)
    w = EWFWriter(tmp_path / "r.E01", compression="none", sectors_per_chunk=16)
    w.write(data)
    r = w.close()
    secs = walk(r.paths[0])
    assert decode(chunks_of(r.paths[0], secs)) == data


def test_zlib_fallback_without_isal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the isal package, fast compression uses zlib level 1 (``78 01``) and reads back the same."""
    import forensimg.formats.ewf.writer as W

    monkeypatch.setattr(W, "_isal_zlib", None)
    data = mixed(300_000, seed=9)
    r = write(tmp_path / "z.E01", data)
    assert r.details["compressor"] == "zlib-1"  # type: ignore[attr-defined]
    chunks = chunks_of(r.paths[0], walk(r.paths[0]))  # type: ignore[attr-defined]
    assert any(c and s[:2] == b"\x78\x01" for c, s in chunks)
    assert decode(chunks) == data + bytes(-len(data) % 512)


def late_ranges_set(folder: Path) -> tuple[list[Path], bytes]:
    """Chunks placed first, then 480 unreadable ranges: the closing sections need one more segment."""
    data = os.urandom(8192 * 60)
    w = EWFWriter(folder / "late.E01", sectors_per_chunk=16, compression="none", segment_size=14_000)
    w.write(data)
    w._drain()  # place the chunks now, before the ranges are known (as a streaming acquisition would)
    for i in range(480):
        w.mark_unreadable(i * 1024, 10)  # every other sector
    w.mark_unreadable(100, 10)  # shares sector 0 with the first range: merged in error2
    r = w.close()
    return list(r.paths), data


def test_unreadable_ranges_after_last_chunk_get_a_closing_segment(tmp_path: Path) -> None:
    paths, data = late_ranges_set(tmp_path)
    assert len(paths) == 61
    assert all(p.stat().st_size <= 14_000 for p in paths)
    last = walk(paths[-1])
    assert [s.kind for s in last] == ["data", "error2", "digest", "hash", "done"]
    err = last[1].data
    assert struct.unpack_from("<I", err)[0] == 480
    assert struct.unpack_from("<4I", err, 520) == (0, 1, 2, 1)
    media = b"".join(decode(chunks_of(p, walk(p))) for p in paths)
    assert media == data


def test_disk_full_is_a_write_error_naming_the_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC from the file system (injected at os.writev) → WriteError with file and offset; no done."""
    import errno

    real = os.writev
    budget = [300_000]

    def writev(fd: int, bufs: list[bytes]) -> int:
        total = sum(len(b) for b in bufs)
        if total > budget[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        budget[0] -= total
        return real(fd, bufs)

    monkeypatch.setattr(os, "writev", writev)
    # ordinary writes (the injection is at os.writev; O_DIRECT appends meet real full disks in tests/mirror)
    with pytest.raises(WriteError) as info, EWFWriter(tmp_path / "full.E01", compression="none", direct=False) as w:
        for _ in range(40):
            w.write(os.urandom(1 << 20))
    assert info.value.path == str(tmp_path / "full.E01")
    assert info.value.offset is not None and "No space left" in str(info.value)
    monkeypatch.setattr(os, "writev", real)
    assert b"done" not in (tmp_path / "full.E01").read_bytes()[-76:]


_BASE = None


def _base_media() -> bytes:
    global _BASE
    if _BASE is None:
        _BASE = mixed(300_000, seed=21)
    return _BASE


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(min_value=0, max_value=300_000),
    cuts=st.lists(st.integers(min_value=1, max_value=70_000), max_size=12),
    spc=st.sampled_from([16, 64]),
    compression=st.sampled_from(["none", "fast"]),
)
def test_any_write_split_gives_the_same_media(
    tmp_path: Path, size: int, cuts: list[int], spc: int, compression: str
) -> None:
    """However the media is cut into write() calls, the stored chunks decode to the padded media."""
    data = _base_media()[:size]
    folder = tmp_path / f"h{abs(hash((size, tuple(cuts), spc, compression)))}"
    folder.mkdir()
    w = EWFWriter(folder / "p.E01", sectors_per_chunk=spc, compression=compression, threads=2)
    pos = 0
    for c in cuts:
        w.write(data[pos : pos + c])
        pos += c
    w.write(data[pos:])
    r = w.close()
    padded = data + bytes(-len(data) % 512)
    assert r.size == len(padded)
    assert decode(chunks_of(r.paths[0], walk(r.paths[0]))) == padded
    vol = volume_fields(walk(r.paths[0])[3].data)
    assert vol["sectors"] == len(padded) // 512 and vol["chunks"] == -(-len(padded) // (spc * 512))


def test_chunk_size_in_bytes(tmp_path: Path) -> None:
    r = write(tmp_path / "cs.E01", b"q" * 100_000, chunk_size=16384)
    assert r.details["sectors_per_chunk"] == 32  # type: ignore[attr-defined]
    assert volume_fields(walk(r.paths[0])[3].data)["spc"] == 32  # type: ignore[attr-defined]
