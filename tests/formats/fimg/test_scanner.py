"""fimg scan processes (verify of a large image): the same runs, data and faults as the threads, on damaged
images; a killed worker costs speed, not the result; the workers end with the scan."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import forensimg
from forensimg.formats.fimg import create_writer
from forensimg.formats.fimg import reader as fimg_reader
from forensimg.formats.fimg.layout import RECORD_SIZE, parse_record, split_location
from tests.helpers import mixed_media

CS = 4096


def _media(size: int, seed: int) -> bytes:
    return mixed_media(size, seed, CS, 8)


def _image(path: Path, data: bytes) -> Path:
    w = create_writer(path, chunk_size=CS, encoder="threads")
    w.write(data)
    return w.close().paths[0]


def _scan_with_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: int,
                         seed: int) -> tuple[bytes, Path]:
    """A fimg of ``chunks`` chunks that verify scans on processes however small it is."""
    data = _media(chunks * CS, seed=seed)
    path = _image(tmp_path / "s.fimg", data)
    monkeypatch.setattr(fimg_reader, "SCAN_PROCESSES_AFTER", 0)
    return data, path


def _joined(runs: list[tuple[int, int, Sequence[bytes | memoryview], list[object]]]) -> bytes:
    return b"".join(b"".join(bytes(p) for p in parts) for _, _, parts, _ in runs)


def _damaged(tmp_path: Path) -> tuple[list[Path], bytes, list[int]]:
    """An image on several segments with flipped data, header and stream bytes and a truncated segment."""
    data = _media(2000 * CS + 555, seed=21)
    w = create_writer(tmp_path / "d.fimg", chunk_size=CS, segment_size=1_000_000, encoder="threads")
    w.write(data)
    paths = list(w.close().paths)
    assert len(paths) >= 3
    with forensimg.open(paths[0]) as img:
        locs = list(img._locations)  # type: ignore[attr-defined]
    hurt = []
    for i, where in ((5, 20), (300, 70), (301, 66), (999, 100), (1500, 64)):
        seg, off = split_location(locs[i])
        raw = bytearray(paths[seg - 1].read_bytes())
        rh = parse_record(bytes(raw[off : off + RECORD_SIZE]))
        assert rh is not None
        if where >= RECORD_SIZE and rh.stored_length <= where - RECORD_SIZE:
            where = 20  # a zero record has no body: its header then
        raw[off + where] ^= 0x5A
        paths[seg - 1].write_bytes(bytes(raw))
        hurt.append(i)
    # the second segment loses its last 100 bytes (its last record, or the checkpoint after it)
    paths[1].write_bytes(paths[1].read_bytes()[:-100])
    return paths, data, hurt


def _runs(img: forensimg.Image, workers: int) -> list[tuple[int, int, bytes, list[object]]]:
    return [(lo, hi, b"".join(bytes(p) for p in parts), faults)
            for lo, hi, parts, faults in img.scan_blocks(workers=workers)]


def test_scan_processes_give_the_threads_runs_data_and_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, data, hurt = _damaged(tmp_path)
    with forensimg.open(paths[0]) as img:
        threads = _runs(img, 1)
    monkeypatch.setattr(fimg_reader, "SCAN_PROCESSES_AFTER", 0)
    with forensimg.open(paths[0]) as img:
        seen: list[object] = []
        real = img.check_chunk
        img.check_chunk = lambda i: (seen.append(i), real(i))[1]  # type: ignore[method-assign]
        procs = _runs(img, 2)
        assert seen and set(seen) <= set(range(img.chunk_count))  # the verifier looked again at the bad ones only
        assert len(seen) < 20
    assert procs == threads
    bad = sorted(f.chunk for _, _, _, faults in procs for f in faults)  # type: ignore[attr-defined]
    assert set(hurt) <= set(bad) and len(bad) <= len(hurt) + 1  # + the truncated segment's last record
    good = b"".join(d for _, _, d, _ in procs)
    assert len(good) == len(data)
    for i in range(0, len(data) // CS):
        if i not in bad:
            assert good[i * CS : (i + 1) * CS] == data[i * CS : (i + 1) * CS]
    # and the verdict of verify is the same
    a = forensimg.verify(paths[0], workers=2, use_custody=False)
    monkeypatch.setattr(fimg_reader, "SCAN_PROCESSES_AFTER", 1 << 60)
    b = forensimg.verify(paths[0], workers=2, use_custody=False)
    assert a.status == b.status == "faults"
    assert a.faults == b.faults  # kind, message, chunk, media range, segment, offset
    assert [(h.algorithm, h.computed) for h in a.hashes] == [(h.algorithm, h.computed) for h in b.hashes]


def test_a_killed_scan_worker_costs_speed_not_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, path = _scan_with_processes(tmp_path, monkeypatch, 3000, seed=4)
    with forensimg.open(path) as img:
        gen = img.scan_blocks(workers=2)
        runs = [next(gen)]
        procs = img._scan_procs  # type: ignore[attr-defined]
        assert procs is not None
        pids = procs.pids
        os.kill(pids[0], signal.SIGKILL)
        runs += list(gen)
        assert img._scan_procs is None  # type: ignore[attr-defined]
    assert _joined(runs) == data
    assert not any(f for *_, f in runs)
    for pid in pids:  # reaped when the scan ended
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_workers_end_when_the_consumer_stops_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, path = _scan_with_processes(tmp_path, monkeypatch, 1500, seed=6)
    with forensimg.open(path) as img:
        gen = img.scan_blocks(workers=2)
        lo, hi, parts, _ = next(gen)
        assert b"".join(bytes(p) for p in parts) == data[lo * CS : hi * CS]
        pids = img._scan_procs.pids  # type: ignore[attr-defined]
        gen.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_no_interpreter_to_start_scans_on_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, path = _scan_with_processes(tmp_path, monkeypatch, 600, seed=8)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with forensimg.open(path) as img:
        gen = img.scan_blocks(workers=2)
        runs = [next(gen)]
        assert img._scan_procs is None  # type: ignore[attr-defined]  # none could start: threads scan
        runs += list(gen)
    assert _joined(runs) == data
    rep = forensimg.verify(path, workers=2, use_custody=False)
    assert rep.status == "verified" and rep.chunks_checked == 600


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failing_structure_helper_prints_nothing_and_check_structure_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    data = _media(300 * CS, seed=12)
    path = _image(tmp_path / "h.fimg", data)

    def boom(self: object) -> None:
        raise RuntimeError("helper failed")

    monkeypatch.setattr(fimg_reader.FimgImage, "prepare_structure", boom)
    rep = forensimg.verify(path, workers=2, use_custody=False)
    assert rep.status == "verified" and rep.chunks_checked == 300
    _out, err = capfd.readouterr()
    assert "helper failed" not in err and "Traceback" not in err
