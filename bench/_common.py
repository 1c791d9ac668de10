"""Shared plumbing for the benchmark scripts in ``bench/`` (one version of each piece).

The scripts import it as ``_common`` (``python bench/bench_x.py`` puts ``bench/`` first on
``sys.path``). Everything here is measurement plumbing; what each script measures, and how it prints
it, stays in the script.

* **Input**: :func:`gen_input` loads ``bench/gen_input.py`` once; :func:`prepare_input` makes or
  reuses the cached input ``bench/out/hash-input-<size>-s<seed>-g<generator version>.bin`` (with a
  ``.json`` sidecar holding the generator summary) and :meth:`BenchInput.discard` removes a freshly
  made one unless it is to be kept; :func:`ewfacquire_cached` makes a cached E01 of it and
  :func:`open_pyewf` opens an E01 with the reference reader.
* **Page cache**: :func:`warm_cache` reads files once (optionally hashing them with MD5).
* **Timing**: :class:`Stopwatch` (wall clock plus CPU seconds of this process, its reaped children,
  or both), :func:`timed`, :func:`interleave` (the rounds take turns between the methods, so every
  method sees the same machine load) and :class:`Stats` (best and median of the rounds).
* **Options**: :func:`add_common_options` (``--size``, ``--seed``, ``--repeat``, ``--json-out``),
  :func:`parse_size`, :func:`size_label`, :func:`random_offsets`.
* **Reporting**: :func:`text_table` / :class:`Column` (fixed width), :func:`markdown_table`,
  :func:`environment`, :func:`tool_version`, :func:`command_line` and :func:`write_json` (atomic).

Throughput everywhere is media bytes / seconds with 1 MB = 10**6 bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import hashlib
import importlib
import importlib.util
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "BENCH_DIR",
    "OUT_DIR",
    "REPO_ROOT",
    "BenchInput",
    "Column",
    "CpuScope",
    "Run",
    "Stats",
    "Stopwatch",
    "Warmed",
    "add_common_options",
    "command_line",
    "cpu_seconds",
    "environment",
    "ewfacquire_cached",
    "file_digest",
    "gen_input",
    "import_forensimg",
    "input_path",
    "interleave",
    "markdown_table",
    "open_pyewf",
    "parse_size",
    "prepare_input",
    "random_offsets",
    "size_label",
    "text_table",
    "timed",
    "tool_version",
    "warm_cache",
    "write_json",
]

BENCH_DIR = Path(__file__).resolve().parent
"""The ``bench/`` folder."""
REPO_ROOT = BENCH_DIR.parent
"""The checkout the benchmarks live in."""
OUT_DIR = BENCH_DIR / "out"
"""Where every benchmark writes (git-ignored): cached inputs and images, work folders, JSON results."""

_READ_BLOCK = 8 << 20  # read size used to warm the page cache and to hash whole files

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

# --------------------------------------------------------------------------- modules


@functools.cache
def gen_input() -> ModuleType:
    """Return ``bench/gen_input.py`` as a module (loaded once; it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("forensimg_bench_gen_input", BENCH_DIR / "gen_input.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_forensimg(*submodules: str) -> ModuleType:
    """Import and return ``forensimg``: the installed one, or else the checkout this script lives in.

    Args:
        submodules: dotted module names to import as well (e.g. ``"forensimg.hashing"``), so that a
            benchmark fails at start-up, not after minutes of work, when the module under test is missing.
    """
    try:
        import forensimg
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT))
        import forensimg
    for name in submodules:
        importlib.import_module(name)
    return forensimg


# --------------------------------------------------------------------------- options


def parse_size(text: str) -> int:
    """Parse ``64M``, ``1G``, ``512KiB``, ``4096`` (binary units) into bytes (``gen_input.parse_size``).

    Raises:
        ValueError: the text is not a whole number with an optional K/M/G/T unit.
    """
    value: int = gen_input().parse_size(text)
    return value


def size_label(size: int) -> str:
    """The shortest binary-unit spelling of ``size`` that :func:`parse_size` reads back (``1G``, ``64M``)."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if size and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return str(size)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def add_common_options(parser: argparse.ArgumentParser, *, size: str = "1G", repeat: int = 3) -> None:
    """Add the options every benchmark takes: ``--size``, ``--seed``, ``--repeat`` and ``--json-out``.

    ``args.size`` is in bytes (parsed with :func:`parse_size`), ``args.json_out`` a :class:`Path` or None.
    """
    parser.add_argument("--size", type=parse_size, default=parse_size(size), help=f"input size (default {size})")
    parser.add_argument("--seed", type=int, default=1, help="input seed (default 1)")
    parser.add_argument(
        "--repeat", type=_positive_int, default=repeat, help=f"rounds; best and median reported (default {repeat})"
    )
    parser.add_argument("--json-out", type=Path, default=None, help="also write the results as JSON to this file")


def random_offsets(size: int, count: int, seed: int, align: int = 4096) -> list[int]:
    """``count`` seeded random ``align``-aligned offsets in ``[0, size)``: the same list for every reader."""
    rng = random.Random(seed)
    return [rng.randrange(0, size // align) * align for _ in range(count)]


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class BenchInput:
    """The benchmark input file, as :func:`prepare_input` found or made it."""

    path: Path
    """``bench/out/hash-input-<size>-s<seed>-g<generator version>.bin``."""
    meta: dict[str, Any]
    """The generator summary (path, size, seed, generator_version, seconds, bytes per kind and sub-kind,
    and ``regions``, the number of regions); ``seconds`` is None when the sidecar had to be rebuilt."""
    reused: bool
    """True when the file was already there (then it is never deleted)."""

    @property
    def meta_path(self) -> Path:
        """The ``.json`` sidecar holding :attr:`meta`."""
        return self.path.with_suffix(".json")

    def discard(self, keep: bool = False) -> None:
        """Delete the input and its sidecar if this run generated them, unless ``keep``."""
        if not keep and not self.reused:
            self.path.unlink(missing_ok=True)
            self.meta_path.unlink(missing_ok=True)


def input_path(size: int, seed: int) -> Path:
    """Where the cached input of ``size`` bytes and ``seed`` lives (the generator version is in the name,
    so a change of the byte stream never reuses a stale file)."""
    return OUT_DIR / f"hash-input-{size}-s{seed}-g{gen_input().GENERATOR_VERSION}.bin"


def _summary_meta(summary: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in summary.items() if k != "regions"}
    meta["regions"] = len(summary["regions"])
    return meta


def _planned_meta(path: Path, size: int, seed: int) -> dict[str, Any]:
    """The summary of an existing input, from the generator's layout alone (no content is generated)."""
    gen = gen_input()
    regions = gen.plan_regions(size, seed)
    per_kind, per_sub = gen.count_bytes(regions)
    return {
        "path": str(path),
        "size": size,
        "seed": seed,
        "generator_version": gen.GENERATOR_VERSION,
        "seconds": None,
        "bytes_per_kind": per_kind,
        "bytes_per_subkind": per_sub,
        "regions": len(regions),
    }


def prepare_input(size: int, seed: int) -> BenchInput:
    """Return the cached benchmark input of ``size`` bytes for ``seed``, generating it when missing.

    A file of the right size is reused (the same size and seed always give the same bytes). A freshly
    generated file is announced on stdout with the generator's summary. The ``.json`` sidecar is written
    with every new file, and rebuilt from the layout when an older script left the file without one.
    """
    gen = gen_input()
    path = input_path(size, seed)
    meta_path = path.with_suffix(".json")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size == size:
        meta: dict[str, Any] | None = None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        if not isinstance(meta, dict) or meta.get("size") != size or meta.get("seed") != seed:
            meta = _planned_meta(path, size, seed)
            meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return BenchInput(path, meta, reused=True)
    print(f"generating {path} ...", flush=True)
    summary = gen.generate(path, size, seed)
    print(gen.format_summary(summary), flush=True)
    meta = _summary_meta(summary)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return BenchInput(path, meta, reused=False)


def ewfacquire_cached(source: Path, e01: Path, *options: str) -> Path:
    """Return ``e01``, first made with ``ewfacquire -u OPTIONS -t TMP SOURCE`` if it does not exist yet.

    ewfacquire appends ``.E01`` to its target; it writes to a hidden temporary name that is renamed to
    ``e01`` only once it succeeded, so an interrupted run never leaves a half image to be reused. The
    image must fit in one segment (the default segment size is 1.4 GiB; pass ``-S`` for more).
    """
    if e01.exists():
        return e01
    stem = e01.with_name(f".{e01.stem}-tmp")
    cmd = ["ewfacquire", "-u", *options, "-t", str(stem), str(source)]
    print(f"ewfacquire -> {e01} ...", flush=True)
    proc = subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ewfacquire failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()[-2000:]}")
    stem.with_name(stem.name + ".E01").rename(e01)
    return e01


@contextlib.contextmanager
def open_pyewf(first: Path) -> Iterator[Any]:
    """Open an E01 (all its segments, found from the first) with pyewf (libewf-python), the reference
    reader; the handle is closed on leaving the block."""
    import pyewf

    handle = pyewf.handle()
    handle.open(pyewf.glob(str(first)))
    try:
        yield handle
    finally:
        handle.close()


# --------------------------------------------------------------------------- page cache and digests


@dataclass(frozen=True)
class Warmed:
    """What :func:`warm_cache` read."""

    seconds: float
    nbytes: int
    md5: str | None
    """MD5 of the bytes read (all files in order) when asked for, else None."""

    @property
    def mb_per_s(self) -> float:
        """Read rate in MB/s (10**6 bytes)."""
        return self.nbytes / self.seconds / 1e6 if self.seconds else 0.0


def warm_cache(*paths: Path, md5: bool = False) -> Warmed:
    """Read every file once (8 MiB reads) so that the methods then read from the page cache."""
    h = hashlib.md5() if md5 else None
    buf = bytearray(_READ_BLOCK)
    view = memoryview(buf)
    total = 0
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(view):
                total += n
                if h is not None:
                    h.update(view[:n])
    return Warmed(time.perf_counter() - started, total, h.hexdigest() if h else None)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a whole file."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


# --------------------------------------------------------------------------- timing

CpuScope = Literal["self", "children", "both"]
"""Whose CPU time to count: this process (all threads), its reaped child processes, or both."""


def cpu_seconds(scope: CpuScope = "both") -> float:
    """User + system CPU seconds used so far by ``scope`` (see :data:`CpuScope`)."""
    total = 0.0
    if scope in ("self", "both"):
        me = resource.getrusage(resource.RUSAGE_SELF)
        total += me.ru_utime + me.ru_stime
    if scope in ("children", "both"):
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += kids.ru_utime + kids.ru_stime
    return total


@dataclass
class Stopwatch:
    """Wall clock and CPU time of a ``with`` block: ``with Stopwatch("children") as sw: ...``; then
    ``sw.wall`` and ``sw.cpu`` in seconds. Child CPU time only counts once the child is waited for."""

    cpu_scope: CpuScope = "both"
    wall: float = 0.0
    cpu: float = 0.0
    _t0: float = field(default=0.0, repr=False)
    _c0: float = field(default=0.0, repr=False)

    def __enter__(self) -> Stopwatch:
        self._c0 = cpu_seconds(self.cpu_scope)
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = cpu_seconds(self.cpu_scope) - self._c0


@dataclass(frozen=True)
class Run(Generic[R]):
    """One timed call: what it returned, its wall seconds and its CPU seconds."""

    result: R
    wall: float
    cpu: float


def timed(fn: Callable[[], R], cpu: CpuScope = "both") -> Run[R]:
    """Call ``fn()`` and time it (:class:`Stopwatch`)."""
    with Stopwatch(cpu) as sw:
        result = fn()
    return Run(result, sw.wall, sw.cpu)


def interleave(
    methods: Mapping[K, Callable[[], R]],
    repeat: int,
    *,
    cpu: CpuScope | Mapping[K, CpuScope] = "both",
    before: Callable[[K], object] | None = None,
    after: Callable[[int, K, Run[R]], object] | None = None,
    alternate: bool = False,
) -> dict[K, list[Run[R]]]:
    """Time every method ``repeat`` times, the rounds taking turns between the methods.

    Args:
        methods: name → zero-argument callable; only the call is timed.
        repeat: rounds.
        cpu: whose CPU time to count (:data:`CpuScope`), or one scope per method.
        before: called with the method name before each run, outside the timing (clean-up, sync, warm).
        after: called with (round index from 0, name, :class:`Run`) after each run, outside the timing
            (checks, progress lines); an exception stops the rounds.
        alternate: reverse the order of the methods in every second round, so that neither always
            follows the other.

    Returns:
        name → the runs in round order.
    """
    runs: dict[K, list[Run[R]]] = {name: [] for name in methods}
    names = list(methods)
    for rnd in range(repeat):
        for name in names[::-1] if alternate and rnd % 2 else names:
            if before is not None:
                before(name)
            run = timed(methods[name], cpu if isinstance(cpu, str) else cpu[name])
            runs[name].append(run)
            if after is not None:
                after(rnd, name, run)
    return runs


@dataclass(frozen=True)
class Stats:
    """Best (least) and median of a list of seconds."""

    best: float
    median: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Iterable[float]) -> Stats:
        """Summarise ``samples`` (at least one)."""
        values = tuple(samples)
        return cls(min(values), statistics.median(values), values)


# --------------------------------------------------------------------------- reporting


@dataclass(frozen=True)
class Column:
    """One column of :func:`text_table`: the title, the width, the format spec of the values and a suffix
    (e.g. ``"x"``) that takes the last place of the width."""

    title: str
    width: int
    spec: str = ""
    align: Literal["<", ">"] = ">"
    suffix: str = ""

    def head(self) -> str:
        """The title, padded to the width."""
        return format(self.title, f"{self.align}{self.width}")

    def cell(self, value: Any) -> str:
        """``value`` formatted, padded to the width."""
        return format(value, f"{self.align}{self.width - len(self.suffix)}{self.spec}") + self.suffix


def text_table(columns: Sequence[Column], rows: Iterable[Sequence[Any]], *, sep: str = " ", rule: bool = True) -> str:
    """A fixed-width text table: the heading, a rule of dashes as long as the heading (if ``rule``), the rows."""
    head = sep.join(c.head() for c in columns)
    lines = [head, "-" * len(head)] if rule else [head]
    lines.extend(sep.join(c.cell(v) for c, v in zip(columns, row, strict=True)) for row in rows)
    return "\n".join(lines)


def markdown_table(header: Sequence[str], align: str, rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` (``---``) or ``r`` (``---:``)."""
    if len(align) != len(header):
        raise ValueError(f"align {align!r} does not match {len(header)} columns")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` ("unknown" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def tool_version(*argv: str, words: int | None = None) -> str:
    """The version a tool prints: the first line of ``argv``'s stdout, or its first ``words`` words."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, check=False).stdout
    except OSError:
        return "unknown"
    if words is not None:
        return " ".join(out.split()[:words]) or "unknown"
    return out.splitlines()[0] if out else "unknown"


def environment(**extra: Any) -> dict[str, Any]:
    """Describe the machine: UTC date, CPU model and count, platform, Python; then ``extra``."""
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **extra,
    }


def command_line(argv: Sequence[str] | None) -> list[str]:
    """The command line of this run, for a JSON report (``argv`` as given to ``main``, or ``sys.argv``)."""
    return [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]


def write_json(path: Path, doc: Any, *, default: Callable[[Any], Any] | None = None) -> None:
    """Write ``doc`` as indented JSON, atomically (``forensimg.records.atomic_write``), creating the folder.

    Args:
        default: passed to :func:`json.dumps` for values JSON cannot hold (e.g. ``str``).
    """
    records = import_forensimg("forensimg.records").records
    path.parent.mkdir(parents=True, exist_ok=True)
    records.atomic_write(path, json.dumps(doc, indent=2, default=default) + "\n")
