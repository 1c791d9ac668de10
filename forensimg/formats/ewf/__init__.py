"""EWF (Expert Witness Format) images: reading E01/s01 (EWF1) and Ex01 (EWF2), writing E01 (EnCase 6 layout).

Module entry points used by :mod:`forensimg.registry`:

* :func:`open_image` — read an E01 / s01 / e01 set (:class:`~forensimg.formats.ewf.reader.EWFImage`) or an
  Ex01 set (:class:`~forensimg.formats.ewf.ewf2.EWF2Image`);
* :func:`create_writer` — write an E01 set (:mod:`forensimg.formats.ewf.writer`, imported lazily).

The format as forensimg reads and writes it is described in ``formats/ewf/spec.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forensimg.image import Image
from forensimg.writer import ImageWriter

__all__ = ["create_writer", "open_image"]


def open_image(paths: Sequence[Path], *, zero_fill: bool = False, **options: Any) -> Image:
    """Open an E01/s01/e01 or Ex01 image given any one of its segments, or all of them.

    Args:
        paths: one segment (the others are found next to it) or every segment.
        zero_fill: read chunks that fail their check as zeros and record them in ``image.faults``.
        **options: ``codepage`` of the 8-bit ``header`` text (default ``cp1252``).

    Raises:
        FormatError: not a readable EWF1 image (checksums, structure), with file and offset.
        MissingSegmentError: a segment is missing, duplicated or misnumbered.
        UnsupportedFormatError: Lx01, L01, AD-encrypted, encrypted or bzip2 Ex01 files.
    """
    from forensimg.formats.ewf.reader import open_image as _open

    return _open(paths, zero_fill=zero_fill, **options)


def create_writer(path: Path, **options: Any) -> ImageWriter:
    """Create an E01 writer (see :func:`forensimg.formats.ewf.writer.create_writer`)."""
    writer = importlib.import_module("forensimg.formats.ewf.writer")
    result: ImageWriter = writer.create_writer(path, **options)
    return result
