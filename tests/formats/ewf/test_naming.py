"""EWF segment naming: E01..E99, EAA..ZZZ, lower-case variants, set discovery from any member."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensimg.formats.ewf.naming import (
    max_segment_number,
    segment_extension,
    segment_number,
    segment_path,
    set_members,
)


def test_every_number_round_trips_and_names_are_unique() -> None:
    names = [segment_extension(n) for n in range(1, max_segment_number() + 1)]
    assert len(set(names)) == len(names) == 14971
    assert names[:3] == ["E01", "E02", "E03"] and names[98:101] == ["E99", "EAA", "EAB"]
    assert names[-1] == "ZZZ"
    assert all(segment_number(x) == i + 1 for i, x in enumerate(names))


@pytest.mark.parametrize(
    ("n", "letter", "ext"),
    [(1, "s", "s01"), (99, "s", "s99"), (100, "s", "saa"), (126, "s", "sba"), (5507, "s", "zzz"),
     (100, "e", "eaa"), (776, "e", "faa"), (100, "L", "LAA")],
)  # fmt: skip
def test_other_set_letters(n: int, letter: str, ext: str) -> None:
    assert segment_extension(n, letter) == ext


@pytest.mark.parametrize("bad", [0, -1, 14972])
def test_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        segment_extension(bad)


def test_not_segment_extensions() -> None:
    assert segment_number("raw") is None or segment_number("raw") > 99  # letters: relative to E
    assert segment_number("E00") is None and segment_number("E1") is None and segment_number("E0A") is None


def test_segment_path() -> None:
    assert segment_path(Path("/x/case.E01"), 100) == Path("/x/case.EAA")
    assert segment_path(Path("/x/case.s01"), 2) == Path("/x/case.s02")


def test_set_members_past_e99(tmp_path: Path) -> None:
    names = [f"img.{segment_extension(n)}" for n in range(1, 103)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "img.txt").write_bytes(b"")  # other case: ignored
    (tmp_path / "other.E01").write_bytes(b"")  # other stem: ignored
    (tmp_path / "img.e01").write_bytes(b"")  # other letter case: ignored
    for given in ("img.E01", "img.E50", "img.EAB"):
        got = set_members(tmp_path / given)
        assert [p.name for p in got] == names


def test_set_members_smart_lower_case(tmp_path: Path) -> None:
    names = [f"img.{segment_extension(n, 's')}" for n in (1, 2, 99, 100, 101)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in set_members(tmp_path / "img.sab")] == names
