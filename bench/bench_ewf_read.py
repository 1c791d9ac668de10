#!/usr/bin/env python3
"""Benchmark: reading an E01 with forensimg compared with pyewf (libewf-python), side by side.

Usage::

    python bench/bench_ewf_read.py [--size 1G] [--seed 1] [--input FILE] [--repeat 3]
                                   [--random-reads 20000] [--json-out FILE]

1. Input: ``bench/gen_input.py`` output (40 % zero, 30 % random, 30 % compressible), written to
   ``bench/out/ewf-read-input-<size>-s<seed>.bin`` and reused when present; ``--input`` uses an
   existing file instead (read only, never deleted).
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
import importlib.util
import json
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
BLOCK = 1 << 20


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("forensimg_bench_gen_input", HERE / "gen_input.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def warm(paths: list[Path]) -> None:
    for p in paths:
        with p.open("rb") as f:
            while f.read(8 << 20):
                pass


def prepare(size: int, seed: int, given: Path | None) -> tuple[Path, Path]:
    OUT.mkdir(exist_ok=True)
    tag = f"{size}-s{seed}"
    src = given or OUT / f"ewf-read-input-{tag}.bin"
    if not src.exists():
        print(f"generating {src} ...", flush=True)
        _gen().generate(src, size, seed)
    e01 = OUT / f"ewf-read-{tag}-fast.E01"
    if not e01.exists():
        print(f"ewfacquire -> {e01} ...", flush=True)
        target = OUT / f"ewf-read-{tag}-fast.part"
        subprocess.run(
            ["ewfacquire", "-u", "-q", "-t", str(target), "-f", "encase6", "-c", "fast", "-d", "sha1", str(src)],
            check=True,
            capture_output=True,
        )
        Path(str(target) + ".E01").rename(e01)  # ewfacquire appends .E01 to the target
    return src, e01


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1G")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--input", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--random-reads", type=int, default=20000)
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)

    import pyewf

    import forensimg

    size = _gen().parse_size(args.size)
    src, e01 = prepare(size, args.seed, args.input)
    warm([e01])

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
        handle = pyewf.handle()
        handle.open([str(e01)])
        try:
            left = handle.get_media_size()
            while left > 0:
                b = handle.read(min(BLOCK, left))
                if not b:
                    break
                h.update(b)
                left -= len(b)
        finally:
            handle.close()
        return h.hexdigest()

    with forensimg.open(e01) as img:
        media = img.size
    rng = random.Random(args.seed)
    offsets = [rng.randrange(0, media // 4096) * 4096 for _ in range(args.random_reads)]

    def fi_rand() -> str:
        h = hashlib.md5()
        with forensimg.open(e01) as img:
            for off in offsets:
                h.update(img.read_at(off, 4096))
        return h.hexdigest()

    def ewf_rand() -> str:
        h = hashlib.md5()
        handle = pyewf.handle()
        handle.open([str(e01)])
        try:
            for off in offsets:
                handle.seek(off)
                h.update(handle.read(4096))
        finally:
            handle.close()
        return h.hexdigest()

    seq: dict[str, list[float]] = {"pyewf": [], "forensimg": [], "forensimg scan_chunks(2)": []}
    rand: dict[str, list[float]] = {"pyewf": [], "forensimg": []}
    digests: dict[str, set[str]] = {"seq": set(), "rand": set()}
    for _ in range(args.repeat):
        for name, fn in (("pyewf", ewf_seq), ("forensimg", fi_seq), ("forensimg scan_chunks(2)", fi_scan)):
            t, d = best(fn, 1)
            seq[name].append(t)
            digests["seq"].add(d)
        for name, fn in (("pyewf", ewf_rand), ("forensimg", fi_rand)):
            t, d = best(fn, 1)
            rand[name].append(t)
            digests["rand"].add(d)
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
    print(f"{'sequential (1 MiB reads)':<30}{'best s':>9}{'MB/s':>9}{'x pyewf':>9}")
    base = min(seq["pyewf"])
    for name, ts in seq.items():
        t = min(ts)
        report["sequential"][name] = {"best_s": t, "mb_s": media / t / 1e6, "ratio": base / t}
        print(f"{name:<30}{t:>9.2f}{media / t / 1e6:>9.0f}{base / t:>9.2f}")
    print(f"{'random 4 KiB reads':<30}{'best s':>9}{'reads/s':>9}{'x pyewf':>9}")
    base = min(rand["pyewf"])
    n = len(offsets)
    for name, ts in rand.items():
        t = min(ts)
        report["random_4k"][name] = {"best_s": t, "reads_s": n / t, "ratio": base / t}
        print(f"{name:<30}{t:>9.2f}{n / t:>9.0f}{base / t:>9.2f}")
    out = args.json_out or OUT / f"bench_ewf_read-{args.size}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
