"""``forensimg mount IMAGE MOUNTPOINT`` and ``forensimg umount MOUNTPOINT``.

``mount`` opens the image first (so a bad image fails here, on the terminal), then by default detaches:
it forks, the child starts a new session and forks again, and the daemon reports through a pipe once
the kernel mount is live (FUSE ``init``) or why it failed; the command returns only then, so a script
can use the mount on the next line. The daemon survives the calling shell. ``--foreground`` serves in
the calling process until unmounted or interrupted.

Exit codes: 0 mounted / unmounted; 2 usage; 3 cannot read the image, cannot mount or unmount (not a
folder, already mounted, FUSE missing: the message gives the install hint).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from forensimg.cli._common import FILE_PATH, PATH, Ctx, emit_json, json_option, pass_ctx, record_custody
from forensimg.errors import MountError
from forensimg.registry import open as open_image


def _is_mounted(path: str | Path) -> bool:
    """Whether ``path`` is a mount point, also when its FUSE server died (stat fails with ENOTCONN)."""
    target = os.path.abspath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                field = line.split(" ")[4]
                # mountinfo escapes space, tab, newline and backslash as octal (\040 ...)
                mp = field.encode("latin-1", "replace").decode("unicode_escape", "replace")
                if mp == target:
                    return True
        return False
    except (OSError, IndexError):
        return os.path.ismount(target)


def _check_mountpoint(mountpoint: str) -> Path:
    mp = Path(mountpoint).absolute()
    if not mp.exists():
        raise MountError(f"mount point '{mp}' does not exist", path=mp)
    if not mp.is_dir():
        raise MountError(f"mount point '{mp}' is not a folder", path=mp)
    if _is_mounted(mp):
        raise MountError(f"'{mp}' is already a mount point", path=mp)
    return mp


def _log_to(stream_or_path: Any) -> None:
    root = logging.getLogger("forensimg")
    if isinstance(stream_or_path, str):
        handler: logging.Handler = logging.FileHandler(stream_or_path)
    else:
        handler = logging.StreamHandler(stream_or_path)
    handler.setFormatter(logging.Formatter("%(asctime)s forensimg mount: %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _read_all(fd: int) -> bytes:
    parts: list[bytes] = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(parts)
        parts.append(b)


def _daemonize_and_serve(serve: Any, log_file: str | None) -> int:
    """Fork a daemon that serves the mount; return its pid once it reports the mount live."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        msg = _read_all(r).decode("utf-8", "replace")
        os.close(r)
        os.waitpid(pid, 0)
        if msg.startswith("ready "):
            return int(msg.split()[1])
        detail = msg[len("error ") :].strip() if msg.startswith("error ") else "the mount process ended early"
        raise MountError(detail)
    # first child: new session, then fork again so the daemon is not a session leader
    try:
        os.close(r)
        os.setsid()
        if os.fork():
            os._exit(0)
        os.chdir("/")
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        if log_file:
            _log_to(log_file)

        def ready() -> None:
            # the mount is live: detach from the caller's terminal, then tell the parent
            os.dup2(devnull, 2)
            os.write(w, f"ready {os.getpid()}\n".encode())
            os.close(w)

        try:
            serve(ready)
        except BaseException as exc:  # report any failure to the waiting parent
            try:
                os.write(w, f"error {exc}\n".encode())
            except OSError:
                pass
            os._exit(1)
        os._exit(0)
    except BaseException:
        os._exit(1)


@click.command("mount")
@click.argument("image", type=PATH)
@click.argument("mountpoint", type=PATH)
@click.option("--foreground", "-f", is_flag=True, help="Stay attached and serve until unmounted (Ctrl-C).")
@click.option("--zero-fill", is_flag=True, help="Read corrupt chunks as zeros (logged; stated in info.json).")
@click.option("--allow-other", is_flag=True, help="Let other users read the mount (FUSE allow_other).")
@click.option("--log-file", type=FILE_PATH, default=None, help="Where the daemon logs (EIO...).")
@click.option(
    "--cache-mb", type=click.IntRange(min=0), default=64, show_default=True, help="Decoded-chunk cache (MiB)."
)
@click.option(
    "--multi-threaded/--single-threaded",
    default=None,
    help="Serve with libfuse's multithreaded loop, or with libfuse's own loop one request at a time. "
    "Default: forensimg's loop, one request at a time, polling briefly for the next one (measured fastest "
    "for one reader and for four; see docs/cli.md).",
)
@click.option(
    "--mfusepy-read",
    is_flag=True,
    hidden=True,
    help="Serve reads through mfusepy's generic callback instead of the lean one (A/B measurements in bench/).",
)
@click.option(
    "--no-prefault",
    is_flag=True,
    hidden=True,
    help="Do not touch the chunk cache's memory before serving (A/B measurements in bench/).",
)
@click.option(
    "--poll-us",
    type=click.IntRange(min=0, max=100_000),
    default=None,
    hidden=True,
    help="forensimg's loop: how long to keep asking for the next request after a reply, in µs (default 100; "
    "0: sleep at once).",
)
@click.option("--format", "fmt", default=None, help="Force the image format instead of detecting it.")
@json_option
@pass_ctx
def mount_cli(
    ctx: Ctx,
    image: str,
    mountpoint: str,
    foreground: bool,
    zero_fill: bool,
    allow_other: bool,
    log_file: str | None,
    cache_mb: int,
    multi_threaded: bool | None,
    mfusepy_read: bool,
    no_prefault: bool,
    poll_us: int | None,
    fmt: str | None,
    as_json: bool,
) -> int:
    """Mount IMAGE read-only at MOUNTPOINT: disk.raw (the media), one pN-TYPE-START.raw per partition, info.json.

    Reads covering a corrupt chunk fail with EIO (and are logged) unless --zero-fill. By default the mount
    runs in the background and outlives this command; unmount with `forensimg umount MOUNTPOINT`.
    """
    from forensimg.mount import fuse, loop

    fuse.load_mfusepy()  # fail here, with the install hint, if FUSE is missing
    mp = _check_mountpoint(mountpoint)
    img = open_image(image, format=fmt, zero_fill=zero_fill)
    try:
        files = fuse.build_files(img, zero_fill=zero_fill, source=image)
        fuse.set_cache_budget(img, cache_mb)
        segs = [str(p) for p in img.info.segments]
        summary = {
            "image": segs,
            "mountpoint": str(mp),
            "zero_fill": zero_fill,
            "files": [f.to_dict() for f in files],
        }

        def record() -> None:
            record_custody(ctx, segs[0] if segs else image, "mount", inputs=segs,
                           result={"mountpoint": str(mp), "zero_fill": zero_fill})  # fmt: skip

        log_path = os.path.abspath(log_file) if log_file else None

        def announce(pid: int) -> None:
            if as_json:
                emit_json({**summary, "pid": pid, "foreground": foreground})
            else:
                names = ", ".join(f.name for f in files)
                click.echo(f"mounted {segs[0] if segs else image} at {mp} (pid {pid}): {names}", err=foreground)

        def serve(on_ready: Any) -> None:
            fuse.serve(
                img, files, str(mp), allow_other=allow_other, on_ready=on_ready, multi_threaded=multi_threaded,
                lean_read=not mfusepy_read, prefault=not no_prefault,
                poll_us=loop.DEFAULT_POLL_US if poll_us is None else poll_us,
            )  # fmt: skip

        if foreground:
            _log_to(log_path or sys.stderr)
            record()
            serve(lambda: announce(os.getpid()))
            return 0
        sys.stdout.flush()
        sys.stderr.flush()
        pid = _daemonize_and_serve(serve, log_path)
        record()  # only once the mount is live
        announce(pid)
        return 0
    finally:
        img.close()


@click.command("umount")
@click.argument("mountpoint", type=PATH)
@click.option("--lazy", "-z", is_flag=True, help="Detach now even if files are open (fusermount3 -uz).")
@json_option
def umount_cli(mountpoint: str, lazy: bool, as_json: bool) -> int:
    """Unmount a forensimg mount (fusermount3 -u, falling back to umount)."""
    mp = str(Path(mountpoint).absolute())
    if not _is_mounted(mp):
        raise MountError(f"'{mp}' is not a mount point", path=mp)
    tried = []
    fm = shutil.which("fusermount3") or shutil.which("fusermount")
    cmds = []
    if fm:
        cmds.append([fm, "-uz" if lazy else "-u", mp])
    if shutil.which("umount"):
        cmds.append(["umount", *(["-l"] if lazy else []), mp])
    for cmd in cmds:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if p.returncode == 0 and not _is_mounted(mp):
            if as_json:
                emit_json({"mountpoint": mp, "unmounted": True, "command": cmd})
            else:
                click.echo(f"unmounted {mp}")
            return 0
        tried.append(f"{os.path.basename(cmd[0])}: {(p.stderr or p.stdout).strip() or f'exit {p.returncode}'}")
    raise MountError(f"cannot unmount '{mp}': " + "; ".join(tried or ["no fusermount3 or umount found"]), path=mp)


__all__ = ["mount_cli", "umount_cli"]
