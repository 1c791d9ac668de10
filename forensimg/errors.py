"""The one exception tree of forensimg.

Every error raised on purpose by the library is an :class:`Error`. Messages name the file and, where it
applies, the segment and the byte offset (hex and decimal), so that one line on stderr is enough for an
examiner to find the fault. Each class carries the CLI exit code it maps to (see ``docs/cli.md``)::

    Error                                   exit 3 unless noted
    ├── UsageError                          exit 2   bad option values found after parsing
    ├── FormatError                         input bytes do not form a valid image
    │   ├── ChecksumError                   a chunk, table or section fails its check (fail-closed)
    │   ├── MissingSegmentError             a member of a segmented set is missing, duplicated or misnumbered
    │   ├── UnsupportedFormatError          recognised but not supported (Ex01, L01, AD-encrypted, ...)
    │   └── IncompleteImageError            an image whose writer never finished (no done / footer)
    ├── ImageNotFoundError                  (also FileNotFoundError) the input path does not exist
    ├── ImageReadError                      (also OSError) an image file cannot be opened or read
    ├── WriteError                          (also OSError) an output cannot be written (disk full, EIO)
    ├── SourceError                         evidence source problems
    │   ├── SourceReadError                 (also OSError) a read of the source failed at an offset
    │   └── WriteBlockError        exit 5   a safeguard refused the operation (mounted, same device, ...)
    ├── IntegrityError             exit 1   verification found a mismatch or a corrupt chunk
    │   └── RestoreStoppedError    exit 1   a restore stopped before writing a chunk failing its check
    ├── NoReferenceError           exit 4   nothing to verify against
    ├── CustodyError               exit 1   the custody log's hash chain is broken
    └── MountError                          a FUSE mount could not be made or removed

Not-found errors also subclass the builtin so that ``except FileNotFoundError`` keeps working.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

__all__ = [
    "ChecksumError",
    "CustodyError",
    "Error",
    "FormatError",
    "ImageNotFoundError",
    "ImageReadError",
    "IncompleteImageError",
    "IntegrityError",
    "MissingSegmentError",
    "MountError",
    "NoReferenceError",
    "RestoreStoppedError",
    "SourceError",
    "SourceReadError",
    "UnsupportedFormatError",
    "UsageError",
    "WriteBlockError",
    "WriteError",
    "location",
]


def location(path: str | os.PathLike[str] | None = None, offset: int | None = None) -> str:
    """Render ``file 'x.E01' at offset 0x0000004c (76)`` for error messages."""
    parts: list[str] = []
    if path is not None:
        parts.append(f"file '{os.fspath(path)}'")
    if offset is not None:
        parts.append(f"at offset 0x{offset:08x} ({offset})")
    return " ".join(parts)


class Error(Exception):
    """Root of every error forensimg raises on purpose.

    Args:
        message: what went wrong, in one line.
        path: the file concerned (an image segment, a source device, an output file).
        offset: the byte offset inside ``path`` where the problem lies, if known.
    """

    exit_code: ClassVar[int] = 3

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        offset: int | None = None,
    ) -> None:
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        self.offset = offset
        super().__init__(message)

    def __str__(self) -> str:
        where = location(self.path, self.offset)
        if where and (self.path is None or self.path not in self.message):
            return f"{self.message} ({where})"
        if where and self.offset is not None and f"0x{self.offset:08x}" not in self.message:
            return f"{self.message} (at offset 0x{self.offset:08x} ({self.offset}))"
        return self.message


class UsageError(Error):
    """Option values that are individually valid but cannot be used together."""

    exit_code: ClassVar[int] = 2


class FormatError(Error):
    """The bytes of an image do not form what its format requires."""


class ChecksumError(FormatError):
    """A chunk (or a checksummed structure) fails its check.

    Attributes:
        chunk: index of the chunk, if the failing unit is a chunk.
        media_start: first media byte covered by the chunk.
        media_end: one past the last media byte covered by the chunk.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        offset: int | None = None,
        chunk: int | None = None,
        media_start: int | None = None,
        media_end: int | None = None,
    ) -> None:
        super().__init__(message, path=path, offset=offset)
        self.chunk = chunk
        self.media_start = media_start
        self.media_end = media_end


class MissingSegmentError(FormatError):
    """A member of a segmented image set is missing, duplicated or misnumbered."""


class UnsupportedFormatError(FormatError):
    """A recognised format (or variant) that forensimg does not read or write."""


class IncompleteImageError(FormatError):
    """The image was never finished by its writer (crash, kill, abort)."""


class ImageNotFoundError(Error, FileNotFoundError):
    """The named input does not exist."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        Error.__init__(self, message, path=path)


class _OSErrorLike(Error, OSError):
    """An :class:`Error` that is also an :class:`OSError`, carrying the OS error number."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        offset: int | None = None,
        errno_: int | None = None,
    ) -> None:
        Error.__init__(self, message, path=path, offset=offset)
        self.errno = errno_


class ImageReadError(_OSErrorLike):
    """An image file exists but cannot be opened or read (permissions, I/O error, directory)."""


class WriteError(_OSErrorLike):
    """An output (image segment, report, restore target) cannot be written."""


class SourceError(Error):
    """Problems with an evidence source."""


class SourceReadError(SourceError, OSError):
    """A read of the evidence source failed.

    Attributes:
        length: number of bytes that were asked for at ``offset``.
        errno: the OS error number.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        offset: int | None = None,
        length: int = 0,
        errno_: int | None = None,
    ) -> None:
        SourceError.__init__(self, message, path=path, offset=offset)
        self.length = length
        self.errno = errno_


class WriteBlockError(SourceError):
    """A write-blocking safeguard refused the operation."""

    exit_code: ClassVar[int] = 5


class IntegrityError(Error):
    """Verification found a mismatch or corrupt data."""

    exit_code: ClassVar[int] = 1


class RestoreStoppedError(IntegrityError):
    """A chunk failed its check; the restore stopped before writing it (exit 1).

    Attributes:
        result: what was done up to the stop (a :class:`forensimg.restore.RestoreResult` with
            ``status == "stopped"``; its ``faults`` hold the chunk). Typed ``Any`` here so that this
            module imports nothing of the library.
    """

    def __init__(
        self,
        message: str,
        *,
        result: Any,
        path: str | os.PathLike[str] | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message, path=path, offset=offset)
        self.result = result


class NoReferenceError(Error):
    """There is nothing to verify against (no stored or given hash)."""

    exit_code: ClassVar[int] = 4


class CustodyError(Error):
    """The custody log is malformed or its hash chain is broken."""

    exit_code: ClassVar[int] = 1


class MountError(Error):
    """A FUSE mount could not be made or removed."""
