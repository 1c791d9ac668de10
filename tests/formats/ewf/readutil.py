"""Helpers shared by the EWF reader tests: make images with ewfacquire, read them with pyewf/ewfinfo."""

from __future__ import annotations

import hashlib
import os
import random
import re
from pathlib import Path

from tests.helpers import generator, run

MiB = 1 << 20


def mixed_input(size: int = 3 * MiB) -> bytes:
    """LBA-stamped media (zero/random/text regions) followed by a zero chunk and a random chunk.

    With ``-c fast`` the trailing random 64 KiB are stored uncompressed and the zeros compressed.
    """
    body = generator().make_lba_stamped(size - 2 * 65536, 11)
    rnd = random.Random(5).randbytes(65536)
    return body + bytes(65536) + rnd


def acquire(src: Path, target: Path, *args: str) -> list[Path]:
    """Run ``ewfacquire -u -q -t target args src``; return the segment files made, in name order."""
    run("ewfacquire", "-u", "-q", "-t", target, *args, src)
    files = sorted(p for p in target.parent.iterdir() if p.name.startswith(target.name + "."))
    assert files, f"ewfacquire made nothing for {target}"
    return files


def pyewf_media(first: Path) -> bytes:
    """The whole media as pyewf (current libewf) reads it."""
    import pyewf

    h = pyewf.handle()
    h.open(pyewf.glob(str(first)))
    try:
        return bytes(h.read(h.get_media_size()))
    finally:
        h.close()


def ewfinfo(first: Path, *args: str) -> dict[str, str]:
    """``ewfinfo`` output as a flat dict of ``label → value`` (``MD5``, ``Case number``, ...), in UTC."""
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C.UTF-8"}
    out = run("ewfinfo", *args, first, env=env).stdout
    d: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"^\t([^\t:][^:]*):\t+(.*)$", line)
        if m:
            d[m.group(1).strip()] = m.group(2).strip()
    return d


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
