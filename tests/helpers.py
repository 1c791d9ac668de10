"""Shared test helpers (not fixtures): paths, the manifest, the canonical media."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"


@cache
def manifest() -> dict[str, Any]:
    """testdata/MANIFEST.json."""
    return json.loads((TESTDATA / "MANIFEST.json").read_text())


def load_script(path: Path, name: str) -> Any:
    """A script (not a package module) loaded as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@cache
def generator() -> Any:
    """testdata/generate.py as a module (make_canonical, make_lba_stamped)."""
    return load_script(TESTDATA / "generate.py", "forensimg_testdata_generate")


@cache
def canonical() -> bytes:
    """The bytes of testdata/canonical.raw (LBA-stamped, 2050 sectors)."""
    return (TESTDATA / "canonical.raw").read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def run(*args: str | Path, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], check=check, capture_output=True, text=True, **kw)


def write_split(data: bytes, first: Path, piece: int) -> list[Path]:
    """Write ``data`` as a split set whose first member is ``first`` (naming as forensimg's writer)."""
    from forensimg.formats.raw import split_name

    out = []
    for i in range(0, max(1, -(-len(data) // piece))):
        p = split_name(first, i) if i else first
        p.write_bytes(data[i * piece : (i + 1) * piece])
        out.append(p)
    return out


def mixed_media(size: int, seed: int, unit: int = 4096, most_units: int = 3) -> bytes:
    """Zero, random and text runs of 1..``most_units`` units, so that every fimg storage kind (zero flag,
    stored, compressed) occurs."""
    import random

    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        k = rng.randrange(3)
        n = rng.randrange(1, most_units + 1) * unit
        text = b"line %05d of text\n" % rng.randrange(99)
        out += bytes(n) if k == 0 else rng.randbytes(n) if k == 1 else text * (n // 17)
    return bytes(out[:size])
