"""Segment file names of EWF sets: ``.E01``…``.E99``, then ``.EAA``…``.ZZZ`` (pure functions).

The rule (libewf's, see ``formats/ewf/spec.md`` §Naming): for segment number N ≤ 99 the extension is the
set letter followed by two digits; from 100 on, m = N − 100 is written as three letters in base 26
whose first letter starts at the set letter (``E`` → ``EAA`` = 100, ``EZZ`` = 775, ``FAA`` = 776, …,
``ZZZ`` = 14971 for ``E``). The set letter is ``E`` for E01, ``e`` for the original EWF ``.e01``,
``s`` for SMART ``.s01``; lower-case letters keep lower case throughout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["max_segment_number", "segment_extension", "segment_number", "segment_path", "set_members"]

_EXT = re.compile(r"^[A-Za-z][0-9A-Za-z]{2}$")


def max_segment_number(letter: str = "E") -> int:
    """The highest segment number the naming scheme of ``letter`` can express (``E`` → 14971)."""
    first = ord(letter.upper())
    return 100 + (ord("Z") - first + 1) * 26 * 26 - 1


def segment_extension(number: int, letter: str = "E") -> str:
    """Extension (without the dot) of segment ``number`` (1-based) in a set whose first is ``letter01``.

    Raises:
        ValueError: the number is below 1 or past what the scheme can name (``.ZZZ``).
    """
    if len(letter) != 1 or not letter.isalpha():
        raise ValueError(f"invalid set letter {letter!r}")
    if number < 1 or number > max_segment_number(letter):
        raise ValueError(f"segment number {number} cannot be named after '{letter}01'")
    if number <= 99:
        return f"{letter}{number:02d}"
    m = number - 100
    third = m % 26
    m //= 26
    second = m % 26
    m //= 26
    base = ord("a") if letter.islower() else ord("A")
    return chr(ord(letter) + m) + chr(base + second) + chr(base + third)


def segment_number(extension: str) -> int | None:
    """Segment number of an extension (``E01`` → 1, ``EAA`` → 100, ``.s02`` → 2); ``None`` if not one.

    The number is relative to the set letter ``E``/``e``/``s``/``L``, which is guessed: a digit pair
    means the first character is the set letter; for letter triples the set letter is taken as ``E``
    (``e`` for lower case) unless the first letter is below it, then ``s``/``S`` (SMART) or ``L``.
    Prefer :func:`set_members`, which knows the first member's letter.
    """
    ext = extension.lstrip(".")
    if not _EXT.match(ext):
        return None
    if ext[1:].isdigit():
        n = int(ext[1:])
        return n if n >= 1 else None
    if not ext[1:].isalpha():
        return None
    return _letters_number(ext, "e" if ext[0].islower() else "E")


def _letters_number(ext: str, letter: str) -> int | None:
    a, b, c = ext[0], ext[1].upper(), ext[2].upper()
    lead = ord(a.upper()) - ord(letter.upper())
    if lead < 0 or not ("A" <= b <= "Z" and "A" <= c <= "Z"):
        return None
    return 100 + lead * 26 * 26 + (ord(b) - 65) * 26 + (ord(c) - 65)


def segment_path(first: str | os.PathLike[str], number: int) -> Path:
    """Path of segment ``number`` of the set whose first file is ``first`` (``x.E01`` → ``x.E02``…)."""
    p = Path(first)
    ext = p.suffix.lstrip(".")
    letter = ext[0] if ext else "E"
    return p.with_suffix("." + segment_extension(number, letter))


def set_members(path: str | os.PathLike[str]) -> list[Path]:
    """Every file in ``path``'s folder that looks like a member of the same EWF set.

    Files with the same stem and an extension of a set letter plus two digits or two letters, in the
    same letter case as ``path``'s extension, sorted by the number their name implies. The set letter
    is taken from a ``?01``-style member when there is one (``E``, ``e``, ``s``), else ``E``/``e``. The
    reader still orders and checks the members by the segment number stored in each file header.
    """
    p = Path(path)
    ext = p.suffix.lstrip(".")
    if not _EXT.match(ext):
        return [p]
    stem = p.name[: -len(ext) - 1]
    lower = ext[0].islower()
    folder = p.parent
    try:
        names = [e.name for e in folder.iterdir()]
    except OSError:
        return [p]
    cands: list[str] = []
    for name in names:
        if not name.startswith(stem + ".") or len(name) != len(stem) + 4:
            continue
        e = name[-3:]
        if not _EXT.match(e) or e[0].islower() != lower:
            continue
        if e[1:].isdigit() or (e[1:].isalpha() and e[1:].islower() == lower):
            cands.append(e)
    if ext not in cands:
        cands.append(ext)
    digit_letters = sorted({e[0] for e in cands if e[1:].isdigit()})
    if ext[1:].isdigit():
        letter = ext[0]
    elif digit_letters:
        letter = digit_letters[0]
    else:
        letter = "e" if lower else "E"
    found: dict[int, Path] = {}
    for e in cands:
        if e[1:].isdigit():
            if e[0] != letter or int(e[1:]) < 1:
                continue
            n: int | None = int(e[1:])
        else:
            n = _letters_number(e, letter)
        if n is not None:
            found[n] = folder / f"{stem}.{e}"
    if not found:
        return [p]
    return [found[k] for k in sorted(found)]
