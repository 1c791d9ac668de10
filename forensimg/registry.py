"""Format registry: detection from content and names, :func:`open` and :func:`create`.

Formats are registered by module name and imported only when used. Detection reads the first bytes of the
first file and matches each format's signatures; raw comes last and takes any other bytes. The file name
only decides between a single raw file and a split raw set, and picks the output format in
:func:`create`; an extension alone never makes a file EWF or fimg.

A format module provides::

    def open_image(paths: Sequence[Path], *, zero_fill: bool = False, **options) -> Image
    def create_writer(path: Path, **options) -> ImageWriter
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from forensimg.errors import ImageReadError, UsageError
from forensimg.image import Image
from forensimg.streams import check_input_file
from forensimg.writer import ImageWriter

__all__ = ["FormatSpec", "create", "detect", "formats", "open", "register"]

StrPath = str | os.PathLike[str]


class _FormatModule(Protocol):
    def open_image(self, paths: Sequence[Path], *, zero_fill: bool = False, **options: Any) -> Image: ...

    def create_writer(self, path: Path, **options: Any) -> ImageWriter: ...


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """One registered format.

    Attributes:
        name: canonical name (``raw``, ``split``, ``ewf``, ``fimg``).
        module: the module implementing ``open_image`` / ``create_writer``.
        signatures: byte strings one of which starts the first file; empty for raw.
        extensions: lower-case output extensions that select this format in :func:`create`.
        aliases: other names accepted for ``format=``.
        description: one line for ``--help``.
        write_defaults: options :func:`create` passes unless the caller gives them.
    """

    name: str
    module: str
    signatures: tuple[bytes, ...] = ()
    extensions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    description: str = ""
    write_defaults: tuple[tuple[str, Any], ...] = ()

    def load(self) -> _FormatModule:
        """Import the implementing module."""
        return cast(_FormatModule, importlib.import_module(self.module))


_REGISTRY: list[FormatSpec] = []

FIMG_MAGIC = b"FIMG\r\n\x1a\n"
"""First 8 bytes of every fimg file (see ``formats/fimg/spec.md``)."""

EWF_SIGNATURES = (
    b"EVF\x09\x0d\x0a\xff\x00",  # E01 / s01 / e01 (EWF1), ewf-notes §1.1
    b"LVF\x09\x0d\x0a\xff\x00",  # L01 (refused by the reader)
    b"EVF2\x0d\x0a\x81\x00",  # Ex01 (EWF2)
    b"LEF2\x0d\x0a\x81\x00",  # Lx01
    b"ADCRYPT\x00",  # FTK AD encryption around an E01
)


def register(spec: FormatSpec) -> None:
    """Add a format (later registrations are tried first, raw always last)."""
    global _REGISTRY
    _REGISTRY = [s for s in _REGISTRY if s.name != spec.name]
    _REGISTRY.insert(0, spec)


def formats() -> tuple[FormatSpec, ...]:
    """Registered formats in detection order (raw last)."""
    return tuple(sorted(_REGISTRY, key=lambda s: s.name in ("raw", "split")))


def _by_name(name: str) -> FormatSpec:
    key = name.strip().lower()
    for s in _REGISTRY:
        if key == s.name or key in s.aliases:
            return s
    names = ", ".join(s.name for s in formats())
    raise UsageError(f"unknown image format '{name}' (known: {names})")


def _head(path: Path, n: int = 16) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError as exc:
        raise ImageReadError(f"cannot read '{path}': {exc.strerror}", path=path, errno_=exc.errno) from None


def detect(paths: Sequence[StrPath]) -> FormatSpec:
    """Find the format of an image from the content of its first file.

    Raises:
        ImageNotFoundError, ImageReadError: the file is missing, a directory, or unreadable.
    """
    first = check_input_file(paths[0])
    head = _head(first)
    for spec in formats():
        if any(head.startswith(sig) for sig in spec.signatures):
            return spec
    return _by_name("raw")


def open(
    source: StrPath | Sequence[StrPath],
    *,
    format: str | None = None,
    zero_fill: bool = False,
    **options: Any,
) -> Image:
    """Open an image of any supported format, read-only.

    Args:
        source: a path (any segment of a segmented image), or the list of segment paths in order.
        format: force a format (``raw``, ``split``, ``ewf``, ``fimg``) instead of detecting it.
        zero_fill: read chunks that fail their check as zeros and record the fault in ``image.faults``,
            instead of raising :class:`~forensimg.errors.ChecksumError`.
        **options: format-specific options.

    Returns:
        An :class:`~forensimg.image.Image`; use it as a context manager.

    Raises:
        ImageNotFoundError: the file does not exist.
        ImageReadError: it cannot be read (a directory, no permission, I/O error).
        FormatError: it is not a valid image of the detected format (or is empty).
    """
    if isinstance(source, str | os.PathLike):
        paths = [Path(source)]
    else:
        paths = [Path(p) for p in source]
        if not paths:
            raise UsageError("no image path given")
    for p in paths:
        check_input_file(p)
    spec = _by_name(format) if format else detect(paths)
    return spec.load().open_image(paths, zero_fill=zero_fill, **options)


def format_for_path(path: StrPath) -> FormatSpec:
    """The output format an extension selects (``.E01`` → ewf, ``.fimg`` → fimg, ``.001`` → split, ...)."""
    name = Path(path).name.lower()
    suffix = Path(name).suffix
    for spec in formats():
        for ext in spec.extensions:
            if suffix == ext or (ext.startswith(".#") and suffix[1:].isdigit() and len(suffix) >= 4):
                return spec
    raise UsageError(
        f"cannot tell the output format from the name '{Path(path).name}': give --format "
        f"({', '.join(s.name for s in formats())})"
    )


def create(path: StrPath, *, format: str | None = None, **options: Any) -> ImageWriter:
    """Create a writer for a new image.

    Args:
        path: output path (first segment).
        format: ``raw``, ``split``, ``ewf`` or ``fimg``; by default from the extension.
        **options: writer options: ``case``, ``source``, ``sector_size``, ``hashes``, ``segment_size``,
            ``compression``, ``chunk_size`` ... (see each format's writer).

    Returns:
        An :class:`~forensimg.writer.ImageWriter`; use it as a context manager.
    """
    spec = _by_name(format) if format else format_for_path(path)
    for k, v in spec.write_defaults:
        options.setdefault(k, v)
    return spec.load().create_writer(Path(path), **options)


register(
    FormatSpec(
        name="raw",
        module="forensimg.formats.raw",
        extensions=(".raw", ".dd", ".img", ".bin", ".dmg"),
        aliases=("dd",),
        description="raw (dd) image: one file",
    )
)
register(
    FormatSpec(
        name="split",
        module="forensimg.formats.raw",
        extensions=(".#",),
        aliases=("split-raw", "split_raw"),
        description="split raw set (.001/.002…, .000…, .aa/.ab…)",
        write_defaults=(("segment_size", 2 << 30),),
    )
)
register(
    FormatSpec(
        name="fimg",
        module="forensimg.formats.fimg",
        signatures=(FIMG_MAGIC,),
        extensions=(".fimg",),
        description="fimg: forensimg chunked container (SHA-256 per chunk, Merkle root)",
    )
)
register(
    FormatSpec(
        name="ewf",
        module="forensimg.formats.ewf",
        signatures=EWF_SIGNATURES,
        extensions=(".e01",),
        aliases=("e01", "encase", "encase6"),
        description="EWF / E01 (EnCase 6 layout when writing)",
    )
)
