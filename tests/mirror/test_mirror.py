"""forensimg acquire --mirror: one pass over the source, several copies, a failing copy isolated.

The copy that fails lives on a small ext4 file system on a real loop device (mounted here), the
full copy in a plain tmp folder: two file systems, one of which fills up part-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from forensimg.hashing import hash_image
from tests.fixtures.loopdev import needs_root
from tests.helpers import run


def _source(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    """Half random (incompressible, so that a compressed copy still fills the small disk), half text."""
    rnd = random.Random(8).randbytes(size // 2)
    text = b"".join(b"line %08d of the mirror test\n" % i for i in range(size // 58 + 1))
    data = (rnd + text)[:size]
    p = tmp_path / "source.dd"
    p.write_bytes(data)
    return p, data


def _media_sha256(path: Path | list[Path]) -> str:
    with forensimg.open(path) as img:
        return hash_image(img, ("sha256",))["sha256"]


def test_mirror_every_format_one_pass(tmp_path, capsys):
    src, data = _source(tmp_path, 3 << 20)
    want = hashlib.sha256(data).hexdigest()
    out = tmp_path / "copies"
    out.mkdir()
    primary, m1, m2 = out / "ev.E01", out / "ev.fimg", out / "ev.dd"
    rc = main(["--no-custody", "acquire", str(src), str(primary), "--mirror", str(m1), "--mirror", str(m2),
               "--json", "-q"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0, d
    # one hash set for the source, the union of each format's defaults
    assert set(d["hashes"]) == {"md5", "sha1", "sha256"} and d["hashes"]["sha256"] == want
    assert [t["path"] for t in d["targets"]] == [str(primary), str(m1), str(m2)]
    assert [t["format"] for t in d["targets"]] == ["ewf", "fimg", "raw"]
    for t in d["targets"]:
        assert t["state"] == "finished" and t["result"]["hashes"] == d["hashes"]
    for p in (primary, m1, m2):
        with forensimg.open(p) as img:
            assert {k: v for k, v in img.info.stored_hashes.items() if k in d["hashes"]}  # own stored hashes
            assert all(d["hashes"][k] == v for k, v in img.info.stored_hashes.items() if k in d["hashes"])
            assert hash_image(img, ("sha256",))["sha256"] == want
        # a report beside every copy, listing every copy with its segments
        report = Path(str(p) + ".txt").read_text()
        for q in (primary, m1, m2):
            assert str(q) in report
        rj = json.loads(Path(str(p) + ".json").read_text())
        assert set(rj["segments"]) == {str(primary), str(m1), str(m2)}
        assert all(s["sha256"] for segs in rj["segments"].values() for s in segs)


@needs_root
@pytest.mark.root
def test_one_copy_fills_its_disk_the_other_completes_then_resume(tmp_path, capsys, loop_factory):
    size = 12 << 20
    src, data = _source(tmp_path, size)
    want = hashlib.sha256(data).hexdigest()
    # the small disk: 16 MiB ext4, of which a filler takes most, so that the copy fails part-way
    backing = tmp_path / "small.img"
    backing.write_bytes(bytes(16 << 20))
    dev = loop_factory(backing)
    run("mkfs.ext4", "-q", "-F", "-m", "0", dev)
    small = loop_factory.mount(dev, tmp_path / "small")
    filler = small / "filler"
    free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
    filler.write_bytes(bytes(free - (19 << 19)))  # about 9.5 MiB left for two 12 MiB copies
    big = tmp_path / "big"
    big.mkdir()
    full, failing, failing_raw = big / "ev.fimg", small / "ev.fimg", small / "ev.raw"
    rc = main(["--no-custody", "acquire", str(src), str(full), "--mirror", str(failing_raw),
               "--mirror", str(failing), "--json", "-q", "--checkpoint", "256K", "--hash", "sha256"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 6, d  # finished, but a copy is incomplete
    ok, bad_raw, bad = d["targets"]
    assert ok["state"] == "finished" and ok["path"] == str(full)
    assert bad["state"] == "failed" and bad["path"] == str(failing)
    assert bad_raw["state"] == "failed" and bad_raw["path"] == str(failing_raw)
    for t in (bad, bad_raw):
        assert (1 << 20) < t["failed_at"] < size - (2 << 20)
        assert "No space left" in t["error"] or "ENOSPC" in t["error"] or "space" in t["error"].lower()
        # the exact offset where the copy stopped: inside the 4 MiB read block whose write failed (raw
        # writes through), or before it (fimg still held chunks of earlier blocks in its pipeline)
        assert t["failed_block_at"] % (4 << 20) == 0
        assert t["failed_at"] < t["failed_block_at"] + (4 << 20)
    assert bad_raw["failed_block_at"] <= bad_raw["failed_at"]
    # raw: to the byte, what the partial file holds (the data before it is the source's)
    partial = small / "ev.raw.partial"
    assert bad_raw["failed_at"] == partial.stat().st_size
    with open(partial, "rb") as f:
        assert f.read() == data[: bad_raw["failed_at"]]
    # fimg: to the chunk, not to the read block; the later resume starts at or before it
    from forensimg.formats.fimg.layout import DEFAULT_CHUNK_SIZE

    assert bad["failed_at"] % DEFAULT_CHUNK_SIZE == 0 and bad["failed_at"] > 0
    assert d["complete"] is False
    # the full copy verifies against its own stored hashes
    assert main(["--no-custody", "verify", str(full)]) == 0
    assert _media_sha256(full) == want
    report = (big / "ev.fimg.txt").read_text()
    assert f"failed at media offset {bad['failed_at']}" in report and str(failing) in report
    assert f"failed at media offset {bad_raw['failed_at']}" in report
    partial.unlink()
    # the failed fimg copy is completed later with --resume once there is room
    filler.unlink()
    capsys.readouterr()
    rc = main(["--no-custody", "acquire", str(src), str(failing), "--resume", "--json", "-q"])
    cap = capsys.readouterr()
    assert cap.out, cap.err
    d2 = json.loads(cap.out)
    assert rc == 0, d2
    assert 0 < d2["resumed_from"] <= bad["failed_at"]  # from its last checkpoint, not from 0
    assert _media_sha256(failing) == want
    assert d2["hashes"]["sha256"] == want


def test_mirror_refused_on_the_source_itself(tmp_path, capsys):
    src, data = _source(tmp_path, 1 << 20)
    rc = main(["--no-custody", "acquire", str(src), str(tmp_path / "ok.E01"), "--mirror", str(src), "-q"])
    assert rc == 5 and "source itself" in capsys.readouterr().err
    assert src.read_bytes() == data
    assert not (tmp_path / "ok.E01").exists()


@needs_root
@pytest.mark.root
def test_mirror_refused_inside_a_file_system_of_the_source(tmp_path, capsys, loop_factory):
    backing = tmp_path / "evidence.img"
    backing.write_bytes(bytes(8 << 20))
    dev = loop_factory(backing)
    run("mkfs.ext4", "-q", "-F", dev)
    mnt = loop_factory.mount(dev, tmp_path / "evidence", read_only=True)
    before = hashlib.sha256(backing.read_bytes()).hexdigest()
    rc = main(["--no-custody", "acquire", dev, str(tmp_path / "ok.E01"), "--allow-mounted",
               "--mirror", str(mnt / "copy.fimg"), "-q"])
    assert rc == 5 and "file system of the source device" in capsys.readouterr().err
    assert hashlib.sha256(backing.read_bytes()).hexdigest() == before


def test_mirror_usage_errors(tmp_path, capsys):
    src, _ = _source(tmp_path, 65536)
    t = tmp_path / "a.fimg"
    assert main(["--no-custody", "acquire", str(src), str(t), "--mirror", str(t)]) == 2
    assert main(["--no-custody", "acquire", str(src), str(t), "--mirror", str(tmp_path / "b.fimg"), "--resume"]) == 2
