"""libewf as the oracle: every variant ewfacquire makes reads the same in forensimg as in pyewf, and
``forensimg info`` shows what ``ewfinfo`` shows.

One 3 MiB input (LBA-stamped zero/random/text regions + a zero and a random chunk) is acquired once per
variant (ewfacquire is fast on a few MiB); segment sizes of 1 MiB give multi-segment sets.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from tests.formats.ewf.readutil import MiB, ewfinfo, mixed_input, pyewf_media
from tests.helpers import TESTDATA, have, run

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(not (have("ewfacquire") and have("ewfinfo")), reason="needs ewf-tools"),
]

_CASE = ["-C", "CASE-42", "-D", "oracle matrix", "-E", "EV 7", "-e", "Examiner Name", "-N", "notes here"]

# name → ewfacquire options (besides -u -q -t)
VARIANTS: dict[str, list[str]] = {
    **{
        f"{f}-fast-seg": ["-f", f, "-c", "fast", "-d", "sha1", "-S", "1MiB", *_CASE]
        for f in (
            "ewf", "smart", "ftk", "encase2", "encase3", "encase4", "encase5", "encase6", "encase7",
            "linen5", "linen6", "linen7", "ewfx",
        )
    },
    "encase6-none": ["-f", "encase6", "-c", "none", "-S", "1MiB", *_CASE],
    "encase6-empty-block": ["-f", "encase6", "-c", "empty-block", *_CASE],
    "encase6-best": ["-f", "encase6", "-c", "best", "-d", "sha1", *_CASE],
    "smart-none": ["-f", "smart", "-c", "none", *_CASE],
    "ewf-none": ["-f", "ewf", "-c", "none", *_CASE],
    "encase5-b16": ["-f", "encase5", "-c", "fast", "-b", "16", *_CASE],
    "encase6-b128": ["-f", "encase6", "-c", "best", "-b", "128", *_CASE],
    "encase6-b64-P4096": ["-f", "encase6", "-c", "fast", "-b", "64", "-P", "4096", *_CASE],
    "encase6-b16-P4096": ["-f", "encase6", "-c", "none", "-b", "16", "-P", "4096", *_CASE],
    "encase6-removable-logical": ["-f", "encase6", "-c", "fast", "-m", "removable", "-M", "logical", *_CASE],
    "encase2-cp1252": [
        "-f", "encase2", "-c", "fast", "-A", "windows-1252", "-C", "Fall Nr. 1", "-e", "J\u00fcrgen M\u00fcller",
        "-D", "Beschreibung \u00e4\u00f6\u00fc", "-E", "E1", "-N", "Notiz",
    ],
    "optical": ["-f", "encase6", "-c", "fast", "-m", "optical", "-P", "2048", "-T", "@CUE"],
}  # fmt: skip

_ENV = {**os.environ, "TZ": "UTC"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ewf-oracle")
    (d / "in.raw").write_bytes(mixed_input(3 * MiB))
    (d / "in.cue").write_text('FILE "in.raw" BINARY\n  TRACK 01 MODE1/2048\n    INDEX 01 00:00:00\n')
    return d


_made: dict[str, Path] = {}


def _make(workdir: Path, name: str) -> Path:
    if name not in _made:
        out = workdir / name
        out.mkdir()
        opts = [str(workdir / "in.cue") if o == "@CUE" else o for o in VARIANTS[name]]
        run("ewfacquire", "-u", "-q", "-t", out / "img", *opts, workdir / "in.raw", env=_ENV)
        first = sorted(out.iterdir())[0]
        _made[name] = first
    return _made[name]


def _ewfinfo_date(s: str) -> datetime:
    s = s.removesuffix(" UTC")  # ewfx's xheader date carries a zone name
    return datetime.strptime(" ".join(s.split()), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)


def _compare_with_ewfinfo(first: Path, info_json: dict, *ewfinfo_args: str) -> None:
    ref = ewfinfo(first, *ewfinfo_args)
    case = info_json["case"]
    pairs = {
        "Case number": case["case_number"],
        "Description": case["description"],
        "Examiner name": case["examiner"],
        "Evidence number": case["evidence_number"],
        "Notes": case["notes"],
        "Operating system used": info_json["acquisition_os"],
        "Software version used": info_json["acquisition_software"],
        "Bytes per sector": str(info_json["sector_size"]),
        "Number of sectors": str(info_json["sector_count"]),
        "Sectors per chunk": str(info_json["details"]["sectors_per_chunk"]),
        "MD5": info_json["stored_hashes"].get("md5"),
        "SHA1": info_json["stored_hashes"].get("sha1"),
        "Is physical": "yes" if info_json["source"]["is_physical"] else "no",
    }
    for label, ours in pairs.items():
        if label in ref:
            assert ours == ref[label], (label, ours, ref[label])
        else:
            assert ours in (None, ""), (label, ours)
    if "Error granularity" in ref:
        assert str(info_json["details"]["error_granularity"]) == ref["Error granularity"]
    assert ref["Media type"].startswith(info_json["source"]["media_type"])
    for label, key in (("Acquisition date", "acquired_at"), ("System date", "system_date")):
        if label in ref:
            assert datetime.fromisoformat(info_json[key]) == _ewfinfo_date(ref[label]), label


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_equals_pyewf_and_ewfinfo(workdir: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = _make(workdir, name)
    want = pyewf_media(first)
    with forensimg.open(first) as img:
        assert img.size == len(want)
        assert img.read() == want
        assert img.check_structure() == ()
        if "-S" in VARIANTS[name]:
            assert len(img.info.segments) >= 2
        if name == "optical":
            assert img.info.details["sessions"]
    capsys.readouterr()
    assert main(["info", "--json", str(first)]) == 0
    info_json = json.loads(capsys.readouterr().out)
    # ewfinfo decodes the 8-bit header with the codepage it is given (ASCII by default)
    _compare_with_ewfinfo(first, info_json, *(["-A", "windows-1252"] if "cp1252" in name else []))
    if name == "encase2-cp1252":
        assert info_json["case"]["examiner"] == "J\u00fcrgen M\u00fcller"


@pytest.mark.parametrize("name", ["floppy_fat12.E01", "disk_mbr.E01", "disk_mbr_seg.E01"])
def test_testdata_equals_pyewf_and_ewfinfo(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = TESTDATA / name
    with forensimg.open(first) as img:
        assert img.read() == pyewf_media(first)
    capsys.readouterr()
    assert main(["info", "--json", str(first)]) == 0
    _compare_with_ewfinfo(first, json.loads(capsys.readouterr().out))


def test_info_text_shows_ewfinfo_values(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _make(workdir, "encase6-best")
    ref = ewfinfo(first)
    capsys.readouterr()
    assert main(["info", str(first)]) == 0
    out = capsys.readouterr().out
    for label in ("Case number", "Description", "Examiner name", "Evidence number", "Notes", "MD5", "SHA1"):
        assert ref[label] in out, label
