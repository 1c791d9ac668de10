"""Checks that testdata/ matches testdata/MANIFEST.json and that the generator is deterministic.

The EWF and split-raw files were made with independent tools (see each image's ``commands``
in the manifest), e.g. ``floppy_fat12.E01``, generated with::

    faketime -f 2023-11-14\\ 22:13:20 ewfacquire -u -q -t out/floppy_fat12 -f encase6 -c best \\
        -b 128 -P 512 -C FORENSIMG-SHARED-003 ... src/floppy_fat12.raw

and ``disk_mbr.E01`` / ``disk_mbr_seg.E0x`` with ewfacquire 20140813 likewise (exact command
lines in MANIFEST.json).  The pyewf oracle checks are marked ``oracle`` and skip when
libewf-python is not installed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import generator

TESTDATA = Path(__file__).resolve().parent.parent / "testdata"
MANIFEST: dict[str, Any] = json.loads((TESTDATA / "MANIFEST.json").read_text(encoding="utf-8"))
FILES: list[dict[str, Any]] = MANIFEST["files"]
IMAGES: dict[str, dict[str, Any]] = MANIFEST["images"]
COMMITTED = [f for f in FILES if f["committed"]]
EWF_IMAGES = [i for i, im in IMAGES.items() if im["kind"] == "ewf"]
# files in testdata/ that are not data and therefore not in the manifest
NOT_DATA = {"MANIFEST.json", "README.md", "generate.py"}


gen = generator()


def _hashes(data: bytes) -> dict[str, str]:
    return {
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _pyewf() -> ModuleType:
    return pytest.importorskip("pyewf", reason="pyewf (libewf-python, extra 'oracle') is not installed")


def _read_ewf_media(pyewf: ModuleType, image_id: str) -> tuple[Any, bytes]:
    """Open an EWF image with pyewf and return (open handle, whole media)."""
    segments = [str(TESTDATA / p) for p in IMAGES[image_id]["files"]]
    assert pyewf.glob(segments[0]) == segments, "pyewf must find exactly the manifest's segments"
    handle = pyewf.handle()
    handle.open(segments)
    size = handle.get_media_size()
    data = handle.read(size)
    return handle, data


# --------------------------------------------------------------------------- manifest itself


def test_manifest_is_consistent() -> None:
    by_path = {f["path"]: f for f in FILES}
    assert len(by_path) == len(FILES), "duplicate paths in files[]"
    for image_id, image in IMAGES.items():
        assert image["files"], image_id
        assert image["files"][0] == image_id, "an image is keyed by its first file"
        for n, path in enumerate(image["files"], 1):
            entry = by_path[path]
            assert entry["image"] == image_id
            assert entry["kind"] == image["kind"]
            assert entry["committed"] == (image["status"] == "committed")
            if len(image["files"]) > 1:
                assert entry["segment"] == [n, len(image["files"])]
        media = image["media"]
        assert media["sectors"] * media["bytes_per_sector"] == media["size"]
        for key in ("origin", "commands", "tool", "tool_version", "licence"):
            assert image[key], f"{image_id}: {key} is empty"
    assert {f["image"] for f in FILES} == set(IMAGES)


def test_every_data_file_is_listed() -> None:
    present = {p.name for p in TESTDATA.iterdir() if p.is_file() and p.name not in NOT_DATA}
    assert present == {f["path"] for f in COMMITTED}


@pytest.mark.parametrize("entry", COMMITTED, ids=[f["path"] for f in COMMITTED])
def test_file_size_and_sha256(entry: dict[str, Any]) -> None:
    data = (TESTDATA / entry["path"]).read_bytes()
    assert len(data) == entry["size"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


# --------------------------------------------------------------------------- canonical.raw


def test_generate_script_reproduces_canonical(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(TESTDATA / "generate.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "canonical.raw").read_bytes() == (TESTDATA / "canonical.raw").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canonical.raw"], "no temporary file left behind"


def test_make_canonical_matches_file_and_manifest() -> None:
    data = gen.make_canonical()
    assert data == (TESTDATA / "canonical.raw").read_bytes()
    media = IMAGES["canonical.raw"]["media"]
    assert len(data) == media["size"] == 1_049_600
    assert len(data) % 65536 != 0, "the last 64 KiB chunk must be partial"
    assert _hashes(data) == {k: media[k] for k in ("md5", "sha1", "sha256")}


def test_every_canonical_sector_carries_its_lba() -> None:
    data = (TESTDATA / "canonical.raw").read_bytes()
    assert len(data) % 512 == 0
    for lba in range(len(data) // 512):
        assert data[lba * 512 : lba * 512 + 17] == b"LBA %012d\n" % lba, f"sector {lba}"


def test_canonical_region_kinds() -> None:
    data = (TESTDATA / "canonical.raw").read_bytes()
    layout = IMAGES["canonical.raw"]["layout"]
    region_size = layout["region_size"]
    kinds = layout["region_kinds"]
    assert len(kinds) == -(-len(data) // region_size)
    assert set(kinds) == {"zero", "random", "text"}
    per_kind: dict[str, int] = {}
    for index, kind in enumerate(kinds):
        assert gen.region_kind(index) == kind
        region = data[index * region_size : (index + 1) * region_size]
        per_kind[kind] = per_kind.get(kind, 0) + len(region)
        bodies = b"".join(region[s + 17 : s + 512] for s in range(0, len(region), 512))
        if kind == "zero":
            assert bodies == bytes(len(bodies)), f"region {index}"
        elif kind == "text":
            assert bodies.isascii() and b"\n" in bodies, f"region {index}"
            assert len(zlib.compress(bodies)) < len(bodies) // 4, f"region {index} should compress well"
        else:
            assert len(zlib.compress(bodies)) > len(bodies) * 0.99, f"region {index} should not compress"
    assert per_kind == layout["bytes_per_kind"]


def test_make_lba_stamped_is_deterministic_and_prefix_stable() -> None:
    big = gen.make_lba_stamped(3 * 1024 * 1024 + 100, 7)
    assert big == gen.make_lba_stamped(3 * 1024 * 1024 + 100, 7)
    assert gen.make_lba_stamped(1_000_001, 7) == big[:1_000_001]
    assert gen.make_lba_stamped(0, 7) == b""
    assert gen.make_lba_stamped(len(big), 8) != big, "the seed must matter"
    assert gen.make_canonical(2 * 1_049_600)[:1_049_600] == gen.make_canonical()
    last = (len(big) - 1) // 512
    assert big[last * 512 : last * 512 + 17] == b"LBA %012d\n" % last
    with pytest.raises(ValueError):
        gen.make_lba_stamped(-1, 7)


# --------------------------------------------------------------------------- split raw


def test_split_pieces_concatenate_to_media() -> None:
    image = IMAGES["floppy_fat12.raw.000"]
    data = b"".join((TESTDATA / p).read_bytes() for p in image["files"])
    media = image["media"]
    assert len(data) == media["size"]
    assert _hashes(data) == {k: media[k] for k in ("md5", "sha1", "sha256")}


# --------------------------------------------------------------------------- pyewf oracle


@pytest.mark.oracle
@pytest.mark.parametrize("image_id", EWF_IMAGES)
def test_pyewf_reads_ewf_to_manifest_media(image_id: str) -> None:
    pyewf = _pyewf()
    image = IMAGES[image_id]
    ewf = image["ewf"]
    handle, data = _read_ewf_media(pyewf, image_id)
    try:
        assert handle.get_media_size() == len(data) == image["media"]["size"]
        assert handle.get_bytes_per_sector() == image["media"]["bytes_per_sector"]
        assert handle.get_sectors_per_chunk() == ewf["sectors_per_chunk"]
        for algorithm, value in ewf["stored_hashes"].items():
            assert handle.get_hash_value(algorithm.upper()) == value
        for key, value in ewf["case"].items():
            if key in ("acquiry_date_utc", "acquiry_date_epoch"):
                continue
            assert handle.get_header_value(key) == value, key
    finally:
        handle.close()
    expected = image.get("media_if_bad_chunk_zero_filled", image["media"])
    assert _hashes(data) == {k: expected[k] for k in ("md5", "sha1", "sha256")}
    if "damage" not in image:
        assert ewf["stored_hashes"]["md5"] == image["media"]["md5"]


@pytest.mark.oracle
def test_pyewf_corrupt_image_differs_only_in_damaged_chunk() -> None:
    pyewf = _pyewf()
    damage = IMAGES["floppy_fat12_corrupt_chunk.E01"]["damage"]
    good_handle, good = _read_ewf_media(pyewf, "floppy_fat12.E01")
    bad_handle, bad = _read_ewf_media(pyewf, "floppy_fat12_corrupt_chunk.E01")
    good_handle.close()
    bad_handle.close()
    first, last = damage["media_bytes"]
    chunk_size = IMAGES["floppy_fat12.E01"]["ewf"]["chunk_size"]
    assert (first, last) == (damage["chunk_index"] * chunk_size, (damage["chunk_index"] + 1) * chunk_size - 1)
    assert damage["sectors"] == [first // 512, last // 512]
    assert bad[:first] == good[:first]
    assert bad[last + 1 :] == good[last + 1 :]
    assert bad[first : last + 1] == bytes(last + 1 - first)
    assert good[first : last + 1] != bytes(last + 1 - first)
    segment = (TESTDATA / damage["segment"]).read_bytes()
    original = (TESTDATA / "floppy_fat12.E01").read_bytes()
    offset = damage["file_offset"]
    assert (original[offset], segment[offset]) == (damage["old_byte"], damage["new_byte"])
    assert damage["old_byte"] ^ 0xFF == damage["new_byte"]
    assert original[:offset] == segment[:offset] and original[offset + 1 :] == segment[offset + 1 :]


@pytest.mark.oracle
def test_disk_mbr_raw_derived_from_e01(tmp_path: Path) -> None:
    _pyewf()
    entry = next(f for f in FILES if f["path"] == "disk_mbr.raw")
    assert not entry["committed"]
    segments = [TESTDATA / p for p in IMAGES["disk_mbr.E01"]["files"]]
    out = gen.derive_raw_from_ewf(segments, tmp_path / "disk_mbr.raw")
    data = out.read_bytes()
    assert len(data) == entry["size"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] == IMAGES["disk_mbr.raw"]["media"]["sha256"]
