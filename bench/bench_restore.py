#!/usr/bin/env python3
"""Restore throughput: ``forensimg restore`` vs ``ewfexport`` writing raw from the same E01.

Usage::

    python bench/bench_restore.py [--size 1G] [--seed 1] [--repeat 3] [--json-out FILE]
                                  [--also workers=2] [--also window=64M] ...

1. The input (bench/gen_input.py, reused from bench/out/ when present) is converted to E01 once with
   ``ewfacquire -u -c fast`` (kept in bench/out/ for later runs).
2. Each round, taking turns: ``ewfexport -u -q -f raw -t OUT E01`` (single-threaded decode, MD5, write;
   no sync, no read-back; also timed with a ``sync`` after it, and with a ``dd iflag=direct | md5sum``
   read-back after that, which is the work forensimg restore does on top) and
   ``forensimg --no-custody restore E01 OUT.dd --confirm OUT.dd --json`` (chunk checks and decode,
   the stored hashes (MD5) while writing, fsync, page cache dropped, O_DIRECT read-back and compare).
   Each output file is deleted and the file systems synced before the round. The CPU time (user,
   system) of the tool's process is recorded too (``getrusage(RUSAGE_CHILDREN)``; for ewfexport only
   ewfexport itself, not the sync or read-back after it).
3. Both outputs must hash to the same media (checked once); the best and median wall times are reported
   with the ratio ewfexport/forensimg (above 1: forensimg is faster).

Like for like (issue 8, point 11): ``forensimg restore`` writes, syncs, then reads everything back with
``O_DIRECT``; ``ewfexport`` only writes. The row ``forensimg write phase`` is the wall time of the
restore process until its data was written and synced (total wall time minus the read-back, which
the restore measures itself: ``timings.readback_s`` in ``--json``); compare it with
``ewfexport + sync``. ``--also KEY=VALUE`` adds rows that run the library's ``restore()`` in a fresh
process with one setting changed: ``workers=N`` (chunk decode threads, ``Image.scan_chunks``),
``window=SIZE`` (read back behind the writer in windows of SIZE, ``forensimg.restore.VERIFY_WINDOW``;
``window=0``: read back after the final ``fsync``, the default before 2026-11-28 08:00 UTC), ``direct=0``
(buffered writes instead of ``O_DIRECT``, ``forensimg.restore.DIRECT_WRITE``), ``buffers=N`` (reused
buffers per side, ``forensimg.restore.BUFFERS``), ``block=SIZE`` (write size).
Since the read-back runs behind the writer, ``timings.readback_s`` is only what was left to read after
the ``fsync``: the "write phase" row then includes most of the read-back.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    OUT_DIR,
    Stats,
    add_common_options,
    ewfacquire_cached,
    file_digest,
    markdown_table,
    parse_size,
    prepare_input,
    warm_cache,
    write_json,
)


def prepare_e01(raw: Path) -> Path:
    """``ewfacquire -u -c fast`` of the input, made once and kept."""
    return ewfacquire_cached(raw, OUT_DIR / f"{raw.stem}-ewfacquire-fast.E01", "-c", "fast", "-S", "4GiB",
                             "-C", "bench", "-D", "bench input", "-E", "1", "-e", "bench", "-N", "none")  # fmt: skip


def drop_caches() -> None:
    """Write back the previous round's dirty pages, so that every round starts alike. (The page cache
    is not dropped system-wide: other work on the machine keeps its cache.)"""
    subprocess.run(["sync"], check=False)


def _cpu_since(before: resource.struct_rusage) -> tuple[float, float]:
    """(user, system) CPU seconds of the child processes that ended since ``before``."""
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return now.ru_utime - before.ru_utime, now.ru_stime - before.ru_stime


def run_ewfexport(e01: Path, out_stem: Path) -> Path:
    out = out_stem.with_name(out_stem.name + ".raw")
    subprocess.run(["ewfexport", "-u", "-q", "-f", "raw", "-t", str(out_stem), str(e01)], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def run_forensimg(e01: Path, out: Path) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "forensimg", "--no-custody", "restore", "--json", str(e01), str(out),
                        "--confirm", str(out), "--report", str(out) + ".report.txt"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"forensimg restore failed ({r.returncode}): {r.stderr.strip()}")
    return dict(json.loads(r.stdout))


_VARIANT = """
import json, sys
import forensimg.restore as R
e01, out, opts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if "window" in opts:
    R.VERIFY_WINDOW = opts["window"] or None
if "direct" in opts:
    R.DIRECT_WRITE = bool(opts["direct"])
if "buffers" in opts:
    R.BUFFERS = opts["buffers"]
kw = {}
if "workers" in opts:
    kw["workers"] = opts["workers"]
if "block" in opts:
    kw["block_size"] = opts["block"]
res = R.restore(e01, out, confirm=out, custody_logs=(), **kw)
print(json.dumps(res.to_dict(), default=str))
"""


def run_variant(e01: Path, out: Path, opts: dict[str, int]) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-c", _VARIANT, str(e01), str(out), json.dumps(opts)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"restore variant {opts} failed ({r.returncode}): {r.stderr.strip()}")
    return dict(json.loads(r.stdout))


def parse_variant(text: str) -> tuple[str, dict[str, int]]:
    key, _, value = text.partition("=")
    if key not in ("workers", "window", "block", "direct", "buffers"):
        raise SystemExit(f"--also {text}: choose workers=N, window=SIZE (0: after the fsync), block=SIZE, direct=0|1 "
                         "or buffers=N")
    return f"forensimg ({text})", {key: int(value) if key in ("workers", "direct", "buffers") else parse_size(value)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="forensimg restore vs ewfexport -f raw from the same E01.")
    add_common_options(ap)
    ap.add_argument("--also", action="append", default=[], metavar="KEY=VALUE",
                    help="extra forensimg rows with one setting changed (workers=2, window=64M, window=0, "
                         "direct=0, block=16M)")
    args = ap.parse_args(argv)
    variants = dict(parse_variant(v) for v in args.also)
    for tool in ("ewfacquire", "ewfexport"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    raw = prepare_input(args.size, args.seed).path
    e01 = prepare_e01(raw)
    work = OUT_DIR / "restore-work"
    work.mkdir(exist_ok=True)
    ewf_stem = work / "ewfexport-out"
    fimg_out = work / "forensimg-out.dd"
    times: dict[str, list[float]] = {"ewfexport": [], "ewfexport + sync": [],
                                     "ewfexport + sync + O_DIRECT md5 read-back": [], "forensimg": [],
                                     "forensimg write phase (written + fsync)": []}
    for vname in variants:
        times[vname] = []
        times[vname + " write phase"] = []
    results: dict[str, dict[str, Any]] = {}
    cpu: dict[str, list[tuple[float, float]]] = {"ewfexport": [], "forensimg": [], **{v: [] for v in variants}}
    checked = False
    result: dict[str, Any] = {}
    try:
        for rnd in range(args.repeat):
            names = ["ewfexport", "forensimg", *variants]
            for name in names if rnd % 2 == 0 else names[::-1]:
                for p in work.iterdir():
                    p.unlink()
                drop_caches()
                warm_cache(e01)  # both tools decode from the page cache
                t0 = time.perf_counter()
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                if name == "ewfexport":
                    out = run_ewfexport(e01, ewf_stem)
                    el = time.perf_counter() - t0
                    cpu[name].append(_cpu_since(ru0))
                    # what forensimg restore does on top: make it durable, read it back from the disk
                    subprocess.run(["sync"], check=True)
                    times["ewfexport + sync"].append(time.perf_counter() - t0)
                    subprocess.run(f"dd if={out} iflag=direct bs=4M status=none | md5sum", shell=True,
                                   check=True, stdout=subprocess.DEVNULL)
                    times["ewfexport + sync + O_DIRECT md5 read-back"].append(time.perf_counter() - t0)
                else:
                    if name == "forensimg":
                        result = run_forensimg(e01, fimg_out)
                    else:
                        result = run_variant(e01, fimg_out, variants[name])
                    results[name] = result
                    out = fimg_out
                    el = time.perf_counter() - t0
                    cpu[name].append(_cpu_since(ru0))
                    # the write phase: the process's wall time less its own read-back after the fsync
                    wname = "forensimg write phase (written + fsync)" if name == "forensimg" else name + " write phase"
                    times[wname].append(el - float(result["timings"]["readback_s"]))
                times[name].append(el)
                print(f"round {rnd + 1} {name:<10} {el:7.3f} s  {args.size / el / 1e6:7.1f} MB/s  "
                      f"CPU user {cpu[name][-1][0]:.2f} s sys {cpu[name][-1][1]:.2f} s", flush=True)
                if not checked and name.startswith("forensimg"):
                    want = file_digest(raw)
                    got = file_digest(out)
                    if got != want:
                        raise SystemExit(f"forensimg output differs from the input: {got} != {want}")
                    checked = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for name, ts in times.items():
        if not ts:
            continue
        stats = Stats.of(ts)
        row: dict[str, Any] = {"method": name, "best_s": stats.best, "median_s": stats.median,
                               "mb_s_best": args.size / stats.best / 1e6, "rounds": ts}
        if cpu.get(name):
            row["cpu_user_sys_s"] = cpu[name]
            row["cpu_median_s"] = sorted(u + s for u, s in cpu[name])[len(cpu[name]) // 2]
        rows.append(row)
    result = results.get("forensimg", result)  # the default's, not the last variant's
    ratio = min(times["ewfexport"]) / min(times["forensimg"])
    wratio = min(times["ewfexport + sync"]) / min(times["forensimg write phase (written + fsync)"])
    print()
    print(markdown_table(["method", "best s", "median s", "MB/s (best)", "CPU s (median)"], "lrrrr",
                         ([r["method"], f"{r['best_s']:.3f}", f"{r['median_s']:.3f}", f"{r['mb_s_best']:.0f}",
                           f"{r['cpu_median_s']:.2f}" if "cpu_median_s" in r else ""]
                          for r in rows)))  # fmt: skip
    mratio = Stats.of(times["ewfexport"]).median / Stats.of(times["forensimg"]).median
    print(f"\nratio ewfexport/forensimg (best): {ratio:.2f}x, (median): {mratio:.2f}x; write phase, "
          "ewfexport+sync / forensimg written+fsync"
          f" (best): {wratio:.2f}x; forensimg status {result.get('status')}, read-back {result.get('readback_method')}")
    if args.json_out:
        report = {"size": args.size, "seed": args.seed, "e01": str(e01), "rows": rows, "ratio": ratio,
                  "median_ratio": mratio,
                  "write_phase_ratio": wratio, "variants": {k: v for k, v in variants.items()},
                  "timings": {k: r.get("timings") for k, r in results.items()},
                  "forensimg_result": {k: result.get(k) for k in ("status", "readback_method", "written_hashes")},
                  "cpu_count": os.cpu_count()}
        write_json(args.json_out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
