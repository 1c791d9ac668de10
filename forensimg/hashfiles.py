"""Reading hash files written by other tools: ``md5sum``-style lists, dc3dd logs, FTK Imager logs.

Accepted forms (one file may mix them; blank lines and ``#`` comments are skipped):

* GNU coreutils (``md5sum``, ``sha1sum``, ``sha256sum``, ``sha512sum``): ``HEX  NAME`` or ``HEX *NAME``;
  the algorithm follows from the length of the hex digest (32 MD5, 40 SHA-1, 64 SHA-256, 128 SHA-512).
  A line holding only a digest is accepted too.
* BSD style (``md5 -r`` aside, ``shasum --tag``): ``MD5 (NAME) = HEX``, ``SHA256 (NAME) = HEX``.
* dc3dd logs: ``   HEX (md5)``, ``   [ok] HEX (sha1)``. Piece hashes of a split output
  (``HEX (md5), sectors 0 - 2047``) are not whole-media hashes and are skipped.
* FTK Imager and ewfacquire/ewfverify logs and other ``LABEL: HEX`` lines: ``MD5 checksum: HEX``,
  ``SHA1 checksum: HEX : verified``, ``MD5 hash calculated over data: HEX``, ``SHA-256: HEX``.

A labelled digest whose length does not fit its label is reported as an error rather than guessed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from forensimg.errors import ImageNotFoundError, ImageReadError, UsageError

__all__ = ["HashEntry", "algorithm_for_hex", "parse_hash_file", "parse_hash_text", "select_media_hashes"]

_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_LABELS = {
    "md5": "md5",
    "md-5": "md5",
    "sha1": "sha1",
    "sha-1": "sha1",
    "sha256": "sha256",
    "sha-256": "sha256",
    "sha2-256": "sha256",
    "sha512": "sha512",
    "sha-512": "sha512",
}
_HEX = r"[0-9a-fA-F]{32,128}"
_LABEL = r"(?P<label>md-?5|sha-?1|sha2?-?256|sha-?512)"

_COREUTILS = re.compile(rf"^\\?(?P<hex>{_HEX})(?:\s+\*?(?P<name>.+?))?\s*$")
_BSD = re.compile(rf"^{_LABEL}\s*\((?P<name>.*)\)\s*=\s*(?P<hex>{_HEX})\s*$", re.IGNORECASE)
_DC3DD = re.compile(rf"^\s*(?:\[(?:ok|\w+)\]\s*)?(?P<hex>{_HEX})\s+\({_LABEL}\)(?P<rest>.*)$", re.IGNORECASE)
_LABELLED = re.compile(rf"^\s*{_LABEL}\b[^:=\n]*[:=]\s*(?P<hex>{_HEX})\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class HashEntry:
    """One digest found in a hash file.

    Attributes:
        algorithm: ``md5``, ``sha1``, ``sha256`` or ``sha512``.
        value: lower-case hex digest.
        name: the file the line names (``md5sum``/BSD forms), or ``None`` for a log line about the media.
        line: 1-based line number in the file.
        source: the hash file's path (or a label for text not read from a file).
    """

    algorithm: str
    value: str
    name: str | None
    line: int
    source: str


def algorithm_for_hex(hexdigest: str) -> str | None:
    """``md5``/``sha1``/``sha256``/``sha512`` from the length of a hex digest, or ``None``."""
    if not re.fullmatch(r"[0-9a-fA-F]+", hexdigest):
        return None
    return _LENGTHS.get(len(hexdigest))


def _label_alg(label: str, hexd: str, source: str, lineno: int) -> str:
    alg = _LABELS[label.lower()]
    if _LENGTHS.get(len(hexd)) != alg:
        raise UsageError(
            f"hash file '{source}' line {lineno}: a {alg.upper()} digest must have "
            f"{next(k for k, v in _LENGTHS.items() if v == alg)} hex digits, found {len(hexd)}",
            path=source,
        )
    return alg


def parse_hash_text(text: str, source: str = "<text>") -> list[HashEntry]:
    """Every digest found in the text of a hash file or log, in order (see the module docstring).

    Raises:
        UsageError: a labelled digest has the wrong length for its label.
    """
    out: list[HashEntry] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        m = _DC3DD.match(line)
        if m:
            if "sectors" in m.group("rest").lower():
                continue  # a piece hash of a split dc3dd output, not the whole media
            alg = _label_alg(m.group("label"), m.group("hex"), source, lineno)
            out.append(HashEntry(alg, m.group("hex").lower(), None, lineno, source))
            continue
        m = _BSD.match(line)
        if m:
            alg = _label_alg(m.group("label"), m.group("hex"), source, lineno)
            out.append(HashEntry(alg, m.group("hex").lower(), m.group("name"), lineno, source))
            continue
        m = _LABELLED.match(line)
        if m:
            alg = _label_alg(m.group("label"), m.group("hex"), source, lineno)
            out.append(HashEntry(alg, m.group("hex").lower(), None, lineno, source))
            continue
        m = _COREUTILS.match(line)
        if m:
            calg = algorithm_for_hex(m.group("hex"))
            if calg is None:
                continue
            name = m.group("name")
            out.append(HashEntry(calg, m.group("hex").lower(), name, lineno, source))
    return out


def parse_hash_file(path: str | os.PathLike[str]) -> list[HashEntry]:
    """Every digest in the hash file ``path`` (UTF-8, UTF-16 with BOM, or Latin-1 text).

    Raises:
        ImageNotFoundError: the file does not exist.
        ImageReadError: it cannot be read.
        UsageError: a labelled digest has the wrong length for its label.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageNotFoundError(f"hash file '{p}' does not exist", path=p) from None
    except OSError as exc:
        raise ImageReadError(f"cannot read hash file '{p}': {exc.strerror}", path=p, errno_=exc.errno) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")  # FTK Imager on Windows may write UTF-16
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return parse_hash_text(text, str(p))


def _names_of(segments: Iterable[str | os.PathLike[str]]) -> set[str]:
    names: set[str] = set()
    for s in segments:
        n = Path(s).name
        names.add(n)
        names.add(n.lower())
    return names


def select_media_hashes(entries: Sequence[HashEntry], segments: Sequence[str | os.PathLike[str]]) -> dict[str, str]:
    """The whole-media digests among ``entries``, per algorithm.

    An entry counts when it names no file (a log line), names the image's first segment, or is the only
    entry for its algorithm (an ``md5sum`` line naming the source device or an earlier name of the
    image). Entries naming other files are ignored when a better one exists.

    Raises:
        UsageError: the file gives two different digests for the same algorithm and neither names the
            image, so it is not clear which one applies.
    """
    first = _names_of(segments[:1])
    members = _names_of(segments)
    out: dict[str, str] = {}
    by_alg: dict[str, list[HashEntry]] = {}
    for e in entries:
        by_alg.setdefault(e.algorithm, []).append(e)
    for alg, group in by_alg.items():
        named = {Path(e.name.strip()).name for e in group if e.name is not None}
        if len(named & members) >= 2:
            # ``md5sum disk.001 disk.002 ...``: digests of the segment files, not of the media
            group = [e for e in group if e.name is None or Path(e.name.strip()).name not in members]
            if not group:
                continue
        chosen = [e for e in group if e.name is not None and Path(e.name.strip()).name in first]
        if not chosen:
            chosen = [e for e in group if e.name is None]
        if not chosen:
            chosen = group
        values = {e.value for e in chosen}
        if len(values) > 1:
            where = ", ".join(f"{e.source} line {e.line}" for e in chosen)
            raise UsageError(
                f"hash file gives {len(values)} different {alg.upper()} digests ({where}) and none names "
                f"the image '{Path(segments[0]).name if segments else '?'}'",
                path=chosen[0].source,
            )
        out[alg] = values.pop()
    return out
