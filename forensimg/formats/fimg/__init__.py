"""fimg: forensimg's chunked evidence container (normative spec: ``formats/fimg/spec.md``).

SHA-256 per chunk (over the decoded data), a Merkle root over the chunk digests, per-chunk zstd/zlib
compression, segments, and crash-safe append-only writing with checkpoints and resume::

    from forensimg.formats import fimg
    with fimg.create_writer(Path("disk.fimg")) as w:    # 16 KiB chunks, zlib (ISA-L), SHA-256
        w.write(data)
    w = fimg.resume_writer("disk.fimg")     # after a crash: continue from w.position
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forensimg.formats.fimg.reader import FimgImage, open_image
from forensimg.formats.fimg.writer import FimgWriter, resume_writer

__all__ = ["FimgImage", "FimgWriter", "create_writer", "open_image", "resume_writer"]


def create_writer(path: Path, **options: Any) -> FimgWriter:
    """Registry entry point: a new :class:`FimgWriter` (see its arguments)."""
    return FimgWriter(path, **options)
