"""The ``forensimg`` command line: a lazy click group with one thin module per command.

Exit codes (``docs/cli.md``): 0 success; 1 integrity failure; 2 usage; 3 cannot read the input or
unsupported format; 4 nothing to verify against; 5 refused by a safeguard; 6 finished incomplete (a
mirror copy failed, or an acquisition was interrupted); 130 interrupted. :func:`main` maps every
:class:`forensimg.errors.Error` to one line on stderr and its exit code; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from forensimg._version import __version__
from forensimg.cli._common import FILE_PATH, Ctx
from forensimg.errors import Error

__all__ = ["LAZY_COMMANDS", "cli", "main"]

LAZY_COMMANDS: dict[str, str] = {
    "info": "forensimg.cli.info:cli",
    "hash": "forensimg.cli.hash:cli",
    "verify": "forensimg.cli.verify:cli",
    "acquire": "forensimg.cli.acquire:cli",
    "convert": "forensimg.cli.convert:cli",
    "restore": "forensimg.cli.restore:cli",
    "mount": "forensimg.cli.mount:mount_cli",
    "umount": "forensimg.cli.mount:umount_cli",
    "partitions": "forensimg.cli.browse:partitions_cli",
    "ls": "forensimg.cli.browse:ls_cli",
    "cat": "forensimg.cli.browse:cat_cli",
    "extract": "forensimg.cli.browse:extract_cli",
    "custody": "forensimg.cli.custody:cli",
    "sign": "forensimg.cli.sign:sign_cli",
    "keygen": "forensimg.cli.sign:keygen_cli",
}
"""Command name → ``module:attribute``. A command whose module is not present is not offered."""


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs (or help lists it)."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands or {}

    def _available(self) -> list[str]:
        out = []
        for name, target in self.lazy_subcommands.items():
            if importlib.util.find_spec(target.split(":")[0]) is not None:
                out.append(name)
        return out

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._available()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands and cmd_name in self._available():
            module_name, attr = self.lazy_subcommands[cmd_name].split(":")
            cmd = getattr(importlib.import_module(module_name), attr)
            if not isinstance(cmd, click.Command):
                raise TypeError(f"{module_name}:{attr} is not a click command")
            return cmd
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy_subcommands=LAZY_COMMANDS,
    context_settings={"auto_envvar_prefix": "FORENSIMG", "help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "-V", "--version", prog_name="forensimg")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--examiner", default="", help="Examiner name for custody records (env FORENSIMG_EXAMINER).")
@click.option(
    "--custody-log",
    type=FILE_PATH,
    default=None,
    help="Custody log to append to (default: IMAGE.custody.jsonl beside the image).",
)
@click.option("--no-custody", is_flag=True, help="Do not append events to a custody log.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, examiner: str, custody_log: str | None, no_custody: bool) -> None:
    """forensimg: acquire, verify and examine forensic disk images (raw, split raw, E01, fimg)."""
    ctx.obj = Ctx(debug=debug, examiner=examiner, custody_log=custody_log, no_custody=no_custody)


def _say(msg: str) -> None:
    try:
        sys.stderr.write(f"forensimg: {msg}\n")
        sys.stderr.flush()
    except Exception:
        pass


def main(argv: Sequence[str] | None = None, prog_name: str = "forensimg") -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FORENSIMG_DEBUG", "") not in ("", "0")
    try:
        rv = cli.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except click.Abort:
        _say("aborted")
        return 130
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Error as exc:
        if debug:
            traceback.print_exc()
        _say(f"error: {exc}")
        return exc.exit_code
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return 0
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f" '{exc.filename}'" if exc.filename else ""
        _say(f"error:{where} {exc.strerror or exc}")
        return 3
    except Exception as exc:
        traceback.print_exc() if debug else None
        _say(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)")
        return 70
    if isinstance(rv, int):
        return rv
    return 0
