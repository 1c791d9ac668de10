"""``forensimg restore IMAGE DESTINATION``: write an image's media back to a disk (or file) and verify it.

Exit codes: 0 the read-back matches the image's stored hashes; 1 it does not, or a corrupt chunk stopped
the restore; 4 the read-back equals what was written but the image stores no hash; 5 a safeguard refused
the destination (nothing written).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from forensimg.cli._common import FILE_PATH, PATH, Ctx, emit_json, json_option, pass_ctx, record_custody
from forensimg.errors import RestoreStoppedError
from forensimg.records import atomic_write
from forensimg.registry import open as open_image
from forensimg.restore import RestoreResult, restore


def default_report_path(image: Path, now: datetime | None = None) -> Path:
    """``disk.E01`` → ``disk.E01.restore-20261128T051500Z.txt`` beside the image."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return image.with_name(f"{image.name}.restore-{stamp}.txt")


class _Bar:
    """A progress bar on stderr, one per phase (write, wipe, verify)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.phase: str | None = None
        self.bar: Any = None
        self.done = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if phase != self.phase:
            self.close()
            label = {"write": "writing  ", "wipe": "wiping tail", "verify": "reading back"}.get(phase, phase)
            self.bar = click.progressbar(length=max(total, 1), label=label, file=sys.stderr, show_pos=False,
                                         show_percent=True, show_eta=True)
            self.bar.__enter__()
            self.phase = phase
            self.done = 0
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command("restore")
@click.argument("image", type=PATH)
@click.argument("destination", type=PATH)
@click.option("--confirm", default=None, metavar="DESTINATION",
              help="Name the destination again to confirm that it may be overwritten (asked for on a terminal).")
@click.option("--wipe-tail", is_flag=True, help="Zero the destination beyond the media (default: leave, report).")
@click.option("--zero-fill", is_flag=True,
              help="Write zeros for chunks that fail their check (and list them) instead of stopping.")
@click.option("--report", "report", type=FILE_PATH, default=None,
              help="Report file (default: IMAGE.restore-<UTC time>.txt beside the image).")
@click.option("--hash", "hashes", default=None, metavar="ALGS",
              help="Hash algorithms for the verification (default: those stored in the image).")
@click.option("--format", "fmt", default=None, help="Force the image format instead of detecting it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@json_option
@pass_ctx
def cli(
    ctx: Ctx,
    image: str,
    destination: str,
    confirm: str | None,
    wipe_tail: bool,
    zero_fill: bool,
    report: str | None,
    hashes: str | None,
    fmt: str | None,
    quiet: bool,
    as_json: bool,
) -> int:
    """Write the media of IMAGE (raw, split, E01, fimg) to DESTINATION sector for sector, then verify it.

    DESTINATION is a block device or a file. It is read back (bypassing the page cache) and its hashes
    are compared with the image's stored hashes. Refused: a mounted, read-only, too small destination,
    the device the image was acquired from, and any destination not confirmed with --confirm.
    """
    if confirm is None and sys.stdin.isatty() and not as_json:
        confirm = click.prompt(
            f"This overwrites '{destination}' from its first byte. Type the destination again to confirm",
            default="", show_default=False, err=True,
        )
    bar = _Bar(enabled=sys.stderr.isatty() and not quiet and not as_json)
    argv = ["forensimg", *sys.argv[1:]] if sys.argv else []
    stopped: RestoreStoppedError | None = None
    with open_image(image, format=fmt) as img:
        first = Path(img.info.segments[0]) if img.info.segments else Path(image)
        logs = [ctx.custody_log] if ctx.custody_log else []
        try:
            result: RestoreResult = restore(
                img, destination, confirm=confirm or "", wipe_tail=wipe_tail, zero_fill=zero_fill,
                on_progress=bar, hashes=hashes, custody_logs=logs,
            )
        except RestoreStoppedError as exc:
            stopped = exc
            result = exc.result
        finally:
            bar.close()
        segments = [str(p) for p in img.info.segments]
    report_path = Path(report) if report else default_report_path(first)
    atomic_write(report_path, result.to_text(argv=argv, report_path=str(report_path)))
    summary = {
        "status": result.status,
        "destination": result.destination.to_dict(),
        "media_size": result.media_size,
        "bytes_written": result.bytes_written,
        "written_hashes": dict(result.written_hashes),
        "readback_hashes": dict(result.readback_hashes),
        "stored_hashes": dict(result.stored_hashes),
        "hashes": result.hash_checks(),  # per algorithm: what the read-back was compared with
        "diagnosis": result.diagnosis,
        "unreadable": [r.to_dict(result.sector_size) for r in result.unreadable],
        "faults": [f.to_dict(result.sector_size) for f in result.faults],
        "tail": None if result.tail is None else {**result.tail.to_dict(), "wiped": result.tail_wiped},
        "report": str(report_path),
    }
    log = record_custody(ctx, first, "restore", inputs=segments, outputs=[destination], result=summary)
    if as_json:
        d = result.to_dict()
        d["report"] = str(report_path)
        d["custody_log"] = str(log) if log else None
        if stopped is not None:
            d["error"] = str(stopped)
        emit_json(d)
    else:
        if stopped is not None:
            click.echo(f"forensimg: error: {stopped}", err=True)
        _print_summary(result, report_path)
    return 1 if stopped is not None else result.exit_code


def _print_summary(result: RestoreResult, report_path: Path) -> None:
    status = {
        "verified": "verified: the read-back matches the image's stored hashes",
        "mismatch": "MISMATCH: the read-back does not match",
        "no_reference": "no reference: the read-back equals what was written, but the image stores no hash",
        "stopped": "STOPPED before a corrupt chunk",
    }[result.status]
    click.echo(f"Restore {status}")
    if result.diagnosis:
        click.echo(f"  {result.diagnosis}")
    click.echo(f"  {result.bytes_written} of {result.media_size} bytes written to {result.destination.path}")
    for h in result.hash_checks():
        ref = "stored " + h["stored"] if h["stored"] else f"written {h['written'] or '-'} (none stored)"
        click.echo(f"  {h['algorithm'].upper():<7} read back {h['read_back']}  {ref}")
    if result.unreadable:
        click.echo(f"  {len(result.unreadable)} range(s) recorded unreadable at acquisition, written as zeros")
    if result.faults and result.status != "stopped":
        click.echo(f"  {len(result.faults)} corrupt chunk(s) written as zeros (--zero-fill)")
    if result.tail is not None:
        how = "zeroed" if result.tail_wiped else "left as it was (use --wipe-tail to zero it)"
        click.echo(f"  tail bytes {result.tail.start}..{result.tail.end - 1}: {how}")
    for w in result.warnings:
        click.echo(f"  warning: {w}")
    click.echo(f"  report: {report_path}")
