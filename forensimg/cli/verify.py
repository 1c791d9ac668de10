"""``forensimg verify IMAGE...``: every chunk, the media hashes against every reference, one verdict line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from forensimg.cli._common import FILE_PATH, PATH, Ctx, emit_json, human_size, json_option, pass_ctx, record_custody
from forensimg.errors import CustodyError, UsageError, WriteError
from forensimg.verify import VerifyReport, parse_expect, parse_range, verify, worst_exit_code

_LABELS = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}


@click.command("verify")
@click.argument("image", nargs=-1, required=True, type=PATH)
@click.option("--expect", "expect", multiple=True, metavar="ALGO:HEX", help="A hash the media must have (repeat).")
@click.option(
    "--hash-file",
    "hash_files",
    multiple=True,
    type=FILE_PATH,
    metavar="FILE",
    help="md5sum/sha256sum-style file or dc3dd/FTK log with the media hashes (repeat).",
)
@click.option(
    "--range",
    "range_text",
    default=None,
    metavar="START:END",
    help="Verify only these media bytes (end exclusive; START+LENGTH, hex, k/M/G and s(ectors) suffixes).",
)
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None,
              help="Threads (fimg from 64 MiB: processes) checking chunks [CPU count].")
@click.option("--public-key", type=FILE_PATH, default=None, help="Also check IMAGE.manifest.sig.")
@click.option("-a", "--algorithm", "algorithms", multiple=True, help="Also compute this hash (repeat).")
@click.option("--format", "fmt", default=None, help="Force the format instead of detecting it.")
@json_option
@pass_ctx
def cli(
    ctx: Ctx,
    image: tuple[str, ...],
    expect: tuple[str, ...],
    hash_files: tuple[str, ...],
    range_text: str | None,
    jobs: int | None,
    public_key: str | None,
    algorithms: tuple[str, ...],
    fmt: str | None,
    as_json: bool,
) -> int:
    """Verify each IMAGE (any one segment names the whole set): check every chunk, recompute the media
    hashes and compare them with the stored hashes, the acquisition report, the custody record,
    --expect values, hash files and (with --public-key) the signed manifest.

    Exit codes: 0 verified; 1 mismatch, corrupt chunk, bad signature or broken custody chain; 3 cannot
    read the image; 4 nothing to verify against. With several images the worst wins (1 > 3 > 4 > 0).
    """
    expected = parse_expect(expect)
    if expected and len(image) > 1:
        raise UsageError("--expect gives the hashes of one image; verify the images one at a time")
    rng = parse_range(range_text) if range_text else None
    workers = jobs or os.cpu_count() or 2
    extra = [a for text in algorithms for a in text.split(",")] or None
    reports: list[VerifyReport] = []
    for path in image:
        report = verify(
            path,
            hashes=extra,
            expect=expected,
            hash_files=hash_files,
            range=rng,
            workers=workers,
            public_key=public_key,
            custody_log=ctx.custody_log,
            format=fmt,
        )
        reports.append(report)
        _record(ctx, path, report)
        if not as_json:
            _print(report, several=len(image) > 1)
    code = worst_exit_code(r.exit_code for r in reports)
    if as_json:
        docs = [r.to_dict() for r in reports]
        emit_json(docs[0] if len(docs) == 1 else docs)
    elif len(reports) > 1:
        bad = sum(1 for r in reports if r.exit_code != 0)
        word = "VERIFIED" if code == 0 else "FAILED"
        click.echo(f"OVERALL {word}: {len(reports) - bad} of {len(reports)} images verified; exit code {code}")
    return code


def _record(ctx: Ctx, path: str, report: VerifyReport) -> None:
    """One custody event per image verified; a log that cannot be written is a warning, not a failure."""
    first = Path(report.info.segments[0]) if report.info is not None else Path(path)
    if report.info is None and not first.is_file():
        return  # nothing there to keep a log beside
    result = {
        "status": report.status,
        "exit_code": report.exit_code,
        "verdict": report.verdict,
        "hashes": {h.algorithm: h.computed for h in report.hashes if h.computed},
        "faults": len(report.faults),
        "range": [report.range.start, report.range.end] if report.range is not None else None,
        "signature": (report.signature or {}).get("intact") if report.signature is not None else None,
    }
    inputs = [str(p) for p in report.info.segments] if report.info is not None else [path]
    try:
        record_custody(ctx, first, "verify", inputs=inputs, result=result)
    except (WriteError, CustodyError) as exc:
        sys.stderr.write(f"forensimg: warning: custody event not recorded: {exc}\n")


def _print(r: VerifyReport, *, several: bool) -> None:
    echo = click.echo
    info = r.info
    if several:
        echo(f"== {r.paths[0]}")
    if info is not None:
        fmt = info.format + (f" ({info.format_version})" if info.format_version else "")
        echo(f"Image:        {info.segments[0]}  [{fmt}, {human_size(info.size)}]")
        if len(info.segments) > 1:
            echo(f"Segments:     {len(info.segments)} ({', '.join(Path(p).name for p in info.segments)})")
        what = f"bytes {r.range.start}..{r.range.end - 1}" if r.range is not None else "all media"
        echo(f"Read:         {what}: {r.chunks_checked} chunks, {r.bytes_read} bytes")
        if r.range is not None:
            how = (
                "proven against the Merkle root (only the chunks in the range were read)"
                if r.range_method == "merkle"
                else "chunk checks only (this format has no proof for a range)"
            )
            echo(f"Range check:  {how}")
    else:
        echo(f"Image:        {', '.join(r.paths)}")
    if r.hashes:
        echo("Hashes:")
        for h in r.hashes:
            label = _LABELS.get(h.algorithm, h.algorithm)
            echo(f"  {label:<8} computed  {h.computed or '(not computed)'}")
            for ref in h.expected_sources:
                state = "match" if ref.match else ("MISMATCH" if ref.match is False else "not compared")
                echo(f"  {'':<8} {ref.source:<9} {ref.value}  {state}" + (f"  [{ref.origin}]" if ref.origin else ""))
    if r.signature is not None:
        s = r.signature
        state = (
            "intact"
            if s.get("intact")
            else ("signature valid, content changed" if s.get("signature_valid") else "INVALID")
        )
        echo(f"Signature:    {state} ({s.get('manifest')}; key sha256 {str(s.get('public_key_sha256'))[:16]}...)")
    if r.faults:
        echo(f"Faults ({len(r.faults)}):")
        ss = info.sector_size if info is not None else 512
        for f in r.faults:
            loc: list[str] = []
            if f.chunk is not None:
                loc.append(f"chunk {f.chunk}")
            if f.media is not None and f.kind != "hash_mismatch":
                a, b = f.media.lba(ss)
                loc.append(f"media {f.media.start}..{f.media.end - 1} (LBA {a}..{b})")
            if f.segment is not None:
                loc.append(
                    f"file '{f.segment}'" + (f" offset 0x{f.offset:x} ({f.offset})" if f.offset is not None else "")
                )
            echo(f"  [{f.kind}] {', '.join(loc) + ': ' if loc else ''}{f.detail}")
            if f.expected is not None or f.found is not None:
                echo(f"      expected {f.expected}, found {f.found}")
    if r.unreadable:
        ss = info.sector_size if info is not None else 512
        echo(f"Unreadable at acquisition ({len(r.unreadable)} ranges, zero-filled, not corruption):")
        for u in r.unreadable:
            a, b = u.lba(ss)
            echo(f"  media {u.start}..{u.end - 1} (LBA {a}..{b}, {u.length} bytes)")
    for n in r.notes:
        echo(f"Note: {n}")
    echo(r.verdict)
