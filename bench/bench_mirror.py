#!/usr/bin/env python3
"""Mirroring cost: ``forensimg acquire SRC A`` vs ``forensimg acquire SRC A --mirror B``.

Usage::

    python bench/bench_mirror.py [--size 1G] [--seed 1] [--repeat 3] [--formats raw,fimg,E01]
                                 [--second-dir DIR] [--json-out FILE]

For each format, each round times (taking turns) one target and two targets (the second with
``--mirror``), both from the same cached input (bench/gen_input.py; the page cache is warmed first, so
the source reads from RAM as a fast disk would deliver it). Outputs are deleted and the file systems
synced before each run. The source is read and hashed once in both cases; what mirroring adds is the
second writer's work (the writes; since same-format targets share one writer that encodes once, no
second compression for E01/fimg). The overhead is ``best(two) / best(one) - 1``; the issue asks for at
most 10 %. CPU seconds (user + system of the acquire process) are reported too: on a machine loaded by
other work they show the cost better than wall time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
EXT = {"raw": ".raw", "fimg": ".fimg", "e01": ".E01", "ewf": ".E01"}


def _load_gen_input() -> ModuleType:
    spec = importlib.util.spec_from_file_location("forensimg_bench_gen_input", BENCH_DIR / "gen_input.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare_input(size: int, seed: int, gen: ModuleType) -> Path:
    """The cached raw benchmark input (same file as bench_hash.py uses)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"hash-input-{size}-s{seed}-g{gen.GENERATOR_VERSION}.bin"
    if not (path.exists() and path.stat().st_size == size):
        gen.generate(path, size, seed)
    return path


def warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(8 << 20):
            pass


def acquire(src: Path, targets: list[Path], extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "forensimg", "--no-custody", "acquire", str(src), str(targets[0]), "-q", "--json",
           *extra]
    for t in targets[1:]:
        cmd += ["--mirror", str(t)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"acquire failed ({r.returncode}): {r.stderr.strip()}")
    return dict(json.loads(r.stdout))


def main(argv: Sequence[str] | None = None) -> int:
    gen = _load_gen_input()
    ap = argparse.ArgumentParser(description="forensimg acquire: one target vs two (--mirror).")
    ap.add_argument("--size", type=gen.parse_size, default=gen.parse_size("1G"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--formats", default="raw,fimg,E01")
    ap.add_argument("--second-dir", type=Path, default=None,
                    help="folder for the second target (default: bench/out, the same disk as the first); "
                    "e.g. /dev/shm to stand for a second, independent disk")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    src = prepare_input(args.size, args.seed, gen)
    work = OUT_DIR / "mirror-work"
    second = (args.second_dir / "forensimg-mirror-work") if args.second_dir else work / "b"
    rows: list[dict[str, Any]] = []
    try:
        for fmt in [f.strip().lower() for f in args.formats.split(",") if f.strip()]:
            ext = EXT[fmt]
            extra = ["--compression", "fast"] if fmt in ("e01", "ewf") else []
            times: dict[str, list[float]] = {"one": [], "two": []}
            cpu: dict[str, list[float]] = {"one": [], "two": []}
            hashes: dict[str, Any] = {}
            for rnd in range(args.repeat):
                for kind in ("one", "two") if rnd % 2 == 0 else ("two", "one"):
                    shutil.rmtree(work, ignore_errors=True)
                    shutil.rmtree(second, ignore_errors=True)
                    (work / "a").mkdir(parents=True)
                    second.mkdir(parents=True)
                    subprocess.run(["sync"], check=False)
                    warm(src)
                    targets = [work / "a" / f"img{ext}"] + ([second / f"img{ext}"] if kind == "two" else [])
                    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    d = acquire(src, targets, extra)
                    el = time.perf_counter() - t0
                    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    times[kind].append(el)
                    cpu[kind].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
                    if any(t["state"] != "finished" for t in d["targets"]):
                        raise SystemExit(f"a target did not finish: {d['targets']}")
                    hashes[kind] = d["hashes"]
                    print(f"{fmt:<5} round {rnd + 1} {kind}: {el:7.3f} s  {args.size / el / 1e6:7.1f} MB/s  "
                          f"cpu {cpu[kind][-1]:7.3f} s", flush=True)
            if hashes["one"] != hashes["two"]:
                raise SystemExit(f"{fmt}: the hashes differ between one and two targets")
            best1, best2 = min(times["one"]), min(times["two"])
            rows.append({"format": fmt, "one_best_s": best1, "two_best_s": best2,
                         "one_median_s": statistics.median(times["one"]),
                         "two_median_s": statistics.median(times["two"]),
                         "overhead_best": best2 / best1 - 1, "rounds": times,
                         "one_cpu_best_s": min(cpu["one"]), "two_cpu_best_s": min(cpu["two"]),
                         "cpu_overhead_best": min(cpu["two"]) / min(cpu["one"]) - 1, "cpu_rounds": cpu})
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(second, ignore_errors=True)
    print()
    print("| format | one target best s | two targets best s | overhead (best) | one median s | two median s "
          "| one CPU s | two CPU s | CPU overhead |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['format']} | {r['one_best_s']:.3f} | {r['two_best_s']:.3f} | {100 * r['overhead_best']:+.1f} % "
              f"| {r['one_median_s']:.3f} | {r['two_median_s']:.3f} | {r['one_cpu_best_s']:.2f} "
              f"| {r['two_cpu_best_s']:.2f} | {100 * r['cpu_overhead_best']:+.1f} % |")
    if args.json_out:
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        tmp.write_text(json.dumps({"size": args.size, "seed": args.seed, "rows": rows,
                                   "second_dir": str(args.second_dir or OUT_DIR),
                                   "cpu_count": os.cpu_count()}, indent=2) + "\n")
        os.replace(tmp, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
