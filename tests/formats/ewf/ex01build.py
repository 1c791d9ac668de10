"""A minimal EWF2 (Ex01) writer for tests, built from the layout in ewf-notes §8 / formats/ewf/spec.md.

No tool here writes Ex01 (ewfacquire 20140813 has no EWF2 writer), so the reader's Ex01 tests build
images with this and require pyewf (current libewf, which reads Ex01) to agree with forensimg.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

SIG = b"EVF2\r\n\x81\x00"
DEVICE, CASE, SECTORS, TABLE, ERRORS, MD5, SHA1, NEXT, DONE = 1, 2, 3, 4, 5, 8, 9, 0xD, 0xF


def _pad16(b: bytes) -> bytes:
    return b + bytes(-len(b) % 16)


def _text(keys: list[str], values: list[str]) -> bytes:
    body = "1\nmain\n" + "\t".join(keys) + "\n" + "\t".join(values) + "\n\n"
    return zlib.compress(b"\xff\xfe" + body.encode("utf-16-le"))


class _Seg:
    def __init__(self, number: int, guid: bytes) -> None:
        self.buf = bytearray(SIG + bytes([2, 1]) + struct.pack("<HI", 1, number) + guid)
        self.prev = 0

    def section(self, stype: int, data: bytes, pad: bool = True) -> int:
        """Append data then its descriptor; returns the file offset where the data starts."""
        start = len(self.buf)
        padded = _pad16(data) if pad else data
        self.buf += padded
        desc = bytearray(64)
        struct.pack_into("<IIQQII", desc, 0, stype, 0, self.prev, len(padded), 64, len(padded) - len(data))
        struct.pack_into("<I", desc, 60, zlib.adler32(bytes(desc[:60])))
        self.prev = len(self.buf)
        self.buf += desc
        return start


def build_ex01(
    first: Path,
    media: bytes,
    *,
    bps: int = 512,
    spc: int = 64,
    segment_chunks: int | None = None,
    pattern_zero: bool = True,
    case: dict[str, str] | None = None,
) -> list[Path]:
    """Write ``media`` as an Ex01 set (``first`` = ``x.Ex01``); returns the segment paths."""
    assert len(media) % bps == 0
    cs = spc * bps
    chunks = [media[i : i + cs] for i in range(0, len(media), cs)]
    case = {"cn": "CASE-2", "en": "EV-2", "ex": "Examiner", "nm": "Ex01 test", "nt": "notes", **(case or {})}
    guid = bytes(range(16))
    per_seg = segment_chunks or len(chunks) or 1
    groups = [chunks[i : i + per_seg] for i in range(0, len(chunks), per_seg)] or [[]]
    paths: list[Path] = []
    index = 0
    for gi, group in enumerate(groups):
        seg = _Seg(gi + 1, guid)
        if gi == 0:
            dkeys = ["sn", "md", "lb", "ts", "hs", "dc", "dt", "pid", "rs", "ls", "bp", "ph"]
            dvals = ["SN123", "Model X", "", str(len(media) // bps), "0", "", "f", "", "0", "0", str(bps), "1"]
            seg.section(DEVICE, _text(dkeys, dvals))
            ckeys = ["nm", "cn", "en", "ex", "nt", "av", "os", "tt", "at", "tb", "cp", "sb", "gr", "wb"]
            cvals = [case["nm"], case["cn"], case["en"], case["ex"], case["nt"], "7.10", "Windows 7",
                     "1700000000", "1700000001", str(len(chunks)), "1", str(spc), str(spc), ""]  # fmt: skip
            seg.section(CASE, _text(ckeys, cvals))
        if group:
            data = bytearray()
            entries = []
            base = len(seg.buf)
            for c in group:
                if pattern_zero and not any(c):
                    entries.append(struct.pack("<QII", 0, 8, 5))  # fill pattern 0, compressed | pattern
                    continue
                z = zlib.compress(c)
                if len(z) < len(c):
                    stored, flags = z, 1
                else:
                    stored, flags = c + struct.pack("<I", zlib.adler32(c)), 2
                entries.append(struct.pack("<QII", base + len(data), len(stored), flags))
                data += _pad16(stored)
            seg.section(SECTORS, bytes(data), pad=False)
            ent = b"".join(entries)
            head = struct.pack("<QII", index, len(group), 0)
            head += struct.pack("<I", zlib.adler32(head)) + bytes(12)
            foot = struct.pack("<I", zlib.adler32(ent)) + bytes(12)
            seg.section(TABLE, head + ent + foot)
            index += len(group)
        last = gi == len(groups) - 1
        if last:
            md5 = hashlib.md5(media).digest()
            seg.section(MD5, md5 + struct.pack("<I", zlib.adler32(md5)) + bytes(12))
            sha1 = hashlib.sha1(media).digest()
            seg.section(SHA1, sha1 + struct.pack("<I", zlib.adler32(sha1)) + bytes(8))
        seg.section(DONE if last else NEXT, b"")
        p = first if gi == 0 else first.with_suffix(f".Ex{gi + 1:02d}")
        p.write_bytes(bytes(seg.buf))
        paths.append(p)
    return paths
