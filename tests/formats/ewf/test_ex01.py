"""EWF2 (Ex01) reading. No tool here writes Ex01, so images come from tests/formats/ewf/ex01build.py
(built from the spec) and pyewf (current libewf, which reads Ex01) must agree with forensimg."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest

import forensimg
from forensimg.errors import ChecksumError, Error, FormatError, MissingSegmentError, UnsupportedFormatError
from forensimg.formats.ewf.ewf2 import EWF2Image, ex01_extension, walk_sections2
from forensimg.streams import SegmentSet
from tests.formats.ewf.ex01build import build_ex01
from tests.formats.ewf.readutil import MiB, mixed_input, pyewf_media

MEDIA = mixed_input(1 * MiB)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("single", {}),
        ("multi", {"segment_chunks": 5}),
        ("no-pattern", {"pattern_zero": False}),
        ("4096", {"bps": 4096, "spc": 16}),
    ],
)
def test_ex01_equals_media_and_pyewf(tmp_path: Path, name: str, kw: dict) -> None:
    paths = build_ex01(tmp_path / "img.Ex01", MEDIA, **kw)
    if name == "multi":
        assert len(paths) >= 3
    with forensimg.open(paths[-1]) as img:  # any member
        assert isinstance(img, EWF2Image)
        assert img.read() == MEDIA
        assert img.info.segments == tuple(paths)
        info = img.info
        assert info.stored_hashes == {"md5": hashlib.md5(MEDIA).hexdigest(), "sha1": hashlib.sha1(MEDIA).hexdigest()}
        assert info.case.case_number == "CASE-2" and info.case.description == "Ex01 test"
        assert info.acquired_at is not None and info.acquired_at.timestamp() == 1700000001
        assert info.source is not None and info.source.model == "Model X" and info.source.serial == "SN123"
        assert info.sector_size == kw.get("bps", 512)
        assert img.check_structure() == ()
    pytest.importorskip("pyewf")
    assert pyewf_media(paths[0]) == MEDIA


def test_ex01_corrupt_chunk_is_localised(tmp_path: Path) -> None:
    paths = build_ex01(tmp_path / "img.Ex01", MEDIA, pattern_zero=False)
    with forensimg.open(paths[0]) as img:
        k = next(i for i in range(1, img.chunk_count) if img.chunk_location(i)[3])
        _, off, size, _ = img.chunk_location(k)
        cs = img.chunk_size
    data = bytearray(paths[0].read_bytes())
    data[off + size // 2] ^= 0x55
    paths[0].write_bytes(bytes(data))
    with forensimg.open(paths[0]) as img:
        with pytest.raises(ChecksumError) as ei:
            img.read()
        assert ei.value.chunk == k and ei.value.offset == off
        assert (ei.value.media_start, ei.value.media_end) == (k * cs, (k + 1) * cs)
    with forensimg.open(paths[0], zero_fill=True) as img:
        got = img.read()
        assert [f.chunk for f in img.faults] == [k]
        fault = img.faults[0]
        assert fault.expected and fault.found and fault.expected != fault.found  # what the check wanted vs saw
        assert got[: k * cs] == MEDIA[: k * cs] and got[(k + 1) * cs :] == MEDIA[(k + 1) * cs :]


def test_ex01_missing_segment_and_descriptor_damage(tmp_path: Path) -> None:
    paths = build_ex01(tmp_path / "img.Ex01", MEDIA, segment_chunks=5)
    paths[1].unlink()
    with pytest.raises(MissingSegmentError) as ei:
        forensimg.open(paths[0])
    assert paths[1].name in str(ei.value)
    paths = build_ex01(tmp_path / "d.Ex01", MEDIA)
    s = SegmentSet([paths[0]])
    secs = walk_sections2(s, 0)
    s.close()
    raw = bytearray(paths[0].read_bytes())
    raw[secs[1].descriptor + 4] ^= 1
    paths[0].write_bytes(bytes(raw))
    with pytest.raises(FormatError) as fe:
        forensimg.open(paths[0])
    assert fe.value.offset == secs[1].descriptor and fe.value.path == str(paths[0])


def test_ex01_encrypted_and_bzip2_are_refused(tmp_path: Path) -> None:
    paths = build_ex01(tmp_path / "e.Ex01", MEDIA)
    raw = bytearray(paths[0].read_bytes())
    raw[10:12] = struct.pack("<H", 2)
    paths[0].write_bytes(bytes(raw))
    with pytest.raises(UnsupportedFormatError, match="bzip2"):
        forensimg.open(paths[0])
    paths = build_ex01(tmp_path / "f.Ex01", MEDIA)
    raw = bytearray(paths[0].read_bytes())
    s = SegmentSet([paths[0]])
    first = walk_sections2(s, 0)[0]
    s.close()
    d = first.descriptor
    struct.pack_into("<I", raw, d + 4, 2)  # data flag: encrypted
    struct.pack_into("<I", raw, d + 60, zlib.adler32(bytes(raw[d : d + 60])))
    paths[0].write_bytes(bytes(raw))
    with pytest.raises(UnsupportedFormatError, match="encrypted"):
        forensimg.open(paths[0])


def test_ex01_naming() -> None:
    assert [ex01_extension(n) for n in (1, 99, 100, 775, 776, 2127)] == ["Ex01", "Ex99", "ExAA", "ExZZ", "EyAA", "EzZZ"]
    with pytest.raises(ValueError):
        ex01_extension(2128)


@pytest.mark.parametrize("cut", [0, 31, 32, 100, 5000, -1, -64, -65])
def test_ex01_garbage_and_truncation(tmp_path: Path, cut: int) -> None:
    paths = build_ex01(tmp_path / "t.Ex01", MEDIA[: 256 * 1024])
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[:cut])
    with pytest.raises(Error), forensimg.open(paths[0], format="ewf") as img:
        img.read()


_SEED_EX01: list[bytes] = []


def _seed_ex01(tmp: Path) -> bytes:
    if not _SEED_EX01:
        (p,) = build_ex01(tmp / "seed.Ex01", MEDIA[: 256 * 1024], pattern_zero=True)
        _SEED_EX01.append(p.read_bytes())
    return _SEED_EX01[0]


def test_ex01_mutations_raise_only_forensimg_errors(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seed = _seed_ex01(tmp_path)

    @settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(flips=st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(1, 255)), min_size=1, max_size=4))
    def check(flips: list[tuple[int, int]]) -> None:
        buf = bytearray(seed)
        for off, x in flips:
            buf[off] ^= x
        p = tmp_path / "m.Ex01"
        p.write_bytes(bytes(buf))
        try:
            with forensimg.open(p, format="ewf") as img:
                img.read()
        except Error:
            pass

    check()
