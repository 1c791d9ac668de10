"""``forensimg acquire`` from files and standard input: formats, defaults, options, progress, JSON,
report, custody, verify, disk full, interruption, several writers with failure isolation."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main

FORENSIMG = [sys.executable, "-m", "forensimg"]
ROOT = Path(__file__).resolve().parents[2]


def _src(tmp_path: Path, size: int = (2 << 20) + 1234, name: str = "src.bin") -> tuple[Path, bytes]:
    # mixed content: random, zeros, text (compressible and not)
    rnd = os.urandom(size // 2)
    data = (rnd + bytes(size // 4) + b"forensimg " * size)[:size]
    p = tmp_path / name
    p.write_bytes(data)
    return p, data


def _media(path: Path) -> bytes:
    with forensimg.open(path) as img:
        return img.read()


@pytest.mark.parametrize(("ext", "fmt", "hashes"), [
    ("raw", "raw", {"md5", "sha1"}),
    ("dd", "raw", {"md5", "sha1"}),
    ("E01", "ewf", {"md5", "sha1"}),
])
def test_format_from_extension_and_default_hashes(ext: str, fmt: str, hashes: set[str], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src, data = _src(tmp_path, 1 << 20)
    out = tmp_path / f"img.{ext}"
    assert main(["--no-custody", "acquire", str(src), str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["hashes"]) == hashes
    assert res["targets"][0]["format"] == fmt
    assert res["hashes"]["md5"] == hashlib.md5(data).hexdigest()
    assert _media(out) == data
    with forensimg.open(out) as img:
        assert img.info.stored_hashes["md5"] == hashlib.md5(data).hexdigest()


def test_format_option_hash_option_offset_length_and_split(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    src, data = _src(tmp_path)
    out = tmp_path / "part.img"
    args = ["--no-custody", "acquire", str(src), str(out), "--format", "split", "--hash", "sha256",
            "--offset", "2048s", "--length", "1M", "--segment-size", "300K", "--json"]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    part = data[2048 * 512 : 2048 * 512 + (1 << 20)]
    assert res["size"] == 1 << 20 and res["offset"] == 2048 * 512
    assert res["hashes"] == {"sha256": hashlib.sha256(part).hexdigest()}
    paths = res["targets"][0]["result"]["paths"]
    assert len(paths) == 4 and [Path(p).name for p in paths][:2] == ["part.img.001", "part.img.002"]
    assert _media(Path(paths[0])) == part
    rep = json.loads(Path(str(out) + ".json").read_text())
    assert len(rep["segments"][str(out)]) == 4
    assert rep["segments"][str(out)][0]["sha256"] == hashlib.sha256(part[: 300 << 10]).hexdigest()


def test_e01_options_chunk_compression_segments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, data = _src(tmp_path, 3 << 20)
    out = tmp_path / "c.E01"
    assert main(["--no-custody", "acquire", str(src), str(out), "--chunk-size", "64K", "--compression", "best",
                 "--segment-size", "1M", "--case-number", "2026-7", "--evidence-number", "E1",
                 "--description", "USB stick", "--notes", "seized", "--examiner", "Ann", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    paths = res["targets"][0]["result"]["paths"]
    assert len(paths) >= 2
    with forensimg.open(out) as img:
        assert img.info.chunk_size == 65536
        assert img.info.case.case_number == "2026-7" and img.info.case.examiner == "Ann"
        assert img.read() == data


def test_stdin_stream_of_unknown_size(tmp_path: Path) -> None:
    """``cat img | forensimg acquire - out`` for E01, raw (and fimg when its writer exists)."""
    src, data = _src(tmp_path, (1 << 20) + 1000)  # not a whole number of sectors
    exts = ["E01", "raw"]
    try:
        import forensimg.formats.fimg as fm

        if hasattr(fm, "create_writer"):
            exts.append("fimg")
    except ImportError:
        pass
    for ext in exts:
        out = tmp_path / f"stdin.{ext}"
        with open(src, "rb") as f:
            cat = subprocess.Popen(["cat"], stdin=f, stdout=subprocess.PIPE)
            proc = subprocess.run([*FORENSIMG, "--no-custody", "acquire", "-", str(out), "--json",
                                   "--hash", "md5,sha256"], stdin=cat.stdout, capture_output=True, text=True,
                                  cwd=ROOT)
            assert cat.stdout is not None
            cat.stdout.close()
            cat.wait()
        assert proc.returncode == 0, proc.stderr
        res = json.loads(proc.stdout)
        media = _media(out)
        t = res["targets"][0]
        padded = data + bytes(t["padded_bytes"])
        assert media == padded and t["stored_size"] == len(media)
        assert res["size"] == len(data) and res["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
        if ext == "E01":  # E01 stores whole sectors: padded in that copy, which stores its padded hashes
            assert len(media) % 512 == 0 and t["padded_bytes"] == 512 - len(data) % 512
        else:
            assert t["padded_bytes"] == 0
        assert t["hashes"]["sha256"] == hashlib.sha256(media).hexdigest()
        assert res["expected_size"] is None and res["complete"]


def test_verify_rereads_the_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, _ = _src(tmp_path, 1 << 20)
    assert main(["--no-custody", "acquire", str(src), str(tmp_path / "v.E01"), "--verify", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["verification"] and res["verification"][0]["ok"]
    assert "VERIFIED" in (tmp_path / "v.E01.txt").read_text()


def test_verify_detects_a_changed_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the image does not read back as acquired, --verify fails (exit 1)."""
    from forensimg.acquire import engine

    src, _ = _src(tmp_path, 1 << 20)
    real = engine.verify_targets

    def tamper(result: engine.AcquisitionResult, **kw: object) -> list[engine.VerifyOutcome]:
        p = result.targets[0].result.paths[0]  # type: ignore[union-attr]
        with open(p, "r+b") as f:
            f.seek(1000)
            f.write(b"X")
        return real(result)

    monkeypatch.setattr(engine, "verify_targets", tamper)
    assert main(["--no-custody", "acquire", str(src), str(tmp_path / "v.raw"), "--verify", "-q"]) == 1
    assert "VERIFICATION FAILED" in (tmp_path / "v.raw.txt").read_text()


def test_custody_event_and_report(tmp_path: Path) -> None:
    src, data = _src(tmp_path, 1 << 20)
    out = tmp_path / "c.raw"
    assert main(["--examiner", "Bob", "acquire", str(src), str(out), "-q", "--case-number", "K9"]) == 0
    ev = [json.loads(x) for x in (tmp_path / "c.raw.custody.jsonl").read_text().splitlines()]
    assert ev[-1]["action"] == "acquire" and ev[-1]["examiner"] == "Bob"
    assert ev[-1]["inputs"][0]["path"] == str(src)
    outs = {o["path"]: o["sha256"] for o in ev[-1]["outputs"]}
    assert outs[str(out)] == hashlib.sha256(data).hexdigest()
    assert ev[-1]["result"]["media_hashes"]["md5"] == hashlib.md5(data).hexdigest()
    txt = (tmp_path / "c.raw.txt").read_text()
    for needle in ("forensimg", "Command line:", "Host:", "User:", "K9", "Bob", "Started (UTC)", "Finished (UTC)",
                   "Bytes read:", "computed over the data as stored", "Safeguards", "sha256 "):
        assert needle in txt, needle


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    src, _ = _src(tmp_path, 2 << 20)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([*FORENSIMG, "--no-custody", "acquire", str(src), str(tmp_path / "p.raw"),
                                 "--block-size", "256K"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=slave, cwd=ROOT)
        os.close(slave)
        chunks = []
        while True:
            r, _, _ = select.select([master], [], [], 30)
            if not r:
                break
            try:
                b = os.read(master, 4096)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
        proc.wait(timeout=30)
    finally:
        os.close(master)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "100.0%" in screen and "MB/s" in screen and "ETA" in screen and "unreadable 0 sectors" in screen
    assert "2.0 MiB" in screen
    # not a terminal: no bar; --quiet on a terminal: no bar
    proc2 = subprocess.run([*FORENSIMG, "--no-custody", "acquire", str(src), str(tmp_path / "q.raw")],
                           capture_output=True, text=True, cwd=ROOT)
    assert proc2.returncode == 0 and "MB/s" not in proc2.stderr and "%" not in proc2.stderr
    master, slave = pty.openpty()
    proc3 = subprocess.run([*FORENSIMG, "--no-custody", "acquire", str(src), str(tmp_path / "r.raw"), "--quiet"],
                           stdout=subprocess.PIPE, stderr=slave, cwd=ROOT)
    os.close(slave)
    os.set_blocking(master, False)
    try:
        quiet_out = os.read(master, 65536).decode(errors="replace")
    except OSError:
        quiet_out = ""
    os.close(master)
    assert proc3.returncode == 0 and "MB/s" not in quiet_out


def _progress_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ: a small pipe blocks the writer soon if nobody reads
    return r, w


def run_until_progress(args: list[str], at_least: int, sig: signal.Signals) -> subprocess.CompletedProcess[str]:
    """Start ``forensimg`` with ``--progress-fd``, wait until it reports ``at_least`` bytes, send ``sig``."""
    r, w = _progress_pipe()
    proc = subprocess.Popen([*FORENSIMG, *args, "--progress-fd", str(w)], pass_fds=(w,), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    os.close(w)
    buf = b""
    seen = 0
    with os.fdopen(r, "rb", buffering=0) as pr:
        while seen < at_least:
            b = pr.read(512)
            if not b:
                break
            buf += b
            *lines, buf = buf.split(b"\n")
            for line in lines:
                d = json.loads(line)
                if d["phase"] == "acquire":
                    seen = max(seen, d["done"])
        assert seen >= at_least, "the acquisition ended before it could be interrupted"
        proc.send_signal(sig)
        drain = threading.Thread(target=lambda: pr.read(), daemon=True)
        drain.start()
        out, err = proc.communicate(timeout=60)
        drain.join(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_stops_cleanly_with_an_incomplete_report(tmp_path: Path) -> None:
    src, _ = _src(tmp_path, 16 << 20)
    out = tmp_path / "i.raw"
    cp = run_until_progress(["--no-custody", "acquire", str(src), str(out), "--block-size", "64K"], 1 << 20,
                            signal.SIGINT)
    assert cp.returncode == 6, cp.stderr
    rep = json.loads((tmp_path / "i.raw.json").read_text())
    assert rep["status"] == "INCOMPLETE" and rep["result"]["interrupted"] is True
    assert 1 << 20 <= rep["result"]["size"] < 16 << 20
    assert "INCOMPLETE" in (tmp_path / "i.raw.txt").read_text()
    assert not out.exists()  # visibly incomplete: only the .partial file
    assert (tmp_path / "i.raw.partial").exists()


@pytest.fixture
def small_fs(tmp_path: Path) -> Path:
    """A real, tiny file system (tmpfs of 1 MiB) to fill up."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount tmpfs")
    mp = tmp_path / "small"
    mp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mp)], check=True)
    try:
        yield mp
    finally:
        subprocess.run(["umount", "-l", str(mp)], check=False)


@pytest.mark.root
def test_disk_full_is_a_clear_error(small_fs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, _ = _src(tmp_path, 3 << 20)
    rc = main(["--no-custody", "acquire", str(src), str(small_fs / "full.raw"), "-q"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "No space left on device" in err and "full.raw" in err


@pytest.mark.root
def test_one_failing_writer_does_not_stop_the_others(small_fs: Path, tmp_path: Path) -> None:
    from forensimg.acquire.engine import acquire
    from forensimg.acquire.source import open_source
    from forensimg.registry import create

    src, data = _src(tmp_path, 3 << 20)
    failed = []
    with open_source(str(src)) as s:
        w1 = create(small_fs / "a.raw", compute_hashes=False, hashes="md5,sha256")
        w2 = create(tmp_path / "b.E01", compute_hashes=False, hashes="md5,sha256")
        res = acquire(s, [w1, w2], hashes="md5,sha256", block_size=256 << 10, on_target_failed=failed.append)
    a, b = res.targets
    assert a.state == "failed" and "No space left" in (a.error or "") and failed == [a]
    assert a.failed_at is not None and 0 < a.failed_at <= 1 << 20
    assert b.state == "finished" and not res.complete
    assert res.hashes["sha256"] == hashlib.sha256(data).hexdigest()
    assert _media(tmp_path / "b.E01") == data
    with forensimg.open(tmp_path / "b.E01") as img:
        assert img.info.stored_hashes["md5"] == hashlib.md5(data).hexdigest()


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, _ = _src(tmp_path, 4096)
    assert main(["--no-custody", "acquire", str(src), str(tmp_path / "x.unknown")]) == 2
    assert main(["--no-custody", "acquire", str(src), str(tmp_path / "x.raw"), "--compression", "best"]) == 2
    assert main(["--no-custody", "acquire", str(src), str(tmp_path / "x.E01"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume works for fimg targets only" in err
    assert main(["--no-custody", "acquire", str(tmp_path / "missing"), str(tmp_path / "x.raw")]) == 3


@pytest.mark.root
def test_disk_full_fimg_stays_resumable(small_fs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        from forensimg.formats.fimg import resume_writer  # noqa: F401
    except ImportError:
        pytest.skip("needs the fimg writer")
    src, data = _src(tmp_path, 3 << 20)
    data = os.urandom(3 << 20)  # incompressible: it cannot fit in 1 MiB
    src.write_bytes(data)
    out = small_fs / "full.fimg"
    assert main(["--no-custody", "acquire", str(src), str(out), "-q", "--checkpoint", "128K"]) == 3
    assert "No space left on device" in capsys.readouterr().err
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_fs)], check=True)
    assert main(["--no-custody", "acquire", str(src), str(out), "--resume", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["resumed_from"] > 0
    assert res["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert _media(out) == data
