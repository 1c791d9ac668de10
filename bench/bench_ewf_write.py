#!/usr/bin/env python3
"""Benchmark: writing E01 (fast compression, MD5 + SHA-1) with forensimg vs ``ewfacquire``.

Usage::

    python bench/bench_ewf_write.py [--size 1G] [--seed 1] [--repeat 3] [--threads N] [--keep]
                                    [--fsync] [--no-verify] [--json-out FILE]

The input is the deterministic mixed file of ``bench/gen_input.py`` (40 % zero, 30 % random, 30 %
compressible), cached in ``bench/out/`` under the same name ``bench_hash.py`` uses and reused when
present. The page cache is warmed by reading it once. Then, taking turns, each round runs:

* ``ewfacquire``: ``ewfacquire -u -q -c fast -d sha1 -f encase6 -t OUT INPUT`` (libewf's tool; it
  computes MD5 always and SHA-1 with ``-d sha1``), the baseline;
* ``forensimg``: the library, ``forensimg.create(OUT.E01, compression="fast", hashes=("md5",
  "sha1"))`` fed with 4 MiB ``read()`` blocks of the input, then ``close()``.

Both write segments of the default size (1.4 GiB, so one file here) into ``bench/out/`` and neither
forces the data to disk (ewfacquire has no such option; forensimg runs with ``fsync=False`` unless
``--fsync`` is given). Outputs are deleted between rounds, outside the timing. Throughput is media
bytes / wall seconds in MB/s (1 MB = 10**6 bytes); CPU seconds (user + system, all threads) are
reported too because the test VM is shared. The media MD5s must agree: ewfacquire's stored MD5
(read with pyewf), forensimg's stored MD5 and the input's MD5; unless ``--no-verify``, the last
forensimg output is also checked with ``ewfverify -q`` (exit 0, same MD5).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
BLOCK = 4 << 20
BASELINE = "ewfacquire -c fast -d sha1"
FORENSIMG = "forensimg E01 fast md5+sha1"


def _load_gen_input() -> ModuleType:
    spec = importlib.util.spec_from_file_location("forensimg_bench_gen_input", BENCH_DIR / "gen_input.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _import_forensimg() -> ModuleType:
    try:
        import forensimg
    except ImportError:
        sys.path.insert(0, str(BENCH_DIR.parent))
        import forensimg
    import forensimg.formats.ewf.writer  # the module under test

    return forensimg


def prepare_input(size: int, seed: int, gen: ModuleType) -> tuple[Path, dict[str, Any], bool]:
    """Return (path, generator summary, reused?) for the cached benchmark input (shared with bench_hash)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"hash-input-{size}-s{seed}-g{gen.GENERATOR_VERSION}"
    path = OUT_DIR / f"{stem}.bin"
    meta_path = OUT_DIR / f"{stem}.json"
    if path.exists() and meta_path.exists() and path.stat().st_size == size:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("size") == size and meta.get("seed") == seed:
            return path, meta, True
    summary = gen.generate(path, size, seed)
    meta = {k: v for k, v in summary.items() if k != "regions"}
    meta["regions"] = len(summary["regions"])
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path, meta, False


def warm_cache_and_md5(path: Path) -> tuple[float, str]:
    """Read the file once (page cache) and return (seconds, MD5 of the input)."""
    h = hashlib.md5()
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(8 << 20):
            h.update(block)
    return time.perf_counter() - started, h.hexdigest()


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _clean(stem: Path) -> None:
    for p in stem.parent.glob(stem.name + ".*"):
        if re.fullmatch(r"[Ee][0-9A-Za-z]{2}", p.suffix[1:]):
            p.unlink()


def run_ewfacquire(src: Path, stem: Path) -> tuple[float, float, list[Path]]:
    _clean(stem)
    cpu0 = _cpu_children()
    started = time.perf_counter()
    subprocess.run(
        ["ewfacquire", "-u", "-q", "-c", "fast", "-d", "sha1", "-f", "encase6", "-t", str(stem), str(src)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    return elapsed, _cpu_children() - cpu0, sorted(stem.parent.glob(stem.name + ".E??"))


def run_forensimg(
    forensimg: ModuleType, src: Path, stem: Path, threads: int | None, fsync: bool
) -> tuple[float, float, list[Path], dict[str, str]]:
    _clean(stem)
    cpu0 = _cpu_self()
    started = time.perf_counter()
    writer = forensimg.create(
        stem.with_name(stem.name + ".E01"),
        compression="fast",
        hashes=("md5", "sha1"),
        threads=threads,
        fsync=fsync,
    )
    with open(src, "rb", buffering=0) as fh:
        while block := fh.read(BLOCK):
            writer.write(block)
    result = writer.close()
    elapsed = time.perf_counter() - started
    return elapsed, _cpu_self() - cpu0, list(result.paths), dict(result.hashes)


def stored_md5(first: Path) -> str | None:
    import pyewf

    h = pyewf.handle()
    h.open(pyewf.glob(str(first)))
    try:
        value: str | None = h.get_hash_value("MD5")
        return value
    finally:
        h.close()


def ewfverify_md5(first: Path) -> str | None:
    p = subprocess.run(["ewfverify", "-q", str(first)], capture_output=True, text=True, check=False)
    m = re.search(r"MD5 hash calculated over data:\s+([0-9a-f]{32})", p.stdout)
    return m.group(1) if p.returncode == 0 and m else None


def environment(forensimg: ModuleType) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ver = subprocess.run(["ewfacquire", "-V"], capture_output=True, text=True, check=False).stdout.split()
    try:
        import isal

        isal_version = isal.__version__
    except ImportError:
        isal_version = None
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ewfacquire": " ".join(ver[:2]) if ver else "unknown",
        "isal": isal_version,
        "forensimg": getattr(forensimg, "__version__", "unknown"),
        "loadavg_before": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0, or 1 if the media MD5s disagree or an output fails verification."""
    gen = _load_gen_input()
    ap = argparse.ArgumentParser(description="E01 write throughput: forensimg vs ewfacquire (fast, MD5+SHA-1).")
    ap.add_argument("--size", type=gen.parse_size, default=gen.parse_size("1G"), help="input size (default 1G)")
    ap.add_argument("--seed", type=int, default=1, help="input seed (default 1)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; best and median reported (default 3)")
    ap.add_argument("--threads", type=int, default=None, help="forensimg compression threads (default: CPUs)")
    ap.add_argument("--fsync", action="store_true", help="let forensimg fsync its output (its default)")
    ap.add_argument("--keep", action="store_true", help="keep a freshly generated input for reuse")
    ap.add_argument("--no-verify", action="store_true", help="skip ewfverify of forensimg's output")
    ap.add_argument("--json-out", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)
    if shutil.which("ewfacquire") is None:
        print("ewfacquire not found (apt-get install ewf-tools)", file=sys.stderr)
        return 2
    forensimg = _import_forensimg()
    env = environment(forensimg)
    src, meta, reused = prepare_input(args.size, args.seed, gen)
    print(f"input: {src} ({args.size:,} bytes, seed {args.seed}, {'reused' if reused else 'generated'})")
    base_stem = OUT_DIR / "bench-ewf-ewfacquire"
    ours_stem = OUT_DIR / "bench-ewf-forensimg"
    ok = True
    try:
        warm_s, input_md5 = warm_cache_and_md5(src)
        print(f"page cache warmed ({args.size / warm_s / 1e6:,.0f} MB/s incl. MD5); input MD5 {input_md5}")
        times: dict[str, list[float]] = {BASELINE: [], FORENSIMG: []}
        cpus: dict[str, list[float]] = {BASELINE: [], FORENSIMG: []}
        sizes: dict[str, int] = {}
        md5s: dict[str, set[str | None]] = {BASELINE: set(), FORENSIMG: set()}
        for rnd in range(args.repeat):
            t, c, paths = run_ewfacquire(src, base_stem)
            times[BASELINE].append(t)
            cpus[BASELINE].append(c)
            sizes[BASELINE] = sum(p.stat().st_size for p in paths)
            md5s[BASELINE].add(stored_md5(paths[0]))
            print(f"  round {rnd + 1}: {BASELINE:<28} {t:7.2f} s  cpu {c:6.2f} s", flush=True)
            t, c, paths, hashes = run_forensimg(forensimg, src, ours_stem, args.threads, args.fsync)
            times[FORENSIMG].append(t)
            cpus[FORENSIMG].append(c)
            sizes[FORENSIMG] = sum(p.stat().st_size for p in paths)
            md5s[FORENSIMG].add(hashes["md5"])
            md5s[FORENSIMG].add(stored_md5(paths[0]))
            print(f"  round {rnd + 1}: {FORENSIMG:<28} {t:7.2f} s  cpu {c:6.2f} s", flush=True)
        verified: str | None = "skipped"
        if not args.no_verify:
            verified = ewfverify_md5(ours_stem.with_name(ours_stem.name + ".E01"))
            if verified != input_md5:
                print(f"ERROR: ewfverify of forensimg's output gave {verified}", file=sys.stderr)
                ok = False
        agree = md5s[BASELINE] == md5s[FORENSIMG] == {input_md5}
        if not agree:
            print(f"ERROR: media MD5s disagree: {md5s} vs input {input_md5}", file=sys.stderr)
            ok = False
    finally:
        _clean(base_stem)
        _clean(ours_stem)
        if not args.keep and not reused:
            src.unlink(missing_ok=True)
            src.with_suffix(".json").unlink(missing_ok=True)

    base_best = min(times[BASELINE])
    rows = []
    for name in (BASELINE, FORENSIMG):
        best = min(times[name])
        rows.append(
            {
                "method": name,
                "best_s": best,
                "median_s": statistics.median(times[name]),
                "all_s": times[name],
                "cpu_s": cpus[name],
                "mb_per_s": args.size / best / 1e6,
                "ratio_vs_ewfacquire": base_best / best,
                "output_bytes": sizes[name],
            }
        )
    head = f"{'method':<30} {'best s':>8} {'median s':>9} {'MB/s':>7} {'ratio':>7} {'cpu s (best)':>13} {'output':>13}"
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['method']:<30} {r['best_s']:>8.2f} {r['median_s']:>9.2f} {r['mb_per_s']:>7.0f} "
            f"{r['ratio_vs_ewfacquire']:>6.2f}x {min(r['cpu_s']):>13.2f} {r['output_bytes']:>13,}"
        )
    med_ratio = statistics.median(times[BASELINE]) / statistics.median(times[FORENSIMG])
    print(f"\nratio of medians: {med_ratio:.2f}x; media MD5 {input_md5}: {'all agree' if ok else 'MISMATCH'}")
    print(f"ewfverify of forensimg's output: {'exit 0, same MD5' if verified == input_md5 else verified}")
    if args.json_out:
        report = {
            "benchmark": "bench_ewf_write",
            "environment": env | {"loadavg_after": os.getloadavg()},
            "input": meta | {"reused": reused, "md5": input_md5},
            "repeat": args.repeat,
            "threads": args.threads,
            "fsync": args.fsync,
            "results": rows,
            "ratio_of_medians": med_ratio,
            "md5_agree": ok,
            "argv": [sys.argv[0], *(sys.argv[1:] if argv is None else argv)],
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, args.json_out)
        print(f"JSON written to {args.json_out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
