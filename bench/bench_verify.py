#!/usr/bin/env python3
"""Benchmark: ``forensimg verify`` of an E01 and a fimg compared with ``ewfverify``, side by side.

Usage::

    python bench/bench_verify.py [--size 1G] [--seed 1] [--repeat 3] [--jobs 2] [--json-out FILE]

1. Input: ``bench/gen_input.py`` output (40 % zero, 30 % random, 30 % compressible), cached as
   ``bench/out/hash-input-<size>-s<seed>-g<generator version>.bin`` (the same file ``bench_hash.py`` uses).
2. Images, cached in ``bench/out/`` and reused:

   * ``verify-<size>-s<seed>-g<v>-fast.E01``: ``ewfacquire -u -q -f encase6 -c fast -d sha1`` of the input
     (MD5 and SHA-1 stored; one segment, as the default segment size is 1.4 GiB);
   * ``verify-<size>-s<seed>-g<v>-c<chunk size>.fimg``: ``forensimg.create(..., format="fimg")`` with the
     defaults (16 KiB chunks since the fourth session, zlib, SHA-256 stored; a SHA-256 per chunk and the
     Merkle root); the default chunk size is in the name, so that a new default makes a new image.
3. Every file is read once to warm the page cache; every method then reads from RAM.
4. Methods, each run as a separate process (wall clock and the child's CPU time), taking turns in
   every round; best and median of ``--repeat`` rounds:

   * ``ewfverify -q -d sha1 IMAGE.E01`` (**baseline**: libewf's verifier, MD5 + SHA-1);
   * ``forensimg verify IMAGE.E01 --jobs N --json`` (every chunk, MD5 + SHA-1 against the stored ones);
   * ``forensimg verify IMAGE.fimg --jobs N --json`` (every chunk's SHA-256, the media SHA-256, the Merkle
     root and the structure records);
   * ``forensimg verify IMAGE.fimg --range 512M+1M --json`` (Merkle proof of 1 MiB).

   The range check is also timed in-process (``forensimg.verify.verify`` on the path, opening
   included) against an in-process full verify, since a process start-up alone (~0.1 s) is more than
   1 % of a full verify.
5. Every run must succeed (ewfverify ``SUCCESS``; forensimg exit 0 with status ``verified``), or the
   script exits 1.

Throughput is media bytes / seconds in MB/s (1 MB = 10**6 bytes). Targets (issue 6): E01 verify at
least 1.5x ewfverify, fimg verify at least 1.8x, the 1 MiB range under 1 % of a full fimg verify.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    OUT_DIR,
    Stopwatch,
    add_common_options,
    ewfacquire_cached,
    import_forensimg,
    markdown_table,
    prepare_input,
    warm_cache,
    write_json,
)

BASELINE = "ewfverify -d sha1 (E01)"


def prepare(size: int, seed: int) -> tuple[Path, Path, Path]:
    """The cached input, its cached ``ewfacquire -c fast -d sha1`` E01 and its cached default fimg."""
    src = prepare_input(size, seed).path
    tag = src.stem.removeprefix("hash-input-")  # <size>-s<seed>-g<generator version>
    e01 = ewfacquire_cached(src, OUT_DIR / f"verify-{tag}-fast.E01", "-q", "-f", "encase6", "-c", "fast", "-d", "sha1")
    fi = import_forensimg("forensimg.formats.fimg.layout")
    fimg = OUT_DIR / f"verify-{tag}-c{fi.formats.fimg.layout.DEFAULT_CHUNK_SIZE}.fimg"
    if not fimg.exists():
        print(f"forensimg fimg -> {fimg} ...", flush=True)
        tmp = OUT_DIR / f".verify-{tag}-tmp.fimg"
        with src.open("rb") as f, fi.create(tmp, format="fimg") as w:
            while block := f.read(4 << 20):
                w.write(block)
        tmp.rename(fimg)
    return src, e01, fimg


def run_timed(argv: list[str], check: Callable[[subprocess.CompletedProcess[str]], None]) -> tuple[float, float]:
    """Run ``argv``; returns (wall seconds, child CPU seconds)."""
    with Stopwatch("children") as sw:
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
    check(r)
    return sw.wall, sw.cpu


def _ewf_ok(r: subprocess.CompletedProcess[str]) -> None:
    if r.returncode != 0 or "SUCCESS" not in r.stdout:
        raise SystemExit(f"ewfverify failed ({r.returncode}): {r.stdout[-500:]} {r.stderr[-500:]}")


def _fi_ok(method: str) -> Callable[[subprocess.CompletedProcess[str]], None]:
    def check(r: subprocess.CompletedProcess[str]) -> None:
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            doc = {}
        if r.returncode != 0 or doc.get("status") != "verified":
            raise SystemExit(f"{method} failed ({r.returncode}): {r.stdout[-800:]} {r.stderr[-500:]}")

    return check


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(ap)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="verify workers (default: CPUs)")
    args = ap.parse_args(argv)
    size = args.size
    _src, e01, fimg = prepare(size, args.seed)
    warm_cache(e01, fimg)
    fi = import_forensimg("forensimg.verify")
    from forensimg.verify import verify

    py = [sys.executable, "-m", "forensimg", "--no-custody", "verify"]
    rstart = size // 2
    rng = f"{rstart}+{1 << 20}"
    methods: dict[str, tuple[list[str], Callable[[subprocess.CompletedProcess[str]], None]]] = {
        BASELINE: (["ewfverify", "-q", "-d", "sha1", str(e01)], _ewf_ok),
        "forensimg verify (E01)": ([*py, str(e01), "--jobs", str(args.jobs), "--json"], _fi_ok("E01")),
        "forensimg verify (fimg)": ([*py, str(fimg), "--jobs", str(args.jobs), "--json"], _fi_ok("fimg")),
        "forensimg verify --range 1 MiB (fimg)": ([*py, str(fimg), "--range", rng, "--json"], _fi_ok("range")),
    }
    walls: dict[str, list[float]] = {m: [] for m in methods}
    cpus: dict[str, list[float]] = {m: [] for m in methods}
    inproc: dict[str, list[float]] = {"full (fimg)": [], "range 1 MiB (fimg)": []}
    for rnd in range(args.repeat):
        for name, (cmd, check) in methods.items():
            w, c = run_timed(cmd, check)
            walls[name].append(w)
            cpus[name].append(c)
            print(f"round {rnd + 1}: {name:<40} {w:7.3f} s wall {c:7.3f} s cpu", flush=True)
        t = time.perf_counter()
        rep = verify(fimg, workers=args.jobs, use_custody=False)
        inproc["full (fimg)"].append(time.perf_counter() - t)
        assert rep.status == "verified", rep.verdict
        t = time.perf_counter()
        rep = verify(fimg, range=(rstart, rstart + (1 << 20)), use_custody=False)
        inproc["range 1 MiB (fimg)"].append(time.perf_counter() - t)
        assert rep.status == "verified" and rep.range_method == "merkle", rep.verdict
        print(
            f"round {rnd + 1}: in-process full {inproc['full (fimg)'][-1]:.3f} s, "
            f"range {inproc['range 1 MiB (fimg)'][-1] * 1000:.1f} ms",
            flush=True,
        )

    base = min(walls[BASELINE])
    rows = []
    cells = []
    print()
    for name in methods:
        best = min(walls[name])
        i = walls[name].index(best)
        rows.append(
            {
                "method": name,
                "best": best,
                "median": statistics.median(walls[name]),
                "cpu": cpus[name][i],
                "rounds": walls[name],
                "cpu_rounds": cpus[name],
            }
        )
        cells.append([name, f"{best:.3f}", f"{statistics.median(walls[name]):.3f}", f"{cpus[name][i]:.2f}",
                      f"{size / best / 1e6:.0f}", f"{base / best:.2f}x"])  # fmt: skip
    print(markdown_table(["method", "best s", "median s", "CPU s (best run)", "MB/s (best)", f"vs {BASELINE}"],
                         "lrrrrr", cells))  # fmt: skip
    full_ip, range_ip = min(inproc["full (fimg)"]), min(inproc["range 1 MiB (fimg)"])
    e01_ratio = base / min(walls["forensimg verify (E01)"])
    fimg_ratio = base / min(walls["forensimg verify (fimg)"])
    range_share = range_ip / full_ip
    range_share_cli = min(walls["forensimg verify --range 1 MiB (fimg)"]) / min(walls["forensimg verify (fimg)"])
    print()
    print(
        f"in-process: full fimg verify {full_ip:.3f} s, 1 MiB range {range_ip * 1000:.1f} ms "
        f"= {range_share * 100:.2f} % (CLI, with interpreter start-up: {range_share_cli * 100:.1f} %)"
    )
    verdicts = {
        "E01 >= 1.5x ewfverify": e01_ratio >= 1.5,
        "fimg >= 1.8x ewfverify": fimg_ratio >= 1.8,
        "range < 1 % of full (in-process)": range_share < 0.01,
    }
    for k, ok in verdicts.items():
        print(f"{'PASS' if ok else 'MISS'}: {k}")
    if args.json_out:
        doc: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).isoformat(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_before": os.getloadavg(),
            },
            "forensimg": fi.__version__,
            "size": size,
            "seed": args.seed,
            "jobs": args.jobs,
            "inputs": {
                "e01": str(e01),
                "e01_bytes": e01.stat().st_size,
                "fimg": str(fimg),
                "fimg_bytes": fimg.stat().st_size,
            },
            "methods": rows,
            "in_process": inproc,
            "ratios": {
                "e01": e01_ratio,
                "fimg": fimg_ratio,
                "range_share": range_share,
                "range_share_cli": range_share_cli,
            },
            "targets_met": verdicts,
        }
        write_json(args.json_out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
