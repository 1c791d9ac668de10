"""Real I/O errors: a FUSE file failing chosen sectors with EIO, attached as a loop block device.

Recorded unreadable ranges must equal the injected ones exactly (sector-exact thanks to O_DIRECT
bisection), every other sector must equal the source, and each format records the ranges (E01 error2
read back with ewfinfo; fimg error map; raw in the report).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from tests.fixtures.eio import EIODevice, needs_fuse

pytestmark = [pytest.mark.root, pytest.mark.fuse, needs_fuse, pytest.mark.xdist_group("acquire-eio")]

BAD = [(100, 1), (2000, 3), (4097, 2), (8191, 1)]  # (first LBA, count); the last is the final sector


def _fimg_writer_ready() -> bool:
    try:
        mod = importlib.import_module("forensimg.formats.fimg")
    except ImportError:
        return False
    return hasattr(mod, "create_writer")


def _expected(data: bytes) -> bytes:
    out = bytearray(data)
    for lba, n in BAD:
        out[lba * 512 : (lba + n) * 512] = bytes(n * 512)
    return bytes(out)


@pytest.fixture
def bad_disk(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(4 << 20)
    p = tmp_path / "backing.img"
    p.write_bytes(data)
    return p, data


@pytest.mark.parametrize("ext", ["raw", "E01", "fimg"])
def test_unreadable_sectors_are_isolated_exactly(ext: str, eio_device: EIODevice, bad_disk: tuple[Path, bytes],
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if ext == "fimg" and not _fimg_writer_ready():
        pytest.skip("fimg writer not available yet")
    backing, data = bad_disk
    dev = eio_device(backing, BAD)
    # the fixture really fails: a direct read of a bad sector gives EIO
    out = tmp_path / f"img.{ext}"
    rc = main(["--no-custody", "acquire", dev, str(out), "--json", "--retries", "1"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    got = [(r["first_lba"], r["sectors"]) for r in res["unreadable"]]
    assert got == BAD
    assert all(r["errno"] == 5 for r in res["unreadable"])
    assert res["read_retries"] == 2  # the one 4 MiB block failed once and was retried once (--retries 1)
    with forensimg.open(out) as img:
        media = img.read()
        if ext != "raw":  # raw has no place for them: the report holds them
            assert [(r.start // 512, r.length // 512) for r in img.info.unreadable] == BAD
    assert media == _expected(data)
    import hashlib

    assert res["hashes"].get("sha256", hashlib.sha256(media).hexdigest()) == hashlib.sha256(media).hexdigest()
    if "md5" in res["hashes"]:
        assert res["hashes"]["md5"] == hashlib.md5(media).hexdigest()
    txt = Path(str(out) + ".txt").read_text()
    assert "sectors 2000..2002" in txt and "errno 5" in txt
    assert "zero-filled" in txt
    if ext == "E01" and shutil.which("ewfinfo"):
        info = subprocess.run(["ewfinfo", str(out)], capture_output=True, text=True, check=True).stdout
        assert "total number: 4" in info
        assert "at sector(s): 2000 - 2002 number: 3" in info
        assert "at sector(s): 4097 - 4098 number: 2" in info
        v = subprocess.run(["ewfverify", "-q", str(out)], capture_output=True, text=True)
        assert v.returncode == 0, v.stdout + v.stderr


def test_buffered_reads_alone_would_lose_whole_pages(eio_device: EIODevice, bad_disk: tuple[Path, bytes]) -> None:
    """The fixture's premise: a buffered read fails a whole page, an O_DIRECT sector read only the bad one."""
    from forensimg.acquire.source import open_source
    from forensimg.errors import SourceReadError

    backing, _ = bad_disk
    dev = eio_device(backing, BAD)
    with open_source(dev) as src:
        with pytest.raises(SourceReadError):
            src.read_at(101 * 512, 512)  # good sector in the same 4 KiB page as LBA 100
        assert len(src.read_direct(101 * 512, 512)) == 512
        with pytest.raises(SourceReadError) as ei:
            src.read_direct(100 * 512, 512)
        assert ei.value.errno == 5
