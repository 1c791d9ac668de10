"""Real FUSE mounts of images (root, /dev/fuse, fusermount3): read-only, fail-closed, correct, detached.

Every mount is made by ``python -m forensimg mount`` in a subprocess that exits once the mount is live
(so each test also shows the mount outliving its caller), and is removed in a finalizer even when the
test fails: ``fusermount3 -u``, then ``umount -l``, then the daemon is killed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from forensimg.cli import main
from tests.fs.media import FLOPPY_SHA256, FORMATS, build_disk_raw, disk_variant, sources
from tests.helpers import ROOT, TESTDATA, manifest

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"), reason="needs FUSE 3"),
]

pytest.importorskip("mfusepy")

DISK = manifest()["images"]["disk_mbr.E01"]["media"]
ZEROED = manifest()["images"]["floppy_fat12_corrupt_chunk.E01"]["media_if_bad_chunk_zero_filled"]
BAD = Path(TESTDATA / "floppy_fat12_corrupt_chunk.E01")
FLOPPY_SPLIT = TESTDATA / "floppy_fat12.raw.000"


def _forensimg(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [sys.executable, "-m", "forensimg", "--no-custody", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    if check:
        assert p.returncode == 0, p.stderr
    return p


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _wait(cond: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``cond`` (bounded) — used only for process exit after an unmount."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _teardown(mp: Path, pid: int | None) -> None:
    if os.path.ismount(mp):
        subprocess.run(["fusermount3", "-u", str(mp)], capture_output=True, check=False)
    if os.path.ismount(mp):
        subprocess.run(["umount", "-l", str(mp)], capture_output=True, check=False)
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        if not _wait(lambda: not _alive(pid), 5):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[..., tuple[Path, dict[str, Any]]]]:
    """``mount(image, *options)`` → (mountpoint, the --json summary); unmounted at teardown."""
    made: list[tuple[Path, int | None]] = []

    def do(image: Path, *options: str) -> tuple[Path, dict[str, Any]]:
        mp = tmp_path / f"mnt{len(made)}"
        mp.mkdir()
        made.append((mp, None))
        p = _forensimg("mount", image, mp, "--json", *options)
        doc = json.loads(p.stdout)
        made[-1] = (mp, doc["pid"])
        assert os.path.ismount(mp)  # the mount outlives the `forensimg mount` process that made it
        return mp, doc

    yield do
    for mp, pid in made:
        _teardown(mp, pid)
    assert not any(os.path.ismount(mp) for mp, _ in made)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mountmedia")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@pytest.mark.parametrize("kind", FORMATS)
def test_media_file_partitions_and_info(kind, media_dir, mount):
    paths = disk_variant(kind, media_dir)
    mp, doc = mount(paths[0])
    names = sorted(os.listdir(mp))
    assert names == ["disk.raw", "info.json", "p1-fat16-2048.raw", "p2-ext4-8192.raw"]
    assert (mp / "disk.raw").stat().st_size == DISK["size"]
    assert hashlib.md5((mp / "disk.raw").read_bytes()).hexdigest() == DISK["md5"]
    assert _sha256(mp / "disk.raw") == DISK["sha256"]
    raw = build_disk_raw(media_dir).read_bytes()
    assert (mp / "p1-fat16-2048.raw").read_bytes() == raw[2048 * 512 : 8192 * 512]
    assert (mp / "p2-ext4-8192.raw").read_bytes() == raw[8192 * 512 :]
    info = json.loads((mp / "info.json").read_text())
    assert info["zero_fill"] is False and info["read_only"] is True
    assert info["image"]["size"] == DISK["size"]
    for alg, hexd in info["image"]["stored_hashes"].items():  # E01: the stored hashes are the media's
        assert DISK[alg] == hexd
    if kind.startswith("ewf"):
        assert info["image"]["stored_hashes"]["md5"] == DISK["md5"]
        assert info["image"]["case"]["case_number"].startswith("FORENSIMG-SHARED-00")
    assert [f["name"] for f in doc["files"]] == ["disk.raw", "p1-fat16-2048.raw", "p2-ext4-8192.raw", "info.json"]


def test_strictly_read_only(mount):
    mp, _ = mount(TESTDATA / "disk_mbr.E01" if _ewf() else TESTDATA / "floppy_fat12.raw.000")
    f = mp / "disk.raw"
    refused = (errno.EROFS, errno.EACCES)
    attempts: list[tuple[str, Callable[[], Any]]] = [
        ("open O_WRONLY", lambda: os.open(f, os.O_WRONLY)),
        ("open O_RDWR", lambda: os.open(f, os.O_RDWR)),
        ("open O_APPEND", lambda: os.open(f, os.O_WRONLY | os.O_APPEND)),
        ("open O_TRUNC", lambda: os.open(f, os.O_RDONLY | os.O_TRUNC)),
        ("truncate", lambda: os.truncate(f, 0)),
        ("chmod", lambda: os.chmod(f, 0o666)),
        ("chown", lambda: os.chown(f, 1, 1)),
        ("utime", lambda: os.utime(f, (0, 0))),
        ("create", lambda: os.open(mp / "new.txt", os.O_WRONLY | os.O_CREAT, 0o644)),
        ("mkdir", lambda: os.mkdir(mp / "d")),
        ("unlink", lambda: os.unlink(f)),
        ("rename", lambda: os.rename(f, mp / "other.raw")),
        ("symlink", lambda: os.symlink("disk.raw", mp / "l")),
        ("link", lambda: os.link(f, mp / "h")),
        ("setxattr", lambda: os.setxattr(f, "user.x", b"1")),
        ("rmdir", lambda: os.rmdir(mp)),
    ]
    for what, op in attempts:
        with pytest.raises(OSError) as exc:
            fd = op()
            if isinstance(fd, int):
                os.close(fd)
        assert exc.value.errno in refused or (what == "rmdir" and exc.value.errno == errno.EBUSY), what
    assert sorted(os.listdir(mp))[0] == "disk.raw" and (mp / "disk.raw").stat().st_mode & 0o222 == 0
    with open(f, "rb") as r:  # still readable
        assert len(r.read(512)) == 512


def _ewf() -> bool:
    from tests.fs.media import ewf_available

    return ewf_available()


# the mount's read paths: the lean ctypes callback (default), mfusepy's own one; the loops: forensimg's
# (default; with and without its poll window), libfuse's multithreaded and single-threaded ones
READ_PATHS = [(), ("--mfusepy-read",), ("--poll-us", "0"), ("--multi-threaded",), ("--single-threaded",)]


@pytest.mark.parametrize("options", READ_PATHS,
                         ids=["lean", "mfusepy-read", "no-poll", "multi-threaded", "single-threaded"])
def test_corrupt_chunk_gives_eio_and_is_logged(mount, tmp_path, options):
    if not _ewf():
        pytest.skip("forensimg cannot open E01 yet")
    log = tmp_path / "mount.log"
    mp, _ = mount(BAD, "--log-file", str(log), *options)
    assert json.loads((mp / "info.json").read_text())["zero_fill"] is False
    fd = os.open(mp / "disk.raw", os.O_RDONLY | getattr(os, "O_DIRECT", 0))
    try:
        assert len(os.pread(fd, 65536, 0)) == 65536  # before the bad chunk
        assert len(os.pread(fd, 4096, 262144)) == 4096  # after it
        for offset, size in ((196608, 4096), (192512, 8192), (258048, 4096)):  # inside / across the edges
            with pytest.raises(OSError) as exc:
                os.pread(fd, size, offset)
            assert exc.value.errno == errno.EIO
    finally:
        os.close(fd)
    with pytest.raises(OSError) as exc:
        (mp / "disk.raw").read_bytes()
    assert exc.value.errno == errno.EIO
    assert "corrupt chunk 3 (media bytes 196608..262143)" in log.read_text()
    callback = "mfusepy's" if "--mfusepy-read" in options else "lean"
    loop = {"--multi-threaded": "multithreaded", "--single-threaded": "single-threaded"}.get(
        options[-1] if options else "", "forensimg")  # the default: libfuse 3 here
    assert f"reads served through the {callback} read callback, {loop} FUSE loop" in log.read_text()


def _floppy_zero_filled() -> bytes:
    import forensimg

    with forensimg.open(BAD, zero_fill=True) as img:
        return img.read_at(0, img.size)


def test_eio_is_never_cached_by_the_kernel(mount):
    """With kernel page caching on, good pages next to a corrupt chunk are cached, the error never is."""
    if not _ewf():
        pytest.skip("forensimg cannot open E01 yet")
    expected = _floppy_zero_filled()
    mp, _ = mount(BAD)
    media = mp / "disk.raw"
    for _ in range(2):  # a second open finds the good pages in the page cache (kernel_cache), the bad ones not
        fd = os.open(media, os.O_RDONLY)  # buffered: the kernel reads ahead and caches what succeeded
        try:
            # the last good page before chunk 3 (media 196608..262143), then the first good one after it
            assert os.pread(fd, 4096, 192512) == expected[192512:196608]
            assert os.pread(fd, 4096, 262144) == expected[262144:266240]
            for _ in range(2):  # asked twice: the error comes back both times
                for offset, size in ((196608, 4096), (258048, 4096), (200000, 1), (196608, 131072)):
                    with pytest.raises(OSError) as exc:
                        os.pread(fd, size, offset)
                    assert exc.value.errno == errno.EIO
                # a buffered read that starts on a good page ends short where the bad chunk begins (the
                # kernel returns what it could read: never a byte of the bad chunk); asked there, EIO
                assert os.pread(fd, 8192, 192512) == expected[192512:196608]
            assert os.pread(fd, 4096, 192512) == expected[192512:196608]  # still good after the errors
        finally:
            os.close(fd)
    # O_DIRECT after buffered reads: every request reaches the server, same answers
    fd = os.open(media, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
    try:
        with pytest.raises(OSError) as exc:
            os.pread(fd, 4096, 196608)
        assert exc.value.errno == errno.EIO
    finally:
        os.close(fd)


def test_prefault_cache_memory_touches_the_cache_budget():
    from forensimg.mount.fuse import PREFAULT_LIMIT

    # in a child process: it changes the process's malloc settings
    code = (
        "import forensimg\n"
        "from forensimg.mount import fuse\n"
        f"img = forensimg.open({str(TESTDATA / 'floppy_fat12.raw.000')!r})\n"
        "fuse.set_cache_budget(img, 8)\n"
        "print(img.cache_chunks * img.chunk_size, fuse.prefault_cache_memory(img))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    budget, touched = map(int, p.stdout.split())
    assert budget == 8 << 20
    assert budget <= touched <= PREFAULT_LIMIT


def test_zero_fill_mount(mount):
    if not _ewf():
        pytest.skip("forensimg cannot open E01 yet")
    mp, doc = mount(BAD, "--zero-fill")
    assert doc["zero_fill"] is True
    info = json.loads((mp / "info.json").read_text())
    assert info["zero_fill"] is True and "zeros" in info["zero_fill_note"]
    data = (mp / "disk.raw").read_bytes()
    assert hashlib.sha256(data).hexdigest() == ZEROED["sha256"]
    assert data[196608:262144] == bytes(65536)


def test_ext4_partition_file_loop_mounts(mount, media_dir, tmp_path):
    paths = disk_variant("ewf" if _ewf() else "raw", media_dir)
    mp, _ = mount(paths[0])
    ext = tmp_path / "ext4"
    ext.mkdir()
    p = subprocess.run(
        ["mount", "-o", "ro,loop", str(mp / "p2-ext4-8192.raw"), str(ext)], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    try:
        known = sources()["disk_mbr"]["filesystems"][1]["entries"]
        checked = 0
        for e in known:
            if e["type"] == "r/r" and not e["deleted"]:
                assert hashlib.sha256((ext / e["path"].lstrip("/")).read_bytes()).hexdigest() == e["sha256"]
                checked += 1
        assert checked == 5
        assert not (ext / "deleted_secret.txt").exists()
    finally:
        subprocess.run(["umount", str(ext)], capture_output=True, check=False)
        if os.path.ismount(ext):
            subprocess.run(["umount", "-l", str(ext)], capture_output=True, check=False)
    assert not os.path.ismount(ext)


_READER = """
import hashlib, os, random, sys
path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
size = os.path.getsize(path)
h = hashlib.sha256()
fd = os.open(path, os.O_RDONLY)
for _ in range(n):
    off = rnd.randrange(0, size - 4096)
    h.update(os.pread(fd, rnd.choice((512, 4096, 65536, 200000)), off))
print(h.hexdigest())
"""


def _expected(raw: bytes, seed: int, n: int) -> str:
    rnd = random.Random(seed)
    h = hashlib.sha256()
    for _ in range(n):
        off = rnd.randrange(0, len(raw) - 4096)
        h.update(raw[off : off + rnd.choice((512, 4096, 65536, 200000))])
    return h.hexdigest()


@pytest.mark.parametrize("options", [(), ("--poll-us", "0"), ("--multi-threaded",), ("--single-threaded",)],
                         ids=["forensimg-loop", "no-poll", "multi-threaded", "single-threaded"])
def test_reads_from_several_processes_at_once(mount, media_dir, options):
    paths = disk_variant("ewf-seg" if _ewf() else "split", media_dir)
    mp, _ = mount(paths[0], *options)
    raw = build_disk_raw(media_dir).read_bytes()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _READER, str(mp / "disk.raw"), str(seed), "150"], stdout=subprocess.PIPE, text=True
        )
        for seed in range(6)
    ]
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert results == [_expected(raw, seed, 150) for seed in range(6)]


def test_survives_caller_then_umount(tmp_path, capsys):
    mp = tmp_path / "mnt"
    mp.mkdir()
    # a shell that starts the mount and exits: the mount stays
    sh = subprocess.run(
        ["sh", "-c", f"{sys.executable} -m forensimg --no-custody mount --json {FLOPPY_SPLIT} {mp}; exit 0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    pid = json.loads(sh.stdout)["pid"]
    try:
        assert os.path.ismount(mp) and _alive(pid)
        assert os.getsid(pid) != os.getsid(0)  # its own session: not tied to the caller's terminal
        assert hashlib.sha256((mp / "disk.raw").read_bytes()).hexdigest() == FLOPPY_SHA256
        assert sorted(os.listdir(mp)) == ["disk.raw", "info.json"]  # a floppy: no partition files
        assert main(["umount", str(mp), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["unmounted"] is True
        assert not os.path.ismount(mp)
        assert _wait(lambda: not _alive(pid))  # the daemon ends with its mount
    finally:
        _teardown(mp, pid)


def test_foreground_mount(tmp_path):
    mp = tmp_path / "fg"
    mp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "forensimg", "--no-custody", "mount", "--foreground", "--json",
         str(TESTDATA / "floppy_fat12.raw.000"), str(mp)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the JSON summary is printed once the mount is live
            lines.append(line)
            if line.rstrip() == "}":
                break
        doc = json.loads("".join(lines))
        assert doc["foreground"] is True and doc["pid"] == proc.pid and os.path.ismount(mp)
        assert hashlib.sha256((mp / "disk.raw").read_bytes()).hexdigest() == FLOPPY_SHA256
        assert _forensimg("umount", mp).returncode == 0
        assert proc.wait(timeout=20) == 0
    finally:
        _teardown(mp, proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_mount_errors_are_one_line(tmp_path, mount):
    cases = [
        (["mount", TESTDATA / "floppy_fat12.raw.000", tmp_path / "missing"], "does not exist"),
        (["mount", tmp_path / "nope.E01", tmp_path], "nope.E01"),
        (["umount", tmp_path], "is not a mount point"),
    ]
    mp, _ = mount(TESTDATA / "floppy_fat12.raw.000")
    cases.append((["mount", TESTDATA / "floppy_fat12.raw.000", mp], "already a mount point"))
    for args, text in cases:
        p = _forensimg(*args, check=False)
        assert p.returncode == 3, p.stderr
        assert text in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def _fuse_fd_flags(pid: int) -> int:
    """The file status flags of the daemon's /dev/fuse descriptor (from /proc, octal)."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == "/dev/fuse":
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("flags:"):
                        return int(line.split()[1], 8)
    raise AssertionError("the daemon has no /dev/fuse descriptor")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("options", [(), ("--poll-us", "0"), ("--single-threaded",)],
                         ids=["forensimg-loop", "no-poll", "libfuse-loop"])
def test_own_loop_polls_then_sleeps(mount, options):
    """forensimg's loop reads /dev/fuse non-blocking (libfuse's own loop blocks in read), and an idle mount
    sleeps in poll(2): it uses no CPU while nothing is asked of it."""
    mp, doc = mount(FLOPPY_SPLIT, *options)
    pid = doc["pid"]
    assert hashlib.sha256((mp / "disk.raw").read_bytes()).hexdigest() == FLOPPY_SHA256
    own = "--single-threaded" not in options
    assert bool(_fuse_fd_flags(pid) & os.O_NONBLOCK) == own
    before = _cpu_seconds(pid)
    started = time.perf_counter()
    h = hashlib.sha256()
    block = b"\1" * (1 << 20)
    for _ in range(256):  # fixed work in this process while the mount is idle
        h.update(block)
    busy = time.perf_counter() - started
    used = _cpu_seconds(pid) - before
    assert used <= 0.03 + 0.05 * busy, f"the idle daemon used {used:.2f} s of CPU in {busy:.2f} s"
    assert hashlib.sha256((mp / "disk.raw").read_bytes()).hexdigest() == FLOPPY_SHA256  # still serving


def test_sigterm_ends_an_idle_foreground_mount(tmp_path):
    """A signal reaches forensimg's loop while it sleeps in poll(2): it unmounts and exits 0."""
    mp = tmp_path / "fg"
    mp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "forensimg", "--no-custody", "mount", "--foreground", "--json", str(FLOPPY_SPLIT),
         str(mp)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the JSON summary is printed once the mount is live
            if line.rstrip() == "}":
                break
        assert os.path.ismount(mp)
        assert hashlib.sha256((mp / "disk.raw").read_bytes()).hexdigest() == FLOPPY_SHA256
        assert bool(_fuse_fd_flags(proc.pid) & os.O_NONBLOCK)  # forensimg's loop
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not os.path.ismount(mp)
    finally:
        _teardown(mp, proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
