"""Sector-level restore: the media of an image written back onto a block device or a file, then verified.

:func:`restore` writes the media of any image (raw, split raw, E01, fimg) front to back onto a
destination, sector for sector, reads the written range back *from the device* and compares its hashes
with the reference: the hashes stored in the image, or, where it stores none (or for an algorithm asked
for that it does not store), the hashes of what was written, computed while writing:

* every chunk is checked (Adler-32, SHA-256, ...) **before** it is written; a chunk that fails its check
  stops the restore before a byte of it reaches the destination (:class:`RestoreStoppedError`), unless
  ``zero_fill=True``, which writes zeros for it and lists it;
* ranges the image records as unreadable at acquisition are written as zeros and listed;
* the destination is written with ``O_DIRECT`` from reused page-aligned buffers (buffered where it refuses
  ``O_DIRECT``), and read back with ``O_DIRECT`` block by block right behind the writer (the kernel writes
  back any dirty page of a range before an ``O_DIRECT`` read of it), so the hashes come from the device,
  not the page cache, and the read-back overlaps the writing; the final ``fsync`` (and ``BLKFLSBUF``)
  surfaces any late write error;
* a mismatch with a stored hash that was not computed while writing is located by hashing the media
  again from the image: the report then says whether the image disagrees with its own stored hash or the
  destination returned other bytes than were written.

Safeguards (each one recorded in :attr:`RestoreResult.safeguards`; a refusal raises
:class:`~forensimg.errors.WriteBlockError`, exit 5): the destination must be named again in ``confirm``;
a block device that is mounted (itself, a partition of it, or a holder: dm, md, LVM), used as swap, held
open exclusively, smaller than the media, or set read-only in the kernel (``BLKROGET``, as acquisition
leaves evidence) is refused, and so is the device an image was acquired from (same serial and model as
recorded in the image's source identity, its custody log's acquire events or its acquisition report), and
any file that is part of the image itself.

Beyond the media, a larger destination keeps its old content (the *tail*, whose range is reported) unless
``wipe_tail=True``, which zeroes it.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import json
import logging
import mmap
import os
import queue
import re
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensimg._version import __version__
from forensimg.custody import CustodyLog, default_log_path
from forensimg.errors import (
    CustodyError,
    Error,
    RestoreStoppedError,
    UsageError,
    WriteBlockError,
    WriteError,
)
from forensimg.hashing import DEFAULT_HASHES, MultiHasher, normalize_algorithms
from forensimg.image import Fault, Image, Range, merge_ranges

__all__ = [
    "DeviceFacts",
    "RestoreProgress",
    "RestoreResult",
    "RestoreStoppedError",
    "SafeguardCheck",
    "recorded_identities",
    "restore",
]

log = logging.getLogger(__name__)

# <linux/fs.h> block device ioctls
BLKROGET = 0x125E
BLKFLSBUF = 0x1261
BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B
BLKGETSIZE64 = 0x80081272

SYSFS_ROOT = Path("/sys")
"""Where sysfs is read from (tests point this at a fake tree)."""
PROC_ROOT = Path("/proc")

VERIFY_WINDOW: int | None = 0
"""Read back behind the writer: each window of this many bytes (at least one write block; ``0``, the
default: every block) is read back from the device as soon as it is written, while later blocks are
written, so that a restore takes about as long as the slower of writing and hashing instead of their
sum. ``None``: read back once everything is written and synced (the default before 2026-11-28; compare
with ``bench/bench_restore.py --also window=0``: slower than reading behind in 5 of 7 paired rounds on
the shared 2-core VM, bench/README.md "Restore")."""

BUFFERS = 8
"""Reused 4 MiB buffers on each side (writer, read-back): how far decoding may run ahead of the device and
the read-back behind it (a write waiting on a busy disk stalls the decoder less). On the shared VM 8 was
faster than 3 in 6 of 6 paired in-process rounds, but not clearly in a bench run (``--also buffers=3``);
16 was no faster and touches more memory."""

DIRECT_WRITE: bool = True
"""Write the destination with ``O_DIRECT`` from reused page-aligned buffers where it accepts it
(:class:`_Writer`); ``False``: buffered writes (compare with ``bench/bench_restore.py --also direct=0``)."""

RestoreProgress = Callable[[str, int, int], None]
"""``on_progress(phase, done_bytes, total_bytes)``; phase is ``write``, ``wipe`` or ``verify``."""


# -- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SafeguardCheck:
    """One safeguard and its outcome.

    Attributes:
        name: ``confirm``, ``not_image``, ``mounted``, ``exclusive``, ``kernel_ro``, ``size``,
            ``identity``, ``free_space``.
        status: ``passed``, ``refused``, ``not_applicable`` or ``not_checked``.
        detail: one line saying what was found.
    """

    name: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What is known about the destination before anything is written."""

    path: str
    kind: str  # "block" or "file"
    size: int
    logical_sector_size: int | None = None
    physical_sector_size: int | None = None
    read_only: bool | None = None
    model: str = ""
    serial: str = ""
    dev: str | None = None  # "major:minor" of a block device

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "path": self.path,
            "kind": self.kind,
            "size": self.size,
            "logical_sector_size": self.logical_sector_size,
            "physical_sector_size": self.physical_sector_size,
            "read_only": self.read_only,
            "model": self.model,
            "serial": self.serial,
            "dev": self.dev,
        }


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore did and found.

    Attributes:
        image: the image's segment files.
        image_format: its format.
        destination: facts about the destination (before writing).
        media_size: bytes of media written.
        sector_size: the image's bytes per sector.
        bytes_written: media bytes written (less than ``media_size`` when stopped).
        written_hashes: hashes of the bytes written, for the algorithms the image stores no hash of
            (computed while writing: the read-back is compared with them); after a mismatch, also the
            stored algorithms, hashed again from the image (see ``written_from``).
        readback_hashes: hashes of the destination's first ``media_size`` bytes, read back from it
            (every algorithm: the stored ones and those asked for).
        stored_hashes: the hashes recorded in the image (the reference).
        written_from: per algorithm in ``written_hashes``: ``write`` (hashed while writing) or ``image``
            (hashed again from the image after a mismatch, to tell a bad image from a bad destination).
        status: ``verified`` (read-back = stored for every stored algorithm, and = written for any other),
            ``mismatch``, ``no_reference`` (read-back = written, but the image stores no hash) or
            ``stopped`` (a corrupt chunk stopped the restore).
        unreadable: ranges recorded as unreadable in the image, written as zeros.
        faults: chunks that failed their check (zero-filled with ``zero_fill``, or the one that stopped).
        tail: the destination bytes beyond the media, if any.
        tail_wiped: whether the tail was zeroed.
        readback_method: how the read-back avoided the page cache.
        safeguards: every safeguard and its outcome.
        warnings: things the examiner should know (sector size differences, partial last sector, ...).
        started_at, finished_at: UTC times.
        timings: seconds per phase, from the start of :func:`restore`: ``written`` (every byte handed to
            the destination), ``synced`` (``fsync`` done: the write phase, what ``ewfexport`` + ``sync``
            does), ``verified`` (read-back done); ``readback_s`` = ``verified`` - ``synced`` (with the
            read-back behind the writer, only what was left to read after the ``fsync``).
    """

    image: tuple[str, ...]
    image_format: str
    destination: DeviceFacts
    media_size: int
    sector_size: int
    bytes_written: int
    written_hashes: Mapping[str, str]
    readback_hashes: Mapping[str, str]
    stored_hashes: Mapping[str, str]
    status: str
    unreadable: tuple[Range, ...] = ()
    faults: tuple[Fault, ...] = ()
    tail: Range | None = None
    tail_wiped: bool = False
    readback_method: str = ""
    safeguards: tuple[SafeguardCheck, ...] = ()
    warnings: tuple[str, ...] = ()
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    written_from: Mapping[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 verified, 1 mismatch or stopped, 4 no reference hash."""
        return {"verified": 0, "no_reference": 4}.get(self.status, 1)

    def hash_checks(self) -> list[dict[str, Any]]:
        """Per algorithm: read back, stored, written, and whether they agree.

        ``compared_with`` names the reference(s) of the verdict: ``stored`` (the image's hash) and/or
        ``written`` (hashed while writing, for an algorithm the image stores no hash of). A ``written``
        hash from ``image`` (re-hashed after a mismatch) only locates the mismatch.
        """
        out = []
        algs = list(self.readback_hashes) + [a for a in self.written_hashes if a not in self.readback_hashes]
        for alg in algs:
            back = self.readback_hashes.get(alg)
            written = self.written_hashes.get(alg)
            stored = self.stored_hashes.get(alg)
            origin = self.written_from.get(alg, "write" if written is not None else None)
            compared = (["stored"] if stored is not None else []) + (["written"] if origin == "write" else [])
            out.append(
                {
                    "algorithm": alg,
                    "read_back": back,
                    "stored": stored,
                    "written": written,
                    "written_from": origin,
                    "compared_with": compared,
                    "read_back_matches_written": None if written is None else back == written,
                    "matches_stored": None if stored is None else back == stored,
                }
            )
        return out

    @property
    def diagnosis(self) -> str:
        """For a ``mismatch``: which comparison failed and what that points to ("" otherwise)."""
        if self.status != "mismatch":
            return ""
        checks = self.hash_checks()
        bad_written = [h["algorithm"].upper() for h in checks if h["read_back_matches_written"] is False]
        bad_stored = [h["algorithm"].upper() for h in checks if h["matches_stored"] is False]
        parts = []
        if bad_written:
            parts.append(
                f"the destination returned other bytes than were written ({', '.join(bad_written)} of the read-back "
                "differs from what was written): a faulty or changing destination"
            )
        if bad_stored:
            located = all(h["read_back_matches_written"] is True for h in checks if h["matches_stored"] is False)
            if bad_written:
                parts.append(f"and the read-back differs from the image's stored {', '.join(bad_stored)}")
            elif not located:  # the media could not be hashed again from the image (see the warnings)
                parts.append(f"the read-back differs from the image's stored {', '.join(bad_stored)}")
            elif self.faults:
                parts.append(
                    f"the read-back equals what was written, but that differs from the image's stored "
                    f"{', '.join(bad_stored)}: {len(self.faults)} chunk(s) were written as zeros (--zero-fill)"
                )
            else:
                parts.append(
                    f"the read-back equals what was written, but the image's media does not match its own stored "
                    f"{', '.join(bad_stored)}: the image (or its stored hash) is wrong, not the destination"
                )
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``forensimg restore --json``)."""
        ss = self.sector_size
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "diagnosis": self.diagnosis,
            "image": list(self.image),
            "image_format": self.image_format,
            "destination": self.destination.to_dict(),
            "media_size": self.media_size,
            "sector_size": ss,
            "bytes_written": self.bytes_written,
            "hashes": self.hash_checks(),
            "written_hashes": dict(self.written_hashes),
            "written_from": dict(self.written_from),
            "readback_hashes": dict(self.readback_hashes),
            "stored_hashes": dict(self.stored_hashes),
            "readback_method": self.readback_method,
            "unreadable": [r.to_dict(ss) for r in self.unreadable],
            "faults": [f.to_dict(ss) for f in self.faults],
            "tail": None if self.tail is None else {**self.tail.to_dict(), "wiped": self.tail_wiped},
            "safeguards": [c.to_dict() for c in self.safeguards],
            "warnings": list(self.warnings),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "tool": f"forensimg {__version__}",
        }


    def to_text(self, *, argv: Sequence[str] = (), report_path: str | None = None) -> str:
        """The restore report as plain text (what ``forensimg restore`` writes beside the image)."""
        import getpass
        import socket

        ss = self.sector_size
        checks = self.hash_checks()
        refs = sorted({r for h in checks for r in h["compared_with"]}, reverse=True)
        against = " and ".join({"stored": "the image's stored hashes", "written": "what was written"}[r] for r in refs)
        verdict = {
            "verified": f"VERIFIED: the read-back equals {against}",
            "mismatch": f"MISMATCH: {self.diagnosis}",
            "no_reference": "NO REFERENCE: the read-back equals what was written, but the image stores no hash",
            "stopped": "STOPPED: a chunk failed its check; the restore stopped before writing it",
        }[self.status]
        try:
            user = getpass.getuser()
        except Exception:  # no passwd entry (containers)
            user = str(os.getuid())
        d = self.destination
        kind = f"block device {d.dev}" if d.kind == "block" else "regular file"
        lines = [
            "forensimg restore report",
            "========================",
            f"Result:              {verdict}",
            f"Tool:                forensimg {__version__}",
            f"Command line:        {' '.join(argv)}" if argv else "Command line:        (library call)",
            f"Host / user:         {socket.gethostname()} / {user}",
            f"Started (UTC):       {self.started_at.isoformat()}",
            f"Finished (UTC):      {self.finished_at.isoformat() if self.finished_at else '-'}",
            "",
            "Image",
            f"  Format:            {self.image_format}",
            *[f"  Segment:           {p}" for p in self.image],
            f"  Media size:        {self.media_size} bytes ({-(-self.media_size // ss)} sectors of {ss} bytes)",
            "",
            "Destination",
            f"  Path:              {d.path} ({kind})",
            f"  Size:              {d.size} bytes",
            f"  Sector size:       logical {d.logical_sector_size or '-'}, physical {d.physical_sector_size or '-'}",
            f"  Model / serial:    {d.model or '-'} / {d.serial or '-'}",
            f"  Bytes written:     {self.bytes_written} (media 0..{self.media_size - 1})",
        ]
        if self.tail is None:
            lines.append("  Tail:              none (the destination is exactly the media size)")
        elif self.tail_wiped:
            lines.append(f"  Tail:              bytes {self.tail.start}..{self.tail.end - 1} zeroed (--wipe-tail)")
        else:
            lines.append(
                f"  Tail:              bytes {self.tail.start}..{self.tail.end - 1} ({self.tail.length} bytes) "
                "left as they were"
            )
        lines += ["", "Safeguards"]
        lines += [f"  {c.name:<18} {c.status:<15} {c.detail}" for c in self.safeguards]
        lines += ["", f"Hashes (read back: {self.readback_method or '-'})"]
        for h in checks:
            refs_alg = ", ".join(h["compared_with"]) or "-"
            lines.append(f"  {h['algorithm'].upper()}  (read-back compared with: {refs_alg})")
            lines.append(f"    read back:       {h['read_back'] or '-'}")
            stored = h["stored"] or "(none stored)"
            ok = "" if h["matches_stored"] is None else ("  match" if h["matches_stored"] else "  MISMATCH")
            lines.append(f"    stored:          {stored}{ok}")
            if h["written"] is None:
                lines.append("    written:         (not hashed while writing: each chunk was checked before it was "
                             "written, the stored hash is the reference)")
            else:
                same = "  match" if h["read_back_matches_written"] else "  DIFFERS"
                src = "hashed again from the image after the mismatch" if h["written_from"] == "image" else \
                    "hashed while writing"
                lines.append(f"    written:         {h['written']}{same} ({src})")
        lines += ["", f"Unreadable at acquisition (written as zeros): {len(self.unreadable) or 'none'}"]
        for r in self.unreadable:
            a, b = r.lba(ss)
            lines.append(f"  bytes {r.start}..{r.end - 1} (sectors {a}..{b})")
        lines += ["", f"Chunks failing their check: {len(self.faults) or 'none'}"]
        for f in self.faults:
            media = f" media {f.media.start}..{f.media.end - 1}" if f.media else ""
            action = "NOT written (restore stopped)" if self.status == "stopped" else "written as zeros (--zero-fill)"
            lines.append(f"  chunk {f.chunk}{media}: {action}: {f.detail}")
        if self.warnings:
            lines += ["", "Warnings"]
            lines += [f"  - {w}" for w in self.warnings]
        if report_path:
            lines += ["", f"Report: {report_path}"]
        return "\n".join(lines) + "\n"


# -- the destination ----------------------------------------------------------------------------------


def _ioctl_int(fd: int, req: int, fmt: str = "i") -> int | None:
    try:
        buf = fcntl.ioctl(fd, req, bytes(struct.calcsize(fmt)))
    except OSError:
        return None
    return int(struct.unpack(fmt, buf)[0])


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _block_of(dev: str) -> Any:
    """The :class:`~forensimg.acquire.safeguards.BlockDevice` with number ``major:minor`` (or None)."""
    from forensimg.acquire import safeguards as sg

    major, minor = (int(x) for x in dev.split(":"))
    return sg.resolve_block(os.makedev(major, minor), sysfs=str(SYSFS_ROOT))


def device_identity(dev: str) -> tuple[str, str]:
    """Model and serial of the disk holding block device ``major:minor`` (empty strings when unknown).

    sysfs (through :func:`forensimg.acquire.safeguards.source_identity`: ``device/model``,
    ``device/serial``, ``device/wwid``), then the SCSI unit serial number VPD page 0x80
    (``device/vpd_pg80``: a 4-byte header, then ASCII; SPC-4 §7.8.15) for SATA/SAS disks, then udev's
    ``ID_SERIAL_SHORT`` where udev runs. A partition takes its disk's identity.
    """
    from forensimg.acquire import safeguards as sg

    bd = _block_of(dev)
    if bd is None:
        return "", ""
    ident = sg.source_identity(bd.disk, sysfs=str(SYSFS_ROOT))
    model, serial = str(ident.get("model") or ""), str(ident.get("serial") or "")
    if not serial:
        try:
            raw = (SYSFS_ROOT / "class" / "block" / bd.disk / "device" / "vpd_pg80").read_bytes()
            serial = raw[4:].decode("ascii", "replace").strip(" \x00")
        except OSError:
            pass
    if not serial or not model:
        udev = Path("/run/udev/data") / f"b{dev}"
        for line in _read_text(udev).splitlines():
            if line.startswith("E:ID_SERIAL_SHORT=") and not serial:
                serial = line.split("=", 1)[1].strip()
            elif line.startswith("E:ID_MODEL=") and not model:
                model = line.split("=", 1)[1].strip().replace("_", " ")
    return model, serial


def _dev_of_path(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def mounts_of(dev: str) -> list[str]:
    """Mount points (and active swap) that use block device ``dev`` (``major:minor``), a partition of it,
    or a holder stacked on either (dm, md, LVM).

    The family comes from :func:`forensimg.acquire.safeguards.device_family` (a partition destination
    brings its own partitions and holders only, not its siblings); mounts from
    :func:`~forensimg.acquire.safeguards.read_mountinfo`, matched by ``major:minor`` and, for file
    systems that report an anonymous device number (btrfs), by the mount source's node; swap from
    ``/proc/swaps``.
    """
    from forensimg.acquire import safeguards as sg

    sysfs = str(SYSFS_ROOT)
    devs = {dev}
    names: set[str] = set()
    bd = _block_of(dev)
    if bd is not None:
        parts, holders = sg.device_family(bd.name, sysfs=sysfs)
        names = {bd.name, *parts, *holders}
        for n in names:
            d = _read_text(SYSFS_ROOT / "class" / "block" / n / "dev")
            if d:
                devs.add(d)
    found: list[str] = []
    for m in sg.read_mountinfo(str(PROC_ROOT / "self" / "mountinfo")):
        src_dev = _dev_of_path(m.source) if m.source.startswith("/") else None
        if m.devno in devs or (src_dev is not None and src_dev in devs) or (
            m.source.startswith("/dev/") and os.path.basename(m.source) in names
        ):
            found.append(f"{m.source} on {m.mount_point} ({'ro' if m.read_only else 'rw'}, {m.fstype})")
    for line in _read_text(PROC_ROOT / "swaps").splitlines()[1:]:
        fields = line.split()
        swap_dev = _dev_of_path(fields[0]) if fields else None
        if swap_dev is not None and swap_dev in devs:
            found.append(f"swap ({fields[0]})")
    return found


def _identity_pairs(obj: Any) -> Iterator[tuple[str, str]]:
    """Every ``(model, serial)`` pair found in dicts of a JSON-like structure."""
    if isinstance(obj, Mapping):
        keys = {str(k).lower(): v for k, v in obj.items()}
        serial = keys.get("serial") or keys.get("serial_number")
        if isinstance(serial, str) and serial.strip():
            model = keys.get("model")
            yield (str(model).strip() if model else ""), serial.strip()
        for v in obj.values():
            yield from _identity_pairs(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _identity_pairs(v)


_REPORT_LINE = re.compile(r"^\s*(?:source\s+|drive\s+|device\s+)?(model|serial(?:\s+number)?)\s*[:=]\s*(.+?)\s*$", re.I)


def recorded_identities(
    image: Image, custody_logs: Sequence[str | os.PathLike[str]] = ()
) -> list[tuple[str, str, str]]:
    """``(model, serial, where)`` of every device the image is recorded as acquired from.

    Looks in the image's own source identity (``ImageInfo.source``), in the acquire events of the
    custody logs given (default: the log beside the first segment), and in the acquisition reports
    beside the image (``IMAGE.txt``/``IMAGE.json``, and the same with the extension replaced).
    """
    out: list[tuple[str, str, str]] = []
    src = image.info.source
    if src is not None and src.serial.strip():
        out.append((src.model.strip(), src.serial.strip(), "image metadata (source identity)"))
    first = Path(image.info.segments[0]) if image.info.segments else None
    logs = [Path(p) for p in custody_logs]
    if not logs and first is not None:
        logs = [default_log_path(first)]
    for lp in logs:
        try:
            events = CustodyLog(lp).events()
        except (CustodyError, OSError):
            continue
        for ev in events:
            if ev.get("action") != "acquire":
                continue
            for model, serial in _identity_pairs(ev):
                out.append((model, serial, f"custody log '{lp}' event {ev.get('seq')}"))
    if first is not None:
        cands = {first.with_name(first.name + ext) for ext in (".txt", ".json")}
        cands |= {first.with_suffix(ext) for ext in (".txt", ".json")}
        for rp in sorted(cands):
            if not rp.is_file() or rp.stat().st_size > 4 << 20:
                continue
            text = _read_text(rp)
            if rp.suffix == ".json":
                try:
                    for model, serial in _identity_pairs(json.loads(text)):
                        out.append((model, serial, f"acquisition report '{rp}'"))
                except ValueError:
                    pass
                continue
            model = serial = ""
            for line in text.splitlines():
                m = _REPORT_LINE.match(line)
                if not m:
                    continue
                if m.group(1).lower().startswith("serial"):
                    serial = m.group(2)
                else:
                    model = m.group(2)
            if serial:
                out.append((model, serial, f"acquisition report '{rp}'"))
    return out


def _same_identity(a_model: str, a_serial: str, b_model: str, b_serial: str) -> bool:
    def norm(s: str) -> str:  # sysfs pads model strings with spaces
        return " ".join(s.split()).lower()

    if not a_serial or not b_serial or norm(a_serial) != norm(b_serial):
        return False
    return not a_model or not b_model or norm(a_model) == norm(b_model)


# -- the restore --------------------------------------------------------------------------------------


def _confirm_ok(destination: str, confirm: str) -> bool:
    if not confirm:
        return False
    if confirm == destination:
        return True
    return os.path.realpath(confirm) == os.path.realpath(destination)


def _open_destination(dest: str) -> tuple[int, DeviceFacts]:
    """Open the destination for writing (``O_EXCL`` for a block device: refused by the kernel if it is
    mounted or held) and gather its facts."""
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise WriteError(f"cannot access destination '{dest}': {exc.strerror}", path=dest, errno_=exc.errno) from None
    if st is not None and stat.S_ISBLK(st.st_mode):
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise WriteBlockError(
                    f"destination '{dest}' is in use (mounted, or held by dm/md/LVM or another program): refused",
                    path=dest,
                ) from None
            raise WriteError(f"cannot open '{dest}' for writing: {exc.strerror}", path=dest, errno_=exc.errno) from None
        size = _ioctl_int(fd, BLKGETSIZE64, "Q")
        if size is None:
            size = os.lseek(fd, 0, os.SEEK_END)
        dev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        ro = _ioctl_int(fd, BLKROGET)
        model, serial = device_identity(dev)
        facts = DeviceFacts(
            path=dest,
            kind="block",
            size=size,
            logical_sector_size=_ioctl_int(fd, BLKSSZGET),
            physical_sector_size=_ioctl_int(fd, BLKPBSZGET),
            read_only=None if ro is None else bool(ro),
            model=model,
            serial=serial,
            dev=dev,
        )
        return fd, facts
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise WriteError(f"destination '{dest}' is neither a block device nor a regular file", path=dest)
    parent = Path(dest).parent
    if not parent.is_dir():
        raise WriteError(f"destination folder '{parent}' does not exist", path=dest)
    try:
        fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise WriteError(f"cannot open '{dest}' for writing: {exc.strerror}", path=dest, errno_=exc.errno) from None
    return fd, DeviceFacts(path=dest, kind="file", size=os.fstat(fd).st_size, read_only=False)


def _pwritev_all(fd: int, parts: Sequence[bytes], offset: int, dest: str) -> None:
    """Write ``parts`` back to back at ``offset`` with ``pwritev`` (IOV_MAX at a time; a short write is finished)."""
    i = 0
    pos = offset
    while i < len(parts):
        batch = parts[i : i + 1024]
        want = sum(len(p) for p in batch)
        try:
            n = os.pwritev(fd, batch, pos)
        except OSError as exc:
            raise WriteError(
                f"cannot write destination '{dest}': {exc.strerror}", path=dest, offset=pos, errno_=exc.errno
            ) from None
        if n < want:
            _pwrite_all(fd, memoryview(b"".join(batch))[n:], pos + n, dest)
        pos += want
        i += len(batch)


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int, dest: str) -> None:
    view = memoryview(data)
    pos = offset
    while view:
        try:
            n = os.pwrite(fd, view, pos)
        except OSError as exc:
            raise WriteError(
                f"cannot write destination '{dest}': {exc.strerror}", path=dest, offset=pos, errno_=exc.errno
            ) from None
        if n == 0:
            raise WriteError(f"destination '{dest}' took no more bytes", path=dest, offset=pos, errno_=errno.ENOSPC)
        view = view[n:]
        pos += n


def _zero_ranges(block: bytearray, start: int, ranges: Sequence[Range]) -> None:
    end = start + len(block)
    for r in ranges:
        if r.end <= start or r.start >= end:
            continue
        lo, hi = max(r.start, start) - start, min(r.end, end) - start
        block[lo:hi] = bytes(hi - lo)


def _check_safeguards(
    image: Image,
    dest: str,
    facts: DeviceFacts,
    custody_logs: Sequence[str | os.PathLike[str]],
    checks: list[SafeguardCheck],
) -> None:
    """Run the destination safeguards, appending each outcome; raise on the first refusal."""

    def refuse(name: str, detail: str) -> None:
        checks.append(SafeguardCheck(name, "refused", detail))
        raise WriteBlockError(f"restore refused: {detail}", path=dest)

    # the image itself
    for seg in image.info.segments:
        try:
            if os.path.samefile(seg, dest):
                refuse("not_image", f"destination '{dest}' is the image file '{seg}' itself")
        except OSError:
            pass
    checks.append(SafeguardCheck("not_image", "passed", "the destination is not a file of the image"))
    size = image.size
    if facts.kind == "block":
        assert facts.dev is not None
        where = mounts_of(facts.dev)
        if where:
            refuse("mounted", f"destination '{dest}' (or a partition or holder of it) is mounted: {', '.join(where)}")
        checks.append(SafeguardCheck("mounted", "passed", "neither the device nor a partition or holder is mounted"))
        checks.append(SafeguardCheck("exclusive", "passed", "opened with O_EXCL (the kernel saw no other user)"))
        if facts.read_only is None:
            checks.append(SafeguardCheck("kernel_ro", "not_checked", "BLKROGET failed"))
        elif facts.read_only:
            refuse(
                "kernel_ro",
                f"destination '{dest}' is set read-only in the kernel (BLKROGET; e.g. evidence left read-only "
                "by acquisition); clear it with 'blockdev --setrw' only if this is not evidence",
            )
        else:
            checks.append(SafeguardCheck("kernel_ro", "passed", "kernel read-only flag is clear"))
        if facts.size < size:
            refuse("size", f"destination '{dest}' holds {facts.size} bytes, fewer than the media's {size}")
        checks.append(SafeguardCheck("size", "passed", f"destination {facts.size} bytes >= media {size} bytes"))
        if not facts.serial:
            checks.append(
                SafeguardCheck("identity", "not_checked", "the destination reports no serial number (sysfs/udev)")
            )
        else:
            for model, serial, where_rec in recorded_identities(image, custody_logs):
                if _same_identity(facts.model, facts.serial, model, serial):
                    refuse(
                        "identity",
                        f"destination '{dest}' (model '{facts.model}', serial '{facts.serial}') is the device "
                        f"this image was acquired from ({where_rec})",
                    )
            checks.append(
                SafeguardCheck(
                    "identity",
                    "passed",
                    f"model '{facts.model}' serial '{facts.serial}' is not a recorded source of this image",
                )
            )
    else:
        for name in ("mounted", "kernel_ro", "identity"):
            checks.append(SafeguardCheck(name, "not_applicable", "the destination is a regular file"))
        try:
            sv = os.statvfs(Path(dest).parent)
            free = sv.f_bavail * sv.f_frsize + facts.size
            if free < size:
                refuse("free_space", f"the file system of '{dest}' has room for {free} bytes, the media needs {size}")
            checks.append(SafeguardCheck("free_space", "passed", f"room for {free} bytes"))
        except OSError:
            checks.append(SafeguardCheck("free_space", "not_checked", "statvfs failed"))


def _drop_cache(fd: int, kind: str) -> str:
    """Flush and drop the destination's cached pages so that a read-back comes from the device."""
    method = []
    try:
        os.fsync(fd)
    except OSError as exc:
        raise WriteError(f"cannot sync the destination: {exc.strerror}", errno_=exc.errno) from None
    if kind == "block":
        try:
            fcntl.ioctl(fd, BLKFLSBUF, 0)
            method.append("BLKFLSBUF")
        except OSError:
            pass
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        method.append("fadvise(DONTNEED)")
    except OSError:
        pass
    return " + ".join(method)


class _HashPipe:
    """Hash a stream of shared, reused buffers: one thread per algorithm, in order.

    ``submit(view, release)`` hands ``view`` to every algorithm; the view must not change until
    ``release()`` is called, once every algorithm has hashed it (with no algorithm: at once). hashlib
    releases the GIL on buffers from 2 KiB, so the digests run beside the writer and the reader. Unlike
    :class:`~forensimg.hashing.MultiHasher`, nothing is copied: the restore's buffers are allocated once
    and reused (touching fresh memory is what costs most on a virtual machine).
    """

    def __init__(self, algorithms: Sequence[str], name: str) -> None:
        self.algorithms = tuple(algorithms)
        self._lock = threading.Lock()
        self._hashes = [hashlib.new(a) for a in self.algorithms]
        self._queues: list[queue.SimpleQueue[tuple[memoryview, list[Any]] | None]] = []
        self._threads: list[threading.Thread] = []
        self._result: dict[str, str] | None = None
        self.error: BaseException | None = None
        for alg, h in zip(self.algorithms, self._hashes, strict=True):
            q: queue.SimpleQueue[tuple[memoryview, list[Any]] | None] = queue.SimpleQueue()
            t = threading.Thread(target=self._run, args=(h, q), name=f"forensimg-{name}-{alg}", daemon=True)
            t.start()
            self._queues.append(q)
            self._threads.append(t)

    def _run(self, h: Any, q: queue.SimpleQueue[tuple[memoryview, list[Any]] | None]) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            view, pending = item
            try:
                h.update(view)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on a buffer
                self.error = exc
            with self._lock:
                pending[0] -= 1
                last = pending[0] == 0
            if last:
                pending[1]()

    def submit(self, view: memoryview, release: Callable[[], None]) -> None:
        """Hash ``view`` with every algorithm, then call ``release``."""
        if not self._queues:
            release()
            return
        pending: list[Any] = [len(self._queues), release]
        for q in self._queues:
            q.put((view, pending))

    def hexdigests(self) -> dict[str, str]:
        """Wait for every block submitted and return the lower-case hex digests (the same on every call)."""
        if self._result is None:
            for q in self._queues:
                q.put(None)
            for t in self._threads:
                t.join()
            if self.error is not None:
                raise self.error
            self._result = {a: h.hexdigest() for a, h in zip(self.algorithms, self._hashes, strict=True)}
        return dict(self._result)


def _buffers(count: int, size: int) -> queue.Queue[mmap.mmap]:
    """``count`` page-aligned anonymous buffers (what ``O_DIRECT`` needs), ready for reuse."""
    q: queue.Queue[mmap.mmap] = queue.Queue()
    for _ in range(count):
        q.put(mmap.mmap(-1, size))
    return q


def _set_direct(fd: int, on: bool) -> bool:
    """Set or clear ``O_DIRECT`` on an open descriptor (``fcntl(F_SETFL)``); False where it cannot be set
    (tmpfs and some FUSE file systems refuse it with ``EINVAL``)."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | os.O_DIRECT) if on else (flags & ~os.O_DIRECT))
    except OSError:
        return False
    return True


class _Writer(threading.Thread):
    """Writes the media block by block from reused, page-aligned buffers, on its own thread.

    With ``direct``, ``O_DIRECT`` is set on the destination descriptor: each write goes to the device
    from the buffer, not through the page cache (no page-cache memory to allocate and write back; a
    buffered write of 1 GiB spent 2-3.6 s of system time on this VM, an ``O_DIRECT`` one 0.1 s). A
    length that is not a multiple of the alignment (only the last write, or the one before a corrupt
    chunk) has its remainder written buffered, after ``O_DIRECT`` is cleared; the final ``fsync`` covers
    it. Where the destination refuses ``O_DIRECT`` (``F_SETFL`` or the first write fails with
    ``EINVAL``), every write is buffered.

    The main thread fills a buffer from :meth:`take` and hands it to :meth:`submit`; the thread writes
    it, calls ``on_written(end)`` and then hashes it (``algorithms``: only what has no stored hash to be
    compared with) before the buffer is reused.
    """

    def __init__(self, fd: int, dest: str, block_size: int, align: int, algorithms: Sequence[str],
                 on_written: Callable[[int], None], *, direct: bool, buffers: int | None = None) -> None:
        super().__init__(name="forensimg-restore-write", daemon=True)
        self.fd = fd
        self.dest = dest
        self.align = align
        self.free = _buffers(buffers or BUFFERS, block_size)
        self.q: queue.SimpleQueue[tuple[mmap.mmap, int, int] | None] = queue.SimpleQueue()
        self.hashes = _HashPipe(algorithms, "restore-write")
        self.on_written = on_written
        self.direct = direct and _set_direct(fd, True)
        self.direct_bytes = 0
        self.written = 0
        self.error: BaseException | None = None

    def take(self) -> mmap.mmap:
        """A free buffer (waits for one); raises the writer's error if it failed."""
        buf = self.free.get()
        if self.error is not None:
            self.free.put(buf)
            raise self.error
        return buf

    def submit(self, buf: mmap.mmap, offset: int, length: int) -> None:
        """Write ``buf[:length]`` at ``offset`` (in order after the previous one)."""
        self.q.put((buf, offset, length))

    def finish(self) -> None:
        """Wait until everything submitted is written and hashed; clear ``O_DIRECT``; raise a write error."""
        self.q.put(None)
        self.join()
        self.hashes.hexdigests()
        if self.direct:
            _set_direct(self.fd, False)
            self.direct = False
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            buf, offset, length = item
            if self.error is not None:
                self.free.put(buf)
                continue
            view = memoryview(buf)[:length]
            try:
                self._write(view, offset)
            except BaseException as exc:
                self.error = exc
                self.free.put(buf)
                continue
            self.written = offset + length
            self.on_written(self.written)
            self.hashes.submit(view, functools.partial(self.free.put, buf))

    def _buffered(self) -> None:
        if self.direct:
            _set_direct(self.fd, False)
            self.direct = False

    def _write(self, view: memoryview, offset: int) -> None:
        n = len(view)
        done = 0
        if self.direct:
            aligned = n // self.align * self.align
            while done < aligned:
                try:
                    k = os.pwritev(self.fd, [view[done:aligned]], offset + done)
                except OSError as exc:
                    if exc.errno == errno.EINVAL:
                        break  # O_DIRECT accepted by fcntl but this write refused (alignment): buffered from here
                    raise WriteError(f"cannot write destination '{self.dest}': {exc.strerror}", path=self.dest,
                                     offset=offset + done, errno_=exc.errno) from None
                if k <= 0:
                    raise WriteError(f"destination '{self.dest}' took no more bytes", path=self.dest,
                                     offset=offset + done, errno_=errno.ENOSPC)
                done += k
                self.direct_bytes += k
                if k % self.align:
                    break  # a short, unaligned write: the rest goes buffered
            if done < n:
                self._buffered()
        if done < n:
            _pwrite_all(self.fd, view[done:], offset + done, self.dest)


class _Verifier(threading.Thread):
    """Reads back what was written, from the device, and hashes it.

    :meth:`advance` tells it that ``[0, end)`` is written; once ``window`` bytes are pending (or at the
    end) it reads that range with ``O_DIRECT`` into reused page-aligned buffers: the kernel first writes
    back and waits for any dirty page of the range (the buffered remainder of the last write), then reads
    the device, not the page cache. Reading runs on this thread, hashing on one thread per algorithm
    (:class:`_HashPipe`), so reads and digests overlap each other and the writer. Where the file system
    refuses ``O_DIRECT`` (tmpfs, some FUSE), the range is synced (``fdatasync``), dropped from the cache
    (``posix_fadvise(DONTNEED)``) and read buffered. :meth:`finish` lets the thread end after the last
    range.
    """

    def __init__(self, dest: str, wfd: int, facts: DeviceFacts, size: int, algorithms: Sequence[str],
                 block_size: int, window: int, *, buffers: int | None = None) -> None:
        super().__init__(name="forensimg-restore-verify", daemon=True)
        self.dest = dest
        self.wfd = wfd
        self.size = size
        self.align = max(4096, facts.logical_sector_size or 512)
        self.block_size = max(self.align, block_size // self.align * self.align)
        self.window = window
        self.hashes = _HashPipe(algorithms, "restore-verify")
        self.free = _buffers(buffers or BUFFERS, self.block_size)
        self.q: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.pos = 0
        self.error: BaseException | None = None
        self.cancelled = False
        self.direct = True
        self._queued = 0
        self.fd = -1
        try:
            self.fd = os.open(dest, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECT)
        except OSError:
            self.direct = False
            self.fd = os.open(dest, os.O_RDONLY | os.O_CLOEXEC)

    def advance(self, written: int, *, final: bool = False) -> None:
        """``[0, written)`` is written; read it back once a window is pending (or at the end)."""
        if final or written - self._queued >= self.window:
            self._queued = written
            self.q.put(written)

    def finish(self) -> None:
        """No more data: let the thread end."""
        self.q.put(None)

    def run(self) -> None:
        try:
            while True:
                end = self.q.get()
                if end is None:
                    return
                if self.error is not None or self.cancelled:
                    continue
                self._verify_to(min(end, self.size))
        except BaseException as exc:
            self.error = exc
            while self.q.get() is not None:
                pass

    def _verify_to(self, end: int) -> None:
        if self.pos >= end:
            return
        if not self.direct:
            # a buffered read-back needs the range written back and dropped from the cache first
            try:
                os.fdatasync(self.wfd)
            except OSError as exc:
                raise WriteError(f"cannot sync destination '{self.dest}': {exc.strerror}", path=self.dest,
                                 offset=self.pos, errno_=exc.errno) from None
            try:
                os.posix_fadvise(self.fd, self.pos, end - self.pos, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
        while self.pos < end and not self.cancelled:
            want = min(self.block_size, end - self.pos)
            length = -(-want // self.align) * self.align if self.direct else want
            buf = self.free.get()
            try:
                n = os.preadv(self.fd, [memoryview(buf)[:length]], self.pos)
            except OSError as exc:
                self.free.put(buf)
                if self.direct and exc.errno == errno.EINVAL and self.pos == 0:
                    # O_DIRECT opened but reads refused (tmpfs, some FUSE): read the synced, dropped range
                    os.close(self.fd)
                    self.fd = os.open(self.dest, os.O_RDONLY | os.O_CLOEXEC)
                    self.direct = False
                    os.fdatasync(self.wfd)
                    os.posix_fadvise(self.fd, 0, end, os.POSIX_FADV_DONTNEED)
                    continue
                raise WriteError(f"cannot read back destination '{self.dest}': {exc.strerror}", path=self.dest,
                                 offset=self.pos, errno_=exc.errno) from None
            got = min(n, want)
            if got <= 0:
                self.free.put(buf)
                raise WriteError(f"destination '{self.dest}' ends at {self.pos} on read-back, before the media "
                                 f"end {self.size}", path=self.dest, offset=self.pos)
            self.hashes.submit(memoryview(buf)[:got], functools.partial(self.free.put, buf))
            self.pos += got

    def close(self) -> None:
        """Release the read fd and the hash threads."""
        self.cancelled = True
        try:
            self.hashes.hexdigests()
        except BaseException:  # an error here was already raised to the caller, or is moot
            pass
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _media_digests(img: Image, algorithms: Sequence[str], unreadable: Sequence[Range], workers: int) -> dict[str, str]:
    """Hashes of exactly what a restore of ``img`` writes (chunks as decoded, zeros for a chunk failing its
    check, unreadable ranges zeroed), from the image again: the diagnosis of a mismatch when the write
    phase computed no hash (the stored one was the reference)."""
    hasher = MultiHasher(algorithms)
    pos = 0
    for _index, data, _fault in img.scan_chunks(workers=workers):
        if unreadable and any(r.start < pos + len(data) and r.end > pos for r in unreadable):
            ba = bytearray(data)
            _zero_ranges(ba, pos, unreadable)
            data = bytes(ba)
        hasher.update(data)
        pos += len(data)
    return hasher.hexdigests()


def restore(
    image: Image | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    destination: str | os.PathLike[str],
    *,
    confirm: str,
    wipe_tail: bool = False,
    zero_fill: bool = False,
    on_progress: RestoreProgress | None = None,
    block_size: int = 4 << 20,
    hashes: Sequence[str] | str | None = None,
    custody_logs: Sequence[str | os.PathLike[str]] = (),
    workers: int | None = None,
) -> RestoreResult:
    """Write the media of ``image`` onto ``destination`` sector for sector, then read it back and verify.

    Args:
        image: an open :class:`~forensimg.image.Image`, or the path(s) of one (any format).
        destination: a block device or a regular file (created if missing; written in place otherwise).
        confirm: the destination named again (the same path, or one resolving to it).
        wipe_tail: zero the destination beyond the media; otherwise the tail is left and reported.
        zero_fill: write zeros for chunks that fail their check (and list them) instead of stopping.
        on_progress: ``on_progress(phase, done, total)`` with phase ``write``, ``wipe`` or ``verify``.
        block_size: bytes per write and per read-back read.
        hashes: algorithms to compute; default: those stored in the image (MD5+SHA-1 when none are).
        custody_logs: custody logs whose acquire events name source devices (default: the image's log).
        workers: threads decoding and checking chunks (default 1: the decoder runs beside the hash and
            read-back threads; more only pays off with more cores than digests).

    Returns:
        A :class:`RestoreResult`; its :attr:`~RestoreResult.status` says whether the read-back matches.

    Raises:
        WriteBlockError: a safeguard refused the destination (nothing was written).
        RestoreStoppedError: a chunk failed its check; everything before it was written, it was not.
        WriteError: the destination could not be written or read back.
    """
    dest = os.fspath(destination)
    checks: list[SafeguardCheck] = []
    if not _confirm_ok(dest, confirm):
        checks.append(SafeguardCheck("confirm", "refused", f"the confirmation {confirm!r} does not name '{dest}'"))
        raise WriteBlockError(
            f"restore refused: confirm the destination by naming it again (--confirm {dest})", path=dest
        )
    checks.append(SafeguardCheck("confirm", "passed", "the destination was named again"))
    if block_size <= 0:
        raise UsageError("block size must be positive")

    own = not isinstance(image, Image)
    if isinstance(image, Image):
        img = image
    else:
        from forensimg.registry import open as open_image

        src: str | os.PathLike[str] | list[str | os.PathLike[str]]
        src = image if isinstance(image, str | os.PathLike) else list(image)
        img = open_image(src)
    try:
        return _restore(img, dest, checks, wipe_tail, zero_fill, on_progress, block_size, hashes, custody_logs,
                        workers)
    finally:
        if own:
            img.close()


def _restore(
    img: Image,
    dest: str,
    checks: list[SafeguardCheck],
    wipe_tail: bool,
    zero_fill: bool,
    on_progress: RestoreProgress | None,
    block_size: int,
    hashes: Sequence[str] | str | None,
    custody_logs: Sequence[str | os.PathLike[str]],
    workers: int | None,
) -> RestoreResult:
    started = datetime.now(UTC)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    info = img.info
    size = img.size
    stored = {k.lower(): v.lower() for k, v in info.stored_hashes.items()}
    if hashes is None:
        algs = normalize_algorithms(list(stored)) if stored else DEFAULT_HASHES
    else:
        algs = normalize_algorithms(hashes)
        algs = algs + tuple(a for a in normalize_algorithms(list(stored)) if a not in algs)
    # What the read-back is compared with: the stored hash where the image has one (hashing while writing
    # would only compute it a second time: every chunk is checked before it is written), otherwise the
    # hash of what was written, computed while writing.
    write_algs = tuple(a for a in algs if a not in stored)
    unreadable = merge_ranges(list(info.unreadable))
    progress = on_progress or (lambda phase, done, total: None)
    nworkers = workers if workers is not None else 1

    # a mounted device is refused before it is even opened (O_EXCL would only say "busy")
    pre_dev = _dev_of_path(dest)
    if pre_dev is not None:
        where = mounts_of(pre_dev)
        if where:
            checks.append(SafeguardCheck("mounted", "refused", f"mounted: {', '.join(where)}"))
            raise WriteBlockError(
                f"restore refused: destination '{dest}' (or a partition or holder of it) is mounted: "
                f"{', '.join(where)}",
                path=dest,
            )
    existed = os.path.lexists(dest)
    fd, facts = _open_destination(dest)
    try:
        try:
            _check_safeguards(img, dest, facts, custody_logs, checks)
        except WriteBlockError:
            if not existed and facts.kind == "file":
                os.unlink(dest)  # refused: leave no empty file behind
            raise
        warnings: list[str] = []
        lss = facts.logical_sector_size
        if lss and lss != info.sector_size:
            warnings.append(
                f"the image has {info.sector_size}-byte sectors, the destination {lss}-byte sectors: LBA-based "
                "structures (partition tables, file systems) may not line up"
            )
        if lss and size % lss:
            warnings.append(
                f"the media ({size} bytes) ends inside a {lss}-byte destination sector: the rest of that sector "
                f"({lss - size % lss} bytes) is part of the tail"
            )
        if info.sector_size and size % info.sector_size:
            warnings.append(f"the media size {size} is not a multiple of the image's sector size {info.sector_size}")

        def make_result(status: str, written: int, written_hashes: Mapping[str, str], readback: Mapping[str, str],
                        faults: Sequence[Fault], tail: Range | None, wiped: bool, method: str,
                        written_from: Mapping[str, str] | None = None) -> RestoreResult:
            return RestoreResult(
                image=tuple(str(p) for p in info.segments),
                image_format=info.format,
                destination=facts,
                media_size=size,
                sector_size=info.sector_size,
                bytes_written=written,
                written_hashes=dict(written_hashes),
                readback_hashes=dict(readback),
                stored_hashes=stored,
                status=status,
                unreadable=unreadable,
                faults=tuple(faults),
                tail=tail,
                tail_wiped=wiped,
                readback_method=method,
                safeguards=tuple(checks),
                warnings=tuple(warnings),
                started_at=started,
                finished_at=datetime.now(UTC),
                timings=dict(timings),
                written_from=dict(written_from or {}),
            )

        # -- write, each chunk checked before it goes out, while a thread reads back behind -------------
        align = max(4096, lss or 512)
        bs = max(align, block_size // align * align)
        overlap = VERIFY_WINDOW is not None
        window = max(bs, VERIFY_WINDOW or 0) if overlap else 1 << 62
        verifier = _Verifier(dest, fd, facts, size, algs, bs, window=window)
        writer = _Writer(fd, dest, bs, align, write_algs, verifier.advance if overlap else lambda end: None,
                         direct=DIRECT_WRITE)
        wrote_direct = writer.direct
        verifier.start()
        writer.start()
        faults: list[Fault] = []
        cur: mmap.mmap | None = None
        fill = 0
        submitted = 0

        def flush() -> None:
            nonlocal cur, fill, submitted
            if cur is None or fill == 0:
                return
            if unreadable and any(r.start < submitted + fill and r.end > submitted for r in unreadable):
                for r in unreadable:
                    lo, hi = max(r.start, submitted) - submitted, min(r.end, submitted + fill) - submitted
                    if lo < hi:
                        cur[lo:hi] = bytes(hi - lo)
            writer.submit(cur, submitted, fill)
            submitted += fill
            cur, fill = None, 0
            if verifier.error is not None:  # the read-back failed (EIO ...): stop writing now
                raise verifier.error
            progress("write", submitted, size)

        def put(data: bytes) -> None:
            nonlocal cur, fill
            view = memoryview(data)
            i, n = 0, len(view)
            while i < n:
                if cur is None:
                    cur, fill = writer.take(), 0
                k = min(bs - fill, n - i)
                cur[fill : fill + k] = view[i : i + k]
                fill += k
                i += k
                if fill == bs:
                    flush()

        written = 0
        try:
            try:
                for index, data, fault in img.scan_chunks(workers=nworkers):
                    if fault is not None:
                        if not zero_fill:
                            flush()
                            verifier.cancelled = True
                            writer.finish()
                            written = submitted
                            try:
                                os.fsync(fd)  # what was written before the bad chunk is on the device
                            except OSError:
                                pass
                            faults.append(fault)
                            result = make_result("stopped", written, {}, {}, faults, None, False, "")
                            media = fault.media or img.chunk_range(index)
                            raise RestoreStoppedError(
                                f"chunk {index} (media bytes {media.start}..{media.end - 1}) fails its check: "
                                f"restore stopped before writing it; {written} bytes were written to '{dest}' "
                                f"(use --zero-fill to write zeros instead): {fault.detail}",
                                result=result,
                                path=fault.segment,
                                offset=fault.offset,
                            )
                        faults.append(fault)
                    put(data)
                flush()
            finally:
                if writer.is_alive():
                    writer.finish()
            written = submitted
            written_hashes = writer.hashes.hexdigests()

            # -- the tail --------------------------------------------------------------------------------
            tail: Range | None = None
            if facts.size > size:
                tail = Range(size, facts.size)
                if wipe_tail:
                    zeros = bytes(min(bs, tail.length))
                    pos = tail.start
                    while pos < tail.end:
                        n = min(len(zeros), tail.end - pos)
                        _pwrite_all(fd, memoryview(zeros)[:n], pos, dest)
                        pos += n
                        progress("wipe", pos - tail.start, tail.length)
            timings["written"] = time.monotonic() - t0
            method = _drop_cache(fd, facts.kind)
            timings["synced"] = time.monotonic() - t0
            verifier.advance(written, final=True)
        finally:
            verifier.finish()
            while verifier.is_alive():
                verifier.join(timeout=0.25)
                if not verifier.cancelled:
                    progress("verify", verifier.pos, size)
            verifier.close()
    finally:
        os.close(fd)
    if verifier.error is not None:
        raise verifier.error
    readback = verifier.hashes.hexdigests()
    timings["verified"] = time.monotonic() - t0
    if "synced" in timings:
        timings["readback_s"] = timings["verified"] - timings["synced"]
    how = "O_DIRECT" if verifier.direct else "buffered after fdatasync + fadvise(DONTNEED)"
    when = "behind the writer" if overlap else "after the final fsync"
    wrote = "O_DIRECT writes" if wrote_direct and writer.direct_bytes else "buffered writes"
    method = f"{how} read-back {when} ({wrote}; final fsync + {method})" if method else \
        f"{how} read-back {when} ({wrote}; final fsync)"
    written_from = {a: "write" for a in written_hashes}
    ok_written = all(readback.get(a) == h for a, h in written_hashes.items())
    ok_stored = all(readback.get(a) == h for a, h in stored.items())
    if not stored:
        status = "no_reference" if ok_written else "mismatch"
    else:
        status = "verified" if ok_written and ok_stored else "mismatch"
    missing = [a for a in algs if a not in written_hashes]
    if status == "mismatch" and missing:
        # The read-back differs from a stored hash that the write phase did not compute: hash the media
        # again from the image, so that the report tells an image that disagrees with its own stored hash
        # (or zeros written by --zero-fill) from a destination that returned other bytes than were written.
        try:
            again = _media_digests(img, missing, unreadable, nworkers)
        except Error as exc:
            warnings.append(f"the media could not be hashed again from the image to locate the mismatch: {exc}")
        else:
            written_hashes = {**written_hashes, **again}
            written_from.update({a: "image" for a in again})
    written_hashes = {a: written_hashes[a] for a in algs if a in written_hashes}
    return make_result(status, written, written_hashes, readback, faults, tail, wipe_tail and tail is not None,
                       method, written_from)
