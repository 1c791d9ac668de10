"""``forensimg custody show|check IMAGE``: the custody log beside an image, as a table or checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from forensimg.cli._common import PATH, Ctx, emit_json, json_option, pass_ctx
from forensimg.custody import CustodyLog, default_log_path
from forensimg.errors import ImageNotFoundError
from forensimg.image import Fault


def _log_for(ctx: Ctx, image: str) -> CustodyLog:
    if ctx.custody_log:
        path = Path(ctx.custody_log)
    elif image.endswith(".custody.jsonl"):
        path = Path(image)
    else:
        path = default_log_path(image)
    if not path.is_file():
        raise ImageNotFoundError(f"no custody log '{path}'", path=path)
    return CustodyLog(path)


def _anchor_faults(log: CustodyLog, image: str) -> tuple[tuple[Fault, ...], str | None]:
    """Check the custody head recorded in ``IMAGE.manifest.json`` (if there is one) against the log."""
    from forensimg.signing import manifest_paths

    first = Path(image[: -len(".custody.jsonl")]) if image.endswith(".custody.jsonl") else Path(image)
    mpath, _ = manifest_paths(first)
    try:
        head = json.loads(mpath.read_text(encoding="utf-8")).get("custody_head")
    except (OSError, ValueError, AttributeError):
        return (), None
    if not isinstance(head, dict) or not isinstance(head.get("seq"), int) or not isinstance(head.get("sha256"), str):
        return (), None
    return log.check_anchor(head["seq"], head["sha256"], what=f"the manifest '{mpath.name}'"), str(mpath)


@click.group("custody")
def cli() -> None:
    """Show or check the hash-chained custody log of an image (IMAGE.custody.jsonl)."""


@cli.command("show")
@click.argument("image", type=PATH)
@json_option
@pass_ctx
def show_cli(ctx: Ctx, image: str, as_json: bool) -> int:
    """Print the custody history of IMAGE as a table (oldest first), marking where the chain breaks."""
    log = _log_for(ctx, image)
    faults = log.check_chain()
    lines = log.lines()
    starts = {}
    pos = 0
    for i, line in enumerate(lines, 1):
        starts[pos] = i
        pos += len(line) + 1
    bad_lines = {starts[f.offset] for f in faults if f.offset in starts}
    rows: list[dict[str, Any]] = []
    for line in lines:
        try:
            ev = json.loads(line)
            if not isinstance(ev, dict):
                raise ValueError
        except ValueError:
            ev = {"seq": None, "action": "(not a custody event)"}
        rows.append(ev)
    if as_json:
        emit_json(
            {
                "log": str(log.path),
                "events": rows,
                "chain": {"intact": not faults, "faults": [f.to_dict() for f in faults]},
            }
        )
        return 0
    header = ("SEQ", "TIME (UTC)", "ACTION", "EXAMINER", "USER@HOST", "RESULT", "CHAIN")
    table: list[tuple[str, ...]] = [header]
    for i, ev in enumerate(rows, 1):
        res: dict[str, Any] = ev["result"] if isinstance(ev.get("result"), dict) else {}
        result = str(res.get("status") or res.get("verdict") or "")
        if res.get("exit_code") is not None:
            result += f" (exit {res['exit_code']})"
        table.append(
            (
                str(ev.get("seq", "")),
                str(ev.get("at", "")),
                str(ev.get("action", "")),
                str(ev.get("examiner", "") or "-"),
                f"{ev.get('user', '')}@{ev.get('host', '')}",
                result or "-",
                "BROKEN" if i in bad_lines else "ok",
            )
        )
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    for r in table:
        click.echo("  ".join(v.ljust(widths[c]) for c, v in enumerate(r)).rstrip())
    click.echo(
        f"{len(rows)} events in '{log.path}'; chain " + ("intact" if not faults else "BROKEN (run custody check)")
    )
    return 0


@cli.command("check")
@click.argument("image", type=PATH)
@json_option
@pass_ctx
def check_cli(ctx: Ctx, image: str, as_json: bool) -> int:
    """Check the hash chain of IMAGE's custody log: exit 0 intact, 1 broken (naming the first broken event).

    When IMAGE has a manifest (forensimg sign), the log head it recorded is checked too, which finds
    events removed from the end of the log.
    """
    log = _log_for(ctx, image)
    faults = log.check_chain()
    anchor, manifest = ((), None) if ctx.custody_log else _anchor_faults(log, image)
    faults = faults + anchor
    head = log.head()
    if as_json:
        emit_json(
            {
                "log": str(log.path),
                "intact": not faults,
                "events": len(log.lines()),
                "head": {"seq": head[0], "sha256": head[1]} if head else None,
                "anchor": manifest,
                "first_broken": faults[0].to_dict() if faults else None,
                "faults": [f.to_dict() for f in faults],
                "exit_code": 1 if faults else 0,
            }
        )
        return 1 if faults else 0
    if faults:
        for f in faults:
            click.echo(f"  {f.detail}")
        click.echo(f"BROKEN: {faults[0].detail}")
        return 1
    extra = f"; matches the head recorded in '{manifest}'" if manifest else ""
    tail = f"; head seq {head[0]} sha256 {head[1]}" if head else ""
    click.echo(f"INTACT: {len(log.lines())} events in '{log.path}', chain verified{tail}{extra}")
    return 0
