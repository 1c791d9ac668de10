#!/usr/bin/env python3
"""Deterministic generator of forensimg's canonical test media.

Usage::

    python testdata/generate.py [OUTDIR]        # default OUTDIR: the folder of this script

writes ``OUTDIR/canonical.raw`` (1,049,600 bytes) and prints its size and SHA-256.  The
committed ``testdata/canonical.raw`` and the hashes in ``testdata/MANIFEST.json`` were made
this way; ``tests/test_testdata.py`` checks that a fresh run reproduces them byte for byte.

Layout of the media (every generated image uses the same scheme)
---------------------------------------------------------------

* The media is a run of 512-byte sectors.  Sector ``lba`` starts with the 17-byte ASCII
  stamp ``b"LBA %012d\\n" % lba``, so any offset bug shows up as a wrong LBA in the data.
* The remaining 495 bytes of each sector depend on the 32 KiB *region* (64 sectors) the
  sector lies in.  Region ``i`` has kind ``REGION_KINDS[i % 3]``:

  - ``zero``: all zero after the stamp (compresses to almost nothing),
  - ``random``: pseudo-random bytes from ``random.Random(seed).randbytes`` (incompressible),
  - ``text``: repeating ASCII text lines that name the region (compresses well).

* ``canonical.raw`` is 2050 sectors (seed 20261128): 32 full regions and a 2-sector tail,
  so it is not a multiple of 64 KiB and the last chunk of most chunk sizes is partial.

The generator is prefix-stable: ``make_lba_stamped(n, seed)[:m] == make_lba_stamped(m, seed)``
for ``m <= n``, because the random stream is drawn one whole region at a time in order.
Larger inputs can therefore be built at test time, e.g. from a test::

    spec = importlib.util.spec_from_file_location("fimg_testdata_generate", path_to_this_file)
    gen = importlib.util.module_from_spec(spec); spec.loader.exec_module(gen)
    data = gen.make_lba_stamped(64 << 20, seed=1)

Only the standard library is used for generation.  ``random.Random.randbytes`` is not
formally guaranteed to give the same bytes on every future Python version; the SHA-256
pinned in ``MANIFEST.json`` (and the reproduction test) would catch such a change.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "CANONICAL_NAME",
    "CANONICAL_SEED",
    "CANONICAL_SIZE",
    "REGION_KINDS",
    "REGION_SIZE",
    "SECTORS_PER_REGION",
    "SECTOR_SIZE",
    "STAMP_SIZE",
    "derive_raw_from_ewf",
    "main",
    "make_canonical",
    "make_lba_stamped",
    "region_kind",
    "stamp",
    "write_canonical",
]

SECTOR_SIZE = 512
REGION_SIZE = 32 * 1024
SECTORS_PER_REGION = REGION_SIZE // SECTOR_SIZE
STAMP_SIZE = 17  # len(b"LBA %012d\n" % lba)
BODY_SIZE = SECTOR_SIZE - STAMP_SIZE
REGION_KINDS: tuple[str, ...] = ("zero", "random", "text")

CANONICAL_NAME = "canonical.raw"
CANONICAL_SEED = 20261128
CANONICAL_SIZE = 2050 * SECTOR_SIZE  # 1,049,600 bytes: 32 regions of 32 KiB + 2 sectors

_WORDS = (
    b"acquire", b"verify", b"sector", b"chunk", b"segment", b"digest", b"evidence",
    b"examiner", b"custody", b"volume", b"partition", b"cluster", b"inode", b"journal",
)


def stamp(lba: int) -> bytes:
    """Return the 17-byte stamp that starts sector ``lba``."""
    return b"LBA %012d\n" % lba


def region_kind(index: int) -> str:
    """Return the content kind (``zero``/``random``/``text``) of 32 KiB region ``index``."""
    return REGION_KINDS[index % len(REGION_KINDS)]


def _text_body(region: int) -> bytes:
    """Return ``SECTORS_PER_REGION * BODY_SIZE`` bytes of repeating text lines for a region."""
    need = SECTORS_PER_REGION * BODY_SIZE
    lines: list[bytes] = []
    total = 0
    line_no = 0
    while total < need:
        word = _WORDS[(region + line_no) % len(_WORDS)]
        line = b"region %06d line %04d: forensimg canonical text, %s %s %s\n" % (
            region, line_no, word, word, word,
        )
        lines.append(line)
        total += len(line)
        line_no += 1
    return b"".join(lines)[:need]


def make_lba_stamped(size: int, seed: int) -> bytes:
    """Build ``size`` bytes of LBA-stamped media with mixed region kinds.

    Args:
        size: number of bytes; need not be a multiple of the sector size (the last sector
            is then cut short).
        seed: seed of the ``random.Random`` that fills the ``random`` regions.

    Returns:
        The media bytes.  The same ``(size, seed)`` always gives the same bytes, and a
        shorter size gives a prefix of a longer one.

    Raises:
        ValueError: if ``size`` is negative.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    rng = random.Random(seed)
    zero_body = bytes(BODY_SIZE)
    sectors = -(-size // SECTOR_SIZE)
    out = bytearray()
    region = -1
    body = b""
    for lba in range(sectors):
        this_region = lba // SECTORS_PER_REGION
        if this_region != region:
            region = this_region
            kind = region_kind(region)
            if kind == "random":
                # always draw a whole region so that the stream stays prefix-stable
                body = rng.randbytes(SECTORS_PER_REGION * BODY_SIZE)
            elif kind == "text":
                body = _text_body(region)
            else:
                body = b""
        out += stamp(lba)
        if body:
            start = (lba % SECTORS_PER_REGION) * BODY_SIZE
            out += body[start:start + BODY_SIZE]
        else:
            out += zero_body
    del out[size:]
    return bytes(out)


def make_canonical(size: int = CANONICAL_SIZE) -> bytes:
    """Return the canonical media (``canonical.raw`` for the default size).

    Args:
        size: number of bytes; other sizes give a prefix or an extension of the same stream.

    Returns:
        ``make_lba_stamped(size, CANONICAL_SEED)``.
    """
    return make_lba_stamped(size, CANONICAL_SEED)


def write_canonical(outdir: str | os.PathLike[str]) -> Path:
    """Write ``canonical.raw`` into ``outdir`` (created if needed) and return its path.

    The file is written to a temporary name and moved into place, so a reader never sees a
    half-written file.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / CANONICAL_NAME
    tmp = out / (CANONICAL_NAME + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(make_canonical())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target


def derive_raw_from_ewf(segments: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Export the media of an EWF image to a raw file with pyewf (libewf-python).

    Used by tests to rebuild ``disk_mbr.raw`` (not committed) from ``disk_mbr.E01``.  This
    is the only function here that needs a third-party module; it is imported lazily.

    Args:
        segments: the segment files (``pyewf.glob`` output or an explicit list).
        out: path of the raw file to write.

    Returns:
        The path written.

    Raises:
        ImportError: if pyewf is not installed.
    """
    import pyewf  # optional oracle dependency, imported lazily

    handle = pyewf.handle()
    handle.open([os.fspath(p) for p in segments])
    try:
        remaining = handle.get_media_size()
        target = Path(out)
        with open(target, "wb") as fh:
            while remaining > 0:
                data = handle.read(min(remaining, 1 << 20))
                if not data:
                    raise OSError(f"pyewf returned no data with {remaining} bytes of media left")
                fh.write(data)
                remaining -= len(data)
    finally:
        handle.close()
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``generate.py [OUTDIR]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print(__doc__.split("\n\n", 2)[1] if __doc__ else "usage: generate.py [OUTDIR]")
        return 0 if args and args[0] in ("-h", "--help") else 2
    outdir = Path(args[0]) if args else Path(__file__).resolve().parent
    path = write_canonical(outdir)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}: {path.stat().st_size} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
