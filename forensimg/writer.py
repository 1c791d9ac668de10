"""The sequential writer interface every output format implements (raw, split raw, E01, fimg).

A writer takes the media front to back through :meth:`ImageWriter.write`, is told which ranges were
unreadable (the caller writes zeros for them and calls :meth:`ImageWriter.mark_unreadable`), and on
:meth:`ImageWriter.close` finalises tables, hashes and footers and returns a :class:`WriteResult`.
:meth:`ImageWriter.abort` leaves the output visibly incomplete (no ``done`` section, no footer, a
``.partial`` name): an aborted image never passes for a finished one.

The base class owns position, hashing, unreadable ranges, sector padding and the open/closed state.
A format implements :meth:`ImageWriter._write`, :meth:`ImageWriter._finalize` and
:meth:`ImageWriter._abort`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from forensimg.errors import UsageError, WriteError
from forensimg.hashing import DEFAULT_HASHES, MultiHasher, normalize_algorithms
from forensimg.image import CaseInfo, Range, SourceInfo, merge_ranges

__all__ = ["ImageWriter", "WriteResult"]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a finished writer produced.

    Attributes:
        format: the format written.
        paths: every file written, in segment order.
        size: media size in bytes as stored (after any padding to whole sectors).
        hashes: whole-media hashes, algorithm to hex, of the media as stored (zero-filled ranges included).
        unreadable: media ranges recorded as unreadable.
        padded_bytes: zero bytes appended to reach a whole sector (0 when none).
        input_size: bytes given to :meth:`ImageWriter.write`.
        details: format-specific facts (Merkle root, set identifier, compression, ...).
    """

    format: str
    paths: tuple[Path, ...]
    size: int
    hashes: Mapping[str, str]
    unreadable: tuple[Range, ...] = ()
    padded_bytes: int = 0
    input_size: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self, sector_size: int | None = None) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": self.format,
            "paths": [str(p) for p in self.paths],
            "size": self.size,
            "input_size": self.input_size,
            "padded_bytes": self.padded_bytes,
            "hashes": dict(self.hashes),
            "unreadable": [r.to_dict(sector_size) for r in self.unreadable],
            "details": dict(self.details),
        }


class ImageWriter:
    """Sequential, append-only image writer. Use as a context manager: an exception aborts.

    Args:
        path: the output (first segment) path.
        case: case metadata to store.
        source: identity of the source, where the format stores it.
        sector_size: bytes per sector of the media.
        hashes: whole-media hashes to compute and store.
        compute_hashes: compute ``hashes`` from the written data (default). With ``False`` the caller
            computes them (e.g. once for several mirrored writers) and passes them to
            :meth:`set_hashes` before :meth:`close`.
        acquired_at: acquisition start time (timezone-aware; default: now, UTC).
        overwrite: replace existing output files instead of refusing.
    """

    format: ClassVar[str] = "abstract"
    requires_whole_sectors: ClassVar[bool] = False
    """Formats that can only store whole sectors (E01) get the media zero-padded at close."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        case: CaseInfo | None = None,
        source: SourceInfo | None = None,
        sector_size: int = 512,
        hashes: Sequence[str] | str = DEFAULT_HASHES,
        compute_hashes: bool = True,
        acquired_at: datetime | None = None,
        overwrite: bool = False,
    ) -> None:
        if sector_size <= 0 or sector_size & (sector_size - 1):
            raise UsageError(f"sector size must be a power of two, not {sector_size}")
        if acquired_at is not None and acquired_at.tzinfo is None:
            raise UsageError("acquired_at must be timezone-aware")
        self.path = Path(path)
        self.case = case or CaseInfo()
        self.source = source
        self.sector_size = sector_size
        self.hash_algorithms = normalize_algorithms(hashes)
        self.acquired_at = acquired_at or datetime.now(UTC)
        self.overwrite = overwrite
        self._hasher = MultiHasher(self.hash_algorithms) if compute_hashes else None
        self._external_hashes: dict[str, str] | None = None
        self._pos = 0
        self._unreadable: list[Range] = []
        self._result: WriteResult | None = None
        self._aborted = False
        self._padded = 0

    # -- what formats implement -------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Store the next ``len(data)`` media bytes."""
        raise NotImplementedError

    def _finalize(self, hashes: Mapping[str, str], unreadable: tuple[Range, ...]) -> WriteResult:
        """Write tables, hashes, footers; return the result. ``self.position`` is the final size."""
        raise NotImplementedError

    def _abort(self) -> None:
        """Stop writing, leaving the output visibly incomplete."""

    # -- the interface ----------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Media bytes written so far."""
        return self._pos

    @property
    def media_stored(self) -> int:
        """Media bytes handed to the output files so far without an error.

        After a :class:`~forensimg.errors.WriteError` it is the first media offset that did not reach
        the output: the target holds ``[0, media_stored)`` (before any checkpoint or finish). Formats
        that write in pieces or buffer chunks override it; the default is :attr:`position` (what
        :meth:`write` took).
        """
        return self._pos

    @property
    def closed(self) -> bool:
        """True after close or abort."""
        return self._result is not None or self._aborted

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append media bytes. Returns the number of bytes taken (always all of them).

        Raises:
            WriteError: the output cannot be written.
            ValueError: the writer is closed.
        """
        if self.closed:
            raise ValueError("write to a closed image writer")
        block = data if isinstance(data, bytes) else bytes(data)
        if not block:
            return 0
        if self._hasher is not None:
            self._hasher.update(block)
        self._write(block)
        self._pos += len(block)
        return len(block)

    def mark_unreadable(self, offset: int, length: int) -> None:
        """Record that media bytes ``[offset, offset+length)`` could not be read (written as zeros)."""
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        if length:
            self._unreadable.append(Range(offset, offset + length))

    def set_hashes(self, hashes: Mapping[str, str]) -> None:
        """Give the whole-media hashes computed by the caller (with ``compute_hashes=False``)."""
        self._external_hashes = {normalize_algorithms([k])[0]: v.lower() for k, v in hashes.items()}

    def close(self) -> WriteResult:
        """Finish the image and return what was written. Idempotent.

        Raises:
            WriteError: finishing failed (the output is then left incomplete).
            ValueError: the writer was aborted.
        """
        if self._result is not None:
            return self._result
        if self._aborted:
            raise ValueError("the writer was aborted")
        input_size = self._pos
        if self.requires_whole_sectors and self._pos % self.sector_size:
            pad = self.sector_size - self._pos % self.sector_size
            self.write(bytes(pad))
            self._padded = pad
        if self._hasher is not None:
            hashes = self._hasher.hexdigests()
        else:
            hashes = dict(self._external_hashes or {})
        unreadable = merge_ranges(self._unreadable)
        if unreadable and unreadable[-1].end > self._pos:
            raise UsageError(
                f"unreadable range ends at {unreadable[-1].end}, past the media end {self._pos}"
            )
        try:
            result = self._finalize(hashes, unreadable)
        except BaseException:
            self.abort()
            raise
        from dataclasses import replace

        self._result = replace(result, padded_bytes=self._padded, input_size=input_size)
        return self._result

    def abort(self) -> None:
        """Stop; the output stays visibly incomplete. Safe to call more than once, or after a failure."""
        if self._result is not None or self._aborted:
            return
        self._aborted = True
        if self._hasher is not None:
            self._hasher.close()
        self._abort()

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- helpers for formats ----------------------------------------------------------------------

    def _check_target(self, path: Path) -> None:
        """Refuse to overwrite an existing file unless ``overwrite`` was given."""
        if path.exists() and not self.overwrite:
            raise WriteError(f"output '{path}' exists already (refusing to overwrite)", path=path)
        parent = path.parent
        if not parent.is_dir():
            raise WriteError(f"output folder '{parent}' does not exist", path=path)
