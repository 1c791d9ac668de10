"""Durable records: atomic file replacement and append-only lines (house rule 8).

Reports, hash sidecars and manifests are written to a temporary file in the same folder, synced and moved
into place with :func:`os.replace`, so a reader sees either the old or the new file, never half of one.
Logs only ever gain whole lines: :func:`append_line` takes an exclusive lock, appends with ``O_APPEND``
and syncs before it returns.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from forensimg.errors import WriteError

__all__ = ["append_line", "atomic_write", "fsync_dir"]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Sync a folder so that a rename inside it survives a power loss (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, ``os.replace``, folder fsync).

    Raises:
        WriteError: the file cannot be written.
    """
    p = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(raw)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise WriteError(f"cannot write '{p}': {exc.strerror}", path=p, errno_=exc.errno) from None
    fsync_dir(p.parent)
    return p


def append_line(path: str | os.PathLike[str], line: bytes) -> None:
    """Append one whole line to ``path`` under an exclusive lock, then fsync.

    Raises:
        WriteError: the line cannot be appended.
    """
    if not line.endswith(b"\n") or b"\n" in line[:-1]:
        raise ValueError("append_line takes exactly one line ending in a newline")
    p = Path(path)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(line)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock
    except OSError as exc:
        raise WriteError(f"cannot append to '{p}': {exc.strerror}", path=p, errno_=exc.errno) from None
