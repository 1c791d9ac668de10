#!/usr/bin/env python3
"""Mirroring cost: ``forensimg acquire SRC A`` vs ``forensimg acquire SRC A --mirror B``.

Usage::

    python bench/bench_mirror.py [--size 1G] [--seed 1] [--repeat 3] [--formats raw,fimg,E01]
                                 [--second-dir DIR | --second-fs KIND | --first-fs KIND] [--json-out FILE]

For each format, each round times (taking turns) one target and two targets (the second with
``--mirror``), both from the same cached input (bench/gen_input.py; the page cache is warmed first, so
the source reads from RAM as a fast disk would deliver it). Outputs are deleted and the file systems
synced before each run. The source is read and hashed once in both cases; what mirroring adds is the
second writer's work (the writes; since same-format targets share one writer that encodes once, no
second compression for E01/fimg). The overhead is ``best(two) / best(one) - 1``; the issue asks for at
most 10 %. CPU seconds (user + system of the acquire process) are reported too: on a machine loaded by
other work they show the cost better than wall time.

Where the second target goes: by default beside the first (same file system); ``--second-dir /dev/shm``
puts it in RAM (tmpfs: a write there is a memory copy plus fresh-page allocation, which no second disk
needs); ``--second-fs ext4-loop`` (root) makes an ext4 in a sparse file under bench/out, attaches it with
``losetup --direct-io=on`` (the loop device writes through to the disk, not into the page cache of its
backing file), mounts it and writes the second target there: a second block-device file system, as a
second disk would be (on this VM its backing file shares the one virtual disk with the first target).
``--second-fs ext4-ram`` does the same over a file in /dev/shm whose memory is allocated and touched
before the runs (``fallocate`` plus a write of every page, untimed): a second device with its own
bandwidth, whose writes cost one memory copy in the loop device's kernel thread and no fresh pages
(the nearest stand-in for a second disk this one-disk VM has; a real disk's DMA costs less still).
``--first-fs KIND`` turns it round: the first target (written in both runs) goes on such a file system
and the second one on this machine's disk (bench/out), so that what the second copy adds is a write to
a real block device, whose transfers cost the guest no memory copy (with ``ext4-ram`` first, the loop
device's copy into RAM is in both runs alike).
The loop device and the mount are removed afterwards, also when a run fails.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import (
    OUT_DIR,
    Run,
    Stats,
    add_common_options,
    interleave,
    markdown_table,
    prepare_input,
    warm_cache,
    write_json,
)

EXT = {"raw": ".raw", "fimg": ".fimg", "e01": ".E01", "ewf": ".E01"}
SECOND_FS = ("ext4-loop", "ext4-ram")


def _run(*cmd: str) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout.strip()


@contextmanager
def second_fs(kind: str, size: int) -> Iterator[Path]:
    """A fresh file system of ``kind`` on a loop device (room for one copy of ``size`` bytes and more),
    mounted under bench/out; unmounted, detached and deleted on exit."""
    if kind not in SECOND_FS:
        raise SystemExit(f"unknown --second-fs {kind!r} (known: {', '.join(SECOND_FS)})")
    if os.geteuid() != 0:
        raise SystemExit("--second-fs needs root (losetup, mount)")
    root = OUT_DIR / "mirror-second-fs"
    mnt = root / "mnt"
    backing = root / "ext4.img" if kind == "ext4-loop" else Path("/dev/shm/forensimg-mirror-ext4.img")
    shutil.rmtree(root, ignore_errors=True)
    mnt.mkdir(parents=True)
    nbytes = size * 5 // 4 + (256 << 20)
    with open(backing, "wb") as f:
        if kind == "ext4-loop":
            f.truncate(nbytes)  # sparse: blocks are allocated as the copy is written
        else:
            os.posix_fallocate(f.fileno(), 0, nbytes)  # tmpfs: the pages exist from now on
            block = b"\xa5" * (1 << 20)
            for _ in range(nbytes >> 20):  # and are touched once (first touch is what costs on a VM)
                f.write(block)
    dev = None
    mounted = False
    try:
        # ext4-ram: tmpfs has no O_DIRECT, the loop device writes into the (allocated) pages of its file
        dev = _run("losetup", "--find", "--show", *(["--direct-io=on"] if kind == "ext4-loop" else []),
                   str(backing))
        # inode tables and journal initialised now, not by a background thread during the runs
        _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev)
        _run("mount", dev, str(mnt))
        mounted = True
        yield mnt
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=False, capture_output=True)
        if dev is not None:
            subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        if kind != "ext4-loop":
            backing.unlink(missing_ok=True)


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
    ap = argparse.ArgumentParser(description="forensimg acquire: one target vs two (--mirror).")
    add_common_options(ap)
    ap.add_argument("--formats", default="raw,fimg,E01", help="formats to acquire to (default raw,fimg,E01)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--second-dir", type=Path, default=None,
                       help="folder for the second target (default: bench/out, the same disk as the first); "
                       "e.g. /dev/shm (RAM)")
    where.add_argument("--second-fs", choices=SECOND_FS, default=None,
                       help="put the second target on a fresh file system of this kind on a loop device "
                       "(root; ext4-loop: ext4 in a sparse file under bench/out, losetup --direct-io=on; "
                       "ext4-ram: ext4 in a file in /dev/shm whose memory is allocated beforehand)")
    where.add_argument("--first-fs", choices=SECOND_FS, default=None,
                       help="the other way round: the FIRST target (written in both runs) on such a file system, "
                       "the second one in bench/out (this machine's disk)")
    args = ap.parse_args(argv)
    src = prepare_input(args.size, args.seed).path
    work = OUT_DIR / "mirror-work"
    if args.second_fs:
        with second_fs(args.second_fs, args.size) as mnt:
            return _bench(args, src, work / "a", mnt / "forensimg-mirror-work", f"{args.second_fs} ({mnt})")
    if args.first_fs:
        with second_fs(args.first_fs, args.size) as mnt:
            return _bench(args, src, mnt / "forensimg-mirror-work", work / "b",
                          f"{OUT_DIR} (the first in {args.first_fs}, {mnt})")
    second = (args.second_dir / "forensimg-mirror-work") if args.second_dir else work / "b"
    return _bench(args, src, work / "a", second, str(args.second_dir or OUT_DIR))


def _bench(args: argparse.Namespace, src: Path, first: Path, second: Path, second_name: str) -> int:
    work = OUT_DIR / "mirror-work"
    rows: list[dict[str, Any]] = []
    print(f"second target in {second_name}", flush=True)

    def fresh(_kind: str) -> None:
        """Empty folders, dirty pages written back, the source in the page cache (before every run, untimed)."""
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(first, ignore_errors=True)
        shutil.rmtree(second, ignore_errors=True)
        first.mkdir(parents=True)
        second.mkdir(parents=True)
        subprocess.run(["sync"], check=False)
        warm_cache(src)

    def check(fmt: str, rnd: int, kind: str, run: Run[dict[str, Any]]) -> None:
        if any(t["state"] != "finished" for t in run.result["targets"]):
            raise SystemExit(f"a target did not finish: {run.result['targets']}")
        print(f"{fmt:<5} round {rnd + 1} {kind}: {run.wall:7.3f} s  {args.size / run.wall / 1e6:7.1f} MB/s  "
              f"cpu {run.cpu:7.3f} s", flush=True)

    try:
        for fmt in [f.strip().lower() for f in args.formats.split(",") if f.strip()]:
            ext = EXT[fmt]
            extra = ["--compression", "fast"] if fmt in ("e01", "ewf") else []
            targets = {"one": [first / f"img{ext}"], "two": [first / f"img{ext}", second / f"img{ext}"]}
            runs = interleave(
                {kind: functools.partial(acquire, src, ts, extra) for kind, ts in targets.items()},
                args.repeat,
                cpu="children",  # user + system of the acquire process
                before=fresh,
                after=functools.partial(check, fmt),
                alternate=True,  # "one" first in odd rounds, "two" first in even ones
            )
            if runs["one"][-1].result["hashes"] != runs["two"][-1].result["hashes"]:
                raise SystemExit(f"{fmt}: the hashes differ between one and two targets")
            one, two = (Stats.of(r.wall for r in runs[k]) for k in ("one", "two"))
            cpu = {k: [r.cpu for r in rs] for k, rs in runs.items()}
            rows.append({"format": fmt, "one_best_s": one.best, "two_best_s": two.best,
                         "one_median_s": one.median, "two_median_s": two.median,
                         "overhead_best": two.best / one.best - 1,
                         "rounds": {k: [r.wall for r in rs] for k, rs in runs.items()},
                         "one_cpu_best_s": min(cpu["one"]), "two_cpu_best_s": min(cpu["two"]),
                         "cpu_overhead_best": min(cpu["two"]) / min(cpu["one"]) - 1, "cpu_rounds": cpu})  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(first, ignore_errors=True)
        shutil.rmtree(second, ignore_errors=True)
    print()
    print(markdown_table(
        ["format", "one target best s", "two targets best s", "overhead (best)", "one median s", "two median s",
         "one CPU s", "two CPU s", "CPU overhead"],
        "lrrrrrrrr",
        ([r["format"], f"{r['one_best_s']:.3f}", f"{r['two_best_s']:.3f}", f"{100 * r['overhead_best']:+.1f} %",
          f"{r['one_median_s']:.3f}", f"{r['two_median_s']:.3f}", f"{r['one_cpu_best_s']:.2f}",
          f"{r['two_cpu_best_s']:.2f}", f"{100 * r['cpu_overhead_best']:+.1f} %"] for r in rows),
    ))  # fmt: skip
    if args.json_out:
        write_json(args.json_out, {"size": args.size, "seed": args.seed, "rows": rows,
                                   "second_dir": second_name,
                                   "cpu_count": os.cpu_count()})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
