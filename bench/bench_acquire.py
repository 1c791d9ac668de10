#!/usr/bin/env python3
"""Benchmark: ``forensimg acquire`` to E01 and to fimg vs ``ewfacquire``, side by side, one run.

Usage::

    python bench/bench_acquire.py [--size 1G] [--seed 1] [--repeat 1] [--keep] [--json-out FILE]

The input is the deterministic mixed file of ``bench/gen_input.py`` (cached in ``bench/out/`` under
the name ``bench_hash.py`` uses). The page cache is warmed by reading it once. Each round runs, in
turn, as separate processes, each writing into ``bench/out/acq/`` (emptied between runs, outside the
timing):

* ``ewfacquire -u -q -c fast -d sha1 -f encase6 -t OUT INPUT``: the baseline (MD5 always, SHA-1);
* ``forensimg acquire INPUT OUT.E01``: defaults (fast deflate, MD5 + SHA-1), E01 segments fsynced;
* ``forensimg acquire INPUT OUT.fimg``: defaults (zstd level 1, SHA-256 + per-chunk SHA-256, Merkle).

Both forensimg runs have the progress bar on (stderr is a pseudo-terminal, drained by a thread) and
write their report (``OUT.txt`` / ``OUT.json``, with the SHA-256 of every segment file) and custody
event, i.e. the full command as an examiner runs it. ewfacquire writes no data to stable storage
(no fsync); forensimg does (at segment close). Throughput is media bytes / wall seconds, in MB/s
(1 MB = 10**6 bytes); CPU seconds (user + system of the child) are reported because the VM is shared.
The media MD5 of the E01 runs and the input's MD5 must agree (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import os
import pty
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from _common import (
    OUT_DIR,
    REPO_ROOT,
    Stats,
    Stopwatch,
    add_common_options,
    environment,
    import_forensimg,
    markdown_table,
    prepare_input,
    tool_version,
    warm_cache,
    write_json,
)

WORK = OUT_DIR / "acq"
BASELINE = "ewfacquire -c fast -d sha1"


def _run(args: list[str], tty: bool) -> tuple[float, float, str]:
    """Run a command; stderr on a pseudo-terminal when ``tty`` (drained). Returns (wall, cpu, stderr)."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    captured: list[bytes] = []
    if tty:
        master, slave = pty.openpty()

        def drain() -> None:
            while True:
                try:
                    b = os.read(master, 65536)
                except OSError:
                    return
                if not b:
                    return
                captured.append(b)

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        with Stopwatch("children") as sw:
            proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL,
                                  cwd=REPO_ROOT, check=False)
        os.close(slave)
        t.join(timeout=5)
        os.close(master)
    else:
        with Stopwatch("children") as sw:
            proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT,
                                  check=False)
        captured.append(proc.stderr or b"")
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}): {b''.join(captured)[-2000:].decode(errors='replace')}")
    return sw.wall, sw.cpu, b"".join(captured).decode(errors="replace")


def media_md5(first: Path) -> str:
    """MD5 of the media of an image, read with forensimg."""
    forensimg = import_forensimg("forensimg.hashing")
    with forensimg.open(first) as img:
        md5: str = forensimg.hashing.hash_image(img, ("md5",))["md5"]
    return md5


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0, or 1 if a media MD5 differs from the input's."""
    ap = argparse.ArgumentParser(description="acquire throughput: forensimg (E01, fimg) vs ewfacquire.")
    add_common_options(ap, repeat=1)
    ap.add_argument("--keep", action="store_true", help="keep a freshly generated input")
    a = ap.parse_args(argv)
    size = a.size
    inp = prepare_input(size, a.seed)
    src = inp.path
    env = environment(
        ewfacquire=tool_version("ewfacquire", "-V", words=2),
        commit=tool_version("git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"),
        loadavg_before=os.getloadavg(),
    )
    print(f"input {src} ({size} bytes, {'reused' if inp.reused else 'generated'}); warming the page cache",
          flush=True)  # fmt: skip
    md5_in = warm_cache(src, md5=True).md5
    fx = [sys.executable, "-m", "forensimg", "--no-custody"]
    methods: dict[str, tuple[list[str], bool, Path]] = {
        BASELINE: (
            ["ewfacquire", "-u", "-q", "-c", "fast", "-d", "sha1", "-f", "encase6", "-t", str(WORK / "e"), str(src)],
            False, WORK / "e.E01"),
        "forensimg acquire → E01": ([*fx, "acquire", str(src), str(WORK / "f.E01")], True, WORK / "f.E01"),
        "forensimg acquire → fimg": ([*fx, "acquire", str(src), str(WORK / "f.fimg")], True, WORK / "f.fimg"),
    }  # fmt: skip
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in methods}
    bad = 0
    # the rounds take turns between the methods; each run measures itself (the pty set-up is not timed)
    for r in range(a.repeat):
        for name, (args, tty, first) in methods.items():
            wall, cpu, err = _run(args, tty)
            rounds[name].append({"wall": wall, "cpu": cpu})
            note = ""
            if tty:
                note = " (progress bar drawn)" if "MB/s" in err and "%" in err else " (NO progress bar seen)"
                if not Path(str(first) + ".txt").exists():
                    note += " (NO report)"
            if first.suffix == ".E01":
                got = media_md5(first)
                if got != md5_in:
                    bad += 1
                    note += f" MD5 MISMATCH {got}"
            print(f"round {r + 1} {name}: {wall:.2f} s, {size / wall / 1e6:.0f} MB/s, cpu {cpu:.1f} s{note}",
                  flush=True)  # fmt: skip
    shutil.rmtree(WORK, ignore_errors=True)
    base = min(x["wall"] for x in rounds[BASELINE])
    print()
    summary = {}
    cells = []
    for name, rs in rounds.items():
        stats = Stats.of(x["wall"] for x in rs)
        cpu = min(x["cpu"] for x in rs)
        summary[name] = {"best": stats.best, "median": stats.median, "cpu": cpu, "ratio": base / stats.best}
        cells.append([name, f"{stats.best:.2f}", f"{stats.median:.2f}", f"{size / stats.best / 1e6:.0f}", f"{cpu:.1f}",
                      f"{base / stats.best:.2f}×"])  # fmt: skip
    print(markdown_table(["method", "best s", "median s", "MB/s (best)", "CPU s", "vs ewfacquire"], "lrrrrr", cells))
    if a.json_out:
        write_json(a.json_out, {"environment": env, "size": size, "input_md5": md5_in, "rounds": rounds,
                                "summary": summary})  # fmt: skip
    inp.discard(a.keep)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
