"""The acquisition report: ``TARGET.txt`` (for people, in the spirit of FTK Imager's) and ``TARGET.json``.

Both are written atomically (:func:`forensimg.records.atomic_write`) beside the first segment of the
first target. The report is written at the start ("in progress"), and rewritten at the end: finished,
failed or interrupted (then marked INCOMPLETE). Hashes are stated as computed over the data *as stored*:
unreadable sectors zero-filled.
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensimg._version import __version__
from forensimg.hashing import hash_file
from forensimg.image import CaseInfo
from forensimg.records import atomic_write

__all__ = ["AcquisitionReport", "report_paths", "segment_hashes"]

HASH_NOTE = ("computed over the data as stored (unreadable sectors zero-filled), exactly the bytes acquired;"
             " a copy padded to a whole sector stores the hashes of its padded media (see Targets)")


def report_paths(target: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(TARGET.txt, TARGET.json)`` for a target path."""
    p = Path(target)
    return p.with_name(p.name + ".txt"), p.with_name(p.name + ".json")


def segment_hashes(paths: Sequence[Path], known: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Size and SHA-256 of every segment file (for the report).

    ``known``: SHA-256 per path that the writer computed from the exact bytes it appended to the file
    or read back once the file was final (``WriteResult.details["segment_sha256"]`` of every writer:
    fimg and raw hash what they append, E01 reads its files while they are synced); those files are not
    read again. Any other file
    is read and hashed.
    """
    out = []
    known = known or {}
    for p in paths:
        try:
            size = p.stat().st_size
            sha = known.get(str(p))
            if sha is None:
                sha = hash_file(str(p))["sha256"]
            out.append({"path": str(p), "size": size, "sha256": sha})
        except OSError as exc:
            out.append({"path": str(p), "size": None, "sha256": None, "error": exc.strerror})
    return out


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


@dataclass
class AcquisitionReport:
    """Facts about one acquisition (or conversion), rendered as text and JSON.

    Attributes:
        action: ``acquire`` or ``convert``.
        argv: the command line.
        case: case fields.
        source: source identity (path, size, model, serial, ...).
        safeguards: the safeguard report (``SafeguardReport.to_dict()``).
        result: the engine's result (``AcquisitionResult.to_dict()``) or the conversion's.
        status: ``in progress``, ``complete``, ``INCOMPLETE``, ``FAILED``.
        segments: per target path: list of ``{path, size, sha256}``.
        notes: extra lines (warnings, resume history).
    """

    action: str
    argv: list[str]
    case: CaseInfo
    source: Mapping[str, Any]
    safeguards: Mapping[str, Any] | None = None
    result: Mapping[str, Any] | None = None
    status: str = "in progress"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    segments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    host: str = field(default_factory=socket.gethostname)
    user: str = field(default_factory=_user)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``TARGET.json``)."""
        return {
            "tool": "forensimg",
            "version": __version__,
            "action": self.action,
            "status": self.status,
            "command_line": self.argv,
            "host": self.host,
            "os": f"{platform.system()} {platform.release()}",
            "user": self.user,
            "case": self.case.to_dict(),
            "source": dict(self.source),
            "settings": self.settings,
            "safeguards": dict(self.safeguards) if self.safeguards else None,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "hashes_cover": HASH_NOTE,
            "result": dict(self.result) if self.result else None,
            "segments": self.segments,
            "notes": self.notes,
        }

    def render(self) -> str:
        """The text report."""
        d = self.to_dict()
        lines: list[str] = []
        w = lines.append
        title = "Acquisition report" if self.action == "acquire" else "Conversion report"
        w(f"forensimg {__version__} — {title}")
        w("=" * 72)
        w(f"Status:                {self.status}")
        if self.status != "complete":
            w("                       (THIS IMAGE IS NOT COMPLETE: see below)" if self.status != "in progress" else
              "                       (acquisition running, or stopped before it wrote its final report)")
        w(f"Command line:          {' '.join(_q(a) for a in self.argv)}")
        w(f"Host:                  {self.host} ({d['os']})")
        w(f"User:                  {self.user}")
        w("")
        w("Case information")
        w("-" * 72)
        names = {"case_number": "Case number", "evidence_number": "Evidence number", "examiner": "Examiner",
                 "description": "Description", "notes": "Notes"}
        for k, label in names.items():
            w(f"{label + ':':<23}{d['case'].get(k, '')}")
        w("")
        w("Source")
        w("-" * 72)
        for k, v in self.source.items():
            if isinstance(v, Mapping):
                for k2, v2 in v.items():
                    w(f"{(k2.replace('_', ' ').capitalize() + ':'):<23}{_fmt(v2)}")
            else:
                w(f"{(k.replace('_', ' ').capitalize() + ':'):<23}{_fmt(v)}")
        if self.settings:
            w("")
            w("Settings")
            w("-" * 72)
            for k, v in self.settings.items():
                w(f"{(k.replace('_', ' ').capitalize() + ':'):<23}{_fmt(v)}")
        if self.safeguards:
            w("")
            w("Safeguards (write-blocking)")
            w("-" * 72)
            for it in self.safeguards.get("items", []):
                w(f"[{it['status']}] {it['name']}: {it['detail']}")
                if it.get("before") not in (None, [], {}):
                    w(f"    before: {_fmt(it['before'])}")
                if it.get("after") not in (None, [], {}):
                    w(f"    after:  {_fmt(it['after'])}")
            for warn in self.safeguards.get("warnings", []):
                w(f"WARNING: {warn}")
        w("")
        w("Acquisition" if self.action == "acquire" else "Conversion")
        w("-" * 72)
        w(f"Started (UTC):         {self.started_at.isoformat()}")
        w(f"Finished (UTC):        {self.finished_at.isoformat() if self.finished_at else '-'}")
        r = self.result or {}
        if r:
            w(f"Bytes read:            {r.get('size', 0)}" + (
                f" of {r['expected_size']}" if r.get("expected_size") not in (None, r.get("size")) else ""))
            padded = [t for t in r.get("targets", []) if t.get("padded_bytes")]
            if padded:
                w(f"Padded:                {len(padded)} copy(ies) padded to a whole sector (the format stores"
                  " whole sectors only; see Targets); the hashes below cover the exact media")
            elif r.get("size") and r.get("sector_size") and r["size"] % r["sector_size"]:
                w(f"Padded:                no copy (the media ends inside a {r['sector_size']}-byte sector;"
                  " every copy holds the exact bytes)")
            if r.get("resumed_from"):
                w(f"Resumed from:          media offset {r['resumed_from']}")
            if r.get("interrupted"):
                w("Interrupted:           yes (stopped by the user; the image can be resumed where its format allows)")
            unread = r.get("unreadable", [])
            w(f"Unreadable:            {len(unread)} range(s), {r.get('unreadable_sectors', 0)} sector(s), zero-filled")
            for u in unread:
                w(f"    sectors {u['first_lba']}..{u['last_lba']} (bytes {u['start']}..{u['end'] - 1}),"
                  f" errno {u.get('errno')}")
            w("")
            w(f"Hashes ({HASH_NOTE}):")
            for alg, hexd in (r.get("hashes") or {}).items():
                w(f"    {alg.upper() + ':':<8}{hexd}")
            if not r.get("hashes"):
                w("    none (the acquisition did not finish)")
        w("")
        w("Targets")
        w("-" * 72)
        for t in r.get("targets", []):
            w(f"{t['path']} ({t['format']}): {t['state']}" + (
                f" — failed at media offset {t['failed_at']}: {t['error']}" if t.get("error") else ""))
            if t.get("stored_size") is not None:
                if t.get("padded_bytes"):
                    w(f"    stores {t['stored_size']} bytes: PADDED with {t['padded_bytes']} zero bytes to a whole"
                      f" sector (the {t['format']} format stores whole sectors only); its stored hashes cover"
                      " the padded media:")
                    for alg, hexd in (t.get("hashes") or {}).items():
                        w(f"        {alg.upper() + ':':<8}{hexd}")
                else:
                    w(f"    stores {t['stored_size']} bytes: the exact media, not padded; its stored hashes are"
                      " the media hashes above")
            for s in self.segments.get(t["path"], []):
                w(f"    {s['path']}  {s['size']} bytes  sha256 {s['sha256']}")
        w("")
        w("Verification")
        w("-" * 72)
        ver = r.get("verification") or []
        if not ver:
            w("not performed (use --verify)")
        for v in ver:
            w(f"{v['path']}: {'VERIFIED' if v['ok'] else 'FAILED'} — {v['detail']}")
        if self.notes:
            w("")
            w("Notes")
            w("-" * 72)
            lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def write(self, target: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``TARGET.txt`` and ``TARGET.json`` atomically. Returns their paths."""
        txt, js = report_paths(target)
        atomic_write(js, json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
        atomic_write(txt, self.render())
        return txt, js


def _q(a: str) -> str:
    return a if a and all(c.isalnum() or c in "-_./=:,@+" for c in a) else "'" + a.replace("'", "'\\''") + "'"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None or v == "":
        return "-"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return "; ".join(_fmt(x) for x in v)
    return str(v)
