#!/usr/bin/env python3
"""fimg against libewf on the same 1 GiB mixed input, in one run (issue 4 §11).

Usage::

    python bench/bench_fimg.py [--size 1G] [--seed 1] [--repeat 3] [--reads 20000] [--keep] [--json-out FILE]

Three comparisons, each method timed ``--repeat`` times in turns (best and median reported), from a warm
page cache:

1. **write**: ``ewfacquire -u -q -c fast -d sha1 -f encase6`` (E01, deflate fast, MD5 + SHA-1) against the
   forensimg fimg writer (default options: 16 KiB chunks, zlib by ISA-L, SHA-256 per chunk, whole-media
   SHA-256; also zstd level 1) fed
   4 MiB blocks. Target: fimg ≥ 5x.
2. **verify**: ``ewfverify -q -d sha1`` on the ewfacquire E01 against ``forensimg.verify`` on the fimg
   (every chunk's SHA-256, the whole-media SHA-256, structure and Merkle root). Target ≥ 1.8x.
3. **random 4 KiB reads** (the same offsets): pyewf on the compressed E01 against ``forensimg.open`` on the
   fimg (each read decodes and checks a chunk's SHA-256). Target ≥ 5x.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    OUT_DIR,
    Stats,
    add_common_options,
    import_forensimg,
    interleave,
    markdown_table,
    open_pyewf,
    prepare_input,
    random_offsets,
    warm_cache,
    write_json,
)


def rm(paths: list[Path]) -> None:
    for p in paths:
        if p.exists():
            p.unlink()


# -- methods ------------------------------------------------------------------------------------------


def ewfacquire(src: Path, work: Path) -> dict[str, Any]:
    target = work / "ewf"
    rm(list(work.glob("ewf.E*")))
    cmd = ["ewfacquire", "-u", "-q", "-c", "fast", "-d", "sha1", "-f", "encase6", "-t", str(target), str(src)]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    dt = time.perf_counter() - t
    md5 = next((ln.split()[-1] for ln in out.splitlines() if "MD5 hash calculated" in ln), None)
    return {"seconds": dt, "md5": md5, "bytes": sum(p.stat().st_size for p in work.glob("ewf.E*"))}


def fimg_write(src: Path, work: Path, **opts: Any) -> dict[str, Any]:
    from forensimg.formats.fimg import create_writer

    target = work / "bench.fimg"
    rm([target, *work.glob("bench.f[0-9]*")])
    t = time.perf_counter()
    w = create_writer(target, **opts)
    with open(src, "rb", buffering=0) as fh:
        while True:
            block = fh.read(4 << 20)
            if not block:
                break
            w.write(block)
    res = w.close()
    dt = time.perf_counter() - t
    return {"seconds": dt, "sha256": res.hashes.get("sha256"), "root": res.details["merkle_root"],
            "bytes": sum(p.stat().st_size for p in res.paths)}


def ewfverify(work: Path) -> dict[str, Any]:
    t = time.perf_counter()
    r = subprocess.run(["ewfverify", "-q", "-d", "sha1", str(work / "ewf.E01")], capture_output=True, text=True)
    return {"seconds": time.perf_counter() - t, "ok": r.returncode == 0}


def fimg_verify(work: Path) -> dict[str, Any]:
    from forensimg.verify import verify

    t = time.perf_counter()
    rep = verify(work / "bench.fimg", workers=2, use_custody=False)
    dt = time.perf_counter() - t
    return {"seconds": dt, "status": rep.status, "faults": len(rep.faults)}


def pyewf_reads(work: Path, offsets: list[int]) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open_pyewf(work / "ewf.E01") as h:
        t = time.perf_counter()
        for o in offsets:
            h.seek(o)
            digest.update(h.read(4096))
        dt = time.perf_counter() - t
    return {"seconds": dt, "reads": len(offsets), "digest": digest.hexdigest()}


def fimg_reads(work: Path, offsets: list[int]) -> dict[str, Any]:
    forensimg = import_forensimg()
    digest = hashlib.sha256()
    with forensimg.open(work / "bench.fimg") as img:
        t = time.perf_counter()
        for o in offsets:
            digest.update(img.read_at(o, 4096))
        dt = time.perf_counter() - t
    return {"seconds": dt, "reads": len(offsets), "digest": digest.hexdigest()}


def rounds(methods: dict[str, Callable[[], dict[str, Any]]], repeat: int) -> dict[str, list[dict[str, Any]]]:
    """Each method's result dicts, in round order, with ``cpu_s``: the CPU seconds of this process (all
    threads) and its children during the call (includes a few ms of set-up; robust to other load)."""
    runs = interleave(methods, repeat, cpu="both")
    return {name: [r.result | {"cpu_s": r.cpu} for r in rs] for name, rs in runs.items()}


def summarise(res: dict[str, list[dict[str, Any]]], base: str, units: float, unit: str) -> list[dict[str, Any]]:
    rows = []
    b = min(r["seconds"] for r in res[base])
    for name, runs in res.items():
        secs = Stats.of(r["seconds"] for r in runs)
        cpu = min(r["cpu_s"] for r in runs)
        rows.append({"method": name, "best_s": round(secs.best, 3), "median_s": round(secs.median, 3),
                     unit: round(units / secs.best, 1), "ratio": round(b / secs.best, 2), "cpu_s": round(cpu, 2),
                     "cpu_ratio": round(min(r["cpu_s"] for r in res[base]) / cpu, 2)})
    return rows


def table(title: str, rows: list[dict[str, Any]], unit: str) -> str:
    body = markdown_table(
        ["method", "best s", "median s", f"{unit} (best)", "vs first", "CPU s (least)", "CPU vs first"],
        "lrrrrrr",
        ([r["method"], f"{r['best_s']:.3f}", f"{r['median_s']:.3f}", f"{r[unit]:,}", f"{r['ratio']:.2f}x",
          f"{r['cpu_s']:.2f}", f"{r['cpu_ratio']:.2f}x"] for r in rows),
    )  # fmt: skip
    return f"### {title}\n\n{body}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(ap)
    ap.add_argument("--reads", type=int, default=20000, help="random 4 KiB reads per round (default 20000)")
    ap.add_argument("--keep", action="store_true", help="keep the E01 and fimg written in bench/out/fimg-work")
    ap.add_argument("--only", choices=["write", "verify", "read"], action="append")
    args = ap.parse_args(argv)
    for tool in ("ewfacquire", "ewfverify"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (apt install ewf-tools)", file=sys.stderr)
            return 2
    import_forensimg("forensimg.formats.fimg", "forensimg.verify")  # the modules under test
    size = args.size
    src = prepare_input(size, args.seed).path
    work = OUT_DIR / "fimg-work"
    work.mkdir(parents=True, exist_ok=True)
    warm_cache(src)
    only = set(args.only or ["write", "verify", "read"])
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "size": size, "seed": args.seed,
        "python": platform.python_version(), "cpus": os.cpu_count(), "load_before": os.getloadavg(),
    }
    md = []
    if "write" in only or not (work / "bench.fimg").exists() or not (work / "ewf.E01").exists():
        res = rounds({"ewfacquire -c fast -d sha1 (E01)": lambda: ewfacquire(src, work),
                      "forensimg fimg writer (zstd-1)": lambda: fimg_write(src, work, compression="zstd"),
                      # the default (16 KiB chunks, zlib by ISA-L level 1) runs last: verify and reads use it
                      "forensimg fimg writer (default: zlib/ISA-L 1)": lambda: fimg_write(src, work)},
                     args.repeat)
        rows = summarise(res, "ewfacquire -c fast -d sha1 (E01)", size / 1e6, "MB/s")
        report["write"] = {"rows": rows, "runs": res}
        md.append(table("write (1 GiB)", rows, "MB/s"))
    if "verify" in only:
        warm_cache(work / "ewf.E01", work / "bench.fimg")
        res = rounds({"ewfverify -d sha1": lambda: ewfverify(work),
                      "forensimg.verify (fimg)": lambda: fimg_verify(work)}, args.repeat)
        rows = summarise(res, "ewfverify -d sha1", size / 1e6, "MB/s")
        report["verify"] = {"rows": rows, "runs": res}
        md.append(table("verify (1 GiB)", rows, "MB/s"))
    if "read" in only:
        offs = random_offsets(size, args.reads, seed=1)
        res = rounds({"pyewf (E01, deflate fast)": lambda: pyewf_reads(work, offs),
                      "forensimg (fimg)": lambda: fimg_reads(work, offs)}, args.repeat)
        digests = {r["digest"] for runs in res.values() for r in runs}
        report["read_same_bytes"] = len(digests) == 1
        rows = summarise(res, "pyewf (E01, deflate fast)", args.reads, "reads/s")
        report["read"] = {"rows": rows, "runs": res}
        md.append(table(f"random 4 KiB reads ({args.reads:,} reads)", rows, "reads/s"))
    report["load_after"] = os.getloadavg()
    print("\n\n".join(md))
    print(f"\nload average before {report['load_before']}, after {report['load_after']}")
    if args.json_out:
        write_json(args.json_out, report, default=str)
    if not args.keep:
        rm([*work.glob("ewf.E*"), *work.glob("bench.f*")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
