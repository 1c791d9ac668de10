"""header / header2 / xheader parsing: encodings, line ends, missing and extra keys, merging, dates."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pytest

from forensimg.errors import FormatError
from forensimg.formats.ewf.header import (
    case_from_values,
    decode_header2_text,
    merge_headers,
    parse_header_date,
    parse_header_section,
    parse_header_text,
)

ENCASE6_HEADER2 = (
    "3\nmain\na\tc\tn\te\tt\tmd\tsn\tav\tov\tm\tu\tp\tdc\n"
    "desc\tcase1\tev1\texaminer\tnotes\tWDC WD10\tWD-123\t20140813\tLinux\t1795835013\t1795835013\t0\t\n\n"
    "srce\n0\t1\np\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq\n0\t0\n\t\t\t\t\t-1\t-1\t\t\t\n\n"
    "sub\n0\t1\np\tn\tid\tnu\tco\tgu\n0\t0\n\t\t\t\t1\t\n\n"
)
ENCASE_HEADER = (
    "1\r\nmain\r\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\r\n"
    "case1\tev1\tdesc\texaminer\tnotes\t20140813\tLinux\t2026 11 28 3 3 33\t2026 11 28 3 3 34\t0\r\n\r\n"
)


def test_header2_categories_and_values() -> None:
    h = parse_header_section(zlib.compress(b"\xff\xfe" + ENCASE6_HEADER2.encode("utf-16-le")), "header2")
    assert h.category_count == 3 and list(h.categories) == ["main", "srce", "sub"]
    assert h.main["md"] == "WDC WD10" and h.main["sn"] == "WD-123" and h.main["dc"] == ""
    assert h.categories["srce"]["lo"] == "-1" and h.categories["sub"]["co"] == "1"
    assert h.keys[:3] == ("a", "c", "n") and not h.crlf


def test_header_crlf_and_local_date_taken_as_utc() -> None:
    h = parse_header_text(ENCASE_HEADER)
    assert h.crlf and h.main["c"] == "case1"
    assert parse_header_date(h.main["m"]) == datetime(2026, 11, 28, 3, 3, 33, tzinfo=UTC)


def test_header2_wins_and_its_posix_dates() -> None:
    h2 = parse_header_text(ENCASE6_HEADER2.replace("case1", "CASE-FROM-H2"), "header2")
    h1 = parse_header_text(ENCASE_HEADER, "header")
    merged = merge_headers([h2, h1])  # order given does not matter: header, header2, xheader
    assert merged.values["c"] == "CASE-FROM-H2"
    assert parse_header_date(merged.values["m"]) == datetime.fromtimestamp(1795835013, UTC)
    assert merged.posix_dates == {"m", "u"}
    case = case_from_values(merged.values)
    assert (case.case_number, case.evidence_number, case.examiner, case.description, case.notes) == (
        "CASE-FROM-H2", "ev1", "examiner", "desc", "notes",
    )  # fmt: skip


def test_missing_and_extra_keys_and_short_value_line() -> None:
    h = parse_header_text("1\nmain\nc\tzz\tn\te\nC1\tEXTRA\n\n")
    assert h.main == {"c": "C1", "zz": "EXTRA", "n": "", "e": ""}
    assert case_from_values(h.main).examiner == ""


def test_utf16_big_endian_and_no_bom() -> None:
    assert decode_header2_text(b"\xfe\xff" + "1\nmain\n".encode("utf-16-be")) == "1\nmain\n"
    assert decode_header2_text("1\nmain\n".encode("utf-16-le")) == "1\nmain\n"


def test_codepage_header() -> None:
    text = "1\nmain\nc\te\n\u00c4rger\tJ\u00fcrgen\n\n".encode("cp1252")
    h = parse_header_section(zlib.compress(text), "header", codepage="cp1252")
    assert h.main["e"] == "J\u00fcrgen"
    h = parse_header_section(zlib.compress("1\nmain\nc\n\u0416\n\n".encode("cp1251")), "header", codepage="cp1251")
    assert h.main["c"] == "\u0416"


def test_xheader() -> None:
    xml = (
        '\ufeff<?xml version="1.0" encoding="UTF-8"?>\n<xheader>\n\t<case_number>X &amp; Y</case_number>\n'
        "\t<examiner_name>Ex</examiner_name>\n\t<acquiry_date>Sat Nov 28 04:28:47 2026 UTC</acquiry_date>\n</xheader>\n"
    )
    h = parse_header_section(zlib.compress(xml.encode("utf-8")), "xheader")
    assert h.main["c"] == "X & Y" and h.main["e"] == "Ex"
    assert "m" not in merge_headers([h]).values


@pytest.mark.parametrize("value", ["", "garbage", "2026 13 40 99 99 99", "0", "99999999999999999999", "1 2 3"])
def test_bad_dates_are_none(value: str) -> None:
    assert parse_header_date(value) is None


@pytest.mark.parametrize("data", [b"", b"not zlib", zlib.compress(b"1\nmain\n")[:-3]])
def test_broken_zlib_is_format_error(data: bytes) -> None:
    with pytest.raises(FormatError) as ei:
        parse_header_section(data, "header", path="x.E01", offset=100)
    assert ei.value.path == "x.E01" and ei.value.offset == 100


def test_garbage_text_parses_without_error() -> None:
    h = parse_header_text("\x00\x01\ufffd\t\t\n\n\n3\n\tmain")
    assert isinstance(h.main, dict)


def test_inflate_bomb_is_bounded() -> None:
    bomb = zlib.compress(bytes(17 << 20), 1)
    with pytest.raises(FormatError, match="16 MiB"):
        parse_header_section(bomb, "header")
