"""Software write-blocking safeguards for acquisition (Linux).

Before the first read of a source:

* **mounts**: the source, its partitions and every holder stacked on them (device-mapper, md, LVM:
  ``/sys/class/block/NAME/holders``) are looked up in ``/proc/self/mountinfo``; a mount refuses the
  acquisition unless ``allow_mounted`` is given, and a read-write mount always refuses it;
* **kernel read-only flag**: ``BLKROSET`` sets the device and every partition read-only in the block
  layer (writes then fail with ``EPERM``/``EACCES`` for every process, including file systems mounted
  later), with the state before and after recorded (``BLKROGET``);
* **targets**: an output whose folder lies on the source device, on one of its partitions, on a file
  system mounted from any of them, or that is the source itself, is refused;
* **identity**: model, serial, size, logical/physical sector size, rotational, removable and the kernel
  read-only state come from sysfs; HPA/DCO from ``hdparm -N`` where present ("not checked" otherwise).

Every function takes the sysfs root, the mountinfo path and the ``/dev`` root as parameters, so that
tests can run them over a fake tree. Nothing here opens evidence for reading: device nodes are opened
for ioctls through :func:`forensimg.acquire.source.open_control`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensimg.acquire.source import BLKROGET, BLKROSET, Source, open_control
from forensimg.errors import WriteBlockError

__all__ = [
    "MEDIA_TYPES",
    "SCSI_TYPE_ROM",
    "BlockDevice",
    "Mount",
    "Safeguard",
    "SafeguardReport",
    "check_mounts",
    "check_targets",
    "detect_media_type",
    "device_family",
    "get_kernel_ro",
    "hpa_dco",
    "read_mountinfo",
    "resolve_block",
    "set_kernel_ro",
    "source_identity",
]

log = logging.getLogger(__name__)

SYSFS = "/sys"
MOUNTINFO = "/proc/self/mountinfo"
DEV = "/dev"


@dataclass(frozen=True, slots=True)
class Safeguard:
    """One safeguard and its outcome.

    Attributes:
        name: ``o_noatime``, ``mounts``, ``kernel_ro``, ``target_location``, ``hpa_dco`` ...
        status: ``applied``, ``ok``, ``warning``, ``refused``, ``not_applicable`` or ``not_checked``.
        detail: one line for the report.
        before: state before acquisition (per device for ``kernel_ro``).
        after: state after acquisition.
    """

    name: str
    status: str
    detail: str
    before: Any = None
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "before": self.before,
                "after": self.after}


@dataclass
class SafeguardReport:
    """The safeguards applied to one acquisition, in order, with warnings."""

    items: list[Safeguard] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, item: Safeguard) -> None:
        """Record a safeguard (a later item with the same name replaces the earlier one)."""
        self.items = [i for i in self.items if i.name != item.name] + [item]
        if item.status == "warning":
            self.warnings.append(f"{item.name}: {item.detail}")

    def get(self, name: str) -> Safeguard | None:
        """The item called ``name``, if recorded."""
        return next((i for i in self.items if i.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"items": [i.to_dict() for i in self.items], "warnings": list(self.warnings)}


@dataclass(frozen=True, slots=True)
class BlockDevice:
    """A block device as sysfs names it.

    Attributes:
        name: kernel name (``sda``, ``sda1``, ``loop0``, ``dm-0``).
        devno: ``major:minor``.
        is_partition: whether it is a partition of ``disk``.
        disk: kernel name of the whole disk.
    """

    name: str
    devno: str
    is_partition: bool
    disk: str


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of ``/proc/self/mountinfo``."""

    devno: str
    mount_point: str
    read_only: bool
    fstype: str
    source: str


def _read(p: Path) -> str | None:
    try:
        return p.read_text().strip()
    except OSError:
        return None


def _class_dir(name: str, sysfs: str) -> Path:
    return Path(sysfs) / "class" / "block" / name


def resolve_block(st_rdev: int, *, sysfs: str = SYSFS) -> BlockDevice | None:
    """The block device with device number ``st_rdev``, via ``/sys/dev/block/MAJ:MIN``."""
    devno = f"{os.major(st_rdev)}:{os.minor(st_rdev)}"
    link = Path(sysfs) / "dev" / "block" / devno
    try:
        real = link.resolve(strict=True)
    except OSError:
        return None
    name = real.name
    if (real / "partition").exists():
        return BlockDevice(name, devno, True, real.parent.name)
    return BlockDevice(name, devno, False, name)


def _partitions(disk: str, sysfs: str) -> list[str]:
    d = _class_dir(disk, sysfs)
    try:
        entries = sorted(os.listdir(d))
    except OSError:
        return []
    return [e for e in entries if (d / e / "partition").exists()]


def _holders(name: str, sysfs: str, seen: set[str]) -> list[str]:
    out: list[str] = []
    try:
        entries = sorted(os.listdir(_class_dir(name, sysfs) / "holders"))
    except OSError:
        return out
    for h in entries:
        if h in seen:
            continue
        seen.add(h)
        out.append(h)
        out.extend(_holders(h, sysfs, seen))
    return out


def device_family(disk: str, *, sysfs: str = SYSFS) -> tuple[list[str], list[str]]:
    """The partitions of ``disk`` and the holders (dm, md, LVM) stacked on it or on its partitions.

    Returns:
        ``(partitions, holders)``, kernel names.
    """
    parts = _partitions(disk, sysfs)
    seen: set[str] = {disk, *parts}
    holders: list[str] = []
    for n in [disk, *parts]:
        holders.extend(_holders(n, sysfs, seen))
    return parts, holders


def _devno(name: str, sysfs: str) -> str | None:
    return _read(_class_dir(name, sysfs) / "dev")


def read_mountinfo(path: str = MOUNTINFO) -> list[Mount]:
    """Parse ``/proc/self/mountinfo`` (proc(5): fields before ``-`` then fstype, source, super options)."""
    out: list[Mount] = []
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(" ")
        if "-" not in parts or len(parts) < 6:
            continue
        sep = parts.index("-")
        devno, mnt, opts = parts[2], _unescape(parts[4]), parts[5].split(",")
        fstype = parts[sep + 1] if len(parts) > sep + 1 else ""
        src = _unescape(parts[sep + 2]) if len(parts) > sep + 2 else ""
        sopts = parts[sep + 3].split(",") if len(parts) > sep + 3 else []
        ro = "ro" in opts or "ro" in sopts
        out.append(Mount(devno, mnt, ro, fstype, src))
    return out


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    if "\\" not in s:
        return s
    out = []
    i = 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) + 0 and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _mounts_of(names: Iterable[str], sysfs: str, mountinfo: str) -> list[tuple[str, Mount]]:
    names = list(names)
    devnos = {d: n for n in names if (d := _devno(n, sysfs))}
    found: list[tuple[str, Mount]] = []
    for m in read_mountinfo(mountinfo):
        if m.devno in devnos:
            found.append((devnos[m.devno], m))
        elif m.source.startswith("/dev/") and os.path.basename(m.source) in names:
            # btrfs and others report an anonymous device number; the mount source still names it.
            found.append((os.path.basename(m.source), m))
    return found


def check_mounts(
    disk: str,
    *,
    allow_mounted: bool = False,
    sysfs: str = SYSFS,
    mountinfo: str = MOUNTINFO,
) -> Safeguard:
    """Refuse a source whose device, partitions or holders are mounted.

    Returns:
        The safeguard record (status ``ok``, or ``warning`` when read-only mounts were allowed).

    Raises:
        WriteBlockError: something is mounted (read-write always; read-only unless ``allow_mounted``).
    """
    parts, holders = device_family(disk, sysfs=sysfs)
    found = _mounts_of([disk, *parts, *holders], sysfs, mountinfo)
    desc = [f"/dev/{n} on {m.mount_point} ({'ro' if m.read_only else 'rw'}, {m.fstype})" for n, m in found]
    checked = f"checked /dev/{disk}" + (f", partitions {', '.join(parts)}" if parts else "") + (
        f", holders {', '.join(holders)}" if holders else ""
    )
    if not found:
        return Safeguard("mounts", "ok", f"nothing mounted ({checked})", before=[], after=None)
    rw = [d for (_, m), d in zip(found, desc, strict=True) if not m.read_only]
    if rw:
        raise WriteBlockError(
            f"source /dev/{disk} is mounted read-write: {'; '.join(rw)} (unmount it first; refused always)",
            path=f"/dev/{disk}",
        )
    if not allow_mounted:
        raise WriteBlockError(
            f"source /dev/{disk} is mounted: {'; '.join(desc)} (unmount it, or give --allow-mounted)",
            path=f"/dev/{disk}",
        )
    return Safeguard("mounts", "warning", "acquired while mounted read-only (--allow-mounted): " + "; ".join(desc),
                     before=desc)


IoctlRO = Callable[[str, bool | None], bool]
"""``f(device_path, set_to)`` → the flag after the call (``set_to=None`` only reads it)."""


def kernel_ro_ioctl(path: str, set_to: bool | None) -> bool:
    """BLKROGET, and BLKROSET when ``set_to`` is given, on the device node ``path``."""
    fd = open_control(path)
    try:
        if set_to is not None:
            fcntl.ioctl(fd, BLKROSET, struct.pack("i", 1 if set_to else 0))
        buf = bytearray(4)
        fcntl.ioctl(fd, BLKROGET, buf, True)
        return bool(struct.unpack("i", buf)[0])
    finally:
        os.close(fd)


def get_kernel_ro(names: Sequence[str], *, dev: str = DEV, ioctl: IoctlRO = kernel_ro_ioctl) -> dict[str, bool | None]:
    """The kernel read-only flag of each device (``None`` where it cannot be read)."""
    out: dict[str, bool | None] = {}
    for n in names:
        try:
            out[n] = ioctl(os.path.join(dev, n), None)
        except OSError:
            out[n] = None
    return out


def set_kernel_ro(
    disk: str,
    value: bool = True,
    *,
    sysfs: str = SYSFS,
    dev: str = DEV,
    ioctl: IoctlRO = kernel_ro_ioctl,
) -> tuple[dict[str, bool | None], dict[str, bool | None], list[str]]:
    """Set (or clear) the kernel read-only flag on ``disk`` and every partition of it.

    Partitions come from sysfs; a partition whose node is missing in ``dev`` is reported as an error.

    Returns:
        ``(before, after, errors)``: flag per device name before and after, and one line per failure.
    """
    parts, _ = device_family(disk, sysfs=sysfs)
    names = [disk, *parts]
    before = get_kernel_ro(names, dev=dev, ioctl=ioctl)
    after: dict[str, bool | None] = {}
    errors: list[str] = []
    # Partitions first when setting, the disk first when clearing: no moment where a partition is
    # writable while the disk reports read-only.
    order = names[1:] + names[:1] if value else names
    for n in order:
        try:
            after[n] = ioctl(os.path.join(dev, n), value)
        except OSError as exc:
            after[n] = before.get(n)
            errors.append(f"/dev/{n}: {exc.strerror or exc}")
    return before, {n: after.get(n) for n in names}, errors


def _is_within(path: str, mount_point: str) -> bool:
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def check_targets(
    source: Source,
    targets: Sequence[str | os.PathLike[str]],
    *,
    sysfs: str = SYSFS,
    mountinfo: str = MOUNTINFO,
) -> Safeguard:
    """Refuse outputs that would lie on the source device (or a partition / holder / file system of it).

    Checks, for every target path (the first segment stands for all: segments share a folder):
    the path is not the source itself; the target folder's ``st_dev`` is not the source's device, a
    partition or a holder of it; the file system holding the folder is not mounted from any of them.

    Raises:
        WriteBlockError: a target lies on the source.
    """
    if source.is_stream:
        return Safeguard("target_location", "not_applicable", "source is a stream")
    src_real = os.path.realpath(source.path)
    bad_devnos: dict[str, str] = {}
    names: list[str] = []
    if source.kind == "block":
        bd = resolve_block(source.st_rdev, sysfs=sysfs)
        if bd is not None:
            parts, holders = device_family(bd.disk, sysfs=sysfs)
            names = [bd.disk, *parts, *holders]
            for n in names:
                d = _devno(n, sysfs)
                if d:
                    bad_devnos[d] = n
        bad_devnos.setdefault(f"{os.major(source.st_rdev)}:{os.minor(source.st_rdev)}", os.path.basename(src_real))
    mounts = read_mountinfo(mountinfo)
    for t in targets:
        tp = os.path.realpath(os.fspath(t))
        if tp == src_real or (os.path.exists(tp) and _same_file(tp, source)):
            raise WriteBlockError(f"target '{t}' is the source itself", path=os.fspath(t))
        folder = os.path.dirname(tp) or "."
        try:
            st = os.stat(folder)
        except OSError:
            continue  # the writer reports a missing folder
        dn = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        if dn in bad_devnos:
            raise WriteBlockError(
                f"target '{t}' lies on a file system of the source device (/dev/{bad_devnos[dn]})", path=os.fspath(t)
            )
        best: Mount | None = None
        for m in mounts:
            if _is_within(folder, m.mount_point) and (best is None or len(m.mount_point) > len(best.mount_point)):
                best = m
        if best is not None and (best.devno in bad_devnos or os.path.basename(best.source) in names):
            raise WriteBlockError(
                f"target '{t}' lies on {best.mount_point}, mounted from the source ({best.source})",
                path=os.fspath(t),
            )
    return Safeguard("target_location", "ok", "no target lies on the source device, its partitions or holders")


def _same_file(path: str, source: Source) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if source.kind == "block":
        return bool(st.st_rdev == source.st_rdev and st.st_rdev)
    return st.st_dev == source.st_dev and st.st_ino == source.st_ino


def source_identity(name: str, *, sysfs: str = SYSFS) -> dict[str, Any]:
    """Identity facts of block device ``name`` from sysfs (missing facts are left out or empty).

    Keys: ``name``, ``model``, ``serial``, ``vendor``, ``size`` (bytes), ``logical_sector_size``,
    ``physical_sector_size``, ``rotational``, ``removable``, ``kernel_ro`` (sysfs ``ro``),
    ``backing_file`` (loop devices), ``is_partition``, ``scsi_type`` (sysfs ``device/type``: 0 disk,
    5 ROM/optical; ``None`` where the device has none, e.g. loop, nvme).
    """
    d = _class_dir(name, sysfs)
    disk_dir = d.parent / d.resolve().parent.name if (d / "partition").exists() else d

    def r(rel: str, base: Path = d) -> str | None:
        return _read(base / rel)

    def num(v: str | None) -> int | None:
        try:
            return int(v) if v is not None else None
        except ValueError:
            return None

    size = num(r("size"))
    serial = r("device/serial", disk_dir) or r("serial", disk_dir) or r("device/wwid", disk_dir) or ""
    out: dict[str, Any] = {
        "name": name,
        "model": (r("device/model", disk_dir) or "").strip(),
        "vendor": (r("device/vendor", disk_dir) or "").strip(),
        "serial": serial.strip(),
        "size": size * 512 if size is not None else None,  # sysfs 'size' counts 512-byte units always
        "logical_sector_size": num(r("queue/logical_block_size", disk_dir)),
        "physical_sector_size": num(r("queue/physical_block_size", disk_dir)),
        "rotational": bool(num(r("queue/rotational", disk_dir))),
        "removable": bool(num(r("removable", disk_dir))),
        "kernel_ro": bool(num(r("ro"))),
        "is_partition": (d / "partition").exists(),
        "scsi_type": num(r("device/type", disk_dir)),
    }
    backing = r("loop/backing_file", disk_dir)
    if backing:
        out["backing_file"] = backing
    return out


SCSI_TYPE_ROM = 5
"""SCSI peripheral device type 5: CD/DVD/BD (MMC) drive; sysfs ``device/type`` of ``sr`` devices."""

MEDIA_TYPES: tuple[str, ...] = ("fixed", "removable", "optical", "memory")
"""Media types as E01 records them (ewfacquire ``-m``), also stored in fimg's source record."""


def detect_media_type(identity: dict[str, Any] | None) -> tuple[str, str]:
    """The media type of a source from its :func:`source_identity`, with the reason.

    sysfs ``device/type`` 5 (a ROM drive) → ``optical``; sysfs ``removable`` → ``removable``; else
    ``fixed`` (also for files and streams, where ``identity`` is ``None``).
    """
    if identity is None:
        return "fixed", "default (the source is not a block device)"
    if identity.get("scsi_type") == SCSI_TYPE_ROM:
        return "optical", "detected: sysfs device/type 5 (ROM drive)"
    if identity.get("removable"):
        return "removable", "detected: sysfs removable = 1"
    return "fixed", "detected: neither an optical drive nor removable"


def hpa_dco(device_path: str, *, hdparm: str | None = None) -> dict[str, Any]:
    """Host-protected area as ``hdparm -N`` reports it; ``{"status": "not checked"}`` without hdparm.

    Never changes the device: ``-N`` without a value only reads the max-sector settings.
    """
    tool = hdparm or shutil.which("hdparm")
    if not tool:
        return {"status": "not checked", "detail": "hdparm not installed"}
    try:
        proc = subprocess.run([tool, "-N", device_path], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"status": "not checked", "detail": f"hdparm failed: {exc}"}
    text = (proc.stdout + proc.stderr).strip()
    out: dict[str, Any] = {"status": "checked" if proc.returncode == 0 else "not checked", "output": text}
    for line in text.splitlines():
        if "max sectors" in line:
            out["max_sectors"] = line.split("=", 1)[-1].strip()
            out["hpa"] = "enabled" if "HPA is enabled" in line else "disabled" if "HPA is disabled" in line else ""
    return out
