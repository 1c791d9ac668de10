"""``forensimg info IMAGE``: format, size, geometry, segments, case metadata and stored hashes."""

from __future__ import annotations

import json

import click

from forensimg.cli._common import PATH, emit_json, human_size, json_option
from forensimg.registry import open as open_image


@click.command("info")
@click.argument("image", nargs=-1, required=True, type=PATH)
@click.option("--format", "fmt", default=None, help="Force the format instead of detecting it.")
@json_option
def cli(image: tuple[str, ...], fmt: str | None, as_json: bool) -> int:
    """Show what IMAGE is: format, media size, sector and chunk size, segments, case metadata, hashes.

    IMAGE is any segment of the image (or all of them, in order).
    """
    source: str | list[str] = image[0] if len(image) == 1 else list(image)
    with open_image(source, format=fmt) as img:
        info = img.info
        if as_json:
            emit_json(info.to_dict())
            return 0
        d = info.to_dict()
        rows: list[tuple[str, str]] = [
            ("Format", info.format + (f" ({info.format_version})" if info.format_version else "")),
            ("Media size", human_size(info.size)),
            ("Bytes per sector", str(info.sector_size)),
            ("Sectors", str(d["sector_count"])),
            ("Chunk size", f"{info.chunk_size} bytes ({info.chunk_count} chunks)"),
            ("Complete", "yes" if info.complete else "NO (the writer never finished)"),
        ]
        for k in ("acquired_at", "system_date", "acquisition_software", "acquisition_os"):
            if d[k]:
                rows.append((k.replace("_", " ").capitalize(), str(d[k])))
        click.echo("\n".join(f"{k + ':':<26}{v}" for k, v in rows))
        click.echo("Segments:")
        for p in info.segments:
            click.echo(f"  {p}")
        case = {k: v for k, v in info.case.to_dict().items() if v}
        if case:
            click.echo("Case:")
            for k, v in case.items():
                click.echo(f"  {k.replace('_', ' ') + ':':<24}{v}")
        if info.source:
            src = {k: v for k, v in info.source.to_dict().items() if v not in (None, "", {}) and k != "extra"}
            click.echo("Source:")
            for k, v in src.items():
                click.echo(f"  {k.replace('_', ' ') + ':':<24}{v}")
            for k, v in info.source.extra.items():
                if v in (None, "", {}) or k in src:
                    continue
                text = json.dumps(v, sort_keys=True, default=str) if isinstance(v, dict | list) else str(v)
                click.echo(f"  {k.replace('_', ' ') + ':':<24}{text}")
        click.echo("Stored hashes:" + ("" if info.stored_hashes else " none"))
        for alg, hexd in info.stored_hashes.items():
            click.echo(f"  {alg.upper() + ':':<24}{hexd}")
        if info.unreadable:
            click.echo(f"Unreadable at acquisition: {len(info.unreadable)} range(s)")
            for r in info.unreadable:
                a, b = r.lba(info.sector_size)
                click.echo(f"  bytes {r.start}..{r.end - 1} (sectors {a}..{b})")
        for k, v in info.details.items():
            if isinstance(v, str | int | float):
                click.echo(f"{k.replace('_', ' ').capitalize() + ':':<26}{v}")
    return 0
