"""Checks for bench/_common.py, the plumbing the benchmark scripts share (input cache, rounds, tables)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("forensimg_bench_common", BENCH / "_common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


common = _load()


@pytest.fixture
def out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(common, "OUT_DIR", tmp_path)
    return tmp_path


def test_prepare_input_generates_then_reuses_and_discards(out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    size = 1 << 20
    first = common.prepare_input(size, 3)
    assert first.path == out_dir / f"hash-input-{size}-s3-g{common.gen_input().GENERATOR_VERSION}.bin"
    assert first.path.stat().st_size == size and not first.reused
    assert "generating" in capsys.readouterr().out
    assert json.loads(first.meta_path.read_text())["regions"] == first.meta["regions"] > 0
    digest = hashlib.sha256(first.path.read_bytes()).hexdigest()

    again = common.prepare_input(size, 3)
    assert again.reused and again.meta == first.meta
    assert capsys.readouterr().out == "", "a reused input is not announced"
    again.discard()  # reused: never deleted
    assert again.path.exists()

    # a file left without its sidecar (by an older script) gets the sidecar rebuilt from the layout
    first.meta_path.unlink()
    rebuilt = common.prepare_input(size, 3)
    assert rebuilt.reused and rebuilt.meta["seconds"] is None
    assert {k: v for k, v in rebuilt.meta.items() if k != "seconds"} == {
        k: v for k, v in first.meta.items() if k != "seconds"
    }
    assert hashlib.sha256(rebuilt.path.read_bytes()).hexdigest() == digest

    first.discard(keep=True)
    assert first.path.exists()
    first.discard()
    assert not first.path.exists() and not first.meta_path.exists()


def test_warm_cache_reads_and_hashes_every_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 10_000_000)
    b.write_bytes(b"y" * 123)
    warmed = common.warm_cache(a, b, md5=True)
    assert warmed.nbytes == 10_000_123
    assert warmed.md5 == hashlib.md5(a.read_bytes() + b.read_bytes()).hexdigest()
    assert common.warm_cache(a).md5 is None
    assert common.file_digest(b) == hashlib.sha256(b"y" * 123).hexdigest()


def test_interleave_takes_turns_and_keeps_hooks_out_of_the_rounds() -> None:
    calls: list[str] = []
    runs = common.interleave(
        {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2},
        3,
        before=lambda name: calls.append(f"before {name}"),
        after=lambda rnd, name, run: calls.append(f"after {rnd} {name} {run.result}"),
        alternate=True,
    )
    order = [c for c in calls if c in ("a", "b")]
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert calls[:3] == ["before a", "a", "after 0 a 1"]
    assert [r.result for r in runs["b"]] == [2, 2, 2]
    assert all(r.wall >= 0 and r.cpu >= 0 for rs in runs.values() for r in rs)
    stats = common.Stats.of([3.0, 1.0, 2.0, 10.0])
    assert (stats.best, stats.median) == (1.0, 2.5)


def test_tables() -> None:
    md = common.markdown_table(["method", "best s"], "lr", [["x", "1.000"], ["y", "2.000"]])
    assert md.splitlines() == ["| method | best s |", "|---|---:|", "| x | 1.000 |", "| y | 2.000 |"]
    with pytest.raises(ValueError):
        common.markdown_table(["a", "b"], "l", [])
    cols = (common.Column("method", 8, align="<"), common.Column("ratio", 7, ".2f", suffix="x"))
    text = common.text_table(cols, [["abc", 1.5]])
    assert text.splitlines() == ["method     ratio", "----------------", "abc        1.50x"]
    assert common.text_table(cols, [], sep="", rule=False) == "method    ratio"


@pytest.mark.parametrize("text", ["4096", "64M", "1G", "512K", "3000", "2T"])
def test_size_label_round_trips(text: str) -> None:
    size = common.parse_size(text)
    assert common.parse_size(common.size_label(size)) == size
    assert common.size_label(64 << 20) == "64M"


def test_random_offsets_are_seeded_and_aligned() -> None:
    offsets = common.random_offsets(1 << 24, 500, seed=5)
    assert offsets == common.random_offsets(1 << 24, 500, seed=5) != common.random_offsets(1 << 24, 500, seed=6)
    assert all(o % 4096 == 0 and 0 <= o < 1 << 24 for o in offsets)


def test_common_options() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    common.add_common_options(ap, size="256M", repeat=1)
    args = ap.parse_args([])
    assert (args.size, args.seed, args.repeat, args.json_out) == (256 << 20, 1, 1, None)
    args = ap.parse_args(["--size", "64M", "--json-out", "x.json", "--repeat", "2"])
    assert (args.size, args.repeat, args.json_out) == (64 << 20, 2, Path("x.json"))
    with pytest.raises(SystemExit):
        ap.parse_args(["--repeat", "0"])


def test_write_json_is_atomic_and_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "r.json"
    common.write_json(target, {"a": Path("p")}, default=str)
    assert json.loads(target.read_text()) == {"a": "p"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]
