"""Test media for the analysis tests (fs, mount, compat): the disk_mbr and floppy images in every format.

``disk_mbr.raw`` is not committed: it is rebuilt from ``testdata/disk_mbr.E01`` with pyewf (the oracle
path) and checked against the manifest. The floppy's raw media is the concatenation of the split pieces.
E01 and fimg variants are offered as soon as forensimg can open / write them.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import forensimg
from tests.helpers import TESTDATA, manifest, run, write_split

DISK_SHA256 = "1d057264d41e0bd195976de4be0d93fef8e91a656f49b5cf3bea3c5bab992983"
FLOPPY_SHA256 = "5a693e3da475b11fd8b23c4e7700490d2475e3e319218aa9453faf2880c2863e"


def sources() -> dict[str, Any]:
    """testdata/MANIFEST.json ``sources`` (partitions and file-system entries from mmls/fls/icat)."""
    return manifest()["sources"]  # type: ignore[no-any-return]


def build_disk_raw(folder: Path) -> Path:
    """disk_mbr.raw from disk_mbr.E01 through pyewf, checked against the manifest."""
    pyewf = pytest.importorskip("pyewf")
    out = folder / "disk_mbr.raw"
    if not out.exists():
        h = pyewf.handle()
        h.open([str(TESTDATA / "disk_mbr.E01")])
        data = h.read(h.get_media_size())
        h.close()
        assert hashlib.sha256(data).hexdigest() == DISK_SHA256
        out.write_bytes(data)
    return out


def build_floppy_raw(folder: Path) -> Path:
    out = folder / "floppy.raw"
    if not out.exists():
        data = b"".join((TESTDATA / f"floppy_fat12.raw.00{i}").read_bytes() for i in range(3))
        assert hashlib.sha256(data).hexdigest() == FLOPPY_SHA256
        out.write_bytes(data)
    return out


@cache
def ewf_available() -> bool:
    """Whether forensimg reads E01 yet (the reader lands in parallel with this work)."""
    try:
        with forensimg.open(TESTDATA / "floppy_fat12.E01") as img:
            return hashlib.sha256(img.read()).hexdigest() == FLOPPY_SHA256
    except Exception:
        return False


@cache
def fimg_available() -> bool:
    try:
        import importlib

        importlib.import_module("forensimg.formats.fimg")
        return True
    except Exception:
        return False


def make_fimg(raw: Path, out: Path) -> Path:
    """Convert raw media to fimg with forensimg.create (the media written as is)."""
    with forensimg.open(raw) as src, forensimg.create(out) as w:
        while True:
            block = src.read(1 << 20)
            if not block:
                break
            w.write(block)
    return out


FORMATS = ("raw", "split", "ewf", "ewf-seg", "fimg")


def disk_variant(kind: str, folder: Path) -> list[Path]:
    """disk_mbr in format ``kind``: the paths to open (skips when forensimg cannot read it yet)."""
    raw = build_disk_raw(folder)
    if kind == "raw":
        return [raw]
    if kind == "split":
        d = folder / "split"
        d.mkdir(exist_ok=True)
        first = d / "disk.001"
        if not first.exists():
            write_split(raw.read_bytes(), first, 3_000_000)
        return [first]
    if kind in ("ewf", "ewf-seg"):
        if not ewf_available():
            pytest.skip("forensimg cannot open E01 yet")
        return [TESTDATA / ("disk_mbr.E01" if kind == "ewf" else "disk_mbr_seg.E01")]
    if kind == "fimg":
        if not fimg_available():
            pytest.skip("forensimg cannot write fimg yet")
        out = folder / "disk.fimg"
        if not out.exists():
            try:
                make_fimg(raw, out)
            except Exception as exc:  # the fimg writer is being written in parallel
                pytest.skip(f"fimg conversion not available: {exc}")
        return [out]
    raise AssertionError(kind)


def floppy_variant(kind: str, folder: Path) -> list[Path]:
    if kind in ("raw", "fimg"):
        raw = build_floppy_raw(folder)
        if kind == "raw":
            return [raw]
        if not fimg_available():
            pytest.skip("forensimg cannot write fimg yet")
        out = folder / "floppy.fimg"
        if not out.exists():
            try:
                make_fimg(raw, out)
            except Exception as exc:
                pytest.skip(f"fimg conversion not available: {exc}")
        return [out]
    if kind == "split":
        return [TESTDATA / "floppy_fat12.raw.001"]
    if kind in ("ewf", "ewf-seg"):
        if not ewf_available():
            pytest.skip("forensimg cannot open E01 yet")
        return [TESTDATA / "floppy_fat12.E01"]
    raise AssertionError(kind)


_FLS = re.compile(r"^(?P<type>\S+/\S+) (?P<del>\* )?(?P<inode>\d+)(?:-\S+)?(?P<realloc>\(realloc\))?:\t(?P<path>.*)$")


def fls(raw: Path, offset_sectors: int | None = None, *extra: str) -> list[tuple[str, bool, int, str]]:
    """``fls -r -p`` on the raw media: (type, deleted, inode, /path) per line."""
    args: list[str | Path] = ["fls", "-r", "-p", *extra]
    if offset_sectors is not None:
        args += ["-o", str(offset_sectors)]
    out = run(*args, raw).stdout
    rows = []
    for line in out.splitlines():
        m = _FLS.match(line)
        assert m, line
        rows.append((m["type"], bool(m["del"]), int(m["inode"]), "/" + m["path"]))
    return rows


def mmls(raw: Path) -> list[tuple[int, str, int, int, int, str]]:
    """``mmls`` rows: (addr, slot, start, end, length, description)."""
    out = run("mmls", raw).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"^(\d+):\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*)$", line)
        if m:
            rows.append((int(m[1]), m[2], int(m[3]), int(m[4]), int(m[5]), m[6].strip()))
    return rows


def icat(raw: Path, inode: int, offset_sectors: int | None = None) -> bytes:
    import subprocess

    args = ["icat"] + (["-o", str(offset_sectors)] if offset_sectors is not None else []) + [str(raw), str(inode)]
    return subprocess.run(args, check=True, capture_output=True).stdout
