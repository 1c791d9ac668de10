"""Crash and resume: SIGKILL or Ctrl-C during a fimg acquisition, then ``--resume`` completes it with the
same media hashes and Merkle root as an uninterrupted run. E01 resume is refused clearly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from tests.acquire.test_cli_acquire import ROOT, run_until_progress

FORENSIMG = [sys.executable, "-m", "forensimg"]

try:
    from forensimg.formats.fimg import resume_writer  # noqa: F401

    HAVE_FIMG = True
except ImportError:  # the fimg writer is not there yet
    HAVE_FIMG = False


def _src(tmp_path: Path, size: int = 16 << 20) -> Path:
    p = tmp_path / "src.bin"
    block = os.urandom(1 << 20)
    p.write_bytes(b"".join(block[i:] + block[:i] + bytes(i * 7 % 65536) for i in range(size >> 20))[:size])
    return p


def _reference(tmp_path: Path, src: Path) -> dict[str, object]:
    out = tmp_path / "ref" / "ref.fimg"
    out.parent.mkdir()
    cp = subprocess.run([*FORENSIMG, "--no-custody", "acquire", str(src), str(out), "--json",
                         "--hash", "sha256,md5"], capture_output=True, text=True, cwd=ROOT, check=True)
    res = json.loads(cp.stdout)
    return {"hashes": res["hashes"], "root": res["targets"][0]["result"]["details"]["merkle_root"]}


@pytest.mark.skipif(not HAVE_FIMG, reason="needs the fimg writer")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_fimg_acquisition_resumes_to_the_same_image(sig: signal.Signals, tmp_path: Path) -> None:
    src = _src(tmp_path)
    out = tmp_path / "case" / "disk.fimg"
    out.parent.mkdir()
    args = ["--no-custody", "acquire", str(src), str(out), "--block-size", "64K", "--hash", "sha256,md5",
            "--checkpoint", "256K"]
    cp = run_until_progress(args, 8 << 20, sig)
    if sig == signal.SIGKILL:
        assert cp.returncode == -signal.SIGKILL
        rep = json.loads(Path(str(out) + ".json").read_text())
        assert rep["status"] == "in progress"  # the report written at the start: never passes for finished
    else:
        assert cp.returncode == 6, cp.stderr
        rep = json.loads(Path(str(out) + ".json").read_text())
        assert rep["status"] == "INCOMPLETE" and rep["result"]["interrupted"]
        assert "--resume" in Path(str(out) + ".txt").read_text()
    # not finished: the image is visibly incomplete
    with forensimg.open(out) as img:
        assert not img.info.complete
    cp2 = subprocess.run([*FORENSIMG, "--no-custody", "acquire", str(src), str(out), "--resume", "--json",
                          "--hash", "sha256,md5"], capture_output=True, text=True, cwd=ROOT)
    assert cp2.returncode == 0, cp2.stderr
    res = json.loads(cp2.stdout)
    assert 0 < res["resumed_from"] < 16 << 20
    assert res["verification"] and res["verification"][0]["ok"]  # a resumed image is always re-read
    ref = _reference(tmp_path, src)
    assert res["hashes"] == ref["hashes"]
    assert res["targets"][0]["result"]["details"]["merkle_root"] == ref["root"]
    with forensimg.open(out) as img:
        assert img.info.stored_hashes["sha256"] == ref["hashes"]["sha256"]  # type: ignore[index]
        assert img.info.complete
    txt = Path(str(out) + ".txt").read_text()
    assert "Resumed from" in txt and "complete" in txt


def test_e01_and_stdin_resume_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _src(tmp_path, 1 << 20)
    assert main(["--no-custody", "acquire", str(src), str(tmp_path / "x.E01"), "--resume"]) == 2
    assert main(["--no-custody", "acquire", "-", str(tmp_path / "x.fimg"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "fimg targets only" in err and "cannot be resumed" in err


@pytest.mark.skipif(not HAVE_FIMG, reason="needs the fimg writer")
def test_resume_from_a_changed_source_fails_verification(tmp_path: Path) -> None:
    src = _src(tmp_path)
    out = tmp_path / "disk.fimg"
    cp = run_until_progress(["--no-custody", "acquire", str(src), str(out), "--block-size", "64K",
                             "--checkpoint", "256K"], 8 << 20, signal.SIGKILL)
    assert cp.returncode == -signal.SIGKILL
    with open(src, "r+b") as f:  # the "source" changed between the runs, inside the committed prefix
        f.write(b"\xff" * 512)
    cp2 = subprocess.run([*FORENSIMG, "--no-custody", "acquire", str(src), str(out), "--resume", "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert cp2.returncode == 1, cp2.stderr
    res = json.loads(cp2.stdout)
    assert res["resumed_from"] > 512 and not res["verification"][0]["ok"]
    assert res["status"] == "VERIFICATION FAILED"
