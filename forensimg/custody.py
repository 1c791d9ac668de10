"""Chain-of-custody log: hash-chained JSON Lines beside the image (``IMAGE.custody.jsonl``).

Every acquire, verify, convert, mount and restore appends one event. Each line is a JSON object whose
``prev_sha256`` is the SHA-256 of the previous line's bytes (without its newline; ``null`` for the first
line) and whose ``seq`` counts from 1; its last member, ``event_sha256``, is the SHA-256 of the line as
serialised without that member (so that an edit of the last line, which no later line links to, is found
too). Any edit, deletion, insertion or reordering of lines is found by :meth:`CustodyLog.check_chain`,
except removal of events from the end: :meth:`CustodyLog.head` gives the value to record elsewhere (a
signed manifest does) and :meth:`CustodyLog.check_anchor` checks it. A chain only shows accidents and
naive edits; whoever can rewrite the whole file can rebuild the chain, which is why manifests are signed.
Lines are appended whole with ``O_APPEND`` under an exclusive ``flock`` (which also serialises reading the
last line to chain to) and synced; the log is never rewritten. Times are UTC.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import socket
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensimg._version import __version__
from forensimg.errors import CustodyError, WriteError
from forensimg.image import Fault, FaultKind

__all__ = ["ACTIONS", "ArtifactRef", "CustodyEvent", "CustodyLog", "default_log_path"]

ACTIONS = ("acquire", "verify", "convert", "mount", "export", "restore", "sign", "note")


def default_log_path(image_path: str | os.PathLike[str]) -> Path:
    """``disk.E01`` → ``disk.E01.custody.jsonl`` (beside the first segment)."""
    p = Path(image_path)
    return p.with_name(p.name + ".custody.jsonl")


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A file taking part in an event, with its size and (where computed) SHA-256."""

    path: str
    size: int | None = None
    sha256: str | None = None

    @classmethod
    def of(cls, path: str | os.PathLike[str], *, sha256: str | None = None) -> ArtifactRef:
        """Reference an existing file, recording its size."""
        p = Path(path)
        try:
            st = p.stat()
        except OSError:
            return cls(str(p), None, sha256)
        size: int | None = st.st_size
        if stat.S_ISBLK(st.st_mode):
            size = _block_device_size(st.st_rdev)
        return cls(str(p), size, sha256)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class CustodyEvent:
    """One custody event (what is written is :meth:`to_dict` plus ``seq`` and ``prev_sha256``)."""

    action: str
    examiner: str = ""
    inputs: tuple[ArtifactRef, ...] = ()
    outputs: tuple[ArtifactRef, ...] = ()
    result: Mapping[str, Any] = field(default_factory=dict)
    argv: tuple[str, ...] = field(default_factory=lambda: tuple(sys.argv))
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    host: str = field(default_factory=socket.gethostname)
    user: str = field(default_factory=lambda: _user())
    tool: str = f"forensimg {__version__}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without ``seq``/``prev_sha256``, which the log adds)."""
        return {
            "at": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "action": self.action,
            "examiner": self.examiner,
            "host": self.host,
            "user": self.user,
            "tool": self.tool,
            "argv": list(self.argv),
            "inputs": [a.to_dict() for a in self.inputs],
            "outputs": [a.to_dict() for a in self.outputs],
            "result": dict(self.result),
        }


def _block_device_size(rdev: int) -> int | None:
    """Size of a block device from sysfs (512-byte units there), without opening the device."""
    try:
        sectors = Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}/size").read_text().strip()
        return int(sectors) * 512
    except (OSError, ValueError):
        return None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return str(os.getuid())


class CustodyLog:
    """An append-only, hash-chained custody log.

    Args:
        path: the log file (created on first append).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, event: CustodyEvent) -> dict[str, Any]:
        """Append one event, chained to the last line. Returns the record as written.

        Raises:
            WriteError: the log cannot be written.
            CustodyError: the existing last line is not valid JSON (the chain is not extended blindly).
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise WriteError(
                f"cannot open custody log '{self.path}': {exc.strerror}", path=self.path, errno_=exc.errno
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = _last_line(fd)
            if last is None:
                seq, prev = 1, None
            else:
                try:
                    seq = int(json.loads(last)["seq"]) + 1
                except (ValueError, KeyError, TypeError):
                    raise CustodyError(
                        f"custody log '{self.path}' ends in a malformed line; not appending", path=self.path
                    ) from None
                prev = hashlib.sha256(last).hexdigest()
            record: dict[str, Any] = {"seq": seq, **event.to_dict(), "prev_sha256": prev}
            record["event_sha256"] = hashlib.sha256(_dumps(record)).hexdigest()
            line = _dumps(record) + b"\n"
            view = memoryview(line)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
            return record
        except OSError as exc:
            raise WriteError(
                f"cannot append to custody log '{self.path}': {exc.strerror}", path=self.path, errno_=exc.errno
            ) from None
        finally:
            os.close(fd)

    def lines(self) -> list[bytes]:
        """The raw lines (without newlines); empty when the log does not exist."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        if not data:
            return []
        parts = data.split(b"\n")
        if parts[-1] == b"":
            parts.pop()
        return parts

    def events(self) -> list[dict[str, Any]]:
        """Parsed events in order (malformed lines raise :class:`CustodyError`)."""
        out = []
        for i, line in enumerate(self.lines(), 1):
            try:
                out.append(json.loads(line))
            except ValueError:
                raise CustodyError(f"custody log '{self.path}': line {i} is not valid JSON", path=self.path) from None
        return out

    def check_chain(self) -> tuple[Fault, ...]:
        """Check every line's ``seq`` and ``prev_sha256``. Returns the faults (empty when intact)."""
        faults: list[Fault] = []
        prev_line: bytes | None = None
        data = self.path.read_bytes() if self.path.exists() else b""
        if data and not data.endswith(b"\n"):
            n = data.count(b"\n") + 1
            start = data.rfind(b"\n") + 1
            faults.append(
                Fault(
                    FaultKind.CHAIN_BROKEN,
                    f"'{self.path}' line {n} (offset {start}): the last line is incomplete (no newline)",
                    offset=start,
                )
            )
        offset = 0
        for i, line in enumerate(self.lines(), 1):
            where = f"'{self.path}' line {i} (offset {offset})"
            try:
                rec = json.loads(line)
                seq, prev, own = rec["seq"], rec["prev_sha256"], rec.pop("event_sha256")
            except (ValueError, KeyError, TypeError):
                faults.append(Fault(FaultKind.CHAIN_BROKEN, f"{where}: not a custody event", offset=offset))
                prev_line = line
                offset += len(line) + 1
                continue
            expected_prev = hashlib.sha256(prev_line).hexdigest() if prev_line is not None else None
            body = hashlib.sha256(_dumps(rec)).hexdigest()
            if own != body:
                faults.append(
                    Fault(
                        FaultKind.CHAIN_BROKEN,
                        f"{where}: event_sha256 does not match the event's content (line {i} was changed)",
                        offset=offset,
                        expected=own,
                        found=body,
                    )
                )
            if seq != i:
                faults.append(
                    Fault(
                        FaultKind.CHAIN_BROKEN,
                        f"{where}: event seq {seq}, expected {i} (a line was removed, added or moved)",
                        offset=offset,
                        expected=str(i),
                        found=str(seq),
                    )
                )
            if prev != expected_prev:
                # the link of line i fails: line i-1 was changed, or lines were removed, added or moved
                faults.append(
                    Fault(
                        FaultKind.CHAIN_BROKEN,
                        f"{where}: prev_sha256 does not match line {i - 1} "
                        f"(line {i - 1} was changed, or lines were removed, added or moved)"
                        if i > 1
                        else f"{where}: the first event must have prev_sha256 null (lines were removed before it)",
                        offset=offset,
                        expected=expected_prev,
                        found=prev,
                    )
                )
            prev_line = line
            offset += len(line) + 1
        return tuple(faults)


    def head(self) -> tuple[int, str] | None:
        """``(seq, sha256 of the line)`` of the last event, or ``None`` for an empty log.

        Record it elsewhere (a signed manifest does) to detect later removal of events from the end,
        which no hash chain can show by itself.
        """
        lines = self.lines()
        if not lines:
            return None
        try:
            seq = int(json.loads(lines[-1])["seq"])
        except (ValueError, KeyError, TypeError):
            seq = len(lines)
        return seq, hashlib.sha256(lines[-1]).hexdigest()

    def check_anchor(self, seq: int, sha256: str, *, what: str = "the anchor") -> tuple[Fault, ...]:
        """Check that event ``seq`` is still the line whose SHA-256 was recorded (e.g. in a signed manifest).

        Catches truncation of the log's end and rewriting of the whole chain up to that event.
        """
        lines = self.lines()
        if seq < 1 or seq > len(lines):
            return (
                Fault(
                    FaultKind.CHAIN_BROKEN,
                    f"'{self.path}': {what} records event {seq}, but the log holds {len(lines)} events "
                    "(events were removed from the end)",
                    expected=str(seq),
                    found=str(len(lines)),
                ),
            )
        found = hashlib.sha256(lines[seq - 1]).hexdigest()
        if found != sha256:
            offset = sum(len(x) + 1 for x in lines[: seq - 1])
            return (
                Fault(
                    FaultKind.CHAIN_BROKEN,
                    f"'{self.path}' line {seq} (offset {offset}): event {seq} is not the one {what} recorded",
                    offset=offset,
                    expected=sha256,
                    found=found,
                ),
            )
        return ()


def _dumps(record: Mapping[str, Any]) -> bytes:
    """The one serialisation of an event: key order as built, compact, UTF-8 (so that it re-serialises the same)."""
    return json.dumps(record, sort_keys=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _last_line(fd: int) -> bytes | None:
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    block = 4096
    pos = size
    buf = b""
    while pos > 0:
        step = min(block, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        stripped = buf[:-1] if buf.endswith(b"\n") else buf
        nl = stripped.rfind(b"\n")
        if nl >= 0:
            return stripped[nl + 1 :]
    return buf[:-1] if buf.endswith(b"\n") else buf


def record_event(
    image_path: str | os.PathLike[str] | None,
    action: str,
    *,
    log_path: str | os.PathLike[str] | None = None,
    examiner: str = "",
    inputs: Sequence[ArtifactRef] = (),
    outputs: Sequence[ArtifactRef] = (),
    result: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Append an event to ``log_path`` or to the log beside ``image_path``. Returns the record."""
    if log_path is None:
        if image_path is None:
            raise ValueError("record_event needs image_path or log_path")
        log_path = default_log_path(image_path)
    event = CustodyEvent(
        action=action,
        examiner=examiner,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        result=dict(result or {}),
    )
    return CustodyLog(log_path).append(event)
