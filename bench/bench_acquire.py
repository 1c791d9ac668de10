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
import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import pty
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
WORK = OUT_DIR / "acq"


def _load_gen_input() -> ModuleType:
    spec = importlib.util.spec_from_file_location("forensimg_bench_gen_input", BENCH_DIR / "gen_input.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare_input(size: int, seed: int, gen: ModuleType) -> tuple[Path, bool]:
    """The cached benchmark input (shared with bench_hash.py); generated when missing."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"hash-input-{size}-s{seed}-g{gen.GENERATOR_VERSION}"
    path = OUT_DIR / f"{stem}.bin"
    if path.exists() and path.stat().st_size == size:
        return path, True
    summary = gen.generate(path, size, seed)
    meta = {k: v for k, v in summary.items() if k != "regions"}
    (OUT_DIR / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path, False


def warm(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(args: list[str], tty: bool) -> tuple[float, float, str]:
    """Run a command; stderr on a pseudo-terminal when ``tty`` (drained). Returns (wall, cpu, stderr)."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    cpu0 = _cpu_children()
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
        started = time.perf_counter()
        proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL, cwd=ROOT,
                              check=False)
        elapsed = time.perf_counter() - started
        os.close(slave)
        t.join(timeout=5)
        os.close(master)
    else:
        started = time.perf_counter()
        proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, check=False)
        elapsed = time.perf_counter() - started
        captured.append(proc.stderr or b"")
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}): {b''.join(captured)[-2000:].decode(errors='replace')}")
    return elapsed, _cpu_children() - cpu0, b"".join(captured).decode(errors="replace")


def media_md5(first: Path) -> str:
    sys.path.insert(0, str(ROOT))
    import forensimg
    from forensimg.hashing import hash_image

    with forensimg.open(first) as img:
        return hash_image(img, ("md5",))["md5"]


def environment() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ver = subprocess.run(["ewfacquire", "-V"], capture_output=True, text=True, check=False).stdout.split()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                            check=False).stdout.strip()
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ewfacquire": " ".join(ver[:2]) if ver else "unknown",
        "commit": commit,
        "loadavg_before": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0, or 1 if a media MD5 differs from the input's."""
    gen = _load_gen_input()
    ap = argparse.ArgumentParser(description="acquire throughput: forensimg (E01, fimg) vs ewfacquire.")
    ap.add_argument("--size", default="1G")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep a freshly generated input")
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args(argv)
    size = gen.parse_size(a.size)
    src, reused = prepare_input(size, a.seed, gen)
    env = environment()
    print(f"input {src} ({size} bytes, {'reused' if reused else 'generated'}); warming the page cache", flush=True)
    md5_in = warm(src)
    fx = [sys.executable, "-m", "forensimg", "--no-custody"]
    methods: dict[str, tuple[list[str], bool, Path]] = {
        "ewfacquire -c fast -d sha1": (
            ["ewfacquire", "-u", "-q", "-c", "fast", "-d", "sha1", "-f", "encase6", "-t", str(WORK / "e"), str(src)],
            False, WORK / "e.E01"),
        "forensimg acquire → E01": ([*fx, "acquire", str(src), str(WORK / "f.E01")], True, WORK / "f.E01"),
        "forensimg acquire → fimg": ([*fx, "acquire", str(src), str(WORK / "f.fimg")], True, WORK / "f.fimg"),
    }
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in methods}
    bad = 0
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
                  flush=True)
    shutil.rmtree(WORK, ignore_errors=True)
    base = min(x["wall"] for x in rounds["ewfacquire -c fast -d sha1"])
    print()
    print("| method | best s | median s | MB/s (best) | CPU s | vs ewfacquire |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = {}
    for name, rs in rounds.items():
        best = min(x["wall"] for x in rs)
        med = statistics.median(x["wall"] for x in rs)
        cpu = min(x["cpu"] for x in rs)
        summary[name] = {"best": best, "median": med, "cpu": cpu, "ratio": base / best}
        print(f"| {name} | {best:.2f} | {med:.2f} | {size / best / 1e6:.0f} | {cpu:.1f} | {base / best:.2f}× |")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"environment": env, "size": size, "input_md5": md5_in,
                                                "rounds": rounds, "summary": summary}, indent=2) + "\n")
    if not reused and not a.keep:
        src.unlink()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
