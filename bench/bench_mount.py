#!/usr/bin/env python3
"""Benchmark: random 4 KiB reads through a forensimg FUSE mount vs through ewfmount, same E01.

Usage (as root, with fuse3 and ewf-tools installed)::

    python bench/bench_mount.py [--size 256M] [--seed 1] [--reads 20000] [--threads 1,4] [--repeat 3]
                                [--modes direct,buffered] [--also="OPTIONS"]... [--callgrind N]
                                [--json-out FILE]

1. Input: ``bench/gen_input.py`` output (40 % zero, 30 % random, 30 % compressible), cached as
   ``bench/out/hash-input-<size>-s<seed>-g<generator version>.bin`` (the file ``bench_hash.py`` uses)
   and reused when present.
2. Image: ``ewfacquire -u -q -f encase6 -c fast -b 64`` of it (32 KiB chunks, one segment) to
   ``bench/out/mount-<size>-s<seed>-fast.E01``, reused when present.
3. Mounts: ``forensimg mount`` (daemon; its default single-threaded FUSE loop, and
   ``--multi-threaded``) and ``ewfmount`` (libfuse 2, one request at a time), each on a fresh folder
   under ``bench/out``; every mount is unmounted at the end of its round, also on failure.
4. Reads: ``--reads`` reads of 4 KiB at seeded random 4 KiB-aligned offsets (the same list for all),
   split over ``T`` reader threads for each ``T`` in ``--threads``, in each mode of ``--modes``:
   ``direct`` opens the media file with ``O_DIRECT`` (every read reaches the FUSE server: the kernel page
   cache never answers), ``buffered`` without it (repeated pages, and whatever the kernel reads ahead,
   come from the page cache, for both mounts alike). The digest of the bytes read must be equal for
   every mount. Each round is a fresh mount, so no side starts with a warm chunk or page cache.
   ``--callgrind N`` instead counts the user-space instructions per read of each server over N
   ``O_DIRECT`` reads under valgrind's callgrind (deterministic; leaves out the kernel).
   ``--also="OPTIONS"`` adds a row for ``forensimg mount OPTIONS`` (e.g. the hidden A/B switches
   ``--mfusepy-read``, ``--no-prefault``), repeatable.
5. CPU: user + system CPU time of the serving process during the reads (``/proc/PID/stat``), per read;
   steadier than wall time on a shared machine.

Best and median of ``--repeat`` rounds (the rounds take turns); reads/s and MB/s (10**6 bytes/s); the
ratio to ewfmount of the best times, of the medians, and paired (median over rounds of the ratio within a
round, the steadiest on a shared machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    OUT_DIR,
    REPO_ROOT,
    add_common_options,
    ewfacquire_cached,
    markdown_table,
    prepare_input,
    random_offsets,
    warm_cache,
    write_json,
)

PAGE = 4096
PIDS: dict[str, int] = {}


def prepare(size: int, seed: int) -> Path:
    """The cached input's cached E01: ``ewfacquire -c fast -b 64`` (32 KiB chunks, one segment)."""
    raw = prepare_input(size, seed).path
    return ewfacquire_cached(raw, OUT_DIR / f"mount-{size}-s{seed}-fast.E01", "-q", "-f", "encase6", "-c", "fast",
                             "-b", "64")  # fmt: skip


def _unmount(mp: Path) -> None:
    for cmd in (["fusermount3", "-u", str(mp)], ["fusermount", "-u", str(mp)], ["umount", "-l", str(mp)]):
        if not os.path.ismount(mp):
            return
        subprocess.run(cmd, capture_output=True, check=False)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pid_serving(mp: Path, program: str) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(program.encode() in a for a in args[:3]) and str(mp).encode() in args:
            return int(entry)
    raise SystemExit(f"cannot find the {program} process serving {mp}")


def mount_forensimg(e01: Path, mp: Path, *extra: str) -> Path:
    p = subprocess.run(
        [sys.executable, "-m", "forensimg", "--no-custody", "mount", "--json", *extra, str(e01), str(mp)],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    if p.returncode:
        raise SystemExit(f"forensimg mount failed: {p.stderr.strip()}")
    PIDS[str(mp)] = json.loads(p.stdout)["pid"]
    return mp / "disk.raw"


def mount_ewfmount(e01: Path, mp: Path) -> Path:
    p = subprocess.run(["ewfmount", str(e01), str(mp)], capture_output=True, text=True, check=False)
    if p.returncode or not os.path.ismount(mp):
        raise SystemExit(f"ewfmount failed: {p.stderr.strip() or p.stdout.strip()}")
    PIDS[str(mp)] = _pid_serving(mp, "ewfmount")
    return mp / "ewf1"


def random_reads(path: Path, offsets: list[int], threads: int, direct: bool = True) -> tuple[float, str]:
    """Read 4 KiB at every offset (O_DIRECT unless not ``direct``) over ``threads`` threads.

    Returns (seconds, digest of the bytes in offset-list order).
    """
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECT", 0) if direct else 0))
    results: dict[int, bytes] = {}
    parts = [offsets[i::threads] for i in range(threads)]
    errors: list[BaseException] = []

    def work(mine: list[int]) -> None:
        buf = mmap.mmap(-1, PAGE)  # page-aligned buffer for O_DIRECT
        try:
            for off in mine:
                n = os.preadv(fd, [buf], off)
                results[off] = bytes(buf[:n])
        except BaseException as exc:
            errors.append(exc)
        finally:
            buf.close()

    ts = [threading.Thread(target=work, args=(p,)) for p in parts]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    os.close(fd)
    if errors:
        raise errors[0]
    h = hashlib.sha256()
    for off in offsets:
        h.update(results[off])
    return dt, h.hexdigest()


def callgrind_counts(e01: Path, offsets: list[int], extra: list[str]) -> dict[str, float]:
    """User-space instructions per O_DIRECT read of each serving process, counted by valgrind's callgrind.

    Each server runs in the foreground under ``valgrind --tool=callgrind``; once its media file appears
    the counters are zeroed (``callgrind_control -z``), the reads are made, and the counters dumped
    (``callgrind_control -d``): the dump holds the reads only. Deterministic, unlike CPU time on a
    shared machine; it leaves out the kernel.
    """
    servers: dict[str, tuple[list[str], str]] = {
        "forensimg mount": ([sys.executable, "-m", "forensimg", "--no-custody", "mount", "--foreground"], "disk.raw"),
        **{f"forensimg mount {x}": ([sys.executable, "-m", "forensimg", "--no-custody", "mount", "--foreground",
                                     *x.split()], "disk.raw") for x in extra},
        "ewfmount": (["ewfmount", "-v"], "ewf1"),
    }  # fmt: skip
    result: dict[str, float] = {}
    for name, (cmd, media_name) in servers.items():
        mp = OUT_DIR / f"mnt-bench-callgrind-{os.getpid()}"
        mp.mkdir(exist_ok=True)
        out = OUT_DIR / f"callgrind-{os.getpid()}.out"
        for old in OUT_DIR.glob(out.name + "*"):
            old.unlink()
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd, str(e01), str(mp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO_ROOT,
        )  # fmt: skip
        try:
            media = mp / media_name
            end = time.monotonic() + 300
            while not media.exists():
                if proc.poll() is not None or time.monotonic() > end:
                    raise SystemExit(f"{name} did not come up under valgrind")
                time.sleep(0.2)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
            random_reads(media, offsets, 1)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
        finally:
            _unmount(mp)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            try:
                mp.rmdir()
            except OSError:
                pass
        dump = Path(f"{out}.1")
        summary = next(line for line in dump.read_text().splitlines() if line.startswith("summary:"))
        result[name] = int(summary.split()[1]) / len(offsets)
        for f in OUT_DIR.glob(out.name + "*"):
            f.unlink()
        print(f"callgrind {name}: {result[name]:,.0f} instructions per read", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(ap, size="256M")
    ap.add_argument("--reads", type=int, default=20000, help="random 4 KiB reads per round (default 20000)")
    ap.add_argument("--threads", default="1,4", help="reader threads, comma-separated (default 1,4)")
    ap.add_argument("--modes", default="direct,buffered", help="direct (O_DIRECT) and/or buffered reads")
    ap.add_argument("--also", action="append", default=[], help="another forensimg mount row with these options")
    ap.add_argument(
        "--callgrind",
        type=int,
        default=0,
        metavar="N",
        help="instead: count user-space instructions per read over N O_DIRECT reads (valgrind)",
    )
    a = ap.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("ewfmount") or not shutil.which("fusermount3"):
        raise SystemExit("needs root, ewfmount (ewf-tools) and fusermount3 (fuse3)")
    size = a.size
    e01 = prepare(size, a.seed)
    offsets = random_offsets(size, a.reads, a.seed, PAGE)
    warm_cache(e01)  # warm the page cache for the image file itself, same for both
    if a.callgrind:
        if not shutil.which("valgrind"):
            raise SystemExit("--callgrind needs valgrind")
        counts = callgrind_counts(e01, offsets[: a.callgrind], a.also)
        if a.json_out:
            write_json(a.json_out, {"benchmark": "bench_mount callgrind", "reads": a.callgrind,
                                    "instructions_per_read": counts})  # fmt: skip
        return 0
    mounters: dict[str, Callable[[Path, Path], Path]] = {
        "forensimg mount": mount_forensimg,
        "forensimg mount --multi-threaded": lambda e, m: mount_forensimg(e, m, "--multi-threaded"),
    }
    for extra in a.also:
        mounters[f"forensimg mount {extra}"] = lambda e, m, x=extra: mount_forensimg(e, m, *x.split())
    mounters["ewfmount"] = mount_ewfmount
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not modes or any(m not in ("direct", "buffered") for m in modes):
        raise SystemExit("--modes takes direct and/or buffered")
    threads_list = [int(t) for t in a.threads.split(",")]
    keys = [(mode, threads) for mode in modes for threads in threads_list]
    rounds: dict[str, dict[tuple[str, int], list[float]]] = {m: {} for m in mounters}
    digests: dict[str, set[str]] = {m: set() for m in mounters}
    cpus: dict[str, dict[tuple[str, int], list[float]]] = {m: {} for m in mounters}
    for r in range(a.repeat):
        for mode, threads in keys:
            for name, mounter in mounters.items():
                mp = OUT_DIR / f"mnt-bench-mount-{os.getpid()}-{len(name)}"
                mp.mkdir(exist_ok=True)
                try:
                    media = mounter(e01, mp)
                    cpu0 = _cpu_seconds(PIDS[str(mp)])
                    dt, digest = random_reads(media, offsets, threads, direct=mode == "direct")
                    cpu = _cpu_seconds(PIDS[str(mp)]) - cpu0
                finally:
                    _unmount(mp)
                    try:
                        mp.rmdir()
                    except OSError:
                        pass
                rounds[name].setdefault((mode, threads), []).append(dt)
                cpus[name].setdefault((mode, threads), []).append(cpu)
                digests[name].add(digest)
                print(
                    f"round {r + 1} {mode} threads={threads} {name}: {dt:.3f} s ({a.reads / dt:,.0f} reads/s), "
                    f"server CPU {cpu:.2f} s ({cpu / a.reads * 1e6:.0f} µs/read)",
                    flush=True,
                )
    same = len(set().union(*digests.values())) == 1
    print()
    print(f"image: {e01.name} ({size:,} bytes media), {a.reads} random 4 KiB reads, best/median of {a.repeat}")
    summary: dict[str, Any] = {}
    cells: list[list[str]] = []
    for mode, threads in keys:
        key = (mode, threads)
        base = min(rounds["ewfmount"][key])
        base_med = statistics.median(rounds["ewfmount"][key])
        for name in mounters:
            ts = rounds[name][key]
            best = min(ts)
            rate = a.reads / best
            ratio = base / best
            ratio_med = base_med / statistics.median(ts)
            # paired: the median over rounds of ewfmount's time / this mount's time in the same round (the
            # rounds take turns, so a pair shares the machine's load of the moment)
            paired = statistics.median(e / t for e, t in zip(rounds["ewfmount"][key], ts, strict=True))
            cpu_us = statistics.median(cpus[name][key]) / a.reads * 1e6
            summary.setdefault(mode, {}).setdefault(str(threads), {})[name] = {
                "best_s": best, "median_s": statistics.median(ts), "rounds_s": ts, "reads_per_s": rate, "ratio": ratio,
                "ratio_median": ratio_med, "ratio_paired": paired, "server_cpu_us_per_read": cpu_us,
                "server_cpu_us_per_read_rounds": [c / a.reads * 1e6 for c in cpus[name][key]],
            }  # fmt: skip
            cells.append([mode, str(threads), name, f"{best:.3f}", f"{statistics.median(ts):.3f}", f"{rate:,.0f}",
                          f"{rate * PAGE / 1e6:.1f}", f"{ratio:.2f}× / {ratio_med:.2f}× / {paired:.2f}×",
                          f"{cpu_us:.0f}"])  # fmt: skip
    print(markdown_table(["reads", "readers", "mount", "best s", "median s", "reads/s (best)", "MB/s",
                          "vs ewfmount (best / median / paired)", "server CPU µs/read (median)"], "lrlrrrrrr", cells))
    print(f"\nsame bytes from both mounts: {same}")
    if a.json_out:
        doc = {
            "benchmark": "bench_mount",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
            "image": str(e01), "size": size, "reads": a.reads, "repeat": a.repeat, "modes": modes,
            "results": summary, "same_bytes": same,
        }  # fmt: skip
        write_json(a.json_out, doc)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
