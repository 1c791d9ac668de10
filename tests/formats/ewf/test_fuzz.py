"""Robustness: mutated real E01 bytes never crash, hang or exhaust memory.

Mutations of ``testdata/floppy_fat12.E01`` (and of a small two-segment set): byte flips, truncation,
splices, and field rewrites *with the structure's Adler-32 recomputed* (so that the mutation gets past
the checksum into the logic behind it: sizes, counts, offsets, geometry). Opening and reading the whole
media must either succeed or raise a :class:`forensimg.errors.Error`; nothing else.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forensimg
from forensimg.errors import Error
from forensimg.formats.ewf.reader import walk_sections
from forensimg.streams import SegmentSet
from tests.helpers import TESTDATA

SEED = (TESTDATA / "floppy_fat12.E01").read_bytes()


def _layout(path: Path) -> list[tuple[str, int, int]]:
    s = SegmentSet([path])
    try:
        return [(x.type, x.offset, x.size) for x in walk_sections(s, 0)]
    finally:
        s.close()


SECTIONS = _layout(TESTDATA / "floppy_fat12.E01")

# (section type, offset inside the data, width, checksum start, checksum end) for checksummed fields
_FIELDS: list[tuple[str, int, int, int, int]] = [
    ("volume", 4, 4, 0, 1048),  # chunk count
    ("volume", 8, 4, 0, 1048),  # sectors per chunk
    ("volume", 12, 4, 0, 1048),  # bytes per sector
    ("volume", 16, 8, 0, 1048),  # sector count
    ("table", 0, 4, 0, 20),  # entry count
    ("table", 8, 8, 0, 20),  # base offset
    ("table2", 0, 4, 0, 20),
    ("hash", 0, 4, 0, 32),
    ("digest", 0, 4, 0, 76),
]
_INTERESTING = [0, 1, 2, 63, 64, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 40, (1 << 63) - 1, (1 << 64) - 1]


def _fix_descriptor(buf: bytearray, off: int) -> None:
    struct.pack_into("<I", buf, off + 72, zlib.adler32(bytes(buf[off : off + 72])))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    buf = bytearray(SEED)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "flip_struct", "truncate", "splice", "field", "descriptor", "entry"]))
        n = len(buf)
        if n < 20:
            break
        if kind == "flip":
            off = draw(st.integers(0, n - 1))
            buf[off] ^= draw(st.integers(1, 255))
        elif kind == "flip_struct":  # flip inside a descriptor or a small section
            _, soff, ssize = draw(st.sampled_from(SECTIONS))
            off = min(n - 1, soff + draw(st.integers(0, max(75, min(ssize, 1200) - 1))))
            buf[off] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del buf[draw(st.integers(0, n - 1)) :]
        elif kind == "splice":
            a = draw(st.integers(0, n - 1))
            length = draw(st.integers(1, 4096))
            b = draw(st.integers(0, n - 1))
            piece = buf[a : a + length]
            buf[b : b + len(piece)] = piece
        elif kind == "field":
            name, foff, width, c0, c1 = draw(st.sampled_from(_FIELDS))
            sec = next((s for s in SECTIONS if s[0] == name), None)
            if sec is None:
                continue
            data = sec[1] + 76
            if data + c1 + 4 > n:
                continue
            value = draw(st.sampled_from(_INTERESTING) | st.integers(0, (1 << (8 * width)) - 1))
            buf[data + foff : data + foff + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
            struct.pack_into("<I", buf, data + c1, zlib.adler32(bytes(buf[data + c0 : data + c1])))
        elif kind == "descriptor":  # rewrite next/size of a descriptor, checksum fixed
            _, soff, _ = draw(st.sampled_from(SECTIONS))
            if soff + 76 > n:
                continue
            field_off = draw(st.sampled_from([16, 24]))
            value = draw(st.sampled_from([*_INTERESTING, soff, soff + 76, 13]) | st.integers(0, n + 100))
            struct.pack_into("<Q", buf, soff + field_off, value % (1 << 64))
            _fix_descriptor(buf, soff)
        else:  # a table entry, with the footer recomputed
            tsec = next(s for s in SECTIONS if s[0] == "table")
            data = tsec[1] + 76
            count = struct.unpack_from("<I", SEED, data)[0]
            if data + 24 + 4 * count + 4 > n:
                continue
            i = draw(st.integers(0, count - 1))
            value = draw(st.sampled_from(_INTERESTING[:8]) | st.integers(0, 0xFFFFFFFF))
            struct.pack_into("<I", buf, data + 24 + 4 * i, value % (1 << 32))
            entries = bytes(buf[data + 24 : data + 24 + 4 * count])
            struct.pack_into("<I", buf, data + 24 + 4 * count, zlib.adler32(entries))
    return bytes(buf)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(data=mutated())
def test_mutated_e01_opens_and_reads_or_raises_forensimg_error(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "fuzz.E01"
    p.write_bytes(data)
    try:
        with forensimg.open(p, format="ewf") as img:
            img.read()
            img.check_structure()
    except Error:
        pass


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_mutated_e01_zero_fill_never_raises_for_chunks(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "fuzz.E01"
    p.write_bytes(data)
    try:
        img = forensimg.open(p, format="ewf", zero_fill=True)
    except Error:
        return
    with img:
        assert len(img.read()) == img.size  # bad chunks are zeros + faults, never an exception


@pytest.mark.parametrize("cut", [0, 13, 89, 500, 1000, len(SEED) // 2, len(SEED) - 77, len(SEED) - 1])
def test_truncations_give_format_errors(tmp_path: Path, cut: int) -> None:
    p = tmp_path / "t.E01"
    p.write_bytes(SEED[:cut])
    with pytest.raises(Error) as ei:
        forensimg.open(p, format="ewf").read()
    if cut >= 13:
        assert ei.value.path == str(p)


SEG_SEEDS = [(TESTDATA / f"disk_mbr_seg.E0{i}").read_bytes() for i in (1, 2, 3)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(
    which=st.integers(0, 2),
    kind=st.sampled_from(["flip", "truncate", "header_number", "swap_tail"]),
    pos=st.floats(0, 1),
    value=st.integers(0, 255),
)
def test_mutated_segment_set(tmp_path: Path, which: int, kind: str, pos: float, value: int) -> None:
    files = []
    for i, seed in enumerate(SEG_SEEDS):
        buf = bytearray(seed)
        if i == which:
            off = min(len(buf) - 1, int(pos * len(buf)))
            if kind == "flip":
                buf[off] ^= value or 1
            elif kind == "truncate":
                del buf[off:]
            elif kind == "header_number":
                buf[9:11] = (value % 5).to_bytes(2, "little")
            else:  # the end of another segment pasted over this one's end
                other = SEG_SEEDS[(i + 1) % 3]
                buf[off:] = other[off : len(buf)]
        p = tmp_path / f"set.E0{i + 1}"
        p.write_bytes(bytes(buf))
        files.append(p)
    try:
        with forensimg.open(files[0], format="ewf") as img:
            img.read()
            img.check_structure()
    except Error:
        pass


@pytest.mark.parametrize(
    ("section", "field_off", "width", "covered", "value", "match"),
    [
        ("table", 0, 4, 20, 0xFFFFFFFF, "entries"),  # entry count that cannot fit: refused before allocating
        ("volume", 16, 8, 1048, 1 << 60, "needs"),  # sector count far beyond the tables
        ("volume", 8, 4, 1048, 1 << 30, "implausible"),  # sectors per chunk: a 512 GiB chunk
        ("table", 8, 8, 20, 1 << 62, "beyond the end"),  # base offset outside the file
    ],
)
def test_checksum_fixed_hostile_fields(
    tmp_path: Path, section: str, field_off: int, width: int, covered: int, value: int, match: str
) -> None:
    buf = bytearray(SEED)
    sec = next(s for s in SECTIONS if s[0] == section)
    data = sec[1] + 76
    buf[data + field_off : data + field_off + width] = value.to_bytes(width, "little")
    struct.pack_into("<I", buf, data + covered, zlib.adler32(bytes(buf[data : data + covered])))
    p = tmp_path / "h.E01"
    p.write_bytes(bytes(buf))
    with pytest.raises(Error, match=match) as ei:
        forensimg.open(p, format="ewf")
    assert ei.value.path == str(p)
