"""TEMPORARY home of the header/header2 generation functions until header.py exists (then moved)."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from datetime import UTC, datetime

from forensimg._version import __version__
from forensimg.image import CaseInfo

# --- header / header2 text generation (writer side) -----------------------------------------------
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
