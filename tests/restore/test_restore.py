"""forensimg restore: every image format onto real loop devices, every refusal, tail, corrupt chunks.

Each test attaches its own loop device(s) over a backing file in tmp_path and detaches them in a
finalizer. The device is checked by reading it back in the test (fresh fd, cache dropped).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from forensimg.custody import CustodyLog
from forensimg.errors import ChecksumError, RestoreStoppedError, WriteBlockError
from forensimg.formats.raw import RawImage
from forensimg.image import Image, Range, SourceInfo
from forensimg.restore import restore
from tests.helpers import TESTDATA, canonical, manifest, run
from tests.restore.loopdev import loop_device, make_backing, mounted, needs_loop, pattern_bytes, read_device

pytestmark = [pytest.mark.root, needs_loop]

PATTERN = b"\xa5RESTORE-TEST-PATTERN\x5a"


def _format_available(path: Path) -> bool:
    try:
        with forensimg.open(path) as img:
            img.read_at(0, 512)
        return True
    except (AttributeError, ImportError, NotImplementedError, forensimg.Error):
        return False


def _media(image_id: str) -> dict:
    return manifest()["images"][image_id]["media"]


def _restore_json(capsys, *args: str) -> tuple[int, dict]:
    rc = main(["--no-custody", "restore", "--json", *args])
    out = capsys.readouterr().out
    return rc, json.loads(out) if out.strip() else {}


def _raw_with_sidecar(tmp_path: Path) -> tuple[Path, bytes]:
    data = canonical()
    p = tmp_path / "canonical.raw"
    p.write_bytes(data)
    (tmp_path / "canonical.raw.md5").write_text(f"{hashlib.md5(data).hexdigest()}  canonical.raw\n")
    (tmp_path / "canonical.raw.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  canonical.raw\n")
    return p, data


def _fimg_of(tmp_path: Path, data: bytes) -> Path | None:
    """A fimg made from ``data`` by forensimg's writer, or None while the fimg writer is not there."""
    p = tmp_path / "canonical.fimg"
    try:
        with forensimg.create(p, hashes=("sha256", "md5")) as w:
            w.write(data)
    except (AttributeError, ImportError, NotImplementedError):
        return None
    return p


# -- every format onto a loop device -------------------------------------------------------------------


def _case(kind: str, tmp_path: Path) -> tuple[Path, bytes | None, str | None, int]:
    """(image path, media bytes or None, manifest id or None, expected exit code)."""
    if kind == "raw":
        p, data = _raw_with_sidecar(tmp_path)
        return p, data, None, 0
    if kind == "split":
        return TESTDATA / "floppy_fat12.raw.001", None, "floppy_fat12.raw.000", 4  # no stored hash
    if kind == "e01":
        p = TESTDATA / "floppy_fat12.E01"
        if not _format_available(p):
            pytest.skip("the E01 reader has not landed yet")
        return p, None, "floppy_fat12.E01", 0
    if kind == "e01-segments":
        p = TESTDATA / "disk_mbr_seg.E02"
        if not _format_available(p):
            pytest.skip("the E01 reader has not landed yet")
        return p, None, "disk_mbr_seg.E01", 0
    assert kind == "fimg"
    data = canonical()
    fp = _fimg_of(tmp_path, data)
    if fp is None or not _format_available(fp):
        pytest.skip("the fimg reader/writer has not landed yet")
    return fp, data, None, 0


@pytest.mark.parametrize("kind", ["raw", "split", "e01", "e01-segments", "fimg"])
def test_restore_every_format_onto_loop_device(tmp_path, capsys, kind):
    image, data, image_id, expected_rc = _case(kind, tmp_path)
    if data is not None:
        size, sha = len(data), hashlib.sha256(data).hexdigest()
    else:
        size, sha = _media(image_id)["size"], _media(image_id)["sha256"]
    backing = make_backing(tmp_path / "disk.img", size + (1 << 20), PATTERN)
    report = tmp_path / "restore.txt"
    with loop_device(backing) as dev:
        rc, d = _restore_json(capsys, str(image), dev, "--confirm", dev, "--report", str(report))
        assert rc == expected_rc, d
        assert hashlib.sha256(read_device(dev, 0, size)).hexdigest() == sha
        tail = read_device(dev, size, 4096)
    assert d["status"] == ("verified" if rc == 0 else "no_reference")
    assert d["destination"]["kind"] == "block" and d["bytes_written"] == size
    if d["stored_hashes"]:
        # the stored hashes are the reference: the write phase hashes nothing, the read-back computes them
        assert d["written_hashes"] == {} and d["readback_hashes"] == d["stored_hashes"]
        assert all(h["compared_with"] == ["stored"] for h in d["hashes"])
    else:
        # nothing stored: the hashes of what was written, computed while writing, are the reference
        assert d["readback_hashes"] == d["written_hashes"] and set(d["written_hashes"]) == {"md5", "sha1"}
        assert all(h["compared_with"] == ["written"] and h["read_back_matches_written"] for h in d["hashes"])
    assert d["readback_method"].startswith("O_DIRECT read-back behind the writer (O_DIRECT writes")
    assert d["tail"] == {"start": size, "end": size + (1 << 20), "length": 1 << 20, "wiped": False}
    assert tail != bytes(len(tail))  # the tail was left as it was
    assert d["report"] == str(report) and "forensimg restore report" in report.read_text()
    if rc == 0:
        assert all(h["matches_stored"] for h in d["hashes"])
    else:
        assert d["stored_hashes"] == {} and "no hash" in report.read_text()


def test_restore_to_regular_file_report_and_custody(tmp_path, capsys):
    image, data = _raw_with_sidecar(tmp_path)
    dest = tmp_path / "out" / "clone.dd"
    dest.parent.mkdir()
    rc = main(["restore", str(image), str(dest), "--confirm", str(dest)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert dest.read_bytes() == data
    reports = list(tmp_path.glob("canonical.raw.restore-*Z.txt"))
    assert len(reports) == 1 and "VERIFIED" in reports[0].read_text()
    events = CustodyLog(tmp_path / "canonical.raw.custody.jsonl").events()
    assert [e["action"] for e in events] == ["restore"]
    assert events[0]["result"]["status"] == "verified"
    assert events[0]["outputs"][0]["path"] == str(dest)
    # the phases are timed (bench_restore compares the write phase with ewfexport + sync)
    capsys.readouterr()
    dest.unlink()
    assert main(["--no-custody", "restore", str(image), str(dest), "--confirm", str(dest), "--json"]) == 0
    t = json.loads(capsys.readouterr().out)["timings"]
    assert 0 < t["written"] <= t["synced"] <= t["verified"]
    assert t["readback_s"] == pytest.approx(t["verified"] - t["synced"], abs=1e-3)


# -- refusals ------------------------------------------------------------------------------------------


def test_refuses_missing_or_wrong_confirm(tmp_path, capsys):
    image, data = _raw_with_sidecar(tmp_path)
    backing = make_backing(tmp_path / "disk.img", len(data), PATTERN)
    with loop_device(backing) as dev:
        before = read_device(dev, 0, 65536)
        assert main(["--no-custody", "restore", str(image), dev]) == 5  # stdin is not a terminal
        assert "--confirm" in capsys.readouterr().err
        assert main(["--no-custody", "restore", str(image), dev, "--confirm", "/dev/sda"]) == 5
        assert read_device(dev, 0, 65536) == before


def test_refuses_mounted_device(tmp_path, capsys):
    image, _data = _raw_with_sidecar(tmp_path)
    backing = make_backing(tmp_path / "disk.img", 8 << 20)
    with loop_device(backing) as dev:
        run("mkfs.ext4", "-q", "-F", dev)
        with mounted(dev, tmp_path / "mnt"):
            before = read_device(dev, 0, 1 << 20)
            rc = main(["--no-custody", "restore", str(image), dev, "--confirm", dev])
            err = capsys.readouterr().err
            assert rc == 5 and "mounted" in err and str(tmp_path / "mnt") in err
            assert read_device(dev, 0, 1 << 20) == before


def test_refuses_too_small_device(tmp_path, capsys):
    image, data = _raw_with_sidecar(tmp_path)
    backing = make_backing(tmp_path / "disk.img", len(data) - 512 * 100, PATTERN)  # 100 sectors short
    with loop_device(backing) as dev:
        rc = main(["--no-custody", "restore", str(image), dev, "--confirm", dev])
        err = capsys.readouterr().err
        assert rc == 5 and "fewer than the media" in err
        assert read_device(dev, 0, 4096) == make_pattern(4096)


def make_pattern(n: int) -> bytes:
    return pattern_bytes(n, PATTERN)


def test_refuses_kernel_read_only_device(tmp_path, capsys):
    image, data = _raw_with_sidecar(tmp_path)
    backing = make_backing(tmp_path / "disk.img", len(data), PATTERN)
    with loop_device(backing) as dev:
        run("blockdev", "--setro", dev)
        rc = main(["--no-custody", "restore", str(image), dev, "--confirm", dev])
        err = capsys.readouterr().err
        assert rc == 5 and "read-only" in err
        run("blockdev", "--setrw", dev)
        assert read_device(dev, 0, 4096) == make_pattern(4096)


def _fake_identity(monkeypatch, tmp_path: Path, dev: str, model: str, serial: str) -> None:
    """Give the loop device a model and serial through a fake sysfs tree (loop devices have none)."""
    import forensimg.restore as r

    st = os.stat(dev)
    majmin = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    node = tmp_path / "sys" / "devices" / "virtual" / "block" / Path(dev).name
    (node / "device").mkdir(parents=True)
    (node / "dev").write_text(majmin + "\n")
    (node / "device" / "model").write_text(model + "   \n")
    (node / "device" / "serial").write_text(serial + "\n")
    (node / "holders").mkdir()
    for link in (tmp_path / "sys" / "dev" / "block" / majmin, tmp_path / "sys" / "class" / "block" / Path(dev).name):
        link.parent.mkdir(parents=True)
        link.symlink_to(node)
    monkeypatch.setattr(r, "SYSFS_ROOT", tmp_path / "sys")


@pytest.mark.parametrize("where", ["custody", "report", "report_json", "source_info", "other_serial"])
def test_refuses_the_device_the_image_was_acquired_from(tmp_path, capsys, monkeypatch, where):
    image, data = _raw_with_sidecar(tmp_path)
    backing = make_backing(tmp_path / "disk.img", len(data), PATTERN)
    with loop_device(backing) as dev:
        _fake_identity(monkeypatch, tmp_path, dev, "WDC WD10EZEX-08W", "WD-WCC6Y0ABCDEF")
        if where in ("custody", "other_serial"):
            serial = "WD-WCC6Y0ABCDEF" if where == "custody" else "WD-OTHER"
            from forensimg.custody import CustodyEvent

            CustodyLog(tmp_path / "canonical.raw.custody.jsonl").append(
                CustodyEvent(action="acquire", result={"source": {"path": "/dev/sdb", "model": "WDC WD10EZEX-08W",
                                                                  "serial": serial}})
            )
            rc = main(["restore", str(image), dev, "--confirm", dev])
        elif where == "report_json":  # as forensimg acquire writes TARGET.json
            (tmp_path / "canonical.raw.json").write_text(json.dumps(
                {"tool": "forensimg", "action": "acquire", "source": {"identity": {
                    "path": "/dev/sdb", "model": "WDC WD10EZEX-08W", "serial": "WD-WCC6Y0ABCDEF"}}}))
            rc = main(["--no-custody", "restore", str(image), dev, "--confirm", dev])
        elif where == "report":
            (tmp_path / "canonical.raw.txt").write_text(
                "Source\n  Path: /dev/sdb\n  Model: WDC WD10EZEX-08W\n  Serial: WD-WCC6Y0ABCDEF\n"
            )
            rc = main(["--no-custody", "restore", str(image), dev, "--confirm", dev])
        else:
            with forensimg.open(image) as img:
                info = dataclasses.replace(
                    img.info, source=SourceInfo(path="/dev/sdb", model="WDC WD10EZEX-08W", serial="WD-WCC6Y0ABCDEF")
                )
                img._info = info
                with pytest.raises(WriteBlockError, match="acquired from"):
                    restore(img, dev, confirm=dev)
            rc = 5
        err = capsys.readouterr().err
        if where == "other_serial":
            assert rc == 0, err
            assert read_device(dev, 0, len(data)) == data
        else:
            assert rc == 5
            if where != "source_info":
                assert "acquired from" in err and "WD-WCC6Y0ABCDEF" in err
            assert read_device(dev, 0, 4096) == make_pattern(4096)


def test_refuses_the_image_itself(tmp_path, capsys):
    image, data = _raw_with_sidecar(tmp_path)
    rc = main(["--no-custody", "restore", str(image), str(image), "--confirm", str(image)])
    assert rc == 5 and "image file" in capsys.readouterr().err
    assert image.read_bytes() == data


# -- tail ----------------------------------------------------------------------------------------------


def test_wipe_tail_zeroes_beyond_the_media(tmp_path, capsys):
    image, data = _raw_with_sidecar(tmp_path)
    extra = 3 << 20
    backing = make_backing(tmp_path / "disk.img", len(data) + extra, PATTERN)
    with loop_device(backing) as dev:
        rc, d = _restore_json(capsys, str(image), dev, "--confirm", dev, "--wipe-tail",
                              "--report", str(tmp_path / "r.txt"))
        assert rc == 0
        assert read_device(dev, 0, len(data)) == data
        assert read_device(dev, len(data), extra) == bytes(extra)
    assert d["tail"] == {"start": len(data), "end": len(data) + extra, "length": extra, "wiped": True}
    assert "zeroed (--wipe-tail)" in (tmp_path / "r.txt").read_text()


# -- corrupt chunks and unreadable ranges ----------------------------------------------------------------


class _Damaged(Image):
    """Canonical media through the raw reader, with one chunk failing its check and ranges recorded
    unreadable: stands in for a damaged image until every format can make one."""

    format = "raw"

    def __init__(self, path: Path, *, bad_chunk: int | None, unreadable: tuple[Range, ...] = (),
                 stored: dict[str, str] | None = None) -> None:
        self._raw = RawImage([path])
        info = dataclasses.replace(self._raw.info, chunk_size=65536, unreadable=unreadable,
                                   stored_hashes=stored or {})
        super().__init__(info)
        self._bad = bad_chunk

    def _read_chunk(self, index: int) -> bytes:
        if index == self._bad:
            r = self.chunk_range(index)
            raise ChecksumError(f"chunk {index} fails its check", path=self._raw.info.segments[0],
                                offset=r.start, chunk=index, media_start=r.start, media_end=r.end)
        r = self.chunk_range(index)
        return self._raw.read_at(r.start, r.length)

    def _close_files(self) -> None:
        self._raw.close()


def test_corrupt_chunk_stops_before_writing_it(tmp_path):
    image, data = _raw_with_sidecar(tmp_path)
    backing = make_backing(tmp_path / "disk.img", len(data), PATTERN)
    with loop_device(backing) as dev, _Damaged(image, bad_chunk=5) as img:
        with pytest.raises(RestoreStoppedError) as ei:
            restore(img, dev, confirm=dev, block_size=3 * 65536)
        # one exception tree: the class lives in forensimg.errors, the old name still imports
        import forensimg.restore

        assert forensimg.restore.RestoreStoppedError is RestoreStoppedError
        assert isinstance(ei.value, forensimg.errors.IntegrityError) and ei.value.exit_code == 1
        res = ei.value.result
        assert res.status == "stopped" and res.bytes_written == 5 * 65536
        assert res.faults[0].chunk == 5 and res.faults[0].media == Range(5 * 65536, 6 * 65536)
        dev_bytes = read_device(dev, 0, len(data))
    assert dev_bytes[: 5 * 65536] == data[: 5 * 65536]
    assert dev_bytes[5 * 65536 :] == make_pattern(len(data))[5 * 65536 :]  # the bad chunk and after: untouched


def test_zero_fill_writes_zeros_and_lists_chunk_and_unreadable(tmp_path):
    image, data = _raw_with_sidecar(tmp_path)
    bad = Range(7 * 65536, 8 * 65536)
    unreadable = (Range(4096, 4096 + 1024), Range(len(data) - 512, len(data)))
    expected = bytearray(data)
    for r in (bad, *unreadable):
        expected[r.start : r.end] = bytes(r.length)
    stored = {"sha256": hashlib.sha256(bytes(expected)).hexdigest()}
    backing = make_backing(tmp_path / "disk.img", len(data), PATTERN)
    with loop_device(backing) as dev, _Damaged(image, bad_chunk=7, unreadable=unreadable, stored=stored) as img:
        res = restore(img, dev, confirm=dev, zero_fill=True)
        assert read_device(dev, 0, len(data)) == bytes(expected)
    assert res.status == "verified"
    assert [f.chunk for f in res.faults] == [7]
    assert res.unreadable == unreadable
    text = res.to_text()
    assert "written as zeros (--zero-fill)" in text and "sectors 8..9" in text


def test_corrupt_e01_chunk_stops_then_zero_fill(tmp_path, capsys):
    """floppy_fat12_corrupt_chunk.E01: chunk 3 (media 196608..262143) fails its zlib check."""
    image = TESTDATA / "floppy_fat12_corrupt_chunk.E01"
    if not _format_available(TESTDATA / "floppy_fat12.E01"):
        pytest.skip("the E01 reader has not landed yet")
    ident = manifest()["images"]["floppy_fat12_corrupt_chunk.E01"]
    size = ident["media"]["size"]
    start = ident["damage"]["media_bytes"][0]
    backing = make_backing(tmp_path / "disk.img", size, PATTERN)
    with loop_device(backing) as dev:
        rc, d = _restore_json(capsys, str(image), dev, "--confirm", dev, "--report", str(tmp_path / "r.txt"))
        assert rc == 1 and d["status"] == "stopped" and d["bytes_written"] == start
        assert read_device(dev, start, size - start) == make_pattern(size)[start:]
        rc, d = _restore_json(capsys, str(image), dev, "--confirm", dev, "--zero-fill",
                              "--report", str(tmp_path / "r2.txt"))
        assert rc == 1 and d["status"] == "mismatch"  # zeros differ from the stored hashes
        assert "written as zeros (--zero-fill)" in d["diagnosis"]  # located: the read-back equals what was written
        assert all(h["read_back_matches_written"] and h["written_from"] == "image" for h in d["hashes"])
        zf = ident["media_if_bad_chunk_zero_filled"]
        assert hashlib.sha256(read_device(dev, 0, size)).hexdigest() == zf["sha256"]
        assert d["faults"][0]["media"]["start"] == start


# -- the terminal: typed confirmation and progress bar ---------------------------------------------------


def _run_on_terminal(args: list[str], typed: bytes) -> tuple[int, str]:
    """Run the CLI with stdin and stderr on a pseudo-terminal, type ``typed``, return (rc, screen)."""
    import pty
    import select
    import subprocess
    import sys

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "forensimg", "--no-custody", "restore", *args], stdin=slave,
                                stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        chunks: list[bytes] = []
        sent = False
        while True:
            r, _, _ = select.select([master], [], [], 30)
            if not r:
                break
            try:
                b = os.read(master, 4096)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
            if not sent and b"confirm" in b"".join(chunks):
                os.write(master, typed)
                sent = True
        proc.wait(timeout=30)
    finally:
        os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_terminal_confirmation_and_progress_bar(tmp_path):
    image, data = _raw_with_sidecar(tmp_path)
    dest = tmp_path / "clone.dd"
    dest.write_bytes(make_pattern(len(data)))
    rc, screen = _run_on_terminal([str(image), str(dest), "--report", str(tmp_path / "r1.txt")], b"/dev/other\n")
    assert rc == 5 and "Type the destination again" in screen
    assert dest.read_bytes() == make_pattern(len(data))
    rc, screen = _run_on_terminal([str(image), str(dest), "--report", str(tmp_path / "r2.txt")],
                                  str(dest).encode() + b"\n")
    assert rc == 0, screen
    assert "writing" in screen and "100%" in screen
    assert dest.read_bytes() == data


def test_refuses_a_file_on_a_full_file_system_and_leaves_nothing(tmp_path, capsys, loop_factory):
    image, _data = _raw_with_sidecar(tmp_path)
    backing = tmp_path / "small.img"
    backing.write_bytes(bytes(4 << 20))
    dev = loop_factory(backing)
    run("mkfs.ext4", "-q", "-F", "-m", "0", dev)
    mnt = loop_factory.mount(dev, tmp_path / "small")
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    (mnt / "filler").write_bytes(bytes(max(0, free - (512 << 10))))
    dest = mnt / "clone.dd"
    rc = main(["--no-custody", "restore", str(image), str(dest), "--confirm", str(dest)])
    assert rc == 5 and "has room for" in capsys.readouterr().err
    assert not dest.exists()
