"""The Sleuth Kit (pytsk3) bridge: partitions and file systems inside any forensimg image.

Sleuth Kit reads the media through :class:`ImageAdapter`, an ``Img_Info`` whose ``read`` is
:meth:`forensimg.image.Image.read_at`, so every format (raw, split raw, E01, fimg) is browsable and reads
stay fail-closed: a corrupt chunk under a file raises :class:`~forensimg.errors.ChecksumError` from
:meth:`FileSystem.read` instead of Sleuth Kit's silent zeros.

* :func:`partitions` lists the volume system like ``mmls`` (allocated, unallocated and meta slots).
* :func:`open_filesystem` opens a file system by partition index (1-based, allocated partitions only, the
  ``N`` of ``pN``) or byte offset, and returns a :class:`FileSystem` with ``ls`` (like ``fls``), ``stat``,
  ``read``/``open`` (like ``icat``), ``walk`` and ``extract``.

pytsk3 is an optional dependency (the ``tsk`` extra); without it these functions raise
:class:`~forensimg.errors.UnsupportedFormatError` with an install hint.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from forensimg.errors import ChecksumError, Error, FormatError, UnsupportedFormatError, UsageError, WriteError
from forensimg.records import atomic_write, fsync_dir

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from forensimg.image import Image

__all__ = [
    "Entry",
    "ExtractResult",
    "ExtractedFile",
    "FileSystem",
    "Partition",
    "TskFile",
    "VolumeSystem",
    "open_filesystem",
    "partitions",
    "volume_system",
]

log = logging.getLogger(__name__)

INSTALL_HINT = "pytsk3 is not installed: install it with `pip install 'forensimg[tsk]'` (or `pip install pytsk3`)"

_READ_BLOCK = 1 << 20

# Sleuth Kit's one-letter type codes as fls prints them (tsk_fs_name_type_str / tsk_fs_meta_type_str),
# indexed by TSK_FS_NAME_TYPE_ENUM / TSK_FS_META_TYPE_ENUM values.
_NAME_TYPE = {0: "-", 1: "p", 2: "c", 3: "d", 4: "b", 5: "r", 6: "l", 7: "s", 8: "h", 9: "w", 10: "v", 11: "V"}
_META_TYPE = {0: "-", 1: "r", 2: "d", 3: "p", 4: "c", 5: "b", 6: "l", 7: "h", 8: "s", 9: "w", 10: "v", 11: "V"}

# mmls's headline for each volume system (TSK_VS_TYPE_ENUM values).
_VS_DESC = {
    1: ("dos", "DOS Partition Table"),
    2: ("bsd", "BSD Disk Label"),
    4: ("sun", "Sun Volume Table of Contents (Solaris)"),
    8: ("mac", "MAC Partition Map"),
    16: ("gpt", "GUID Partition Table (EFI)"),
    32: ("apfs", "APFS"),
}

_FS_NAMES = {
    1: "ntfs", 2: "fat12", 4: "fat16", 8: "fat32", 10: "exfat", 16: "ffs1", 32: "ffs1b", 64: "ffs2",
    128: "ext2", 256: "ext3", 8192: "ext4", 512: "swap", 1024: "raw", 2048: "iso9660", 4096: "hfs",
    16384: "yaffs2", 65536: "apfs",
}  # fmt: skip


def _tsk() -> Any:
    try:
        import pytsk3
    except ImportError:
        raise UnsupportedFormatError(INSTALL_HINT) from None
    return pytsk3


def _seg(image: Image) -> str | None:
    segs = image.info.segments
    return os.fspath(segs[0]) if segs else None


# -- the pytsk3 image adapter ---------------------------------------------------------------------


def _adapter_class() -> type:
    pytsk3 = _tsk()

    class ImageAdapter(pytsk3.Img_Info):  # type: ignore[misc, name-defined]
        """A pytsk3 ``Img_Info`` whose reads are ``Image.read_at`` (any forensimg format).

        Sleuth Kit turns an exception raised in ``read`` into a generic error; the adapter keeps the
        original (per thread) so callers can re-raise the real :class:`ChecksumError`.
        """

        def __init__(self, image: Image) -> None:
            self._image = image
            self._errors = threading.local()
            super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

        def read(self, offset: int, size: int) -> bytes:
            # Sleuth Kit reads ahead in 64 KiB blocks and probes every file system type; a corrupt chunk
            # inside such a block must not fail reads of the good bytes before it. So a read that runs
            # into a bad chunk returns the bytes before it (a short read, which Sleuth Kit handles) and
            # remembers the error; a read starting inside the bad chunk fails. Either way, the caller
            # re-raises the remembered ChecksumError if Sleuth Kit ends up failing.
            try:
                return self._image.read_at(offset, size)
            except ChecksumError as exc:
                self._errors.last = exc
                if exc.media_start is not None and exc.media_start > offset:
                    try:
                        return self._image.read_at(offset, exc.media_start - offset)
                    except Exception:
                        pass
                raise
            except Exception as exc:
                self._errors.last = exc
                raise

        def get_size(self) -> int:
            return self._image.size

        def close(self) -> None:
            """The image belongs to the caller: nothing to close here."""

        def pop_error(self) -> BaseException | None:
            exc: BaseException | None = getattr(self._errors, "last", None)
            self._errors.last = None
            return exc

    return ImageAdapter


_ADAPTER: type | None = None


def ImageAdapter(image: Image) -> Any:
    """Wrap ``image`` as a pytsk3 ``Img_Info`` (the class is built on first use so pytsk3 stays optional)."""
    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = _adapter_class()
    return _ADAPTER(image)


def _reraise(adapter: Any, exc: BaseException, what: str, image: Image, offset: int | None = None) -> NoReturn:
    """Raise the image error that made Sleuth Kit fail, or a FormatError naming ``what``."""
    inner = adapter.pop_error() if adapter is not None else None
    if isinstance(inner, Error):
        raise inner from None
    if isinstance(inner, OSError | ValueError):
        raise FormatError(f"{what}: {inner}", path=_seg(image), offset=offset) from None
    raise FormatError(f"{what}: {_first_line(exc)}", path=_seg(image), offset=offset) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- partitions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Partition:
    """One row of the volume system, as ``mmls`` shows it.

    Attributes:
        addr: row number in ``mmls`` output (``000:``, ``001:``, ...).
        index: 1-based number among allocated partitions (the ``N`` of ``--partition N`` and of
            ``pN`` in a mount); ``None`` for unallocated and meta rows.
        slot: ``mmls``'s slot column: ``000:001`` (table:slot) for a partition, ``Meta``, or ``-------``.
        kind: ``allocated``, ``unallocated`` or ``meta``.
        start: first sector.
        length: number of sectors.
        sector_size: bytes per sector (the volume system's unit).
        description: ``mmls``'s description (``DOS FAT16 (0x06)``, ``Linux (0x83)``, ``Unallocated``...).
        table_type: ``dos`` (MBR), ``gpt``, ``bsd``, ``sun``, ``mac``.
        fs_type: the file system Sleuth Kit finds there (``fat16``, ``ext4``, ...), for allocated rows.
    """

    addr: int
    index: int | None
    slot: str
    kind: str
    start: int
    length: int
    sector_size: int
    description: str
    table_type: str
    fs_type: str | None = None

    @property
    def end(self) -> int:
        """Last sector (inclusive), as ``mmls`` prints it."""
        return self.start + self.length - 1

    @property
    def offset(self) -> int:
        """Byte offset of the first sector."""
        return self.start * self.sector_size

    @property
    def size(self) -> int:
        """Size in bytes."""
        return self.length * self.sector_size

    @property
    def allocated(self) -> bool:
        """Whether this row is a partition (not free space or a table)."""
        return self.kind == "allocated"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "addr": self.addr,
            "index": self.index,
            "slot": self.slot,
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "length": self.length,
            "offset": self.offset,
            "size": self.size,
            "sector_size": self.sector_size,
            "description": self.description,
            "table_type": self.table_type,
            "fs_type": self.fs_type,
        }


@dataclass(frozen=True, slots=True)
class VolumeSystem:
    """The partition table of an image (``None`` from :func:`volume_system` when there is none).

    Attributes:
        type: ``dos``, ``gpt``, ...
        description: ``DOS Partition Table``, ``GUID Partition Table (EFI)``, ...
        offset: byte offset of the table.
        sector_size: its unit in bytes.
        partitions: every row, as ``mmls`` lists them.
    """

    type: str
    description: str
    offset: int
    sector_size: int
    partitions: tuple[Partition, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "type": self.type,
            "description": self.description,
            "offset": self.offset,
            "sector_size": self.sector_size,
            "partitions": [p.to_dict() for p in self.partitions],
        }


def _fs_name(ftype: Any) -> str:
    v = int(str(ftype)) if not isinstance(ftype, int) else ftype
    return _FS_NAMES.get(v, f"fs-{v}")


def _detect_fs(adapter: Any, offset: int) -> str | None:
    pytsk3 = _tsk()
    try:
        fs = pytsk3.FS_Info(adapter, offset=offset)
    except Exception:
        adapter.pop_error()
        return None
    return _fs_name(fs.info.ftype)


def volume_system(image: Image, *, detect_fs: bool = True) -> VolumeSystem | None:
    """Read the partition table of ``image`` (MBR, GPT, BSD, Sun, Mac) with Sleuth Kit.

    Args:
        image: an open image.
        detect_fs: also look for a file system in each allocated partition (fills ``fs_type``).

    Returns:
        The volume system, or ``None`` when the media has no partition table (a floppy, a partition image).

    Raises:
        UnsupportedFormatError: pytsk3 is not installed.
        ChecksumError: a chunk holding the table is corrupt (unless the image zero-fills).
    """
    pytsk3 = _tsk()
    adapter = ImageAdapter(image)
    try:
        vs = pytsk3.Volume_Info(adapter)
    except Exception:
        inner = adapter.pop_error()
        if isinstance(inner, Error):
            raise inner from None
        return None
    vtype = int(str(vs.info.vstype))
    short, desc = _VS_DESC.get(vtype, (f"vs-{vtype}", f"volume system {vtype}"))
    unit = int(vs.info.block_size)
    rows: list[Partition] = []
    number = 0
    for part in vs:
        flags = int(str(part.flags))
        if flags & 1:  # TSK_VS_PART_FLAG_ALLOC
            number += 1
            table, slot_num = int(part.table_num), int(part.slot_num)
            # mmls prints table:slot, or the slot alone when the table number is -1 (GPT)
            slot = f"{table:03d}:{slot_num:03d}" if table >= 0 else f"{slot_num:03d}"
            kind, index = "allocated", number
        elif flags & 4:  # TSK_VS_PART_FLAG_META
            kind, index, slot = "meta", None, "Meta"
        else:
            kind, index, slot = "unallocated", None, "-------"
        raw_desc = part.desc
        text = raw_desc.decode("utf-8", "replace") if isinstance(raw_desc, bytes) else str(raw_desc)
        start, length = int(part.start), int(part.len)
        fs_type = _detect_fs(adapter, int(vs.info.offset) + start * unit) if (detect_fs and index) else None
        rows.append(
            Partition(
                addr=int(part.addr),
                index=index,
                slot=slot,
                kind=kind,
                start=start,
                length=length,
                sector_size=unit,
                description=text,
                table_type=short,
                fs_type=fs_type,
            )
        )
    return VolumeSystem(
        type=short, description=desc, offset=int(vs.info.offset), sector_size=unit, partitions=tuple(rows)
    )


def partitions(image: Image, *, detect_fs: bool = True) -> list[Partition]:
    """Every row of the image's partition table, in ``mmls`` order; ``[]`` without a table.

    Use ``[p for p in partitions(img) if p.allocated]`` for the partitions alone.
    """
    vs = volume_system(image, detect_fs=detect_fs)
    return list(vs.partitions) if vs else []


# -- file systems ---------------------------------------------------------------------------------


def _ts(seconds: Any, nano: Any = 0) -> datetime | None:
    try:
        s = int(seconds)
    except (TypeError, ValueError):
        return None
    if s <= 0:
        return None
    try:
        return datetime.fromtimestamp(s, UTC).replace(microsecond=int(nano or 0) // 1000)
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry, as ``fls -l -p`` shows it.

    Attributes:
        inode: metadata address (``fls``'s inode column).
        name: the name as stored (deleted FAT names keep Sleuth Kit's ``_`` first letter).
        path: full path from the root, ``/``-separated.
        type: ``fls``'s ``name/meta`` type code: ``r/r`` file, ``d/d`` folder, ``v/v`` virtual, ``l/l`` link.
        size: size in bytes (from the metadata).
        deleted: the name is unallocated (``fls`` marks it ``*``).
        reallocated: the name is deleted but its metadata belongs to another file now (``(realloc)``).
        mtime, atime, ctime, crtime: times in UTC (``None`` when unset).
    """

    inode: int
    name: str
    path: str
    type: str
    size: int
    deleted: bool
    reallocated: bool = False
    mtime: datetime | None = None
    atime: datetime | None = None
    ctime: datetime | None = None
    crtime: datetime | None = None

    @property
    def is_dir(self) -> bool:
        """A folder (including Sleuth Kit's virtual ``$OrphanFiles``)."""
        return self.type[-1] in ("d", "V") or self.type[0] in ("d", "V")

    @property
    def is_file(self) -> bool:
        """A regular file."""
        return self.type[-1] == "r" or self.type == "r/-"

    @property
    def is_virtual(self) -> bool:
        """One of Sleuth Kit's virtual entries (``$MBR``, ``$FAT1``, ``$OrphanFiles``)."""
        return self.type[0] in ("v", "V")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (times as ISO 8601 UTC)."""
        return {
            "inode": self.inode,
            "name": self.name,
            "path": self.path,
            "type": self.type,
            "size": self.size,
            "deleted": self.deleted,
            "reallocated": self.reallocated,
            "mtime": self.mtime.isoformat() if self.mtime else None,
            "atime": self.atime.isoformat() if self.atime else None,
            "ctime": self.ctime.isoformat() if self.ctime else None,
            "crtime": self.crtime.isoformat() if self.crtime else None,
        }


@dataclass(frozen=True, slots=True)
class ExtractedFile:
    """One file written by :meth:`FileSystem.extract`."""

    source: str
    dest: str
    inode: int
    size: int
    sha256: str
    deleted: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "source": self.source,
            "dest": self.dest,
            "inode": self.inode,
            "size": self.size,
            "sha256": self.sha256,
            "deleted": self.deleted,
        }


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """What :meth:`FileSystem.extract` wrote.

    Attributes:
        target: the file or folder created.
        manifest: the SHA-256 manifest (``sha256sum -c`` format, paths relative to its folder).
        files: every file written.
        folders: number of folders created.
        skipped: entries not extracted (links, devices, virtual entries), as ``(path, reason)``.
    """

    target: Path
    manifest: Path
    files: tuple[ExtractedFile, ...]
    folders: int
    skipped: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "target": str(self.target),
            "manifest": str(self.manifest),
            "files": [f.to_dict() for f in self.files],
            "folders": self.folders,
            "bytes": sum(f.size for f in self.files),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def _safe_name(name: str) -> str:
    """A name that stays one path component: no separators, NUL, ``.`` or ``..`` (path traversal)."""
    clean = name.replace("/", "_").replace("\\", "_").replace("\x00", "_")
    if clean in ("", ".", ".."):
        clean = clean.replace(".", "_") or "_"
    return clean


class TskFile(io.RawIOBase):
    """A read-only, seekable file inside a file system (returned by :meth:`FileSystem.open`)."""

    def __init__(self, fs: FileSystem, tsk_file: Any, entry: Entry) -> None:
        super().__init__()
        self._fs = fs
        self._file = tsk_file
        self.entry = entry
        self._pos = 0
        self._size = entry.size

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """Always true."""
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position; returns the new position."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence ({whence})")
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        """Current position."""
        return self._pos

    def readinto(self, b: WriteableBuffer) -> int:
        """Read at the current position; fails closed on a corrupt chunk (ChecksumError)."""
        mv = memoryview(b).cast("B")
        n = min(len(mv), max(0, self._size - self._pos))
        if n <= 0:
            return 0
        data = self._fs._read_random(self._file, self._pos, n, self.entry.path)
        mv[: len(data)] = data
        self._pos += len(data)
        return len(data)


class FileSystem:
    """A file system inside an image, read through Sleuth Kit.

    Attributes:
        image: the image it lives in.
        offset: byte offset of the file system in the media.
        type: ``fat12``, ``fat16``, ``fat32``, ``ntfs``, ``ext4``, ...
        block_size: the file system's block (cluster) size.
        partition: the partition it was opened from, if any.
    """

    def __init__(self, image: Image, offset: int = 0, partition: Partition | None = None) -> None:
        pytsk3 = _tsk()
        self.image = image
        self.offset = offset
        self.partition = partition
        self._adapter = ImageAdapter(image)
        self._lock = threading.RLock()
        try:
            self._fs = pytsk3.FS_Info(self._adapter, offset=offset)
        except Exception as exc:
            inner = self._adapter.pop_error()
            if isinstance(inner, Error):
                raise inner from None
            where = f"partition {partition.index} " if partition else ""
            raise FormatError(
                f"no file system found in {where}at media offset {offset} (0x{offset:x}): {_first_line(exc)}",
                path=_seg(image),
            ) from None
        self.type = _fs_name(self._fs.info.ftype)
        self.block_size = int(self._fs.info.block_size)
        self._root = int(self._fs.info.root_inum)

    def __repr__(self) -> str:
        return f"<FileSystem {self.type} at offset {self.offset} of {self.image!r}>"

    def __enter__(self) -> FileSystem:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Forget the Sleuth Kit handles (the image stays open: it belongs to the caller)."""
        self._fs = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form of where the file system is."""
        return {
            "type": self.type,
            "offset": self.offset,
            "block_size": self.block_size,
            "partition": self.partition.to_dict() if self.partition else None,
        }

    # -- internals --------------------------------------------------------------------------------

    def _fail(self, exc: BaseException, what: str) -> NoReturn:
        _reraise(self._adapter, exc, what, self.image)

    def _entry(self, f: Any, parent: str) -> Entry | None:
        info = f.info
        nm = info.name
        raw = nm.name
        name = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else str(raw)
        if name in (".", ".."):
            return None
        meta = info.meta
        ntype = _NAME_TYPE.get(int(str(nm.type)), "-")
        mtype = _META_TYPE.get(int(str(meta.type)), "-") if meta is not None else "-"
        name_unalloc = bool(int(str(nm.flags)) & 2)  # TSK_FS_NAME_FLAG_UNALLOC
        meta_alloc = meta is not None and bool(int(str(meta.flags)) & 1)  # TSK_FS_META_FLAG_ALLOC
        inode = int(meta.addr) if meta is not None else int(nm.meta_addr)
        return Entry(
            inode=inode,
            name=name,
            path=(parent.rstrip("/") + "/" + name),
            type=f"{ntype}/{mtype}",
            size=int(meta.size) if meta is not None else 0,
            deleted=name_unalloc,
            reallocated=name_unalloc and meta_alloc,
            mtime=_ts(meta.mtime, getattr(meta, "mtime_nano", 0)) if meta is not None else None,
            atime=_ts(meta.atime, getattr(meta, "atime_nano", 0)) if meta is not None else None,
            ctime=_ts(meta.ctime, getattr(meta, "ctime_nano", 0)) if meta is not None else None,
            crtime=_ts(meta.crtime, getattr(meta, "crtime_nano", 0)) if meta is not None else None,
        )

    def _list_inode(self, inode: int, path: str) -> list[Entry]:
        with self._lock:
            self._adapter.pop_error()
            try:
                d = self._fs.open_dir(inode=inode)
                out = []
                for f in d:
                    e = self._entry(f, path)
                    if e is not None:
                        out.append(e)
            except Error:
                raise
            except Exception as exc:
                self._fail(exc, f"cannot list folder '{path}' (inode {inode})")
        return out

    def _root_entry(self) -> Entry:
        with self._lock:
            self._adapter.pop_error()
            try:
                f = self._fs.open_meta(inode=self._root)
            except Exception as exc:
                self._fail(exc, "cannot open the root folder")
        meta = f.info.meta
        return Entry(
            inode=self._root,
            name="",
            path="/",
            type="d/d",
            size=int(meta.size) if meta is not None else 0,
            deleted=False,
            mtime=_ts(meta.mtime) if meta is not None else None,
            atime=_ts(meta.atime) if meta is not None else None,
            ctime=_ts(meta.ctime) if meta is not None else None,
            crtime=_ts(meta.crtime) if meta is not None else None,
        )

    def _read_random(self, tsk_file: Any, offset: int, size: int, path: str) -> bytes:
        with self._lock:
            self._adapter.pop_error()
            try:
                data: bytes = tsk_file.read_random(offset, size)
            except Exception as exc:
                self._fail(exc, f"cannot read '{path}' at file offset {offset}")
            pending = self._adapter.pop_error()
        if pending is not None and len(data) < size:
            # Sleuth Kit returns what it read before a failing block; a short file read after an image
            # read error is that error, not the end of the file (fail closed, never a truncated file).
            if isinstance(pending, Error):
                raise pending
            raise FormatError(f"cannot read '{path}' at file offset {offset}: {pending}", path=_seg(self.image))
        return data

    # -- public API -------------------------------------------------------------------------------

    def stat(self, path: str) -> Entry:
        """The entry at ``path`` (deleted entries are found too; an allocated name wins a tie).

        Raises:
            UsageError: no such path in the file system (exit 2).
        """
        parts = [p for p in path.split("/") if p not in ("", ".")]
        cur = self._root_entry()
        for i, part in enumerate(parts):
            if not cur.is_dir:
                raise UsageError(f"'{cur.path}' is not a folder (looking for '{path}')", path=_seg(self.image))
            matches = [e for e in self._list_inode(cur.inode, cur.path) if e.name == part]
            if not matches:
                shown = "/" + "/".join(parts[: i + 1])
                raise UsageError(
                    f"path '{shown}' not found in the {self.type} file system at offset {self.offset}",
                    path=_seg(self.image),
                )
            matches.sort(key=lambda e: (e.deleted, e.reallocated))
            cur = matches[0]
        return cur

    def ls(
        self,
        path: str = "/",
        *,
        recursive: bool = False,
        deleted: bool = True,
        allocated: bool = True,
    ) -> list[Entry]:
        """List a folder like ``fls`` (``-r`` with ``recursive``).

        Args:
            path: the folder (or a single file, which lists itself).
            recursive: descend into sub-folders (depth first, as ``fls -r``).
            deleted: include deleted entries (``fls -u`` is ``deleted=False``).
            allocated: include allocated entries (``fls -d`` is ``allocated=False``).

        Returns:
            Entries in Sleuth Kit's order, with full paths.
        """
        top = self.stat(path)
        if not top.is_dir:
            return [top]
        out: list[Entry] = []
        seen: set[int] = {top.inode}

        def visit(d: Entry, depth: int) -> None:
            for e in self._list_inode(d.inode, d.path):
                if (e.deleted and deleted) or (not e.deleted and allocated):
                    out.append(e)
                if recursive and e.is_dir and e.inode not in seen and depth < 256:
                    seen.add(e.inode)
                    try:
                        visit(e, depth + 1)
                    except FormatError as exc:
                        if isinstance(exc, ChecksumError) or not e.deleted:
                            raise
                        log.debug("skipping unreadable deleted folder %s: %s", e.path, exc)

        visit(top, 0)
        return out

    def walk(self, path: str = "/", *, deleted: bool = False) -> Iterator[tuple[str, list[Entry], list[Entry]]]:
        """Like :func:`os.walk`: yield ``(folder_path, folders, files)`` top-down.

        Virtual entries (``$MBR``, ``$OrphanFiles``...) are left out; deleted ones only with ``deleted``.
        """
        top = self.stat(path)
        seen: set[int] = set()
        stack = [top]
        while stack:
            d = stack.pop(0)
            if d.inode in seen:
                continue
            seen.add(d.inode)
            try:
                listed = self._list_inode(d.inode, d.path)
            except FormatError as exc:
                if isinstance(exc, ChecksumError) or not d.deleted:
                    raise
                # a deleted folder whose metadata was reused: nothing recoverable to descend into
                log.debug("skipping unreadable deleted folder %s: %s", d.path, exc)
                listed = []
            entries = [e for e in listed if not e.is_virtual and (deleted or not e.deleted)]
            dirs = [e for e in entries if e.is_dir]
            files = [e for e in entries if not e.is_dir]
            yield d.path, dirs, files
            stack[0:0] = dirs

    def open(self, path: str | None = None, *, inode: int | None = None) -> TskFile:
        """Open a file for reading (by path, or by inode like ``icat``).

        Raises:
            UsageError: the path does not exist or is a folder.
            FormatError: Sleuth Kit cannot open it.
        """
        if inode is None:
            if path is None:
                raise UsageError("give a path or an inode")
            entry = self.stat(path)
            if entry.is_dir:
                raise UsageError(f"'{entry.path}' is a folder, not a file", path=_seg(self.image))
            inode = entry.inode
        else:
            entry = None
        with self._lock:
            self._adapter.pop_error()
            try:
                f = self._fs.open_meta(inode=inode)
            except Exception as exc:
                self._fail(exc, f"cannot open inode {inode}")
        if entry is None:
            meta = f.info.meta
            entry = Entry(
                inode=inode,
                name=str(inode),
                path=f"<inode {inode}>",
                type="-/" + (_META_TYPE.get(int(str(meta.type)), "-") if meta is not None else "-"),
                size=int(meta.size) if meta is not None else 0,
                deleted=meta is not None and not bool(int(str(meta.flags)) & 1),
            )
        return TskFile(self, f, entry)

    def read(self, path: str | None = None, *, inode: int | None = None) -> bytes:
        """The whole content of a file (like ``icat``); fails closed on a corrupt chunk."""
        with self.open(path, inode=inode) as f:
            return f.read()

    def iter_read(
        self, path: str | None = None, *, inode: int | None = None, block: int = _READ_BLOCK
    ) -> Iterator[bytes]:
        """The content of a file in blocks of ``block`` bytes (for big files)."""
        with self.open(path, inode=inode) as f:
            while True:
                data = f.read(block)
                if not data:
                    return
                yield data

    def extract(self, path: str, dest: str | os.PathLike[str], *, deleted: bool = False) -> ExtractResult:
        """Copy a file or a folder tree out of the file system, keeping modification and access times.

        The copy is built in a temporary folder beside the target and moved into place only when every
        file was read, so a failure (a corrupt chunk, a full disk) leaves nothing half-written. A SHA-256
        manifest (``sha256sum -c`` format, paths relative to the target's folder) is written atomically
        next to it as ``TARGET.sha256``. Names are sanitised so that no stored name (``..``, ``a/b``)
        escapes the target.

        Args:
            path: file or folder inside the file system.
            dest: where to put it. An existing folder receives it under its own name; otherwise ``dest``
                is the new file or folder.
            deleted: also extract deleted entries found inside folders.

        Raises:
            WriteError: the target (or its manifest) already exists, or cannot be written.
            ChecksumError: a file covers a corrupt chunk (nothing is left behind).
        """
        entry = self.stat(path)
        d = Path(dest)
        if d.is_dir():
            target = d / _safe_name(entry.name or "root")
        else:
            target = d
        manifest = target.with_name(target.name + ".sha256")
        for p in (target, manifest):
            if os.path.lexists(p):
                raise WriteError(f"refusing to overwrite '{p}'", path=p)
        parent = target.parent
        if not parent.is_dir():
            raise WriteError(f"destination folder '{parent}' does not exist", path=parent)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
        except OSError as exc:
            raise WriteError(f"cannot write in '{parent}': {exc.strerror}", path=parent) from None
        files: list[ExtractedFile] = []
        skipped: list[tuple[str, str]] = []
        folders = 0
        try:
            staged = tmp / target.name
            dir_times: list[tuple[Path, Entry]] = []
            if entry.is_dir:
                mapping: dict[str, Path] = {entry.path: staged}
                for folder, dirs, fentries in self.walk(entry.path, deleted=deleted):
                    out_dir = mapping[folder]
                    out_dir.mkdir()
                    folders += 1
                    if folder == entry.path:
                        dir_times.append((out_dir, entry))
                    used: set[str] = set()
                    for e in dirs + fentries:
                        name = _safe_name(e.name)
                        if name in used:
                            name = f"{name}~{e.inode}"
                        used.add(name)
                        dst = out_dir / name
                        if dst.resolve().parent != out_dir.resolve():  # belt and braces
                            raise WriteError(f"unsafe name '{e.name}' in '{folder}'", path=dst)
                        if e.is_dir:
                            mapping[e.path] = dst
                            dir_times.append((dst, e))
                        elif e.is_file:
                            files.append(self._extract_file(e, dst))
                        else:
                            skipped.append((e.path, f"type {e.type} is not a regular file"))
            else:
                if not entry.is_file:
                    skipped.append((entry.path, f"type {entry.type} is not a regular file"))
                files.append(self._extract_file(entry, staged))
            for p, e in reversed(dir_times):
                _set_times(p, e)
            os.rename(staged, target)
            fsync_dir(parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        files = [
            ExtractedFile(
                f.source, str(target.parent / os.path.relpath(f.dest, tmp)), f.inode, f.size, f.sha256, f.deleted
            )
            for f in files
        ]
        lines = [f"{f.sha256}  {_manifest_path(os.path.relpath(f.dest, target.parent))}\n" for f in files]
        atomic_write(manifest, "".join(lines))
        return ExtractResult(
            target=target, manifest=manifest, files=tuple(files), folders=folders, skipped=tuple(skipped)
        )

    def _extract_file(self, e: Entry, dst: Path) -> ExtractedFile:
        h = hashlib.sha256()
        size = 0
        try:
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise WriteError(f"cannot create '{dst}': {exc.strerror}", path=dst, errno_=exc.errno) from None
        try:
            for block in self.iter_read(inode=e.inode):
                h.update(block)
                view = memoryview(block)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                size += len(block)
            os.fsync(fd)
        except OSError as exc:
            if isinstance(exc, Error):
                raise
            raise WriteError(f"cannot write '{dst}': {exc.strerror}", path=dst, errno_=exc.errno) from None
        finally:
            os.close(fd)
        _set_times(dst, e)
        return ExtractedFile(e.path, str(dst), e.inode, size, h.hexdigest(), e.deleted)


def _manifest_path(rel: str) -> str:
    # sha256sum escapes names holding a backslash or a newline; ours never hold a newline (sanitised
    # names keep them, so escape like coreutils: a leading backslash marks an escaped line).
    return rel.replace("\\", "\\\\").replace("\n", "\\n")


def _set_times(p: Path, e: Entry) -> None:
    mt = e.mtime or e.crtime
    at = e.atime or mt
    if mt is None or at is None:
        return
    try:
        os.utime(p, ns=(_ns(at), _ns(mt)), follow_symlinks=False)
    except OSError as exc:
        log.warning("cannot set times of %s: %s", p, exc)


def _ns(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


# -- opening --------------------------------------------------------------------------------------


def open_filesystem(image: Image, partition: int | None = None, offset: int | None = None) -> FileSystem:
    """Open the file system of a partition (1-based index among allocated partitions) or at a byte offset.

    With neither, a disk without a partition table is one file system (offset 0); a disk with one
    partition holding a file system opens that one; several partitions ask for a choice.

    Raises:
        UsageError: both given, an index that does not exist, or several candidates (exit 2).
        FormatError: no file system at that place (exit 3).
        UnsupportedFormatError: pytsk3 is not installed (exit 3).
    """
    if partition is not None and offset is not None:
        raise UsageError("give either a partition index or an offset, not both")
    if offset is not None:
        if offset < 0 or offset >= max(image.size, 1):
            raise UsageError(f"offset {offset} is outside the media (size {image.size})", path=_seg(image))
        return FileSystem(image, offset)
    vs = volume_system(image, detect_fs=partition is None)
    if partition is not None:
        parts = [p for p in (vs.partitions if vs else ()) if p.allocated]
        for p in parts:
            if p.index == partition:
                return FileSystem(image, p.offset, p)
        have = ", ".join(str(p.index) for p in parts) or "none (no partition table)"
        raise UsageError(f"partition {partition} does not exist (partitions: {have})", path=_seg(image))
    if vs is None:
        return FileSystem(image, 0)
    with_fs = [p for p in vs.partitions if p.allocated and p.fs_type]
    if len(with_fs) == 1:
        return FileSystem(image, with_fs[0].offset, with_fs[0])
    if not with_fs:
        raise FormatError("no file system found in any partition", path=_seg(image))
    choices = ", ".join(f"{p.index} ({p.fs_type} at sector {p.start})" for p in with_fs)
    raise UsageError(f"the disk has {len(with_fs)} file systems: choose a partition ({choices})", path=_seg(image))
