"""The images every :class:`forensimg.Image` implementation is checked against.

Each case builds image files in a folder and returns (paths to open, expected media bytes). Formats add
their cases to :data:`CASES` (one ``Case`` per variant: single/multi segment, compressed or not, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import TESTDATA, canonical, write_split


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], tuple[list[Path], bytes]]
    """Make the image in the given empty folder; return what to pass to forensimg.open and the media."""
    format: str
    marks: tuple[str, ...] = field(default=())


def _raw(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    p = tmp / "canonical.raw"
    p.write_bytes(data)
    return [p], data


def _raw_odd(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()[:1000_003]  # not a multiple of 512
    p = tmp / "odd.dd"
    p.write_bytes(data)
    return [p], data


def _split_001(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    paths = write_split(data, tmp / "disk.001", 300_001)  # not sector-aligned members
    return [paths[1]], data  # open through a middle member


def _split_000(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    paths = write_split(data, tmp / "disk.raw.000", 262_144)
    return [paths[-1]], data


def _split_aa(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    paths = write_split(data, tmp / "disk.aa", 100_000)
    return [paths[0]], data


def _split_list(tmp: Path) -> tuple[list[Path], bytes]:
    data = canonical()
    paths = write_split(data, tmp / "part.001", 524_288)
    return paths, data


def _floppy_split(tmp: Path) -> tuple[list[Path], bytes]:
    pieces = [TESTDATA / f"floppy_fat12.raw.00{i}" for i in range(3)]
    return [pieces[0]], b"".join(p.read_bytes() for p in pieces)


CASES: list[Case] = [
    Case("raw", _raw, "raw"),
    Case("raw-odd-size", _raw_odd, "raw"),
    Case("split-001-middle-member", _split_001, "split"),
    Case("split-raw.000-last-member", _split_000, "split"),
    Case("split-aa", _split_aa, "split"),
    Case("split-explicit-list", _split_list, "split"),
    Case("split-floppy-testdata", _floppy_split, "split"),
]


# -- EWF (E01) cases: issue 3 reader -----------------------------------------------------------------


def _ewfacquire(src_data: bytes, tmp: Path, *args: str) -> list[Path]:
    import subprocess

    src = tmp / "src.raw"
    src.write_bytes(src_data)
    subprocess.run(["ewfacquire", "-u", "-q", "-t", str(tmp / "img"), *args, str(src)], check=True, capture_output=True)
    src.unlink()
    return sorted(p for p in tmp.iterdir() if p.name.startswith("img."))


def _ewf_floppy_testdata(tmp: Path) -> tuple[list[Path], bytes]:
    media = b"".join((TESTDATA / f"floppy_fat12.raw.00{i}").read_bytes() for i in range(3))
    return [TESTDATA / "floppy_fat12.E01"], media


def _ewf_multi_segment_testdata(tmp: Path) -> tuple[list[Path], bytes]:
    import pyewf

    first = TESTDATA / "disk_mbr_seg.E01"
    h = pyewf.handle()
    h.open(pyewf.glob(str(first)))
    media = bytes(h.read(h.get_media_size()))
    h.close()
    return [TESTDATA / "disk_mbr_seg.E02"], media  # opened through a middle segment


def _ewf_uncompressed(tmp: Path) -> tuple[list[Path], bytes]:
    files = _ewfacquire(canonical(), tmp, "-f", "encase6", "-c", "none", "-S", "1MiB", "-b", "16")
    assert len(files) == 2
    return [files[-1]], canonical()


def _ewf_4096(tmp: Path) -> tuple[list[Path], bytes]:
    media = canonical()[: 256 * 4096]  # ewfacquire rounds the sector count down: whole 4 KiB sectors only
    return _ewfacquire(media, tmp, "-f", "encase6", "-c", "fast", "-P", "4096", "-b", "16"), media


CASES += [
    Case("ewf-single-compressed-testdata", _ewf_floppy_testdata, "ewf"),
    Case("ewf-multi-segment-testdata", _ewf_multi_segment_testdata, "ewf", marks=("oracle",)),
    Case("ewf-uncompressed-two-segments", _ewf_uncompressed, "ewf", marks=("oracle",)),
    Case("ewf-4096-byte-sectors", _ewf_4096, "ewf", marks=("oracle",)),
]


# -- EWF (E01) written by forensimg: issue 3 writer ---------------------------------------------------


def _ewf_forensimg(tmp: Path, data: bytes, **opts: object) -> tuple[list[Path], bytes]:
    from forensimg.formats.ewf.writer import EWFWriter

    with EWFWriter(tmp / "fw.E01", **opts) as w:  # type: ignore[arg-type]
        w.write(data)
    result = w.close()
    return [result.paths[0]], data + bytes(-len(data) % w.sector_size)


def _ewf_forensimg_fast(tmp: Path) -> tuple[list[Path], bytes]:
    return _ewf_forensimg(tmp, canonical(), compression="fast")


def _ewf_forensimg_multi_odd(tmp: Path) -> tuple[list[Path], bytes]:
    # not a whole number of sectors: the media is the input zero-padded to 2 KiB sectors
    return _ewf_forensimg(
        tmp, canonical()[:1000_003], compression="none", sectors_per_chunk=16, sector_size=2048, segment_size=300_000
    )


CASES += [
    Case("ewf-forensimg-written-fast", _ewf_forensimg_fast, "ewf"),
    Case("ewf-forensimg-written-multi-segment-padded", _ewf_forensimg_multi_odd, "ewf"),
]


# -- fimg: issue 4 ------------------------------------------------------------------------------------


def _fimg(tmp: Path, data: bytes, name: str = "disk.fimg", abort_at: int | None = None,
          **opts: object) -> tuple[list[Path], bytes]:
    from forensimg.formats.fimg import create_writer

    w = create_writer(tmp / name, **opts)
    if abort_at is None:
        w.write(data)
        return [w.close().paths[-1]], data  # open through the last segment
    w.write(data[:abort_at])
    w.abort()  # unfinished: only the checkpointed whole chunks are committed
    cs = int(opts["chunk_size"])  # type: ignore[call-overload]
    return [tmp / name], data[: abort_at // cs * cs]


def _fimg_default(tmp: Path) -> tuple[list[Path], bytes]:
    return _fimg(tmp, canonical())


def _fimg_4k_zlib(tmp: Path) -> tuple[list[Path], bytes]:
    return _fimg(tmp, canonical()[:1000_003], chunk_size=4096, compression="zlib")


def _fimg_zstd_16k(tmp: Path) -> tuple[list[Path], bytes]:
    return _fimg(tmp, canonical() + bytes(70_000), chunk_size=16384, compression="zstd")


def _fimg_none_segments(tmp: Path) -> tuple[list[Path], bytes]:
    return _fimg(tmp, canonical(), name="seg.fimg", chunk_size=8192, compression="none", segment_size=150_000,
                 checkpoint_interval=4)


def _fimg_incomplete(tmp: Path) -> tuple[list[Path], bytes]:
    return _fimg(tmp, canonical(), name="cut.fimg", abort_at=700_000, chunk_size=4096, checkpoint_interval=16)


CASES += [
    Case("fimg-default", _fimg_default, "fimg"),
    Case("fimg-4k-zlib-odd-size", _fimg_4k_zlib, "fimg"),
    Case("fimg-16k-zstd", _fimg_zstd_16k, "fimg"),
    Case("fimg-none-multi-segment", _fimg_none_segments, "fimg"),
    Case("fimg-incomplete", _fimg_incomplete, "fimg"),
]
