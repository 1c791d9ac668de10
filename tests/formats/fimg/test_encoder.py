"""fimg encoder processes: the same image byte for byte as the threads, fallback when a worker dies or fails,
workers that end with the writer (also when the writer's process is killed), and when ``auto`` uses them."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import forensimg
from forensimg.formats.fimg import create_writer
from forensimg.formats.fimg.encoder import EncoderProcesses
from forensimg.formats.fimg.layout import M_ZLIB, RECORD, RECORD_SIZE, split_location
from forensimg.formats.fimg.record import EncodedRun
from tests.helpers import ROOT


def _media(size: int, seed: int = 3) -> bytes:
    """Zero, random and text runs of odd lengths (chunks straddle kinds; the size is not a chunk multiple)."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        k = rng.randrange(3)
        n = rng.randrange(1, 50_000)
        text = b"log line %d ok\n" % rng.randrange(99) * (n // 15)
        out += bytes(n) if k == 0 else rng.randbytes(n) if k == 1 else text
    return bytes(out[:size])


def _write(path: Path, data: bytes, step: int = 300_001, **opts: object) -> forensimg.WriteResult:
    for p in (path, *opts.get("mirror_paths", ())):  # type: ignore[attr-defined]
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    w = create_writer(path, **opts)  # type: ignore[arg-type]
    for i in range(0, len(data), step):
        w.write(data[i : i + step])
    return w.close()


def _chunk_records(paths: tuple[Path, ...]) -> list[bytes]:
    """Every chunk record (header and body) in chunk order, read straight from the segment files."""
    out = []
    with forensimg.open(paths) as img:
        files = [Path(p).read_bytes() for p in img._segs.paths]  # type: ignore[attr-defined]
        for loc in img._locations:  # type: ignore[attr-defined]
            seg, off = split_location(loc)
            stored = RECORD.unpack_from(files[seg - 1], off)[5]
            out.append(files[seg - 1][off : off + RECORD_SIZE + stored])
    return out


@pytest.mark.parametrize(
    "opts",
    [
        {},  # the defaults: 16 KiB chunks, zlib
        {"compression": "zstd", "chunk_size": 4096},
        {"compression": "none", "chunk_size": 65536},
        # checkpoints inside jobs and segment changes: the writer's record-by-record path
        {"chunk_size": 4096, "checkpoint_interval": 100, "segment_size": 250_000},
    ],
    ids=["default", "zstd-4k", "none-64k", "checkpoints-segments"],
)
def test_processes_write_the_same_records_as_threads(tmp_path: Path, opts: dict[str, object]) -> None:
    data = _media(3_000_003)
    a = _write(tmp_path / "p" / "a.fimg", data, encoder="processes", **opts)
    b = _write(tmp_path / "t" / "b.fimg", data, encoder="threads", **opts)
    assert a.details["encoder"] == "processes" and b.details["encoder"] == "threads"
    assert a.details["merkle_root"] == b.details["merkle_root"] and a.hashes == b.hashes
    assert a.details["chunk_count"] == b.details["chunk_count"]
    assert _chunk_records(a.paths) == _chunk_records(b.paths)
    if "segment_size" in opts:
        assert len(a.paths) == len(b.paths) > 3
    rep = forensimg.verify(a.paths)
    assert rep.status == "verified" and rep.chunks_checked == a.details["chunk_count"], rep.faults
    with forensimg.open(a.paths) as img:
        assert img.read() == data


def test_mirrored_copies_from_processes_are_identical(tmp_path: Path) -> None:
    data = _media(2_000_000, seed=5)
    res = _write(tmp_path / "a" / "m.fimg", data, encoder="processes", mirror_paths=[tmp_path / "b" / "m.fimg"])
    assert res.details["encoder"] == "processes"
    assert (tmp_path / "a" / "m.fimg").read_bytes() == (tmp_path / "b" / "m.fimg").read_bytes()
    assert forensimg.verify([tmp_path / "b" / "m.fimg"]).status == "verified"


def test_auto_uses_processes_only_for_a_large_image(tmp_path: Path) -> None:
    small = _write(tmp_path / "s.fimg", _media(1_000_000))
    assert small.details["encoder"] == "threads"
    data = bytes(20 << 20) + _media(2_000_000)  # 20 MiB of zeros cost little to encode
    big = _write(tmp_path / "b.fimg", data, step=1 << 20)
    assert big.details["encoder"] == "processes"
    assert big.details["merkle_root"] == _write(tmp_path / "t.fimg", data, encoder="threads").details["merkle_root"]


def test_a_killed_worker_costs_speed_not_the_image(tmp_path: Path) -> None:
    data = _media(6_000_000, seed=8)
    ref = _write(tmp_path / "ref.fimg", data, encoder="threads")
    w = create_writer(tmp_path / "k.fimg", encoder="processes", chunk_size=4096)
    w.write(data[:1_000_000])
    procs = w._processes()  # type: ignore[attr-defined]
    assert procs is not None and len(procs.pids) == w.workers  # type: ignore[attr-defined]
    victim = procs.pids[0]
    os.kill(victim, signal.SIGKILL)
    for i in range(1_000_000, len(data), 250_000):
        w.write(data[i : i + 250_000])
    res = w.close()
    assert res.details["encoder"].startswith("threads (encoder process")
    assert "encoded again by threads" in res.details["encoder"]
    assert res.hashes == ref.hashes
    assert _chunk_records(res.paths) == _chunk_records(_write(tmp_path / "r4.fimg", data, encoder="threads",
                                                              chunk_size=4096).paths)
    assert forensimg.verify(res.paths).status == "verified"


def test_a_worker_error_is_answered_and_the_job_encoded_by_the_fallback(tmp_path: Path) -> None:
    # ISA-L has no level 9: every job fails inside the worker, which answers with the error
    ep = EncoderProcesses(1, 4096, M_ZLIB, 9, 16, 4, 2)
    try:
        block = b"a line of text that compresses\n" * 1300  # 40,300 bytes: every chunk is deflated
        marker = EncodedRun.from_records([], 0, None)
        job = ep.submit(0, [(block, 0, len(block))], 10, True, lambda: marker)
        assert job is not None
        assert job.result() is marker
        assert ep.error is not None and "encoder process" in ep.error and not ep.usable
        assert ep.submit(10, [(block, 0, 4096)], 1, False, lambda: marker) is None  # no more jobs to it
    finally:
        ep.close()


def _gone(pid: int, timeout: float) -> bool:
    """Wait (without sleeping) until process ``pid`` has exited; True if it did within ``timeout``."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        r, _, _ = select.select([fd], [], [], timeout)
        return bool(r)
    finally:
        os.close(fd)


def test_workers_end_with_the_writer(tmp_path: Path) -> None:
    w = create_writer(tmp_path / "e.fimg", encoder="processes")
    w.write(_media(500_000))
    pids = w._processes().pids  # type: ignore[attr-defined]
    w.close()
    for pid in pids:  # reaped by close(): the pid is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from forensimg.formats.fimg import create_writer
w = create_writer(sys.argv[2], encoder="processes")
w.write(bytes(1 << 20))
print(" ".join(map(str, w._processes().pids)), flush=True)
sys.stdin.readline()  # killed here
"""


def test_workers_exit_when_the_writers_process_is_killed(tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), str(tmp_path / "k.fimg")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    pids = [int(x) for x in p.stdout.readline().split()]
    assert len(pids) >= 1
    p.kill()
    p.wait()
    for pid in pids:  # their job pipes closed with the writer: each reads end-of-file and exits
        assert _gone(pid, 30), f"encoder process {pid} outlived its writer"


def test_no_interpreter_to_start_falls_back_to_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _media(1_500_000, seed=9)
    ref = _write(tmp_path / "r" / "ref.fimg", data, encoder="threads")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    res = _write(tmp_path / "n" / "n.fimg", data, encoder="processes")
    assert res.details["encoder"].startswith("threads (encoder processes could not start")
    assert _chunk_records(res.paths) == _chunk_records(ref.paths)
