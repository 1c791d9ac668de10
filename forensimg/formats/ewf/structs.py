"""construct declarations of the EWF version 1 (E01 / s01 / e01) on-disk structures.

Declarations only; the logic that walks sections and checks checksums lives in ``reader.py`` (and the
writer's ``writer.py``). All integers are little-endian. Checksum fields are plain ``Int32ul``: the reader
compares them itself (``zlib.adler32`` over the bytes before the field) so that a bad checksum becomes a
:class:`~forensimg.errors.FormatError` naming the file and offset instead of a construct exception.
See ``formats/ewf/spec.md`` for the tables and the libewf documentation ("Expert Witness Compression
Format (EWF)", libyal) for the original description. Never ``.compile()`` these: they parse evidence.
"""

from __future__ import annotations

from construct import (
    Bytes,
    Const,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    PaddedString,
    Padding,
    Struct,
)

__all__ = [
    "ADCRYPT_SIGNATURE",
    "DESCRIPTOR_SIZE",
    "DIGEST_SIZE",
    "ERROR2_HEADER_SIZE",
    "EVF2_SIGNATURE",
    "EVF_SIGNATURE",
    "EWF2_DESCRIPTOR_SIZE",
    "EWF2_FILE_HEADER_SIZE",
    "EWF2_TABLE_ENTRY_SIZE",
    "EWF2_TABLE_HEADER_SIZE",
    "FILE_HEADER_SIZE",
    "HASH_SIZE",
    "LEF2_SIGNATURE",
    "LVF_SIGNATURE",
    "SESSION_HEADER_SIZE",
    "SMART_VOLUME_SIZE",
    "TABLE_HEADER_SIZE",
    "VOLUME_SIZE",
    "digest_struct",
    "error2_entry",
    "error2_header",
    "ewf2_file_header",
    "ewf2_section_descriptor",
    "ewf2_table_header",
    "file_header",
    "hash_struct",
    "section_descriptor",
    "session_entry",
    "session_header",
    "smart_volume",
    "table_header",
    "volume",
]

EVF_SIGNATURE = b"EVF\x09\x0d\x0a\xff\x00"
"""EWF1 evidence file (E01, s01, e01)."""
LVF_SIGNATURE = b"LVF\x09\x0d\x0a\xff\x00"
"""EWF1 logical evidence file (L01): recognised, refused."""
EVF2_SIGNATURE = b"EVF2\x0d\x0a\x81\x00"
"""EWF2 evidence file (Ex01): recognised, refused."""
LEF2_SIGNATURE = b"LEF2\x0d\x0a\x81\x00"
"""EWF2 logical evidence file (Lx01): recognised, refused."""
ADCRYPT_SIGNATURE = b"ADCRYPT\x00"
"""FTK "AD encryption" container around an E01: recognised, refused."""

FILE_HEADER_SIZE = 13
DESCRIPTOR_SIZE = 76
VOLUME_SIZE = 1052
SMART_VOLUME_SIZE = 94
TABLE_HEADER_SIZE = 24
HASH_SIZE = 36
DIGEST_SIZE = 80
ERROR2_HEADER_SIZE = 520
SESSION_HEADER_SIZE = 36

file_header = Struct(
    "signature" / Const(EVF_SIGNATURE),
    "fields_start" / Const(b"\x01"),
    "segment_number" / Int16ul,  # 1-based; libewf orders segments by this, not by name
    "fields_end" / Const(b"\x00\x00"),
)
"""13-byte header at offset 0 of every E01/s01/e01 segment file."""

section_descriptor = Struct(
    "type" / PaddedString(16, "ascii"),  # lower case, NUL padded
    "next" / Int64ul,  # file offset of the next descriptor (own offset for next/done in E01)
    "size" / Int64ul,  # including these 76 bytes; 0 in Expert Witness 1.35 (use next - offset)
    "padding" / Bytes(40),  # zero when written; EnCase 2 left junk, so not checked
    "checksum" / Int32ul,  # Adler-32 of bytes 0..71
)
"""76-byte section descriptor; the section's data follows it."""

volume = Struct(
    "media_type" / Int8ul,  # 0 removable, 1 fixed, 3 optical, 0x0e logical, 0x10 memory
    Padding(3),
    "chunk_count" / Int32ul,
    "sectors_per_chunk" / Int32ul,
    "bytes_per_sector" / Int32ul,
    "sector_count" / Int64ul,  # media size = sector_count * bytes_per_sector
    "cylinders" / Int32ul,
    "heads" / Int32ul,
    "sectors" / Int32ul,
    "media_flags" / Int8ul,  # bit0 image, bit1 physical, bit2 FastBloc, bit3 Tableau
    Padding(3),
    "palm_volume_start" / Int32ul,
    Padding(4),
    "smart_logs_start" / Int32ul,
    "compression_level" / Int8ul,  # 0 none, 1 fast, 2 best (EnCase 5+)
    Padding(3),
    "error_granularity" / Int32ul,
    Padding(4),
    "set_identifier" / Bytes(16),  # GUID, opaque bytes (zero from Debian ewfacquire)
    "unknown" / Bytes(963),
    "signature" / Bytes(5),
    "checksum" / Int32ul,  # Adler-32 of bytes 0..1047
)
"""1052-byte ``volume``/``disk``/``data`` data of FTK, EnCase 1-7, linen 5-7 and ewfx files."""

smart_volume = Struct(
    "reserved" / Int32ul,  # 1
    "chunk_count" / Int32ul,
    "sectors_per_chunk" / Int32ul,
    "bytes_per_sector" / Int32ul,
    "sector_count" / Int32ul,
    "reserved2" / Bytes(20),
    "padding" / Bytes(45),
    "signature" / Bytes(5),  # b"SMART" in .s01 files, zeros in libewf's "ewf" output
    "checksum" / Int32ul,  # Adler-32 of bytes 0..89
)
"""94-byte ``volume`` data of SMART (.s01) and original EWF (.e01) files."""

table_header = Struct(
    "entry_count" / Int32ul,
    Padding(4),
    "base_offset" / Int64ul,  # EnCase 6+: added to every entry; 0 in older formats
    Padding(4),
    "checksum" / Int32ul,  # Adler-32 of bytes 0..19
)
"""24-byte header of ``table``/``table2``; 4-byte entries follow (parsed with ``array``, not here)."""

hash_struct = Struct(
    "md5" / Bytes(16),
    "unknown" / Bytes(16),
    "checksum" / Int32ul,  # Adler-32 of bytes 0..31
)
"""36-byte ``hash`` section data."""

digest_struct = Struct(
    "md5" / Bytes(16),
    "sha1" / Bytes(20),
    "padding" / Bytes(40),
    "checksum" / Int32ul,  # Adler-32 of bytes 0..75
)
"""80-byte ``digest`` section data."""

error2_header = Struct(
    "entry_count" / Int32ul,
    "padding" / Bytes(512),
    "checksum" / Int32ul,  # Adler-32 of bytes 0..515
)
"""520-byte ``error2`` header; entries of (u32 first sector, u32 sector count) and an Adler-32 follow."""

error2_entry = Struct("first_sector" / Int32ul, "sector_count" / Int32ul)
"""8-byte ``error2`` entry (declared for the writer and the vectors; the reader uses ``array``)."""

session_header = Struct(
    "entry_count" / Int32ul,
    "padding" / Bytes(28),
    "checksum" / Int32ul,  # Adler-32 of bytes 0..31
)
"""36-byte ``session`` header; 32-byte entries and an Adler-32 follow."""

session_entry = Struct(
    "flags" / Int32ul,  # bit0: audio track
    "first_sector" / Int32ul,
    "padding" / Bytes(24),
)
"""32-byte ``session`` entry."""

# --- EWF2 (Ex01), read side ----------------------------------------------------------------------------

EWF2_FILE_HEADER_SIZE = 32
EWF2_DESCRIPTOR_SIZE = 64
EWF2_TABLE_HEADER_SIZE = 32
EWF2_TABLE_ENTRY_SIZE = 16

ewf2_file_header = Struct(
    "signature" / Const(EVF2_SIGNATURE),
    "major" / Int8ul,  # 2
    "minor" / Int8ul,  # 1
    "compression_method" / Int16ul,  # 0 none, 1 zlib, 2 bzip2
    "segment_number" / Int32ul,
    "set_identifier" / Bytes(16),
)
"""32-byte header of an Ex01 segment file."""

ewf2_section_descriptor = Struct(
    "type" / Int32ul,  # 1 device info, 2 case data, 3 sector data, 4 sector table, 8 MD5, 9 SHA-1, 0xD next, 0xF done
    "data_flags" / Int32ul,  # 1 MD5 of the data present, 2 encrypted
    "previous_offset" / Int64ul,  # file offset of the previous descriptor; 0 for the first section
    "data_size" / Int64ul,  # including alignment padding
    "descriptor_size" / Int32ul,  # 64
    "padding_size" / Int32ul,
    "data_md5" / Bytes(16),
    "reserved" / Bytes(12),
    "checksum" / Int32ul,  # Adler-32 of bytes 0..59
)
"""64-byte EWF2 section descriptor; it FOLLOWS its section's data (sections are read backwards)."""

ewf2_table_header = Struct(
    "first_chunk" / Int64ul,
    "entry_count" / Int32ul,
    Padding(4),
    "checksum" / Int32ul,  # Adler-32 of bytes 0..15
    "reserved" / Bytes(12),
)
"""32-byte EWF2 sector table header; 16-byte entries (u64 offset, u32 size, u32 flags) and a 16-byte
footer (Adler-32 of the entries + 12 zero bytes) follow."""


# --- build-side declarations (writer) -------------------------------------------------------------
# The writer engineer appends declarations used only when building sections below this line.
