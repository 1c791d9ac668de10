"""Acquisition from real loop devices: read-only by construction, refusals, report and custody."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from forensimg.cli import main
from tests.fixtures.loopdev import LoopDevices, needs_root

pytestmark = [pytest.mark.root, needs_root, pytest.mark.xdist_group("acquire-loop")]

BLKROGET = 0x125E


def _sha(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def _kernel_ro(dev: str) -> bool:
    fd = os.open(dev, os.O_RDONLY)
    try:
        buf = bytearray(4)
        fcntl.ioctl(fd, BLKROGET, buf, True)
        return bool(struct.unpack("i", buf)[0])
    finally:
        os.close(fd)


def _disk(tmp_path: Path, size: int = 3 << 20) -> Path:
    p = tmp_path / "disk.img"
    p.write_bytes(os.urandom(size))
    return p


def test_loop_acquire_leaves_source_unchanged_and_kernel_read_only(loop_factory: LoopDevices, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    dev = loop_factory(_disk(tmp_path))
    before = _sha(dev)
    assert not _kernel_ro(dev)
    out = tmp_path / "out" / "disk.raw"
    out.parent.mkdir()
    rc = main(["--examiner", "E. Xaminer", "acquire", dev, str(out), "--case-number", "C-1", "--json",
               "--hash", "md5,sha1,sha256"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert _sha(dev) == before == _sha(out) == res["hashes"]["sha256"]
    # the kernel flag is set and stays set: writes fail for every process
    assert _kernel_ro(dev)
    with pytest.raises(OSError) as ei:
        fd = os.open(dev, os.O_WRONLY)
        try:
            os.write(fd, b"\0" * 512)
        finally:
            os.close(fd)
    assert ei.value.errno in (errno.EPERM, errno.EROFS, errno.EACCES)
    assert _sha(dev) == before
    kro = next(i for i in res["safeguards"]["items"] if i["name"] == "kernel_ro")
    name = os.path.basename(dev)
    assert kro["status"] == "applied" and kro["before"] == {name: False} and kro["after"] == {name: True}
    txt = Path(str(out) + ".txt").read_text()
    assert "kernel_ro" in txt and "C-1" in txt and "E. Xaminer" in txt and res["hashes"]["md5"] in txt
    assert "unreadable sectors zero-filled" in txt
    assert "Backing file" in txt  # identity from sysfs
    js = json.loads(Path(str(out) + ".json").read_text())
    assert js["status"] == "complete" and js["source"]["identity"]["logical_sector_size"] == 512
    # custody event with inputs, outputs and hashes
    ev = [json.loads(line) for line in Path(str(out) + ".custody.jsonl").read_text().splitlines()]
    assert ev[-1]["action"] == "acquire" and ev[-1]["inputs"][0]["path"] == dev
    assert ev[-1]["result"]["media_hashes"]["sha256"] == before
    assert ev[-1]["outputs"][0]["sha256"] == before


def test_restore_rw_clears_the_flag(loop_factory: LoopDevices, tmp_path: Path) -> None:
    dev = loop_factory(_disk(tmp_path, 1 << 20))
    assert main(["--no-custody", "acquire", dev, str(tmp_path / "a.raw"), "-q", "--restore-rw"]) == 0
    assert not _kernel_ro(dev)
    rep = json.loads((tmp_path / "a.raw.json").read_text())
    names = [i["name"] for i in rep["safeguards"]["items"]]
    assert "restore_rw" in names


def test_no_kernel_ro_is_recorded_as_warning(loop_factory: LoopDevices, tmp_path: Path) -> None:
    dev = loop_factory(_disk(tmp_path, 1 << 20))
    assert main(["--no-custody", "acquire", dev, str(tmp_path / "a.raw"), "-q", "--no-kernel-ro"]) == 0
    assert not _kernel_ro(dev)
    rep = json.loads((tmp_path / "a.raw.json").read_text())
    assert any("kernel_ro" in w for w in rep["safeguards"]["warnings"])


@pytest.fixture
def ext4_loop(loop_factory: LoopDevices, tmp_path: Path) -> str:
    img = tmp_path / "fs.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True, capture_output=True)
    return loop_factory(img)


def test_mounted_source_refused(ext4_loop: str, loop_factory: LoopDevices, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    mp = loop_factory.mount(ext4_loop, tmp_path / "mnt")
    # read-write mount: refused always
    assert main(["--no-custody", "acquire", ext4_loop, str(tmp_path / "a.raw"), "-q"]) == 5
    assert main(["--no-custody", "acquire", ext4_loop, str(tmp_path / "a.raw"), "-q", "--allow-mounted"]) == 5
    assert "read-write" in capsys.readouterr().err
    assert not (tmp_path / "a.raw").exists()
    assert not _kernel_ro(ext4_loop)  # refused before anything was changed
    loop_factory.umount(mp)
    loop_factory.mount(ext4_loop, tmp_path / "mnt", read_only=True)
    assert main(["--no-custody", "acquire", ext4_loop, str(tmp_path / "a.raw"), "-q"]) == 5
    assert "--allow-mounted" in capsys.readouterr().err
    assert main(["--no-custody", "acquire", ext4_loop, str(tmp_path / "a.raw"), "-q", "--allow-mounted"]) == 0
    rep = json.loads((tmp_path / "a.raw.json").read_text())
    assert any("mounts" in w and "read-only" in w for w in rep["safeguards"]["warnings"])


def test_target_inside_filesystem_of_the_source_refused(ext4_loop: str, loop_factory: LoopDevices,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from forensimg.acquire import safeguards as sg
    from forensimg.acquire.source import open_source
    from forensimg.errors import WriteBlockError

    mp = loop_factory.mount(ext4_loop, tmp_path / "mnt")
    with open_source(ext4_loop) as src, pytest.raises(WriteBlockError, match="lies on"):
        sg.check_targets(src, [mp / "evidence.raw"])
    loop_factory.umount(mp)
    mp = loop_factory.mount(ext4_loop, tmp_path / "mnt", read_only=True)
    rc = main(["--no-custody", "acquire", ext4_loop, str(mp / "evidence.raw"), "-q", "--allow-mounted"])
    assert rc == 5
    assert "lies on" in capsys.readouterr().err


def test_target_is_the_source_refused(loop_factory: LoopDevices, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    disk = _disk(tmp_path, 1 << 20)
    before = _sha(disk)
    assert main(["--no-custody", "acquire", str(disk), str(disk), "--format", "raw", "--overwrite", "-q"]) == 5
    dev = loop_factory(disk)
    assert main(["--no-custody", "acquire", dev, dev, "--format", "raw", "--overwrite", "-q"]) == 5
    assert "is the source itself" in capsys.readouterr().err
    assert _sha(disk) == before


def test_sector_size_from_the_device(loop_factory: LoopDevices, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    dev = loop_factory(_disk(tmp_path, 1 << 20), sector_size=4096)
    assert main(["--no-custody", "acquire", dev, str(tmp_path / "a.raw"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["sector_size"] == 4096
    assert res["source_identity"]["logical_sector_size"] == 4096


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_kernel_ro_not_settable_stops_unless_no_kernel_ro(loop_factory: LoopDevices, tmp_path: Path) -> None:
    """Without CAP_SYS_ADMIN BLKROSET fails: acquisition stops with exit 5; --no-kernel-ro goes on (warning)."""
    dev = loop_factory(_disk(tmp_path, 1 << 20))
    base = ["setpriv", "--bounding-set", "-sys_admin", sys.executable, "-m", "forensimg", "--no-custody", "acquire",
            dev]
    root = Path(__file__).resolve().parents[2]
    p1 = subprocess.run([*base, str(tmp_path / "a.raw"), "-q"], capture_output=True, text=True, cwd=root)
    assert p1.returncode == 5, p1.stderr
    assert "BLKROSET" in p1.stderr and "--no-kernel-ro" in p1.stderr
    assert not _kernel_ro(dev)
    assert not (tmp_path / "a.raw").exists()
    p2 = subprocess.run([*base, str(tmp_path / "b.raw"), "-q", "--no-kernel-ro"], capture_output=True, text=True,
                        cwd=root)
    assert p2.returncode == 0, p2.stderr
    rep = json.loads((tmp_path / "b.raw.json").read_text())
    assert any("NOT set" in w for w in rep["safeguards"]["warnings"])
