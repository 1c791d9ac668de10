"""SIGKILL a fimg writer at 24 points (and once while finishing), resume each time, compare with a clean run.

The child process reports its committed media position (``writer.committed``) through a pipe after every
write; the parent kills it once that passes the next kill point (no sleeping: the child waits for the
parent's go-ahead after each report, while its hashing, compressing and syncing threads keep running).
After each kill the unfinished image must open, say it is incomplete and read back exactly the committed
prefix of the input.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import forensimg
from forensimg.formats.fimg import create_writer
from forensimg.image import Range
from forensimg.merkle import merkle_root
from tests.helpers import ROOT

CHUNK = 4096
# not a whole number of chunks; room for 24 kills even when each run overshoots its kill point by the
# writer's pipeline (<= 128 chunks) plus a checkpoint
SIZE = 16 * 1024 * 1024 + 1234
BAD = Range(409_600, 413_696)  # recorded as unreadable (the data there is zeros)
OPTS = {"chunk_size": CHUNK, "checkpoint_interval": 8, "segment_size": 300_000, "hashes": ("md5", "sha256"),
        "workers": 2}

CHILD = r"""
import sys, json
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from forensimg.formats.fimg import create_writer, resume_writer
src, out, opts = sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
bad_start, bad_end, mode = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
opts["hashes"] = tuple(opts["hashes"])
data = open(src, "rb").read()
if out.exists():
    w = resume_writer(out, workers=opts["workers"], encoder=opts["encoder"])
else:
    w = create_writer(out, **opts)
start = w.position
pos = start
print(w.committed, flush=True)
step = 20_000
while pos < len(data):
    piece = data[pos:pos + step]
    w.write(piece)
    pos += len(piece)
    if bad_start >= start and pos >= bad_end and pos - len(piece) < bad_end:
        w.mark_unreadable(bad_start, bad_end - bad_start)
    print(w.committed, flush=True)
    sys.stdin.readline()  # lock-step with the parent, which may kill us now
print("closing", flush=True)
if mode == "pause-close":
    sys.stdin.readline()  # the parent kills us here, or at the next line
res = w.close()
print("done", res.details["merkle_root"], flush=True)
"""


def _input(path: Path) -> bytes:
    rng = random.Random(4)
    parts = []
    while sum(map(len, parts)) < SIZE:
        kind = rng.choice(["zero", "random", "text"])
        n = rng.randrange(1, 40) * 1000
        if kind == "zero":
            parts.append(bytes(n))
        elif kind == "random":
            parts.append(rng.randbytes(n))
        else:
            parts.append(b"".join(b"line %08d of the kill test\n" % rng.randrange(10**8) for _ in range(n // 27 + 1)))
    data = bytearray(b"".join(parts)[:SIZE])
    data[BAD.start : BAD.end] = bytes(BAD.length)
    path.write_bytes(data)
    return bytes(data)


def _run_child(script: Path, src: Path, out: Path, kill_at: int | None, mode: str = "",
               encoder: str = "threads") -> tuple[str, int]:
    import json

    args = [sys.executable, str(script), str(ROOT), str(src), str(out), json.dumps(OPTS | {"encoder": encoder}),
            str(BAD.start),
            str(BAD.end), mode or "-"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    last = ""
    killed = False
    start = None
    for line in p.stdout:
        last = line.strip()
        if start is None:
            start = int(last)
            continue
        if kill_at is not None and (last == "closing" or int(last) >= start + kill_at):
            os.kill(p.pid, signal.SIGKILL)
            killed = True
            break
        if last == "closing" and mode == "pause-close":
            os.kill(p.pid, signal.SIGKILL)
            killed = True
            break
        if last != "closing":
            assert p.stdin is not None
            p.stdin.write("\n")
            p.stdin.flush()
    p.wait(timeout=60)
    err = p.stderr.read() if p.stderr else ""
    if killed:
        assert p.returncode == -signal.SIGKILL
    else:
        assert p.returncode == 0, err
    return last, p.returncode


@pytest.mark.parametrize("encoder", ["threads", "processes"])
def test_kill_at_many_points_then_resume(tmp_path, encoder):
    src = tmp_path / "input.bin"
    data = _input(src)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "img" / "disk.fimg"
    out.parent.mkdir()

    # the uninterrupted reference
    ref_path = tmp_path / "ref.fimg"
    with create_writer(ref_path, **OPTS) as w:  # type: ignore[arg-type]
        w.write(data[: BAD.start])
        w.write(data[BAD.start :])
        w.mark_unreadable(BAD.start, BAD.length)
    ref = w.close()
    digests = [hashlib.sha256(data[i : i + CHUNK]).digest() for i in range(0, len(data), CHUNK)]
    assert ref.details["merkle_root"] == merkle_root(digests).hex()

    # kill once the child has committed this much more (deterministic, varied: 30 KB .. 150 KB)
    kill_points = [30_000 + (k * 7919 % 13) * 10_000 for k in range(24)]
    committed_history = []
    for kp in kill_points:
        _run_child(script, src, out, kp, encoder=encoder)
        with forensimg.open(out) as img:
            assert img.info.complete is False
            assert img.info.details["state"] == "incomplete"
            committed = img.size
            assert committed % CHUNK == 0 or committed == len(data)
            assert img.read() == data[:committed]  # every committed chunk reads back, checked
            assert img.check_structure() == ()
        committed_history.append(committed)
    assert committed_history == sorted(committed_history)
    assert len(set(committed_history)) == len(kill_points)  # every run made progress before it was killed

    # killed while finishing, then resumed once more
    _run_child(script, src, out, None, mode="pause-close", encoder=encoder)
    last, _ = _run_child(script, src, out, None, encoder=encoder)
    assert last.startswith("done ")

    with forensimg.open(out) as img, forensimg.open(ref_path) as rimg:
        assert img.info.complete is True
        assert img.size == len(data)
        assert hashlib.sha256(img.read()).hexdigest() == hashlib.sha256(data).hexdigest()
        assert img.info.details["merkle_root"] == ref.details["merkle_root"] == rimg.info.details["merkle_root"]
        assert dict(img.info.stored_hashes) == dict(ref.hashes) == {
            "md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
        assert img.info.unreadable == (BAD,) == rimg.info.unreadable
        assert img.check_structure() == ()
        assert img.prove_range(0, img.size) == ()
        assert len(img.info.details.get("resumed_at", [])) >= 1
        assert len(img.info.segments) > 1
