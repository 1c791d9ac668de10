"""construct declarations of the fimg structures parsed once per file (``formats/fimg/spec.md``).

Declarations only: the logic lives in :mod:`.reader`, :mod:`.writer` and :mod:`.recover`. Readers check
digests in logic (never with ``Checksum``), and nothing here is ``.compile()``d. The 64-byte record
header that precedes every chunk is parsed with :data:`forensimg.formats.fimg.layout.RECORD`
(``struct.Struct``), not with construct (house rule 2).
"""

from __future__ import annotations

from construct import Bytes, Const, Int16ul, Int32ul, Int64ul, Padding, Struct

from forensimg.registry import FIMG_MAGIC

__all__ = ["CHECKPOINT_FIXED", "FOOTER", "FOOTER_MAGIC", "HEADER", "RANGE_PAIR"]

HEADER = Struct(
    # spec §3: segment header, 128 bytes at offset 0 of every segment file
    "magic" / Const(FIMG_MAGIC),  # 0: b"FIMG\r\n\x1a\n"
    "version_major" / Int16ul,  # 8: 1
    "version_minor" / Int16ul,  # 10: 0
    "header_size" / Int32ul,  # 12: 128
    "uuid" / Bytes(16),  # 16: random UUID of the image (same in every segment)
    "chunk_size" / Int32ul,  # 32: power of two, 4 KiB .. 16 MiB
    "sector_size" / Int32ul,  # 36: power of two, 256 .. chunk_size
    "segment_number" / Int32ul,  # 40: 1 for the first file
    "flags" / Int32ul,  # 44: reserved, 0
    "max_segment_size" / Int64ul,  # 48: 0 = no limit
    Padding(40),  # 56: reserved, zero
    "digest" / Bytes(32),  # 96: SHA-256 of bytes 0..95
)

CHECKPOINT_FIXED = Struct(
    # spec §5.2: fixed part of a checkpoint record body (48 bytes); entries and ranges follow
    "sequence" / Int64ul,  # 0: 1, 2, 3 ... in write order
    "chunk_count" / Int64ul,  # 8: chunks 0..chunk_count-1 are committed
    "media_size" / Int64ul,  # 16: media bytes committed
    "previous" / Int64ul,  # 24: location of the previous checkpoint, 0 if none
    "first_entry" / Int64ul,  # 32: chunk index of the first location entry below
    "entry_count" / Int32ul,  # 40: number of u64 location entries that follow
    "range_count" / Int32ul,  # 44: number of (start, end) u64 pairs after the entries
)

RANGE_PAIR = Struct("start" / Int64ul, "end" / Int64ul)

FOOTER_MAGIC = b"FIMGEND\x00"

FOOTER = Struct(
    # spec §5.6: footer, the last 136 bytes of the last segment of a finished image
    "magic" / Const(FOOTER_MAGIC),  # 0: b"FIMGEND\0"
    "metadata_location" / Int64ul,  # 8: location of the final metadata record
    "index_location" / Int64ul,  # 16: location of the index record
    "digests_location" / Int64ul,  # 24: location of the digest table record
    "chunk_count" / Int64ul,  # 32
    "media_size" / Int64ul,  # 40
    "segment_count" / Int32ul,  # 48
    "reserved" / Int32ul,  # 52: 0
    "uuid" / Bytes(16),  # 56
    "merkle_root" / Bytes(32),  # 72
    "seal" / Bytes(32),  # 104: SHA-256 seal (spec §5.6)
)
