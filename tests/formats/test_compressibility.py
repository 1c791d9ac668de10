"""The incompressibility probe: writers store a chunk raw, without deflating it, when its sample does not shrink."""

from __future__ import annotations

import random
from pathlib import Path

import forensimg
from forensimg.compressibility import SAMPLE_BYTES, looks_incompressible
from forensimg.formats.ewf import create_writer as create_e01
from forensimg.formats.fimg import create_writer as create_fimg

CS = 32768
RANDOM = random.Random(7).randbytes(CS)
TEXT = b"".join(b"log line %06d: all quiet\n" % i for i in range(CS // 25 + 1))[:CS]
# a random start, then text: deflating it whole would shrink it, the probe stores it raw
MIXED = RANDOM[:SAMPLE_BYTES] + TEXT[SAMPLE_BYTES:]


def test_probe_tells_random_from_text() -> None:
    assert looks_incompressible(RANDOM)
    assert looks_incompressible(memoryview(RANDOM))
    assert not looks_incompressible(TEXT)
    assert not looks_incompressible(RANDOM[: 2 * SAMPLE_BYTES - 1])  # too short to judge: compress it


def test_e01_fast_stores_probed_chunks_raw_and_best_deflates_them(tmp_path: Path) -> None:
    data = RANDOM + TEXT + MIXED
    for compression, mixed_compressed in (("fast", False), ("best", True)):
        out = tmp_path / f"{compression}.E01"
        w = create_e01(out, compression=compression, chunk_size=CS)
        w.write(data)
        w.close()
        with forensimg.open(out) as img:
            assert img.read() == data
            flags = [img.chunk_location(i)[3] for i in range(3)]  # type: ignore[attr-defined]
        assert flags == [False, True, mixed_compressed], compression


def test_fimg_stores_probed_chunks_raw(tmp_path: Path) -> None:
    sizes = {}
    for name, chunk in (("text", TEXT), ("mixed", MIXED), ("random", RANDOM)):
        for method in ("zlib", "zstd"):
            out = tmp_path / name / f"{method}.fimg"  # same name: the metadata lists segment names
            out.parent.mkdir(exist_ok=True)
            w = create_fimg(out, compression=method, chunk_size=CS)
            w.write(chunk)
            w.close()
            with forensimg.open(out) as img:
                assert img.read() == chunk
            sizes[name, method] = out.stat().st_size
    for method in ("zlib", "zstd"):
        assert sizes["text", method] < sizes["random", method] - CS // 2  # text is deflated
        assert sizes["mixed", method] == sizes["random", method]  # stored raw, like random data


def test_thousands_of_tiny_records_never_pass_iov_max(tmp_path: Path) -> None:
    """Zero chunks are stored in a few bytes, so one flush would gather more buffers than ``writev`` takes
    (IOV_MAX 1024) if the writers placed whole runs without flushing first."""
    data = bytes(5000 * 8192) + TEXT
    for name, make, cs in (("z.E01", create_e01, 8192), ("z.fimg", create_fimg, 4096)):  # the smallest chunks
        w = make(tmp_path / name, chunk_size=cs)
        w.write(data)
        w.close()
        with forensimg.open(tmp_path / name) as img:
            assert img.read() == data
