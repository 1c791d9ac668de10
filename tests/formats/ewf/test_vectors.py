"""The byte-level vectors of ``formats/ewf/vectors/vectors.json`` against structs.py, header.py, naming.py
and the reader's pure decoders, so that the spec and the code cannot drift."""

from __future__ import annotations

import json
import zlib
from array import array
from datetime import datetime
from functools import cache
from typing import Any

import pytest

from forensimg.formats.ewf import structs
from forensimg.formats.ewf.header import merge_headers, parse_header_date, parse_header_section
from forensimg.formats.ewf.naming import segment_extension, segment_number
from forensimg.formats.ewf.reader import decode_chunk, decode_table_entries
from tests.helpers import ROOT

VECTORS = ROOT / "formats" / "ewf" / "vectors" / "vectors.json"


@cache
def vectors() -> dict[str, list[Any]]:
    return json.loads(VECTORS.read_text())["vectors"]


def _cases(kind: str) -> list[Any]:
    return vectors()[kind]


def _adler_ok(raw: bytes, covered: int) -> bool:
    return zlib.adler32(raw[:covered]) == int.from_bytes(raw[covered : covered + 4], "little")


@pytest.mark.parametrize("v", _cases("file_header"))
def test_file_header(v: dict[str, Any]) -> None:
    h = structs.file_header.parse(bytes.fromhex(v["hex"]))
    assert h.segment_number == v["segment_number"]
    assert structs.file_header.build({"segment_number": v["segment_number"]}) == bytes.fromhex(v["hex"])


@pytest.mark.parametrize("v", _cases("section_descriptor"), ids=lambda v: v["source"])
def test_section_descriptor(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    d = structs.section_descriptor.parse(raw)
    assert (d.type, d.next, d.size, d.checksum) == (v["type"], v["next"], v["size"], v["checksum"])
    assert _adler_ok(raw, 72) is v["checksum_ok"]


@pytest.mark.parametrize("v", _cases("volume"))
def test_volume(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    assert len(raw) == structs.VOLUME_SIZE
    vol = structs.volume.parse(raw)
    for key in ("media_type", "chunk_count", "sectors_per_chunk", "bytes_per_sector", "sector_count",
                "media_flags", "compression_level", "error_granularity"):  # fmt: skip
        assert vol[key] == v[key], key
    assert vol.set_identifier.hex() == v["set_identifier"]
    assert _adler_ok(raw, 1048) is v["checksum_ok"] and vol.checksum == v["checksum"]


@pytest.mark.parametrize("v", _cases("smart_volume"))
def test_smart_volume(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    vol = structs.smart_volume.parse(raw)
    for key in ("chunk_count", "sectors_per_chunk", "bytes_per_sector", "sector_count"):
        assert vol[key] == v[key]
    assert vol.signature == v["signature"].encode() and _adler_ok(raw, 90) is v["checksum_ok"]


@pytest.mark.parametrize("v", _cases("table"))
def test_table(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    h = structs.table_header.parse(raw[:24])
    assert (h.entry_count, h.base_offset) == (v["entry_count"], v["base_offset"])
    assert _adler_ok(raw, 20) is v["header_checksum_ok"]
    n = h.entry_count
    assert _adler_ok(raw[24:], 4 * n) is v["footer_checksum_ok"]
    entries = array("I")
    entries.frombytes(raw[24 : 24 + 4 * n])
    chunks = v["chunks"]
    data_end = chunks[-1]["file_offset"] + chunks[-1]["stored_size"]
    starts, comp = decode_table_entries(entries, h.base_offset, data_end)
    for i, c in enumerate(chunks):
        assert starts[i] == c["file_offset"]
        assert starts[i + 1] - starts[i] == c["stored_size"]
        assert bool(comp[i]) is c["compressed"]


@pytest.mark.parametrize("v", _cases("chunk"), ids=lambda v: v.get("note", v.get("source", "")))
def test_chunk(v: dict[str, Any]) -> None:
    import hashlib

    data, problem = decode_chunk(bytes.fromhex(v["stored_hex"]), v["compressed"], v["length"], 1 << 16)
    assert (problem is None) is v["ok"], problem
    if v["ok"]:
        assert len(data) == v["length"] and hashlib.md5(data).hexdigest() == v["md5"]


def test_hash_and_digest() -> None:
    (h,) = _cases("hash")
    raw = bytes.fromhex(h["hex"])
    assert structs.hash_struct.parse(raw).md5.hex() == h["md5"] and _adler_ok(raw, 32)
    (d,) = _cases("digest")
    raw = bytes.fromhex(d["hex"])
    p = structs.digest_struct.parse(raw)
    assert (p.md5.hex(), p.sha1.hex()) == (d["md5"], d["sha1"]) and _adler_ok(raw, 76)


def test_error2_and_session() -> None:
    (e,) = _cases("error2")
    raw = bytes.fromhex(e["hex"])
    h = structs.error2_header.parse(raw[:520])
    assert _adler_ok(raw, 516) and h.entry_count == len(e["entries"])
    got = [
        [x.first_sector, x.sector_count]
        for x in (structs.error2_entry.parse(raw[520 + 8 * i :]) for i in range(h.entry_count))
    ]
    assert got == e["entries"] and _adler_ok(raw[520:], 8 * h.entry_count)
    assert 76 + len(raw) == e["section_size"]
    (s,) = _cases("session")
    raw = bytes.fromhex(s["hex"])
    sh = structs.session_header.parse(raw[:36])
    assert _adler_ok(raw, 32) and sh.entry_count == 1
    ent = structs.session_entry.parse(raw[36:68])
    assert {"flags": ent.flags, "first_sector": ent.first_sector} == s["entries"][0]
    assert 76 + len(raw) == s["section_size"]


@pytest.mark.parametrize("v", _cases("header_text"), ids=lambda v: v.get("source", v.get("origin")))
def test_header_text(v: dict[str, Any]) -> None:
    parsed = parse_header_section(bytes.fromhex(v["zlib_hex"]), v["kind"], codepage=v.get("codepage", "cp1252"))
    for key, value in v["main"].items():
        assert parsed.main[key] == value, key
    assert list(parsed.categories) == v["categories"]
    merged = merge_headers([parsed])
    assert parse_header_date(merged.values["m"]) == datetime.fromisoformat(v["acquired_at"])


@pytest.mark.parametrize(("number", "letter", "ext"), _cases("segment_extension"))
def test_segment_extension(number: int, letter: str, ext: str) -> None:
    assert segment_extension(number, letter) == ext
    if letter in "Ee":
        assert segment_number(ext) == number
