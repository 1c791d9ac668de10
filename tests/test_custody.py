from __future__ import annotations

import json
import multiprocessing

from forensimg.custody import CustodyEvent, CustodyLog, record_event
from forensimg.image import FaultKind


def _append_many(path: str, n: int, tag: str) -> None:
    log = CustodyLog(path)
    for i in range(n):
        log.append(CustodyEvent("note", examiner=tag, result={"i": i, "pad": "x" * 3000}))


def test_chain_intact_and_fields(tmp_path):
    log = CustodyLog(tmp_path / "d.raw.custody.jsonl")
    for i in range(3):
        log.append(CustodyEvent("verify", examiner="E", result={"n": i}))
    ev = log.events()
    assert [e["seq"] for e in ev] == [1, 2, 3]
    assert ev[0]["prev_sha256"] is None
    assert ev[1]["at"].endswith("Z") and ev[1]["host"] and ev[1]["tool"].startswith("forensimg")
    assert log.check_chain() == ()


def test_edit_delete_reorder_are_detected(tmp_path):
    p = tmp_path / "c.jsonl"
    log = CustodyLog(p)
    for i in range(4):
        log.append(CustodyEvent("note", result={"n": i}))
    lines = p.read_bytes().splitlines(keepends=True)

    p.write_bytes(b"".join([*lines[:1], lines[1].replace(b'"n":1', b'"n":9'), *lines[2:]]))
    faults = log.check_chain()
    assert faults and faults[0].kind == FaultKind.CHAIN_BROKEN and "line 2" in faults[0].detail
    assert any("line 3" in f.detail for f in faults)  # the next link breaks too

    p.write_bytes(b"".join(lines[:1] + lines[2:]))
    assert "line 2" in log.check_chain()[0].detail

    p.write_bytes(b"".join([lines[1], lines[0], *lines[2:]]))
    assert "line 1" in log.check_chain()[0].detail


def test_concurrent_writers_never_interleave(tmp_path):
    p = str(tmp_path / "conc.jsonl")
    procs = [multiprocessing.Process(target=_append_many, args=(p, 25, f"w{k}")) for k in range(4)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join()
    log = CustodyLog(p)
    events = log.events()
    assert len(events) == 100
    assert all(json.dumps(e) for e in events)
    assert log.check_chain() == ()


def test_record_event_beside_image(tmp_path):
    img = tmp_path / "disk.E01"
    img.write_bytes(b"x")
    rec = record_event(img, "verify", examiner="Ann", result={"status": "verified"})
    assert (tmp_path / "disk.E01.custody.jsonl").exists()
    assert rec["examiner"] == "Ann" and rec["seq"] == 1


def _verify_many(image: str, n: int) -> None:
    import contextlib
    import io

    from forensimg.cli import main

    for _ in range(n):
        with contextlib.redirect_stdout(io.StringIO()):
            main(["verify", image])


def test_concurrent_verify_commands_keep_the_chain(tmp_path):
    """Several `forensimg verify` processes on one image: one whole event each, chain intact."""
    img = tmp_path / "d.raw"
    img.write_bytes(b"\x5a" * 8192)
    procs = [multiprocessing.Process(target=_verify_many, args=(str(img), 5)) for _ in range(3)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join()
    log = CustodyLog(tmp_path / "d.raw.custody.jsonl")
    events = log.events()
    assert len(events) == 15 and {e["action"] for e in events} == {"verify"}
    assert [e["seq"] for e in events] == list(range(1, 16))
    assert log.check_chain() == ()


def test_artifact_ref_of_a_block_device_has_its_size():
    import os
    import stat as st_
    from pathlib import Path

    from forensimg.custody import ArtifactRef

    devs = [f"/dev/{n}" for n in ("vda", "sda", "nvme0n1", "xvda") if os.path.exists(f"/dev/{n}")]
    devs = [d for d in devs if st_.S_ISBLK(os.stat(d).st_mode)]
    if not devs:
        import pytest

        pytest.skip("no block device node here")
    name = os.path.basename(devs[0])
    expected = int(Path(f"/sys/class/block/{name}/size").read_text()) * 512
    assert expected > 0
    assert ArtifactRef.of(devs[0]).size == expected
