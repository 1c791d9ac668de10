"""``forensimg convert``: E01 ↔ fimg ↔ raw ↔ split, carrying media, case metadata, source identity,
unreadable ranges and stored hashes; failing on hash mismatch and on corrupt chunks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from forensimg.image import CaseInfo, Range, SourceInfo
from tests.helpers import TESTDATA

needs_fimg = pytest.mark.skipif(not hasattr(__import__("forensimg.formats.fimg", fromlist=["x"]), "create_writer"),
                                reason="needs the fimg writer")


def _media(p: Path) -> bytes:
    with forensimg.open(p) as img:
        return img.read()


@needs_fimg
def test_round_trip_e01_fimg_e01_raw_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = TESTDATA / "disk_mbr.E01"
    with forensimg.open(src) as img:
        info0 = img.info
        media = img.read()
    chain = [("a.fimg", "fimg"), ("b.E01", "ewf"), ("c.raw", "raw"), ("d.001", "split"), ("e.fimg", "fimg")]
    prev = src
    for name, fmt in chain:
        out = tmp_path / name
        args = ["convert", str(prev), str(out), "--json"]
        if fmt == "split":
            args += ["--segment-size", "3M"]
        assert main(args) == 0, capsys.readouterr().err
        res = json.loads(capsys.readouterr().out)
        assert res["ok"] and all(res["compared"].values()) and res["compared"]
        assert _media(out) == media
        with forensimg.open(out) as img:
            assert img.info.stored_hashes["md5"] == info0.stored_hashes["md5"]
            if name in ("a.fimg", "b.E01"):  # raw carries no case metadata: after it, none is left
                assert img.info.case == info0.case
                assert img.info.acquired_at == info0.acquired_at or fmt == "ewf"
        # custody: one convert event naming the input and output with hashes
        ev = [json.loads(x) for x in Path(str(out) + ".custody.jsonl").read_text().splitlines()]
        assert ev[-1]["action"] == "convert" and ev[-1]["inputs"][0]["path"] == str(prev)
        assert ev[-1]["result"]["media_hashes"]["md5"] == info0.stored_hashes["md5"]
        assert Path(str(out) + ".txt").read_text().count("matches the input's stored hash") >= 1
        prev = out
    assert len(list(tmp_path.glob("d.0[0-9][0-9]"))) == 3
    if shutil.which("ewfverify"):
        assert subprocess.run(["ewfverify", "-q", str(tmp_path / "b.E01")], capture_output=True).returncode == 0


@needs_fimg
def test_unreadable_ranges_source_identity_and_case_carried(tmp_path: Path) -> None:
    data = bytearray(os.urandom(1 << 20))
    bad = [Range(512 * 100, 512 * 101), Range(512 * 1500, 512 * 1504)]
    for r in bad:
        data[r.start : r.end] = bytes(r.length)
    case = CaseInfo("C-42", "EV-7", "Dana", "laptop disk", "seized 2026")
    source = SourceInfo(path="/dev/sdz", size=len(data), model="ACME 1TB", serial="SN-XYZ")
    with forensimg.create(tmp_path / "a.fimg", case=case, source=source, hashes="md5,sha256") as w:
        w.write(bytes(data))
        for r in bad:
            w.mark_unreadable(r.start, r.length)
    assert main(["--no-custody", "convert", str(tmp_path / "a.fimg"), str(tmp_path / "b.E01"), "-q"]) == 0
    assert main(["--no-custody", "convert", str(tmp_path / "b.E01"), str(tmp_path / "c.fimg"), "-q"]) == 0
    for name in ("b.E01", "c.fimg"):
        with forensimg.open(tmp_path / name) as img:
            assert list(img.info.unreadable) == bad
            assert img.info.case == case
            assert img.read() == bytes(data)
    with forensimg.open(tmp_path / "c.fimg") as img:
        assert img.info.source is not None
        assert img.info.source.serial == "SN-XYZ" and img.info.source.model == "ACME 1TB"
    if shutil.which("ewfinfo"):
        info = subprocess.run(["ewfinfo", str(tmp_path / "b.E01")], capture_output=True, text=True).stdout
        assert "at sector(s): 1500 - 1503 number: 4" in info
    rep = (tmp_path / "c.fimg.txt").read_text()
    assert "sectors 1500..1503" in rep


def test_stored_hash_mismatch_fails_and_leaves_no_finished_output(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "x.raw"
    raw.write_bytes(os.urandom(65536))
    (tmp_path / "x.raw.md5").write_text("0" * 32 + "  x.raw\n")
    assert main(["--no-custody", "convert", str(raw), str(tmp_path / "y.E01")]) == 1
    assert "differ from the input's stored hashes" in capsys.readouterr().err
    with pytest.raises(forensimg.errors.Error):
        forensimg.open(tmp_path / "y.E01").read()  # aborted: not a finished E01


def test_no_stored_hashes_converts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "x.raw"
    data = os.urandom(5000)  # not whole sectors: E01 pads, and says so
    raw.write_bytes(data)
    assert main(["--no-custody", "convert", str(raw), str(tmp_path / "y.E01"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["compared"] == {} and res["padded_bytes"] == 120
    assert res["hashes"]["md5"] == hashlib.md5(data).hexdigest()
    assert _media(tmp_path / "y.E01") == data + bytes(120)


def test_corrupt_chunk_stops_unless_zero_fill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = TESTDATA / "floppy_fat12_corrupt_chunk.E01"
    assert main(["--no-custody", "convert", str(bad), str(tmp_path / "o.raw")]) == 1
    err = capsys.readouterr().err
    assert "corrupt chunk" in err and "--zero-fill" in err
    assert not (tmp_path / "o.raw").exists()
    assert main(["--no-custody", "convert", str(bad), str(tmp_path / "z.E01"), "--zero-fill", "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert len(res["faults"]) == 1 and res["faults"][0]["media"]["start"] == 196608
    with forensimg.open(tmp_path / "z.E01") as img:
        assert Range(196608, 262144) in img.info.unreadable
        assert img.read_at(196608, 65536) == bytes(65536)


def test_verify_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-custody", "convert", str(TESTDATA / "floppy_fat12.E01"), str(tmp_path / "f.raw"),
                 "--verify", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["verification"]["ok"]
