"""``forensimg partitions | ls | cat | extract``: Sleuth Kit browsing of any image (like mmls, fls, icat).

Thin commands over :mod:`forensimg.fs.tsk`. Exit codes (``docs/cli.md``): 0 ok; 2 usage (a partition
index or path that does not exist, several file systems and none chosen); 3 cannot read the image, no
file system found, pytsk3 missing, a corrupt chunk under the data read (fail-closed); 3 also when the
extraction target exists (refusing to overwrite).
"""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from forensimg.cli._common import PATH, Ctx, emit_json, json_option, pass_ctx, record_custody
from forensimg.errors import FormatError
from forensimg.registry import open as open_image

F = TypeVar("F", bound=Callable[..., Any])


def _where_options(f: F) -> F:
    f = click.option(
        "--offset", type=click.IntRange(min=0), default=None, help="Byte offset of the file system in the media."
    )(f)
    f = click.option(
        "--partition",
        "-p",
        type=click.IntRange(min=1),
        default=None,
        help="Partition number (the # column of `forensimg partitions`; 1 = first allocated partition).",
    )(f)
    return f


def _t(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S (UTC)") if t else "0000-00-00 00:00:00 (UTC)"


@click.command("partitions")
@click.argument("image", type=PATH)
@click.option("--format", "fmt", default=None, help="Force the image format instead of detecting it.")
@json_option
def partitions_cli(image: str, fmt: str | None, as_json: bool) -> int:
    """List the partition table of IMAGE like mmls (MBR, GPT, ...), with the file system found in each.

    A disk without a partition table (a floppy, a partition image) is reported as one file system.
    """
    from forensimg.fs import tsk

    with open_image(image, format=fmt) as img:
        vs = tsk.volume_system(img)
        fs_type = None
        if vs is None:
            try:
                fs_type = tsk.open_filesystem(img, offset=0).type
            except FormatError:
                fs_type = None
        if as_json:
            emit_json(
                {
                    "image": [str(p) for p in img.info.segments],
                    "size": img.size,
                    "volume_system": vs.to_dict() if vs else None,
                    "filesystem": {"offset": 0, "type": fs_type} if vs is None else None,
                }
            )
            return 0
        if vs is None:
            what = f"one {fs_type} file system at offset 0" if fs_type else "no file system found either"
            click.echo(f"No partition table: {what}.")
            return 0
        click.echo(vs.description)
        click.echo(f"Offset Sector: {vs.offset // vs.sector_size}")
        click.echo(f"Units are in {vs.sector_size}-byte sectors")
        click.echo("")
        click.echo("      Slot      Start        End          Length       Description                 #   FS")
        for p in vs.partitions:
            num = f"p{p.index}" if p.index else ""
            click.echo(
                f"{p.addr:03d}:  {p.slot:<9} {p.start:010d}   {p.end:010d}   {p.length:010d}   "
                f"{p.description:<27} {num:<3} {p.fs_type or ''}".rstrip()
            )
    return 0


@click.command("ls")
@click.argument("image", type=PATH)
@click.argument("path", default="/")
@_where_options
@click.option("--recursive", "-r", is_flag=True, help="Descend into folders (fls -r).")
@click.option("--deleted", "-d", is_flag=True, help="Only deleted entries (fls -d).")
@click.option("--allocated", "-u", is_flag=True, help="Only allocated (not deleted) entries (fls -u).")
@click.option("--format", "fmt", default=None, help="Force the image format instead of detecting it.")
@json_option
def ls_cli(
    image: str,
    path: str,
    partition: int | None,
    offset: int | None,
    recursive: bool,
    deleted: bool,
    allocated: bool,
    fmt: str | None,
    as_json: bool,
) -> int:
    """List PATH (default /) of a file system in IMAGE like `fls -l -p`: type, deleted mark, inode, path,
    times in UTC (modified, accessed, changed, created) and size.
    """
    from forensimg.errors import UsageError

    if deleted and allocated:
        raise UsageError("--deleted and --allocated exclude each other")
    with open_image(image, format=fmt) as img:
        fs = img.filesystem(partition, offset=offset)
        entries = fs.ls(path, recursive=recursive, deleted=not allocated, allocated=not deleted)
        if as_json:
            emit_json({"image": [str(p) for p in img.info.segments], "filesystem": fs.to_dict(), "path": path,
                       "entries": [e.to_dict() for e in entries]})  # fmt: skip
            return 0
        for e in entries:
            mark = "* " if e.deleted else ""
            realloc = "(realloc)" if e.reallocated else ""
            click.echo(
                f"{e.type} {mark}{e.inode}{realloc}:\t{e.path.lstrip('/')}\t{_t(e.mtime)}\t{_t(e.atime)}\t"
                f"{_t(e.ctime)}\t{_t(e.crtime)}\t{e.size}"
            )
    return 0


@click.command("cat")
@click.argument("image", type=PATH)
@click.argument("path", required=False)
@_where_options
@click.option("--inode", type=click.IntRange(min=0), default=None, help="Read by inode (like icat) instead of PATH.")
@click.option("--format", "fmt", default=None, help="Force the image format instead of detecting it.")
@json_option
def cat_cli(
    image: str,
    path: str | None,
    partition: int | None,
    offset: int | None,
    inode: int | None,
    fmt: str | None,
    as_json: bool,
) -> int:
    """Write the content of file PATH (or --inode N) in IMAGE to standard output, like icat.

    Binary-safe. Fails (exit 3, nothing misleading written) when the file covers a corrupt chunk.
    With --json, prints the size, SHA-256 and the content in base64 instead.
    """
    from forensimg.errors import UsageError

    if (path is None) == (inode is None):
        raise UsageError("give either PATH or --inode")
    with open_image(image, format=fmt) as img:
        fs = img.filesystem(partition, offset=offset)
        if as_json:
            with fs.open(path, inode=inode) as f:
                data = f.read()
                emit_json({"path": f.entry.path, "inode": f.entry.inode, "size": len(data),
                           "sha256": hashlib.sha256(data).hexdigest(),
                           "content_base64": base64.b64encode(data).decode("ascii")})  # fmt: skip
            return 0
        out = sys.stdout.buffer
        for block in fs.iter_read(path, inode=inode):
            out.write(block)
        out.flush()
    return 0


@click.command("extract")
@click.argument("image", type=PATH)
@click.argument("path")
@click.argument("dest", type=PATH)
@_where_options
@click.option("--deleted", "-d", is_flag=True, help="Also extract deleted entries found inside folders.")
@click.option("--format", "fmt", default=None, help="Force the image format instead of detecting it.")
@json_option
@pass_ctx
def extract_cli(
    ctx: Ctx,
    image: str,
    path: str,
    dest: str,
    partition: int | None,
    offset: int | None,
    deleted: bool,
    fmt: str | None,
    as_json: bool,
) -> int:
    """Copy file or folder PATH out of IMAGE to DEST, keeping modification and access times.

    An existing folder DEST receives PATH under its own name; otherwise DEST is created. Existing files are
    never overwritten. A SHA-256 manifest (sha256sum -c format) is written beside the copy as
    TARGET.sha256. Nothing is left behind if a file covers a corrupt chunk.
    """
    with open_image(image, format=fmt) as img:
        fs = img.filesystem(partition, offset=offset)
        result = fs.extract(path, dest, deleted=deleted)
        segs = [str(p) for p in img.info.segments]
    summary = result.to_dict()
    record_custody(
        ctx,
        segs[0] if segs else image,
        "export",
        inputs=segs,
        outputs=[result.manifest],
        result={"path": path, "filesystem_offset": fs.offset, "files": len(result.files),
                "bytes": summary["bytes"], "target": str(result.target)},
    )  # fmt: skip
    if as_json:
        emit_json({"image": segs, "path": path, **summary})
        return 0
    click.echo(
        f"extracted {len(result.files)} file(s), {result.folders} folder(s), {summary['bytes']} bytes "
        f"to {result.target}"
    )
    click.echo(f"manifest: {result.manifest}")
    for p, why in result.skipped:
        click.echo(f"skipped: {p} ({why})")
    return 0
