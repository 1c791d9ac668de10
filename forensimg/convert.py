"""Convert an image between formats (E01 ↔ fimg ↔ raw ↔ split raw), carrying everything across.

What is carried: the media (byte for byte), case metadata, source identity, acquisition time, sector size,
the ranges recorded as unreadable at acquisition (E01 error2 ↔ fimg error map), and the stored hashes:
the media is hashed once while it is copied, and the conversion fails if those hashes differ from the
ones the input image stores (the output is then aborted, so that it never passes for a good copy).

A chunk of the input that fails its check stops the conversion (:class:`~forensimg.errors.IntegrityError`)
unless ``zero_fill=True``: then it is written as zeros, recorded as unreadable in the output, and listed
in :attr:`ConvertResult.faults` (the stored hashes will then not match, and the result says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from forensimg.errors import ChecksumError, IntegrityError, UsageError
from forensimg.hashing import MultiHasher, normalize_algorithms
from forensimg.image import Fault, Image
from forensimg.writer import ImageWriter, WriteResult

__all__ = ["ConvertProgress", "ConvertResult", "convert", "writer_options_for"]


@dataclass(frozen=True, slots=True)
class ConvertProgress:
    """Progress of a conversion (``done`` of ``total`` media bytes)."""

    done: int
    total: int
    elapsed: float
    rate: float
    unreadable_sectors: int = 0
    unreadable_bytes: int = 0
    phase: str = "convert"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"done": self.done, "total": self.total, "elapsed": round(self.elapsed, 3), "rate": round(self.rate),
                "phase": self.phase}


@dataclass
class ConvertResult:
    """The outcome of :func:`convert`.

    Attributes:
        result: the finished output (``None`` when it was aborted).
        hashes: hashes of the media as read from the input (before any padding).
        stored: the input's stored hashes.
        compared: algorithms compared with stored hashes, to ``True`` if they match.
        faults: chunks of the input that failed their check (zero-filled; only with ``zero_fill``).
        padded_bytes: zeros added for a format that stores whole sectors.
    """

    result: WriteResult | None
    hashes: dict[str, str]
    stored: dict[str, str]
    compared: dict[str, bool] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    padded_bytes: int = 0
    size: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def ok(self) -> bool:
        """Finished, no fault, and every compared hash matches."""
        return self.result is not None and not self.faults and all(self.compared.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "ok": self.ok,
            "size": self.size,
            "hashes": self.hashes,
            "stored_hashes": self.stored,
            "compared": self.compared,
            "faults": [f.to_dict() for f in self.faults],
            "padded_bytes": self.padded_bytes,
            "result": self.result.to_dict() if self.result else None,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def writer_options_for(image: Image) -> dict[str, Any]:
    """The writer options that carry ``image``'s metadata across (case, source, time, sector size)."""
    info = image.info
    opts: dict[str, Any] = {"case": info.case, "sector_size": info.sector_size}
    if info.source is not None:
        opts["source"] = info.source
    if info.acquired_at is not None:
        opts["acquired_at"] = info.acquired_at
    return opts


def convert(
    image: Image,
    writer: ImageWriter,
    *,
    hashes: Sequence[str] | str | None = None,
    block_size: int = 4 << 20,
    on_progress: Callable[[ConvertProgress], None] | None = None,
) -> ConvertResult:
    """Copy ``image``'s media into ``writer`` and finish it (or abort it on any failure).

    The writer must be created with ``compute_hashes=False`` and the metadata of
    :func:`writer_options_for`. Open ``image`` with ``zero_fill=True`` to convert past corrupt chunks.

    Args:
        image: the input.
        writer: the output.
        hashes: algorithms to compute (default: the input's stored ones plus the writer's).
        block_size: bytes per read.
        on_progress: called after each block.

    Returns:
        A :class:`ConvertResult`. ``result.ok`` is false when a stored hash differs (the output is then
        aborted, unless zero-filled chunks explain it: those are recorded as unreadable in the output).

    Raises:
        IntegrityError: a chunk failed its check (without zero-fill); the output is aborted.
        WriteError: the output cannot be written; it is aborted.
    """
    info = image.info
    stored = {normalize_algorithms([k])[0]: v.lower() for k, v in info.stored_hashes.items()
              if k.lower().replace("-", "") in ("md5", "sha1", "sha256", "sha512")}
    algs = normalize_algorithms(hashes) if hashes else normalize_algorithms([*stored, *writer.hash_algorithms])
    if writer.sector_size != info.sector_size:
        raise UsageError(f"writer sector size {writer.sector_size} differs from the image's {info.sector_size}")
    size = image.size
    ss = info.sector_size
    pad = (ss - size % ss) % ss if writer.requires_whole_sectors else 0
    res = ConvertResult(result=None, hashes={}, stored=stored, size=size, padded_bytes=pad)
    hasher = MultiHasher(algs)
    padded_hasher = MultiHasher(algs) if pad else None
    t0 = time.monotonic()
    try:
        for r in info.unreadable:
            writer.mark_unreadable(r.start, r.length)
        pos = 0
        seen_faults = 0
        while pos < size:
            n = min(block_size, size - pos)
            try:
                data = image.read_at(pos, n)
            except ChecksumError as exc:
                raise IntegrityError(
                    f"the input has a corrupt chunk: {exc} (convert with --zero-fill to write it as zeros)",
                    path=exc.path,
                    offset=exc.offset,
                ) from None
            if len(data) != n:
                raise IntegrityError(f"the input ended at media offset {pos + len(data)}, before its size {size}",
                                     path=str(info.segments[0]) if info.segments else None)
            faults = image.faults
            for f in faults[seen_faults:]:
                res.faults.append(f)
                if f.media is not None:
                    writer.mark_unreadable(f.media.start, f.media.length)
            seen_faults = len(faults)
            hasher.update(data)
            if padded_hasher is not None:
                padded_hasher.update(data)
            writer.write(data)
            pos += n
            if on_progress is not None:
                el = time.monotonic() - t0
                on_progress(ConvertProgress(pos, size, el, pos / el if el > 0 else 0.0))
        res.hashes = hasher.hexdigests()
        final = res.hashes
        if padded_hasher is not None:
            padding = bytes(pad)
            padded_hasher.update(padding)
            writer.write(padding)
            final = padded_hasher.hexdigests()
        res.compared = {a: res.hashes[a] == stored[a] for a in stored if a in res.hashes}
        if not all(res.compared.values()) and not res.faults:
            # Nothing explains the difference: never leave a finished copy whose hashes differ.
            # (With zero-filled chunks the output is finished: they are recorded as unreadable in it.)
            writer.abort()
            res.finished_at = datetime.now(UTC)
            return res
        writer.set_hashes(final)
        res.result = writer.close()
    except BaseException:
        writer.abort()
        hasher.close()
        if padded_hasher is not None:
            padded_hasher.close()
        raise
    res.finished_at = datetime.now(UTC)
    return res
