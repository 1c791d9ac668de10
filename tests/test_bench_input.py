"""Checks for the benchmark input generator bench/gen_input.py (determinism, size, mix, alignment)."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_script

BENCH = Path(__file__).resolve().parent.parent / "bench"
SIZE = 16 << 20


gen = load_script(BENCH / "gen_input.py", "forensimg_bench_gen_input")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("bench") / "input.bin"
    return path, gen.generate(path, SIZE, 1)


def test_deterministic_and_exact_size(generated: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, summary = generated
    again = gen.generate(tmp_path / "again.bin", SIZE, 1)
    assert path.stat().st_size == SIZE == summary["size"]
    assert _sha256(path) == _sha256(tmp_path / "again.bin")
    assert again["regions"] == summary["regions"]
    other = gen.generate(tmp_path / "other.bin", SIZE, 2)
    assert _sha256(tmp_path / "other.bin") != _sha256(path)
    assert other["regions"] != summary["regions"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.bin", "other.bin"], "no .part left behind"


def test_kind_fractions(generated: tuple[Path, dict[str, Any]]) -> None:
    _, summary = generated
    frac = {k: v / SIZE for k, v in summary["bytes_per_kind"].items()}
    assert 0.30 <= frac["zero"] <= 0.50
    assert 0.20 <= frac["random"] <= 0.40
    assert 0.20 <= frac["compressible"] <= 0.40
    assert sum(summary["bytes_per_kind"].values()) == SIZE
    sub = summary["bytes_per_subkind"]
    assert sum(sub[s] for s in gen.SUBKINDS) == summary["bytes_per_kind"]["compressible"]
    assert sum(1 for s in gen.SUBKINDS if sub[s] > 0) >= 3, "the compressible part should mix sub-kinds"


def test_regions_are_aligned_and_contiguous(generated: tuple[Path, dict[str, Any]]) -> None:
    _, summary = generated
    regions = summary["regions"]
    pos = 0
    for offset, length, kind, subkind in regions:
        assert offset == pos
        assert offset % 4096 == 0
        assert length % 4096 == 0
        assert 4096 <= length <= 8 << 20
        assert kind in gen.KIND_WEIGHTS
        assert subkind == kind or (kind == "compressible" and subkind in gen.SUBKINDS)
        pos += length
    assert pos == SIZE
    assert len(regions) >= 40
    # many 64 KiB chunks must hold two kinds
    changes = [regions[i][0] for i in range(1, len(regions)) if regions[i][2] != regions[i - 1][2]]
    straddling = {c // 65536 for c in changes if c % 65536}
    assert len(straddling) >= 16


def test_region_content_matches_kind(generated: tuple[Path, dict[str, Any]]) -> None:
    path, summary = generated
    data = path.read_bytes()
    for offset, length, kind, subkind in summary["regions"]:
        body = data[offset : offset + length]
        sample = body[: 256 << 10]
        if kind == "zero":
            assert body == bytes(length)
        elif kind == "random":
            assert len(zlib.compress(sample, 1)) > len(sample), f"random region at {offset} compresses"
        else:
            assert body != bytes(length)
            ratio = len(zlib.compress(sample, 6)) / len(sample)
            assert ratio < 0.6, f"{subkind} region at {offset} compresses only to {ratio:.2f}"


def test_unaligned_total_size(tmp_path: Path) -> None:
    size = (1 << 20) + 1000
    summary = gen.generate(tmp_path / "odd.bin", size, 5)
    assert (tmp_path / "odd.bin").stat().st_size == size
    regions = summary["regions"]
    assert all(offset % 4096 == 0 for offset, *_ in regions)
    assert all(length % 4096 == 0 for _, length, *_ in regions[:-1])
    assert regions[-1][0] + regions[-1][1] == size
    assert gen.plan_regions(0, 1) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [("4096", 4096), ("64M", 64 << 20), ("1G", 1 << 30), ("512KiB", 512 << 10), ("2g", 2 << 30), ("16MB", 16 << 20)],
)
def test_parse_size(text: str, value: int) -> None:
    assert gen.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "1X", "-1M", "1.5G"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        gen.parse_size(text)
