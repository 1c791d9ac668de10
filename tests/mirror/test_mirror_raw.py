"""Mirrored raw and split raw writers (``RawWriter(mirror_paths=...)``) and ``acquire --mirror`` to raw.

Raw copies share one writer as E01 and fimg copies do: the same bytes go to every copy, each member's
SHA-256 is computed once from them, each copy gets its own ``.partial`` files, member names and sidecars.
The copy that fails lives on a small tmpfs (``small_disk``, conftest.py) and fills up part-way: it holds,
to the byte, the media it reports.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from forensimg.errors import UsageError, WriteError
from forensimg.formats.raw import RawWriter
from forensimg.hashing import hash_image
from tests.fixtures.loopdev import needs_root


def _data(size: int) -> bytes:
    rnd = random.Random(12).randbytes(size // 2)
    text = b"".join(b"raw mirror line %08d\n" % i for i in range(size // 24 + 1))
    return (rnd + text)[:size]


def _write(w: RawWriter, data: bytes, step: int = 1 << 20) -> None:
    for i in range(0, len(data), step):
        w.write(data[i : i + step])


def _sha256(p: str | Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def test_raw_copies_identical_each_with_its_sidecars_and_segment_hash(tmp_path):
    data = _data((3 << 20) + 1234)  # not a whole number of sectors: raw stores it exactly
    a, b = tmp_path / "a" / "ev.raw", tmp_path / "b" / "copy.dd"  # other folder, other name
    a.parent.mkdir()
    b.parent.mkdir()
    with RawWriter(a, mirror_paths=[b], hashes=("md5", "sha256")) as w:
        _write(w, data)
    res = w.close()
    assert a.read_bytes() == b.read_bytes() == data
    copies = res.details["copies"]
    assert [c["path"] for c in copies] == [str(a), str(b)]
    assert [c["paths"] for c in copies] == [[str(a)], [str(b)]]  # final names, the .partial renamed
    assert all(c["complete"] and c["error"] is None and c["media_stored"] == len(data) for c in copies)
    assert list(res.paths) == [a]
    assert not list(tmp_path.rglob("*.partial"))
    # one SHA-256 per member, computed from the bytes written, reported for every copy
    assert res.details["segment_sha256"] == {str(a): _sha256(a), str(b): _sha256(b)}
    want = {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
    assert dict(res.hashes) == want
    for p in (a, b):
        assert Path(str(p) + ".md5").read_text() == f"{want['md5']}  {p.name}\n"  # its own sidecar
        with forensimg.open(p) as img:
            assert img.info.stored_hashes == want
            assert hash_image(img, ("sha256",))["sha256"] == want["sha256"]


def test_split_raw_copies_named_from_their_own_paths(tmp_path):
    data = _data((5 << 20) + 512)
    a, b = tmp_path / "disk.001", tmp_path / "m" / "other.raw"  # numbered set; any name gets .001 …
    b.parent.mkdir()
    with RawWriter(a, segment_size=1 << 20, mirror_paths=[b], hashes=("sha1",)) as w:
        assert w.format == "split"
        _write(w, data, step=(1 << 20) - 4096)  # blocks straddle the member boundaries
    res = w.close()
    ca, cb = res.details["copies"]
    assert [Path(p).name for p in ca["paths"]] == [f"disk.{n:03d}" for n in range(1, 7)]
    assert [Path(p).name for p in cb["paths"]] == [f"other.raw.{n:03d}" for n in range(1, 7)]
    assert list(res.paths) == [Path(p) for p in ca["paths"]]
    for pa, pb in zip(ca["paths"], cb["paths"], strict=True):
        assert Path(pa).read_bytes() == Path(pb).read_bytes()
        assert Path(pa).stat().st_size == (1 << 20 if pa != ca["paths"][-1] else 512)
    shas = res.details["segment_sha256"]
    assert set(shas) == set(ca["paths"]) | set(cb["paths"])
    assert all(shas[p] == _sha256(p) for p in shas)
    want = hashlib.sha1(data).hexdigest()
    for first in (a, Path(cb["paths"][2])):  # any member opens the whole set
        with forensimg.open(first) as img:
            assert img.info.format == "split" and len(img.info.segments) == 6
            assert img.info.stored_hashes == {"sha1": want}
            assert img.read() == data
    assert (tmp_path / "m" / "other.raw.001.sha1").read_text() == f"{want}  other.raw.001\n"


def test_group_targets_raw_and_split_share_a_writer_only_when_it_is_the_same():
    from forensimg.acquire.copies import group_targets

    seg = {"segment_size": 1 << 20}
    groups = group_targets([("a.raw", "raw", {}), ("b.001", "split", {}), ("c.dd", "raw", {}),
                            ("d.001", "split", seg), ("e.raw", "raw", seg), ("f.E01", "ewf", seg),
                            ("g.001", "split", {"segment_size": 2 << 30})])
    assert [(g[0], g[3]) for g in groups] == [
        ("a.raw", ["c.dd"]),  # one file each
        ("b.001", ["g.001"]),  # split's default member size, given or not
        ("d.001", ["e.raw"]),  # a raw target with a segment size writes a split set too
        ("f.E01", []),
    ]


def test_split_copy_out_of_member_names_is_dropped_the_other_goes_on(tmp_path):
    data = _data(4 * 512)
    a, b = tmp_path / "a.raw", tmp_path / "x.zy"  # the lettered set 'x.zy', 'x.zz' has no third name
    with RawWriter(a, segment_size=512, mirror_paths=[b], hashes=("md5",)) as w:
        w.write(data)
    res = w.close()
    ok, gone = res.details["copies"]
    assert ok["complete"] and [Path(p).name for p in ok["paths"]] == [f"a.raw.{n:03d}" for n in (1, 2, 3, 4)]
    assert not gone["complete"] and "'.zz'" in gone["error"] and gone["media_stored"] == 1024
    assert [Path(p).name for p in gone["paths"]] == ["x.zy.partial", "x.zz.partial"]
    assert b"".join(Path(p).read_bytes() for p in gone["paths"]) == data[:1024]
    with forensimg.open(ok["paths"][0]) as img:
        assert img.read() == data


def test_raw_mirror_refuses_before_creating_any_copy(tmp_path):
    a = tmp_path / "x.raw"
    with pytest.raises(UsageError):
        RawWriter(a, mirror_paths=[tmp_path / "." / "x.raw"])
    (tmp_path / "keep.raw").write_bytes(b"keep")
    with pytest.raises(WriteError, match="exists"):
        RawWriter(a, mirror_paths=[tmp_path / "keep.raw"])
    assert not list(tmp_path.glob("x.raw*"))  # refused before any copy was created
    assert (tmp_path / "keep.raw").read_bytes() == b"keep"


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("segment_size", [None, 1 << 20])
def test_raw_copy_fills_its_disk_the_other_completes(tmp_path, small_disk, segment_size):
    data = _data(6 << 20)
    good, bad = tmp_path / "good.raw", small_disk / "bad.raw"
    with RawWriter(good, mirror_paths=[bad], segment_size=segment_size, hashes=("md5",)) as w:
        _write(w, data)
        assert not w.copies[1]["complete"]  # dropped while writing; the writer went on
    res = w.close()
    ok, gone = res.details["copies"]
    assert ok["complete"] and ok["media_stored"] == len(data)
    assert not gone["complete"] and gone["errno"] == 28 and "No space" in gone["error"]
    # what the dropped copy holds, to the byte: its .partial members, a prefix of the media
    held = [Path(p) for p in gone["paths"]]
    assert all(p.name.endswith(".partial") and p.exists() for p in held)
    stored = b"".join(p.read_bytes() for p in held)
    assert 0 < len(stored) < len(data) and stored == data[: len(stored)]
    assert gone["media_stored"] == len(stored)
    assert gone["failed_path"] == str(held[-1]) and gone["failed_offset"] == held[-1].stat().st_size
    assert gone["position_at_failure"] % (1 << 20) == 0
    assert gone["position_at_failure"] <= gone["media_stored"] < gone["position_at_failure"] + (1 << 20)
    assert not list(small_disk.glob("bad.raw*.md5"))  # no sidecar: the copy is not finished
    # the good copy is complete, with its own hashes; only its members' SHA-256 are reported
    assert list(res.paths) == [Path(p) for p in ok["paths"]] and all(Path(p).exists() for p in ok["paths"])
    assert set(res.details["segment_sha256"]) == set(ok["paths"])
    with forensimg.open(ok["paths"][0]) as img:
        assert img.info.stored_hashes == {"md5": hashlib.md5(data).hexdigest()}
        assert img.read() == data


@needs_root
@pytest.mark.root
def test_every_raw_copy_fails_raises_the_primary_error(small_disk):
    a, b = small_disk / "a.raw", small_disk / "b.raw"
    w = RawWriter(a, mirror_paths=[b])
    with pytest.raises(WriteError) as ei:
        _write(w, _data(6 << 20))
    assert ei.value.errno == 28 and "a.raw.partial" in str(ei.value)
    w.abort()
    copies = w.copies
    assert [c["complete"] for c in copies] == [False, False]
    sizes = [Path(c["paths"][0]).stat().st_size for c in copies]
    assert [c["media_stored"] for c in copies] == sizes and sum(sizes) > 2 << 20
    assert w.media_stored == sizes[0]


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("disk", ["small_disk", "small_ext4"])
def test_cli_raw_copies_share_a_writer_one_fills_its_disk(tmp_path, disk, request, capsys):
    """On tmpfs (no O_DIRECT: the ordinary path) and on ext4 (O_DIRECT: the failed write is noticed a
    write later), the dropped copy reports to the byte what its file holds."""
    small: Path = request.getfixturevalue(disk)
    data = _data(10 << 20)
    src = tmp_path / "source.dd"
    src.write_bytes(data)
    big = tmp_path / "big"
    big.mkdir()
    good, bad = big / "ev.raw", small / "ev.raw"
    rc = main(["--no-custody", "acquire", str(src), str(good), "--mirror", str(bad), "--json", "-q",
               "--hash", "md5,sha256", "--block-size", "1M"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 6, d  # finished, a copy is incomplete
    t_good, t_bad = d["targets"]
    assert [t["path"] for t in d["targets"]] == [str(good), str(bad)]
    assert t_good["state"] == "finished" and t_good["written"] == len(data)
    copies = t_good["result"]["details"]["copies"]  # one writer wrote both copies
    assert [c["path"] for c in copies] == [str(good), str(bad)]
    assert t_good["result"]["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
    # the dropped copy: its own offset and "written" figure are the bytes it really holds, not the
    # shared writer's position (which reached the end of the media)
    partial = small / "ev.raw.partial"
    held = partial.stat().st_size
    assert t_bad["state"] == "failed" and "No space" in t_bad["error"] and t_bad["result"] is None
    assert t_bad["failed_at"] == t_bad["written"] == held
    assert (1 << 20) < held < len(data) and partial.read_bytes() == data[:held]
    assert copies[1]["media_stored"] == copies[1]["failed_offset"] == held
    assert t_bad["failed_block_at"] % (1 << 20) == 0
    assert t_bad["failed_block_at"] <= held < t_bad["failed_block_at"] + (1 << 20)
    assert d["complete"] is False
    # the report lists each copy: the finished one's member SHA-256 (computed while writing, equal to
    # the file's), the failed one with its offset
    rj = json.loads(Path(str(good) + ".json").read_text())
    assert set(rj["segments"]) == {str(good)}
    assert rj["segments"][str(good)] == [{"path": str(good), "size": len(data), "sha256": _sha256(good)}]
    report = Path(str(good) + ".txt").read_text()
    assert f"failed at media offset {held}" in report and str(bad) in report
    assert main(["--no-custody", "verify", str(good)]) == 0


def test_cli_split_raw_mirror_grouped_and_verified(tmp_path, capsys):
    data = _data(3 << 20)
    src = tmp_path / "source.dd"
    src.write_bytes(data)
    a, b = tmp_path / "a" / "ev.001", tmp_path / "b" / "ev.raw"
    a.parent.mkdir()
    b.parent.mkdir()
    rc = main(["--no-custody", "acquire", str(src), str(a), "--mirror", str(b), "--format", "split",
               "--segment-size", "1M", "--json", "-q", "--verify"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0, d
    ta, tb = d["targets"]
    assert ta["format"] == tb["format"] == "split"
    assert ta["result"]["paths"] == [str(a.parent / f"ev.{n:03d}") for n in (1, 2, 3)]
    assert tb["result"]["paths"] == [str(b.parent / f"ev.raw.{n:03d}") for n in (1, 2, 3)]
    assert [c["path"] for c in ta["result"]["details"]["copies"]] == [str(a), str(b)]  # one writer
    assert ta["written"] == tb["written"] == len(data)
    assert all(v["ok"] for v in d["verification"]) and len(d["verification"]) == 2
    rj = json.loads(Path(str(a) + ".json").read_text())
    for t in (ta, tb):
        segs = rj["segments"][t["path"]]
        assert [s["path"] for s in segs] == t["result"]["paths"]
        assert all(s["sha256"] == _sha256(s["path"]) for s in segs)


def test_raw_copies_grouped_apart_from_an_e01_copy(tmp_path, capsys):
    """A raw copy and an E01 copy are still separate writers (different formats), both finished."""
    data = _data(1 << 20)
    src = tmp_path / "source.dd"
    src.write_bytes(data)
    r1, r2, e = tmp_path / "one.raw", tmp_path / "two.raw", tmp_path / "ev.E01"
    rc = main(["--no-custody", "acquire", str(src), str(r1), "--mirror", str(e), "--mirror", str(r2),
               "--json", "-q"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0, d
    t1, te, _t2 = d["targets"]
    assert [c["path"] for c in t1["result"]["details"]["copies"]] == [str(r1), str(r2)]
    assert "copies" not in te["result"]["details"] or len(te["result"]["details"]["copies"]) == 1
    assert r1.read_bytes() == r2.read_bytes() == data
    with forensimg.open(e) as img:
        assert img.read() == data
