"""Raw and split raw: naming, detection, missing members, the writer."""

from __future__ import annotations

import hashlib
import os

import pytest

import forensimg
from forensimg.errors import ImageNotFoundError, ImageReadError, MissingSegmentError, UsageError, WriteError
from forensimg.formats.raw import find_split_members, split_name
from tests.helpers import canonical, write_split


def test_split_names(tmp_path):
    assert split_name(tmp_path / "d.001", 1).name == "d.002"
    assert split_name(tmp_path / "d.000", 10).name == "d.010"
    assert split_name(tmp_path / "d.aa", 27).name == "d.bb"
    assert split_name(tmp_path / "d.raw", 0).name == "d.raw.001"
    with pytest.raises(WriteError):
        split_name(tmp_path / "d.999", 1)
    with pytest.raises(WriteError):
        split_name(tmp_path / "d.zz", 1)


def test_lone_numbered_or_lettered_file_is_plain_raw(tmp_path):
    (tmp_path / "disk.001").write_bytes(b"x" * 1000)
    (tmp_path / "evidence.dd").write_bytes(b"y" * 1000)
    assert find_split_members(tmp_path / "disk.001") is None
    assert find_split_members(tmp_path / "evidence.dd") is None
    with forensimg.open(tmp_path / "evidence.dd") as img:
        assert img.info.format == "raw" and img.size == 1000


@pytest.mark.parametrize("first,missing_index", [("disk.001", 1), ("disk.000", 2), ("disk.aa", 1), ("x.raw.001", 0)])
def test_gap_names_the_missing_member(tmp_path, first, missing_index):
    paths = write_split(canonical(), tmp_path / first, 300_000)
    missing = paths[missing_index]
    missing.unlink()
    given = paths[-1]
    with pytest.raises(MissingSegmentError) as ei:
        forensimg.open(given)
    assert missing.name in str(ei.value)


def test_set_starting_late_names_first_member(tmp_path):
    write_split(canonical(), tmp_path / "d.001", 400_000)
    (tmp_path / "d.001").unlink()
    with pytest.raises(MissingSegmentError, match=r"d\.001"):
        forensimg.open(tmp_path / "d.002")


def test_open_errors(tmp_path):
    with pytest.raises(ImageNotFoundError) as ei:
        forensimg.open(tmp_path / "nope.raw")
    assert isinstance(ei.value, FileNotFoundError) and "nope.raw" in str(ei.value)
    with pytest.raises(ImageReadError, match="directory"):
        forensimg.open(tmp_path)
    (tmp_path / "empty.raw").write_bytes(b"")
    with pytest.raises(forensimg.FormatError, match="empty"):
        forensimg.open(tmp_path / "empty.raw")


def test_extension_alone_does_not_make_ewf(tmp_path):
    p = tmp_path / "looks_like.E01"
    p.write_bytes(b"not an ewf file at all" * 50)
    with forensimg.open(p) as img:
        assert img.info.format == "raw"


@pytest.mark.parametrize("seg", [None, 300_000, 262_144])
def test_writer_round_trip_and_sidecars(tmp_path, seg):
    data = canonical()
    target = tmp_path / ("out.raw" if seg is None else "out.001")
    kw = {} if seg is None else {"segment_size": seg}
    with forensimg.create(target, format="raw" if seg is None else "split", hashes="md5,sha1,sha256", **kw) as w:
        for i in range(0, len(data), 65_537):
            w.write(data[i : i + 65_537])
        w.mark_unreadable(4096, 512)
    res = w.close()  # idempotent
    assert res.size == len(data)
    assert res.hashes == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert [r.start for r in res.unreadable] == [4096]
    if seg:
        assert len(res.paths) == -(-len(data) // seg)
        assert all(p.stat().st_size == seg for p in res.paths[:-1])
    assert not list(tmp_path.glob("*.partial"))
    # each segment's SHA-256, computed while writing, is that of the file on disk
    assert res.details["segment_sha256"] == {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in res.paths}
    with forensimg.open(res.paths[0]) as img:
        assert img.read() == data
        assert img.info.stored_hashes == res.hashes


def test_writer_abort_leaves_partial_and_no_final_name(tmp_path):
    target = tmp_path / "a.raw"
    with pytest.raises(RuntimeError), forensimg.create(target) as w:
        w.write(b"x" * 10_000)
        raise RuntimeError("boom")
    assert not target.exists()
    assert (tmp_path / "a.raw.partial").stat().st_size == 10_000
    assert not (tmp_path / "a.raw.md5").exists()


def test_writer_refuses_to_overwrite(tmp_path):
    (tmp_path / "a.raw").write_bytes(b"evidence")
    with pytest.raises(WriteError, match="exists"):
        forensimg.create(tmp_path / "a.raw")
    assert (tmp_path / "a.raw").read_bytes() == b"evidence"


def test_writer_external_hashes(tmp_path):
    w = forensimg.create(tmp_path / "e.raw", compute_hashes=False)
    w.write(b"abc" * 1000)
    w.set_hashes({"MD5": "AA" * 16})
    res = w.close()
    assert res.hashes == {"md5": "aa" * 16}


def test_writer_rejects_bad_values(tmp_path):
    with pytest.raises(UsageError):
        forensimg.create(tmp_path / "x.raw", sector_size=1000)
    with pytest.raises(UsageError):
        forensimg.create(tmp_path / "x.raw", hashes="md5,crc99")
    with pytest.raises(UsageError, match="output format"):
        forensimg.create(tmp_path / "x.unknown")


@pytest.mark.parametrize("direct", [False, True])
def test_disk_full_is_a_write_error(tmp_path, direct):
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full not present")
    from forensimg.formats.raw import RawWriter

    w = RawWriter(tmp_path / "f.raw", direct=direct)
    c = w._out.copies[0]
    assert c.fd is not None
    os.close(c.fd)  # point the writer's (only) copy at /dev/full to get a real ENOSPC
    c.fd = os.open("/dev/full", os.O_WRONLY)
    if c.dfd is not None:  # direct mode: its O_DIRECT descriptor too (blocks then go to the ordinary one)
        os.close(c.dfd)
        c.dfd = None
    with pytest.raises(WriteError, match="No space"):
        w.write(b"z" * 4096)
        if direct:  # written in the background: reported no later than the next write or the close
            w.write(b"z")
            w.close()
    assert w.media_stored == 0
    w.abort()
