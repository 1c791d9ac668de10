"""Mirrored E01 and fimg writers (``mirror_paths=``): encoded once, the same bytes in every copy.

The copy that fails lives on a small tmpfs (root; ``small_disk`` in conftest.py): it fills up part-way,
the writer drops it with the exact file offset and goes on; the failed fimg copy is a byte prefix of the
good one and resumes on its own.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

import forensimg
from forensimg.errors import UsageError, WriteError
from forensimg.formats.ewf import create_writer as ewf_writer
from forensimg.formats.fimg import create_writer as fimg_writer
from forensimg.formats.fimg import resume_writer
from forensimg.hashing import hash_image
from tests.fixtures.loopdev import needs_root
from tests.helpers import have, run


def _data(size: int) -> bytes:
    rnd = random.Random(11).randbytes(size // 2)  # incompressible half: fills a small disk
    text = b"".join(b"mirror writer line %08d\n" % i for i in range(size // 28 + 1))
    return (rnd + bytes(70_000) + text)[:size]


def _write(w: object, data: bytes, step: int = 1 << 20) -> None:
    for i in range(0, len(data), step):
        w.write(data[i : i + step])  # type: ignore[attr-defined]


def test_fimg_mirror_identical_bytes_per_segment(tmp_path):
    data = _data(3 << 20)
    a, b = tmp_path / "a" / "disk.fimg", tmp_path / "b" / "other.fimg"  # other folder, other name
    a.parent.mkdir()
    b.parent.mkdir()
    with fimg_writer(a, chunk_size=16384, segment_size=512 << 10, checkpoint_interval=16, hashes=("md5", "sha256"),
                     mirror_paths=[b]) as w:  # type: ignore[arg-type]
        _write(w, data)
    res = w.close()
    copies = res.details["copies"]
    assert [c["path"] for c in copies] == [str(a), str(b)]
    assert all(c["complete"] and c["error"] is None for c in copies)
    assert len(copies[0]["paths"]) == len(copies[1]["paths"]) >= 3  # segmented, same structure
    assert [Path(p).name for p in copies[1]["paths"]] == ["other.fimg", "other.f002", *[
        f"other.f{n:03d}" for n in range(3, len(copies[1]["paths"]) + 1)]]
    for pa, pb in zip(copies[0]["paths"], copies[1]["paths"], strict=True):
        assert Path(pa).read_bytes() == Path(pb).read_bytes()
    assert list(res.paths) == [Path(p) for p in copies[0]["paths"]]
    want = hashlib.sha256(data).hexdigest()
    for first in (a, b):
        with forensimg.open(first) as img:
            assert img.info.complete and img.check_structure() == ()
            assert img.info.stored_hashes["sha256"] == want
            assert hash_image(img, ("sha256",))["sha256"] == want


@pytest.mark.skipif(not have("ewfverify"), reason="ewfverify not installed")
def test_e01_mirror_identical_bytes_and_libewf_reads_each(tmp_path):
    import pyewf

    data = _data(3 << 20)
    a, b = tmp_path / "ev.E01", tmp_path / "m" / "copy.E01"
    b.parent.mkdir()
    with ewf_writer(a, segment_size=512 << 10, hashes=("md5", "sha1"), mirror_paths=[b]) as w:  # type: ignore[arg-type]
        _write(w, data)
    res = w.close()
    copies = res.details["copies"]
    assert len(copies[0]["paths"]) == len(copies[1]["paths"]) >= 3
    assert Path(copies[1]["paths"][1]).name == "copy.E02"
    for pa, pb in zip(copies[0]["paths"], copies[1]["paths"], strict=True):
        assert Path(pa).read_bytes() == Path(pb).read_bytes()  # volume/data sections patched in both
    md5 = hashlib.md5(data).hexdigest()
    for c in copies:
        h = pyewf.handle()
        h.open(c["paths"])
        try:
            assert h.get_media_size() == len(data)
            assert h.read(len(data)) == data
        finally:
            h.close()
        out = run("ewfverify", "-q", c["paths"][0])
        assert md5 in out.stdout and "SUCCESS" in out.stdout


def test_mirror_refuses_a_copy_named_twice_or_existing(tmp_path):
    a = tmp_path / "x.fimg"
    with pytest.raises(UsageError):
        fimg_writer(a, mirror_paths=[tmp_path / "." / "x.fimg"])  # type: ignore[arg-type]
    (tmp_path / "y.E01").write_bytes(b"keep")
    with pytest.raises(WriteError):
        ewf_writer(tmp_path / "z.E01", mirror_paths=[tmp_path / "y.E01"])  # type: ignore[arg-type]
    assert not (tmp_path / "z.E01").exists()  # refused before any copy was created
    assert (tmp_path / "y.E01").read_bytes() == b"keep"


@needs_root
@pytest.mark.root
def test_fimg_copy_fills_its_disk_others_finish_then_it_resumes(tmp_path, small_disk):
    data = _data(6 << 20)
    good, bad = tmp_path / "good.fimg", small_disk / "bad.fimg"
    opts = {"chunk_size": 16384, "checkpoint_interval": 8, "hashes": ("sha256",), "workers": 2}
    with fimg_writer(good, mirror_paths=[bad], **opts) as w:  # type: ignore[arg-type]
        _write(w, data)
        failed = w.copies[1]
        assert not failed["complete"]  # dropped while writing; the writer went on
    res = w.close()
    ok, gone = res.details["copies"]
    assert ok["complete"] and not gone["complete"]
    assert gone["errno"] == 28 and "bad.fimg" in gone["error"]
    assert gone["failed_path"] == str(bad)
    size = bad.stat().st_size
    assert gone["failed_offset"] == size  # the exact byte offset where the copy stopped
    assert 0 < gone["media_stored"] < len(data) and gone["media_stored"] % 16384 == 0
    assert gone["position_at_failure"] % (1 << 20) == 0
    assert gone["media_stored"] <= gone["position_at_failure"] + (1 << 20)
    assert list(res.paths) == [good]
    # the failed copy is a byte prefix of the good one (same uuid, same checkpoints)
    with open(good, "rb") as f:
        assert f.read(size) == bad.read_bytes()
    want = hashlib.sha256(data).hexdigest()
    with forensimg.open(good) as img:
        assert img.info.complete and hash_image(img, ("sha256",))["sha256"] == want
    with forensimg.open(bad) as img:
        assert not img.info.complete
        committed = img.size
        assert 0 < committed <= gone["media_stored"]
        assert img.read() == data[:committed]
    # room again: the failed copy resumes on its own from its last checkpoint and ends equal to the good one
    run("mount", "-o", "remount,size=16m", small_disk)
    moved = bad
    w2 = resume_writer(moved, workers=2)
    assert w2.position == committed
    _write(w2, data[committed:])
    r2 = w2.close()
    assert r2.details["merkle_root"] == res.details["merkle_root"]
    assert r2.details["uuid"] == res.details["uuid"]
    with forensimg.open(moved) as img:
        assert img.info.complete and img.check_structure() == ()
        assert hash_image(img, ("sha256",))["sha256"] == want


@needs_root
@pytest.mark.root
def test_e01_copy_fills_its_disk_the_other_finishes(tmp_path, small_disk):
    data = _data(6 << 20)
    good, bad = tmp_path / "good.E01", small_disk / "bad.E01"
    with ewf_writer(good, hashes=("md5",), mirror_paths=[bad]) as w:  # type: ignore[arg-type]
        _write(w, data)
    res = w.close()
    ok, gone = res.details["copies"]
    assert ok["complete"] and not gone["complete"] and gone["errno"] == 28
    assert gone["failed_offset"] == bad.stat().st_size
    # the same bytes, except what the good copy patched in place at close (volume counts, the group's
    # sectors descriptor; both in the first 4 KiB here)
    with open(good, "rb") as f:
        assert f.read(gone["failed_offset"])[4096:] == bad.read_bytes()[4096:]
    with forensimg.open(good) as img:
        assert hash_image(img, ("md5",))["md5"] == hashlib.md5(data).hexdigest()
    with pytest.raises(forensimg.errors.Error), forensimg.open(bad) as img:  # incomplete: no done section
        img.read()


@needs_root
@pytest.mark.root
def test_every_copy_fails_raises(small_disk):
    a, b = small_disk / "a.fimg", small_disk / "b.fimg"
    w = fimg_writer(a, mirror_paths=[b], chunk_size=16384)  # type: ignore[arg-type]
    with pytest.raises(WriteError) as ei:
        _write(w, _data(6 << 20))
        w.close()
    assert ei.value.errno == 28 and "a.fimg" in str(ei.value)  # the primary's error
    w.abort()
    assert [c["complete"] for c in w.copies] == [False, False]  # type: ignore[attr-defined]


@needs_root
@pytest.mark.root
def test_cli_same_format_copies_share_a_writer_one_fills_its_disk(tmp_path, small_disk, capsys):
    import json

    from forensimg.cli import main

    data = _data(10 << 20)
    src = tmp_path / "source.dd"
    src.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    big = tmp_path / "big"
    big.mkdir()
    good_e, bad_e, good_f, bad_f = big / "ev.E01", small_disk / "ev.E01", big / "lab.fimg", small_disk / "lab.fimg"
    run("mount", "-o", "remount,size=4m", small_disk)  # both copies there grow together, both fill it
    rc = main(["--no-custody", "acquire", str(src), str(good_f), "--mirror", str(good_e), "--mirror", str(bad_e),
               "--mirror", str(bad_f), "--json", "-q", "--hash", "md5,sha256", "--block-size", "1M",
               "--checkpoint", "256K"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 6, d
    t_gf, t_ge, t_be, t_bf = d["targets"]  # one outcome per copy, in the order given
    assert [t["path"] for t in d["targets"]] == [str(good_f), str(good_e), str(bad_e), str(bad_f)]
    assert [t["format"] for t in d["targets"]] == ["fimg", "ewf", "ewf", "fimg"]
    assert t_ge["state"] == t_gf["state"] == "finished"
    # encoded once: each good copy's writer also wrote the copy on the small disk
    for t, other in ((t_ge, bad_e), (t_gf, bad_f)):
        copies = t["result"]["details"]["copies"]
        assert [c["path"] for c in copies][1] == str(other)
        assert t["result"]["paths"] == copies[0]["paths"]
        assert t["result"]["hashes"]["sha256"] == want
    for t in (t_be, t_bf):
        assert t["state"] == "failed" and t["result"] is None
        assert "No space left" in t["error"]
        # the exact media the copy took (0 if the disk was full before its first write: E01 buffers 8 MiB)
        assert 0 <= t["failed_at"] < len(data) and t["failed_block_at"] % (1 << 20) == 0
        assert t["failed_at"] <= t["failed_block_at"] + (1 << 20)
    assert t_bf["failed_at"] > 0
    assert d["complete"] is False
    rj = json.loads(Path(str(good_f) + ".json").read_text())
    assert set(rj["segments"]) == {str(good_e), str(good_f)}  # the finished copies' own segment files
    assert rj["segments"][str(good_f)][0]["path"] == str(good_f)
    report = Path(str(good_f) + ".txt").read_text()
    assert f"failed at media offset {t_bf['failed_at']}" in report and str(bad_f) in report
    for p in (good_e, good_f):
        assert main(["--no-custody", "verify", str(p)]) == 0
    # room again: the failed fimg copy is completed with --resume, equal to its good twin
    for p in (bad_e, *small_disk.glob("ev.E0*")):
        p.unlink(missing_ok=True)
    run("mount", "-o", "remount,size=16m", small_disk)
    capsys.readouterr()
    rc = main(["--no-custody", "acquire", str(src), str(bad_f), "--resume", "--json", "-q", "--hash", "md5,sha256"])
    d2 = json.loads(capsys.readouterr().out)
    assert rc == 0, d2
    assert 0 < d2["resumed_from"] <= t_bf["failed_at"]
    root = d2["targets"][0]["result"]["details"]["merkle_root"]
    assert root == t_gf["result"]["details"]["merkle_root"]
    with forensimg.open(bad_f) as img:
        assert hash_image(img, ("sha256",))["sha256"] == want
