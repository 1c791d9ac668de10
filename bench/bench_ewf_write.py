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
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from _common import (
    OUT_DIR,
    Column,
    Run,
    Stats,
    add_common_options,
    command_line,
    environment,
    import_forensimg,
    interleave,
    open_pyewf,
    prepare_input,
    text_table,
    tool_version,
    warm_cache,
    write_json,
)

BLOCK = 4 << 20
BASELINE = "ewfacquire -c fast -d sha1"
FORENSIMG = "forensimg E01 fast md5+sha1"
TABLE = (
    Column("method", 30, align="<"),
    Column("best s", 8, ".2f"),
    Column("median s", 9, ".2f"),
    Column("MB/s", 7, ".0f"),
    Column("ratio", 7, ".2f", suffix="x"),
    Column("cpu s (best)", 13, ".2f"),
    Column("output", 13, ","),
)


def _clean(stem: Path) -> None:
    for p in stem.parent.glob(stem.name + ".*"):
        if re.fullmatch(r"[Ee][0-9A-Za-z]{2}", p.suffix[1:]):
            p.unlink()


def run_ewfacquire(src: Path, stem: Path) -> tuple[list[Path], dict[str, str]]:
    """``ewfacquire`` of ``src`` to ``stem``.E01; returns (segment files, {})."""
    subprocess.run(
        ["ewfacquire", "-u", "-q", "-c", "fast", "-d", "sha1", "-f", "encase6", "-t", str(stem), str(src)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return sorted(stem.parent.glob(stem.name + ".E??")), {}


def run_forensimg(
    forensimg: ModuleType, src: Path, stem: Path, threads: int | None, fsync: bool
) -> tuple[list[Path], dict[str, str]]:
    """``forensimg.create(stem.E01)`` fed 4 MiB reads of ``src``; returns (segment files, computed hashes)."""
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
    return list(result.paths), dict(result.hashes)


def stored_md5(first: Path) -> str | None:
    """The MD5 stored in an E01, read with pyewf."""
    with open_pyewf(first) as h:
        value: str | None = h.get_hash_value("MD5")
    return value


def ewfverify_md5(first: Path) -> str | None:
    p = subprocess.run(["ewfverify", "-q", str(first)], capture_output=True, text=True, check=False)
    m = re.search(r"MD5 hash calculated over data:\s+([0-9a-f]{32})", p.stdout)
    return m.group(1) if p.returncode == 0 and m else None


def _isal_version() -> str | None:
    try:
        import isal
    except ImportError:
        return None
    version: str = isal.__version__
    return version


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0, or 1 if the media MD5s disagree or an output fails verification."""
    ap = argparse.ArgumentParser(description="E01 write throughput: forensimg vs ewfacquire (fast, MD5+SHA-1).")
    add_common_options(ap)
    ap.add_argument("--threads", type=int, default=None, help="forensimg compression threads (default: CPUs)")
    ap.add_argument("--fsync", action="store_true", help="let forensimg fsync its output (its default)")
    ap.add_argument("--keep", action="store_true", help="keep a freshly generated input for reuse")
    ap.add_argument("--no-verify", action="store_true", help="skip ewfverify of forensimg's output")
    args = ap.parse_args(argv)
    if shutil.which("ewfacquire") is None:
        print("ewfacquire not found (apt-get install ewf-tools)", file=sys.stderr)
        return 2
    forensimg = import_forensimg("forensimg.formats.ewf.writer")  # the module under test
    env = environment(
        ewfacquire=tool_version("ewfacquire", "-V", words=2),
        isal=_isal_version(),
        forensimg=getattr(forensimg, "__version__", "unknown"),
        loadavg_before=os.getloadavg(),
    )
    inp = prepare_input(args.size, args.seed)
    src = inp.path
    print(f"input: {src} ({args.size:,} bytes, seed {args.seed}, {'reused' if inp.reused else 'generated'})")
    stems = {BASELINE: OUT_DIR / "bench-ewf-ewfacquire", FORENSIMG: OUT_DIR / "bench-ewf-forensimg"}
    sizes: dict[str, int] = {}
    md5s: dict[str, set[str | None]] = {BASELINE: set(), FORENSIMG: set()}
    ok = True

    def record(rnd: int, name: str, run: Run[tuple[list[Path], dict[str, str]]]) -> None:
        paths, hashes = run.result
        sizes[name] = sum(p.stat().st_size for p in paths)
        if "md5" in hashes:
            md5s[name].add(hashes["md5"])
        md5s[name].add(stored_md5(paths[0]))
        print(f"  round {rnd + 1}: {name:<28} {run.wall:7.2f} s  cpu {run.cpu:6.2f} s", flush=True)

    try:
        warm = warm_cache(src, md5=True)
        input_md5 = warm.md5
        print(f"page cache warmed ({warm.mb_per_s:,.0f} MB/s incl. MD5); input MD5 {input_md5}")
        runs = interleave(
            {
                BASELINE: lambda: run_ewfacquire(src, stems[BASELINE]),
                FORENSIMG: lambda: run_forensimg(forensimg, src, stems[FORENSIMG], args.threads, args.fsync),
            },
            args.repeat,
            # ewfacquire's work is its process's; forensimg's is this one's (all its threads)
            cpu={BASELINE: "children", FORENSIMG: "self"},
            before=lambda name: _clean(stems[name]),
            after=record,
        )
        verified: str | None = "skipped"
        if not args.no_verify:
            verified = ewfverify_md5(stems[FORENSIMG].with_name(stems[FORENSIMG].name + ".E01"))
            if verified != input_md5:
                print(f"ERROR: ewfverify of forensimg's output gave {verified}", file=sys.stderr)
                ok = False
        agree = md5s[BASELINE] == md5s[FORENSIMG] == {input_md5}
        if not agree:
            print(f"ERROR: media MD5s disagree: {md5s} vs input {input_md5}", file=sys.stderr)
            ok = False
    finally:
        for stem in stems.values():
            _clean(stem)
        inp.discard(args.keep)

    times = {name: Stats.of(r.wall for r in rs) for name, rs in runs.items()}
    rows = []
    for name in (BASELINE, FORENSIMG):
        best = times[name].best
        rows.append(
            {
                "method": name,
                "best_s": best,
                "median_s": times[name].median,
                "all_s": list(times[name].samples),
                "cpu_s": [r.cpu for r in runs[name]],
                "mb_per_s": args.size / best / 1e6,
                "ratio_vs_ewfacquire": times[BASELINE].best / best,
                "output_bytes": sizes[name],
            }
        )
    print()
    print(
        text_table(
            TABLE,
            (
                [r["method"], r["best_s"], r["median_s"], r["mb_per_s"], r["ratio_vs_ewfacquire"], min(r["cpu_s"]),
                 r["output_bytes"]]
                for r in rows
            ),
        )
    )  # fmt: skip
    med_ratio = times[BASELINE].median / times[FORENSIMG].median
    print(f"\nratio of medians: {med_ratio:.2f}x; media MD5 {input_md5}: {'all agree' if ok else 'MISMATCH'}")
    print(f"ewfverify of forensimg's output: {'exit 0, same MD5' if verified == input_md5 else verified}")
    if args.json_out:
        report = {
            "benchmark": "bench_ewf_write",
            "environment": env | {"loadavg_after": os.getloadavg()},
            "input": inp.meta | {"reused": inp.reused, "md5": input_md5},
            "repeat": args.repeat,
            "threads": args.threads,
            "fsync": args.fsync,
            "results": rows,
            "ratio_of_medians": med_ratio,
            "md5_agree": ok,
            "argv": command_line(argv),
        }
        write_json(args.json_out, report)
        print(f"JSON written to {args.json_out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
