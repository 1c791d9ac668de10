"""The images every :class:`forensimg.Image` implementation is checked against.

Each case builds image files in a folder and returns (paths to open, expected media bytes). Formats add
their cases to :data:`CASES` (one ``Case`` per variant: single/multi segment, compressed or not, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import TESTDATA, canonical, write_split


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], tuple[list[Path], bytes]]
    """Make the image in the given empty folder; return what to pass to forensimg.open and the media."""
    format: str
    marks: tuple[str, ...] = field(default=())


def _raw(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    p = tmp / "canonical.raw"
    p.write_bytes(data)
    return [p], data


def _raw_odd(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()[:1000_003]  # not a multiple of 512
    p = tmp / "odd.dd"
    p.write_bytes(data)
    return [p], data


def _split_001(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    paths = write_split(data, tmp / "disk.001", 300_001)  # not sector-aligned members
    return [paths[1]], data  # open through a middle member


def _split_000(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    paths = write_split(data, tmp / "disk.raw.000", 262_144)
    return [paths[-1]], data


def _split_aa(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    paths = write_split(data, tmp / "disk.aa", 100_000)
    return [paths[0]], data


def _split_list(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    paths = write_split(data, tmp / "part.001", 524_288)
    return paths, data


def _floppy_split(tmp: Path) -> tuple[list[Path], bytes]:
    pieces = [TESTDATA / f"floppy_fat12.raw.00{i}" for i in range(3)]
    return [pieces[0]], b"".join(p.read_bytes() for p in pieces)


CASES: list[Case] = [
    Case("raw", _raw, "raw"),
    Case("raw-odd-size", _raw_odd, "raw"),
    Case("split-001-middle-member", _split_001, "split"),
    Case("split-raw.000-last-member", _split_000, "split"),
    Case("split-aa", _split_aa, "split"),
    Case("split-explicit-list", _split_list, "split"),
    Case("split-floppy-testdata", _floppy_split, "split"),
]
