"""Shared pieces of the CLI commands: the context object, ``--json`` output, custody records."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["FILE_PATH", "PATH", "Ctx", "emit_json", "json_option", "pass_ctx", "record_custody"]

# Paths are not checked for readability by click: an unreadable input is forensimg's own one-line error
# with exit 3 (docs/cli.md), not a click usage error (exit 2).
PATH = click.Path(readable=False)
FILE_PATH = click.Path(dir_okay=False, readable=False)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Ctx:
    """Global options, available to every command through :data:`pass_ctx`."""

    debug: bool = False
    examiner: str = ""
    custody_log: str | None = None
    no_custody: bool = False


pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def json_option(f: F) -> F:
    """The ``--json`` flag every command offers."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")(f)


def emit_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=_default) + "\n")
    sys.stdout.flush()


def _default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, bytes):
        return o.hex()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def record_custody(
    ctx: Ctx,
    image_path: str | Path | None,
    action: str,
    *,
    inputs: Sequence[str | Path] = (),
    outputs: Sequence[str | Path] = (),
    result: Mapping[str, Any] | None = None,
    examiner: str | None = None,
    hashes: Mapping[str, str] | None = None,
) -> Path | None:
    """Append one event to the custody log of ``image_path`` (or ``--custody-log``).

    ``hashes`` maps a path (as given in inputs/outputs) to its SHA-256, where known.
    Returns the log path, or ``None`` with ``--no-custody``.
    """
    from forensimg.custody import ArtifactRef, default_log_path, record_event

    if ctx.no_custody:
        return None
    if ctx.custody_log:
        log = Path(ctx.custody_log)
    elif image_path is not None:
        log = default_log_path(image_path)
    else:
        return None
    h = {str(k): v for k, v in (hashes or {}).items()}
    record_event(
        None,
        action,
        log_path=log,
        examiner=examiner if examiner is not None else ctx.examiner,
        inputs=[ArtifactRef.of(p, sha256=h.get(str(p))) for p in inputs],
        outputs=[ArtifactRef.of(p, sha256=h.get(str(p))) for p in outputs],
        result=result,
    )
    return log


def human_size(n: int) -> str:
    """``1474560`` → ``1.4 MiB (1474560 bytes)``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            txt = f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            return f"{txt} ({n} bytes)" if unit != "B" else f"{n} bytes"
        size /= 1024
    return f"{n} bytes"
