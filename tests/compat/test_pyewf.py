"""forensimg.compat.pyewf against real pyewf (libewf-python): the same calls, the same answers."""

from __future__ import annotations

import hashlib
import io
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from forensimg.compat import pyewf as shim
from tests.fs.media import build_disk_raw, ewf_available, make_fimg
from tests.helpers import ROOT, TESTDATA, manifest, write_split

real = pytest.importorskip("pyewf")
pytestmark = [pytest.mark.oracle, pytest.mark.skipif(not ewf_available(), reason="forensimg cannot open E01 yet")]

E01S = ["disk_mbr.E01", "disk_mbr_seg.E01", "floppy_fat12.E01", "floppy_fat12_corrupt_chunk.E01"]


def _calls(mod: Any, first: Path, seed: int, zero_fill: bool = False) -> list[Any]:
    """The same script against either module; every result recorded."""
    out: list[Any] = []
    names = mod.glob(str(first))
    out.append([Path(n).name for n in names])
    h = mod.handle(zero_fill=True) if (mod is shim and zero_fill) else mod.handle()
    h.open(names)
    size = h.get_media_size()
    out += [size, h.media_size, h.bytes_per_sector, h.get_bytes_per_sector(), h.get_number_of_sectors()]
    out += [h.get_chunk_size(), h.get_sectors_per_chunk(), h.get_error_granularity(), h.get_media_flags()]
    out += [h.get_hash_values(), h.get_hash_value("MD5"), h.get_hash_value("SHA1"), h.get_hash_value("md5")]
    out += [h.get_header_values(), *(h.get_header_value(k) for k in shim.HEADER_KEYS)]
    out.append(h.get_header_value("no_such_value"))
    rnd = random.Random(seed)
    offsets = [0, 1, 511, 512, 32767, 32768, 65535, size - 8, size - 1, size, size + 100]
    offsets += [rnd.randrange(0, size) for _ in range(40)]
    for off in offsets:
        if zero_fill or "corrupt" not in first.name or not (196608 - 70000 < off < 262144):
            out.append(h.seek(off))  # None for both
            out.append(h.tell())
            n = rnd.choice((1, 17, 512, 4096, 70000))
            out.append(hashlib.md5(h.read(n)).hexdigest())
            out.append((h.tell(), h.get_offset()))
            out.append(hashlib.md5(h.read_buffer_at_offset(n, max(0, off - 3))).hexdigest())
            out.append(h.tell())
    h.seek(100)
    h.seek(50, io.SEEK_CUR)
    out.append(h.tell())
    h.seek(-10, io.SEEK_END)
    out += [h.tell(), h.read(100)]
    for bad in (lambda: h.seek(-1), lambda: h.read(-1)):
        try:
            bad()
            out.append("no error")
        except Exception as exc:  # the exception class must match pyewf's
            out.append(type(exc).__name__)
    h.seek(0)
    if zero_fill or "corrupt" not in first.name:
        out.append(hashlib.sha256(h.read(size)).hexdigest())
    h.close()
    return out


@pytest.mark.parametrize("name", E01S)
def test_same_answers_as_pyewf(name):
    first = TESTDATA / name
    assert _calls(shim, first, 7, zero_fill=True) == _calls(real, first, 7, zero_fill=True)


def test_corrupt_chunk_fails_closed_unless_zero_fill():
    bad = TESTDATA / "floppy_fat12_corrupt_chunk.E01"
    assert _calls(shim, bad, 3) == _calls(real, bad, 3)  # everything away from the bad chunk agrees
    h = shim.handle()
    h.open(shim.glob(bad))
    with pytest.raises(OSError) as exc:
        h.read_buffer_at_offset(4096, 200000)
    assert exc.value.errno == 5 and "chunk 3" in str(exc.value)
    h.close()
    h = shim.handle(zero_fill=True)  # pyewf's behaviour, but recorded
    h.open([str(bad)])
    data = h.read()
    assert (
        hashlib.sha256(data).hexdigest()
        == (manifest()["images"]["floppy_fat12_corrupt_chunk.E01"]["media_if_bad_chunk_zero_filled"]["sha256"])
    )
    assert [f.chunk for f in h.faults] == [3]


SCRIPT = """
import sys
IMPORT_LINE
files = pyewf.glob(sys.argv[1])
handle = pyewf.handle()
handle.open(files)
print(len(files), handle.get_media_size(), handle.bytes_per_sector)
print(handle.get_hash_value("MD5"), handle.get_header_value("case_number"), handle.get_header_value("examiner_name"))
print(handle.get_header_value("acquiry_date"))
handle.seek(0x100000)
print(handle.read(16).hex(), handle.tell())
print(handle.read_buffer_at_offset(32, 4194304 + 1024).hex())
handle.close()
"""


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_script_runs_unchanged_but_for_the_import_line(tz):
    outs = []
    for line in ("import pyewf", "from forensimg.compat import pyewf"):
        code = SCRIPT.replace("IMPORT_LINE", line)
        p = subprocess.run(
            [sys.executable, "-c", code, str(TESTDATA / "disk_mbr_seg.E02")],
            capture_output=True, text=True, cwd=ROOT, env={"TZ": tz, "PATH": "/usr/bin:/bin"}, check=False,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout)
    assert outs[0] == outs[1]
    assert "3 8388608 512" in outs[0] and "FORENSIMG-SHARED-002" in outs[0]


def test_shim_on_raw_split_and_fimg(tmp_path):
    raw = build_disk_raw(tmp_path)
    media = raw.read_bytes()
    write_split(media, tmp_path / "disk.001", 3_000_000)
    variants = [[str(raw)], shim.glob(tmp_path / "disk.002")]
    try:
        variants.append([str(make_fimg(raw, tmp_path / "disk.fimg"))])
    except Exception:
        pass  # fimg support lands in parallel
    assert [Path(p).name for p in variants[1]] == ["disk.001", "disk.002", "disk.003"]
    rnd = random.Random(1)
    for names in variants:
        h = shim.handle()
        h.open(names)
        assert h.get_media_size() == len(media) and h.bytes_per_sector == 512
        assert h.get_number_of_sectors() == 16384
        for _ in range(30):
            off, n = rnd.randrange(0, len(media)), rnd.choice((1, 512, 5000, 100000))
            assert h.seek(off) is None
            assert h.read(n) == media[off : off + n] and h.tell() == min(off + n, len(media))
            assert h.read_buffer_at_offset(n, off) == media[off : off + n]
        h.seek(0, io.SEEK_END)
        assert h.read(10) == b""
        assert isinstance(h.get_hash_values(), dict) and isinstance(h.get_header_values(), dict)
        h.close()
    with pytest.raises(OSError):
        h.read(1)
    assert shim.glob(raw) == [str(raw)]
    assert shim.check_file_signature(TESTDATA / "disk_mbr.E01") and not shim.check_file_signature(raw)
    with pytest.raises(OSError):
        shim.glob(tmp_path / "missing.E01")
    with pytest.raises(ValueError):
        shim.handle().open([str(raw)], "w")
