#!/usr/bin/env python3
"""Generate the EWF1 byte-level vectors in this folder (``formats/ewf/spec.md``).

Generated with::

    .venv/bin/python formats/ewf/vectors/generate.py

Most vectors are cut from the committed test images ``testdata/floppy_fat12.E01`` (ewfacquire 20140813,
``-f encase6 -c best -b 128``) and ``testdata/disk_mbr.E01`` (``-f encase6 -c best -d sha1``), so they
are real bytes written by libewf; the offsets are recorded. The ``error2``, ``session``, SMART volume
and uncompressed-chunk vectors are built here from the layouts in the spec (no small committed image
has them) and marked ``"origin": "synthetic"``. Only the standard library is used, so the expected
values do not depend on forensimg's code.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
TESTDATA = ROOT / "testdata"


def sections(data: bytes) -> list[dict[str, Any]]:
    off, out = 13, []
    while True:
        d = data[off : off + 76]
        stype = d[:16].rstrip(b"\0").decode()
        nxt, size = struct.unpack_from("<QQ", d, 16)
        out.append({"type": stype, "offset": off, "next": nxt, "size": size})
        if stype in ("next", "done"):
            return out
        off = nxt


def main() -> None:
    floppy = (TESTDATA / "floppy_fat12.E01").read_bytes()
    disk = (TESTDATA / "disk_mbr.E01").read_bytes()
    fs = {s["type"]: s for s in reversed(sections(floppy))}  # first of each type wins
    ds = {s["type"]: s for s in reversed(sections(disk))}
    v: dict[str, Any] = {"about": __doc__.split("\n")[0], "vectors": {}}
    V = v["vectors"]

    V["file_header"] = [
        {"source": "testdata/floppy_fat12.E01@0", "hex": floppy[:13].hex(), "segment_number": 1},
        {
            "source": "testdata/disk_mbr_seg.E02@0",
            "hex": (TESTDATA / "disk_mbr_seg.E02").read_bytes()[:13].hex(),
            "segment_number": 2,
        },
    ]
    V["section_descriptor"] = []
    for s in sections(floppy):
        raw = floppy[s["offset"] : s["offset"] + 76]
        V["section_descriptor"].append(
            {
                "source": f"testdata/floppy_fat12.E01@{s['offset']}",
                "hex": raw.hex(),
                "type": s["type"],
                "next": s["next"],
                "size": s["size"],
                "checksum": struct.unpack_from("<I", raw, 72)[0],
                "checksum_ok": True,
            }
        )
    bad = bytearray(floppy[fs["table"]["offset"] : fs["table"]["offset"] + 76])
    bad[24] ^= 1
    V["section_descriptor"].append(
        {
            "source": "floppy table descriptor with bit 0 of size flipped",
            "hex": bytes(bad).hex(),
            "type": "table",
            "next": fs["table"]["next"],
            "size": fs["table"]["size"] ^ 1,
            "checksum": struct.unpack_from("<I", bad, 72)[0],
            "checksum_ok": False,
        }
    )

    vol = floppy[fs["volume"]["offset"] + 76 : fs["volume"]["offset"] + 76 + 1052]
    V["volume"] = [
        {
            "source": f"testdata/floppy_fat12.E01@{fs['volume']['offset'] + 76}",
            "hex": vol.hex(),
            "media_type": 1,
            "chunk_count": 23,
            "sectors_per_chunk": 128,
            "bytes_per_sector": 512,
            "sector_count": 2880,
            "media_flags": 3,
            "compression_level": 2,
            "error_granularity": 64,
            "set_identifier": "00" * 16,
            "checksum": struct.unpack_from("<I", vol, 1048)[0],
            "checksum_ok": True,
        }
    ]
    smart = bytearray(94)
    struct.pack_into("<IIIII", smart, 0, 1, 96, 64, 512, 6144)
    smart[85:90] = b"SMART"
    struct.pack_into("<I", smart, 90, zlib.adler32(bytes(smart[:90])))
    V["smart_volume"] = [
        {
            "origin": "synthetic",
            "hex": bytes(smart).hex(),
            "chunk_count": 96,
            "sectors_per_chunk": 64,
            "bytes_per_sector": 512,
            "sector_count": 6144,
            "signature": "SMART",
            "checksum_ok": True,
        }
    ]

    t = fs["table"]
    tdata = floppy[t["offset"] + 76 : t["offset"] + t["size"]]
    count, base = struct.unpack_from("<I", tdata)[0], struct.unpack_from("<Q", tdata, 8)[0]
    entries = list(struct.unpack_from(f"<{count}I", tdata, 24))
    sectors = fs["sectors"]
    ends = [base + (e & 0x7FFFFFFF) for e in entries[1:]] + [sectors["offset"] + sectors["size"]]
    V["table"] = [
        {
            "source": f"testdata/floppy_fat12.E01@{t['offset'] + 76}",
            "hex": tdata.hex(),
            "entry_count": count,
            "base_offset": base,
            "header_checksum_ok": zlib.adler32(tdata[:20]) == struct.unpack_from("<I", tdata, 20)[0],
            "footer_checksum_ok": zlib.adler32(tdata[24 : 24 + 4 * count])
            == struct.unpack_from("<I", tdata, 24 + 4 * count)[0],
            "chunks": [
                {
                    "file_offset": base + (e & 0x7FFFFFFF),
                    "compressed": bool(e >> 31),
                    "stored_size": end - (base + (e & 0x7FFFFFFF)),
                }
                for e, end in zip(entries, ends, strict=True)
            ],
            "last_chunk_ends_at": "end of the preceding 'sectors' section (= offset of 'table')",
        }
    ]

    # chunks: the smallest compressed chunk of the floppy, and a synthetic uncompressed one
    c0 = V["table"][0]["chunks"]
    small = min(range(count), key=lambda i: c0[i]["stored_size"])
    c = c0[small]
    stored = floppy[c["file_offset"] : c["file_offset"] + c["stored_size"]]
    out = zlib.decompress(stored)
    raw512 = bytes(range(256)) * 2
    V["chunk"] = [
        {
            "source": f"testdata/floppy_fat12.E01 chunk {small}",
            "compressed": True,
            "stored_hex": stored.hex(),
            "length": len(out),
            "md5": hashlib.md5(out).hexdigest(),
            "ok": True,
        },
        {
            "origin": "synthetic",
            "compressed": False,
            "stored_hex": (raw512 + struct.pack("<I", zlib.adler32(raw512))).hex(),
            "length": 512,
            "md5": hashlib.md5(raw512).hexdigest(),
            "ok": True,
            "note": "raw bytes then their Adler-32, little-endian",
        },
        {
            "origin": "synthetic",
            "compressed": False,
            "stored_hex": (raw512 + struct.pack(">I", zlib.adler32(raw512))).hex(),
            "length": 512,
            "ok": False,
            "note": "trailer big-endian: wrong, must fail",
        },
        {
            "origin": "synthetic",
            "compressed": True,
            "stored_hex": (zlib.compress(raw512) + b"\0").hex(),
            "length": 512,
            "ok": False,
            "note": "a byte after the zlib stream: must fail",
        },
    ]

    h = ds["hash"]
    hd = disk[h["offset"] + 76 : h["offset"] + 76 + 36]
    d = ds["digest"]
    dd = disk[d["offset"] + 76 : d["offset"] + 76 + 80]
    V["hash"] = [
        {
            "source": f"testdata/disk_mbr.E01@{h['offset'] + 76}",
            "hex": hd.hex(),
            "md5": hd[:16].hex(),
            "checksum_ok": True,
        }
    ]
    V["digest"] = [
        {
            "source": f"testdata/disk_mbr.E01@{d['offset'] + 76}",
            "hex": dd.hex(),
            "md5": dd[:16].hex(),
            "sha1": dd[16:36].hex(),
            "checksum_ok": True,
        }
    ]

    err = bytearray(520)
    struct.pack_into("<I", err, 0, 2)
    struct.pack_into("<I", err, 516, zlib.adler32(bytes(err[:516])))
    ent = struct.pack("<IIII", 2053, 4, 8000, 3)
    V["error2"] = [
        {
            "origin": "synthetic",
            "hex": (bytes(err) + ent + struct.pack("<I", zlib.adler32(ent))).hex(),
            "entries": [[2053, 4], [8000, 3]],
            "checksum_ok": True,
            "section_size": 76 + 520 + 16 + 4,
        }
    ]
    ses = bytearray(36)
    struct.pack_into("<I", ses, 0, 1)
    struct.pack_into("<I", ses, 32, zlib.adler32(bytes(ses[:32])))
    sent = struct.pack("<II", 0, 16) + bytes(24)
    V["session"] = [
        {
            "origin": "synthetic",
            "hex": (bytes(ses) + sent + struct.pack("<I", zlib.adler32(sent))).hex(),
            "entries": [{"flags": 0, "first_sector": 16}],
            "checksum_ok": True,
            "section_size": 148,
        }
    ]

    def text(kind: str, off: int, size: int, data: bytes) -> dict[str, Any]:
        z = data[off + 76 : off + size]
        return {"source": f"{kind} section", "zlib_hex": z.hex()}

    h2 = text("header2", fs["header2"]["offset"], fs["header2"]["size"], floppy)
    h2.update(
        {
            "source": f"testdata/floppy_fat12.E01@{fs['header2']['offset'] + 76}",
            "kind": "header2",
            "encoding": "UTF-16LE with BOM",
            "main": {
                "c": "FORENSIMG-SHARED-003",
                "n": "EV-0003",
                "e": "Test Examiner",
                "a": "FAT12 floppy, 64 KiB chunks (22.5 chunks)",
                "t": "last chunk is half full",
                "av": "20140813",
                "ov": "Linux",
                "m": "1700000000",
                "u": "1700000000",
                "p": "0",
            },
            "acquired_at": "2023-11-14T22:13:20+00:00",
            "categories": ["main", "srce", "sub"],
        }
    )
    h1 = text("header", fs["header"]["offset"], fs["header"]["size"], floppy)
    h1.update(
        {
            "source": f"testdata/floppy_fat12.E01@{fs['header']['offset'] + 76}",
            "kind": "header",
            "encoding": "ASCII, CRLF",
            "main": {
                "c": "FORENSIMG-SHARED-003",
                "n": "EV-0003",
                "m": "2023 11 14 22 13 20",
                "u": "2023 11 14 22 13 20",
            },
            "acquired_at": "2023-11-14T22:13:20+00:00",
            "categories": ["main"],
        }
    )
    latin = (
        "1\nmain\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\tr\n"
        "Fall 1\tE1\tBeschreibung \u00e4\u00f6\u00fc\tJ\u00fcrgen\t\t3.21\tWindows\t"
        "2024 2 9 8 5 3\t2024 2 9 8 5 3\t0\tf\n\n"
    )
    h_cp = {
        "origin": "synthetic (EnCase 2/3 / FTK style, cp1252, LF)",
        "kind": "header",
        "codepage": "cp1252",
        "zlib_hex": zlib.compress(latin.encode("cp1252")).hex(),
        "main": {"c": "Fall 1", "e": "J\u00fcrgen", "a": "Beschreibung \u00e4\u00f6\u00fc", "r": "f", "t": ""},
        "acquired_at": "2024-02-09T08:05:03+00:00",
        "categories": ["main"],
    }
    be = "3\nmain\na\tc\tn\te\tt\tav\tov\tm\tu\tp\tdc\nd\tc1\tn1\te1\tt1\t7.0\tWin\t1700000000\t1700000001\t0\t\n\n"
    h_be = {
        "origin": "synthetic (header2 big-endian BOM)",
        "kind": "header2",
        "zlib_hex": zlib.compress(b"\xfe\xff" + be.encode("utf-16-be")).hex(),
        "main": {"a": "d", "c": "c1", "u": "1700000001"},
        "acquired_at": "2023-11-14T22:13:20+00:00",
        "categories": ["main"],
    }
    V["header_text"] = [h2, h1, h_cp, h_be]

    V["segment_extension"] = [
        [1, "E", "E01"],
        [99, "E", "E99"],
        [100, "E", "EAA"],
        [125, "E", "EAZ"],
        [126, "E", "EBA"],
        [775, "E", "EZZ"],
        [776, "E", "FAA"],
        [14971, "E", "ZZZ"],
        [1, "s", "s01"],
        [100, "s", "saa"],
        [5507, "s", "zzz"],
        [100, "e", "eaa"],
    ]
    (HERE / "vectors.json").write_text(json.dumps(v, indent=1) + "\n")


if __name__ == "__main__":
    main()
