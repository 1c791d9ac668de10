"""Odd geometries (issue 8, point 10): 2048- and 4096-byte sectors, media not a multiple of the sector size.

Every format is written with each sector size and read back (E01 also through libewf: pyewf/ewfinfo);
acquisition from real loop devices with 2048- and 4096-byte logical sectors records the device's sector
size; a source whose size is not a multiple of the sector size is recorded and hashed exactly, padded
only in E01 (which stores whole sectors), and the report says so; restore handles all of it.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from forensimg.hashing import hash_image
from forensimg.image import SourceInfo
from forensimg.restore import restore
from tests.fixtures.loopdev import needs_root
from tests.helpers import have, run

FORMATS = {"raw": "img.raw", "split": "img.001", "ewf": "img.E01", "fimg": "img.fimg"}


def _media(size: int, sector: int) -> bytes:
    """Every sector stamped with its LBA (offset bugs show), the rest pseudo-random."""
    rnd = random.Random(size ^ sector)
    out = bytearray()
    lba = 0
    while len(out) < size:
        stamp = b"LBA %012d/%d\n" % (lba, sector)
        out += stamp + rnd.randbytes(sector - len(stamp))
        lba += 1
    return bytes(out[:size])


@pytest.mark.parametrize("sector", [2048, 4096])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_writes_and_reads_big_sectors(tmp_path, fmt, sector):
    data = _media(64 * sector + 3 * sector, sector)
    opts: dict = {"sector_size": sector, "hashes": ("md5", "sha256")}
    if fmt == "split":
        opts["segment_size"] = 40 * sector
    if fmt == "ewf":
        opts["source"] = SourceInfo(path="/dev/sr0", media_type="optical" if sector == 2048 else "fixed",
                                    logical_sector_size=sector)
    with forensimg.create(tmp_path / FORMATS[fmt], format=fmt, **opts) as w:
        w.write(data)
    res = w.close()
    assert res.padded_bytes == 0 and res.size == len(data)
    with forensimg.open(res.paths[0] if fmt != "split" else list(res.paths)) as img:
        assert img.size == len(data)
        if fmt in ("ewf", "fimg"):  # raw carries no geometry of its own
            assert img.sector_size == sector
        assert img.read_at(5 * sector, sector) == data[5 * sector : 6 * sector]
        assert hash_image(img, ("sha256",))["sha256"] == hashlib.sha256(data).hexdigest()
    if fmt == "ewf":
        pyewf = pytest.importorskip("pyewf")
        h = pyewf.handle()
        h.open([str(p) for p in res.paths])
        try:
            assert h.get_bytes_per_sector() == sector
            assert h.get_media_size() == len(data)
            if sector == 2048:
                assert h.get_media_type() == pyewf.media_types.OPTICAL
        finally:
            h.close()
        if have("ewfinfo"):
            out = run("ewfinfo", res.paths[0]).stdout
            assert f"Bytes per sector:\t{sector}" in out.replace(": ", ":\t").replace(":\t\t", ":\t")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_size_not_a_multiple_of_the_sector_size(tmp_path, capsys, fmt):
    """Recorded and hashed exactly; padded only where the format needs whole sectors (E01), and said so."""
    data = _media(1_000_003, 512)
    src = tmp_path / "odd.bin"
    src.write_bytes(data)
    target = tmp_path / FORMATS[fmt]
    args = ["--no-custody", "acquire", str(src), str(target), "--json", "-q", "--hash", "md5,sha256"]
    if fmt == "split":
        args += ["--segment-size", "300000"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    report = Path(str(target) + ".txt").read_text()
    first = Path(d["targets"][0]["result"]["paths"][0])
    # the acquisition is recorded and hashed exactly, whatever the format
    assert d["size"] == 1_000_003 and d["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
    t = d["targets"][0]
    if fmt == "ewf":
        # E01 stores whole sectors: 445 zero bytes appended in that copy only, which stores the hashes of
        # its padded media, and the report says so
        padded = data + bytes(445)
        assert t["padded"] and t["padded_bytes"] == 445 and t["stored_size"] == 1_000_448
        assert t["hashes"]["sha256"] == hashlib.sha256(padded).hexdigest()
        assert "PADDED with 445 zero bytes" in report
        with forensimg.open(first) as img:
            assert img.size == 1_000_448
            assert img.info.stored_hashes["md5"] == hashlib.md5(padded).hexdigest()
            assert hash_image(img, ("sha256",))["sha256"] == hashlib.sha256(padded).hexdigest()
    else:
        assert not t["padded"] and t["padded_bytes"] == 0 and t["stored_size"] == 1_000_003
        assert t["hashes"] == d["hashes"]
        assert "the exact media, not padded" in report
        with forensimg.open(first) as img:
            assert img.size == 1_000_003
            assert hash_image(img, ("sha256",))["sha256"] == hashlib.sha256(data).hexdigest()


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("sector", [2048, 4096])
def test_acquire_big_sector_device_then_restore_to_big_sector_device(tmp_path, capsys, loop_factory, sector):
    data = _media(256 * sector, sector)
    backing = tmp_path / "evidence.img"
    backing.write_bytes(data)
    dev = loop_factory(backing, sector_size=sector)
    target = tmp_path / "ev.E01"
    assert main(["--no-custody", "acquire", dev, str(target), "--json", "-q", "--restore-rw"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sector_size"] == sector and d["targets"][0]["padded_bytes"] == 0
    assert d["hashes"]["md5"] == hashlib.md5(data).hexdigest()
    with forensimg.open(target) as img:
        assert img.sector_size == sector
        assert img.info.source is not None and img.info.source.logical_sector_size == sector
    # restore onto another device with the same sector size: no geometry warning, verified
    dest_backing = tmp_path / "dest.img"
    dest_backing.write_bytes(bytes(len(data) + 8 * sector))
    dest = loop_factory(dest_backing, sector_size=sector)
    res = restore(target, dest, confirm=dest)
    assert res.status == "verified" and res.destination.logical_sector_size == sector
    assert not [w for w in res.warnings if "sectors" in w]
    assert dest_backing.read_bytes()[: len(data)] == data
    # onto a 512-byte-sector device: done, but the report warns that LBA structures may not line up
    small_backing = tmp_path / "dest512.img"
    small_backing.write_bytes(bytes(len(data)))
    dest512 = loop_factory(small_backing, sector_size=512)
    res = restore(target, dest512, confirm=dest512)
    assert res.status == "verified"
    assert any(f"{sector}-byte sectors, the destination 512-byte" in w for w in res.warnings)


@needs_root
@pytest.mark.root
def test_optical_media_type_from_a_2048_byte_device(tmp_path, capsys, loop_factory):
    """A 2048-byte-sector source acquired to E01: bytes per sector 2048 in the E01 (libewf agrees).

    Whether the E01 media type becomes "optical" depends on the source being an optical drive (sysfs
    device type 5, /dev/sr*); a loop device is not, so "fixed" is the honest answer here.
    """
    data = _media(128 * 2048, 2048)
    backing = tmp_path / "disc.iso"
    backing.write_bytes(data)
    dev = loop_factory(backing, sector_size=2048)
    target = tmp_path / "disc.E01"
    assert main(["--no-custody", "acquire", dev, str(target), "-q", "--restore-rw"]) == 0
    pyewf = pytest.importorskip("pyewf")
    h = pyewf.handle()
    h.open([str(target)])
    try:
        assert h.get_bytes_per_sector() == 2048
        assert h.get_media_size() == len(data)
        assert h.get_media_type() in (pyewf.media_types.FIXED, pyewf.media_types.REMOVABLE)
    finally:
        h.close()
    # said to be optical: the TOC ioctls are tried on the device (a loop device answers none) and recorded
    target2 = tmp_path / "disc2.E01"
    assert main(["--no-custody", "acquire", dev, str(target2), "-q", "--restore-rw", "--media-type", "optical",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    toc = d["source_identity"]["optical_toc"]
    assert toc["status"] == "not available" and "CDROMREADTOCHDR" in toc["detail"]
    h = pyewf.handle()
    h.open([str(target2)])
    try:
        assert h.get_media_type() == pyewf.media_types.OPTICAL and h.get_bytes_per_sector() == 2048
    finally:
        h.close()


def test_media_type_optical_and_2048_byte_sectors_to_e01(tmp_path, capsys):
    """``--media-type optical -P 2048``: libewf's ewfinfo shows an optical disc with 2048-byte sectors;
    the fimg copy records the same media type; the report says sessions are not stored in E01."""
    data = _media(100 * 2048, 2048)
    src = tmp_path / "disc.iso"
    src.write_bytes(data)
    e01, fimg = tmp_path / "disc.E01", tmp_path / "disc.fimg"
    assert main(["--no-custody", "acquire", str(src), str(e01), "--mirror", str(fimg), "--media-type", "optical",
                 "-P", "2048", "--json", "-q"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sector_size"] == 2048 and d["source_identity"]["media_type"] == "optical"
    assert d["source_identity"]["optical_toc"]["status"] == "not available"  # a file reports no TOC
    if have("ewfinfo"):
        out = run("ewfinfo", e01).stdout
        assert "Media type:\t\toptical disk" in out
        assert "Bytes per sector:\t2048" in out and "Number of sectors:\t100" in out
    with forensimg.open(fimg) as img:
        assert img.info.source is not None and img.info.source.media_type == "optical"
        assert img.sector_size == 2048
    report = Path(str(e01) + ".txt").read_text()
    assert "optical sessions: not stored in E01" in report and "Media type:            optical" in report
    # without the option a file is "fixed"
    assert main(["--no-custody", "acquire", str(src), str(tmp_path / "f.E01"), "-P", "2048", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["source_identity"]["media_type"] == "fixed"


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("fmt", ["raw", "fimg", "ewf"])
def test_restore_odd_size_image_onto_device(tmp_path, loop_factory, fmt):
    data = _media(1_000_003, 512)
    with forensimg.create(tmp_path / FORMATS[fmt], format=fmt, hashes=("md5", "sha256")) as w:
        w.write(data)
    res = w.close()
    media = data + bytes(res.padded_bytes)
    backing = tmp_path / "dest.img"
    backing.write_bytes(b"\xee" * (1 << 20))
    dev = loop_factory(backing)
    r = restore(res.paths[0], dev, confirm=dev)
    assert r.status == "verified" and r.media_size == len(media)
    got = backing.read_bytes()
    assert got[: len(media)] == media
    assert got[len(media) :] == b"\xee" * ((1 << 20) - len(media))  # the tail, partial sector included
    if len(media) % 512:
        assert any("ends inside a 512-byte destination sector" in w for w in r.warnings)
        assert r.tail is not None and r.tail.start == len(media)
