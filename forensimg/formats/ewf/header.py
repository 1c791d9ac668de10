"""Case metadata of EWF1 files: the ``header``, ``header2`` and ``xheader`` sections.

Parsing (this part) turns the zlib-compressed texts into key/value dicts per category and then into
:class:`~forensimg.image.CaseInfo`, dates and the other acquisition facts. The rules (see
``formats/ewf/spec.md`` §Header text):

* ``header`` is 8-bit text in a Windows codepage (ASCII by default in libewf; we decode with cp1252,
  which is a superset for the printable range), CRLF (EnCase) or LF (FTK, SMART, linen) line ends.
* ``header2`` is UTF-16 with a byte-order mark (``FF FE`` little-endian as written everywhere; ``FE FF``
  big-endian accepted), LF line ends.
* ``xheader`` (libewf ``ewfx`` only) is UTF-8 XML; we read its simple ``<key>value</key>`` elements.
* Text: line 1 = number of categories; each category is a name line, (``0\\t1`` for ``srce``/``sub``), a
  tab-separated key line, (``0\\t0``), a tab-separated value line and an empty line. Keys are matched by
  name, never by position, so missing and extra keys are tolerated.
* Merging: values from ``header`` first, then ``header2``, then ``xheader``; later values win (as libewf).
* Dates: ``header2`` ``m``/``u`` are POSIX seconds (UTC). ``header`` ``m``/``u`` are ``"Y M D h m s"`` in
  the acquiring machine's local time, with no zone recorded: forensimg interprets them as **UTC** and
  uses them only when no ``header2`` POSIX time exists. linen writes POSIX seconds in ``header``.

The writer's text generation functions follow the parse functions, below the marked line.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from forensimg.errors import FormatError
from forensimg.image import CaseInfo

__all__ = [
    "HEADER_TEXT_LIMIT",
    "HeaderText",
    "MergedHeaders",
    "case_from_values",
    "decode_header2_text",
    "decode_header_text",
    "inflate_header",
    "merge_headers",
    "parse_header_date",
    "parse_header_section",
    "parse_header_text",
    "parse_xheader_text",
]

HEADER_TEXT_LIMIT = 16 << 20
"""Largest inflated header text accepted (16 MiB): bounds memory on hostile input."""

_XML_ELEMENT = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>([^<]*)</\1>")

# xheader element names (libewf ewfx) → header keys
_XHEADER_KEYS = {
    "case_number": "c",
    "description": "a",
    "examiner_name": "e",
    "evidence_number": "n",
    "notes": "t",
    "acquiry_operating_system": "ov",
    "acquiry_software_version": "av",
    "acquiry_software": "av",
    "model": "md",
    "serial_number": "sn",
    "device_label": "l",
    "password": "p",
    "compression_level": "r",
}


@dataclass(frozen=True, slots=True)
class HeaderText:
    """One parsed header section.

    Attributes:
        kind: ``header``, ``header2`` or ``xheader``.
        categories: category name → {key: value} (``main``, ``srce``, ``sub``; ``xheader`` for XML).
        keys: the ``main`` category's keys in stored order (drives the writer guess).
        crlf: whether the text used CRLF line ends.
        category_count: the number on the first line (0 for XML).
    """

    kind: str
    categories: Mapping[str, Mapping[str, str]]
    keys: tuple[str, ...] = ()
    crlf: bool = False
    category_count: int = 0

    @property
    def main(self) -> Mapping[str, str]:
        """The ``main`` category (empty if absent)."""
        return self.categories.get("main", {})


def inflate_header(data: bytes, *, path: str | None = None, offset: int | None = None) -> bytes:
    """Inflate a header section's zlib stream, bounded to :data:`HEADER_TEXT_LIMIT` bytes.

    Trailing bytes after the stream are tolerated (EWF2 pads metadata), a broken stream is not.

    Raises:
        FormatError: not a complete zlib stream, or too large when inflated.
    """
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, HEADER_TEXT_LIMIT + 1)
    except zlib.error as exc:
        raise FormatError(f"header text is not a valid zlib stream ({exc})", path=path, offset=offset) from None
    if len(out) > HEADER_TEXT_LIMIT:
        raise FormatError("header text inflates to more than 16 MiB", path=path, offset=offset)
    if not d.eof:
        raise FormatError("header text zlib stream is truncated", path=path, offset=offset)
    return out


def decode_header_text(raw: bytes, codepage: str = "cp1252") -> str:
    """Decode ``header`` bytes (8-bit codepage); undecodable bytes become U+FFFD."""
    try:
        return raw.decode(codepage, errors="replace")
    except LookupError:
        return raw.decode("cp1252", errors="replace")


def decode_header2_text(raw: bytes) -> str:
    """Decode ``header2`` bytes: UTF-16 by byte-order mark (LE ``FF FE`` or BE ``FE FF``).

    Without a BOM, UTF-16LE is assumed when the second byte is NUL (libewf-like writers), else UTF-8.
    """
    if raw[:2] == b"\xff\xfe":
        return raw[2:].decode("utf-16-le", errors="replace")
    if raw[:2] == b"\xfe\xff":
        return raw[2:].decode("utf-16-be", errors="replace")
    if len(raw) >= 2 and raw[1] == 0:
        return raw.decode("utf-16-le", errors="replace")
    return raw.decode("utf-8", errors="replace")


def parse_header_text(text: str, kind: str = "header") -> HeaderText:
    """Parse header/header2 text into categories of key → value (tolerant of odd layouts).

    Lines are split on LF with a trailing CR removed. Blocks are separated by empty lines; in each
    block the first line names the category; a block of 5 lines is ``name, 0\\t1, keys, 0\\t0, values``,
    a block of 3 lines is ``name, keys, values``. Values are matched to keys by position; a short value
    line leaves the remaining keys empty. Text that yields no category at all is accepted as empty.
    """
    crlf = "\r\n" in text
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.replace("\x00", "").split("\n")]
    count = 0
    if lines and lines[0].strip().isdigit():
        count = int(lines[0].strip())
        lines = lines[1:]
    blocks: list[list[str]] = []
    cur: list[str] = []
    for ln in lines:
        if ln == "":
            if cur:
                blocks.append(cur)
                cur = []
        else:
            cur.append(ln)
    if cur:
        blocks.append(cur)
    cats: dict[str, dict[str, str]] = {}
    main_keys: tuple[str, ...] = ()
    for block in blocks:
        name = block[0].strip()
        rest = block[1:]
        if len(rest) >= 4:
            key_line, value_line = rest[1], rest[3]
        elif len(rest) >= 2:
            key_line, value_line = rest[0], rest[1]
        elif len(rest) == 1:
            key_line, value_line = rest[0], ""
        else:
            continue
        keys = [k.strip() for k in key_line.split("\t")]
        values = value_line.split("\t")
        cat = cats.setdefault(name, {})
        for i, k in enumerate(keys):
            if k:
                cat[k] = values[i] if i < len(values) else ""
        if name == "main" and not main_keys:
            main_keys = tuple(keys)
    return HeaderText(kind=kind, categories=cats, keys=main_keys, crlf=crlf, category_count=count)


def parse_xheader_text(text: str) -> HeaderText:
    """Read the ``<key>value</key>`` elements of an ``xheader`` XML text (no DTD, no entities)."""
    values: dict[str, str] = {}
    for m in _XML_ELEMENT.finditer(text):
        tag, value = m.group(1), m.group(2)
        value = value.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
        values[tag] = value
        key = _XHEADER_KEYS.get(tag)
        if key:
            values.setdefault(key, value)
    return HeaderText(kind="xheader", categories={"main": values, "xheader": values}, keys=tuple(values))


def parse_header_section(
    data: bytes, kind: str, *, codepage: str = "cp1252", path: str | None = None, offset: int | None = None
) -> HeaderText:
    """Inflate and parse the data of a ``header``, ``header2`` or ``xheader`` section.

    Raises:
        FormatError: the zlib stream is broken or too large.
    """
    raw = inflate_header(data, path=path, offset=offset)
    if kind == "header2":
        return parse_header_text(decode_header2_text(raw), kind)
    if kind == "xheader":
        text = raw[3:] if raw[:3] == b"\xef\xbb\xbf" else raw
        return parse_xheader_text(text.decode("utf-8", errors="replace"))
    return parse_header_text(decode_header_text(raw, codepage), kind)


@dataclass(frozen=True, slots=True)
class MergedHeaders:
    """The case values of all header sections of an image, merged (header < header2 < xheader).

    Attributes:
        values: merged ``main`` key → value.
        sections: the parsed sections that contributed, in merge order.
        posix_dates: keys of ``values`` whose dates came from a POSIX-time source (``header2``).
    """

    values: Mapping[str, str]
    sections: tuple[HeaderText, ...]
    posix_dates: frozenset[str] = field(default_factory=frozenset)


def merge_headers(sections: list[HeaderText]) -> MergedHeaders:
    """Merge parsed header sections in libewf's order: ``header``, then ``header2``, then ``xheader``."""
    order = {"header": 0, "header2": 1, "xheader": 2}
    ordered = sorted(sections, key=lambda s: order.get(s.kind, 3))
    values: dict[str, str] = {}
    posix: set[str] = set()
    for s in ordered:
        for k, v in s.main.items():
            if k in ("m", "u") and s.kind == "xheader":
                continue  # xheader dates are display strings; header/header2 carry the real ones
            if k in ("m", "u") and v.strip() == "":
                continue  # an empty date does not replace a known one
            values[k] = v
            if k in ("m", "u"):
                if s.kind == "header2":
                    posix.add(k)
                else:
                    posix.discard(k)
    return MergedHeaders(values=values, sections=tuple(ordered), posix_dates=frozenset(posix))


def parse_header_date(value: str) -> datetime | None:
    """A header date as a UTC datetime: POSIX seconds, or ``"Y M D h m s"`` taken as UTC.

    Returns ``None`` for empty or unparsable values (never raises).
    """
    v = value.strip()
    if not v:
        return None
    parts = v.split()
    try:
        if len(parts) == 1 and parts[0].lstrip("-").isdigit():
            secs = int(parts[0])
            if secs <= 0:
                return None
            return datetime.fromtimestamp(secs, tz=UTC)
        if len(parts) == 6 and all(p.isdigit() for p in parts):
            y, mo, d, h, mi, s = (int(p) for p in parts)
            return datetime(y, mo, d, h, mi, s, tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def case_from_values(values: Mapping[str, str]) -> CaseInfo:
    """CaseInfo from merged header values (``c`` case, ``n`` evidence, ``e`` examiner, ``a`` description,
    ``t`` notes)."""
    return CaseInfo(
        case_number=values.get("c", ""),
        evidence_number=values.get("n", ""),
        examiner=values.get("e", ""),
        description=values.get("a", ""),
        notes=values.get("t", ""),
    )


# === text generation (writer) =========================================================================
# The writer engineer adds the header/header2 text generation functions below this line.

__all__ += [
    "AV_MAX",
    "HEADER2_MAIN_KEYS",
    "HEADER_MAIN_KEYS",
    "OV_MAX",
    "build_header2_text",
    "build_header_text",
    "encase_date",
    "encode_header",
    "encode_header2",
    "header_values",
]

# EnCase 6 profile (ewf-notes §2.1/§2.3): ``header2`` is UTF-16LE with a BOM, LF line ends, three
# categories (main, srce, sub), main keys ``a c n e t md sn av ov m u p dc`` and POSIX dates;
# ``header`` is 8-bit text with CRLF line ends, one category, keys ``c n a e t av ov m u p`` and
# dates as ``"Y M D h m s"`` in local time without zero padding. Values cannot hold TAB/CR/LF (EWF1
# has no escaping), so those become spaces.

HEADER2_MAIN_KEYS: tuple[str, ...] = ("a", "c", "n", "e", "t", "md", "sn", "av", "ov", "m", "u", "p", "dc")
"""Main-category keys of an EnCase 6 ``header2``, in the order EnCase 6 / libewf write them."""

HEADER_MAIN_KEYS: tuple[str, ...] = ("c", "n", "a", "e", "t", "av", "ov", "m", "u", "p")
"""Main-category keys of an EnCase 4-7 ``header``, in order."""

AV_MAX = 11
"""EnCase accepts at most 11 characters of acquisition software version (``av``)."""
OV_MAX = 23
"""EnCase accepts at most 23 characters of acquisition OS (``ov``)."""


def _clean(value: str) -> str:
    return value.replace("\r\n", " ").replace("\t", " ").replace("\r", " ").replace("\n", " ")


def encase_date(when: datetime) -> str:
    """The ``header`` date format: local time as ``"YYYY M D h m s"``, fields not zero-padded."""
    t = when.astimezone()
    return f"{t.year} {t.month} {t.day} {t.hour} {t.minute} {t.second}"


def header_values(
    case: CaseInfo,
    *,
    acquired_at: datetime,
    system_date: datetime | None = None,
    model: str = "",
    serial: str = "",
    software: str | None = None,
    os_name: str | None = None,
) -> dict[str, str]:
    """Values for the main category, by key, before date formatting (``m``/``u`` as POSIX seconds).

    Args:
        case: the case fields (``a c n e t``).
        acquired_at: acquisition date (``m``).
        system_date: system date at acquisition (``u``); defaults to ``acquired_at``.
        model: drive model (``md``, header2 only).
        serial: drive serial number (``sn``, header2 only).
        software: acquisition software version (``av``, at most 11 characters); default forensimg's.
        os_name: acquisition operating system (``ov``, at most 23 characters); default this system's.
    """
    import platform

    from forensimg._version import __version__

    av = software if software is not None else __version__
    ov = os_name if os_name is not None else (platform.system() or "unknown")
    sysdate = system_date or acquired_at
    return {
        "a": _clean(case.description),
        "c": _clean(case.case_number),
        "n": _clean(case.evidence_number),
        "e": _clean(case.examiner),
        "t": _clean(case.notes),
        "md": _clean(model),
        "sn": _clean(serial),
        "av": _clean(av)[:AV_MAX],
        "ov": _clean(ov)[:OV_MAX],
        "m": str(int(acquired_at.astimezone(UTC).timestamp())),
        "u": str(int(sysdate.astimezone(UTC).timestamp())),
        "p": "0",  # "0" = no password
        "dc": "",
    }


def build_header2_text(values: Mapping[str, str]) -> str:
    """The EnCase 6 ``header2`` text (three categories, LF line ends), before UTF-16 encoding."""
    main = "\t".join(values.get(k, "") for k in HEADER2_MAIN_KEYS)
    return (
        "3\nmain\n"
        + "\t".join(HEADER2_MAIN_KEYS)
        + "\n"
        + main
        + "\n\n"
        # srce: one empty source entry; lo/po = -1 mean "unset" (ewf-notes §2.2, §2.3)
        + "srce\n0\t1\np\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq\n0\t0\n\t\t\t\t\t-1\t-1\t\t\t\n\n"
        # sub: one empty subject entry with nu = 1
        + "sub\n0\t1\np\tn\tid\tnu\tco\tgu\n0\t0\n\t\t\t\t1\t\n\n"
    )


def build_header_text(values: Mapping[str, str]) -> str:
    """The EnCase 4-7 ``header`` text (one category, CRLF line ends, EnCase dates), before encoding."""
    vals = dict(values)
    for k in ("m", "u"):
        if vals.get(k, "").isdigit():
            vals[k] = encase_date(datetime.fromtimestamp(int(vals[k]), UTC))
    main = "\t".join(vals.get(k, "") for k in HEADER_MAIN_KEYS)
    return "1\r\nmain\r\n" + "\t".join(HEADER_MAIN_KEYS) + "\r\n" + main + "\r\n\r\n"


def encode_header2(text: str) -> bytes:
    """UTF-16LE with the BOM ``FF FE``, as every EnCase/libewf ``header2`` (ewf-notes §2, pitfall 12)."""
    return b"\xff\xfe" + text.encode("utf-16-le")


def encode_header(text: str, codepage: str = "cp1252") -> bytes:
    """8-bit ``header`` bytes; characters the codepage lacks become ``?`` (header2 keeps them)."""
    return text.encode(codepage, errors="replace")
