"""E01 files forensimg writes, checked by libewf and The Sleuth Kit (issue 3, point 6).

Oracles: ``ewfverify -q`` and ``ewfinfo`` from Debian ewf-tools 20140813, pyewf (libewf-python
20260924), ``img_stat``/``mmls``/``fls`` from the Sleuth Kit, and forensimg's own reader.
"""

from __future__ import annotations

import hashlib
import random
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import forensimg
from forensimg.errors import IncompleteImageError
from forensimg.image import CaseInfo, SourceInfo
from forensimg.writer import WriteResult
from tests.helpers import TESTDATA, have, run

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(not (have("ewfverify") and have("ewfinfo")), reason="ewf-tools not installed"),
]

pyewf = pytest.importorskip("pyewf")

MiB = 1 << 20
WHEN = datetime(2026, 11, 28, 3, 3, 33, tzinfo=UTC)


def media(size: int, seed: int = 11) -> bytes:
    """Zero, random and text regions (regions of varied length, not chunk-aligned)."""
    rnd = random.Random(seed)
    parts: list[bytes] = []
    total = 0
    i = 0
    while total < size:
        n = rnd.randrange(2000, 150_000)
        kind = i % 3
        if kind == 0:
            parts.append(bytes(n))
        elif kind == 1:
            parts.append(rnd.randbytes(n))
        else:
            parts.append(b"".join(b"%06d log line for the E01 writer\n" % (total + j) for j in range(n // 36)))
        total += len(parts[-1])
        i += 1
    return b"".join(parts)[:size]


INPUT = media(3 * MiB + 1234)  # not a whole number of sectors: the writer pads with zeros


def write(path: Path, data: bytes, *, unreadable: tuple[tuple[int, int], ...] = (), **opts: Any) -> WriteResult:
    with forensimg.create(path, acquired_at=WHEN, **opts) as w:
        for i in range(0, len(data), 1 << 19):
            w.write(data[i : i + (1 << 19)])
        for off, ln in unreadable:
            w.mark_unreadable(off, ln)
    return w.close()


def ewfverify(first: Path) -> str:
    """Run ``ewfverify -q``; require exit 0 and return the MD5 it computed (after checking the stored one)."""
    p = run("ewfverify", "-q", first, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    stored = re.search(r"MD5 hash stored in file:\s+([0-9a-f]{32})", p.stdout)
    calc = re.search(r"MD5 hash calculated over data:\s+([0-9a-f]{32})", p.stdout)
    assert stored and calc, p.stdout
    assert stored.group(1) == calc.group(1)
    return calc.group(1)


def ewfinfo(first: Path) -> tuple[dict[str, str], str]:
    out = run("ewfinfo", first).stdout
    d: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"^\t([^\t:][^:]*):\t+(.*)$", line)
        if m:
            d[m.group(1).strip()] = m.group(2).strip()
    return d, out


def pyewf_read(first: Path) -> tuple[bytes, dict[str, str | None], int]:
    h = pyewf.handle()
    h.open(pyewf.glob(str(first)))
    try:
        data = bytes(h.read(h.get_media_size()))
        hashes = {"md5": h.get_hash_value("MD5"), "sha1": h.get_hash_value("SHA1")}
        return data, hashes, h.get_bytes_per_sector()
    finally:
        h.close()


MATRIX = [
    # (compression, sectors per chunk, bytes per sector, segment size or None, error2?, case)
    ("none", 16, 512, None, False, "ascii"),
    ("none", 64, 512, 400_000, True, "unicode"),
    ("none", 128, 4096, 1_200_000, False, "empty"),
    ("fast", 16, 512, 300_000, True, "ascii"),
    ("fast", 64, 512, None, False, "unicode"),
    ("fast", 64, 4096, 700_000, True, "empty"),
    ("fast", 128, 512, None, True, "unicode"),
    ("best", 16, 4096, None, True, "unicode"),
    ("best", 64, 512, 250_000, False, "ascii"),
    ("best", 128, 4096, 1_100_000, True, "ascii"),
]

CASES = {
    "ascii": CaseInfo("CASE-42", "EV-7", "J. Examiner", "laptop disk", "seized 2026-11-28"),
    "unicode": CaseInfo("Fall é 1", "Beweis ü 2", "Jürgen Müller", "Festplatte 日本", "notes — «ok»"),
    "empty": CaseInfo(),
}


@pytest.mark.parametrize(
    ("compression", "spc", "bps", "segment_size", "with_errors", "case_kind"),
    MATRIX,
    ids=[
        f"{c}-spc{s}-bps{b}-{'multi' if g else 'single'}-{'err' if e else 'noerr'}-{k}" for c, s, b, g, e, k in MATRIX
    ],
)
def test_written_e01_passes_libewf_and_reads_back(
    tmp_path: Path,
    compression: str,
    spc: int,
    bps: int,
    segment_size: int | None,
    with_errors: bool,
    case_kind: str,
) -> None:
    case = CASES[case_kind]
    unreadable = ((3 * bps + 100, 2 * bps), (2 * MiB, 5 * bps + 1)) if with_errors else ()
    r = write(
        tmp_path / "img.E01",
        INPUT,
        format="e01",
        compression=compression,
        sectors_per_chunk=spc,
        sector_size=bps,
        segment_size=segment_size,
        case=case,
        source=SourceInfo(model="TestDisk 1000", serial="SER-99"),
        unreadable=unreadable,
    )
    padded = INPUT + bytes(-len(INPUT) % bps)
    md5 = hashlib.md5(padded).hexdigest()
    sha1 = hashlib.sha1(padded).hexdigest()
    assert r.hashes == {"md5": md5, "sha1": sha1}
    if segment_size is None:
        assert len(r.paths) == 1
    else:
        assert len(r.paths) >= 2
        assert all(p.stat().st_size <= segment_size for p in r.paths)
    first = r.paths[0]

    # ewfverify (libewf 20140813): exit 0, same MD5
    assert ewfverify(first) == md5

    # pyewf (current libewf): same media bytes and stored hashes
    data, hashes, pbps = pyewf_read(first)
    assert data == padded
    assert hashes == {"md5": md5, "sha1": sha1}
    assert pbps == bps

    # ewfinfo: metadata
    info, text = ewfinfo(first)
    assert info["File format"] == "EnCase 6"
    assert info["Bytes per sector"] == str(bps)
    assert info["Number of sectors"] == str(len(padded) // bps)
    assert info["Sectors per chunk"] == str(spc)
    assert (
        info["Compression level"]
        == {
            "none": "no compression",
            "fast": "good (fast) compression",
            "best": "best compression",
        }[compression]
    )
    labels = {
        "Case number": case.case_number,
        "Examiner name": case.examiner,
        "Evidence number": case.evidence_number,
        "Description": case.description,
        "Notes": case.notes,
    }
    for label, value in labels.items():
        if value:
            assert info[label] == value, label
        else:
            assert info.get(label, "") == "", label
    assert info["MD5"] == md5 and info["SHA1"] == sha1
    if with_errors:
        first_a, count_a = 3, 3  # bytes 3*bps+100 … 5*bps+100 touch sectors 3, 4, 5
        first_b = 2 * MiB // bps
        count_b = 6  # 5 sectors + 1 byte
        assert "Read errors during acquiry" in text
        assert re.search(rf"at sector\(s\): {first_a} - {first_a + count_a - 1} number: {count_a}\b", text), text
        assert re.search(rf"at sector\(s\): {first_b} - {first_b + count_b - 1} number: {count_b}\b", text), text
    else:
        assert "Read errors" not in text

    # forensimg's reader: same bytes, metadata and stored hashes
    with forensimg.open(first) as img:
        assert img.info.size == len(padded)
        assert img.read() == padded
        assert img.info.stored_hashes == {"md5": md5, "sha1": sha1}
        assert img.info.case == case
        assert img.info.sector_size == bps
        assert img.info.chunk_size == spc * bps
        assert img.info.complete
        assert img.info.acquired_at == WHEN
        assert len(img.info.segments) == len(r.paths)
        if with_errors:
            assert [(u.start, u.end) for u in img.info.unreadable] == [
                (3 * bps, 6 * bps),
                (2 * MiB, 2 * MiB + 6 * bps),
            ]


def test_sleuthkit_reads_written_disk(tmp_path: Path) -> None:
    """disk_mbr.E01's media re-written by forensimg: mmls sees both partitions, fls lists files."""
    if not (have("mmls") and have("fls") and have("img_stat")):
        pytest.skip("sleuthkit not installed")
    disk, _, _ = pyewf_read(TESTDATA / "disk_mbr.E01")
    r = write(tmp_path / "disk.E01", disk, segment_size=MiB, compression="fast")
    assert len(r.paths) >= 2
    first = r.paths[0]
    assert ewfverify(first) == hashlib.md5(disk).hexdigest()
    stat = run("img_stat", first).stdout
    assert "ewf" in stat.lower()
    assert re.search(rf"Size of data in bytes:\s+{len(disk)}", stat), stat
    mmls = run("mmls", first).stdout
    starts = {int(m.group(1)) for m in re.finditer(r"^\d+:\s+\d+:\d+\s+(\d+)\s+", mmls, re.MULTILINE)}
    assert starts == {2048, 8192}, mmls
    ext = run("fls", "-o", "8192", first).stdout
    assert "hello.txt" in ext and "random_1250K.bin" in ext and "lost+found" in ext
    fat = run("fls", "-o", "2048", first).stdout
    assert fat.strip(), "fls lists the FAT partition"


def test_segment_names_past_e99_open_everywhere(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(8192 * 105)
    r = write(tmp_path / "many.E01", data, sectors_per_chunk=16, compression="none", segment_size=14_000)
    names = [p.name for p in r.paths]
    assert len(names) == 105 and names[99] == "many.EAA" and names[-1] == "many.EAF"
    assert ewfverify(r.paths[0]) == hashlib.md5(data).hexdigest()
    assert pyewf_read(r.paths[0])[0] == data
    with forensimg.open(r.paths[0]) as img:
        assert img.read() == data


def test_abort_is_incomplete(tmp_path: Path) -> None:
    w = forensimg.create(tmp_path / "cut.E01", segment_size=120_000)
    w.write(random.Random(1).randbytes(400_000))
    w.abort()
    with pytest.raises(IncompleteImageError):
        forensimg.open(tmp_path / "cut.E01")
    assert run("ewfverify", "-q", tmp_path / "cut.E01", check=False).returncode != 0


@pytest.mark.parametrize(
    ("media_type", "physical", "label"),
    [("removable", False, "removable disk"), ("optical", True, "optical disk (CD/DVD/BD)")],
)
def test_media_type_and_flags(tmp_path: Path, media_type: str, physical: bool, label: str) -> None:
    src = SourceInfo(media_type=media_type, is_physical=physical)
    r = write(tmp_path / "m.E01", INPUT[:200_000], source=src, sector_size=2048 if media_type == "optical" else 512)
    info, _ = ewfinfo(r.paths[0])
    assert info["Media type"] == label
    assert info["Is physical"] == ("yes" if physical else "no")
    assert ewfverify(r.paths[0])


def test_md5_only_has_no_digest_section_and_verifies(tmp_path: Path) -> None:
    r = write(tmp_path / "h.E01", INPUT[:300_000], hashes=("md5",))
    assert set(r.hashes) == {"md5"}
    assert ewfverify(r.paths[0]) == r.hashes["md5"]
    _, hashes, _ = pyewf_read(r.paths[0])
    assert hashes["md5"] == r.hashes["md5"] and hashes["sha1"] is None


def test_closing_only_last_segment_reads_everywhere(tmp_path: Path) -> None:
    """Unreadable ranges reported after the last chunk: the set ends with a segment without chunks."""
    from tests.formats.ewf.test_writer import late_ranges_set

    paths, data = late_ranges_set(tmp_path)
    assert ewfverify(paths[0]) == hashlib.md5(data).hexdigest()
    assert pyewf_read(paths[0])[0] == data
    _, text = ewfinfo(paths[0])
    assert "total number: 480" in text
    with forensimg.open(paths[0]) as img:
        assert img.read() == data
        assert len(img.info.unreadable) == 480
