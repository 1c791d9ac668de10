"""Segment SHA-256s computed while writing (fimg) equal the SHA-256 of the files on disk.

The acquisition report lists the SHA-256 of every segment file of every copy. For fimg the writer computes
them from the bytes it appends (``WriteResult.details["segment_sha256"]``) and the CLI uses those instead
of reading the output again; these tests hash the files on disk and compare, for one segment, several
segments, a mirrored pair, a resumed image (whose reopened segment the writer does not vouch for) and E01
(whose writer patches sections in place at close, then reads its final files back while they are synced).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from forensimg.cli import main
from forensimg.formats.fimg import create_writer, resume_writer

CS = 4096


def _data(size: int, seed: int = 5) -> bytes:
    rnd = random.Random(seed).randbytes(size // 2)
    text = b"".join(b"sector text %08d\n" % i for i in range(size // 21 + 1))
    return (rnd + text)[:size]


def _sha(p: str | Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _check_report(target: Path, copies: list[Path], min_segments: int) -> None:
    rep = json.loads(Path(str(target) + ".json").read_text())
    assert set(rep["segments"]) == {str(c) for c in copies}
    for c in copies:
        segs = rep["segments"][str(c)]
        assert len(segs) >= min_segments
        for s in segs:
            assert s["sha256"] == _sha(s["path"]), s["path"]
            assert s["size"] == Path(s["path"]).stat().st_size


@pytest.mark.parametrize("segment_size", [None, 60_000])
def test_writer_segment_sha256_equals_the_files(tmp_path: Path, segment_size: int | None) -> None:
    data = _data(300_000)
    w = create_writer(tmp_path / "a.fimg", chunk_size=CS, segment_size=segment_size, checkpoint_interval=3)
    w.write(data)
    res = w.close()
    got = res.details["segment_sha256"]
    assert len(res.paths) == 1 if segment_size is None else len(res.paths) > 2
    assert set(got) == {str(p) for p in res.paths}
    for p in res.paths:
        assert got[str(p)] == _sha(p)


def test_writer_segment_sha256_of_a_mirrored_pair(tmp_path: Path) -> None:
    data = _data(300_000, seed=6)
    (tmp_path / "m").mkdir()
    w = create_writer(tmp_path / "a.fimg", chunk_size=CS, segment_size=60_000, compression="none",
                      mirror_paths=[tmp_path / "m" / "b.fimg"])
    w.write(data)
    res = w.close()
    got = res.details["segment_sha256"]
    copies = res.details["copies"]
    paths = [Path(p) for c in copies for p in c["paths"]]
    assert len(copies) == 2 and len(paths) > 4 and set(got) == {str(p) for p in paths}
    for p in paths:
        assert got[str(p)] == _sha(p)
    # the two copies hold the same bytes, segment by segment
    assert [got[p] for p in copies[0]["paths"]] == [got[p] for p in copies[1]["paths"]]


def test_resumed_segment_is_not_vouched_for(tmp_path: Path) -> None:
    data = _data(200_000, seed=7)
    w = create_writer(tmp_path / "r.fimg", chunk_size=CS, checkpoint_interval=4)
    w.write(data[:100_000])
    w.abort()
    w2 = resume_writer(tmp_path / "r.fimg")
    w2.write(data[w2.position :])
    res = w2.close()
    assert str(res.paths[0]) not in res.details["segment_sha256"]  # written partly before the resume


def test_acquire_fimg_report_single_and_multi_segment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src.dd"
    src.write_bytes(_data(2 << 20))
    one = tmp_path / "one.fimg"
    assert main(["--no-custody", "acquire", str(src), str(one), "-q"]) == 0
    _check_report(one, [one], 1)
    multi = tmp_path / "multi.fimg"
    assert main(["--no-custody", "acquire", str(src), str(multi), "--segment-size", "400K", "--compression",
                 "none", "-q"]) == 0
    _check_report(multi, [multi], 4)
    capsys.readouterr()


def test_acquire_fimg_mirrored_pair_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src.dd"
    src.write_bytes(_data(2 << 20, seed=9))
    (tmp_path / "m").mkdir()
    a, b = tmp_path / "a.fimg", tmp_path / "m" / "b.fimg"
    assert main(["--no-custody", "acquire", str(src), str(a), "--mirror", str(b), "--segment-size", "700K",
                 "-q"]) == 0
    _check_report(a, [a, b], 2)
    _check_report(b, [a, b], 2)
    capsys.readouterr()


def test_acquire_e01_report_reads_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src.dd"
    src.write_bytes(_data(2 << 20, seed=10))
    out = tmp_path / "ev.E01"
    assert main(["--no-custody", "acquire", str(src), str(out), "--json", "-q"]) == 0
    d = json.loads(capsys.readouterr().out)
    # E01 patches sections in place at close: its writer reads the final files back while they are synced
    assert d["targets"][0]["result"]["details"]["segment_sha256"] == {str(out): _sha(out)}
    _check_report(out, [out], 1)


def test_e01_writer_segment_sha256_of_mirrored_segments(tmp_path: Path) -> None:
    from forensimg.formats.ewf import create_writer as create_e01
    from forensimg.image import SourceInfo

    a, b = tmp_path / "a" / "ev.E01", tmp_path / "b" / "copy.E01"
    a.parent.mkdir()
    b.parent.mkdir()
    data = _data(6 << 20, seed=11)
    w = create_e01(a, segment_size=1 << 20, mirror_paths=[b], source=SourceInfo(path="src", size=len(data)))
    w.write(data)
    res = w.close()
    got = res.details["segment_sha256"]
    files = sorted(a.parent.iterdir()) + sorted(b.parent.iterdir())
    assert len(files) >= 6  # several segments in each copy
    assert got == {str(p): _sha(p) for p in files}


@pytest.mark.parametrize("claimed", ["exact", "wrong", "unknown"])
def test_e01_streamed_segment_sha256_with_many_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      claimed: str) -> None:
    """E01 segments hashed while written: with the source's size known the volume carries the final counts
    from the start and each group's bytes are hashed once the group closes (GROUP_CHUNKS lowered to get
    many groups per segment); a wrong or missing size falls back to reading the final files. Either way
    the digests equal the files, and libewf verifies the image."""
    import subprocess

    import forensimg.formats.ewf.writer as W
    from forensimg.image import SourceInfo

    monkeypatch.setattr(W, "GROUP_CHUNKS", 7)
    data = _data((5 << 20) + 1000, seed=12)
    size = {"exact": len(data), "wrong": len(data) + 4096, "unknown": None}[claimed]
    src = SourceInfo(path="src", size=size) if size is not None else None
    a, b = tmp_path / "a" / "ev.E01", tmp_path / "b" / "copy.E01"
    a.parent.mkdir()
    b.parent.mkdir()
    w = W.EWFWriter(a, segment_size=1 << 20, mirror_paths=[b], source=src, chunk_size=32768)
    for o in range(0, len(data), 1 << 20):
        w.write(data[o : o + (1 << 20)])
    res = w.close()
    assert (len(w._stream_digests) > 0) == (claimed == "exact")  # type: ignore[attr-defined]
    files = sorted(a.parent.iterdir()) + sorted(b.parent.iterdir())
    assert len(files) >= 6
    # unknown size: the writer leaves the digests to the caller (the acquisition report reads the files)
    want = {} if claimed == "unknown" else {str(p): _sha(p) for p in files}
    assert res.details["segment_sha256"] == want
    out = subprocess.run(["ewfverify", "-q", str(a)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
