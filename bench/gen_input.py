#!/usr/bin/env python3
"""Deterministic benchmark input: a disk-like mix of zero, random and compressible regions.

Usage::

    python bench/gen_input.py OUT [--size 1G] [--seed 1]

The file is a run of regions whose offsets are 4 KiB aligned and whose lengths follow a
log-uniform distribution between 4 KiB and 8 MiB, in multiples of 4 KiB. For inputs under
128 MiB the upper bound shrinks to ``size / 16`` so that the mix still settles. Each region has
one of three kinds, picked so that the *bytes* come out at about

* 40 % ``zero``: all zero bytes (unused space),
* 30 % ``random``: incompressible bytes (SHAKE-128 output keyed by seed and region),
* 30 % ``compressible``: one of four sub-kinds per region:
  ``log`` (timestamped log lines), ``words`` (word salad from a fixed vocabulary),
  ``records`` (struct-packed binary records) or ``fill`` (short repeating byte patterns).

The kind of each region is drawn at random, weighted by how far each kind lags behind its
byte target. Region boundaries rarely fall on 64 KiB, so many 64 KiB chunks straddle two kinds.
The same ``(size, seed)`` always gives the same bytes. The content of a region depends only on
the seed and the region's index, and the layout depends only on the seed and the size.

``generate(path, size, seed)`` returns a summary dict: bytes per kind and sub-kind, plus the
region list. The module only uses the standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import re
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "ALIGN",
    "KIND_WEIGHTS",
    "MAX_REGION",
    "MIN_REGION",
    "SUBKINDS",
    "Region",
    "count_bytes",
    "generate",
    "main",
    "parse_size",
    "plan_regions",
    "region_content",
]

ALIGN = 4096
MIN_REGION = 4 * 1024
MAX_REGION = 8 * 1024 * 1024
KIND_WEIGHTS: dict[str, float] = {"zero": 0.40, "random": 0.30, "compressible": 0.30}
SUBKINDS: tuple[str, ...] = ("log", "words", "records", "fill")
GENERATOR_VERSION = 1  # bump when the byte stream changes (bench_hash.py uses it to invalidate its cache)

_ZEROS = bytes(1 << 20)
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

_VOCAB = (
    "sector", "chunk", "segment", "image", "evidence", "volume", "cluster", "journal", "inode",
    "partition", "offset", "digest", "verify", "acquire", "custody", "examiner", "device", "block",
    "header", "footer", "table", "index", "record", "entry", "deleted", "allocated", "file", "folder",
    "the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "with", "as", "by", "at", "from",
    "report", "case", "notes", "hash", "write", "read", "mount", "error", "warning", "update", "kernel",
)
_SERVICES = ("sshd", "kernel", "systemd", "cron", "nginx", "postfix", "dockerd", "auditd")
_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "NOTICE", "WARN", "ERROR")
_MESSAGES = (
    "session opened for user %s by uid %d",
    "connection from %s at 10.%d.%d.%d",
    "request %s completed in %d ms",
    "disk %s: read %d sectors at lba %d",
    "job %s finished with status %d",
    "cache miss for key %s (%d entries)",
)
_FILL_PATTERNS = (
    b"\xff",
    b"\xde\xad\xbe\xef",
    b"\x00\x00\x00\x01",
    bytes(range(256)),
    b"\xf6",
    b"EMPTY SPACE ",
    b"\x55\xaa",
)
_RECORD = struct.Struct("<4sIQqHH8s16s")  # 48 bytes: magic, id, lba, time, flags, type, tag, name


class Region(NamedTuple):
    """One region of the benchmark input."""

    offset: int
    length: int
    kind: str  # "zero" | "random" | "compressible"
    subkind: str  # kind for zero/random; log | words | records | fill for compressible


def parse_size(text: str) -> int:
    """Parse ``64M``, ``1G``, ``512KiB``, ``4096`` (binary units) into a byte count.

    Raises:
        ValueError: if the text is not a size.
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 64M, 1G, 4096)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def _max_region(size: int) -> int:
    return max(MIN_REGION, min(MAX_REGION, (size // 16) // ALIGN * ALIGN))


def plan_regions(size: int, seed: int) -> list[Region]:
    """Lay out the regions of a ``size``-byte input (no content is generated).

    Args:
        size: total bytes (>= 0).
        seed: layout seed.

    Returns:
        Contiguous regions covering ``[0, size)``. All offsets are multiples of 4 KiB, and
        so are all lengths except possibly the last one.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    rng = random.Random(f"forensimg-bench-layout:{seed}")
    kinds = tuple(KIND_WEIGHTS)
    hi = _max_region(size) // ALIGN
    log_hi = math.log(hi)
    done = dict.fromkeys(kinds, 0)
    regions: list[Region] = []
    pos = 0
    while pos < size:
        units = min(hi, max(1, int(math.exp(rng.uniform(0.0, log_hi)) + 0.5)))
        length = min(units * ALIGN, size - pos)
        # weight each kind by how many bytes it lacks (after this region) to reach its target,
        # with a small floor so every kind stays possible
        end = pos + length
        weights = [max(KIND_WEIGHTS[k] * end - done[k], 0) + 0.05 * length for k in kinds]
        kind = rng.choices(kinds, weights)[0]
        subkind = rng.choice(SUBKINDS) if kind == "compressible" else kind
        regions.append(Region(pos, length, kind, subkind))
        done[kind] += length
        pos = end
    return regions


def _random_bytes(seed: int, index: int, length: int) -> bytes:
    key = b"forensimg-bench-random:%d:%d" % (seed, index)
    return hashlib.shake_128(key).digest(length)


def _log_lines(rng: random.Random, length: int) -> Iterator[bytes]:
    t = 1_764_300_000 + rng.randrange(86_400 * 365)  # seconds since the epoch, late 2025 / 2026
    usec = rng.randrange(1_000_000)
    prefix_t = -1
    prefix = ""
    vocab, services, levels = _VOCAB, _SERVICES, _LEVELS
    messages = [(m, m.count("%")) for m in _MESSAGES]
    nv, ns, nl, nm = len(vocab), len(services), len(levels), len(messages)
    produced = 0
    while produced < length:
        lines = []
        # one 64-bit random draw per line, sliced into the line's fields
        for v in memoryview(rng.randbytes(8 * 2048)).cast("Q"):
            usec += (v & 0x3FFFF) + 1  # up to ~0.26 s between lines
            if usec >= 1_000_000:
                t += usec // 1_000_000
                usec %= 1_000_000
            if t != prefix_t:
                prefix_t = t
                tm = time.gmtime(t)
                prefix = (
                    f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:"
                    f"{tm.tm_sec:02d}"
                )
            msg, nargs = messages[(v >> 18) % nm]
            args = (vocab[(v >> 22) % nv], (v >> 28) & 0xFFFF, (v >> 44) & 0xFF, (v >> 52) & 0xFF)
            lines.append(
                f"{prefix}.{usec:06d}Z host{(v >> 60):02d} {services[(v >> 30) % ns]}[{100 + ((v >> 33) & 0x7FFF)}]: "
                f"{levels[(v >> 40) % nl]} {msg % args[:nargs]}\n"
            )
        block = "".join(lines).encode("ascii")
        produced += len(block)
        yield block


def _words(rng: random.Random, length: int) -> Iterator[bytes]:
    produced = 0
    while produced < length:
        words = rng.choices(_VOCAB, k=65536)
        for i in range(11, len(words), 12):
            words[i] += ".\n"
        block = " ".join(words).encode("ascii")
        produced += len(block)
        yield block


_TAGS = tuple(b"\x00\x00\x00\x00" + bytes((i,)) * 4 for i in range(256))


def _records(rng: random.Random, length: int) -> Iterator[bytes]:
    pack = _RECORD.pack
    tags = _TAGS
    rec_id = rng.randrange(1 << 20)
    lba = rng.randrange(1 << 30)
    stamp = 1_700_000_000_000 + rng.randrange(1 << 32)
    produced = 0
    while produced < length:
        out = []
        # one 32-bit random draw per record: time step, flags, type and tag
        for v in memoryview(rng.randbytes(4 * 4096)).cast("I"):
            rec_id += 1
            lba += 8
            stamp += v & 0x3FF
            name = b"file%06d.dat" % (rec_id % 1_000_000)
            out.append(pack(b"REC1", rec_id, lba, stamp, (v >> 10) & 0xFFF, v >> 28, tags[(v >> 20) & 0xFF], name))
        block = b"".join(out)
        produced += len(block)
        yield block


def _fill(rng: random.Random, length: int) -> Iterator[bytes]:
    pattern = rng.choice(_FILL_PATTERNS)
    block = pattern * ((1 << 20) // len(pattern) + 1)
    produced = 0
    while produced < length:
        produced += len(block)
        yield block


_COMPRESSIBLE = {"log": _log_lines, "words": _words, "records": _records, "fill": _fill}


def region_content(region: Region, index: int, seed: int) -> Iterator[bytes | memoryview]:
    """Yield the bytes of ``region`` (the ``index``-th region) in blocks of at most ~8 MiB."""
    remaining = region.length
    if region.kind == "zero":
        while remaining:
            n = min(remaining, len(_ZEROS))
            yield memoryview(_ZEROS)[:n]
            remaining -= n
        return
    if region.kind == "random":
        yield _random_bytes(seed, index, region.length)
        return
    rng = random.Random(f"forensimg-bench-content:{seed}:{index}")
    for block in _COMPRESSIBLE[region.subkind](rng, remaining):
        piece = block[:remaining]
        yield piece
        remaining -= len(piece)
        if not remaining:
            return


def count_bytes(regions: Sequence[Region]) -> tuple[dict[str, int], dict[str, int]]:
    """Bytes per kind and bytes per sub-kind (``zero``, ``random`` and the compressible sub-kinds)."""
    per_kind = dict.fromkeys(KIND_WEIGHTS, 0)
    per_sub = dict.fromkeys(("zero", "random", *SUBKINDS), 0)
    for r in regions:
        per_kind[r.kind] += r.length
        per_sub[r.subkind] += r.length
    return per_kind, per_sub


def generate(path: str | os.PathLike[str], size: int, seed: int = 1) -> dict[str, Any]:
    """Write the benchmark input to ``path`` (through a temporary file, then renamed).

    Args:
        path: output file.
        size: bytes to write.
        seed: selects layout and content; the same (size, seed) gives the same bytes.

    Returns:
        ``{"path", "size", "seed", "generator_version", "seconds", "bytes_per_kind",
        "bytes_per_subkind", "regions"}``, where ``regions`` is a list of
        ``(offset, length, kind, subkind)`` tuples.
    """
    started = time.perf_counter()
    regions = plan_regions(size, seed)
    target = Path(path)
    tmp = target.with_name(target.name + ".part")
    buf = bytearray()
    flush_at = 16 << 20
    with open(tmp, "wb", buffering=0) as fh:
        for index, region in enumerate(regions):
            for block in region_content(region, index, seed):
                buf += block
                if len(buf) >= flush_at:
                    fh.write(buf)
                    buf.clear()
        if buf:
            fh.write(buf)
        written = fh.tell()
    if written != size:  # pragma: no cover - guards the generator itself
        tmp.unlink()
        raise RuntimeError(f"generator bug: wrote {written} bytes, expected {size}")
    os.replace(tmp, target)
    per_kind, per_sub = count_bytes(regions)
    return {
        "path": str(target),
        "size": size,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "seconds": time.perf_counter() - started,
        "bytes_per_kind": per_kind,
        "bytes_per_subkind": per_sub,
        "regions": [tuple(r) for r in regions],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Render the per-kind byte counts of a :func:`generate` result as text."""
    size = summary["size"] or 1
    head = (
        f"{summary['path']}: {summary['size']:,} bytes, seed {summary['seed']}, "
        f"{len(summary['regions'])} regions, {summary['seconds']:.1f} s"
    )
    lines = [head]
    for name, count in summary["bytes_per_subkind"].items():
        kind = name if name in KIND_WEIGHTS else f"  compressible/{name}"
        lines.append(f"  {kind:<24} {count:>15,} bytes  {100 * count / size:5.1f} %")
    comp = summary["bytes_per_kind"]["compressible"]
    lines.append(f"  {'compressible (total)':<24} {comp:>15,} bytes  {100 * comp / size:5.1f} %")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Write the deterministic forensimg benchmark input.")
    parser.add_argument("out", type=Path, help="output file")
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="e.g. 64M, 1G (default 1G)")
    parser.add_argument("--seed", type=int, default=1, help="layout/content seed (default 1)")
    args = parser.parse_args(argv)
    summary = generate(args.out, args.size, args.seed)
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
