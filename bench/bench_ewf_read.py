#!/usr/bin/env python3
"""Benchmark: reading an E01 with forensimg compared with pyewf (libewf-python), side by side.

Usage::

    python bench/bench_ewf_read.py [--size 1G] [--seed 1] [--input FILE] [--repeat 3]
                                   [--random-reads 20000] [--json-out FILE]

1. Input: ``bench/gen_input.py`` output (40 % zero, 30 % random, 30 % compressible), cached as
   ``bench/out/hash-input-<size>-s<seed>-g<generator version>.bin`` (the file ``bench_hash.py`` uses)
   and reused when present; ``--input`` uses an existing file instead (read only, never deleted).
2. Image: ``ewfacquire -u -q -f encase6 -c fast -d sha1`` of that input (one segment: the 1.4 GiB
   default segment size), written to ``bench/out/ewf-read-<size>-s<seed>-fast.E01`` and reused.
3. Every file is read once to warm the page cache.
4. Sequential: the whole media in 1 MiB reads, forensimg ``Image.read`` vs pyewf ``handle.read``
   (plus forensimg ``scan_chunks(workers=2)`` for reference). Both must give the same MD5.
5. Random: ``--random-reads`` reads of 4 KiB at seeded random 4 KiB-aligned offsets (the same list for
   both), on a freshly opened image each round. Results are compared for equality.

Best of ``--repeat`` rounds (the rounds take turns between the readers); MB/s = 10**6 bytes/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

from _common import (
    OUT_DIR,
    Column,
    add_common_options,
    ewfacquire_cached,
    import_forensimg,
    interleave,
    open_pyewf,
    prepare_input,
    random_offsets,
    size_label,
    text_table,
    warm_cache,
    write_json,
)

BLOCK = 1 << 20


def prepare(size: int, seed: int, given: Path | None) -> tuple[Path, Path]:
    """The input (``given``, or the cached benchmark input) and its cached ``ewfacquire -c fast`` E01."""
    src = given or prepare_input(size, seed).path
    e01 = ewfacquire_cached(
        src, OUT_DIR / f"ewf-read-{size}-s{seed}-fast.E01", "-q", "-f", "encase6", "-c", "fast", "-d", "sha1"
    )
    return src, e01


def _table(title: str, unit: str, unit_spec: str, rows: list[tuple[str, float, float, float]]) -> str:
    columns = (Column(title, 30, align="<"), Column("best s", 9, ".2f"), Column(unit, 9, unit_spec),
               Column("x pyewf", 9, ".2f"))  # fmt: skip
    return text_table(columns, rows, sep="", rule=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_options(ap)
    ap.add_argument("--input", type=Path, default=None, help="read this file instead of the generated input")
    ap.add_argument("--random-reads", type=int, default=20000, help="random 4 KiB reads per round (default 20000)")
    args = ap.parse_args(argv)

    forensimg = import_forensimg()
    size = args.size
    src, e01 = prepare(size, args.seed, args.input)
    warm_cache(e01)

    def fi_seq() -> str:
        h = hashlib.md5()
        with forensimg.open(e01) as img:
            while True:
                b = img.read(BLOCK)
                if not b:
                    break
                h.update(b)
        return h.hexdigest()

    def fi_scan() -> str:
        h = hashlib.md5()
        with forensimg.open(e01) as img:
            for _, data, fault in img.scan_chunks(workers=2):
                assert fault is None
                h.update(data)
        return h.hexdigest()

    def ewf_seq() -> str:
        h = hashlib.md5()
        with open_pyewf(e01) as handle:
            left = handle.get_media_size()
            while left > 0:
                b = handle.read(min(BLOCK, left))
                if not b:
                    break
                h.update(b)
                left -= len(b)
        return h.hexdigest()

    with forensimg.open(e01) as img:
        media = img.size
    offsets = random_offsets(media, args.random_reads, args.seed)

    def fi_rand() -> str:
        h = hashlib.md5()
        with forensimg.open(e01) as img:
            for off in offsets:
                h.update(img.read_at(off, 4096))
        return h.hexdigest()

    def ewf_rand() -> str:
        h = hashlib.md5()
        with open_pyewf(e01) as handle:
            for off in offsets:
                handle.seek(off)
                h.update(handle.read(4096))
        return h.hexdigest()

    # every round: the sequential readers, then the random ones
    runs = interleave(
        {
            ("seq", "pyewf"): ewf_seq,
            ("seq", "forensimg"): fi_seq,
            ("seq", "forensimg scan_chunks(2)"): fi_scan,
            ("rand", "pyewf"): ewf_rand,
            ("rand", "forensimg"): fi_rand,
        },
        args.repeat,
    )
    digests: dict[str, set[str]] = {"seq": set(), "rand": set()}
    best: dict[str, dict[str, float]] = {"seq": {}, "rand": {}}
    for (kind, name), rs in runs.items():
        digests[kind].update(r.result for r in rs)
        best[kind][name] = min(r.wall for r in rs)
    if len(digests["seq"]) != 1 or len(digests["rand"]) != 1:
        print(f"MISMATCH between readers: {digests}", file=sys.stderr)
        return 1

    report: dict[str, Any] = {
        "input": str(src),
        "image": str(e01),
        "image_bytes": e01.stat().st_size,
        "media_bytes": media,
        "media_md5": next(iter(digests["seq"])),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "sequential": {},
        "random_4k": {},
    }
    print(f"E01 {e01.name}: media {media / 1e6:.0f} MB, file {e01.stat().st_size / 1e6:.0f} MB, warm cache")
    rows = []
    base = best["seq"]["pyewf"]
    for name, t in best["seq"].items():
        report["sequential"][name] = {"best_s": t, "mb_s": media / t / 1e6, "ratio": base / t}
        rows.append((name, t, media / t / 1e6, base / t))
    print(_table("sequential (1 MiB reads)", "MB/s", ".0f", rows))
    rows = []
    base = best["rand"]["pyewf"]
    n = len(offsets)
    for name, t in best["rand"].items():
        report["random_4k"][name] = {"best_s": t, "reads_s": n / t, "ratio": base / t}
        rows.append((name, t, n / t, base / t))
    print(_table("random 4 KiB reads", "reads/s", ".0f", rows))
    out = args.json_out or OUT_DIR / f"bench_ewf_read-{size_label(size)}.json"
    write_json(out, report)
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
