"""Helper processes of the fimg writer and verifier: start-up, pipes and shared memory (see :mod:`.encoder`
and :mod:`.scanner`).

A worker is a fresh interpreter (``sys.executable``) started without a shell; it imports only the module
it runs and what that needs (not the package ``__init__`` modules, which import every format, construct
and click: 150 ms more per worker) and talks to its parent over two pipes: jobs in, answers out. Its
standard streams go to ``/dev/null`` (a failure reaches the parent as a missing or error answer), it
ignores SIGINT and sits in its own session (the parent decides when it stops), and it exits when its job
pipe closes, which includes the parent's process dying.
"""

from __future__ import annotations

import mmap
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SharedMemory", "Worker", "read_exact", "spawn", "stop_all", "write_all"]

_ROOT = str(Path(__file__).resolve().parents[2])  # the forensimg package folder

# Registers the three packages as plain namespace entries, so that importing the worker's module does not
# run their __init__ modules; the modules a worker imports need nothing from them.
_BOOT = """\
import sys, types
root = sys.argv[1]
for name, sub in (("forensimg", ""), ("forensimg.formats", "/formats"), ("forensimg.formats.fimg", "/formats/fimg")):
    mod = types.ModuleType(name)
    mod.__path__ = [root + sub]
    sys.modules[name] = mod
import importlib
main = getattr(importlib.import_module(sys.argv[2]), sys.argv[3])
sys.exit(main(sys.argv[4:]))
"""


def read_exact(fd: int, n: int) -> bytes:
    """Read ``n`` bytes from a pipe (fewer only at its end)."""
    parts = []
    while n:
        b = os.read(fd, n)
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a pipe."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(eq=False)
class Worker:
    """A started worker: its process, the parent's ends of its pipes, its jobs in flight."""

    proc: Any
    job_fd: int
    reply_fd: int
    pending: int = 0
    dead: bool = False


def spawn(module: str, function: str, args: list[int], pass_fds: tuple[int, ...]) -> Worker:
    """Start ``module.function(argv)`` in a new interpreter; ``args`` follow the job and answer descriptors.

    Raises:
        OSError: the process could not be started.
    """
    import subprocess  # only the parent needs it

    job_r, job_w = os.pipe()
    reply_r, reply_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, _ROOT, module, function, str(job_r), str(reply_w), *map(str, args)],
            pass_fds=(job_r, reply_w, *pass_fds), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except BaseException:
        for fd in (job_r, job_w, reply_r, reply_w):
            os.close(fd)
        raise
    os.close(job_r)
    os.close(reply_w)
    return Worker(proc, job_w, reply_r)


def stop_all(workers: list[Worker]) -> None:
    """Close the workers' pipes (each reads end-of-file, or gets EPIPE for an answer nobody reads) and
    reap them."""
    for w in workers:
        os.close(w.job_fd)
        os.close(w.reply_fd)
    for w in workers:
        try:
            w.proc.wait(timeout=10)
        except Exception:  # pragma: no cover - a worker stuck in the kernel
            w.proc.kill()
            w.proc.wait()


class SharedMemory:
    """An anonymous shared mapping (``memfd``) that workers map by its descriptor."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fd = os.memfd_create("forensimg-fimg", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, size)
            self.map = mmap.mmap(self.fd, size)
        except BaseException:
            os.close(self.fd)
            raise
        self.view = memoryview(self.map)

    def close(self) -> None:
        """Unmap and close (a view still held elsewhere keeps the mapping until it is dropped)."""
        if self.fd < 0:
            return
        self.view.release()
        try:
            self.map.close()
        except BufferError:  # pragma: no cover - an exported slice still alive: unmapped when it is freed
            pass
        os.close(self.fd)
        self.fd = -1
