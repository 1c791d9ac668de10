"""Safeguards over a fake sysfs tree and mountinfo (partitions, holders), plus target placement."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from forensimg.acquire import safeguards as sg
from forensimg.errors import WriteBlockError


def _w(p: Path, text: str) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text + "\n")


@pytest.fixture
def fake_sysfs(tmp_path: Path) -> Path:
    """sda (8:0) with partitions sda1 (8:1), sda2 (8:2); dm-0 (253:0) holds sda2; md0 (9:0) holds dm-0."""
    root = tmp_path / "sys"
    dev = root / "devices" / "pci0000:00" / "block"
    sda = dev / "sda"
    _w(sda / "dev", "8:0")
    _w(sda / "size", "2048")
    _w(sda / "ro", "0")
    _w(sda / "removable", "1")
    _w(sda / "queue" / "logical_block_size", "512")
    _w(sda / "queue" / "physical_block_size", "4096")
    _w(sda / "queue" / "rotational", "1")
    _w(sda / "device" / "model", "EVIDENCE DISK   ")
    _w(sda / "device" / "vendor", "ACME")
    _w(sda / "device" / "serial", "SN-1234")
    (sda / "holders").mkdir()
    for i in (1, 2):
        p = sda / f"sda{i}"
        _w(p / "partition", str(i))
        _w(p / "dev", f"8:{i}")
        _w(p / "size", "1000")
        _w(p / "ro", "0")
        (p / "holders").mkdir()
    (sda / "sda2" / "holders" / "dm-0").touch()
    virt = root / "devices" / "virtual" / "block"
    _w(virt / "dm-0" / "dev", "253:0")
    (virt / "dm-0" / "holders").mkdir()
    (virt / "dm-0" / "holders" / "md0").touch()
    _w(virt / "md0" / "dev", "9:0")
    (virt / "md0" / "holders").mkdir()
    cls = root / "class" / "block"
    cls.mkdir(parents=True)
    devblk = root / "dev" / "block"
    devblk.mkdir(parents=True)
    for name, target, devno in [("sda", sda, "8:0"), ("sda1", sda / "sda1", "8:1"), ("sda2", sda / "sda2", "8:2"),
                                ("dm-0", virt / "dm-0", "253:0"), ("md0", virt / "md0", "9:0")]:
        (cls / name).symlink_to(target)
        (devblk / devno).symlink_to(target)
    return root


def _mountinfo(tmp_path: Path, lines: list[str]) -> str:
    p = tmp_path / "mountinfo"
    p.write_text("".join(line + "\n" for line in lines))
    return str(p)


def _line(devno: str, mnt: str, opts: str, src: str, fstype: str = "ext4") -> str:
    return f"36 25 {devno} / {mnt} {opts},relatime shared:1 - {fstype} {src} {opts}"


def test_family_lists_partitions_and_stacked_holders(fake_sysfs: Path) -> None:
    parts, holders = sg.device_family("sda", sysfs=str(fake_sysfs))
    assert parts == ["sda1", "sda2"]
    assert holders == ["dm-0", "md0"]


def test_resolve_block_partition_and_disk(fake_sysfs: Path) -> None:
    bd = sg.resolve_block(os.makedev(8, 2), sysfs=str(fake_sysfs))
    assert bd == sg.BlockDevice("sda2", "8:2", True, "sda")
    assert sg.resolve_block(os.makedev(8, 0), sysfs=str(fake_sysfs)) == sg.BlockDevice("sda", "8:0", False, "sda")
    assert sg.resolve_block(os.makedev(7, 99), sysfs=str(fake_sysfs)) is None


def test_kernel_ro_set_on_disk_and_every_partition(fake_sysfs: Path) -> None:
    state = {"sda": False, "sda1": False, "sda2": True}
    calls: list[tuple[str, bool | None]] = []

    def fake_ioctl(path: str, value: bool | None) -> bool:
        name = os.path.basename(path)
        calls.append((name, value))
        if value is not None:
            state[name] = value
        return state[name]

    before, after, errors = sg.set_kernel_ro("sda", True, sysfs=str(fake_sysfs), dev="/dev", ioctl=fake_ioctl)
    assert errors == []
    assert before == {"sda": False, "sda1": False, "sda2": True}
    assert after == {"sda": True, "sda1": True, "sda2": True}
    # partitions are set before the disk
    set_order = [n for n, v in calls if v is True]
    assert set_order == ["sda1", "sda2", "sda"]
    before, after, errors = sg.set_kernel_ro("sda", False, sysfs=str(fake_sysfs), ioctl=fake_ioctl)
    assert after == {"sda": False, "sda1": False, "sda2": False}


def test_kernel_ro_failure_on_a_partition_is_reported(fake_sysfs: Path) -> None:
    def fake_ioctl(path: str, value: bool | None) -> bool:
        if path.endswith("sda2") and value is not None:
            raise PermissionError(1, "Operation not permitted")
        return bool(value)

    _, _, errors = sg.set_kernel_ro("sda", True, sysfs=str(fake_sysfs), ioctl=fake_ioctl)
    assert errors and "sda2" in errors[0]


def test_mounted_partition_refused(fake_sysfs: Path, tmp_path: Path) -> None:
    mi = _mountinfo(tmp_path, [_line("8:1", "/media/x", "ro", "/dev/sda1")])
    with pytest.raises(WriteBlockError, match="sda1 on /media/x"):
        sg.check_mounts("sda", sysfs=str(fake_sysfs), mountinfo=mi)
    item = sg.check_mounts("sda", allow_mounted=True, sysfs=str(fake_sysfs), mountinfo=mi)
    assert item.status == "warning" and "sda1" in item.detail


def test_rw_mount_of_a_holder_refused_even_when_allowed(fake_sysfs: Path, tmp_path: Path) -> None:
    mi = _mountinfo(tmp_path, [_line("9:0", "/srv", "rw", "/dev/md0")])
    with pytest.raises(WriteBlockError, match="read-write"):
        sg.check_mounts("sda", allow_mounted=True, sysfs=str(fake_sysfs), mountinfo=mi)


def test_btrfs_anonymous_devno_matched_by_source(fake_sysfs: Path, tmp_path: Path) -> None:
    mi = _mountinfo(tmp_path, [_line("0:45", "/data", "rw", "/dev/dm-0", "btrfs")])
    with pytest.raises(WriteBlockError):
        sg.check_mounts("sda", sysfs=str(fake_sysfs), mountinfo=mi)


def test_nothing_mounted_ok(fake_sysfs: Path, tmp_path: Path) -> None:
    mi = _mountinfo(tmp_path, [_line("8:16", "/", "rw", "/dev/sdb1")])
    assert sg.check_mounts("sda", sysfs=str(fake_sysfs), mountinfo=mi).status == "ok"


def test_identity_from_sysfs(fake_sysfs: Path) -> None:
    ident = sg.source_identity("sda", sysfs=str(fake_sysfs))
    assert ident["model"] == "EVIDENCE DISK"
    assert ident["serial"] == "SN-1234"
    assert ident["size"] == 2048 * 512
    assert ident["logical_sector_size"] == 512 and ident["physical_sector_size"] == 4096
    assert ident["rotational"] is True and ident["removable"] is True and ident["kernel_ro"] is False
    part = sg.source_identity("sda1", sysfs=str(fake_sysfs))
    assert part["is_partition"] and part["serial"] == "SN-1234"


def test_target_on_filesystem_mounted_from_a_partition_refused(fake_sysfs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mnt"
    folder.mkdir()
    mi = _mountinfo(tmp_path, [_line("8:1", str(folder), "rw", "/dev/sda1")])
    src = SimpleNamespace(is_stream=False, kind="block", path="/dev/sda", st_rdev=os.makedev(8, 0), st_dev=0,
                          st_ino=0)
    with pytest.raises(WriteBlockError, match="mounted from the source"):
        sg.check_targets(src, [folder / "x.E01"], sysfs=str(fake_sysfs), mountinfo=mi)  # type: ignore[arg-type]
    ok = sg.check_targets(src, [tmp_path / "x.E01"], sysfs=str(fake_sysfs), mountinfo=mi)  # type: ignore[arg-type]
    assert ok.status == "ok"


def test_hpa_not_checked_without_hdparm() -> None:
    assert sg.hpa_dco("/dev/null", hdparm="/nonexistent/hdparm")["status"] == "not checked"


def test_media_type_detected_from_sysfs(fake_sysfs: Path) -> None:
    """sysfs device/type 5 (ROM) → optical; removable → removable; else fixed."""
    sr = fake_sysfs / "devices" / "pci0000:00" / "ata2" / "block" / "sr0"
    _w(sr / "dev", "11:0")
    _w(sr / "size", "1400000")
    _w(sr / "removable", "1")
    _w(sr / "ro", "0")
    _w(sr / "queue" / "logical_block_size", "2048")
    _w(sr / "device" / "type", "5")
    _w(sr / "device" / "model", "DVD-RW DRIVE")
    (fake_sysfs / "class" / "block" / "sr0").symlink_to(sr)
    nv = fake_sysfs / "devices" / "pci0000:00" / "nvme" / "block" / "nvme0n1"
    _w(nv / "dev", "259:0")
    _w(nv / "size", "1000")
    _w(nv / "removable", "0")
    (fake_sysfs / "class" / "block" / "nvme0n1").symlink_to(nv)
    _w(fake_sysfs / "devices" / "pci0000:00" / "block" / "sda" / "device" / "type", "0")

    ident = sg.source_identity("sr0", sysfs=str(fake_sysfs))
    assert ident["scsi_type"] == 5 and ident["logical_sector_size"] == 2048
    assert sg.detect_media_type(ident)[0] == "optical" and "device/type 5" in sg.detect_media_type(ident)[1]
    # sda is a removable disk (type 0), its partition inherits the disk's facts
    assert sg.detect_media_type(sg.source_identity("sda", sysfs=str(fake_sysfs)))[0] == "removable"
    assert sg.detect_media_type(sg.source_identity("sda1", sysfs=str(fake_sysfs)))[0] == "removable"
    # no device/type at all (nvme, loop) and not removable: fixed; a file: fixed
    ident = sg.source_identity("nvme0n1", sysfs=str(fake_sysfs))
    assert ident["scsi_type"] is None and sg.detect_media_type(ident)[0] == "fixed"
    assert sg.detect_media_type(None)[0] == "fixed"


def test_cd_toc_structures_and_best_effort_read(tmp_path: Path) -> None:
    """The cdrom.h structures as the kernel fills them; a source that is no CD drive gives 'not available'."""
    import struct

    from forensimg.acquire import source as srcmod

    assert srcmod.parse_toc_header(bytes([1, 3])) == (1, 3)
    # track 2, adr 1 / ctrl 4 (data track), CDROM_LBA, start LBA 22500, data mode 1
    entry = struct.pack("=BBBxiB3x", 2, (4 << 4) | 1, srcmod.CDROM_LBA, 22500, 1)
    assert len(entry) == 12  # sizeof(struct cdrom_tocentry) on x86-64
    assert srcmod.parse_toc_entry(entry) == {"track": 2, "lba": 22500, "data": True, "adr": 1, "ctrl": 4,
                                             "mode": 1}
    audio = struct.pack("=BBBxiB3x", 1, (0 << 4) | 1, srcmod.CDROM_LBA, 0, 0)
    assert srcmod.parse_toc_entry(audio)["data"] is False
    assert srcmod.parse_multisession(struct.pack("=iBB2x", 31000, 1, srcmod.CDROM_LBA)) == {
        "multisession": True, "last_session_lba": 31000,
        "detail": "more than one session; the drive reports the start of the last one only"}
    assert srcmod.parse_multisession(struct.pack("=iBB2x", 0, 0, srcmod.CDROM_LBA))["multisession"] is False
    f = tmp_path / "disc.iso"
    f.write_bytes(bytes(4096))
    with srcmod.open_source(str(f)) as s:
        assert s.read_cd_toc()["status"] == "not available"
