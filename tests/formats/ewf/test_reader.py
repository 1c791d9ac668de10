"""EWF1 reader: testdata ground truth, fail-closed chunk checks, table2 fallback, segment sets, refusals.

Images are made once per module with ewfacquire (Debian ewf-tools) from a 3 MiB mixed input, then copied
and damaged per test.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import zlib
from array import array
from datetime import UTC, datetime
from pathlib import Path

import pytest

import forensimg
from forensimg.errors import (
    ChecksumError,
    Error,
    FormatError,
    IncompleteImageError,
    MissingSegmentError,
    UnsupportedFormatError,
)
from forensimg.formats.ewf.reader import EWFImage, _Group, decode_table_entries, walk_sections
from forensimg.image import FaultKind, Range
from forensimg.streams import SegmentSet
from tests.formats.ewf.readutil import MiB, acquire, mixed_input
from tests.helpers import TESTDATA, have, manifest

pytestmark = pytest.mark.skipif(not have("ewfacquire"), reason="needs ewfacquire (ewf-tools)")


@pytest.fixture(scope="module")
def media() -> bytes:
    return mixed_input(3 * MiB)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, media: bytes) -> dict[str, list[Path]]:
    """EnCase 6 images with SHA-1: single segment with fast compression, multi-segment with empty-block."""
    d = tmp_path_factory.mktemp("ewf-made")
    src = d / "in.raw"
    src.write_bytes(media)
    out: dict[str, list[Path]] = {}
    (d / "single").mkdir()
    out["single"] = acquire(src, d / "single" / "img", "-f", "encase6", "-c", "fast", "-d", "sha1")
    (d / "multi").mkdir()
    out["multi"] = acquire(src, d / "multi" / "img", "-f", "encase6", "-c", "empty-block", "-d", "sha1", "-S", "1MiB")
    assert len(out["multi"]) >= 3
    return out


def _copy(files: list[Path], dest: Path) -> list[Path]:
    dest.mkdir(exist_ok=True)
    return [Path(shutil.copy(p, dest / p.name)) for p in files]


def _sections(path: Path) -> list:
    s = SegmentSet([path])
    try:
        return walk_sections(s, 0)
    finally:
        s.close()


def _patch(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def _flip(path: Path, offset: int) -> None:
    b = path.read_bytes()[offset]
    _patch(path, offset, bytes([b ^ 0xFF]))


# -- testdata ground truth ---------------------------------------------------------------------------


@pytest.mark.parametrize("image_id", ["floppy_fat12.E01", "disk_mbr.E01", "disk_mbr_seg.E01"])
def test_testdata_images_match_manifest(image_id: str) -> None:
    entry = manifest()["images"][image_id]
    with forensimg.open(TESTDATA / entry["files"][-1]) as img:  # open through the last segment
        assert isinstance(img, EWFImage)
        data = img.read()
        info = img.info
        assert hashlib.sha256(data).hexdigest() == entry["media"]["sha256"]
        assert info.size == entry["media"]["size"]
        assert info.sector_size == entry["media"]["bytes_per_sector"]
        assert [p.name for p in info.segments] == entry["files"]
        ewf = entry["ewf"]
        assert info.format_version == ewf["format"]
        assert info.chunk_size == ewf["chunk_size"] and img.chunk_count == ewf["chunk_count"]
        assert info.details["sectors_per_chunk"] == ewf["sectors_per_chunk"]
        assert info.details["error_granularity"] == ewf["error_granularity"]
        for alg, value in ewf["stored_hashes"].items():
            assert info.stored_hashes[alg] == value
        case = ewf["case"]
        assert info.case.case_number == case["case_number"]
        assert info.case.evidence_number == case["evidence_number"]
        assert info.case.examiner == case["examiner_name"]
        assert info.case.description == case["description"]
        assert info.case.notes == case["notes"]
        assert info.acquired_at == datetime.fromtimestamp(case["acquiry_date_epoch"], UTC)
        assert info.acquisition_os == case["acquiry_operating_system"]
        assert info.acquisition_software == case["acquiry_software_version"]
        assert info.source is not None and info.source.is_physical is ewf["is_physical"]
        assert img.check_structure() == ()


def test_testdata_corrupt_chunk_is_localised() -> None:
    entry = manifest()["images"]["floppy_fat12_corrupt_chunk.E01"]
    dmg = entry["damage"]
    path = TESTDATA / "floppy_fat12_corrupt_chunk.E01"
    with forensimg.open(path) as img:
        with pytest.raises(ChecksumError) as ei:
            img.read()
        e = ei.value
        assert e.chunk == dmg["chunk_index"] == 3
        assert (e.media_start, e.media_end - 1) == tuple(dmg["media_bytes"])
        assert e.path == str(path) and e.offset == dmg["chunk_file_offset"]
        assert "chunk 3" in str(e) and "196608" in str(e)
        assert e.fault_kind in (FaultKind.CHECKSUM, FaultKind.DECOMPRESS)  # type: ignore[attr-defined]
        # the other chunks read
        good = forensimg.open(TESTDATA / "floppy_fat12.E01")
        for i in range(img.chunk_count):
            if i != 3:
                assert img.read_chunk(i) == good.read_chunk(i)
        good.close()
    with forensimg.open(path, zero_fill=True) as img:
        data = img.read()
        assert [f.chunk for f in img.faults] == [3]
        want = entry["media_if_bad_chunk_zero_filled"]
        assert hashlib.md5(data).hexdigest() == want["md5"]
        if "sha256" in want:
            assert hashlib.sha256(data).hexdigest() == want["sha256"]


# -- corruption localisation on fresh images ------------------------------------------------------------


def _pick_chunks(img: EWFImage) -> dict[str, int]:
    locs = [img.chunk_location(i) for i in range(img.chunk_count)]
    raw = [i for i, loc in enumerate(locs) if not loc[3]]
    comp = [i for i, loc in enumerate(locs) if loc[3]]
    assert raw and comp, "the mixed input must give both kinds of chunk"
    picks = {"first": 0, "last": img.chunk_count - 1, "uncompressed": raw[0], "compressed": comp[len(comp) // 2]}
    segs = {loc[0] for loc in locs}
    if len(segs) > 1:  # first chunk of the second segment
        second = sorted(segs)[1]
        picks["segment2"] = next(i for i, loc in enumerate(locs) if loc[0] == second)
    return picks


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_one_byte_flip_in_any_chunk_is_reported(kind: str, made, media: bytes, tmp_path: Path) -> None:
    with forensimg.open(made[kind][0]) as img:
        assert isinstance(img, EWFImage)
        picks = _pick_chunks(img)
    for name, idx in picks.items():
        files = _copy(made[kind], tmp_path / name)
        with forensimg.open(files[0]) as img:
            seg, off, size, compressed = img.chunk_location(idx)
        _flip(seg, off + size // 2)
        with forensimg.open(files[0]) as img:  # opening succeeds
            cs = img.chunk_size
            with pytest.raises(ChecksumError) as ei:
                img.read_chunk(idx)
            e = ei.value
            assert e.chunk == idx, name
            assert (e.media_start, e.media_end) == (idx * cs, min((idx + 1) * cs, len(media)))
            assert e.path == str(seg) and e.offset == off
            assert seg.name in str(e) and f"chunk {idx}" in str(e)
            want_kinds = {FaultKind.CHECKSUM, FaultKind.DECOMPRESS, FaultKind.SIZE}
            assert e.fault_kind in want_kinds  # type: ignore[attr-defined]
            if not compressed:
                assert e.fault_kind is FaultKind.CHECKSUM  # type: ignore[attr-defined]
            for i in range(img.chunk_count):
                if i != idx:
                    assert img.read_chunk(i) == media[i * cs : (i + 1) * cs], (name, i)
        with forensimg.open(files[0], zero_fill=True) as img:
            data = img.read()
            assert [f.chunk for f in img.faults] == [idx]
            f = img.faults[0]
            assert f.media is not None and f.media.start == idx * cs and f.segment == str(seg)
            assert data[: idx * cs] == media[: idx * cs]
            assert data[(idx + 1) * cs :] == media[(idx + 1) * cs :]
            assert data[idx * cs : (idx + 1) * cs] == bytes(min(cs, len(media) - idx * cs))


def test_truncated_chunk_stream_and_short_stored_size(made, tmp_path: Path) -> None:
    files = _copy(made["single"], tmp_path)
    with forensimg.open(files[0]) as img:
        seg, off, size, compressed = img.chunk_location(1)
        assert compressed
    # replace the zlib stream by a valid stream of the wrong length, padded to the stored size
    short = zlib.compress(b"x" * 100)
    _patch(seg, off, short + bytes(size - len(short)))
    with forensimg.open(files[0]) as img:
        with pytest.raises(ChecksumError) as ei:
            img.read_chunk(1)
        assert ei.value.fault_kind is FaultKind.SIZE  # type: ignore[attr-defined]


# -- tables ------------------------------------------------------------------------------------------


def test_table_footer_damage_falls_back_to_table2(made, media: bytes, tmp_path: Path) -> None:
    files = _copy(made["single"], tmp_path)
    table = next(s for s in _sections(files[0]) if s.type == "table")
    _flip(files[0], table.data_offset + 24 + 8)  # inside the entries: the footer no longer matches
    with forensimg.open(files[0]) as img:
        assert img.read() == media
        faults = img.check_structure()
        assert len(faults) == 1 and "table2" in faults[0].detail
        assert faults[0].kind is FaultKind.METADATA and faults[0].offset == table.offset
        assert img.info.details["table2_fallbacks"] == 1
    table2 = next(s for s in _sections(files[0]) if s.type == "table2")
    _flip(files[0], table2.data_offset + 24 + 8)
    with pytest.raises(FormatError, match="table2"):
        forensimg.open(files[0])


def test_table2_disagreement_is_reported(made, media: bytes, tmp_path: Path) -> None:
    files = _copy(made["single"], tmp_path)
    t2 = next(s for s in _sections(files[0]) if s.type == "table2")
    raw = bytearray(files[0].read_bytes()[t2.data_offset : t2.end])
    count = struct.unpack_from("<I", raw)[0]
    struct.pack_into("<I", raw, 24, struct.unpack_from("<I", raw, 24)[0] + 1)
    struct.pack_into("<I", raw, 24 + 4 * count, zlib.adler32(bytes(raw[24 : 24 + 4 * count])))
    _patch(files[0], t2.data_offset, bytes(raw))
    with forensimg.open(files[0]) as img:
        assert img.read() == media  # table is good and is used
        (fault,) = img.check_structure()
        assert "disagrees" in fault.detail and fault.offset == t2.offset


def test_data_volume_and_hash_digest_disagreement(made, tmp_path: Path) -> None:
    files = _copy(made["single"], tmp_path)
    secs = {s.type: s for s in _sections(files[0])}
    # data section: change the CHS cylinders and fix its checksum
    data = bytearray(files[0].read_bytes()[secs["data"].data_offset : secs["data"].data_offset + 1052])
    data[24] ^= 1
    struct.pack_into("<I", data, 1048, zlib.adler32(bytes(data[:1048])))
    _patch(files[0], secs["data"].data_offset, bytes(data))
    # hash section: another MD5 with a valid checksum
    h = bytearray(files[0].read_bytes()[secs["hash"].data_offset : secs["hash"].data_offset + 36])
    h[0] ^= 0xFF
    struct.pack_into("<I", h, 32, zlib.adler32(bytes(h[:32])))
    _patch(files[0], secs["hash"].data_offset, bytes(h))
    with forensimg.open(files[0]) as img:
        faults = img.check_structure()
        kinds = sorted(str(f.kind) for f in faults)
        assert kinds == ["hash_mismatch", "metadata"], faults
        assert any("'data'" in f.detail and "volume" in f.detail for f in faults)
        # the digest's MD5 is reported (written together with the SHA-1)
        assert img.info.stored_hashes["md5"] != h[:16].hex()


def test_decode_table_entries_encase_671_overflow() -> None:
    # entries crossing 2 GiB: after 0x7fff0000 the writer stored full 32-bit offsets (bit 31 = offset)
    e = array("I", [0x80000010, 0x7FFF0000 | 0x80000000, 0x80001000, 0x80009000])
    starts, comp = decode_table_entries(e, 0, 0x80011000)
    assert list(starts) == [0x10, 0x7FFF0000, 0x80001000, 0x80009000, 0x80011000]
    assert list(comp) == [1, 1, 0, 0]
    # the same through a table group (the reader's lookup): quirk path past 2 GiB, arithmetic path below
    g = _Group(0, 0, e, 0, 0, 0x80011000, 0, "table")
    assert [g.locate(k) for k in range(4)] == [
        (0x10, 0x7FFF0000, True),
        (0x7FFF0000, 0x80001000, True),
        (0x80001000, 0x80009000, False),
        (0x80009000, 0x80011000, False),
    ]
    g = _Group(0, 0, array("I", [0x4C, 0x8000804C]), 0x733, 0x77F, 0x9000, 0, "table")
    assert [g.locate(k) for k in range(2)] == [(0x77F, 0x733 + 0x804C, False), (0x733 + 0x804C, 0x9000, True)]
    starts, comp = decode_table_entries(array("I", [0x4C, 0x8000804C]), 0x733, 0x9000)
    assert list(starts) == [0x733 + 0x4C, 0x733 + 0x804C, 0x9000] and list(comp) == [0, 1]


# -- segment sets ------------------------------------------------------------------------------------


def test_open_any_member_or_list(made, media: bytes) -> None:
    files = made["multi"]
    for p in (files[0], files[1], files[-1]):
        with forensimg.open(p) as img:
            assert img.info.segments == tuple(files)
            assert img.read() == media
    with forensimg.open(files) as img:
        assert img.read() == media


def test_swapped_names_read_by_header_number(made, media: bytes, tmp_path: Path) -> None:
    files = _copy(made["multi"], tmp_path)
    a, b = files[1], files[2]
    tmp = a.with_name("swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    with forensimg.open(files[0]) as img:
        assert img.info.segments[1] == b and img.info.segments[2] == a
        assert img.read() == media


def test_missing_middle_segment_is_named(made, tmp_path: Path) -> None:
    files = _copy(made["multi"], tmp_path)
    files[1].unlink()
    with pytest.raises(MissingSegmentError) as ei:
        forensimg.open(files[0])
    assert files[1].name in str(ei.value)


def test_missing_last_segment_is_named(made, tmp_path: Path) -> None:
    files = _copy(made["multi"], tmp_path)
    files[-1].unlink()
    with pytest.raises(MissingSegmentError) as ei:
        forensimg.open(files[0])
    assert files[-1].name in str(ei.value)


def test_duplicated_segment_number(made, tmp_path: Path) -> None:
    files = _copy(made["multi"], tmp_path)
    extra = files[0].with_suffix(f".E{len(files) + 1:02d}")
    shutil.copy(files[1], extra)
    with pytest.raises(MissingSegmentError, match="twice"):
        forensimg.open(files[0])


def test_truncated_last_segment_is_named(made, tmp_path: Path) -> None:
    files = _copy(made["multi"], tmp_path)
    last = files[-1]
    last.write_bytes(last.read_bytes()[: last.stat().st_size - 500])
    with pytest.raises(IncompleteImageError) as ei:
        forensimg.open(files[0])
    assert ei.value.path == str(last) and last.name in str(ei.value)


# -- structure damage at open ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["descriptor", "volume", "table_header", "next_pointer"])
def test_structure_checksums_are_fatal_with_file_and_offset(made, tmp_path: Path, where: str) -> None:
    files = _copy(made["single"], tmp_path)
    secs = _sections(files[0])
    vol = next(s for s in secs if s.type == "volume")
    table = next(s for s in secs if s.type == "table")
    if where == "descriptor":
        off = vol.offset + 20
        _flip(files[0], off)
    elif where == "volume":
        _flip(files[0], vol.data_offset + 4)
    elif where == "table_header":
        _flip(files[0], table.data_offset + 8)
    else:  # a next pointer into the past, with a valid descriptor checksum: no loop, an error
        raw = bytearray(files[0].read_bytes()[table.offset : table.offset + 76])
        struct.pack_into("<Q", raw, 16, 13)
        struct.pack_into("<I", raw, 72, zlib.adler32(bytes(raw[:72])))
        _patch(files[0], table.offset, bytes(raw))
    with pytest.raises(FormatError) as ei:
        forensimg.open(files[0])
    assert ei.value.path == str(files[0]) and ei.value.offset is not None
    assert files[0].name in str(ei.value)


@pytest.mark.parametrize(
    ("signature", "name"),
    [
        (b"LEF2\r\n\x81\x00", "Lx01"),
        (b"LVF\t\r\n\xff\x00", "L01"),
        (b"ADCRYPT\x00", "ADCRYPT"),
    ],
)
def test_other_ewf_variants_are_refused_by_name(tmp_path: Path, signature: bytes, name: str) -> None:
    p = tmp_path / "x.bin"
    p.write_bytes(signature + bytes(200))
    with pytest.raises(UnsupportedFormatError, match=name):
        forensimg.open(p)


def test_not_ewf_given_explicitly(tmp_path: Path) -> None:
    p = tmp_path / "x.E01"
    p.write_bytes(b"EVF\t\r\n\xff\x00" + b"\x02" + bytes(100))
    with pytest.raises(Error):
        forensimg.open(p, format="ewf")


def test_sessions_of_optical_media(tmp_path: Path, media: bytes) -> None:
    src = tmp_path / "cd.iso"
    src.write_bytes(media[: 2 * MiB])
    cue = tmp_path / "cd.cue"
    cue.write_text('FILE "cd.iso" BINARY\n  TRACK 01 MODE1/2048\n    INDEX 01 00:00:00\n')
    files = acquire(src, tmp_path / "cd", "-f", "encase6", "-m", "optical", "-P", "2048", "-T", str(cue))
    with forensimg.open(files[0]) as img:
        assert img.sector_size == 2048 and img.read() == media[: 2 * MiB]
        assert img.info.details["media_type"] == "optical"
        assert img.info.details["sessions"] == [{"first_sector": 16, "flags": 0}] or img.info.details["sessions"]


def _descriptor(stype: bytes, offset: int, size: int, nxt: int) -> bytes:
    d = bytearray(76)
    d[: len(stype)] = stype
    struct.pack_into("<QQ", d, 16, nxt, size)
    struct.pack_into("<I", d, 72, zlib.adler32(bytes(d[:72])))
    return bytes(d)


@pytest.mark.oracle
def test_error2_ranges_equal_ewfinfo(made, tmp_path: Path) -> None:
    """An ``error2`` section (spec §error2) spliced in before ``done`` reads as ImageInfo.unreadable."""
    from tests.helpers import run

    src = made["single"][0].read_bytes()
    done = _sections(made["single"][0])[-1]
    head = bytearray(520)
    struct.pack_into("<I", head, 0, 2)
    struct.pack_into("<I", head, 516, zlib.adler32(bytes(head[:516])))
    entries = struct.pack("<IIII", 10, 4, 700, 3)
    data = bytes(head) + entries + struct.pack("<I", zlib.adler32(entries))
    size = 76 + len(data)
    off = done.offset
    p = tmp_path / "err.E01"
    p.write_bytes(
        src[:off]
        + _descriptor(b"error2", off, size, off + size)
        + data
        + _descriptor(b"done", off + size, 0, off + size)
    )
    out = run("ewfinfo", p).stdout
    assert "at sector(s): 10 - 13 number: 4" in out and "at sector(s): 700 - 702 number: 3" in out
    with forensimg.open(p) as img:
        assert img.info.unreadable == (Range(10 * 512, 14 * 512), Range(700 * 512, 703 * 512))
        assert [r.lba(512) for r in img.info.unreadable] == [(10, 13), (700, 702)]
        assert img.check_structure() == ()
    # a damaged error2 checksum: reported, not used
    bad = bytearray(p.read_bytes())
    bad[off + 76 + 520] ^= 1
    p.write_bytes(bytes(bad))
    with forensimg.open(p) as img:
        assert img.info.unreadable == ()
        assert [f.kind for f in img.check_structure()] == [FaultKind.METADATA]


def test_misnumbered_segment_is_named(made, tmp_path: Path) -> None:
    files = _copy(made["multi"], tmp_path)
    _patch(files[1], 9, (7).to_bytes(2, "little"))  # .E02 claims to be segment 7
    with pytest.raises(MissingSegmentError) as ei:
        forensimg.open(files[0])
    assert ei.value.path == str(files[1]) and "segment 7" in str(ei.value)


def test_table2_header_damage_is_reported_not_fatal(made, media: bytes, tmp_path: Path) -> None:
    files = _copy(made["single"], tmp_path)
    t2 = next(s for s in _sections(files[0]) if s.type == "table2")
    _flip(files[0], t2.data_offset + 2)  # table2 header checksum fails; table is good
    with forensimg.open(files[0]) as img:
        assert img.read() == media
        (fault,) = img.check_structure()
        assert "table2" in fault.detail and fault.offset == t2.data_offset


def test_scan_runs_equal_single_chunk_checks():
    """scan_chunks checks runs of chunks on a thread pool: the data and every fault (with its expected/found)
    equal those of check_chunk, chunk by chunk, with runs of 2 chunks and a window of several runs in flight."""
    with forensimg.open(TESTDATA / "floppy_fat12_corrupt_chunk.E01") as img:
        single = [img.check_chunk(i) for i in range(img.chunk_count)]
        img._SCAN_TASK_BYTES = 2 * img.chunk_size  # type: ignore[misc]
        scanned = list(img.scan_chunks(1, img.chunk_count, workers=2))
    assert [i for i, _, _ in scanned] == list(range(1, len(single)))
    assert [(d, f) for _, d, f in scanned] == single[1:]
    assert [i for i, (_, f) in enumerate(single) if f is not None] == [3]
    assert single[3][1].expected.startswith("adler32:")
