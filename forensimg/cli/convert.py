"""``forensimg convert IMAGE TARGET``: convert between E01, fimg, raw and split raw.

Exit codes: 0 converted and the media hashes equal the input's stored ones (or it stores none);
1 they differ, or a chunk of the input is corrupt (stops unless ``--zero-fill``; with it the output is
finished but the exit code is still 1); 2 usage; 3 cannot read the input or write the output.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from forensimg.cli._common import FILE_PATH, PATH, Ctx, emit_json, json_option, pass_ctx, record_custody

__all__ = ["cli"]


@click.command("convert")
@click.argument("image", nargs=-1, required=True, type=PATH)
@click.argument("target", type=FILE_PATH)
@click.option("--format", "fmt", default=None, help="Output format: ewf, fimg, raw, split (default: from TARGET).")
@click.option("--hash", "hash_opt", default=None,
              help="Hashes to compute and store (default: the input's stored ones plus the output format's).")
@click.option("--compression", default=None, help="Compression (E01 none/fast/best; fimg zstd/zlib/none).")
@click.option("--chunk-size", default=None, help="Chunk size of the output (E01, fimg).")
@click.option("--segment-size", default=None, help="Maximum segment file size (e.g. 650M, 2G).")
@click.option("--zero-fill", is_flag=True, help="Write corrupt input chunks as zeros (recorded) instead of stopping.")
@click.option("--verify", is_flag=True, help="Re-read the finished output and compare its hashes.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--input-format", "in_fmt", default=None, help="Force the input format instead of detecting it.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@json_option
@pass_ctx
def cli(ctx: Ctx, image: tuple[str, ...], target: str, fmt: str | None, hash_opt: str | None, compression: str | None,
        chunk_size: str | None, segment_size: str | None, zero_fill: bool, verify: bool, overwrite: bool,
        in_fmt: str | None, quiet: bool, as_json: bool) -> int:
    """Convert IMAGE (any segment of an E01, fimg, raw or split set) into TARGET.

    Case metadata, source identity, unreadable ranges and stored hashes are carried across; the
    conversion fails if the media's hashes differ from those the input stores.
    """
    from forensimg.acquire.engine import Progress
    from forensimg.acquire.report import AcquisitionReport, segment_hashes
    from forensimg.cli.acquire import ProgressPrinter, _format_name, parse_size, writer_options
    from forensimg.convert import convert, writer_options_for
    from forensimg.hashing import hash_image, normalize_algorithms
    from forensimg.registry import create
    from forensimg.registry import open as open_image

    fmt_name = _format_name(target, fmt)
    src: str | list[str] = image[0] if len(image) == 1 else list(image)
    started = datetime.now(UTC)
    with open_image(src, format=in_fmt, zero_fill=zero_fill) as img:
        info = img.info
        opts = writer_options(fmt_name, compression=compression, chunk_size=parse_size(chunk_size, "--chunk-size"),
                              segment_size=parse_size(segment_size, "--segment-size"), sector_size=info.sector_size)
        stored = [a for a in info.stored_hashes if a in ("md5", "sha1", "sha256", "sha512")]
        defaults = ["sha256"] if fmt_name == "fimg" else ["md5", "sha1"]
        algs = normalize_algorithms(hash_opt) if hash_opt else normalize_algorithms([*stored, *defaults])
        writer = create(target, format=fmt_name, overwrite=overwrite, compute_hashes=False, hashes=algs,
                        **writer_options_for(img), **opts)
        tty = sys.stderr if (not quiet and sys.stderr.isatty()) else None
        printer = ProgressPrinter(tty)
        try:
            res = convert(img, writer, hashes=algs, on_progress=lambda p: printer(
                Progress(p.done, p.total, 0, 0, p.elapsed, p.rate, "convert")))
        finally:
            printer.finish()
        verification: dict[str, Any] | None = None
        if verify and res.result is not None:
            with open_image(list(res.result.paths) if res.result.format == "split" else res.result.paths[0]) as out:
                got = hash_image(out, algs)
            verification = {"ok": got == dict(res.result.hashes), "hashes": got}
        rep = AcquisitionReport("convert", ["forensimg", *sys.argv[1:]], info.case,
                                {"image": [str(p) for p in info.segments], "format": info.format,
                                 "size": info.size, "sector_size": info.sector_size,
                                 "source": info.source.to_dict() if info.source else None},
                                started_at=started, settings={"format": fmt_name, "hashes": list(algs), **opts})
        rep.finished_at = datetime.now(UTC)
        status = "complete" if res.ok and (verification is None or verification["ok"]) else "FAILED"
        rep.status = status
        out_paths = list(res.result.paths) if res.result else []
        if res.result is not None:
            rep.segments[str(writer.path)] = segment_hashes(out_paths)
        unread = [r.to_dict(info.sector_size) for r in info.unreadable]
        rep.result = {
            "size": res.size, "hashes": res.hashes, "padded_bytes": res.padded_bytes,
            "unreadable": [dict(u, errno=None) for u in unread],
            "unreadable_sectors": sum(u["last_lba"] - u["first_lba"] + 1 for u in unread),
            "targets": [{"path": str(writer.path), "format": writer.format,
                         "state": "finished" if res.result else "aborted",
                         "error": None if res.ok else _why(res), "failed_at": None}],
            "verification": [{"path": str(writer.path), **verification,
                              "detail": "media hashes match" if verification["ok"] else "mismatch"}]
            if verification else [],
        }
        rep.notes.append("stored hashes of the input: " + (", ".join(f"{a}={h}" for a, h in res.stored.items())
                                                          or "none (nothing to compare)"))
        for a, ok in res.compared.items():
            rep.notes.append(f"{a.upper()}: {'matches' if ok else 'DIFFERS FROM'} the input's stored hash")
        for f in res.faults:
            rep.notes.append(f"corrupt input chunk zero-filled: {f.detail}")
        txt, _ = rep.write(target)
        seg_sha = {s["path"]: s["sha256"] for segs in rep.segments.values() for s in segs}
        record_custody(ctx, target, "convert", inputs=list(info.segments), outputs=[*out_paths, txt], hashes=seg_sha,
                       result={"status": status, "media_hashes": res.hashes, "stored_hashes": res.stored,
                               "compared": res.compared, "faults": len(res.faults)})
        if as_json:
            d = res.to_dict()
            d.update(status=status, report=str(txt), verification=verification,
                     unreadable=unread, input={"format": info.format, "segments": [str(p) for p in info.segments]})
            emit_json(d)
        elif not quiet:
            click.echo(f"{status}: {info.format} → {fmt_name}, {res.size} bytes", err=True)
            for a, h in res.hashes.items():
                mark = ""
                if a in res.compared:
                    mark = " (matches stored)" if res.compared[a] else " (DIFFERS from stored)"
                click.echo(f"  {a.upper():<7}{h}{mark}", err=True)
            if not res.ok:
                click.echo(f"  {_why(res)}", err=True)
        if not res.ok or (verification is not None and not verification["ok"]):
            if not as_json:
                sys.stderr.write(f"forensimg: error: {_why(res) if not res.ok else 'verification failed'}\n")
            return 1
        return 0


def _why(res: Any) -> str:
    if res.faults:
        return f"{len(res.faults)} corrupt chunk(s) of the input were written as zeros"
    bad = [a for a, ok in res.compared.items() if not ok]
    if bad:
        return (f"the media's {', '.join(bad)} differ from the input's stored hashes: the output was aborted "
                "(left incomplete)")
    return "the output was not finished"
