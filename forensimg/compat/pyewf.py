"""A pyewf-compatible handle over every forensimg format (raw, split raw, E01, fimg).

Scripts written against libewf's Python binding run unchanged after swapping one import line::

    from forensimg.compat import pyewf          # was: import pyewf

    filenames = pyewf.glob("disk.E01")           # also disk.raw, disk.001, disk.fimg
    handle = pyewf.handle()
    handle.open(filenames)
    print(handle.get_media_size(), handle.get_hash_value("MD5"), handle.get_header_value("case_number"))
    handle.seek(0x10000)
    data = handle.read(4096)
    handle.close()

The method names, return values and edge cases follow pyewf (libewf-python 20240506+): ``seek`` and
``seek_offset`` return ``None``; reading at or past the end returns ``b""``; seeking before 0 raises
``OSError``; a negative read size raises ``ValueError``; hash names are upper case (``MD5``, ``SHA1``,
``SHA256``) and header values use pyewf's keys and its date format (local time, ``ctime``-like).
As an extension, ``read()`` without a size reads to the end of the media (pyewf raises ``ValueError``).

One deliberate difference: pyewf returns zeros for a chunk that fails its check, silently. This handle
raises ``OSError(EIO)`` (chained from :class:`~forensimg.errors.ChecksumError`) unless it was created
with ``handle(zero_fill=True)``, which reads such chunks as zeros like pyewf and records them in
:attr:`handle.faults`.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from forensimg.errors import ChecksumError, Error
from forensimg.image import Fault, Image

__all__ = ["check_file_signature", "get_version", "glob", "handle", "open"]

_HASH_NAMES = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256", "sha512": "SHA512"}

HEADER_KEYS = (
    "case_number",
    "description",
    "examiner_name",
    "evidence_number",
    "notes",
    "acquiry_date",
    "system_date",
    "acquiry_operating_system",
    "acquiry_software_version",
    "model",
    "serial_number",
)
"""The header value names pyewf reports, in its order."""


def get_version() -> str:
    """forensimg's version (pyewf returns libewf's)."""
    from forensimg._version import __version__

    return __version__


def glob(filename: str | os.PathLike[str]) -> list[str]:
    """The files of the image ``filename`` belongs to, in order (pyewf: ``glob``).

    E01/Ex01 sets (``.E01``, ``.E02``, ... ``.EAA``), split raw sets (``.001``, ``.aa``, ``.raw.000``);
    any other file is its own set.

    Raises:
        OSError: ``filename`` does not exist.
    """
    p = Path(filename)
    if not p.exists():
        raise OSError(errno.ENOENT, f"pyewf_glob: no such file: '{p}'", os.fspath(p))
    from forensimg.formats.ewf.naming import set_members
    from forensimg.formats.raw import find_split_members
    from forensimg.registry import detect

    try:
        fmt = detect([p]).name
    except Error:
        fmt = "raw"
    if fmt == "ewf":
        members = set_members(p)
    elif fmt == "raw":
        members = find_split_members(p) or [p]
    else:
        members = [p]
    return [os.fspath(m) for m in members]


def check_file_signature(filename: str | os.PathLike[str]) -> bool:
    """Whether ``filename`` starts with an EWF signature (pyewf: ``check_file_signature``)."""
    from forensimg.registry import EWF_SIGNATURES

    try:
        with Path(filename).open("rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return any(head.startswith(sig) for sig in EWF_SIGNATURES)


def _ctime(value: datetime | None) -> str | None:
    # libewf renders header dates like ctime(3) in the local time zone: "Tue Nov 14 22:13:20 2023".
    if value is None:
        return None
    t = value.astimezone()
    return f"{t:%a %b} {t.day:2d} {t:%H:%M:%S %Y}"


class handle:
    """A read-only pyewf-style handle on a forensimg image.

    Args:
        zero_fill: read chunks that fail their check as zeros (pyewf's behaviour) instead of raising
            ``OSError(EIO)``.
    """

    def __init__(self, zero_fill: bool = False) -> None:
        self._image: Image | None = None
        self._zero_fill = zero_fill
        self._offset = 0

    # -- opening ----------------------------------------------------------------------------------

    def open(self, filenames: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], mode: str = "r") -> None:
        """Open the image made of ``filenames`` (as :func:`glob` returns them; one name is enough).

        Raises:
            ValueError: a write mode (this handle is read-only).
            OSError: the image cannot be opened (the forensimg error is chained).
        """
        if mode not in ("r", "rb"):
            raise ValueError(f"pyewf_handle_open: unsupported mode: {mode} (forensimg handles are read-only)")
        if self._image is not None:
            raise OSError(errno.EBUSY, "pyewf_handle_open: handle already open")
        from forensimg.registry import open as open_image

        names = [filenames] if isinstance(filenames, str | os.PathLike) else list(filenames)
        if not names:
            raise ValueError("pyewf_handle_open: missing filenames")
        try:
            self._image = open_image(names[0] if len(names) == 1 else names, zero_fill=self._zero_fill)
        except Error as exc:
            raise OSError(errno.EIO, f"pyewf_handle_open: unable to open handle: {exc}") from exc
        self._offset = 0

    def close(self) -> None:
        """Close the image."""
        if self._image is not None:
            self._image.close()
            self._image = None

    def __enter__(self) -> handle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _img(self) -> Image:
        if self._image is None:
            raise OSError(errno.EBADF, "pyewf_handle: invalid handle - not open")
        return self._image

    # -- reading ----------------------------------------------------------------------------------

    def read_buffer_at_offset(self, size: int, offset: int) -> bytes:
        """Read ``size`` bytes at media ``offset``; the position ends after them (pyewf semantics)."""
        img = self._img()
        if size < 0:
            raise ValueError("pyewf_handle_read_buffer_at_offset: invalid argument read size value less than zero.")
        if offset < 0:
            raise OSError(errno.EINVAL, "pyewf_handle_read_buffer_at_offset: invalid offset value out of bounds.")
        try:
            data = img.read_at(offset, size)
        except ChecksumError as exc:
            raise OSError(errno.EIO, f"pyewf_handle_read_buffer: unable to read data: {exc}") from exc
        self._offset = offset + len(data)
        return data

    read_random = read_buffer_at_offset

    def read_buffer(self, size: int | None = None) -> bytes:
        """Read ``size`` bytes (all remaining when ``None``) at the current offset."""
        img = self._img()
        if size is None:
            size = max(0, img.size - self._offset)
        if size < 0:
            raise ValueError("pyewf_handle_read_buffer: invalid argument read size value less than zero.")
        return self.read_buffer_at_offset(size, self._offset)

    read = read_buffer

    def seek_offset(self, offset: int, whence: int = io.SEEK_SET) -> None:
        """Move the offset (``whence`` 0, 1, 2). Returns ``None`` like pyewf; past the end is allowed."""
        img = self._img()
        if whence == io.SEEK_SET:
            new = offset
        elif whence == io.SEEK_CUR:
            new = self._offset + offset
        elif whence == io.SEEK_END:
            new = img.size + offset
        else:
            raise OSError(errno.EINVAL, "pyewf_handle_seek_offset: unsupported whence.")
        if new < 0:
            raise OSError(errno.EINVAL, "pyewf_handle_seek_offset: invalid offset value out of bounds.")
        self._offset = new

    seek = seek_offset

    def get_offset(self) -> int:
        """The current offset."""
        self._img()
        return self._offset

    tell = get_offset

    # -- media ------------------------------------------------------------------------------------

    def get_media_size(self) -> int:
        """Media size in bytes."""
        return self._img().size

    def get_bytes_per_sector(self) -> int:
        """Bytes per sector."""
        return self._img().sector_size

    def get_number_of_sectors(self) -> int:
        """Number of sectors of the media."""
        img = self._img()
        return -(-img.size // img.sector_size)

    def get_chunk_size(self) -> int:
        """Bytes per chunk (raw images: forensimg's read grid)."""
        return self._img().chunk_size

    def get_sectors_per_chunk(self) -> int:
        """Sectors per chunk."""
        img = self._img()
        return img.chunk_size // img.sector_size

    def get_error_granularity(self) -> int:
        """EWF error granularity in sectors (sectors per chunk for other formats)."""
        img = self._img()
        value = img.info.details.get("error_granularity")
        return int(value) if value else self.get_sectors_per_chunk()

    def get_media_flags(self) -> int:
        """EWF media flags (1 image, 2 physical, ...); derived from the source for other formats."""
        img = self._img()
        value = img.info.details.get("media_flags")
        if value is not None:
            return int(value)
        src = img.info.source
        return 1 | (2 if (src is None or src.is_physical) else 0)

    media_size = property(get_media_size)
    bytes_per_sector = property(get_bytes_per_sector)
    number_of_sectors = property(get_number_of_sectors)
    chunk_size = property(get_chunk_size)
    sectors_per_chunk = property(get_sectors_per_chunk)
    error_granularity = property(get_error_granularity)
    media_flags = property(get_media_flags)
    offset = property(get_offset)

    @property
    def faults(self) -> tuple[Fault, ...]:
        """Chunks read as zeros so far (``zero_fill=True`` only)."""
        return self._img().faults

    # -- hashes and header values -----------------------------------------------------------------

    def get_hash_values(self) -> dict[str, str]:
        """Stored media hashes by pyewf's names (``{"MD5": "...", "SHA1": "..."}``)."""
        stored = self._img().info.stored_hashes
        return {_HASH_NAMES.get(k.lower(), k.upper()): v for k, v in stored.items()}

    def get_hash_value(self, name: str) -> str | None:
        """One stored hash (``"MD5"``, ``"SHA1"``, ``"SHA256"``; case-sensitive like pyewf), or ``None``."""
        return self.get_hash_values().get(name)

    def get_header_values(self) -> dict[str, str]:
        """Case metadata by pyewf's key names; empty values are left out, as pyewf does."""
        info = self._img().info
        values: dict[str, str | None] = {
            "case_number": info.case.case_number,
            "description": info.case.description,
            "examiner_name": info.case.examiner,
            "evidence_number": info.case.evidence_number,
            "notes": info.case.notes,
            "acquiry_date": _ctime(info.acquired_at),
            "system_date": _ctime(info.system_date),
            "acquiry_operating_system": info.acquisition_os,
            "acquiry_software_version": info.acquisition_software,
            "model": info.source.model if info.source else None,
            "serial_number": info.source.serial if info.source else None,
        }
        return {k: v for k, v in values.items() if v}

    def get_header_value(self, name: str) -> str | None:
        """One header value by pyewf's key (``case_number``, ``examiner_name``, ``acquiry_date``...)."""
        return self.get_header_values().get(name)

    def get_number_of_header_values(self) -> int:
        """How many header values are set."""
        return len(self.get_header_values())


def open(filenames: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], mode: str = "r") -> handle:
    """Open and return a handle (pyewf: ``pyewf.open``)."""
    h = handle()
    h.open(filenames, mode)
    return h
